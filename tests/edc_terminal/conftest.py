"""Fixtures for the EDC tests: demo cards, a fixed clock and the fake switch."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from shared.banks import BANKS
from shared.cards import make_pan

from tests.edc_terminal.fakes import Account, FakeSwitch, FixedClock

BNI = BANKS["bni"]
PAN = make_pan(BNI.iin, 1)
PIN = "123456"
POOR_PAN = make_pan(BNI.iin, 2)
POOR_PIN = "111111"
START_BALANCE = 150_000


@pytest.fixture
def fixed_clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def fake_switch() -> Iterator[FakeSwitch]:
    accounts = {PAN: Account(PIN, START_BALANCE), POOR_PAN: Account(POOR_PIN, 0)}
    switch = FakeSwitch(accounts).start()
    try:
        yield switch
    finally:
        switch.stop()


@pytest.fixture
def closed_port() -> int:
    """A local port nobody listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
