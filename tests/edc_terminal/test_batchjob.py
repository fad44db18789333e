"""Upload and settlement at the end of the day (and after a long offline period): the job sends
the stored advices with many messages in flight, settles each batch in order, uploads the details
after a 95, and continues safely after a crash anywhere. The fake switch answers in the test's
thread (`run_job_sync` hands the answers back out of order); the last tests go over TCP."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edc_terminal.batchjob import ANSWERS_HELD_MAX, ANSWERS_HELD_MS, WINDOW_MAX, BatchJob, JobResult
from edc_terminal.cli import edc_app
from edc_terminal.core import CoreConfig, EdcCore, Reject, State
from edc_terminal.headless import run
from edc_terminal.store import TerminalStore
from shared import protocol
from shared.clock import FixedClock
from shared.iso8583 import decode

from tests.edc_terminal.conftest import PAN, PIN, START_BALANCE
from tests.edc_terminal.fakes import Account, FakeSwitch, drive_sync, run_job_sync
from tests.edc_terminal.test_offline import NIK, bayar_offline

TID = "BNI00001"
NOW = datetime(2026, 11, 20, 10, 0, 0)


@pytest.fixture
def switch() -> FakeSwitch:
    fake = FakeSwitch({PAN: Account(PIN, START_BALANCE)})
    fake.offline_cards = {PAN: NIK}
    fake.offline_limit_idr = 10_000_000
    return fake


def open_core(data_dir: Path, **options: object) -> EdcCore:
    """The terminal as it starts: from its files (after a crash too)."""
    store = TerminalStore(data_dir, TID)
    config = CoreConfig.uniform(300, **{"card_list": True, **options})
    return EdcCore.for_demo_terminal(TID, store.load(), store, FixedClock(NOW), config)


@pytest.fixture
def core(tmp_path: Path, switch: FakeSwitch) -> EdcCore:
    edc = open_core(tmp_path)
    assert drive_sync(edc, edc.sign_on(), switch).approved
    edc.finish()
    return edc


def sell_offline(core: EdcCore, *amounts: int) -> list[str]:
    """Sales while there is no signal; the signal is back afterwards. Their STANs."""
    core.set_link_state(False)
    stans = [bayar_offline(core, amount).stan or "" for amount in amounts]
    core.set_link_state(True)
    return stans


def buy_online(core: EdcCore, switch: FakeSwitch, amount: int) -> str:
    core.insert_card(PAN)
    core.choose_purchase()
    core.enter_amount(str(amount))
    outcome = drive_sync(core, core.enter_pin(PIN), switch)
    core.finish()
    assert outcome.approved, outcome
    return outcome.stan or ""


def job_of(started: BatchJob | Reject) -> BatchJob:
    assert isinstance(started, BatchJob), started
    return started


def settle(core: EdcCore, switch: FakeSwitch, window: int = 32) -> JobResult:
    result = run_job_sync(job_of(core.start_settlement()), switch, window)
    assert core.state is State.RESULT and core.outcome is not None and core.outcome.rc == result.rc
    core.finish()
    return result


def sent(switch: FakeSwitch, mti: str) -> list[dict]:
    return [m for m in switch.received if m["t"] == mti]


# -- upload ------------------------------------------------------------------------------------------


def test_advices_whose_answers_were_lost_go_again_later_with_the_same_bytes(core: EdcCore, switch: FakeSwitch) -> None:
    stans = sell_offline(core, 10_000, 11_000, 12_000, 13_000, 14_000)
    switch.silent_stans = {stans[1], stans[3]}  # the switch takes them, its answers are lost
    first = run_job_sync(job_of(core.start_upload()), switch)
    assert (first.rc, first.advices_sent, first.advices_left) == ("91", 3, 2)
    assert first.message == "Upload belum selesai: 2 transaksi offline dikirim lagi nanti"
    core.finish()

    switch.silent_stans = set()
    second = run_job_sync(job_of(core.start_upload()), switch)
    core.finish()
    assert (second.rc, second.advices_sent, second.uploads_retried, second.advices_left) == ("00", 2, 2, 0)
    for stan in stans[1], stans[3]:
        raws = [raw for raw in switch.received_raw if decode(raw)["t"] == "0220" and decode(raw)["11"] == stan]
        assert len(raws) == 2 and raws[0] == raws[1]  # the 0220 went unchanged, MAC and all
    assert switch.accounts[PAN].balance == START_BALANCE - 60_000  # each sale debited once
    assert core.batch_summary().pending_advices == 0
    third = run_job_sync(job_of(core.start_upload()), switch)
    assert (third.rc, third.advices_sent) == ("00", 0) and len(sent(switch, "0220")) == 7


def test_the_job_keeps_at_most_its_window_in_flight(core: EdcCore, switch: FakeSwitch) -> None:
    sell_offline(core, *[1_000] * 20)
    job = job_of(core.start_upload())
    assert job.poll(0) == [] and len(job.poll(8)) == 8 and job.in_flight == 8
    assert len(job.poll(100)) == 12 and job.poll(100) == []  # all are out; nothing more until answers


# -- settlement --------------------------------------------------------------------------------------


def test_a_95_uploads_every_transaction_of_the_batch_then_960000_closes_it(core: EdcCore, switch: FakeSwitch, tmp_path: Path) -> None:
    buy_online(core, switch, 20_000)
    voided = buy_online(core, switch, 30_000)
    assert drive_sync(core, core.reverse_last(), switch).approved
    core.finish()
    sell_offline(core, 5_000, 7_000)
    switch.force_95_batches = {1}

    result = settle(core, switch)
    assert result.rc == "00" and result.batches_settled == (1,) and result.open_batch == 2
    totals = protocol.BatchTotals(4, 62_000, 1, 30_000)  # the voided purchase counts, and so does its void
    assert [(s.batch, s.processing, s.rc, s.totals) for s in result.steps] == [
        (1, "920000", "95", totals), (1, "960000", "00", totals)
    ]  # fmt: skip
    assert [(u["62"], u["60"]) for u in switch.uploads] == [("0200", "000001")] * 2 + [("0400", "000001")] + [("0220", "000001")] * 2
    reversal = next(u for u in switch.uploads if u["62"] == "0400")
    assert protocol.parse_original_data(reversal["90"])[1] == voided and result.details_sent == 5
    assert all("52" not in u and u["37"] for u in switch.uploads if u["62"] == "0200")
    mtis = [m["t"] for m in switch.received if m["t"] in ("0320", "0500")]
    assert mtis == ["0500", *["0320"] * 5, "0500"]
    assert core.stored.batch == 2 and TerminalStore(tmp_path, TID).load().batch == 2


def test_a_closed_batch_advances_the_number_and_its_sales_can_no_longer_be_voided(core: EdcCore, switch: FakeSwitch) -> None:
    buy_online(core, switch, 20_000)
    result = settle(core, switch)
    assert [(s.processing, s.rc) for s in result.steps] == [("920000", "00")] and result.open_batch == 2
    assert core.stored.batch == 2 and core.stored.last_purchase is None
    assert [c.reason for c in core.reverse_last() if isinstance(c, Reject)] == ["Tidak ada transaksi pembelian yang dapat dibatalkan"]
    buy_online(core, switch, 10_000)
    assert sent(switch, "0200")[-1]["60"] == "000002"


def test_sealed_batches_settle_in_order(core: EdcCore, switch: FakeSwitch, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "BATCH_COUNT_MAX", 3)  # a long offline period, in miniature
    sell_offline(core, *[1_000 * n for n in range(1, 8)])
    assert [(b.number, b.state, b.sales) for b in core.batches.unsettled()] == [(1, "sealed", 3), (2, "sealed", 3), (3, "open", 1)]
    assert sent(switch, "0220") == []  # nothing sent while offline
    result = settle(core, switch)
    assert result.rc == "00" and result.batches_settled == (1, 2, 3) and result.open_batch == 4
    assert [(s.batch, s.rc, s.totals.purchase_count) for s in result.steps] == [(1, "00", 3), (2, "00", 3), (3, "00", 1)]
    assert [m["60"] for m in sent(switch, "0500")] == ["000001", "000002", "000003"]
    assert [b.number for b in core.batches.unsettled()] == [4] and core.stored.batch == 4


def _mtis_and_batches(switch: FakeSwitch) -> list[tuple[str, str]]:
    return [(m["t"], m["60"]) for m in switch.received if m["t"] in ("0220", "0320", "0500")]


def test_a_sealed_batch_settles_while_later_batches_still_upload(core: EdcCore, switch: FakeSwitch, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once batch 1's advices are all answered, its 0500 goes ahead of batch 2's and 3's
    advices still waiting: the settlements' round trips overlap the upload."""
    monkeypatch.setattr(protocol, "BATCH_COUNT_MAX", 3)
    sell_offline(core, *[1_000 * n for n in range(1, 8)])
    result = settle(core, switch, window=2)
    assert result.rc == "00" and result.batches_settled == (1, 2, 3) and result.open_batch == 4
    assert [(s.batch, s.processing, s.rc, s.totals.purchase_count) for s in result.steps] == [
        (1, "920000", "00", 3), (2, "920000", "00", 3), (3, "920000", "00", 1)
    ]  # fmt: skip
    order = _mtis_and_batches(switch)
    assert order.index(("0500", "000001")) < order.index(("0220", "000003"))  # before the upload ended
    assert [b for t, b in order if t == "0500"] == ["000001", "000002", "000003"]  # in order, once each
    assert [b.number for b in core.batches.unsettled()] == [4]


def test_an_early_95_leaves_the_batch_to_the_settle_step_which_uploads_its_details(
    core: EdcCore, switch: FakeSwitch, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(protocol, "BATCH_COUNT_MAX", 3)
    sell_offline(core, *[1_000 * n for n in range(1, 8)])
    summed = switch.batch_totals  # the switch's totals of batch 1 are Rp1 off, whatever is sent again
    monkeypatch.setattr(switch, "batch_totals", lambda tid, batch: replace(summed(tid, batch), purchase_amount_idr=summed(tid, batch).purchase_amount_idr + (batch == 1)))
    result = settle(core, switch, window=2)
    assert result.rc == "00" and result.batches_settled == (1, 2, 3)
    assert [(s.batch, s.processing, s.rc) for s in result.steps] == [
        (1, "920000", "95"), (1, "960000", "00"), (2, "920000", "00"), (3, "920000", "00")
    ]  # fmt: skip
    order = _mtis_and_batches(switch)
    settlements = [b for t, b in order if t == "0500"]
    assert settlements == ["000001", "000001", "000001", "000002", "000003"]  # early 95, 920000 again (95), 960000
    assert [b for t, b in order if t == "0320"] == ["000001"] * 3
    assert order.index(("0320", "000001")) > max(i for i, (t, _) in enumerate(order) if t == "0220")  # details after the upload


def test_no_batch_settles_early_while_an_advice_of_it_or_before_it_is_unanswered(
    core: EdcCore, switch: FakeSwitch, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(protocol, "BATCH_COUNT_MAX", 3)
    stans = sell_offline(core, *[1_000 * n for n in range(1, 8)])
    switch.advice_rcs = {stans[1]: "91"}  # batch 1's second sale: the bank cannot be asked
    result = settle(core, switch, window=2)
    assert result.rc == "91" and result.batches_settled == () and result.advices_left == 1
    assert [m for m in switch.received if m["t"] == "0500"] == []
    assert [b.number for b in core.batches.unsettled()] == [1, 2, 3]


def test_advices_the_bank_refused_are_exceptions_reported_and_not_counted(core: EdcCore, switch: FakeSwitch) -> None:
    stans = sell_offline(core, 10_000, 20_000, 30_000)
    switch.advice_rcs = {stans[1]: "51"}
    result = settle(core, switch)
    assert result.rc == "00" and result.advices_approved == 2 and result.advices_sent == 3
    assert result.steps[0].totals == protocol.BatchTotals(2, 40_000, 0, 0)
    [exception] = result.exceptions
    assert (exception.stan, exception.rc, exception.amount_idr, exception.batch) == (stans[1], "51", 20_000, 1)
    assert "9360000900000014" not in json.dumps(result.to_dict())


def test_pending_reversals_go_first_and_settlement_waits_for_them(core: EdcCore, switch: FakeSwitch) -> None:
    switch.silent_mtis = {"0200", "0400", "0401"}
    core.insert_card(PAN)
    core.choose_purchase()
    core.enter_amount("25000")
    assert drive_sync(core, core.enter_pin(PIN), switch).reversal == "pending"
    core.finish()
    sell_offline(core, 5_000)
    waiting = settle(core, switch)
    assert waiting.rc == "91" and waiting.reversals_left == 1 and sent(switch, "0500") == [] and sent(switch, "0220") == []
    assert waiting.message == "1 pembatalan belum terkirim: settlement ditunda"

    switch.silent_mtis = set()
    before = len(switch.received)
    done = settle(core, switch)
    assert (done.rc, done.reversals_sent, core.pending_reversals) == ("00", 1, 0)
    order = [m["t"] for m in switch.received[before:]]
    assert order.index("0401") < order.index("0220") < order.index("0500")
    # The switch approved the purchase the terminal never saw answered, then its reversal: its
    # totals differ from the terminal's, so the batch closes after a detail upload.
    assert [(s.processing, s.rc) for s in done.steps] == [("920000", "95"), ("960000", "00")]
    assert switch.accounts[PAN].balance == START_BALANCE - 5_000


# -- crashes -----------------------------------------------------------------------------------------


def test_a_lost_0510_and_a_restart_close_the_batch_once(core: EdcCore, switch: FakeSwitch, tmp_path: Path) -> None:
    sell_offline(core, 10_000)
    switch.silent_mtis = {"0500"}  # the switch closes the batch; its answer never arrives
    lost = settle(core, switch)
    assert lost.rc == "91" and lost.batches_settled == () and core.stored.batch == 1
    core.close()

    switch.silent_mtis = set()
    restarted = open_core(tmp_path)
    again = settle(restarted, switch)
    assert (again.rc, again.batches_settled, again.open_batch) == ("00", (1,), 2)
    assert [m["63"] for m in sent(switch, "0500")][0] == [m["63"] for m in sent(switch, "0500")][1]
    assert restarted.stored.batch == 2 and [b.number for b in restarted.batches.unsettled()] == [2]


def test_a_crash_in_the_middle_of_an_upload_loses_no_sale_and_doubles_none(core: EdcCore, switch: FakeSwitch, tmp_path: Path) -> None:
    stans = sell_offline(core, *[1_000 + n for n in range(10)])
    job = job_of(core.start_settlement())
    sends = job.poll(32)
    assert len(sends) == 10
    for send in sends[:4]:  # four answers arrive, then the terminal dies with six in flight
        raw = switch.answer_now(send.data)
        assert raw is not None
        job.on_response(decode(raw), raw)  # held in memory, not stored yet
    for send in sends[4:]:
        switch.answer_now(send.data)  # the switch processed them; the answers are lost with the terminal
    core.close()

    restarted = open_core(tmp_path)
    assert restarted.batch_summary().pending_advices == 10
    result = settle(restarted, switch)
    assert (result.rc, result.advices_sent, result.advices_approved) == ("00", 10, 10)
    assert result.steps[0].totals == protocol.BatchTotals(10, sum(1_000 + n for n in range(10)), 0, 0)
    assert sorted(m["11"] for m in sent(switch, "0220")) == sorted(stans * 2)  # every one sent again...
    assert switch.accounts[PAN].balance == START_BALANCE - sum(1_000 + n for n in range(10))  # ...and posted once


def counted_commits(core: EdcCore) -> list[int]:
    """The size of each group of advice answers the core's batch store commits, from now on."""
    commits: list[int] = []
    record = core.batches.record_advice_answers
    core.batches.record_advice_answers = lambda answered: (commits.append(len(answered)), record(answered))  # type: ignore[method-assign]
    return commits


def answer_all(job: BatchJob, switch: FakeSwitch, sends: list) -> None:  # noqa: ANN001
    for send in sends:
        raw = switch.answer_now(send.data)
        job.on_response(decode(raw), raw)


def test_answers_are_stored_a_group_at_a_time_and_all_before_the_step_ends(core: EdcCore, switch: FakeSwitch) -> None:
    sell_offline(core, *[1_000 + n for n in range(ANSWERS_HELD_MAX + 6)])
    job = job_of(core.start_upload())
    commits = counted_commits(core)
    sends = job.poll(WINDOW_MAX)
    answer_all(job, switch, sends[:ANSWERS_HELD_MAX])
    assert commits == [ANSWERS_HELD_MAX] and core.batch_summary().pending_advices == 6
    answer_all(job, switch, sends[ANSWERS_HELD_MAX:])
    assert commits == [ANSWERS_HELD_MAX, 6]  # the last answer ends the step: the rest is stored with it
    assert job.result is not None and job.result.advices_sent == ANSWERS_HELD_MAX + 6
    assert core.batch_summary().pending_advices == 0


def test_answers_held_too_long_are_stored_at_the_next_round(tmp_path: Path, switch: FakeSwitch) -> None:
    clock = FixedClock(NOW)
    store = TerminalStore(tmp_path, TID)
    edc = EdcCore.for_demo_terminal(TID, store.load(), store, clock, CoreConfig.uniform(300, card_list=True))
    assert drive_sync(edc, edc.sign_on(), switch).approved
    edc.finish()
    sell_offline(edc, 1_000, 2_000, 3_000)
    job = job_of(edc.start_upload())
    commits = counted_commits(edc)
    sends = job.poll(WINDOW_MAX)
    answer_all(job, switch, sends[:2])
    clock.advance(timedelta(milliseconds=ANSWERS_HELD_MS - 1))
    assert job.poll(WINDOW_MAX) == [] and commits == []
    clock.advance(timedelta(milliseconds=1))
    assert job.poll(WINDOW_MAX) == [] and commits == [2]
    assert edc.batch_summary().pending_advices == 1


# -- over TCP: the headless driver and the CLI ----------------------------------------------------------


def test_settle_and_upload_from_the_cli_over_tcp(switch: FakeSwitch, tmp_path: Path) -> None:
    switch.start()
    try:
        edc = open_core(tmp_path)
        edc.close()
        asyncio.run(asyncio.wait_for(run("signon", TID, "127.0.0.1", switch.port, tmp_path, clock=FixedClock(NOW), timeout_ms=2_000), 20))
        edc = open_core(tmp_path)
        stans = sell_offline(edc, *[2_000] * 40)
        edc.close()
        switch.advice_rcs = {stans[0]: "54"}
        switch.silent_stans = {stans[5]}
        base = ["--switch", f"127.0.0.1:{switch.port}", "--data-dir", str(tmp_path), "--timeout-ms", "1000", "--json"]
        upload = CliRunner().invoke(edc_app, ["upload", *base, "--window", "16"], env={"SEMBAKO_DATA_DIR": None})
        first = json.loads(upload.stdout)
        assert (upload.exit_code, first["rc"], first["counts"]["advices_sent"], first["counts"]["advices_left"]) == (1, "91", 39, 1)
        switch.silent_stans = set()
        switch.force_95_batches = {1}
        settled = CliRunner().invoke(edc_app, ["settle", *base], env={"SEMBAKO_DATA_DIR": None})
        result = json.loads(settled.stdout)
        assert settled.exit_code == 0, settled.output
        assert (result["rc"], result["batches_settled"], result["open_batch"], result["uploads_retried"]) == ("00", [1], 2, 1)
        assert [(s["processing"], s["rc"]) for s in result["steps"]] == [("920000", "95"), ("960000", "00")]
        assert result["counts"]["details_sent"] == 39 and result["counts"]["advices_sent"] == 1
        assert [(e["stan"], e["rc"]) for e in result["exceptions"]] == [(stans[0], "54")]
        assert len(switch.uploads) == 39 and result["pending_advices"] == 0
    finally:
        switch.stop()


def test_a_terminal_that_ran_before_the_batch_store_keeps_its_batch_number(tmp_path: Path, switch: FakeSwitch) -> None:
    store = TerminalStore(tmp_path, TID)
    state = store.load()
    state.batch = 7  # the state file of an older terminal: batch 7 open, no batch store yet
    store.save(state)
    edc = open_core(tmp_path)
    assert edc.batches.open_batch().number == 7 and edc.stored.batch == 7
    assert drive_sync(edc, edc.sign_on(), switch).approved
    edc.finish()
    assert sent(switch, "0200") == [] and settle(edc, switch).batches_settled == (7,)
    assert edc.stored.batch == 8 and TerminalStore(tmp_path, TID).load().batch == 8
