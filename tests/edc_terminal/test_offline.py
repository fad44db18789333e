"""Offline mode at the counter (wilayah khusus): the card list the terminal takes at sign-on, then
Bayar with the holder's NIK while there is no signal. The fake switch answers in the test's own
thread (`answer_now`); the headless and CLI scenarios at the end go over TCP."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edc_terminal import offline
from edc_terminal.batchstore import BatchStore
from edc_terminal.cli import edc_app
from edc_terminal.core import CoreConfig, EdcCore, Finished, Reject, State
from edc_terminal.headless import run
from edc_terminal.store import TerminalStore
from linksim import OFFLINE
from shared import keys as keylib
from shared import protocol
from shared.banks import BANKS
from shared.cards import make_pan
from shared.clock import ClockFile, FixedClock
from shared.iso8583 import decode, mac_valid

from tests.edc_terminal.conftest import PAN, PIN, START_BALANCE
from tests.edc_terminal.fakes import Account, FakeSwitch, drive_sync

TID = "BNI00001"
TMK = bytes.fromhex(keylib.demo_terminal_master_key_hex(TID))
NIK = "3201010101900001"
OTHER_NIK = "3201010101900002"
HOT_PAN = make_pan(BANKS["bni"].iin, 3)
LIMIT = 150_000
NOW = datetime(2026, 11, 20, 10, 0, 0)


@pytest.fixture
def switch() -> FakeSwitch:
    """A switch whose bank lists PAN (with NIK) for offline use and HOT_PAN as lost."""
    fake = FakeSwitch({PAN: Account(PIN, START_BALANCE), HOT_PAN: Account("222222", 50_000)})
    fake.offline_cards = {PAN: NIK, HOT_PAN: OTHER_NIK}
    fake.hot_pans = {HOT_PAN}
    fake.offline_limit_idr = LIMIT
    return fake


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


def new_core(data_dir: Path, clock: FixedClock, **options: object) -> EdcCore:
    store = TerminalStore(data_dir, TID)
    config = CoreConfig.uniform(300, **{"card_list": True, **options})
    return EdcCore.for_demo_terminal(TID, store.load(), store, clock, config)


def sign_on(core: EdcCore, switch: FakeSwitch):  # noqa: ANN201
    outcome = drive_sync(core, core.sign_on(), switch)
    core.finish()
    return outcome


@pytest.fixture
def core(tmp_path: Path, clock: FixedClock, switch: FakeSwitch) -> EdcCore:
    """Signed on with the card list loaded, then the signal is gone."""
    edc = new_core(tmp_path, clock)
    assert sign_on(edc, switch).approved
    edc.set_link_state(False)
    return edc


def bayar_offline(core: EdcCore, amount_idr: int, nik: str = NIK, pan: str = PAN):  # noqa: ANN201
    core.insert_card(pan)
    assert not [c for c in core.choose_purchase() if isinstance(c, Reject)]
    core.enter_amount(str(amount_idr))
    assert core.state is State.ID and core.prompt == "Masukkan NIK pemegang kartu (KTP/KK)"
    [done] = [c for c in core.enter_nik(nik) if isinstance(c, Finished)]
    core.finish()
    return done.outcome


# -- the card list at sign-on ----------------------------------------------------------------------


def test_signon_takes_the_card_list_page_by_page_each_under_the_mac(tmp_path: Path, clock: FixedClock, switch: FakeSwitch) -> None:
    switch.offline_cards |= {make_pan(BANKS["bni"].iin, n): f"32010101019{n:05d}" for n in range(10, 14)}
    switch.refs_per_page = 2  # 6 ID references: three pages
    edc = new_core(tmp_path, clock)
    outcome = sign_on(edc, switch)
    assert outcome.approved and outcome.warning is None and "daftar kartu offline dimuat (6 kartu, 1 diblokir)" in outcome.message
    pages = [(m["70"], m.get("60")) for m in switch.received if m["t"] == "0800"]
    assert pages == [("001", None), ("101", None), ("360", "000001"), ("360", "000002"), ("360", "000003")]
    tak = switch.keys[TID].tak
    assert all(mac_valid(raw, decode(raw), tak) for raw in switch.received_raw[2:])
    listed = edc.card_list
    assert listed is not None and (listed.id_count, listed.hot_count, listed.offline_limit_idr, listed.pages) == (6, 1, LIMIT, 3)


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda s: setattr(s, "card_list_rc", "91"), "RC 91"),
        (lambda s: setattr(s, "card_list_rc", "12"), "RC 12"),
        (lambda s: s.silent_stans.add("000006"), "tidak ada jawaban"),
        (lambda s: setattr(s, "list_key_wrapped_under", keylib.new_key()), "KCV"),
    ],
)
def test_a_list_that_does_not_come_whole_leaves_the_old_one_and_the_signon_approved(
    core: EdcCore, switch: FakeSwitch, spoil, reason: str  # noqa: ANN001
) -> None:
    before = core.card_list
    spoil(switch)
    outcome = sign_on(core, switch)
    assert outcome.approved and core.has_keys  # online still works
    assert outcome.warning and reason in outcome.warning and "transaksi offline belum dapat dilayani" in outcome.message
    assert core.card_list == before


def test_a_list_page_with_a_broken_mac_is_no_list(core: EdcCore, switch: FakeSwitch) -> None:
    before = core.card_list

    def broken(raw: bytes) -> bytes:
        return raw[:-1] + bytes([raw[-1] ^ 0xFF]) if decode(raw).get("70") == "360" else raw

    outcome = drive_sync(core, core.sign_on(), switch, tamper=broken)
    assert outcome.approved and "MAC salah" in (outcome.warning or "") and core.has_keys
    assert core.card_list == before


# -- Bayar offline -----------------------------------------------------------------------------------


def test_an_offline_sale_is_stored_as_its_0220_before_the_slip(core: EdcCore, tmp_path: Path) -> None:
    outcome = bayar_offline(core, 40_000)
    assert (outcome.rc, outcome.offline, outcome.amount, outcome.balance, outcome.rrn) == ("00", True, 40_000, None, None)
    assert outcome.stan == "000004" and outcome.approval_code == "OF0004"
    reopened = BatchStore.open(tmp_path, TID, TMK)  # what a restart finds
    [stored] = reopened.pending_advices()
    expected = protocol.advice_request(core.terminal, "000004", NOW, PAN, 40_000, "OF0004", 1)
    assert stored.message == expected and stored.batch == 1
    reopened.close()
    state = TerminalStore(tmp_path, TID).load()
    assert [(e.kind, e.stan, e.approval_code, e.amount_idr, e.rrn) for e in state.journal] == [("offline", "000004", "OF0004", 40_000, "")]
    assert state.batch_count == 1 and PAN not in (tmp_path / "edc" / f"{TID}.json").read_text()


def test_nothing_is_printed_when_the_sale_cannot_be_stored(tmp_path: Path, clock: FixedClock, switch: FakeSwitch) -> None:
    class FullDisk(BatchStore):
        def sell_offline(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
            raise OSError("disk full")

    batches = FullDisk.open(tmp_path / "other", TID, TMK)
    store = TerminalStore(tmp_path, TID)
    edc = EdcCore.for_demo_terminal(TID, store.load(), store, clock, CoreConfig.uniform(300, card_list=True), batches)
    sign_on(edc, switch)
    edc.set_link_state(False)
    edc.insert_card(PAN)
    edc.choose_purchase()
    edc.enter_amount("40000")
    with pytest.raises(OSError, match="disk full"):
        edc.enter_nik(NIK)
    assert edc.state is State.ID and edc.stored.last_receipt is None  # no slip: no goods for a sale not kept


def test_the_offline_slip_says_offline_and_shows_no_balance(core: EdcCore) -> None:
    slip = bayar_offline(core, 25_000).receipt or ""
    lines = slip.splitlines()
    assert "*** TRANSAKSI OFFLINE ***" in lines[10] and "Disetujui offline, akan dikirim ke bank" in " ".join(lines)
    assert any(line.startswith("Saldo") and line.endswith(" -") for line in lines)
    assert "Sisa saldo" not in slip and "RRN" not in slip and "OF0004" in slip and "Rp25.000" in slip
    assert PAN not in slip and all(len(line) <= 32 for line in lines)


def test_a_hot_listed_card_is_refused_and_nothing_is_kept(core: EdcCore) -> None:
    outcome = bayar_offline(core, 10_000, nik=OTHER_NIK, pan=HOT_PAN)
    assert (outcome.rc, outcome.approved, outcome.receipt) == ("62", False, None)
    assert outcome.message == offline.TEXT_HOT_LISTED
    assert core.batch_summary().pending_advices == 0 and core.stored.stan == 3


def test_a_nik_that_does_not_match_the_card_is_refused(core: EdcCore) -> None:
    outcome = bayar_offline(core, 10_000, nik=OTHER_NIK)
    assert (outcome.rc, outcome.message) == ("05", "NIK tidak cocok dengan kartu")
    assert core.batch_summary().pending_advices == 0
    core.insert_card(PAN)
    core.choose_purchase()
    core.enter_amount("10000")
    assert [c.reason for c in core.enter_nik("12345") if isinstance(c, Reject)] == ["NIK harus 16 digit angka (sesuai KTP/KK)"]


def test_the_offline_limit_is_per_card_per_month_and_a_new_month_starts_afresh(core: EdcCore, clock: FixedClock) -> None:
    assert bayar_offline(core, 100_000).approved
    over = bayar_offline(core, 60_000)
    assert (over.rc, over.message) == ("51", "Melebihi batas belanja offline bulan ini: sisa Rp50.000 untuk kartu ini")
    assert bayar_offline(core, 50_000).approved
    assert bayar_offline(core, 1).rc == "51"
    clock.at = datetime(2026, 12, 1, 7, 0, 0)
    assert bayar_offline(core, LIMIT).approved
    assert core.batch_summary().pending_advices == 3


def test_without_a_card_list_bayar_is_refused_offline(tmp_path: Path, clock: FixedClock, switch: FakeSwitch) -> None:
    edc = new_core(tmp_path, clock, card_list=False)
    sign_on(edc, switch)
    edc.set_link_state(False)
    edc.insert_card(PAN)
    assert [c.reason for c in edc.choose_purchase() if isinstance(c, Reject)] == [
        "Daftar kartu offline belum dimuat, lakukan sign-on saat ada sinyal"
    ]
    assert edc.state is State.CARD


def test_cek_is_refused_offline(core: EdcCore) -> None:
    core.insert_card(PAN)
    [refusal] = core.choose_inquiry()
    assert isinstance(refusal, Reject) and refusal.reason.startswith("Cek saldo tidak tersedia saat offline")
    assert core.state is State.CARD


def test_the_terminal_goes_offline_after_the_link_fails_long_enough(tmp_path: Path, clock: FixedClock, switch: FakeSwitch) -> None:
    edc = new_core(tmp_path, clock, offline_after_ms=60_000)
    sign_on(edc, switch)
    switch.silent_mtis = {"0800"}
    assert drive_sync(edc, edc.echo(), switch).rc == "91"
    edc.finish()
    clock.advance(timedelta(seconds=59))
    assert not edc.offline
    clock.advance(timedelta(seconds=2))
    assert edc.offline and bayar_offline(edc, 5_000).approved
    switch.silent_mtis = set()
    assert drive_sync(edc, edc.echo(), switch).approved  # an answer: online again
    edc.finish()
    assert not edc.offline


# -- the pure decision -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "amount", "rc", "left"),
    [
        (offline.OfflineFacts(list_loaded=False), 1, "91", None),
        (offline.OfflineFacts(True, hot_listed=True, id_matches=True, limit_idr=LIMIT), 1, "62", None),
        (offline.OfflineFacts(True, id_matches=False, limit_idr=LIMIT), 1, "05", None),
        (offline.OfflineFacts(True, id_matches=True, limit_idr=LIMIT, spent_idr=140_000), 10_001, "51", 10_000),
        (offline.OfflineFacts(True, id_matches=True, limit_idr=LIMIT, spent_idr=200_000), 1, "51", 0),
        (offline.OfflineFacts(True, id_matches=True, limit_idr=LIMIT, spent_idr=140_000), 10_000, "00", 0),
    ],
)
def test_the_offline_decision(facts: offline.OfflineFacts, amount: int, rc: str, left: int | None) -> None:
    decision = offline.decide(facts, amount)
    assert (decision.rc, decision.approved, decision.remaining_idr) == (rc, rc == "00", left)


# -- headless and CLI, over TCP to the fake switch ------------------------------------------------------


def headless(switch: FakeSwitch, data_dir: Path, command: str, **kwargs: object) -> dict:
    clock = FixedClock(NOW)
    coroutine = run(command, TID, "127.0.0.1", switch.port, data_dir, clock=clock, timeout_ms=2_000, **kwargs)  # type: ignore[arg-type]
    return asyncio.run(asyncio.wait_for(coroutine, 20))


def test_headless_bayar_offline_with_the_nik_after_a_signon(switch: FakeSwitch, tmp_path: Path) -> None:
    switch.start()
    try:
        assert headless(switch, tmp_path, "signon")["rc"] == "00"
        sent_before = len(switch.received)
        result = headless(switch, tmp_path, "bayar", pan=PAN, amount_idr=30_000, nik=NIK, link=OFFLINE)
        assert (result["rc"], result["offline"], result["approval_code"], result["link"]) == ("00", True, "OF0004", "OFFLINE")
        assert len(switch.received) == sent_before  # nothing went anywhere
        clock_file = tmp_path / "clock.json"  # the CLI on the same simulated day (its allowance is per month)
        ClockFile(NOW, time.time()).write(clock_file)
        cli = CliRunner().invoke(
            edc_app,
            ["bayar", "--card", PAN, "--amount", "200000", "--nik", NIK, "--link", "offline", "--data-dir", str(tmp_path), "--json"],
            env={"SEMBAKO_DATA_DIR": None, "SEMBAKO_CLOCK_FILE": str(clock_file)},
        )
        answer = json.loads(cli.stdout)
        left = "Melebihi batas belanja offline bulan ini: sisa Rp120.000 untuk kartu ini"
        assert (cli.exit_code, answer["rc"], answer["message"]) == (1, "51", left)
        cek = CliRunner().invoke(edc_app, ["cek", "--card", PAN, "--link", "offline", "--data-dir", str(tmp_path)])
        assert cek.exit_code == 2 and "Cek saldo tidak tersedia saat offline" in cek.output
        no_nik = CliRunner().invoke(edc_app, ["bayar", "--card", PAN, "--amount", "1000", "--link", "offline", "--data-dir", str(tmp_path)])
        assert no_nik.exit_code == 2 and "--nik" in no_nik.output
    finally:
        switch.stop()
