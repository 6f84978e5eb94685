"""``landscape train``: train a network and write its run file (see docs/trainer.md).

The configuration is built in layers, later ones winning: the defaults of
:class:`checkpoints.TrainConfig`; a ``--config FILE.json``; for a sibling run
(``--init-from``/``--batches-from``) the parent's stored config; then the flags given on the
command line. ``--resume`` takes the config from the run file itself; flags given with it
must agree with it, except the resumable ones (``--steps``, ``--epochs``, ``--device``,
``--data-dir``), else ConfigMismatchError.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from analyses.cli.args import json_object
from landscape.errors import InputError

NAME = "train"
HELP = "train a network with SGD or AdamW, logging every batch and saving snapshots to a run file"

S = argparse.SUPPRESS  # only flags given on the command line reach the namespace
# Fields a sibling run does not inherit from its parent (lineage, and values resolved from the length).
NOT_INHERITED = ("init_from", "batches_from", "cosine_steps", "deterministic", "source")
RUNTIME = ("out", "resume", "overwrite", "progress", "no_fsync", "config", "data_dir")


def _ints(text: str) -> tuple:
    try:
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _points(text: str) -> tuple:
    try:
        return tuple((int(a), float(b)) for a, b in (p.split(":") for p in text.split(",") if p.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected step:lr pairs like 0:0.1,5000:0.01, got {text!r}") from None


def _floats(text: str) -> tuple:
    try:
        return tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 0.9,0.999, got {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    _data_args(p.add_argument_group("data and model"))
    _optim_args(p.add_argument_group("optimiser and learning-rate schedule"))
    _batch_args(p.add_argument_group("batches and length"))
    _record_args(p.add_argument_group("what is recorded"))
    _run_args(p.add_argument_group("output, resume, sibling runs"))


def _data_args(g) -> None:
    g.add_argument("--dataset", default=S, help="cifar10, mnist1d or synthetic (default mnist1d), a plugin, or "
                   "your own: package.module:factory or path/to/file.py:factory (docs/your-own-models.md)")
    g.add_argument("--dataset-kwargs", type=json_object, default=S, metavar="JSON",
                   help='data set arguments, e.g. \'{"num_train": 512}\'')
    g.add_argument("--data-dir", default=S, help="directory of the CIFAR-10 files (cifar-10-batches-py or the .tar.gz)")
    g.add_argument("--model", default=S, help="a registered model name, e.g. resnet_100k, resnet8, cnn1d, mlp "
                   "(input size and classes taken from the data), a plugin, or your own: "
                   "package.module:factory or path/to/file.py:factory")
    g.add_argument("--model-kwargs", type=json_object, default=S, metavar="JSON",
                   help='model arguments, e.g. \'{"width": 0.5}\'')
    g.add_argument("--loss", choices=("cross_entropy", "mse"), default=S, help="default cross_entropy")


def _optim_args(g) -> None:
    g.add_argument("--optimizer", choices=("sgd", "adamw"), default=S,
                   help="sgd (torch.optim.SGD, default) or adamw (torch.optim.AdamW, decoupled weight decay)")
    g.add_argument("--lr", type=float, default=S, help="base learning rate η (default 0.1)")
    g.add_argument("--momentum", type=float, default=S, help="heavy-ball momentum β (default 0)")
    g.add_argument("--nesterov", action="store_true", default=S, help="Nesterov momentum")
    g.add_argument("--weight-decay", type=float, default=S,
                   help="sgd: L2 coefficient; adamw: decoupled decay θ ← θ(1 − ηλ) (default 0)")
    g.add_argument("--betas", type=_floats, default=S, metavar="B1,B2", help="adamw: moment decay rates (default 0.9,0.999)")
    g.add_argument("--eps", type=float, default=S, help="adamw: ε added to √v̂ (default 1e-8)")
    g.add_argument("--schedule", choices=("constant", "step", "cosine", "list"), default=S,
                   help="learning-rate schedule (default constant)")
    g.add_argument("--milestones", type=_ints, default=S, metavar="S1,S2", help="step: decay steps")
    g.add_argument("--gamma", type=float, default=S, help="step: decay factor (default 0.1)")
    g.add_argument("--cosine-steps", type=int, default=S, help="cosine: period in steps (default: the run)")
    g.add_argument("--min-lr", type=float, default=S, help="cosine: floor (default 0)")
    g.add_argument("--lr-points", type=_points, default=S, metavar="0:LR,STEP:LR",
                   help="list: piecewise-constant (step, lr) pairs starting at step 0")
    g.add_argument("--warmup-steps", type=int, default=S, help="linear warm-up steps on any schedule (default 0)")


def _batch_args(g) -> None:
    g.add_argument("--batch-size", type=int, default=S, help="examples per step (default 128)")
    g.add_argument("--full-batch", action="store_true", default=S, help="gradient descent on the whole training set")
    g.add_argument("--epochs", type=int, default=S, help="length of the run in epochs")
    g.add_argument("--steps", type=int, default=S, help="length of the run in steps")
    g.add_argument("--seed", type=int, default=S, help="seed of init, batch order and augmentation (default 0)")
    g.add_argument("--augment", action=argparse.BooleanOptionalAction, default=S,
                   help="random crop + flip (default: on for cifar10 only)")
    g.add_argument("--device", default=S, help="torch device (default cuda if available, else cpu)")
    g.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=S,
                   help="deterministic algorithms (default: on for cpu)")


def _record_args(g) -> None:
    g.add_argument("--save-every", type=int, default=S, help="snapshot every k steps (default 100; 0 off)")
    g.add_argument("--save-steps", type=_ints, default=S, metavar="S1,S2", help="snapshot at these steps too")
    g.add_argument("--save-log", type=int, default=S, metavar="N", help="N log-spaced snapshot steps too")
    g.add_argument("--save-all", action="store_true", default=S, help="snapshot every step (small models)")
    g.add_argument("--eval-every", type=int, default=S, help="full train/test evaluation every k steps")
    g.add_argument("--eval-batch-size", type=int, default=S, help="examples per evaluation forward (default 1024)")
    g.add_argument("--sharpness-every", type=int, default=S, help="online top Hessian eigenvalues every k steps")
    g.add_argument("--sharpness-k", type=int, default=S, help="how many eigenvalues (default 1)")
    g.add_argument("--sharpness-subset", type=int, default=S, help="training examples in the Hessian (default 1024)")
    g.add_argument("--sharpness-bn", choices=("eval", "train"), default=S, help="BN mode of the Hessian (default train)")
    g.add_argument("--sharpness-tol", type=float, default=S, help="eigsh tolerance (default 1e-3)")
    g.add_argument("--sharpness-max-matvecs", type=int, default=S, help="HVP budget per measurement (default 200)")


def _run_args(g) -> None:
    g.add_argument("--out", required=True, help="the run file (HDF5)")
    g.add_argument("--resume", action="store_true", default=S, help="continue --out from its last snapshot")
    g.add_argument("--overwrite", action="store_true", default=S, help="replace an existing --out")
    g.add_argument("--init-from", default=S, metavar="RUN.h5", help="start from this run's step-0 parameters")
    g.add_argument("--batches-from", default=S, metavar="RUN.h5", help="replay this run's batches and aug seeds")
    g.add_argument("--config", default=S, metavar="FILE.json", help="start from a TrainConfig JSON file")
    bars = g.add_mutually_exclusive_group()
    bars.add_argument("--progress", dest="progress", action="store_const", const=True, default=S,
                      help="show the progress bar even when stderr is not a terminal (default: only on a terminal)")
    bars.add_argument("--no-progress", dest="progress", action="store_const", const=False, default=S,
                      help="no progress bar")
    g.add_argument("--no-fsync", action="store_true", default=S, help="do not fsync at snapshots (faster, kill-safe only)")


def given_fields(args) -> dict:
    """The TrainConfig fields given on the command line (``--data-dir`` is handled by the callers)."""
    d = {k: v for k, v in vars(args).items() if not k.startswith("_") and k not in RUNTIME + ("command",)}
    if d.pop("save_all", False):
        d["save_every"] = 1
    if "steps" in d and "epochs" not in d:
        d["epochs"] = None
    if "epochs" in d and "steps" not in d:
        d["steps"] = None
    return d


def base_config(args) -> dict:
    """Defaults, then --config, then the parent run's config for a sibling."""
    from checkpoints import TrainConfig

    base = {}
    if "config" in vars(args):
        path = Path(args.config)
        if not path.is_file():
            raise InputError(f"--config {path}: no such file; give a TrainConfig JSON file")
        base = TrainConfig.from_json(path.read_text()).to_dict()
    parent = getattr(args, "init_from", None) or getattr(args, "batches_from", None)
    if parent and not base:
        from landscape.io import RunFile

        with RunFile(parent) as run:
            base = {k: v for k, v in run.config.items() if k not in NOT_INHERITED}
    return base


def build_config(args):
    """The TrainConfig of a fresh run from the layered sources (module docstring)."""
    from analyses.driver.inputs import default_device
    from checkpoints import TrainConfig

    fields = {"device": default_device(), **base_config(args), **given_fields(args)}
    if "data_dir" in vars(args):
        fields["dataset_kwargs"] = {**fields.get("dataset_kwargs", {}), "data_dir": args.data_dir}
    if fields.get("steps") is None and fields.get("epochs") is None:
        raise InputError("give the length of the run: --steps N or --epochs N")
    return TrainConfig.from_dict(fields)


def run(args) -> int:
    from analyses.driver.inputs import check_device
    from analyses.driver.progress import showing
    from checkpoints import train

    progress, fsync = showing(), not getattr(args, "no_fsync", False)
    if getattr(args, "resume", False):
        if getattr(args, "overwrite", False):
            raise InputError("--resume and --overwrite contradict each other; pass one of them")
        result = _resume(args, progress, fsync)
    else:
        cfg = build_config(args)
        check_device(cfg.device)
        result = train(cfg, args.out, overwrite=getattr(args, "overwrite", False), progress=progress, fsync=fsync)
    print(_summary(result))
    return 0


def _resume(args, progress: bool, fsync: bool):
    from checkpoints import TrainConfig, resume
    from checkpoints.config import check_resumable
    from landscape.io import RunFile

    given = given_fields(args)
    with RunFile(args.out) as run:
        stored = TrainConfig.from_dict(run.config)
    extra = {k: v for k, v in given.items() if k not in ("steps", "epochs", "device")}
    if "dataset_kwargs" in extra:  # the data directory may move; the data are checked by checksum
        extra["dataset_kwargs"] = {**extra["dataset_kwargs"], "data_dir": stored.dataset_kwargs.get("data_dir")}
        if "data_dir" not in stored.dataset_kwargs:
            extra["dataset_kwargs"].pop("data_dir")
    if extra:
        check_resumable(stored, stored.replace(**extra), args.out)
    length = {k: given[k] for k in ("steps", "epochs") if given.get(k) is not None}
    return resume(args.out, device=given.get("device"), data_dir=getattr(args, "data_dir", None),
                  progress=progress, fsync=fsync, **length)


def _summary(r) -> str:
    ev = r.final_eval
    metrics = (f", train loss {ev['train_loss']:.4g}, test acc {ev['test_acc']:.4f}" if ev else
               f", last minibatch loss {r.final_loss:.4g}" if r.final_loss is not None else "")
    return f"{r.path}: {r.status} at step {r.step}/{r.total_steps}{metrics} ({r.wall_time:.1f} s)"
