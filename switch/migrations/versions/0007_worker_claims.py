"""request_claims, request_claim_releases, saf_claims: several switch processes on one database

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 13:40:00

With `--workers N` (N > 1) the switch processes share one journal: a financial request is sent to
the bank by the process that claims it first (`request_claims`; a claim whose answer was not final
is released by a `request_claim_releases` row), and a store-and-forward entry is sent by the
process holding a lease on it (`saf_claims`). All three are append-only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('request_claims',
    sa.Column('id', _ID, nullable=False),
    sa.Column('tid', sa.String(length=8), nullable=False),
    sa.Column('stan', sa.String(length=6), nullable=False),
    sa.Column('transmission_date', sa.Date(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('worker', sa.Integer(), nullable=False),
    sa.Column('rrn', sa.String(length=12), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('inquiry', 'purchase', 'advice', 'reversal')", name=op.f('ck_request_claims_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_request_claims')),
    sa.UniqueConstraint('tid', 'stan', 'transmission_date', 'kind', 'round', name='uq_request_claims_key')
    )
    op.create_table('request_claim_releases',
    sa.Column('claim_id', _ID, nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['claim_id'], ['request_claims.id'], name=op.f('fk_request_claim_releases_claim_id_request_claims')),
    sa.PrimaryKeyConstraint('claim_id', name=op.f('pk_request_claim_releases'))
    )
    op.create_table('saf_claims',
    sa.Column('id', _ID, nullable=False),
    sa.Column('saf_id', _ID, nullable=False),
    sa.Column('worker', sa.Integer(), nullable=False),
    sa.Column('until', sa.DateTime(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['saf_id'], ['saf_entries.id'], name=op.f('fk_saf_claims_saf_id_saf_entries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_saf_claims'))
    )
    with op.batch_alter_table('saf_claims', schema=None) as batch_op:
        batch_op.create_index('ix_saf_claims_entry', ['saf_id', 'until'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('saf_claims', schema=None) as batch_op:
        batch_op.drop_index('ix_saf_claims_entry')
    op.drop_table('saf_claims')
    op.drop_table('request_claim_releases')
    op.drop_table('request_claims')
