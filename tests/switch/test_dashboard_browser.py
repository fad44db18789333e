"""The operations dashboard in headless Chromium (Debian's `chromium`, driven by Playwright).

The ops API runs under uvicorn on an ephemeral port, on an SQLite journal holding the morning of
test_ops_api and the busy hour of test_dashboard_api (clock fixed at 09:11 WIB). Each test signs
in on a fresh browser context and checks what the page shows against what GET /v1/dashboard
answers with the same token at that moment. Without /usr/bin/chromium the tests are skipped,
except in CI (CI=true), where the Makefile's test target must have installed it.

`SEMBAKO_SCREENSHOTS=1` also writes docs/screenshots/ops-dashboard.png.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn

from shared.banks import BANK_CODES, get_bank
from shared.cards import make_pan
from shared.clock import FixedClock
from switch.journal import Journal
from switch.ops import access
from switch.ops.app import create_ops_app
from switch.tables import VIEWER
from tests.conftest import BUSINESS_START
from tests.switch.ops_tokens import bearer, issue
from tests.switch.test_dashboard_api import busy_hour
from tests.switch.test_journal import open_journal, transaction
from tests.switch.test_ops_api import FULL_PANS, PAN_RUN, rrn, seed

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra: pip install -e '.[test]'")
expect = playwright_api.expect

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "ops-dashboard.png"
SERVER_START_TIMEOUT_S = 10.0
SERVER_STOP_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 10.0
SHOWN_TIMEOUT_MS = 5_000  # the page must show an answer within this
REFRESH_S = 1
MASKED = re.compile(r"^[0-9]{6}\*{3,9}[0-9]{4}$")


@dataclass
class Served:
    url: str
    journal: Journal
    clock: FixedClock
    switch_token: str
    bni_token: str
    expired_token: str

    def board(self, token: str) -> dict:
        """What the JSON API answers now with `token`."""
        answer = httpx.get(f"{self.url}/v1/dashboard", headers=bearer(token), timeout=HTTP_TIMEOUT_S)
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture(scope="module")
def chromium_path() -> str:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium; `make test` does it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must have installed the browser: {reason}")
        pytest.skip(reason)
    return str(CHROMIUM)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    clock = FixedClock(BUSINESS_START)
    journal = open_journal({"data_dir": tmp_path_factory.mktemp("dashboard")})
    seed(journal, clock)
    busy_hour(journal, clock.now())
    tokens = issue(journal.db, VIEWER), issue(journal.db, VIEWER, "bni"), issue(journal.db, VIEWER, expires_in=timedelta(hours=1))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        app = create_ops_app(journal, now=clock.now)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        server.install_signal_handlers = lambda: None  # not the main thread
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="ops-api", daemon=True)
        thread.start()
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started, "the ops API did not start"
        try:
            yield Served(f"http://127.0.0.1:{sock.getsockname()[1]}", journal, clock, *tokens)
        finally:
            server.should_exit = True
            thread.join(timeout=SERVER_STOP_TIMEOUT_S)
            journal.db.dispose()


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator:
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser, served: Served) -> Iterator:  # noqa: ANN001
    """A fresh tab (its own sessionStorage); fails the test on any script error or refused resource."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(SHOWN_TIMEOUT_MS)
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    opened.on("console", lambda message: problems.append(message.text) if message.type == "error" and "401" not in message.text else None)
    yield opened
    context.close()
    assert not problems, problems


def sign_in(page, served: Served, token: str, query: str = f"?refresh_s={REFRESH_S}") -> None:  # noqa: ANN001
    page.goto(f"{served.url}/dashboard{query}")
    expect(page.locator("#sign-in")).to_be_visible()
    page.fill("#token", token)
    page.click("#sign-in-button")


def tile(page, name: str):  # noqa: ANN001, ANN201
    return page.locator(f"#tile-{name} .value")


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} %"


def check_page_shows(page, board: dict) -> None:  # noqa: ANN001
    """The tiles, the bank table, the charts and the latest transactions show `board`'s figures."""
    totals = board["totals"]
    expect(page.locator("#scope")).to_have_text(board["scope"])
    expect(tile(page, "tpm")).to_have_text(str(totals["last_minute_requests"]))
    expect(tile(page, "approval")).to_have_text(percent(totals["approval_rate_pct"]))
    expect(tile(page, "saf")).to_have_text(str(board["saf"]["pending_total"]))
    expect(tile(page, "p99")).to_have_text(f"{totals['latency']['p99_ms']:,} ms")
    expect(tile(page, "alerts")).to_have_text(str(board["alerts_total"]))
    expect(page.locator("#tile-approval .sub")).to_have_text(f"{totals['approved']:,} of {totals['requests']:,} requests approved")
    rows = page.locator("#banks-table tbody tr")
    expect(rows).to_have_count(len(board["banks"]))
    for n, panel in enumerate(board["banks"]):
        cells = rows.nth(n).locator("td")
        expect(cells.nth(0)).to_have_text(panel["bank"].upper() if panel["bank"] else "Unrouted")
        expect(cells.nth(1)).to_have_text(f"{panel['requests']:,}")
        expect(cells.nth(2)).to_have_text(f"{panel['approved']:,}")
        expect(cells.nth(3)).to_have_text(percent(panel["approval_rate_pct"]))
        expect(cells.nth(4)).to_have_text(", ".join(f"{rc}: {count:,}" for rc, count in panel["by_rc"].items()) or "–")
    expect(page.locator("#tpm-chart polyline")).to_have_count(len(board["series"]))
    expect(page.locator("#alerts-list li[data-kind]")).to_have_count(len(board["alerts"]))
    latest = page.locator("#latest-table tbody tr")
    expect(latest).to_have_count(len(board["latest"]))
    assert latest.evaluate_all("rows => rows.map(r => r.dataset.rrn)") == [t["rrn"] for t in board["latest"]]
    cards = page.locator("#latest-table tbody td.card-number").all_text_contents()
    assert cards == [t["pan_masked"] for t in board["latest"]]


# Every card of the journal in full: the morning's and the busy hour's (cards 100-699 of each bank)
JOURNAL_PANS = FULL_PANS + tuple(make_pan(get_bank(code).iin, n) for code in BANK_CODES for n in range(100, 700))


def no_card_number_in(page) -> None:  # noqa: ANN001
    """No full card number anywhere: not in the markup (titles of the charts included), not in the text."""
    for text in (page.content(), page.locator("body").inner_text()):
        assert not PAN_RUN.search(text), PAN_RUN.search(text)
        assert not [pan for pan in JOURNAL_PANS if pan in text]


# -- the tests -------------------------------------------------------------------------------------


def test_a_switch_viewer_signs_in_and_sees_the_figures(page, served: Served) -> None:  # noqa: ANN001
    sign_in(page, served, served.switch_token)
    expect(page.locator("#board")).to_be_visible()
    board = served.board(served.switch_token)
    check_page_shows(page, board)
    assert {p["bank"] for p in board["banks"]} == {"bni", "bri", "mandiri", "btn", None}
    expect(page.locator("#alerts-list li[data-kind='wrong_pins']")).to_have_count(1)
    expect(page.locator("#alerts-note")).to_be_visible()  # no link to the banks here: two rules left out
    expect(page.locator("#rc-chart rect.rc-approved")).to_have_count(sum(1 for p in board["banks"] if p["by_rc"].get("00")))
    assert page.evaluate("sessionStorage.length") == 1
    if os.environ.get("SEMBAKO_SCREENSHOTS") == "1":
        page.screenshot(path=str(SCREENSHOT), full_page=True)
    # signing out forgets the token and takes the figures off the page
    page.click("#sign-out")
    expect(page.locator("#sign-in")).to_be_visible()
    expect(page.locator("#board")).to_be_hidden()
    expect(page.locator("#latest-table tbody tr")).to_have_count(0)
    assert page.evaluate("sessionStorage.length") == 0
    page.reload()
    expect(page.locator("#sign-in")).to_be_visible()


def test_card_numbers_are_masked_everywhere(page, served: Served) -> None:  # noqa: ANN001
    sign_in(page, served, served.switch_token)
    cards = page.locator("#latest-table tbody td.card-number")
    expect(cards.first).to_be_visible()
    shown = cards.all_text_contents()
    assert shown and all(MASKED.match(card) for card in shown), shown
    assert shown == [t["pan_masked"] for t in served.board(served.switch_token)["latest"]]
    no_card_number_in(page)


def test_a_bni_token_sees_only_bni(page, served: Served) -> None:  # noqa: ANN001
    sign_in(page, served, served.bni_token)
    expect(page.locator("#board")).to_be_visible()
    board = served.board(served.bni_token)
    check_page_shows(page, board)
    everything = served.board(served.switch_token)
    assert board["totals"]["requests"] < everything["totals"]["requests"]
    expect(page.locator("#banks-table tbody tr[data-bank]")).to_have_count(len(board["banks"]))
    assert set(page.locator("#banks-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.bank)")) <= {"bni", "unrouted"}
    terminals = page.locator("#latest-table tbody tr td:nth-child(3)").all_text_contents()
    assert terminals and all(tid.startswith("BNI") for tid in terminals), terminals
    issuers = set(page.locator("#latest-table tbody tr td:nth-child(6)").all_text_contents())
    assert issuers <= {"BNI", "Unrouted"}
    text = page.locator("body").inner_text()
    assert "BRI00001" not in text and "MDR00001" not in text and "BTN00001" not in text
    expect(tile(page, "saf")).to_have_text("0")  # the reversal owed to BRI is not BNI's
    no_card_number_in(page)


@pytest.mark.parametrize("which", ["wrong", "expired"])
def test_a_wrong_or_expired_token_gives_a_clear_message_and_no_data(page, served: Served, which: str) -> None:  # noqa: ANN001
    token = f"sops_{'0' * 12}.{'A' * 43}" if which == "wrong" else served.expired_token
    sign_in(page, served, token)
    error = page.locator("#sign-in-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("Sign-in refused:")
    expect(error).to_contain_text("invalid token" if which == "wrong" else "expired")
    expect(page.locator("#board")).to_be_hidden()
    expect(page.locator("#latest-table tbody tr")).to_have_count(0)
    expect(page.locator("#banks-table tbody tr")).to_have_count(0)
    assert page.locator("#tile-tpm .value").text_content() == ""
    assert page.evaluate("sessionStorage.length") == 0
    page.fill("#token", "")
    page.click("#sign-in-button")
    expect(error).to_have_text("Paste a token first.")


def test_the_page_updates_live_without_reload(page, served: Served) -> None:  # noqa: ANN001
    sign_in(page, served, served.switch_token)
    before = served.board(served.switch_token)
    check_page_shows(page, before)
    expect(page.locator("#status")).to_contain_text(f"refreshed every {REFRESH_S} s")
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    new = transaction(rrn(9_999), "000777", tid="BNI00002", mid="EWBNI0000000002", amount_idr=42_000, bank_latency_ms=5_000,
                      created_at=served.clock.now())  # fmt: skip
    served.journal.record([new], [])
    after = served.board(served.switch_token)
    assert after["totals"]["last_minute_requests"] == before["totals"]["last_minute_requests"] + 1
    assert after["latest"][0]["rrn"] == rrn(9_999)
    expect(page.locator("#latest-table tbody tr").first).to_have_attribute("data-rrn", rrn(9_999))
    check_page_shows(page, after)
    expect(page.locator("#latest-table tbody tr").first.locator("td").nth(6)).to_have_text("Rp42.000")
    assert page.evaluate("window.__sameDocument") is True


def test_a_token_revoked_while_signed_in_signs_the_page_out(page, served: Served) -> None:  # noqa: ANN001
    token = issue(served.journal.db, VIEWER, "bri")
    sign_in(page, served, token)
    check_page_shows(page, served.board(token))
    with served.journal.db.begin() as conn:
        access.revoke_token(conn, access.parse_token(token)[0], access.CLI_ACTOR, "left the team", served.clock.now())
    error = page.locator("#sign-in-error")
    expect(error).to_contain_text("Signed out: token")
    expect(error).to_contain_text("was revoked")
    expect(page.locator("#board")).to_be_hidden()
    expect(page.locator("#latest-table tbody tr")).to_have_count(0)
    assert page.evaluate("sessionStorage.length") == 0
