"""An application as a team would write it, for the multi-process tests: its handler appends
one line per call to a shared file (``O_APPEND`` writes of one short line are atomic), so the
test can see every call made by every worker process.

Configured from the environment, as every uvicorn worker builds its own copy:
RECORD (the file), INCIDENT_WEBHOOK_SECRET, INCIDENT_WEBHOOK_DEDUPE (memory, sqlite:PATH,
redis://...), LEASE_SECONDS, and BLOCK_ID: a webhook-id whose first call blocks for a minute
(the crash test kills the worker holding it).

With INCIDENT_WEBHOOK_INBOX the app stores deliveries in that inbox and, unless
INCIDENT_WEBHOOK_WORKER=0, runs a worker (RETRY_BASE seconds between attempts). The same
handlers serve ``python -m incident_webhooks worker --handlers recording_app:RecordingHandlers``.
FAIL_FIRST_PERCENT makes that share of webhook-ids (chosen by their hash) fail their first
call, SLEEP_SECONDS makes every call that long. RAISE_FIRST names a BaseException
(SystemExit, KeyboardInterrupt, CancelledError, GeneratorExit) that every webhook-id's first
call raises; LEAVE_THREAD=1 makes every call start a thread that is not a daemon and never
ends, as a careless handler does.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from typing import Any

from incident_webhooks import WebhookHandlers, dedupe
from incident_webhooks.app import create_app
from incident_webhooks.events import WebhookEvent
from incident_webhooks.receiver import current_webhook_id


def _record(line: str) -> None:
    fd = os.open(os.environ["RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


RAISES: dict[str, type[BaseException]] = {
    "SystemExit": SystemExit, "KeyboardInterrupt": KeyboardInterrupt,
    "CancelledError": asyncio.CancelledError, "GeneratorExit": GeneratorExit,
}  # fmt: skip


def _first_call(webhook_id: str, what: str) -> bool:
    try:
        os.close(os.open(os.environ["RECORD"] + f".{what}-{webhook_id}", os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return False
    return True


class RecordingHandlers(WebhookHandlers):
    def dispatch(self, event: WebhookEvent) -> None:
        webhook_id = current_webhook_id.get()
        if os.environ.get("LEAVE_THREAD") == "1":
            threading.Thread(target=time.sleep, args=(3600,), name="left-by-a-handler", daemon=False).start()
        raising = os.environ.get("RAISE_FIRST")
        if raising and _first_call(webhook_id, "raised"):
            _record(f"raised {os.getpid()} {webhook_id}")
            raise RAISES[raising]()
        blocked = os.environ.get("BLOCK_ID")
        if webhook_id == blocked:
            flag = os.environ["RECORD"] + ".blocked"
            try:
                os.close(os.open(flag, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass  # the redelivery after the crash: handled normally
            else:
                _record(f"start {os.getpid()} {webhook_id}")
                time.sleep(60)
        if float(os.environ.get("SLEEP_SECONDS", "0")):
            _record(f"start {os.getpid()} {webhook_id}")
            time.sleep(float(os.environ["SLEEP_SECONDS"]))
        percent = int(os.environ.get("FAIL_FIRST_PERCENT", "0"))
        if int(hashlib.sha256(webhook_id.encode()).hexdigest(), 16) % 100 < percent:
            try:
                os.close(os.open(os.environ["RECORD"] + f".failed-{webhook_id}", os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass  # failed once already: succeed now
            else:
                _record(f"failed {os.getpid()} {webhook_id}")
                raise RuntimeError(f"the first call of {webhook_id} fails")
        _record(f"handled {os.getpid()} {webhook_id}")


def app() -> Any:
    lease = float(os.environ.get("LEASE_SECONDS", "60"))
    inbox = os.environ.get("INCIDENT_WEBHOOK_INBOX")
    if inbox:
        options = {"lease_seconds": lease, "retry_base": float(os.environ.get("RETRY_BASE", "30"))}
        return create_app(
            RecordingHandlers(), os.environ["INCIDENT_WEBHOOK_SECRET"], inbox=inbox,
            worker=os.environ.get("INCIDENT_WEBHOOK_WORKER", "1") == "1", worker_options=options,
        )  # fmt: skip
    url = os.environ.get("INCIDENT_WEBHOOK_DEDUPE", "memory")
    store = dedupe.from_url(url, lease_seconds=lease)
    metrics = os.environ.get("METRICS") == "1"
    return create_app(RecordingHandlers(), os.environ["INCIDENT_WEBHOOK_SECRET"], dedupe=store, metrics=metrics)
