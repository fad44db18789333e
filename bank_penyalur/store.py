"""Reads and appends for the authorisation path, in SQLAlchemy Core (one round trip each)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.orm import aliased

from bank_penyalur.authorise import CardState
from bank_penyalur.ledger import NewTransfer, balance_expr
from bank_penyalur.tables import (
    EMONEY,
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


def find_request(
    conn: Connection, op: str, terminal_id: str, stan: str, day: date
) -> AuthRequest | None:
    row = conn.execute(
        select(AuthRequest.__table__).where(
            AuthRequest.terminal_id == terminal_id,
            AuthRequest.stan == stan,
            AuthRequest.transmission_date == day,
            AuthRequest.op == op,
        )
    ).one_or_none()
    return AuthRequest(**row._mapping) if row else None


def lock_kpm_of_card(conn: Connection, card_ref) -> None:  # noqa: ANN001 - PAN text or card id
    """Take the row lock that serialises all money and PIN tries of one KPM (PostgreSQL)."""
    where = Card.pan == card_ref if isinstance(card_ref, str) else Card.id == card_ref
    conn.execute(
        select(Kpm.id).join(Card, Card.kpm_id == Kpm.id).where(where).with_for_update(of=Kpm)
    ).all()


def _card_state_query():  # noqa: ANN202
    status = (
        select(CardEvent.status)
        .where(CardEvent.card_id == Card.id)
        .order_by(CardEvent.id.desc())
        .limit(1)
        .scalar_subquery()
    )
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
    emoney = aliased(Account)
    return select(
        Card.id,
        Card.kpm_id,
        status.label("status"),
        emoney.id.label("account_id"),
        pvv.label("pvv"),
        fails.label("fails"),
        balance_expr(emoney.id).label("balance"),
    ).outerjoin(emoney, (emoney.kpm_id == Card.kpm_id) & (emoney.kind == EMONEY))


_CARD_STATE = _card_state_query()


def card_state(conn: Connection, card_ref) -> CardState | None:  # noqa: ANN001
    where = Card.pan == card_ref if isinstance(card_ref, str) else Card.id == card_ref
    row = conn.execute(_CARD_STATE.where(where)).one_or_none()
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
    )


def merchant_account(conn: Connection, merchant_id: str) -> int | None:
    return conn.execute(
        select(Account.id).where(Account.merchant_id == merchant_id)
    ).scalar_one_or_none()


def append_transfer(conn: Connection, transfer: NewTransfer, now: datetime) -> int:
    return conn.execute(
        insert(Transfer)
        .values(
            debit_account_id=transfer.debit_account_id,
            credit_account_id=transfer.credit_account_id,
            amount_idr=transfer.amount_idr,
            kind=transfer.kind,
            period=transfer.period,
            reverses_id=transfer.reverses_id,
            created_at=now,
        )
        .returning(Transfer.id)
    ).scalar_one()


def append_pin_event(
    conn: Connection, card_id: int, kind: str, now: datetime, actor: str, pvv: str | None = None
) -> None:
    conn.execute(
        insert(PinEvent).values(card_id=card_id, kind=kind, pvv=pvv, actor=actor, at=now)
    )


def append_request(conn: Connection, values: dict) -> int:
    return conn.execute(insert(AuthRequest).values(**values).returning(AuthRequest.id)).scalar_one()


def transfer_by_id(conn: Connection, transfer_id: int) -> Transfer:
    row = conn.execute(select(Transfer.__table__).where(Transfer.id == transfer_id)).one()
    return Transfer(**row._mapping)


def reversal_of_transfer(conn: Connection, transfer_id: int) -> int | None:
    return conn.execute(
        select(Transfer.id).where(Transfer.reverses_id == transfer_id)
    ).scalar_one_or_none()


def card_id_by_pan(conn: Connection, pan: str) -> int | None:
    return conn.execute(select(Card.id).where(Card.pan == pan)).scalar_one_or_none()
