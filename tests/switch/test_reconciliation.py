"""Reconciliation of a business day over the real network, on SQLite and PostgreSQL.

At terminal BNI00011 a KPM buys for Rp20.000 and Rp10.000 online; another family's offline sale of
Rp200.000 (beyond her Rp150.000 balance, within the offline limit) is uploaded as a 0220 and
posted below zero. The terminal lost the Rp10.000 purchase: its settlement (Rp220.000) is told
95, it details its two transactions and closes with 960000. The report shows the Rp20.000 line
matched on all three sides, the Rp10.000 one missing at the terminal, the offline sale as an
exception, the batch's settlements; as JSON, as CSV, with the bank down, and through the CLI.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from shared import protocol, rc
from shared.protocol import BatchTotals

from sembako.cli import app as sembako_app
from switch.bank_client import BankClient
from switch.ops.app import create_ops_app
from tests.switch.network import Network, network_per_storage, raw_terminal
from tests.switch.test_batches import BENEFIT_IDR, buy, card, offline_sale, settle, upload

PAN_RUN = re.compile(r"(?<![0-9])[0-9]{13,19}(?![0-9])")
SERIAL = 11
DAY_OF_TEST = date(2026, 11, 3)


@dataclass(frozen=True)
class Day:
    tid: str
    day: date
    matched: dict  # the Rp20.000 purchase's answer
    lost: dict  # the Rp10.000 purchase's answer, missing at the terminal
    sale: dict  # the offline sale (0220) as built
    pans: tuple[str, ...]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def network(request, tmp_path_factory) -> Iterator[Network]:  # noqa: ANN001
    yield from network_per_storage(request, tmp_path_factory, "recon")


@pytest.fixture(scope="module")
def day(network: Network) -> Day:
    edc, buyer, offline_buyer = raw_terminal(network, serial=SERIAL), card(20), card(21)
    try:
        assert edc.sign_on()["39"] == rc.APPROVED
        first, matched = buy(edc, buyer, 20_000, batch=1)
        _, lost = buy(edc, buyer, 10_000, batch=1)
        sale = offline_sale(edc, offline_buyer, 200_000, batch=1)
        assert (matched["39"], lost["39"], edc.exchange(sale)["39"]) == (rc.APPROVED, rc.APPROVED, rc.APPROVED)
        claimed = BatchTotals(2, 220_000, 0, 0)
        assert settle(edc, 1, claimed)["39"] == rc.RECONCILE_ERROR
        assert upload(edc, first, matched, 1)["39"] == rc.APPROVED
        assert upload(edc, sale, None, 1)["39"] == rc.APPROVED
        assert settle(edc, 1, claimed, after_upload=True)["39"] == rc.APPROVED
    finally:
        edc.close()
    assert network.balance_of(offline_buyer.pan) == BENEFIT_IDR - 200_000  # below zero: an offline exception
    network.assert_ledger_balanced()
    return Day(edc.tid, protocol.transmission_date(first["7"], date.today()), matched, lost, sale, (buyer.pan, offline_buyer.pan))


@pytest.fixture
def ops(network: Network) -> Iterator[TestClient]:
    """The ops API on the running switch's journal, with links to the network's banks."""
    assert network.switch is not None
    credentials = network.switch.settings.bank_credentials_by_code()
    banks = BankClient({code: bank.url for code, bank in network.banks.items()}, 2_000, 4, credentials)
    with TestClient(create_ops_app(network.switch.journal, banks=banks), headers=network.ops_headers()) as client:
        yield client
        client.portal.call(banks.close)


def report(client: TestClient, day: Day, **params) -> dict:  # noqa: ANN003
    response = client.get("/v1/reconciliation", params={"date": day.day.isoformat(), "tid": day.tid, **params})
    assert response.status_code == 200, response.text
    assert not PAN_RUN.search(response.text), response.text
    return response.json()


def lines_by_amount(terminal: dict) -> dict[int, dict]:
    return {line["switch_amount_idr"]: line for line in terminal["lines"]}


# -- JSON ---------------------------------------------------------------------------------------------------


def test_the_report_puts_terminal_switch_and_bank_side_by_side(ops: TestClient, day: Day) -> None:
    found = report(ops, day)
    assert found["business_date"] == day.day.isoformat() and found["truncated"] is False
    assert {b["bank"]: b["status"] for b in found["banks"]} == {"bni": "available", "bri": "not_configured", "mandiri": "not_configured", "btn": "not_configured"}
    [terminal] = found["terminals"]
    assert terminal["tid"] == day.tid
    lines = lines_by_amount(terminal)
    assert set(lines) == {20_000, 10_000, 200_000}

    matched = lines[20_000]
    assert (matched["kind"], matched["rrn"], matched["batch"], matched["issues"]) == ("purchase", day.matched["37"], 1, [])
    assert (matched["terminal"], matched["terminal_amount_idr"], matched["bank_side"], matched["bank_amount_idr"]) == ("uploaded", 20_000, "found", 20_000)
    assert (matched["switch_rc"], matched["bank_rc"], matched["bank"]) == ("00", "00", "bni")

    lost = lines[10_000]
    assert (lost["rrn"], lost["terminal"], lost["bank_side"], lost["issues"]) == (day.lost["37"], "missing", "found", ["missing_at_terminal"])

    offline = lines[200_000]
    assert (offline["kind"], offline["stan"], offline["terminal"]) == ("advice", day.sale["11"], "uploaded")
    assert offline["offline_exception"] is True and offline["issues"] == ["offline_exception"]

    [batch] = terminal["batches"]
    assert (batch["batch"], batch["closed"], batch["uploads"]) == (1, True, 2)
    assert [(s["processing_code"], s["rc"]) for s in batch["settlements"]] == [("920000", "95"), ("960000", "00")]
    assert batch["settlements"][0]["terminal"]["purchase_amount_idr"] == 220_000
    assert batch["settlements"][0]["at"].endswith("+07:00")  # WIB, said
    assert batch["switch_totals"] == {"purchase_count": 3, "purchase_amount_idr": 230_000, "reversal_count": 0, "reversal_amount_idr": 0}
    assert batch["uploaded_totals"]["purchase_amount_idr"] == 220_000

    summary = terminal["summary"]
    assert (summary["lines"], summary["matched"], summary["missing_at_terminal"], summary["offline_exceptions"]) == (3, 1, 1, 1)
    assert (summary["missing_at_switch"], summary["missing_at_bank"], summary["amount_differs"], summary["rc_differs"]) == (0, 0, 0, 0)
    assert summary["switch_net_idr"] == summary["bank_net_idr"] == 230_000


def test_every_terminal_of_the_day_and_a_quiet_day(ops: TestClient, day: Day) -> None:
    everyone = ops.get("/v1/reconciliation", params={"date": day.day.isoformat()}).json()
    assert day.tid in [t["tid"] for t in everyone["terminals"]]
    quiet = ops.get("/v1/reconciliation", params={"date": "2030-01-02"}).json()
    assert quiet["terminals"] == []
    assert ops.get("/v1/reconciliation", params={"date": "2026-02-30"}).status_code == 422


# -- CSV --------------------------------------------------------------------------------------------------------


def test_the_report_as_csv(ops: TestClient, day: Day) -> None:
    response = ops.get("/v1/reconciliation", params={"date": day.day.isoformat(), "tid": day.tid, "format": "csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert not PAN_RUN.search(response.text)
    rows = list(csv.DictReader(io.StringIO(response.text)))
    lines = {int(r["switch_amount_idr"]): r for r in rows if r["record"] == "line"}
    assert lines[10_000]["issues"] == "missing_at_terminal" and lines[10_000]["rrn"] == day.lost["37"]
    assert lines[20_000]["issues"] == "" and lines[20_000]["bank_side"] == "found"
    assert (lines[200_000]["offline_exception"], lines[200_000]["kind"]) == ("yes", "advice")
    assert [(r["kind"], r["switch_rc"]) for r in rows if r["record"] == "settlement"] == [("920000", "95"), ("960000", "00")]
    [summary] = [r for r in rows if r["record"] == "summary"]
    assert "missing_at_terminal=1" in summary["issues"] and summary["bank_amount_idr"] == "230000"

    asked = ops.get("/v1/reconciliation", params={"date": day.day.isoformat(), "tid": day.tid}, headers={"Accept": "text/csv"})
    assert asked.headers["content-type"].startswith("text/csv") and asked.text == response.text


# -- a bank down ----------------------------------------------------------------------------------------------------


def test_a_bank_down_is_reported_and_the_report_still_answers(network: Network, ops: TestClient, day: Day) -> None:
    bank = network.banks["bni"]
    bank.stop()
    try:
        found = report(ops, day)
    finally:
        bank.start()
    [bni] = [b for b in found["banks"] if b["bank"] == "bni"]
    assert bni["status"] == "unavailable" and bni["reason"]
    [terminal] = found["terminals"]
    lines = lines_by_amount(terminal)
    assert {line["bank_side"] for line in lines.values()} == {"unavailable"}
    assert lines[10_000]["issues"] == ["missing_at_terminal"]  # what the switch and the terminal say still stands
    assert terminal["summary"]["missing_at_bank"] == 0


# -- the CLI ------------------------------------------------------------------------------------------------------------


def cli_env(network: Network) -> dict:
    env = {"COLUMNS": "200", "SEMBAKO_DATA_DIR": None, "DATABASE_URL": None}
    env["SEMBAKO_SWITCH_BANK_URLS"] = json.dumps({code: bank.url for code, bank in network.banks.items()})
    if "db_schema" in network.storage:
        env["SEMBAKO_SWITCH_DB_SCHEMA"] = f"{network.storage['db_schema']}_switch"
    return env


def journal_args(network: Network) -> list[str]:
    if "database_url" in network.storage:
        return ["--database-url", network.storage["database_url"]]
    return ["--data-dir", str(network.storage["data_dir"])]


def test_sembako_reconcile_prints_the_report(network: Network, day: Day) -> None:
    runner = CliRunner()
    base = ["reconcile", "--date", day.day.isoformat(), "--tid", day.tid, *journal_args(network)]
    text = runner.invoke(sembako_app, base, env=cli_env(network))
    assert text.exit_code == 0, (text.output, text.exception)
    assert f"{day.tid}: 3 lines, 1 matched, 1 missing at terminal, 1 offline exceptions" in text.stdout
    assert "batch 000001 closed (920000:95 960000:00), 2 uploaded" in text.stdout
    assert f"purchase stan {day.lost['11']} rrn {day.lost['37']}" in text.stdout
    assert not PAN_RUN.search(text.stdout)

    as_csv = runner.invoke(sembako_app, [*base, "--csv"], env=cli_env(network))
    assert as_csv.exit_code == 0 and as_csv.stdout.startswith("record,tid,batch,kind")
    as_json = json.loads(runner.invoke(sembako_app, [*base, "--json"], env=cli_env(network)).stdout)
    assert as_json["terminals"][0]["summary"]["missing_at_terminal"] == 1


def test_sembako_reconcile_asks_the_running_switch(network: Network, day: Day) -> None:
    """Through the switch's own ops API, with the token `sembako up` keeps in the data directory:
    the journal's side is there whatever links it has."""
    token_file = network.tmp / "ops-token-of-reconcile"
    token_file.write_text(network.ops_headers(role="viewer", bank="bni")["Authorization"].removeprefix("Bearer ") + "\n")
    args = ["reconcile", "--date", day.day.isoformat(), "--tid", day.tid, "--ops", network.ops_url, "--json"]
    result = CliRunner().invoke(sembako_app, [*args, "--token-file", str(token_file)], env=cli_env(network))
    assert result.exit_code == 0, (result.output, result.exception)
    [terminal] = json.loads(result.stdout)["terminals"]
    assert sorted(line["switch_amount_idr"] for line in terminal["lines"]) == [10_000, 20_000, 200_000]
    assert terminal["batches"][0]["closed"] is True

    without = CliRunner().invoke(sembako_app, [*args, "--token-file", str(network.tmp / "no-such-file")], env=cli_env(network))
    assert without.exit_code == 1 and "the switch ops API wants a valid token" in without.output
    assert "--token" in without.output and "Traceback" not in without.output


# -- the matching itself, without a network -------------------------------------------------------------------------------


def test_lines_say_which_side_differs() -> None:
    from switch.reconciliation import BankSide, BankStatus, JournalRow, Posting, SwitchSide, reconcile

    def journal(rrn: str, stan: str, kind: str = "purchase", amount: int = 10_000, code: str = "00", original: str | None = None) -> JournalRow:
        return JournalRow(rrn, "BNI00001", stan, stan if kind != "reversal" else "000005", kind, "bni", "936000******0001", amount, code, 1, original)

    def posting(stan: str, kind: str = "purchase", amount: int = 10_000, code: str = "00", rrn: str | None = None) -> Posting:
        return Posting("bni", "BNI00001", stan, kind, rrn, "936000******0001", amount, code, code == "00", False)

    switch = SwitchSide(
        rows=[
            journal("000000000001", "000001"),  # the bank has no trace of it
            journal("000000000003", "000003", amount=12_000),  # the bank debited another amount
            journal("000000000004", "000004", code="91"),  # timed out here, approved there
            journal("000000000005", "000005"),
            journal("000000000006", "000006", "reversal", original="000000000005"),
            journal("000000000007", "000007", "reversal", original="000000000005"),  # its 0401 repeat
        ],
        uploads=[],
        batches={},
        truncated=False,
    )
    banks = BankSide(
        [BankStatus(bank="bni", status="available", reason=None, postings=5, truncated=False)],
        [
            posting("000002", rrn="000000000002"),  # the journal lost it
            posting("000003", rrn="000000000003"),
            posting("000004", rrn="000000000004"),
            posting("000005", rrn="000000000005"),
            posting("000005", "reversal", rrn="000000000005"),
        ],
    )
    [terminal] = reconcile(DAY_OF_TEST, None, switch, banks).terminals
    issues = {(line.kind, line.stan): line.issues for line in terminal.lines}
    assert issues == {
        ("purchase", "000001"): ["missing_at_bank"],
        ("purchase", "000002"): ["missing_at_switch"],
        ("purchase", "000003"): ["amount_differs"],
        ("purchase", "000004"): ["rc_differs"],
        ("purchase", "000005"): [],
        ("reversal", "000005"): [],
    }
    [reversal] = [line for line in terminal.lines if line.kind == "reversal"]
    assert (reversal.rrn, reversal.original_rrn, reversal.switch_repeats, reversal.terminal) == ("000000000006", "000000000005", 1, "open")
    assert (terminal.summary.switch_net_idr, terminal.summary.bank_net_idr) == (10_000 + 12_000, 10_000 * 4 - 10_000)

