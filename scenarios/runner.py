"""The scenario runner: plays a scenario on a fresh real network and says pass or fail.

Each scenario gets its own temporary directory, bank processes, switch and terminals (see
`scenarios.network` and `scenarios.terminal`). Steps run in order, each bounded by a timeout;
after each step its `expect` checks become verdicts and the money auditor (`scenarios.audit`)
reads every service. The first failed step (a failed check, an audit violation, an error or a
step the runner does not support yet) ends the scenario: later steps build on its state, so
they are listed as skipped. Everything is stopped at the end, whatever happened.

The injected clock drives the TERMINALS only: banks and switch run on the wall clock. `advance`
moves the terminals' clock (their transmission dates, offline sale ages); it does not age
anything at the bank or the switch (e.g. card-list expiry or the SAF schedule).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edc_terminal.headless import Request
from edc_terminal.inspector import Exchange, format_exchange
from ewarong_pos.catalogue import DEMO_PRODUCTS
from shared.banks import BANKS

from . import audit as auditing
from .model import Condition, Expect, ReconciliationCheck, Scenario, Step, link_profile
from .network import Card, Http, ScenarioNetwork, storage_for
from .terminal import ShiftableClock, Terminal, TxnResult

STEP_TIMEOUT_S = 90.0  # one step (a `wait` gets its own bound on top)
SCENARIO_TIMEOUT_S = 900.0
POLL_S = 0.2
AUDIT_SETTLE_S = 5.0
JOURNAL_ROWS_MAX = 5_000
PASS, FAIL, SKIP, ERROR = "PASS", "FAIL", "SKIP", "ERROR"


class Unsupported(Exception):  # noqa: N818 - reads as the verdict
    """A step or check this runner cannot play yet: the scenario fails with a clear message."""

    def __init__(self, what: str) -> None:
        super().__init__(f"not supported by the runner yet: {what}")


@dataclass(frozen=True, slots=True)
class Verdict:
    check: str  # e.g. "rc", "balance siti", "audit"
    ok: bool
    detail: str


@dataclass
class StepResult:
    index: int
    name: str
    action: str
    status: str = PASS
    verdicts: list[Verdict] = field(default_factory=list)
    error: str | None = None
    txn: TxnResult | None = None
    tid: str | None = None
    exchanges: list[Exchange] = field(default_factory=list)
    balances: dict[str, int | None] = field(default_factory=dict)
    elapsed_s: float = 0.0
    named: bool = False  # the file names the step (else `name` is its action)

    @property
    def label(self) -> str:
        return f"step {self.index + 1} '{self.name}'" if self.named else f"step {self.index + 1} ({self.action})"

    def failure(self) -> str | None:
        """The first reason this step failed, naming the step and the expectation."""
        if self.error:
            return f"{self.label}: {self.error}"
        bad = next((v for v in self.verdicts if not v.ok), None)
        return f"{self.label}: expect {bad.check}: {bad.detail}" if bad else None


@dataclass
class ScenarioResult:
    name: str
    file: str
    seed: int
    steps: list[StepResult] = field(default_factory=list)
    error: str | None = None  # the network could not start, or the scenario timed out
    elapsed_s: float = 0.0

    @property
    def passed(self) -> bool:
        return self.error is None and all(s.status in (PASS,) for s in self.steps)

    def failure(self) -> str | None:
        if self.error:
            return self.error
        return next((f for s in self.steps if (f := s.failure())), None)


@dataclass(frozen=True)
class RunOptions:
    seed: int | None = None
    database_url: str | None = None
    step_timeout_s: float = STEP_TIMEOUT_S
    scenario_timeout_s: float = SCENARIO_TIMEOUT_S
    progress: Callable[[str], None] | None = None


def derived_link_seed(seed: int, index: int) -> int:
    """A terminal's link seed when the file gives none: follows from the scenario's seed."""
    return (seed * 1_000_003 + 7_919 * (index + 1)) % 2**32


def run_scenario(scenario: Scenario, file: str = "<scenario>", options: RunOptions = RunOptions()) -> ScenarioResult:
    """Play one scenario on a fresh network; never raises for what happens inside it."""
    return asyncio.run(_run(scenario, file, options))


async def _run(scenario: Scenario, file: str, options: RunOptions) -> ScenarioResult:
    seed = scenario.network.seed if options.seed is None else options.seed
    result = ScenarioResult(scenario.name, file, seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"sembako-scenario-{scenario.name}-") as tmp:
        player = _Player(scenario, Path(tmp), seed, options, result)
        try:
            await asyncio.wait_for(player.play(), options.scenario_timeout_s)
        except TimeoutError:
            result.error = f"scenario timed out after {options.scenario_timeout_s:g} s"
        except Exception as exc:  # noqa: BLE001 - a broken network fails the scenario, not the run
            result.error = f"the network failed: {type(exc).__name__}: {exc}"
        finally:
            await player.shutdown()
    result.elapsed_s = time.monotonic() - started
    return result


class _Player:
    """Plays the steps of one scenario on its network and records the results."""

    def __init__(self, scenario: Scenario, tmp: Path, seed: int, options: RunOptions, result: ScenarioResult) -> None:
        self.scenario = scenario
        self.tmp = tmp
        self.seed = seed
        self.options = options
        self.result = result
        self.clock = ShiftableClock(scenario.network.start)
        self.network = ScenarioNetwork(scenario, storage_for(tmp, options.database_url))
        self.http = Http()
        self.terminals: dict[str, Terminal] = {}
        self.slips: list[auditing.Slip] = []
        self.by_name: dict[str, StepResult] = {}

    @property
    def cards(self) -> dict[str, Card]:
        return self.network.cards

    async def play(self) -> None:
        await asyncio.to_thread(self.network.start)
        for index, spec in enumerate(self.scenario.network.terminals):
            seed = spec.link_seed if spec.link_seed is not None else derived_link_seed(self.seed, index)
            data_dir = self.tmp / "edc"
            data_dir.mkdir(exist_ok=True)
            terminal = Terminal(spec.tid, data_dir, self.clock, link_profile(spec.link), seed, self.network.iso_port)
            self.terminals[spec.tid] = terminal
            await terminal.open()
            await self._sign_on_at_start(terminal)
        failed = False
        for index, step in enumerate(self.scenario.steps):
            record = StepResult(index, step.name or step.action, step.action, named=step.name is not None)
            self.result.steps.append(record)
            if step.name:
                self.by_name[step.name] = record
            if failed:
                record.status = SKIP
                continue
            await self._play_step(step, record)
            failed = record.status != PASS
            self._progress(record)

    async def _sign_on_at_start(self, terminal: Terminal) -> None:
        """A terminal in the field signs on at the start of its day: so do these, before step 1
        (a terminal whose link starts offline cannot; a `signon` step may come later)."""
        if not terminal.profile.available:
            return
        outcome = await terminal.transact("network", Request("signon"))
        if not outcome.approved:
            raise RuntimeError(f"terminal {terminal.tid} could not sign on at the start: rc {outcome.rc}, {outcome.screen}")

    async def shutdown(self) -> None:
        for terminal in self.terminals.values():
            try:
                await terminal.close()
            except Exception:  # noqa: BLE001, S110 - the network must be stopped all the same
                pass
        await self.http.close()
        await asyncio.to_thread(self.network.stop)

    def _progress(self, record: StepResult) -> None:
        if self.options.progress:
            line = f"{self.scenario.name}  {record.label}  {record.status}  {record.elapsed_s:.2f}s"
            if record.status != PASS:
                line += f"  {record.failure()}"
            self.options.progress(line)

    async def _play_step(self, step: Step, record: StepResult) -> None:
        started = time.monotonic()
        marks = {tid: len(t.exchanges) for tid, t in self.terminals.items()}
        bound = self.options.step_timeout_s + (step.wait.within.total_seconds() if step.wait else 0)
        try:
            await asyncio.wait_for(self._act(step, record), bound)
            if step.expect is not None:
                await self._expect(step.expect, record)
            await self._audit(record)
        except Unsupported as exc:
            record.error = str(exc)
        except TimeoutError:
            record.error = f"timed out after {bound:g} s"
        except Exception as exc:  # noqa: BLE001 - a step that breaks fails its scenario with the reason
            record.error = f"{type(exc).__name__}: {exc}"
        record.exchanges = [e for tid, t in self.terminals.items() for e in t.exchanges[marks.get(tid, 0) :]]
        record.exchanges.sort(key=lambda e: e.at)
        record.balances = await self._balances()
        if record.error:
            record.status = ERROR
        elif not all(v.ok for v in record.verdicts):
            record.status = FAIL
        record.elapsed_s = time.monotonic() - started

    # -- actions -------------------------------------------------------------------------------

    async def _act(self, step: Step, record: StepResult) -> None:
        action, params = step.action, step.params
        handler = getattr(self, f"_do_{action}", None)
        if handler is None:
            raise Unsupported(f"step '{action}'")
        await handler(params, record)

    def _terminal(self, tid: str) -> Terminal:
        terminal = self.terminals[tid]
        if not terminal.running:
            raise RuntimeError(f"terminal {tid} is stopped: restart it first")
        return terminal

    def _bank_url(self, code: str) -> str:
        bank = self.network.banks[code]
        if not bank.running:
            raise RuntimeError(f"bank {code} is stopped: restart it first")
        return bank.url

    async def _do_disburse(self, params: Any, record: StepResult) -> None:
        for code in [params.bank] if params.bank else list(self.network.banks):
            await self.http.post(f"{self._bank_url(code)}/v1/disbursements", {"period": params.period, "amount_idr": params.amount_idr})

    async def _txn(self, record: StepResult, tid: str, kind: str, request: Request) -> None:
        record.tid = tid
        record.txn = await self._terminal(tid).transact(kind, request)

    async def _do_signon(self, params: Any, record: StepResult) -> None:
        await self._txn(record, params.terminal, "network", Request("signon"))

    async def _do_cek(self, params: Any, record: StepResult) -> None:
        card = self.cards[params.card]
        await self._txn(record, params.terminal, "inquiry", Request("cek", card.pan, params.pin or card.pin))

    async def _do_bayar(self, params: Any, record: StepResult) -> None:
        card = self.cards[params.card]
        await self._purchase(record, params.terminal, card, params.amount_idr, params.pin)

    async def _purchase(self, record: StepResult, tid: str, card: Card, amount_idr: int, pin: str | None) -> None:
        await self._txn(record, tid, "purchase", Request("bayar", card.pan, pin or card.pin, amount_idr))
        txn = record.txn
        if txn is not None and txn.approved and txn.rrn and not txn.offline:
            self.slips.append(auditing.Slip(tid, card.bank, txn.rrn, amount_idr, record.name))

    async def _do_cart(self, params: Any, record: StepResult) -> None:
        """The cart's total at the shelf prices, paid on the terminal. The e-Warong POS counter
        itself is not driven yet: its stock does not move and its screen cannot be checked."""
        stock = next(t.stock for t in self.scenario.network.terminals if t.tid == params.terminal) or {}
        prices = {p.sku: p.price_idr for p in DEMO_PRODUCTS}
        total_idr = 0
        for sku, quantity in params.items.items():
            item = stock.get(sku)
            price = item.price_idr if item is not None and item.price_idr is not None else prices[sku]
            if item is not None and item.quantity < quantity:
                raise RuntimeError(f"cart: only {item.quantity} of {sku} in stock, {quantity} asked")
            total_idr += price * quantity
        await self._purchase(record, params.terminal, self.cards[params.card], total_idr, params.pin)

    async def _do_reversal(self, params: Any, record: StepResult) -> None:
        await self._txn(record, params.terminal, "reversal", Request("reversal"))

    async def _do_offline_sale(self, params: Any, record: StepResult) -> None:
        card = self.cards[params.card]
        nik = card.nik if params.nik == "holder" else params.nik
        record.tid = params.terminal
        record.txn = self._terminal(params.terminal).offline_sale(card.pan, params.amount_idr, nik)

    async def _do_upload(self, params: Any, record: StepResult) -> None:
        record.tid = params.terminal
        record.txn = await self._terminal(params.terminal).job("upload")

    async def _do_settle(self, params: Any, record: StepResult) -> None:
        record.tid = params.terminal
        record.txn = await self._terminal(params.terminal).job("settlement")

    # card lifecycle, through the bank's HTTP API

    async def _card_post(self, card: Card, path: str, body: dict) -> Any:
        return await self.http.post(f"{self._bank_url(card.bank)}{path}", body)

    async def _do_block(self, params: Any, record: StepResult) -> None:
        card = self.cards[params.card]
        await self._card_post(card, f"/v1/cards/{card.pan}/block", {"actor": "scenario", "reason": "Diblokir (skenario)"})

    async def _do_report_lost(self, params: Any, record: StepResult) -> None:
        card = self.cards[params.card]
        await self._card_post(card, f"/v1/cards/{card.pan}/report-lost", {"actor": "scenario", "reason": "Dilaporkan hilang (skenario)"})

    async def _do_replace(self, params: Any, record: StepResult) -> None:
        """A card still in use is first reported damaged (the bank replaces only lost, damaged or
        blocked cards); the new card is distributed and activated with its PIN."""
        card = self.cards[params.card]
        state = await self.http.get(f"{self._bank_url(card.bank)}/v1/cards/{card.pan}")
        if state["status"] not in ("lost", "damaged", "blocked"):
            await self._card_post(card, f"/v1/cards/{card.pan}/report-damaged", {"actor": "scenario", "reason": "Kartu rusak (skenario)"})
        issued = await self._card_post(card, f"/v1/cards/{card.pan}/replace", {"actor": "scenario", "reason": "Penggantian (skenario)"})
        new = Card(params.new_card_name, card.bank, issued["pan"], params.pin or card.pin, card.nik)
        await self._card_post(new, f"/v1/cards/{new.pan}/distribute", {"actor": "scenario"})
        block = self.network.pin_block(new.bank, new.pan, new.pin)
        await self._card_post(new, f"/v1/cards/{new.pan}/activate", {"actor": "scenario", "pin_block": block})
        self.cards[new.name] = new

    async def _do_pin_reset(self, params: Any, record: StepResult) -> None:
        card = self.cards[params.card]
        block = self.network.pin_block(card.bank, card.pan, params.pin)
        body = {"actor": "scenario", "reason": "Reset PIN (skenario)", "new_pin_block": block}
        await self._card_post(card, f"/v1/ops/cards/{card.pan}/pin-reset", body)
        self.cards[card.name] = Card(card.name, card.bank, card.pan, params.pin, card.nik)

    # services

    async def _do_stop(self, target: Any, record: StepResult) -> None:
        await self._service(target, "stop")

    async def _do_kill(self, target: Any, record: StepResult) -> None:
        await self._service(target, "kill")

    async def _do_restart(self, target: Any, record: StepResult) -> None:
        await self._service(target, "restart")

    async def _service(self, target: Any, how: str) -> None:
        if target.kind == "bank":
            bank = self.network.banks[target.id]
            if how in ("stop", "restart"):
                await asyncio.to_thread(bank.stop)
            if how == "kill":
                await asyncio.to_thread(bank.kill)
            if how == "restart":
                await asyncio.to_thread(bank.start)
        elif target.kind == "switch":
            if how == "kill":
                raise Unsupported("kill switch (the switch runs in the runner's process: use stop)")
            await asyncio.to_thread(self.network.stop_switch)
            if how == "restart":
                await asyncio.to_thread(self.network.start_switch)
        else:
            terminal = self.terminals[target.id]
            await terminal.close()  # stop and kill alike: the core stores each change before it sends
            if how == "restart":
                await terminal.open()

    # link steering

    async def _do_drop_next(self, params: Any, record: StepResult) -> None:
        self._proxy(params.terminal).drop_next(params.direction)

    async def _do_duplicate_next(self, params: Any, record: StepResult) -> None:
        self._proxy(params.terminal).duplicate_next(params.direction)

    async def _do_delay_next(self, params: Any, record: StepResult) -> None:
        self._proxy(params.terminal).delay_next(params.direction, params.delay_ms)

    async def _do_cut(self, params: Any, record: StepResult) -> None:
        self._proxy(params.terminal).cut()

    async def _do_heal(self, params: Any, record: StepResult) -> None:
        self._proxy(params.terminal).heal()

    async def _do_set_profile(self, params: Any, record: StepResult) -> None:
        self._terminal(params.terminal).set_profile(link_profile(params.link))

    def _proxy(self, tid: str) -> Any:
        proxy = self._terminal(tid).proxy
        assert proxy is not None
        return proxy

    async def _do_advance(self, delta: Any, record: StepResult) -> None:
        self.clock.advance(delta)

    async def _do_wait(self, params: Any, record: StepResult) -> None:
        deadline = time.monotonic() + params.within.total_seconds()
        while True:
            verdicts = await self._condition(params.until, record)
            if all(v.ok for v in verdicts) or time.monotonic() >= deadline:
                break
            await asyncio.sleep(POLL_S)
        within = f"within {params.within.total_seconds():g} s"
        record.verdicts += [Verdict(f"wait {v.check}", v.ok, v.detail if v.ok else f"{v.detail} ({within})") for v in verdicts]

    # -- checks ----------------------------------------------------------------------------------

    async def _expect(self, expect: Expect, record: StepResult) -> None:
        verdicts: list[Verdict] = []
        txn_checks = [name for name in ("rc", "approved", "slip", "screen") if getattr(expect, name) is not None]
        if txn_checks:
            if record.action == "cart" and expect.screen is not None:
                raise Unsupported("expect screen after a cart (the e-Warong POS counter is not driven; the cart is paid on the EDC)")
            if record.txn is None:
                raise Unsupported(f"expect {', '.join(txn_checks)} after a '{record.action}' step")
            verdicts += transaction_verdicts(expect, record.txn)
        verdicts += await self._condition(expect, record)
        record.verdicts += verdicts

    async def _condition(self, condition: Condition, record: StepResult) -> list[Verdict]:
        verdicts: list[Verdict] = []
        if condition.balance is not None:
            for name, want in condition.balance.items():
                got = await self._balance(self.cards[name])
                verdicts.append(Verdict(f"balance {name}", got == want, f"expected {want}, the bank holds {got}"))
        if condition.saf is not None:
            verdicts.append(await self._saf(condition.saf))
        if condition.journal is not None:
            verdicts += await self._journal(condition.journal, record)
        if condition.bank_report is not None:
            for check in condition.bank_report:
                verdicts += await self._bank_report(check)
        if condition.reconciliation is not None:
            for check in condition.reconciliation:
                verdicts += await self._reconciliation(check, record)
        if condition.ledger is not None:
            verdicts += await self._ledgers()
        return verdicts

    async def _balance(self, card: Card) -> int | None:
        state = await self.http.get(f"{self._bank_url(card.bank)}/v1/cards/{card.pan}")
        return state.get("balance_idr")

    async def _saf(self, check: Any) -> Verdict:
        deadline = time.monotonic() + (check.within.total_seconds() if check.within else 0)
        while True:
            depth = (await self.http.get(f"{self._ops_url()}/v1/saf", limit=1, acknowledged=0))["pending_total"]
            if depth == check.depth or time.monotonic() >= deadline:
                break
            await asyncio.sleep(POLL_S)
        return Verdict("saf", depth == check.depth, f"expected {check.depth} pending reversal(s), the switch holds {depth}")

    def _ops_url(self) -> str:
        if self.network.switch is None:
            raise RuntimeError("the switch is stopped: restart it first")
        return self.network.ops_url

    def _step_ref(self, name: str | None, record: StepResult) -> StepResult:
        target = self.by_name[name] if name else record
        if target.txn is None or target.tid is None:
            raise Unsupported(f"a journal or reconciliation check of step '{target.name}', which made no terminal transaction")
        return target

    async def _journal_row(self, target: StepResult) -> dict | None:
        """The journal's record of a step's transaction: by RRN, else by terminal and STAN."""
        txn = target.txn
        assert txn is not None
        if txn.rrn:
            try:
                return await self.http.get(f"{self._ops_url()}/v1/transactions/{txn.rrn}")
            except Exception:  # noqa: BLE001 - not journalled (yet): searched below
                pass
        if not txn.stan:
            return None
        page = await self.http.get(f"{self._ops_url()}/v1/transactions", terminal=target.tid, kind=txn.kind, limit=500)
        row = next((item for item in page["items"] if item["stan"] == txn.stan), None)
        if row is None:
            return None
        return await self.http.get(f"{self._ops_url()}/v1/transactions/{row['rrn']}")

    async def _journal(self, check: Any, record: StepResult) -> list[Verdict]:
        target = self._step_ref(check.step, record)
        # The switch writes its journal in the background: give the row AUDIT_SETTLE_S to land.
        deadline = time.monotonic() + AUDIT_SETTLE_S
        while (detail := await self._journal_row(target)) is None and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
        what = f"step '{target.name}'"
        if detail is None:
            return [Verdict("journal", False, f"the switch journal has no transaction of {what}")]
        row = detail["transaction"]
        verdicts = []
        if check.rc is not None:
            wanted = _as_list(check.rc)
            verdicts.append(Verdict("journal rc", row["rc"] in wanted, f"expected {' or '.join(wanted)} for {what}, journal says {row['rc']}"))
        if check.reversed is not None:
            done = any(r["rc"] == auditing.APPROVED for r in detail["reversals"])
            verdicts.append(Verdict("journal reversed", done == check.reversed, f"expected reversed={check.reversed} for {what}, journal says {done}"))
        return verdicts

    async def _bank_report(self, check: Any) -> list[Verdict]:
        report = await self.http.get(f"{self._bank_url(check.bank)}/v1/reports", period=check.period, level=check.level)
        if check.row == "TOTAL":
            row, label = report["totals"], "TOTAL"
        else:
            row = next((r for r in report["rows"] if all(r.get(k) == v for k, v in check.row.items())), None)
            label = ", ".join(f"{k}={v}" for k, v in check.row.items())
        if row is None:
            return [Verdict(f"bank_report {check.bank}", False, f"no row {label} in the {check.period} report")]
        return [
            Verdict(f"bank_report {check.bank} {name}", row.get(name) == want, f"{label}: expected {want}, report shows {row.get(name)}")
            for name, want in check.values.items()
        ]

    async def _reconciliation(self, check: ReconciliationCheck, record: StepResult) -> list[Verdict]:
        day = check.date or self.clock.now().date()
        report = await self.http.get(f"{self._ops_url()}/v1/reconciliation", date=day.isoformat(), tid=check.tid)
        terminal = next((t for t in report["terminals"] if t["tid"] == check.tid), None)
        where = f"{check.tid} {day.isoformat()}"
        if terminal is None:
            return [Verdict("reconciliation", False, f"no report for {where}")]
        if check.step is None:
            row, label = terminal["summary"], f"summary {where}"
        else:
            target = self._step_ref(check.step, record)
            assert target.txn is not None
            kind = check.kind or target.txn.kind
            row = next((line for line in terminal["lines"] if line["kind"] == kind and line["stan"] == target.txn.stan), None)
            label = f"{kind} line of step '{target.name}' ({where})"
            if row is None:
                return [Verdict("reconciliation", False, f"no {label}")]
        return [
            Verdict(f"reconciliation {name}", _same(row.get(name), want), f"{label}: expected {want!r}, report shows {row.get(name)!r}")
            for name, want in check.values.items()
        ]

    async def _ledgers(self) -> list[Verdict]:
        verdicts = []
        for code in self.network.banks:
            check = await self.http.get(f"{self._bank_url(code)}/v1/ops/ledger-check")
            ok = bool(check["ok"]) and check["balance_sum_idr"] == 0
            verdicts.append(Verdict(f"ledger {code}", ok, f"ok={check['ok']}, sum of balances {check['balance_sum_idr']}"))
        return verdicts

    # -- the money auditor -------------------------------------------------------------------------

    async def _audit(self, record: StepResult) -> None:
        """The money rules after the step. The switch journals asynchronously (a writer queue), so
        a view read too early can miss the last rows: a violation counts only if it persists for
        AUDIT_SETTLE_S."""
        deadline = time.monotonic() + AUDIT_SETTLE_S
        while True:
            problems = auditing.audit(await self.audit_view())
            if not problems or time.monotonic() >= deadline:
                break
            await asyncio.sleep(POLL_S)
        record.verdicts.append(Verdict("audit", not problems, "; ".join(problems) or "money rules hold"))

    async def audit_view(self) -> auditing.AuditView:
        """Read every running service into an AuditView (stopped ones are left out)."""
        running = [code for code, bank in self.network.banks.items() if bank.running]
        unread = frozenset(code for code in self.network.banks if code not in running)
        ledgers = {code: await self.http.get(f"{self.network.banks[code].url}/v1/ops/ledger-check") for code in running}
        if self.network.switch is None:
            return auditing.AuditView(ledgers, [], {}, [], frozenset(), frozenset(BANKS))
        journal = await self._journal_rows()
        saf = await self.http.get(f"{self.network.ops_url}/v1/saf", limit=500, acknowledged=0)
        reversal_of = {row["rrn"]: row.get("original_rrn") for row in journal}
        pending = {entry["rrn"] for entry in saf["pending"]}
        pending |= {reversal_of[rrn] for rrn in list(pending) if reversal_of.get(rrn)}
        postings: dict[str, list[dict]] = {}
        for code in running:
            days = sorted({row["transmission_date"] for row in journal if row.get("bank_code") == code})
            postings[code] = [p for day in days for p in await self._postings(code, day)]
        return auditing.AuditView(ledgers, journal, postings, list(self.slips), frozenset(pending), unread)

    async def _journal_rows(self) -> list[dict]:
        rows: list[dict] = []
        before: int | None = None
        while len(rows) < JOURNAL_ROWS_MAX:
            page = await self.http.get(f"{self.network.ops_url}/v1/transactions", limit=500, before_id=before)
            rows += page["items"]
            before = page["next_before_id"]
            if before is None:
                break
        return rows

    async def _postings(self, code: str, day: str) -> list[dict]:
        found: list[dict] = []
        after = 0
        while len(found) < JOURNAL_ROWS_MAX:
            page = await self.http.get(f"{self.network.banks[code].url}/v1/postings", date=day, after_id=after)
            found += page["postings"]
            if page["next_after_id"] is None:
                break
            after = page["next_after_id"]
        return found

    async def _balances(self) -> dict[str, int | None]:
        shown: dict[str, int | None] = {}
        for name, card in self.cards.items():
            try:
                shown[name] = await self._balance(card) if self.network.banks[card.bank].running else None
            except Exception:  # noqa: BLE001 - the report shows what could be read
                shown[name] = None
        return shown


def _as_list(value: Any) -> list[str]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, (list, tuple)):
        return isinstance(got, list) and list(got) == list(want)
    return got == want


def transaction_verdicts(expect: Expect, txn: TxnResult) -> list[Verdict]:
    """rc, approved, slip and screen of a terminal transaction (pure)."""
    verdicts = []
    if expect.rc is not None:
        wanted = _as_list(expect.rc)
        got = txn.rc if txn.rc is not None else f"none (the terminal refused the input: {txn.screen})"
        verdicts.append(Verdict("rc", txn.rc in wanted, f"expected {' or '.join(wanted)}, the terminal got {got}"))
    if expect.approved is not None:
        verdicts.append(Verdict("approved", txn.approved == expect.approved, f"expected approved={expect.approved}, got {txn.approved} (rc {txn.rc})"))
    for name, text in (("slip", txn.slip), ("screen", txn.screen)):
        check = getattr(expect, name)
        if check is None:
            continue
        for needle in _as_list(check.contains) if check.contains is not None else []:
            verdicts.append(Verdict(f"{name} contains", needle in text, f"{needle!r} not in the {name}: {text!r}"))
        for needle in _as_list(check.not_contains) if check.not_contains is not None else []:
            verdicts.append(Verdict(f"{name} not_contains", needle not in text, f"{needle!r} is in the {name}: {text!r}"))
    return verdicts


def describe_exchanges(exchanges: list[Exchange]) -> list[str]:
    """The exchanges as the EDC message inspector shows them (fields described, PAN masked)."""
    return [format_exchange(e) for e in exchanges]
