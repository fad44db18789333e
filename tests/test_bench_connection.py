"""A `sembako bench` terminal connection: a request the switch never answers comes back as None
once its reply timeout has passed (one sweep timer per connection, no timer per request), and
the answered ones leave nothing behind."""

from __future__ import annotations

import asyncio
import time

import pytest

from sembako import bench
from sembako.bench import Connection
from shared import iso8583, protocol
from shared.banks import get_bank


async def answering_every_other_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A switch that answers the first echo of each pair and ignores the second."""
    for n in range(1_000):
        try:
            body = await iso8583.read_frame(reader, 5_000)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            break
        if n % 2 == 0:
            request = iso8583.decode(body[iso8583.TPDU_BYTES :])
            answer = protocol.response(request, "00")
            writer.write(iso8583.frame(iso8583.Tpdu(0, 1), iso8583.encode(answer)))
    writer.close()


def test_an_unanswered_request_is_none_after_its_timeout_and_nothing_is_left_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "REPLY_TIMEOUT_S", 0.3)
    monkeypatch.setattr(bench, "SWEEP_S", 0.05)

    async def main() -> tuple:
        server = await asyncio.start_server(answering_every_other_echo, "127.0.0.1", 0)
        connection = Connection(get_bank("bni"), 9, first_stan=1)
        await connection.open("127.0.0.1", server.sockets[0].getsockname()[1])
        try:
            started = time.monotonic()
            answers = [
                await connection.request(protocol.network_request(connection.terminal, iso8583.ECHO, connection.next_stan(), connection.clock.now()), mac=False)
                for _ in range(4)
            ]
            elapsed_s = time.monotonic() - started
            await asyncio.sleep(0.1)  # one more sweep
            return answers, elapsed_s, dict(connection._waiting), len(connection._deadlines)
        finally:
            await connection.close()
            server.close()

    answers, elapsed_s, waiting, deadlines = asyncio.run(main())

    assert [a is not None and a["39"] for a in answers] == ["00", False, "00", False]
    assert 0.6 <= elapsed_s < 5.0  # two requests waited out their 0.3 s, none waited forever
    assert waiting == {} and deadlines == 0
