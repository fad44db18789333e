"""het_attempts: sales above HET reported by the e-Warong POS

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 15:00:00

The e-Warong's POS refuses goods priced above their HET (Harga Eceran Tertinggi) and reports
each refusal to the switch's ops API (`POST /v1/het-attempts`, best effort); `het_attempts` keeps
them, append-only, for the `above_het` alert (switch.alerts).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('het_attempts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tid', sa.String(length=8), nullable=False),
    sa.Column('mid', sa.String(length=15), nullable=False),
    sa.Column('sku', sa.String(length=16), nullable=False),
    sa.Column('product_name', sa.String(length=60), nullable=False),
    sa.Column('unit', sa.String(length=10), nullable=False),
    sa.Column('price_idr', sa.BigInteger(), nullable=False),
    sa.Column('het_idr', sa.BigInteger(), nullable=False),
    sa.Column('qty', sa.Integer(), nullable=False),
    sa.Column('attempted_at', sa.DateTime(), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint('price_idr > het_idr', name=op.f('ck_het_attempts_above_het')),
    sa.CheckConstraint('het_idr >= 0', name=op.f('ck_het_attempts_het_not_negative')),
    sa.CheckConstraint('qty >= 1', name=op.f('ck_het_attempts_qty_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_het_attempts'))
    )
    with op.batch_alter_table('het_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_het_attempts_merchant', ['mid', 'received_at'], unique=False)
        batch_op.create_index('ix_het_attempts_received', ['received_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('het_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_het_attempts_received')
        batch_op.drop_index('ix_het_attempts_merchant')

    op.drop_table('het_attempts')
