"""The error answers of the ops API, declared on the routes that give them.

A refused parameter is a 422 in the one shape FastAPI declares (`detail`: a list of location,
message and type, never the rejected input; see `shared.http`), whether FastAPI's validation
or a route's own check refused it (`refuse`). A missing transaction is a 404 and an unreachable
journal a 503, both with `detail` as one sentence.
"""

from __future__ import annotations

from typing import NoReturn

from shared.http import error_responses, unprocessable

UNAVAILABLE = error_responses(503)
NOT_FOUND = error_responses(404)


def refuse(location: str, name: str, message: str) -> NoReturn:
    """Refuse a parameter as FastAPI's validation does: 422 naming it (`location`: query, path)."""
    raise unprocessable(message, (location, name))
