"""Playing a lesson in the training app as a participant does: the list, the card slot, the
EDC's keys, the catalogue, the guidance read at each step, the check. Shared by the app tests;
every wait is bounded."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Input, RadioButton, RadioSet, Select, Static

from shared.clock import FixedClock
from training.app import CheckScreen, GuidancePanel, LessonListScreen, TrainingApp
from training.lesson import CardFacts
from training.loader import load_lessons
from training.progress import ProgressStore

from tests.apps import eventually, settle
from tests.conftest import BUSINESS_START

SIZE = (140, 45)
START_S = 60.0  # the lesson's network: banks and the switch forked, seeded, signed on
STEP_S = 20.0  # one step's outcome: an answer, or a timeout and its reversal
LEAVE_S = 30.0  # the check saved, the network stopped, the list back
PARTICIPANT = "Ani"


def training_app(tmp_path: Path) -> TrainingApp:
    """The training app for PARTICIPANT, progress and sandboxes under `tmp_path`."""
    store = ProgressStore(tmp_path / "progress", FixedClock(BUSINESS_START))
    return TrainingApp(load_lessons(), store, PARTICIPANT, FixedClock(BUSINESS_START), sandbox_root=tmp_path)


def saved_progress(tmp_path: Path) -> dict:
    """What the progress store on disk holds for PARTICIPANT (read anew)."""
    return ProgressStore(tmp_path / "progress", FixedClock(BUSINESS_START)).of(PARTICIPANT.lower())


def guidance_text(app: TrainingApp) -> str:
    panel = app.query_one(GuidancePanel)
    return " ".join(str(panel.query_one(f"#guidance-{part}", Static).render()) for part in ("step", "do", "result"))


def guidance_do(app: TrainingApp) -> str:
    """The "Lakukan sekarang" line alone."""
    return str(app.query_one(GuidancePanel).query_one("#guidance-do", Static).render())


def guidance_cut(app: TrainingApp) -> bool:
    """Whether the "Lakukan sekarang" text is longer than the room the panel gives it."""
    do = app.query_one(GuidancePanel).query_one("#guidance-do", Static)
    return do.get_content_height(do.size, app.size, do.size.width) > do.size.height


def edc_status(app: TrainingApp) -> str:
    """The EDC's status line as shown."""
    return str(app.query_one("#edc-status", Static).render())


class Player:
    """A participant at the counter of a running TrainingApp."""

    def __init__(self, app: TrainingApp, pilot) -> None:  # noqa: ANN001 - textual Pilot
        self.app = app
        self.pilot = pilot

    # -- the list and the lesson -----------------------------------------------------------------

    async def open_lesson(self, row: int) -> None:
        """Down the list to `row` (0-based), Enter, and wait for the counter with its guidance."""
        app = self.app
        assert await eventually(lambda: isinstance(app.screen, LessonListScreen))
        await self.pilot.press(*["down"] * row, "enter")
        assert await eventually(lambda: bool(app.query(GuidancePanel)) and app.lesson_run is not None, START_S)
        await settle(self.pilot, app.terminal)

    def card(self, name: str) -> CardFacts:
        assert self.app.lesson_run is not None
        return self.app.lesson_run.cards[name]

    def fill(self, template: str) -> str:
        """A guidance template with the lesson's cards filled in (`{siti.pin}`)."""
        assert self.app.lesson_run is not None
        return self.app.lesson_run.text(template)

    async def at_step(self, number: int, total: int, title: str, timeout_s: float = STEP_S) -> bool:
        return await eventually(lambda: f"langkah {number}/{total} - {title}" in guidance_text(self.app), timeout_s)

    async def at_check(self, timeout_s: float = STEP_S) -> bool:
        return await eventually(lambda: "Soal penutup" in guidance_text(self.app) and self.app.lesson_run is not None
                                and self.app.lesson_run.step is None, timeout_s)  # fmt: skip

    # -- the EDC ---------------------------------------------------------------------------------

    async def slot_card(self, name: str) -> None:
        """The card picked in the slot's list of demo cards, inserted with a click."""
        self.app.query_one("#edc-card-select", Select).value = self.card(name).kks
        await self.pilot.click("#slot-insert")
        await settle(self.pilot, self.app.terminal)

    async def reinsert_card(self) -> None:
        """The card still picked in the slot's list goes in again."""
        await self.pilot.click("#slot-insert")
        await settle(self.pilot, self.app.terminal)

    async def type_card(self, name: str) -> None:
        """The card's number typed in the slot's field, then Enter."""
        await self.pilot.click("#edc-card-input")
        await self.pilot.press(*self.card(name).kks, "enter")
        await settle(self.pilot, self.app.terminal)

    async def keys(self, *keys: str) -> None:
        """Keys on the EDC (F1, digits, ENTER, m), the answer waited for."""
        await self.pilot.press(*keys)
        await settle(self.pilot, self.app.terminal)

    # -- the shop --------------------------------------------------------------------------------

    async def goods(self, name: str, qty: int) -> None:
        """The product shown as `name` in the catalogue, `qty` typed, Enter."""
        catalogue = self.app.query_one("#shop-catalogue", DataTable)
        rows = [key for key in catalogue.rows if name in str(catalogue.get_row(key)[0])]
        assert len(rows) == 1, f"{name} is not one row of the catalogue"
        catalogue.move_cursor(row=catalogue.get_row_index(rows[0]))
        quantity = self.app.query_one("#shop-qty", Input)
        quantity.value = str(qty)
        quantity.focus()
        await self.pilot.press("enter")
        await self.pilot.pause()

    async def pay(self, *keys: str) -> None:
        """F9 (Bayar), then what the KPM types on the EDC (a PIN or a NIK) and ENTER."""
        await self.pilot.press("f9")
        await self.pilot.pause()
        await self.keys(*keys, "enter")

    # -- the check -------------------------------------------------------------------------------

    async def answer_check(self, choices: list[int]) -> None:
        """F7, the 1-based choice of each question, Selesai; the list comes back."""
        app = self.app
        await self.pilot.press("f7")
        assert await eventually(lambda: isinstance(app.screen, CheckScreen))
        for index, choice in enumerate(choices):
            buttons = list(app.screen.query_one(f"#check-q{index}", RadioSet).query(RadioButton))
            buttons[choice - 1].value = True
        await self.pilot.pause()
        await self.pilot.click("#check-done")
        assert await eventually(lambda: isinstance(app.screen, LessonListScreen), LEAVE_S)

    async def list_row(self, row: int) -> list[str]:
        """The lesson list's row `row` (0-based): number, title, this participant's status."""
        app = self.app

        def listed() -> bool:  # the screen pushed, composed and filled
            tables = app.screen.query("#lessons-table") if isinstance(app.screen, LessonListScreen) else []
            return bool(tables) and tables[0].row_count == len(app.lessons)

        assert await eventually(listed)
        return [str(cell) for cell in app.screen.query_one("#lessons-table", DataTable).get_row_at(row)]
