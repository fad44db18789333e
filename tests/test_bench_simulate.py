"""bench/simulate.py --results: a long run kept chunk by chunk, taken up where it stopped."""

from __future__ import annotations

import json
from pathlib import Path

from bench.simulate import combined, run_chunks
from scenarios.simulate import FAULTS, SimOptions


def chunk(seed: int, seeds: int, failed: list[int], elapsed_s: float, commit: str) -> dict:
    failures = [{"seed": s, "step": "x", "invariant": "audit: slip", "detail": "", "replay": f"sembako simulate --seed {s}"} for s in failed]
    return {"seeds_run": seeds, "passed": seeds - len(failed), "failed": len(failed), "elapsed_s": elapsed_s,
            "seeds_per_s": seeds / elapsed_s, "steps": 12, "faults": list(FAULTS), "failures": failures, "seed": seed, "commit": commit}


def test_kept_chunks_are_not_run_again_and_add_up(tmp_path: Path) -> None:
    (tmp_path / "seeds-1-4.json").write_text(json.dumps(chunk(1, 4, [], 8.0, "aaa")))
    (tmp_path / "seeds-5-8.json").write_text(json.dumps(chunk(5, 4, [7], 12.0, "bbb")))
    (tmp_path / "seeds-9-12.json.part").write_text("{")  # a chunk cut short: never counted

    summary = run_chunks(1, 8, 4, tmp_path, SimOptions(steps=12, faults=FAULTS), jobs=1)  # nothing to run

    assert (summary["seeds_run"], summary["passed"], summary["failed"]) == (8, 7, 1)
    assert (summary["elapsed_s"], summary["seeds_per_s"], summary["chunks"]) == (20.0, 0.4, 2)
    assert summary["commits"] == ["aaa", "bbb"]
    assert [f["seed"] for f in summary["failures"]] == [7]


def test_no_chunk_no_rate() -> None:
    assert combined([])["seeds_per_s"] == 0.0
