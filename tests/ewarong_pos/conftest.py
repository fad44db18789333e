"""A demo e-Warong's books on SQLite and on the real PostgreSQL, with an injected clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ewarong_pos.settings import ShopSettings
from ewarong_pos.store import ShopStore
from shared.clock import FixedClock

EWARONG = "EWBNI0000000001"
TERMINAL = "BNI00001"


@pytest.fixture
def store(storage: dict, clock: FixedClock) -> Iterator[ShopStore]:
    shop = ShopStore.open(ShopSettings(**storage), clock=clock)
    shop.ensure_demo(EWARONG)
    yield shop
    shop.close()
