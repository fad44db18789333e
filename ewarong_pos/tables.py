"""Tables of the e-Warong POS (SQLAlchemy Core). Rows are appended, never updated or deleted.

- `ewarongs`: one row per shop known here; its row is the lock that serialises the shop's
  stock and payment writes on PostgreSQL (`SELECT ... FOR UPDATE`).
- `products`: a shop's goods with price and HET; forbidden goods carry their reason.
- `stock_movements`: stock is the sum of `qty_delta` (receipts positive, sales negative).
- `payments` + `payment_events`: a cart about to be paid, then its events: "sent" (STAN),
  and exactly one closing event: "approved" (RRN), "declined", "reversed" or "abandoned".
- `sales`: one per approved purchase, unique per (terminal, RRN). Only the masked PAN and a
  keyed hash of the PAN (`card_ref`, to count KPM served) are kept, never the PAN.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    text,
)

from shared.migrate import NAMING_CONVENTION

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# Row ids that may grow past 2**31 on PostgreSQL; SQLite needs INTEGER for its rowid alias.
BigId = BigInteger().with_variant(Integer, "sqlite")

# Stock movement kinds
RECEIPT = "receipt"
SALE = "sale"
VOID = "void"  # the goods of a sale voided at the EDC (PEMBATALAN), back on the shelf
MOVEMENT_KINDS = (RECEIPT, SALE, VOID)

# Payment event statuses
SENT = "sent"
APPROVED = "approved"
DECLINED = "declined"
REVERSED = "reversed"
ABANDONED = "abandoned"
CLOSING_STATUSES = (APPROVED, DECLINED, REVERSED, ABANDONED)
STATUSES = (SENT, *CLOSING_STATUSES)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


ewarongs = Table(
    "ewarongs",
    metadata,
    Column("id", String(15), primary_key=True),
    Column("bank_code", String(10), nullable=False),
    Column("name", String(100), nullable=False),
    Column("opened_at", DateTime, nullable=False),
)

products = Table(
    "products",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ewarong_id", ForeignKey("ewarongs.id"), nullable=False),
    Column("sku", String(16), nullable=False),
    Column("name", String(60), nullable=False),
    Column("food_group", String(20), nullable=False),
    Column("unit", String(10), nullable=False),
    Column("price_idr", BigInteger, nullable=False),
    Column("het_idr", BigInteger, nullable=False),
    Column("forbidden_reason", String(200), nullable=True),
    Column("added_at", DateTime, nullable=False),
    UniqueConstraint("ewarong_id", "sku", name="uq_products_ewarong_sku"),
)

stock_movements = Table(
    "stock_movements",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("ewarong_id", ForeignKey("ewarongs.id"), nullable=False),
    Column("sku", String(16), nullable=False),
    Column("qty_delta", Integer, nullable=False),
    Column("kind", String(10), nullable=False),
    Column("sale_id", ForeignKey("sales.id"), nullable=True),
    Column("at", DateTime, nullable=False),
    CheckConstraint(_in("kind", MOVEMENT_KINDS), name="kind"),
    CheckConstraint("qty_delta <> 0", name="qty_nonzero"),
    CheckConstraint(
        "(kind = 'receipt' AND qty_delta > 0 AND sale_id IS NULL)"
        " OR (kind = 'sale' AND qty_delta < 0 AND sale_id IS NOT NULL)"
        " OR (kind = 'void' AND qty_delta > 0 AND sale_id IS NOT NULL)",
        name="kind_shape",
    ),
    Index("ix_stock_movements_ewarong_sku", "ewarong_id", "sku"),
    Index("ix_stock_movements_sale", "sale_id"),
)

payments = Table(
    "payments",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("ewarong_id", ForeignKey("ewarongs.id"), nullable=False),
    Column("terminal_id", String(8), nullable=False),
    Column("amount_idr", BigInteger, nullable=False),
    Column("lines", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
    CheckConstraint("amount_idr > 0", name="amount_positive"),
    Index("ix_payments_terminal", "terminal_id", "id"),
    Index("ix_payments_ewarong", "ewarong_id", "id"),
)

payment_events = Table(
    "payment_events",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("payment_id", ForeignKey("payments.id"), nullable=False),
    Column("status", String(10), nullable=False),
    Column("stan", String(6), nullable=True),
    Column("rrn", String(12), nullable=True),
    Column("rc", String(2), nullable=True),
    Column("reason", String(200), nullable=True),
    Column("at", DateTime, nullable=False),
    CheckConstraint(_in("status", STATUSES), name="status"),
    Index("ix_payment_events_payment", "payment_id", "id"),
    # A payment is closed once: at most one closing event.
    Index(
        "uq_payment_events_closed",
        "payment_id",
        unique=True,
        sqlite_where=text("status <> 'sent'"),
        postgresql_where=text("status <> 'sent'"),
    ),
)

sales = Table(
    "sales",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("ewarong_id", ForeignKey("ewarongs.id"), nullable=False),
    Column("terminal_id", String(8), nullable=False),
    Column("payment_id", ForeignKey("payments.id"), nullable=True, unique=True),
    Column("rrn", String(12), nullable=False),
    Column("stan", String(6), nullable=False),
    Column("approval_code", String(6), nullable=False),
    Column("pan_masked", String(19), nullable=False),
    Column("card_ref", String(64), nullable=False),
    Column("amount_idr", BigInteger, nullable=False),
    Column("lines", JSON, nullable=False),
    Column("at", DateTime, nullable=False),
    CheckConstraint("amount_idr > 0", name="amount_positive"),
    UniqueConstraint("terminal_id", "rrn", name="uq_sales_terminal_rrn"),
    Index("ix_sales_ewarong_at", "ewarong_id", "at"),
)

# A sale voided at the EDC (PEMBATALAN approved): appended once per sale, never updated. Its goods
# come back as stock movements of kind 'void'; reports leave the sale out.
sale_voids = Table(
    "sale_voids",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("sale_id", ForeignKey("sales.id"), nullable=False, unique=True),
    Column("at", DateTime, nullable=False),
)
