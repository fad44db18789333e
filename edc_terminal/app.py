"""`sembako edc`: the EDC emulator as a Textual app, drawn like a bank EDC.

The app composes the device (`EdcPanel`) and the message inspector, and wires them to an
`EdcTerminal` over a `Link` to the switch. All decisions stay in the core.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer, Header

from bank_penyalur.demo.fixture import all_demo_cards
from shared.clock import Clock

from edc_terminal.core import CoreConfig
from edc_terminal.headless import open_core
from edc_terminal.inspector import Inspector
from edc_terminal.terminal import EdcTerminal, Link
from edc_terminal.widgets import EdcPanel, InspectorPanel

CSS_DIR = Path(__file__).parent


@dataclass(frozen=True, slots=True)
class EdcOptions:
    terminal: str = "BNI00001"
    switch_host: str = "127.0.0.1"
    switch_port: int = 8583
    data_dir: Path = Path("data")
    timeout_ms: int = 30_000
    connect_timeout_ms: int = 3_000


def build_terminal(options: EdcOptions, clock: Clock, monotonic: Callable[[], float] = time.monotonic) -> EdcTerminal:
    """The terminal behind the screen: its stored state, the core, the link and the inspector.
    `monotonic` (seconds) times the spinner, the time left and the round trips.
    Raises InputError (Indonesian text) for an unknown terminal or an unreadable state file."""
    core = open_core(options.terminal, options.data_dir, clock, CoreConfig.uniform(options.timeout_ms))
    link = Link(options.switch_host, options.switch_port, options.connect_timeout_ms)
    return EdcTerminal(core, link, clock, Inspector(clock, timer=monotonic), monotonic=monotonic)


class EdcApp(App):
    """One EDC terminal: display, keypad, card slot, printer, and the inspector (F8)."""

    CSS_PATH = CSS_DIR / "edc.tcss"
    TITLE = "EDC Program Sembako"
    ENABLE_COMMAND_PALETTE = False  # its texts are English; the cashier needs none of it
    BINDINGS = [
        Binding("f8", "toggle_inspector", "Inspektur"),
        Binding("ctrl+q", "quit", "Keluar"),
    ]

    def __init__(self, terminal: EdcTerminal, *, power_on: bool = True) -> None:
        super().__init__()
        self.terminal = terminal
        self._power_on = power_on

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        assert self.terminal.inspector is not None
        with Horizontal(id="edc-main"):
            yield EdcPanel(self.terminal, all_demo_cards(), id="edc")
            yield InspectorPanel(self.terminal.inspector, id="inspector")
        yield Footer()

    def on_mount(self) -> None:
        core = self.terminal.core
        self.sub_title = f"{core.terminal.tid} - e-Warong {core.terminal.mid}"
        self.query_one("#inspector").display = False
        if self._power_on:
            self.terminal.power_on()
            self.query_one(EdcPanel).run_network_job()

    async def on_unmount(self) -> None:
        await self.terminal.close()

    def action_toggle_inspector(self) -> None:
        inspector = self.query_one("#inspector")
        inspector.display = not inspector.display
