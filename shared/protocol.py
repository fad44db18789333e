"""What the EDC and the switch say to each other: builders and readers of each message.

Both sides use these functions, so the field layout lives in one place:

- 0800/0810 network management: 7, 11, 41, 42, 70 (001 sign-on, 301 echo, 101 key exchange);
  the key-exchange answer carries the new working keys in 48 (see `keys_field`). No MAC.
- 0100/0110 balance inquiry (3 = 31xxxx) and 0200/0210 purchase (3 = 00xxxx): 2, 3, 4, 7, 11,
  12, 13, 22, 24, 41, 42, 49, 52 (PIN block under the terminal PIN key), 60 (batch); answers add
  37 RRN, 38 approval code, 39 RC, 54 balance. MAC in 64 under the terminal MAC key.
- 0400/0401 reversal: the purchase's fields without 52, plus 90 original data elements; MAC
  in 128 (90 is in the secondary bitmap).
- 0220/0230 offline advice: a sale approved offline, built once when it is made and sent
  unchanged however often it is repeated: the purchase's fields without 52, 7/12/13 the sale's
  own time, 38 the local approval code. MAC in 64.
- 0500/0510 settlement: 3 = 920000 (or 960000 after a detail upload), 7, 11, 24, 41, 42, 60 the
  batch, 63 the batch totals (`totals_field`). A 95 answer carries the switch's totals in 63.
- 0320/0330 batch upload (after a 95): one transaction of the batch with the original's fields
  (2, 3, 4, 7, 11, 12, 13, 22, 24, 37, 38, 41, 42, 49, 60, and 90 for a reversal) and 62 = the
  original's MTI (0200, 0220 or 0400). MAC in 64 (128 for a reversal).
- 0800 code 360: one page of the offline card list (see `shared.offline`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime, time

from shared.iso8583 import (
    ADVICE,
    BATCH_UPLOAD,
    CARD_LIST,
    INQUIRY,
    KEY_EXCHANGE,
    NETWORK,
    PURCHASE,
    REVERSAL,
    REVERSAL_REPEAT,
    SETTLEMENT,
    Message,
    MessageError,
    response_mti,
)
from shared.money import CURRENCY_IDR, from_iso_minor, to_iso_minor

PROCESSING_INQUIRY = "310000"
PROCESSING_PURCHASE = "000000"
PROCESSING_SETTLEMENT = "920000"
PROCESSING_SETTLEMENT_AFTER_UPLOAD = "960000"
TOTALS_FIELD_LENGTH = 30
BATCH_COUNT_MAX = 999  # three digits in field 63: a batch holds at most this many of each kind
BATCH_AMOUNT_IDR_MAX = 9_999_999_999  # twelve digits in field 63, minor units
BATCH_MAX = 999_999
# Fields a batch upload (0320) carries from the transaction it details.
UPLOADED = ("2", "3", "4", "7", "11", "12", "13", "22", "24", "37", "38", "41", "42", "49", "60", "90")
ENTRY_MODE_CHIP = "051"
ORIGINAL_DATA_LENGTH = 42
BALANCE_FIELD_LENGTH = 20
KEYS_FIELD_LENGTH = 76
# Fields a response repeats from its request.
ECHOED = ("2", "3", "4", "7", "11", "12", "13", "22", "24", "41", "42", "49", "60", "62", "70", "90")


@dataclass(frozen=True, slots=True)
class Terminal:
    tid: str  # field 41, 8 characters
    mid: str  # field 42, the e-Warong id, 15 characters
    nii: str = "001"  # field 24


def _clock_fields(now: datetime) -> dict[str, str]:
    return {"7": now.strftime("%m%d%H%M%S"), "12": now.strftime("%H%M%S"), "13": now.strftime("%m%d")}


def network_request(terminal: Terminal, code: str, stan: str, now: datetime) -> Message:
    return {"t": NETWORK, "7": now.strftime("%m%d%H%M%S"), "11": stan, "41": terminal.tid, "42": terminal.mid, "70": code}


# Key exchange proves possession of the terminal master key: the sign-on answer carries a
# one-time challenge in 48; the key-exchange request echoes it in 48 and carries a MAC in 64
# under a key derived from the TMK (shared.keys.key_exchange_key).
CHALLENGE_HEX_LENGTH = 16


def new_challenge() -> str:
    return secrets.token_hex(CHALLENGE_HEX_LENGTH // 2).upper()


def challenge_of(answer: Message) -> str | None:
    """The challenge of a sign-on answer, or None when it carries none (or a malformed one)."""
    value = str(answer.get("48", ""))
    if len(value) != CHALLENGE_HEX_LENGTH or any(c not in "0123456789ABCDEF" for c in value):
        return None
    return value


def key_exchange_request(terminal: Terminal, stan: str, now: datetime, challenge: str) -> Message:
    """0800 code 101 answering the sign-on's `challenge`; send it MACed under the key-exchange key."""
    return {**network_request(terminal, KEY_EXCHANGE, stan, now), "48": challenge}


def _card_request(mti: str, terminal: Terminal, stan: str, now: datetime, pan: str, processing: str, amount_idr: int, batch: int) -> Message:
    return {
        "t": mti,
        "2": pan,
        "3": processing,
        "4": to_iso_minor(amount_idr),
        **_clock_fields(now),
        "11": stan,
        "22": ENTRY_MODE_CHIP,
        "24": terminal.nii,
        "41": terminal.tid,
        "42": terminal.mid,
        "49": CURRENCY_IDR,
        "60": f"{batch:06d}",
    }


def inquiry_request(terminal: Terminal, stan: str, now: datetime, pan: str, pin_block_hex: str, batch: int) -> Message:
    doc = _card_request(INQUIRY, terminal, stan, now, pan, PROCESSING_INQUIRY, 0, batch)
    return {**doc, "52": pin_block_hex}


def purchase_request(
    terminal: Terminal, stan: str, now: datetime, pan: str, amount_idr: int, pin_block_hex: str, batch: int
) -> Message:
    doc = _card_request(PURCHASE, terminal, stan, now, pan, PROCESSING_PURCHASE, amount_idr, batch)
    return {**doc, "52": pin_block_hex}


def original_data(original: Message) -> str:
    """Field 90: original MTI, STAN and transmission date-time, then acquirer and forwarder ids."""
    return f"{original['t']}{original['11']}{original['7']}" + "0" * 22


def parse_original_data(text: str) -> tuple[str, str, str]:
    """(MTI, STAN, transmission date-time MMDDhhmmss) from field 90."""
    if len(text) != ORIGINAL_DATA_LENGTH or not text.isdigit():
        raise MessageError(f"field 90 must be {ORIGINAL_DATA_LENGTH} digits, got {text!r}")
    return text[:4], text[4:10], text[10:20]


def reversal_request(original: Message, stan: str, now: datetime, repeat: bool = False) -> Message:
    """Reverse `original` (a purchase); a repeat of an unanswered reversal is sent as 0401."""
    fields = {k: v for k, v in original.items() if k in ("2", "3", "4", "22", "24", "41", "42", "49", "60")}
    return {"t": REVERSAL_REPEAT if repeat else REVERSAL, **fields, **_clock_fields(now), "11": stan, "90": original_data(original)}


def response(request: Message, rc: str, **fields: str) -> Message:
    """The answer to `request`: its response MTI, the echoed fields, 39 and any extra fields."""
    echoed = {k: v for k, v in request.items() if k in ECHOED}
    return {"t": response_mti(str(request["t"])), **echoed, "39": rc, **fields}


def balance_field(balance_idr: int) -> str:
    """Field 54: account type 00, amount type 02 (available), currency, C/D sign, 12 digits."""
    sign = "C" if balance_idr >= 0 else "D"
    return f"0002{CURRENCY_IDR}{sign}{to_iso_minor(abs(balance_idr))}"


def parse_balance_field(text: str) -> int:
    if len(text) != BALANCE_FIELD_LENGTH or text[7] not in "CD":
        raise MessageError(f"field 54 must be {BALANCE_FIELD_LENGTH} characters with C/D at pos 7, got {text!r}")
    amount = from_iso_minor(text[8:])
    return amount if text[7] == "C" else -amount


def keys_field(tpk_wrapped: str, tak_wrapped: str, tpk_kcv: str, tak_kcv: str) -> str:
    """Field 48 of a key-exchange answer: TPK and TAK under the terminal master key, and KCVs."""
    return f"{tpk_wrapped}{tak_wrapped}{tpk_kcv}{tak_kcv}"


def parse_keys_field(text: str) -> tuple[str, str, str, str]:
    if len(text) != KEYS_FIELD_LENGTH:
        raise MessageError(f"field 48 must be {KEYS_FIELD_LENGTH} characters, got {len(text)}")
    return text[:32], text[32:64], text[64:70], text[70:76]


def amount_idr(doc: Message) -> int:
    try:
        return from_iso_minor(str(doc["4"]))
    except KeyError:
        raise MessageError("field 4 is missing") from None
    except ValueError as exc:
        raise MessageError(f"field 4: {exc}") from None


def transmission_date(field7: str, today: date) -> date:
    """The calendar date of field 7 (MMDDhhmmss): the year that puts it closest to today."""
    if len(field7) != 10 or not field7.isdigit():
        raise MessageError(f"field 7 must be 10 digits, got {field7!r}")
    month, day = int(field7[:2]), int(field7[2:4])
    candidates = []
    for year in (today.year - 1, today.year, today.year + 1):
        try:
            candidates.append(date(year, month, day))
        except ValueError:
            continue
    if not candidates:
        raise MessageError(f"field 7 holds no calendar date: {field7[:4]}")
    return min(candidates, key=lambda d: abs((d - today).days))


def time_of_day(hhmmss: str) -> time:
    """The time hhmmss (field 12, or the end of field 7); ValueError when it holds no real time.
    (`datetime.strptime` would do the same at several times the cost, on every advice.)"""
    if len(hhmmss) != 6 or not (hhmmss.isascii() and hhmmss.isdigit()):  # noqa: PLR2004
        raise ValueError(f"not a time hhmmss: {hhmmss!r}")
    return time(int(hhmmss[:2]), int(hhmmss[2:4]), int(hhmmss[4:]))


# -- offline sales, batches and settlement ---------------------------------------------------


def advice_request(
    terminal: Terminal, stan: str, sold_at: datetime, pan: str, amount_idr: int, approval_code: str, batch: int
) -> Message:
    """0220 for a sale approved offline at `sold_at`: built once, then sent unchanged (7, 12
    and 13 all hold the sale's time, so every repeat has the same key at the switch and bank)."""
    doc = _card_request(ADVICE, terminal, stan, sold_at, pan, PROCESSING_PURCHASE, amount_idr, batch)
    return {**doc, "38": approval_code}


@dataclass(frozen=True, slots=True)
class BatchTotals:
    """Settlement totals of one batch: approved purchases (online, and offline advices the bank
    accepted), and approved reversals of approved purchases (once per original)."""

    purchase_count: int = 0
    purchase_amount_idr: int = 0
    reversal_count: int = 0
    reversal_amount_idr: int = 0

    def overflow(self) -> str | None:
        """Why these totals do not fit field 63, or None."""
        for name in ("purchase_count", "reversal_count"):
            if not 0 <= getattr(self, name) <= BATCH_COUNT_MAX:
                return f"{name} {getattr(self, name)} outside [0, {BATCH_COUNT_MAX}]"
        for name in ("purchase_amount_idr", "reversal_amount_idr"):
            if not 0 <= getattr(self, name) <= BATCH_AMOUNT_IDR_MAX:
                return f"{name} {getattr(self, name)} outside [0, {BATCH_AMOUNT_IDR_MAX}]"
        return None


def totals_field(totals: BatchTotals) -> str:
    """Field 63: purchase count (3), purchase amount (12, minor units), reversal count (3),
    reversal amount (12). ValueError when a total does not fit."""
    if problem := totals.overflow():
        raise ValueError(f"batch totals do not fit field 63: {problem}")
    return (
        f"{totals.purchase_count:03d}{to_iso_minor(totals.purchase_amount_idr)}"
        f"{totals.reversal_count:03d}{to_iso_minor(totals.reversal_amount_idr)}"
    )


def parse_totals_field(text: str) -> BatchTotals:
    if len(text) != TOTALS_FIELD_LENGTH or not text.isdigit():
        raise MessageError(f"field 63 must be {TOTALS_FIELD_LENGTH} digits, got {text!r}")
    try:
        return BatchTotals(int(text[0:3]), from_iso_minor(text[3:15]), int(text[15:18]), from_iso_minor(text[18:30]))
    except ValueError as exc:
        raise MessageError(f"field 63: {exc}") from None


def batch_field(batch: int) -> str:
    if not 1 <= batch <= BATCH_MAX:
        raise ValueError(f"batch must be within [1, {BATCH_MAX}], got {batch}")
    return f"{batch:06d}"


def settlement_request(
    terminal: Terminal, stan: str, now: datetime, batch: int, totals: BatchTotals, after_upload: bool = False
) -> Message:
    """0500 closing `batch` with `totals`; `after_upload` (960000) after a 95 and a detail upload."""
    return {
        "t": SETTLEMENT,
        "3": PROCESSING_SETTLEMENT_AFTER_UPLOAD if after_upload else PROCESSING_SETTLEMENT,
        "7": now.strftime("%m%d%H%M%S"),
        "11": stan,
        "24": terminal.nii,
        "41": terminal.tid,
        "42": terminal.mid,
        "60": batch_field(batch),
        "63": totals_field(totals),
    }


def batch_upload_request(original: Message, batch: int) -> Message:
    """0320 detailing `original` (a 0200, 0220 or 0400 as sent, without the PIN block, plus 37
    and 38 of its answer when it had one) in `batch`."""
    fields = {k: v for k, v in original.items() if k in UPLOADED}
    return {"t": BATCH_UPLOAD, **fields, "60": batch_field(batch), "62": str(original["t"])[:3] + "0"}


def card_list_request(terminal: Terminal, stan: str, now: datetime, page: int) -> Message:
    """0800 code 360: page `page` of the acquiring bank's offline card list (send MACed)."""
    return {**network_request(terminal, CARD_LIST, stan, now), "60": f"{page:06d}"}
