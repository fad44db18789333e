"""Progress per participant: kept across a restart of the store and of the app's lesson list."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable

from shared.clock import FixedClock
from training.app import LessonListScreen, NameScreen, TrainingApp
from training.lesson import Score
from training.loader import load_lessons
from training.progress import ProgressError, ProgressStore, participant_error

from tests.apps import eventually
from tests.conftest import BUSINESS_START


def test_progress_survives_a_restart(tmp_path: Path) -> None:
    clock = FixedClock(BUSINESS_START)
    first = ProgressStore(tmp_path, clock)
    first.started("Ani Lestari", "saldo-nol")
    first.finished("Ani Lestari", "saldo-nol", Score(1, 3))
    first.started("Ani Lestari", "saldo-nol")
    first.finished("Ani Lestari", "saldo-nol", Score(3, 3))
    first.started("Budi", "vsat")
    again = ProgressStore(tmp_path, clock)
    ani = again.of("  ani   lestari ")  # the same participant, however the name is spaced or cased
    assert ani["saldo-nol"].label() == "selesai, skor 3/3"
    assert (ani["saldo-nol"].attempts, ani["saldo-nol"].best_right) == (2, 3)
    assert again.of("Budi")["vsat"].label() == "sedang dipelajari"
    assert again.of("Citra") == {}


def test_a_broken_progress_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "progress.json").write_text("{not json", encoding="utf-8")
    store = ProgressStore(tmp_path, FixedClock(BUSINESS_START))
    try:
        store.of("Ani")
    except ProgressError as exc:
        assert "rusak" in str(exc)
    else:
        raise AssertionError("a broken file must be refused")


def test_participant_names() -> None:
    assert participant_error("Ani") is None
    assert participant_error("  ") == "Nama peserta wajib diisi"
    assert participant_error("x" * 41) is not None
    assert participant_error("<script>") is not None


async def test_the_list_after_a_restart_shows_the_score(tmp_path: Path) -> None:
    clock = FixedClock(BUSINESS_START)
    ProgressStore(tmp_path, clock).finished("Ani", "kartu-hilang", Score(2, 2))
    app = TrainingApp(load_lessons(), ProgressStore(tmp_path, clock), None, clock)
    async with app.run_test(size=(120, 30)) as pilot:
        assert isinstance(app.screen, NameScreen)
        await pilot.press(*"ani", "enter")
        assert await eventually(lambda: isinstance(app.screen, LessonListScreen))
        table = app.screen.query_one("#lessons-table", DataTable)
        assert await eventually(lambda: table.row_count == len(app.lessons))
        statuses = {table.get_row_at(i)[1]: table.get_row_at(i)[2] for i in range(table.row_count)}
        assert statuses["Kartu hilang dan kartu pengganti"] == "selesai, skor 2/2"
        assert statuses["Pembelian normal"] == "belum dimulai"
        await pilot.press("f9", "f7")  # the counter's keys do nothing without a lesson
        assert isinstance(app.screen, LessonListScreen)
