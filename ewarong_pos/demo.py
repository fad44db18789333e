"""The demo e-Warongs: for each bank, shops `bank.merchant_id(n)` for n = 1..48, served by demo
terminal `bank.terminal_id(n)`. Each starts with the demo catalogue and opening stock."""

from __future__ import annotations

from datetime import datetime

from shared.banks import BANKS, DEMO_TERMINALS_PER_BANK, Bank

# When the demo shops received their opening stock: fixed, so every machine seeds the same rows.
DEMO_OPENED_AT = datetime(2026, 1, 2, 7, 0, 0)
EWARONG_ID_LEN = 15


def demo_ewarong(ewarong_id: str) -> tuple[Bank, int] | None:
    """(bank, serial n) of a demo e-Warong id such as EWBNI0000000001, else None."""
    if len(ewarong_id) != EWARONG_ID_LEN:
        return None
    for bank in BANKS.values():
        serial_text = ewarong_id[len(bank.merchant_prefix) :]
        if ewarong_id.startswith(bank.merchant_prefix) and serial_text.isdigit():
            serial = int(serial_text)
            if 1 <= serial <= DEMO_TERMINALS_PER_BANK:
                return bank, serial
    return None


def demo_terminal_for(ewarong_id: str) -> str | None:
    """The demo EDC standing in `ewarong_id` (BNI00001 for EWBNI0000000001), else None."""
    found = demo_ewarong(ewarong_id)
    if found is None:
        return None
    bank, serial = found
    return bank.terminal_id(serial)


def demo_shop_name(bank: Bank, serial: int) -> str:
    return f"e-Warong Sembako {serial:02d} ({bank.code.upper()})"


def demo_ewarong_ids() -> list[str]:
    return [b.merchant_id(n) for b in BANKS.values() for n in range(1, DEMO_TERMINALS_PER_BANK + 1)]
