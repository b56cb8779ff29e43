"""``serve --workers N``: N server processes, each with a listening socket of its own.

uvicorn's own ``--workers`` gives every process one shared socket, and the process that
wakes first accepts most connections: under 32 keep-alive connections one took 24, its
core saturated, while the other had a third of one to spare. Here the parent opens N
sockets on the address with ``SO_REUSEPORT`` and gives one to each process; the kernel
spreads new connections over the sockets by their addresses. The parent keeps its copy of
each socket, so a connection the kernel queued on one is never refused while its process
is replaced: the next process accepts it. The parent supervises: it starts the processes,
starts one again when it dies (not one that exited before it served: that would fail the
same way again, so everything stops), on SIGHUP replaces them one by one (the new one
says it serves before the old one stops, and a new one that fails to start leaves the
old one serving), and on SIGINT or SIGTERM stops them all (each finishes its requests)
and waits.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading
import time
import typing

logger = logging.getLogger(__name__)

BACKLOG = 2048
# How long a stopping process waits, its socket closed, before it ends its connections
# that have no request yet: uvicorn closes such a connection unanswered, and a client
# that had just connected and sent its request got no response (1 in ~600 requests
# while processes were replaced).
QUIET_SECONDS = 0.25
# How long a process that never served is given to end on SIGTERM before SIGKILL: it has
# no requests to finish.
KILL_AFTER_SECONDS = 2


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


def _serve_one(
    app: str,
    sock: socket.socket,
    options: dict[str, typing.Any],
    ready: multiprocessing.connection.Connection,
) -> None:
    """One server process (in a child started by ``spawn``) accepting on ``sock``; sends
    on ``ready`` once it serves: until its app has imported and started, the process
    before it on ``sock`` goes on accepting."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            try:
                if self.started:
                    ready.send(True)
                ready.close()
            except OSError:  # the supervisor is gone (killed): serve on regardless
                pass

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            for server in self.servers:
                server.close()
            await asyncio.sleep(QUIET_SECONDS)
            await super().shutdown(sockets)

    host, port = sock.getsockname()[:2]
    # An app that does not import or start ends this process without a word on ``ready``.
    Server(uvicorn.Config(app, host=host, port=port, **options)).run(sockets=[sock])


def run(
    app: str,
    host: str,
    port: int,
    processes: int,
    startup_timeout: float = 60,
    **options: typing.Any,
) -> int:
    """Serve ``app`` (uvicorn's import string) from ``processes`` processes until SIGINT
    or SIGTERM; 0, or 1 when a process exited before serving. A process that replaces
    another (SIGHUP) and does not serve within ``startup_timeout`` seconds is stopped, and
    the one it was to replace goes on."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(processes):
            sockets.append(listening_socket(host, port))
    except OSError as exc:  # one line, before any process starts
        print(f"error: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        for sock in sockets:
            sock.close()
        return 1
    try:
        return _supervise(app, sockets, startup_timeout, options)
    finally:
        for sock in sockets:
            sock.close()


def _supervise(
    app: str,
    sockets: list[socket.socket],
    startup_timeout: float,
    options: dict[str, typing.Any],
) -> int:
    context = multiprocessing.get_context("spawn")
    stopping = threading.Event()
    replacing = threading.Event()

    def stop(signum: int, frame: object) -> None:
        stopping.set()

    def replace(signum: int, frame: object) -> None:
        replacing.set()

    handlers = {signal.SIGINT: stop, signal.SIGTERM: stop, signal.SIGHUP: replace}
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}

    def start(sock: socket.socket) -> _Child:
        ready, told = context.Pipe(duplex=False)
        process = context.Process(
            target=_serve_one, args=(app, sock, options, told), daemon=False
        )
        process.start()
        told.close()  # the child's end: this one's copy would keep ``ready`` from ending
        return _Child(process, sock, ready)

    failed = False
    children = [start(sock) for sock in sockets]
    try:
        while not stopping.is_set():
            # A child's end wakes the loop; a signal is seen within the timeout.
            multiprocessing.connection.wait([c.process.sentinel for c in children], 0.2)
            if replacing.is_set() and not stopping.is_set():
                replacing.clear()
                children = [
                    (
                        child
                        if stopping.is_set()
                        else _replaced(child, start, stopping, startup_timeout)
                    )
                    for child in children
                ]
            for n, child in enumerate(children):
                if stopping.is_set() or child.process.is_alive():
                    continue
                child.end()
                # Killed by a signal (-N) is not the app's failure: started again.
                exitcode = child.process.exitcode
                if not child.served() and exitcode is not None and exitcode >= 0:
                    logger.error(
                        "server process %s failed to start; stopping", child.process.pid
                    )
                    failed = True
                    stopping.set()
                    break
                logger.warning(
                    "server process %s ended (exit code %s); starting another",
                    child.process.pid, child.process.exitcode,
                )  # fmt: skip
                children[n] = start(child.sock)
    finally:
        for sock in sockets:
            sock.close()  # refused from now on, not queued where nothing will accept
        for child in children:
            child.stop()
        for child in children:
            child.end()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 1 if failed else 0


class _Child:
    """A server process and the pipe on which it says that it serves."""

    def __init__(
        self,
        process: multiprocessing.process.BaseProcess,
        sock: socket.socket,
        ready: multiprocessing.connection.Connection,
    ) -> None:
        self.process = process
        self.sock = sock
        self.ready = ready
        self._served = False
        # Its pipe closed without a word: it ended (or is ending) before it served.
        self.ended_unserved = False

    def served(self) -> bool:
        """Whether it has said that it serves (what it sent outlives its end)."""
        try:
            while not self._served and not self.ready.closed and self.ready.poll():
                self._served = bool(self.ready.recv())
        except EOFError:
            self.ended_unserved = not self._served
        return self._served

    def serving(self, stopping: threading.Event, timeout: float) -> bool:
        """Waits until the process serves (True), or ends before it does, ``stopping`` is
        set or ``timeout`` seconds pass (False): a startup that hangs must neither keep
        SIGTERM from stopping all nor hold the supervisor for ever."""
        deadline = time.monotonic() + timeout
        while not stopping.is_set() and time.monotonic() < deadline:
            if not multiprocessing.connection.wait([self.ready], 0.2):
                continue
            return self.served()  # False: closed without a word, it failed or died
        return False

    def stop(self) -> None:
        if self.process.is_alive() and self.process.pid is not None:
            os.kill(self.process.pid, signal.SIGTERM)

    def kill(self) -> None:
        """SIGTERM, then SIGKILL if it has not ended (for a process that never served): one
        stuck in its app's import or factory never acts on SIGTERM."""
        self.stop()
        self.process.join(KILL_AFTER_SECONDS)
        if self.process.is_alive():
            self.process.kill()

    def end(self) -> None:
        self.process.join()
        self.served()  # read before the pipe closes
        self.ready.close()


def _replaced(
    child: _Child,
    start: typing.Callable[[socket.socket], _Child],
    stopping: threading.Event,
    timeout: float,
) -> _Child:
    """A new process on ``child``'s socket, serving before ``child`` is stopped."""
    new = start(child.sock)
    if not new.serving(stopping, timeout):
        failed = new.ended_unserved
        if failed:  # ending by itself: left to, so that its exit code says how
            new.process.join(KILL_AFTER_SECONDS)
        new.kill()
        new.end()
        if stopping.is_set():
            return child
        if failed:
            logger.error(
                "a new server process failed to start (exit code %s); process %s goes on",
                new.process.exitcode, child.process.pid,
            )  # fmt: skip
        else:
            logger.error(
                "a new server process did not serve within %gs and was stopped; "
                "process %s goes on",
                timeout, child.process.pid,
            )  # fmt: skip
        return child
    child.stop()
    child.end()
    return new
