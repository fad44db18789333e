"""transactions.pan_hash: search by a keyed hash of the full PAN, not by its masked form

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 12:30:00

Masked PANs are shared by many cards (every bank's PANs begin 936000), so the ops API now
finds a card's transactions by an HMAC-SHA256 of its full PAN, written with every new row.
Rows journalled before this revision only ever held the masked PAN: the full one cannot be
recovered, so their `pan_hash` stays NULL and a PAN search does not find them (search them by
RRN, terminal, merchant or time instead). The index on `pan_masked` goes: nothing searches it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pan_hash', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_transactions_pan_hash'), ['pan_hash'], unique=False)
        batch_op.drop_index(batch_op.f('ix_transactions_pan_masked'))


def downgrade() -> None:
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transactions_pan_masked'), ['pan_masked'], unique=False)
        batch_op.drop_index(batch_op.f('ix_transactions_pan_hash'))
        batch_op.drop_column('pan_hash')
