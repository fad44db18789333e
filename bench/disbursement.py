"""Monthly disbursement of N KPM: wall time and peak RSS of `sembako disburse`, plus a re-run.

Seeds a fresh bank with N generated KPM (timed separately), then runs the disbursement as its
own process so that its peak RSS is measured alone. Prints JSON.

    python bench/disbursement.py --kpm 1000000
    python bench/disbursement.py --kpm 1000000 --database-url postgresql+psycopg://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import machine  # noqa: E402
from bank_penyalur.demo import generator  # noqa: E402
from bank_penyalur.runtime import BankRuntime, database_for  # noqa: E402
from bank_penyalur.settings import BankSettings  # noqa: E402

PERIOD = "2026-11"


def seed(settings: BankSettings, kpm: int) -> float:
    started = time.perf_counter()
    runtime = BankRuntime.start(settings)
    try:
        generator.seed(runtime.db, runtime.bank, runtime.hsm, runtime.clock, kpm=kpm)
    finally:
        runtime.close()
    return time.perf_counter() - started


def run_disburse(bank: str, data_dir: str, database_url: str | None, schema: str | None) -> tuple[dict, float, int]:
    """(report, wall seconds, peak RSS in MiB) of one `sembako disburse` process."""
    command = [sys.executable, "-m", "sembako", "disburse", "--period", PERIOD, "--bank", bank, "--data-dir", data_dir, "--json"]
    if database_url:
        command += ["--database-url", database_url]
    env = {**os.environ, **({"SEMBAKO_BANK_DB_SCHEMA": schema} if schema else {})}
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)  # reap it ourselves to get its own rusage
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"disburse failed: {os.waitstatus_to_exitcode(status)}")
    peak_kib = usage.ru_maxrss
    return json.loads(out), elapsed, peak_kib // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bank", default="bni")
    parser.add_argument("--kpm", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sembako-disburse-") as data_dir:
        schema = f"bench_{uuid.uuid4().hex[:10]}" if args.database_url else None
        settings = BankSettings(bank=args.bank, data_dir=Path(data_dir), database_url=args.database_url, db_schema=schema)
        try:
            seed_s = seed(settings, args.kpm)
            first, first_s, first_rss = run_disburse(args.bank, data_dir, args.database_url, schema)
            again, again_s, again_rss = run_disburse(args.bank, data_dir, args.database_url, schema)
        finally:
            if schema:
                database_for(settings).drop_schema()
    print(json.dumps({
        "bench": "disbursement",
        "database": "postgresql" if args.database_url else "sqlite",
        "kpm": args.kpm,
        "seed_s": round(seed_s, 1),
        "disburse_s": round(first_s, 2),
        "credited": first["credited"],
        "failed_no_emoney": first["failed"],
        "peak_rss_mib": first_rss,
        "rerun_s": round(again_s, 2),
        "rerun_credited": again["credited"],
        "rerun_peak_rss_mib": again_rss,
        "machine": machine(),
    }))


if __name__ == "__main__":
    main()
