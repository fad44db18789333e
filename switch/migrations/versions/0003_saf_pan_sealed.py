"""saf_entries.pan_sealed: the card number of a stored reversal rests only enciphered

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 10:00:00

Until now a stored reversal kept its bank request in `body` with the full PAN in clear (so a
retry could name the card). The PAN now rests sealed in `pan_sealed`: AES-GCM under the switch's
PAN key (SEMBAKO_SWITCH_PAN_KEY_HEX, demo key when unset), associated data "saf/<rrn>", format
"v1:" + base64url(nonce + ciphertext + tag), as switch.hsm.seal_pan; `body["pan"]` keeps only the
masked PAN. Existing rows are carried over with the key in effect, which the caller hands over
in the Alembic config attribute `switch_pan_key_hex` (switch.migrate.upgrade does). On SQLite
the rewritten pages are overwritten (secure_delete), so no copy of the clear PAN stays in the file.

The format is written out here, not imported, so that this revision keeps working whatever
becomes of the application code.
"""

from __future__ import annotations

import base64
import os

import sqlalchemy as sa
from alembic import context, op
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

PAN_KEY_ATTRIBUTE = "switch_pan_key_hex"
_PREFIX = "v1:"
_NONCE_BYTES = 12

_saf = sa.table(
    "saf_entries",
    sa.column("id", sa.BigInteger()),
    sa.column("rrn", sa.String()),
    sa.column("body", sa.JSON()),
    sa.column("pan_sealed", sa.String()),
)


def _key() -> bytes:
    key_hex = context.config.attributes.get(PAN_KEY_ATTRIBUTE)
    if not key_hex:
        raise RuntimeError(
            f"migration 0003 needs the switch's PAN key: run it through switch.migrate.upgrade, or set the "
            f"Alembic config attribute {PAN_KEY_ATTRIBUTE!r}"
        )
    return bytes.fromhex(key_hex)


def _mask(pan: str) -> str:
    if len(pan) < 13:
        return "*" * len(pan)
    return f"{pan[:6]}{'*' * (len(pan) - 10)}{pan[-4:]}"


def _seal(aead: AESGCM, pan: str, rrn: str) -> str:
    nonce = os.urandom(_NONCE_BYTES)
    sealed = aead.encrypt(nonce, pan.encode("ascii"), f"saf/{rrn}".encode())
    return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def _open(aead: AESGCM, sealed: str, rrn: str) -> str:
    raw = base64.urlsafe_b64decode(sealed[len(_PREFIX):].encode("ascii"))
    return aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], f"saf/{rrn}".encode()).decode("ascii")


def _secure_delete() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        bind.exec_driver_sql("PRAGMA secure_delete = ON")


def upgrade() -> None:
    _secure_delete()
    with op.batch_alter_table('saf_entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pan_sealed', sa.String(length=120), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(sa.select(_saf.c.id, _saf.c.rrn, _saf.c.body)).all()
    if rows:
        aead = AESGCM(_key())
        for row in rows:
            body = dict(row.body)
            pan = str(body.get("pan", ""))
            body["pan"] = _mask(pan)
            bind.execute(sa.update(_saf).where(_saf.c.id == row.id).values(body=body, pan_sealed=_seal(aead, pan, row.rrn)))
    with op.batch_alter_table('saf_entries', schema=None) as batch_op:
        batch_op.alter_column('pan_sealed', existing_type=sa.String(length=120), nullable=False)


def downgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.select(_saf.c.id, _saf.c.rrn, _saf.c.body, _saf.c.pan_sealed)).all()
    if rows:
        aead = AESGCM(_key())
        for row in rows:
            body = {**row.body, "pan": _open(aead, row.pan_sealed, row.rrn)}
            bind.execute(sa.update(_saf).where(_saf.c.id == row.id).values(body=body))
    with op.batch_alter_table('saf_entries', schema=None) as batch_op:
        batch_op.drop_column('pan_sealed')
