"""Data-parallel Hessian work under ``torchrun``: process group, shards, all-reduce.

The Hessian of the full-dataset mean loss is a weighted sum over examples,

    H = (1/N) Σ_i ∇²ℓ_i(θ) = Σ_r (N_r/N) H_r,

so each of R processes computes the batch-weighted partial product over its
contiguous shard of the N examples and one sum all-reduce of the final
P-vector gives ``Hv`` on every rank (the scheme of hessian-eigenthings'
``DDPHessianOperator``). Everything else — Lanczos state, tridiagonals,
eigenvectors — is replicated: every rank runs the same deterministic solver on
bitwise-identical products, so the ranks stay in lockstep without further
communication. Only rank 0 opens the results file; the other ranks learn what
it holds (complete items, warm-start vectors, finished dense blocks) by
broadcast (:class:`RankResults`).

``torchrun --nproc-per-node G -m landscape hessian ...`` sets ``WORLD_SIZE``,
``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_from_env`
reads them and picks NCCL for CUDA devices and gloo for the CPU.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from landscape.errors import InputError

# dtype codes for broadcasting arrays whose dtype only rank 0 knows
_DTYPES = [np.float64, np.float32, np.int64, np.bool_]
_MAX_NDIM = 6


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: ``rank`` of ``world_size``, its ``device`` and ``backend``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None   # "nccl" | "gloo" | None (single process)
    device: str = "cpu"

    @property
    def distributed(self) -> bool:
        """True when more than one process shares the work."""
        return self.world_size > 1

    @property
    def is_writer(self) -> bool:
        """Only rank 0 writes results and shows progress."""
        return self.rank == 0


SINGLE = DistContext()


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise InputError(f"environment variable {name}={value!r} is not an integer; "
                         "launch with torchrun, which sets it") from None


def init_from_env(device: str) -> DistContext:
    """Join the process group ``torchrun`` describes, or return a single-process context.

    Args:
        device: the requested device (``"cpu"``, ``"cuda"`` or ``"cuda:i"``); under
            ``torchrun`` a CUDA device becomes ``cuda:LOCAL_RANK``.

    Returns:
        The :class:`DistContext`; with ``WORLD_SIZE`` ≤ 1 no process group is made.
    """
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return DistContext(device=device)
    rank, local = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    cuda = torch.device(device).type == "cuda"
    if cuda:
        device = f"cuda:{local}"
        torch.cuda.set_device(local)
    backend = "nccl" if cuda else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world)
    return DistContext(rank, world, local, backend, device)


def shutdown(ctx: DistContext, *, ok: bool = True) -> None:
    """Leave the process group (a no-op for a single process).

    After a successful run (``ok``) every rank first waits at a barrier, so no rank
    tears down its connections while another still uses them (gloo aborts then). After
    an error there is no barrier: the other ranks may be inside another collective, and
    torchrun stops them when this one exits.
    """
    if ctx.distributed and dist.is_initialized():
        if ok:
            dist.barrier()
        dist.destroy_process_group()


def shard_bounds(N: int, rank: int, world_size: int) -> tuple[int, int]:
    """Contiguous shard ``[start, stop)`` of ``N`` examples for ``rank``; sizes differ by ≤ 1."""
    if N < world_size:
        raise InputError(f"cannot split {N} examples over {world_size} processes; "
                         "use fewer processes or a larger --subset")
    base, extra = divmod(N, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def shard(indices: np.ndarray, ctx: DistContext) -> np.ndarray:
    """This rank's contiguous share of the example ``indices`` (all of them for one process)."""
    start, stop = shard_bounds(len(indices), ctx.rank, ctx.world_size)
    return indices[start:stop]


def _comm_device(ctx: DistContext) -> torch.device:
    return torch.device(ctx.device) if ctx.backend == "nccl" else torch.device("cpu")


def all_reduce_sum(ctx: DistContext) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The Objective's ``all_reduce`` hook: the sum over ranks of a partial result.

    Returns None for a single process (nothing to reduce). The input is not
    modified; the result has its dtype and device.
    """
    if not ctx.distributed:
        return None

    def reduce(t: torch.Tensor) -> torch.Tensor:
        out = t.detach().to(_comm_device(ctx), copy=True)
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out.to(t.device)

    return reduce


def broadcast_array(ctx: DistContext, a: np.ndarray | None) -> np.ndarray | None:
    """Rank 0's ``a`` (or None) on every rank; shape and dtype travel with it.

    Supported dtypes: float64, float32, int64, bool (up to 6 dimensions).
    """
    if not ctx.distributed:
        return a
    dev = _comm_device(ctx)
    header = torch.zeros(3 + _MAX_NDIM, dtype=torch.int64, device=dev)
    if ctx.is_writer and a is not None:
        header[:3] = torch.tensor([1, a.ndim, _dtype_code(a.dtype)])
        header[3:3 + a.ndim] = torch.tensor(a.shape, dtype=torch.int64)
    dist.broadcast(header, src=0)
    present, ndim, code = (int(x) for x in header[:3])
    if not present:
        return None
    shape = tuple(int(x) for x in header[3:3 + ndim])
    data = torch.zeros(shape, dtype=torch.float64, device=dev)
    if ctx.is_writer:
        data.copy_(torch.from_numpy(np.asarray(a, dtype=np.float64)))
    dist.broadcast(data, src=0)
    return data.cpu().numpy().astype(_DTYPES[code])


def _dtype_code(dtype) -> int:
    for code, d in enumerate(_DTYPES):
        if np.dtype(dtype) == np.dtype(d):
            return code
    raise InputError(f"broadcast_array: unsupported dtype {dtype}; use one of float64, float32, int64, bool")


def broadcast_bool(ctx: DistContext, value: bool) -> bool:
    """Rank 0's ``value`` on every rank."""
    out = broadcast_array(ctx, np.array([bool(value)]))
    return bool(out[0])


class RankResults:
    """A results file seen identically by every rank; only rank 0 holds and writes it.

    Rank 0 passes the open :class:`landscape.io.ResultsFile`, the other ranks None.
    Queries (:meth:`is_complete`, :meth:`blocks_done`, :meth:`shared`) are answered by
    rank 0 and broadcast; writes happen on rank 0 only. Every rank must make the same
    calls in the same order (they do: all run the same plan). With one process this is
    a thin pass-through.
    """

    def __init__(self, ctx: DistContext, results):
        if ctx.is_writer and results is None:
            raise InputError("rank 0 needs the open results file")
        self.ctx, self.results = ctx, results if ctx.is_writer else None

    @property
    def path(self) -> str:
        return self.results.path if self.results is not None else "(rank 0's results file)"

    def shared(self, query: Callable) -> np.ndarray | None:
        """``query(results)`` evaluated on rank 0 (an array or None), on every rank."""
        return broadcast_array(self.ctx, query(self.results) if self.ctx.is_writer else None)

    def is_complete(self, key: str) -> bool:
        return broadcast_bool(self.ctx, self.results.is_complete(key) if self.ctx.is_writer else False)

    def blocks_done(self, key: str, name: str) -> np.ndarray:
        return self.shared(lambda r: r.blocks_done(key, name))

    def write_item(self, key: str, arrays: dict, attrs: dict | None = None, **kw) -> None:
        if self.ctx.is_writer:
            self.results.write_item(key, arrays, attrs, **kw)

    def create_block_dataset(self, *args, **kw) -> None:
        if self.ctx.is_writer:
            self.results.create_block_dataset(*args, **kw)

    def write_block(self, *args, **kw) -> None:
        if self.ctx.is_writer:
            self.results.write_block(*args, **kw)

    def remove_item(self, key: str) -> None:
        if self.ctx.is_writer:
            self.results.remove_item(key)
