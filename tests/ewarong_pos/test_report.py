"""The price board the e-Warong posts and the daily report it hands in, built from values."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime

from ewarong_pos.catalogue import DEMO_PRODUCTS, FOOD_GROUPS, Product
from ewarong_pos.report import CSV_HEADER, SaleRecord, build_report, price_board, report_csv, report_table
from ewarong_pos.rules import CartLine

DAY = date(2026, 11, 3)
BERAS = CartLine("BRS-MED", "Beras medium", "kg", 5, 13_000)
TELUR = CartLine("TLR-AYM", "Telur ayam ras", "butir", 10, 2_000)


def sale(rrn: str, card_ref: str, *lines: CartLine, hour: int = 9) -> SaleRecord:
    amount_idr = sum(line.amount_idr for line in lines)
    return SaleRecord(rrn, "BNI00001", rrn[-6:], "936000******1234", card_ref, amount_idr, datetime(2026, 11, 3, hour), lines)


def test_the_price_board_lists_the_four_groups_with_price_and_het() -> None:
    board = price_board(DEMO_PRODUCTS, title="e-Warong Sembako 01 (BNI)", at=DAY)
    positions = [board.index(group.upper()) for group in FOOD_GROUPS]
    assert positions == sorted(positions)
    assert "Beras medium              kg            Rp13.000      Rp13.500" in board
    assert "Telur ayam ras            butir          Rp2.000       Rp2.100" in board
    assert "TIDAK DIJUAL" in board and "kepada KPM" in board
    assert "Gula pasir" not in board and "Minyak goreng" not in board.split("---")[0]
    assert all(len(line) <= 64 for line in board.splitlines())


def test_a_good_above_het_is_marked_not_sold_on_the_board() -> None:
    board = price_board([Product("BRS-MED", "Beras medium", "karbohidrat", "kg", 14_000, 13_500)])
    assert "(di atas HET, tidak dijual)" in board
    assert "(belum tersedia)" in board  # the other three groups


def test_the_daily_report_adds_up_goods_and_counts_kpm_by_card_reference() -> None:
    sales = [sale("000000000001", "ref-a", BERAS, TELUR), sale("000000000002", "ref-b", BERAS), sale("000000000003", "ref-a", TELUR, hour=15)]
    report = build_report("EWBNI0000000001", DAY, sales)
    assert [(i.sku, i.qty, i.amount_idr) for i in report.items] == [("BRS-MED", 10, 130_000), ("TLR-AYM", 20, 40_000)]
    assert report.kpm_served == 2
    assert report.total_idr == 170_000
    assert report.rrns == ("000000000001", "000000000002", "000000000003")


def test_the_report_as_csv() -> None:
    report = build_report("EWBNI0000000001", DAY, [sale("000000000001", "ref-a", BERAS)])
    rows = list(csv.reader(io.StringIO(report_csv(report))))
    assert tuple(rows[0]) == CSV_HEADER
    assert rows[1] == ["barang", "2026-11-03", "EWBNI0000000001", "BRS-MED", "Beras medium", "kg", "5", "65000"]
    assert rows[2][:4] == ["transaksi", "2026-11-03", "EWBNI0000000001", "000000000001"] and rows[2][-1] == "65000"
    summary = {row[3]: row for row in rows if row[0] == "ringkasan"}
    assert summary["kpm_dilayani"][6] == "1" and summary["total"][7] == "65000" and summary["jumlah_transaksi"][6] == "1"


def test_an_empty_day_still_reports() -> None:
    report = build_report("EWBNI0000000001", DAY, [])
    assert report.total_idr == 0 and report.kpm_served == 0
    assert "(tidak ada penjualan)" in report_table(report)
    assert report_csv(report).count("\n") == 4
