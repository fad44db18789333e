"""The banks' side of operations through the switch, over the real network (SQLite and PostgreSQL).

BNI has just disbursed November's benefit. A branch prints Sri a second card and activates it
(her family now holds two). Within minutes, e-Warong EWBNI0000000009 takes six purchases with
six different BNI cards. Operations staff read BNI's Pedoman reports through the switch's ops
API with their token, and the alerts show the double card and the burst after the disbursement,
both known only from the bank.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi.testclient import TestClient

from shared import rc
from shared.banks import get_bank
from shared.cards import mask_pan
from bank_penyalur.demo import generator
from switch.alerts import AlertThresholds
from switch.bank_client import BankClient
from switch.ops import access
from switch.ops.app import create_ops_app
from tests.switch.network import PERIOD, Network, free_port, network_per_storage, raw_terminal
from tests.switch.test_batches import buy

PAN_RUN = re.compile(r"(?<![0-9])[0-9]{13,19}(?![0-9])")
BNI = get_bank("bni")
SPENDABLE = [p for p in (generator.generated_kpm(BNI, i) for i in range(40)) if p.spendable]
SHOP = 9  # EWBNI0000000009, BNI00009
# Lowered for a small network: five purchases make a burst; card sharing stays out of the way.
THRESHOLDS = AlertThresholds(disbursement_burst_purchases_min=5, card_sharing_cards_min=50)


@dataclass(frozen=True)
class Morning:
    sri: generator.GeneratedKpm
    second_pan: str
    buyers: tuple[generator.GeneratedKpm, ...]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def network(request, tmp_path_factory) -> Iterator[Network]:  # noqa: ANN001
    yield from network_per_storage(request, tmp_path_factory, "bankops")


def second_card(network: Network, nik: str, pin: str) -> str:
    """Print, hand over and activate another card for the KPM with `nik`, at the bank's counter."""
    bank = network.banks["bni"]
    headers = network.bank_headers("bni", "operator")
    printed = httpx.post(f"{bank.url}/v1/cards", json={"nik": nik}, headers=headers, timeout=10)
    assert printed.status_code == 201, printed.text
    pan = printed.json()["pan"]
    assert httpx.post(f"{bank.url}/v1/cards/{pan}/distribute", json={}, headers=headers, timeout=10).status_code == 200
    runtime = network.bank_runtime("bni")
    try:
        block = runtime.hsm.encipher_pin(pan, pin)
    finally:
        runtime.close()
    activated = httpx.post(f"{bank.url}/v1/cards/{pan}/activate", json={"pin_block": block}, headers=headers, timeout=10)
    assert activated.status_code == 200, activated.text
    return pan


@pytest.fixture(scope="module")
def morning(network: Network) -> Morning:
    sri, buyers = SPENDABLE[0], tuple(SPENDABLE[1:7])
    second = second_card(network, sri.record.nik, sri.pin)
    edc = raw_terminal(network, serial=SHOP)
    try:
        assert edc.sign_on()["39"] == rc.APPROVED
        for person in buyers:
            assert buy(edc, person, 10_000, batch=1)[1]["39"] == rc.APPROVED
    finally:
        edc.close()
    return Morning(sri, second, buyers)


def token(network: Network, bank: str | None = None) -> dict[str, str]:
    assert network.switch is not None
    with network.switch.journal.db.begin() as conn:
        issued = access.create_token(conn, "viewer", bank, "bank desk", "test", network.switch.now())
    return {"Authorization": f"Bearer {issued.token}"}


def ops_client(network: Network, urls: dict[str, str]) -> Iterator[TestClient]:
    assert network.switch is not None
    banks = BankClient(urls, 5_000, 4, network.switch.settings.bank_credentials_by_code())
    app = create_ops_app(network.switch.journal, banks=banks, now=network.switch.now)
    app.state.alert_thresholds = THRESHOLDS
    with TestClient(app, headers=token(network)) as client:
        yield client
        client.portal.call(banks.close)


@pytest.fixture
def ops(network: Network, morning: Morning) -> Iterator[TestClient]:
    """The ops API on the running switch's journal, linked to the network's banks."""
    yield from ops_client(network, {code: bank.url for code, bank in network.banks.items()})


def get(client: TestClient, url: str, status: int = 200, **params) -> httpx.Response:  # noqa: ANN003
    response = client.get(url, params=params)
    assert response.status_code == status, response.text
    assert not PAN_RUN.search(response.text), response.text
    return response


# -- the Pedoman's reports ----------------------------------------------------------------------------


def test_the_banks_report_through_the_switch(ops: TestClient) -> None:
    report = get(ops, "/v1/banks/bni/reports", period=PERIOD).json()
    assert (report["bank"], report["period"], report["level"]) == ("bni", PERIOD, "province")
    assert report["totals"]["funds_disbursed_idr"] > 0 and report["totals"]["funds_spent_idr"] >= 60_000 and report["rows"]
    by_regency = get(ops, "/v1/banks/bni/reports", period=PERIOD, level="regency").json()
    assert by_regency["level"] == "regency" and len(by_regency["rows"]) >= len(report["rows"])


def test_the_report_as_csv(ops: TestClient) -> None:
    response = get(ops, "/v1/banks/bni/reports", period=PERIOD, format="csv")
    assert response.headers["content-type"].startswith("text/csv")
    assert f'filename="sembako-report-bni-{PERIOD}.csv"' in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][0] == "province" and rows[-1][0] == "TOTAL"


def test_offline_exceptions_and_double_cards_through_the_switch(ops: TestClient, morning: Morning) -> None:
    assert get(ops, "/v1/banks/bni/reports/offline-exceptions", period=PERIOD).json() == []
    listed = get(ops, "/v1/banks/bni/reports/double-cards").json()
    [family] = listed["families"]
    assert [c["pan_masked"] for c in family["cards"]] == [mask_pan(morning.sri.pan), mask_pan(morning.second_pan)]
    assert listed["truncated"] is False


def test_a_bank_reads_its_own_reports_only(ops: TestClient, network: Network) -> None:
    ops.headers.update(token(network, "bri"))
    refused = get(ops, "/v1/banks/bni/reports", 403, period=PERIOD)
    assert "scoped to bri" in refused.json()["detail"]
    ops.headers.update(token(network, "bni"))
    assert get(ops, "/v1/banks/bni/reports/double-cards").json()["bank"] == "bni"


def test_what_the_switch_refuses_before_asking_the_bank(ops: TestClient) -> None:
    for params in ({"period": "2026-13"}, {"period": "November"}, {"period": PERIOD, "level": "desa"}):
        get(ops, "/v1/banks/bni/reports", 422, **params)
    get(ops, "/v1/banks/bank-x/reports", 422, period=PERIOD)
    get(ops, "/v1/banks/bni/reports/double-cards", 422, limit=0)
    gone = get(ops, "/v1/banks/bri/reports", 503, period=PERIOD)  # this network has no BRI
    assert gone.json()["detail"] == "the switch has no link to bank bri"


# -- alerts only the banks can tell -----------------------------------------------------------------------


def test_the_double_card_and_the_burst_after_the_disbursement(ops: TestClient, morning: Morning) -> None:
    found = get(ops, "/v1/alerts").json()
    assert {b["bank"]: b["status"] for b in found["banks"]} == {"bni": "available", "bri": "not_configured", "mandiri": "not_configured", "btn": "not_configured"}
    by_kind = {alert["kind"]: alert for alert in found["alerts"]}
    assert set(by_kind) == {"double_cards", "disbursement_burst"}
    double = by_kind["double_cards"]
    assert (double["subject"]["type"], double["subject"]["bank"], double["count"]) == ("family", "bni", 2)
    assert double["cards_masked"] == [mask_pan(morning.sri.pan), mask_pan(morning.second_pan)]
    burst = by_kind["disbursement_burst"]
    assert (burst["subject"]["id"], burst["count"], burst["threshold"]) == (BNI.merchant_id(SHOP), 6, 5)
    assert burst["details"]["period"] == PERIOD and burst["details"]["terminals"] == [BNI.terminal_id(SHOP)]
    assert sorted(burst["cards_masked"]) == sorted(mask_pan(p.pan) for p in morning.buyers)


def test_a_bank_out_of_reach_is_said_and_the_rest_still_answers(network: Network, morning: Morning) -> None:
    for client in ops_client(network, {"bni": f"http://127.0.0.1:{free_port()}"}):
        found = get(client, "/v1/alerts").json()
        [bni] = [b for b in found["banks"] if b["bank"] == "bni"]
        assert bni["status"] == "unavailable" and bni["reason"]
        assert [a["kind"] for a in found["alerts"]] == []  # both of today's alerts need the bank
        down = get(client, "/v1/banks/bni/reports", 503, period=PERIOD)
        assert down.json()["detail"].startswith("bank bni could not be asked")
