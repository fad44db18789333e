"""The cached TDES helpers give exactly what psec gives, for every length of data."""

import random

import pytest
from psec import des, mac

from shared import tdes


def _keys_and_data(seed: int) -> list[tuple[bytes, bytes]]:
    rng = random.Random(seed)
    return [(des.adjust_key_parity(rng.randbytes(16)), rng.randbytes(length)) for length in range(0, 300, 7)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_retail_mac_equals_psec_retail_mac_with_padding_2(seed: int) -> None:
    for key, data in _keys_and_data(seed):
        assert tdes.retail_mac(key, data) == mac.generate_retail_mac(key, key, data, padding=2)


@pytest.mark.parametrize("seed", [4, 5])
def test_ecb_equals_psec_and_round_trips(seed: int) -> None:
    for key, data in _keys_and_data(seed):
        blocks = data[: len(data) - len(data) % 8]
        if not blocks:
            continue
        enciphered = tdes.encrypt_ecb(key, blocks)
        assert enciphered == des.encrypt_tdes_ecb(key, blocks)
        assert tdes.decrypt_ecb(key, enciphered) == blocks


def test_the_mac_of_a_fixed_key_and_block() -> None:
    key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    assert tdes.retail_mac(key, bytes.fromhex("1234567890ABCDEF")) == mac.generate_retail_mac(
        key, key, bytes.fromhex("1234567890ABCDEF"), padding=2
    )


@pytest.mark.parametrize("data", [b"", b"1234567", b"123456789"])
def test_ecb_refuses_data_that_is_not_whole_blocks(data: bytes) -> None:
    with pytest.raises(ValueError, match="multiple of DES block size 8"):
        tdes.encrypt_ecb(bytes(16), data)


def test_a_key_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="16-byte TDES key"):
        tdes.retail_mac(bytes(8), b"data")
