"""The receive path per dedupe store."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, ROUNDS, SECRET, SMALL, example
from benchmarks.timing import paired, summary


def bench_stores(scratch: Path) -> dict[str, Any]:
    """The whole receive path (`WebhookReceiver.handle`: verify, parse, claim, dispatch,
    complete) per dedupe store, every delivery a new webhook-id, as a ratio to the in-memory
    store measured in the same round."""
    sys.path.insert(0, str(ROOT / "tests"))
    from incident_webhooks import WebhookHandlers, WebhookReceiver
    from incident_webhooks.dedupe import (
        InMemoryDedupeStore,
        RedisDedupeStore,
        SQLiteDedupeStore,
    )
    from incident_webhooks.testing import sign
    from servers import RedisServer

    body = example(SMALL)
    per_round = 1000
    with RedisServer(scratch / "redis") as redis_server:
        stores = {
            "memory": lambda: InMemoryDedupeStore(),
            "sqlite": lambda: SQLiteDedupeStore(scratch / f"bench-{time.monotonic_ns()}.db"),
            "redis": lambda: RedisDedupeStore(redis_server.url, prefix=f"bench{time.monotonic_ns()}:"),
        }
        rounds: dict[str, list[float]] = {name: [] for name in stores}
        for round_number in range(ROUNDS):
            for name, make in stores.items():
                receiver = WebhookReceiver(SECRET, WebhookHandlers(), dedupe=make(), tolerance=3600)
                deliveries = [
                    sign(body, SECRET, msg_id=f"msg_{round_number}_{n}") for n in range(per_round)
                ]
                started = time.perf_counter()
                for headers in deliveries:
                    receiver.handle(body, headers)
                rounds[name].append((time.perf_counter() - started) / per_round)
    return {
        "event_type": SMALL,
        "deliveries_per_round": per_round,
        "events_per_second": {k: summary([1 / s for s in v]) for k, v in rounds.items()},
        "ratio_vs_memory": {k: paired(v, rounds["memory"]) for k, v in rounds.items()},
    }
