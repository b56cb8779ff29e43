"""Builds the intermediate model from a spec document: each webhook's payload found (under
``requestBody`` or ``responses."2xx"``), split from its envelope and named.

Reading is split by concern: ``layouts`` finds the webhooks in either published layout,
this module extracts each one, ``references`` follows ``$ref``s to every schema the payloads
reach, ``checks`` refuses what would not generate working code. Problems are collected in the
shared :class:`~.reading.Reading`, not raised one at a time, so a bad spec is reported in one
go.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from . import envelopes, layouts, naming, schemas
from .checks import RESERVED_HANDLER_NAMES, Checks
from .errors import json_pointer
from .ir import (
    INCIDENT_IO,
    SCHEMA_PREFIX,
    Envelope,
    PayloadField,
    Schema,
    Spec,
    Webhook,
)
from .reading import Reading
from .references import References, unescape

_METHODS = ("post", "put", "patch", "get", "delete", "head", "options", "trace")


def parse(
    doc: Any, source: str, *, constraints: bool = False, envelope: Envelope | None = None
) -> Spec:
    """``constraints``: whether the generated models enforce the producer's value constraints
    (lengths, patterns, bounds); a tolerant reader leaves them to the producer.
    ``envelope``: the vendor's envelope as configured; None infers it (``codegen.envelopes``)."""
    return _Parser(doc, source, constraints, envelope).parse()


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


@dataclass(frozen=True)
class _Located:
    key: str
    operation: Mapping[str, Any]
    media: Mapping[str, Any]
    body: Schema
    body_at: tuple[str, ...]
    # The operation's pointer, and the webhook's (before any $ref), for messages.
    at: tuple[str, ...]
    item_at: tuple[str, ...]


class _Parser:
    def __init__(
        self, doc: Any, source: str, constraints: bool, envelope: Envelope | None
    ) -> None:
        self.reading = Reading(doc, source, constraints)
        self.references = References(self.reading)
        self.checks = Checks(self.reading)
        self.follow = self.references.follow
        self.configured = envelope
        self.envelope = envelope or INCIDENT_IO

    # -- the document ---------------------------------------------------------------------

    def parse(self) -> Spec:
        layout = layouts.read(self.reading.doc, self.reading.source)
        self.reading.components = layout.schemas
        # Every name the spec has, and what each becomes as a class: a name the generator
        # invents (a hoisted payload's) must be none of them.
        self.reading.taken = {
            *self.reading.components,
            *(naming.class_name(str(name)) for name in self.reading.components),
        }
        located = [x for x in (self.locate(h.event_type, h.item, h.at) for h in layout.hooks) if x]
        if self.reading.problems:
            raise self.reading.fail()
        self.envelope = self.choose_envelope(located)
        if self.envelope.payload == "event-key":
            # The event classes are named after the event types; a hoisted payload is not.
            self.reading.taken |= {naming.class_name(h.event_type) for h in layout.hooks}
        webhooks = [w for w in map(self.webhook, located) if w]
        self.check_event_types(webhooks)
        if self.envelope.payload != "event-key":
            webhooks = self.distinct_handlers(sorted(webhooks, key=lambda w: w.event_type))
        reachable = self.references.reachable_schemas(webhooks)
        reachable, webhooks = self.references.safe_names(reachable, webhooks)
        reachable = schemas.usable_discriminators(reachable)
        reachable = schemas.intersections_without_unions(reachable)
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
            envelope=self.envelope,
        )

    def choose_envelope(self, located: list[_Located]) -> Envelope:
        if self.configured is not None:
            return self.configured
        bodies = [envelopes.Body(x.key, x.operation, self.peek(x.body)) for x in located]
        # A body whose $ref does not resolve says nothing about the envelope; reading it
        # reports the $ref. With no body left, incident.io's reading reports each.
        bodies = [b for b in bodies if isinstance(b.schema, Mapping)]
        if not bodies:
            return INCIDENT_IO
        found = envelopes.infer(bodies, self.peek)
        if isinstance(found, str):
            self.reading.problem(found, *located[0].body_at)
            raise self.reading.fail()
        return found

    def peek(self, node: Any) -> Any:
        """``node`` with its ``$ref`` chain resolved, quietly: a dangling or looping one is
        reported where the schema is read, not while the envelope is inferred."""
        seen: set[str] = set()
        while isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
            if node["$ref"] in seen:
                return None
            seen.add(node["$ref"])
            node = self.references.resolve(node["$ref"])
        return node

    def distinct_handlers(self, webhooks: list[Webhook]) -> list[Webhook]:
        """Event types that read as one method name (``a.b`` and ``a_b``): the first in event
        type order keeps it, the next get ``_2``, ``_3``, ... (stable: a new webhook never
        renames an older one's method unless it sorts before it)."""
        taken = set(RESERVED_HANDLER_NAMES)
        named = []
        for hook in webhooks:
            name, number = hook.handler_name, 2
            while name in taken:
                name, number = f"{hook.handler_name}_{number}", number + 1
            taken.add(name)
            named.append(replace(hook, handler_name=name))
        return named

    def check_event_types(self, webhooks: list[Webhook]) -> None:
        """Two webhooks read as one event type could not be told apart on delivery."""
        seen: dict[str, str] = {}
        for hook in webhooks:
            if hook.event_type in seen:
                self.reading.problem(
                    f"webhooks at {seen[hook.event_type]} and {hook.pointer} are both the event "
                    f"type {hook.event_type!r}: a delivery could not tell them apart",
                    *self.reading.item_at[hook.event_type],
                )
            seen[hook.event_type] = hook.pointer

    # -- one webhook ----------------------------------------------------------------------

    def locate(self, key: str, item: Any, item_at: tuple[str, ...]) -> _Located | None:
        """The webhook's operation and body schema, whatever its envelope."""
        self.reading.item_at[key] = item_at
        item, at = self.follow(item, item_at)
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
        return _Located(str(key), operation, media, body, body_at, at, item_at)

    def webhook(self, found: _Located) -> Webhook | None:
        if self.envelope.payload == "event-key":
            return self.keyed_webhook(found)
        return self.body_webhook(found)

    def keyed_webhook(self, found: _Located) -> Webhook | None:
        """incident.io's envelope: ``{"event_type": ..., "<event type>": payload}``."""
        # Quietly: envelope_split follows (and reports) the body's $ref itself.
        event_type = self.named_type(self.peek(found.body)) or found.key
        self.reading.item_at[event_type] = found.item_at
        split = self.envelope_split(event_type, found.body, found.body_at)
        if split is None:
            return None
        payload_key, payload_schema, payload_at = split
        cls = naming.class_name(event_type)
        named = self.named_payload(cls, payload_schema, payload_at)
        if named is None:
            return None
        return self.described(found, event_type, cls, payload_key, named)

    def body_webhook(self, found: _Located) -> Webhook | None:
        """Every other envelope: the event model is the whole body, its tag narrowed to the
        webhook's own value (so that a union of them discriminates on it)."""
        envelope = self.envelope
        resolved, resolved_at = self.follow(found.body, found.body_at)
        if not isinstance(resolved, Mapping):
            return None
        schema = dict(resolved)
        header_value = action = None
        if envelope.type_field is not None:
            properties = resolved.get("properties")
            if not isinstance(properties, Mapping) or envelope.type_field not in properties:
                self.reading.problem(
                    f"the body has no property {envelope.type_field!r}, which names the event "
                    f"type in this spec's envelope ({envelope.kind}); set {envelopes.SETTING} "
                    "or [tool.codegen.envelope] type-field",
                    *resolved_at,
                )
                return None
            event_type = self.named_type(resolved) or found.key
            schema["properties"] = {
                **properties, envelope.type_field: {"type": "string", "const": event_type}
            }
            required = resolved.get("required")
            required = [str(r) for r in required] if isinstance(required, list) else []
            if envelope.type_field not in required:
                required.insert(0, envelope.type_field)
            schema["required"] = required
        else:
            # The header's value: GitHub's spec names it in the operationId
            # (``pull-request/review-requested``), spelled with hyphens where the header
            # has underscores (``pull_request``).
            operation_id = found.operation.get("operationId")
            base = operation_id.split("/", 1)[0] if isinstance(operation_id, str) else found.key
            header_value = base.replace("-", "_")
            if envelope.action_field is not None:
                action = envelopes.single_value(resolved, envelope.action_field, self.peek)
            event_type = f"{header_value}.{action}" if action else header_value
        self.reading.item_at.setdefault(event_type, found.item_at)
        doc = "\n\n".join(
            part for part in (_text(found.operation.get("summary")),
                              _text(found.operation.get("description"))) if part
        )  # fmt: skip
        if doc:
            schema["description"] = doc
        cls = self.event_class(event_type)
        self.reading.hoisted[cls] = schema
        self.reading.hoisted_at[cls] = resolved_at
        hook = self.described(found, event_type, cls, None, {"$ref": SCHEMA_PREFIX + cls})
        hook = replace(hook, header_value=header_value, action=action)
        # Scaffold comments describe the payload (``data``) where the envelope has one.
        payload = envelopes.properties(schema).get(envelope.payload)
        if isinstance(payload, Mapping) and isinstance(payload.get("$ref"), str):
            name = unescape(str(payload["$ref"])[len(SCHEMA_PREFIX) :])
            if name in self.reading.components:
                hook = replace(hook, payload_fields=self.fields_of({"$ref": SCHEMA_PREFIX + name}))
        return hook

    def named_type(self, body: Any) -> str | None:
        """The event type a body's tag property narrows to, when it does: that, not the
        webhook's key, is what deliveries carry."""
        field = self.envelope.type_field
        if field is None:
            return None
        return envelopes.single_value(body, field, self.peek)

    def event_class(self, event_type: str) -> str:
        """A class name of the event's own, stable whatever else the spec names: the event
        type's, else with ``Event``, else ``Webhook``, else numbered."""
        base = naming.class_name(event_type)
        numbered = (f"{base}Webhook{n}" for n in itertools.count(2))
        for name in itertools.chain((base, base + "Event", base + "Webhook"), numbered):
            if name not in self.reading.taken and name not in naming.PUBLIC_NAMES:
                self.reading.taken.add(name)
                return name
        raise AssertionError("unreachable")

    def described(
        self, found: _Located, event_type: str, cls: str, payload_key: str | None,
        payload_schema: Schema,
    ) -> Webhook:  # fmt: skip
        operation = found.operation
        tags = operation.get("tags")
        return Webhook(
            event_type=event_type,
            class_name=cls,
            handler_name=naming.handler_name(event_type),
            summary=_text(operation.get("summary")),
            description=_text(operation.get("description")),
            tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
            payload_key=payload_key,
            payload_schema=payload_schema,
            payload_fields=self.fields_of(payload_schema),
            example=_example(found.media, self.follow(found.body, found.body_at)[0]),
            pointer=json_pointer(*found.at),
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

    def envelope_split(
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
        beside = sorted(str(k) for k in properties if k not in ("event_type", key))
        if beside:
            # The event model holds event_type and the payload only: these would be read as
            # untyped extras, never as fields, so the package would not model what the spec
            # says the body is.
            self.reading.problem(
                f"the body has properties beside event_type and the payload {key!r}: "
                f"{beside!r}; incident.io's envelope has none. To model the whole body, set "
                '[tool.codegen.envelope] type-field = "event_type", payload = "body"',
                *resolved_at,
                "properties",
            )
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
