"""Operations reports (the Pedoman's list) per period and region, as JSON or CSV."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel

from shared.http import unprocessable

from bank_penyalur.api.deps import ReadConn, Runtime
from bank_penyalur.reports import (
    FAMILIES_MAX,
    LEVELS,
    build_report,
    double_card_list,
    offline_exception_list,
    report_to_csv,
    report_to_dict,
)
from bank_penyalur.schemas import PLAIN_TEXT_PATTERN, WibDateTime

router = APIRouter(prefix="/v1/reports", tags=["reports"])


@router.get("", response_model=None)
def report(
    conn: ReadConn,
    runtime: Runtime,
    period: str = Query(description="Benefit period, YYYY-MM"),
    level: str = Query(default="province", description=f"One of {', '.join(LEVELS)}"),
    province: str | None = Query(default=None, max_length=60, pattern=PLAIN_TEXT_PATTERN),
    format: Literal["json", "csv"] = "json",  # noqa: A002 - the query parameter's public name
) -> Response | dict:
    """Openings, sub-accounts, KKS, funds disbursed and spent, balances and offline exceptions."""
    try:
        built = build_report(conn, period, level, province)
    except ValueError as exc:
        raise unprocessable(str(exc), ("query",)) from None
    code = runtime.bank.code
    if format == "csv":
        filename = f"sembako-report-{code}-{built.period}-{built.level}.csv"
        return Response(
            report_to_csv(built),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return {"bank": code, **report_to_dict(built)}


class OfflineExceptionPublic(BaseModel):
    """An offline advice flagged for review: accepted with the balance below zero (rc 00), or
    refused because it would have gone below minus the offline limit (rc 51), or refused as more
    than 90 days after its disbursement or its sale (rc 54)."""

    created_at: WibDateTime
    province: str
    regency: str
    pan_masked: str
    terminal_id: str
    stan: str
    merchant_id: str
    amount_idr: int
    rc: str
    balance_idr: int | None


@router.get("/offline-exceptions")
def offline_exceptions(
    conn: ReadConn,
    period: str = Query(description="Benefit period, YYYY-MM"),
    province: str | None = Query(default=None, max_length=60, pattern=PLAIN_TEXT_PATTERN),
) -> list[OfflineExceptionPublic]:
    """Every offline exception of the period, oldest first: the list behind the report's counts."""
    try:
        rows = offline_exception_list(conn, period, province)
    except ValueError as exc:
        raise unprocessable(str(exc), ("query", "period")) from None
    return [OfflineExceptionPublic.model_validate(row, from_attributes=True) for row in rows]


class ActiveCardPublic(BaseModel):
    pan_masked: str
    kpm_id: int
    active_since: WibDateTime


class DoubleCardFamilyPublic(BaseModel):
    """A family holding more than one active card: one KKS per family (tunggalisasi)."""

    family: str  # "KK 3204********0001" (masked), or "KPM 12" when the KPM has no KK number
    province: str
    regency: str
    kpm_ids: list[int]
    cards: list[ActiveCardPublic]
    double_since: WibDateTime


class DoubleCards(BaseModel):
    bank: str
    families: list[DoubleCardFamilyPublic]
    truncated: bool  # more families than `limit`


@router.get("/double-cards")
def double_cards(
    conn: ReadConn,
    runtime: Runtime,
    province: str | None = Query(default=None, max_length=60, pattern=PLAIN_TEXT_PATTERN),
    limit: int = Query(default=FAMILIES_MAX, ge=1, le=FAMILIES_MAX, description="Families listed at most"),
) -> DoubleCards:
    """Families with more than one active card, each with its cards (masked): the double cards
    to block before the next disbursement."""
    families, truncated = double_card_list(conn, province, limit)
    listed = [DoubleCardFamilyPublic.model_validate(family, from_attributes=True) for family in families]
    return DoubleCards(bank=runtime.bank.code, families=listed, truncated=truncated)
