"""``landscape demo --out DIR``, the main job: the whole study on MNIST-1D, driven through the real command line.

Each stage is one ``landscape`` subcommand, run exactly as a user would type it
(:func:`stages` lists them), so the demo proves the CLI end to end: train a small
1D CNN with a step-decay schedule and a sibling run with a constant low learning rate
(same init, same batches); Hessian eigenpairs with residuals, SLQ density and trace
at several checkpoints; line searches along eigenvectors with minibatch curves, fits,
a dense zoom and the quadratic-independence check; spectrum evolution; the trajectory
in the eigenbasis; sharpness probes on both runs; per-example gradient projections; interventions in the
eigenbasis (Newton in the top subspace, noise per eigen-band) and Papyan's decomposition;
a 2-D loss surface with the trajectory; then every figure and the HTML report of both runs side by side
(`landscape report`, which draws the figures into DIR/figures exactly as `landscape plot` does).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from landscape.errors import LandscapeError, OutputExistsError

NAME = "demo"
HELP = "run the whole study on MNIST-1D: training, Hessian jobs, analyses, figures and an HTML report"

RUN, SIBLING, RESULTS, SIBLING_RESULTS = "run.h5", "sibling.h5", "results.h5", "sibling-results.h5"
OWNED = (RUN, SIBLING, RESULTS, SIBLING_RESULTS, "report.html")


@dataclass(frozen=True)
class DemoConfig:
    """Sizes chosen so the whole study takes a few minutes on 2 CPU cores."""

    epochs: int = 6            # 4000 examples / batch 128 → 31 steps per epoch, 186 steps
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    milestones: str = "93,140"  # step decays ×0.1 at epochs 3 and 4.5
    sibling_lr: float = 0.02    # constant, no decay
    save_every: int = 6
    eval_every: int = 12
    sharpness_every: int = 24
    sharpness_subset: int = 500
    hessian_steps: str = "every:6"   # eigenpairs and trace at these saved steps (and the last)
    density_steps: str = "every:15"  # SLQ densities at fewer steps (and the last)
    hessian_subset: int = 1000  # examples in the Hessian jobs (the run's fixed seeded subset)
    noise_scales: str = "0.01,0.03"  # σ of the noise per eigen-band (landscape intervene)
    noise_draws: int = 4        # draws per band and scale
    papyan_k: int = 10          # top eigenvalues per part of Papyan's decomposition (C = 10 classes)
    papyan_density: tuple = (2, 30)  # SLQ probes and Lanczos steps per part
    k: int = 6
    tol: float = 1e-3
    density: tuple = (3, 40)   # probes, Lanczos iterations
    trace_matvecs: int = 30
    surface_grid: int = 15
    zoom_points: int = 201     # dense zoom around the minimum, in float32 and float64
    seed: int = 0


QUICK = DemoConfig(epochs=2, milestones="31,46", save_every=4, eval_every=8, sharpness_every=16,
                   sharpness_subset=200, hessian_steps="every:4", density_steps="every:8", hessian_subset=300,
                   k=3, density=(2, 20), trace_matvecs=12, surface_grid=5, zoom_points=51, noise_scales="0.03",
                   noise_draws=2, papyan_k=5, papyan_density=(2, 20))


def stages(out: Path, c: DemoConfig, device: str | None) -> list[tuple[str, list[str]]]:
    """The demo as ``(title, argv)`` pairs for :func:`analyses.cli.main`."""
    r, s, res, sres = (str(out / n) for n in (RUN, SIBLING, RESULTS, SIBLING_RESULTS))
    dev = ["--device", device] if device else []
    return [
        ("train the main run (step decays)", ["train", "--dataset", "mnist1d", "--model", "cnn1d",
         "--lr", str(c.lr), "--momentum", str(c.momentum), "--schedule", "step", "--milestones", c.milestones,
         "--epochs", str(c.epochs), "--batch-size", str(c.batch_size), "--save-every", str(c.save_every),
         "--eval-every", str(c.eval_every), "--sharpness-every", str(c.sharpness_every), "--sharpness-k", "1",
         "--sharpness-subset", str(c.sharpness_subset), "--seed", str(c.seed), "--out", r, *dev]),
        ("train a sibling run (same init and batches, constant low lr)", ["train", "--init-from", r,
         "--batches-from", r, "--schedule", "constant", "--lr", str(c.sibling_lr), "--out", s, *dev]),
        ("Hessian eigenpairs and trace at several checkpoints", ["hessian", r, "--steps",
         f"{c.hessian_steps},last", "--subset", str(c.hessian_subset), "--k", str(c.k), "--tol", str(c.tol),
         "--trace", str(c.trace_matvecs), "--out", res, *dev]),
        ("Hessian spectral densities (SLQ)", ["hessian", r, "--steps", f"{c.density_steps},last",
         "--subset", str(c.hessian_subset), "--k", "0", "--density", *map(str, c.density), "--out", res, *dev]),
        ("line searches along eigenvectors", ["linesearch", r, "--steps", "last", "--eigen", res, "--out", res,
         "--directions", f"top:{min(4, c.k)}", "--t-max", "1", "--num-t", "31", "--minibatch-size", "250",
         "--zoom", "1", "--zoom-points", str(c.zoom_points), "--zoom-float64", "--random-directions", "3", *dev]),
        ("spectrum evolution", ["evolution", res]),
        ("trajectory in the eigenbasis", ["trajectory", r, "--out", res, "--ref-step", "last", *dev]),
        ("sharpness probes (main run)", ["sharpness", r, "--steps", "last", "--out", res,
         "--directions", "10", "--kinds", "gaussian,filter", "--trace-matvecs", "30", *dev]),
        ("sharpness probes (sibling run)", ["sharpness", s, "--steps", "last", "--out", sres,
         "--directions", "10", "--kinds", "gaussian,filter", "--trace-matvecs", "30", *dev]),
        ("per-example gradient projections", ["gradproj", r, "--steps", "last", "--eigen", res, "--out", res, *dev]),
        # Interventions at the last step (on the eigenpairs' own examples): Newton in the top-m subspace
        # against the quadratic prediction, and noise per eigen-band (a few scales and draws).
        ("interventions in the eigenbasis", ["intervene", r, "--steps", "last", "--eigen", res, "--out", res,
         "--do", "newton,noise", "--noise-scales", c.noise_scales, "--draws", str(c.noise_draws), *dev]),
        ("Papyan's decomposition of the Gauss-Newton matrix", ["papyan", r, "--steps", "last", "--subset",
         str(c.hessian_subset), "--k", str(c.papyan_k), "--density", *map(str, c.papyan_density), "--out", res, *dev]),
        # x: the segment from the final θ (x = 0) to the initial θ_0 (x = 1); y: a filter-normalized
        # random direction (Li et al. 2018) — the whole trajectory projects onto this plane.
        ("2-D loss surface with the trajectory", ["surface", r, "--steps", "last", "--out", res,
         "--directions", "step:0,filter", "--span=-0.25:1.25,1", "--grid", str(c.surface_grid), *dev]),
        # The report draws every figure (PDF + PNG) into DIR/figures with the same code as
        # `landscape plot`, so the figures are not drawn twice; both runs, side by side, each with
        # its results (paired by the run checksum the results store).
        ("figures and the HTML report", ["report", r, res, s, sres, "--labels", "main,sibling", "--out", str(out),
         "--overwrite", "--title", "Landscape demo: a 1D CNN on MNIST-1D"]),
    ]


def prepare(out: Path, overwrite: bool) -> None:
    """Refuse an output directory holding a report, unless ``overwrite``; then clear the demo's own files."""
    if (out / "report.html").exists() and not overwrite:
        raise OutputExistsError(f"{out} already holds a demo report; pass --overwrite to redo it or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for name in OWNED:
            (out / name).unlink(missing_ok=True)


def run_demo(out: str | Path, *, overwrite: bool = False, device: str | None = None,
             config: DemoConfig = DemoConfig(), log: Callable[[str], None] = print) -> dict[str, float]:
    """Run every stage; return the wall time of each. Raises on the first failing stage."""
    from analyses.cli import main

    out = Path(out)
    prepare(out, overwrite)
    times: dict[str, float] = {}
    for title, argv in stages(out, config, device):
        log(f"\n== {title}\n$ landscape {' '.join(argv)}")
        start = time.perf_counter()
        code = main(argv)
        times[title] = time.perf_counter() - start
        if code != 0:
            raise LandscapeError(f"demo stage '{title}' failed with exit code {code} (see the message above)")
    return times


def add_arguments(p) -> None:
    p.add_argument("--out", default="demo-out", help="output directory (default demo-out)")
    p.add_argument("--overwrite", action="store_true", help="redo the demo in a directory that already holds one")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test of every stage, under a minute or two)")


def run(args) -> int:
    start = time.perf_counter()
    times = run_demo(args.out, overwrite=args.overwrite, device=args.device,
                     config=QUICK if args.quick else DemoConfig())
    total = time.perf_counter() - start
    print("\n== done in {:.0f} s".format(total))
    for title, seconds in times.items():
        print(f"  {seconds:7.1f} s  {title}")
    print(f"\nreport:   {args.out}/report.html\nfigures:  {args.out}/figures/\n"
          f"runs:     {args.out}/run.h5, {args.out}/sibling.h5\nresults:  {args.out}/results.h5, "
          f"{args.out}/sibling-results.h5\ninspect:  landscape info {args.out}/results.h5")
    return 0
