"""The inbox's tables and statements, declared once for both databases.

* Columns: :class:`~.inbox.Row` names each column once; ``COLUMNS`` is read from it, and rows
  are read back by name.
* Statements: :func:`statements` writes every statement for one :class:`Dialect`, with named
  parameters in that database's own style (``:name`` for sqlite3, ``%(name)s`` for psycopg)
  and its own spelling of what differs (row locks, lists, casts). Nothing rewrites SQL text
  afterwards, so a literal ``?`` (or jsonb's ``?`` operator) means what it says.
* Schema: ``MIGRATIONS[version][dialect]``, the statements that bring a database from the
  version before to this one; a new database takes the same path from version 1. Append a
  version (and raise ``SCHEMA_VERSION``); never change one a release has shipped.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import json
import typing

TABLE = "webhook_inbox"
# The NOTIFY channel of the PostgreSQL inbox.
CHANNEL = "webhook_inbox"
SCHEMA_VERSION = 3
# Rows a worker may claim: due for a (first or next) attempt, or leased by a worker that
# stopped renewing its lease. While a row is processing, next_attempt_at is its lease expiry.
DUE = "state IN ('pending', 'failed', 'processing')"
# A row's state as the statements that find a row by its id test it: through an expression,
# which no index's predicate matches. Tested on the column itself, the test implies the
# partial index of due rows, and PostgreSQL reads the row through that index where a plan
# was made while it was nearly empty (statistics from before a backlog, a generic plan
# kept): every completion then scanned the whole backlog, and two workers drained 20,000
# rows at ~700 a second instead of ~3,000. Through the primary key, a lookup stays one row.
ROW_STATE = "(state || '')"
# The columns a stored delivery sets; the rest take their defaults.
STORED = (
    "endpoint", "webhook_id", "event_type", "body", "headers", "received_at", "state",
    "next_attempt_at", "last_error_type", "last_error_message", "updated_at",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Dialect:
    """What differs between the two databases, and nothing else."""

    name: str
    id_type: str
    blob: str
    real: str
    # Appended to the claim's subquery: PostgreSQL's row locks let workers claim together.
    claim_lock: str
    # A parameter's placeholder, ``{}`` standing for its name.
    placeholder: str
    # ``{column}`` is one of the list parameter ``{p}`` (a NULL list: no filter); ``{kind}``
    # is the items' SQL type where the database needs it.
    list_test: str
    # SQLite takes a list as one JSON text (the statement does not change with its length).
    lists_as_json: bool
    # How the claim names the due rows' partial index: SQLite's planner otherwise reads every
    # row of the state through the other index and sorts them, so a claim slowed down as the
    # backlog grew (after an outage, when it matters); PostgreSQL's picks it by itself.
    due_index: str
    # The column a stored body is written to, and the expression that reads it back. SQLite
    # rewrites a whole row on every UPDATE: with the body in the row, a claim and a
    # completion each wrote the 2-5 KB body to the log again. From schema version 3 a
    # trigger moves it to a table of its own as it is stored (rows stored before keep
    # theirs in ``body_inline``). PostgreSQL keeps large values apart by itself (TOAST).
    body_column: str
    body_read: str

    def p(self, name: str) -> str:
        """The placeholder of parameter ``name``."""
        return self.placeholder.format(name)

    def one_of(self, column: str, name: str, kind: str = "text") -> str:
        return self.list_test.format(column=column, p=self.p(name), kind=kind)

    def values(self, items: collections.abc.Sequence[typing.Any]) -> typing.Any:
        """A list parameter as this driver takes it (None for an empty list)."""
        if not items:
            return None
        return json.dumps(list(items)) if self.lists_as_json else list(items)


# name, id type, blob, real, claim lock, placeholder, list test, lists as JSON, due index
SQLITE = Dialect(
    "sqlite", "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", "REAL", "", ":{}",
    "({p} IS NULL OR {column} IN (SELECT value FROM json_each({p})))", True,
    f" INDEXED BY {TABLE}_due", "body_inline",
    f"COALESCE((SELECT body FROM {TABLE}_bodies WHERE {TABLE}_bodies.id = {TABLE}.id),"
    f" {TABLE}.body_inline)",
)  # fmt: skip
POSTGRES = Dialect(
    "postgres", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "BYTEA", "DOUBLE PRECISION",
    " FOR UPDATE SKIP LOCKED", "%({})s", "({p}::{kind}[] IS NULL OR {column} = ANY({p}::{kind}[]))",
    False, "", "body", "body",
)  # fmt: skip


def _version_1(d: Dialect) -> tuple[str, ...]:
    """The first release's tables, as it created them."""
    return (
        (
            f"CREATE TABLE IF NOT EXISTS {TABLE} ("
            f" id {d.id_type}, endpoint TEXT NOT NULL, webhook_id TEXT NOT NULL,"
            f" event_type TEXT NOT NULL, body {d.blob} NOT NULL,"
            f" headers TEXT NOT NULL, received_at {d.real} NOT NULL,"
            f" state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
            f" next_attempt_at {d.real} NOT NULL, lease_owner TEXT,"
            f" lease_expires_at {d.real}, last_error_type TEXT,"
            f" last_error_message TEXT, last_error_traceback TEXT,"
            f" completed_at {d.real}, updated_at {d.real} NOT NULL,"
            f" UNIQUE (endpoint, webhook_id))"
        ),
        f"CREATE INDEX IF NOT EXISTS {TABLE}_due ON {TABLE} (next_attempt_at) WHERE {DUE}",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_by_state ON {TABLE} (state, updated_at)",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_by_id ON {TABLE} (webhook_id)",
    )


def _version_2(d: Dialect) -> tuple[str, ...]:
    """A fencing token per claim, and a record of every attempt: who ran it (the worker and
    its handlers, module:attr) and how it ended."""
    return (
        f"ALTER TABLE {TABLE} ADD COLUMN lease_token TEXT",
        (
            f"CREATE TABLE {TABLE}_attempts (id {d.id_type}, row_id BIGINT NOT NULL,"
            f" attempt INTEGER NOT NULL, handlers TEXT NOT NULL, owner TEXT NOT NULL,"
            f" outcome TEXT NOT NULL, error_type TEXT, finished_at {d.real} NOT NULL)"
        ),
        f"CREATE INDEX {TABLE}_attempts_by_row ON {TABLE}_attempts (row_id)",
    )


def _version_3(d: Dialect) -> tuple[str, ...]:
    """SQLite: bodies in a table of their own (see ``Dialect.body_column``). The column is
    renamed, not left in place, so that a process still running an older release fails its
    statements (and answers 503, or retries) instead of reading an emptied body."""
    if d.name != "sqlite":
        return ()
    return (
        f"ALTER TABLE {TABLE} RENAME COLUMN body TO body_inline",
        f"CREATE TABLE {TABLE}_bodies (id INTEGER PRIMARY KEY, body BLOB NOT NULL)",
        (
            f"CREATE TRIGGER {TABLE}_body_apart AFTER INSERT ON {TABLE}"
            " WHEN length(NEW.body_inline) > 0 BEGIN"
            f" INSERT INTO {TABLE}_bodies (id, body) VALUES (NEW.id, NEW.body_inline);"
            f" UPDATE {TABLE} SET body_inline = x'' WHERE id = NEW.id; END"
        ),
        (
            f"CREATE TRIGGER {TABLE}_body_gone AFTER DELETE ON {TABLE} BEGIN"
            f" DELETE FROM {TABLE}_bodies WHERE id = OLD.id; END"
        ),
    )


# version -> dialect -> statements.
MIGRATIONS: dict[int, dict[str, tuple[str, ...]]] = {
    version: {d.name: make(d) for d in (SQLITE, POSTGRES)}
    for version, make in ((1, _version_1), (2, _version_2), (3, _version_3))
}


@dataclasses.dataclass(frozen=True)
class Statements:
    """Every statement the inbox runs, by what it does; parameters by name."""

    meta_table: str
    meta_get: str
    meta_put: str
    table_exists: str
    store: str
    store_and_notify: str
    notify: str
    body_of: str
    claim: str
    renew: str
    complete: str
    complete_fenced: str
    complete_returning: str
    complete_and_record: str
    finish: str
    record_attempt: str
    attempts_of: str
    release: str
    select_matching: str
    replay: str
    count_old: str
    old_ids: str
    delete_attempts: str
    delete_rows: str
    count_by_state: str
    oldest_unfinished: str
    last_errors: str
    newest: str
    by_webhook_id: str
    ping: str
    ready_probe: str


def statements(d: Dialect, columns: collections.abc.Sequence[str]) -> Statements:
    """Every statement, written for ``d``; ``columns``: the row's, in Row's order."""
    p = d.p
    selected = ", ".join(d.body_read if c == "body" else c for c in columns)
    finished = f"lease_owner = NULL, lease_expires_at = NULL, updated_at = {p('now')}"
    complete = (
        f"UPDATE {TABLE} SET state = 'done', completed_at = {p('now')}, {finished},"
        f" next_attempt_at = {p('now')} WHERE id = {p('id')}"
        f" AND {ROW_STATE} IN ('processing', 'pending', 'failed')"
    )
    written = ", ".join(d.body_column if c == "body" else c for c in STORED)
    insert = (
        f"INSERT INTO {TABLE} ({written}) VALUES ({', '.join(p(c) for c in STORED)})"
        " ON CONFLICT (endpoint, webhook_id) DO NOTHING RETURNING id"
    )
    matching = (
        f"{d.one_of('webhook_id', 'webhook_ids')}"
        f" AND (CAST({p('state')} AS TEXT) IS NULL OR state = {p('state')})"
        f" AND (CAST({p('event_type')} AS TEXT) IS NULL OR event_type = {p('event_type')})"
        f" AND (CAST({p('since')} AS {d.real}) IS NULL OR received_at >= {p('since')})"
        f" AND {d.one_of('state', 'states')}"
    )
    return Statements(
        meta_table=f"CREATE TABLE IF NOT EXISTS {TABLE}_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
        meta_get=f"SELECT value FROM {TABLE}_meta WHERE name = {p('name')}",
        meta_put=(
            f"INSERT INTO {TABLE}_meta (name, value) VALUES ({p('name')}, {p('value')})"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        ),
        table_exists=(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"
            if d.name == "sqlite"
            else "SELECT 1 WHERE to_regclass(%(name)s) IS NOT NULL"
        ),
        store=insert,
        # One statement, one round trip, still atomic: the row and its notification are
        # committed together (a NOTIFY is sent at commit), or neither.
        store_and_notify=(
            insert
            if d.name == "sqlite"
            else f"WITH stored AS ({insert}) SELECT id, pg_notify('{CHANNEL}', '') FROM stored"
        ),
        notify="" if d.name == "sqlite" else f"SELECT pg_notify('{CHANNEL}', '')",
        body_of=f"SELECT {d.body_read} FROM {TABLE} WHERE endpoint = {p('endpoint')} AND webhook_id = {p('webhook_id')}",
        claim=(
            f"UPDATE {TABLE} SET state = 'processing', lease_owner = {p('owner')},"
            f" lease_token = {p('token')}, lease_expires_at = {p('expires')},"
            f" next_attempt_at = {p('expires')}, attempts = attempts + 1, updated_at = {p('now')}"
            f" WHERE id IN (SELECT id FROM {TABLE}{d.due_index} WHERE {DUE} AND next_attempt_at <= {p('now')}"
            f" ORDER BY next_attempt_at LIMIT {p('limit')}{d.claim_lock}) RETURNING {selected}"
        ),
        renew=(
            f"UPDATE {TABLE} SET lease_expires_at = {p('expires')}, next_attempt_at = {p('expires')}"
            f" WHERE {d.one_of('id', 'ids', 'bigint')} AND {ROW_STATE} = 'processing'"
            f" AND lease_owner = {p('owner')}"
            " RETURNING id"
        ),
        complete=complete,
        # Whether the row was completed, in the statement's own answer: a pipeline has no
        # rowcount to read before its statements are all sent.
        complete_returning=f"{complete} RETURNING id",
        # PostgreSQL: the completion and the attempt's record in one statement, which
        # answers "done" or "done_again" (SQLite has no UPDATE inside WITH).
        complete_and_record=(
            ""
            if d.name == "sqlite"
            else f"WITH completed AS ({complete} RETURNING id)"
            f" INSERT INTO {TABLE}_attempts (row_id, attempt, handlers, owner, outcome,"
            f" error_type, finished_at) SELECT {p('id')}, {p('attempt')}, {p('handlers')},"
            f" {p('owner')}, CASE WHEN EXISTS (SELECT 1 FROM completed) THEN 'done'"
            f" ELSE 'done_again' END, NULL, {p('now')} RETURNING outcome"
        ),
        complete_fenced=(
            f"UPDATE {TABLE} SET state = 'done', completed_at = {p('now')}, {finished},"
            f" next_attempt_at = {p('now')} WHERE id = {p('id')} AND {ROW_STATE} = 'processing'"
            f" AND lease_token = {p('token')}"
        ),
        finish=(
            f"UPDATE {TABLE} SET state = {p('state')}, next_attempt_at = {p('retry_at')},"
            f" last_error_type = {p('error_type')}, last_error_message = {p('error_message')},"
            f" last_error_traceback = {p('error_traceback')}, {finished}"
            f" WHERE id = {p('id')} AND {ROW_STATE} = 'processing' AND lease_owner = {p('owner')}"
        ),
        record_attempt=(
            f"INSERT INTO {TABLE}_attempts (row_id, attempt, handlers, owner, outcome,"
            f" error_type, finished_at) VALUES ({p('id')}, {p('attempt')}, {p('handlers')},"
            f" {p('owner')}, {p('outcome')}, {p('error_type')}, {p('now')})"
        ),
        attempts_of=(
            "SELECT attempt, handlers, owner, outcome, error_type, finished_at"
            f" FROM {TABLE}_attempts WHERE row_id = {p('id')} ORDER BY id"
        ),
        release=(
            f"UPDATE {TABLE} SET state = 'pending', next_attempt_at = {p('now')},"
            f" attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, {finished}"
            f" WHERE id = {p('id')} AND {ROW_STATE} = 'processing' AND lease_owner = {p('owner')}"
        ),
        select_matching=(
            f"SELECT {selected} FROM {TABLE} WHERE {matching} ORDER BY id{d.claim_lock}"
        ),
        replay=(
            f"UPDATE {TABLE} SET state = 'pending', attempts = 0, next_attempt_at = {p('now')},"
            f" completed_at = NULL, updated_at = {p('now')} WHERE {d.one_of('id', 'ids', 'bigint')}"
        ),
        count_old=(
            f"SELECT COUNT(*) FROM {TABLE} WHERE state = {p('state')} AND updated_at < {p('cutoff')}"
        ),
        old_ids=(
            f"SELECT id FROM {TABLE} WHERE state = {p('state')} AND updated_at < {p('cutoff')}"
            f" LIMIT {p('limit')}"
        ),
        delete_attempts=f"DELETE FROM {TABLE}_attempts WHERE {d.one_of('row_id', 'ids', 'bigint')}",
        delete_rows=f"DELETE FROM {TABLE} WHERE {d.one_of('id', 'ids', 'bigint')}",
        count_by_state=f"SELECT state, COUNT(*) FROM {TABLE} GROUP BY state",
        oldest_unfinished=(
            f"SELECT MIN(received_at) FROM {TABLE}"
            " WHERE state IN ('pending', 'processing', 'failed')"
        ),
        last_errors=(
            "SELECT event_type, state, last_error_type, last_error_message, updated_at,"
            f" webhook_id FROM {TABLE} WHERE state IN ('failed', 'dead', 'invalid')"
            " AND last_error_type IS NOT NULL ORDER BY updated_at DESC LIMIT 10000"
        ),
        newest=f"SELECT {selected} FROM {TABLE} WHERE {matching} ORDER BY id DESC LIMIT {p('limit')}",
        by_webhook_id=f"SELECT {selected} FROM {TABLE} WHERE webhook_id = {p('webhook_id')} ORDER BY id",
        ping=f"SELECT 1 FROM {TABLE} LIMIT 1",
        ready_probe=(
            f"INSERT INTO {TABLE}_meta (name, value) VALUES ('ready_probe', {p('value')})"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        ),
    )


def filters(
    d: Dialect,
    *,
    webhook_ids: collections.abc.Sequence[str] = (),
    state: str | None = None,
    event_type: str | None = None,
    since: float | None = None,
    states: collections.abc.Sequence[str] = (),
) -> dict[str, typing.Any]:
    """The parameters of ``select_matching`` and ``newest``: None where no filter."""
    return {
        "webhook_ids": d.values(webhook_ids),
        "state": state,
        "event_type": event_type,
        "since": since,
        "states": d.values(states),
    }
