"""bench/hyper.py at tiny size: every route agrees with unrolling before anything is timed."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# float32 routes through 20 steps: different operation orders agree to ~T·eps32.
BENCH_AGREEMENT = 1e-4


@pytest.mark.slow
def test_hyper_benchmark_runs_and_routes_agree(tmp_path):
    out = tmp_path / "hyper.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "hyper.py"), "--tiny", "--device", "cpu",
                           "--json", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads(out.read_text())
    for route, err in r["ratios"]["agreement"].items():
        assert err <= BENCH_AGREEMENT, f"{route}: {err:.2e}"
    for row in r["table"]["rows"]:
        assert row["counted"]["checkpointed"]["stored_states"] <= 2 * math.sqrt(row["T"]) + 1e-9
        assert row["counted"]["reversible"]["ratio_to_storing_states"] <= 1 / 20
    assert "Memory and time against T" in done.stdout
