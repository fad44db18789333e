"""Every lesson's sandbox starts as a pendamping would start it: its own network, its cards in
their situations, its terminal signed on over its link (VSAT loses frames), the setup played, and
then every world step of its lesson steps (a card replaced, the signal lost) played in order. The
sandbox leaves nothing behind."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from training.lesson import Event
from training.loader import load_lessons
from training.model import Lesson
from training.sandbox import Sandbox

LESSONS = load_lessons()
LESSON_TIMEOUT_S = 120.0


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.id)
def test_the_lessons_world_plays_on_its_sandbox(lesson: Lesson, tmp_path: Path) -> None:
    events: list[Event] = []

    async def play() -> tuple[set[str], str]:
        sandbox = Sandbox(lesson, events.append, tmp_root=tmp_path)
        try:
            await sandbox.start()
            assert sandbox.counter is not None and sandbox.edc is not None
            for step in lesson.steps:
                await sandbox.play_world(step.world)
            return set(sandbox.cards), sandbox.edc.core.terminal.tid
        finally:
            await sandbox.stop()

    cards, tid = asyncio.run(asyncio.wait_for(play(), LESSON_TIMEOUT_S))
    assert {person.card_name for person in lesson.people} <= cards
    assert tid == lesson.terminal_id
    assert list(tmp_path.iterdir()) == []  # the temporary network is gone
