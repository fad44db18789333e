"""Settlement of a business day with the WIB cut-over, as bank operations staff read it, on
SQLite and PostgreSQL.

Tuesday 3 November 2026 at two e-Warong: BNI00001 (a BNI EDC) and BRI00001 (a BRI EDC).

- Just before midnight on Monday, Budi (BNI card) bought for Rp9.000 at BNI00001; the EDC timed
  out and its reversal reached the switch at 00:00:30 on Tuesday.
- A Rp10.000 purchase by Budi left BNI00001 at 23:59:59 on Monday (field 7) and was journalled at
  00:00:01 on Tuesday: it belongs to Tuesday.
- Siti (BNI card) bought for Rp35.000 at BRI00001; Ani (BRI card) for Rp20.000 and Rp12.000 there,
  the Rp12.000 one reversed (and the reversal repeated as 0401); Budi was declined for Rp50.000.
- BNI00001 uploaded an offline sale of Friday 30 October (Dewi, BRI card, Rp15.000) on Tuesday
  morning, and Dewi bought for Rp8.000 at 23:59:59 on Tuesday.
- Rp7.000 at midnight exactly on Wednesday belongs to Wednesday; Rp99.000 on Monday evening to
  Monday.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from shared.banks import get_bank
from shared.cards import make_pan
from switch.journal import Journal, TransactionRecord
from switch.ops import access
from switch.ops.app import create_ops_app
from tests.switch.test_journal import open_journal, terminal, transaction
from tests.switch.test_ops_api import PAN_RUN

TUESDAY = date(2026, 11, 3)
MONDAY = TUESDAY - timedelta(days=1)
BUDI = make_pan(get_bank("bni").iin, 21)
SITI = make_pan(get_bank("bni").iin, 22)
ANI = make_pan(get_bank("bri").iin, 23)
DEWI = make_pan(get_bank("bri").iin, 24)
AT_BNI = {"tid": "BNI00001", "mid": "EWBNI0000000001"}
AT_BRI = {"tid": "BRI00001", "mid": "EWBRI0000000001"}


def at(day: date, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, ss)


def rrn(n: int) -> str:
    return f"{n:012d}"


def field_90(stan: int, sent_at: datetime) -> str:
    """A reversal's field 90: the purchase's MTI, STAN and field 7."""
    return f"0200{stan:06d}{sent_at:%m%d%H%M%S}" + "0" * 22


def the_days() -> list[TransactionRecord]:
    def row(n: int, pan: str, kind: str = "purchase", reverses: tuple[int, datetime] | None = None, **values) -> TransactionRecord:  # noqa: ANN003
        bank = "bni" if pan in (BUDI, SITI) else "bri"
        values.setdefault("transmission_date", values["created_at"].date())
        record = transaction(rrn(n), f"{n:06d}", kind, pan=pan, bank_code=bank, **values)
        if reverses is not None:
            record = replace(record, original_rrn=rrn(reverses[0]), response={**record.response, "90": field_90(*reverses)})
        return record

    return [
        row(1, BUDI, amount_idr=99_000, created_at=at(MONDAY, 19, 30), **AT_BNI),
        row(2, BUDI, amount_idr=9_000, created_at=at(MONDAY, 23, 59, 58), **AT_BNI),
        row(3, BUDI, "reversal", amount_idr=9_000, reverses=(2, at(MONDAY, 23, 59, 58)), created_at=at(TUESDAY, 0, 0, 30), **AT_BNI),
        row(4, BUDI, amount_idr=10_000, transmission_date=MONDAY, created_at=at(TUESDAY, 0, 0, 1), **AT_BNI),
        row(5, SITI, amount_idr=35_000, created_at=at(TUESDAY, 9, 0), **AT_BRI),
        row(6, ANI, amount_idr=20_000, created_at=at(TUESDAY, 9, 5), **AT_BRI),
        row(7, ANI, amount_idr=12_000, created_at=at(TUESDAY, 9, 10), **AT_BRI),
        row(8, ANI, "reversal", amount_idr=12_000, reverses=(7, at(TUESDAY, 9, 10)), created_at=at(TUESDAY, 9, 11), **AT_BRI),
        row(9, ANI, "reversal", mti="0401", amount_idr=12_000, reverses=(7, at(TUESDAY, 9, 10)), created_at=at(TUESDAY, 9, 12), **AT_BRI),
        row(10, BUDI, amount_idr=50_000, rc="51", approval_code=None, created_at=at(TUESDAY, 9, 20), **AT_BNI),
        row(11, DEWI, "advice", amount_idr=15_000, transmission_date=date(2026, 10, 30), created_at=at(TUESDAY, 10, 0), **AT_BNI),
        row(12, DEWI, amount_idr=8_000, created_at=at(TUESDAY, 23, 59, 59), **AT_BNI),
        row(13, DEWI, amount_idr=7_000, created_at=at(TUESDAY + timedelta(days=1), 0, 0), **AT_BNI),
    ]


@pytest.fixture
def journal(storage) -> Iterator[Journal]:  # noqa: ANN001
    opened = open_journal(storage)
    opened.ensure_terminals([terminal("BNI00001", "bni"), terminal("BRI00001", "bri")], at(MONDAY, 6, 0))
    opened.record(the_days(), [])
    yield opened
    opened.db.dispose()


def token(journal: Journal, bank: str | None = None) -> dict[str, str]:
    """The Authorization header of a new viewer token: the switch operator's, or a bank's."""
    with journal.db.begin() as conn:
        issued = access.create_token(conn, "viewer", bank, "settlement desk", "test", at(MONDAY, 6, 0))
    return {"Authorization": f"Bearer {issued.token}"}


@pytest.fixture
def client(journal: Journal) -> TestClient:
    return TestClient(create_ops_app(journal), headers=token(journal), raise_server_exceptions=False)


def day_of(client: TestClient, day: date, **params) -> dict:  # noqa: ANN003
    response = client.get(f"/v1/settlement/days/{day.isoformat()}", params=params)
    assert response.status_code == 200, response.text
    assert not PAN_RUN.search(response.text), response.text
    return response.json()


def amounts(line: dict) -> tuple[int, int, int, int, int]:
    names = ("purchase_count", "purchase_amount_idr", "reversal_count", "reversal_amount_idr", "net_amount_idr")
    return tuple(line[name] for name in names)  # type: ignore[return-value]


def test_tuesday_runs_from_midnight_to_midnight_wib(client: TestClient) -> None:
    found = day_of(client, TUESDAY, reconciliation=False)
    assert found["cutover"] == "00:00 WIB (UTC+07:00)"
    assert (found["window_start"], found["window_end"]) == ("2026-11-03T00:00:00+07:00", "2026-11-04T00:00:00+07:00")
    banks = {line["bank"]: amounts(line) for line in found["banks"]}
    # BNI cards: Rp10.000 (sent Monday, journalled Tuesday) and Rp35.000, less Monday's Rp9.000 given back on Tuesday.
    assert banks["bni"] == (2, 45_000, 1, 9_000, 36_000)
    # BRI cards: the offline sale uploaded Tuesday, Rp8.000 a second before midnight, Rp20.000, Rp12.000 reversed once.
    assert banks["bri"] == (4, 55_000, 1, 12_000, 43_000)
    assert banks["mandiri"] == banks["btn"] == (0, 0, 0, 0, 0)
    assert amounts(found["total"]) == (6, 100_000, 2, 21_000, 79_000)


def test_per_ewarong_and_per_terminal_with_the_issuers_of_the_cards(client: TestClient) -> None:
    found = day_of(client, TUESDAY, reconciliation=False)
    merchants = {m["merchant_id"]: m for m in found["merchants"]}
    assert amounts(merchants["EWBNI0000000001"]) == (3, 33_000, 1, 9_000, 24_000)
    assert (merchants["EWBNI0000000001"]["acquirer"], merchants["EWBNI0000000001"]["terminals"]) == ("bni", ["BNI00001"])
    assert amounts(merchants["EWBRI0000000001"]) == (3, 67_000, 1, 12_000, 55_000)
    terminals = {t["tid"]: t for t in found["terminals"]}
    assert terminals["BNI00001"]["issuers"] == {"bni": 1_000, "bri": 23_000}
    assert terminals["BRI00001"]["issuers"] == {"bni": 35_000, "bri": 20_000}
    assert terminals["BRI00001"]["acquirer"] == "bri" and terminals["BRI00001"]["merchant_id"] == "EWBRI0000000001"


def test_net_positions_say_who_pays_whom(client: TestClient) -> None:
    positions = {p["bank"]: p for p in day_of(client, TUESDAY, reconciliation=False)["positions"]}
    # BNI's cards spent Rp36.000 (Rp35.000 of it at BRI's e-Warong); BNI's e-Warong sold Rp24.000 (Rp23.000 to BRI cards).
    assert (positions["bni"]["issued_amount_idr"], positions["bni"]["acquired_amount_idr"]) == (36_000, 24_000)
    assert (positions["bni"]["net_position_idr"], positions["bni"]["direction"]) == (-12_000, "pays")
    assert (positions["bri"]["net_position_idr"], positions["bri"]["direction"]) == (12_000, "receives")
    assert positions["mandiri"]["direction"] == "even"
    assert sum(p["net_position_idr"] for p in positions.values()) == 0


def test_the_neighbouring_days_keep_their_own_movements(client: TestClient) -> None:
    monday = day_of(client, MONDAY, reconciliation=False)
    assert amounts(monday["total"]) == (2, 108_000, 0, 0, 108_000)  # Rp99.000 and Rp9.000; its reversal is Tuesday's
    wednesday = day_of(client, TUESDAY + timedelta(days=1), reconciliation=False)
    assert amounts(wednesday["total"]) == (1, 7_000, 0, 0, 7_000)


def test_the_transmission_date_settlement_differs_where_the_cutover_says_so(client: TestClient) -> None:
    by_field_7 = client.get("/v1/settlement", params={"date": TUESDAY.isoformat()}).json()["total"]
    # Field 7 puts the Rp10.000 on Monday and the offline sale on 30 October; the Rp9.000 reversal counts on Tuesday in both.
    assert (by_field_7["purchase_amount_idr"], by_field_7["reversal_amount_idr"]) == (75_000, 21_000)
    assert day_of(client, TUESDAY, reconciliation=False)["total"]["purchase_amount_idr"] == 75_000 + 10_000 + 15_000


def test_the_reconciliation_of_the_day_is_summed_up(client: TestClient) -> None:
    found = day_of(client, TUESDAY)
    reconciled = found["reconciliation"]
    report = client.get("/v1/reconciliation", params={"date": TUESDAY.isoformat()}).json()
    assert reconciled["business_date"] == TUESDAY.isoformat()
    assert reconciled["terminals"] == len(report["terminals"]) == 2
    for name in ("lines", "matched", "missing_at_bank", "switch_net_idr"):
        assert reconciled["summary"][name] == sum(t["summary"][name] for t in report["terminals"])
    # Sent on Tuesday (field 7): Rp35.000 + Rp20.000 + Rp12.000 - Rp12.000 + Rp8.000.
    assert reconciled["summary"]["switch_net_idr"] == 63_000
    assert {b["status"] for b in reconciled["banks"]} == {"not_configured"}  # no bank links here
    assert reconciled["truncated"] is False


def test_a_quiet_day_has_zeros_and_no_reconciliation(client: TestClient) -> None:
    found = day_of(client, date(2026, 11, 20))
    assert amounts(found["total"]) == (0, 0, 0, 0, 0)
    assert found["merchants"] == found["terminals"] == []
    assert [p["net_position_idr"] for p in found["positions"]] == [0, 0, 0, 0]
    assert found["reconciliation"] is None


def test_csv_for_the_spreadsheet(client: TestClient) -> None:
    response = client.get(f"/v1/settlement/days/{TUESDAY.isoformat()}", headers={"Accept": "text/csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert 'filename="sembako-settlement-2026-11-03.csv"' in response.headers["content-disposition"]
    assert not PAN_RUN.search(response.text)
    rows = list(csv.DictReader(io.StringIO(response.text)))
    by_record: dict[str, list[dict]] = {}
    for row in rows:
        by_record.setdefault(row["record"], []).append(row)
    issuers = {r["bank"]: r for r in by_record["issuer"]}
    assert (issuers["bni"]["net_amount_idr"], issuers["bri"]["net_amount_idr"]) == ("36000", "43000")
    terminals = {r["tid"]: r for r in by_record["terminal"]}
    assert terminals["BNI00001"]["detail"] == "bni=1000;bri=23000"
    positions = {r["bank"]: r for r in by_record["position"]}
    assert (positions["bni"]["net_position_idr"], positions["bni"]["detail"]) == ("-12000", "pays")
    [total] = by_record["total"]
    assert total["net_amount_idr"] == "79000"
    [summary] = by_record["reconciliation"]
    assert summary["net_amount_idr"] == "63000" and "terminals=2" in summary["detail"]
    assert len(by_record["reconciliation_bank"]) == 4
    as_json = client.get(f"/v1/settlement/days/{TUESDAY.isoformat()}", params={"format": "json"}, headers={"Accept": "text/csv"})
    assert as_json.headers["content-type"].startswith("application/json")  # format wins over Accept


def test_a_bank_sees_its_cards_and_its_terminals_only(client: TestClient, journal: Journal) -> None:
    client.headers.update(token(journal, "bri"))
    found = day_of(client, TUESDAY)
    banks = {line["bank"]: amounts(line) for line in found["banks"]}
    # Siti's BNI card at BRI's e-Warong, not Budi's purchases at BNI's own e-Warong.
    assert banks["bni"] == (1, 35_000, 0, 0, 35_000)
    assert banks["bri"] == (4, 55_000, 1, 12_000, 43_000)
    assert [t["tid"] for t in found["terminals"]] == ["BNI00001", "BRI00001"]
    assert found["terminals"][0]["issuers"] == {"bri": 23_000}  # BRI cards at the BNI e-Warong
    positions = {p["bank"]: p["net_position_idr"] for p in found["positions"]}
    assert (positions["bri"], positions["bni"]) == (12_000, -12_000)  # BRI's position towards BNI
    assert found["reconciliation"]["terminals"] == 1  # BRI00001, its own EDC


def test_no_token_no_settlement(client: TestClient) -> None:
    del client.headers["Authorization"]
    response = client.get(f"/v1/settlement/days/{TUESDAY.isoformat()}")
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("day", ["2026-02-30", "03-11-2026", "1999-12-31", "2026-11-3"])
def test_a_day_that_is_not_one_is_refused(client: TestClient, day: str) -> None:
    response = client.get(f"/v1/settlement/days/{day}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "day"]
