"""The EDC terminal's core: a synchronous state machine with no sockets, no asyncio and an
injected clock, shared by the headless driver and the Textual UI.

Card flow (Datang, Cek / Bayar, Terima):

    IDLE "Masukkan kartu" --insert_card--> CARD --choose_inquiry--> PIN
                                            CARD --choose_purchase--> AMOUNT --enter_amount--> PIN
    PIN --enter_pin--> PROCESSING "Mohon tunggu..." --on_response / on_timeout--> RESULT --finish--> IDLE

Network flows start from IDLE: `sign_on` (then key exchange, then with `CoreConfig.card_list`
the offline card list, 0800 code 360 pages 1..N), `exchange_keys`, `echo`,
`send_pending_reversals`, and `reverse_last` (void of the last approved purchase).

Offline mode (wilayah khusus): the terminal is `offline` when the driver says there is no link
(`set_link_state(False)`), or when the link has failed (timeouts, connection failures) for
`CoreConfig.offline_after_ms` without a single answer since. Offline, Cek is refused and Bayar
asks the holder's NIK instead of the PIN:

    CARD --choose_purchase--> AMOUNT --enter_amount--> ID "Masukkan NIK..." --enter_nik--> RESULT

The decision is `edc_terminal.offline.decide` over the stored card list. An approved sale is
built once as a 0220 advice and stored in the batch store before the slip; `start_upload` and
`start_settlement` return a `BatchJob` (edc_terminal.batchjob) that sends the advices and settles
the batches, with many messages in flight; the core is busy (PROCESSING) while it runs and shows
its result (RESULT) when it ends.

Every approved purchase, offline sale and approved reversal also goes to the batch store
(`edc_terminal.batchstore`), which holds the open batch number (`TerminalState.batch` follows it).

Every method returns a list of commands for the driver: `Show` (new screen text), `Reject` (the
input was refused; nothing is sent), `Send` (encode-ready and encoded message to send, with the
MTI and STAN of the expected answer and a timeout), `Finished` (the flow ended; an `Outcome`).
At most one message is in flight; the driver answers a `Send` with `on_response(message, raw)` or
`on_timeout(stan)`. A purchase without a valid answer (timeout or bad MAC) is reversed: 0400,
then 0401 repeats up to `CoreConfig.reversal_repeats`; a reversal never answered stays stored as
pending and is sent again by `send_pending_reversals`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from shared import keys as keylib
from shared import offline as shared_offline
from shared import pinblock, protocol
from shared import rc as rc_table
from shared.banks import demo_terminal
from shared.cards import PAN_LENGTH_MAX, PAN_LENGTH_MIN, luhn_valid, mask_pan
from shared.clock import Clock, period_of
from shared.iso8583 import (
    ECHO,
    REVERSAL_REPEAT,
    SIGN_ON,
    Message,
    MessageError,
    encode,
    encode_with_mac,
    mac_valid,
    response_mti,
)
from shared.money import AMOUNT_IDR_MAX, format_idr, from_iso_minor
from shared.pinblock import PIN_LENGTH

from edc_terminal import offline
from edc_terminal.batchjob import DEFAULT_WINDOW, BatchJob, JobKind, JobResult, Send
from edc_terminal.batchstore import HOT, ID, BatchStore, CardListInfo, StoreSummary
from edc_terminal.receipt import KIND_INQUIRY, KIND_PURCHASE, KIND_REVERSAL, ReceiptData, render
from edc_terminal.store import (
    JOURNAL_OFFLINE,
    JOURNAL_PURCHASE,
    JOURNAL_VOID,
    JournalEntry,
    LastPurchase,
    PendingReversal,
    TerminalState,
    WorkingKeys,
)

NO_ANSWER_RC = rc_table.ISSUER_UNAVAILABLE
KEY_ERROR_RC = rc_table.SYSTEM_ERROR
# A reversal answered with one of these is not settled: it is repeated, then kept pending. Any
# other answer settles it (94 included: the switch already holds a reversal with that STAN).
REVERSAL_RETRY_RCS = (rc_table.ISSUER_UNAVAILABLE, rc_table.SYSTEM_ERROR)

TEXT_WAIT = "Mohon tunggu..."
TEXT_REVERSING = "Tidak ada jawaban. Membatalkan transaksi, mohon tunggu..."
TEXT_BALANCE_RETURNED = "TRANSAKSI GAGAL, DIBATALKAN: saldo akan dikembalikan."
TEXT_REVERSAL_STORED = "Pembatalan disimpan dan dikirim ulang otomatis saat koneksi berikutnya."
TEXT_NOT_SIGNED_ON = "Terminal belum sign-on. Lakukan sign-on terlebih dahulu."
TEXT_SETTLED = "Transaksi sudah di-settle (batch ditutup): tidak dapat dibatalkan"
TEXT_NO_LINK_SETTLE = "Tidak ada sinyal: kirim data dan settlement dilakukan saat terminal online"
TEXT_LIST_NOT_LOADED = "daftar kartu offline tidak dimuat"


class StateSaver(Protocol):
    def save(self, state: TerminalState) -> None: ...


class State(enum.Enum):
    IDLE = "idle"
    CARD = "card"
    AMOUNT = "amount"
    ID = "id"  # offline: the holder's NIK instead of the PIN
    PIN = "pin"
    PROCESSING = "processing"
    RESULT = "result"


PROMPTS: dict[State, str] = {
    State.IDLE: "Masukkan kartu",
    State.CARD: "Pilih transaksi: CEK SALDO atau BAYAR",
    State.AMOUNT: "Masukkan nominal",
    State.ID: "Masukkan NIK pemegang kartu (KTP/KK)",
    State.PIN: "Masukkan PIN",
    State.PROCESSING: TEXT_WAIT,
    State.RESULT: "Ambil kartu",
}


class Flow(enum.StrEnum):
    SIGN_ON = "signon"
    KEY_EXCHANGE = "key_exchange"
    ECHO = "echo"
    INQUIRY = "cek"
    PURCHASE = "bayar"
    REVERSAL = "reversal"
    PENDING = "pending_reversals"
    CARD_LIST = "card_list"  # 0800 code 360 pages, the end of a sign-on with key exchange
    UPLOAD = "upload"  # offline advices (a BatchJob)
    SETTLEMENT = "settle"  # advices, then 0500 per batch (a BatchJob)


NETWORK_FLOWS = (Flow.SIGN_ON, Flow.KEY_EXCHANGE, Flow.ECHO)
NETWORK_SUCCESS = {
    Flow.SIGN_ON: "Sign-on berhasil",
    Flow.KEY_EXCHANGE: "Sign-on berhasil, kunci kerja baru terpasang",
    Flow.ECHO: "Tes koneksi (echo) berhasil",
}


@dataclass(frozen=True, slots=True)
class CoreConfig:
    response_timeout_ms: int = 30_000  # inquiry and purchase answers
    network_timeout_ms: int = 15_000  # sign-on, key exchange, echo
    reversal_timeout_ms: int = 15_000  # each reversal attempt
    reversal_repeats: int = 2  # 0401 repeats after the first 0400
    # Fetch the offline card list (0800 code 360) after each key exchange. Off by default: only
    # a terminal that serves a blank spot needs it, and it costs a round trip per page.
    card_list: bool = False
    offline_after_ms: int = 60_000  # link failing this long without an answer: offline mode
    job_window: int = DEFAULT_WINDOW  # messages in flight during upload and settlement

    @classmethod
    def uniform(cls, timeout_ms: int, reversal_repeats: int = 2, **options: object) -> CoreConfig:
        return cls(timeout_ms, timeout_ms, timeout_ms, reversal_repeats, **options)  # type: ignore[arg-type]


# -- commands for the driver ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Show:
    """Text for the screen."""

    text: str


@dataclass(frozen=True, slots=True)
class Reject:
    """The action or input was refused; the state did not change and nothing is sent."""

    reason: str


@dataclass(frozen=True, slots=True)
class Outcome:
    flow: Flow
    rc: str
    rc_text: str  # the Indonesian text of the RC (shared.rc)
    message: str  # what the screen says at the end
    stan: str | None = None
    rrn: str | None = None
    approval_code: str | None = None
    amount: int | None = None
    balance: int | None = None
    pan_masked: str | None = None
    receipt: str | None = None
    reversal: str | None = None  # "reversed" or "pending" when a purchase had to be reversed
    offline: bool = False  # decided by the terminal offline (no RRN, no balance)
    warning: str | None = None  # approved, but something did not work (e.g. no card list)
    voided_rrn: str | None = None  # PEMBATALAN: the RRN of the purchase the cashier voided

    @property
    def approved(self) -> bool:
        return self.rc == rc_table.APPROVED


@dataclass(frozen=True, slots=True)
class Finished:
    outcome: Outcome


Command = Show | Reject | Send | Finished


# -- input checks, usable before a terminal exists ------------------------------------------------


def pan_error(pan: str) -> str | None:
    """Why `pan` cannot be a KKS card number, or None."""
    if not pan.isdigit() or not PAN_LENGTH_MIN <= len(pan) <= PAN_LENGTH_MAX:
        return f"Kartu tidak terbaca: nomor kartu harus {PAN_LENGTH_MIN}-{PAN_LENGTH_MAX} digit angka"
    if not luhn_valid(pan):
        return "Kartu tidak valid: digit pemeriksa nomor kartu salah"
    return None


def amount_error(amount_idr: int) -> str | None:
    if amount_idr <= 0:
        return "Nominal harus lebih dari Rp0"
    if amount_idr > AMOUNT_IDR_MAX:
        return f"Nominal melebihi batas {format_idr(AMOUNT_IDR_MAX)}"
    return None


def parse_amount(text: str) -> tuple[int | None, str | None]:
    """(rupiah, None) for a valid amount typed by the cashier, else (None, reason)."""
    cleaned = text.strip()
    if not cleaned.isdigit() or not cleaned.isascii():
        return None, "Nominal harus berupa angka rupiah (tanpa titik, koma atau huruf)"
    amount = int(cleaned)
    error = amount_error(amount)
    return (None, error) if error else (amount, None)


def pin_error(pin: str) -> str | None:
    if len(pin) != PIN_LENGTH or not pin.isdigit() or not pin.isascii():
        return f"PIN harus {PIN_LENGTH} digit angka"
    return None


def without_pin(message: Message) -> Message:
    return {k: v for k, v in message.items() if k != "52"}


# -- the state machine -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CardView:
    """The card in the slot as the screen may show it: masked, with the flow and amount chosen."""

    pan_masked: str
    flow: Flow | None
    amount: int | None
    offline: bool = False


@dataclass
class _Card:
    pan: str
    flow: Flow | None = None
    amount: int | None = None
    offline: bool = False


@dataclass
class _Flight:
    """The one message awaiting an answer."""

    flow: Flow
    request: Message
    timeout_ms: int
    attempts: int = 1
    original: Message | None = None  # the purchase a reversal undoes
    auto: bool = False  # a reversal after a purchase without a valid answer
    then_keys: bool = False  # a sign-on followed by a key exchange
    voided: LastPurchase | None = None  # the approved purchase a manual reversal voids

    @property
    def stan(self) -> str:
        return self.request["11"]

    @property
    def expect_mti(self) -> str:
        return response_mti(self.request["t"])


@dataclass
class _Flush:
    sent: int = 0


@dataclass
class _Keys:
    tpk: bytes
    tak: bytes


@dataclass
class _ListDownload:
    """The card list being fetched at sign-on: pages so far (kept only when all arrived)."""

    header: shared_offline.ListHeader | None = None
    hot: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)


class EdcCore:
    """One EDC terminal. Not thread-safe: drive it from one task or thread."""

    def __init__(
        self,
        terminal: protocol.Terminal,
        bank_name: str,
        tmk: bytes,
        stored: TerminalState,
        saver: StateSaver,
        clock: Clock,
        config: CoreConfig = CoreConfig(),
        card_prefix: str | None = None,
        batches: BatchStore | None = None,
    ) -> None:
        """`batches` is the terminal's batch store; default: the one next to the state file when
        `saver` is a `TerminalStore` (it has `open_batches`), else a store in memory."""
        self.terminal = terminal
        self.bank_name = bank_name
        self.card_prefix = card_prefix  # the acquiring bank's IIN: its EDCs serve only its cards
        self.stored = stored
        self.config = config
        self._tmk = tmk
        self._saver = saver
        self._clock = clock
        self._state = State.IDLE
        self._card: _Card | None = None
        self._flight: _Flight | None = None
        self._flush: _Flush | None = None
        self._keys = self._load_keys(stored.keys)
        self._resign_on = False  # an answer failed its MAC: the working keys are dropped after the flow
        self.outcome: Outcome | None = None
        self._batches = batches or _default_batches(saver, terminal.tid, tmk)
        self._download: _ListDownload | None = None
        self._job: BatchJob | None = None
        self._link_unavailable = False  # the driver says there is no link at all
        self._down_since: datetime | None = None  # first failure since the last answer
        self._list_key_cache: tuple[int, bytes | None] | None = None
        self._sync_batch(self._batches.ensure_open(stored.batch, clock.now()))
        self._recover_in_flight_purchase()

    @classmethod
    def for_demo_terminal(
        cls,
        tid: str,
        stored: TerminalState,
        saver: StateSaver,
        clock: Clock,
        config: CoreConfig = CoreConfig(),
        batches: BatchStore | None = None,
    ) -> EdcCore:
        """A demo terminal (BNI00001..BTN00048) with its e-Warong id and demo master key."""
        found = demo_terminal(tid)
        if found is None:
            raise ValueError(f"Terminal {tid!r} tidak dikenal: gunakan terminal demo seperti BNI00001 (001-048)")
        bank, merchant_id = found
        tmk = bytes.fromhex(keylib.demo_terminal_master_key_hex(tid))
        return cls(protocol.Terminal(tid, merchant_id), bank.name, tmk, stored, saver, clock, config, bank.iin, batches)

    def close(self) -> None:
        """Release the batch store (its database connections)."""
        self._batches.close()

    # -- what the screen shows ---------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def prompt(self) -> str:
        if self._state is State.RESULT and self.outcome is not None:
            return f"{self.outcome.message} - {PROMPTS[State.RESULT]}"
        return PROMPTS[self._state]

    @property
    def card(self) -> CardView | None:
        if self._card is None:
            return None
        return CardView(mask_pan(self._card.pan), self._card.flow, self._card.amount, self._card.offline)

    @property
    def has_keys(self) -> bool:
        return self._keys is not None

    @property
    def pending_reversals(self) -> int:
        return len(self.stored.pending_reversals)

    @property
    def in_flight(self) -> Send | None:
        """The message awaiting an answer, re-encoded (e.g. for a UI redraw)."""
        return self._send_command(self._flight) if self._flight else None

    @property
    def batches(self) -> BatchStore:
        return self._batches

    @property
    def job(self) -> BatchJob | None:
        """The upload or settlement job running, if any."""
        return self._job

    def batch_summary(self) -> StoreSummary:
        """Open batch, its sales, batches awaiting settlement, advices not yet sent, exceptions."""
        return self._batches.summary()

    @property
    def card_list(self) -> CardListInfo | None:
        """The offline card list stored at the last sign-on that brought one, if any."""
        return self._batches.card_list()

    # -- link and offline mode ---------------------------------------------------------------------

    @property
    def offline(self) -> bool:
        """No link (the driver said so), or the link has failed for `offline_after_ms` without
        an answer since: Bayar is decided by the terminal, Cek is refused."""
        if self._link_unavailable:
            return True
        if self._down_since is None:
            return False
        return (self._now() - self._down_since).total_seconds() * 1000 >= self.config.offline_after_ms

    def set_link_state(self, available: bool) -> None:
        """The driver knows the link: False, there is none (no signal; the link simulator's
        offline profile): offline at once. True: there is one (failures still count)."""
        self._link_unavailable = not available

    def note_link(self, up: bool) -> None:
        """An exchange or a connection attempt outside the core's flows succeeded or failed
        (the core sees its own answers and timeouts already)."""
        if up:
            self._down_since = None
        elif self._down_since is None:
            self._down_since = self._now()

    # -- card flow -------------------------------------------------------------------------------

    def insert_card(self, pan: str) -> list[Command]:
        if self._state is not State.IDLE:
            return self._wrong_state("Memasukkan kartu")
        pan = pan.strip()
        if error := pan_error(pan):
            return [Reject(error)]
        if self.card_prefix and not pan.startswith(self.card_prefix):
            return [Reject(f"Kartu bank lain: EDC {self.bank_name} hanya melayani kartu KKS {self.bank_name}")]
        self._card = _Card(pan)
        return self._enter(State.CARD)

    def choose_inquiry(self) -> list[Command]:
        """Cek: balance inquiry; the PIN comes next. Refused offline: only the bank knows."""
        if self._state is State.CARD and self.offline:
            return [Reject(offline.TEXT_INQUIRY_OFFLINE)]
        return self._choose(Flow.INQUIRY, State.PIN)

    def choose_purchase(self) -> list[Command]:
        """Bayar: purchase; the amount comes next. Offline it needs a stored card list."""
        if self._state is State.CARD and self.offline and self._batches.card_list() is None:
            return [Reject(offline.TEXT_NO_LIST)]
        return self._choose(Flow.PURCHASE, State.AMOUNT)

    def enter_amount(self, text: str) -> list[Command]:
        """The amount; then the PIN, or offline the holder's NIK."""
        if self._state is not State.AMOUNT or self._card is None:
            return self._wrong_state("Input nominal")
        amount, error = parse_amount(text)
        if error:
            return [Reject(error)]
        self._card.amount = amount
        self._card.offline = self.offline
        return self._enter(State.ID if self._card.offline else State.PIN)

    def enter_nik(self, text: str) -> list[Command]:
        """Offline: the NIK from the holder's KTP or KK; the terminal decides at once."""
        if self._state is not State.ID or self._card is None:
            return self._wrong_state("Input NIK")
        if error := offline.nik_error(text):
            return [Reject(error)]
        return self._offline_sale(self._card, text.strip())

    def enter_pin(self, pin: str) -> list[Command]:
        if self._state is not State.PIN or self._card is None:
            return self._wrong_state("Input PIN")
        if error := pin_error(pin):
            return [Reject(error)]
        if self._keys is None:
            return [Reject(TEXT_NOT_SIGNED_ON)]
        return self._send_card_request(self._card, pin, self._keys)

    def cancel(self) -> list[Command]:
        """Abandon the card flow before anything was sent."""
        if self._state not in (State.CARD, State.AMOUNT, State.ID, State.PIN):
            return self._wrong_state("Batal")
        self._card = None
        return [Show("Transaksi dibatalkan"), *self._enter(State.IDLE)]

    def finish(self) -> list[Command]:
        """The result was seen (and the card taken): back to IDLE."""
        if self._state is not State.RESULT:
            return self._wrong_state("Selesai")
        self._card = None
        return self._enter(State.IDLE)

    # -- network flows ---------------------------------------------------------------------------

    def sign_on(self, exchange_keys: bool = True) -> list[Command]:
        """0800 sign-on; with `exchange_keys`, a key exchange follows an approved sign-on."""
        if self._state is not State.IDLE:
            return self._wrong_state("Sign-on")
        return self._network(Flow.SIGN_ON, SIGN_ON, then_keys=exchange_keys)

    def exchange_keys(self) -> list[Command]:
        """New working keys: a sign-on, whose challenge the key exchange then answers."""
        if self._state is not State.IDLE:
            return self._wrong_state("Tukar kunci")
        return self.sign_on(exchange_keys=True)

    def echo(self) -> list[Command]:
        if self._state is not State.IDLE:
            return self._wrong_state("Tes koneksi")
        return self._network(Flow.ECHO, ECHO)

    def send_pending_reversals(self) -> list[Command]:
        """Send stored reversals (as 0401 repeats) one by one; stop at the first unanswered."""
        if self._state is not State.IDLE:
            return self._wrong_state("Kirim pembatalan tertunda")
        if self._keys is None:
            return [Reject(TEXT_NOT_SIGNED_ON)]
        self._flush = _Flush()
        return self._next_pending()

    def reverse_last(self) -> list[Command]:
        """Void the last approved purchase of this terminal (0400; 0401 if already pending)."""
        if self._state is not State.IDLE:
            return self._wrong_state("Pembatalan")
        last = self.stored.last_purchase
        if last is None:
            return [Reject("Tidak ada transaksi pembelian yang dapat dibatalkan")]
        if self._keys is None:
            return [Reject(TEXT_NOT_SIGNED_ON)]
        if self._batches.batch_closed(int(last.request.get("60") or 0)):
            self.stored.last_purchase = None
            self._save()
            return [Reject(TEXT_SETTLED)]
        entry = self._pending_for(last.request)
        if entry is None:
            entry = self._store_reversal(last.request)
            request = entry.message
        else:
            request = self._repeat_of(entry)
        flight = _Flight(Flow.REVERSAL, request, self.config.reversal_timeout_ms, original=last.request, voided=last)
        return self._start(flight)

    # -- upload and settlement ----------------------------------------------------------------------

    def start_upload(self) -> BatchJob | Reject:
        """Send the stored offline advices (after the pending reversals): a job for the driver."""
        return self._start_job(JobKind.UPLOAD)

    def start_settlement(self) -> BatchJob | Reject:
        """Pending reversals, advices, then close every batch not closed yet, oldest first."""
        return self._start_job(JobKind.SETTLE)

    def _start_job(self, kind: JobKind) -> BatchJob | Reject:
        if self._state is not State.IDLE:
            return self._wrong_state("Kirim data / settlement")[0]  # type: ignore[return-value]
        if self._keys is None:
            return Reject(TEXT_NOT_SIGNED_ON)
        if self._link_unavailable:
            return Reject(TEXT_NO_LINK_SETTLE)
        self._state = State.PROCESSING
        self.outcome = None
        host = _CoreJobHost(self, Flow.SETTLEMENT if kind is JobKind.SETTLE else Flow.UPLOAD)
        self._job = BatchJob(host, self._batches, kind, self.config.network_timeout_ms, self.config.reversal_timeout_ms)
        return self._job

    def _job_finished(self, flow: Flow, result: JobResult) -> None:
        self._job = None
        rc_text = rc_table.lookup(result.rc).text_id
        self._finish(Outcome(flow, result.rc, rc_text, result.message))

    # -- events from the driver ----------------------------------------------------------------

    def on_response(self, message: Message, raw: bytes) -> list[Command]:
        """An answer arrived: `message` decoded from `raw` (the message bytes, no TPDU).
        Answers with another STAN than the message in flight are ignored (empty list); one with
        its STAN but not the expected MTI is no valid answer, like a timeout."""
        flight = self._flight
        if flight is None or message.get("11") != flight.stan:
            return []
        self.note_link(True)
        if message.get("t") != flight.expect_mti:  # our STAN under another MTI (0211 for 0200): no valid answer
            return self._no_answer(flight)
        if flight.flow is Flow.CARD_LIST and not self._mac_ok(message, raw):
            return self._card_list_failed("MAC salah")  # keep the new keys: online still works
        if flight.flow not in NETWORK_FLOWS and not self._mac_ok(message, raw):
            self._resign_on = True  # our keys and the switch's differ: sign on again after this flow
            return self._no_answer(flight)  # a bad MAC is no answer at all
        handlers = {
            Flow.SIGN_ON: self._on_sign_on,
            Flow.KEY_EXCHANGE: self._on_keys,
            Flow.ECHO: self._on_echo,
            Flow.INQUIRY: self._on_inquiry,
            Flow.PURCHASE: self._on_purchase,
            Flow.REVERSAL: self._on_reversal,
            Flow.PENDING: self._on_pending,
            Flow.CARD_LIST: self._on_card_list,
        }
        return handlers[flight.flow](flight, message)

    def on_timeout(self, stan: str | None = None) -> list[Command]:
        """No (valid) answer within the Send's timeout. A `stan` of another message is ignored."""
        flight = self._flight
        if flight is None or (stan is not None and stan != flight.stan):
            return []
        self.note_link(False)
        return self._no_answer(flight)

    # -- internals: state and persistence ---------------------------------------------------------

    def _enter(self, state: State) -> list[Command]:
        self._state = state
        return [Show(self.prompt)]

    def _wrong_state(self, action: str) -> list[Command]:
        return [Reject(f"{action} tidak dapat dilakukan sekarang (layar: {PROMPTS[self._state]})")]

    def _choose(self, flow: Flow, next_state: State) -> list[Command]:
        if self._state is not State.CARD or self._card is None:
            return self._wrong_state("Pilih transaksi")
        self._card.flow = flow
        return self._enter(next_state)

    def _save(self) -> None:
        self._saver.save(self.stored)

    def _sync_batch(self, open_batch: int) -> None:
        """Keep the state file's batch number in step with the batch store's open batch."""
        if self.stored.batch != open_batch:
            self.stored.batch = open_batch
            self._save()

    def _batch_for(self, amount_idr: int, now: datetime) -> int:
        """Field 60 of a new sale: the open batch, or the next when this sale would not fit."""
        batch = self._batches.batch_for(amount_idr, now)
        self._sync_batch(batch)
        return batch

    def _next_stan(self) -> str:
        stan = self.stored.next_stan()
        self._save()
        return stan

    def _now(self) -> datetime:
        return self._clock.now()

    def _load_keys(self, wrapped: WorkingKeys | None) -> _Keys | None:
        if wrapped is None:
            return None
        try:
            tpk, tak = keylib.unwrap(self._tmk, wrapped.tpk), keylib.unwrap(self._tmk, wrapped.tak)
        except ValueError:
            return None
        if keylib.kcv(tpk) != wrapped.tpk_kcv or keylib.kcv(tak) != wrapped.tak_kcv:
            return None  # stored under another TMK: a sign-on fetches new keys
        return _Keys(tpk, tak)

    def _drop_keys(self) -> None:
        """Forget the working keys so that the next connection signs on first."""
        self._resign_on = False
        self._keys = None
        self.stored.keys = None
        self._save()

    def _recover_in_flight_purchase(self) -> None:
        """A purchase sent before a crash, never answered: reverse it like a timeout."""
        original = self.stored.in_flight_purchase
        if original is None:
            return
        self._store_reversal(original)

    # -- internals: sending ---------------------------------------------------------------------

    def _start(self, flight: _Flight) -> list[Command]:
        self._flight = flight
        self._state = State.PROCESSING
        return [Show(TEXT_WAIT), self._send_command(flight)]

    def _send_command(self, flight: _Flight) -> Send:
        if flight.flow is Flow.KEY_EXCHANGE:  # proves that this terminal holds its master key
            data = encode_with_mac(flight.request, keylib.key_exchange_key(self._tmk))
        elif flight.flow in NETWORK_FLOWS:
            data = encode(flight.request)  # sign-on and echo carry no MAC
        else:
            assert self._keys is not None
            data = encode_with_mac(flight.request, self._keys.tak)
        return Send(flight.request, data, flight.expect_mti, flight.stan, flight.timeout_ms)

    def _network(self, flow: Flow, code: str, then_keys: bool = False) -> list[Command]:
        request = protocol.network_request(self.terminal, code, self._next_stan(), self._now())
        return self._start(_Flight(flow, request, self.config.network_timeout_ms, then_keys=then_keys))

    def _send_card_request(self, card: _Card, pin: str, keys: _Keys) -> list[Command]:
        stan, now = self._next_stan(), self._now()
        block = pinblock.encipher(keys.tpk, pin, card.pan).hex().upper()
        batch = self.stored.batch
        if card.flow is Flow.INQUIRY:
            request = protocol.inquiry_request(self.terminal, stan, now, card.pan, block, batch)
        else:
            assert card.amount is not None
            batch = self._batch_for(card.amount, now)
            request = protocol.purchase_request(self.terminal, stan, now, card.pan, card.amount, block, batch)
            self.stored.in_flight_purchase = without_pin(request)
            self._save()
        assert card.flow is not None
        return self._start(_Flight(card.flow, request, self.config.response_timeout_ms))

    def _mac_ok(self, message: Message, raw: bytes) -> bool:
        return self._keys is not None and mac_valid(raw, message, self._keys.tak)

    # -- internals: reversals -------------------------------------------------------------------

    def _store_reversal(self, original: Message) -> PendingReversal:
        """Build the 0400 for `original`, store it as pending (before it is sent)."""
        now = self._now()
        message = protocol.reversal_request(without_pin(original), self.stored.next_stan(), now)
        entry = PendingReversal(message=message, created_at=now.isoformat(timespec="seconds"), attempts=1)
        self.stored.pending_reversals.append(entry)
        self.stored.in_flight_purchase = None
        self._save()
        return entry

    def _repeat_of(self, entry: PendingReversal) -> Message:
        """The stored reversal as a 0401 repeat: the same fields, one more attempt counted."""
        entry.attempts += 1
        self._save()
        return {**entry.message, "t": REVERSAL_REPEAT}

    def _pending_for(self, original: Message) -> PendingReversal | None:
        data = protocol.original_data(original)
        return next((p for p in self.stored.pending_reversals if p.original_data == data), None)

    def _entry(self, stan: str) -> PendingReversal | None:
        return next((p for p in self.stored.pending_reversals if p.stan == stan), None)

    def _settle(self, stan: str, rc: str, answer: Message | None = None) -> None:
        """The switch answered reversal `stan` with `rc`: it is no longer pending. An approved
        one goes to the batch store first (a void of a stored purchase counts in its batch)."""
        entry = self._entry(stan)
        if entry is None:
            return
        if rc == rc_table.APPROVED and answer is not None:
            self._sync_batch(self._batches.add_reversal(entry.message, answer, self._now()).open_batch)
        self.stored.pending_reversals.remove(entry)
        last = self.stored.last_purchase
        if rc == rc_table.APPROVED and last and protocol.original_data(last.request) == entry.original_data:
            self.stored.last_purchase = None
            self.stored.append_journal(self._journal_entry(JOURNAL_VOID, last.request, last.rrn, last.approval_code))
        self._save()

    def _journal_entry(self, kind: str, request: Message, rrn: str, approval_code: str) -> JournalEntry:
        return JournalEntry(
            kind=kind,
            stan=request["11"],
            rrn=rrn,
            approval_code=approval_code,
            amount_idr=from_iso_minor(request["4"]),
            pan_masked=mask_pan(request["2"]),
            at=self._now().isoformat(timespec="seconds"),
            batch=int(request.get("60") or self.stored.batch),
        )

    def _auto_reverse(self, flight: _Flight) -> list[Command]:
        entry = self._store_reversal(flight.request)
        reversal = _Flight(Flow.REVERSAL, entry.message, self.config.reversal_timeout_ms, original=flight.request, auto=True)
        return [Show(TEXT_REVERSING), *self._start(reversal)]

    def _repeat_reversal(self, flight: _Flight) -> list[Command]:
        if flight.attempts > self.config.reversal_repeats:
            return self._reversal_unanswered(flight)
        entry = self._entry(flight.stan)
        request = self._repeat_of(entry) if entry else {**flight.request, "t": REVERSAL_REPEAT}
        return self._start(replace(flight, request=request, attempts=flight.attempts + 1))

    def _reversal_unanswered(self, flight: _Flight) -> list[Command]:
        if flight.auto:
            return self._purchase_reversed(flight, "pending")
        return self._finish_reversal(flight, NO_ANSWER_RC, None, note=TEXT_REVERSAL_STORED)

    def _purchase_reversed(self, flight: _Flight, reversal: str) -> list[Command]:
        note = TEXT_BALANCE_RETURNED if reversal == "reversed" else f"{TEXT_BALANCE_RETURNED} {TEXT_REVERSAL_STORED}"
        original = flight.original or flight.request
        return self._finish_card(Flow.PURCHASE, original, NO_ANSWER_RC, None, note=note, reversal=reversal)

    # -- internals: answers ----------------------------------------------------------------------

    def _no_answer(self, flight: _Flight) -> list[Command]:
        if flight.flow in NETWORK_FLOWS:
            return self._finish_network(flight, NO_ANSWER_RC)
        if flight.flow is Flow.CARD_LIST:
            return self._card_list_failed("tidak ada jawaban")
        if flight.flow is Flow.INQUIRY:
            return self._finish_card(Flow.INQUIRY, flight.request, NO_ANSWER_RC, None)
        if flight.flow is Flow.PURCHASE:
            return self._auto_reverse(flight)
        if flight.flow is Flow.REVERSAL:
            return self._repeat_reversal(flight)
        return self._finish_flush()  # PENDING: the link is down, keep the rest for later

    def _on_sign_on(self, flight: _Flight, message: Message) -> list[Command]:
        rc = message.get("39", rc_table.FORMAT_ERROR)
        if rc != rc_table.APPROVED or not flight.then_keys:
            return self._finish_network(flight, rc)
        challenge = protocol.challenge_of(message)
        if challenge is None:
            return self._finish_network(flight, KEY_ERROR_RC, "Sign-on tidak memberi tantangan kunci: tukar kunci batal")
        request = protocol.key_exchange_request(self.terminal, self._next_stan(), self._now(), challenge)
        return self._start(_Flight(Flow.KEY_EXCHANGE, request, self.config.network_timeout_ms))

    def _on_echo(self, flight: _Flight, message: Message) -> list[Command]:
        return self._finish_network(flight, message.get("39", rc_table.FORMAT_ERROR))

    def _on_keys(self, flight: _Flight, message: Message) -> list[Command]:
        rc = message.get("39", rc_table.FORMAT_ERROR)
        if rc != rc_table.APPROVED:
            return self._finish_network(flight, rc)
        error = self._install_keys(message.get("48", ""))
        if error:
            return self._finish_network(flight, KEY_ERROR_RC, error)
        if self.config.card_list:
            self._download = _ListDownload()
            return self._request_list_page(1)
        return self._finish_network(flight, rc)

    # -- internals: the offline card list (0800 code 360) -------------------------------------------

    def _request_list_page(self, page: int) -> list[Command]:
        request = protocol.card_list_request(self.terminal, self._next_stan(), self._now(), page)
        return self._start(_Flight(Flow.CARD_LIST, request, self.config.network_timeout_ms))

    def _on_card_list(self, flight: _Flight, message: Message) -> list[Command]:
        rc = message.get("39", rc_table.FORMAT_ERROR)
        if rc != rc_table.APPROVED:
            return self._card_list_failed(f"RC {rc}")
        page = int(flight.request["60"])
        error = self._take_page(page, message)
        if error:
            return self._card_list_failed(error)
        download = self._download
        assert download is not None and download.header is not None
        if page < download.header.pages:
            return self._request_list_page(page + 1)
        info = self._batches.replace_card_list(download.header, download.hot, download.ids, self._now())
        self._download = None
        text = f"{NETWORK_SUCCESS[Flow.KEY_EXCHANGE]}, daftar kartu offline dimuat ({info.id_count} kartu, {info.hot_count} diblokir)"
        return self._finish_sign_on(flight, text)

    def _take_page(self, page: int, message: Message) -> str | None:
        """Check one page and keep its references; the reason when it is not acceptable."""
        download = self._download
        if download is None:
            return "halaman tanpa permintaan"
        if message.get("60") != shared_offline.page_field(page):
            return f"halaman {message.get('60')!r} bukan yang diminta ({page})"
        try:
            header = shared_offline.parse_list_header_field(message.get("48", ""))
            hot = shared_offline.split_refs(message.get("61", ""), "61")
            ids = shared_offline.split_refs(message.get("62", ""), "62")
        except MessageError as exc:
            return f"format salah: {exc}"
        if len(hot) > shared_offline.REFS_PER_PAGE_MAX or len(ids) > shared_offline.REFS_PER_PAGE_MAX:
            return "terlalu banyak referensi dalam satu halaman"
        if download.header is None:
            if offline.unwrap_list_key(self._tmk, header) is None:
                return "kunci daftar kartu tidak cocok (KCV)"
            download.header = header
        elif header != download.header:
            return "kepala daftar berubah di tengah unduhan"
        download.hot += hot
        download.ids += ids
        return None

    def _card_list_failed(self, reason: str) -> list[Command]:
        """The card list did not come: the sign-on stands (online works), with a warning."""
        self._download = None
        assert self._flight is not None
        warning = f"{TEXT_LIST_NOT_LOADED} ({reason})"
        text = f"{NETWORK_SUCCESS[Flow.KEY_EXCHANGE]}. Peringatan: {warning}; transaksi offline belum dapat dilayani"
        return self._finish_sign_on(self._flight, text, warning)

    def _finish_sign_on(self, flight: _Flight, text: str, warning: str | None = None) -> list[Command]:
        rc = rc_table.APPROVED
        outcome = Outcome(Flow.KEY_EXCHANGE, rc, rc_table.lookup(rc).text_id, text, stan=flight.stan, warning=warning)
        return self._finish(outcome)

    def _list_key(self, info: CardListInfo) -> bytes | None:
        """The stored list's key, unwrapped under the TMK (once per list)."""
        if self._list_key_cache is None or self._list_key_cache[0] != info.id:
            header = shared_offline.ListHeader(info.key_wrapped, info.key_check, info.offline_limit_idr, info.pages)
            self._list_key_cache = (info.id, offline.unwrap_list_key(self._tmk, header))
        return self._list_key_cache[1]

    def offline_allowance_idr(self) -> int | None:
        """Offline, what the card in the slot may still spend at this terminal this month (the
        offline limit less what this terminal approved offline for it); None when the terminal
        is online, holds no card or no card list, or the card is on the hot list. The shop's
        cart is bounded by it where no balance can be read."""
        if not self.offline or self._card is None:
            return None
        facts, _ = self._offline_facts(self._card.pan, "")
        if not facts.list_loaded or facts.hot_listed:
            return None
        return facts.remaining_idr

    # -- internals: offline sales ------------------------------------------------------------------

    def _offline_facts(self, pan: str, nik: str) -> tuple[offline.OfflineFacts, offline.CardRefs | None]:
        info = self._batches.card_list()
        key = self._list_key(info) if info is not None else None
        if info is None or key is None:
            return offline.OfflineFacts(list_loaded=False), None
        refs = offline.card_refs(key, pan, nik)
        facts = offline.OfflineFacts(
            list_loaded=True,
            hot_listed=self._batches.listed(info.id, HOT, refs.hot),
            id_matches=self._batches.listed(info.id, ID, refs.id),
            limit_idr=info.offline_limit_idr,
            spent_idr=self._batches.offline_spent(refs.tally, period_of(self._now())),
        )
        return facts, refs

    def _offline_sale(self, card: _Card, nik: str) -> list[Command]:
        """Decide; when approved, build the 0220 once and store it before anything is shown."""
        assert card.amount is not None
        facts, refs = self._offline_facts(card.pan, nik)
        decision = offline.decide(facts, card.amount)
        if not decision.approved or refs is None:
            return self._offline_refused(card, decision)
        stan, now, amount = self._next_stan(), self._now(), card.amount
        approval = shared_offline.offline_approval_code(stan)

        def build(batch: int) -> Message:
            return protocol.advice_request(self.terminal, stan, now, card.pan, amount, approval, batch)

        stored, advice = self._batches.sell_offline(build, amount, refs.tally, period_of(now), now)
        batch = stored.batch
        self.stored.batch = stored.open_batch
        self.stored.append_journal(self._journal_entry(JOURNAL_OFFLINE, advice, "", approval))
        self._save()
        rc_text = rc_table.lookup(rc_table.APPROVED).text_id
        fields = {"rrn": None, "approval_code": approval, "balance": None, "amount": card.amount}
        receipt = self._receipt(
            KIND_PURCHASE, advice, rc_table.APPROVED, rc_text, fields, offline.TEXT_OFFLINE_APPROVED, batch=batch, offline=True
        )
        message = f"{rc_text}. {offline.TEXT_OFFLINE_APPROVED}"
        outcome = Outcome(
            Flow.PURCHASE, rc_table.APPROVED, rc_text, message, stan=stan, pan_masked=mask_pan(card.pan), receipt=receipt,
            offline=True, **fields,
        )  # fmt: skip
        return self._finish(outcome)

    def _offline_refused(self, card: _Card, decision: offline.OfflineDecision) -> list[Command]:
        rc_text = rc_table.lookup(decision.rc).text_id
        outcome = Outcome(
            Flow.PURCHASE, decision.rc, rc_text, decision.reason, amount=card.amount, pan_masked=mask_pan(card.pan), offline=True
        )
        return self._finish(outcome)

    def _install_keys(self, field48: str) -> str | None:
        """Unwrap and check the new TPK and TAK; store them wrapped. The reason on failure."""
        try:
            tpk_wrapped, tak_wrapped, tpk_kcv, tak_kcv = protocol.parse_keys_field(field48)
        except MessageError:
            return "Kunci kerja tidak diterima: format field 48 salah"
        wrapped = WorkingKeys(tpk_wrapped, tak_wrapped, tpk_kcv.upper(), tak_kcv.upper())
        keys = self._load_keys(wrapped)
        if keys is None:
            return "Kunci kerja tidak diterima: KCV tidak cocok"
        self._keys = keys
        self.stored.keys = wrapped
        self._save()
        return None

    def _on_inquiry(self, flight: _Flight, message: Message) -> list[Command]:
        return self._finish_card(Flow.INQUIRY, flight.request, message.get("39", rc_table.FORMAT_ERROR), message)

    def _on_purchase(self, flight: _Flight, message: Message) -> list[Command]:
        rc = message.get("39", rc_table.FORMAT_ERROR)
        if rc == rc_table.APPROVED:  # the batch store first: it is what settlement counts
            request, rrn, approval_code = without_pin(flight.request), message.get("37", ""), message.get("38", "")
            self._sync_batch(self._batches.add_purchase(request, rrn, approval_code, self._now()).open_batch)
        self.stored.in_flight_purchase = None
        if rc == rc_table.APPROVED:
            self.stored.last_purchase = LastPurchase(
                request=without_pin(flight.request),
                rrn=message.get("37", ""),
                approval_code=message.get("38", ""),
                approved_at=self._now().isoformat(timespec="seconds"),
            )
            last = self.stored.last_purchase
            self.stored.append_journal(self._journal_entry(JOURNAL_PURCHASE, last.request, last.rrn, last.approval_code))
        self._save()
        return self._finish_card(Flow.PURCHASE, flight.request, rc, message)

    def _on_reversal(self, flight: _Flight, message: Message) -> list[Command]:
        rc = message.get("39", rc_table.FORMAT_ERROR)
        if rc in REVERSAL_RETRY_RCS:
            return self._repeat_reversal(flight)
        self._settle(flight.stan, rc, message)
        if flight.auto:
            return self._purchase_reversed(flight, "reversed")
        return self._finish_reversal(flight, rc, message)

    def _on_pending(self, flight: _Flight, message: Message) -> list[Command]:
        rc = message.get("39", rc_table.FORMAT_ERROR)
        if rc in REVERSAL_RETRY_RCS:
            return self._finish_flush()
        self._settle(flight.stan, rc, message)
        assert self._flush is not None
        self._flush.sent += 1
        return self._next_pending()

    def _next_pending(self) -> list[Command]:
        if not self.stored.pending_reversals:
            return self._finish_flush()
        entry = self.stored.pending_reversals[0]
        return self._start(_Flight(Flow.PENDING, self._repeat_of(entry), self.config.reversal_timeout_ms))

    # -- internals: outcomes -----------------------------------------------------------------------

    def _finish(self, outcome: Outcome) -> list[Command]:
        self._flight = None
        self._flush = None
        if self._resign_on:
            self._drop_keys()
        self.outcome = outcome
        self._state = State.RESULT
        if outcome.receipt:
            self.stored.last_receipt = outcome.receipt
            self._save()
        return [Show(self.prompt), Finished(outcome)]

    def _finish_network(self, flight: _Flight, rc: str, message: str | None = None) -> list[Command]:
        rc_text = rc_table.lookup(rc).text_id
        if message is None:
            message = NETWORK_SUCCESS[flight.flow] if rc == rc_table.APPROVED else rc_text
        return self._finish(Outcome(flight.flow, rc, rc_text, message, stan=flight.stan))

    def _finish_flush(self) -> list[Command]:
        sent = self._flush.sent if self._flush else 0
        left = len(self.stored.pending_reversals)
        rc = rc_table.APPROVED if left == 0 else NO_ANSWER_RC
        message = f"{sent} pembatalan terkirim, {left} masih tertunda"
        return self._finish(Outcome(Flow.PENDING, rc, rc_table.lookup(rc).text_id, message))

    def _receipt(
        self,
        kind: str,
        request: Message,
        rc: str,
        rc_text: str,
        fields: dict,
        note: str | None,
        advice: str | None = None,
        batch: int | None = None,
        offline: bool = False,
    ) -> str:
        data = ReceiptData(
            bank_name=self.bank_name,
            merchant_id=self.terminal.mid,
            tid=self.terminal.tid,
            at=self._now(),
            kind=kind,
            pan=request["2"],
            rc=rc,
            rc_text=rc_text,
            stan=request["11"],
            batch=self.stored.batch if batch is None else batch,
            note=note,
            advice=advice,
            offline=offline,
            **fields,
        )
        return render(data)

    def _finish_card(
        self,
        flow: Flow,
        request: Message,
        rc: str,
        answer: Message | None,
        note: str | None = None,
        reversal: str | None = None,
    ) -> list[Command]:
        fields = _answer_fields(answer or {})
        fields["amount"] = from_iso_minor(request["4"]) if flow is Flow.PURCHASE else None
        rc_text = rc_table.lookup(rc).text_id
        kind = KIND_INQUIRY if flow is Flow.INQUIRY else KIND_PURCHASE
        receipt = self._receipt(kind, request, rc, rc_text, fields, note, rc_table.advice(rc))
        # A purchase reversed for want of an answer: the screen leads with what happened.
        message = (note if reversal else f"{rc_text}. {note}") if note else rc_text
        outcome = Outcome(
            flow, rc, rc_text, message, stan=request["11"], pan_masked=mask_pan(request["2"]), receipt=receipt, reversal=reversal, **fields
        )
        return self._finish(outcome)

    def _finish_reversal(self, flight: _Flight, rc: str, answer: Message | None, note: str | None = None) -> list[Command]:
        original = flight.original or flight.request
        fields = _answer_fields(answer or {})
        fields["amount"] = from_iso_minor(original["4"])
        if flight.voided is not None:
            fields["rrn"] = fields["rrn"] or flight.voided.rrn or None
            fields["approval_code"] = fields["approval_code"] or flight.voided.approval_code or None
        rc_text = rc_table.lookup(rc).text_id
        receipt = self._receipt(KIND_REVERSAL, {**original, "11": flight.stan}, rc, rc_text, fields, note)
        message = f"{rc_text}. {note}" if note else rc_text
        masked = mask_pan(original["2"])
        voided_rrn = flight.voided.rrn if flight.voided is not None else None
        outcome = Outcome(
            Flow.REVERSAL, rc, rc_text, message, stan=flight.stan, pan_masked=masked, receipt=receipt, voided_rrn=voided_rrn, **fields
        )
        return self._finish(outcome)


def _answer_fields(answer: Message) -> dict:
    """RRN, approval code and balance from an answer (missing or malformed ones are None)."""
    balance = None
    if "54" in answer:
        try:
            balance = protocol.parse_balance_field(answer["54"])
        except (MessageError, ValueError):
            balance = None
    return {"rrn": answer.get("37") or None, "approval_code": answer.get("38") or None, "balance": balance}


def _default_batches(saver: StateSaver, tid: str, tmk: bytes) -> BatchStore:
    opener = getattr(saver, "open_batches", None)
    return opener() if callable(opener) else BatchStore.in_memory(tid, tmk)


class _CoreJobHost:
    """The core as a `BatchJob` sees it (edc_terminal.batchjob.JobHost)."""

    def __init__(self, core: EdcCore, flow: Flow) -> None:
        assert core._keys is not None
        self.terminal = core.terminal
        self._core = core
        self._flow = flow
        self._tak = core._keys.tak

    def now(self) -> datetime:
        return self._core._now()

    def next_stan(self) -> str:
        return self._core._next_stan()

    def encode(self, message: Message) -> bytes:
        return encode_with_mac(message, self._tak)

    def mac_ok(self, message: Message, raw: bytes) -> bool:
        ok = mac_valid(raw, message, self._tak)
        if not ok:
            self._core._resign_on = True  # our keys and the switch's differ: sign on again after the job
        return ok

    def pending_reversals(self) -> list[Message]:
        return [self._core._repeat_of(entry) for entry in list(self._core.stored.pending_reversals)]

    def reversal_answered(self, stan: str, rc: str, answer: Message) -> None:
        self._core._settle(stan, rc, answer)

    def batch_closed(self, number: int, open_batch: int) -> None:
        """Sales of a closed batch can no longer be voided."""
        core = self._core
        last = core.stored.last_purchase
        if last is not None and int(last.request.get("60") or 0) == number:
            core.stored.last_purchase = None
        core.stored.batch = open_batch
        core._save()

    def link(self, up: bool) -> None:
        self._core.note_link(up)

    def finished(self, result: JobResult) -> None:
        self._core._job_finished(self._flow, result)
