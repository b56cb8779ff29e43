"""A framework-agnostic webhook receiver that answers the way incident.io's retries need.

incident.io (through Svix) retries every non-2xx answer for about a day, so the status code
decides what happens next:

* 2xx: delivered; never sent again. Given for handled events, for event types this package
  does not know (incident.io adds webhooks over time) and for a redelivery of a handled id.
* 401 bad or stale signature, 413 body too large, 400 body that does not validate: the
  delivery is refused. Retrying cannot fix these, but they are not acknowledged either.
* 500 the handler raised, 409 the same delivery is being handled right now, 503 the dedupe
  store cannot be reached or refused the claim: retried later, so no event is lost.

With an ``inbox`` (:mod:`.inbox`), a verified JSON delivery is stored and answered 2xx at
once; workers (:mod:`.worker`) validate its payload and run the handlers later. A body the
models refuse is kept there as ``invalid``, to be replayed after ``make generate``, and an
inbox that cannot be written is a 503 with nothing stored.

Svix sends the same ``webhook-id`` to every endpoint subscribed to an event, so the dedupe
key is the receiver's ``endpoint`` name together with the id: two endpoints (two mounts, two
apps) sharing one store each handle their own copy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import hashlib
import inspect
import json
import logging
import time
import types
import typing
import urllib.parse
from collections.abc import Awaitable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from . import observe, tracing
from .dedupe import (
    AsyncDedupeStore,
    DedupeStore,
    InMemoryDedupeStore,
    Lease,
    StoreUnavailable,
    Taken,
)
from .errors import InvalidPayload, InvalidSignature, UnknownEventType, WebhookError
from .events import ENVELOPE, event_type_of, event_type_of_body, parse_event
from .handlers import AsyncWebhookHandlers, WebhookHandlers
from .inbox import Inbox
from .inbox import from_url as inbox_from_url
from .observe import answered, current_webhook_id, fields
from .signature import DEFAULT_TOLERANCE_SECONDS, SignatureVerifier, header, loggable_id

logger = logging.getLogger(__name__)
# The ``webhook-id`` of the delivery being handled, for handlers and their logs.

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# Seconds a 503 asks the sender to wait; Svix keeps to its own schedule either way.
RETRY_AFTER_SECONDS = 5
# How long a handler thread waits for an asyncio store's answer from the event loop.
STORE_CALL_TIMEOUT_SECONDS = 30.0
# How long a readiness check waits for the store.
READY_TIMEOUT_SECONDS = 5.0
DEFAULT_ENDPOINT = "default"
if typing.TYPE_CHECKING:
    from .events import WebhookEvent

    Event: typing.TypeAlias = WebhookEvent | UnknownEventType
__all__ = [
    "DEFAULT_MAX_BODY_BYTES", "DedupeStore", "InMemoryDedupeStore", "Response",
    "StoreUnavailable", "WebhookReceiver", "current_webhook_id",
]  # fmt: skip


def _event_type(event: object) -> str:
    """The event type of a parsed event, or the one a parse error names ("" if none)."""
    if isinstance(event, WebhookError):
        named: object = getattr(event, "event_type", "")
        return named if isinstance(named, str) else ""
    return event_type_of(event)


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(
        default_factory=lambda: {"content-type": "application/json"}
    )


@dataclass(frozen=True)
class _Keeping:
    """A verified delivery on its way into the inbox."""

    endpoint: str
    webhook_id: str
    event_type: str
    body: bytes
    headers: Mapping[str, str]
    traceparent: str | None

    def store(self, inbox: Inbox) -> bool:
        return inbox.store(
            self.endpoint, self.webhook_id, self.event_type, self.body, self.headers,
            traceparent=self.traceparent,
        )  # fmt: skip

    async def store_async(self, inbox: Inbox) -> bool:
        return await inbox.store_async(
            self.endpoint, self.webhook_id, self.event_type, self.body, self.headers,
            traceparent=self.traceparent,
        )  # fmt: skip


def _json(status: int, /, **content: str) -> Response:
    return Response(status, json.dumps(content).encode())


def _made_once(status: int, /, **content: str) -> Response:
    """An answer that never changes, shared by every delivery it answers (its headers
    read-only): making it again cost a busy server a few per cent of its CPU."""
    answer = _json(status, **content)
    return Response(status, answer.body, types.MappingProxyType(dict(answer.headers)))


_HANDLED = _made_once(200, status="ok")
_STORED = _made_once(200, status="stored")
_DUPLICATE = _made_once(200, status="duplicate")


class WebhookReceiver:
    """Verifies, parses, deduplicates and dispatches one delivery; see the module docstring
    for what each answer means to incident.io."""

    def __init__(
        self,
        secret: str | Sequence[str],
        handlers: WebhookHandlers | AsyncWebhookHandlers,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        dedupe: DedupeStore | AsyncDedupeStore | None = None,
        tolerance: int = DEFAULT_TOLERANCE_SECONDS,
        endpoint: str = DEFAULT_ENDPOINT,
        inbox: Inbox | str | None = None,
        event_types: Collection[str] | None = None,
        abort_retries: bool = True,
    ) -> None:
        """``endpoint`` names this endpoint in the dedupe keys (and the inbox's rows): give
        each receiver that shares a store with another its own (``create_app`` uses its
        mount path). ``inbox`` (an Inbox or its URL) stores deliveries instead of handling
        them; it deduplicates by itself, so it takes no ``dedupe`` store.

        ``event_types``: the event types this endpoint is for; a delivery of another type
        is answered 422 (``not_accepted``) instead of being handled. ``abort_retries``: the
        answers that no retry can change (422 for such a type, 400 for a body that is not
        JSON) carry ``webhook-delivery: abort-message``, so Svix stops retrying them; False
        leaves Svix to its schedule."""
        if inbox is not None and dedupe is not None:
            raise ValueError(
                "give an inbox or a dedupe store, not both: the inbox keeps one row per "
                "webhook-id, which is its deduplication"
            )
        self.verifier = SignatureVerifier(secret, tolerance=tolerance)
        self.endpoint = _check_endpoint(endpoint)
        self.handlers = handlers
        self.max_body_bytes = max_body_bytes
        self.inbox = inbox_from_url(inbox) if inbox is not None else None
        self.event_types = frozenset(event_types) if event_types is not None else None
        self.abort_retries = abort_retries
        self.dedupe: DedupeStore | AsyncDedupeStore = (
            dedupe if dedupe is not None else InMemoryDedupeStore()
        )
        self._async_store = inspect.iscoroutinefunction(self.dedupe.claim)

    def handle(
        self, body: bytes, headers: Mapping[str, str], *, endpoint: str | None = None
    ) -> Response:
        """Handle one delivery with synchronous handlers and a synchronous store;
        ``endpoint`` overrides the receiver's for this delivery."""
        handlers = self.handlers
        if self.inbox is not None:
            return self._keep(body, headers, endpoint)
        if isinstance(handlers, AsyncWebhookHandlers):
            raise TypeError("AsyncWebhookHandlers need handle_async()")
        if self._async_store:
            raise TypeError("an asyncio dedupe store needs handle_async()")
        accepted = self._accept(body, headers)
        if isinstance(accepted, Response):
            return accepted
        webhook_id, event = accepted
        claim = self._call(None, self.dedupe.claim, self._key(webhook_id, endpoint))
        if not isinstance(claim, Lease):
            return self._refused(webhook_id, claim, _event_type(event))
        return self._run(handlers, webhook_id, event, claim, None)

    async def handle_async(
        self, body: bytes, headers: Mapping[str, str], *, endpoint: str | None = None
    ) -> Response:
        """Handle one delivery; synchronous handlers run in a worker thread."""
        if self.inbox is not None:
            return await self._keep_async(body, headers, endpoint)
        accepted = self._accept(body, headers)
        if isinstance(accepted, Response):
            return accepted
        webhook_id, event = accepted
        loop = asyncio.get_running_loop()
        lease = await self._call_async(
            self.dedupe.claim, self._key(webhook_id, endpoint)
        )
        if not isinstance(lease, Lease):
            return self._refused(webhook_id, lease, _event_type(event))
        handlers = self.handlers
        if not isinstance(handlers, AsyncWebhookHandlers):
            # A thread cannot be stopped: if this task is cancelled, the handler still runs
            # to its end, and the thread itself completes or releases the claim by what the
            # handler did. Releasing it here instead would let a retry run beside it.
            context = contextvars.copy_context()

            # A closure, not run_in_executor(None, context.run, self._run, ...): mypy infers
            # that nested call's ParamSpec against every member of the event union, which
            # took seconds per check of a package with a hundred webhooks.
            def work() -> Response:
                return context.run(self._run, handlers, webhook_id, event, lease, loop)

            future = loop.run_in_executor(None, work)
            return await asyncio.shield(future)
        current_webhook_id.set(webhook_id)
        try:
            with handler_run(webhook_id, _event_type(event)):
                if isinstance(event, UnknownEventType):
                    await handlers.on_unknown(event.event_type, event.payload)
                else:
                    await handlers.dispatch(event)
        except Exception:
            logger.exception(
                "webhook-id %s: 500, the %s handler raised",
                webhook_id,
                _event_type(event),
                extra=answered(webhook_id, "handler_error", _event_type(event)),
            )
            await self._settle_async(self.dedupe.release, lease)
            return _json(500, error="handler failed; incident.io will retry")
        except BaseException:
            self._interrupted(webhook_id, event)
            if not self._async_store:
                self._call(None, self.dedupe.release, lease)
            else:
                # Its own task, so that it is not cancelled with this one; if the loop is
                # shutting down it may not run, and the lease lapses instead.
                settle = asyncio.ensure_future(
                    self._settle_async(self.dedupe.release, lease)
                )
                settle.add_done_callback(
                    lambda task: task.cancelled() or task.exception()
                )
            raise
        await self._settle_async(self.dedupe.complete, lease)
        _handled(webhook_id, event)
        return _HANDLED

    def _keep(
        self, body: bytes, headers: Mapping[str, str], endpoint: str | None
    ) -> Response:
        """Verify, then store in the inbox, then answer: nothing waits for a handler."""
        assert self.inbox is not None
        keeping = self._to_keep(body, headers, endpoint)
        if isinstance(keeping, Response):
            return keeping
        try:
            stored = keeping.store(self.inbox)
        # Whatever the inbox raises, nothing was stored: a 503 and incident.io retries.
        except Exception as exc:  # noqa: BLE001
            return self._refused(
                keeping.webhook_id, _unavailable(exc), keeping.event_type
            )
        if not stored:
            self._compare_bodies(
                keeping.endpoint, keeping.webhook_id, body, keeping.event_type
            )
        return self._kept(keeping, stored)

    async def _keep_async(
        self, body: bytes, headers: Mapping[str, str], endpoint: str | None
    ) -> Response:
        """:meth:`_keep` on the loop: the row waits there for the inbox's writer, which
        commits it with the rows of the other requests waiting."""
        assert self.inbox is not None
        keeping = self._to_keep(body, headers, endpoint)
        if isinstance(keeping, Response):
            return keeping
        try:
            stored = await keeping.store_async(self.inbox)
        except Exception as exc:  # noqa: BLE001 - as in _keep
            return self._refused(
                keeping.webhook_id, _unavailable(exc), keeping.event_type
            )
        if not stored:
            # A read of the stored body: in a thread, so the loop keeps receiving.
            compare = functools.partial(
                self._compare_bodies, keeping.endpoint, keeping.webhook_id, body,
                keeping.event_type,
            )  # fmt: skip
            await asyncio.get_running_loop().run_in_executor(
                None, contextvars.copy_context().run, compare
            )
        return self._kept(keeping, stored)

    def _to_keep(
        self, body: bytes, headers: Mapping[str, str], endpoint: str | None
    ) -> Response | _Keeping:
        """Verified and named, not validated: the worker that runs the handler validates
        the payload, and keeps a body the models refuse as ``invalid`` for a replay after
        ``make generate``. Validating it here too cost a third of a stored delivery's CPU
        in a busy server."""
        verified = self._verified(body, headers)
        if isinstance(verified, Response):
            return verified
        webhook_id = verified
        try:
            event_type = event_type_of_body(body, headers)
        except InvalidPayload as exc:
            return self._not_json(webhook_id, exc)
        refused = self._not_accepted(webhook_id, event_type)
        if refused is not None:
            return refused
        endpoint = self.endpoint if endpoint is None else endpoint
        return _Keeping(
            endpoint, webhook_id, event_type, body, headers, tracing.traceparent()
        )

    def _kept(self, keeping: _Keeping, stored: bool) -> Response:
        webhook_id, event_type = keeping.webhook_id, keeping.event_type
        if not stored:
            return self._refused(webhook_id, "done", event_type)
        logger.info(
            "webhook-id %s: stored %s", webhook_id, event_type,
            extra=answered(webhook_id, "stored", event_type),
        )  # fmt: skip
        return _STORED

    def _accept(
        self, body: bytes, headers: Mapping[str, str]
    ) -> Response | tuple[str, Event]:
        """Everything before the dedupe claim; a Response means stop and answer with it."""
        verified = self._verified(body, headers)
        if isinstance(verified, Response):
            return verified
        webhook_id = verified
        event: Event | InvalidPayload
        try:
            event = parse_event(body, headers)
        except (UnknownEventType, InvalidPayload) as exc:
            event = exc
        if isinstance(event, InvalidPayload) and any(
            e.get("type") == "json_invalid" for e in event.errors
        ):
            return self._not_json(webhook_id, event)
        event_type = _event_type(event)
        refused = self._not_accepted(webhook_id, event_type)
        if refused is not None:
            return refused
        if isinstance(event, InvalidPayload):
            logger.error(
                "webhook-id %s: 400, invalid payload: %s",
                webhook_id, event, extra=answered(webhook_id, "invalid", event_type),
            )  # fmt: skip
            return _json(400, error=str(event))
        return webhook_id, event

    def _verified(self, body: bytes, headers: Mapping[str, str]) -> Response | str:
        """The delivery's id once its size and signature pass; else the answer."""
        if len(body) > self.max_body_bytes:
            logger.warning(
                "webhook-id %s (unverified): 413, body of %d bytes is over the limit of %d",
                loggable_id(headers), len(body), self.max_body_bytes,
                extra=answered(loggable_id(headers), "too_large"),
            )  # fmt: skip
            return _json(413, error=f"body larger than {self.max_body_bytes} bytes")
        try:
            self.verifier.verify(body, headers)
        except InvalidSignature as exc:
            outcome = "stale" if exc.stale else "bad_signature"
            logger.warning(
                "webhook-id %s (unverified): 401, %s",
                loggable_id(headers),
                exc,
                extra=answered(loggable_id(headers), outcome),
            )
            return _json(401, error="invalid signature")
        return header(headers, ENVELOPE.id_header)

    def _not_json(self, webhook_id: str, problem: InvalidPayload) -> Response:
        logger.error(
            "webhook-id %s: 400, invalid payload: %s",
            webhook_id, problem, extra=answered(webhook_id, "not_json"),
        )  # fmt: skip
        return self._final(_json(400, error=str(problem)))

    def _not_accepted(self, webhook_id: str, event_type: str) -> Response | None:
        if self.event_types is None or event_type in self.event_types:
            return None
        logger.warning(
            "webhook-id %s: 422, this endpoint does not accept %s",
            webhook_id, event_type or "a body without an event type",
            extra=answered(webhook_id, "not_accepted", event_type),
        )  # fmt: skip
        return self._final(
            _json(422, error=f"this endpoint does not accept {event_type!r} events")
        )

    def _compare_bodies(
        self, endpoint: str, webhook_id: str, body: bytes, event_type: str
    ) -> None:
        """A redelivery is acknowledged whatever its body (the first one stored wins), but
        a validly signed body that differs from the stored one is not a plain retry: said
        loudly, with both digests, so that it can be found."""
        assert self.inbox is not None
        try:
            first = self.inbox.body_of(endpoint, webhook_id)
        # The answer stands whatever this read does; only the comparison is lost.
        except Exception:  # noqa: BLE001
            return
        if first is None or first == body:
            return
        logger.warning(
            "webhook-id %s: redelivered with a different body (sha256 %s; stored: sha256 %s);"
            " the stored body is kept",
            webhook_id, hashlib.sha256(body).hexdigest(), hashlib.sha256(first).hexdigest(),
            extra=answered(webhook_id, "duplicate_differs", event_type),
        )  # fmt: skip

    def _final(self, answer: Response) -> Response:
        """An answer no retry can change: with ``abort_retries``, it tells Svix to stop."""
        if not self.abort_retries:
            return answer
        headers = {**answer.headers, "webhook-delivery": "abort-message"}
        return Response(answer.status, answer.body, headers)

    def _key(self, webhook_id: str, endpoint: str | None) -> str:
        endpoint = self.endpoint if endpoint is None else endpoint
        # Quoted, so that no endpoint name can end in what another's key begins with.
        return urllib.parse.quote(endpoint, safe="/") + ":" + webhook_id

    def _refused(
        self, webhook_id: str, claim: Taken | StoreUnavailable, event_type: str = ""
    ) -> Response:
        """The answer when the claim (or the inbox's write) was not taken."""
        if isinstance(claim, StoreUnavailable):
            store = "dedupe store" if self.inbox is None else "inbox"
            logger.error(
                "webhook-id %s: 503, %s unavailable: %s",
                webhook_id,
                store,
                claim,
                extra=answered(webhook_id, "store_unavailable", event_type),
            )
            answer = _json(503, error=f"{store} unavailable; incident.io will retry")
            headers = {**answer.headers, "retry-after": str(RETRY_AFTER_SECONDS)}
            return Response(answer.status, answer.body, headers)
        if claim == "done":
            logger.info(
                "webhook-id %s: already %s, acknowledged again",
                webhook_id,
                "handled" if self.inbox is None else "stored",
                extra=answered(webhook_id, "duplicate", event_type),
            )
            return _DUPLICATE
        logger.info(
            "webhook-id %s: 409, being handled right now; retried later",
            webhook_id,
            extra=answered(webhook_id, "busy", event_type),
        )
        return _json(409, error="this delivery is being handled; retry later")

    def ready(self) -> str | None:
        """None when the dedupe store (or the inbox) answers, else why not (for a readiness
        probe)."""
        if self.inbox is not None:
            try:
                self.inbox.ready()
            except Exception as exc:  # noqa: BLE001
                return str(_unavailable(exc))
            return None
        if self._async_store:
            raise TypeError("an asyncio dedupe store needs ready_async()")
        outcome = self._call(None, self.dedupe.ping)
        return str(outcome) if isinstance(outcome, StoreUnavailable) else None

    async def ready_async(self) -> str | None:
        """:meth:`ready` for an event loop; a store that does not answer in
        ``READY_TIMEOUT_SECONDS`` is not ready."""
        call: Awaitable[typing.Any] = (
            asyncio.get_running_loop().run_in_executor(None, self.ready)
            if self.inbox is not None
            else (
                self._call_async(self.dedupe.ping)
                if self._async_store
                else asyncio.get_running_loop().run_in_executor(
                    None, self._call, None, self.dedupe.ping
                )
            )
        )
        try:
            outcome = await asyncio.wait_for(call, READY_TIMEOUT_SECONDS)
        except TimeoutError:
            store = "inbox" if self.inbox is not None else "dedupe store"
            return f"the {store} did not answer within {READY_TIMEOUT_SECONDS:g}s"
        if self.inbox is not None:
            return typing.cast(str | None, outcome)
        return str(outcome) if isinstance(outcome, StoreUnavailable) else None

    def _run(
        self,
        handlers: WebhookHandlers,
        webhook_id: str,
        event: Event,
        lease: Lease,
        loop: asyncio.AbstractEventLoop | None,
    ) -> Response:
        """Call a synchronous handler and settle the claim by its outcome. ``loop``: the
        event loop an asyncio store runs on, when this runs in a worker thread."""
        current_webhook_id.set(webhook_id)
        try:
            with handler_run(webhook_id, _event_type(event)):
                if isinstance(event, UnknownEventType):
                    handlers.on_unknown(event.event_type, event.payload)
                else:
                    handlers.dispatch(event)
        except Exception:
            logger.exception(
                "webhook-id %s: 500, the %s handler raised",
                webhook_id,
                _event_type(event),
                extra=answered(webhook_id, "handler_error", _event_type(event)),
            )
            self._call(loop, self.dedupe.release, lease)
            return _json(500, error="handler failed; incident.io will retry")
        except BaseException:
            self._interrupted(webhook_id, event)
            self._call(loop, self.dedupe.release, lease)
            raise
        self._call(loop, self.dedupe.complete, lease)
        _handled(webhook_id, event)
        return _HANDLED

    def _interrupted(self, webhook_id: str, event: Event) -> None:
        # Cancelled (a timeout, a client gone, a shutdown) or the process is exiting: the
        # event was not handled, so the claim is released for incident.io's retry.
        logger.warning(
            "webhook-id %s: the %s handler was interrupted",
            webhook_id,
            _event_type(event),
            extra=answered(webhook_id, "interrupted", _event_type(event)),
        )

    def _call(
        self,
        loop: asyncio.AbstractEventLoop | None,
        method: typing.Callable[..., typing.Any],
        *args: typing.Any,
    ) -> typing.Any:
        """Call a store method (``self.dedupe.claim``, ...) from synchronous code; an
        asyncio store's coroutine runs on ``loop``. A failure of any kind is returned as
        StoreUnavailable, never raised: after a handler ran, the answer must not change.
        """
        try:
            result = method(*args)
            if inspect.isawaitable(result):
                if loop is None:
                    raise TypeError("an asyncio dedupe store needs handle_async()")
                pending = asyncio.run_coroutine_threadsafe(_awaited(result), loop)
                try:
                    result = pending.result(timeout=STORE_CALL_TIMEOUT_SECONDS)
                except concurrent.futures.TimeoutError:
                    # The loop is gone or stuck (a shutdown): the lease lapses instead.
                    pending.cancel()
                    raise StoreUnavailable(
                        "the event loop did not run the store call"
                    ) from None
        # Whatever a store raises, the answer is decided here.
        except Exception as exc:  # noqa: BLE001
            failure = _unavailable(exc)
            if args and isinstance(args[0], Lease):
                _settle_failed(method.__name__, args[0], failure)
            return failure
        return result

    async def _call_async(
        self, method: typing.Callable[..., typing.Any], *args: typing.Any
    ) -> typing.Any:
        """:meth:`_call` on the event loop, for a store of either kind."""
        try:
            result = method(*args)
            return await result if inspect.isawaitable(result) else result
        # Whatever a store raises, the answer is decided here.
        except Exception as exc:  # noqa: BLE001
            return _unavailable(exc)

    async def _settle_async(
        self, method: typing.Callable[[Lease], typing.Any], lease: Lease
    ) -> None:
        outcome = await self._call_async(method, lease)
        if isinstance(outcome, StoreUnavailable):
            _settle_failed(method.__name__, lease, outcome)


async def _awaited(value: Awaitable[typing.Any]) -> typing.Any:
    return await value


def not_ready(receiver: WebhookReceiver, problem: str) -> dict[str, str]:
    """The public body of a 503 readiness answer (every framework's probe). The detail,
    which may name a host and port, goes to the log only."""
    logger.warning("not ready: %s", problem)
    store = "inbox" if receiver.inbox is not None else "dedupe store"
    return {"status": "unavailable", "reason": f"the {store} is unavailable"}


@contextlib.contextmanager
def handler_run(webhook_id: str, event_type: str) -> Iterator[None]:
    """One handler run: its ``process`` span, and its time and result for metrics."""
    started = time.monotonic()
    result = "error"
    try:
        with tracing.process_span(webhook_id, event_type):
            yield
        result = "ok"
    finally:
        observe.handler(event_type, result, time.monotonic() - started)


def _handled(webhook_id: str, event: Event) -> None:
    outcome = "unknown_type" if isinstance(event, UnknownEventType) else "handled"
    logger.info(
        "webhook-id %s: handled %s",
        webhook_id,
        _event_type(event),
        extra=answered(webhook_id, outcome, _event_type(event)),
    )


def _unavailable(exc: Exception) -> StoreUnavailable:
    """Any failure of a store (a refusal such as Redis' OOM or READONLY, a bug in a store of
    the application's own) as StoreUnavailable: at claim time a 503, never a 500."""
    if isinstance(exc, StoreUnavailable):
        return exc
    failure = StoreUnavailable(f"{type(exc).__name__}: {exc}")
    failure.__cause__ = exc
    return failure


def _settle_failed(action: str, lease: Lease, exc: StoreUnavailable) -> None:
    # The handler has run (or failed) already, so the answer stands: after a success a
    # 2xx (a retry would handle the event twice), after a failure a 500. The lease lapses
    # by itself, so a retry is still handled.
    logger.error(
        "dedupe key %s: could not %s the claim: %s",
        lease.key,
        action,
        exc,
        # The endpoint is quoted in the key, so its first ":" ends it; an id may hold more.
        extra=fields(lease.key.partition(":")[2], "settle_failed"),
    )


def _check_endpoint(endpoint: object) -> str:
    if not isinstance(endpoint, str) or not endpoint or len(endpoint) > 200:
        raise ValueError("endpoint must be a name of 1 to 200 characters")
    return endpoint
