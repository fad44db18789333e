"""ISO 9564 format 0 PIN blocks under a double-length TDES key (psec's format 0 layout,
`shared.tdes` for the cipher).

The PIN travels only inside an enciphered block; these helpers are what the EDC, the switch's
HSM and the bank's HSM share. Errors are ValueError subclasses that say what was wrong.
"""

from __future__ import annotations

from psec import des, pinblock

from shared import tdes

PIN_LENGTH = 6


class PinBlockError(ValueError):
    """The PIN block cannot be deciphered or decoded for this PAN."""


def parse_key(key_hex: str) -> bytes:
    """A double-length TDES key from hex, with its parity checked."""
    try:
        key = bytes.fromhex(key_hex)
    except ValueError as exc:
        raise ValueError(f"key is not hex: {exc}") from None
    if len(key) != 16:
        raise ValueError(f"expecting a 16-byte TDES key, got {len(key)} bytes")
    return key


def key_check_value(key: bytes) -> str:
    """The 6-hex KCV that operators compare when keys are exchanged."""
    return des.generate_kcv(key, 3).hex().upper()


def encipher(key: bytes, pin: str, pan: str) -> bytes:
    """The 8-byte enciphered format 0 PIN block for `pin` on card `pan`."""
    if len(pin) != PIN_LENGTH or not pin.isdigit():
        raise ValueError(f"PIN must be {PIN_LENGTH} digits")
    return tdes.encrypt_ecb(key, pinblock.encode_pinblock_iso_0(pin, pan))


def decipher(key: bytes, block: bytes, pan: str) -> str:
    """The clear PIN inside `block`; raises PinBlockError when the block is not valid for `pan`."""
    if len(block) != 8:
        raise PinBlockError(f"expecting an 8-byte PIN block, got {len(block)} bytes")
    clear = tdes.decrypt_ecb(key, block)
    try:
        return pinblock.decode_pinblock_iso_0(clear, pan)
    except ValueError as exc:
        raise PinBlockError(f"PIN block does not decode for this card: {exc}") from None


def translate(block: bytes, pan: str, from_key: bytes, to_key: bytes) -> bytes:
    """Re-encipher a PIN block from one key to another (what a switch HSM does)."""
    return encipher(to_key, decipher(from_key, block, pan), pan)
