"""A small software HSM: the only place where the bank's keys, clear PINs and clear card
numbers are handled.

The PIN is never stored. The bank keeps a PIN verification value: HMAC-SHA256 under the PIN
verification key over PAN and PIN. Clear PINs exist only inside these functions.

Card numbers are not stored in clear either. A card is found by its PAN reference, an
HMAC-SHA256 of the PAN under the PAN hash key (`pan_ref`); where the bank needs the number
itself again (the cards table: to print or replace a card) it keeps it sealed with AES-GCM
under the PAN key (`encrypt_pan` / `decrypt_pan`); everywhere else it keeps the masked PAN.
"""

from __future__ import annotations

import base64
import hmac
import os
from hashlib import sha256

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared import offline, pinblock

# Sealed PAN: "v1:" + base64url(nonce (12) + ciphertext + tag (16)); at most 67 characters
# for a 19-digit PAN.
SEALED_PREFIX = "v1:"
SEALED_PAN_MAX = 80
_NONCE_BYTES = 12
# Associated data: a sealed PAN of this service's cards table opens nowhere else.
_PAN_AAD = b"sembako/bank_penyalur/cards.pan"


class PanSealError(ValueError):
    """A sealed card number does not open: another key, damaged, or not a sealed PAN."""


class Hsm:
    def __init__(self, zpk_hex: str, pvk_hex: str, pan_hash_key_hex: str, pan_key_hex: str) -> None:
        self._zpk = pinblock.parse_key(zpk_hex)
        self._pvk = bytes.fromhex(pvk_hex)
        assert len(self._pvk) >= 16, "PIN verification key must be at least 16 bytes"
        pan_hash_key = bytes.fromhex(pan_hash_key_hex)
        if len(pan_hash_key) < 16:
            raise ValueError("PAN hash key must be at least 16 bytes")
        # A keyed HMAC state to copy per PAN: saves the key schedule on the hot path.
        self._pan_hmac = hmac.new(pan_hash_key, digestmod=sha256)
        pan_key = bytes.fromhex(pan_key_hex)
        if len(pan_key) not in (16, 24, 32):
            raise ValueError("PAN key must be an AES key: 16, 24 or 32 bytes")
        self._pan_aead = AESGCM(pan_key)

    @property
    def zpk_kcv(self) -> str:
        return pinblock.key_check_value(self._zpk)

    def card_list_key(self, bank_code: str) -> bytes:
        """The key of this bank's offline card list, derived from its ZPK (`shared.offline.list_key`):
        the switch, holding the same ZPK, derives the same key and hands it to its terminals."""
        return offline.list_key(self._zpk, bank_code)

    # -- card numbers ------------------------------------------------------------------------

    def pan_ref(self, pan: str) -> str:
        """The search key of a card number: HMAC-SHA256 under the PAN hash key, 64 hex digits."""
        digest = self._pan_hmac.copy()
        digest.update(pan.encode("utf-8"))
        return digest.hexdigest()

    def encrypt_pan(self, pan: str) -> str:
        """The card number sealed under the PAN key (AES-GCM, random nonce)."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._pan_aead.encrypt(nonce, pan.encode("ascii"), _PAN_AAD)
        return SEALED_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def decrypt_pan(self, token: str) -> str:
        if not token.startswith(SEALED_PREFIX):
            raise PanSealError("not a sealed card number")
        try:
            raw = base64.urlsafe_b64decode(token[len(SEALED_PREFIX) :].encode("ascii"))
            clear = self._pan_aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _PAN_AAD)
        except (ValueError, InvalidTag):
            raise PanSealError("the sealed card number does not open under this key") from None
        return clear.decode("ascii")

    # -- PINs --------------------------------------------------------------------------------

    def pvv_for(self, pan: str, pin: str) -> str:
        """Verification value for a PIN chosen at activation (PIN given in clear by the PIN pad)."""
        return hmac.new(self._pvk, f"{pan}|{pin}".encode(), sha256).hexdigest()

    def pvv_from_block(self, pan: str, pin_block_hex: str) -> str | None:
        """Verification value of the PIN inside a ZPK-enciphered block; None if it does not decode."""
        try:
            pin = pinblock.decipher(self._zpk, bytes.fromhex(pin_block_hex), pan)
        except ValueError:
            return None
        if len(pin) != pinblock.PIN_LENGTH:
            return None
        return self.pvv_for(pan, pin)

    def verify(self, pan: str, pin_block_hex: str, pvv: str) -> bool:
        candidate = self.pvv_from_block(pan, pin_block_hex)
        return candidate is not None and hmac.compare_digest(candidate, pvv)

    def encipher_pin(self, pan: str, pin: str) -> str:
        """A PIN block under this bank's ZPK, as the switch would deliver it (demo and tests)."""
        return pinblock.encipher(self._zpk, pin, pan).hex().upper()
