"""Benchmark: the whole deep-linear study at default sizes (issue 18: ≤ 2 minutes on 2 cores).

Runs ``landscape deeplinear all`` (every study, the seven figures and the page) in a fresh
process, as a user would, and reports the end-to-end wall time (imports included), the CPU
time, each item's compute time (its stored ``wall_time_s``), the page size (target ≤ 5 MB)
and the load average before and after. With ``--compare-threads`` the study runs with
1 and 2 torch threads, alternating, ``--repeats`` times each (the CLI's default is 1: the
tensors are tiny and a second thread only contends on a shared machine).

    .venv/bin/python bench/deeplinear.py                      # one run, 1 thread
    .venv/bin/python bench/deeplinear.py --compare-threads --repeats 2
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 120.0
PAGE_TARGET_BYTES = 5 * 2**20
ROOT = Path(__file__).resolve().parents[1]


def landscape_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("landscape")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "landscape"]


def once(directory: Path, threads: int, tag: str) -> dict:
    """One full study in a subprocess: wall and CPU seconds, per-item seconds, page bytes."""
    out = directory / f"dl_{tag}.h5"
    cmd = landscape_cmd() + ["deeplinear", "all", "--out", str(out), "--figures", str(directory / f"figs_{tag}"),
                             "--html", str(directory / f"page_{tag}.html"), "--threads", str(threads), "--no-progress"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"the study failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return {"wall": wall, "cpu": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
            "items": item_times(out), "page": (directory / f"page_{tag}.html").stat().st_size,
            "load": (load0, os.getloadavg()[0]), "summary": done.stdout}


def item_times(path: Path) -> dict[str, float]:
    from landscape.io import ResultsFile

    with ResultsFile(path, "r") as rf:
        return {k.removeprefix("deeplinear/"): float(rf.read_item(k)[1]["wall_time_s"]) for k in rf.keys("deeplinear/")}


def report(runs: dict[int, list[dict]]) -> None:
    for threads, rs in runs.items():
        walls = [r["wall"] for r in rs]
        print(f"\nthreads = {threads}: end to end {statistics.median(walls):.1f} s (median of {len(rs)}; "
              f"runs {', '.join(f'{w:.1f}' for w in walls)}), CPU {statistics.median(r['cpu'] for r in rs):.1f} s, "
              f"load {rs[0]['load'][0]:.2f} → {rs[-1]['load'][1]:.2f}")
        for key in rs[0]["items"]:
            print(f"  {key:<28} {statistics.median(r['items'][key] for r in rs):6.2f} s")
        print(f"  {'items total':<28} {statistics.median(sum(r['items'].values()) for r in rs):6.2f} s")
        page = rs[0]["page"]
        print(f"  page {page / 2**20:.2f} MiB ({'met' if page <= PAGE_TARGET_BYTES else 'MISSED'}: ≤ 5 MiB); "
              f"study {'met' if statistics.median(walls) <= TARGET_S else 'MISSED'} (≤ {TARGET_S:.0f} s)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch threads of the study (default 1)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--compare-threads", action="store_true", help="alternate 1 and 2 threads")
    p.add_argument("--keep", default=None, metavar="DIR", help="keep the outputs here (default: a temp dir)")
    args = p.parse_args()
    arms = (1, 2) if args.compare_threads else (args.threads,)
    print(f"load average at start: {os.getloadavg()}; {os.cpu_count()} CPUs visible")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(args.keep or tmp)
        directory.mkdir(parents=True, exist_ok=True)
        runs: dict[int, list[dict]] = {t: [] for t in arms}
        for r in range(args.repeats):
            for t in arms:
                runs[t].append(once(directory, t, f"t{t}_r{r}"))
        print(runs[arms[0]][0]["summary"])
        report(runs)
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
