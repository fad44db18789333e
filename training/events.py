"""What the lesson hears: the EDC's outcomes and card slot, and the shop's cart decisions, as
`training.lesson.Event`s.

`LessonCounter` is the cashier's `Counter` that also says what went into the cart, what the
shop's rules refused (with the rule's code) and when a payment went to the EDC. `EventSource`
listens to the terminal (`EdcTerminal.subscribe`) for the card going in and out and for each
flow's outcome. Neither decides anything: the rules stay the store's and the core's.
"""

from __future__ import annotations

from collections.abc import Callable

from edc_terminal.core import Flow, Outcome
from edc_terminal.terminal import EdcTerminal
from ewarong_pos.cashier import Counter
from ewarong_pos.rules import Cart, Refusal

from .lesson import Event
from .model import (
    BALANCE,
    CARD_INSERTED,
    CARD_TAKEN,
    CART_ITEM,
    CART_REFUSED,
    OFFLINE_SALE,
    PAYMENT_STARTED,
    PURCHASE,
    REVERSAL,
    SETTLEMENT,
    SIGN_ON,
    UPLOAD,
)

Sink = Callable[[Event], None]
NO_BALANCE_YET = "cek_first"  # the cart refused because no balance was read yet

_FLOW_EVENTS = {
    Flow.INQUIRY: BALANCE,
    Flow.REVERSAL: REVERSAL,
    Flow.UPLOAD: UPLOAD,
    Flow.SETTLEMENT: SETTLEMENT,
    Flow.SIGN_ON: SIGN_ON,
    Flow.KEY_EXCHANGE: SIGN_ON,
}


def event_of(outcome: Outcome) -> Event | None:
    """The lesson event of an EDC flow's outcome (None for flows a lesson does not follow)."""
    if outcome.flow is Flow.PURCHASE:
        kind = OFFLINE_SALE if outcome.offline else PURCHASE
        return Event(kind, outcome.rc, outcome.approved, reversed=outcome.reversal is not None,
                     amount_idr=outcome.amount, balance_idr=outcome.balance)  # fmt: skip
    kind = _FLOW_EVENTS.get(outcome.flow)
    if kind is None:
        return None
    return Event(kind, outcome.rc, outcome.approved, balance_idr=outcome.balance)


class LessonCounter(Counter):
    """The cashier's counter, telling `sink` about the cart and the payment."""

    def __init__(self, *args: object, sink: Sink, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.sink = sink
        self._decided: Cart | Refusal | None = None

    def _take(self, decided: Cart | Refusal, done: str) -> bool:
        self._decided = decided
        return super()._take(decided, done)

    def add(self, sku: str, qty: int) -> bool:
        return self._told(super().add, sku, qty)

    def set_quantity(self, sku: str, qty: int) -> bool:
        return self._told(super().set_quantity, sku, qty)

    def _told(self, change: Callable[[str, int], bool], sku: str, qty: int) -> bool:
        self._decided = None
        taken = change(sku, qty)
        if taken:
            self.sink(Event(CART_ITEM))
        else:
            code = self._decided.code if isinstance(self._decided, Refusal) else NO_BALANCE_YET
            self.sink(Event(CART_REFUSED, refusal=code, reason=self.view().message))
        return taken

    def pay(self) -> bool:
        paying = super().pay()
        if paying:
            self.sink(Event(PAYMENT_STARTED, amount_idr=self.view().total_idr))
        return paying


class EventSource:
    """The terminal's card slot and outcomes, as events; `card_name` names a card number."""

    def __init__(self, terminal: EdcTerminal, card_name: Callable[[str], str | None], sink: Sink) -> None:
        self.terminal = terminal
        self.card_name = card_name
        self.sink = sink
        self._card: str | None = terminal.card_pan
        terminal.subscribe(on_change=self._changed, on_outcome=self._outcome)

    def _changed(self) -> None:
        pan = self.terminal.card_pan
        if pan == self._card:
            return
        if self._card is not None:
            self.sink(Event(CARD_TAKEN, card=self.card_name(self._card)))
        self._card = pan
        if pan is not None:
            self.sink(Event(CARD_INSERTED, card=self.card_name(pan)))

    def _outcome(self, outcome: Outcome) -> None:
        event = event_of(outcome)
        if event is not None:
            self.sink(event)
