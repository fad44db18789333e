"""The QA suite, as CI plays it: every scenario of scenarios/suite on its own network, two at a
time, each passing with the money auditor after every step. A failure prints the failing step's
report (its verdicts, the terminal's answer, balances and the ISO messages it exchanged)."""

from __future__ import annotations

from pathlib import Path

from scenarios.loader import scenario_files
from scenarios.pool import run_files
from scenarios.runner import PASS, RunOptions, ScenarioResult, StepResult, describe_exchanges

SUITE = Path(__file__).parents[2] / "scenarios" / "suite"
JOBS = 2  # its wall time (goal: 180 s on two cores) is measured with `sembako scenario run scenarios/suite --jobs 2`


def step_report(result: ScenarioResult, step: StepResult) -> str:
    lines = [f"{result.name} ({result.file}), seed {result.seed}: {step.label} {step.status}"]
    if step.error:
        lines.append(f"  error: {step.error}")
    lines += [f"  {'ok' if v.ok else 'FAILED'} {v.check}: {v.detail}" for v in step.verdicts]
    if step.txn is not None:
        lines.append(f"  {step.tid}: rc {step.txn.rc}, approved {step.txn.approved}, screen: {step.txn.screen!r}")
    lines.append(f"  balances: {step.balances}")
    lines += ["  " + text.replace("\n", "\n  ") for text in describe_exchanges(step.exchanges)]
    return "\n".join(lines)


def failure_report(results: list[ScenarioResult]) -> str:
    parts = []
    for result in results:
        if result.passed:
            continue
        failed = next((s for s in result.steps if s.status != PASS and s.status != "SKIP"), None)
        parts.append(step_report(result, failed) if failed is not None else f"{result.name} ({result.file}): {result.failure()}")
    return "\n\n".join(parts)


def test_every_scenario_of_the_suite_passes() -> None:
    files = list(scenario_files([SUITE]))

    results = run_files(files, RunOptions(), jobs=JOBS)

    assert len(results) == len(files) >= 25
    assert all(r.passed for r in results), failure_report(results)
    audited = [s for r in results for s in r.steps if s.verdicts and s.verdicts[-1].check == "audit" and s.verdicts[-1].ok]
    assert len(audited) == sum(len(r.steps) for r in results), "the money auditor ran after every step"
