"""The Pedoman's reports of each bank, through the switch: `GET /v1/banks/{bank}/reports[/...]`.

Operations staff read their bank's reports where they read everything else, with their ops
token: a bank's token reads its own bank's reports only (403 for another bank), the switch
operator's any bank's. The switch asks the bank (its bank client, with the switch's credential
at that bank) and hands the answer on:

- `/reports`: openings, sub-accounts, KKS, funds disbursed and spent, balances and offline
  exceptions per region for a benefit period (JSON, or CSV with `format=csv`);
- `/reports/offline-exceptions`: the offline advices behind the report's counts;
- `/reports/double-cards`: families holding more than one active card.

The parameters are checked here before the bank is asked; the bank's own refusal (422) is
handed on as it is. A bank that cannot be asked, or answers anything else, is a 503 naming the
bank and why. Card numbers are masked on the way out whatever the bank sent.
"""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import Response

from shared.banks import BANK_CODES
from switch.bank_client import BankUnavailable
from switch.ops.deps import Viewer, own_bank
from switch.ops.routes.common import mask_text, scrub
from switch.ops.routes.problems import GUARDED
from switch.ops.routes.reconciliation import CSV_MEDIA_TYPE, OpsBanks

router = APIRouter(prefix="/v1/banks/{bank}/reports", tags=["bank reports"], responses=GUARDED)

REPORT_TIMEOUT_MS = 30_000
REPORT_BODY_MAX_BYTES = 16 * 1024 * 1024
PERIOD_PATTERN = r"^20[0-9]{2}-(0[1-9]|1[0-2])$"
REGION_PATTERN = r"^[^\x00-\x1F\x7F-\x9F]*$"  # as the banks accept it
LEVELS = ("province", "regency", "district", "village")
FAMILIES_MAX = 1_000

BankCode = Annotated[Literal[BANK_CODES], Path(description="The bank: bni, bri, mandiri or btn")]  # type: ignore[valid-type]
Period = Annotated[str, Query(pattern=PERIOD_PATTERN, description="Benefit period, YYYY-MM")]
Province = Annotated[str | None, Query(max_length=60, pattern=REGION_PATTERN, description="Only this province")]

_OBJECT = {"application/json": {"schema": {"type": "object"}}}
_REPORT_ANSWER = {200: {"content": {**_OBJECT, "text/csv": {"schema": {"type": "string"}}}, "description": "The bank's report"}}
_LIST_ANSWER = {200: {"content": {"application/json": {"schema": {"type": "array", "items": {"type": "object"}}}}, "description": "The bank's list"}}
_OBJECT_ANSWER = {200: {"content": _OBJECT, "description": "The bank's list"}}


async def _ask(banks, bank: str, path: str, params: dict[str, str]) -> Response:  # noqa: ANN001
    """The bank's answer to GET `path`, handed on (masked), or 503."""
    if banks is None or not banks.knows(bank):
        raise HTTPException(503, f"the switch has no link to bank {bank}")
    answer = await banks.fetch(bank, path, params, REPORT_TIMEOUT_MS, REPORT_BODY_MAX_BYTES)
    if isinstance(answer, BankUnavailable):
        raise HTTPException(503, f"bank {bank} could not be asked: {answer.reason}")
    status, content_type, body = answer
    if status not in (200, 422):
        raise HTTPException(503, f"bank {bank} answered HTTP {status}")
    if content_type.startswith("text/csv"):
        return Response(mask_text(body.decode("utf-8", "replace")), media_type=CSV_MEDIA_TYPE, status_code=status,
                        headers={"Content-Disposition": f'attachment; filename="sembako-report-{bank}-{params.get("period", "")}.csv"'})  # fmt: skip
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise HTTPException(503, f"bank {bank} answered something that is not JSON") from None
    return Response(orjson.dumps(scrub(document)), media_type="application/json", status_code=status)


@router.get("", response_model=None, responses=_REPORT_ANSWER)
async def report(
    principal: Viewer,
    banks: OpsBanks,
    bank: BankCode,
    period: Period,
    level: Annotated[Literal[LEVELS], Query(description="Rows per province, regency, district or village")] = "province",  # type: ignore[valid-type]
    province: Province = None,
    format_: Annotated[Literal["json", "csv"], Query(alias="format", description="json (default) or csv")] = "json",
) -> Response:
    """The bank's operations report of a period (the Pedoman's list), per region."""
    own_bank(principal, bank)
    params = {"period": period, "level": level, "format": format_, **({"province": province} if province else {})}
    return await _ask(banks, bank, "/v1/reports", params)


@router.get("/offline-exceptions", response_model=None, responses=_LIST_ANSWER)
async def offline_exceptions(principal: Viewer, banks: OpsBanks, bank: BankCode, period: Period, province: Province = None) -> Response:
    """Every offline exception of the period at the bank, oldest first (card numbers masked)."""
    own_bank(principal, bank)
    params = {"period": period, **({"province": province} if province else {})}
    return await _ask(banks, bank, "/v1/reports/offline-exceptions", params)


@router.get("/double-cards", response_model=None, responses=_OBJECT_ANSWER)
async def double_cards(
    principal: Viewer,
    banks: OpsBanks,
    bank: BankCode,
    province: Province = None,
    limit: Annotated[int, Query(ge=1, le=FAMILIES_MAX, description="Families listed at most")] = FAMILIES_MAX,
) -> Response:
    """The bank's families holding more than one active card (card numbers masked)."""
    own_bank(principal, bank)
    params = {"limit": str(limit), **({"province": province} if province else {})}
    return await _ask(banks, bank, "/v1/reports/double-cards", params)
