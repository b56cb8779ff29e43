"""A body for every webhook of a spec, made from its schema, for vendors whose specs carry few
examples (Resend's none): the required properties only, each the simplest value its schema
allows (a ``const``, an enum's first value, the first member of a union), so that every event
model is exercised by at least one body its own spec says is valid."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_FORMATS = {
    "date-time": "2024-05-01T12:00:00Z", "date": "2024-05-01", "time": "12:00:00Z",
    "uri": "https://example.com/x", "url": "https://example.com/x",
    "uri-template": "https://example.com/{x}", "email": "someone@example.com",
    "uuid": "0b989ba4-242f-11e5-81e1-c7b6966d2516", "ipv4": "192.0.2.1", "ipv6": "2001:db8::1",
}  # fmt: skip


def resolve(doc: Mapping[str, Any], node: Any) -> Any:
    while isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
        target: Any = doc
        for part in node["$ref"][2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def merge(doc: Mapping[str, Any], first: Any, second: Any) -> dict[str, Any]:
    """One schema a value of both must match (for the simple shapes ``allOf`` refines): the
    first's keywords kept (a format), the second's narrowing added (a const, an enum),
    properties merged by name, ``required`` joined."""
    a, b = resolve(doc, first), resolve(doc, second)
    if not isinstance(a, Mapping) or not a:
        return dict(b) if isinstance(b, Mapping) else {}
    if not isinstance(b, Mapping):
        return dict(a)
    out = {**b, **a}
    if "type" in a and "type" in b:
        # The types both allow; an integer is a number too.
        ta = {a["type"]} if isinstance(a["type"], str) else set(a["type"])
        tb = {b["type"]} if isinstance(b["type"], str) else set(b["type"])
        ta |= {"integer"} if "number" in ta else set()
        tb |= {"integer"} if "number" in tb else set()
        both = ta & tb
        if "number" in both and not ("number" in a["type"] and "number" in b["type"]):
            both.discard("number")
        out["type"] = sorted(both, key=lambda t: (t == "null", t))
    for key in ("const", "enum"):
        if key in b:
            out[key] = b[key]
    props_a, props_b = a.get("properties") or {}, b.get("properties") or {}
    if props_a or props_b:
        out["properties"] = {
            name: merge(doc, props_a[name], props_b[name]) if name in props_a and name in props_b
            else props_a.get(name, props_b.get(name))
            for name in {**props_a, **props_b}
        }  # fmt: skip
        out["required"] = sorted({*(a.get("required") or []), *(b.get("required") or [])})
    return out


def body_for(doc: Mapping[str, Any], schema: Any, depth: int = 0) -> Any:
    schema = resolve(doc, schema)
    if not isinstance(schema, Mapping) or depth > 30:
        return None
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return next((v for v in enum if v is not None), None)
    if isinstance(schema.get("allOf"), list):
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for member in schema["allOf"]:
            merged = merge(doc, merged, member)
        return body_for(doc, merged, depth + 1)
    for key in ("oneOf", "anyOf"):
        members = schema.get(key)
        if isinstance(members, list) and members:
            typed = [m for m in members if resolve(doc, m) != {"type": "null"}]
            return body_for(doc, (typed or members)[0], depth + 1)
    types = schema.get("type")
    if isinstance(types, list):
        types = next((t for t in types if t != "null"), "null")
    if types is None and "properties" in schema:
        types = "object"
    if types == "object":
        properties = schema.get("properties") or {}
        required = schema.get("required") or []
        return {
            name: body_for(doc, properties[name], depth + 1)
            for name in required
            if name in properties
        }
    if types == "array":
        count = schema.get("minItems", 0)
        return [body_for(doc, schema.get("items", {}), depth + 1) for _ in range(count)]
    if types == "string":
        return _FORMATS.get(str(schema.get("format")), "x")
    if types == "integer":
        return 1
    if types == "number":
        return 1.5
    if types == "boolean":
        return True
    return None


def operation_body(doc: Mapping[str, Any], item: Any) -> tuple[Mapping[str, Any], Any]:
    """The operation and its JSON body's schema."""
    operation = resolve(doc, item)["post"]
    media = resolve(doc, operation["requestBody"])["content"]["application/json"]
    return operation, media["schema"]


def spec_examples(doc: Mapping[str, Any], item: Any) -> list[Any]:
    """The examples the spec gives of a webhook's body."""
    operation = resolve(doc, item)["post"]
    media = resolve(doc, operation["requestBody"])["content"]["application/json"]
    found = [media["example"]] if "example" in media else []
    for example in (media.get("examples") or {}).values():
        example = resolve(doc, example)
        if "value" in example:
            found.append(example["value"])
    return found
