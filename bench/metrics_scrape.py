"""How long a Prometheus scrape of /metrics takes on a running network.

Scrapes the switch's ops API and one or more banks' APIs N times each (one keep-alive client,
one scrape at a time, as a Prometheus server does) and prints JSON: median, p99 and maximum
milliseconds per target, and the size of the exposition. Start the network first, e.g.

    sembako up --data-dir /tmp/metrics-bench --app none
    python bench/metrics_scrape.py --switch-ops http://127.0.0.1:8600 --bank http://127.0.0.1:8001

(see `sembako up`'s table for the ports). Every request has a timeout; the loop is bounded.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import machine, percentile  # noqa: E402

SCRAPES = 200
TIMEOUT_S = 5.0


def measure(url: str, scrapes: int) -> dict:
    """`scrapes` sequential GETs of `url`/metrics: latency figures and the exposition's size."""
    durations_ms: list[float] = []
    size_bytes = 0
    with httpx.Client(timeout=TIMEOUT_S) as client:
        client.get(f"{url}/metrics").raise_for_status()  # warm-up: connection, first collection
        for _ in range(scrapes):
            started = time.perf_counter()
            response = client.get(f"{url}/metrics")
            durations_ms.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            size_bytes = len(response.content)
    ordered = sorted(durations_ms)
    return {
        "url": f"{url}/metrics",
        "scrapes": scrapes,
        "median_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(percentile(ordered, 0.99), 3),
        "max_ms": round(ordered[-1], 3),
        "exposition_bytes": size_bytes,
        "content_type": response.headers.get("content-type"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--switch-ops", required=True, help="base URL of the switch's ops API")
    parser.add_argument("--bank", action="append", default=[], help="base URL of a bank's API (repeatable)")
    parser.add_argument("--scrapes", type=int, default=SCRAPES)
    args = parser.parse_args()
    results = {"switch": measure(args.switch_ops.rstrip("/"), args.scrapes)}
    for url in args.bank:
        results[f"bank {url}"] = measure(url.rstrip("/"), args.scrapes)
    print(json.dumps({"machine": machine(), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
