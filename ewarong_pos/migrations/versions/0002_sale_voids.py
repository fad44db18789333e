"""sale voids: a sale voided at the EDC, and its goods back on the shelf

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07 11:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
SHAPE_0001 = (
    "(kind = 'receipt' AND qty_delta > 0 AND sale_id IS NULL) OR (kind = 'sale' AND qty_delta < 0 AND sale_id IS NOT NULL)"
)
SHAPE_0002 = f"{SHAPE_0001} OR (kind = 'void' AND qty_delta > 0 AND sale_id IS NOT NULL)"
KINDS_0001 = "kind IN ('receipt', 'sale')"
KINDS_0002 = "kind IN ('receipt', 'sale', 'void')"


def _stock_movements(kinds: str, shape: str) -> sa.Table:
    """stock_movements as a revision leaves it: SQLite rebuilds the table from this (batch mode
    cannot read CHECK constraints back), PostgreSQL alters it in place."""
    return sa.Table(
        "stock_movements",
        sa.MetaData(),
        sa.Column("id", BigId, primary_key=True),
        sa.Column("ewarong_id", sa.String(15), sa.ForeignKey("ewarongs.id", name="fk_stock_movements_ewarong_id_ewarongs"), nullable=False),
        sa.Column("sku", sa.String(16), nullable=False),
        sa.Column("qty_delta", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("sale_id", BigId, sa.ForeignKey("sales.id", name="fk_stock_movements_sale_id_sales"), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(shape, name="ck_stock_movements_kind_shape"),
        sa.CheckConstraint(kinds, name="ck_stock_movements_kind"),
        sa.CheckConstraint("qty_delta <> 0", name="ck_stock_movements_qty_nonzero"),
        sa.PrimaryKeyConstraint("id", name="pk_stock_movements"),
        sa.Index("ix_stock_movements_ewarong_sku", "ewarong_id", "sku"),
        sa.Index("ix_stock_movements_sale", "sale_id"),
    )


def _checks(kinds_from: str, shape_from: str, kinds_to: str, shape_to: str) -> None:
    with op.batch_alter_table("stock_movements", copy_from=_stock_movements(kinds_from, shape_from)) as batch_op:
        batch_op.drop_constraint(op.f("ck_stock_movements_kind_shape"), type_="check")
        batch_op.drop_constraint(op.f("ck_stock_movements_kind"), type_="check")
        batch_op.create_check_constraint(op.f("ck_stock_movements_kind_shape"), sa.text(shape_to))
        batch_op.create_check_constraint(op.f("ck_stock_movements_kind"), sa.text(kinds_to))


def upgrade() -> None:
    op.create_table(
        "sale_voids",
        sa.Column("id", BigId, nullable=False),
        sa.Column("sale_id", BigId, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["sale_id"], ["sales.id"], name=op.f("fk_sale_voids_sale_id_sales")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sale_voids")),
        sa.UniqueConstraint("sale_id", name=op.f("uq_sale_voids_sale_id")),
    )
    _checks(KINDS_0001, SHAPE_0001, KINDS_0002, SHAPE_0002)


def downgrade() -> None:
    op.execute("DELETE FROM stock_movements WHERE kind = 'void'")
    _checks(KINDS_0002, SHAPE_0002, KINDS_0001, SHAPE_0001)
    op.drop_table("sale_voids")
