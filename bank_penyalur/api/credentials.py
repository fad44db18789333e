"""Who may call which endpoint of the bank: the switch, the bank's operators, or anyone.

Route groups:

- authorisation (the switch's credential only): everything the switch calls, i.e.
  `/v1/authorisations/*` (balance inquiry, purchase, reversal, advice), `/v1/offline/card-list`
  and `/v1/postings` (reconciliation). An operator's credential there is 403.
- operations (an operator's credential or the switch's): every other `/v1/...` path: cards
  (print, distribute, activate, block, unblock, lost, damaged, replace), `/v1/ops` (PIN reset,
  audit trail, ledger check), `/v1/kpm`, `/v1/merchants`, `/v1/disbursements`, `/v1/reports`.
  The switch is let in too: its operations staff ask the bank for PIN resets through it. A path
  in no group is an operations path, so a new router is closed until it is placed.
- open: `/health`, `/metrics` and the API description (`/docs`, `/redoc`, `/openapi.json`).

A credential is sent as `Authorization: Bearer <credential>` and compared with
`hmac.compare_digest` against both credentials, every time. None, or one the bank does not
know, is 401 with a JSON `detail`; a known one on a route of the other group is 403. The check
is a small ASGI layer in front of the application: no database, no request body read before it.
"""

from __future__ import annotations

import logging
from hmac import compare_digest

from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.cards import mask_card_numbers
from shared.credentials import OPERATOR, SWITCH

log = logging.getLogger("bank_penyalur")

MISSING = "missing credential: send 'Authorization: Bearer <credential>'"
UNKNOWN = "credential not recognised"
SWITCH_ONLY = "this endpoint is for the switch only; the operator credential is not accepted here"


class CredentialCheck:
    """ASGI middleware enforcing the route groups above. `switch_prefixes` are the path prefixes
    of the authorisation group, `open_paths` the exact paths anyone may call."""

    def __init__(
        self, app: ASGIApp, switch_credential: str, operator_credential: str, switch_prefixes: tuple[str, ...], open_paths: frozenset[str], realm: str
    ) -> None:
        self.app = app
        self._switch = switch_credential.encode()
        self._operator = operator_credential.encode()
        self._switch_prefixes = switch_prefixes
        self._open_paths = open_paths
        self._challenge = f'Bearer realm="{realm}"'.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._open_paths:
            await self.app(scope, receive, send)
            return
        holder = self.holder(scope)
        if holder is None:
            await self._refuse(scope, send, 401, MISSING if _bearer_token(scope) is None else UNKNOWN)
        elif holder != SWITCH and scope["path"].startswith(self._switch_prefixes):
            await self._refuse(scope, send, 403, SWITCH_ONLY)
        else:
            await self.app(scope, receive, send)

    def holder(self, scope: Scope) -> str | None:
        """SWITCH or OPERATOR when the request carries that credential, else None. Both
        comparisons always run, in constant time for a token of the credential's length."""
        token = _bearer_token(scope)
        if token is None:
            return None
        is_switch = compare_digest(token, self._switch)
        is_operator = compare_digest(token, self._operator)
        return SWITCH if is_switch else OPERATOR if is_operator else None

    async def _refuse(self, scope: Scope, send: Send, status: int, detail: str) -> None:
        client = scope.get("client") or ("?", 0)
        path = mask_card_numbers(scope["path"])  # card endpoints carry the card number in the path
        log.warning("refused %s %s from %s with %d: %s", scope["method"], path, client[0], status, detail)
        response = JSONResponse({"detail": detail}, status_code=status)
        headers = response.raw_headers + ([(b"www-authenticate", self._challenge)] if status == 401 else [])
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})


def _bearer_token(scope: Scope) -> bytes | None:
    """The token of the first Authorization header when it is a Bearer one, else None."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            token = token.strip()
            return token if scheme.lower() == b"bearer" and token else None
    return None


class CredentialError(BaseModel):
    """401 or 403: the credential is missing, unknown, or not accepted on this endpoint."""

    detail: str


_SCHEMES = {
    SWITCH: {
        "type": "http",
        "scheme": "bearer",
        "description": "The switch's credential at this bank (SEMBAKO_BANK_SWITCH_CREDENTIAL). "
        "The only one accepted on authorisations, the offline card list and postings.",
    },
    OPERATOR: {
        "type": "http",
        "scheme": "bearer",
        "description": "This bank's operators' credential (SEMBAKO_BANK_OPERATOR_CREDENTIAL). "
        "Accepted, like the switch's, on cards, KPM, merchants, disbursements, reports and ops.",
    },
}
REFUSED_401 = {401: {"model": CredentialError, "description": "Credential missing or not recognised"}}
REFUSED_403 = {403: {"model": CredentialError, "description": "The operator credential on an endpoint for the switch only"}}


def add_security(openapi: dict, switch_prefixes: tuple[str, ...], open_paths: frozenset[str]) -> dict:
    """The API description with its two security schemes and, on every operation, which of
    them it accepts (so that /docs shows the lock and its "Authorize" button)."""
    openapi.setdefault("components", {})["securitySchemes"] = _SCHEMES
    for path, operations in openapi.get("paths", {}).items():
        if path in open_paths:
            continue
        security = [{SWITCH: []}] if path.startswith(switch_prefixes) else [{OPERATOR: []}, {SWITCH: []}]
        for operation in operations.values():
            operation["security"] = security
    return openapi
