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
from fractions import Fraction
from typing import Any, TypeGuard

from .ir import Schema

COUNTS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties")
BOUNDS = ("minimum", "maximum")
EXCLUSIVE = ("exclusiveMinimum", "exclusiveMaximum")
PAIRS = (
    ("minLength", "maxLength"), ("minItems", "maxItems"), ("minProperties", "maxProperties"),
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
    empty = _empty_range(schema)
    if empty is not None:
        yield empty
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        problem = linear_pattern_problem(pattern)
        if problem is not None:
            yield problem, "pattern"
    elif pattern is not None:
        yield f"pattern must be a string, not {pattern!r}", "pattern"


def _exact(value: float) -> Fraction:
    """The number as the spec wrote it (0.1 is one tenth, not the nearest binary float):
    the models' own multipleOf check allows for that rounding."""
    return Fraction(repr(value)) if isinstance(value, float) else Fraction(value)


def _bound(schema: Schema, side: str) -> tuple[Fraction, bool, str] | None:
    """The tighter of the inclusive and exclusive bounds on one side ("minimum" or
    "maximum"), in every spelling: 3.1's numeric ``exclusiveMinimum``, 3.0's boolean one
    beside ``minimum``. (value, exclusive, the keywords that say it), or None."""
    exclusive_key = "exclusive" + side[0].upper() + side[1:]
    inclusive, exclusive = schema.get(side), schema.get(exclusive_key)
    found: list[tuple[Fraction, bool, str]] = []
    if _number(inclusive):
        if exclusive is True:  # OpenAPI 3.0
            found.append(
                (
                    _exact(inclusive),
                    True,
                    f"{side} {inclusive!r} with {exclusive_key}: true",
                )
            )
        else:
            found.append((_exact(inclusive), False, f"{side} {inclusive!r}"))
    if _number(exclusive):
        found.append((_exact(exclusive), True, f"{exclusive_key} {exclusive!r}"))
    if not found:
        return None
    # The tighter: the larger lower bound, the smaller upper one; exclusive wins a tie.
    lower = side == "minimum"
    return max(found, key=lambda b: (b[0] if lower else -b[0], b[1]))


def _empty_range(schema: Schema) -> tuple[str, str] | None:
    """(message, key) when the numeric bounds leave no value: above each other in any
    spelling, equal with one exclusive, no whole number between them for an integer, or
    no multiple of ``multipleOf`` between them."""
    low, high = _bound(schema, "minimum"), _bound(schema, "maximum")
    if low is None or high is None:
        return None
    (floor, open_floor, says_floor), (ceiling, open_ceiling, says_ceiling) = low, high
    key = says_floor.split()[0]
    said = f"{says_floor} and {says_ceiling}"
    if floor > ceiling:
        return f"{says_floor} is above {says_ceiling}: no value can match", key
    if floor == ceiling and (open_floor or open_ceiling):
        return f"{said}: no value can match", key
    types = schema.get("type")
    if types == "integer" or (
        isinstance(types, list) and "integer" in types and "number" not in types
    ):
        step: Fraction | None = Fraction(1)
    else:
        step = None
    multiple = schema.get("multipleOf")
    if _number(multiple) and multiple > 0:
        step = _exact(multiple) if step is None else _lcm(step, _exact(multiple))
    if step is not None:
        first = math.ceil(floor / step) * step
        if open_floor and first == floor:
            first += step
        if first > ceiling or (open_ceiling and first == ceiling):
            what = "whole number" if multiple is None else f"multiple of {multiple!r}"
            if multiple is not None and step != _exact(multiple):
                what = f"whole multiple of {multiple!r}"
            return f"{said}: no {what} lies between them, so no value can match", key
    return None


def _lcm(a: Fraction, b: Fraction) -> Fraction:
    """The least common multiple of two positive rationals."""
    numerator = math.lcm(a.numerator * b.denominator, b.numerator * a.denominator)
    return Fraction(numerator, a.denominator * b.denominator)


def linear_pattern_problem(pattern: str) -> str | None:
    """Why the linear-time engine that enforces patterns cannot run ``pattern``, or None.
    Asked of that engine itself (pydantic-core's, as the models will use it)."""
    from pydantic_core import SchemaError, SchemaValidator, core_schema

    try:
        SchemaValidator(
            core_schema.str_schema(pattern=pattern, regex_engine="rust-regex")
        )
    except SchemaError as exc:
        reason = str(exc).strip().splitlines()[-1].removeprefix("error: ")
        return (
            "pattern needs a backtracking regular expression engine, which an attacker's "
            f"body could keep busy for seconds; only linear-time patterns are enforced ({reason})"
        )
    return None
