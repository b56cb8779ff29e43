"""Real servers on 127.0.0.1 for the tests that need them, started and stopped by the tests:
redis-server, and uvicorn running an application with several worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import httpx

ROOT = Path(__file__).resolve().parent.parent
REDIS_MISSING = (
    "redis-server is not installed: `make test` installs it (Debian's redis-server package); "
    "elsewhere install Redis 6 or newer so that redis-server is on PATH"
)


# The tests' own requests go through this one client: httpx builds an SSL context (reading
# the CA bundle, 36 ms of CPU) for every client, so httpx.get and httpx.post, which make a
# client per call, cost that much per request, per health poll. No keep-alive: each request
# opens its own connection, as those calls did, so a stopped server is never reached through
# a connection kept from before.
HTTP = httpx.Client(trust_env=False, limits=httpx.Limits(max_keepalive_connections=0))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(ready: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ready():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not start within {timeout}s")
        time.sleep(0.05)


class RedisServer:
    """redis-server on a free port, persisting every write (appendfsync always), so that a
    restart keeps what was written, as a production Redis for dedupe must."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise AssertionError(REDIS_MISSING)
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--save", "", "--appendonly", "yes", "--appendfsync", "always",
             "--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self.answers, "redis-server")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class AppServer:
    """uvicorn running tests/support/recording_app.py with ``workers`` processes."""

    def __init__(self, record: Path, dedupe: str, *, secret: str, workers: int = 1, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.record = record
        self.env = {
            **os.environ, "RECORD": str(record), "INCIDENT_WEBHOOK_SECRET": secret,
            "INCIDENT_WEBHOOK_DEDUPE": dedupe, "PYTHONPATH": str(ROOT / "tests" / "support"), **env,
        }  # fmt: skip
        self.workers = workers
        # What the server says (warnings and up), for the test's failure message.
        self.log = record.with_suffix(f".server-{self.port}.log")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.launch()
        wait_until(self.healthy, "the app server")

    def launch(self) -> None:
        """Start the process without waiting for it to answer (see ``started``)."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "recording_app:app", "--factory",
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
             "--log-level", "warning", "--no-access-log",
             # On a loaded 2-core CI machine a busy worker can miss uvicorn's 5 s health
             # check and be restarted, cutting its connections: not what these tests measure.
             "--timeout-worker-healthcheck", "60"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=self.log.open("ab"),
            start_new_session=True,
        )  # fmt: skip

    def healthy(self) -> bool:
        assert self.process is not None and self.process.poll() is None, "the app server died"
        try:
            return HTTP.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
            self.process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def started(*servers: AppServer) -> Iterator[None]:
    """Several app servers started at once (each spends about a second importing), all
    stopped on the way out."""
    with contextlib.ExitStack() as stack:
        for server in servers:
            stack.callback(server.stop)
            server.launch()
        for server in servers:
            wait_until(server.healthy, "the app server")
        yield


def records(path: Path) -> list[tuple[str, int, str]]:
    """(what, pid, webhook-id) for every line the recording app wrote."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        what, pid, webhook_id = line.split(" ", 2)
        out.append((what, int(pid), webhook_id))
    return out


class LoadClient:
    """HTTP/1.1 POSTs over a fixed number of keep-alive connections per server, for the load
    tests: httpx's pool spends more CPU per request than the servers under test, so with it
    these tests measured the client. Speaks only what uvicorn answers (Content-Length
    bodies); anything else fails the test."""

    def __init__(self, connections: int = 32, timeout: float = 30) -> None:
        self.connections = connections
        self.timeout = timeout
        self._idle: dict[tuple[str, int], asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}
        self._opened: dict[tuple[str, int], int] = {}
        self._all: list[asyncio.StreamWriter] = []

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        parts = urllib.parse.urlsplit(url)
        where = (parts.hostname or "127.0.0.1", parts.port or 80)
        idle = self._idle.setdefault(where, asyncio.Queue())
        if idle.empty() and self._opened.get(where, 0) < self.connections:
            self._opened[where] = self._opened.get(where, 0) + 1
            reader, writer = await asyncio.open_connection(*where)
            self._all.append(writer)
        else:
            reader, writer = await idle.get()
        lines = [f"POST {parts.path or '/'} HTTP/1.1", f"host: {where[0]}:{where[1]}",
                 f"content-length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]  # fmt: skip
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        status, answer = await asyncio.wait_for(self._response(reader), self.timeout)
        idle.put_nowait((reader, writer))
        return status, answer

    @staticmethod
    async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        length = next(int(h.split(":", 1)[1]) for h in head[1:] if h.lower().startswith("content-length:"))
        return status, await reader.readexactly(length)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for writer in self._all:
            writer.close()


POSTGRES_MISSING = (
    "PostgreSQL is not installed: `make test` installs it (Debian's postgresql package); "
    "elsewhere install PostgreSQL 13 or newer so that initdb and postgres are on PATH"
)


def postgres_binary(name: str) -> str:
    """initdb or postgres: on PATH, or where Debian's packages keep them."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    if not candidates:
        raise AssertionError(POSTGRES_MISSING)
    return str(candidates[-1])


class PostgresServer:
    """A PostgreSQL cluster of its own in ``folder``, on a free port of 127.0.0.1, started
    and stopped by the tests. PostgreSQL refuses to run as root: as root, the cluster
    belongs to the ``postgres`` user (Debian's package creates it) and runs as that user.
    ``fsync=off``: these tests are about concurrency and outages, not power cuts; ``durable``
    keeps PostgreSQL's defaults (fsync and synchronous_commit on), for the benchmarks, and
    logs checkpoints, autovacuum runs and the plans of statements over 25 ms, to read what
    the server did during a figure; ``environment`` adds to the server's environment (the
    benchmarks' slow-flush library)."""

    def __init__(self, folder: Path, *, durable: bool = False, environment: dict[str, str] | None = None) -> None:
        self.durable = durable
        self.environment = environment or {}
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.process: subprocess.Popen[bytes] | None = None
        # As root, run as the postgres user: the process is then postgres itself, which
        # the tests signal directly.
        self._as: dict[str, Any] = {"user": "postgres", "group": "postgres", "extra_groups": []} if os.geteuid() == 0 else {}

    def _own(self, path: Path) -> None:
        if self._as:
            shutil.chown(path, "postgres", "postgres")

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._own(self.folder)
        # The temp folders above it must let the postgres user through.
        for parent in self.folder.parents:
            if parent == Path(tempfile.gettempdir()):
                break
            if self._as:
                parent.chmod(parent.stat().st_mode | 0o711)
        if not (self.data / "PG_VERSION").exists():
            subprocess.run(
                [postgres_binary("initdb"), "-D", str(self.data), "-U", "postgres",
                 "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **self._as,
            )  # fmt: skip
        log = (self.folder / "postgres.log").open("ab")
        self.process = subprocess.Popen(
            [postgres_binary("postgres"), "-D", str(self.data), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.folder}",
             *(("-c", "log_checkpoints=on", "-c", "log_autovacuum_min_duration=0",
                "-c", "session_preload_libraries=auto_explain", "-c", "auto_explain.log_min_duration=25ms")
               if self.durable else ("-c", "fsync=off")),
             "-c", "max_connections=200"],
            stdout=log, stderr=log, env={**os.environ, **self.environment}, **self._as,
        )  # fmt: skip
        wait_until(self.answers, "PostgreSQL")

    def answers(self) -> bool:
        assert self.process is not None and self.process.poll() is None, "PostgreSQL died"
        import psycopg

        try:
            with psycopg.connect(self.url, connect_timeout=2) as db:
                db.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            # SIGINT is the fast shutdown: SIGTERM's smart one waits for every client.
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
            self.process = None

    def database(self, name: str) -> str:
        """A new empty database: tests that share the server keep apart."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + "/" + name

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class WorkerProcess:
    """``python -m incident_webhooks worker`` with tests/support/recording_app.py's handlers."""

    def __init__(self, record: Path, inbox: str, *args: str, **env: str) -> None:
        self.record = record
        self.command = [sys.executable, "-m", "incident_webhooks", "worker", "--inbox", inbox,
                        "--handlers", "recording_app:RecordingHandlers", *args]  # fmt: skip
        self.env = {**os.environ, "RECORD": str(record), "PYTHONPATH": str(ROOT / "tests" / "support"), **env}
        self.log = record.with_suffix(f".worker-{free_port()}.log")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.command, env=self.env, stdout=subprocess.DEVNULL, stderr=self.log.open("ab")
        )

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then the exit code (SIGKILL if it does not exit within ``timeout``)."""
        if self.process is None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(10)
        self.process = None
        return code

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_databases = iter(range(10**6))


def new_inbox(kind: str, tmp_path: Path, postgres: PostgresServer | None) -> str:
    """A new, empty inbox's URL: a SQLite file in ``tmp_path``, or a new database of
    ``postgres`` (tests that share the server keep apart)."""
    if kind == "sqlite":
        return f"sqlite://{tmp_path / 'inbox.db'}"
    assert postgres is not None
    return postgres.database(f"t{os.getpid()}_{next(_databases)}")
