"""The authorisation handler: one transaction per request, exactly-once answers.

Each request is keyed by (terminal id, STAN, transmission date). Inside one write transaction
the handler looks the key up, takes the KPM lock, reads the card state, asks the pure decision
functions in `authorise`, and appends the transfer, PIN event and request record together.
A retry of the same request gets the stored answer; a different payload under the key gets 94.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import Connection, Row, bindparam, func, literal_column, select
from sqlalchemy.exc import IntegrityError

from shared import rc
from shared.cards import mask_pan

from bank_penyalur import store
from bank_penyalur.authorise import (
    Decision,
    Policy,
    decide_advice,
    decide_inquiry,
    decide_purchase,
)
from shared.clock import Clock
from shared.db import Database
from bank_penyalur.hsm import Hsm
from bank_penyalur.ledger import balance_of, reversal_of
from bank_penyalur.schemas import (
    AdviceCreate,
    AuthorisationPublic,
    InquiryCreate,
    PurchaseCreate,
    ReversalCreate,
    _Request,
)
from bank_penyalur.tables import ADVICE, DISBURSEMENT, PURCHASE, REVERSAL, Transfer

ACTOR = "authorisation"
MERCHANT_CACHE_MAX = 100_000
# Stored under an original's key when its reversal arrived first: the late original gets 94.
REVERSED_BEFORE_ARRIVAL = "reversed-before-arrival"
# The most recent disbursement credited to an e-money sub-account up to a moment (the 90-day
# rule of offline advices). The kind is written into the SQL, as in `ledger.balance_expr`.
_LAST_DISBURSEMENT = select(func.max(Transfer.created_at)).where(
    Transfer.credit_account_id == bindparam("account_id"),
    Transfer.kind == literal_column(f"'{DISBURSEMENT}'"),
    Transfer.created_at <= bindparam("until"),
)


def payload_hash(op: str, request: _Request) -> str:
    body = orjson.dumps({"op": op, **request.model_dump(mode="json")}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(body).hexdigest()


def approval_code_for(transfer_id: int) -> str:
    return f"{transfer_id % 1_000_000:06d}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a request did: the decision plus the ids the handler appended."""

    decision: Decision
    card_id: int | None = None
    transfer_id: int | None = None
    original_id: int | None = None


class Authoriser:
    def __init__(self, db: Database, hsm: Hsm, clock: Clock, policy: Policy) -> None:
        self.db = db
        self.hsm = hsm
        self.clock = clock
        self.policy = policy
        # e-Warong id -> ledger account id. Registrations are append-only and account ids never
        # change, so a hit stays true; misses are not cached (a shop may register later).
        self._merchant_accounts: dict[str, int] = {}
        self._bodies: dict[str, Callable[[Connection, _Request], Outcome]] = {
            "inquiry": self._inquiry,
            "purchase": self._purchase,
            "advice": self._advice,
            "reversal": self._reversal,
        }

    # -- the four operations -------------------------------------------------------------

    def inquiry(self, req: InquiryCreate) -> AuthorisationPublic:
        return self.authorise("inquiry", req)

    def purchase(self, req: PurchaseCreate) -> AuthorisationPublic:
        return self.authorise("purchase", req)

    def advice(self, req: AdviceCreate) -> AuthorisationPublic:
        return self.authorise("advice", req)

    def reversal(self, req: ReversalCreate) -> AuthorisationPublic:
        return self.authorise("reversal", req)

    # -- exactly once ----------------------------------------------------------------------

    def authorise(self, op: str, req: _Request) -> AuthorisationPublic:
        """Answer one request in its own transaction."""
        for attempt in range(3):
            try:
                with self.db.begin() as conn:
                    return self.answer_in(conn, op, req)
            except IntegrityError:
                # A concurrent request with the same key (or reversing the same transfer)
                # committed first; run again to answer from what it stored.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def answer_in(self, conn: Connection, op: str, req: _Request) -> AuthorisationPublic:
        """Answer `req` inside an open write transaction: the stored answer for a repeat, else
        decide and append. The caller commits (alone, or with a batch)."""
        digest = payload_hash(op, req)
        stored = store.find_request(conn, op, req.terminal_id, req.stan, req.transmission_date)
        if stored is not None:
            return self._replay(stored, digest, req)
        outcome = self._bodies[op](conn, req)
        row = self._record(conn, op, req, digest, outcome)
        return self._answer(row, req)

    def _replay(self, stored: Row, digest: str, req: _Request) -> AuthorisationPublic:
        if stored.payload_hash != digest:
            return _public(rc.DUPLICATE, req, amount_idr=getattr(req, "amount_idr", None))
        return self._answer(
            {
                "rc": stored.rc,
                "approval_code": stored.approval_code,
                "balance_idr": stored.balance_idr,
                "amount_idr": stored.amount_idr,
                "rrn": stored.rrn,
            },
            req,
        )

    def _record(self, conn: Connection, op: str, req: _Request, digest: str, out: Outcome) -> dict:
        decision = out.decision
        values = {
            "terminal_id": req.terminal_id,
            "stan": req.stan,
            "transmission_date": req.transmission_date,
            "op": op,
            "payload_hash": digest,
            "rrn": req.rrn,
            "pan_masked": mask_pan(req.pan),
            "card_id": out.card_id,
            "merchant_id": req.merchant_id,
            "amount_idr": getattr(req, "amount_idr", None),
            "rc": decision.rc,
            "approval_code": approval_code_for(out.transfer_id) if out.transfer_id else None,
            "balance_idr": decision.balance_idr,
            "transfer_id": out.transfer_id,
            "original_id": out.original_id,
            "exception": decision.exception,
            "created_at": self.clock.now(),
        }
        store.append_request(conn, values)
        return values

    @staticmethod
    def _answer(values: dict, req: _Request) -> AuthorisationPublic:
        return _public(
            values["rc"],
            req,
            approval_code=values["approval_code"],
            balance_idr=values["balance_idr"],
            amount_idr=values["amount_idr"],
            rrn=values["rrn"],
        )

    # -- bodies: read under lock, decide, append -------------------------------------------

    def _locked_state(self, conn: Connection, pan: str):  # noqa: ANN202
        card_ref = self.hsm.pan_ref(pan)
        if self.db.locks_rows:
            store.lock_kpm_of_card(conn, card_ref)
        return store.card_state(conn, card_ref)

    def _merchant(self, conn: Connection, merchant_id: str) -> int | None:
        account_id = self._merchant_accounts.get(merchant_id)
        if account_id is None:
            account_id = store.merchant_account(conn, merchant_id)
            if account_id is not None and len(self._merchant_accounts) < MERCHANT_CACHE_MAX:
                self._merchant_accounts[merchant_id] = account_id
        return account_id

    def _pin_ok(self, pan: str, pin_block: str, pvv: str | None) -> bool:
        return pvv is not None and self.hsm.verify(pan, pin_block, pvv)

    def _apply(self, conn: Connection, decision: Decision, card_id: int | None) -> Outcome:
        now = self.clock.now()
        if decision.pin_event and card_id is not None:
            store.append_pin_event(conn, card_id, decision.pin_event, now, ACTOR)
        transfer_id = None
        if decision.transfer is not None:
            transfer_id = store.append_transfer(conn, decision.transfer, now)
        return Outcome(decision, card_id=card_id, transfer_id=transfer_id)

    def _inquiry(self, conn: Connection, req: InquiryCreate) -> Outcome:
        merchant = self._merchant(conn, req.merchant_id)
        card = self._locked_state(conn, req.pan)
        pin_ok = card is not None and self._pin_ok(req.pan, req.pin_block, card.pvv)
        decision = decide_inquiry(req.processing_code, merchant, card, pin_ok, self.policy)
        return self._apply(conn, decision, card.card_id if card else None)

    def _purchase(self, conn: Connection, req: PurchaseCreate) -> Outcome:
        merchant = self._merchant(conn, req.merchant_id)
        card = self._locked_state(conn, req.pan)
        pin_ok = card is not None and self._pin_ok(req.pan, req.pin_block, card.pvv)
        decision = decide_purchase(
            req.processing_code, req.amount_idr, merchant, card, pin_ok, self.policy
        )
        return self._apply(conn, decision, card.card_id if card else None)

    def _advice(self, conn: Connection, req: AdviceCreate) -> Outcome:
        merchant = self._merchant(conn, req.merchant_id)
        card = self._locked_state(conn, req.pan)
        disbursed_at = None
        if card is not None and card.emoney_account_id is not None:
            disbursed_at = last_disbursement(conn, card.emoney_account_id, req.transaction_at)
        decision = decide_advice(
            req.processing_code,
            req.amount_idr,
            req.transaction_at,
            self.clock.now(),
            merchant,
            card,
            self.policy,
            disbursed_at=disbursed_at,
        )
        return self._apply(conn, decision, card.card_id if card else None)

    def _reversal(self, conn: Connection, req: ReversalCreate) -> Outcome:
        original = self._original(conn, req)
        if original is None:
            self._tombstone(conn, req)
            return Outcome(Decision(rc.APPROVED))
        refused = self._reversal_refusal(conn, req, original)
        if refused:
            return Outcome(Decision(refused), original_id=original.id)
        if original.rc != rc.APPROVED or original.transfer_id is None:
            return Outcome(Decision(rc.APPROVED), original_id=original.id)  # nothing was moved
        return self._reverse(conn, original)

    @staticmethod
    def _original(conn: Connection, req: ReversalCreate) -> Row | None:
        key = (req.terminal_id, req.original_stan, req.original_transmission_date)
        return store.find_request(conn, PURCHASE, *key) or store.find_request(conn, ADVICE, *key)

    def _reversal_refusal(self, conn: Connection, req: ReversalCreate, original: Row) -> str | None:
        if original.op not in (PURCHASE, ADVICE):
            return rc.INVALID_TRANSACTION
        if original.card_id is not None and store.card_id_by_pan_ref(conn, self.hsm.pan_ref(req.pan)) != original.card_id:
            return rc.INVALID_TRANSACTION
        if original.amount_idr != req.amount_idr:
            return rc.INVALID_AMOUNT
        return None

    def _reverse(self, conn: Connection, original: Row) -> Outcome:
        if self.db.locks_rows:
            store.lock_kpm_of_card(conn, original.card_id)
        debit = store.transfer_by_id(conn, original.transfer_id)
        already = store.reversal_of_transfer(conn, debit.id)
        if already is None:
            store.append_transfer(conn, reversal_of(debit, debit.id, REVERSAL), self.clock.now())
        balance = balance_of(conn, debit.debit_account_id)
        return Outcome(
            Decision(rc.APPROVED, balance_idr=balance), card_id=original.card_id, original_id=original.id
        )

    def _tombstone(self, conn: Connection, req: ReversalCreate) -> None:
        """The original never arrived: mark its key so that a late arrival cannot post."""
        store.append_request(
            conn,
            {
                "terminal_id": req.terminal_id,
                "stan": req.original_stan,
                "transmission_date": req.original_transmission_date,
                "op": PURCHASE,
                "payload_hash": REVERSED_BEFORE_ARRIVAL,
                "pan_masked": mask_pan(req.pan),
                "merchant_id": req.merchant_id,
                "amount_idr": req.amount_idr,
                "rc": rc.INVALID_TRANSACTION,
                "created_at": self.clock.now(),
            },
        )


def last_disbursement(conn: Connection, account_id: int, until: datetime) -> datetime | None:
    """When the most recent disbursement credited to e-money sub-account `account_id` at or
    before `until` was made; None when there was none."""
    return conn.execute(_LAST_DISBURSEMENT, {"account_id": account_id, "until": until}).scalar_one()


def _public(code: str, req: _Request, **values) -> AuthorisationPublic:  # noqa: ANN003
    return AuthorisationPublic(
        rc=code,
        rc_text=rc.lookup(code).text_en,
        terminal_id=req.terminal_id,
        stan=req.stan,
        transmission_date=req.transmission_date,
        **values,
    )
