"""`sembako scenario check` and `schema` as QA uses them: exit 0 when every file is valid, 1 with
every problem of every file printed otherwise; the schema printed is the published one."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from scenarios.cli import SCHEMA_PATH, scenario_app
from scenarios.model import scenario_json_schema

from .helpers import FIRST_STEP_LINE, HEAD, VALID_STEP, write

SUITE = Path(__file__).parents[2] / "scenarios" / "suite"


def run(*args: str | Path):  # noqa: ANN201
    return CliRunner().invoke(scenario_app, [str(a) for a in args], env={"COLUMNS": "200"})


def test_check_valid_files_exits_0() -> None:
    result = run("check", SUITE)
    assert result.exit_code == 0, result.output
    count = len(list(SUITE.glob("*.yaml")))
    assert result.stdout == ""
    assert f"{count} scenario file(s) valid" in result.stderr


def test_check_prints_every_error_of_every_file_and_exits_1(tmp_path: Path) -> None:
    good = write(tmp_path, HEAD + VALID_STEP, "good.yaml")
    money = write(tmp_path, HEAD + "  - bayar: {card: siti, terminal: BNI00001, amount: 10.5}\n", "money.yaml")
    cards = write(tmp_path, HEAD + "  - cek: {card: a, terminal: BNI00001}\n  - cek: {card: b, terminal: BNI00001}\n", "cards.yaml")
    result = run("check", good, money, cards)
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stdout.splitlines()
    assert lines == [
        f"{money}:{FIRST_STEP_LINE}:45: steps[0].bayar.amount: expecting a whole number of rupiah, got 10.5 "
        "(money is integer rupiah, never a fraction)",
        f'{cards}:{FIRST_STEP_LINE}:11: steps[0].cek.card: card "a" is not defined (cards defined so far: siti)',
        f'{cards}:{FIRST_STEP_LINE + 1}:11: steps[1].cek.card: card "b" is not defined (cards defined so far: siti)',
    ]
    assert "2 of 3 scenario file(s) invalid, 3 problem(s)" in result.stderr
    assert "Traceback" not in result.output


def test_check_a_directory_reads_its_yaml_files(tmp_path: Path) -> None:
    write(tmp_path, HEAD + VALID_STEP, "a.yaml")
    write(tmp_path, "name: [\n", "b.yml")
    write(tmp_path, "not a scenario", "notes.txt")
    result = run("check", tmp_path)
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{tmp_path / 'b.yml'}:2:1: not valid YAML")
    assert "1 of 2 scenario file(s) invalid" in result.stderr


def test_check_with_nothing_to_check_exits_1(tmp_path: Path) -> None:
    result = run("check", tmp_path)
    assert result.exit_code == 1
    assert "no scenario files found" in result.stderr
    assert run("check", tmp_path / "missing.yaml").exit_code == 1


def test_schema_prints_the_published_schema() -> None:
    result = run("schema")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == scenario_json_schema()
    assert result.stdout == SCHEMA_PATH.read_text(encoding="utf-8")
