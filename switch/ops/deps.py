"""Request dependencies: the journal, a read or write connection, the clock, the live statistics
provider, whether the switch runs on demo keys, and who is calling.

Access: every route under /v1 needs `Authorization: Bearer <token>` (switch.ops.access); routes
take the caller as `Viewer`, `Operator` or `Admin`, the lowest role they need. No token, or one
that is unknown, expired or revoked: 401 with `WWW-Authenticate: Bearer` and a JSON `detail`
saying which. A role too low, or a bank outside the token's scope: 403. Open without a token:
`/health` (liveness for supervisors: says nothing about traffic), `/metrics` (the Prometheus
scrape: counters and histograms only, no card, terminal or transaction data) and the API
description (`/docs`, `/openapi.json`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection

from shared.clock import SystemClock
from switch.journal import Journal
from switch.ops import access
from switch.ops.access import Principal
from switch.tables import ADMIN, OPERATOR, VIEWER

_CLOCK = SystemClock()


def get_journal(request: Request) -> Journal:
    return request.app.state.journal


OpsJournal = Annotated[Journal, Depends(get_journal)]


def _read_conn(journal: OpsJournal) -> Iterator[Connection]:
    with journal.db.read() as conn:
        yield conn


ReadConn = Annotated[Connection, Depends(_read_conn)]


def get_now(request: Request) -> Callable[[], datetime]:
    """The clock of the network (naive WIB); tests inject a fixed one through `create_ops_app`."""
    return getattr(request.app.state, "now", None) or _CLOCK.now


Now = Annotated[Callable[[], datetime], Depends(get_now)]


def get_stats_provider(request: Request) -> Callable[[], dict] | None:
    return request.app.state.stats_provider


StatsProvider = Annotated[Callable[[], dict] | None, Depends(get_stats_provider)]


def get_demo_keys(request: Request) -> bool | None:
    """Whether the running switch uses public demo keys (set by `SwitchRuntime`); None: unknown."""
    return getattr(request.app.state, "demo_keys", None)


DemoKeys = Annotated[bool | None, Depends(get_demo_keys)]


# -- who is calling ---------------------------------------------------------------------------------

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An ops API token, `sops_<id>.<secret>` (`sembako ops token create`; `sembako up` writes one "
    "for the switch operator to `<data-dir>/ops-token`).",
)


def unauthorized(detail: str, invalid: bool) -> HTTPException:
    challenge = 'Bearer error="invalid_token"' if invalid else "Bearer"
    return HTTPException(401, detail, headers={"WWW-Authenticate": challenge})


def forbidden(detail: str) -> HTTPException:
    return HTTPException(403, detail)


def authenticate(
    journal: OpsJournal, now: Now, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    """The caller, from the bearer token; 401 when there is none or it is not valid now."""
    if credentials is None:
        raise unauthorized("no token: send the header 'Authorization: Bearer <token>'", invalid=False)
    with journal.db.read() as conn:
        outcome = access.authenticate(conn, credentials.credentials, now())
    if isinstance(outcome, str):
        raise unauthorized(outcome, invalid=True)
    return outcome


def _role(role: str) -> Callable[[Principal], Principal]:
    def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.has_role(role):
            raise forbidden(f"this needs the {role} role; token {principal.token_id} is a {principal.role}")
        return principal

    dependency.__name__ = f"require_{role}"
    return dependency


Viewer = Annotated[Principal, Depends(_role(VIEWER))]
Operator = Annotated[Principal, Depends(_role(OPERATOR))]
Admin = Annotated[Principal, Depends(_role(ADMIN))]
Authenticated = Depends(authenticate)  # for routers: every route behind it needs a valid token


def own_bank(principal: Principal, bank: str | None, what: str = "bank") -> None:
    """403 when the caller names a bank (`bank`, not None) outside its token's scope."""
    if bank is not None and not principal.sees_bank(bank):
        raise forbidden(f"token {principal.token_id} is scoped to {principal.scope}: {what} {bank} is outside its scope")
