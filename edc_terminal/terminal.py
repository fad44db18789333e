"""The EDC as its user handles it: keypad, card slot, menus, display, printer and status line.

UI-free and shared by the Textual apps and the tests. It holds no business rule: every decision
is the core's (`edc_terminal.core.EdcCore`) or the services' behind the switch. This layer keeps
what a real terminal keeps around the core: the digits being typed (the PIN only as a count of
asterisks on the display), which menu is open, the paper in the printer, and the line to the
switch. Inputs are synchronous and never block; one that needs the network queues a job, which
the driver runs with `await run_pending()` while the display shows a spinner and the time left.
Inputs that arrive while a message is in flight are refused with a message, nothing is sent.
"""

from __future__ import annotations

import enum
import textwrap
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from edc_terminal.client import ClientConfig, Received, SwitchClient, SwitchUnavailable
from edc_terminal.core import (
    Command,
    EdcCore,
    Finished,
    Flow,
    Outcome,
    Reject,
    Send,
    State,
)
from edc_terminal.batchjob import DEFAULT_WINDOW, BatchJob, JobResult
from edc_terminal.headless import perform, run_job
from edc_terminal.receipt import settlement_slip
from shared.cards import mask_pan
from shared.clock import Clock
from shared.iso8583 import CARD_LIST, ECHO, KEY_EXCHANGE, SIGN_ON
from shared.money import AMOUNT_IDR_MAX, format_idr, from_iso_minor
from shared.pinblock import PIN_LENGTH

if TYPE_CHECKING:
    from edc_terminal.inspector import Inspector

LCD_WIDTH = 30
AMOUNT_DIGITS_MAX = len(str(AMOUNT_IDR_MAX))
PRINTER_SLIPS_MAX = 50
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
SPINNER_FRAME_MS = 100
JOB_IN_FLIGHT_MAX = DEFAULT_WINDOW  # messages in flight at once while uploading or settling


class Key(enum.StrEnum):
    KOREKSI = "koreksi"
    BATAL = "batal"
    ENTER = "enter"
    MENU = "menu"
    DOUBLE_ZERO = "00"


DIGITS = tuple("0123456789")
KEYS = (*DIGITS, *(k.value for k in Key))


class Action(enum.StrEnum):
    """The terminal's menu functions (function keys on the keypad, or from the MENU list)."""

    CEK = "cek"
    BELANJA = "belanja"
    PEMBATALAN = "pembatalan"
    CETAK_ULANG = "cetak_ulang"
    SIGN_ON = "sign_on"
    TES_KONEKSI = "tes_koneksi"
    KIRIM_TERTUNDA = "kirim_tertunda"
    KIRIM_OFFLINE = "kirim_offline"
    SETTLEMENT = "settlement"


ACTION_LABELS: dict[Action, str] = {
    Action.CEK: "CEK SALDO",
    Action.BELANJA: "BELANJA",
    Action.PEMBATALAN: "PEMBATALAN",
    Action.CETAK_ULANG: "CETAK ULANG",
    Action.SIGN_ON: "SIGN ON",
    Action.TES_KONEKSI: "TES KONEKSI",
    Action.KIRIM_TERTUNDA: "KIRIM PEMBATALAN",
    Action.KIRIM_OFFLINE: "KIRIM OFFLINE",
    Action.SETTLEMENT: "SETTLEMENT",
}
MAIN_MENU: tuple[Action, ...] = (
    Action.PEMBATALAN,
    Action.CETAK_ULANG,
    Action.SIGN_ON,
    Action.TES_KONEKSI,
    Action.KIRIM_TERTUNDA,
    Action.KIRIM_OFFLINE,
    Action.SETTLEMENT,
)
CARD_MENU: tuple[Action, ...] = (Action.CEK, Action.BELANJA)

TEXT_BUSY = "Mohon tunggu, transaksi sedang diproses"
TEXT_NO_CARD = "Masukkan kartu terlebih dahulu"
TEXT_CARD_IN = "Kartu sudah di dalam terminal"
TEXT_KEEP_CARD = "Jangan cabut kartu, transaksi sedang diproses"
TEXT_DIGITS_ONLY = "Gunakan tombol angka"
TEXT_NO_SLIP = "Belum ada struk untuk dicetak ulang"
TEXT_NOTHING_PENDING = "Tidak ada pembatalan tertunda"
NIK_DIGITS = 16


class Mode(enum.StrEnum):
    """What the screen shows on top of the core's state."""

    READY = "ready"  # core IDLE: "Masukkan kartu"
    MENU = "menu"  # the main menu is open
    CONFIRM_VOID = "confirm_void"  # PEMBATALAN: confirm the void of the last purchase
    CORE = "core"  # a card flow: the core's CARD, AMOUNT, PIN, PROCESSING or RESULT


@dataclass(frozen=True, slots=True)
class Display:
    """The LCD: a title, body lines, the field being typed (masked), and a message line."""

    title: str
    lines: tuple[str, ...]
    entry: str | None = None
    message: str | None = None
    busy: bool = False
    spinner: str = ""
    remaining_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Status:
    tid: str
    bank_name: str
    bank_code: str  # short, as on the terminal's casing: BNI, BRI, MDR, BTN
    merchant_id: str
    signed_on: bool
    link: str
    pending_reversals: int
    batch: int
    batch_count: int
    time_wib: str  # HH:MM; the slips carry the date
    offline: bool = False  # the terminal approves sales itself (no link, or down too long)
    advices_pending: int = 0  # offline sales not yet sent to the switch

    def line(self) -> str:
        signed = "SIGN-ON" if self.signed_on else "BELUM SIGN-ON"
        mode = " | MODE OFFLINE" if self.offline else ""
        advices = f", {self.advices_pending} offline belum terkirim" if self.advices_pending else ""
        return (
            f"{self.tid} {self.bank_code} | {signed} | {self.link}{mode} | tunda {self.pending_reversals}"
            f" | batch {self.batch:06d}: {self.batch_count} trx{advices} | {self.time_wib} WIB"
        )


class Simulated(Protocol):
    """What the status line shows of a link simulator (linksim.LinkProxy)."""

    @property
    def state(self) -> str: ...


class Link:
    """The terminal's line to the switch: one connection, opened on demand and again after a drop.

    Duck-types `SwitchClient.request`, so the headless driver's `perform` uses it unchanged."""

    def __init__(self, host: str, port: int, connect_timeout_ms: int = 3_000) -> None:
        self.host = host
        self.port = port
        self.connect_timeout_ms = connect_timeout_ms
        self._client: SwitchClient | None = None
        self.last_error: str | None = None
        self.simulator: Simulated | None = None  # the link simulator in between, if any

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def available(self) -> bool:
        """False when the link simulator plays a profile with no link at all (no signal)."""
        profile = getattr(self.simulator, "profile", None)
        return profile is None or profile.available

    @property
    def state(self) -> str:
        if self._client is not None and self._client.connected:
            state = "ONLINE"
        else:
            state = "TERPUTUS" if self.last_error else "SIAP"
        return f"{self.simulator.state}: {state}" if self.simulator is not None else state

    async def through(self, simulator: Simulated, host: str, port: int) -> None:
        """From now on reach the switch through `simulator`, listening at host:port."""
        await self.close()
        self.simulator, self.host, self.port = simulator, host, port

    async def request(self, data: bytes, mti: str, stan: str, timeout_ms: int) -> Received:
        client = await self._connected()
        try:
            return await client.request(data, mti, stan, timeout_ms)
        except SwitchUnavailable as exc:
            self.last_error = str(exc)
            raise

    async def open(self) -> bool:
        """Connect now (not only on the first message); False when the switch cannot be reached."""
        try:
            await self._connected()
        except SwitchUnavailable:
            return False
        return True

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _connected(self) -> SwitchClient:
        if self._client is not None and self._client.connected:
            return self._client
        await self.close()
        config = ClientConfig(connect_timeout_ms=self.connect_timeout_ms, max_in_flight=JOB_IN_FLIGHT_MAX)
        client = SwitchClient(self.host, self.port, config)
        try:
            await client.connect()
        except SwitchUnavailable as exc:
            self.last_error = str(exc)
            raise
        self._client, self.last_error = client, None
        return client


@dataclass
class _Flight:
    send: Send
    started_s: float


Job = Callable[[], Awaitable[None]]
Listener = Callable[[], None]


class EdcTerminal:
    """One EDC as its user sees it. Drive it from one asyncio task (the UI's event loop)."""

    def __init__(
        self,
        core: EdcCore,
        link: Link,
        clock: Clock,
        inspector: Inspector | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.core = core
        self.link = link
        self.clock = clock
        self.inspector = inspector
        self._monotonic = monotonic
        self._mode = Mode.READY
        self._buffer = ""
        self._message: str | None = None
        self._flight: _Flight | None = None
        self._card_pan: str | None = None  # the card in the slot; never displayed
        self._job_title: str | None = None  # KIRIM OFFLINE or SETTLEMENT while its job runs
        self._job: Job | None = None
        self._busy = False
        self.printer: list[str] = []  # slips printed, oldest first
        self.outcome: Outcome | None = None  # the last flow's outcome
        self._on_change: list[Listener] = []
        self._on_outcome: list[Callable[[Outcome], None]] = []
        self._on_send: list[Callable[[Send], None]] = []

    # -- listeners -------------------------------------------------------------------------------

    def subscribe(
        self,
        on_change: Listener | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
        on_send: Callable[[Send], None] | None = None,
    ) -> None:
        """Be told when the screen changes, when a flow ends, and when a message goes out."""
        if on_change:
            self._on_change.append(on_change)
        if on_outcome:
            self._on_outcome.append(on_outcome)
        if on_send:
            self._on_send.append(on_send)

    def _changed(self) -> None:
        for listener in self._on_change:
            listener()

    # -- what the user sees ------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._busy or self._job is not None

    @property
    def queued(self) -> bool:
        """A network job waits for `run_pending`."""
        return self._job is not None

    @property
    def has_card(self) -> bool:
        return self.core.state in (State.CARD, State.AMOUNT, State.PIN, State.PROCESSING, State.RESULT)

    @property
    def card_pan(self) -> str | None:
        """The card in the slot, for the shop's keyed card reference. Never displayed."""
        return self._card_pan if self.has_card else None

    @property
    def mode(self) -> Mode:
        return self._mode

    def status(self) -> Status:
        stored = self.core.stored
        self.core.set_link_state(self.link.available)
        summary = self.core.batch_summary()
        return Status(
            tid=self.core.terminal.tid,
            bank_name=self.core.bank_name,
            bank_code=self.core.terminal.tid[:3],
            merchant_id=self.core.terminal.mid,
            signed_on=self.core.has_keys,
            link=self.link.state,
            pending_reversals=self.core.pending_reversals,
            batch=stored.batch,
            batch_count=stored.batch_count,
            time_wib=self.clock.now().strftime("%H:%M"),
            offline=self.core.offline,
            advices_pending=summary.pending_advices,
        )

    def display(self) -> Display:
        title, lines, entry = self._screen()
        spinner, remaining_ms = "", None
        if self._flight is not None:
            elapsed_ms = (self._monotonic() - self._flight.started_s) * 1000
            remaining_ms = max(0, int(self._flight.send.timeout_ms - elapsed_ms))
            spinner = SPINNER[int(elapsed_ms // SPINNER_FRAME_MS) % len(SPINNER)]
        wrapped = tuple(part for line in lines for part in (textwrap.wrap(line, LCD_WIDTH) or [""]))
        return Display(title, wrapped, entry, self._message, self.busy, spinner, remaining_ms)

    def _screen(self) -> tuple[str, list[str], str | None]:
        if self._mode is Mode.MENU:
            return "MENU", [f"{i}. {ACTION_LABELS[a]}" for i, a in enumerate(MAIN_MENU, 1)], None
        if self._mode is Mode.CONFIRM_VOID:
            return "PEMBATALAN", self._void_lines(), None
        state = self.core.state
        if state is State.IDLE:
            return "PROGRAM SEMBAKO", ["SILAKAN MASUKKAN KARTU", "", "Tekan MENU untuk fungsi lain"], None
        if state is State.CARD:
            choices = [f"{i}. {ACTION_LABELS[a]}" for i, a in enumerate(CARD_MENU, 1)]
            offline = ["MODE OFFLINE: hanya BELANJA"] if self.core.offline else []
            return "PILIH TRANSAKSI", [f"Kartu {self._card_masked()}", *choices, *offline], None
        if state is State.AMOUNT:
            return "BELANJA", ["MASUKKAN NOMINAL"], f"Rp{self._buffer or '0'}"
        if state is State.PIN:
            return self._flow_title(), [*self._amount_line(), "MASUKKAN PIN"], "*" * len(self._buffer)
        if state is State.ID:
            lines = [*self._amount_line(), "MODE OFFLINE", "MASUKKAN NIK PEMEGANG KARTU (KTP/KK)"]
            return "BELANJA OFFLINE", lines, self._buffer
        if state is State.PROCESSING:
            return self._flow_title(), [self.core.prompt], None
        return self._result_screen()

    def _result_screen(self) -> tuple[str, list[str], str | None]:
        outcome = self.outcome
        if outcome is None:
            return "SELESAI", ["AMBIL KARTU"], None
        title = "BERHASIL" if outcome.approved else "GAGAL"
        lines = [outcome.message]
        if outcome.amount is not None and outcome.flow is not Flow.INQUIRY:
            lines.append(f"Nominal {format_idr(outcome.amount)}")
        if outcome.balance is not None:
            lines.append(f"Sisa saldo {format_idr(outcome.balance)}")
        lines += [f"RC {outcome.rc}", "", "AMBIL KARTU (ENTER)"]
        return title, lines, None

    def _void_lines(self) -> list[str]:
        last = self.core.stored.last_purchase
        if last is None:
            return ["Tidak ada transaksi untuk dibatalkan"]
        amount = format_idr(from_iso_minor(last.request["4"]))
        return [
            "Batalkan pembelian terakhir?",
            f"Kartu {mask_pan(last.request['2'])}",
            f"Nominal {amount}",
            f"RRN {last.rrn}",
            "ENTER = YA, BATAL = TIDAK",
        ]

    def _flow_title(self) -> str:
        if self._job_title is not None:
            return self._job_title
        if self._flight is not None:
            return _title_of(self._flight.send)
        card = self.core.card
        return "CEK SALDO" if card is not None and card.flow is Flow.INQUIRY else "BELANJA"

    def _card_masked(self) -> str:
        card = self.core.card
        return card.pan_masked if card is not None else ""

    def _amount_line(self) -> list[str]:
        card = self.core.card
        if card is None or card.amount is None:
            return []
        return [f"Nominal {format_idr(card.amount)}"]

    # -- inputs ------------------------------------------------------------------------------

    def press(self, key: str) -> None:
        """A keypad key: a digit, 00, KOREKSI, BATAL, ENTER or MENU."""
        if key not in KEYS:
            self._say(TEXT_DIGITS_ONLY)
            return
        if self.busy:
            self._say(TEXT_BUSY)
            return
        self._message = None
        handler = {
            Mode.READY: self._key_ready,
            Mode.MENU: self._key_menu,
            Mode.CONFIRM_VOID: self._key_confirm_void,
            Mode.CORE: self._key_core,
        }[self._mode]
        handler(key)
        self._changed()

    def select(self, action: Action | str) -> None:
        """A menu function, from its function key or from a menu list."""
        if self.busy:
            self._say(TEXT_BUSY)
            return
        self._message = None
        action = Action(action)
        if action in CARD_MENU:
            self._choose_card_flow(action)
        elif self.has_card:
            self._message = TEXT_CARD_IN
        else:
            self._start_function(action)
        self._changed()

    def insert_card(self, pan: str) -> None:
        """Datang: a card into the slot (chip read), or a KKS number typed by the cashier."""
        if self.busy:
            self._say(TEXT_BUSY)
            return
        if self.has_card:
            self._say(TEXT_CARD_IN)
            return
        self._mode, self._message = Mode.READY, None
        if not self.core.has_keys:  # a terminal without working keys signs on first
            self._queue(lambda: self._sign_on_then_insert(pan))
        else:
            self._insert(pan)
        self._changed()

    def _insert(self, pan: str) -> bool:
        accepted = self._apply(self.core.insert_card(pan))
        if accepted:
            self._card_pan = pan.strip()
        return accepted

    def take_card(self) -> None:
        """Ambil kartu: the card leaves the slot. Mid-flow (before sending) it cancels the flow."""
        state = self.core.state
        if self.busy or state is State.PROCESSING:
            self._say(TEXT_KEEP_CARD)
            return
        if state is State.RESULT:
            self._apply(self.core.finish())
        elif state in (State.CARD, State.AMOUNT, State.PIN):
            self._apply(self.core.cancel())
        self._buffer = ""
        self._mode = Mode.READY
        if not self.core.has_keys and self._job is None:
            self._queue(self._recover_keys)  # the flow that just ended lost the keys
        self._changed()

    def start_purchase(self, amount_idr: int, pan: str | None = None) -> bool:
        """Bayar from the shop: BELANJA with the cart total as the amount; the KPM types the PIN.
        With a Cek result on screen the card is taken and goes in again (`pan`, the card the
        shop read the balance of) for the new transaction. False, with a message, when refused."""
        if self.busy:
            return self._refuse(TEXT_BUSY)
        if self.core.state is State.RESULT:
            self.take_card()
        if self.core.state is State.IDLE and pan is not None:
            if not self.core.has_keys:
                return self._refuse("Terminal belum sign-on: pilih SIGN ON di EDC")
            self._mode = Mode.READY
            if not self._insert(pan):
                return self._refuse(self._message or TEXT_NO_CARD)
        if self.core.state is not State.CARD:
            return self._refuse(TEXT_NO_CARD if not self.has_card else "Selesaikan transaksi di layar EDC dahulu")
        self._message = None
        self._mode = Mode.CORE
        ok = self._apply(self.core.choose_purchase()) and self._apply(self.core.enter_amount(str(amount_idr)))
        if not ok:
            self._apply(self.core.cancel())
        self._changed()
        return ok

    def _refuse(self, message: str) -> bool:
        self._say(message)
        return False

    def power_on(self) -> None:
        """Queue what a terminal does when switched on: open the line, sign on if it has no
        working keys, then send the reversals it still holds, before anything else."""
        self._queue(self._power_on)

    async def run_pending(self) -> None:
        """Run the queued network job (if any) to its end. Never raises for network trouble."""
        job, self._job = self._job, None
        if job is None:
            return
        self._busy = True
        self._changed()
        try:
            await job()
        finally:
            self._busy = False
            self._flight = None
            self._changed()

    async def close(self) -> None:
        await self.link.close()
        self.core.close()

    # -- key handling per mode ---------------------------------------------------------------

    def _key_ready(self, key: str) -> None:
        if key == Key.MENU:
            self._mode = Mode.MENU
        elif key in (Key.ENTER, *DIGITS, Key.DOUBLE_ZERO):
            self._message = TEXT_NO_CARD

    def _key_menu(self, key: str) -> None:
        if key in (Key.BATAL, Key.MENU):
            self._mode = Mode.READY
            return
        if key.isdigit() and 1 <= int(key) <= len(MAIN_MENU):
            self._mode = Mode.READY
            self._start_function(MAIN_MENU[int(key) - 1])
            return
        self._message = f"Pilih 1-{len(MAIN_MENU)}, atau BATAL"

    def _key_confirm_void(self, key: str) -> None:
        if key == Key.ENTER:
            self._mode = Mode.CORE
            self._run(self.core.reverse_last())
        elif key == Key.BATAL:
            self._mode, self._message = Mode.READY, "Pembatalan tidak jadi"

    def _key_core(self, key: str) -> None:
        state = self.core.state
        if state is State.CARD:
            self._key_card(key)
        elif state in (State.AMOUNT, State.PIN, State.ID):
            self._key_entry(key, state)
        elif state is State.RESULT and key in (Key.ENTER, Key.BATAL):
            self.take_card()

    def _key_card(self, key: str) -> None:
        if key == Key.BATAL:
            self._apply(self.core.cancel())
        elif key.isdigit() and 1 <= int(key) <= len(CARD_MENU):
            self._choose_card_flow(CARD_MENU[int(key) - 1])
        else:
            self._message = f"Pilih 1-{len(CARD_MENU)}, atau BATAL"

    def _key_entry(self, key: str, state: State) -> None:
        limit = {State.AMOUNT: AMOUNT_DIGITS_MAX, State.PIN: PIN_LENGTH, State.ID: NIK_DIGITS}[state]
        if key == Key.BATAL:
            self._buffer = ""
            self._apply(self.core.cancel())
        elif key == Key.KOREKSI:
            self._buffer = self._buffer[:-1]
        elif key == Key.ENTER:
            self._submit(state)
        elif key in (Key.MENU,):
            self._message = TEXT_DIGITS_ONLY
        elif len(self._buffer) + len(key) > limit:
            self._message = f"Maksimal {limit} digit"
        elif not (state is State.AMOUNT and not self._buffer and key.startswith("0")):
            self._buffer += key  # an amount does not start with 0

    def _submit(self, state: State) -> None:
        typed, self._buffer = self._buffer, ""
        if state is State.AMOUNT:
            if not self._apply(self.core.enter_amount(typed)):
                self._buffer = typed
            return
        if state is State.ID:  # offline: the terminal decides at once, nothing is sent
            if not self._apply(self.core.enter_nik(typed)):
                self._buffer = typed
            return
        self._run(self.core.enter_pin(typed))

    def _choose_card_flow(self, action: Action) -> None:
        if self.core.state is not State.CARD:
            self._message = TEXT_NO_CARD if not self.has_card else "Transaksi sudah dipilih"
            return
        self._mode = Mode.CORE
        self.core.set_link_state(self.link.available)
        self._apply(self.core.choose_inquiry() if action is Action.CEK else self.core.choose_purchase())

    def _start_function(self, action: Action) -> None:
        if action is Action.PEMBATALAN:
            if self.core.stored.last_purchase is None:
                self._message = "Tidak ada transaksi pembelian yang dapat dibatalkan"
            else:
                self._mode = Mode.CONFIRM_VOID
        elif action is Action.CETAK_ULANG:
            self._reprint()
        elif action is Action.SIGN_ON:
            self._run(self.core.sign_on())
        elif action is Action.TES_KONEKSI:
            self._run(self.core.echo())
        elif action is Action.KIRIM_TERTUNDA:
            self._flush_pending()
        elif action in (Action.KIRIM_OFFLINE, Action.SETTLEMENT):
            self._start_job(action)

    def _start_job(self, action: Action) -> None:
        """KIRIM OFFLINE (stored offline sales) or SETTLEMENT (close the batches): a job with
        several messages in flight, run as the network job."""
        self.core.set_link_state(self.link.available)
        job = self.core.start_upload() if action is Action.KIRIM_OFFLINE else self.core.start_settlement()
        if isinstance(job, Reject):
            self._message = job.reason
            return
        self._mode = Mode.CORE
        self._job_title = ACTION_LABELS[action]
        self._queue(lambda: self._run_job(job))

    async def _run_job(self, job: BatchJob) -> None:
        try:
            result = await run_job(job, self.link, JOB_IN_FLIGHT_MAX, self.inspector)  # type: ignore[arg-type]
        finally:
            self._job_title = None
        self._job_done(result)

    def _job_done(self, result: JobResult) -> None:
        core = self.core
        if result.steps or result.exceptions:
            self._print(settlement_slip(core.bank_name, core.terminal.mid, core.terminal.tid, self.clock.now(), result))
        if self.core.outcome is not None and self.core.state is State.RESULT:
            self._finished(self.core.outcome)

    def _reprint(self) -> None:
        slip = self.core.stored.last_receipt
        if slip is None:
            self._message = TEXT_NO_SLIP
            return
        self._print("** CETAK ULANG **".center(32).rstrip() + "\n" + slip)
        self._message = "Struk dicetak ulang"

    def _flush_pending(self) -> None:
        if not self.core.pending_reversals:
            self._message = TEXT_NOTHING_PENDING
            return
        self._run(self.core.send_pending_reversals())

    # -- commands from the core --------------------------------------------------------------

    def _apply(self, commands: list[Command]) -> bool:
        """Take in the core's commands; False when the input was refused."""
        for command in commands:
            if isinstance(command, Reject):
                self._message = command.reason
                return False
            if isinstance(command, Finished):
                self._finished(command.outcome)
        if self.core.state is not State.IDLE:
            self._mode = Mode.CORE
        return True

    def _run(self, commands: list[Command]) -> None:
        """Commands that may include a Send: the rest of the flow runs as a network job."""
        if not self._apply(commands):
            return
        send = next((c for c in commands if isinstance(c, Send)), None)
        if send is not None:
            self._queue(lambda: self._drive_then_recover(send))

    def _queue(self, job: Job) -> None:
        assert self._job is None, "one network job at a time"
        self._job = job

    async def _drive_then_recover(self, send: Send) -> None:
        await self._drive(send)
        if self.core.state is State.IDLE and not self.core.has_keys:
            await self._recover_keys()

    async def _recover_keys(self) -> None:
        """An answer failed its MAC and the core dropped its working keys: sign on and exchange
        keys again, then send the reversals kept meanwhile, without a person."""
        note = self._message
        await self._power_on()
        if self.core.has_keys:
            self._message = f"{note + ' ' if note else ''}Kunci kerja diperbarui otomatis."

    async def _drive(self, send: Send) -> None:
        """Carry each Send to the switch and each answer back, until the flow ends."""
        while send is not None:
            self._flight = _Flight(send, self._monotonic())
            for listener in self._on_send:
                listener(send)
            self._changed()
            commands = await self._perform(send)
            self._flight = None
            self._apply(commands)
            send = next((c for c in commands if isinstance(c, Send)), None)

    async def _perform(self, send: Send) -> list[Command]:
        if self.inspector is not None:
            return await perform(self.core, self.link, send, self.inspector)  # type: ignore[arg-type]
        return await perform(self.core, self.link, send)  # type: ignore[arg-type]

    def _finished(self, outcome: Outcome) -> None:
        self.outcome = outcome
        if outcome.receipt:
            self._print(outcome.receipt)
        for listener in self._on_outcome:
            listener(outcome)
        if outcome.flow in (Flow.INQUIRY, Flow.PURCHASE):
            return  # the result stays on screen until the card is taken
        if outcome.flow is Flow.REVERSAL:
            self._message = outcome.message
        else:
            self._message = f"{outcome.message} (RC {outcome.rc})" if not outcome.approved else outcome.message
        if self.core.state is State.RESULT:
            self.core.finish()
        self._mode = Mode.READY

    def _print(self, slip: str) -> None:
        self.printer.append(slip)
        del self.printer[:-PRINTER_SLIPS_MAX]

    def _say(self, message: str) -> None:
        self._message = message
        self._changed()

    # -- jobs ----------------------------------------------------------------------------------

    async def _sign_on_then_insert(self, pan: str) -> None:
        await self._network(self.core.sign_on())
        if not self.core.has_keys:
            self._message = f"Sign-on gagal: {self._message or 'switch tidak menjawab'}. Kartu belum dibaca."
            return
        await self._send_pending()
        self._insert(pan)

    async def _power_on(self) -> None:
        self.core.set_link_state(self.link.available)
        if not self.link.available:
            self._message = "Tidak ada sinyal: MODE OFFLINE (BELANJA dengan KKS + NIK)"
            return
        if not await self.link.open():
            self.core.note_link(False)
            self._message = f"Switch tidak dapat dihubungi: {self.link.last_error}"
            return
        self.core.note_link(True)
        if not self.core.has_keys:
            await self._network(self.core.sign_on())
        if self.core.has_keys:
            await self._send_pending()

    async def _send_pending(self) -> None:
        if self.core.pending_reversals and self.core.state is State.IDLE:
            await self._network(self.core.send_pending_reversals())

    async def _network(self, commands: list[Command]) -> None:
        if not self._apply(commands):
            return
        send = next((c for c in commands if isinstance(c, Send)), None)
        if send is not None:
            await self._drive(send)


_NETWORK_TITLES = {SIGN_ON: "SIGN ON", KEY_EXCHANGE: "TUKAR KUNCI", ECHO: "TES KONEKSI", CARD_LIST: "DAFTAR KARTU"}
_MTI_TITLES = {
    "0100": "CEK SALDO",
    "0200": "BELANJA",
    "0220": "KIRIM OFFLINE",
    "0320": "BATCH UPLOAD",
    "0400": "PEMBATALAN",
    "0401": "PEMBATALAN",
    "0500": "SETTLEMENT",
}


def _title_of(send: Send) -> str:
    """The display title while `send` is in flight."""
    mti = send.message.get("t", "")
    if mti == "0800":
        return _NETWORK_TITLES.get(send.message.get("70", ""), "JARINGAN")
    return _MTI_TITLES.get(mti, "MOHON TUNGGU")
