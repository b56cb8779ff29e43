"""Errors that point at the place in the spec they are about."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpecProblem:
    """One thing wrong with a spec, and where it is."""

    message: str
    pointer: str = ""
    line: int | None = None
    column: int | None = None

    def where(self, source: str) -> str:
        place = source
        if self.line is not None:
            place += f":{self.line}"
            if self.column is not None:
                place += f":{self.column}"
        if self.pointer:
            place += f" at {self.pointer}"
        return place


class SpecError(Exception):
    """The spec cannot be turned into code; carries every problem found, not just the first."""

    def __init__(self, source: str, problems: list[SpecProblem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = [f"{p.where(self.source)}: {p.message}" for p in self.problems]
        return "\n".join(lines)


def json_pointer(*parts: str | int) -> str:
    """RFC 6901 pointer, so that a webhook name such as ``a/b`` or ``a~b`` stays unambiguous."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class GenerationError(Exception):
    """The spec was read, but code could not be made from it; nothing was written."""
