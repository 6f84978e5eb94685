"""Smoke tests of the benchmark suite (bench/ is not collected by pytest, so it could rot).

The default test runs ``bench/run.py --tiny --only hvp`` end to end in a subprocess and checks
what it must always deliver: every tool's HVP agrees with ours before anything is timed, and
every timed row has finite positive times. The tiny figures themselves mean nothing and are
not checked. The slow test runs every other benchmark of ours at tiny size (the GPU suite on
the CPU), so their code paths are exercised too.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import hvp  # noqa: E402  (bench/hvp.py: its agreement tolerance)

OUR_HVPS = (hvp.SINGLE, hvp.BATCHED, "ours, double backward, 1 vector")
SMOKE_TIMEOUT_S = 300  # generous: the tiny hvp run takes ~15 s idle, ~35 s on a loaded 2-core machine
SLOW_TIMEOUT_S = 1800  # the four other tiny benchmarks: a few minutes idle, much longer under load


def _run_suite(tmp_path: Path, only: str, *extra: str, timeout: float = SMOKE_TIMEOUT_S) -> list[dict]:
    out = tmp_path / "results.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--tiny", "--only", only,
                           "--device", "cpu", "--json", str(out), *extra],
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    assert done.returncode == 0, f"bench/run.py failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(out.read_text())


def test_hvp_benchmark_runs_and_every_tool_agrees(tmp_path):
    [entry] = _run_suite(tmp_path, "hvp")
    rows = {r["method"]: r for r in entry["results"]["rows"]}
    assert set(OUR_HVPS) | {hvp.GRADIENT} <= set(rows), f"missing rows: {sorted(rows)}"
    for name, r in rows.items():
        if r["agreement"] is not None:
            assert r["agreement"] <= hvp.AGREE_RTOL, f"{name}: rel. L2 {r['agreement']:.2e} > {hvp.AGREE_RTOL:g}"
        assert r["timed"], f"{name} was not timed"
        assert math.isfinite(r["seconds_per_call"]) and r["seconds_per_call"] > 0, f"{name}: {r}"
    assert "× gradient" in entry["markdown"] and entry["command"].startswith("python bench/hvp.py")


@pytest.mark.slow
def test_other_benchmarks_run_at_tiny_size(tmp_path):
    entries = {e["name"]: e for e in _run_suite(tmp_path, "topk,sharpness_track,density_trace,scaling,gpu",
                                                 "--markdown", str(tmp_path / "suite.md"), timeout=SLOW_TIMEOUT_S)}
    assert set(entries) == {"topk", "sharpness_track", "density_trace", "scaling", "gpu"}
    for name, problem in entries["topk"]["results"]["problems"].items():
        assert problem["reference"]["converged"], f"{name}: the top-k reference eigsh did not converge"
    track = entries["sharpness_track"]["results"]["per_k"]
    assert all(point["rows"]["ours, warm"]["error"] <= 1e-3 for points in track.values() for point in points)
    slq = {r["method"]: r for r in entries["density_trace"]["results"]["slq"]["rows"]}
    assert math.isfinite(slq["ours spectral_density"]["w1_rel"])
    assert entries["gpu"]["results"]["tiny"] and Path(entries["scaling"]["results"]["plot"]).exists()
