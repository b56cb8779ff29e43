"""A Django view for incident.io webhooks (the ``django`` extra), answering as the Starlette
app does::

    # urls.py
    from django.urls import path
    from <this package>.django import webhook_view
    from myapp.webhooks import Handlers

    urlpatterns = [
        path("webhooks/incident/", webhook_view(Handlers(), secret=os.environ["INCIDENT_WEBHOOK_SECRET"])),
    ]

The view is CSRF-exempt (the signature is the authentication) and reads the headers from
``request.headers``. It is a coroutine view, for ASGI Django, when the handlers are
:class:`~.handlers.AsyncWebhookHandlers` or the dedupe store is an asyncio one (or with
``asynchronous=True``); otherwise a plain view. With ``inbox=`` it stores and answers, and
``python -m incident_webhooks worker`` processes (its handlers module calls ``django.setup()``).

:func:`settings_view` builds the same view from ``settings.INCIDENT_WEBHOOKS``.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Awaitable, Callable, Sequence

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .events import preload as preload_models
from .handlers import AsyncWebhookHandlers, WebhookHandlers
from .observe import answered
from .receiver import (
    DEFAULT_MAX_BODY_BYTES,
    Response,
    WebhookReceiver,
    logger,
    not_ready,
)
from .signature import loggable_id

__all__ = ["ready_view", "settings_view", "webhook_view"]

View = Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]]


def webhook_view(
    handlers: WebhookHandlers | AsyncWebhookHandlers,
    *,
    secret: str | Sequence[str],
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    endpoint: str | None = None,
    preload: bool = True,
    asynchronous: bool | None = None,
    **receiver_options: typing.Any,
) -> View:
    """A view for ``POST`` deliveries; ``endpoint`` names it in the dedupe keys and inbox
    rows (by default the request's path). ``receiver_options``: ``inbox``, ``dedupe``,
    ``tolerance``, as for :class:`~.receiver.WebhookReceiver`."""
    if preload:
        preload_models()
    receiver = WebhookReceiver(
        secret, handlers, max_body_bytes=max_body_bytes, **receiver_options
    )
    if asynchronous is None:
        asynchronous = isinstance(
            handlers, AsyncWebhookHandlers
        ) or inspect.iscoroutinefunction(receiver.dedupe.claim)

    def refused(request: HttpRequest) -> HttpResponse | None:
        if request.method != "POST":
            return JsonResponse(
                {"error": "POST only"}, status=405, headers={"allow": "POST"}
            )
        declared = request.META.get("CONTENT_LENGTH") or ""
        if declared.isdigit() and int(declared) > max_body_bytes:
            logger.warning(
                "webhook-id %s (unverified): 413, body over the limit of %d bytes",
                loggable_id(request.headers), max_body_bytes,
                extra=answered(loggable_id(request.headers), "too_large"),
            )  # fmt: skip
            return JsonResponse(
                {"error": f"body larger than {max_body_bytes} bytes"}, status=413
            )
        return None

    def body(request: HttpRequest) -> bytes:
        # At most one byte over the limit: the receiver refuses it without reading more.
        return request.read(max_body_bytes + 1)

    if asynchronous:

        async def async_view(request: HttpRequest) -> HttpResponse:
            answer = refused(request) or _django(
                await receiver.handle_async(
                    body(request), request.headers, endpoint=endpoint or request.path
                )
            )
            return answer

        view: View = async_view
    else:

        def sync_view(request: HttpRequest) -> HttpResponse:
            return refused(request) or _django(
                receiver.handle(
                    body(request), request.headers, endpoint=endpoint or request.path
                )
            )

        view = sync_view
    view = csrf_exempt(view)
    view.receiver = receiver  # type: ignore[attr-defined]
    return view


def _django(answer: Response) -> HttpResponse:
    response = HttpResponse(answer.body, status=answer.status)
    for name, value in answer.headers.items():
        response[name] = value
    return response


def ready_view(webhooks: View) -> View:
    """A readiness view for the dedupe store (or inbox) of ``webhooks``: 200, or 503 with
    the reason; a coroutine view when the store is an asyncio one."""
    receiver: WebhookReceiver = webhooks.receiver  # type: ignore[attr-defined]

    def answer(problem: str | None) -> HttpResponse:
        if problem is not None:
            return JsonResponse(not_ready(receiver, problem), status=503)
        return JsonResponse({"status": "ok"})

    if inspect.iscoroutinefunction(receiver.dedupe.claim):

        async def ready_async(request: HttpRequest) -> HttpResponse:
            return answer(await receiver.ready_async())

        return ready_async

    def ready(request: HttpRequest) -> HttpResponse:
        return answer(receiver.ready())

    return ready


def settings_view() -> View:
    """:func:`webhook_view` from ``settings.INCIDENT_WEBHOOKS``: ``HANDLERS`` (a
    ``"module:attribute"`` of a handlers instance, class or factory), ``SECRET``, and
    optionally ``INBOX``, ``DEDUPE`` (a store URL), ``MAX_BODY_BYTES``, ``ENDPOINT``.
    Built at the first request, when the apps are ready."""
    built: list[View] = []

    def view(request: HttpRequest) -> typing.Any:
        if not built:
            built.append(_from_settings())
        return built[0](request)

    return csrf_exempt(view)


def _from_settings() -> View:
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    config = getattr(settings, "INCIDENT_WEBHOOKS", None)
    if (
        not isinstance(config, dict)
        or "HANDLERS" not in config
        or "SECRET" not in config
    ):
        raise ImproperlyConfigured(
            "INCIDENT_WEBHOOKS must be a dict with HANDLERS ('module:attribute') and SECRET"
        )
    module_name, _, attr = str(config["HANDLERS"]).partition(":")
    found: typing.Any = getattr(importlib.import_module(module_name), attr)
    if not isinstance(found, WebhookHandlers | AsyncWebhookHandlers):
        found = found()
    if not isinstance(found, WebhookHandlers):
        raise ImproperlyConfigured(
            "INCIDENT_WEBHOOKS['HANDLERS'] must give WebhookHandlers (settings_view is a "
            "plain view; for AsyncWebhookHandlers use webhook_view in urls.py)"
        )
    options: dict[str, typing.Any] = {}
    if config.get("INBOX"):
        options["inbox"] = config["INBOX"]
    if config.get("DEDUPE"):
        from . import dedupe

        options["dedupe"] = dedupe.from_url(config["DEDUPE"])
    return webhook_view(
        found,
        secret=config["SECRET"],
        max_body_bytes=config.get("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
        endpoint=config.get("ENDPOINT"),
        asynchronous=False,
        **options,
    )
