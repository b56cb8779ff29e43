"""The ``worker`` and ``inbox`` commands of ``python -m`` this package, and what every
command shares.

Every mistake in the arguments, and an inbox that cannot be opened, is one line on stderr
and exit 2; ``status``, ``list`` and ``show`` print JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import importlib
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import typing

from . import redact
from .handlers import AsyncWebhookHandlers, WebhookHandlers
from .inbox import REPLAYABLE, STATES, UNHANDLED, Inbox, InboxUnavailable, Row, State

INBOX_HELP = "sqlite:///PATH.db, sqlite:RELATIVE.db or postgresql://... (default: INCIDENT_WEBHOOK_INBOX)"
WORKER_EXAMPLE = """example:
  {prog} worker --inbox sqlite:///var/lib/app/inbox.db --handlers myapp.webhooks:handlers
The handlers are a WebhookHandlers (or AsyncWebhookHandlers) instance, a subclass of one,
or a function of no arguments that returns one. SIGTERM or SIGINT: stop claiming, give
in-flight handlers --shutdown seconds, release what is still running, exit."""
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
PROG = f"python -m {__package__}"


def _fail(message: str) -> typing.NoReturn:
    print(f"error: {shown(message)}", file=sys.stderr)
    raise SystemExit(2)


def shown(text: object) -> str:
    """``text`` safe to print on a terminal: every character that is not printable (ESC and
    the other C0 controls, DEL, C1 controls such as U+009B, bidirectional overrides, line
    separators) escaped as Python would write it. Error messages, tracebacks, event types
    and bodies come from handlers and senders, and a raw ESC rewrites an operator's screen.
    ``--json`` output is left exact (JSON escapes controls itself)."""
    value = str(text)
    if value.isprintable():
        return value
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
        for c in value
    )


def _open_inbox(url: str, *, create: bool = True) -> typing.Any:
    """The inbox at ``url``, reached once; a bad URL, an inbox that is not there (with
    ``create=False``) or a database that is down is one line and exit 2."""
    from . import inbox

    try:
        opened = inbox.from_url(url, create=create)
        opened.ping()
    except (ValueError, inbox.InboxUnavailable, ImportError) as exc:
        _fail(f"--inbox {redact.dsn(url)}: {redact.scrub(exc, url)}")
    return opened


def add_commands(commands: typing.Any) -> None:
    worker = commands.add_parser(
        "worker",
        help="process an inbox's deliveries with your handlers",
        epilog=WORKER_EXAMPLE.format(prog=PROG),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    worker.add_argument("--inbox", help=INBOX_HELP)
    worker.add_argument(
        "--handlers", required=True, help="module:attribute of your handlers"
    )
    worker.add_argument(
        "--concurrency", type=int, help="handlers at once (default: the Worker's, 16)"
    )
    worker.add_argument("--lease", type=float, default=60.0, help="lease seconds")
    worker.add_argument("--max-attempts", type=int, default=16)
    worker.add_argument(
        "--retry-base", type=float, default=30.0, help="first retry delay, seconds"
    )
    worker.add_argument(
        "--shutdown", type=float, default=30.0, help="seconds to finish at SIGTERM"
    )
    worker.add_argument(
        "--handler-timeout",
        type=float,
        default=600.0,
        help="seconds a handler may run before its row fails, to be retried (default 600)",
    )
    worker.add_argument(
        "--retention",
        default="30d",
        help="delete done rows older than this (30d, 12h; 0 keeps them)",
    )
    worker.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus metrics (the metrics extra) on this port",
    )
    worker.add_argument(
        "--metrics-host", default="127.0.0.1", help="address for --metrics-port"
    )
    worker.set_defaults(run=run_worker)

    inbox = commands.add_parser("inbox", help="what an inbox holds; replay; retention")
    actions = inbox.add_subparsers(dest="action", required=True, metavar="ACTION")
    status = actions.add_parser(
        "status", help="rows per state, oldest pending, last errors"
    )
    listing = actions.add_parser("list", help="rows, newest first")
    listing.add_argument("--state", choices=STATES)
    listing.add_argument("--event-type")
    listing.add_argument("--since", help="received at or after (ISO 8601; UTC if bare)")
    listing.add_argument("--limit", type=int, default=50)
    show = actions.add_parser(
        "show", help="one delivery: every endpoint's row, its error and body"
    )
    show.add_argument("webhook_id")
    replay = actions.add_parser(
        "replay", help="move rows back to pending, attempts reset"
    )
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", dest="ids", action="append", metavar="WEBHOOK_ID")
    which.add_argument("--state", choices=REPLAYABLE)
    which.add_argument("--event-type")
    replay.add_argument("--since", help="received at or after (ISO 8601; UTC if bare)")
    prune = actions.add_parser("prune", help="delete old rows (retention)")
    prune.add_argument("--older-than", required=True, help="30d, 12h, 90m or seconds")
    prune.add_argument(
        "--state",
        choices=[s for s in STATES if s != "processing"],
        help="done (the default); any other state holds events never handled: --force",
    )
    prune.add_argument(
        "--force",
        action="store_true",
        help="delete rows whose events were never handled (pending, failed, invalid, dead)",
    )
    for action in (status, listing, show, replay, prune):
        action.add_argument("--inbox", help=INBOX_HELP)
        action.add_argument("--json", action="store_true", help="print JSON")
    prune.set_defaults(state="done")
    inbox.set_defaults(run=run_inbox)


def duration(text: str, option: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if match is None:
        _fail(f"{option} {text!r} is not a duration such as 30d, 12h, 90m or 45s")
    return float(match[1]) * UNITS[match[2] or "s"]


def instant(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        _fail(f"--since {text!r} is not an ISO 8601 time such as YYYY-MM-DDTHH:MM")
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


def iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat(
        timespec="seconds"
    )


def _inbox(args: argparse.Namespace, *, create: bool = True) -> Inbox:
    url = args.inbox or os.environ.get("INCIDENT_WEBHOOK_INBOX", "")
    if not url:
        _fail(
            "--inbox is needed (or INCIDENT_WEBHOOK_INBOX): sqlite:///PATH.db or postgresql://..."
        )
    inbox: Inbox = _open_inbox(url, create=create)
    return inbox


def load_handlers(spec: str) -> WebhookHandlers | AsyncWebhookHandlers:
    """``module:attr`` as a handlers instance: the instance itself, a class to instantiate,
    or a factory of no arguments."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        _fail(
            f"--handlers {spec!r} must be module:attribute, as in myapp.webhooks:handlers"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        _fail(f"--handlers {spec}: cannot import {module_name}: {exc}")
    found: typing.Any = module
    for part in attr.split("."):
        if not hasattr(found, part):
            _fail(f"--handlers {spec}: {module_name} has no attribute {attr}")
        found = getattr(found, part)
    handler_types = (WebhookHandlers, AsyncWebhookHandlers)
    if not isinstance(found, handler_types) and callable(found):
        try:
            found = found()
        # The application's own code: whatever it raises is reported in one line.
        except Exception as exc:  # noqa: BLE001
            _fail(f"--handlers {spec}: calling it raised {type(exc).__name__}: {exc}")
    if not isinstance(found, handler_types):
        _fail(
            f"--handlers {spec} is {type(found).__name__}, not a WebhookHandlers or "
            "AsyncWebhookHandlers instance (or a class or factory of one)"
        )
    return found


def run_worker(args: argparse.Namespace) -> int:
    from .worker import DEFAULT_CONCURRENCY, Worker

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(message)s"
    )
    if args.concurrency is None:
        args.concurrency = DEFAULT_CONCURRENCY
    if args.concurrency < 1 or args.max_attempts < 1:
        _fail("--concurrency and --max-attempts must be 1 or more")
    if not (args.lease >= 1 and args.retry_base > 0 and args.shutdown >= 0):
        _fail("--lease must be 1 or more, --retry-base above 0, --shutdown 0 or more")
    if not args.handler_timeout > 0:
        _fail("--handler-timeout must be above 0 seconds")
    retention = duration(args.retention, "--retention")
    handlers = load_handlers(args.handlers)
    inbox = _inbox(args)
    if args.metrics_port is not None:
        if not 1 <= args.metrics_port <= 65535:
            _fail(f"--metrics-port {args.metrics_port} is not a TCP port (1 to 65535)")
        try:
            from . import metrics

            metrics.serve(args.metrics_port, args.metrics_host, inbox)
        except ImportError:
            _fail("--metrics-port needs prometheus-client: install the metrics extra")
        except OSError as exc:
            _fail(f"--metrics-port {args.metrics_port}: {exc.strerror}")
    _collect_less_often()
    worker = Worker(
        inbox,
        handlers,
        concurrency=args.concurrency,
        lease_seconds=args.lease,
        max_attempts=args.max_attempts,
        retry_base=args.retry_base,
        shutdown_seconds=args.shutdown,
        retention_seconds=retention or None,
        handler_timeout=args.handler_timeout,
        handlers_name=args.handlers,
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.stop)
        await worker.run()

    from .worker import SideTaskFailed

    code = 0
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(main())
    except SideTaskFailed as exc:
        # Logged with its traceback already; a supervisor restarts the process.
        print(f"error: {exc}: {exc.__cause__!r}", file=sys.stderr)
        code = 1
    _end_past_the_deadline(worker)
    return code


# The first generation's threshold in a worker process: allocations (less deallocations)
# between two collections of the youngest objects.
COLLECT_AFTER = 10_000


def _collect_less_often() -> None:
    """The worker command owns its process, so it sets the collector's first threshold
    (a library's Worker leaves its host's alone). A row allocates a few hundred container
    objects (its event's models, its task and futures) that reference counting frees; at
    the default 700 the collector ran every few rows, scanning the rows in flight each time,
    and its older generations the whole heap in turn: 14 % of a worker's time in a drain
    (gc.callbacks). At 10,000, two workers drained the same rows with 12-15 % less CPU,
    5-26 % faster (medians of two runs of 3 and 4 interleaved pairs, SQLite in RAM)."""
    gc.set_threshold(COLLECT_AFTER, *gc.get_threshold()[1:])


def _loop_factory() -> typing.Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (the ``server`` extra), as uvicorn picks
    it: a worker's rows are so many hand-offs between its loop and the handlers' and the
    database's threads that two workers drained 20,000 rows 35-40 % faster on it."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _end_past_the_deadline(worker: typing.Any) -> None:
    """Every outcome is recorded by now. A thread a handler started and left running (not
    a daemon) would keep the process alive after "stopped", for ever: it gets what is left
    of the shutdown deadline, then the process ends without it."""
    deadline = (worker.stopped_at or time.monotonic()) + worker.shutdown_seconds

    def leftovers() -> list[threading.Thread]:
        return [
            t
            for t in threading.enumerate()
            if t is not threading.main_thread() and not t.daemon and t.is_alive()
        ]

    for thread in leftovers():
        thread.join(max(0.0, deadline - time.monotonic()))
    left = leftovers()
    if left:
        logging.getLogger(__name__).warning(
            "worker: exiting past the shutdown deadline with %d threads still running: %s",
            len(left), ", ".join(sorted(t.name for t in left)),
        )  # fmt: skip
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def run_inbox(args: argparse.Namespace) -> int:
    # Inspecting never creates: a mistyped path is an error, not a new empty inbox.
    inbox = _inbox(args, create=False)
    try:
        return ACTIONS[args.action](inbox, args)
    except InboxUnavailable as exc:
        url = args.inbox or os.environ.get("INCIDENT_WEBHOOK_INBOX", "")
        _fail(f"{redact.dsn(url)}: {redact.scrub(exc, url)}")
    except ValueError as exc:
        _fail(str(exc))


def _status(inbox: Inbox, args: argparse.Namespace) -> int:
    status = inbox.status()
    if args.json:
        print(json.dumps(
            {"counts": status.counts, "oldest_pending_seconds": status.oldest_pending_seconds,
             "last_errors": status.last_errors}, indent=2, sort_keys=True,
        ))  # fmt: skip
        return 0
    for state, count in status.counts.items():
        print(f"{state:<11} {count}")
    oldest = status.oldest_pending_seconds
    print("oldest pending: " + ("none" if oldest is None else f"{oldest:.0f}s ago"))
    for event_type, error in sorted(status.last_errors.items()):
        print(
            shown(
                f"last error of {event_type or '(no event type)'}: {error['state']} "
                f"{error['webhook_id']} at {iso(error['at'])}: {error['type']}: {error['message']}"
            )
        )
    return 0


def _line(row: Row) -> str:
    error = (
        f"  {row.last_error_type}: {row.last_error_message}"
        if row.last_error_type
        else ""
    )
    return shown(
        f"{row.webhook_id}  {row.state:<10} {row.event_type or '-'}  endpoint={row.endpoint}"
        f"  attempts={row.attempts}  received={iso(row.received_at)}{error}"
    )


def _summary(row: Row) -> dict[str, typing.Any]:
    fields = row.summary()
    for name in (
        "received_at",
        "next_attempt_at",
        "lease_expires_at",
        "completed_at",
        "updated_at",
    ):
        fields[name] = iso(fields[name])
    return fields


def _list(inbox: Inbox, args: argparse.Namespace) -> int:
    if args.limit < 1:
        _fail("--limit must be 1 or more")
    rows = inbox.rows(
        state=args.state,
        event_type=args.event_type,
        since=instant(args.since),
        limit=args.limit,
    )
    if args.json:
        print(json.dumps([_summary(r) for r in rows], indent=2))
    else:
        for row in rows:
            print(_line(row))
    return 0


def _show(inbox: Inbox, args: argparse.Namespace) -> int:
    rows = inbox.get(args.webhook_id)
    if not rows:
        print(f"no delivery with webhook-id {args.webhook_id!r}", file=sys.stderr)
        return 1
    if args.json:
        listed = []
        for row in rows:
            fields = _summary(row)
            fields["last_error_traceback"] = row.last_error_traceback
            fields["body"] = row.body.decode("utf-8", "replace")
            fields["attempts_log"] = [
                {**attempt, "finished_at": iso(attempt["finished_at"])}
                for attempt in inbox.attempts_of(row.id)
            ]
            listed.append(fields)
        print(json.dumps(listed, indent=2))
        return 0
    for row in rows:
        print(_line(row))
        print(f"  headers: {json.dumps(row.headers)}")
        for attempt in inbox.attempts_of(row.id):
            error = f" ({attempt['error_type']})" if attempt["error_type"] else ""
            print(
                shown(
                    f"  attempt {attempt['attempt']}: {attempt['outcome']}{error}, run by "
                    f"{attempt['handlers']} in {attempt['owner']} at {iso(attempt['finished_at'])}"
                )
            )
        if row.last_error_traceback:
            for line in row.last_error_traceback.rstrip().split("\n"):
                print("  " + shown(line))
        print("  body: " + shown(row.body.decode("utf-8", "replace")))
    return 0


def _replay(inbox: Inbox, args: argparse.Namespace) -> int:
    state = typing.cast(State | None, args.state)
    moved = inbox.replay(
        webhook_ids=args.ids or (), state=state, event_type=args.event_type,
        since=instant(args.since),
    )  # fmt: skip
    if args.json:
        print(json.dumps([_summary(r) for r in moved], indent=2))
        return 0
    for row in moved:
        print(
            shown(
                f"replayed {row.webhook_id} ({row.event_type or '-'}, was {row.state}, "
                f"endpoint={row.endpoint})"
            )
        )
    print(f"{len(moved)} rows back to pending")
    return 0


def _prune(inbox: Inbox, args: argparse.Namespace) -> int:
    older = duration(args.older_than, "--older-than")
    if args.state in UNHANDLED and not args.force:
        count = inbox.prunable(older, args.state)
        _fail(
            f"{count} {args.state} rows older than {args.older_than} hold events no handler "
            "has finished; deleting them loses them. Let a worker handle them (inbox replay "
            f"moves failed, dead and invalid rows back), or add --force to delete these {count} rows"
        )
    removed = inbox.prune(older, args.state, force=args.force)
    print(
        json.dumps({"removed": removed})
        if args.json
        else f"removed {removed} {args.state} rows"
    )
    return 0


ACTIONS: dict[str, typing.Callable[[Inbox, argparse.Namespace], int]] = {
    "status": _status, "list": _list, "show": _show, "replay": _replay, "prune": _prune,
}  # fmt: skip
