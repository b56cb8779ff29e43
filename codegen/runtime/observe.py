"""What the package reports about each delivery and each handler run: the fields every log
record about a delivery carries, and the outcomes metrics count.

The receiver and the worker call these functions at each outcome; :mod:`.metrics` registers
an observer when it is enabled. With none registered (the default) each call is an empty
loop, and nothing beyond the standard library is imported.
"""

from __future__ import annotations

import contextvars
import typing

__all__ = [
    "Observer", "add", "answered", "attempt", "current_webhook_id", "delivery", "fields",
    "handler", "has", "remove",
]  # fmt: skip

# The webhook-id of the delivery being handled, for the application's own log records.
current_webhook_id: contextvars.ContextVar[str] = contextvars.ContextVar(
    "current_webhook_id", default=""
)


def fields(webhook_id: str, outcome: str, event_type: str = "") -> dict[str, str]:
    """What every log record about a delivery carries in ``extra``, for JSON formatters and
    filters: ``webhook_id`` (escaped when not verified yet), ``event_type`` (empty when not
    known yet) and ``outcome``: handled, stored, unknown_type, duplicate (duplicate_differs:
    the redelivery's body is not the stored one), busy, too_large,
    bad_signature, stale, not_json, invalid, store_unavailable, handler_error, dead,
    interrupted, settle_retry (inbox: retried until recorded), settle_failed."""
    return {"webhook_id": webhook_id, "event_type": event_type, "outcome": outcome}


def answered(webhook_id: str, outcome: str, event_type: str = "") -> dict[str, str]:
    """:func:`fields` for the record of a delivery's answer, which is counted too (metrics
    observe it): one call per delivery."""
    delivery(outcome, event_type)
    return fields(webhook_id, outcome, event_type)


class Observer(typing.Protocol):
    def delivery(self, outcome: str, event_type: str) -> None:
        """A delivery was answered (or stored): how, and of which event type ("" when not
        known yet: a refused signature, a body over the limit)."""

    def handler(
        self, event_type: str, result: str, seconds: float, delay: float | None
    ) -> None:
        """A handler ran: ``result`` ok or error, its ``seconds``, and for an inbox row
        ``delay``, the seconds from receipt to its start (None inline)."""

    def attempt(self, event_type: str, result: str) -> None:
        """An inbox worker settled a row: done, failed, dead or invalid."""


_OBSERVERS: list[Observer] = []


def add(observer: Observer) -> None:
    if observer not in _OBSERVERS:
        _OBSERVERS.append(observer)


def has(observer: Observer) -> bool:
    return observer in _OBSERVERS


def remove(observer: Observer) -> None:
    if observer in _OBSERVERS:
        _OBSERVERS.remove(observer)


def delivery(outcome: str, event_type: str = "") -> None:
    for observer in _OBSERVERS:
        observer.delivery(outcome, event_type)


def handler(
    event_type: str, result: str, seconds: float, delay: float | None = None
) -> None:
    for observer in _OBSERVERS:
        observer.handler(event_type, result, seconds, delay)


def attempt(event_type: str, result: str) -> None:
    for observer in _OBSERVERS:
        observer.attempt(event_type, result)
