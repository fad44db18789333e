"""The authorisation API the switch calls. Every answer carries an ISO response code.

The handlers are async and hand the database work to the thread pool in one hop; everything
else (validation, serialisation) stays on the event loop.
"""

from __future__ import annotations

from anyio import to_thread
from fastapi import APIRouter

from bank_penyalur.api.deps import Runtime
from bank_penyalur.schemas import (
    AdviceCreate,
    AuthorisationPublic,
    InquiryCreate,
    PurchaseCreate,
    ReversalCreate,
)

router = APIRouter(prefix="/v1/authorisations", tags=["authorisations"])


@router.post("/balance-inquiry")
async def balance_inquiry(body: InquiryCreate, runtime: Runtime) -> AuthorisationPublic:
    return await to_thread.run_sync(runtime.authoriser.inquiry, body)


@router.post("/purchase")
async def purchase(body: PurchaseCreate, runtime: Runtime) -> AuthorisationPublic:
    return await to_thread.run_sync(runtime.authoriser.purchase, body)


@router.post("/reversal")
async def reversal(body: ReversalCreate, runtime: Runtime) -> AuthorisationPublic:
    """Reverse a purchase by its original key; repeating it never gives back twice."""
    return await to_thread.run_sync(runtime.authoriser.reversal, body)


@router.post("/advice")
async def advice(body: AdviceCreate, runtime: Runtime) -> AuthorisationPublic:
    """An offline purchase uploaded by the EDC (card and ID checked at the e-Warong, no PIN)."""
    return await to_thread.run_sync(runtime.authoriser.advice, body)
