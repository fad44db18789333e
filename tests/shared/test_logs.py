"""Service logs: repeated warnings rate-limited with a summary, one line per record, rotation."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.logs import LogSettings, OneLineFormatter, RateLimitFilter, close_logging, configure_logging, worker_slot

ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def record(msg: str, *args: object, level: int = logging.WARNING, name: str = "switch") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_the_rate_limit_lets_a_burst_through_then_reports_what_it_held_back() -> None:
    clock = FakeClock()
    limit = RateLimitFilter(burst=3, interval_s=60, clock=clock)
    passed = [limit.filter(record("format error in %s: %s", "0200", i)) for i in range(10)]
    assert passed == [True] * 3 + [False] * 7
    assert limit.filter(record("another kind %s", 1))  # its own budget
    assert limit.filter(record("routine %s", 1, level=logging.INFO)) and limit.suppressed_total == 7
    clock.now_s = 61
    later = record("format error in %s: %s", "0200", 99)
    assert limit.filter(later)
    assert "suppressed 7 similar" in later.getMessage()


def test_summaries_are_taken_once_the_interval_is_over() -> None:
    clock = FakeClock()
    limit = RateLimitFilter(burst=1, interval_s=10, clock=clock)
    for i in range(5):
        limit.filter(record("dropped a frame: %s", i))
    assert limit.take_summaries() == []
    clock.now_s = 11
    [line] = limit.take_summaries()
    assert "dropped a frame" in line and "suppressed 4 similar" in line
    assert limit.take_summaries() == []


def test_the_kinds_tracked_are_bounded() -> None:
    limit = RateLimitFilter(burst=1, interval_s=60, keys_max=5, clock=FakeClock())
    for i in range(100):
        limit.filter(record(f"kind {i}"))
    assert len(limit._windows) == 5


def test_one_record_is_one_line_and_long_messages_are_cut() -> None:
    formatter = OneLineFormatter(line_chars_max=80)
    text = formatter.format(record("a\nb %s", "x" * 500))
    assert "\n" not in text and "characters cut" in text and len(text) < 120


def test_a_traceback_is_kept_whole() -> None:
    formatter = OneLineFormatter(line_chars_max=80)
    try:
        raise RuntimeError("real fault")
    except RuntimeError:
        import sys

        faulty = logging.LogRecord("switch", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert "Traceback" in formatter.format(faulty) and "RuntimeError: real fault" in formatter.format(faulty)


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    close_logging()
    root.setLevel(level)


def test_the_log_file_rotates_at_its_size(tmp_path: Path, restore_root: None) -> None:
    settings = LogSettings(file_bytes_max=20_000, files_kept=2, burst=1_000_000)
    setup = configure_logging("bank-bni", tmp_path, settings, stderr=False)
    assert setup.path == tmp_path / "logs" / "bank-bni.log"
    log = logging.getLogger("bank")
    for i in range(3_000):
        log.warning("line %d of a long run", i)
    files = sorted((tmp_path / "logs").iterdir())
    assert [f.name for f in files] == ["bank-bni.log", "bank-bni.log.1", "bank-bni.log.2"]
    assert all(f.stat().st_size <= 20_000 for f in files)


def test_a_flood_of_one_warning_writes_a_few_lines(tmp_path: Path, restore_root: None) -> None:
    setup = configure_logging("switch", tmp_path, LogSettings(burst=5, interval_s=60), stderr=False)
    log = logging.getLogger("switch")
    for i in range(10_000):
        log.warning("dropped a frame from %s: %s", "127.0.0.1", i)
    close_logging()
    lines = setup.path.read_text().splitlines()
    assert len(lines) == 6 and "suppressed 9995 similar" in lines[-1]


def test_service_names_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="service name"):
        configure_logging("../etc", tmp_path)


HOLD_SLOT = """
import sys, time
from shared.logs import worker_slot
print(worker_slot("bank-bni", sys.argv[1], 4), flush=True)
time.sleep(60)
"""


def test_worker_processes_take_the_lowest_free_slot_each_and_a_dead_ones_is_free_again(tmp_path: Path) -> None:
    def holder() -> tuple[subprocess.Popen, int]:
        process = subprocess.Popen([sys.executable, "-c", HOLD_SLOT, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        return process, int(process.stdout.readline())  # bounded: the child prints at once

    first, second = holder(), holder()
    try:
        assert (first[1], second[1]) == (0, 1)
        first[0].kill()  # however it ends, the system releases its lock
        first[0].wait(timeout=10)
        third = holder()
        try:
            assert third[1] == 0
        finally:
            third[0].kill()
            third[0].wait(timeout=10)
    finally:
        for process, _ in (first, second):
            process.kill()
            process.wait(timeout=10)


def test_no_free_slot_is_an_error(tmp_path: Path) -> None:
    assert [worker_slot("switch", tmp_path, 2) for _ in range(2)] == [0, 1]  # each lock is its own open file
    with pytest.raises(RuntimeError, match="all 2 worker slots of switch"):
        worker_slot("switch", tmp_path, 2)
