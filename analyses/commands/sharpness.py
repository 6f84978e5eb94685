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
(use another ``--out``). :func:`check_settings` and :class:`StepObjectives` are shared
with the ``gradproj`` and ``surface`` commands.
"""

from __future__ import annotations

import argparse
import json
from functools import partial

from analyses import sharpness as S
from analyses.commands._common import (add_device_args, add_objective_args, add_run_args, objective_at,
                                       open_inputs, open_results, param_patterns, subset_indices)
from analyses.runner import Item, Record, run_items, step_key
from landscape.errors import ConfigMismatchError, InputError

NAME = "sharpness"
HELP = "random-direction probes, worst-case ε-sharpness, λ_max and trace, with the generalization gap"


def floats(text: str) -> tuple[float, ...]:
    """``"0.01,0.05"`` → ``(0.01, 0.05)``; InputError naming the bad entry."""
    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise InputError(f"cannot read {text!r} as comma-separated numbers (e.g. 0.01,0.05,0.1)") from None


def names(text: str, allowed: tuple[str, ...], option: str) -> list[str]:
    """Comma-separated choices; ``none`` or empty → []."""
    chosen = [t.strip() for t in text.split(",") if t.strip() and t.strip() != "none"]
    bad = [c for c in chosen if c not in allowed]
    if bad:
        raise InputError(f"{option}: unknown {', '.join(bad)}; choose from {', '.join(allowed)} (or none)")
    return chosen


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


def common_settings(args) -> dict:
    """What every item depends on besides its own config."""
    return {"bn": args.bn, "subset": args.subset, "params": args.params, "dtype": args.dtype}


def settings_of(cfg, args) -> dict:
    """JSON-normal settings of one item (``points_per_call`` changes no number, so it is left out)."""
    own = {} if cfg is None else {k: v for k, v in vars(cfg).items() if k != "points_per_call"}
    return json.loads(json.dumps({**common_settings(args), **own}))


def check_settings(results, wanted: dict[str, dict]) -> None:
    """Refuse finished items (key → settings) that were computed with other settings."""
    for key, settings in wanted.items():
        if not results.is_complete(key):
            continue
        stored = results.read_item(key)[1].get("settings", {})
        diff = {k: (stored.get(k), v) for k, v in settings.items() if stored.get(k) != v}
        if diff:
            shown = ", ".join(f"{k}: stored {a!r}, asked {b!r}" for k, (a, b) in diff.items())
            raise ConfigMismatchError(f"{results.path} already holds {key} computed with other settings "
                                      f"({shown}); use the same options or another --out")


class StepObjectives:
    """Train and test objectives at one step (built once per step) and identifying attributes."""

    def __init__(self, inp, args):
        self.inp, self.args = inp, args
        self.indices = subset_indices(inp, args.subset)
        self._step, self._pair = None, None

    def at(self, step: int):
        """``(train, test)`` objectives at ``step``; θ_step is ``train.theta``."""
        if self._step != step:
            from landscape.objective import Objective

            run, train = self.inp.run, objective_at(self.inp, step, self.args, indices=self.indices)
            test = Objective(run.model_at(step), run.dataset.x_test, run.stepper.y_test, loss=run.config.loss,
                             bn=self.args.bn, batch_size=self.args.batch_size,
                             params=param_patterns(self.args.params), dtype=self.inp.dtype, device=self.inp.device)
            self._step, self._pair = step, (train, test)
        return self._pair

    def attrs(self, step: int, settings: dict) -> dict:
        """Attributes stored with every item: step, checksums, model signature, run config."""
        run = self.inp.run
        train = self.at(step)[0]
        return {"step": int(step), "param_sha256": run.file.param_sha256(step), "P": train.spec.numel,
                "N": int(len(self.indices)), "settings": settings, "run_config": run.file.config,
                "model": {"name": run.file.model_name, "kwargs": run.file.model_kwargs, "params": self.args.params}}


class SharpnessWork(StepObjectives):
    """Computes one (step, quantity) item."""

    def __init__(self, inp, args):
        super().__init__(inp, args)
        self._losses: dict[int, dict] = {}

    def losses(self, step: int) -> dict:
        if step not in self._losses:
            train, test = self.at(step)
            self._losses[step] = S.losses(train, test, train.theta)
        return self._losses[step]

    def compute(self, step: int, quantity: str, cfg, settings: dict) -> Record:
        train, _ = self.at(step)
        theta = train.theta
        if quantity.startswith("probes_"):
            arrays = S.probes(train, theta, train.spec, cfg)
        elif quantity.startswith("worst_"):
            arrays = S.worst_case(train, theta, cfg)
        elif quantity == "curvature":
            arrays = S.curvature(train, theta, cfg)
        else:
            arrays = {}
        return Record({**arrays, **self.losses(step)}, self.attrs(step, settings))


def run(args) -> int:
    quantities = plan(args)
    with open_inputs(args) as inp, open_results(args.out, inp) as results:
        work = SharpnessWork(inp, args)
        wanted = {step_key(NAME, s, q): (s, q, cfg) for s in inp.steps for q, cfg in quantities.items()}
        settings = {key: settings_of(cfg, args) for key, (_, _, cfg) in wanted.items()}
        check_settings(results, settings)
        items = [Item(key, partial(work.compute, s, q, cfg, settings[key]), label=key)
                 for key, (s, q, cfg) in wanted.items()]
        summary = run_items(results, items, config=vars_config(args), source=inp.source, device=inp.device)
    print(f"{len(summary.computed)} item(s) computed, {len(summary.skipped)} already complete; results in {args.out}")
    return 0


def vars_config(args) -> dict:
    """The command line as a JSON-able dict (stored with every item)."""
    return {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "command"}
