"""The message layout both the EDC and the switch use."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from shared import iso8583, protocol
from shared.iso8583 import MessageError

TERMINAL = protocol.Terminal("BNI00001", "EWBNI0000000001")
NOW = datetime(2026, 11, 23, 9, 15, 2)


def test_purchase_request_fields() -> None:
    doc = protocol.purchase_request(TERMINAL, "000007", NOW, "9360000900000014", 35_000, "AB" * 8, 3)
    assert doc["t"] == "0200" and doc["3"] == "000000" and doc["4"] == "000003500000"
    assert (doc["7"], doc["12"], doc["13"]) == ("1123091502", "091502", "1123")
    assert (doc["41"], doc["42"], doc["49"], doc["60"]) == ("BNI00001", "EWBNI0000000001", "360", "000003")
    assert protocol.amount_idr(doc) == 35_000
    iso8583.encode(doc)  # fits the spec


def test_a_reversal_carries_the_original_in_field_90() -> None:
    purchase = protocol.purchase_request(TERMINAL, "000007", NOW, "9360000900000014", 35_000, "AB" * 8, 1)
    reversal = protocol.reversal_request(purchase, "000008", NOW, repeat=True)
    assert reversal["t"] == "0401" and "52" not in reversal
    assert protocol.parse_original_data(reversal["90"]) == ("0200", "000007", "1123091502")
    with pytest.raises(MessageError, match="field 90"):
        protocol.parse_original_data("0200")


def test_a_response_echoes_its_request() -> None:
    request = protocol.inquiry_request(TERMINAL, "000009", NOW, "9360000900000014", "AB" * 8, 1)
    answer = protocol.response(request, "00", **{"37": "000000000001", "54": protocol.balance_field(150_000)})
    assert answer["t"] == "0110" and answer["11"] == "000009" and "52" not in answer
    assert protocol.parse_balance_field(answer["54"]) == 150_000


@pytest.mark.parametrize("balance", [0, 1, 150_000, -40_000])
def test_balance_field_round_trips(balance: int) -> None:
    assert protocol.parse_balance_field(protocol.balance_field(balance)) == balance


def test_keys_field_round_trips_and_is_checked() -> None:
    field = protocol.keys_field("A" * 32, "B" * 32, "123456", "ABCDEF")
    assert protocol.parse_keys_field(field) == ("A" * 32, "B" * 32, "123456", "ABCDEF")
    with pytest.raises(MessageError, match="field 48"):
        protocol.parse_keys_field(field[:-1])


def test_field_7_dates_land_in_the_nearest_year() -> None:
    assert protocol.transmission_date("1231235959", date(2027, 1, 1)) == date(2026, 12, 31)
    assert protocol.transmission_date("0101000000", date(2026, 12, 31)) == date(2027, 1, 1)
    assert protocol.transmission_date("0229120000", date(2028, 3, 1)) == date(2028, 2, 29)
    for bad in ("1332000000", "12", "abcdefghij"):
        with pytest.raises(MessageError, match="field 7"):
            protocol.transmission_date(bad, date(2026, 11, 23))


def test_a_missing_or_fractional_amount_is_a_message_error() -> None:
    with pytest.raises(MessageError, match="field 4"):
        protocol.amount_idr({})
    with pytest.raises(MessageError, match="fraction"):
        protocol.amount_idr({"4": "000000000050"})


@pytest.mark.parametrize(("text", "expected"), [("000000", time(0, 0, 0)), ("235959", time(23, 59, 59)), ("071503", time(7, 15, 3))])
def test_a_time_of_day_is_read_from_hhmmss(text: str, expected: time) -> None:
    assert protocol.time_of_day(text) == expected


@pytest.mark.parametrize("text", ["240000", "126000", "120060", "12345", "1234567", "12a456", "", " 12345", "１２３４５６"])
def test_anything_but_a_real_hhmmss_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        protocol.time_of_day(text)
