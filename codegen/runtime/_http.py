"""The HTTP protocol ``serve`` runs: uvicorn's httptools protocol, with each answer leaving
in one send.

uvicorn writes an answer's status line and headers, then its body, as two writes to the
transport: two ``send`` calls and two TCP segments an answer, each a system call made
while the process holds the GIL. Here the writes a connection makes in one turn of the
event loop are joined and sent at the end of that turn. Through two ``serve`` processes on
SQLite kept in RAM (so that only CPU counts), this stored 14 % more deliveries a second at
8 % less CPU each (4 interleaved pairs, 1.07-1.22).

This module imports uvicorn's httptools protocol, so it imports only where httptools is
installed (the ``server`` extra); without it ``serve`` runs uvicorn's own choice.
"""

from __future__ import annotations

import asyncio
import typing

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["JoinedWrites", "Protocol"]


class JoinedWrites(asyncio.Transport):
    """A transport that sends the writes of one turn of the event loop as one.

    Writes keep their order; ``close`` and ``write_eof`` send what is waiting first, and
    ``abort`` drops it, as the transport itself does with what it has not sent. Once
    JOIN_LIMIT bytes wait they are sent at once: a body written chunk after chunk in one
    turn reaches the transport, whose flow control then pauses the protocol, instead of
    sitting here whole."""

    JOIN_LIMIT = 64 * 1024

    def __init__(
        self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop
    ) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._waiting: list[bytes] = []
        self._waiting_size = 0
        self._scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        data = bytes(data)  # the caller may reuse a bytearray or memoryview's buffer
        self._waiting.append(data)
        self._waiting_size += len(data)
        if self._waiting_size >= self.JOIN_LIMIT:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._at_turns_end)

    def writelines(
        self, list_of_data: typing.Iterable[bytes | bytearray | memoryview]
    ) -> None:
        for data in list_of_data:
            self.write(data)

    def _at_turns_end(self) -> None:
        self._scheduled = False
        self._flush()

    def _flush(self) -> None:
        if not self._waiting:
            return
        data = b"".join(self._waiting)  # one item: that same object, not a copy
        self._waiting.clear()
        self._waiting_size = 0
        # A connection lost meanwhile: the transport would drop the bytes with a warning.
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._waiting.clear()
        self._waiting_size = 0
        self._transport.abort()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def get_write_buffer_size(self) -> int:
        return self._waiting_size + self._transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(
        self, high: int | None = None, low: int | None = None
    ) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_extra_info(self, name: str, default: typing.Any = None) -> typing.Any:
        return self._transport.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()


class Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a :class:`JoinedWrites` transport."""

    # As uvicorn's own does, it takes a Transport where asyncio declares a BaseTransport.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(JoinedWrites(transport, asyncio.get_running_loop()))
