"""`serve --workers N`: a listening socket per process (SO_REUSEPORT), supervised."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from incident_webhooks._processes import (
    ESTABLISHED,
    LISTEN,
    listening,
    socket_inodes,
    tcp_sockets,
)
from servers import HTTP, free_port, wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT, /proc")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` and that listen on a TCP socket."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if parent == pid and listening(int(entry)):
            found.append(int(entry))
    return sorted(found)


def listeners(port: int) -> int:
    """Listening TCP sockets on ``port``."""
    return sum(1 for local, state, _ in tcp_sockets() if local == port and state == LISTEN)


def answers(url: str) -> bool:
    try:
        return HTTP.get(url + "/healthz", timeout=2).status_code == 200
    except Exception:  # noqa: BLE001 - not answering yet
        return False


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "incident_webhooks", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "2", "--inbox", f"sqlite:///{tmp_path}/inbox.db", "--no-worker"],
        env={**os.environ, "INCIDENT_WEBHOOK_SECRET": SECRET}, stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "serve.log").open("wb"), start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(lambda: len(children(process.pid)) == 2, "two listening server processes", 60)
        yield process, port
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def test_each_server_process_listens_on_a_socket_of_its_own_and_connections_spread(
    served: tuple[subprocess.Popen[bytes], int],
) -> None:
    """With one shared socket, the process that woke first accepted most connections (24
    of 32 under wrk, its core saturated while the other's idled)."""
    process, port = served
    assert listeners(port) == 2, "one listening socket per process, not one shared"
    opened = [socket.create_connection(("127.0.0.1", port)) for _ in range(32)]
    try:

        def accepted() -> dict[int, int]:
            """Established connections on the port, per server process."""
            mine = {}
            for pid in children(process.pid):
                inodes = socket_inodes(pid)
                mine[pid] = sum(1 for _, state, inode in tcp_sockets() if state == ESTABLISHED and inode in inodes)
            return mine

        wait_until(lambda: sum(accepted().values()) == 32, "32 connections accepted")
        # The kernel spreads them by their addresses: both get a share (fewer than 4 of 32
        # for either is a one-in-a-million draw).
        assert all(n >= 4 for n in accepted().values()), accepted()
    finally:
        for conn in opened:
            conn.close()


def test_a_server_process_that_dies_is_replaced_and_a_hangup_replaces_both_without_a_gap(
    served: tuple[subprocess.Popen[bytes], int],
) -> None:
    process, port = served
    url = f"http://127.0.0.1:{port}"
    first = children(process.pid)
    os.kill(first[0], signal.SIGKILL)
    wait_until(lambda: len(children(process.pid)) == 2 and first[0] not in children(process.pid),
               "a new server process", 60)  # fmt: skip
    assert listeners(port) == 2 and answers(url)
    before = children(process.pid)
    os.kill(process.pid, signal.SIGHUP)
    refused = 0
    deadline = time.monotonic() + 60
    while set(children(process.pid)) & set(before) and time.monotonic() < deadline:
        refused += not answers(url)
    after = children(process.pid)
    assert len(after) == 2 and not set(after) & set(before), (before, after)
    assert refused == 0, "every request during the replacement was answered"
    assert process.poll() is None


def test_sigterm_stops_every_server_process(served: tuple[subprocess.Popen[bytes], int]) -> None:
    process, port = served
    pids = children(process.pid)
    os.kill(process.pid, signal.SIGTERM)
    assert process.wait(30) == 0
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert listeners(port) == 0


def test_an_address_taken_is_one_line_and_a_failure(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        done = subprocess.run(
            [sys.executable, "-m", "incident_webhooks", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "2", "--inbox", f"sqlite:///{tmp_path}/inbox.db", "--no-worker"],
            env={**os.environ, "INCIDENT_WEBHOOK_SECRET": SECRET}, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        taken.close()
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"error: cannot listen on 127.0.0.1:{port}: Address already in use"]


def test_serve_runs_an_app_of_your_own_in_processes_with_a_socket_each(tmp_path: Path) -> None:
    """The README's setup for an app that mounts create_app: connections spread as with the
    demo's."""
    (tmp_path / "own_app.py").write_text(
        "from starlette.applications import Starlette\n"
        "from starlette.routing import Mount\n"
        "from incident_webhooks import WebhookHandlers\n"
        "from incident_webhooks.app import create_app\n\n"
        f"def build():\n"
        f"    webhooks = create_app(WebhookHandlers(), {SECRET!r}, inbox={f'sqlite:///{tmp_path}/inbox.db'!r}, worker=False)\n"
        "    return Starlette(routes=[Mount('/incident', app=webhooks)])\n"
    )
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "incident_webhooks", "serve", "--app", "own_app:build", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        env={**os.environ, "PYTHONPATH": str(tmp_path)}, cwd=tmp_path, stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "serve.log").open("wb"), start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(lambda: len(children(process.pid)) == 2, "two listening server processes", 60)
        assert listeners(port) == 2
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/incident"), "the mounted app")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(30) == 0, (tmp_path / "serve.log").read_text()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--app", "own_app"], "--app 'own_app' must be module:attribute, as in myapp.main:app"),
        (["--app", "no_such_module:app"], "--app no_such_module:app: ModuleNotFoundError: No module named 'no_such_module'"),
        (["--app", "os:sep", "--inbox", "sqlite:///x.db", "--no-worker"],
         "--app runs your own app, which sets up its receiver: --inbox, --no-worker would be ignored"),
        (["--app", "os:sep", "--factory"], "--app os:sep with --factory is not callable"),
        (["--factory"], "--factory needs --app: it says what --app names"),
    ],
)  # fmt: skip
def test_a_bad_app_to_serve_is_one_line_naming_it(argv: list[str], says: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "incident_webhooks", "serve", *argv], cwd=tmp_path, capture_output=True,
        text=True, timeout=60, check=False, env={**os.environ, "INCIDENT_WEBHOOK_SECRET": SECRET},
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: {says}"]
