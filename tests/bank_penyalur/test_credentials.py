"""Who may call the bank: the switch on what the switch calls, the bank's operators (or the
switch) on operations, anyone on /health and /metrics. On SQLite and PostgreSQL, and end to end
through the switch.

Scenarios: a stranger, a stranger guessing a credential of the right length, an operator trying
to post an authorisation, the switch; every route of the bank's API is placed in a group and
documented with its lock; a switch holding a wrong credential gets nothing posted, and the
reversals it stores wait for the right credential instead of being lost.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Iterator
from datetime import date

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from pydantic import SecretStr, ValidationError

from shared import rc
from shared.banks import get_bank
from shared.credentials import OPERATOR, SWITCH, bearer, demo_credential

from bank_penyalur.api import credentials
from bank_penyalur.api.app import create_app
from bank_penyalur.demo import fixture, generator
from bank_penyalur.settings import BankSettings
from switch.settings import SwitchSettings
from tests.bank_penyalur.conftest import PERIOD, Bank, start_bank
from tests.bounded import wait_until
from tests.switch.network import Network, network_per_storage, raw_terminal

BNI = get_bank("bni")
SENDERS = ("nobody", "wrong", OPERATOR, SWITCH)
SWITCH_ONLY = {"nobody": 401, "wrong": 401, OPERATOR: 403, SWITCH: 200}
OPERATIONS = {"nobody": 401, "wrong": 401, OPERATOR: 200, SWITCH: 200}


def same_length_wrong(credential: str) -> str:
    """The credential with its last character changed: as long as the real one, and wrong."""
    return credential[:-1] + ("0" if credential[-1] != "0" else "1")


def clients(bank: Bank, app: FastAPI | None = None) -> dict[str, TestClient]:
    """One client per kind of caller, all on the same bank application."""
    app = app or create_app(bank.runtime)
    settings = bank.runtime.settings
    headers = {
        "nobody": {},
        "wrong": bearer(same_length_wrong(settings.credential(SWITCH))),
        OPERATOR: settings.bearer(OPERATOR),
        SWITCH: settings.bearer(SWITCH),
    }
    return {sender: TestClient(app, headers=h, raise_server_exceptions=False) for sender, h in headers.items()}


Send = Callable[[TestClient], Response]


def authorisation_requests(bank: Bank) -> dict[str, Send]:
    """Everything the switch calls; each call is a new request (its own STAN)."""

    def body(label: str = "normal", amount_idr: int = 1_000) -> dict:
        return bank.purchase_request(label, amount_idr).model_dump(mode="json")

    def inquiry() -> dict:
        return {k: v for k, v in body("pkh_combo").items() if k != "amount_idr"}

    def reversal() -> dict:
        return bank.reversal_request(bank.purchase_request("pkh_combo", 1_000)).model_dump(mode="json")

    return {
        "balance inquiry": lambda c: c.post("/v1/authorisations/balance-inquiry", json=inquiry()),
        "purchase": lambda c: c.post("/v1/authorisations/purchase", json=body()),
        "reversal": lambda c: c.post("/v1/authorisations/reversal", json=reversal()),
        "advice": lambda c: c.post("/v1/authorisations/advice", json=bank.advice_request("normal", 1_000).model_dump(mode="json")),
        "offline card list": lambda c: c.get("/v1/offline/card-list"),
        "postings": lambda c: c.get("/v1/postings", params={"date": bank.today.isoformat()}),
    }


def operations_requests(bank: Bank) -> dict[str, Send]:
    """The bank's staff at work; a card action takes a fresh card each time."""
    spare = (g for g in (generator.generated_kpm(BNI, i) for i in range(20)) if g.spendable)
    normal = bank.cards["normal"].pan
    family = generator.generated_kpm(BNI, 0).record
    merchant = {"id": "EWBNI0000000777", "name": "e-Warong Uji", "province": family.province, "regency": family.regency,
                "district": family.district, "village": family.village}
    reset = {"actor": "ops", "reason": "KPM lupa PIN"}
    return {
        "card": lambda c: c.get(f"/v1/cards/{normal}"),
        "block a card": lambda c: c.post(f"/v1/cards/{next(spare).pan}/block", json={"reason": "Diblokir"}),
        "PIN reset": lambda c: c.post(f"/v1/ops/cards/{normal}/pin-reset", json=reset),
        "audit trail": lambda c: c.get("/v1/ops/audit"),
        "ledger check": lambda c: c.get("/v1/ops/ledger-check"),
        "KPM": lambda c: c.get(f"/v1/kpm/{family.nik}"),
        "account opening": lambda c: c.post("/v1/kpm/openings", json={"kpm": [family.model_dump(mode="json")], "print_cards": False}),
        "merchant registration": lambda c: c.post("/v1/merchants", json={"merchants": [merchant]}),
        "merchant": lambda c: c.get(f"/v1/merchants/{bank.merchant_id}"),
        "disbursement": lambda c: c.post("/v1/disbursements", json={"period": PERIOD, "amount_idr": 150_000}),
        "disbursement runs": lambda c: c.get("/v1/disbursements"),
        "report": lambda c: c.get("/v1/reports", params={"period": PERIOD}),
        "offline exceptions": lambda c: c.get("/v1/reports/offline-exceptions", params={"period": PERIOD}),
    }


def answers(bank: Bank, send: Send) -> dict[str, int]:
    """The status each kind of caller gets for the request, 2xx counted as 200."""
    by_sender = clients(bank)
    statuses = {sender: send(by_sender[sender]).status_code for sender in SENDERS}
    return {sender: 200 if 200 <= status < 300 else status for sender, status in statuses.items()}


# -- the route groups -------------------------------------------------------------------------


def test_authorisation_endpoints_take_the_switch_only(bank) -> None:  # noqa: ANN001
    before = bank.balance("normal")
    for name, send in authorisation_requests(bank).items():
        assert answers(bank, send) == SWITCH_ONLY, name
    assert bank.balance("normal") == before - 1_000 - 1_000  # the switch's purchase and advice, nobody else's


def test_operations_endpoints_take_an_operator_or_the_switch(bank) -> None:  # noqa: ANN001
    for name, send in operations_requests(bank).items():
        assert answers(bank, send) == OPERATIONS, name


def test_health_metrics_and_the_api_description_are_open(bank) -> None:  # noqa: ANN001
    stranger = clients(bank)["nobody"]
    for path in ("/health", "/metrics", "/openapi.json", "/docs", "/redoc"):
        assert stranger.get(path).status_code == 200, path


def test_every_route_is_closed_to_strangers_and_placed_in_one_group(bank) -> None:  # noqa: ANN001
    """Every operation of the API description; a path in no group is an operations path, so a
    route added later is closed too."""
    app = create_app(bank.runtime)
    by_sender = clients(bank, app)
    operations = [(method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item if path != "/health"]
    assert len(operations) >= 25
    switch_only = 0
    for method, route in operations:
        path = re.sub(r"\{[^}]+\}", "9360000900000014", route)
        assert by_sender["nobody"].request(method, path, json={}).status_code == 401, (method, route)
        refused_operator = by_sender[OPERATOR].request(method, path, json={}).status_code == 403
        assert refused_operator == route.startswith(("/v1/authorisations", "/v1/offline", "/v1/postings")), route
        switch_only += refused_operator
    assert switch_only == 7  # four authorisations and their batch, the card list, postings


# -- the answers and the comparison -------------------------------------------------------------


def test_refusals_are_clear_json(bank) -> None:  # noqa: ANN001
    by_sender = clients(bank)
    missing = by_sender["nobody"].get("/v1/offline/card-list")
    assert missing.status_code == 401
    assert missing.json() == {"detail": "missing credential: send 'Authorization: Bearer <credential>'"}
    assert missing.headers["www-authenticate"] == 'Bearer realm="bank-bni"'
    assert by_sender["wrong"].get("/v1/offline/card-list").json() == {"detail": "credential not recognised"}
    wrong_kind = by_sender[OPERATOR].get("/v1/offline/card-list")
    assert wrong_kind.status_code == 403
    assert wrong_kind.json() == {"detail": "this endpoint is for the switch only; the operator credential is not accepted here"}


def test_a_credential_must_match_exactly(bank) -> None:  # noqa: ANN001
    app = create_app(bank.runtime)
    switch = bank.runtime.settings.credential(SWITCH)
    near_misses = {
        "last character changed": same_length_wrong(switch),
        "first character changed": ("0" if switch[0] != "0" else "1") + switch[1:],
        "lower case": switch.lower(),
        "one character short": switch[:-1],
        "one character more": switch + "0",
        "another bank's": demo_credential("bri", SWITCH),
    }
    for name, credential in near_misses.items():
        assert credential != switch
        answer = TestClient(app).get("/v1/offline/card-list", headers=bearer(credential))
        assert answer.status_code == 401, name
    for header in (f"Basic {switch}", switch, "Bearer", f"Bearer  {switch}  "):
        expected = 200 if header.strip().endswith(switch) and header.startswith("Bearer") else 401
        assert TestClient(app).get("/v1/offline/card-list", headers={"Authorization": header}).status_code == expected, header
    assert TestClient(app).get("/v1/offline/card-list", headers={"authorization": f"bearer {switch}"}).status_code == 200


def test_credentials_are_compared_in_constant_time(bank, monkeypatch) -> None:  # noqa: ANN001
    assert credentials.compare_digest is hmac.compare_digest
    compared: list[tuple[bytes, bytes]] = []

    def spy(given: bytes, expected: bytes) -> bool:
        compared.append((given, expected))
        return hmac.compare_digest(given, expected)

    monkeypatch.setattr(credentials, "compare_digest", spy)
    settings = bank.runtime.settings
    wrong = same_length_wrong(settings.credential(SWITCH))
    assert TestClient(create_app(bank.runtime)).get("/v1/ops/audit", headers=bearer(wrong)).status_code == 401
    # Both credentials compared every time, whichever matches: no early way out to time.
    assert compared == [(wrong.encode(), settings.credential(SWITCH).encode()), (wrong.encode(), settings.credential(OPERATOR).encode())]


def test_no_request_body_is_read_before_the_credential(bank) -> None:  # noqa: ANN001
    stranger = clients(bank)["nobody"]
    too_large = b"x" * (bank.runtime.settings.auth_body_max_bytes + 1)
    answer = stranger.post("/v1/authorisations/purchase", content=too_large, headers={"content-type": "application/json"})
    assert answer.status_code == 401  # not 413: refused before the body was looked at


# -- the API description -------------------------------------------------------------------------


def test_the_openapi_document_shows_the_lock_on_every_protected_operation(bank) -> None:  # noqa: ANN001
    document = clients(bank)["nobody"].get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes[SWITCH]["type"] == schemes[OPERATOR]["type"] == "http"
    assert schemes[SWITCH]["scheme"] == schemes[OPERATOR]["scheme"] == "bearer"
    assert "SEMBAKO_BANK_SWITCH_CREDENTIAL" in schemes[SWITCH]["description"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            if path == "/health":
                assert "security" not in operation, where
            elif path.startswith(("/v1/authorisations", "/v1/offline", "/v1/postings")):
                assert operation["security"] == [{SWITCH: []}], where
                assert {"401", "403"} <= set(operation["responses"]), where
            else:
                assert operation["security"] == [{OPERATOR: []}, {SWITCH: []}], where
                assert "401" in operation["responses"], where


# -- the settings ----------------------------------------------------------------------------------


def test_credentials_from_the_environment_replace_the_demo_ones(storage, clock, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("SEMBAKO_BANK_SWITCH_CREDENTIAL", "switch-at-bni-" + "7" * 24)
    monkeypatch.setenv("SEMBAKO_BANK_OPERATOR_CREDENTIAL", "ops-at-bni-" + "8" * 24)
    runtime = start_bank(storage, clock, kpm=0)
    try:
        assert runtime.settings.demo_credential_names == ()
        client = TestClient(create_app(runtime))
        assert client.get("/v1/offline/card-list", headers=bearer("switch-at-bni-" + "7" * 24)).status_code == 200
        assert client.get("/v1/ops/audit", headers=bearer("ops-at-bni-" + "8" * 24)).status_code == 200
        for holder in (SWITCH, OPERATOR):
            assert client.get("/v1/ops/audit", headers=bearer(demo_credential("bni", holder))).status_code == 401
        assert "demo credentials" not in client.get("/health").json()["warning"]
        assert "********" in repr(runtime.settings) and "7" * 24 not in repr(runtime.settings)
    finally:
        runtime.close()


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"switch_credential": "short"}, "16 to 256 characters"),
        ({"switch_credential": "x" * 257}, "16 to 256 characters"),
        ({"operator_credential": "with a space in it!"}, "no spaces"),
        ({"switch_credential": "same-for-both-0123456789", "operator_credential": "same-for-both-0123456789"}, "must differ"),
    ],
    ids=["too-short", "too-long", "spaces", "the-same-twice"],
)
def test_a_credential_setting_of_the_wrong_shape_is_refused_without_repeating_it(given: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as refused:
        BankSettings(**given)
    for value in given.values():
        assert value not in str(refused.value)


def test_the_switch_sends_its_setting_or_the_demo_credential() -> None:
    settings = SwitchSettings(bank_credentials={"bri": "switch-at-bri-" + "5" * 24})
    assert settings.bank_credential_for("bri") == "switch-at-bri-" + "5" * 24
    assert settings.bank_credential_for("bni") == demo_credential("bni", SWITCH) == BankSettings(bank="bni").credential(SWITCH)
    assert set(settings.bank_credentials_by_code()) == set(settings.bank_urls)
    with pytest.raises(ValidationError, match="banks the network does not have: xyz"):
        SwitchSettings(bank_credentials={"xyz": "0" * 32})
    with pytest.raises(ValidationError, match="no spaces"):
        SwitchSettings(bank_credentials={"bni": "not a credential at all"})


# -- end to end: the switch and its credential ---------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def network(request, tmp_path_factory) -> Iterator[Network]:  # noqa: ANN001
    yield from network_per_storage(request, tmp_path_factory, "credentials")


def restart_switch(network: Network, credential: str | None) -> None:
    """The switch again, sending `credential` to BNI (None: its settings' default, the demo one)."""
    network.stop_switch()
    settings = type(network).switch_settings
    if credential is None:
        network.switch_settings = lambda: settings(network)  # type: ignore[method-assign]
    else:
        update = {"bank_credentials": {"bni": SecretStr(credential)}}
        network.switch_settings = lambda: settings(network).model_copy(update=update)  # type: ignore[method-assign]
    network.start_switch()


def test_the_switch_is_refused_without_its_credential_and_nothing_is_lost(network) -> None:  # noqa: ANN001
    spendable = (g for g in (generator.generated_kpm(BNI, i) for i in range(40)) if g.spendable)
    buyer, stranger = next(spendable), next(spendable)
    normal = next(c for c in fixture.demo_cards(BNI) if c.label == "normal")
    start = {p.pan: network.balance_of(p.pan) for p in (buyer, stranger, normal)}

    # With its credential, the switch's purchase is approved.
    edc = raw_terminal(network, serial=1)
    assert edc.sign_on()["39"] == rc.APPROVED
    purchase = edc.purchase_doc(buyer.pan, buyer.pin, 20_000)
    assert edc.exchange(purchase)["39"] == rc.APPROVED
    edc.close()

    # With a wrong one: every authorisation is refused by the bank, the terminal hears 91.
    restart_switch(network, same_length_wrong(demo_credential("bni", SWITCH)))
    edc = raw_terminal(network, serial=1)
    try:
        assert edc.sign_on()["39"] == rc.APPROVED  # the switch's own business: no bank involved
        assert edc.inquiry(normal.pan, normal.pin)["39"] == rc.ISSUER_UNAVAILABLE
        assert edc.purchase(stranger.pan, stranger.pin, 10_000)["39"] == rc.ISSUER_UNAVAILABLE
        # The reversal of the earlier purchase is stored; the refusals do not acknowledge it.
        assert edc.reversal(purchase)["39"] == rc.APPROVED
        assert wait_until(lambda: any(e.attempts >= 2 and e.last_error == "HTTP 401" for e in network.switch.journal.pending_saf()))
    finally:
        edc.close()
    assert network.balance_of(stranger.pan) == start[stranger.pan]
    assert network.balance_of(buyer.pan) == start[buyer.pan] - 20_000  # not yet reversed
    log = (network.tmp / "logs" / "bank-bni.log").read_text()
    assert "refused POST /v1/authorisations/purchase" in log and "credential not recognised" in log

    # The credential fixed: the stored reversal goes through and gives the money back.
    restart_switch(network, None)
    assert wait_until(lambda: network.switch.journal.pending_saf() == [])
    assert network.balance_of(buyer.pan) == start[buyer.pan]
    network.assert_ledger_balanced()


def test_the_switch_reads_card_lists_and_postings_with_its_credential(network) -> None:  # noqa: ANN001
    banks = network.switch.banks
    card_list = network.call(banks.card_list("bni", 10_000, 4 * 1024 * 1024))
    assert isinstance(card_list, dict) and card_list["bank"] == "bni"
    page = network.call(banks.postings("bni", {"date": date.today().isoformat()}, 10_000, 4 * 1024 * 1024))
    assert isinstance(page, dict) and page["bank"] == "bni"
