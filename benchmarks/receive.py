"""The whole receive path against its floor."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import orjson
from standardwebhooks import Webhook

from benchmarks.common import LARGE, ROUNDS, SECRET, SMALL, example
from benchmarks.timing import against, summary


def bench_receive() -> dict[str, Any]:
    from incident_webhooks import SignatureVerifier, WebhookHandlers, parse_event

    verifier = SignatureVerifier(SECRET, tolerance=3600)
    handlers = WebhookHandlers()
    key = Webhook(SECRET)._whsecret
    results: dict[str, Any] = {}
    for label, event_type in (("small", SMALL), ("large", LARGE)):
        body = example(event_type)
        now = datetime.now(UTC)
        headers = {
            "webhook-id": "msg_bench",
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(SECRET).sign("msg_bench", now, body.decode()),
        }
        signed = f"msg_bench.{headers['webhook-timestamp']}.".encode() + body

        def ours(body: bytes = body, headers: dict[str, str] = headers) -> None:
            verifier.verify(body, headers)
            handlers.dispatch(parse_event(body))

        def floor(body: bytes = body, signed: bytes = signed) -> None:
            hmac.new(key, signed, hashlib.sha256).digest()
            orjson.loads(body)

        ours_rounds, floor_rounds, ratios = [], [], []
        for _ in range(ROUNDS):
            seconds, ratio = against(ours, floor)
            ours_rounds.append(seconds)
            floor_rounds.append(seconds / ratio)
            ratios.append(ratio)
        results[label] = {
            "event_type": event_type,
            "events_per_second": {
                "verify+parse_event+dispatch": summary([1 / s for s in ours_rounds]),
                "floor: hmac-sha256+orjson.loads": summary([1 / s for s in floor_rounds]),
            },
            "ratio_vs_floor": summary(ratios),
        }
    return results
