"""Other vendors' published webhook specs (Resend, Svix, GitHub; fixtures, prose stripped):
each generates with its envelope inferred, and its package reads, round-trips, dispatches and
verifies deliveries made the vendor's way: signed by the ``svix`` library for Standard
Webhooks senders, by GitHub's documented HMAC (computed here with ``hmac``) for GitHub."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from packages import generate, mypy, python, run_cli
from vendor_bodies import body_for, operation_body, spec_examples

from codegen import envelopes, loader, parser

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
        # What the inbox stores a delivery under, read without validating: the same type.
        assert events.event_type_of_body(raw, headers_for(case, body)) == event_type, (case["key"], kind)
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
    # GitHub's schema security-and-analysis is the class SecurityAndAnalysis already.
    assert github["security_and_analysis"].class_name == "SecurityAndAnalysisEvent"
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


def test_envelope_properties_beside_incident_ios_payload_are_refused_then_modelled(
    tmp_path: Path,
) -> None:
    """g1: a body ``{event_type, organization_id, <event type>: payload}`` would have been a
    package that drops organization_id from its models; refused with the setting that models
    the whole body, which then reads it as a field."""
    doc = json.loads((ROOT / "tests" / "golden" / "membership_granted" / "spec.json").read_text())
    body = next(iter(doc["components"]["schemas"].values()))
    for item in doc["webhooks"].values():
        ref = item["post"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        body = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]
        body["properties"]["organization_id"] = {"type": "string"}
        body["required"] = [*body.get("required", []), "organization_id"]
    code, output, _ = generate(doc, tmp_path / "refused")
    assert code == 2, output
    assert "properties beside event_type and the payload" in output and "organization_id" in output
    assert 'type-field = "event_type", payload = "body"' in output
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(doc))
    (tmp_path / "pyproject.toml").write_text(
        '[tool.codegen]\nenvelope = { type-field = "event_type", payload = "body" }\n'
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        code, output = run_cli("generate", "--spec", str(spec), "--out", str(tmp_path / "out"),
                               "--package", "pkg")  # fmt: skip
    assert code == 0, output
    models = "".join(p.read_text() for p in (tmp_path / "out" / "pkg" / "models").glob("*.py"))
    assert "organization_id: str" in models


def test_event_types_that_read_as_one_method_get_numbered_methods(tmp_path: Path) -> None:
    doc = load("resend")
    first = doc["webhooks"]["contact.created"]
    doc["webhooks"]["contact_created"] = copy.deepcopy(first)
    schemas = doc["components"]["schemas"]
    schemas["ContactCreatedTwin"] = copy.deepcopy(schemas["ContactCreatedEvent"])
    schemas["ContactCreatedTwin"]["properties"]["type"] = {"type": "string", "const": "contact_created"}
    media = doc["webhooks"]["contact_created"]["post"]["requestBody"]["content"]["application/json"]
    media["schema"] = {"$ref": "#/components/schemas/ContactCreatedTwin"}
    hooks = {h.event_type: h for h in parser.parse(doc, "resend").webhooks}
    assert hooks["contact.created"].handler_name == "on_contact_created"
    assert hooks["contact_created"].handler_name == "on_contact_created_2"
    # ContactCreated is the first's, ContactCreatedEvent a schema of the spec.
    assert hooks["contact_created"].class_name == "ContactCreatedWebhook"
    assert len({h.class_name for h in hooks.values()}) == len(hooks)


HOSTILE = """
import hashlib, hmac, json
import pkg as p
from pkg import receiver, signature, testing
SECRET = "a-github-webhook-secret-of-some-length"
body = json.dumps({"action": "created", "starred_at": None, "repository": {"id": 1,
        "full_name": "o/r"}, "sender": {"login": "u", "id": 2}}).encode()
good = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
base = {"X-GitHub-Event": "star", "X-GitHub-Delivery": "d-1"}
got = receiver.WebhookReceiver([SECRET, "another-secret-being-rotated-in"], p.WebhookHandlers())
results = {}
for name, value in {
    "good": good, "upper-case hex": good.upper().replace("SHA256", "sha256"),
    "no scheme": good[7:], "sha1": "sha1=" + good[7:], "short": good[:-1], "long": good + "0",
    "not hex": good[:-1] + "g", "non-ascii": good[:-1] + "\\u00e9", "empty": "",
    "other secret": "sha256=" + hmac.new(b"x" * 20, body, hashlib.sha256).hexdigest(),
    "huge": "sha256=" + "0" * 10000,
}.items():
    results[name] = got.handle(body, {**base, "X-Hub-Signature-256": value}).status
results["no signature"] = got.handle(body, base).status
results["no delivery id"] = got.handle(body, {"X-GitHub-Event": "star", "X-Hub-Signature-256": good}).status
results["no event header"] = got.handle(body, {"X-GitHub-Delivery": "d-2", "X-Hub-Signature-256": good}).status
results["rotated"] = got.handle(body, {**base, "X-GitHub-Delivery": "d-3", "X-Hub-Signature-256":
    "sha256=" + hmac.new(b"another-secret-being-rotated-in", body, hashlib.sha256).hexdigest()}).status
for weak in ("short", " a-github-webhook-secret-of-some-length", ""):
    try:
        receiver.WebhookReceiver(weak, p.WebhookHandlers())
    except ValueError as exc:
        results["secret " + repr(weak)] = str(exc)[:40]
try:
    p.parse_event(body)
except TypeError as exc:
    results["no headers"] = "TypeError"
try:
    p.parse_event(body, {"X-GitHub-Event": "star", "x": "y"} | {"X-GitHub-Event": "fork"})
except p.UnknownEventType as exc:
    results["unknown"] = exc.event_type
try:
    p.parse_event(body.replace(b"created", b"renamed"), {"x-github-event": "star"})
except p.UnknownEventType as exc:
    results["unknown action"] = exc.event_type
# A body that is not JSON, signed: refused as such (400, not kept), as for incident.io.
for bad in (b"{", b"[1]"):
    try:
        p.parse_event(bad, {"x-github-event": "star"})
    except p.InvalidPayload as exc:
        results["parse " + bad.decode()] = [e["type"] for e in exc.errors][:1]
    inbox = receiver.WebhookReceiver(SECRET, p.WebhookHandlers(), inbox="sqlite:///" + __import__("tempfile").mkdtemp() + "/i.db")
    digest = "sha256=" + hmac.new(SECRET.encode(), bad, hashlib.sha256).hexdigest()
    results["inbox " + bad.decode()] = inbox.handle(bad, {**base, "X-GitHub-Delivery": "d-9",
                                                          "X-Hub-Signature-256": digest}).status
print(json.dumps(results))
"""


def test_github_signatures_are_checked_strictly_and_in_constant_time_form(tmp_path: Path) -> None:
    doc = json.loads((ROOT / "tests" / "golden" / "envelope_github" / "spec.json").read_text())
    code, output, _ = generate(doc, tmp_path)
    assert code == 0, output
    result = python(tmp_path, HOSTILE)
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.splitlines()[-1])
    assert got.pop("good") == 200 and got.pop("rotated") == 200
    assert got.pop("upper-case hex") == 200  # hex is hex in either case
    assert got.pop("no event header") == 400  # verified, but no event can be read
    assert got.pop("no headers") == "TypeError"
    assert got.pop("unknown") == "fork"
    assert got.pop("unknown action") == "star.renamed"
    assert (got.pop("parse {"), got.pop("inbox {")) == (["json_invalid"], 400)
    assert (got.pop("parse [1]"), got.pop("inbox [1]")) == (["dict_type"], 200)  # JSON: kept as invalid
    secrets = {k: got.pop(k) for k in list(got) if k.startswith("secret ")}
    assert len(secrets) == 3, secrets
    assert set(got.values()) == {401}, got


def test_send_signs_a_file_the_vendors_way_and_asks_for_the_event_a_header_must_name(
    tmp_path: Path,
) -> None:
    import hashlib
    import hmac
    import http.server
    import threading

    doc = json.loads((ROOT / "tests" / "golden" / "envelope_github" / "spec.json").read_text())
    code, output, _ = generate(doc, tmp_path)
    assert code == 0, output
    secret = "a-github-webhook-secret-of-some-length"
    body = tmp_path / "delivery.json"
    body.write_bytes(b'{"action": "deleted", "starred_at": null, "repository": {"id": 1, '
                     b'"full_name": "o/r"}, "sender": {"login": "u", "id": 2}}')  # fmt: skip
    got: list[tuple[dict[str, str], bytes]] = []

    class Capture(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            data = self.rfile.read(int(self.headers["content-length"]))
            got.append(({k.lower(): v for k, v in self.headers.items()}, data))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/webhooks"
    try:
        send = "import sys\nfrom pkg.__main__ import main\nsys.exit(main(sys.argv[1:]))\n"
        runner = tmp_path / "send.py"
        runner.write_text(send)
        base = [sys.executable, str(runner), "send", url, "--secret", secret, "--body", str(body)]
        env = {**os.environ, "PYTHONPATH": str(tmp_path / "pkg")}
        refused = subprocess.run(base, capture_output=True, text=True, env=env, timeout=60, check=False)
        assert refused.returncode == 2, refused.stderr
        assert "--body needs --as-event TYPE" in refused.stderr and "x-github-event" in refused.stderr
        assert not got
        sent = subprocess.run([*base, "--as-event", "star.deleted"], capture_output=True, text=True,
                              env=env, timeout=60, check=False)  # fmt: skip
        assert sent.returncode == 0, sent.stdout + sent.stderr
    finally:
        server.shutdown()
    (headers, data), = got
    assert headers["x-github-event"] == "star"
    assert headers["x-github-delivery"]
    digest = hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()
    assert headers["x-hub-signature-256"] == "sha256=" + digest


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_vendor_spec_diffed_against_itself_reports_nothing(name: str) -> None:
    from codegen import diff

    spec = parser.parse(load(name), name)
    assert diff.compare(spec, parser.parse(load(name), name)).changes == {}


def test_a_body_whose_ref_does_not_resolve_is_reported_once_as_such() -> None:
    from codegen.errors import SpecError

    doc = json.loads((ROOT / "tests" / "golden" / "membership_granted" / "spec.json").read_text())
    for item in doc["webhooks"].values():
        media = item["post"]["responses"]["200"]["content"]["application/json"]
        media["schema"] = {"$ref": "#/components/schemas/Missing"}
    for envelope in (None, "incident.io"):
        with pytest.raises(SpecError) as refused:
            parser.parse(doc, "spec", envelope=envelopes.from_setting(envelope) if envelope else None)
        (problem,) = refused.value.problems
        assert "does not resolve" in problem.message and problem.pointer.endswith("/schema/$ref")


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ('envelope = "gitlab"', "envelope 'gitlab' is not one of github, incident.io, standard-webhooks"),
        ("envelope = 3", "envelope must be a kind's name or a table of fields"),
        ('envelope = { type-feld = "type" }', "unknown envelope field(s) type-feld"),
        ('envelope = { type-header = "x-event", type-field = "type" }', "exactly one of type-field"),
        ('envelope = { action-field = "action" }', "action-field goes with type-header"),
        ('envelope = { signature = "none" }', "signature 'none' is not one of"),
        ('envelope = { type-field = "" }', "type-field must be a non-empty string"),
    ],
)
def test_an_envelope_setting_that_cannot_be_used_is_refused_in_one_line(
    tmp_path: Path, setting: str, says: str
) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.codegen]\n{setting}\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        code, output = run_cli("generate", "--spec", str(VENDORS / "resend.json"), "--out",
                               str(tmp_path / "out"), "--package", "pkg")  # fmt: skip
    assert code == 2
    assert "[tool.codegen] envelope: " in output and says in output
    assert not (tmp_path / "out").exists()
