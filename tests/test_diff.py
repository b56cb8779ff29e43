"""``python -m codegen diff``: what changed between two specs, classed for consumers."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import SPEC
from golden_cases import spec_path

from codegen.cli import main

GRANTED = "private_incident.membership_granted_v1"
REVOKED = "private_incident.membership_revoked_v1"
BASE = json.loads(spec_path("membership_granted").read_text())
BASE["webhooks"][REVOKED] = BASE["webhooks"][GRANTED]


def schemas(doc: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = doc["components"]["schemas"]
    return result


def user(doc: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = schemas(doc)["WebhookIncidentUserV2"]
    return result


def run_diff(
    tmp_path: Path, old: dict[str, Any], new: dict[str, Any], *flags: str
) -> int:
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    return main(["diff", str(tmp_path / "old.json"), str(tmp_path / "new.json"), "--format", "json", *flags])


def report(tmp_path: Path, capsys: pytest.CaptureFixture[str], change: Callable[[dict[str, Any]], Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
    old = copy.deepcopy(base or BASE)
    new = copy.deepcopy(old)
    change(new)
    capsys.readouterr()
    run_diff(tmp_path, old, new)
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def test_one_removed_property_and_one_added_enum_value_are_one_breaking_and_one_compatible(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def change(doc: dict[str, Any]) -> None:
        incident = schemas(doc)["IncidentV2"]
        del incident["properties"]["summary"]
        incident["properties"]["mode"]["enum"].append("drill")

    result = report(tmp_path, capsys, change, base=json.loads(SPEC.read_text()))
    assert (result["breaking"], result["compatible"]) == (1, 1)
    kinds = [(c["severity"], c["kind"], c["location"], c["detail"]) for c in result["changes"]]
    assert kinds == [
        ("breaking", "property removed", "IncidentV2.summary", ""),
        ("compatible", "enum value added", "IncidentV2.mode", '"drill"'),
    ]


CHANGES: dict[str, tuple[Callable[[dict[str, Any]], Any], str, str, str]] = {
    "webhook-removed": (lambda d: d["webhooks"].pop(REVOKED), "breaking", "webhook removed", REVOKED),
    "webhook-added": (
        lambda d: d["webhooks"].update({"private_incident.membership_extended_v1": d["webhooks"][GRANTED]}),
        "compatible", "webhook added", "private_incident.membership_extended_v1",
    ),
    "property-removed": (
        lambda d: user(d)["properties"].pop("actor_user_id"), "breaking", "property removed",
        "WebhookIncidentUserV2.actor_user_id",
    ),
    "optional-property-added": (
        lambda d: user(d)["properties"].update(team={"type": "string"}), "compatible", "property added",
        "WebhookIncidentUserV2.team",
    ),
    "required-to-optional": (
        lambda d: user(d)["required"].remove("user_id"), "breaking", "required -> optional",
        "WebhookIncidentUserV2.user_id",
    ),
    "optional-to-required": (
        lambda d: user(d)["required"].append("actor_user_id"), "compatible", "optional -> required",
        "WebhookIncidentUserV2.actor_user_id",
    ),
    "type-changed": (
        lambda d: user(d)["properties"]["user_id"].update(type="integer"), "breaking", "type changed",
        "WebhookIncidentUserV2.user_id",
    ),
    "format-added": (
        lambda d: user(d)["properties"]["user_id"].update(format="uuid"), "compatible", "format changed",
        "WebhookIncidentUserV2.user_id",
    ),

    "became-nullable": (
        lambda d: user(d)["properties"]["user_id"].update(type=["string", "null"]), "breaking",
        "became nullable", "WebhookIncidentUserV2.user_id",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CHANGES.values(), ids=CHANGES.keys())
def test_each_kind_of_change_is_classed_for_consumers(
    case: tuple[Callable[[dict[str, Any]], Any], str, str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    change, severity, kind, location = case
    result = report(tmp_path, capsys, change)
    assert [(c["severity"], c["kind"], c["location"]) for c in result["changes"] if c["severity"] != "source"] == [
        (severity, kind, location)
    ]


def test_a_format_removed_or_changed_is_breaking(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = copy.deepcopy(BASE)
    user(base)["properties"]["user_id"]["format"] = "uuid"
    for new_format in (None, "date-time"):

        def change(doc: dict[str, Any], new_format: str | None = new_format) -> None:
            user(doc)["properties"]["user_id"].pop("format")
            if new_format:
                user(doc)["properties"]["user_id"]["format"] = new_format

        result = report(tmp_path, capsys, change, base=base)
        assert [(c["severity"], c["kind"]) for c in result["changes"]] == [("breaking", "format changed")]


def test_the_source_section_lists_the_class_and_handler_methods_of_a_removed_webhook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = report(tmp_path, capsys, lambda d: d["webhooks"].pop(REVOKED))
    source = {(c["location"], c["detail"]) for c in result["changes"] if c["severity"] == "source"}
    assert source == {
        ("PrivateIncidentMembershipRevokedV1", "event model"),
        ("WebhookHandlers.on_private_incident_membership_revoked_v1", "handler method"),
    }


def test_enum_values_removed_and_added_and_nullability_dropped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = copy.deepcopy(BASE)
    user(base)["properties"]["role"] = {"type": ["string", "null"], "enum": ["owner", "viewer", None]}

    def change(doc: dict[str, Any]) -> None:
        user(doc)["properties"]["role"] = {"type": "string", "enum": ["owner", "admin"]}

    result = report(tmp_path, capsys, change, base=base)
    found = {(c["severity"], c["kind"], c["detail"]) for c in result["changes"]}
    assert found == {
        ("breaking", "enum value removed", '"viewer"'),
        ("compatible", "enum value added", '"admin"'),
        ("compatible", "no longer nullable", ""),
    }


def test_a_change_in_a_shared_nested_schema_is_reported_once_with_every_webhook_it_reaches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = json.loads(SPEC.read_text())
    result = report(tmp_path, capsys, lambda d: schemas(d)["SeverityV2"]["properties"].pop("rank"), base=spec)
    (change,) = result["changes"]
    assert (change["kind"], change["location"]) == ("property removed", "SeverityV2.rank")
    assert "public_incident.incident_created_v2" in change["webhooks"]
    assert "public_incident.incident_updated_v2" in change["webhooks"]


def test_identical_and_recursive_specs_report_no_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for spec in (SPEC, spec_path("schema_features")):
        doc = json.loads(spec.read_text())
        assert report(tmp_path, capsys, lambda d: None, base=doc)["changes"] == []


def test_fail_on_breaking_exits_1_only_when_a_change_is_breaking(tmp_path: Path) -> None:
    added, removed = copy.deepcopy(BASE), copy.deepcopy(BASE)
    user(added)["properties"]["team"] = {"type": "string"}
    user(removed)["properties"].pop("actor_user_id")
    assert run_diff(tmp_path, BASE, added, "--fail-on-breaking") == 0
    assert run_diff(tmp_path, BASE, removed, "--fail-on-breaking") == 1
    assert run_diff(tmp_path, BASE, removed) == 0


def test_markdown_output_is_a_table_for_a_pull_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = copy.deepcopy(BASE)
    user(new)["properties"].pop("actor_user_id")
    (tmp_path / "old.json").write_text(json.dumps(BASE))
    (tmp_path / "new.json").write_text(json.dumps(new))
    assert main(["diff", str(tmp_path / "old.json"), str(tmp_path / "new.json"), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("### Webhook spec changes\n")
    assert "**1 breaking, 0 source, 0 compatible, 0 informational**" in out
    row = "| ⚠️ breaking | property removed | `WebhookIncidentUserV2.actor_user_id` |  | "
    assert row + f"{GRANTED}, {REVOKED} |" in out


def test_text_output_names_severity_kind_place_and_webhooks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = copy.deepcopy(BASE)
    user(new)["properties"]["team"] = {"type": "string"}
    (tmp_path / "old.json").write_text(json.dumps(BASE))
    (tmp_path / "new.json").write_text(json.dumps(new))
    main(["diff", str(tmp_path / "old.json"), str(tmp_path / "new.json")])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(": 0 breaking, 0 source, 1 compatible, 0 informational")
    assert lines[1].split() == ["COMPATIBLE", "property", "added:", "WebhookIncidentUserV2.team", "(optional)"]
    assert lines[2].split() == ["webhooks:", GRANTED + ",", REVOKED]
