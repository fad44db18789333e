"""SVG screenshots of the main screens of the EDC app and the e-Warong cashier app.

Starts its own network (one BNI bank process and the switch, SQLite in a temp dir, loopback
only), drives both apps headless with Textual's Pilot at 120x40 with the business clock fixed at
Tuesday 3 November 2026 09:00 WIB, and writes the screens to docs/screenshots/ (or --out):

    edc-idle, edc-pin-entry, edc-approved-slip, edc-declined-slip, edc-inspector,
    cashier-cart, cashier-terima, cashier-daily-report, cashier-price-board

Card numbers in the screens are the public demo cards; RRNs and times of the network vary a
little from run to run. Every wait is bounded; exits 1 when a screen cannot be reached.

    python bench/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual.pilot import Pilot  # noqa: E402
from textual.widgets import DataTable, Input, Select  # noqa: E402

from bank_penyalur.demo import fixture  # noqa: E402
from edc_terminal.app import EdcApp, EdcOptions, build_terminal  # noqa: E402
from edc_terminal.terminal import EdcTerminal  # noqa: E402
from ewarong_pos.app import CashierApp, build_counter  # noqa: E402
from ewarong_pos.settings import ShopOptions  # noqa: E402
from shared.banks import get_bank  # noqa: E402
from shared.clock import FixedClock  # noqa: E402

SIZE = (120, 40)
AT = datetime(2026, 11, 3, 9, 0)
BANK = get_bank("bni")
CARDS = {card.label: card for card in fixture.demo_cards(BANK)}
SETTLE_S = 15.0


class ScreenFailure(Exception):
    pass


async def settle(pilot: Pilot, terminal: EdcTerminal) -> None:
    deadline = time.monotonic() + SETTLE_S
    await pilot.pause()
    while terminal.busy:
        if time.monotonic() > deadline:
            raise ScreenFailure(f"the terminal still waits for the switch after {SETTLE_S} s")
        await pilot.pause(0.02)
    await pilot.pause()


async def insert_demo_card(pilot: Pilot, pan: str) -> None:
    """Datang: a demo card chosen in the card slot's list, then Masukkan kartu."""
    pilot.app.query_one("#edc-card-select", Select).value = pan
    await pilot.pause()
    await pilot.click("#slot-insert")
    await settle(pilot, pilot.app.terminal)
    if not pilot.app.terminal.has_card:
        raise ScreenFailure(f"card not taken: {pilot.app.terminal.display().message}")


def save(app, out: Path, name: str) -> Path:  # noqa: ANN001 - a Textual App
    path = Path(app.save_screenshot(filename=f"{name}.svg", path=str(out)))
    print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return path


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise ScreenFailure(what)


async def edc_screens(host: str, port: int, data_dir: Path, out: Path) -> None:
    options = EdcOptions("BNI00001", host, port, data_dir, timeout_ms=10_000, connect_timeout_ms=2_000)
    app = EdcApp(build_terminal(options, FixedClock(AT)))  # real round-trip times in the inspector
    async with app.run_test(size=SIZE) as pilot:
        terminal = app.terminal
        await settle(pilot, terminal)
        expect(terminal.core.has_keys, "the EDC did not sign on")
        save(app, out, "edc-idle")

        normal = CARDS["pkh_combo"]
        await insert_demo_card(pilot, normal.pan)
        await pilot.press("f2", *"35000", "enter", *normal.pin[:3])
        expect(terminal.display().entry == "***", "PIN entry not on the LCD")
        save(app, out, "edc-pin-entry")

        await pilot.press(*normal.pin[3:], "enter")
        await settle(pilot, terminal)
        expect(terminal.outcome is not None and terminal.outcome.approved, "purchase not approved")
        save(app, out, "edc-approved-slip")
        await pilot.press("enter")  # Ambil kartu

        poor = CARDS["zero_balance"]
        await insert_demo_card(pilot, poor.pan)
        await pilot.press("f2", *"10000", "enter", *poor.pin, "enter")
        await settle(pilot, terminal)
        expect(terminal.outcome is not None and terminal.outcome.rc == "51", "zero balance card not declined 51")
        expect("Saran:" in terminal.printer[-1], "declined slip without advice")
        save(app, out, "edc-declined-slip")
        await pilot.press("enter")

        await pilot.press("f8")
        await pilot.pause()
        expect(app.query_one("#inspector").display, "inspector not shown")
        save(app, out, "edc-inspector")


async def add_item(pilot: Pilot, app: CashierApp, sku: str, qty: int) -> None:
    catalogue = app.query_one("#shop-catalogue", DataTable)
    catalogue.focus()
    target = catalogue.get_row_index(sku)
    while catalogue.cursor_row != target:  # the cashier moves along the catalogue with the arrows
        await pilot.press("down" if catalogue.cursor_row < target else "up")
    qty_input = app.query_one("#shop-qty", Input)
    qty_input.value = str(qty)
    await pilot.click("#shop-add")
    expect(any(line.sku == sku and line.qty == qty for line in app.counter.view().cart.lines), f"{sku} not in the cart: {app.counter.view().message}")


async def cashier_screens(host: str, port: int, data_dir: Path, out: Path) -> None:
    options = ShopOptions(BANK.merchant_id(1), BANK.terminal_id(1), host, port, data_dir, None)
    counter = build_counter(options, FixedClock(AT))
    app = CashierApp(counter, data_dir)
    try:
        async with app.run_test(size=SIZE) as pilot:
            terminal = app.terminal
            await settle(pilot, terminal)
            kpm = CARDS["normal"]
            await insert_demo_card(pilot, kpm.pan)
            await pilot.press("f1", *kpm.pin, "enter")  # Cek
            await settle(pilot, terminal)
            expect(counter.view().balance_idr is not None, f"Cek failed: {counter.view().message}")
            for sku, qty in (("BRS-MED", 5), ("TLR-AYM", 10), ("TEMPE", 2)):
                await add_item(pilot, app, sku, qty)
            await pilot.pause()
            save(app, out, "cashier-cart")

            await pilot.press("f9")  # Bayar
            expect(counter.view().paying, f"Bayar refused: {counter.view().message}")
            await pilot.press(*kpm.pin, "enter")
            await settle(pilot, terminal)
            sale = counter.view().last_sale
            expect(sale is not None and bool(sale.rrn), f"no sale recorded: {counter.view().message}")
            save(app, out, "cashier-terima")

            await pilot.press("f10")
            await pilot.pause()
            save(app, out, "cashier-daily-report")
            await pilot.press("escape")
            await pilot.press("f11")
            await pilot.pause()
            save(app, out, "cashier-price-board")
            await pilot.press("escape")
    finally:
        counter.store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    from tests.switch.network import Network

    with tempfile.TemporaryDirectory(prefix="sembako-screens-") as tmp:
        net_dir, app_dir = Path(tmp) / "network", Path(tmp) / "apps"
        net_dir.mkdir()
        app_dir.mkdir()
        network = Network(net_dir, {"data_dir": net_dir}).start()
        try:
            asyncio.run(edc_screens("127.0.0.1", network.iso_port, app_dir, args.out))
            asyncio.run(cashier_screens("127.0.0.1", network.iso_port, app_dir, args.out))
        except (ScreenFailure, TimeoutError, OSError) as exc:
            print(f"Gagal: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        finally:
            network.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
