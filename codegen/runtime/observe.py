"""What the package reports about each delivery and each handler run, for metrics.

The receiver and the worker call these functions at each outcome; :mod:`.metrics` registers
an observer when it is enabled. With none registered (the default) each call is an empty
loop, and nothing beyond the standard library is imported.
"""

from __future__ import annotations

import typing

__all__ = ["Observer", "add", "attempt", "delivery", "handler", "has", "remove"]


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
