"""ORM tables of a bank instance. Rows are appended; state is derived from the latest events.

- `transfers` is the double-entry ledger: one row moves `amount_idr` from the debit account to
  the credit account, so the sum of all balances is zero by construction. A reversal is a new
  transfer that points at the one it reverses (at most one reversal per transfer).
- Card status, PIN tries and sub-account results are event tables; nothing is updated in place.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.migrate import NAMING_CONVENTION


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Account kinds
PROGRAM = "program"
EMONEY = "emoney"
SAVINGS = "savings"
MERCHANT = "merchant"

# Transfer kinds
DISBURSEMENT = "disbursement"
PURCHASE = "purchase"
ADVICE = "advice"
REVERSAL = "reversal"

# Card statuses, in lifecycle order
PRINTED = "printed"
DISTRIBUTED = "distributed"
ACTIVATED = "activated"
BLOCKED = "blocked"
LOST = "lost"
DAMAGED = "damaged"
REPLACED = "replaced"
CARD_STATUSES = (PRINTED, DISTRIBUTED, ACTIVATED, BLOCKED, LOST, DAMAGED, REPLACED)

# PIN events
PIN_SET = "set"
PIN_FAIL = "fail"
PIN_CLEAR = "clear"  # a right PIN after wrong ones: the try counter starts again
PIN_RESET = "reset"  # operations staff unblocked the PIN (audited)


class Kpm(Base):
    __tablename__ = "kpm"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nik: Mapped[str] = mapped_column(String(16), unique=True)
    kk_number: Mapped[str] = mapped_column(String(32))  # as received; validity decides the e-money sub-account
    name: Mapped[str] = mapped_column(String(100))
    province: Mapped[str] = mapped_column(String(60))
    regency: Mapped[str] = mapped_column(String(60))
    district: Mapped[str] = mapped_column(String(60))
    village: Mapped[str] = mapped_column(String(60))
    pkh: Mapped[bool] = mapped_column(Boolean, default=False)
    # First benefit period from the beneficiary decree (SK); disbursements before it skip the KPM.
    first_period: Mapped[str] = mapped_column(String(7))
    registered_at: Mapped[datetime] = mapped_column(DateTime)


class AccountOpening(Base):
    """Result of collective account opening (burekol), one row per KPM per attempt."""

    __tablename__ = "account_openings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nik: Mapped[str] = mapped_column(String(32))
    kpm_id: Mapped[int | None] = mapped_column(ForeignKey("kpm.id"))
    result: Mapped[str] = mapped_column(String(10))  # opened | failed
    reason: Mapped[str | None] = mapped_column(String(200))
    account_no: Mapped[str | None] = mapped_column(String(20), unique=True)
    province: Mapped[str] = mapped_column(String(60))
    regency: Mapped[str] = mapped_column(String(60))
    district: Mapped[str] = mapped_column(String(60))
    village: Mapped[str] = mapped_column(String(60))
    at: Mapped[datetime] = mapped_column(DateTime, index=True)


class SubAccountResult(Base):
    __tablename__ = "sub_account_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kpm_id: Mapped[int] = mapped_column(ForeignKey("kpm.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # emoney | savings
    result: Mapped[str] = mapped_column(String(10))  # set | failed
    reason: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(DateTime, index=True)


class Merchant(Base):
    """A registered e-Warong (agent shop) of this bank."""

    __tablename__ = "merchants"

    id: Mapped[str] = mapped_column(String(15), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    province: Mapped[str] = mapped_column(String(60))
    regency: Mapped[str] = mapped_column(String(60))
    district: Mapped[str] = mapped_column(String(60))
    village: Mapped[str] = mapped_column(String(60))
    registered_at: Mapped[datetime] = mapped_column(DateTime)


class Account(Base):
    """A ledger account: the program (KPA) account, a KPM sub-account or an e-Warong account."""

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("kind IN ('program', 'emoney', 'savings', 'merchant')", name="kind"),
        UniqueConstraint("kpm_id", "kind", name="uq_accounts_kpm_kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), index=True)
    account_no: Mapped[str] = mapped_column(String(20), unique=True)
    kpm_id: Mapped[int | None] = mapped_column(ForeignKey("kpm.id"))
    merchant_id: Mapped[str | None] = mapped_column(ForeignKey("merchants.id"), unique=True)
    opened_at: Mapped[datetime] = mapped_column(DateTime)


class Card(Base):
    """A KKS card. Its number is never stored in clear: the card is found by `pan_ref` (HMAC
    of the PAN under the PAN hash key, see `hsm.Hsm.pan_ref`), shown by `pan_masked`, and
    `pan_sealed` (AES-GCM under the PAN key) is opened only where the number itself is needed."""

    __tablename__ = "cards"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pan_ref: Mapped[str] = mapped_column(String(64), unique=True)
    pan_masked: Mapped[str] = mapped_column(String(19))
    pan_sealed: Mapped[str] = mapped_column(String(80))
    kpm_id: Mapped[int] = mapped_column(ForeignKey("kpm.id"), index=True)
    replaces_card_id: Mapped[int | None] = mapped_column(ForeignKey("cards.id"), unique=True)
    issued_at: Mapped[datetime] = mapped_column(DateTime)


class CardEvent(Base):
    __tablename__ = "card_events"
    __table_args__ = (
        CheckConstraint(
            "status IN ('printed', 'distributed', 'activated', 'blocked', 'lost', 'damaged', 'replaced')",
            name="status",
        ),
        Index("ix_card_events_card_latest", "card_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("cards.id"))
    status: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str | None] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(60))
    at: Mapped[datetime] = mapped_column(DateTime, index=True)


class PinEvent(Base):
    __tablename__ = "pin_events"
    __table_args__ = (
        CheckConstraint("kind IN ('set', 'fail', 'clear', 'reset')", name="kind"),
        Index("ix_pin_events_card_kind", "card_id", "kind", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("cards.id"))
    kind: Mapped[str] = mapped_column(String(6))
    pvv: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(60))
    at: Mapped[datetime] = mapped_column(DateTime)


class Transfer(Base):
    __tablename__ = "transfers"
    __table_args__ = (
        CheckConstraint("amount_idr > 0", name="amount_positive"),
        CheckConstraint("debit_account_id <> credit_account_id", name="two_accounts"),
        # Debits of KPM and e-Warong accounts. Disbursements (all debiting the one program
        # account) are left out: with them the column is so skewed that PostgreSQL's generic
        # plan for "debits of account X" becomes a scan of every transfer.
        Index(
            "ix_transfers_debit_spending",
            "debit_account_id",
            "amount_idr",
            sqlite_where=text("kind <> 'disbursement'"),
            postgresql_where=text("kind <> 'disbursement'"),
        ),
        Index("ix_transfers_credit", "credit_account_id", "amount_idr"),
        # Disbursement is applied once per KPM per period, whatever happens to the batch.
        Index(
            "uq_transfers_disbursement",
            "credit_account_id",
            "period",
            unique=True,
            sqlite_where=text("kind = 'disbursement'"),
            postgresql_where=text("kind = 'disbursement'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    debit_account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    credit_account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    amount_idr: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(12))
    period: Mapped[str | None] = mapped_column(String(7))
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("transfers.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class AuthRequest(Base):
    """Every authorisation request and the answer it got, keyed for exactly-once replies.

    The key is (terminal, STAN, transmission date) per operation: a reversal may carry the
    STAN of the purchase it reverses.
    """

    __tablename__ = "auth_requests"
    __table_args__ = (
        UniqueConstraint("terminal_id", "stan", "transmission_date", "op", name="uq_auth_requests_key"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    terminal_id: Mapped[str] = mapped_column(String(8))
    stan: Mapped[str] = mapped_column(String(6))
    transmission_date: Mapped[date] = mapped_column(Date)
    op: Mapped[str] = mapped_column(String(12))
    payload_hash: Mapped[str] = mapped_column(String(64))
    rrn: Mapped[str | None] = mapped_column(String(12), index=True)
    pan_masked: Mapped[str | None] = mapped_column(String(19))
    card_id: Mapped[int | None] = mapped_column(ForeignKey("cards.id"))
    merchant_id: Mapped[str | None] = mapped_column(String(15))
    amount_idr: Mapped[int | None] = mapped_column(BigInteger)
    rc: Mapped[str] = mapped_column(String(2))
    approval_code: Mapped[str | None] = mapped_column(String(6))
    balance_idr: Mapped[int | None] = mapped_column(BigInteger)
    transfer_id: Mapped[int | None] = mapped_column(ForeignKey("transfers.id"))
    original_id: Mapped[int | None] = mapped_column(ForeignKey("auth_requests.id"))
    # An offline advice accepted beyond the balance (within the offline limit).
    exception: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class DisbursementRun(Base):
    __tablename__ = "disbursement_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    period: Mapped[str] = mapped_column(String(7), index=True)
    amount_idr: Mapped[int] = mapped_column(BigInteger)
    credited: Mapped[int] = mapped_column(Integer)
    already_credited: Mapped[int] = mapped_column(Integer)
    not_eligible: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime] = mapped_column(DateTime)


class OpsAudit(Base):
    __tablename__ = "ops_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    actor: Mapped[str] = mapped_column(String(60))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
