"""Bursts through the real HTTP server: ``serve --inbox URL --no-worker --workers 2`` under 32
concurrent keep-alive connections from ``wrk`` (a C load generator), pre-signed unique
deliveries, against a bare sequential INSERT + COMMIT loop on the same database with the
inbox's own durability (SQLite WAL + synchronous=FULL; PostgreSQL with fsync and
synchronous_commit on, checked with SHOW). The load generator is measured against a
do-nothing app on the same HTTP stack in the same run, to show it is not the limit. Then
the drain: two worker processes with a no-op handler, timed from the first claim, at 1,000
and 20,000 rows pending.

This machine's disk flushes in ~0.2 ms; most cloud disks take 1-2 ms. The same figures
(bare loop, ingest, drain at the default concurrency) are measured again with every
fsync/fdatasync of the database's processes delayed by FLUSH_DELAY_US, through a small
LD_PRELOAD library built here with the C compiler (left out without one)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.common import LARGE, ROOT, SECRET, example
from benchmarks.inbox import _bare_postgres, _bare_sqlite

CONNECTIONS = 32
SECONDS = 6
# More than a run can send: the load generator starts again from the first once it has sent
# them all, and a redelivery is answered without a row (see _ingest).
DELIVERIES = 60_000
DRAIN_SIZES = (1_000, 20_000)
DRAIN_ROUNDS = 5
# The worker's default, and the old default (handlers that must not run many at once).
DRAIN_CONCURRENCY = (None, 4)
BARE_ROWS = 2_000
# The slow-flush pass: what each fsync and fdatasync waits before it runs.
FLUSH_DELAY_US = 1_000
FLUSH_LIBRARY = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

static void wait_first(void) {
    static long us = -1;
    if (us < 0) {
        const char *given = getenv("FLUSH_DELAY_US");
        us = given ? atol(given) : 1000;
    }
    struct timespec left = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&left, &left) != 0) {
    }
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    wait_first();
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    wait_first();
    return real(fd);
}
"""
WRK_SCRIPT = """
local reqs, i, threads = {}, 0, 0
function setup(thread) thread:set("id", threads); threads = threads + 1 end
function init(args)
  local f = io.open(args[1], "r")
  local n = 0
  for line in f:lines() do
    n = n + 1
    if n % 2 == id then
      local mid, ts, sig, body = line:match("([^\\t]+)\\t([^\\t]+)\\t([^\\t]+)\\t(.*)")
      reqs[#reqs + 1] = wrk.format("POST", nil, {["webhook-id"] = mid, ["webhook-timestamp"] = ts,
        ["webhook-signature"] = sig, ["content-type"] = "application/json"}, body)
    end
  end
  f:close()
end
function request() i = i + 1; if i > #reqs then i = 1 end; return reqs[i] end
"""
# The same HTTP stack as `serve` (uvicorn, uvloop, httptools, two processes), answering
# every request at once: the most the load generator and the stack can do on this machine.
NOTHING_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"status":"ok"}'})
"""
NOOP_HANDLERS = """
from incident_webhooks import WebhookHandlers

class Noop(WebhookHandlers):
    def dispatch(self, event):
        pass
"""


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(port: int, timeout: float = 30) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            return
        except urllib.error.HTTPError:
            return  # answered, with whatever status
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered on port {port}")


@contextmanager
def _process(command: list[str], env: dict[str, str], cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(command, env={**os.environ, **env}, cwd=cwd,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)  # fmt: skip
    try:
        yield process
    finally:
        with_group = os.getpgid(process.pid)
        os.killpg(with_group, signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(with_group, signal.SIGKILL)
            process.wait()


def _wrk(port: int, script: Path, deliveries: Path, seconds: int = SECONDS) -> dict[str, float]:
    done = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}/webhooks", "--", str(deliveries)],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    )  # fmt: skip
    out = done.stdout

    def ms(label: str) -> float:
        found = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        if found is None:
            return float("nan")
        value, unit = float(found.group(1)), found.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    total = re.search(r"(\d+) requests in ([\d.]+)s", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert total is not None, out
    return {
        "requests": int(total.group(1)), "seconds": float(total.group(2)),
        "per_second": int(total.group(1)) / float(total.group(2)),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0, "p50_ms": ms("50"), "p99_ms": ms("99"),
    }  # fmt: skip


def _sign_deliveries(target: Path, count: int, prefix: str) -> None:
    from incident_webhooks.testing import sign

    body = example(LARGE)
    text = body.decode()
    with target.open("w") as out:
        for n in range(count):
            headers = sign(body, SECRET, msg_id=f"msg_{prefix}_{n}")
            out.write(f"{headers['webhook-id']}\t{headers['webhook-timestamp']}\t"
                      f"{headers['webhook-signature']}\t{text}\n")  # fmt: skip


def _stored(inbox_url: str) -> int:
    from incident_webhooks.inbox import from_url

    inbox = from_url(inbox_url)
    with inbox.transaction() as db:
        return int(db.execute("SELECT COUNT(*) FROM webhook_inbox").fetchone()[0])


def _ingest(scratch: Path, inbox_url: str, script: Path, deliveries: Path, env: dict[str, str]) -> dict[str, Any]:
    port = _free_port()
    command = [sys.executable, "-m", "incident_webhooks", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--workers", "2", "--inbox", inbox_url, "--no-worker"]  # fmt: skip
    with _process(command, {"INCIDENT_WEBHOOK_SECRET": SECRET, **env}, scratch):
        _wait_http(port)
        result = _wrk(port, script, deliveries)
    if result["requests"] >= DELIVERIES:
        raise RuntimeError(
            f"wrk sent {result['requests']} requests, more than the {DELIVERIES} deliveries "
            "signed: the rest were redeliveries, stored already; raise DELIVERIES"
        )
    result["stored"] = _stored(inbox_url)
    result["stored_per_second"] = result["stored"] / result["seconds"]
    return result


def _fill(inbox_url: str, rows: int, prefix: str = "fill") -> None:
    """``rows`` pending deliveries, committed together and announced as the receiver does:
    all of them are pending from one instant."""
    from incident_webhooks.inbox import from_url

    inbox = from_url(inbox_url)
    body = example(LARGE)
    now = time.time()
    with inbox.transaction() as db:
        for n in range(rows):
            db.execute(inbox.SQL.store, {
                "endpoint": "default", "webhook_id": f"msg_{prefix}_{n}",
                "event_type": "public_incident.incident_created_v2", "body": body,
                "headers": "{}", "received_at": now, "state": "pending", "next_attempt_at": now,
                "updated_at": now, "last_error_type": None, "last_error_message": None,
            })  # fmt: skip
        inbox._announce(db)


def _drain(scratch: Path, inbox_url: str, concurrency: int | None, preload: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Two worker processes, no-op handler, ``concurrency`` handlers each (None: the
    default). Both are started and shown running (each has finished a warm-up row); then,
    for each size, that many rows are committed at once and timed from the first claim
    (within a 2 ms poll) to the last row done, as the inbox records it. A drain of 1,000
    rows lasts under a second: it runs DRAIN_ROUNDS times and its median is kept. ``preload``
    goes to the workers' environment (the slow-flush library)."""
    from incident_webhooks.inbox import from_url
    from incident_webhooks.worker import DEFAULT_CONCURRENCY

    inbox = from_url(inbox_url)
    handlers = scratch / "noop_handlers.py"
    handlers.write_text(NOOP_HANDLERS)
    command = [sys.executable, "-m", "incident_webhooks", "worker", "--inbox", inbox_url,
               "--handlers", "noop_handlers:Noop"]  # fmt: skip
    if concurrency is not None:
        command += ["--concurrency", str(concurrency)]
    env = {"PYTHONPATH": f"{scratch}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **preload}

    def query(sql: str) -> Any:
        with inbox.transaction() as db:
            return db.execute(sql).fetchone()

    def settled() -> None:
        """Each PostgreSQL drain starts from a settled cluster. Autovacuum vacuums a table
        after enough inserts (PostgreSQL 13 and newer), and the tables earlier figures
        filled (the ingest's, the last drain's) were vacuumed inside the `--concurrency 4`
        drain in three runs of the bench: 587-787 rows/s against ~1,500 alone. So every
        database is vacuumed first; then a checkpoint writes the pages that dirtied, which
        otherwise may land inside a timed drain (one cost a 20,000-row drain half its rate).
        On either database the drain starts with nothing left to write back, as the bare
        loop does."""
        os.sync()
        if not inbox_url.startswith("postgresql"):
            return
        import psycopg

        base = inbox_url.rsplit("/", 1)[0]
        with psycopg.connect(inbox_url, autocommit=True) as db:
            names = [row[0] for row in db.execute(
                "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate")]  # fmt: skip
        for name in names:
            with psycopg.connect(f"{base}/{name}", autocommit=True) as db:
                db.execute("VACUUM")
        with psycopg.connect(inbox_url, autocommit=True) as db:
            db.execute("CHECKPOINT")

    def drained(rows: int, prefix: str) -> tuple[float, float, float]:
        settled()
        _fill(inbox_url, rows, prefix)
        started = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and started is None:
            if query("SELECT COUNT(*) FROM webhook_inbox WHERE state = 'pending'")[0] < rows:
                started = time.time()  # the first claim, within one poll
            else:
                time.sleep(0.002)
        # Once timed, the poll reads the index by state and stops at its first row: a count
        # over the whole table took ~2 ms at 26,000 rows, 4 % of a core at 20 polls a second,
        # taken from the drain it times (its end is read from the attempts, not the poll).
        while time.monotonic() < deadline and query(
            "SELECT EXISTS (SELECT 1 FROM webhook_inbox"
            " WHERE state IN ('pending', 'processing', 'failed'))"
        )[0]:
            time.sleep(0.1)
        (last,) = query(
            "SELECT MAX(a.finished_at) FROM webhook_inbox_attempts a JOIN webhook_inbox i"
            f" ON i.id = a.row_id WHERE i.webhook_id LIKE 'msg\\_{prefix}\\_%' ESCAPE '\\'"
        )
        assert started is not None
        return rows / (last - started), started, last

    results: dict[str, dict[str, Any]] = {}
    with _process(command, env, scratch), _process(command, env, scratch):
        deadline = time.monotonic() + 60
        warm = 0
        while query("SELECT COUNT(DISTINCT owner) FROM webhook_inbox_attempts")[0] < 2:
            assert time.monotonic() < deadline, "the workers did not start"
            _fill(inbox_url, 1, f"warm{warm}")
            warm += 1
            time.sleep(0.02)
        while query("SELECT COUNT(*) FROM webhook_inbox WHERE state != 'done'")[0]:
            time.sleep(0.01)
        for rows in DRAIN_SIZES:
            rounds = DRAIN_ROUNDS if rows < 10_000 else 1
            timed = [drained(rows, f"r{rows}x{n}") for n in range(rounds)]
            rates = [rate for rate, _, _ in timed]
            results[_drain_key(rows, concurrency)] = {
                "rows": rows, "per_second": statistics.median(rates), "rounds": rates,
                "concurrency": concurrency or DEFAULT_CONCURRENCY,
                # When each round ran (epoch seconds), to read beside the server's log.
                "windows": [(round(start, 3), round(end, 3)) for _, start, end in timed],
            }  # fmt: skip
    return results


def _drain_key(rows: int, concurrency: int | None) -> str:
    return f"drain_{rows}" + ("" if concurrency is None else f"_c{concurrency}")


def _drain_database(concurrency: int | None) -> str:
    return "drain" + ("" if concurrency is None else f"_c{concurrency}")


def _ratios(results: dict[str, Any], concurrencies: tuple[int | None, ...]) -> None:
    for name in ("sqlite", "postgres"):
        bare = results["bare_per_second"][name]
        r = results[name]
        r["ingest_over_bare"] = r["ingest"]["stored_per_second"] / bare
        for concurrency in concurrencies:
            small, large = (r[_drain_key(rows, concurrency)] for rows in DRAIN_SIZES)
            small["over_bare"] = small["per_second"] / bare
            large["over_bare"] = large["per_second"] / bare
            large["over_1000"] = large["per_second"] / small["per_second"]


def _measure(scratch: Path, server: Any, prefix: str, script: Path,
             concurrencies: tuple[int | None, ...], env: dict[str, str]) -> dict[str, Any]:
    """The bare loop, ingest and drains on SQLite, then on ``server``'s PostgreSQL.
    A disk's flush rate drifts over minutes: the bare loop runs before each database's
    figures, between its ingest and its drains, and after them, and the median of the three
    is the baseline (one run's loop measured 1,349 rows/s before the figures and 4,531 after,
    which a mean of two would have halved)."""
    import psycopg

    names = ("ingest", *(_drain_database(c) for c in concurrencies))
    with psycopg.connect(server.url, autocommit=True) as db:
        for name in names:
            db.execute(f"CREATE DATABASE {name}")
    base = server.url.rsplit("/", 1)[0]
    databases = {
        "sqlite": {k: f"sqlite:///{scratch}/{prefix}-{k}.db" for k in names},
        "postgres": {k: f"{base}/{k}" for k in names},
    }

    def bare(name: str, n: int) -> float:
        """Rows per second, one INSERT + COMMIT each (the inbox bench's loop); SQLite's in a
        process of its own, with ``env`` (the slow-flush library) as the servers get it.
        Each starts with nothing left to write back: right after an ingest (~500 MB of
        database and log), the loop measured 1,178-1,184 rows/s in two runs where the loops
        before and after measured 2,034-4,385, so a ratio taken against it measured the
        previous figure's writeback."""
        os.sync()
        rows = [(f"bare_{k}", example(LARGE)) for k in range(BARE_ROWS)]
        if name == "postgres":
            with psycopg.connect(server.url, autocommit=True) as db:
                db.execute(f"CREATE DATABASE bare{n}")
            return 1 / _bare_postgres(f"{base}/bare{n}", rows)
        if not env:
            return 1 / _bare_sqlite(scratch / f"{prefix}-bare-{n}.db", rows)
        code = ("import sys; from pathlib import Path; from benchmarks.inbox import _bare_sqlite;"
                " from benchmarks.common import LARGE, example;"
                f" rows = [(f'bare_{{k}}', example(LARGE)) for k in range({BARE_ROWS})];"
                " print(1 / _bare_sqlite(Path(sys.argv[1]), rows))")  # fmt: skip
        done = subprocess.run([sys.executable, "-c", code, str(scratch / f"{prefix}-bare-{n}.db")],
                              env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True,
                              check=True)  # fmt: skip
        return float(done.stdout)

    results: dict[str, Any] = {"bare_runs": {}}
    for name, urls in databases.items():
        deliveries = scratch / f"{prefix}-{name}.tsv"
        _sign_deliveries(deliveries, DELIVERIES, f"{prefix}{name}")
        # The file is ~270 MB: its writeback is not to land among the bare loop's flushes
        # (one run's loop before the figures measured 1,349 rows/s against 4,531 after), and
        # ``bare`` syncs before it runs.
        before = bare(name, 1)
        # ``env`` goes to the server and worker processes.
        figures = {"ingest": _ingest(scratch, urls["ingest"], script, deliveries, env)}
        between = bare(name, 2)
        for concurrency in concurrencies:
            figures.update(_drain(scratch, urls[_drain_database(concurrency)], concurrency, env))
        results[name] = figures
        results["bare_runs"][name] = [before, between, bare(name, 3)]
    results["bare_per_second"] = {
        k: statistics.median(v) for k, v in results["bare_runs"].items()
    }
    _ratios(results, concurrencies)
    return results


def _keep_log(server: Any) -> None:
    """The server's log (its checkpoints and autovacuum runs, with times) beside the report,
    to read what else the database did during a figure."""
    kept = ROOT / "build" / "bench"
    kept.mkdir(parents=True, exist_ok=True)
    shutil.copy(server.folder / "postgres.log", kept / f"{server.folder.name}.log")


def _flush_library(scratch: Path) -> Path | None:
    """The slow-flush library (see the module docstring), or None without a C compiler."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    source, library = scratch / "slow_flush.c", scratch / "slow_flush.so"
    source.write_text(FLUSH_LIBRARY)
    subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", str(library), str(source), "-ldl"],
                   check=True, capture_output=True)  # fmt: skip
    library.chmod(0o755)  # PostgreSQL's processes load it as the postgres user
    return library


def bench_burst(scratch: Path) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    from servers import PostgresServer

    script = scratch / "post.lua"
    script.write_text(WRK_SCRIPT)
    results: dict[str, Any] = {"connections": CONNECTIONS, "seconds": SECONDS}
    # The load generator's own ceiling, on the same stack with nothing behind it.
    nothing = scratch / "nothing_app.py"
    nothing.write_text(NOTHING_APP)
    deliveries = scratch / "nothing.tsv"
    _sign_deliveries(deliveries, 2_000, "nothing")
    port = _free_port()
    command = [sys.executable, "-m", "uvicorn", "nothing_app:app", "--host", "127.0.0.1",
               "--port", str(port), "--workers", "2", "--no-access-log", "--log-level", "warning"]  # fmt: skip
    with _process(command, {"PYTHONPATH": str(scratch)}, scratch):
        _wait_http(port)
        results["do_nothing"] = _wrk(port, script, deliveries)
    with PostgresServer(scratch / "pg-burst", durable=True) as server:
        import psycopg

        with psycopg.connect(server.url, autocommit=True) as db:
            settings = {k: db.execute(f"SHOW {k}").fetchone()[0] for k in ("fsync", "synchronous_commit")}
        results["postgres_settings"] = settings
        results.update(_measure(scratch, server, "burst", script, DRAIN_CONCURRENCY, {}))
    _keep_log(server)
    library = _flush_library(scratch)
    if library is not None:
        preload = {"LD_PRELOAD": str(library), "FLUSH_DELAY_US": str(FLUSH_DELAY_US)}
        with PostgresServer(scratch / "pg-slow", durable=True, environment=preload) as server:
            slow = _measure(scratch, server, "slow", script, (None,), preload)
        _keep_log(server)
        # Every commit waits for at least one delayed flush: a faster bare loop means the
        # library was not loaded, and these figures would be the fast disk's.
        for name, rate in slow["bare_per_second"].items():
            assert rate < 1e6 / FLUSH_DELAY_US, f"{name}'s bare loop did not wait for its flushes"
        results["slow_flush"] = {"delay_us": FLUSH_DELAY_US, **slow}
    return results


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        print(json.dumps(bench_burst(Path(folder)), indent=1))
