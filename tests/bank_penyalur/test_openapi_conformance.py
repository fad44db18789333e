"""The bank's answers agree with its own OpenAPI document (schemathesis, in process).

Every operation of the bank's API gets generated requests, valid and invalid, and every answer
must be documented: its status code, content type, headers and body schema; never a 5xx. The
run is bounded (EXAMPLES per operation and mode) so that it stays well under a minute; the
ledger is checked after it like after every test of a seeded bank. Requests carry the credential
each operation declares (the switch's or the bank operators'); a generated request left without
one on purpose must be refused (401).
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from bank_penyalur.api.app import create_app
from bank_penyalur.demo.generator import generated_kpm
from shared.credentials import HOLDERS, OPERATOR, SWITCH
from tests.openapi import CONFORMANCE_CHECKS, REJECTION_CHECKS

EXAMPLES = 12
CHECKS = CONFORMANCE_CHECKS
MODES = {GenerationMode.POSITIVE: CHECKS, GenerationMode.NEGATIVE: REJECTION_CHECKS}


def test_every_answer_matches_the_openapi_document(bank) -> None:  # noqa: ANN001
    schema = bank_schema(bank)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:
        for mode, checks in MODES.items():
            _exercise(operation, mode, checks)


def test_answers_with_data_match_the_openapi_document(bank) -> None:  # noqa: ANN001
    """Generated requests mostly meet unknown cards and families (404); these find real ones,
    so that timestamps, balances and lists are checked against their declared schemas too."""
    schema = bank_schema(bank)
    assert bank.advice("normal", 200_000).rc == "00"  # an offline exception to list
    assert bank.advice("normal", 200_000).rc == "51"
    kpm, normal = generated_kpm(bank.runtime.bank, 0), bank.cards["normal"]
    reset = {"actor": "ops", "reason": "KPM lupa PIN"}
    cases = [
        ("GET", "/health", {}, 200),
        ("GET", "/v1/kpm/{nik}", {"path_parameters": {"nik": kpm.record.nik}}, 200),
        ("GET", "/v1/merchants/{merchant_id}", {"path_parameters": {"merchant_id": bank.merchant_id}}, 200),
        ("GET", "/v1/cards/{pan}", {"path_parameters": {"pan": normal.pan}}, 200),
        ("POST", "/v1/cards/{pan}/activate", {"path_parameters": {"pan": normal.pan}, "body": {"pin_block": bank.pin_block(normal.pan, normal.pin)}}, 409),
        ("POST", "/v1/ops/cards/{pan}/pin-reset", {"path_parameters": {"pan": normal.pan}, "body": reset}, 200),
        ("GET", "/v1/ops/audit", {}, 200),
        ("GET", "/v1/disbursements", {}, 200),
        ("GET", "/v1/reports/offline-exceptions", {"query": {"period": "2026-11"}}, 200),
        ("POST", "/v1/authorisations/purchase", {"body": {"pan": "9" * 20_000}}, 413),
        ("POST", "/v1/authorisations/purchase", {"body": {"amount_idr": "NaN"}}, 422),
    ]
    for method, path, parts, status_code in cases:
        holder = SWITCH if path.startswith("/v1/authorisations/") else OPERATOR  # as the bank's staff would
        response = schema[path][method].Case(**parts).call_and_validate(checks=CHECKS, headers=bank.runtime.settings.bearer(holder))
        assert response.status_code == status_code, (method, path, response.text)


def bank_schema(bank):  # noqa: ANN001, ANN201
    """The bank's API as schemathesis sees it, with the bank's credentials for its two security
    schemes (named after their holders)."""
    settings = bank.runtime.settings
    auth = {"openapi": {holder: {"bearer": settings.credential(holder)} for holder in HOLDERS}}
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(bank.runtime), config=SchemathesisConfig.from_dict({"auth": auth}))


def _exercise(operation, mode: GenerationMode, checks: list) -> None:  # noqa: ANN001
    @given(operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:  # noqa: ANN001
        case.call_and_validate(checks=checks)

    try:
        run()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE  # an operation without parameters has no invalid input
