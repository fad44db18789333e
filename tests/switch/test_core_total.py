"""The switch's handler is total: every frame body gets the answer DESIGN.md names or a
deliberate drop, never an exception, and only real faults of the switch leave a traceback.

Rules (switch.core.SwitchCore.handle, shared.iso8583.response_mti_or_none):
- an MTI with a response MTI (four digits, even third digit) is answered: 30 when the message
  does not decode, 58 for an unknown terminal, 12 for a bad MAC or an MTI not served, 30 for a
  malformed field, 96 when the switch itself fails (with a traceback);
- any other frame (no readable MTI, 0190, 9999, 0210) is dropped with one warning.
"""

from __future__ import annotations

import logging
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import iso8583, rc
from shared.logs import LogSettings, close_logging, configure_logging

from tests.switch.core_harness import (
    MID,
    REQUEST_TPDU,
    TAK,
    TID,
    FakeBanks,
    Records,
    advice_doc,
    echo_doc,
    make_harness,
    maced,
    purchase_doc,
)

EXAMPLES = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
# What an answer to a frame may say, given a bank that approves: never 96 (a fault).
ANSWER_CODES = {rc.APPROVED, rc.FORMAT_ERROR, rc.INVALID_TRANSACTION, rc.NOT_PERMITTED_TERMINAL, rc.INVALID_CARD,
                rc.WRONG_PIN, rc.DUPLICATE}

HARNESS = make_harness()


def expected_answer_mti(body: bytes) -> str | None:
    return iso8583.response_mti_or_none(iso8583.peek_mti(body[iso8583.TPDU_BYTES :]))


def assert_answer_follows_the_rules(body: bytes) -> None:
    with Records() as logs:
        answer = HARNESS.handle(body)
    assert not logs.tracebacks, [r.getMessage() for r in logs.tracebacks]
    expected = expected_answer_mti(body)
    if expected is None:
        assert answer is None
        assert len([r for r in logs.records if r.levelno >= logging.WARNING]) == 1
        return
    assert answer is not None
    _, message = iso8583.split_frame(answer)
    doc = iso8583.decode(message)
    assert doc["t"] == expected
    assert doc["39"] in ANSWER_CODES, doc


def mutations(message: bytes) -> st.SearchStrategy[bytes]:
    """The message with one byte changed, one bitmap bit flipped, cut short, or grown."""
    index = st.integers(0, len(message) - 1)
    flip_byte = st.tuples(index, st.integers(0, 255)).map(lambda p: message[: p[0]] + bytes([p[1]]) + message[p[0] + 1 :])
    flip_bit = st.integers(0, 63).map(lambda bit: _flip_bitmap_bit(message, bit))
    cut = index.map(lambda n: message[:n])
    grow = st.binary(min_size=1, max_size=20).map(lambda extra: message + extra)
    return st.one_of(flip_byte, flip_bit, cut, grow)


def _flip_bitmap_bit(message: bytes, bit: int) -> bytes:
    position = 4 + bit // 8
    return message[:position] + bytes([message[position] ^ (0x80 >> (bit % 8))]) + message[position + 1 :]


# -- any bytes ----------------------------------------------------------------------------------


@EXAMPLES
@given(st.binary(max_size=300))
def test_any_frame_body_is_answered_by_the_rules_or_dropped(body: bytes) -> None:
    assert_answer_follows_the_rules(body)


@EXAMPLES
@given(st.sampled_from([b"0200", b"0800", b"0220", b"0400", b"0190", b"9999", b"02a0", b"0210"]), st.binary(max_size=200))
def test_a_readable_mti_then_anything_is_answered_by_the_rules(mti: bytes, rest: bytes) -> None:
    assert_answer_follows_the_rules(REQUEST_TPDU.to_bytes() + mti + rest)


@EXAMPLES
@given(st.data())
def test_mutated_valid_frames_are_answered_by_the_rules(data: st.DataObject) -> None:
    message = data.draw(st.sampled_from([maced(purchase_doc()), maced(advice_doc()), iso8583.encode(echo_doc())]))
    mutated = data.draw(mutations(message))
    assert_answer_follows_the_rules(REQUEST_TPDU.to_bytes() + mutated)


FIELD_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=0, max_size=20)


@EXAMPLES
@given(st.sampled_from(["2", "3", "4", "7", "11", "12", "13", "22", "41", "42", "49", "60"]), FIELD_TEXT)
def test_a_maced_request_with_any_field_value_is_never_a_fault(field: str, value: str) -> None:
    """Field-level mutations under a valid MAC reach past the MAC check into processing."""
    doc = {**advice_doc(), field: value}
    try:
        message = maced(doc)
    except iso8583.MessageError:
        return  # a value the codec cannot carry: nothing to send
    assert_answer_follows_the_rules(REQUEST_TPDU.to_bytes() + message)


# -- MTIs without a response -----------------------------------------------------------------------


@pytest.mark.parametrize("mti", ["0190", "9999", "0210", "0110", "02a0", "ab12", "02 0"])
def test_a_frame_whose_mti_has_no_response_is_dropped_with_one_warning(mti: str) -> None:
    message = mti.encode() + bytes(8)  # an empty primary bitmap: decodes as {"t": mti}
    with Records() as logs:
        answer = HARNESS.handle(REQUEST_TPDU.to_bytes() + message)
    assert answer is None
    warnings = [r for r in logs.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and not warnings[0].exc_info and "dropped" in warnings[0].getMessage()


def test_an_mti_that_is_not_served_gets_12_and_a_malformed_one_30() -> None:
    _, doc = HARNESS.send(b"0300" + bytes(8))
    assert (doc["t"], doc["39"]) == ("0310", rc.INVALID_TRANSACTION)
    _, doc = HARNESS.send(b"0200\xff")  # a bitmap cut short: the MTI is still readable
    assert (doc["t"], doc["39"]) == ("0210", rc.FORMAT_ERROR)


def test_a_control_character_in_a_field_is_a_format_error() -> None:
    doc = purchase_doc()
    message = maced({**doc, "42": "EWBNI\x00000000001"})
    _, answer = HARNESS.send(message)
    assert answer["39"] == rc.FORMAT_ERROR


# -- offline advice with an unreadable time --------------------------------------------------------


@pytest.mark.parametrize("field12", ["256199", "996000"])
def test_an_advice_with_an_impossible_time_is_30_maced_and_journalled(field12: str) -> None:
    harness = make_harness()
    doc = advice_doc(**{"12": field12})
    with Records() as logs:
        reply, answer = harness.send(maced(doc))
    assert answer["39"] == rc.FORMAT_ERROR
    assert iso8583.mac_valid(reply, answer, TAK)
    assert not logs.tracebacks
    assert not harness.banks.calls
    [record] = harness.transactions()
    assert (record.stan, record.rc, record.kind) == (doc["11"], rc.FORMAT_ERROR, "advice")


def test_an_advice_with_letters_in_field_12_is_30_maced_and_journalled_as_messages() -> None:
    harness = make_harness()
    doc = advice_doc(**{"12": "12ab56"})
    reply, answer = harness.send(maced(doc))
    assert answer["39"] == rc.FORMAT_ERROR and iso8583.mac_valid(reply, answer, TAK)
    out = [m for m in harness.messages() if m.direction == "terminal_out"]
    assert [(m.stan, m.rc) for m in out] == [(doc["11"], rc.FORMAT_ERROR)]
    assert "12" in out[0].fields["reason"]


# -- bad MAC -----------------------------------------------------------------------------------------


def test_a_bad_mac_is_answered_12_maced_logged_and_journalled() -> None:
    harness = make_harness()
    doc = purchase_doc()
    message = bytearray(maced(doc))
    message[-1] ^= 0x01
    with Records() as logs:
        reply, answer = harness.send(bytes(message))
    assert answer["39"] == rc.INVALID_TRANSACTION and iso8583.mac_valid(reply, answer, TAK)
    assert not harness.banks.calls
    [warning] = [r for r in logs.records if r.levelno >= logging.WARNING]
    assert "bad MAC" in warning.getMessage() and not warning.exc_info
    trail = harness.messages()
    assert [(m.direction, m.tid, m.stan, m.rc) for m in trail] == [
        ("terminal_in", TID, doc["11"], None),
        ("terminal_out", TID, doc["11"], rc.INVALID_TRANSACTION),
    ]
    assert trail[1].fields["reason"] == "bad MAC"
    assert "52" not in trail[0].fields and "*" in trail[0].fields["2"]  # masked, no PIN block
    assert not harness.transactions()  # the key stays free for the terminal's own retry


def test_an_unknown_terminal_gets_58_and_is_not_journalled() -> None:
    harness = make_harness()
    _, answer = harness.send(iso8583.encode({**purchase_doc(), "41": "XXX00001"}))
    assert answer["39"] == rc.NOT_PERMITTED_TERMINAL
    assert not harness.journal


# -- real faults ---------------------------------------------------------------------------------------


def test_a_fault_while_processing_is_96_maced_journalled_with_one_traceback() -> None:
    harness = make_harness(FakeBanks(fault=RuntimeError("bug")))
    doc = purchase_doc()
    with Records() as logs:
        reply, answer = harness.send(maced(doc))
    assert answer["39"] == rc.SYSTEM_ERROR and answer["11"] == doc["11"]
    assert iso8583.mac_valid(reply, answer, TAK)
    assert len(logs.tracebacks) == 1
    assert any(m.rc == rc.SYSTEM_ERROR and m.direction == "terminal_out" for m in harness.messages())


def test_the_96_answer_falls_back_to_mti_and_39_when_the_full_answer_cannot_be_built(monkeypatch: pytest.MonkeyPatch) -> None:
    harness = make_harness()

    def broken(*args: object, **kwargs: object) -> dict:
        raise RuntimeError("bug in the answer builder")

    monkeypatch.setattr("switch.core.protocol.response", broken)
    reply, answer = harness.send(maced(purchase_doc()))
    assert (answer["t"], answer["39"]) == ("0210", rc.SYSTEM_ERROR)
    assert iso8583.mac_valid(reply, answer, TAK)


def test_a_well_formed_purchase_still_goes_through() -> None:
    harness = make_harness()
    reply, answer = harness.send(maced(purchase_doc()))
    assert answer["39"] == rc.APPROVED and iso8583.mac_valid(reply, answer, TAK)
    assert [t.rc for t in harness.transactions()] == [rc.APPROVED]


# -- how much a flood of malformed frames writes ---------------------------------------------------


def test_a_flood_of_malformed_frames_writes_a_bounded_log(tmp_path) -> None:  # noqa: ANN001
    frames = 3_000
    root = logging.getLogger()
    level = root.level
    setup = configure_logging("switch", tmp_path, LogSettings(burst=10, interval_s=60, file_bytes_max=1_000_000), stderr=False)
    try:
        generator = random.Random(13)
        harness = make_harness()
        for i in range(frames):
            garbage = bytes(generator.randrange(256) for _ in range(20))
            mti = [b"0200", b"0190", b"9999", b"zz"][i % 4]
            harness.handle(REQUEST_TPDU.to_bytes() + mti + garbage)
        written = setup.path.stat().st_size
    finally:
        close_logging()
        root.setLevel(level)
    # A handful of kinds of warning, each at most `burst` lines per minute: a few bytes a frame.
    assert written / frames < 2.0, written
    text = setup.path.read_text()
    assert "Traceback" not in text
    assert "suppressed" in text  # close_logging reports what it held back

