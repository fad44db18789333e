"""Card numbers: Luhn check digits and masking (first 6 / last 4)."""

from __future__ import annotations

import re

PAN_LENGTH_MIN = 13
PAN_LENGTH_MAX = 19
_PAN_LIKE = re.compile(r"(?<![0-9])[0-9]{13,19}(?![0-9])")


def luhn_check_digit(partial: str) -> str:
    """The digit that makes `partial + digit` pass the Luhn check."""
    total = 0
    for index, char in enumerate(reversed(partial)):
        digit = int(char)
        if index % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


def luhn_valid(pan: str) -> bool:
    if not pan.isdigit() or not PAN_LENGTH_MIN <= len(pan) <= PAN_LENGTH_MAX:
        return False
    return luhn_check_digit(pan[:-1]) == pan[-1]


def make_pan(prefix: str, serial: int, length: int = 16) -> str:
    """A PAN of `length` digits: issuer prefix, zero-padded serial, Luhn check digit."""
    body_len = length - len(prefix) - 1
    if serial < 0 or serial >= 10**body_len:
        raise ValueError(f"serial {serial} does not fit in {body_len} digits")
    partial = f"{prefix}{serial:0{body_len}d}"
    return partial + luhn_check_digit(partial)


def mask_pan(pan: str) -> str:
    """First 6 and last 4 digits shown, the rest as '*'. Short or odd input is fully masked."""
    if len(pan) < PAN_LENGTH_MIN:
        return "*" * len(pan)
    return pan[:6] + "*" * (len(pan) - 10) + pan[-4:]


def mask_card_numbers(text: str) -> str:
    """`text` with every run of 13-19 digits masked as a card number (e.g. a URL path naming a
    card, before it is logged)."""
    return _PAN_LIKE.sub(lambda m: mask_pan(m.group()), text)
