"""bench/hyperopt.py at tiny size: every recipe's meta-iteration is timed against a training run, and runs end to end."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_hyperopt_benchmark_times_every_recipe(tmp_path):
    out = tmp_path / "hyperopt.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "hyperopt.py"), "--tiny", "--full", "--json", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads(out.read_text())
    assert {x["recipe"] for x in r["ratios"]} == {"schedule", "init", "ard", "distill", "distill_fixed"}
    for row in r["ratios"]:
        assert math.isfinite(row["ratio"]) and row["ratio"] > 0, row
    assert all(x["rc"] == 0 for x in r["full"]), r["full"]
    assert "meta-iteration (s)" in done.stdout
