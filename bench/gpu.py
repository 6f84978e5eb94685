"""The GPU suite (issue 8 targets, H100): full-data ResNet-20 on 50,000 CIFAR-shaped images.

All data live on the GPU. TF32 is off for every figure (``cudnn.allow_tf32 = False``,
``set_float32_matmul_precision("highest")``, set by ``common.setup_torch``): an eigenvalue to
1e-3 must not depend on TF32's ≈1e-3 products. Measured:

1. one full-data HVP (ours, ``Objective.hvp``) and one gradient, median of ``repeats``;
   the same HVP with the model and data in ``channels_last``; and an experiment, not the
   library path: ``torch.compile`` of a per-batch ``jvp(grad(·))`` kernel written here, to see
   what compiling would buy. Each variant is checked against the plain HVP (relative L2);
2. top-``k`` eigenpairs: ``eigsh(H, k, tol)``, HVPs and seconds;
3. SLQ: ``spectral_density(H, probes, iters)``, seconds;
4. ``resnet_100k`` (same data): seconds for ``dense_columns`` Hessian columns by
   ``dense_hessian(..., columns=...)``, extrapolated × P / columns to the whole matrix;
5. the floor: FLOPs of one full-data HVP (``FlopCounterMode`` on one batch × N/B) divided by
   the measured float32 matmul rate (``torch.mm`` of n×n, 2n³ FLOPs, TF32 off).

``--device cpu --tiny`` runs every step at toy size on the CPU (so this file is not dead code
where there is no GPU); its seconds say nothing about a GPU.

Usage: ``python bench/gpu.py [--tiny] [--device cuda|cpu] [--batch-size B] [--no-compile] [--json OUT]``
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (PeakMemory, bench_main, log, machine_info, mib, profile_top_ops, rel_l2,  # noqa: E402
                    setup_torch, time_call)
from gpu_parts import compiled_hvp, flops_of, matmul_rate  # noqa: E402
from gpu_report import report, targets  # noqa: E402
from problems import build_problem  # noqa: E402

import landscape as ls  # noqa: E402

AGREE_RTOL = 1e-5  # a variant's HVP vs the plain one: float32, different kernels/order (cf. hvp.py)


@dataclass(frozen=True)
class GpuConfig:
    """Sizes of the GPU suite; ``TINY`` is the CPU smoke-test version."""

    model: str = "resnet20"  # the main problem (He et al. ResNet-20, P = 269,722)
    dense_model: str = "resnet_100k"  # the dense-Hessian problem (P = 105,940)
    model_kwargs: tuple = ()  # (name, value) pairs for both models
    N: int = 50_000  # CIFAR-10 train-set size, synthetic images resident on the device
    batch_size: int = 1000  # examples per batch of the objective
    k: int = 20  # top-k eigenpairs
    topk_tol: float = 1e-3  # eigsh residual tol (relative to ‖H‖)
    slq_probes: int = 10
    slq_iters: int = 100
    dense_columns: int = 256  # resnet_100k columns timed, then extrapolated to P
    dense_chunk: int = 64  # columns per batched pass (dense_hessian's default)
    matmul_n: int = 8192  # size of the matmul that measures the float32 rate
    repeats: int = 5


# The CPU smoke test: same code path, a quarter-width ResNet-8 for both roles, 16 images.
TINY = GpuConfig(model="resnet8", dense_model="resnet8", model_kwargs=(("width", 0.25),), N=16, batch_size=8, k=3,
                 slq_probes=2, slq_iters=5, dense_columns=8, dense_chunk=4, matmul_n=512, repeats=2)


def _problem(model: str, cfg: GpuConfig, device):
    return build_problem(model, dataset="cifar_synthetic", N=cfg.N, batch_size=cfg.batch_size, device=device,
                         **dict(cfg.model_kwargs))


def _channels_last(problem):
    model = copy.deepcopy(problem.model).to(memory_format=torch.channels_last)
    x = problem.inputs.contiguous(memory_format=torch.channels_last)
    return ls.Objective(model, x, problem.targets, batch_size=problem.batch_size, bn="eval")


def hvp_section(problem, cfg: GpuConfig, compile_: bool) -> dict:
    """Gradient and HVP times, variants, memory and FLOPs of the ResNet-20 problem."""
    obj, device = problem.objective(), problem.device
    theta = obj.theta
    v = torch.randn(problem.P, generator=torch.Generator().manual_seed(0)).to(device)
    Hv = obj.hvp(theta, v)
    variants = {"plain (NCHW)": lambda: obj.hvp(theta, v)}
    cl = _channels_last(problem)
    variants["channels_last"] = lambda: cl.hvp(theta, v)
    if compile_:
        variants["torch.compile experiment"] = compiled_hvp(problem, theta, v)
    out = dict(variants={})
    for name, call in variants.items():
        out["variants"][name] = _variant(call, Hv, cfg, device)
    out["gradient_s"] = time_call(lambda: obj.grad(theta), repeats=cfg.repeats, device=device)[0].median_s
    out["hvp_s"] = out["variants"]["plain (NCHW)"]["seconds"]
    with PeakMemory(device) as m:
        obj.hvp(theta, v)
    out["hvp_peak_mib"] = mib(m.peak_bytes)
    one_batch = obj.subset(range(cfg.batch_size))
    scale = problem.N / cfg.batch_size
    out["hvp_tflop"] = flops_of(lambda: one_batch.hvp(theta, v)) * scale / 1e12
    out["gradient_tflop"] = flops_of(lambda: one_batch.grad(theta)) * scale / 1e12
    out["profile"] = profile_top_ops(lambda: one_batch.hvp(theta, v), device)
    return out


def _variant(call, reference: torch.Tensor, cfg: GpuConfig, device) -> dict:
    try:
        agreement = rel_l2(call(), reference)
    except Exception as err:  # noqa: BLE001 — an experiment that does not run is a result
        return dict(seconds=None, agreement=None, note=f"fails: {type(err).__name__}: {str(err).splitlines()[0]}")
    if agreement > AGREE_RTOL:
        return dict(seconds=None, agreement=agreement, note="disagrees: not timed")
    return dict(seconds=time_call(call, repeats=cfg.repeats, device=device)[0].median_s, agreement=agreement)


def spectrum_section(problem, cfg: GpuConfig) -> dict:
    obj = problem.objective()
    H = obj.hessian(obj.theta)
    start = time.perf_counter()
    res = ls.eigsh(H, k=cfg.k, tol=cfg.topk_tol, seed=0)
    top = dict(seconds=time.perf_counter() - start, hvps=res.num_matvecs, converged=res.converged,
               eigenvalues=res.eigenvalues.tolist())
    log(f"top-{cfg.k}: {top['seconds']:.1f} s")
    start = time.perf_counter()
    dens = ls.spectral_density(H, num_probes=cfg.slq_probes, num_iters=cfg.slq_iters, seed=0)
    slq = dict(seconds=time.perf_counter() - start, hvps=dens.num_matvecs)
    log(f"SLQ {cfg.slq_probes}×{cfg.slq_iters}: {slq['seconds']:.1f} s")
    return dict(topk=top, slq=slq)


def dense_section(cfg: GpuConfig, device) -> dict:
    """The dense model: time ``dense_columns`` columns (after one warm-up chunk), extrapolate to P."""
    problem = _problem(cfg.dense_model, cfg, device)
    obj = problem.objective()
    theta = obj.theta
    ls.dense_hessian(obj, theta, columns=range(cfg.dense_chunk), chunk_size=cfg.dense_chunk)
    t = time_call(lambda: ls.dense_hessian(obj, theta, columns=range(cfg.dense_columns), chunk_size=cfg.dense_chunk),
                  repeats=1, warmup=0, device=device)[0].median_s
    return dict(P=problem.P, columns=cfg.dense_columns, seconds=t, columns_per_s=cfg.dense_columns / t,
                extrapolated_s=t * problem.P / cfg.dense_columns)


def run(args) -> dict:
    device = setup_torch(args.device, args.threads)
    cfg = TINY if args.tiny else GpuConfig()
    if args.batch_size:
        cfg = replace(cfg, batch_size=args.batch_size)
    problem = _problem(cfg.model, cfg, device)
    log(f"problem ready: {problem.describe()}")
    result = dict(benchmark="gpu", machine=machine_info(device), config=asdict(cfg), problem=problem.describe(),
                  tiny=bool(args.tiny), hvp=hvp_section(problem, cfg, args.compile))
    log(f"HVP: {result['hvp']['hvp_s']:.3f} s")
    result.update(spectrum_section(problem, cfg))
    result["dense_100k"] = dense_section(cfg, device)
    result["matmul_tflops"] = matmul_rate(cfg.matmul_n, device) / 1e12
    result["floor_s"] = result["hvp"]["hvp_tflop"] / result["matmul_tflops"]
    result["targets"] = targets(result)
    return result


def main(argv: list[str] | None = None) -> int:
    def extra_args(parser) -> None:
        parser.add_argument("--batch-size", type=int, default=None, help="objective batch size (default 1000)")
        parser.add_argument("--no-compile", dest="compile", action="store_false",
                            help="skip the torch.compile experiment (it needs a working inductor toolchain)")

    def no_cuda(args) -> int | None:
        if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
            print("gpu.py: no CUDA device here; use --device cpu --tiny for a smoke test", file=sys.stderr)
            return 2
        return None

    return bench_main(__doc__, run, report, argv, extra_args, check=no_cuda)


if __name__ == "__main__":
    raise SystemExit(main())
