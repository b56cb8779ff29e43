"""A bad spec fails safely: one clear message naming the place, a non-zero exit, no
traceback, and the generated package left byte-for-byte as it was."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, tree_hash
from golden_cases import spec_path

from codegen.cli import main

GENERATED = ROOT / "generated"
BASE = json.loads(spec_path("membership_granted").read_text())
USER = ("components", "schemas", "WebhookIncidentUserV2")


def edited(change: Callable[[dict[str, Any]], None]) -> str:
    doc = copy.deepcopy(BASE)
    change(doc)
    return json.dumps(doc, indent=2)


def user_property(schema: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        doc["components"]["schemas"]["WebhookIncidentUserV2"]["properties"]["user"] = schema

    return change


def second_webhook(name: str) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        doc["webhooks"][name] = doc["webhooks"]["private_incident.membership_granted_v1"]

    return change


def envelope(doc: dict[str, Any]) -> dict[str, Any]:
    body = doc["components"]["schemas"]["WebhooksPrivateIncidentMembershipGrantedV1ResponseBody"]
    properties: dict[str, Any] = body["properties"]
    return properties


# name -> (file name, content, what the message must say)
CASES: dict[str, tuple[str, str, str]] = {
    "invalid-json": ("spec.json", '{"openapi": "3.1.0",\n  "webhooks": {,}}', "spec.json:2:16: invalid JSON"),
    "invalid-yaml": ("spec.yaml", "openapi: 3.1.0\nwebhooks:\n  a: [\n", "spec.yaml:4:1: invalid YAML"),
    "truncated-json": ("spec.json", json.dumps(BASE)[:300], "truncated"),
    "empty": ("spec.json", "", "the file is empty"),
    "html": ("spec.json", "<!doctype html><html><body>502 Bad Gateway</body></html>", "HTML"),
    "swagger-2": ("spec.json", '{"swagger": "2.0", "paths": {}}', "at /swagger: Swagger 2.0 is not supported; give the docs' webhooks.json"),
    "not-openapi-3": ("spec.json", '{"openapi": "4.0", "paths": {}}', "at /openapi: not an OpenAPI 3.x"),
    "both-layouts": (
        "spec.json",
        '{"openapi": "3.1.0", "webhooks": {}, "x-webhooks": {}}',
        "at /webhooks: webhooks in two layouts: here and at /x-webhooks",
    ),
    "no-webhooks": ("spec.json", '{"openapi": "3.1.0", "paths": {}}', "has no webhooks"),
    "dangling-ref": (
        "spec.json",
        edited(user_property({"$ref": "#/components/schemas/Missing"})),
        (
            "at /components/schemas/WebhookIncidentUserV2/properties/user/$ref: $ref "
            "'#/components/schemas/Missing' does not resolve"
        ),
    ),
    "same-python-name": (
        "spec.json",
        edited(second_webhook("private-incident.membership-granted-v1")),
        "both become the Python name 'PrivateIncidentMembershipGrantedV1'",
    ),
    "name-taken-by-a-schema": (
        "spec.json",
        edited(second_webhook("webhook_incident.user_v2")),
        "becomes the Python name 'WebhookIncidentUserV2', which is already taken",
    ),
    "external-ref": (
        "spec.json",
        edited(user_property({"$ref": "other.json#/User"})),
        "at /components/schemas/WebhookIncidentUserV2/properties/user/$ref: unsupported $ref",
    ),
    "unknown-type": (
        "spec.json",
        edited(user_property({"type": "frobnicate"})),
        "at /components/schemas/WebhookIncidentUserV2/properties/user/type: unsupported type",
    ),
    "invalid-pattern": (
        "spec.json",
        edited(user_property({"type": "string", "pattern": "(unclosed"})),
        "properties/user/pattern: pattern is not a valid regular expression",
    ),
    "no-payload-schema": (
        "spec.json",
        edited(lambda d: d["webhooks"]["private_incident.membership_granted_v1"]["post"].pop("responses")),
        "at /webhooks/private_incident.membership_granted_v1/post: no JSON payload schema",
    ),
    "payload-not-a-schema": (
        "spec.json",
        edited(lambda d: envelope(d).update({"private_incident.membership_granted_v1": None})),
        "properties/private_incident.membership_granted_v1: a schema must be an object",
    ),
    "ambiguous-payload-key": (
        "spec.json",
        edited(
            lambda d: [
                envelope(d).pop("private_incident.membership_granted_v1"),
                envelope(d).update({"a": {}, "b": {}}),
            ]
        ),
        "cannot tell which property holds the payload",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_bad_spec_fails_with_a_located_message_and_leaves_generated_untouched(
    case: tuple[str, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name, content, expected = case
    spec = tmp_path / name
    spec.write_text(content)
    before = tree_hash(GENERATED)
    assert main(["generate", "--spec", str(spec), "--out", str(GENERATED)]) == 2
    assert tree_hash(GENERATED) == before
    err = capsys.readouterr().err
    assert expected in err
    assert str(spec) in err
    assert "Traceback" not in err


def test_the_command_line_shows_no_traceback_for_a_bad_spec(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(CASES["dangling-ref"][1])
    before = tree_hash(GENERATED)
    result = subprocess.run(
        [sys.executable, "-m", "codegen", "generate", "--spec", str(spec)],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: the spec cannot be used (1 problem):\n")
    assert tree_hash(GENERATED) == before


def test_every_problem_in_a_spec_is_reported_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def two_problems(doc: dict[str, Any]) -> None:
        user_property({"$ref": "#/components/schemas/Missing"})(doc)
        doc["components"]["schemas"]["WebhookIncidentUserV2"]["properties"]["when"] = {"type": "datetime"}

    spec = tmp_path / "spec.json"
    spec.write_text(edited(two_problems))
    assert main(["generate", "--spec", str(spec), "--out", str(tmp_path / "generated")]) == 2
    err = capsys.readouterr().err
    assert "(2 problems)" in err
    assert "does not resolve" in err and "unsupported type 'datetime'" in err
    assert not (tmp_path / "generated").exists()


def test_a_recursive_schema_generates_and_parses(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    assert main(["generate", "--spec", str(spec_path("schema_features")), "--out", str(out)]) == 0
    body = {
        "event_type": "public_incident.incident_updated_v2",
        "public_incident.incident_updated_v2": {
            "id": "a", "status": "active", "labels": [],
            "parent": {"id": "b", "status": "closed", "labels": [], "parent": {"id": "c", "status": "triage", "labels": []}},
        },
    }  # fmt: skip
    code = (
        "import json, incident_webhooks as w\n"
        f"e = w.parse_event({json.dumps(body)!r})\n"
        "print(e.payload.parent.parent.id, type(e.payload.parent.parent).__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True,
        env={"PYTHONPATH": str(out), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["c", "IncidentV2"]
