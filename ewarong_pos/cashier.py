"""The cashier's counter: the shop beside the EDC, as a UI-free state machine.

Datang (the KPM's card into the EDC) -> Cek (balance inquiry: the balance read is the cart's
ceiling) -> Pilih (the cart; the KPM chooses freely among eligible food) -> Bayar (the cart total
goes to the EDC as the amount; the KPM types the PIN) -> Terima (slip, stock reduced, sale
recorded with its RRN). The rules are the store's (`ewarong_pos.rules` under the shop lock);
the payment's outcome is the EDC's. A declined or reversed payment leaves stock and sales
untouched. The shop learns of outcomes from the terminal's listeners, so a payment is recorded
however it was keyed (shop button, EDC keypad).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass

from edc_terminal.core import Flow, Outcome, Send
from edc_terminal.terminal import EdcTerminal
from shared.clock import Clock
from shared.money import format_idr

from ewarong_pos.catalogue import Product
from ewarong_pos.het_report import HetAttemptReport, above_het
from ewarong_pos.recovery import approved_from_terminal_state, sale_reference, voided_from_terminal_state
from ewarong_pos.rules import ABOVE_HET, Cart, Refusal, cart_total_idr
from ewarong_pos.store import Payment, Sale, ShopError, ShopStore

log = logging.getLogger(__name__)

PURCHASE_MTI = "0200"


class Step(enum.IntEnum):
    DATANG = 1
    CEK = 2
    PILIH = 3
    BAYAR = 4
    TERIMA = 5


STEP_LABELS = {
    Step.DATANG: "Datang",
    Step.CEK: "Cek",
    Step.PILIH: "Pilih",
    Step.BAYAR: "Bayar",
    Step.TERIMA: "Terima",
}

TEXT_CEK_FIRST = "Cek saldo kartu KPM dahulu: keranjang tidak boleh melebihi saldo yang terbaca"
TEXT_EMPTY_CART = "Keranjang masih kosong"
TEXT_PAYING = "Pembayaran sedang berjalan di EDC"


@dataclass(frozen=True, slots=True)
class CounterView:
    step: Step
    balance_idr: int | None
    cart: Cart
    total_idr: int
    left_idr: int | None  # balance less the cart, when a balance was read
    message: str | None
    paying: bool
    last_sale: Sale | None
    offline_limit: bool = False  # balance_idr is the card's offline allowance here, not a balance read


class Counter:
    """One e-Warong counter with its EDC. Drive it from the UI's event loop."""

    def __init__(
        self, store: ShopStore, ewarong_id: str, terminal: EdcTerminal, clock: Clock,
        het_reporter: Callable[[HetAttemptReport], None] | None = None,
    ) -> None:  # fmt: skip
        self.store = store
        self.het_reporter = het_reporter  # told of every good refused above its HET (best effort)
        self.ewarong_id = ewarong_id
        self.terminal = terminal
        self.clock = clock
        self._balance_idr: int | None = None
        self._offline_limit = False  # _balance_idr holds the offline allowance (no Cek possible)
        self._kpm_pan: str | None = None  # the card whose balance was read (memory only)
        self._cart = Cart()
        self._payment: Payment | None = None
        self._message: str | None = None
        self._last_sale: Sale | None = None
        self._listeners: list[Callable[[], None]] = []
        terminal.subscribe(on_outcome=self._on_outcome, on_send=self._on_send, on_change=self._on_terminal_change)

    @property
    def terminal_id(self) -> str:
        return self.terminal.core.terminal.tid

    def subscribe(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    # -- what the cashier sees ---------------------------------------------------------------

    def view(self) -> CounterView:
        total = cart_total_idr(self._cart)
        left = None if self._balance_idr is None else self._balance_idr - total
        return CounterView(self._step(), self._balance_idr, self._cart, total, left, self._message,
                           self._payment is not None, self._last_sale, self._offline_limit)  # fmt: skip

    def _step(self) -> Step:
        if self._payment is not None:
            return Step.BAYAR
        if self._last_sale is not None and not self._cart.lines:
            return Step.TERIMA
        if self._balance_idr is not None:
            return Step.PILIH
        if self.terminal.has_card:
            return Step.CEK
        return Step.DATANG

    def products(self) -> tuple[Product, ...]:
        return self.store.products(self.ewarong_id)

    def available(self) -> dict[str, int]:
        return self.store.available(self.ewarong_id)

    # -- start: recover what a crash left ------------------------------------------------------

    def recover(self) -> list[str]:
        """Record sales the EDC approved but the shop did not write (the app was killed between
        the approval and the write); close payments that never reached an approval."""
        approved = approved_from_terminal_state(self.terminal.core.stored)
        result = self.store.recover(self.terminal_id, approved)
        messages = list(result.messages) + self._apply_edc_voids()
        if messages:
            self._message = " ".join(messages)
        return messages

    def _apply_edc_voids(self) -> list[str]:
        """Void the sales whose purchase the EDC's journal says was voided and the shop still
        holds: after a crash, and when a void the EDC had stored is delivered later."""
        messages = []
        for rrn, at in voided_from_terminal_state(self.terminal.core.stored):
            if self.store.is_voided(self.terminal_id, rrn):
                continue
            sale = self.store.void_sale(self.terminal_id, rrn, at)
            if sale is not None:
                if self._last_sale is not None and self._last_sale.rrn == rrn:
                    self._last_sale = None
                messages.append(f"Penjualan RRN {rrn} dibatalkan di EDC: barang dikembalikan ke stok")
        return messages

    # -- the cart ------------------------------------------------------------------------------

    def add(self, sku: str, qty: int) -> bool:
        if self._refuse_while_paying():
            return False
        if self._balance_idr is None:
            return self._say(TEXT_CEK_FIRST)
        decided = self.store.add_to_cart(self.ewarong_id, self._cart, sku, qty, self._balance_idr)
        self._report_above_het(decided, [(sku, qty)])
        return self._take(decided, f"{qty} x {self._name(sku)} masuk keranjang")

    def set_quantity(self, sku: str, qty: int) -> bool:
        if self._refuse_while_paying():
            return False
        if self._balance_idr is None:
            return self._say(TEXT_CEK_FIRST)
        decided = self.store.change_quantity(self.ewarong_id, self._cart, sku, qty, self._balance_idr)
        self._report_above_het(decided, [(sku, qty)])
        return self._take(decided, f"Jumlah {self._name(sku)} menjadi {qty}")

    def clear_cart(self) -> None:
        if self._refuse_while_paying():
            return
        self._cart = Cart()
        self._say("Keranjang dikosongkan")

    def _take(self, decided: Cart | Refusal, done: str) -> bool:
        if isinstance(decided, Refusal):
            return self._say(decided.reason)
        self._cart, self._last_sale = decided, None
        return self._say(done, ok=True)

    def _report_above_het(self, decided: Cart | Refusal | Payment, goods: list[tuple[str, int]]) -> None:
        """Tell the switch (best effort) of the goods a refusal above HET was about."""
        if self.het_reporter is None or not isinstance(decided, Refusal) or decided.code != ABOVE_HET:
            return
        now = self.clock.now()
        for product, qty in above_het((self.store.product(self.ewarong_id, sku), qty) for sku, qty in goods):
            self.het_reporter(HetAttemptReport(self.terminal_id, self.ewarong_id, product, qty, now))

    def _name(self, sku: str) -> str:
        product = self.store.product(self.ewarong_id, sku)
        return product.name if product else sku

    # -- Bayar -----------------------------------------------------------------------------------

    def pay(self) -> bool:
        """Bayar: hold the cart's goods as a payment, then hand the total to the EDC."""
        if self._refuse_while_paying():
            return False
        if not self._cart.lines:
            return self._say(TEXT_EMPTY_CART)
        if self._balance_idr is None:
            return self._say(TEXT_CEK_FIRST)
        began = self.store.begin_payment(self.ewarong_id, self.terminal_id, self._cart)
        self._report_above_het(began, [(line.sku, line.qty) for line in self._cart.lines])
        if isinstance(began, Refusal):
            return self._say(began.reason)
        self._payment = began
        if not self.terminal.start_purchase(began.amount_idr, pan=self._kpm_pan):
            self.store.cancel_payment(began.id)
            self._payment = None
            return self._say(self.terminal.display().message or "EDC belum siap")
        return self._say(f"Total {format_idr(began.amount_idr)} dikirim ke EDC: KPM memasukkan PIN", ok=True)

    def _refuse_while_paying(self) -> bool:
        if self._payment is None:
            return False
        self._say(TEXT_PAYING)
        return True

    # -- from the EDC --------------------------------------------------------------------------

    def _on_send(self, send: Send) -> None:
        if self._payment is not None and send.message.get("t") == PURCHASE_MTI:
            self.store.payment_sent(self._payment.id, send.stan)

    def offline_allowance(self) -> bool:
        """Cek when the EDC is offline: no balance can be read, so the cart is bounded by what the
        card may still spend offline at this terminal this month. False (with the reason) when
        the EDC is online or cannot approve this card offline."""
        allowance_idr = self.terminal.core.offline_allowance_idr()
        if allowance_idr is None:
            return False
        if self.terminal.card_pan != self._kpm_pan:
            self._cart, self._last_sale = Cart(), None  # another KPM
        self._balance_idr, self._kpm_pan, self._offline_limit = allowance_idr, self.terminal.card_pan, True
        return self._say(f"EDC OFFLINE: saldo tidak dapat dicek. Batas belanja offline kartu ini {format_idr(allowance_idr)}", ok=True)

    def _on_outcome(self, outcome: Outcome) -> None:
        if outcome.flow is Flow.INQUIRY:
            self._on_inquiry(outcome)
        elif outcome.flow is Flow.PURCHASE and self._payment is not None:
            self._on_purchase(outcome, self._payment)
        elif outcome.flow is Flow.REVERSAL and outcome.voided_rrn:
            self._on_void(outcome, outcome.voided_rrn)
        elif outcome.flow is Flow.PENDING:
            delivered = self._apply_edc_voids()  # a stored PEMBATALAN reached the bank
            if delivered:
                self._message = " ".join(delivered)
        self._changed()

    def _on_inquiry(self, outcome: Outcome) -> None:
        if not outcome.approved or outcome.balance is None:
            self._balance_idr = None
            self._message = f"Cek saldo gagal: {outcome.rc_text}"
            return
        if self.terminal.card_pan != self._kpm_pan:
            self._cart, self._last_sale = Cart(), None  # another KPM
        self._balance_idr, self._kpm_pan, self._offline_limit = outcome.balance, self.terminal.card_pan, False
        self._message = f"Saldo KPM {format_idr(outcome.balance)}: silakan pilih barang"

    def _on_void(self, outcome: Outcome, rrn: str) -> None:
        """PEMBATALAN at the EDC: once the bank gave the money back, the sale is voided and its
        goods return to the shelf; otherwise the sale stands (a stored void is repeated by the EDC)."""
        if not outcome.approved:
            self._message = f"Pembatalan belum berhasil: {outcome.message}. Penjualan tetap tercatat."
            if self.terminal.core.pending_reversals:
                self._message += " EDC mengirim ulang pembatalan; penjualan dibatalkan begitu bank menyetujuinya."
            return
        sale = self.store.void_sale(self.terminal_id, rrn, self.clock.now())
        if sale is None:
            self._message = "Pembatalan berhasil di EDC (transaksi ini bukan penjualan dari keranjang)."
            return
        if self._last_sale is not None and self._last_sale.rrn == rrn:
            self._last_sale = None
        self._message = f"Pembatalan berhasil: penjualan {format_idr(sale.amount_idr)} dibatalkan, barang kembali ke stok."

    def _on_purchase(self, outcome: Outcome, payment: Payment) -> None:
        self._payment = None
        reference = sale_reference(outcome.rrn, outcome.stan if outcome.offline else None)
        if not outcome.approved or not reference:
            reversal = outcome.reversal is not None
            self.store.fail_payment(payment.id, outcome.rc, outcome.message, reversal=reversal)
            self._message = f"Pembayaran gagal: {outcome.message.rstrip('.')}. Stok tidak berubah."
            return
        try:
            sale = self.store.complete_payment(
                payment.id, reference, outcome.approval_code or "", outcome.stan or "", outcome.pan_masked or "",
                self.clock.now(), pan=self._kpm_pan,
            )  # fmt: skip
        except ShopError as exc:  # the EDC approved: the sale is recovered from its journal on start
            log.error("sale %s not recorded: %s", reference, exc)
            self._message = f"Penjualan belum tercatat ({exc}); akan dipulihkan dari EDC"
            return
        self._last_sale, self._cart = sale, Cart()
        if outcome.offline and self._balance_idr is not None and outcome.amount is not None:
            self._balance_idr = max(0, self._balance_idr - outcome.amount)  # what is left of the offline allowance
        elif outcome.balance is not None:
            self._balance_idr = outcome.balance
        if outcome.offline:
            self._message = f"Terima: penjualan OFFLINE tercatat, kode {outcome.approval_code}. Serahkan barang dan struk."
        else:
            self._message = f"Terima: penjualan tercatat, RRN {sale.rrn}. Serahkan barang dan struk."

    def _on_terminal_change(self) -> None:
        """Another KPM's card in the slot: the balance read and the cart were someone else's.
        A card in an offline EDC: its offline allowance stands in for the balance (no Cek)."""
        pan = self.terminal.card_pan
        if pan is None or self._payment is not None:
            return
        if self._kpm_pan not in (None, pan):
            self.new_customer()
        if self._balance_idr is None and self.terminal.core.offline:
            self.offline_allowance()

    def new_customer(self) -> None:
        """Forget the balance, the card and the cart (Datang of the next KPM)."""
        if self._refuse_while_paying():
            return
        self._balance_idr, self._kpm_pan, self._cart, self._last_sale = None, None, Cart(), None
        self._offline_limit = False
        self._say("Pelanggan berikutnya: masukkan kartu KPM ke EDC")

    def tell(self, message: str) -> None:
        """Show `message` to the cashier (e.g. a refused input of the screen)."""
        self._say(message)

    def _say(self, message: str, ok: bool = False) -> bool:
        self._message = message
        self._changed()
        return ok
