"""ORM tables of the switch journal. Every table is append-only: nothing is updated or deleted.

- `terminals` are the EDCs the switch knows, with their master key wrapped under the LMK;
  `terminal_keys` holds every working-key exchange (the newest row of a terminal wins).
- `transactions` holds one row per financial request (key: terminal, STAN, date, kind) with the
  answer it got and the terminal's batch, for duplicate replay, operations queries and
  settlement totals.
- `messages` is the message trail (terminal and bank legs), already masked by the caller.
- `saf_entries` are reversals to store and forward to a bank; `saf_attempts` records each try
  (an entry is pending until it has an 'ack' attempt). The card number of a reversal rests only
  sealed (AES-GCM under the PAN key, `pan_sealed`); its `body` holds it masked.
- `settlements` holds every settlement (0500) decision about a terminal's batch: the closing
  one (rc 00, at most one per batch), attempts whose totals differed (95) and claims of other
  totals for a closed batch (94), each with the terminal's and the switch's totals.
- `batch_uploads` holds the transactions a terminal detailed in batch uploads (0320), once each.
- Operations access and controls (migration 0005): `ops_tokens` (hashed secrets, role, bank scope)
  and `ops_token_revocations`; `terminal_blocks` (the newest row of a terminal holds) and
  `saf_cancellations`, which the core and the SAF loop honour; `ops_audit`, the hash-chained log of
  every operator and admin action (see `switch.ops.audit`).
- `het_attempts` (migration 0006): sales above HET the e-Warong POS refused and reported.
- Several switch processes on one database (migration 0007, used only with workers > 1):
  `request_claims` and `request_claim_releases` (which process calls the bank for a request),
  `saf_claims` (leases on store-and-forward entries).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
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
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.migrate import NAMING_CONVENTION


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Transaction kinds
INQUIRY = "inquiry"
PURCHASE = "purchase"
ADVICE = "advice"
REVERSAL = "reversal"
KINDS = (INQUIRY, PURCHASE, ADVICE, REVERSAL)

# Message directions
TERMINAL_IN = "terminal_in"
TERMINAL_OUT = "terminal_out"
BANK_OUT = "bank_out"
BANK_IN = "bank_in"
DIRECTIONS = (TERMINAL_IN, TERMINAL_OUT, BANK_OUT, BANK_IN)

# SAF attempt outcomes
ACK = "ack"
ERROR = "error"
OUTCOMES = (ACK, ERROR)

# Row ids that grow past 2**31 on PostgreSQL; SQLite needs INTEGER for its rowid alias.
BigId = BigInteger().with_variant(Integer, "sqlite")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Terminal(Base):
    __tablename__ = "terminals"

    tid: Mapped[str] = mapped_column(String(8), primary_key=True)
    mid: Mapped[str] = mapped_column(String(15), index=True)
    bank_code: Mapped[str] = mapped_column(String(10))  # acquiring bank
    name: Mapped[str] = mapped_column(String(100))
    tmk_lmk: Mapped[str] = mapped_column(String(32))  # terminal master key under the LMK, hex
    registered_at: Mapped[datetime] = mapped_column(DateTime)


class TerminalKey(Base):
    """A working-key exchange: the terminal's PIN and MAC keys, wrapped under the LMK."""

    __tablename__ = "terminal_keys"
    __table_args__ = (Index("ix_terminal_keys_latest", "tid", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tid: Mapped[str] = mapped_column(ForeignKey("terminals.tid"))
    tpk_lmk: Mapped[str] = mapped_column(String(32))
    tak_lmk: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(DateTime)


class Transaction(Base):
    __tablename__ = "transactions"
    __table_args__ = (
        UniqueConstraint("tid", "stan", "transmission_date", "kind", name="uq_transactions_key"),
        CheckConstraint(_in("kind", KINDS), name="kind"),
        CheckConstraint("amount_idr >= 0", name="amount_not_negative"),
        Index("ix_transactions_settlement", "transmission_date", "bank_code"),
        Index("ix_transactions_batch", "tid", "batch"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    rrn: Mapped[str] = mapped_column(String(12), unique=True)
    tid: Mapped[str] = mapped_column(String(8), index=True)
    mid: Mapped[str] = mapped_column(String(15), index=True)
    stan: Mapped[str] = mapped_column(String(6))
    transmission_date: Mapped[date] = mapped_column(Date)
    mti: Mapped[str] = mapped_column(String(4))
    kind: Mapped[str] = mapped_column(String(10))
    pan_masked: Mapped[str] = mapped_column(String(19))  # shown, never searched (many cards share it)
    # HMAC-SHA256 of the full PAN (switch.hsm.pan_hash): the search key; NULL on rows from before
    # migration 0002 and where field 2 held no card number.
    pan_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    bank_code: Mapped[str | None] = mapped_column(String(10), index=True)  # issuer routed to
    amount_idr: Mapped[int] = mapped_column(BigInteger)
    rc: Mapped[str] = mapped_column(String(2), index=True)
    approval_code: Mapped[str | None] = mapped_column(String(6))
    balance_idr: Mapped[int | None] = mapped_column(BigInteger)
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict] = mapped_column(JSON)  # response fields for replaying a duplicate
    original_rrn: Mapped[str | None] = mapped_column(String(12), index=True)  # a reversal's purchase
    bank_latency_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    # The terminal's batch (field 60 of the request); NULL when it carried none (migration 0004).
    batch: Mapped[int | None] = mapped_column(Integer)


class MessageLog(Base):
    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(_in("direction", DIRECTIONS), name="direction"),
        Index("ix_messages_terminal_stan", "tid", "stan"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    rrn: Mapped[str | None] = mapped_column(String(12), index=True)
    tid: Mapped[str] = mapped_column(String(8))
    stan: Mapped[str] = mapped_column(String(6))
    mti: Mapped[str] = mapped_column(String(4))
    direction: Mapped[str] = mapped_column(String(12))
    rc: Mapped[str | None] = mapped_column(String(2))
    fields: Mapped[dict] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(DateTime)


class SafEntryRow(Base):
    """A reversal to deliver to a bank until it answers (store and forward)."""

    __tablename__ = "saf_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    rrn: Mapped[str] = mapped_column(String(12), index=True)
    bank_code: Mapped[str] = mapped_column(String(10))
    body: Mapped[dict] = mapped_column(JSON)  # the bank reversal request, its "pan" masked
    # The full PAN, sealed by switch.hsm.PanCipher with associated data "saf/<rrn>" (migration 0003).
    pan_sealed: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class SafAttempt(Base):
    __tablename__ = "saf_attempts"
    __table_args__ = (
        CheckConstraint(_in("outcome", OUTCOMES), name="outcome"),
        Index("ix_saf_attempts_entry", "saf_id", "outcome"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    saf_id: Mapped[int] = mapped_column(ForeignKey("saf_entries.id"))
    outcome: Mapped[str] = mapped_column(String(5))
    detail: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime)


# Settlement decisions recorded in `settlements`
CLOSED = "00"
TOTALS_DIFFER = "95"
OTHER_TOTALS = "94"
SETTLEMENT_RCS = (CLOSED, TOTALS_DIFFER, OTHER_TOTALS)

# Original MTIs a batch upload details
UPLOADED_MTIS = ("0200", "0220", "0400")


class Settlement(Base):
    """One settlement decision about (terminal, batch), with both sides' totals."""

    __tablename__ = "settlements"
    __table_args__ = (
        CheckConstraint(_in("rc", SETTLEMENT_RCS), name="rc"),
        Index("ix_settlements_batch", "tid", "batch"),
        Index("ix_settlements_at", "at"),
        # A batch closes once: a repeat of the closing settlement is answered, not recorded.
        Index(
            "uq_settlements_closed",
            "tid",
            "batch",
            unique=True,
            sqlite_where=text("rc = '00'"),
            postgresql_where=text("rc = '00'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tid: Mapped[str] = mapped_column(String(8))
    batch: Mapped[int] = mapped_column(Integer)
    stan: Mapped[str] = mapped_column(String(6))
    processing_code: Mapped[str] = mapped_column(String(6))  # 920000 | 960000
    terminal_purchase_count: Mapped[int] = mapped_column(Integer)
    terminal_purchase_amount_idr: Mapped[int] = mapped_column(BigInteger)
    terminal_reversal_count: Mapped[int] = mapped_column(Integer)
    terminal_reversal_amount_idr: Mapped[int] = mapped_column(BigInteger)
    switch_purchase_count: Mapped[int] = mapped_column(Integer)
    switch_purchase_amount_idr: Mapped[int] = mapped_column(BigInteger)
    switch_reversal_count: Mapped[int] = mapped_column(Integer)
    switch_reversal_amount_idr: Mapped[int] = mapped_column(BigInteger)
    rc: Mapped[str] = mapped_column(String(2))
    at: Mapped[datetime] = mapped_column(DateTime)


class BatchUpload(Base):
    """A transaction of a batch as the terminal detailed it in a 0320 (recorded once)."""

    __tablename__ = "batch_uploads"
    __table_args__ = (
        UniqueConstraint("tid", "batch", "original_mti", "stan", "transmission_date", name="uq_batch_uploads_key"),
        CheckConstraint(_in("original_mti", UPLOADED_MTIS), name="original_mti"),
        CheckConstraint("amount_idr >= 0", name="amount_not_negative"),
        Index("ix_batch_uploads_day", "transmission_date", "tid"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tid: Mapped[str] = mapped_column(String(8))
    batch: Mapped[int] = mapped_column(Integer)
    stan: Mapped[str] = mapped_column(String(6))
    original_mti: Mapped[str] = mapped_column(String(4))  # 0200 | 0220 | 0400 (field 62)
    pan_masked: Mapped[str] = mapped_column(String(19))
    amount_idr: Mapped[int] = mapped_column(BigInteger)
    approval_code: Mapped[str | None] = mapped_column(String(6))  # field 38
    rrn: Mapped[str | None] = mapped_column(String(12))  # field 37: absent for an offline sale
    transmission_date: Mapped[date] = mapped_column(Date)  # of field 7
    transmitted_at: Mapped[datetime] = mapped_column(DateTime)  # field 7 with its year
    # For a reversal: the purchase it reverses (field 90), else NULL.
    original_stan: Mapped[str | None] = mapped_column(String(6))
    original_date: Mapped[date | None] = mapped_column(Date)
    at: Mapped[datetime] = mapped_column(DateTime)


# -- operations access and controls (migration 0005) ------------------------------------------------

# Roles of ops API tokens, lowest first: each can do what the ones before it can.
VIEWER = "viewer"
OPERATOR = "operator"
ADMIN = "admin"
ROLES = (VIEWER, OPERATOR, ADMIN)


class OpsToken(Base):
    """An ops API token: its public id, the SHA-256 of its secret (never the secret), its role and
    bank scope (NULL: the switch operator, every bank). Revoked by a row of its own."""

    __tablename__ = "ops_tokens"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(10))
    bank_code: Mapped[str | None] = mapped_column(String(10))
    label: Mapped[str] = mapped_column(String(100))
    created_by: Mapped[str] = mapped_column(String(16))  # a token id, or "cli"
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)


class OpsTokenRevocation(Base):
    """The revocation of a token (at most one per token)."""

    __tablename__ = "ops_token_revocations"

    token_id: Mapped[str] = mapped_column(ForeignKey("ops_tokens.id"), primary_key=True)
    revoked_by: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(DateTime)


class TerminalBlock(Base):
    """A terminal blocked or unblocked by operations staff: the newest row of a terminal holds."""

    __tablename__ = "terminal_blocks"
    __table_args__ = (Index("ix_terminal_blocks_latest", "tid", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tid: Mapped[str] = mapped_column(ForeignKey("terminals.tid"))
    blocked: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime)


class SafCancellation(Base):
    """A store-and-forward reversal that operations staff cancelled: it is not sent again."""

    __tablename__ = "saf_cancellations"

    saf_id: Mapped[int] = mapped_column(ForeignKey("saf_entries.id"), primary_key=True)
    actor: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(DateTime)


class AuditRecord(Base):
    """One operator or admin action, hash-chained: `hash` is the SHA-256 of the record's canonical
    serialisation, which includes `prev_hash`, the hash of the record before it (`seq` - 1)."""

    __tablename__ = "ops_audit"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(16))  # a token id, or "cli"
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(60))
    bank_code: Mapped[str | None] = mapped_column(String(10), index=True)  # the bank concerned; NULL: the switch
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)


# -- prices above HET reported by the e-Warong POS (migration 0006) ----------------------------------


class HetAttempt(Base):
    """A sale above HET that an e-Warong's POS refused, as the POS reported it (best effort):
    the goods, the price asked and the HET, when the POS tried (its clock) and when the switch
    heard of it. Read by the `above_het` alert (switch.alerts)."""

    __tablename__ = "het_attempts"
    __table_args__ = (
        CheckConstraint("price_idr > het_idr", name="above_het"),
        CheckConstraint("het_idr >= 0", name="het_not_negative"),
        CheckConstraint("qty >= 1", name="qty_positive"),
        Index("ix_het_attempts_received", "received_at"),
        Index("ix_het_attempts_merchant", "mid", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tid: Mapped[str] = mapped_column(String(8))
    mid: Mapped[str] = mapped_column(String(15))
    sku: Mapped[str] = mapped_column(String(16))
    product_name: Mapped[str] = mapped_column(String(60))
    unit: Mapped[str] = mapped_column(String(10))
    price_idr: Mapped[int] = mapped_column(BigInteger)
    het_idr: Mapped[int] = mapped_column(BigInteger)
    qty: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime] = mapped_column(DateTime)  # the POS's clock, naive WIB
    received_at: Mapped[datetime] = mapped_column(DateTime)  # the switch's clock, naive WIB


# -- several switch processes on one database (migration 0007; used only with workers > 1) ------------


class RequestClaim(Base):
    """A worker's claim on a financial request (terminal, STAN, date, kind) before it calls the
    bank: the one that inserts the row of a round proceeds, the others wait for its journal row.
    A claim whose answer was not final (an advice the bank could not take, 91) is released by a
    `request_claim_releases` row: the terminal's retry claims the next round."""

    __tablename__ = "request_claims"
    __table_args__ = (
        UniqueConstraint("tid", "stan", "transmission_date", "kind", "round", name="uq_request_claims_key"),
        CheckConstraint(_in("kind", KINDS), name="kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tid: Mapped[str] = mapped_column(String(8))
    stan: Mapped[str] = mapped_column(String(6))
    transmission_date: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(10))
    round: Mapped[int] = mapped_column(Integer)
    request_hash: Mapped[str] = mapped_column(String(64))
    worker: Mapped[int] = mapped_column(Integer)  # the switch process's index
    rrn: Mapped[str] = mapped_column(String(12))  # reserved for the request by its winner
    at: Mapped[datetime] = mapped_column(DateTime)


class RequestClaimRelease(Base):
    """The end of a claim whose answer was not final: the key may be claimed again."""

    __tablename__ = "request_claim_releases"

    claim_id: Mapped[int] = mapped_column(ForeignKey("request_claims.id"), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime)


class SafClaim(Base):
    """A worker's lease on a store-and-forward entry: no other worker sends it before `until`.
    A killed worker's leases run out and another worker takes the entry over."""

    __tablename__ = "saf_claims"
    __table_args__ = (Index("ix_saf_claims_entry", "saf_id", "until"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    saf_id: Mapped[int] = mapped_column(ForeignKey("saf_entries.id"))
    worker: Mapped[int] = mapped_column(Integer)
    until: Mapped[datetime] = mapped_column(DateTime)
    at: Mapped[datetime] = mapped_column(DateTime)
