"""The scenario runner: plays a scenario on a fresh real network and says pass or fail.

Each scenario gets its own temporary directory, bank and switch processes, terminals and
e-Warong books (see `scenarios.network`, `scenarios.terminal` and `scenarios.shop`). Steps run
in order, each bounded by a timeout; after each step its `expect` checks become verdicts and the
money auditor (`scenarios.audit`) reads every service. The first failed step (a failed check,
an audit violation or an error) ends the scenario: later steps build on its state, so they are
listed as skipped. Everything is stopped at the end, whatever happened.

The scenario's clock is the whole network's: terminals, banks and the switch read the same
simulated time (the clock file), so `advance` ages offline sales at the bank (the 90-day rule),
journal dates at the switch and the terminals' card lists alike.

A service action written with a delay ("switch after 1s") returns at once and lands during the
next step, which waits for it before its checks: the way to kill a service mid-transaction. Its
delay runs from the start of that next step, so the step that wrote it is read by the auditor
whole, however slow the machine.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edc_terminal.headless import Request
from edc_terminal.inspector import Exchange, format_exchange
from shared.banks import BANKS
from shared.credentials import OPERATOR, SWITCH, bearer

from . import audit as auditing
from .model import TRANSACTION_CHECKS, Condition, Expect, ReconciliationCheck, Scenario, ServiceTarget, Step, link_profile
from .network import Card, Http, ScenarioNetwork, ServiceProcess, Storage, masked, storage_for
from .shop import ScenarioShops
from .terminal import BASE_TIMEOUT_MS, Terminal, TxnResult

SIGN_ON_ATTEMPTS = 3  # at the start of a scenario, on a link that loses frames
STEP_TIMEOUT_S = 90.0  # one step (a `wait` gets its own bound on top)
SCENARIO_TIMEOUT_S = 900.0
POLL_S = 0.2
AUDIT_SETTLE_S = 5.0
JOURNAL_ROWS_MAX = 5_000
PASS, FAIL, SKIP, ERROR = "PASS", "FAIL", "SKIP", "ERROR"


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
    # Hooks of `sembako simulate` (scenarios.simulate): the network to build instead of the
    # plain one, and checks of its own after each step (after the money auditor).
    network_factory: Callable[[Scenario, Storage], ScenarioNetwork] | None = None
    after_step: Callable[[Any, StepResult], Awaitable[list[Verdict]]] | None = None
    terminal_timeout_ms: int = BASE_TIMEOUT_MS  # the terminals' own wait (above the switch's wait for a bank)
    # The cards whose balances the record of step `index` shows (default: every card). A
    # simulation shows the cards of the seed the step belongs to: one read per card and step.
    shown_cards: Callable[[int], Collection[str]] | None = None


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
        player = ScenarioPlayer(scenario, Path(tmp), seed, options, result)
        try:
            await asyncio.wait_for(player.play(), options.scenario_timeout_s)
        except TimeoutError:
            result.error = f"scenario timed out after {options.scenario_timeout_s:g} s"
        except Exception as exc:  # noqa: BLE001 - a broken network fails the scenario, not the run
            result.error = masked(f"the network failed: {type(exc).__name__}: {exc}")
        finally:
            await player.shutdown()
    result.elapsed_s = time.monotonic() - started
    if options.progress:
        verdict = "PASS" if result.passed else f"FAIL: {result.failure()}"
        options.progress(f"{result.name}  {verdict}  ({result.elapsed_s:.1f}s)")
    return result


class ScenarioPlayer:
    """Plays the steps of one scenario on its network and records the results."""

    def __init__(self, scenario: Scenario, tmp: Path, seed: int, options: RunOptions, result: ScenarioResult) -> None:
        self.scenario = scenario
        self.tmp = tmp
        self.seed = seed
        self.options = options
        self.result = result
        self.network = (options.network_factory or ScenarioNetwork)(scenario, storage_for(tmp, options.database_url))
        self.clock = self.network.clock
        self.shops = ScenarioShops(scenario.network.terminals, self.network.storage, self.clock, scenario.network.start)
        self.http = Http()
        self.terminals: dict[str, Terminal] = {}
        self.slips: list[auditing.Slip] = []
        self.by_name: dict[str, StepResult] = {}
        self.deferred: list[Callable[[], Awaitable[None]]] = []  # service actions written with a delay, for the next step

    @property
    def cards(self) -> dict[str, Card]:
        return self.network.cards

    async def play(self) -> None:
        await asyncio.to_thread(self.network.start)
        for index, spec in enumerate(self.scenario.network.terminals):
            seed = spec.link_seed if spec.link_seed is not None else derived_link_seed(self.seed, index)
            data_dir = self.tmp / "edc"
            data_dir.mkdir(exist_ok=True)
            terminal = Terminal(
                spec.tid, data_dir, self.clock, link_profile(spec.link), seed, self.network.iso_port, self.options.terminal_timeout_ms
            )
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
            await self.play_step(step, record)
            failed = record.status != PASS
            self._progress(record)

    async def _sign_on_at_start(self, terminal: Terminal) -> None:
        """A terminal in the field signs on at the start of its day: so do these, before step 1
        (a terminal whose link starts offline cannot; a `signon` step may come later)."""
        if not terminal.profile.available:
            return
        for _ in range(SIGN_ON_ATTEMPTS):  # as a terminal does on a lossy link (VSAT): try again
            outcome = await terminal.transact("network", Request("signon"))
            if outcome.approved:
                return
        raise RuntimeError(f"terminal {terminal.tid} could not sign on at the start: rc {outcome.rc}, {outcome.screen}")

    async def shutdown(self) -> None:
        self.deferred = []  # written by the last step: there is no next step for them to land in
        for terminal in self.terminals.values():
            try:
                await terminal.close()
            except Exception:  # noqa: BLE001, S110 - the network must be stopped all the same
                pass
        await self.http.close()
        self.shops.close()
        await asyncio.to_thread(self.network.stop)

    def _progress(self, record: StepResult) -> None:
        if self.options.progress:
            line = f"{self.scenario.name}  {record.label}  {record.status}  {record.elapsed_s:.2f}s"
            if record.status != PASS:
                line += f"  {record.failure()}"
            self.options.progress(line)

    async def play_step(self, step: Step, record: StepResult) -> None:
        started = time.monotonic()
        marks = {tid: len(t.exchanges) for tid, t in self.terminals.items()}
        bound = self.options.step_timeout_s + (step.wait.within.total_seconds() if step.wait else 0)
        landing = [asyncio.create_task(action()) for action in self.deferred]  # their delays start now
        self.deferred = []
        try:
            await asyncio.wait_for(self._act_and_land(step, record, landing), bound)
            if step.expect is not None:
                await self._expect(step.expect, record)
            await self._audit(record)
            if self.options.after_step is not None:
                record.verdicts += await self.options.after_step(self, record)
        except TimeoutError:
            record.error = f"timed out after {bound:g} s"
        except Exception as exc:  # noqa: BLE001 - a step that breaks fails its scenario with the reason
            record.error = masked(f"{type(exc).__name__}: {exc}")
        record.exchanges = [e for tid, t in self.terminals.items() for e in t.exchanges[marks.get(tid, 0) :]]
        record.exchanges.sort(key=lambda e: e.at)
        record.balances = await self._balances(record.index)
        if record.error:
            record.status = ERROR
        elif not all(v.ok for v in record.verdicts):
            record.status = FAIL
        record.elapsed_s = time.monotonic() - started

    # -- actions -------------------------------------------------------------------------------

    async def _act_and_land(self, step: Step, record: StepResult, landing: list[asyncio.Task]) -> None:
        """The step's action; then the delayed service actions of the step before land."""
        try:
            await self._act(step, record)
        finally:
            for result in await asyncio.gather(*landing, return_exceptions=True):
                if isinstance(result, BaseException):
                    raise RuntimeError(f"the delayed service action of the step before failed: {result}") from result

    async def _act(self, step: Step, record: StepResult) -> None:
        handler = getattr(self, f"_do_{step.action}")
        await handler(step.params, record)

    def _terminal(self, tid: str) -> Terminal:
        terminal = self.terminals[tid]
        if not terminal.running:
            raise RuntimeError(f"terminal {tid} is stopped: restart it first")
        return terminal

    def _bank_url(self, code: str, waiting: bool = False) -> str:
        """A bank's URL; refused when it is stopped, or paused unless the caller may `wait` for
        it (an action posted to a paused bank waits, bounded, until it is resumed)."""
        bank = self.network.banks[code]
        if not (waiting and bank.running):
            _check_answering(bank)
        return bank.url

    def _bank_headers(self, code: str, holder: str = OPERATOR) -> dict[str, str]:
        """Card lifecycle, disbursements, reports and ledger checks go with the bank operators'
        credential; reading postings (what the switch reconciles) with the switch's."""
        return bearer(self.network.bank_credential(code, holder))

    async def _bank_get(self, code: str, path: str, holder: str = OPERATOR, **params: Any) -> Any:
        return await self.http.get(f"{self._bank_url(code)}{path}", headers=self._bank_headers(code, holder), **params)

    async def _bank_post(self, code: str, path: str, body: dict) -> Any:
        return await self.http.post(f"{self._bank_url(code, waiting=True)}{path}", body, headers=self._bank_headers(code))

    async def _do_disburse(self, params: Any, record: StepResult) -> None:
        for code in [params.bank] if params.bank else list(self.network.banks):
            await self._bank_post(code, "/v1/disbursements", {"period": params.period, "amount_idr": params.amount_idr})

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
        """The cart bought at the terminal's e-Warong counter (see `Terminal.cart`)."""
        card = self.cards[params.card]
        terminal = self._terminal(params.terminal)
        shop = await asyncio.to_thread(self.shops.shop_of, params.terminal)
        record.tid = params.terminal
        record.txn = await terminal.cart(self.shops.store(), shop, card.pan, params.pin or card.pin, card.nik, dict(params.items))
        txn = record.txn
        if txn.approved and txn.rrn and not txn.offline and txn.amount_idr is not None:
            self.slips.append(auditing.Slip(params.terminal, card.bank, txn.rrn, txn.amount_idr, record.name))

    async def _do_tarik_tunai(self, params: Any, record: StepResult) -> None:
        card = self.cards[params.card]
        record.tid = params.terminal
        record.txn = await self._terminal(params.terminal).cash_withdrawal(card.pan, params.pin or card.pin, params.amount_idr)
        txn = record.txn
        if txn.approved and txn.rrn:
            self.slips.append(auditing.Slip(params.terminal, card.bank, txn.rrn, params.amount_idr, record.name))

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
        return await self._bank_post(card.bank, path, body)

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
        state = await self._bank_get(card.bank, f"/v1/cards/{card.pan}")
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

    async def _do_stop(self, target: ServiceTarget, record: StepResult) -> None:
        await self._service(target, "stop")

    async def _do_kill(self, target: ServiceTarget, record: StepResult) -> None:
        await self._service(target, "kill")

    async def _do_pause(self, target: ServiceTarget, record: StepResult) -> None:
        await self._service(target, "pause")

    async def _do_resume(self, target: ServiceTarget, record: StepResult) -> None:
        await self._service(target, "resume")

    async def _do_restart(self, target: ServiceTarget, record: StepResult) -> None:
        await self._service(target, "restart")

    async def _service(self, target: ServiceTarget, how: str) -> None:
        if target.after is None:
            await self._service_now(target, how)
            return
        delay_s = target.after.total_seconds()
        self.deferred.append(lambda: self._service_later(target, how, delay_s))

    async def _service_later(self, target: ServiceTarget, how: str, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        await self._service_now(target, how)

    async def _service_now(self, target: ServiceTarget, how: str) -> None:
        if target.kind == "terminal":
            terminal = self.terminals[str(target.id)]
            if how in ("stop", "kill", "restart"):
                await terminal.close()  # stop and kill alike: the core stores each change before it sends
            if how == "restart":
                await terminal.open()
            return
        service = self.network.service(target.kind, target.id)
        if how == "restart":
            await asyncio.to_thread(service.stop)
            await asyncio.to_thread(service.start)
        else:
            await asyncio.to_thread(getattr(service, how))

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
        proxy = self._proxy(params.terminal)
        proxy.heal()
        proxy.forget_steering()

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
        txn_checks = [name for name in TRANSACTION_CHECKS if getattr(expect, name) is not None]
        if txn_checks:
            if record.txn is None:  # the loader allows these checks only after transaction steps
                raise RuntimeError(f"the '{record.action}' step made no terminal transaction to check")
            verdicts += transaction_verdicts(expect, record.txn)
        verdicts += await self._condition(expect, record)
        record.verdicts += verdicts

    async def _condition(self, condition: Condition, record: StepResult) -> list[Verdict]:
        verdicts: list[Verdict] = []
        if condition.saf is not None:  # first: "0 within 5s" waits for the queue, the rest reads after it
            verdicts.append(await self._saf(condition.saf))
        if condition.balance is not None:
            for name, want in condition.balance.items():
                got = await self._balance(self.cards[name])
                verdicts.append(Verdict(f"balance {name}", got == want, f"expected {want}, the bank holds {got}"))
        if condition.journal is not None:
            verdicts += await self._journal(condition.journal, record)
        if condition.bank_report is not None:
            for check in condition.bank_report:
                verdicts += await self._bank_report(check)
        if condition.reconciliation is not None:
            for check in condition.reconciliation:
                verdicts += await self._settled(lambda check=check: self._reconciliation(check, record))
        if condition.ledger is not None:
            verdicts += await self._ledgers()
        for tid, wanted in (condition.stock or {}).items():
            shelf = await asyncio.to_thread(self.shops.stock, tid)
            for sku, want in wanted.items():
                got = shelf.get(sku, 0)
                verdicts.append(Verdict(f"stock {tid} {sku}", got == want, f"expected {want} on the shelf, the e-Warong's books hold {got}"))
        return verdicts

    async def _settled(self, verdicts_of: Callable[[], Awaitable[list[Verdict]]]) -> list[Verdict]:
        """Verdicts on what the switch journals: it writes in the background (a writer queue),
        so a row may land a moment after the answer. Failing verdicts are read again for up to
        AUDIT_SETTLE_S before they count."""
        deadline = time.monotonic() + AUDIT_SETTLE_S
        while True:
            verdicts = await verdicts_of()
            if all(v.ok for v in verdicts) or time.monotonic() >= deadline:
                return verdicts
            await asyncio.sleep(POLL_S)

    async def _balance(self, card: Card) -> int | None:
        state = await self._bank_get(card.bank, f"/v1/cards/{card.pan}")
        return state.get("balance_idr")

    async def _saf(self, check: Any) -> Verdict:
        deadline = time.monotonic() + (check.within.total_seconds() if check.within else 0)
        while True:
            depth = (await self._ops_get("/v1/saf", limit=1, acknowledged=0))["pending_total"]
            if depth == check.depth or time.monotonic() >= deadline:
                break
            await asyncio.sleep(POLL_S)
        return Verdict("saf", depth == check.depth, f"expected {check.depth} pending reversal(s), the switch holds {depth}")

    async def _ops_get(self, path: str, **params: Any) -> Any:
        """GET from the switch's ops API, with the runner's token."""
        _check_answering(self.network.switch)
        return await self.http.get(f"{self.network.ops_url}{path}", headers=self.network.ops_headers(), **params)

    def _step_ref(self, name: str | None, record: StepResult) -> StepResult:
        """The step a journal or reconciliation check names (the loader allows only steps that
        make one transaction of their own)."""
        return self.by_name[name] if name else record

    async def _journal_row(self, target: StepResult) -> dict | None:
        """The journal's record of a step's transaction: by RRN, else by terminal and STAN."""
        txn = target.txn
        if txn is None or target.tid is None:
            return None
        if txn.rrn:
            try:
                return await self._ops_get(f"/v1/transactions/{txn.rrn}")
            except Exception:  # noqa: BLE001 - not journalled (yet): searched below
                pass
        if not txn.stan:
            return None
        page = await self._ops_get("/v1/transactions", terminal=target.tid, kind=txn.kind, limit=500)
        row = next((item for item in page["items"] if item["stan"] == txn.stan), None)
        if row is None:
            return None
        return await self._ops_get(f"/v1/transactions/{row['rrn']}")

    async def _journal(self, check: Any, record: StepResult) -> list[Verdict]:
        target = self._step_ref(check.step, record)
        # The switch writes its journal in the background: give the row AUDIT_SETTLE_S to land.
        deadline = time.monotonic() + AUDIT_SETTLE_S
        while (detail := await self._journal_row(target)) is None and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
        what = f"step '{target.name}'"
        if detail is None:
            sent = "" if target.txn is None or target.txn.rc is not None else " (the terminal sent nothing: " + target.txn.screen.splitlines()[-1] + ")"
            return [Verdict("journal", False, f"the switch journal has no transaction of {what}{sent}")]
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
        report = await self._bank_get(check.bank, "/v1/reports", period=check.period, level=check.level)
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
        report = await self._ops_get("/v1/reconciliation", date=day.isoformat(), tid=check.tid)
        terminal = next((t for t in report["terminals"] if t["tid"] == check.tid), None)
        where = f"{check.tid} {day.isoformat()}"
        if terminal is None:
            return [Verdict("reconciliation", False, f"no report for {where}")]
        if check.step is None:
            row, label = terminal["summary"], f"summary {where}"
        else:
            target = self._step_ref(check.step, record)
            if target.txn is None or target.txn.stan is None:
                return [Verdict("reconciliation", False, f"step '{target.name}' sent no transaction ({where})")]
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
            check = await self._bank_get(code, "/v1/ops/ledger-check")
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
        """Read every answering service into an AuditView (stopped and paused ones are left out)."""
        running = [code for code, bank in self.network.banks.items() if _answering(bank)]
        unread = frozenset(code for code in self.network.banks if code not in running)
        ledgers = {code: await self._bank_get(code, "/v1/ops/ledger-check") for code in running}
        if not _answering(self.network.switch):
            return auditing.AuditView(ledgers, [], {}, [], frozenset(), frozenset(BANKS))
        journal = await self._journal_rows()
        saf = await self._ops_get("/v1/saf", limit=500, acknowledged=0)
        reversal_of = {row["rrn"]: row.get("original_rrn") for row in journal}
        pending = {entry["rrn"] for entry in saf["pending"]}
        pending |= {reversal_of[rrn] for rrn in list(pending) if reversal_of.get(rrn)}
        postings = {code: await self._postings(code) for code in running}  # every day's, whatever the journal holds
        held = frozenset((tid, stan) for tid, terminal in self.terminals.items() for stan in terminal.held_reversals())
        return auditing.AuditView(ledgers, journal, postings, list(self.slips), frozenset(pending), unread, held)

    async def _journal_rows(self) -> list[dict]:
        rows: list[dict] = []
        before: int | None = None
        while len(rows) < JOURNAL_ROWS_MAX:
            page = await self._ops_get("/v1/transactions", limit=500, before_id=before)
            rows += page["items"]
            before = page["next_before_id"]
            if before is None:
                break
        return rows

    async def _postings(self, code: str) -> list[dict]:
        found: list[dict] = []
        after = 0
        while len(found) < JOURNAL_ROWS_MAX:
            page = await self._bank_get(code, "/v1/postings", SWITCH, after_id=after)
            found += page["postings"]
            if page["next_after_id"] is None:
                break
            after = page["next_after_id"]
        return found

    async def _balances(self, index: int) -> dict[str, int | None]:
        names = self.options.shown_cards(index) if self.options.shown_cards is not None else self.cards
        shown: dict[str, int | None] = {}
        for name, card in ((name, self.cards[name]) for name in names if name in self.cards):
            try:
                shown[name] = await self._balance(card) if _answering(self.network.banks[card.bank]) else None
            except Exception:  # noqa: BLE001 - the report shows what could be read
                shown[name] = None
        return shown


def _answering(service: ServiceProcess) -> bool:
    return service.running and not service.paused


def _check_answering(service: ServiceProcess) -> None:
    if not service.running:
        raise RuntimeError(f"{service.name} is stopped: restart it first")
    if service.paused:
        raise RuntimeError(f"{service.name} is paused: resume it first")


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
    if expect.sent is not None:
        sent = txn.rc is not None and not txn.offline
        why = f"rc {txn.rc}" if sent else "decided offline" if txn.offline else f"refused first: {txn.screen.splitlines()[-1] if txn.screen else ''}"
        verdicts.append(Verdict("sent", sent == expect.sent, f"expected sent={expect.sent}, got {sent} ({why})"))
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
