"""Transaction search through the switch's ops API over a large journal on PostgreSQL.

Fills a fresh journal schema with --rows transactions (default 1,000,000: demo terminals of the
four banks, --cards distinct cards, 30 business days) by COPY, analyses it, serves the ops API
(uvicorn, loopback) and times --queries searches of each kind over HTTP with a switch-wide
viewer token and with a BNI viewer token:

- by card: `GET /v1/transactions?pan=...` (the keyed hash of the PAN, exact match);
- by terminal: `GET /v1/transactions?terminal=...` (the newest 100);
- by RRN: `GET /v1/transactions/{rrn}` (the transaction with its trail).

Prints one JSON line with p50/p99 per kind and scope. The schema is dropped at the end.

    python bench/ops_search.py --database-url postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import free_port, machine, percentile  # noqa: E402
from shared.banks import BANKS, DEMO_TERMINALS_PER_BANK  # noqa: E402
from shared.cards import make_pan, mask_pan  # noqa: E402
from shared.db import Database  # noqa: E402
from switch.hsm import SwitchHsm  # noqa: E402
from switch.journal import TRANSACTION_FIELDS, Journal, TerminalRecord  # noqa: E402
from switch.ops.access import create_token  # noqa: E402
from switch.settings import SwitchSettings  # noqa: E402

FIRST_DAY = date(2026, 10, 1)
DAYS = 30
COPY_ROWS_PER_COMMIT = 100_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), required=os.environ.get("DATABASE_URL") is None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cards", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    if not (1_000 <= args.rows <= 5_000_000 and 100 <= args.cards <= args.rows and 10 <= args.queries <= 10_000):
        parser.error("--rows in [1000, 5000000], --cards in [100, rows], --queries in [10, 10000]")
    settings = SwitchSettings()
    hsm = SwitchHsm(settings.lmk, {code: settings.zpk_for(code) for code in BANKS}, settings.pan_hash_key, settings.pan_key)
    db = Database(args.database_url, schema=f"bench_ops_{uuid.uuid4().hex[:10]}")
    try:
        journal = Journal(db, hsm.pan_hash, hsm.pan_cipher)
        journal.migrate()
        rng = random.Random(args.seed)
        started_s = time.perf_counter()
        sample = fill(journal, rng, args.rows, args.cards)
        fill_s = time.perf_counter() - started_s
        result = {"bench": "ops_search", "database": "postgresql", "rows": args.rows, "cards": args.cards,
                  "fill_seconds": round(fill_s, 1), **serve_and_time(journal, sample, rng, args.queries), "machine": machine()}
    finally:
        db.drop_schema()
    print(json.dumps(result))


def fill(journal: Journal, rng: random.Random, rows: int, cards: int) -> dict:
    """COPY `rows` transactions; returns what the searches ask for (cards, terminals, RRNs)."""
    terminals = [(bank, bank.terminal_id(n), bank.merchant_id(n)) for bank in BANKS.values() for n in range(1, DEMO_TERMINALS_PER_BANK + 1)]
    records = [TerminalRecord(tid, mid, bank.code, f"e-Warong {tid}", "00" * 16) for bank, tid, mid in terminals]
    journal.ensure_terminals(records, datetime(2026, 10, 1))
    banks = list(BANKS.values())
    pans = [make_pan(banks[n % len(banks)].iin, 500_000 + n) for n in range(cards)]
    hashes = [journal.pan_hash(pan) for pan in pans]
    columns = ", ".join(TRANSACTION_FIELDS)
    raw = journal.db.engine.raw_connection()
    try:
        for first in range(0, rows, COPY_ROWS_PER_COMMIT):
            with raw.cursor() as cursor, cursor.copy(f"COPY transactions ({columns}) FROM STDIN") as copy:
                for n in range(first, min(rows, first + COPY_ROWS_PER_COMMIT)):
                    copy.write_row(_row(n, rng, pans, hashes, terminals))
            raw.commit()
        with raw.cursor() as cursor:
            cursor.execute("ANALYZE transactions")
        raw.commit()
    finally:
        raw.close()
    return {"pans": pans, "tids": [tid for _, tid, _ in terminals], "rrn_max": rows}


def _row(n: int, rng: random.Random, pans: list[str], hashes: list[str], terminals: list) -> list:
    card = rng.randrange(len(pans))
    bank, tid, mid = terminals[rng.randrange(len(terminals))]
    day = FIRST_DAY + timedelta(days=rng.randrange(DAYS))
    at = datetime.combine(day, datetime.min.time()) + timedelta(seconds=rng.randrange(8 * 3600, 20 * 3600))
    rrn = f"{n + 1:012d}"
    response = {"t": "0210", "39": "00", "37": rrn}
    values = {
        "rrn": rrn, "tid": tid, "mid": mid, "stan": f"{n % 999_999 + 1:06d}", "transmission_date": day, "mti": "0200",
        "kind": "purchase", "pan_masked": mask_pan(pans[card]), "bank_code": _issuer(pans[card]), "amount_idr": 10_000 * rng.randrange(1, 16),
        "rc": "00", "approval_code": f"{n % 1_000_000:06d}", "balance_idr": 0, "request_hash": f"{n:064x}",
        "response": orjson.dumps(response).decode(), "original_rrn": None, "bank_latency_ms": rng.randrange(5, 80),
        "created_at": at, "pan_hash": hashes[card], "batch": 1,
    }
    return [values[name] for name in TRANSACTION_FIELDS]


def _issuer(pan: str) -> str:
    return next(bank.code for bank in BANKS.values() if pan.startswith(bank.iin))


def serve_and_time(journal: Journal, sample: dict, rng: random.Random, queries: int) -> dict:
    import uvicorn

    from switch.ops.app import create_ops_app

    with journal.db.begin() as conn:
        tokens = {scope: create_token(conn, "viewer", bank, f"bench {scope}", "bench", datetime(2026, 11, 1)).token
                  for scope, bank in (("switch", None), ("bni", "bni"))}
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_ops_app(journal), host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        return {scope: time_searches(f"http://127.0.0.1:{port}", token, sample, rng, queries) for scope, token in tokens.items()}
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def time_searches(url: str, token: str, sample: dict, rng: random.Random, queries: int) -> dict:
    kinds = {
        "by_card": lambda: ("/v1/transactions", {"pan": rng.choice(sample["pans"])}),
        "by_terminal": lambda: ("/v1/transactions", {"terminal": rng.choice(sample["tids"])}),
        "by_rrn": lambda: (f"/v1/transactions/{rng.randrange(1, sample['rrn_max'] + 1):012d}", {}),
    }
    figures = {}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0) as client:
        for kind, make in kinds.items():
            latencies_ms, statuses = [], {}
            for _ in range(queries):
                path, params = make()
                started = time.perf_counter()
                status = client.get(path, params=params).status_code
                latencies_ms.append((time.perf_counter() - started) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
            latencies_ms.sort()
            figures[kind] = {"p50_ms": round(percentile(latencies_ms, 0.5), 2), "p99_ms": round(percentile(latencies_ms, 0.99), 2), "statuses": statuses}
    return figures


if __name__ == "__main__":
    main()
