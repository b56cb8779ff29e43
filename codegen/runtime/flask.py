"""A Flask blueprint for incident.io webhooks (the ``flask`` extra), answering as the
Starlette app does::

    from flask import Flask
    from <this package>.flask import blueprint

    app = Flask(__name__)
    app.register_blueprint(blueprint(Handlers(), os.environ["INCIDENT_WEBHOOK_SECRET"]), url_prefix="/incident")

``POST {path}`` receives deliveries; ``GET /healthz`` and ``GET /readyz`` are the liveness
and readiness probes, as in :func:`~.app.create_app`. Flask serves synchronous handlers;
for :class:`~.handlers.AsyncWebhookHandlers` use the Starlette app or Django's async view.
With ``inbox=`` it stores and answers, and ``python -m incident_webhooks worker`` processes.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Sequence

from flask import Blueprint, Response, jsonify, request

from .events import preload as preload_models
from .handlers import AsyncWebhookHandlers, WebhookHandlers
from .observe import answered
from .receiver import (
    DEFAULT_MAX_BODY_BYTES,
    WebhookReceiver,
    logger,
    not_ready,
)
from .signature import loggable_id

__all__ = ["blueprint"]


def blueprint(
    handlers: WebhookHandlers,
    secret: str | Sequence[str],
    path: str = "/webhooks",
    *,
    name: str = "incident_webhooks",
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    endpoint: str | None = None,
    preload: bool = True,
    **receiver_options: typing.Any,
) -> Blueprint:
    """``endpoint`` names it in the dedupe keys and inbox rows (by default the request's
    path); ``receiver_options``: ``inbox``, ``dedupe``, ``tolerance``."""
    if isinstance(handlers, AsyncWebhookHandlers):
        raise TypeError(
            "Flask serves synchronous WebhookHandlers; for AsyncWebhookHandlers use "
            f"{__package__}.app.create_app or the Django async view"
        )
    if not path.startswith("/"):
        raise ValueError(f"path {path!r} must start with /, as in /webhooks")
    if preload:
        preload_models()
    receiver = WebhookReceiver(
        secret, handlers, max_body_bytes=max_body_bytes, **receiver_options
    )
    if inspect.iscoroutinefunction(receiver.dedupe.claim):
        raise TypeError(
            "Flask needs a synchronous dedupe store (RedisDedupeStore, not Async...)"
        )
    pages = Blueprint(name, __name__)

    @pages.post(path)
    def receive() -> tuple[Response, int] | Response:
        # Werkzeug's Headers is not a Mapping; the names are compared in lower case.
        headers = {name.lower(): value for name, value in request.headers.items()}
        declared = request.content_length
        if declared is not None and declared > max_body_bytes:
            logger.warning(
                "webhook-id %s (unverified): 413, body over the limit of %d bytes",
                loggable_id(headers), max_body_bytes,
                extra=answered(loggable_id(headers), "too_large"),
            )  # fmt: skip
            return jsonify(error=f"body larger than {max_body_bytes} bytes"), 413
        # At most one byte over the limit: the receiver refuses it without reading more.
        body = request.stream.read(max_body_bytes + 1)
        where = endpoint or request.script_root + request.path
        answer = receiver.handle(body, headers, endpoint=where)
        return Response(answer.body, answer.status, dict(answer.headers))

    @pages.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @pages.get("/readyz")
    def readyz() -> tuple[Response, int] | Response:
        problem = receiver.ready()
        if problem is not None:
            return jsonify(not_ready(receiver, problem)), 503
        return jsonify(status="ok")

    pages.receiver = receiver  # type: ignore[attr-defined]
    return pages
