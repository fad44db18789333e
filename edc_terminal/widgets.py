"""Textual widgets of the EDC: the device (status line, LCD, keypad, function keys, card slot),
its printer, and the message inspector. They render `EdcTerminal` and feed it keys; they hold
no rule of their own. Keys and clicks share one `action_*` each.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.events import Click
from textual.events import Key as KeyEvent
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Button, DataTable, Input, Select, Static

from bank_penyalur.demo.fixture import DemoCard
from shared.cards import mask_pan

from edc_terminal.inspector import SUMMARY_COLUMNS, TABLE_COLUMNS, Exchange, Inspector, summary_row
from edc_terminal.terminal import ACTION_LABELS, Action, EdcTerminal, Key

# (button id, label, action) of the keypad, row by row.
KEYPAD: tuple[tuple[str, str, str], ...] = (
    ("key-1", "1", "digit('1')"), ("key-2", "2", "digit('2')"), ("key-3", "3", "digit('3')"), ("key-batal", "BATAL", "batal"),
    ("key-4", "4", "digit('4')"), ("key-5", "5", "digit('5')"), ("key-6", "6", "digit('6')"), ("key-koreksi", "KOREKSI", "koreksi"),
    ("key-7", "7", "digit('7')"), ("key-8", "8", "digit('8')"), ("key-9", "9", "digit('9')"), ("key-enter", "ENTER", "enter"),
    ("key-menu", "MENU", "menu"), ("key-0", "0", "digit('0')"), ("key-00", "00", "double_zero"), ("key-blank", "", ""),
)  # fmt: skip
# Function keys: (key, action)
FUNCTION_KEYS: tuple[tuple[str, Action], ...] = (
    ("f1", Action.CEK),
    ("f2", Action.BELANJA),
    ("f3", Action.PEMBATALAN),
    ("f4", Action.CETAK_ULANG),
    ("f5", Action.SIGN_ON),
    ("f6", Action.TES_KONEKSI),
)
TEAR = "- " * 16
REFRESH_BUSY_S = 0.1


class EdcPanel(Widget, can_focus=True):
    """The EDC device and its printer. Focus it (click the LCD) to type on the keypad."""

    BINDINGS = [
        *(Binding(d, f"digit('{d}')", d, show=False) for d in "0123456789"),
        Binding("backspace", "koreksi", "KOREKSI"),
        Binding("escape", "batal", "BATAL"),
        Binding("enter", "enter", "ENTER", show=False),
        Binding("m", "menu", "MENU", show=False),
        *(Binding(key, f"function('{action.value}')", ACTION_LABELS[action], show=False) for key, action in FUNCTION_KEYS),
        Binding("a", "take_card", "Ambil kartu", show=False),
    ]

    class Outcome(Message):
        """A flow ended (the shop listens to record a sale)."""

    def __init__(self, terminal: EdcTerminal, demo_cards: Sequence[DemoCard], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.terminal = terminal
        self.demo_cards = [c for c in demo_cards if _same_bank(c, terminal)]
        self._printed = 0
        self._composed = False

    def compose(self) -> ComposeResult:
        yield Static(id="edc-status")
        with Horizontal(id="edc-body"):
            with Vertical(id="edc-device"):
                yield Static(id="edc-lcd")
                with Grid(id="edc-keypad"):
                    for button_id, label, _ in KEYPAD:
                        yield _key_button(label, button_id)
                with Grid(id="edc-fkeys"):
                    for key, action in FUNCTION_KEYS:
                        yield _key_button(f"{key.upper()} {ACTION_LABELS[action]}", f"fkey-{action.value}")
                with Vertical(id="edc-slot"):
                    yield Select(self._card_options(), prompt="Pilih kartu demo", id="edc-card-select")
                    yield Input(placeholder="atau ketik nomor KKS", id="edc-card-input", max_length=19)
                    with Horizontal(id="edc-slot-buttons"):
                        yield _key_button("Masukkan kartu", "slot-insert")
                        yield _key_button("Ambil kartu", "slot-take")
            with VerticalScroll(id="edc-printer"):
                yield Static(id="edc-paper")

    def on_mount(self) -> None:
        self._composed = True
        self.border_title = f"EDC {self.terminal.core.bank_name}"
        self.query_one("#edc-printer").border_title = "Printer"
        self.terminal.subscribe(on_change=self.refresh_view)
        self.set_interval(REFRESH_BUSY_S, self._tick)
        self.refresh_view()
        self.focus()

    # -- rendering ------------------------------------------------------------------------------

    def refresh_view(self) -> None:
        if not self._composed:
            return  # a listener fired before the widgets exist
        self.query_one("#edc-status", Static).update(self.terminal.status().line())
        self.query_one("#edc-lcd", Static).update(_lcd_text(self.terminal))
        self._feed_paper()

    def _tick(self) -> None:
        if self.terminal.busy:
            self.query_one("#edc-lcd", Static).update(_lcd_text(self.terminal))

    def _feed_paper(self) -> None:
        slips = self.terminal.printer
        if len(slips) == self._printed:
            return
        self._printed = len(slips)
        paper = self.query_one("#edc-paper", Static)
        paper.update(Text(f"\n{TEAR}\n".join(slips), no_wrap=True, overflow="crop"))
        self.query_one("#edc-printer", VerticalScroll).scroll_end(animate=False)

    def _card_options(self) -> list[tuple[str, str]]:
        return [(f"{c.label} {mask_pan(c.pan)} - {c.situation}", c.pan) for c in self.demo_cards]

    # -- actions: one per key, shared by keyboard and mouse -------------------------------------

    def action_digit(self, digit: str) -> None:
        self._press(digit)

    def action_double_zero(self) -> None:
        self._press(Key.DOUBLE_ZERO)

    def action_koreksi(self) -> None:
        self._press(Key.KOREKSI)

    def action_batal(self) -> None:
        self._press(Key.BATAL)

    def action_enter(self) -> None:
        self._press(Key.ENTER)

    def action_menu(self) -> None:
        self._press(Key.MENU)

    def action_function(self, action: str) -> None:
        self.terminal.select(action)
        self.run_network_job()

    def action_insert_card(self) -> None:
        typed = self.query_one("#edc-card-input", Input).value.strip()
        selected = self.query_one("#edc-card-select", Select).value
        pan = typed or (selected if isinstance(selected, str) else "")
        if not pan:
            self.notify("Pilih kartu demo atau ketik nomor KKS", severity="warning")
            return
        self.insert_card(pan)

    def insert_card(self, pan: str) -> None:
        self.terminal.insert_card(pan)
        self.query_one("#edc-card-input", Input).value = ""
        self.focus()
        self.run_network_job()

    def action_take_card(self) -> None:
        self.terminal.take_card()
        self.run_network_job()

    def _press(self, key: str) -> None:
        self.terminal.press(key)
        self.run_network_job()

    def run_network_job(self) -> None:
        """Run the network job an input queued, without blocking the screen."""
        if self.terminal.queued:
            self.run_worker(self.terminal.run_pending(), group="edc-network", exclusive=False)

    # -- events -------------------------------------------------------------------------------

    @on(Button.Pressed)
    async def _button(self, event: Button.Pressed) -> None:
        event.stop()
        action = _button_action(event.button.id or "")
        if action:
            await self.run_action(action)

    @on(Input.Submitted, "#edc-card-input")
    def _typed_card(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_insert_card()

    @on(Select.Changed, "#edc-card-select")
    def _chosen_card(self, event: Select.Changed) -> None:
        event.stop()
        self.query_one("#edc-card-input", Input).value = ""

    def on_key(self, event: KeyEvent) -> None:
        """Letters typed on the device: a real keypad has none."""
        if self.has_focus and event.character and event.character.isalpha() and event.key not in ("m", "a"):
            event.stop()
            self.terminal.press(event.character)


def _button_action(button_id: str) -> str | None:
    for key_id, _, action in KEYPAD:
        if key_id == button_id:
            return action or None
    if button_id.startswith("fkey-"):
        return f"function('{button_id.removeprefix('fkey-')}')"
    return {"slot-insert": "insert_card", "slot-take": "take_card"}.get(button_id)


class KeypadButton(Button):
    """A key of the device. Every click is a press, however quick: a plain Button ignores a
    click while its press effect shows, which would drop the second 7 of a PIN like 77."""

    async def _on_click(self, event: Click) -> None:
        event.stop()
        self.press()


def _key_button(label: str, button_id: str) -> Button:
    button = KeypadButton(label, id=button_id, compact=True)
    button.can_focus = False  # ENTER belongs to the keypad, never to a focused button
    if not label:
        button.disabled = True
    return button


def _same_bank(card: DemoCard, terminal: EdcTerminal) -> bool:
    tid = terminal.core.terminal.tid
    prefixes = {"bni": "BNI", "bri": "BRI", "mandiri": "MDR", "btn": "BTN"}
    return tid.startswith(prefixes.get(card.bank, "?"))


def _lcd_text(terminal: EdcTerminal) -> Text:
    display = terminal.display()
    text = Text()
    text.append(f"{display.title}\n", style="bold")
    for line in display.lines:
        text.append(f"{line}\n")
    if display.entry is not None:
        text.append(f"> {display.entry}\n", style="bold")
    if display.remaining_ms is not None:
        text.append(f"{display.spinner} sisa waktu {display.remaining_ms / 1000:.1f} dtk\n", style="italic")
    if display.message:
        text.append(f"\n{display.message}", style="reverse")
    return text


class InspectorPanel(Widget):
    """This terminal's ISO 8583 exchanges; selecting one shows every field of both messages."""

    def __init__(self, inspector: Inspector, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.inspector = inspector
        self._shown = 0

    def compose(self) -> ComposeResult:
        yield DataTable(id="inspector-list", cursor_type="row", zebra_stripes=True)
        yield DataTable(id="inspector-fields", cursor_type="row")

    def on_mount(self) -> None:
        self.border_title = "Inspektur pesan ISO 8583 (F8)"
        self.query_one("#inspector-list", DataTable).add_columns(*SUMMARY_COLUMNS)
        self.query_one("#inspector-fields", DataTable).add_columns("Pesan", *TABLE_COLUMNS)
        self._unsubscribe = self.inspector.subscribe(lambda _exchange: self.call_later(self.refresh_list))
        self.refresh_list()

    def on_unmount(self) -> None:
        self._unsubscribe()

    def refresh_list(self) -> None:
        exchanges = self.inspector.exchanges
        table = self.query_one("#inspector-list", DataTable)
        if len(exchanges) < self._shown:
            table.clear()
            self._shown = 0
        for exchange in exchanges[self._shown :]:
            table.add_row(*(Text(cell) for cell in summary_row(exchange)))
        self._shown = len(exchanges)
        if exchanges:
            table.move_cursor(row=len(exchanges) - 1)
            self.show_fields(exchanges[-1])

    @on(DataTable.RowHighlighted, "#inspector-list")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        exchanges = self.inspector.exchanges
        if 0 <= event.cursor_row < len(exchanges):
            self.show_fields(exchanges[event.cursor_row])

    def show_fields(self, exchange: Exchange) -> None:
        table = self.query_one("#inspector-fields", DataTable)
        table.clear()
        for label, views in (("kirim", exchange.request_fields()), ("terima", exchange.answer_fields())):
            for view in views:
                value = f"{view.value} ({view.note})" if view.note else view.value
                table.add_row(*(Text(cell) for cell in (label, view.number, view.name, value, view.raw_hex)))
