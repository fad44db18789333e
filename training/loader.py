"""Lesson files: YAML to `Lesson` models, every problem naming the file, line and key.

The YAML is read as scenario files are (`scenarios.loader.read_yaml`: positions kept, anchors,
merge keys and duplicate keys refused, size and depth bounded), then validated by the pydantic
models, then cross-checked: the world's references as the scenario loader checks them, world
steps that would use the EDC (the participant's), the KPM card, card names in events and in
`{NAME.fact}` placeholders, and each question's answer number.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from scenarios.loader import FILE_BYTES_MAX, ScenarioError, _message, _meaningful, _Problem, _YamlProblems, locate, read_yaml
from scenarios.references import reference_problems
from scenarios.values import shown

from .model import CARD_FACTS, Lesson, terminal_actions_in

LESSONS_DIR = Path(__file__).parent / "lessons"
ERRORS_MAX = 50
Loc = tuple[str | int, ...]


class LessonError(ScenarioError):
    """A problem of a lesson file: `file:line:col: path: message`; `errors` holds all of them."""


def lesson_errors(text: str, file: str = "<text>") -> tuple[Lesson | None, list[LessonError]]:
    """The lesson of `text` and no errors, or None and every error (at most ERRORS_MAX)."""
    errors: list[LessonError] = []
    if len(text.encode("utf-8")) > FILE_BYTES_MAX:
        return None, [LessonError(file, None, None, "", f"too large: a lesson file is at most {FILE_BYTES_MAX} bytes")]
    try:
        data, pos = read_yaml(text)
    except _Problem as problem:
        return None, [_at(file, problem)]
    except _YamlProblems as many:
        return None, [_at(file, problem) for problem in many.problems[:ERRORS_MAX]]
    if not isinstance(data, dict):
        line, column = pos.mark
        return None, [LessonError(file, line, column, "", f"a lesson is a mapping (id, title, network, steps, ...); got {shown(data)}")]
    try:
        lesson = Lesson.model_validate(data)
    except ValidationError as exc:
        for error in _meaningful(exc.errors(include_url=False))[:ERRORS_MAX]:
            errors.append(LessonError(file, *locate(pos, error["loc"]), _lesson_message(error)))
        return None, sorted(errors, key=lambda e: (e.line or 0, e.column or 0))
    for loc, message in cross_problems(lesson)[:ERRORS_MAX]:
        errors.append(LessonError(file, *locate(pos, loc), message))
    if errors:
        return None, sorted(errors, key=lambda e: (e.line or 0, e.column or 0))
    return lesson, []


def _at(file: str, problem: _Problem) -> LessonError:
    mark = problem.mark
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
    return LessonError(file, line, column, "", problem.message)


def _lesson_message(error: dict[str, Any]) -> str:
    """The scenario loader's wording; unknown keys name the keys a lesson allows there."""
    return _message(error, Lesson)


def cross_problems(lesson: Lesson) -> list[tuple[Loc, str]]:
    """What the models cannot see field by field (locations as the file's keys)."""
    problems: list[tuple[Loc, str]] = []
    if len(lesson.network.terminals) != 1:
        problems.append((("network", "terminals"), "a lesson has exactly one terminal: the participant's EDC"))
    where = lesson.world_steps()
    for loc, step in where:
        action = terminal_actions_in(step)
        if action is not None:
            problems.append(((*loc, action), f"'{action}' uses the EDC, which is the participant's: a lesson's world steps "
                             "change the world (disburse, card actions, links, services, advance, wait)"))
    for problem in reference_problems(lesson.scenario()):
        loc = problem.loc
        if loc and loc[0] == "steps" and isinstance(loc[1], int) and loc[1] < len(where):
            loc = (*where[loc[1]][0], *loc[2:])
        problems.append((loc, problem.message))
    cards = lesson.card_names()
    if lesson.kpm not in {card.card_name for card in lesson.people}:
        problems.append((("kpm",), f"card {lesson.kpm} is not in people"))
    for index, step in enumerate(lesson.steps):
        if step.until.card is not None and step.until.card not in cards:
            problems.append((("steps", index, "until", "card"), f"card {step.until.card} is not defined in people or by a replace step"))
    for loc, text in lesson.texts():
        problems += [(loc, message) for message in placeholder_problems(text, cards)]
    for index, question in enumerate(lesson.check):
        if question.answer > len(question.choices):
            problems.append((("check", index, "answer"), f"answer {question.answer} but there are {len(question.choices)} choices"))
    return problems


def placeholder_problems(text: str, cards: set[str]) -> list[str]:
    """Problems of the `{NAME.fact}` fields of a guidance text."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError as exc:
        return [f"a brace without its pair in the text ({exc}): write {{NAME.fact}}, e.g. {{siti.kks}}"]
    problems = []
    for field in fields:
        name, _, fact = field.partition(".")
        if name not in cards or fact not in CARD_FACTS:
            problems.append(f"unknown placeholder {{{field}}}: write {{NAME.fact}} with a card of the lesson and a fact "
                            f"out of {', '.join(CARD_FACTS)}")
    return problems


def parse_lesson(text: str, file: str = "<text>") -> Lesson:
    """The lesson in `text`; raises LessonError (the first problem, `.errors` all of them)."""
    lesson, errors = lesson_errors(text, file)
    if errors:
        first = errors[0]
        first.errors = tuple(errors)
        raise first
    assert lesson is not None  # noqa: S101 - no errors means a lesson
    return lesson


def load_lesson(path: str | Path) -> Lesson:
    """The lesson in the file at `path`; raises LessonError."""
    file = str(path)
    try:
        raw = Path(path).read_bytes()[: FILE_BYTES_MAX + 1]
        text = raw.decode("utf-8")
    except OSError as exc:
        raise LessonError(file, None, None, "", f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise LessonError(file, None, None, "", f"not UTF-8 text (byte {exc.start})") from None
    return parse_lesson(text, file)


def load_lessons(directory: Path = LESSONS_DIR) -> list[Lesson]:
    """Every lesson of `directory` (*.yaml), in their `order`; raises LessonError for the first
    broken file, and for two lessons with one id."""
    lessons = [load_lesson(path) for path in sorted(directory.glob("*.yaml"))]
    seen: dict[str, str] = {}
    for lesson in lessons:
        if lesson.id in seen:
            raise LessonError(str(directory / f"{lesson.id}.yaml"), None, None, "id", f"lesson id {lesson.id} is used twice")
        seen[lesson.id] = lesson.id
    return sorted(lessons, key=lambda lesson: (lesson.order, lesson.id))
