"""The authorisation API the switch calls. Every answer carries an ISO response code."""

from __future__ import annotations

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
def balance_inquiry(body: InquiryCreate, runtime: Runtime) -> AuthorisationPublic:
    return runtime.authoriser.inquiry(body)


@router.post("/purchase")
def purchase(body: PurchaseCreate, runtime: Runtime) -> AuthorisationPublic:
    return runtime.authoriser.purchase(body)


@router.post("/reversal")
def reversal(body: ReversalCreate, runtime: Runtime) -> AuthorisationPublic:
    """Reverse a purchase by its original key; repeating it never gives back twice."""
    return runtime.authoriser.reversal(body)


@router.post("/advice")
def advice(body: AdviceCreate, runtime: Runtime) -> AuthorisationPublic:
    """An offline purchase uploaded by the EDC (card and ID checked at the e-Warong, no PIN)."""
    return runtime.authoriser.advice(body)
