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
from edc_terminal.core import CoreConfig
from edc_terminal.headless import open_core
from edc_terminal.inspector import Inspector
from edc_terminal.linking import PROXY_HOST, core_config, start_proxy
from edc_terminal.terminal import EdcTerminal, Link
from edc_terminal.widgets import EdcPanel, InspectorPanel
from linksim import LinkProfile, LinkProxy
from shared.clock import Clock

CSS_DIR = Path(__file__).parent


@dataclass(frozen=True, slots=True)
class EdcOptions:
    terminal: str = "BNI00001"
    switch_host: str = "127.0.0.1"
    switch_port: int = 8583
    data_dir: Path = Path("data")
    timeout_ms: int = 30_000
    connect_timeout_ms: int = 3_000
    link: LinkProfile | None = None  # through the link simulator with this profile, else direct
    link_seed: int = 0


async def attach_link(terminal: EdcTerminal, options: EdcOptions) -> LinkProxy | None:
    """Put the link simulator between the terminal and the switch when a profile is chosen."""
    if options.link is None:
        return None
    proxy = await start_proxy(options.link, options.link_seed, options.switch_host, options.switch_port)
    await terminal.link.through(proxy, PROXY_HOST, proxy.port)
    return proxy


def build_terminal(options: EdcOptions, clock: Clock, monotonic: Callable[[], float] = time.monotonic) -> EdcTerminal:
    """The terminal behind the screen: its stored state, the core, the link and the inspector.
    `monotonic` (seconds) times the spinner, the time left and the round trips.
    Raises InputError (Indonesian text) for an unknown terminal or an unreadable state file."""
    # Sign-on loads the offline card list; the link's own delays lengthen each timeout.
    config = core_config(options.link, CoreConfig.uniform(options.timeout_ms, card_list=True))
    core = open_core(options.terminal, options.data_dir, clock, config)
    link = Link(options.switch_host, options.switch_port, options.connect_timeout_ms)
    return EdcTerminal(core, link, clock, Inspector(clock, timer=monotonic), monotonic=monotonic)


class TerminalHost:
    """What every app holding an EDC does with it: the link simulator in between when chosen,
    power-on, the inspector (F8), and a clean close. Mix in before `App`; set `terminal`,
    `edc_options` and `power_on_at_start` in `__init__`."""

    terminal: EdcTerminal
    edc_options: EdcOptions
    power_on_at_start: bool
    _proxy: LinkProxy | None = None

    async def start_terminal(self) -> None:
        self.query_one("#inspector").display = False  # type: ignore[attr-defined]
        self._proxy = await attach_link(self.terminal, self.edc_options)
        if self.power_on_at_start:
            self.terminal.power_on()
            self.query_one(EdcPanel).run_network_job()  # type: ignore[attr-defined]

    async def on_unmount(self) -> None:
        await self.terminal.close()
        if self._proxy is not None:
            await self._proxy.stop()

    def action_toggle_inspector(self) -> None:
        inspector = self.query_one("#inspector")  # type: ignore[attr-defined]
        inspector.display = not inspector.display


class EdcApp(TerminalHost, App):
    """One EDC terminal: display, keypad, card slot, printer, and the inspector (F8)."""

    CSS_PATH = CSS_DIR / "edc.tcss"
    TITLE = "EDC Program Sembako"
    ENABLE_COMMAND_PALETTE = False  # its texts are English; the cashier needs none of it
    BINDINGS = [
        Binding("f8", "toggle_inspector", "Inspektur"),
        Binding("ctrl+q", "quit", "Keluar"),
    ]

    def __init__(self, terminal: EdcTerminal, *, power_on: bool = True, options: EdcOptions | None = None) -> None:
        super().__init__()
        self.terminal = terminal
        self.power_on_at_start = power_on
        self.edc_options = options or EdcOptions()

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        assert self.terminal.inspector is not None
        with Horizontal(id="edc-main"):
            yield EdcPanel(self.terminal, all_demo_cards(), id="edc")
            yield InspectorPanel(self.terminal.inspector, id="inspector")
        yield Footer()

    async def on_mount(self) -> None:
        core = self.terminal.core
        self.sub_title = f"{core.terminal.tid} - e-Warong {core.terminal.mid}"
        await self.start_terminal()
