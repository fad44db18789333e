"""The switch's bank client under load: what queues while its calls to a bank are out goes in
one batch call (POST /v1/authorisations/batch) to a real bank process. Every request still gets
its own answer; a frozen bank leaves every item in doubt (so purchases get reversed); a request
that waited past its deadline in the queue is never sent; the bank's books balance."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import date

import pytest

from bank_penyalur.demo import generator
from shared.banks import get_bank
from switch.bank_client import BankClient, BankReply, BankUnavailable

from tests.switch.network import Network

BNI = get_bank("bni")
TIMEOUT_MS = 3_000
_STANS = itertools.count(500_001)


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    tmp = tmp_path_factory.mktemp("bank-batching")
    network = Network(tmp, {"data_dir": tmp}, kpm=60)
    network.prepare_banks()
    network.banks["bni"].start()  # the bank alone: this client plays the switch
    try:
        yield network
    finally:
        network.stop()


@pytest.fixture(autouse=True)
def ledger_balanced(network: Network) -> Iterator[None]:
    yield
    network.assert_ledger_balanced()


def spendable(count: int, skip: int = 0) -> list[generator.GeneratedKpm]:
    people = [p for p in (generator.generated_kpm(BNI, i) for i in range(60)) if p.spendable]
    assert len(people) >= skip + count
    return people[skip : skip + count]


def purchase(network: Network, person: generator.GeneratedKpm, amount_idr: int) -> dict:
    runtime = network.bank_runtime("bni")
    try:
        pin_block = runtime.hsm.encipher_pin(person.pan, person.pin)  # under the ZPK the switch shares with the bank
    finally:
        runtime.close()
    stan = f"{next(_STANS) % 1_000_000:06d}"
    return {
        "terminal_id": BNI.terminal_id(1),
        "stan": stan,
        "transmission_date": date.today().isoformat(),  # the bank runs on the system clock
        "merchant_id": BNI.merchant_id(1),
        "pan": person.pan,
        "pin_block": pin_block,
        "amount_idr": amount_idr,
        "rrn": f"9{stan:0>11}",
    }


def client_of(network: Network, batch_max: int, calls_max: int, timeout_ms: int = TIMEOUT_MS) -> BankClient:
    credential = network._bank_settings("bni").credential("switch")  # noqa: SLF001 - the switch's credential at this bank
    return BankClient({"bni": network.banks["bni"].url}, timeout_ms, 16, {"bni": credential}, batch_max=batch_max, calls_max=calls_max)


async def send_all(client: BankClient, bodies: list[dict]) -> list[BankReply | BankUnavailable]:
    try:
        return await asyncio.gather(*(client.send("bni", "purchase", body) for body in bodies))
    finally:
        await client.close()


def test_concurrent_purchases_share_calls_and_each_gets_its_own_answer(network: Network) -> None:
    people = spendable(24)
    before = {p.pan: network.balance_of(p.pan) for p in people}
    bodies = [purchase(network, p, 1_000 + n) for n, p in enumerate(people)]
    client = client_of(network, batch_max=16, calls_max=1)

    outcomes = asyncio.run(send_all(client, bodies))

    assert all(isinstance(o, BankReply) and o.rc == "00" for o in outcomes), outcomes
    assert [o.balance_idr for o in outcomes] == [before[p.pan] - (1_000 + n) for n, p in enumerate(people)]
    assert client._lanes["bni"].batches >= 1  # noqa: SLF001 - more than one request went in one call
    assert client.counters["bni"].replies == len(people)
    for n, p in enumerate(people):
        assert network.balance_of(p.pan) == before[p.pan] - (1_000 + n)


def test_a_repeated_batch_posts_nothing_twice(network: Network) -> None:
    people = spendable(6, skip=24)
    before = {p.pan: network.balance_of(p.pan) for p in people}
    bodies = [purchase(network, p, 2_500) for p in people]
    first = asyncio.run(send_all(client_of(network, batch_max=8, calls_max=1), bodies))
    again = asyncio.run(send_all(client_of(network, batch_max=8, calls_max=1), bodies))
    assert [(o.rc, o.approval_code, o.balance_idr) for o in first] == [(o.rc, o.approval_code, o.balance_idr) for o in again]
    for p in people:
        assert network.balance_of(p.pan) == before[p.pan] - 2_500


def test_a_frozen_bank_leaves_every_item_in_doubt_and_queued_ones_past_their_deadline_unsent(network: Network) -> None:
    people = spendable(6, skip=30)
    before = {p.pan: network.balance_of(p.pan) for p in people}
    bodies = [purchase(network, p, 3_000) for p in people]
    bank = network.banks["bni"]
    client = client_of(network, batch_max=2, calls_max=1, timeout_ms=600)
    bank.freeze()
    try:
        outcomes = asyncio.run(send_all(client, bodies))
    finally:
        bank.thaw()
    assert all(isinstance(o, BankUnavailable) for o in outcomes), outcomes
    sent = [o for o in outcomes if o.may_have_posted]
    unsent = [o for o in outcomes if not o.may_have_posted]
    assert sent and unsent  # the first call went out and hung; what queued behind it expired unsent
    assert all("queue" in o.reason for o in unsent)
    # What did reach the bank may be applied once it wakes (each was reported in doubt, so a
    # switch reverses it); what was never sent moved nothing.
    moved = sum(before[p.pan] - network.balance_of(p.pan) for p in people)
    assert moved % 3_000 == 0 and moved <= 3_000 * len(sent)
