"""Training problems for the hypergradient analyses, from a run file or from options.

:class:`ProblemSource` gives the :class:`landscape.hyper.TrainingProblem` of each seed: the run's
model, data, optimiser, its logged batches and θ_0 for its own seed (other seeds drawn as the
trainer draws them: init from the seed, the trainer's batch plan), or the problem the command's
options describe. It is the hypergradient counterpart of :mod:`analyses.driver.inputs`.

Validation data are the dataset's test split, or (``num_val > 0``, for hyperparameter optimisation,
where the test split must stay unseen) the last ``num_val`` examples of the training split; the
training set is then the examples before them and :attr:`ProblemSource.test` the test split.
"""

from __future__ import annotations

import math

from landscape.errors import InputError


class ProblemSource:
    """The training problem of each seed, from a run file or from the command's options."""

    def __init__(self, args, T_max: int, device: str, dtype, *, num_val: int = 0):
        self.args, self.T_max, self.device, self.dtype = args, T_max, device, dtype
        self.run = None
        self.cfg = self._config()
        self.data = self._data()
        self.train, self.val, self.test = self._splits(num_val)
        config = {k: v for k, v in self.cfg.to_dict().items() if k not in ("device", "deterministic")}
        where = f"last {num_val} of the training split" if num_val else "test split"
        self.spec = {"train_config": config, "dtype": str(dtype).removeprefix("torch."),
                     "dataset_checksum": self.data.checksum, "validation": where}
        self.provenance = {} if self.run is None else {"run": self.run.path, "run_sha256": self.run.file_sha256}

    def _config(self):
        from checkpoints.config import TrainConfig

        a = self.args
        if a.run is not None:
            from landscape.io import RunFile

            self.run = RunFile(a.run)
            cfg = TrainConfig.from_dict(self.run.config)
        else:
            cfg = TrainConfig(dataset=a.dataset, dataset_kwargs=a.dataset_kwargs, model=a.model,
                              model_kwargs=a.model_kwargs, loss=a.loss, lr=a.lr, momentum=a.momentum,
                              weight_decay=a.weight_decay, nesterov=a.nesterov, batch_size=a.batch_size,
                              full_batch=a.full_batch, steps=self.T_max, device=self.device)
        _check_trainable(cfg)
        return cfg

    def _data(self):
        from landscape.datasets import load_dataset, load_dataset_from_spec

        if self.run is not None:
            return load_dataset_from_spec(dict(self.run.dataset_spec), device=self.device,
                                          checksum=self.run.dataset_checksum)
        return load_dataset(self.cfg.dataset, device=self.device, **self.cfg.dataset_kwargs)

    def _splits(self, num_val: int):
        """(train, validation, test) pairs of tensors: validation held out of the training split if asked."""
        d = self.data
        if not num_val:
            return (d.x_train, d.y_train), (d.x_test, d.y_test), (d.x_test, d.y_test)
        n = len(d.x_train) - num_val
        if self.run is not None:
            self.run.close()
            raise InputError("a validation set held out of the training split cannot be used with a run file "
                             "(its logged batches index the whole split); give the problem by options instead")
        if num_val < 0 or n < 1:
            raise InputError(f"cannot hold out {num_val} of the {len(d.x_train)} training examples as the "
                             "validation set; give 0 < num_val < the training set's size")
        return (d.x_train[:n], d.y_train[:n]), (d.x_train[n:], d.y_train[n:]), (d.x_test, d.y_test)

    def results(self, path: str):
        from landscape.io import ResultsFile

        return ResultsFile(path, "a", run_id=self.provenance or None)

    def problem(self, seed: int, *, train=None):
        """The :class:`landscape.hyper.TrainingProblem` of ``seed``.

        Args:
            train: ``(x, y)`` to train on instead of the training split (e.g. a distilled set); the
                batch plan is then drawn over them (or full batch).
        """
        from landscape.hyper import TrainingProblem
        from landscape.models import build_model

        model = build_model(self.cfg.model, seed=seed, **self.cfg.model_kwargs).to(self.dtype)
        own = self.run is not None and seed == self.cfg.seed
        if own:
            _load_theta(model, self.run.params(0))
        c = self.cfg
        (x_train, y_train), (x_val, y_val) = train or self.train, self.val
        batches = self._batches(seed, own and train is None, len(x_train))
        return TrainingProblem(model, x_train, self.targets(y_train), x_val, self.targets(y_val), batches=batches,
                               loss=c.loss, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay,
                               nesterov=c.nesterov, dtype=self.dtype, device=self.device)

    def targets(self, y):
        """Labels as the loss takes them (one-hot for mse)."""
        return _targets(self.cfg, self.data, y)

    def _batches(self, seed: int, own: bool, num_train: int):
        import numpy as np
        import torch

        from checkpoints.batches import make_plan

        if self.cfg.full_batch:
            return None
        if own:
            if self.run.num_steps < self.T_max:
                raise InputError(f"the run file logs the batches of {self.run.num_steps} steps but T = {self.T_max} "
                                 "were asked; use horizons ≤ that, or train the run longer")
            return torch.from_numpy(np.asarray(self.run.batch_indices_range(0, self.T_max), dtype=np.int64))
        plan = make_plan(self.cfg.replace(seed=seed), num_train)
        return torch.stack([plan.indices(t) for t in range(self.T_max)])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.run is not None:
            self.run.close()
        return False


def _check_trainable(cfg) -> None:
    if cfg.schedule != "constant" or cfg.warmup_steps:
        raise InputError(f"hyper scan runs a constant learning rate; this run uses the {cfg.schedule} schedule "
                         "(with warm-up)" * bool(cfg.warmup_steps) + "; scan a run trained with --schedule constant")
    if cfg.augment:
        raise InputError("hyper scan does not replay data augmentation; use a run trained without it")
    if cfg.lr <= 0 or not math.isfinite(cfg.lr):
        raise InputError(f"the learning rate must be positive, got {cfg.lr}")


def _targets(cfg, data, y):
    import torch.nn.functional as F

    if cfg.loss == "mse" and not y.is_floating_point():
        return F.one_hot(y, data.num_classes).to(data.x_train.dtype)
    return y


def _load_theta(model, theta) -> None:
    import torch

    from landscape.params import ParamSpec

    spec = ParamSpec.from_module(model)
    values = spec.unflatten(torch.as_tensor(theta).to(next(model.parameters()).dtype))
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(values[name])
