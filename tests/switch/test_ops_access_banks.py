"""Who may read the banks' reports through the switch and report sales above HET: the role and
bank-scope matrix of the ops routes that need a bank application or a POS (the other routes:
test_ops_access), on SQLite and PostgreSQL.

Two real bank applications (BNI and BRI, seeded and funded for November) serve HTTP on loopback;
the switch's ops API reaches them with its own bank client. Every principal (a viewer, an
operator and an admin of the switch, of BNI and of BRI) asks each route about BNI and about BRI:

- `GET /v1/banks/{bank}/reports[/offline-exceptions|/double-cards]`: any role of the switch or of
  the bank named gets the bank's answer (200); another bank's token is refused with 403, before
  the bank is asked. The bank is named in the path, but it is a scope, not an object of the
  journal: the route refuses it as a bank named in a parameter (403), never 404.
- `POST /v1/het-attempts` (the POS's report of a good refused above its HET): any role of the
  switch or of the terminal's bank records it (201); a token of another bank is refused with 403.

Missing, invalid, expired and revoked tokens (401) on these routes: test_ops_access. No answer
here carries a full card number.
"""

from __future__ import annotations

import csv
import io
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from bank_penyalur.api.app import create_app
from bank_penyalur.demo import fixture, generator
from bank_penyalur.runtime import BankRuntime
from shared.banks import get_bank
from shared.clock import FixedClock
from switch.bank_client import BankClient
from switch.journal import Journal
from switch.ops import access
from switch.ops.app import create_ops_app
from switch.settings import SwitchSettings
from switch.tables import ADMIN, OPERATOR, VIEWER
from tests.bank_penyalur.conftest import PERIOD, start_bank
from tests.conftest import BUSINESS_START, pg_skip_reason, postgres_url
from tests.switch.network import free_port
from tests.switch.ops_tokens import bearer, issue
from tests.switch.test_journal import open_journal, terminal
from tests.switch.test_ops_api import PAN_RUN

BANKS = ("bni", "bri")
KPM = 6  # generated KPM per bank: the reports need people, the matrix does not need many
ROLES = (VIEWER, OPERATOR, ADMIN)
PRINCIPALS = {f"{role} of {scope or 'the switch'}": (role, scope) for scope in (None, *BANKS) for role in ROLES}
SERVER_START_TIMEOUT_S = 10.0
SERVER_STOP_TIMEOUT_S = 10.0
BANK_TIMEOUT_MS = 5_000


def het_attempt(bank: str) -> dict:
    """What the POS of the bank's first e-Warong sends when it refuses a good above its HET."""
    b = get_bank(bank)
    return {
        "terminal_id": b.terminal_id(1), "merchant_id": b.merchant_id(1), "sku": "BERAS-5KG", "product_name": "Beras 5 kg",
        "unit": "karung", "price_idr": 80_000, "het_idr": 72_500, "qty": 1, "attempted_at": "2026-11-03T08:30:00",
    }  # fmt: skip


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # as the API description names it
    ok: int  # the answer to a caller whose scope covers the bank asked about
    params: dict = field(default_factory=dict)
    csv: bool = False

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}{'?' + '&'.join(f'{k}={v}' for k, v in self.params.items()) if self.params else ''}"


ROUTES = [
    Route("GET", "/v1/banks/{bank}/reports", 200, {"period": PERIOD}),
    Route("GET", "/v1/banks/{bank}/reports", 200, {"period": PERIOD, "level": "village", "format": "csv"}, csv=True),
    Route("GET", "/v1/banks/{bank}/reports/offline-exceptions", 200, {"period": PERIOD}),
    Route("GET", "/v1/banks/{bank}/reports/double-cards", 200, {"limit": 10}),
    Route("POST", "/v1/het-attempts", 201),  # the bank: of the terminal in the body
]
OPERATIONS = {(route.method, route.path) for route in ROUTES}  # what test_ops_access counts as in a matrix


def expected(route: Route, principal: str, bank: str) -> int:
    """Any role may call these routes (a viewer's token suffices); the scope decides."""
    _role, scope = PRINCIPALS[principal]
    return route.ok if scope in (None, bank) else 403


# -- the banks, serving HTTP in this process ----------------------------------------------------


@dataclass
class BankServer:
    runtime: BankRuntime
    server: uvicorn.Server
    thread: threading.Thread
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=SERVER_STOP_TIMEOUT_S)
        self.runtime.close()


def serve_bank(data_dir: Path, clock: FixedClock, code: str) -> BankServer:
    """A seeded, funded bank application on a free loopback port (uvicorn in a thread)."""
    runtime = start_bank({"data_dir": data_dir}, clock, kpm=KPM, bank=code)
    port = free_port()
    config = uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning", access_log=False, log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"bank-{code}", daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            runtime.close()
            raise RuntimeError(f"bank {code} did not start serving in {SERVER_START_TIMEOUT_S} s")
        time.sleep(0.02)
    return BankServer(runtime, server, thread, port)


@pytest.fixture(scope="module")
def banks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, BankServer]]:
    clock = FixedClock(BUSINESS_START)
    started: dict[str, BankServer] = {}
    try:
        for code in BANKS:
            started[code] = serve_bank(tmp_path_factory.mktemp(f"bank-{code}"), clock, code)
        yield started
    finally:
        for server in started.values():
            server.stop()


def known_pans() -> set[str]:
    """Every card number of the banks: the named demo cards and the generated KPM's."""
    pans = set()
    for code in BANKS:
        bank = get_bank(code)
        pans |= {card.pan for card in fixture.demo_cards(bank)}
        pans |= {generator.generated_kpm(bank, i).pan for i in range(KPM)}
    return pans


# -- the switch: its journal (once per storage) and its ops API -----------------------------------


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def journal(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Journal]:
    storage: dict = {"data_dir": tmp_path_factory.mktemp(f"access-banks-{request.param}")}
    if request.param == "postgresql":
        reason = pg_skip_reason()
        if reason:
            pytest.skip(reason)
        storage |= {"database_url": postgres_url(), "db_schema": f"access_banks_{uuid.uuid4().hex[:10]}"}
    opened = open_journal(storage)
    opened.ensure_terminals([terminal(get_bank(code).terminal_id(1), code) for code in BANKS], BUSINESS_START - timedelta(days=30))
    try:
        yield opened
    finally:
        opened.db.dispose()
        if "db_schema" in storage:
            from sqlalchemy import create_engine, text

            engine = create_engine(postgres_url())
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{storage["db_schema"]}" CASCADE'))
            engine.dispose()


@pytest.fixture(scope="module")
def tokens(journal: Journal) -> dict[str, str]:
    return {name: issue(journal.db, role, scope) for name, (role, scope) in PRINCIPALS.items()}


@pytest.fixture(scope="module")
def client(journal: Journal, banks: dict[str, BankServer]) -> Iterator[TestClient]:
    """The ops API on the journal, linked to both banks with the switch's credential at each."""
    urls = {code: server.url for code, server in banks.items()}
    credentials = SwitchSettings(bank_urls=urls).bank_credentials_by_code()
    bank_client = BankClient(urls, BANK_TIMEOUT_MS, 4, credentials)
    app = create_ops_app(journal, banks=bank_client, now=FixedClock(BUSINESS_START).now)
    with TestClient(app, raise_server_exceptions=False) as opened:
        yield opened
        opened.portal.call(bank_client.close)


def ask(client: TestClient, route: Route, bank: str, token: str | None) -> object:
    headers = bearer(token) if token is not None else {}
    if route.method == "POST":
        response = client.post(route.path, json=het_attempt(bank), headers=headers)
    else:
        response = client.get(route.path.format(bank=bank), params=route.params, headers=headers)
    assert not [pan for pan in known_pans() if pan in response.text] and not PAN_RUN.search(response.text), response.text
    return response


# -- the matrix ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bank", BANKS)
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.label)
def test_each_principal_gets_what_its_scope_allows(client: TestClient, tokens: dict[str, str], route: Route, bank: str) -> None:
    got, answers = {}, {}
    for name in PRINCIPALS:
        response = ask(client, route, bank, tokens[name])
        got[name], answers[name] = response.status_code, response
    assert got == {name: expected(route, name, bank) for name in PRINCIPALS}, {n: a.text[:200] for n, a in answers.items()}
    assert ask(client, route, bank, None).status_code == 401
    for name, response in answers.items():
        if response.status_code == 403:
            scope = PRINCIPALS[name][1]
            what = "terminal of bank" if route.method == "POST" else "bank"
            token_id = access.parse_token(tokens[name])[0]
            assert response.json()["detail"] == f"token {token_id} is scoped to {scope}: {what} {bank} is outside its scope"
        elif route.csv:
            assert response.headers["content-type"].startswith("text/csv")
            rows = list(csv.reader(io.StringIO(response.text)))
            assert rows[0][0] == "province" and rows[-1][0] == "TOTAL", rows
        elif route.method == "POST":
            recorded = response.json()
            assert (recorded["terminal_id"], recorded["price_idr"], recorded["het_idr"]) == (get_bank(bank).terminal_id(1), 80_000, 72_500)
        elif route.path.endswith("/offline-exceptions"):
            assert response.json() == []  # no offline sales in these banks
        else:
            assert response.json()["bank"] == bank, response.text  # the bank asked answered, not another


def test_the_reports_are_the_banks_own(client: TestClient, tokens: dict[str, str]) -> None:
    """What a bank's token reads is what the bank told: its period, its people, its money."""
    for bank in BANKS:
        report = ask(client, ROUTES[0], bank, tokens[f"viewer of {bank}"]).json()
        assert (report["bank"], report["period"], report["level"]) == (bank, PERIOD, "province")
        assert report["totals"]["funds_disbursed_idr"] > 0 and report["rows"]


def test_a_sale_above_het_names_a_terminal_the_switch_knows_with_its_ewarong(client: TestClient, tokens: dict[str, str]) -> None:
    """Checked before the scope: an unknown terminal, or an e-Warong not of that terminal, is 422
    for every caller (the body is wrong whoever sends it)."""
    stranger = het_attempt("bni") | {"terminal_id": "BNI00099", "merchant_id": get_bank("bni").merchant_id(99)}
    elsewhere = het_attempt("bni") | {"merchant_id": get_bank("bni").merchant_id(2)}
    for name in ("viewer of the switch", "operator of bni"):
        for body, field_name in ((stranger, "terminal_id"), (elsewhere, "merchant_id")):
            response = client.post("/v1/het-attempts", json=body, headers=bearer(tokens[name]))
            assert response.status_code == 422 and field_name in response.text, (name, response.text)
