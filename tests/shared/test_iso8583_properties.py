"""Properties of the codec: any bytes decode to a message or raise MessageError; response MTIs
follow one rule; frames are read whole within their time or not at all."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import iso8583

EXAMPLES = settings(max_examples=300, deadline=None, database=None)  # no .hypothesis directory
SAMPLE = iso8583.encode({"t": "0200", "2": "9360000900000014", "3": "000000", "4": "000003500000", "11": "000001",
                         "41": "BNI00001", "42": "EWBNI0000000001", "52": "0123456789ABCDEF", "90": "0" * 42})


@EXAMPLES
@given(st.binary(max_size=400))
def test_any_bytes_decode_to_a_message_or_a_message_error(data: bytes) -> None:
    try:
        doc = iso8583.decode(data)
    except iso8583.MessageError as exc:
        assert exc.mti == iso8583.peek_mti(data)
        return
    assert all(isinstance(v, str) and v.isascii() and v.isprintable() for v in doc.values())
    assert doc["t"] == data[:4].decode("ascii")


@EXAMPLES
@given(st.data())
def test_mutated_messages_decode_to_a_message_or_a_message_error(data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(SAMPLE) - 1))
    value = data.draw(st.integers(0, 255))
    mutated = SAMPLE[:position] + bytes([value]) + SAMPLE[position + 1 :]
    try:
        doc = iso8583.decode(mutated)
    except iso8583.MessageError:
        return
    fields = {k: v for k, v in doc.items() if k not in ("p", "1")}
    again = iso8583.decode(iso8583.encode(fields))  # what decodes also encodes back
    assert {k: v for k, v in again.items() if k not in ("p", "1")} == fields


@EXAMPLES
@given(st.one_of(st.text(max_size=6), st.from_regex(r"\A[0-9]{4}\Z")))
def test_response_mti_is_a_four_digit_answer_or_none_and_never_raises_otherwise(mti: str) -> None:
    answer = iso8583.response_mti_or_none(mti)
    if answer is None:
        with pytest.raises(iso8583.MessageError):
            iso8583.response_mti(mti)
        return
    assert len(answer) == 4 and answer.isdigit() and int(answer[2]) % 2 == 1 and answer[3] == "0"
    assert answer[:2] == mti[:2] and int(answer[2]) == int(mti[2]) + 1
    assert iso8583.response_mti(mti) == answer


@pytest.mark.parametrize(
    ("mti", "answer"),
    [("0200", "0210"), ("0100", "0110"), ("0220", "0230"), ("0400", "0410"), ("0401", "0410"), ("0800", "0810"),
     ("0500", "0510"), ("0320", "0330"), ("0190", None), ("9999", None), ("0210", None), ("0110", None),
     ("02a0", None), ("020", None), ("02000", None), ("", None), ("٠٢٠٠", None), (None, None)],
)
def test_response_mti_rule(mti: str | None, answer: str | None) -> None:
    assert iso8583.response_mti_or_none(mti) == answer


def _read(data: bytes, eof: bool, idle_ms: int = 1_000, frame_ms: int = 100) -> bytes:
    async def run() -> bytes:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        if eof:
            reader.feed_eof()
        return await iso8583.read_frame(reader, idle_ms, iso8583.FRAME_BYTES_MAX, frame_ms)

    return asyncio.run(run())


def test_a_started_frame_must_complete_within_the_frame_timeout() -> None:
    with pytest.raises(iso8583.FrameTimeoutError):
        _read(b"\x00", eof=False)  # one byte of the header
    with pytest.raises(iso8583.FrameTimeoutError):
        _read((100).to_bytes(2, "big") + b"x" * 10, eof=False)  # 10 of 100 bytes


def test_no_frame_at_all_is_the_idle_timeout_not_a_slow_frame() -> None:
    with pytest.raises(TimeoutError) as caught:
        _read(b"", eof=False, idle_ms=50)
    assert not isinstance(caught.value, iso8583.FrameTimeoutError)
