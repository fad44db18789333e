"""Service processes of scenario networks, forked from a server that has their code loaded.

`sembako up` starts each service as `python -m sembako bank serve ...`: seconds of imports per
process. A scenario network starts two to five services and a suite hundreds, so here each
service is forked from multiprocessing's fork server, which imported the services' modules once
(`PRELOAD`). The child is a process of its own all the same (its pid, ports, data, log; stop,
kill, pause and resume act on it) and runs the very command `sembako bank serve` or `sembako
switch serve` runs, with the environment it is given in place of the runner's and its output
in its log file.

`start` returns a `Forked`, which answers like `subprocess.Popen` (poll, wait, terminate, kill,
send_signal).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# "__main__" first: the fork server imports the main module once, so its children need not
# (multiprocessing imports it again in every child it does not find it in).
PRELOAD = [
    "__main__",
    "bank_penyalur.cli",
    "bank_penyalur.api.app",
    "switch.cli",
    "switch.runtime",
    "switch.ops.app",
    "uvicorn",
]
BANK, SWITCH = "bank", "switch"
JOIN_POLL_S = 0.02

_context: Any = None


def forkserver() -> Any:
    global _context  # noqa: PLW0603 - one fork server per process, made on first use
    if _context is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        _context = context
    return _context


class Forked:
    """A forked service process, answering like `subprocess.Popen`."""

    def __init__(self, process: Any) -> None:
        self._process = process

    @property
    def pid(self) -> int:
        return self._process.pid

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(f"service pid {self.pid}", timeout or 0)
        return self._process.exitcode

    def send_signal(self, signum: int) -> None:
        if self._process.exitcode is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass  # it ended meanwhile

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def start(kind: str, options: dict[str, Any], env: dict[str, str], log_path: Path) -> Forked:
    """Fork a bank (`kind` "bank") or the switch ("switch") serving with `options` (the serve
    command's keyword arguments), environment `env` and its output appended to `log_path`."""
    if kind not in (BANK, SWITCH):
        raise ValueError(f"unknown service kind {kind!r}")
    process = forkserver().Process(target=_serve, args=(kind, options, env, str(log_path)), name=f"scenario-{kind}", daemon=True)
    process.start()
    return Forked(process)


def _serve(kind: str, options: dict[str, Any], env: dict[str, str], log_path: str) -> None:
    """In the child: its own environment and output, then the serve command until SIGTERM."""
    os.environ.clear()
    os.environ.update(env)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"{started} {kind} pid {os.getpid()} serving with {sorted(options)}", flush=True)
    if kind == BANK:
        from bank_penyalur.cli import serve as serve_bank

        serve_bank(**options)
    else:
        from switch.cli import serve as serve_switch

        serve_switch(**options)
    sys.stdout.flush()
