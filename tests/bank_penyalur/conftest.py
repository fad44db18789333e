"""A seeded demo bank and small helpers to talk to it as the switch would."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from shared.banks import get_bank
from shared.credentials import SWITCH
from bank_penyalur.api.app import create_app
from bank_penyalur.demo import fixture, generator
from bank_penyalur.disburse import disburse
from bank_penyalur.ledger import check_ledger
from bank_penyalur.runtime import BankRuntime
from bank_penyalur.schemas import (
    AdviceCreate,
    AuthorisationPublic,
    InquiryCreate,
    PurchaseCreate,
    ReversalCreate,
)
from bank_penyalur.settings import BankSettings

PERIOD = "2026-11"
BENEFIT_IDR = 150_000
TERMINAL = "EDC00001"


class Bank:
    """A seeded bank plus a terminal's view of it: STANs count up like a real EDC's."""

    def __init__(self, runtime: BankRuntime) -> None:
        self.runtime = runtime
        self.cards = {c.label: c for c in fixture.demo_cards(runtime.bank)}
        self.merchant_id = fixture.demo_merchant_id(runtime.bank)
        self._stan = itertools.count(1)
        self.today = runtime.clock.now().date()

    def next_stan(self) -> str:
        return f"{next(self._stan):06d}"

    def pin_block(self, pan: str, pin: str) -> str:
        return self.runtime.hsm.encipher_pin(pan, pin)

    def _common(self, pan: str, stan: str | None, **extra) -> dict:  # noqa: ANN003
        return {
            "terminal_id": TERMINAL,
            "stan": stan or self.next_stan(),
            "transmission_date": self.today,
            "merchant_id": self.merchant_id,
            "pan": pan,
            **extra,
        }

    def inquiry(self, label: str, pin: str | None = None, **extra) -> AuthorisationPublic:  # noqa: ANN003
        card = self.cards[label]
        body = self._common(card.pan, extra.pop("stan", None), pin_block=self.pin_block(card.pan, pin or card.pin), **extra)
        return self.runtime.authoriser.inquiry(InquiryCreate(**body))

    def purchase_request(self, label: str, amount_idr: int, pin: str | None = None, **extra) -> PurchaseCreate:  # noqa: ANN003
        card = self.cards[label]
        pan = extra.pop("pan", card.pan)
        body = self._common(pan, extra.pop("stan", None), pin_block=self.pin_block(pan, pin or card.pin), amount_idr=amount_idr, **extra)
        return PurchaseCreate(**body)

    def purchase(self, label: str, amount_idr: int, pin: str | None = None, **extra) -> AuthorisationPublic:  # noqa: ANN003
        return self.runtime.authoriser.purchase(self.purchase_request(label, amount_idr, pin, **extra))

    def reversal_request(self, original: PurchaseCreate, **extra) -> ReversalCreate:  # noqa: ANN003
        body = self._common(
            original.pan,
            extra.pop("stan", None),
            amount_idr=extra.pop("amount_idr", original.amount_idr),
            original_stan=original.stan,
            original_transmission_date=original.transmission_date,
            **extra,
        )
        return ReversalCreate(**body)

    def reversal(self, original: PurchaseCreate, **extra) -> AuthorisationPublic:  # noqa: ANN003
        return self.runtime.authoriser.reversal(self.reversal_request(original, **extra))

    def advice_request(self, label: str, amount_idr: int, **extra) -> AdviceCreate:  # noqa: ANN003
        card = self.cards[label]
        transaction_at = extra.pop("transaction_at", self.runtime.clock.now())
        body = self._common(card.pan, extra.pop("stan", None), amount_idr=amount_idr, transaction_at=transaction_at, **extra)
        return AdviceCreate(**body)

    def advice(self, label: str, amount_idr: int, **extra) -> AuthorisationPublic:  # noqa: ANN003
        return self.runtime.authoriser.advice(self.advice_request(label, amount_idr, **extra))

    def balance(self, label: str) -> int:
        from bank_penyalur import store

        with self.runtime.db.read() as conn:
            state = store.card_state(conn, self.runtime.hsm.pan_ref(self.cards[label].pan))
        assert state is not None
        return state.balance_idr

    def assert_ledger_balanced(self) -> None:
        with self.runtime.db.read() as conn:
            result = check_ledger(conn)
        assert result.balance_sum_idr == 0, result
        assert result.ok, result


def api_client(runtime: BankRuntime, holder: str = SWITCH, **options) -> TestClient:  # noqa: ANN003
    """The bank's HTTP API in process, called with `holder`'s credential: the switch's (accepted
    everywhere) by default, or the bank operators' ("operator")."""
    return TestClient(create_app(runtime), headers=runtime.settings.bearer(holder), **options)


def start_bank(storage: dict, clock, kpm: int = 20, bank: str = "bni") -> BankRuntime:  # noqa: ANN001
    runtime = BankRuntime.start(BankSettings(bank=bank, **storage), clock=clock)
    generator.seed(runtime.db, get_bank(bank), runtime.hsm, clock, kpm=kpm)
    disburse(runtime.db, clock, PERIOD, BENEFIT_IDR)
    return runtime


@pytest.fixture
def bank(storage, clock) -> Iterator[Bank]:  # noqa: ANN001
    """A demo bank (named cards + 20 generated KPM) funded for the period; ledger checked after."""
    runtime = start_bank(storage, clock)
    handle = Bank(runtime)
    yield handle
    handle.assert_ledger_balanced()
    runtime.close()
