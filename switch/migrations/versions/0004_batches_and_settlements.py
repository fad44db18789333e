"""batches: transactions.batch, settlements and batch_uploads

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 14:10:00

Terminals close their batches with 0500 and detail them with 0320 (DESIGN.md, "Batches, as on
bank EDCs"). Every financial transaction row now records the batch its request carried in
field 60 (`transactions.batch`, indexed with the terminal); rows journalled before this
revision keep NULL (their batch is not known). `settlements` records each settlement decision
(at most one closing row, rc 00, per terminal and batch); `batch_uploads` records each
transaction a terminal detailed, once. Both are append-only, as every table of the journal.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_CLOSED = sa.text("rc = '00'")


def upgrade() -> None:
    op.create_table('batch_uploads',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tid', sa.String(length=8), nullable=False),
    sa.Column('batch', sa.Integer(), nullable=False),
    sa.Column('stan', sa.String(length=6), nullable=False),
    sa.Column('original_mti', sa.String(length=4), nullable=False),
    sa.Column('pan_masked', sa.String(length=19), nullable=False),
    sa.Column('amount_idr', sa.BigInteger(), nullable=False),
    sa.Column('approval_code', sa.String(length=6), nullable=True),
    sa.Column('rrn', sa.String(length=12), nullable=True),
    sa.Column('transmission_date', sa.Date(), nullable=False),
    sa.Column('transmitted_at', sa.DateTime(), nullable=False),
    sa.Column('original_stan', sa.String(length=6), nullable=True),
    sa.Column('original_date', sa.Date(), nullable=True),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("original_mti IN ('0200', '0220', '0400')", name=op.f('ck_batch_uploads_original_mti')),
    sa.CheckConstraint('amount_idr >= 0', name=op.f('ck_batch_uploads_amount_not_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_batch_uploads')),
    sa.UniqueConstraint('tid', 'batch', 'original_mti', 'stan', 'transmission_date', name='uq_batch_uploads_key')
    )
    with op.batch_alter_table('batch_uploads', schema=None) as batch_op:
        batch_op.create_index('ix_batch_uploads_day', ['transmission_date', 'tid'], unique=False)

    op.create_table('settlements',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tid', sa.String(length=8), nullable=False),
    sa.Column('batch', sa.Integer(), nullable=False),
    sa.Column('stan', sa.String(length=6), nullable=False),
    sa.Column('processing_code', sa.String(length=6), nullable=False),
    sa.Column('terminal_purchase_count', sa.Integer(), nullable=False),
    sa.Column('terminal_purchase_amount_idr', sa.BigInteger(), nullable=False),
    sa.Column('terminal_reversal_count', sa.Integer(), nullable=False),
    sa.Column('terminal_reversal_amount_idr', sa.BigInteger(), nullable=False),
    sa.Column('switch_purchase_count', sa.Integer(), nullable=False),
    sa.Column('switch_purchase_amount_idr', sa.BigInteger(), nullable=False),
    sa.Column('switch_reversal_count', sa.Integer(), nullable=False),
    sa.Column('switch_reversal_amount_idr', sa.BigInteger(), nullable=False),
    sa.Column('rc', sa.String(length=2), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("rc IN ('00', '95', '94')", name=op.f('ck_settlements_rc')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_settlements'))
    )
    with op.batch_alter_table('settlements', schema=None) as batch_op:
        batch_op.create_index('ix_settlements_at', ['at'], unique=False)
        batch_op.create_index('ix_settlements_batch', ['tid', 'batch'], unique=False)
        batch_op.create_index('uq_settlements_closed', ['tid', 'batch'], unique=True, sqlite_where=_CLOSED, postgresql_where=_CLOSED)

    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('batch', sa.Integer(), nullable=True))
        batch_op.create_index('ix_transactions_batch', ['tid', 'batch'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.drop_index('ix_transactions_batch')
        batch_op.drop_column('batch')

    with op.batch_alter_table('settlements', schema=None) as batch_op:
        batch_op.drop_index('uq_settlements_closed', sqlite_where=_CLOSED, postgresql_where=_CLOSED)
        batch_op.drop_index('ix_settlements_batch')
        batch_op.drop_index('ix_settlements_at')

    op.drop_table('settlements')
    with op.batch_alter_table('batch_uploads', schema=None) as batch_op:
        batch_op.drop_index('ix_batch_uploads_day')

    op.drop_table('batch_uploads')
