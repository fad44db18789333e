"""The scenario runner on real networks: a wrong expectation fails naming its step and expectation
(exit 1, JUnit failure, HTML step), the same seed replays exactly, in this process or in a pool
of workers, and a broken file fails its run without stopping the others. (The suite itself
plays in test_suite.py.)"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from typer.testing import CliRunner

from scenarios.cli import scenario_app
from scenarios.loader import parse_scenario
from scenarios.pool import run_files
from scenarios.runner import RunOptions, ScenarioResult, run_scenario

SMALL = """\
name: small
problem: Bayar lalu cek
cites: DESIGN.md
network:
  banks: [bni]
  seed: 5
  start: "2026-11-03T09:00:00"
  terminals:
    - tid: BNI00002
      link: {{rtt_ms: 20, jitter_ms: 10, loss: 0.0, disconnect_rate: 0.0}}
people:
  - {{as: siti, bank: bni, demo: normal}}
steps:
  - disburse: {{period: "2026-11", amount: 150000}}
  - name: bayar
    bayar: {{card: siti, terminal: BNI00002, amount: 10000}}
    expect: {{rc: "00", balance: {{siti: {balance}}}, ledger: balanced}}
  - name: cek
    cek: {{card: siti, terminal: BNI00002}}
    expect: {{rc: "00"}}
"""


def cli(*args: str | Path):  # noqa: ANN201
    return CliRunner().invoke(scenario_app, [str(a) for a in args], env={"COLUMNS": "200"})


def test_a_wrong_expectation_fails_with_step_expectation_junit_and_html(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(SMALL.format(balance=999), encoding="utf-8")
    junit, page = tmp_path / "junit.xml", tmp_path / "report.html"

    result = cli("run", wrong, "--junit", junit, "--html", page)

    assert result.exit_code == 1, result.output
    assert "small  step 2 'bayar'  FAIL" in result.stdout
    failure = ET.parse(junit).getroot().find("testcase/failure")
    assert failure is not None
    assert failure.get("message") == "step 2 'bayar': expect balance siti: expected 999, the bank holds 140000"
    text = page.read_text(encoding="utf-8")
    assert "bayar" in text and "expected 999" in text and "0200" in text
    assert "http://" not in text and "https://" not in text and "<script" not in text  # self-contained


def test_a_passing_scenario_writes_a_testcase_without_failure(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(SMALL.format(balance=140000), encoding="utf-8")
    junit = tmp_path / "junit.xml"

    result = cli("run", good, "--junit", junit)

    assert result.exit_code == 0, result.output
    case = ET.parse(junit).getroot().find("testcase")
    assert case is not None and case.get("name") == "small" and case.find("failure") is None


def trace(result: ScenarioResult) -> list:
    assert result.passed, result.failure()
    return [(s.name, s.status, [(v.check, v.ok) for v in s.verdicts], [(e.request_mti, e.answer_mti, e.rc) for e in s.exchanges])
            for s in result.steps]  # fmt: skip


def test_the_same_seed_replays_the_same_verdicts_and_messages() -> None:
    scenario = parse_scenario(SMALL.format(balance=140000))
    options = RunOptions(seed=42, step_timeout_s=60, scenario_timeout_s=120)
    first, second = (trace(run_scenario(scenario, "small", options)) for _ in range(2))
    assert first == second
    assert [m for _, _, _, exchanges in first for m in exchanges] == [("0200", "0210", "00"), ("0100", "0110", "00")]


def test_parallel_runs_keep_to_their_own_networks_and_replay_alike(tmp_path: Path) -> None:
    """Two networks at once in a pool of workers, each on its own ports, data and clock: the same
    file twice gives the same trace as in this process, and a broken file is a failed result."""
    good = tmp_path / "good.yaml"
    good.write_text(SMALL.format(balance=140000), encoding="utf-8")
    twin = tmp_path / "twin.yaml"
    twin.write_text(SMALL.format(balance=140000), encoding="utf-8")
    broken = tmp_path / "broken.yaml"
    broken.write_text(SMALL.format(balance=10.5), encoding="utf-8")
    lines: list[str] = []

    results = run_files([good, twin, broken], RunOptions(seed=42, progress=lines.append), jobs=2)

    assert [r.file for r in results] == [str(good), str(twin), str(broken)]
    assert trace(results[0]) == trace(results[1]) == trace(run_scenario(parse_scenario(good.read_text()), "small", RunOptions(seed=42)))
    assert not results[2].passed and "invalid scenario file" in (results[2].failure() or "")
    assert "expecting a whole number of rupiah, got 10.5" in (results[2].failure() or "")
    assert sum(line.startswith("small  PASS") for line in lines) == 2  # progress came back from the workers
