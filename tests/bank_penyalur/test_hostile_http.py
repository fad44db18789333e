"""Hostile bodies on the bank's HTTP API (issue 12): JSON nested 10,000 deep, integers of
hundreds or thousands of digits, card numbers with letters, dates no calendar of the network
can have. Each gets a clear 4xx (or, for a printable card number that is no card, the RC 14 the
API documents), never a 5xx and never a hang: every request runs under a time bound. Nothing is
stored: the row count of every table of the bank and the ledger are the same after as before
(SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bank_penyalur.tables import Base
from tests.bounded import bounded
from tests.bank_penyalur.test_api import purchase_body, snapshot
from tests.bank_penyalur.conftest import api_client

JSON = {"content-type": "application/json"}
AUTH = "/v1/authorisations"
ENDPOINTS = ("purchase", "balance-inquiry", "reversal", "advice")


@pytest.fixture
def client(bank) -> TestClient:
    return api_client(bank.runtime, raise_server_exceptions=False)



def post(client: TestClient, path: str, content: str | bytes) -> Any:
    response = bounded(client.post, path, content=content, headers=JSON)
    assert response.status_code < 500, (path, response.status_code, response.text[:300])
    return response


def row_counts(bank) -> dict[str, int]:
    """Rows in every table the bank owns: idempotency records, ledger, cards, audit ..."""
    with bank.runtime.db.read() as conn:
        return {table.name: conn.execute(select(func.count()).select_from(table)).scalar_one() for table in Base.metadata.sorted_tables}


def state(client: TestClient, bank) -> dict:
    return {"ledger": snapshot(client, bank), "rows": row_counts(bank)}


def body_for(bank, endpoint: str, **overrides: Any) -> dict:
    """A well-formed request for `endpoint`, changed by `overrides`."""
    body = purchase_body(bank, amount_idr=10_000)
    if endpoint == "balance-inquiry":
        body.pop("amount_idr")
    elif endpoint == "reversal":
        body.pop("pin_block")
        body.update(original_stan="000001", original_transmission_date=body["transmission_date"])
    elif endpoint == "advice":
        body.pop("pin_block")
        body["transaction_at"] = f"{body['transmission_date']}T09:00:00"
    return {**body, **overrides}


def nested(depth: int, kind: str = "list") -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def splice(bank, endpoint: str, field: str, raw_value: str) -> str:
    """The JSON text of a valid request with `field`'s value replaced by `raw_value` as written."""
    body = body_for(bank, endpoint, **{field: "__HOLE__"})
    return json.dumps(body).replace('"__HOLE__"', raw_value)


# -- deeply nested JSON --------------------------------------------------------------------------


def test_json_nested_ten_thousand_deep_is_refused_on_every_authorisation(bank, client) -> None:
    before = state(client, bank)
    for endpoint in ENDPOINTS:
        path = f"{AUTH}/{endpoint}"
        whole = post(client, path, nested(10_000))  # 20,000 bytes: beyond the authorisation limit
        assert whole.status_code == 413, (endpoint, whole.text)
        inside = post(client, path, splice(bank, endpoint, "stan", nested(10_000, "object")))
        assert inside.status_code == 413, (endpoint, inside.text)
        # Within the size limit, but deeper than the JSON reader goes: 400, not a crash.
        deep = post(client, path, splice(bank, endpoint, "terminal_id", nested(7_000)))
        assert (deep.status_code, deep.json()) == (400, {"detail": "There was an error parsing the body"}), (endpoint, deep.text)
        # Deep, yet readable: refused by validation, naming the field, without echoing it.
        readable = post(client, path, splice(bank, endpoint, "merchant_id", nested(500)))
        assert readable.status_code == 422, (endpoint, readable.text)
        assert [str(error["loc"][-1]) for error in readable.json()["detail"]] == ["merchant_id"], endpoint
        extra = post(client, path, splice(bank, endpoint, "cvv2", nested(500, "object")))
        assert extra.status_code == 422 and "cvv2" in extra.text and '"a"' not in extra.text, (endpoint, extra.text)
    assert state(client, bank) == before


def test_json_nested_ten_thousand_deep_on_the_larger_endpoints_is_400(bank, client) -> None:
    before = state(client, bank)
    for path in ("/v1/kpm/openings", "/v1/merchants", "/v1/disbursements", "/v1/cards"):
        for kind in ("list", "object"):
            response = post(client, path, nested(10_000, kind))
            assert response.status_code == 400, (path, kind, response.text)
    assert state(client, bank) == before


# -- huge integers ---------------------------------------------------------------------------------

HUGE_NUMBERS = (str(10**400), str(-(10**400)), "1" + "0" * 4_299, "1e400", "-1e400", "1E+999999999")


def test_a_huge_amount_is_422_naming_the_amount(bank, client) -> None:
    before = state(client, bank)
    for endpoint in ("purchase", "reversal", "advice"):
        for number in HUGE_NUMBERS:
            response = post(client, f"{AUTH}/{endpoint}", splice(bank, endpoint, "amount_idr", number))
            assert response.status_code == 422, (endpoint, number[:20], response.text)
            assert [str(error["loc"][-1]) for error in response.json()["detail"]] == ["amount_idr"]
            assert number not in response.text
    assert state(client, bank) == before


def test_an_integer_longer_than_python_reads_is_400(bank, client) -> None:
    """5,000 digits: beyond Python's limit for integer text (4,300), so the JSON reader refuses it."""
    before = state(client, bank)
    for endpoint in ENDPOINTS:
        field = "stan" if endpoint == "balance-inquiry" else "amount_idr"
        response = post(client, f"{AUTH}/{endpoint}", splice(bank, endpoint, field, "9" * 5_000))
        assert response.status_code == 400, (endpoint, response.text)
        assert "9999" not in response.text
    assert state(client, bank) == before


def test_a_huge_integer_in_a_text_field_is_422_naming_it(bank, client) -> None:
    before = state(client, bank)
    for field in ("stan", "terminal_id", "pan", "pin_block", "transmission_date", "processing_code", "merchant_id"):
        response = post(client, f"{AUTH}/purchase", splice(bank, "purchase", field, str(10**400)))
        assert response.status_code == 422, (field, response.text)
        assert field in {str(error["loc"][-1]) for error in response.json()["detail"]}, field
    assert state(client, bank) == before


# -- card numbers with letters -----------------------------------------------------------------


def test_a_pan_with_letters_is_422_and_nothing_is_stored(bank, client) -> None:
    """A card number is digits: letters, spaces, signs get a 4xx naming `pan`, and not even the
    request is kept (the switch refuses such a field 2 with 30 before it reaches a bank)."""
    before = state(client, bank)
    for pan in ("93600009ABCDEF12", "936000090000001O", "9360 0009 0000 0014", "-9360000900000014", "0x9360000900000014"):
        for endpoint in ENDPOINTS:
            response = bounded(client.post, f"{AUTH}/{endpoint}", json=body_for(bank, endpoint, pan=pan))
            assert response.status_code == 422, (pan, endpoint, response.text)
            assert {str(error["loc"][-1]) for error in response.json()["detail"]} == {"pan"}, (pan, endpoint)
    assert state(client, bank) == before


def test_a_pan_of_non_ascii_digits_or_control_characters_is_422(bank, client) -> None:
    before = state(client, bank)
    for pan in ("\u0669\u0663\u0666\u0660" * 4, "\uff19\uff13\uff16\uff10" * 4, "9360\x00000900000014", "9360000900000014\n", "9" * 20):
        for endpoint in ENDPOINTS:
            response = bounded(client.post, f"{AUTH}/{endpoint}", json=body_for(bank, endpoint, pan=pan))
            assert response.status_code == 422, (pan, endpoint, response.text)
            assert {str(error["loc"][-1]) for error in response.json()["detail"]} == {"pan"}, (pan, endpoint)
    assert state(client, bank) == before


def test_a_pan_with_letters_in_a_path_is_4xx(bank, client) -> None:
    before = state(client, bank)
    for pan in ("93600009ABCDEF12", "9360000900000014OR1=1", "%00", "9" * 300):
        looked_up = bounded(client.get, f"/v1/cards/{pan}")
        assert 400 <= looked_up.status_code < 500, (pan, looked_up.text)
        body = {"actor": "ops", "reason": "tes", "new_pin_block": "0" * 16}
        reset = bounded(client.post, f"/v1/ops/cards/{pan}/pin-reset", json=body)
        assert 400 <= reset.status_code < 500, (pan, reset.text)
    assert state(client, bank) == before


# -- dates out of range ----------------------------------------------------------------------------

BAD_DAYS = ("0000-01-01", "0001-01-01", "9999-12-31", "10000-01-01", "+2026-11-03", "-2026-11-03",
            "\uff12\uff10\uff12\uff16-11-03", "2026-11-03\x00", "2026-02-29", "2026-11-03 ", str(10**400))  # fmt: skip


def test_a_date_out_of_range_is_422_naming_it(bank, client) -> None:
    before = state(client, bank)
    for day in BAD_DAYS:
        for endpoint in ENDPOINTS:
            response = bounded(client.post, f"{AUTH}/{endpoint}", json=body_for(bank, endpoint, transmission_date=day))
            assert response.status_code == 422, (day, endpoint, response.text)
            assert {str(error["loc"][-1]) for error in response.json()["detail"]} == {"transmission_date"}, (day, endpoint)
        reversal = body_for(bank, "reversal", original_transmission_date=day)
        response = bounded(client.post, f"{AUTH}/reversal", json=reversal)
        assert response.status_code == 422, (day, response.text)
        assert {str(error["loc"][-1]) for error in response.json()["detail"]} == {"original_transmission_date"}, day
    assert state(client, bank) == before


OVERFLOWING_MOMENTS = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+00:01", "9999-12-31T23:00:00-00:01")
UNREADABLE_MOMENTS = ("10000-01-01T00:00:00", "2026-11-03T24:00:00", "2026-11-03T09:00:00+25:00", "2026-11-03T09:00:00.1234567",
                      "2026-11-03T09:00:00\x00", str(10**400))  # fmt: skip


def test_an_offline_sale_time_out_of_range_is_422(bank, client) -> None:
    """An offline sale at a moment no calendar holds once in WIB (it was a 500: the conversion
    to WIB overflowed), or no moment at all: refused naming the field, nothing kept."""
    before = state(client, bank)
    for moment in OVERFLOWING_MOMENTS + UNREADABLE_MOMENTS:
        response = bounded(client.post, f"{AUTH}/advice", json=body_for(bank, "advice", transaction_at=moment))
        assert response.status_code == 422, (moment, response.status_code, response.text)
        assert {str(error["loc"][-1]) for error in response.json()["detail"]} == {"transaction_at"}, moment
    assert state(client, bank) == before


def test_an_offline_sale_of_an_absurd_year_is_declined_and_moves_nothing(bank, client) -> None:
    """A readable moment centuries away is the business's to answer: expired (54) or not yet (12)."""
    before = state(client, bank)
    for moment, rc in (("0001-01-01T00:00:00", "54"), ("2000-01-01T00:00:00+07:00", "54"), ("9999-12-31T23:59:59", "12")):
        response = bounded(client.post, f"{AUTH}/advice", json=body_for(bank, "advice", transaction_at=moment))
        assert response.status_code == 200, (moment, response.text)
        assert (response.json()["rc"], response.json()["approval_code"]) == (rc, None), moment
    after = state(client, bank)
    assert after["ledger"] == before["ledger"]
    assert {name for name in after["rows"] if after["rows"][name] != before["rows"][name]} <= {"auth_requests"}
