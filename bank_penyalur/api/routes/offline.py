"""The offline card list the switch hands to this bank's terminals at sign-on (read-only).

The hot list and the ID references (`bank_penyalur.offline_list` chooses the cards) are keyed
hashes under the bank's card-list key (`shared.offline`): neither card numbers nor NIKs leave
the bank. The card numbers rest sealed and are opened here, one by one, only to be hashed.
"""

from __future__ import annotations

import logging
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import Connection, and_, func, select
from sqlalchemy.orm import aliased

from shared import offline

from bank_penyalur.api.deps import ReadConn, Runtime
from bank_penyalur.hsm import Hsm
from bank_penyalur.offline_list import REFS_MAX, ListedCard, hot_refs, id_refs, select_cards
from bank_penyalur.schemas import WibDateTime
from bank_penyalur.tables import EMONEY, Account, Card, CardEvent, Kpm

router = APIRouter(prefix="/v1/offline", tags=["offline"])
log = logging.getLogger("bank_penyalur")


class CardListPublic(BaseModel):
    """The bank's offline card list: references under its card-list key, sorted."""

    bank: str
    offline_limit_idr: int = Field(description="What a terminal may approve offline per card per month (integer rupiah)")
    key_check: str = Field(description="list_key_check of the card-list key: the switch checks it derives the same key")
    hot: list[str] = Field(description=f"hot_ref of lost, blocked, damaged, replaced and not yet activated cards; at most {REFS_MAX}")
    ids: list[str] = Field(description=f"id_ref (card number and NIK) of active cards with an e-money sub-account; at most {REFS_MAX}")
    truncated: bool = Field(description="True when a list was longer than its bound and was cut")
    generated_at: WibDateTime


def listed_cards(conn: Connection) -> list[ListedCard]:
    """Every card with its current status, its holder's NIK, and whether it is replaced and its
    KPM has an e-money sub-account: one query, grouped rather than one lookup per card."""
    latest = select(CardEvent.card_id, func.max(CardEvent.id).label("event_id")).group_by(CardEvent.card_id).subquery()
    event = aliased(CardEvent)
    successor = aliased(Card)
    emoney = aliased(Account)
    stmt = (
        select(
            Card.id,
            Card.pan_sealed,
            Kpm.nik,
            event.status,
            event.id,
            successor.id.is_not(None),
            emoney.id.is_not(None),
        )
        .join(latest, latest.c.card_id == Card.id)
        .join(event, event.id == latest.c.event_id)
        .join(Kpm, Kpm.id == Card.kpm_id)
        .outerjoin(successor, successor.replaces_card_id == Card.id)
        .outerjoin(emoney, and_(emoney.kpm_id == Card.kpm_id, emoney.kind == EMONEY))
    )
    return [ListedCard(*row) for row in conn.execute(stmt)]


def build_card_list(conn: Connection, hsm: Hsm, bank_code: str, offline_limit_idr: int, now: datetime) -> CardListPublic:
    selection = select_cards(listed_cards(conn))
    if selection.truncated:
        log.warning("bank %s offline card list cut at %d references per list", bank_code, REFS_MAX)
    key = hsm.card_list_key(bank_code)
    return CardListPublic(
        bank=bank_code,
        offline_limit_idr=offline_limit_idr,
        key_check=offline.list_key_check(key),
        hot=hot_refs(key, (hsm.decrypt_pan(c.pan_sealed) for c in selection.hot)),
        ids=id_refs(key, ((hsm.decrypt_pan(c.pan_sealed), c.nik) for c in selection.ids)),
        truncated=selection.truncated,
        generated_at=now,
    )


@router.get("/card-list")
def card_list(runtime: Runtime, conn: ReadConn) -> CardListPublic:
    """The hot list and ID references of this bank's cards, with the offline limit per card."""
    return build_card_list(
        conn, runtime.hsm, runtime.bank.code, runtime.settings.offline_limit_idr, runtime.clock.now()
    )
