"""Seeded fault simulation: random workloads over the real network, the money auditor after each step.

`generate(seed, steps, faults)` draws a workload from `random.Random(seed)` alone: two or three
fresh KPM cards, a terminal, and `steps` steps of cek, bayar (random amounts, sometimes above
the balance, sometimes with a wrong PIN), voids, offline sales with their upload, settlements
and disbursements (re-runs included), with faults drawn from the enabled set: drop, duplicate or
delay the next frame in either direction, kill a bank or the switch (at once, or a moment later
while a purchase is in flight) and restart it. Nothing in it names an exact response code: under
faults the outcome is legitimately one of several.

The workload is played by the scenario runner (`scenarios.runner`) as an in-memory scenario, with
the money auditor after every step, followed by a *seal*: every service restarted, the link
clean, the terminal's stored reversals and offline sales delivered, the switch's queue drained.
At the seal the simulator checks what it can state for sure from the EDC's own record of
outcomes: each card's balance at the bank equals its disbursements less its approved purchases
not voided and its offline sales the bank accepted, and the terminal holds nothing undelivered.

Many seeds share one network (a network costs seconds to start): each seed has its own cards,
its own terminal and its own benefit periods (its cards' first period is its own, later seeds
disburse later periods), so seeds do not meet; the auditor's rules are global all the same. A
failing seed is replayed alone on a fresh network and shrunk (delta debugging over its steps,
bounded in replays and time) while the same invariant still fails; the replay command is printed.
"""

from __future__ import annotations

import bisect
import math
import multiprocessing
import random
import re
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import update

from bank_penyalur import registry
from bank_penyalur.tables import Kpm
from linksim.proxy import DIRECTIONS
from shared.banks import get_bank

from .model import PEOPLE_MAX, STEPS_MAX, Scenario
from .network import ScenarioNetwork, Storage
from .references import reference_problems
from .runner import PASS, SKIP, RunOptions, ScenarioResult, StepResult, Verdict, run_scenario

FAULTS: tuple[str, ...] = ("drop", "dup", "delay", "kill")
BANKS: tuple[str, ...] = ("bni", "bri")  # the simulation network's banks
START = datetime(2026, 11, 3, 9, 0)
SIM_STEPS_MAX = 300  # generated steps of one seed (the seal comes on top)
SEEDS_MAX = 1_000_000
SEED_MAX = 2**32 - 1
JOBS_MAX = 16
SEEDS_PER_NETWORK_MAX = 24
SLOTS_MAX = 48  # demo terminal serials of a bank: one terminal per seed of a network
SEAL_STEPS_MAX = 12  # the seal and the steps normalising inserts, at most
SHRINK_REPLAYS_MAX = 24
SHRINK_TIME_S = 240.0
BENEFIT_IDR = 150_000
# Shorter waits than a scenario's (5 s at the terminal, 3 s at the switch for a bank): a lost frame
# costs the terminal's wait, and a simulation loses many. Their order is kept.
TERMINAL_TIMEOUT_MS = 2_500
BANK_TIMEOUT_MS = 1_200
DELAYS = ("200ms", "800ms", "2s", "4s")  # 4s: beyond the terminal's own wait
APPROVED = "00"
_TERMINAL, _P0, _P1 = "@T", "@P0", "@P1"
_TRANSACTIONS = ("cek", "bayar", "reversal", "offline_sale", "upload", "settle", "signon")


class SimulationError(ValueError):
    """Bad options: the message says which and why."""


def parse_faults(text: str) -> tuple[str, ...]:
    """"drop,dup,delay,kill" (any subset, in any order), "all" or "none"."""
    words = [w.strip() for w in text.split(",") if w.strip()]
    if words == ["all"]:
        return FAULTS
    if words in ([], ["none"]):
        return ()
    unknown = [w for w in words if w not in FAULTS]
    if unknown:
        raise SimulationError(f"unknown fault(s) {', '.join(unknown)}: expecting a list of {', '.join(FAULTS)}, or all, or none")
    return tuple(f for f in FAULTS if f in words)


def faults_text(faults: Sequence[str]) -> str:
    return ",".join(faults) if faults else "none"


def parse_only(text: str, steps: int) -> tuple[int, ...]:
    """"3,5,9" (1-based step numbers of the generated workload) as sorted 0-based indices."""
    try:
        numbers = sorted({int(w) for w in text.split(",") if w.strip()})
    except ValueError:
        raise SimulationError(f"--only takes step numbers separated by commas, e.g. 2,5,7; got {text!r}") from None
    if not numbers:
        raise SimulationError("--only needs at least one step number")
    bad = [n for n in numbers if not 1 <= n <= steps]
    if bad:
        raise SimulationError(f"--only: step number(s) {', '.join(map(str, bad))} outside 1..{steps} (--steps)")
    return tuple(n - 1 for n in numbers)


def check_options(seed: int, steps: int, seeds: int, jobs: int) -> None:
    if not 0 <= seed <= SEED_MAX:
        raise SimulationError(f"--seed must be within 0..{SEED_MAX}, got {seed}")
    if not 1 <= steps <= SIM_STEPS_MAX:
        raise SimulationError(f"--steps must be within 1..{SIM_STEPS_MAX}, got {steps}")
    if not 1 <= seeds <= SEEDS_MAX:
        raise SimulationError(f"--seeds must be within 1..{SEEDS_MAX}, got {seeds}")
    if seed + seeds - 1 > SEED_MAX:
        raise SimulationError(f"--seed + --seeds goes beyond {SEED_MAX}")
    if not 1 <= jobs <= JOBS_MAX:
        raise SimulationError(f"--jobs must be within 1..{JOBS_MAX}, got {jobs}")


# -- the workload ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlannedCard:
    name: str
    bank: str
    pin: str


@dataclass(frozen=True)
class Workload:
    """One seed's workload, before it is placed on a network: steps as scenario steps, written
    with placeholders for the terminal (@T) and the seed's two benefit periods (@P0, @P1)."""

    seed: int
    faults: tuple[str, ...]
    cards: tuple[PlannedCard, ...]
    terminal_bank: str
    link_seed: int
    ops: tuple[dict, ...]


def _pin(rng: random.Random, unlike: str | None = None) -> str:
    while True:
        pin = f"{rng.randrange(10**6):06d}"
        if pin != unlike:
            return pin


class _Generator:
    """Draws steps, keeping a rough idea of balances (to buy within and above them) and of
    which service is down (to restart it, and to disburse only to running banks)."""

    def __init__(self, rng: random.Random, cards: tuple[PlannedCard, ...], faults: tuple[str, ...]) -> None:
        self.rng = rng
        self.cards = cards
        self.faults = faults
        self.estimate = {c.name: 0 for c in cards}
        self.disbursed: set[tuple[str, str]] = set()
        self.down: str | None = None
        self.restart_in = 0
        self.ops: list[dict] = []

    def run(self, steps: int) -> tuple[dict, ...]:
        if self.rng.random() < 0.85:  # noqa: PLR2004 - most workloads start with the month's benefit
            self._disburse(_P0)
        while len(self.ops) < steps:
            if self.down is not None and self.restart_in <= 0:
                self._emit({"restart": self.down})
                self.down = None
                continue
            kinds, weights = ["cek", "bayar", "reversal", "disburse", "offline", "upload", "settle"], [14, 34, 9, 8, 7, 3, 4]
            if self.faults:
                kinds.append("fault")
                weights.append(21)
            getattr(self, f"_{self.rng.choices(kinds, weights)[0]}")()
        return tuple(self.ops[:steps])

    def _emit(self, op: dict) -> None:
        self.ops.append(op)
        if self.down is not None:
            self.restart_in -= 1

    def _card(self) -> PlannedCard:
        return self.rng.choice(self.cards)

    def _cek(self) -> None:
        card = self._card()
        op = {"card": card.name, "terminal": _TERMINAL}
        if self.rng.random() < 0.1:  # noqa: PLR2004
            op["pin"] = _pin(self.rng, card.pin)
        self._emit({"cek": op})

    def _bayar(self) -> None:
        card = self._card()
        estimate = self.estimate[card.name]
        if estimate >= 1_000 and self.rng.random() < 0.65:  # noqa: PLR2004
            amount = self.rng.randint(1, min(estimate, 100_000) // 1_000) * 1_000
        else:  # above what the card holds (as far as the workload knows)
            amount = estimate + self.rng.randint(1, 60) * 1_000
        op: dict[str, Any] = {"card": card.name, "terminal": _TERMINAL, "amount": amount}
        if self.rng.random() < 0.1:  # noqa: PLR2004
            op["pin"] = _pin(self.rng, card.pin)
        elif amount <= estimate:
            self.estimate[card.name] -= amount
        self._emit({"bayar": op})

    def _reversal(self) -> None:
        self._emit({"reversal": {"terminal": _TERMINAL}})

    def _disburse(self, period: str | None = None) -> None:
        if period is None:
            period = _P0 if (_P0 not in {p for _, p in self.disbursed} or self.rng.random() < 0.5) else _P1  # noqa: PLR2004
        bank = self.rng.choice(BANKS) if self.rng.random() < 0.3 else None  # noqa: PLR2004
        banks = [bank] if bank else list(BANKS)
        if self.down is not None and self.down.startswith("bank") and self.down.split()[1] in banks:
            self._cek()  # the bank is down: disbursement waits for it (not drawn here)
            return
        amount = BENEFIT_IDR if period == _P0 else self.rng.choice((100_000, 150_000, 200_000))
        op: dict[str, Any] = {"period": period, "amount": amount}
        if bank:
            op["bank"] = bank
        for code in banks:
            if (code, period) not in self.disbursed:
                self.disbursed.add((code, period))
                for card in self.cards:
                    if card.bank == code:
                        self.estimate[card.name] += amount
        self._emit({"disburse": op})

    def _offline(self) -> None:
        self._emit({"set_profile": {"terminal": _TERMINAL, "link": "offline"}})
        for _ in range(self.rng.randint(1, 2)):
            card = self._card()
            nik = "holder" if self.rng.random() < 0.9 else f"{self.rng.randrange(10**16):016d}"  # noqa: PLR2004
            self._emit({"offline_sale": {"terminal": _TERMINAL, "card": card.name, "amount": self.rng.randint(1, 30) * 1_000, "nik": nik}})
        self._emit({"set_profile": {"terminal": _TERMINAL, "link": "direct"}})
        self._emit({"upload": {"terminal": _TERMINAL}})

    def _upload(self) -> None:
        self._emit({"upload": {"terminal": _TERMINAL}})

    def _settle(self) -> None:
        self._emit({"settle": {"terminal": _TERMINAL}})

    def _transaction(self) -> None:
        self.rng.choices([self._bayar, self._cek, self._reversal], [6, 2, 2])[0]()

    def _fault(self) -> None:
        fault = self.rng.choice(self.faults)
        if fault == "kill":
            if self.down is not None:
                self._transaction()
                return
            target = self.rng.choice(["switch", f"bank {self.cards[0].bank}"])
            if self.rng.random() < 0.5:  # noqa: PLR2004
                self._emit({"kill": target})
            else:  # it dies a moment later, with the next purchase in flight
                self._emit({"kill": f"{target} after {self.rng.choice(('300ms', '1s'))}"})
                self._bayar()
            self.down, self.restart_in = target, self.rng.randint(0, 2)
            return
        steer: dict[str, Any] = {"terminal": _TERMINAL, "direction": self.rng.choice(DIRECTIONS)}
        if fault == "delay":
            steer["delay"] = self.rng.choice(DELAYS)
        self._emit({{"drop": "drop_next", "dup": "duplicate_next", "delay": "delay_next"}[fault]: steer})
        self._transaction()


def generate(seed: int, steps: int, faults: Sequence[str]) -> Workload:
    """The workload of `seed`: the same (seed, steps, faults) always gives the same one."""
    faults = tuple(f for f in FAULTS if f in faults)
    rng = random.Random(seed)
    terminal_bank = rng.choice(BANKS)  # an EDC serves its own bank's cards only
    cards = tuple(PlannedCard(f"s{seed}_{i}", terminal_bank, _pin(rng)) for i in range(rng.randint(2, 3)))
    link_seed = rng.randrange(2**32)
    ops = _Generator(rng, cards, faults).run(steps)
    return Workload(seed, faults, cards, terminal_bank, link_seed, ops)


# -- placing seeds on a network ---------------------------------------------------------------------


def period_of(slot: int, which: int) -> str:
    """The benefit periods of the seed in `slot`: two months of its own, later for later slots."""
    month = slot * 2 + which
    return f"{2030 + month // 12}-{month % 12 + 1:02d}"


def tid_of(bank: str, slot: int) -> str:
    return get_bank(bank).terminal_id(slot + 1)


@dataclass
class Placed:
    """A seed placed in a slot of a network: its steps, where they start, its check point."""

    workload: Workload
    slot: int
    only: tuple[int, ...] | None
    tid: str
    steps: list[dict] = field(default_factory=list)
    origins: list[int | None] = field(default_factory=list)  # per step: the workload's op index, None for inserted/seal
    first: int = 0  # index of its first step in the scenario

    @property
    def seed(self) -> int:
        return self.workload.seed

    @property
    def checkpoint(self) -> int:
        return self.first + len(self.steps) - 1


def _substitute(value: Any, tid: str, slot: int) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, tid, slot) for k, v in value.items()}
    if value == _TERMINAL:
        return tid
    if value in (_P0, _P1):
        return period_of(slot, 0 if value == _P0 else 1)
    return value


def place(workload: Workload, slot: int, only: Sequence[int] | None = None) -> Placed:
    """The seed's selected steps, made playable on their own (a service a step needs is
    restarted first, a delayed kill gets a step to land in), then the seal."""
    tid = tid_of(workload.terminal_bank, slot)
    placed = Placed(workload, slot, tuple(only) if only is not None else None, tid)
    chosen = list(range(len(workload.ops))) if only is None else sorted(set(only))
    down: set[str] = set()
    offline = False
    delayed_kill = False

    def add(op: dict, origin: int | None) -> None:
        placed.steps.append(_substitute(op, tid, slot))
        placed.origins.append(origin)

    first_card = workload.cards[0].name
    for index in chosen:
        op = workload.ops[index]
        action = next(iter(op))
        if delayed_kill and action not in _TRANSACTIONS:
            add({"signon": {"terminal": _TERMINAL}}, None)  # the delayed kill lands here
        delayed_kill = False
        if action == "disburse":
            needed = {f"bank {op['disburse']['bank']}"} if "bank" in op["disburse"] else {f"bank {code}" for code in BANKS}
            for target in sorted(needed & down):
                add({"restart": target}, None)
                down.discard(target)
        if action == "kill":
            down.add(op["kill"].split(" after ")[0])
            delayed_kill = " after " in op["kill"]
        elif action == "restart":
            down.discard(op["restart"])
        elif action == "set_profile":
            offline = op["set_profile"]["link"] == "offline"
        add(op, index)
    # The seal: deferred kills land (signon), every service runs again, the link is back and clean
    # (heal forgets the steers no frame used up), stored reversals and offline sales go out, the
    # switch's queue drains.
    add({"signon": {"terminal": _TERMINAL}}, None)
    for target in sorted(down):
        add({"restart": target}, None)
    if offline:
        add({"set_profile": {"terminal": _TERMINAL, "link": "direct"}}, None)
    add({"heal": {"terminal": _TERMINAL}}, None)
    add({"cek": {"card": first_card, "terminal": _TERMINAL}}, None)
    add({"upload": {"terminal": _TERMINAL}}, None)
    add({"cek": {"card": first_card, "terminal": _TERMINAL}}, None)
    add({"wait": {"until": {"saf": 0}, "within": "15s"}}, None)
    return placed


def seeds_per_network(steps: int) -> int:
    fit = STEPS_MAX // (steps + SEAL_STEPS_MAX + 8)
    return max(1, min(SEEDS_PER_NETWORK_MAX, SLOTS_MAX, PEOPLE_MAX // 3, fit))


def build_scenario(placed: list[Placed]) -> Scenario:
    """One scenario playing the placed seeds one after the other on one network."""
    people, terminals, steps = [], [], []
    for item in placed:
        item.first = len(steps)
        for card in item.workload.cards:
            people.append({"as": card.name, "bank": card.bank, "new": "normal", "pin": card.pin})
        terminals.append({"tid": item.tid, "link_seed": item.workload.link_seed})
        for number, (step, origin) in enumerate(zip(item.steps, item.origins, strict=True)):
            label = f"step {origin + 1}" if origin is not None else f"seal {number + 1}"
            steps.append({"name": f"seed {item.seed} {label} {next(iter(step))}", **step})
    first = placed[0].seed
    scenario = Scenario.model_validate(
        {
            "name": f"simulate-{first}" if len(placed) == 1 else f"simulate-{first}-{placed[-1].seed}",
            "problem": "Simulasi acak dengan gangguan jaringan dan layanan: uang tetap seimbang",
            "cites": ["DESIGN.md, Money and ledger rules"],
            "network": {"banks": list(BANKS), "seed": first % (SEED_MAX + 1), "start": START.isoformat(), "terminals": terminals},
            "people": people,
            "steps": steps,
        }
    )
    problems = reference_problems(scenario)
    if problems:  # the generator's own mistake: say so plainly
        raise RuntimeError(f"generated scenario is invalid: {problems[0].loc}: {problems[0].message}")
    return scenario


# -- the network and the simulator's own checks -----------------------------------------------------------


class SimulationNetwork(ScenarioNetwork):
    """A scenario network whose seeds' cards start at their seed's first benefit period, so that
    an earlier seed's disbursement does not credit a later seed's cards."""

    first_periods: dict[str, str] = {}

    def _add_card(self, runtime: Any, spec: Any, index: int) -> None:
        super()._add_card(runtime, spec, index)
        period = self.first_periods.get(spec.card_name)
        if period is None:
            return
        with runtime.db.begin() as conn:
            record = registry.card_record(conn, runtime.hsm, self.cards[spec.card_name].pan)
            assert record is not None
            conn.execute(update(Kpm).where(Kpm.id == record.kpm_id).values(first_period=period))


def network_factory(first_periods: dict[str, str]) -> Callable[[Scenario, Storage], ScenarioNetwork]:
    def make(scenario: Scenario, storage: Storage) -> ScenarioNetwork:
        network = SimulationNetwork.__new__(SimulationNetwork)
        network.first_periods = first_periods
        ScenarioNetwork.__init__(network, scenario, storage)
        network.switch.env["SEMBAKO_SWITCH_BANK_TIMEOUT_MS"] = str(BANK_TIMEOUT_MS)
        return network

    return make


Tamper = Callable[[Any, StepResult], Awaitable[None]]


@dataclass
class _Purchase:
    card: str
    amount_idr: int
    stan: str | None


class Checker:
    """After every step: follows the EDC's outcomes (approved purchases, voids, offline sales)
    and the disbursements; at each seed's seal, states its invariants as verdicts."""

    def __init__(self, placed: list[Placed], tamper: Tamper | None = None) -> None:
        self.placed = placed
        self.tamper = tamper
        self.at_checkpoint = {item.checkpoint: item for item in placed}
        self.card_bank = {c.name: c.bank for item in placed for c in item.workload.cards}
        self.card_first = {c.name: period_of(item.slot, 0) for item in placed for c in item.workload.cards}
        self.credit: dict[str, int] = defaultdict(int)
        self.paid: set[tuple[str, str]] = set()  # (bank, period) disbursed
        self.purchases: dict[str, _Purchase] = {}  # RRN -> approved online purchase
        self.voided: set[str] = set()
        self.offline: list[tuple[str, str | None, str, int]] = []  # (tid, stan, card, amount) approved offline
        self.last_purchase: dict[str, str | None] = {}  # tid -> RRN the EDC would void

    async def __call__(self, player: Any, record: StepResult) -> list[Verdict]:
        if self.tamper is not None:
            await self.tamper(player, record)
        step = player.scenario.steps[record.index]
        txn = record.txn
        if record.action == "disburse":
            self._disbursed(step.disburse)
        elif record.action == "bayar" and txn is not None and txn.approved and not txn.offline and txn.rrn:
            self.purchases[txn.rrn] = _Purchase(step.bayar.card, step.bayar.amount_idr, txn.stan)
        elif record.action == "reversal" and txn is not None and txn.rc is not None:
            target = self.last_purchase.get(step.reversal.terminal)
            purchase = self.purchases.get(target or "")
            held = player.terminals[step.reversal.terminal].held_reversals()
            if purchase is not None and (txn.rc == APPROVED or purchase.stan in held):
                self.voided.add(str(target))
        elif record.action == "offline_sale" and txn is not None and txn.approved and txn.offline:
            sale = step.offline_sale
            self.offline.append((sale.terminal, txn.stan, sale.card, sale.amount_idr))
        for tid, terminal in player.terminals.items():
            if terminal.core is not None:
                last = terminal.core.stored.last_purchase
                self.last_purchase[tid] = last.rrn if last is not None else None
        item = self.at_checkpoint.get(record.index)
        return await self._seal_checks(player, item) if item is not None else []

    def _disbursed(self, params: Any) -> None:
        for bank in [params.bank] if params.bank else list(BANKS):
            if (bank, params.period) in self.paid:
                continue
            self.paid.add((bank, params.period))
            for card, card_bank in self.card_bank.items():
                if card_bank == bank and self.card_first[card] <= params.period:
                    self.credit[card] += params.amount_idr

    async def _seal_checks(self, player: Any, item: Placed) -> list[Verdict]:
        terminal = player.terminals[item.tid]
        core = terminal.core
        held = terminal.held_reversals()
        pending = core.batches.pending_advice_count() if core is not None else 0
        verdicts = [
            Verdict(
                "terminal settled",
                not held and not pending,
                f"{item.tid}: {len(held)} reversal(s) and {pending} offline sale(s) not delivered with every service up and the link clean",
            )
        ]
        refused = {e.stan for e in core.batches.exceptions()} if core is not None else set()
        for card in item.workload.cards:
            bought = sum(p.amount_idr for rrn, p in self.purchases.items() if p.card == card.name and rrn not in self.voided)
            offline = sum(a for tid, stan, name, a in self.offline if name == card.name and tid == item.tid and stan not in refused)
            want = self.credit[card.name] - bought - offline
            got = await player._balance(player.cards[card.name])  # noqa: SLF001 - the runner's own read of a balance
            verdicts.append(
                Verdict(
                    f"balance {card.name}",
                    got == want,
                    f"the EDC's record says {want} (credited {self.credit[card.name]}, bought {bought}, offline {offline}), "
                    f"the bank holds {got}",
                )
            )
        return verdicts


# -- results --------------------------------------------------------------------------------------------


@dataclass
class SeedFailure:
    step: str  # e.g. "seed 7 step 5 bayar"
    invariant: str  # e.g. "audit: slip", "balance", "terminal settled", "error"
    detail: str
    replay: str  # the command that replays the seed alone
    reproduced_alone: bool | None = None
    shrunk_steps: list[int] | None = None  # 1-based
    shrunk_replay: str | None = None
    shrink_replays: int = 0


@dataclass
class SeedResult:
    seed: int
    passed: bool
    elapsed_s: float
    steps_played: int
    failure: SeedFailure | None = None


_AUDIT_RULES = (
    ("ledger check failed", "ledger"),
    ("below zero", "negative balance"),
    ("slip of step", "slip"),
    ("original(s)", "reversal"),
    ("gives back", "reversal"),
    ("the switch journal moved", "agreement"),
)


def invariant_of(record: StepResult) -> tuple[str, str]:
    """(invariant, detail) of a failed step: which rule broke, for comparing replays."""
    if record.error:
        kind = "timeout" if record.error.startswith("timed out") else record.error.split(":", 1)[0]
        return f"error: {kind}", record.error
    bad = next(v for v in record.verdicts if not v.ok)
    if bad.check == "audit":
        rule = next((name for needle, name in _AUDIT_RULES if needle in bad.detail), "other")
        return f"audit: {rule}", bad.detail
    if bad.check.startswith("balance "):
        return "balance", f"{bad.check}: {bad.detail}"
    return bad.check, bad.detail


def replay_command(seed: int, steps: int, faults: Sequence[str], only: Sequence[int] | None = None) -> str:
    command = f"sembako simulate --seed {seed} --steps {steps} --faults {faults_text(faults)}"
    if only is not None:
        command += " --only " + ",".join(str(i + 1) for i in sorted(only))
    return command


@dataclass(frozen=True)
class SimOptions:
    steps: int
    faults: tuple[str, ...]
    database_url: str | None = None
    shrink: bool = True
    shrink_replays_max: int = SHRINK_REPLAYS_MAX
    shrink_time_s: float = SHRINK_TIME_S
    tamper: Tamper | None = None  # tests only: a planted fault (see tests/scenarios/test_simulate.py)


def play(seeds: Sequence[int], options: SimOptions, only: Sequence[int] | None = None) -> tuple[list[Placed], ScenarioResult]:
    """Play `seeds` one after the other on one fresh network."""
    placed = [place(generate(seed, options.steps, options.faults), slot, only) for slot, seed in enumerate(seeds)]
    scenario = build_scenario(placed)
    first_periods = {c.name: period_of(item.slot, 0) for item in placed for c in item.workload.cards}
    run = RunOptions(
        database_url=options.database_url,
        network_factory=network_factory(first_periods),
        after_step=Checker(placed, options.tamper),
        terminal_timeout_ms=TERMINAL_TIMEOUT_MS,
        shown_cards=seed_cards(placed),
    )
    return placed, run_scenario(scenario, f"<simulate {seeds[0]}>", run)


def seed_cards(placed: list[Placed]) -> Callable[[int], tuple[str, ...]]:
    """Step index -> the names of the cards of the seed playing it."""
    names = [tuple(c.name for c in item.workload.cards) for item in placed]
    firsts = [item.first for item in placed]

    def of(index: int) -> tuple[str, ...]:
        return names[max(0, bisect.bisect_right(firsts, index) - 1)]

    return of


def _outcomes(placed: list[Placed], result: ScenarioResult, options: SimOptions) -> tuple[list[SeedResult], list[int]]:
    """Decided seeds (passed, or failed at a step of theirs) and the seeds that did not get to play."""
    decided: list[SeedResult] = []
    undecided: list[int] = []
    for item in placed:
        records = result.steps[item.first : item.checkpoint + 1]
        elapsed = sum(r.elapsed_s for r in records)
        failed = next((r for r in records if r.status not in (PASS, SKIP)), None)
        if failed is not None:
            invariant, detail = invariant_of(failed)
            failure = SeedFailure(failed.name, invariant, detail, replay_command(item.seed, options.steps, options.faults, item.only))
            decided.append(SeedResult(item.seed, False, elapsed, len(records), failure))
        elif result.error is not None and (not records or any(r.status == SKIP for r in records) or len(records) < len(item.steps)):
            if records:  # the network broke during this seed: it fails with the reason
                failure = SeedFailure(records[-1].name, "error: network", result.error, replay_command(item.seed, options.steps, options.faults, item.only))
                decided.append(SeedResult(item.seed, False, elapsed, len(records), failure))
            else:
                undecided.append(item.seed)
        elif len(records) < len(item.steps) or any(r.status == SKIP for r in records):
            undecided.append(item.seed)
        else:
            decided.append(SeedResult(item.seed, True, elapsed, len(records)))
    return decided, undecided


def run_alone(seed: int, options: SimOptions, only: Sequence[int] | None = None) -> tuple[SeedResult, Placed]:
    placed, result = play([seed], options, only)
    decided, _ = _outcomes(placed, result, options)
    if decided:
        return decided[0], placed[0]
    failure = SeedFailure("-", "error: network", result.error or "the seed did not play", replay_command(seed, options.steps, options.faults, only))
    return SeedResult(seed, False, result.elapsed_s, 0, failure), placed[0]


def _failing_op(placed: Placed, step_name: str) -> int | None:
    match = re.search(r" step ([0-9]+) ", step_name + " ")
    return int(match.group(1)) - 1 if match and " seal " not in step_name else None


def shrink(seed: int, failure: SeedFailure, options: SimOptions, only: Sequence[int] | None = None, alone: bool = False) -> SeedFailure:
    """Replay the seed alone (unless it already failed alone on a fresh network); if the same
    invariant fails, remove steps (delta debugging) while it still does, within a bound of
    replays and time."""
    started = time.monotonic()
    replays = 0
    all_ops = list(range(options.steps)) if only is None else sorted(only)

    def fails(subset: list[int]) -> bool:
        nonlocal replays
        if replays >= options.shrink_replays_max or time.monotonic() - started > options.shrink_time_s:
            return False
        replays += 1
        result, _ = run_alone(seed, options, subset)
        return not result.passed and result.failure is not None and result.failure.invariant == failure.invariant

    if not alone and not fails(all_ops):
        failure.reproduced_alone = False
        failure.shrink_replays = replays
        return failure
    failure.reproduced_alone = True
    current = all_ops
    cut = _failing_op(place(generate(seed, options.steps, options.faults), 0, only), failure.step)
    if cut is not None and cut < max(current) and fails([i for i in current if i <= cut]):
        current = [i for i in current if i <= cut]
    current = _ddmin(current, fails)
    failure.shrunk_steps = [i + 1 for i in current]
    failure.shrunk_replay = replay_command(seed, options.steps, options.faults, current)
    failure.shrink_replays = replays
    return failure


def _ddmin(items: list[int], fails: Callable[[list[int]], bool]) -> list[int]:
    """Zeller's delta debugging: a smaller list for which `fails` still holds (1-minimal if the
    budget lasts)."""
    parts = 2
    while len(items) >= 2:  # noqa: PLR2004
        size = math.ceil(len(items) / parts)
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        for chunk in chunks:
            if len(chunk) < len(items) and fails(chunk):
                items, parts = chunk, 2
                break
        else:
            for chunk in chunks:
                rest = [i for i in items if i not in chunk]
                if rest and fails(rest):
                    items, parts = rest, max(parts - 1, 2)
                    break
            else:
                if parts >= len(items):
                    break
                parts = min(len(items), parts * 2)
    return items


def run_seeds(seeds: Sequence[int], options: SimOptions, report: Callable[[SeedResult], None] | None = None) -> list[SeedResult]:
    """Play the seeds, many on one network; a seed the network could not reach plays on the next
    one; a failing seed is replayed alone and shrunk."""
    results: list[SeedResult] = []
    queue = list(seeds)
    per_network = seeds_per_network(options.steps)
    while queue:
        batch, queue = queue[:per_network], queue[per_network:]
        placed, result = play(batch, options)
        decided, undecided = _outcomes(placed, result, options)
        if not decided:  # nothing played at all: fail the first seed rather than loop
            failure = SeedFailure("-", "error: network", result.error or "the network did not play", replay_command(batch[0], options.steps, options.faults))
            decided, undecided = [SeedResult(batch[0], False, result.elapsed_s, 0, failure)], undecided[1:]
        queue = undecided + queue
        for item in decided:
            if item.failure is not None and options.shrink:
                item.failure = shrink(item.seed, item.failure, options, alone=len(batch) == 1)
            results.append(item)
            if report is not None:
                report(item)
    return sorted(results, key=lambda r: r.seed)


# -- many seeds, in parallel --------------------------------------------------------------------------------


@dataclass
class Summary:
    seeds_run: int
    passed: int
    failed: int
    elapsed_s: float
    seeds_per_s: float
    steps: int
    faults: list[str]
    failures: list[dict]

    def as_dict(self) -> dict:
        return asdict(self)


_worker_queue: Any = None


def _start_worker(queue: Any) -> None:
    global _worker_queue  # noqa: PLW0603 - one per worker process, set at its start
    _worker_queue = queue


def _in_worker(seeds: list[int], options: SimOptions) -> list[SeedResult]:
    return run_seeds(seeds, options, _worker_queue.put if _worker_queue is not None else None)


def simulate(
    first_seed: int, count: int, options: SimOptions, jobs: int = 1, report: Callable[[SeedResult], None] | None = None
) -> tuple[list[SeedResult], float]:
    """Seeds first_seed..first_seed+count-1, up to `jobs` networks at once; results by seed."""
    started = time.monotonic()
    seeds = list(range(first_seed, first_seed + count))
    per_network = min(seeds_per_network(options.steps), math.ceil(count / max(1, jobs)))
    chunks = [seeds[i : i + per_network] for i in range(0, len(seeds), per_network)]
    jobs = max(1, min(jobs, len(chunks)))
    if jobs == 1:
        return run_seeds(seeds, options, report), time.monotonic() - started
    context = multiprocessing.get_context("spawn")
    queue = context.Queue(maxsize=10_000)
    relay = threading.Thread(target=_relay, args=(queue, report), name="simulate-progress", daemon=True)
    relay.start()
    results: list[SeedResult] = []
    try:
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker, initargs=(queue,)) as pool:
            futures = [(chunk, pool.submit(_in_worker, chunk, options)) for chunk in chunks]
            for chunk, future in futures:
                try:
                    results += future.result()
                except Exception as exc:  # noqa: BLE001 - a dead worker fails its seeds, the others report
                    for seed in chunk:
                        failure = SeedFailure("-", "error: worker", f"{type(exc).__name__}: {exc}", replay_command(seed, options.steps, options.faults))
                        results.append(SeedResult(seed, False, 0.0, 0, failure))
    finally:
        queue.put(None)
        relay.join(timeout=5)
    return sorted(results, key=lambda r: r.seed), time.monotonic() - started


def _relay(queue: Any, report: Callable[[SeedResult], None] | None) -> None:
    while (item := queue.get()) is not None:
        if report is not None:
            report(item)


def summarise(results: list[SeedResult], elapsed_s: float, options: SimOptions) -> Summary:
    failed = [r for r in results if not r.passed]
    failures = [{"seed": r.seed, **asdict(r.failure)} for r in failed if r.failure is not None]
    return Summary(
        len(results), len(results) - len(failed), len(failed), round(elapsed_s, 2),
        round(len(results) / elapsed_s, 3) if elapsed_s > 0 else 0.0, options.steps, list(options.faults), failures,
    )  # fmt: skip


def run_only(seed: int, only: Sequence[int], options: SimOptions) -> SeedResult:
    """Replay a subset of one seed's steps alone on a fresh network (no shrinking)."""
    result, _ = run_alone(seed, options, only)
    return result


def seed_line(result: SeedResult) -> str:
    if result.passed:
        return f"seed {result.seed}  PASS  {result.steps_played} steps  {result.elapsed_s:.1f}s"
    failure = result.failure
    assert failure is not None
    return f"seed {result.seed}  FAIL  {failure.step}: {failure.invariant}: {failure.detail}"


def failure_lines(result: SeedResult) -> list[str]:
    failure = result.failure
    assert failure is not None
    lines = [
        f"FAILED seed {result.seed} at {failure.step}",
        f"  invariant: {failure.invariant}",
        f"  {failure.detail}",
        f"  replay: {failure.replay}",
    ]
    if failure.reproduced_alone is False:
        lines.append(f"  (alone on a fresh network the same invariant held: {failure.shrink_replays} replay(s))")
    if failure.shrunk_replay:
        lines.append(f"  shortest replay ({len(failure.shrunk_steps or [])} step(s), {failure.shrink_replays} replay(s)): {failure.shrunk_replay}")
    return lines

