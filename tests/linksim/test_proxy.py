"""The link proxy over real sockets on 127.0.0.1, against an echo upstream."""

from __future__ import annotations

import asyncio
import time

import pytest

from linksim import (
    DIRECT,
    OFFLINE,
    TO_SWITCH,
    TO_TERMINAL,
    VSAT,
    LinkProfile,
    LinkProxy,
)

from .conftest import Client, EchoUpstream, message


def proxy_for(echo: EchoUpstream, profile: LinkProfile = DIRECT, seed: int = 1, time_scale: float = 1.0) -> LinkProxy:
    return LinkProxy("127.0.0.1", 0, "127.0.0.1", echo.port, profile, seed=seed, time_scale=time_scale)


async def round_trip(client: Client, n: int) -> bytes:
    await client.send(n)
    return await client.receive()


async def test_frames_pass_unchanged_on_a_zero_delay_profile(echo: EchoUpstream) -> None:
    async with proxy_for(echo) as proxy:
        client = await Client.connect(proxy.port)
        for n in range(20):
            assert await round_trip(client, n) == message(n)
        await client.close()
        counters = proxy.counters
    assert [body[5:] for body in echo.received] == [message(n) for n in range(20)]
    assert counters.forwarded == {TO_SWITCH: 20, TO_TERMINAL: 20}
    assert counters.dropped == {TO_SWITCH: 0, TO_TERMINAL: 0}


async def test_vsat_fast_delays_a_round_trip_by_about_the_scaled_rtt(echo: EchoUpstream) -> None:
    calm_vsat = LinkProfile("vsat", rtt_ms=600, jitter_ms=100, bandwidth_bytes_per_s=4_096)  # no loss
    async with proxy_for(echo, calm_vsat, time_scale=20) as proxy:
        client = await Client.connect(proxy.port)
        elapsed_ms = []
        for n in range(5):
            started = time.monotonic()
            assert await round_trip(client, n) == message(n)
            elapsed_ms.append((time.monotonic() - started) * 1000)
        await client.close()
        assert proxy.state == "VSAT ~600 ms"
    # 600 ms +- 100 ms, plus 2 x 17 bytes at 4 KB/s, all / 20: 25..36 ms, plus scheduling slack
    assert all(22 <= ms <= 150 for ms in elapsed_ms), elapsed_ms


async def drop_pattern(echo: EchoUpstream, seed: int) -> list[int]:
    """Which of 200 frames reach the upstream on a lossy profile."""
    echo.received.clear()
    lossy = LinkProfile("lossy", loss=0.3)
    async with proxy_for(echo, lossy, seed=seed) as proxy:
        client = await Client.connect(proxy.port)
        for n in range(200):
            await client.send(n)
        for _ in range(100):  # until the upstream has seen every frame the proxy forwarded
            counters = proxy.counters
            if counters.forwarded[TO_SWITCH] + counters.dropped[TO_SWITCH] == 200:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.05)
        await client.close()
    return [int(body[-6:]) for body in echo.received]


async def test_the_same_seed_replays_the_same_drops_and_another_differs(echo: EchoUpstream) -> None:
    first = await drop_pattern(echo, seed=7)
    again = await drop_pattern(echo, seed=7)
    other = await drop_pattern(echo, seed=8)
    assert first == again
    assert first != other
    assert 100 < len(first) < 180  # about 70 % of 200 get through


@pytest.mark.parametrize("direction", [TO_SWITCH, TO_TERMINAL])
async def test_drop_next_loses_exactly_one_frame_in_that_direction(echo: EchoUpstream, direction: str) -> None:
    async with proxy_for(echo) as proxy:
        client = await Client.connect(proxy.port)
        assert await round_trip(client, 1) == message(1)
        proxy.drop_next(direction)
        await client.send(2)
        with pytest.raises(TimeoutError):
            await client.receive(timeout_ms=300)  # this request only times out
        assert await round_trip(client, 3) == message(3)
        await client.close()
        counters = proxy.counters
    seen = [int(body[-6:]) for body in echo.received]
    assert seen == ([1, 3] if direction == TO_SWITCH else [1, 2, 3])
    assert counters.dropped == {TO_SWITCH: 0, TO_TERMINAL: 0, direction: 1}


async def test_duplicate_next_delivers_the_frame_twice(echo: EchoUpstream) -> None:
    async with proxy_for(echo) as proxy:
        client = await Client.connect(proxy.port)
        proxy.duplicate_next(TO_SWITCH)
        await client.send(1)
        assert [await client.receive(), await client.receive()] == [message(1), message(1)]
        await client.send(2)
        assert await client.receive() == message(2)
        with pytest.raises(TimeoutError):
            await client.receive(timeout_ms=200)
        await client.close()
        assert proxy.counters.duplicated == {TO_SWITCH: 1, TO_TERMINAL: 0}
    assert [int(body[-6:]) for body in echo.received] == [1, 1, 2]


async def test_delay_next_holds_one_frame_and_keeps_the_order(echo: EchoUpstream) -> None:
    async with proxy_for(echo) as proxy:
        client = await Client.connect(proxy.port)
        proxy.delay_next(TO_TERMINAL, 200)
        started = time.monotonic()
        await client.send(1)
        await client.send(2)
        assert [await client.receive(), await client.receive()] == [message(1), message(2)]
        assert time.monotonic() - started >= 0.19
        await client.close()


async def test_a_burst_held_behind_a_delayed_frame_arrives_whole_in_order_and_counted(echo: EchoUpstream) -> None:
    """Frames due together leave in one write: the upstream still reads each one whole."""
    async with proxy_for(echo) as proxy:
        client = await Client.connect(proxy.port)
        proxy.delay_next(TO_SWITCH, 100)
        for n in range(40):  # 39 frames queue behind the delayed first, all due at once
            await client.send(n)
        answers = [await client.receive() for _ in range(40)]
        await client.close()
        counters = proxy.counters
    assert answers == [message(n) for n in range(40)]
    assert [body[5:] for body in echo.received] == [message(n) for n in range(40)]
    assert counters.forwarded == {TO_SWITCH: 40, TO_TERMINAL: 40}


async def test_forgotten_steers_touch_no_frame(echo: EchoUpstream) -> None:
    async with proxy_for(echo) as proxy:
        client = await Client.connect(proxy.port)
        proxy.drop_next(TO_TERMINAL)
        proxy.drop_next(TO_SWITCH)
        proxy.duplicate_next(TO_TERMINAL)
        proxy.delay_next(TO_SWITCH, 5_000)
        assert proxy.forget_steering() == 4  # noqa: PLR2004
        assert [await round_trip(client, n) for n in (1, 2)] == [message(1), message(2)]
        with pytest.raises(TimeoutError):
            await client.receive(timeout_ms=100)  # no duplicate either
        await client.close()
        counters = proxy.counters
    assert proxy.forget_steering() == 0
    assert counters.dropped == {TO_SWITCH: 0, TO_TERMINAL: 0}


async def test_cut_closes_connections_and_refuses_new_ones_until_healed(echo: EchoUpstream) -> None:
    async with proxy_for(echo) as proxy:
        client = await Client.connect(proxy.port)
        assert await round_trip(client, 1) == message(1)
        proxy.cut()
        assert proxy.state == "TERPUTUS"
        assert await client.closed()
        refused = await Client.connect(proxy.port)
        assert await refused.closed()
        await client.close()
        await refused.close()
        proxy.heal()
        assert proxy.state == "DIRECT ~0 ms"
        healed = await Client.connect(proxy.port)
        assert await round_trip(healed, 2) == message(2)
        await healed.close()
        counters = proxy.counters
    assert counters.connections_cut == 1
    assert counters.connections_refused == 1


async def test_the_offline_profile_refuses_connections(echo: EchoUpstream) -> None:
    async with proxy_for(echo, OFFLINE) as proxy:
        assert proxy.state == "OFFLINE"
        client = await Client.connect(proxy.port)
        assert await client.closed()
        await client.close()
        assert proxy.counters.connections_refused == 1
    assert echo.received == []


async def test_switching_to_offline_cuts_live_connections(echo: EchoUpstream) -> None:
    async with proxy_for(echo) as proxy:
        client = await Client.connect(proxy.port)
        assert await round_trip(client, 1) == message(1)
        proxy.set_profile(OFFLINE)
        assert await client.closed()
        await client.close()
        assert proxy.state == "OFFLINE"


async def test_a_random_disconnect_closes_both_sides(echo: EchoUpstream) -> None:
    always_cut = LinkProfile("flaky", disconnect_rate=1.0)
    async with proxy_for(echo, always_cut) as proxy:
        client = await Client.connect(proxy.port)
        await client.send(1)
        assert await client.closed()
        await client.close()
        assert proxy.counters.connections_cut == 1
    assert echo.received == []


async def test_steering_refuses_an_unknown_direction(echo: EchoUpstream) -> None:
    proxy = proxy_for(echo)
    with pytest.raises(ValueError, match="direction"):
        proxy.drop_next("sideways")
    with pytest.raises(ValueError, match="delay_ms"):
        proxy.delay_next(TO_SWITCH, -1)
    with pytest.raises(ValueError, match="time_scale"):
        LinkProxy("127.0.0.1", 0, "127.0.0.1", echo.port, VSAT, time_scale=0)


async def test_a_pipelined_burst_travels_together_not_a_queue_length_at_a_time(echo: EchoUpstream) -> None:
    """500 frames sent at once on a 1 s one-way link all reach the upstream after about one
    one-way delay: the proxy holds them in flight together (bounded in bytes, QUEUED_BYTES_MAX),
    as a link does. A bound of 64 frames would take 8 one-way delays."""
    slow = LinkProfile("slow", rtt_ms=2_000)
    async with proxy_for(echo, slow) as proxy:
        client = await Client.connect(proxy.port)
        started = time.monotonic()
        for n in range(500):
            await client.send(n)
        while proxy.counters.forwarded[TO_SWITCH] < 500 and time.monotonic() - started < 8:
            await asyncio.sleep(0.05)
        arrived_s = time.monotonic() - started
        await client.close()
    assert len(echo.received) == 500
    assert 0.9 <= arrived_s <= 3.0, arrived_s
