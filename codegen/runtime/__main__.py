"""``python -m`` this package: a demo receiver, and a sender of signed example deliveries.

* ``serve``: receives webhooks and logs each one, or runs ``--handlers module:attr`` (needs
  the ``server`` extra). The secret
  comes from ``INCIDENT_WEBHOOK_SECRET``, the ``whsec_...`` value incident.io shows for the
  endpoint.
* ``send URL``: posts the spec's examples (or a body of yours) to URL, signed as incident.io
  signs them, and prints one line per delivery.
* ``worker --inbox URL --handlers module:attr``: processes an inbox's deliveries.
* ``inbox (status|list|show|replay|prune) --inbox URL``: what an inbox holds, and replay
  and retention.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import logging
import math
import os
import sys
import time
import typing
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable
from pathlib import Path

from . import redact
from ._cli import PROG, _fail, _open_inbox, add_commands, load_handlers
from .events import EVENT_MODELS
from .handlers import WebhookHandlers

if typing.TYPE_CHECKING:
    from .events import WebhookEvent

log = logging.getLogger(f"{__package__}.demo")

SEND_EXAMPLE = """example:
  {prog} send http://127.0.0.1:8000/webhooks --secret whsec_... --all
  {prog} send URL --event {event_type}
  {prog} send URL --body my-delivery.json
The secret defaults to INCIDENT_WEBHOOK_SECRET. Exits 1 if any answer is not 2xx."""


class LoggingHandlers(WebhookHandlers):
    """Logs each event's webhook-id, its type and its own id (when its payload has one),
    and handles nothing."""

    def dispatch(self, event: WebhookEvent) -> None:
        from .events import ENVELOPE, event_type_of
        from .observe import current_webhook_id

        own_id = getattr(getattr(event, "payload", event), "id", None)
        suffix = f" id={own_id}" if isinstance(own_id, str | int) else ""
        log.info(
            "%s %s: %s%s",
            ENVELOPE.id_header,
            current_webhook_id.get(),
            event_type_of(event),
            suffix,
        )


def _secret(given: str | None) -> str:
    """The secret, or exit 2 with one line: refused here, not as a 401 on every delivery.
    The message names where the secret came from (``--secret`` or the environment)."""
    source = "--secret" if given is not None else "INCIDENT_WEBHOOK_SECRET"
    secret = (
        given if given is not None else os.environ.get("INCIDENT_WEBHOOK_SECRET", "")
    )
    if not secret.strip():
        if given is not None:
            _fail("--secret is empty; give the endpoint's whsec_... secret")
        _fail(
            "INCIDENT_WEBHOOK_SECRET is not set; export the endpoint's whsec_... secret from "
            "incident.io's webhook settings (or pass --secret)"
        )
    from .signature import check_secret

    try:
        return check_secret(secret)
    except ValueError as exc:
        _fail(f"{source}: {exc}")


def _check_serve_arguments(args: argparse.Namespace) -> None:
    """Every argument checked here, each mistake one line and exit 2, before uvicorn starts."""
    if not args.host.strip() or any(c.isspace() for c in args.host):
        _fail(f"--host {args.host!r} is not a host name or address")
    if not 1 <= args.port <= 65535:
        _fail(f"--port {args.port} is not a TCP port (1 to 65535)")
    if not 1 <= args.workers <= 256:
        _fail(f"--workers {args.workers} must be from 1 to 256")
    if not 0 < args.startup_timeout <= 3600:  # NaN too
        _fail(
            f"--startup-timeout {args.startup_timeout:g} must be above 0 and at most 3600 seconds"
        )
    path = args.path
    if not path.startswith("/") or any(
        c.isspace() or not c.isprintable() for c in path
    ):
        _fail(f"--path {path!r} must start with / and hold no spaces, as in /webhooks")


def _check_store(url: str) -> None:
    """Build the store and reach it once: a bad URL, a wrong database or a server that is
    down is reported at start-up, not as a 503 on the first delivery."""
    from . import dedupe

    try:
        store = dedupe.from_url(url)
        pinged = store.ping()
        if inspect.isawaitable(pinged):
            asyncio.run(_awaited(pinged))
    except (ValueError, dedupe.StoreUnavailable, ImportError) as exc:
        _fail(f"--dedupe {redact.dsn(url)}: {redact.scrub(exc, url)}")


async def _awaited(value: Awaitable[None]) -> None:
    await value


def demo_app() -> typing.Any:
    """The demo app, built from the environment: what every uvicorn worker process runs."""
    from . import dedupe
    from .app import create_app

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(message)s"
    )
    path = os.environ.get("INCIDENT_WEBHOOK_PATH", "/webhooks")
    spec = os.environ.get("INCIDENT_WEBHOOK_HANDLERS")
    handlers = load_handlers(spec) if spec else LoggingHandlers()
    inbox = os.environ.get("INCIDENT_WEBHOOK_INBOX")
    if inbox:
        worker = os.environ.get("INCIDENT_WEBHOOK_WORKER", "1") == "1"
        return create_app(handlers, _secret(None), path, inbox=inbox, worker=worker)
    store = dedupe.from_url(os.environ.get("INCIDENT_WEBHOOK_DEDUPE", "memory"))
    return create_app(handlers, _secret(None), path, dedupe=store)


def serve(args: argparse.Namespace) -> int:
    _check_serve_arguments(args)
    if args.app:
        return _serve_app(args)
    if args.factory:
        _fail("--factory needs --app: it says what --app names")
    # Refused here, once, before any worker starts; the workers read it from the environment.
    os.environ["INCIDENT_WEBHOOK_SECRET"] = _secret(args.secret)
    if args.inbox:
        if args.dedupe:
            _fail(
                "give --inbox or --dedupe, not both: the inbox deduplicates by itself"
            )
        _open_inbox(args.inbox)
        os.environ["INCIDENT_WEBHOOK_INBOX"] = args.inbox
        os.environ["INCIDENT_WEBHOOK_WORKER"] = "0" if args.no_worker else "1"
        store = "memory"
    elif args.no_worker:
        _fail(
            "--no-worker needs --inbox: without an inbox the handlers run in the request"
        )
    else:
        store = args.dedupe or os.environ.get("INCIDENT_WEBHOOK_DEDUPE", "memory")
    if store == "memory" and args.workers > 1 and not args.inbox:
        _fail(
            "--workers above 1 needs a shared dedupe store (--dedupe sqlite:PATH or "
            "--dedupe redis://HOST:PORT/DB): each worker's memory would handle redeliveries again"
        )
    _check_store(store)
    if args.handlers:
        load_handlers(args.handlers)  # refused here, in one line, not in every worker
        os.environ["INCIDENT_WEBHOOK_HANDLERS"] = args.handlers
    os.environ["INCIDENT_WEBHOOK_DEDUPE"] = store
    os.environ["INCIDENT_WEBHOOK_PATH"] = args.path
    return _run_server(args, f"{__package__}.__main__:demo_app", factory=True)


def _serve_app(args: argparse.Namespace) -> int:
    """``serve --app module:attr``: an ASGI app of the user's (one that mounts
    ``create_app``, say) in the same processes, each with a listening socket of its own.
    """
    given = [
        "--" + option
        for option in ("secret", "dedupe", "inbox", "handlers")
        if getattr(args, option)
    ]
    given += ["--no-worker"] if args.no_worker else []
    given += ["--path"] if args.path != "/webhooks" else []
    if given:
        _fail(
            "--app runs your own app, which sets up its receiver: "
            f"{', '.join(given)} would be ignored"
        )
    module, _, attribute = args.app.partition(":")
    if not module or not attribute:
        _fail(f"--app {args.app!r} must be module:attribute, as in myapp.main:app")
    # Whatever the user's module raises is said in one line.
    try:
        found = getattr(importlib.import_module(module), attribute)
    except Exception as exc:  # noqa: BLE001
        _fail(f"--app {args.app}: {type(exc).__name__}: {exc}")
    if args.factory and not callable(found):
        _fail(f"--app {args.app} with --factory is not callable")
    return _run_server(args, args.app, factory=args.factory)


def _run_server(args: argparse.Namespace, app: str, *, factory: bool) -> int:
    import uvicorn

    from . import _processes

    # The receiver logs every delivery's outcome with its webhook-id; uvicorn's line per
    # request would say less, and cost a tenth of a busy server's time.
    options: dict[str, typing.Any] = {
        "factory": factory, "access_log": False, "http": _http_protocol()
    }  # fmt: skip
    if args.workers > 1 and _processes.available():
        return _processes.run(
            app, args.host, args.port, args.workers, args.startup_timeout, **options
        )
    uvicorn.run(app, host=args.host, port=args.port, workers=args.workers, **options)
    return 0


def _http_protocol() -> typing.Any:
    """uvicorn's httptools protocol sending each answer in one write (``_http``), or
    uvicorn's own choice where httptools is not installed."""
    try:
        from ._http import Protocol
    except ImportError:
        return "auto"
    return Protocol


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Svix counts a 3xx as a failed delivery, and following one would resend the body as
    a GET to another address: the 3xx is the answer."""

    def redirect_request(self, *args: typing.Any, **kwargs: typing.Any) -> None:
        return None


def _check_send_arguments(args: argparse.Namespace) -> None:
    what = f"{args.url!r} is not an http:// or https:// URL (with no spaces)"
    if any(c.isspace() or not c.isprintable() for c in args.url):
        _fail(what)
    # Everything urllib would trip on later, as one line now: a bracketed host that is not
    # an address, a port that is not one, a host name IDNA cannot encode (an empty or
    # over-long label).
    try:
        parts = urllib.parse.urlsplit(args.url)
        port = parts.port
        host = parts.hostname
        if host and not host.startswith(("[", ":")) and ":" not in host:
            host.encode("idna")
    except ValueError as exc:  # UnicodeError included
        _fail(f"{what}: {exc}")
    if parts.scheme not in ("http", "https") or not host:
        _fail(what)
    if port == 0:
        _fail(f"{what}: port 0 is not a port to send to")
    if not (math.isfinite(args.timeout) and 0 < args.timeout <= 3600):
        _fail(
            f"--timeout {args.timeout} must be a number of seconds above 0 and at most 3600"
        )


def send(args: argparse.Namespace) -> int:
    from . import testing

    _check_send_arguments(args)
    secret = _secret(args.secret)
    opener = urllib.request.build_opener(_NoRedirects)
    deliveries: list[tuple[str, bytes]]
    from .events import ENVELOPE

    if args.body is not None and ENVELOPE.type_header and not args.as_event:
        _fail(
            f"--body needs --as-event TYPE: this package's deliveries name their event in "
            f"the {ENVELOPE.type_header} header, which the file cannot say"
        )
    if args.body is not None:
        try:
            deliveries = [(str(args.body), args.body.read_bytes())]
        except OSError as exc:
            _fail(f"cannot read {args.body}: {exc.strerror}")
    elif args.all:
        deliveries = [(t, testing.example_body(t)) for t in testing.event_types()]
    else:
        try:
            deliveries = [(args.event, testing.example_body(args.event))]
        except KeyError as exc:
            _fail(str(exc.args[0]))
    failed = 0
    for label, body in deliveries:
        request = urllib.request.Request(
            args.url,
            data=body,
            headers=testing.sign(
                body, secret, event_type=args.event or args.as_event or label
            ),
            method="POST",
        )
        started = time.perf_counter()
        try:
            with opener.open(request, timeout=args.timeout) as answer:
                status = str(answer.status)
        except urllib.error.HTTPError as exc:
            status = str(exc.code)
        # ValueError: what urllib and http.client still refuse of a URL checked above.
        except (urllib.error.URLError, OSError, ValueError) as exc:
            status = f"failed ({getattr(exc, 'reason', exc)})"
        took = (time.perf_counter() - started) * 1000
        ok = status.isdigit() and 200 <= int(status) < 300
        failed += not ok
        print(f"{label}\t{status}\t{took:.0f} ms", flush=True)
    print(f"{len(deliveries) - failed} of {len(deliveries)} deliveries answered 2xx")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if (
        not arguments
        or arguments[0].startswith("-")
        and arguments[0] not in ("-h", "--help")
    ):
        arguments = ["serve", *arguments]  # the demo server, as before subcommands
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    server = commands.add_parser(
        "serve", help="run a receiver that logs every event (or runs --handlers)"
    )
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=8000)
    server.add_argument("--path", default="/webhooks")
    server.add_argument(
        "--workers", type=int, default=1, help="uvicorn worker processes"
    )
    server.add_argument(
        "--startup-timeout",
        type=float,
        default=60,
        metavar="SECONDS",
        help="with --workers: a process started on SIGHUP that does not serve within this "
        "is stopped and the one it replaces goes on (default: 60)",
    )
    server.add_argument("--secret", help="whsec_... (default: INCIDENT_WEBHOOK_SECRET)")
    server.add_argument(
        "--dedupe",
        help="memory (one process), sqlite:PATH (one host) or redis://HOST:PORT/DB (several "
        "hosts); default INCIDENT_WEBHOOK_DEDUPE, else memory",
    )
    server.add_argument(
        "--inbox",
        help="store every delivery first (sqlite:///PATH.db or postgresql://...), then "
        "process it in a worker",
    )
    server.add_argument(
        "--handlers",
        help="module:attribute of your handlers (as for `worker`) instead of the demo's, "
        "which log each event",
    )
    server.add_argument(
        "--no-worker",
        action="store_true",
        help="with --inbox: only store; dedicated `worker` processes handle the rows",
    )
    server.add_argument(
        "--app",
        help="module:attribute of an ASGI app of your own (one that mounts create_app) "
        "to run instead of the demo's, in the same processes",
    )
    server.add_argument(
        "--factory",
        action="store_true",
        help="with --app: the attribute is a function that returns the app",
    )
    server.set_defaults(run=serve)
    sender = commands.add_parser(
        "send",
        help="post signed example deliveries to an endpoint",
        description="Post signed deliveries to URL, one line per delivery (event, status, time).",
        epilog=SEND_EXAMPLE.format(prog=PROG, event_type=min(EVENT_MODELS)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sender.add_argument("url")
    sender.add_argument("--secret", help="whsec_... (default: INCIDENT_WEBHOOK_SECRET)")
    what = sender.add_mutually_exclusive_group(required=True)
    what.add_argument("--event", help="send the spec's example of this event type")
    what.add_argument(
        "--all", action="store_true", help="send the example of every webhook"
    )
    what.add_argument("--body", type=Path, help="send this file's bytes as the body")
    sender.add_argument(
        "--as-event",
        metavar="TYPE",
        help="with --body: the event type the file holds, where a header names it (GitHub)",
    )
    sender.add_argument(
        "--timeout", type=float, default=10.0, help="seconds per delivery"
    )
    sender.set_defaults(run=send)
    add_commands(commands)
    args = parser.parse_args(arguments)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
