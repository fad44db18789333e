"""Double-length TDES with the cipher set up once per key: ECB for PIN blocks and key
wrapping, and the ISO 9797-1 algorithm 3 ("retail") MAC.

The same arithmetic as `psec.des.encrypt_tdes_ecb`/`decrypt_tdes_ecb` and
`psec.mac.generate_retail_mac(key, key, data, padding=2)` (tests hold them equal), through
`cryptography` directly: building a TDES cipher costs more than enciphering a message, and the
switch, the banks and the terminals use a handful of keys for every message.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from psec.mac import pad_iso_2

BLOCK_BYTES = 8
KEYS_CACHED_MAX = 4_096  # terminals' working keys, banks' zone keys, master keys
_ZERO_IV = bytes(BLOCK_BYTES)


class _Ciphers:
    __slots__ = ("ecb", "cbc")

    def __init__(self, key: bytes) -> None:
        if len(key) != 16:
            raise ValueError(f"expecting a 16-byte TDES key, got {len(key)} bytes")
        algorithm = TripleDES(key + key[:8])  # K1 K2 K1: the double-length key, spelt out
        self.ecb = Cipher(algorithm, modes.ECB())
        self.cbc = Cipher(algorithm, modes.CBC(_ZERO_IV))


@lru_cache(maxsize=KEYS_CACHED_MAX)
def _ciphers(key: bytes) -> _Ciphers:
    return _Ciphers(key)


def _whole_blocks(data: bytes) -> None:
    if not data or len(data) % BLOCK_BYTES:
        raise ValueError(f"data length ({len(data)}) must be a positive multiple of DES block size 8")


def encrypt_ecb(key: bytes, data: bytes) -> bytes:
    _whole_blocks(data)
    return _ciphers(key).ecb.encryptor().update(data)


def decrypt_ecb(key: bytes, data: bytes) -> bytes:
    _whole_blocks(data)
    return _ciphers(key).ecb.decryptor().update(data)


def retail_mac(key: bytes, data: bytes) -> bytes:
    """ISO 9797-1 MAC algorithm 3 with padding method 2 under the double-length `key`: the
    CBC chain over the padded data, then the last block deciphered and enciphered again."""
    ciphers = _ciphers(key)
    chain = ciphers.cbc.encryptor()
    last = chain.update(pad_iso_2(data, BLOCK_BYTES))[-BLOCK_BYTES:]
    # psec deciphers `last` in CBC mode with `last` as IV, then continues the chain with it.
    deciphered = ciphers.ecb.decryptor().update(last)
    unchained = (int.from_bytes(deciphered, "big") ^ int.from_bytes(last, "big")).to_bytes(BLOCK_BYTES, "big")
    return chain.update(unchained)
