"""Readiness (``/readyz``, ``WebhookReceiver.ready``): not ready exactly while a delivery
could not be stored, whatever the cause: a full disk, a read-only mount, a database that
refuses writes, a Redis that answers PING but refuses SET."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from incident_webhooks.dedupe import (
    RedisDedupeStore,
    SQLiteDedupeStore,
    StoreUnavailable,
)
from incident_webhooks.inbox import PostgresInbox, SQLiteInbox
from incident_webhooks.receiver import WebhookReceiver
from servers import PostgresServer, RedisServer
from test_inbox import SECRET, Recording, signed


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of 8 MiB of its own (root only: skipped elsewhere, with the reason)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    filler = folder / "filler"
    with filler.open("wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
            out.flush()
    return filler


def large_delivery(webhook_id: str) -> tuple[bytes, dict[str, str]]:
    return signed(webhook_id, padding="x" * 700_000)


def test_a_full_disk_is_not_ready_and_a_freed_one_is(small_disk: Path) -> None:
    inbox = SQLiteInbox(small_disk / "inbox.db")
    receiver = WebhookReceiver(SECRET, Recording(), inbox=inbox)
    assert receiver.ready() is None
    filler = fill(small_disk)
    assert "bytes free" in (receiver.ready() or "")
    answers = [receiver.handle(*large_delivery(f"msg_{n}")).status for n in range(3)]
    assert 503 in answers, "a delivery that needs space is refused while not ready"
    filler.unlink()
    assert receiver.ready() is None
    assert receiver.handle(*large_delivery("msg_after")).status == 200


def test_a_full_disk_under_the_sqlite_dedupe_store_is_not_ready(small_disk: Path) -> None:
    store = SQLiteDedupeStore(small_disk / "dedupe.db")
    store.ping()
    filler = fill(small_disk)
    with pytest.raises(StoreUnavailable, match="bytes free"):
        store.ping()
    filler.unlink()
    store.ping()


def test_a_read_only_mount_is_not_ready_and_deliveries_get_503(small_disk: Path) -> None:
    inbox = SQLiteInbox(small_disk / "inbox.db")
    receiver = WebhookReceiver(SECRET, Recording(), inbox=inbox)
    assert receiver.handle(*signed("msg_0")).status == 200
    inbox.close()  # a mount with files open for writing cannot be made read-only
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        assert receiver.ready() is not None
        assert receiver.handle(*signed("msg_1")).status == 503
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert receiver.ready() is None
    assert receiver.handle(*signed("msg_1")).status == 200


def test_a_postgres_database_that_refuses_writes_is_not_ready(tmp_path: Path) -> None:
    import psycopg

    with PostgresServer(tmp_path / "pg") as server:
        url = server.database(f"ro_{os.getpid()}")
        receiver = WebhookReceiver(SECRET, Recording(), inbox=PostgresInbox(url))
        assert receiver.ready() is None

        def read_only(on: bool) -> None:
            with psycopg.connect(server.url, autocommit=True) as admin:
                name = url.rsplit("/", 1)[1]
                admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {"on" if on else "off"}')
                # Sessions take the setting when they start: end the inbox's.
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))

        read_only(True)
        reasons = [receiver.ready() for _ in range(2)]  # the first may only find its session ended
        assert reasons[-1] is not None and "read-only" in reasons[-1]
        assert receiver.handle(*signed("msg_1")).status == 503
        read_only(False)
        assert [receiver.ready() for _ in range(2)][-1] is None
        assert receiver.handle(*signed("msg_1")).status == 200


def test_a_redis_that_answers_ping_but_refuses_writes_is_not_ready(tmp_path: Path) -> None:
    import redis

    with RedisServer(tmp_path / "redis") as server:
        store = RedisDedupeStore(redis.Redis.from_url(server.url))
        store.ping()
        admin = redis.Redis.from_url(server.url)
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)
        try:
            assert admin.ping()
            with pytest.raises(StoreUnavailable, match="OOM|maxmemory"):
                store.ping()
        finally:
            admin.config_set("maxmemory", 0)
        store.ping()
