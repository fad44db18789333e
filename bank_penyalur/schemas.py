"""Request and answer models of the authorisation API the switch calls (HTTP/JSON).

Shapes are validated here (a wrong type is a 422 with the field named); business checks such
as an unknown card or a non-positive amount are answered with an ISO response code instead.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

TerminalId = Annotated[str, StringConstraints(pattern=r"^[ -~]{1,8}$")]
Stan = Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]
Rrn = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z]{12}$")]
MerchantId = Annotated[str, StringConstraints(pattern=r"^[ -~]{1,15}$")]
# Printable ASCII only; whether it is a card of this bank is answered with RC 14.
Pan = Annotated[str, StringConstraints(pattern=r"^[ -~]{0,19}$")]
PinBlockHex = Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]{16}$")]
ProcessingCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]

# Amounts are checked by the bank (RC 13), but must fit the ledger's 64-bit columns to be stored.
AMOUNT_FIELD_BOUND = 10**15
Amount = Annotated[StrictInt, Field(ge=-AMOUNT_FIELD_BOUND, le=AMOUNT_FIELD_BOUND)]

Operation = Literal["inquiry", "purchase", "reversal", "advice"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    terminal_id: TerminalId
    stan: Stan
    transmission_date: date = Field(description="Date of field 7/13; part of the idempotency key")
    rrn: Rrn | None = Field(default=None, description="Retrieval reference number from the switch")
    merchant_id: MerchantId
    pan: Pan


class InquiryCreate(_Request):
    pin_block: PinBlockHex
    processing_code: ProcessingCode = "310000"


class PurchaseCreate(_Request):
    pin_block: PinBlockHex
    amount_idr: Amount
    processing_code: ProcessingCode = "000000"


class AdviceCreate(_Request):
    """A purchase approved offline by the EDC (card + ID, no PIN), uploaded later."""

    amount_idr: Amount
    processing_code: ProcessingCode = "000000"
    transaction_at: datetime = Field(description="Local time of the offline purchase")
    offline_approval_code: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z]{6}$")] | None = None


class ReversalCreate(_Request):
    amount_idr: Amount
    original_stan: Stan
    original_transmission_date: date


class AuthorisationPublic(BaseModel):
    """The bank's answer. The same request always gets the same answer."""

    rc: str
    rc_text: str
    approval_code: str | None = None
    balance_idr: int | None = None
    amount_idr: int | None = None
    terminal_id: str
    stan: str
    transmission_date: date
    rrn: str | None = None
