"""Operator actions of the switch's ops API and what the switch makes of them.

- On the journal alone (SQLite and PostgreSQL): a cancelled reversal leaves the queue, the SAF
  loop no longer sends it and the SAF depth no longer counts it; a retry without a bank that
  answers is recorded as a failed attempt; blocking and unblocking a terminal reach the running
  core's set at once; clear refusals, never a card number in an answer.
- In the core: a blocked terminal's purchases, inquiries and advices get 58 and never reach a
  bank; its reversals still pass.
- On a network (a BNI bank process and the switch): a blocked EDC is refused, still after a
  restart of the switch, and served again once unblocked; a KPM whose PIN is blocked pays again
  after an operator asks the bank to reset it; a stored reversal retried by an operator gives
  the money back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from shared import iso8583, protocol, rc
from shared.banks import BANK_CODES, get_bank
from shared.cards import mask_pan
from bank_penyalur.demo import generator
from switch import controls
from switch.bank_client import BankClient
from switch.core import reversal_body
from switch.hsm import PanCipher
from switch.journal import Journal
from switch.metrics import SwitchMetrics
from switch.ops import access
from switch.ops.app import create_ops_app
from switch.runtime import database_for
from switch.saf import SafForwarder
from switch.settings import SwitchSettings
from switch.tables import ADMIN, OPERATOR, AuditRecord, SafAttempt
from tests.metrics import samples, value
from tests.switch.core_harness import MID, NOW, PAN, TID, FakeBanks, advice_doc, echo_doc, make_harness, maced, purchase_doc
from tests.switch.network import Network, network_per_storage, raw_terminal
from tests.switch.ops_tokens import bearer, issue
from tests.switch.test_journal import open_journal
from tests.switch.test_ops_api import ANI, FULL_PANS, PAN_RUN, SITI, seed

BNI = get_bank("bni")
NOWHERE = {code: "http://127.0.0.1:9" for code in BANK_CODES}  # banks that never answer
REASON = {"reason": "checked at the ops desk"}


def unreachable_banks() -> BankClient:
    settings = SwitchSettings(bank_urls=NOWHERE)
    return BankClient(settings.bank_urls, 1_000, 2, settings.bank_credentials_by_code())


@pytest.fixture
def journal(storage, clock) -> Iterator[Journal]:  # noqa: ANN001
    opened = open_journal(storage)
    seed(opened, clock)  # SAF entry 1: owed to BRI, pending; entry 2: acknowledged by BNI
    yield opened
    opened.db.dispose()


@pytest.fixture
def ops(journal: Journal, clock) -> Iterator[TestClient]:  # noqa: ANN001
    banks = unreachable_banks()
    app = create_ops_app(journal, banks=banks, now=clock.now)
    app.state.blocked_terminals = set()  # as SwitchRuntime shares its core's
    with TestClient(app, headers=bearer(issue(journal.db, OPERATOR))) as client:
        yield client
        client.portal.call(banks.close)


def post(client: TestClient, url: str, status: int = 200, body: dict | None = None, **kwargs: Any) -> Any:  # noqa: ANN401
    response = client.post(url, json=body, **kwargs)
    assert response.status_code == status, response.text
    assert not [pan for pan in FULL_PANS if pan in response.text] and not PAN_RUN.search(response.text), response.text
    return response.json()


def attempts_of(journal: Journal, saf_id: int) -> list[tuple[str, str]]:
    with journal.db.read() as conn:
        rows = conn.execute(select(SafAttempt.outcome, SafAttempt.detail).where(SafAttempt.saf_id == saf_id).order_by(SafAttempt.id))
        return [tuple(row) for row in rows]


def audit_actions(journal: Journal) -> list[tuple[str, str]]:
    with journal.db.read() as conn:
        return [tuple(row) for row in conn.execute(select(AuditRecord.action, AuditRecord.target).order_by(AuditRecord.seq))]


# -- store and forward ---------------------------------------------------------------------------


def test_a_cancelled_reversal_is_never_sent_again(ops: TestClient, journal: Journal, clock) -> None:  # noqa: ANN001
    cancelled = post(ops, "/v1/saf/1/cancel", body={"reason": f"settled by hand with BRI for card {ANI}"})
    assert (cancelled["rrn"], cancelled["acknowledged_at"]) == ("000000000009", None)
    assert cancelled["cancelled_at"] == clock.now().isoformat() + "+07:00"
    assert cancelled["cancel_reason"] == f"settled by hand with BRI for card {mask_pan(ANI)}"
    overview = ops.get("/v1/saf").json()
    assert (overview["pending_total"], overview["pending"], [e["id"] for e in overview["cancelled"]]) == (0, [], [1])
    assert post(ops, "/v1/saf/1/cancel", 409, body=REASON) == {"detail": "SAF entry 1 is cancelled"}
    assert post(ops, "/v1/saf/1/retry", 409) == {"detail": "SAF entry 1 is cancelled"}

    # The SAF loop sends what is still owed (a new reversal to BNI), never the cancelled one.
    owed = journal.enqueue_saf("000000000099", "bni", {"pan": SITI, "amount_idr": 1_000}, clock.now())
    assert [e.id for e in journal.pending_saf(10)] == [owed]
    before = attempts_of(journal, 1)

    async def one_round() -> None:
        banks = unreachable_banks()
        try:
            await SafForwarder(journal, banks, clock.now, 10, 50).deliver_pending()
        finally:
            await banks.close()

    asyncio.run(one_round())
    assert attempts_of(journal, 1) == before and [outcome for outcome, _ in attempts_of(journal, owed)] == ["error"]
    exposition = asyncio.run(SwitchMetrics(journal).scrape()).decode()
    assert value(samples(exposition), "sembako_switch_saf_depth") == 1  # the new one, not the cancelled one


def test_a_retry_without_an_answer_is_a_failed_attempt(ops: TestClient, journal: Journal) -> None:
    before = len(attempts_of(journal, 1))
    retried = post(ops, "/v1/saf/1/retry")
    assert retried["acknowledged_at"] is None and len(retried["attempts"]) == before + 1
    assert retried["attempts"][-1]["outcome"] == "error" and retried["body"]["pan"] == mask_pan(ANI)
    assert audit_actions(journal)[-1] == ("saf.retry", "saf/1")
    assert post(ops, "/v1/saf/2/retry", 409) == {"detail": "SAF entry 2 was acknowledged by bni already"}
    assert post(ops, "/v1/saf/999/retry", 404) == {"detail": "no SAF entry 999"}


def test_a_reversal_sealed_under_another_key_cannot_be_retried(ops: TestClient, journal: Journal, clock) -> None:  # noqa: ANN001
    other = Journal(journal.db, pan_cipher=PanCipher("00" * 32))
    sealed_elsewhere = other.enqueue_saf("000000000098", "bri", {"pan": ANI, "amount_idr": 2_000}, clock.now())
    refused = post(ops, f"/v1/saf/{sealed_elsewhere}/retry", 409)
    assert refused["detail"].endswith("its card number does not open under the PAN key")


def test_a_bank_operator_acts_on_reversals_owed_to_its_bank_only(journal: Journal, clock) -> None:  # noqa: ANN001
    client = TestClient(create_ops_app(journal, now=clock.now))
    bni = bearer(issue(journal.db, OPERATOR, "bni"))
    assert client.post("/v1/saf/1/cancel", json=REASON, headers=bni).status_code == 404  # BRI's, at BRI's terminal
    journal.enqueue_saf("000000000001", "bri", {"pan": ANI, "amount_idr": 2_000}, clock.now())  # BRI's card at BNI00001
    seen = client.get("/v1/saf", headers=bni).json()
    assert [e["id"] for e in seen["pending"]] == [3]
    token_id = access.parse_token(bni["Authorization"].removeprefix("Bearer "))[0]
    assert client.post("/v1/saf/3/cancel", json=REASON, headers=bni).json() == {
        "detail": f"token {token_id} is scoped to bni: SAF entry 3 is owed to bri"}


# -- terminals -------------------------------------------------------------------------------------


def test_blocking_a_terminal_reaches_the_running_core_at_once(ops: TestClient, journal: Journal) -> None:
    core_set: set[str] = ops.app.state.blocked_terminals
    blocked = post(ops, "/v1/terminals/BNI00001/block", body={"reason": "e-Warong holds KPM cards"})
    assert (blocked["blocked"], blocked["block_reason"], blocked["bank_code"]) == (True, "e-Warong holds KPM cards", "bni")
    assert core_set == {"BNI00001"} and controls.blocked_terminals(journal.db) == {"BNI00001"}
    assert post(ops, "/v1/terminals/BNI00001/block", 409, body=REASON) == {"detail": "terminal BNI00001 is blocked already"}
    assert post(ops, "/v1/terminals/BNI00001/unblock", body={"reason": "cards returned"})["blocked"] is False
    assert core_set == set() and controls.blocked_terminals(journal.db) == set()
    assert audit_actions(journal)[-2:] == [("terminal.block", "terminal/BNI00001"), ("terminal.unblock", "terminal/BNI00001")]


@pytest.mark.parametrize(
    ("url", "body", "status", "where"),
    [
        ("/v1/terminals/BNI00001/block", {"reason": "x"}, 422, ["body", "reason"]),  # too short to say why
        ("/v1/terminals/BNI00001/block", {"reason": "line\nbreak"}, 422, ["body", "reason"]),
        ("/v1/terminals/BNI00001/block", {}, 422, ["body", "reason"]),
        ("/v1/terminals/BNI00001/block", {**REASON, "until": "forever"}, 422, ["body", "until"]),
        ("/v1/terminals/bni00001/block", REASON, 422, ["path", "tid"]),
        ("/v1/terminals/MDR00009/block", REASON, 404, None),  # the switch knows no such terminal
        ("/v1/saf/0/cancel", REASON, 422, ["path", "saf_id"]),
        ("/v1/cards/pin-reset", {"pan": SITI + "0000", **REASON}, 422, ["body", "pan"]),  # 20 digits
        ("/v1/cards/pin-reset", {"pan": "4111111111111111", **REASON}, 422, ["body", "pan"]),  # no bank of the network
        ("/v1/cards/pin-reset", {"pan": SITI}, 422, ["body", "reason"]),
    ],
)
def test_actions_refuse_bad_input_plainly(ops: TestClient, journal: Journal, url: str, body: dict, status: int, where: list | None) -> None:
    answer = post(ops, url, status, body=body)
    if where is not None:
        assert [problem["loc"] for problem in answer["detail"]] == [where]
    assert audit_actions(journal) == [("token.create", audit_actions(journal)[0][1])]  # nothing done, nothing recorded


def test_a_pin_reset_without_a_link_to_the_bank_says_so(journal: Journal, clock) -> None:  # noqa: ANN001
    client = TestClient(create_ops_app(journal, now=clock.now), headers=bearer(issue(journal.db, OPERATOR)))
    assert post(client, "/v1/cards/pin-reset", 503, body={"pan": SITI, **REASON}) == {"detail": "this ops API has no link to bank bni"}
    assert post(client, "/v1/cards/pin-reset", 403, body={"pan": SITI, **REASON}, headers=bearer(issue(journal.db, OPERATOR, "bri")))


def test_a_pin_reset_the_bank_cannot_take_is_recorded_and_told(ops: TestClient, journal: Journal) -> None:
    assert post(ops, "/v1/cards/pin-reset", 503, body={"pan": SITI, **REASON})["detail"].startswith("bank bni could not be asked")
    with journal.db.read() as conn:
        record = conn.execute(select(AuditRecord.__table__).order_by(AuditRecord.seq.desc()).limit(1)).one()
    assert (record.action, record.target, record.bank_code) == ("card.pin_reset", f"card/{mask_pan(SITI)}", "bni")
    assert record.after["outcome"] == "bank unavailable" and SITI not in str(record.after)


# -- in the core -----------------------------------------------------------------------------------


def test_a_blocked_terminal_gets_58_for_spending_and_still_reverses() -> None:
    harness = make_harness(FakeBanks("00"))
    harness.core.blocked_terminals.add(TID)
    purchase = purchase_doc(20_000)
    inquiry = protocol.inquiry_request(protocol.Terminal(TID, MID), "000777", NOW, PAN, purchase["52"], 1)
    for doc in (purchase, inquiry, advice_doc()):
        _, answer = harness.send(maced(doc))
        assert answer["39"] == rc.NOT_PERMITTED_TERMINAL, doc["t"]
    assert harness.banks.calls == [] and harness.transactions() == []  # no bank asked, the keys stay free
    assert harness.send(iso8583.encode(echo_doc()))[1]["39"] == rc.APPROVED  # the link itself is fine

    _, reversed_ = harness.send(maced(protocol.reversal_request(purchase, "000999", NOW + timedelta(seconds=30))))
    assert reversed_["39"] == rc.APPROVED and [op for _, op, _ in harness.banks.calls] == ["reversal"]

    harness.core.blocked_terminals.clear()
    _, retried = harness.send(maced(purchase))  # the same request, after the unblock: processed now
    assert retried["39"] == rc.APPROVED


# -- on a network ----------------------------------------------------------------------------------

SPENDABLE = [p for p in (generator.generated_kpm(BNI, i) for i in range(40)) if p.spendable]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def network(request, tmp_path_factory) -> Iterator[Network]:  # noqa: ANN001
    yield from network_per_storage(request, tmp_path_factory, "ops")


@pytest.fixture(autouse=False)
def balanced(network: Network) -> Iterator[None]:
    yield
    network.assert_ledger_balanced()


def ops_post(network: Network, path: str, body: dict | None, headers: dict) -> httpx.Response:
    response = httpx.post(f"{network.ops_url}{path}", json=body, headers=headers, timeout=15)
    assert not PAN_RUN.search(response.text), response.text
    return response


def test_a_blocked_edc_is_refused_until_unblocked_also_across_a_restart(network: Network, balanced: None) -> None:
    person, operator = SPENDABLE[0], network.ops_headers(OPERATOR, "bni")
    edc = raw_terminal(network, serial=1)
    try:
        assert edc.sign_on()["39"] == rc.APPROVED
        bought = edc.purchase_doc(person.pan, person.pin, 15_000)
        assert edc.exchange(bought)["39"] == rc.APPROVED
        assert ops_post(network, "/v1/terminals/BNI00001/block", {"reason": "e-Warong holds KPM cards"}, operator).status_code == 200
        assert edc.purchase(person.pan, person.pin, 5_000)["39"] == rc.NOT_PERMITTED_TERMINAL
        assert edc.reversal(bought)["39"] == rc.APPROVED  # money owed back still goes back
    finally:
        edc.close()
    assert network.balance_of(person.pan) == 150_000

    network.stop_switch()
    network.start_switch()
    edc = raw_terminal(network, serial=1)
    try:
        assert edc.sign_on()["39"] == rc.APPROVED
        assert edc.purchase(person.pan, person.pin, 5_000)["39"] == rc.NOT_PERMITTED_TERMINAL  # kept in the journal
        operator = network.ops_headers(OPERATOR, "bni")
        assert ops_post(network, "/v1/terminals/BNI00001/unblock", {"reason": "cards returned"}, operator).status_code == 200
        assert edc.purchase(person.pan, person.pin, 5_000)["39"] == rc.APPROVED
    finally:
        edc.close()
    assert network.balance_of(person.pan) == 145_000


def test_a_kpm_blocked_by_wrong_pins_pays_again_after_a_reset_asked_through_the_switch(network: Network, balanced: None) -> None:
    person = SPENDABLE[1]
    wrong = "000000" if person.pin != "000000" else "111111"
    edc = raw_terminal(network, serial=2)
    try:
        assert edc.sign_on()["39"] == rc.APPROVED
        assert [edc.purchase(person.pan, wrong, 1_000)["39"] for _ in range(3)] == [rc.WRONG_PIN, rc.WRONG_PIN, rc.PIN_TRIES_EXCEEDED]
        refused = ops_post(network, "/v1/cards/pin-reset", {"pan": person.pan, **REASON}, network.ops_headers(OPERATOR, "bri"))
        assert refused.status_code == 403
        reset = ops_post(network, "/v1/cards/pin-reset", {"pan": person.pan, "reason": "KPM at the counter"}, network.ops_headers(OPERATOR, "bni"))
        assert reset.status_code == 200, reset.text
        assert reset.json() == {"bank": "bni", "pan_masked": mask_pan(person.pan), "card_status": reset.json()["card_status"], "pin_tries_left": 3}
        assert edc.purchase(person.pan, person.pin, 1_000)["39"] == rc.APPROVED
    finally:
        edc.close()


def test_an_operator_retry_delivers_a_stored_reversal(network: Network, balanced: None) -> None:
    person = SPENDABLE[2]
    edc = raw_terminal(network, serial=3)
    try:
        assert edc.sign_on()["39"] == rc.APPROVED
        bought = edc.purchase_doc(person.pan, person.pin, 12_000)
        assert edc.exchange(bought)["39"] == rc.APPROVED
    finally:
        edc.close()
    assert network.balance_of(person.pan) == 138_000
    network.stop_switch()  # no SAF loop: only the operator's retry sends the reversal
    settings = network.switch_settings()
    journal = Journal(database_for(settings))
    try:
        day = protocol.transmission_date(bought["7"], date.today())
        body = reversal_body(bought["41"], bought["42"], person.pan, 12_000, bought["11"], day)
        saf_id = journal.enqueue_saf("000000999999", "bni", body, journal_now())  # as the switch stores one
        banks = BankClient({"bni": network.banks["bni"].url}, 5_000, 2, settings.bank_credentials_by_code())
        with TestClient(create_ops_app(journal, banks=banks), headers=bearer(issue(journal.db, ADMIN))) as client:
            retried = post(client, f"/v1/saf/{saf_id}/retry")
            client.portal.call(banks.close)
        assert retried["acknowledged_at"] is not None and retried["attempts"][-1]["detail"] == "rc 00"
        assert network.balance_of(person.pan) == 150_000
        with journal.db.read() as conn:
            assert conn.execute(select(func.count()).select_from(AuditRecord).where(AuditRecord.action == "saf.retry")).scalar_one() == 1
    finally:
        journal.db.dispose()
        network.start_switch()


def journal_now():  # noqa: ANN201
    from switch.runtime import wib_now

    return wib_now()
