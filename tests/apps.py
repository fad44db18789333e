"""Helpers for tests that drive the Textual apps against a real network: bounded waits only."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

from edc_terminal.terminal import EdcTerminal

from tests.switch.network import Network

SETTLE_S = 15.0


def start_network(tmp: Path) -> Iterator[Network]:
    """A BNI bank process and the switch on ephemeral ports (SQLite), for one test module."""
    network = Network(tmp, {"data_dir": tmp}).start()
    try:
        yield network
    finally:
        network.stop()


async def settle(pilot, terminal: EdcTerminal, timeout_s: float = SETTLE_S) -> None:  # noqa: ANN001
    """Wait until the terminal has no message in flight (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    await pilot.pause()
    while terminal.busy and loop.time() < deadline:
        await pilot.pause(0.02)
    assert not terminal.busy, "the terminal is still waiting for the switch"
    await pilot.pause()


async def eventually(predicate: Callable[[], bool], timeout_s: float = SETTLE_S) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return predicate()
