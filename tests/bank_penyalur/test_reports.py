"""Operations reports: a small bank in two provinces, its November told back per region."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from datetime import date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from shared import rc

from bank_penyalur import registry
from shared.clock import FixedClock
from bank_penyalur.disburse import disburse
from bank_penyalur.registry import KpmCreate, MerchantCreate
from bank_penyalur.reports import MEASURES, Measures, build_report, report_to_csv, report_to_dict
from bank_penyalur.runtime import BankRuntime
from bank_penyalur.schemas import AdviceCreate, PurchaseCreate, ReversalCreate
from bank_penyalur.settings import BankSettings
from bank_penyalur.tables import ACTIVATED, DISTRIBUTED
from tests.bank_penyalur.conftest import api_client

JABAR, NTT = "Jawa Barat", "Nusa Tenggara Timur"
PIN = "123456"
SHOP_DAY = date(2026, 11, 5)


def kpm(nik: str, name: str, province: str, district: str, *, kk: str | None = None, pkh: bool = False) -> KpmCreate:
    regency = "Kabupaten Bandung" if province == JABAR else "Kabupaten Kupang"
    return KpmCreate(
        nik=nik, kk_number=kk or nik, name=name, pkh=pkh, first_period="2026-11",
        province=province, regency=regency, district=district, village="Desa Satu",
    )


FAMILIES = [
    kpm("3204010101800001", "Siti", JABAR, "Soreang"),
    kpm("3204010101800002", "Asep", JABAR, "Banjaran", pkh=True),  # kartu kombo: savings too
    kpm("12345", "NIK salah", JABAR, "Soreang"),  # opening fails
    kpm("5301010101800001", "Maria", NTT, "Kupang Timur"),
    kpm("5301010101800002", "Yohanes", NTT, "Kupang Timur", kk="000"),  # e-money sub-account fails
]


# -- the bank ----------------------------------------------------------------------------


@pytest.fixture
def november_bank(storage: dict, clock: FixedClock):  # noqa: ANN201 - `storage` and `clock` come from tests/conftest.py
    """A bank (on SQLite, and on PostgreSQL when reachable) that lived through November 2026."""
    runtime = BankRuntime.start(BankSettings(bank="bni", **storage), clock=clock)
    try:
        live_november(runtime, clock)
        yield runtime
    finally:
        runtime.close()


def live_november(runtime: BankRuntime, clock: FixedClock) -> None:
    """Open accounts, print and hand out cards, pay the benefit, then shop on the 5th."""
    now = clock.now()
    with runtime.db.begin() as conn:
        opened = [r for r in registry.open_accounts(conn, FAMILIES, now) if r.kpm_id]
        registry.register_merchants(conn, [
            MerchantCreate(id="EWJB01", name="e-Warong Soreang", province=JABAR, regency="Kabupaten Bandung",
                           district="Soreang", village="Desa Satu"),
            MerchantCreate(id="EWNTT1", name="e-Warong Kupang", province=NTT, regency="Kabupaten Kupang",
                           district="Kupang Timur", village="Desa Satu"),
        ], now)
        siti, asep, maria, _ = registry.print_cards(conn, runtime.bank, runtime.hsm, [r.kpm_id for r in opened], now, "test")
        registry.append_card_events(conn, [siti[0], asep[0], maria[0]], DISTRIBUTED, now, "pendamping")
        registry.append_card_events(conn, [siti[0], maria[0]], ACTIVATED, now, "pendamping")
        registry.set_pins(conn, [(cid, runtime.hsm.pvv_for(pan, PIN)) for cid, pan in (siti, maria)], now, "test")
    disburse(runtime.db, clock, "2026-11", 150_000)
    clock.advance(timedelta(days=2))
    assert buy(runtime, siti[1], "EWJB01", "000001", 50_000).rc == rc.APPROVED
    assert buy(runtime, siti[1], "EWJB01", "000002", 20_000).rc == rc.APPROVED
    assert reverse(runtime, siti[1], "EWJB01", "000003", "000002", 20_000).rc == rc.APPROVED  # EDC timed out
    answer = buy(runtime, maria[1], "EWNTT1", "000004", 30_000)
    assert (answer.rc, answer.balance_idr) == (rc.APPROVED, 120_000)
    # Blank spot: an offline purchase uploaded later overdraws Maria by 5,000 (an exception).
    assert offline(runtime, maria[1], "EWNTT1", "000005", 125_000).rc == rc.APPROVED


def buy(runtime: BankRuntime, pan: str, shop: str, stan: str, amount: int):  # noqa: ANN201
    return runtime.authoriser.purchase(PurchaseCreate(
        terminal_id=f"T{shop[-3:]}", stan=stan, transmission_date=SHOP_DAY, merchant_id=shop, pan=pan,
        pin_block=runtime.hsm.encipher_pin(pan, PIN), amount_idr=amount,
    ))


def reverse(runtime: BankRuntime, pan: str, shop: str, stan: str, original: str, amount: int):  # noqa: ANN201
    return runtime.authoriser.reversal(ReversalCreate(
        terminal_id=f"T{shop[-3:]}", stan=stan, transmission_date=SHOP_DAY, merchant_id=shop, pan=pan,
        amount_idr=amount, original_stan=original, original_transmission_date=SHOP_DAY,
    ))


def offline(runtime: BankRuntime, pan: str, shop: str, stan: str, amount: int):  # noqa: ANN201
    return runtime.authoriser.advice(AdviceCreate(
        terminal_id=f"T{shop[-3:]}", stan=stan, transmission_date=SHOP_DAY, merchant_id=shop, pan=pan,
        amount_idr=amount, transaction_at=datetime(2026, 11, 4, 10, 0),
    ))


def report(runtime: BankRuntime, period: str, **options):  # noqa: ANN003, ANN201
    with runtime.db.read() as conn:
        return build_report(conn, period, **options)


# -- what November looks like ------------------------------------------------------------

JABAR_NOVEMBER = Measures(
    accounts_opened=2, accounts_failed=1,
    sub_accounts_set=3, sub_accounts_failed=0, emoney_set=2, emoney_failed=0,
    kks_printed=2, kks_distributed=2,
    funds_disbursed_idr=300_000, funds_spent_idr=50_000, ending_balance_idr=250_000,
    offline_exceptions=0,
)
NTT_NOVEMBER = Measures(
    accounts_opened=2, accounts_failed=0,
    sub_accounts_set=1, sub_accounts_failed=1, emoney_set=1, emoney_failed=1,
    kks_printed=2, kks_distributed=1,
    funds_disbursed_idr=150_000, funds_spent_idr=155_000, ending_balance_idr=-5_000,
    offline_exceptions=1,
)


def test_november_per_province_and_in_total(november_bank: BankRuntime) -> None:
    november = report(november_bank, "2026-11")
    assert [(row.region, row.measures) for row in november.rows] == [
        ({"province": JABAR}, JABAR_NOVEMBER),
        ({"province": NTT}, NTT_NOVEMBER),
    ]
    assert november.totals == Measures(
        accounts_opened=4, accounts_failed=1,
        sub_accounts_set=4, sub_accounts_failed=1, emoney_set=3, emoney_failed=1,
        kks_printed=4, kks_distributed=3,
        funds_disbursed_idr=450_000, funds_spent_idr=205_000, ending_balance_idr=245_000,
        offline_exceptions=1,
    )
    assert all(type(value) is int for value in asdict(november.totals).values())


def test_a_quiet_month_keeps_the_balances(november_bank: BankRuntime) -> None:
    december = report(november_bank, "2026-12")
    balances = {row.region["province"]: row.measures.ending_balance_idr for row in december.rows}
    assert balances == {JABAR: 250_000, NTT: -5_000}
    assert december.totals == Measures(ending_balance_idr=245_000)
    assert report(november_bank, "2026-10").rows == []  # before anyone was registered


def test_district_level_and_province_filter(november_bank: BankRuntime) -> None:
    by_district = report(november_bank, "2026-11", level="district", province=JABAR)
    assert [tuple(row.region.values()) for row in by_district.rows] == [
        (JABAR, "Kabupaten Bandung", "Banjaran"),
        (JABAR, "Kabupaten Bandung", "Soreang"),
    ]
    banjaran, soreang = (row.measures for row in by_district.rows)
    assert (banjaran.accounts_opened, banjaran.sub_accounts_set, banjaran.ending_balance_idr) == (1, 2, 150_000)
    assert (soreang.accounts_opened, soreang.accounts_failed, soreang.funds_spent_idr) == (1, 1, 50_000)
    assert by_district.totals == JABAR_NOVEMBER


@pytest.mark.parametrize(
    ("period", "level", "message"),
    [("2026-13", "province", "YYYY-MM"), ("Nov 2026", "province", "YYYY-MM"), ("2026-11", "country", "level")],
)
def test_bad_input_is_refused(november_bank: BankRuntime, period: str, level: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        report(november_bank, period, level=level)


def test_csv_has_a_header_a_line_per_region_and_a_total(november_bank: BankRuntime) -> None:
    lines = list(csv.reader(io.StringIO(report_to_csv(report(november_bank, "2026-11")))))
    assert lines[0] == ["province", *MEASURES]
    assert [line[0] for line in lines[1:]] == [JABAR, NTT, "TOTAL"]
    assert dict(zip(lines[0], lines[2]))["ending_balance_idr"] == "-5000"
    assert dict(zip(lines[0], lines[3]))["funds_disbursed_idr"] == "450000"


def test_dict_form(november_bank: BankRuntime) -> None:
    body = report_to_dict(report(november_bank, "2026-11", level="regency"))
    assert body["columns"] == ["province", "regency"]
    assert body["rows"][1] == {"province": NTT, "regency": "Kabupaten Kupang", **asdict(NTT_NOVEMBER)}
    assert body["totals"]["funds_spent_idr"] == 205_000


# -- over HTTP ---------------------------------------------------------------------------


@pytest.fixture
def client(november_bank: BankRuntime) -> TestClient:
    return api_client(november_bank)


def test_http_json(client: TestClient) -> None:
    answer = client.get("/v1/reports", params={"period": "2026-11", "province": NTT})
    assert answer.status_code == 200
    body = answer.json()
    assert (body["bank"], body["period"], body["level"]) == ("bni", "2026-11", "province")
    assert body["rows"] == [{"province": NTT, **asdict(NTT_NOVEMBER)}]


def test_http_csv(client: TestClient) -> None:
    answer = client.get("/v1/reports", params={"period": "2026-11", "level": "district", "format": "csv"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert 'filename="sembako-report-bni-2026-11-district.csv"' in answer.headers["content-disposition"]
    assert answer.text.splitlines()[0].startswith("province,regency,district,accounts_opened,")
    assert answer.text.splitlines()[-1].startswith("TOTAL,,,4,1,")


@pytest.mark.parametrize(
    "params",
    [{"period": "2026-13"}, {"period": "2026-11", "level": "desa"}, {"period": "2026-11", "format": "xls"}, {}],
)
def test_http_bad_input_is_422(client: TestClient, params: dict) -> None:
    answer = client.get("/v1/reports", params=params)
    assert answer.status_code == 422, answer.text
