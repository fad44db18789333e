"""Tokens of the ops API: roles, bank scope, hashed secrets, expiry and revocation.

A token reads `sops_<id>.<secret>`: `id` is its public id (12 hex digits, shown in lists and
the audit log), `secret` 32 random bytes from `secrets` (base64url). Only the SHA-256 of the
secret is stored; a token is found by its id and its secret compared by hash in constant time
(`hmac.compare_digest`). The token itself is shown once, when it is created.

- Roles: `viewer` reads; `operator` also acts (retry or cancel a SAF reversal, block or unblock
  a terminal, ask a bank to reset a PIN); `admin` also manages tokens and reads the audit log.
- Scope: one bank (`bni`, `bri`, `mandiri`, `btn`: that bank's cards and terminals only) or the
  switch operator (every bank; stored as NULL, shown as "switch").
- Expiry is optional; a revocation is a row of its own, never an update.

Creating and revoking a token append a record to the audit log (switch.ops.audit) in the same
database transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, insert, select

from shared.banks import BANK_CODES
from switch.ops import audit
from switch.tables import ROLES, OpsToken, OpsTokenRevocation

TOKEN_PREFIX = "sops_"
ID_BYTES = 6
SECRET_BYTES = 32
TOKEN_CHARS_MAX = 128  # longer Authorization values are refused unread
LABEL_CHARS_MAX = 100
REASON_CHARS_MAX = 200
EXPIRY_DAYS_MAX = 3_650
CLI_ACTOR = "cli"
SWITCH_SCOPE = "switch"  # how the switch operator's scope (all banks) is written
RANK = {role: rank for rank, role in enumerate(ROLES)}
_TOKEN = re.compile(r"sops_([0-9a-f]{12})\.([A-Za-z0-9_-]{43})")
_DURATION = re.compile(r"([1-9][0-9]{0,6})([mhd])")
_UNIT = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
_DUMMY_HASH = hashlib.sha256(b"no such token").hexdigest()
PLAIN_TEXT_PATTERN = r"^[^\x00-\x1F\x7F-\x9F]*$"  # any script, no control characters
_PLAIN_TEXT = re.compile(PLAIN_TEXT_PATTERN)

_tokens = OpsToken.__table__
_revocations = OpsTokenRevocation.__table__


class AccessError(ValueError):
    """A token request that cannot be done; the message says why, plainly."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a token's id, role and bank scope (None: the switch operator)."""

    token_id: str
    role: str
    bank: str | None

    def has_role(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]

    def sees_bank(self, bank: str | None) -> bool:
        """Whether `bank` (None: switch-wide matters) is within this token's scope."""
        return self.bank is None or bank == self.bank

    @property
    def scope(self) -> str:
        return self.bank or SWITCH_SCOPE


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    role: str
    bank: str | None
    label: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"

    def public(self) -> dict:
        """What the audit log keeps of a token (never its secret or its hash)."""
        return {"id": self.id, "role": self.role, "scope": self.bank or SWITCH_SCOPE, "label": self.label,
                "expires_at": self.expires_at, "revoked_at": self.revoked_at}


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str  # shown once
    record: TokenRecord


# -- values ---------------------------------------------------------------------------------------


def parse_scope(text: str) -> str | None:
    """A bank code, or "switch" for every bank (None)."""
    value = text.strip().lower()
    if value == SWITCH_SCOPE:
        return None
    if value not in BANK_CODES:
        raise AccessError(f"scope must be one of {', '.join(BANK_CODES)} or {SWITCH_SCOPE}, not {text!r}")
    return value


def parse_role(text: str) -> str:
    value = text.strip().lower()
    if value not in ROLES:
        raise AccessError(f"role must be one of {', '.join(ROLES)}, not {text!r}")
    return value


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h` or `90m`: at least a minute, at most EXPIRY_DAYS_MAX days."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise AccessError(f"expiry must be a number and a unit, e.g. 30d, 12h or 90m, not {text!r}")
    duration = int(match.group(1)) * _UNIT[match.group(2)]
    if duration > timedelta(days=EXPIRY_DAYS_MAX):
        raise AccessError(f"expiry must be at most {EXPIRY_DAYS_MAX} days")
    return duration


def _label(text: str) -> str:
    if len(text) > LABEL_CHARS_MAX or not _PLAIN_TEXT.fullmatch(text):
        raise AccessError(f"label must be text without control characters, at most {LABEL_CHARS_MAX} characters")
    return text


def _reason(text: str) -> str:
    if not 1 <= len(text) <= REASON_CHARS_MAX or not _PLAIN_TEXT.fullmatch(text):
        raise AccessError(f"reason must be text without control characters, 1 to {REASON_CHARS_MAX} characters")
    return text


def secret_sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_token(text: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token, else None."""
    if len(text) > TOKEN_CHARS_MAX:
        return None
    match = _TOKEN.fullmatch(text)
    return (match.group(1), match.group(2)) if match else None


# -- storage --------------------------------------------------------------------------------------

_RECORDS = (
    select(
        _tokens.c.id, _tokens.c.role, _tokens.c.bank_code, _tokens.c.label, _tokens.c.created_by,
        _tokens.c.created_at, _tokens.c.expires_at, _revocations.c.at.label("revoked_at"), _revocations.c.revoked_by,
    )
    .select_from(_tokens.outerjoin(_revocations, _revocations.c.token_id == _tokens.c.id))
)


def _record(row) -> TokenRecord:  # noqa: ANN001
    return TokenRecord(row.id, row.role, row.bank_code, row.label, row.created_by, row.created_at, row.expires_at,
                       row.revoked_at, row.revoked_by)


def create_token(conn: Connection, role: str, bank: str | None, label: str, actor: str, now: datetime,
                 expires_in: timedelta | None = None) -> IssuedToken:
    """A new token (and its audit record); `bank` None: the switch operator."""
    role, label = parse_role(role), _label(label)
    if bank is not None:
        bank = parse_scope(bank)
    token_id, secret = secrets.token_hex(ID_BYTES), secrets.token_urlsafe(SECRET_BYTES)
    expires_at = now + expires_in if expires_in is not None else None
    conn.execute(insert(_tokens), {
        "id": token_id, "secret_sha256": secret_sha256(secret), "role": role, "bank_code": bank, "label": label,
        "created_by": actor, "created_at": now, "expires_at": expires_at,
    })
    record = TokenRecord(token_id, role, bank, label, actor, now, expires_at)
    audit.append(conn, actor, "token.create", f"token/{token_id}", bank, None, record.public(), now)
    return IssuedToken(f"{TOKEN_PREFIX}{token_id}.{secret}", record)


def token_record(conn: Connection, token_id: str) -> TokenRecord | None:
    row = conn.execute(_RECORDS.where(_tokens.c.id == token_id)).one_or_none()
    return _record(row) if row is not None else None


def list_tokens(conn: Connection, bank: str | None = None, limit: int = 1_000) -> list[TokenRecord]:
    """Tokens, newest first; only those scoped to `bank` when given."""
    query = _RECORDS.order_by(_tokens.c.created_at.desc(), _tokens.c.id).limit(limit)
    if bank is not None:
        query = query.where(_tokens.c.bank_code == bank)
    return [_record(row) for row in conn.execute(query)]


def revoke_token(conn: Connection, token_id: str, actor: str, reason: str, now: datetime) -> TokenRecord:
    """Revoke a token (and record it); AccessError when there is none or it is revoked already."""
    reason = _reason(reason)
    before = token_record(conn, token_id)
    if before is None:
        raise AccessError(f"no token {token_id}")
    if before.revoked_at is not None:
        raise AccessError(f"token {token_id} was revoked already")
    conn.execute(insert(_revocations), {"token_id": token_id, "revoked_by": actor, "reason": reason, "at": now})
    after = token_record(conn, token_id)
    assert after is not None
    audit.append(conn, actor, "token.revoke", f"token/{token_id}", before.bank, before.public(), {**after.public(), "reason": reason}, now)
    return after


_SECRET_OF = select(
    _tokens.c.secret_sha256, _tokens.c.role, _tokens.c.bank_code, _tokens.c.expires_at, _revocations.c.at.label("revoked_at")
).select_from(_tokens.outerjoin(_revocations, _revocations.c.token_id == _tokens.c.id))


def authenticate(conn: Connection, text: str, now: datetime) -> Principal | str:
    """The principal of a token, or why it is refused (a sentence)."""
    parsed = parse_token(text)
    token_id, secret = parsed if parsed is not None else ("", "")
    row = conn.execute(_SECRET_OF.where(_tokens.c.id == token_id)).one_or_none() if parsed else None
    # Compared whether or not the id exists: the answer takes as long for a stranger.
    matches = hmac.compare_digest(row.secret_sha256 if row is not None else _DUMMY_HASH, secret_sha256(secret))
    if row is None or not matches:
        return "invalid token"
    if row.revoked_at is not None:
        return f"token {token_id} was revoked"
    if row.expires_at is not None and now >= row.expires_at:
        return f"token {token_id} expired"
    return Principal(token_id, row.role, row.bank_code)
