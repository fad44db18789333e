"""`sembako training [--participant NAME] [--data-dir DIR]`: the lessons in the cashier app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DEFAULT_DATA_DIR = Path("~/.sembako-training")


def training_command(
    participant: Annotated[str | None, typer.Option("--participant", help="The participant's name (asked on the first screen if not given)")] = None,
    data_dir: Annotated[Path, typer.Option("--data-dir", envvar="SEMBAKO_TRAINING_DIR",
                                           help="Where progress is kept (never a network's data)")] = DEFAULT_DATA_DIR,
    lessons_dir: Annotated[Path | None, typer.Option("--lessons", help="Lesson files (default: the built-in lessons)")] = None,
) -> None:
    """Guided lessons for pendamping: each on its own sandbox network, in the cashier app, with progress per participant."""
    from shared.clock import SystemClock

    from .app import TrainingApp
    from .loader import LESSONS_DIR, LessonError, load_lessons
    from .progress import ProgressStore, participant_error

    if participant is not None and (problem := participant_error(participant)) is not None:
        raise typer.BadParameter(problem, param_hint="--participant")
    try:
        lessons = load_lessons(lessons_dir or LESSONS_DIR)
    except LessonError as exc:
        typer.echo(f"Pelajaran rusak: {exc}", err=True)
        raise typer.Exit(1) from None
    if not lessons:
        typer.echo(f"Tidak ada pelajaran di {lessons_dir}", err=True)
        raise typer.Exit(1)
    clock = SystemClock()
    store = ProgressStore(data_dir.expanduser(), clock)
    name = " ".join(participant.split()) if participant else None
    TrainingApp(lessons, store, name, clock).run()
