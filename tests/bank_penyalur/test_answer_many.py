"""A batch answered together gives exactly what the same requests answered one by one give.

Two banks seeded alike get the same seeded stream of requests: one answers each in its own
transaction (`Authoriser.authorise`), the other answers runs of them together
(`Authoriser.answer_many`, as the batch writer does). The stream mixes what a busy day sends:
purchases with right and wrong PINs on every demo card, inquiries, offline advices, exact
repeats, another payload under a used key, reversals (repeated, and arriving before their
original) and unknown cards. Answers, ledgers, PIN events and request records must match row
for row, and both ledgers balance.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import create_engine, select, text

from shared.cards import make_pan

from bank_penyalur.authorise import CardState
from bank_penyalur.ledger import check_ledger
from bank_penyalur.schemas import InquiryCreate, _Request
from bank_penyalur.service import _carry
from bank_penyalur.tables import AuthRequest, PinEvent, Transfer
from tests.bank_penyalur.conftest import Bank, start_bank
from tests.conftest import postgres_url

LABELS = ("normal", "zero_balance", "no_emoney", "pin_blocked", "lost", "replaced_old", "blocked", "pkh_combo", "replaced_new")
Stream = list[tuple[str, _Request]]


@pytest.fixture
def twin(storage, clock, tmp_path) -> Iterator[Bank]:  # noqa: ANN001
    """A second bank seeded exactly as the `bank` fixture's, on the same database kind."""
    twin_storage = {**storage, "data_dir": tmp_path / "twin"}
    if "db_schema" in storage:
        twin_storage["db_schema"] = f"test_{uuid.uuid4().hex[:12]}"
    runtime = start_bank(twin_storage, clock)
    yield Bank(runtime)
    runtime.close()
    if "db_schema" in twin_storage:
        engine = create_engine(postgres_url())
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{twin_storage["db_schema"]}" CASCADE'))
        engine.dispose()


def busy_day(bank: Bank, rng: random.Random, length: int) -> Stream:
    """`length` requests as terminals send them on a busy day, drawn from `rng`."""
    stream: Stream = []
    purchases = []
    held_back = []  # originals whose reversal went first
    while len(stream) < length:
        roll = rng.random()
        label = rng.choice(LABELS)
        amount_idr = rng.randrange(1, 41) * 1_000
        if roll < 0.35:
            request = bank.purchase_request(label, amount_idr, pin=None if rng.random() < 0.8 else "000000")
            purchases.append(request)
            stream.append(("purchase", request))
        elif roll < 0.45:
            card = bank.cards[label]
            stream.append(("inquiry", InquiryCreate(**bank._common(card.pan, None, pin_block=bank.pin_block(card.pan, card.pin)))))
        elif roll < 0.55:
            stream.append(("advice", bank.advice_request(label, amount_idr)))
        elif roll < 0.65:
            stream.append(rng.choice(stream) if stream else ("purchase", bank.purchase_request(label, amount_idr)))
        elif roll < 0.70 and purchases:
            original = rng.choice(purchases)
            stream.append(("purchase", original.model_copy(update={"amount_idr": original.amount_idr + 1_000})))
        elif roll < 0.85 and purchases:
            stream.append(("reversal", bank.reversal_request(rng.choice(purchases))))
        elif roll < 0.92:
            original = bank.purchase_request(label, amount_idr)
            stream.append(("reversal", bank.reversal_request(original)))
            held_back.append(original)
        elif held_back:
            stream.append(("purchase", held_back.pop()))
        else:
            unknown = make_pan(bank.runtime.bank.iin, 900_000 + rng.randrange(1_000))
            stream.append(("purchase", bank.purchase_request("normal", amount_idr, pan=unknown)))
    return stream


def one_by_one(bank: Bank, stream: Stream) -> list[dict]:
    return [bank.runtime.authoriser.authorise(op, request).model_dump() for op, request in stream]


def together(bank: Bank, stream: Stream, rng: random.Random) -> list[dict]:
    answers: list[dict] = []
    start = 0
    while start < len(stream):
        run = stream[start : start + rng.randrange(1, 17)]
        with bank.runtime.db.begin() as conn:
            answers += [answer.model_dump() for answer in bank.runtime.authoriser.answer_many(conn, run)]
        start += len(run)
    return answers


def stored(bank: Bank) -> dict[str, list[tuple]]:
    tables = {
        "transfers": select(Transfer.debit_account_id, Transfer.credit_account_id, Transfer.amount_idr, Transfer.kind, Transfer.reverses_id).order_by(Transfer.id),
        "pin_events": select(PinEvent.card_id, PinEvent.kind).order_by(PinEvent.id),
        "requests": select(
            AuthRequest.op, AuthRequest.stan, AuthRequest.rc, AuthRequest.approval_code, AuthRequest.balance_idr,
            AuthRequest.transfer_id, AuthRequest.original_id, AuthRequest.card_id, AuthRequest.exception,
        ).order_by(AuthRequest.id),
    }
    with bank.runtime.db.read() as conn:
        rows = {name: [tuple(row) for row in conn.execute(query)] for name, query in tables.items()}
        ledger = check_ledger(conn)
    assert ledger.ok and ledger.balance_sum_idr == 0, ledger
    return rows


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_busy_day_answered_together_matches_one_by_one(bank, twin, seed: int) -> None:  # noqa: ANN001
    stream = busy_day(bank, random.Random(seed), length=160)
    alone = one_by_one(bank, stream)
    batched = together(twin, stream, random.Random(seed + 1_000))
    assert batched == alone
    assert stored(twin) == stored(bank)
    assert {answer["rc"] for answer in alone} >= {"00", "51", "55", "75", "94"}, "the stream reaches the cases it is for"


def test_two_purchases_of_one_card_in_a_run_see_each_other(twin) -> None:  # noqa: ANN001
    run = [("purchase", twin.purchase_request("normal", 100_000)) for _ in range(2)]
    with twin.runtime.db.begin() as conn:
        first, second = twin.runtime.authoriser.answer_many(conn, run)
    assert (first.rc, first.balance_idr) == ("00", 50_000)
    assert (second.rc, second.balance_idr) == ("51", 50_000)
    assert twin.balance("normal") == 50_000


def test_a_debit_carries_to_every_card_on_the_same_sub_account() -> None:
    old = CardState(card_id=1, kpm_id=1, status="replaced", emoney_account_id=7, pvv=None, pin_fails=0, balance_idr=150_000)
    new = CardState(card_id=2, kpm_id=1, status="activated", emoney_account_id=7, pvv=None, pin_fails=1, balance_idr=150_000)
    other = CardState(card_id=3, kpm_id=2, status="activated", emoney_account_id=8, pvv=None, pin_fails=0, balance_idr=150_000)
    cards = {"old": old, "new": new, "other": other}
    _carry(cards, "new", replace(new, balance_idr=140_000, pin_fails=0))
    assert cards == {"old": replace(old, balance_idr=140_000), "new": replace(new, balance_idr=140_000, pin_fails=0), "other": other}
