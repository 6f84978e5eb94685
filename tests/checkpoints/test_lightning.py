"""The PyTorch Lightning callback (optional extra): a Trainer.fit recorded into a run file.

Skipped cleanly where Lightning is not installed (``make test``); CI installs the ``lightning``
extra only when pip's resolver keeps the torch that is there (``.ci/install-extra``).
"""


import numpy as np
import pytest
import torch
import torch.nn.functional as F

pl = pytest.importorskip("lightning.pytorch", reason="PyTorch Lightning is not installed (the lightning extra)")


from checkpoints import open_run  # noqa: E402
from checkpoints.lightning import LandscapeCallback  # noqa: E402
from checkpoints.recorder import with_indices  # noqa: E402
from landscape.errors import InputError  # noqa: E402
from landscape.io import RunFile  # noqa: E402


def fit(out, steps: int, accumulate: int = 1):
    import mynets

    import landscape as ls

    class Lit(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = mynets.Net()

        def training_step(self, batch, i):
            x, y, _ = batch
            return F.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)

    data = ls.load_dataset("mynets:blobs")
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(with_indices(data), batch_size=16, shuffle=True, drop_last=True)
    cb = LandscapeCallback(out, dataset=data, module_attr="net", model_spec="mynets:Net", save_every=4)
    pl.Trainer(max_steps=steps, callbacks=[cb], logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False, accumulate_grad_batches=accumulate, accelerator="cpu").fit(Lit(), loader)


def test_a_lightning_fit_is_recorded_and_replays(user_dir, tmp_path):
    out = tmp_path / "lit.h5"
    fit(out, 8)
    with RunFile(out) as f:
        assert f.status == "complete" and f.num_steps == 8 and f.saved_steps.tolist() == [0, 4, 8]
        assert f.meta["optimizer"]["class"] == "torch.optim.sgd.SGD" and f.batch_size == 16
    with open_run(out) as run:
        replayed = run._replay(run.snapshot_state(0), 4).theta  # the replay reaches the next snapshot exactly
        assert np.array_equal(replayed.numpy(), run.file.params(4))
        run.theta(6)


def test_accumulated_batches_with_batch_norm_are_logged_but_not_replayed(user_dir, tmp_path):
    out = tmp_path / "acc.h5"
    fit(out, 4, accumulate=2)
    with RunFile(out) as f:
        assert f.num_steps == 4 and f.batch_size == 32  # one step = the two micro-batches of one update
    with open_run(out) as run, pytest.raises(InputError, match="micro-batches of accumulate_grad_batches"):
        run.theta(2)
