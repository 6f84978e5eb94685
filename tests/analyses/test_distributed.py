"""Data-parallel Hessian jobs: shards, and 2 gloo processes under torchrun matching 1 process."""

from __future__ import annotations

import os
import subprocess
import sys

import socket

import numpy as np
import pytest
import torch

from analyses.driver.distributed import (SINGLE, DistContext, RankResults, all_reduce_sum, broadcast_array, broadcast_bool,
                                  init_from_env, shard, shard_bounds, shutdown)
from landscape.errors import InputError
from landscape.io import ResultsFile

# Two processes sum two float64 partial sums where one process sums all batches in order:
# the HVPs differ by rounding (~1e-16 relative), and Lanczos at tol 1e-10 moves
# eigenvalues by far less than the target agreement of 1e-6 relative (issue 4).
DIST_EIG_RTOL = 1e-6
# Data-parallel HVP of linear regression vs its closed form 2XᵀX v/N, float64 sums of 11 terms.
DP_HVP_ATOL = 1e-12
# Dense Hessians of both: entrywise rounding differences of float64 HVP sums.
DIST_DENSE_ATOL = 1e-12
DIST_TIMEOUT_S = 300

SHARD_CASES = [dict(id="even", N=10, R=2), dict(id="uneven", N=11, R=3), dict(id="one-each", N=4, R=4),
               dict(id="single", N=7, R=1)]


@pytest.mark.parametrize("case", SHARD_CASES, ids=[c["id"] for c in SHARD_CASES])
def test_shards_partition_contiguously(case):
    N, R = case["N"], case["R"]
    bounds = [shard_bounds(N, r, R) for r in range(R)]
    assert bounds[0][0] == 0 and bounds[-1][1] == N
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:])), bounds
    sizes = [b - a for a, b in bounds]
    assert max(sizes) - min(sizes) <= 1, sizes
    idx = np.arange(100, 100 + N)
    parts = [shard(idx, DistContext(rank=r, world_size=R)) for r in range(R)]
    assert np.array_equal(np.concatenate(parts), idx)


def test_more_processes_than_examples_is_refused():
    with pytest.raises(InputError, match="cannot split 2 examples over 3"):
        shard_bounds(2, 0, 3)


def test_single_process_is_a_pass_through(tmp_path):
    assert all_reduce_sum(SINGLE) is None
    a = np.arange(4.0)
    assert broadcast_array(SINGLE, a) is a
    with ResultsFile(tmp_path / "r.h5", "a", run_id={"path": "x", "run_sha256": "0" * 64}) as f:
        view = RankResults(SINGLE, f)
        assert not view.is_complete("hessian/step_00000000/eigen")
        view.write_item("hessian/step_00000000/eigen", {"x": a})
        assert view.is_complete("hessian/step_00000000/eigen")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, port: int, path: str) -> None:
    """One of 2 gloo ranks: the primitives, the shared results view, a data-parallel HVP."""
    os.environ.update(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    ctx = init_from_env("cpu")
    try:
        assert (ctx.rank, ctx.world_size, ctx.backend) == (rank, 2, "gloo")
        assert all_reduce_sum(ctx)(torch.tensor([rank + 1.0])).item() == 3.0
        a = np.arange(6, dtype=np.float32).reshape(2, 3) if rank == 0 else None
        got = broadcast_array(ctx, a)
        assert got.dtype == np.float32 and np.array_equal(got, np.arange(6).reshape(2, 3))
        assert broadcast_array(ctx, None) is None and broadcast_bool(ctx, rank == 0) is True
        _check_rank_results(ctx, path)
        _check_data_parallel_hvp(ctx)
    finally:
        shutdown(ctx)


def _check_rank_results(ctx, path: str) -> None:
    results = ResultsFile(path, "a", run_id={"path": "x", "run_sha256": "0" * 64}) if ctx.is_writer else None
    view, key = RankResults(ctx, results), "hessian/step_00000000/eigen"
    assert not view.is_complete(key)
    view.write_item(key, {"eigenvectors": np.ones((2, 5), np.float32)})
    assert view.is_complete(key)
    assert np.array_equal(view.shared(lambda r: r.read_item(key)[0]["eigenvectors"]), np.ones((2, 5)))
    if results is not None:
        results.close()


def _check_data_parallel_hvp(ctx) -> None:
    from landscape.objective import Objective

    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(11, 3, generator=g, dtype=torch.float64), torch.randn(11, 1, generator=g, dtype=torch.float64)
    net = torch.nn.Linear(3, 1, bias=False).double()
    idx = shard(np.arange(11), ctx)   # 6 and 5 examples: weighting by the global N matters
    obj = Objective(net, X[idx], y[idx], loss="mse", batch_size=4, all_reduce=all_reduce_sum(ctx),
                    hvp_method="double_backward")
    v = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    err = (obj.hvp(obj.theta, v) - 2 * X.T @ (X @ v) / 11).abs().max().item()
    assert err <= DP_HVP_ATOL, f"rank {ctx.rank}: data-parallel HVP off by {err:.3g}"


def test_two_gloo_ranks_share_sums_broadcasts_and_one_results_file(tmp_path):
    """2 processes (torch.multiprocessing, gloo): all-reduce, broadcasts, RankResults, a sharded HVP."""
    torch.multiprocessing.spawn(_worker, args=(_free_port(), str(tmp_path / "r.h5")), nprocs=2, join=True)
    with ResultsFile(tmp_path / "r.h5", "r") as r:
        assert r.keys() == ["hessian/step_00000000/eigen"]


def _cli(args: list[str], nproc: int) -> subprocess.CompletedProcess:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
                if nproc > 1 else [sys.executable])
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.run([*launcher, "-m", "landscape", "hessian", *args], capture_output=True, text=True,
                          timeout=DIST_TIMEOUT_S, env=env)


def test_two_gloo_processes_match_one(tiny_run, tmp_path):
    """torchrun --nproc-per-node 2 on CPU: same eigenvalues (warm-started) and dense Hessian as 1 process.

    In the default run (about 9 s): once only here, a rank without the dense spectrum broke the
    item summaries, which every other test runs in one process."""
    common = [str(tiny_run.path), "--steps", "20,30", "--k", "3", "--tol", "1e-10", "--dtype", "float64",
              "--device", "cpu", "--subset", "101", "--batch-size", "16", "--params", "net.2.*", "--dense",
              "--dense-block", "40"]
    one, two = tmp_path / "one.h5", tmp_path / "two.h5"
    for out, nproc in ((one, 1), (two, 2)):
        done = _cli([*common, "--out", str(out)], nproc)
        assert done.returncode == 0, f"{nproc} process(es) failed:\n{done.stderr[-3000:]}"
    with ResultsFile(one, "r") as a, ResultsFile(two, "r") as b:
        assert a.keys() == b.keys() and len(a.keys()) == 4
        for key in a.keys():
            (x, xa), (y, ya) = a.read_item(key), b.read_item(key)
            assert ya["world_size"] == 2 and xa["world_size"] == 1
            if key.endswith("eigen"):
                rel = np.abs(x["eigenvalues"] - y["eigenvalues"]) / np.abs(x["eigenvalues"])
                assert rel.max() <= DIST_EIG_RTOL, f"{key}: relative differences {rel}"
            else:
                diff = np.abs(x["hessian"] - y["hessian"]).max()
                assert diff <= DIST_DENSE_ATOL, f"{key}: dense Hessians differ by {diff:.3g}"
        assert b.read_item("hessian/step_00000030/eigen")[1]["warm_start_step"] == 20


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs 2 GPUs for NCCL")
def test_two_nccl_processes_match_one(tiny_run, tmp_path):
    """torchrun --nproc-per-node 2 with --device cuda: NCCL all-reduce, same eigenvalues as 1 process."""
    common = [str(tiny_run.path), "--steps", "last", "--k", "3", "--tol", "1e-10", "--dtype", "float64",
              "--device", "cuda", "--subset", "128"]
    for name, nproc in (("one", 1), ("two", 2)):
        done = _cli([*common, "--out", str(tmp_path / f"{name}.h5")], nproc)
        assert done.returncode == 0, done.stderr[-3000:]
    with ResultsFile(tmp_path / "one.h5", "r") as a, ResultsFile(tmp_path / "two.h5", "r") as b:
        x = a.read_item("hessian/step_00000030/eigen")[0]["eigenvalues"]
        y = b.read_item("hessian/step_00000030/eigen")[0]["eigenvalues"]
    assert (np.abs(x - y) / np.abs(x)).max() <= DIST_EIG_RTOL, (x, y)
