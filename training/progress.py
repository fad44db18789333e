"""Progress per participant: which lessons were started, which finished and with what score.

A small JSON file under the training data directory (`~/.sembako-training/progress.json` by
default), never in a network's data. Each change is a locked read-modify-write (several browser
sessions of `sembako serve` share the file) and lands by an atomic rename.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from shared.clock import Clock

from .lesson import Score

FILE_NAME = "progress.json"
LOCK_TIMEOUT_S = 5.0
LOCK_POLL_S = 0.05
FILE_BYTES_MAX = 4 * 1024 * 1024
PARTICIPANTS_MAX = 10_000
NAME_CHARS_MAX = 40
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 .'\-]*$")
STARTED, DONE = "started", "done"


class ProgressError(RuntimeError):
    """The progress file cannot be read or written (the message is for the participant)."""


def participant_error(name: str) -> str | None:
    """Why `name` cannot be a participant's name (Indonesian), or None."""
    name = name.strip()
    if not name:
        return "Nama peserta wajib diisi"
    if len(name) > NAME_CHARS_MAX:
        return f"Nama peserta paling banyak {NAME_CHARS_MAX} karakter"
    if not NAME_PATTERN.fullmatch(name):
        return "Nama peserta hanya boleh berisi huruf, angka, spasi, titik, tanda petik dan tanda hubung"
    return None


@dataclass(frozen=True, slots=True)
class LessonProgress:
    status: str  # started | done
    attempts: int
    right: int | None = None  # the last finished attempt's score
    total: int | None = None
    best_right: int | None = None
    updated_at: str = ""

    def label(self) -> str:
        """The status as the lesson list shows it."""
        if self.status == DONE and self.right is not None:
            return f"selesai, skor {self.right}/{self.total}"
        return "sedang dipelajari"


class ProgressStore:
    """Progress of every participant in `data_dir`."""

    def __init__(self, data_dir: Path, clock: Clock) -> None:
        self.data_dir = data_dir
        self.path = data_dir / FILE_NAME
        self.clock = clock

    def of(self, participant: str) -> dict[str, LessonProgress]:
        """Lesson id -> progress of `participant` (nothing for a new participant)."""
        entry = self._read().get(_key(participant), {})
        return {lesson: LessonProgress(**value) for lesson, value in entry.get("lessons", {}).items()}

    def started(self, participant: str, lesson_id: str) -> None:
        with self._change() as data:
            lessons = _lessons(data, participant)
            old = lessons.get(lesson_id)
            progress = LessonProgress(**old) if old else LessonProgress(STARTED, 0)
            status = DONE if progress.status == DONE else STARTED  # a finished lesson stays finished
            lessons[lesson_id] = asdict(_replace(progress, status=status, attempts=progress.attempts + 1, updated_at=self._now()))

    def finished(self, participant: str, lesson_id: str, score: Score) -> LessonProgress:
        with self._change() as data:
            lessons = _lessons(data, participant)
            old = lessons.get(lesson_id)
            progress = LessonProgress(**old) if old else LessonProgress(STARTED, 1)
            best = max(score.right, progress.best_right or 0)
            done = _replace(progress, status=DONE, right=score.right, total=score.total, best_right=best, updated_at=self._now())
            lessons[lesson_id] = asdict(done)
            return done

    def _now(self) -> str:
        return self.clock.now().isoformat(timespec="seconds")

    # -- the file ------------------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        try:
            with self.path.open("rb") as handle:
                raw = handle.read(FILE_BYTES_MAX + 1)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ProgressError(f"Catatan kemajuan tidak dapat dibaca: {exc.strerror or exc}") from None
        if len(raw) > FILE_BYTES_MAX:
            raise ProgressError(f"Catatan kemajuan {self.path} terlalu besar")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ProgressError(f"Catatan kemajuan {self.path} rusak: perbaiki atau pindahkan berkas itu") from None
        if not isinstance(data, dict):
            raise ProgressError(f"Catatan kemajuan {self.path} rusak: perbaiki atau pindahkan berkas itu")
        return data

    @contextmanager
    def _change(self) -> Iterator[dict[str, Any]]:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProgressError(f"Folder data pelatihan tidak dapat dibuat: {exc.strerror or exc}") from None
        with _locked(self.data_dir / f"{FILE_NAME}.lock"):
            data = self._read()
            yield data
            if len(data) > PARTICIPANTS_MAX:
                raise ProgressError("Terlalu banyak peserta dalam satu folder data pelatihan")
            temporary = self.path.with_suffix(".json.tmp")
            temporary.write_text(json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(temporary, self.path)


def _key(participant: str) -> str:
    return " ".join(participant.split()).casefold()


def _lessons(data: dict[str, Any], participant: str) -> dict[str, Any]:
    entry = data.setdefault(_key(participant), {"name": participant.strip(), "lessons": {}})
    return entry.setdefault("lessons", {})


def _replace(progress: LessonProgress, **changes: Any) -> LessonProgress:
    return LessonProgress(**(asdict(progress) | changes))


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path`, waited for at most LOCK_TIMEOUT_S."""
    with path.open("a") as handle:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ProgressError("Catatan kemajuan sedang dipakai sesi lain; coba lagi") from None
                time.sleep(LOCK_POLL_S)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
