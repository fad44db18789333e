"""`sembako bank ...`, `sembako disburse` and `sembako demo-cards`."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.banks import BANK_CODES, BANKS, get_bank
from shared.credentials import HOLDERS, OPERATOR
from bank_penyalur.demo import fixture, generator
from bank_penyalur.disburse import disburse
from bank_penyalur.runtime import BankRuntime
from bank_penyalur.settings import WORKERS_MAX, BankSettings, DemoKeysRefused, check_keys
from shared.config import settings_errors

bank_app = typer.Typer(help="Bank penyalur instances: serve, seed demo data, check the ledger.", no_args_is_help=True)
console = Console(stderr=True)

BankOpt = Annotated[str, typer.Option("--bank", help=f"One of: {', '.join(BANK_CODES)}")]
DataDirOpt = Annotated[Path, typer.Option("--data-dir", envvar="SEMBAKO_DATA_DIR", help="Where SQLite files live")]
DbUrlOpt = Annotated[
    str | None,
    typer.Option("--database-url", envvar="DATABASE_URL", help="postgresql+psycopg://... (default: SQLite in the data dir)"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object")]


def settings_for(bank: str, data_dir: Path, database_url: str | None, **extra) -> BankSettings:  # noqa: ANN003
    try:
        get_bank(bank)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--bank") from None
    try:
        settings = BankSettings(bank=bank, data_dir=data_dir, database_url=database_url, **extra)
    except ValidationError as exc:  # e.g. a credential of the wrong shape in SEMBAKO_BANK_*
        raise typer.BadParameter(settings_errors(exc)) from None
    try:
        check_keys(settings)
    except DemoKeysRefused as exc:
        raise typer.BadParameter(str(exc)) from None
    return settings


@contextmanager
def progress_bar(label: str, enabled: bool):  # noqa: ANN201
    if not enabled:
        yield None
        return
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@bank_app.command("serve")
def serve(
    bank: BankOpt = "bni",
    port: Annotated[int | None, typer.Option(help="Default: 8101-8104 by bank")] = None,
    host: str = "127.0.0.1",
    data_dir: DataDirOpt = Path("data"),
    database_url: DbUrlOpt = None,
    seed_kpm: Annotated[int | None, typer.Option("--seed-kpm", help="Create demo data up to N KPM before serving")] = None,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, max=WORKERS_MAX,
        help="Processes serving this bank on one port and one database (above 1: PostgreSQL only)")] = 1,
) -> None:
    """Serve one bank's HTTP API (authorisation, cards, KPM, reports, ops)."""
    import uvicorn

    from bank_penyalur.api.app import create_app
    from shared.logs import configure_logging

    settings = settings_for(bank, data_dir, database_url, host=host, port=port)
    if workers > 1 and not (settings.database_url or "").startswith("postgres"):
        raise typer.BadParameter("above 1 needs PostgreSQL (--database-url): SQLite has one writer at a time", param_hint="--workers")
    # Database threads wait on I/O many times per request; with the default 5 ms switch
    # interval each wake-up can stall behind the event loop holding the GIL.
    sys.setswitchinterval(settings.gil_switch_interval_ms / 1000)
    runtime = BankRuntime.start(settings)  # migrates the database once, before any worker starts
    if seed_kpm is not None:
        generator.seed(runtime.db, runtime.bank, runtime.hsm, runtime.clock, kpm=seed_kpm)
    configure_logging(f"bank-{bank}", data_dir)  # data/logs/bank-<code>.log, rotated; see shared.logs
    # No access log: URLs of card endpoints carry PANs. uvicorn's records go to the rotating log.
    # No proxy headers: the bank is called directly (a forwarded address is not to be believed),
    # and their middleware is ~3% of the bank's CPU per call; no Server header naming uvicorn.
    quiet = {"access_log": False, "log_level": "warning", "log_config": None, "proxy_headers": False, "server_header": False}
    if workers > 1:
        runtime.close()
        os.environ.update(worker_environment(settings))
        uvicorn.run(WORKER_APP, factory=True, workers=workers, host=settings.host, port=settings.listen_port, **quiet)
        return
    try:
        uvicorn.run(create_app(runtime), host=settings.host, port=settings.listen_port, **quiet)
    finally:
        runtime.close()


WORKER_APP = "bank_penyalur.api.app:app_from_environment"


def worker_environment(settings: BankSettings) -> dict[str, str]:
    """What a worker process needs to build the same settings from its environment (the rest,
    keys and credentials included, it inherits from this process's environment)."""
    environment = {
        "SEMBAKO_BANK_BANK": settings.bank,
        "SEMBAKO_BANK_HOST": settings.host,
        "SEMBAKO_BANK_PORT": str(settings.listen_port),
        "SEMBAKO_DATA_DIR": str(settings.data_dir),
    }
    if settings.database_url:
        environment["DATABASE_URL"] = settings.database_url
    return environment


@bank_app.command("seed")
def seed(
    bank: Annotated[list[str] | None, typer.Option("--bank", help="Repeat for several; default all four")] = None,
    kpm: Annotated[int, typer.Option(help="Generated KPM per bank (up to 1,000,000)")] = 1_000,
    data_dir: DataDirOpt = Path("data"),
    database_url: DbUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create deterministic demo data: e-Warongs, named demo cards and generated KPM."""
    reports = []
    for code in bank or list(BANK_CODES):
        runtime = BankRuntime.start(settings_for(code, data_dir, database_url))
        try:
            with progress_bar(f"{code}: KPM", enabled=not as_json) as progress:
                report = generator.seed(runtime.db, runtime.bank, runtime.hsm, runtime.clock, kpm=kpm, progress=progress)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        finally:
            runtime.close()
        reports.append(asdict(report))
    _print(reports, as_json)


def _print(payload, as_json: bool) -> None:  # noqa: ANN001
    if as_json:
        typer.echo(json.dumps(payload, default=str))
    else:
        console.print_json(json.dumps(payload, default=str))


@bank_app.command("credential")
def credential_command(
    bank: BankOpt = "bni",
    holder: Annotated[str, typer.Option("--holder", help="operator (cards, KPM, disbursements, reports, ops) or switch (authorisations, card list, postings)")] = OPERATOR,
) -> None:
    """Print the credential the bank accepts from HOLDER, for 'Authorization: Bearer ...': its
    SEMBAKO_BANK_<HOLDER>_CREDENTIAL, else the public demo one."""
    if holder not in HOLDERS:
        raise typer.BadParameter(f"expecting one of {', '.join(HOLDERS)}", param_hint="--holder")
    try:
        get_bank(bank)
        settings = BankSettings(bank=bank)
    except ValidationError as exc:
        raise typer.BadParameter(settings_errors(exc)) from None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--bank") from None
    typer.echo(settings.credential(holder))


@bank_app.command("ledger-check")
def ledger_check(bank: BankOpt = "bni", data_dir: DataDirOpt = Path("data"), database_url: DbUrlOpt = None) -> None:
    """Read the whole ledger back; exit 1 if it does not balance."""
    from bank_penyalur.ledger import check_ledger

    runtime = BankRuntime.start(settings_for(bank, data_dir, database_url))
    try:
        with runtime.db.read() as conn:
            result = check_ledger(conn)
    finally:
        runtime.close()
    typer.echo(json.dumps({"bank": bank, "ok": result.ok, "balance_sum_idr": result.balance_sum_idr, "transfers": result.transfers}))
    raise typer.Exit(0 if result.ok else 1)


@bank_app.command("report")
def report(
    period: Annotated[str, typer.Option(help="YYYY-MM")],
    bank: BankOpt = "bni",
    level: Annotated[str, typer.Option(help="province, regency, district or village")] = "province",
    province: Annotated[str | None, typer.Option(help="Only this province")] = None,
    output: Annotated[str, typer.Option("--format", help="json or csv")] = "csv",
    data_dir: DataDirOpt = Path("data"),
    database_url: DbUrlOpt = None,
) -> None:
    """Operations report per period and region: accounts, sub-accounts, KKS, funds, balances."""
    from bank_penyalur.reports import build_report, report_to_csv, report_to_dict

    if output not in ("json", "csv"):
        raise typer.BadParameter("must be json or csv", param_hint="--format")
    runtime = BankRuntime.start(settings_for(bank, data_dir, database_url))
    try:
        with runtime.db.read() as conn:
            built = build_report(conn, period, level, province)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    finally:
        runtime.close()
    typer.echo(json.dumps(report_to_dict(built), default=str) if output == "json" else report_to_csv(built), nl=False)


def disburse_command(
    period: Annotated[str, typer.Option(help="YYYY-MM")],
    amount: Annotated[int, typer.Option(help="Rupiah per KPM")] = 150_000,
    bank: Annotated[str | None, typer.Option("--bank", help="One bank; default all four")] = None,
    data_dir: DataDirOpt = Path("data"),
    database_url: DbUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Credit the monthly benefit to every KPM e-money sub-account, once per period."""
    if amount <= 0:
        raise typer.BadParameter("must be a positive number of rupiah", param_hint="--amount")
    reports = []
    for code in [bank] if bank else list(BANK_CODES):
        runtime = BankRuntime.start(settings_for(code, data_dir, database_url))
        try:
            with progress_bar(f"{code}: disbursing", enabled=not as_json) as progress:
                report = disburse(runtime.db, runtime.clock, period, amount, progress=progress)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        finally:
            runtime.close()
        reports.append({"bank": code, **report.as_dict()})
    _print(reports if len(reports) > 1 else reports[0], as_json)


def demo_cards_command(
    bank: Annotated[str | None, typer.Option("--bank", help="One bank; default all four")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the named demo cards and their demo PINs (a fixture, not read from the banks)."""
    try:
        banks = [get_bank(bank)] if bank else list(BANKS.values())
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--bank") from None
    cards = [card for b in banks for card in fixture.demo_cards(b)]
    if as_json:
        typer.echo(json.dumps([c.as_dict() for c in cards]))
        return
    table = Table(title="Kartu demo KKS")
    for column in ("Bank", "Label", "PAN", "PIN", "Nama", "Situasi", "RC"):
        table.add_column(column)
    for c in cards:
        table.add_row(c.bank.upper(), c.label, c.pan, c.pin, c.name, c.situation, c.expect_rc)
    Console().print(table)
