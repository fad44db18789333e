"""Credentials callers present to a bank's HTTP API: the switch's, and the bank's operators'.

Each bank accepts two credentials, set in its settings (`SEMBAKO_BANK_SWITCH_CREDENTIAL`,
`SEMBAKO_BANK_OPERATOR_CREDENTIAL`); the switch holds one per bank
(`SEMBAKO_SWITCH_BANK_CREDENTIALS`). A credential travels as `Authorization: Bearer <credential>`.
Without settings both sides use fixed, public demo credentials derived like the demo keys.
"""

from __future__ import annotations

import re

from shared.keys import demo_key_hex

SWITCH = "switch"
OPERATOR = "operator"
HOLDERS = (SWITCH, OPERATOR)

CREDENTIAL_CHARS_MIN = 16
CREDENTIAL_CHARS_MAX = 256
# RFC 6750 b64token characters: safe in a header, no spaces.
_CREDENTIAL_PATTERN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def demo_credential(bank_code: str, holder: str) -> str:
    """The fixed, public demo credential of `holder` ("switch" or "operator") at bank `bank_code`.

    Only for the simulator's demo network; deployments set their credentials explicitly."""
    if holder not in HOLDERS:
        raise ValueError(f"unknown credential holder {holder!r}; expected one of {', '.join(HOLDERS)}")
    return demo_key_hex(bank_code, f"{holder}_credential")


def check_credential(value: str) -> str:
    """`value` when it can serve as a credential; else ValueError saying what is wrong (never
    repeating the value)."""
    if not CREDENTIAL_CHARS_MIN <= len(value) <= CREDENTIAL_CHARS_MAX:
        raise ValueError(f"a credential has {CREDENTIAL_CHARS_MIN} to {CREDENTIAL_CHARS_MAX} characters, got {len(value)}")
    if not _CREDENTIAL_PATTERN.fullmatch(value):
        raise ValueError("a credential is letters, digits and - . _ ~ + / (optionally ending in =), no spaces")
    return value


def bearer(credential: str) -> dict[str, str]:
    """The header carrying `credential`."""
    return {"Authorization": f"Bearer {credential}"}
