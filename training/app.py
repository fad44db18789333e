"""`sembako training`: guided lessons for pendamping, played in the cashier app.

The participant gives a name (or `--participant`), picks a lesson from the list (each with its
status for this participant), and plays it at the e-Warong counter: the cashier app itself
(`ewarong_pos.app.CashierApp`, which this app extends) on the lesson's own sandbox network, with
a guidance panel below it saying what to do now, what just happened, what the response code
means and what the KPM should do next. After the last step come the check questions; the score
is saved per participant (`training.progress`) and the list comes back.

The counter is composed anew for each lesson (`recompose`), since each lesson brings its own
network, terminal and books; between lessons no counter exists and its actions are disabled.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, LoadingIndicator, RadioButton, RadioSet, Static

from edc_terminal.app import EdcOptions
from edc_terminal.widgets import EdcPanel
from ewarong_pos.app import CashierApp
from shared.clock import Clock, SystemClock

from .events import EventSource
from .lesson import Event, Guidance, LessonRun, Phase, Score
from .model import Lesson
from .progress import ProgressError, ProgressStore, participant_error
from .sandbox import Sandbox, SandboxError

log = logging.getLogger(__name__)
CSS_DIR = Path(__file__).parent
NOT_STARTED = "belum dimulai"
TEXT_PREPARING = "Tunggu sebentar: langkah ini sedang disiapkan di jaringan latihan..."
# CashierApp's actions that need a counter; disabled between lessons.
COUNTER_ACTIONS = ("pay", "report", "price_board", "toggle_inspector", "next_customer", "clear_cart", "check", "leave_lesson")


class GuidancePanel(Widget):
    """What the pendamping says now: the step, what to do, and the last outcome explained."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._composed = False
        self._guidance: Guidance | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="guidance-now"):
            yield Static(id="guidance-step")
            with VerticalScroll(id="guidance-do-box"):  # a long instruction scrolls on a small terminal
                yield Static(id="guidance-do")
            with Horizontal(id="guidance-buttons"):
                yield Button("Soal penutup (F7)", id="guidance-check", variant="primary", compact=True, disabled=True)
                yield Button("Daftar pelajaran (Ctrl+L)", id="guidance-leave", compact=True)
        with VerticalScroll(id="guidance-result-box"):
            yield Static(id="guidance-result")

    def on_mount(self) -> None:
        self._composed = True
        self.border_title = "Panduan pendamping"
        self.show(self._guidance)

    def show(self, guidance: Guidance | None) -> None:
        self._guidance = guidance
        if not self._composed or guidance is None:
            return
        if guidance.phase is Phase.STEPS:
            head = f"{guidance.lesson}: langkah {guidance.step_number}/{guidance.step_total} - {guidance.step_title}"
        else:
            head = f"{guidance.lesson}: {guidance.step_title}"
        self.query_one("#guidance-step", Static).update(Text(head, style="bold"))
        do = Text("Lakukan sekarang: ", style="bold")
        do.append(guidance.do_now, style="")
        self.query_one("#guidance-do", Static).update(do)
        self.query_one("#guidance-result", Static).update(_result_text(guidance))
        self.query_one("#guidance-check", Button).disabled = guidance.phase is not Phase.CHECK

    @on(Button.Pressed, "#guidance-check")
    async def _check(self, event: Button.Pressed) -> None:
        event.stop()
        await self.app.run_action("check")

    @on(Button.Pressed, "#guidance-leave")
    async def _leave(self, event: Button.Pressed) -> None:
        event.stop()
        await self.app.run_action("leave_lesson")


def _result_text(guidance: Guidance) -> Text:
    text = Text()
    if guidance.happened is None:
        text.append("Yang terjadi: ", style="bold")
        text.append("belum ada transaksi.", style="dim")
        return text
    heading = "Yang terjadi: " if guidance.on_track else "Yang terjadi (belum sesuai langkah): "
    text.append(heading, style="bold" if guidance.on_track else "bold yellow")
    text.append(f"{guidance.happened}\n")
    if guidance.rc_meaning:
        text.append("Arti kode respons: ", style="bold")
        text.append(f"{guidance.rc_meaning}\n")
    if guidance.kpm_next:
        text.append("Yang dilakukan KPM: ", style="bold")
        text.append(guidance.kpm_next)
    return text


class NameScreen(Screen[str]):
    """The participant's name, asked once."""

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with Vertical(id="name-box"):
            yield Label("Selamat datang di pelatihan pendamping Program Sembako.")
            yield Label("Ketik nama Anda, lalu Enter. Kemajuan belajar disimpan dengan nama ini.")
            yield Input(placeholder="Nama peserta", id="name-input", max_length=40)
            yield Static(id="name-error")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#name-input", Input).focus()

    @on(Input.Submitted, "#name-input")
    def _named(self, event: Input.Submitted) -> None:
        event.stop()
        problem = participant_error(event.value)
        if problem is not None:
            self.query_one("#name-error", Static).update(Text(problem, style="red"))
            return
        self.dismiss(" ".join(event.value.split()))


class LessonListScreen(Screen[Lesson]):
    """The lessons with this participant's status; Enter opens one."""

    BINDINGS = [Binding("ctrl+q", "app.quit", "Keluar")]

    def __init__(self, lessons: list[Lesson], participant: str, statuses: dict[str, str]) -> None:
        super().__init__()
        self.lessons = lessons
        self.participant = participant
        self.statuses = statuses

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with Vertical(id="lessons-box"):
            yield Static(Text(f"Peserta: {self.participant}", style="bold"), id="lessons-participant")
            yield Static("Pilih pelajaran dengan panah atas/bawah, lalu Enter. Setiap pelajaran memakai jaringan latihan sendiri.",
                         id="lessons-help")
            yield DataTable(id="lessons-table", cursor_type="row", zebra_stripes=True)
            yield Static(id="lessons-summary")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#lessons-table", DataTable)
        table.add_columns("No", "Pelajaran", "Status")
        for lesson in self.lessons:
            table.add_row(str(lesson.order), lesson.title, self.statuses.get(lesson.id, NOT_STARTED), key=lesson.id)
        table.focus()
        self._show_summary()

    @on(DataTable.RowHighlighted, "#lessons-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_summary()

    def _show_summary(self) -> None:
        lesson = self._current()
        if lesson is not None:
            self.query_one("#lessons-summary", Static).update(lesson.summary)

    def _current(self) -> Lesson | None:
        table = self.query_one("#lessons-table", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((lesson for lesson in self.lessons if lesson.id == key), None)

    @on(DataTable.RowSelected, "#lessons-table")
    def _chosen(self, event: DataTable.RowSelected) -> None:
        event.stop()
        lesson = self._current()
        if lesson is not None:
            self.dismiss(lesson)


class PreparingScreen(ModalScreen[None]):
    """Shown while the lesson's network starts."""

    def __init__(self, lesson: Lesson) -> None:
        super().__init__()
        self.lesson = lesson

    def compose(self) -> ComposeResult:
        with Vertical(id="preparing-box"):
            yield Label(Text(self.lesson.title, style="bold"))
            yield Label("Menyiapkan jaringan latihan: bank, switch, EDC dan e-Warong...")
            yield LoadingIndicator()


class CheckScreen(ModalScreen[Score | None]):
    """The lesson's check questions; the score when every question is answered."""

    BINDINGS = [Binding("escape", "dismiss_none", "Tutup")]

    def __init__(self, run: LessonRun) -> None:
        super().__init__()
        self.lesson_run = run

    def compose(self) -> ComposeResult:
        with Vertical(id="check-box"):
            with VerticalScroll(id="check-questions"):
                for index, question in enumerate(self.lesson_run.lesson.check):
                    yield Label(Text(f"{index + 1}. {question.question}", style="bold"))
                    with RadioSet(id=f"check-q{index}"):
                        for choice in question.choices:
                            yield RadioButton(choice)
            yield Static(id="check-message")
            with Horizontal(id="check-buttons"):
                yield Button("Selesai", id="check-done", variant="primary", compact=True)
                yield Button("Tutup (Esc)", id="check-close", compact=True)

    def on_mount(self) -> None:
        self.query_one("#check-box").border_title = f"Soal penutup: {self.lesson_run.lesson.title}"

    def action_dismiss_none(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#check-close")
    def _close(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#check-done")
    def _done(self) -> None:
        for index in range(len(self.lesson_run.lesson.check)):
            chosen = self.query_one(f"#check-q{index}", RadioSet).pressed_index
            if chosen < 0:
                self.query_one("#check-message", Static).update(Text(f"Soal {index + 1} belum dijawab", style="red"))
                return
            self.lesson_run.answer(index, chosen + 1)
        self.dismiss(self.lesson_run.finish())


class TrainingApp(CashierApp):
    """The cashier app with lessons: list, counter with guidance, check, progress."""

    CSS_PATH = [*CashierApp.CSS_PATH, CSS_DIR / "training.tcss"]
    TITLE = "Pelatihan pendamping Program Sembako"
    BINDINGS = [
        *CashierApp.BINDINGS,
        Binding("f7", "check", "Soal"),
        Binding("ctrl+l", "leave_lesson", "Daftar pelajaran"),
    ]

    def __init__(self, lessons: list[Lesson], progress: ProgressStore, participant: str | None = None,
                 clock: Clock | None = None, sandbox_root: Path | None = None) -> None:  # fmt: skip
        App.__init__(self)  # not CashierApp's: each lesson brings its own counter (see `open_lesson`)
        self.lessons = lessons
        self.progress = progress
        self.participant = participant
        self.clock = clock or SystemClock()
        self.sandbox_root = sandbox_root
        self.sandbox: Sandbox | None = None
        self.lesson_run: LessonRun | None = None
        self.power_on_at_start = True
        self.edc_options = EdcOptions()  # the sandbox's terminal is already behind its link simulator
        self.data_dir = Path(".")

    # -- composition -------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        if self.sandbox is None or self.sandbox.counter is None:
            yield Static(id="training-idle")  # under the list; a Header here races its removal
            return
        yield from super().compose()
        yield GuidancePanel(id="guidance")

    async def on_mount(self, event) -> None:  # noqa: ANN001 - Mount
        event.prevent_default()  # CashierApp's on_mount needs a counter: it runs per lesson
        if self.participant is None:
            self.push_screen(NameScreen(), self._named)
        else:
            self.show_lessons()

    async def on_unmount(self, event) -> None:  # noqa: ANN001 - Unmount
        event.prevent_default()  # the terminal belongs to the sandbox, closed with it
        await self._close_sandbox()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in COUNTER_ACTIONS and (self.sandbox is None or self.sandbox.counter is None):
            return False
        if action == "check":
            return self.lesson_run is not None and self.lesson_run.phase is Phase.CHECK
        return True

    # -- participant and lesson list ---------------------------------------------------------

    def _named(self, name: str | None) -> None:
        if name:
            self.participant = name
            self.show_lessons()

    def statuses(self) -> dict[str, str]:
        assert self.participant is not None
        try:
            return {lesson: progress.label() for lesson, progress in self.progress.of(self.participant).items()}
        except ProgressError as exc:
            self.notify(str(exc), severity="error", timeout=10)
            return {}

    def show_lessons(self) -> None:
        assert self.participant is not None
        self.push_screen(LessonListScreen(self.lessons, self.participant, self.statuses()), self._chosen)

    def _chosen(self, lesson: Lesson | None) -> None:
        if lesson is not None:
            self.open_lesson(lesson)

    # -- a lesson ------------------------------------------------------------------------------

    @work(exclusive=True, group="lesson")
    async def open_lesson(self, lesson: Lesson) -> None:
        """Start the lesson's network, compose the counter with the guidance, and begin."""
        preparing = PreparingScreen(lesson)
        await self.push_screen(preparing)
        sandbox = Sandbox(lesson, self._event, self.sandbox_root)
        try:
            await sandbox.start()
        except SandboxError as exc:
            log.error("lesson %s: %s", lesson.id, exc)
            preparing.dismiss()
            self.notify(f"Pelajaran tidak dapat dimulai: {exc}", severity="error", timeout=15)
            self.show_lessons()
            return
        self.sandbox = sandbox
        assert sandbox.counter is not None and sandbox.edc is not None
        self.counter, self.terminal, self.data_dir = sandbox.counter, sandbox.edc, sandbox.data_dir
        self.lesson_run = LessonRun(lesson, sandbox.card_facts())
        EventSource(sandbox.edc, sandbox.card_name, self._event)
        preparing.dismiss()
        await self.recompose()
        await CashierApp.on_mount(self)  # the counter's own start: recovery, power-on
        self.sub_title = f"{lesson.title} - peserta {self.participant}"
        self._record_start(lesson)
        await self._world_and_show()

    def _record_start(self, lesson: Lesson) -> None:
        assert self.participant is not None
        try:
            self.progress.started(self.participant, lesson.id)
        except ProgressError as exc:
            self.notify(str(exc), severity="error", timeout=10)

    def _event(self, event: Event) -> None:
        """An event of the counter or the EDC: the lesson moves on, the panel follows."""
        if self.lesson_run is None:
            return
        if self.lesson_run.feed(event) and self.sandbox is not None:
            world = self.lesson_run.due_world()
            if world:  # the step's instructions wait until its world is ready (a new card, the signal)
                self._show_guidance(TEXT_PREPARING)
                self.run_worker(self._world_and_show(world), group="lesson-world", exclusive=False)
                return
        self._show_guidance()

    async def _world_and_show(self, world: tuple = ()) -> None:
        """The world steps of the step just begun (`world`, else those due now), then the panel."""
        run, sandbox = self.lesson_run, self.sandbox
        if run is None or sandbox is None:
            return
        world = world or run.due_world()
        if world:
            try:
                await sandbox.play_world(world)
            except SandboxError as exc:
                self.notify(str(exc), severity="error", timeout=15)
            run.cards = sandbox.card_facts()  # a replaced card has a number now
            for edc in self.query(EdcPanel):
                edc.refresh_view()  # the status line shows the link the world changed (signal back)
        self._show_guidance()

    def _show_guidance(self, do_now: str | None = None) -> None:
        """The lesson's guidance; with `do_now`, that in place of the step's instruction."""
        if self.lesson_run is None:
            return
        guidance = self.lesson_run.guidance()
        if do_now is not None:
            guidance = dataclasses.replace(guidance, do_now=do_now)
        for panel in self.query(GuidancePanel):
            panel.show(guidance)

    def action_check(self) -> None:
        if self.lesson_run is not None and self.lesson_run.phase is Phase.CHECK:
            self.push_screen(CheckScreen(self.lesson_run), self._checked)

    def _checked(self, score: Score | None) -> None:
        if score is None or self.lesson_run is None:
            return
        assert self.participant is not None
        try:
            self.progress.finished(self.participant, self.lesson_run.lesson.id, score)
        except ProgressError as exc:
            self.notify(str(exc), severity="error", timeout=10)
        self.notify(f"Skor {score.right}/{score.total} tersimpan untuk {self.participant}", title="Pelajaran selesai", timeout=8)
        self._show_guidance()
        self.leave_lesson()

    def action_leave_lesson(self) -> None:
        self.leave_lesson()

    @work(exclusive=True, group="lesson")
    async def leave_lesson(self) -> None:
        """Take the counter away, stop the lesson's network and show the list again."""
        sandbox, self.sandbox, self.lesson_run = self.sandbox, None, None
        await self.recompose()  # the counter's widgets go, and the network jobs they ran
        await _stop(sandbox)
        self.show_lessons()

    async def _close_sandbox(self) -> None:
        sandbox, self.sandbox, self.lesson_run = self.sandbox, None, None
        await _stop(sandbox)


async def _stop(sandbox: Sandbox | None) -> None:
    if sandbox is None:
        return
    try:
        await sandbox.stop()
    except Exception:  # noqa: BLE001 - leaving must not fail for a stop that did
        log.exception("lesson network did not stop cleanly")
