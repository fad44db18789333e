"""KPM registry, collective account opening (burekol), e-Warong registration and KKS cards.

All functions work in bulk on one open write transaction: the API calls them with a handful of
rows, the demo generator with thousands per chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, insert, select

from shared.cards import make_pan, mask_pan

from shared.banks import Bank
from bank_penyalur.hsm import Hsm
from bank_penyalur.lifecycle import next_status
from bank_penyalur.schemas import IdNumberText, PersonName, RegionName
from bank_penyalur.store import latest_card_status
from bank_penyalur.tables import (
    EMONEY,
    MERCHANT,
    PIN_SET,
    PRINTED,
    PROGRAM,
    SAVINGS,
    Account,
    AccountOpening,
    Card,
    CardEvent,
    Kpm,
    Merchant,
    PinEvent,
    SubAccountResult,
)

PROGRAM_ACCOUNT_NO = "KPA-KEMENSOS"


class Region(BaseModel):
    model_config = ConfigDict(extra="forbid")

    province: RegionName
    regency: RegionName
    district: RegionName
    village: RegionName


class KpmCreate(Region):
    """One family from the beneficiary list sent for collective account opening."""

    nik: IdNumberText
    kk_number: IdNumberText
    name: PersonName
    pkh: bool = False
    first_period: str = Field(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")


class MerchantCreate(Region):
    id: str = Field(pattern=r"^[A-Z0-9]{6,15}$")
    name: PersonName


@dataclass(frozen=True, slots=True)
class OpeningResult:
    nik: str
    result: str  # opened | failed
    reason: str | None = None
    kpm_id: int | None = None
    account_no: str | None = None
    emoney: str | None = None  # set | failed
    savings: str | None = None


def valid_id_number(value: str) -> bool:
    """NIK and KK numbers are 16 digits; the first two are a province code (11..99)."""
    return len(value) == 16 and value.isdigit() and value[:2] >= "11"


def ensure_program_account(conn: Connection, now: datetime) -> int:
    found = conn.execute(select(Account.id).where(Account.kind == PROGRAM)).scalar_one_or_none()
    if found is not None:
        return found
    return conn.execute(
        insert(Account).values(kind=PROGRAM, account_no=PROGRAM_ACCOUNT_NO, opened_at=now).returning(Account.id)
    ).scalar_one()


def collective_account_no(kpm_id: int) -> str:
    return f"88{kpm_id:010d}"


def open_accounts(conn: Connection, items: Sequence[KpmCreate], now: datetime) -> list[OpeningResult]:
    """Register each KPM and open its collective account and sub-accounts; a result per KPM."""
    niks = [item.nik for item in items]
    taken = set(conn.execute(select(Kpm.nik).where(Kpm.nik.in_(niks))).scalars())
    failures: dict[int, str] = {}
    seen: set[str] = set()
    for index, item in enumerate(items):
        reason = _opening_refusal(item, taken, seen)
        if reason:
            failures[index] = reason
        seen.add(item.nik)
    accepted = [item for index, item in enumerate(items) if index not in failures]
    opened = iter(_register(conn, accepted, now))
    results = [
        OpeningResult(item.nik, "failed", failures[index]) if index in failures else next(opened)
        for index, item in enumerate(items)
    ]
    _record_openings(conn, items, results, now)
    return results


def _opening_refusal(item: KpmCreate, taken: set[str], seen: set[str]) -> str | None:
    if not valid_id_number(item.nik):
        return "NIK tidak valid (16 digit)"
    if item.nik in taken or item.nik in seen:
        return "NIK sudah terdaftar"
    return None


def _register(conn: Connection, items: Sequence[KpmCreate], now: datetime) -> list[OpeningResult]:
    if not items:
        return []
    rows = [
        {**item.model_dump(), "registered_at": now}
        for item in items
    ]
    ids = conn.execute(insert(Kpm).returning(Kpm.id, sort_by_parameter_order=True), rows).scalars().all()
    accounts, results, sub_results = [], [], []
    for kpm_id, item in zip(ids, items, strict=True):
        account_no = collective_account_no(kpm_id)
        emoney_ok = valid_id_number(item.kk_number)
        sub_results.append(_sub_result(kpm_id, EMONEY, emoney_ok, now))
        if emoney_ok:
            accounts.append({"kind": EMONEY, "account_no": f"{account_no}01", "kpm_id": kpm_id, "opened_at": now})
        if item.pkh:
            sub_results.append(_sub_result(kpm_id, SAVINGS, True, now))
            accounts.append({"kind": SAVINGS, "account_no": f"{account_no}02", "kpm_id": kpm_id, "opened_at": now})
        results.append(
            OpeningResult(
                item.nik,
                "opened",
                kpm_id=kpm_id,
                account_no=account_no,
                emoney="set" if emoney_ok else "failed",
                savings="set" if item.pkh else None,
            )
        )
    if accounts:
        conn.execute(insert(Account), accounts)
    conn.execute(insert(SubAccountResult), sub_results)
    return results


def _sub_result(kpm_id: int, kind: str, ok: bool, now: datetime) -> dict:
    return {
        "kpm_id": kpm_id,
        "kind": kind,
        "result": "set" if ok else "failed",
        "reason": None if ok else "Nomor KK tidak valid",
        "at": now,
    }


def _record_openings(
    conn: Connection, items: Sequence[KpmCreate], results: Sequence[OpeningResult], now: datetime
) -> None:
    rows = [
        {
            "nik": item.nik,
            "kpm_id": result.kpm_id,
            "result": result.result,
            "reason": result.reason,
            "account_no": result.account_no,
            "province": item.province,
            "regency": item.regency,
            "district": item.district,
            "village": item.village,
            "at": now,
        }
        for item, result in zip(items, results, strict=True)
    ]
    if rows:
        conn.execute(insert(AccountOpening), rows)


def register_merchants(conn: Connection, items: Sequence[MerchantCreate], now: datetime) -> list[str]:
    """Register e-Warongs not yet known, each with its ledger account; returns the new ids."""
    ids = [item.id for item in items]
    known = set(conn.execute(select(Merchant.id).where(Merchant.id.in_(ids))).scalars())
    fresh = [item for item in items if item.id not in known]
    if not fresh:
        return []
    conn.execute(insert(Merchant), [{**item.model_dump(), "registered_at": now} for item in fresh])
    conn.execute(
        insert(Account),
        [{"kind": MERCHANT, "account_no": f"M{item.id}", "merchant_id": item.id, "opened_at": now} for item in fresh],
    )
    return [item.id for item in fresh]


# -- cards -------------------------------------------------------------------------------


_LATEST_SEALED_PAN = select(Card.pan_sealed).order_by(Card.id.desc()).limit(1)


def _next_serial(conn: Connection, bank: Bank, hsm: Hsm) -> int:
    """The serial after the last printed card's. Serials are given out in card id order (cards
    are only printed here), so the newest card holds the highest: its number is opened, not
    searched for (card numbers rest sealed)."""
    sealed = conn.execute(_LATEST_SEALED_PAN).scalar_one_or_none()
    if sealed is None:
        return 1
    latest = hsm.decrypt_pan(sealed)
    if not latest.startswith(bank.iin):
        raise ValueError(f"the newest card is not of bank {bank.code} (IIN {bank.iin})")
    return int(latest[len(bank.iin) : -1]) + 1


def card_columns(hsm: Hsm, pan: str) -> dict[str, str]:
    """How a card number rests in the cards table: keyed hash, masked and sealed."""
    return {"pan_ref": hsm.pan_ref(pan), "pan_masked": mask_pan(pan), "pan_sealed": hsm.encrypt_pan(pan)}


def print_cards(
    conn: Connection,
    bank: Bank,
    hsm: Hsm,
    kpm_ids: Sequence[int],
    now: datetime,
    actor: str,
    replaces: Sequence[int | None] | None = None,
) -> list[tuple[int, str]]:
    """Print one KKS per KPM (status printed); returns (card id, PAN) in the same order.
    The PAN goes back to the caller (to be printed on the card) and rests only sealed."""
    if not kpm_ids:
        return []
    serial = _next_serial(conn, bank, hsm)
    replaces = replaces or [None] * len(kpm_ids)
    pans = [make_pan(bank.iin, serial + i) for i in range(len(kpm_ids))]
    rows = [
        {**card_columns(hsm, pan), "kpm_id": kpm_id, "replaces_card_id": old, "issued_at": now}
        for pan, kpm_id, old in zip(pans, kpm_ids, replaces, strict=True)
    ]
    ids = conn.execute(insert(Card).returning(Card.id, sort_by_parameter_order=True), rows).scalars().all()
    append_card_events(conn, ids, PRINTED, now, actor)
    return list(zip(ids, pans, strict=True))


def append_card_events(
    conn: Connection, card_ids: Sequence[int], status: str, now: datetime, actor: str, reason: str | None = None
) -> None:
    if card_ids:
        conn.execute(
            insert(CardEvent),
            [{"card_id": cid, "status": status, "reason": reason, "actor": actor, "at": now} for cid in card_ids],
        )


def set_pins(conn: Connection, pvvs: Sequence[tuple[int, str]], now: datetime, actor: str) -> None:
    if pvvs:
        conn.execute(
            insert(PinEvent),
            [{"card_id": cid, "kind": PIN_SET, "pvv": pvv, "actor": actor, "at": now} for cid, pvv in pvvs],
        )


@dataclass(frozen=True, slots=True)
class CardRecord:
    card_id: int
    pan_masked: str
    kpm_id: int
    status: str
    replaces_card_id: int | None


_CARD_RECORD = select(Card.id, Card.pan_masked, Card.kpm_id, latest_card_status(), Card.replaces_card_id)


def card_record(conn: Connection, hsm: Hsm, pan: str) -> CardRecord | None:
    """The card with this number, found by its keyed hash; None when the bank has no such card."""
    row = conn.execute(_CARD_RECORD.where(Card.pan_ref == hsm.pan_ref(pan))).one_or_none()
    return CardRecord(*row) if row else None


def transition(conn: Connection, card: CardRecord, action: str, now: datetime, actor: str, reason: str | None) -> str:
    """Apply a lifecycle action; raises TransitionError when the status does not allow it."""
    status = next_status(card.status, action)
    append_card_events(conn, [card.card_id], status, now, actor, reason)
    return status


def replace_card(
    conn: Connection, bank: Bank, hsm: Hsm, card: CardRecord, now: datetime, actor: str, reason: str | None
) -> tuple[int, str]:
    """Mark the old card replaced and print a new one for the same KPM."""
    transition(conn, card, "replace", now, actor, reason)
    [(card_id, pan)] = print_cards(conn, bank, hsm, [card.kpm_id], now, actor, replaces=[card.card_id])
    return card_id, pan

