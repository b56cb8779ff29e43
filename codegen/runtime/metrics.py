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
* ``incident_webhooks_handler_delay_seconds{event_type}``: for inbox rows, from receipt to
  the handler's start, the time a row waited (inline, a handler starts within its request).
* ``incident_webhooks_inbox_attempts_total{event_type, result}``: inbox rows settled by a
  worker (done, failed, dead, invalid).
* With an inbox, read from the database at each scrape: ``incident_webhooks_inbox_rows{state}``
  (``dead`` included), ``incident_webhooks_inbox_oldest_pending_seconds`` and
  ``incident_webhooks_inbox_up``.

Updates are queued on the receive path and applied at each scrape and once a second, so a
count reaches a scrape of another process within a second.

Several processes (``uvicorn --workers N``): set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
folder, the same for every process, before they start; a scrape of any of them then reads
all of them (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import functools
import os
import threading
import time
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
from .errors import StoreUnavailable
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

__all__ = [
    "InboxCollector", "MetricsApp", "app", "disable", "enable", "flush", "render", "serve",
]  # fmt: skip


def label(event_type: str) -> str:
    """The event type as a label value: those the spec names, "" when not known yet, else
    ``other`` (a sender could otherwise make the label set grow without bound)."""
    return event_type if event_type in EVENT_MODELS or not event_type else "other"


# Each labelled series' update method, looked up once: ``labels()`` costs more than the
# update itself, and on the receive path that is most of what metrics cost. The keys are
# label values, so the cache is bounded.
@functools.cache
def _update(metric: typing.Any, *values: str) -> typing.Callable[[float], None]:
    series = metric.labels(*values)
    return typing.cast(
        typing.Callable[[float], None],
        series.inc if isinstance(metric, Counter) else series.observe,
    )


class _Prometheus:
    """Queues each update (a deque's append is atomic and far cheaper than prometheus-
    client's locked update): the receive path pays for an append, and :func:`flush` applies
    them at each scrape and once a second."""

    def delivery(self, outcome: str, event_type: str) -> None:
        _QUEUED.append((DELIVERIES, (outcome, event_type), 1.0))

    def handler(
        self, event_type: str, result: str, seconds: float, delay: float | None
    ) -> None:
        _QUEUED.append((HANDLER_SECONDS, (event_type, result), seconds))
        if delay is not None:
            _QUEUED.append((HANDLER_DELAY, (event_type,), max(0.0, delay)))

    def attempt(self, event_type: str, result: str) -> None:
        _QUEUED.append((INBOX_ATTEMPTS, (event_type, result), 1.0))


_QUEUED: collections.deque[tuple[typing.Any, tuple[str, ...], float]] = (
    collections.deque()
)
_OBSERVER = _Prometheus()
FLUSH_SECONDS = 1.0
_flusher: list[threading.Thread] = []


def flush() -> None:
    """Apply the queued updates to the metrics (in multiprocess mode, to this process's
    files, which every scrape reads)."""
    while True:
        try:
            metric, values, amount = _QUEUED.popleft()
        except IndexError:
            return
        # The event type is the first label of every metric but the deliveries'.
        if metric is DELIVERIES:
            values = (values[0], label(values[1]))
        else:
            values = (label(values[0]), *values[1:])
        _update(metric, *values)(amount)


def _flush_every_second() -> None:
    while True:
        time.sleep(FLUSH_SECONDS)
        flush()


def _start_flusher() -> None:
    if not _flusher:
        # What is queued when the process exits is applied (to its files, in multiprocess
        # mode) rather than lost.
        atexit.register(flush)
    if not _flusher or not _flusher[0].is_alive():
        thread = threading.Thread(
            target=_flush_every_second, name="metrics-flush", daemon=True
        )
        _flusher[:] = [thread]
        thread.start()


def enable() -> None:
    """Count from now on (``create_app(metrics=True)`` calls it)."""
    if not observe.has(_OBSERVER):
        observe.add(_OBSERVER)
        _start_flusher()


def disable() -> None:
    observe.remove(_OBSERVER)
    flush()


def _after_fork_in_child() -> None:
    # The parent's flusher thread does not exist here, and what the parent had queued is
    # the parent's to apply: the child starts empty.
    _QUEUED.clear()
    _flusher.clear()
    if observe.has(_OBSERVER):
        _start_flusher()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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
    flush()
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


def serve(port: int, host: str = "127.0.0.1", inbox: Inbox | None = None) -> typing.Any:
    """Serve :func:`render` at every GET path on ``host:port`` from a daemon thread (for
    worker processes, which have no web app); returns the server (``shutdown()`` stops
    it). Enables counting."""
    import http.server

    enable()

    class Scrape(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                body = render(inbox)
            except Exception:  # noqa: BLE001 (a scrape must not kill the thread)
                self.send_error(500)
                return
            self.send_response(200)
            self.send_header("content-type", CONTENT_TYPE)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: typing.Any) -> None:
            pass  # one line per scrape is noise

    server = http.server.ThreadingHTTPServer((host, port), Scrape)
    threading.Thread(
        target=server.serve_forever, name="metrics-http", daemon=True
    ).start()
    return server


class MetricsApp:
    """An ASGI app that answers every request with :func:`render`. An object, not a
    function, so that Starlette's ``Route`` serves it as an app rather than calling it
    with a request."""

    def __init__(self, inbox: Inbox | None = None) -> None:
        self.inbox = inbox

    async def __call__(
        self,
        scope: dict[str, typing.Any],
        receive: Callable[[], typing.Awaitable[dict[str, typing.Any]]],
        send: Callable[[dict[str, typing.Any]], typing.Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        loop = asyncio.get_running_loop()
        body = await loop.run_in_executor(None, render, self.inbox)
        headers = [(b"content-type", CONTENT_TYPE.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def app(inbox: Inbox | None = None) -> MetricsApp:
    """The ASGI app to route ``/metrics`` to (with the inbox's rows when given); it also
    enables counting."""
    enable()
    return MetricsApp(inbox)
