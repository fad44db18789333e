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
JOBS_MAX = 16  # scenarios played at once (`run --jobs`)

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


@scenario_app.command("run")
def run(
    paths: Annotated[list[Path], typer.Argument(help="Scenario files, or directories of *.yaml files")],
    seed: Annotated[int | None, typer.Option(help="Play with this seed instead of each file's own")] = None,
    junit: Annotated[Path | None, typer.Option(help="Write a JUnit XML report here")] = None,
    html: Annotated[Path | None, typer.Option(help="Write a self-contained HTML report here")] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="PostgreSQL URL (each scenario in schemas of its own); default SQLite in a temp dir")
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", min=1, max=JOBS_MAX, help="Scenarios played at once, each on its own network (default: min(cores, 4))"),
    ] = None,
) -> None:
    """Play scenarios, each on a fresh network; one line per step; exit 1 if any fails."""
    from .pool import default_jobs, run_files
    from .report import html_report, junit_xml
    from .runner import RunOptions

    files = list(scenario_files(paths))
    if not files:
        typer.echo("no scenario files found", err=True)
        raise typer.Exit(1)
    invalid = [file for file in files if check_file(file)]
    for file in invalid:
        for error in check_file(file):
            typer.echo(str(error))
    options = RunOptions(seed=seed, database_url=database_url, progress=typer.echo)
    results = run_files(files, options, jobs or default_jobs())
    if junit:
        junit.write_text(junit_xml(results), encoding="utf-8")
    if html:
        html.write_text(html_report(results), encoding="utf-8")
    failed = [r for r in results if not r.passed]
    for result in failed:
        typer.echo(f"FAILED {result.name} ({result.file}): {result.failure()}")
    typer.echo(f"{len(results) - len(failed)} of {len(results)} scenario(s) passed", err=True)
    if failed:
        raise typer.Exit(1)


if __name__ == "__main__":
    scenario_app()
