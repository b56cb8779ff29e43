"""The inbox's worker (runtime ``worker.py``): whatever a handler does (raise any
BaseException, hang, leave threads behind), its row gets an outcome and the worker goes on,
or exits when told to."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from incident_webhooks import AsyncWebhookHandlers, WebhookHandlers
from incident_webhooks.inbox import Inbox, SQLiteInbox
from incident_webhooks.receiver import WebhookReceiver, current_webhook_id
from servers import AppServer, WorkerProcess, records, wait_until
from test_inbox import SECRET, Recording, signed, work

BASE_EXCEPTIONS: dict[str, Callable[[], BaseException]] = {
    "SystemExit": lambda: SystemExit(3),
    "KeyboardInterrupt": KeyboardInterrupt,
    "CancelledError": asyncio.CancelledError,
    "GeneratorExit": GeneratorExit,
    "BaseException": BaseException,
    "custom": type("Custom", (BaseException,), {}),
    "RuntimeError": lambda: RuntimeError("plain"),
}


class Raising(WebhookHandlers):
    """Raises ``error`` on each webhook-id's first ``times`` calls; records every call."""

    def __init__(self, error: Callable[[], BaseException], times: int = 1) -> None:
        self.error = error
        self.times = times
        self.calls: list[str] = []

    def dispatch(self, event: Any) -> None:
        webhook_id = current_webhook_id.get()
        self.calls.append(webhook_id)
        if self.calls.count(webhook_id) <= self.times:
            raise self.error()


class AsyncRaising(AsyncWebhookHandlers):
    def __init__(self, error: Callable[[], BaseException], times: int = 1) -> None:
        self.sync = Raising(error, times)
        self.calls = self.sync.calls

    async def dispatch(self, event: Any) -> None:
        await asyncio.sleep(0)
        self.sync.dispatch(event)


def run_until(tmp_path: Path, handlers: Any, state: str, **options: Any) -> SQLiteInbox:
    """One stored delivery, msg_1, run by a worker until its row is in ``state``."""
    inbox = SQLiteInbox(tmp_path / "inbox.db")
    stored(inbox, "msg_1")
    asyncio.run(work(inbox, handlers, lambda: inbox.get("msg_1")[0].state == state, **options))
    return inbox


def stored(inbox: Inbox, *ids: str) -> None:
    receiver = WebhookReceiver(SECRET, Recording(), inbox=inbox)
    for webhook_id in ids:
        assert receiver.handle(*signed(webhook_id)).status == 200


# -- row 5: any exception a handler raises fails that row; the worker goes on -----------------


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("error", sorted(BASE_EXCEPTIONS))
def test_whatever_a_handler_raises_fails_its_row_and_the_worker_goes_on(
    error: str, kind: str, tmp_path: Path
) -> None:
    inbox = SQLiteInbox(tmp_path / "inbox.db")
    stored(inbox, "msg_1", "msg_2")
    handlers = (Raising if kind == "sync" else AsyncRaising)(BASE_EXCEPTIONS[error])

    def both_done() -> bool:
        return all(inbox.get(i)[0].state == "done" for i in ("msg_1", "msg_2"))

    asyncio.run(work(inbox, handlers, both_done, retry_base=0.01))  # type: ignore[arg-type]
    time.sleep(0.2)  # a hot loop of re-runs, were there one, would show now
    assert sorted(handlers.calls) == [
        "msg_1",
        "msg_1",
        "msg_2",
        "msg_2",
    ], "each failed once, then ran once"
    name = type(BASE_EXCEPTIONS[error]()).__qualname__
    for webhook_id in ("msg_1", "msg_2"):
        (row,) = inbox.get(webhook_id)
        assert (row.state, row.attempts, row.last_error_type) == ("done", 2, name)


@pytest.mark.parametrize("error", ["SystemExit", "KeyboardInterrupt", "CancelledError"])
def test_a_handler_that_always_raises_a_base_exception_ends_dead_not_in_a_loop(
    error: str, tmp_path: Path
) -> None:
    handlers = Raising(BASE_EXCEPTIONS[error], times=10**6)
    inbox = run_until(tmp_path, handlers, "dead", retry_base=0.01, max_attempts=3)
    assert handlers.calls == ["msg_1"] * 3
    assert (
        inbox.get("msg_1")[0].last_error_type
        == type(BASE_EXCEPTIONS[error]()).__qualname__
    )


def test_the_workers_own_shutdown_still_releases_what_runs(tmp_path: Path) -> None:
    inbox = SQLiteInbox(tmp_path / "inbox.db")
    stored(inbox, "msg_1")
    started = threading.Event()

    class Slow(AsyncWebhookHandlers):
        async def dispatch(self, event: Any) -> None:
            started.set()
            await asyncio.sleep(60)

    asyncio.run(work(inbox, Slow(), started.is_set, shutdown_seconds=0))
    (row,) = inbox.get("msg_1")
    assert (row.state, row.attempts, row.last_error_type) == ("pending", 0, None)


@pytest.mark.parametrize(
    "error", ["SystemExit", "KeyboardInterrupt", "CancelledError", "GeneratorExit"]
)
def test_the_worker_command_survives_a_handler_that_raises_a_base_exception(
    error: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/inbox.db"
    inbox = SQLiteInbox(tmp_path / "inbox.db")
    stored(inbox, "msg_1", "msg_2", "msg_3")
    record = tmp_path / "record"
    with WorkerProcess(
        record, url, "--retry-base", "0.05", RAISE_FIRST=error
    ) as worker:
        wait_until(
            lambda: all(
                r.state == "done"
                for i in ("msg_1", "msg_2", "msg_3")
                for r in inbox.get(i)
            ),
            "done",
        )
        assert (
            worker.process is not None and worker.process.poll() is None
        ), "the worker is still running"
        assert worker.stop() == 0
    lines = records(record)
    assert sorted(what for what, _, _ in lines) == ["handled"] * 3 + ["raised"] * 3


def test_a_server_running_the_worker_survives_a_handler_that_raises_keyboard_interrupt(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/inbox.db"
    record = tmp_path / "record"
    with AppServer(record, "memory", secret=SECRET, INCIDENT_WEBHOOK_INBOX=url, RETRY_BASE="0.05",
                   RAISE_FIRST="KeyboardInterrupt") as server:  # fmt: skip
        from servers import HTTP

        for n in range(3):
            body, headers = signed(f"msg_{n}")
            assert (
                HTTP.post(
                    server.url + "/webhooks", content=body, headers=headers
                ).status_code
                == 200
            )
        inbox = SQLiteInbox(tmp_path / "inbox.db")
        wait_until(lambda: inbox.status().counts["done"] == 3, "all three handled")
        assert server.healthy(), "the server still answers"
    assert (
        sorted(what for what, _, _ in records(record))
        == ["handled"] * 3 + ["raised"] * 3
    )


# -- row 6: a hung handler fails its row at the timeout and frees its slot -------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_handler_past_its_timeout_fails_its_row_and_frees_its_slot(
    kind: str, tmp_path: Path
) -> None:
    inbox = SQLiteInbox(tmp_path / "inbox.db")
    stored(inbox, "msg_hang", "msg_next")
    calls: list[str] = []
    release = threading.Event()

    def run(webhook_id: str) -> None:
        calls.append(webhook_id)

    class SyncHang(WebhookHandlers):
        def dispatch(self, event: Any) -> None:
            webhook_id = current_webhook_id.get()
            run(webhook_id)
            if webhook_id == "msg_hang" and calls.count(webhook_id) == 1:
                release.wait(30)

    class AsyncHang(AsyncWebhookHandlers):
        async def dispatch(self, event: Any) -> None:
            webhook_id = current_webhook_id.get()
            run(webhook_id)
            if webhook_id == "msg_hang" and calls.count(webhook_id) == 1:
                await asyncio.sleep(30)

    handlers = SyncHang() if kind == "sync" else AsyncHang()

    def settled() -> bool:
        return (
            inbox.get("msg_hang")[0].state == "failed"
            and inbox.get("msg_next")[0].state == "done"
        )

    # One slot: msg_next runs only once the hung handler's slot is freed.
    asyncio.run(work(inbox, handlers, settled, concurrency=1, handler_timeout=0.5, retry_base=3600))  # type: ignore[arg-type]
    release.set()
    (row,) = inbox.get("msg_hang")
    assert row.state == "failed" and row.last_error_type == "HandlerTimeout"
    assert "0.5s" in (row.last_error_message or "")
    assert row.lease_owner is None, "its lease is no longer held, nor renewed"
    assert inbox.get("msg_next")[0].state == "done"


def test_a_handlers_own_timeout_error_is_its_own_failure(tmp_path: Path) -> None:
    handlers = Raising(lambda: TimeoutError("the downstream timed out"), times=10**6)
    inbox = run_until(tmp_path, handlers, "failed", retry_base=3600)
    assert inbox.get("msg_1")[0].last_error_type == "TimeoutError"


@pytest.mark.parametrize("value", ["0", "-1", "nan", "soon"])
def test_the_handler_timeout_must_be_a_positive_number(
    value: str, tmp_path: Path
) -> None:
    from incident_webhooks.__main__ import main
    from packages import run_main

    done = run_main(main, ["worker", "--inbox", f"sqlite:///{tmp_path}/i.db", "--handlers",
                           "incident_webhooks.handlers:WebhookHandlers", "--handler-timeout", value])  # fmt: skip
    assert done.returncode == 2 and "--handler-timeout" in done.stderr


# -- row 7: the shutdown deadline ends the worker whatever threads a handler left -------------


def test_the_worker_exits_at_its_deadline_though_a_handler_left_a_thread(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/inbox.db"
    inbox = SQLiteInbox(tmp_path / "inbox.db")
    stored(inbox, "msg_1")
    record = tmp_path / "record"
    with WorkerProcess(record, url, "--shutdown", "1", LEAVE_THREAD="1") as worker:
        wait_until(lambda: inbox.get("msg_1")[0].state == "done", "handled")
        assert worker.process is not None
        worker.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = worker.process.wait(20)
        worker.process = None
    assert code == 0
    assert time.monotonic() - started < 15, "it ended at its deadline, not never"
    assert "threads still running: left-by-a-handler" in worker.log.read_text()
    assert inbox.get("msg_1")[0].state == "done"



# -- found by the suite: a row due again while its last attempt's task is still finishing ------


def test_a_row_due_again_before_its_failed_attempt_has_finished_is_run_not_orphaned(tmp_path: Path) -> None:
    """The failure is committed, the retry is due at once, and the worker's next claim comes
    while the failed attempt's task is still on its way out: the row was claimed and then
    left 'processing' for a whole lease, run by nobody."""

    class SlowToReturn(SQLiteInbox):
        def fail(self, *args: Any, **kwargs: Any) -> bool:
            recorded = super().fail(*args, **kwargs)
            time.sleep(0.4)  # committed; the task hears of it a moment later
            return recorded

    class Handlers(WebhookHandlers):
        def __init__(self) -> None:
            self.calls: list[str] = []

        def dispatch(self, event: Any) -> None:
            webhook_id = current_webhook_id.get()
            self.calls.append(webhook_id)
            if webhook_id == "msg_2" and self.calls.count("msg_2") == 1:
                raise RuntimeError("first attempt fails")
            if webhook_id == "msg_1":
                time.sleep(0.15)  # ends after msg_2's failure is committed: the next claim

    inbox = SlowToReturn(tmp_path / "inbox.db")
    stored(inbox, "msg_1", "msg_2")
    handlers = Handlers()
    started = time.monotonic()
    asyncio.run(work(inbox, handlers, lambda: inbox.get("msg_2")[0].state == "done", retry_base=0.001,
                     lease_seconds=30))  # fmt: skip
    assert inbox.get("msg_2")[0].state == "done", "msg_2 was left processing, run by nobody"
    assert time.monotonic() - started < 8
    assert sorted(handlers.calls) == ["msg_1", "msg_2", "msg_2"]


# -- the worker's side tasks are supervised ---------------------------------------------------


@pytest.mark.parametrize("side", ["lease renewal", "retention", "wake-up"])
def test_a_side_task_that_fails_stops_the_worker_loudly_and_releases_its_rows(
    side: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import logging

    from incident_webhooks import worker as worker_module
    from incident_webhooks.worker import SideTaskFailed, Worker

    class Broken(SQLiteInbox):
        def renew(self, *args: Any, **kwargs: Any) -> set[int]:
            if side == "lease renewal":
                raise RuntimeError("a bug in renewal")
            return super().renew(*args, **kwargs)

        def prune(self, *args: Any, **kwargs: Any) -> int:
            if side == "retention":
                raise RuntimeError("a bug in retention")
            return super().prune(*args, **kwargs)

        def wait_for_work(self, timeout: float) -> None:
            if side == "wake-up" and started.is_set():
                raise RuntimeError("a bug in the wake-up")
            super().wait_for_work(min(timeout, 0.05))

    started = threading.Event()

    class Slow(AsyncWebhookHandlers):
        async def dispatch(self, event: Any) -> None:
            started.set()
            await asyncio.sleep(60)

    monkeypatch.setattr(worker_module, "FIRST_PRUNE_SECONDS", 0.2)
    inbox = Broken(tmp_path / "inbox.db")
    stored(inbox, "msg_1")
    worker = Worker(inbox, Slow(), lease_seconds=1, shutdown_seconds=0)
    with caplog.at_level(logging.ERROR), pytest.raises(SideTaskFailed, match=side):
        asyncio.run(asyncio.wait_for(worker.run(), 30))
    assert f"its {side} task failed; stopping the worker" in caplog.text
    assert started.is_set()
    (row,) = inbox.get("msg_1")
    assert (row.state, row.attempts) == ("pending", 0), "the row in flight was released"
