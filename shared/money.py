"""Money is an integer number of rupiah. Never a float."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictInt

# ISO 8583 field 4 is 12 digits in minor units (IDR has exponent 2 in ISO 4217).
AMOUNT_IDR_MAX = 9_999_999_999
IDR_MINOR_UNITS = 100
CURRENCY_IDR = "360"

# A strict JSON integer: 1500.0, "1500" and true are refused by validation.
Rupiah = Annotated[StrictInt, Field(description="Integer rupiah")]


def is_valid_amount(amount_idr: int) -> bool:
    return 0 < amount_idr <= AMOUNT_IDR_MAX


def format_idr(amount_idr: int) -> str:
    """'Rp150.000' as printed on Indonesian receipts (dot as thousands separator)."""
    sign = "-" if amount_idr < 0 else ""
    return f"{sign}Rp{abs(amount_idr):,}".replace(",", ".")


def to_iso_minor(amount_idr: int) -> str:
    """Field 4 text: 12 digits, minor units."""
    if not 0 <= amount_idr <= AMOUNT_IDR_MAX:
        raise ValueError(f"amount out of range for field 4: {amount_idr}")
    return f"{amount_idr * IDR_MINOR_UNITS:012d}"


def from_iso_minor(field4: str) -> int:
    """Rupiah from field 4 text; sen that are not a whole rupiah are refused."""
    if len(field4) != 12 or not field4.isdigit():
        raise ValueError(f"field 4 must be 12 digits, got {field4!r}")
    minor = int(field4)
    if minor % IDR_MINOR_UNITS:
        raise ValueError(f"field 4 holds a fraction of a rupiah: {field4}")
    return minor // IDR_MINOR_UNITS
