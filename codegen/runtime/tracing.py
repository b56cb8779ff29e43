"""OpenTelemetry traces: a ``SERVER`` span per delivery (HTTP server conventions) and a
``process`` span per handler run (messaging conventions: ``messaging.message.id`` is the
webhook-id), linked to the span that received the delivery, also when an inbox worker runs
it hours later (the receiving span's context is kept with the row).

Only ``opentelemetry-api`` is used, and only if it is installed; without an SDK configured
by the application every span is a no-op.
"""

from __future__ import annotations

import contextlib
import functools
import re
import typing
from collections.abc import Iterator

__all__ = ["process_span", "server_span", "traceparent"]

_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


class _NoSpan:
    def set_attribute(self, key: str, value: typing.Any) -> None:
        pass

    def set_status_error(self, description: str) -> None:
        pass


class _Span:
    def __init__(self, span: typing.Any) -> None:
        self.span = span

    def set_attribute(self, key: str, value: typing.Any) -> None:
        self.span.set_attribute(key, value)

    def set_status_error(self, description: str) -> None:
        trace = _api()
        self.span.set_status(trace.Status(trace.StatusCode.ERROR, description))


Span = _Span | _NoSpan
_NO_SPAN = _NoSpan()


@functools.cache
def _api() -> typing.Any:
    """``opentelemetry.trace``, or None when the API is not installed (no spans at all)."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    return trace


_LAST: list[typing.Any] = [None, None]  # the provider, and its tracer


def _tracer() -> typing.Any:
    """The tracer of the configured SDK, or None: with no SDK (the API's proxy provider)
    or a no-op one, spans are skipped here, which is most of their cost."""
    trace = _api()
    if trace is None:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    if _LAST[0] is not provider:
        _LAST[:] = [provider, provider.get_tracer(__package__ or "incident_webhooks")]
    return _LAST[1]


@contextlib.contextmanager
def server_span(
    method: str, route: str, path: typing.Callable[[], str]
) -> Iterator[Span]:
    """The span of one HTTP request that delivers a webhook; the caller sets
    ``http.response.status_code``. ``path`` is asked for only when there is a tracer:
    building a request's URL was 3 % of a stored delivery's time in the server."""
    tracer = _tracer()
    if tracer is None:
        yield _NO_SPAN
        return
    trace = _api()
    attributes = {
        "http.request.method": method,
        "http.route": route,
        "url.path": path(),
    }
    with tracer.start_as_current_span(
        f"{method} {route}", kind=trace.SpanKind.SERVER, attributes=attributes
    ) as span:
        yield _Span(span)


def traceparent() -> str | None:
    """The current span's context as a W3C ``traceparent``, to keep with an inbox row."""
    trace = _api()
    if trace is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return (
        f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    )


def _linked(parent: str | None) -> list[typing.Any]:
    trace = _api()
    if parent is None:
        context = trace.get_current_span().get_span_context()
    else:
        found = _TRACEPARENT.fullmatch(parent)
        if found is None:
            return []
        context = trace.SpanContext(
            int(found[1], 16), int(found[2], 16), is_remote=True,
            trace_flags=trace.TraceFlags(int(found[3], 16)),
        )  # fmt: skip
    return [trace.Link(context)] if context.is_valid else []


@contextlib.contextmanager
def process_span(
    webhook_id: str, event_type: str, received: str | None = None
) -> Iterator[Span]:
    """The span of one handler run, linked to the receiving span: ``received`` (a kept
    ``traceparent``) for an inbox row, else the current span (which is also its parent).
    """
    tracer = _tracer()
    if tracer is None:
        yield _NO_SPAN
        return
    trace = _api()
    attributes = {
        "messaging.system": "incident.io",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": event_type,
        "messaging.message.id": webhook_id,
    }
    with tracer.start_as_current_span(
        f"process {event_type}",
        kind=trace.SpanKind.CONSUMER,
        attributes=attributes,
        links=_linked(received),
        record_exception=True,
    ) as span:
        yield _Span(span)
