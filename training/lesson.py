"""A lesson being played: a UI-free state machine fed the counter's and the EDC's events.

`LessonRun` holds where the participant is. `feed(event)` takes what happened at the counter
(`training.events` turns the EDC's outcomes and the shop's decisions into `Event`s); when the
event is the one the current step waits for (`until`), the step's outcome guidance (`then`) is
shown and the next step begins. Any other event with a response code is explained all the same
(the RC's text and advice), and the step stays. After the last step come the check questions:
`answer(i, choice)` for each, then `finish()` gives the score.

`due_world()` hands the driver the scenario steps of the current step not played yet (the
world changing as the step begins: a link cut, a card replaced at the bank).
"""

from __future__ import annotations

import enum
import string
from collections.abc import Mapping
from dataclasses import dataclass, field

from scenarios.model import Step
from shared import rc as rc_table
from shared.money import format_idr

from .model import BALANCE, CART_REFUSED, OFFLINE_SALE, PURCHASE, Lesson, LessonStep, Until


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened at the counter or on the EDC."""

    kind: str  # one of training.model.EVENTS
    rc: str | None = None
    approved: bool | None = None
    reversed: bool = False  # a purchase reversed for want of an answer
    refusal: str | None = None  # cart_refused: the rules' code
    reason: str | None = None  # cart_refused: what the cashier read
    card: str | None = None  # card_inserted: the lesson's name of the card, if it is one of them
    amount_idr: int | None = None
    balance_idr: int | None = None


@dataclass(frozen=True, slots=True)
class CardFacts:
    """What guidance texts may say of a card: `{NAME.kks}` and the rest."""

    kks: str
    kks_masked: str
    pin: str
    nik: str
    nama: str


class Phase(enum.Enum):
    STEPS = "steps"
    CHECK = "check"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Guidance:
    """What the guidance panel shows now."""

    lesson: str
    step_number: int  # 1-based; 0 once the steps are done
    step_total: int
    step_title: str
    do_now: str
    happened: str | None = None
    rc_meaning: str | None = None
    kpm_next: str | None = None
    on_track: bool = True  # False: the last event was not what this step waits for
    phase: Phase = Phase.STEPS


@dataclass(frozen=True, slots=True)
class Score:
    right: int
    total: int


TEXT_CHECK = "Semua langkah selesai. Jawab soal penutup: tekan F7 atau tombol \"Soal penutup\"."
TEXT_DONE = "Pelajaran selesai. Tekan Ctrl+L untuk kembali ke daftar pelajaran."


class LessonError(RuntimeError):
    """The lesson was driven out of order (an answer before the check, a question twice)."""


@dataclass
class LessonRun:
    lesson: Lesson
    cards: Mapping[str, CardFacts] = field(default_factory=dict)
    index: int = 0
    phase: Phase = Phase.STEPS
    answers: dict[int, int] = field(default_factory=dict)  # question index -> 1-based choice
    _world_played: set[int] = field(default_factory=set)
    _last: tuple[str | None, str | None, str | None] = (None, None, None)
    _on_track: bool = True

    @property
    def step(self) -> LessonStep | None:
        return self.lesson.steps[self.index] if self.phase is Phase.STEPS else None

    def due_world(self) -> tuple[Step, ...]:
        """The world steps of the current step, once: the driver plays them as the step begins."""
        if self.phase is not Phase.STEPS or self.index in self._world_played:
            return ()
        self._world_played.add(self.index)
        return self.lesson.steps[self.index].world

    def feed(self, event: Event) -> bool:
        """Take one event; True when it ended the current step."""
        step = self.step
        if step is None:
            return False
        if matches(step.until, event):
            then = step.then
            self._last = (
                self.text(then.happened),
                self.text(then.rc) if then.rc else rc_meaning(event.rc),
                self.text(then.kpm_next) if then.kpm_next else rc_advice(event.rc),
            )
            self._on_track = True
            self.index += 1
            if self.index >= len(self.lesson.steps):
                self.phase = Phase.CHECK
            return True
        explained = explain(event)
        if explained is not None:
            self._last = (explained, rc_meaning(event.rc), rc_advice(event.rc))
            self._on_track = False
        return False

    def guidance(self) -> Guidance:
        happened, meaning, kpm_next = self._last
        total = len(self.lesson.steps)
        if self.phase is not Phase.STEPS:
            do_now = TEXT_CHECK if self.phase is Phase.CHECK else TEXT_DONE
            return Guidance(self.lesson.title, 0, total, "Soal penutup", do_now, happened, meaning, kpm_next, True, self.phase)
        step = self.lesson.steps[self.index]
        return Guidance(self.lesson.title, self.index + 1, total, step.title, self.text(step.do), happened, meaning, kpm_next,
                        self._on_track)  # fmt: skip

    def answer(self, question: int, choice: int) -> bool:
        """The participant's choice (1-based) for question `question` (0-based); True if right."""
        if self.phase is not Phase.CHECK:
            raise LessonError("the questions come after the last step")
        if not 0 <= question < len(self.lesson.check):
            raise LessonError(f"no question {question + 1}")
        if not 1 <= choice <= len(self.lesson.check[question].choices):
            raise LessonError(f"no choice {choice} in question {question + 1}")
        self.answers[question] = choice
        return self.lesson.check[question].answer == choice

    def finish(self) -> Score:
        """End the check (every question answered) and give the score."""
        if self.phase is Phase.DONE:
            return self.score()
        missing = [i + 1 for i in range(len(self.lesson.check)) if i not in self.answers]
        if self.phase is not Phase.CHECK or missing:
            raise LessonError(f"questions not answered yet: {missing}" if missing else "the lesson has steps left")
        self.phase = Phase.DONE
        return self.score()

    def score(self) -> Score:
        right = sum(1 for i, q in enumerate(self.lesson.check) if self.answers.get(i) == q.answer)
        return Score(right, len(self.lesson.check))

    def text(self, template: str) -> str:
        """A guidance text with its `{NAME.fact}` placeholders filled (unknown cards: "?")."""
        return string.Formatter().vformat(template, (), _Facts(self.cards))


class _Facts(dict):
    """Placeholders' values: a card not issued yet reads as "?" rather than failing."""

    def __init__(self, cards: Mapping[str, CardFacts]) -> None:
        super().__init__(cards)

    def __missing__(self, key: str) -> CardFacts:
        return CardFacts("?", "?", "?", "?", "?")


def matches(until: Until, event: Event) -> bool:
    """Whether `event` is the one `until` waits for."""
    if event.kind != until.event:
        return False
    if until.rc is not None and event.rc not in until.rc:
        return False
    if until.approved is not None and event.approved != until.approved:
        return False
    if until.reversed is not None and event.reversed != until.reversed:
        return False
    if until.refusal is not None and event.refusal != until.refusal:
        return False
    return until.card is None or event.card == until.card


def rc_meaning(rc: str | None) -> str | None:
    if rc is None:
        return None
    return f"RC {rc}: {rc_table.lookup(rc).text_id}"


def rc_advice(rc: str | None) -> str | None:
    return None if rc is None else rc_table.advice(rc)


def explain(event: Event) -> str | None:
    """What an event the step did not wait for was, in plain words (None: nothing to say)."""
    if event.kind == CART_REFUSED:
        return f"Barang ditolak: {event.reason or event.refusal}. Ikuti langkah yang diminta."
    if event.rc is None:
        return None
    what = {BALANCE: "Cek saldo", PURCHASE: "Pembayaran", OFFLINE_SALE: "Penjualan offline"}.get(event.kind, "Transaksi")
    result = "disetujui" if event.approved else "ditolak"
    if event.reversed:
        result = "tidak terjawab dan dibatalkan otomatis (reversal)"
    balance = f", saldo {format_idr(event.balance_idr)}" if event.balance_idr is not None else ""
    return f"{what} {result} (RC {event.rc}{balance}). Ini belum langkah yang diminta: ikuti petunjuk di atas."
