"""The switch's operations API as bank operations staff use it, on SQLite and PostgreSQL.

The journal holds a morning of traffic (2026-11-03, WIB) at two e-Warong:

- at BNI00001, Siti buys for Rp35.000 and is declined for Rp50.000 (51), checks her balance;
  Budi buys for Rp10.000 and the EDC reverses it, then repeats the reversal (0401);
- at BRI00001, Ani buys for Rp20.000, an offline advice of Rp15.000 is uploaded, and a
  Rp12.000 purchase times out at the bank (91) and is reversed;
- at BNI00002 a card of no known bank is refused by the switch (14);
- and Siti bought for Rp99.000 the evening before.

A reversal of the timed-out purchase owed to BRI waits in store-and-forward; one to BNI was
acknowledged. No response of the API may contain a full card number. The client holds the switch
operator's admin token (access and bank scope: test_ops_access).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shared.banks import get_bank
from shared.cards import make_pan, mask_pan
from switch.journal import Journal, MessageRecord, TransactionRecord
from tests.switch.ops_tokens import ops_client
from tests.switch.test_journal import open_journal, terminal, transaction

DAY = date(2026, 11, 3)
SITI = make_pan(get_bank("bni").iin, 11)
BUDI = make_pan(get_bank("bni").iin, 12)
ANI = make_pan(get_bank("bri").iin, 13)
STRANGER = "4111111111111111"
FULL_PANS = (SITI, BUDI, ANI, STRANGER)
PAN_RUN = re.compile(r"(?<![0-9])[0-9]{13,19}(?![0-9])")
BRI = {"tid": "BRI00001", "mid": "EWBRI0000000001", "bank_code": "bri"}


def rrn(n: int) -> str:
    return f"{n:012d}"


def morning(clock) -> list[TransactionRecord]:  # noqa: ANN001
    """Transactions 1..11 of the morning, one minute apart from 09:00 WIB."""
    plan = [
        dict(stan="000001", pan=SITI, amount_idr=35_000, bank_latency_ms=40),
        dict(stan="000002", pan=BUDI, amount_idr=10_000, bank_latency_ms=60),
        dict(stan="000003", pan=SITI, amount_idr=50_000, rc="51", approval_code=None, bank_latency_ms=50),
        dict(stan="000004", kind="reversal", pan=BUDI, amount_idr=10_000, original_rrn=rrn(2), bank_latency_ms=30),
        dict(stan="000005", kind="reversal", mti="0401", pan=BUDI, amount_idr=10_000, original_rrn=rrn(2), bank_latency_ms=20),
        dict(stan="000006", kind="inquiry", pan=SITI, bank_latency_ms=40),
        dict(stan="000001", pan=ANI, amount_idr=20_000, bank_latency_ms=100, **BRI),
        dict(stan="000002", kind="advice", pan=ANI, amount_idr=15_000, bank_latency_ms=80, **BRI),
        dict(stan="000003", pan=ANI, amount_idr=12_000, rc="91", approval_code=None, bank_latency_ms=2_500, **BRI),
        dict(stan="000004", kind="reversal", pan=ANI, amount_idr=12_000, original_rrn=rrn(9), bank_latency_ms=90, **BRI),
        dict(stan="000001", pan=STRANGER, tid="BNI00002", mid="EWBNI0000000002", bank_code=None, rc="14",
             approval_code=None, balance_idr=None, bank_latency_ms=None),
    ]
    records = []
    for n, values in enumerate(plan, start=1):
        records.append(transaction(rrn(n), values.pop("stan"), values.pop("kind", "purchase"), created_at=clock.now(), **values))
        clock.advance(timedelta(minutes=1))
    return records


def siti_trail(record: TransactionRecord) -> list[MessageRecord]:
    """Purchase 1's legs, stored newest first, and carelessly unmasked (the API must mask)."""
    t0, leg = record.created_at, (record.rrn, record.tid, record.stan)
    return [
        MessageRecord(*leg, "0210", "terminal_out", "00", record.response, t0 + timedelta(milliseconds=60)),
        MessageRecord(*leg, "0200", "bank_in", "00", {"rc": "00", "balance_idr": 125_000}, t0 + timedelta(milliseconds=50)),
        MessageRecord(*leg, "0200", "bank_out", None, {"op": "purchase", "pan": SITI, "pin_block": "0123456789ABCDEF"}, t0 + timedelta(milliseconds=10)),
        MessageRecord(*leg, "0200", "terminal_in", None, {"2": SITI, "4": "000003500000", "52": "0123456789ABCDEF"}, t0),
    ]


TERMINALS = [terminal("BNI00001"), terminal("BNI00002"), terminal("BRI00001", "bri")]


def seed(journal: Journal, clock) -> None:  # noqa: ANN001
    journal.ensure_terminals(TERMINALS, clock.now() - timedelta(days=30))
    evening = clock.now() - timedelta(hours=13)
    journal.record([transaction(rrn(12), "000099", pan=SITI, amount_idr=99_000, transmission_date=DAY - timedelta(days=1), created_at=evening)], [])
    records = morning(clock)
    journal.record(records, siti_trail(records[0]))
    garbled = {"2": STRANGER + "2222", "39": "14"}  # 20 digits: too long for a card, still one inside
    journal.record([], [MessageRecord(rrn(11), "BNI00002", "000001", "0200", "terminal_in", None, garbled, records[-1].created_at)])
    reversal = {"terminal_id": "BRI00001", "stan": "000003", "pan": ANI, "amount_idr": 12_000}
    owed = journal.enqueue_saf(rrn(9), "bri", reversal, clock.now())
    journal.record_saf_attempt(owed, "error", "timeout", clock.now() + timedelta(seconds=5))
    journal.record_saf_attempt(owed, "error", f"HTTP 503 for card {ANI}", clock.now() + timedelta(seconds=10))
    done = journal.enqueue_saf(rrn(2), "bni", {"stan": "000002", "pan": BUDI}, clock.now())
    journal.record_saf_attempt(done, "ack", "rc 00", clock.now() + timedelta(seconds=1))


@pytest.fixture
def journal(storage, clock) -> Iterator[Journal]:  # noqa: ANN001
    opened = open_journal(storage)
    seed(opened, clock)
    yield opened
    opened.db.dispose()


@pytest.fixture
def client(journal: Journal) -> TestClient:
    # Server errors come back as 500 responses instead of exceptions: the tests look for them.
    return ops_client(journal, stats_provider=lambda: {"inflight": 3}, raise_server_exceptions=False)


def get(client: TestClient, url: str, status: int = 200, **params: Any) -> Any:  # noqa: ANN401
    """GET and check the answer: the expected status and never a full card number."""
    response = client.get(url, params=params)
    assert response.status_code == status, response.text
    assert not [pan for pan in FULL_PANS if pan in response.text], response.text
    assert not PAN_RUN.search(response.text), response.text
    return response.json()


def rrns(page: dict) -> list[int]:
    return [int(item["rrn"]) for item in page["items"]]


# -- searching the journal -----------------------------------------------------------------------


def test_health(client: TestClient, journal: Journal) -> None:
    health = {"status": "ok", "service": "switch", "database": journal.db.dialect, "demo_keys": None}
    assert get(client, "/health") == health  # no running switch behind it to say which keys
    client.app.state.demo_keys = True  # as SwitchRuntime tells it
    assert get(client, "/health") == {**health, "demo_keys": True}


def test_newest_first_page_by_page(client: TestClient) -> None:
    first = get(client, "/v1/transactions", limit=5)
    assert rrns(first) == [11, 10, 9, 8, 7]
    second = get(client, "/v1/transactions", limit=5, before_id=first["next_before_id"])
    assert rrns(second) == [6, 5, 4, 3, 2]
    last = get(client, "/v1/transactions", limit=5, before_id=second["next_before_id"])
    assert rrns(last) == [1, 12] and last["next_before_id"] is None
    assert len(get(client, "/v1/transactions")["items"]) == 12


FILTERS = [
    ({"rrn": rrn(3)}, [3]),
    ({"pan": SITI}, [6, 3, 1, 12]),  # through the keyed hash of the full PAN
    ({"pan": STRANGER}, [11]),
    ({"pan": make_pan(get_bank("bni").iin, 99)}, []),
    ({"terminal": "BRI00001"}, [10, 9, 8, 7]),
    ({"merchant": "EWBRI0000000001"}, [10, 9, 8, 7]),
    ({"rc": "91"}, [9]),
    ({"bank": "BRI"}, [10, 9, 8, 7]),
    ({"bank": "bri"}, [10, 9, 8, 7]),
    ({"kind": "reversal"}, [10, 5, 4]),
    ({"from": "2026-11-03T09:00:00", "to": "2026-11-03T09:02:00"}, [2, 1]),
    ({"from": "2026-11-03T02:08:00Z"}, [11, 10, 9]),  # 09:08 WIB
    ({"to": "2026-11-03T09:00:00+07:00"}, [12]),
    ({"from": "2026-11-03T09:09", "to": "2026-11-03T09:09:00.000001"}, [10]),
    ({"bank": "bni", "kind": "purchase", "rc": "00"}, [2, 1, 12]),
    ({"terminal": "MDR00001"}, []),
]


def test_each_filter_finds_its_transactions(client: TestClient) -> None:
    for params, expected in FILTERS:
        assert rrns(get(client, "/v1/transactions", **params)) == expected, params


def test_items_show_the_transaction_with_the_card_masked(client: TestClient) -> None:
    [item] = get(client, "/v1/transactions", rrn=rrn(3))["items"]
    assert item["pan_masked"] == mask_pan(SITI) == f"{SITI[:6]}******{SITI[-4:]}"
    assert {k: item[k] for k in ("tid", "mid", "stan", "mti", "kind", "bank_code", "amount_idr", "rc", "rc_text")} == {
        "tid": "BNI00001", "mid": "EWBNI0000000001", "stan": "000003", "mti": "0200", "kind": "purchase",
        "bank_code": "bni", "amount_idr": 50_000, "rc": "51", "rc_text": "Insufficient funds",
    }
    assert item["transmission_date"] == "2026-11-03" and item["created_at"] == "2026-11-03T09:02:00+07:00"


# -- one transaction -----------------------------------------------------------------------------


def test_a_purchase_shows_its_message_trail_in_time_order_masked(client: TestClient) -> None:
    found = get(client, f"/v1/transactions/{rrn(1)}")
    assert found["transaction"]["amount_idr"] == 35_000
    messages = found["messages"]
    assert [m["direction"] for m in messages] == ["terminal_in", "bank_out", "bank_in", "terminal_out"]
    terminal_in, bank_out = messages[0]["fields"], messages[1]["fields"]
    assert terminal_in == {"2": mask_pan(SITI), "4": "000003500000"}  # no PIN block
    assert bank_out == {"op": "purchase", "pan": mask_pan(SITI)}
    assert found["response"]["2"] == mask_pan(SITI) and found["response"]["39"] == "00"
    assert found["reversals"] == [] and found["original"] is None


def test_a_reversed_purchase_points_to_its_reversals_and_back(client: TestClient) -> None:
    purchase = get(client, f"/v1/transactions/{rrn(2)}")
    assert [(r["rrn"], r["mti"]) for r in purchase["reversals"]] == [(rrn(4), "0400"), (rrn(5), "0401")]
    reversal = get(client, f"/v1/transactions/{rrn(4)}")
    assert reversal["original"]["rrn"] == rrn(2) and reversal["original"]["amount_idr"] == 10_000


def test_a_garbled_card_number_is_masked_too(client: TestClient) -> None:
    [message] = get(client, f"/v1/transactions/{rrn(11)}")["messages"]
    assert message["fields"] == {"2": "411111**********2222", "39": "14"}


def test_an_unknown_rrn_is_404(client: TestClient) -> None:
    assert get(client, "/v1/transactions/999999999999", 404) == {"detail": "no transaction with RRN 999999999999"}
    assert get(client, f"/v1/transactions/{ANI}", 404)["detail"] == "no transaction with RRN of that length"
    assert get(client, "/v1/transactions/%00", 422)["detail"][0]["loc"] == ["path", "rrn"]


# -- settlement and statistics -------------------------------------------------------------------


def line(bank: str, purchases: tuple[int, int], reversals: tuple[int, int]) -> dict:
    return {
        "bank": bank,
        "purchase_count": purchases[0],
        "purchase_amount_idr": purchases[1],
        "reversal_count": reversals[0],
        "reversal_amount_idr": reversals[1],
        "net_amount_idr": purchases[1] - reversals[1],
    }


def test_settlement_nets_approved_purchases_against_their_reversals(client: TestClient) -> None:
    """BNI: 35.000 + 10.000 bought, 10.000 reversed once (the 0401 repeat gives nothing back);
    the declined 50.000 does not count. BRI: 20.000 + the 15.000 advice; the reversal of the
    timed-out purchase does not count, nothing was approved to reverse."""
    settled = get(client, "/v1/settlement", date="2026-11-03")
    assert settled["business_date"] == "2026-11-03"
    assert settled["banks"] == [
        line("bni", (2, 45_000), (1, 10_000)),
        line("bri", (2, 35_000), (0, 0)),
        line("mandiri", (0, 0), (0, 0)),
        line("btn", (0, 0), (0, 0)),
    ]
    assert settled["total"] == line("TOTAL", (4, 80_000), (1, 10_000))
    assert settled["total"]["net_amount_idr"] == 70_000

    evening_before = get(client, "/v1/settlement", date="2026-11-02")
    assert evening_before["total"] == line("TOTAL", (1, 99_000), (0, 0))
    assert get(client, "/v1/settlement", date="2026-11-04")["total"] == line("TOTAL", (0, 0), (0, 0))


def test_bank_stats_count_outcomes_and_latency(client: TestClient) -> None:
    stats = get(client, "/v1/stats/banks")
    by_bank = {b["bank"]: b for b in stats["banks"]}
    assert by_bank["bni"] == {
        "bank": "bni", "requests": 7, "approved": 6, "declined": {"51": 1}, "timeouts": 0,
        "avg_latency_ms": 40.0, "max_latency_ms": 60,
    }
    assert by_bank["bri"] == {
        "bank": "bri", "requests": 4, "approved": 3, "declined": {}, "timeouts": 1,
        "avg_latency_ms": 692.5, "max_latency_ms": 2_500,
    }
    assert by_bank["mandiri"]["requests"] == 0 and by_bank["mandiri"]["avg_latency_ms"] is None
    assert stats["unrouted"] == {"requests": 1, "by_rc": {"14": 1}}
    assert stats["live"] == {"inflight": 3}

    this_morning = get(client, "/v1/stats/banks", **{"from": "2026-11-03T00:00:00"})
    assert {b["bank"]: b["requests"] for b in this_morning["banks"]}["bni"] == 6


def test_stats_without_or_with_a_failing_live_provider(journal: Journal) -> None:
    assert get(ops_client(journal), "/v1/stats/banks")["live"] is None

    def broken() -> dict:
        raise RuntimeError("switch core stopped")

    failing = ops_client(journal, stats_provider=broken, raise_server_exceptions=False)
    assert get(failing, "/v1/stats/banks")["live"] == {"error": "live statistics unavailable"}


# -- store and forward ---------------------------------------------------------------------------


def test_saf_shows_what_is_owed_and_what_was_acknowledged(client: TestClient) -> None:
    saf = get(client, "/v1/saf")
    assert saf["pending_total"] == 1
    [owed] = saf["pending"]
    assert (owed["rrn"], owed["bank_code"], owed["acknowledged_at"]) == (rrn(9), "bri", None)
    assert owed["body"]["pan"] == mask_pan(ANI) and owed["body"]["amount_idr"] == 12_000
    assert [(a["outcome"], a["detail"]) for a in owed["attempts"]] == [
        ("error", "timeout"),
        ("error", f"HTTP 503 for card {mask_pan(ANI)}"),
    ]
    [done] = saf["acknowledged"]
    assert (done["rrn"], done["bank_code"], done["acknowledged_at"]) == (rrn(2), "bni", "2026-11-03T09:11:01+07:00")
    assert owed["created_at"] == "2026-11-03T09:11:00+07:00" and owed["attempts"][0]["at"] == "2026-11-03T09:11:05+07:00"
    assert [a["outcome"] for a in done["attempts"]] == ["ack"]
    assert get(client, "/v1/saf", acknowledged=0)["acknowledged"] == []


# -- refusals --------------------------------------------------------------------------------------

BAD_QUERIES = [
    ("/v1/transactions", {"limit": 0}, "limit"),
    ("/v1/transactions", {"limit": 501}, "limit"),
    ("/v1/transactions", {"limit": "many"}, "limit"),
    ("/v1/transactions", {"before_id": 0}, "before_id"),
    ("/v1/transactions", {"before_id": 10**12}, "before_id"),
    ("/v1/transactions", {"from": "yesterday"}, "from"),
    ("/v1/transactions", {"to": "2026-11-31T00:00:00"}, "to"),
    ("/v1/transactions", {"kind": "refund"}, "kind"),
    ("/v1/transactions", {"rc": "5"}, "rc"),
    ("/v1/transactions", {"rrn": SITI}, "rrn"),  # a card number in the wrong box is not echoed
    ("/v1/transactions", {"terminal": "BNI\x0001"}, "terminal"),
    ("/v1/transactions", {"pan": SITI + "0000"}, "pan"),
    ("/v1/transactions", {"pan": mask_pan(SITI)}, "pan"),  # shared by many cards: never searched
    ("/v1/transactions", {"pan": "9360-0009-1234"}, "pan"),
    ("/v1/transactions", {"bank": "bca"}, "bank"),
    ("/v1/transactions", {"from": "0.5"}, "from"),  # Unix times are not moments
    ("/v1/transactions", {"from": "0001-01-01T00:00:00+14:00"}, "from"),
    ("/v1/stats/banks", {"to": "0.5"}, "to"),
    ("/v1/stats/banks", {"to": "9999-12-31T23:59:59-12:00"}, "to"),
    ("/v1/stats/banks", {"from": "1999-12-31T23:00:00-12:00"}, "from"),  # 2000-01-01 in WIB, not as written
    ("/v1/stats/banks", {"to": "2026-11-03 09:00:00"}, "to"),
    ("/v1/settlement", {"date": "0"}, "date"),
    ("/v1/settlement", {"date": "1970-01-01"}, "date"),
    ("/v1/settlement", {"date": "2100-01-01"}, "date"),
    ("/v1/settlement", {"date": "2026-02-30"}, "date"),
    ("/v1/settlement", {"date": "2026-11-03T00:00:00"}, "date"),
    ("/v1/transactions/BNI%0001", {}, "rrn"),  # NUL, which PostgreSQL text cannot hold
    ("/v1/stats/banks", {"from": "2026-13-01T00:00:00"}, "from"),
    ("/v1/saf", {"acknowledged": -1}, "acknowledged"),
    ("/v1/settlement", {"date": "2026-13-01"}, "date"),
    ("/v1/settlement", {"date": "03/11/2026"}, "date"),
    ("/v1/settlement", {}, "date"),
]

BAD_VALUES = [
    ("/v1/transactions", {"pan": "kartu siti"}, "pan", "must be the full card number, 13-19 digits"),
    ("/v1/transactions", {"from": "2026-11-03T10:00:00", "to": "2026-11-03T09:00:00"}, "from", "'from' must be earlier than 'to'"),
    ("/v1/stats/banks", {"from": "2026-11-03T10:00:00", "to": "2026-11-03T10:00:00"}, "from", "'from' must be earlier than 'to'"),
    ("/v1/stats/banks", {"from": "1999-12-31T23:59:59"}, "from", "must be within 2000-01-01 and 2099-12-31 (WIB)"),
    ("/v1/transactions", {"from": "0001-01-01T00:00:00+14:00"}, "from", "must be within 2000-01-01 and 2099-12-31"),
    ("/v1/stats/banks", {"to": "0.5"}, "to", "must be a date-time, YYYY-MM-DDTHH:MM"),
    ("/v1/settlement", {"date": "0"}, "date", "must be a date, YYYY-MM-DD"),
    ("/v1/settlement", {"date": "2026-02-30"}, "date", "must be a real calendar date"),
]


def test_bad_parameters_are_422_naming_the_parameter(client: TestClient) -> None:
    for url, params, name in BAD_QUERIES:
        detail = get(client, url, 422, **params)["detail"]
        assert [error["loc"][-1] for error in detail] == [name], (url, params, detail)
        assert all(error["msg"] and "input" not in error for error in detail)


def test_bad_values_are_422_with_a_clear_message(client: TestClient) -> None:
    for url, params, name, message in BAD_VALUES:
        [problem] = get(client, url, 422, **params)["detail"]
        assert problem["loc"] == ["query", name] and problem["msg"].startswith(message), (url, params, problem)


def test_the_api_description_is_served(client: TestClient) -> None:
    schema = get(client, "/openapi.json")
    assert schema["info"]["title"] == "Switch Sembako — operations"
    assert {"/v1/transactions", "/v1/transactions/{rrn}", "/v1/saf", "/v1/stats/banks", "/v1/settlement"} <= set(schema["paths"])
    assert client.get("/docs").status_code == 200
