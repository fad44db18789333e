"""Seeded fault simulation at volume: how many seeds per second, and which seeds fail.

    python bench/simulate.py [--seed 1] [--seeds 10000] [--steps 12] [--faults all] [--jobs 2]
                             [--results DIR [--chunk 480]]

Runs `sembako simulate` (scenarios.simulate) over seeds --seed .. --seed+--seeds-1: many seeds
per network (each on its own cards, terminal and benefit periods), --jobs networks at once, the
money auditor after every step and the simulator's invariants at each seed's seal; a failing
seed is replayed alone on a fresh network and shrunk. Prints a progress line per 100 seeds on
stderr, then one JSON object: the summary of `sembako simulate --json` (seeds run, passed,
failed, seconds, seeds/s, every failure with its replay command) plus the machine.

With --results, the range is run in chunks of --chunk seeds, each kept in DIR as
`seeds-A-B.json` (with the commit it ran at) as soon as it is done; chunks already in DIR are
not run again. A run of hours can so be stopped and taken up later, and the summary printed at
the end covers every chunk of the range found in DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from scenarios.simulate import FAULTS, SeedResult, SimOptions, check_options, parse_faults, seed_line, simulate, summarise

PROGRESS_EVERY = 100
ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--results", type=Path, default=None, help="Keep one JSON per chunk here; skip chunks already kept")
    parser.add_argument("--chunk", type=int, default=480, help="Seeds per kept chunk (with --results)")
    args = parser.parse_args(argv)
    try:
        check_options(args.seed, args.steps, args.seeds, args.jobs)
        faults = parse_faults(args.faults)
    except ValueError as exc:
        parser.error(str(exc))
    if not 1 <= args.chunk <= 100_000:
        parser.error("--chunk must be in 1..100000")
    options = SimOptions(steps=args.steps, faults=faults, database_url=args.database_url)
    if args.results is None:
        summary = run_range(args.seed, args.seeds, options, args.jobs)
    else:
        summary = run_chunks(args.seed, args.seeds, args.chunk, args.results, options, args.jobs)
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 1 if summary["failed"] else 0


def run_range(first: int, count: int, options: SimOptions, jobs: int) -> dict:
    done: list[SeedResult] = []

    def report(result: SeedResult) -> None:
        done.append(result)
        if not result.passed:
            print(seed_line(result), file=sys.stderr, flush=True)
        if len(done) % PROGRESS_EVERY == 0:
            print(f"{len(done)}/{count} seeds, {sum(not r.passed for r in done)} failed", file=sys.stderr, flush=True)

    results, elapsed_s = simulate(first, count, options, jobs, report)
    summary = summarise(results, elapsed_s, options).as_dict()
    summary["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "jobs": jobs}
    return summary


def run_chunks(first: int, count: int, chunk: int, results: Path, options: SimOptions, jobs: int) -> dict:
    """Every chunk of the range, run unless kept in `results` already; the summary of them all."""
    results.mkdir(parents=True, exist_ok=True)
    kept = []
    for start in range(first, first + count, chunk):
        size = min(chunk, first + count - start)
        path = results / f"seeds-{start}-{start + size - 1}.json"
        if not path.exists():
            print(f"seeds {start}..{start + size - 1}", file=sys.stderr, flush=True)
            summary = run_range(start, size, options, jobs) | {"seed": start, "commit": _commit()}
            part = path.with_suffix(".part")
            part.write_text(json.dumps(summary, indent=2, ensure_ascii=False))
            part.replace(path)  # a chunk is kept whole or not at all
        kept.append(json.loads(path.read_text()))
    return combined(kept)


def combined(chunks: list[dict]) -> dict:
    """One summary over chunks (each a run_range summary)."""
    elapsed_s = sum(c["elapsed_s"] for c in chunks)
    seeds = sum(c["seeds_run"] for c in chunks)
    return {
        "seeds_run": seeds,
        "passed": sum(c["passed"] for c in chunks),
        "failed": sum(c["failed"] for c in chunks),
        "elapsed_s": round(elapsed_s, 2),
        "seeds_per_s": round(seeds / elapsed_s, 3) if elapsed_s else 0.0,
        "chunks": len(chunks),
        "commits": sorted({c.get("commit", "unknown") for c in chunks}),
        "failures": [f for c in chunks for f in c["failures"]],
    }


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
