"""`sembako`: the single CLI entry point. Each service hangs its commands here."""

from __future__ import annotations

import typer

from pathlib import Path
from typing import Annotated, Literal

from bank_penyalur.cli import bank_app, demo_cards_command, disburse_command
from edc_terminal.cli import edc_app
from edc_terminal.tui import edc_command
from ewarong_pos.cli import ewarong_app
from scenarios.cli import scenario_app
from scenarios.simulate_cli import simulate_command
from sembako.bench import bench_app
from switch.cli import switch_app
from switch.ops.cli import ops_app
from training.cli import training_command

app = typer.Typer(
    help="Program Sembako payment network simulator: banks, switch, EDC and e-Warong POS.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(bank_app, name="bank")
app.add_typer(edc_app, name="edc-cli")
app.add_typer(switch_app, name="switch")
app.add_typer(bench_app, name="bench")
app.add_typer(scenario_app, name="scenario")
app.command("simulate")(simulate_command)
app.command("disburse")(disburse_command)
app.command("demo-cards")(demo_cards_command)
app.command("edc")(edc_command)
app.add_typer(ewarong_app, name="ewarong")
app.add_typer(ops_app, name="ops")
app.command("training")(training_command)


@app.command("up")
def up(
    data_dir: Annotated[Path, typer.Option("--data-dir", envvar="SEMBAKO_DATA_DIR")] = Path("data"),
    kpm: Annotated[int, typer.Option(help="Generated KPM per bank on first start")] = 1_000,
    database_url: Annotated[str | None, typer.Option("--database-url", envvar="DATABASE_URL")] = None,
    app_: Annotated[Literal["ewarong", "edc", "none"] | None, typer.Option(
        "--app", help="App opened in this terminal once the network runs; quitting it stops the network "
        "[default: ewarong on a terminal, else none]")] = None,
    bank_workers: Annotated[int, typer.Option(
        "--bank-workers", min=1, max=64, help="Processes per bank on one port and one database (above 1: PostgreSQL only)")] = 1,
    switch_workers: Annotated[int, typer.Option(
        "--switch-workers", min=1, max=64, help="Switch processes on one ISO port and one database (above 1: PostgreSQL only)")] = 1,
) -> None:
    """Start the network (four banks and the switch) with demo data and open the cashier app; quitting
    it (or Ctrl-C with --app none) stops it."""
    from sembako.up import run_network

    for option, workers in (("--bank-workers", bank_workers), ("--switch-workers", switch_workers)):
        if workers > 1 and not (database_url or "").startswith("postgres"):
            raise typer.BadParameter("above 1 needs PostgreSQL (--database-url): SQLite has one writer at a time", param_hint=option)
    raise typer.Exit(run_network(data_dir, kpm, database_url, app=app_, bank_workers=bank_workers, switch_workers=switch_workers))


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0: the whole room)")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65_535, help="0 picks a free port")] = 8080,
    switch: Annotated[str, typer.Option("--switch", help="Switch HOST:PORT for the apps")] = "127.0.0.1:8583",
    data_dir: Annotated[Path, typer.Option("--data-dir", envvar="SEMBAKO_DATA_DIR")] = Path("data"),
    database_url: Annotated[str | None, typer.Option("--database-url", envvar="DATABASE_URL")] = None,
    max_sessions: Annotated[int, typer.Option("--max-sessions", min=1, help="Browser sessions at once")] = 20,
) -> None:
    """Serve the cashier app (/) and the EDC (/edc) to browsers; one app per tab; Ctrl-C stops."""
    from sembako.serve import run_serve

    raise typer.Exit(run_serve(host, port, switch, data_dir, database_url, max_sessions))


@app.command("reconcile")
def reconcile(
    day: Annotated[str, typer.Option("--date", help="Business (transmission) date, YYYY-MM-DD, WIB")],
    tid: Annotated[str | None, typer.Option("--tid", help="Only this terminal, e.g. BNI00001")] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    ops: Annotated[str | None, typer.Option("--ops", help="The switch ops API (default http://127.0.0.1:8000)")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Read the switch journal in this data directory instead")] = None,
    database_url: Annotated[str | None, typer.Option("--database-url", help="Read the switch journal in this PostgreSQL database instead")] = None,
    token: Annotated[str | None, typer.Option("--token", envvar="SEMBAKO_OPS_TOKEN", help="Ops API token, for --ops "
        "(default: the one in --token-file)")] = None,
    token_file: Annotated[Path | None, typer.Option("--token-file", help="File holding the ops API token "
        "(default: $SEMBAKO_DATA_DIR/ops-token, else data/ops-token, as sembako up writes it)")] = None,
) -> None:
    """Reconcile one business day: terminals' batches, the switch journal and the banks' postings side by side."""
    from datetime import date

    from sembako.reconcile import ReconcileError, ops_token, run_reconcile

    try:
        business_day = date.fromisoformat(day)
    except ValueError:
        raise typer.BadParameter(f"must be a date YYYY-MM-DD, got {day!r}", param_hint="--date") from None
    if ops is not None and (data_dir is not None or database_url is not None):
        raise typer.BadParameter("give either --ops or --data-dir/--database-url", param_hint="--ops")
    if as_csv and as_json:
        raise typer.BadParameter("give either --csv or --json", param_hint="--csv")
    try:
        text = run_reconcile(business_day, tid, as_csv, as_json, ops, data_dir, database_url, token=ops_token(token, token_file))
    except ReconcileError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(text, nl=not text.endswith("\n"))


def main() -> None:
    app()
