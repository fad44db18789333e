"""The EDC's own SwitchClient through the proxy to the fake switch: a dropped frame makes only
that request time out; the link's steering works with the real protocol."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime

import pytest

from edc_terminal.client import SwitchClient
from linksim import DIRECT, TO_SWITCH, TO_TERMINAL, LinkProxy
from shared import protocol
from shared.iso8583 import ECHO, encode
from tests.edc_terminal.fakes import FakeSwitch

TERMINAL = protocol.Terminal("BNI00001", "EWBNI0000000001")


@pytest.fixture
def fake_switch() -> Iterator[FakeSwitch]:
    switch = FakeSwitch({}).start()
    try:
        yield switch
    finally:
        switch.stop()


async def echo(client: SwitchClient, stan: str, timeout_ms: int = 1_000) -> str:
    data = encode(protocol.network_request(TERMINAL, ECHO, stan, datetime(2026, 11, 3, 9, 0, 0)))
    received = await client.request(data, "0800", stan, timeout_ms)
    return received.message["11"]


async def echo_with_a_drop(proxy: LinkProxy, direction: str) -> None:
    """Echo 1 answered, echo 2 dropped in `direction` (times out), echo 3 answered."""
    async with SwitchClient("127.0.0.1", proxy.port) as client:
        assert await echo(client, "000001") == "000001"
        proxy.drop_next(direction)
        with pytest.raises(TimeoutError):
            await echo(client, "000002", timeout_ms=300)
        assert await echo(client, "000003") == "000003"


async def echo_five(port: int) -> list[str]:
    """Five echoes in flight at once on one connection."""
    async with SwitchClient("127.0.0.1", port) as client:
        return list(await asyncio.gather(*(echo(client, f"00001{i}") for i in range(5))))


@pytest.mark.parametrize("direction", [TO_SWITCH, TO_TERMINAL])
async def test_a_dropped_frame_times_out_that_request_only(fake_switch: FakeSwitch, direction: str) -> None:
    async with LinkProxy("127.0.0.1", 0, "127.0.0.1", fake_switch.port, DIRECT, seed=3) as proxy:
        await echo_with_a_drop(proxy, direction)
    stans = [m["11"] for m in fake_switch.received]
    assert stans == (["000001", "000003"] if direction == TO_SWITCH else ["000001", "000002", "000003"])


async def test_several_requests_in_flight_keep_their_answers(fake_switch: FakeSwitch) -> None:
    async with LinkProxy("127.0.0.1", 0, "127.0.0.1", fake_switch.port, DIRECT, seed=3) as proxy:
        stans = await echo_five(proxy.port)
    assert stans == [f"00001{i}" for i in range(5)]
