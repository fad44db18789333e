"""Offline mode (wilayah khusus): what the bank, the switch and the EDC share about it.

An EDC whose link is down may approve a sale locally. It needs, for its acquiring bank:

- the **hot list**: lost, blocked and replaced cards, as references `hot_ref(key, pan)`;
- **ID references** `id_ref(key, pan, nik)` of the bank's active cards: the cashier types the
  NIK from the holder's KTP or KK and the terminal checks the reference, so no NIK (and no card
  number) rests on the terminal in clear;
- the **offline limit** per card per period (the monthly entitlement): the terminal approves at
  most that much offline per card per month, less what it already approved offline.

The references are HMAC-SHA256 under the bank's **card-list key** (`list_key`), derived from the
bank's zone PIN key, which the bank and the switch both hold. The switch sends the card-list key
to a terminal wrapped under the terminal master key, so only that terminal can use it.

On the wire (0800/0810, field 70 = 360, after a key exchange; request and answer MACed under the terminal
MAC key, in 128: field 70 puts them on the secondary bitmap):

- request: 7, 11, 41, 42, 70, and 60 = the page wanted, 6 digits from 000001;
- answer: 39, the echoed fields, 48 = `list_header_field` (the card-list key under the TMK, its
  check value, the offline limit, the page count), 61 = hot references of the page, 62 = ID
  references of the page (each `REF_HEX_LENGTH` hex characters, concatenated, at most
  `REFS_PER_PAGE_MAX` per field). A page past the last is answered 12.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from shared import keys as keylib
from shared.iso8583 import MessageError
from shared.money import from_iso_minor, to_iso_minor

REF_BYTES = 4
REF_HEX_LENGTH = 2 * REF_BYTES
REFS_PER_PAGE_MAX = 999 // REF_HEX_LENGTH  # 124: one LLL field of at most 999 characters
PAGES_MAX = 999  # 123,876 cards: a bank's list for one terminal is bounded
LIST_KEY_BYTES = 16
LIST_KCV_LENGTH = 6
HEADER_FIELD_LENGTH = 2 * LIST_KEY_BYTES + LIST_KCV_LENGTH + 12 + 6  # 56
PAGE_FIELD_LENGTH = 6
TALLY_REF_BYTES = 8


def list_key(zpk: bytes, bank_code: str) -> bytes:
    """The bank's card-list key: derived from its zone PIN key (HKDF), 16 bytes."""
    return keylib.derive(zpk, f"offline-card-list/{bank_code.lower()}", LIST_KEY_BYTES)


def list_key_check(key: bytes) -> str:
    """A check value of the card-list key (6 hex): the terminal knows it unwrapped the right key."""
    return hmac.new(key, b"kcv", hashlib.sha256).hexdigest()[:LIST_KCV_LENGTH].upper()


def _ref(key: bytes, label: str, *parts: str, size: int = REF_BYTES) -> str:
    data = "|".join((label, *parts)).encode("ascii")
    return hmac.new(key, data, hashlib.sha256).digest()[:size].hex().upper()


def hot_ref(key: bytes, pan: str) -> str:
    """The hot-list reference of a card number."""
    return _ref(key, "hot", pan)


def id_ref(key: bytes, pan: str, nik: str) -> str:
    """The ID reference of a card and its holder's NIK: both must match."""
    return _ref(key, "id", pan, nik)


def tally_ref(key: bytes, pan: str) -> str:
    """The key under which a terminal sums its offline approvals for one card (no PAN at rest)."""
    return _ref(key, "tally", pan, size=TALLY_REF_BYTES)


def page_count(hot: int, ids: int) -> int:
    """Pages needed for `hot` hot references and `ids` ID references (at least one)."""
    per = REFS_PER_PAGE_MAX
    return max(1, -(-hot // per), -(-ids // per))


def page_refs(refs: list[str], page: int) -> str:
    """Field 61 or 62 of page `page` (1-based): that page's slice of `refs`, concatenated."""
    start = (page - 1) * REFS_PER_PAGE_MAX
    return "".join(refs[start : start + REFS_PER_PAGE_MAX])


def split_refs(text: str, field: str) -> list[str]:
    """The references of field 61 or 62; MessageError naming the field when malformed."""
    if len(text) % REF_HEX_LENGTH or any(c not in "0123456789ABCDEF" for c in text):
        raise MessageError(f"field {field} must be {REF_HEX_LENGTH}-character upper-case hex references, got {len(text)} characters")
    return [text[i : i + REF_HEX_LENGTH] for i in range(0, len(text), REF_HEX_LENGTH)]


def page_field(page: int) -> str:
    if not 1 <= page <= PAGES_MAX:
        raise ValueError(f"page must be within [1, {PAGES_MAX}], got {page}")
    return f"{page:06d}"


def parse_page_field(text: str) -> int:
    if len(text) != PAGE_FIELD_LENGTH or not text.isdigit() or not 1 <= int(text) <= PAGES_MAX:
        raise MessageError(f"field 60 must be a page number 000001-{PAGES_MAX:06d}, got {text!r}")
    return int(text)


@dataclass(frozen=True, slots=True)
class ListHeader:
    """Field 48 of a card-list page: the key under the TMK, its check, the limit, the pages."""

    key_wrapped: str  # 32 hex: the card-list key enciphered under the terminal master key
    key_check: str  # list_key_check of the clear key
    offline_limit_idr: int  # per card per period (the monthly entitlement)
    pages: int


def list_header_field(header: ListHeader) -> str:
    if not 1 <= header.pages <= PAGES_MAX:
        raise ValueError(f"pages must be within [1, {PAGES_MAX}], got {header.pages}")
    return f"{header.key_wrapped}{header.key_check}{to_iso_minor(header.offline_limit_idr)}{header.pages:06d}"


def parse_list_header_field(text: str) -> ListHeader:
    if len(text) != HEADER_FIELD_LENGTH:
        raise MessageError(f"field 48 must be {HEADER_FIELD_LENGTH} characters, got {len(text)}")
    key_end = 2 * LIST_KEY_BYTES
    check_end = key_end + LIST_KCV_LENGTH
    limit_end = check_end + 12
    pages = text[limit_end:]
    if not pages.isdigit() or not 1 <= int(pages) <= PAGES_MAX:
        raise MessageError(f"field 48 page count must be 000001-{PAGES_MAX:06d}, got {pages!r}")
    try:
        limit = from_iso_minor(text[check_end:limit_end])
    except ValueError as exc:
        raise MessageError(f"field 48 offline limit: {exc}") from None
    return ListHeader(text[:key_end], text[key_end:check_end].upper(), limit, int(pages))


def offline_approval_code(stan: str) -> str:
    """The approval code an EDC makes for a sale it approved offline: "OF" + the STAN's last 4."""
    return f"OF{stan[-4:]}"
