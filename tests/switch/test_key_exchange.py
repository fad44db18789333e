"""Key exchange proves possession of the terminal master key, and a terminal whose keys no longer
match the switch's recovers by itself. Over real sockets: a BNI bank process and the switch."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from bank_penyalur.demo import generator
from edc_terminal.headless import run
from edc_terminal.store import TerminalStore
from shared import iso8583, keys, protocol, rc
from shared.banks import get_bank

from tests.switch.network import Network, raw_terminal

BNI = get_bank("bni")
SPENDABLE = [p for p in (generator.generated_kpm(BNI, i) for i in range(40)) if p.spendable]
BENEFIT_IDR = 150_000


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    tmp = tmp_path_factory.mktemp("key-exchange")
    net = Network(tmp, {"data_dir": tmp}).start()
    yield net
    net.stop()


@pytest.fixture(autouse=True)
def ledger_balanced(network: Network) -> Iterator[None]:
    yield
    network.assert_ledger_balanced()


def stranger_key_exchange(network: Network, serial: int, mac_key: bytes | None, challenge: str | None = None) -> dict:
    """Someone who knows only what a slip prints (terminal and e-Warong ids) asks for keys."""
    stranger = raw_terminal(network, serial=serial)
    try:
        signed = stranger.exchange(protocol.network_request(stranger.terminal, iso8583.SIGN_ON, stranger.next_stan(), datetime.now()), mac=False)
        request = protocol.key_exchange_request(stranger.terminal, stranger.next_stan(), datetime.now(), challenge or signed.get("48", ""))
        stranger.send_message(iso8583.encode_with_mac(request, mac_key) if mac_key else iso8583.encode(request))
        return stranger.read_message()[1]
    finally:
        stranger.close()


@pytest.mark.parametrize("mac_key", [None, keys.new_key()], ids=["no MAC", "MAC under a guessed key"])
def test_a_strangers_key_exchange_is_refused_and_the_terminal_keeps_working(network: Network, mac_key: bytes | None) -> None:
    edc = raw_terminal(network, serial=2)
    try:
        assert edc.sign_on()["39"] == rc.APPROVED
        answer = stranger_key_exchange(network, 2, mac_key)
        assert answer["39"] == rc.SECURITY_VIOLATION and "48" not in answer
        person = SPENDABLE[0 if mac_key is None else 1]
        assert edc.purchase(person.pan, person.pin, 5_000)["39"] == rc.APPROVED  # its keys still hold
    finally:
        edc.close()


def test_a_replayed_key_exchange_is_refused(network: Network) -> None:
    edc = raw_terminal(network, serial=3)
    try:
        signed = edc.exchange(protocol.network_request(edc.terminal, iso8583.SIGN_ON, edc.next_stan(), datetime.now()), mac=False)
        tmk = bytes.fromhex(keys.demo_terminal_master_key_hex(edc.tid))
        request = protocol.key_exchange_request(edc.terminal, edc.next_stan(), datetime.now(), signed["48"])
        captured = iso8583.encode_with_mac(request, keys.key_exchange_key(tmk))
        edc.send_message(captured)
        assert edc.read_message()[1]["39"] == rc.APPROVED
        edc.send_message(captured)  # the same bytes again, as an eavesdropper would
        assert edc.read_message()[1]["39"] == rc.SECURITY_VIOLATION
    finally:
        edc.close()


def edc(network: Network, data_dir: Path, command: str, **inputs: object) -> dict:
    coroutine = run(command, "BNI00004", "127.0.0.1", network.iso_port, data_dir, timeout_ms=2_000, **inputs)
    return asyncio.run(asyncio.wait_for(coroutine, 60))


def test_a_terminal_whose_keys_no_longer_match_recovers_by_itself(network: Network, tmp_path: Path) -> None:
    """The terminal's state file is restored from a copy holding keys the switch has replaced
    since. The purchase's answer fails its MAC: the purchase is reversed, the terminal signs on
    and exchanges keys by itself, and the next purchase goes through: no person involved."""
    person = SPENDABLE[2]
    store = TerminalStore(tmp_path, "BNI00004")
    assert edc(network, tmp_path, "signon")["rc"] == rc.APPROVED
    old = store.load()
    assert edc(network, tmp_path, "signon")["rc"] == rc.APPROVED  # new keys at the switch
    old.stan = store.load().stan  # the copy's keys, but the STAN counter moves on as a real one does
    store.save(old)

    first = edc(network, tmp_path, "bayar", pan=person.pan, pin=person.pin, amount_idr=12_000)
    assert first["rc"] == "91" and first["reversal"] in ("reversed", "pending")
    after = store.load()
    assert after.keys is not None and after.keys != old.keys  # signed on and exchanged keys again
    assert after.pending_reversals == [] and network.balance_of(person.pan) == BENEFIT_IDR

    second = edc(network, tmp_path, "bayar", pan=person.pan, pin=person.pin, amount_idr=12_000)
    assert second["rc"] == rc.APPROVED and network.balance_of(person.pan) == BENEFIT_IDR - 12_000
