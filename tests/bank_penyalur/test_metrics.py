"""The bank's GET /metrics (Prometheus): authorisations by operation and response code, their
latency, group-commit batch sizes and the queue depth, on SQLite and PostgreSQL.

A KPM buys and is declined through the bank's HTTP API as the switch calls it; then a burst of
purchases queued at once is answered in batches by several writers: every answer and every
batch is counted exactly once, and no card number shows in any metric.
"""

from __future__ import annotations

import re
from concurrent.futures import wait

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from shared import rc
from shared.metrics import CONTENT_TYPE_LATEST

from bank_penyalur.batcher import AuthorisationBatcher
from bank_penyalur.metrics import BankMetrics
from tests.metrics import samples, value
from tests.bank_penyalur.test_api import PURCHASE, purchase_body
from tests.bank_penyalur.conftest import api_client

PAN_RUN = re.compile(r"\d{12,19}")




def scrape(client: TestClient) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    return response.text


def assert_no_card_data(exposition: str, pans: list[str]) -> None:
    for pan in pans:
        assert pan not in exposition
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            assert not any(PAN_RUN.search(label) for label in sample.labels.values()), sample


def test_a_purchase_and_a_wrong_pin_are_counted_by_response_code(bank) -> None:  # noqa: ANN001
    client = api_client(bank.runtime, raise_server_exceptions=False)
    try:
        approved = client.post(PURCHASE, json=purchase_body(bank, "normal", 10_000))
        declined = client.post(PURCHASE, json=purchase_body(bank, "pkh_combo", 5_000, pin="000000"))
        assert approved.json()["rc"] == rc.APPROVED and declined.json()["rc"] == rc.WRONG_PIN
        exposition = scrape(client)
    finally:
        bank.runtime.batcher.stop()
    found = samples(exposition)
    assert value(found, "sembako_bank_authorisations_total", op="purchase", rc="00") == 1
    assert value(found, "sembako_bank_authorisations_total", op="purchase", rc="55") == 1
    assert value(found, "sembako_bank_authorisation_seconds_count", op="purchase") == 2
    assert value(found, "sembako_bank_authorisation_seconds_bucket", op="purchase", le="+Inf") == 2
    assert value(found, "sembako_bank_batch_size_sum") == 2
    assert value(found, "sembako_bank_queue_depth") == 0
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]
    assert_no_card_data(exposition, [card.pan for card in bank.cards.values()])


def test_a_burst_is_counted_once_per_answer_and_per_batch(bank) -> None:  # noqa: ANN001
    writers = 1 if bank.runtime.db.dialect == "sqlite" else 2
    batcher = AuthorisationBatcher(bank.runtime.authoriser, batch_max=8, queue_max=512, writers=writers)
    try:
        futures = [batcher.submit("purchase", bank.purchase_request("normal", 10_000)) for _ in range(40)]
        done, pending = wait(futures, timeout=30)
        assert not pending, "authorisations still waiting after 30 s"
    finally:
        batcher.stop()
    found = samples(batcher.metrics.scrape().decode())
    # The card holds 150 000: 15 purchases of 10 000 pass, the other 25 find it empty.
    assert value(found, "sembako_bank_authorisations_total", op="purchase", rc="00") == 15
    assert value(found, "sembako_bank_authorisations_total", op="purchase", rc="51") == 25
    assert value(found, "sembako_bank_authorisation_seconds_count", op="purchase") == 40
    assert value(found, "sembako_bank_batch_size_sum") == 40
    assert value(found, "sembako_bank_batch_size_count") == batcher.batches
    assert value(found, "sembako_bank_batch_size_bucket", le="8.0") == batcher.batches  # never above batch_max
    assert value(found, "sembako_bank_queue_depth") == 0


def test_two_banks_in_one_process_keep_their_own_registries() -> None:
    first, second = BankMetrics(queue_depth=lambda: 3), BankMetrics()
    first.answered("inquiry", rc.APPROVED, 0.0)
    first.answered("inquiry", "Z9", 0.0)  # an unknown code: one bounded label, not a new one each time
    one, other = samples(first.scrape().decode()), samples(second.scrape().decode())
    assert value(one, "sembako_bank_authorisations_total", op="inquiry", rc="00") == 1
    assert value(one, "sembako_bank_authorisations_total", op="inquiry", rc="other") == 1
    assert value(one, "sembako_bank_queue_depth") == 3
    assert value(other, "sembako_bank_authorisations_total", op="inquiry", rc="00") == 0
    assert ("sembako_bank_queue_depth", frozenset()) not in other
