"""The authorisation handler: exactly-once answers, one request or a batch per transaction.

Each request is keyed by (terminal id, STAN, transmission date). Inside one write transaction
the handler looks the key up, takes the KPM lock, reads the card state, asks the pure decision
functions in `authorise`, and appends the transfer, PIN event and request record together.
A retry of the same request gets the stored answer; a different payload under the key gets 94.
A batch (`answer_many`) does the same for many requests with one statement per step, carrying
each card's state from one request to the next as the decisions change it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

import orjson
from sqlalchemy import Connection, Row, bindparam, func, literal_column, select
from sqlalchemy.exc import IntegrityError

from shared import rc
from shared.cards import mask_pan

from bank_penyalur import store
from bank_penyalur.authorise import (
    CardState,
    Decision,
    card_after,
    Policy,
    decide_advice,
    decide_inquiry,
    decide_purchase,
)
from shared.clock import Clock
from shared.compiled import PerDialect
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
_LAST_DISBURSEMENT = select(func.max(Transfer.created_at).label("disbursed_at")).where(
    Transfer.credit_account_id == bindparam("account_id"),
    Transfer.kind == literal_column(f"'{DISBURSEMENT}'"),
    Transfer.created_at <= bindparam("until"),
)
_LAST_DISBURSEMENT_FAST = PerDialect(_LAST_DISBURSEMENT)


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
        # What a request decides from the card's state read under lock (all but reversals).
        self._deciders: dict[str, Callable[[Connection, _Request, CardState | None], Decision]] = {
            "inquiry": self._inquiry,
            "purchase": self._purchase,
            "advice": self._advice,
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
            return _replay(_stored_values(stored), digest, req)
        if op == REVERSAL:
            outcome = self._reversal(conn, req)
        else:
            card = self._locked_state(conn, req.pan)
            outcome = self._apply(conn, self._deciders[op](conn, req, card), card.card_id if card else None)
        values = self._values(op, req, digest, outcome, self.clock.now())
        store.append_request(conn, values)
        return _answer(values, req)

    def answer_many(self, conn: Connection, requests: list[tuple[str, _Request]]) -> list[AuthorisationPublic]:
        """Answer `requests` in order inside one open write transaction, exactly as `answer_in`
        one after another would, with a few statements per run of requests instead of several
        per request. A reversal is answered on its own between runs: it reads what the requests
        before it appended."""
        answers: list[AuthorisationPublic] = []
        run: list[tuple[str, _Request]] = []
        for op, req in requests:
            if op == REVERSAL:
                answers += self._answer_run(conn, run)
                run = []
                answers.append(self.answer_in(conn, op, req))
            else:
                run.append((op, req))
        answers += self._answer_run(conn, run)
        return answers

    def _answer_run(self, conn: Connection, run: list[tuple[str, _Request]]) -> list[AuthorisationPublic]:
        """Inquiries, purchases and advices: look every key up at once, lock and read every card
        at once, decide in order (each card's state carried from one request to the next), then
        append the transfers, PIN events and request records in one statement each."""
        if not run:
            return []
        keys = [(op, req.terminal_id, req.stan, req.transmission_date) for op, req in run]
        known = {key: _stored_values(row) for key, row in store.find_requests(conn, list(set(keys))).items()}
        refs = {req.pan: self.hsm.pan_ref(req.pan) for (_, req), key in zip(run, keys, strict=True) if key not in known}
        if self.db.locks_rows:
            store.lock_kpms_of_cards(conn, sorted(set(refs.values())))
        cards = store.card_states(conn, sorted(set(refs.values())))
        now = self.clock.now()
        digests = [payload_hash(op, req) for op, req in run]
        fresh: list[tuple[dict, Decision]] = []
        for (op, req), key, digest in zip(run, keys, digests, strict=True):
            if key in known:
                continue  # a repeat of a stored request, or of one earlier in this run
            ref = refs[req.pan]
            card = cards.get(ref)
            decision = self._deciders[op](conn, req, card)
            if card is not None:
                _carry(cards, ref, card_after(card, decision))
            values = self._values(op, req, digest, Outcome(decision, card_id=card.card_id if card else None), now)
            known[key] = values
            fresh.append((values, decision))
        self._append_run(conn, fresh, now)
        return [_replay(known[key], digest, req) for (_, req), key, digest in zip(run, keys, digests, strict=True)]

    def _append_run(self, conn: Connection, fresh: list[tuple[dict, Decision]], now: datetime) -> None:
        """Append what a run decided; each record gets the id and approval code of its transfer."""
        moving = [(values, decision.transfer) for values, decision in fresh if decision.transfer is not None]
        transfer_ids = store.append_transfers(conn, [transfer for _, transfer in moving], now)
        for (values, _), transfer_id in zip(moving, transfer_ids, strict=True):
            values["transfer_id"] = transfer_id
            values["approval_code"] = approval_code_for(transfer_id)
        pin_events = [(v["card_id"], d.pin_event) for v, d in fresh if d.pin_event and v["card_id"] is not None]
        store.append_pin_events(conn, pin_events, now, ACTOR)
        store.append_requests(conn, [values for values, _ in fresh])

    def _values(self, op: str, req: _Request, digest: str, out: Outcome, at: datetime) -> dict:
        """The request record: the key, what was asked and the answer given `at`."""
        decision = out.decision
        return {
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
            "created_at": at,
        }

    # -- bodies: read under lock, decide, append -------------------------------------------

    def _locked_state(self, conn: Connection, pan: str) -> CardState | None:
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

    def _inquiry(self, conn: Connection, req: InquiryCreate, card: CardState | None) -> Decision:
        merchant = self._merchant(conn, req.merchant_id)
        pin_ok = card is not None and self._pin_ok(req.pan, req.pin_block, card.pvv)
        return decide_inquiry(req.processing_code, merchant, card, pin_ok, self.policy)

    def _purchase(self, conn: Connection, req: PurchaseCreate, card: CardState | None) -> Decision:
        merchant = self._merchant(conn, req.merchant_id)
        pin_ok = card is not None and self._pin_ok(req.pan, req.pin_block, card.pvv)
        return decide_purchase(req.processing_code, req.amount_idr, merchant, card, pin_ok, self.policy)

    def _advice(self, conn: Connection, req: AdviceCreate, card: CardState | None) -> Decision:
        merchant = self._merchant(conn, req.merchant_id)
        disbursed_at = None
        if card is not None and card.emoney_account_id is not None:
            disbursed_at = last_disbursement(conn, card.emoney_account_id, req.transaction_at)
        return decide_advice(
            req.processing_code,
            req.amount_idr,
            req.transaction_at,
            self.clock.now(),
            merchant,
            card,
            self.policy,
            disbursed_at=disbursed_at,
        )

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
    return _LAST_DISBURSEMENT_FAST.on(conn).scalar(conn, {"account_id": account_id, "until": until})


def _carry(cards: dict[str, CardState], ref: str, after: CardState) -> None:
    """Keep `after` as the state of card `ref`, and its balance for every other card on the
    same e-money sub-account (an old and a new card of one KPM)."""
    cards[ref] = after
    if after.emoney_account_id is None:
        return
    for other_ref, other in list(cards.items()):
        if other.emoney_account_id == after.emoney_account_id:
            cards[other_ref] = replace(other, balance_idr=after.balance_idr)


_ANSWER_FIELDS = ("payload_hash", "rc", "approval_code", "balance_idr", "amount_idr", "rrn")


def _stored_values(row: Row) -> dict:
    """What `_replay` needs of a stored request record."""
    return {name: getattr(row, name) for name in _ANSWER_FIELDS}


def _replay(stored: dict, digest: str, req: _Request) -> AuthorisationPublic:
    """The stored answer for a repeat of the same request; 94 for another under its key."""
    if stored["payload_hash"] != digest:
        return _public(rc.DUPLICATE, req, amount_idr=getattr(req, "amount_idr", None))
    return _answer(stored, req)


def _answer(values: dict, req: _Request) -> AuthorisationPublic:
    return _public(
        values["rc"],
        req,
        approval_code=values["approval_code"],
        balance_idr=values["balance_idr"],
        amount_idr=values["amount_idr"],
        rrn=values["rrn"],
    )


def _public(code: str, req: _Request, **values) -> AuthorisationPublic:  # noqa: ANN003
    return AuthorisationPublic(
        rc=code,
        rc_text=rc.lookup(code).text_en,
        terminal_id=req.terminal_id,
        stan=req.stan,
        transmission_date=req.transmission_date,
        **values,
    )
