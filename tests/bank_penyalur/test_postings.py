"""The bank's postings for reconciliation (GET /v1/postings), on SQLite and PostgreSQL.

A morning at terminal EDC00001: a purchase and its reversal, a purchase declined for funds, an
offline advice accepted below zero and one refused beyond the offline limit, a balance inquiry,
and a reversal of a purchase that never arrived. Another terminal buys too, and one purchase is
of the day before. The endpoint lists the money requests of one day (of one terminal, or all),
oldest first, with their answers; it only reads.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from bank_penyalur.tables import AuthRequest, Transfer
from tests.bank_penyalur.conftest import TERMINAL, Bank, api_client


def rrn(n: int) -> str:
    return f"{n:012d}"


def morning(bank: Bank) -> dict[str, object]:
    bought = bank.purchase_request("normal", 20_000, rrn=rrn(1))
    assert bank.runtime.authoriser.purchase(bought).rc == "00"
    assert bank.reversal(bought).rc == "00"
    assert bank.purchase("zero_balance", 10_000, rrn=rrn(2)).rc == "51"
    assert bank.advice("pkh_combo", 200_000, rrn=rrn(3)).rc == "00"  # 150.000 - 200.000: below zero
    assert bank.advice("pkh_combo", 120_000, rrn=rrn(4)).rc == "51"  # beyond the offline limit
    assert bank.inquiry("normal").rc == "00"  # not money
    never = bank.purchase_request("normal", 5_000, rrn=rrn(5))
    assert bank.reversal(never).rc == "00"  # reversed before it arrived: only the reversal is listed
    assert bank.purchase("normal", 7_000, rrn=rrn(6), terminal_id="EDC00002").rc == "00"
    assert bank.purchase("normal", 9_000, rrn=rrn(7), transmission_date=bank.today - timedelta(days=1)).rc == "00"
    return {"bought": bought, "never": never}


def counts(bank: Bank) -> tuple[int, int]:
    with bank.runtime.db.read() as conn:
        return (
            conn.execute(select(func.count()).select_from(AuthRequest)).scalar_one(),
            conn.execute(select(func.count()).select_from(Transfer)).scalar_one(),
        )


def test_a_terminals_money_requests_of_the_day(bank: Bank) -> None:
    done = morning(bank)
    client = api_client(bank.runtime)
    before = counts(bank)
    answer = client.get("/v1/postings", params={"date": bank.today.isoformat(), "terminal_id": TERMINAL})
    assert answer.status_code == 200, answer.text
    page = answer.json()
    assert (page["bank"], page["business_date"], page["terminal_id"], page["next_after_id"]) == ("bni", bank.today.isoformat(), TERMINAL, None)
    shown = [(p["op"], p["rrn"], p["original_stan"] or p["stan"], p["amount_idr"], p["rc"], p["posted"], p["exception"]) for p in page["postings"]]
    bought = done["bought"]
    assert shown == [
        ("purchase", rrn(1), bought.stan, 20_000, "00", True, False),
        ("reversal", rrn(1), bought.stan, 20_000, "00", True, False),  # under the purchase's key and RRN
        ("purchase", rrn(2), shown[2][2], 10_000, "51", False, False),
        ("advice", rrn(3), shown[3][2], 200_000, "00", True, True),
        ("advice", rrn(4), shown[4][2], 120_000, "51", False, True),
        ("reversal", None, shown[5][2], 5_000, "00", False, False),  # nothing to give back
    ]
    first = page["postings"][0]
    assert first["card_masked"] == bank.cards["normal"].pan[:6] + "******" + bank.cards["normal"].pan[-4:]
    assert first["approval_code"] and first["merchant_id"] == bank.merchant_id and first["created_at"].endswith("+07:00")
    assert bank.cards["normal"].pan not in answer.text
    assert counts(bank) == before  # read only


def test_every_terminal_and_paging(bank: Bank) -> None:
    morning(bank)
    client = api_client(bank.runtime)
    everyone = client.get("/v1/postings", params={"date": bank.today.isoformat()}).json()
    assert {p["terminal_id"] for p in everyone["postings"]} == {TERMINAL, "EDC00002"}
    assert len(everyone["postings"]) == 7
    pages, after = [], 0
    while after is not None:
        page = client.get("/v1/postings", params={"date": bank.today.isoformat(), "limit": 3, "after_id": after}).json()
        pages.append(len(page["postings"]))
        after = page["next_after_id"]
        if page["postings"]:
            assert after is None or after == page["postings"][-1]["id"]
    assert sum(pages) == 7 and pages[0] == 3
    yesterday = client.get("/v1/postings", params={"date": (bank.today - timedelta(days=1)).isoformat()}).json()
    assert [p["rrn"] for p in yesterday["postings"]] == [rrn(7)]


def test_without_a_date_every_days_postings_in_one_read(bank: Bank) -> None:
    morning(bank)
    client = api_client(bank.runtime)
    page = client.get("/v1/postings").json()
    assert page["business_date"] is None and page["next_after_id"] is None
    days = {p["transmission_date"] for p in page["postings"]}
    assert days == {bank.today.isoformat(), (bank.today - timedelta(days=1)).isoformat()}
    assert len(page["postings"]) == 8  # the day's seven and yesterday's one
    ids = [p["id"] for p in page["postings"]]
    assert ids == sorted(ids)


def test_bad_parameters_are_422(bank: Bank) -> None:
    client = api_client(bank.runtime)
    for params in ({"date": ""}, {"date": "2026-13-01"}, {"date": "20261103"}, {"date": "2026-11-03", "limit": 0},
                   {"date": "2026-11-03", "limit": 10_001}, {"date": "2026-11-03", "terminal_id": "TOO-LONG-ID"},
                   {"date": "2026-11-03", "after_id": -1}):
        response = client.get("/v1/postings", params=params)
        assert response.status_code == 422, (params, response.text)
