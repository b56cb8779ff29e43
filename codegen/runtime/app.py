"""A Starlette app around :class:`~.receiver.WebhookReceiver`; mount it in FastAPI as it is.

Needs the ``server`` extra (Starlette); the rest of the package does not.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

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

    async def receive(request: Request) -> Response:
        with tracing.server_span("POST", path, lambda: request.url.path) as span:
            answer = await receive_delivery(request)
            span.set_attribute("http.response.status_code", answer.status_code)
            if answer.status_code >= 500:
                span.set_status_error(str(answer.status_code))
            return answer

    async def receive_delivery(request: Request) -> Response:
        try:
            body = await _read_limited(request, max_body_bytes)
        except ClientDisconnect:
            # Nobody is left to answer, and nothing was dispatched; one quiet line, not a
            # traceback (anyone can open a connection and drop it).
            logger.debug("a client disconnected before sending its whole body")
            return Response(status_code=400)
        if body is None:
            logger.warning(
                "webhook-id %s (unverified): 413, body over the limit of %d bytes",
                loggable_id(request.headers), max_body_bytes,
                extra=answered(loggable_id(request.headers), "too_large"),
            )  # fmt: skip
            return JSONResponse(
                {"error": f"body larger than {max_body_bytes} bytes"}, 413
            )
        where = endpoint or request.scope.get("root_path", "") + path
        answer = await receiver.handle_async(body, request.headers, endpoint=where)
        return Response(answer.body, answer.status, dict(answer.headers))

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        problem = await receiver.ready_async()
        if problem is not None:
            return JSONResponse(not_ready(receiver, problem), 503)
        return JSONResponse({"status": "ok"})

    routes = [
        Route(path, receive, methods=["POST"]),
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
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.receiver = receiver
    return app


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed ``limit``: an oversized request is
    refused before it is read into memory, whatever its Content-Length claims."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
