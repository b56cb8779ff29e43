"""The inbox's schema across releases (runtime ``inbox.py``, ``MIGRATIONS``): a database
written by an earlier release is brought to this one's schema in place, under the schema
lock, with every row kept; never a manual step, never a refusal for an older schema."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from incident_webhooks.inbox import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Inbox,
    InboxUnavailable,
    Outcome,
    PostgresInbox,
    SQLiteInbox,
)
from servers import PostgresServer
from test_inbox import Recording, inbox_cli, work

FIXTURES = Path(__file__).parent / "fixtures"
V1_STATES = Counter({"pending": 2, "processing": 1, "done": 1, "failed": 1, "dead": 1, "invalid": 1})


_names = iter(range(10**6))


def version_1(kind: str, tmp_path: Path, postgres: PostgresServer | None) -> str:
    """A database written by the release with schema version 1 (tests/fixtures), as a URL."""
    if kind == "sqlite":
        path = tmp_path / "v1.db"
        with sqlite3.connect(path) as db:
            db.executescript((FIXTURES / "inbox-v1.sqlite.sql").read_text())
        return f"sqlite:///{path}"
    assert postgres is not None
    import psycopg

    url = postgres.database(f"v1_{next(_names)}_{threading.get_ident() % 10000}")
    with psycopg.connect(url, autocommit=True) as db:
        db.execute((FIXTURES / "inbox-v1.postgres.sql").read_text())  # type: ignore[arg-type]
    return url


def opened(url: str) -> Inbox:
    return SQLiteInbox(url.removeprefix("sqlite:///")) if url.startswith("sqlite") else PostgresInbox(url)


def meta(inbox: Inbox) -> dict[str, str]:
    with inbox.transaction() as db:
        return {name: value for name, value in db.execute("SELECT name, value FROM webhook_inbox_meta").fetchall()}


@pytest.fixture(params=["sqlite", "postgres"])
def v1_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    server = request.getfixturevalue("postgres") if request.param == "postgres" else None
    return version_1(request.param, tmp_path, server)


def test_every_version_has_a_migration_for_both_databases() -> None:
    assert sorted(MIGRATIONS) == list(range(1, SCHEMA_VERSION + 1))
    for version, dialects in MIGRATIONS.items():
        assert set(dialects) == {"sqlite", "postgres"}, version


def test_an_inbox_of_the_first_release_is_upgraded_in_place_with_every_row_kept(v1_url: str) -> None:
    before = {r["webhook_id"]: r for r in _raw_rows(v1_url)}
    inbox = opened(v1_url)
    found = meta(inbox)
    assert found["schema_version"] == str(SCHEMA_VERSION)
    assert {f"migrated_to_{v}" for v in range(2, SCHEMA_VERSION + 1)} <= set(found)
    rows = {r.webhook_id: r for r in inbox.rows(limit=100)}
    assert Counter(r.state for r in rows.values()) == V1_STATES
    for webhook_id, old in before.items():
        new = rows[webhook_id]
        assert (new.state, new.body, new.headers, new.attempts, new.last_error_type, new.received_at) == (
            old["state"], bytes(old["body"]), __import__("json").loads(old["headers"]), old["attempts"],
            old["last_error_type"], old["received_at"],
        )  # fmt: skip
        assert new.lease_token is None


def test_the_pending_rows_of_an_upgraded_inbox_are_processed_and_their_attempts_recorded(v1_url: str) -> None:
    inbox = opened(v1_url)
    handlers = Recording()

    def pending_done() -> bool:
        return all(inbox.get(f"msg_v1_{s}")[0].state == "done" for s in ("pending", "pending2"))

    asyncio.run(work(inbox, handlers, pending_done, handlers_name="myapp.webhooks:Handlers"))
    assert sorted(handlers.calls)[:2] == ["msg_v1_pending", "msg_v1_pending2"]
    (row,) = inbox.get("msg_v1_pending")
    (attempt,) = inbox.attempts_of(row.id)
    assert (attempt["handlers"], attempt["outcome"], attempt["attempt"]) == ("myapp.webhooks:Handlers", "done", 1)
    for state in ("failed", "dead", "invalid", "done"):
        assert inbox.get(f"msg_v1_{state}")[0].state == state, "rows not due keep their state"


def test_inspection_commands_work_on_an_older_inbox(v1_url: str) -> None:
    done = inbox_cli("inbox", "status", "--inbox", v1_url)
    assert done.returncode == 0, done.stderr
    assert "dead        1" in done.stdout


def test_processes_opening_an_older_inbox_together_migrate_it_once(v1_url: str) -> None:
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            opened(v1_url).status()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert meta(opened(v1_url))["schema_version"] == str(SCHEMA_VERSION)
    assert Counter(r.state for r in opened(v1_url).rows(limit=100)) == V1_STATES


def test_a_schema_newer_than_the_package_is_refused_untouched(tmp_path: Path) -> None:
    inbox = SQLiteInbox(tmp_path / "inbox.db")
    with inbox.transaction() as db:
        db.execute("UPDATE webhook_inbox_meta SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(InboxUnavailable, match="version 99, newer"):
        SQLiteInbox(tmp_path / "inbox.db")


def _raw_rows(url: str) -> list[dict[str, Any]]:
    """The rows as the old schema holds them, read without this package."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM webhook_inbox")]
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url, row_factory=dict_row) as db:
        return list(db.execute("SELECT * FROM webhook_inbox").fetchall())


def test_sqlite_keeps_bodies_apart_so_a_claim_and_a_completion_do_not_write_them_again(tmp_path: Path) -> None:
    """Schema version 3: SQLite rewrites a whole row on every UPDATE, so bodies live in a
    table of their own; the row's two updates (claimed, done) then log a few hundred bytes
    each, not the body again (~5.8 KB per update of a row holding a 4.4 KB body)."""
    import os

    path = tmp_path / "inbox.db"
    inbox = SQLiteInbox(path)
    bodies = {f"msg_{n}": os.urandom(2200).hex().encode() for n in range(100)}
    for webhook_id, body in bodies.items():
        assert inbox.store("e", webhook_id, "t", body, {})
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM webhook_inbox WHERE length(body_inline) > 0").fetchone() == (0,)
        assert db.execute("SELECT COUNT(*) FROM webhook_inbox_bodies").fetchone() == (100,)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rows = inbox.claim("w", 60, limit=100)
    assert {r.webhook_id: r.body for r in rows} == bodies
    assert all(inbox.settle([Outcome(r.id, "done") for r in rows])[0])
    logged = os.path.getsize(f"{path}-wal")
    assert logged < sum(map(len, bodies.values())) / 4, logged
    assert inbox.body_of("e", "msg_7") == bodies["msg_7"]
    # Pruned rows take their bodies with them.
    assert inbox.prune(-1) == 100
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM webhook_inbox_bodies").fetchone() == (0,)


def test_a_process_of_an_older_release_fails_on_a_migrated_sqlite_inbox_instead_of_reading_no_body(
    tmp_path: Path,
) -> None:
    """The body column is renamed by the migration: a statement written for version 2 (the
    previous release's claim reads ``body``) fails, and the receiver answers 503 or the
    worker retries, until that process runs this release too."""
    v1_url = version_1("sqlite", tmp_path, None)
    inbox = opened(v1_url)
    inbox.store("e", "msg_after", "t", b'{"new": true}', {})
    with sqlite3.connect(v1_url.removeprefix("sqlite:///")) as db, pytest.raises(sqlite3.OperationalError, match="no such column: body"):
        db.execute("SELECT body FROM webhook_inbox")
    assert inbox.get("msg_after")[0].body == b'{"new": true}'
    assert inbox.get("msg_v1_pending")[0].body, "rows stored before the migration keep theirs"
