"""What every part of reading one spec shares: the document, the settings, the problems
found so far, and what extraction has learnt (the components, hoisted payloads, names)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import SpecError, SpecProblem, json_pointer
from .ir import Schema


@dataclass
class Reading:
    doc: Any
    source: str
    # Whether the models enforce the producer's value constraints.
    constraints: bool
    problems: list[SpecProblem] = field(default_factory=list)
    components: Mapping[str, Any] = field(default_factory=dict)
    # Inline payload schemas, given a name of their own, and where each stands.
    hoisted: dict[str, Schema] = field(default_factory=dict)
    hoisted_at: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Where each webhook's path item stands, for messages.
    item_at: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Every name the spec has, and every name already invented.
    taken: set[str] = field(default_factory=set)

    def problem(self, message: str, *pointer: str | int) -> None:
        self.problems.append(SpecProblem(message, json_pointer(*pointer)))

    def fail(self) -> SpecError:
        return SpecError(self.source, self.problems)
