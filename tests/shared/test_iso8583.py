"""The wire format: frames, TPDUs, messages and MACs."""

from __future__ import annotations

import asyncio

import pytest

from shared import iso8583

KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
PURCHASE = {
    "t": "0200",
    "2": "9360000900000014",
    "3": "000000",
    "4": "000003500000",
    "11": "000001",
    "41": "BNI00001",
    "42": "EWBNI0000000001",
    "52": "0123456789ABCDEF",
}


def reader_of(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


def test_a_message_round_trips() -> None:
    decoded = iso8583.decode(iso8583.encode(PURCHASE))
    assert {k: v for k, v in decoded.items() if k != "p"} == PURCHASE


def test_frames_carry_length_tpdu_and_message() -> None:
    framed = iso8583.frame(iso8583.Tpdu(1, 0), b"0800abc")
    assert framed[:2] == (12).to_bytes(2, "big") and framed[2:7] == b"\x60\x00\x01\x00\x00"
    tpdu, message = iso8583.split_frame(framed[2:])
    assert (tpdu, message) == (iso8583.Tpdu(1, 0), b"0800abc")
    assert tpdu.reply() == iso8583.Tpdu(0, 1)


def test_reading_frames_from_a_stream() -> None:
    stream = iso8583.frame(iso8583.Tpdu(1, 0), b"0800") + iso8583.frame(iso8583.Tpdu(1, 0), b"0200")

    async def read_two() -> list[bytes]:
        reader = reader_of(stream)
        return [await iso8583.read_frame(reader, 1_000) for _ in range(2)]

    assert [body[5:] for body in asyncio.run(read_two())] == [b"0800", b"0200"]


def test_an_oversize_frame_is_dropped_and_the_stream_stays_in_step() -> None:
    stream = (5_000).to_bytes(2, "big") + b"x" * 5_000 + iso8583.frame(iso8583.Tpdu(1, 0), b"0800")

    async def read() -> tuple[str, bytes]:
        reader = reader_of(stream)
        with pytest.raises(iso8583.FrameError, match="outside"):
            await iso8583.read_frame(reader, 1_000)
        return "dropped", await iso8583.read_frame(reader, 1_000)

    assert asyncio.run(read())[1][5:] == b"0800"


def test_a_silent_peer_times_out() -> None:
    async def read() -> None:
        reader = asyncio.StreamReader()  # never fed
        await iso8583.read_frame(reader, 50)

    with pytest.raises(TimeoutError):
        asyncio.run(read())


def test_a_bad_tpdu_is_named() -> None:
    with pytest.raises(iso8583.FrameError, match="TPDU id"):
        iso8583.split_frame(b"\x61\x00\x01\x00\x000800")


def test_decode_errors_name_the_field_and_keep_the_mti() -> None:
    with pytest.raises(iso8583.MessageError) as caught:
        iso8583.decode(b"0200\xff\xff")
    assert caught.value.mti == "0200" and "field p" in str(caught.value)
    with pytest.raises(iso8583.MessageError) as unreadable:
        iso8583.decode(b"\x00\x01garbage")
    assert unreadable.value.mti is None


def test_the_mac_covers_every_byte_before_it() -> None:
    message = iso8583.encode_with_mac(PURCHASE, KEY)
    assert iso8583.mac_valid(message, iso8583.decode(message), KEY)
    for position in (6, 20, len(message) - 9):
        tampered = bytearray(message)
        tampered[position] ^= 0x01
        try:
            doc = iso8583.decode(bytes(tampered))
        except iso8583.MessageError:
            continue
        assert not iso8583.mac_valid(bytes(tampered), doc, KEY), position


def test_the_mac_moves_to_128_with_a_secondary_bitmap() -> None:
    reversal = {**PURCHASE, "t": "0400", "90": "0200" + "0" * 38}
    reversal.pop("52")
    message = iso8583.encode_with_mac(reversal, KEY)
    doc = iso8583.decode(message)
    assert "128" in doc and "64" not in doc
    assert iso8583.mac_valid(message, doc, KEY)
    assert not iso8583.mac_valid(message, doc, bytes(16))


def test_response_mtis() -> None:
    assert [iso8583.response_mti(m) for m in ("0100", "0200", "0400", "0401", "0800")] == ["0110", "0210", "0410", "0410", "0810"]


# -- frames out of chunks (the link proxy's reads) ---------------------------------------------------


def _frame_of(body: bytes) -> bytes:
    return len(body).to_bytes(2, "big") + body


def test_a_splitter_gives_every_whole_frame_of_a_chunk_and_keeps_the_rest_for_the_next() -> None:
    frames = [_frame_of(b"\x60\x00\x01\x00\x00" + bytes([n]) * n) for n in range(1, 6)]
    stream = b"".join(frames)
    splitter = iso8583.FrameSplitter()
    cut = len(frames[0]) + len(frames[1]) + 3  # mid-way through the third frame's length and TPDU
    assert splitter.feed(stream[:cut]) == frames[:2]
    assert splitter.pending_bytes == 3
    assert splitter.feed(stream[cut:-1]) == frames[2:4]
    assert splitter.feed(stream[-1:]) == frames[4:]
    assert splitter.pending_bytes == 0
    assert splitter.dropped == 0


def test_a_splitter_skips_a_frame_of_a_length_out_of_bounds_whole_and_stays_in_step() -> None:
    good = _frame_of(b"\x60\x00\x01\x00\x000800")
    too_short = _frame_of(b"\x60\x00")  # shorter than a TPDU
    too_long = _frame_of(b"\x60" + b"x" * 200)
    stream = good + too_short + too_long + good
    splitter = iso8583.FrameSplitter(frame_bytes_max=100)
    out = []
    for byte in range(len(stream)):  # one byte at a time
        out += splitter.feed(stream[byte : byte + 1])
    assert out == [good, good]
    assert splitter.dropped == 2
