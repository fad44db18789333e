"""Scenarios on the real PostgreSQL (`--database-url`): the banks, the switch and the e-Warong's
books each in schemas of their own for the run, dropped when it ends."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from scenarios.loader import load_scenario
from scenarios.runner import RunOptions, run_scenario
from tests.conftest import pg_skip_reason, postgres_url

SUITE = Path(__file__).parents[2] / "scenarios" / "suite"

pytestmark = pytest.mark.postgres


def scenario_schemas() -> set[str]:
    engine = create_engine(postgres_url())
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'scn\\_%'"))
            return {row[0] for row in rows}
    finally:
        engine.dispose()


@pytest.mark.parametrize("name", ["forbidden_goods", "bank_killed_restarted"])
def test_a_scenario_plays_on_postgresql_and_leaves_no_schema_behind(name: str) -> None:
    reason = pg_skip_reason()
    if reason:
        pytest.skip(reason)
    before = scenario_schemas()

    result = run_scenario(load_scenario(SUITE / f"{name}.yaml"), name, RunOptions(database_url=postgres_url()))

    assert result.passed, result.failure()
    assert scenario_schemas() == before
