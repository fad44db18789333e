"""The bank's HTTP API as the switch and the bank's staff use it, on SQLite and PostgreSQL.

Scenarios: a terminal sends rubbish and nothing moves; a KPM buys food and the EDC retries;
a family is registered, gets a card, loses it and gets a new one with the same balance;
an operator unblocks a PIN and the audit trail shows who did it and why.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from shared.cards import luhn_valid, make_pan, mask_pan

from shared.banks import get_bank
from tests.bank_penyalur.conftest import api_client

PURCHASE = "/v1/authorisations/purchase"
WATCHED = ("normal", "pkh_combo", "replaced_new", "zero_balance", "pin_blocked")
NEW_PIN = "246810"

# Families sent for collective account opening (burekol) in the lifecycle scenario.
WATI = {
    "nik": "3204014512860901",
    "kk_number": "3204011512060901",
    "name": "Wati Suryani",
    "first_period": "2026-11",
    "province": "Jawa Barat",
    "regency": "Kabupaten Bandung",
    "district": "Soreang",
    "village": "Pamekaran",
}
BAD_NIK = {**WATI, "nik": "32040145128609", "name": "NIK kurang dua digit"}
BAD_KK = {**WATI, "nik": "3204014512860902", "kk_number": "320401", "name": "Dedi Kurniawan"}


@pytest.fixture
def client(bank) -> TestClient:  # noqa: ANN001
    # Server errors come back as 500 responses instead of exceptions: the tests look for them.
    return api_client(bank.runtime, raise_server_exceptions=False)


def purchase_body(bank, label: str = "normal", amount_idr: int = 10_000, pin: str | None = None, **overrides) -> dict:  # noqa: ANN001, ANN003
    card = bank.cards[label]
    pan = overrides.pop("pan", card.pan)
    body = {
        "terminal_id": "EDC00001",
        "stan": bank.next_stan(),
        "transmission_date": bank.today.isoformat(),
        "merchant_id": bank.merchant_id,
        "pan": pan,
        "pin_block": bank.pin_block(pan, pin or card.pin) if pan.isdigit() else bank.pin_block(card.pan, card.pin),
        "amount_idr": amount_idr,
    }
    return {**body, **overrides}


def pan_purchase(client: TestClient, bank, pan: str, pin: str, amount_idr: int) -> dict:  # noqa: ANN001
    """A purchase on a card that is not one of the named demo cards."""
    body = purchase_body(bank, "normal", amount_idr, pan=pan, pin_block=bank.pin_block(pan, pin))
    response = client.post(PURCHASE, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def snapshot(client: TestClient, bank) -> dict:  # noqa: ANN001
    check = client.get("/v1/ops/ledger-check").json()
    assert check["ok"] is True and check["balance_sum_idr"] == 0, check
    return {"transfers": check["transfers"], **{label: bank.balance(label) for label in WATCHED}}


def error_fields(response) -> set[str]:  # noqa: ANN001
    return {str(error["loc"][-1]) for error in response.json()["detail"]}


# -- bad input: refused, never a 500, nothing moves ------------------------------------------


def test_malformed_requests_are_422_naming_the_field_and_change_nothing(bank, client) -> None:  # noqa: ANN001
    before = snapshot(client, bank)

    broken = client.post(PURCHASE, content=b'{"terminal_id": "EDC00001", "stan": ', headers={"content-type": "application/json"})
    assert broken.status_code == 422, broken.text
    assert broken.json()["detail"][0]["type"] == "json_invalid"

    not_an_object = client.post(PURCHASE, json=[purchase_body(bank)])
    assert not_an_object.status_code == 422, not_an_object.text

    valid = purchase_body(bank)
    without_pan = {k: v for k, v in purchase_body(bank).items() if k not in ("pan", "pin_block")}
    cases = {
        "amount as string": ({**valid, "amount_idr": "1500"}, "amount_idr"),
        "amount as float": ({**valid, "amount_idr": 1500.5}, "amount_idr"),
        "amount as whole float": ({**valid, "amount_idr": 1500.0}, "amount_idr"),
        "amount as bool": ({**valid, "amount_idr": True}, "amount_idr"),
        "amount missing": ({k: v for k, v in valid.items() if k != "amount_idr"}, "amount_idr"),
        "pan and pin block missing": (without_pan, "pan"),
        "extra field": ({**valid, "cvv2": "123"}, "cvv2"),
        "PAN of 40 digits": ({**valid, "pan": "9" * 40}, "pan"),
        "STAN of 5 digits": ({**valid, "stan": "12345"}, "stan"),
        "STAN with a letter": ({**valid, "stan": "12345A"}, "stan"),
        "STAN as number": ({**valid, "stan": 123456}, "stan"),
        "PIN block not hex": ({**valid, "pin_block": "ZZZZZZZZZZZZZZZZ"}, "pin_block"),
        "PIN block too short": ({**valid, "pin_block": "0123456789ABCDE"}, "pin_block"),
        "impossible date": ({**valid, "transmission_date": "2026-13-01"}, "transmission_date"),
        "terminal id of 9 chars": ({**valid, "terminal_id": "EDC000001"}, "terminal_id"),
        "processing code of letters": ({**valid, "processing_code": "ABCDEF"}, "processing_code"),
    }
    for name, (body, field) in cases.items():
        response = client.post(PURCHASE, json=body)
        assert response.status_code == 422, (name, response.status_code, response.text)
        assert field in error_fields(response), (name, response.json())
    assert "pin_block" in error_fields(client.post(PURCHASE, json=without_pan))

    assert snapshot(client, bank) == before


def test_business_refusals_are_response_codes_and_change_nothing(bank, client) -> None:  # noqa: ANN001
    before = snapshot(client, bank)
    iin = bank.runtime.bank.iin
    normal = bank.cards["normal"].pan
    wrong_check_digit = normal[:-1] + str((int(normal[-1]) + 1) % 10)
    unknown = make_pan(iin, 999_999)
    other_bank = make_pan(get_bank("bri").iin, 1)  # BRI's own "normal" demo card
    assert luhn_valid(unknown) and luhn_valid(other_bank) and not luhn_valid(wrong_check_digit)

    cases = {
        "zero amount": (purchase_body(bank, amount_idr=0), "13"),
        "negative amount": (purchase_body(bank, amount_idr=-1_500), "13"),
        "unknown card of this bank": (purchase_body(bank, pan=unknown), "14"),
        "bad Luhn": (purchase_body(bank, pan=wrong_check_digit), "14"),
        "empty PAN": (purchase_body(bank, pan=""), "14"),
        "another bank's card": (purchase_body(bank, pan=other_bank), "14"),
        "unknown e-Warong": (purchase_body(bank, merchant_id="EWBNI9999999999"), "58"),
        "another bank's e-Warong": (purchase_body(bank, merchant_id="EWBRI0000000001"), "58"),
        "cash withdrawal": (purchase_body(bank, processing_code="010000"), "57"),
    }
    for name, (body, code) in cases.items():
        response = client.post(PURCHASE, json=body)
        assert response.status_code == 200, (name, response.text)
        answer = response.json()
        assert (answer["rc"], answer["approval_code"]) == (code, None), (name, answer)
        assert answer["stan"] == body["stan"] and answer["terminal_id"] == "EDC00001", (name, answer)

    assert snapshot(client, bank) == before


@pytest.mark.parametrize("amount_idr", [2**63, 10**20, -(10**20)])
def test_amount_beyond_bigint_is_refused_not_a_500(bank, client, amount_idr: int) -> None:  # noqa: ANN001
    before = snapshot(client, bank)
    response = client.post(PURCHASE, json=purchase_body(bank, amount_idr=amount_idr))
    # Either refused by validation (naming the field) or answered "invalid amount"; never a 500.
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert error_fields(response) == {"amount_idr"}
    else:
        assert (response.json()["rc"], response.json()["approval_code"]) == ("13", None)
    assert snapshot(client, bank) == before


def test_stan_of_non_ascii_digits_is_422(bank, client) -> None:  # noqa: ANN001
    before = snapshot(client, bank)
    response = client.post(PURCHASE, json=purchase_body(bank, stan="\u0661\u0662\u0663\u0664\u0665\u0666"))
    assert response.status_code == 422, response.text
    assert error_fields(response) == {"stan"}
    assert snapshot(client, bank) == before


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", PURCHASE, "pan"),
        ("get", "/v1/cards/%00", None),
        ("get", "/v1/kpm/%00", None),
        ("post", "/v1/kpm/openings", "nik"),
    ],
    ids=["purchase-pan", "get-card", "get-kpm", "opening-nik"],
)
def test_nul_character_in_text_is_not_a_500(bank, client, method: str, path: str, body: str | None) -> None:  # noqa: ANN001
    """PostgreSQL cannot store NUL (0x00) in text: it must be refused, not crash the request."""
    before = snapshot(client, bank)
    if body == "pan":
        response = client.post(path, json=purchase_body(bank, pan="936000090000\x00"))
    elif body == "nik":
        response = client.post(path, json={"kpm": [{**WATI, "nik": "320401451286090\x00"}], "print_cards": False})
    else:
        response = getattr(client, method)(path)
    assert response.status_code < 500, response.text
    assert snapshot(client, bank) == before


# -- a purchase over HTTP, and the EDC's retry --------------------------------------------------


def test_purchase_debits_once_and_a_retry_gets_the_identical_answer(bank, client) -> None:  # noqa: ANN001
    before = snapshot(client, bank)
    shop_before = client.get(f"/v1/merchants/{bank.merchant_id}").json()["balance_idr"]
    body = purchase_body(bank, amount_idr=37_500, rrn="631012000001")

    first = client.post(PURCHASE, json=body)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["rc"] == "00"
    assert re.fullmatch(r"\d{6}", answer["approval_code"])
    assert answer["balance_idr"] == before["normal"] - 37_500 == bank.balance("normal")
    assert (answer["amount_idr"], answer["rrn"], answer["stan"]) == (37_500, "631012000001", body["stan"])

    retry = client.post(PURCHASE, json=body)
    assert retry.status_code == 200
    assert retry.content == first.content

    tampered = client.post(PURCHASE, json={**body, "amount_idr": 40_000})
    assert tampered.status_code == 200
    assert (tampered.json()["rc"], tampered.json()["approval_code"]) == ("94", None)

    after = snapshot(client, bank)
    assert after["transfers"] == before["transfers"] + 1
    assert after["normal"] == before["normal"] - 37_500
    assert client.get(f"/v1/merchants/{bank.merchant_id}").json()["balance_idr"] == shop_before + 37_500


# -- a family from registration to a replaced card ----------------------------------------------


def test_card_lifecycle_from_opening_to_replacement(bank, client) -> None:  # noqa: ANN001
    opened = client.post("/v1/kpm/openings", json={"kpm": [WATI, BAD_NIK, BAD_KK], "print_cards": False})
    assert opened.status_code == 201, opened.text
    wati, bad_nik, bad_kk = opened.json()
    assert (wati["result"], wati["emoney"], wati["reason"]) == ("opened", "set", None)
    assert wati["account_no"] and wati["pan_masked"] is None  # no card printed in this batch
    assert (bad_nik["result"], bad_nik["kpm_id"]) == ("failed", None)
    assert "NIK" in bad_nik["reason"]
    assert (bad_kk["result"], bad_kk["emoney"]) == ("opened", "failed")

    family = client.get(f"/v1/kpm/{WATI['nik']}").json()
    assert family["name"] == "Wati Suryani" and family["cards"] == []
    assert [(s["kind"], s["balance_idr"]) for s in family["sub_accounts"]] == [("emoney", 0)]
    assert client.get(f"/v1/kpm/{BAD_KK['nik']}").json()["sub_accounts"] == []
    assert client.get(f"/v1/kpm/{BAD_NIK['nik']}").status_code == 404

    # Print, distribute, activate with the PIN the KPM typed on the bank's PIN pad.
    printed = client.post("/v1/cards", json={"nik": WATI["nik"]})
    assert printed.status_code == 201, printed.text
    card = printed.json()
    pan = card["pan"]
    assert len(pan) == 16 and luhn_valid(pan) and pan.startswith(bank.runtime.bank.iin)
    assert (card["status"], card["pan_masked"], card["balance_idr"]) == ("printed", mask_pan(pan), 0)
    early = client.post(f"/v1/cards/{pan}/activate", json={"pin_block": bank.pin_block(pan, NEW_PIN)})
    assert early.status_code == 409
    assert "cannot activate a card that is printed" in early.json()["detail"]
    assert client.post(f"/v1/cards/{pan}/distribute", json={"actor": "pendamping-01"}).json()["status"] == "distributed"
    activated = client.post(f"/v1/cards/{pan}/activate", json={"pin_block": bank.pin_block(pan, NEW_PIN)})
    assert activated.status_code == 200, activated.text
    assert (activated.json()["status"], activated.json()["pin_tries_left"]) == ("activated", 3)

    again = client.post(f"/v1/cards/{pan}/distribute", json={})
    assert again.status_code == 409
    assert again.json()["detail"] == "cannot distribute a card that is activated (needs: printed)"
    early_replace = client.post(f"/v1/cards/{pan}/replace", json={"reason": "minta kartu baru"})
    assert early_replace.status_code == 409 and "cannot replace" in early_replace.json()["detail"]

    # Zero balance before the monthly credit; then the disbursement arrives, once.
    assert pan_purchase(client, bank, pan, NEW_PIN, 10_000)["rc"] == "51"
    assert client.post("/v1/disbursements", json={"period": "2026-11"}).status_code == 200
    assert client.get(f"/v1/cards/{pan}").json()["balance_idr"] == 150_000
    assert client.post("/v1/disbursements", json={"period": "2026-11"}).status_code == 200
    assert client.get(f"/v1/cards/{pan}").json()["balance_idr"] == 150_000

    bought = pan_purchase(client, bank, pan, NEW_PIN, 40_000)
    assert (bought["rc"], bought["balance_idr"]) == ("00", 110_000)

    # The card is lost: refused at once; the replacement reaches the same balance.
    lost = client.post(f"/v1/cards/{pan}/report-lost", json={"actor": "cs-cabang", "reason": "hilang di pasar"})
    assert lost.json()["status"] == "lost"
    assert pan_purchase(client, bank, pan, NEW_PIN, 10_000)["rc"] == "41"

    replaced = client.post(f"/v1/cards/{pan}/replace", json={"actor": "cs-cabang", "reason": "ganti kartu hilang"})
    assert replaced.status_code == 201, replaced.text
    new = replaced.json()
    new_pan = new["pan"]
    assert new_pan != pan and luhn_valid(new_pan)
    assert (new["status"], new["replaces_pan_masked"], new["balance_idr"]) == ("printed", mask_pan(pan), 110_000)
    assert pan_purchase(client, bank, pan, NEW_PIN, 10_000)["rc"] == "41"  # lost, then replaced: still lost
    assert client.get(f"/v1/cards/{pan}").json()["status"] == "replaced"
    assert pan_purchase(client, bank, new_pan, "975310", 10_000)["rc"] == "62"  # not activated yet

    client.post(f"/v1/cards/{new_pan}/distribute", json={})
    reactivated = client.post(f"/v1/cards/{new_pan}/activate", json={"pin_block": bank.pin_block(new_pan, "975310")})
    assert reactivated.status_code == 200, reactivated.text
    assert reactivated.json()["balance_idr"] == client.get(f"/v1/cards/{pan}").json()["balance_idr"] == 110_000
    assert pan_purchase(client, bank, new_pan, NEW_PIN, 10_000)["rc"] == "55"  # the old PIN is gone
    spent = pan_purchase(client, bank, new_pan, "975310", 25_000)
    assert (spent["rc"], spent["balance_idr"]) == ("00", 85_000)

    family = client.get(f"/v1/kpm/{WATI['nik']}").json()
    assert [(c["pan_masked"], c["status"]) for c in family["cards"]] == [
        (mask_pan(pan), "replaced"),
        (mask_pan(new_pan), "activated"),
    ]
    assert [(s["kind"], s["balance_idr"]) for s in family["sub_accounts"]] == [("emoney", 85_000)]


def test_family_without_emoney_account_gets_a_card_but_53(bank, client) -> None:  # noqa: ANN001
    client.post("/v1/kpm/openings", json={"kpm": [BAD_KK]})  # print_cards defaults to true
    family = client.get(f"/v1/kpm/{BAD_KK['nik']}").json()
    assert [c["status"] for c in family["cards"]] == ["printed"]
    printed = client.post("/v1/cards", json={"nik": BAD_KK["nik"]}).json()  # a second card, full PAN
    pan = printed["pan"]
    assert printed["balance_idr"] is None
    client.post(f"/v1/cards/{pan}/distribute", json={})
    client.post(f"/v1/cards/{pan}/activate", json={"pin_block": bank.pin_block(pan, NEW_PIN)})
    client.post("/v1/disbursements", json={"period": "2026-11"})
    assert pan_purchase(client, bank, pan, NEW_PIN, 10_000)["rc"] == "53"


def test_disbursement_reports_who_was_credited(bank, client) -> None:  # noqa: ANN001
    client.post("/v1/kpm/openings", json={"kpm": [WATI, BAD_KK], "print_cards": False})
    first = client.post("/v1/disbursements", json={"period": "2026-11"})
    assert first.status_code == 200, first.text
    report = first.json()
    assert (report["credited"], report["total_idr"]) == (1, 150_000)  # only the new family
    assert BAD_KK["nik"] in [f["nik"] for f in report["failed_sample"]]

    rerun = client.post("/v1/disbursements", json={"period": "2026-11"}).json()
    assert (rerun["credited"], rerun["total_idr"]) == (0, 0)
    assert rerun["already_credited"] == report["already_credited"] + 1
    runs = client.get("/v1/disbursements", params={"period": "2026-11"}).json()
    assert [r["credited"] for r in runs][-2:] == [1, 0]


def test_disbursement_input_is_validated(bank, client) -> None:  # noqa: ANN001
    before = snapshot(client, bank)
    for body, field in (
        ({"period": "2026-13"}, "period"),
        ({"period": "26-11"}, "period"),
        ({"period": "2026-12", "amount_idr": 0}, "amount_idr"),
        ({"period": "2026-12", "amount_idr": "150000"}, "amount_idr"),
        ({"period": "2026-12", "amount_idr": 150000.0}, "amount_idr"),
        ({}, "period"),
    ):
        response = client.post("/v1/disbursements", json=body)
        assert response.status_code == 422, (body, response.text)
        assert field in error_fields(response), (body, response.json())
    assert snapshot(client, bank) == before


def test_replaced_card_answers_41_if_it_was_lost_and_62_otherwise(bank, client) -> None:  # noqa: ANN001
    pan = bank.cards["normal"].pan
    client.post(f"/v1/cards/{pan}/report-lost", json={"reason": "hilang"})
    assert client.post(f"/v1/cards/{pan}/replace", json={"reason": "ganti"}).status_code == 201
    assert client.post(PURCHASE, json=purchase_body(bank)).json()["rc"] == "41"
    # The demo card replaced after damage is refused as restricted, not as lost.
    assert client.post(PURCHASE, json=purchase_body(bank, "replaced_old")).json()["rc"] == "62"


@pytest.mark.parametrize("kk_number", ["3204011512060901777", "1" * 32])
def test_over_long_kk_number_fails_the_emoney_account_not_the_request(bank, client, kk_number: str) -> None:  # noqa: ANN001
    response = client.post("/v1/kpm/openings", json={"kpm": [{**WATI, "kk_number": kk_number}]})
    assert response.status_code == 201, response.text
    assert (response.json()[0]["result"], response.json()[0]["emoney"]) == ("opened", "failed")


def test_unknown_cards_and_families_are_404(bank, client) -> None:  # noqa: ANN001
    unknown = make_pan(bank.runtime.bank.iin, 999_999)
    response = client.get(f"/v1/cards/{unknown}")
    assert response.status_code == 404
    assert response.json()["detail"] == f"no card {mask_pan(unknown)} at this bank"
    assert unknown not in response.text  # never echo a full PAN
    for action in ("distribute", "block", "report-lost", "replace"):
        assert client.post(f"/v1/cards/{unknown}/{action}", json={}).status_code == 404, action
    assert client.post(f"/v1/cards/{unknown}/activate", json={"pin_block": "0" * 16}).status_code == 404
    assert client.post("/v1/cards", json={"nik": "3204014512869999"}).status_code == 404
    assert client.get("/v1/kpm/3204014512869999").status_code == 404


def test_block_and_unblock_over_http(bank, client) -> None:  # noqa: ANN001
    pan = bank.cards["normal"].pan
    blocked = client.post(f"/v1/cards/{pan}/block", json={"actor": "fraud-desk", "reason": "kartu ganda"})
    assert blocked.json()["status"] == "blocked"
    assert client.post(PURCHASE, json=purchase_body(bank)).json()["rc"] == "62"
    assert client.post(f"/v1/cards/{pan}/unblock", json={}).json()["status"] == "activated"
    assert client.post(PURCHASE, json=purchase_body(bank)).json()["rc"] == "00"
    twice = client.post(f"/v1/cards/{pan}/unblock", json={})
    assert twice.status_code == 409
    assert twice.json()["detail"] == "cannot unblock a card that is activated (needs: blocked)"


# -- operations staff ---------------------------------------------------------------------------


def test_pin_unblock_by_operations_is_audited(bank, client) -> None:  # noqa: ANN001
    card = bank.cards["pin_blocked"]
    assert client.post(PURCHASE, json=purchase_body(bank, "pin_blocked")).json()["rc"] == "75"
    assert client.get(f"/v1/cards/{card.pan}").json()["pin_tries_left"] == 0

    reset = f"/v1/ops/cards/{card.pan}/pin-reset"
    missing_reason = client.post(reset, json={"actor": "ops.rina"})
    assert missing_reason.status_code == 422 and "reason" in error_fields(missing_reason)
    short_reason = client.post(reset, json={"actor": "ops.rina", "reason": "x"})
    assert short_reason.status_code == 422 and "reason" in error_fields(short_reason)
    missing_actor = client.post(reset, json={"reason": "KPM datang dengan KTP"})
    assert missing_actor.status_code == 422 and "actor" in error_fields(missing_actor)
    unknown = client.post(f"/v1/ops/cards/{make_pan(bank.runtime.bank.iin, 999_999)}/pin-reset",
                          json={"actor": "ops.rina", "reason": "KPM datang dengan KTP"})
    assert unknown.status_code == 404
    assert client.get("/v1/ops/audit").json() == []
    assert client.post(PURCHASE, json=purchase_body(bank, "pin_blocked")).json()["rc"] == "75"

    done = client.post(reset, json={"actor": "ops.rina", "reason": "KPM datang dengan KTP, PIN terblokir"})
    assert done.status_code == 200, done.text
    assert done.json()["pin_tries_left"] == 3
    assert client.post(PURCHASE, json=purchase_body(bank, "pin_blocked", pin="000000")).json()["rc"] == "55"
    approved = client.post(PURCHASE, json=purchase_body(bank, "pin_blocked", amount_idr=12_000)).json()
    assert approved["rc"] == "00"

    audit = client.get("/v1/ops/audit")
    assert audit.status_code == 200
    [entry] = audit.json()
    assert (entry["actor"], entry["action"], entry["target"], entry["reason"]) == (
        "ops.rina", "pin_unblock", mask_pan(card.pan), "KPM datang dengan KTP, PIN terblokir",
    )
    assert card.pan not in audit.text


def test_pin_reset_with_a_new_pin(bank, client) -> None:  # noqa: ANN001
    card = bank.cards["normal"]
    reset = client.post(
        f"/v1/ops/cards/{card.pan}/pin-reset",
        json={"actor": "ops.budi", "reason": "KPM lupa PIN", "new_pin_block": bank.pin_block(card.pan, NEW_PIN)},
    )
    assert reset.status_code == 200, reset.text
    assert client.post(PURCHASE, json=purchase_body(bank, pin=card.pin)).json()["rc"] == "55"
    assert client.post(PURCHASE, json=purchase_body(bank, pin=NEW_PIN)).json()["rc"] == "00"
    assert [(e["action"], e["actor"]) for e in client.get("/v1/ops/audit").json()] == [("pin_reset", "ops.budi")]
    bad_block = client.post(
        f"/v1/ops/cards/{card.pan}/pin-reset", json={"actor": "ops.budi", "reason": "lupa", "new_pin_block": "XYZ"}
    )
    assert bad_block.status_code == 422 and "new_pin_block" in error_fields(bad_block)


# -- the service itself ---------------------------------------------------------------------------


def test_health_openapi_and_docs(bank, client) -> None:  # noqa: ANN001
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert (health.json()["bank"], health.json()["database"]) == ("bni", bank.runtime.db.dialect)
    schema = client.get("/openapi.json")
    assert schema.status_code == 200
    assert {PURCHASE, "/v1/cards/{pan}/replace", "/v1/ops/cards/{pan}/pin-reset"} <= set(schema.json()["paths"])
    docs = client.get("/docs")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
