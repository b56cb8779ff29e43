"""Reads a spec file (JSON or YAML) into plain JSON-compatible Python data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from .errors import SpecError, SpecProblem


class _JsonCompatibleLoader(yaml.SafeLoader):
    """YAML that reads the way the same document would read as JSON.

    Plain YAML turns ``2021-08-17T13:28:57Z`` into a datetime and an unquoted ``200:`` into an
    int key; both would make the YAML spec generate different code from the JSON one.
    """


_JsonCompatibleLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[str, Any]:
    loader.flatten_mapping(node)
    pairs = loader.construct_pairs(node, deep=True)
    return {str(key): value for key, value in pairs}


_JsonCompatibleLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def parse_bytes(raw: bytes, source: str) -> Any:
    """Decode spec bytes; the format is decided by the name first, then by the content."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(source, [SpecProblem(f"not UTF-8 text (byte {exc.start})")]) from None
    if not text.strip():
        raise SpecError(source, [SpecProblem("the file is empty")])
    head = text.lstrip()[:512].lower()
    if head.startswith("<") or "<html" in head:
        problem = SpecProblem("this is HTML (an error or login page?), not a JSON or YAML spec")
        raise SpecError(source, [problem])
    stripped = text.strip()
    if source.endswith(".json") or stripped.startswith(("{", "[")):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            message = f"invalid JSON: {exc.msg}"
            if not stripped.startswith(("{", "[")):
                message = f"not JSON: the file starts with {stripped[:40]!r}"
            elif not stripped.endswith(("}", "]")):
                message += " (the document ends early: truncated?)"
            problem = SpecProblem(message, line=exc.lineno, column=exc.colno)
            raise SpecError(source, [problem]) from None
    try:
        return yaml.load(text, Loader=_JsonCompatibleLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = getattr(exc, "problem", None) or str(exc)
        problem = SpecProblem(
            f"invalid YAML: {reason}",
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        )
        raise SpecError(source, [problem]) from None


def load_spec(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(str(path), [SpecProblem(f"cannot read the file: {exc.strerror}")]) from None
    return parse_bytes(raw, str(path))
