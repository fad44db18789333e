"""Who may do what on the switch's ops API: a role and bank-scope matrix over every route, on
SQLite and PostgreSQL, with the morning of traffic of test_ops_api.

Callers: no token, a malformed one, an unknown one, the right id with a wrong secret, an expired
one, a revoked one (each 401 with `WWW-Authenticate: Bearer`), and a viewer, an operator and an
admin of the switch, of BNI and of BRI. Every object the single-object routes name is BNI's (a
BNI purchase at BNI00001, the reversal owed to BNI, BNI's terminals, a BNI card), so a BRI token
meets another bank's object: 404 for an object in a path, 403 for a bank named in a parameter.
Then what each scope sees in the lists and totals. No answer carries a full card number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shared.banks import get_bank
from shared.cards import make_pan
from switch.controls import set_terminal_block
from switch.journal import Journal
from switch.ops import access
from switch.ops.app import create_ops_app
from switch.tables import ADMIN, OPERATOR, VIEWER
from tests.switch.ops_tokens import ISSUED_AT, bearer, issue
from tests.switch.test_journal import open_journal, transaction
from tests.switch.test_ops_api import ANI, DAY, FULL_PANS, PAN_RUN, SITI, rrn, rrns, seed

TODAY = DAY.isoformat()
ROLES = (VIEWER, OPERATOR, ADMIN)
PRINCIPALS = {f"{role} of {scope or 'the switch'}": (role, scope) for scope in (None, "bni", "bri") for role in ROLES}
REFUSED = ("no token", "malformed token", "unknown token", "wrong secret", "expired token", "revoked token")
REASON = {"reason": "checked at the ops desk"}


@dataclass
class Tokens:
    of: dict[str, str] = field(default_factory=dict)  # caller name -> token
    revoked_bni_id: str = ""


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # as the API description names it
    role: str  # the lowest role allowed
    ok: int  # the answer to an allowed caller
    other_bank: int  # the answer to BRI's allowed callers (BNI's objects)
    params: dict = field(default_factory=dict)
    body: dict | None = None

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}{'?' + '&'.join(self.params) if self.params else ''}"

    def url(self, tokens: Tokens) -> str:
        return concrete(self.path, tokens)


def concrete(path: str, tokens: Tokens) -> str:
    """`path` with its parameters filled with BNI's objects."""
    values = {"rrn": rrn(1), "saf_id": "2", "tid": "BNI00001", "token_id": tokens.revoked_bni_id, "day": TODAY, "bank": "bni"}
    return path.format(**values)


ROUTES = [
    Route("GET", "/v1/transactions", VIEWER, 200, 200),
    Route("GET", "/v1/transactions", VIEWER, 200, 403, params={"bank": "bni"}),
    Route("GET", "/v1/transactions/{rrn}", VIEWER, 200, 404),
    Route("GET", "/v1/saf", VIEWER, 200, 200),
    Route("GET", "/v1/stats/banks", VIEWER, 200, 200),
    Route("GET", "/v1/settlement", VIEWER, 200, 200, params={"date": TODAY}),
    Route("GET", "/v1/reconciliation", VIEWER, 200, 403, params={"date": TODAY, "tid": "BNI00001"}),
    Route("GET", "/v1/terminals", VIEWER, 200, 200),
    Route("GET", "/v1/terminals/{tid}", VIEWER, 200, 404),
    Route("GET", "/v1/alerts", VIEWER, 200, 200),
    Route("GET", "/v1/dashboard", VIEWER, 200, 200),
    Route("GET", "/v1/settlement/days/{day}", VIEWER, 200, 200),
    # Operator actions, on objects whose state refuses them (409): the matrix changes nothing.
    Route("POST", "/v1/saf/{saf_id}/retry", OPERATOR, 409, 404),  # entry 2: acknowledged by BNI already
    Route("POST", "/v1/saf/{saf_id}/cancel", OPERATOR, 409, 404, body=REASON),
    Route("POST", "/v1/terminals/{tid}/block", OPERATOR, 409, 404, body=REASON),  # BNI00001 is blocked (fixture)
    Route("POST", "/v1/terminals/{tid}/unblock", OPERATOR, 200, 404, body=REASON),  # the first one unblocks it ...
    Route("POST", "/v1/cards/pin-reset", OPERATOR, 503, 403, body={"pan": SITI, **REASON}),  # no link to the bank here
    Route("POST", "/v1/tokens", ADMIN, 201, 403, body={"role": "viewer", "scope": "bni"}),
    Route("GET", "/v1/tokens", ADMIN, 200, 200),
    Route("POST", "/v1/tokens/{token_id}/revoke", ADMIN, 409, 404, body=REASON),  # revoked already
    Route("GET", "/v1/audit", ADMIN, 200, 200),
]


def in_banks_matrix() -> set[tuple[str, str]]:
    """The operations whose matrix needs the banks or the POS: in test_ops_access_banks."""
    from tests.switch.test_ops_access_banks import OPERATIONS

    return OPERATIONS


def expected(route: Route, callers: list[str]) -> dict[str, int]:
    """What each caller gets, asked in order: an unblock succeeds once, then it is a conflict."""
    answers, done = {}, False
    for name in callers:
        role, bank = PRINCIPALS[name]
        if not access.Principal("x", role, bank).has_role(route.role):
            answers[name] = 403
        elif bank == "bri":
            answers[name] = route.other_bank
        else:
            answers[name] = 409 if done and route.path.endswith("/unblock") else route.ok
            done = True
    return answers


@pytest.fixture
def journal(storage, clock) -> Journal:  # noqa: ANN001
    opened = open_journal(storage)
    seed(opened, clock)
    with opened.db.begin() as conn:
        set_terminal_block(conn, "BNI00001", True, access.CLI_ACTOR, "kept KPM cards", clock.now())
    yield opened
    opened.db.dispose()


@pytest.fixture
def tokens(journal: Journal) -> Tokens:
    made = Tokens({name: issue(journal.db, role, bank) for name, (role, bank) in PRINCIPALS.items()})
    good = issue(journal.db, VIEWER)
    token_id, _ = access.parse_token(good)
    made.of["malformed token"] = "Bearer-less nonsense"
    made.of["unknown token"] = f"sops_{'0' * 12}.{'A' * 43}"
    made.of["wrong secret"] = f"sops_{token_id}.{'A' * 43}"
    made.of["expired token"] = issue(journal.db, ADMIN, expires_in=timedelta(hours=1))  # issued days before the clock
    revoked = issue(journal.db, ADMIN)
    revoked_bni = issue(journal.db, VIEWER, "bni")
    with journal.db.begin() as conn:
        for token in (revoked, revoked_bni):
            access.revoke_token(conn, access.parse_token(token)[0], access.CLI_ACTOR, "left the team", ISSUED_AT)
    made.of["revoked token"] = revoked
    made.revoked_bni_id = access.parse_token(revoked_bni)[0]
    return made


@pytest.fixture
def client(journal: Journal, clock) -> TestClient:  # noqa: ANN001
    return TestClient(create_ops_app(journal, now=clock.now), raise_server_exceptions=False)


def call(client: TestClient, route: Route, token: str | None, tokens: Tokens) -> Any:  # noqa: ANN401
    headers = bearer(token) if token is not None else {}
    response = client.request(route.method, route.url(tokens), params=route.params, json=route.body, headers=headers)
    assert not [pan for pan in FULL_PANS if pan in response.text] and not PAN_RUN.search(response.text), response.text
    return response


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.label)
def test_each_caller_gets_what_its_role_and_scope_allow(client: TestClient, tokens: Tokens, route: Route) -> None:
    answers = {}
    for name in REFUSED:
        response = call(client, route, None if name == "no token" else tokens.of[name], tokens)
        answers[name] = (response.status_code, response.headers.get("www-authenticate", "").split(" ")[0])
    assert answers == {name: (401, "Bearer") for name in REFUSED}
    got = {name: call(client, route, tokens.of[name], tokens).status_code for name in PRINCIPALS}
    assert got == expected(route, list(PRINCIPALS))


def test_every_v1_operation_is_in_the_matrix_and_needs_a_token(client: TestClient, tokens: Tokens) -> None:
    """Every /v1 operation of the API description answers 401 to every refused caller and is in
    a role and scope matrix: above, or (those that need the banks or the POS) test_ops_access_banks."""
    in_matrix = {(route.method, route.path) for route in ROUTES}
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        if not path.startswith("/v1"):
            continue
        for method in (m.upper() for m in operations):
            for name in REFUSED:
                token = None if name == "no token" else tokens.of[name]
                response = client.request(method, concrete(path, tokens), headers=bearer(token) if token else {})
                assert response.status_code == 401, (method, path, name, response.text)
            assert (method, path) in in_matrix | in_banks_matrix(), f"{method} {path} is not in the matrix"


def test_refusals_say_why_plainly(client: TestClient, tokens: Tokens) -> None:
    def detail(token: str | None, path: str = "/v1/saf") -> tuple[int, str]:
        response = client.get(path, headers=bearer(token) if token else {})
        return response.status_code, response.json()["detail"]

    assert detail(None) == (401, "no token: send the header 'Authorization: Bearer <token>'")
    assert detail(tokens.of["unknown token"]) == (401, "invalid token")
    assert detail(tokens.of["wrong secret"]) == (401, "invalid token")
    expired_id = access.parse_token(tokens.of["expired token"])[0]
    assert detail(tokens.of["expired token"]) == (401, f"token {expired_id} expired")
    revoked_id = access.parse_token(tokens.of["revoked token"])[0]
    assert detail(tokens.of["revoked token"]) == (401, f"token {revoked_id} was revoked")
    viewer_id = access.parse_token(tokens.of["viewer of bni"])[0]
    assert detail(tokens.of["viewer of bni"], "/v1/audit") == (403, f"this needs the admin role; token {viewer_id} is a viewer")
    status, said = detail(tokens.of["viewer of bni"], "/v1/transactions?bank=bri")
    assert (status, said) == (403, f"token {viewer_id} is scoped to bni: bank bri is outside its scope")
    response = client.get("/v1/saf", headers={"Authorization": "Bearer " + "x" * 10_000})
    assert response.status_code == 401 and "x" * 20 not in response.text  # refused unread, not echoed


def test_health_metrics_and_the_description_stay_open(client: TestClient) -> None:
    assert client.get("/health").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/openapi.json").status_code == 200 and client.get("/docs").status_code == 200


# -- what each scope sees ------------------------------------------------------------------------------


@pytest.fixture
def siti_at_bri(journal: Journal, clock) -> None:  # noqa: ANN001
    """Siti (a BNI card) also buys Rp5.000 at BRI's e-Warong: it concerns both banks."""
    bri = {"tid": "BRI00001", "mid": "EWBRI0000000001"}
    journal.record([transaction(rrn(13), "000005", pan=SITI, amount_idr=5_000, created_at=clock.now(), **bri)], [])


def read(client: TestClient, token: str, path: str, **params: Any) -> Any:  # noqa: ANN401
    response = client.get(path, params=params, headers=bearer(token))
    assert response.status_code == 200, response.text
    assert not [pan for pan in FULL_PANS if pan in response.text] and not PAN_RUN.search(response.text)
    return response.json()


def test_a_bank_sees_its_cards_anywhere_and_any_card_at_its_terminals(client: TestClient, tokens: Tokens, siti_at_bri: None) -> None:
    by = tokens.of
    assert rrns(read(client, by["viewer of the switch"], "/v1/transactions")) == [13, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 12]
    # BNI: its cards (Siti, Budi) wherever they pay, and the stranger refused at its BNI00002.
    assert rrns(read(client, by["viewer of bni"], "/v1/transactions")) == [13, 11, 6, 5, 4, 3, 2, 1, 12]
    # BRI: Ani's card, and Siti's purchase at its e-Warong.
    assert rrns(read(client, by["viewer of bri"], "/v1/transactions")) == [13, 10, 9, 8, 7]
    assert rrns(read(client, by["viewer of bri"], "/v1/transactions", pan=SITI)) == [13]
    assert rrns(read(client, by["viewer of bri"], "/v1/transactions", bank="bri")) == [10, 9, 8, 7]
    assert read(client, by["viewer of bri"], f"/v1/transactions/{rrn(13)}")["transaction"]["pan_masked"] == "936000******" + SITI[-4:]
    assert client.get(f"/v1/transactions/{rrn(1)}", headers=bearer(by["viewer of bri"])).json() == {"detail": f"no transaction with RRN {rrn(1)}"}


def test_totals_count_only_what_concerns_the_bank(client: TestClient, tokens: Tokens, siti_at_bri: None) -> None:
    def lines(token: str) -> dict[str, tuple[int, int, int]]:
        settled = read(client, token, "/v1/settlement", date=TODAY)
        return {x["bank"]: (x["purchase_count"], x["purchase_amount_idr"], x["net_amount_idr"]) for x in settled["banks"] + [settled["total"]]}

    assert lines(tokens.of["viewer of the switch"]) == {
        "bni": (3, 50_000, 40_000), "bri": (2, 35_000, 35_000), "mandiri": (0, 0, 0), "btn": (0, 0, 0), "TOTAL": (5, 85_000, 75_000)}
    assert lines(tokens.of["viewer of bni"]) == {
        "bni": (3, 50_000, 40_000), "bri": (0, 0, 0), "mandiri": (0, 0, 0), "btn": (0, 0, 0), "TOTAL": (3, 50_000, 40_000)}
    assert lines(tokens.of["viewer of bri"]) == {
        "bni": (1, 5_000, 5_000), "bri": (2, 35_000, 35_000), "mandiri": (0, 0, 0), "btn": (0, 0, 0), "TOTAL": (3, 40_000, 40_000)}

    bni_stats = read(client, tokens.of["viewer of bni"], "/v1/stats/banks")
    assert {b["bank"]: b["requests"] for b in bni_stats["banks"]} == {"bni": 8, "bri": 0, "mandiri": 0, "btn": 0}
    assert bni_stats["unrouted"] == {"requests": 1, "by_rc": {"14": 1}} and bni_stats["live"] is None
    bri_stats = read(client, tokens.of["viewer of bri"], "/v1/stats/banks")
    assert {b["bank"]: b["requests"] for b in bri_stats["banks"]} == {"bni": 1, "bri": 4, "mandiri": 0, "btn": 0}
    assert bri_stats["unrouted"] == {"requests": 0, "by_rc": {}}


def test_reversals_terminals_reconciliation_tokens_and_audit_by_scope(client: TestClient, tokens: Tokens) -> None:
    by = tokens.of
    bni_saf, bri_saf = read(client, by["viewer of bni"], "/v1/saf"), read(client, by["viewer of bri"], "/v1/saf")
    assert (bni_saf["pending_total"], [e["rrn"] for e in bni_saf["acknowledged"]]) == (0, [rrn(2)])
    assert (bri_saf["pending_total"], [e["rrn"] for e in bri_saf["pending"]], bri_saf["acknowledged"]) == (1, [rrn(9)], [])

    assert [t["tid"] for t in read(client, by["viewer of bni"], "/v1/terminals")] == ["BNI00001", "BNI00002"]
    assert [(t["tid"], t["blocked"]) for t in read(client, by["viewer of bri"], "/v1/terminals")] == [("BRI00001", False)]
    blocked = read(client, by["viewer of bni"], "/v1/terminals/BNI00001")
    assert (blocked["blocked"], blocked["block_reason"], blocked["bank_code"]) == (True, "kept KPM cards", "bni")

    everyone = read(client, by["viewer of the switch"], "/v1/reconciliation", date=TODAY)
    assert [t["tid"] for t in everyone["terminals"]] == ["BNI00001", "BNI00002", "BRI00001"]
    assert [t["tid"] for t in read(client, by["viewer of bri"], "/v1/reconciliation", date=TODAY)["terminals"]] == ["BRI00001"]

    bni_tokens = read(client, by["admin of bni"], "/v1/tokens")
    assert {t["scope"] for t in bni_tokens} == {"bni"} and len(bni_tokens) == 4  # 3 roles and the revoked one
    assert len(read(client, by["admin of the switch"], "/v1/tokens")) == len(PRINCIPALS) + 4  # and the four refused
    bni_audit = read(client, by["admin of bni"], "/v1/audit")["items"]
    assert {(r["action"], r["bank"]) for r in bni_audit} == {("token.create", "bni"), ("token.revoke", "bni")}


def test_a_bank_admin_manages_its_own_bank_tokens_only(client: TestClient, tokens: Tokens, clock) -> None:  # noqa: ANN001
    admin = bearer(tokens.of["admin of bni"])
    created = client.post("/v1/tokens", json={"role": "operator", "scope": "bni", "label": "Teller 7", "expires_in_days": 30}, headers=admin)
    assert created.status_code == 201 and created.headers["cache-control"] == "no-store"
    issued = created.json()
    assert (issued["role"], issued["scope"], issued["state"], issued["created_by"]) == ("operator", "bni", "active", access.parse_token(tokens.of["admin of bni"])[0])
    assert issued["expires_at"] == (clock.now() + timedelta(days=30)).isoformat() + "+07:00"
    assert client.get("/v1/saf", headers=bearer(issued["token"])).status_code == 200  # it works at once
    assert client.post("/v1/tokens", json={"role": "viewer", "scope": "switch"}, headers=admin).status_code == 403
    switch_token_id = access.parse_token(tokens.of["viewer of the switch"])[0]
    assert client.post(f"/v1/tokens/{switch_token_id}/revoke", json=REASON, headers=admin).status_code == 404

    revoked = client.post(f"/v1/tokens/{issued['id']}/revoke", json=REASON, headers=admin)
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked" and "token" not in revoked.json()
    assert client.get("/v1/saf", headers=bearer(issued["token"])).status_code == 401
    listed = {t["id"]: t for t in client.get("/v1/tokens", headers=admin).json()}
    assert listed[issued["id"]]["state"] == "revoked" and all("token" not in t for t in listed.values())


def test_a_token_expires_on_the_network_clock(journal: Journal, clock) -> None:  # noqa: ANN001
    client = TestClient(create_ops_app(journal, now=clock.now))
    token = issue(journal.db, VIEWER, "bri", at=clock.now(), expires_in=timedelta(minutes=30))
    assert client.get("/v1/saf", headers=bearer(token)).status_code == 200
    clock.advance(timedelta(minutes=29, seconds=59))
    assert client.get("/v1/saf", headers=bearer(token)).status_code == 200
    clock.advance(timedelta(seconds=1))
    assert client.get("/v1/saf", headers=bearer(token)).status_code == 401


def test_tokens_rest_as_hashes_only(journal: Journal, tokens: Tokens) -> None:
    from sqlalchemy import select

    from switch.tables import OpsToken

    token = tokens.of["admin of the switch"]
    token_id, secret = access.parse_token(token)
    with journal.db.read() as conn:
        rows = conn.execute(select(OpsToken.__table__)).all()
    assert secret not in str(rows) and token not in str(rows)
    [row] = [r for r in rows if r.id == token_id]
    assert row.secret_sha256 == access.secret_sha256(secret) and len(secret) == 43  # 32 random bytes


def test_a_v1_route_without_access_control_is_refused(journal: Journal) -> None:
    from fastapi import APIRouter

    from switch.ops.app import refuse_open_routes
    from switch.ops.deps import Authenticated

    app, guarded, loose = create_ops_app(journal), APIRouter(prefix="/v1/guarded"), APIRouter(prefix="/v1/loose")
    for router in (guarded, loose):
        router.get("")(lambda: {"open": True})
    app.include_router(guarded, dependencies=[Authenticated])
    refuse_open_routes(app)  # behind a token: fine
    app.include_router(loose)
    with pytest.raises(RuntimeError, match=r"without access control: GET /v1/loose \("):
        refuse_open_routes(app)


def test_card_numbers_of_other_banks_are_not_searchable_by_a_bank(client: TestClient, tokens: Tokens) -> None:
    """BNI searching Ani's card (BRI) finds nothing: never at a BNI terminal."""
    assert read(client, tokens.of["viewer of bni"], "/v1/transactions", pan=ANI)["items"] == []
    assert read(client, tokens.of["viewer of bri"], "/v1/transactions", pan=make_pan(get_bank("bni").iin, 11))["items"] == []
