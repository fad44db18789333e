"""Snapshots of the training screens: the lesson list with a participant's progress, and the
guidance panel after an outcome (fed events; no network). Clock fixed, progress in a temp dir."""

from __future__ import annotations

from pathlib import Path

from textual.app import App, ComposeResult

from shared.clock import FixedClock
from training.app import CSS_DIR, GuidancePanel, TrainingApp
from training.lesson import CardFacts, Event, LessonRun, Score
from training.loader import load_lessons
from training.progress import ProgressStore

from tests.conftest import BUSINESS_START

SITI = CardFacts("9360000900000014", "936000******0014", "123456", "3273000000000001", "Siti Aminah")


def test_lesson_list(snap_compare, tmp_path: Path) -> None:  # noqa: ANN001
    store = ProgressStore(tmp_path, FixedClock(BUSINESS_START))
    store.started("Ani", "pembelian-normal")
    store.finished("Ani", "pembelian-normal", Score(3, 3))
    store.started("Ani", "pin-terblokir")
    app = TrainingApp(load_lessons(), store, "Ani", FixedClock(BUSINESS_START))
    assert snap_compare(app, terminal_size=(120, 30))


class GuidanceApp(App):
    CSS_PATH = CSS_DIR / "training.tcss"

    def __init__(self, run: LessonRun) -> None:
        super().__init__()
        self.lesson_run = run

    def compose(self) -> ComposeResult:
        yield GuidancePanel(id="guidance")

    def on_mount(self) -> None:
        self.query_one(GuidancePanel).show(self.lesson_run.guidance())


def test_guidance_panel_after_a_declined_cek(snap_compare) -> None:  # noqa: ANN001
    run = LessonRun(next(lesson for lesson in load_lessons() if lesson.id == "pembelian-normal"), {"siti": SITI})
    run.feed(Event("card_inserted", card="siti"))
    run.feed(Event("balance", rc="55", approved=False))  # not what the step waits for: explained
    assert snap_compare(GuidanceApp(run), terminal_size=(140, 8))
