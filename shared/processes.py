"""Stopping child processes: the network's services under `sembako up`, the switch's workers."""

from __future__ import annotations

import subprocess
import time


def stop_processes(processes: list[subprocess.Popen], timeout_s: float) -> None:
    """SIGTERM every one still running at once, wait up to `timeout_s` for all of them, then
    SIGKILL the rest."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        process.terminate()
    deadline = time.monotonic() + timeout_s
    for process in running:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout_s)
