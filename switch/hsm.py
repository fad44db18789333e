"""The switch's software HSM: terminal keys, PIN translation and MACs.

Keys at rest are wrapped under the LMK. Working keys (TPK for PINs, TAK for MACs) are made at
key exchange and sent to the terminal wrapped under its master key (TMK). Clear keys live only
in this object's memory. Card numbers are looked up in the journal by a keyed hash
(HMAC-SHA256 under the PAN hash key), never by their masked form. A full card number the
switch must keep (a stored reversal names its card) rests only sealed: AES-GCM under the PAN key
(`PanCipher`), bound to what it belongs to (its associated data, e.g. "saf/<rrn>").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared import iso8583, keys, offline, pinblock
from shared.cards import PAN_LENGTH_MAX, PAN_LENGTH_MIN
from shared.keys import demo_key_hex


def demo_pan_hash_key_hex() -> str:
    """The public demo key of the journal's PAN hash (used when no key is set)."""
    return demo_key_hex("switch", "pan_hash")


def is_full_pan(text: str) -> bool:
    return text.isascii() and text.isdigit() and PAN_LENGTH_MIN <= len(text) <= PAN_LENGTH_MAX


def pan_hash(key: bytes, pan: str) -> str:
    """HMAC-SHA256 of the card number under `key`, as 64 lowercase hex digits."""
    return hmac.new(key, pan.encode("ascii"), hashlib.sha256).hexdigest()


class PanHasher:
    """Search keys of card numbers for the journal, under the PAN hash key (default: the demo one)."""

    def __init__(self, key_hex: str | None = None) -> None:
        self._key = bytes.fromhex(key_hex or demo_pan_hash_key_hex())

    def __call__(self, pan: str) -> str | None:
        """The search key of a full PAN (13-19 digits); None for anything else."""
        return pan_hash(self._key, pan) if is_full_pan(pan) else None


def demo_pan_key_hex() -> str:
    """The public demo key of the sealed card numbers (used when no key is set)."""
    return demo_key_hex("switch", "pan")


SEALED_PREFIX = "v1:"  # version of the format: "v1:" + base64url(nonce (12) + ciphertext + tag (16))
_NONCE_BYTES = 12


class PanSealError(ValueError):
    """A sealed card number does not open: another key, other associated data, or damaged."""


def seal_pan(key: bytes, pan: str, context: str) -> str:
    """`pan` enciphered and authenticated (AES-GCM) under `key`, bound to `context`."""
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, pan.encode("ascii"), context.encode("utf-8"))
    return SEALED_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def open_pan(key: bytes, sealed: str, context: str) -> str:
    if not sealed.startswith(SEALED_PREFIX):
        raise PanSealError("not a sealed card number")
    try:
        raw = base64.urlsafe_b64decode(sealed[len(SEALED_PREFIX) :].encode("ascii"))
        clear = AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode("utf-8"))
    except (ValueError, InvalidTag):
        raise PanSealError("the sealed card number does not open under this key") from None
    return clear.decode("ascii")


class PanCipher:
    """Seals and opens card numbers under the PAN key (default: the demo one)."""

    def __init__(self, key_hex: str | None = None) -> None:
        self.key_hex = key_hex or demo_pan_key_hex()  # handed to migrations that seal old rows
        self._key = bytes.fromhex(self.key_hex)

    def seal(self, pan: str, context: str) -> str:
        return seal_pan(self._key, pan, context)

    def open(self, sealed: str, context: str) -> str:
        """The card number; PanSealError when it does not open."""
        return open_pan(self._key, sealed, context)


@dataclass(frozen=True, slots=True)
class WorkingKeys:
    tpk: bytes
    tak: bytes


@dataclass(frozen=True, slots=True)
class KeyExchange:
    """What a key exchange produces: the keys for the terminal and for the journal."""

    for_terminal: str  # field 48: TPK and TAK under the TMK, and their KCVs
    tpk_lmk: str
    tak_lmk: str
    keys: WorkingKeys


class SwitchHsm:
    def __init__(
        self, lmk_hex: str, zpk_hex_by_bank: dict[str, str], pan_hash_key_hex: str | None = None, pan_key_hex: str | None = None
    ) -> None:
        self._lmk = pinblock.parse_key(lmk_hex)
        self._zpks = {code: pinblock.parse_key(key_hex) for code, key_hex in zpk_hex_by_bank.items()}
        self.pan_hash = PanHasher(pan_hash_key_hex)  # the journal's search key of a card number
        self.pan_cipher = PanCipher(pan_key_hex)  # card numbers kept for store and forward

    def wrap_for_storage(self, key: bytes) -> str:
        return keys.wrap(self._lmk, key)

    def unwrap_stored(self, wrapped_hex: str) -> bytes:
        return keys.unwrap(self._lmk, wrapped_hex)

    def working_keys_from_storage(self, tpk_lmk: str, tak_lmk: str) -> WorkingKeys:
        return WorkingKeys(self.unwrap_stored(tpk_lmk), self.unwrap_stored(tak_lmk))

    def exchange_keys(self, tmk_lmk: str) -> KeyExchange:
        tmk = self.unwrap_stored(tmk_lmk)
        tpk, tak = keys.new_key(), keys.new_key()
        field = f"{keys.wrap(tmk, tpk)}{keys.wrap(tmk, tak)}{keys.kcv(tpk)}{keys.kcv(tak)}"
        return KeyExchange(field, self.wrap_for_storage(tpk), self.wrap_for_storage(tak), WorkingKeys(tpk, tak))

    def translate_pin(self, block_hex: str, pan: str, tpk: bytes, bank_code: str) -> str | None:
        """The PIN block re-enciphered from the terminal's TPK to the bank's ZPK; None when it
        does not decode (a wrong key or a damaged block)."""
        try:
            block = bytes.fromhex(block_hex)
            return pinblock.translate(block, pan, tpk, self._zpks[bank_code]).hex().upper()
        except ValueError:
            return None

    def card_list_key_check(self, bank_code: str) -> str:
        """The check value of bank `bank_code`'s card-list key, as derived from its ZPK here: a
        list the bank made under another key (another ZPK) must not reach the terminals."""
        return offline.list_key_check(self._card_list_key(bank_code))

    def card_list_key_for_terminal(self, tmk_lmk: str, bank_code: str) -> tuple[str, str]:
        """(bank `bank_code`'s card-list key wrapped under the terminal's master key, its check
        value) for field 48 of a card-list page: only that terminal can unwrap it."""
        key = self._card_list_key(bank_code)
        return keys.wrap(self.unwrap_stored(tmk_lmk), key), offline.list_key_check(key)

    def _card_list_key(self, bank_code: str) -> bytes:
        return offline.list_key(self._zpks[bank_code], bank_code)

    def key_exchange_authentic(self, message: bytes, doc: iso8583.Message, tmk_lmk: str) -> bool:
        """True when the key-exchange request carries a valid MAC under the key derived from the
        terminal's master key: the sender holds the TMK."""
        return iso8583.mac_valid(message, doc, keys.key_exchange_key(self.unwrap_stored(tmk_lmk)))

    @staticmethod
    def mac_ok(message: bytes, doc: iso8583.Message, tak: bytes) -> bool:
        return iso8583.mac_valid(message, doc, tak)

    @staticmethod
    def encode_with_mac(doc: iso8583.Message, tak: bytes) -> bytes:
        return iso8583.encode_with_mac(doc, tak)
