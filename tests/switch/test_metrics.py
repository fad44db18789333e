"""Operations staff scrape /metrics on the switch's ops API and on each bank's API (Prometheus).

Over a real network (a bank process, the switch), a terminal buys, is declined, settles its
batch, and loses its bank for a moment: the counts by response code and bank, the latency
histograms, the settled batch size, the store-and-forward depth and the signed-on terminals
show it, on both sides. No card number ever appears in a metric.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared import protocol, rc
from shared.banks import get_bank
from shared.metrics import CONTENT_TYPE_LATEST, exposition
from shared.protocol import BatchTotals

from bank_penyalur.demo import generator
from switch.journal import MessageRecord
from switch.metrics import SwitchMetrics
from switch.ops.app import create_ops_app
from tests.bounded import bounded, wait_until
from tests.metrics import samples, value
from tests.switch.network import Network, RawTerminal, network_per_storage, raw_terminal
from tests.switch.test_journal import open_journal

BNI = get_bank("bni")
CARDS = [p for p in (generator.generated_kpm(BNI, i) for i in range(40)) if p.spendable]
BENEFIT_IDR = 150_000
PAN_RUN = re.compile(r"\d{12,19}")


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def network(request, tmp_path_factory) -> Iterator[Network]:  # noqa: ANN001
    yield from network_per_storage(request, tmp_path_factory, "metrics")


@pytest.fixture
def net(network: Network) -> Iterator[Network]:
    """The network for one scenario; the bank's ledger is checked balanced after it."""
    yield network
    network.assert_ledger_balanced()


def signed_on(network: Network, serial: int) -> RawTerminal:
    terminal = raw_terminal(network, serial=serial)
    assert terminal.sign_on()["39"] == rc.APPROVED
    return terminal


# -- reading /metrics as Prometheus would ---------------------------------------------------------


def scrape(url: str) -> str:
    response = bounded(httpx.get, f"{url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    return response.text




def assert_no_card_data(exposition: str, pans: list[str]) -> None:
    """No full card number anywhere, and no long digit run in any label."""
    for pan in pans:
        assert pan not in exposition
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            for label in sample.labels.values():
                assert not PAN_RUN.search(label), (sample.name, label)


# -- the scenarios ----------------------------------------------------------------------------


def test_purchases_and_a_decline_show_on_both_sides(net: Network) -> None:
    network = net
    edc = signed_on(network, serial=1)
    bank_url = network.banks["bni"].url
    switch_before, bank_before = samples(scrape(network.ops_url)), samples(scrape(bank_url))
    try:
        buyers = CARDS[0:3]
        for person in buyers:
            assert edc.purchase(person.pan, person.pin, 12_000)["39"] == rc.APPROVED
        declined = CARDS[3]
        assert edc.purchase(declined.pan, "000000" if declined.pin != "000000" else "111111", 5_000)["39"] == rc.WRONG_PIN
        switch_text, bank_text = scrape(network.ops_url), scrape(bank_url)
    finally:
        edc.close()
    switch, bank = samples(switch_text), samples(bank_text)

    def grew(found: dict, before: dict, name: str, **labels: str) -> float:
        return value(found, name, **labels) - value(before, name, **labels)

    requests = "sembako_switch_requests_total"
    assert grew(switch, switch_before, requests, kind="purchase", rc="00", bank="bni") == 3
    assert grew(switch, switch_before, requests, kind="purchase", rc="55", bank="bni") == 1
    assert grew(switch, switch_before, "sembako_switch_request_seconds_count", kind="purchase") == 4
    assert grew(switch, switch_before, "sembako_switch_request_seconds_bucket", kind="purchase", le="+Inf") == 4
    assert grew(switch, switch_before, "sembako_switch_bank_seconds_count", bank="bni") == 4
    assert value(switch, "sembako_switch_terminals_signed_on") >= 1
    assert value(switch, "sembako_switch_connections") >= 1
    assert value(switch, "sembako_switch_saf_depth") == 0

    authorisations = "sembako_bank_authorisations_total"
    assert grew(bank, bank_before, authorisations, op="purchase", rc="00") == 3
    assert grew(bank, bank_before, authorisations, op="purchase", rc="55") == 1
    assert grew(bank, bank_before, "sembako_bank_authorisation_seconds_count", op="purchase") == 4
    assert grew(bank, bank_before, "sembako_bank_batch_size_sum") == 4  # every request in one batch or another
    assert value(bank, "sembako_bank_queue_depth") == 0

    pans = [p.pan for p in [*buyers, declined]]
    assert_no_card_data(switch_text, pans)
    assert_no_card_data(bank_text, pans)


def test_a_settled_batch_shows_its_size(net: Network) -> None:
    network = net
    edc = signed_on(network, serial=2)
    before = samples(scrape(network.ops_url))
    try:
        for person in CARDS[4:6]:
            assert edc.purchase(person.pan, person.pin, 7_000)["39"] == rc.APPROVED
        totals = BatchTotals(purchase_count=2, purchase_amount_idr=14_000)
        answer = edc.exchange(protocol.settlement_request(edc.terminal, edc.next_stan(), datetime.now(), 1, totals))
        assert answer["39"] == rc.APPROVED
    finally:
        edc.close()
    after = samples(scrape(network.ops_url))
    assert value(after, "sembako_switch_requests_total", kind="settlement", rc="00", bank="none") - value(
        before, "sembako_switch_requests_total", kind="settlement", rc="00", bank="none"
    ) == 1
    assert value(after, "sembako_switch_batch_size_count") - value(before, "sembako_switch_batch_size_count") == 1
    assert value(after, "sembako_switch_batch_size_sum") - value(before, "sembako_switch_batch_size_sum") == 2


def test_a_silent_bank_shows_in_the_saf_depth_until_the_reversal_is_delivered(net: Network) -> None:
    network = net
    edc = signed_on(network, serial=3)
    person = CARDS[6]
    bank = network.banks["bni"]
    before = samples(scrape(network.ops_url))
    bank.freeze()
    try:
        assert edc.purchase(person.pan, person.pin, 9_000)["39"] == rc.ISSUER_UNAVAILABLE
        during = samples(scrape(network.ops_url))
    finally:
        bank.thaw()
        edc.close()
    assert value(during, "sembako_switch_saf_depth") == 1
    assert value(during, "sembako_switch_requests_total", kind="purchase", rc="91", bank="bni") - value(
        before, "sembako_switch_requests_total", kind="purchase", rc="91", bank="bni"
    ) == 1
    assert wait_until(lambda: value(samples(scrape(network.ops_url)), "sembako_switch_saf_depth") == 0)
    assert wait_until(lambda: network.balance_of(person.pan) == BENEFIT_IDR)


# -- the tallies themselves, without a network ---------------------------------------------------


def _message(direction: str, mti: str, code: str | None, at_s: float, **fields: str) -> MessageRecord:
    at = datetime(2026, 11, 2, 9, 0, 0) + timedelta(seconds=at_s)
    return MessageRecord(None, "BNI00001", "000001", mti, direction, code, fields, at)


def test_refusals_count_without_a_bank_and_odd_codes_do_not_grow_the_labels() -> None:
    metrics = SwitchMetrics()
    refusal = [_message("terminal_in", "0200", None, 0.0), _message("terminal_out", "0210", "58", 0.002)]
    odd = [
        _message("terminal_in", "0200", None, 0.0),
        _message("bank_out", "0200", None, 0.001, bank="bri"),
        _message("terminal_out", "0210", "Q7", 0.030),
    ]
    sign_on = [_message("terminal_in", "0800", None, 0.0), _message("terminal_out", "0810", "00", 0.0)]
    for messages in (refusal, odd, sign_on):
        metrics.journalled(None, messages)
    found = samples(_exposition(metrics))
    assert value(found, "sembako_switch_requests_total", kind="purchase", rc="58", bank="none") == 1
    assert value(found, "sembako_switch_requests_total", kind="purchase", rc="other", bank="bri") == 1
    assert value(found, "sembako_switch_request_seconds_count", kind="purchase") == 2
    assert value(found, "sembako_switch_request_seconds_bucket", kind="purchase", le="0.0025") == 1
    assert sum(v for (name, _), v in found.items() if name == "sembako_switch_requests_total") == 2  # 0800 not counted


def _exposition(metrics: SwitchMetrics) -> str:
    return exposition(metrics.registry).decode()


def test_two_switches_in_one_process_keep_their_own_registries() -> None:
    first, second = SwitchMetrics(), SwitchMetrics()
    first.journalled(None, [_message("terminal_in", "0100", None, 0.0), _message("terminal_out", "0110", "00", 0.01)])
    assert value(samples(_exposition(first)), "sembako_switch_requests_total", kind="inquiry", rc="00", bank="none") == 1
    assert value(samples(_exposition(second)), "sembako_switch_requests_total", kind="inquiry", rc="00", bank="none") == 0


def test_an_ops_api_without_a_running_switch_still_reports_the_saf_depth(storage) -> None:  # noqa: ANN001
    from fastapi.testclient import TestClient

    journal = open_journal(storage)
    try:
        journal.enqueue_saf("000000000001", "bni", {"pan": CARDS[0].pan, "amount_idr": 1_000}, datetime(2026, 11, 2, 9, 0))
        client = TestClient(create_ops_app(journal))
        response = client.get("/metrics")
        assert response.status_code == 200 and response.headers["content-type"] == CONTENT_TYPE_LATEST
        found = samples(response.text)
        assert value(found, "sembako_switch_saf_depth") == 1
        assert_no_card_data(response.text, [CARDS[0].pan])
        assert "/metrics" not in client.get("/openapi.json").json()["paths"]
    finally:
        journal.db.dispose()
