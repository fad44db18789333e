"""The message inspector: every field of every message the EDC and the switch exchange, with
the PIN block, MACs, wrapped keys and track 2 masked and the PAN shown 6/4, in value and hex;
unreadable bytes are a row, never an exception; the recorder is bounded; the headless driver
records answers, timeouts and lost connections."""

from __future__ import annotations

import asyncio
import io
import random
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from edc_terminal.headless import run
from edc_terminal.inspector import (
    FIELD_NAMES,
    STATUS_ANSWERED,
    STATUS_LOST,
    STATUS_TIMEOUT,
    UNREADABLE,
    Exchange,
    FieldView,
    Inspector,
    describe,
    field_name,
    format_exchange,
    make_exchange,
    summary_row,
)
from shared import keys as keylib
from shared import pinblock, protocol
from shared.cards import mask_pan
from shared.iso8583 import SPEC, Message, decode, encode, encode_with_mac

from tests.edc_terminal.conftest import PAN, PIN
from tests.edc_terminal.fakes import FakeSwitch, FixedClock

TID = "BNI00001"
TERMINAL = protocol.Terminal(TID, "EWBNI0000000001")
NOW = datetime(2026, 11, 3, 9, 0, 0)
TIMEOUT_MS = 300


@dataclass(frozen=True)
class Wire:
    """Messages as the project builds them, and the secrets they carry."""

    messages: dict[str, bytes]
    secrets: list[str]


def _wire() -> Wire:
    tmk = bytes.fromhex(keylib.demo_terminal_master_key_hex(TID))
    tpk, tak = keylib.new_key(), keylib.new_key()
    tpk_wrapped, tak_wrapped = keylib.wrap(tmk, tpk), keylib.wrap(tmk, tak)
    block = pinblock.encipher(tpk, PIN, PAN).hex().upper()
    sign_on = protocol.network_request(TERMINAL, "001", "000001", NOW)
    key_request = protocol.network_request(TERMINAL, "101", "000002", NOW)
    keys_48 = protocol.keys_field(tpk_wrapped, tak_wrapped, keylib.kcv(tpk), keylib.kcv(tak))
    inquiry = protocol.inquiry_request(TERMINAL, "000003", NOW, PAN, block, 1)
    purchase = protocol.purchase_request(TERMINAL, "000004", NOW, PAN, 40_000, block, 1)
    reversal = protocol.reversal_request({k: v for k, v in purchase.items() if k != "52"}, "000005", NOW)
    balance = {"37": "000000000001", "54": protocol.balance_field(110_000)}
    plain: dict[str, Message] = {
        "0800": sign_on,
        "0810": protocol.response(sign_on, "00"),
        "0800 keys": key_request,
        "0810 keys": protocol.response(key_request, "00", **{"48": keys_48}),
    }
    maced: dict[str, Message] = {
        "0100": inquiry,
        "0110": protocol.response(inquiry, "00", **balance),
        "0200": purchase,
        "0210": protocol.response(purchase, "00", **balance, **{"38": "000001"}),
        "0400": reversal,
        "0410": protocol.response(reversal, "00", **{"37": "000000000002"}),
    }
    messages = {name: encode(doc) for name, doc in plain.items()}
    messages |= {name: encode_with_mac(doc, tak) for name, doc in maced.items()}
    macs = [data[-8:].hex().upper() for name, data in messages.items() if name in maced]
    secrets = [PAN, PAN.encode().hex().upper(), PIN, block, tpk_wrapped, tak_wrapped, *macs]
    secrets += [tpk_wrapped.encode().hex().upper(), tak_wrapped.encode().hex().upper()]
    return Wire(messages, secrets)


@pytest.fixture(scope="module")
def wire() -> Wire:
    return _wire()


def rendered(views: list[FieldView]) -> str:
    return "\n".join(f"{v.number} {v.name} {v.value} {v.note} {v.raw_hex}" for v in views)


def view_of(views: list[FieldView], number: str) -> FieldView:
    return next(v for v in views if v.number == number)


# -- describe ------------------------------------------------------------------------------------


def test_every_project_message_shows_every_field_with_its_name(wire: Wire) -> None:
    for name, data in wire.messages.items():
        views = describe(data)
        assert [v.number for v in views] == list(decode(data)), name
        assert all(v.number in FIELD_NAMES and v.name == FIELD_NAMES[v.number] for v in views), name
        assert all(v.raw_hex for v in views), name
    purchase = describe(wire.messages["0200"])
    assert view_of(purchase, "t").raw_hex == "30323030"
    assert view_of(purchase, "p").value == view_of(purchase, "p").raw_hex == decode(wire.messages["0200"])["p"]
    assert view_of(purchase, "4").note == "Rp40.000"
    assert view_of(purchase, "60").raw_hex == "303036 303030303031"  # LLL prefix, then the data
    assert view_of(describe(wire.messages["0210"]), "54").note == "saldo Rp110.000"
    assert view_of(describe(wire.messages["0810"]), "39").note == "Transaksi berhasil"
    assert view_of(describe(wire.messages["0400"]), "1").value == decode(wire.messages["0400"])["1"]


def test_pan_is_masked_6_4_in_value_and_hex(wire: Wire) -> None:
    pan = view_of(describe(wire.messages["0200"]), "2")
    assert pan.value == mask_pan(PAN)
    prefix, digits = pan.raw_hex.split(" ")
    assert prefix == f"{len(PAN):02d}".encode().hex().upper()
    assert digits == PAN[:6].encode().hex().upper() + "**" * (len(PAN) - 10) + PAN[-4:].encode().hex().upper()


def test_pin_block_and_macs_are_masked(wire: Wire) -> None:
    for name, number in (("0200", "52"), ("0200", "64"), ("0210", "64"), ("0400", "128"), ("0410", "128")):
        view = view_of(describe(wire.messages[name]), number)
        assert (view.value, view.raw_hex) == ("*" * 16, "**" * 8), (name, number)


def test_key_exchange_answer_shows_only_the_kcvs(wire: Wire) -> None:
    keys = view_of(describe(wire.messages["0810 keys"]), "48")
    _, _, tpk_kcv, tak_kcv = protocol.parse_keys_field(decode(wire.messages["0810 keys"])["48"])
    assert keys.value.endswith(tpk_kcv + tak_kcv) and tpk_kcv in keys.note and tak_kcv in keys.note
    assert keys.raw_hex == "303736 " + "**" * 64 + (tpk_kcv + tak_kcv).encode().hex().upper()
    odd = encode({**decode(wire.messages["0810"]), "48": "ABCDEF" * 5})
    assert view_of(describe(odd), "48").value == "*" * 30


def test_no_secret_in_any_rendered_message(wire: Wire) -> None:
    text = "\n".join(rendered(describe(data)) for data in wire.messages.values())
    leaked = [secret for secret in wire.secrets if secret in text]
    assert leaked == []
    assert mask_pan(PAN) in text


def test_field_90_carries_no_pan_and_a_stray_pan_is_masked(wire: Wire) -> None:
    original = view_of(describe(wire.messages["0400"]), "90")
    assert PAN not in original.value and original.note.startswith("asli: MTI 0200, STAN 000004")
    stray = encode({**decode(wire.messages["0100"]), "48": f"KARTU{PAN}", "90": "0" * 42})
    text = rendered(describe(stray))
    assert PAN not in text and PAN.encode().hex().upper() not in text
    assert f"KARTU{mask_pan(PAN)}" in text


def test_track_2_is_masked(wire: Wire) -> None:
    doc = {**decode(wire.messages["0100"]), "35": f"{PAN}=2912101000000000"}
    track2 = view_of(describe(encode(doc)), "35")
    assert set(track2.value) == {"*"} and set(track2.raw_hex.split(" ")[1]) == {"*"}


def test_control_characters_are_escaped() -> None:
    doc = {"t": "0800", "11": "000001", "41": "\x1b[2J0001", "70": "001"}
    terminal_id = view_of(describe(encode(doc)), "41")
    assert terminal_id.value == "\\x1b[2J0001" and "\x1b" not in terminal_id.value


def test_unreadable_bytes_give_one_row_without_hex(wire: Wire) -> None:
    truncated = wire.messages["0200"][:-12]
    for data in (b"", b"garbage", b"0200", truncated, wire.messages["0200"] + b"x"):
        views = describe(data)
        assert len(views) == 1 and views[0].number == UNREADABLE and views[0].raw_hex == ""
        assert f"{len(data)} byte" in views[0].value
    assert PAN not in describe(truncated)[0].value and "MTI 0200" in describe(truncated)[0].value


def test_random_and_damaged_bytes_never_raise(wire: Wire) -> None:
    rng = random.Random(8583)
    samples = [rng.randbytes(rng.randrange(0, 200)) for _ in range(2_000)]
    samples += [b"0200" + rng.randbytes(rng.randrange(0, 120)) for _ in range(1_000)]
    originals = list(wire.messages.values())
    for _ in range(2_000):
        data = bytearray(rng.choice(originals))
        data[rng.randrange(len(data))] = rng.randrange(256)
        samples.append(bytes(data[: rng.randrange(1, len(data) + 1)]))
    for data in samples:
        views = describe(data)
        assert views and all(isinstance(v, FieldView) for v in views)
        assert all(v.value.isprintable() for v in views)


def test_field_names_fall_back_to_the_spec() -> None:
    assert field_name("2") == "Primary account number"
    assert field_name("5") == SPEC["5"]["desc"]
    assert field_name("999") == "Field 999"


# -- exchanges and the recorder ------------------------------------------------------------------


def test_exchange_reads_mti_stan_rc_and_renders_a_header(wire: Wire) -> None:
    exchange = make_exchange(NOW, wire.messages["0200"], wire.messages["0210"], STATUS_ANSWERED, rtt_ms=12.34)
    assert (exchange.flow, exchange.request_mti, exchange.answer_mti) == ("bayar", "0200", "0210")
    assert (exchange.stan, exchange.rc) == ("000004", "00")
    assert summary_row(exchange) == ("09:00:00", "bayar", "0200 -> 0210", "000004", "00", "12.3", STATUS_ANSWERED)
    text = format_exchange(exchange)
    header = text.splitlines()[0]
    assert all(part in header for part in ("09:00:00", "0200 -> 0210", "STAN 000004", "RC 00", "12.3 ms"))
    assert "Permintaan 0200" in text and "Jawaban 0210" in text and "System trace audit number" in text
    assert not [secret for secret in wire.secrets if secret in text or secret in repr(exchange)]


def test_unanswered_exchange(wire: Wire) -> None:
    exchange = make_exchange(NOW, wire.messages["0800 keys"], None, STATUS_TIMEOUT)
    assert (exchange.flow, exchange.rc, exchange.rtt_ms, exchange.answer_fields()) == ("tukar kunci", None, None, [])
    text = format_exchange(exchange)
    assert "0800 -> -" in text and "RC -" in text and f"Jawaban: tidak ada, {STATUS_TIMEOUT}" in text


def test_inspector_is_bounded_and_tells_its_listeners(wire: Wire) -> None:
    inspector = Inspector(FixedClock(NOW), maxlen=3)
    seen: list[Exchange] = []
    unsubscribe = inspector.subscribe(seen.append)
    inspector.subscribe(lambda exchange: 1 / 0)  # a broken listener does not stop the recorder
    for stan in range(1, 6):
        doc = protocol.network_request(TERMINAL, "301", f"{stan:06d}", NOW)
        inspector.record(encode(doc), None, STATUS_LOST)
    assert [e.stan for e in inspector.exchanges] == ["000003", "000004", "000005"]
    assert [e.stan for e in seen] == [f"{n:06d}" for n in range(1, 6)]
    assert inspector.maxlen == 3 and inspector.exchanges[0].at == NOW
    unsubscribe()
    inspector.record(wire.messages["0200"], b"junk", STATUS_ANSWERED, rtt_ms=1.0)
    assert len(seen) == 5 and inspector.exchanges[-1].rc is None
    inspector.clear()
    assert inspector.exchanges == []


# -- the headless driver records what went over the wire -----------------------------------------


def headless(switch: FakeSwitch, data_dir: Path, command: str, **kwargs: object) -> dict:
    clock = FixedClock(NOW)
    coroutine = run(command, TID, "127.0.0.1", switch.port, data_dir, clock=clock, timeout_ms=TIMEOUT_MS, **kwargs)  # type: ignore[arg-type]
    return asyncio.run(asyncio.wait_for(coroutine, 10))


def test_run_records_answers_and_a_timeout(fake_switch: FakeSwitch, tmp_path: Path) -> None:
    inspector = Inspector(FixedClock(NOW))
    headless(fake_switch, tmp_path, "signon", inspector=inspector)
    fake_switch.silent_mtis = {"0200"}
    result = headless(fake_switch, tmp_path, "bayar", pan=PAN, pin=PIN, amount_idr=25_000, inspector=inspector)
    assert (result["rc"], result["reversal"]) == ("91", "reversed")
    rows = [(e.flow, e.request_mti, e.answer_mti, e.rc, e.status) for e in inspector.exchanges]
    assert rows == [
        ("sign-on", "0800", "0810", "00", STATUS_ANSWERED),
        ("tukar kunci", "0800", "0810", "00", STATUS_ANSWERED),
        ("daftar kartu", "0800", "0810", "00", STATUS_ANSWERED),  # sign-on also loads the offline card list (360)
        ("bayar", "0200", None, None, STATUS_TIMEOUT),
        ("pembatalan", "0400", "0410", "00", STATUS_ANSWERED),
    ]
    answered = [e for e in inspector.exchanges if e.status == STATUS_ANSWERED]
    assert all(e.rtt_ms is not None and 0 <= e.rtt_ms < TIMEOUT_MS for e in answered)
    assert inspector.exchanges[3].rtt_ms is None


def test_run_records_a_lost_connection_and_traces_it(fake_switch: FakeSwitch, tmp_path: Path) -> None:
    fake_switch.drop_on_stans = {"000001"}
    trace = io.StringIO()
    result = headless(fake_switch, tmp_path, "echo", trace=trace)
    assert result["rc"] == "91"
    assert f"sign-on  0800 -> -  STAN 000001  RC -  RTT -  {STATUS_LOST}" in trace.getvalue()
