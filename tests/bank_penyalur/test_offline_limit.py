"""The offline limit bounds the resulting balance: a KPM e-money balance never goes below minus
the offline limit, however many advices arrive and however they race (SQLite and PostgreSQL).
An advice past the limit is refused with 51 and listed in the exceptions report."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest

from shared import rc

from bank_penyalur.authorise import CardState, Policy, decide_advice
from bank_penyalur.ledger import check_ledger
from bank_penyalur.reports import build_report, offline_exception_list
from bank_penyalur.schemas import AuthorisationPublic
from bank_penyalur.tables import ACTIVATED

from tests.bank_penyalur.conftest import PERIOD, TERMINAL, api_client

LIMIT_IDR = Policy().offline_limit_idr
NOW = datetime(2026, 11, 3, 9, 0)


def card_with(balance_idr: int) -> CardState:
    return CardState(card_id=1, kpm_id=1, status=ACTIVATED, emoney_account_id=10, pvv="x", pin_fails=0, balance_idr=balance_idr)


def advise(balance_idr: int, amount_idr: int):  # noqa: ANN201
    return decide_advice("000000", amount_idr, NOW, NOW, 20, card_with(balance_idr), Policy())


@pytest.mark.parametrize(
    ("balance_idr", "amount_idr", "code", "balance_after_idr", "exception"),
    [
        (50_000, 50_000, rc.APPROVED, 0, False),
        (50_000, 50_001, rc.APPROVED, -1, True),
        (0, LIMIT_IDR, rc.APPROVED, -LIMIT_IDR, True),
        (0, LIMIT_IDR + 1, rc.INSUFFICIENT_FUNDS, 0, True),
        (-122_000, 100_000, rc.INSUFFICIENT_FUNDS, -122_000, True),  # each advice small, the sum not
        (-LIMIT_IDR, 1, rc.INSUFFICIENT_FUNDS, -LIMIT_IDR, True),
        (100_000, 250_000, rc.APPROVED, -LIMIT_IDR, True),
    ],
)
def test_the_limit_applies_to_the_resulting_balance(
    balance_idr: int, amount_idr: int, code: str, balance_after_idr: int, exception: bool
) -> None:
    decision = advise(balance_idr, amount_idr)
    assert (decision.rc, decision.balance_idr, decision.exception) == (code, balance_after_idr, exception)
    assert (decision.transfer is not None) == (code == rc.APPROVED)


def test_many_small_advices_then_large_ones_stop_at_the_limit(bank) -> None:  # noqa: ANN001
    """The reproduction from issue 13 on the zero-balance demo card."""
    small = [bank.advice("zero_balance", 1_000) for _ in range(122)]
    assert [a.rc for a in small] == [rc.APPROVED] * 122
    assert [a.balance_idr for a in small] == [-1_000 * n for n in range(1, 123)]
    large = [bank.advice("zero_balance", 100_000) for _ in range(2)]
    assert [(a.rc, a.balance_idr) for a in large] == [(rc.INSUFFICIENT_FUNDS, -122_000)] * 2
    rest = [bank.advice("zero_balance", 1_000) for _ in range(30)]
    assert Counter(a.rc for a in rest) == {rc.APPROVED: 28, rc.INSUFFICIENT_FUNDS: 2}
    assert bank.balance("zero_balance") == -LIMIT_IDR
    with bank.runtime.db.read() as conn:
        check = check_ledger(conn)
        report = build_report(conn, PERIOD)
        listed = offline_exception_list(conn, PERIOD)
    assert check.ok and [b for _, b in check.kpm_negative] == [-LIMIT_IDR]
    assert (report.totals.offline_exceptions, report.totals.offline_refused) == (150, 4)
    refused = [e for e in listed if e.rc == rc.INSUFFICIENT_FUNDS]
    assert [(e.amount_idr, e.balance_idr, e.terminal_id) for e in refused] == [
        (100_000, -122_000, TERMINAL), (100_000, -122_000, TERMINAL), (1_000, -LIMIT_IDR, TERMINAL), (1_000, -LIMIT_IDR, TERMINAL)
    ]
    assert all(e.pan_masked.endswith(bank.cards["zero_balance"].pan[-4:]) for e in listed)


def test_exceptions_are_listed_over_http(bank) -> None:  # noqa: ANN001
    bank.advice("normal", 200_000)
    bank.advice("normal", 200_000)
    client = api_client(bank.runtime)
    listed = client.get("/v1/reports/offline-exceptions", params={"period": PERIOD}).json()
    assert [(e["rc"], e["amount_idr"], e["balance_idr"]) for e in listed] == [
        (rc.APPROVED, 200_000, -50_000), (rc.INSUFFICIENT_FUNDS, 200_000, -50_000)
    ]
    assert listed[0]["created_at"] == "2026-11-03T09:00:00+07:00"
    assert client.get("/v1/reports", params={"period": PERIOD}).json()["totals"]["offline_refused"] == 1


RACERS = 200
AMOUNT_IDR = 1_000
JSON = {"content-type": "application/json"}


def _assert_bounded(bank, answers: list) -> None:  # noqa: ANN001
    codes = Counter(a.rc for a in answers)
    assert codes == {rc.APPROVED: LIMIT_IDR // AMOUNT_IDR, rc.INSUFFICIENT_FUNDS: RACERS - LIMIT_IDR // AMOUNT_IDR}
    approved = sorted(a.balance_idr for a in answers if a.rc == rc.APPROVED)
    assert approved == list(range(-LIMIT_IDR, 0, AMOUNT_IDR))  # every step seen once, none past the limit
    assert bank.balance("zero_balance") == -LIMIT_IDR
    with bank.runtime.db.read() as conn:
        assert check_ledger(conn).ok


def test_racing_advices_through_the_batched_writers_stay_within_the_limit(bank) -> None:  # noqa: ANN001
    """Half go through the batcher (one transaction per batch, two writers on PostgreSQL), half
    through their own transactions: the bound holds across batches and writers."""
    requests = [bank.advice_request("zero_balance", AMOUNT_IDR) for _ in range(RACERS)]
    authoriser, batcher = bank.runtime.authoriser, bank.runtime.batcher

    def send(indexed: tuple[int, object]):  # noqa: ANN202
        index, request = indexed
        if index % 2:
            return authoriser.advice(request)
        return batcher.submit("advice", request).result(timeout=60)

    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(send, enumerate(requests)))
    _assert_bounded(bank, answers)


def test_racing_advices_over_http_stay_within_the_limit(bank) -> None:  # noqa: ANN001
    requests = [bank.advice_request("zero_balance", AMOUNT_IDR) for _ in range(RACERS)]
    with api_client(bank.runtime) as client, ThreadPoolExecutor(max_workers=32) as pool:
        responses = list(pool.map(lambda r: client.post("/v1/authorisations/advice", content=r.model_dump_json(), headers=JSON), requests))
    assert {r.status_code for r in responses} == {200}
    _assert_bounded(bank, [AuthorisationPublic.model_validate_json(r.content) for r in responses])
