"""A Starlette app around :class:`~.receiver.WebhookReceiver`; mount it in FastAPI as it is.

Needs the ``server`` extra (Starlette); the rest of the package does not.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from . import receiver as receiving
from . import tracing
from .events import preload as preload_models
from .handlers import AsyncWebhookHandlers, WebhookHandlers
from .inbox import Inbox
from .inbox import from_url as inbox_from_url
from .observe import answered
from .receiver import DEFAULT_MAX_BODY_BYTES, WebhookReceiver, not_ready
from .signature import loggable_id

logger = logging.getLogger(__name__)


def create_app(
    handlers: WebhookHandlers | AsyncWebhookHandlers,
    secret: str | Sequence[str],
    path: str = "/webhooks",
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    endpoint: str | None = None,
    preload: bool = True,
    inbox: Inbox | str | None = None,
    worker: bool | None = None,
    worker_options: Mapping[str, Any] | None = None,
    metrics: bool = False,
    **receiver_options: Any,
) -> Starlette:
    """``POST {path}`` receives incident.io webhooks.

    * ``GET /healthz``: liveness; answers 200 while the process serves requests, and
      touches nothing else (a store outage must not get the process restarted).
    * ``GET /readyz``: readiness; 200 when the dedupe store (or the inbox) answers, else 503 with the
      reason (deliveries would get 503 too), so a load balancer sends traffic elsewhere.

    ``endpoint`` names this endpoint in the dedupe keys; by default it is the path the app
    is reached at (a mount's prefix and ``path``), so two endpoints sharing one store each
    handle their own copy of a delivery (Svix sends the same id to every endpoint).

    ``preload`` builds every model and the union now, before the server takes traffic (or
    forks its workers): the first deliveries are not slower, and a package upgraded on disk
    under a running server does not change what it serves. ``preload=False`` defers that
    cost to each event type's first delivery.

    ``inbox`` (an :class:`~.inbox.Inbox` or its URL: ``sqlite:///path.db``,
    ``postgresql://...``) stores each verified delivery before the 2xx; ``worker`` (the
    default with an inbox) also runs a :class:`~.worker.Worker` in this process while the
    app is up, with ``worker_options`` (concurrency, lease_seconds, max_attempts, ...).
    ``worker=False`` leaves processing to dedicated ``worker`` processes.

    ``metrics`` (the ``metrics`` extra) counts deliveries and handler runs and serves them
    at ``GET /metrics`` (see :mod:`.metrics`). Each delivery is an OpenTelemetry ``SERVER``
    span when ``opentelemetry-api`` is installed (see :mod:`.tracing`).
    """
    if not path.startswith("/"):
        raise ValueError(f"path {path!r} must start with /, as in /webhooks")
    if worker and inbox is None:
        raise ValueError("worker=True needs an inbox to take deliveries from")
    if preload:
        preload_models()
    store = inbox_from_url(inbox) if inbox is not None else None
    receiver = WebhookReceiver(
        secret, handlers, max_body_bytes=max_body_bytes, inbox=store, **receiver_options
    )
    lifespan = None
    if store is not None and worker is not False:
        from .worker import Worker

        background = Worker(store, handlers, **(worker_options or {}))

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            import asyncio

            running = asyncio.create_task(background.run())
            app.state.worker = background
            try:
                yield
            finally:
                background.stop()
                await running

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        problem = await receiver.ready_async()
        if problem is not None:
            return JSONResponse(not_ready(receiver, problem), 503)
        return JSONResponse({"status": "ok"})

    deliveries = _Deliveries(receiver, path, endpoint, max_body_bytes)
    routes = [
        Route(path, deliveries, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
    ]
    if metrics:
        from . import metrics as prometheus

        prometheus.enable()

        async def scrape(request: Request) -> Response:
            import asyncio

            text = await asyncio.get_running_loop().run_in_executor(
                None, prometheus.render, store
            )
            return Response(text, headers={"content-type": prometheus.CONTENT_TYPE})

        routes.append(Route("/metrics", scrape))
    app = _App(deliveries, routes=routes, lifespan=lifespan)
    app.state.receiver = receiver
    return app


class _App(Starlette):
    """Starlette, with one shortcut: ``POST {path}`` reaches the deliveries endpoint
    directly while nobody has added middleware or exception handlers (which must see
    every request). Starlette's own layers and routing cost more CPU per delivery than
    verifying its signature."""

    def __init__(self, deliveries: _Deliveries, **options: Any) -> None:
        super().__init__(**options)
        self._deliveries = deliveries

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == self._deliveries.path
            and not scope.get("root_path")
            and not self.user_middleware
            and not self.exception_handlers
        ):
            scope["app"] = self
            await self._deliveries(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class _Deliveries:
    """``POST {path}`` as a bare ASGI app, not a Request handler: Starlette's request and
    response wrappers were a tenth of a stored delivery's time in a busy server."""

    def __init__(
        self,
        receiver: WebhookReceiver,
        path: str,
        endpoint: str | None,
        max_body_bytes: int,
    ) -> None:
        self.receiver = receiver
        self.path = path
        self.endpoint = endpoint
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with tracing.server_span("POST", self.path, lambda: scope["path"]) as span:
            answer = await self.answer(scope, receive)
            span.set_attribute("http.response.status_code", answer.status)
            if answer.status >= 500:
                span.set_status_error(str(answer.status))
        headers = [(b"content-length", str(len(answer.body)).encode())]
        headers += [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in answer.headers.items()
        ]
        await send(
            {"type": "http.response.start", "status": answer.status, "headers": headers}
        )
        await send({"type": "http.response.body", "body": answer.body})

    async def answer(self, scope: Scope, receive: Receive) -> receiving.Response:
        headers = Headers(scope=scope)
        limit = self.max_body_bytes
        try:
            body = await _read_limited(headers, receive, limit)
        except ClientDisconnect:
            # Nobody is left to answer, and nothing was dispatched; one quiet line, not a
            # traceback (anyone can open a connection and drop it).
            logger.debug("a client disconnected before sending its whole body")
            return receiving.Response(400, b"")
        if body is None:
            logger.warning(
                "webhook-id %s (unverified): 413, body over the limit of %d bytes",
                loggable_id(headers), limit,
                extra=answered(loggable_id(headers), "too_large"),
            )  # fmt: skip
            error = {"error": f"body larger than {limit} bytes"}
            return receiving.Response(413, json.dumps(error).encode())
        where = self.endpoint or scope.get("root_path", "") + self.path
        return await self.receiver.handle_async(body, headers, endpoint=where)


async def _read_limited(headers: Headers, receive: Receive, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed ``limit``: an oversized request is
    refused before it is read into memory, whatever its Content-Length claims."""
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
