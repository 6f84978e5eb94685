"""``landscape import CKPT.pt [CKPT2.pt …] --model SPEC --dataset SPEC --out RUN.h5``: your checkpoints as a run file.

Each checkpoint (a ``state_dict`` in a ``.pt`` file, read with ``torch.load(weights_only=True)``,
or a ``.safetensors`` file) becomes one saved step of a run file that every analysis reads
(:mod:`checkpoints.importer`). The model is rebuilt from ``--model`` (a registered name, a
plugin, ``package.module:factory`` or ``path/to/file.py:factory``) with ``--model-kwargs``; the
data from ``--dataset``. A checkpoint that does not fit the model is refused with one line
listing the first differences; nothing is written then.
"""

from __future__ import annotations

import argparse

from analyses.cli.args import json_object

NAME = "import"
HELP = "turn state_dict checkpoints (.pt, .safetensors) of your own model into a run file for the analyses"


def _ints(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated steps like 0,1000,2000, got {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoints", nargs="+", metavar="CKPT", help=".pt/.pth/.ckpt (a state_dict, or a checkpoint "
                   "holding one) or .safetensors files, one per saved step, in step order")
    p.add_argument("--model", required=True, help="the model: a registered name, a plugin, "
                   "package.module:factory or path/to/file.py:factory")
    p.add_argument("--model-kwargs", type=json_object, default={}, metavar="JSON", help="the factory's arguments")
    p.add_argument("--dataset", required=True, help="the data: cifar10, mnist1d, synthetic, a plugin, "
                   "package.module:factory or path/to/file.py:factory")
    p.add_argument("--dataset-kwargs", type=json_object, default={}, metavar="JSON", help="the data's arguments")
    p.add_argument("--data-dir", default=None, help="directory of the CIFAR-10 files")
    p.add_argument("--steps", type=_ints, default=None, metavar="S1,S2",
                   help="the training step of each checkpoint (default 0, 1, 2, …)")
    p.add_argument("--loss", choices=("cross_entropy", "mse"), default="cross_entropy",
                   help="the loss the analyses evaluate (default cross_entropy)")
    p.add_argument("--seed", type=int, default=0, help="the run's seed (seeded subsets of the analyses); default 0")
    p.add_argument("--key", default=None, help="the entry of a .pt checkpoint holding the state dict "
                   "(default: the file itself, or its one entry among state_dict, model_state_dict, model, …)")
    p.add_argument("--strip-prefix", default=None, metavar="PREFIX",
                   help="remove this prefix from every key (default: a common one such as 'model.' when the rest fits)")
    p.add_argument("--out", required=True, metavar="RUN.h5", help="the run file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def run(args) -> int:
    from checkpoints.importer import import_checkpoints

    dataset_kwargs = dict(args.dataset_kwargs)
    if args.data_dir is not None:
        dataset_kwargs["data_dir"] = args.data_dir
    done = import_checkpoints(args.checkpoints, args.out, model=args.model, model_kwargs=args.model_kwargs,
                              dataset=args.dataset, dataset_kwargs=dataset_kwargs, steps=args.steps, loss=args.loss,
                              seed=args.seed, key=args.key, strip_prefix=args.strip_prefix, overwrite=args.overwrite)
    print(f"{done['path']}: {len(done['steps'])} saved step(s) {done['steps']}, P = {done['P']:,}, "
          f"BN buffers = {done['B']:,}")
    return 0
