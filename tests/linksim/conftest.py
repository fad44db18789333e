"""An echo upstream (answers each frame with the same frame) and a raw framed client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from shared.iso8583 import Tpdu, frame, read_frame

TPDU = Tpdu(destination=1, source=2)
READ_TIMEOUT_MS = 2_000


@dataclass
class EchoUpstream:
    """Echoes every frame; records the bodies it received, in order."""

    received: list[bytes] = field(default_factory=list)
    server: asyncio.Server | None = None

    async def start(self) -> EchoUpstream:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                body = await read_frame(reader, 10_000)
                self.received.append(body)
                writer.write(len(body).to_bytes(2, "big") + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            async with asyncio.timeout(2):
                await self.server.wait_closed()


def message(n: int) -> bytes:
    """A numbered test message."""
    return b"0800" + f"{n:06d}".encode()


class Client:
    """A raw terminal-side connection through the proxy."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> Client:
        async with asyncio.timeout(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, n: int) -> None:
        self.writer.write(frame(TPDU, message(n)))
        async with asyncio.timeout(2):
            await self.writer.drain()

    async def receive(self, timeout_ms: int = READ_TIMEOUT_MS) -> bytes:
        """The next frame's message (TPDU stripped)."""
        body = await read_frame(self.reader, timeout_ms)
        return body[5:]

    async def closed(self, timeout_ms: int = READ_TIMEOUT_MS) -> bool:
        """True when the proxy closes this connection within the timeout."""
        try:
            async with asyncio.timeout(timeout_ms / 1000):
                data = await self.reader.read(1)
        except ConnectionError:
            return True
        return data == b""

    async def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def echo() -> AsyncIterator[EchoUpstream]:
    upstream = await EchoUpstream().start()
    yield upstream
    await upstream.stop()
