"""A seeded generator of small, random webhook specs, each with bodies that conform to it.

It draws from the JSON Schema features that have broken generators before: enums of mixed
types, ``const`` of every kind, nullable spellings of 3.0 and 3.1, formats, closed objects,
discriminated unions, recursion, ``$ref`` loops, dotted schema names, and property and event
names that collide with Python, pydantic or the package's own names. The same seed always
gives the same spec, so a failure is reproduced by its seed alone.

``python tests/fuzz_specs.py --seconds 600`` (``make fuzz``) runs it for as long as asked.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Value = Callable[[random.Random], Any]

HOSTILE_PROPERTIES = [
    "model_dump", "model_config", "json", "schema", "copy", "dict", "validate", "class",
    "from", "import", "None", "True", "self", "payload", "event_type", "_private", "__dunder__",
    "with space", "dash-ed", "dot.ted", "ünï", "1starts_with_digit", "UPPER", "fields",
]  # fmt: skip
HOSTILE_EVENTS = [
    "Field", "TypeAdapter", "Annotated", "Literal", "ValidationError", "Mapping", "Response",
    "StrEnum", "WebhookModel", "Any", "typing", "models", "json", "WebhookEvent", "verify",
    "x.y_v1", "a-b.c-d", "9lives.v1",
]  # fmt: skip
FORMATS = ["email", "date-time", "uuid", "date", None, None, None]


class SpecBuilder:
    def __init__(self, rng: random.Random, api_layout: bool = False) -> None:
        self.rng = rng
        # incident.io's API spec is OpenAPI 3.0: nullable is spelled `nullable: true` there.
        self.api_layout = api_layout
        self.components: dict[str, Any] = {}
        self.values: dict[str, Value] = {}

    def name(self) -> str:
        base = self.rng.choice(["Thing", "Item", "v1.Thing", "Incident", "Alert", "Node"])
        return f"{base}{len(self.components)}"

    def schema(self, depth: int) -> tuple[dict[str, Any], Value]:
        rng = self.rng
        kinds = ["string", "integer", "number", "boolean", "enum", "const", "nullable"]
        if depth < 3:
            kinds += ["object", "object", "array", "ref", "union"]
        kind = rng.choice(kinds)
        if kind == "string":
            fmt = rng.choice(FORMATS)
            samples = {
                "email": "someone@example.com", "date-time": "2021-08-17T13:28:57Z",
                "uuid": "6b7e0f1c-2a3b-4c5d-8e9f-0a1b2c3d4e5f", "date": "2021-08-17",
            }  # fmt: skip
            schema: dict[str, Any] = {"type": "string"}
            if fmt:
                schema["format"] = fmt
            if rng.random() < 0.3:
                schema |= {"minLength": 1, "maxLength": 50}
            text = samples.get(fmt or "", rng.choice(["a", "abc", "ünï", "x y"]))
            return schema, lambda r: text
        if kind == "integer":
            return {"type": "integer"}, lambda r: r.randint(-5, 5000)
        if kind == "number":
            return {"type": "number"}, lambda r: r.choice([0.5, 2.25, -1.5])
        if kind == "boolean":
            return {"type": "boolean"}, lambda r: r.choice([True, False])
        if kind == "enum":
            pools = [["a", "b", "c"], [1, 2, 3], ["a", 1, None, True], ["x", None], [1.5, 2.5]]
            values = rng.choice(pools)
            schema = {"enum": values}
            if all(isinstance(v, str) for v in values):
                schema["type"] = "string"
            open_values = values + (["added_later"] if isinstance(values[0], str) else [])
            return schema, lambda r: r.choice(open_values)
        if kind == "const":
            value = rng.choice(["fixed", 7, True, {"a": 1}, [1, "a"], None])
            return {"const": value}, lambda r: json.loads(json.dumps(value))
        if kind == "nullable":
            inner, make = self.schema(depth + 1)
            spelling = rng.choice(["anyOf", "type-list", *(["keyword"] * self.api_layout)])
            if spelling == "keyword":
                schema = {**inner, "nullable": True}
            elif spelling == "anyOf" or "type" not in inner or isinstance(inner["type"], list):
                schema = {"anyOf": [inner, {"type": "null"}]}
            else:
                schema = {**inner, "type": [inner["type"], "null"]}
            return schema, lambda r: None if r.random() < 0.5 else make(r)
        if kind == "object":
            return self.object(depth)
        if kind == "array":
            inner, make = self.schema(depth + 1)
            return {"type": "array", "items": inner}, lambda r: [make(r) for _ in range(2)]
        if kind == "ref":
            return self.named(depth)
        return self.union(depth)

    def object(self, depth: int) -> tuple[dict[str, Any], Value]:
        rng = self.rng
        count = rng.randint(0, 4)
        names = rng.sample(HOSTILE_PROPERTIES, 1) if rng.random() < 0.4 else []
        names += [f"p{i}" for i in range(count)]
        properties: dict[str, Any] = {}
        makers: dict[str, Value] = {}
        for name in names:
            properties[name], makers[name] = self.schema(depth + 1)
        required = [n for n in names if rng.random() < 0.5]
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        if rng.random() < 0.2:
            schema["required"] = [*required, "declared_nowhere"]
        closed = rng.random() < 0.2
        if closed:
            schema["additionalProperties"] = False

        def make(r: random.Random) -> dict[str, Any]:
            out = {n: makers[n](r) for n in names if n in required or r.random() < 0.6}
            if not closed and r.random() < 0.3:
                out["added_upstream"] = "kept"
            return out

        return schema, make

    def named(self, depth: int) -> tuple[dict[str, Any], Value]:
        rng = self.rng
        if self.values and rng.random() < 0.3:
            name = rng.choice(sorted(self.values))
            return {"$ref": f"#/components/schemas/{name}"}, self.values[name]
        name = self.name()
        self.components[name] = {}  # reserved, so a nested schema does not take the name
        if rng.random() < 0.05:
            # A loop with no value: must be refused.
            other = name + "Alias"
            self.components[name] = {"$ref": f"#/components/schemas/{other}"}
            self.components[other] = {"$ref": f"#/components/schemas/{name}"}
            self.values[name] = lambda r: {}
            return {"$ref": f"#/components/schemas/{name}"}, self.values[name]
        schema, make = self.object(depth + 1)
        if rng.random() < 0.2:
            # Recursion through an optional property: legal, and must work.
            schema["properties"]["child"] = {"$ref": f"#/components/schemas/{name}"}
        self.components[name] = schema
        self.values[name] = make
        return {"$ref": f"#/components/schemas/{name}"}, make

    def union(self, depth: int) -> tuple[dict[str, Any], Value]:
        rng = self.rng
        variants = []
        makers = []
        for tag in rng.sample(["cat", "dog", "fish"], 2):
            name = f"{tag.title()}{len(self.components)}"
            inner, make = self.object(depth + 1)
            inner["properties"]["kind"] = {"type": "string", "enum": [tag]}
            inner["required"] = [*inner.get("required", []), "kind"]
            self.components[name] = inner
            variants.append({"$ref": f"#/components/schemas/{name}"})
            makers.append((tag, make))

        def make_variant(r: random.Random) -> Any:
            if r.random() < 0.2:
                return {"kind": "added_later", "anything": 1}
            tag, make = r.choice(makers)
            return {**make(r), "kind": tag}

        return {"oneOf": variants, "discriminator": {"propertyName": "kind"}}, make_variant


def build(seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A spec and a conforming body for each of its webhooks."""
    rng = random.Random(seed)
    api_layout = rng.random() < 0.35
    builder = SpecBuilder(rng, api_layout)
    webhooks: dict[str, Any] = {}
    bodies: list[dict[str, Any]] = []
    events = [f"thing.changed_v{i}" for i in range(rng.randint(1, 3))]
    if rng.random() < 0.5:
        events.append(rng.choice(HOSTILE_EVENTS))
    for event in events:
        payload, make = builder.object(0) if rng.random() < 0.5 else builder.named(0)
        envelope = {
            "type": "object",
            "properties": {"event_type": {"type": "string"}, event: payload},
            "required": ["event_type", event],
        }
        webhooks[event] = {
            "post": {"responses": {"200": {"content": {"application/json": {"schema": envelope}}}}}
        }
        bodies.append({"event_type": event, event: make(rng)})
    spec: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": f"fuzz {seed}", "version": "1"},
        "webhooks": webhooks,
        "components": {"schemas": builder.components},
    }
    if api_layout:
        # The API spec's layout: any method, audit-log items beside the webhooks.
        del spec["webhooks"]
        spec["openapi"] = "3.0.3"
        method = rng.choice(["get", "post"])
        spec["x-webhooks"] = {f"/x-webhooks/{k}": {method: v["post"]} for k, v in webhooks.items()}
        spec["x-webhooks"]["/x-audit-logs/thing.created.1"] = {"get": {"responses": {}}}
        spec["paths"] = {}
    return spec, bodies


def generate_seed(seed: int, root: Path) -> tuple[str, str, list[dict[str, Any]]]:
    """Generate the spec of ``seed`` under ``root`` and check how the generator took it.

    Returns (outcome, detail, bodies): ``refused`` when refused cleanly, ``ok`` with the
    package's name and the bodies it must read back, ``FAILED`` with what went wrong.
    """
    from packages import generate

    spec, bodies = build(seed)
    package = f"fuzz_{seed}"
    try:
        code, output, out = generate(spec, root, package)
    except Exception as exc:  # noqa: BLE001 (the invariant: generate never raises)
        return "FAILED", f"generate raised {type(exc).__name__}: {exc}", []
    if code == 2:
        # Every problem the fuzzer can make is in the document, so it has a JSON pointer.
        clean = output.startswith("error:") and " at /" in output
        if "Traceback" in output or out.exists() or not clean:
            return "FAILED", f"refusal was not clean:\n{output}", []
        return "refused", output.strip().splitlines()[-1], []
    if code != 0:
        return "FAILED", f"exit {code}:\n{output}", []
    return "ok", package, bodies


def check(seed: int, root: Path) -> tuple[str, str]:
    """Generate the spec of ``seed`` under ``root`` and check the invariants, the round
    trip of its bodies included.

    Returns (outcome, detail): ``refused`` or ``ok`` when the invariants hold, ``FAILED``
    with what went wrong otherwise.
    """
    from packages import round_trip

    outcome, detail, bodies = generate_seed(seed, root)
    if outcome != "ok":
        return outcome, detail
    result = round_trip(root, detail, bodies)
    if result.returncode != 0:
        return "FAILED", result.stderr[-3000:]
    return "ok", detail


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--seconds", type=float, default=600)
    cli.add_argument("--first-seed", type=int, default=1000)
    args = cli.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from packages import mypy

    counts: dict[str, int] = {"ok": 0, "refused": 0, "FAILED": 0}
    deadline = time.monotonic() + args.seconds
    seed = args.first_seed
    with tempfile.TemporaryDirectory() as scratch:
        batch: list[str] = []
        while time.monotonic() < deadline:
            outcome, detail = check(seed, Path(scratch))
            counts[outcome] += 1
            if outcome == "FAILED":
                print(f"seed {seed}: {detail}", flush=True)
            elif outcome == "ok":
                batch.append(detail)
            if len(batch) == 20 or (batch and time.monotonic() >= deadline):
                typed = mypy(Path(scratch), *batch)
                if typed.returncode != 0:
                    counts["FAILED"] += 1
                    print(f"mypy failed on {batch}:\n{typed.stdout[-3000:]}", flush=True)
                batch = []
            seed += 1
    print(f"{sum(counts.values())} specs: {counts['ok']} generated and checked, "
          f"{counts['refused']} refused cleanly, {counts['FAILED']} failed")  # fmt: skip
    return 1 if counts["FAILED"] else 0


if __name__ == "__main__":
    sys.exit(main())
