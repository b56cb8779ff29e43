"""``$ref``s: following them through the document, the named schemas the payloads reach,
loops that leave a schema no value, and schema names that cannot be class names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from . import naming, schemas
from .checks import SAFE_NAME, Checks
from .ir import SCHEMA_PREFIX, Schema, Webhook
from .reading import Reading


def unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


class References:
    def __init__(self, reading: Reading) -> None:
        self.reading = reading
        self.checks = Checks(reading)

    def follow(self, node: Any, at: tuple[str, ...]) -> tuple[Any, tuple[str, ...]]:
        """Resolve a chain of local ``$ref`` objects, reporting dangling or looping ones."""
        seen: set[str] = set()
        while isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if ref in seen:
                self.reading.problem(f"$ref loop through {ref!r}", *at, "$ref")
                return None, at
            seen.add(ref)
            target = self.resolve(ref)
            if target is None:
                self.reading.problem(f"$ref {ref!r} does not resolve", *at, "$ref")
                return None, at
            node, at = target, tuple(unescape(p) for p in ref[2:].split("/"))
        return node, at

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            return None
        node: Any = self.reading.doc
        for part in ref[2:].split("/"):
            part = unescape(part)
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
            if name in self.reading.hoisted:
                schema, at = self.reading.hoisted[name], self.reading.hoisted_at[name]
            else:
                schema, at = self.reading.components[name], ("components", "schemas", name)
            if not isinstance(schema, Mapping):
                self.reading.problem("a schema must be an object", *at)
                continue
            found[name] = schemas.tolerant(schema)
            self.checks.check_schema(schema, at)
            for ref, ref_at in schemas.refs(schema, at):
                if not ref.startswith(SCHEMA_PREFIX) or "/" in ref[len(SCHEMA_PREFIX) :]:
                    self.reading.problem(
                        f"unsupported $ref {ref!r}: only #/components/schemas/<name> is supported",
                        *ref_at,
                    )
                elif unescape(ref[len(SCHEMA_PREFIX) :]) not in self.reading.components:
                    self.reading.problem(f"$ref {ref!r} does not resolve", *ref_at)
                else:
                    pending.append(unescape(ref[len(SCHEMA_PREFIX) :]))
        self.check_cycles(found)
        return dict(sorted(found.items()))

    def safe_names(
        self, found: dict[str, Schema], webhooks: list[Webhook]
    ) -> tuple[dict[str, Schema], list[Webhook]]:
        """OpenAPI allows schema names such as ``v1.Incident``; a class cannot have them, and
        the model emitter would read the dot as a module path. Such names become class names
        by the same rule as event types (``V1Incident``)."""
        renamed: dict[str, str] = {}
        taken = {name for name in found if SAFE_NAME.fullmatch(name)}
        for name in sorted(found):
            if SAFE_NAME.fullmatch(name):
                continue
            new = naming.class_name(name)
            if new in taken:
                self.reading.problem(
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
            name: sorted({unescape(r[len(SCHEMA_PREFIX) :]) for r in schemas.combined_refs(s)})
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
            at = self.reading.hoisted_at.get(loop[0], ("components", "schemas", loop[0]))
            self.reading.problem(
                "schemas that are only each other, with no property in between "
                f"({' -> '.join(loop)}): no value can match them",
                *at,
            )
            for name in walk:
                del left[name]
            peel()

