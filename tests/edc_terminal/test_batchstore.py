"""The EDC batch store as the terminal's books: sales survive a crash at any point (the store is
reopened from its file), a replayed sale is not doubled, batches seal at 999 sales and close in
order, the totals are what settlement counts, and 10,000 offline sales stay cheap. On an SQLite
file and on the real PostgreSQL (a schema of its own)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from edc_terminal.batchstore import ADVICE, HOT, ID, BatchStore, batch_store_path, metadata
from shared import keys as keylib
from shared import offline, protocol
from shared.banks import BANKS
from shared.cards import make_pan
from shared.db import Database

TID = "BNI00001"
TMK = bytes.fromhex(keylib.demo_terminal_master_key_hex(TID))
TERMINAL = protocol.Terminal(TID, "EWBNI0000000001")
AT = datetime(2026, 11, 3, 9, 0, 0)
BNI_IIN = BANKS["bni"].iin
PAN = make_pan(BNI_IIN, 1)

Opener = Callable[[], BatchStore]


@pytest.fixture
def opener(storage: dict) -> Iterator[Opener]:
    """Opens the same store again each time it is called: a restart after a crash."""
    opened: list[BatchStore] = []
    databases: list[Database] = []

    def open_store() -> BatchStore:
        if "database_url" in storage:
            db = Database(storage["database_url"], schema=storage["db_schema"], pool_size=2)
            databases.append(db)
            store = BatchStore.on_database(db, TID, TMK)
        else:
            store = BatchStore.open(storage["data_dir"], TID, TMK)
        opened.append(store)
        store.ensure_open(1, AT)
        return store

    yield open_store
    for store in opened:
        store.close()


def advice(stan: int, amount_idr: int = 10_000, batch: int = 1, pan: str = PAN, at: datetime = AT) -> dict:
    return protocol.advice_request(TERMINAL, f"{stan:06d}", at, pan, amount_idr, offline.offline_approval_code(f"{stan:06d}"), batch)


def purchase(stan: int, amount_idr: int = 20_000, batch: int = 1) -> dict:
    request = protocol.purchase_request(TERMINAL, f"{stan:06d}", AT, PAN, amount_idr, "00" * 8, batch)
    return {k: v for k, v in request.items() if k != "52"}


def sell_offline(store: BatchStore, stan: int, amount_idr: int = 10_000, tally: str = "T1") -> int:
    """What the core does: in one transaction, the batch for the amount, the 0220 built for it, stored."""
    stored, _ = store.sell_offline(lambda batch: advice(stan, amount_idr, batch), amount_idr, tally, "2026-11", AT)
    return stored.txn_id


# -- a crash between any two steps ---------------------------------------------------------------


def test_a_sale_survives_a_restart_and_a_replay_doubles_nothing(opener: Opener) -> None:
    store = opener()
    first = store.add_offline_sale(advice(1), "T1", "2026-11", AT)
    assert first.added and (first.batch, first.open_batch) == (1, 1)
    store.close()  # the terminal dies right after the sale was stored

    store = opener()
    again = store.add_offline_sale(advice(1), "T1", "2026-11", AT)  # the core replays its last step
    assert not again.added and again.txn_id == first.txn_id
    [pending] = store.pending_advices()
    assert pending.message == advice(1) and pending.attempts == 0
    assert store.offline_spent("T1", "2026-11") == 10_000
    assert store.summary().open_sales == 1


def test_answers_are_appended_and_the_status_is_derived_after_each_restart(opener: Opener) -> None:
    store = opener()
    txn = sell_offline(store, 1)
    answer = protocol.response(advice(1), "00", **{"37": "000000000042"})
    assert not store.record_answer(txn, ADVICE, None, None, AT)  # no answer
    assert not store.record_answer(txn, ADVICE, "91", protocol.response(advice(1), "91"), AT)  # not definite
    store = opener()
    assert [a.attempts for a in store.pending_advices()] == [2]
    assert store.record_answer(txn, ADVICE, "00", answer, AT)
    store = opener()
    assert store.pending_advices() == []
    assert store.totals(store.open_batch().id) == protocol.BatchTotals(1, 10_000, 0, 0)
    [(_, detail)] = store.details(store.open_batch().id)
    assert detail == {**advice(1), "37": "000000000042"}


STEPS: list[Callable[[BatchStore], object]] = [
    lambda store: store.sell_offline(lambda batch: advice(1, 10_000, batch), 10_000, "T1", "2026-11", AT),
    lambda store: store.add_purchase(purchase(2, 20_000), "000000000002", "100002", AT),
    lambda store: store.sell_offline(lambda batch: advice(3, 30_000, batch), 30_000, "T1", "2026-11", AT),
    lambda store: store.record_answer(1, ADVICE, "00", protocol.response(advice(1, 10_000), "00"), AT),
    lambda store: store.add_reversal(
        protocol.reversal_request(purchase(2, 20_000), "000004", AT), protocol.response(purchase(2, 20_000), "00"), AT
    ),
    lambda store: store.record_answer(3, ADVICE, "51", protocol.response(advice(3, 30_000), "51"), AT),
    lambda store: store.close_batch(1, AT),  # batch 1's row: what the settlement job closes, by its id
]


@pytest.mark.parametrize("crash_after", range(1, len(STEPS) + 1))
def test_a_crash_after_any_step_and_its_replay_lose_nothing_and_double_nothing(opener: Opener, crash_after: int) -> None:
    store = opener()
    for step in STEPS[:crash_after]:
        step(store)
    store.close()  # the terminal dies: did the last step count? The restart does it again.
    store = opener()
    for step in STEPS[crash_after - 1 :]:
        step(store)
    assert store.totals(1) == protocol.BatchTotals(2, 30_000, 1, 20_000)  # purchase 2 and offline 1; 3 refused
    assert store.offline_spent("T1", "2026-11") == 40_000 and store.pending_advices() == []
    assert [e.stan for e in store.exceptions()] == ["000003"]
    assert [b.number for b in store.unsettled()] == [2] and store.batch_closed(1)


def test_closing_a_batch_twice_advances_the_number_once(opener: Opener) -> None:
    store = opener()
    batch = store.open_batch()
    assert store.close_batch(batch.id, AT) == 2
    store = opener()
    assert store.close_batch(batch.id, AT) == 2  # the restart repeats the step
    assert store.open_batch().number == 2 and store.batch_closed(1)
    assert [b.number for b in store.unsettled()] == [2]


def test_card_numbers_rest_only_sealed(storage: dict, opener: Opener) -> None:
    store = opener()
    txn = sell_offline(store, 1)
    store.record_answer(txn, ADVICE, "00", protocol.response(advice(1), "00"), AT)
    store.add_purchase(purchase(2), "000000000001", "123456", AT)
    if "database_url" in storage:
        db = Database(storage["database_url"], schema=storage["db_schema"], pool_size=1)
        with db.read() as conn:
            dumped = " ".join(str(row) for table in ("txns", "answers") for row in conn.execute(text(f"SELECT * FROM {table}")))
        db.dispose()
    else:
        with sqlite3.connect(batch_store_path(storage["data_dir"], TID)) as conn:
            dumped = " ".join(str(row) for table in ("txns", "answers") for row in conn.execute(f"SELECT * FROM {table}"))
    assert PAN not in dumped and "936000******0014" in dumped
    assert store.pending_advices() == [] and store.details(1)[0][1]["2"] == PAN  # opened again on the way out


# -- batches -----------------------------------------------------------------------------------------


def test_a_batch_seals_at_999_sales_and_the_next_number_opens(opener: Opener) -> None:
    store = opener()
    for stan in range(1, protocol.BATCH_COUNT_MAX):
        sell_offline(store, stan)
    assert store.open_batch() == store.open_batch() and store.open_batch().sales == 998
    last = store.add_offline_sale(advice(999), "T1", "2026-11", AT)
    assert (last.batch, last.open_batch) == (1, 2)  # the 999th fills batch 1: sealed, 2 opens
    assert sell_offline(store, 1000) and store.open_batch().number == 2
    assert [(b.number, b.state, b.sales) for b in store.unsettled()] == [(1, "sealed", 999), (2, "open", 1)]
    assert store.batch_for(10_000, AT) == 2


def test_a_sale_that_would_overflow_the_batch_amount_goes_to_the_next_batch(opener: Opener) -> None:
    store = opener()
    big = 9_000_000_000
    assert store.batch_for(big, AT) == 1
    store.add_offline_sale(advice(1, big, 1), "T1", "2026-11", AT)
    assert store.batch_for(big, AT) == 2  # 18,000,000,000 would not fit field 63's 12 digits
    assert [(b.number, b.state) for b in store.unsettled()] == [(1, "sealed"), (2, "open")]


def test_totals_count_approved_sales_and_each_void_once_at_the_originals_amount(opener: Opener) -> None:
    store = opener()
    store.add_purchase(purchase(1, 20_000), "000000000001", "100001", AT)
    store.add_purchase(purchase(2, 30_000), "000000000002", "100002", AT)
    ok, refused, unanswered = sell_offline(store, 3, 5_000), sell_offline(store, 4, 7_000), sell_offline(store, 5, 9_000)
    store.record_answer(ok, ADVICE, "00", protocol.response(advice(3, 5_000), "00"), AT)
    store.record_answer(refused, ADVICE, "51", protocol.response(advice(4, 7_000), "51"), AT)
    store.record_answer(unanswered, ADVICE, "96", protocol.response(advice(5, 9_000), "96"), AT)
    void = protocol.reversal_request(purchase(1, 20_000), "000006", AT + timedelta(minutes=1))
    store.add_reversal(void, protocol.response(void, "00", **{"37": "000000000009"}), AT)
    repeat = protocol.reversal_request(purchase(1, 20_000), "000007", AT + timedelta(minutes=2))
    store.add_reversal(repeat, protocol.response(repeat, "00"), AT)  # a second approved void of the same purchase
    stray = protocol.reversal_request(purchase(8, 1_000), "000009", AT)  # of a purchase this store never approved
    store.add_reversal(stray, protocol.response(stray, "00"), AT)

    batch = store.open_batch()
    assert store.totals(batch.id) == protocol.BatchTotals(3, 55_000, 1, 20_000)
    assert [e.rc for e in store.exceptions()] == ["51"] and store.exceptions()[0].amount_idr == 7_000
    assert [(m["t"], m["11"]) for _, m in store.details(batch.id)] == [
        ("0200", "000001"), ("0200", "000002"), ("0220", "000003"), ("0400", "000006"), ("0400", "000007")
    ]  # fmt: skip
    assert store.summary().pending_advices == 1 and store.summary().exceptions == 1


def test_the_offline_tally_is_per_card_and_month(opener: Opener) -> None:
    store = opener()
    store.add_offline_sale(advice(1, 40_000), "CARD-A", "2026-11", AT)
    store.add_offline_sale(advice(2, 50_000), "CARD-A", "2026-11", AT)
    store.add_offline_sale(advice(3, 60_000), "CARD-B", "2026-11", AT)
    store.add_offline_sale(advice(4, 70_000), "CARD-A", "2026-12", AT)
    assert store.offline_spent("CARD-A", "2026-11") == 90_000
    assert store.offline_spent("CARD-A", "2026-12") == 70_000
    assert store.offline_spent("CARD-C", "2026-11") == 0


def test_a_new_card_list_replaces_the_old_one_whole(opener: Opener) -> None:
    store = opener()
    header = offline.ListHeader("0" * 32, "ABCDEF", 150_000, 1)
    first = store.replace_card_list(header, ["AAAAAAAA"], ["BBBBBBBB", "CCCCCCCC"], AT)
    second = store.replace_card_list(header, [], ["DDDDDDDD"], AT)
    store = opener()
    assert store.card_list() == second and (second.hot_count, second.id_count) == (0, 1)
    assert store.listed(second.id, ID, "DDDDDDDD") and not store.listed(second.id, ID, "BBBBBBBB")
    assert not store.listed(first.id, HOT, "AAAAAAAA")


# -- schema -------------------------------------------------------------------------------------------


def test_the_migration_builds_exactly_the_tables(storage: dict, opener: Opener) -> None:
    opener()
    if "database_url" in storage:
        db = Database(storage["database_url"], schema=storage["db_schema"], pool_size=1)
    else:
        path = batch_store_path(storage["data_dir"], TID)
        db = Database(f"sqlite+pysqlite:///{path}", pool_size=1)
    with db.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == "0001"
        assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata) == []
    db.dispose()


# -- scale ---------------------------------------------------------------------------------------------


def test_ten_thousand_offline_sales_store_list_and_total_quickly(tmp_path, capsys) -> None:  # noqa: ANN001
    store = BatchStore.open(tmp_path, TID, TMK)
    store.ensure_open(1, AT)
    started = time.perf_counter()
    for stan in range(1, 10_001):
        sell_offline(store, stan, 1_000 + stan % 7, tally=f"T{stan % 500}")
    stored_s = time.perf_counter() - started
    started = time.perf_counter()
    pending, after = 0, 0
    while page := store.pending_advices(after):
        pending += len(page)
        after = page[-1].txn_id
    listed_s = time.perf_counter() - started
    started = time.perf_counter()
    batches = store.unsettled()
    sales = sum(b.sales for b in batches)
    totals = [store.totals(b.id) for b in batches]
    totals_s = time.perf_counter() - started
    store.close()
    with capsys.disabled():
        print(f"\n10,000 offline sales: stored in {stored_s:.2f} s, listed in {listed_s:.2f} s, "
              f"{len(batches)} batches totalled in {totals_s:.2f} s")  # fmt: skip
    assert pending == sales == 10_000
    assert len(batches) == 11 and [b.sales for b in batches[:-1]] == [999] * 10 and batches[-1].sales == 10
    assert all(t == protocol.BatchTotals() for t in totals)  # nothing answered yet: nothing counts
