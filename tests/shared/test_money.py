from __future__ import annotations

import pytest

from shared.money import format_idr, from_iso_minor, is_valid_amount, to_iso_minor


def test_field_4_carries_minor_units() -> None:
    assert to_iso_minor(150_000) == "000015000000"
    assert from_iso_minor("000015000000") == 150_000


def test_a_fraction_of_a_rupiah_in_field_4_is_refused() -> None:
    with pytest.raises(ValueError, match="fraction"):
        from_iso_minor("000015000050")


@pytest.mark.parametrize("text", ["15000000", "00001500000x", ""])
def test_malformed_field_4_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="12 digits"):
        from_iso_minor(text)


def test_amount_bounds() -> None:
    assert is_valid_amount(1) and is_valid_amount(9_999_999_999)
    assert not is_valid_amount(0) and not is_valid_amount(-1) and not is_valid_amount(10_000_000_000)


def test_receipt_format() -> None:
    assert format_idr(150_000) == "Rp150.000"
    assert format_idr(-40_000) == "-Rp40.000"
