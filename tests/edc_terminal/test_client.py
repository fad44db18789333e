"""The asyncio client against the fake switch: matching by (MTI class, STAN), several requests
in flight, bounded slots, timeouts and a lost connection."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import pytest

from edc_terminal.client import ClientConfig, SwitchClient, SwitchUnavailable
from shared import protocol
from shared.iso8583 import ECHO, encode

from tests.edc_terminal.fakes import FakeSwitch

TERMINAL = protocol.Terminal("BNI00001", "EWBNI0000000001")


def echo_bytes(stan: str) -> bytes:
    return encode(protocol.network_request(TERMINAL, ECHO, stan, datetime(2026, 11, 3, 9, 0, 0)))


async def echo(client: SwitchClient, stan: str, done: list[str], timeout_ms: int = 1_000) -> str:
    received = await client.request(echo_bytes(stan), "0800", stan, timeout_ms)
    done.append(stan)
    assert received.message["t"] == "0810" and received.raw.startswith(b"0810")
    return received.message["11"]


def test_answers_out_of_order_reach_their_own_request(fake_switch: FakeSwitch) -> None:
    fake_switch.delays_ms = {"000001": 200}

    async def scenario() -> tuple[list[str], list[str]]:
        done: list[str] = []
        async with SwitchClient("127.0.0.1", fake_switch.port) as client:
            stans = await asyncio.gather(*(echo(client, f"00000{i}", done) for i in (1, 2, 3)))
            assert client.in_flight == 0
        return list(stans), done

    stans, done = asyncio.run(asyncio.wait_for(scenario(), 5))
    assert stans == ["000001", "000002", "000003"]
    assert done[-1] == "000001"  # the slow answer came last and still matched


def test_a_silent_stan_times_out_while_others_are_answered(fake_switch: FakeSwitch) -> None:
    fake_switch.silent_stans = {"000007"}

    async def scenario() -> list:
        async with SwitchClient("127.0.0.1", fake_switch.port) as client:
            return await asyncio.gather(echo(client, "000007", [], 300), echo(client, "000008", []), return_exceptions=True)

    started = time.monotonic()
    silent, answered = asyncio.run(asyncio.wait_for(scenario(), 5))
    assert isinstance(silent, TimeoutError) and answered == "000008"
    assert 0.25 < time.monotonic() - started < 2


def test_in_flight_requests_are_bounded(fake_switch: FakeSwitch) -> None:
    fake_switch.delays_ms = {"000001": 200}

    async def scenario() -> list[str]:
        done: list[str] = []
        async with SwitchClient("127.0.0.1", fake_switch.port, ClientConfig(max_in_flight=1)) as client:
            first = asyncio.create_task(echo(client, "000001", done))
            await asyncio.sleep(0.05)
            await echo(client, "000002", done)  # waits for the only slot
            await first
        return done

    assert asyncio.run(asyncio.wait_for(scenario(), 5)) == ["000001", "000002"]


def test_a_dropped_connection_fails_the_waiting_request_at_once(fake_switch: FakeSwitch) -> None:
    fake_switch.drop_on_stans = {"000005"}

    async def scenario() -> None:
        async with SwitchClient("127.0.0.1", fake_switch.port) as client:
            with pytest.raises(SwitchUnavailable, match="terputus"):
                await echo(client, "000005", [], 3_000)
            assert not client.connected
            with pytest.raises(SwitchUnavailable):
                await echo(client, "000006", [], 3_000)

    started = time.monotonic()
    asyncio.run(asyncio.wait_for(scenario(), 5))
    assert time.monotonic() - started < 2


def test_connection_refused_is_a_clear_error(closed_port: int) -> None:
    async def scenario() -> None:
        await SwitchClient("127.0.0.1", closed_port, ClientConfig(connect_timeout_ms=1_000)).connect()

    with pytest.raises(SwitchUnavailable, match=f"127.0.0.1:{closed_port} tidak dapat dihubungi: koneksi ditolak"):
        asyncio.run(asyncio.wait_for(scenario(), 5))
