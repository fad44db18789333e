"""Reads and appends for the authorisation path, in SQLAlchemy Core.

This is the hot path: every statement is built once at import with bind parameters and run as
a `shared.compiled` statement (compiled once per database, executed on the driver's cursor
inside the caller's transaction); rows come back as named tuples of the selected columns.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Connection, Row, bindparam, func, insert, or_, select
from sqlalchemy.orm import aliased

from shared.compiled import PerDialect, in_list, keys_in, keys_parameters, list_parameter

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


_FIND_REQUEST_FAST = PerDialect(_FIND_REQUEST)
RequestKey = tuple[str, str, str, date]  # (op, terminal id, STAN, transmission date)


def find_request(conn: Connection, op: str, terminal_id: str, stan: str, day: date) -> tuple | None:
    """The stored request under this key, as a row with the columns of `auth_requests`."""
    params = {"terminal_id": terminal_id, "stan": stan, "day": day, "op": op}
    return _FIND_REQUEST_FAST.on(conn).one_or_none(conn, params)


_REQUEST_KEY = (_requests.c.op, _requests.c.terminal_id, _requests.c.stan, _requests.c.transmission_date)
_FIND_REQUESTS = PerDialect(lambda dialect_name: select(_requests).where(keys_in(_REQUEST_KEY, "keys", dialect_name)))


def find_requests(conn: Connection, keys: list[RequestKey]) -> dict[RequestKey, tuple]:
    """The stored requests under any of these keys, in one query, by key. (One key, the common
    batch at light load: the single-key statement, whose generic plan is kept on the server; a
    list statement is planned for each call.)"""
    if not keys:
        return {}
    if len(keys) == 1:
        row = find_request(conn, *keys[0])
        return {} if row is None else {keys[0]: row}
    rows = _FIND_REQUESTS.on(conn).all(conn, keys_parameters(conn, "keys", keys, len(_REQUEST_KEY)))
    return {(row.op, row.terminal_id, row.stan, row.transmission_date): row for row in rows}


# Cards are found by their PAN reference (the keyed hash from `Hsm.pan_ref`), never by the PAN.
_LOCK_BY_PAN_REF = select(Kpm.id).join(Card, Card.kpm_id == Kpm.id).where(Card.pan_ref == bindparam("ref")).with_for_update(of=Kpm)
_LOCK_BY_CARD = select(Kpm.id).join(Card, Card.kpm_id == Kpm.id).where(Card.id == bindparam("ref")).with_for_update(of=Kpm)
_LOCK_BY_PAN_REF_FAST = PerDialect(_LOCK_BY_PAN_REF)
_LOCK_BY_CARD_FAST = PerDialect(_LOCK_BY_CARD)


def lock_kpm_of_card(conn: Connection, card_ref: str | int) -> None:
    """Take the row lock that serialises all money and PIN tries of one KPM (PostgreSQL);
    the card by PAN reference (text) or card id (int)."""
    statement = _LOCK_BY_PAN_REF_FAST if isinstance(card_ref, str) else _LOCK_BY_CARD_FAST
    statement.on(conn).run(conn, {"ref": card_ref})


_LOCK_BY_PAN_REFS = PerDialect(
    lambda dialect_name: select(Kpm.id)
    .join(Card, Card.kpm_id == Kpm.id)
    .where(in_list(Card.pan_ref, "refs", dialect_name))
    .order_by(Kpm.id)  # two writers locking overlapping sets take them in one order: no deadlock
    .with_for_update(of=Kpm)
)


def lock_kpms_of_cards(conn: Connection, pan_refs: list[str]) -> None:
    """`lock_kpm_of_card` for many cards at once (PostgreSQL); one card as `lock_kpm_of_card`."""
    if len(pan_refs) == 1:
        lock_kpm_of_card(conn, pan_refs[0])
    elif pan_refs:
        _LOCK_BY_PAN_REFS.on(conn).all(conn, {"refs": list_parameter(conn, pan_refs)})


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
        # OR, not IN: an IN list is an "expanding" parameter, compiled anew for each execution
        .where(restart.card_id == Card.id, or_(restart.kind == PIN_SET, restart.kind == PIN_CLEAR, restart.kind == PIN_RESET))
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
_CARD_STATE_BY_PAN_REF_FAST = PerDialect(_CARD_STATE_BY_PAN_REF)
_CARD_STATE_BY_ID_FAST = PerDialect(_CARD_STATE_BY_ID)


_CARD_STATES_BY_PAN_REFS = PerDialect(
    lambda dialect_name: _card_state_query().add_columns(Card.pan_ref).where(in_list(Card.pan_ref, "refs", dialect_name))
)


def card_state(conn: Connection, card_ref: str | int) -> CardState | None:
    """The card's state by PAN reference (text) or card id (int); None when there is no such card."""
    statement = _CARD_STATE_BY_PAN_REF_FAST if isinstance(card_ref, str) else _CARD_STATE_BY_ID_FAST
    row = statement.on(conn).one_or_none(conn, {"ref": card_ref})
    return None if row is None else _card_state(row)


def card_states(conn: Connection, pan_refs: list[str]) -> dict[str, CardState]:
    """The states of the cards with these PAN references, in one query; unknown ones are absent.
    One card as `card_state` (see `find_requests`)."""
    if not pan_refs:
        return {}
    if len(pan_refs) == 1:
        state = card_state(conn, pan_refs[0])
        return {} if state is None else {pan_refs[0]: state}
    rows = _CARD_STATES_BY_PAN_REFS.on(conn).all(conn, {"refs": list_parameter(conn, pan_refs)})
    return {row.pan_ref: _card_state(row) for row in rows}


def _card_state(row) -> CardState:  # noqa: ANN001 - a row of `_card_state_query`
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


_TRANSFER_COLUMNS = ("debit_account_id", "credit_account_id", "amount_idr", "kind", "period", "reverses_id", "created_at")
_APPEND_TRANSFER = PerDialect(insert(Transfer).returning(Transfer.id), column_keys=_TRANSFER_COLUMNS)


def _transfer_row(transfer: NewTransfer, now: datetime) -> dict:
    return {
        "debit_account_id": transfer.debit_account_id,
        "credit_account_id": transfer.credit_account_id,
        "amount_idr": transfer.amount_idr,
        "kind": transfer.kind,
        "period": transfer.period,
        "reverses_id": transfer.reverses_id,
        "created_at": now,
    }


def append_transfer(conn: Connection, transfer: NewTransfer, now: datetime) -> int:
    transfer_id = _APPEND_TRANSFER.on(conn).scalar(conn, _transfer_row(transfer, now))
    assert transfer_id is not None
    return transfer_id


def append_transfers(conn: Connection, transfers: list[NewTransfer], now: datetime) -> list[int]:
    """Append many transfers in one driver call; their ids, in the order given."""
    if not transfers:
        return []
    rows = [_transfer_row(transfer, now) for transfer in transfers]
    ids = _APPEND_TRANSFER.on(conn).scalars_many(conn, rows)
    assert len(ids) == len(transfers) and all(ids), ids
    return ids


_APPEND_PIN_EVENT = PerDialect(insert(PinEvent), column_keys=("card_id", "kind", "pvv", "actor", "at"))


def append_pin_event(
    conn: Connection, card_id: int, kind: str, now: datetime, actor: str, pvv: str | None = None
) -> None:
    params = {"card_id": card_id, "kind": kind, "pvv": pvv, "actor": actor, "at": now}
    _APPEND_PIN_EVENT.on(conn).run(conn, params)


def append_pin_events(conn: Connection, events: list[tuple[int, str]], now: datetime, actor: str) -> None:
    """Append many (card id, kind) PIN events in one driver call."""
    if events:
        rows = [{"card_id": card_id, "kind": kind, "pvv": None, "actor": actor, "at": now} for card_id, kind in events]
        _APPEND_PIN_EVENT.on(conn).run_many(conn, rows)


REQUEST_COLUMNS = tuple(c.name for c in _requests.columns if c.name != "id")
_APPEND_REQUEST = PerDialect(insert(AuthRequest), column_keys=REQUEST_COLUMNS)


_REQUEST_DEFAULTS = {"exception": False}


def _request_row(values: dict) -> dict:
    return {name: values.get(name, _REQUEST_DEFAULTS.get(name)) for name in REQUEST_COLUMNS}


def append_request(conn: Connection, values: dict) -> None:
    _APPEND_REQUEST.on(conn).run(conn, _request_row(values))


def append_requests(conn: Connection, many: list[dict]) -> None:
    """Append many request records in one driver call."""
    _APPEND_REQUEST.on(conn).run_many(conn, [_request_row(values) for values in many])


_TRANSFER_BY_ID = select(Transfer.__table__).where(Transfer.id == bindparam("id"))
_REVERSAL_OF = select(Transfer.id).where(Transfer.reverses_id == bindparam("id"))
_CARD_ID_BY_PAN_REF = select(Card.id).where(Card.pan_ref == bindparam("ref"))


def transfer_by_id(conn: Connection, transfer_id: int) -> Row:
    return conn.execute(_TRANSFER_BY_ID, {"id": transfer_id}).one()


def reversal_of_transfer(conn: Connection, transfer_id: int) -> int | None:
    return conn.execute(_REVERSAL_OF, {"id": transfer_id}).scalar_one_or_none()


def card_id_by_pan_ref(conn: Connection, pan_ref: str) -> int | None:
    return conn.execute(_CARD_ID_BY_PAN_REF, {"ref": pan_ref}).scalar_one_or_none()
