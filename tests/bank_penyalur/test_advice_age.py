"""The 90-day rule of offline advices: the funds of a period may be used offline within 90 days of
their disbursement. A sale made later than that after the most recent disbursement before it,
or an advice uploaded more than 90 days after its sale, is refused with 54 and reported as an
offline exception. Against the bank's handler, on SQLite and PostgreSQL; the `bank` fixture
checks the ledger after every test."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from shared import rc

from bank_penyalur.authorise import CardState, Policy, decide_advice
from bank_penyalur.disburse import disburse
from bank_penyalur.reports import build_report, offline_exception_list
from bank_penyalur.tables import ACTIVATED

from tests.bank_penyalur.conftest import BENEFIT_IDR, TERMINAL
from tests.conftest import BUSINESS_START

DISBURSED_AT = BUSINESS_START  # the `bank` fixture disburses the period at its clock's start
AMOUNT_IDR = 25_000


def days(n: float) -> timedelta:
    return timedelta(days=n)


# -- the rule, as a pure decision ------------------------------------------------------------------

CARD = CardState(card_id=1, kpm_id=1, status=ACTIVATED, emoney_account_id=10, pvv="x", pin_fails=0, balance_idr=BENEFIT_IDR)


def decide(sold_at: datetime, now: datetime, disbursed_at: datetime | None = DISBURSED_AT) -> tuple[str, bool]:
    decision = decide_advice("000000", AMOUNT_IDR, sold_at, now, 20, CARD, Policy(), disbursed_at=disbursed_at)
    return decision.rc, decision.exception


@pytest.mark.parametrize(
    ("sold_after_days", "uploaded_after_days", "disbursed", "expected"),
    [
        (89, 1, True, (rc.APPROVED, False)),
        (90, 1, True, (rc.APPROVED, False)),  # "more than 90 days" is refused, 90 is not
        (90.01, 1, True, (rc.EXPIRED, True)),
        (91, 1, True, (rc.EXPIRED, True)),
        (91, 1, False, (rc.APPROVED, False)),  # no disbursement before the sale: the offline limit alone bounds it
        (10, 91, True, (rc.EXPIRED, True)),  # uploaded more than 90 days after the sale
        (10, -2, True, (rc.INVALID_TRANSACTION, False)),  # the sale is dated in the future
    ],
)
def test_the_age_of_an_advice_counts_from_the_disbursement_and_from_the_sale(
    sold_after_days: float, uploaded_after_days: float, disbursed: bool, expected: tuple[str, bool]
) -> None:
    sold_at = DISBURSED_AT + days(sold_after_days)
    now = sold_at + days(uploaded_after_days)
    assert decide(sold_at, now, DISBURSED_AT if disbursed else None) == expected


# -- the handler reads the disbursement under the KPM's lock ------------------------------------------


def test_a_sale_91_days_after_the_disbursement_is_refused_and_reported(bank) -> None:  # noqa: ANN001
    clock = bank.runtime.clock
    clock.advance(days(92))
    answer = bank.advice("normal", AMOUNT_IDR, transaction_at=DISBURSED_AT + days(91), transmission_date=clock.now().date())
    assert (answer.rc, answer.balance_idr, answer.approval_code) == (rc.EXPIRED, BENEFIT_IDR, None)
    assert bank.balance("normal") == BENEFIT_IDR
    period = clock.now().strftime("%Y-%m")
    with bank.runtime.db.read() as conn:
        listed = offline_exception_list(conn, period)
        totals = build_report(conn, period).totals
    assert [(e.rc, e.amount_idr, e.balance_idr, e.terminal_id) for e in listed] == [(rc.EXPIRED, AMOUNT_IDR, BENEFIT_IDR, TERMINAL)]
    assert listed[0].pan_masked.endswith(bank.cards["normal"].pan[-4:])
    assert (totals.offline_exceptions, totals.offline_refused) == (0, 1)


def test_a_sale_89_days_after_the_disbursement_is_posted(bank) -> None:  # noqa: ANN001
    clock = bank.runtime.clock
    clock.advance(days(92))
    answer = bank.advice("normal", AMOUNT_IDR, transaction_at=DISBURSED_AT + days(89), transmission_date=clock.now().date())
    assert (answer.rc, answer.balance_idr) == (rc.APPROVED, BENEFIT_IDR - AMOUNT_IDR)
    assert bank.balance("normal") == BENEFIT_IDR - AMOUNT_IDR
    with bank.runtime.db.read() as conn:
        assert offline_exception_list(conn, clock.now().strftime("%Y-%m")) == []


def test_the_most_recent_disbursement_before_the_sale_counts(bank) -> None:  # noqa: ANN001
    """A second period is credited 100 days after the first: a sale 95 days after the first (before
    the second) is refused, a sale the day after the second is posted."""
    clock = bank.runtime.clock
    clock.advance(days(100))
    disburse(bank.runtime.db, clock, "2027-02", BENEFIT_IDR)
    clock.advance(days(2))
    today = clock.now().date()
    late = bank.advice("normal", AMOUNT_IDR, transaction_at=DISBURSED_AT + days(95), transmission_date=today)
    fresh = bank.advice("normal", AMOUNT_IDR, transaction_at=DISBURSED_AT + days(101), transmission_date=today)
    assert (late.rc, fresh.rc) == (rc.EXPIRED, rc.APPROVED)
    assert bank.balance("normal") == 2 * BENEFIT_IDR - AMOUNT_IDR


def test_a_refused_advice_is_answered_the_same_when_repeated(bank) -> None:  # noqa: ANN001
    clock = bank.runtime.clock
    clock.advance(days(92))
    request = bank.advice_request("normal", AMOUNT_IDR, transaction_at=DISBURSED_AT + days(91), transmission_date=clock.now().date())
    answers = {bank.runtime.authoriser.advice(request).rc for _ in range(3)}
    assert answers == {rc.EXPIRED}
    with bank.runtime.db.read() as conn:
        assert len(offline_exception_list(conn, clock.now().strftime("%Y-%m"))) == 1
    assert bank.balance("normal") == BENEFIT_IDR
