"""ops access: API tokens, terminal blocks, SAF cancellations and the audit chain

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 09:00:00

The switch's operations API takes bearer tokens (switch.ops.access): `ops_tokens` keeps each
token's public id, the SHA-256 of its secret, its role (viewer, operator, admin) and bank scope
(NULL: the switch operator); a revocation is a row of `ops_token_revocations`. Operator actions
the switch honours are rows too: `terminal_blocks` (the newest row of a terminal says whether it
is blocked) and `saf_cancellations` (a reversal no longer sent). `ops_audit` is the hash-chained
log of every operator and admin action (switch.ops.audit). Every table is append-only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ops_audit',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('target', sa.String(length=60), nullable=False),
    sa.Column('bank_code', sa.String(length=10), nullable=True),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_ops_audit')),
    sa.UniqueConstraint('hash', name=op.f('uq_ops_audit_hash')),
    sa.UniqueConstraint('prev_hash', name=op.f('uq_ops_audit_prev_hash'))
    )
    with op.batch_alter_table('ops_audit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ops_audit_bank_code'), ['bank_code'], unique=False)

    op.create_table('ops_tokens',
    sa.Column('id', sa.String(length=16), nullable=False),
    sa.Column('secret_sha256', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=10), nullable=False),
    sa.Column('bank_code', sa.String(length=10), nullable=True),
    sa.Column('label', sa.String(length=100), nullable=False),
    sa.Column('created_by', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("role IN ('viewer', 'operator', 'admin')", name=op.f('ck_ops_tokens_role')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ops_tokens'))
    )
    op.create_table('ops_token_revocations',
    sa.Column('token_id', sa.String(length=16), nullable=False),
    sa.Column('revoked_by', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['token_id'], ['ops_tokens.id'], name=op.f('fk_ops_token_revocations_token_id_ops_tokens')),
    sa.PrimaryKeyConstraint('token_id', name=op.f('pk_ops_token_revocations'))
    )
    op.create_table('saf_cancellations',
    sa.Column('saf_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('actor', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['saf_id'], ['saf_entries.id'], name=op.f('fk_saf_cancellations_saf_id_saf_entries')),
    sa.PrimaryKeyConstraint('saf_id', name=op.f('pk_saf_cancellations'))
    )
    op.create_table('terminal_blocks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tid', sa.String(length=8), nullable=False),
    sa.Column('blocked', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('actor', sa.String(length=16), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tid'], ['terminals.tid'], name=op.f('fk_terminal_blocks_tid_terminals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_terminal_blocks'))
    )
    with op.batch_alter_table('terminal_blocks', schema=None) as batch_op:
        batch_op.create_index('ix_terminal_blocks_latest', ['tid', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('terminal_blocks', schema=None) as batch_op:
        batch_op.drop_index('ix_terminal_blocks_latest')

    op.drop_table('terminal_blocks')
    op.drop_table('saf_cancellations')
    op.drop_table('ops_token_revocations')
    op.drop_table('ops_tokens')
    with op.batch_alter_table('ops_audit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ops_audit_bank_code'))

    op.drop_table('ops_audit')
