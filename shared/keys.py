"""Key material shared by the EDC, the switch and the banks: demo keys, key wrapping, KCVs.

All keys are double-length TDES keys (16 bytes) with odd parity. A key travels or rests only
wrapped (enciphered under a key-encryption key, TDES-ECB) and is identified by its KCV.
"""

from __future__ import annotations

import hashlib
import secrets

from psec import des

from shared import tdes

KEY_BYTES = 16


def demo_key_hex(owner: str, purpose: str) -> str:
    """A fixed, public demo key for `owner`'s `purpose` (e.g. ("bni", "zpk")).

    Only for the simulator's demo network; deployments set their keys explicitly."""
    raw = hashlib.sha256(f"sembako-demo/{owner}/{purpose}".encode()).digest()[:KEY_BYTES]
    return des.adjust_key_parity(raw).hex().upper()


def new_key() -> bytes:
    return des.adjust_key_parity(secrets.token_bytes(KEY_BYTES))


def wrap(kek: bytes, key: bytes) -> str:
    """`key` enciphered under `kek`, as hex."""
    return tdes.encrypt_ecb(kek, key).hex().upper()


def unwrap(kek: bytes, wrapped_hex: str) -> bytes:
    try:
        wrapped = bytes.fromhex(wrapped_hex)
    except ValueError:
        raise ValueError("wrapped key is not hex") from None
    if len(wrapped) != KEY_BYTES:
        raise ValueError(f"expecting a {KEY_BYTES}-byte wrapped key, got {len(wrapped)} bytes")
    return tdes.decrypt_ecb(kek, wrapped)


def kcv(key: bytes) -> str:
    return des.generate_kcv(key, 3).hex().upper()


def demo_terminal_master_key_hex(tid: str) -> str:
    """The TMK loaded into demo EDC `tid` at deployment; the switch holds the same key."""
    return demo_key_hex(f"terminal/{tid}", "tmk")


# Constant enciphered under the TMK to derive the key that authenticates key exchanges.
_KEY_EXCHANGE_LABEL = b"SEMBAKO-KEYXCHG1"


def key_exchange_key(tmk: bytes) -> bytes:
    """The key a terminal MACs its key-exchange request with: derived from its master key, so
    only the holder of the TMK (the terminal and the switch's HSM) can ask for working keys."""
    return des.adjust_key_parity(des.encrypt_tdes_ecb(tmk, _KEY_EXCHANGE_LABEL))


def derive(master: bytes, label: str, length: int = 32) -> bytes:
    """A key for one purpose (`label`, e.g. "edc-state/BNI00001") derived from a master key
    (HKDF-SHA256): holders of the master key derive the same key, and one derived key reveals
    neither the master key nor the keys of other labels."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=f"sembako/{label}".encode()).derive(master)
