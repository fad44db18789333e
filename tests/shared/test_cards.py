from __future__ import annotations

from shared.cards import luhn_check_digit, luhn_valid, make_pan, mask_pan


def test_luhn_matches_a_known_card_number() -> None:
    assert luhn_check_digit("411111111111111") == "1"
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")


def test_luhn_refuses_what_is_not_a_card_number() -> None:
    for text in ("", "1234", "41111111111111x1", "4" * 20):
        assert not luhn_valid(text)


def test_made_pans_are_16_digits_with_the_prefix_and_a_valid_check_digit() -> None:
    pan = make_pan("93600009", 1)
    assert pan == "9360000900000014"
    assert luhn_valid(pan) and len(pan) == 16


def test_a_serial_that_does_not_fit_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError, match="does not fit"):
        make_pan("93600009", 10_000_000)


def test_masking_shows_first_six_and_last_four() -> None:
    assert mask_pan("9360000900000014") == "936000******0014"
    assert mask_pan("12345") == "*****"
