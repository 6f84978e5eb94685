"""Cost of the interventions (issue 19) and of Papyan's parts, side by side against a gradient and an HVP.

On one problem (model, θ, data, batch size) the calls below are timed **interleaved** (round r
calls each once), so the ratios are medians of same-round ratios:

* the units: one full-data forward pass (``loss_and_accuracy``), one full-data gradient, one HVP
  (forward-over-reverse) and one GGN product (JVP, loss Hessian, VJP);
* Papyan: the products of the within-class part (G minus the low-rank parts), of the class-mean
  and cross-class parts (dense, no data) and of H − G; and the one-time pass computing every
  δ_{c,c'} and class gradient (each batch split by class: C + 1 reverse passes per example);
* Newton in a top-k subspace: one gradient plus the evaluation of the k + 1 points θ_m
  (one forward each); the number of HVPs is zero (the stored eigenpairs are reused);
* band noise: one draw = one forward per evaluated split;
* the shaped update: one SGD step of the trainer with and without a k-dimensional
  :class:`landscape.optim.SubspaceShape` (the shaping adds 2k·P multiply-adds).

Usage::

    .venv/bin/python bench/interventions_cost.py [--model cnn1d] [--dataset mnist1d] [--N 1000]
        [--batch-size 250] [--k 10] [--repeats 5] [--tiny]

Prints a Markdown table for bench/RESULTS.md and the machine header.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analyses.interventions import newton as NW  # noqa: E402
from bench.common import header_markdown, machine_info, markdown_table, round_ratios, setup_torch  # noqa: E402
from bench.common import time_interleaved  # noqa: E402
from bench.problems import build_problem  # noqa: E402
from landscape.directions import gaussian, unit_rows  # noqa: E402
from landscape.operators import DifferenceOperator  # noqa: E402
from landscape.optim import SubspaceShape, sgd_update  # noqa: E402
from landscape.papyan import papyan_decomposition  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="cnn1d")
    p.add_argument("--dataset", default="mnist1d", choices=("cifar_synthetic", "synthetic1d", "mnist1d"))
    p.add_argument("--N", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--k", type=int, default=10, help="eigen-subspace dimension (Newton points, shaping)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: 1 on the CPU)")
    p.add_argument("--tiny", action="store_true", help="a smoke test: small model and data, one repeat")
    p.add_argument("--json", default=None, help="also write the figures as JSON here")
    return p.parse_args(argv)


def _calls(problem, k: int) -> tuple[dict, dict]:
    """name → zero-argument call, and name → (what it counts as, per-call units) for the table."""
    obj = problem.objective()
    theta, C = obj.theta, 10
    V = unit_rows(gaussian(problem.P, k, seed=0, device=theta.device))
    dec = papyan_decomposition(obj, theta, C)
    H, G, W = obj.hessian(theta), dec.ggn, dec.part("within")
    cls, cross, resid = dec.part("class"), dec.part("cross"), DifferenceOperator(H, G)
    v = V[0]
    g = obj.grad(theta)
    steps = NW.newton_steps((V @ g).double().cpu().numpy(), torch.linspace(2, 1, k).numpy())
    points = NW.path(theta, V, steps)
    x, y = problem.inputs[:problem.batch_size], problem.targets[:problem.batch_size]
    spec_theta = theta.clone()
    shape = SubspaceShape(V, torch.linspace(0.5, 1.5, k).to(theta), 1.0)

    def sgd_step(shaped: bool):
        th = spec_theta.detach().requires_grad_(True)
        out = torch.func.functional_call(problem.model, obj.spec.unflatten(th), (x,))
        (grad,) = torch.autograd.grad(F.cross_entropy(out, y), th)
        return sgd_update(th.detach(), grad, None, 0.01, 0.0, False, 0.0, shape if shaped else None)

    calls = {
        "forward": lambda: obj.loss_and_accuracy(theta),
        "gradient": lambda: obj.grad(theta),
        "hvp": lambda: H @ v,
        "ggn": lambda: G @ v,
        "within": lambda: W @ v,
        "class": lambda: cls @ v,
        "cross": lambda: cross @ v,
        "residual": lambda: resid @ v,
        "papyan_setup": lambda: papyan_decomposition(obj, theta, C),
        "newton": lambda: (obj.grad(theta), NW.evaluate(obj, points)),
        "noise_draw": lambda: obj.losses_at(theta[None] + 0.01 * V[:1]),
        "sgd_step": lambda: sgd_step(False),
        "shaped_step": lambda: sgd_step(True),
    }
    labels = {
        "forward": "one forward pass (loss and accuracy)", "gradient": "one gradient", "hvp": "one HVP",
        "ggn": "one GGN product", "within": "Papyan within-class product (G − low-rank parts)",
        "class": "Papyan class-mean product (dense, rank ≤ C)", "cross": "Papyan cross-class product (dense)",
        "residual": "H − G product",
        "papyan_setup": f"Papyan setup: every δ_cc' and g_c (split by class: {C + 1} VJPs per example)",
        "newton": f"Newton in the top-{k} subspace: 1 gradient + {k + 1} points", "noise_draw": "one band-noise draw",
        "sgd_step": f"SGD step, batch {problem.batch_size}", "shaped_step": f"… shaped in a {k}-dim subspace",
    }
    return calls, labels


def main(argv=None) -> dict:
    args = parse_args(argv)
    setup_torch(args.device, args.threads)
    if args.tiny:
        args.N, args.batch_size, args.k, args.repeats, args.dataset = 64, 32, 3, 1, "synthetic1d"
    problem = build_problem(args.model, dataset=args.dataset, N=args.N, batch_size=args.batch_size, device=args.device,
                            **({"channels": (8, 8, 8)} if args.tiny else {}))
    calls, labels = _calls(problem, args.k)
    t = time_interleaved(calls, repeats=args.repeats, device=args.device)
    rows, figures = [], {}
    for name, label in labels.items():
        grad_ratio = round_ratios(t[name], t["gradient"])
        hvp_ratio = round_ratios(t[name], t["hvp"])
        figures[name] = {"median_s": t[name].median_s, "x_gradient": grad_ratio[0], "x_hvp": hvp_ratio[0]}
        rows.append([label, t[name].median_s, t[name].spread(), f"{grad_ratio[0]:.3g} ({grad_ratio[1]:.3g}–"
                     f"{grad_ratio[2]:.3g})", f"{hvp_ratio[0]:.3g} ({hvp_ratio[1]:.3g}–{hvp_ratio[2]:.3g})"])
    print(f"### Interventions and Papyan's parts ({problem.describe()}; k = {args.k}; {args.repeats} interleaved rounds)\n")
    print(markdown_table(["call", "median s", "min–max s", "× gradient (median, min–max over rounds)",
                          "× HVP (median, min–max)"], rows))
    print("\nTarget: each Papyan part costs no more HVP-equivalents than the GGN product itself (≤ 2 passes).\n")
    info = machine_info(args.device)
    print(header_markdown(info))
    if args.json:
        Path(args.json).write_text(json.dumps({"figures": figures, "machine": info}, indent=1))
    return figures


if __name__ == "__main__":
    main()
