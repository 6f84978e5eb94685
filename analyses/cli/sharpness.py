"""``landscape sharpness RUN.h5 --steps SPEC --out RESULTS.h5``: flatness measures at saved steps.

Items per step (``sharpness/step_00000100/<quantity>``), each holding the train and test
loss and accuracy at θ and the generalization gaps next to its measure:

* ``losses`` — the losses and gaps alone;
* ``probes_<kind>`` — random-direction probes (``--kinds gaussian,filter,adaptive``) at
  ``--radii`` with ``--directions`` directions (± pairs unless ``--no-antithetic``);
* ``worst_<set>`` — worst-case ε-sharpness (``--worst box,ball``, ``--worst-radii``,
  ``--ascent-steps``; Keskar et al. 2017);
* ``curvature`` — λ_max (Lanczos) and tr(H) (Hutch++), unless ``--no-curvature``.

A rerun skips finished items; a finished item computed with other settings is refused
(use another ``--out``). The work is :class:`analyses.sharpness.SharpnessWork`.
"""

from __future__ import annotations

import argparse
from functools import partial

from analyses import sharpness as S
from analyses.cli.args import (add_device_args, add_objective_args, add_progress_args, add_recompute_arg,
                               add_run_args, command_config, floats, names, report)
from analyses.driver.inputs import ObjectiveOptions, open_results, open_run_inputs
from analyses.driver.progress import showing
from analyses.driver.runner import Item, run_items
from analyses.driver.settings import check_settings, normal
from landscape.io import step_key

NAME = "sharpness"
HELP = "random-direction probes, worst-case ε-sharpness, λ_max and trace, with the generalization gap"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_run_args(p, steps="last")
    add_objective_args(p)
    add_device_args(p)
    r = p.add_argument_group("random-direction probes")
    r.add_argument("--radii", type=floats, default=(0.01, 0.05, 0.1), help="radii r > 0; default 0.01,0.05,0.1")
    r.add_argument("--directions", type=int, default=20, metavar="K", help="random directions; default 20")
    r.add_argument("--kinds", default="gaussian", help="gaussian,filter,adaptive (or none); default gaussian")
    r.add_argument("--eta", type=float, default=0.0, help="η of the adaptive scaling |θ| + η; default 0")
    r.add_argument("--keep-biasbn", action="store_true",
                   help="filter kind: set 1-D parameters to θ instead of zeroing them (Li et al.'s option)")
    r.add_argument("--no-antithetic", action="store_true", help="probe +r u only, not ± pairs")
    r.add_argument("--points-per-call", type=int, default=8, help="parameter vectors per batched forward")
    w = p.add_argument_group("worst-case sharpness (projected gradient ascent)")
    w.add_argument("--worst", default="box", help="box (Keskar et al.), ball, both (box,ball) or none")
    w.add_argument("--worst-radii", type=floats, default=(1e-3,), help="ε values; default 1e-3")
    w.add_argument("--ascent-steps", type=int, default=10, help="gradient steps per ε; default 10")
    w.add_argument("--step-size", type=float, default=1.0, help="first step as a fraction of ε; default 1")
    c = p.add_argument_group("curvature")
    c.add_argument("--no-curvature", action="store_true", help="skip λ_max and the trace")
    c.add_argument("--eig-tol", type=float, default=1e-3, help="relative residual of λ_max; default 1e-3")
    c.add_argument("--trace-matvecs", type=int, default=99, help="HVPs of the Hutch++ trace; default 99")
    p.add_argument("--seed", type=int, default=0, help="seed of directions, starts and probes; default 0")
    add_recompute_arg(p)
    add_progress_args(p)


def plan(args) -> dict[str, object]:
    """quantity → its validated config (``losses`` → None)."""
    out: dict[str, object] = {"losses": None}
    for kind in names(args.kinds, S.RANDOM_KINDS, "--kinds"):
        out[f"probes_{kind}"] = S.ProbeConfig(args.radii, args.directions, kind, args.seed, not args.no_antithetic,
                                              args.eta, not args.keep_biasbn, args.points_per_call)
    worst = "box,ball" if args.worst == "both" else args.worst
    for box in names(worst, S.CONSTRAINTS, "--worst"):
        out[f"worst_{box}"] = S.WorstCaseConfig(args.worst_radii, box, args.ascent_steps, args.step_size, args.seed)
    if not args.no_curvature:
        out["curvature"] = S.CurvatureConfig(args.eig_tol, args.trace_matvecs, "hutch++", args.seed)
    return out


def run(args) -> int:
    quantities = plan(args)
    options = ObjectiveOptions.from_args(args)
    with open_run_inputs(args.run, args.steps, device=args.device, options=options) as inp, \
            open_results(args.out, inp) as results:
        work = S.SharpnessWork(inp, progress=showing())
        wanted = {step_key(NAME, s, q): (s, q, cfg) for s in inp.steps for q, cfg in quantities.items()}
        settings = {key: normal(S.item_settings(cfg, options.settings())) for key, (_, _, cfg) in wanted.items()}
        if not args.recompute:
            check_settings(results, settings)
        items = [Item(key, partial(work.compute, s, q, cfg, settings[key]), label=key)
                 for key, (s, q, cfg) in wanted.items()]
        summary = run_items(results, items, config=command_config(args), source=inp.source, device=inp.device,
                            recompute=args.recompute)
    report(summary, args.out)
    return 0
