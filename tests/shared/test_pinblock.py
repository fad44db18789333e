from __future__ import annotations

import pytest

from shared import pinblock

KEY_A = pinblock.parse_key("0123456789ABCDEFFEDCBA9876543210")
KEY_B = pinblock.parse_key("89ABCDEF0123456776543210FEDCBA98")
PAN = "9360000900000014"


def test_pin_round_trips_through_an_enciphered_block() -> None:
    block = pinblock.encipher(KEY_A, "123456", PAN)
    assert len(block) == 8
    assert pinblock.decipher(KEY_A, block, PAN) == "123456"


def test_translation_moves_the_block_to_another_key_without_changing_the_pin() -> None:
    block = pinblock.encipher(KEY_A, "654321", PAN)
    translated = pinblock.translate(block, PAN, KEY_A, KEY_B)
    assert translated != block
    assert pinblock.decipher(KEY_B, translated, PAN) == "654321"


def test_a_block_under_the_wrong_key_does_not_decode() -> None:
    block = pinblock.encipher(KEY_A, "123456", PAN)
    with pytest.raises(pinblock.PinBlockError):
        pinblock.decipher(KEY_B, block, PAN)


def test_pins_must_be_six_digits() -> None:
    for pin in ("12345", "1234567", "12a456"):
        with pytest.raises(ValueError, match="6 digits"):
            pinblock.encipher(KEY_A, pin, PAN)


def test_keys_are_checked() -> None:
    with pytest.raises(ValueError, match="16-byte"):
        pinblock.parse_key("0123")
    with pytest.raises(ValueError, match="not hex"):
        pinblock.parse_key("zz" * 16)
    assert len(pinblock.key_check_value(KEY_A)) == 6
