"""The journal writer: records handed over on the event loop are committed in batches by its
thread, and each record's future says what became of it: True once committed, False when its
batch failed (the writer goes on serving), None when the database did not confirm it within the
wait bound (the answer must not wait for ever)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from switch.journal import Journal
from switch.journal_writer import SWEEP_S, JournalWriter

from tests.switch.test_journal import open_journal, trail, transaction, transaction_count


@pytest.fixture
def journal(storage) -> Iterator[Journal]:  # noqa: ANN001
    opened = open_journal(storage)
    yield opened
    opened.db.dispose()


async def _put_all(writer: JournalWriter, rrns: range) -> list[bool | None]:
    futures = []
    for n in rrns:
        record = transaction(f"{n:012d}", f"{n:06d}")
        futures.append(writer.put(record, trail(record)))
    return list(await asyncio.gather(*futures))


def _run(writer: JournalWriter, rrns: range) -> list[bool | None]:
    writer.start()
    try:
        return asyncio.run(_put_all(writer, rrns))
    finally:
        writer.stop()


def test_every_record_handed_over_at_once_is_committed_and_said_so(journal: Journal) -> None:
    writer = JournalWriter(journal, queue_max=1_000, batch_max=50)
    assert _run(writer, range(1, 201)) == [True] * 200
    assert transaction_count(journal) == 200
    assert writer.written == 200


def test_a_failed_batch_says_false_and_the_writer_goes_on(journal: Journal) -> None:
    with journal.db.begin() as conn:
        conn.execute(text("DROP TABLE messages"))  # every batch with messages now fails
    writer = JournalWriter(journal, queue_max=100, batch_max=10)
    writer.start()
    try:

        async def scenario() -> tuple[list, bool | None]:
            failed = await _put_all(writer, range(1, 21))
            record = transaction("000000000099", "000099")
            alone = await writer.put(record, [])  # no messages: this batch commits
            return failed, alone

        failed, alone = asyncio.run(scenario())
    finally:
        writer.stop()
    assert failed == [False] * 20
    assert writer.failed_batches >= 2
    assert alone is True
    assert transaction_count(journal) == 1


def test_a_stuck_database_leaves_the_answer_unconfirmed_within_the_bound_and_the_record_lands_later(storage, tmp_path) -> None:  # noqa: ANN001
    """SQLite held by another writer: the record's future turns None after the bound (plus at
    most one sweep), and the record is committed once the database is free again."""
    if storage.get("database_url"):
        pytest.skip("holds the SQLite file's write lock; the wait bound itself is the same code on PostgreSQL")
    journal = open_journal(storage)
    holder = sqlite3.connect(storage["data_dir"] / "switch.sqlite3", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    writer = JournalWriter(journal, queue_max=10, batch_max=10, wait_s=0.3)
    writer.start()
    try:

        async def scenario() -> tuple[bool | None, float]:
            loop = asyncio.get_running_loop()
            started_s = loop.time()
            record = transaction("000000000007", "000007")
            outcome = await writer.put(record, trail(record))
            return outcome, loop.time() - started_s

        outcome, waited_s = asyncio.run(scenario())
        assert outcome is None
        assert 0.3 <= waited_s <= 0.3 + SWEEP_S + 1.0
        holder.execute("ROLLBACK")
    finally:
        writer.stop()
        holder.close()
    assert transaction_count(journal) == 1
    journal.db.dispose()
