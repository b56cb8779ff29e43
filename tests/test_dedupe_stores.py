"""Exactly once across workers and machines: the dedupe stores, proven with real servers
(redis-server, uvicorn with several worker processes) and real crashes. No fakes, no mocks."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from incident_webhooks import WebhookHandlers, WebhookReceiver, testing
from incident_webhooks.dedupe import (
    AsyncRedisDedupeStore,
    InMemoryDedupeStore,
    Lease,
    RedisDedupeStore,
    SQLiteDedupeStore,
    StoreUnavailable,
    from_url,
)
from servers import (
    HTTP,
    AppServer,
    LoadClient,
    RedisServer,
    records,
    started,
    wait_until,
)
from test_receiver import SECRET

GRANTED = "private_incident.membership_granted_v1"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


# -- every store keeps the same contract -----------------------------------------------------


class SyncFacade:
    """The asyncio Redis store behind the synchronous contract, to run the same tests."""

    def __init__(self, store: AsyncRedisDedupeStore) -> None:
        self.store = store
        self.loop = asyncio.new_event_loop()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)
        return lambda *args: self.loop.run_until_complete(method(*args))


@pytest.fixture(params=["memory", "sqlite", "redis", "redis-asyncio"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    kind = request.param
    prefix = f"test:{time.monotonic_ns()}:"

    def make(**options: float) -> Any:
        if kind == "memory":
            return InMemoryDedupeStore(**options)  # type: ignore[arg-type]
        if kind == "sqlite":
            return SQLiteDedupeStore(tmp_path / "dedupe.db", **options)
        server = request.getfixturevalue("redis_server")
        if kind == "redis":
            return RedisDedupeStore(server.url, prefix=prefix, **options)
        return SyncFacade(AsyncRedisDedupeStore(server.url, prefix=prefix, **options))

    return make


def leased(store: Any, key: str) -> Lease:
    """Claim ``key``, which must be free, and return the lease."""
    lease = store.claim(key)
    assert isinstance(lease, Lease), f"{key} was {lease!r}, not claimed"
    return lease


def test_a_claim_is_taken_once_then_busy_then_done_after_completion(make_store: Any) -> None:
    store = make_store()
    lease = leased(store, "a")
    assert store.claim("a") == "busy"
    store.complete(lease)
    assert store.claim("a") == "done"
    leased(store, "b")


def test_a_released_claim_can_be_claimed_again(make_store: Any) -> None:
    store = make_store()
    store.release(leased(store, "a"))
    leased(store, "a")


def test_a_lease_lapses_so_a_crashed_workers_claim_does_not_block_forever(make_store: Any) -> None:
    # A second, not a fraction: "busy" must not depend on how soon a busy machine gets
    # from one call to the next.
    store = make_store(lease_seconds=1)
    leased(store, "a")
    assert store.claim("a") == "busy"
    time.sleep(1.2)
    leased(store, "a")


def test_a_completion_outlives_the_lease(make_store: Any) -> None:
    store = make_store(lease_seconds=0.2, ttl_seconds=30)
    store.complete(leased(store, "a"))
    time.sleep(0.3)
    assert store.claim("a") == "done"


def test_a_completion_is_forgotten_after_its_ttl(make_store: Any) -> None:
    store = make_store(lease_seconds=5, ttl_seconds=0.3)
    store.complete(leased(store, "a"))
    time.sleep(0.45)
    leased(store, "a")


def test_releasing_a_lapsed_lease_does_not_free_another_workers_claim(make_store: Any) -> None:
    first, second = make_store(lease_seconds=0.2), make_store(lease_seconds=30)
    if isinstance(first, InMemoryDedupeStore):
        pytest.skip("two workers never share one process's memory")
    lapsed = leased(first, "a")
    time.sleep(0.3)
    leased(second, "a")
    first.release(lapsed)  # the first worker's handler failed, long after its lease
    assert second.claim("a") == "busy"


def test_each_claim_has_its_own_token_so_one_store_object_never_frees_its_next_claim(
    make_store: Any,
) -> None:
    # One store object, as one server process has: the lease of a slow handler lapses, a
    # redelivery claims the key, then the slow handler fails and releases its own lease.
    store = make_store(lease_seconds=1)  # the second claim must still hold when checked
    lapsed = leased(store, "a")
    time.sleep(1.2)
    second = leased(store, "a")
    store.release(lapsed)
    assert store.claim("a") == "busy", "a third delivery would run beside the second"
    store.release(second)
    leased(store, "a")


def test_a_completion_after_a_lapse_is_never_undone_by_the_next_claims_release(
    make_store: Any,
) -> None:
    store = make_store(lease_seconds=0.2)
    lapsed = leased(store, "a")
    time.sleep(0.3)
    second = leased(store, "a")
    store.complete(lapsed)  # the slow handler did succeed: the event was handled
    store.release(second)  # the redelivery's handler failed
    assert store.claim("a") == "done", "a third delivery would handle it a second time"


def test_concurrent_claims_from_many_threads_give_exactly_one_winner(make_store: Any) -> None:
    stores = [make_store() for _ in range(4)]
    if isinstance(stores[0], InMemoryDedupeStore):
        stores = stores[:1]  # one process's memory: shared by its threads, by design
    if isinstance(stores[0], SyncFacade):
        pytest.skip("one event loop per store; the asyncio client is raced by the two-server test")
    results: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def worker(n: int) -> None:
        store = stores[n % len(stores)]
        start.wait()
        for i in range(50):
            outcome = store.claim(f"id-{i}")
            with lock:
                results.append(f"{i}:{'claimed' if isinstance(outcome, Lease) else outcome}")
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wins = Counter(r.split(":")[0] for r in results if r.endswith(":claimed"))
    assert sorted(wins.values()) == [1] * 50


def test_redis_keys_live_under_the_prefix_so_endpoints_can_share_one_redis(
    redis_server: RedisServer,
) -> None:
    import redis

    one = RedisDedupeStore(redis_server.url, prefix="endpoint-one:")
    two = RedisDedupeStore(redis.Redis.from_url(redis_server.url), prefix="endpoint-two:")
    lease = leased(one, "same-id")
    leased(two, "same-id")
    one.complete(lease)
    assert two.claim("same-id") == "busy"
    assert one.client.get("endpoint-one:same-id") == b"done"


def test_store_urls() -> None:
    assert isinstance(from_url("memory"), InMemoryDedupeStore)
    with pytest.raises(ValueError, match="unknown dedupe store"):
        from_url("postgres://x")
    with pytest.raises(ValueError, match="needs a file path"):
        from_url("sqlite:")


# -- an unreachable store is a 503, never a 2xx or a 500 -------------------------------------


def signed(msg_id: str) -> tuple[bytes, dict[str, str]]:
    body = testing.example_body(GRANTED)
    return body, testing.sign(body, SECRET, msg_id=msg_id)


class Counting(WebhookHandlers):
    def __init__(self) -> None:
        self.calls = 0

    def dispatch(self, event: Any) -> None:
        self.calls += 1


def first_use_together(tmp_path: Path, use: Callable[[Path], object], rounds: int = 40) -> list[str]:
    """The errors of four threads, each with a store object (so a connection) of its own,
    first using the same new SQLite file at the same moment, ``rounds`` times over: the
    worker processes of a server started on a new file do that."""
    errors: list[str] = []

    def run(path: Path, barrier: threading.Barrier) -> None:
        barrier.wait()
        try:
            use(path)
        except Exception as exc:  # noqa: BLE001 (every error is the finding)
            errors.append(f"{type(exc).__name__}: {exc}")

    for n in range(rounds):
        barrier = threading.Barrier(4)
        threads = [threading.Thread(target=run, args=(tmp_path / f"new-{n}.db", barrier)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return errors


def test_processes_starting_together_on_a_new_sqlite_file_all_get_the_store(tmp_path: Path) -> None:
    # SQLite refuses the switch to WAL at once ("database is locked", no busy wait) while
    # another connection opens the same new file: about one start in ten failed here.
    assert first_use_together(tmp_path, lambda path: SQLiteDedupeStore(path).claim("k")) == []


def test_a_locked_sqlite_file_gives_503_with_retry_after_and_dispatches_nothing(tmp_path: Path) -> None:
    path = tmp_path / "dedupe.db"
    handlers = Counting()
    receiver = WebhookReceiver(SECRET, handlers, dedupe=SQLiteDedupeStore(path, timeout=0.2))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    answer = receiver.handle(*signed("msg_locked"))
    assert answer.status == 503 and answer.headers["retry-after"] == "5"
    assert handlers.calls == 0
    holder.execute("ROLLBACK")
    assert receiver.handle(*signed("msg_locked")).status == 200
    assert handlers.calls == 1


def test_an_unreachable_redis_gives_503_and_dispatches_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer(tmp_path / "redis")  # never started: nothing listens on its port
    handlers = Counting()
    receiver = WebhookReceiver(SECRET, handlers, dedupe=RedisDedupeStore(server.url))
    answer = receiver.handle(*signed("msg_down"))
    assert answer.status == 503
    assert handlers.calls == 0
    assert "503, dedupe store unavailable" in caplog.text
    areceiver = WebhookReceiver(SECRET, handlers, dedupe=AsyncRedisDedupeStore(server.url))
    assert asyncio.run(areceiver.handle_async(*signed("msg_down"))).status == 503
    assert handlers.calls == 0


def test_a_store_that_fails_after_the_handler_ran_still_acknowledges_it(tmp_path: Path) -> None:
    class CompletionFails(InMemoryDedupeStore):
        def complete(self, lease: Lease) -> None:
            raise StoreUnavailable("gone")

    handlers = Counting()
    receiver = WebhookReceiver(SECRET, handlers, dedupe=CompletionFails())
    # The handler ran: a 5xx would make incident.io send it again and it would run twice.
    assert receiver.handle(*signed("msg_done")).status == 200
    assert handlers.calls == 1


# -- several worker processes, several machines ----------------------------------------------


async def deliver_twice_concurrently(
    urls: tuple[str, str], count: int, prefix: str
) -> tuple[Counter[int], list[tuple[bytes, dict[str, str]]]]:
    """Send every delivery twice at the same moment (to two URLs); statuses, and the 409s."""
    statuses: Counter[int] = Counter()
    busy: list[tuple[bytes, dict[str, str]]] = []
    async with LoadClient(connections=32) as client:

        async def post(url: str, body: bytes, headers: dict[str, str]) -> None:
            status, _ = await client.post(url, body, headers)
            statuses[status] += 1
            if status == 409:
                busy.append((body, headers))

        async def one(n: int) -> None:
            body = json.dumps({**json.loads(testing.example_body(GRANTED)), "n": n}).encode()
            headers = testing.sign(body, SECRET, msg_id=f"{prefix}{n}")
            await asyncio.gather(post(urls[0], body, headers), post(urls[1], body, headers))

        await asyncio.gather(*(one(n) for n in range(count)))
    return statuses, busy


def retry(url: str, deliveries: list[tuple[bytes, dict[str, str]]]) -> Counter[str]:
    """Redeliver later, as incident.io retries a 409; the answer says what the receiver did."""
    answers: Counter[str] = Counter()
    for body, headers in deliveries:
        response = HTTP.post(url, content=body, headers=headers, timeout=30)
        answers[f"{response.status_code} {response.json().get('status', '')}"] += 1
    return answers


def assert_each_handled_once(record: Path, prefix: str, count: int) -> Counter[str]:
    handled = Counter(i for what, _, i in records(record) if what == "handled" and i.startswith(prefix))
    assert len(handled) == count, f"{count - len(handled)} deliveries were never handled"
    twice = [i for i, n in handled.items() if n > 1]
    assert not twice, f"handled more than once: {twice[:5]}"
    return handled


def test_four_workers_sharing_one_sqlite_file_handle_each_of_1000_double_deliveries_once(
    tmp_path: Path,
) -> None:
    # Two uvicorn servers of two workers each: the two copies of a delivery always reach
    # two different processes (one server's workers may share one copy's connection).
    record = tmp_path / "calls.log"
    store = f"sqlite:{tmp_path / 'dedupe.db'}"
    one = AppServer(record, store, secret=SECRET, workers=2)
    two = AppServer(record, store, secret=SECRET, workers=2)
    with started(one, two):
        urls = (one.url + "/webhooks", two.url + "/webhooks")
        statuses, busy = asyncio.run(deliver_twice_concurrently(urls, 1000, "sqlite-"))
        assert set(statuses) <= {200, 409}, statuses
        later = retry(urls[0], busy)
        pids = {pid for _, pid, _ in records(record)}
    assert_each_handled_once(record, "sqlite-", 1000)
    assert later == Counter({"200 duplicate": len(busy)})
    assert statuses[200] + statuses[409] == 2000
    assert len(pids) >= 2, "the deliveries did not spread over the worker processes"
    print(f"sqlite, 4 workers: {dict(statuses)}, 409s retried: {dict(later)}, pids: {len(pids)}")


def test_the_same_load_with_per_process_memory_handles_deliveries_twice(tmp_path: Path) -> None:
    """The control: without a shared store the test above would see duplicates, so its
    'exactly once' is the store's doing, not the traffic's."""
    record = tmp_path / "calls.log"
    one, two = AppServer(record, "memory", secret=SECRET), AppServer(record, "memory", secret=SECRET)
    with started(one, two):
        asyncio.run(deliver_twice_concurrently((one.url + "/webhooks", two.url + "/webhooks"), 100, "m-"))
    handled = Counter(i for what, _, i in records(record) if what == "handled")
    assert sum(1 for n in handled.values() if n > 1) > 50


def test_two_servers_sharing_one_redis_handle_each_of_1000_double_deliveries_once(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    record = tmp_path / "calls.log"
    store = f"{redis_server.url}"
    one = AppServer(record, store, secret=SECRET, workers=2)
    two = AppServer(record, store, secret=SECRET, workers=2)
    with started(one, two):
        urls = (one.url + "/webhooks", two.url + "/webhooks")
        statuses, busy = asyncio.run(deliver_twice_concurrently(urls, 1000, "redis-"))
        assert set(statuses) <= {200, 409}, statuses
        later = retry(urls[1], busy)
    assert_each_handled_once(record, "redis-", 1000)
    assert later == Counter({"200 duplicate": len(busy)})
    print(f"redis, 2 servers x 2 workers: {dict(statuses)}, 409s retried: {dict(later)}")


def test_a_worker_killed_mid_handler_leaves_a_lease_that_lapses_then_the_redelivery_is_handled_once(
    tmp_path: Path,
) -> None:
    record = tmp_path / "calls.log"
    store = f"sqlite:{tmp_path / 'dedupe.db'}"
    env = {"BLOCK_ID": "msg_crash", "LEASE_SECONDS": "3"}
    with AppServer(record, store, secret=SECRET, workers=2, **env) as app:
        url = app.url + "/webhooks"
        body, headers = signed("msg_crash")
        try:
            HTTP.post(url, content=body, headers=headers, timeout=0.5)
        except httpx.TimeoutException:
            pass  # the handler blocks: the answer never comes
        wait_until(lambda: any(w == "start" for w, _, _ in records(record)), "the blocking handler")
        (pid,) = [p for w, p, _ in records(record) if w == "start"]
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        during = retry(url, [(body, headers)])
        assert during == Counter({"409 ": 1}), "a live lease must answer 409"
        while time.monotonic() - killed_at < 3.2:
            time.sleep(0.1)
        after = retry(url, [(body, headers)])
        again = retry(url, [(body, headers)])
    assert after == Counter({"200 ok": 1})
    assert again == Counter({"200 duplicate": 1})
    handled = [(p, i) for w, p, i in records(record) if w == "handled"]
    assert len(handled) == 1 and handled[0][0] != pid
    print(f"crash: worker {pid} killed mid-handler; 409 during the 3 s lease; handled once after")


def test_redis_stopped_mid_run_gives_503s_and_after_it_returns_nothing_is_lost_or_doubled(
    tmp_path: Path,
) -> None:
    record = tmp_path / "calls.log"
    with RedisServer(tmp_path / "redis") as redis_server, AppServer(record, redis_server.url, secret=SECRET) as app:
        url = app.url + "/webhooks"
        first = [signed(f"before-{n}") for n in range(50)]
        assert retry(url, first) == Counter({"200 ok": 50})
        redis_server.stop()
        outage = [signed(f"during-{n}") for n in range(50)]
        with httpx.Client(timeout=30, trust_env=False) as client:
            statuses = Counter(client.post(url, content=b, headers=h).status_code for b, h in outage)
        assert statuses == Counter({503: 50})
        assert not [i for _, _, i in records(record) if i.startswith("during-")], "dispatched in an outage"
        redis_server.start()
        # incident.io retries the 503s, and for good measure everything again.
        retried = retry(url, outage)
        everything = retry(url, first + outage)
    assert retried == Counter({"200 ok": 50})
    assert everything == Counter({"200 duplicate": 100})
    assert_each_handled_once(record, "before-", 50)
    assert_each_handled_once(record, "during-", 50)
    print("redis outage: 50 x 503, none dispatched; after restart 50 handled, 100 duplicates")


def test_a_server_restarted_on_the_same_sqlite_file_answers_a_redelivery_as_duplicate(
    tmp_path: Path,
) -> None:
    record = tmp_path / "calls.log"
    store = f"sqlite:{tmp_path / 'dedupe.db'}"
    body, headers = signed("msg_restart")
    with AppServer(record, store, secret=SECRET) as app:
        assert retry(app.url + "/webhooks", [(body, headers)]) == Counter({"200 ok": 1})
    with AppServer(record, store, secret=SECRET, workers=2) as app:
        assert retry(app.url + "/webhooks", [(body, headers)]) == Counter({"200 duplicate": 1})
    assert_each_handled_once(record, "msg_restart", 1)
