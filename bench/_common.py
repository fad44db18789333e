"""Helpers shared by the benchmark scripts: free ports, child processes, percentiles, RSS."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_bank(bank: str, port: int, data_dir: str, database_url: str | None, env: dict | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "sembako", "bank", "serve", "--bank", bank, "--port", str(port), "--data-dir", data_dir]
    if database_url:
        command += ["--database-url", database_url]
    return subprocess.Popen(command, env={**os.environ, **(env or {})})


def wait_healthy(url: str, timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{url}/health", timeout=1.0)
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not healthy after {timeout_s} s")


def stop(process: subprocess.Popen, timeout_s: float = 10.0) -> None:
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, int(round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process `pid` has used so far (Linux /proc), 0.0 elsewhere.

    Quoted per request beside throughput: unlike requests per second it does not depend on
    what else the machine runs at the time."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
