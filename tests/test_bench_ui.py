"""Smoke test of bench/ui.py: tiny counts against its own network, one JSON line, exit 0."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_ui_prints_one_json_line_of_figures() -> None:
    # Bounds against a hang, not a speed check: the suite runs two test files at once, and
    # another file's network may be starting on the same two cores.
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ui.py"), "--starts", "1", "--keys", "3", "--flows", "1", "--max-seconds", "45"],
        capture_output=True, text=True, timeout=90, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    result = json.loads(lines[0])
    assert result["database"] == "sqlite" and result["machine"]["textual"]
    assert result["start"]["edc"]["n"] == 1 and result["start"]["cashier"]["median_ms"] > 0
    assert result["keys"]["n"] == 3 and result["keys"]["p99_ms"] >= result["keys"]["median_ms"] > 0
    assert result["flow"]["flows"] == 1 and result["flow"]["sales_with_rrn"] == 1
