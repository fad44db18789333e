"""The offline card list, end to end: a terminal that has just exchanged keys asks the switch for
page after page of its bank's list (0800, 70 = 360, MACed under its TAK); the switch fetches the
list from the real bank process, caches it, and answers each page under the TAK with the card-list
key wrapped under the terminal's master key. Over real sockets: a BNI bank process and the switch."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest
from sqlalchemy import select

from bank_penyalur.demo import fixture
from shared import iso8583, keys, offline, protocol, rc
from shared.banks import get_bank
from shared.keys import demo_key_hex, demo_terminal_master_key_hex
from switch.card_list import CardListPages
from switch.tables import MessageLog

from tests.bounded import wait_until
from tests.switch.network import Network, RawTerminal, raw_terminal

BNI = get_bank("bni")
CARDS = {c.label: c for c in fixture.demo_cards(BNI)}
KPM = 300  # about 300 ID references: three pages
LIST_KEY = offline.list_key(bytes.fromhex(demo_key_hex("bni", "zpk")), "bni")


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    tmp = tmp_path_factory.mktemp("card-list")
    net = Network(tmp, {"data_dir": tmp}, kpm=KPM).start()
    yield net
    net.stop()


@pytest.fixture(autouse=True)
def ledger_balanced(network: Network) -> Iterator[None]:
    yield
    network.assert_ledger_balanced()  # a card list moves no money


def pages(network: Network) -> CardListPages:
    assert network.switch and network.switch.core
    return network.switch.core.card_lists


def signed_on(network: Network, serial: int) -> RawTerminal:
    edc = raw_terminal(network, serial=serial)
    assert edc.sign_on()["39"] == rc.APPROVED
    return edc


def page_request(edc: RawTerminal, page: int) -> dict:
    return protocol.card_list_request(edc.terminal, edc.next_stan(), datetime.now(), page)


def bank_list(network: Network) -> dict:
    return httpx.get(f"{network.banks['bni'].url}/v1/offline/card-list", headers=network.bank_headers("bni"), timeout=10).json()


def download(edc: RawTerminal) -> tuple[offline.ListHeader, list[str], list[str]]:
    """Every page in order, as the EDC does right after its key exchange."""
    header, hot, ids, page = None, [], [], 1
    while header is None or page <= header.pages:
        answer = edc.exchange(page_request(edc, page))  # the answer's MAC is checked under the TAK
        assert answer["39"] == rc.APPROVED and "128" in answer and answer["60"] == f"{page:06d}"
        header = header or offline.parse_list_header_field(answer["48"])
        assert offline.parse_list_header_field(answer["48"]) == header
        hot += offline.split_refs(answer.get("61", ""), "61")
        ids += offline.split_refs(answer.get("62", ""), "62")
        page += 1
    return header, hot, ids


def test_the_pages_in_order_are_the_banks_list_under_a_key_only_the_terminal_opens(network: Network) -> None:
    edc = signed_on(network, 1)
    try:
        header, hot, ids = download(edc)
        past = edc.exchange(page_request(edc, header.pages + 1))
    finally:
        edc.close()
    expected = bank_list(network)
    assert (hot, ids) == (expected["hot"], expected["ids"])
    assert header.pages == offline.page_count(len(hot), len(ids)) == 3
    assert header.offline_limit_idr == expected["offline_limit_idr"] == 150_000
    tmk = bytes.fromhex(demo_terminal_master_key_hex(edc.tid))
    key = keys.unwrap(tmk, header.key_wrapped)
    assert offline.list_key_check(key) == header.key_check and key == LIST_KEY
    assert offline.hot_ref(key, CARDS["lost"].pan) in hot and offline.hot_ref(key, CARDS["replaced_old"].pan) in hot
    assert offline.id_ref(key, CARDS["normal"].pan, CARDS["normal"].nik) in ids
    assert past["39"] == rc.INVALID_TRANSACTION and "128" in past and "48" not in past


def test_a_request_without_a_valid_mac_is_refused_with_63_unmaced(network: Network) -> None:
    edc = signed_on(network, 2)
    try:
        unmaced = edc.exchange(page_request(edc, 1), mac=False)
        message = iso8583.encode_with_mac(page_request(edc, 1), keys.new_key())  # a guessed TAK
        edc.send_message(message)
        _, guessed = edc.read_message()
        after = edc.exchange(page_request(edc, 1))
    finally:
        edc.close()
    for answer in (unmaced, guessed):
        assert answer["39"] == rc.SECURITY_VIOLATION
        assert not {"48", "61", "62", "64", "128"} & answer.keys()
    assert after["39"] == rc.APPROVED  # the terminal's keys still hold


@pytest.mark.parametrize("field60", ["000000", "00001", "ABCDEF", None])
def test_a_malformed_page_number_gets_30(network: Network, field60: str | None) -> None:
    edc = signed_on(network, 3)
    try:
        request = page_request(edc, 1)
        if field60 is None:
            del request["60"]
        else:
            request["60"] = field60
        answer = edc.exchange(request)
    finally:
        edc.close()
    assert answer["39"] == rc.FORMAT_ERROR and "128" in answer and "48" not in answer


def test_an_unknown_terminal_or_one_without_keys_gets_58(network: Network) -> None:
    stranger = RawTerminal("BNI09999", BNI.merchant_id(1), network.iso_port).connect()
    never_keyed = raw_terminal(network, serial=40)
    try:
        for edc in (stranger, never_keyed):
            answer = edc.exchange(page_request(edc, 1), mac=False)
            assert answer["39"] == rc.NOT_PERMITTED_TERMINAL and "48" not in answer
    finally:
        stranger.close()
        never_keyed.close()


def test_two_sign_ons_within_the_ttl_fetch_the_list_once(network: Network) -> None:
    cache = pages(network).cache
    cache.clear()
    before = cache.fetches
    first, second = signed_on(network, 4), signed_on(network, 5)
    try:
        lists = [download(first), download(second)]
    finally:
        first.close()
        second.close()
    assert cache.fetches == before + 1
    assert lists[0][1:] == lists[1][1:]


def test_terminals_signing_on_together_share_one_fetch(network: Network) -> None:
    """The bank is slow (frozen): both terminals' first pages wait on the same fetch."""
    cache = pages(network).cache
    cache.clear()
    before = cache.fetches
    terminals = [signed_on(network, 6), signed_on(network, 7)]
    answers: list[dict] = []
    bank = network.banks["bni"]
    bank.freeze()
    try:
        for edc in terminals:
            edc.send_message(iso8583.encode_with_mac(page_request(edc, 1), edc.tak))
        assert wait_until(lambda: cache.waiting == 2)
    finally:
        bank.thaw()
    try:
        answers = [edc.read_message()[1] for edc in terminals]
    finally:
        for edc in terminals:
            edc.close()
    assert [a["39"] for a in answers] == [rc.APPROVED, rc.APPROVED]
    assert cache.fetches == before + 1


def test_the_bank_down_gives_91_and_the_list_comes_back_with_it(network: Network) -> None:
    cache = pages(network).cache
    cache.clear()
    edc = signed_on(network, 8)
    bank = network.banks["bni"]
    try:
        bank.stop()
        try:
            down = edc.exchange(page_request(edc, 1))
        finally:
            bank.start()
        back = edc.exchange(page_request(edc, 1))
    finally:
        edc.close()
    assert down["39"] == rc.ISSUER_UNAVAILABLE and "128" in down and "48" not in down
    assert back["39"] == rc.APPROVED


def test_the_journal_keeps_the_pages_without_the_key_or_the_references(network: Network) -> None:
    edc = signed_on(network, 9)
    try:
        answer = edc.exchange(page_request(edc, 1))
    finally:
        edc.close()
    assert answer["39"] == rc.APPROVED
    query = select(MessageLog.direction, MessageLog.fields).where(MessageLog.tid == edc.tid, MessageLog.stan == answer["11"])
    assert network.switch

    def journalled() -> list:
        with network.switch.journal.db.read() as conn:
            return conn.execute(query).all()

    assert wait_until(lambda: len(journalled()) == 2)
    fields = dict(journalled())
    assert fields["terminal_in"]["70"] == iso8583.CARD_LIST and "128" not in fields["terminal_in"]
    out = fields["terminal_out"]
    assert not {"48", "61", "62", "128"} & out.keys()
    assert int(out["hot_refs"]) == len(answer.get("61", "")) // offline.REF_HEX_LENGTH
    assert int(out["id_refs"]) == len(answer["62"]) // offline.REF_HEX_LENGTH == offline.REFS_PER_PAGE_MAX



def test_a_bank_process_does_not_name_its_http_server(network: Network) -> None:
    response = httpx.get(f"{network.banks['bni'].url}/health", timeout=10)
    assert response.status_code == 200
    assert "server" not in response.headers
