"""A small software HSM: the only place where the bank's keys and clear PINs are handled.

The PIN is never stored. The bank keeps a PIN verification value: HMAC-SHA256 under the PIN
verification key over PAN and PIN. Clear PINs exist only inside these functions.
"""

from __future__ import annotations

import hmac
from hashlib import sha256

from shared import pinblock


class Hsm:
    def __init__(self, zpk_hex: str, pvk_hex: str) -> None:
        self._zpk = pinblock.parse_key(zpk_hex)
        self._pvk = bytes.fromhex(pvk_hex)
        assert len(self._pvk) >= 16, "PIN verification key must be at least 16 bytes"

    @property
    def zpk_kcv(self) -> str:
        return pinblock.key_check_value(self._zpk)

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
