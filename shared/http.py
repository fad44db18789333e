"""What every HTTP API of the network does alike: clear JSON errors, never a stack trace, never
the rejected input echoed back, and a bound on the size of a request body.

- 422 answers always have the shape FastAPI declares in the OpenAPI document
  (`{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`), also for refusals raised by a
  route (`unprocessable`) and for values the database cannot hold. The input is left out: it may
  be a card number typed in the wrong box, or a number JSON cannot carry (NaN, Infinity).
- `BodySizeLimit` answers 413 before the application sees a body that is too large, whether
  its length is announced (Content-Length) or not (chunked).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DataError, OperationalError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.cards import mask_card_numbers

DEFAULT_BODY_MAX_BYTES = 16 * 1024


class ErrorMessage(BaseModel):
    """An error answer other than 422: what went wrong, in words."""

    detail: str


def error_responses(*status_codes: int) -> dict[int | str, dict]:
    """OpenAPI `responses` entries for the error answers (other than 422) a route can give."""
    return {code: {"model": ErrorMessage, "description": _DESCRIPTIONS.get(code, "Error")} for code in status_codes}


_DESCRIPTIONS = {
    400: "Request body that cannot be read (not UTF-8 JSON)",
    404: "Not found",
    409: "Conflict with the current state",
    413: "Request body too large",
    429: "Too many requests: try again after Retry-After seconds",
    503: "Service unavailable, try again",
}


def unprocessable(msg: str, loc: Sequence[str | int] = ("body",), error_type: str = "value_error") -> RequestValidationError:
    """A 422 refusal raised by a route, answered in the same shape as a validation error."""
    return RequestValidationError([{"loc": tuple(loc), "msg": msg, "type": error_type}])


def validation_errors(errors: Iterable[dict]) -> list[dict]:
    """Validation errors as the OpenAPI schema declares them, without the input or its context."""
    return [
        {"loc": [part if isinstance(part, int) else str(part) for part in error.get("loc", ())],
         "msg": str(error.get("msg", "invalid value")),
         "type": str(error.get("type", "value_error"))}
        for error in errors
    ]


def unprocessable_response(errors: Iterable[dict]) -> JSONResponse:
    return JSONResponse({"detail": validation_errors(errors)}, status_code=422)


def add_error_handlers(app: FastAPI, log: logging.Logger, database: str) -> None:
    """422 for invalid requests (input never echoed), for a value the database cannot hold;
    503 when the database is away; 500 (logged, nothing applied) for anything unexpected.
    `database` names it in the answers."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return unprocessable_response(exc.errors())

    add_storage_error_handlers(app, log, database)


def add_storage_error_handlers(app: FastAPI, log: logging.Logger, database: str) -> None:
    """The database-related half of `add_error_handlers`."""

    @app.exception_handler(DataError)
    async def _unstorable(_: Request, exc: DataError) -> JSONResponse:
        # e.g. a NUL character, which PostgreSQL text cannot hold; nothing was stored.
        log.warning("refused a value the %s cannot hold: %s", database, exc.orig)
        msg = "a value in the request cannot be stored (control characters?)"
        return unprocessable_response([{"loc": ["request"], "msg": msg, "type": "value_error"}])

    @app.exception_handler(OperationalError)
    async def _unavailable(_: Request, exc: OperationalError) -> JSONResponse:
        log.error("%s unavailable: %s", database, exc.orig)
        return JSONResponse({"detail": f"{database} unavailable, try again"}, status_code=503)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, mask_card_numbers(request.url.path))
        return JSONResponse({"detail": "internal error; the request was not applied"}, status_code=500)


class BodySizeLimit:
    """ASGI middleware: a request body longer than the limit of its path gets 413 and never
    reaches the application. `limits_bytes` maps path prefixes to their limit (the longest
    matching prefix wins); other paths get `default_max_bytes`. Bodies within the limit are
    read here and handed on unchanged."""

    def __init__(self, app: ASGIApp, default_max_bytes: int = DEFAULT_BODY_MAX_BYTES, limits_bytes: dict[str, int] | None = None) -> None:
        assert default_max_bytes >= 0
        self.app = app
        self.default_max_bytes = default_max_bytes
        self.limits_bytes = sorted((limits_bytes or {}).items(), key=lambda item: -len(item[0]))

    def limit_for(self, path: str) -> int:
        for prefix, max_bytes in self.limits_bytes:
            if path.startswith(prefix):
                return max_bytes
        return self.default_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.limit_for(scope.get("path", ""))
        if _announced_length(scope) > max_bytes:
            await _too_large(send, max_bytes)
            return
        messages = await _read_body(receive, max_bytes)
        if messages is None:
            await _too_large(send, max_bytes)
            return
        await self.app(scope, _replay(messages, receive), send)


def _announced_length(scope: Scope) -> int:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0  # the server refuses it; the body is counted as it comes anyway
    return 0


async def _read_body(receive: Receive, max_bytes: int) -> list[Message] | None:
    """The request's body messages, or None once they exceed `max_bytes`."""
    messages: list[Message] = []
    size_bytes = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages  # e.g. the client went away: let the application see it
        size_bytes += len(message.get("body", b""))
        if size_bytes > max_bytes:
            return None
        if not message.get("more_body", False):
            return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


async def _too_large(send: Send, max_bytes: int) -> None:
    response = JSONResponse({"detail": f"request body larger than {max_bytes} bytes"}, status_code=413)
    await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
