"""Full-data HVP throughput as a multiple of one full-data gradient, every tool side by side.

One process, one problem (model, θ, data, batch size), one random vector v. Methods:

* gradient, plain PyTorch (``loss.backward()`` per batch): the denominator of "× gradient";
* gradient, ours (``Objective.grad``);
* ours, forward-over-reverse (``Objective.hvp``, ``jvp(grad)``): one vector, and a block of
  ``K_BATCHED`` vectors in one vmapped pass (time per vector);
* ours, double backward (``Objective(..., hvp_method="double_backward")``);
* PyHessian ``dataloader_hv_product``, hessian-eigenthings ``HessianOperator.matvec``,
  curvlinops ``HessianLinearOperator @ v``.

Before timing, every HVP is compared with ours on the same v (relative L2); a method that
disagrees by more than ``AGREE_RTOL`` is reported and not timed. Timing is interleaved (round
r calls every method once), so the "× gradient" ratio is the median over rounds of
same-round ratios; the spread is their min–max.

Usage: ``python bench/hvp.py [--quick|--tiny] [--device cpu|cuda] [--repeats R] [--json OUT]``
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402
from common import (PeakMemory, bench_main, machine_info, markdown_table, mib, profile_top_ops,  # noqa: E402
                    rel_l2, round_ratios, setup_torch, time_interleaved)
from problems import Problem, plain_gradient, preset_problem, size_of  # noqa: E402

K_BATCHED = 8  # vectors per batched pass (issue 2: "batched over k=8 vectors")
AGREE_RTOL = 1e-5  # float32 HVPs of one matrix by different autodiff orders: measured ≤ 5e-7 (performance.md §2.2)
TARGET_SINGLE = 3.0  # issue 2 (CPU): one HVP ≤ 3.0 gradients
TARGET_BATCHED = 2.5  # issue 2 (CPU): per vector, batched over k = 8, ≤ 2.5 gradients
REPEATS = {"full": 5, "quick": 5, "tiny": 1}
GRADIENT = "gradient, plain loss.backward()"
SINGLE = "ours, jvp(grad), 1 vector"
BATCHED = f"ours, jvp(grad) vmapped, {K_BATCHED} vectors"
PEER_LABELS = {"pyhessian": "PyHessian dataloader_hv_product", "eigenthings": "hessian-eigenthings HessianOperator",
               "curvlinops": "curvlinops HessianLinearOperator"}


def _calls(problem: Problem, V: torch.Tensor) -> dict[str, tuple[Callable[[], torch.Tensor], int]]:
    """label → (zero-argument call, vectors per call)."""
    obj, obj_db = problem.objective(), problem.objective(hvp_method="double_backward")
    theta, v = obj.theta, V[0]
    calls = {GRADIENT: (lambda: plain_gradient(problem), 1),
             "gradient, ours Objective.grad": (lambda: obj.grad(theta), 1),
             SINGLE: (lambda: obj.hvp(theta, v), 1),
             BATCHED: (lambda: obj.hvp(theta, V), K_BATCHED),
             "ours, double backward, 1 vector": (lambda: obj_db.hvp(theta, v), 1)}
    for peer, label in PEER_LABELS.items():
        if peers.available(peer):
            hv = peers.HVPS[peer](problem)
            calls[label] = (lambda hv=hv: hv(v), 1)
    return calls


def _agreement(calls: dict, reference: torch.Tensor) -> dict[str, float]:
    """Relative L2 difference of each HVP (first row of a block) from ours on the same v."""
    out = {}
    for label, (call, k) in calls.items():
        if not label.startswith("gradient"):
            Hv = call()
            out[label] = rel_l2(Hv[0] if k > 1 else Hv, reference)
    return out


def _memory(calls: dict, device: torch.device) -> dict[str, float]:
    peaks = {}
    for label, (call, _) in calls.items():
        with PeakMemory(device) as m:
            call()
        peaks[label] = mib(m.peak_bytes)
    return peaks


def _rows(calls, timings, agree, peaks) -> list[dict]:
    base = timings[GRADIENT]
    rows = []
    for label, (_, k) in calls.items():
        if label not in timings:
            rows.append(dict(method=label, agreement=agree.get(label), timed=False))
            continue
        ratio, lo, hi = round_ratios(timings[label], base, per_call=k)
        rows.append(dict(method=label, vectors_per_call=k, seconds_per_call=timings[label].median_s,
                         spread_s=timings[label].spread(), seconds_per_vector=timings[label].median_s / k,
                         x_gradient=ratio, x_gradient_min=lo, x_gradient_max=hi, peak_mib=peaks[label],
                         agreement=agree.get(label), timed=True))
    return rows


def run(args) -> dict:
    """Measure; return the results (rows, targets, machine, problem, profile if a target is missed)."""
    device = setup_torch(args.device, args.threads)
    problem = preset_problem(args)
    V = torch.randn(K_BATCHED, problem.P, generator=torch.Generator().manual_seed(0)).to(device)
    calls = _calls(problem, V)
    agree = _agreement(calls, calls[SINGLE][0]())
    timed = {k: c for k, c in calls.items() if agree.get(k, 0.0) <= AGREE_RTOL}
    repeats = args.repeats or REPEATS[size_of(args)]
    timings = time_interleaved({k: c for k, (c, _) in timed.items()}, repeats=repeats, device=device)
    rows = _rows(calls, timings, agree, _memory(timed, device))
    result = dict(benchmark="hvp", machine=machine_info(device), problem=problem.describe(),
                  config=problem.config, repeats=repeats, memory_method=PeakMemory(device).method,
                  rows=rows, targets=_targets(rows))
    if size_of(args) != "tiny" and not all(t["met"] for t in result["targets"]):
        result["profile_single_hvp"] = profile_top_ops(calls[SINGLE][0], device)
        result["profile_gradient"] = profile_top_ops(calls[GRADIENT][0], device)
    return result


def _targets(rows: list[dict]) -> list[dict]:
    by = {r["method"]: r for r in rows if r["timed"]}
    return [dict(target=f"{name} ≤ {bound}× gradient", value=by[label]["x_gradient"],
                 met=by[label]["x_gradient"] <= bound)
            for name, label, bound in (("single HVP", SINGLE, TARGET_SINGLE),
                                       (f"batched HVP (k={K_BATCHED}) per vector", BATCHED, TARGET_BATCHED))
            if label in by]


def report(result: dict) -> str:
    """The Markdown section for RESULTS.md."""
    head = ["method", "s/call (median)", "min–max s", "s/vector", "× gradient (median [min–max] over rounds)",
            "peak MiB", "rel. L2 vs ours"]
    rows = [[r["method"], r["seconds_per_call"], r["spread_s"], r["seconds_per_vector"],
             f"{r['x_gradient']:.2f} [{r['x_gradient_min']:.2f}–{r['x_gradient_max']:.2f}]", r["peak_mib"],
             "—" if r["agreement"] is None else f"{r['agreement']:.1e}"] if r["timed"]
            else [r["method"], "not timed: disagrees", "", "", "", "", f"{r['agreement']:.1e}"]
            for r in result["rows"]]
    lines = [f"Problem: {result['problem']}; {result['repeats']} interleaved rounds after 1 warm-up; "
             f"memory: {result['memory_method']}.", "", markdown_table(head, rows), ""]
    lines += [f"- target {t['target']}: {t['value']:.2f}× — {'met' if t['met'] else 'MISSED'}"
              for t in result["targets"]]
    for key in ("profile_single_hvp", "profile_gradient"):
        if key in result:
            lines += ["", f"{key} (torch.profiler, top ops by self time):", "```", result[key], "```"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    def extra_args(parser) -> None:
        parser.add_argument("--repeats", type=int, default=None, help="interleaved timing rounds")

    return bench_main(__doc__, run, report, argv, extra_args)


if __name__ == "__main__":
    raise SystemExit(main())
