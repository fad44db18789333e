"""Every message the project builds survives encode -> decode unchanged (with and without a MAC),
for generated terminals, times, cards, amounts and answers."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from shared import iso8583, keys, protocol, rc
from shared.banks import BANKS
from shared.cards import make_pan
from shared.money import AMOUNT_IDR_MAX

EXAMPLES = 150
TAK = keys.new_key()

terminals = st.builds(
    lambda bank, serial: protocol.Terminal(bank.terminal_id(serial), bank.merchant_id(serial)),
    st.sampled_from(list(BANKS.values())),
    st.integers(1, 48),
)
stans = st.integers(1, 999_999).map(lambda n: f"{n:06d}")
moments = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2099, 12, 31)).map(lambda d: d.replace(microsecond=0))
pans = st.builds(lambda bank, serial: make_pan(bank.iin, serial), st.sampled_from(list(BANKS.values())), st.integers(1, 10**6))
amounts = st.integers(1, AMOUNT_IDR_MAX)
pin_blocks = st.binary(min_size=8, max_size=8).map(lambda b: b.hex().upper())
batches = st.integers(1, 999_999)


def without_bitmaps(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k not in ("p", "1")}


def assert_round_trip(doc: dict) -> None:
    assert without_bitmaps(iso8583.decode(iso8583.encode(doc))) == doc
    signed = iso8583.encode_with_mac(doc, TAK)
    decoded = iso8583.decode(signed)
    assert iso8583.mac_valid(signed, decoded, TAK)
    assert {k: v for k, v in without_bitmaps(decoded).items() if k not in ("64", "128")} == doc


@settings(max_examples=EXAMPLES, deadline=None)
@given(terminals, stans, moments, st.sampled_from([iso8583.SIGN_ON, iso8583.ECHO]))
def test_network_requests(terminal, stan, now, code) -> None:  # noqa: ANN001
    assert_round_trip(protocol.network_request(terminal, code, stan, now))


@settings(max_examples=EXAMPLES, deadline=None)
@given(terminals, stans, moments)
def test_key_exchange_request_and_its_answer(terminal, stan, now) -> None:  # noqa: ANN001
    request = protocol.key_exchange_request(terminal, stan, now, protocol.new_challenge())
    assert_round_trip(request)
    field48 = protocol.keys_field(keys.wrap(TAK, keys.new_key()), keys.wrap(TAK, keys.new_key()), "ABCDEF", "123456")
    assert_round_trip(protocol.response(request, rc.APPROVED, **{"48": field48}))


@settings(max_examples=EXAMPLES, deadline=None)
@given(terminals, stans, moments, pans, pin_blocks, batches, amounts)
def test_inquiry_purchase_reversal_and_their_answers(terminal, stan, now, pan, block, batch, amount) -> None:  # noqa: ANN001
    inquiry = protocol.inquiry_request(terminal, stan, now, pan, block, batch)
    purchase = protocol.purchase_request(terminal, stan, now, pan, amount, block, batch)
    without_pin = {k: v for k, v in purchase.items() if k != "52"}
    reversal = protocol.reversal_request(without_pin, stan, now)
    repeat = protocol.reversal_request(without_pin, stan, now, repeat=True)
    for request in (inquiry, purchase, reversal, repeat):
        assert_round_trip(request)
    balance = protocol.balance_field(amount)
    assert_round_trip(protocol.response(inquiry, rc.APPROVED, **{"37": "000000000001", "54": balance}))
    assert_round_trip(protocol.response(purchase, rc.APPROVED, **{"37": "000000000002", "38": "123456", "54": balance}))
    assert_round_trip(protocol.response(reversal, rc.APPROVED, **{"37": "000000000003"}))
    assert protocol.parse_original_data(reversal["90"])[1] == stan
