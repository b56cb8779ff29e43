"""The SQLite file under the inbox and the dedupe store (runtime ``_sqlite.py``): a write
counts only when it is in the file at the configured path, whatever happens to that file
under a running process; a file with two names is refused."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from incident_webhooks import _sqlite
from incident_webhooks.dedupe import Lease, SQLiteDedupeStore, StoreUnavailable
from incident_webhooks.inbox import InboxUnavailable, SQLiteInbox
from servers import HTTP, AppServer
from test_inbox import GRANTED, SECRET, cli, signed


def remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def renamed_away(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{path}{suffix}").exists():
            os.replace(f"{path}{suffix}", f"{path}.moved{suffix}")


def replaced_by_a_copy(path: Path) -> None:
    """A restore: a copy of the file made now, moved over it (a new inode)."""
    backup = path.with_name("backup.db")
    with contextlib.closing(sqlite3.connect(path)) as source, contextlib.closing(sqlite3.connect(backup)) as target:
        source.backup(target)
    remove(path)
    os.replace(backup, path)


def replaced_by_another_inbox(path: Path) -> None:
    other = path.with_name("other.db")
    SQLiteInbox(other).store("/webhooks", "msg_other", GRANTED, b"{}", {})
    remove(path)
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{other}{suffix}").exists():
            os.replace(f"{other}{suffix}", f"{path}{suffix}")


def replaced_by_an_empty_file(path: Path) -> None:
    remove(path)
    path.write_bytes(b"")


def truncated(path: Path) -> None:
    """Cut to nothing in place (``> inbox.db``): the same file, no longer the database."""
    os.truncate(path, 0)


def checkpointed_then_truncated(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    os.truncate(path, 0)


CHANGES: dict[str, Callable[[Path], None]] = {
    "truncated": truncated,
    "checkpointed-then-truncated": checkpointed_then_truncated,
    "deleted": remove,
    "renamed-away": renamed_away,
    "replaced-by-a-copy": replaced_by_a_copy,
    "replaced-by-another-inbox": replaced_by_another_inbox,
    "replaced-by-an-empty-file": replaced_by_an_empty_file,
}


@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("caller", ["threads", "event-loop"])
def test_the_inbox_never_counts_a_write_into_a_file_no_longer_at_its_path(
    change: str, caller: str, tmp_path: Path
) -> None:
    """Threads store through connections of their own; an event loop's requests through
    its writer's (one connection, used from the loop and the writer's thread). Event loop,
    checkpointed then truncated: the constructing thread's idle connection held the file
    in place, and every write was refused until that thread used it again."""
    path = tmp_path / "inbox.db"
    inbox = SQLiteInbox(path)
    loop = asyncio.new_event_loop()

    def store(webhook_id: str) -> bool:
        if caller == "threads":
            return inbox.store("/webhooks", webhook_id, GRANTED, b"{}", {})
        return loop.run_until_complete(inbox.store_async("/webhooks", webhook_id, GRANTED, b"{}", {}))

    assert store("msg_0")
    CHANGES[change](path)
    for n in range(1, 4):
        try:
            stored = store(f"msg_{n}")
        except InboxUnavailable:
            continue  # a 503: Svix retries
        assert stored
        assert [r.webhook_id for r in SQLiteInbox(path).get(f"msg_{n}")] == [f"msg_{n}"], (
            "a write that counted is in the file at the path"
        )
    assert inbox.claim("w", 30, limit=10), "the worker's side sees the file at the path too"
    loop.close()


class IdleThread:
    """A thread that calls ``first`` and then waits, its connection idle, until told to
    call ``then`` (a thread pool's thread, the thread that opened the store)."""

    def __init__(self, first: Callable[[], object], then: Callable[[], object]) -> None:
        self.calls = [first, then]
        self.results: list[object] = []
        self.go = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        for n, call in enumerate(self.calls):
            if n and not self.go.wait(30):
                return
            try:
                self.results.append(call())
            except Exception as exc:  # noqa: BLE001 - the test asserts it
                self.results.append(exc)

    def wait_for(self, count: int) -> list[object]:
        deadline = time.monotonic() + 30
        while len(self.results) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.results

    def finish(self) -> list[object]:
        self.go.set()
        self.thread.join(30)
        return self.results


@pytest.mark.parametrize("store", ["inbox", "dedupe"])
def test_a_file_truncated_in_place_is_used_again_while_another_thread_s_connection_stays_idle(
    store: str, tmp_path: Path
) -> None:
    """In WAL mode an open connection holds a shared lock on its file. A file truncated in
    place is the same file, so another thread's idle connection kept the connection opened
    again at the path from making it a database: each write refused, for as long as that
    thread stayed idle. Now the idle connection is closed, and its thread opens the path
    again when it next writes."""
    path = tmp_path / "store.db"
    if store == "inbox":
        inbox = SQLiteInbox(path, timeout=1)

        def write(name: str) -> Callable[[], object]:
            return lambda: inbox.store("/webhooks", name, GRANTED, b"{}", {})

        def written(name: str) -> bool:
            return [r.webhook_id for r in SQLiteInbox(path).get(name)] == [name]
    else:
        dedupe = SQLiteDedupeStore(path, timeout=1)

        def write(name: str) -> Callable[[], object]:
            return lambda: isinstance(dedupe.claim(name), Lease)

        def written(name: str) -> bool:
            return SQLiteDedupeStore(path).claim(name) == "busy"

    idle = IdleThread(write("msg_idle_0"), write("msg_idle_1"))
    try:
        assert idle.wait_for(1) == [True]
        checkpointed_then_truncated(path)
        assert write("msg_1")() is True
        assert written("msg_1")
    finally:
        results = idle.finish()
    assert results == [True, True], "the idle thread opens the path again"
    assert written("msg_idle_1")


def test_a_connection_in_a_transaction_is_never_closed_under_it(tmp_path: Path) -> None:
    """Only idle connections are closed: one whose transaction is open keeps it, and its
    commit into the file no longer at the path is refused, as before."""
    path = tmp_path / "inbox.db"
    inbox = SQLiteInbox(path)
    inbox.store("/webhooks", "msg_0", GRANTED, b"{}", {})
    with pytest.raises(InboxUnavailable, match="removed, replaced, truncated or linked"), inbox.transaction() as db:
        remove(path)
        assert _sqlite.close_idle(str(path)) == 0
        db.execute("SELECT count(*) FROM webhook_inbox").fetchone()
    assert not db.gone
    assert inbox.store("/webhooks", "msg_1", GRANTED, b"{}", {}), "the next transaction opens the path again"


def test_a_fork_s_child_never_closes_its_parent_s_connections(tmp_path: Path) -> None:
    """A child starts with no connection of its own to close: closing one it inherited
    could delete the parent's write-ahead log."""
    path = tmp_path / "inbox.db"
    inbox = SQLiteInbox(path)
    inbox.store("/webhooks", "msg_0", GRANTED, b"{}", {})
    remove(path)
    child = os.fork()
    if child == 0:
        os._exit(_sqlite.close_idle(str(path)))
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _sqlite.close_idle(str(path)) == 1, "the parent's own idle connection is closed"


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_the_dedupe_store_follows_the_file_at_its_path(change: str, tmp_path: Path) -> None:
    path = tmp_path / "dedupe.db"
    store = SQLiteDedupeStore(path)
    lease = store.claim("/webhooks:msg_0")
    assert isinstance(lease, Lease)
    store.complete(lease)
    CHANGES[change](path)
    claimed = store.claim("/webhooks:msg_1")
    assert isinstance(claimed, Lease)
    store.complete(claimed)
    assert SQLiteDedupeStore(path).claim("/webhooks:msg_1") == "done", "recorded in the file at the path"


def test_a_commit_into_a_file_replaced_meanwhile_is_not_stored(tmp_path: Path) -> None:
    path = tmp_path / "inbox.db"
    inbox = SQLiteInbox(path)
    inbox.store("/webhooks", "msg_0", GRANTED, b"{}", {})
    with pytest.raises(InboxUnavailable, match="removed, replaced, truncated or linked"), inbox.transaction() as db:
        db.execute(
            "INSERT INTO webhook_inbox (endpoint, webhook_id, event_type, body_inline, headers,"
            " received_at, state, next_attempt_at, updated_at)"
            " VALUES ('/webhooks', 'msg_1', 't', x'7b7d', '{}', 0, 'pending', 0, 0)"
        )
        replaced_by_a_copy(path)  # after the check before BEGIN, before COMMIT
    assert SQLiteInbox(path).get("msg_1") == []
    assert inbox.store("/webhooks", "msg_1", GRANTED, b"{}", {}), "the retry is stored"
    assert [r.webhook_id for r in SQLiteInbox(path).get("msg_1")] == ["msg_1"]


@pytest.mark.parametrize("when", ["before-open", "after-open"])
@pytest.mark.parametrize("store", ["inbox", "dedupe"])
def test_a_file_with_a_second_name_is_refused(when: str, store: str, tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    opened: SQLiteInbox | SQLiteDedupeStore = SQLiteInbox(path) if store == "inbox" else SQLiteDedupeStore(path)
    if when == "before-open":
        del opened
        os.link(path, tmp_path / "alias.db")
        with pytest.raises((InboxUnavailable, StoreUnavailable), match="2 hard links"):
            SQLiteInbox(path) if store == "inbox" else SQLiteDedupeStore(path)
        return
    os.link(path, tmp_path / "alias.db")
    with pytest.raises((InboxUnavailable, StoreUnavailable), match="hard links"):
        if isinstance(opened, SQLiteInbox):
            opened.store("/webhooks", "msg_1", GRANTED, b"{}", {})
        else:
            opened.claim("/webhooks:msg_1")
    (tmp_path / "alias.db").unlink()
    if isinstance(opened, SQLiteInbox):
        assert opened.store("/webhooks", "msg_1", GRANTED, b"{}", {}), "one name again: writes go on"


def test_a_symbolic_link_is_one_file_and_fine(tmp_path: Path) -> None:
    path = tmp_path / "inbox.db"
    SQLiteInbox(path).store("/webhooks", "msg_0", GRANTED, b"{}", {})
    (tmp_path / "link.db").symlink_to(path)
    via_link = SQLiteInbox(tmp_path / "link.db")
    assert via_link.store("/webhooks", "msg_1", GRANTED, b"{}", {})
    assert [r.webhook_id for r in SQLiteInbox(path).rows()] == ["msg_1", "msg_0"]


def test_serve_refuses_an_inbox_with_a_second_name_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "inbox.db"
    SQLiteInbox(path)
    os.link(path, tmp_path / "alias.db")
    done = cli("serve", "--inbox", f"sqlite:///{path}", "--secret", SECRET)
    assert done.returncode == 2 and "hard links" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_running_server_never_answers_2xx_for_a_row_not_in_the_file_at_its_path(tmp_path: Path) -> None:
    path = tmp_path / "inbox.db"
    url = f"sqlite:///{path}"
    record = tmp_path / "record"
    with AppServer(record, "memory", secret=SECRET, INCIDENT_WEBHOOK_INBOX=url, INCIDENT_WEBHOOK_WORKER="0") as server:
        for round_, change in enumerate([remove, replaced_by_a_copy, renamed_away]):
            body, headers = signed(f"msg_{round_}_first")
            assert HTTP.post(server.url + "/webhooks", content=body, headers=headers).status_code == 200
            change(path)
            for n in range(5):
                webhook_id = f"msg_{round_}_{n}"
                body, headers = signed(webhook_id)
                answer = HTTP.post(server.url + "/webhooks", content=body, headers=headers)
                assert answer.status_code in (200, 503), answer.text
                if answer.status_code == 200:
                    assert [r.webhook_id for r in SQLiteInbox(path).get(webhook_id)] == [webhook_id]
            assert HTTP.get(server.url + "/readyz").status_code == 200
    shutil.rmtree(tmp_path, ignore_errors=True)
