# %% [markdown]
# # Your own model and data: eigenvalues, density, a line search and a surface
#
# The toolkit's core works on any `nn.Module` and any tensors. Here the model and the data come
# from your own file (`mymodels.py`), are trained for a few epochs with a plain PyTorch loop,
# and then the full-dataset Hessian is analysed from Python: certified top eigenvalues,
# the spectral density, line searches along the top eigenvectors and a 2-D loss surface.
#
# Run it as a script (`python examples/own_model_and_data.py`) or open it as a notebook
# (percent cells: VS Code, Jupytext). `LANDSCAPE_EXAMPLES_TINY=1` runs it at tiny sizes (CI).

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

import landscape as ls
from analyses.linesearch.curves import along
from analyses.surface import evaluate_rows
from landscape.directions import random_directions

TINY = os.environ.get("LANDSCAPE_EXAMPLES_TINY") == "1"
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("LANDSCAPE_EXAMPLES_OUT", "examples-out"))
OUT.mkdir(exist_ok=True)
torch.manual_seed(0)

# %% [markdown]
# ## Your data and your model, by file path
# `ls.load_dataset` and `ls.build_model` take `path/to/file.py:factory` (or `module:factory`)
# with keyword arguments; the data come back as tensors with a checksum, the model seeded.

# %%
sizes = dict(num_train=128, num_test=32) if TINY else dict(num_train=1024, num_test=256)
data = ls.load_dataset(f"{HERE}/mymodels.py:waves", **sizes)
model = ls.build_model(f"{HERE}/mymodels.py:SmallCNN", seed=0, channels=4 if TINY else 8)
print(f"N = {data.num_train}, classes = {data.num_classes}, P = {sum(p.numel() for p in model.parameters()):,}")

# %% a few epochs of your own training loop
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
for epoch in range(2 if TINY else 15):
    for idx in torch.randperm(data.num_train).split(32):
        loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
print(f"last minibatch loss {loss.item():.4f}")

# %% [markdown]
# ## The full-dataset objective and its Hessian
# `bn="eval"` uses the running BatchNorm statistics, so the loss is a fixed function of θ.
# `eigsh` returns certified eigenpairs: `residuals` are the recomputed ‖Hv − λv‖.

# %%
obj = ls.Objective(model.eval(), data.x_train, data.y_train, loss="cross_entropy", bn="eval")
theta = obj.theta
H = obj.hessian(theta)
top = ls.eigsh(H, k=3 if TINY else 10, which="LA", tol=1e-4, seed=0)
lams = top.eigenvalues.numpy()                     # float64, descending (which="LA")
print("top eigenvalues ", np.round(lams, 4))
print("their residuals ", top.residuals.numpy())
print("HVPs used       ", top.num_matvecs, "converged:", top.converged)

# %% spectral density (stochastic Lanczos quadrature) and trace (Hutch++)
dens = ls.spectral_density(H, num_probes=2 if TINY else 10, num_iters=20 if TINY else 80, seed=0)
sigma = 0.02 * float(lams[0])
grid = dens.grid(400, sigma)                       # a grid covering the spectrum (torch, float64)
tr = ls.trace(H, num_matvecs=30 if TINY else 300, method="hutch++", seed=0)
print(f"trace {tr.value:.3f} ± {tr.stderr:.3f}")

fig, ax = plt.subplots(figsize=(5, 3), constrained_layout=True)
ax.semilogy(grid.numpy(), dens.density(grid, sigma).clamp_min(1e-8).numpy())
for lam in lams:
    ax.axvline(lam, color="C1", lw=0.6)
ax.set(xlabel="eigenvalue λ", ylabel="density", title="Hessian spectrum (lines: top eigenvalues)")
fig.savefig(OUT / "a_density.png", dpi=120)

# %% [markdown]
# ## Line searches along the top eigenvectors
# L(θ + t v_i) for each unit eigenvector: near t = 0 it is L(θ) + t g·v_i + ½ λ_i t².

# %%
ts = np.linspace(-1.0, 1.0, 11 if TINY else 41)
V = torch.as_tensor(top.eigenvectors[:3]).to(theta)       # the top three directions
curves = along(obj, theta, V, ts)
fig, ax = plt.subplots(figsize=(5, 3), constrained_layout=True)
g = obj.grad(theta)
for i, lam in enumerate(lams[:3]):
    ax.plot(ts, curves["loss"][i], label=f"v{i + 1}, λ = {lam:.3g}")
    quad = curves["loss"][i][len(ts) // 2] + ts * float(g @ V[i]) + 0.5 * lam * ts ** 2
    ax.plot(ts, quad, ls=":", color=ax.lines[-1].get_color())
ax.set(xlabel="t", ylabel="loss", title="line searches (dotted: quadratic model)")
ax.legend(fontsize=7)
fig.savefig(OUT / "a_linesearch.png", dpi=120)

# %% [markdown]
# ## A 2-D surface along two filter-normalized random directions (Li et al. 2018)

# %%
D = random_directions("filter", theta, obj.spec, 2, seed=0)
xs = np.linspace(-1, 1, 5 if TINY else 21)
loss, acc = evaluate_rows(obj, theta, D, xs, xs)
fig, ax = plt.subplots(figsize=(4, 3.4), constrained_layout=True)
cs = ax.contourf(xs, xs, np.log10(loss), levels=20)
fig.colorbar(cs, label="log₁₀ loss")
ax.plot(0, 0, "k*")
ax.set(xlabel="direction 1", ylabel="direction 2", title="loss surface around θ")
fig.savefig(OUT / "a_surface.png", dpi=120)
print("figures in", OUT)
