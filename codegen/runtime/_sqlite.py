"""The SQLite file under the inbox and the dedupe store: opened in WAL mode, and known to be
the file at its path.

A file deleted or replaced under a running process (a clean-up job, a redeploy, a restore)
stays open: SQLite goes on writing into the unlinked inode, which nobody will read again. And
SQLite keeps its write-ahead log beside the *name* it opened, so a file reached under two
names (a hard link) is two databases that do not see each other's writes. Each transaction
therefore checks, with one ``stat`` before it begins and one after it commits, that the
connection's file is still the one at the path and has no other name; the stores reopen
before and refuse (503) after.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sqlite3
import threading
import time
import typing
import weakref

logger = logging.getLogger(__name__.rpartition(".")[0] + ".store")


# Readiness: below this much free space on the file's disk, a write is about to fail (a few
# deliveries of the largest body the receiver accepts, with the write-ahead log's growth). A
# probe write alone cannot tell: SQLite reuses the log's pages, so it succeeds on a full disk.
READY_MIN_FREE_BYTES = 4 * 1024 * 1024


class Connection(sqlite3.Connection):
    """A connection that remembers which file (device and inode) it opened."""

    path: str
    identity: tuple[int, int]
    # The file is never shorter than this once open (its first page holds the header).
    page_size: int
    # Held while a transaction is open on the connection (see close_idle).
    in_use: threading.Lock
    # Closed by close_idle, from another thread: its owner opens the path again.
    gone: bool = False


# Every connection this process opened (connect), for close_idle. A fork's child starts
# with none: the parent's are the parent's, and closing one there could delete the parent's
# write-ahead log.
_OPEN: weakref.WeakSet[Connection] = weakref.WeakSet()
_OPEN_LOCK = threading.Lock()


def _after_fork_in_child() -> None:
    global _OPEN, _OPEN_LOCK
    _OPEN, _OPEN_LOCK = weakref.WeakSet(), threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# How long a writer waits between two tries at the write lock (seconds): SQLite's own busy
# handler sleeps 1, 2, 5, 10, ... then 25 to 100 ms between tries, so under steady contention
# (two processes storing a burst, two workers draining) a lock freed a moment later waited
# for tens of milliseconds.
LOCK_RETRY_SECONDS = 0.0005


def begin_immediate(db: sqlite3.Connection, timeout: float) -> None:
    """``BEGIN IMMEDIATE``, tried again every half millisecond or so while another
    connection holds the write lock, for up to ``timeout`` seconds; then SQLite's "database
    is locked"."""
    deadline = time.monotonic() + timeout
    db.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                busy = (exc.sqlite_errorcode & 0xFF) == sqlite3.SQLITE_BUSY
                if not busy or time.monotonic() >= deadline:
                    raise
            time.sleep(LOCK_RETRY_SECONDS * (1 + random.random()))
    finally:
        db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")


def connect(path: str, timeout: float, synchronous: str) -> Connection:
    """A connection to ``path`` in WAL mode, in autocommit (transactions are explicit),
    usable from any thread: its owner makes sure one uses it at a time, holding
    ``in_use`` while a transaction is open (:func:`begin_held`), and :func:`close_idle` may
    close it from another thread when it is idle and its file is gone.

    Every statement waits up to ``timeout`` seconds for a lock, except the switch to WAL:
    SQLite answers it "database is locked" at once while another connection opens the same
    new file, as several processes starting together do, or while another connection of
    this process still has the file that was at the path open (:func:`close_idle`). That
    switch is tried again until ``timeout`` instead of failing the process's first request.
    A file with more than one name (hard link) is refused.
    """
    db = sqlite3.connect(
        path, timeout=timeout, isolation_level=None, factory=Connection,
        check_same_thread=False,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        pause = 0.005
        while True:
            try:
                db.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                busy = (exc.sqlite_errorcode & 0xFF) in (
                    sqlite3.SQLITE_BUSY,
                    sqlite3.SQLITE_LOCKED,
                )
                if not busy or time.monotonic() + pause > deadline:
                    raise
                close_idle(path)
                time.sleep(pause)
                pause = min(pause * 2, 0.1)
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.path = path
        db.page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
        db.identity = identity(path, db.page_size)
        db.in_use = threading.Lock()
    except BaseException:
        db.close()
        raise
    with _OPEN_LOCK:
        _OPEN.add(db)
    return db


def close_idle(path: str) -> int:
    """Close each connection of this process to a file that was at ``path`` and no
    longer is (whole), unless a transaction is open on it; returns how many.

    In WAL mode a connection holds a shared lock on its file for as long as it is open.
    A file truncated in place is the same file, so one connection left idle by a thread
    (the one that opened the inbox, a thread pool's) kept the connection opened again at
    the path from making it a database: every write was refused until that thread used
    its connection again, which it might never do. Each owner finds its connection
    ``gone`` and opens the path again."""
    with _OPEN_LOCK:
        found = [db for db in _OPEN if db.path == path and not db.gone]
    closed = 0
    for db in found:
        if at_path(db) or not db.in_use.acquire(blocking=False):
            continue
        try:
            db.gone = True
            with contextlib.suppress(sqlite3.Error):
                db.close()
            closed += 1
        finally:
            db.in_use.release()
    return closed


def begin_held(db: Connection, timeout: float) -> None:
    """:func:`begin_immediate`, holding ``db.in_use`` from now until :func:`end_held`
    (which the caller owes once this returns); sqlite3.OperationalError if
    :func:`close_idle` closed ``db`` since its owner took it."""
    db.in_use.acquire()
    try:
        if db.gone:
            raise sqlite3.OperationalError(
                f"{db.path} changed under this connection, which was closed; "
                "the next transaction opens the path again"
            )
        begin_immediate(db, timeout)
    except BaseException:
        db.in_use.release()
        raise


def end_held(db: Connection, statement: str) -> None:
    """``COMMIT`` or ``ROLLBACK`` after :func:`begin_held`; the connection is idle after,
    whatever the statement does."""
    try:
        db.execute(statement)
    finally:
        db.in_use.release()


def identity(path: str, min_size: int = 0) -> tuple[int, int]:
    """The device and inode of the file at ``path``; sqlite3.OperationalError for a file
    with several names, which SQLite cannot share safely, or one cut shorter than
    ``min_size`` (truncated in place: the same file, but not the database it was)."""
    found = os.stat(path)
    if found.st_size < min_size:
        raise sqlite3.OperationalError(
            f"{path} is {found.st_size} bytes, shorter than its first page: it was truncated; "
            "nothing is stored in it until it is restored or removed"
        )
    if found.st_nlink > 1:
        raise sqlite3.OperationalError(
            f"{path} has {found.st_nlink} hard links: SQLite keeps its write-ahead log "
            "beside each name, so processes using different names would not see each "
            "other's writes; give every process one name (a symbolic link is fine)"
        )
    return found.st_dev, found.st_ino


def at_path(db: Connection) -> bool:
    """Whether ``db``'s file is still the only file at its path."""
    try:
        return identity(db.path, db.page_size) == db.identity
    except (OSError, sqlite3.OperationalError):
        return False


def check_space(db: Connection) -> None:
    """For readiness: sqlite3.OperationalError when the disk holding the file is (nearly)
    full, which a probe write alone would not show."""
    folder = os.path.dirname(os.path.abspath(db.path))
    found = os.statvfs(folder)
    free = found.f_bavail * found.f_frsize
    if free < READY_MIN_FREE_BYTES:
        raise sqlite3.OperationalError(
            f"the disk holding {db.path} has {free} bytes free (under {READY_MIN_FREE_BYTES})"
        )


def check_writable(db: Connection) -> None:
    """For readiness, inside a write transaction: :func:`check_space`, and a probe write
    (a read-only file or mount fails it) that commits with the caller's transaction."""
    check_space(db)
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    # A real change of the header page, so the commit writes (and syncs) the file.
    db.execute(f"PRAGMA user_version = {1 - version % 2}")


def thread_connection(
    local: typing.Any,
    path: str,
    timeout: float,
    synchronous: str,
    schema: typing.Callable[[Connection], object],
) -> Connection:
    """This thread's connection (``local.db``; ``local`` may be any object whose owner
    uses it from one thread at a time), opened again when its file is no longer the one
    at ``path``. A connection opened again runs ``schema`` in a write transaction first:
    the file at the path may be a new, empty one. Raises what opening raises.
    """
    db = reusable(getattr(local, "db", None))
    if db is not None:
        return db
    # A connection there was is one being replaced; remembered until the schema has run.
    local.replaced = getattr(local, "db", None) is not None or getattr(
        local, "replaced", False
    )
    local.db = None
    db = connect(path, timeout, synchronous)
    if local.replaced:
        with db.in_use:
            try:
                db.execute("BEGIN IMMEDIATE")
                schema(db)
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                db.close()
                raise
    local.db, local.replaced = db, False
    return db


def reusable(db: Connection | None) -> Connection | None:
    """``db`` while its file is the one at its path; otherwise None (``db`` closed), so
    that the caller opens the path again: a restored or re-created file is used from the
    next transaction on, in every process."""
    if db is None or (not db.gone and at_path(db)):
        return db
    if db.gone:
        return None
    logger.warning(
        "%s was removed, replaced, truncated or linked under another name: opening it again",
        db.path,
    )
    with contextlib.suppress(sqlite3.Error):
        db.close()
    # Other threads' idle connections to that file would keep it locked, or its disk space.
    close_idle(db.path)
    return None


def check_committed(db: Connection) -> None:
    """After a commit: sqlite3.OperationalError if the file it went to is no longer the
    one at the path (deleted, replaced, or given a second name meanwhile)."""
    if not at_path(db):
        raise sqlite3.OperationalError(
            f"{db.path} was removed, replaced, truncated or linked under another name while "
            "this write committed: it went to a file that is no longer there whole; nothing "
            "counts as stored"
        )
