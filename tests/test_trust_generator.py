"""The generator under hostile specs and command lines: every name it invents is its own,
every file name is valid and bounded, every enforced constraint can be enforced safely,
every value is JSON, every input is bounded, every default path is the repository's."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from packages import generate, python, run_cli

from codegen import parser

SPEC = str(ROOT / "spec" / "webhooks.json")


def hook(event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    body = {
        "type": "object",
        "required": ["event_type", event_type],
        "properties": {"event_type": {"type": "string"}, event_type: payload},
    }
    return {"post": {"requestBody": {"content": {"application/json": {"schema": body}}}}}


def spec(hooks: dict[str, Any], schemas: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "webhooks": {name: hook(name, payload) for name, payload in hooks.items()},
        "components": {"schemas": schemas or {}},
    }


def parses(root: Path, package: str, bodies: list[dict[str, Any]]) -> None:
    code = (
        f"import json, {package} as p\n"
        f"for body in json.loads({json.dumps(bodies)!r}):\n"
        "    event = p.parse_event(json.dumps(body))\n"
        "    assert event.model_dump(mode='json', by_alias=True, exclude_unset=True) == body\n"
        "print('ok')\n"
    )
    result = python(root, code)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


# -- row 11: an invented name never takes one the spec has --------------------------------


@pytest.mark.parametrize(
    "taken",
    [
        "ABV1Payload",  # the name the hoisted payload would get
        "AB_V1Payload",  # a different spelling that becomes the same class
        "a.b_v1.payload",  # a dotted name that becomes the same class
    ],
)
def test_a_hoisted_payload_never_takes_the_name_of_a_spec_schema(tmp_path: Path, taken: str) -> None:
    schemas = {taken: {"type": "object", "required": ["wrong"], "properties": {"wrong": {"type": "string"}}}}
    inline = {"type": "object", "required": ["inline"], "properties": {"inline": {"type": "integer"}}}
    # The spec's own schema is reached too, so both must be models side by side.
    inline["properties"]["other"] = {"$ref": f"#/components/schemas/{taken.replace('/', '~1')}"}
    doc = spec({"a.b_v1": inline}, schemas)
    code, output, _ = generate(doc, tmp_path)
    assert code == 0, output
    parses(tmp_path, "pkg", [{"event_type": "a.b_v1", "a.b_v1": {"inline": 1, "other": {"wrong": "x"}}}])


def test_a_hoisted_payload_never_takes_the_class_name_of_another_webhook(tmp_path: Path) -> None:
    doc = spec({
        "x": {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}},
        "x.payload": {"type": "object", "required": ["b"], "properties": {"b": {"type": "string"}}},
    })  # fmt: skip
    code, output, _ = generate(doc, tmp_path)
    assert code == 0, output
    parses(tmp_path, "pkg", [
        {"event_type": "x", "x": {"a": 1}},
        {"event_type": "x.payload", "x.payload": {"b": "s"}},
    ])  # fmt: skip


# -- rows 12, 13: module names that are keywords or too long ----------------------------------


KEYWORDS = ["Def", "Class", "Import", "None", "True", "False", "Async", "Await", "Lambda", "From"]


def test_schemas_named_like_python_keywords_generate_a_package_that_imports(tmp_path: Path) -> None:
    schemas = {name: {"type": "object", "properties": {"v": {"type": "string"}}} for name in KEYWORDS}
    payload = {"type": "object", "properties": {
        name.lower(): {"$ref": f"#/components/schemas/{name}"} for name in KEYWORDS}}  # fmt: skip
    code, output, package = generate(spec({"kw_v1": payload}, schemas), tmp_path)
    assert code == 0, output
    assert all(p.stem.isidentifier() for p in (package / "models").glob("*.py"))
    result = python(
        tmp_path,
        "import json, pkg\n"
        "e = pkg.parse_event(json.dumps({'event_type': 'kw_v1', 'kw_v1': {'def': {'v': '1'}, 'none': {'v': '2'}}}))\n"
        "print(e.payload.def_.v, e.payload.none.v)\n",
    )
    assert result.returncode == 0 and result.stdout.split() == ["1", "2"], result.stderr[-2000:]


@pytest.mark.parametrize("length", [250, 1000])
def test_very_long_event_types_give_bounded_unique_stable_file_names(tmp_path: Path, length: int) -> None:
    stem = "incident." + ("segment_" * length)[: length - 12]
    hooks = {
        stem + "_v1": {"type": "object", "properties": {"a": {"type": "string"}}},
        stem + "_v2": {"type": "object", "properties": {"b": {"type": "string"}}},
    }
    code, output, package = generate(spec(hooks), tmp_path / "one")
    assert code == 0, output
    names = sorted(p.name for p in (package / "models").glob("*.py"))
    assert all(len(name) <= 70 for name in names), names
    again = generate(spec(hooks), tmp_path / "two")[2]
    assert names == sorted(p.name for p in (again / "models").glob("*.py"))
    parses(tmp_path / "one", "pkg", [{"event_type": stem + "_v1", stem + "_v1": {"a": "x"}},
                                    {"event_type": stem + "_v2", stem + "_v2": {"b": "y"}}])  # fmt: skip


# -- rows 14, 15: enforced constraints that cannot be enforced (safely) ----------------------


@pytest.mark.parametrize(
    ("constraint", "says"),
    [
        ({"type": "integer", "multipleOf": 0}, "multipleOf must be a number above 0"),
        ({"type": "number", "multipleOf": -2.5}, "multipleOf must be a number above 0"),
        ({"type": "string", "minLength": -1}, "minLength must be a whole number"),
        ({"type": "string", "maxLength": 2.5}, "maxLength must be a whole number"),
        ({"type": "array", "items": {}, "minItems": "3"}, "minItems must be a whole number"),
        ({"type": "integer", "minimum": 5, "maximum": 1}, "minimum 5 is above maximum 1"),
        ({"type": "string", "minLength": 5, "maxLength": 1}, "minLength 5 is above maxLength 1"),
        ({"type": "number", "maximum": "ten"}, "maximum must be a finite number"),
        ({"type": "string", "pattern": "^(?=a)(a+)+$"}, "needs a backtracking"),
        ({"type": "string", "pattern": "^(?!x)a$"}, "needs a backtracking"),
        ({"type": "string", "pattern": "(a)\\1"}, "needs a backtracking"),
        ({"type": ["string", "null"], "pattern": "(?<=a)b"}, "needs a backtracking"),
    ],
)
def test_an_enforced_constraint_that_cannot_be_enforced_is_refused_with_its_pointer(
    tmp_path: Path, constraint: dict[str, Any], says: str
) -> None:
    payload = {"type": "object", "properties": {"good": {"type": "string"}, "bad": constraint}}
    doc = spec({"a_v1": payload})
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(doc))
    code, output = run_cli("generate", "--spec", str(path), "--out", str(tmp_path / "out"),
                           "--package", "pkg", "--constraints")  # fmt: skip
    assert code == 2, output
    assert "/properties/a_v1/properties/bad/" in output and says in output, output
    assert not (tmp_path / "out").exists()
    # A tolerant reader does not enforce them, so it has nothing to refuse.
    assert parser.parse(doc, "spec.json", constraints=False).webhooks


def test_an_enforced_pattern_runs_in_linear_time_against_a_hostile_body(tmp_path: Path) -> None:
    payload = {"type": "object", "properties": {"x": {"type": "string", "pattern": "^(a|a)+$"},
                                                "y": {"type": ["string", "null"], "pattern": "^(a+)+$"}}}  # fmt: skip
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec({"a_v1": payload})))
    code, output = run_cli("generate", "--spec", str(path), "--out", str(tmp_path / "pkg"),
                           "--package", "pkg", "--constraints")  # fmt: skip
    assert code == 0, output
    assert "python-re" not in "".join(p.read_text() for p in (tmp_path / "pkg").rglob("*.py"))
    result = python(
        tmp_path,
        "import json, time, pkg\n"
        "for field in ('x', 'y'):\n"
        "    body = json.dumps({'event_type': 'a_v1', 'a_v1': {field: 'a' * 5000 + '!'}})\n"
        "    started = time.perf_counter()\n"
        "    try:\n"
        "        pkg.parse_event(body)\n"
        "    except pkg.InvalidPayload:\n"
        "        pass\n"
        "    print(time.perf_counter() - started)\n",
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # A backtracking engine takes seconds at 26 characters; this body has 5,000.
    assert all(float(t) < 5 for t in result.stdout.split()), result.stdout


# -- row 16: values that are not JSON ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pointer", "says"),
    [
        ('{"openapi": "3.1.0", "info": {"version": 1' + "9" * 5000 + "}}", "/info/version", "an integer of 5001 digits"),
        ('{"openapi": "3.1.0", "x": [1, NaN]}', "/x/1", "nan is not a JSON number"),
        ('{"openapi": "3.1.0", "x": {"y": -Infinity}}', "/x/y", "-inf is not a JSON number"),
        ("openapi: 3.1.0\ninfo: {version: !!timestamp 2021-01-01T00:00:00Z}\n", "/info/version", "a YAML timestamp"),
        ("openapi: 3.1.0\nx: !!binary aGVsbG8=\n", "/x", "YAML binary"),
        ("openapi: 3.1.0\nx: !!omap [a: 1, b: 2]\n", "/x/0", "a YAML pair"),
        ("openapi: 3.1.0\nx: !!set {a, b}\n", "/x", "a YAML set"),
        ("openapi: 3.1.0\nx: .inf\n", "/x", "inf is not a JSON number"),
        ("openapi: 3.1.0\nx: " + "7" * 5000 + "\n", "/x", "an integer of 5000 digits"),
    ],
)
def test_values_json_cannot_hold_are_refused_with_their_pointer(
    tmp_path: Path, text: str, pointer: str, says: str
) -> None:
    path = tmp_path / ("spec.json" if text.startswith("{") else "spec.yaml")
    path.write_text(text)
    for command in (["generate", "--spec", str(path), "--out", str(tmp_path / "out")],
                    ["update-spec", "--from", str(path), "--spec", str(tmp_path / "s.json")],
                    ["diff", str(path), SPEC]):  # fmt: skip
        code, output = run_cli(*command)
        assert code == 2, (command, output)
        assert f"at {pointer}: {says}" in output, (command, output)
        assert "Traceback" not in output


def test_an_example_with_nan_is_refused_before_example_body_could_emit_it(tmp_path: Path) -> None:
    doc = json.loads(Path(SPEC).read_text())
    first = min(doc["webhooks"])
    text = json.dumps(doc).replace('"event_type": "' + first + '"', '"event_type": "' + first + '", "n": NaN', 1)
    assert "NaN" in text
    path = tmp_path / "spec.json"
    path.write_text(text)
    code, output = run_cli("generate", "--spec", str(path), "--out", str(tmp_path / "out"))
    assert code == 2 and "nan is not a JSON number" in output


# -- row 17: package names that would shadow what the package imports ----------------------


@pytest.mark.parametrize("name", ["pydantic", "typing", "enum", "standardwebhooks", "json", "asyncio", "redis", "__main__"])
def test_a_package_name_the_package_itself_imports_is_refused(tmp_path: Path, name: str) -> None:
    code, output = run_cli("generate", "--out", str(tmp_path / "out"), "--package", name)
    assert code == 2 and f"--package {name!r}" in output and not (tmp_path / "out").exists(), output


# -- row 20: default paths belong to the repository, not the current folder ------------------


def test_commands_run_from_a_subfolder_use_the_repositorys_spec_and_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    (repo / "spec").mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    shutil.copy(SPEC, repo / "spec" / "webhooks.json")
    monkeypatch.chdir(repo)
    assert run_cli("generate")[0] == 0
    for sub in ("generated", "codegen", "deep/er"):
        (repo / sub).mkdir(parents=True, exist_ok=True)
        monkeypatch.chdir(repo / sub)
        code, output = run_cli("generate")
        assert code == 0 and "unchanged:" in output, output
        code, output = run_cli("check")
        assert code == 0 and "up to date" in output, output
    assert not (repo / "generated" / "generated").exists()
    assert not (repo / "codegen" / "generated").exists()
    copy = tmp_path / "copy.json"
    shutil.copy(SPEC, copy)
    monkeypatch.chdir(repo / "codegen")
    code, output = run_cli("update-spec", "--from", str(copy))
    assert code == 0, output
    assert not (repo / "codegen" / "spec").exists()


# -- row 22: update-spec stops on breaking changes when asked -----------------------------


def test_update_spec_fail_on_breaking_leaves_the_spec_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "webhooks.json"
    shutil.copy(ROOT / "tests" / "fixtures" / "openapi3-2026-07-30.json", target)
    before = target.read_bytes()
    older = ROOT / "tests" / "fixtures" / "openapi3-2024-11-01.json"
    code, output = run_cli("update-spec", "--from", str(older), "--spec", str(target), "--fail-on-breaking")
    assert code == 1, output
    assert "breaking changes for code that uses the package" in output and "left as it was" in output
    assert target.read_bytes() == before
    code, output = run_cli("update-spec", "--from", str(older), "--spec", str(target))
    assert code == 0 and target.read_bytes() == older.read_bytes()


def test_make_update_spec_takes_a_local_file_and_stops_on_breaking_changes() -> None:
    dry = subprocess.run(["make", "-n", "update-spec", "FROM=some/file.json"], cwd=ROOT,
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert '--from "some/file.json"' in dry.stdout and "--fail-on-breaking" in dry.stdout
    allowed = subprocess.run(["make", "-n", "update-spec", "ALLOW_BREAKING=1"], cwd=ROOT,
                             capture_output=True, text=True, check=False)  # fmt: skip
    assert "--fail-on-breaking" not in allowed.stdout


# -- row 23: every input is bounded, and only regular files are read ------------------------


@pytest.mark.parametrize("kind", ["dev-zero", "dev-urandom", "fifo", "folder", "huge"])
def test_inputs_that_are_not_bounded_regular_files_are_refused_at_once(tmp_path: Path, kind: str) -> None:
    if kind == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)
    elif kind == "folder":
        path = tmp_path
    elif kind == "huge":
        path = tmp_path / "huge.json"
        with open(path, "wb") as handle:
            handle.truncate(65 * 1024 * 1024)  # sparse: no disk, but its size is its size
    else:
        path = Path("/dev/zero" if kind == "dev-zero" else "/dev/urandom")
    for command in (["generate", "--spec", str(path), "--out", str(tmp_path / "o")],
                    ["update-spec", "--from", str(path), "--spec", str(tmp_path / "s.json")],
                    ["diff", str(path), SPEC], ["diff", SPEC, str(path)]):  # fmt: skip
        started = time.monotonic()
        code, output = run_cli(*command)
        assert code == 2, (command, output)
        assert str(path) in output and ("not a regular file" in output or "over the limit" in output), output
        assert time.monotonic() - started < 10


# -- found by the diff's oracle: a discriminator whose tag became nullable ---------------------


def test_a_discriminated_union_whose_tag_is_nullable_still_generates_a_working_package(
    tmp_path: Path,
) -> None:
    schemas = {
        "Circle": {"type": "object", "required": ["kind", "r"], "properties": {
            "kind": {"type": ["string", "null"], "enum": ["circle"]}, "r": {"type": "number"}}},
        "Square": {"type": "object", "required": ["kind", "side"], "properties": {
            "kind": {"type": "string", "enum": ["square"]}, "side": {"type": "integer"}}},
    }  # fmt: skip
    union = {"oneOf": [{"$ref": "#/components/schemas/Circle"}, {"$ref": "#/components/schemas/Square"}],
             "discriminator": {"propertyName": "kind"}}  # fmt: skip
    payload = {"type": "object", "required": ["shape"], "properties": {"shape": union}}
    code, output, _ = generate(spec({"shape_v1": payload}, schemas), tmp_path)
    assert code == 0, output
    parses(tmp_path, "pkg", [
        {"event_type": "shape_v1", "shape_v1": {"shape": {"kind": "circle", "r": 1.5}}},
        {"event_type": "shape_v1", "shape_v1": {"shape": {"kind": "square", "side": 2}}},
    ])  # fmt: skip


# -- issue 16's class, round 4: an impossible range in every spelling of its bounds ------------

IMPOSSIBLE_RANGES = {
    "min-above-max": ({"type": "number", "minimum": 5, "maximum": 1}, "minimum 5 is above maximum 1"),
    "exclusive-both-equal": ({"type": "number", "exclusiveMinimum": 5, "exclusiveMaximum": 5}, "exclusiveMinimum 5"),
    "exclusive-min-equals-max": ({"type": "number", "exclusiveMinimum": 5, "maximum": 5}, "exclusiveMinimum 5 and maximum 5"),
    "min-equals-exclusive-max": ({"type": "number", "minimum": 5, "exclusiveMaximum": 5}, "minimum 5 and exclusiveMaximum 5"),
    "exclusive-min-above-max": ({"type": "number", "exclusiveMinimum": 6, "maximum": 5}, "no value can match"),
    "exclusive-max-below-min": ({"type": "integer", "minimum": 6, "exclusiveMaximum": 2}, "no value can match"),
    "openapi-3.0-exclusive-min": ({"type": "number", "minimum": 5, "maximum": 5, "exclusiveMinimum": True},
                                  "minimum 5 with exclusiveMinimum: true"),
    "openapi-3.0-exclusive-max": ({"type": "number", "minimum": 5, "maximum": 5, "exclusiveMaximum": True},
                                  "maximum 5 with exclusiveMaximum: true"),
    "tighter-exclusive-wins": ({"type": "number", "minimum": 3, "exclusiveMinimum": 7, "maximum": 6}, "exclusiveMinimum 7"),
    "no-whole-number": ({"type": "integer", "minimum": 1.2, "maximum": 1.8}, "no whole number"),
    "no-whole-number-exclusive": ({"type": "integer", "exclusiveMinimum": 1, "exclusiveMaximum": 2}, "no whole number"),
    "no-multiple": ({"type": "number", "multipleOf": 5, "minimum": 1, "maximum": 4}, "no multiple of 5"),
    "no-multiple-exclusive": ({"type": "number", "multipleOf": 0.1, "exclusiveMinimum": 0.3, "exclusiveMaximum": 0.4},
                              "no multiple of 0.1"),
    "no-integer-multiple": ({"type": "integer", "multipleOf": 3, "minimum": 4, "maximum": 5}, "multiple of 3"),
    "nullable-integer": ({"type": ["integer", "null"], "minimum": 1.5, "maximum": 1.6}, "no whole number"),
}  # fmt: skip

POSSIBLE_RANGES = {
    "equal-bounds": ({"type": "number", "minimum": 5, "maximum": 5}, 5),
    "exclusive-min-below-max": ({"type": "number", "exclusiveMinimum": 4, "maximum": 5}, 5),
    "whole-number-at-the-top": ({"type": "integer", "minimum": 1.2, "maximum": 2}, 2),
    "decimal-multiple": ({"type": "number", "multipleOf": 0.1, "minimum": 0.3, "maximum": 0.3}, 0.3),
    "openapi-3.0-exclusive-with-room": ({"type": "number", "minimum": 4, "maximum": 5, "exclusiveMinimum": True}, 5),
    "multiple-at-the-bound": ({"type": "integer", "multipleOf": 3, "minimum": 3, "maximum": 3}, 3),
}  # fmt: skip


def _generate_with(constraint: dict[str, Any], tmp_path: Path) -> tuple[int, str]:
    payload = {"type": "object", "properties": {"good": {"type": "string"}, "bad": constraint}}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec({"a_v1": payload})))
    return run_cli("generate", "--spec", str(path), "--out", str(tmp_path / "pkg"),
                   "--package", "pkg", "--constraints")  # fmt: skip


@pytest.mark.parametrize("case", sorted(IMPOSSIBLE_RANGES))
def test_an_impossible_enforced_range_is_refused_in_every_spelling(tmp_path: Path, case: str) -> None:
    constraint, says = IMPOSSIBLE_RANGES[case]
    code, output = _generate_with(constraint, tmp_path)
    assert code == 2, output
    assert "/properties/a_v1/properties/bad/" in output and says in output, output
    assert not (tmp_path / "pkg").exists()


def test_a_possible_range_in_every_spelling_generates_and_its_value_parses(tmp_path: Path) -> None:
    from codegen import constraints

    for case, (constraint, value) in sorted(POSSIBLE_RANGES.items()):
        assert list(constraints.problems(constraint)) == [], case
    payload = {"type": "object", "properties": {name.replace("-", "_").replace(".", "_"): c
                                                 for name, (c, _) in POSSIBLE_RANGES.items()}}  # fmt: skip
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec({"a_v1": payload})))
    code, output = run_cli("generate", "--spec", str(path), "--out", str(tmp_path / "pkg"),
                           "--package", "pkg", "--constraints")  # fmt: skip
    assert code == 0, output
    body = {name.replace("-", "_").replace(".", "_"): v for name, (_, v) in POSSIBLE_RANGES.items()}
    parses(tmp_path / "pkg", "pkg", [{"event_type": "a_v1", "a_v1": body}])


# -- issue 26's g4 and g5: every format, every keyword that closes an object --------------------

# A value each format's type reads, by format (the JSON type's default otherwise).
FORMAT_VALUES = {
    "date-time": "2026-12-06T10:00:00Z", "date-time-local": "2026-12-06T10:00:00", "date": "2026-12-06",
    "time": "10:00:00", "time-local": "10:00:00", "duration": "P1D", "email": "a@example.com",
    "idn-email": "a@example.com", "ipv4": "10.0.0.1", "ipv6": "::1", "ipv4-network": "10.0.0.0/8",
    "ipv6-network": "::/0", "uuid": "8f3c2b1e-5b7a-4c3d-9e2f-1a2b3c4d5e6f", "uri": "https://example.com",
    "decimal": "1.5", "byte": "aGk=", "ulid": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "hostname": "Not A Host!",
    "timestamp with time zone": "2026-12-06T10:00:00Z",
}  # fmt: skip
DEFAULTS = {"integer": 7, "number": 1.5, "string": "text"}
# Read as the JSON value sent, and written back the same (no rewriting type).
KEPT_AS_SENT = {"email", "idn-email", "ulid", "uri", "password", "byte", "hostname", "integer", "unixtime"}


def test_every_format_datamodel_code_generator_knows_reads_with_the_packages_own_dependencies(tmp_path: Path) -> None:
    from datamodel_code_generator.parser.jsonschema import json_schema_data_formats

    pairs = sorted((t, f) for t, formats in json_schema_data_formats.items() for f in formats if f != "default")
    assert len(pairs) > 40
    properties, body = {}, {}
    for n, (kind, fmt) in enumerate(pairs):
        properties[f"p{n}"] = {"type": kind, "format": fmt}
        value = FORMAT_VALUES.get(fmt, DEFAULTS[kind]) if kind == "string" else DEFAULTS[kind]
        if kind == "string" and fmt.startswith("uuid"):
            value = FORMAT_VALUES["uuid"]
        body[f"p{n}"] = value
    code, output, package = generate(spec({"a_v1": {"type": "object", "properties": properties}}), tmp_path)
    assert code == 0, output
    allowed = {"__future__", "datetime", "decimal", "ipaddress", "pathlib", "typing", "uuid", "pydantic", "pkg"}
    for module in (package / "models").glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                assert node.module.split(".")[0] in allowed, f"{module.name} imports {node.module}"
    kept = [f"p{n}" for n, (kind, fmt) in enumerate(pairs) if fmt in KEPT_AS_SENT or kind != "string" and fmt != "double"]
    result = python(
        tmp_path,
        "import json, pkg\n"
        f"body = {json.dumps(body)!r}\n"
        "event = pkg.parse_event(json.dumps({'event_type': 'a_v1', 'a_v1': json.loads(body)}))\n"
        "dumped = event.model_dump(mode='json', by_alias=True, exclude_unset=True)['a_v1']\n"
        f"print(json.dumps({{k: dumped[k] for k in {kept!r}}}))\n",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == {k: body[k] for k in kept}, "read and written back as sent"


@pytest.mark.parametrize(
    "closing",
    [{"additionalProperties": False}, {"unevaluatedProperties": False}, {"additionalProperties": {"not": {}}},
     {"unevaluatedProperties": {"not": {}}}, {"additionalProperties": False, "unevaluatedProperties": False}],
    ids=["additional-false", "unevaluated-false", "additional-not", "unevaluated-not", "both"],
)  # fmt: skip
def test_an_object_closed_in_any_spelling_keeps_a_property_added_later(tmp_path: Path, closing: dict[str, Any]) -> None:
    payload = {"type": "object", "properties": {"a": {"type": "string"}}, **closing}
    code, output, _ = generate(spec({"a_v1": payload}), tmp_path)
    assert code == 0, output
    parses(tmp_path, "pkg", [{"event_type": "a_v1", "a_v1": {"a": "x", "added_later": 1}}])


def test_the_modules_the_spec_shapes_compile_at_five_thousand_webhooks() -> None:
    """issue 26's g3: at 3,000 webhooks events.py did not compile (RecursionError: the union
    nested one level per webhook). The templated modules, unformatted, at 5,000."""
    from codegen.emit.templates import render_models_init, render_package

    hooks = {f"thing_{n}.changed_v1": {"type": "object", "properties": {"a": {"type": "string"}}} for n in range(5000)}
    parsed = parser.parse(spec(hooks), "spec.json")
    names = {hook.event_type: hook.class_name for hook in parsed.webhooks}
    where = {name: name.lower() for name in names.values()}
    modules = render_package(parsed, "pkg", names, where)
    modules["models/__init__.py"] = render_models_init(parsed, where)
    for name, text in modules.items():
        if name.endswith(".py"):
            compile(text, name, "exec")


@pytest.mark.parametrize(
    ("text", "name", "says"),
    [
        ('{"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "webhooks": {"a_v1": {}, "a_v1": {}}}',
         "spec.json", "at /webhooks/a_v1: the key 'a_v1' appears twice"),
        (('{"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "webhooks": {},'
         ' "components": {"schemas": {"A": {"type": "object", "type": "string"}}}}'),
         "spec.json", "at /components/schemas/A/type: the key 'type' appears twice"),
        ("openapi: 3.1.0\ninfo: {title: t, version: '1'}\nwebhooks:\n  a_v1: {}\n  a_v1: {}\n",
         "spec.yaml", "spec.yaml:5:3: invalid YAML: the key 'a_v1' appears twice"),
    ],
    ids=["json-webhook", "json-nested", "yaml-webhook"],
)  # fmt: skip
def test_a_key_written_twice_is_refused_with_its_place_not_silently_the_last(
    tmp_path: Path, text: str, name: str, says: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    code, output = run_cli("generate", "--spec", str(path), "--out", str(tmp_path / "out"), "--package", "pkg")
    assert code == 2, output
    assert says in output, output
    assert not (tmp_path / "out").exists()


def test_a_default_of_another_type_is_read_as_absent_and_one_that_fits_is_kept(tmp_path: Path) -> None:
    """issue 26's g6: ``n: int | None = "not-an-int"`` was generated as written."""
    payload = {"type": "object", "properties": {
        "n": {"type": "integer", "default": "not-an-int"}, "s": {"type": ["string", "null"], "default": 3},
        "f": {"type": "number", "default": 2}, "k": {"type": "integer", "default": 5},
        "z": {"type": "string", "nullable": True, "default": None},
    }}  # fmt: skip
    code, output, package = generate(spec({"a_v1": payload}), tmp_path)
    assert code == 0, output
    assert "not-an-int" not in "".join(p.read_text() for p in (package / "models").glob("*.py"))
    result = python(
        tmp_path,
        "import json, pkg\n"
        "e = pkg.parse_event(json.dumps({'event_type': 'a_v1', 'a_v1': {}}))\n"
        "p = e.payload\n"
        "print(json.dumps([p.n, p.s, p.f, p.k, p.z]))\n",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == [None, None, 2, 5, None]


def _nested(depth: int) -> tuple[dict[str, Any], Any]:
    schema: dict[str, Any] = {"type": "string"}
    body: Any = "x"
    for _ in range(depth):
        schema, body = {"type": "object", "properties": {"c": schema}}, {"c": body}
    return schema, body


def test_a_payload_nested_too_deep_for_the_models_is_refused_at_its_webhook(tmp_path: Path) -> None:
    """issue 26's g6: at 70-97 levels the package generated, and every valid body failed
    with RecursionError."""
    from codegen.checks import MAX_NESTING

    deep, _ = _nested(MAX_NESTING + 5)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec({"deep_v1": deep, "fine_v1": _nested(3)[0]})))
    code, output = run_cli("generate", "--spec", str(path), "--out", str(tmp_path / "out"), "--package", "pkg")
    assert code == 2, output
    assert "at /webhooks/deep_v1" in output and f"can read at most {MAX_NESTING}" in output
    assert "fine_v1" not in output


def test_a_payload_at_the_nesting_limit_reads_its_bodies_and_recursion_adds_no_depth(tmp_path: Path) -> None:
    from codegen.checks import MAX_NESTING

    # The envelope and the payload's own level come on top of the nesting counted here.
    schema, body = _nested(MAX_NESTING - 3)
    tree = {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}}}}
    hooks = {"deep_v1": schema, "tree_v1": {"$ref": "#/components/schemas/Node"}}
    code, output, _ = generate(spec(hooks, {"Node": tree}), tmp_path)
    assert code == 0, output
    parses(tmp_path, "pkg", [{"event_type": "deep_v1", "deep_v1": body},
                             {"event_type": "tree_v1", "tree_v1": {"children": [{"children": [{"children": []}]}]}}])  # fmt: skip


# -- what GitHub's spec found in the model split and the tolerant reader -------------------


def test_an_enum_member_named_like_a_class_does_not_import_that_class(tmp_path: Path) -> None:
    schemas = {
        "Team": {"type": "object", "properties": {"id": {"type": "integer"}}},
        "Kind": {"type": "string", "enum": ["Team", "User"]},
        "P": {"type": "object", "properties": {"kind": {"$ref": "#/components/schemas/Kind"},
                                               "team": {"$ref": "#/components/schemas/Team"}}},
    }  # fmt: skip
    code, output, package = generate(spec({"a.b_v1": {"$ref": "#/components/schemas/P"}}, schemas), tmp_path)
    assert code == 0, output
    assert "import Team" not in (package / "models" / "kind.py").read_text()
    lint = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ruff"), "check", "--config", str(ROOT / "pyproject.toml"), str(package)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert lint.returncode == 0, lint.stdout


def test_a_type_for_unlisted_properties_beside_listed_ones_does_not_refuse_a_new_property(
    tmp_path: Path,
) -> None:
    payload = {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}},
               "additionalProperties": {"type": "string"}}  # fmt: skip
    code, output, package = generate(spec({"a.b_v1": payload}), tmp_path)
    assert code == 0, output
    # Added upstream with another type than the unlisted ones had: still read, kept as sent.
    parses(tmp_path, "pkg", [{"event_type": "a.b_v1", "a.b_v1": {"id": "x", "new": {"n": 1}}}])
    assert "Dict" not in "".join(p.read_text() for p in (package / "models").glob("*.py"))


def test_an_intersection_with_a_union_generates_a_package_that_imports(tmp_path: Path) -> None:
    """``allOf: [Person, oneOf: [Person, Circle]]`` made ``class X(Person, Person)`` (a
    TypeError at import, found by the diff's fuzzer, seed 5096)."""
    schemas = {
        "Person": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
        "Circle": {"type": "object", "required": ["radius"], "properties": {"radius": {"type": "number"}}},
        "Either": {"oneOf": [{"$ref": "#/components/schemas/Person"}, {"$ref": "#/components/schemas/Circle"}]},
    }  # fmt: skip
    payload = {"type": "object", "properties": {"who": {"allOf": [
        {"$ref": "#/components/schemas/Person"}, {"$ref": "#/components/schemas/Either"}]}}}  # fmt: skip
    code, output, _ = generate(spec({"a.b_v1": payload}, schemas), tmp_path)
    assert code == 0, output
    parses(tmp_path, "pkg", [{"event_type": "a.b_v1", "a.b_v1": {"who": {"name": "n"}}}])
