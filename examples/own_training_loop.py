# %% [markdown]
# # Your own training loop, recorded; then the command-line analyses on its run file
#
# A plain PyTorch loop trains your model (`mymodels.py`, a file of your own) and calls
# `rec.step(batch_indices, loss=loss)` once per step. The `Recorder` writes the same run file
# `landscape train` writes — θ, BatchNorm buffers and the optimizer state at chosen steps, every
# step's batch, learning rate and loss — so every analysis reads it: Hessian jobs, line searches,
# sharpness, surfaces, figures and the report. Last, the model's `state_dict` saved at the end is
# imported with `landscape import` and gives the same eigenvalues.
#
# `LANDSCAPE_EXAMPLES_TINY=1` runs it at tiny sizes (CI); outputs go to `examples-out/`.

# %%
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import landscape as ls
from checkpoints import Recorder

TINY = os.environ.get("LANDSCAPE_EXAMPLES_TINY") == "1"
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("LANDSCAPE_EXAMPLES_OUT", "examples-out"))
OUT.mkdir(exist_ok=True)
RUN, RESULTS = OUT / "own-loop.h5", OUT / "own-loop-results.h5"
for old in (RUN, RESULTS, OUT / "imported.h5", OUT / "imported-results.h5"):
    old.unlink(missing_ok=True)  # the example starts afresh each time


def landscape(*args) -> None:
    """The command line, `landscape ARGS` in a shell, called in this process (and checked)."""
    from analyses.cli import main

    print("$ landscape", " ".join(map(str, args)))
    if main([str(a) for a in args]) != 0:
        raise SystemExit(f"landscape {args[0]} failed")


# %% [markdown]
# ## The loop you already have, plus four lines
# The model and data are named by file path so that every later command can rebuild them.
# The optimizer's learning rate and hyperparameters are read when it steps (a scheduler is fine).

# %%
MODEL, DATA = f"{HERE}/mymodels.py:SmallCNN", f"{HERE}/mymodels.py:waves"
data = ls.load_dataset(DATA, **(dict(num_train=128, num_test=32) if TINY else {}))
model = ls.build_model(MODEL, seed=0)
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
sched = torch.optim.lr_scheduler.StepLR(opt, step_size=100, gamma=0.3)
steps, batch = (20, 16) if TINY else (300, 32)
gen = torch.Generator().manual_seed(0)

with Recorder(RUN, model, opt, dataset=data, save_every=10 if TINY else 50, batch_size=batch) as rec:
    for step in range(steps):
        idx = torch.randperm(data.num_train, generator=gen)[:batch]     # this step's examples
        model.train()
        loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        rec.step(idx, loss=loss)                                         # after opt.step()
        if (step + 1) % (10 if TINY else 50) == 0:                       # your own evaluation, logged too
            with torch.no_grad():
                model.eval()
                ev = [(F.cross_entropy(model(x), y).item(), (model(x).argmax(1) == y).float().mean().item())
                      for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test))]
            rec.log_eval(*ev[0], *ev[1])
torch.save(model.state_dict(), OUT / "final.pt")                         # as you would anyway

# %% [markdown]
# ## What the run file holds, and the analyses from the command line

# %%
landscape("info", RUN)
k = 3 if TINY else 10
landscape("hessian", RUN, "--steps", "last" if TINY else "all", "--k", k, "--density", 2 if TINY else 10, 20 if TINY else 80,
          "--trace", 20 if TINY else 200, "--out", RESULTS, "--device", "cpu")
landscape("linesearch", RUN, "--eigen", RESULTS, "--steps", "last", "--directions", "top:2", "--out", RESULTS,
          "--device", "cpu", *(["--num-t", 9] if TINY else ["--minibatch-size", 32]))
landscape("sharpness", RUN, "--steps", "last", "--radii", "0.01,0.05", "--directions", 2 if TINY else 20,
          "--worst", "none" if TINY else "box", "--out", RESULTS, "--device", "cpu")
landscape("surface", RUN, "--steps", "last", "--grid", 5 if TINY else 21, "--out", RESULTS, "--device", "cpu")
landscape("plot", RESULTS, RUN, "--out", OUT / "figures")
landscape("report", RUN, RESULTS, "--out", OUT / "report", "--overwrite")

# %% [markdown]
# ## θ at any step, from Python
# Saved steps are read (checksum-verified); any other step is replayed from the snapshot before it
# with the logged batches and learning rates, and checked against the next snapshot.

# %%
from checkpoints import open_run  # noqa: E402

with open_run(RUN) as run:
    t = int(run.saved_steps[1]) - 3
    print(f"θ at step {t} (replayed): ‖θ‖ = {run.theta(t).norm():.4f}; saved steps {run.saved_steps.tolist()}")

# %% [markdown]
# ## The final state_dict, imported: the same eigenvalues at the same step

# %%
landscape("import", OUT / "final.pt", "--model", MODEL, "--dataset", DATA,
          *(["--dataset-kwargs", '{"num_train": 128, "num_test": 32}'] if TINY else []),
          "--steps", steps, "--out", OUT / "imported.h5")
landscape("hessian", OUT / "imported.h5", "--steps", steps, "--k", k, "--out", OUT / "imported-results.h5",
          "--device", "cpu")
key = f"hessian/step_{steps:08d}/eigen"
with ls.io.ResultsFile(RESULTS) as a, ls.io.ResultsFile(OUT / "imported-results.h5") as b:
    recorded, imported = (f.read_item(key)[0]["eigenvalues"] for f in (a, b))
print("recorded run:", np.round(recorded, 6))
print("imported    :", np.round(imported, 6))
# Same θ, buffers, data and seed: the same numbers (bitwise for a cold start; a job warm-started from
# the previous step's eigenvectors, as with --steps all, agrees to the certified residuals: each
# eigenvalue is within ‖Hv − λv‖ ≤ tol·‖H‖ = 1e-4·λ_max of the truth, so two runs within twice that).
np.testing.assert_allclose(imported, recorded, rtol=0, atol=2e-4 * abs(recorded).max())

# %% [markdown]
# ## The figures are matplotlib Figures: in a notebook they show inline

# %%
from analyses.plots.training import training_curves  # noqa: E402

with ls.io.RunFile(RUN) as f:
    (_, fig), = training_curves(None, f)
fig
