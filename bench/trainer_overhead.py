"""Benchmark: the cost of the run file (every step's batch + a snapshot every 100 steps).

Trains the same MNIST-1D configuration with and without a run file, alternating, several
times, and prints the median times and their ratio. Target (issue 3): ≤ 1.05.

    .venv/bin/python bench/trainer_overhead.py                 # defaults: 1000 steps, 3 repeats
    .venv/bin/python bench/trainer_overhead.py --steps 300 --repeats 5 --no-fsync

"Loop" time is the step loop (what the run file can slow down); "total" adds the set-up
(data, model, file creation), identical in both arms except for the file.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from checkpoints import TrainConfig, train


def config(args) -> TrainConfig:
    return TrainConfig(dataset="mnist1d", model=args.model, lr=0.05, momentum=0.9, batch_size=args.batch_size,
                       steps=args.steps, save_every=args.save_every, eval_every=0, device=args.device)


def once(cfg: TrainConfig, out: Path | None, fsync: bool) -> tuple[float, float]:
    """(loop seconds, total seconds) of one training run."""
    t0 = time.perf_counter()
    result = train(cfg, out, progress=False, fsync=fsync)
    return result.wall_time, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--model", default="cnn1d")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--no-fsync", action="store_true", help="flush only at snapshots (no fsync)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = config(args)
    once(cfg.replace(steps=20), None, True)  # warm-up: data generation, allocator, kernels
    times = {"without": [], "with": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            times["without"].append(once(cfg, None, not args.no_fsync))
            times["with"].append(once(cfg, Path(tmp) / f"run{r}.h5", not args.no_fsync))
    report(cfg, args, times)


def report(cfg, args, times) -> None:
    med = {k: [statistics.median(t[i] for t in v) for i in (0, 1)] for k, v in times.items()}
    print(f"MNIST-1D, {cfg.model}, batch {cfg.batch_size}, {cfg.steps} steps, snapshot every {cfg.save_every}, "
          f"fsync {'off' if args.no_fsync else 'on'}, {torch.get_num_threads()} thread(s), {args.repeats} repeats")
    for i, name in enumerate(("loop", "total")):
        ratio = med["with"][i] / med["without"][i]
        print(f"{name:>5}: without run file {med['without'][i]:.3f} s, with {med['with'][i]:.3f} s, "
              f"ratio {ratio:.4f} ({(ratio - 1) * 100:+.2f} %)")


if __name__ == "__main__":
    main()
