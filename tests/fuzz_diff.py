"""An oracle for ``python -m codegen diff``: mutate a spec, generate bodies that conform to the
new spec, and ask the models generated from the *old* spec to read them. Whenever the old
models refuse a body the new spec allows, the diff must have said "breaking"; so a change the
diff calls compatible never breaks the old package.

``python tests/fuzz_diff.py --seconds 600 --first-seed N`` runs it on new seeds (``make
fuzz``); ``tests/test_diff_oracle.py`` runs it on fixed seeds in ``make test``.
"""

from __future__ import annotations

import argparse
import ast
import copy
import dataclasses
import importlib
import itertools
import json
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from codegen import diff, parser
from codegen.emit.models import event_class_names, render_models
from codegen.emit.templates import runtime_modules
from codegen.errors import SpecError
from codegen.ir import SCHEMA_PREFIX, Spec

REF = "#/components/schemas/"


def _hook(event_type: str, payload: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    key = key or event_type
    envelope = {
        "type": "object",
        "required": ["event_type", key],
        "properties": {"event_type": {"type": "string"}, key: payload},
    }
    return {"post": {"requestBody": {"content": {"application/json": {"schema": envelope}}}}}


def base_spec() -> dict[str, Any]:
    """Small, but with every shape the diff must see through: refs, an alias chain, allOf,
    a discriminated and a plain union, enums, formats, nullables, arrays, maps."""
    schemas: dict[str, Any] = {
        "Thing": {
            "type": "object",
            "required": ["id", "status", "owner"],
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "count": {"type": "integer"},
                "score": {"type": ["number", "null"]},
                "status": {"type": "string", "enum": ["open", "closed"]},
                "created_at": {"type": "string", "format": "date-time"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "version": {"type": "string", "const": "v1"},
                "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False},
                "coords": {"type": "array", "prefixItems": [{"type": "number"}], "items": {"type": "number"}},
                "owner": {"$ref": REF + "Person"},
                "alias": {"$ref": REF + "AliasA"},
                "parts": {"allOf": [{"$ref": REF + "Base"}, {"type": "object", "properties": {"x": {"type": "integer"}}}]},
                "shape": {
                    "oneOf": [{"$ref": REF + "Circle"}, {"$ref": REF + "Square"}],
                    "discriminator": {"propertyName": "kind", "mapping": {
                        "circle": REF + "Circle", "square": REF + "Square"}},
                },
                "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                "meta": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "Person": {"type": "object", "required": ["id"], "properties": {
            "id": {"type": "string"}, "email": {"type": "string"}, "age": {"type": "integer"}}},
        "AliasA": {"$ref": REF + "AliasB"},
        "AliasB": {"$ref": REF + "Person"},
        "Base": {"type": "object", "required": ["base_id"], "properties": {"base_id": {"type": "string"}}},
        "Circle": {"type": "object", "required": ["kind", "r"], "properties": {
            "kind": {"type": "string", "enum": ["circle"]}, "r": {"type": "number"}}},
        "Square": {"type": "object", "required": ["kind", "side"], "properties": {
            "kind": {"type": "string", "enum": ["square"]}, "side": {"type": "integer"}}},
    }  # fmt: skip
    inline = {"type": "object", "required": ["thing_id"], "properties": {
        "thing_id": {"type": "string"}, "changes": {"type": "array", "items": {"$ref": REF + "Person"}},
        "level": {"type": "integer", "enum": [1, 2, 3]}, "note": {"type": ["string", "null"]}}}  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {"title": "oracle", "version": "1"},
        "webhooks": {
            "thing.created_v1": _hook("thing.created_v1", {"$ref": REF + "Thing"}),
            "thing.updated_v1": _hook("thing.updated_v1", inline),
        },
        "components": {"schemas": schemas},
    }


# -- mutations ---------------------------------------------------------------------------------

TYPES = ["string", "integer", "number", "boolean", "object", "array"]


def _objects(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every object schema with properties in the document, payloads included."""
    return [
        node for node in _all(doc)
        if isinstance(node.get("properties"), dict) and node["properties"]
        and "event_type" not in node["properties"]
    ]  # fmt: skip


def _any_schema(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(TYPES)
    if kind == "array":
        return {"type": "array", "items": {"type": rng.choice(TYPES[:4])}}
    if kind == "object":
        return {"type": "object", "properties": {"k": {"type": rng.choice(TYPES[:4])}}}
    return {"type": kind}


def _pick_property(rng: random.Random, doc: dict[str, Any]) -> tuple[dict[str, Any], str]:
    owner = rng.choice(_objects(doc))
    return owner, rng.choice(sorted(owner["properties"]))


def m_remove_property(rng: random.Random, doc: dict[str, Any]) -> str:
    owner, name = _pick_property(rng, doc)
    del owner["properties"][name]
    return f"remove {name}"


def m_retype(rng: random.Random, doc: dict[str, Any]) -> str:
    owner, name = _pick_property(rng, doc)
    owner["properties"][name] = _any_schema(rng)
    return f"retype {name} -> {owner['properties'][name]}"


def m_drop_type(rng: random.Random, doc: dict[str, Any]) -> str:
    owner, name = _pick_property(rng, doc)
    prop = owner["properties"][name]
    if isinstance(prop, dict):
        prop.pop("type", None)
        prop.pop("enum", None)
        prop.pop("format", None)
    return f"drop type of {name}"


def m_optional(rng: random.Random, doc: dict[str, Any]) -> str:
    owner, name = _pick_property(rng, doc)
    owner["required"] = [r for r in owner.get("required", []) if r != name]
    return f"optional {name}"


def m_required(rng: random.Random, doc: dict[str, Any]) -> str:
    owner, name = _pick_property(rng, doc)
    owner.setdefault("required", [])
    if name not in owner["required"]:
        owner["required"].append(name)
    return f"required {name}"


def m_add_property(rng: random.Random, doc: dict[str, Any]) -> str:
    owner, _ = _pick_property(rng, doc)
    name = f"new_{rng.randrange(1000)}"
    owner["properties"][name] = _any_schema(rng)
    if rng.random() < 0.5:
        owner.setdefault("required", []).append(name)
    return f"add {name}"


def _enums(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [node for node in _all(doc) if isinstance(node.get("enum"), list)]


def m_enum_add(rng: random.Random, doc: dict[str, Any]) -> str:
    enums = _enums(doc)
    if not enums:
        return "no enum"
    target = rng.choice(enums)
    value: Any = rng.randrange(4, 99) if target.get("type") == "integer" else f"v{rng.randrange(99)}"
    target["enum"].append(value)
    return f"enum add {value}"


def m_enum_remove(rng: random.Random, doc: dict[str, Any]) -> str:
    enums = [e for e in _enums(doc) if len(e["enum"]) > 1]
    if not enums:
        return "no enum"
    target = rng.choice(enums)
    return f"enum remove {target['enum'].pop(rng.randrange(len(target['enum'])))}"


def m_under_all_of(rng: random.Random, doc: dict[str, Any]) -> str:
    owner, name = _pick_property(rng, doc)
    moved = owner["properties"].pop(name)
    rest = {k: v for k, v in owner.items() if k != "type"}
    owner.clear()
    owner.update({"type": "object", "allOf": [{"type": "object", "properties": {name: moved}}]})
    owner["properties"] = rest.pop("properties", {})
    owner.update(rest)
    if rng.random() < 0.5:  # and perhaps no longer where it was required
        owner["required"] = [r for r in owner.get("required", []) if r != name]
        owner["allOf"][0]["required"] = [name] if rng.random() < 0.5 else []
    return f"move {name} under allOf"


def m_wrap_one_of(rng: random.Random, doc: dict[str, Any]) -> str:
    owner, name = _pick_property(rng, doc)
    owner["properties"][name] = {"oneOf": [owner["properties"][name], _any_schema(rng)]}
    return f"oneOf around {name}"


def m_variant_type(rng: random.Random, doc: dict[str, Any]) -> str:
    unions = [n for n in _all(doc) if isinstance(n.get("oneOf") or n.get("anyOf"), list)]
    if not unions:
        return "no union"
    target = rng.choice(unions)
    members = target.get("oneOf") or target.get("anyOf")
    members[rng.randrange(len(members))] = _any_schema(rng)
    return "variant retyped"


def m_nullable(rng: random.Random, doc: dict[str, Any]) -> str:
    owner, name = _pick_property(rng, doc)
    prop = owner["properties"][name]
    if isinstance(prop.get("type"), str):
        prop["type"] = [prop["type"], "null"]
    else:
        owner["properties"][name] = {"anyOf": [prop, {"type": "null"}]}
    return f"nullable {name}"


def m_not_nullable(rng: random.Random, doc: dict[str, Any]) -> str:
    for node in _all(doc):
        if isinstance(node.get("type"), list) and "null" in node["type"] and rng.random() < 0.5:
            node["type"] = next(t for t in node["type"] if t != "null")
            return "not nullable"
    return "nothing nullable"


def m_alias(rng: random.Random, doc: dict[str, Any]) -> str:
    refs = [n for n in _all(doc) if isinstance(n.get("$ref"), str) and len(n) == 1]
    if not refs:
        return "no ref"
    target = rng.choice(refs)
    name = f"Alias{rng.randrange(1000)}"
    doc["components"]["schemas"][name] = {"$ref": target["$ref"]}
    target["$ref"] = REF + name
    return f"alias {name}"


def m_ref_to_one_of(rng: random.Random, doc: dict[str, Any]) -> str:
    refs = [n for n in _all(doc) if isinstance(n.get("$ref"), str) and len(n) == 1]
    if not refs:
        return "no ref"
    target = rng.choice(refs)
    other = REF + rng.choice(sorted(doc["components"]["schemas"]))
    target["oneOf"] = [{"$ref": target.pop("$ref")}, {"$ref": other}]
    return "ref -> oneOf"


def m_ref_to_composition(rng: random.Random, doc: dict[str, Any]) -> str:
    """A ``$ref`` becomes a composition holding it (issue 16's class: every keyword, with
    another named schema, an inline one, or alone)."""
    refs = [n for n in _all(doc) if isinstance(n.get("$ref"), str) and len(n) == 1]
    if not refs:
        return "no ref"
    target = rng.choice(refs)
    keyword = rng.choice(["oneOf", "anyOf", "allOf"])
    other = rng.choice([
        {"$ref": REF + rng.choice(sorted(doc["components"]["schemas"]))},
        _any_schema(rng),
        {"type": "object", "properties": {"extra": _any_schema(rng)}, "required": ["extra"] if rng.random() < 0.5 else []},
        None,
    ])  # fmt: skip
    target[keyword] = [{"$ref": target.pop("$ref")}] + ([other] if other is not None else [])
    return f"ref -> {keyword}"


def m_composition_to_ref(rng: random.Random, doc: dict[str, Any]) -> str:
    """A composition (oneOf, anyOf, allOf) becomes one of its members: a ``$ref`` or the
    member inline."""
    found = [(n, k) for n in _all(doc) for k in ("oneOf", "anyOf", "allOf") if isinstance(n.get(k), list) and n[k]]
    if not found:
        return "no composition"
    node, keyword = rng.choice(found)
    member = copy.deepcopy(rng.choice(node.pop(keyword)))
    if isinstance(member, dict):
        for key, value in member.items():
            node.setdefault(key, value)
    return f"{keyword} -> member"


def m_inline_to_ref(rng: random.Random, doc: dict[str, Any]) -> str:
    """An inline property schema moves to a named schema of its own (nothing changes)."""
    owner, name = _pick_property(rng, doc)
    schema_name = f"Moved{rng.randrange(1000)}"
    doc["components"]["schemas"][schema_name] = owner["properties"][name]
    owner["properties"][name] = {"$ref": REF + schema_name}
    return f"inline -> ref {schema_name}"


def m_const(rng: random.Random, doc: dict[str, Any]) -> str:
    """A const changed, removed, widened to an enum, or added where there was none."""
    consts = [n for n in _all(doc) if "const" in n]
    strings = [n for n in _all(doc) if n.get("type") == "string" and "const" not in n and "enum" not in n]
    if consts and (not strings or rng.random() < 0.7):
        target = rng.choice(consts)
        how = rng.choice(["change", "remove", "enum"])
        if how == "change":
            target["const"] = rng.choice(["v2", "other", target["const"]])
        elif how == "remove":
            del target["const"]
        else:
            target["enum"] = [target.pop("const"), "v2"]
        return f"const {how}"
    if strings:
        rng.choice(strings)["const"] = "fixed"
        return "const added"
    return "no string"


def m_prefix_items(rng: random.Random, doc: dict[str, Any]) -> str:
    """An array by position: a position retyped, added or removed; its items opened, closed
    or retyped."""
    arrays = [n for n in _all(doc) if isinstance(n.get("prefixItems"), list)]
    if not arrays:
        return "no prefixItems"
    target = rng.choice(arrays)
    how = rng.choice(["retype", "add", "remove", "items"])
    positions = target["prefixItems"]
    if how == "retype" and positions:
        positions[rng.randrange(len(positions))] = _any_schema(rng)
    elif how == "add":
        positions.append(_any_schema(rng))
    elif how == "remove" and positions:
        positions.pop()
    else:
        target["items"] = rng.choice([False, _any_schema(rng), None])
        if target["items"] is None:
            del target["items"]
    return f"prefixItems {how}"


def m_format(rng: random.Random, doc: dict[str, Any]) -> str:
    strings = [n for n in _all(doc) if n.get("type") == "string" and "enum" not in n]
    if not strings:
        return "no string"
    target = rng.choice(strings)
    choice = rng.choice([None, "date-time", "uuid", "date"])
    if choice is None:
        target.pop("format", None)
    else:
        target["format"] = choice
    return f"format {choice}"


def m_payload_key(rng: random.Random, doc: dict[str, Any]) -> str:
    name = rng.choice(sorted(doc["webhooks"]))
    envelope = doc["webhooks"][name]["post"]["requestBody"]["content"]["application/json"]["schema"]
    old_key = next(k for k in envelope["properties"] if k != "event_type")
    envelope["properties"]["payload"] = envelope["properties"].pop(old_key)
    envelope["required"] = ["event_type", "payload"]
    return f"payload key of {name}"


def _all(doc: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            found.append(node)
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(doc["components"])
    visit(doc["webhooks"])
    return found


MUTATIONS: list[Callable[[random.Random, dict[str, Any]], str]] = [
    m_remove_property, m_retype, m_drop_type, m_optional, m_required, m_add_property,
    m_enum_add, m_enum_remove, m_under_all_of, m_wrap_one_of, m_variant_type, m_nullable,
    m_not_nullable, m_alias, m_ref_to_one_of, m_format, m_payload_key, m_ref_to_composition,
    m_composition_to_ref, m_inline_to_ref, m_const, m_prefix_items,
]  # fmt: skip


# -- bodies that conform to a spec -------------------------------------------------------------


def sample(schema: Any, spec: Spec, rng: random.Random, depth: int = 0) -> Any:
    if not isinstance(schema, dict):
        return None
    if isinstance(schema.get("$ref"), str):
        return sample(spec.schemas.get(schema["$ref"][len(SCHEMA_PREFIX) :], {}), spec, rng, depth)
    if isinstance(schema.get("allOf"), list):
        merged: dict[str, Any] = {}
        for member in schema["allOf"]:
            value = sample(member, spec, rng, depth + 1)
            if isinstance(value, dict):
                merged.update(value)
        own = {k: v for k, v in schema.items() if k != "allOf"}
        if "properties" in own:
            value = sample(own, spec, rng, depth)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    for key in ("oneOf", "anyOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return sample(rng.choice(schema[key]), spec, rng, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return rng.choice(schema["enum"])
    declared = schema.get("type")
    if isinstance(declared, list):
        declared = rng.choice(declared) if declared else None
    if declared is None:
        if "properties" in schema:
            declared = "object"
        else:  # any JSON value at all
            declared = rng.choice(["string", "integer", "boolean", "object", "null", "number"])
    if declared == "null":
        return None
    if declared == "string":
        fmt = schema.get("format")
        if fmt == "date-time":
            return "2024-05-06T07:08:09Z"
        if fmt == "date":
            return "2024-05-06"
        if fmt == "uuid":
            return str(uuid.UUID(int=rng.getrandbits(128)))
        return rng.choice(["x", "hello", "01FDAG4SAP5TYPT98WGR2N7W91", ""])
    if declared == "integer":
        return rng.randrange(-5, 1000)
    if declared == "number":
        return rng.choice([0.5, 3, -2.25, 1e3])
    if declared == "boolean":
        return rng.random() < 0.5
    if declared == "array":
        prefix = [sample(p, spec, rng, depth + 1) for p in schema.get("prefixItems") or []]
        if schema.get("items") is False:
            return prefix[: rng.randrange(len(prefix) + 1)]
        rest = [sample(schema.get("items", {}), spec, rng, depth + 1) for _ in range(rng.randrange(3 if depth < 4 else 1))]
        return prefix + rest
    out: dict[str, Any] = {}
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    required = set(schema.get("required") or ())
    for name, prop in sorted(properties.items()):
        if name in required or (depth < 4 and rng.random() < 0.6):
            out[name] = sample(prop, spec, rng, depth + 1)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and rng.random() < 0.5:
        out[f"extra_{rng.randrange(9)}"] = sample(extra, spec, rng, depth + 1)
    return out


# -- the models of a spec, imported in this process --------------------------------------------


class Models:
    """The event model classes datamodel-code-generator makes from a spec, as the generated
    package has them (same base classes, same options), loaded without formatting."""

    _count = itertools.count()

    def __init__(self, spec: Spec, folder: Path) -> None:
        package = f"oracle_{next(self._count)}_{uuid.uuid4().hex[:6]}"
        root = folder / package
        root.mkdir()
        (root / "__init__.py").write_text("")
        runtime = runtime_modules()
        for module in ("_base.py", "_root.py"):
            (root / module).write_text(runtime[module])
        code = render_models(spec, package, "")
        (root / "models.py").write_text(code)
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
        module = importlib.import_module(f"{package}.models")
        self.events = {t: getattr(module, n) for t, n in event_class_names(ast.parse(code), spec).items()}

    _base: ClassVar[dict[str, Models]] = {}

    @classmethod
    def of_base(cls, spec: Spec, folder: Path) -> Models:
        """The base spec's models, built once: every trial starts from the same spec, and
        classes only validate (a trial cannot change them)."""
        key = json.dumps(dataclasses.asdict(spec), sort_keys=True, default=repr)
        if key not in cls._base:
            cls._base[key] = cls(spec, folder)
        return cls._base[key]

    def accepts(self, event_type: str, body: dict[str, Any]) -> str | None:
        """None if the model reads the body, else why not."""
        try:
            self.events[event_type].model_validate_json(json.dumps(body))
        except Exception as exc:  # noqa: BLE001 (any refusal is the answer)
            return str(exc).splitlines()[0] + " | " + " ".join(str(exc).split())[:300]
        return None


@dataclass
class Tally:
    trials: int = 0
    refused_specs: int = 0
    bodies: int = 0
    old_refused: int = 0
    breaking_reports: int = 0
    findings: list[str] = field(default_factory=list)


def trial(seed: int, folder: Path, tally: Tally, bodies_per_webhook: int = 12) -> None:
    rng = random.Random(seed)
    old_doc = base_spec()
    new_doc = copy.deepcopy(old_doc)
    steps = [rng.choice(MUTATIONS)(rng, new_doc) for _ in range(rng.randrange(1, 4))]
    tally.trials += 1
    try:
        old = parser.parse(old_doc, "old")
        new = parser.parse(new_doc, "new")
    except SpecError:
        tally.refused_specs += 1  # a mutation can make a spec the generator refuses
        return
    report = diff.compare(old, new, source=False)
    breaking = report.count("breaking") > 0
    tally.breaking_reports += breaking
    try:
        old_models, new_models = Models.of_base(old, folder), Models(new, folder)
    except Exception as exc:  # noqa: BLE001 (the spec fuzzer's business; counted, not judged here)
        tally.refused_specs += 1
        tally.findings.append(f"seed {seed}: models not built ({type(exc).__name__}) {steps}")
        return
    for hook in new.webhooks:
        if hook.event_type not in old_models.events:
            continue
        for _ in range(bodies_per_webhook):
            payload = sample(hook.payload_schema, new, rng)
            body = {"event_type": hook.event_type, hook.payload_key: payload}
            if new_models.accepts(hook.event_type, body) is not None:
                continue  # not conforming after all (the sampler is simple): not evidence
            tally.bodies += 1
            refusal = old_models.accepts(hook.event_type, body)
            if refusal is None:
                continue
            tally.old_refused += 1
            if not breaking:
                tally.findings.append(
                    f"seed {seed}: {steps}: the old models refuse a body the new spec allows, "
                    f"and the diff says {[ (c.severity, c.kind, c.location) for c in report.changes]}: "
                    f"{json.dumps(body)[:300]} -> {refusal[:300]}"
                )
                return


def run(seeds: list[int], deadline: float | None = None) -> Tally:
    tally = Tally()
    with tempfile.TemporaryDirectory() as folder:
        for seed in seeds:
            if deadline is not None and time.monotonic() > deadline:
                break
            trial(seed, Path(folder), tally)
    return tally


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--seconds", type=float, default=600)
    cli.add_argument("--first-seed", type=int, default=0)
    args = cli.parse_args()
    deadline = time.monotonic() + args.seconds
    tally = run(list(range(args.first_seed, args.first_seed + 10_000_000)), deadline)
    print(
        f"{tally.trials} mutated specs ({tally.refused_specs} refused), {tally.bodies} conforming "
        f"bodies, {tally.old_refused} refused by the old models, {tally.breaking_reports} "
        f"reports with a breaking change, {len(tally.findings)} findings"
    )
    for finding in tally.findings[:20]:
        print(" ", finding)
    return 1 if any("refuse a body" in f for f in tally.findings) else 0


if __name__ == "__main__":
    sys.exit(main())
