"""Alerts drawn from the field problems of Program Sembako, as pure functions: facts in, alerts out.

Nothing here reads a clock, a database or a bank: the ops API (`switch.ops.routes.alerts`) gathers
the facts (`AlertFacts`) and `detect` turns them into `Alert`s. Each kind has its thresholds in
`AlertThresholds` (the switch's settings, `SEMBAKO_SWITCH_ALERTS__<NAME>`).

- `card_sharing`: one terminal serves at least `card_sharing_cards_min` different cards within
  `card_sharing_window_minutes` (balance inquiries and purchases). A KPM needs minutes at the
  counter (card, PIN, choosing the goods, PIN again): many cards in a few minutes means the
  e-Warong holds the KPM's cards and swipes them itself.
- `disbursement_burst`: at least `disbursement_burst_purchases_min` approved purchases with one
  bank's cards at one e-Warong from the start of that bank's disbursement run until
  `disbursement_burst_window_minutes` after it finished: the benefit taken as soon as it lands,
  before the KPM could have come (held cards, or goods "bought" before they exist). The runs come
  from the banks (`GET /v1/disbursements`): the switch itself never sees a disbursement.
- `double_cards`: a family (one KK, or one KPM) holding more than `family_active_cards_max`
  active cards at its bank, as the bank reports it (`GET /v1/reports/double-cards`): the switch
  cannot tell, since it sees only card numbers (tunggalisasi: one card per family).
- `wrong_pins`: wrong PINs (RC 55, or 75 once the tries are used up) on at least
  `wrong_pin_cards_min` different cards at one terminal within `wrong_pin_window_minutes`: one KPM
  mistyping is normal, and so are two or three on a busy morning (KPM are often elderly: about one
  in twelve mistypes); PINs tried on many cards is someone guessing with cards not theirs.
- `reversal_storm`: at least `reversal_storm_terminal_min` reversals at one terminal, or
  `reversal_storm_bank_min` towards one issuing bank, within `reversal_storm_window_minutes`
  (repeats of one reversal, 0401, count once): a failing link or bank, or a terminal voiding sales.
- `silent_terminal`: a terminal that had traffic and has none for `silent_terminal_days` (its last
  transaction within the last `silent_terminal_lookback_days`, or any time before when the facts
  say so): broken, out of signal, or taken away. A terminal that never had traffic is not one.
- `above_het`: the e-Warong's POS refused to sell goods above their HET at least
  `het_attempts_min` times within `het_window_minutes` (the POS reports each attempt).

Offline advices are left out of the time-based rules: they reach the switch in batches, long
after the sale, so their arrival says nothing about the counter. Severity is "warning", and
"critical" once the count reaches `critical_factor` times the threshold. Card numbers leave only
masked.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field
from pydantic.dataclasses import dataclass as settings_dataclass

from shared.cards import mask_pan
from shared.money import format_idr
from shared.rc import APPROVED, PIN_TRIES_EXCEEDED, WRONG_PIN

CARD_SHARING = "card_sharing"
DISBURSEMENT_BURST = "disbursement_burst"
DOUBLE_CARDS = "double_cards"
WRONG_PINS = "wrong_pins"
REVERSAL_STORM = "reversal_storm"
SILENT_TERMINAL = "silent_terminal"
ABOVE_HET = "above_het"
KINDS = (CARD_SHARING, DISBURSEMENT_BURST, DOUBLE_CARDS, WRONG_PINS, REVERSAL_STORM, SILENT_TERMINAL, ABOVE_HET)

WARNING = "warning"
CRITICAL = "critical"
CARDS_SHOWN_MAX = 10
PRODUCTS_SHOWN_MAX = 3
WRONG_PIN_RCS = (WRONG_PIN, PIN_TRIES_EXCEEDED)
# Journal kinds (switch.tables), repeated here to keep this module free of the storage layer.
INQUIRY, PURCHASE, ADVICE, REVERSAL = "inquiry", "purchase", "advice", "reversal"
AT_THE_COUNTER = (INQUIRY, PURCHASE)

SubjectType = Literal["terminal", "merchant", "bank", "family"]
MINUTES_MAX = 7 * 24 * 60
COUNT_MAX = 100_000


@settings_dataclass(frozen=True)
class AlertThresholds:
    """When each alert fires (see the module docstring)."""

    card_sharing_cards_min: int = Field(default=8, ge=2, le=COUNT_MAX)
    card_sharing_window_minutes: int = Field(default=10, ge=1, le=MINUTES_MAX)
    disbursement_burst_purchases_min: int = Field(default=30, ge=2, le=COUNT_MAX)
    disbursement_burst_window_minutes: int = Field(default=60, ge=1, le=MINUTES_MAX)
    family_active_cards_max: int = Field(default=1, ge=1, le=100)
    wrong_pin_cards_min: int = Field(default=4, ge=2, le=COUNT_MAX)
    wrong_pin_window_minutes: int = Field(default=20, ge=1, le=MINUTES_MAX)
    reversal_storm_terminal_min: int = Field(default=5, ge=2, le=COUNT_MAX)
    reversal_storm_bank_min: int = Field(default=20, ge=2, le=COUNT_MAX)
    reversal_storm_window_minutes: int = Field(default=15, ge=1, le=MINUTES_MAX)
    silent_terminal_days: int = Field(default=3, ge=1, le=365)
    silent_terminal_lookback_days: int = Field(default=35, ge=2, le=366)
    het_attempts_min: int = Field(default=1, ge=1, le=COUNT_MAX)
    het_window_minutes: int = Field(default=24 * 60, ge=1, le=MINUTES_MAX)
    critical_factor: int = Field(default=2, ge=2, le=100)

    @property
    def journal_lookback(self) -> timedelta:
        """How far before the first moment of interest the rules on journal rows need them
        (a disbursement burst aside: it reaches back to its run)."""
        minutes = max(self.card_sharing_window_minutes, self.wrong_pin_window_minutes, self.reversal_storm_window_minutes)
        return timedelta(minutes=minutes)


# -- the facts -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JournalRow:
    """A journalled request, as the rules need it (times naive WIB)."""

    at: datetime
    rrn: str
    tid: str
    mid: str
    kind: str
    rc: str
    bank: str | None  # the issuer it was routed to
    card: str  # the card's identity: its keyed hash, else its masked number
    card_masked: str
    original_rrn: str | None = None  # a reversal's purchase
    acquirer: str | None = None  # the terminal's bank


@dataclass(frozen=True, slots=True)
class Disbursement:
    """A bank's disbursement run of a period."""

    bank: str
    period: str
    started_at: datetime
    finished_at: datetime
    credited: int


@dataclass(frozen=True, slots=True)
class DoubleCards:
    """A family holding several active cards at its bank."""

    bank: str
    family: str  # masked KK number, or "KPM <id>"
    kpm_ids: tuple[int, ...]
    cards_masked: tuple[str, ...]
    double_since: datetime  # when the latest of its active cards became active


@dataclass(frozen=True, slots=True)
class TerminalActivity:
    tid: str
    mid: str
    acquirer: str | None
    last_at: datetime  # its latest journalled request


@dataclass(frozen=True, slots=True)
class HetAttempt:
    """A sale above HET the POS refused, as it reported it."""

    at: datetime
    tid: str
    mid: str
    sku: str
    product_name: str
    unit: str
    price_idr: int
    het_idr: int
    qty: int


@dataclass(frozen=True, slots=True)
class AlertFacts:
    now: datetime
    rows: Sequence[JournalRow] = ()  # oldest first
    disbursements: Sequence[Disbursement] = ()
    double_cards: Sequence[DoubleCards] = ()
    terminals: Sequence[TerminalActivity] = ()  # terminals with traffic, each with its latest
    het_attempts: Sequence[HetAttempt] = ()


# -- what comes out --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subject:
    type: SubjectType
    id: str
    bank: str | None = None  # the terminal's or e-Warong's acquirer, the family's bank, the issuer
    merchant_id: str | None = None


@dataclass(frozen=True, slots=True)
class Alert:
    kind: str
    severity: str
    subject: Subject
    count: int  # what was counted (cards, purchases, reversals, attempts, days)
    threshold: int  # the count from which the alert fires
    window_minutes: int | None  # the span the count must fit in (None: no window)
    first_seen: datetime
    last_seen: datetime
    message: str
    cards_masked: tuple[str, ...] = ()
    details: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.kind}/{self.subject.type}/{self.subject.id}/{self.first_seen:%Y%m%dT%H%M%S}"


def severity(count: int, threshold: int, factor: int) -> str:
    return CRITICAL if count >= threshold * factor else WARNING


def wib(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} WIB"


# -- windows ---------------------------------------------------------------------------------------

Event = tuple[datetime, str]  # (when, what is counted: a card, a reversal, an attempt)


def bursts(events: Sequence[Event], window: timedelta, distinct_min: int) -> list[tuple[int, int]]:
    """Index ranges [first, last] of `events` (oldest first) in which some span of at most
    `window` holds at least `distinct_min` different keys; overlapping spans are merged."""
    runs: list[tuple[int, int]] = []
    inside: Counter[str] = Counter()
    lo = 0
    for hi, (at, key) in enumerate(events):
        inside[key] += 1
        while at - events[lo][0] > window:
            gone = events[lo][1]
            inside[gone] -= 1
            if not inside[gone]:
                del inside[gone]
            lo += 1
        if len(inside) >= distinct_min:
            if runs and lo <= runs[-1][1]:
                runs[-1] = (runs[-1][0], hi)
            else:
                runs.append((lo, hi))
    return runs


def _grouped(rows: Iterable[JournalRow], key: Callable[[JournalRow], str | None]) -> dict[str, list[JournalRow]]:
    groups: dict[str, list[JournalRow]] = defaultdict(list)
    for row in rows:
        value = key(row)
        if value is not None:
            groups[value].append(row)
    for group in groups.values():
        group.sort(key=lambda r: r.at)
    return groups


def _masked_cards(rows: Iterable[JournalRow]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for row in rows:
        seen.setdefault(row.card, mask_pan(row.card_masked))
    return tuple(seen.values())[:CARDS_SHOWN_MAX]


def _terminal(row: JournalRow) -> Subject:
    return Subject("terminal", row.tid, bank=row.acquirer, merchant_id=row.mid)


# -- the rules -------------------------------------------------------------------------------------


def card_sharing(rows: Sequence[JournalRow], t: AlertThresholds) -> list[Alert]:
    window = timedelta(minutes=t.card_sharing_window_minutes)
    alerts = []
    for tid, group in _grouped((r for r in rows if r.kind in AT_THE_COUNTER), lambda r: r.tid).items():
        for first, last in bursts([(r.at, r.card) for r in group], window, t.card_sharing_cards_min):
            run = group[first : last + 1]
            cards = len({r.card for r in run})
            alerts.append(Alert(
                CARD_SHARING, severity(cards, t.card_sharing_cards_min, t.critical_factor), _terminal(run[0]), cards,
                t.card_sharing_cards_min, t.card_sharing_window_minutes, run[0].at, run[-1].at,
                f"Terminal {tid} (e-Warong {run[0].mid}) served {cards} different cards from {wib(run[0].at)} to "
                f"{run[-1].at:%H:%M}, at least {t.card_sharing_cards_min} within {t.card_sharing_window_minutes} minutes: "
                "the e-Warong may be holding KPM cards.",
                _masked_cards(run),
            ))  # fmt: skip
    return alerts


def disbursement_burst(rows: Sequence[JournalRow], disbursements: Sequence[Disbursement], t: AlertThresholds) -> list[Alert]:
    purchases = [r for r in rows if r.kind == PURCHASE and r.rc == APPROVED and r.bank is not None]
    window = timedelta(minutes=t.disbursement_burst_window_minutes)
    alerts = []
    for run in disbursements:
        end = run.finished_at + window
        taken = [r for r in purchases if r.bank == run.bank and run.started_at <= r.at <= end]
        for mid, group in _grouped(taken, lambda r: r.mid).items():
            if len(group) < t.disbursement_burst_purchases_min:
                continue
            alerts.append(Alert(
                DISBURSEMENT_BURST, severity(len(group), t.disbursement_burst_purchases_min, t.critical_factor),
                Subject("merchant", mid, bank=run.bank), len(group), t.disbursement_burst_purchases_min,
                t.disbursement_burst_window_minutes, group[0].at, group[-1].at,
                f"e-Warong {mid} took {len(group)} purchases with {run.bank.upper()} cards within "
                f"{t.disbursement_burst_window_minutes} minutes of {run.bank.upper()}'s disbursement for {run.period} "
                f"(finished {wib(run.finished_at)}): the benefit was spent before KPM could have come to the shop.",
                _masked_cards(group), {"period": run.period, "disbursed_at": run.finished_at.isoformat(), "terminals": sorted({r.tid for r in group})},
            ))  # fmt: skip
    return alerts


def double_cards(families: Sequence[DoubleCards], now: datetime, t: AlertThresholds) -> list[Alert]:
    alerts = []
    for family in families:
        count = len(family.cards_masked)
        if count <= t.family_active_cards_max:
            continue
        shown = tuple(mask_pan(card) for card in family.cards_masked[:CARDS_SHOWN_MAX])
        alerts.append(Alert(
            DOUBLE_CARDS, severity(count, t.family_active_cards_max + 1, t.critical_factor),
            Subject("family", family.family, bank=family.bank), count, t.family_active_cards_max + 1, None,
            family.double_since, now,
            f"A {family.bank.upper()} family ({family.family}) holds {count} active cards ({', '.join(shown)}) "
            f"since {wib(family.double_since)}: one family, one card; the extra cards draw the benefit twice.",
            shown, {"kpm_ids": list(family.kpm_ids)},
        ))  # fmt: skip
    return alerts


def wrong_pins(rows: Sequence[JournalRow], t: AlertThresholds) -> list[Alert]:
    window = timedelta(minutes=t.wrong_pin_window_minutes)
    alerts = []
    for tid, group in _grouped((r for r in rows if r.rc in WRONG_PIN_RCS), lambda r: r.tid).items():
        for first, last in bursts([(r.at, r.card) for r in group], window, t.wrong_pin_cards_min):
            run = group[first : last + 1]
            cards = len({r.card for r in run})
            alerts.append(Alert(
                WRONG_PINS, severity(cards, t.wrong_pin_cards_min, t.critical_factor), _terminal(run[0]), cards,
                t.wrong_pin_cards_min, t.wrong_pin_window_minutes, run[0].at, run[-1].at,
                f"Terminal {tid} (e-Warong {run[0].mid}) saw wrong PINs (RC 55/75) on {cards} different cards "
                f"from {wib(run[0].at)} to {run[-1].at:%H:%M} ({len(run)} tries): PINs tried on cards of other KPM.",
                _masked_cards(run), {"tries": len(run)},
            ))  # fmt: skip
    return alerts


def reversal_storms(rows: Sequence[JournalRow], t: AlertThresholds) -> list[Alert]:
    reversals = [r for r in rows if r.kind == REVERSAL]
    window = timedelta(minutes=t.reversal_storm_window_minutes)
    alerts = []
    for subject_type, key, threshold in (("terminal", lambda r: r.tid, t.reversal_storm_terminal_min),
                                         ("bank", lambda r: r.bank, t.reversal_storm_bank_min)):  # fmt: skip
        for subject_id, group in _grouped(reversals, key).items():
            events = [(r.at, r.original_rrn or r.rrn) for r in group]
            for first, last in bursts(events, window, threshold):
                alerts.append(_storm(subject_type, subject_id, group[first : last + 1], threshold, t))
    return alerts


def _storm(subject_type: str, subject_id: str, run: list[JournalRow], threshold: int, t: AlertThresholds) -> Alert:
    count = len({r.original_rrn or r.rrn for r in run})
    if subject_type == "terminal":
        subject, who = _terminal(run[0]), f"Terminal {subject_id} (e-Warong {run[0].mid}) sent"
    else:
        subject, who = Subject("bank", subject_id, bank=subject_id), f"Bank {subject_id.upper()} was sent"
    approved = sum(r.rc == APPROVED for r in run)
    return Alert(
        REVERSAL_STORM, severity(count, threshold, t.critical_factor), subject, count, threshold,
        t.reversal_storm_window_minutes, run[0].at, run[-1].at,
        f"{who} {count} reversals from {wib(run[0].at)} to {run[-1].at:%H:%M}, at least {threshold} within "
        f"{t.reversal_storm_window_minutes} minutes: a failing link or bank, or sales voided at the counter.",
        _masked_cards(run), {"messages": len(run), "approved": approved},
    )  # fmt: skip


def silent_terminals(terminals: Sequence[TerminalActivity], now: datetime, t: AlertThresholds) -> list[Alert]:
    alerts = []
    for terminal in terminals:
        days = (now - terminal.last_at).days
        if days < t.silent_terminal_days:
            continue
        alerts.append(Alert(
            SILENT_TERMINAL, severity(days, t.silent_terminal_days, t.critical_factor),
            Subject("terminal", terminal.tid, bank=terminal.acquirer, merchant_id=terminal.mid), days,
            t.silent_terminal_days, None, terminal.last_at, now,
            f"Terminal {terminal.tid} (e-Warong {terminal.mid}) has been silent for {days} days: its last "
            f"transaction was at {wib(terminal.last_at)}. Broken, out of signal, or taken away from the e-Warong?",
        ))  # fmt: skip
    return alerts


def above_het(attempts: Sequence[HetAttempt], t: AlertThresholds) -> list[Alert]:
    window = timedelta(minutes=t.het_window_minutes)
    by_mid: dict[str, list[HetAttempt]] = defaultdict(list)
    for attempt in attempts:
        by_mid[attempt.mid].append(attempt)
    alerts = []
    for mid, group in by_mid.items():
        group.sort(key=lambda a: a.at)
        events = [(a.at, str(n)) for n, a in enumerate(group)]
        for first, last in bursts(events, window, t.het_attempts_min):
            run = group[first : last + 1]
            alerts.append(_het_alert(mid, run, t))
    return alerts


def _het_alert(mid: str, run: list[HetAttempt], t: AlertThresholds) -> Alert:
    products: dict[str, HetAttempt] = {}
    for attempt in run:
        products.setdefault(attempt.sku, attempt)
    shown = [
        f"{a.product_name} at {format_idr(a.price_idr)}/{a.unit} (HET {format_idr(a.het_idr)})"
        for a in list(products.values())[:PRODUCTS_SHOWN_MAX]
    ]
    more = f" and {len(products) - PRODUCTS_SHOWN_MAX} more goods" if len(products) > PRODUCTS_SHOWN_MAX else ""
    return Alert(
        ABOVE_HET, severity(len(run), t.het_attempts_min, t.critical_factor), Subject("merchant", mid, merchant_id=mid),
        len(run), t.het_attempts_min, t.het_window_minutes, run[0].at, run[-1].at,
        f"e-Warong {mid} tried {len(run)} times to sell goods above their HET between {wib(run[0].at)} and "
        f"{wib(run[-1].at)}: {'; '.join(shown)}{more}.",
        (), {"terminals": sorted({a.tid for a in run}), "skus": sorted(products)},
    )  # fmt: skip


# -- all together ----------------------------------------------------------------------------------


def detect(facts: AlertFacts, thresholds: AlertThresholds, since: datetime) -> list[Alert]:
    """Every alert seen at or after `since` (its last sighting), the critical ones first, then
    the most recent."""
    rows = facts.rows
    found = [
        *card_sharing(rows, thresholds),
        *disbursement_burst(rows, facts.disbursements, thresholds),
        *double_cards(facts.double_cards, facts.now, thresholds),
        *wrong_pins(rows, thresholds),
        *reversal_storms(rows, thresholds),
        *silent_terminals(facts.terminals, facts.now, thresholds),
        *above_het(facts.het_attempts, thresholds),
    ]
    recent = [alert for alert in found if alert.last_seen >= since]
    recent.sort(key=lambda a: (a.last_seen, a.first_seen), reverse=True)
    recent.sort(key=lambda a: a.severity != CRITICAL)
    return recent
