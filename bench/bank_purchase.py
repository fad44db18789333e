"""Purchases per second against one bank instance over HTTP (one uvicorn worker).

Seeds a fresh bank (SQLite in a temp dir, or a fresh PostgreSQL schema with --database-url),
funds it, starts `sembako bank serve` as a child process and drives it with C concurrent
keep-alive clients for S seconds, spreading purchases over many demo cards. Prints JSON.

    python bench/bank_purchase.py --seconds 20 --concurrency 32
    python bench/bank_purchase.py --database-url postgresql+psycopg://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import free_port, machine, percentile, start_bank, stop, wait_healthy  # noqa: E402
from shared.banks import get_bank  # noqa: E402
from bank_penyalur.demo import fixture, generator  # noqa: E402
from bank_penyalur.disburse import disburse  # noqa: E402
from bank_penyalur.runtime import BankRuntime  # noqa: E402
from bank_penyalur.settings import BankSettings  # noqa: E402

AMOUNT_IDR = 1_000
PERIOD = "2026-11"


def prepare(bank: str, data_dir: str, database_url: str | None, schema: str | None, kpm: int) -> list[dict]:
    settings = BankSettings(bank=bank, data_dir=Path(data_dir), database_url=database_url, db_schema=schema)
    runtime = BankRuntime.start(settings)
    try:
        generator.seed(runtime.db, runtime.bank, runtime.hsm, runtime.clock, kpm=kpm)
        disburse(runtime.db, runtime.clock, PERIOD, 150_000)
        cards = [generator.generated_kpm(runtime.bank, i) for i in range(kpm)]
        spendable = [c for c in cards if c.spendable]
        return [{"pan": c.pan, "pin_block": runtime.hsm.encipher_pin(c.pan, c.pin)} for c in spendable]
    finally:
        runtime.close()


async def drive(url: str, cards: list[dict], merchant_id: str, seconds: float, concurrency: int) -> dict:
    latencies_ms: list[float] = []
    counts = {"approved": 0, "declined": 0, "errors": 0}
    today = date.today().isoformat()
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(index: int, client: httpx.AsyncClient) -> None:
        sequence = 0
        while time.monotonic() < deadline:
            card = cards[(index + sequence * concurrency) % len(cards)]
            sequence += 1
            body = {
                "terminal_id": f"B{index:07d}",
                "stan": f"{sequence % 1_000_000:06d}",
                "transmission_date": today,
                "merchant_id": merchant_id,
                "amount_idr": AMOUNT_IDR,
                **card,
            }
            started = time.perf_counter()
            try:
                response = await client.post("/v1/authorisations/purchase", json=body)
                rc = response.json()["rc"] if response.status_code == 200 else None
            except (httpx.HTTPError, ValueError):
                rc = None
            latencies_ms.append((time.perf_counter() - started) * 1000)
            counts["approved" if rc == "00" else "declined" if rc else "errors"] += 1

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10.0) as client:
        started = time.monotonic()
        await asyncio.gather(*(worker(i, client) for i in range(concurrency)))
        elapsed = time.monotonic() - started
    latencies_ms.sort()
    return {
        "seconds": round(elapsed, 2),
        "requests": len(latencies_ms),
        "tps": round(counts["approved"] / elapsed, 1),
        "p50_ms": round(percentile(latencies_ms, 0.50), 2),
        "p99_ms": round(percentile(latencies_ms, 0.99), 2),
        **counts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bank", default="bni")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--kpm", type=int, default=5_000, help="Cards to spread purchases over")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args()
    if not 0 < args.seconds <= 600:
        parser.error("--seconds must be in (0, 600]")

    with tempfile.TemporaryDirectory(prefix="sembako-bench-") as data_dir:
        schema = f"bench_{uuid.uuid4().hex[:10]}" if args.database_url else None
        cards = prepare(args.bank, data_dir, args.database_url, schema, args.kpm)
        port = free_port()
        env = {"SEMBAKO_BANK_DB_SCHEMA": schema} if schema else {}
        server = start_bank(args.bank, port, data_dir, args.database_url, env)
        try:
            url = f"http://127.0.0.1:{port}"
            health = wait_healthy(url)
            merchant = fixture.demo_merchant_id(get_bank(args.bank))
            result = asyncio.run(drive(url, cards, merchant, args.seconds, args.concurrency))
        finally:
            stop(server)
            if schema:
                from bank_penyalur.runtime import database_for

                database_for(BankSettings(bank=args.bank, database_url=args.database_url, db_schema=schema)).drop_schema()
    print(json.dumps({"bench": "bank_purchase", "database": health["database"], "concurrency": args.concurrency, **result, "machine": machine()}))


if __name__ == "__main__":
    main()
