"""Input an attacker or a careless client sends the bank's HTTP API (issue 13): numbers JSON
cannot carry, oversized bodies, control characters, non-dates. Refused with 4xx, never a 500,
never echoed back, and nothing is stored (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient


from tests.bank_penyalur.test_api import PURCHASE, WATI, error_fields, purchase_body, snapshot
from tests.bank_penyalur.conftest import api_client

JSON = {"content-type": "application/json"}
ADVICE = "/v1/authorisations/advice"
REVERSAL = "/v1/authorisations/reversal"


@pytest.fixture
def client(bank) -> TestClient:  # noqa: ANN001
    return api_client(bank.runtime, raise_server_exceptions=False)


def raw_post(client: TestClient, path: str, body: dict) -> object:
    """POST a body as Python's json writes it: NaN and Infinity included."""
    return client.post(path, content=json.dumps(body), headers=JSON)


@pytest.mark.parametrize("amount", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_amounts_are_422_and_not_echoed(bank, client, amount: float) -> None:  # noqa: ANN001
    before = snapshot(client, bank)
    response = raw_post(client, PURCHASE, purchase_body(bank, amount_idr=amount))
    assert response.status_code == 422, response.text
    assert error_fields(response) == {"amount_idr"}
    assert all(set(error) == {"loc", "msg", "type"} for error in response.json()["detail"])
    assert "NaN" not in response.text and "Infinity" not in response.text
    assert snapshot(client, bank) == before


def test_a_purchase_padded_with_a_megabyte_is_413_and_stores_nothing(bank, client) -> None:  # noqa: ANN001
    before = snapshot(client, bank)
    body = purchase_body(bank, amount_idr=10_000)
    padded = json.dumps(body).replace(",", "," + " " * (1024 * 1024 // 6), 6)
    response = client.post(PURCHASE, content=padded, headers=JSON)
    assert response.status_code == 413, response.text
    assert snapshot(client, bank) == before
    assert client.post(PURCHASE, json=body).json()["rc"] == "00"  # the same purchase, unpadded


def test_the_authorisation_limit_is_tighter_than_the_rest(bank, client) -> None:  # noqa: ANN001
    limit_bytes = bank.runtime.settings.auth_body_max_bytes
    body = json.dumps(purchase_body(bank))
    within = body.replace(",", "," + " " * (limit_bytes - len(body) - 1), 1)
    assert client.post(PURCHASE, content=within, headers=JSON).status_code == 200
    beyond = body.replace(",", "," + " " * (limit_bytes - len(body) + 1), 1)
    assert client.post(PURCHASE, content=beyond, headers=JSON).status_code == 413
    openings = json.dumps({"kpm": [{**WATI, "nik": f"32040145128{n:05d}"} for n in range(200)], "print_cards": False})
    assert limit_bytes < len(openings) < bank.runtime.settings.body_max_bytes
    assert client.post("/v1/kpm/openings", content=openings, headers=JSON).status_code == 201


MERCHANT = {"id": "EWBNI0000000777", "name": "e-Warong Baru", "province": "Jawa Barat",
            "regency": "Kabupaten Bandung", "district": "Soreang", "village": "Pamekaran"}


@pytest.mark.parametrize("bad", ["\x00", "\n", "\x1b[31m", "\x7f", "\u0085"])
@pytest.mark.parametrize("field", ["name", "province", "village"])
def test_control_characters_in_text_fields_are_422(bank, client, bad: str, field: str) -> None:  # noqa: ANN001
    before = snapshot(client, bank)
    merchant = client.post("/v1/merchants", json={"merchants": [{**MERCHANT, field: f"Desa{bad}Satu"}]})
    assert merchant.status_code == 422, merchant.text
    assert field in error_fields(merchant)
    family = client.post("/v1/kpm/openings", json={"kpm": [{**WATI, field: f"X{bad}"}], "print_cards": False})
    assert family.status_code == 422 and field in error_fields(family), family.text
    assert client.get(f"/v1/merchants/{MERCHANT['id']}").status_code == 404
    assert snapshot(client, bank) == before


def test_printable_text_in_any_script_is_accepted(client) -> None:  # noqa: ANN001
    merchant = {**MERCHANT, "name": "Warung Bu Siti — sayur & telur", "village": "Désa Ümbul"}
    assert client.post("/v1/merchants", json={"merchants": [merchant]}).status_code == 201
    assert client.get(f"/v1/merchants/{MERCHANT['id']}").json()["name"] == merchant["name"]


@pytest.mark.parametrize(
    "day",
    [0, 1700000000, 0.5, "0", "1700000000", "20261103", "2026-11-3", "2026-11-03T00:00:00", "1970-01-01",
     "2024-11-01", "2027-12-01", "9999-12-31", None],
)
def test_transmission_dates_must_be_real_dates_near_the_banks(bank, client, day) -> None:  # noqa: ANN001
    before = snapshot(client, bank)
    response = client.post(PURCHASE, json=purchase_body(bank, transmission_date=day))
    assert response.status_code == 422, response.text
    assert error_fields(response) == {"transmission_date"}
    inquiry = {k: v for k, v in purchase_body(bank, transmission_date=day).items() if k != "amount_idr"}
    assert client.post("/v1/authorisations/balance-inquiry", json=inquiry).status_code == 422
    assert snapshot(client, bank) == before


def test_dates_within_a_year_of_the_banks_date_are_accepted(bank, client) -> None:  # noqa: ANN001
    for day in ("2025-11-03", "2026-01-31", "2027-11-03"):
        response = client.post(PURCHASE, json=purchase_body(bank, amount_idr=1_000, transmission_date=day))
        assert (response.status_code, response.json()["transmission_date"]) == (200, day)


def test_a_reversal_of_an_ancient_original_is_422(bank, client) -> None:  # noqa: ANN001
    body = {k: v for k, v in purchase_body(bank).items() if k != "pin_block"}
    reversal = {**body, "original_stan": "000001", "original_transmission_date": "1970-01-01"}
    response = client.post(REVERSAL, json=reversal)
    assert response.status_code == 422 and error_fields(response) == {"original_transmission_date"}


def test_advice_times_are_text_and_an_offset_is_converted_to_wib(bank, client) -> None:  # noqa: ANN001
    body = {k: v for k, v in purchase_body(bank, amount_idr=5_000).items() if k != "pin_block"}
    assert client.post(ADVICE, json={**body, "transaction_at": 0}).status_code == 422
    utc = client.post(ADVICE, json={**body, "transaction_at": "2026-11-03T01:30:00Z"})
    assert (utc.status_code, utc.json()["rc"]) == (200, "00"), utc.text
    future = {**body, "stan": bank.next_stan(), "transaction_at": "2026-11-04T09:30:00-05:00"}  # 21:30 WIB on the 4th
    assert client.post(ADVICE, json=future).json()["rc"] == "12"


def test_timestamps_in_answers_carry_the_wib_offset(bank, client) -> None:  # noqa: ANN001
    merchant = client.get(f"/v1/merchants/{bank.merchant_id}").json()
    assert merchant["registered_at"].endswith("+07:00")
    assert all(run["started_at"].endswith("+07:00") for run in client.get("/v1/disbursements").json())


def test_route_refusals_have_the_declared_422_shape(client) -> None:  # noqa: ANN001
    response = client.get("/v1/reports", params={"period": "2026-13"})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert set(error) == {"loc", "msg", "type"} and "YYYY-MM" in error["msg"]
    disbursement = client.post("/v1/disbursements", json={"period": "2026-00"})
    assert disbursement.status_code == 422 and isinstance(disbursement.json()["detail"], list)
