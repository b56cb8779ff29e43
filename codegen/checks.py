"""What a spec must be for the generated code to import and validate: schema shapes,
enforced constraints, and a Python name of its own for every webhook. Each problem is
reported with its JSON pointer."""

from __future__ import annotations

import re
from collections.abc import Mapping

from . import constraints, naming, schemas
from .ir import SCHEMA_PREFIX, Schema, Webhook
from .reading import Reading

JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})
# How many schemas deep a payload may nest (properties in properties, items, compositions,
# through $refs). pydantic builds a model's validator recursively, and Python stops at about
# 65 levels of such nesting when called from the top of a stack: a deeper spec generated
# models that could not read a single valid body. Below that, room for the caller's frames.
MAX_NESTING = 48
RESERVED_HANDLER_NAMES = frozenset({"on_unknown"})
SAFE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Checks:
    def __init__(self, reading: Reading) -> None:
        self.reading = reading

    def check_schema(self, schema: Schema, at: tuple[str, ...]) -> None:
        """Refuse what would generate code that cannot import or validate, naming the place."""
        declared = schema.get("type")
        types = declared if isinstance(declared, list) else [declared] if declared else []
        for value in types:
            if value not in JSON_TYPES:
                self.reading.problem(f"unsupported type {value!r}", *at, "type")
        pattern = schema.get("pattern")
        if pattern is not None:
            try:
                re.compile(str(pattern))
            except re.error as exc:
                self.reading.problem(f"pattern is not a valid regular expression: {exc}", *at, "pattern")
        if self.reading.constraints:
            for message, key in constraints.problems(schema):
                self.reading.problem(message, *at, key)
        if "enum" in schema and not isinstance(schema["enum"], list):
            self.reading.problem("enum must be a list", *at, "enum")
        required = schema.get("required")
        if required is not None and not (
            isinstance(required, list) and all(isinstance(r, str) for r in required)
        ):
            self.reading.problem("required must be a list of property names", *at, "required")
        for key in schemas.SCHEMA_MAP_KEYS:
            if key in schema and not isinstance(schema[key], Mapping):
                self.reading.problem(f"{key} must be a map of schemas", *at, key)
        for path, child in schemas.iter_subschemas(schema):
            self.check_schema(child, (*at, *path))

    def check_nesting(self, webhooks: list[Webhook], reachable: Mapping[str, Schema]) -> None:
        """Refuse a payload nested deeper than the models can read (one problem per
        webhook, at the webhook). A $ref back to a schema it is inside of is recursion,
        which the models follow by reference: it adds no depth."""
        memo: dict[str, int] = {}

        def depth(schema: Schema, inside: frozenset[str]) -> int:
            ref = schema.get("$ref")
            if isinstance(ref, str) and ref.startswith(SCHEMA_PREFIX):
                name = ref[len(SCHEMA_PREFIX) :]
                if name in inside or name not in reachable:
                    return 0
                if name not in memo:
                    memo[name] = depth(reachable[name], inside | {name})
                return memo[name]
            children = [depth(child, inside) for _, child in schemas.iter_subschemas(schema)]
            return 1 + max(children, default=0)

        for hook in webhooks:
            found = depth(hook.payload_schema, frozenset())
            if found > MAX_NESTING:
                self.reading.problem(
                    f"the payload of {hook.event_type!r} nests {found} schemas deep; the models "
                    f"can read at most {MAX_NESTING} (pydantic builds them recursively)",
                    *self.reading.item_at[hook.event_type],
                )

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
                if hook.payload_key is None and name == hook.payload_schema_name:
                    # The event model is the schema the parser named for it.
                    owners[name] = hook.event_type
                    continue
                if name in owners:
                    self.reading.problem(
                        f"webhooks {owners[name]!r} and {hook.event_type!r} both become the "
                        f"Python name {name!r}; rename one of them",
                        *self.reading.item_at[hook.event_type],
                    )
                    reported.add(hook.event_type)
                elif name in reserved:
                    self.reading.problem(
                        f"webhook {hook.event_type!r} becomes the Python name {name!r}, which "
                        "is already taken by a schema or by the generated package",
                        *self.reading.item_at[hook.event_type],
                    )
                    reported.add(hook.event_type)
                owners[name] = hook.event_type
