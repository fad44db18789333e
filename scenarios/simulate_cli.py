"""`sembako simulate`: seeded fault simulation with the money auditor (see `scenarios.simulate`).

Registered in the main CLI as a command; `python -m scenarios.simulate_cli ...` runs it alone.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from .simulate import (
    FAULTS,
    JOBS_MAX,
    SeedResult,
    SimOptions,
    SimulationError,
    check_options,
    failure_lines,
    parse_faults,
    parse_only,
    run_only,
    seed_line,
    simulate,
    summarise,
)

PROGRESS_EVERY = 100  # with more seeds than this, one progress line per this many seeds


def simulate_command(
    seed: Annotated[int, typer.Option(help="The first seed")] = 1,
    steps: Annotated[int, typer.Option(help="Generated steps per seed (the seal comes on top)")] = 12,
    seeds: Annotated[int, typer.Option(help="How many seeds: seed .. seed+seeds-1")] = 1,
    faults: Annotated[str, typer.Option(help=f"Faults drawn, comma-separated: {','.join(FAULTS)} (or all, none)")] = ",".join(FAULTS),
    jobs: Annotated[int, typer.Option("--jobs", "-j", help=f"Networks played at once (1..{JOBS_MAX})")] = 1,
    only: Annotated[str | None, typer.Option(help="Replay only these generated steps of one seed, e.g. 2,5,7 (1-based)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
    shrink: Annotated[bool, typer.Option(help="Shrink a failing seed to a shorter replay")] = True,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="PostgreSQL URL (schemas of its own per network); default SQLite in a temp dir")
    ] = None,
) -> None:
    """Random workloads (cek, bayar, voids, offline sales, disbursements) over the real services
    with random faults, the money auditor after each step; a failing seed prints its replay."""
    try:
        check_options(seed, steps, seeds, jobs)
        fault_set = parse_faults(faults)
        subset = parse_only(only, steps) if only is not None else None
        if subset is not None and seeds != 1:
            raise SimulationError("--only replays one seed: leave --seeds out")
    except SimulationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    options = SimOptions(steps=steps, faults=fault_set, database_url=database_url, shrink=shrink and subset is None)
    done: list[SeedResult] = []

    def report(result: SeedResult) -> None:
        done.append(result)
        if as_json:
            return
        if seeds <= PROGRESS_EVERY or not result.passed:
            typer.echo(seed_line(result))
        if seeds > PROGRESS_EVERY and len(done) % PROGRESS_EVERY == 0:
            failed = sum(not r.passed for r in done)
            typer.echo(f"{len(done)}/{seeds} seeds, {failed} failed")

    if subset is not None:
        import time

        started = time.monotonic()
        result = run_only(seed, subset, options)
        report(result)
        results, elapsed_s = [result], time.monotonic() - started
    else:
        results, elapsed_s = simulate(seed, seeds, options, jobs, report)
    summary = summarise(results, elapsed_s, options)
    if as_json:
        typer.echo(json.dumps(summary.as_dict(), indent=2, ensure_ascii=False))
    else:
        for result in results:
            if not result.passed:
                for line in failure_lines(result):
                    typer.echo(line)
        typer.echo(
            f"{summary.seeds_run} seed(s) run, {summary.passed} passed, {summary.failed} failed, "
            f"{summary.elapsed_s:.1f} s, {summary.seeds_per_s:.3f} seeds/s"
        )
    if summary.failed:
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(simulate_command)
