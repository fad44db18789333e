"""The `sembako` command line as an operator uses it: list the demo cards, seed a bank,
disburse a month (twice), check the ledger, and get a plain message for a typo."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shared.cards import luhn_valid
from shared.clock import ClockFile

from shared.banks import BANKS, get_bank
from bank_penyalur.demo import fixture, generator
from sembako.cli import app

# No DATABASE_URL or data dir from the developer's shell: these runs use SQLite in tmp_path.
# A wide terminal keeps rich from wrapping error messages across lines.
ENV = {"DATABASE_URL": None, "SEMBAKO_DATA_DIR": None, "COLUMNS": "200"}


def sembako(*args: str | Path):  # noqa: ANN201
    return CliRunner().invoke(app, [str(a) for a in args], env=ENV)


def json_out(result) -> dict | list:  # noqa: ANN001
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return json.loads(result.stdout)


def assert_refused_plainly(result, *fragments: str) -> None:  # noqa: ANN001
    """Non-zero exit, a message naming the problem, and no Python traceback."""
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    text = " ".join(result.output.replace("│", " ").split())
    for fragment in fragments:
        assert fragment in text, (fragment, result.output)


def eligible_kpm(kpm: int) -> int:
    """KPM credited for 2026-11: named ones with an e-money account and a decree from before
    then (not zero_balance, not no_emoney), plus generated ones whose burekol set e-money."""
    bank = get_bank("bni")
    named = fixture.NAMED_KPM - 2
    return named + sum(generator.generated_kpm(bank, i).emoney for i in range(kpm))


def test_demo_cards_lists_nine_cards_per_bank() -> None:
    cards = json_out(sembako("demo-cards", "--json"))
    assert len(cards) == 36
    for code, bank in BANKS.items():
        mine = [c for c in cards if c["bank"] == code]
        assert [c["label"] for c in mine] == [spec.label for spec in fixture.specs()]
        assert all(c["pan"].startswith(bank.iin) for c in mine)
    for card in cards:
        assert re.fullmatch(r"\d{16}", card["pan"]) and luhn_valid(card["pan"]), card
        assert re.fullmatch(r"\d{6}", card["pin"]), card
        assert re.fullmatch(r"\d{2}", card["expect_rc"]), card
    assert len({c["pan"] for c in cards}) == 36

    one_bank = json_out(sembako("demo-cards", "--bank", "mandiri", "--json"))
    assert [c["bank"] for c in one_bank] == ["mandiri"] * 9


def test_seed_disburse_twice_and_check_the_ledger(tmp_path: Path) -> None:
    seeded = json_out(sembako("bank", "seed", "--bank", "bni", "--kpm", "30", "--data-dir", tmp_path, "--json"))
    assert seeded == [
        {"bank": "bni", "merchants": seeded[0]["merchants"], "named_cards": 9, "generated_kpm": 30, "generated_total": 30}
    ]
    assert seeded[0]["merchants"] > 0
    assert (tmp_path / "bank_bni.sqlite3").exists()

    expected = eligible_kpm(30)
    first = json_out(sembako("disburse", "--period", "2026-11", "--bank", "bni", "--data-dir", tmp_path, "--json"))
    assert (first["bank"], first["period"], first["amount_idr"]) == ("bni", "2026-11", 150_000)
    assert (first["credited"], first["already_credited"]) == (expected, 0)
    assert (first["not_eligible"], first["failed"]) == (1, 38 - expected - 1)
    assert first["total_idr"] == expected * 150_000

    again = json_out(sembako("disburse", "--period", "2026-11", "--bank", "bni", "--data-dir", tmp_path, "--json"))
    assert (again["credited"], again["already_credited"], again["total_idr"]) == (0, expected, 0)

    reseeded = json_out(sembako("bank", "seed", "--bank", "bni", "--kpm", "30", "--data-dir", tmp_path, "--json"))
    assert (reseeded[0]["named_cards"], reseeded[0]["generated_kpm"]) == (0, 0)  # nothing added twice

    checked = sembako("bank", "ledger-check", "--bank", "bni", "--data-dir", tmp_path)
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.stdout) == {"bank": "bni", "ok": True, "balance_sum_idr": 0, "transfers": expected}


def test_impossible_period_is_a_plain_error(tmp_path: Path) -> None:
    result = sembako("disburse", "--period", "2026-13", "--bank", "bni", "--data-dir", tmp_path, "--json")
    assert_refused_plainly(result, "period must be YYYY-MM", "2026-13")


@pytest.mark.parametrize(
    "args",
    [
        ("disburse", "--period", "2026-11", "--bank", "xyz"),
        ("bank", "seed", "--bank", "xyz", "--kpm", "1"),
        ("bank", "ledger-check", "--bank", "xyz"),
        ("demo-cards", "--bank", "xyz"),
    ],
    ids=["disburse", "seed", "ledger-check", "demo-cards"],
)
def test_unknown_bank_is_a_plain_error(tmp_path: Path, args: tuple[str, ...]) -> None:
    extra = () if args[0] == "demo-cards" else ("--data-dir", tmp_path)
    result = sembako(*args, *extra)
    assert_refused_plainly(result, "unknown bank 'xyz'", "bni, bri, mandiri, btn")
    assert not list(tmp_path.glob("*.sqlite3"))  # no database was created for a typo


def test_bad_amounts_are_plain_errors(tmp_path: Path) -> None:
    assert_refused_plainly(
        sembako("disburse", "--period", "2026-11", "--bank", "bni", "--amount", "0", "--data-dir", tmp_path),
        "must be a positive number of rupiah",
    )
    assert_refused_plainly(
        sembako("bank", "seed", "--bank", "bni", "--kpm", "-5", "--data-dir", tmp_path, "--json"),
        "--kpm must be between 0 and 1,000,000",
    )


def test_report_after_a_disbursement_shows_the_funds_per_province(tmp_path: Path) -> None:
    # The bank runs on a simulated day in November: the report's ending balance counts only what
    # moved before the period ended, so the credit must be made within it.
    clock_file = tmp_path / "clock.json"
    ClockFile(datetime(2026, 11, 3, 9, 0), time.time()).write(clock_file)
    in_november = {**ENV, "SEMBAKO_BANK_CLOCK_FILE": str(clock_file)}
    json_out(CliRunner().invoke(app, ["bank", "seed", "--bank", "bni", "--kpm", "30", "--data-dir", str(tmp_path), "--json"], env=in_november))
    json_out(CliRunner().invoke(app, ["disburse", "--period", "2026-11", "--bank", "bni", "--data-dir", str(tmp_path), "--json"], env=in_november))
    csv_text = sembako("bank", "report", "--period", "2026-11", "--bank", "bni", "--data-dir", tmp_path).stdout
    lines = csv_text.strip().splitlines()
    header = lines[0].split(",")
    total = dict(zip(header, lines[-1].split(","), strict=True))
    assert total["province"] == "TOTAL"
    assert int(total["funds_disbursed_idr"]) == eligible_kpm(30) * 150_000
    assert int(total["ending_balance_idr"]) == eligible_kpm(30) * 150_000
    as_json = json_out(sembako("bank", "report", "--period", "2026-11", "--format", "json", "--data-dir", tmp_path))
    assert as_json["totals"]["funds_disbursed_idr"] == eligible_kpm(30) * 150_000
    assert_refused_plainly(sembako("bank", "report", "--period", "2026-13", "--data-dir", tmp_path), "YYYY-MM")


# -- sembako reconcile ---------------------------------------------------------------------------


def test_reconcile_reads_a_journal_at_rest_and_reports_banks_it_cannot_reach(tmp_path: Path) -> None:
    """A journal with one settled batch; the bank's URL answers nothing: the report still comes,
    the bank's side of its lines "unavailable"."""
    from datetime import datetime

    from shared.protocol import BatchTotals
    from switch.journal import SettlementRecord
    from tests.switch.test_journal import DAY, open_journal, transaction

    journal = open_journal({"data_dir": tmp_path})
    journal.record([transaction("000000000001", "000001", batch=1), transaction("000000000002", "000002", batch=1, rc="51")], [])
    totals = BatchTotals(1, 25_000)
    journal.record_settlement(SettlementRecord("BNI00001", 1, "000003", "920000", totals, totals, "00", datetime(2026, 11, 3, 21, 0)))
    journal.db.dispose()
    env = {**ENV, "SEMBAKO_SWITCH_BANK_URLS": '{"bni": "http://127.0.0.1:9"}'}
    args = ["reconcile", "--date", DAY.isoformat(), "--data-dir", str(tmp_path)]

    text = CliRunner().invoke(app, args, env=env)
    assert text.exit_code == 0, (text.output, text.exception)
    assert "bank bni: UNAVAILABLE" in text.stdout
    assert "BNI00001: 2 lines, 2 matched" in text.stdout  # the batch closed on equal totals; no bank to disagree
    assert "batch 000001 closed (920000:00), 0 uploaded" in text.stdout
    report = json.loads(CliRunner().invoke(app, [*args, "--json"], env=env).stdout)
    assert {line["bank_side"] for line in report["terminals"][0]["lines"]} == {"unavailable"}
    assert {line["terminal"] for line in report["terminals"][0]["lines"]} == {"settled"}
    csv_text = CliRunner().invoke(app, [*args, "--csv"], env=env).stdout
    assert csv_text.splitlines()[0].startswith("record,tid,batch") and ",unavailable," in csv_text


def test_reconcile_refuses_plainly(tmp_path: Path) -> None:
    assert_refused_plainly(sembako("reconcile", "--date", "2026-13-01", "--data-dir", tmp_path), "must be a date YYYY-MM-DD")
    assert_refused_plainly(sembako("reconcile", "--date", "2026-11-03", "--data-dir", tmp_path), "no switch journal in")
    assert_refused_plainly(
        sembako("reconcile", "--date", "2026-11-03", "--ops", "http://127.0.0.1:9"), "cannot reach the switch ops API at http://127.0.0.1:9"
    )
    assert_refused_plainly(
        sembako("reconcile", "--date", "2026-11-03", "--ops", "http://127.0.0.1:9", "--data-dir", tmp_path), "either --ops or --data-dir"
    )
    assert not list(tmp_path.glob("*.sqlite3"))  # nothing was created for a mistake


def test_a_bank_credential_is_printed_for_curl_and_a_bad_one_is_refused_plainly() -> None:
    from shared.credentials import demo_credential

    assert sembako("bank", "credential").stdout == demo_credential("bni", "operator") + "\n"
    assert sembako("bank", "credential", "--bank", "bri", "--holder", "switch").stdout.strip() == demo_credential("bri", "switch")
    given = CliRunner().invoke(app, ["bank", "credential"], env={**ENV, "SEMBAKO_BANK_OPERATOR_CREDENTIAL": "ops-desk-" + "4" * 20})
    assert given.stdout.strip() == "ops-desk-" + "4" * 20
    assert_refused_plainly(sembako("bank", "credential", "--holder", "teller"), "expecting one of switch, operator")
    assert_refused_plainly(sembako("bank", "credential", "--bank", "xyz"), "unknown bank 'xyz'")
    short = CliRunner().invoke(app, ["bank", "credential"], env={**ENV, "SEMBAKO_BANK_SWITCH_CREDENTIAL": "tooshort"})
    assert_refused_plainly(short, "switch_credential: a credential has 16 to 256 characters, got 8")
    assert "tooshort" not in short.output


def test_a_malformed_switch_setting_is_refused_plainly(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["switch", "serve", "--data-dir", str(tmp_path), "--port", "0", "--ops-port", "0"],
        env={**ENV, "SEMBAKO_SWITCH_BANK_TIMEOUT_MS": "lima detik"},
    )
    assert_refused_plainly(result, "bank_timeout_ms", "valid integer")
    assert "lima detik" not in result.output  # a setting's value is never echoed (it may be a key)
    assert not list(tmp_path.iterdir())  # refused before anything was opened
