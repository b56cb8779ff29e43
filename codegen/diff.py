"""What changed between two specs, classed from the point of view of code that consumes the
payloads: a change that can break such code is ``breaking``, anything else ``compatible``.
A value constraint that the generated models do not enforce (the default) changes nothing
for them, and is ``informational``. Public Python names that the new package no longer has
(a renamed nested schema renames its class) are ``source`` changes: no payload changed, but
code importing the old name breaks.

Changes are found by walking each webhook's payload schema in both specs side by side,
through ``$ref``s. A change inside a shared schema is reported once, at the schema where it
happened (``IncidentV2.summary``), with every webhook it reaches.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .ir import SCHEMA_PREFIX, Schema, Spec
from .schemas import VALUE_CONSTRAINTS, json_type

Severity = Literal["breaking", "source", "compatible", "informational"]
SEVERITIES: tuple[Severity, ...] = ("breaking", "source", "compatible", "informational")
_MISSING = object()
# Lower bounds loosen as they fall, upper bounds as they rise; the rest only by going away.
_LOWER = frozenset({"minLength", "minimum", "exclusiveMinimum", "minItems", "minProperties"})
_UPPER = frozenset({"maxLength", "maximum", "exclusiveMaximum", "maxItems", "maxProperties"})


@dataclass(frozen=True)
class Change:
    severity: Severity
    kind: str
    location: str
    detail: str


@dataclass
class Report:
    changes: dict[Change, set[str]] = field(default_factory=dict)

    def add(self, change: Change, webhook: str) -> None:
        self.changes.setdefault(change, set()).add(webhook)

    def ordered(self) -> list[tuple[Change, list[str]]]:
        return sorted(
            ((c, sorted(w)) for c, w in self.changes.items()),
            key=lambda item: (SEVERITIES.index(item[0].severity), item[0].location, item[0].kind),
        )

    def count(self, severity: Severity) -> int:
        return sum(1 for change in self.changes if change.severity == severity)

    @property
    def has_breaking(self) -> bool:
        """Breaking for payloads or for code that imports the package's names."""
        return self.count("breaking") + self.count("source") > 0


def compare(old: Spec, new: Spec, *, source: bool = True) -> Report:
    """``source``: also compare the public Python names of the two generated packages (this
    runs the model generator on both specs)."""
    report = Report()
    old_hooks = {h.event_type: h for h in old.webhooks}
    new_hooks = {h.event_type: h for h in new.webhooks}
    for event_type in sorted(old_hooks.keys() - new_hooks.keys()):
        report.add(Change("breaking", "webhook removed", event_type, ""), event_type)
    for event_type in sorted(new_hooks.keys() - old_hooks.keys()):
        report.add(Change("compatible", "webhook added", event_type, ""), event_type)
    for event_type in sorted(old_hooks.keys() & new_hooks.keys()):
        was, now = old_hooks[event_type], new_hooks[event_type]
        if was.payload_key != now.payload_key:
            detail = f"{was.payload_key} -> {now.payload_key}"
            report.add(Change("breaking", "payload key changed", event_type, detail), event_type)
        walker = _Walker(old.schemas, new.schemas, report, event_type, new.constraints)
        walker.walk(was.payload_schema, now.payload_schema, event_type)
    if source:
        # Names that go with a removed enum value are already reported as that. Those of a
        # removed webhook are listed too: its class and handler method are what users grep for.
        removed_values = {c.detail for c in report.changes if c.kind == "enum value removed"}
        old_names, new_names = python_names(old), python_names(new)
        for name in sorted(old_names.keys() - new_names.keys()):
            what, value = old_names[name]
            if what == "enum member" and value in removed_values:
                continue
            report.add(Change("source", "Python name removed", name, what), "(package)")
    return report


def python_names(spec: Spec) -> dict[str, tuple[str, str]]:
    """Public name -> (what it is, its JSON value for an enum member), for every name code
    may import from the generated package: model classes, enum members, handler methods."""
    from .emit.models import render_models  # the model generator is slow to import

    names = {hook.class_name: ("event model", "") for hook in spec.webhooks}
    for hook in spec.webhooks:
        names[f"WebhookHandlers.{hook.handler_name}"] = ("handler method", "")
    for node in ast.parse(render_models(spec, "incident_webhooks", "")).body:
        if not isinstance(node, ast.ClassDef):
            continue
        names.setdefault(node.name, ("model class", ""))
        if any(isinstance(b, ast.Name) and b.id in ("StrEnum", "IntEnum") for b in node.bases):
            for item in node.body:
                if isinstance(item, ast.Assign) and isinstance(item.targets[0], ast.Name):
                    value = item.value.value if isinstance(item.value, ast.Constant) else None
                    member = f"{node.name}.{item.targets[0].id}"
                    names[member] = ("enum member", json.dumps(value))
    return names


def _types(schema: Schema) -> tuple[frozenset[str], bool]:
    """(non-null types, nullable), for OpenAPI 3.1 type lists and 3.0 ``nullable``."""
    declared = schema.get("type")
    types = set(declared) if isinstance(declared, list) else {declared} if declared else set()
    nullable = "null" in types or schema.get("nullable") is True
    if schema.get("enum") is not None and None in schema["enum"]:
        nullable = True
    for key in ("anyOf", "oneOf"):
        variants = schema.get(key)
        if isinstance(variants, list) and any(
            isinstance(v, Mapping) and v.get("type") == "null" for v in variants
        ):
            nullable = True
    return frozenset(str(t) for t in types - {"null"}), nullable


def _nullable_through(schema: Schema, table: Mapping[str, Schema], seen: frozenset[str] = frozenset()) -> bool:
    """Whether ``schema`` takes null, seen through ``$ref``s and compositions: its own type,
    the schema a ``$ref`` names, any member of ``anyOf``/``oneOf``, every member of
    ``allOf``. Nullability compared at one level only (the place of use, or the named
    schema) calls a property that moves between ``$ref: N`` (N nullable) and
    ``anyOf: [$ref: N, null]`` "became nullable" when nothing changed."""
    if _types(schema)[1]:
        return True
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(SCHEMA_PREFIX):
        name = ref[len(SCHEMA_PREFIX) :]
        return name not in seen and _nullable_through(table.get(name, {}), table, seen | {name})
    for key in ("anyOf", "oneOf"):
        members = schema.get(key)
        if isinstance(members, list) and any(isinstance(m, Mapping) and _nullable_through(m, table, seen) for m in members):
            return True
    members = schema.get("allOf")
    return (
        isinstance(members, list)
        and bool(members)
        and all(isinstance(m, Mapping) and _nullable_through(m, table, seen) for m in members)
    )


def _non_null_variant(schema: Schema) -> Schema:
    """``anyOf: [X, {type: null}]`` is X that may be null; compare X itself."""
    for key in ("anyOf", "oneOf"):
        variants = schema.get(key)
        if isinstance(variants, list):
            rest = [v for v in variants if not (isinstance(v, Mapping) and v.get("type") == "null")]
            if len(rest) == 1 and isinstance(rest[0], Mapping):
                return rest[0]
    return schema


def _properties(schema: Schema) -> Mapping[str, Any]:
    properties = schema.get("properties")
    return properties if isinstance(properties, Mapping) else {}


def _follow(
    schema: Schema, table: Mapping[str, Schema], seen: set[str]
) -> tuple[Schema, str | None]:
    """The schema at the end of a chain of ``$ref``s (``A -> B -> C``) and its name; a loop
    (a name already in ``seen``) ends it with an empty schema."""
    name: str | None = None
    while isinstance(schema.get("$ref"), str) and str(schema["$ref"]).startswith(SCHEMA_PREFIX):
        name = str(schema["$ref"])[len(SCHEMA_PREFIX) :]
        if name in seen:
            return {}, name
        seen.add(name)
        schema = table.get(name, {})
    return schema, name


def _numeric(types: frozenset[str]) -> frozenset[str]:
    """Integers are numbers: a number field takes every integer."""
    return types | {"integer"} if "number" in types else types


class _Walker:
    """Walks two schemas side by side. The question at every step: can a body that the new
    schema allows be refused by the old package? If it can, the change is breaking."""

    def __init__(
        self,
        old: Mapping[str, Schema],
        new: Mapping[str, Schema],
        report: Report,
        webhook: str,
        enforced: bool,
    ) -> None:
        self.old, self.new, self.report, self.webhook = old, new, report, webhook
        # Whether the generated models enforce value constraints.
        self.enforced = enforced
        self.seen: set[tuple[str, str]] = set()

    def change(self, severity: Severity, kind: str, location: str, detail: str = "") -> None:
        self.report.add(Change(severity, kind, location, detail), self.webhook)

    def resolve(self, schema: Schema, table: Mapping[str, Schema]) -> tuple[Schema, str | None]:
        """Follow a chain of ``$ref``s (``A -> B -> C``) to the schema at its end, and merge
        ``allOf`` members into one schema, so that a property moved into an ``allOf`` (or an
        alias put in between) is compared as what it is."""
        seen: set[str] = set()
        schema, name = _follow(schema, table, seen)
        return self.merge_all_of(schema, table, seen), name

    def merge_all_of(self, schema: Schema, table: Mapping[str, Schema], seen: set[str]) -> Schema:
        members = schema.get("allOf")
        if not isinstance(members, list):
            return schema
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        properties: dict[str, Any] = dict(_properties(merged))
        required: list[Any] = list(merged.get("required") or ())
        for member in members:
            if not isinstance(member, Mapping):
                continue
            part = self.merge_all_of(_follow(member, table, seen)[0], table, seen)
            for key, value in part.items():
                if key == "properties" and isinstance(value, Mapping):
                    for prop, prop_schema in value.items():
                        properties.setdefault(prop, prop_schema)
                elif key == "required" and isinstance(value, list):
                    required.extend(r for r in value if r not in required)
                else:
                    merged.setdefault(key, value)
        if properties:
            merged["properties"] = properties
        if required:
            merged["required"] = required
        return merged

    def variants(self, schema: Schema) -> list[Schema] | None:
        """The non-null members of ``anyOf``/``oneOf``, or None when it is not a union."""
        for key in ("anyOf", "oneOf"):
            members = schema.get(key)
            if isinstance(members, list):
                rest = [
                    m for m in members
                    if isinstance(m, Mapping) and not (m.get("type") == "null" and len(m) == 1)
                ]  # fmt: skip
                return rest
        return None

    def walk(self, old: Schema, new: Schema, location: str, *, nullability: bool = True) -> None:
        # Nullability is compared once, here, for the schema as a whole (through its $refs
        # and compositions), before the named schema (perhaps walked already) is resolved;
        # a union's variants are walked without it (the union's own covers them).
        if nullability:
            self.compare_nullable(_nullable_through(old, self.old), _nullable_through(new, self.new), location)
        old, old_name = self.resolve(_non_null_variant(old), self.old)
        new, new_name = self.resolve(_non_null_variant(new), self.new)
        if old_name and new_name:
            # A named schema is reported under its own name, once, however it is reached.
            location = new_name if old_name == new_name else location
            if (old_name, new_name) in self.seen:
                return
            self.seen.add((old_name, new_name))
        old_variants, new_variants = self.variants(old), self.variants(new)
        if old_variants is not None or new_variants is not None:
            self.compare_unions(old, new, old_variants, new_variants, location)
            return
        self.compare_types(old, new, location)
        self.compare_enums(old, new, location)
        self.compare_const(old, new, location)
        self.compare_constraints(old, new, location)
        self.compare_prefix_items(old, new, location)
        self.compare_properties(old, new, location)
        old_items, new_items = old.get("items"), new.get("items")
        if isinstance(old_items, Mapping) or isinstance(new_items, Mapping):
            self.walk(
                old_items if isinstance(old_items, Mapping) else {},
                new_items if isinstance(new_items, Mapping) else {},
                location + "[]",
            )
        old_extra, new_extra = old.get("additionalProperties"), new.get("additionalProperties")
        if isinstance(old_extra, Mapping):
            self.walk(old_extra, new_extra if isinstance(new_extra, Mapping) else {}, location + "{}")

    def compare_unions(
        self,
        old: Schema,
        new: Schema,
        old_variants: list[Schema] | None,
        new_variants: list[Schema] | None,
        location: str,
    ) -> None:
        """Every variant the new schema allows must be allowed by a variant of the old one (or
        by the old schema itself, when it was not a union)."""
        candidates = old_variants if old_variants is not None else [old]
        for index, variant in enumerate(new_variants if new_variants is not None else [new]):
            where = location if new_variants is None else f"{location}<{self.label(variant, index)}>"
            match = self.counterpart(variant, candidates)
            if match is None:
                if new_variants is not None and self.opened(old, variant):
                    self.change("compatible", "variant added", where)
                else:
                    self.change("breaking", "variant added" if new_variants else "type changed", where)
                continue
            self.walk(match, variant, where, nullability=False)

    def label(self, variant: Schema, index: int) -> str:
        ref = variant.get("$ref")
        if isinstance(ref, str):
            return ref.rsplit("/", 1)[-1]
        types = sorted(_types(variant)[0])
        return "|".join(types) if types else str(index)

    def counterpart(self, variant: Schema, candidates: list[Schema]) -> Schema | None:
        """The old variant a new one is compared with: the same named schema, else the one of
        the same JSON type, else (one candidate) that one."""
        ref = variant.get("$ref")
        for candidate in candidates:
            if isinstance(ref, str) and candidate.get("$ref") == ref:
                return candidate
        if variant in candidates:
            return variant  # unchanged: several inline objects are told apart by content
        kind = self.kind(variant, self.new)
        same = [c for c in candidates if self.kind(c, self.old) == kind]
        if len(same) > 1 and kind == "object":
            # The old object variant sharing the most property names (the first of equals).
            names = set(self.properties(variant, self.new))
            return max(same, key=lambda c: len(names & set(self.properties(c, self.old))))
        if len(same) == 1:
            return same[0]
        if len(candidates) == 1:
            return candidates[0]
        return None

    def properties(self, schema: Schema, table: Mapping[str, Schema]) -> Mapping[str, Any]:
        found = self.resolve(schema, table)[0].get("properties")
        return found if isinstance(found, Mapping) else {}

    def kind(self, schema: Schema, table: Mapping[str, Schema]) -> str:
        resolved = self.resolve(schema, table)[0]
        types = _types(resolved)[0]
        if len(types) == 1:
            return next(iter(types))
        if "properties" in resolved:
            return "object"
        return "|".join(sorted(types)) or "any"

    def opened(self, old: Schema, variant: Schema) -> bool:
        """The old models open a discriminated union: a variant with a tag they do not know
        arrives as its dict instead of failing."""
        discriminator = old.get("discriminator")
        if not isinstance(discriminator, Mapping) or not isinstance(discriminator.get("propertyName"), str):
            return False
        tag = discriminator["propertyName"]
        resolved = self.resolve(variant, self.new)[0]
        tag_schema = _properties(resolved).get(tag)
        values = set()
        if isinstance(tag_schema, Mapping):
            if "const" in tag_schema:
                values.add(json.dumps(tag_schema["const"]))
            for value in tag_schema.get("enum") or ():
                values.add(json.dumps(value))
        mapping = discriminator.get("mapping")
        known = {json.dumps(k) for k in mapping} if isinstance(mapping, Mapping) else set()
        return bool(values) and not values & known and isinstance(mapping, Mapping)

    def compare_nullable(self, old_null: bool, new_null: bool, location: str) -> None:
        if new_null and not old_null:
            self.change("breaking", "became nullable", location)
        elif old_null and not new_null:
            self.change("compatible", "no longer nullable", location)

    def compare_types(self, old: Schema, new: Schema, location: str) -> None:
        old_types, new_types = _types(old)[0], _types(new)[0]
        if old_types and not new_types:
            detail = f"{'|'.join(sorted(old_types))} -> any"
            self.change("breaking", "type removed", location, detail)
        elif old_types and not new_types <= _numeric(old_types):
            detail = f"{'|'.join(sorted(old_types))} -> {'|'.join(sorted(new_types))}"
            self.change("breaking", "type changed", location, detail)
        elif new_types != old_types and new_types:
            detail = f"{'|'.join(sorted(old_types)) or 'any'} -> {'|'.join(sorted(new_types))}"
            self.change("compatible", "type narrowed", location, detail)
        was, now = old.get("format"), new.get("format")
        if was != now:
            detail = f"{was or '(none)'} -> {now or '(none)'}"
            self.change("breaking" if was else "compatible", "format changed", location, detail)

    def compare_const(self, old: Schema, new: Schema, location: str) -> None:
        """The old models hold a ``const`` as a Literal: any other value is refused."""
        if "const" in old and (new.get("const", _MISSING) != old["const"]):
            now = json.dumps(new["const"]) if "const" in new else "(any value)"
            self.change("breaking", "const changed", location, f"{json.dumps(old['const'])} -> {now}")
        elif "const" in new and "const" not in old:
            # Narrowing, unless the value is one the old models refuse: of another JSON type,
            # or against their format (a const "fixed" on a date-time).
            value = new["const"]
            types = _numeric(_types(old)[0])
            fits = (not types or json_type(value) in types) and "format" not in old
            self.change("compatible" if fits else "breaking", "const added", location, json.dumps(value))

    def compare_prefix_items(self, old: Schema, new: Schema, location: str) -> None:
        """Arrays by position (``prefixItems``). The old models check every element against
        the same schema: ``items`` when it is one; with ``items: false``, any of the
        positions' schemas, and no more elements than there are positions; otherwise none
        (a list of anything). Each new position is compared with that."""
        was, now = old.get("prefixItems"), new.get("prefixItems")
        if not isinstance(was, list) and not isinstance(now, list):
            return
        was = [w for w in was if isinstance(w, Mapping)] if isinstance(was, list) else []
        now = [n for n in now if isinstance(n, Mapping)] if isinstance(now, list) else []
        old_items = old.get("items")
        element: Schema | None = None
        if isinstance(old_items, Mapping):
            element = old_items
        elif old_items is False and was:
            element = {"anyOf": was}
        if element is not None:
            for index, position in enumerate(now):
                self.walk(element, position, f"{location}[{index}]")
        if old_items is False and (len(now) > len(was) or new.get("items") is not False):
            self.change("breaking", "array may be longer", location, f"at most {len(was)} items before")

    def compare_enums(self, old: Schema, new: Schema, location: str) -> None:
        old_enum, new_enum = old.get("enum"), new.get("enum")
        if not isinstance(old_enum, list) or not isinstance(new_enum, list):
            return
        for value in [v for v in old_enum if v not in new_enum]:
            self.change("breaking", "enum value removed", location, json.dumps(value))
        for value in [v for v in new_enum if v not in old_enum]:
            self.change("compatible", "enum value added", location, json.dumps(value))

    def compare_constraints(self, old: Schema, new: Schema, location: str) -> None:
        for key in VALUE_CONSTRAINTS:
            was, now = old.get(key), new.get(key)
            if was == now:
                continue
            direction = _direction(key, was, now)
            detail = f"{key}: {json.dumps(was)} -> {json.dumps(now)}"
            if not self.enforced:
                severity: Severity = "informational"
            else:
                # Old code enforcing the old limit rejects data the new limit allows.
                severity = "compatible" if direction == "tightened" else "breaking"
            self.change(severity, f"constraint {direction}", location, detail)

    def compare_properties(self, old: Schema, new: Schema, location: str) -> None:
        old_props, new_props = _properties(old), _properties(new)
        old_required = set(old.get("required") or ())
        new_required = set(new.get("required") or ())
        for name in sorted(old_props.keys() - new_props.keys()):
            self.change("breaking", "property removed", f"{location}.{name}")
        old_extra = old.get("additionalProperties")
        for name in sorted(new_props.keys() - old_props.keys()):
            required = "required" if name in new_required else "optional"
            new_prop = new_props[name]
            if isinstance(old_extra, Mapping) and isinstance(new_prop, Mapping):
                # The old models read an unknown property by their additionalProperties.
                self.walk(old_extra, new_prop, f"{location}.{name}")
            else:
                self.change("compatible", "property added", f"{location}.{name}", required)
        for name in sorted(old_props.keys() & new_props.keys()):
            here = f"{location}.{name}"
            was, now = name in old_required, name in new_required
            if was and not now:
                self.change("breaking", "required -> optional", here)
            elif now and not was:
                self.change("compatible", "optional -> required", here)
            old_prop, new_prop = old_props[name], new_props[name]
            if isinstance(old_prop, Mapping) and isinstance(new_prop, Mapping):
                self.walk(old_prop, new_prop, here)


def _direction(key: str, was: Any, now: Any) -> str:
    if now is None or now is False:
        return "loosened"
    if was is None or was is False:
        return "tightened"
    try:
        if key in _LOWER:
            return "loosened" if now < was else "tightened"
        if key in _UPPER:
            return "loosened" if now > was else "tightened"
    except TypeError:  # 3.0's boolean exclusiveMinimum beside a 3.1 number
        pass
    return "changed"


_MARKS = {
    "breaking": "⚠️ breaking",
    "source": "⚠️ source",
    "compatible": "compatible",
    "informational": "info",
}


def render(report: Report, fmt: str, old_label: str, new_label: str) -> str:
    counts: dict[str, int] = {severity: report.count(severity) for severity in SEVERITIES}
    summary = ", ".join(f"{count} {severity}" for severity, count in counts.items())
    if fmt == "json":
        changes = [
            {
                "severity": c.severity,
                "kind": c.kind,
                "location": c.location,
                "detail": c.detail,
                "webhooks": hooks,
            }
            for c, hooks in report.ordered()
        ]
        body: dict[str, Any] = {"old": old_label, "new": new_label, **counts}
        body["changes"] = changes
        return json.dumps(body, indent=2) + "\n"
    if fmt == "markdown":
        if not report.changes:
            return f"### Webhook spec changes\n\nNo changes to webhook payloads ({summary}).\n"
        lines = [
            "### Webhook spec changes",
            "",
            f"`{old_label}` → `{new_label}`: **{summary}**",
            "",
            "| | change | where | detail | webhooks |",
            "|---|---|---|---|---|",
        ]
        for c, hooks in report.ordered():
            where = f"`{c.location}`"
            detail = c.detail.replace("|", "\\|")
            row = f"| {_MARKS[c.severity]} | {c.kind} | {where} | {detail} | {', '.join(hooks)} |"
            lines.append(row)
        return "\n".join(lines) + "\n"
    lines = [f"{old_label} -> {new_label}: {summary}"]
    for c, hooks in report.ordered():
        detail = f" ({c.detail})" if c.detail else ""
        lines.append(f"  {c.severity.upper():13} {c.kind}: {c.location}{detail}")
        lines.append(f"                webhooks: {', '.join(hooks)}")
    return "\n".join(lines) + "\n"
