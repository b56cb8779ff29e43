"""Remembering which deliveries were handled, so that none is handled twice.

incident.io (through Svix) retries a delivery until it is answered 2xx, for about a day, and
may send the same ``webhook-id`` to two workers at once. The receiver *claims* a key (the
endpoint and the ``webhook-id``) before calling the handler, *completes* it after, and
*releases* it when the handler failed.

A claim is a :class:`Lease` with a token of its own: if the worker holding it dies
mid-handler, the lease lapses after ``lease_seconds`` and a redelivery takes a new one; while
it is live, a redelivery gets 409 and is retried later. ``release`` gives up only the lease it
is given, never a later one on the same key. ``complete`` records that the event was handled,
whoever holds the key now: a release can never undo it. Set the lease above your slowest
handler: a handler still running when its lease lapses may run a second time beside a
redelivery. A completed key is remembered for ``ttl_seconds`` (36 hours: longer than
incident.io retries).

* :class:`InMemoryDedupeStore`: one process (the default).
* :class:`SQLiteDedupeStore`: several worker processes on one host, one file.
* :class:`RedisDedupeStore` / :class:`AsyncRedisDedupeStore`: several hosts, one Redis
  (the ``redis`` extra).

A store that cannot be reached, or that answers with an error, raises
:class:`StoreUnavailable`; the receiver answers 503, dispatches nothing, and incident.io
retries. Every store is safe across ``os.fork()``: a child re-creates its locks and
connections instead of inheriting a parent's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import sqlite3
import threading
import time
import typing
import urllib.parse
import weakref
from collections import OrderedDict
from pathlib import Path

from . import _sqlite
from .errors import StoreUnavailable as StoreUnavailable  # noqa: PLC0414

if typing.TYPE_CHECKING:
    import redis
    import redis.asyncio

# Why a claim was not taken: handled already, or a live lease is held by another delivery.
Taken = typing.Literal["done", "busy"]
DEFAULT_LEASE_SECONDS = 60.0
DEFAULT_TTL_SECONDS = 36 * 3600.0
# How long readiness's probe key lives in Redis: it only has to be written.
READY_PROBE_MS = 60_000


@dataclasses.dataclass(frozen=True)
class Lease:
    """One claim on a key: only its holder can release it."""

    key: str
    token: str

    @classmethod
    def new(cls, key: str) -> Lease:
        return cls(key, "lease:" + secrets.token_hex(12))


class DedupeStore(typing.Protocol):
    """What the receiver needs from a store. Every method may raise StoreUnavailable."""

    def claim(self, key: str) -> Lease | Taken:
        """Atomically: ``"done"`` if already handled, ``"busy"`` if a live lease is held,
        otherwise take a new lease and return it."""
        ...

    def complete(self, lease: Lease) -> None:
        """The delivery was handled: remember its key as done for ``ttl_seconds``."""
        ...

    def release(self, lease: Lease) -> None:
        """The delivery failed: give this lease up (if still held), so the retry is handled."""
        ...

    def ping(self) -> None:
        """Return when the store answers; raise StoreUnavailable (with the reason) if not."""
        ...


class AsyncDedupeStore(typing.Protocol):
    """:class:`DedupeStore` with coroutine methods, for stores with an asyncio client."""

    async def claim(self, key: str) -> Lease | Taken: ...

    async def complete(self, lease: Lease) -> None: ...

    async def release(self, lease: Lease) -> None: ...

    async def ping(self) -> None: ...


# Every store object, so that a forked child can re-create what must not cross a fork: a lock
# another thread held at the fork stays held forever in the child, and a connection shared by
# two processes interleaves their traffic.
_STORES: weakref.WeakSet[typing.Any] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_STORES):
        store._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class InMemoryDedupeStore:
    """A process-local store with leases, a time limit and a size limit.

    At ``max_entries`` the oldest completed keys make room; a live lease is never dropped to
    make room (its delivery would then run twice): when only live leases are left, a claim
    raises :class:`StoreUnavailable` (503) until one ends.
    """

    def __init__(
        self,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        max_entries: int = 100_000,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.ttl_seconds = ttl_seconds
        self.lease_seconds = lease_seconds
        self.max_entries = max_entries
        # key -> expiry; each kept in the order written, which is the order of expiry, since
        # every entry of a kind lives equally long.
        self._done: OrderedDict[str, float] = OrderedDict()
        self._leases: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()
        _STORES.add(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def claim(self, key: str) -> Lease | Taken:
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            if key in self._done:
                return "done"
            if key in self._leases:
                return "busy"
            self._make_room()
            lease = Lease.new(key)
            self._leases[key] = (now + self.lease_seconds, lease.token)
            return lease

    def complete(self, lease: Lease) -> None:
        with self._lock:
            self._leases.pop(lease.key, None)
            self._done.pop(lease.key, None)
            self._done[lease.key] = time.monotonic() + self.ttl_seconds
            while len(self._done) + len(self._leases) > self.max_entries and self._done:
                self._done.popitem(last=False)

    def release(self, lease: Lease) -> None:
        with self._lock:
            held = self._leases.get(lease.key)
            if held is not None and held[1] == lease.token:
                del self._leases[lease.key]

    def ping(self) -> None:
        return None

    def _expire(self, now: float) -> None:
        while self._done and next(iter(self._done.values())) <= now:
            self._done.popitem(last=False)
        while self._leases and next(iter(self._leases.values()))[0] <= now:
            self._leases.popitem(last=False)

    def _make_room(self) -> None:
        while len(self._done) + len(self._leases) >= self.max_entries:
            if not self._done:
                raise StoreUnavailable(
                    f"the in-memory dedupe store holds {len(self._leases)} live leases "
                    f"(max_entries={self.max_entries}); none can be dropped"
                )
            self._done.popitem(last=False)


class SQLiteDedupeStore:
    """A store in one SQLite file, shared by every worker process on a host.

    WAL mode; every claim is one ``BEGIN IMMEDIATE`` transaction, so two processes never
    both claim a key. Times are wall-clock seconds, the one clock all processes share.
    A lock held past ``timeout`` seconds, or any other SQLite error, raises
    :class:`StoreUnavailable`.
    """

    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS deliveries ("
        " webhook_id TEXT PRIMARY KEY, done INTEGER NOT NULL,"
        " expires REAL NOT NULL, token TEXT NOT NULL)"
    )

    def __init__(
        self,
        path: str | Path,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        timeout: float = 5.0,
    ) -> None:
        self.path = str(path)
        self.lease_seconds = lease_seconds
        self.ttl_seconds = ttl_seconds
        self.timeout = timeout
        self._local = threading.local()
        self._claims = 0
        _STORES.add(self)
        with self._transaction() as db:
            db.execute(self.SCHEMA)

    def _after_fork(self) -> None:
        # The parent's connections are the parent's: the child opens its own.
        self._local = threading.local()

    def _connection(self) -> _sqlite.Connection:
        # One connection per thread: the receiver claims on the event loop's thread and
        # completes on the handler's.
        return _sqlite.thread_connection(
            self._local,
            self.path,
            self.timeout,
            "NORMAL",
            lambda db: db.execute(self.SCHEMA),
        )

    def _transaction(self) -> _Transaction:
        return _Transaction(self)

    def claim(self, key: str) -> Lease | Taken:
        now = time.time()
        with self._transaction() as db:
            row = db.execute(
                "SELECT done, expires FROM deliveries WHERE webhook_id = ?", (key,)
            ).fetchone()
            if row is not None and row[1] > now:
                return "done" if row[0] else "busy"
            lease = Lease.new(key)
            db.execute(
                "INSERT OR REPLACE INTO deliveries VALUES (?, 0, ?, ?)",
                (key, now + self.lease_seconds, lease.token),
            )
            self._claims += 1
            if (
                self._claims % 1000 == 0
            ):  # expired rows go now and then, not on every claim
                db.execute("DELETE FROM deliveries WHERE expires <= ?", (now,))
        return lease

    def complete(self, lease: Lease) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO deliveries VALUES (?, 1, ?, '')",
                (lease.key, time.time() + self.ttl_seconds),
            )

    def release(self, lease: Lease) -> None:
        with self._transaction() as db:
            db.execute(
                "DELETE FROM deliveries WHERE webhook_id = ? AND done = 0 AND token = ?",
                (lease.key, lease.token),
            )

    def ping(self) -> None:
        # Readiness means a claim could be written now: a committed probe write, and the
        # disk's free space (a probe alone succeeds on a full disk).
        with self._transaction() as db:
            _sqlite.check_writable(db)

    def prune(self) -> int:
        """Delete expired rows now; returns how many."""
        with self._transaction() as db:
            return db.execute(
                "DELETE FROM deliveries WHERE expires <= ?", (time.time(),)
            ).rowcount


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK``), with every SQLite failure (no
    lock, no file, a full disk, a read-only file) turned into :class:`StoreUnavailable`.
    """

    db: _sqlite.Connection

    def __init__(self, store: SQLiteDedupeStore) -> None:
        self.store = store

    def __enter__(self) -> _sqlite.Connection:
        try:
            self.db = self.store._connection()
            _sqlite.begin_held(self.db, self.store.timeout)
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"SQLite store {self.store.path}: {exc}") from exc
        return self.db

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        try:
            _sqlite.end_held(self.db, "ROLLBACK" if kind is not None else "COMMIT")
            if kind is None:
                _sqlite.check_committed(self.db)
        except sqlite3.Error as exc:
            if kind is None:
                raise StoreUnavailable(
                    f"SQLite store {self.store.path}: {exc}"
                ) from exc
        if isinstance(error, sqlite3.Error):
            raise StoreUnavailable(
                f"SQLite store {self.store.path}: {error}"
            ) from error


# Release the lease only if it is still ours: a lapsed lease may be another delivery's now.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def check_redis_url(url: str) -> str:
    """The URL as given, or ValueError: redis-py reads ``redis://host/x`` as database 0,
    which would share keys with whatever else lives there."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"{url!r} is not a redis://, rediss:// or unix:// URL")
    database = parsed.path.strip("/") if parsed.scheme != "unix" else ""
    query = urllib.parse.parse_qs(parsed.query)
    for value in [database, *query.get("db", [])]:
        if value and not (value.isascii() and value.isdigit()):
            raise ValueError(f"{url!r}: the database must be a number, not {value!r}")
    try:
        parsed.port  # noqa: B018 (reading it checks it)
    except ValueError as exc:
        raise ValueError(f"{url!r}: {exc}") from None
    return url


class _RedisKeys:
    def __init__(self, prefix: str, lease_seconds: float, ttl_seconds: float) -> None:
        self.prefix = prefix
        # Readiness's probe write; no delivery's key ("endpoint:webhook-id") lacks a colon.
        self.probe = prefix + "ready-probe"
        self.lease_ms = max(1, int(lease_seconds * 1000))
        self.ttl_ms = max(1, int(ttl_seconds * 1000))

    def key(self, key: str) -> str:
        return self.prefix + key

    @staticmethod
    def state(value: object) -> Taken:
        text = value.decode() if isinstance(value, bytes) else value
        # A lease that lapsed between SET NX and GET: busy now, claimable on the retry.
        return "done" if text == "done" else "busy"


def _redis_errors() -> tuple[type[BaseException], ...]:
    import redis

    # RedisError covers refusals too (OOM under maxmemory, READONLY on a replica, NOPERM for
    # an ACL user, WRONGTYPE, a database index out of range), not only lost connections.
    return (redis.RedisError, OSError)


class RedisDedupeStore:
    """A store in Redis, shared by every worker on every host (redis-py, sync client).

    One ``SET key <token> NX PX <lease>`` claims; ``SET key done PX <ttl>`` completes;
    a script deletes the lease only if it still holds the same token. Keys are ``prefix +``
    the receiver's key (endpoint and webhook-id).
    """

    def __init__(
        self,
        url_or_client: str | redis.Redis,
        *,
        prefix: str = "incident_webhooks:",
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
    ) -> None:
        import redis as redis_module

        self.client: redis.Redis = (
            redis_module.Redis.from_url(
                check_redis_url(url_or_client),
                socket_timeout=5,
                socket_connect_timeout=5,
            )
            if isinstance(url_or_client, str)
            else url_or_client
        )
        self._keys = _RedisKeys(prefix, lease_seconds, ttl_seconds)
        self._errors = _redis_errors()

    def claim(self, key: str) -> Lease | Taken:
        lease = Lease.new(key)
        try:
            if self.client.set(
                self._keys.key(key), lease.token, nx=True, px=self._keys.lease_ms
            ):
                return lease
            return self._keys.state(self.client.get(self._keys.key(key)))
        except self._errors as exc:
            raise StoreUnavailable(f"Redis: {exc}") from exc

    def complete(self, lease: Lease) -> None:
        try:
            self.client.set(self._keys.key(lease.key), "done", px=self._keys.ttl_ms)
        except self._errors as exc:
            raise StoreUnavailable(f"Redis: {exc}") from exc

    def release(self, lease: Lease) -> None:
        try:
            self.client.eval(_RELEASE, 1, self._keys.key(lease.key), lease.token)
        except self._errors as exc:
            raise StoreUnavailable(f"Redis: {exc}") from exc

    def ping(self) -> None:
        # A write, not PING: Redis answers PING while it refuses writes (a failed save with
        # stop-writes-on-bgsave-error, maxmemory with noeviction, a read-only replica).
        try:
            self.client.set(self._keys.probe, "1", px=READY_PROBE_MS)
        except self._errors as exc:
            raise StoreUnavailable(f"Redis: {exc}") from exc


class AsyncRedisDedupeStore:
    """:class:`RedisDedupeStore` for redis-py's asyncio client: the event loop never waits
    on the network.

    An asyncio connection belongs to the loop that opened it, so each event loop that uses
    the store gets a client of its own (the one given serves the first loop; the others get
    a copy of its connection settings): successive ``asyncio.run()`` calls, and a forked
    child, work with the same store object.
    """

    def __init__(
        self,
        url_or_client: str | redis.asyncio.Redis,
        *,
        prefix: str = "incident_webhooks:",
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
    ) -> None:
        import redis.asyncio as redis_asyncio

        self._url = (
            check_redis_url(url_or_client) if isinstance(url_or_client, str) else None
        )
        if self._url is not None:
            # Refuse an unusable URL now, not at the first delivery.
            redis_asyncio.Redis.from_url(self._url)
        self._template = url_or_client
        # Whether the client given has been handed to a loop (or crossed a fork) already.
        self._given_used = self._url is not None
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, redis.asyncio.Redis
        ] = weakref.WeakKeyDictionary()
        self._keys = _RedisKeys(prefix, lease_seconds, ttl_seconds)
        self._errors = _redis_errors()
        _STORES.add(self)

    def _after_fork(self) -> None:
        self._clients = weakref.WeakKeyDictionary()
        self._given_used = True

    @property
    def client(self) -> redis.asyncio.Redis:
        """The running event loop's client."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = self._new_client()
        return client

    def _new_client(self) -> redis.asyncio.Redis:
        import redis.asyncio as redis_asyncio

        template = self._template
        if isinstance(template, str):
            return redis_asyncio.Redis.from_url(
                template, socket_timeout=5, socket_connect_timeout=5
            )
        if not self._given_used:
            self._given_used = True
            return template
        pool = template.connection_pool
        copy = redis_asyncio.ConnectionPool(
            connection_class=pool.connection_class,
            max_connections=pool.max_connections,
            **pool.connection_kwargs,
        )
        return redis_asyncio.Redis(connection_pool=copy)

    async def claim(self, key: str) -> Lease | Taken:
        lease = Lease.new(key)
        try:
            client = self.client
            if await client.set(
                self._keys.key(key), lease.token, nx=True, px=self._keys.lease_ms
            ):
                return lease
            return self._keys.state(await client.get(self._keys.key(key)))
        except self._errors as exc:
            raise StoreUnavailable(f"Redis: {exc}") from exc

    async def complete(self, lease: Lease) -> None:
        try:
            await self.client.set(
                self._keys.key(lease.key), "done", px=self._keys.ttl_ms
            )
        except self._errors as exc:
            raise StoreUnavailable(f"Redis: {exc}") from exc

    async def release(self, lease: Lease) -> None:
        try:
            await self.client.eval(_RELEASE, 1, self._keys.key(lease.key), lease.token)
        except self._errors as exc:
            raise StoreUnavailable(f"Redis: {exc}") from exc

    async def ping(self) -> None:
        try:
            await self.client.set(self._keys.probe, "1", px=READY_PROBE_MS)
        except self._errors as exc:
            raise StoreUnavailable(f"Redis: {exc}") from exc


def from_url(url: str, **options: typing.Any) -> DedupeStore | AsyncDedupeStore:
    """``memory``, ``sqlite:PATH`` or ``redis://...`` (``rediss://`` too) as a store; for
    an asyncio server, Redis is the asyncio store. Raises ValueError for a URL it cannot
    use, and StoreUnavailable when the SQLite file cannot be opened."""
    if url == "memory":
        return InMemoryDedupeStore(**options)
    if url.startswith("sqlite:"):
        path = url.removeprefix("sqlite:").removeprefix("//")
        if not path:
            raise ValueError(
                "sqlite: needs a file path, as in sqlite:/var/lib/app/webhooks.db"
            )
        return SQLiteDedupeStore(path, **options)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return AsyncRedisDedupeStore(url, **options)
    raise ValueError(
        f"unknown dedupe store {url!r}: use memory, sqlite:PATH or redis://HOST:PORT/DB"
    )
