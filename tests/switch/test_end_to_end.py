"""A purchase travels card -> terminal -> switch -> bank ledger and back, over the real protocol.

One network per storage (SQLite files, or schemas on the real PostgreSQL): a bank process and
the switch on ephemeral ports. Every test leaves the bank's ledger balanced.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import select

from shared import iso8583, protocol, rc
from shared.banks import get_bank
from shared.cards import mask_pan

from bank_penyalur.demo import fixture, generator
from switch.tables import SafEntryRow
from tests.bounded import wait_until
from tests.switch.network import Network, network_per_storage, raw_terminal

BNI = get_bank("bni")
CARDS = {c.label: c for c in fixture.demo_cards(BNI)}
BENEFIT_IDR = 150_000


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def network(request, tmp_path_factory) -> Iterator[Network]:  # noqa: ANN001
    yield from network_per_storage(request, tmp_path_factory, "e2e")


@pytest.fixture(autouse=True)
def ledger_balanced(network: Network) -> Iterator[None]:
    yield
    network.assert_ledger_balanced()


def balance_of(network: Network, pan: str) -> int:
    return network.balance_of(pan)



@pytest.fixture
def edc(network: Network):  # noqa: ANN201
    terminal = raw_terminal(network, serial=1)
    assert terminal.sign_on()["39"] == rc.APPROVED
    yield terminal
    terminal.close()


SPENDABLE = [p for p in (generator.generated_kpm(BNI, i) for i in range(40)) if p.spendable]


def card(index: int) -> generator.GeneratedKpm:
    """The index-th funded, activated generated card; each test uses its own."""
    return SPENDABLE[index]


# -- Cek, Bayar and the field situations -------------------------------------------------------


def test_cek_answers_the_balance(edc) -> None:  # noqa: ANN001
    answer = edc.inquiry(CARDS["pkh_combo"].pan, CARDS["pkh_combo"].pin)
    assert answer["t"] == "0110" and answer["39"] == rc.APPROVED
    assert protocol.parse_balance_field(answer["54"]) == BENEFIT_IDR
    assert len(answer["37"]) == 12


def test_bayar_reduces_the_balance_by_the_amount(network, edc) -> None:  # noqa: ANN001
    normal = CARDS["normal"]
    answer = edc.purchase(normal.pan, normal.pin, 35_000)
    assert (answer["t"], answer["39"]) == ("0210", rc.APPROVED)
    assert protocol.parse_balance_field(answer["54"]) == BENEFIT_IDR - 35_000
    assert len(answer["38"]) == 6
    assert balance_of(network, normal.pan) == BENEFIT_IDR - 35_000


@pytest.mark.parametrize(
    ("label", "expected"),
    [("zero_balance", rc.INSUFFICIENT_FUNDS), ("no_emoney", rc.NO_EMONEY_ACCOUNT), ("lost", rc.LOST_CARD), ("blocked", rc.RESTRICTED_CARD)],
)
def test_field_situations(edc, label: str, expected: str) -> None:  # noqa: ANN001
    demo = CARDS[label]
    assert edc.purchase(demo.pan, demo.pin, 10_000)["39"] == expected


def test_wrong_pins_block_the_card_even_for_the_right_pin(edc) -> None:  # noqa: ANN001
    person = card(0)
    codes = [edc.purchase(person.pan, "000000" if person.pin != "000000" else "111111", 1_000)["39"] for _ in range(3)]
    assert codes == [rc.WRONG_PIN, rc.WRONG_PIN, rc.PIN_TRIES_EXCEEDED]
    assert edc.purchase(person.pan, person.pin, 1_000)["39"] == rc.PIN_TRIES_EXCEEDED


def test_replaced_card_reaches_the_same_balance(network, edc) -> None:  # noqa: ANN001
    new = CARDS["replaced_new"]
    assert protocol.parse_balance_field(edc.inquiry(new.pan, new.pin)["54"]) == BENEFIT_IDR
    assert edc.purchase(CARDS["replaced_old"].pan, CARDS["replaced_old"].pin, 10_000)["39"] == rc.RESTRICTED_CARD


def test_unknown_card_number_is_refused(edc) -> None:  # noqa: ANN001
    assert edc.purchase("9999990000000000", "123456", 10_000)["39"] == rc.INVALID_CARD


# -- reversals and duplicates ------------------------------------------------------------------


def test_reversal_restores_the_balance_exactly_once(network, edc) -> None:  # noqa: ANN001
    person = card(1)
    purchase = edc.purchase_doc(person.pan, person.pin, 20_000)
    assert edc.exchange(purchase)["39"] == rc.APPROVED
    assert edc.reversal(purchase)["39"] == rc.APPROVED
    assert edc.reversal(purchase, repeat=True)["39"] == rc.APPROVED
    assert balance_of(network, person.pan) == BENEFIT_IDR


def test_a_repeated_reversal_whose_answer_was_lost_gets_that_answer_again(network, edc) -> None:  # noqa: ANN001
    """The EDC repeats an unanswered 0400 as 0401 with the same STAN and fields: the switch knows
    it as the same request (not 94), and the money comes back once."""
    person = card(13)
    purchase = edc.purchase_doc(person.pan, person.pin, 25_000)
    assert edc.exchange(purchase)["39"] == rc.APPROVED
    reversal = protocol.reversal_request(purchase, edc.next_stan(), datetime.now())
    first = edc.exchange(reversal)  # its answer is "lost": the terminal repeats it
    repeat = edc.exchange({**reversal, "t": iso8583.REVERSAL_REPEAT})
    assert (first["39"], repeat["39"], repeat["t"]) == (rc.APPROVED, rc.APPROVED, "0410")
    assert {k: v for k, v in repeat.items() if k != "64"} == {k: v for k, v in first.items() if k != "64"}
    assert balance_of(network, person.pan) == BENEFIT_IDR


def test_duplicate_stan_gets_the_same_answer_and_one_posting(network, edc) -> None:  # noqa: ANN001
    person = card(2)
    message = iso8583.encode_with_mac(edc.purchase_doc(person.pan, person.pin, 15_000), edc.tak)
    answers = []
    for _ in range(3):
        edc.send_message(message)
        answers.append(edc.read_message()[1])
    assert answers[0] == answers[1] == answers[2]
    assert answers[0]["39"] == rc.APPROVED
    assert balance_of(network, person.pan) == BENEFIT_IDR - 15_000


def test_same_stan_with_another_amount_is_a_duplicate(network, edc) -> None:  # noqa: ANN001
    person = card(3)
    first = edc.purchase_doc(person.pan, person.pin, 15_000)
    assert edc.exchange(first)["39"] == rc.APPROVED
    second = {**first, "4": "000000160000"}
    assert edc.exchange(second)["39"] == rc.DUPLICATE
    assert balance_of(network, person.pan) == BENEFIT_IDR - 15_000


# -- the network misbehaving ---------------------------------------------------------------------


def test_malformed_frames_get_30_and_the_connection_keeps_serving(edc) -> None:  # noqa: ANN001
    edc.send_message(b"0200" + b"\xff" * 3)  # readable MTI, broken bitmap
    reply, answer = edc.read_message()
    assert (answer["t"], answer["39"]) == ("0210", rc.FORMAT_ERROR)
    edc.send_message(b"\x00garbage")  # no MTI: dropped with a log line
    edc.send_raw((5_000).to_bytes(2, "big") + b"\x60" + b"x" * 4_999)  # oversize frame: dropped
    assert edc.echo()["39"] == rc.APPROVED


def test_a_malformed_amount_gets_30_and_moves_nothing(network, edc) -> None:  # noqa: ANN001
    person = card(12)
    doc = {**edc.purchase_doc(person.pan, person.pin, 5_000), "4": "00000000050Z"}
    assert edc.exchange(doc)["39"] == rc.FORMAT_ERROR
    assert balance_of(network, person.pan) == BENEFIT_IDR


def test_unknown_terminal_is_refused_at_sign_on(network) -> None:  # noqa: ANN001
    from tests.switch.network import RawTerminal

    stranger = RawTerminal("XYZ00001", "EWXYZ0000000001", network.iso_port).connect()
    try:
        assert stranger.sign_on()["39"] == rc.NOT_PERMITTED_TERMINAL
    finally:
        stranger.close()


def test_a_bad_mac_is_refused(network, edc) -> None:  # noqa: ANN001
    person = card(4)
    message = bytearray(iso8583.encode_with_mac(edc.purchase_doc(person.pan, person.pin, 5_000), edc.tak))
    message[-1] ^= 0xFF
    edc.send_message(bytes(message))
    assert edc.read_message()[1]["39"] == rc.INVALID_TRANSACTION
    assert balance_of(network, person.pan) == BENEFIT_IDR


def test_bank_down_gives_91_and_nothing_moves(network, edc) -> None:  # noqa: ANN001
    person = card(5)
    bank = network.banks["bni"]
    bank.stop()
    try:
        assert edc.purchase(person.pan, person.pin, 10_000)["39"] == rc.ISSUER_UNAVAILABLE
    finally:
        bank.start()
    assert balance_of(network, person.pan) == BENEFIT_IDR
    assert edc.purchase(person.pan, person.pin, 10_000)["39"] == rc.APPROVED


def test_bank_silent_gives_91_and_the_stored_reversal_gives_the_money_back(network, edc) -> None:  # noqa: ANN001
    person = card(6)
    bank = network.banks["bni"]
    bank.freeze()
    try:
        answer = edc.purchase(person.pan, person.pin, 25_000)
        # Stored before the terminal heard 91: the card number rests sealed, and opens for the retry.
        [stored] = [e for e in network.switch.journal.pending_saf() if e.body["pan"] == person.pan]
        with network.switch.db.read() as conn:
            row = conn.execute(select(SafEntryRow.__table__).where(SafEntryRow.id == stored.id)).one()
        assert person.pan not in str(tuple(row)) and row.body["pan"] == mask_pan(person.pan)
    finally:
        bank.thaw()
    assert answer["39"] == rc.ISSUER_UNAVAILABLE
    # The frozen bank now answers the purchase the terminal gave up on; the stored reversal follows.
    assert wait_until(lambda: network.switch.journal.pending_saf() == [])
    assert balance_of(network, person.pan) == BENEFIT_IDR


def test_stored_reversals_survive_a_switch_restart(network, edc) -> None:  # noqa: ANN001
    person = card(7)
    bank = network.banks["bni"]
    bank.freeze()
    try:
        assert edc.purchase(person.pan, person.pin, 30_000)["39"] == rc.ISSUER_UNAVAILABLE
        network.stop_switch()  # the reversal is stored, not yet delivered
    finally:
        bank.thaw()
    network.start_switch()
    assert wait_until(lambda: network.switch.journal.pending_saf() == [])
    assert wait_until(lambda: balance_of(network, person.pan) == BENEFIT_IDR)


# -- the EDC terminal itself (headless), over the same network ---------------------------------


def run_edc(network: Network, command: str, **inputs) -> dict:  # noqa: ANN003
    import asyncio

    from edc_terminal.headless import run

    data_dir = network.tmp / "edc"
    return asyncio.run(run(command, "BNI00002", "127.0.0.1", network.iso_port, data_dir, timeout_ms=5_000, **inputs))


def test_edc_cek_and_bayar_print_the_remaining_balance(network) -> None:  # noqa: ANN001
    person = card(8)
    cek = run_edc(network, "cek", pan=person.pan, pin=person.pin)
    assert (cek["rc"], cek["balance"]) == (rc.APPROVED, BENEFIT_IDR)
    bayar = run_edc(network, "bayar", pan=person.pan, pin=person.pin, amount_idr=42_500)
    assert (bayar["rc"], bayar["balance"]) == (rc.APPROVED, BENEFIT_IDR - 42_500)
    assert "Rp107.500" in bayar["receipt"] and person.pan not in bayar["receipt"]
    assert balance_of(network, person.pan) == BENEFIT_IDR - 42_500


def test_edc_reversal_gives_back_the_last_purchase(network) -> None:  # noqa: ANN001
    person = card(9)
    assert run_edc(network, "bayar", pan=person.pan, pin=person.pin, amount_idr=10_000)["rc"] == rc.APPROVED
    assert run_edc(network, "reversal")["rc"] == rc.APPROVED
    assert balance_of(network, person.pan) == BENEFIT_IDR


def test_edc_wrong_pin_is_told_in_bahasa_indonesia(network) -> None:  # noqa: ANN001
    person = card(10)
    answer = run_edc(network, "bayar", pan=person.pan, pin="000000" if person.pin != "000000" else "111111", amount_idr=5_000)
    assert answer["rc"] == rc.WRONG_PIN
    assert answer["rc_text"] == rc.lookup(rc.WRONG_PIN).text_id


def test_ops_api_traces_a_purchase_by_rrn_with_the_pan_masked(network, edc) -> None:  # noqa: ANN001
    import httpx

    person = card(11)
    answer = edc.purchase(person.pan, person.pin, 12_000)
    assert answer["39"] == rc.APPROVED
    headers = network.ops_headers(role="viewer", bank="bni")

    def traced() -> dict | None:
        response = httpx.get(f"{network.ops_url}/v1/transactions/{answer['37']}", headers=headers, timeout=5)
        return response.json() if response.status_code == 200 else None

    assert wait_until(lambda: traced() is not None, timeout_s=5)
    trail = traced()
    directions = [m["direction"] for m in trail["messages"]]
    assert directions == ["terminal_in", "bank_out", "bank_in", "terminal_out"]
    assert person.pan not in str(trail)
    assert trail["transaction"]["amount_idr"] == 12_000
    found = httpx.get(f"{network.ops_url}/v1/transactions", params={"pan": person.pan}, headers=headers, timeout=5).json()
    rows = found["items"] if isinstance(found, dict) and "items" in found else found
    assert [row["rrn"] for row in rows] == [answer["37"]]  # by the full PAN's keyed hash: this card only


# -- load (kept last: it spends from the generated cards the tests above use) ------------------


def test_bench_reports_the_database_the_network_runs_on(network) -> None:  # noqa: ANN001
    from sembako.bench import network_database

    expected = "postgresql" if network.storage.get("database_url") else "sqlite"
    assert network_database(network.ops_url) == expected
    assert network_database("http://127.0.0.1:9") == "unknown"  # nothing listens there


def test_bench_drives_purchases_and_echoes_through_the_switch(network) -> None:  # noqa: ANN001
    import asyncio

    from sembako.bench import StanBook, run_echo, run_purchases

    book = StanBook(network.tmp / "bench-stans.json")
    load = asyncio.run(run_purchases("127.0.0.1", network.iso_port, 1.0, 4, 1, 40, None, book))
    assert load["approved"] > 0 and load["errors"] == 0, load
    assert load["p99_ms"] >= load["p50_ms"] > 0
    echo = asyncio.run(run_echo("127.0.0.1", network.iso_port, 0.5, 4, 1, book))
    assert echo["approved"] > 0 and echo["errors"] == 0 and echo["messages_per_s"] > 0
    again = asyncio.run(run_purchases("127.0.0.1", network.iso_port, 0.5, 2, 1, 40, None, book))
    assert "94" not in again["by_rc"], "STANs repeated across runs: the book must carry them on"
