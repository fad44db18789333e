"""Authorisations answered in batches (group commit) stay exact: same answers, same ledger."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import wait

import pytest

from shared import rc

from bank_penyalur.batcher import AuthorisationBatcher, QueueFull
from tests.bank_penyalur.conftest import BENEFIT_IDR
from tests.bank_penyalur.test_authorisation import transfer_count


@pytest.fixture
def batcher(bank):  # noqa: ANN001, ANN201
    """Two writers, small batches: batches form and also compete with each other."""
    writers = 1 if bank.runtime.db.dialect == "sqlite" else 2
    batcher = AuthorisationBatcher(bank.runtime.authoriser, batch_max=8, queue_max=512, writers=writers)
    yield batcher
    batcher.stop()


def answers(futures) -> list:  # noqa: ANN001
    done, pending = wait(futures, timeout=30)
    assert not pending, "authorisations still waiting after 30 s"
    return [f.result() for f in futures]


def test_batched_purchases_never_overdraw_the_card(bank, batcher) -> None:  # noqa: ANN001
    futures = [batcher.submit("purchase", bank.purchase_request("normal", 10_000)) for _ in range(40)]
    codes = Counter(a.rc for a in answers(futures))
    assert codes == {rc.APPROVED: 15, rc.INSUFFICIENT_FUNDS: 25}
    assert bank.balance("normal") == 0
    assert batcher.answered == 40


def test_copies_of_one_request_in_a_batch_post_once(bank, batcher) -> None:  # noqa: ANN001
    request = bank.purchase_request("normal", 70_000)
    before = transfer_count(bank)
    results = answers([batcher.submit("purchase", request) for _ in range(12)])
    assert len({r.model_dump_json() for r in results}) == 1 and results[0].rc == rc.APPROVED
    assert transfer_count(bank) == before + 1


def test_wrong_pins_in_one_batch_still_count_one_by_one(bank, batcher) -> None:  # noqa: ANN001
    futures = [batcher.submit("purchase", bank.purchase_request("pkh_combo", 1_000, pin="000000")) for _ in range(5)]
    assert sorted(a.rc for a in answers(futures)) == [rc.WRONG_PIN, rc.WRONG_PIN] + [rc.PIN_TRIES_EXCEEDED] * 3


def test_a_request_that_fails_does_not_take_the_batch_with_it(bank, batcher, monkeypatch) -> None:  # noqa: ANN001
    authoriser = bank.runtime.authoriser
    original = authoriser._deciders["purchase"]
    poisoned = bank.purchase_request("normal", 13_000)

    def decide(conn, req, card):  # noqa: ANN001, ANN202
        if req == poisoned:
            raise RuntimeError("simulated fault in one request")
        return original(conn, req, card)

    monkeypatch.setitem(authoriser._deciders, "purchase", decide)
    good = [bank.purchase_request("normal", 10_000) for _ in range(5)]
    futures = [batcher.submit("purchase", r) for r in [*good[:2], poisoned, *good[2:]]]
    wait(futures, timeout=30)
    assert isinstance(futures[2].exception(), RuntimeError)
    assert [f.result().rc for i, f in enumerate(futures) if i != 2] == [rc.APPROVED] * 5
    assert bank.balance("normal") == BENEFIT_IDR - 50_000


def test_reversals_and_purchases_mixed_in_batches(bank, batcher) -> None:  # noqa: ANN001
    purchases = [bank.purchase_request("normal", 5_000) for _ in range(10)]
    answers([batcher.submit("purchase", p) for p in purchases])
    futures = [batcher.submit("reversal", bank.reversal_request(p)) for p in purchases[:6]]
    futures += [batcher.submit("reversal", bank.reversal_request(p)) for p in purchases[:6]]  # repeats
    assert {a.rc for a in answers(futures)} == {rc.APPROVED}
    assert bank.balance("normal") == BENEFIT_IDR - 4 * 5_000


def test_a_full_queue_is_refused_not_queued_forever(bank, monkeypatch) -> None:  # noqa: ANN001
    small = AuthorisationBatcher(bank.runtime.authoriser, batch_max=1, queue_max=1)
    monkeypatch.setattr(small, "_ensure_started", lambda: None)  # no writer drains the queue
    small.submit("purchase", bank.purchase_request("normal", 1))
    with pytest.raises(QueueFull):
        small.submit("purchase", bank.purchase_request("normal", 1))
