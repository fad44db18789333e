"""Several authorisations in one HTTP call (POST /v1/authorisations/batch), on SQLite and
PostgreSQL: each item is answered as its own endpoint answers it, in order; a bad item is its
own 422 and touches nothing else; a repeated batch posts nothing twice; the ledger balances."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from bank_penyalur.api.routes.authorisations import BATCH_ITEMS_MAX

from tests.bank_penyalur.conftest import api_client
from tests.bank_penyalur.test_api import purchase_body

BATCH = "/v1/authorisations/batch"


@pytest.fixture
def client(bank) -> TestClient:  # noqa: ANN001
    return api_client(bank.runtime, raise_server_exceptions=False)


def ledger(client: TestClient) -> dict:
    check = client.get("/v1/ops/ledger-check").json()
    assert check["ok"] is True and check["balance_sum_idr"] == 0, check
    return check


def reversal_of(purchase: dict, stan: str) -> dict:
    return {
        **{k: purchase[k] for k in ("terminal_id", "transmission_date", "merchant_id", "pan", "amount_idr")},
        "stan": stan,
        "original_stan": purchase["stan"],
        "original_transmission_date": purchase["transmission_date"],
    }


def test_a_batch_answers_each_item_as_its_own_endpoint_would(bank, client) -> None:  # noqa: ANN001
    start = bank.balance("normal")
    transfers = ledger(client)["transfers"]
    first = purchase_body(bank, amount_idr=12_000, rrn="700000000001")
    second = purchase_body(bank, amount_idr=8_000, rrn="700000000002")
    broke = purchase_body(bank, "zero_balance", amount_idr=5_000)
    malformed = {**purchase_body(bank, amount_idr=1_000), "amount_idr": "seribu"}
    items = [
        {"op": "purchase", "request": first},
        {"op": "purchase", "request": malformed},
        {"op": "purchase", "request": second},
        {"op": "purchase", "request": broke},
        {"op": "reversal", "request": reversal_of(second, bank.next_stan())},
    ]
    answer = client.post(BATCH, json={"items": items})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["status"] for r in results] == [200, 422, 200, 200, 200]
    assert [r["answer"]["rc"] if r["answer"] else None for r in results] == ["00", None, "00", "51", "00"]
    assert any(error["loc"][-1] == "amount_idr" for error in results[1]["detail"])
    assert (results[0]["answer"]["rrn"], results[0]["answer"]["stan"]) == ("700000000001", first["stan"])
    assert results[2]["answer"]["balance_idr"] == start - 20_000  # it saw the item before it
    assert bank.balance("normal") == start - 12_000  # the second purchase reversed in the same call
    assert ledger(client)["transfers"] == transfers + 3  # two debits and the reversal's credit

    again = client.post(BATCH, json={"items": items})
    assert [r["answer"] for r in again.json()["results"]] == [r["answer"] for r in results]
    assert bank.balance("normal") == start - 12_000
    assert ledger(client)["transfers"] == transfers + 3

    alone = client.post("/v1/authorisations/purchase", json=first)
    assert alone.json() == results[0]["answer"]  # one key, one answer, whichever way it came


def test_an_advice_and_an_inquiry_in_a_batch(bank, client) -> None:  # noqa: ANN001
    advice = bank.advice_request("normal", 15_000).model_dump(mode="json")
    inquiry = {k: v for k, v in purchase_body(bank).items() if k != "amount_idr"}
    results = client.post(BATCH, json={"items": [{"op": "advice", "request": advice}, {"op": "inquiry", "request": inquiry}]}).json()["results"]
    assert [(r["status"], r["answer"]["rc"]) for r in results] == [(200, "00"), (200, "00")]
    assert results[1]["answer"]["balance_idr"] == bank.balance("normal")
    ledger(client)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"items": []}, "no items"),
        ({"items": [{"op": "withdrawal", "request": {}}]}, "an op no endpoint has"),
        ({"items": [{"op": "purchase"}]}, "an item without its request"),
        ({"items": [{"op": "purchase", "request": {}}] * (BATCH_ITEMS_MAX + 1)}, "too many items"),
        ({"items": [], "extra": 1}, "an unknown key"),
    ],
)
def test_a_malformed_batch_is_422_and_changes_nothing(bank, client, body: dict, why: str) -> None:  # noqa: ANN001
    before = ledger(client)["transfers"]
    response = client.post(BATCH, json=body)
    assert response.status_code == 422, (why, response.text)
    assert ledger(client)["transfers"] == before


def test_a_batch_body_beyond_its_limit_is_413(bank, client) -> None:  # noqa: ANN001
    huge = {"items": [{"op": "purchase", "request": {"pad": "x" * 600_000}}]}
    assert client.post(BATCH, json=huge).status_code == 413


def test_an_item_dated_outside_the_window_is_its_own_422(bank, client) -> None:  # noqa: ANN001
    old = purchase_body(bank, transmission_date="2020-01-01")
    fine = purchase_body(bank, amount_idr=2_000)
    results = client.post(BATCH, json={"items": [{"op": "purchase", "request": old}, {"op": "purchase", "request": fine}]}).json()["results"]
    assert [r["status"] for r in results] == [422, 200]
    assert results[0]["detail"][0]["type"] == "date_out_of_range"
    ledger(client)
