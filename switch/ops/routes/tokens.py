"""Ops API tokens, for admins: create (the token is in the answer, once), list and revoke.

A bank's admin manages the tokens of its own bank only: it creates tokens scoped to its bank
(403 for another scope), lists those, and gets 404 for another bank's token. The switch
operator's admin manages them all. Creating and revoking append an audit record.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.exc import IntegrityError

from shared.banks import BANK_CODES
from switch.ops import access
from switch.ops.access import SWITCH_SCOPE, AccessError, TokenRecord
from switch.ops.deps import Admin, Now, OpsJournal, ReadConn, own_bank
from switch.ops.routes.common import PAGE_MAX, ActionReason, WibTime, mask_text
from switch.ops.routes.problems import CONFLICT, GUARDED, NOT_FOUND, WITH_BODY
from switch.tables import ROLES

router = APIRouter(prefix="/v1/tokens", tags=["tokens"], responses=GUARDED)

Role = Literal[ROLES]  # type: ignore[valid-type]
Scope = Literal[(SWITCH_SCOPE, *BANK_CODES)]  # type: ignore[valid-type]
TokenId = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", description="The token's public id")]
Label = Annotated[str, StringConstraints(max_length=access.LABEL_CHARS_MAX, pattern=access.PLAIN_TEXT_PATTERN)]


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    scope: Scope = Field(description="A bank code (that bank's cards and terminals only) or 'switch' (every bank)")
    label: Label = Field(default="", description="Whose token, or what for")
    expires_in_days: int | None = Field(default=None, ge=1, le=access.EXPIRY_DAYS_MAX, description="None: never expires")


class TokenPublic(BaseModel):
    id: str
    role: str
    scope: str
    label: str
    created_by: str
    created_at: WibTime
    expires_at: WibTime | None
    revoked_at: WibTime | None
    revoked_by: str | None
    state: Literal["active", "expired", "revoked"]


class TokenIssued(TokenPublic):
    token: str = Field(description="The token itself, shown this once: keep it safe, it is not stored")


def token_public(record: TokenRecord, now) -> TokenPublic:  # noqa: ANN001
    return TokenPublic(
        id=record.id, role=record.role, scope=record.bank or SWITCH_SCOPE, label=mask_text(record.label),
        created_by=record.created_by, created_at=record.created_at, expires_at=record.expires_at,
        revoked_at=record.revoked_at, revoked_by=record.revoked_by, state=record.state(now),
    )


@router.post("", status_code=201, responses=WITH_BODY)
def create(principal: Admin, body: TokenCreate, journal: OpsJournal, now: Now, response: Response) -> TokenIssued:
    """A new token; the answer holds it, once (not cached)."""
    bank = None if body.scope == SWITCH_SCOPE else body.scope
    if principal.bank is not None and bank != principal.bank:
        own_bank(principal, bank or SWITCH_SCOPE, "scope")
    expires_in = timedelta(days=body.expires_in_days) if body.expires_in_days is not None else None
    at = now()
    with journal.db.begin() as conn:
        issued = access.create_token(conn, body.role, bank, body.label, principal.token_id, at, expires_in)
    response.headers["Cache-Control"] = "no-store"
    return TokenIssued(**token_public(issued.record, at).model_dump(), token=issued.token)


@router.get("")
def tokens(
    principal: Admin, conn: ReadConn, now: Now, limit: Annotated[int, Query(ge=1, le=PAGE_MAX, description="Newest first")] = 100
) -> list[TokenPublic]:
    at = now()
    return [token_public(record, at) for record in access.list_tokens(conn, principal.bank, limit)]


@router.post("/{token_id}/revoke", responses={**NOT_FOUND, **CONFLICT, **WITH_BODY})
def revoke(principal: Admin, token_id: TokenId, body: ActionReason, journal: OpsJournal, now: Now) -> TokenPublic:
    """Revoke a token for good: it is refused (401) from now on."""
    at = now()
    try:
        with journal.db.begin() as conn:
            record = access.token_record(conn, token_id)
            if record is None or not principal.sees_bank(record.bank):
                raise HTTPException(404, f"no token {token_id}")
            revoked = access.revoke_token(conn, token_id, principal.token_id, mask_text(body.reason), at)
    except (AccessError, IntegrityError):  # revoked already (or meanwhile, by another admin)
        raise HTTPException(409, f"token {token_id} was revoked already") from None
    return token_public(revoked, at)
