"""The inbox: deliveries stored per second against a bare INSERT + COMMIT on the same
database, the time from stored to handler start with an idle worker, and the processing
throughput of two worker processes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, ROUNDS, SECRET, SMALL, example
from benchmarks.timing import paired, summary

PER_ROUND = 300
LATENCY_SAMPLES = 40
THROUGHPUT_ROWS = 1000

# A handler that writes when it started (the wall clock both processes share).
HANDLER = """
import os, time
from incident_webhooks import WebhookHandlers
from incident_webhooks.receiver import current_webhook_id

class Timestamps(WebhookHandlers):
    def dispatch(self, event):
        line = f"{current_webhook_id.get()} {time.time()}\\n".encode()
        fd = os.open(os.environ["BENCH_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, line)
        os.close(fd)
"""


@contextmanager
def _postgres(scratch: Path) -> Iterator[str]:
    sys.path.insert(0, str(ROOT / "tests"))
    from servers import PostgresServer

    # The bench measures what production pays: fsync on, unlike the tests' cluster (an
    # ALTER SYSTEM cannot turn it on over the command line's fsync=off, as it once tried to).
    with PostgresServer(scratch / "postgres", durable=True) as server:
        yield server.url


def _bare_sqlite(path: Path, rows: list[tuple[str, bytes]], synchronous: str = "FULL") -> float:
    """Seconds per INSERT + COMMIT with the inbox's pragmas, nothing else."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, webhook_id TEXT UNIQUE, body BLOB)")
    started = time.perf_counter()
    for webhook_id, body in rows:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t (webhook_id, body) VALUES (?, ?)", (webhook_id, body))
        db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    db.close()
    return elapsed / len(rows)


def _bare_postgres(url: str, rows: list[tuple[str, bytes]]) -> float:
    """Seconds per autocommitted INSERT: one round trip and one commit each (BEGIN, INSERT,
    COMMIT would be three round trips, and a slower baseline than a database allows)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        db.execute("DROP TABLE IF EXISTS bare; CREATE TABLE bare (id BIGSERIAL PRIMARY KEY, webhook_id TEXT UNIQUE, body BYTEA)")
        started = time.perf_counter()
        for webhook_id, body in rows:
            db.execute("INSERT INTO bare (webhook_id, body) VALUES (%s, %s)", (webhook_id, body))
        return (time.perf_counter() - started) / len(rows)


def _received(receiver: Any, deliveries: list[tuple[bytes, dict[str, str]]]) -> float:
    started = time.perf_counter()
    for body, headers in deliveries:
        answer = receiver.handle(body, headers)
        assert answer.status == 200, answer
    return (time.perf_counter() - started) / len(deliveries)


def _worker(inbox: str, record: Path, scratch: Path, *args: str) -> subprocess.Popen[bytes]:
    (scratch / "bench_handlers.py").write_text(HANDLER)
    env = {**os.environ, "BENCH_RECORD": str(record), "PYTHONPATH": str(scratch)}
    return subprocess.Popen(
        [sys.executable, "-m", "incident_webhooks", "worker", "--inbox", inbox,
         "--handlers", "bench_handlers:Timestamps", "--retention", "0", *args],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _lines(record: Path) -> dict[str, float]:
    if not record.exists():
        return {}
    return {i: float(t) for i, t in (line.split() for line in record.read_text().splitlines())}


def _wait(check: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit("the inbox benchmark's workers did not finish")
        time.sleep(0.005)


def _latency(inbox_url: str, scratch: Path, name: str) -> dict[str, float]:
    """Stored (by this process) to handler start (in an idle worker process), one at a time."""
    from incident_webhooks.inbox import from_url

    inbox = from_url(inbox_url)
    record = scratch / f"latency-{name}.log"
    worker = _worker(inbox_url, record, scratch)
    body = example(SMALL)
    delays = []
    try:
        inbox.store("bench", "warm-up", SMALL, body, {})
        _wait(lambda: "warm-up" in _lines(record))
        for n in range(LATENCY_SAMPLES):
            time.sleep(0.05)  # idle again
            webhook_id = f"latency-{n}"
            stored = time.time()
            inbox.store("bench", webhook_id, SMALL, body, {})
            _wait(lambda webhook_id=webhook_id: webhook_id in _lines(record))
            delays.append((_lines(record)[webhook_id] - stored) * 1000)
    finally:
        worker.terminate()
        worker.wait(30)
    return summary(delays)


def _throughput(inbox_url: str, scratch: Path, name: str) -> float:
    """Rows per second that two worker processes with a no-op handler get through."""
    from incident_webhooks.inbox import from_url

    inbox = from_url(inbox_url)
    body = example(SMALL)
    for n in range(THROUGHPUT_ROWS):
        inbox.store("throughput", f"t-{n}", SMALL, body, {})
    record = scratch / f"throughput-{name}.log"
    started = time.perf_counter()
    workers = [_worker(inbox_url, record, scratch, "--concurrency", "8") for _ in range(2)]
    try:
        _wait(lambda: inbox.status().counts["done"] >= THROUGHPUT_ROWS)
        elapsed = time.perf_counter() - started
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(30)
    return THROUGHPUT_ROWS / elapsed


def bench_inbox(scratch: Path) -> dict[str, Any]:
    from incident_webhooks import WebhookHandlers, WebhookReceiver
    from incident_webhooks.testing import sign

    body = example(SMALL)
    results: dict[str, Any] = {"deliveries_per_round": PER_ROUND, "rounds": ROUNDS}
    with _postgres(scratch) as pg_url:
        import psycopg

        def fresh_pg(n: int) -> str:
            with psycopg.connect(pg_url, autocommit=True) as db:
                db.execute(f"CREATE DATABASE bench{n}")
            return pg_url.rsplit("/", 1)[0] + f"/bench{n}"

        counter = iter(range(10**6))
        ours: dict[str, list[float]] = {"sqlite": [], "postgres": []}
        bare: dict[str, list[float]] = {"sqlite": [], "postgres": []}
        normal: list[float] = []
        for round_number in range(ROUNDS):
            rows = [(f"bare_{round_number}_{n}", body) for n in range(PER_ROUND)]
            deliveries = [(body, sign(body, SECRET, msg_id=f"msg_{round_number}_{n}")) for n in range(PER_ROUND)]
            n = next(counter)
            bare["sqlite"].append(_bare_sqlite(scratch / f"bare-{n}.db", rows))
            normal.append(_bare_sqlite(scratch / f"normal-{n}.db", rows, "NORMAL"))
            receiver = WebhookReceiver(SECRET, WebhookHandlers(), inbox=f"sqlite://{scratch}/inbox-{n}.db", tolerance=3600)
            ours["sqlite"].append(_received(receiver, deliveries))
            bare["postgres"].append(_bare_postgres(fresh_pg(n), rows))
            receiver = WebhookReceiver(SECRET, WebhookHandlers(), inbox=fresh_pg(next(counter)), tolerance=3600)
            ours["postgres"].append(_received(receiver, deliveries))
        # What a 2xx that survives a power cut costs: FULL syncs the WAL at every commit,
        # NORMAL only at checkpoints.
        results["sqlite_full_over_normal"] = paired(bare["sqlite"], normal)
        results["stored_per_second"] = {k: summary([1 / s for s in v]) for k, v in ours.items()}
        results["bare_per_second"] = {k: summary([1 / s for s in v]) for k, v in bare.items()}
        # Above 1: the receiver stores fewer per second than the bare loop.
        results["bare_over_receiver"] = {k: paired([1 / s for s in bare[k]], [1 / s for s in ours[k]]) for k in ours}
        results["stored_to_start_ms"] = {
            "sqlite": _latency(f"sqlite://{scratch}/latency.db", scratch, "sqlite"),
            "postgres": _latency(fresh_pg(next(counter)), scratch, "postgres"),
        }
        results["two_workers_rows_per_second"] = {
            "sqlite": _throughput(f"sqlite://{scratch}/throughput.db", scratch, "sqlite"),
            "postgres": _throughput(fresh_pg(next(counter)), scratch, "postgres"),
        }
    return results


def render_inbox(results: dict[str, Any]) -> list[str]:
    s, b = results["stored_per_second"], results["bare_per_second"]
    ratio, latency, tp = results["bare_over_receiver"], results["stored_to_start_ms"], results["two_workers_rows_per_second"]
    lines = [
        "## The inbox, in process (no HTTP, one delivery at a time)",
        "",
        (f"Deliveries stored one after another through `WebhookReceiver.handle` called in this process (verify, parse, one INSERT + COMMIT: no HTTP server, no concurrency, so no group commit; the figures through the real server are under *Bursts*) against a bare loop of INSERT + COMMIT "
        f"with the same settings (SQLite: WAL, `synchronous=FULL`; PostgreSQL: fsync on), {results['deliveries_per_round']} per round; "
        "an idle worker process's delay from a row stored to its handler starting; two worker processes (concurrency 8) "
        "with a no-op handler working through 1,000 rows."),
        "",
        "| | SQLite | PostgreSQL |",
        "|---|---|---|",
        f"| stored per second, receiver | {s['sqlite']['median']:,.0f} | {s['postgres']['median']:,.0f} |",
        f"| INSERT + COMMIT per second, bare | {b['sqlite']['median']:,.0f} | {b['postgres']['median']:,.0f} |",
        f"| receiver over bare (≥ 0.5 wanted) | {1 / ratio['sqlite']['median']:.2f} | {1 / ratio['postgres']['median']:.2f} |",
        f"| stored to handler start, median (≤ 50 ms wanted) | {latency['sqlite']['median']:.1f} ms | {latency['postgres']['median']:.1f} ms |",
        f"| rows per second, two workers | {tp['sqlite']:,.0f} | {tp['postgres']:,.0f} |",
        "",
        (f"`synchronous=FULL` (a stored row survives a power cut, not only a crash) makes each bare SQLite INSERT + COMMIT "
        f"{results['sqlite_full_over_normal']['median']:.2f}× as long as `synchronous=NORMAL` on this disk."),
        "",
    ]
    return lines


def inbox_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for store in ("sqlite", "postgres"):
        share = 1 / results["bare_over_receiver"][store]["median"]
        # In process, without HTTP, one delivery at a time: what these measure is the inbox's
        # own statements, not a deployment behind a server (that is the burst bench).
        where = "in process, no HTTP"
        out.append({"target": f"inbox ({store}, {where}): stored per second ≥ 0.5× bare INSERT + COMMIT",
                    "measured": f"{share:.2f}×", "met": share >= 0.5, "before": "n/a"})
        ms = results["stored_to_start_ms"][store]["median"]
        out.append({"target": f"inbox ({store}, {where}): stored to handler start, median ≤ 50 ms",
                    "measured": f"{ms:.1f} ms", "met": ms <= 50, "before": "n/a"})
    return out


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        found = bench_inbox(Path(folder))
    print(json.dumps(found, indent=2))
    print("\n".join(render_inbox(found)))
