"""`sembako reconcile`: the reconciliation report of one business day, printed.

Two ways to get it (see `switch.reconciliation` for what it holds):

- from the running switch's ops API (`--ops URL`, the default http://127.0.0.1:8000), which asks
  the banks through its own links; with a token (`--token`, SEMBAKO_OPS_TOKEN, else the file
  `--token-file`, default `<data dir>/ops-token` as `sembako up` writes it);
- from a switch journal at rest (`--data-dir DIR`, or `--database-url` for PostgreSQL), the banks
  asked directly at the URLs the switch would use (SEMBAKO_SWITCH_BANK_URLS, or each bank's
  default port) with the switch's credentials (SEMBAKO_SWITCH_BANK_CREDENTIALS, or the demo
  ones). The journal is only read, never migrated: start the switch once to migrate it.

Printed as a short text per terminal (default), as JSON (`--json`) or as CSV (`--csv`). A plain
message and exit status 1 when the report cannot be had; a bank that cannot be asked is only
reported as unavailable.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import date
from pathlib import Path

import httpx

from shared.money import format_idr

DEFAULT_OPS_URL = "http://127.0.0.1:8000"
OPS_TIMEOUT_S = 60.0


class ReconcileError(Exception):
    """The report cannot be had: the message says why, plainly."""


def ops_token(token: str | None, token_file: Path | None) -> str | None:
    """The ops API token: as given, else read from `token_file` (default: `ops-token` in
    SEMBAKO_DATA_DIR, else in ./data); None when there is none."""
    from switch.ops.cli import read_token_file, token_file as default_file

    if token:
        return token.strip()
    return read_token_file(token_file or default_file(Path(os.environ.get("SEMBAKO_DATA_DIR") or "data")))


def from_ops(ops_url: str, day: date, tid: str | None, as_csv: bool, timeout_s: float = OPS_TIMEOUT_S, token: str | None = None) -> str:
    """The report as the ops API gives it: JSON text, or CSV text."""
    params = {"date": day.isoformat(), "format": "csv" if as_csv else "json"}
    if tid:
        params["tid"] = tid
    url = f"{ops_url.rstrip('/')}/v1/reconciliation"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(url, params=params, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise ReconcileError(f"cannot reach the switch ops API at {ops_url}: {type(exc).__name__}") from None
    if response.status_code == 401:
        hint = "give --token, or --token-file (sembako up writes data/ops-token)"
        raise ReconcileError(f"the switch ops API wants a valid token ({_detail(response)}): {hint}")
    if response.status_code != 200:
        raise ReconcileError(f"the switch ops API answered {response.status_code}: {_detail(response)}")
    return response.text


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        return response.text[:200]
    if isinstance(detail, list):
        return "; ".join(f"{'.'.join(str(p) for p in item.get('loc', ()))}: {item.get('msg')}" for item in detail)
    return str(detail)


def from_journal(data_dir: Path, database_url: str | None, day: date, tid: str | None) -> dict:
    """The report built here from the switch journal at rest and the banks' postings (as JSON data)."""
    from sqlalchemy.exc import SQLAlchemyError

    from shared.db import sqlite_url
    from switch.bank_client import BankClient
    from switch.journal import Journal
    from switch.reconciliation import build_report
    from switch.runtime import database_for
    from switch.settings import SwitchSettings

    settings = SwitchSettings(data_dir=data_dir, database_url=database_url)
    if not settings.database_url and not (data_dir / "switch.sqlite3").exists():
        raise ReconcileError(f"no switch journal in {data_dir} (expected {sqlite_url(data_dir, 'switch').split('///')[-1]})")
    db = database_for(settings)

    async def build() -> dict:
        banks = BankClient(settings.bank_urls, settings.bank_timeout_ms, 8, settings.bank_credentials_by_code())
        try:
            report = await build_report(Journal(db), banks, day, tid)
        finally:
            await banks.close()
        return report.model_dump(mode="json")

    try:
        return asyncio.run(build())
    except SQLAlchemyError as exc:
        raise ReconcileError(f"cannot read the switch journal ({type(exc).__name__}): is it migrated? start the switch once") from None
    finally:
        db.dispose()


def csv_of(report: dict) -> str:
    from switch.reconciliation import Reconciliation, report_to_csv

    return report_to_csv(Reconciliation.model_validate(report))


def render_text(report: dict) -> str:
    """A short text for operations staff: the banks, then per terminal its summary, batches
    and the lines that do not agree."""
    out = [f"Reconciliation of {report['business_date']}" + (f", terminal {report['tid']}" if report.get("tid") else "")]
    for bank in report["banks"]:
        if bank["status"] == "available":
            out.append(f"  bank {bank['bank']}: {bank['postings']} postings" + (" (truncated)" if bank["truncated"] else ""))
        elif bank["status"] == "unavailable":
            out.append(f"  bank {bank['bank']}: UNAVAILABLE ({bank['reason']})")
    if not report["terminals"]:
        out.append("  no traffic")
    for terminal in report["terminals"]:
        out += _terminal_text(terminal)
    if report["truncated"]:
        out.append("TRUNCATED: more rows than one report reads; ask for one terminal (--tid)")
    return "\n".join(out)


def _terminal_text(terminal: dict) -> list[str]:
    s = terminal["summary"]
    counts = ", ".join(
        f"{s[name]} {name.replace('_', ' ')}"
        for name in ("missing_at_terminal", "missing_at_switch", "missing_at_bank", "amount_differs", "rc_differs", "rrn_differs", "offline_exceptions")
        if s[name]
    )
    out = [
        f"{terminal['tid']}: {s['lines']} lines, {s['matched']} matched" + (f", {counts}" if counts else ""),
        f"  net: switch {format_idr(s['switch_net_idr'])}, banks {format_idr(s['bank_net_idr'])}",
    ]
    for batch in terminal["batches"]:
        state = "closed" if batch["closed"] else "open"
        steps = " ".join(f"{a['processing_code']}:{a['rc']}" for a in batch["settlements"]) or "not settled"
        out.append(f"  batch {batch['batch']:06d} {state} ({steps}), {batch['uploads']} uploaded")
    for line in terminal["lines"]:
        if line["issues"]:
            out.append(
                f"    {line['kind']} stan {line['stan']} rrn {line['rrn'] or '-'} {line['card_masked'] or ''}: {', '.join(line['issues'])}"
            )
    return out


def run_reconcile(
    day: date, tid: str | None, as_csv: bool, as_json: bool, ops_url: str | None, data_dir: Path | None, database_url: str | None,
    token: str | None = None,
) -> str:
    """The text to print; ReconcileError when the report cannot be had. `token`: for the ops API."""
    if data_dir is None and ops_url is None and database_url is None:
        ops_url = DEFAULT_OPS_URL
    if ops_url is not None:
        text = from_ops(ops_url, day, tid, as_csv, token=token)
        if as_csv:
            return text
        report = json.loads(text)
    else:
        report = from_journal(data_dir or Path("data"), database_url, day, tid)
        if as_csv:
            return csv_of(report)
    return json.dumps(report, indent=2) if as_json else render_text(report)
