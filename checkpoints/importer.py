"""Checkpoints trained elsewhere become a run file: ``landscape import`` and :func:`import_checkpoints`.

Each checkpoint (a ``state_dict`` in a ``.pt`` file or a ``.safetensors`` file,
:mod:`checkpoints.state_files`) becomes one saved step of a new run file, in the trainer's
format (``source="import"``): θ from the model's trainable parameters, the BatchNorm buffers,
the model's import path and arguments, the data set's spec and SHA-256. The model is built
from its spec and the checkpoint must fit it exactly: missing or unexpected keys and shape
differences are refused with one line listing the first few. A common prefix that every key
carries and the model's names lack (``model.`` from PyTorch Lightning, ``module.`` from
``DataParallel``) is stripped, and said so.

An imported run has no batch log and no optimizer state: every analysis at its saved steps
works (Hessian jobs, line searches, sharpness, surfaces, gradient projections); θ at unsaved
steps cannot be replayed, and the training figure has no per-step losses to draw.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from checkpoints.config import TrainConfig
from checkpoints.state_files import read_state_dict
from landscape.errors import InputError

MAX_LISTED = 4  # differences named in a mismatch message


def import_checkpoints(paths, out, *, model: str, dataset: str, model_kwargs: dict | None = None,
                       dataset_kwargs: dict | None = None, steps=None, loss: str = "cross_entropy", seed: int = 0,
                       key: str | None = None, strip_prefix: str | None = None, overwrite: bool = False,
                       log=print) -> dict:
    """Write ``paths`` (one checkpoint per saved step) as the run file ``out``.

    Args:
        paths: checkpoint files, in step order.
        out: the run file to create (an existing one only with ``overwrite``).
        model, model_kwargs: the model's spec (registered name, plugin, ``package.module:factory``
            or ``path/to/file.py:factory``) and arguments; registered models take their input
            size and classes from the data where not given.
        dataset, dataset_kwargs: the data the analyses use (its spec and checksum are stored).
        steps: the training step of each checkpoint (default 0, 1, 2, …), strictly increasing.
        loss: the loss the analyses evaluate.
        seed: the run's seed (the seeded subsets analyses draw).
        key: the entry of a ``.pt`` checkpoint that holds the state dict.
        strip_prefix: a prefix to remove from every key (default: found when unambiguous).

    Returns:
        ``{"path", "steps", "P", "B", "imported": [...]}``.

    Raises:
        InputError: unreadable spec, a checkpoint that does not fit the model (one line, the
            first differences), steps not increasing or not one per file.
        OutputExistsError: ``out`` exists and not ``overwrite`` (nothing is touched).
    """
    from landscape.datasets import load_dataset

    paths = [os.fspath(p) for p in paths]
    steps = _steps(steps, len(paths))
    data = load_dataset(dataset, **(dataset_kwargs or {}))
    cfg = TrainConfig(dataset=dataset, dataset_kwargs=dataset_kwargs or {}, model=model,
                      model_kwargs=model_kwargs or {}, loss=loss, seed=seed, optimizer="other", lr=0.0,
                      source="import", save_every=0).resolved(data.num_train, dataset_default_augment=False)
    net = _model(cfg, data)
    states = [_state_of(net, p, key, strip_prefix, log) for p in paths]
    return _write(out, cfg, data, net, steps, states, overwrite)


def _steps(steps, n: int) -> list[int]:
    steps = list(range(n)) if steps is None else [int(s) for s in steps]
    if len(steps) != n:
        raise InputError(f"give one step per checkpoint: {n} file(s) but {len(steps)} step(s) in --steps")
    if any(b <= a for a, b in zip(steps, steps[1:])) or (steps and steps[0] < 0):
        raise InputError(f"--steps must be increasing steps >= 0 (one per checkpoint, in order), got {steps}")
    return steps


def _model(cfg: TrainConfig, data):
    from checkpoints.setup import build_fitted_model

    return build_fitted_model(cfg, data)


def _state_of(net, path, key, strip_prefix, log) -> tuple[np.ndarray, np.ndarray, dict]:
    """θ (P,) float32, buffers (B,) float32 and the import record of one checkpoint."""
    state, info = read_state_dict(path, key)
    state, prefix = _strip(state, net, strip_prefix)
    _check_fit(state, net, path)
    info["stripped_prefix"] = prefix
    info["cast_from"] = sorted({str(t.dtype).removeprefix("torch.") for t in state.values()
                                if t.is_floating_point() and t.dtype != torch.float32})
    if prefix:
        log(f"{path}: removed the prefix {prefix!r} from every key")
    return _theta(net, state), _buffers(net, state), info


def _strip(state: dict, net, prefix: str | None) -> tuple[dict, str]:
    expected = set(net.state_dict())
    if prefix is None:
        prefix = _common_prefix(state, expected)
    if not prefix:
        return state, ""
    if not all(k.startswith(prefix) for k in state):
        bad = [k for k in state if not k.startswith(prefix)][:MAX_LISTED]
        raise InputError(f"--strip-prefix {prefix!r}: keys {bad} do not start with it")
    return {k[len(prefix):]: v for k, v in state.items()}, prefix


def _common_prefix(state: dict, expected: set) -> str:
    """The first key segment every key has, when the keys without it are exactly the model's."""
    if set(state) == expected or not state:
        return ""
    heads = {k.split(".", 1)[0] for k in state}
    if len(heads) != 1 or not all("." in k for k in state):
        return ""
    prefix = heads.pop() + "."
    return prefix if {k[len(prefix):] for k in state} == expected else ""


def _check_fit(state: dict, net, path) -> None:
    want = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in state.items()}
    diff = [f"missing {k}" for k in want if k not in have] + [f"unexpected {k}" for k in have if k not in want]
    diff += [f"{k} is {list(have[k])} in the file vs {list(want[k])} in the model"
             for k in want if k in have and have[k] != want[k]]
    if diff:
        spec = net.build_spec
        more = f" (+{len(diff) - MAX_LISTED} more)" if len(diff) > MAX_LISTED else ""
        raise InputError(f"{path} does not fit model {spec['name']!r} {spec['kwargs']}: "
                         f"{'; '.join(diff[:MAX_LISTED])}{more}; check --model/--model-kwargs (or --key, --strip-prefix)")


def _theta(net, state: dict) -> np.ndarray:
    parts = [state[n].detach().reshape(-1).to(torch.float32) for n, p in net.named_parameters() if p.requires_grad]
    theta = torch.cat(parts).numpy() if parts else np.zeros(0, np.float32)
    if not np.isfinite(theta).all():
        raise InputError("the checkpoint's parameters hold NaN or infinite values")
    return theta


def _buffers(net, state: dict) -> np.ndarray:
    parts = [(state[n] if n in state else b).detach().reshape(-1).to(torch.float64) for n, b in net.named_buffers()]
    return torch.cat(parts).numpy().astype(np.float32) if parts else np.zeros(0, np.float32)


def _write(out, cfg: TrainConfig, data, net, steps: list[int], states: list, overwrite: bool) -> dict:
    from landscape.io import RunWriter
    from landscape.models import structure

    spec = net.build_spec
    meta = dict(config=cfg.to_dict(), model_name=spec["name"], model_kwargs=cfg.model_kwargs,
                model_data_kwargs=spec["from_data"], model_origin=spec["origin"], dataset_spec=data.spec,
                dataset_checksum=data.checksum, seed=cfg.seed, **structure(net), batch_size=0,
                num_train=data.num_train, full_batch=False, batch_log=False, augment=False, source="import",
                replay={"possible": False, "exact": False,
                        "why": "an imported checkpoint carries no batch log or optimizer state"},
                optimizer={"name": "unknown"}, imported=[info for _, _, info in states])
    P, B = len(states[0][0]), len(states[0][1])
    with RunWriter(out, mode="overwrite" if overwrite else "create", meta=meta, P=P, B=B, batch_size=0) as w:
        for step, (theta, buffers, _) in zip(steps, states):
            w.append_snapshot(step, theta, buffers)
        w.commit(fsync=True)
        w.set_status("complete", f"imported from {len(states)} checkpoint(s)")
    return {"path": os.fspath(out), "steps": steps, "P": P, "B": B, "imported": meta["imported"]}
