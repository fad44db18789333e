"""KKS cards: printing, distribution, activation with a PIN, blocking, loss and replacement."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from shared.http import error_responses, unprocessable
from pydantic import BaseModel, Field
from sqlalchemy import Connection, select

from shared.cards import mask_pan

from bank_penyalur import registry, store
from bank_penyalur.api.deps import ReadConn, Runtime, WriteConn
from bank_penyalur.registry import CardRecord
from bank_penyalur.schemas import ActorName, IdNumberText, PinBlockHex, ReasonText
from bank_penyalur.tables import PIN_SET, Card, Kpm

router = APIRouter(prefix="/v1/cards", tags=["cards"], responses=error_responses(400, 404, 409, 413))

PIN_BLOCK_REFUSED = "PIN block does not decode to a 6-digit PIN for this card"


class CardCreate(BaseModel):
    nik: IdNumberText = Field(max_length=16)


class CardAction(BaseModel):
    actor: ActorName = "operator"
    reason: ReasonText | None = None


class Activation(CardAction):
    pin_block: PinBlockHex = Field(description="New PIN as an ISO 9564 format 0 block under the bank's ZPK")


class CardPublic(BaseModel):
    pan_masked: str
    status: str
    kpm_id: int
    kpm_name: str
    replaces_pan_masked: str | None = None
    pin_tries_left: int | None = None
    balance_idr: int | None = None


def load_card(conn: Connection, runtime: Runtime, pan: str) -> CardRecord:
    """The card with this number (found by its keyed hash); 404 when there is none."""
    card = registry.card_record(conn, runtime.hsm, pan)
    if card is None:
        raise HTTPException(404, f"no card {mask_pan(pan)} at this bank")
    return card


def card_public(conn: Connection, runtime: Runtime, pan: str) -> CardPublic:
    card = load_card(conn, runtime, pan)
    state = store.card_state(conn, card.card_id)
    assert state is not None
    name = conn.execute(select(Kpm.name).where(Kpm.id == card.kpm_id)).scalar_one()
    replaced_masked = None
    if card.replaces_card_id is not None:
        replaced_masked = conn.execute(select(Card.pan_masked).where(Card.id == card.replaces_card_id)).scalar_one()
    tries_max = runtime.settings.pin_tries_max
    return CardPublic(
        pan_masked=card.pan_masked,
        status=card.status,
        kpm_id=card.kpm_id,
        kpm_name=name,
        replaces_pan_masked=replaced_masked,
        pin_tries_left=max(tries_max - state.pin_fails, 0) if state.pvv else None,
        balance_idr=state.balance_idr if state.emoney_account_id is not None else None,
    )


class CardIssued(CardPublic):
    """A newly printed card: the full PAN is shown once, to the issuing operator."""

    pan: str


def issued(conn: Connection, runtime: Runtime, pan: str) -> CardIssued:
    return CardIssued(pan=pan, **card_public(conn, runtime, pan).model_dump())


@router.post("", status_code=201)
def print_card(body: CardCreate, runtime: Runtime, conn: WriteConn) -> CardIssued:
    kpm_id = conn.execute(select(Kpm.id).where(Kpm.nik == body.nik)).scalar_one_or_none()
    if kpm_id is None:
        raise HTTPException(404, f"no KPM with NIK {body.nik}")
    [(_, pan)] = registry.print_cards(conn, runtime.bank, runtime.hsm, [kpm_id], runtime.clock.now(), actor="operator")
    return issued(conn, runtime, pan)


@router.get("/{pan}")
def get_card(pan: str, runtime: Runtime, conn: ReadConn) -> CardPublic:
    return card_public(conn, runtime, pan)


def _act(action: str):  # noqa: ANN202
    def endpoint(pan: str, body: CardAction, runtime: Runtime, conn: WriteConn) -> CardPublic:
        card = load_card(conn, runtime, pan)
        registry.transition(conn, card, action, runtime.clock.now(), body.actor, body.reason)
        return card_public(conn, runtime, pan)

    endpoint.__name__ = action
    return endpoint


for _action in ("distribute", "block", "unblock", "report_lost", "report_damaged"):
    router.add_api_route(f"/{{pan}}/{_action.replace('_', '-')}", _act(_action), methods=["POST"])


@router.post("/{pan}/activate")
def activate(pan: str, body: Activation, runtime: Runtime, conn: WriteConn) -> CardPublic:
    """Activate a distributed card with the PIN the KPM chose on the bank's PIN pad."""
    card = load_card(conn, runtime, pan)
    pvv = runtime.hsm.pvv_from_block(pan, body.pin_block)
    if pvv is None:
        raise unprocessable(PIN_BLOCK_REFUSED, ("body", "pin_block"))
    now = runtime.clock.now()
    registry.transition(conn, card, "activate", now, body.actor, body.reason)
    store.append_pin_event(conn, card.card_id, PIN_SET, now, body.actor, pvv=pvv)
    return card_public(conn, runtime, pan)


@router.post("/{pan}/replace", status_code=201)
def replace(pan: str, body: CardAction, runtime: Runtime, conn: WriteConn) -> CardIssued:
    """Print a replacement for a lost, damaged or blocked card: same KPM, same balance."""
    card = load_card(conn, runtime, pan)
    _, new_pan = registry.replace_card(conn, runtime.bank, runtime.hsm, card, runtime.clock.now(), body.actor, body.reason)
    return issued(conn, runtime, new_pan)
