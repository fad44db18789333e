"""Authorisation decisions as pure functions: state in, decision out.

The handler (`bank_penyalur.service`) reads the state inside a locked transaction, asks these
functions what to do, and persists the changes they return. Declines are response codes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared import rc
from shared.money import is_valid_amount

from bank_penyalur.ledger import NewTransfer
from bank_penyalur.tables import (
    ACTIVATED,
    ADVICE,
    LOST,
    PIN_CLEAR,
    PIN_FAIL,
    PURCHASE,
    REPLACED,
)

PURCHASE_TYPE = "00"
INQUIRY_TYPE = "31"


@dataclass(frozen=True, slots=True)
class CardState:
    """What the bank knows about a card at the moment of a request (read under lock)."""

    card_id: int
    kpm_id: int
    status: str
    emoney_account_id: int | None
    pvv: str | None
    pin_fails: int
    balance_idr: int
    was_lost: bool = False  # a replaced card that had been reported lost is still refused as lost


@dataclass(frozen=True, slots=True)
class Decision:
    rc: str
    transfer: NewTransfer | None = None
    pin_event: str | None = None
    balance_idr: int | None = None
    exception: bool = False


@dataclass(frozen=True, slots=True)
class Policy:
    pin_tries_max: int = 3
    offline_limit_idr: int = 150_000
    advice_max_age_days: int = 90


def card_after(card: CardState, decision: Decision) -> CardState:
    """The card's state once `decision` is stored: what a later request in the same transaction
    would read back (the debit taken, the PIN try counted or cleared)."""
    pin_fails = card.pin_fails
    if decision.pin_event == PIN_FAIL:
        pin_fails += 1
    elif decision.pin_event == PIN_CLEAR:
        pin_fails = 0
    balance_idr = card.balance_idr
    if decision.transfer is not None:
        assert decision.transfer.debit_account_id == card.emoney_account_id
        balance_idr -= decision.transfer.amount_idr
    return replace(card, pin_fails=pin_fails, balance_idr=balance_idr)


def card_rc(card: CardState | None) -> str | None:
    """Response code refusing the card, or None when the card may be used."""
    if card is None:
        return rc.INVALID_CARD
    if card.status == LOST or (card.status == REPLACED and card.was_lost):
        return rc.LOST_CARD
    if card.status != ACTIVATED:
        return rc.RESTRICTED_CARD  # blocked, damaged, replaced, or not yet activated
    return None


def pin_check(card: CardState, pin_ok: bool, policy: Policy) -> tuple[str | None, str | None]:
    """(refusing response code or None, PIN event to record or None)."""
    if card.pin_fails >= policy.pin_tries_max:
        return rc.PIN_TRIES_EXCEEDED, None
    if not pin_ok:
        exhausted = card.pin_fails + 1 >= policy.pin_tries_max
        return (rc.PIN_TRIES_EXCEEDED if exhausted else rc.WRONG_PIN), PIN_FAIL
    return None, (PIN_CLEAR if card.pin_fails else None)


def _cardholder_refusal(
    merchant_account_id: int | None, card: CardState | None, pin_ok: bool, policy: Policy
) -> tuple[Decision | None, str | None]:
    """The e-Warong, card, PIN and sub-account checks shared by Cek and Bayar:
    (refusal or None, PIN event to record or None)."""
    if merchant_account_id is None:
        return Decision(rc.NOT_PERMITTED_TERMINAL), None
    refused = card_rc(card)
    if refused:
        return Decision(refused), None
    assert card is not None
    refused, pin_event = pin_check(card, pin_ok, policy)
    if refused:
        return Decision(refused, pin_event=pin_event), pin_event
    if card.emoney_account_id is None:
        return Decision(rc.NO_EMONEY_ACCOUNT, pin_event=pin_event), pin_event
    return None, pin_event


def decide_inquiry(
    processing_code: str,
    merchant_account_id: int | None,
    card: CardState | None,
    pin_ok: bool,
    policy: Policy,
) -> Decision:
    if processing_code[:2] != INQUIRY_TYPE:
        return Decision(rc.INVALID_TRANSACTION)
    refusal, pin_event = _cardholder_refusal(merchant_account_id, card, pin_ok, policy)
    if refusal:
        return refusal
    assert card is not None
    return Decision(rc.APPROVED, pin_event=pin_event, balance_idr=card.balance_idr)


def decide_purchase(
    processing_code: str,
    amount_idr: int,
    merchant_account_id: int | None,
    card: CardState | None,
    pin_ok: bool,
    policy: Policy,
) -> Decision:
    if processing_code[:2] != PURCHASE_TYPE:
        return Decision(rc.NOT_PERMITTED)  # cash withdrawal or any other debit: benefit is food only
    if not is_valid_amount(amount_idr):
        return Decision(rc.INVALID_AMOUNT)
    refusal, pin_event = _cardholder_refusal(merchant_account_id, card, pin_ok, policy)
    if refusal:
        return refusal
    assert card is not None and card.emoney_account_id is not None and merchant_account_id is not None
    if card.balance_idr < amount_idr:
        return Decision(rc.INSUFFICIENT_FUNDS, pin_event=pin_event, balance_idr=card.balance_idr)
    debit = NewTransfer(card.emoney_account_id, merchant_account_id, amount_idr, PURCHASE)
    return Decision(
        rc.APPROVED, transfer=debit, pin_event=pin_event, balance_idr=card.balance_idr - amount_idr
    )


def decide_advice(
    processing_code: str,
    amount_idr: int,
    transaction_at: datetime,
    now: datetime,
    merchant_account_id: int | None,
    card: CardState | None,
    policy: Policy,
    disbursed_at: datetime | None = None,
) -> Decision:
    """An offline purchase uploaded later: no PIN; may overdraw within the offline limit.

    The funds of a period may be used offline within `advice_max_age_days` of their
    disbursement: `disbursed_at` is the most recent disbursement credited to the card's e-money
    sub-account before the sale (None when there was none: then only the offline limit bounds
    it). A sale made later than that, or an advice arriving later than that after its sale, is
    refused with 54 and reported as an offline exception."""
    if processing_code[:2] != PURCHASE_TYPE:
        return Decision(rc.NOT_PERMITTED)
    if not is_valid_amount(amount_idr):
        return Decision(rc.INVALID_AMOUNT)
    if merchant_account_id is None:
        return Decision(rc.NOT_PERMITTED_TERMINAL)
    if transaction_at > now + timedelta(days=1):
        return Decision(rc.INVALID_TRANSACTION)  # dated in the future
    refused = card_rc(card)
    if refused:
        return Decision(refused)
    assert card is not None
    if card.emoney_account_id is None:
        return Decision(rc.NO_EMONEY_ACCOUNT)
    if advice_expired(transaction_at, now, disbursed_at, policy):
        return Decision(rc.EXPIRED, balance_idr=card.balance_idr, exception=True)
    return _offline_debit(card, merchant_account_id, amount_idr, policy)


def advice_expired(transaction_at: datetime, now: datetime, disbursed_at: datetime | None, policy: Policy) -> bool:
    """The 90-day rule: the sale came more than `advice_max_age_days` after the disbursement
    that funded it, or the advice more than that after the sale."""
    max_age = timedelta(days=policy.advice_max_age_days)
    if now - transaction_at > max_age:
        return True
    return disbursed_at is not None and transaction_at - disbursed_at > max_age


def _offline_debit(card: CardState, merchant_account_id: int, amount_idr: int, policy: Policy) -> Decision:
    """Debit an offline sale: the resulting balance may go below zero (an exception for the
    report) but never below minus the offline limit; an advice past that is refused with 51 and
    reported as an exception too."""
    assert card.emoney_account_id is not None
    balance_after_idr = card.balance_idr - amount_idr
    if balance_after_idr < -policy.offline_limit_idr:
        return Decision(rc.INSUFFICIENT_FUNDS, balance_idr=card.balance_idr, exception=True)
    debit = NewTransfer(card.emoney_account_id, merchant_account_id, amount_idr, ADVICE)
    return Decision(rc.APPROVED, transfer=debit, balance_idr=balance_after_idr, exception=balance_after_idr < 0)
