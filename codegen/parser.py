"""Builds the intermediate model from a spec document: each webhook's payload found (under
``requestBody`` or ``responses."2xx"``), split from its envelope and named.

Reading is split by concern: ``layouts`` finds the webhooks in either published layout,
this module extracts each one, ``references`` follows ``$ref``s to every schema the payloads
reach, ``checks`` refuses what would not generate working code. Problems are collected in the
shared :class:`~.reading.Reading`, not raised one at a time, so a bad spec is reported in one
go.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import layouts, naming, schemas
from .checks import Checks
from .errors import json_pointer
from .ir import SCHEMA_PREFIX, PayloadField, Schema, Spec, Webhook
from .reading import Reading
from .references import References, unescape

_METHODS = ("post", "put", "patch", "get", "delete", "head", "options", "trace")


def parse(doc: Any, source: str, *, constraints: bool = False) -> Spec:
    """``constraints``: whether the generated models enforce the producer's value constraints
    (lengths, patterns, bounds); a tolerant reader leaves them to the producer."""
    return _Parser(doc, source, constraints).parse()


def describe_type(schema: Schema) -> str:
    """A short, human type for a schema (used in comments, never in code)."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    types = schema.get("type")
    if isinstance(types, list):
        return " | ".join("null" if t == "null" else describe_type({**schema, "type": t}) for t in types)
    if "enum" in schema:
        return "enum"
    if types == "array":
        items = schema.get("items")
        return f"list[{describe_type(items) if isinstance(items, Mapping) else 'Any'}]"
    if types == "object" or "properties" in schema:
        return "object"
    if isinstance(types, str):
        fmt = schema.get("format")
        return f"{types} ({fmt})" if fmt else types
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            return " | ".join(describe_type(s) for s in schema[key] if isinstance(s, Mapping))
    return "Any"


class _Parser:
    def __init__(self, doc: Any, source: str, constraints: bool) -> None:
        self.reading = Reading(doc, source, constraints)
        self.references = References(self.reading)
        self.checks = Checks(self.reading)
        self.follow = self.references.follow

    # -- the document ---------------------------------------------------------------------

    def parse(self) -> Spec:
        layout = layouts.read(self.reading.doc, self.reading.source)
        self.reading.components = layout.schemas
        # Every name the spec has, and what each becomes as a class: a name the generator
        # invents (a hoisted payload's) must be none of them.
        self.reading.taken = {
            *self.reading.components,
            *(naming.class_name(str(name)) for name in self.reading.components),
            *(naming.class_name(hook.event_type) for hook in layout.hooks),
        }
        webhooks = [w for w in (self.webhook(h.event_type, h.item, h.at) for h in layout.hooks) if w]
        reachable = self.references.reachable_schemas(webhooks)
        reachable, webhooks = self.references.safe_names(reachable, webhooks)
        reachable = schemas.usable_discriminators(reachable)
        self.checks.check_names(webhooks, set(reachable))
        self.checks.check_nesting(webhooks, reachable)
        if self.reading.problems:
            raise self.reading.fail()
        return Spec(
            source=self.reading.source,
            title=str(layout.info.get("title", "")),
            version=str(layout.info.get("version", "")),
            webhooks=tuple(webhooks),
            schemas=reachable,
            constraints=self.reading.constraints,
        )

    # -- one webhook ----------------------------------------------------------------------

    def webhook(self, event_type: str, item: Any, at: tuple[str, ...]) -> Webhook | None:
        self.reading.item_at[event_type] = at
        item, at = self.follow(item, at)
        if not isinstance(item, Mapping):
            self.reading.problem("a webhook must be a path item object", *at)
            return None
        methods = [m for m in _METHODS if isinstance(item.get(m), Mapping)]
        if not methods:
            self.reading.problem("the webhook has no operation (expected `post:`)", *at)
            return None
        method = "post" if "post" in methods else methods[0]
        operation = item[method]
        at = (*at, method)
        found = self.body_schema(operation, at)
        if found is None:
            return None
        media, body, body_at = found
        split = self.envelope(str(event_type), body, body_at)
        if split is None:
            return None
        payload_key, payload_schema, payload_at = split
        cls = naming.class_name(str(event_type))
        named = self.named_payload(cls, payload_schema, payload_at)
        if named is None:
            return None
        payload_schema = named
        tags = operation.get("tags")
        return Webhook(
            event_type=str(event_type),
            class_name=cls,
            handler_name=naming.handler_name(str(event_type)),
            summary=_text(operation.get("summary")),
            description=_text(operation.get("description")),
            tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
            payload_key=payload_key,
            payload_schema=payload_schema,
            payload_fields=self.fields_of(payload_schema),
            example=_example(media, self.follow(body, body_at)[0]),
            pointer=json_pointer(*at),
        )

    def body_schema(
        self, operation: Mapping[str, Any], at: tuple[str, ...]
    ) -> tuple[Mapping[str, Any], Schema, tuple[str, ...]] | None:
        """Find the payload's schema: ``requestBody`` as OpenAPI intends, or ``responses."200"``
        as incident.io's own spec has it. Both must lead to the same code."""
        holders: list[tuple[Any, tuple[str, ...]]] = []
        if "requestBody" in operation:
            holders.append((operation["requestBody"], (*at, "requestBody")))
        responses = operation.get("responses")
        if isinstance(responses, Mapping):
            codes = sorted(str(c) for c in responses if str(c).startswith("2"))
            for code in codes:
                holders.append((responses[code], (*at, "responses", code)))
        for holder, holder_at in holders:
            holder, holder_at = self.follow(holder, holder_at)
            content = holder.get("content") if isinstance(holder, Mapping) else None
            if not isinstance(content, Mapping):
                continue
            media_types = sorted(content, key=lambda m: (m != "application/json", m))
            for media_type in media_types:
                media = content[media_type]
                if "json" in media_type and isinstance(media, Mapping) and "schema" in media:
                    schema_at = (*holder_at, "content", media_type, "schema")
                    if not isinstance(media["schema"], Mapping):
                        self.reading.problem("a schema must be an object", *schema_at)
                        return None
                    return media, media["schema"], schema_at
        self.reading.problem(
            "no JSON payload schema: expected requestBody.content.application/json.schema "
            'or responses."200".content.application/json.schema',
            *at,
        )
        return None

    def envelope(
        self, event_type: str, body: Schema, at: tuple[str, ...]
    ) -> tuple[str, Schema, tuple[str, ...]] | None:
        """Split ``{"event_type": ..., "<key>": payload}`` into the key and the payload schema."""
        resolved, resolved_at = self.follow(body, at)
        if resolved is None:
            return None
        properties = resolved.get("properties")
        if not isinstance(properties, Mapping):
            self.reading.problem("the payload schema must be an object with properties", *resolved_at)
            return None
        if event_type in properties:
            key = event_type
        else:
            others = [k for k in properties if k != "event_type"]
            if len(others) != 1:
                self.reading.problem(
                    f"cannot tell which property holds the payload: expected one named "
                    f"{event_type!r} beside event_type, found {sorted(others)!r}",
                    *resolved_at,
                    "properties",
                )
                return None
            key = others[0]
        schema = properties[key]
        if not isinstance(schema, Mapping):
            self.reading.problem("a schema must be an object", *resolved_at, "properties", key)
            return None
        return str(key), schema, (*resolved_at, "properties", str(key))

    def named_payload(
        self, class_name: str, schema: Schema, at: tuple[str, ...]
    ) -> Schema | None:
        """Give an inline payload schema a name, so every payload is a named model."""
        ref = schema.get("$ref")
        if isinstance(ref, str) and len(schema) == 1:
            name = unescape(ref[len(SCHEMA_PREFIX) :])
            if not ref.startswith(SCHEMA_PREFIX) or "/" in name:
                self.reading.problem(
                    f"unsupported $ref {ref!r}: only #/components/schemas/<name> is supported",
                    *at,
                    "$ref",
                )
                return None
            if name not in self.reading.components:
                self.reading.problem(f"$ref {ref!r} does not resolve", *at, "$ref")
                return None
            return {"$ref": SCHEMA_PREFIX + name}
        name, number = class_name + "Payload", 2
        while name in self.reading.taken:
            name, number = f"{class_name}Payload{number}", number + 1
        self.reading.taken.add(name)
        self.reading.hoisted[name] = schema
        self.reading.hoisted_at[name] = at
        return {"$ref": SCHEMA_PREFIX + name}

    def fields_of(self, ref_schema: Schema) -> tuple[PayloadField, ...]:
        name = str(ref_schema["$ref"]).rsplit("/", 1)[-1]
        schema = self.reading.hoisted.get(name) or self.reading.components.get(name)
        if not isinstance(schema, Mapping):
            return ()
        # Described as the models read it, so either layout's spelling gives the same text.
        schema = schemas.tolerant(schema)
        properties = schema.get("properties")
        if not isinstance(properties, Mapping):
            return ()
        required = schema.get("required")
        if not isinstance(required, list):
            required = []
        return tuple(
            PayloadField(str(k), describe_type(v) if isinstance(v, Mapping) else "Any", k in required)
            for k, v in sorted(properties.items())
        )

    # -- references -----------------------------------------------------------------------

def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _example(media: Mapping[str, Any], body: Any) -> Any | None:
    if "example" in media:
        return media["example"]
    examples = media.get("examples")
    if isinstance(examples, Mapping):
        for name in sorted(examples):
            if isinstance(examples[name], Mapping) and "value" in examples[name]:
                return examples[name]["value"]
    return body.get("example") if isinstance(body, Mapping) else None
