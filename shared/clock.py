"""Business time of the network: naive datetimes in Western Indonesian Time (WIB, UTC+7).

Everything that reads the time takes a Clock, so tests and scenarios inject a fixed one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Protocol

WIB = timezone(timedelta(hours=7), "WIB")


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(WIB).replace(tzinfo=None)


@dataclass
class FixedClock:
    """A clock that only moves when told to."""

    at: datetime

    def now(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> None:
        self.at = self.at + delta


def period_of(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """[start, end) of a YYYY-MM period; ValueError on anything else."""
    try:
        year_text, month_text = period.split("-")
        year, month = int(year_text), int(month_text)
        start = datetime(year, month, 1)
    except ValueError:
        raise ValueError(f"period must be YYYY-MM, got {period!r}") from None
    if len(year_text) != 4 or len(month_text) != 2:
        raise ValueError(f"period must be YYYY-MM, got {period!r}")
    end = datetime(year + (month == 12), month % 12 + 1, 1)
    return start, end
