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


# -- issue 16's class: a property whose schema moves between $ref and a composition ----------

_R = "#/components/schemas/"
_A = {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}, "n": {"type": "integer"}}}
_COMPOSITION_SCHEMAS = {
    "A": _A,
    "B": {"type": "object", "required": ["code"], "properties": {"code": {"type": "integer"}}},
    "S": {"type": "string"},
    "N": {"type": ["string", "null"]},
    "NA": {"anyOf": [{"$ref": _R + "A"}, {"type": "null"}]},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _R + name}


NULL: dict[str, Any] = {"type": "null"}
# (old, new, the most severe class the diff must report): every keyword on both sides, with
# a named schema, an inline one, a nullable named one; None: nothing to report.
COMPOSITION_MOVES: dict[str, tuple[dict[str, Any], dict[str, Any], str | None]] = {
    "ref-to-allOf-of-it": (_ref("A"), {"allOf": [_ref("A")]}, None),
    "ref-to-oneOf-of-it": (_ref("A"), {"oneOf": [_ref("A")]}, None),
    "ref-to-anyOf-of-it": (_ref("A"), {"anyOf": [_ref("A")]}, None),
    "allOf-to-ref": ({"allOf": [_ref("A")]}, _ref("A"), None),
    "oneOf-to-one-of-its-refs": ({"oneOf": [_ref("A"), _ref("B")]}, _ref("A"), None),
    "anyOf-to-ref-of-one-type": ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, _ref("S"), None),
    "inline-to-ref": (copy.deepcopy(_A), _ref("A"), None),
    "ref-to-inline": (_ref("A"), copy.deepcopy(_A), None),
    "ref-to-oneOf-of-inline-copy": (_ref("A"), {"oneOf": [copy.deepcopy(_A)]}, None),
    "nullable-ref-to-anyOf-it-or-null": (_ref("N"), {"anyOf": [_ref("N"), NULL]}, None),
    "anyOf-ref-or-null-to-nullable-ref": ({"anyOf": [_ref("S"), NULL]}, _ref("N"), None),
    "nullable-alias-to-anyOf": (_ref("NA"), {"anyOf": [_ref("A"), NULL]}, None),
    "anyOf-to-nullable-alias": ({"anyOf": [_ref("A"), NULL]}, _ref("NA"), None),
    "oneOf-or-null-to-allOf-nullable": ({"oneOf": [_ref("S"), NULL]}, {"allOf": [_ref("N")]}, None),
    "ref-to-allOf-adding-required": (_ref("A"), {"allOf": [_ref("A"), {"type": "object", "required": ["y"],
                                                             "properties": {"y": {"type": "string"}}}]}, "compatible"),
    "oneOf-to-allOf-of-both": ({"oneOf": [_ref("A"), _ref("B")]}, {"allOf": [_ref("A"), _ref("B")]}, "compatible"),
    "allOf-nullable-to-plain-ref": ({"allOf": [_ref("N")]}, _ref("S"), "compatible"),
    "ref-to-anyOf-or-null": (_ref("A"), {"anyOf": [_ref("A"), NULL]}, "breaking"),
    "ref-to-oneOf-adding-a-variant": (_ref("A"), {"oneOf": [_ref("A"), _ref("B")]}, "breaking"),
    "ref-to-anyOf-adding-a-type": (_ref("S"), {"anyOf": [_ref("S"), {"type": "integer"}]}, "breaking"),
    "ref-to-allOf-of-another": (_ref("A"), {"allOf": [_ref("B")]}, "breaking"),
    "ref-to-anyOf-of-another": (_ref("A"), {"anyOf": [_ref("B")]}, "breaking"),
    "ref-to-oneOf-of-another-type": (_ref("S"), {"oneOf": [{"type": "integer"}]}, "breaking"),
    "oneOf-to-allOf-of-another-type": ({"oneOf": [_ref("S")]}, {"allOf": [{"type": "integer"}]}, "breaking"),
    "allOf-to-oneOf-adding-a-type": ({"allOf": [_ref("S")]}, {"oneOf": [_ref("S"), {"type": "integer"}]}, "breaking"),
    "allOf-of-both-to-oneOf": ({"allOf": [_ref("A"), _ref("B")]}, {"oneOf": [_ref("A"), _ref("B")]}, "breaking"),
    "ref-to-allOf-of-nullable": (_ref("S"), {"allOf": [_ref("N")]}, "breaking"),
    "ref-to-oneOf-of-nullable": (_ref("S"), {"oneOf": [_ref("N")]}, "breaking"),
    "ref-to-nullable-alias": (_ref("A"), _ref("NA"), "breaking"),
    "nullable-alias-to-ref": (_ref("NA"), _ref("A"), "compatible"),
    "nullable-ref-to-oneOf-adding-a-type": (_ref("N"), {"oneOf": [_ref("N"), {"type": "integer"}]}, "breaking"),
}  # fmt: skip


def _composition_spec(prop: dict[str, Any]) -> dict[str, Any]:
    envelope = {"type": "object", "required": ["event_type", "a_v1"],
                "properties": {"event_type": {"type": "string", "const": "a_v1"},
                               "a_v1": {"type": "object", "properties": {"x": prop}}}}  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "webhooks": {"a_v1": {"post": {"requestBody": {"content": {"application/json": {"schema": envelope}}},
                                       "responses": {"200": {"description": "ok"}}}}},
        "components": {"schemas": copy.deepcopy(_COMPOSITION_SCHEMAS)},
    }  # fmt: skip


def _worst_change(old: dict[str, Any], new: dict[str, Any]) -> tuple[str | None, list[tuple[str, str, str]]]:
    """The most severe class the diff reports for property ``x`` moving from old to new."""
    from codegen import diff, parser

    report = diff.compare(parser.parse(_composition_spec(old), "old"), parser.parse(_composition_spec(new), "new"),
                          source=False)  # fmt: skip
    worst = next((s for s in ("breaking", "compatible") if report.count(s)), None)  # type: ignore[arg-type]
    return worst, [(c.severity, c.kind, c.location) for c in report.changes]


@pytest.mark.parametrize("move", sorted(COMPOSITION_MOVES))
def test_a_move_between_ref_and_composition_is_classed_by_what_the_old_models_accept(move: str) -> None:
    old, new, expected = COMPOSITION_MOVES[move]
    worst, found = _worst_change(old, new)
    assert worst == expected, found


# -- issue 26's g7: const and arrays by position, classed by what the old models accept --------

_CLOSED_PAIR = {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False}
VALUE_MOVES: dict[str, tuple[dict[str, Any], dict[str, Any], str | None]] = {
    "const-changed": ({"type": "string", "const": "a"}, {"type": "string", "const": "b"}, "breaking"),
    "const-to-enum": ({"type": "string", "const": "a"}, {"type": "string", "enum": ["a", "b"]}, "breaking"),
    "const-removed": ({"type": "string", "const": "a"}, {"type": "string"}, "breaking"),
    # Enums are open: the old models take any string, so a const narrows them.
    "enum-to-const": ({"type": "string", "enum": ["a"]}, {"type": "string", "const": "b"}, "compatible"),
    "const-added": ({"type": "string"}, {"type": "string", "const": "a"}, "compatible"),
    # ... unless the old models refuse its value (found by the diff oracle).
    "const-added-against-a-format": ({"type": "string", "format": "date-time"}, {"type": "string", "const": "fixed"},
                                     "breaking"),
    "const-added-of-another-type": ({"type": "integer"}, {"const": "a"}, "breaking"),
    "const-same": ({"type": "string", "const": "a"}, {"type": "string", "const": "a"}, None),
    # The old models read prefixItems with no items as a list of anything.
    "open-position-retyped": ({"type": "array", "prefixItems": [{"type": "integer"}]},
                              {"type": "array", "prefixItems": [{"type": "string"}]}, None),
    # With items: false, every element is one of the positions' types, and no more of them.
    "closed-position-retyped": (_CLOSED_PAIR, {**_CLOSED_PAIR, "prefixItems": [{"type": "integer"}, {"type": "boolean"}]},
                                "breaking"),
    "closed-position-added": (_CLOSED_PAIR, {**_CLOSED_PAIR, "prefixItems": [{"type": "integer"}, {"type": "string"},
                                                                            {"type": "integer"}]}, "breaking"),
    "closed-opened": (_CLOSED_PAIR, {k: v for k, v in _CLOSED_PAIR.items() if k != "items"}, "breaking"),
    "closed-position-removed": (_CLOSED_PAIR, {**_CLOSED_PAIR, "prefixItems": [{"type": "integer"}]}, None),
    # With items, every element is checked against items.
    "items-position-off-type": ({"type": "array", "prefixItems": [{"type": "number"}], "items": {"type": "number"}},
                                {"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "number"}},
                                "breaking"),
}  # fmt: skip


@pytest.mark.parametrize("move", sorted(VALUE_MOVES))
def test_a_const_or_position_change_is_classed_by_what_the_old_models_accept(move: str) -> None:
    old, new, expected = VALUE_MOVES[move]
    worst, found = _worst_change(old, new)
    assert worst == expected, found


def test_a_union_of_several_inline_objects_compares_each_with_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each variant is compared with the old variant that is the same, else the one sharing
    the most property names: all were compared with the first (Svix's and GitHub's specs
    diffed against themselves reported hundreds of removed properties)."""
    def union(doc: dict[str, Any]) -> None:
        user(doc)["properties"]["origin"] = {"anyOf": [
            {"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}},
            {"type": "object", "required": ["b"], "properties": {"b": {"type": "string"}}},
            {"type": "object", "required": ["c"], "properties": {"c": {"type": "integer"}}},
        ]}  # fmt: skip

    base = copy.deepcopy(BASE)
    union(base)
    assert report(tmp_path, capsys, lambda doc: None, base=base)["changes"] == []

    def widen(doc: dict[str, Any]) -> None:
        user(doc)["properties"]["origin"]["anyOf"][2]["properties"]["d"] = {"type": "string"}

    result = report(tmp_path, capsys, widen, base=base)
    assert [(c["severity"], c["kind"]) for c in result["changes"]] == [("compatible", "property added")]
