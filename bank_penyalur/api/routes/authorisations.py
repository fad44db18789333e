"""The authorisation API the switch calls. Every answer carries an ISO response code.

The handlers are async: validation and serialisation stay on the event loop, and the database
work goes to the bank's authorisation writer, which answers queued requests in batches.
A request dated further than DATE_WINDOW_DAYS from the bank's date is refused with 422.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException
from fastapi.exceptions import RequestValidationError

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
