"""Benchmark of `landscape hessian` jobs (issue 4 targets), through the real command line.

1. Warm vs cold starts: top-k eigenpairs at consecutive checkpoints of one MNIST-1D run,
   each step's Lanczos started from the previous step's eigenvectors (default) or at
   random (``--no-warm-start``); HVPs per step and the ratio warm / cold.
2. Data parallelism: the same eigensolve with 1 process and with ``torchrun
   --nproc-per-node 2`` (gloo, CPU); eigenvalue agreement (target 1e-6 relative) and
   the speed-up, against one process with 1 thread and with 2 threads.

Usage::

    .venv/bin/python bench/hessian_jobs.py [--quick] [--run RUN.h5] [--work DIR]

Prints the figures as Markdown tables (for bench/RESULTS.md). "eigensolve s" is the item's
wall time: it includes the one-time start-up of the first HVP in a process (torch.func's
first call imports a few seconds' worth of modules), so compare settings on problems where
the solve takes much longer than that; on a shared machine, run nothing else meanwhile
(a second process's threads slow a 2-thread run several-fold). Without ``--run`` it
trains the run first (MNIST-1D, the default 1-D CNN, P = 8,362).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def train_run(work: Path, quick: bool) -> Path:
    from checkpoints.config import TrainConfig
    from checkpoints.train import train

    path = work / "run.h5"
    if not path.exists():
        steps = 200 if quick else 1000
        cfg = TrainConfig(dataset="mnist1d", model="cnn1d", lr=0.05, momentum=0.9, batch_size=100,
                          steps=steps, save_every=steps // 10, seed=0)
        train(cfg, path, progress=False)
    return path


def landscape(args: list[str], *, nproc: int = 1, threads: int = 2) -> float:
    """Run ``landscape ARGS`` (under torchrun for nproc > 1); return the wall time in seconds."""
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
                if nproc > 1 else [sys.executable])
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore")
    start = time.perf_counter()
    done = subprocess.run([*launcher, "-m", "landscape", *args], env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"landscape {' '.join(args)} failed:\n{done.stderr[-4000:]}")
    return time.perf_counter() - start


def read_eigen(path: Path) -> dict[int, tuple[np.ndarray, int, float]]:
    """step → (eigenvalues, HVPs, seconds) of every eigen item."""
    from landscape.io import ResultsFile

    out = {}
    with ResultsFile(path, "r") as r:
        for key in r.keys("hessian/"):
            if key.endswith("/eigen"):
                arrays, attrs = r.read_item(key)
                out[attrs["step"]] = (arrays["eigenvalues"], int(arrays["num_matvecs"]), float(attrs["wall_time_s"]))
    return out


def warm_vs_cold(run: Path, work: Path, k: int, tol: float, subset: int) -> None:
    common = ["hessian", str(run), "--steps", "all", "--k", str(k), "--tol", str(tol), "--subset", str(subset),
              "--device", "cpu"]
    warm, cold = work / "warm.h5", work / "cold.h5"
    for path, extra in ((warm, []), (cold, ["--no-warm-start"])):
        if path.exists():
            path.unlink()
        landscape([*common, "--out", str(path), *extra])
    w, c = read_eigen(warm), read_eigen(cold)
    print(f"\n### Warm vs cold eigensolves (k = {k}, tol = {tol}, {subset} examples, float32, CPU)\n")
    print("| step | HVPs cold | HVPs warm | warm / cold | max |Δλ|/λ |")
    print("|---:|---:|---:|---:|---:|")
    for step in sorted(c):
        rel = np.max(np.abs(w[step][0] - c[step][0]) / np.abs(c[step][0]))
        print(f"| {step} | {c[step][1]} | {w[step][1]} | {w[step][1] / c[step][1]:.2f} | {rel:.1e} |")
    later = [s for s in sorted(c)][1:]   # the first step has nothing to warm-start from
    cw, cc = sum(w[s][1] for s in later), sum(c[s][1] for s in later)
    print(f"\nSteps after the first: warm {cw} HVPs, cold {cc} HVPs, ratio warm/cold = **{cw / cc:.2f}**.")


def data_parallel(run: Path, work: Path, k: int, subset: int, batch: int) -> None:
    common = ["hessian", str(run), "--steps", "last", "--k", str(k), "--tol", "1e-8", "--dtype", "float64",
              "--subset", str(subset), "--batch-size", str(batch), "--device", "cpu", "--no-warm-start"]
    rows = []
    for label, nproc, threads in (("1 process × 1 thread", 1, 1), ("1 process × 2 threads", 1, 2),
                                  ("2 processes × 1 thread (gloo)", 2, 1)):
        out = work / f"dp_{nproc}_{threads}.h5"
        if out.exists():
            out.unlink()
        wall = landscape([*common, "--out", str(out)], nproc=nproc, threads=threads)
        (lam, hvps, secs), = read_eigen(out).values()
        rows.append((label, lam, hvps, secs, wall))
    ref = rows[0][1]
    print(f"\n### Data-parallel HVPs (k = {k}, {subset} examples, float64, batch {batch}, CPU)\n")
    print("| setting | HVPs | eigensolve s | s / HVP | speed-up vs 1×1 | max |Δλ|/λ vs 1×1 | process wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, lam, hvps, secs, wall in rows:
        rel = np.max(np.abs(lam - ref) / np.abs(ref))
        print(f"| {label} | {hvps} | {secs:.2f} | {secs / hvps:.4f} | {rows[0][3] / secs:.2f} | {rel:.1e} | {wall:.1f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a shorter run and smaller problems")
    p.add_argument("--run", type=Path, default=None, help="an existing run file (default: train one)")
    p.add_argument("--work", type=Path, default=None, help="working directory (default: a temporary one)")
    p.add_argument("--only", choices=("warm", "parallel"), default=None, help="run one of the two parts")
    args = p.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_hessian_jobs_"))
    work.mkdir(parents=True, exist_ok=True)
    run = args.run or train_run(work, args.quick)
    print(f"# Hessian jobs benchmark ({run})")
    if args.only != "parallel":
        warm_vs_cold(run, work, k=5 if args.quick else 10, tol=1e-4, subset=1000 if args.quick else 4000)
    if args.only != "warm":
        data_parallel(run, work, k=3 if args.quick else 5, subset=1000 if args.quick else 4000, batch=250)


if __name__ == "__main__":
    main()
