"""`sembako`: the single CLI entry point. Each service hangs its commands here."""

from __future__ import annotations

import typer

from bank_penyalur.cli import bank_app, demo_cards_command, disburse_command

app = typer.Typer(
    help="Program Sembako payment network simulator: banks, switch, EDC and e-Warong POS.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(bank_app, name="bank")
app.command("disburse")(disburse_command)
app.command("demo-cards")(demo_cards_command)


def main() -> None:
    app()
