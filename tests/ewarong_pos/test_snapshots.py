"""Snapshots of the cashier's counter: the shop with a cart beside the EDC, and after Terima.
The fake switch answers deterministically; the clock and the timer are fixed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input

from ewarong_pos.app import CashierApp, build_counter
from ewarong_pos.settings import ShopOptions

from tests.edc_terminal.conftest import PAN, PIN, START_BALANCE
from tests.edc_terminal.fakes import Account, FakeSwitch, FixedClock

SIZE = (120, 40)


@pytest.fixture
def fake_switch() -> Iterator[FakeSwitch]:
    switch = FakeSwitch({PAN: Account(PIN, START_BALANCE)}).start()
    yield switch
    switch.stop()


@pytest.fixture
def app(fake_switch: FakeSwitch, tmp_path: Path) -> Iterator[CashierApp]:
    options = ShopOptions("EWBNI0000000001", "BNI00001", "127.0.0.1", fake_switch.port, tmp_path, None)
    counter = build_counter(options, FixedClock(), monotonic=lambda: 1_000.0)
    yield CashierApp(counter, tmp_path)
    counter.store.close()


async def settle(pilot) -> None:  # noqa: ANN001
    for _ in range(500):
        await pilot.pause(0.01)
        if not pilot.app.terminal.busy:
            return
    raise AssertionError("the EDC is still busy")


async def cek_and_cart(pilot) -> None:  # noqa: ANN001
    await settle(pilot)
    pilot.app.query_one("#edc").insert_card(PAN)
    await settle(pilot)
    await pilot.press("f1", *PIN, "enter")
    await settle(pilot)
    catalogue = pilot.app.query_one("#shop-catalogue", DataTable)
    quantity = pilot.app.query_one("#shop-qty", Input)
    for sku, qty in (("BRS-MED", 5), ("TLR-AYM", 10), ("TEMPE", 2)):
        catalogue.move_cursor(row=catalogue.get_row_index(sku))
        quantity.value = str(qty)
        quantity.focus()
        await pilot.press("enter")
    await pilot.pause()


def test_shop_with_a_cart(snap_compare, app: CashierApp) -> None:  # noqa: ANN001
    assert snap_compare(app, terminal_size=SIZE, run_before=cek_and_cart)


def test_shop_after_terima(snap_compare, app: CashierApp) -> None:  # noqa: ANN001
    async def run_before(pilot) -> None:  # noqa: ANN001
        await cek_and_cart(pilot)
        await pilot.press("f9", *PIN, "enter")
        await settle(pilot)
        assert pilot.app.counter.view().last_sale is not None

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
