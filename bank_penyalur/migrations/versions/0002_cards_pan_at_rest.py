"""cards: no card number in clear; keyed hash (lookups), masked and sealed PAN instead

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 13:00:00

`cards.pan` held every card number in clear, and cards were found by it. From this revision a
card is found by `pan_ref` (HMAC-SHA256 of the PAN under the PAN hash key, unique, so indexed),
shown by `pan_masked` (first 6 / last 4) and its number kept only sealed in `pan_sealed`
(AES-GCM under the PAN key). Existing cards are carried over with the keys the bank runs on:
the bank's HSM is handed to the migration in `config.attributes["hsm"]` (see
`bank_penyalur.migrate.upgrade`); a bank with cards cannot take this step without it. Then the
clear column goes, and the table is rewritten so that the clear numbers do not stay in its
pages (PostgreSQL: CLUSTER; SQLite: the batch rebuild, with freed pages zeroed by
`bank_penyalur.migrate`). No other table held a full PAN (authorisation records and the operations
audit keep the masked PAN and the card id).

Downgrade opens the sealed numbers again (with the HSM) and puts the clear column back.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from shared.cards import mask_pan

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

CHUNK = 5_000

_cards = sa.table(
    'cards',
    sa.column('id', sa.Integer),
    sa.column('pan', sa.String),
    sa.column('pan_ref', sa.String),
    sa.column('pan_masked', sa.String),
    sa.column('pan_sealed', sa.String),
)


def _hsm(conn: sa.Connection, purpose: str):  # noqa: ANN202
    hsm = context.config.attributes.get('hsm')
    if hsm is None:
        has_cards = conn.execute(sa.select(sa.func.count()).select_from(_cards)).scalar_one()
        if has_cards:
            raise RuntimeError(
                f"migration 0002 {purpose} existing cards with the bank's PAN keys: run it through "
                "bank_penyalur.migrate.upgrade(db, hsm=...) (the bank does at start)"
            )
    return hsm


def _rows(conn: sa.Connection, *columns: sa.ColumnClause):  # noqa: ANN202
    """All cards in id order, a chunk at a time (keyset paging: safe while rows are updated)."""
    last = 0
    while True:
        chunk = conn.execute(
            sa.select(_cards.c.id, *columns).where(_cards.c.id > last).order_by(_cards.c.id).limit(CHUNK)
        ).all()
        if not chunk:
            return
        yield chunk
        last = chunk[-1][0]


def _settle(conn: sa.Connection) -> None:
    """After the rebuild of `cards`. SQLite rebuilt it with foreign keys unenforced: prove
    nothing dangles. PostgreSQL only hides a dropped column and keeps the old row versions:
    rewrite the table (CLUSTER) so that no clear card number stays in its pages."""
    if conn.dialect.name == 'sqlite':
        broken = conn.exec_driver_sql('PRAGMA foreign_key_check').all()
        if broken:
            raise RuntimeError(f'foreign keys broken by the rebuild of cards: {broken[:5]}')
    elif conn.dialect.name == 'postgresql':
        op.execute('CLUSTER cards USING pk_cards')
        op.execute('ALTER TABLE cards SET WITHOUT CLUSTER')


def upgrade() -> None:
    conn = op.get_bind()
    hsm = _hsm(conn, 'hashes and seals')
    with op.batch_alter_table('cards', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pan_ref', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('pan_masked', sa.String(length=19), nullable=True))
        batch_op.add_column(sa.Column('pan_sealed', sa.String(length=80), nullable=True))

    update = (
        sa.update(_cards)
        .where(_cards.c.id == sa.bindparam('card_id'))
        .values(pan_ref=sa.bindparam('ref'), pan_masked=sa.bindparam('masked'), pan_sealed=sa.bindparam('sealed'))
    )
    for chunk in _rows(conn, _cards.c.pan):
        conn.execute(
            update,
            [
                {'card_id': card_id, 'ref': hsm.pan_ref(pan), 'masked': mask_pan(pan), 'sealed': hsm.encrypt_pan(pan)}
                for card_id, pan in chunk
            ],
        )

    with op.batch_alter_table('cards', schema=None) as batch_op:
        batch_op.alter_column('pan_ref', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('pan_masked', existing_type=sa.String(length=19), nullable=False)
        batch_op.alter_column('pan_sealed', existing_type=sa.String(length=80), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_cards_pan_ref'), ['pan_ref'])
        batch_op.drop_constraint(batch_op.f('uq_cards_pan'), type_='unique')
        batch_op.drop_column('pan')
    _settle(conn)


def downgrade() -> None:
    conn = op.get_bind()
    hsm = _hsm(conn, 'opens the sealed numbers of')
    with op.batch_alter_table('cards', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pan', sa.String(length=19), nullable=True))

    update = sa.update(_cards).where(_cards.c.id == sa.bindparam('card_id')).values(pan=sa.bindparam('clear'))
    for chunk in _rows(conn, _cards.c.pan_sealed):
        conn.execute(update, [{'card_id': card_id, 'clear': hsm.decrypt_pan(sealed)} for card_id, sealed in chunk])

    with op.batch_alter_table('cards', schema=None) as batch_op:
        batch_op.alter_column('pan', existing_type=sa.String(length=19), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_cards_pan'), ['pan'])
        batch_op.drop_constraint(batch_op.f('uq_cards_pan_ref'), type_='unique')
        batch_op.drop_column('pan_sealed')
        batch_op.drop_column('pan_masked')
        batch_op.drop_column('pan_ref')
    _settle(conn)
