"""Exactly-once effects (runtime ``worker.Delivery.transaction``, ``inbox.fenced``): a
handler's own writes on the inbox's database commit with its row's ``done`` and only while
its attempt's lease holds the row, so a holder that outlived its lease (a pause, a freeze, a
VM stopped longer than the lease) has its writes rolled back. The pause is real: two worker
processes, a real SIGSTOP, both databases."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from incident_webhooks.inbox import Inbox, LeaseLost, PostgresInbox, Ran, SQLiteInbox
from incident_webhooks.receiver import WebhookReceiver
from incident_webhooks.worker import current_delivery
from servers import wait_until
from test_inbox import SECRET, Recording, signed

HANDLERS = '''
import os, sqlite3, time
from incident_webhooks import WebhookHandlers
from incident_webhooks.worker import current_delivery


def _record(line):
    with open(os.environ["RECORD"], "a") as out:
        out.write(line + "\\n")


class Effects(WebhookHandlers):
    """Writes one effect row per run, in the delivery's own transaction. The first attempt
    says it started, then waits: the test stops the process there."""

    def dispatch(self, event):
        delivery = current_delivery()
        _record(f"start {os.getpid()} {delivery.webhook_id} {delivery.attempt}")
        if delivery.attempt == 1:
            time.sleep(1.5)
        try:
            with delivery.transaction() as db:
                mark = "?" if isinstance(db, sqlite3.Connection) else "%s"
                db.execute(
                    f"INSERT INTO effects (webhook_id, pid) VALUES ({mark}, {mark})",
                    (delivery.webhook_id, os.getpid()),
                )
        except Exception as exc:
            _record(f"rolled-back {os.getpid()} {delivery.webhook_id} {type(exc).__name__}")
            raise
        _record(f"committed {os.getpid()} {delivery.webhook_id} {delivery.attempt}")
'''


def opened(url: str) -> Inbox:
    return SQLiteInbox(url.removeprefix("sqlite://")) if url.startswith("sqlite") else PostgresInbox(url)


def effects(inbox: Inbox) -> list[tuple[str, int]]:
    with inbox.transaction() as db:
        return [(w, int(p)) for w, p in db.execute("SELECT webhook_id, pid FROM effects ORDER BY pid").fetchall()]


def with_effects_table(url: str) -> Inbox:
    inbox = opened(url)
    with inbox.transaction() as db:
        db.execute("CREATE TABLE effects (webhook_id TEXT NOT NULL, pid BIGINT NOT NULL)")
    assert WebhookReceiver(SECRET, Recording(), inbox=inbox).handle(*signed("msg_1")).status == 200
    return inbox


def test_a_fenced_transaction_commits_the_writes_with_the_row_done(inbox_url: str) -> None:
    inbox = with_effects_table(inbox_url)
    (row,) = inbox.claim("w", 30)
    assert row.lease_token
    with inbox.fenced(row.id, row.lease_token, ran=Ran(row.attempts, "m:H", "w")) as db:
        mark = "?" if inbox_url.startswith("sqlite") else "%s"
        db.execute(f"INSERT INTO effects VALUES ({mark}, 1)", ("msg_1",))
    assert effects(inbox) == [("msg_1", 1)]
    (done,) = inbox.get("msg_1")
    assert done.state == "done"
    assert [a["outcome"] for a in inbox.attempts_of(row.id)] == ["done"]


def test_a_lapsed_holder_whose_row_was_taken_commits_nothing(inbox_url: str) -> None:
    inbox = with_effects_table(inbox_url)
    (first,) = inbox.claim("a", 1)
    time.sleep(1.1)
    (second,) = inbox.claim("b", 30)  # the lease lapsed: another worker took the row
    assert second.lease_token != first.lease_token and first.lease_token
    mark = "?" if inbox_url.startswith("sqlite") else "%s"
    with pytest.raises(LeaseLost), inbox.fenced(first.id, first.lease_token) as db:
        db.execute(f"INSERT INTO effects VALUES ({mark}, 1)", ("msg_1",))
    assert effects(inbox) == [], "the lapsed holder's write rolled back"
    assert inbox.get("msg_1")[0].state == "processing"
    assert second.lease_token
    with inbox.fenced(second.id, second.lease_token) as db:
        db.execute(f"INSERT INTO effects VALUES ({mark}, 2)", ("msg_1",))
    assert effects(inbox) == [("msg_1", 2)]


def test_a_handlers_error_inside_the_transaction_rolls_its_writes_back(inbox_url: str) -> None:
    inbox = with_effects_table(inbox_url)
    (row,) = inbox.claim("a", 30)
    mark = "?" if inbox_url.startswith("sqlite") else "%s"
    assert row.lease_token
    with pytest.raises(ZeroDivisionError), inbox.fenced(row.id, row.lease_token) as db:
        db.execute(f"INSERT INTO effects VALUES ({mark}, 1)", ("msg_1",))
        raise ZeroDivisionError
    assert effects(inbox) == [] and inbox.get("msg_1")[0].state == "processing"


def test_current_delivery_is_only_for_handlers_a_worker_runs() -> None:
    with pytest.raises(LookupError, match="worker"):
        current_delivery()


def test_a_paused_worker_lets_another_run_the_row_and_the_effect_commits_once(inbox_url: str, tmp_path: Path) -> None:
    """A VM freeze, swap or CPU starvation: worker A stops mid-handler (SIGSTOP) for longer
    than its lease; worker B takes the row and commits; A resumes and its commit fails."""
    inbox = with_effects_table(inbox_url)
    (tmp_path / "effects_app.py").write_text(HANDLERS)
    record = tmp_path / "record"
    record.touch()
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "RECORD": str(record)}

    def worker(name: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "incident_webhooks", "worker", "--inbox", inbox_url,
             "--handlers", "effects_app:Effects", "--lease", "2", "--retry-base", "0.1"],
            env=env, stdout=subprocess.DEVNULL, stderr=(tmp_path / f"{name}.log").open("wb"),
        )  # fmt: skip

    def lines() -> list[list[str]]:
        return [line.split() for line in record.read_text().splitlines()]

    first = worker("a")
    second: subprocess.Popen[bytes] | None = None
    try:
        wait_until(lambda: any(w[0] == "start" for w in lines()), "worker A's handler")
        first.send_signal(signal.SIGSTOP)
        paused = time.monotonic()
        second = worker("b")
        wait_until(lambda: any(w[0] == "committed" for w in lines()), "worker B's commit", timeout=30)
        time.sleep(max(0.0, 4.5 - (time.monotonic() - paused)))  # a pause of 4.5 s at least
        first.send_signal(signal.SIGCONT)
        wait_until(lambda: any(w[0] == "rolled-back" for w in lines()), "worker A's rollback", timeout=30)
    finally:
        for process in (first, second):
            if process is not None:
                process.send_signal(signal.SIGCONT)
                process.send_signal(signal.SIGTERM)
                process.wait(30)
    seen = lines()
    starts = [w for w in seen if w[0] == "start"]
    assert [w[3] for w in starts] == ["1", "2"], "the handler ran twice: once per holder"
    (committed,) = [w for w in seen if w[0] == "committed"]
    assert committed[1] == str(second.pid) if second else False
    assert [w[3] for w in seen if w[0] == "rolled-back"] == ["LeaseLost"]
    assert effects(inbox) == [("msg_1", second.pid if second else 0)], "the effect committed exactly once"
    (row,) = inbox.get("msg_1")
    assert row.state == "done" and row.attempts == 2
    outcomes = [(a["attempt"], a["outcome"], a["handlers"]) for a in inbox.attempts_of(row.id)]
    assert (2, "done", "effects_app:Effects") in outcomes
    assert any(attempt == 1 and outcome.endswith("not_recorded") for attempt, outcome, _ in outcomes)

