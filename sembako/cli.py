"""`sembako`: the single CLI entry point. Each service hangs its commands here."""

from __future__ import annotations

import typer

from pathlib import Path
from typing import Annotated

from bank_penyalur.cli import bank_app, demo_cards_command, disburse_command
from edc_terminal.cli import edc_app
from sembako.bench import bench_app
from switch.cli import switch_app

app = typer.Typer(
    help="Program Sembako payment network simulator: banks, switch, EDC and e-Warong POS.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(bank_app, name="bank")
app.add_typer(edc_app, name="edc-cli")
app.add_typer(switch_app, name="switch")
app.add_typer(bench_app, name="bench")
app.command("disburse")(disburse_command)
app.command("demo-cards")(demo_cards_command)


@app.command("up")
def up(
    data_dir: Annotated[Path, typer.Option("--data-dir", envvar="SEMBAKO_DATA_DIR")] = Path("data"),
    kpm: Annotated[int, typer.Option(help="Generated KPM per bank on first start")] = 1_000,
    database_url: Annotated[str | None, typer.Option("--database-url", envvar="DATABASE_URL")] = None,
) -> None:
    """Start the network (four banks and the switch) with demo data; Ctrl-C stops it."""
    from sembako.up import run_network

    raise typer.Exit(run_network(data_dir, kpm, database_url))


def main() -> None:
    app()
