"""Cross-reference checks of a scenario that validated field by field.

A name must be defined before it is used: terminals in `network.terminals`, banks in
`network.banks`, cards in `people` or by an earlier `replace` step, step names by an earlier (or
the same) step. Each problem carries the location of the offending value as the keys of the
file spell it, so the loader can point at its line.
"""

from __future__ import annotations

from dataclasses import dataclass

from bank_penyalur.reports import region_columns
from shared.banks import demo_terminal

from .values import shown
from .model import (
    JOURNALLED_ACTIONS,
    LINE_COLUMNS,
    PROCESS_ACTIONS,
    SUMMARY_COLUMNS,
    TRANSACTION_ACTIONS,
    TRANSACTION_CHECKS,
    CardSpec,
    Condition,
    Expect,
    ReconciliationCheck,
    Scenario,
    ServiceTarget,
    Step,
)

Loc = tuple[str | int, ...]

# Keys of each action that name a card or a terminal.
_CARD_KEYS = ("card",)
_TERMINAL_KEYS = ("terminal",)


@dataclass(frozen=True, slots=True)
class Problem:
    loc: Loc
    message: str


class _Names:
    """What is defined so far while walking the scenario in order."""

    def __init__(self, scenario: Scenario) -> None:
        self.banks = set(scenario.network.banks)
        self.terminals = {terminal.tid for terminal in scenario.network.terminals}
        self.cards: set[str] = set()
        self.steps: set[str] = set()
        # Where every card and step name is defined, to tell "later" from "nowhere".
        self.card_defined_at: dict[str, str] = {}
        for index, card in enumerate(scenario.people):
            self.card_defined_at.setdefault(card.card_name, f"people[{index}]")
            if card.replacement_as:
                self.card_defined_at.setdefault(card.replacement_as, f"people[{index}]")
        for index, step in enumerate(scenario.steps):
            if step.replace is not None:
                self.card_defined_at.setdefault(step.replace.new_card_name, f"steps[{index}]")
        self.step_defined_at: dict[str, int] = {}
        self.step_action: dict[str, str] = {}
        for index, step in enumerate(scenario.steps):
            if step.name:
                self.step_defined_at.setdefault(step.name, index)
                self.step_action.setdefault(step.name, step.action)


def reference_problems(scenario: Scenario) -> list[Problem]:
    """Every dangling or out-of-order reference of `scenario`, in file order."""
    names = _Names(scenario)
    problems: list[Problem] = []
    problems += _network_problems(scenario)
    problems += _people_problems(scenario, names)
    for index, step in enumerate(scenario.steps):
        problems += _step_problems(step, index, names)
    last = scenario.steps[-1]
    if isinstance(last.params, ServiceTarget) and last.params.after is not None:
        loc = ("steps", len(scenario.steps) - 1, last.action)
        problems.append(Problem(loc, "a delayed service action lands during the next step: add the step it should land in"))
    return problems


def _network_problems(scenario: Scenario) -> list[Problem]:
    problems = []
    network = scenario.network
    seen_banks: set[str] = set()
    for index, bank in enumerate(network.banks):
        if bank in seen_banks:
            problems.append(Problem(("network", "banks", index), f"bank {bank} is listed twice"))
        seen_banks.add(bank)
    seen_tids: set[str] = set()
    for index, terminal in enumerate(network.terminals):
        loc: Loc = ("network", "terminals", index, "tid")
        found = demo_terminal(terminal.tid)
        if terminal.tid in seen_tids:
            problems.append(Problem(loc, f"terminal {terminal.tid} is listed twice"))
        elif found is None:
            problems.append(Problem(loc, f"{terminal.tid} is not a demo terminal (bank prefix and serial 00001..00048)"))
        elif found[0].code not in seen_banks:
            problems.append(
                Problem(loc, f"terminal {terminal.tid} belongs to bank {found[0].code}, which is not in network.banks")
            )
        seen_tids.add(terminal.tid)
    return problems


def _people_problems(scenario: Scenario, names: _Names) -> list[Problem]:
    problems = []
    seen_demo: dict[tuple[str, str], str] = {}
    for index, card in enumerate(scenario.people):
        loc: Loc = ("people", index)
        problems += _define_card(names, card.card_name, (*loc, "as"))
        if card.bank not in names.banks:
            problems.append(Problem((*loc, "bank"), f"bank {card.bank} is not in network.banks"))
        if card.demo is not None:
            problems += _demo_card_problems(card, loc, seen_demo)
        else:
            problems += _new_card_problems(card, loc, names, scenario)
        names.cards.add(card.card_name)
        if card.replacement_as:
            problems += _define_card(names, card.replacement_as, (*loc, "replacement_as"))
            names.cards.add(card.replacement_as)
    return problems


def _demo_card_problems(card: CardSpec, loc: Loc, seen_demo: dict[tuple[str, str], str]) -> list[Problem]:
    problems = []
    for field_name in ("kpm_name", "pin", "nik", "same_kpm_as", "replacement_as"):
        if getattr(card, field_name) is not None:
            key = CardSpec.model_fields[field_name].alias or field_name
            problems.append(Problem((*loc, key), f"a demo card comes with its own holder and PIN: leave {shown(key)} out"))
    key = (card.bank, str(card.demo))
    if key in seen_demo:
        problems.append(Problem((*loc, "demo"), f"demo card {card.bank} {card.demo} is already named {shown(seen_demo[key])}"))
    seen_demo.setdefault(key, card.card_name)
    return problems


def _new_card_problems(card: CardSpec, loc: Loc, names: _Names, scenario: Scenario) -> list[Problem]:
    problems = []
    if card.replacement_as is not None and card.new != "replaced":
        problems.append(Problem((*loc, "replacement_as"), "replacement_as is only for a card in situation 'replaced'"))
    if card.same_kpm_as is not None:
        other = next((c for c in scenario.people if c.card_name == card.same_kpm_as), None)
        if card.same_kpm_as not in names.cards:
            problems.append(_unknown_card(names, card.same_kpm_as, (*loc, "same_kpm_as")))
        elif other is not None and other.bank != card.bank:
            problems.append(
                Problem((*loc, "same_kpm_as"), f"{shown(card.same_kpm_as)} is a card of bank {other.bank}: a KPM banks with one bank")
            )
    return problems


def _define_card(names: _Names, name: str, loc: Loc) -> list[Problem]:
    if name in names.cards:
        return [Problem(loc, f"card name {shown(name)} is already used")]
    return []


def _unknown_card(names: _Names, name: str, loc: Loc) -> Problem:
    where = names.card_defined_at.get(name)
    if where is not None:
        return Problem(loc, f"card {shown(name)} is defined later (at {where}): a step can only use cards defined before it")
    known = ", ".join(sorted(names.cards)) or "none"
    return Problem(loc, f"card {shown(name)} is not defined (cards defined so far: {known})")


def _step_problems(step: Step, index: int, names: _Names) -> list[Problem]:
    loc: Loc = ("steps", index)
    problems = []
    if step.name is not None:
        if step.name in names.steps:
            problems.append(Problem((*loc, "name"), f"step name {shown(step.name)} is already used"))
        names.steps.add(step.name)
    problems += _action_problems(step, (*loc, step.action), names)
    if step.replace is not None:
        problems += _define_card(names, step.replace.new_card_name, (*loc, "replace", "as"))
        names.cards.add(step.replace.new_card_name)
    if step.wait is not None:
        problems += _condition_problems(step.wait.until, (*loc, "wait", "until"), index, names, own_transaction=False)
    if step.expect is not None:
        problems += _expect_problems(step, (*loc, "expect"), index, names)
    return problems


def _action_problems(step: Step, loc: Loc, names: _Names) -> list[Problem]:
    params = step.params
    problems = []
    if isinstance(params, ServiceTarget):
        if params.kind == "terminal" and step.action in PROCESS_ACTIONS:
            problems.append(Problem(loc, f"{step.action} is for a bank or the switch; a terminal is stopped and restarted"))
        if params.kind == "terminal" and params.after is not None:
            problems.append(Problem(loc, "a terminal is stopped, killed or restarted between steps: leave the delay out"))
        if params.kind == "bank" and params.id not in names.banks:
            problems.append(Problem(loc, f"bank {params.id} is not in network.banks"))
        if params.kind == "terminal" and params.id not in names.terminals:
            problems.append(Problem(loc, f"terminal {params.id} is not in network.terminals"))
        return problems
    for key in _CARD_KEYS:
        card = getattr(params, key, None)
        if isinstance(card, str) and card not in names.cards:
            problems.append(_unknown_card(names, card, (*loc, key)))
    for key in _TERMINAL_KEYS:
        tid = getattr(params, key, None)
        if isinstance(tid, str) and tid not in names.terminals:
            problems.append(Problem((*loc, key), f"terminal {tid} is not in network.terminals"))
    bank = getattr(params, "bank", None) if step.disburse is not None else None
    if bank is not None and bank not in names.banks:
        problems.append(Problem((*loc, "bank"), f"bank {bank} is not in network.banks"))
    return problems


def _expect_problems(step: Step, loc: Loc, index: int, names: _Names) -> list[Problem]:
    expect = step.expect
    assert expect is not None  # noqa: S101 - checked by the caller
    problems = []
    makes_transaction = step.action in TRANSACTION_ACTIONS
    journalled = step.action in JOURNALLED_ACTIONS
    if not makes_transaction:
        for key in TRANSACTION_CHECKS:
            if getattr(expect, key) is not None:
                problems.append(
                    Problem((*loc, key), f"{shown(key)} checks a terminal transaction and a {shown(step.action)} step makes none")
                )
    problems += _condition_problems(expect, loc, index, names, own_transaction=journalled)
    return problems


def _condition_problems(condition: Condition | Expect, loc: Loc, index: int, names: _Names, own_transaction: bool) -> list[Problem]:
    problems = []
    for card in condition.balance or {}:
        if card not in names.cards:
            problems.append(_unknown_card(names, card, (*loc, "balance", card)))
    if condition.journal is not None:
        journal_loc = (*loc, "journal")
        if condition.journal.step is not None:
            problems += _step_reference(condition.journal.step, (*journal_loc, "step"), index, names)
        elif not own_transaction:
            problems.append(Problem(journal_loc, f"name the step whose transaction is checked (step: NAME): {_JOURNALLED_TEXT}"))
    for tid in condition.stock or {}:
        if tid not in names.terminals:
            problems.append(Problem((*loc, "stock", tid), f"terminal {tid} is not in network.terminals"))
    for row_index, check in enumerate(condition.bank_report or ()):
        row_loc = (*loc, "bank_report", row_index)
        if check.bank not in names.banks:
            problems.append(Problem((*row_loc, "bank"), f"bank {check.bank} is not in network.banks"))
        columns = region_columns(check.level)
        if isinstance(check.row, dict) and tuple(check.row) != columns:
            problems.append(
                Problem((*row_loc, "row"), f"a {check.level} row is keyed by {', '.join(columns)} (in this order)")
            )
    for row_index, check in enumerate(condition.reconciliation or ()):
        problems += _reconciliation_problems(check, (*loc, "reconciliation", row_index), index, names)
    return problems


def _reconciliation_problems(check: ReconciliationCheck, loc: Loc, index: int, names: _Names) -> list[Problem]:
    problems = []
    if check.tid not in names.terminals:
        problems.append(Problem((*loc, "tid"), f"terminal {check.tid} is not in network.terminals"))
    if check.step is not None:
        problems += _step_reference(check.step, (*loc, "step"), index, names)
    elif check.kind is not None:
        problems.append(Problem((*loc, "kind"), "kind picks a line of a step's transaction: give step too"))
    columns, what = (LINE_COLUMNS, "a line") if check.step is not None else (SUMMARY_COLUMNS, "the summary")
    for column in check.values:
        if column not in columns:
            problems.append(Problem((*loc, "values", column), f"{shown(column)} is not a column of {what}: {', '.join(columns)}"))
    return problems


_JOURNALLED_TEXT = f"a step that makes one transaction of its own ({', '.join(JOURNALLED_ACTIONS)})"


def _step_reference(name: str, loc: Loc, index: int, names: _Names) -> list[Problem]:
    defined_at = names.step_defined_at.get(name)
    if defined_at is None:
        return [Problem(loc, f"no step is named {shown(name)}")]
    if defined_at > index:
        return [Problem(loc, f"step {shown(name)} comes later (steps[{defined_at}]): a check can only name this or an earlier step")]
    action = names.step_action[name]
    if action not in JOURNALLED_ACTIONS:
        return [Problem(loc, f"step {shown(name)} is a {shown(action)} step, which makes no transaction to check: name {_JOURNALLED_TEXT}")]
    return []
