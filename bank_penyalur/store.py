"""Reads and appends for the authorisation path, in SQLAlchemy Core.

This is the hot path: every statement is built once at import with bind parameters, so
SQLAlchemy compiles and caches it once, and rows come back as plain Row tuples.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Connection, Row, bindparam, func, insert, select
from sqlalchemy.orm import aliased

from bank_penyalur.authorise import CardState
from bank_penyalur.ledger import NewTransfer, balance_expr
from bank_penyalur.tables import (
    EMONEY,
    LOST,
    PIN_CLEAR,
    PIN_FAIL,
    PIN_RESET,
    PIN_SET,
    Account,
    AuthRequest,
    Card,
    CardEvent,
    Kpm,
    PinEvent,
    Transfer,
)

_requests = AuthRequest.__table__
_FIND_REQUEST = select(_requests).where(
    _requests.c.terminal_id == bindparam("terminal_id"),
    _requests.c.stan == bindparam("stan"),
    _requests.c.transmission_date == bindparam("day"),
    _requests.c.op == bindparam("op"),
)


def find_request(conn: Connection, op: str, terminal_id: str, stan: str, day: date) -> Row | None:
    """The stored request under this key, as a row with the columns of `auth_requests`."""
    params = {"terminal_id": terminal_id, "stan": stan, "day": day, "op": op}
    return conn.execute(_FIND_REQUEST, params).one_or_none()


# Cards are found by their PAN reference (the keyed hash from `Hsm.pan_ref`), never by the PAN.
_LOCK_BY_PAN_REF = select(Kpm.id).join(Card, Card.kpm_id == Kpm.id).where(Card.pan_ref == bindparam("ref")).with_for_update(of=Kpm)
_LOCK_BY_CARD = select(Kpm.id).join(Card, Card.kpm_id == Kpm.id).where(Card.id == bindparam("ref")).with_for_update(of=Kpm)


def lock_kpm_of_card(conn: Connection, card_ref: str | int) -> None:
    """Take the row lock that serialises all money and PIN tries of one KPM (PostgreSQL);
    the card by PAN reference (text) or card id (int)."""
    statement = _LOCK_BY_PAN_REF if isinstance(card_ref, str) else _LOCK_BY_CARD
    conn.execute(statement, {"ref": card_ref}).all()


def latest_card_status():  # noqa: ANN201
    """Scalar subquery: a card's current status, the status of its latest event."""
    return (
        select(CardEvent.status)
        .where(CardEvent.card_id == Card.id)
        .order_by(CardEvent.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def _card_state_query():  # noqa: ANN202
    status = latest_card_status()
    set_event = aliased(PinEvent)
    pvv = (
        select(set_event.pvv)
        .where(set_event.card_id == Card.id, set_event.kind == PIN_SET)
        .order_by(set_event.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    restart = aliased(PinEvent)
    last_restart = (
        select(func.coalesce(func.max(restart.id), 0))
        .where(restart.card_id == Card.id, restart.kind.in_((PIN_SET, PIN_CLEAR, PIN_RESET)))
        .correlate(Card)  # two levels down: say explicitly which FROM it refers to
        .scalar_subquery()
    )
    fail = aliased(PinEvent)
    fails = (
        select(func.count(fail.id))
        .where(fail.card_id == Card.id, fail.kind == PIN_FAIL, fail.id > last_restart)
        .scalar_subquery()
    )
    lost_event = aliased(CardEvent)
    was_lost = (
        select(lost_event.id)
        .where(lost_event.card_id == Card.id, lost_event.status == LOST)
        .exists()
    )
    emoney = aliased(Account)
    return select(
        Card.id,
        Card.kpm_id,
        status.label("status"),
        emoney.id.label("account_id"),
        pvv.label("pvv"),
        fails.label("fails"),
        balance_expr(emoney.id).label("balance"),
        was_lost.label("was_lost"),
    ).outerjoin(emoney, (emoney.kpm_id == Card.kpm_id) & (emoney.kind == EMONEY))


_CARD_STATE_BY_PAN_REF = _card_state_query().where(Card.pan_ref == bindparam("ref"))
_CARD_STATE_BY_ID = _card_state_query().where(Card.id == bindparam("ref"))


def card_state(conn: Connection, card_ref: str | int) -> CardState | None:
    """The card's state by PAN reference (text) or card id (int); None when there is no such card."""
    statement = _CARD_STATE_BY_PAN_REF if isinstance(card_ref, str) else _CARD_STATE_BY_ID
    row = conn.execute(statement, {"ref": card_ref}).one_or_none()
    if row is None:
        return None
    return CardState(
        card_id=row.id,
        kpm_id=row.kpm_id,
        status=row.status,
        emoney_account_id=row.account_id,
        pvv=row.pvv,
        pin_fails=int(row.fails),
        balance_idr=int(row.balance) if row.account_id is not None else 0,
        was_lost=bool(row.was_lost),
    )


_MERCHANT_ACCOUNT = select(Account.id).where(Account.merchant_id == bindparam("merchant_id"))


def merchant_account(conn: Connection, merchant_id: str) -> int | None:
    return conn.execute(_MERCHANT_ACCOUNT, {"merchant_id": merchant_id}).scalar_one_or_none()


_APPEND_TRANSFER = insert(Transfer).returning(Transfer.id)


def append_transfer(conn: Connection, transfer: NewTransfer, now: datetime) -> int:
    params = {
        "debit_account_id": transfer.debit_account_id,
        "credit_account_id": transfer.credit_account_id,
        "amount_idr": transfer.amount_idr,
        "kind": transfer.kind,
        "period": transfer.period,
        "reverses_id": transfer.reverses_id,
        "created_at": now,
    }
    return conn.execute(_APPEND_TRANSFER, params).scalar_one()


_APPEND_PIN_EVENT = insert(PinEvent)


def append_pin_event(
    conn: Connection, card_id: int, kind: str, now: datetime, actor: str, pvv: str | None = None
) -> None:
    params = {"card_id": card_id, "kind": kind, "pvv": pvv, "actor": actor, "at": now}
    conn.execute(_APPEND_PIN_EVENT, params)


_APPEND_REQUEST = insert(AuthRequest)
REQUEST_COLUMNS = tuple(c.name for c in _requests.columns if c.name != "id")


_REQUEST_DEFAULTS = {"exception": False}


def append_request(conn: Connection, values: dict) -> None:
    row = {name: values.get(name, _REQUEST_DEFAULTS.get(name)) for name in REQUEST_COLUMNS}
    conn.execute(_APPEND_REQUEST, row)


_TRANSFER_BY_ID = select(Transfer.__table__).where(Transfer.id == bindparam("id"))
_REVERSAL_OF = select(Transfer.id).where(Transfer.reverses_id == bindparam("id"))
_CARD_ID_BY_PAN_REF = select(Card.id).where(Card.pan_ref == bindparam("ref"))


def transfer_by_id(conn: Connection, transfer_id: int) -> Row:
    return conn.execute(_TRANSFER_BY_ID, {"id": transfer_id}).one()


def reversal_of_transfer(conn: Connection, transfer_id: int) -> int | None:
    return conn.execute(_REVERSAL_OF, {"id": transfer_id}).scalar_one_or_none()


def card_id_by_pan_ref(conn: Connection, pan_ref: str) -> int | None:
    return conn.execute(_CARD_ID_BY_PAN_REF, {"ref": pan_ref}).scalar_one_or_none()
