"""What an operator reads: every log record about a delivery carries ``webhook_id``,
``event_type`` and ``outcome`` in ``extra``, for a scripted mix of deliveries; the README's
logging configuration works as written."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from incident_webhooks import WebhookHandlers, WebhookReceiver, testing
from incident_webhooks.dedupe import InMemoryDedupeStore, Lease, StoreUnavailable
from test_receiver import SECRET

GRANTED = "private_incident.membership_granted_v1"


class Flaky(WebhookHandlers):
    def on_private_incident_membership_granted_v1(self, event: Any) -> None:
        if event.payload.user_id == "raise":
            raise RuntimeError("the handler's own bug")


class Down(InMemoryDedupeStore):
    def claim(self, key: str) -> Lease | str:  # type: ignore[override]
        if key.endswith("msg_down"):
            raise StoreUnavailable("gone")
        return super().claim(key)


def deliveries() -> list[tuple[str, bytes, dict[str, str], str]]:
    """(what, body, headers, the outcome it must log)."""
    good = testing.example_body(GRANTED)
    raising = json.dumps({**json.loads(good), GRANTED: {**json.loads(good)[GRANTED], "user_id": "raise"}}).encode()
    invalid = json.dumps({"event_type": GRANTED, GRANTED: {"user_id": 1}}).encode()
    unknown = b'{"event_type": "brand.new_v1", "x": 1}'
    stale = testing.sign(good, SECRET, msg_id="msg_stale", timestamp=int(time.time()) - 3600)
    wrong = {**testing.sign(good, SECRET, msg_id="msg_wrong"), "webhook-signature": "v1,AAAA"}
    return [
        ("handled", good, testing.sign(good, SECRET, msg_id="msg_ok"), "handled"),
        ("again", good, testing.sign(good, SECRET, msg_id="msg_ok"), "duplicate"),
        ("unknown", unknown, testing.sign(unknown, SECRET, msg_id="msg_new"), "unknown_type"),
        ("raises", raising, testing.sign(raising, SECRET, msg_id="msg_raise"), "handler_error"),
        ("invalid", invalid, testing.sign(invalid, SECRET, msg_id="msg_invalid"), "invalid"),
        ("not-json", b"{nope", testing.sign(b"{nope", SECRET, msg_id="msg_json"), "not_json"),
        ("stale", good, stale, "stale"),
        ("wrong", good, wrong, "bad_signature"),
        ("too-large", b"x" * 2_000_000, testing.sign(b"x", SECRET, msg_id="msg_big"), "too_large"),
        ("down", good, testing.sign(good, SECRET, msg_id="msg_down"), "store_unavailable"),
    ]


def test_every_delivery_record_carries_its_webhook_id_event_type_and_outcome(
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = WebhookReceiver(SECRET, Flaky(), dedupe=Down())
    caplog.set_level(logging.INFO, logger="incident_webhooks")
    for what, body, headers, outcome in deliveries():
        caplog.clear()
        receiver.handle(body, headers)
        records = [r for r in caplog.records if hasattr(r, "outcome")]
        assert [r.outcome for r in records][-1:] == [outcome], (what, caplog.text)
        record = records[-1]
        assert record.webhook_id == headers["webhook-id"], what
        known = {"handled": GRANTED, "duplicate": GRANTED, "unknown_type": "brand.new_v1",
                 "handler_error": GRANTED, "invalid": GRANTED, "store_unavailable": GRANTED}  # fmt: skip
        assert record.event_type == known.get(outcome, ""), (what, record.event_type)
        assert record.name == "incident_webhooks.receiver", "one hierarchy, a child per part"
        assert SECRET not in caplog.text and (len(body) < 100 or body.decode(errors="replace") not in caplog.text)


def test_the_readmes_logging_configuration_shows_the_outcome_of_each_delivery(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    (config,) = [b for b in blocks if "logging.config.dictConfig" in b]
    script = config + (
        "from incident_webhooks import WebhookHandlers, WebhookReceiver, testing\n"
        f"secret = {SECRET!r}\n"
        "body = testing.example_body('private_incident.membership_granted_v1')\n"
        "receiver = WebhookReceiver(secret, WebhookHandlers())\n"
        "receiver.handle(body, testing.sign(body, secret, msg_id='msg_readme'))\n"
        "receiver.handle(body, testing.sign(body, secret, msg_id='msg_readme'))\n"
        "logging.getLogger('incident_webhooks').info('no delivery here')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert any(" INFO incident_webhooks.receiver handled private_incident.membership_granted_v1 webhook-id msg_readme" in line for line in lines), lines
    assert any(" INFO incident_webhooks.receiver duplicate private_incident.membership_granted_v1 webhook-id msg_readme" in line for line in lines), lines
    assert any(line.endswith("INFO incident_webhooks - - no delivery here") for line in lines), lines


def test_a_failed_settle_is_logged_with_the_whole_webhook_id_even_when_it_holds_colons(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class CompletionFails(InMemoryDedupeStore):
        def complete(self, lease: Lease) -> None:
            raise StoreUnavailable("gone")

    receiver = WebhookReceiver(SECRET, WebhookHandlers(), dedupe=CompletionFails(), endpoint="a:b")
    body = testing.example_body(GRANTED)
    assert receiver.handle(body, testing.sign(body, SECRET, msg_id="msg:with:colons")).status == 200
    (record,) = [r for r in caplog.records if getattr(r, "outcome", "") == "settle_failed"]
    assert record.webhook_id == "msg:with:colons"
