"""The slip the EDC prints, in Bahasa Indonesia, 32 columns wide (a 58 mm thermal printer).

The card number is always masked (first 6 / last 4); the PIN never appears anywhere.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import datetime

from shared.cards import mask_pan
from shared.money import format_idr

WIDTH = 32
RULE = "-" * WIDTH

KIND_INQUIRY = "CEK SALDO"
KIND_PURCHASE = "PEMBELIAN SEMBAKO"
KIND_REVERSAL = "PEMBATALAN"


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
        "",
        *line("Kartu", mask_pan(data.pan)),
    ]


def _amounts(data: ReceiptData) -> list[str]:
    rows: list[str] = []
    if data.amount is not None and data.kind != KIND_INQUIRY:
        rows += line("Nominal", format_idr(data.amount))
    if data.balance is not None:
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
