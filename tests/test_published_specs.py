"""incident.io's API spec as it is published: OpenAPI 3.0.3 with ``x-webhooks`` (fixtures: two
real versions, reduced), read as well as the docs' ``webhooks.json``, by a tolerant reader."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, spec_examples, tree_hash
from golden_cases import expected_dir, spec_path, spec_shaped
from packages import generate, mypy, python, round_trip, run_cli

from codegen import diff, loader, parser
from codegen.output import read_tree

FIXTURES = ROOT / "tests" / "fixtures"
OLD = FIXTURES / "openapi3-2024-11-01.json"
NEW = FIXTURES / "openapi3-2026-07-30.json"
COUNTS = {OLD: 15, NEW: 33}
GRANTED = "private_incident.membership_granted_v1"


def models_text(package: Path) -> str:
    """Every model module of a generated package, as one text."""
    return "".join(p.read_text() for p in sorted((package / "models").glob("*.py")))


def load(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both fixtures generated once, as ``old`` and ``new``."""
    root = tmp_path_factory.mktemp("published")
    for name, spec in (("old", OLD), ("new", NEW)):
        code, output = run_cli(
            "generate", "--spec", str(spec), "--out", str(root / name), "--package", name
        )
        assert code == 0, output
        assert f"({COUNTS[spec]} webhooks," in output
    return root


@pytest.mark.parametrize(("name", "spec"), [("old", OLD), ("new", NEW)])
def test_each_published_spec_generates_every_webhook_and_every_example_round_trips(
    packages: Path, name: str, spec: Path
) -> None:
    examples = list(spec_examples(spec).values())
    assert len(examples) == COUNTS[spec]
    result = round_trip(packages, name, examples)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ok {COUNTS[spec]}"


def test_the_published_spec_packages_pass_mypy_strict_and_ruff(packages: Path) -> None:
    typed = mypy(packages, "old", "new")
    assert typed.returncode == 0, typed.stdout
    linted = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--config", str(ROOT / "pyproject.toml"),
         "--no-cache", "old", "new"],
        cwd=packages, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert linted.returncode == 0, linted.stdout


def test_models_from_2024_parse_every_2026_example_of_the_webhooks_they_know(
    packages: Path,
) -> None:
    old_types = set(spec_examples(OLD))
    newer = [body for event, body in spec_examples(NEW).items() if event in old_types]
    assert len(newer) == len(old_types)
    result = python(
        packages,
        "import json, old\n"
        f"for body in json.loads({json.dumps(newer)!r}):\n"
        "    event = old.parse_event(json.dumps(body))\n"
        "    assert type(event) is old.EVENT_MODELS[body['event_type']]\n"
        "print(len(json.loads(" + repr(json.dumps(newer)) + ")))\n",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(len(old_types))


def test_the_diff_from_2024_to_2026_has_no_breaking_payload_change() -> None:
    code, output = run_cli("diff", str(OLD), str(NEW), "--format", "json")
    report = json.loads(output)
    assert report["breaking"] == 0
    added = {c["location"] for c in report["changes"] if c["kind"] == "webhook added"}
    assert len(added) == COUNTS[NEW] - COUNTS[OLD]
    # A nested schema renamed upstream renames its class: no payload changed, code did.
    assert {(c["severity"], c["location"]) for c in report["changes"] if c["severity"] == "source"} == {
        ("source", "APIKeyV2")
    }
    assert code == 0


def renamed_envelopes(doc: dict[str, Any]) -> dict[str, Any]:
    """The 2025 rename upstream: every payload envelope schema under another name."""
    doc = copy.deepcopy(doc)
    schemas = doc["components"]["schemas"]
    text = json.dumps(doc)
    for name in [n for n in schemas if n.endswith("ResponseBody")]:
        text = text.replace(f'"#/components/schemas/{name}"', f'"#/components/schemas/Renamed{name}"')
    doc = json.loads(text)
    schemas = doc["components"]["schemas"]
    for name in [n for n in list(schemas) if n.endswith("ResponseBody")]:
        schemas["Renamed" + name] = schemas.pop(name)
    return doc


def test_renamed_envelope_schemas_give_the_same_package_and_no_change(tmp_path: Path) -> None:
    renamed = renamed_envelopes(load(NEW))
    assert any(n.startswith("Renamed") for n in renamed["components"]["schemas"])
    code, output, out = generate(renamed, tmp_path / "renamed", "incident_webhooks")
    assert code == 0, output
    assert run_cli("generate", "--spec", str(NEW), "--out", str(tmp_path / "original"))[0] == 0
    assert tree_hash(out.parent) == tree_hash(tmp_path / "original")
    (tmp_path / "renamed.json").write_text(json.dumps(renamed))
    code, output = run_cli("diff", str(NEW), str(tmp_path / "renamed.json"), "--format", "json")
    assert json.loads(output)["changes"] == []


def as_api_spec(doc: dict[str, Any]) -> dict[str, Any]:
    """A docs-layout spec moved into the API spec's layout: OpenAPI 3.0.3, ``x-webhooks``
    keyed /x-webhooks/<event>, method ``get``, an audit-log item and REST paths beside it,
    and 3.0's ``nullable: true`` where 3.1 writes a type list."""
    doc = copy.deepcopy(doc)
    doc["openapi"] = "3.0.3"
    hooks = doc.pop("webhooks")
    doc["x-webhooks"] = {f"/x-webhooks/{k}": {"get": v["post"]} for k, v in hooks.items()}
    doc["x-webhooks"]["/x-audit-logs/thing.created.1"] = {"get": {"responses": {}}}
    doc["paths"] = {"/v1/things": {"get": {"responses": {"200": {"description": "OK"}}}}}
    text = json.dumps(doc).replace('"type": ["string", "null"]', '"type": "string", "nullable": true')
    return json.loads(text)


@pytest.mark.parametrize("case", ["membership_granted", "schema_features"])
def test_the_same_webhooks_in_either_layout_give_byte_identical_packages(
    tmp_path: Path, case: str
) -> None:
    docs = json.loads(spec_path(case).read_text())
    api = as_api_spec(docs)
    if case == "schema_features":
        assert "nullable" in json.dumps(api)
    code, output, out = generate(api, tmp_path / "api", "incident_webhooks")
    assert code == 0, output
    assert spec_shaped(read_tree(out.parent)) == read_tree(expected_dir(case))


def test_schemas_no_webhook_reaches_are_not_read_even_when_broken(tmp_path: Path) -> None:
    doc = load(NEW)
    doc["components"]["schemas"]["Unreached"] = {"type": "no-such-type", "pattern": "("}
    doc["x-webhooks"]["/x-audit-logs/broken.1"] = "not even an object"
    code, output, _ = generate(doc, tmp_path, "pkg")
    assert code == 0, output


def test_phantom_required_entries_make_no_field_and_no_change(tmp_path: Path) -> None:
    base = json.loads(spec_path("membership_granted").read_text())
    phantom = copy.deepcopy(base)
    phantom["components"]["schemas"]["WebhookIncidentUserV2"]["required"] += ["declared_nowhere"]
    code, _, out = generate(phantom, tmp_path / "phantom", "incident_webhooks")
    assert code == 0
    assert "declared_nowhere" not in models_text(out)
    assert spec_shaped(read_tree(out.parent)) == read_tree(expected_dir("membership_granted"))
    report = diff.compare(parser.parse(base, "old"), parser.parse(phantom, "new"))
    assert report.changes == {}


def with_name(max_length: int | None, *, pattern: str | None = None) -> dict[str, Any]:
    doc = json.loads(spec_path("membership_granted").read_text())
    prop: dict[str, Any] = {"type": "string"}
    if max_length is not None:
        prop["maxLength"] = max_length
    if pattern is not None:
        prop["pattern"] = pattern
    doc["components"]["schemas"]["WebhookIncidentUserV2"]["properties"]["name"] = prop
    return doc


def test_value_constraints_are_not_enforced_by_default_and_are_with_the_switch(
    tmp_path: Path,
) -> None:
    doc = with_name(3, pattern="^[a-z]+$")
    body = {"event_type": GRANTED, GRANTED: {"incident_id": "i", "user_id": "u", "name": "TOO LONG"}}
    check = (
        "import json, sys, {p}\n"
        f"body = {json.dumps(body)!r}\n"
        "try:\n"
        "    {p}.parse_event(body)\n"
        "except {p}.InvalidPayload:\n"
        "    sys.exit(3)\n"
    )
    assert generate(doc, tmp_path, "tolerant")[0] == 0
    assert "max_length" not in models_text(tmp_path / "tolerant" / "tolerant")
    assert python(tmp_path, check.replace("{p}", "tolerant")).returncode == 0
    spec = tmp_path / "tolerant.spec.json"
    code, _ = run_cli(
        "generate", "--constraints", "--spec", str(spec), "--out", str(tmp_path / "strict"),
        "--package", "strict",
    )  # fmt: skip
    assert code == 0
    assert "max_length=3" in models_text(tmp_path / "strict" / "strict")
    assert python(tmp_path, check.replace("{p}", "strict")).returncode == 3


def test_the_switch_is_read_from_the_projects_pyproject(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "spec.json").write_text(json.dumps(with_name(3)))
    (tmp_path / "pyproject.toml").write_text("[tool.codegen]\nconstraints = true\n")
    monkeypatch.chdir(tmp_path)
    package = tmp_path / "pkg" / "incident_webhooks"
    assert run_cli("generate", "--spec", "spec.json", "--out", "pkg")[0] == 0
    assert "max_length=3" in models_text(package)
    assert run_cli("generate", "--no-constraints", "--spec", "spec.json", "--out", "pkg")[0] == 0
    assert "max_length" not in models_text(package)
    (tmp_path / "pyproject.toml").write_text("[tool.codegen]\nconstraints = 'yes'\n")
    code, output = run_cli("generate", "--spec", "spec.json", "--out", "pkg")
    assert code == 2 and "constraints must be true or false" in output


@pytest.mark.parametrize(
    ("old_max", "new_max", "enforced", "severity", "kind"),
    [
        (50, None, False, "informational", "constraint loosened"),
        (50, 10, False, "informational", "constraint tightened"),
        (50, None, True, "breaking", "constraint loosened"),
        (50, 100, True, "breaking", "constraint loosened"),
        (50, 10, True, "compatible", "constraint tightened"),
        (None, 10, True, "compatible", "constraint tightened"),
    ],
)
def test_constraint_changes_are_classed_by_what_the_models_enforce(
    old_max: int | None, new_max: int | None, enforced: bool, severity: str, kind: str
) -> None:
    old = parser.parse(with_name(old_max), "old", constraints=enforced)
    new = parser.parse(with_name(new_max), "new", constraints=enforced)
    report = diff.compare(old, new, source=False)
    assert [(c.severity, c.kind) for c in report.changes] == [(severity, kind)]
    assert report.has_breaking is (severity == "breaking")


def test_a_renamed_nested_schema_is_a_source_change_that_fails_on_breaking(tmp_path: Path) -> None:
    old = json.loads(spec_path("membership_granted").read_text())
    text = json.dumps(old).replace("WebhookIncidentUserV2", "IncidentUserV3")
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(text)
    code, output = run_cli("diff", str(tmp_path / "old.json"), str(tmp_path / "new.json"), "--fail-on-breaking")
    assert code == 1
    assert "0 breaking, 1 source, 0 compatible, 0 informational" in output
    assert "SOURCE        Python name removed: WebhookIncidentUserV2 (model class)" in output
    code, output = run_cli(
        "diff", str(tmp_path / "old.json"), str(tmp_path / "new.json"), "--format", "markdown"
    )
    assert "| ⚠️ source | Python name removed | `WebhookIncidentUserV2` |" in output


def test_update_spec_takes_the_api_spec_as_published_byte_for_byte(tmp_path: Path) -> None:
    target = tmp_path / "webhooks.json"
    target.write_bytes(OLD.read_bytes())
    code, output = run_cli("update-spec", "--from", str(NEW), "--spec", str(target))
    assert code == 0, output
    assert target.read_bytes() == NEW.read_bytes()
    assert "0 breaking, 1 source" in output
    assert loader.load_spec(target) == load(NEW)
