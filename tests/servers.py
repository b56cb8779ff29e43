"""Real servers on 127.0.0.1 for the tests that need them, started and stopped by the tests:
redis-server, and uvicorn running an application with several worker processes."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Self

import httpx

ROOT = Path(__file__).resolve().parent.parent
REDIS_MISSING = (
    "redis-server is not installed: `make test` installs it (Debian's redis-server package); "
    "elsewhere install Redis 6 or newer so that redis-server is on PATH"
)


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
        wait_until(self.healthy, "the app server")

    def healthy(self) -> bool:
        assert self.process is not None and self.process.poll() is None, "the app server died"
        try:
            return httpx.get(self.url + "/healthz", timeout=1, trust_env=False).status_code == 200
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
