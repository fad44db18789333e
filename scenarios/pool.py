"""Many scenario files at once: each on its own network, up to `jobs` in parallel.

With one job the scenarios play one after the other in this process. With more, each plays in
a worker process of its own pool (spawned, so nothing of this process leaks in): every network
has its own ephemeral ports, temporary directory (or PostgreSQL schemas) and clock, so runs do
not meet, and a scenario's seed decides its run wherever it plays. Progress lines come back from
the workers as they happen; results come back in the order of the files.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from .cli import JOBS_MAX
from .loader import ScenarioError, load_scenario
from .runner import RunOptions, ScenarioResult, run_scenario

_DONE = None  # the end of the progress stream

# In a worker: where its progress lines go (set by `_start_worker`).
_worker_lines: Any = None


def default_jobs() -> int:
    """min(cores, 4): a network is a few processes of its own."""
    return max(1, min(os.cpu_count() or 1, 4))


def invalid_result(file: Path, error: ScenarioError, seed: int | None) -> ScenarioResult:
    problems = "; ".join(str(e) for e in error.errors or (error,))
    return ScenarioResult(file.stem, str(file), seed or 0, error=f"invalid scenario file: {problems}")


def play_file(file: Path, options: RunOptions) -> ScenarioResult:
    """Load and play one file; an invalid file is a failed result naming its problems."""
    try:
        scenario = load_scenario(file)
    except ScenarioError as exc:
        return invalid_result(file, exc, options.seed)
    return run_scenario(scenario, str(file), options)


def run_files(files: Sequence[Path], options: RunOptions, jobs: int = 1) -> list[ScenarioResult]:
    """Play every file, up to `jobs` at once; the results in the order of `files`."""
    jobs = max(1, min(jobs, JOBS_MAX, len(files) or 1))
    if jobs == 1:
        return [play_file(file, options) for file in files]
    context = multiprocessing.get_context("spawn")
    lines = context.Queue()
    relay = threading.Thread(target=_relay, args=(lines, options.progress), name="scenario-progress", daemon=True)
    relay.start()
    try:
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker, initargs=(lines,)) as pool:
            worker_options = replace(options, progress=None)
            futures = [pool.submit(_play_in_worker, file, worker_options) for file in files]
            return [_result_of(future, file, options) for future, file in zip(futures, files, strict=True)]
    finally:
        lines.put(_DONE)
        relay.join(timeout=5)


def _result_of(future: Future, file: Path, options: RunOptions) -> ScenarioResult:
    """The worker's result; a worker that died is a failed result, not a crash of the run."""
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - e.g. BrokenProcessPool: the other files still report
        return ScenarioResult(file.stem, str(file), options.seed or 0, error=f"the worker playing it failed: {type(exc).__name__}: {exc}")


def _relay(lines: Any, progress: Callable[[str], None] | None) -> None:
    while (line := lines.get()) is not _DONE:
        if progress is not None:
            progress(line)


def _start_worker(lines: Any) -> None:
    global _worker_lines  # noqa: PLW0603 - one per worker process, set once at its start
    _worker_lines = lines


def _play_in_worker(file: Path, options: RunOptions) -> ScenarioResult:
    return play_file(file, replace(options, progress=_worker_lines.put if _worker_lines is not None else None))
