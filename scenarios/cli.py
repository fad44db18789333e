"""`sembako scenario`: print the scenario format's JSON Schema, check scenario files.

The integrator registers `scenario_app` under the main CLI; `python -m scenarios.cli` runs it
on its own (e.g. `python -m scenarios.cli schema > scenarios/schema.json`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .loader import ScenarioError, check_file, load_scenario, scenario_files
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


@scenario_app.command("run")
def run(
    paths: Annotated[list[Path], typer.Argument(help="Scenario files, or directories of *.yaml files")],
    seed: Annotated[int | None, typer.Option(help="Play with this seed instead of each file's own")] = None,
    junit: Annotated[Path | None, typer.Option(help="Write a JUnit XML report here")] = None,
    html: Annotated[Path | None, typer.Option(help="Write a self-contained HTML report here")] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="PostgreSQL URL (each scenario in schemas of its own); default SQLite in a temp dir")
    ] = None,
) -> None:
    """Play scenarios, each on a fresh network; one line per step; exit 1 if any fails."""
    from .report import html_report, junit_xml
    from .runner import RunOptions, ScenarioResult, run_scenario

    files = list(scenario_files(paths))
    if not files:
        typer.echo("no scenario files found", err=True)
        raise typer.Exit(1)
    options = RunOptions(seed=seed, database_url=database_url, progress=typer.echo)
    results = []
    for file in files:
        try:
            scenario = load_scenario(file)
        except ScenarioError as exc:
            for error in exc.errors or (exc,):
                typer.echo(str(error))
            results.append(ScenarioResult(file.stem, str(file), seed or 0, error=f"invalid scenario file: {exc}"))
            continue
        result = run_scenario(scenario, str(file), options)
        verdict = "PASS" if result.passed else f"FAIL: {result.failure()}"
        typer.echo(f"{result.name}  {verdict}  ({result.elapsed_s:.1f}s)")
        results.append(result)
    if junit:
        junit.write_text(junit_xml(results), encoding="utf-8")
    if html:
        html.write_text(html_report(results), encoding="utf-8")
    failed = sum(not r.passed for r in results)
    typer.echo(f"{len(results) - failed} of {len(results)} scenario(s) passed", err=True)
    if failed:
        raise typer.Exit(1)


if __name__ == "__main__":
    scenario_app()
