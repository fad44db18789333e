"""The counter tells the switch when it refused goods above their HET, over the real network.

The shop raised its price of beras premium to Rp16.000/kg (HET Rp14.900). A KPM checks her
balance at the EDC and asks for 5 kg: the counter refuses, and the refusal reaches the switch's
ops API (with the token `sembako up` leaves in the data directory), where the `above_het` alert
shows it. Another cart, filled while the price was right, is refused at Bayar after the price
went up: reported too. With the switch out of reach the counter refuses just as fast and the
report is dropped.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from bank_penyalur.demo import generator
from edc_terminal.terminal import Action, EdcTerminal, Key
from ewarong_pos.app import build_counter
from ewarong_pos.cashier import Counter
from ewarong_pos.het_report import HetReporter
from ewarong_pos.settings import ShopOptions
from ewarong_pos.tables import products
from shared.banks import get_bank
from shared.clock import FixedClock
from switch.ops import access
from tests.apps import start_network
from tests.conftest import BUSINESS_START
from tests.switch.network import Network, free_port

EWARONG = "EWBNI0000000002"
TERMINAL = "BNI00002"
BNI = get_bank("bni")
SPENDABLE = [p for p in (generator.generated_kpm(BNI, i) for i in range(40)) if p.spendable]


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    yield from start_network(tmp_path_factory.mktemp("het-net"))


def token(network: Network, bank: str | None) -> str:
    assert network.switch is not None
    with network.switch.journal.db.begin() as conn:
        return access.create_token(conn, "viewer", bank, "test", "test", network.switch.now()).token


@pytest.fixture
def counter(network: Network, monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter]:
    """The counter as the cashier app builds it: the ops API's URL from the settings, the token
    from the data directory (here one of BNI, the e-Warong's bank)."""
    (network.tmp / "pos-token-bni").write_text(token(network, "bni"), encoding="utf-8")
    monkeypatch.setenv("SEMBAKO_EWARONG_OPS_URL", network.ops_url)
    built = build_counter(ShopOptions(EWARONG, TERMINAL, "127.0.0.1", network.iso_port, network.tmp, None), FixedClock(BUSINESS_START))
    yield built
    if isinstance(built.het_reporter, HetReporter):
        built.het_reporter.close()
    built.store.close()


def set_price(counter: Counter, sku: str, price_idr: int) -> None:
    with counter.store.db.begin() as conn:
        conn.execute(update(products).where(products.c.ewarong_id == EWARONG, products.c.sku == sku).values(price_idr=price_idr))


async def cek(edc: EdcTerminal, pan: str, pin: str) -> None:
    """Datang and Cek: the card in, the balance read with the PIN."""
    edc.insert_card(pan)
    await edc.run_pending()
    edc.select(Action.CEK)
    for digit in pin:
        edc.press(digit)
    edc.press(Key.ENTER)
    await edc.run_pending()


async def done_with(edc: EdcTerminal) -> None:
    if edc.busy:
        await edc.run_pending()
    edc.take_card()


def above_het_alerts(network: Network) -> list[dict]:
    answer = httpx.get(f"{network.ops_url}/v1/alerts", params={"kind": "above_het"},
                       headers={"Authorization": f"Bearer {token(network, None)}"}, timeout=10)  # fmt: skip
    assert answer.status_code == 200, answer.text
    return [alert for alert in answer.json()["alerts"] if alert["subject"]["id"] == EWARONG]


async def test_a_good_above_het_is_refused_and_reported(network: Network, counter: Counter) -> None:
    reporter = counter.het_reporter
    assert isinstance(reporter, HetReporter)
    set_price(counter, "BRS-PRM", 16_000)
    kpm = SPENDABLE[0]
    try:
        await cek(counter.terminal, kpm.pan, kpm.pin)
        assert counter.view().balance_idr is not None
        assert counter.add("BRS-PRM", 5) is False
        assert "melebihi HET" in (counter.view().message or "")
        assert counter.add("BRS-MED", 2) is True  # within HET: sold, not reported
    finally:
        await done_with(counter.terminal)
    assert reporter.flush() and (reporter.sent, reporter.failed) == (1, 0)
    [alert] = above_het_alerts(network)
    assert alert["count"] == 1 and "Beras premium at Rp16.000/kg (HET Rp14.900)" in alert["message"]
    assert alert["details"]["terminals"] == [TERMINAL]


async def test_a_price_raised_after_the_cart_was_filled_is_reported_at_bayar(network: Network, counter: Counter) -> None:
    reporter = counter.het_reporter
    assert isinstance(reporter, HetReporter)
    set_price(counter, "TLR-AYM", 2_000)
    before = above_het_alerts(network)
    kpm = SPENDABLE[1]
    try:
        await cek(counter.terminal, kpm.pan, kpm.pin)
        assert counter.add("TLR-AYM", 10) is True
        set_price(counter, "TLR-AYM", 2_500)  # HET Rp2.100
        assert counter.pay() is False
    finally:
        counter.clear_cart()
        await done_with(counter.terminal)
    assert reporter.flush() and reporter.sent == 1
    [alert] = above_het_alerts(network)
    assert alert["count"] == (before[0]["count"] if before else 0) + 1
    assert "Telur ayam ras at Rp2.500/butir (HET Rp2.100)" in alert["message"]


async def test_a_switch_out_of_reach_costs_the_cashier_nothing(network: Network, counter: Counter, tmp_path: Path) -> None:
    assert isinstance(counter.het_reporter, HetReporter)
    counter.het_reporter.close()
    counter.het_reporter = HetReporter(f"http://127.0.0.1:{free_port()}", "sops_000000000000.x", timeout_s=0.5)
    set_price(counter, "BRS-PRM", 16_000)
    kpm = SPENDABLE[2]
    try:
        await cek(counter.terminal, kpm.pan, kpm.pin)
        started = time.monotonic()
        assert counter.add("BRS-PRM", 1) is False
        assert time.monotonic() - started < 0.2  # the report waits on its own thread
    finally:
        await done_with(counter.terminal)
    assert counter.het_reporter.flush() and (counter.het_reporter.sent, counter.het_reporter.failed) == (0, 1)


def test_without_a_token_nothing_is_reported(network: Network, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMBAKO_EWARONG_OPS_URL", network.ops_url)
    built = build_counter(ShopOptions(EWARONG, TERMINAL, "127.0.0.1", network.iso_port, tmp_path, None), FixedClock(BUSINESS_START))
    try:
        assert built.het_reporter is None
    finally:
        built.store.close()


def test_the_switch_operator_s_token_is_never_the_pos_s(network: Network, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only `pos-token-<bank>` of the terminal's bank is read: the admin token `sembako up` keeps
    in `ops-token` beside it is left alone, and so is another bank's POS token."""
    monkeypatch.setenv("SEMBAKO_EWARONG_OPS_URL", network.ops_url)
    (tmp_path / "ops-token").write_text(token(network, None), encoding="utf-8")
    (tmp_path / "pos-token-bri").write_text(token(network, "bri"), encoding="utf-8")
    built = build_counter(ShopOptions(EWARONG, TERMINAL, "127.0.0.1", network.iso_port, tmp_path, None), FixedClock(BUSINESS_START))
    try:
        assert built.het_reporter is None
    finally:
        built.store.close()
