"""``serve --workers N``: N server processes, each with a listening socket of its own.

uvicorn's own ``--workers`` gives every process one shared socket, and the process that
wakes first accepts most connections: under 32 keep-alive connections one took 24, its
core saturated, while the other had a third of one to spare. Here each process binds the
address itself with ``SO_REUSEPORT``, and the kernel spreads new connections over the
sockets by their addresses. The parent only supervises: it starts the processes, starts
one again when it dies (not when it failed before serving: that would fail the same way
again), on SIGHUP replaces them one by one (the new one listens before the old one stops,
so the address keeps answering), and on SIGINT or SIGTERM stops them all (each finishes
its requests) and waits.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading
import typing

logger = logging.getLogger(__name__)

# A process that exits with this code failed before it served (as uvicorn's own).
STARTUP_FAILURE = 3
BACKLOG = 2048


def available() -> bool:
    return hasattr(socket, "SO_REUSEPORT") and sys.platform.startswith("linux")


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` with SO_REUSEPORT, listening."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def _cannot_listen(host: str, port: int, exc: OSError) -> None:
    print(f"error: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)


def _serve_one(app: str, host: str, port: int, options: dict[str, typing.Any]) -> None:
    """One server process (in a child started by ``spawn``)."""
    import uvicorn

    try:
        sock = listening_socket(host, port)
    except OSError as exc:
        _cannot_listen(host, port, exc)
        sys.exit(STARTUP_FAILURE)
    config = uvicorn.Config(app, host=host, port=port, **options)
    try:
        config.load()  # an app that does not import is a failure to start, not a death
    except SystemExit:
        sys.exit(STARTUP_FAILURE)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def run(app: str, host: str, port: int, processes: int, **options: typing.Any) -> int:
    """Serve ``app`` (uvicorn's import string) from ``processes`` processes until SIGINT
    or SIGTERM; 0, or 1 when a process failed before serving."""
    # Refused here, in one line, before any process starts: the address is taken by a
    # socket that does not share it.
    try:
        listening_socket(host, port).close()
    except OSError as exc:
        _cannot_listen(host, port, exc)
        return 1
    context = multiprocessing.get_context("spawn")
    stopping = threading.Event()
    replacing = threading.Event()

    def stop(signum: int, frame: object) -> None:
        stopping.set()

    def replace(signum: int, frame: object) -> None:
        replacing.set()

    handlers = {signal.SIGINT: stop, signal.SIGTERM: stop, signal.SIGHUP: replace}
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}

    def start() -> multiprocessing.process.BaseProcess:
        child = context.Process(
            target=_serve_one, args=(app, host, port, options), daemon=False
        )
        child.start()
        return child

    failed = False
    children = [start() for _ in range(processes)]
    try:
        while not stopping.is_set():
            # A child's end wakes the loop; a signal is seen within the timeout.
            multiprocessing.connection.wait([c.sentinel for c in children], 0.2)
            if replacing.is_set() and not stopping.is_set():
                replacing.clear()
                children = [_replaced(child, start) for child in children]
            for n, child in enumerate(children):
                if stopping.is_set() or child.is_alive():
                    continue
                child.join()
                if child.exitcode == STARTUP_FAILURE:
                    logger.error(
                        "server process %s failed to start; stopping", child.pid
                    )
                    failed = True
                    stopping.set()
                    break
                logger.warning(
                    "server process %s ended (exit code %s); starting another",
                    child.pid, child.exitcode,
                )  # fmt: skip
                children[n] = start()
    finally:
        for child in children:
            if child.is_alive() and child.pid is not None:
                os.kill(child.pid, signal.SIGTERM)
        for child in children:
            child.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 1 if failed else 0


def _replaced(
    child: multiprocessing.process.BaseProcess,
    start: typing.Callable[[], multiprocessing.process.BaseProcess],
) -> multiprocessing.process.BaseProcess:
    """A new process for ``child``'s place, listening before ``child`` is stopped."""
    new = start()
    while new.is_alive() and not listening(new.pid):
        multiprocessing.connection.wait([new.sentinel], 0.05)
    if not new.is_alive():
        new.join()
        logger.error(
            "a new server process failed to start (exit code %s); process %s goes on",
            new.exitcode, child.pid,
        )  # fmt: skip
        return child
    if child.is_alive() and child.pid is not None:
        os.kill(child.pid, signal.SIGTERM)
    child.join()
    return new


# A TCP socket's state in /proc/net/tcp.
LISTEN, ESTABLISHED = "0A", "01"


def listening(pid: int | None) -> bool:
    """Whether process ``pid`` holds a listening TCP socket (Linux's /proc)."""
    inodes = socket_inodes(pid)
    return any(state == LISTEN and inode in inodes for _, state, inode in tcp_sockets())


def tcp_sockets() -> list[tuple[int, str, str]]:
    """Every TCP socket of this host's network namespace as (local port, state, inode)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as lines:
                rows = [line.split() for line in list(lines)[1:]]
        except OSError:
            continue  # no IPv6
        found += [(int(row[1].rsplit(":", 1)[1], 16), row[3], row[9]) for row in rows]
    return found


def socket_inodes(pid: int | None) -> set[str]:
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
