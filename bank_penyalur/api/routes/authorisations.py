"""The authorisation API the switch calls. Every answer carries an ISO response code.

The handlers are async: validation and serialisation stay on the event loop, and the database
work goes to the bank's authorisation writer, which answers queued requests in batches.
A request dated further than DATE_WINDOW_DAYS from the bank's date is refused with 422.

`POST /v1/authorisations/batch` carries up to BATCH_ITEMS_MAX requests of any kind in one HTTP
request (a busy switch sends what queued up while its previous call was out) and answers each in
order, as its own endpoint would: one item's 422 or 503 does not touch the others. Each item
keeps its own idempotency key, so a repeated batch answers every item the same.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.http import error_responses

from bank_penyalur.api.deps import Runtime
from bank_penyalur.batcher import QueueFull
from bank_penyalur.schemas import (
    AdviceCreate,
    AuthorisationPublic,
    InquiryCreate,
    PurchaseCreate,
    ReversalCreate,
    _Request,
    date_window_errors,
)

log = logging.getLogger("bank_penyalur.authorisations")
router = APIRouter(prefix="/v1/authorisations", tags=["authorisations"], responses=error_responses(400, 413))


async def _authorise(runtime: Runtime, op: str, body: _Request) -> AuthorisationPublic:
    errors = date_window_errors(body, runtime.clock.now().date())
    if errors:
        raise RequestValidationError(errors)
    try:
        future = runtime.batcher.submit(op, body)
    except QueueFull as exc:
        raise HTTPException(503, f"bank busy: {exc}") from None
    return await asyncio.wrap_future(future)


@router.post("/balance-inquiry")
async def balance_inquiry(body: InquiryCreate, runtime: Runtime) -> AuthorisationPublic:
    return await _authorise(runtime, "inquiry", body)


@router.post("/purchase")
async def purchase(body: PurchaseCreate, runtime: Runtime) -> AuthorisationPublic:
    return await _authorise(runtime, "purchase", body)


@router.post("/reversal")
async def reversal(body: ReversalCreate, runtime: Runtime) -> AuthorisationPublic:
    """Reverse a purchase by its original key; repeating it never gives back twice."""
    return await _authorise(runtime, "reversal", body)


@router.post("/advice")
async def advice(body: AdviceCreate, runtime: Runtime) -> AuthorisationPublic:
    """An offline purchase uploaded by the EDC (card and ID checked at the e-Warong, no PIN)."""
    return await _authorise(runtime, "advice", body)


# -- many at once ---------------------------------------------------------------------------

BATCH_ITEMS_MAX = 128
Op = Literal["inquiry", "purchase", "reversal", "advice"]
REQUEST_MODELS: dict[str, type[_Request]] = {
    "inquiry": InquiryCreate,
    "purchase": PurchaseCreate,
    "reversal": ReversalCreate,
    "advice": AdviceCreate,
}


class BatchItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Op
    request: dict[str, Any] = Field(description="The body the op's own endpoint takes")


class AuthorisationBatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: Annotated[list[BatchItemCreate], Field(min_length=1, max_length=BATCH_ITEMS_MAX)]


class BatchItemPublic(BaseModel):
    status: int = Field(description="What the op's own endpoint would have answered: 200, 422, 500 or 503")
    answer: AuthorisationPublic | None = None
    detail: Any = Field(default=None, description="Why not 200: the validation errors, or the reason")


class AuthorisationBatchPublic(BaseModel):
    results: list[BatchItemPublic] = Field(description="One per item, in the order of the items")


@router.post("/batch", response_model=AuthorisationBatchPublic)
async def batch(body: AuthorisationBatchCreate, runtime: Runtime) -> Response:
    """Several authorisations in one call, each answered as its own endpoint answers it."""
    today = runtime.clock.now().date()
    pending = [_submit(runtime, item, today) for item in body.items]  # queued in order, before any wait
    results = [(await _result(entry)).model_dump(mode="json") for entry in pending]
    # Built here: the answers are already validated models (no second pass through the schema).
    return Response(orjson.dumps({"results": results}), media_type="application/json")


def _submit(runtime: Runtime, item: BatchItemCreate, today) -> BatchItemPublic | asyncio.Future:  # noqa: ANN001
    try:
        request = REQUEST_MODELS[item.op].model_validate(item.request)
    except ValidationError as exc:
        return BatchItemPublic(status=422, detail=exc.errors(include_url=False, include_context=False, include_input=False))
    errors = date_window_errors(request, today)
    if errors:
        return BatchItemPublic(status=422, detail=errors)
    try:
        return asyncio.wrap_future(runtime.batcher.submit(item.op, request))
    except QueueFull as exc:
        return BatchItemPublic(status=503, detail=f"bank busy: {exc}")


async def _result(entry: BatchItemPublic | asyncio.Future) -> BatchItemPublic:
    if isinstance(entry, BatchItemPublic):
        return entry
    try:
        return BatchItemPublic(status=200, answer=await entry)
    except Exception:  # rolled back by the writer: this item only, as its own endpoint's 500
        log.exception("authorisation in a batch failed; not applied")
        return BatchItemPublic(status=500, detail="internal error; the request was not applied")
