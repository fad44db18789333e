"""The four Himbara banks acting as bank penyalur, with their card prefixes and default ports.

KKS cards are GPN debit cards: the PAN starts with the national 9360 prefix followed by the
bank's four-digit code, then a serial and a Luhn check digit (16 digits in all).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Bank:
    code: str
    name: str
    iin: str
    port: int
    merchant_prefix: str
    terminal_prefix: str

    def owns_pan(self, pan: str) -> bool:
        return pan.startswith(self.iin)

    def merchant_id(self, serial: int) -> str:
        """e-Warong id: the bank's 5-letter prefix and a 10-digit serial (field 42, 15 chars)."""
        return f"{self.merchant_prefix}{serial:010d}"

    def terminal_id(self, serial: int) -> str:
        """EDC terminal id: 3 letters of the bank and a 5-digit serial (field 41, 8 chars)."""
        return f"{self.terminal_prefix}{serial:05d}"


BANKS: dict[str, Bank] = {
    b.code: b
    for b in (
        Bank("bni", "Bank Negara Indonesia", "93600009", 8101, "EWBNI", "BNI"),
        Bank("bri", "Bank Rakyat Indonesia", "93600002", 8102, "EWBRI", "BRI"),
        Bank("mandiri", "Bank Mandiri", "93600008", 8103, "EWMDR", "MDR"),
        Bank("btn", "Bank Tabungan Negara", "93600200", 8104, "EWBTN", "BTN"),
    )
}
BANK_CODES: tuple[str, ...] = tuple(BANKS)


def get_bank(code: str) -> Bank:
    try:
        return BANKS[code.lower()]
    except KeyError:
        raise ValueError(f"unknown bank {code!r}: expecting one of {', '.join(BANK_CODES)}") from None


def bank_for_pan(pan: str) -> Bank | None:
    return next((b for b in BANKS.values() if b.owns_pan(pan)), None)


DEMO_TERMINALS_PER_BANK = 48


def bank_for_terminal(tid: str) -> Bank | None:
    """The acquiring bank of a terminal id such as BNI00001 (by its prefix), else None."""
    return next((b for b in BANKS.values() if tid.startswith(b.terminal_prefix)), None)


def demo_terminal(tid: str) -> tuple[Bank, str] | None:
    """(acquiring bank, e-Warong id) of a demo terminal id such as BNI00001, else None.

    Demo terminal n of a bank stands in the bank's demo e-Warong n (n = 1..48)."""
    bank = bank_for_terminal(tid)
    serial_text = tid[3:]
    if bank is None or len(tid) != 8 or not serial_text.isdigit():
        return None
    serial = int(serial_text)
    if not 1 <= serial <= DEMO_TERMINALS_PER_BANK:
        return None
    return bank, bank.merchant_id(serial)
