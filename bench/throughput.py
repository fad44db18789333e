"""End-to-end purchases through the whole network, with the CPU each part spends per purchase.

Starts `sembako up --app none` on a fresh data directory (SQLite), or on a fresh PostgreSQL
database created for the run and dropped after it (--database-url names the server), waits
for it, then:

1. `pgbench -N` against that server for 10 s (PostgreSQL only, when pgbench is installed): the
   reference the throughput goals are stated against;
2. closed loop: `sembako bench purchase --concurrency C` for S seconds (approved purchases per
   second, p50/p99);
3. open loop: the same at --rate R purchases per second offered (p99 at that load);

and reads the CPU time (user + system, /proc) of the switch, the banks, the PostgreSQL server
processes and the load generator over each run: CPU per purchase does not depend on what else
the machine does, throughput does. --code DIR runs another checkout of the project (e.g. a
`git worktree` of an earlier commit) with the same load generator, for before/after figures.

    python bench/throughput.py                                   # SQLite
    python bench/throughput.py --database-url postgresql://postgres@127.0.0.1:5432/test
    python bench/throughput.py --database-url ... --bank-workers 2 --switch-workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import cpu_seconds, machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OPS_HEALTH = "http://127.0.0.1:8000/health"
START_TIMEOUT_S = 180.0
PGBENCH_SECONDS = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="A PostgreSQL server (a database is created and dropped); default SQLite")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=400.0, help="Offered purchases per second of the open-loop run (0: skip)")
    parser.add_argument("--kpm", type=int, default=1_000)
    parser.add_argument("--code", type=Path, default=ROOT, help="The checkout whose network runs (default: this one)")
    parser.add_argument("--bank-workers", type=int, default=1, help="Processes per bank (above 1: PostgreSQL)")
    parser.add_argument("--switch-workers", type=int, default=1, help="Switch processes (above 1: PostgreSQL)")
    args = parser.parse_args()
    if not 0 < args.seconds <= 300:
        parser.error("--seconds must be in (0, 300]")
    if not (args.code / "sembako").is_dir():
        parser.error(f"--code {args.code}: not a checkout of this project")
    print(json.dumps(run(args)))


def run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="sembako-throughput-") as data_dir, scratch_database(args.database_url) as url:
        workers = {"bank_workers": args.bank_workers, "switch_workers": args.switch_workers}
        network = start_network(args.code, Path(data_dir), url, args.kpm, **workers)
        try:
            result: dict = {"bench": "throughput", "database": "postgresql" if url else "sqlite", "code": str(args.code), **workers}
            if url:
                result["pgbench_n_tps"] = pgbench(url)
            database = url.rsplit("/", 1)[1] if url else None
            closed = ["--seconds", str(args.seconds), "--concurrency", str(args.concurrency), "--kpm", str(args.kpm)]
            result["closed_loop"] = measured(network, data_dir, database, closed)
            if args.rate:
                opened = ["--seconds", str(args.seconds), "--concurrency", "256", "--rate", str(args.rate), "--kpm", str(args.kpm)]
                result["open_loop"] = measured(network, data_dir, database, opened)
        finally:
            stop_network(network)
    return result | {"machine": machine()}


class scratch_database:  # noqa: N801 - used as a context manager, like tempfile's
    """A fresh PostgreSQL database on the server `url` names (None: SQLite, nothing to do)."""

    def __init__(self, url: str | None) -> None:
        self.server = url
        self.name = f"sembako_bench_{uuid.uuid4().hex[:10]}"

    def __enter__(self) -> str | None:
        if not self.server:
            return None
        self._admin(f'CREATE DATABASE "{self.name}"')
        return self.server.rsplit("/", 1)[0] + "/" + self.name

    def __exit__(self, *_: object) -> None:
        if self.server:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def _admin(self, sql: str) -> None:
        import psycopg

        from shared.db import normalise_url

        plain = normalise_url(self.server).replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)


def start_network(code: Path, data_dir: Path, url: str | None, kpm: int, bank_workers: int = 1, switch_workers: int = 1) -> subprocess.Popen:
    command = [sys.executable, "-m", "sembako", "up", "--app", "none", "--data-dir", str(data_dir), "--kpm", str(kpm)]
    if url:
        command += ["--database-url", url]
    if bank_workers > 1:
        command += ["--bank-workers", str(bank_workers)]
    if switch_workers > 1:
        command += ["--switch-workers", str(switch_workers)]
    log = (data_dir / "up.out").open("wb")
    network = subprocess.Popen(command, cwd=code, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if network.poll() is not None:
            raise RuntimeError(f"the network exited with {network.returncode}: see {data_dir / 'up.out'}")
        try:
            if httpx.get(OPS_HEALTH, timeout=1.0).status_code == 200 and "Ctrl-C stops" in (data_dir / "up.out").read_text():
                return network
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_network(network)
    raise TimeoutError(f"the network did not start within {START_TIMEOUT_S:.0f} s")


def stop_network(network: subprocess.Popen) -> None:
    if network.poll() is None:
        network.send_signal(signal.SIGINT)
        try:
            network.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(network.pid, signal.SIGKILL)
            network.wait()


def pgbench(url: str) -> float | None:
    """`pgbench -N` tps on the scratch database (initialised for it), or None without pgbench."""
    if shutil.which("pgbench") is None:
        return None
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    subprocess.run(["pgbench", "-i", "-q", plain], check=True, capture_output=True, timeout=120)
    out = subprocess.run(["pgbench", "-N", "-c", "8", "-j", "2", "-T", str(PGBENCH_SECONDS), plain], check=True, capture_output=True, text=True, timeout=120).stdout
    line = next(line for line in out.splitlines() if line.startswith("tps"))
    return round(float(line.split("=")[1].split()[0]), 1)


def measured(network: subprocess.Popen, data_dir: str, database: str | None, options: list[str]) -> dict:
    """One `sembako bench purchase` run with the CPU each part used per request."""
    parts_before = cpu_by_part(network.pid, database)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    command = [sys.executable, "-m", "sembako", "bench", "purchase", "--json", "--data-dir", data_dir, *options]
    out = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True, timeout=600).stdout
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    parts_after = cpu_by_part(network.pid, database)
    result = json.loads(out.strip().splitlines()[-1])
    used_s = {part: parts_after.get(part, 0.0) - parts_before.get(part, 0.0) for part in parts_after}
    used_s["load generator"] = (children_after.ru_utime + children_after.ru_stime) - (children_before.ru_utime + children_before.ru_stime)
    requests = max(result["requests"], 1)
    result["cpu_ms_per_request"] = {part: round(seconds * 1000 / requests, 3) for part, seconds in used_s.items()}
    result["cpu_ms_per_request"]["total"] = round(sum(used_s.values()) * 1000 / requests, 3)
    return result


# PostgreSQL's own processes, which work for every database of the server.
PG_SHARED = ("walwriter", "checkpointer", "background writer", "autovacuum", "logical replication", "stats")


def cpu_by_part(root_pid: int, database: str | None) -> dict[str, float]:
    """CPU seconds so far of the switch, the banks (together) and, on PostgreSQL, the server
    processes of `database` and the server's shared ones."""
    parts = {"switch": 0.0, "banks": 0.0}
    if database:
        parts["postgresql"] = 0.0
    for pid in (int(name) for name in os.listdir("/proc") if name.isdigit()):
        command = _command(pid)
        service = _service_of(pid, root_pid)  # a worker process counts for the service that started it
        if service is not None:
            parts[service] += cpu_seconds(pid)
        elif database and command.startswith("postgres:") and (f" {database} " in command or any(p in command for p in PG_SHARED)):
            parts["postgresql"] += cpu_seconds(pid)
    return parts


_SERVICES = {"sembako switch serve": "switch", "sembako bank serve": "banks"}


def _service_of(pid: int, root_pid: int) -> str | None:
    """"switch" or "banks" for a process of the network under `root_pid` that is one of those
    services or a worker it started; None for anything else."""
    service = None
    for _ in range(16):
        if pid == root_pid:
            return service
        if service is None:
            command = _command(pid)
            service = next((name for marker, name in _SERVICES.items() if marker in command), None)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            return None
        if pid <= 1:
            return None
    return None


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


if __name__ == "__main__":
    main()
