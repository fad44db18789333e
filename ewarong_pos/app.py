"""`sembako ewarong`: the e-Warong cashier's screen, the shop beside the EDC.

The shop panel renders a `Counter` (catalogue, cart, balance, steps) and feeds it the cashier's
choices; the EDC panel is the same device as `sembako edc`. Rules live in the store and the
core; this module only composes and dispatches.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, DataTable, Footer, Header, Input, Static

from bank_penyalur.demo.fixture import all_demo_cards
from edc_terminal.app import EdcOptions, TerminalHost, build_terminal
from edc_terminal.headless import InputError
from edc_terminal.linking import link_profile
from edc_terminal.terminal import EdcTerminal
from edc_terminal.widgets import EdcPanel, InspectorPanel
from ewarong_pos.cashier import STEP_LABELS, Counter, Step
from ewarong_pos.catalogue import Product, forbidden_reason
from ewarong_pos.het_report import HetReporter, reporter_for
from ewarong_pos.report import price_board, report_csv, report_table
from ewarong_pos.settings import ShopOptions
from ewarong_pos.store import ShopStore
from shared.clock import Clock, SystemClock
from shared.money import format_idr

CSS_DIR = Path(__file__).parent
GROUP_SHORT = {
    "karbohidrat": "karbo",
    "protein hewani": "hewani",
    "protein nabati": "nabati",
    "vitamin dan mineral": "vit/min",
}
QTY_MAX_DIGITS = 4


class ShopPanel(Widget):
    """Catalogue, cart, balance and the five steps of the Sembako purchase."""

    def __init__(self, counter: Counter, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.counter = counter
        self._composed = False

    def compose(self) -> ComposeResult:
        yield Static(id="shop-steps")
        yield Static(id="shop-balance")
        yield DataTable(id="shop-catalogue", cursor_type="row", zebra_stripes=True)
        yield Static(id="shop-product")
        with Horizontal(id="shop-add-row"):
            yield Input("1", placeholder="Jumlah", type="integer", max_length=QTY_MAX_DIGITS, id="shop-qty")
            yield Button("Tambah", id="shop-add", compact=True)
            yield Button("Ubah jml", id="shop-set", compact=True)
        yield DataTable(id="shop-cart", cursor_type="row")
        yield Static(id="shop-totals")
        with Horizontal(id="shop-pay-row"):
            yield Button("Bayar F9", id="shop-pay", variant="success", compact=True)
            yield Button("Kosongkan", id="shop-clear", compact=True)
            yield Button("KPM baru", id="shop-next", compact=True)
        yield Static(id="shop-message")

    def on_mount(self) -> None:
        self._composed = True
        self.border_title = f"e-Warong {self.counter.ewarong_id}"
        catalogue = self.query_one("#shop-catalogue", DataTable)
        *_, self._stock_column = catalogue.add_columns("Barang", "Harga (Rp)", "Stok")
        stock = self.counter.available()
        for product in self.counter.products():
            catalogue.add_row(*_product_cells(product, stock.get(product.sku, 0)), key=product.sku)
        catalogue.border_title = "Katalog (x = dilarang untuk KPM)"
        self.query_one("#shop-cart", DataTable).add_columns("Barang", "Jml", "Subtotal")
        self.counter.subscribe(self.refresh_view)
        self.refresh_view()

    # -- rendering ------------------------------------------------------------------------------

    def refresh_view(self) -> None:
        if not self._composed:
            return  # a listener fired before the widgets exist
        view = self.counter.view()
        self.query_one("#shop-steps", Static).update(_steps_text(view.step))
        balance = "belum dicek" if view.balance_idr is None else format_idr(view.balance_idr)
        label = "Batas belanja offline" if view.offline_limit else "Saldo KPM"
        self.query_one("#shop-balance", Static).update(f"{label}: {balance}")
        self._fill_catalogue()
        self._show_product()
        self._fill_cart(view)
        left = "" if view.left_idr is None else f"   Sisa saldo: {format_idr(view.left_idr)}"
        self.query_one("#shop-totals", Static).update(Text(f"Total: {format_idr(view.total_idr)}{left}", style="bold"))
        self.query_one("#shop-message", Static).update(Text(view.message or ""))

    def _fill_catalogue(self) -> None:
        """Only the stock moves while the counter is open; the rows stay where they are."""
        table = self.query_one("#shop-catalogue", DataTable)
        stock = self.counter.available()
        for product in self.counter.products():
            table.update_cell(product.sku, self._stock_column, _stock_cell(stock.get(product.sku, 0)))

    def _fill_cart(self, view) -> None:  # noqa: ANN001 - CounterView
        table = self.query_one("#shop-cart", DataTable)
        table.clear()
        for line in view.cart.lines:
            table.add_row(Text(line.name), str(line.qty), format_idr(line.qty * line.price_idr), key=line.sku)

    # -- actions ---------------------------------------------------------------------------------

    def selected_sku(self) -> str | None:
        table = self.query_one("#shop-catalogue", DataTable)
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def typed_qty(self) -> int | None:
        text = self.query_one("#shop-qty", Input).value.strip()
        if not text.isdigit():
            self.counter.tell("Jumlah harus angka bulat lebih dari 0")
            return None
        return int(text)

    def action_add(self) -> None:
        sku, qty = self.selected_sku(), self.typed_qty()
        if sku is not None and qty is not None:
            self.counter.add(sku, qty)

    def action_set_quantity(self) -> None:
        cart = self.query_one("#shop-cart", DataTable)
        if not cart.row_count:
            self.counter.tell("Keranjang masih kosong")
            return
        sku = str(cart.coordinate_to_cell_key(cart.cursor_coordinate).row_key.value)
        qty = self.typed_qty()
        if qty is not None:
            self.counter.set_quantity(sku, qty)

    @on(Button.Pressed)
    async def _button(self, event: Button.Pressed) -> None:
        actions = {
            "shop-add": "add",
            "shop-set": "set_quantity",
            "shop-pay": "app.pay",
            "shop-clear": "app.clear_cart",
            "shop-next": "app.next_customer",
        }
        action = actions.get(event.button.id or "")
        if action:
            event.stop()
            await self.run_action(action)

    @on(Input.Submitted, "#shop-qty")
    def _qty_entered(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_add()

    @on(DataTable.RowHighlighted, "#shop-catalogue")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_product()

    def _show_product(self) -> None:
        sku = self.selected_sku()
        product = self.counter.store.product(self.counter.ewarong_id, sku) if sku else None
        if product is not None:
            stock = self.counter.available().get(product.sku, 0)
            self.query_one("#shop-product", Static).update(_product_line(product, stock))

    @on(DataTable.RowSelected, "#shop-catalogue")
    def _row_chosen(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.query_one("#shop-qty", Input).focus()


def _steps_text(current: Step) -> Text:
    text = Text()
    for step, label in STEP_LABELS.items():
        if step > Step.DATANG:
            text.append(" > ", style="dim")
        style = "bold reverse" if step is current else ("dim" if step > current else "")
        text.append(label, style=style)
    return text


def _product_cells(product: Product, stock_qty: int) -> tuple[Text, ...]:
    forbidden = forbidden_reason(product) is not None
    return (
        Text(f"x {product.name}" if forbidden else product.name, style="red strike" if forbidden else ""),
        Text(f"{product.price_idr:,}/{product.unit}".replace(",", "."), justify="right"),
        _stock_cell(stock_qty),
    )


def _stock_cell(stock_qty: int) -> Text:
    return Text(str(stock_qty), justify="right")


def _product_line(product: Product, stock_qty: int) -> Text:
    """The highlighted product in full: group, price against HET, stock, or why it is refused."""
    reason = forbidden_reason(product)
    if reason is not None:
        return Text(f"{product.name}: dilarang untuk KPM - {reason}", style="red")
    over = " - DI ATAS HET" if product.price_idr > product.het_idr else ""
    return Text(
        f"{product.name} ({product.group}): {format_idr(product.price_idr)}/{product.unit},"
        f" HET {format_idr(product.het_idr)}{over}, stok {stock_qty}"
    )


class TextScreen(ModalScreen[None]):
    """A printable text (daily report, price board) with an optional CSV export."""

    BINDINGS = [Binding("escape", "dismiss", "Tutup")]

    def __init__(self, title: str, body: str, save: Callable[[], Path] | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.save = save

    def compose(self) -> ComposeResult:
        with Vertical(id="text-dialog"):
            with VerticalScroll(id="text-body"):
                yield Static(Text(self.body, no_wrap=True))
            with Horizontal(id="text-buttons"):
                if self.save is not None:
                    yield Button("Simpan CSV", id="text-save", compact=True)
                yield Button("Tutup (Esc)", id="text-close", compact=True)

    def on_mount(self) -> None:
        self.query_one("#text-dialog").border_title = self.title_text

    @on(Button.Pressed, "#text-close")
    def _close(self) -> None:
        self.dismiss()

    @on(Button.Pressed, "#text-save")
    def _save(self) -> None:
        assert self.save is not None
        path = self.save()
        self.notify(f"Laporan disimpan: {path}")


class CashierApp(TerminalHost, App):
    """The e-Warong counter: shop and EDC side by side, the inspector on F8."""

    CSS_PATH = [CSS_DIR.parent / "edc_terminal" / "edc.tcss", CSS_DIR / "shop.tcss"]
    TITLE = "Kasir e-Warong Program Sembako"
    ENABLE_COMMAND_PALETTE = False  # its texts are English; the cashier needs none of it
    BINDINGS = [
        Binding("f9", "pay", "Bayar"),
        Binding("f10", "report", "Laporan"),
        Binding("f11", "price_board", "Harga"),
        Binding("f8", "toggle_inspector", "Inspektur"),
        Binding("ctrl+n", "next_customer", "KPM baru"),
        Binding("ctrl+q", "quit", "Keluar"),
    ]

    def __init__(self, counter: Counter, data_dir: Path, *, power_on: bool = True, edc_options: EdcOptions | None = None) -> None:
        super().__init__()
        self.counter = counter
        self.terminal: EdcTerminal = counter.terminal
        self.data_dir = data_dir
        self.power_on_at_start = power_on
        self.edc_options = edc_options or EdcOptions()

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with Horizontal(id="counter"):
            yield ShopPanel(self.counter, id="shop")
            yield EdcPanel(self.terminal, all_demo_cards(), id="edc")
        assert self.terminal.inspector is not None
        yield InspectorPanel(self.terminal.inspector, id="inspector")
        yield Footer()

    async def on_mount(self) -> None:
        core = self.terminal.core
        self.sub_title = f"{self.counter.store.shop_name(self.counter.ewarong_id)} - EDC {core.terminal.tid}"
        recovered = self.counter.recover()
        if recovered:
            self.notify(" ".join(recovered), title="Pemulihan", timeout=10)
        await self.start_terminal()

    # -- actions ---------------------------------------------------------------------------------

    def action_pay(self) -> None:
        self.counter.pay()
        edc = self.query_one(EdcPanel)
        edc.focus()  # the KPM types the PIN on the EDC
        edc.run_network_job()

    def action_clear_cart(self) -> None:
        self.counter.clear_cart()

    def action_next_customer(self) -> None:
        self.counter.new_customer()

    def action_report(self) -> None:
        today = self.counter.clock.now().date()
        report = self.counter.store.daily_report(self.counter.ewarong_id, today)
        self.push_screen(TextScreen(f"Laporan {today.isoformat()}", report_table(report), lambda: self._save_report(today)))

    def _save_report(self, day: date) -> Path:
        report = self.counter.store.daily_report(self.counter.ewarong_id, day)
        path = self.data_dir / "reports" / f"{self.counter.ewarong_id}-{day.isoformat()}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report_csv(report), encoding="utf-8")
        return path

    def action_price_board(self) -> None:
        board = price_board(self.counter.products(), at=self.counter.clock.now().date())
        self.push_screen(TextScreen("Papan harga", board))


def edc_options_for(options: ShopOptions) -> EdcOptions:
    """The counter's EDC: its terminal, the switch, and the link simulator's profile if any."""
    return EdcOptions(
        options.terminal_id, options.switch_host, options.switch_port, options.data_dir,
        link=link_profile(options.link), link_seed=options.link_seed,
    )  # fmt: skip


def build_counter(options: ShopOptions, clock: Clock, monotonic: Callable[[], float] = time.monotonic) -> Counter:
    """The shop's store (migrated, demo stock on first use) and its EDC, joined at the counter."""
    terminal = build_terminal(edc_options_for(options), clock, monotonic)
    settings = options.settings()
    store = ShopStore.open(settings, clock)
    store.ensure_demo(options.ewarong_id)
    token = settings.ops_token.get_secret_value() if settings.ops_token else None
    reporter = reporter_for(settings.ops_url, token, options.data_dir, options.terminal_id)  # refusals above HET, to the switch
    return Counter(store, options.ewarong_id, terminal, clock, het_reporter=reporter)


def run_app(options: ShopOptions) -> None:
    """Open the cashier's screen (the CLI has checked the options and seeded the shop)."""
    try:
        counter = build_counter(options, SystemClock())
    except InputError as exc:
        raise SystemExit(f"Gagal: {exc}") from None
    try:
        CashierApp(counter, options.data_dir, edc_options=edc_options_for(options)).run()
    finally:
        counter.store.close()
        if isinstance(counter.het_reporter, HetReporter):
            counter.het_reporter.close()
