"""Helpers for the trainer tests: tiny configurations, subprocess training, comparing run files.

Bitwise comparisons between runs need the same thread count (CPU reductions may split work
by thread), so every trainer test runs with one intra-op thread, and subprocesses get
``OMP_NUM_THREADS=1``. One thread is also much faster on a loaded 2-core machine.
"""

import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A ResNet-8 with BatchNorm at width 0.25 on 8×8 synthetic images: BN buffers, momentum and
# augmentation all take part, and a step costs a few milliseconds.
TINY = dict(dataset="synthetic", dataset_kwargs={"num_train": 96, "num_test": 32, "input_shape": [3, 8, 8]},
            model="resnet8", model_kwargs={"width": 0.25}, lr=0.05, momentum=0.9, weight_decay=5e-4,
            batch_size=16, steps=30, save_every=10, eval_every=10, augment=True)


def cli_args(cfg_changes: dict | None = None, **extra) -> list[str]:
    """Command-line arguments of ``landscape train`` for :data:`TINY` (+ changes, + extra flags)."""
    import json

    c = {**TINY, **(cfg_changes or {})}
    args = ["--dataset", c["dataset"], "--dataset-kwargs", json.dumps(c["dataset_kwargs"]),
            "--model", c["model"], "--model-kwargs", json.dumps(c["model_kwargs"]), "--lr", str(c["lr"]),
            "--momentum", str(c["momentum"]), "--weight-decay", str(c["weight_decay"]),
            "--batch-size", str(c["batch_size"]), "--steps", str(c["steps"]), "--save-every",
            str(c["save_every"]), "--eval-every", str(c["eval_every"]), "--augment", "--device", "cpu"]
    for k, v in extra.items():
        args += [f"--{k.replace('_', '-')}"] + ([] if v is True else [str(v)])
    return args


# The child runs the `landscape train` command module directly: the same code as the CLI
# without importing every other subcommand (start-up time matters on a loaded machine).
CHILD = ("import argparse, sys; from analyses.cli import train as cmd; "
         "p = argparse.ArgumentParser(); cmd.add_arguments(p); sys.exit(cmd.run(p.parse_args(sys.argv[1:])))")


def train_subprocess(args: list[str], env: dict | None = None, **popen) -> subprocess.Popen:
    """``landscape train ARGS`` in a child process with one thread."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-c", CHILD, *args], cwd=ROOT, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def kill_when_paused(proc: subprocess.Popen, timeout: float) -> None:
    """Read the child's stdout until it prints ``PAUSED`` (a test pause point), then SIGKILL it.

    A child that exits without pausing fails the test with the tail of its stderr.
    """
    try:
        for line in proc.stdout:
            if line.startswith("PAUSED"):
                break
        else:
            raise AssertionError(proc.stderr.read()[-2000:])
    finally:
        proc.kill()
        proc.wait(timeout)


def run_arrays(path) -> dict[str, np.ndarray]:
    """Everything a run file holds that must match bitwise between equivalent runs."""
    from landscape.io import RunFile

    with RunFile(path) as f:
        steps = f.saved_steps
        out = {"saved_steps": steps,
               "params": np.stack([f.params(s) for s in steps]),
               "buffers": np.stack([f.buffers(s) for s in steps]),
               "batches": f.batch_indices_range(0, f.num_steps),
               "aug_seeds": f.aug_seeds(0, f.num_steps)}
        if f.config.get("momentum") or f.config.get("optimizer") == "adamw":
            out["momentum"] = np.stack([f.momentum(s) for s in steps])
        if f.config.get("optimizer") == "adamw":
            out["second_moment"] = np.stack([f.second_moment(s) for s in steps])
            out["sharpness"] = f.sharpness()["eigenvalues"]
        out.update({f"step_{k}": v for k, v in f.step_metrics().items()})
        out.update({f"eval_{k}": v for k, v in f.eval_metrics().items()})
    return out


def assert_runs_equal(a, b, only_steps=None) -> None:
    """Bitwise equality of two run files (optionally only at the snapshot steps both hold)."""
    A, B = run_arrays(a), run_arrays(b)
    if only_steps is not None:
        for X in (A, B):
            keep = np.isin(X["saved_steps"], only_steps)
            for k in ("saved_steps", "params", "buffers", "momentum", "second_moment"):
                if k in X:
                    X[k] = X[k][keep]
    assert A.keys() == B.keys(), (sorted(A), sorted(B))
    for k in A:
        assert A[k].shape == B[k].shape, f"{k}: shapes {A[k].shape} vs {B[k].shape}"
        diff = np.flatnonzero(np.asarray(A[k] != B[k]).reshape(len(A[k]), -1).any(axis=1)) if A[k].size else []
        assert len(diff) == 0, (f"{k} differs at rows {list(diff[:5])}; max |diff| "
                                f"{np.max(np.abs(A[k].astype(float) - B[k].astype(float)))}")
