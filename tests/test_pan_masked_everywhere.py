"""The card number masked in every answer, log and export: a real network (a BNI bank process and
the switch on SQLite, every service logging at DEBUG) takes a morning of traffic, then everything
the network showed or wrote about it is searched for a full card number.

The traffic: at e-Warong EWBNI0000000001 the cashier's counter (the POS and its EDC, driven as the
cashier app drives them) sells to one KPM, refuses a good above its HET (reported to the switch)
and sees a purchase declined for a wrong PIN, then reprints a slip; the headless EDC of
EWBNI0000000003 buys and reverses; the EDC of EWBNI0000000005 sells offline and uploads the sale;
a raw terminal sends a card of no bank (refused by the switch) and a purchase the frozen bank
leaves unanswered (a stored reversal, delivered once the bank is back); the EDCs settle; an
operator resets a PIN and blocks and unblocks a terminal, writing the full card number into the
reasons; a caller without a valid credential asks the bank about a card (its number in the URL).

What is searched, each its own case: every log file the services wrote (the bank process's log
and captured output, and the log of this process, where the switch, the EDCs and the POS run;
`sembako up`'s own up.log holds supervisor lines only), every ops API answer (every GET
route, JSON and CSV, with a switch token and a bank token, the card-number search included), the
bank's report exports, the POS daily report (CLI and the file the cashier saves), the EDC slips,
screens and headless results, and the message inspector's views. Found is any full card number
used or known to the bank, and any 16-19 digit run passing Luhn with a bank's card prefix.
Card data at rest (databases, state files): test_no_card_data_at_rest.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from bank_penyalur.demo import fixture, generator
from edc_terminal.headless import run as edc_run
from edc_terminal.inspector import format_exchange
from edc_terminal.terminal import Action, EdcTerminal, Key
from ewarong_pos.app import CashierApp, build_counter
from ewarong_pos.cashier import Counter
from ewarong_pos.cli import ewarong_app
from ewarong_pos.het_report import HetReporter
from ewarong_pos.settings import ShopOptions
from ewarong_pos.tables import products
from linksim import OFFLINE
from shared import rc
from shared.banks import BANKS, get_bank
from shared.cards import luhn_valid, mask_pan
from shared.clock import SystemClock
from shared.logs import LogSettings, close_logging, configure_logging
from tests.bounded import wait_until
from tests.switch.network import PERIOD, Network, raw_terminal
from tests.switch.ops_tokens import bearer, issue

BNI = get_bank("bni")
KPM = 40  # as Network seeds
SPENDABLE = [p for p in (generator.generated_kpm(BNI, i) for i in range(KPM)) if p.spendable]
STRANGER = "4111111111111111"  # a card of no bank of the network
SHOP, SHOP_TID = BNI.merchant_id(1), BNI.terminal_id(1)
EDC_TID, OFFLINE_TID, RAW_TID, BLOCKED_TID = BNI.terminal_id(3), BNI.terminal_id(5), BNI.terminal_id(7), BNI.terminal_id(9)
TERMINALS_USED = {SHOP_TID, EDC_TID, OFFLINE_TID, RAW_TID, BLOCKED_TID}
TIMEOUT_MS = 5_000
HTTP_TIMEOUT_S = 10.0
DIGIT_RUN = re.compile(r"(?<![0-9])[0-9]{16,19}(?![0-9])")
IINS = tuple(bank.iin for bank in BANKS.values())
GROUPS = ("logs", "ops API", "bank API", "POS report", "EDC slips and screens", "EDC inspector")


@dataclass
class Run:
    data_dir: Path
    used: dict[str, str] = field(default_factory=dict)  # label -> full card number
    found: dict[str, dict[str, str]] = field(default_factory=lambda: {group: {} for group in GROUPS})  # group -> name -> text
    ops_paths_asked: set[str] = field(default_factory=set)
    bank_log_level: str | None = None  # as the bank process was started with

    def keep(self, group: str, name: str, text: str) -> None:
        self.found[group][name] = text


def known_pans(run: Run) -> set[str]:
    """The cards used, and every card the bank holds (named demo cards, generated KPM)."""
    return set(run.used.values()) | {c.pan for c in fixture.demo_cards(BNI)} | {generator.generated_kpm(BNI, i).pan for i in range(KPM)}


def card_numbers_in(text: str, pans: set[str]) -> list[str]:
    """What in `text` is a full card number: a known one anywhere (inside a longer digit run
    too), or a 16-19 digit run that passes Luhn and starts with a bank's card prefix."""
    hits = {f"card {mask_pan(pan)} in full" for pan in pans if pan in text}
    for match in DIGIT_RUN.finditer(text):
        run = match.group()
        if luhn_valid(run) and run.startswith(IINS):
            hits.add(f"a card-like number {mask_pan(run)} ({len(run)} digits, Luhn valid)")
    return sorted(hits)


# -- the traffic ---------------------------------------------------------------------------------


def screen(terminal: EdcTerminal) -> str:
    shown = terminal.display()
    return "\n".join([shown.title, *shown.lines, shown.entry or "", shown.message or ""])


async def keys(terminal: EdcTerminal, digits: str) -> None:
    for digit in digits:
        terminal.press(digit)
    terminal.press(Key.ENTER)
    await terminal.run_pending()


async def counter_morning(counter: Counter, run: Run) -> None:
    """The cashier's morning at EWBNI0000000001: a sale, a refusal above HET, a declined
    payment, a reprinted slip. Screens are kept as the cashier and the KPM saw them."""
    edc, screens = counter.terminal, []
    edc.power_on()
    await edc.run_pending()  # sign-on, card list
    assert edc.core.has_keys, screen(edc)
    siti, budi = SPENDABLE[0], SPENDABLE[1]
    run.used |= {"Siti": siti.pan, "Budi": budi.pan}

    edc.insert_card(siti.pan)
    screens.append(screen(edc))
    edc.select(Action.CEK)
    await keys(edc, siti.pin)
    screens.append(screen(edc))
    assert counter.view().balance_idr is not None, counter.view().message
    assert counter.add("BRS-MED", 2) and counter.pay(), counter.view().message
    screens.append(screen(edc))
    await keys(edc, siti.pin)
    screens.append(screen(edc))
    sale = counter.view().last_sale
    assert sale is not None and edc.outcome is not None and edc.outcome.approved, counter.view().message
    with counter.store.db.begin() as conn:  # the shop raised its beras premium above HET
        conn.execute(update(products).where(products.c.ewarong_id == SHOP, products.c.sku == "BRS-PRM").values(price_idr=16_000))
    assert counter.add("BRS-PRM", 1) is False and "HET" in (counter.view().message or "")
    edc.take_card()

    edc.insert_card(budi.pan)
    edc.select(Action.CEK)
    await keys(edc, budi.pin)
    assert counter.add("TAHU", 3) and counter.pay(), counter.view().message
    await keys(edc, "000000" if budi.pin != "000000" else "111111")  # a wrong PIN: declined
    screens.append(screen(edc))
    assert edc.outcome is not None and edc.outcome.rc == rc.WRONG_PIN, edc.outcome
    edc.take_card()

    edc.select(Action.CETAK_ULANG)
    screens.append(screen(edc))
    for n, slip in enumerate(edc.printer):
        run.keep("EDC slips and screens", f"counter slip {n + 1}", slip)
    for n, text in enumerate(screens):
        run.keep("EDC slips and screens", f"counter screen {n + 1}", text)
    assert edc.inspector is not None
    for n, exchange in enumerate(edc.inspector.exchanges):
        run.keep("EDC inspector", f"counter exchange {n + 1} ({exchange.flow})", format_exchange(exchange))


def headless(network: Network, run: Run, tid: str, command: str, trace: io.StringIO, **inputs) -> dict:  # noqa: ANN003
    answer = asyncio.run(edc_run(command, tid, "127.0.0.1", network.iso_port, network.tmp, timeout_ms=TIMEOUT_MS, trace=trace, **inputs))
    run.keep("EDC slips and screens", f"edc-cli {tid} {command} #{len(run.found['EDC slips and screens'])}", json.dumps(answer))
    return answer


def edc_cli_morning(network: Network, run: Run) -> None:
    """edc-cli at EWBNI0000000003 (buy, reverse) and EWBNI0000000005 (offline sale, upload)."""
    ani, dewi = SPENDABLE[2], SPENDABLE[3]
    run.used |= {"Ani": ani.pan, "Dewi": dewi.pan}
    trace = io.StringIO()
    assert headless(network, run, EDC_TID, "signon", trace)["approved"]
    assert headless(network, run, EDC_TID, "bayar", trace, pan=ani.pan, pin=ani.pin, amount_idr=12_500)["approved"]
    assert headless(network, run, EDC_TID, "reversal", trace)["approved"]
    assert headless(network, run, OFFLINE_TID, "signon", trace)["approved"]
    sold = headless(network, run, OFFLINE_TID, "bayar", trace, pan=dewi.pan, amount_idr=8_000, link=OFFLINE, nik=dewi.record.nik)
    assert sold["approved"] and sold["offline"], sold
    uploaded = headless(network, run, OFFLINE_TID, "upload", trace)
    assert uploaded["counts"]["advices_approved"] == 1, uploaded
    run.keep("EDC inspector", "edc-cli --trace", trace.getvalue())


def raw_morning(network: Network, run: Run) -> None:
    """A card of no bank (refused 14 by the switch) and a purchase the frozen bank leaves
    unanswered: a stored reversal, delivered when the bank is back."""
    eko = SPENDABLE[4]
    run.used |= {"Eko": eko.pan, "a stranger": STRANGER}
    terminal = raw_terminal(network, serial=int(RAW_TID[3:]))
    try:
        assert terminal.sign_on()["39"] == rc.APPROVED
        assert terminal.purchase(STRANGER, "123456", 5_000)["39"] == rc.INVALID_CARD
        doc = terminal.purchase_doc(eko.pan, eko.pin, 20_000)
        network.banks["bni"].freeze()
        try:
            assert terminal.exchange(doc)["39"] == rc.ISSUER_UNAVAILABLE
        finally:
            network.banks["bni"].thaw()
        assert network.switch is not None
        assert wait_until(lambda: network.switch.journal.pending_saf() == [])
    finally:
        terminal.close()


def operator_actions(network: Network, run: Run, admin: dict[str, str]) -> None:
    """A PIN reset of Budi's card, and a terminal blocked and unblocked: the full card number
    written into the reasons, as an operator may."""
    budi = run.used["Budi"]
    with httpx.Client(base_url=network.ops_url, headers=admin, timeout=HTTP_TIMEOUT_S) as ops:
        reset = ops.post("/v1/cards/pin-reset", json={"pan": budi, "reason": f"KPM datang ke cabang dengan kartu {budi}"})
        assert reset.status_code == 200, reset.text
        run.keep("ops API", "POST /v1/cards/pin-reset", reset.text)
        tid = BLOCKED_TID
        for action in ("block", "unblock"):
            done = ops.post(f"/v1/terminals/{tid}/{action}", json={"reason": f"kartu {budi} tertahan di EDC"})
            assert done.status_code == 200, done.text
            run.keep("ops API", f"POST /v1/terminals/{tid}/{action}", done.text)
    # A caller without a valid credential asks the bank about the card (its URL holds the number).
    bank = network.banks["bni"].url
    with httpx.Client(base_url=bank, timeout=HTTP_TIMEOUT_S) as client:
        for path, headers in ((f"/v1/cards/{budi}", {"Authorization": "Bearer not-a-credential"}), (f"/v1/ops/cards/{budi}/pin-reset", {})):
            refused = client.request("POST" if path.endswith("reset") else "GET", path, headers=headers, json={"actor": "x", "reason": "x"})
            assert refused.status_code == 401, refused.text
            run.keep("bank API", f"refused {path}", refused.text)


def settle(network: Network, run: Run) -> None:
    trace = io.StringIO()
    for tid in (SHOP_TID, EDC_TID, OFFLINE_TID):
        assert headless(network, run, tid, "settle", trace)["approved"], tid
    run.keep("EDC inspector", "edc-cli settle --trace", trace.getvalue())


# -- what the network shows ------------------------------------------------------------------------


def ask_ops(ops: httpx.Client, run: Run, who: str, path: str, **params: str) -> httpx.Response:
    answer = ops.get(path, params=params)
    assert answer.status_code == 200, (who, path, params, answer.text)
    run.keep("ops API", f"{who}: GET {path} {params or ''}", answer.text)
    return answer


def every_ops_answer(network: Network, run: Run, tokens: dict[str, dict[str, str]], days: list[str]) -> None:
    """Every GET route of the ops API description, each path parameter filled with every object
    the caller may see, JSON and (where offered) CSV, each level of the bank reports."""
    with httpx.Client(base_url=network.ops_url, timeout=HTTP_TIMEOUT_S) as ops:
        spec = ops.get("/openapi.json").json()
        for who, headers in tokens.items():
            ops.headers.clear()
            ops.headers.update(headers)
            rrns = [t["rrn"] for t in ask_ops(ops, run, who, "/v1/transactions", limit="200").json()["items"]]
            known = {t["tid"] for t in ask_ops(ops, run, who, "/v1/terminals").json()}  # all the demo terminals
            tids = sorted(known & TERMINALS_USED)
            assert tids == sorted(TERMINALS_USED), tids
            fills = {"rrn": rrns, "tid": tids, "day": days, "bank": ["bni"]}
            for path, operations in spec["paths"].items():
                if "get" not in operations or path in ("/openapi.json",):
                    continue
                names = {p["name"]: p for p in operations["get"].get("parameters", [])}
                base = {name: "" for name, p in names.items() if p["in"] == "query" and p.get("required")}
                variants = [{}]
                if "format" in names:
                    variants.append({"format": "csv"})
                if "level" in names:
                    variants += [{"level": level} for level in ("regency", "district", "village")]
                    variants.append({"level": "village", "format": "csv"})
                concrete = [path]
                for name in (p["name"] for p in names.values() if p["in"] == "path"):
                    concrete = [c.replace(f"{{{name}}}", value) for c in concrete for value in fills[name]]
                queries = [base]
                if "date" in base:
                    queries = [{**base, "date": day} for day in days]
                elif "period" in base:
                    queries = [{**base, "period": period} for period in sorted({PERIOD, days[-1][:7]})]
                for url in concrete:
                    for query in queries:
                        for variant in variants:
                            ask_ops(ops, run, who, url, **query, **variant)
                run.ops_paths_asked.add(path)
            for pan in run.used.values():  # the card-number search: the card never comes back
                ask_ops(ops, run, who, "/v1/transactions", pan=pan)
            for wrong in (run.used["Siti"] + "0", run.used["Siti"][:-1] + "X"):  # found nothing, or refused: never echoed
                answer = ops.get("/v1/transactions", params={"pan": wrong})
                assert answer.status_code in (200, 422), answer.text
                run.keep("ops API", f"{who}: GET /v1/transactions?pan={mask_pan(wrong)}", answer.text)
            ask_ops(ops, run, who, "/metrics")
            ask_ops(ops, run, who, "/v1/saf", acknowledged="100", cancelled="100")
            ask_ops(ops, run, who, "/v1/alerts", since=f"{days[0]}T00:00:00")


def every_bank_report(network: Network, run: Run, days: list[str]) -> None:
    """The bank's own exports: its reports (JSON and CSV, each level), offline exceptions, double
    cards, postings of each terminal and day, disbursement runs and its operations audit."""
    bank = network.banks["bni"]
    operator, switch = network.bank_headers("bni", "operator"), network.bank_headers("bni")
    with httpx.Client(base_url=bank.url, timeout=HTTP_TIMEOUT_S) as client:

        def keep(path: str, headers: dict[str, str], **params: str) -> None:
            answer = client.get(path, params=params, headers=headers)
            assert answer.status_code == 200, (path, params, answer.text)
            run.keep("bank API", f"GET {path} {params or ''}", answer.text)

        for period in (PERIOD, days[-1][:7]):
            for level in ("province", "regency", "district", "village"):
                for output in ("json", "csv"):
                    keep("/v1/reports", operator, period=period, level=level, format=output)
            keep("/v1/reports/offline-exceptions", operator, period=period)
        keep("/v1/reports/double-cards", operator)
        keep("/v1/disbursements", operator)
        keep("/v1/ops/audit", operator)
        for day in days:
            for tid in sorted(TERMINALS_USED):
                keep("/v1/postings", switch, date=day, terminal_id=tid)


def pos_reports(network: Network, run: Run, counter: Counter, day: date) -> None:
    """The POS daily report: `sembako ewarong report` (CSV and table), and the file the cashier
    saves from the report screen (F10)."""
    env = {"DATABASE_URL": None, "SEMBAKO_DATA_DIR": None, "COLUMNS": "200"}
    for output in ("csv", "table"):
        args = ["--data-dir", str(network.tmp), "report", "--ewarong", SHOP, "--date", day.isoformat(), "--format", output]
        result = CliRunner().invoke(ewarong_app, args, env=env)
        assert result.exit_code == 0, result.output
        run.keep("POS report", f"sembako ewarong report --format {output}", result.output)
    saved = CashierApp(counter, network.tmp, power_on=False)._save_report(day)
    run.keep("POS report", str(saved.relative_to(network.tmp)), saved.read_text(encoding="utf-8"))


@contextmanager
def quiet_test_client() -> Iterator[None]:
    """This test's own HTTP client logs nothing meanwhile: the log is the services' (the switch,
    the EDCs and the POS share this process), not the test's requests (httpx logs each URL)."""
    loggers = [logging.getLogger(name) for name in ("httpx", "httpcore")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def log_files(data_dir: Path) -> list[Path]:
    return sorted(p for p in data_dir.rglob("*") if p.is_file() and (p.suffix in (".log", ".out") or ".log." in p.name))


@pytest.fixture(scope="module")
def network_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("pan-masked")
    run = Run(tmp)
    root, level = logging.getLogger(), logging.getLogger().level
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SEMBAKO_LOG_LEVEL", "DEBUG")  # the bank processes' logs: leaks hide at DEBUG
        env.setenv("SEMBAKO_LOG_STDERR", "never")
        # This process runs the switch, the EDCs and the POS: their records go to one service log.
        configure_logging("switch-edc-pos", tmp, LogSettings(level="DEBUG", stderr="never"))
        network = Network(tmp, {"data_dir": tmp})
        run.bank_log_level = network.banks["bni"].env.get("SEMBAKO_LOG_LEVEL")
        try:
            network.start()
            assert network.switch is not None
            day = network.switch.now().date()
            bni_operator = issue(network.switch.db, "operator", "bni", at=network.switch.now())
            (tmp / "pos-token-bni").write_text(bni_operator, encoding="utf-8")  # the POS reports refusals above HET with it
            env.setenv("SEMBAKO_EWARONG_OPS_URL", network.ops_url)
            counter = build_counter(ShopOptions(SHOP, SHOP_TID, "127.0.0.1", network.iso_port, tmp, None), SystemClock())
            try:
                asyncio.run(counter_morning(counter, run))
                assert isinstance(counter.het_reporter, HetReporter) and counter.het_reporter.flush()
                assert counter.het_reporter.sent == 1
                asyncio.run(counter.terminal.close())
                edc_cli_morning(network, run)
                raw_morning(network, run)
                admin = bearer(issue(network.switch.db, "admin", None, at=network.switch.now()))
                with quiet_test_client():
                    operator_actions(network, run, admin)
                settle(network, run)
                days = sorted({day.isoformat(), network.switch.now().date().isoformat()})
                scopes = {"switch admin": admin, "BNI admin": bearer(issue(network.switch.db, "admin", "bni", at=network.switch.now()))}
                with quiet_test_client():
                    every_ops_answer(network, run, scopes, days)
                    every_bank_report(network, run, days)
                pos_reports(network, run, counter, day)
            finally:
                if isinstance(counter.het_reporter, HetReporter):
                    counter.het_reporter.close()
                counter.store.close()
        finally:
            network.stop()
            close_logging()
            root.setLevel(level)
    for path in log_files(tmp):
        run.keep("logs", str(path.relative_to(tmp)), path.read_text(encoding="utf-8", errors="replace"))
    yield run


# -- the search ------------------------------------------------------------------------------------


@pytest.mark.parametrize("group", GROUPS)
def test_no_full_card_number_anywhere(network_run: Run, group: str) -> None:
    pans = known_pans(network_run)
    report = [f"{name}: {hit}" for name, text in network_run.found[group].items() for hit in card_numbers_in(text, pans)]
    assert not report, f"full card numbers in the {group}:\n" + "\n".join(report)


def test_everything_was_looked_at(network_run: Run) -> None:
    """The search saw what it claims: logs of both sides at DEBUG, every GET route of the ops
    API, the slips with the masked card, the sale in the POS report."""
    found = network_run.found
    logs = found["logs"]
    assert {"logs/bank-bni.log", "logs/switch-edc-pos.log"} <= set(logs), sorted(logs)
    assert " DEBUG " in logs["logs/switch-edc-pos.log"]  # the bank process has no DEBUG record of its own to write
    assert network_run.bank_log_level == "DEBUG"
    assert {"/v1/transactions/{rrn}", "/v1/banks/{bank}/reports", "/v1/settlement/days/{day}", "/v1/audit"} <= network_run.ops_paths_asked
    assert any("pin-reset" in text or "card.pin_reset" in text for name, text in found["ops API"].items() if "/v1/audit" in name)
    siti = network_run.used["Siti"]
    assert any(mask_pan(siti) in slip for name, slip in found["EDC slips and screens"].items() if "slip" in name)
    assert any(mask_pan(siti) in view for view in found["EDC inspector"].values())
    [csv_report] = [text for name, text in found["POS report"].items() if name.endswith("--format csv")]
    assert "BRS-MED" in csv_report or "Beras medium" in csv_report, csv_report


def test_the_search_finds_what_it_looks_for(network_run: Run) -> None:
    pans = known_pans(network_run)
    siti = network_run.used["Siti"]
    assert f"card {mask_pan(siti)} in full" in card_numbers_in(f"kartu {siti} ok", pans)
    assert card_numbers_in(f"field 2 = 16{siti}", pans) == [f"card {mask_pan(siti)} in full"]  # inside a longer run
    unknown = BNI.iin + "0" * (15 - len(BNI.iin))
    unknown += str(next(d for d in range(10) if luhn_valid(unknown + str(d))))
    assert card_numbers_in(f"pan={unknown};", set()) == [f"a card-like number {mask_pan(unknown)} (16 digits, Luhn valid)"]
    assert card_numbers_in(f"kartu {mask_pan(siti)}, RRN 000000000123, NIK 3204010101800001", pans) == []
