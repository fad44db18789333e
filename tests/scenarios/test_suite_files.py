"""The scenarios of the suite load, cite their field problem and can fail; the published schema is
the models' and documents them, and each scenario validates against it with a JSON Schema
library. (Playing the suite: test_suite.py.)"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from scenarios.cli import SCHEMA_PATH, schema_text
from scenarios.loader import load_scenario, read_yaml, scenario_errors
from scenarios.model import ACTIONS, SCHEMA_DIALECT, SCHEMA_ID, Scenario, scenario_json_schema

SUITE = sorted((Path(__file__).parents[2] / "scenarios" / "suite").glob("*.yaml"))
DESIGN_SECTIONS = ("The program being simulated", "Field reality", "Services and ownership", "Wire protocol",
                   "Response codes", "Money and ledger rules", "Glossary")  # fmt: skip


def test_the_suite_has_at_least_25_scenarios_with_distinct_names() -> None:
    assert len(SUITE) >= 25, SUITE
    names = [load_scenario(path).name for path in SUITE]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("path", SUITE, ids=lambda p: p.stem)
def test_each_scenario_loads_cites_its_problem_and_expects(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.steps
    assert all(step.action in ACTIONS for step in scenario.steps)
    cites = [scenario.cites] if isinstance(scenario.cites, str) else list(scenario.cites)
    assert any(any(f"DESIGN.md, {section}" in cite for section in DESIGN_SECTIONS) for cite in cites), cites
    checks = [step.expect for step in scenario.steps if step.expect is not None] + [step.wait for step in scenario.steps if step.wait]
    assert len(checks) >= 3, f"{path.name}: a scenario checks what happens after its steps"


def test_the_published_schema_is_up_to_date() -> None:
    published = SCHEMA_PATH.read_text(encoding="utf-8")
    assert published == schema_text(), "regenerate it: python -m scenarios.cli schema > scenarios/schema.json"
    assert json.loads(published) == scenario_json_schema()


def test_the_schema_names_its_dialect_and_identity() -> None:
    schema = scenario_json_schema()
    assert schema["$schema"] == SCHEMA_DIALECT == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID


def test_every_field_of_the_schema_is_documented() -> None:
    schema = scenario_json_schema()
    objects = {"Scenario": schema, **schema["$defs"]}
    undocumented = [
        f"{name}.{key}"
        for name, node in objects.items()
        for key, prop in node.get("properties", {}).items()
        if not prop.get("description") or not prop.get("title")
    ]
    assert not undocumented
    assert all(node.get("description") for node in objects.values() if node.get("type") == "object")


def _json_schema_validator():  # noqa: ANN202 - whichever library is installed
    """A validator from `jsonschema`, or `jsonschema_rs` (schemathesis brings it), else skip."""
    schema = scenario_json_schema()
    for module_name in ("jsonschema", "jsonschema_rs"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if module_name == "jsonschema":
            module.Draft202012Validator.check_schema(schema)
            validator = module.Draft202012Validator(schema)
            return lambda data: [error.message for error in validator.iter_errors(data)]
        validator = module.validator_for(schema)
        return lambda data: [error.message for error in validator.iter_errors(data)]
    pytest.skip("no JSON Schema library (jsonschema, jsonschema_rs) in this environment")
    return None


@pytest.mark.parametrize("path", SUITE, ids=lambda p: p.stem)
def test_each_scenario_validates_against_the_schema(path: Path) -> None:
    errors_of = _json_schema_validator()
    data, _ = read_yaml(path.read_text(encoding="utf-8"))
    assert errors_of(data) == []
    # What the models give back validates too, and reads back as the same scenario.
    dumped = load_scenario(path).model_dump(mode="json", exclude_unset=True)
    assert errors_of(dumped) == []
    assert Scenario.model_validate(dumped) == load_scenario(path)


def test_the_schema_refuses_what_the_loader_refuses() -> None:
    errors_of = _json_schema_validator()
    data, _ = read_yaml(SUITE[0].read_text(encoding="utf-8"))
    two_actions = {**data, "steps": [{"advance": "1h", "cek": {"card": "x", "terminal": "BNI00001"}}]}
    float_money = {**data, "steps": [{"disburse": {"period": "2026-11", "amount": 10.5}}]}
    unknown_key = {**data, "steps": [{"advance": "1h", "colour": "red"}]}
    for broken in (two_actions, float_money, unknown_key):
        assert errors_of(broken), broken


def test_the_readme_example_is_valid() -> None:
    readme = (Path(__file__).parents[2] / "scenarios" / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Shape\n\n```yaml\n", 1)[1].split("```", 1)[0]
    scenario, errors = scenario_errors(block, "README.md")
    assert errors == []
    assert scenario is not None and scenario.steps[0].action == "bayar"
