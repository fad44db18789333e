"""Asking a card's bank to reset its PIN tries (a KPM blocked after wrong PINs, at the counter).

`POST /v1/cards/pin-reset` with the full card number in the body (never in a URL, which logs
keep) goes to the issuing bank's own PIN reset (`POST /v1/ops/cards/{pan}/pin-reset` of the
bank, through the switch's bank client and its credential), which unblocks the PIN and keeps its
own audit record; the KPM then enters the PIN they have. Setting a new PIN is the bank's counter
business (it needs the KPM's PIN pad), not the switch's.

Operator role; a bank's token only for its own cards (403 for another bank's). Every request
that reached the point of asking the bank appends an audit record with the bank's answer,
whether it reset the PIN or not. Answers: 200 with the card as the bank reports it (number
masked), 404 when the bank has no such card, 503 when the bank cannot be asked, 502 when it
answered otherwise.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from shared.banks import bank_for_pan
from shared.cards import mask_pan
from shared.http import error_responses
from switch.bank_client import BankUnavailable
from switch.ops import audit
from switch.ops.access import Principal
from switch.ops.deps import Now, OpsJournal, Operator, own_bank
from switch.ops.routes.common import ReasonText, mask_text
from switch.ops.routes.params import CardNumber
from switch.ops.routes.problems import GUARDED, NOT_FOUND, WITH_BODY, refuse
from switch.ops.routes.reconciliation import OpsBanks

router = APIRouter(prefix="/v1/cards", tags=["cards"], responses=GUARDED)

BANK_TIMEOUT_MS = 10_000
BAD_GATEWAY = error_responses(502)


class PinResetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pan: CardNumber = Field(description="The full card number (13-19 digits)")
    reason: ReasonText = Field(description="Why, in a few words (3-200 characters); kept in both audit logs")


class PinResetPublic(BaseModel):
    bank: str
    pan_masked: str
    card_status: str | None = Field(description="The card's status at its bank")
    pin_tries_left: int | None = Field(description="PIN tries left after the reset, as the bank reports it")


@router.post("/pin-reset", responses={**NOT_FOUND, **BAD_GATEWAY, **WITH_BODY})
async def pin_reset(principal: Operator, body: PinResetCreate, journal: OpsJournal, banks: OpsBanks, now: Now) -> PinResetPublic:
    """Ask the card's bank to unblock its PIN (reset the wrong tries)."""
    bank = bank_for_pan(body.pan)
    if bank is None:
        refuse("body", "pan", "not a card of any bank of the network (unknown card prefix)")
    own_bank(principal, bank.code)
    if banks is None or not banks.knows(bank.code):
        raise HTTPException(503, f"this ops API has no link to bank {bank.code}")
    reason, masked = mask_text(body.reason), mask_pan(body.pan)
    request = {"actor": f"switch-ops {principal.token_id}", "reason": reason}
    outcome = await banks.pin_reset(bank.code, body.pan, request, BANK_TIMEOUT_MS)
    after = _outcome(outcome)
    await asyncio.to_thread(_record, journal, principal, bank.code, masked, reason, after, now())
    if isinstance(outcome, BankUnavailable):
        raise HTTPException(503, f"bank {bank.code} could not be asked ({outcome.reason}); try again")
    status, answer = outcome
    if status == 404:
        raise HTTPException(404, f"bank {bank.code} has no card {masked}")
    if status != 200:
        raise HTTPException(502, f"bank {bank.code} answered HTTP {status}")
    return PinResetPublic(bank=bank.code, pan_masked=masked, card_status=after["card_status"], pin_tries_left=after["pin_tries_left"])


def _outcome(outcome: tuple[int, dict] | BankUnavailable) -> dict:
    """What the audit log keeps of the bank's answer."""
    if isinstance(outcome, BankUnavailable):
        return {"outcome": "bank unavailable", "detail": outcome.reason, "card_status": None, "pin_tries_left": None}
    status, answer = outcome
    tries = answer.get("pin_tries_left")
    card_status = answer.get("status")
    return {
        "outcome": "pin reset" if status == 200 else f"refused: HTTP {status}",
        "detail": mask_text(str(answer.get("detail")))[:200] if status != 200 and "detail" in answer else None,
        "card_status": card_status if isinstance(card_status, str) else None,
        "pin_tries_left": tries if isinstance(tries, int) else None,
    }


def _record(journal: OpsJournal, principal: Principal, bank: str, masked: str, reason: str, after: dict, at: datetime) -> None:
    with journal.db.begin() as conn:
        audit.append(conn, principal.token_id, "card.pin_reset", f"card/{masked}", bank, {"reason": reason}, after, at)
