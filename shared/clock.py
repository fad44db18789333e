"""Business time of the network: naive datetimes in Western Indonesian Time (WIB, UTC+7).

Everything that reads the time takes a Clock, so tests and scenarios inject a fixed one. The
processes of a scenario network share one simulated time through a clock file (`FileClock`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
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


CLOCK_FILE_BYTES_MAX = 1_024


class ClockFileError(ValueError):
    """A clock file that is missing or does not hold a clock."""


@dataclass(frozen=True, slots=True)
class ClockFile:
    """What a clock file holds: the simulated time `start` at wall time `wall_start_s` (Unix
    seconds), plus `shift_s` seconds the time was moved forward since."""

    start: datetime
    wall_start_s: float
    shift_s: float = 0.0

    def now(self, wall_s: float) -> datetime:
        return self.start + timedelta(seconds=wall_s - self.wall_start_s + self.shift_s)

    def write(self, path: Path) -> None:
        """Replace the file at once (write aside, then rename): a reader never sees half of it."""
        data = {"start": self.start.isoformat(), "wall_start_s": self.wall_start_s, "shift_s": self.shift_s}
        aside = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        aside.write_text(json.dumps(data), encoding="utf-8")
        os.replace(aside, path)

    @classmethod
    def read(cls, path: Path) -> ClockFile:
        try:
            with path.open("rb") as handle:
                raw = handle.read(CLOCK_FILE_BYTES_MAX + 1)
            if len(raw) > CLOCK_FILE_BYTES_MAX:
                raise ClockFileError(f"clock file {path} is larger than {CLOCK_FILE_BYTES_MAX} bytes")
            data = json.loads(raw)
            start = datetime.fromisoformat(data["start"])
            if start.tzinfo is not None:
                start = start.astimezone(WIB).replace(tzinfo=None)
            return cls(start, float(data["wall_start_s"]), float(data.get("shift_s", 0.0)))
        except OSError as exc:
            raise ClockFileError(f"clock file {path} cannot be read: {exc.strerror or exc}") from None
        except (ValueError, TypeError, KeyError) as exc:
            raise ClockFileError(f"clock file {path} is not a clock (start, wall_start_s, shift_s): {exc}") from None


class FileClock:
    """Simulated WIB time read from a clock file: the time of a scenario network.

    The scenario runner writes the file (`ClockFile.write`); every service of that network
    started with it (settings `clock_file`) reads the same time, running at wall speed from the
    scenario's start, and sees an advance of the runner at its next reading: the file is read
    again whenever its size, time or inode change (one stat per reading). A file that goes
    missing or turns unreadable later keeps the last time read. Off unless configured."""

    def __init__(self, path: Path, wall: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._wall = wall
        self._seen: tuple[int, int, int] | None = None
        self._clock = ClockFile.read(self.path)  # fail at start, not at the first reading
        self._seen = self._stat()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            found = os.stat(self.path)
        except OSError:
            return None
        return found.st_ino, found.st_mtime_ns, found.st_size

    def now(self) -> datetime:
        seen = self._stat()
        if seen is not None and seen != self._seen:
            try:
                self._clock, self._seen = ClockFile.read(self.path), seen
            except ClockFileError:
                pass  # half-replaced or gone: the last time read holds
        return self._clock.now(self._wall())


def clock_for(clock_file: Path | None) -> Clock:
    """The system clock, or the simulated time of a clock file when one is configured."""
    return SystemClock() if clock_file is None else FileClock(clock_file)


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
