"""`serve`'s HTTP protocol: uvicorn's, with the writes of one turn of the event loop sent as
one (`_http.JoinedWrites`)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from incident_webhooks import _http
from servers import free_port, wait_until

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Recording(asyncio.Transport):
    """A transport that records what is done to it, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, bytes]] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.calls.append(("write", bytes(data)))

    def close(self) -> None:
        self.closing = True
        self.calls.append(("close", b""))

    def abort(self) -> None:
        self.closing = True
        self.calls.append(("abort", b""))

    def write_eof(self) -> None:
        self.calls.append(("write_eof", b""))

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 7


def joined() -> tuple[_http.JoinedWrites, Recording]:
    recording = Recording()
    return _http.JoinedWrites(recording, asyncio.get_running_loop()), recording


async def a_turn() -> None:
    await asyncio.sleep(0)


def test_the_writes_of_one_turn_leave_as_one_write_in_order() -> None:
    async def main() -> None:
        transport, recording = joined()
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        transport.writelines([b"o", bytearray(b"k")])
        assert recording.calls == []
        assert transport.get_write_buffer_size() == 7 + 40
        await a_turn()
        assert recording.calls == [("write", b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")]
        transport.write(b"next")
        await a_turn()
        assert recording.calls[1:] == [("write", b"next")]

    asyncio.run(main())


def test_once_join_limit_bytes_wait_they_leave_at_once_and_in_order() -> None:
    async def main() -> None:
        transport, recording = joined()
        half = b"h" * (_http.JoinedWrites.JOIN_LIMIT // 2)
        transport.write(b"head")
        transport.write(half)
        assert recording.calls == []
        transport.write(half)
        assert recording.calls == [("write", b"head" + half + half)], "sent within the turn"
        assert transport.get_write_buffer_size() == 7
        transport.write(b"tail")
        await a_turn()
        assert recording.calls[1:] == [("write", b"tail")]
        await a_turn()
        assert len(recording.calls) == 2

    asyncio.run(main())


def test_close_and_write_eof_send_what_waits_first_and_abort_drops_it() -> None:
    async def main() -> None:
        transport, recording = joined()
        transport.write(b"a")
        transport.write_eof()
        transport.write(b"b")
        transport.close()
        assert recording.calls == [("write", b"a"), ("write_eof", b""), ("write", b"b"), ("close", b"")]
        await a_turn()
        assert len(recording.calls) == 4, "the flush scheduled before close found nothing"

        transport, recording = joined()
        transport.write(b"never")
        transport.abort()
        await a_turn()
        assert recording.calls == [("abort", b"")]

    asyncio.run(main())


def test_bytes_left_for_a_connection_lost_meanwhile_are_dropped() -> None:
    async def main() -> None:
        transport, recording = joined()
        transport.write(b"late")
        recording.closing = True  # the peer went away before the turn ended
        await a_turn()
        assert recording.calls == []

    asyncio.run(main())


def test_a_large_answer_written_in_one_turn_still_meets_the_transports_flow_control() -> None:
    """An app that sends a large body chunk after chunk, without anything else to await,
    writes it all in one turn of the loop: held back until the turn ends, the transport
    never saw it and never paused the protocol, and the whole body sat in memory."""

    class Paused(asyncio.Protocol):
        def __init__(self) -> None:
            self.paused_after: int | None = None
            self.written = 0

        def pause_writing(self) -> None:
            if self.paused_after is None:
                self.paused_after = self.written

    async def main() -> None:
        # A peer that reads nothing: the kernel's buffers fill, then the transport's own.
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        protocol = Paused()
        transport, _ = await loop.create_connection(lambda: protocol, "127.0.0.1", port)
        transport.set_write_buffer_limits(high=64 * 1024)
        joined = _http.JoinedWrites(transport, loop)
        chunk = b"x" * 16 * 1024
        for _ in range(4096):  # 64 MiB, more than the kernel's buffers take
            joined.write(chunk)
            protocol.written += len(chunk)
            if protocol.paused_after is not None:
                break
        assert protocol.paused_after is not None, "the protocol was never asked to pause"
        assert protocol.paused_after < 16 * 1024 * 1024, "it paused, but only at the end"
        assert joined.get_write_buffer_size() >= 64 * 1024
        transport.abort()
        server.close()

    asyncio.run(main())


@pytest.fixture(params=[1, 2], ids=["one process", "two processes"])
def serving(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "incident_webhooks", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(request.param), "--inbox", f"sqlite:///{tmp_path}/inbox.db", "--no-worker"],
        env={**os.environ, "INCIDENT_WEBHOOK_SECRET": SECRET}, stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "serve.log").open("wb"), start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(lambda: connects(port), "serving", 60)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        # One process is uvicorn's own, which ends by the signal it was stopped with.
        assert process.wait(30) in (0, -signal.SIGTERM), (tmp_path / "serve.log").read_text()


def connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def split(stream: bytes) -> list[tuple[bytes, bytes]]:
    """Answers one after another on a connection, as (status line, body)."""
    answers = []
    while stream:
        head, _, rest = stream.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length:"))
        answers.append((lines[0], rest[:length]))
        assert len(rest) >= length, stream
        stream = rest[length:]
    return answers


def test_each_answer_arrives_whole_in_the_first_read(serving: int) -> None:
    """uvicorn sends an answer's head and its body in two writes; a client reading as soon
    as bytes arrive then often got the head alone. One write is one segment here (an answer
    is far below the loopback MTU), which a read takes whole."""
    with socket.create_connection(("127.0.0.1", serving), timeout=10) as client:
        for _ in range(200):
            client.sendall(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
            answer = client.recv(65536)
            assert split(answer) == [(b"HTTP/1.1 200 OK", b'{"status":"ok"}')], answer


def test_pipelined_requests_are_answered_in_order_on_one_connection(serving: int) -> None:
    with socket.create_connection(("127.0.0.1", serving), timeout=10) as client:
        client.sendall(
            b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n"
            b"GET /nowhere HTTP/1.1\r\nhost: test\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n"
        )
        received = b""
        while chunk := client.recv(65536):
            received += chunk
    assert [status for status, _ in split(received)] == [
        b"HTTP/1.1 200 OK", b"HTTP/1.1 404 Not Found", b"HTTP/1.1 200 OK"
    ], received  # fmt: skip
