"""Operations reports of the bank (the Pedoman's list), per period and region.

One grouped SQL aggregate per measure (GROUP BY the region columns down to the chosen level),
merged into rows here. Only portable SQLAlchemy Core is used, so the same queries run on SQLite
and PostgreSQL. Money is integer rupiah throughout.

Where the region of a measure comes from:

- account openings: the region columns recorded on `account_openings` (a failed opening has no KPM);
- sub-account results, cards, card events, transfers and offline exceptions: the KPM's region.

Offline exceptions are advices the bank flagged: `offline_exceptions` counts those accepted
with the balance below zero (within the offline limit), `offline_refused` those refused with 51
because they would have taken the balance below minus the offline limit. Each one is listed by
`offline_exception_list`.

Double cards (`double_card_list`): families holding more than one active card (tunggalisasi:
one KKS per family). A family is the KPM's KK number when it has the 16 characters of one, else
the KPM alone; a card is active while its latest status is "activated".
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime

from sqlalchemy import Connection, Select, String, case, cast, func, literal, select, true

from shared import rc
from shared.clock import period_bounds
from bank_penyalur.store import latest_card_status
from bank_penyalur.tables import (
    ACTIVATED,
    ADVICE,
    DISBURSEMENT,
    DISTRIBUTED,
    EMONEY,
    PRINTED,
    PURCHASE,
    REVERSAL,
    Account,
    AccountOpening,
    AuthRequest,
    Card,
    CardEvent,
    Kpm,
    SubAccountResult,
    Transfer,
)

LEVELS = ("province", "regency", "district", "village")
TOTAL_LABEL = "TOTAL"

Key = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Measures:
    """The figures of one region (or of all regions) for one period."""

    accounts_opened: int = 0
    accounts_failed: int = 0
    sub_accounts_set: int = 0
    sub_accounts_failed: int = 0
    emoney_set: int = 0
    emoney_failed: int = 0
    kks_printed: int = 0
    kks_distributed: int = 0
    funds_disbursed_idr: int = 0
    funds_spent_idr: int = 0
    ending_balance_idr: int = 0
    offline_exceptions: int = 0
    offline_refused: int = 0


MEASURES = tuple(f.name for f in fields(Measures))


@dataclass(frozen=True, slots=True)
class ReportRow:
    region: dict[str, str]  # the region columns of the level, in LEVELS order
    measures: Measures

    def as_dict(self) -> dict:
        return {**self.region, **asdict(self.measures)}


@dataclass(frozen=True, slots=True)
class Report:
    period: str
    level: str
    province: str | None
    rows: list[ReportRow]
    totals: Measures

    @property
    def columns(self) -> tuple[str, ...]:
        return region_columns(self.level)


@dataclass(frozen=True, slots=True)
class _Scope:
    """What one report covers: the period [start, end), the grouping and the province filter."""

    period: str
    start: datetime
    end: datetime
    level: str
    province: str | None


def region_columns(level: str) -> tuple[str, ...]:
    """Region column names grouped at `level`, e.g. district -> (province, regency, district)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    return LEVELS[: LEVELS.index(level) + 1]


def build_report(conn: Connection, period: str, level: str = "province", province: str | None = None) -> Report:
    """Every measure of `period` grouped by region at `level`, optionally within one province."""
    start, end = period_bounds(period)
    columns = region_columns(level)
    scope = _Scope(period, start, end, level, province or None)
    by_key: dict[Key, dict[str, int]] = defaultdict(dict)
    for key in _known_regions(conn, scope):
        by_key.setdefault(key, {})
    for measure, counts in _all_measures(conn, scope):
        for key, value in counts.items():
            by_key[key][measure] = by_key[key].get(measure, 0) + value
    rows = [
        ReportRow(dict(zip(columns, key, strict=True)), Measures(**by_key[key]))
        for key in sorted(by_key)
    ]
    return Report(period, level, scope.province, rows, _sum_measures(row.measures for row in rows))


def _all_measures(conn: Connection, scope: _Scope) -> Iterable[tuple[str, dict[Key, int]]]:
    """(measure name, {region key: value}) pairs; a measure may come in several parts."""
    yield from _openings(conn, scope)
    yield from _sub_accounts(conn, scope)
    yield from _card_events(conn, scope)
    yield "funds_disbursed_idr", _disbursed(conn, scope)
    yield "funds_spent_idr", _spent(conn, scope)
    yield "funds_spent_idr", _negate(_reversed(conn, scope))
    yield "ending_balance_idr", _emoney_legs(conn, scope, Transfer.credit_account_id)
    yield "ending_balance_idr", _negate(_emoney_legs(conn, scope, Transfer.debit_account_id))
    yield from _offline_exceptions(conn, scope)


# -- query helpers -----------------------------------------------------------------------


def _region(table, scope: _Scope) -> list:  # noqa: ANN001 - an ORM class with region columns
    return [getattr(table, name) for name in region_columns(scope.level)]


def _in_province(table, scope: _Scope):  # noqa: ANN001, ANN202
    return table.province == scope.province if scope.province else true()


def _grouped(conn: Connection, stmt: Select, key_width: int) -> dict[Key, int]:
    """Run a statement selecting (*region key, value) and return {key: int value}."""
    return {tuple(row[:key_width]): int(row[key_width] or 0) for row in conn.execute(stmt)}


def _split(conn: Connection, stmt: Select, key_width: int) -> dict[str, dict[Key, int]]:
    """Run a statement selecting (*region key, label, count) and split it by label."""
    parts: dict[str, dict[Key, int]] = defaultdict(dict)
    for row in conn.execute(stmt):
        parts[row[key_width]][tuple(row[:key_width])] = int(row[key_width + 1])
    return parts


def _negate(values: dict[Key, int]) -> dict[Key, int]:
    return {key: -value for key, value in values.items()}


def _sum_measures(items: Iterable[Measures]) -> Measures:
    totals = dict.fromkeys(MEASURES, 0)
    for item in items:
        for name in MEASURES:
            totals[name] += getattr(item, name)
    return Measures(**totals)


def _known_regions(conn: Connection, scope: _Scope) -> list[Key]:
    """Regions with a KPM registered before the period ends: listed even when all zero."""
    region = _region(Kpm, scope)
    stmt = select(*region).where(Kpm.registered_at < scope.end, _in_province(Kpm, scope)).distinct()
    return [tuple(row) for row in conn.execute(stmt)]


# -- the measures ------------------------------------------------------------------------


def _openings(conn: Connection, scope: _Scope) -> Iterable[tuple[str, dict[Key, int]]]:
    region = _region(AccountOpening, scope)
    stmt = (
        select(*region, AccountOpening.result, func.count())
        .where(
            AccountOpening.at >= scope.start,
            AccountOpening.at < scope.end,
            _in_province(AccountOpening, scope),
        )
        .group_by(*region, AccountOpening.result)
    )
    parts = _split(conn, stmt, len(region))
    yield "accounts_opened", parts.get("opened", {})
    yield "accounts_failed", parts.get("failed", {})


def _sub_accounts(conn: Connection, scope: _Scope) -> Iterable[tuple[str, dict[Key, int]]]:
    region = _region(Kpm, scope)
    stmt = (
        select(*region, SubAccountResult.kind, SubAccountResult.result, func.count())
        .select_from(SubAccountResult)
        .join(Kpm, Kpm.id == SubAccountResult.kpm_id)
        .where(SubAccountResult.at >= scope.start, SubAccountResult.at < scope.end, _in_province(Kpm, scope))
        .group_by(*region, SubAccountResult.kind, SubAccountResult.result)
    )
    width = len(region)
    for row in conn.execute(stmt):
        key, kind, result, count = tuple(row[:width]), row[width], row[width + 1], int(row[width + 2])
        if result not in ("set", "failed"):
            continue
        yield f"sub_accounts_{result}", {key: count}
        if kind == EMONEY:
            yield f"emoney_{result}", {key: count}


def _card_events(conn: Connection, scope: _Scope) -> Iterable[tuple[str, dict[Key, int]]]:
    region = _region(Kpm, scope)
    stmt = (
        select(*region, CardEvent.status, func.count())
        .select_from(CardEvent)
        .join(Card, Card.id == CardEvent.card_id)
        .join(Kpm, Kpm.id == Card.kpm_id)
        .where(
            CardEvent.status.in_((PRINTED, DISTRIBUTED)),
            CardEvent.at >= scope.start,
            CardEvent.at < scope.end,
            _in_province(Kpm, scope),
        )
        .group_by(*region, CardEvent.status)
    )
    parts = _split(conn, stmt, len(region))
    yield "kks_printed", parts.get(PRINTED, {})
    yield "kks_distributed", parts.get(DISTRIBUTED, {})


def _kpm_transfer_sum(scope: _Scope, account_side, *conditions) -> Select:  # noqa: ANN001
    """Sum of transfers whose `account_side` is a KPM e-money account, by the KPM's region."""
    region = _region(Kpm, scope)
    return (
        select(*region, func.coalesce(func.sum(Transfer.amount_idr), 0))
        .select_from(Transfer)
        .join(Account, Account.id == account_side)
        .join(Kpm, Kpm.id == Account.kpm_id)
        .where(Account.kind == EMONEY, _in_province(Kpm, scope), *conditions)
        .group_by(*region)
    )


def _in_period(scope: _Scope):  # noqa: ANN202
    return Transfer.created_at >= scope.start, Transfer.created_at < scope.end


def _disbursed(conn: Connection, scope: _Scope) -> dict[Key, int]:
    stmt = _kpm_transfer_sum(
        scope, Transfer.credit_account_id, Transfer.kind == DISBURSEMENT, Transfer.period == scope.period
    )
    return _grouped(conn, stmt, len(region_columns(scope.level)))


def _spent(conn: Connection, scope: _Scope) -> dict[Key, int]:
    """Purchases and offline advices debited from KPM e-money accounts in the period."""
    stmt = _kpm_transfer_sum(
        scope, Transfer.debit_account_id, Transfer.kind.in_((PURCHASE, ADVICE)), *_in_period(scope)
    )
    return _grouped(conn, stmt, len(region_columns(scope.level)))


def _reversed(conn: Connection, scope: _Scope) -> dict[Key, int]:
    """Reversals in the period that credited a KPM e-money account back."""
    stmt = _kpm_transfer_sum(scope, Transfer.credit_account_id, Transfer.kind == REVERSAL, *_in_period(scope))
    return _grouped(conn, stmt, len(region_columns(scope.level)))


def _emoney_legs(conn: Connection, scope: _Scope, account_side) -> dict[Key, int]:  # noqa: ANN001
    """Everything moved into (credit side) or out of (debit side) KPM e-money before the period ends."""
    stmt = _kpm_transfer_sum(scope, account_side, Transfer.created_at < scope.end)
    return _grouped(conn, stmt, len(region_columns(scope.level)))


def _offline_exceptions(conn: Connection, scope: _Scope) -> Iterable[tuple[str, dict[Key, int]]]:
    region = _region(Kpm, scope)
    accepted = (AuthRequest.rc == rc.APPROVED).label("accepted")
    stmt = (
        select(*region, accepted, func.count())
        .select_from(AuthRequest)
        .join(Card, Card.id == AuthRequest.card_id)
        .join(Kpm, Kpm.id == Card.kpm_id)
        .where(*_exception_conditions(scope))
        .group_by(*region, accepted)
    )
    parts = _split(conn, stmt, len(region))
    yield "offline_exceptions", parts.get(True, {})
    yield "offline_refused", parts.get(False, {})


def _exception_conditions(scope: _Scope) -> tuple:
    return (
        AuthRequest.exception.is_(True),
        AuthRequest.created_at >= scope.start,
        AuthRequest.created_at < scope.end,
        _in_province(Kpm, scope),
    )


@dataclass(frozen=True, slots=True)
class OfflineException:
    """One flagged offline advice: accepted below zero (rc 00), refused past the limit (rc 51), or
    refused as too late after its disbursement or its sale (rc 54)."""

    created_at: datetime
    province: str
    regency: str
    pan_masked: str
    terminal_id: str
    stan: str
    merchant_id: str
    amount_idr: int
    rc: str
    balance_idr: int | None


def offline_exception_list(conn: Connection, period: str, province: str | None = None) -> list[OfflineException]:
    """Every offline exception of `period` (optionally within one province), oldest first."""
    start, end = period_bounds(period)
    scope = _Scope(period, start, end, "regency", province or None)
    stmt = (
        select(
            AuthRequest.created_at, Kpm.province, Kpm.regency, AuthRequest.pan_masked, AuthRequest.terminal_id,
            AuthRequest.stan, AuthRequest.merchant_id, AuthRequest.amount_idr, AuthRequest.rc, AuthRequest.balance_idr,
        )
        .join(Card, Card.id == AuthRequest.card_id)
        .join(Kpm, Kpm.id == Card.kpm_id)
        .where(*_exception_conditions(scope))
        .order_by(AuthRequest.id)
    )
    return [OfflineException(*row) for row in conn.execute(stmt)]


# -- double cards ----------------------------------------------------------------------------

KK_LENGTH = 16
FAMILIES_MAX = 1_000


@dataclass(frozen=True, slots=True)
class ActiveCard:
    pan_masked: str
    kpm_id: int
    active_since: datetime  # its latest card event: the activation (or the unblocking)


@dataclass(frozen=True, slots=True)
class DoubleCardFamily:
    family: str  # "KK 3204********0001" (masked), or "KPM 12" without a KK number
    province: str
    regency: str
    kpm_ids: list[int]
    cards: list[ActiveCard]  # oldest activation first
    double_since: datetime  # when it came to hold a second active card


def _family_key():  # noqa: ANN202
    return case((func.length(Kpm.kk_number) == KK_LENGTH, Kpm.kk_number), else_=literal("kpm:") + cast(Kpm.id, String))


def _active_cards(province: str | None) -> Select:
    since = select(func.max(CardEvent.at)).where(CardEvent.card_id == Card.id).scalar_subquery()
    return (
        select(_family_key().label("family"), Card.pan_masked, Card.kpm_id, since.label("active_since"), Kpm.province, Kpm.regency)
        .join(Kpm, Kpm.id == Card.kpm_id)
        .where(latest_card_status() == ACTIVATED, *([Kpm.province == province] if province else []))
    )


def double_card_list(conn: Connection, province: str | None = None, limit: int = FAMILIES_MAX) -> tuple[list[DoubleCardFamily], bool]:
    """Families with more than one active card (optionally within one province), by family
    key; and whether there were more than `limit`."""
    active = _active_cards(province).subquery()
    families = (
        select(active.c.family).group_by(active.c.family).having(func.count() > 1).order_by(active.c.family).limit(limit + 1)
    )
    keys = list(conn.execute(families).scalars())
    truncated, keys = len(keys) > limit, keys[:limit]
    if not keys:
        return [], truncated
    cards: dict[str, list] = defaultdict(list)
    for row in conn.execute(select(active).where(active.c.family.in_(keys)).order_by(active.c.active_since, active.c.pan_masked)):
        cards[row.family].append(row)
    return [_family(key, cards[key]) for key in keys], truncated


def _family(key: str, rows: list) -> DoubleCardFamily:  # noqa: ANN001
    shown = f"KPM {key.removeprefix('kpm:')}" if key.startswith("kpm:") else f"KK {key[:4]}{'*' * (len(key) - 8)}{key[-4:]}"
    return DoubleCardFamily(
        family=shown,
        province=rows[0].province,
        regency=rows[0].regency,
        kpm_ids=sorted({row.kpm_id for row in rows}),
        cards=[ActiveCard(row.pan_masked, row.kpm_id, row.active_since) for row in rows],
        double_since=rows[1].active_since,
    )


# -- output ------------------------------------------------------------------------------


def report_to_dict(report: Report) -> dict:
    return {
        "period": report.period,
        "level": report.level,
        "province": report.province,
        "columns": list(report.columns),
        "measures": list(MEASURES),
        "rows": [row.as_dict() for row in report.rows],
        "totals": asdict(report.totals),
    }


def report_to_csv(report: Report) -> str:
    """Header, one line per region, then a TOTAL line (label in the first region column)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*report.columns, *MEASURES])
    for row in report.rows:
        writer.writerow([*row.region.values(), *_values(row.measures)])
    blanks = [""] * (len(report.columns) - 1)
    writer.writerow([TOTAL_LABEL, *blanks, *_values(report.totals)])
    return out.getvalue()


def _values(measures: Measures) -> Sequence[int]:
    return [getattr(measures, name) for name in MEASURES]
