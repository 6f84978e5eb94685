"""Open the files given to ``landscape report`` / ``plot`` and pair each results file with its run.

Files may come in any order: a file's kind comes from its schema, and a results file names the run
it analyses by the run's SHA-256 (its ``run_id``), so ``report run.h5 res.h5 sib.h5 sib-res.h5`` and
``report sib-res.h5 run.h5 sib.h5 res.h5`` give the same runs, in the order the run files came.
Rules (each violation is one :class:`~landscape.errors.InputError` naming the fix):

* a results file whose run is not among the run files given is refused — unless no run file is
  given at all (figures from results alone), or the file is bound to no single run (a
  ``sharpness-study`` table), which is shown as a study of its own;
* a run given twice, or two results files of one run, are refused;
* a run without a results file is kept (its training is shown; the page says what is missing).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from analyses.plots import RunView
from landscape.errors import InputError
from landscape.io import ResultsFile, RunFile, file_kind


@contextlib.contextmanager
def open_runs(paths: Sequence[str], labels: Sequence[str] | None = None) -> Iterator[list[RunView]]:
    """Open ``paths`` (run and results files, any order); yield one :class:`RunView` per run.

    Args:
        paths: run files and results files.
        labels: names of the runs in the order they are yielded (default: the run files' stems).

    Raises:
        InputError: a results file of a run not given, a run given twice, two results files of one
            run, or labels that do not match the runs.
    """
    opened: list = []
    try:
        runs, results = [], []
        for path in paths:
            f = ResultsFile(path, "r") if file_kind(path) == "results" else RunFile(path)
            opened.append(f)
            (results if isinstance(f, ResultsFile) else runs).append(f)
        yield name_runs(pair(runs, results), labels)
    finally:
        for f in opened:
            f.close()


def _sha(results) -> str | None:
    return (results.run_id or {}).get("run_sha256")


def pair(runs: list, results: list) -> list[tuple]:
    """``[(run, results)]``: each run with its results file (or None), then results files shown alone."""
    by_sha: dict[str, object] = {}
    for run in runs:
        if run.file_sha256 in by_sha:
            raise InputError(f"{by_sha[run.file_sha256].path} and {run.path} are the same run "
                             f"(sha {run.file_sha256[:12]}); give each run once")
        by_sha[run.file_sha256] = run
    bound: dict[str, object] = {}
    alone = []
    for res in results:
        sha = _sha(res)
        if sha is None or not runs:
            alone.append(res)
        elif sha not in by_sha:
            raise InputError(f"{res.path} holds results of {(res.run_id or {}).get('path')} (sha {sha[:12]}), "
                             f"which is not among the run files given; add that run file or leave {res.path} out")
        elif sha in bound:
            raise InputError(f"{bound[sha].path} and {res.path} both hold results of {by_sha[sha].path}; "
                             "give one results file per run")
        else:
            bound[sha] = res
    return [(run, bound.get(run.file_sha256)) for run in runs] + [(None, res) for res in alone]


def _stem(run, res) -> str:
    if run is not None:
        return Path(run.path).stem
    source = (res.run_id or {}).get("path")
    return Path(source).stem if source else Path(res.path).stem


def name_runs(pairs: list[tuple], labels: Sequence[str] | None = None) -> list[RunView]:
    """Label each ``(run, results)`` pair: ``labels`` in order, else the run file's stem (made unique)."""
    if labels is not None and len(labels) != len(pairs):
        raise InputError(f"--labels gives {len(labels)} name(s) for {len(pairs)} run(s) "
                         f"({', '.join(_stem(*p) for p in pairs)}); give one per run, in the order of the run files")
    names = list(labels) if labels is not None else [_stem(*p) for p in pairs]
    if len(set(names)) != len(names):
        names = [f"{n} ({i + 1})" if names.count(n) > 1 else n for i, n in enumerate(names)]
    return [RunView(name, res, run) for name, (run, res) in zip(names, pairs)]


def slug(label: str) -> str:
    """A file- and anchor-safe form of a run label."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-.") or "run"


def _schedule(c: dict) -> str:
    lr = f"η = {c.get('lr'):g}"
    kind = c.get("schedule", "constant")
    if kind == "step":
        return f"{lr}, ×{c.get('gamma', 0.1):g} at steps {', '.join(str(m) for m in c.get('milestones', []))}"
    if kind == "cosine":
        return f"{lr}, cosine to {c.get('min_lr', 0):g} over {c.get('cosine_steps')} steps"
    if kind == "list":
        return f"η by steps {', '.join(f'{s}:{v:g}' for s, v in c.get('lr_points', []))}"
    return f"{lr} constant"


def _optimizer(c: dict) -> str:
    if c.get("optimizer", "sgd") == "adamw":
        b1, b2 = c.get("betas") or (0.9, 0.999)
        return f"AdamW, β₁ = {b1:g}, β₂ = {b2:g}"
    if c.get("optimizer", "sgd") != "sgd":
        return str(c["optimizer"])
    if not c.get("momentum"):
        return "SGD"
    return f"SGD, {'Nesterov' if c.get('nesterov') else 'momentum'} β = {c['momentum']:g}"


def describe(run) -> str:
    """One line on how the run was trained: model, data, optimizer, schedule, batch, steps."""
    c, data = run.config, run.dataset_spec or {}
    opt = _optimizer(c)
    wd = f", weight decay {c['weight_decay']:g}" if c.get("weight_decay") else ""
    warm = f", warm-up {c['warmup_steps']} steps" if c.get("warmup_steps") else ""
    batch = "full batch" if run.full_batch else f"batch {run.batch_size}"
    n = f" ({data['num_train']} train)" if isinstance(data, dict) and data.get("num_train") else ""
    name = data.get("name", "?") if isinstance(data, dict) else data
    return (f"{run.model_name} on {name}{n}, P = {run.P:,}; {opt}{wd}, {_schedule(c)}{warm}; {batch}, "
            f"{run.num_steps} steps")
