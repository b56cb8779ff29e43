"""Specs an adversarial pass found to break the generator or the package it made.

Each one is either refused (exit 2, a JSON pointer, nothing written) or generates a package
that imports with warnings as errors, passes mypy --strict, and parses and round-trips a
conforming example.
"""

from __future__ import annotations

import ast
import copy
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, tree_hash
from golden_cases import spec_path
from packages import generate, mypy, python, round_trip, round_trip_each, run_cli

from codegen import loader
from codegen.naming import PUBLIC_NAMES, class_name

BASE = json.loads(spec_path("membership_granted").read_text())
GRANTED = "private_incident.membership_granted_v1"
USER = "WebhookIncidentUserV2"
EXAMPLE = {"event_type": GRANTED, GRANTED: {"incident_id": "i", "user_id": "u"}}


def with_property(schema: dict[str, Any], **more_schemas: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc["components"]["schemas"][USER]["properties"]["x"] = schema
    doc["components"]["schemas"].update(more_schemas)
    return doc


def example(x: Any) -> dict[str, Any]:
    return {"event_type": GRANTED, GRANTED: {"incident_id": "i", "user_id": "u", "x": x}}


def refused(doc: Any, tmp_path: Path) -> str:
    code, output, out = generate(doc, tmp_path)
    assert code == 2, output
    assert "Traceback" not in output
    assert not out.exists()
    return output


# -- refused, with the place named ---------------------------------------------------------


def test_schemas_that_are_only_each_other_are_refused_naming_the_loop(tmp_path: Path) -> None:
    doc = with_property(
        {"$ref": "#/components/schemas/A"},
        A={"$ref": "#/components/schemas/B"},
        B={"$ref": "#/components/schemas/A"},
    )
    output = refused(doc, tmp_path)
    assert "at /components/schemas/A: schemas that are only each other" in output
    assert "(A -> B -> A)" in output


def test_a_loop_through_all_of_is_refused_but_recursion_through_a_property_is_not(
    tmp_path: Path,
) -> None:
    loop = with_property(
        {"$ref": "#/components/schemas/A"},
        A={"allOf": [{"$ref": "#/components/schemas/B"}]},
        B={"anyOf": [{"$ref": "#/components/schemas/A"}]},
    )
    assert "(A -> B -> A)" in refused(loop, tmp_path / "loop")
    tree = with_property(
        {"$ref": "#/components/schemas/Node"},
        Node={"type": "object", "properties": {"next": {"$ref": "#/components/schemas/Node"}}},
    )
    code, output, _ = generate(tree, tmp_path / "tree")
    assert code == 0, output
    result = round_trip(tmp_path / "tree", "pkg", [example({"next": {"next": {}}})])
    assert result.returncode == 0, result.stderr


def billion_laughs(levels: int = 9) -> str:
    lines = ["openapi: 3.1.0", 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    lines.append(f"webhooks: {{x: *a{levels}}}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("command", ["generate", "update-spec"])
def test_yaml_aliases_that_expand_without_bound_are_refused_at_once(
    tmp_path: Path, command: str
) -> None:
    spec = tmp_path / "laughs.yaml"
    spec.write_text(billion_laughs())
    target = tmp_path / "committed.json"
    target.write_bytes(b'{"kept": true}')
    argv = ["generate", "--spec", str(spec), "--out", str(tmp_path / "pkg")]
    if command == "update-spec":
        argv = ["update-spec", "--from", str(spec), "--spec", str(target)]
    # A subprocess with a deadline: before the fix this ran for minutes and grew to GBs.
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "codegen", *argv], cwd=ROOT, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    took = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert "refused YAML: expands to more than" in result.stderr
    assert "Traceback" not in result.stderr
    assert target.read_bytes() == b'{"kept": true}'
    assert not (tmp_path / "pkg").exists()
    print(f"{command}: refused in {took:.2f}s")


def test_many_aliases_are_refused_naming_the_line() -> None:
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * 1001) + "]\n"
    with pytest.raises(loader.SpecError) as caught:
        loader.parse_bytes(text.encode(), "spec.yaml")
    assert "spec.yaml:2:" in str(caught.value)
    assert "more than 1000 YAML aliases" in str(caught.value)


def test_a_few_aliases_are_still_fine() -> None:
    doc = loader.parse_bytes(b"a: &a {type: string}\nb: *a\nc: *a\n", "spec.yaml")
    assert doc == {"a": {"type": "string"}, "b": {"type": "string"}, "c": {"type": "string"}}


@pytest.mark.parametrize("text", ["[" * 5000 + "]" * 5000, '{"a":' * 300 + "1" + "}" * 300])
def test_json_nested_beyond_the_limit_is_refused_cleanly(text: str) -> None:
    with pytest.raises(loader.SpecError) as caught:
        loader.parse_bytes(text.encode(), "spec.json")
    assert "nested deeper than 200 levels" in str(caught.value)


@pytest.mark.parametrize(
    ("where", "pointer"),
    [
        ("description", "/webhooks/private_incident.membership_granted_v1/post/description"),
        ("property", "/components/schemas/WebhookIncidentUserV2/properties/x\\udc80"),
        ("event", "/webhooks/x\\udc80"),
    ],
)
def test_a_lone_surrogate_anywhere_is_refused_with_its_pointer(
    tmp_path: Path, where: str, pointer: str
) -> None:
    doc = copy.deepcopy(BASE)
    hook = doc["webhooks"][GRANTED]
    if where == "description":
        hook["post"]["description"] = "text \udc80 here"
    elif where == "property":
        doc["components"]["schemas"][USER]["properties"]["x\udc80"] = {"type": "string"}
    else:
        doc["webhooks"]["x\udc80"] = hook
    spec = tmp_path / "spec.json"
    # json.dumps writes the surrogate as the escape \udc80, as a hostile file would hold it.
    spec.write_text(json.dumps(doc))
    code, output = run_cli("generate", "--spec", str(spec), "--out", str(tmp_path / "pkg"))
    assert code == 2
    assert f"at {pointer}: " in output and "lone surrogate" in output
    assert not (tmp_path / "pkg").exists()


def test_refusing_a_spec_leaves_the_generated_package_as_it_was(tmp_path: Path) -> None:
    code, output, package = generate(BASE, tmp_path)
    assert code == 0, output
    project = package.parent
    before = tree_hash(project)
    bad = with_property({"$ref": "#/components/schemas/A"}, A={"$ref": "#/components/schemas/A"})
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps(bad))
    assert run_cli("generate", "--spec", str(spec), "--out", str(project), "--package", "pkg")[0] == 2
    assert tree_hash(project) == before


# -- generated, and the package works --------------------------------------------------------

# name -> (property schema, extra schemas, example value, what the value must parse to)
WORKING: dict[str, tuple[dict[str, Any], dict[str, Any], Any]] = {
    "format-email": ({"type": "string", "format": "email"}, {}, "not-checked@example"),
    "const-object": ({"const": {"a": 1}}, {}, {"a": 1}),
    "const-list": ({"const": [1, "a"]}, {}, [1, "a"]),
    "mixed-enum": ({"enum": ["a", 1, None, True]}, {}, True),
    "float-enum": ({"type": "number", "enum": [1.5, 2.5]}, {}, 3.5),
    "closed-object": (
        {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False},
        {},
        {"a": "x", "added_upstream": 1},
    ),
    "dotted-schema-name": (
        {"$ref": "#/components/schemas/v1.Incident"},
        {"v1.Incident": {"type": "object", "properties": {"a": {"type": "string"}}}},
        {"a": "x"},
    ),
    "mutual-recursion-with-a-union": (
        {"$ref": "#/components/schemas/Outer"},
        {
            "Outer": {
                "type": "object",
                "properties": {
                    "pet": {
                        "oneOf": [{"$ref": "#/components/schemas/Cat"}, {"$ref": "#/components/schemas/Dog"}],
                        "discriminator": {"propertyName": "kind"},
                    },
                    "inner": {"$ref": "#/components/schemas/Inner"},
                },
            },
            "Inner": {"type": "object", "properties": {"outer": {"$ref": "#/components/schemas/Outer"}}},
            "Cat": {"type": "object", "properties": {"kind": {"type": "string", "enum": ["cat"]}}, "required": ["kind"]},
            "Dog": {"type": "object", "properties": {"kind": {"type": "string", "enum": ["dog"]}}, "required": ["kind"]},
        },
        {"pet": {"kind": "fish"}, "inner": {"outer": {"pet": {"kind": "cat"}, "inner": {}}}},
    ),
    "pydantic-method-names": (
        {
            "type": "object",
            "properties": {
                name: {"type": "string"}
                for name in ("model_dump", "model_config", "json", "dict", "copy", "schema")
            },
        },
        {},
        {"model_dump": "a", "model_config": "b", "json": "c", "dict": "d", "schema": "e"},
    ),
}


@pytest.fixture(scope="module")
def feature_packages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], dict[str, str | None]]:
    """Every case of WORKING generated as its own package in one folder: the folder, what
    each generation printed (empty when it worked), and each round trip's failure (None
    when it passed; all run in one fresh interpreter)."""
    root = tmp_path_factory.mktemp("features")
    failed: dict[str, str] = {}
    examples: dict[str, list[dict[str, Any]]] = {}
    for case, (schema, more, value) in sorted(WORKING.items()):
        package = "pkg_" + case.replace("-", "_")
        code, output, _ = generate(with_property(schema, **more), root, package)
        failed[case] = "" if code == 0 else output
        if code == 0:
            examples[package] = [example(value)]
    return root, failed, round_trip_each(root, examples)


@pytest.mark.parametrize("case", sorted(WORKING))
def test_schema_features_generate_a_package_that_imports_and_round_trips(
    feature_packages: tuple[Path, dict[str, str], dict[str, str | None]], case: str
) -> None:
    _, failed, round_trips = feature_packages
    assert failed[case] == "", failed[case]
    assert round_trips["pkg_" + case.replace("-", "_")] is None, round_trips


def test_the_schema_feature_packages_pass_mypy_strict(
    feature_packages: tuple[Path, dict[str, str], dict[str, str | None]],
) -> None:
    root, _, round_trips = feature_packages
    result = mypy(root, *round_trips)
    assert result.returncode == 0, result.stdout


def test_a_mixed_enum_keeps_true_apart_from_1(tmp_path: Path) -> None:
    generate(with_property({"enum": ["a", 1, None, True]}), tmp_path)
    result = python(
        tmp_path,
        "import pkg\n"
        f"for value in (True, 1, None, 'a'):\n"
        f"    got = pkg.parse_event({{'event_type': {GRANTED!r}, {GRANTED!r}: "
        "{'incident_id': 'i', 'user_id': 'u', 'x': value}}).payload.x\n"
        "    assert got is value or (got == value and type(got) is type(value)), (got, value)\n",
    )
    assert result.returncode == 0, result.stderr


def test_a_new_discriminator_value_parses_and_a_known_one_is_still_checked(tmp_path: Path) -> None:
    def variant(tag: str, field: str, kind: str) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"kind": {"type": "string", "enum": [tag]}, field: {"type": kind}},
            "required": ["kind"],
        }

    doc = with_property(
        {
            "oneOf": [{"$ref": "#/components/schemas/Cat"}, {"$ref": "#/components/schemas/Dog"}],
            "discriminator": {"propertyName": "kind"},
        },
        Cat=variant("cat", "meow", "boolean"),
        Dog=variant("dog", "bark", "integer"),
    )
    assert generate(doc, tmp_path)[0] == 0
    result = python(
        tmp_path,
        "import json, pkg\n"
        "from pkg import models\n"
        "def x(value):\n"
        f"    body = {{'event_type': {GRANTED!r}, {GRANTED!r}: "
        "{'incident_id': 'i', 'user_id': 'u', 'x': value}}\n"
        "    return pkg.parse_event(json.dumps(body)).payload.x\n"
        "assert type(x({'kind': 'cat', 'meow': True})) is models.Cat\n"
        "assert type(x({'kind': 'dog', 'bark': 2})) is models.Dog\n"
        "assert x({'kind': 'fish', 'fins': 2}) == {'kind': 'fish', 'fins': 2}\n"
        "try:\n"
        "    x({'kind': 'dog', 'bark': 'loud'})\n"
        "except pkg.InvalidPayload:\n"
        "    pass\n"
        "else:\n"
        "    raise AssertionError('a known variant with a wrong type was accepted')\n",
    )
    assert result.returncode == 0, result.stderr


# -- names ------------------------------------------------------------------------------------


def bound_names(package: Path) -> set[str]:
    """Every name the generated modules bind at module level, imports included."""
    names: set[str] = set()
    for path in package.glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, ast.If):  # `if TYPE_CHECKING:` imports
                for inner in node.body:
                    if isinstance(inner, ast.ImportFrom):
                        names.update(a.asname or a.name for a in inner.names)
    return names


def test_an_event_class_may_take_any_name_the_generated_modules_bind(tmp_path: Path) -> None:
    # What the generated modules bind (and what the models module imports) comes from a real
    # package, so a new import in any template is covered by this test without editing it.
    package = ROOT / "generated" / "incident_webhooks"
    names = bound_names(package) | {"Field", "Annotated", "Literal", "AwareDatetime", "Any"}
    # Names a class can have (CamelCase, as event types give them), minus the package's own
    # public names, which are refused (next test).
    candidates = sorted(n for n in names if n[:1].isupper() and class_name(n) == n) + [
        "TypeAdapter", "ValidationError", "Mapping", "Final", "TypeAlias", "MappingProxyType",
        "Response", "StrEnum", "IntEnum", "WebhookModel", "Json",
    ]  # fmt: skip
    # A schema's own name stays refused (the class exists already).
    allowed = sorted(set(candidates) - PUBLIC_NAMES - set(BASE["components"]["schemas"]))
    # One of each name that differs only in case (JSONResponse, JsonResponse): both would
    # give one handler name, which is refused on purpose (a test of its own).
    usable = sorted({name.lower(): name for name in allowed}.values())
    doc = copy.deepcopy(BASE)
    hook = doc["webhooks"].pop(GRANTED)
    for name in usable:
        doc["webhooks"][name] = hook
    code, output, _ = generate(doc, tmp_path, "names")
    assert code == 0, output
    examples = [{"event_type": n, GRANTED: {"incident_id": "i", "user_id": "u"}} for n in usable]
    result = round_trip(tmp_path, "names", examples)
    assert result.returncode == 0, result.stderr
    check = python(
        tmp_path,
        "import names\n"
        f"for name in {usable!r}:\n"
        "    model = getattr(names, name)\n"
        "    assert names.EVENT_MODELS[name] is model, name\n"
        "    assert getattr(names.WebhookHandlers, 'on_' + name.lower()), name\n"
        "assert names.WebhookEvent is not None and callable(names.parse_event)\n",
    )
    assert check.returncode == 0, check.stderr
    typed = mypy(tmp_path, "names")
    assert typed.returncode == 0, typed.stdout
    assert len(usable) >= 20


@pytest.mark.parametrize("name", sorted(n for n in PUBLIC_NAMES if n[:1].isupper() and "_" not in n))
def test_an_event_named_like_one_of_the_packages_own_names_is_refused(
    tmp_path: Path, name: str
) -> None:
    doc = copy.deepcopy(BASE)
    doc["webhooks"][name] = doc["webhooks"][GRANTED]
    output = refused(doc, tmp_path)
    assert f"at /webhooks/{name}: " in output and "already taken" in output
