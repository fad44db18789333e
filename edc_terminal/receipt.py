"""The slip the EDC prints, in Bahasa Indonesia, 32 columns wide (a 58 mm thermal printer).

The card number is always masked (first 6 / last 4); the PIN never appears anywhere. A sale
approved offline says so on its own line, shows no balance ("Saldo: -", the terminal does not
know it) and the local approval code.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import datetime

from typing import TYPE_CHECKING

from shared.cards import mask_pan
from shared.money import format_idr

if TYPE_CHECKING:
    from edc_terminal.batchjob import JobResult

WIDTH = 32
RULE = "-" * WIDTH

KIND_INQUIRY = "CEK SALDO"
KIND_PURCHASE = "PEMBELIAN SEMBAKO"
KIND_REVERSAL = "PEMBATALAN"
OFFLINE_BANNER = "*** TRANSAKSI OFFLINE ***"


@dataclass(frozen=True, slots=True)
class ReceiptData:
    bank_name: str
    merchant_id: str  # the e-Warong id, field 42
    tid: str
    at: datetime
    kind: str  # KIND_INQUIRY, KIND_PURCHASE or KIND_REVERSAL
    pan: str
    rc: str
    rc_text: str
    stan: str
    batch: int
    amount: int | None = None
    balance: int | None = None
    rrn: str | None = None
    approval_code: str | None = None
    note: str | None = None  # an extra line, e.g. that the balance will be returned
    advice: str | None = None  # after a decline: what the KPM should do next
    offline: bool = False  # approved offline by the terminal (no balance known)


def center(text: str) -> str:
    return text[:WIDTH].center(WIDTH).rstrip()


def line(label: str, value: str) -> list[str]:
    """`label` on the left, `value` right-aligned; on two lines when both do not fit."""
    head = f"{label:<10}: "
    if len(head) + len(value) <= WIDTH:
        return [head + value.rjust(WIDTH - len(head))]
    return [head.rstrip(), value.rjust(WIDTH)]


def wrapped(text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH) or [""]


def _header(data: ReceiptData) -> list[str]:
    return [
        center(data.bank_name.upper()),
        center("PROGRAM SEMBAKO"),
        RULE,
        *line("e-Warong", data.merchant_id),
        *line("TID", data.tid),
        *line("Tanggal", data.at.strftime("%d/%m/%Y %H:%M:%S")),
        *line("Batch", f"{data.batch:06d}"),
        *line("STAN", data.stan),
        RULE,
        center(data.kind),
        *([center(OFFLINE_BANNER)] if data.offline else []),
        "",
        *line("Kartu", mask_pan(data.pan)),
    ]


def _amounts(data: ReceiptData) -> list[str]:
    rows: list[str] = []
    if data.amount is not None and data.kind != KIND_INQUIRY:
        rows += line("Nominal", format_idr(data.amount))
    if data.offline:
        rows += line("Saldo", "-")
    elif data.balance is not None:
        rows += line("Sisa saldo", format_idr(data.balance))
    if data.rrn:
        rows += line("RRN", data.rrn)
    if data.approval_code:
        rows += line("Kode appr", data.approval_code)
    return rows


def _footer(data: ReceiptData) -> list[str]:
    rows = [RULE, *line("Status", f"RC {data.rc}"), *wrapped(data.rc_text)]
    if data.note:
        rows += wrapped(data.note)
    if data.advice:
        rows += ["", "Saran:", *wrapped(data.advice)]
    rows += [RULE, center("Simpan struk ini sebagai bukti"), center("Terima kasih")]
    return rows


def render(data: ReceiptData) -> str:
    """The receipt as text lines of at most WIDTH characters."""
    return "\n".join(_header(data) + _amounts(data) + _footer(data)) + "\n"


PROCESSING_LABELS = {"920000": "Settlement", "960000": "Setelah upload"}


def settlement_slip(bank_name: str, merchant_id: str, tid: str, at: datetime, result: JobResult) -> str:
    """The settlement report: each batch's totals as sent and the switch's answer, then the
    offline sales the bank did not accept (to follow up), and the outcome."""
    rows = [center(bank_name.upper()), center("PROGRAM SEMBAKO"), RULE, *line("e-Warong", merchant_id), *line("TID", tid)]
    rows += [*line("Tanggal", at.strftime("%d/%m/%Y %H:%M:%S")), RULE, center("LAPORAN SETTLEMENT"), ""]
    for step in result.steps:
        totals = step.totals
        rows += [*line("Batch", f"{step.batch:06d}"), *line(PROCESSING_LABELS.get(step.processing, step.processing), f"RC {step.rc or '--'}")]
        rows += line(f"Jual {totals.purchase_count}", format_idr(totals.purchase_amount_idr))
        rows += [*line(f"Batal {totals.reversal_count}", format_idr(totals.reversal_amount_idr)), ""]
    if result.details_sent:
        rows += line("Batch upload", f"{result.details_sent} trx")
    if result.exceptions:
        rows += [RULE, center("OFFLINE DITOLAK BANK"), *(f"{e.pan_masked} {format_idr(e.amount_idr)} RC {e.rc}"[:WIDTH] for e in result.exceptions)]
    rows += [RULE, *wrapped(result.message), RULE]
    return "\n".join(rows) + "\n"
