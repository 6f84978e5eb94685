"""How cost grows with the number of examples N and the number of parameters P.

For each size: one full-data HVP (ours, median of ``repeats``), a top-``TOPK_K`` eigsh at tol
``TOPK_TOL`` (one run: seconds and HVPs), and per-example projections onto ``PROJ_K`` vectors
(``Objective.per_example_projections``, median of ``repeats``); then, after all timings, the peak
working memory of each (see ``common.PeakMemory``). N grows at fixed width; P grows through
the width multiplier at fixed N (P ∝ width² for convolutions). The slope of a least-squares
line through (log size, log cost) is reported: 1 means cost ∝ size.

Writes ``bench/scaling.png`` (time and memory against N and P, log-log; ``--tiny`` writes to
the temp directory instead).

Usage: ``python bench/scaling.py [--quick|--tiny] [--device cpu|cuda] [--json OUT] [--plot PATH]``
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (PeakMemory, bench_main, log, machine_info, markdown_table, mib,  # noqa: E402
                    setup_torch, time_call)
from problems import build_problem, size_of  # noqa: E402

import landscape as ls  # noqa: E402

TOPK_K, TOPK_TOL = 5, 1e-2  # a cheap certified top-k: its HVP count hardly depends on N or P
PROJ_K = 10  # vectors for per-example projections
HERE = Path(__file__).resolve().parent
SWEEPS = {  # (base problem, N values at the base width, widths at the base N)
    "full": (dict(model="resnet8", dataset="cifar_synthetic", batch_size=128, width=0.5, N=256),
             (128, 256, 512, 1024), (0.25, 0.5, 1.0, 2.0)),
    "quick": (dict(model="cnn1d", dataset="mnist1d", batch_size=250, channels=(24, 24, 24), N=1000),
              (250, 500, 1000, 2000), (0.5, 1.0, 2.0, 4.0)),
    "tiny": (dict(model="cnn1d", dataset="synthetic1d", batch_size=32, channels=(4, 4, 4), N=64, train_steps=2),
             (32, 64), (1.0, 2.0)),
}
OPS = ("HVP", f"top-{TOPK_K} eigsh", f"projections k={PROJ_K}")


def _scaled(base: dict, width: float) -> dict:
    if base["model"] == "cnn1d":
        return {**base, "channels": tuple(max(1, round(c * width)) for c in base["channels"])}
    return {**base, "width": base["width"] * width}


def _calls(problem) -> dict:
    obj = problem.objective()
    theta = obj.theta
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(problem.P, generator=gen).to(problem.device)
    V = torch.randn(PROJ_K, problem.P, generator=gen).to(problem.device)
    H = obj.hessian(theta)
    return {OPS[0]: lambda: obj.hvp(theta, v),
            OPS[1]: lambda: ls.eigsh(H, k=TOPK_K, tol=TOPK_TOL, seed=0),
            OPS[2]: lambda: obj.per_example_projections(theta, V)}


def measure(problem, repeats: int) -> dict:
    """Seconds and peak MiB of each op on one problem (memory after all timings)."""
    calls, out = _calls(problem), dict(N=problem.N, P=problem.P)
    for op, call in calls.items():
        if op.startswith("top"):
            start = time.perf_counter()
            res = call()
            out[op] = dict(seconds=time.perf_counter() - start, hvps=res.num_matvecs)
        else:
            out[op] = dict(seconds=time_call(call, repeats=repeats, device=problem.device)[0].median_s)
    for op, call in calls.items():
        with PeakMemory(problem.device) as m:
            call()
        out[op]["peak_mib"] = mib(m.peak_bytes)
    return out


def slope(x, y) -> float:
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


def sweep(base: dict, key: str, values, device, repeats: int) -> list[dict]:
    rows = []
    for value in values:
        spec = {**base, "N": value} if key == "N" else _scaled(base, value)
        rows.append({"width" if key == "P" else key: value, **measure(build_problem(**spec, device=device), repeats)})
        log(f"scaling {key} = {value}: done")
    return rows


def fits(rows: list[dict], key: str) -> dict:
    x = [r[key] for r in rows]
    return {op: dict(time=slope(x, [r[op]["seconds"] for r in rows]),
                     memory=slope(x, [max(r[op]["peak_mib"], 1e-3) for r in rows])) for op in OPS}


def run(args) -> dict:
    device, size = setup_torch(args.device, args.threads), size_of(args)
    base, Ns, widths = SWEEPS[size]
    repeats = 2 if size == "tiny" else 3
    by_n = sweep(base, "N", Ns, device, repeats)
    by_p = sweep(base, "P", widths, device, repeats)
    result = dict(benchmark="scaling", machine=machine_info(device), base=base, repeats=repeats,
                  memory_method=PeakMemory(device).method, by_N=by_n, by_P=by_p,
                  slopes_N=fits(by_n, "N"), slopes_P=fits(by_p, "P"))
    result["plot"] = str(Path(args.plot) if args.plot else _default_plot(size))
    plot(result, Path(result["plot"]))
    return result


def _default_plot(size: str) -> Path:
    """bench/scaling.png; a tiny run never overwrites it (it goes to the temp directory)."""
    return Path(tempfile.gettempdir()) / "landscape_scaling_tiny.png" if size == "tiny" else HERE / "scaling.png"


def plot(result: dict, path: Path) -> None:
    """Time and memory against N and P, log-log, one line per op."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(8, 6), constrained_layout=True)
    for col, (key, rows) in enumerate((("N", result["by_N"]), ("P", result["by_P"]))):
        x = [r[key] for r in rows]
        for row, (quantity, label) in enumerate((("seconds", "seconds"), ("peak_mib", "peak MiB"))):
            ax = axes[row][col]
            for op in OPS:
                ax.loglog(x, [max(r[op][quantity], 1e-3) for r in rows], "o-", label=op)
            if quantity == "seconds":  # the expectation: cost linear in N and in P
                y0 = rows[-1][OPS[0]][quantity]
                ax.loglog(x, [y0 * v / x[-1] for v in x], "k:", lw=1, label="∝ " + key)
            ax.set_xticks(x, [f"{v:,}" for v in x], minor=False)
            ax.set_xticks([], minor=True)
            ax.set_xlabel(key), ax.set_ylabel(label)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"Cost against N and P ({result['machine']['device']}, {result['base']['model']})", fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(result: dict) -> str:
    lines = [f"Base problem: {result['base']}; medians of {result['repeats']} calls (top-k: one run); "
             f"memory: {result['memory_method']}.", ""]
    for key in ("N", "P"):
        rows = result[f"by_{key}"]
        head = [key, "P" if key == "N" else "N"] + [f"{op} s" for op in OPS] + [f"{op} MiB" for op in OPS]
        body = [[r[key], r["P" if key == "N" else "N"]] + [r[op]["seconds"] for op in OPS]
                + [r[op]["peak_mib"] for op in OPS] for r in rows]
        slopes = result[f"slopes_{key}"]
        lines += [markdown_table(head, body), "",
                  f"log-log slopes against {key}: " + "; ".join(
                      f"{op}: time {s['time']:.2f}, memory {s['memory']:.2f}" for op, s in slopes.items()), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    def extra_args(parser) -> None:
        parser.add_argument("--plot", default=None, help="figure path (default bench/scaling.png)")

    return bench_main(__doc__, run, report, argv, extra_args)


if __name__ == "__main__":
    raise SystemExit(main())
