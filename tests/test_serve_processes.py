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
from servers import HTTP, free_port, wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT, /proc")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
# A TCP socket's state in /proc/net/tcp.
LISTEN, ESTABLISHED = "0A", "01"


def tcp_sockets() -> list[tuple[int, str, str]]:
    """This host's TCP sockets as (local port, state, inode). The kernel writes the table a
    page per read and sockets that come and go meanwhile can be skipped: counts from it
    are waited for, never taken from one read."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as lines:
                rows = [line.split() for line in list(lines)[1:]]
        except OSError:
            continue  # no IPv6
        found += [(int(row[1].rsplit(":", 1)[1], 16), row[3], row[9]) for row in rows]
    return found


def socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets process ``pid`` holds."""
    found: set[str] = set()
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found  # gone
    for fd in descriptors:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            found.add(target[8:-1])
    return found


def listening(pid: int) -> bool:
    inodes = socket_inodes(pid)
    return any(state == LISTEN and inode in inodes for _, state, inode in tcp_sockets())


def alive(pid: int) -> bool:
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def server_processes(pid: int) -> list[int]:
    """The live server processes ``pid`` started, listening or not (not multiprocessing's
    resource tracker)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or not alive(int(entry)):
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            command = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if parent == pid and b"spawn_main" in command:
            found.append(int(entry))
    return sorted(found)


def children(pid: int) -> list[int]:
    """The server processes ``pid`` started that listen on a TCP socket."""
    return [child for child in server_processes(pid) if listening(child)]


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
        wait_until(lambda: answers(f"http://127.0.0.1:{port}"), "serving", 60)
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
    wait_until(lambda: listeners(port) == 2, "one listening socket per process, not one shared")
    opened = [socket.create_connection(("127.0.0.1", port)) for _ in range(32)]
    try:

        def accepted() -> dict[int, int]:
            """Established connections on the port, per server process."""
            mine = {}
            for pid in children(process.pid):
                inodes = socket_inodes(pid)
                mine[pid] = sum(1 for _, state, inode in tcp_sockets() if state == ESTABLISHED and inode in inodes)
            return mine

        seen: list[dict[int, int]] = []

        def all_accepted() -> bool:
            seen.append(accepted())
            return sum(seen[-1].values()) == 32

        wait_until(all_accepted, "32 connections accepted")
        # The kernel spreads them by their addresses: both get a share (fewer than 4 of 32
        # for either is a one-in-a-million draw).
        assert len(seen[-1]) == 2 and all(n >= 4 for n in seen[-1].values()), seen[-1]
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
    # Its socket outlives it in the parent: what the kernel queues there waits for the
    # next process instead of being refused.
    for _ in range(20):
        assert HTTP.get(url + "/healthz", timeout=60).status_code == 200
    wait_until(lambda: len(children(process.pid)) == 2 and first[0] not in children(process.pid),
               "a new server process", 60)  # fmt: skip
    wait_until(lambda: listeners(port) == 2 and answers(url), "two sockets, answering")
    before = children(process.pid)
    os.kill(process.pid, signal.SIGHUP)
    refused = 0
    deadline = time.monotonic() + 60
    while any(alive(pid) for pid in before) and time.monotonic() < deadline:
        refused += not answers(url)
    wait_until(lambda: len(children(process.pid)) == 2, "two new server processes")
    after = children(process.pid)
    assert not set(after) & set(before), (before, after)
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
        wait_until(lambda: listeners(port) == 2, "a socket each")
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


def own_app(tmp_path: Path, broken: Path, *options: str, hang: bool = False) -> subprocess.Popen[bytes]:
    """``serve --app`` with a factory that raises (or with ``hang``, never returns) while
    ``broken`` exists (a bad deploy)."""
    (tmp_path / "flaky_app.py").write_text(
        "import os, time\n"
        "from incident_webhooks import WebhookHandlers\n"
        "from incident_webhooks.app import create_app\n\n"
        "def build():\n"
        f"    while {hang!r} and os.path.exists({str(broken)!r}):\n"
        "        time.sleep(0.1)\n"
        f"    if os.path.exists({str(broken)!r}):\n"
        "        raise RuntimeError('this deploy is broken')\n"
        f"    return create_app(WebhookHandlers(), {SECRET!r}, inbox={f'sqlite:///{tmp_path}/inbox.db'!r}, worker=False)\n"
    )
    return subprocess.Popen(
        [sys.executable, "-m", "incident_webhooks", "serve", "--app", "flaky_app:build", "--factory",
         "--host", "127.0.0.1", "--port", str(free_port()), "--workers", "2", *options],
        env={**os.environ, "PYTHONPATH": str(tmp_path)}, cwd=tmp_path, stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "serve.log").open("wb"), start_new_session=True,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("hang", "options", "says"),
    [
        (False, (), "failed to start (exit code 1)"),
        # A factory that never returns: SIGTERM cannot reach uvicorn's handler there.
        (True, ("--startup-timeout", "2"), "did not serve within 2s and was stopped"),
    ],
)
def test_a_hangup_whose_new_processes_do_not_serve_leaves_the_old_ones_serving(
    tmp_path: Path, hang: bool, options: tuple[str, ...], says: str
) -> None:
    """A process listens before its app has imported; replacing the old one then would
    leave nothing that serves (and a bad deploy stopped everything)."""
    broken = tmp_path / "broken"
    process = own_app(tmp_path, broken, *options, hang=hang)
    log = tmp_path / "serve.log"
    try:
        wait_until(lambda: log.read_text().count("Application startup complete") == 2, "two serving", 60)
        before = children(process.pid)
        broken.touch()
        os.kill(process.pid, signal.SIGHUP)
        wait_until(lambda: log.read_text().count(says) == 2, "both new processes given up", 60)
        assert process.poll() is None
        assert children(process.pid) == before and all(alive(pid) for pid in before)
        wait_until(lambda: server_processes(process.pid) == before, "no new process left behind", 30)
        broken.unlink()
        os.kill(process.pid, signal.SIGHUP)
        wait_until(lambda: not any(alive(pid) for pid in before), "the old processes replaced", 60)
        wait_until(lambda: len(children(process.pid)) == 2, "two new server processes", 60)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(30) == 0, log.read_text()


def test_an_app_that_cannot_start_stops_serve_instead_of_being_started_again(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.touch()
    process = own_app(tmp_path, broken)
    try:
        assert process.wait(60) == 1
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    log = (tmp_path / "serve.log").read_text()
    assert "RuntimeError: this deploy is broken" in log
    assert "failed to start; stopping" in log
    assert "starting another" not in log


def test_server_processes_whose_supervisor_was_killed_while_they_started_still_serve(tmp_path: Path) -> None:
    """Telling a supervisor that is gone that it serves must not end a process."""
    broken = tmp_path / "broken"
    broken.touch()
    process = own_app(tmp_path, broken, hang=True)
    try:
        wait_until(lambda: len(server_processes(process.pid)) == 2, "two server processes", 60)
        orphans = server_processes(process.pid)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        broken.unlink()
        log = tmp_path / "serve.log"
        wait_until(lambda: log.read_text().count("Application startup complete") == 2, "both serving", 60)
        time.sleep(0.5)  # what a failed send would have ended by now
        assert all(alive(pid) for pid in orphans), log.read_text()
        port = int(process.args[process.args.index("--port") + 1])  # type: ignore[union-attr]
        assert answers(f"http://127.0.0.1:{port}")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
