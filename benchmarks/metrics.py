"""The receive path with metrics on against the same path with them off."""

from __future__ import annotations

from typing import Any

from benchmarks.common import ROUNDS, SECRET, SMALL, example
from benchmarks.timing import against, summary


class _Grants:
    """A dedupe store that takes every claim: the same signed delivery can be received again
    and again, so the loop measures receiving, not signing."""

    def claim(self, key: str) -> Any:
        from incident_webhooks.dedupe import Lease

        return Lease(key, "t")

    def complete(self, lease: Any) -> None:
        pass

    def release(self, lease: Any) -> None:
        pass

    def ping(self) -> None:
        pass


def bench_metrics() -> dict[str, Any]:
    from incident_webhooks import WebhookHandlers, WebhookReceiver, metrics, observe
    from incident_webhooks.testing import sign

    body = example(SMALL)
    headers = sign(body, SECRET, msg_id="msg_metrics")
    receiver = WebhookReceiver(SECRET, WebhookHandlers(), dedupe=_Grants(), tolerance=3600)

    metrics.enable()  # starts the flusher, which applies what `on` queues once a second
    observers = observe._OBSERVERS
    enabled = list(observers)

    # Both sides switch the observers by the same slice assignment, so the switch costs
    # each the same.
    def on() -> None:
        observers[:] = enabled
        receiver.handle(body, headers)

    def off() -> None:
        observers[:] = ()
        receiver.handle(body, headers)

    ratios = []
    for _ in range(ROUNDS):
        _, ratio = against(on, off)
        ratios.append(ratio)
    observers[:] = enabled
    metrics.disable()
    return {"event_type": SMALL, "on_over_off": summary(ratios)}
