"""How long a bank takes to answer the offline card list (`GET /v1/offline/card-list`) that a
terminal loads at sign-on, for a bank of N KPM (one uvicorn worker, over HTTP).

Seeds a fresh bank (SQLite in a temp dir, or a fresh PostgreSQL schema with --database-url),
starts `sembako bank serve` as a child process, asks for the list R times with the switch's
credential and prints JSON: median, p99 and maximum seconds, cards listed and the answer's size.

    python bench/offline_list.py --kpm 10000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import free_port, machine, percentile, start_bank, stop, wait_healthy  # noqa: E402
from bench.bank_purchase import prepare  # noqa: E402
from bank_penyalur.settings import BankSettings  # noqa: E402
from shared.credentials import SWITCH  # noqa: E402

PATH = "/v1/offline/card-list"
TIMEOUT_S = 30.0
REQUESTS_MAX = 1_000


def measure(url: str, credential: str, requests: int) -> dict:
    durations_s: list[float] = []
    with httpx.Client(timeout=TIMEOUT_S, headers={"Authorization": f"Bearer {credential}"}) as client:
        client.get(f"{url}{PATH}").raise_for_status()  # warm-up
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get(f"{url}{PATH}")
            durations_s.append(time.perf_counter() - started)
            response.raise_for_status()
    listed = response.json()
    durations_s.sort()
    return {
        "requests": requests,
        "median_s": round(statistics.median(durations_s), 3),
        "p99_s": round(percentile(durations_s, 0.99), 3),
        "max_s": round(durations_s[-1], 3),
        "ids_listed": len(listed["ids"]),
        "hot_listed": len(listed["hot"]),
        "answer_bytes": len(response.content),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bank", default="bni")
    parser.add_argument("--kpm", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args()
    if not 0 < args.requests <= REQUESTS_MAX:
        parser.error(f"--requests must be within 1..{REQUESTS_MAX}")

    with tempfile.TemporaryDirectory(prefix="sembako-bench-") as data_dir:
        schema = f"bench_{uuid.uuid4().hex[:10]}" if args.database_url else None
        prepare(args.bank, data_dir, args.database_url, schema, args.kpm)
        port = free_port()
        server = start_bank(args.bank, port, data_dir, args.database_url, {"SEMBAKO_BANK_DB_SCHEMA": schema} if schema else {})
        try:
            url = f"http://127.0.0.1:{port}"
            health = wait_healthy(url)
            result = measure(url, BankSettings(bank=args.bank).credential(SWITCH), args.requests)
        finally:
            stop(server)
            if schema:
                from bank_penyalur.runtime import database_for

                database_for(BankSettings(bank=args.bank, database_url=args.database_url, db_schema=schema)).drop_schema()
    print(json.dumps({"bench": "offline_list", "database": health["database"], "kpm": args.kpm, **result, "machine": machine()}))


if __name__ == "__main__":
    main()
