"""Crash recovery between the EDC and the shop's books, as a pure function.

A payment is opened before the amount goes to the EDC and closed when its answer is written.
If the app dies between the approval and that write, the EDC still remembers the approved
purchase; on the next start the shop compares its open payments with what the EDC approved:

1. an open payment whose STAN (and amount) matches an approved purchase becomes a sale;
2. an open payment with no STAN yet takes an approved purchase of the same amount, approved
   after the payment was opened, that no sale uses yet (oldest payment first);
3. every other open payment is closed as abandoned; its goods go back on the shelf.

Each approved purchase becomes at most one sale. A sale whose purchase the EDC voided
(PEMBATALAN) before the app could write the void is voided too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from edc_terminal.store import TerminalState
from shared.cards import mask_pan
from shared.money import from_iso_minor

OPEN_PAYMENTS_MAX = 1_000
APPROVED_MAX = 1_000


@dataclass(frozen=True, slots=True)
class ApprovedPurchase:
    """A purchase the EDC saw approved, taken from the EDC's own store.

    `pan` (optional, never stored by the shop) lets the sale count the KPM by a keyed hash of
    the card number; without it only the masked PAN is known."""

    tid: str
    stan: str
    rrn: str
    approval_code: str
    amount_idr: int
    approved_at: datetime
    pan_masked: str
    pan: str | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class OpenPayment:
    payment_id: int
    terminal_id: str
    amount_idr: int
    created_at: datetime
    stan: str | None


@dataclass(frozen=True, slots=True)
class RecoverAsSale:
    payment_id: int
    purchase: ApprovedPurchase
    matched_by: str  # "stan" | "amount"


@dataclass(frozen=True, slots=True)
class Abandon:
    payment_id: int


RecoveryAction = RecoverAsSale | Abandon


def plan_recovery(
    terminal_id: str,
    open_payments: list[OpenPayment],
    approved: list[ApprovedPurchase],
    linked_rrns: set[str],
) -> list[RecoveryAction]:
    """What to do with each open payment of `terminal_id`, in payment order.

    `linked_rrns` are RRNs of this terminal that already belong to a sale."""
    assert len(open_payments) <= OPEN_PAYMENTS_MAX and len(approved) <= APPROVED_MAX
    assert all(p.terminal_id == terminal_id for p in open_payments)
    candidates = [a for a in approved if a.tid == terminal_id and a.rrn not in linked_rrns]
    used: set[str] = set()
    matches: dict[int, RecoverAsSale] = {}
    ordered = sorted(open_payments, key=lambda p: (p.created_at, p.payment_id))
    for payment in (p for p in ordered if p.stan is not None):
        found = _first(candidates, used, lambda a, p=payment: a.stan == p.stan and _fits(a, p))
        if found:
            matches[payment.payment_id] = RecoverAsSale(payment.payment_id, found, "stan")
    for payment in (p for p in ordered if p.stan is None):
        found = _first(candidates, used, lambda a, p=payment: _fits(a, p))
        if found:
            matches[payment.payment_id] = RecoverAsSale(payment.payment_id, found, "amount")
    return [matches.get(p.payment_id, Abandon(p.payment_id)) for p in ordered]


def _fits(purchase: ApprovedPurchase, payment: OpenPayment) -> bool:
    return purchase.amount_idr == payment.amount_idr and purchase.approved_at >= payment.created_at


def _first(candidates: list[ApprovedPurchase], used: set[str], accept) -> ApprovedPurchase | None:  # noqa: ANN001
    """The earliest approved purchase not used yet that `accept`s; marks it used."""
    for purchase in sorted(candidates, key=lambda a: (a.approved_at, a.rrn)):
        if purchase.rrn not in used and accept(purchase):
            used.add(purchase.rrn)
            return purchase
    return None


OFFLINE_REF_PREFIX = "OFL"


def sale_reference(rrn: str | None, stan: str | None) -> str | None:
    """The shop's key of a sale on one terminal: the RRN of an online purchase; for a sale the
    EDC approved offline (no RRN yet) "OFL" and its STAN (12 characters, like an RRN)."""
    if rrn:
        return rrn
    return f"{OFFLINE_REF_PREFIX}{stan:0>9}" if stan else None


def approved_from_terminal_state(state: TerminalState) -> list[ApprovedPurchase]:
    """The approved purchases an EDC's state file remembers: its journal (purchases not voided;
    present in newer state files) and its last approved purchase."""
    found: dict[str, ApprovedPurchase] = {}
    journal = list(getattr(state, "journal", ()))  # older state files have no journal
    voided = {(e.stan, e.rrn) for e in journal if e.kind == "void"}
    for entry in journal:
        reference = sale_reference(entry.rrn, entry.stan) if entry.kind == "offline" else entry.rrn
        if entry.kind in ("purchase", "offline") and (entry.stan, entry.rrn) not in voided and reference:
            found[reference] = ApprovedPurchase(
                state.tid, entry.stan, reference, entry.approval_code, int(entry.amount_idr),
                datetime.fromisoformat(entry.at), entry.pan_masked,
            )  # fmt: skip
    last = _from_last_purchase(state)
    if last is not None and (last.stan, last.rrn) not in voided:
        found[last.rrn] = last  # carries the PAN, for the card reference
    return sorted(found.values(), key=lambda a: (a.approved_at, a.rrn))


def voided_from_terminal_state(state: TerminalState) -> list[tuple[str, datetime]]:
    """(RRN, time) of the purchases the EDC's journal says were voided (PEMBATALAN approved):
    a sale the shop holds of one of them is voided on start, if the app died before it was."""
    journal = list(getattr(state, "journal", ()))
    return [(e.rrn, datetime.fromisoformat(e.at)) for e in journal if e.kind == "void" and e.rrn]


def _from_last_purchase(state: TerminalState) -> ApprovedPurchase | None:
    last = state.last_purchase
    if last is None or not last.rrn:
        return None
    request = last.request
    return ApprovedPurchase(
        tid=str(request.get("41", state.tid)).strip(),
        stan=str(request["11"]),
        rrn=last.rrn,
        approval_code=last.approval_code,
        amount_idr=from_iso_minor(str(request["4"])),
        approved_at=datetime.fromisoformat(last.approved_at),
        pan_masked=mask_pan(str(request["2"])),
        pan=str(request["2"]),
    )
