"""Prometheus metrics (the ``metrics`` extra: prometheus-client; nothing imports it unless
this module is imported).

Names follow Prometheus' conventions: one prefix, base units, ``_total`` for counters, and
labels with bounded values only (an event type the spec does not name is counted as
``other``; a webhook-id is never a label):

* ``incident_webhooks_deliveries_total{outcome, event_type}``: every delivery answered (or
  stored), by outcome: handled, duplicate, stored, busy, bad_signature, stale, too_large,
  not_json, invalid, unknown_type, not_accepted, store_unavailable, handler_error.
* ``incident_webhooks_handler_duration_seconds{event_type, result}``: each handler run
  (result ok or error).
* ``incident_webhooks_handler_delay_seconds{event_type}``: from receipt to the handler's
  start (about 0 inline; the queueing time with an inbox).
* ``incident_webhooks_inbox_attempts_total{event_type, result}``: inbox rows settled by a
  worker (done, failed, dead, invalid).
* With an inbox, read from the database at each scrape: ``incident_webhooks_inbox_rows{state}``
  (``dead`` included), ``incident_webhooks_inbox_oldest_pending_seconds`` and
  ``incident_webhooks_inbox_up``.

Several processes (``uvicorn --workers N``): set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
folder, the same for every process, before they start; a scrape of any of them then reads
all of them (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import asyncio
import os
import typing
from collections.abc import Callable, Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from . import observe
from .dedupe import StoreUnavailable
from .events import EVENT_MODELS

if typing.TYPE_CHECKING:
    from .inbox import Inbox

PREFIX = "incident_webhooks"
CONTENT_TYPE = CONTENT_TYPE_LATEST
DELIVERIES = Counter(
    f"{PREFIX}_deliveries",
    "Deliveries answered or stored, by outcome and event type.",
    ["outcome", "event_type"],
)
HANDLER_SECONDS = Histogram(
    f"{PREFIX}_handler_duration_seconds",
    "Seconds each handler run took, by event type and result.",
    ["event_type", "result"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60, 300),
)
HANDLER_DELAY = Histogram(
    f"{PREFIX}_handler_delay_seconds",
    "Seconds from a delivery's receipt to its handler's start.",
    ["event_type"],
    buckets=(
        0.001,
        0.01,
        0.05,
        0.1,
        0.5,
        1,
        5,
        30,
        60,
        300,
        1800,
        3600,
        7200,
        21600,
        86400,
    ),
)
INBOX_ATTEMPTS = Counter(
    f"{PREFIX}_inbox_attempts",
    "Inbox rows settled by a worker, by event type and result.",
    ["event_type", "result"],
)

__all__ = ["InboxCollector", "app", "disable", "enable", "render"]


def label(event_type: str) -> str:
    """The event type as a label value: those the spec names, "" when not known yet, else
    ``other`` (a sender could otherwise make the label set grow without bound)."""
    return event_type if event_type in EVENT_MODELS or not event_type else "other"


class _Prometheus:
    def delivery(self, outcome: str, event_type: str) -> None:
        DELIVERIES.labels(outcome, label(event_type)).inc()

    def handler(
        self, event_type: str, result: str, seconds: float, delay: float
    ) -> None:
        HANDLER_SECONDS.labels(label(event_type), result).observe(seconds)
        HANDLER_DELAY.labels(label(event_type)).observe(max(0.0, delay))

    def attempt(self, event_type: str, result: str) -> None:
        INBOX_ATTEMPTS.labels(label(event_type), result).inc()


_OBSERVER = _Prometheus()


def enable() -> None:
    """Count from now on (``create_app(metrics=True)`` calls it)."""
    observe.add(_OBSERVER)


def disable() -> None:
    observe.remove(_OBSERVER)


class InboxCollector(Collector):
    """The inbox's rows per state and its oldest unfinished row, read at each scrape."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            f"{PREFIX}_inbox_up", "1 when the inbox answered this scrape, else 0."
        )
        try:
            status = self.inbox.status()
        except StoreUnavailable:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        rows = GaugeMetricFamily(
            f"{PREFIX}_inbox_rows", "Rows in the inbox, by state.", labels=["state"]
        )
        for state, count in status.counts.items():
            rows.add_metric([state], count)
        yield rows
        yield GaugeMetricFamily(
            f"{PREFIX}_inbox_oldest_pending_seconds",
            "Age of the oldest row not done yet (pending, processing or failed); 0 if none.",
            value=status.oldest_pending_seconds or 0.0,
        )

    def describe(self) -> Iterable[Metric]:
        return []


def render(inbox: Inbox | None = None) -> bytes:
    """The text a scrape gets: this process's metrics, or every process's in multiprocess
    mode, then the inbox's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        text = generate_latest(registry)
    else:
        text = generate_latest(REGISTRY)
    if inbox is not None:
        extra = CollectorRegistry()
        extra.register(InboxCollector(inbox))
        text += generate_latest(extra)
    return text


ASGIApp = Callable[..., typing.Awaitable[None]]


def app(inbox: Inbox | None = None) -> ASGIApp:
    """An ASGI app that answers every GET with :func:`render`, to mount anywhere; it also
    enables counting."""
    enable()

    async def metrics_app(
        scope: dict[str, typing.Any],
        receive: Callable[[], typing.Awaitable[dict[str, typing.Any]]],
        send: Callable[[dict[str, typing.Any]], typing.Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        body = await asyncio.get_running_loop().run_in_executor(None, render, inbox)
        headers = [(b"content-type", CONTENT_TYPE_LATEST.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return metrics_app
