"""Child processes for the io tests: a run-file writer that can be SIGKILLed, and a reader.

    python io_child.py write PATH P [MAX_SECONDS]   append until killed (or MAX_SECONDS)
    python io_child.py read PATH SECONDS            read committed rows while a writer appends
    python io_child.py results PATH                 write results items until killed

The writer prints ``READY`` once imported, then ``ACK <steps> <snapshots>`` after every
commit returns, so the parent knows what must have survived a kill. Every row's content
is a function of its step (:func:`theta_at`, :func:`batch_at`), so a reader can check
content, not only checksums. The reader prints one JSON line with what it saw.
"""

import json
import sys
import time

import numpy as np

BATCH = 8           # minibatch size of the synthetic run
NUM_TRAIN = 1000    # examples in the synthetic data set
B = 6               # BatchNorm buffer floats
STEPS_PER_COMMIT = 4
COMMITS_PER_SNAPSHOT = 2  # a snapshot every 8 steps


def meta(P: int) -> dict:
    return {"config": {"lr": 0.1, "total_steps": 10**9, "P": P}, "model_name": "synthetic",
            "model_kwargs": {"P": P}, "num_train": NUM_TRAIN, "seed": 0, "full_batch": False}


def theta_at(step: int, P: int) -> np.ndarray:
    return (np.arange(P, dtype=np.float32) % 97) + np.float32(step) * np.float32(1e-3)


def batch_at(step: int) -> np.ndarray:
    return (np.arange(BATCH) * 7 + step * 13) % NUM_TRAIN


def write_rows(w, first: int, n: int, P: int) -> None:
    steps = np.arange(first, first + n)
    w.append_steps(steps, np.stack([batch_at(int(s)) for s in steps]), steps + 1000,
                   steps * 0.5, np.full(n, 0.1))


def writer(path: str, P: int, max_seconds: float) -> None:
    from landscape.io import RunWriter
    print("READY", flush=True)
    end = time.monotonic() + max_seconds
    with RunWriter(path, mode="create", meta=meta(P), P=P, B=B, batch_size=BATCH) as w:
        step, commits = 0, 0
        while time.monotonic() < end:
            if commits % COMMITS_PER_SNAPSHOT == 0:
                w.append_snapshot(step, theta_at(step, P), np.full(B, step, np.float32),
                                  -theta_at(step, P))
            write_rows(w, step, STEPS_PER_COMMIT, P)
            step += STEPS_PER_COMMIT
            w.append_eval(step, 1.0 / step, 0.5, 1.0, 0.5)
            w.commit(fsync=commits % COMMITS_PER_SNAPSHOT == 0)
            commits += 1
            print(f"ACK {w.committed_steps} {len_snapshots(w)}", flush=True)


def len_snapshots(w) -> int:
    return w._committed["snapshots"]


def check_run(run, P: int) -> None:
    """Assert that every committed row of ``run`` holds what :func:`writer` wrote."""
    for s in run.saved_steps:
        assert np.array_equal(run.params(int(s)), theta_at(int(s), P)), f"params at {s}"
        assert np.array_equal(run.momentum(int(s)), -theta_at(int(s), P)), f"momentum at {s}"
        assert np.array_equal(run.buffers(int(s)), np.full(B, s, np.float32)), f"buffers at {s}"
    n = run.num_steps
    if n:
        want = np.stack([batch_at(i) for i in range(n)])
        assert np.array_equal(run.batch_indices_range(0, n), want), "batch indices"
        assert np.array_equal(run.aug_seeds(0, n), np.arange(n) + 1000), "aug seeds"
        assert np.array_equal(run.step_metrics()["loss"], np.arange(n) * 0.5), "losses"


def reader(path: str, seconds: float) -> None:
    import os
    from landscape.io import RunFile
    seen, reads, errors = [], 0, []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not os.path.exists(path):
            continue
        try:
            with RunFile(path) as run:
                check_run_tail(run)
                seen.append(int(run.num_steps))
                reads += 1
        except Exception as e:  # noqa: BLE001 - report every failure to the parent
            errors.append(f"{type(e).__name__}: {e}")
    print(json.dumps({"reads": reads, "errors": errors[:5], "n_errors": len(errors),
                      "steps_seen": seen[:1] + seen[-1:]}), flush=True)


def check_run_tail(run) -> None:
    """Check the newest committed snapshot and step rows (a full check would be too slow)."""
    P = run.P
    if len(run.saved_steps):
        s = int(run.saved_steps[-1])
        assert np.array_equal(run.params(s), theta_at(s, P)), f"params at {s}"
    n = run.num_steps
    if n:
        assert np.array_equal(run.batch_indices(n - 1), batch_at(n - 1)), "batch indices"
        assert run.step_metrics()["loss"][-1] == (n - 1) * 0.5, "loss"


ITEM_SIZE = 20_000   # floats per results array
ITEM_BLOCKS = 4      # row blocks of the block dataset of each item


def item_arrays(i: int) -> dict:
    return {"v": np.full(ITEM_SIZE, i, np.float64), "i": i}


def item_block(i: int, b: int) -> np.ndarray:
    return np.full((2, 50), 100 * i + b, np.float32)


def write_result(r, i: int) -> None:
    """Item ``r/step_<i>``: a block dataset written block by block, then the arrays."""
    key = f"r/step_{i:08d}"
    r.create_block_dataset(key, "blocks", (2 * ITEM_BLOCKS, 50), np.float32, 2)
    for b in range(ITEM_BLOCKS):
        r.write_block(key, "blocks", 2 * b, item_block(i, b))
    r.write_item(key, item_arrays(i), {"step": i})


def results_writer(path: str) -> None:
    from landscape.io import ResultsFile
    print("READY", flush=True)
    with ResultsFile(path, "a", run_id={"path": "run.h5", "run_sha256": "0" * 64}) as r:
        i = 0
        while True:
            write_result(r, i)
            i += 1
            print(f"ACK {i} 0", flush=True)


def check_result(r, key: str) -> None:
    arrays, attrs = r.read_item(key)
    i = attrs["step"]
    assert key == f"r/step_{i:08d}" and arrays["i"] == i
    assert np.array_equal(arrays["v"], item_arrays(i)["v"]), key
    want = np.concatenate([item_block(i, b) for b in range(ITEM_BLOCKS)])
    assert np.array_equal(arrays["blocks"], want), key


if __name__ == "__main__":
    if sys.argv[1] == "write":
        writer(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]) if len(sys.argv) > 4 else 1e9)
    elif sys.argv[1] == "results":
        results_writer(sys.argv[2])
    else:
        reader(sys.argv[2], float(sys.argv[3]))
