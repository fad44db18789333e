"""Authorisation scenarios at the e-Warong, straight against the bank's handler.

Each test runs on SQLite and on PostgreSQL; the `bank` fixture checks after every test that the
ledger balances (sum of balances zero, no KPM below zero without an offline exception).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from shared import rc
from shared.cards import make_pan

from bank_penyalur.tables import Transfer
from tests.bank_penyalur.conftest import BENEFIT_IDR


def transfer_count(bank) -> int:  # noqa: ANN001
    with bank.runtime.db.read() as conn:
        return conn.execute(select(func.count()).select_from(Transfer)).scalar_one()


def test_cek_shows_the_monthly_benefit(bank) -> None:  # noqa: ANN001
    answer = bank.inquiry("normal")
    assert (answer.rc, answer.balance_idr) == (rc.APPROVED, BENEFIT_IDR)


def test_bayar_reduces_the_balance_by_the_amount(bank) -> None:  # noqa: ANN001
    answer = bank.purchase("normal", 35_000)
    assert answer.rc == rc.APPROVED
    assert answer.balance_idr == BENEFIT_IDR - 35_000
    assert answer.approval_code and len(answer.approval_code) == 6
    assert bank.balance("normal") == BENEFIT_IDR - 35_000


def test_spending_the_whole_benefit_then_one_rupiah_more(bank) -> None:  # noqa: ANN001
    assert bank.purchase("normal", BENEFIT_IDR).rc == rc.APPROVED
    refused = bank.purchase("normal", 1)
    assert (refused.rc, refused.balance_idr) == (rc.INSUFFICIENT_FUNDS, 0)


def test_zero_balance_when_the_credit_did_not_arrive(bank) -> None:  # noqa: ANN001
    assert bank.inquiry("zero_balance").balance_idr == 0
    assert bank.purchase("zero_balance", 10_000).rc == rc.INSUFFICIENT_FUNDS


def test_no_emoney_sub_account(bank) -> None:  # noqa: ANN001
    assert bank.inquiry("no_emoney").rc == rc.NO_EMONEY_ACCOUNT
    assert bank.purchase("no_emoney", 10_000).rc == rc.NO_EMONEY_ACCOUNT


def test_three_wrong_pins_block_the_pin_even_for_the_right_one(bank) -> None:  # noqa: ANN001
    codes = [bank.purchase("normal", 10_000, pin="000000").rc for _ in range(3)]
    assert codes == [rc.WRONG_PIN, rc.WRONG_PIN, rc.PIN_TRIES_EXCEEDED]
    assert bank.purchase("normal", 10_000).rc == rc.PIN_TRIES_EXCEEDED
    assert bank.inquiry("normal").rc == rc.PIN_TRIES_EXCEEDED
    assert bank.balance("normal") == BENEFIT_IDR


def test_a_right_pin_restarts_the_try_counter(bank) -> None:  # noqa: ANN001
    assert bank.purchase("normal", 1_000, pin="000000").rc == rc.WRONG_PIN
    assert bank.purchase("normal", 1_000, pin="000000").rc == rc.WRONG_PIN
    assert bank.purchase("normal", 1_000).rc == rc.APPROVED
    assert bank.purchase("normal", 1_000, pin="000000").rc == rc.WRONG_PIN
    assert bank.purchase("normal", 1_000).rc == rc.APPROVED


def test_a_retried_wrong_pin_counts_once(bank) -> None:  # noqa: ANN001
    request = bank.purchase_request("normal", 5_000, pin="999999")
    answers = {bank.runtime.authoriser.purchase(request).rc for _ in range(4)}
    assert answers == {rc.WRONG_PIN}
    assert bank.purchase("normal", 5_000).rc == rc.APPROVED


def test_demo_card_situations(bank) -> None:  # noqa: ANN001
    for label, card in bank.cards.items():
        assert bank.purchase(label, 10_000).rc == card.expect_rc, label


def test_replacement_card_reaches_the_same_balance(bank) -> None:  # noqa: ANN001
    assert bank.inquiry("replaced_new").balance_idr == BENEFIT_IDR
    assert bank.purchase("replaced_new", 20_000).rc == rc.APPROVED
    assert bank.purchase("replaced_old", 20_000).rc == rc.RESTRICTED_CARD
    assert bank.inquiry("replaced_new").balance_idr == BENEFIT_IDR - 20_000


def test_invalid_cards_are_refused_with_14(bank) -> None:  # noqa: ANN001
    iin = bank.runtime.bank.iin
    unknown = make_pan(iin, 9_999_999)
    bad_luhn = unknown[:-1] + str((int(unknown[-1]) + 1) % 10)
    other_bank = make_pan("93600002", 1)
    for pan in (unknown, bad_luhn, other_bank, "4111111111111111"):
        assert bank.purchase("normal", 10_000, pan=pan).rc == rc.INVALID_CARD, pan


def test_amounts_that_are_not_positive_or_too_large_get_13(bank) -> None:  # noqa: ANN001
    for amount in (0, -5_000, 10_000_000_000):
        assert bank.purchase("normal", amount).rc == rc.INVALID_AMOUNT
    assert bank.balance("normal") == BENEFIT_IDR


def test_cash_withdrawal_is_not_permitted(bank) -> None:  # noqa: ANN001
    for processing_code in ("010000", "090000", "400000"):
        assert bank.purchase("normal", 10_000, processing_code=processing_code).rc == rc.NOT_PERMITTED
    assert bank.balance("normal") == BENEFIT_IDR


def test_unregistered_ewarong_gets_58(bank) -> None:  # noqa: ANN001
    assert bank.purchase("normal", 10_000, merchant_id="EWXXX0000000001").rc == rc.NOT_PERMITTED_TERMINAL
    assert bank.inquiry("normal", merchant_id="EWXXX0000000001").rc == rc.NOT_PERMITTED_TERMINAL


def test_the_same_request_gets_the_same_answer_and_posts_once(bank) -> None:  # noqa: ANN001
    request = bank.purchase_request("normal", 25_000)
    before = transfer_count(bank)
    answers = [bank.runtime.authoriser.purchase(request) for _ in range(3)]
    assert answers[0] == answers[1] == answers[2]
    assert answers[0].rc == rc.APPROVED
    assert transfer_count(bank) == before + 1
    assert bank.balance("normal") == BENEFIT_IDR - 25_000


def test_a_different_payload_under_the_same_key_gets_94(bank) -> None:  # noqa: ANN001
    first = bank.purchase_request("normal", 25_000)
    assert bank.runtime.authoriser.purchase(first).rc == rc.APPROVED
    changed = first.model_copy(update={"amount_idr": 26_000})
    assert bank.runtime.authoriser.purchase(changed).rc == rc.DUPLICATE
    assert bank.balance("normal") == BENEFIT_IDR - 25_000


def test_reversal_restores_the_balance_exactly_once(bank) -> None:  # noqa: ANN001
    purchase = bank.purchase_request("normal", 40_000)
    assert bank.runtime.authoriser.purchase(purchase).rc == rc.APPROVED
    reversal = bank.reversal_request(purchase)
    first = bank.runtime.authoriser.reversal(reversal)
    assert (first.rc, first.balance_idr) == (rc.APPROVED, BENEFIT_IDR)
    assert bank.runtime.authoriser.reversal(reversal) == first  # a repeat (0401) changes nothing
    assert bank.reversal(purchase).rc == rc.APPROVED  # even under a new STAN
    assert bank.balance("normal") == BENEFIT_IDR


def test_reversal_may_carry_the_stan_of_the_purchase(bank) -> None:  # noqa: ANN001
    purchase = bank.purchase_request("normal", 40_000)
    bank.runtime.authoriser.purchase(purchase)
    assert bank.reversal(purchase, stan=purchase.stan).rc == rc.APPROVED
    assert bank.balance("normal") == BENEFIT_IDR


def test_reversal_that_arrives_before_its_purchase(bank) -> None:  # noqa: ANN001
    purchase = bank.purchase_request("normal", 40_000)
    assert bank.reversal(purchase).rc == rc.APPROVED
    late = bank.runtime.authoriser.purchase(purchase)
    assert late.rc == rc.DUPLICATE
    assert bank.balance("normal") == BENEFIT_IDR


def test_reversal_with_another_amount_is_refused(bank) -> None:  # noqa: ANN001
    purchase = bank.purchase_request("normal", 40_000)
    bank.runtime.authoriser.purchase(purchase)
    assert bank.reversal(purchase, amount_idr=50_000).rc == rc.INVALID_AMOUNT
    assert bank.balance("normal") == BENEFIT_IDR - 40_000


def test_reversal_of_a_declined_purchase_moves_nothing(bank) -> None:  # noqa: ANN001
    declined = bank.purchase_request("normal", 400_000)
    assert bank.runtime.authoriser.purchase(declined).rc == rc.INSUFFICIENT_FUNDS
    before = transfer_count(bank)
    assert bank.reversal(declined).rc == rc.APPROVED
    assert transfer_count(bank) == before


def test_offline_advice_is_posted_without_a_pin(bank) -> None:  # noqa: ANN001
    answer = bank.advice("normal", 30_000, transaction_at=bank.runtime.clock.now() - timedelta(days=3))
    assert (answer.rc, answer.balance_idr) == (rc.APPROVED, BENEFIT_IDR - 30_000)


def test_offline_advice_may_overdraw_within_the_limit_as_an_exception(bank) -> None:  # noqa: ANN001
    assert bank.purchase("normal", 140_000).rc == rc.APPROVED
    answer = bank.advice("normal", 50_000)
    assert (answer.rc, answer.balance_idr) == (rc.APPROVED, -40_000)
    assert bank.advice("normal", 200_000).rc == rc.INSUFFICIENT_FUNDS  # above the offline limit


def test_offline_advice_older_than_90_days_has_expired(bank) -> None:  # noqa: ANN001
    old = bank.runtime.clock.now() - timedelta(days=91)
    assert bank.advice("normal", 10_000, transaction_at=old).rc == rc.EXPIRED
    assert bank.balance("normal") == BENEFIT_IDR


def test_offline_advice_can_be_reversed(bank) -> None:  # noqa: ANN001
    advice_stan = bank.next_stan()
    assert bank.advice("normal", 30_000, stan=advice_stan).rc == rc.APPROVED
    purchase_view = bank.purchase_request("normal", 30_000, stan=advice_stan)
    assert bank.reversal(purchase_view).rc == rc.APPROVED
    assert bank.balance("normal") == BENEFIT_IDR
