"""A connection's answers that are ready in the same turn of the event loop leave in one write,
whole and in order; a later answer leaves in a write of its own; a connection gone meanwhile
costs nothing (no exception in the loop)."""

from __future__ import annotations

import asyncio

from shared import iso8583
from switch.server import _framed, _Outbox


async def _loopback() -> tuple[asyncio.StreamReader, asyncio.StreamWriter, asyncio.Server]:
    """The reading end of a connection to a server, the server's writer, and the server (the
    other ends are kept with it: a stream writer dropped by its owner closes the connection)."""
    accepted: asyncio.Future[tuple] = asyncio.get_running_loop().create_future()
    server = await asyncio.start_server(lambda r, w: accepted.set_result((r, w)), "127.0.0.1", 0)
    reader, client_writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    server_side = await asyncio.wait_for(accepted, 5)
    server.kept = (client_writer, server_side)  # type: ignore[attr-defined]
    return reader, server_side[1], server


def _spy_writes(writer: asyncio.StreamWriter) -> list[int]:
    """The size of each write on `writer` (the real write still happens)."""
    sizes: list[int] = []
    write = writer.write

    def counted(data: bytes) -> None:
        sizes.append(len(data))
        write(data)

    writer.write = counted  # type: ignore[method-assign]
    return sizes


async def _frames(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    return [await iso8583.read_frame(reader, 5_000) for _ in range(count)]


def test_answers_ready_together_leave_in_one_write_in_order() -> None:
    bodies = [b"\x60\x00\x01\x00\x00" + bytes([n]) * (10 + n) for n in range(3)]
    last = b"\x60\x00\x01\x00\x00later"

    async def scenario() -> tuple[list[int], list[bytes], list[bytes]]:
        reader, writer, server = await _loopback()
        sizes = _spy_writes(writer)
        outbox = _Outbox(writer)
        for body in bodies:
            outbox.put(_framed(body))
        together = await _frames(reader, 3)
        outbox.put(_framed(last))
        later = await _frames(reader, 1)
        writer.close()
        server.close()
        return sizes, together, later

    sizes, together, later = asyncio.run(scenario())
    assert together == bodies
    assert later == [last]
    assert sizes == [sum(len(_framed(b)) for b in bodies), len(_framed(last))]


def test_an_answer_to_a_connection_gone_meanwhile_is_dropped_quietly() -> None:
    async def scenario() -> list[object]:
        errors: list[object] = []
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        reader, writer, server = await _loopback()
        outbox = _Outbox(writer)
        outbox.put(_framed(b"\x60\x00\x01\x00\x00first"))
        writer.close()  # before the turn ends: the flush finds it closing
        await asyncio.sleep(0.05)
        outbox.put(_framed(b"\x60\x00\x01\x00\x00second"))
        await asyncio.sleep(0.05)
        assert await reader.read() == b""  # nothing came: the connection ended
        server.close()
        return errors

    assert asyncio.run(scenario()) == []
