"""The promises of the generated package under store faults, shared stores, forks, upgrades
and hostile input: no event lost, none handled twice, every failure a clear answer. Real
redis-server, real forks, real subprocesses; no fakes of a store we ship."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import typing
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ROOT, Recorder
from incident_webhooks import (
    WebhookError,
    WebhookHandlers,
    WebhookReceiver,
    events,
    testing,
)
from incident_webhooks.app import create_app
from incident_webhooks.dedupe import (
    AsyncRedisDedupeStore,
    InMemoryDedupeStore,
    Lease,
    RedisDedupeStore,
    SQLiteDedupeStore,
    StoreUnavailable,
)
from packages import run_main
from servers import RedisServer, free_port
from starlette.applications import Starlette
from starlette.routing import Mount
from test_receiver import SECRET

GRANTED = "private_incident.membership_granted_v1"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


def signed(msg_id: str, event_type: str = GRANTED) -> tuple[bytes, dict[str, str]]:
    body = testing.example_body(event_type)
    return body, testing.sign(body, SECRET, msg_id=msg_id)


class Counting(WebhookHandlers):
    def __init__(self, during: Any = None) -> None:
        self.calls = 0
        self.during = during

    def dispatch(self, event: Any) -> None:
        self.calls += 1
        if self.during is not None:
            self.during()


# -- row 1: a store error after the handler ran is never a handler failure --------------------


def test_redis_refusing_the_completion_out_of_memory_still_acknowledges_the_handled_event(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    import redis

    admin = redis.Redis.from_url(redis_server.url)
    store = RedisDedupeStore(redis_server.url, prefix=f"oom:{time.monotonic_ns()}:")
    # The handler runs, then Redis refuses every write (maxmemory reached, noeviction).
    full = Counting(during=lambda: admin.config_set("maxmemory", "1"))
    receiver = WebhookReceiver(SECRET, full, dedupe=store)
    admin.config_set("maxmemory-policy", "noeviction")
    try:
        answer = receiver.handle(*signed("msg_oom"))
    finally:
        admin.config_set("maxmemory", "0")
    assert answer.status == 200, "a 5xx makes incident.io redeliver an event that was handled"
    assert full.calls == 1
    assert "could not complete the claim" in caplog.text and "maxmemory" in caplog.text


@pytest.mark.parametrize("where", ["complete", "release"])
def test_any_exception_from_a_store_after_the_handler_keeps_the_handlers_answer(where: str) -> None:
    class Broken(InMemoryDedupeStore):
        def complete(self, lease: Lease) -> None:
            raise RuntimeError("a store bug") if where == "complete" else None

        def release(self, lease: Lease) -> None:
            raise KeyError("a store bug")

    handlers = Recorder()
    handlers.fail = where == "release"
    receiver = WebhookReceiver(SECRET, handlers, dedupe=Broken())
    assert receiver.handle(*signed("msg_x")).status == (200 if where == "complete" else 500)
    areceiver = WebhookReceiver(SECRET, handlers, dedupe=Broken())
    assert asyncio.run(areceiver.handle_async(*signed("msg_y"))).status == (
        200 if where == "complete" else 500
    )


# -- row 2: any store error at claim time is a 503; unusable URLs are refused early -----------


def _redis_503(store: Any, caplog: pytest.LogCaptureFixture) -> None:
    handlers = Counting()
    receiver = WebhookReceiver(SECRET, handlers, dedupe=store)
    answer = (
        asyncio.run(receiver.handle_async(*signed("msg_claim")))
        if isinstance(store, AsyncRedisDedupeStore)
        else receiver.handle(*signed("msg_claim"))
    )
    assert answer.status == 503 and answer.headers["retry-after"] == "5", answer
    assert handlers.calls == 0
    assert "503, dedupe store unavailable" in caplog.text


@pytest.mark.parametrize("kind", ["sync", "asyncio"])
@pytest.mark.parametrize("fault", ["db-out-of-range", "acl-without-set", "wrongtype", "oom"])
def test_every_redis_refusal_at_claim_time_is_a_503_with_retry_after(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture, kind: str, fault: str
) -> None:
    import redis

    admin = redis.Redis.from_url(redis_server.url)
    url, prefix = redis_server.url, f"claim:{fault}:{kind}:"
    if fault == "db-out-of-range":
        url = url.rsplit("/", 1)[0] + "/99"
    elif fault == "acl-without-set":
        admin.execute_command("ACL", "SETUSER", "reader", "on", ">pw", "~*", "+get", "+ping", "+eval")
        url = url.replace("redis://", "redis://reader:pw@")
    elif fault == "wrongtype":
        admin.delete(prefix + "default:msg_claim")
        admin.lpush(prefix + "default:msg_claim", "not ours")
    cls = RedisDedupeStore if kind == "sync" else AsyncRedisDedupeStore
    store = cls(url, prefix=prefix)
    if fault == "oom":
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")
    try:
        _redis_503(store, caplog)
    finally:
        admin.config_set("maxmemory", "0")


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1/x", "redis://127.0.0.1:6379/0x", "redis://127.0.0.1/?db=two",
     "redis://127.0.0.1:99999/0", "redis://127.0.0.1/1/2"],
)  # fmt: skip
def test_a_redis_url_whose_database_or_port_is_not_a_number_is_refused_when_built(url: str) -> None:
    for cls in (RedisDedupeStore, AsyncRedisDedupeStore):
        with pytest.raises(ValueError, match="redis://"):
            cls(url)


def serve(*argv: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "incident_webhooks", "serve", "--port", str(free_port()), *argv],
        env={**os.environ, "INCIDENT_WEBHOOK_SECRET": SECRET, **(env or {})},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("where", ["closed-port", "db-out-of-range", "not-a-number"])
def test_serve_fails_at_start_up_in_one_line_when_the_redis_store_is_unusable(
    redis_server: RedisServer, where: str
) -> None:
    url = {
        "closed-port": f"redis://127.0.0.1:{free_port()}/0",
        "db-out-of-range": redis_server.url.rsplit("/", 1)[0] + "/99",
        "not-a-number": redis_server.url.rsplit("/", 1)[0] + "/x",
    }[where]
    result = serve("--dedupe", url)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: --dedupe {url}: ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


# -- row 3: endpoints sharing one store each handle their own copy ---------------------------


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
def test_two_mounted_endpoints_sharing_one_store_each_handle_the_same_webhook_id(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store: Any = {
        "memory": lambda: InMemoryDedupeStore(),
        "sqlite": lambda: SQLiteDedupeStore(tmp_path / "shared.db"),
        "redis": lambda: AsyncRedisDedupeStore(
            request.getfixturevalue("redis_server").url, prefix=f"ep:{time.monotonic_ns()}:"
        ),
    }[kind]()
    one, two = Recorder(), Recorder()
    app = Starlette(
        routes=[
            Mount("/team-a", create_app(one, SECRET, dedupe=store)),
            Mount("/team-b", create_app(two, SECRET, dedupe=store)),
        ]
    )

    async def deliver() -> list[tuple[int, str]]:
        transport = httpx.ASGITransport(app=app)
        answers = []
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            body, headers = signed("msg_same_for_every_endpoint")
            for url in ("/team-a/webhooks", "/team-b/webhooks", "/team-a/webhooks"):
                response = await client.post(url, content=body, headers=headers)
                answers.append((response.status_code, response.json().get("status", "")))
        return answers

    assert asyncio.run(deliver()) == [(200, "ok"), (200, "ok"), (200, "duplicate")]
    assert len(one.calls) == 1 and len(two.calls) == 1


def test_receivers_named_as_endpoints_keep_apart_in_one_store() -> None:
    store = InMemoryDedupeStore()
    a = WebhookReceiver(SECRET, Counting(), dedupe=store, endpoint="billing")
    b = WebhookReceiver(SECRET, Counting(), dedupe=store, endpoint="billing:x")
    c = WebhookReceiver(SECRET, Counting(), dedupe=store, endpoint="billing")
    body, headers = signed("x:msg")
    assert a.handle(body, headers).body == b'{"status": "ok"}'
    assert b.handle(body, headers).body == b'{"status": "ok"}'
    assert c.handle(body, headers).body == b'{"status": "duplicate"}'
    with pytest.raises(ValueError, match="endpoint"):
        WebhookReceiver(SECRET, Counting(), endpoint="")


# -- row 5: a live lease is never evicted ------------------------------------------------------


def test_a_full_in_memory_store_evicts_completed_entries_first_and_never_a_live_lease() -> None:
    store = InMemoryDedupeStore(max_entries=3)
    done = store.claim("done-1")
    assert isinstance(done, Lease)
    store.complete(done)
    live = [store.claim(f"live-{n}") for n in range(2)]
    assert all(isinstance(lease, Lease) for lease in live)
    assert isinstance(store.claim("new"), Lease), "the completed entry made room"
    with pytest.raises(StoreUnavailable, match="live leases"):
        store.claim("one-too-many")
    for n in range(2):
        assert store.claim(f"live-{n}") == "busy", "a live lease was evicted"
    receiver = WebhookReceiver(SECRET, Counting(), dedupe=store)
    assert receiver.handle(*signed("msg_full")).status == 503


def test_many_claims_through_a_small_in_memory_store_never_lose_a_live_lease() -> None:
    store = InMemoryDedupeStore(max_entries=50)
    rng = random.Random(7)
    live: dict[str, Lease] = {}
    for n in range(5000):
        if live and rng.random() < 0.5:
            key = rng.choice(sorted(live))
            store.complete(live.pop(key))
            continue
        try:
            lease = store.claim(f"k{n}")
        except StoreUnavailable:
            assert len(live) == 50
            continue
        assert isinstance(lease, Lease)
        live[lease.key] = lease
        for key in live:
            assert store.claim(key) == "busy"


# -- row 6: the asyncio Redis store across event loops ------------------------------------------


def test_the_asyncio_redis_store_works_from_successive_event_loops(redis_server: RedisServer) -> None:
    import redis.asyncio

    for given in (redis_server.url, redis.asyncio.Redis.from_url(redis_server.url)):
        store = AsyncRedisDedupeStore(given, prefix=f"loops:{time.monotonic_ns()}:")
        for n in range(3):
            lease = asyncio.run(store.claim(f"id-{n}"))
            assert isinstance(lease, Lease)
            asyncio.run(store.complete(lease))
            assert asyncio.run(store.claim(f"id-{n}")) == "done"
            asyncio.run(store.ping())


# -- row 7: readiness says what the deliveries would get ------------------------------------


def test_readyz_is_503_with_the_reason_while_the_store_is_down_and_healthz_stays_200(
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path / "redis")
    app = create_app(Counting(), SECRET, dedupe=AsyncRedisDedupeStore(server.url))

    async def probe() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            ready = await client.get("/readyz")
            alive = await client.get("/healthz")
            delivery = await client.post("/webhooks", content=signed("msg_r")[0], headers=signed("msg_r")[1])
        return {"ready": ready, "alive": alive.status_code, "delivery": delivery.status_code}

    down = asyncio.run(probe())
    assert down["ready"].status_code == 503 and down["ready"].json()["reason"] == "the dedupe store is unavailable"
    assert down["alive"] == 200 and down["delivery"] == 503
    with server:
        up = asyncio.run(probe())
    assert up["ready"].status_code == 200 and up["alive"] == 200 and up["delivery"] == 200


def test_readiness_of_a_locked_sqlite_store_and_of_the_synchronous_receiver(tmp_path: Path) -> None:
    import sqlite3

    store = SQLiteDedupeStore(tmp_path / "d.db", timeout=0.1)
    receiver = WebhookReceiver(SECRET, Counting(), dedupe=store)
    assert receiver.ready() is None
    holder = sqlite3.connect(tmp_path / "d.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    assert "locked" in (receiver.ready() or "")
    holder.execute("ROLLBACK")
    assert receiver.ready() is None


# -- row 8: fork while another thread holds a lock ---------------------------------------------


def _in_a_forked_child(work: Any, timeout: float = 30) -> int:
    """Run ``work`` in a forked child; its exit code (1 if it raised, -9 if it hung)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            work()
        except BaseException:  # noqa: BLE001 (the child's only way to say it failed)
            os._exit(1)
        os._exit(0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -9


def _hold(lock: Any) -> tuple[threading.Event, threading.Event]:
    """Another thread takes ``lock`` and keeps it until told to let go."""
    taken, let_go = threading.Event(), threading.Event()

    def holder() -> None:
        with lock:
            taken.set()
            let_go.wait(60)

    threading.Thread(target=holder, daemon=True).start()
    assert taken.wait(10)
    return taken, let_go


def test_a_child_forked_while_a_thread_builds_a_model_parses_every_event_type() -> None:
    _, let_go = _hold(events._PARSER.building)
    # The fork waits for a build in progress (tests/test_fork_safety.py has every entry):
    # the other thread finishes its build a moment later.
    threading.Timer(0.3, let_go.set).start()
    try:
        status = _in_a_forked_child(
            lambda: [events.parse_event(testing.example_body(t)) for t in testing.event_types()]
        )
    finally:
        let_go.set()
    assert status == 0, "the child hung on the model-building lock" if status == -9 else status


def test_a_child_forked_while_a_thread_holds_a_stores_lock_can_claim(tmp_path: Path) -> None:
    memory = InMemoryDedupeStore()
    sqlite_store = SQLiteDedupeStore(tmp_path / "fork.db")
    assert isinstance(sqlite_store.claim("parent"), Lease)  # the parent's connection exists
    _, let_go = _hold(memory._lock)
    try:
        status = _in_a_forked_child(
            lambda: [
                isinstance(memory.claim("child"), Lease) or os._exit(3),
                isinstance(sqlite_store.claim("child"), Lease) or os._exit(4),
            ]
        )
    finally:
        let_go.set()
    assert status == 0, status


def test_a_forked_child_uses_its_own_asyncio_redis_connections(redis_server: RedisServer) -> None:
    store = AsyncRedisDedupeStore(redis_server.url, prefix=f"fork:{time.monotonic_ns()}:")
    asyncio.run(store.ping())  # the parent's client exists before the fork

    def child() -> None:
        lease = asyncio.run(store.claim("from-child"))
        assert isinstance(lease, Lease)

    assert _in_a_forked_child(child) == 0
    assert asyncio.run(store.claim("from-child")) == "busy"


# -- row 9: a server keeps what it started with -------------------------------------------------


UPGRADE = """
import asyncio, json, shutil, sys
import httpx
sys.path.insert(0, {where!r})
import incident_webhooks, incident_webhooks.testing as testing
from incident_webhooks import WebhookHandlers
from incident_webhooks.app import create_app

app = create_app(WebhookHandlers(), {secret!r})
# The package on disk changes under the running server (pip install of a newer spec).
shutil.rmtree({where!r} + "/incident_webhooks/models")

async def main():
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        out = []
        for n, (t, body) in enumerate([(t, testing.example_body(t)) for t in testing.event_types()]
                                      + [("junk", b"{{not json"), ("other", b'{{"event_type": "x.y"}}')]):
            headers = testing.sign(body, {secret!r}, msg_id=f"msg_{{n}}")
            r = await client.post("/webhooks", content=body, headers=headers)
            out.append(r.status_code)
        print(json.dumps(out))

asyncio.run(main())
"""


def test_a_running_server_keeps_serving_after_its_package_is_replaced_on_disk(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "generated" / "incident_webhooks", tmp_path / "incident_webhooks")
    code = UPGRADE.format(where=str(tmp_path), secret=SECRET)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    statuses = json.loads(result.stdout)
    assert statuses[:-2] == [200] * (len(statuses) - 2), statuses
    assert statuses[-2:] == [400, 200], "bad JSON is 400 and an unknown type 200, not 500"


# -- row 10: no input makes parse_event raise anything but WebhookError -----------------------


class _Hostile(Mapping[str, Any]):
    """A mapping whose every method fails, as a caller's own type might."""

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("no")

    def __iter__(self) -> Iterator[str]:
        raise OSError("no")

    def __len__(self) -> int:
        return 1

    def get(self, key: str, default: Any = None) -> Any:
        raise ValueError("no")


def _hostile_inputs(seed: int) -> Iterator[Any]:
    rng = random.Random(seed)
    good = testing.example_body(GRANTED).decode()
    yield "\udc80"
    yield good.replace("01F", "\ud800", 1)
    yield '{"event_type": "\udfff"}'
    yield {"event_type": "\ud800"}
    yield {"event_type": GRANTED, GRANTED: {"incident_id": "\udc80", "user_id": object()}}
    yield {"event_type": GRANTED, GRANTED: {1: 2, (3,): float("nan")}}
    yield {"event_type": 10**5000 if sys.get_int_max_str_digits() == 0 else 10**100}
    yield _Hostile()
    yield {"event_type": GRANTED, GRANTED: _Hostile()}
    yield "[" * 5000 + "]" * 5000
    yield b"\xff\xfe" + good.encode("utf-16-le")
    for _ in range(300):
        cut = rng.randrange(len(good) + 1)
        noise = "".join(chr(rng.choice([rng.randrange(0x20, 0x7F), rng.randrange(0xD800, 0xE000),
                                        rng.randrange(0, 0x110000)])) for _ in range(rng.randrange(1, 6)))  # fmt: skip
        text = good[:cut] + noise + good[cut + rng.randrange(3):]
        yield text
        yield text.encode("utf-8", "surrogatepass")
        yield bytearray(text.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("tier", ["first", "union"])
def test_no_input_makes_parse_event_raise_anything_but_a_webhook_error(
    tier: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if tier == "union":
        events.preload()
    else:
        monkeypatch.setattr(events._PARSER, "union", None)
    for value in _hostile_inputs(seed=16):
        try:
            events.parse_event(value)
        except WebhookError:
            pass
    with pytest.raises(TypeError, match="not int"):
        events.parse_event(3)  # type: ignore[arg-type]


# -- row 19: misspelled handler methods and unhandled types ---------------------------------


def test_a_handler_method_that_matches_no_event_type_is_refused_with_the_closest_names() -> None:
    with pytest.raises(TypeError) as refused:

        class Typo(WebhookHandlers):
            def on_private_incident_membership_grantd_v1(self, event: Any) -> None:
                pass

    assert "on_private_incident_membership_granted_v1" in str(refused.value)
    from incident_webhooks import AsyncWebhookHandlers

    with pytest.raises(TypeError, match="never be called"):

        class AsyncTypo(AsyncWebhookHandlers):
            async def on_incident_made_up_v9(self, event: Any) -> None:
                pass

    class Fine(WebhookHandlers):
        def on_private_incident_membership_granted_v1(self, event: Any) -> None:
            pass

        def on_unknown(self, event_type: str, payload: Any) -> None:
            pass

        def helper(self) -> None:
            pass


def test_an_event_type_without_a_handler_is_logged_at_info_once_per_type(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from incident_webhooks import handlers as handlers_module

    monkeypatch.setattr(handlers_module, "_UNHANDLED", set())
    caplog.set_level(logging.INFO)
    handlers = WebhookHandlers()
    for _ in range(3):
        handlers.handle(testing.example_body(GRANTED))
        handlers.handle(b'{"event_type": "brand.new_v1"}')
    lines = [r.getMessage() for r in caplog.records if "acknowledged and dropped" in r.getMessage()]
    assert lines == [
        f"no handler for {GRANTED}: acknowledged and dropped (said once per process)",
        "unknown event type brand.new_v1: acknowledged and dropped (said once per process)",
    ]


# -- rows 25-27: the command line -------------------------------------------------------------


class _Redirecting(BaseHTTPRequestHandler):
    """Answers ``POST /moved-<code>`` with that redirect; anything else 200."""

    hits: typing.ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.hits.append(f"{self.command} {self.path}")
        self.rfile.read(int(self.headers.get("content-length", 0)))
        moved = self.path.startswith("/moved-")
        self.send_response(int(self.path.removeprefix("/moved-")) if moved else 200)
        if moved:
            self.send_header("location", "/target")
        self.send_header("content-length", "0")
        self.end_headers()

    do_GET = do_POST

    def log_message(self, *args: Any) -> None:
        pass


def send(*argv: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m incident_webhooks send`` in this process (the installed-package tests run
    it as a process)."""
    from incident_webhooks.__main__ import main

    return run_main(main, ["send", *argv], env)


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_send_never_follows_a_redirect_and_counts_the_3xx_as_a_failure(code: int) -> None:
    _Redirecting.hits = []
    server = HTTPServer(("127.0.0.1", 0), _Redirecting)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/moved-{code}"
        result = send(url, "--secret", SECRET, "--event", GRANTED)
    finally:
        server.shutdown()
    assert result.returncode == 1, result.stdout
    assert f"{GRANTED}\t{code}\t" in result.stdout
    assert _Redirecting.hits == [f"POST /moved-{code}"], "the redirect was followed"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--timeout", "-1"], "--timeout -1.0 must be"),
        (["--timeout", "nan"], "--timeout nan must be"),
        (["--timeout", "inf"], "--timeout inf must be"),
        (["--url-with-space"], "is not an http:// or https:// URL"),
        (["--ftp"], "is not an http:// or https:// URL"),
        (["--secret", "hunter2"], "--secret: the webhook secret is not valid base64"),
        (["--secret", "whsec_hunter2"], "--secret: the webhook secret after whsec_ is not valid"),
        (["--secret", ""], "--secret is empty"),
    ],
)
def test_every_bad_send_argument_is_one_line_naming_it(argv: list[str], says: str) -> None:
    url = "http://127.0.0.1:9/webhooks"
    if argv == ["--url-with-space"]:
        url, argv = "http://127.0.0.1:9/web hooks", []
    if argv == ["--ftp"]:
        url, argv = "ftp://127.0.0.1/x", []
    if "--secret" not in argv:
        argv = [*argv, "--secret", SECRET]
    result = send(url, "--event", GRANTED, *argv)
    assert result.returncode == 2, result
    assert result.stderr == f"error: {result.stderr[7:]}" and result.stderr.count("\n") == 1
    assert says in result.stderr and "Traceback" not in result.stderr
    assert "INCIDENT_WEBHOOK_SECRET" not in result.stderr


# Every malformed URL form: refused in one line before anything is sent (nothing here is
# looked up in DNS: each is refused first, or names 127.0.0.1 where nothing listens).
MALFORMED_URLS = [
    "http://[::1", "http://[/", "http://]/", "http://[zz]/", "http://[::1]:99999/x", "http://127.0.0.1:abc/x",
    "http://127.0.0.1:-1/", "http://127.0.0.1:1:2/", "https://[::1]:8443:1/", "http://127.0.0.1:65536/",
    "http://127.0.0.1:0/x", "http://:80/", "http://user@/x", "http://@/", "http:///x", "http://?", "http://#",
    "http://a..b/", "http://" + "a" * 64 + ".example/", "http://exa\x00mple/", "http://exa\x1bmple/", "mailto:x@y",
    "//127.0.0.1/x", "127.0.0.1:8000/webhooks", "",
]  # fmt: skip


@pytest.mark.parametrize("url", MALFORMED_URLS)
def test_a_malformed_send_url_is_one_line_never_a_traceback(url: str) -> None:
    result = send(url, "--event", GRANTED, "--secret", SECRET)
    assert result.returncode == 2, result
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "is not an http:// or https:// URL" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("path", ["/%", "/%zz", "/\u00e9", "/a?b=%", "/#frag"])
def test_an_odd_path_on_a_good_host_is_sent_and_reported_not_a_traceback(path: str) -> None:
    result = send(f"http://127.0.0.1:9{path}", "--event", GRANTED, "--secret", SECRET, "--timeout", "2")
    assert result.returncode == 1, result
    assert f"{GRANTED}\tfailed (" in result.stdout and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--path", "webhooks"], "--path 'webhooks' must start with /"),
        (["--path", "/web hooks"], "must start with / and hold no spaces"),
        (["--port", "99999"], "--port 99999 is not a TCP port"),
        (["--port", "0"], "--port 0 is not a TCP port"),
        (["--workers", "0"], "--workers 0 must be from 1 to 256"),
        (["--startup-timeout", "0"], "--startup-timeout 0 must be above 0 and at most 3600 seconds"),
        (["--startup-timeout", "nan"], "--startup-timeout nan must be above 0"),
        (["--host", ""], "--host '' is not a host name"),
        (["--secret", "hunter2"], "--secret: the webhook secret is not valid base64"),
        (["--dedupe", "postgres://x"], "--dedupe postgres://x: unknown dedupe store"),
    ],
)
def test_every_bad_serve_argument_is_one_line_naming_it(argv: list[str], says: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "incident_webhooks", "serve", *argv],
        env={**os.environ, "INCIDENT_WEBHOOK_SECRET": SECRET},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert says in result.stderr


def test_serve_without_a_secret_suggests_an_option_serve_takes() -> None:
    env = {k: v for k, v in os.environ.items() if k != "INCIDENT_WEBHOOK_SECRET"}
    result = subprocess.run(
        [sys.executable, "-m", "incident_webhooks", "serve"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "--secret" in result.stderr
    helped = subprocess.run(
        [sys.executable, "-m", "incident_webhooks", "serve", "--help"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "--secret" in helped.stdout


def test_error_counts_are_said_in_good_english() -> None:
    with pytest.raises(WebhookError) as one:
        events.parse_event(json.dumps({"event_type": GRANTED, GRANTED: {"incident_id": "x"}}))
    assert "(1 error)" in str(one.value)
    with pytest.raises(WebhookError) as two:
        events.parse_event(json.dumps({"event_type": GRANTED, GRANTED: {}}))
    assert "(2 errors)" in str(two.value)


# -- row 18: type checkers see exactly the names that exist -----------------------------------


def test_mypy_refuses_names_the_package_does_not_have_and_accepts_those_it_has(
    tmp_path: Path,
) -> None:
    (tmp_path / "missing.py").write_text(
        "from incident_webhooks import NoSuchThing\n"
        "from incident_webhooks.models import AlsoMissing\n"
        "from incident_webhooks.events import NotThereEither\n"
        "import incident_webhooks\n"
        "incident_webhooks.Gone\n"
    )
    (tmp_path / "present.py").write_text(
        "from incident_webhooks import PrivateIncidentMembershipGrantedV1, WebhookEvent\n"
        "from incident_webhooks.models import PrivateIncidentMembershipGrantedV1 as Model\n"
        "from incident_webhooks.events import WebhookEvent as Union\n"
        "from incident_webhooks.dedupe import Lease, RedisDedupeStore\n"
        "import incident_webhooks\n"
        "incident_webhooks.InMemoryDedupeStore\n"
    )
    # The project's own mypy settings, so that the run's cache (seeded by `make lint`) is used.
    run = [sys.executable, "-m", "mypy", "--strict", "--config-file", str(ROOT / "pyproject.toml")]
    missing = subprocess.run([*run, "missing.py"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert missing.returncode == 1, missing.stdout
    for name in ("NoSuchThing", "AlsoMissing", "NotThereEither", "Gone"):
        assert f'"{name}"' in missing.stdout, (name, missing.stdout)
    present = subprocess.run([*run, "present.py"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert present.returncode == 0, present.stdout
