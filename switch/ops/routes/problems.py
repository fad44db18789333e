"""The error answers of the ops API, declared on the routes that give them.

A refused parameter is a 422 in the one shape FastAPI declares (`detail`: a list of location,
message and type, never the rejected input; see `shared.http`), whether FastAPI's validation
or a route's own check refused it (`refuse`). A missing transaction is a 404 and an unreachable
journal a 503, both with `detail` as one sentence; so are 401 (no valid token) and 403 (the
token's role or bank scope does not allow it), see `switch.ops.deps`.
"""

from __future__ import annotations

from typing import NoReturn

from shared.http import ErrorMessage, error_responses, unprocessable

UNAVAILABLE = error_responses(503)
NOT_FOUND = error_responses(404)
CONFLICT = error_responses(409)
WITH_BODY = error_responses(400, 413)  # a body that is not JSON, or too large
ACCESS = {
    401: {"model": ErrorMessage, "description": "No token, or a token that is unknown, expired or revoked"},
    403: {"model": ErrorMessage, "description": "The token's role or bank scope does not allow it"},
}
GUARDED = {**UNAVAILABLE, **ACCESS}  # every route that needs a token


def refuse(location: str, name: str, message: str) -> NoReturn:
    """Refuse a parameter as FastAPI's validation does: 422 naming it (`location`: query, path)."""
    raise unprocessable(message, (location, name))
