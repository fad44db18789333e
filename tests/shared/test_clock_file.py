"""The simulated time a scenario network shares: one process writes the clock file, every
service reading it agrees, sees an advance at its next reading, and is not thrown by a file
that goes missing later. A missing or broken file at start is a clear error."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from shared.clock import ClockFile, ClockFileError, FileClock, SystemClock, clock_for

START = datetime(2026, 11, 3, 9, 0, 0)


class Wall:
    """Unix time that moves only when told to."""

    def __init__(self, at_s: float = 1_800_000_000.0) -> None:
        self.at_s = at_s

    def __call__(self) -> float:
        return self.at_s


def test_the_time_runs_at_wall_speed_from_the_start(tmp_path: Path) -> None:
    wall = Wall()
    path = tmp_path / "clock.json"
    ClockFile(START, wall()).write(path)
    clock = FileClock(path, wall)
    assert clock.now() == START
    wall.at_s += 90.5
    assert clock.now() == START + timedelta(seconds=90.5)


def test_an_advance_reaches_every_reader_at_its_next_reading(tmp_path: Path) -> None:
    wall = Wall()
    path = tmp_path / "clock.json"
    written = ClockFile(START, wall())
    written.write(path)
    bank, switch = FileClock(path, wall), FileClock(path, wall)
    assert bank.now() == switch.now() == START
    replace(written, shift_s=timedelta(days=91).total_seconds()).write(path)
    assert bank.now() == switch.now() == START + timedelta(days=91)


def test_a_file_gone_later_keeps_the_last_time_read(tmp_path: Path) -> None:
    wall = Wall()
    path = tmp_path / "clock.json"
    ClockFile(START, wall(), shift_s=3600).write(path)
    clock = FileClock(path, wall)
    path.unlink()
    assert clock.now() == START + timedelta(hours=1)
    path.write_text("{not json", encoding="utf-8")
    assert clock.now() == START + timedelta(hours=1)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "cannot be read"),
        ("[]", "is not a clock"),
        ('{"start": "yesterday", "wall_start_s": 1}', "is not a clock"),
        ('{"start": "2026-11-03T09:00:00"}', "is not a clock"),
        ("x" * 2_000, "larger than"),
    ],
)
def test_a_missing_or_broken_file_is_refused_at_start(tmp_path: Path, content: str | None, fragment: str) -> None:
    path = tmp_path / "clock.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ClockFileError, match=fragment):
        FileClock(path)


def test_an_offset_start_is_read_as_wib(tmp_path: Path) -> None:
    path = tmp_path / "clock.json"
    path.write_text('{"start": "2026-11-03T02:00:00+00:00", "wall_start_s": 5, "shift_s": 0}', encoding="utf-8")
    assert FileClock(path, Wall(5.0)).now() == START


def test_without_a_clock_file_the_system_clock(tmp_path: Path) -> None:
    assert isinstance(clock_for(None), SystemClock)
    ClockFile(START, 0.0).write(tmp_path / "clock.json")
    assert isinstance(clock_for(tmp_path / "clock.json"), FileClock)
