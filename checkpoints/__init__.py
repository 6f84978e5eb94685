"""The checkpointing trainer: run files with every batch, exact replay, crash-safe resume.

Public API::

    from checkpoints import TrainConfig, train, resume, open_run, Recorder

    cfg = TrainConfig(dataset="mnist1d", model="cnn1d", lr=0.05, momentum=0.9, epochs=5,
                      batch_size=128, save_every=50, eval_every=100)
    train(cfg, "run.h5")                       # or `landscape train ... --out run.h5`
    resume("run.h5")                           # after a kill: continues from the last snapshot
    with open_run("run.h5") as run:            # analysis: model, data, θ at any step
        theta = run.theta(123)                 # replayed from the snapshot at 100, bitwise
    with Recorder("mine.h5", model, opt, dataset=data) as rec:   # your own training loop
        ...; opt.step(); rec.step(batch_indices, loss=loss)

Modules: :mod:`~checkpoints.config` (TrainConfig), :mod:`~checkpoints.schedules`,
:mod:`~checkpoints.augment`, :mod:`~checkpoints.batches` (stateless batch plans),
:mod:`~checkpoints.step` (the pure SGD/AdamW step), :mod:`~checkpoints.recording` (what is saved
when, online sharpness), :mod:`~checkpoints.setup`, :mod:`~checkpoints.train` (the loop),
:mod:`~checkpoints.replay` (:func:`open_run`), :mod:`~checkpoints.recorder` (:class:`Recorder`
for your own loop; :mod:`~checkpoints.lightning` its PyTorch Lightning callback),
:mod:`~checkpoints.importer` (state dicts saved elsewhere → run files). See ``docs/trainer.md``
and ``docs/your-own-models.md``.
"""

from checkpoints.config import TrainConfig
from checkpoints.recorder import Recorder
from checkpoints.replay import Run, open_run
from checkpoints.train import DiskFullError, TrainResult, resume, train

__all__ = ["TrainConfig", "train", "resume", "TrainResult", "DiskFullError", "open_run", "Run", "Recorder"]
