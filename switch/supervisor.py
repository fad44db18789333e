"""The parent of `sembako switch serve --workers N`: prepares the database once, starts N worker
processes (each `switch serve` with its index in SEMBAKO_SWITCH_WORKER_INDEX), restarts a worker
that dies (logged, at most once per RESTART_DELAY_S), and stops them all on SIGTERM or SIGINT.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass

from shared.processes import stop_processes
from switch.settings import SwitchSettings

log = logging.getLogger("switch.supervisor")

POLL_S = 0.5
RESTART_DELAY_S = 1.0
STOP_TIMEOUT_S = 10.0
_PR_SET_PDEATHSIG = 1


@dataclass
class Worker:
    index: int
    command: list[str]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0

    def start(self) -> None:
        from switch.cli import WORKER_INDEX_ENV

        env = {**os.environ, WORKER_INDEX_ENV: str(self.index)}
        self.process = subprocess.Popen(self.command, env=env, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        self.started_at = time.monotonic()


def _die_with_parent() -> None:
    """In the child: SIGTERM when the supervisor dies, even by SIGKILL (Linux; elsewhere a no-op)."""
    try:
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def prepare_database(settings: SwitchSettings) -> None:
    """Migrate and register the terminals once, before any worker starts (workers then find the
    schema at its head and every terminal known)."""
    from switch.runtime import SwitchRuntime

    runtime = SwitchRuntime(settings)
    try:
        runtime.check_storage()
    finally:
        runtime.db.dispose()


def supervise_workers(settings: SwitchSettings, command: list[str], stop: threading.Event | None = None) -> int:
    """Run `settings.workers` workers until SIGTERM/SIGINT (or `stop`); returns the exit status."""
    prepare_database(settings)
    stop = stop or threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    workers = [Worker(i, command) for i in range(settings.workers)]
    for worker in workers:
        worker.start()
    log.info("switch: %d workers on ISO port %d", len(workers), settings.iso_port)
    try:
        while not stop.wait(POLL_S):
            for worker in workers:
                _restart_if_dead(worker)
    finally:
        stop_workers(workers)
    return 0


def _restart_if_dead(worker: Worker) -> None:
    assert worker.process is not None
    code = worker.process.poll()
    if code is None or time.monotonic() - worker.started_at < RESTART_DELAY_S:
        return
    worker.restarts += 1
    log.error("switch worker %d exited with %s; restarting it (restart %d)", worker.index, code, worker.restarts)
    worker.start()


def stop_workers(workers: list[Worker]) -> None:
    """SIGTERM to every worker, then SIGKILL to those still running after STOP_TIMEOUT_S."""
    stop_processes([w.process for w in workers if w.process is not None], STOP_TIMEOUT_S)
