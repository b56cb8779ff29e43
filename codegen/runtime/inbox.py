"""Store first, process after: the inbox records every verified delivery and is the queue of
work that workers take from.

One row per (endpoint, ``webhook-id``): a redelivery of a stored id adds nothing. A row moves
through these states::

    receive --> pending --claim--> processing --handler ok--------------> done
                  ^                   |  |  '--handler raised, attempts left--> failed --due--> (claimed again)
                  |                   |  '----handler raised, none left-------> dead
                  |                   '------payload not valid for the models--> invalid
                  '---- replay (failed, dead, invalid, done) ----'

A claim is a lease: the worker renews it while the handler runs, and if the worker dies the
lease lapses and another worker claims the row again (that counts as an attempt). A row is
marked ``done`` once: completing a row that is done already changes nothing and says so.

* :class:`SQLiteInbox`: one host, any number of processes; WAL, one short transaction per
  write, ``synchronous=FULL`` (a stored row survives a power cut, not only a crash).
* :class:`PostgresInbox`: a fleet (the ``postgres`` extra, psycopg 3); claims use
  ``FOR UPDATE SKIP LOCKED``, and ``NOTIFY`` wakes idle workers.

Every failure of the database raises :class:`InboxUnavailable` (a :class:`StoreUnavailable`):
the receiver answers 503 with nothing stored, and incident.io retries.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import json
import os
import queue
import secrets
import sqlite3
import threading
import time
import types
import typing
import urllib.parse
import weakref
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from . import _inbox_sql, _sqlite, redact
from ._inbox_sql import CHANNEL, MIGRATIONS, SCHEMA_VERSION, TABLE
from .errors import StoreUnavailable
from .events import ENVELOPE

if typing.TYPE_CHECKING:
    import psycopg

State = typing.Literal["pending", "processing", "done", "failed", "dead", "invalid"]
STATES: tuple[State, ...] = typing.get_args(State)
# States a replay moves back to pending; a row being processed is left to its worker.
REPLAYABLE: tuple[State, ...] = ("failed", "dead", "invalid", "done")
# States whose rows hold an event no handler has finished: deleting them loses it, so prune
# deletes them only when told to by name (``force``).
UNHANDLED: tuple[State, ...] = ("pending", "failed", "invalid", "dead")
# The headers kept with a row: enough to verify the body again later; nothing secret.
# With a header envelope (GitHub's), the header that names the event too: the worker reads
# the row with it.
KEPT_HEADERS = (*ENVELOPE.headers, "content-type")
PRUNE_BATCH = 500

__all__ = [
    "CHANNEL",
    "STATES",
    "Failure",
    "Inbox",
    "InboxMissing",
    "InboxUnavailable",
    "LeaseLost",
    "Outcome",
    "PostgresInbox",
    "Ran",
    "Row",
    "SQLiteInbox",
    "State",
    "Status",
    "from_url",
]  # fmt: skip


class InboxUnavailable(StoreUnavailable):
    """The inbox could not be reached or refused the write; nothing was stored."""


class InboxMissing(ValueError):
    """Opened with ``create=False`` (the inspection commands) where there is no inbox: a
    typo in a path must not become a new, empty inbox that reports zeros."""


@dataclasses.dataclass(frozen=True)
class Row:
    """One delivery. Times are Unix seconds (UTC), the clock every host shares."""

    id: int
    endpoint: str
    webhook_id: str
    event_type: str
    body: bytes
    headers: dict[str, str]
    received_at: float
    state: State
    attempts: int
    next_attempt_at: float
    lease_owner: str | None
    lease_expires_at: float | None
    last_error_type: str | None
    last_error_message: str | None
    last_error_traceback: str | None
    completed_at: float | None
    updated_at: float
    # A new random value at every claim: what fences a handler's own writes to its lease
    # (schema version 2; None in rows no worker has claimed since).
    lease_token: str | None = None

    def summary(self) -> dict[str, typing.Any]:
        """Everything but the body and the traceback, for listings and JSON."""
        fields = dataclasses.asdict(self)
        del fields["body"], fields["last_error_traceback"]
        return fields


@dataclasses.dataclass(frozen=True)
class Status:
    counts: dict[str, int]
    # Age of the oldest row not finished yet (pending, processing or failed); None if none.
    oldest_pending_seconds: float | None
    # The newest error of each event type among failed, dead and invalid rows.
    last_errors: dict[str, dict[str, typing.Any]]


@dataclasses.dataclass(frozen=True)
class Ran:
    """An attempt as recorded with its outcome: its number, the handlers that ran it
    (``module:attr``) and the worker (host:pid:id)."""

    attempt: int
    handlers: str
    owner: str


class LeaseLost(Exception):
    """A handler's fenced transaction found its lease gone: nothing it wrote committed."""


@dataclasses.dataclass(frozen=True)
class Failure:
    """A failed attempt's error, as stored: text either database takes (a handler's error
    may say anything; PostgreSQL's text refuses NUL, and no driver encodes a lone
    surrogate), each escaped as Python writes it."""

    type: str
    message: str
    traceback: str = ""

    def __post_init__(self) -> None:
        for name in ("type", "message", "traceback"):
            object.__setattr__(self, name, _storable(getattr(self, name)))


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How an attempt ended, to record (:meth:`Inbox.settle`): ``done``, recorded whoever
    holds the row's lease now (its handler ran); ``failed`` until ``retry_at``, ``dead`` or
    ``invalid``, recorded only while ``owner`` holds the lease."""

    row_id: int
    state: State
    owner: str = ""
    failure: Failure | None = None
    retry_at: float | None = None
    ran: Ran | None = None


def _storable(text: str) -> str:
    return (
        text.encode("utf-8", "backslashreplace")
        .decode("utf-8")
        .replace("\x00", "\\x00")
    )


# Each column once: Row's fields, in order; rows are read back by name.
COLUMNS: tuple[str, ...] = tuple(field.name for field in dataclasses.fields(Row))


def _claim_params(
    owner: str, lease_seconds: float, limit: int, now: float
) -> dict[str, typing.Any]:
    return {
        "owner": owner, "token": secrets.token_hex(16), "expires": now + lease_seconds,
        "now": now, "limit": limit,
    }  # fmt: skip


def _claimed(rows: Sequence[Sequence[typing.Any]]) -> list[Row]:
    return sorted((_row(r) for r in rows), key=lambda row: row.id)


def _row(values: Sequence[typing.Any]) -> Row:
    found = dict(zip(COLUMNS, values, strict=True))
    found["id"] = int(found["id"])
    found["body"] = bytes(found["body"])
    found["headers"] = json.loads(found["headers"])
    return Row(**found)


# Every inbox object, so that a forked child opens its own connections: two processes
# talking over one connection interleave their traffic, and closing the parent's
# connection in the child would end the parent's session.
_INBOXES: weakref.WeakSet[Inbox] = weakref.WeakSet()
_LEFT_BEHIND: list[object] = []


class _Pending:
    __slots__ = ("done", "error", "item", "result")

    def __init__(self, item: typing.Any) -> None:
        self.item = item
        self.done = False
        self.result: typing.Any = None
        self.error: BaseException | None = None


# Rows committed in one transaction at most, by either group commit.
MAX_BATCH = 64
# A batch's commit: it calls its argument once it can write (SQLite: holding the file's
# write lock) and gets the items to write, then returns one result per item.
Commit: typing.TypeAlias = typing.Callable[
    [typing.Callable[[], list[typing.Any]]], list[typing.Any]
]


def _batch_failed(error: BaseException) -> InboxUnavailable:
    """``error``, which failed a batch, as the error of one of its other callers (one
    exception object raised by two threads or tasks would share a traceback)."""
    own = InboxUnavailable(f"the batch this delivery was committed in failed: {error}")
    own.__cause__ = error
    return own


def _move_next_batch(
    changed: threading.Condition, queue: list[typing.Any], batch: list[typing.Any]
) -> None:
    """Moves the next batch (at most ``MAX_BATCH``) from ``queue`` into ``batch``: what a
    group commit's ``take`` does, under the queue's lock, once its transaction can write.
    """
    with changed:
        batch.extend(queue[:MAX_BATCH])
        del queue[:MAX_BATCH]


class _GroupCommit:
    """Group commit: a caller that finds no commit under way commits its own item and every
    item queued by the time its transaction can write (at most ``MAX_BATCH``); callers that
    arrive later queue, and the next of them to wake commits theirs. Each caller returns
    only once its own item's transaction has ended, with its own result or the batch's
    error. A flush to disk costs the same for one row as for fifty, so concurrent
    deliveries share it instead of queueing for one each; and the rows that queue while a
    commit waits for SQLite's write lock (another process holds it) join that commit."""

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._queue: list[_Pending] = []
        self._committing = False

    def run(self, commit: Commit, item: typing.Any) -> typing.Any:
        mine = _Pending(item)
        ran_mine = False  # whether this thread ran the commit its own item was in
        with self._changed:
            self._queue.append(mine)
            while not mine.done:
                if self._committing:
                    self._changed.wait()
                    continue
                self._committing = True
                batch: list[_Pending] = []
                take = functools.partial(self._take, batch)
                self._changed.release()
                try:
                    results = commit(take)
                    for pending, result in zip(batch, results, strict=True):
                        pending.result = result
                # Whatever ends the commit ends it for every row of the batch (taken now
                # if it failed before it could write); each of its callers raises it below.
                except BaseException as exc:  # noqa: BLE001
                    if not batch:
                        take()
                    for pending in batch:
                        pending.error = exc
                finally:
                    self._changed.acquire()
                    ran_mine = ran_mine or mine in batch
                    for pending in batch:
                        pending.done = True
                    self._committing = False
                    self._changed.notify_all()
        error = mine.error
        if error is None:
            return mine.result
        if ran_mine:
            raise error
        raise _batch_failed(error)  # another caller's commit failed with this row in it

    def _take(self, batch: list[_Pending]) -> list[typing.Any]:
        _move_next_batch(self._changed, self._queue, batch)
        return [pending.item for pending in batch]


class _Writer:
    """Group commit for asyncio callers (PostgreSQL's; SQLite's is ``_LoopWriter``): one
    thread commits the items queued by the time its transaction can write (at most
    ``MAX_BATCH``) while the next ones queue; each caller's future gets its own item's
    result, or the batch's error, once that transaction has ended, and the futures of one
    loop are settled with one wake-up of it. No thread per waiting request: a request waits
    on the loop, not in a thread holding its place. A batch is one pipeline, a network round
    trip the loop must not wait for."""

    def __init__(self, commit: Commit) -> None:
        self._commit = commit
        self._changed = threading.Condition(threading.Lock())
        self._queue: list[tuple[typing.Any, asyncio.Future[typing.Any]]] = []
        self._thread: threading.Thread | None = None

    def submit(self, item: typing.Any) -> asyncio.Future[typing.Any]:
        future: asyncio.Future[typing.Any] = asyncio.get_running_loop().create_future()
        with self._changed:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="inbox-writer", daemon=True
                )
                self._thread.start()
            self._queue.append((item, future))
            self._changed.notify()
        return future

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._queue:
                    self._changed.wait()
            batch: list[tuple[typing.Any, asyncio.Future[typing.Any]]] = []
            take = functools.partial(self._take, batch)
            try:
                outcome: list[typing.Any] | BaseException = self._commit(take)
            # Whatever ends the commit ends it for every row of the batch (taken now if it
            # failed before it could write).
            except BaseException as exc:  # noqa: BLE001 - handed to each caller
                outcome = exc
                if not batch:
                    take()
            by_loop: dict[asyncio.AbstractEventLoop, list[typing.Any]] = {}
            for n, (_, future) in enumerate(batch):
                by_loop.setdefault(future.get_loop(), []).append((n, future))
            for loop, futures in by_loop.items():
                with contextlib.suppress(RuntimeError):  # that loop has closed
                    loop.call_soon_threadsafe(_settle_futures, futures, outcome)

    def _take(
        self, batch: list[tuple[typing.Any, asyncio.Future[typing.Any]]]
    ) -> list[typing.Any]:
        _move_next_batch(self._changed, self._queue, batch)
        return [item for item, _ in batch]


def _settle_futures(
    futures: list[tuple[int, asyncio.Future[typing.Any]]],
    outcome: list[typing.Any] | BaseException,
) -> None:
    for n, future in futures:
        if future.done():
            continue  # its request was cancelled meanwhile (the row may be stored)
        if not isinstance(outcome, BaseException):
            future.set_result(outcome[n])
        else:
            future.set_exception(outcome if n == 0 else _batch_failed(outcome))


class _LoopWriter:
    """Group commit on one event loop, for SQLite: the loop's requests queue their rows;
    one task commits those queued by the time it holds the write lock (at most
    ``MAX_BATCH``), then the next. Only the waits leave the loop, each for a thread of this
    writer's own: for the file's write lock (another process may hold it) and for the
    commit's flush. The rows' statements, a few microseconds of SQLite each, run on the
    loop: run by a writer thread, each took the GIL back from the loop, and these hand-offs
    cost more CPU than the statements themselves (two server processes stored 20-33 % more
    deliveries per second, with 18 % less CPU each, once only the waits left the loop).
    """

    def __init__(self, inbox: SQLiteInbox) -> None:
        self._inbox = inbox
        self._queue: list[tuple[typing.Any, asyncio.Future[typing.Any]]] = []
        self._task: asyncio.Task[None] | None = None
        # The connection this writer's batches use, from the loop and from its thread in
        # turn (one at a time): ``_sqlite.thread_connection``'s holder.
        self._holder = types.SimpleNamespace()
        self._waits: queue.SimpleQueue[typing.Any] = queue.SimpleQueue()
        thread = threading.Thread(
            target=_run_waits, args=(self._waits,), name="inbox-writer", daemon=True
        )
        thread.start()
        # The thread ends with this writer (its loop gone), not with the process.
        weakref.finalize(self, self._waits.put, None)

    def submit(self, item: typing.Any) -> asyncio.Future[typing.Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[typing.Any] = loop.create_future()
        self._queue.append((item, future))
        if self._task is None:
            self._task = loop.create_task(self._run())
        return future

    async def _run(self) -> None:
        try:
            while self._queue:
                await self._commit_next()
        finally:
            self._task = None

    async def _commit_next(self) -> None:
        inbox = self._inbox
        batch: list[tuple[typing.Any, asyncio.Future[typing.Any]]] = []
        try:
            db = await self._wait(inbox._begin_batch, self._holder)
            # Taken once the lock is held: the rows that queued meanwhile join.
            batch = self._next_batch()
            results = inbox._write_batch(db, [item for item, _ in batch])
            await self._wait(inbox._commit_batch, db)
        # Whatever ends the commit ends it for every row of the batch (taken now if it
        # failed before it could write).
        except BaseException as exc:
            if not batch:
                batch = self._next_batch()
            for n, (_, future) in enumerate(batch):
                if future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()  # the loop is going away; the row may be stored
                else:
                    future.set_exception(exc if n == 0 else _batch_failed(exc))
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            # Done already: its request was cancelled meanwhile (the row is stored).
            if not future.done():
                future.set_result(result)

    def _next_batch(self) -> list[tuple[typing.Any, asyncio.Future[typing.Any]]]:
        batch = self._queue[:MAX_BATCH]
        del self._queue[:MAX_BATCH]
        return batch

    async def _wait(
        self, call: typing.Callable[..., typing.Any], *args: typing.Any
    ) -> typing.Any:
        """``call(*args)`` in this writer's thread. Cancelled (the loop is closing), the
        call still ends in that thread, and a transaction it began is rolled back there
        after it: a write lock is never left to a connection nobody will use again."""
        try:
            return await asyncio.wrap_future(self._in_thread(call, *args))
        except asyncio.CancelledError:
            self._in_thread(self._inbox._rollback_open, self._holder)
            raise

    def _in_thread(
        self, call: typing.Callable[..., typing.Any], *args: typing.Any
    ) -> concurrent.futures.Future[typing.Any]:
        done: concurrent.futures.Future[typing.Any] = concurrent.futures.Future()
        self._waits.put((call, args, done))
        return done


def _run_waits(waits: queue.SimpleQueue[typing.Any]) -> None:
    # Each job in a call of its own: nothing of the last one (its future holds the loop)
    # stays referenced while this thread waits for the next.
    while (job := waits.get()) is not None:
        _run_wait(*job)
        del job


def _run_wait(
    call: typing.Callable[..., typing.Any],
    args: tuple[typing.Any, ...],
    done: concurrent.futures.Future[typing.Any],
) -> None:
    if not done.set_running_or_notify_cancel():
        return
    try:
        done.set_result(call(*args))
    except BaseException as exc:  # noqa: BLE001 - handed to the waiting task
        done.set_exception(exc)


def _after_fork_in_child() -> None:
    for inbox in list(_INBOXES):
        inbox._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Inbox(abc.ABC):
    """What an inbox does, on either database: a subclass supplies its dialect (and with it
    every statement, ``SQL``), connections and transactions."""

    DIALECT: typing.ClassVar[_inbox_sql.Dialect]
    SQL: typing.ClassVar[_inbox_sql.Statements]

    def __init_subclass__(cls, **kwargs: typing.Any) -> None:
        super().__init_subclass__(**kwargs)
        if "DIALECT" in cls.__dict__:
            cls.SQL = _inbox_sql.statements(cls.DIALECT, COLUMNS)

    def __init__(self, *, create: bool = True) -> None:
        self._local = threading.local()
        # Set when this process stores a row, so that an in-process worker starts at once.
        self._stored = threading.Event()
        self._batches = _GroupCommit()
        self._writer = _Writer(self._store_batch)
        _INBOXES.add(self)
        if not create and not self._exists():
            raise InboxMissing(f"there is no inbox in {self!r} (no {TABLE}_meta table)")
        self._create_schema()

    def _exists(self) -> bool:
        with self.transaction() as db:
            found = db.execute(
                self.SQL.table_exists, {"name": f"{TABLE}_meta"}
            ).fetchall()
        return bool(found)

    def _after_fork(self) -> None:
        _LEFT_BEHIND.append(self._local)
        self._local = threading.local()
        self._stored = threading.Event()
        # A batch another thread was committing at the fork is not this process's to answer.
        self._batches = _GroupCommit()
        self._writer = _Writer(self._store_batch)

    # -- what a subclass provides ----------------------------------------------------------

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[typing.Any]:
        """A context manager giving the driver's connection (statements from ``SQL``, with
        named parameters); commits on success, rolls back on an exception, raises
        InboxUnavailable for a database error."""

    @abc.abstractmethod
    def wait_for_work(self, timeout: float) -> None:
        """Return when a row may have been stored since the last call, or after ``timeout``."""

    @abc.abstractmethod
    def _lock_schema(self, db: typing.Any) -> None:
        """Serialise schema creation between processes, inside the transaction."""

    def close(self) -> None:
        """Close this thread's connection (others close with their threads)."""

    def _one_statement(self) -> contextlib.AbstractContextManager[typing.Any]:
        """Where a single statement runs: a transaction, unless the database makes one
        statement atomic by itself (PostgreSQL, in one round trip instead of three)."""
        return self.transaction()

    # -- schema ----------------------------------------------------------------------------

    def _create_schema(self) -> None:
        with self.transaction() as db:
            self._schema(db)

    def _schema(self, db: typing.Any) -> None:
        """Create the tables, or bring them to SCHEMA_VERSION, inside a write transaction
        (the schema lock held: processes starting together migrate once)."""
        self._lock_schema(db)
        db.execute(self.SQL.meta_table)
        found = db.execute(self.SQL.meta_get, {"name": "schema_version"}).fetchone()
        version = 0 if found is None else int(found[0])
        if version > SCHEMA_VERSION:
            raise InboxUnavailable(
                f"the inbox's schema is version {version}, newer than this package's "
                f"({SCHEMA_VERSION}): upgrade the package, or use another database"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[target][self.DIALECT.name]:
                db.execute(statement)
            db.execute(
                self.SQL.meta_put,
                {"name": f"migrated_to_{target}", "value": repr(time.time())},
            )
        if version < SCHEMA_VERSION:
            db.execute(
                self.SQL.meta_put,
                {"name": "schema_version", "value": str(SCHEMA_VERSION)},
            )

    # -- receiving -------------------------------------------------------------------------

    def store(
        self,
        endpoint: str,
        webhook_id: str,
        event_type: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        invalid: Failure | None = None,
        traceparent: str | None = None,
    ) -> bool:
        """Store a delivery (``pending``, or ``invalid`` with the reason); False when this
        endpoint stored that id already (nothing changes). ``traceparent``: the receiving
        span, which the handler's span links to."""
        item = self._row_to_store(
            endpoint, webhook_id, event_type, body, headers, invalid, traceparent
        )
        stored = bool(self._batches.run(self._store_batch, item))
        if stored:
            self._stored.set()
        return stored

    async def store_async(
        self,
        endpoint: str,
        webhook_id: str,
        event_type: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        invalid: Failure | None = None,
        traceparent: str | None = None,
    ) -> bool:
        """:meth:`store` for a caller on an event loop, which waits there (not in a
        thread) while the inbox's writer commits its row with the others queued.
        """
        item = self._row_to_store(
            endpoint, webhook_id, event_type, body, headers, invalid, traceparent
        )
        stored = bool(await self._submit(item))
        if stored:
            self._stored.set()
        return stored

    def _submit(
        self, item: tuple[str, dict[str, typing.Any]]
    ) -> asyncio.Future[typing.Any]:
        """The future of ``item``'s commit by this inbox's writer (``_Writer``)."""
        return self._writer.submit(item)

    def _row_to_store(
        self,
        endpoint: str,
        webhook_id: str,
        event_type: str,
        body: bytes,
        headers: Mapping[str, str],
        invalid: Failure | None,
        traceparent: str | None,
    ) -> tuple[str, dict[str, typing.Any]]:
        now = time.time()
        lowered = {str(name).lower(): value for name, value in headers.items()}
        kept = {name: lowered[name] for name in KEPT_HEADERS if name in lowered}
        if traceparent is not None:
            kept["traceparent"] = traceparent
        state = "pending" if invalid is None else "invalid"
        row = {
            "endpoint": endpoint, "webhook_id": webhook_id, "event_type": event_type,
            "body": body, "headers": json.dumps(kept), "received_at": now, "state": state,
            "next_attempt_at": now, "updated_at": now,
            "last_error_type": None if invalid is None else invalid.type,
            "last_error_message": None if invalid is None else invalid.message,
        }  # fmt: skip
        # A pending row wakes other processes' idle workers (PostgreSQL: NOTIFY, sent with
        # the commit); an invalid one waits for a replay.
        statement = self.SQL.store_and_notify if invalid is None else self.SQL.store
        return statement, row

    def _store_batch(
        self, take: typing.Callable[[], list[tuple[str, dict[str, typing.Any]]]]
    ) -> list[bool]:
        """The rows of concurrent ``store`` calls, in one transaction: one commit (one
        flush to disk) for all of them. Whatever fails, fails the whole batch, and each of
        its callers gets the error: nothing is answered stored that was not committed.
        The rows are taken once the transaction holds the write lock, so those queued
        while it waited for another process's commit are written with it."""
        with self.transaction() as db:
            return [
                bool(db.execute(statement, row).fetchall()) for statement, row in take()
            ]

    def _announce(self, db: typing.Any) -> None:
        """Tell other processes' idle workers, inside the transaction (PostgreSQL)."""
        if self.SQL.notify:
            db.execute(self.SQL.notify)

    def body_of(self, endpoint: str, webhook_id: str) -> bytes | None:
        """The body stored for (``endpoint``, ``webhook_id``), if any."""
        with self._one_statement() as db:
            found = db.execute(
                self.SQL.body_of, {"endpoint": endpoint, "webhook_id": webhook_id}
            ).fetchone()
        return None if found is None else bytes(found[0])

    # -- processing ------------------------------------------------------------------------

    def claim(self, owner: str, lease_seconds: float, limit: int = 1) -> list[Row]:
        """Lease up to ``limit`` due rows to ``owner``, oldest first; each claim counts as an
        attempt. The rows of one claim share a new lease token."""
        with self._one_statement() as db:
            return self._claim(db, owner, lease_seconds, limit, time.time())

    def _claim(
        self, db: typing.Any, owner: str, lease_seconds: float, limit: int, now: float
    ) -> list[Row]:
        if limit < 1:
            return []
        rows = db.execute(
            self.SQL.claim, _claim_params(owner, lease_seconds, limit, now)
        )
        return _claimed(rows.fetchall())

    def renew(self, owner: str, ids: Sequence[int], lease_seconds: float) -> set[int]:
        """Extend ``owner``'s leases on ``ids``; returns the ids it still holds."""
        if not ids:
            return set()
        params = {
            "expires": time.time() + lease_seconds,
            "ids": self.DIALECT.values(list(ids)),
            "owner": owner,
        }
        with self._one_statement() as db:
            held = db.execute(self.SQL.renew, params).fetchall()
        return {int(r[0]) for r in held}

    def complete(self, row_id: int, *, ran: Ran | None = None) -> bool:
        """The handler succeeded: mark the row done, whoever holds its lease now (its
        handler ran). False when it was done already: the handler ran a second time, after
        a lease lapsed. ``ran``: the attempt, recorded with the outcome."""
        return self._settle_one(Outcome(row_id, "done", ran=ran))

    def settle(
        self,
        outcomes: Sequence[Outcome],
        *,
        owner: str = "",
        lease_seconds: float = 0.0,
        claim: int = 0,
    ) -> tuple[list[bool], list[Row]]:
        """Record several attempts' outcomes in one transaction (one flush to disk for all
        of them), and then :meth:`claim` up to ``claim`` due rows for ``owner`` in it too
        (a worker claims the rows for the slots these outcomes free). For each outcome,
        whether it was recorded, as :meth:`complete` and :meth:`fail` say; the rows
        claimed. Whatever fails fails it all: nothing of the transaction is kept."""
        now = time.time()
        with self.transaction() as db:
            recorded = [self._settle(db, outcome, now) for outcome in outcomes]
            return recorded, self._claim(db, owner, lease_seconds, claim, now)

    def _settle_one(self, outcome: Outcome) -> bool:
        (recorded,), _ = self.settle([outcome])
        return recorded

    def _settle(self, db: typing.Any, outcome: Outcome, now: float) -> bool:
        row_id, ran = outcome.row_id, outcome.ran
        if outcome.state == "done":
            done = bool(
                db.execute(self.SQL.complete, {"now": now, "id": row_id}).rowcount
            )
            self._record(db, row_id, ran, "done" if done else "done_again", None, now)
            return done
        failure = outcome.failure or Failure("", "")
        retry_at = outcome.retry_at
        params = {
            "state": outcome.state, "retry_at": retry_at if retry_at is not None else now,
            "error_type": failure.type, "error_message": failure.message,
            "error_traceback": failure.traceback, "now": now, "id": row_id,
            "owner": outcome.owner,
        }  # fmt: skip
        finished = bool(db.execute(self.SQL.finish, params).rowcount)
        outcome_name = outcome.state if finished else f"{outcome.state}_not_recorded"
        self._record(db, row_id, ran, outcome_name, failure.type, now)
        return finished

    @contextlib.contextmanager
    def fenced(
        self, row_id: int, lease_token: str, *, ran: Ran | None = None
    ) -> Iterator[typing.Any]:
        """A transaction on the inbox's own database for a handler's writes, which marks
        the row done and commits only while ``lease_token`` (the claim's) still holds the
        row: a holder whose lease lapsed (a pause, a freeze) gets :class:`LeaseLost` at the
        end and its writes roll back, so they commit once. Gives the driver's connection
        (``sqlite3`` with ``?`` placeholders, psycopg with ``%s``)."""
        now = time.time()
        with self.transaction() as db:
            yield db
            held = db.execute(
                self.SQL.complete_fenced,
                {"now": now, "id": row_id, "token": lease_token},
            ).rowcount
            if not held:
                raise LeaseLost(
                    f"row {row_id} is no longer held by this attempt's lease (it lapsed and "
                    "another worker took it, or it was finished): its writes are rolled back"
                )
            self._record(db, row_id, ran, "done", None, now)

    def fail(
        self,
        row_id: int,
        owner: str,
        failure: Failure,
        retry_at: float | None,
        *,
        ran: Ran | None = None,
    ) -> bool:
        """The handler raised: ``failed`` until ``retry_at``, or ``dead`` when None. Only
        the lease holder may; False when another worker holds the row now."""
        state: State = "failed" if retry_at is not None else "dead"
        return self._settle_one(Outcome(row_id, state, owner, failure, retry_at, ran))

    def mark_invalid(
        self, row_id: int, owner: str, failure: Failure, *, ran: Ran | None = None
    ) -> bool:
        """The body does not validate against this package's models: kept for replay."""
        return self._settle_one(Outcome(row_id, "invalid", owner, failure, None, ran))

    def _record(
        self,
        db: typing.Any,
        row_id: int,
        ran: Ran | None,
        outcome: str,
        error_type: str | None,
        now: float,
    ) -> None:
        """One line of the row's attempts: who ran it and how it ended."""
        if ran is None:
            return
        db.execute(
            self.SQL.record_attempt,
            {
                "id": row_id, "attempt": ran.attempt, "handlers": ran.handlers,
                "owner": ran.owner, "outcome": outcome, "error_type": error_type, "now": now,
            },
        )  # fmt: skip

    def attempts_of(self, row_id: int) -> list[dict[str, typing.Any]]:
        """The recorded attempts of a row, oldest first."""
        with self.transaction() as db:
            found = db.execute(self.SQL.attempts_of, {"id": row_id}).fetchall()
        names = ("attempt", "handlers", "owner", "outcome", "error_type", "finished_at")
        return [dict(zip(names, values, strict=True)) for values in found]

    def release(self, row_id: int, owner: str) -> bool:
        """Give a row back unprocessed (a shutdown): pending again, the attempt not counted."""
        params = {"now": time.time(), "id": row_id, "owner": owner}
        with self._one_statement() as db:
            return bool(db.execute(self.SQL.release, params).rowcount)

    # -- operating -------------------------------------------------------------------------

    def replay(
        self,
        *,
        webhook_ids: Sequence[str] = (),
        state: State | None = None,
        event_type: str | None = None,
        since: float | None = None,
    ) -> list[Row]:
        """Move matching rows back to ``pending`` with their attempts reset (never a row
        being processed); returns them as they were."""
        if not (webhook_ids or state or event_type):
            raise ValueError("replay needs ids, a state or an event type")
        if state is not None and state not in REPLAYABLE:
            raise ValueError(f"only {', '.join(REPLAYABLE)} rows can be replayed")
        matching = _inbox_sql.filters(
            self.DIALECT, webhook_ids=webhook_ids, state=state, event_type=event_type,
            since=since, states=REPLAYABLE if state is None else (),
        )  # fmt: skip
        now = time.time()
        with self.transaction() as db:
            before = [_row(r) for r in db.execute(self.SQL.select_matching, matching)]
            for start in range(0, len(before), PRUNE_BATCH):
                ids = [row.id for row in before[start : start + PRUNE_BATCH]]
                db.execute(
                    self.SQL.replay, {"now": now, "ids": self.DIALECT.values(ids)}
                )
            if before:
                self._announce(db)
        if before:
            self._stored.set()
        return before

    def prunable(self, older_than_seconds: float, state: State = "done") -> int:
        """How many rows :meth:`prune` would delete now."""
        params = {"state": state, "cutoff": time.time() - older_than_seconds}
        with self.transaction() as db:
            return int(db.execute(self.SQL.count_old, params).fetchone()[0])

    def prune(
        self,
        older_than_seconds: float,
        state: State = "done",
        batch: int = PRUNE_BATCH,
        *,
        force: bool = False,
    ) -> int:
        """Delete ``state`` rows last changed more than ``older_than_seconds`` ago, in short
        transactions of ``batch`` rows (receiving never waits long); returns how many.
        Rows whose event was never handled (pending, failed, invalid, dead) only with
        ``force``; rows being processed never."""
        if state == "processing":
            raise ValueError("rows being processed are never pruned")
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}: one of {', '.join(STATES)}")
        if state in UNHANDLED and not force:
            raise ValueError(
                f"{state} rows hold events no handler has finished: deleting them loses "
                "them; pass force=True (--force) to delete them anyway"
            )
        old = {
            "state": state,
            "cutoff": time.time() - older_than_seconds,
            "limit": batch,
        }
        removed = 0
        while True:
            with self.transaction() as db:
                ids = [int(found[0]) for found in db.execute(self.SQL.old_ids, old)]
                if ids:
                    listed = {"ids": self.DIALECT.values(ids)}
                    db.execute(self.SQL.delete_attempts, listed)
                    db.execute(self.SQL.delete_rows, listed)
            removed += len(ids)
            if len(ids) < batch:
                return removed

    def status(self) -> Status:
        now = time.time()
        with self.transaction() as db:
            counts: dict[str, int] = dict.fromkeys(STATES, 0)
            for state, count in db.execute(self.SQL.count_by_state).fetchall():
                counts[state] = int(count)
            oldest = db.execute(self.SQL.oldest_unfinished).fetchone()[0]
            errors = db.execute(self.SQL.last_errors).fetchall()
        last: dict[str, dict[str, typing.Any]] = {}
        for event_type, state, kind, message, at, webhook_id in errors:
            last.setdefault(
                event_type,
                {"state": state, "type": kind, "message": message, "at": at,
                 "webhook_id": webhook_id},
            )  # fmt: skip
        return Status(counts, None if oldest is None else max(0.0, now - oldest), last)

    def rows(
        self,
        *,
        state: State | None = None,
        event_type: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> list[Row]:
        _check_state(state)
        params = _inbox_sql.filters(
            self.DIALECT, state=state, event_type=event_type, since=since
        )
        with self.transaction() as db:
            return [
                _row(r) for r in db.execute(self.SQL.newest, {**params, "limit": limit})
            ]

    def get(self, webhook_id: str) -> list[Row]:
        """Every endpoint's row for ``webhook_id``."""
        with self.transaction() as db:
            found = db.execute(self.SQL.by_webhook_id, {"webhook_id": webhook_id})
            return [_row(r) for r in found.fetchall()]

    def ping(self) -> None:
        with self.transaction() as db:
            db.execute(self.SQL.ping).fetchall()

    def ready(self) -> None:
        """Return when a delivery could be stored now; InboxUnavailable (with the reason)
        otherwise: a committed probe write, so a read-only or revoked database, a file that
        cannot be written or (SQLite) a full disk is not ready."""
        with self.transaction() as db:
            self._check_space(db)
            db.execute(self.SQL.ready_probe, {"value": repr(time.time())})

    def _check_space(self, db: typing.Any) -> None:
        """What a probe write cannot see (SQLite: the free space)."""


def _check_state(state: str | None) -> None:
    if state is not None and state not in STATES:
        raise ValueError(f"unknown state {state!r}: one of {', '.join(STATES)}")


class SQLiteInbox(Inbox):
    """The inbox in one SQLite file: every process on one host (receivers and workers) opens
    the same path. A lock held past ``timeout`` seconds, a full disk, a read-only file or any
    other SQLite error raises :class:`InboxUnavailable`."""

    DIALECT = _inbox_sql.SQLITE
    # A worker in another process learns of a new row by this counter, which SQLite keeps in
    # shared memory and changes on every commit by another connection: a cheap read.
    POLL_SECONDS = 0.01

    def __init__(
        self, path: str | Path, *, timeout: float = 5.0, create: bool = True
    ) -> None:
        if sqlite3.sqlite_version_info < (3, 35) or not _json_functions():
            raise InboxUnavailable(
                f"SQLite {sqlite3.sqlite_version} is too old for the inbox (3.35 or newer, "
                "with its JSON functions)"
            )
        self.path = str(path)
        self.timeout = timeout
        self._loop_writers: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, _LoopWriter
        ] = weakref.WeakKeyDictionary()
        if not create and not os.path.isfile(self.path):
            # Checked before SQLite opens the path, which would create the file.
            raise InboxMissing(f"there is no inbox at {self.path}: no such file")
        super().__init__(create=create)

    def __repr__(self) -> str:
        return f"SQLiteInbox({self.path!r})"

    def _after_fork(self) -> None:
        super()._after_fork()
        # Their threads and the batches they were committing are the parent's.
        _LEFT_BEHIND.append(self._loop_writers)
        self._loop_writers = weakref.WeakKeyDictionary()

    # -- the group commit of an event loop's requests (_LoopWriter), step by step --------

    def _submit(
        self, item: tuple[str, dict[str, typing.Any]]
    ) -> asyncio.Future[typing.Any]:
        loop = asyncio.get_running_loop()
        writer = self._loop_writers.get(loop)
        if writer is None:
            writer = self._loop_writers[loop] = _LoopWriter(self)
        return writer.submit(item)

    def _begin_batch(self, holder: typing.Any) -> _sqlite.Connection:
        """In the writer's thread: its connection, holding the write lock."""
        db = self._connection(holder)
        self._begin(db)
        return db

    def _write_batch(
        self, db: _sqlite.Connection, items: list[tuple[str, dict[str, typing.Any]]]
    ) -> list[bool]:
        """On the loop: whether each row was stored (False: its key was already)."""
        try:
            return [bool(db.execute(sql, row).fetchall()) for sql, row in items]
        except BaseException as exc:
            self._abort(db, exc)
            raise

    def _rollback_open(self, holder: typing.Any) -> None:
        db = getattr(holder, "db", None)
        if db is not None and db.in_transaction:
            self._abort(db, None)

    def _exists(self) -> bool:
        # Read-only: the connection the inbox uses switches the file to WAL, which would
        # write a database header into an empty or foreign file.
        uri = "file:" + urllib.parse.quote(os.path.abspath(self.path)) + "?mode=ro"
        try:
            with contextlib.closing(
                sqlite3.connect(uri, uri=True, timeout=self.timeout)
            ) as db:
                found = db.execute(
                    self.SQL.table_exists, {"name": f"{TABLE}_meta"}
                ).fetchall()
        except sqlite3.Error as exc:
            raise InboxMissing(f"there is no inbox at {self.path}: {exc}") from exc
        return bool(found)

    def _connection(self, holder: typing.Any = None) -> _sqlite.Connection:
        """This thread's connection, or ``holder``'s (see ``_sqlite.thread_connection``)."""
        # A file removed or replaced under this process is opened again at its path. Every
        # commit is on disk before it returns: a 2xx survives a power cut.
        try:
            return _sqlite.thread_connection(
                self._local if holder is None else holder,
                self.path, self.timeout, "FULL", self._schema,
            )  # fmt: skip
        except (sqlite3.Error, OSError) as exc:
            raise InboxUnavailable(f"cannot open {self.path}: {exc}") from exc

    # A transaction in steps, which the event loop's writer takes in two threads.

    # From _begin on, the connection's use-lock is held (see _sqlite.close_idle); it is
    # released once, by _commit_batch or _abort.

    def _begin(self, db: _sqlite.Connection) -> None:
        try:
            _sqlite.begin_held(db, self.timeout)
        except sqlite3.Error as exc:
            raise InboxUnavailable(f"{self.path}: {exc}") from exc

    def _commit_batch(self, db: _sqlite.Connection) -> None:
        try:
            db.execute("COMMIT")
            # A write into a file no longer at the path is a write nobody will read: not
            # stored (the receiver answers 503; the next transaction opens the path again).
            _sqlite.check_committed(db)
        except BaseException as exc:
            self._abort(db, exc)
            raise
        db.in_use.release()

    def _abort(self, db: _sqlite.Connection, exc: BaseException | None) -> None:
        """Rolls back; raises InboxUnavailable for ``exc``, a database error."""
        try:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        finally:
            db.in_use.release()
        if isinstance(exc, sqlite3.Error):
            raise InboxUnavailable(f"{self.path}: {exc}") from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connection()
        self._begin(db)
        try:
            yield db
        except BaseException as exc:
            self._abort(db, exc)
            raise
        self._commit_batch(db)

    def _lock_schema(self, db: typing.Any) -> None:
        pass  # BEGIN IMMEDIATE already holds the file's write lock

    def _check_space(self, db: typing.Any) -> None:
        _sqlite.check_space(db)

    def wait_for_work(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        try:
            seen = self._data_version()
            while not self._stored.is_set() and time.monotonic() < deadline:
                time.sleep(self.POLL_SECONDS)
                if self._data_version() != seen:
                    break
        except (sqlite3.Error, OSError):
            self._local.watch = None
            time.sleep(max(0.0, deadline - time.monotonic()))
        self._stored.clear()

    def _data_version(self) -> int:
        db = _sqlite.reusable(getattr(self._local, "watch", None))
        if db is None:
            db = _sqlite.connect(self.path, self.timeout, "FULL")
            self._local.watch = db
        with db.in_use:  # not closed meanwhile by _sqlite.close_idle
            if db.gone:
                raise sqlite3.OperationalError(
                    f"{self.path} changed; opened again next"
                )
            return int(db.execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        for name in ("db", "watch"):
            db = getattr(self._local, name, None)
            if db is not None:
                db.close()
                delattr(self._local, name)


# PostgreSQL compresses a large value it stores (TOAST) with pglz unless told otherwise.
# With lz4 (PostgreSQL 14 and newer, built with it: Debian's and the official images are)
# the server spent ~40 % less CPU on each stored 4.4 KB delivery (0.072-0.078 against
# 0.120-0.126 ms, 32-row batches). Set for the inbox's own connections where the server
# has it; a value compressed either way reads back the same, and nothing already stored
# changes.
_LZ4_WHERE_AVAILABLE = (
    "SELECT set_config('default_toast_compression', 'lz4', false) FROM pg_settings"
    " WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
)


class PostgresInbox(Inbox):
    """The inbox in PostgreSQL, for receivers and workers on many hosts (the ``postgres``
    extra). Every statement has ``statement_timeout`` (default 10 s, under Svix's 15 s), and
    any psycopg error raises :class:`InboxUnavailable`; a broken connection is opened again
    on the next call."""

    DIALECT = _inbox_sql.POSTGRES

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout: float = 5.0,
        statement_timeout: float = 10.0,
        create: bool = True,
    ) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                "PostgresInbox needs psycopg: install this package with the postgres extra"
            ) from exc
        self.dsn = dsn
        self.connect_timeout = connect_timeout
        self.statement_timeout = statement_timeout
        super().__init__(create=create)

    def __repr__(self) -> str:
        return "PostgresInbox(<dsn>)"  # the DSN may hold a password

    def _connect(self) -> psycopg.Connection[typing.Any]:
        import psycopg

        try:
            db = psycopg.connect(
                self.dsn,
                autocommit=True,
                connect_timeout=max(1, round(self.connect_timeout)),
                # psycopg prepares the statements a connection runs often, and PostgreSQL
                # may then keep one generic plan for each, made for the table as it was.
                # Made for a nearly empty inbox (a quiet one, vacuumed), every claim and
                # completion scanned the whole table once a backlog arrived (~3 ms each at
                # 20,000 rows) until autovacuum analyzed it again. Every statement here has
                # an index made for it, so scans are kept off: each plan uses its index,
                # whatever size it was made for. (Planning each execution instead,
                # plan_cache_mode=force_custom_plan, cost a drain 20-35 % on 2 cores.)
                options=(
                    f"-c statement_timeout={int(self.statement_timeout * 1000)}"
                    " -c enable_seqscan=off"
                ),
            )
            try:
                db.execute(_LZ4_WHERE_AVAILABLE)
            except BaseException:
                db.close()
                raise
        except psycopg.Error as exc:
            raise InboxUnavailable(
                f"cannot connect to PostgreSQL: {_reason(exc, self.dsn)}"
            ) from exc
        return db

    def _connection(self) -> psycopg.Connection[typing.Any]:
        db: psycopg.Connection[typing.Any] | None = getattr(self._local, "db", None)
        if db is None or db.closed or db.broken:
            db = self._connect()
            self._local.db = db
        return db

    def transaction(self) -> contextlib.AbstractContextManager[typing.Any]:
        return self._session(transaction=True)

    def _one_statement(self) -> contextlib.AbstractContextManager[typing.Any]:
        return self._session(transaction=False)

    @contextlib.contextmanager
    def _session(
        self, *, transaction: bool
    ) -> Iterator[psycopg.Connection[typing.Any]]:
        """This thread's connection (in a transaction, or in autocommit for a single
        statement), with every psycopg error as InboxUnavailable; a broken connection is
        dropped, to be opened again by the next call."""
        import psycopg

        db = self._connection()
        try:
            if transaction:
                with db.transaction():
                    yield db
            else:
                yield db
        except psycopg.Error as exc:
            if db.broken:
                self._local.db = None
            raise InboxUnavailable(f"PostgreSQL: {_reason(exc, self.dsn)}") from exc

    def _store_batch(
        self, take: typing.Callable[[], list[tuple[str, dict[str, typing.Any]]]]
    ) -> list[bool]:
        """:meth:`Inbox._store_batch` in one pipeline: the transaction and its rows are
        sent together and answered together, one round trip instead of one per row. The
        rows are taken first: PostgreSQL's transactions write side by side, with no lock
        to wait for."""
        batch = take()
        if len(batch) == 1:
            with self._one_statement() as db:
                return [bool(db.execute(batch[0][0], batch[0][1]).fetchall())]
        statement = batch[0][0]
        if any(other != statement for other, _ in batch):
            with self._one_statement() as db, db.pipeline(), db.transaction():
                cursors = [db.execute(sql, row) for sql, row in batch]
            return [bool(cursor.fetchall()) for cursor in cursors]
        # One statement for every row (the receiver's case): executemany sends them from
        # one cursor, with a third less of this process's CPU per row than an execute each.
        with self._one_statement() as db, db.pipeline(), db.transaction():
            cursor = db.cursor()
            cursor.executemany(statement, [row for _, row in batch], returning=True)
        stored = [bool(cursor.fetchall())]
        while cursor.nextset():
            stored.append(bool(cursor.fetchall()))
        return stored

    def settle(
        self,
        outcomes: Sequence[Outcome],
        *,
        owner: str = "",
        lease_seconds: float = 0.0,
        claim: int = 0,
    ) -> tuple[list[bool], list[Row]]:
        """:meth:`Inbox.settle` in one pipeline when every outcome is a success (a drain's
        usual batch): the transaction, each completion with its attempt's record, and the
        claim are sent together and answered together, one round trip instead of two per
        row. Statements still run one after another, so a row completed twice in a batch
        is "done" once and "done_again" after. A batch with a failure takes the general
        path."""
        if any(outcome.state != "done" for outcome in outcomes):
            return super().settle(
                outcomes, owner=owner, lease_seconds=lease_seconds, claim=claim
            )
        now = time.time()
        claimed = None
        with self._one_statement() as db, db.pipeline(), db.transaction():
            answers = [self._complete(db, outcome, now) for outcome in outcomes]
            if claim > 0:
                params = _claim_params(owner, lease_seconds, claim, now)
                claimed = db.execute(self.SQL.claim, params)
        recorded = [found() for found in answers]
        return recorded, _claimed(claimed.fetchall()) if claimed is not None else []

    def _complete(
        self, db: psycopg.Connection[typing.Any], outcome: Outcome, now: float
    ) -> typing.Callable[[], bool]:
        """Send one completion into the pipeline; what it answers, once it has."""
        ran = outcome.ran
        if ran is None:
            cursor = db.execute(
                self.SQL.complete_returning, {"now": now, "id": outcome.row_id}
            )
            return lambda: bool(cursor.fetchall())
        cursor = db.execute(
            self.SQL.complete_and_record,
            {
                "now": now, "id": outcome.row_id, "attempt": ran.attempt,
                "handlers": ran.handlers, "owner": ran.owner,
            },
        )  # fmt: skip

        def recorded() -> bool:
            answer = cursor.fetchone()  # the attempt's row: always one
            return answer is not None and answer[0] == "done"

        return recorded

    def _lock_schema(self, db: typing.Any) -> None:
        # Two processes creating the tables at once would otherwise collide in the catalog.
        db.execute("SELECT pg_advisory_xact_lock(%(key)s)", {"key": 0x1BC1DE47})

    def wait_for_work(self, timeout: float) -> None:
        import psycopg

        if self._stored.is_set():
            self._stored.clear()
            return
        listener: psycopg.Connection[typing.Any] | None = getattr(
            self._local, "listener", None
        )
        try:
            if listener is None or listener.closed or listener.broken:
                listener = self._connect()
                listener.execute(f"LISTEN {CHANNEL}")
                self._local.listener = listener
            for _ in listener.notifies(timeout=timeout, stop_after=1):
                pass
        except (psycopg.Error, InboxUnavailable):
            self._local.listener = None
            # The database is away: the caller's next claim reports it; do not spin.
            time.sleep(min(timeout, 1.0))

    def close(self) -> None:
        for name in ("db", "listener"):
            db = getattr(self._local, name, None)
            if db is not None:
                db.close()
                setattr(self._local, name, None)


def _json_functions() -> bool:
    """Whether this SQLite has json_each (built in from 3.38; an option before)."""
    try:
        with contextlib.closing(sqlite3.connect(":memory:")) as db:
            db.execute("SELECT value FROM json_each('[1]')").fetchall()
    except sqlite3.Error:
        return False
    return True


def _reason(exc: Exception, dsn: str) -> str:
    # psycopg's messages can run to several lines (a DETAIL, a HINT): the first says it.
    # A DSN it cannot parse is echoed in part, password included: scrubbed.
    text = str(exc).strip().splitlines()
    return redact.scrub(text[0], dsn) if text else type(exc).__name__


def from_url(url: str | Inbox, *, create: bool = True, **options: typing.Any) -> Inbox:
    """``sqlite:///absolute/path.db``, ``sqlite:relative/path.db`` or
    ``postgresql://user:pass@host:port/db`` as an inbox (an Inbox is returned as it is).
    ``sqlite:////absolute/path.db`` (SQLAlchemy's spelling) is the same absolute path;
    ``sqlite://name/...`` is refused: it reads as a host, and is one slash away from both
    other forms. ``create=False``: an inbox that does not exist yet raises
    :class:`InboxMissing` instead of being created. Raises ValueError for a URL it cannot
    use, InboxUnavailable when the database cannot be opened."""
    if isinstance(url, Inbox):
        return url
    if url.startswith("sqlite:"):
        return SQLiteInbox(sqlite_path(url), create=create, **options)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresInbox(url, create=create, **options)
    raise ValueError(
        "unknown inbox URL: use sqlite:///absolute/path.db, sqlite:relative/path.db or "
        "postgresql://user:pass@host:port/db"
    )


def sqlite_path(url: str) -> str:
    """The file a ``sqlite:`` URL names; ValueError for one that names none, or that could
    mean two different files."""
    rest = url.removeprefix("sqlite:")
    if rest.startswith("//") and not rest.startswith("///"):
        name = rest[2:]
        raise ValueError(
            f"{url!r} is ambiguous: write sqlite:///{name} for the absolute path /{name}, "
            f"or sqlite:{name} for the path relative to the working folder"
        )
    path = "/" + rest.lstrip("/") if rest.startswith("/") else rest
    if not path or path.endswith("/") or "\0" in path:
        raise ValueError(
            f"{url!r} names no file: use sqlite:///absolute/path.db or sqlite:relative/path.db"
        )
    return path
