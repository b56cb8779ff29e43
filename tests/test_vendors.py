"""Other vendors' published webhook specs (Resend, Svix, GitHub; fixtures, prose stripped):
each generates with its envelope inferred, and its package reads, round-trips, dispatches and
verifies deliveries made the vendor's way: signed by the ``svix`` library for Standard
Webhooks senders, by GitHub's documented HMAC (computed here with ``hmac``) for GitHub."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from packages import generate, mypy, python, run_cli
from vendor_bodies import body_for, operation_body, spec_examples

from codegen import loader, parser

VENDORS = ROOT / "tests" / "fixtures" / "vendors"
# vendor -> (envelope inferred, webhooks)
EXPECTED = {"resend": ("standard-webhooks", 17), "svix": ("standard-webhooks", 14),
            "github": ("github", 261)}  # fmt: skip
# Examples that contradict their own spec's schema, so that no reader of the schema accepts
# them: Svix's background_task.finished example sends ``appStats`` where its schema requires
# ``app_stats``. Each must still be refused as InvalidPayload (not crash, not pass).
CONTRADICTED = {("svix", "background_task.finished"): "app_stats: Field required"}


def load(name: str) -> Any:
    return json.loads((VENDORS / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def vendors(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Generates a vendor's package on first need (GitHub's takes most of a minute), into one
    folder per vendor; returns the folder."""
    root = tmp_path_factory.mktemp("vendors")

    def built(name: str) -> Path:
        folder = root / name
        if not folder.exists():
            code, output = run_cli(
                "generate", "--spec", str(VENDORS / f"{name}.json"),
                "--out", str(folder / f"{name}_webhooks"), "--package", f"{name}_webhooks",
            )  # fmt: skip
            assert code == 0, output
            assert f"({EXPECTED[name][1]} webhooks," in output
        return folder

    return built


def deliveries(name: str) -> list[dict[str, Any]]:
    """For each webhook: the header that names it (GitHub), and its bodies: the spec's own
    examples and one made from its schema."""
    doc = load(name)
    found = []
    for key, item in sorted(doc["webhooks"].items()):
        operation, schema = operation_body(doc, item)
        header = operation.get("operationId", key).split("/")[0].replace("-", "_")
        examples = spec_examples(doc, item)
        found.append({"key": key, "header": header, "made": body_for(doc, schema),
                      "examples": examples})  # fmt: skip
    return found


# Run in a fresh interpreter with warnings as errors, as an application would import it.
USE = """
import hashlib, hmac, json, sys, time
from datetime import datetime, timezone
import {package} as p
from {package} import events, receiver, testing

envelope = events.ENVELOPE
with open({cases!r}, encoding="utf-8") as handle:
    cases = json.load(handle)
contradicted = json.loads({contradicted!r})
seen = []
names = {{
    method: (lambda self, event, _m=method: seen.append((_m, events.event_type_of(event))))
    for method in p.handlers.HANDLER_NAMES.values()
}}
Handlers = type("Handlers", (p.WebhookHandlers,), names)
handlers = Handlers()
SECRET = "whsec_" + "dGVzdC1zZWNyZXQtZm9yLXZlbmRvci10ZXN0cyE="
if envelope.signature == "github":
    SECRET = "a-github-webhook-secret-of-some-length"


def headers_for(case, body):
    return {{"X-GitHub-Event": case["header"]}} if envelope.type_header else None


def signed(case, raw, number):
    if envelope.signature == "github":
        digest = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        return {{"X-GitHub-Event": case["header"], "X-GitHub-Delivery": f"d-{{number}}",
                "X-Hub-Signature-256": "sha256=" + digest}}
    from svix.webhooks import Webhook  # the vendor's own library signs
    at = datetime.now(tz=timezone.utc)
    signature = Webhook(SECRET).sign(f"msg_{{number}}", at, raw.decode())
    return {{"svix-id": f"msg_{{number}}", "svix-timestamp": str(int(at.timestamp())),
            "svix-signature": signature}}


parsed = made = refused = 0
types = set()
for number, case in enumerate(cases):
    bodies = [("made", case["made"])] + [("example", e) for e in case["examples"]]
    for kind, body in bodies:
        raw = json.dumps(body).encode()
        try:
            event = p.parse_event(raw, headers_for(case, body))
        except p.InvalidPayload as exc:
            wanted = contradicted.get(case["key"]) if kind == "example" else None
            assert wanted and wanted in str(exc), (case["key"], kind, str(exc))
            refused += 1
            continue
        event_type = events.event_type_of(event)
        types.add(event_type)
        assert type(event) is p.EVENT_MODELS[event_type]
        again = event.model_dump(mode="json", by_alias=True, exclude_unset=True)
        assert again == body, (case["key"], kind, again, body)
        assert type(p.parse_event(body, headers_for(case, body))) is type(event)
        seen.clear()
        handlers.handle(raw, headers_for(case, body))
        assert seen == [(p.handlers.HANDLER_NAMES[event_type], event_type)], (case, seen)
        parsed += 1
        made += kind == "made"
    # One delivery per webhook through the receiver, signed the vendor's way.
    raw = json.dumps(case["made"]).encode()
    got = receiver.WebhookReceiver(SECRET, handlers)
    headers = signed(case, raw, number)
    answer = got.handle(raw, headers)
    assert answer.status == 200, (case["key"], answer)
    assert got.handle(raw, headers).body == b'{{"status": "duplicate"}}', case["key"]
    assert got.handle(raw + b" ", signed(case, raw, number + 10_000) | {{
        k: v for k, v in headers.items() if "sig" in k.lower()}}).status == 401
    # testing.sign makes what the receiver accepts, for each scheme.
    event_type = events.event_type_of(p.parse_event(raw, headers_for(case, case["made"])))
    answer = got.handle(raw, testing.sign(raw, SECRET, event_type=event_type))
    assert answer.status == 200, answer
# Through the inbox: stored with the headers the envelope needs, read back by a worker.
import asyncio, tempfile
from {package} import worker
url = "sqlite:///" + tempfile.mkdtemp() + "/inbox.db"
keep = receiver.WebhookReceiver(SECRET, handlers, inbox=url)
stored = cases[:5]
for number, case in enumerate(stored):
    raw = json.dumps(case["made"]).encode()
    assert keep.handle(raw, signed(case, raw, 50_000 + number)).status == 200
seen.clear()


async def drain():
    running = worker.Worker(url, handlers)
    task = asyncio.ensure_future(running.run())
    while len(seen) < len(stored) and not task.done():
        await asyncio.sleep(0.02)
    running.stop()
    await task


asyncio.run(asyncio.wait_for(drain(), 120))
wanted = sorted(events.event_type_of(p.parse_event(json.dumps(c["made"]).encode(),
                headers_for(c, c["made"]))) for c in stored)
assert sorted(t for _, t in seen) == wanted, (seen, wanted)
print(json.dumps({{"parsed": parsed, "made": made, "refused": refused, "types": sorted(types)}}))
"""


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_vendor_spec_reads_round_trips_dispatches_and_verifies_every_webhook(
    vendors: Callable[[str], Path], name: str
) -> None:
    root = vendors(name)
    cases = deliveries(name)
    contradicted = {k: v for (vendor, k), v in CONTRADICTED.items() if vendor == name}
    held = root / f"{name}.cases.json"
    held.write_text(json.dumps(cases), encoding="utf-8")
    result = python(
        root, USE.format(package=f"{name}_webhooks", cases=str(held),
                            contradicted=json.dumps(contradicted)),
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.splitlines()[-1])
    count = EXPECTED[name][1]
    examples = sum(len(c["examples"]) for c in cases)
    assert report["made"] == count
    assert report["refused"] == len(contradicted)
    assert report["parsed"] == count + examples - len(contradicted)
    assert len(report["types"]) == count  # every webhook reached its own model


def test_envelopes_are_inferred_and_event_types_come_from_where_the_spec_says() -> None:
    for name, (kind, count) in EXPECTED.items():
        spec = parser.parse(loader.load_spec(VENDORS / f"{name}.json"), name)
        assert (spec.envelope.kind, len(spec.webhooks)) == (kind, count)
    github = {h.event_type: h for h in parser.parse(load("github"), "github").webhooks}
    # The header's value and the body's action, as GitHub delivers them.
    assert github["issues.opened"].handler_name == "on_issues_opened"
    assert github["pull_request.review_requested"].class_name == "PullRequestReviewRequested"
    assert "push" in github and "security_and_analysis" in github
    # An action the spec leaves open: the header alone picks the model.
    assert github["repository_dispatch"].action is None
    svix = {h.event_type: h for h in parser.parse(load("svix"), "svix").webhooks}
    # Svix has schemas MessageAttemptLog and MessageAttemptLogEvent (its body): the event
    # gets the next name in the documented order, never a refusal.
    assert svix["message.attempt.log"].class_name == "MessageAttemptLogWebhook"


def test_a_body_tag_that_differs_from_the_webhook_key_is_the_event_type(tmp_path: Path) -> None:
    doc = load("resend")
    schema = doc["components"]["schemas"]["ContactCreatedEvent"]
    schema["properties"]["type"] = {"type": "string", "enum": ["contact.added"]}
    spec = parser.parse(doc, "resend")
    assert "contact.added" in {h.event_type for h in spec.webhooks}
    assert "contact.created" not in {h.event_type for h in spec.webhooks}


def untagged(doc: dict[str, Any]) -> dict[str, Any]:
    """Resend's spec with the ``type`` left open in every body: nothing says which is which."""
    doc = copy.deepcopy(doc)
    for schema in doc["components"]["schemas"].values():
        tag = schema.get("properties", {}).get("type")
        if isinstance(tag, dict) and "const" in tag:
            schema["properties"]["type"] = {"type": "string"}
    return doc


def test_a_spec_whose_envelope_cannot_be_inferred_is_refused_with_the_setting_that_fixes_it(
    tmp_path: Path,
) -> None:
    code, output, _ = generate(untagged(load("resend")), tmp_path, "resend_webhooks")
    assert code != 0
    assert "cannot tell where a delivery says which event it is" in output
    assert '[tool.codegen] envelope = "incident.io" | "standard-webhooks" | "github"' in output
    assert "/webhooks/contact.created/post/requestBody" in output  # the pointer to a body
    assert not (tmp_path / "resend_webhooks").exists()
    # The one setting: the webhook keys are then the event types.
    spec = tmp_path / "untagged.json"
    spec.write_text(json.dumps(untagged(load("resend"))))
    code, output = run_cli("generate", "--spec", str(spec), "--out", str(tmp_path / "out"),
                           "--package", "resend_webhooks", "--envelope", "standard-webhooks")  # fmt: skip
    assert code == 0, output
    result = python(tmp_path, (
        "import resend_webhooks as p\n"
        "body = b'{\"type\": \"contact.created\", \"created_at\": \"2024-01-01T00:00:00Z\", "
        "\"data\": {\"id\": \"c\", \"audience_id\": \"a\", \"email\": \"e\", "
        "\"created_at\": \"2024-01-01T00:00:00Z\", \"updated_at\": \"2024-01-01T00:00:00Z\","
        " \"unsubscribed\": False}}'\n"
        "print(type(p.parse_event(body)).__name__)\n"
    ).replace("False", "false"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ContactCreated"


def test_a_new_vendor_with_a_standard_webhooks_envelope_needs_no_setting(tmp_path: Path) -> None:
    """A vendor not in the fixtures (OpenAI's shape: id, object, created_at, type, data)."""
    def event(kind: str) -> dict[str, Any]:
        return {"post": {"requestBody": {"content": {"application/json": {"schema": {
            "type": "object", "required": ["id", "object", "created_at", "type", "data"],
            "properties": {"id": {"type": "string"}, "object": {"type": "string", "enum": ["event"]},
                           "created_at": {"type": "integer"},
                           "type": {"type": "string", "enum": [kind]},
                           "data": {"type": "object", "required": ["id"],
                                    "properties": {"id": {"type": "string"}}}}}}}}}}  # fmt: skip

    doc = {"openapi": "3.1.0", "info": {"title": "OpenAI", "version": "1"},
           "webhooks": {k: event(k) for k in ("batch.completed", "response.failed")}}  # fmt: skip
    code, output, _ = generate(doc, tmp_path, "openai_webhooks")
    assert code == 0, output
    result = python(tmp_path, (
        "import openai_webhooks as p\n"
        "from openai_webhooks import events\n"
        "body = b'{\"type\":\"batch.completed\",\"id\":\"e\",\"object\":\"event\",\"created_at\":1,"
        "\"data\":{\"id\":\"b\",\"new\":1}}'\n"
        "event = p.parse_event(body)\n"
        "print(events.event_type_of(event), event.data.id, events.ENVELOPE.kind)\n"
        "try:\n    p.parse_event(b'{\"type\":\"batch.cancelled\",\"data\":{}}')\n"
        "except p.UnknownEventType as exc:\n    print('unknown', exc.event_type)\n"
    ))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["batch.completed b standard-webhooks",
                                             "unknown batch.cancelled"]  # fmt: skip


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_vendor_package_passes_mypy_strict_and_ruff(
    vendors: Callable[[str], Path], name: str
) -> None:
    root = vendors(name)
    result = mypy(root, f"{name}_webhooks")
    assert result.returncode == 0, result.stdout[-3000:]
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--config", str(ROOT / "pyproject.toml"),
         f"{name}_webhooks"],
        cwd=root, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert lint.returncode == 0, lint.stdout[-3000:]
