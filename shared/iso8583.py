"""The EDC <-> switch wire protocol: ISO 8583:1987 messages (via pyiso8583), framing and MACs.

A frame is a 2-byte big-endian length, then a 5-byte TPDU, then the message. The message uses
pyiso8583's `default` layout: ASCII MTI and fields, LL/LLL ASCII length prefixes, binary
bitmaps, binary PIN block (52) and MAC (64, or 128 when a secondary-bitmap field is present).
Errors are ValueError subclasses that say what was wrong and where.
"""

from __future__ import annotations

import asyncio
import copy
import struct
from dataclasses import dataclass

import iso8583
from iso8583.specs import default as _default_spec

from shared import tdes

SPEC: dict = copy.deepcopy(_default_spec)

LENGTH_BYTES = 2
TPDU_BYTES = 5
TPDU_ID = 0x60
FRAME_BYTES_MAX = 4_096
MAC_BYTES = 8

# MTI classes
NETWORK = "0800"
INQUIRY = "0100"
PURCHASE = "0200"
ADVICE = "0220"
BATCH_UPLOAD = "0320"
REVERSAL = "0400"
REVERSAL_REPEAT = "0401"
SETTLEMENT = "0500"

# Field 70 network management codes
SIGN_ON = "001"
ECHO = "301"
KEY_EXCHANGE = "101"
CARD_LIST = "360"  # one page of the offline card list (hot list and ID references)

# Field name -> value. All values are text; binary fields (52, 64, 128) are hex text.
Message = dict[str, str]


class FrameError(ValueError):
    """The bytes on the wire are not a frame this network accepts."""


class MessageError(ValueError):
    """The frame holds no valid ISO 8583 message. `mti` is set when it could be read."""

    def __init__(self, reason: str, mti: str | None = None) -> None:
        super().__init__(reason)
        self.mti = mti


@dataclass(frozen=True, slots=True)
class Tpdu:
    destination: int  # NII of the receiver
    source: int  # NII of the sender

    def to_bytes(self) -> bytes:
        return struct.pack(">BHH", TPDU_ID, self.destination, self.source)

    @classmethod
    def from_bytes(cls, data: bytes) -> Tpdu:
        if len(data) != TPDU_BYTES:
            raise FrameError(f"expecting a {TPDU_BYTES}-byte TPDU, got {len(data)} bytes")
        ident, destination, source = struct.unpack(">BHH", data)
        if ident != TPDU_ID:
            raise FrameError(f"TPDU id must be 0x60, got 0x{ident:02x}: pos 0")
        return cls(destination, source)

    def reply(self) -> Tpdu:
        return Tpdu(self.source, self.destination)


def frame(tpdu: Tpdu, message: bytes) -> bytes:
    body = tpdu.to_bytes() + message
    if len(body) > FRAME_BYTES_MAX:
        raise FrameError(f"frame of {len(body)} bytes exceeds {FRAME_BYTES_MAX}")
    return struct.pack(">H", len(body)) + body


def split_frame(body: bytes) -> tuple[Tpdu, bytes]:
    """(TPDU, message bytes) from a frame body (what follows the 2-byte length)."""
    if len(body) < TPDU_BYTES:
        raise FrameError(f"frame of {len(body)} bytes is shorter than a TPDU")
    return Tpdu.from_bytes(body[:TPDU_BYTES]), body[TPDU_BYTES:]


class FrameTimeoutError(TimeoutError):
    """A frame was started (its first byte arrived) but did not arrive whole in time."""


async def read_frame(
    reader: asyncio.StreamReader,
    timeout_ms: int,
    frame_bytes_max: int = FRAME_BYTES_MAX,
    frame_timeout_ms: int | None = None,
) -> bytes:
    """One frame body. Raises asyncio.IncompleteReadError at EOF and TimeoutError when no frame
    starts within `timeout_ms` (the idle timeout). Once its first byte has arrived, the rest of
    the frame must arrive within `frame_timeout_ms` (default: `timeout_ms`), else
    FrameTimeoutError. A frame whose length is out of bounds is read and dropped (so the stream
    stays in step) and reported as FrameError."""
    first = b""
    try:
        async with asyncio.timeout(timeout_ms / 1000) as deadline:  # one timer per frame, moved once
            first = await reader.readexactly(1)
            deadline.reschedule(asyncio.get_running_loop().time() + (frame_timeout_ms or timeout_ms) / 1000)
            header = first + await reader.readexactly(LENGTH_BYTES - 1)
            (length,) = struct.unpack(">H", header)
            body = await reader.readexactly(length)  # at most 65,535 bytes: the length is 2 bytes
    except TimeoutError:
        if not first:
            raise  # idle: no frame started
        raise FrameTimeoutError(f"frame not complete within {frame_timeout_ms or timeout_ms} ms") from None
    if not TPDU_BYTES <= length <= frame_bytes_max:
        raise FrameError(f"frame length {length} outside [{TPDU_BYTES}, {frame_bytes_max}]: dropped")
    return body


class FrameSplitter:
    """Whole frames out of a byte stream read in chunks of whatever arrived: one read (and one
    timer) per chunk rather than per frame, for a reader that only forwards frames (the link
    proxy). A frame whose length is outside [TPDU_BYTES, frame_bytes_max] is skipped whole, so
    the stream stays in step, and counted in `dropped`. Holds at most one unfinished frame
    (a length is 2 bytes: under 64 KiB) besides the last chunk."""

    def __init__(self, frame_bytes_max: int = FRAME_BYTES_MAX) -> None:
        self._buffer = bytearray()
        self._frame_bytes_max = frame_bytes_max
        self.dropped = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        """The frames `chunk` completes, in order, each whole (length prefix included)."""
        buffer = self._buffer
        buffer += chunk
        frames: list[bytes] = []
        start = 0
        while len(buffer) - start >= LENGTH_BYTES:
            length = int.from_bytes(buffer[start : start + LENGTH_BYTES], "big")
            end = start + LENGTH_BYTES + length
            if end > len(buffer):
                break
            if TPDU_BYTES <= length <= self._frame_bytes_max:
                frames.append(bytes(buffer[start:end]))
            else:
                self.dropped += 1
            start = end
        del buffer[:start]
        return frames

    @property
    def pending_bytes(self) -> int:
        """Bytes of a frame begun but not complete yet."""
        return len(self._buffer)


def peek_mti(message: bytes) -> str | None:
    """The MTI if the first four bytes are one, else None."""
    head = message[:4]
    if len(head) == 4 and head.isdigit():
        return head.decode("ascii")
    return None


def encode(doc: Message) -> bytes:
    """Encode a message (field name -> value). Raises MessageError naming the field."""
    try:
        data, _ = iso8583.encode(dict(doc), SPEC)
    except iso8583.EncodeError as exc:
        raise MessageError(f"cannot encode: {exc}", mti=str(doc.get("t"))) from None
    return bytes(data)


def decode(message: bytes) -> Message:
    """Decode message bytes. Raises MessageError with the MTI when it could be read.

    Text fields must be printable ASCII: a control character (NUL, ESC, ...) is a format error,
    so nothing the switch journals or logs carries one."""
    try:
        doc, _ = iso8583.decode(bytearray(message), SPEC)
    except iso8583.DecodeError as exc:
        raise MessageError(f"cannot decode: {exc}", mti=peek_mti(message)) from None
    for field, value in doc.items():
        if isinstance(value, str) and not (value.isascii() and value.isprintable()):
            position = next(i for i, c in enumerate(value) if not (c.isascii() and c.isprintable()))
            raise MessageError(f"field {field} holds a non-printable character at pos {position}", mti=peek_mti(message))
    return doc


# Third MTI digit (message function): a request (0), advice (2), notification (4) or
# instruction (6) is answered with the next odd digit; 8 (reserved) likewise. An odd digit is
# itself an answer and is never answered.
_DIGITS = frozenset("0123456789")


def response_mti_or_none(mti: str | None) -> str | None:
    """The MTI that answers `mti`, or None when there is none: not four ASCII digits, or a
    message function (third digit) that is odd (an answer: 0110, 0190, 9999). The fourth digit
    (origin) becomes 0: 0200 -> 0210, 0401 -> 0410, 0220 -> 0230."""
    if not isinstance(mti, str) or len(mti) != 4 or not set(mti) <= _DIGITS:
        return None
    function = int(mti[2])
    if function % 2:
        return None
    return f"{mti[:2]}{function + 1}0"


def response_mti(mti: str) -> str:
    """0200 -> 0210, 0401 -> 0410 (a repeat is answered like the original). Raises MessageError
    (with `mti` None: there is no answer to give) when `response_mti_or_none` finds none."""
    answer = response_mti_or_none(mti)
    if answer is None:
        raise MessageError(f"no response MTI for {mti!r}: expecting 4 digits with an even third digit")
    return answer


# -- MAC (ISO 9797-1 algorithm 3, "retail MAC", under a double-length TDES key) ------------


_SECONDARY_FIELDS = frozenset(str(n) for n in range(65, 128))


def mac_field(doc: Message) -> str:
    """Field 128 when the secondary bitmap is in use (any field above 64), else 64."""
    return "64" if _SECONDARY_FIELDS.isdisjoint(doc) else "128"


def _mac_of(key: bytes, data: bytes) -> bytes:
    return tdes.retail_mac(key, data)


def encode_with_mac(doc: Message, key: bytes) -> bytes:
    """Encode with a MAC over every byte before the MAC field (which is the last one)."""
    field = mac_field(doc)
    stamped = {k: v for k, v in doc.items() if k not in ("64", "128")}
    stamped[field] = "00" * MAC_BYTES  # binary fields are given as hex text
    data = encode(stamped)
    return data[:-MAC_BYTES] + _mac_of(key, data[:-MAC_BYTES])


def mac_valid(message: bytes, doc: Message, key: bytes) -> bool:
    """True when the message carries a MAC in its last field and the MAC is right."""
    field = mac_field(doc)
    received = doc.get(field)
    if not isinstance(received, str) or len(received) != 2 * MAC_BYTES:
        return False
    if message[-MAC_BYTES:].hex().upper() != received.upper():
        return False  # the MAC field is not the last bytes of the message
    return _mac_of(key, message[:-MAC_BYTES]) == message[-MAC_BYTES:]
