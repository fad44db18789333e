"""Reconciliation of one business day per terminal: batches, journal and bank ledgers side by side.

See `switch.reconciliation` for what the report holds. JSON by default; CSV with `format=csv`
(or an Accept header asking for text/csv). The banks are asked through the switch's bank client
(`app.state.banks`); a bank that does not answer is reported unavailable, and the report still
answers. The journal is read, and the report written, off the event loop (the ops API may share it with
the ISO listener).

Reconciliation is per terminal: a bank's token gets the reports of its own terminals (every card
used there), and 403 for a `tid` of a terminal its bank does not acquire.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from switch.bank_client import BankClient
from switch.ops.access import Principal
from switch.ops.deps import OpsJournal, Viewer, forbidden
from switch.ops.routes.params import RANGE_TEXT, BusinessDate
from switch.ops.routes.problems import GUARDED
from switch.ops.scope import acquirer_of, its_terminal_ids
from switch.reconciliation import Reconciliation, build_report, report_to_csv

router = APIRouter(prefix="/v1/reconciliation", tags=["reconciliation"], responses=GUARDED)

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
_CSV_ANSWER = {200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "The report"}}


def get_banks(request: Request) -> BankClient | None:
    """The switch's bank client (set by `create_ops_app`); None: no bank can be asked."""
    return getattr(request.app.state, "banks", None)


OpsBanks = Annotated[BankClient | None, Depends(get_banks)]


def wants_csv(request: Request, format_: str | None) -> bool:
    if format_ is not None:
        return format_ == "csv"
    return "text/csv" in request.headers.get("accept", "")


@router.get("", response_model=Reconciliation, responses=_CSV_ANSWER)
async def reconciliation(
    principal: Viewer,
    request: Request,
    journal: OpsJournal,
    banks: OpsBanks,
    day: Annotated[BusinessDate, Query(alias="date", description=f"Business (transmission) date, YYYY-MM-DD, {RANGE_TEXT}")],
    tid: Annotated[str | None, Query(pattern=r"^[ -~]{1,8}$", description="Only this terminal (field 41)")] = None,
    format_: Annotated[Literal["json", "csv"] | None, Query(alias="format", description="json (default) or csv")] = None,
) -> Response | Reconciliation:
    """Per terminal: its batches and settlements, each money movement as the terminal, the switch
    and the issuing bank saw it, what differs, and a summary."""
    if tid is not None and principal.bank is not None and await asyncio.to_thread(_acquirer, journal, tid) != principal.bank:
        raise forbidden(f"token {principal.token_id} is scoped to {principal.bank}: that terminal is not one of its terminals")
    report = _scoped(await build_report(journal, banks, day, tid), await asyncio.to_thread(_its_terminals, journal, principal))
    # Written off the event loop: a day of a busy network is a large document.
    if wants_csv(request, format_):
        shown_tid = "".join(c for c in tid or "" if c.isalnum())
        filename = f"sembako-reconciliation-{day.isoformat()}{f'-{shown_tid}' if shown_tid else ''}.csv"
        return Response(
            await asyncio.to_thread(report_to_csv, report),
            media_type=CSV_MEDIA_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return Response(await asyncio.to_thread(report.model_dump_json), media_type="application/json")


def _acquirer(journal: OpsJournal, tid: str) -> str | None:
    with journal.db.read() as conn:
        return acquirer_of(conn, tid)


def _its_terminals(journal: OpsJournal, principal: Principal) -> set[str] | None:
    with journal.db.read() as conn:
        return its_terminal_ids(conn, principal)


def _scoped(report: Reconciliation, tids: set[str] | None) -> Reconciliation:
    """Only the terminals in `tids` (None: all of them)."""
    if tids is None:
        return report
    return report.model_copy(update={"terminals": [t for t in report.terminals if t.tid in tids]})
