"""Reads an OpenAPI 3.x document with a ``webhooks:`` map into the intermediate model.

Problems are collected, not raised one at a time, so a bad spec is reported in one go.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from . import constraints, layouts, naming, schemas
from .errors import SpecError, SpecProblem, json_pointer
from .ir import SCHEMA_PREFIX, PayloadField, Schema, Spec, Webhook

_METHODS = ("post", "put", "patch", "get", "delete", "head", "options", "trace")
RESERVED_HANDLER_NAMES = frozenset({"on_unknown"})
JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})
_SAFE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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
        self.doc = doc
        self.constraints = constraints
        self.source = source
        self.problems: list[SpecProblem] = []
        self.components: Mapping[str, Any] = {}
        self.hoisted: dict[str, Schema] = {}
        self.hoisted_at: dict[str, tuple[str, ...]] = {}
        self.item_at: dict[str, tuple[str, ...]] = {}
        self.taken: set[str] = set()

    def problem(self, message: str, *pointer: str | int) -> None:
        self.problems.append(SpecProblem(message, json_pointer(*pointer)))

    def fail(self) -> SpecError:
        return SpecError(self.source, self.problems)

    # -- the document ---------------------------------------------------------------------

    def parse(self) -> Spec:
        layout = layouts.read(self.doc, self.source)
        self.components = layout.schemas
        # Every name the spec has, and what each becomes as a class: a name the generator
        # invents (a hoisted payload's) must be none of them.
        self.taken = {
            *self.components,
            *(naming.class_name(str(name)) for name in self.components),
            *(naming.class_name(hook.event_type) for hook in layout.hooks),
        }
        webhooks = [w for w in (self.webhook(h.event_type, h.item, h.at) for h in layout.hooks) if w]
        reachable = self.reachable_schemas(webhooks)
        reachable, webhooks = self.safe_names(reachable, webhooks)
        self.check_names(webhooks, set(reachable))
        if self.problems:
            raise self.fail()
        return Spec(
            source=self.source,
            title=str(layout.info.get("title", "")),
            version=str(layout.info.get("version", "")),
            webhooks=tuple(webhooks),
            schemas=reachable,
            constraints=self.constraints,
        )

    # -- one webhook ----------------------------------------------------------------------

    def webhook(self, event_type: str, item: Any, at: tuple[str, ...]) -> Webhook | None:
        self.item_at[event_type] = at
        item, at = self.follow(item, at)
        if not isinstance(item, Mapping):
            self.problem("a webhook must be a path item object", *at)
            return None
        methods = [m for m in _METHODS if isinstance(item.get(m), Mapping)]
        if not methods:
            self.problem("the webhook has no operation (expected `post:`)", *at)
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
                        self.problem("a schema must be an object", *schema_at)
                        return None
                    return media, media["schema"], schema_at
        self.problem(
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
            self.problem("the payload schema must be an object with properties", *resolved_at)
            return None
        if event_type in properties:
            key = event_type
        else:
            others = [k for k in properties if k != "event_type"]
            if len(others) != 1:
                self.problem(
                    f"cannot tell which property holds the payload: expected one named "
                    f"{event_type!r} beside event_type, found {sorted(others)!r}",
                    *resolved_at,
                    "properties",
                )
                return None
            key = others[0]
        schema = properties[key]
        if not isinstance(schema, Mapping):
            self.problem("a schema must be an object", *resolved_at, "properties", key)
            return None
        return str(key), schema, (*resolved_at, "properties", str(key))

    def named_payload(
        self, class_name: str, schema: Schema, at: tuple[str, ...]
    ) -> Schema | None:
        """Give an inline payload schema a name, so every payload is a named model."""
        ref = schema.get("$ref")
        if isinstance(ref, str) and len(schema) == 1:
            name = _unescape(ref[len(SCHEMA_PREFIX) :])
            if not ref.startswith(SCHEMA_PREFIX) or "/" in name:
                self.problem(
                    f"unsupported $ref {ref!r}: only #/components/schemas/<name> is supported",
                    *at,
                    "$ref",
                )
                return None
            if name not in self.components:
                self.problem(f"$ref {ref!r} does not resolve", *at, "$ref")
                return None
            return {"$ref": SCHEMA_PREFIX + name}
        name, number = class_name + "Payload", 2
        while name in self.taken:
            name, number = f"{class_name}Payload{number}", number + 1
        self.taken.add(name)
        self.hoisted[name] = schema
        self.hoisted_at[name] = at
        return {"$ref": SCHEMA_PREFIX + name}

    def fields_of(self, ref_schema: Schema) -> tuple[PayloadField, ...]:
        name = str(ref_schema["$ref"]).rsplit("/", 1)[-1]
        schema = self.hoisted.get(name) or self.components.get(name)
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

    def follow(self, node: Any, at: tuple[str, ...]) -> tuple[Any, tuple[str, ...]]:
        """Resolve a chain of local ``$ref`` objects, reporting dangling or looping ones."""
        seen: set[str] = set()
        while isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if ref in seen:
                self.problem(f"$ref loop through {ref!r}", *at, "$ref")
                return None, at
            seen.add(ref)
            target = self.resolve(ref)
            if target is None:
                self.problem(f"$ref {ref!r} does not resolve", *at, "$ref")
                return None, at
            node, at = target, tuple(_unescape(p) for p in ref[2:].split("/"))
        return node, at

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            return None
        node: Any = self.doc
        for part in ref[2:].split("/"):
            part = _unescape(part)
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return None
        return node

    def reachable_schemas(self, webhooks: list[Webhook]) -> dict[str, Schema]:
        """Every named schema a payload reaches, checking each ``$ref`` on the way."""
        found: dict[str, Schema] = {}
        pending = [w.payload_schema_name for w in webhooks]
        while pending:
            name = pending.pop()
            if name in found:
                continue
            at: tuple[str, ...]
            if name in self.hoisted:
                schema, at = self.hoisted[name], self.hoisted_at[name]
            else:
                schema, at = self.components[name], ("components", "schemas", name)
            if not isinstance(schema, Mapping):
                self.problem("a schema must be an object", *at)
                continue
            found[name] = schemas.tolerant(schema)
            self.check_schema(schema, at)
            for ref, ref_at in schemas.refs(schema, at):
                if not ref.startswith(SCHEMA_PREFIX) or "/" in ref[len(SCHEMA_PREFIX) :]:
                    self.problem(
                        f"unsupported $ref {ref!r}: only #/components/schemas/<name> is supported",
                        *ref_at,
                    )
                elif _unescape(ref[len(SCHEMA_PREFIX) :]) not in self.components:
                    self.problem(f"$ref {ref!r} does not resolve", *ref_at)
                else:
                    pending.append(_unescape(ref[len(SCHEMA_PREFIX) :]))
        self.check_cycles(found)
        return dict(sorted(found.items()))

    def safe_names(
        self, found: dict[str, Schema], webhooks: list[Webhook]
    ) -> tuple[dict[str, Schema], list[Webhook]]:
        """OpenAPI allows schema names such as ``v1.Incident``; a class cannot have them, and
        the model emitter would read the dot as a module path. Such names become class names
        by the same rule as event types (``V1Incident``)."""
        renamed: dict[str, str] = {}
        taken = {name for name in found if _SAFE_NAME.fullmatch(name)}
        for name in sorted(found):
            if _SAFE_NAME.fullmatch(name):
                continue
            new = naming.class_name(name)
            if new in taken:
                self.problem(
                    f"schema {name!r} would become the class {new!r}, which another schema "
                    "already is; rename one of them",
                    "components", "schemas", name,
                )  # fmt: skip
                continue
            taken.add(new)
            renamed[SCHEMA_PREFIX + name.replace("~", "~0").replace("/", "~1")] = SCHEMA_PREFIX + new
            renamed[SCHEMA_PREFIX + name] = SCHEMA_PREFIX + new
        if not renamed:
            return found, webhooks
        schemas_out = {
            renamed.get(SCHEMA_PREFIX + name, SCHEMA_PREFIX + name)[len(SCHEMA_PREFIX) :]:
            schemas.rename_refs(schema, renamed)
            for name, schema in found.items()
        }  # fmt: skip
        hooks = [
            replace(hook, payload_schema=schemas.rename_refs(hook.payload_schema, renamed))
            for hook in webhooks
        ]
        return dict(sorted(schemas_out.items())), hooks

    def check_cycles(self, found: Mapping[str, Schema]) -> None:
        """Refuse schemas that are each other through ``$ref``/allOf/anyOf/oneOf alone, with
        no property or item in between: no value satisfies them, and pydantic recurses
        without end building a validator for them (a crash at the first parse)."""
        edges = {
            name: sorted({_unescape(r[len(SCHEMA_PREFIX) :]) for r in schemas.combined_refs(s)})
            for name, s in found.items()
        }
        # Peel off every schema that leads nowhere or only to peeled ones; what is left is on
        # a loop or leads into one.
        left = {name: [t for t in targets if t in edges] for name, targets in edges.items()}

        def peel() -> None:
            while stuck := [n for n, targets in left.items() if not any(t in left for t in targets)]:
                for name in stuck:
                    del left[name]

        peel()
        while left:
            walk = [min(left)]
            while True:
                step = next(t for t in left[walk[-1]] if t in left)
                if step in walk:
                    loop = [*walk[walk.index(step) :], step]
                    break
                walk.append(step)
            at = self.hoisted_at.get(loop[0], ("components", "schemas", loop[0]))
            self.problem(
                "schemas that are only each other, with no property in between "
                f"({' -> '.join(loop)}): no value can match them",
                *at,
            )
            for name in walk:
                del left[name]
            peel()

    def check_schema(self, schema: Schema, at: tuple[str, ...]) -> None:
        """Refuse what would generate code that cannot import or validate, naming the place."""
        declared = schema.get("type")
        types = declared if isinstance(declared, list) else [declared] if declared else []
        for value in types:
            if value not in JSON_TYPES:
                self.problem(f"unsupported type {value!r}", *at, "type")
        pattern = schema.get("pattern")
        if pattern is not None:
            try:
                re.compile(str(pattern))
            except re.error as exc:
                self.problem(f"pattern is not a valid regular expression: {exc}", *at, "pattern")
        if self.constraints:
            for message, key in constraints.problems(schema):
                self.problem(message, *at, key)
        if "enum" in schema and not isinstance(schema["enum"], list):
            self.problem("enum must be a list", *at, "enum")
        required = schema.get("required")
        if required is not None and not (
            isinstance(required, list) and all(isinstance(r, str) for r in required)
        ):
            self.problem("required must be a list of property names", *at, "required")
        for key in schemas.SCHEMA_MAP_KEYS:
            if key in schema and not isinstance(schema[key], Mapping):
                self.problem(f"{key} must be a map of schemas", *at, key)
        for path, child in schemas.iter_subschemas(schema):
            self.check_schema(child, (*at, *path))

    # -- names ----------------------------------------------------------------------------

    def check_names(self, webhooks: list[Webhook], schema_names: set[str]) -> None:
        """Each webhook needs a class and a method name of its own; one problem per webhook."""
        reported: set[str] = set()
        for attr, reserved in (
            ("class_name", naming.PUBLIC_NAMES | schema_names),
            ("handler_name", RESERVED_HANDLER_NAMES),
        ):
            owners: dict[str, str] = {}
            for hook in webhooks:
                name = getattr(hook, attr)
                if hook.event_type in reported:
                    continue
                if name in owners:
                    self.problem(
                        f"webhooks {owners[name]!r} and {hook.event_type!r} both become the "
                        f"Python name {name!r}; rename one of them",
                        *self.item_at[hook.event_type],
                    )
                    reported.add(hook.event_type)
                elif name in reserved:
                    self.problem(
                        f"webhook {hook.event_type!r} becomes the Python name {name!r}, which "
                        "is already taken by a schema or by the generated package",
                        *self.item_at[hook.event_type],
                    )
                    reported.add(hook.event_type)
                owners[name] = hook.event_type


def _unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


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
