"""The EDC emulator driven as a cashier drives it, by keys and by clicks, against a real network
(a BNI bank process and the switch on ephemeral ports). Slips and bank balances are checked
after each flow, and the bank's ledger stays balanced."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from textual.widgets import DataTable

from bank_penyalur.demo import fixture, generator
from edc_terminal.app import EdcApp, EdcOptions, build_terminal
from shared.banks import get_bank
from shared.cards import mask_pan
from shared.clock import FixedClock
from shared.money import format_idr

from tests.conftest import BUSINESS_START
from tests.apps import eventually, settle, start_network
from tests.switch.network import Network

BNI = get_bank("bni")
CARDS = {c.label: c for c in fixture.demo_cards(BNI)}
SPENDABLE = [p for p in (generator.generated_kpm(BNI, i) for i in range(40)) if p.spendable]
BENEFIT_IDR = 150_000
SIZE = (120, 40)
# The switch runs on a thread of this process: under a loaded machine the app's loop can be held
# past a tight connect bound although the port answers at once (a refused port fails at once).
CONNECT_TIMEOUT_MS = 5_000


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    yield from start_network(tmp_path_factory.mktemp("edc-app-net"))


@pytest.fixture(autouse=True)
def ledger_balanced(network: Network) -> Iterator[None]:
    yield
    network.assert_ledger_balanced()


def make_app(network: Network, timeout_ms: int = 5_000, port: int | None = None, tid: str = "BNI00001") -> EdcApp:
    """The EDC `tid`. Its state (STAN counter, keys) lives in the network's data directory
    for the whole module, as a real terminal's does: the switch refuses a STAN used twice."""
    port = port or network.iso_port
    options = EdcOptions(tid, "127.0.0.1", port, network.tmp, timeout_ms, connect_timeout_ms=CONNECT_TIMEOUT_MS)
    return EdcApp(build_terminal(options, FixedClock(BUSINESS_START)))


async def insert_by_typing(pilot, app: EdcApp, pan: str) -> None:  # noqa: ANN001
    await pilot.click("#edc-card-input")
    await pilot.press(*pan, "enter")
    await settle(pilot, app.terminal)


async def insert_demo_card(pilot, app: EdcApp, pan: str) -> None:  # noqa: ANN001
    from textual.widgets import Select

    app.query_one("#edc-card-select", Select).value = pan
    await pilot.pause()
    await pilot.click("#slot-insert")
    await settle(pilot, app.terminal)


def lcd(app: EdcApp) -> str:
    display = app.terminal.display()
    return "\n".join([display.title, *display.lines, display.entry or "", display.message or ""])


def last_slip(app: EdcApp) -> str:
    return app.terminal.printer[-1]


async def cek_by_keys(pilot, app: EdcApp, pan: str, pin: str) -> None:  # noqa: ANN001
    await insert_by_typing(pilot, app, pan)
    await pilot.press("f1", *pin, "enter")
    await settle(pilot, app.terminal)


async def bayar_by_keys(pilot, app: EdcApp, pan: str, pin: str, amount: str) -> None:  # noqa: ANN001
    await insert_by_typing(pilot, app, pan)
    await pilot.press("f2", *amount, "enter", *pin, "enter")
    await settle(pilot, app.terminal)


@pytest.fixture
async def running(network: Network, tmp_path: Path) -> AsyncIterator[tuple[EdcApp, object]]:
    app = make_app(network)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app.terminal)
        yield app, pilot


# -- Cek and Bayar --------------------------------------------------------------------------------


async def test_signs_on_at_power_on_and_shows_the_status_line(running) -> None:  # noqa: ANN001
    app, pilot = running
    status = app.terminal.status()
    assert (status.tid, status.signed_on, status.link) == ("BNI00001", True, "ONLINE")
    assert "SILAKAN MASUKKAN KARTU" in lcd(app)
    assert "BNI00001 BNI | SIGN-ON | ONLINE | tunda 0" in status.line()


async def test_cek_by_keys_prints_the_balance_and_never_shows_the_pin(running) -> None:  # noqa: ANN001
    app, pilot = running
    person = SPENDABLE[0]
    await insert_by_typing(pilot, app, person.pan)
    await pilot.press("f1", *person.pin[:3])
    assert app.terminal.display().entry == "***"
    await pilot.press(*person.pin[3:], "enter")
    await settle(pilot, app.terminal)
    assert "BERHASIL" in lcd(app) and "Sisa saldo Rp150.000" in lcd(app)
    slip = last_slip(app)
    assert "CEK SALDO" in slip and "Rp150.000" in slip and person.pan not in slip
    screen = app.export_screenshot()
    assert person.pin not in screen and person.pan not in screen
    await pilot.press("enter")  # Ambil kartu
    assert "SILAKAN MASUKKAN KARTU" in lcd(app)


async def test_bayar_by_clicks_reduces_the_balance_and_prints_the_slip(running, network: Network) -> None:  # noqa: ANN001
    app, pilot = running
    person = CARDS["pkh_combo"]  # from the card slot's list of demo cards
    before = network.balance_of(person.pan)
    await insert_demo_card(pilot, app, person.pan)
    await pilot.click("#fkey-belanja")
    for key in ("#key-3", "#key-5", "#key-00", "#key-0", "#key-enter"):
        await pilot.click(key)
    assert "Nominal Rp35.000" in lcd(app)
    for digit in person.pin:
        await pilot.click(f"#key-{digit}")
    await pilot.click("#key-enter")
    await settle(pilot, app.terminal)
    slip = last_slip(app)
    assert "PEMBELIAN SEMBAKO" in slip and "Rp35.000" in slip and "RC 00" in slip
    assert network.balance_of(person.pan) == before - 35_000
    assert format_idr(before - 35_000) in slip
    await pilot.click("#slot-take")
    assert "SILAKAN MASUKKAN KARTU" in lcd(app)


async def test_reprint_prints_the_last_slip_again(running) -> None:  # noqa: ANN001
    app, pilot = running
    person = SPENDABLE[2]
    await cek_by_keys(pilot, app, person.pan, person.pin)
    await pilot.press("enter", "f4")
    assert len(app.terminal.printer) == 2
    assert "CETAK ULANG" in last_slip(app) and app.terminal.printer[0] in last_slip(app)


async def test_pembatalan_voids_the_last_purchase_and_returns_the_money(running, network: Network) -> None:  # noqa: ANN001
    app, pilot = running
    person = SPENDABLE[3]
    count = app.terminal.status().batch_count
    await bayar_by_keys(pilot, app, person.pan, person.pin, "20000")
    assert network.balance_of(person.pan) == BENEFIT_IDR - 20_000
    assert app.terminal.status().batch_count == count + 1
    await pilot.press("enter", "m", "1")
    assert "Batalkan pembelian terakhir?" in lcd(app) and "Nominal Rp20.000" in lcd(app)
    await pilot.press("enter")
    await settle(pilot, app.terminal)
    assert "PEMBATALAN" in last_slip(app) and "RC 00" in last_slip(app)
    assert network.balance_of(person.pan) == BENEFIT_IDR
    assert app.terminal.status().batch_count == count


# -- declines of the demo cards -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "rc", "advice"),
    [
        ("zero_balance", "51", "bantuan bulan ini belum masuk"),
        ("no_emoney", "53", "Rekening e-money belum dibuka"),
        ("lost", "41", "Kartu tercatat hilang"),
        ("blocked", "62", "Kartu diblokir"),
        ("replaced_old", "62", "Gunakan kartu pengganti"),
        ("pin_blocked", "75", "untuk reset PIN"),
    ],
)
async def test_each_decline_prints_the_reason_and_what_to_do(running, network: Network, label: str, rc: str, advice: str) -> None:  # noqa: ANN001
    app, pilot = running
    card = CARDS[label]
    before = network.balance_of(card.pan) if label != "no_emoney" else None
    await bayar_by_keys(pilot, app, card.pan, card.pin, "10000")
    slip = " ".join(last_slip(app).split())
    assert f"RC {rc}" in slip and "Saran:" in slip and advice in slip, slip
    assert "GAGAL" in lcd(app)
    if before is not None:
        assert network.balance_of(card.pan) == before


async def test_wrong_pin_three_times_blocks_the_pin(running) -> None:  # noqa: ANN001
    app, pilot = running
    person = SPENDABLE[4]
    answers = []
    for _ in range(3):
        await cek_by_keys(pilot, app, person.pan, "000000" if person.pin != "000000" else "999999")
        answers.append(app.terminal.outcome.rc)
        await pilot.press("enter")
    assert answers == ["55", "55", "75"]
    assert "PIN terblokir" in last_slip(app)


# -- no answer, bad input, key mashing -------------------------------------------------------------


async def test_purchase_reversed_when_the_bank_does_not_answer(network: Network, tmp_path: Path) -> None:
    person = SPENDABLE[5]
    app = make_app(network, timeout_ms=400)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app.terminal)
        await insert_by_typing(pilot, app, person.pan)
        network.banks["bni"].freeze()
        try:
            await pilot.press("f2", *"25000", "enter", *person.pin, "enter")
            await pilot.pause(0.1)
            assert app.terminal.display().remaining_ms is not None  # the spinner and time left show
            await settle(pilot, app.terminal)
        finally:
            network.banks["bni"].thaw()
        slip = " ".join(last_slip(app).split())
        assert "RC 91" in slip and "saldo akan dikembalikan" in slip
        assert app.terminal.outcome.reversal in ("reversed", "pending")
    assert await eventually(lambda: network.balance_of(person.pan) == BENEFIT_IDR)


@pytest.mark.parametrize(
    ("pan", "message"),
    [
        ("93600009000", "nomor kartu harus"),
        ("9360000900000015", "digit pemeriksa"),
        ("9360000200000016", "Kartu bank lain"),
    ],
)
async def test_a_bad_card_number_is_refused_and_nothing_is_sent(running, pan: str, message: str) -> None:  # noqa: ANN001
    app, pilot = running
    sent = len(app.terminal.inspector.exchanges)
    if pan == "9360000200000016":
        pan = fixture.demo_cards(get_bank("bri"))[0].pan
    await insert_by_typing(pilot, app, pan)
    assert message in (app.terminal.display().message or "")
    assert len(app.terminal.inspector.exchanges) == sent


async def test_bad_amount_and_short_pin_are_refused_with_a_message(running) -> None:  # noqa: ANN001
    app, pilot = running
    person = SPENDABLE[6]
    sent = len(app.terminal.inspector.exchanges)
    await insert_by_typing(pilot, app, person.pan)
    await pilot.press("f2", "enter")
    assert "Nominal harus berupa angka" in app.terminal.display().message
    await pilot.press("x")
    assert app.terminal.display().message == "Gunakan tombol angka"
    await pilot.press("0", "0", "enter")
    assert "Nominal harus" in app.terminal.display().message  # an amount cannot start with 0
    await pilot.press("5", "0", "0", "0", "enter", "1", "2", "3", "enter")
    assert app.terminal.display().message == "PIN harus 6 digit angka"
    await pilot.press("escape")
    assert "SILAKAN MASUKKAN KARTU" in lcd(app)
    assert len(app.terminal.inspector.exchanges) == sent


async def test_keys_mashed_while_a_message_is_in_flight_send_nothing(network: Network) -> None:
    """The line goes silent after the card is read (a switch that accepts and never answers): the
    Cek stays in flight for its whole timeout, whatever the cashier presses meanwhile."""
    person = SPENDABLE[7]
    app = make_app(network, timeout_ms=3_000)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts; nobody answers
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, app.terminal)
            await insert_by_typing(pilot, app, person.pan)
            await app.terminal.link.close()
            app.terminal.link.port = silent.getsockname()[1]
            sent = len(app.terminal.inspector.exchanges)
            await pilot.press("f1", *person.pin, "enter")
            await pilot.pause(0.05)
            assert app.terminal.busy
            await pilot.press("1", "enter", "f2", "f5", "escape", "enter", "m", "3")
            assert app.terminal.display().message == "Mohon tunggu, transaksi sedang diproses"
            await settle(pilot, app.terminal)
            exchanges = app.terminal.inspector.exchanges[sent:]
            assert [(e.request_mti, e.answer) for e in exchanges] == [("0100", None)]  # one Cek, unanswered
            assert app.terminal.outcome.rc == "91"


async def test_switch_down_at_start_says_so_and_recovers_when_it_is_back(network: Network, tmp_path: Path, closed_port: int) -> None:
    app = make_app(network, port=closed_port, tid="BNI00002")  # never signed on
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app.terminal)
        status = app.terminal.status()
        assert (status.signed_on, status.link) == (False, "TERPUTUS")
        assert "Switch tidak dapat dihubungi" in app.terminal.display().message
        await insert_by_typing(pilot, app, SPENDABLE[8].pan)
        assert "Sign-on gagal" in app.terminal.display().message
        assert "SILAKAN MASUKKAN KARTU" in lcd(app)
        app.terminal.link.port = network.iso_port  # the line is back
        await insert_by_typing(pilot, app, SPENDABLE[8].pan)
        assert "PILIH TRANSAKSI" in lcd(app) and app.terminal.status().link == "ONLINE"


async def test_inspector_lists_the_exchanges_with_the_pan_masked(running) -> None:  # noqa: ANN001
    app, pilot = running
    person = SPENDABLE[9]
    await cek_by_keys(pilot, app, person.pan, person.pin)
    await pilot.press("f8")
    await pilot.pause()
    assert app.query_one("#inspector").display
    exchange = app.terminal.inspector.exchanges[-1]
    assert (exchange.request_mti, exchange.rc) == ("0100", "00")
    rows = app.query_one("#inspector-list", DataTable)
    last = [str(cell) for cell in rows.get_row_at(rows.row_count - 1)]
    assert "0100 -> 0110" in last and "00" in last
    fields = app.query_one("#inspector-fields", DataTable)
    cells = [str(cell) for row in range(fields.row_count) for cell in fields.get_row_at(row)]
    assert mask_pan(person.pan) in cells and person.pan not in " ".join(cells)
    assert person.pan not in app.export_screenshot()


async def test_switch_down_mid_flow_keeps_the_reversal_and_sends_it_when_back(network: Network) -> None:
    """Cek went through; the switch then stops. The purchase cannot be delivered: the terminal
    keeps its reversal (the outcome is unknown to it) and sends it once the switch is back."""
    person = SPENDABLE[10]
    app = make_app(network, timeout_ms=1_000)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app.terminal)
        await cek_by_keys(pilot, app, person.pan, person.pin)
        await pilot.press("enter")
        network.stop_switch()
        try:
            await bayar_by_keys(pilot, app, person.pan, person.pin, "10000")
            outcome = app.terminal.outcome
            assert (outcome.rc, outcome.reversal) == ("91", "pending")
            assert app.terminal.status().pending_reversals == 1 and app.terminal.status().link == "TERPUTUS"
            assert "saldo akan dikembalikan" in " ".join(last_slip(app).split())
        finally:
            network.start_switch()
        app.terminal.link.port = network.iso_port
        await pilot.press("enter", "m", "5")
        await settle(pilot, app.terminal)
        assert app.terminal.status().pending_reversals == 0
        assert "1 pembatalan terkirim" in app.terminal.display().message
    assert network.balance_of(person.pan) == BENEFIT_IDR


async def test_keys_that_no_longer_match_are_renewed_without_a_person(network: Network, tmp_path: Path) -> None:
    """Another copy of BNI00005 exchanged keys since this one signed on: this terminal's answer
    fails its MAC; when the card is taken it signs on and exchanges keys by itself."""
    from edc_terminal.headless import run

    person = SPENDABLE[11]
    app = make_app(network, tid="BNI00005")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app.terminal)
        assert app.terminal.core.has_keys
        other = await run("signon", "BNI00005", "127.0.0.1", network.iso_port, tmp_path, timeout_ms=3_000)
        assert other["rc"] == "00"
        await cek_by_keys(pilot, app, person.pan, person.pin)
        assert app.terminal.outcome.rc == "91"
        await pilot.press("enter")  # Ambil kartu
        await settle(pilot, app.terminal)
        assert app.terminal.core.has_keys and "Kunci kerja diperbarui otomatis" in app.terminal.display().message
        await cek_by_keys(pilot, app, person.pan, person.pin)
        assert app.terminal.outcome.rc == "00" and app.terminal.outcome.balance == BENEFIT_IDR
