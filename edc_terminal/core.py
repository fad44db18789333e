"""The EDC terminal's core: a synchronous state machine with no sockets, no asyncio and an
injected clock, shared by the headless driver and the Textual UI.

Card flow (Datang, Cek / Bayar, Terima):

    IDLE "Masukkan kartu" --insert_card--> CARD --choose_inquiry--> PIN
                                            CARD --choose_purchase--> AMOUNT --enter_amount--> PIN
    PIN --enter_pin--> PROCESSING "Mohon tunggu..." --on_response / on_timeout--> RESULT --finish--> IDLE

Network flows start from IDLE: `sign_on` (then key exchange), `exchange_keys`, `echo`,
`send_pending_reversals`, and `reverse_last` (void of the last approved purchase).

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
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from shared import keys as keylib
from shared import pinblock, protocol
from shared import rc as rc_table
from shared.banks import demo_terminal
from shared.cards import PAN_LENGTH_MAX, PAN_LENGTH_MIN, luhn_valid, mask_pan
from shared.clock import Clock
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

from edc_terminal.receipt import KIND_INQUIRY, KIND_PURCHASE, KIND_REVERSAL, ReceiptData, render
from edc_terminal.store import JournalEntry, LastPurchase, PendingReversal, TerminalState, WorkingKeys

NO_ANSWER_RC = rc_table.ISSUER_UNAVAILABLE
KEY_ERROR_RC = rc_table.SYSTEM_ERROR
# A reversal answered with one of these is not settled: it is repeated, then kept pending. Any
# other answer settles it (94 included: the switch already holds a reversal with that STAN).
REVERSAL_RETRY_RCS = (rc_table.ISSUER_UNAVAILABLE, rc_table.SYSTEM_ERROR)

TEXT_WAIT = "Mohon tunggu..."
TEXT_REVERSING = "Tidak ada jawaban. Membatalkan transaksi, mohon tunggu..."
TEXT_BALANCE_RETURNED = "Transaksi dibatalkan, saldo akan dikembalikan."
TEXT_REVERSAL_STORED = "Pembatalan disimpan dan dikirim ulang otomatis saat koneksi berikutnya."
TEXT_NOT_SIGNED_ON = "Terminal belum sign-on. Lakukan sign-on terlebih dahulu."


class StateSaver(Protocol):
    def save(self, state: TerminalState) -> None: ...


class State(enum.Enum):
    IDLE = "idle"
    CARD = "card"
    AMOUNT = "amount"
    PIN = "pin"
    PROCESSING = "processing"
    RESULT = "result"


PROMPTS: dict[State, str] = {
    State.IDLE: "Masukkan kartu",
    State.CARD: "Pilih transaksi: CEK SALDO atau BAYAR",
    State.AMOUNT: "Masukkan nominal",
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

    @classmethod
    def uniform(cls, timeout_ms: int, reversal_repeats: int = 2) -> CoreConfig:
        return cls(timeout_ms, timeout_ms, timeout_ms, reversal_repeats)


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
class Send:
    """Send `data` (the encoded `message`, MAC included when needed); the answer is the message
    with MTI `expect_mti` and STAN `stan`; report `on_timeout` after `timeout_ms` without one."""

    message: Message
    data: bytes
    expect_mti: str
    stan: str
    timeout_ms: int


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


@dataclass
class _Card:
    pan: str
    flow: Flow | None = None
    amount: int | None = None


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
    ) -> None:
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
        self._recover_in_flight_purchase()

    @classmethod
    def for_demo_terminal(
        cls, tid: str, stored: TerminalState, saver: StateSaver, clock: Clock, config: CoreConfig = CoreConfig()
    ) -> EdcCore:
        """A demo terminal (BNI00001..BTN00048) with its e-Warong id and demo master key."""
        found = demo_terminal(tid)
        if found is None:
            raise ValueError(f"Terminal {tid!r} tidak dikenal: gunakan terminal demo seperti BNI00001 (001-048)")
        bank, merchant_id = found
        tmk = bytes.fromhex(keylib.demo_terminal_master_key_hex(tid))
        return cls(protocol.Terminal(tid, merchant_id), bank.name, tmk, stored, saver, clock, config, bank.iin)

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
        return CardView(mask_pan(self._card.pan), self._card.flow, self._card.amount)

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
        """Cek: balance inquiry; the PIN comes next."""
        return self._choose(Flow.INQUIRY, State.PIN)

    def choose_purchase(self) -> list[Command]:
        """Bayar: purchase; the amount comes next."""
        return self._choose(Flow.PURCHASE, State.AMOUNT)

    def enter_amount(self, text: str) -> list[Command]:
        if self._state is not State.AMOUNT or self._card is None:
            return self._wrong_state("Input nominal")
        amount, error = parse_amount(text)
        if error:
            return [Reject(error)]
        self._card.amount = amount
        return self._enter(State.PIN)

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
        if self._state not in (State.CARD, State.AMOUNT, State.PIN):
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
        entry = self._pending_for(last.request)
        if entry is None:
            entry = self._store_reversal(last.request)
            request = entry.message
        else:
            request = self._repeat_of(entry)
        flight = _Flight(Flow.REVERSAL, request, self.config.reversal_timeout_ms, original=last.request, voided=last)
        return self._start(flight)

    # -- events from the driver ----------------------------------------------------------------

    def on_response(self, message: Message, raw: bytes) -> list[Command]:
        """An answer arrived: `message` decoded from `raw` (the message bytes, no TPDU).
        Answers with another STAN than the message in flight are ignored (empty list); one with
        its STAN but not the expected MTI is no valid answer, like a timeout."""
        flight = self._flight
        if flight is None or message.get("11") != flight.stan:
            return []
        if message.get("t") != flight.expect_mti:  # our STAN under another MTI (0211 for 0200): no valid answer
            return self._no_answer(flight)
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
        }
        return handlers[flight.flow](flight, message)

    def on_timeout(self, stan: str | None = None) -> list[Command]:
        """No (valid) answer within the Send's timeout. A `stan` of another message is ignored."""
        flight = self._flight
        if flight is None or (stan is not None and stan != flight.stan):
            return []
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

    def _settle(self, stan: str, rc: str) -> None:
        """The switch answered reversal `stan` with `rc`: it is no longer pending."""
        entry = self._entry(stan)
        if entry is None:
            return
        self.stored.pending_reversals.remove(entry)
        last = self.stored.last_purchase
        if rc == rc_table.APPROVED and last and protocol.original_data(last.request) == entry.original_data:
            self.stored.last_purchase = None
            self.stored.append_journal(self._journal_entry("void", last.request, last.rrn, last.approval_code))
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
        return self._finish_network(flight, rc)

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
        self.stored.in_flight_purchase = None
        if rc == rc_table.APPROVED:
            self.stored.last_purchase = LastPurchase(
                request=without_pin(flight.request),
                rrn=message.get("37", ""),
                approval_code=message.get("38", ""),
                approved_at=self._now().isoformat(timespec="seconds"),
            )
            last = self.stored.last_purchase
            self.stored.append_journal(self._journal_entry("purchase", last.request, last.rrn, last.approval_code))
        self._save()
        return self._finish_card(Flow.PURCHASE, flight.request, rc, message)

    def _on_reversal(self, flight: _Flight, message: Message) -> list[Command]:
        rc = message.get("39", rc_table.FORMAT_ERROR)
        if rc in REVERSAL_RETRY_RCS:
            return self._repeat_reversal(flight)
        self._settle(flight.stan, rc)
        if flight.auto:
            return self._purchase_reversed(flight, "reversed")
        return self._finish_reversal(flight, rc, message)

    def _on_pending(self, flight: _Flight, message: Message) -> list[Command]:
        rc = message.get("39", rc_table.FORMAT_ERROR)
        if rc in REVERSAL_RETRY_RCS:
            return self._finish_flush()
        self._settle(flight.stan, rc)
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
        self, kind: str, request: Message, rc: str, rc_text: str, fields: dict, note: str | None, advice: str | None = None
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
            batch=self.stored.batch,
            note=note,
            advice=advice,
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
        message = f"{rc_text}. {note}" if note else rc_text
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
        outcome = Outcome(Flow.REVERSAL, rc, rc_text, message, stan=flight.stan, pan_masked=masked, receipt=receipt, **fields)
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
