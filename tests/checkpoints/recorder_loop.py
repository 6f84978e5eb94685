"""A user's own training loop with the Recorder: run in the tests' process or as a child to SIGKILL.

``python recorder_loop.py USER_DIR OUT STEPS [--resume] [--pause-after T]`` trains
``mynets:Net`` (written into USER_DIR by ``tests/user_code.py``) on ``mynets:blobs`` with SGD
and momentum, saving every 10 steps; with ``--pause-after T`` it prints ``PAUSED`` after update
T − 1 and sleeps (the kill point); with ``--resume`` it reopens OUT at its last snapshot and
continues. The batch of step t is drawn from a generator seeded with t, so a resumed loop draws
the batches of the uninterrupted one.
"""

import argparse
import sys
import time

import torch
import torch.nn.functional as F

BATCH = 16


def batch(t: int, N: int) -> torch.Tensor:
    return torch.randperm(N, generator=torch.Generator().manual_seed(1000 + t))[:BATCH]


def make(optimizer: str = "sgd", seed: int = 0):
    """The model, its optimizer and the data (the user's own code, imported from mynets)."""
    import landscape as ls

    data = ls.load_dataset("mynets:blobs")
    model = ls.build_model("mynets:Net", seed=seed)
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    return model, opt, data


def train_step(model, opt, data, t: int):
    idx = batch(t, data.num_train)
    model.train()
    loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
    opt.zero_grad()
    loss.backward()
    opt.step()
    return idx, loss


def loop(out, steps: int, *, resume: bool = False, pause_after: int | None = None, optimizer: str = "sgd",
         thetas: dict | None = None, **recorder_args) -> None:
    """Train ``steps`` steps into ``out``; ``thetas`` (if given) collects θ_t of every step."""
    from checkpoints import Recorder
    from landscape.params import ParamSpec

    model, opt, data = make(optimizer)
    spec = ParamSpec.from_module(model)
    args = dict(save_every=10, batch_size=BATCH, mode="resume" if resume else "create", **recorder_args)
    with Recorder(out, model, opt, dataset=data, **args) as rec:
        start = rec.restore() if resume else 0
        for t in range(start, steps):
            if thetas is not None:
                thetas[t] = spec.theta_of(model)
            idx, loss = train_step(model, opt, data, t)
            rec.step(idx, loss=loss)
            if pause_after is not None and t + 1 == pause_after:
                print("PAUSED", flush=True)
                time.sleep(60)
    if thetas is not None:
        thetas[steps] = spec.theta_of(model)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("user_dir")
    p.add_argument("out")
    p.add_argument("steps", type=int)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--pause-after", type=int, default=None)
    a = p.parse_args()
    sys.path.insert(0, a.user_dir)
    torch.set_num_threads(1)
    loop(a.out, a.steps, resume=a.resume, pause_after=a.pause_after)
