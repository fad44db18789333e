"""GET /v1/dashboard on SQLite and PostgreSQL: the figures the dashboard draws equal what the
journal holds, within the window and the token's bank scope; bounds on the parameters; and the
page (GET /dashboard) is served with its Content-Security-Policy, outside the API description.

The journal holds the morning of test_ops_api (09:00-09:10 WIB, clock at 09:11) and, before it,
a busy hour at five terminals of four banks (`busy_hour`: seeded), with wrong PINs on four cards
at BNI00002 (a `wrong_pins` alert) and rows on both sides of the 15-minute window's start.
The expected figures are worked out here from the journal's rows, not by the route's queries.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from shared.banks import BANK_CODES, get_bank
from shared.cards import make_pan
from shared.clock import FixedClock
from switch.journal import Journal, TransactionRecord
from switch.ops.app import create_ops_app
from switch.tables import VIEWER, Terminal, Transaction
from tests.switch.ops_tokens import bearer, issue
from tests.switch.test_journal import open_journal, terminal, transaction
from tests.switch.test_ops_api import FULL_PANS, PAN_RUN, rrn, seed

MORE_TERMINALS = [terminal("MDR00001", "mandiri"), terminal("BTN00001", "btn")]
BUSY_TIDS = ("BNI00001", "BNI00002", "BRI00001", "MDR00001", "BTN00001")
BANK_OF = {"BNI": "bni", "BRI": "bri", "MDR": "mandiri", "BTN": "btn"}
# Response codes of the busy hour and how often each comes
RCS = ("00",) * 14 + ("51", "51", "91", "05")
PERCENTILES = (50, 95, 99)
MASKED = re.compile(r"^[0-9]{6}\*{3,9}[0-9]{4}$")


def busy_hour(journal: Journal, now: datetime, seed: int = 7) -> list[TransactionRecord]:
    """Purchases at five terminals over the 45 minutes before 09:00 (seeded), wrong PINs on four
    cards at BNI00002 from 08:40, and rows at the edges of the 15-minute window ending at `now`."""
    journal.ensure_terminals(MORE_TERMINALS, now - timedelta(days=30))
    rng = random.Random(seed)
    stans: Counter[str] = Counter()
    numbers = iter(range(1_000, 10_000))
    records = []

    def add(tid: str, at: datetime, rc: str, card: int, latency_ms: int | None) -> None:
        bank = BANK_OF[tid[:3]]
        stans[tid] += 1
        n = next(numbers)
        records.append(transaction(
            rrn(n), f"{100 + stans[tid]:06d}", pan=make_pan(get_bank(bank).iin, card), tid=tid,
            mid=get_bank(bank).merchant_id(int(tid[3:])), bank_code=bank, rc=rc, amount_idr=rng.randrange(5, 150) * 1_000,
            approval_code=f"A{n:05d}" if rc == "00" else None, bank_latency_ms=latency_ms, created_at=at,
        ))  # fmt: skip

    first = now.replace(hour=8, minute=15, second=0, microsecond=0)
    for minute in range(45):
        for _ in range(rng.randrange(0, 4)):
            at = first + timedelta(minutes=minute, seconds=rng.randrange(60), microseconds=rng.randrange(1_000_000))
            rc = rng.choice(RCS)
            add(rng.choice(BUSY_TIDS), at, rc, rng.randrange(100, 400), 2_500 if rc == "91" else rng.randrange(30, 400))
    for k in range(4):  # four cards, wrong PINs within 20 minutes at one terminal
        add("BNI00002", first.replace(minute=40) + timedelta(minutes=2 * k), "55", 500 + k, 35)
    start_15 = now.replace(second=0, microsecond=0) - timedelta(minutes=14)
    add("BRI00001", start_15 - timedelta(microseconds=1), "00", 600, 77)  # just outside
    add("BRI00001", start_15, "00", 601, 88)  # the first moment inside
    add("MDR00001", now, "00", 602, 99)  # at the clock's very moment: within the last 60 s
    records.sort(key=lambda r: r.created_at)  # journalled as they happened
    journal.record(records, [])
    return records


@pytest.fixture
def journal(storage, clock) -> Iterator[Journal]:  # noqa: ANN001
    opened = open_journal(storage)
    seed(opened, clock)  # leaves the clock at 09:11
    busy_hour(opened, clock.now())
    yield opened
    opened.db.dispose()


def client_of(journal: Journal, clock: FixedClock, bank: str | None = None) -> TestClient:
    app = create_ops_app(journal, now=clock.now)
    return TestClient(app, headers=bearer(issue(journal.db, VIEWER, bank)), raise_server_exceptions=False)


def get(client: TestClient, url: str, status: int = 200, **params) -> dict:  # noqa: ANN003
    response = client.get(url, params=params)
    assert response.status_code == status, response.text
    assert not PAN_RUN.search(response.text) and not [pan for pan in FULL_PANS if pan in response.text]
    return response.json()


# -- what the journal holds, worked out here -------------------------------------------------------


def nearest_rank(values: list[int], pct: int) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(pct * len(ordered) / 100), 1) - 1]


def latency(values: list[int]) -> dict:
    return {"samples": len(values), **{f"p{p}_ms": nearest_rank(values, p) for p in PERCENTILES},
            "max_ms": max(values) if values else None}  # fmt: skip


def rate(approved: int, requests: int) -> float | None:
    return round(100 * approved / requests, 1) if requests else None


def expected(journal: Journal, now: datetime, minutes: int, bank: str | None) -> dict:
    """The window's figures as the journal holds them, for a token of `bank` (None: switch)."""
    with journal.db.read() as conn:
        rows = conn.execute(select(Transaction.__table__)).all()
        acquirer = dict(conn.execute(select(Terminal.tid, Terminal.bank_code)).all())
    sees: Callable = (lambda r: True) if bank is None else (lambda r: r.bank_code == bank or acquirer.get(r.tid) == bank)
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    end = start + timedelta(minutes=minutes)
    inside = [r for r in rows if start <= r.created_at < end and sees(r)]
    series: dict = defaultdict(lambda: ([0] * minutes, [0] * minutes))
    by_rc: dict = defaultdict(Counter)
    latencies: dict = defaultdict(list)
    for r in inside:
        minute = int((r.created_at - start).total_seconds() // 60)
        series[r.bank_code][0][minute] += 1
        series[r.bank_code][1][minute] += r.rc == "00"
        by_rc[r.bank_code][r.rc] += 1
        if r.bank_latency_ms is not None:
            latencies[r.bank_code].append(r.bank_latency_ms)
    requests, approved = len(inside), sum(r.rc == "00" for r in inside)
    return {
        "window_start": start,
        "series": {b: {"requests": s[0], "approved": s[1]} for b, s in series.items()},
        "by_rc": {b: dict(c) for b, c in by_rc.items()},
        "latency": {b: latency(v) for b, v in latencies.items()},
        "totals": {
            "requests": requests, "approved": approved, "approval_rate_pct": rate(approved, requests),
            "last_minute_requests": sum(now - timedelta(minutes=1) < r.created_at <= now for r in rows if sees(r)),
            "latency": latency([r.bank_latency_ms for r in inside if r.bank_latency_ms is not None]),
        },  # fmt: skip
        "latest": [r.rrn for r in sorted(inside, key=lambda r: (r.created_at, r.id), reverse=True)],
    }


def check(board: dict, want: dict, minutes: int) -> None:
    assert board["window_minutes"] == minutes and len(board["minute_labels"]) == minutes
    assert board["window_start"] == want["window_start"].isoformat() + "+07:00"
    assert board["minute_labels"][0] == f"{want['window_start']:%H:%M}"
    totals = board["totals"]
    assert {k: totals[k] for k in want["totals"]} == want["totals"]
    assert totals["per_minute_avg"] == round(want["totals"]["requests"] / minutes, 2)
    traffic = {s["bank"]: {"requests": s["requests"], "approved": s["approved"]} for s in board["series"] if sum(s["requests"])}
    assert traffic == want["series"]
    for panel in board["banks"]:
        b = panel["bank"]
        assert panel["requests"] == sum(want["series"].get(b, {"requests": []})["requests"])
        assert panel["by_rc"] == want["by_rc"].get(b, {})
        assert panel["approval_rate_pct"] == rate(panel["approved"], panel["requests"])
        assert panel["latency"] == want["latency"].get(b, latency([]))
    assert {p["bank"] for p in board["banks"] if p["requests"]} == set(want["series"])
    assert [t["rrn"] for t in board["latest"]] == want["latest"][: len(board["latest"])]
    assert all(MASKED.match(t["pan_masked"]) for t in board["latest"])
    assert set(board["rc_texts"]) >= {rc for b in want["by_rc"].values() for rc in b}


# -- the figures ------------------------------------------------------------------------------------


@pytest.mark.parametrize("minutes", [15, 60])
def test_figures_equal_what_the_journal_holds(journal: Journal, clock: FixedClock, minutes: int) -> None:
    client = client_of(journal, clock)
    board = get(client, "/v1/dashboard", minutes=minutes, latest=100)
    want = expected(journal, clock.now(), minutes, None)
    check(board, want, minutes)
    assert board["scope"] == "switch" and [p["bank"] for p in board["banks"]] == [*BANK_CODES, None]
    assert len(board["latest"]) == min(100, len(want["latest"]))
    assert want["totals"]["requests"] > 11 and len(want["series"]) >= 4  # more than the morning alone
    # the other routes agree: statistics of the same window, the SAF queue, the alerts
    stats = get(client, "/v1/stats/banks", **{"from": board["window_start"], "to": board["window_end"]})
    for bank_stats, panel in zip(stats["banks"], board["banks"], strict=False):
        assert (bank_stats["bank"], bank_stats["requests"], bank_stats["approved"]) == (panel["bank"], panel["requests"], panel["approved"])
    assert board["banks"][-1]["requests"] == stats["unrouted"]["requests"]
    saf = get(client, "/v1/saf")
    assert board["saf"]["pending_total"] == saf["pending_total"] == board["totals"]["saf_pending"] == 1
    assert board["saf"]["by_bank"] == {"bri": 1} and board["saf"]["oldest_pending_at"] == saf["pending"][0]["created_at"]
    alerts = get(client, "/v1/alerts")
    assert [a["id"] for a in board["alerts"]] == [a["id"] for a in alerts["alerts"]]
    assert "wrong_pins" in {a["kind"] for a in board["alerts"]} and board["alerts_total"] == board["totals"]["alerts"]
    assert board["alert_sources"] == alerts["banks"]
    # without a link to the banks, the two rules that need them are left out, and the answer says so
    assert board["alerts_note"].startswith("Disbursement-burst and double-card alerts are left out for BNI, BRI, MANDIRI, BTN")


def test_the_window_edges_and_the_latest(journal: Journal, clock: FixedClock) -> None:
    client = client_of(journal, clock)
    board = get(client, "/v1/dashboard", minutes=15, latest=100)
    with journal.db.read() as conn:
        edge = {ms: (rrn_, at) for ms, rrn_, at in conn.execute(
            select(Transaction.bank_latency_ms, Transaction.rrn, Transaction.created_at).where(Transaction.bank_latency_ms.in_((77, 88, 99))))}
    start = datetime.fromisoformat(board["window_start"]).replace(tzinfo=None)
    assert edge[77][1] < start == edge[88][1] and edge[99][1] == clock.now()
    shown = [t["rrn"] for t in board["latest"]]
    assert edge[88][0] in shown and edge[77][0] not in shown  # a microsecond before the window is outside
    assert board["totals"]["last_minute_requests"] == 1  # the row at the clock's moment; 09:10:00 is 60 s ago: out
    few = get(client, "/v1/dashboard", minutes=15, latest=3)
    assert [t["rrn"] for t in few["latest"]] == shown[:3] == [edge[99][0], rrn(11), rrn(10)]  # by time: the morning's last
    first = few["latest"][0]
    assert first["rrn"] == edge[99][0] and first["rc_text"] == "Approved" and MASKED.match(first["pan_masked"])


def test_a_bank_token_sees_only_what_concerns_its_bank(journal: Journal, clock: FixedClock) -> None:
    everything = get(client_of(journal, clock), "/v1/dashboard", latest=100)
    for bank in ("bni", "bri"):
        board = get(client_of(journal, clock, bank), "/v1/dashboard", latest=100)
        want = expected(journal, clock.now(), 60, bank)
        check(board, want, 60)
        assert board["scope"] == bank
        assert board["totals"]["requests"] < everything["totals"]["requests"]
        assert {p["bank"] for p in board["banks"]} <= {bank, None}  # its cards at its terminals, and what they refused
        with journal.db.read() as conn:
            its_terminals = set(conn.execute(select(Terminal.tid).where(Terminal.bank_code == bank)).scalars())
        assert all(t["bank_code"] == bank or t["tid"] in its_terminals for t in board["latest"])
        assert all(a["subject"]["bank"] in (bank, None) for a in board["alerts"])
        assert board["saf"]["pending_total"] == (1 if bank == "bri" else 0)
        assert [s["bank"] for s in board["alert_sources"]] == [bank]
    bni = get(client_of(journal, clock, "bni"), "/v1/dashboard")
    assert "wrong_pins" in {a["kind"] for a in bni["alerts"]}  # at BNI00002
    bri = get(client_of(journal, clock, "bri"), "/v1/dashboard")
    assert "wrong_pins" not in {a["kind"] for a in bri["alerts"]}


# -- bounds and access ------------------------------------------------------------------------------


def test_parameters_out_of_bounds_are_refused(journal: Journal, clock: FixedClock) -> None:
    client = client_of(journal, clock)
    for params in ({"minutes": 4}, {"minutes": 1441}, {"minutes": 0}, {"minutes": -60}, {"minutes": "hour"},
                   {"minutes": 10**30}, {"latest": 0}, {"latest": 101}):  # fmt: skip
        answer = get(client, "/v1/dashboard", 422, **params)
        assert answer["detail"][0]["loc"][-1] == next(iter(params)), params
    for params in ({"minutes": 5}, {"minutes": 1440, "latest": 100}, {"latest": 1}):
        board = get(client, "/v1/dashboard", **params)
        assert len(board["minute_labels"]) == params.get("minutes", 60)
    anonymous = TestClient(create_ops_app(journal, now=clock.now))
    refused = anonymous.get("/v1/dashboard")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"


def test_the_page_is_served_with_its_content_security_policy(tmp_path) -> None:  # noqa: ANN001
    journal = open_journal({"data_dir": tmp_path})  # the page needs no data: SQLite alone
    anonymous = TestClient(create_ops_app(journal))
    page = anonymous.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy and "unsafe" not in policy
    html = page.text
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/dashboard/dashboard.js" defer>']
    assert " style=" not in html and "<style" not in html and "on" + "click=" not in html
    for name, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        served = anonymous.get(f"/dashboard/{name}")
        assert served.status_code == 200 and served.headers["content-type"].startswith(kind)
        assert served.headers["content-security-policy"] == policy
    script = anonymous.get("/dashboard/dashboard.js").text
    assert "innerHTML" not in script and "eval(" not in script and "http://" not in script.replace("http://www.w3.org/2000/svg", "")
    assert anonymous.get("/dashboard/other.js").status_code == 404
    paths = anonymous.get("/openapi.json").json()["paths"]
    assert "/v1/dashboard" in paths and not [p for p in paths if p.startswith("/dashboard")]
    journal.db.dispose()
