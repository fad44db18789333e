"""Journal lookups by transaction key, coalesced (`switch.batches.JournalLookups`): lookups asked
for together are answered by one query, each gets exactly its own row, a failed query fails only
the lookups it carried, and a row committed before a lookup is asked for is always seen."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy.exc import OperationalError

from switch.batches import JournalLookups
from switch.journal import Journal
from tests.switch.test_journal import DAY, open_journal, transaction

PURCHASE = transaction("000000000061", "000061")
ADVICE = transaction("000000000062", "000062", "advice")
PURCHASE_KEY = ("BNI00001", "000061", DAY, "purchase")
ADVICE_KEY = ("BNI00001", "000062", DAY, "advice")


@pytest.fixture
def journal(storage) -> Iterator[Journal]:  # noqa: ANN001
    opened = open_journal(storage)
    opened.record([PURCHASE, ADVICE], [])
    yield opened
    opened.db.dispose()


def absent_key(n: int) -> tuple:
    return ("BNI00001", f"{100_000 + n:06d}", DAY, "advice")


def test_lookups_asked_for_together_share_one_query(journal: Journal) -> None:
    lookups = JournalLookups(journal)
    keys = [PURCHASE_KEY, ADVICE_KEY, *(absent_key(n) for n in range(60)), ADVICE_KEY]

    async def main() -> list:
        return await asyncio.gather(*(lookups.find(key) for key in keys))

    found = asyncio.run(main())

    assert found == [PURCHASE, ADVICE, *([None] * 60), ADVICE]
    assert lookups.queries == 1


def test_more_keys_than_one_query_takes_go_in_several(journal: Journal) -> None:
    lookups = JournalLookups(journal, keys_max=16)
    keys = [ADVICE_KEY, *(absent_key(n) for n in range(49))]

    async def main() -> list:
        return await asyncio.gather(*(lookups.find(key) for key in keys))

    found = asyncio.run(main())

    assert found == [ADVICE, *([None] * 49)]
    assert lookups.queries == 4  # 16 + 16 + 16 + 2


def test_a_failed_query_fails_the_lookups_it_carried_and_the_next_one_is_answered(journal: Journal) -> None:
    lookups = JournalLookups(journal)
    real_find_many = journal.find_many
    failures = [OperationalError("SELECT", {}, Exception("database is locked"))]

    def failing_once(keys):  # noqa: ANN001, ANN202
        if failures:
            raise failures.pop()
        return real_find_many(keys)

    journal.find_many = failing_once  # type: ignore[method-assign]

    async def main() -> tuple:
        first = await asyncio.gather(lookups.find(PURCHASE_KEY), lookups.find(ADVICE_KEY), return_exceptions=True)
        return first, await lookups.find(PURCHASE_KEY)

    first, again = asyncio.run(main())

    assert [type(result) for result in first] == [OperationalError, OperationalError]
    assert again == PURCHASE


def test_a_lookup_given_up_leaves_the_others_answered(journal: Journal) -> None:
    lookups = JournalLookups(journal)

    async def main() -> tuple:
        impatient = asyncio.create_task(lookups.find(PURCHASE_KEY))
        patient = asyncio.create_task(lookups.find(ADVICE_KEY))
        await asyncio.sleep(0)  # both are waiting for the query
        impatient.cancel()
        return await asyncio.gather(impatient, patient, return_exceptions=True)

    impatient, patient = asyncio.run(main())

    assert isinstance(impatient, asyncio.CancelledError)
    assert patient == ADVICE


def test_a_row_committed_while_a_query_is_out_is_seen_by_a_lookup_asked_for_after_it(journal: Journal) -> None:
    """The lookup waits for the next query, which starts after the commit: never an answer
    older than the lookup itself."""
    lookups = JournalLookups(journal)
    real_find_many = journal.find_many
    first_query_started, release_first_query = threading.Event(), threading.Event()

    def held_first(keys):  # noqa: ANN001, ANN202
        if not first_query_started.is_set():
            answer = real_find_many(keys)  # read before the new row is committed
            first_query_started.set()
            release_first_query.wait(10)
            return answer
        return real_find_many(keys)

    journal.find_many = held_first  # type: ignore[method-assign]
    late = transaction("000000000063", "000063", "advice")
    late_key = ("BNI00001", "000063", DAY, "advice")

    async def main() -> tuple:
        before = asyncio.create_task(lookups.find(late_key))
        await asyncio.to_thread(first_query_started.wait, 10)
        await asyncio.to_thread(journal.record, [late], [])
        after = asyncio.create_task(lookups.find(late_key))
        await asyncio.sleep(0)
        release_first_query.set()
        return await before, await after

    before, after = asyncio.run(main())

    assert before is None  # asked for before the commit
    assert after == late
    assert lookups.queries == 2
