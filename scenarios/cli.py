"""`sembako scenario`: print the scenario format's JSON Schema, check scenario files.

The integrator registers `scenario_app` under the main CLI; `python -m scenarios.cli` runs it
on its own (e.g. `python -m scenarios.cli schema > scenarios/schema.json`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .loader import check_file, scenario_files
from .model import scenario_json_schema

SCHEMA_PATH = Path(__file__).with_name("schema.json")

scenario_app = typer.Typer(
    help="Failure scenarios as data: the file format's schema and a checker.",
    no_args_is_help=True,
    add_completion=False,
)


def schema_text() -> str:
    """The published JSON Schema as it is written to scenarios/schema.json."""
    return json.dumps(scenario_json_schema(), indent=2, ensure_ascii=False) + "\n"


@scenario_app.command("schema")
def schema() -> None:
    """Print the JSON Schema (draft 2020-12) of a scenario file."""
    typer.echo(schema_text(), nl=False)


@scenario_app.command("check")
def check(
    paths: Annotated[list[Path], typer.Argument(help="Scenario files, or directories of *.yaml files")],
) -> None:
    """Check scenario files: print every problem as FILE:LINE:COL: PATH: MESSAGE; exit 1 if any."""
    files = list(scenario_files(paths))
    if not files:
        typer.echo("no scenario files found", err=True)
        raise typer.Exit(1)
    invalid = 0
    problems = 0
    for file in files:
        errors = check_file(file)
        for error in errors:
            typer.echo(str(error))
        invalid += bool(errors)
        problems += len(errors)
    if invalid:
        typer.echo(f"{invalid} of {len(files)} scenario file(s) invalid, {problems} problem(s)", err=True)
        raise typer.Exit(1)
    typer.echo(f"{len(files)} scenario file(s) valid", err=True)


if __name__ == "__main__":
    scenario_app()
