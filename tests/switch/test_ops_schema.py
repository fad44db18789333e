"""The switch ops API keeps its own OpenAPI description, checked by schemathesis in-process on a
journal holding the morning of traffic of test_ops_api (SQLite and PostgreSQL).

Every operation gets schema-valid requests (positive) and schema-invalid ones (negative); each
answer must be documented for its operation (status code, content type) and match the declared
response schema, formats included (date-time with an offset); invalid requests must be refused
(4xx), and nothing may be a server error. Not checked: "every schema-valid request is accepted",
since `from` must be earlier than `to`, a rule across two parameters that a schema cannot state
(it answers a documented 422).

Requests carry the switch operator's admin token, so the actions run too (a SAF entry cancelled,
a terminal blocked, tokens created: each a documented answer); without a token every /v1
operation answers a documented 401 (test_ops_access checks roles and scopes).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode

from shared.banks import BANK_CODES
from switch.bank_client import BankClient
from switch.journal import Journal
from switch.settings import SwitchSettings
from switch.ops.app import create_ops_app
from tests.openapi import REJECTION_CHECKS
from tests.switch.ops_tokens import issue
from tests.switch.test_journal import open_journal
from tests.switch.test_ops_api import FULL_PANS, PAN_RUN, seed

# Requests generated per operation and mode: the storage-independent checks run in full on
# SQLite; PostgreSQL gets a sample (its own answers: the same routes on the other engine).
EXAMPLES_PER_OPERATION = {"sqlite": 30, "postgresql": 10}
CHECKS = REJECTION_CHECKS


@pytest.fixture
def ops_app(storage, clock) -> Iterator[FastAPI]:  # noqa: ANN001
    journal: Journal = open_journal(storage)
    seed(journal, clock)
    # Links to banks that do not listen: a retried reversal is recorded as failed, the
    # reconciliation reports the banks unavailable (a bank's answers are test_end_to_end's).
    settings = SwitchSettings(bank_urls={code: "http://127.0.0.1:9" for code in BANK_CODES})
    banks = BankClient(settings.bank_urls, 1_000, 2, settings.bank_credentials_by_code())
    app = create_ops_app(journal, stats_provider=lambda: {"inflight": 3}, banks=banks)
    app.state.demo_keys = True
    app.state.token = issue(journal.db)
    app.state.examples = EXAMPLES_PER_OPERATION[journal.db.dialect]
    yield app
    journal.db.dispose()


OPERATIONS = {
    "GET /health", "GET /v1/transactions", "GET /v1/transactions/{rrn}", "GET /v1/saf",
    "GET /v1/stats/banks", "GET /v1/settlement", "GET /v1/reconciliation",
    "POST /v1/saf/{saf_id}/retry", "POST /v1/saf/{saf_id}/cancel",
    "GET /v1/terminals", "GET /v1/terminals/{tid}", "POST /v1/terminals/{tid}/block", "POST /v1/terminals/{tid}/unblock",
    "POST /v1/cards/pin-reset", "GET /v1/tokens", "POST /v1/tokens", "POST /v1/tokens/{token_id}/revoke", "GET /v1/audit",
    "GET /v1/settlement/days/{day}", "GET /v1/alerts", "POST /v1/het-attempts", "GET /v1/banks/{bank}/reports",
    "GET /v1/banks/{bank}/reports/offline-exceptions", "GET /v1/banks/{bank}/reports/double-cards",
}


# Operations that hand on a bank's answer: with the fixture's banks out of reach they answer
# 503 naming the bank (documented), which is what they must do; every other check still holds.
BANK_PROXIED = {
    "GET /v1/banks/{bank}/reports", "GET /v1/banks/{bank}/reports/offline-exceptions", "GET /v1/banks/{bank}/reports/double-cards",
}


def ops_schema(app: FastAPI, token: str | None):  # noqa: ANN201
    """The ops API as schemathesis sees it, sending `token` for the bearer scheme (None: no token)."""
    config = SchemathesisConfig.from_dict({"auth": {"openapi": {"token": {"bearer": token}}}} if token else {})
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


def test_every_answer_agrees_with_the_openapi_description(ops_app: FastAPI) -> None:
    schema = ops_schema(ops_app, ops_app.state.token)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert OPERATIONS <= {op.label for op in operations}
    seen: set[tuple[str, int]] = set()
    for operation in operations:
        has_parameters = any(True for _ in operation.iter_parameters()) or operation.body
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if has_parameters else (GenerationMode.POSITIVE,):
            _run(operation, mode, seen, examples=ops_app.state.examples)
    # The run reached the answers that matter, not only refusals.
    assert {("GET /v1/transactions", 200), ("GET /v1/transactions", 422), ("GET /v1/settlement", 200),
            ("GET /v1/settlement", 422), ("GET /v1/stats/banks", 200), ("GET /v1/transactions/{rrn}", 404),
            ("POST /v1/tokens", 201), ("POST /v1/tokens", 422), ("GET /v1/audit", 200), ("GET /v1/terminals", 200)} <= seen


def test_without_a_token_every_operation_answers_a_documented_401(ops_app: FastAPI) -> None:
    schema = ops_schema(ops_app, None)
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith("/v1"):
            continue
        seen: set[tuple[str, int]] = set()
        _run(operation, GenerationMode.POSITIVE, seen, examples=5, headers={"Authorization": ""})
        assert {status for _, status in seen} == {401}, operation.label


def _run(operation, mode: GenerationMode, seen: set[tuple[str, int]], examples: int, headers: dict | None = None) -> None:  # noqa: ANN001
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,  # the same requests every run: a failure here is reproducible
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case) -> None:  # noqa: ANN001
        if headers is not None:
            case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        proxied = operation.label in BANK_PROXIED
        response = case.call_and_validate(checks=CHECKS, excluded_checks=[not_a_server_error] if proxied else None)
        if proxied and response.status_code >= 500:
            assert response.status_code == 503 and response.json()["detail"].startswith("bank "), response.text
        seen.add((operation.label, response.status_code))
        assert not [pan for pan in FULL_PANS if pan in response.text] and not PAN_RUN.search(response.text)

    check()
