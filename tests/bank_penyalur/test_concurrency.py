"""Many requests racing on one card never overdraw it or post twice (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from shared import rc

from tests.bank_penyalur.conftest import BENEFIT_IDR
from tests.bank_penyalur.test_authorisation import transfer_count

THREADS = 16


def race(calls) -> list:  # noqa: ANN001
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(lambda call: call(), calls))


def test_racing_purchases_never_overdraw_the_card(bank) -> None:  # noqa: ANN001
    requests = [bank.purchase_request("normal", 10_000) for _ in range(40)]
    answers = race([lambda r=r: bank.runtime.authoriser.purchase(r) for r in requests])
    codes = Counter(a.rc for a in answers)
    assert codes == {rc.APPROVED: BENEFIT_IDR // 10_000, rc.INSUFFICIENT_FUNDS: 40 - BENEFIT_IDR // 10_000}
    assert bank.balance("normal") == 0
    balances_seen = sorted(a.balance_idr for a in answers if a.rc == rc.APPROVED)
    assert balances_seen == list(range(0, BENEFIT_IDR, 10_000))


def test_racing_copies_of_one_request_post_once(bank) -> None:  # noqa: ANN001
    request = bank.purchase_request("normal", 70_000)
    before = transfer_count(bank)
    answers = race([lambda: bank.runtime.authoriser.purchase(request)] * 24)
    assert len({a.model_dump_json() for a in answers}) == 1
    assert answers[0].rc == rc.APPROVED
    assert transfer_count(bank) == before + 1
    assert bank.balance("normal") == BENEFIT_IDR - 70_000


def test_racing_reversals_give_back_once(bank) -> None:  # noqa: ANN001
    purchase = bank.purchase_request("normal", 70_000)
    assert bank.runtime.authoriser.purchase(purchase).rc == rc.APPROVED
    reversals = [bank.reversal_request(purchase) for _ in range(12)]
    answers = race([lambda r=r: bank.runtime.authoriser.reversal(r) for r in reversals])
    assert {a.rc for a in answers} == {rc.APPROVED}
    assert bank.balance("normal") == BENEFIT_IDR


def test_racing_wrong_pins_still_block_after_three(bank) -> None:  # noqa: ANN001
    requests = [bank.purchase_request("pkh_combo", 1_000, pin="000000") for _ in range(10)]
    answers = race([lambda r=r: bank.runtime.authoriser.purchase(r) for r in requests])
    codes = Counter(a.rc for a in answers)
    assert codes == {rc.WRONG_PIN: 2, rc.PIN_TRIES_EXCEEDED: 8}
    assert bank.purchase("pkh_combo", 1_000).rc == rc.PIN_TRIES_EXCEEDED


def test_purchases_and_reversals_interleaved_keep_the_ledger_exact(bank) -> None:  # noqa: ANN001
    purchases = [bank.purchase_request("normal", 5_000) for _ in range(20)]
    race([lambda r=r: bank.runtime.authoriser.purchase(r) for r in purchases])
    reversals = [bank.reversal_request(p) for p in purchases[::2]]
    more = [bank.purchase_request("normal", 5_000) for _ in range(10)]
    calls = [lambda r=r: bank.runtime.authoriser.reversal(r) for r in reversals]
    calls += [lambda r=r: bank.runtime.authoriser.purchase(r) for r in more]
    race(calls)
    assert bank.balance("normal") == BENEFIT_IDR - 5_000 * (20 - 10 + 10)
