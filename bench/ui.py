"""UI figures of the EDC app and the e-Warong cashier app, headless under Textual's Pilot.

Starts its own network (one BNI bank process and the switch, SQLite in a temp dir, loopback
only), or uses a running one with --switch HOST:PORT (`sembako up`), and measures at 120x40:

- start: app start to first screen. From building the app's terminal (for the cashier also
  opening the shop's store) and constructing the App, to the first screen: the moment the last of
  its widgets (LCD idle screen, status line; for the cashier also the catalogue rows) is handed
  to the compositor with its content to paint. `ready` is when the App handles Textual's Ready
  event, `interactive` when `run_test` hands over the Pilot. `shop-steps_shown_at_start` counts
  the starts whose steps bar (Datang > Cek > ...) had been painted by the end of power-on.
- keys: key press to screen update during BELANJA's amount and PIN entry. From the start of
  `pilot.press(key)` to the first paint of the LCD that shows the new entry (`> Rp10`, `> ***`,
  after ENTER the PIN prompt). `press_call` is how long `pilot.press` itself takes: Pilot
  waits for the process to go idle after each key, so it is >= ~40 ms by construction.
- flow: Datang -> Terima in the cashier app, wall time: card into the EDC's slot (one click),
  F1 Cek + PIN + ENTER, click the first catalogue row and Tambah, F9 Bayar, PIN + ENTER, until
  the shop has recorded the sale. Each sale must have an RRN, the stock must drop by one and the
  balance by the price; the ISO 8583 round trips of the flow are reported apart.

Prints one JSON line. Every wait is bounded; exits 1 when a flow fails.

    python bench/ui.py [--starts 10] [--keys 200] [--flows 10]
    python bench/ui.py --switch 127.0.0.1:8583 --serial 48    # against `sembako up`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import textual  # noqa: E402
from textual.widgets import Input  # noqa: E402

from bench._common import machine, percentile  # noqa: E402
from bank_penyalur.demo.generator import GeneratedKpm, generated_kpm  # noqa: E402
from edc_terminal.app import EdcApp, EdcOptions, build_terminal  # noqa: E402
from edc_terminal.store import TerminalState, TerminalStore  # noqa: E402
from edc_terminal.terminal import EdcTerminal  # noqa: E402
from ewarong_pos.app import CashierApp, build_counter  # noqa: E402
from ewarong_pos.settings import ShopOptions  # noqa: E402
from shared.banks import get_bank  # noqa: E402
from shared.clock import SystemClock  # noqa: E402

SIZE = (120, 40)
BANK = get_bank("bni")
AMOUNT = "1000"  # Rp1.000 a purchase in the key test, so a card's balance lasts
NETWORK_KPM = 60  # generated KPM of the own network (the first ~90 % are spendable)
SETTLE_S = 15.0  # longest wait for a message to the switch and its answer
PAINT_TIMEOUT_S = 5.0  # longest wait for the LCD to show a key press
START_TIMEOUT_S = 30.0
MAX_SECONDS_DEFAULT = 900.0

START_DEFINITION = (
    "build terminal (+ shop store) and construct the App -> the first screen painted in run_test(size=(120, 40)) "
    "headless: each of LCD (idle screen), status line (cashier: also the catalogue rows) handed to the "
    "compositor with its content; ready = Textual Ready event handled; "
    "interactive = run_test yields the Pilot"
)
KEY_DEFINITION = (
    "start of pilot.press(key) -> first paint of #edc-lcd showing the new entry, BELANJA amount digits, "
    "ENTER, PIN digits"
)
FLOW_DEFINITION = (
    "card into the slot (click) -> F1 Cek + PIN -> click first catalogue row + Tambah -> F9 Bayar + PIN "
    "-> sale recorded by the shop (counter.view().last_sale)"
)


class BenchFailure(Exception):
    """A flow did not end as it must: the figures would mean nothing."""


# -- figures ---------------------------------------------------------------------------------------


def summary(values_ms: list[float], *quantiles: float) -> dict:
    ordered = sorted(values_ms)
    figures: dict = {"n": len(ordered), "median_ms": _ms(percentile(ordered, 0.5))}
    for q in quantiles:
        figures[f"p{round(q * 100)}_ms"] = _ms(percentile(ordered, q))
    figures["max_ms"] = _ms(ordered[-1] if ordered else 0.0)
    return figures


def _ms(value: float) -> float:
    return round(value, 2)


# -- probes into the running apps ------------------------------------------------------------------


class LcdProbe:
    """Every time the compositor takes the LCD widget's lines to paint: when, and what they say."""

    def __init__(self) -> None:
        self.paints: list[tuple[float, str]] = []

    def attach(self, widget) -> None:  # noqa: ANN001 - a Textual Widget
        original = widget.render_lines

        def render_lines(crop):  # noqa: ANN001, ANN202
            lines = original(crop)
            self.paints.append((time.perf_counter(), "\n".join(strip.text for strip in lines)))
            return lines

        widget.render_lines = render_lines

    def first_after(self, since: float, pattern: re.Pattern[str] | None = None) -> float | None:
        for at, text in self.paints:
            if at >= since and (pattern is None or pattern.search(text)):
                return at
        return None

    async def wait_shown(self, since: float, pattern: re.Pattern[str], timeout_s: float = PAINT_TIMEOUT_S) -> float:
        deadline = time.perf_counter() + timeout_s
        while (at := self.first_after(since, pattern)) is None:
            if time.perf_counter() > deadline:
                raise BenchFailure(f"the LCD did not show {pattern.pattern!r} within {timeout_s} s")
            await asyncio.sleep(0.001)
        self.paints = [p for p in self.paints if p[0] >= at]
        return at


class Startup:
    """Mixin for the measured apps: probes on the widgets of the first screen from mount, and the
    Ready event's time. The first screen is complete when each probed widget has been painted
    showing its content (the LCD its idle screen, the status line its terminal, ...)."""

    FIRST_SCREEN: dict[str, str] = {
        "#edc-lcd": "PROGRAM SEMBAKO",  # the LCD's idle screen
        "#edc-status": r"BNI\d{5} BNI \|",  # the terminal's status line
    }
    ALSO_WATCHED: dict[str, str] = {}  # widgets whose content is reported, not waited for
    ready_at: float | None = None
    probes: dict[str, LcdProbe]

    def on_mount(self) -> None:  # runs before the app's own on_mount (Textual calls each class's)
        self.probes = {}
        for selector in {**self.FIRST_SCREEN, **self.ALSO_WATCHED}:
            self.probes[selector] = probe = LcdProbe()
            probe.attach(self.query_one(selector))  # type: ignore[attr-defined]

    def on_ready(self) -> None:
        self.ready_at = time.perf_counter()

    def first_screen_at(self, since: float) -> float | None:
        """When the last of the first screen's widgets was first painted with its content."""
        times = [self.probes[s].first_after(since, re.compile(p)) for s, p in self.FIRST_SCREEN.items()]
        return None if None in times else max(times)  # type: ignore[type-var]


class TimedEdcApp(Startup, EdcApp):
    pass


class TimedCashierApp(Startup, CashierApp):
    FIRST_SCREEN = {**Startup.FIRST_SCREEN, "#shop-catalogue": "Beras medium"}  # the catalogue's rows
    ALSO_WATCHED = {"#shop-steps": "Datang > Cek"}  # the five steps


async def settle(pilot, terminal: EdcTerminal, timeout_s: float = SETTLE_S) -> None:  # noqa: ANN001
    """Wait (bounded) until no message to the switch is in flight."""
    deadline = time.perf_counter() + timeout_s
    await pilot.pause()
    while terminal.busy:
        if time.perf_counter() > deadline:
            raise BenchFailure(f"the terminal still waits for the switch after {timeout_s} s")
        await asyncio.sleep(0.005)
    await pilot.pause()


def entry_pattern(entry: str) -> re.Pattern[str]:
    """The LCD's entry line `> {entry}` and nothing more typed after it."""
    return re.compile(re.escape(f"> {entry}") + r"(?![0-9*])")


# -- the setting: network, terminal, shop ------------------------------------------------------------


class Setting:
    """Where the apps connect and keep their state: one data dir for the run, so the terminal's STAN
    counter carries on from app to app (the switch refuses a STAN used twice the same day)."""

    def __init__(self, host: str, port: int, data_dir: Path, serial: int) -> None:
        self.host, self.port, self.data_dir = host, port, data_dir
        self.tid, self.ewarong_id = BANK.terminal_id(serial), BANK.merchant_id(serial)

    def edc_options(self) -> EdcOptions:
        return EdcOptions(self.tid, self.host, self.port, self.data_dir, timeout_ms=10_000, connect_timeout_ms=2_000)

    def shop_options(self) -> ShopOptions:
        return ShopOptions(self.ewarong_id, self.tid, self.host, self.port, self.data_dir, None)

    def start_stan_at(self, stan: int) -> None:
        TerminalStore(self.data_dir, self.tid).save(TerminalState(tid=self.tid, stan=stan))


# -- 1. app start to first screen -------------------------------------------------------------------------


async def one_start(make: Callable[[], tuple[Startup, Callable[[], None]]]) -> dict[str, float]:
    started = time.perf_counter()
    app, close = make()
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            async with app.run_test(size=SIZE) as pilot:  # type: ignore[attr-defined]
                interactive = time.perf_counter()
                deadline = interactive + START_TIMEOUT_S / 2
                while (first_screen := app.first_screen_at(started)) is None or app.ready_at is None:
                    if time.perf_counter() > deadline:
                        missing = [s for s, p in app.FIRST_SCREEN.items() if app.probes[s].first_after(started, re.compile(p)) is None]
                        raise BenchFailure(f"first screen not complete after {START_TIMEOUT_S / 2} s: not painted {missing}")
                    await asyncio.sleep(0.005)
                await settle(pilot, app.terminal)  # type: ignore[attr-defined]
                if not app.terminal.core.has_keys:  # type: ignore[attr-defined]
                    raise BenchFailure(f"{app.terminal.core.terminal.tid} did not sign on at power on: {app.terminal.display().message}")  # type: ignore[attr-defined]
                watched = {s: app.probes[s].first_after(started, re.compile(p)) is not None for s, p in app.ALSO_WATCHED.items()}
    finally:
        close()
    return {
        "first_screen": (first_screen - started) * 1000,
        "ready": (app.ready_at - started) * 1000,
        "interactive": (interactive - started) * 1000,
        "shown_after_start": watched,
    }


async def starts(setting: Setting, count: int) -> dict:
    def edc() -> tuple[Startup, Callable[[], None]]:
        return TimedEdcApp(build_terminal(setting.edc_options(), SystemClock())), lambda: None

    def cashier() -> tuple[Startup, Callable[[], None]]:
        counter = build_counter(setting.shop_options(), SystemClock())
        return TimedCashierApp(counter, setting.data_dir), counter.store.close

    figures: dict = {"definition": START_DEFINITION}
    for name, make in (("edc", edc), ("cashier", cashier)):
        runs = [await one_start(make) for _ in range(count)]
        figures[name] = {
            **summary([r["first_screen"] for r in runs], 0.95),
            "first_run_ms": _ms(runs[0]["first_screen"]),
            "ready_median_ms": _ms(percentile(sorted(r["ready"] for r in runs), 0.5)),
            "interactive_median_ms": _ms(percentile(sorted(r["interactive"] for r in runs), 0.5)),
        }
        for selector in runs[0]["shown_after_start"]:  # e.g. the steps bar: painted with content in k of n starts
            figures[name][f"{selector.lstrip('#')}_shown_at_start"] = sum(r["shown_after_start"][selector] for r in runs)
    return figures


# -- 2. key press to screen update during a purchase -----------------------------------------------------


async def insert_card(pilot, pan: str) -> None:  # noqa: ANN001
    """Datang: the card into the slot (the KKS number in the slot's field, then Masukkan kartu)."""
    pilot.app.query_one("#edc-card-input", Input).value = pan
    await pilot.click("#slot-insert")
    await settle(pilot, pilot.app.terminal)
    if not pilot.app.terminal.has_card:
        raise BenchFailure(f"card not taken by the EDC: {pilot.app.terminal.display().message}")


async def key_latencies(setting: Setting, cards: list[GeneratedKpm], count: int) -> dict:
    paint_ms: list[float] = []
    call_ms: list[float] = []
    purchases = 0
    app = EdcApp(build_terminal(setting.edc_options(), SystemClock()))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app.terminal)
        probe = LcdProbe()
        probe.attach(app.query_one("#edc-lcd"))
        while len(paint_ms) < count:
            card = cards[purchases % len(cards)]
            purchases += 1
            await insert_card(pilot, card.pan)
            await pilot.press("f2")
            steps = [(d, entry_pattern(f"Rp{AMOUNT[: i + 1]}")) for i, d in enumerate(AMOUNT)]
            steps.append(("enter", re.compile("MASUKKAN PIN")))
            steps += [(d, entry_pattern("*" * (i + 1))) for i, d in enumerate(card.pin)]
            for key, shown in steps:
                pressed = time.perf_counter()
                await pilot.press(key)
                returned = time.perf_counter()
                painted = await probe.wait_shown(pressed, shown)
                if len(paint_ms) < count:
                    paint_ms.append((painted - pressed) * 1000)
                    call_ms.append((returned - pressed) * 1000)
            await pilot.press("enter")  # send the purchase
            await settle(pilot, app.terminal)
            outcome = app.terminal.outcome
            if outcome is None or not outcome.approved:
                raise BenchFailure(f"purchase by card {card.index} not approved: {outcome and outcome.rc} {outcome and outcome.message}")
            await pilot.press("enter")  # Ambil kartu
            if app.terminal.has_card:
                raise BenchFailure("the card stayed in the EDC after ENTER on the result")
    return {
        "definition": KEY_DEFINITION,
        "purchases": purchases,
        "amount_idr": int(AMOUNT),
        **summary(paint_ms, 0.99),
        "press_call_median_ms": _ms(percentile(sorted(call_ms), 0.5)),
    }


# -- 3. Datang -> Terima in the cashier app ------------------------------------------------------------------


async def cashier_flows(setting: Setting, cards: list[GeneratedKpm], count: int) -> dict:
    walls_ms: list[float] = []
    network_ms: list[float] = []
    phases: dict[str, list[float]] = {name: [] for name in PHASES}
    rrns: set[str] = set()
    counter = build_counter(setting.shop_options(), SystemClock())
    app = CashierApp(counter, setting.data_dir)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, app.terminal)
            if not app.terminal.core.has_keys:
                raise BenchFailure(f"{setting.tid} did not sign on: {app.terminal.display().message}")
            for i in range(count):
                card = cards[i % len(cards)]
                wall, rtt, parts = await one_flow(pilot, app, card)
                for name, ms in parts.items():
                    phases[name].append(ms)
                sale = counter.view().last_sale
                assert sale is not None
                if sale.rrn in rrns:
                    raise BenchFailure(f"RRN {sale.rrn} recorded twice")
                rrns.add(sale.rrn)
                walls_ms.append(wall)
                network_ms.append(rtt)
                await pilot.press("enter")  # Ambil kartu: the EDC is ready for the next KPM
    finally:
        counter.store.close()
    return {
        "definition": FLOW_DEFINITION,
        "flows": len(walls_ms),
        "sales_with_rrn": len(rrns),
        **summary(walls_ms),
        "min_ms": _ms(min(walls_ms) if walls_ms else 0.0),
        "iso_round_trips_median_ms": _ms(percentile(sorted(network_ms), 0.5)),
        "phase_median_ms": {name: _ms(percentile(sorted(v), 0.5)) for name, v in phases.items()},
    }


PHASES = ("datang", "cek", "pilih", "bayar")


async def one_flow(pilot, app: CashierApp, card: GeneratedKpm) -> tuple[float, float, dict[str, float]]:  # noqa: ANN001
    """One KPM from Datang to Terima: wall ms, ms spent in ISO 8583 round trips, ms per phase."""
    counter, terminal = app.counter, app.terminal
    exchanges_before = len(terminal.inspector.exchanges)
    marks = [time.perf_counter()]
    await insert_card(pilot, card.pan)  # Datang
    marks.append(time.perf_counter())
    await pilot.press("f1", *card.pin, "enter")  # Cek
    await settle(pilot, terminal)
    view = counter.view()
    if view.balance_idr is None:
        raise BenchFailure(f"Cek of card {card.index} failed: {view.message}")
    balance = view.balance_idr
    marks.append(time.perf_counter())
    await pilot.click("#shop-catalogue", offset=(2, 1))  # Pilih: the first row (under the header)
    sku = app.query_one("#shop").selected_sku()
    stock_before = counter.available().get(sku or "", 0)
    await pilot.click("#shop-add")
    view = counter.view()
    if [(line.sku, line.qty) for line in view.cart.lines] != [(sku, 1)]:
        raise BenchFailure(f"cart is not one {sku}: {view.cart.lines} ({view.message})")
    total = view.total_idr
    marks.append(time.perf_counter())
    await pilot.press("f9")  # Bayar: the total goes to the EDC, the KPM types the PIN
    if not counter.view().paying:
        raise BenchFailure(f"Bayar refused: {counter.view().message}")
    await pilot.press(*card.pin, "enter")
    await settle(pilot, terminal)
    deadline = time.perf_counter() + SETTLE_S
    while (sale := counter.view().last_sale) is None:  # Terima
        if time.perf_counter() > deadline:
            raise BenchFailure(f"no sale recorded for card {card.index}: {counter.view().message}")
        await asyncio.sleep(0.005)
    marks.append(time.perf_counter())
    stock_after = counter.available().get(sku or "", 0)
    if not sale.rrn or stock_after != stock_before - 1 or counter.view().balance_idr != balance - total:
        raise BenchFailure(
            f"sale of card {card.index}: rrn {sale.rrn!r}, stock {stock_before} -> {stock_after},"
            f" balance {balance} -> {counter.view().balance_idr} (total {total})"
        )
    rtt_ms = sum(e.rtt_ms or 0.0 for e in terminal.inspector.exchanges[exchanges_before:])
    phases = {name: (marks[i + 1] - marks[i]) * 1000 for i, name in enumerate(PHASES)}
    return (marks[-1] - marks[0]) * 1000, rtt_ms, phases


# -- the run -------------------------------------------------------------------------------------


def spendable_cards(kpm: int) -> list[GeneratedKpm]:
    return [card for card in (generated_kpm(BANK, i) for i in range(kpm)) if card.spendable]


async def measure(setting: Setting, args: argparse.Namespace, kpm: int) -> dict:
    cards = spendable_cards(kpm)
    half = max(1, len(cards) // 2)
    key_cards, flow_cards = cards[:half], cards[half:] or cards
    figures: dict = {}
    async with asyncio.timeout(args.max_seconds):
        figures["start"] = await starts(setting, args.starts)
        figures["keys"] = await key_latencies(setting, key_cards, args.keys)
        figures["flow"] = await cashier_flows(setting, flow_cards, args.flows)
    return figures


def run(args: argparse.Namespace) -> tuple[dict, str | None]:
    from tests.switch.network import Network

    started = time.perf_counter()
    head = {"bench": "ui", "size": f"{SIZE[0]}x{SIZE[1]}", "starts": args.starts, "keys_asked": args.keys, "flows_asked": args.flows}
    with tempfile.TemporaryDirectory(prefix="sembako-bench-ui-") as tmp:
        tmp_path = Path(tmp)
        app_dir = tmp_path / "apps"  # the EDC's state file and the shop's SQLite store
        app_dir.mkdir()
        network = None
        try:
            if args.switch:
                host, _, port = args.switch.rpartition(":")
                setting = Setting(host or "127.0.0.1", int(port), app_dir, args.serial)
                # A fresh state file would start at STAN 1, which this switch may have seen today.
                setting.start_stan_at(random.randrange(100_000, 900_000))
                head |= {"network": f"external {args.switch}", "database": "external network; shop and EDC state on sqlite"}
                kpm = args.kpm
            else:
                net_dir = tmp_path / "network"
                net_dir.mkdir()
                network = Network(net_dir, {"data_dir": net_dir}, kpm=NETWORK_KPM).start()
                setting = Setting("127.0.0.1", network.iso_port, app_dir, args.serial)
                head |= {"network": "own (1 BNI bank process + switch, loopback)", "database": "sqlite"}
                kpm = NETWORK_KPM
            head["terminal"], head["ewarong"] = setting.tid, setting.ewarong_id
            figures = asyncio.run(measure(setting, args, kpm))
            error = None
        except (BenchFailure, TimeoutError, OSError) as exc:
            figures, error = {}, f"{type(exc).__name__}: {exc or 'a bounded wait ran out (--max-seconds or an app start)'}"
        finally:
            if network is not None:
                network.stop()
    result = {**head, **figures, "seconds": round(time.perf_counter() - started, 1)}
    if error:
        result |= {"ok": False, "error": error}
    result["machine"] = {**machine(), "textual": textual.__version__}
    return result, error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=10, help="App starts per app (EDC, cashier)")
    parser.add_argument("--keys", type=int, default=200, help="Key presses measured during BELANJA")
    parser.add_argument("--flows", type=int, default=10, help="Datang -> Terima flows in the cashier app")
    parser.add_argument("--switch", metavar="HOST:PORT", help="Use a running network (sembako up) instead of an own one")
    parser.add_argument("--serial", type=int, default=1, help="Demo terminal and e-Warong number (BNI0000n, EWBNI000000000n)")
    parser.add_argument("--kpm", type=int, default=200, help="With --switch: generated KPM the network holds (cards are picked among them)")
    parser.add_argument("--max-seconds", type=float, default=MAX_SECONDS_DEFAULT, help="Give up after this long")
    args = parser.parse_args(argv)
    for name in ("starts", "keys", "flows"):
        if not 1 <= getattr(args, name) <= 10_000:
            parser.error(f"--{name} must be in 1..10000")
    if not 1 <= args.serial <= 48:
        parser.error("--serial must be in 1..48")
    if args.switch and not re.fullmatch(r"[\w.\-]*:\d{1,5}", args.switch):
        parser.error("--switch must be HOST:PORT")
    # Stopped from outside (a CI job's timeout sends SIGTERM): unwind, so the `finally` that
    # stops the bench's own network runs and no bank process is left behind.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    result, error = run(args)
    print(json.dumps(result, ensure_ascii=False))
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
