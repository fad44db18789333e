"""The message inspector: what went over the wire, field by field, with secrets masked.

UI-free and plain data, for the Textual panel and `sembako edc-cli ... --trace`:

- `describe(raw)` reads one ISO 8583 message (no length header, no TPDU) into `FieldView` rows:
  number, name, decoded value and raw bytes in hex. The PIN block (52), the MACs (64, 128) and
  track 2 (35) are masked in value and hex; the PAN (2) shows its first 6 and last 4 digits in
  value and hex; the working keys of a network management message (48) are masked, their KCVs
  kept. The PAN is also masked wherever else it might turn up. Unreadable bytes give one row
  (length and reason only), never an exception.
- `Inspector` keeps the last exchanges of one terminal (request and answer bytes, in memory
  only) and tells subscribers about each new one; `format_exchange` renders one as text.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TextIO

import iso8583

from shared import protocol
from shared import rc as rc_table
from shared.cards import PAN_LENGTH_MIN, mask_pan
from shared.clock import Clock, SystemClock
from shared.iso8583 import SPEC, MessageError, peek_mti
from shared.money import format_idr, from_iso_minor

log = logging.getLogger(__name__)

DEFAULT_MAXLEN = 200
MASK = "*"
HEX_MASK = "**"  # one masked byte

STATUS_ANSWERED = "dijawab"
STATUS_TIMEOUT = "tidak ada jawaban (timeout)"
STATUS_LOST = "koneksi terputus"

UNREADABLE = "?"

FIELD_NAMES: dict[str, str] = {
    "t": "Message type indicator",
    "p": "Bitmap, primary",
    "1": "Bitmap, secondary",
    "2": "Primary account number",
    "3": "Processing code",
    "4": "Amount, transaction",
    "7": "Transmission date and time",
    "11": "System trace audit number",
    "12": "Time, local transaction",
    "13": "Date, local transaction",
    "22": "Point of service entry mode",
    "24": "Network international identifier",
    "35": "Track 2 data",
    "37": "Retrieval reference number",
    "38": "Authorization identification response",
    "39": "Response code",
    "41": "Card acceptor terminal identification",
    "42": "Card acceptor identification code",
    "48": "Additional data, private",
    "49": "Currency code, transaction",
    "52": "Personal identification number data",
    "54": "Additional amounts",
    "60": "Reserved national (batch number)",
    "63": "Reserved private (settlement totals)",
    "64": "Message authentication code",
    "70": "Network management information code",
    "90": "Original data elements",
    "128": "Message authentication code",
}

NETWORK_CODES = {"001": "sign-on", "101": "tukar kunci", "301": "echo", "360": "daftar kartu"}
PROCESSING_KINDS = {"31": "cek saldo", "00": "pembelian", "92": "settlement", "96": "settlement setelah batch upload"}
FLOW_LABELS = {
    "0100": "cek saldo",
    "0200": "bayar",
    "0220": "advice offline",
    "0320": "batch upload",
    "0400": "pembatalan",
    "0401": "pembatalan ulang",
    "0500": "settlement",
}
ALWAYS_MASKED = ("35", "52", "64", "128")
KCV_CHARS = 12  # the two 6-character KCVs at the end of a key-exchange field 48


@dataclass(frozen=True, slots=True)
class FieldView:
    """One field as shown: `value` and `raw_hex` are already masked; `note` explains the value."""

    number: str  # "t", "p", "1", "2", ... or "?" for an unreadable message
    name: str
    value: str
    raw_hex: str  # the LL/LLL prefix and a space if any, then the data bytes ("**" per masked byte)
    note: str = ""


def field_name(number: str) -> str:
    """The ISO name of a field; the spec's description for fields the project does not use."""
    if number in FIELD_NAMES:
        return FIELD_NAMES[number]
    spec = SPEC.get(number, {})
    return str(spec.get("desc") or f"Field {number}")


# -- describe ------------------------------------------------------------------------------------


def describe(raw: bytes) -> list[FieldView]:
    """Every field of one message, masked. Unreadable bytes give a single row, never an error."""
    try:
        doc_dec, doc_enc = iso8583.decode(bytearray(raw), SPEC)
    except iso8583.DecodeError as exc:
        return [_unreadable(raw, f"{exc.msg}: field {exc.field} pos {exc.pos}")]
    except Exception as exc:  # noqa: BLE001 - a display must never break the payment flow
        return [_unreadable(raw, type(exc).__name__)]
    mti = str(doc_dec.get("t", ""))
    pan = str(doc_dec.get("2", ""))
    return [_scrub(_view(key, str(doc_dec[key]), doc_enc[key], mti), pan) for key in doc_enc]


def _unreadable(raw: bytes, reason: str) -> FieldView:
    mti = peek_mti(raw)
    head = f"MTI {mti}, " if mti else ""
    value = f"{head}{len(raw)} byte; {_printable(reason)}"
    return FieldView(UNREADABLE, "Pesan tidak dapat dibaca", value, "")


def _view(key: str, value: str, encoded: dict[str, bytes], mti: str) -> FieldView:
    prefix, data = encoded["len"], encoded["data"]
    if key in ALWAYS_MASKED:
        return FieldView(key, field_name(key), MASK * len(value), _hex(prefix, _masked_bytes(data)), "disamarkan")
    if key == "2":
        return _pan_view(value, prefix, data)
    if key == "48" and mti.startswith("08"):
        return _keys_view(value, prefix, data)
    shown = [f"{byte:02X}" for byte in data]
    return FieldView(key, field_name(key), _printable(value), _hex(prefix, shown), _note(key, value))


def _pan_view(pan: str, prefix: bytes, data: bytes) -> FieldView:
    masked = mask_pan(pan)
    if len(masked) != len(data):
        masked = MASK * len(data)
    shown = [HEX_MASK if char == MASK else f"{byte:02X}" for char, byte in zip(masked, data, strict=True)]
    return FieldView("2", field_name("2"), _printable(masked), _hex(prefix, shown))


def _keys_view(value: str, prefix: bytes, data: bytes) -> FieldView:
    """Field 48 of a key exchange: the wrapped keys masked, the KCVs kept when the layout fits."""
    name = field_name("48")
    if len(value) != protocol.KEYS_FIELD_LENGTH or len(data) != len(value):
        return FieldView("48", name, MASK * len(value), _hex(prefix, _masked_bytes(data)), "disamarkan")
    keep = len(value) - KCV_CHARS
    shown = [HEX_MASK] * keep + [f"{byte:02X}" for byte in data[keep:]]
    kcvs = _printable(value[keep:])
    note = f"TPK dan TAK disamarkan; KCV TPK {kcvs[:6]}, KCV TAK {kcvs[6:]}"
    return FieldView("48", name, f"({keep} karakter disamarkan) {kcvs}", _hex(prefix, shown), note)


def _masked_bytes(data: bytes) -> list[str]:
    return [HEX_MASK] * len(data)


def _hex(prefix: bytes, shown: list[str]) -> str:
    data = "".join(shown)
    return f"{prefix.hex().upper()} {data}" if prefix else data


def _scrub(view: FieldView, pan: str) -> FieldView:
    """Mask the PAN should it appear in a field other than 2 (it should not, e.g. not in 90)."""
    if view.number == "2" or len(pan) < PAN_LENGTH_MIN:
        return view
    pan_hex = pan.encode("ascii", "replace").hex().upper()
    masked_hex = "".join(HEX_MASK if c == MASK else f"{ord(c):02X}" for c in mask_pan(pan))
    value, raw_hex = view.value.replace(pan, mask_pan(pan)), view.raw_hex.replace(pan_hex, masked_hex)
    if (value, raw_hex) == (view.value, view.raw_hex):
        return view
    return FieldView(view.number, view.name, value, raw_hex, view.note)


def _printable(text: str) -> str:
    """Control characters escaped, so that a hostile value cannot drive the terminal."""
    return "".join(char if char.isprintable() else f"\\x{ord(char):02x}" for char in text)


def _note(key: str, value: str) -> str:
    """A short reading of the value for trainers ('Rp40.000', the RC text...), or ''."""
    try:
        if key == "3":
            return PROCESSING_KINDS.get(value[:2], "")
        if key == "4":
            return format_idr(from_iso_minor(value))
        if key == "39":
            return rc_table.lookup(value).text_id
        if key == "54":
            return f"saldo {format_idr(protocol.parse_balance_field(value))}"
        if key == "70":
            return NETWORK_CODES.get(value, "")
        if key == "90":
            mti, stan, at = protocol.parse_original_data(value)
            return f"asli: MTI {mti}, STAN {stan}, waktu {at}"
    except (MessageError, ValueError):
        return ""
    return ""


# -- exchanges -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and its answer (or why there is none). Bytes stay in memory, out of repr."""

    at: datetime  # when the request was sent (the terminal's clock)
    flow: str  # e.g. "bayar", "sign-on"
    request_mti: str | None
    stan: str | None
    request: bytes = field(repr=False)
    answer: bytes | None = field(repr=False)
    rc: str | None
    rtt_ms: float | None
    status: str  # STATUS_ANSWERED, STATUS_TIMEOUT or STATUS_LOST

    @property
    def answer_mti(self) -> str | None:
        return peek_mti(self.answer) if self.answer is not None else None

    def request_fields(self) -> list[FieldView]:
        return describe(self.request)

    def answer_fields(self) -> list[FieldView]:
        return describe(self.answer) if self.answer is not None else []


def _fields_of(raw: bytes | None) -> dict[str, str]:
    if raw is None:
        return {}
    try:
        doc, _ = iso8583.decode(bytearray(raw), SPEC)
    except Exception:  # noqa: BLE001 - recording must never break the payment flow
        return {}
    return {key: _printable(str(value)) for key, value in doc.items() if key in ("t", "11", "39", "70")}


def flow_label(request: dict[str, str]) -> str:
    """'bayar', 'sign-on', ... from the request's MTI (and field 70 for network management)."""
    mti = request.get("t", "")
    if mti == "0800":
        return NETWORK_CODES.get(request.get("70", ""), "network")
    return FLOW_LABELS.get(mti, mti or "?")


def make_exchange(
    at: datetime, request: bytes, answer: bytes | None, status: str, rtt_ms: float | None = None, flow: str | None = None
) -> Exchange:
    """An Exchange from the raw bytes: MTI, STAN and RC are read from the messages."""
    sent, got = _fields_of(request), _fields_of(answer)
    label = flow or (flow_label(sent) if sent else UNREADABLE)
    mti = sent.get("t") or peek_mti(request)
    return Exchange(at, label, mti, sent.get("11"), bytes(request), answer, got.get("39"), rtt_ms, status)


Listener = Callable[[Exchange], None]


class Inspector:
    """The last `maxlen` exchanges of one terminal, oldest first, with change listeners."""

    def __init__(
        self, clock: Clock | None = None, maxlen: int = DEFAULT_MAXLEN, timer: Callable[[], float] = time.perf_counter
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.timer = timer  # seconds, for round trips; injected in tests
        self._exchanges: deque[Exchange] = deque(maxlen=maxlen)
        self._listeners: list[Listener] = []

    def now(self) -> datetime:
        return self.clock.now()

    @property
    def maxlen(self) -> int:
        return self._exchanges.maxlen or 0

    @property
    def exchanges(self) -> list[Exchange]:
        return list(self._exchanges)

    def record(
        self,
        request: bytes,
        answer: bytes | None,
        status: str,
        rtt_ms: float | None = None,
        at: datetime | None = None,
        flow: str | None = None,
    ) -> Exchange:
        """Keep one exchange (`at` defaults to now) and tell every listener. Never raises."""
        exchange = make_exchange(at or self.now(), request, answer, status, rtt_ms, flow)
        self._exchanges.append(exchange)
        for listener in list(self._listeners):
            try:
                listener(exchange)
            except Exception:  # noqa: BLE001 - a broken display must not break a payment
                log.warning("an inspector listener failed", exc_info=True)
        return exchange

    def clear(self) -> None:
        self._exchanges.clear()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(exchange)` after each record; returns the function that unsubscribes."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe


# -- text ----------------------------------------------------------------------------------------

SUMMARY_COLUMNS = ("Waktu", "Transaksi", "MTI", "STAN", "RC", "RTT (ms)", "Status")
TABLE_COLUMNS = ("No.", "Nama", "Nilai", "Hex")


def summary_row(exchange: Exchange) -> tuple[str, ...]:
    """The panel's row for one exchange, in SUMMARY_COLUMNS order."""
    rtt = f"{exchange.rtt_ms:.1f}" if exchange.rtt_ms is not None else "-"
    mtis = f"{exchange.request_mti or UNREADABLE} -> {exchange.answer_mti or '-'}"
    at = exchange.at.strftime("%H:%M:%S")
    return (at, exchange.flow, mtis, exchange.stan or "-", exchange.rc or "-", rtt, exchange.status)


def format_fields(views: list[FieldView], indent: str = "    ") -> list[str]:
    """An aligned table of fields: number, name, value (and its note), hex."""
    rows = [TABLE_COLUMNS] + [(v.number, v.name, f"{v.value} ({v.note})" if v.note else v.value, v.raw_hex) for v in views]
    widths = [max(len(row[col]) for row in rows) for col in range(3)]
    return [f"{indent}{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip() for r in rows]


def format_exchange(exchange: Exchange) -> str:
    """A header line (time, flow, MTIs, STAN, RC, RTT, status), then request and answer fields."""
    at, flow, mtis, stan, rc, rtt, status = summary_row(exchange)
    rtt_text = f"{rtt} ms" if exchange.rtt_ms is not None else "-"
    day = exchange.at.strftime("%Y-%m-%d")
    lines = [f"{day} {at}  {flow}  {mtis}  STAN {stan}  RC {rc}  RTT {rtt_text}  {status}"]
    lines.append(f"  Permintaan {exchange.request_mti or UNREADABLE} ({len(exchange.request)} byte)")
    lines += format_fields(exchange.request_fields())
    if exchange.answer is None:
        lines.append(f"  Jawaban: tidak ada, {status}")
    else:
        lines.append(f"  Jawaban {exchange.answer_mti or UNREADABLE} ({len(exchange.answer)} byte)")
        lines += format_fields(exchange.answer_fields())
    return "\n".join(lines) + "\n"


def trace_writer(stream: TextIO) -> Listener:
    """A listener that writes each exchange to `stream` (e.g. sys.stderr) as it happens."""

    def write(exchange: Exchange) -> None:
        stream.write(format_exchange(exchange) + "\n")
        stream.flush()

    return write
