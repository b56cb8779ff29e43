"""The schema rules of the intermediate model: what a payload schema becomes before any
emitter sees it.

A webhook consumer is a tolerant reader. incident.io adds properties, enum values and
variants as compatible changes, so nothing here may turn one of those into a rejected
delivery: ``additionalProperties: false`` is dropped, and enums and ``const`` that the
generated enum classes cannot hold open are widened to their JSON types. (A discriminated
union keeps its discriminator; the models' base class opens it to new variants.)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .ir import Schema

# Keys whose value is a schema, a list of schemas or a map of schemas (JSON Schema 2020-12).
SCHEMA_KEYS = (
    "items", "additionalProperties", "not", "if", "then", "else", "contains",
    "propertyNames", "unevaluatedProperties", "unevaluatedItems",
)  # fmt: skip
SCHEMA_LIST_KEYS = ("allOf", "anyOf", "oneOf", "prefixItems")
SCHEMA_MAP_KEYS = ("properties", "patternProperties", "dependentSchemas")
# The producer's limits on values, as opposed to types, presence and formats.
VALUE_CONSTRAINTS = (
    "minLength", "maxLength", "pattern", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "multipleOf", "minItems", "maxItems", "uniqueItems", "minProperties",
    "maxProperties",
)  # fmt: skip
# Keywords that only combine other schemas: a cycle through these alone has no value.
COMBINING_KEYS = ("allOf", "anyOf", "oneOf")


def iter_subschemas(schema: Schema) -> Iterator[tuple[tuple[str, ...], Schema]]:
    """Yield (relative path, child schema) for each direct child schema of ``schema``."""
    for key in SCHEMA_KEYS:
        child = schema.get(key)
        if isinstance(child, Mapping):
            yield (key,), child
    for key in SCHEMA_LIST_KEYS:
        children = schema.get(key)
        if isinstance(children, list):
            for index, child in enumerate(children):
                if isinstance(child, Mapping):
                    yield (key, str(index)), child
    for key in SCHEMA_MAP_KEYS:
        children = schema.get(key)
        if isinstance(children, Mapping):
            for name, child in children.items():
                if isinstance(child, Mapping):
                    yield (key, name), child


def map_subschemas(schema: Schema, change: Any) -> dict[str, Any]:
    """A copy of ``schema`` with ``change`` applied to every direct child schema."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in SCHEMA_KEYS and isinstance(value, Mapping):
            value = change(value)
        elif key in SCHEMA_LIST_KEYS and isinstance(value, list):
            value = [change(v) if isinstance(v, Mapping) else v for v in value]
        elif key in SCHEMA_MAP_KEYS and isinstance(value, Mapping):
            value = {k: change(v) if isinstance(v, Mapping) else v for k, v in value.items()}
        out[key] = value
    return out


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _open_enum(values: list[Any]) -> bool:
    """Whether the package's open enum classes (str or int based) can hold these values."""
    kinds = {json_type(v) for v in values if v is not None}
    return len(kinds) == 1 and kinds <= {"string", "integer"}


def _widened(schema: dict[str, Any], values: list[Any]) -> None:
    """Replace a fixed set of values by the JSON types they have."""
    types = sorted({json_type(v) for v in values})
    if "integer" in types and "number" in types:
        types.remove("integer")
    declared = schema.get("type")
    if declared is None or declared == "null" or declared == ["null"]:
        schema["type"] = types[0] if len(types) == 1 else types
    elif "null" in types and schema.get("nullable") is not True:
        listed = declared if isinstance(declared, list) else [declared]
        schema["type"] = listed if "null" in listed else [*listed, "null"]


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    declared = schema.get("type")
    if isinstance(declared, str) and "enum" not in schema:
        return {**schema, "type": [declared, "null"]}
    if isinstance(declared, list) and "enum" not in schema:
        return {**schema, "type": [*declared, "null"] if "null" not in declared else declared}
    # An enum, a $ref or a composition: "this, or null".
    return {"anyOf": [schema, {"type": "null"}]}


def _default_fits(schema: Mapping[str, Any]) -> bool:
    """Whether ``default`` is of a type the schema declares (any, when it declares none)."""
    declared = schema.get("type")
    types = set(declared) if isinstance(declared, list) else {declared} if declared else set()
    if not types or not all(isinstance(t, str) for t in types):
        return True
    if schema.get("nullable") is True:
        types.add("null")
    if "number" in types:
        types.add("integer")
    return json_type(schema["default"]) in types


def tolerant(schema: Schema) -> dict[str, Any]:
    """A copy of a schema that accepts whatever incident.io may compatibly send later.

    Also drops ``example``/``examples``: they are documentation, and as
    ``Field(examples=...)`` they would only slow down importing the models.
    """
    out = map_subschemas(schema, tolerant)
    out.pop("example", None)
    out.pop("examples", None)
    if "default" in out and not _default_fits(out):
        # A default of another type would be set, unchecked, where the type promises
        # otherwise (pydantic does not validate defaults): read as absent instead.
        del out["default"]
    if out.get("format") == "hostname":
        # datamodel-code-generator checks a host name against a pattern of its own, even
        # where no constraint is enforced: read as the string it is.
        del out["format"]
    for key in ("additionalProperties", "unevaluatedProperties"):
        if out.get(key) is False or out.get(key) == {"not": {}}:
            # Unknown properties are kept (the models' own rule): every keyword and spelling
            # that closes an object would fail the event when a property is added upstream.
            del out[key]
        elif key in out and out.get("properties"):
            # A type for the properties not listed, beside listed ones: a property added
            # upstream with another type would fail the event. Kept as sent, like any other
            # unknown property (a schema with no listed properties stays a typed map).
            del out[key]
    enum = out.get("enum")
    if isinstance(enum, list) and enum and not _open_enum(enum):
        del out["enum"]
        _widened(out, enum)
    elif isinstance(enum, list) and enum and "type" not in out:
        # Typed, so that it becomes one of the package's open enum classes.
        out["type"] = json_type(next(value for value in enum if value is not None))
    enum = out.get("enum")
    declared = out.get("type")
    nullable_type = isinstance(declared, list) and "null" in declared
    if isinstance(enum, list) and (None in enum or nullable_type):
        # An open enum class has one type and cannot hold null: the enum without null, or
        # null (3.1 spells a nullable enum ``type: [string, "null"]``).
        out["enum"] = [value for value in enum if value is not None]
        if isinstance(declared, list):
            rest = [t for t in declared if t != "null"]
            if len(rest) == 1:
                out["type"] = rest[0]
            elif rest:
                out["type"] = rest
            else:
                out.pop("type")
        out = {"anyOf": [out, {"type": "null"}]}
    if out.pop("nullable", None) is True:
        # OpenAPI 3.0's spelling of what 3.1 writes as a type list with "null".
        out = _nullable(out)
    if "const" in out:
        const = out["const"]
        if isinstance(const, (dict, list, float)) or const is None:
            # No Literal can hold these; the type still checks what matters.
            del out["const"]
            _widened(out, [const])
    return _nullable_union(out)


def _nullable_union(schema: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [<discriminated oneOf>, null]`` as ``oneOf: [..., null]`` with the
    discriminator: the model generator keeps a discriminator only in that spelling, and
    without it a new variant could not be told from a broken one."""
    members = schema.get("anyOf")
    if not (isinstance(members, list) and len(members) == 2 and set(schema) == {"anyOf"}):
        return schema
    null = {"type": "null"}
    unions = [
        m for m in members
        if isinstance(m, Mapping) and "discriminator" in m and isinstance(m.get("oneOf"), list)
    ]  # fmt: skip
    if null not in members or len(unions) != 1:
        return schema
    union = dict(unions[0])
    union["oneOf"] = [*union["oneOf"], null]
    return union


def without_constraints(schema: Schema) -> dict[str, Any]:
    """A copy of a schema that checks types and presence but none of the producer's value
    constraints: incident.io relaxes them without notice (``minLength: 1`` dropped from
    ``IncidentRoleV1``), and a consumer that enforced them would reject those deliveries."""
    out = map_subschemas(schema, without_constraints)
    for key in VALUE_CONSTRAINTS:
        out.pop(key, None)
    return out


def refs(schema: Schema, at: tuple[str, ...]) -> Iterator[tuple[str, tuple[str, ...]]]:
    """Every ``$ref`` in a schema, with where it stands (non-string ones as their repr)."""
    ref = schema.get("$ref")
    if isinstance(ref, str):
        yield ref, (*at, "$ref")
    elif "$ref" in schema:
        yield repr(schema["$ref"]), (*at, "$ref")
    for path, child in iter_subschemas(schema):
        yield from refs(child, (*at, *path))


def combined_refs(schema: Schema) -> Iterator[str]:
    """The ``$ref``s a schema *is* (itself, or through allOf/anyOf/oneOf), as opposed to
    those behind a property or an item: only the former can make a cycle with no value."""
    ref = schema.get("$ref")
    if isinstance(ref, str):
        yield ref
    for key in COMBINING_KEYS:
        members = schema.get(key)
        if isinstance(members, list):
            for member in members:
                if isinstance(member, Mapping):
                    yield from combined_refs(member)


def rename_refs(schema: Schema, renamed: Mapping[str, str]) -> dict[str, Any]:
    """A copy of ``schema`` whose ``$ref``s point at the new names."""
    out = map_subschemas(schema, lambda child: rename_refs(child, renamed))
    ref = out.get("$ref")
    if isinstance(ref, str) and ref in renamed:
        out["$ref"] = renamed[ref]
    return out


def _tag_is_literal(tag: Any) -> bool:
    """Whether a variant's tag property can be a ``Literal``: one or more string values, never
    null (a discriminated union needs each variant's tag to be a literal)."""
    if not isinstance(tag, Mapping) or "anyOf" in tag or "oneOf" in tag:
        return False
    declared = tag.get("type")
    if declared == "null" or (isinstance(declared, list) and "null" in declared):
        return False
    values = tag.get("enum") if "enum" in tag else [tag["const"]] if "const" in tag else None
    return isinstance(values, list) and bool(values) and all(isinstance(v, str) for v in values)


def usable_discriminators(found: Mapping[str, Schema]) -> dict[str, Schema]:
    """The schemas with every ``discriminator`` that cannot work dropped: one whose variants do
    not all have a non-null string tag (a tag made nullable upstream, say). The models would
    otherwise fail on first use; without the discriminator the union still validates each
    variant in turn, and only loses the opening to unknown tags."""

    def variant_tag(variant: Any, tag: str) -> Any:
        if isinstance(variant, Mapping) and isinstance(variant.get("$ref"), str):
            variant = found.get(str(variant["$ref"]).rsplit("/", 1)[-1])
        properties = variant.get("properties") if isinstance(variant, Mapping) else None
        return properties.get(tag) if isinstance(properties, Mapping) else None

    def fix(schema: Schema) -> dict[str, Any]:
        out = map_subschemas(schema, fix)
        discriminator = out.get("discriminator")
        tag = discriminator.get("propertyName") if isinstance(discriminator, Mapping) else None
        variants = out.get("oneOf", out.get("anyOf"))
        if isinstance(tag, str) and isinstance(variants, list):
            members = [v for v in variants if not (isinstance(v, Mapping) and v.get("type") == "null")]
            if not all(_tag_is_literal(variant_tag(v, tag)) for v in members):
                del out["discriminator"]
        return out

    return {name: fix(schema) for name, schema in found.items()}


def _is_union(schema: Any, found: Mapping[str, Schema]) -> bool:
    """A ``oneOf``/``anyOf`` and nothing else (directly or through a ``$ref``)."""
    seen: set[str] = set()
    while isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str) and len(schema) == 1:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        if name in seen:
            return False
        seen.add(name)
        schema = found.get(name)
    if not isinstance(schema, Mapping):
        return False
    return any(k in schema for k in ("oneOf", "anyOf")) and not schema.get("properties")


def intersections_without_unions(found: Mapping[str, Schema]) -> dict[str, Schema]:
    """The schemas with every union dropped from an ``allOf`` that has other members: the model
    generator makes an ``allOf`` a class with a base per member, and a union cannot be one (a
    union of the other member's own class made ``class X(Person, Person)``, a package that
    fails at import). The model then checks the other members only: it accepts what the spec
    accepts, and more, as a tolerant reader may."""

    def fix(schema: Schema) -> dict[str, Any]:
        out = map_subschemas(schema, fix)
        members = out.get("allOf")
        if isinstance(members, list) and len(members) > 1:
            kept = [m for m in members if not _is_union(m, found)]
            if kept and len(kept) < len(members):
                out["allOf"] = kept
        return out

    return {name: fix(schema) for name, schema in found.items()}
