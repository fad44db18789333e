"""What an e-Warong prints: the price board ("papan harga") and the daily sales report.

Both are pure: products or sales in, text or rows out.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from ewarong_pos.catalogue import FOOD_GROUPS, Product, forbidden_reason, is_cash_like
from ewarong_pos.rules import CartLine
from shared.money import format_idr

BOARD_WIDTH = 64
SALES_PER_REPORT_MAX = 20_000


# -- price board ------------------------------------------------------------------------------


def price_board(products: Iterable[Product], *, title: str | None = None, at: date | None = None) -> str:
    """The price board the e-Warong posts: the four food groups, price and HET per unit."""
    sellable = [p for p in products if forbidden_reason(p) is None and not is_cash_like(p) and p.group in FOOD_GROUPS]
    lines = ["=" * BOARD_WIDTH, "PAPAN HARGA BAHAN PANGAN PROGRAM SEMBAKO".center(BOARD_WIDTH)]
    if title:
        lines.append(title.center(BOARD_WIDTH))
    if at:
        lines.append(f"Berlaku tanggal {at.isoformat()}".center(BOARD_WIDTH))
    lines.append("=" * BOARD_WIDTH)
    for group in FOOD_GROUPS:
        lines += _group_block(group, [p for p in sellable if p.group == group])
    lines += [
        "-" * BOARD_WIDTH,
        "Harga tidak melebihi HET (Harga Eceran Tertinggi).",
        "Gula, tepung terigu, minyak goreng, mie instan, makanan kaleng,",
        "MP-ASI pabrikan, rokok, minuman keras dan pulsa TIDAK DIJUAL",
        "kepada KPM. Dana bantuan tidak dapat ditarik tunai.",
        "=" * BOARD_WIDTH,
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _group_block(group: str, products: list[Product]) -> list[str]:
    block = ["", group.upper(), f"  {'Barang':<26}{'Satuan':<8}{'Harga':>14}{'HET':>14}"]
    if not products:
        return [*block, "  (belum tersedia)"]
    for p in sorted(products, key=lambda p: p.name):
        mark = "  (di atas HET, tidak dijual)" if p.price_idr > p.het_idr else ""
        block.append(f"  {p.name[:25]:<26}{p.unit:<8}{format_idr(p.price_idr):>14}{format_idr(p.het_idr):>14}{mark}")
    return block


# -- daily sales report -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SaleRecord:
    """A sale as the report needs it; `card_ref` is the keyed hash of the card number."""

    rrn: str
    terminal_id: str
    stan: str
    pan_masked: str
    card_ref: str
    amount_idr: int
    at: datetime
    lines: tuple[CartLine, ...]


@dataclass(frozen=True, slots=True)
class ItemTotal:
    sku: str
    name: str
    unit: str
    qty: int
    amount_idr: int


@dataclass(frozen=True, slots=True)
class DailyReport:
    ewarong_id: str
    day: date
    items: tuple[ItemTotal, ...]
    sales: tuple[SaleRecord, ...]
    kpm_served: int

    @property
    def total_idr(self) -> int:
        return sum(sale.amount_idr for sale in self.sales)

    @property
    def rrns(self) -> tuple[str, ...]:
        return tuple(sale.rrn for sale in self.sales)


def build_report(ewarong_id: str, day: date, sales: Sequence[SaleRecord]) -> DailyReport:
    """Totals per good over the day's sales; KPM served counted by distinct card reference."""
    assert len(sales) <= SALES_PER_REPORT_MAX, "too many sales for one report"
    assert all(s.at.date() == day for s in sales), "every sale belongs to the business day"
    totals: dict[str, ItemTotal] = {}
    for sale in sales:
        assert sale.amount_idr == sum(line.amount_idr for line in sale.lines), sale.rrn
        for line in sale.lines:
            seen = totals.get(line.sku)
            qty = line.qty + (seen.qty if seen else 0)
            amount_idr = line.amount_idr + (seen.amount_idr if seen else 0)
            totals[line.sku] = ItemTotal(line.sku, line.name, line.unit, qty, amount_idr)
    ordered = tuple(sorted(sales, key=lambda s: (s.at, s.rrn)))
    report = DailyReport(ewarong_id, day, tuple(sorted(totals.values(), key=lambda i: i.sku)), ordered, len({s.card_ref for s in sales}))
    assert sum(i.amount_idr for i in report.items) == report.total_idr
    return report


CSV_HEADER = ("jenis", "tanggal", "ewarong_id", "kode", "uraian", "satuan", "jumlah", "nilai_idr")


def report_rows(report: DailyReport) -> list[tuple[str, ...]]:
    """One table: a row per good ("barang"), per sale ("transaksi") and the summary ("ringkasan")."""
    head = (report.day.isoformat(), report.ewarong_id)
    rows = [("barang", *head, i.sku, i.name, i.unit, str(i.qty), str(i.amount_idr)) for i in report.items]
    for s in report.sales:
        note = f"{s.at:%H:%M:%S} TID {s.terminal_id} STAN {s.stan} kartu {s.pan_masked}"
        rows.append(("transaksi", *head, s.rrn, note, "", "1", str(s.amount_idr)))
    rows += [
        ("ringkasan", *head, "jumlah_transaksi", "Jumlah transaksi", "", str(len(report.sales)), ""),
        ("ringkasan", *head, "kpm_dilayani", "KPM dilayani", "", str(report.kpm_served), ""),
        ("ringkasan", *head, "total", "Total penjualan", "", "", str(report.total_idr)),
    ]
    return rows


def report_csv(report: DailyReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(report_rows(report))
    return buffer.getvalue()


def report_table(report: DailyReport) -> str:
    """The report as plain text for the screen or a printer."""
    lines = [
        f"LAPORAN PENJUALAN HARIAN e-WARONG {report.ewarong_id}",
        f"Tanggal: {report.day.isoformat()} (WIB)",
        "",
        f"{'Kode':<10}{'Barang':<24}{'Jumlah':>8} {'Satuan':<7}{'Nilai':>14}",
    ]
    for i in report.items:
        lines.append(f"{i.sku:<10}{i.name[:23]:<24}{i.qty:>8} {i.unit:<7}{format_idr(i.amount_idr):>14}")
    if not report.items:
        lines.append("(tidak ada penjualan)")
    lines += ["", "Transaksi (RRN):"]
    lines += [f"  {s.rrn}  {s.at:%H:%M:%S}  {s.pan_masked}  {format_idr(s.amount_idr):>12}" for s in report.sales]
    lines += [
        "",
        f"Jumlah transaksi : {len(report.sales)}",
        f"KPM dilayani     : {report.kpm_served}",
        f"Total penjualan  : {format_idr(report.total_idr)}",
    ]
    return "\n".join(lines) + "\n"
