"""Operations reports (the Pedoman's list) per period and region, as JSON or CSV."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from bank_penyalur.api.deps import ReadConn, Runtime
from bank_penyalur.reports import LEVELS, build_report, report_to_csv, report_to_dict

router = APIRouter(prefix="/v1/reports", tags=["reports"])


@router.get("", response_model=None)
def report(
    conn: ReadConn,
    runtime: Runtime,
    period: str = Query(description="Benefit period, YYYY-MM"),
    level: str = Query(default="province", description=f"One of {', '.join(LEVELS)}"),
    province: str | None = Query(default=None, max_length=60),
    format: Literal["json", "csv"] = "json",  # noqa: A002 - the query parameter's public name
) -> Response | dict:
    """Openings, sub-accounts, KKS, funds disbursed and spent, balances and offline exceptions."""
    try:
        built = build_report(conn, period, level, province)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    code = runtime.bank.code
    if format == "csv":
        filename = f"sembako-report-{code}-{built.period}-{built.level}.csv"
        return Response(
            report_to_csv(built),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return {"bank": code, **report_to_dict(built)}
