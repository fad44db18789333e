"""The cashier's counter driven as a cashier drives it (Pilot, keys and clicks) against a real
network: Datang -> Cek -> Pilih -> Bayar -> Terima, with the shop's stock and sales, the bank's
balance and ledger checked after each flow. Also: refusals at the counter, a declined and a
reversed payment that leave the shop untouched, and a sale recovered after a crash."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
from textual.widgets import DataTable, Input

from bank_penyalur.demo import generator
from edc_terminal.terminal import EdcTerminal
from ewarong_pos.app import CashierApp, build_counter
from ewarong_pos.cashier import Counter, Step
from ewarong_pos.settings import ShopOptions
from shared.banks import get_bank
from shared.clock import FixedClock

from tests.conftest import BUSINESS_START
from tests.apps import eventually, settle, start_network
from tests.switch.network import Network

EWARONG = "EWBNI0000000001"
TERMINAL = "BNI00001"
BNI = get_bank("bni")
SPENDABLE = [p for p in (generator.generated_kpm(BNI, i) for i in range(40)) if p.spendable]
BENEFIT_IDR = 150_000
SIZE = (120, 40)


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    yield from start_network(tmp_path_factory.mktemp("cashier-net"))


@pytest.fixture(autouse=True)
def ledger_balanced(network: Network) -> Iterator[None]:
    yield
    network.assert_ledger_balanced()


def shop_options(network: Network) -> ShopOptions:
    """The shop's books and its EDC's state live in the network's data directory for the whole
    module, as in a real e-Warong: the EDC's STAN counter must never start again."""
    return ShopOptions(EWARONG, TERMINAL, "127.0.0.1", network.iso_port, network.tmp, None)


def make_counter(network: Network, timeout_ms: int | None = None) -> Counter:
    counter = build_counter(shop_options(network), FixedClock(BUSINESS_START))
    if timeout_ms is not None:
        config = counter.terminal.core.config
        counter.terminal.core.config = type(config).uniform(timeout_ms)
    return counter


@pytest.fixture
async def running(network: Network) -> AsyncIterator[tuple[CashierApp, object]]:
    counter = make_counter(network)
    app = CashierApp(counter, network.tmp)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, counter.terminal)
            yield app, pilot
    finally:
        counter.store.close()


async def datang_cek(pilot, app: CashierApp, pan: str, pin: str) -> None:  # noqa: ANN001
    await pilot.click("#edc-card-input")
    await pilot.press(*pan, "enter")
    await settle(pilot, app.terminal)
    await pilot.press("f1", *pin, "enter")
    await settle(pilot, app.terminal)


async def pilih(pilot, app: CashierApp, sku: str, qty: int, click: bool = False) -> None:  # noqa: ANN001
    """The cashier picks `sku` in the catalogue, types the quantity and presses Enter (or
    clicks Tambah)."""
    catalogue = app.query_one("#shop-catalogue", DataTable)
    catalogue.move_cursor(row=catalogue.get_row_index(sku))
    quantity = app.query_one("#shop-qty", Input)
    quantity.value = str(qty)
    if click:
        await pilot.click("#shop-add")
    else:
        quantity.focus()
        await pilot.press("enter")
    await pilot.pause()


async def bayar(pilot, app: CashierApp, pin: str) -> None:  # noqa: ANN001
    await pilot.press("f9")
    await pilot.press(*pin, "enter")
    await settle(pilot, app.terminal)


def message(app: CashierApp) -> str:
    return app.counter.view().message or ""


# -- Datang -> Terima -----------------------------------------------------------------------------


async def test_datang_to_terima_records_the_sale_with_its_rrn_and_reduces_stock(running, network: Network) -> None:  # noqa: ANN001
    app, pilot = running
    person, store = SPENDABLE[0], app.counter.store
    stock_before = store.stock(EWARONG)
    sales_before = store.daily_report(EWARONG, BUSINESS_START.date()).sales

    await datang_cek(pilot, app, person.pan, person.pin)
    assert app.counter.view().step is Step.PILIH and app.counter.view().balance_idr == BENEFIT_IDR
    await pilih(pilot, app, "BRS-MED", 5, click=True)
    await pilih(pilot, app, "TLR-AYM", 10)
    view = app.counter.view()
    assert (view.total_idr, view.left_idr) == (5 * 13_000 + 10 * 2_000, BENEFIT_IDR - 85_000)

    await bayar(pilot, app, person.pin)
    view = app.counter.view()
    assert view.step is Step.TERIMA and view.last_sale is not None and view.last_sale.rrn
    sale = view.last_sale
    assert sale.amount_idr == 85_000 and sale.pan_masked.startswith(person.pan[:6]) and person.pan not in sale.pan_masked
    assert "PEMBELIAN SEMBAKO" in app.terminal.printer[-1] and "Rp85.000" in app.terminal.printer[-1]
    stock_after = store.stock(EWARONG)
    assert stock_after["BRS-MED"] == stock_before["BRS-MED"] - 5 and stock_after["TLR-AYM"] == stock_before["TLR-AYM"] - 10
    report = store.daily_report(EWARONG, BUSINESS_START.date())
    assert len(report.sales) == len(sales_before) + 1 and sale.rrn in report.rrns
    assert network.balance_of(person.pan) == BENEFIT_IDR - 85_000


async def test_a_sale_voided_at_the_edc_goes_back_on_the_shelf_and_out_of_the_report(running, network: Network) -> None:  # noqa: ANN001
    """The KPM changes her mind after paying: the cashier voids the purchase on the EDC (F3
    PEMBATALAN, ENTER). The bank gives the money back, and the shop takes the goods back."""
    app, pilot = running
    person, store = SPENDABLE[6], app.counter.store
    stock_before = store.stock(EWARONG)
    await datang_cek(pilot, app, person.pan, person.pin)
    await pilih(pilot, app, "BRS-MED", 3)
    await bayar(pilot, app, person.pin)
    sale = app.counter.view().last_sale
    assert sale is not None and store.stock(EWARONG)["BRS-MED"] == stock_before["BRS-MED"] - 3

    await pilot.click("#slot-take")  # the KPM takes her card; the cashier voids the last purchase
    await pilot.press("f3", "enter")
    await settle(pilot, app.terminal)
    assert "Pembatalan berhasil" in message(app) and "kembali ke stok" in message(app)
    assert "PEMBATALAN" in app.terminal.printer[-1]
    assert store.stock(EWARONG) == stock_before and store.is_voided(TERMINAL, sale.rrn)
    assert sale.rrn not in store.daily_report(EWARONG, BUSINESS_START.date()).rrns
    assert app.counter.view().last_sale is None
    assert network.balance_of(person.pan) == BENEFIT_IDR


async def test_forbidden_goods_are_refused_with_the_reason(running) -> None:  # noqa: ANN001
    app, pilot = running
    person = SPENDABLE[1]
    await datang_cek(pilot, app, person.pan, person.pin)
    await pilih(pilot, app, "GULA", 1)
    assert "gula" in message(app).lower() and not app.counter.view().cart.lines
    await pilih(pilot, app, "MNY-GRG", 1)
    assert "minyak goreng" in message(app).lower() and not app.counter.view().cart.lines


async def test_the_cart_stays_within_the_balance_just_read(running) -> None:  # noqa: ANN001
    app, pilot = running
    person = SPENDABLE[2]
    await pilih(pilot, app, "BRS-MED", 1)
    assert "Cek saldo kartu KPM dahulu" in message(app)
    await datang_cek(pilot, app, person.pan, person.pin)
    await pilih(pilot, app, "DGG-SPI", 2)  # Rp270.000 against Rp150.000
    assert not app.counter.view().cart.lines and "saldo" in message(app).lower()


async def test_a_declined_payment_leaves_stock_and_sales_untouched(running, network: Network) -> None:  # noqa: ANN001
    app, pilot = running
    person, store = SPENDABLE[3], app.counter.store
    await datang_cek(pilot, app, person.pan, person.pin)
    await pilih(pilot, app, "TEMPE", 2)
    stock_before, report_before = store.stock(EWARONG), store.daily_report(EWARONG, BUSINESS_START.date())
    wrong = "000000" if person.pin != "000000" else "999999"
    await bayar(pilot, app, wrong)
    assert app.terminal.outcome.rc == "55" and "Pembayaran gagal" in message(app)
    assert store.stock(EWARONG) == stock_before and store.available(EWARONG) == stock_before
    assert store.daily_report(EWARONG, BUSINESS_START.date()).sales == report_before.sales
    assert network.balance_of(person.pan) == BENEFIT_IDR
    assert app.counter.view().cart.lines  # the KPM can try again


async def test_a_reversed_payment_leaves_stock_and_sales_untouched(network: Network) -> None:
    person = SPENDABLE[4]
    counter = make_counter(network)
    store = counter.store
    try:
        async with CashierApp(counter, network.tmp).run_test(size=SIZE) as pilot:
            app = pilot.app
            await settle(pilot, counter.terminal)
            await datang_cek(pilot, app, person.pan, person.pin)
            await pilih(pilot, app, "TAHU", 3)
            stock_before, sales_before = store.stock(EWARONG), store.daily_report(EWARONG, BUSINESS_START.date()).sales
            config = counter.terminal.core.config  # the EDC gives up before the switch's own bank wait
            counter.terminal.core.config = type(config).uniform(400)
            network.banks["bni"].freeze()
            try:
                await bayar(pilot, app, person.pin)
            finally:
                network.banks["bni"].thaw()
            assert app.terminal.outcome.rc == "91" and "saldo akan dikembalikan" in " ".join(app.terminal.printer[-1].split())
            assert store.stock(EWARONG) == stock_before and store.available(EWARONG) == stock_before
            assert store.daily_report(EWARONG, BUSINESS_START.date()).sales == sales_before
    finally:
        store.close()
    assert await eventually(lambda: network.balance_of(person.pan) == BENEFIT_IDR)


# -- a crash between the approval and the write ---------------------------------------------------


async def test_a_sale_approved_before_a_crash_is_recorded_once_on_start(network: Network) -> None:
    person = SPENDABLE[5]
    first = make_counter(network)
    try:
        await headless_cek(first, person.pan, person.pin)
        assert first.view().balance_idr == BENEFIT_IDR
        assert first.add("BRS-MED", 2)
        stock_before = first.store.stock(EWARONG)
        first._on_purchase = lambda outcome, payment: None  # the app dies before it writes the sale
        assert first.pay()
        await run(first.terminal, lambda t: [t.press(d) for d in (*person.pin, "enter")])
        assert first.terminal.outcome.approved and first.store.stock(EWARONG) == stock_before
        rrn = first.terminal.outcome.rrn
    finally:
        await first.terminal.close()
        first.store.close()

    second = make_counter(network)  # the app starts again
    try:
        messages = second.recover()
        assert messages and rrn in " ".join(messages)
        sale = second.store.sale(TERMINAL, rrn)
        assert sale is not None and sale.amount_idr == 26_000
        assert second.store.stock(EWARONG)["BRS-MED"] == stock_before["BRS-MED"] - 2
        assert second.recover() == []  # once
        assert second.store.stock(EWARONG)["BRS-MED"] == stock_before["BRS-MED"] - 2
        assert network.balance_of(person.pan) == BENEFIT_IDR - 26_000
    finally:
        await second.terminal.close()
        second.store.close()


async def test_a_void_approved_before_a_crash_puts_the_goods_back_on_start(network: Network) -> None:
    person = SPENDABLE[7]
    first = make_counter(network)
    try:
        stock_before, rrn = await headless_sale(first, person, "TLR-AYM", 4)
        first._on_void = lambda outcome, rrn: None  # the app dies before it writes the void
        await void_last_purchase(first)
        assert first.terminal.outcome.approved and not first.store.is_voided(TERMINAL, rrn)
    finally:
        await first.terminal.close()
        first.store.close()

    second = make_counter(network)  # the app starts again
    try:
        messages = second.recover()
        assert rrn in " ".join(messages) and second.store.is_voided(TERMINAL, rrn)
        assert second.store.stock(EWARONG) == stock_before
        assert second.recover() == []  # once
        assert second.store.stock(EWARONG) == stock_before
        assert network.balance_of(person.pan) == BENEFIT_IDR
    finally:
        await second.terminal.close()
        second.store.close()


async def test_a_void_the_edc_stored_takes_the_goods_back_once_it_is_delivered(network: Network) -> None:
    """The cashier voids a sale while the switch cannot be reached: the EDC stores the
    PEMBATALAN and the sale stands. When the link is back, KIRIM PEMBATALAN delivers it: the
    money comes back and the goods go back on the shelf, without restarting the app."""
    person = SPENDABLE[8]
    counter = make_counter(network, timeout_ms=1_000)
    try:
        stock_before, rrn = await headless_sale(counter, person, "BRS-MED", 2)

        link = counter.terminal.link
        await link.close()
        link.port = unused_port()  # the signal is gone
        await void_last_purchase(counter)
        assert not counter.terminal.outcome.approved and counter.terminal.core.pending_reversals
        assert "Penjualan tetap tercatat" in (counter.view().message or "")
        assert not counter.store.is_voided(TERMINAL, rrn)
        assert counter.store.stock(EWARONG)["BRS-MED"] == stock_before["BRS-MED"] - 2

        link.port = network.iso_port  # the signal is back
        counter.terminal.select("kirim_tertunda")
        await asyncio.wait_for(counter.terminal.run_pending(), 15)
        assert not counter.terminal.core.pending_reversals
        assert counter.store.is_voided(TERMINAL, rrn) and rrn in (counter.view().message or "")
        assert counter.store.stock(EWARONG) == stock_before
        assert rrn not in counter.store.daily_report(EWARONG, BUSINESS_START.date()).rrns
        assert network.balance_of(person.pan) == BENEFIT_IDR
    finally:
        await counter.terminal.close()
        counter.store.close()


def unused_port() -> int:
    """A local port nobody listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def headless_sale(counter: Counter, person: generator.GeneratedKpm, sku: str, qty: int) -> tuple[dict[str, int], str]:
    """Datang, Cek, `qty` of `sku` in the cart, Bayar with the PIN: the stock before, the sale's RRN."""
    await headless_cek(counter, person.pan, person.pin)
    stock_before = counter.store.stock(EWARONG)
    assert counter.add(sku, qty) and counter.pay()
    await run(counter.terminal, lambda t: [t.press(d) for d in (*person.pin, "enter")])
    rrn = counter.terminal.outcome.rrn
    assert rrn and counter.store.stock(EWARONG)[sku] == stock_before[sku] - qty
    return stock_before, rrn


async def void_last_purchase(counter: Counter) -> None:
    """The KPM takes the card; the cashier voids the last purchase (PEMBATALAN, ENTER)."""
    counter.terminal.take_card()
    counter.terminal.select("pembatalan")
    await run(counter.terminal, lambda t: t.press("enter"))


async def headless_cek(counter: Counter, pan: str, pin: str) -> None:
    """Power on, Datang and Cek on the counter's EDC without the screen."""
    counter.terminal.power_on()
    await counter.terminal.run_pending()
    await run(counter.terminal, lambda t: t.insert_card(pan))
    counter.terminal.select("cek")
    await run(counter.terminal, lambda t: [t.press(d) for d in (*pin, "enter")])


async def run(terminal: EdcTerminal, inputs) -> None:  # noqa: ANN001
    inputs(terminal)
    await asyncio.wait_for(terminal.run_pending(), 15)


# -- an offline e-Warong (wilayah khusus) -----------------------------------------------------------


async def test_offline_the_cart_is_bound_by_the_offline_allowance_and_the_sale_recorded(network: Network) -> None:
    """The EDC signed on (card list) earlier; now there is no signal. No Cek: the card's offline
    allowance bounds the cart, the KPM's NIK stands in for the PIN, the slip says OFFLINE and the
    shop records the sale under its offline reference. The bank sees it only after the upload."""
    from edc_terminal.headless import run
    from ewarong_pos.app import edc_options_for

    person, tid, ewarong = SPENDABLE[9], "BNI00005", "EWBNI0000000005"
    signed_on = await run("signon", tid, "127.0.0.1", network.iso_port, network.tmp, timeout_ms=5_000)
    assert signed_on["approved"] and "daftar kartu offline dimuat" in signed_on["message"]
    options = ShopOptions(ewarong, tid, "127.0.0.1", network.iso_port, network.tmp, None, link="offline")
    counter = build_counter(options, FixedClock(BUSINESS_START))
    store = counter.store
    try:
        async with CashierApp(counter, network.tmp, edc_options=edc_options_for(options)).run_test(size=SIZE) as pilot:
            app = pilot.app
            await settle(pilot, counter.terminal)
            assert counter.terminal.core.offline
            await pilot.click("#edc-card-input")
            await pilot.press(*person.pan, "enter")
            await settle(pilot, counter.terminal)
            assert counter.view().balance_idr == BENEFIT_IDR and "OFFLINE" in message(app)  # the allowance
            await pilih(pilot, app, "TAHU", 2)
            await bayar(pilot, app, person.record.nik)  # F9, then the NIK instead of the PIN
            outcome = app.terminal.outcome
            assert outcome.approved and outcome.offline and "TRANSAKSI OFFLINE" in app.terminal.printer[-1]
            assert "OFFLINE tercatat" in message(app)
            assert counter.view().balance_idr == BENEFIT_IDR - outcome.amount  # the allowance left
            [sale] = [s for s in store.daily_report(ewarong, BUSINESS_START.date()).sales if s.terminal_id == tid]
            assert sale.rrn == f"OFL{outcome.stan:0>9}" and sale.amount_idr == outcome.amount
    finally:
        store.close()
    assert network.balance_of(person.pan) == BENEFIT_IDR  # not uploaded yet: the bank has not seen it
