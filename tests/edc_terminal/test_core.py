"""The EDC core as scenarios at the counter, without any network: the driver role is played
by the test, which reads the core's `Send` commands and answers with real protocol messages."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from edc_terminal.core import Command, CoreConfig, EdcCore, Finished, Outcome, Reject, Send, Show, State
from edc_terminal.store import TerminalState, TerminalStore
from shared import keys as keylib
from shared import pinblock, protocol
from shared.iso8583 import decode, encode, encode_with_mac, mac_valid

from tests.edc_terminal.conftest import PAN, PIN
from tests.edc_terminal.fakes import FixedClock

TID = "BNI00001"
MID = "EWBNI0000000001"
TMK = bytes.fromhex(keylib.demo_terminal_master_key_hex(TID))


@dataclass
class Keys:
    tpk: bytes
    tak: bytes


def new_core(data_dir: Path, config: CoreConfig = CoreConfig.uniform(300)) -> EdcCore:
    store = TerminalStore(data_dir, TID)
    return EdcCore.for_demo_terminal(TID, store.load(), store, FixedClock(), config)


def the_send(commands: list[Command]) -> Send:
    sends = [c for c in commands if isinstance(c, Send)]
    assert len(sends) == 1, commands
    return sends[0]


def the_outcome(commands: list[Command]) -> Outcome:
    done = [c for c in commands if isinstance(c, Finished)]
    assert len(done) == 1, commands
    return done[0].outcome


def the_rejection(commands: list[Command]) -> str:
    assert not any(isinstance(c, (Send, Finished)) for c in commands), commands
    reasons = [c.reason for c in commands if isinstance(c, Reject)]
    assert len(reasons) == 1, commands
    return reasons[0]


def reply(core: EdcCore, send: Send, rc: str, key: bytes | None = None, **fields: str) -> list[Command]:
    doc = protocol.response(send.message, rc, **fields)
    raw = encode_with_mac(doc, key) if key else encode(doc)
    return core.on_response(decode(raw), raw)


def keys_answer(tpk: bytes, tak: bytes, tmk: bytes = TMK) -> str:
    return protocol.keys_field(keylib.wrap(tmk, tpk), keylib.wrap(tmk, tak), keylib.kcv(tpk), keylib.kcv(tak))


CHALLENGE = "0123456789ABCDEF"


def signed_on_to_key_exchange(core: EdcCore, challenge: str = CHALLENGE) -> Send:
    """Sign-on answered with a challenge: the key exchange that answers it."""
    send = the_send(core.sign_on())
    assert (send.message["t"], send.message["70"], send.expect_mti) == ("0800", "001", "0810")
    assert "64" not in decode(send.data)
    return the_send(reply(core, send, "00", **{"48": challenge}))


def sign_on(core: EdcCore) -> Keys:
    keys = Keys(keylib.new_key(), keylib.new_key())
    send = signed_on_to_key_exchange(core)
    assert (send.message["70"], send.message["48"]) == ("101", CHALLENGE)
    assert mac_valid(send.data, decode(send.data), keylib.key_exchange_key(TMK))  # proves the TMK
    assert not mac_valid(send.data, decode(send.data), keylib.key_exchange_key(keylib.new_key()))
    outcome = the_outcome(reply(core, send, "00", **{"48": keys_answer(keys.tpk, keys.tak)}))
    assert outcome.approved and core.has_keys, outcome
    core.finish()
    return keys


@pytest.fixture
def core(tmp_path: Path) -> EdcCore:
    return new_core(tmp_path)


@pytest.fixture
def keys(core: EdcCore) -> Keys:
    return sign_on(core)


def assert_signed_request(send: Send, keys: Keys) -> None:
    """The MAC over the encoded request is right under the TAK, and the PIN block holds PIN."""
    doc = decode(send.data)
    assert mac_valid(send.data, doc, keys.tak)
    assert pinblock.decipher(keys.tpk, bytes.fromhex(doc["52"]), doc["2"]) == PIN


def start_purchase(core: EdcCore, amount: str = "50000") -> Send:
    core.insert_card(PAN)
    core.choose_purchase()
    assert core.state is State.AMOUNT and core.prompt == "Masukkan nominal"
    core.enter_amount(amount)
    assert core.state is State.PIN and core.prompt == "Masukkan PIN"
    commands = core.enter_pin(PIN)
    assert Show("Mohon tunggu...") in commands and core.state is State.PROCESSING
    return the_send(commands)


# -- Cek and Bayar ---------------------------------------------------------------------------------


def test_inquiry_request_fields_pin_block_mac_and_receipt(core: EdcCore, keys: Keys) -> None:
    assert core.state is State.IDLE and core.prompt == "Masukkan kartu"
    assert Show("Pilih transaksi: CEK SALDO atau BAYAR") in core.insert_card(PAN)
    assert core.choose_inquiry() == [Show("Masukkan PIN")]
    send = the_send(core.enter_pin(PIN))

    doc = decode(send.data)
    expected = {"t": "0100", "2": PAN, "3": "310000", "4": "000000000000", "7": "1103090000", "11": "000003", "12": "090000",
                "13": "1103", "22": "051", "24": "001", "41": TID, "42": MID, "49": "360", "60": "000001"}  # fmt: skip
    assert {k: doc[k] for k in expected} == expected
    assert (send.expect_mti, send.stan, send.timeout_ms) == ("0110", "000003", 300)
    assert_signed_request(send, keys)

    outcome = the_outcome(reply(core, send, "00", keys.tak, **{"37": "000000000042", "54": protocol.balance_field(150_000)}))
    assert (outcome.rc, outcome.rc_text, outcome.balance, outcome.rrn) == ("00", "Transaksi berhasil", 150_000, "000000000042")
    assert outcome.amount is None
    receipt = outcome.receipt or ""
    for text in ("CEK SALDO", "Sisa saldo", "Rp150.000", "936000******", PAN[-4:], "000000000042", "RC 00", "Transaksi berhasil", TID, MID):
        assert text in receipt, (text, receipt)
    assert PAN not in receipt and PIN not in receipt
    assert core.state is State.RESULT and core.prompt.startswith("Transaksi berhasil")
    assert core.finish() == [Show("Masukkan kartu")] and core.state is State.IDLE


def test_purchase_approved_prints_amount_and_remaining_balance(core: EdcCore, keys: Keys) -> None:
    send = start_purchase(core, "50000")
    doc = decode(send.data)
    assert (doc["t"], doc["3"], doc["4"], doc["2"]) == ("0200", "000000", "000005000000", PAN)
    assert "64" in doc and send.expect_mti == "0210"
    assert_signed_request(send, keys)
    assert core.stored.in_flight_purchase is not None and "52" not in core.stored.in_flight_purchase

    fields = {"37": "000000000007", "38": "654321", "54": protocol.balance_field(100_000)}
    outcome = the_outcome(reply(core, send, "00", keys.tak, **fields))
    assert (outcome.rc, outcome.amount, outcome.balance, outcome.approval_code) == ("00", 50_000, 100_000, "654321")
    receipt = outcome.receipt or ""
    for text in ("PEMBELIAN SEMBAKO", "Nominal", "Rp50.000", "Sisa saldo", "Rp100.000", "000000000007", "654321"):
        assert text in receipt, (text, receipt)
    assert all(len(line) <= 32 for line in receipt.splitlines())
    stored = core.stored
    assert stored.in_flight_purchase is None and stored.last_purchase is not None
    assert (stored.last_purchase.rrn, stored.last_purchase.approval_code) == ("000000000007", "654321")


def test_declined_purchase_shows_the_indonesian_reason(core: EdcCore, keys: Keys) -> None:
    send = start_purchase(core, "500000")
    outcome = the_outcome(reply(core, send, "51", keys.tak, **{"54": protocol.balance_field(150_000)}))
    assert (outcome.rc, outcome.rc_text, outcome.approved) == ("51", "Saldo tidak cukup", False)
    assert "RC 51\nSaldo tidak cukup\n" in (outcome.receipt or "")
    assert core.stored.last_purchase is None and core.stored.in_flight_purchase is None


# -- wrong state and bad input ---------------------------------------------------------------------


def test_actions_in_the_wrong_state_are_refused(core: EdcCore, keys: Keys) -> None:
    assert "Input PIN tidak dapat dilakukan sekarang (layar: Masukkan kartu)" == the_rejection(core.enter_pin(PIN))
    assert "tidak dapat dilakukan sekarang" in the_rejection(core.choose_purchase())
    assert "tidak dapat dilakukan sekarang" in the_rejection(core.enter_amount("1000"))
    assert "tidak dapat dilakukan sekarang" in the_rejection(core.finish())
    assert "tidak dapat dilakukan sekarang" in the_rejection(core.cancel())
    core.insert_card(PAN)
    assert "Memasukkan kartu tidak dapat dilakukan sekarang" in the_rejection(core.insert_card(PAN))
    assert "tidak dapat dilakukan sekarang" in the_rejection(core.sign_on())
    core.choose_inquiry()
    assert "tidak dapat dilakukan sekarang" in the_rejection(core.enter_amount("1000"))
    the_send(core.enter_pin(PIN))
    assert "(layar: Mohon tunggu...)" in the_rejection(core.echo())
    assert "tidak dapat dilakukan sekarang" in the_rejection(core.cancel())
    assert core.state is State.PROCESSING


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        ("abc", "Nominal harus berupa angka"),
        ("10.000", "Nominal harus berupa angka"),
        ("-5", "Nominal harus berupa angka"),
        ("", "Nominal harus berupa angka"),
        ("0", "Nominal harus lebih dari Rp0"),
        ("99999999999", "Nominal melebihi batas"),
    ],
)
def test_bad_amounts_are_refused(core: EdcCore, keys: Keys, amount: str, reason: str) -> None:
    core.insert_card(PAN)
    core.choose_purchase()
    assert reason in the_rejection(core.enter_amount(amount))
    assert core.state is State.AMOUNT


@pytest.mark.parametrize("pin", ["12345", "1234567", "12a456", "", "١٢٣٤٥٦"])
def test_bad_pins_are_refused(core: EdcCore, keys: Keys, pin: str) -> None:
    core.insert_card(PAN)
    core.choose_inquiry()
    assert the_rejection(core.enter_pin(pin)) == "PIN harus 6 digit angka"
    assert core.state is State.PIN


BAD_CHECK_DIGIT = PAN[:-1] + str((int(PAN[-1]) + 1) % 10)


@pytest.mark.parametrize(("pan", "reason"), [("1234", "Kartu tidak terbaca"), ("abcd", "Kartu tidak terbaca"), (BAD_CHECK_DIGIT, "digit pemeriksa")])
def test_unreadable_cards_are_refused(core: EdcCore, pan: str, reason: str) -> None:
    assert reason in the_rejection(core.insert_card(pan))
    assert core.state is State.IDLE


def test_pin_without_working_keys_asks_for_sign_on(core: EdcCore) -> None:
    core.insert_card(PAN)
    core.choose_inquiry()
    assert "belum sign-on" in the_rejection(core.enter_pin(PIN))


def test_cancel_returns_to_idle_without_sending(core: EdcCore, keys: Keys) -> None:
    core.insert_card(PAN)
    core.choose_purchase()
    commands = core.cancel()
    assert Show("Transaksi dibatalkan") in commands and core.state is State.IDLE
    assert not any(isinstance(c, Send) for c in commands)


# -- STAN and persistence ------------------------------------------------------------------------


def test_stan_increments_and_survives_a_restart(tmp_path: Path) -> None:
    core = new_core(tmp_path)
    keys = sign_on(core)  # STANs 000001 (sign-on) and 000002 (key exchange)
    core.insert_card(PAN)
    core.choose_inquiry()
    assert the_send(core.enter_pin(PIN)).stan == "000003"

    saved = json.loads((tmp_path / "edc" / f"{TID}.json").read_text())
    assert saved["stan"] == 3 and saved["keys"]["tpk_kcv"] == keylib.kcv(keys.tpk)
    assert keylib.unwrap(TMK, saved["keys"]["tak"]) == keys.tak
    assert not list((tmp_path / "edc").glob("*.tmp"))

    again = new_core(tmp_path)
    assert again.has_keys
    assert the_send(again.echo()).stan == "000004"


def test_stan_wraps_after_999999() -> None:
    state = TerminalState(tid=TID, stan=999_998)
    assert [state.next_stan(), state.next_stan(), state.next_stan()] == ["999999", "000001", "000002"]


def test_stale_or_foreign_answers_are_ignored(core: EdcCore, keys: Keys) -> None:
    send = start_purchase(core)
    other = {**send.message, "11": "000999"}
    doc = protocol.response(other, "00")
    raw = encode_with_mac(doc, keys.tak)
    assert core.on_response(decode(raw), raw) == []
    assert core.on_timeout("000999") == []
    assert core.state is State.PROCESSING


# -- timeouts, bad MACs and reversals -------------------------------------------------------------


def test_purchase_timeout_reverses_0400_then_0401_and_ends_91_pending(tmp_path: Path, core: EdcCore, keys: Keys) -> None:
    purchase = start_purchase(core, "25000")
    commands = core.on_timeout(purchase.stan)
    assert Show("Tidak ada jawaban. Membatalkan transaksi, mohon tunggu...") in commands
    first = the_send(commands)
    doc = decode(first.data)
    assert (doc["t"], first.expect_mti, doc["11"]) == ("0400", "0410", "000004")
    assert doc["90"] == protocol.original_data(purchase.message) and doc["4"] == "000002500000"
    assert "52" not in doc and mac_valid(first.data, doc, keys.tak) and "128" in doc

    on_disk = TerminalStore(tmp_path, TID).load()  # stored before it is sent
    assert [p.stan for p in on_disk.pending_reversals] == ["000004"] and on_disk.in_flight_purchase is None

    repeats = []
    commands = core.on_timeout(first.stan)
    while not any(isinstance(c, Finished) for c in commands):
        repeats.append(the_send(commands))
        commands = core.on_timeout(repeats[-1].stan)
    assert [r.message["t"] for r in repeats] == ["0401", "0401"]
    assert all({**r.message, "t": "0400"} == first.message for r in repeats)

    outcome = the_outcome(commands)
    assert (outcome.rc, outcome.reversal, outcome.amount) == ("91", "pending", 25_000)
    assert "saldo akan dikembalikan" in outcome.message
    assert "saldo akan dikembalikan" in (outcome.receipt or "").replace("\n", " ")
    on_disk = TerminalStore(tmp_path, TID).load()
    assert len(on_disk.pending_reversals) == 1 and on_disk.pending_reversals[0].attempts == 3
    assert on_disk.last_purchase is None


def test_pending_reversal_is_sent_on_the_next_connection(tmp_path: Path, core: EdcCore, keys: Keys) -> None:
    purchase = start_purchase(core)
    commands = core.on_timeout(purchase.stan)
    while not any(isinstance(c, Finished) for c in commands):
        commands = core.on_timeout(the_send(commands).stan)

    later = new_core(tmp_path)
    assert later.pending_reversals == 1
    send = the_send(later.send_pending_reversals())
    assert send.message["t"] == "0401" and send.message["90"] == protocol.original_data(purchase.message)
    outcome = the_outcome(reply(later, send, "00", keys.tak))
    assert outcome.rc == "00" and later.pending_reversals == 0
    assert TerminalStore(tmp_path, TID).load().pending_reversals == []


def test_purchase_timeout_with_answered_reversal_ends_91_reversed(core: EdcCore, keys: Keys) -> None:
    purchase = start_purchase(core)
    reversal = the_send(core.on_timeout())
    outcome = the_outcome(reply(core, reversal, "00", keys.tak))
    assert (outcome.rc, outcome.rc_text, outcome.reversal) == ("91", "Bank tidak dapat dihubungi", "reversed")
    assert "saldo akan dikembalikan" in outcome.message
    assert core.pending_reversals == 0 and core.stored.last_purchase is None
    assert outcome.stan == purchase.stan


def test_bad_mac_on_purchase_answer_is_treated_as_a_timeout(core: EdcCore, keys: Keys) -> None:
    purchase = start_purchase(core)
    wrong_key = keylib.new_key()
    commands = reply(core, purchase, "00", wrong_key, **{"37": "000000000001", "38": "111111"})
    reversal = the_send(commands)
    assert reversal.message["t"] == "0400" and core.stored.last_purchase is None
    unsigned = reply(core, reversal, "00")  # no MAC at all: no answer either
    assert the_send(unsigned).message["t"] == "0401"


def test_bad_mac_on_inquiry_answer_ends_91_without_reversal(core: EdcCore, keys: Keys) -> None:
    core.insert_card(PAN)
    core.choose_inquiry()
    send = the_send(core.enter_pin(PIN))
    outcome = the_outcome(reply(core, send, "00", keylib.new_key(), **{"54": protocol.balance_field(1)}))
    assert (outcome.rc, outcome.balance, core.pending_reversals) == ("91", None, 0)
    core.finish()
    assert not core.has_keys  # the keys no longer match the switch's: the next run signs on


def test_unsigned_58_drops_the_keys_so_the_next_run_signs_on(core: EdcCore, keys: Keys) -> None:
    purchase = start_purchase(core)
    reversal = the_send(reply(core, purchase, "58"))
    commands = reply(core, reversal, "58")
    while not any(isinstance(c, Finished) for c in commands):
        commands = reply(core, the_send(commands), "58")
    assert the_outcome(commands).rc == "91"
    assert not core.has_keys and core.stored.keys is None and core.pending_reversals == 1


def test_crash_with_a_purchase_in_flight_becomes_a_pending_reversal(tmp_path: Path, core: EdcCore, keys: Keys) -> None:
    purchase = start_purchase(core)  # the process dies here, before any answer
    restarted = new_core(tmp_path)
    assert restarted.pending_reversals == 1 and restarted.stored.in_flight_purchase is None
    send = the_send(restarted.send_pending_reversals())
    assert send.message["90"] == protocol.original_data(purchase.message)


# -- void of the last purchase ---------------------------------------------------------------------


def test_reverse_last_voids_the_approved_purchase(core: EdcCore, keys: Keys) -> None:
    assert the_rejection(core.reverse_last()) == "Tidak ada transaksi pembelian yang dapat dibatalkan"
    purchase = start_purchase(core, "30000")
    the_outcome(reply(core, purchase, "00", keys.tak, **{"37": "000000000005", "38": "123123"}))
    core.finish()

    send = the_send(core.reverse_last())
    assert send.message["t"] == "0400" and send.message["90"] == protocol.original_data(purchase.message)
    outcome = the_outcome(reply(core, send, "00", keys.tak, **{"37": "000000000006"}))
    assert (outcome.rc, outcome.amount, outcome.rrn, outcome.approval_code) == ("00", 30_000, "000000000006", "123123")
    assert "PEMBATALAN" in (outcome.receipt or "") and "Rp30.000" in (outcome.receipt or "")
    assert core.stored.last_purchase is None and core.pending_reversals == 0


def test_unanswered_void_stays_pending_and_is_repeated_as_0401(core: EdcCore, keys: Keys) -> None:
    purchase = start_purchase(core)
    reply(core, purchase, "00", keys.tak, **{"37": "000000000005", "38": "123123"})
    core.finish()
    commands = core.reverse_last()
    while not any(isinstance(c, Finished) for c in commands):
        commands = core.on_timeout()
    outcome = the_outcome(commands)
    assert outcome.rc == "91" and "dikirim ulang" in outcome.message and core.pending_reversals == 1
    core.finish()
    again = the_send(core.reverse_last())
    assert again.message["t"] == "0401" and core.pending_reversals == 1


# -- network management ----------------------------------------------------------------------------


def test_sign_on_refused_for_an_unknown_terminal(core: EdcCore) -> None:
    send = the_send(core.sign_on())
    assert "64" not in decode(send.data)  # network messages carry no MAC
    outcome = the_outcome(reply(core, send, "58"))
    assert (outcome.rc, outcome.rc_text) == ("58", "Terminal/e-Warong tidak terdaftar")
    assert not core.has_keys


def test_a_sign_on_answer_without_a_challenge_sends_no_key_exchange(core: EdcCore) -> None:
    send = the_send(core.exchange_keys())
    assert send.message["70"] == "001"
    outcome = the_outcome(reply(core, send, "00"))
    assert outcome.rc == "96" and "tantangan" in outcome.message and not core.has_keys


def test_key_exchange_refused_63_keeps_no_keys(core: EdcCore) -> None:
    outcome = the_outcome(reply(core, signed_on_to_key_exchange(core), "63"))
    assert (outcome.rc, outcome.rc_text) == ("63", "Pelanggaran keamanan") and not core.has_keys


def test_key_exchange_with_a_wrong_kcv_keeps_no_keys(core: EdcCore) -> None:
    send = signed_on_to_key_exchange(core)
    tpk, tak = keylib.new_key(), keylib.new_key()
    field48 = keys_answer(tpk, tak)[:64] + "000000" + keylib.kcv(tak)
    outcome = the_outcome(reply(core, send, "00", **{"48": field48}))
    assert outcome.rc == "96" and "KCV tidak cocok" in outcome.message
    assert not core.has_keys and core.stored.keys is None


def test_echo_and_its_timeout(core: EdcCore) -> None:
    send = the_send(core.echo())
    assert send.message["70"] == "301"
    outcome = the_outcome(reply(core, send, "00"))
    assert (outcome.rc, outcome.message) == ("00", "Tes koneksi (echo) berhasil")
    core.finish()
    the_send(core.echo())
    outcome = the_outcome(core.on_timeout())
    assert (outcome.rc, outcome.rc_text) == ("91", "Bank tidak dapat dihubungi")
