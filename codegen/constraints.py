"""The value constraints a spec may ask the models to enforce (``--constraints``), checked
before any code is generated.

An enforced constraint runs against every body an attacker can send, and a broken one fails
every event type once the union of all models is built, so each is refused here with its
place: a bound that is not a finite number, a length that is not a whole number of zero or
more, a minimum above its maximum, and a ``pattern`` that the linear-time engine cannot run.
Patterns are enforced by pydantic-core's Rust ``regex`` engine, which never backtracks; a
pattern that needs backtracking (look-around, back-references) would otherwise make the
model generator switch that model to Python's ``re``, where ``^(a|a)+$`` takes seconds per
body.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, TypeGuard

from .ir import Schema

COUNTS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties")
BOUNDS = ("minimum", "maximum")
EXCLUSIVE = ("exclusiveMinimum", "exclusiveMaximum")
PAIRS = (
    ("minLength", "maxLength"), ("minItems", "maxItems"), ("minProperties", "maxProperties"),
    ("minimum", "maximum"),
)  # fmt: skip


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def problems(schema: Schema) -> Iterator[tuple[str, str]]:
    """(message, key) for every constraint of this schema (not its children) that cannot be
    enforced as written."""
    for key in COUNTS:
        value = schema.get(key)
        if value is not None and not (
            isinstance(value, int) and not isinstance(value, bool) and value >= 0
        ):
            yield f"{key} must be a whole number of 0 or more, not {value!r}", key
    for key in BOUNDS:
        value = schema.get(key)
        if value is not None and not _number(value):
            yield f"{key} must be a finite number, not {value!r}", key
    for key in EXCLUSIVE:
        value = schema.get(key)
        if value is not None and not (isinstance(value, bool) or _number(value)):
            yield f"{key} must be a finite number (or true/false in OpenAPI 3.0), not {value!r}", key
    multiple = schema.get("multipleOf")
    if multiple is not None and not (_number(multiple) and multiple > 0):
        yield f"multipleOf must be a number above 0, not {multiple!r}", "multipleOf"
    for low, high in PAIRS:
        floor, ceiling = schema.get(low), schema.get(high)
        if _number(floor) and _number(ceiling) and floor > ceiling:
            yield f"{low} {floor!r} is above {high} {ceiling!r}: no value can match", low
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        problem = linear_pattern_problem(pattern)
        if problem is not None:
            yield problem, "pattern"
    elif pattern is not None:
        yield f"pattern must be a string, not {pattern!r}", "pattern"


def linear_pattern_problem(pattern: str) -> str | None:
    """Why the linear-time engine that enforces patterns cannot run ``pattern``, or None.
    Asked of that engine itself (pydantic-core's, as the models will use it)."""
    from pydantic_core import SchemaError, SchemaValidator, core_schema

    try:
        SchemaValidator(core_schema.str_schema(pattern=pattern, regex_engine="rust-regex"))
    except SchemaError as exc:
        reason = str(exc).strip().splitlines()[-1].removeprefix("error: ")
        return (
            "pattern needs a backtracking regular expression engine, which an attacker's "
            f"body could keep busy for seconds; only linear-time patterns are enforced ({reason})"
        )
    return None
