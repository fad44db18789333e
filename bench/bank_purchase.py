"""Purchases per second against one bank instance over HTTP (one uvicorn worker).

Seeds a fresh bank (SQLite in a temp dir, or a fresh PostgreSQL schema with --database-url),
funds it, starts `sembako bank serve` as a child process and drives it with C concurrent
keep-alive clients for S seconds, spreading purchases over many demo cards. Prints JSON.

    python bench/bank_purchase.py --seconds 20 --concurrency 32
    python bench/bank_purchase.py --batch 16   # as the switch calls it: POST /v1/authorisations/batch
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import cpu_seconds, free_port, machine, percentile, start_bank, stop, wait_healthy  # noqa: E402
from shared.banks import get_bank  # noqa: E402
from shared.credentials import SWITCH  # noqa: E402
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


class KeepAliveConnection:
    """A minimal HTTP/1.1 keep-alive client for the load loop: request bytes are built with the
    stdlib and the answer is read by Content-Length. A general client (httpx) costs more CPU
    per request than the server under test, which would measure the client instead."""

    def __init__(self, host: str, port: int, credential: str) -> None:
        self.host, self.port = host, port
        self.authorization = f"Authorization: Bearer {credential}\r\n"  # the switch's, as the switch sends it

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 10)

    async def post_json(self, path: str, body: dict) -> tuple[int, dict]:
        payload = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"{self.authorization}Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode()
        self.writer.write(head + payload)
        async with asyncio.timeout(10):
            headers = await self.reader.readuntil(b"\r\n\r\n")
            status = int(headers.split(b" ", 2)[1])
            length = next(
                int(line.split(b":", 1)[1])
                for line in headers.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            return status, json.loads(await self.reader.readexactly(length))

    def close(self) -> None:
        self.writer.close()


async def drive(url: str, cards: list[dict], merchant_id: str, seconds: float, concurrency: int, credential: str, batch: int = 0) -> dict:
    """C clients for S seconds; each call is one purchase, or `batch` purchases in one batch call."""
    latencies_ms: list[float] = []
    counts = {"approved": 0, "declined": 0, "errors": 0}
    today = date.today().isoformat()
    host, port = url.removeprefix("http://").split(":")
    deadline = time.monotonic() + seconds

    async def worker(index: int) -> None:
        connection = KeepAliveConnection(host, int(port), credential)
        await connection.open()
        sequence = 0
        while time.monotonic() < deadline:
            bodies = []
            for _ in range(max(batch, 1)):
                card = cards[(index + sequence * concurrency) % len(cards)]
                sequence += 1
                bodies.append({
                    "terminal_id": f"B{index:07d}",
                    "stan": f"{sequence % 1_000_000:06d}",
                    "transmission_date": today,
                    "merchant_id": merchant_id,
                    "amount_idr": AMOUNT_IDR,
                    **card,
                })
            started = time.perf_counter()
            try:
                codes = await call(connection, bodies)
            except (OSError, TimeoutError, ValueError, KeyError, asyncio.IncompleteReadError):
                codes = [None] * len(bodies)
                connection.close()
                await connection.open()
            latencies_ms.append((time.perf_counter() - started) * 1000)
            for rc in codes:
                counts["approved" if rc == "00" else "declined" if rc else "errors"] += 1
        connection.close()

    async def call(connection: KeepAliveConnection, bodies: list[dict]) -> list[str | None]:
        if not batch:
            status, answer = await connection.post_json("/v1/authorisations/purchase", bodies[0])
            return [answer["rc"] if status == 200 else None]
        items = [{"op": "purchase", "request": body} for body in bodies]
        status, answer = await connection.post_json("/v1/authorisations/batch", {"items": items})
        if status != 200:
            return [None] * len(bodies)
        return [r["answer"]["rc"] if r["status"] == 200 else None for r in answer["results"]]

    started = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.monotonic() - started
    latencies_ms.sort()
    purchases = sum(counts.values())
    return {
        "seconds": round(elapsed, 2),
        "calls": len(latencies_ms),
        "requests": purchases,
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
    parser.add_argument("--batch", type=int, default=0, help="Purchases per POST /v1/authorisations/batch (0: one per call)")
    args = parser.parse_args()
    if not 0 <= args.batch <= 128:
        parser.error("--batch must be in [0, 128]")
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
            credential = BankSettings(bank=args.bank).credential(SWITCH)  # the bank's child process reads the same settings
            cpu_before_s = cpu_seconds(server.pid)
            result = asyncio.run(drive(url, cards, merchant, args.seconds, args.concurrency, credential, args.batch))
            bank_cpu_s = cpu_seconds(server.pid) - cpu_before_s
            result["bank_cpu_ms_per_request"] = round(bank_cpu_s * 1000 / max(result["requests"], 1), 3)
        finally:
            stop(server)
            if schema:
                from bank_penyalur.runtime import database_for

                database_for(BankSettings(bank=args.bank, database_url=args.database_url, db_schema=schema)).drop_schema()
    print(json.dumps({"bench": "bank_purchase", "database": health["database"], "concurrency": args.concurrency, "batch": args.batch, **result, "machine": machine()}))


if __name__ == "__main__":
    main()
