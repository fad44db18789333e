"""A small valid scenario to build broken ones from, with known line numbers."""

from __future__ import annotations

from pathlib import Path

from scenarios.loader import ScenarioError, check_file

# 14 lines: the first step is on line 15.
HEAD = """\
name: test
problem: A test scenario
cites: DESIGN.md
network:
  banks: [bni]
  seed: 1
  start: "2026-11-03T09:00:00"
  terminals:
    - tid: BNI00001
people:
  - as: siti
    bank: bni
    demo: normal
steps:
"""
FIRST_STEP_LINE = 15
VALID_STEP = "  - cek: {card: siti, terminal: BNI00001}\n"


def write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(tmp_path: Path, text: str, name: str = "scenario.yaml") -> list[ScenarioError]:
    return check_file(write(tmp_path, text, name))


def only_error(tmp_path: Path, text: str, name: str = "scenario.yaml") -> ScenarioError:
    errors = errors_of(tmp_path, text, name)
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]
