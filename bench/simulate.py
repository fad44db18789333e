"""Seeded fault simulation at volume: how many seeds per second, and which seeds fail.

    python bench/simulate.py [--seed 1] [--seeds 10000] [--steps 12] [--faults all] [--jobs 2]

Runs `sembako simulate` (scenarios.simulate) over seeds --seed .. --seed+--seeds-1: many seeds
per network (each on its own cards, terminal and benefit periods), --jobs networks at once, the
money auditor after every step and the simulator's invariants at each seed's seal; a failing
seed is replayed alone on a fresh network and shrunk. Prints a progress line per 100 seeds on
stderr, then one JSON object: the summary of `sembako simulate --json` (seeds run, passed,
failed, seconds, seeds/s, every failure with its replay command) plus the machine.

The same as `sembako simulate --seed 1 --seeds 10000 --jobs 2 --json`, with the machine added.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

from scenarios.simulate import FAULTS, SeedResult, SimOptions, check_options, parse_faults, seed_line, simulate, summarise

PROGRESS_EVERY = 100


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    try:
        check_options(args.seed, args.steps, args.seeds, args.jobs)
        faults = parse_faults(args.faults)
    except ValueError as exc:
        parser.error(str(exc))
    options = SimOptions(steps=args.steps, faults=faults, database_url=args.database_url)
    done: list[SeedResult] = []

    def report(result: SeedResult) -> None:
        done.append(result)
        if not result.passed:
            print(seed_line(result), file=sys.stderr, flush=True)
        if len(done) % PROGRESS_EVERY == 0:
            print(f"{len(done)}/{args.seeds} seeds, {sum(not r.passed for r in done)} failed", file=sys.stderr, flush=True)

    results, elapsed_s = simulate(args.seed, args.seeds, options, args.jobs, report)
    summary = summarise(results, elapsed_s, options).as_dict()
    summary["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "jobs": args.jobs}
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
