"""A PyTorch Lightning callback that records a ``Trainer.fit`` into a run file (the optional extra).

Install with ``pip install 'landscape[lightning]'`` (or ``pip install lightning`` next to your
torch; check first with ``pip install --dry-run lightning`` that it keeps your torch). Example::

    from checkpoints.lightning import LandscapeCallback
    from checkpoints.recorder import with_indices

    data = ls.load_dataset("mydata:load")
    loader = DataLoader(with_indices(data), batch_size=64, shuffle=True, drop_last=True)  # batches end with indices
    cb = LandscapeCallback("run.h5", dataset=data, module_attr="net", save_every=50)
    Trainer(max_steps=1000, callbacks=[cb]).fit(lit_module, loader)

It is a :class:`~checkpoints.recorder.Recorder` driven by Lightning's hooks: recording starts
at ``on_train_start`` (θ_0, the optimizer of ``trainer.optimizers[0]``), each optimizer step is
logged from ``on_train_batch_end`` with the batch's indices (``indices(batch)``, default
``batch[-1]``) and loss (``outputs["loss"]``), and the run is closed at the end (status
``stopped`` after an exception). With ``accumulate_grad_batches = k`` the k micro-batches of one
optimizer step are logged as one step of k·b indices and their mean loss.
"""

from __future__ import annotations

import torch

from checkpoints.recorder import Recorder
from landscape.errors import InputError

try:
    import lightning.pytorch as pl
except ImportError:  # the standalone package
    try:
        import pytorch_lightning as pl
    except ImportError:
        raise InputError("checkpoints.lightning needs PyTorch Lightning: pip install 'landscape[lightning]' "
                         "(check with pip install --dry-run that it keeps your torch)") from None


class LandscapeCallback(pl.Callback):
    """Record the training of a LightningModule (or of its attribute ``module_attr``) into ``path``.

    Args:
        path: the run file.
        dataset: the training data (a :class:`landscape.datasets.Dataset` or its spec string);
            the batch indices refer to its ``x_train``.
        module_attr: the attribute of the LightningModule holding the network (e.g. ``"net"``);
            None: the LightningModule itself.
        indices: batch → its example indices (default: the last element, see
            :func:`checkpoints.recorder.with_indices`).
        **recorder_args: passed to :class:`~checkpoints.recorder.Recorder` (``model_spec``,
            ``model_kwargs``, ``loss``, ``save_every``, ``save_steps``, ``seed``, ``mode``, …).
    """

    def __init__(self, path, *, dataset, module_attr: str | None = None, indices=None, **recorder_args):
        super().__init__()
        self.path, self.dataset, self.module_attr = path, dataset, module_attr
        self.indices = indices or (lambda batch: batch[-1])
        self.args, self.recorder, self._pending = recorder_args, None, []

    def on_train_start(self, trainer, pl_module) -> None:
        net = getattr(pl_module, self.module_attr) if self.module_attr else pl_module
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        args = dict(self.args)
        if trainer.accumulate_grad_batches > 1 and _has_batch_norm(net):
            args.setdefault("not_replayable", "BatchNorm saw the micro-batches of accumulate_grad_batches, the log "
                                              "holds their union")
        self.recorder = Recorder(self.path, net, optimizer, dataset=self.dataset, **args)
        self.recorder.open()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self._pending.append((self.indices(batch), loss))
        if self.recorder.optimizer_steps_pending == 0:  # accumulating gradients: no optimizer step yet
            return
        idx = torch.cat([torch.as_tensor(i).reshape(-1) for i, _ in self._pending])
        mean_loss = torch.stack([torch.as_tensor(v, dtype=torch.float64).detach().cpu() for _, v in self._pending]).mean()
        self._pending = []
        self.recorder.step(idx, loss=mean_loss)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.recorder is not None:
            self.recorder.close()

    def on_exception(self, trainer, pl_module, exception) -> None:
        if self.recorder is not None and self.recorder.writer is not None:
            self.recorder.close("stopped", f"training raised {type(exception).__name__}")


def _has_batch_norm(net) -> bool:
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())
