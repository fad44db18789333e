"""Batches at the switch, over the real protocol: a terminal closes its batch with 0500, is told
95 when its totals differ, details the batch with 0320 and closes it with 960000; an offline
sale the switch never saw, detailed in a 0320, is posted by the bank exactly once.

One network per storage (SQLite files, or schemas on the real PostgreSQL). Each test uses its
own terminal (its batches are its own) and its own cards; every test leaves the ledger balanced.
The migration that brings the tables (0004) is checked on both databases too.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, insert, select

from shared import iso8583, protocol, rc
from shared.banks import get_bank
from shared.money import to_iso_minor
from shared.offline import offline_approval_code
from shared.protocol import BatchTotals

from bank_penyalur.demo import generator
from switch import migrate
from switch.batches import Batches, SettlementRequest, decide_settlement, upload_refusal
from switch.journal import Journal, SettlementRecord, TRANSACTION_FIELDS, UploadRecord
from switch.tables import Base, BatchUpload, Settlement, Transaction
from tests.bounded import wait_until
from tests.switch.network import Network, RawTerminal, network_per_storage, raw_terminal
from tests.switch.test_journal import open_journal, transaction

BNI = get_bank("bni")
BENEFIT_IDR = 150_000
SPENDABLE = [p for p in (generator.generated_kpm(BNI, i) for i in range(40)) if p.spendable]


def card(index: int) -> generator.GeneratedKpm:
    """The index-th funded, activated generated card; each test uses its own."""
    return SPENDABLE[index]


# -- a network whose switch settles batches -----------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def network(request, tmp_path_factory) -> Iterator[Network]:  # noqa: ANN001
    yield from network_per_storage(request, tmp_path_factory, "batches")


@pytest.fixture
def terminals(network: Network) -> Iterator:  # noqa: ANN001
    """Signed-on raw terminals by serial, closed after the test; the ledger is checked after it."""
    opened: list[RawTerminal] = []

    def open_terminal(serial: int) -> RawTerminal:
        terminal = raw_terminal(network, serial=serial)
        assert terminal.sign_on()["39"] == rc.APPROVED
        opened.append(terminal)
        return terminal

    yield open_terminal
    for terminal in opened:
        terminal.close()
    network.assert_ledger_balanced()


# -- what a terminal sends ------------------------------------------------------------------------


def buy(edc: RawTerminal, person: generator.GeneratedKpm, amount_idr: int, batch: int) -> tuple[dict, dict]:
    """An online purchase in `batch`: (the request as sent, its answer)."""
    doc = protocol.purchase_request(edc.terminal, edc.next_stan(), datetime.now(), person.pan, amount_idr, edc.pin_block(person.pan, person.pin), batch)
    return doc, edc.exchange(doc)


def void(edc: RawTerminal, purchase: dict) -> tuple[dict, dict]:
    doc = protocol.reversal_request(purchase, edc.next_stan(), datetime.now())
    return doc, edc.exchange(doc)


def offline_sale(edc: RawTerminal, person: generator.GeneratedKpm, amount_idr: int, batch: int) -> dict:
    """The 0220 of a sale approved offline now, as the terminal builds it once."""
    stan = edc.next_stan()
    return protocol.advice_request(edc.terminal, stan, datetime.now(), person.pan, amount_idr, offline_approval_code(stan), batch)


def settle(edc: RawTerminal, batch: int, totals: BatchTotals, after_upload: bool = False) -> dict:
    return edc.exchange(protocol.settlement_request(edc.terminal, edc.next_stan(), datetime.now(), batch, totals, after_upload))


def detailed(request: dict, answer: dict | None = None) -> dict:
    """The transaction as the terminal keeps it for upload: the request without the PIN block,
    with 37 and 38 of its answer."""
    kept = {k: v for k, v in request.items() if k != "52"}
    if answer is not None:
        kept |= {k: answer[k] for k in ("37", "38") if k in answer}
    return kept


def upload(edc: RawTerminal, request: dict, answer: dict | None, batch: int) -> dict:
    return edc.exchange(protocol.batch_upload_request(detailed(request, answer), batch))


def totals_in(answer: dict) -> BatchTotals:
    return protocol.parse_totals_field(answer["63"])


def settlements_of(network: Network, tid: str, batch: int) -> list:
    with network.switch.db.read() as conn:
        query = select(Settlement.__table__).where(Settlement.tid == tid, Settlement.batch == batch).order_by(Settlement.id)
        return conn.execute(query).all()


def uploads_of(network: Network, tid: str, batch: int) -> list:
    with network.switch.db.read() as conn:
        query = select(BatchUpload.__table__).where(BatchUpload.tid == tid, BatchUpload.batch == batch).order_by(BatchUpload.id)
        return conn.execute(query).all()


# -- settling an online batch ------------------------------------------------------------------------


def test_an_online_batch_with_a_void_settles_once(network: Network, terminals) -> None:  # noqa: ANN001
    edc, a, b = terminals(2), card(0), card(1)
    first, answer = buy(edc, a, 20_000, batch=7)
    second, second_answer = buy(edc, b, 15_000, batch=7)
    _, third_answer = buy(edc, a, 10_000, batch=7)
    assert [x["39"] for x in (answer, second_answer, third_answer)] == [rc.APPROVED] * 3
    assert void(edc, second)[1]["39"] == rc.APPROVED
    totals = BatchTotals(3, 45_000, 1, 15_000)

    request = protocol.settlement_request(edc.terminal, edc.next_stan(), datetime.now(), 7, totals)
    closed = edc.exchange(request)
    assert (closed["t"], closed["39"], closed["60"]) == ("0510", rc.APPROVED, "000007")
    assert edc.exchange(request) == closed  # the 0510 was lost: the very same 0500 again
    assert settle(edc, 7, totals)["39"] == rc.APPROVED  # a new STAN, the same totals: still closed
    [row] = settlements_of(network, edc.tid, 7)
    assert (row.rc, row.processing_code, row.terminal_purchase_amount_idr, row.switch_reversal_amount_idr) == ("00", "920000", 45_000, 15_000)

    assert settle(edc, 7, BatchTotals(3, 45_000, 0, 0))["39"] == rc.DUPLICATE  # other totals for a closed batch
    assert [r.rc for r in settlements_of(network, edc.tid, 7)] == ["00", "94"]
    assert upload(edc, first, answer, 7)["39"] == rc.INVALID_TRANSACTION  # a closed batch takes no upload
    assert settle(edc, 5, BatchTotals())["39"] == rc.INVALID_TRANSACTION  # older, never closed: unknown
    assert network.balance_of(a.pan) == BENEFIT_IDR - 30_000
    assert network.balance_of(b.pan) == BENEFIT_IDR


def test_totals_that_differ_get_95_then_upload_and_960000_close_the_batch(network: Network, terminals) -> None:  # noqa: ANN001
    edc, person = terminals(3), card(2)
    first, first_answer = buy(edc, person, 20_000, batch=2)
    second, second_answer = buy(edc, person, 10_000, batch=2)
    third, third_answer = buy(edc, person, 5_000, batch=2)
    voided, void_answer = void(edc, third)
    _, declined = buy(edc, person, 500_000, batch=2)
    assert [a["39"] for a in (first_answer, second_answer, third_answer, void_answer)] == [rc.APPROVED] * 4
    assert declined["39"] == rc.INSUFFICIENT_FUNDS

    claimed = BatchTotals(2, 25_000, 1, 5_000)  # the terminal lost the second purchase
    differs = settle(edc, 2, claimed)
    assert differs["39"] == rc.RECONCILE_ERROR
    assert totals_in(differs) == BatchTotals(3, 35_000, 1, 5_000)  # the switch's totals, in field 63

    kept = ((first, first_answer), (second, second_answer), (third, third_answer), (voided, void_answer))
    for request, answer in kept:
        uploaded = upload(edc, request, answer, 2)  # the void's with field 90, MACed in 128
        assert (uploaded["t"], uploaded["39"], uploaded["62"]) == ("0330", rc.APPROVED, request["t"])
    assert upload(edc, first, first_answer, 2)["39"] == rc.APPROVED  # repeated: recorded once
    rows = uploads_of(network, edc.tid, 2)
    assert [(r.stan, r.original_mti, r.amount_idr, r.rrn, r.original_stan) for r in rows] == [
        (first["11"], "0200", 20_000, first_answer["37"], None),
        (second["11"], "0200", 10_000, second_answer["37"], None),
        (third["11"], "0200", 5_000, third_answer["37"], None),
        (voided["11"], "0400", 5_000, void_answer["37"], third["11"]),
    ]

    closed = settle(edc, 2, claimed, after_upload=True)
    assert (closed["39"], closed["3"]) == (rc.APPROVED, "960000")
    assert [(r.rc, r.processing_code) for r in settlements_of(network, edc.tid, 2)] == [("95", "920000"), ("00", "960000")]
    closing = settlements_of(network, edc.tid, 2)[-1]  # both totals kept: reconciliation shows the difference
    assert (closing.terminal_purchase_amount_idr, closing.switch_purchase_amount_idr) == (25_000, 35_000)
    assert settle(edc, 2, claimed, after_upload=True)["39"] == rc.APPROVED  # the retried close
    assert network.balance_of(person.pan) == BENEFIT_IDR - 30_000  # nothing was posted by the upload


def test_an_offline_sale_detailed_before_its_advice_is_posted_once(network: Network, terminals) -> None:  # noqa: ANN001
    edc, person = terminals(4), card(3)
    sale = offline_sale(edc, person, 25_000, batch=3)  # never sent: the link was down

    uploaded = upload(edc, sale, None, 3)
    assert uploaded["39"] == rc.APPROVED
    assert network.balance_of(person.pan) == BENEFIT_IDR - 25_000  # forwarded to the bank as the advice
    assert upload(edc, sale, None, 3)["39"] == rc.APPROVED  # the same 0320 again
    advice = edc.exchange(sale)  # and the terminal's own 0220 afterwards
    assert (advice["t"], advice["39"]) == ("0230", rc.APPROVED)
    assert network.balance_of(person.pan) == BENEFIT_IDR - 25_000  # still one posting

    def journalled():  # noqa: ANN202
        return network.switch.journal.find(edc.tid, sale["11"], protocol.transmission_date(sale["7"], date.today()), "advice")

    assert wait_until(lambda: journalled() is not None)
    row = journalled()
    assert (row.mti, row.rc, row.amount_idr, row.batch, row.rrn) == ("0320", rc.APPROVED, 25_000, 3, advice["37"])
    assert len(uploads_of(network, edc.tid, 3)) == 1
    assert settle(edc, 3, BatchTotals(1, 25_000, 0, 0))["39"] == rc.APPROVED  # the switch counts it


def test_an_upload_of_an_advice_the_switch_had_posts_nothing_more(network: Network, terminals) -> None:  # noqa: ANN001
    edc, person = terminals(6), card(4)
    sale = offline_sale(edc, person, 12_000, batch=4)
    assert edc.exchange(sale)["39"] == rc.APPROVED
    assert upload(edc, sale, None, 4)["39"] == rc.APPROVED
    assert network.balance_of(person.pan) == BENEFIT_IDR - 12_000


# -- bad input ---------------------------------------------------------------------------------------------


def test_malformed_settlements_get_30_and_close_nothing(network: Network, terminals) -> None:  # noqa: ANN001
    edc = terminals(5)
    good = protocol.settlement_request(edc.terminal, "000000", datetime.now(), 1, BatchTotals())
    for change in ({"63": "0" * 29}, {"63": "0" * 31}, {"63": "00A" + "0" * 27}, {"63": "0" * 14 + "1" + "0" * 15}, {"60": "00000A"}, {"60": "000000"}):
        assert edc.exchange({**good, "11": edc.next_stan(), **change})["39"] == rc.FORMAT_ERROR, change
    missing = {k: v for k, v in good.items() if k != "63"}
    assert edc.exchange({**missing, "11": edc.next_stan()})["39"] == rc.FORMAT_ERROR
    assert edc.exchange({**good, "11": edc.next_stan(), "3": "930000"})["39"] == rc.INVALID_TRANSACTION
    assert settlements_of(network, edc.tid, 1) == []


def test_a_settlement_from_a_stranger_or_with_a_bad_mac_is_refused(network: Network, terminals) -> None:  # noqa: ANN001
    edc = terminals(7)
    doc = protocol.settlement_request(edc.terminal, edc.next_stan(), datetime.now(), 1, BatchTotals())
    stranger = RawTerminal("BNI00099", BNI.merchant_id(99), network.iso_port).connect()
    try:
        stranger.tak = edc.tak
        assert stranger.exchange({**doc, "41": "BNI00099", "42": BNI.merchant_id(99)})["39"] == rc.NOT_PERMITTED_TERMINAL
    finally:
        stranger.close()
    message = bytearray(iso8583.encode_with_mac(doc, edc.tak))
    message[-1] ^= 0xFF
    edc.send_message(bytes(message))
    assert edc.read_message()[1]["39"] == rc.INVALID_TRANSACTION
    assert settlements_of(network, edc.tid, 1) == []


def test_malformed_uploads_get_30_and_record_nothing(network: Network, terminals) -> None:  # noqa: ANN001
    edc, person = terminals(8), card(5)
    for change in ({"62": "0100"}, {"62": "02"}, {"60": "1"}, {"4": "00000000050Z"}, {"12": None}, {"12": "256199"}):
        good = protocol.batch_upload_request(offline_sale(edc, person, 5_000, batch=1), 1)  # each its own STAN
        changed = {k: v for k, v in {**good, **change}.items() if v is not None}
        assert edc.exchange(changed)["39"] == rc.FORMAT_ERROR, change  # (an offline sale needs its time to be posted)
    assert uploads_of(network, edc.tid, 1) == []
    assert network.balance_of(person.pan) == BENEFIT_IDR


def test_an_advice_with_another_amount_under_a_posted_stan_is_94(network: Network, terminals) -> None:  # noqa: ANN001
    edc, person = terminals(9), card(6)
    sale = offline_sale(edc, person, 30_000, batch=1)
    assert edc.exchange(sale)["39"] == rc.APPROVED
    assert edc.exchange({**sale, "4": to_iso_minor(31_000)})["39"] == rc.DUPLICATE
    assert network.balance_of(person.pan) == BENEFIT_IDR - 30_000


def test_an_upload_for_a_batch_that_cannot_reopen_is_12(network: Network, terminals) -> None:  # noqa: ANN001
    edc, person = terminals(10), card(7)
    purchase, answer = buy(edc, person, 8_000, batch=9)
    assert settle(edc, 9, BatchTotals(1, 8_000, 0, 0))["39"] == rc.APPROVED
    older = offline_sale(edc, person, 4_000, batch=8)
    assert upload(edc, older, None, 8)["39"] == rc.INVALID_TRANSACTION  # below the last closed batch
    assert network.balance_of(person.pan) == BENEFIT_IDR - 8_000  # and nothing was forwarded


# -- the decisions, without a network ------------------------------------------------------------------------


CLOSED_AT = datetime(2026, 11, 3, 21, 0)


def test_a_void_after_a_switch_restart_still_counts_against_its_purchase(network: Network, terminals) -> None:  # noqa: ANN001
    edc, person = terminals(11), card(8)
    purchase, answer = buy(edc, person, 12_000, batch=3)
    assert answer["39"] == rc.APPROVED
    network.stop_switch()  # the purchase is only in the journal now, no longer in memory
    network.start_switch()
    edc = terminals(11)  # the same terminal, connected and signed on again
    assert void(edc, purchase)[1]["39"] == rc.APPROVED
    assert settle(edc, 3, BatchTotals(1, 12_000, 1, 12_000))["39"] == rc.APPROVED
    assert network.balance_of(person.pan) == BENEFIT_IDR


def closing(totals: BatchTotals, processing: str = "920000") -> SettlementRecord:
    return SettlementRecord("BNI00001", 4, "000100", processing, totals, totals, "00", CLOSED_AT)


@pytest.mark.parametrize(
    ("processing", "terminal", "switch", "closed", "last_closed", "expected"),
    [
        ("920000", BatchTotals(2, 30_000), BatchTotals(2, 30_000), None, None, ("00", True, None)),
        ("920000", BatchTotals(1, 20_000), BatchTotals(2, 30_000), None, 3, ("95", True, BatchTotals(2, 30_000))),
        ("960000", BatchTotals(1, 20_000), BatchTotals(2, 30_000), None, None, ("00", True, None)),
        ("920000", BatchTotals(1, 20_000), BatchTotals(2, 30_000), closing(BatchTotals(1, 20_000), "960000"), 4, ("00", False, None)),
        ("960000", BatchTotals(2, 30_000), BatchTotals(2, 30_000), closing(BatchTotals(1, 20_000)), 4, ("94", True, None)),
        ("920000", BatchTotals(), BatchTotals(), None, 5, ("12", False, None)),
        ("910000", BatchTotals(), BatchTotals(), None, None, ("12", False, None)),
    ],
    ids=["equal", "differ", "after-upload", "repeat", "other-totals", "cannot-reopen", "processing-code"],
)
def test_settlement_decisions(processing, terminal, switch, closed, last_closed, expected) -> None:  # noqa: ANN001
    verdict = decide_settlement(SettlementRequest(processing, 4, terminal), switch, closed, last_closed)
    assert (verdict.rc, verdict.record, verdict.answer_totals) == expected


def test_upload_refusals() -> None:
    assert upload_refusal(4, closed=False, last_closed=None) is None
    assert upload_refusal(4, closed=False, last_closed=3) is None
    assert upload_refusal(4, closed=True, last_closed=4) == rc.INVALID_TRANSACTION
    assert upload_refusal(3, closed=False, last_closed=4) == rc.INVALID_TRANSACTION


# -- migration 0004 -------------------------------------------------------------------------------------------------


def test_migration_0004_keeps_old_rows_and_adds_the_batch_tables(storage) -> None:  # noqa: ANN001
    """Rows of 0003 keep everything, their batch unknown (NULL); new rows carry theirs; a batch
    closes once; an upload is recorded once; and back down to 0003 the rows stay."""
    journal: Journal = open_journal(storage)
    migrate.downgrade(journal.db, "0003")
    old = transaction("000000000001", "000001")
    with journal.db.begin() as conn:
        conn.execute(insert(Transaction.__table__), [{n: getattr(old, n) for n in TRANSACTION_FIELDS if n != "batch"}])

    journal.migrate()
    with journal.db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata) == []
    assert journal.find(old.tid, old.stan, old.transmission_date, old.kind).batch is None
    journal.record([transaction("000000000002", "000002", batch=4), transaction("000000000003", "000003", kind="advice", batch=4)], [])
    assert journal.batch_totals("BNI00001", 4) == BatchTotals(2, 50_000, 0, 0)
    assert journal.batch_totals("BNI00001", 5) == BatchTotals()

    totals = BatchTotals(2, 50_000)
    assert journal.record_settlement(SettlementRecord("BNI00001", 4, "000010", "920000", totals, totals, "00", CLOSED_AT))
    assert not journal.record_settlement(SettlementRecord("BNI00001", 4, "000011", "920000", totals, totals, "00", CLOSED_AT))
    assert journal.record_settlement(SettlementRecord("BNI00001", 4, "000012", "920000", BatchTotals(), totals, "94", CLOSED_AT))
    assert journal.closing_settlement("BNI00001", 4).stan == "000010"
    assert journal.last_closed_batch("BNI00001") == 4 and journal.last_closed_batch("BNI00002") is None

    detail = UploadRecord(
        "BNI00001", 4, "000002", "0200", "936000******0001", 25_000, "123456", "000000000002",
        old.transmission_date, datetime.combine(old.transmission_date, datetime.min.time()), None, None, CLOSED_AT,
    )
    assert journal.record_upload(detail) and not journal.record_upload(detail)

    migrate.downgrade(journal.db, "0003")
    with journal.db.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM transactions").scalar_one() == 3
    migrate.upgrade(journal.db)
    with journal.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(Transaction).where(Transaction.batch.is_(None))).scalar_one() == 3
    journal.db.dispose()


def test_a_settlement_waits_for_the_journal_writer(storage) -> None:  # noqa: ANN001
    """The totals are summed only once the terminal's last row is written (bounded wait)."""
    import asyncio

    journal: Journal = open_journal(storage)
    ticks = iter(range(1_000))
    book = Batches(journal, lambda: CLOSED_AT, catch_up_timeout_ms=20, monotonic=lambda: next(ticks) / 1000)
    key = ("BNI00001", "000001", transaction("000000000001", "000001").transmission_date, "purchase")
    assert asyncio.run(book.caught_up(key)) is False  # never written: gives up after the bound
    journal.record([transaction("000000000001", "000001", batch=1)], [])
    assert asyncio.run(book.caught_up(key)) is True
    assert asyncio.run(book.caught_up(None)) is True
    journal.db.dispose()

