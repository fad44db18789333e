"""Exactly once on every link: the EDC core over a real TCP link through the link simulator to
the real switch and bank processes. Each test steers the proxy (drop, delay, duplicate the next
frame) and checks the card's balance at the bank and the bank's ledger afterwards.

Profiles run time-scaled (the same logic, a tenth of the waiting) except the VSAT round-trip
proof, which runs at real speed. Loss and random cuts are switched off where a test steers the
link itself, so every run replays exactly.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bank_penyalur.demo import generator
from edc_terminal.client import ClientConfig, SwitchClient
from edc_terminal.core import CoreConfig, EdcCore, Reject
from edc_terminal.headless import Request, open_core, run_job, session
from edc_terminal.inspector import Inspector
from linksim import DIRECT, ONLINE, VSAT, LinkProfile, LinkProxy
from linksim.proxy import TO_SWITCH, TO_TERMINAL
from shared import rc
from shared.banks import get_bank
from shared.clock import SystemClock

from tests.bounded import wait_until
from tests.switch.network import Network

BNI = get_bank("bni")
SPENDABLE = [p for p in (generator.generated_kpm(BNI, i) for i in range(40)) if p.spendable]
AMOUNT_IDR = 12_000
TIME_SCALE = 10.0
RESPONSE_TIMEOUT_MS = 1_500  # the terminal's wait for an answer in the steered tests
STEADY = {  # the profiles with their delays and bandwidth, without random loss or cuts
    "direct": DIRECT,
    "online": replace(ONLINE, loss=0.0, disconnect_rate=0.0),
    "vsat": replace(VSAT, loss=0.0, disconnect_rate=0.0),
}
_terminal_serials = iter(range(11, 49))  # each test its own terminal: STANs restart per data dir


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    tmp = tmp_path_factory.mktemp("link-net")
    net = Network(tmp, {"data_dir": tmp}, kpm=40, bank_timeout_ms=800)
    net.ops_api = False
    net.start()
    try:
        yield net
    finally:
        net.stop()


@pytest.fixture(autouse=True)
def ledger_balanced(network: Network) -> Iterator[None]:
    yield
    network.assert_ledger_balanced()


_cards = iter(SPENDABLE)


def next_card() -> generator.GeneratedKpm:
    return next(_cards)


def next_tid() -> str:
    return BNI.terminal_id(next(_terminal_serials))


class ShiftableClock(SystemClock):
    """The wall clock (WIB) moved by `shift`: a terminal whose sale was made long ago."""

    def __init__(self) -> None:
        self.shift = timedelta(0)

    def now(self) -> datetime:
        return super().now() + self.shift


class Edc:
    """One terminal (core, proxy, client) on its own data directory."""

    def __init__(
        self, network: Network, data_dir: Path, profile: LinkProfile, time_scale: float, tid: str | None = None, clock: SystemClock | None = None
    ) -> None:
        self.clock = clock or SystemClock()
        self.tid = tid or next_tid()
        self.data_dir = data_dir
        self.proxy = LinkProxy("127.0.0.1", 0, "127.0.0.1", network.iso_port, profile, seed=7, time_scale=time_scale)
        self.inspector = Inspector()
        self.core: EdcCore | None = None
        self.client: SwitchClient | None = None

    async def __aenter__(self) -> Edc:
        await self.proxy.start()
        config = CoreConfig(RESPONSE_TIMEOUT_MS, 5_000, RESPONSE_TIMEOUT_MS, reversal_repeats=2, card_list=True)
        self.core = open_core(self.tid, self.data_dir, self.clock, config)
        self.client = SwitchClient("127.0.0.1", self.proxy.port, ClientConfig(connect_timeout_ms=2_000))
        await self.client.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.client and self.core
        await self.client.close()
        await self.proxy.stop()
        self.core.close()

    async def run(self, command: str, card: generator.GeneratedKpm | None = None, amount_idr: int | None = None):  # noqa: ANN201
        assert self.core and self.client
        request = Request(command, card.pan if card else None, card.pin if card else None, amount_idr)
        return await session(self.core, self.client, request, self.inspector)

    def exchanges_since(self, start: int) -> list:
        return self.inspector.exchanges[start:]


def run(coroutine, timeout_s: float = 60.0):  # noqa: ANN001, ANN201
    return asyncio.run(asyncio.wait_for(coroutine, timeout_s))


# -- VSAT: Cek + Bayar in two round trips ----------------------------------------------------------


def test_vsat_cek_and_bayar_cost_exactly_two_iso_round_trips(network: Network, tmp_path: Path) -> None:
    card = next_card()
    before_idr = network.balance_of(card.pan)

    async def scenario():  # noqa: ANN202
        async with Edc(network, tmp_path, STEADY["vsat"], time_scale=1.0) as edc:
            assert (await edc.run("signon")).approved
            start = len(edc.inspector.exchanges)
            cek = await edc.run("cek", card)
            bayar = await edc.run("bayar", card, AMOUNT_IDR)
            return cek, bayar, edc.exchanges_since(start)

    cek, bayar, exchanges = run(scenario())
    assert (cek.rc, cek.balance) == (rc.APPROVED, before_idr)
    assert (bayar.rc, bayar.balance) == (rc.APPROVED, before_idr - AMOUNT_IDR)
    assert [e.request_mti for e in exchanges] == ["0100", "0200"]  # no echo, sign-on or key exchange
    assert all(e.rtt_ms >= 500 for e in exchanges), [e.rtt_ms for e in exchanges]
    assert network.balance_of(card.pan) == before_idr - AMOUNT_IDR


# -- every profile: lost answers, lost requests, duplicates, late answers -----------------------


def bayar_through(network: Network, tmp_path: Path, profile: str, steer, card: generator.GeneratedKpm):  # noqa: ANN001, ANN201
    """Sign on, let `steer` set up the link (drop, duplicate, delay the next frames), then Bayar."""

    async def scenario():  # noqa: ANN202
        async with Edc(network, tmp_path, STEADY[profile], TIME_SCALE) as edc:
            assert (await edc.run("signon")).approved
            steer(edc.proxy)
            return await edc.run("bayar", card, AMOUNT_IDR)

    return run(scenario())


@pytest.mark.parametrize("profile", sorted(STEADY))
def test_a_dropped_answer_is_reversed_and_the_balance_restored(network: Network, tmp_path: Path, profile: str) -> None:
    card = next_card()
    before_idr = network.balance_of(card.pan)

    # The 0210 never arrives: the bank has posted.
    outcome = bayar_through(network, tmp_path, profile, lambda proxy: proxy.drop_next(TO_TERMINAL), card)
    assert not outcome.approved and outcome.reversal == "reversed", outcome
    assert outcome.message.startswith("TRANSAKSI GAGAL, DIBATALKAN")
    assert network.balance_of(card.pan) == before_idr


@pytest.mark.parametrize("profile", sorted(STEADY))
def test_a_dropped_request_posts_nothing(network: Network, tmp_path: Path, profile: str) -> None:
    card = next_card()
    before_idr = network.balance_of(card.pan)

    # The 0200 never reaches the switch.
    outcome = bayar_through(network, tmp_path, profile, lambda proxy: proxy.drop_next(TO_SWITCH), card)
    assert not outcome.approved and outcome.reversal == "reversed", outcome
    assert network.balance_of(card.pan) == before_idr


@pytest.mark.parametrize("profile", sorted(STEADY))
def test_a_duplicated_delivery_posts_once(network: Network, tmp_path: Path, profile: str) -> None:
    card = next_card()
    before_idr = network.balance_of(card.pan)

    def twice(proxy: LinkProxy) -> None:
        proxy.duplicate_next(TO_SWITCH)  # the 0200 arrives twice
        proxy.duplicate_next(TO_TERMINAL)  # and its answer too

    outcome = bayar_through(network, tmp_path, profile, twice, card)
    assert (outcome.rc, outcome.balance) == (rc.APPROVED, before_idr - AMOUNT_IDR)
    assert network.balance_of(card.pan) == before_idr - AMOUNT_IDR


@pytest.mark.parametrize("profile", sorted(STEADY))
def test_an_answer_after_the_terminals_timeout_is_reversed(network: Network, tmp_path: Path, profile: str) -> None:
    card = next_card()
    before_idr = network.balance_of(card.pan)

    # Approved, but the answer arrives after the terminal stopped waiting.
    outcome = bayar_through(network, tmp_path, profile, lambda proxy: proxy.delay_next(TO_TERMINAL, RESPONSE_TIMEOUT_MS + 1_000), card)
    assert not outcome.approved and outcome.reversal == "reversed", outcome
    assert network.balance_of(card.pan) == before_idr


# -- an EDC killed between sending the 0200 and storing the answer ---------------------------------


def test_an_edc_killed_mid_purchase_reverses_on_restart_before_anything_else(network: Network, tmp_path: Path) -> None:
    card = next_card()
    tid = next_tid()
    before_idr = network.balance_of(card.pan)

    async def scenario():  # noqa: ANN202
        async with Edc(network, tmp_path, STEADY["online"], TIME_SCALE, tid=tid) as edc:
            assert (await edc.run("signon")).approved
        # The same terminal as a process of its own, through a proxy that holds its answers.
        async with LinkProxy("127.0.0.1", 0, "127.0.0.1", network.iso_port, DIRECT) as proxy:
            proxy.delay_next(TO_TERMINAL, 60_000)
            command = [
                sys.executable, "-m", "sembako", "edc-cli", "bayar", "--terminal", tid, "--switch", f"127.0.0.1:{proxy.port}",
                "--data-dir", str(tmp_path), "--card", card.pan, "--pin", card.pin, "--amount", str(AMOUNT_IDR), "--json",
            ]  # fmt: skip
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                # Killed once the bank has posted the purchase and the answer is held on the link.
                await asyncio.to_thread(wait_until, lambda: network.balance_of(card.pan) == before_idr - AMOUNT_IDR, 20)
                os.kill(process.pid, signal.SIGKILL)
            finally:
                process.kill()
                process.wait(timeout=10)
        async with Edc(network, tmp_path, STEADY["online"], TIME_SCALE, tid=tid) as edc:
            assert edc.core.pending_reversals == 1  # stored before the 0200 left
            outcome = await edc.run("cek", card)
            return outcome, [e.request_mti for e in edc.inspector.exchanges], edc.core.pending_reversals

    outcome, mtis, pending = run(scenario(), timeout_s=90)
    assert mtis[0] == "0401", mtis  # the pending reversal goes out before anything else
    assert pending == 0
    assert (outcome.rc, outcome.balance) == (rc.APPROVED, before_idr)
    assert network.balance_of(card.pan) == before_idr



# -- offline mode: sales stored, uploaded once however often cut, batches settled ------------------

SALE_IDR = 1_000


def offline_sale(core: EdcCore, card: generator.GeneratedKpm, amount_idr: int = SALE_IDR, nik: str | None = None):  # noqa: ANN201
    """Bayar with the link down: card, amount, the holder's NIK; the terminal decides at once."""
    for step in (lambda: core.insert_card(card.pan), core.choose_purchase, lambda: core.enter_amount(str(amount_idr)),
                 lambda: core.enter_nik(nik or card.record.nik)):  # fmt: skip
        commands = step()
        if rejected := next((c for c in commands if isinstance(c, Reject)), None):
            core.cancel()
            return rejected
    outcome = core.outcome
    core.finish()
    return outcome


async def settle_through(proxy: LinkProxy, core: EdcCore, cut_after_frames: int | None = None):  # noqa: ANN201
    """SETTLEMENT over a fresh connection through `proxy`; with `cut_after_frames`, the link is
    cut once that many frames reached the terminal."""
    job = core.start_settlement()
    assert not isinstance(job, Reject), job
    async with SwitchClient("127.0.0.1", proxy.port, ClientConfig(connect_timeout_ms=2_000, max_in_flight=32)) as client:
        running = asyncio.ensure_future(run_job(job, client, window=32))
        if cut_after_frames is not None:
            await asyncio.to_thread(wait_until, lambda: proxy.counters.forwarded[TO_TERMINAL] >= cut_after_frames, 60)
            proxy.cut()
        result = await running
    core.finish()
    return result


def balances(network: Network, cards: list[generator.GeneratedKpm]) -> dict[str, int]:
    return {card.pan: network.balance_of(card.pan) for card in cards}


def test_a_thousand_offline_sales_survive_a_cut_upload_and_post_once(network: Network, tmp_path: Path) -> None:
    cards = [next_card() for _ in range(8)]
    before = balances(network, cards)

    async def scenario():  # noqa: ANN202
        async with Edc(network, tmp_path, STEADY["online"], TIME_SCALE) as edc:
            assert (await edc.run("signon")).approved and edc.core.card_list is not None
            edc.core.set_link_state(False)  # no signal: the terminal approves by KKS + NIK
            sold = [offline_sale(edc.core, cards[n % len(cards)]) for n in range(1_000)]
            edc.core.set_link_state(True)
            first = await settle_through(edc.proxy, edc.core, cut_after_frames=300)
            edc.proxy.heal()
            second = await settle_through(edc.proxy, edc.core)
            return sold, first, second, edc.core.batch_summary()

    sold, first, second, summary = run(scenario(), timeout_s=240)
    assert all(s.approved and s.offline for s in sold)
    assert "OFFLINE" in sold[0].receipt
    assert not first.approved and first.advices_left > 0  # the cut left part for later
    assert second.approved, second.message
    assert second.uploads_retried >= 0 and second.exceptions == ()
    assert len(second.batches_settled) + len(first.batches_settled) == 2  # 999 + 1 sales: two batches
    assert summary.pending_advices == 0 and summary.unsettled_batches == 1  # only the new, empty one
    spent = {card.pan: SALE_IDR * sum(1 for n in range(1_000) if cards[n % len(cards)] is card) for card in cards}
    assert balances(network, cards) == {pan: before[pan] - spent[pan] for pan in before}  # each posted once


def test_a_settlement_mismatch_is_detailed_and_closed(network: Network, tmp_path: Path) -> None:
    card = next_card()
    before_idr = network.balance_of(card.pan)

    async def scenario():  # noqa: ANN202
        async with Edc(network, tmp_path, STEADY["online"], TIME_SCALE) as edc:
            assert (await edc.run("signon")).approved
            assert (await edc.run("bayar", card, AMOUNT_IDR)).approved
            edc.proxy.drop_next(TO_TERMINAL)  # approved at the bank, reversed: the switch counts both
            lost = await edc.run("bayar", card, AMOUNT_IDR)
            return lost, await settle_through(edc.proxy, edc.core)

    lost, result = run(scenario())
    assert lost.reversal == "reversed"
    assert [(s.processing, s.rc) for s in result.steps] == [("920000", "95"), ("960000", "00")]
    assert result.details_sent >= 1 and result.approved
    assert network.balance_of(card.pan) == before_idr - AMOUNT_IDR


def test_an_offline_sale_uploaded_past_ninety_days_is_refused_54_and_reported(network: Network, tmp_path: Path) -> None:
    card = next_card()
    before_idr = network.balance_of(card.pan)
    clock = ShiftableClock()

    async def scenario():  # noqa: ANN202
        async with Edc(network, tmp_path, STEADY["direct"], TIME_SCALE, clock=clock) as edc:
            assert (await edc.run("signon")).approved
            edc.core.set_link_state(False)
            clock.shift = timedelta(days=-100)  # the sale was made 100 days before its upload
            sale = offline_sale(edc.core, card)
            clock.shift = timedelta(0)
            edc.core.set_link_state(True)
            return sale, await settle_through(edc.proxy, edc.core)

    sale, result = run(scenario())
    assert sale.approved and sale.offline
    assert [e.rc for e in result.exceptions] == [rc.EXPIRED]
    assert result.approved  # the batch closes; the refused sale is reported, not counted
    assert network.balance_of(card.pan) == before_idr


def test_a_hot_listed_card_is_refused_offline(network: Network, tmp_path: Path) -> None:
    from bank_penyalur.demo import fixture

    lost = next(c for c in fixture.demo_cards(BNI) if c.label == "lost")

    async def scenario():  # noqa: ANN202
        async with Edc(network, tmp_path, STEADY["direct"], TIME_SCALE) as edc:
            assert (await edc.run("signon")).approved
            edc.core.set_link_state(False)
            refused = offline_sale(edc.core, lost, nik=lost.nik)  # type: ignore[arg-type]
            wrong_nik = offline_sale(edc.core, next_card(), nik="3201010101010001")
            return refused, wrong_nik, edc.core.batch_summary()

    refused, wrong_nik, summary = run(scenario())
    assert not refused.approved and refused.rc in (rc.LOST_CARD, rc.RESTRICTED_CARD), refused
    assert not wrong_nik.approved and "NIK" in wrong_nik.message
    assert summary.open_sales == 0 and summary.pending_advices == 0  # nothing stored
