"""Benchmark: the cost of a hypergradient against the training run it differentiates, and memory against T.

Part 1 (ratios, issue 16's targets): on MNIST-1D (1,000 examples, batch 250, an MLP 40-100-50-10
with tanh, β = 0.9, float32, T = 200), time side by side, interleaved: the training run
(:func:`landscape.hyper.train`, the trainer's update rule) and dL_val/d ln η by forward mode,
checkpointed reverse mode, reversible learning and naive unrolling (``torch.func``). Targets:
forward ≤ 3×, checkpointed ≤ 4× with ≤ 2√T stored states, reversible ≤ 4× with a buffer
≤ 1/20 of storing θ and m per step.

Part 2 (the table): a small MLP 40-32-10 (batch 50), T = 10 … 10,000: time and peak memory
(RSS above the start, sampled; and the count of what each route holds) of the four routes and
of ``higher`` (facebookresearch/higher, unrolled reverse mode) when it is installed.

    .venv/bin/python bench/hyper.py            # both parts (about 15 minutes on 2 busy cores)
    .venv/bin/python bench/hyper.py --quick    # T ≤ 1000, fewer repeats
    .venv/bin/python bench/hyper.py --tiny     # smoke test
    .venv/bin/python bench/hyper.py --ratios-only   # part 1 only
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import (PeakMemory, bench_main, header_markdown, log, machine_info, mib, round_ratios,  # noqa: E402
                    setup_torch, time_interleaved)

import landscape.hyper as lh  # noqa: E402
from landscape.datasets import load_dataset  # noqa: E402
from landscape.models import build_model  # noqa: E402

ROUTES = ("forward", "checkpointed", "reversible", "unrolled")
TARGETS = {"forward": 3.0, "checkpointed": 4.0, "reversible": 4.0}


def problem(hidden, batch_size: int, T: int, num_train: int, dtype, device, lr: float):
    ds = load_dataset("mnist1d", num_train=num_train, num_test=1000, device=device)
    net = build_model("mlp", seed=0, in_dim=40, hidden=list(hidden), num_classes=10, activation="tanh")
    g = torch.Generator().manual_seed(0)
    per_epoch = num_train // batch_size
    perms = [torch.randperm(num_train, generator=g) for _ in range(math.ceil(T / per_epoch))]
    batches = torch.stack([perms[t // per_epoch][(t % per_epoch) * batch_size:(t % per_epoch + 1) * batch_size]
                           for t in range(T)])
    return lh.TrainingProblem(net.to(dtype), ds.x_train, ds.y_train, ds.x_test, ds.y_test, batches=batches,
                              lr=lr, momentum=0.9, dtype=dtype, device=device)


def calls(prob, T: int) -> dict:
    """The training run and the four routes, each a zero-argument call."""
    h = lh.default_hyper(prob, ["log_lr"], T)
    one = {"log_lr": torch.ones((), dtype=prob.dtype, device=prob.device)}
    out = {"train": lambda: lh.train(prob, h, T),
           "forward": lambda: lh.directional(prob, h, one, [T])}
    for route in ("checkpointed", "reversible", "unrolled"):
        out[route] = lambda route=route: lh.hypergradient(prob, h, T, ["log_lr"], route=route)
    if _higher_available():
        out["higher"] = lambda: higher_unrolled(prob, T)
    return out


def _higher_available() -> bool:
    try:
        import higher  # noqa: F401
    except ImportError:
        return False
    return True


def higher_unrolled(prob, T: int) -> float:
    """dL_val/d ln η by facebookresearch/higher (differentiable SGD with momentum, unrolled)."""
    import copy

    import higher

    net = copy.deepcopy(prob.model)
    log_lr = torch.tensor(math.log(prob.lr), dtype=prob.dtype, device=prob.device, requires_grad=True)
    opt = torch.optim.SGD(net.parameters(), lr=prob.lr, momentum=lh.hyperparams.quantize_momentum(prob.momentum))
    with higher.innerloop_ctx(net, opt, override={"lr": [log_lr.exp()]}, copy_initial_weights=True) as (f, d):
        for t in range(T):
            x, y = prob.batch(t, prob.x_train)
            d.step(prob.loss_fn(f(x), y).mean())
        val = prob.loss_fn(f(prob.x_val), prob.y_val).mean()
    (g,) = torch.autograd.grad(val, log_lr)
    return float(g)


def agreement(prob, T: int) -> dict:
    """Each route's dL/d ln η relative to the unrolled one (they must agree before timing means anything)."""
    h = lh.default_hyper(prob, ["log_lr"], T)
    ref = float(lh.hypergradient(prob, h, T, ["log_lr"], route="unrolled").grads["log_lr"])
    got = {r: float(lh.hypergradient(prob, h, T, ["log_lr"], route=r).grads["log_lr"])
           for r in ("forward", "checkpointed", "reversible")}
    if _higher_available():
        got["higher"] = higher_unrolled(prob, T)
    return {r: abs(v - ref) / abs(ref) for r, v in got.items()}


def counted(prob, T: int) -> dict:
    """What each route holds, by count (stored states × bytes, the reversible buffer)."""
    h = lh.default_hyper(prob, ["log_lr"], T)
    out = {}
    for route in ("forward", "checkpointed", "reversible", "unrolled"):
        r = lh.hypergradient(prob, h, T, ["log_lr"], route=route)
        out[route] = {**r.memory, **{k: v for k, v in r.info.items() if k != "tangent_norms"}}
    return out


def part_ratios(args, device) -> dict:
    T = 20 if args.tiny else (100 if args.quick else 200)
    hidden = (8,) if args.tiny else (100, 50)
    prob = problem(hidden, 250, T, 1000, torch.float32, device, lr=0.05)
    log(f"ratios: P = {prob.P}, T = {T}")
    fns = calls(prob, T)
    repeats = args.repeats or (2 if args.tiny else (3 if args.quick else 5))
    times = time_interleaved(fns, repeats=repeats, warmup=1, device=device)
    ratios = {name: round_ratios(t, times["train"]) for name, t in times.items() if name != "train"}
    return {"T": T, "P": prob.P, "times": times, "ratios": ratios, "counted": counted(prob, T),
            "agreement": agreement(prob, T)}


def part_table(args, device) -> dict:
    Ts = (10, 30) if args.tiny else ((10, 100, 1000) if args.quick else (10, 100, 1000, 10_000))
    rows = []
    for T in Ts:
        prob = problem((32,), 50, T, 1000, torch.float32, device, lr=0.05)
        fns = calls(prob, T)
        times = time_interleaved(fns, repeats=1 if T >= 1000 else 3, warmup=0 if T >= 1000 else 1, device=device)
        rows.append({"T": T, "P": prob.P, "times": times, "counted": counted(prob, T)})
        log(f"table: T = {T} timed")
    for row in rows:   # memory after every timing (PeakMemory slows allocation)
        prob = problem((32,), 50, row["T"], 1000, torch.float32, device, lr=0.05)
        row["peak"] = {}
        for name, fn in calls(prob, row["T"]).items():
            with PeakMemory(device) as pm:
                fn()
            row["peak"][name] = pm.peak_bytes
        log(f"table: T = {row['T']} memory measured")
    return {"rows": rows, "higher": _higher_available()}


def run(args) -> dict:
    device = setup_torch(args.device, args.threads)
    import os
    load = os.getloadavg()
    result = {"machine": machine_info(device), "load_before": load, "ratios": part_ratios(args, device),
              "table": None if args.ratios_only else part_table(args, device)}
    result["load_after"] = os.getloadavg()
    return result


def report(r: dict) -> str:
    p = r["ratios"]
    lines = [header_markdown(r["machine"]),
             f"Load average (1, 5, 15 min) before: {tuple(round(x, 2) for x in r['load_before'])}, "
             f"after: {tuple(round(x, 2) for x in r['load_after'])}.", "",
             f"### Hypergradient cost against the training run (P = {p['P']}, T = {p['T']}, float32)", "",
             "| route | time (s, median) | × training run (median, min–max over rounds) | target | "
             "stored | agreement with unrolled |", "|---|---|---|---|---|---|",
             f"| training run | {p['times']['train'].median_s:.3g} | 1 | | | |"]
    for name, (med, lo, hi) in p["ratios"].items():
        c = p["counted"].get(name, {})
        stored = _stored(c, p["T"], p["P"]) if c else ""
        lines.append(f"| {name} | {p['times'][name].median_s:.3g} | {med:.2f} ({lo:.2f}–{hi:.2f}) | "
                     f"{'≤ %g×' % TARGETS[name] if name in TARGETS else ''} | {stored} | "
                     f"{p['agreement'].get(name, 0.0):.1e} |")
    if r["table"] is None:
        return "\n".join(lines)
    lines += ["", "### Memory and time against T (MLP 40-32-10, batch 50, float32)", "",
              "Peak: RSS above the start of the call (sampled every 2 ms); counted: what the route holds "
              "(stored (θ, m) states, or the reversible route's exact state and information buffer).", "",
              "| T | " + " | ".join(f"{n} time (s) / peak MiB" for n in r["table"]["rows"][0]["times"]) + " |",
              "|---|" + "---|" * len(r["table"]["rows"][0]["times"])]
    for row in r["table"]["rows"]:
        cells = [f"{row['times'][n].median_s:.3g} / {mib(row['peak'][n]):.1f}" for n in row["times"]]
        lines.append(f"| {row['T']} | " + " | ".join(cells) + " |")
    lines += ["", "| T | checkpointed stored states (≤ 2√T) | counted MiB: forward / checkpointed / reversible / "
              "unrolled | reversible bits per weight per step | ÷ storing θ, m in float32 |", "|---|---|---|---|---|"]
    for row in r["table"]["rows"]:
        c = row["counted"]
        mibs = " / ".join(f"{mib(c[n]['bytes']):.3g}" for n in ROUTES)
        rv = c["reversible"]
        lines.append(f"| {row['T']} | {c['checkpointed']['stored_states']} (2√T = {2 * math.sqrt(row['T']):.0f}) | "
                     f"{mibs} | {rv['bits_per_weight_per_step']:.3f} | 1/{1 / rv['ratio_to_storing_states']:.0f} |")
    if not r["table"]["higher"]:
        lines.append("\n`higher` is not installed: its column is absent (`pip install --no-deps higher`).")
    return "\n".join(lines)


def _stored(c: dict, T: int, P: int) -> str:
    if "bits_per_weight_per_step" in c:
        return f"buffer {c['bits_per_weight_per_step']:.3f} bit/weight/step (1/{1 / c['ratio_to_storing_states']:.0f})"
    return f"{c['stored_states']} states" + (f" (2√T = {2 * math.sqrt(T):.0f})" if "segment_length" in c else "")


def _extra(parser) -> None:
    parser.add_argument("--ratios-only", action="store_true", help="part 1 only (the cost ratios)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds of part 1 (default 5)")


def main(argv=None) -> int:
    return bench_main(__doc__, run, report, argv, extra_args=_extra)


if __name__ == "__main__":
    sys.exit(main())
