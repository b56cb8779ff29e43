"""Reads a spec file (JSON or YAML) into plain JSON-compatible Python data."""

from __future__ import annotations

import json
import math
import os
import stat
import sys
from pathlib import Path
from typing import Any

import yaml

from .errors import SpecError, SpecProblem, json_pointer


class _JsonCompatibleLoader(yaml.SafeLoader):
    """YAML that reads the way the same document would read as JSON.

    Plain YAML turns ``2021-08-17T13:28:57Z`` into a datetime and an unquoted ``200:`` into an
    int key; both would make the YAML spec generate different code from the JSON one.
    """


_JsonCompatibleLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _HugeInt:
    """An integer with more digits than Python converts (4,300 by default): kept as its
    digit count, to be refused with its place once the document is built."""

    def __init__(self, digits: int) -> None:
        self.digits = digits


def _int(text: str) -> int | _HugeInt:
    digits = len(text.lstrip("+-"))
    if digits > sys.get_int_max_str_digits() > 0:
        return _HugeInt(digits)
    return int(text)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    text = str(node.value).replace("_", "")
    if text.lstrip("+-").isdigit():
        return _int(text)
    return yaml.SafeLoader.construct_yaml_int(loader, node)


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[str, Any]:
    loader.flatten_mapping(node)
    pairs = loader.construct_pairs(node, deep=True)
    mapping = {str(key): value for key, value in pairs}
    if len(mapping) < len(pairs):
        seen: set[str] = set()
        for (key_node, _), (key, _) in zip(node.value, pairs, strict=False):
            if str(key) in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {str(key)!r} appears twice in one mapping "
                    "(only one copy could be kept)", key_node.start_mark,
                )  # fmt: skip
            seen.add(str(key))
    return mapping


class _Repeated(dict[str, Any]):
    """A JSON object that repeated a key (json.loads would keep the last copy silently)."""

    key: str


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping = dict(pairs)
    if len(mapping) == len(pairs):
        return mapping
    marked = _Repeated(mapping)
    keys = [key for key, _ in pairs]
    marked.key = next(key for index, key in enumerate(keys) if key in keys[:index])
    return marked


def _repeated_keys(value: Any) -> list[SpecProblem]:
    """Where an object repeated a key (walked only when one did)."""
    problems: list[SpecProblem] = []
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    while stack:
        node, at = stack.pop()
        if isinstance(node, _Repeated):
            message = (
                f"the key {node.key!r} appears twice in one object (JSON keeps the last copy "
                "and drops the other without a word)"
            )
            problems.append(SpecProblem(message, json_pointer(*at, node.key)))
        if isinstance(node, dict):
            stack.extend((child, (*at, str(key))) for key, child in node.items())
        elif isinstance(node, list):
            stack.extend((child, (*at, str(i))) for i, child in enumerate(node))
    return sorted(problems, key=lambda p: p.pointer)


_JsonCompatibleLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)
_JsonCompatibleLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


# A spec nests a few dozen levels and uses a handful of YAML aliases; anything far beyond
# that is an accident or an attack (a "billion laughs" document expands exponentially),
# and is refused before a single Python object is built from it.
MAX_ALIASES = 1000
MAX_EXPANDED_NODES = 2_000_000
MAX_DEPTH = 200


class _LimitedLoader(_JsonCompatibleLoader):
    """Counts aliases while the YAML is composed into nodes (cheap: an alias is a shared
    node), so that the expanded size can be checked before anything is constructed."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _TooLarge(f"more than {MAX_ALIASES} YAML aliases", mark)
        return super().compose_node(parent, index)


class _TooLarge(Exception):
    def __init__(self, message: str, mark: Any = None) -> None:
        super().__init__(message)
        self.mark = mark


def _expanded_size(root: yaml.Node) -> int:
    """How many nodes the document has once every alias is expanded, without expanding it:
    each distinct node's size is computed once. Also refuses nesting deeper than MAX_DEPTH."""
    sizes: dict[int, int] = {}
    # Iterative post-order walk: a deep document must not exhaust the interpreter's stack.
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        if id(node) in sizes:
            continue
        if depth > MAX_DEPTH:
            raise _TooLarge(f"nested deeper than {MAX_DEPTH} levels", node.start_mark)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        if done:
            total = 1 + sum(sizes[id(child)] for child in children)
            sizes[id(node)] = min(total, MAX_EXPANDED_NODES + 1)
            continue
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in children if id(child) not in sizes)
    return sizes[id(root)]


def _load_yaml(text: str) -> Any:
    loader = _LimitedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node) > MAX_EXPANDED_NODES:
            raise _TooLarge(f"expands to more than {MAX_EXPANDED_NODES} nodes (YAML aliases)")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _plain(value: Any) -> bool:
    """True when none of the walks below would find a problem: one walk that keeps no paths
    (a third of their time on a real spec), so that they run only to name the place of a
    problem this one saw. Anything unusual (a subclass, a key that is not a string) counts
    as a problem here and gets the closer look."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return False
        kind = type(node)
        if kind is dict:
            for key, child in node.items():
                if type(key) is not str or (not key.isascii() and _has_surrogate(key)):
                    return False
                stack.append((child, depth + 1))
        elif kind is list:
            stack.extend((child, depth + 1) for child in node)
        elif kind is str:
            if not node.isascii() and _has_surrogate(node):
                return False
        elif kind is float:
            if not math.isfinite(node):
                return False
        elif not (node is None or kind is int or kind is bool):
            return False
    return True


def _depth_problem(value: Any) -> str | None:
    """The JSON pointer of the first value nested deeper than MAX_DEPTH, if any."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    while stack:
        node, at = stack.pop()
        if len(at) > MAX_DEPTH:
            return json_pointer(*at[:MAX_DEPTH])
        if isinstance(node, dict):
            stack.extend((v, (*at, str(k))) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, (*at, str(i))) for i, v in enumerate(node))
    return None


def _surrogate_problems(value: Any) -> list[SpecProblem]:
    """Lone surrogates (``"\\udc80"`` is valid JSON syntax) are not text: no Python source,
    schema or name can hold them, so they are refused where they stand."""
    problems: list[SpecProblem] = []
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    while stack and len(problems) < 20:
        node, at = stack.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                if _has_surrogate(key):
                    problems.append(SpecProblem("a name holds a lone surrogate (not text)", json_pointer(*at, ascii(key)[1:-1])))
                stack.append((child, (*at, key)))
        elif isinstance(node, list):
            stack.extend((child, (*at, str(i))) for i, child in enumerate(node))
        elif isinstance(node, str) and _has_surrogate(node):
            where = json_pointer(*(ascii(p)[1:-1] if _has_surrogate(p) else p for p in at))
            problems.append(SpecProblem("a string holds a lone surrogate (not text)", where))
    return sorted(problems, key=lambda p: p.pointer)


def _non_json_problems(value: Any) -> list[SpecProblem]:
    """Values JSON cannot hold (YAML's ``!!timestamp``, ``!!binary``, ``!!set``, ``!!omap``;
    NaN and infinities, which Python's JSON reader accepts; integers too long to convert):
    a spec is JSON data, and these would fail later without a place."""
    problems: list[SpecProblem] = []
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    while stack and len(problems) < 20:
        node, at = stack.pop()
        if isinstance(node, dict):
            stack.extend((child, (*at, str(key))) for key, child in node.items())
        elif isinstance(node, list):
            stack.extend((child, (*at, str(i))) for i, child in enumerate(node))
        elif isinstance(node, _HugeInt):
            message = f"an integer of {node.digits} digits (more than {sys.get_int_max_str_digits()})"
            problems.append(SpecProblem(message, json_pointer(*at)))
        elif isinstance(node, float) and not math.isfinite(node):
            problems.append(SpecProblem(f"{node} is not a JSON number", json_pointer(*at)))
        elif not (node is None or isinstance(node, str | int | float | bool)):
            kind = {"datetime": "a YAML timestamp", "date": "a YAML date", "bytes": "YAML binary",
                    "set": "a YAML set", "tuple": "a YAML pair"}.get(type(node).__name__, type(node).__name__)  # fmt: skip
            problems.append(
                SpecProblem(f"{kind} is not JSON data (quote it as a string)", json_pointer(*at))
            )
    return sorted(problems, key=lambda p: p.pointer)


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def parse_bytes(raw: bytes, source: str) -> Any:
    """Decode spec bytes, refusing documents that are not plain, bounded JSON-like data."""
    document = _parse_bytes(raw, source)
    if _plain(document):
        return document
    deep = _depth_problem(document)
    if deep is not None:
        raise SpecError(source, [SpecProblem(f"nested deeper than {MAX_DEPTH} levels", deep)])
    problems = _non_json_problems(document) or _surrogate_problems(document)
    if problems:
        raise SpecError(source, problems)
    return document


def _parse_bytes(raw: bytes, source: str) -> Any:
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
        repeated: list[bool] = []

        def json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            mapping = _json_object(pairs)
            if isinstance(mapping, _Repeated):
                repeated.append(True)
            return mapping

        try:
            document = json.loads(text, parse_int=_int, object_pairs_hook=json_object)
        except RecursionError:
            problem = SpecProblem(f"invalid JSON: nested deeper than {MAX_DEPTH} levels")
            raise SpecError(source, [problem]) from None
        except json.JSONDecodeError as exc:
            message = f"invalid JSON: {exc.msg}"
            if not stripped.startswith(("{", "[")):
                message = f"not JSON: the file starts with {stripped[:40]!r}"
            elif not stripped.endswith(("}", "]")):
                message += " (the document ends early: truncated?)"
            problem = SpecProblem(message, line=exc.lineno, column=exc.colno)
            raise SpecError(source, [problem]) from None
        if repeated:
            raise SpecError(source, _repeated_keys(document))
        return document
    try:
        return _load_yaml(text)
    except _TooLarge as exc:
        mark = exc.mark
        problem = SpecProblem(
            f"refused YAML: {exc}",
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        )
        raise SpecError(source, [problem]) from None
    except RecursionError:
        problem = SpecProblem(f"invalid YAML: nested deeper than {MAX_DEPTH} levels")
        raise SpecError(source, [problem]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = getattr(exc, "problem", None) or str(exc)
        problem = SpecProblem(
            f"invalid YAML: {reason}",
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        )
        raise SpecError(source, [problem]) from None


# Far above any real spec (incident.io's is about 0.5 MB), far below what would exhaust memory.
MAX_SPEC_BYTES = 64 * 1024 * 1024


def read_limited(path: Path) -> bytes:
    """The bytes of a regular file of at most MAX_SPEC_BYTES. Anything else (a device such
    as /dev/zero, a FIFO with no writer, a folder, a huge file) is refused by name, without
    reading it or waiting on it."""
    try:
        # Non-blocking: opening a FIFO with no writer must not hang.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise SpecError(str(path), [SpecProblem(f"cannot read the file: {exc.strerror}")]) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        problem = SpecProblem("not a regular file (a device, FIFO, socket or folder)")
        raise SpecError(str(path), [problem])
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > MAX_SPEC_BYTES:
            problem = SpecProblem(f"{info.st_size} bytes, over the limit of {MAX_SPEC_BYTES}: not a spec")
            raise SpecError(str(path), [problem])
        try:
            raw = handle.read(MAX_SPEC_BYTES + 1)
        except OSError as exc:
            raise SpecError(str(path), [SpecProblem(f"cannot read the file: {exc.strerror}")]) from None
    if len(raw) > MAX_SPEC_BYTES:  # it grew while being read
        raise SpecError(str(path), [SpecProblem(f"over the limit of {MAX_SPEC_BYTES} bytes: not a spec")])
    return raw


def load_spec(path: Path) -> Any:
    return parse_bytes(read_limited(path), str(path))
