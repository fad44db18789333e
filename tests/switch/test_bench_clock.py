"""`sembako bench` terminals keep WIB time, as the EDCs and the switch do, whatever the time zone
of the machine running the load (fields 7, 12 and 13 are local time of the network)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from shared.banks import get_bank
from shared.clock import WIB
from sembako.bench import Connection


@pytest.fixture
def machine_in_lima(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "America/Lima")  # UTC-5, twelve hours behind WIB
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_bench_terminals_use_wib_not_the_machine_clock(machine_in_lima: None) -> None:
    connection = Connection(get_bank("bni"), 9, first_stan=1)
    before, now, after = datetime.now(WIB).replace(tzinfo=None), connection.clock.now(), datetime.now(WIB).replace(tzinfo=None)
    assert before <= now <= after
    assert abs(now - datetime.now()) > timedelta(hours=11)  # the machine's local time is not used
