"""Benchmark: the cost of the Recorder in a user's own loop (every step's batch + a snapshot every 100 steps).

Runs the same plain PyTorch loop (the registered 1-D CNN on MNIST-1D, SGD with momentum) with and
without ``checkpoints.Recorder``, alternating, several times, and prints the median times and their
ratio (the trainer's own target, ``bench/trainer_overhead.py``, is ≤ 1.05).

    .venv/bin/python bench/recorder_overhead.py                 # defaults: 1000 steps, 3 repeats
    .venv/bin/python bench/recorder_overhead.py --steps 300 --repeats 5 --no-fsync
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import landscape as ls
from checkpoints import Recorder


def loop(data, steps: int, batch: int, out: Path | None, save_every: int, fsync: bool) -> float:
    """Seconds of ``steps`` training steps (model and optimizer built before the clock starts)."""
    model = ls.build_model("cnn1d", seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    rec = None if out is None else Recorder(out, model, opt, dataset=data, batch_size=batch, save_every=save_every,
                                            fsync=fsync)
    t0 = time.perf_counter()
    if rec is not None:
        rec.open()
    for _ in range(steps):
        idx = torch.randint(0, data.num_train, (batch,), generator=gen)
        loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if rec is not None:
            rec.step(idx, loss=loss)
    if rec is not None:
        rec.close()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--no-fsync", action="store_true", help="flush only at snapshots (no fsync)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = ls.load_dataset("mnist1d")
    loop(data, 20, args.batch_size, None, args.save_every, True)  # warm-up: allocator, kernels
    times = {"without": [], "with": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):  # interleaved, so load changes hit both arms alike
            times["without"].append(loop(data, args.steps, args.batch_size, None, args.save_every, not args.no_fsync))
            times["with"].append(loop(data, args.steps, args.batch_size, Path(tmp) / f"run{r}.h5", args.save_every,
                                      not args.no_fsync))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"MNIST-1D, cnn1d, batch {args.batch_size}, {args.steps} steps, snapshot every {args.save_every}, "
          f"fsync {'off' if args.no_fsync else 'on'}, {torch.get_num_threads()} thread(s), {args.repeats} repeats")
    ratio = med["with"] / med["without"]
    print(f"loop: without recorder {med['without']:.3f} s, with {med['with']:.3f} s, ratio {ratio:.4f} "
          f"({(ratio - 1) * 100:+.2f} %); all: without {times['without']}, with {times['with']}")


if __name__ == "__main__":
    main()
