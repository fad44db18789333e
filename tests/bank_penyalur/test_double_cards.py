"""Double cards at the bank: families holding more than one active KKS, on SQLite and PostgreSQL.

The demo bank's families have one active card each (its "kartu ganda" card is blocked). Then a
branch prints Rina a second card and activates it: her family holds two. Her husband Joko is
opened as a KPM of his own on the same KK, with a card of his: the family holds three. Blocking
the extra cards leaves one, and the list is empty again.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from shared.cards import mask_pan
from shared.clock import FixedClock
from bank_penyalur.demo.generator import generated_kpm
from tests.bank_penyalur.conftest import Bank, api_client

PAN_RUN = re.compile(r"(?<![0-9])[0-9]{13,19}(?![0-9])")


@pytest.fixture
def client(bank: Bank) -> TestClient:
    return api_client(bank.runtime)


def double_cards(client: TestClient, **params) -> dict:  # noqa: ANN003
    response = client.get("/v1/reports/double-cards", params=params)
    assert response.status_code == 200, response.text
    assert not PAN_RUN.search(response.text)
    return response.json()


def new_active_card(client: TestClient, bank: Bank, nik: str, pin: str = "246810") -> str:
    printed = client.post("/v1/cards", json={"nik": nik})
    assert printed.status_code == 201, printed.text
    pan = printed.json()["pan"]
    assert client.post(f"/v1/cards/{pan}/distribute", json={}).status_code == 200
    activated = client.post(f"/v1/cards/{pan}/activate", json={"pin_block": bank.pin_block(pan, pin)})
    assert activated.json()["status"] == "activated", activated.text
    return pan


def test_the_demo_bank_has_no_double_cards(client: TestClient) -> None:
    assert double_cards(client) == {"bank": "bni", "families": [], "truncated": False}


def test_a_second_card_then_a_second_kpm_of_the_family(client: TestClient, bank: Bank, clock: FixedClock) -> None:
    rina = next(k for k in (generated_kpm(bank.runtime.bank, i) for i in range(20)) if k.activated and k.emoney)
    kk = rina.record.kk_number
    clock.advance(timedelta(days=2))
    second = new_active_card(client, bank, rina.record.nik)

    [family] = double_cards(client)["families"]
    assert family["family"] == f"KK {kk[:4]}********{kk[-4:]}"
    assert [card["pan_masked"] for card in family["cards"]] == [mask_pan(rina.pan), mask_pan(second)]
    assert family["double_since"] == family["cards"][1]["active_since"] == f"{clock.now().isoformat()}+07:00"
    assert len(family["kpm_ids"]) == 1 and family["province"] == rina.record.province

    joko = {**rina.record.model_dump(), "nik": f"{rina.record.nik[:-4]}9999", "name": "Joko Santoso"}
    opened = client.post("/v1/kpm/openings", json={"kpm": [joko]})
    assert opened.json()[0]["result"] == "opened", opened.text
    clock.advance(timedelta(hours=1))
    third = new_active_card(client, bank, joko["nik"])
    [family] = double_cards(client)["families"]
    assert len(family["cards"]) == 3 and len(family["kpm_ids"]) == 2
    assert family["cards"][2]["pan_masked"] == mask_pan(third)

    for pan in (second, third):
        assert client.post(f"/v1/cards/{pan}/block", json={"reason": "Kartu ganda"}).status_code == 200
    assert double_cards(client)["families"] == []


def test_a_kpm_without_a_kk_number_is_a_family_of_one(client: TestClient, bank: Bank) -> None:
    lone = {
        "nik": "3204010101809999", "kk_number": "320401", "name": "Tanpa KK", "first_period": "2026-11",
        "province": "Jawa Barat", "regency": "Kabupaten Bandung", "district": "Soreang", "village": "Desa Satu",
    }
    opened = client.post("/v1/kpm/openings", json={"kpm": [lone]})
    assert opened.status_code == 201 and opened.json()[0]["result"] == "opened", opened.text
    for _ in range(2):
        new_active_card(client, bank, lone["nik"])
    [family] = double_cards(client)["families"]
    assert (family["family"], family["kpm_ids"]) == (f"KPM {opened.json()[0]['kpm_id']}", [opened.json()[0]["kpm_id"]])


def test_limits_and_filters(client: TestClient, bank: Bank) -> None:
    rina = next(k for k in (generated_kpm(bank.runtime.bank, i) for i in range(20)) if k.activated and k.emoney)
    new_active_card(client, bank, rina.record.nik)
    assert len(double_cards(client, province=rina.record.province)["families"]) == 1
    assert double_cards(client, province="Papua Pegunungan")["families"] == []
    assert client.get("/v1/reports/double-cards", params={"limit": 0}).status_code == 422
    assert client.get("/v1/reports/double-cards", params={"limit": 1_001}).status_code == 422
