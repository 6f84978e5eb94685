"""Hessian quantities at one checkpoint, as records for the runner.

For the full-dataset loss L(θ) at a saved step, with H = ∇²L(θ) of size P × P:

* **eigen** — k extreme eigenpairs (λ_i, v_i) by thick-restart Lanczos
  (:func:`landscape.eigsh`), each certified by its residual ‖H v_i − λ_i v_i‖. A
  warm start grows the Krylov space from the previous checkpoint's eigenvectors,
  which lie close to the new invariant subspace when checkpoints are close.
* **density** — the spectral density by stochastic Lanczos quadrature (Golub &
  Meurant 1994; Ghorbani, Krishnan & Xiao 2019): per probe, the Ritz values
  (nodes) and squared first components (weights) of an m-step Lanczos run;
  smoothing is left to the reader of the file.
* **trace** — tr H by Hutch++ (Meyer et al. 2021) or Hutchinson (1989), with its
  samples and standard error.
* **dense** — H itself, row block by row block (H is symmetric, so row block
  ``[a, b)`` is ``H[:, a:b]ᵀ``, one HVP per unit vector), and its full spectrum by
  ``eigvalsh`` of (H + Hᵀ)/2 in float64. P HVPs: for small models only.

:class:`HessianWork` computes the items of one checkpoint from the driver's inputs (the
objective at the step, this process's shard under ``torchrun``) and a results view
shared by all ranks (warm starts, dense blocks). Nothing here opens files: the ``landscape
hessian`` command opens them and the runner writes the records.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from analyses.driver.records import Record
from landscape.errors import InputError, NonFiniteError
from landscape.io import step_key

NAME = "hessian"
QUANTITIES = ("eigen", "density", "trace", "dense")
# Config fields whose change makes stored items of a quantity incomparable with new ones
# (besides the objective's own settings: bn, subset, params, dtype).
QUANTITY_FIELDS = {"eigen": ("k", "which", "tol"), "density": ("density_probes", "density_iters", "seed"),
                   "trace": ("trace_matvecs", "trace_method", "seed"), "dense": ()}


@dataclass(frozen=True)
class HessianJobConfig:
    """What to compute at each step (units in comments)."""

    k: int = 10                    # eigenpairs (0: no eigen item)
    which: str = "LA"              # LA | SA | LM | BE (see landscape.eigsh)
    tol: float = 1e-4              # residual ‖Hv − λv‖ relative to ‖H‖_est
    max_matvecs: int | None = None  # eigsh budget in HVPs (None: eigsh's default)
    warm_start: bool = True        # start from the previous step's eigenvectors
    density: bool = False
    density_probes: int = 10       # SLQ probe vectors n_v
    density_iters: int = 100       # Lanczos steps m per probe
    trace: bool = False
    trace_matvecs: int = 300       # HVP budget of the trace estimator
    trace_method: str = "hutch++"  # hutch++ | hutchinson
    dense: bool = False
    dense_block: int = 64          # rows of H per stored (resumable) block
    dense_max_params: int = 10_000  # size guard: refuse --dense above this P
    seed: int = 0                  # seed of every random start and probe

    def quantities(self) -> tuple[str, ...]:
        """The quantities this config asks for, in the order they are computed."""
        wanted = {"eigen": self.k > 0, "density": self.density, "trace": self.trace, "dense": self.dense}
        return tuple(q for q in QUANTITIES if wanted[q])

    def as_dict(self) -> dict:
        """JSON-able fields (stored in every item's config)."""
        return asdict(self)

    def settings(self, quantity: str) -> dict:
        """The fields the numbers of ``quantity`` depend on."""
        return {f: getattr(self, f) for f in QUANTITY_FIELDS[quantity]}

    def keys(self, step: int) -> list[str]:
        """The results keys ``hessian/step_…/<quantity>`` one step produces."""
        return [step_key(NAME, step, q) for q in self.quantities()]


def check_config(cfg: HessianJobConfig, P: int) -> None:
    """Refuse what cannot work before anything is computed.

    Raises:
        InputError: nothing asked, k ≥ P, or ``dense`` for a model above the size guard.
    """
    if not cfg.quantities():
        raise InputError("nothing to compute: give --k > 0, --density, --trace or --dense")
    if cfg.k >= P:
        raise InputError(f"--k {cfg.k} needs fewer eigenpairs than parameters (P = {P}); use "
                         f"--k {max(1, P - 1)} or less, or --dense for all {P} eigenvalues")
    if cfg.dense:
        check_dense_size(P, cfg)


@dataclass(frozen=True)
class DenseSize:
    """The cost of a dense Hessian: P, bytes of H in float64, HVPs and stored blocks."""

    P: int
    bytes: int
    hvps: int
    blocks: int

    def describe(self) -> str:
        """A human-readable line."""
        return (f"P = {self.P:,} parameters: H is P² × 8 B = {_human_bytes(self.bytes)} in float64 and "
                f"takes {self.hvps:,} HVPs ({self.blocks:,} blocks)")


def dense_size(P: int, block_rows: int) -> DenseSize:
    """What ``--dense`` costs for P parameters."""
    return DenseSize(P, 8 * P * P, P, math.ceil(P / block_rows))


def check_dense_size(P: int, cfg: HessianJobConfig) -> DenseSize:
    """Raise InputError (with the size, memory and HVPs) when P exceeds the guard."""
    size = dense_size(P, cfg.dense_block)
    if P > cfg.dense_max_params:
        raise InputError(f"--dense refused: {size.describe()}; the limit is --dense-max-params "
                         f"{cfg.dense_max_params:,}. Restrict to a layer with --params, or raise the limit")
    return size


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def counted(H, on_matvec: Callable[[int], None] | None):
    """``H`` wrapped so that each product reports the running HVP count to ``on_matvec``."""
    from landscape.operators import CountingOperator

    return CountingOperator(H, on_matvec)


def warm_start_vectors(previous: dict | None, P: int, cfg: HessianJobConfig) -> torch.Tensor | None:
    """The previous step's eigenvectors ``(k', P)`` if usable as a warm start, else None."""
    if not cfg.warm_start or previous is None:
        return None
    V = np.asarray(previous.get("eigenvectors", np.zeros((0, 0))))
    if V.ndim != 2 or V.shape[1] != P or V.shape[0] == 0 or not np.isfinite(V).all():
        return None
    return torch.from_numpy(V.astype(np.float64))


def eigen_record(H, cfg: HessianJobConfig, *, v0: torch.Tensor | None = None,
                 on_matvec: Callable[[int], None] | None = None,
                 on_cycle: Callable[[dict], None] | None = None) -> Record:
    """k extreme eigenpairs of ``H`` with residuals and the HVP count.

    Arrays: ``eigenvalues (k,)`` float64 (sorted as ``which``), ``eigenvectors (k, P)``,
    ``residuals (k,)`` = ‖Hv − λv‖, ``relative_residuals`` = residuals / ‖H‖_est,
    ``num_matvecs``, ``converged``.
    """
    from landscape.solvers import eigsh

    res = eigsh(counted(H, on_matvec), k=cfg.k, which=cfg.which, tol=cfg.tol,
                max_matvecs=cfg.max_matvecs, seed=cfg.seed, v0=v0, callback=on_cycle)
    norm = res.norm_estimate if res.norm_estimate > 0 else float("nan")
    arrays = {"eigenvalues": res.eigenvalues.cpu().numpy().astype(np.float64),
              "eigenvectors": res.eigenvectors.detach().cpu().numpy(),
              "residuals": res.residuals.cpu().numpy().astype(np.float64),
              "relative_residuals": res.residuals.cpu().numpy().astype(np.float64) / norm,
              "num_matvecs": int(res.num_matvecs), "converged": int(bool(res.converged))}
    attrs = {"which": res.which, "tol": float(res.tol), "norm_estimate": float(res.norm_estimate),
             "num_restarts": int(res.num_restarts), "warm_start": v0 is not None}
    return Record(arrays, attrs)


def density_record(H, cfg: HessianJobConfig, *, on_matvec: Callable[[int], None] | None = None) -> Record:
    """SLQ nodes and weights per probe: ``nodes (n_v, m)``, ``weights (n_v, m)``, ``num_matvecs``."""
    from landscape.solvers import spectral_density

    op = counted(H, on_matvec)
    dens = spectral_density(op, num_probes=cfg.density_probes, num_iters=cfg.density_iters, seed=cfg.seed)
    arrays = {"nodes": _np64(dens.nodes), "weights": _np64(dens.weights),
              "num_matvecs": int(op.num_matvecs), "dim": int(dens.dim)}
    return Record(arrays, {"num_probes": cfg.density_probes, "num_iters": cfg.density_iters})


def trace_record(H, cfg: HessianJobConfig, *, on_matvec: Callable[[int], None] | None = None) -> Record:
    """tr H: ``value``, ``stderr``, ``samples`` and ``num_matvecs`` (method in the attrs)."""
    from landscape.solvers import trace

    op = counted(H, on_matvec)
    est = trace(op, num_matvecs=cfg.trace_matvecs, method=cfg.trace_method, seed=cfg.seed)
    arrays = {"value": float(est.value), "stderr": float(est.stderr), "samples": _np64(est.samples),
              "num_matvecs": int(op.num_matvecs)}
    return Record(arrays, {"method": est.method})


def _np64(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def dense_rows(objective, theta: torch.Tensor, start: int, stop: int, *,
               on_matvec: Callable[[int], None] | None = None) -> np.ndarray:
    """Rows ``start … stop−1`` of H as float64 ``(stop − start, P)``: ``H[:, start:stop]ᵀ``."""
    from landscape.curvature import dense_hessian

    cols = dense_hessian(objective, theta, columns=range(start, stop))   # (P, stop − start)
    if on_matvec is not None:
        on_matvec(stop - start)
    return cols.T.detach().cpu().numpy().astype(np.float64)


def dense_spectrum(H: np.ndarray) -> Record:
    """All P eigenvalues of the symmetric part of a dense H, by ``eigvalsh`` in float64.

    Arrays: ``eigenvalues (P,)`` ascending, ``asymmetry`` = ‖H − Hᵀ‖_F / ‖H‖_F (rounding
    in the HVPs; ~1e-7 in float32, ~1e-15 in float64), ``trace``.
    """
    H = np.asarray(H, dtype=np.float64)
    norm = np.linalg.norm(H)
    asym = float(np.linalg.norm(H - H.T) / norm) if norm > 0 else 0.0
    sym = (H + H.T) / 2
    lam = np.linalg.eigvalsh(sym)
    return Record({"eigenvalues": lam, "asymmetry": asym, "trace": float(np.trace(sym))},
                  {"P": int(H.shape[0])})


def eigen_budget(cfg: HessianJobConfig, P: int) -> int:
    """The most HVPs one eigensolve may take (``max_matvecs`` or eigsh's default budget)."""
    from landscape.solvers.eigsh import DEFAULT_BUDGET_CYCLES, default_krylov_size

    return int(cfg.max_matvecs or DEFAULT_BUDGET_CYCLES * default_krylov_size(cfg.k, P))


class HessianWork:
    """Computes the (step, quantity) items; the objective of the current step is built once.

    Args:
        inputs: the driver's :class:`~analyses.driver.inputs.RunInputs` (objectives at steps,
            this process's shard, identifying attributes).
        cfg: what to compute.
        store: the results file as every rank sees it (:class:`~analyses.driver.distributed.RankResults`):
            dense blocks are written to and read from it.
        warm_start: ``warm_start(step)`` → ``(earlier step, its eigenvectors (k, P))`` or None.
        progress: ``progress(total, desc)`` → a progress bar (a context manager with ``update``).
    """

    def __init__(self, inputs, cfg: HessianJobConfig, store, warm_start, progress):
        self.inputs, self.cfg, self.store, self.progress = inputs, cfg, store, progress
        self.warm_start = warm_start

    def compute(self, step: int, quantity: str) -> Record:
        """The record of one item, with the step's identifying attributes and a one-line summary."""
        obj = self.inputs.objective(step)
        try:
            rec = getattr(self, f"_{quantity}")(step, obj)
        except NonFiniteError as err:
            raise NonFiniteError(f"step {step}, {quantity}: {err}. Items finished before are kept in "
                                 f"{self.store.path}; rerunning the command resumes there") from None
        rec.attrs.update(self.inputs.item_attrs(step), world_size=self.inputs.ctx.world_size,
                         settings={**self.inputs.options.settings(), **self.cfg.settings(quantity)})
        if self.inputs.options.subset is not None:
            rec.arrays["subset_indices"] = self.inputs.indices
        if self.inputs.ctx.is_writer:  # other ranks hold no dense spectrum and log nothing
            rec.summary = summarize(quantity, rec.arrays, rec.attrs)
        return rec

    def _eigen(self, step: int, obj) -> Record:
        prev = self.warm_start(step) if self.cfg.warm_start else None
        v0 = warm_start_vectors(None if prev is None else {"eigenvectors": prev[1]}, obj.spec.numel, self.cfg)
        # The bar counts what is known: converged pairs out of k (the HVP budget is only a cap).
        with self.progress(self.cfg.k, f"step {step} eigen", unit="pair") as bar:
            rec = eigen_record(obj.hessian(obj.theta), self.cfg, v0=v0, on_cycle=_pairs_ticker(bar, self.cfg.tol))
        rec.attrs["warm_start_step"] = prev[0] if v0 is not None else -1
        return rec

    def _density(self, step: int, obj) -> Record:
        with self.progress(self.cfg.density_probes * self.cfg.density_iters, f"step {step} density") as bar:
            return density_record(obj.hessian(obj.theta), self.cfg, on_matvec=lambda n: bar.update(n - bar.n))

    def _trace(self, step: int, obj) -> Record:
        with self.progress(self.cfg.trace_matvecs, f"step {step} trace") as bar:
            return trace_record(obj.hessian(obj.theta), self.cfg, on_matvec=lambda n: bar.update(n - bar.n))

    def _dense(self, step: int, obj) -> Record:
        P, rows, key = obj.spec.numel, self.cfg.dense_block, step_key(NAME, step, "dense")
        check_dense_size(P, self.cfg)
        fingerprint = {"param_sha256": self.inputs.param_sha256(step), **self.cfg.as_dict(),
                       **self.inputs.options.settings(), "batch_size": self.inputs.options.batch_size}
        self.store.create_block_dataset(key, "hessian", (P, P), np.float64, rows, attrs=fingerprint)
        todo = np.flatnonzero(~self.store.blocks_done(key, "hessian"))
        with self.progress(sum(min(rows, P - b * rows) for b in todo), f"step {step} dense") as bar:
            for b in todo:
                start, stop = int(b) * rows, min(P, (int(b) + 1) * rows)
                self.store.write_block(key, "hessian", start, dense_rows(obj, obj.theta, start, stop,
                                                                         on_matvec=bar.update))
        if not self.inputs.ctx.is_writer:
            return Record({}, {})
        rec = dense_spectrum(self.store.results.read_block_dataset(key, "hessian"))
        rec.attrs.update(block_rows=rows, blocks_resumed=int(-(-P // rows) - len(todo)))
        return rec


def _pairs_ticker(bar, tol: float):
    """eigsh's per-step callback → the bar: converged pairs, HVPs so far, largest residual against tol."""
    def tick(info: dict) -> None:
        bar.n = int(info["num_converged"])
        bar.set_postfix_str(f"{info['num_matvecs']} HVPs, residual {info['max_residual']:.1e} → {tol:.0e}",
                            refresh=False)
        bar.refresh()
    return tick


def _values(x, n: int = 5) -> str:
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    shown = ", ".join(f"{v:.4g}" for v in x[:n])
    return shown + (f", … ({len(x)})" if len(x) > n else "")


def summarize(quantity: str, arrays: dict, attrs: dict) -> str:
    """One line per stored item: what a user looks for first."""
    if quantity == "eigen":
        state = "converged" if arrays["converged"] else "NOT converged"
        rel = float(np.nanmax(arrays["relative_residuals"])) if len(arrays["relative_residuals"]) else float("nan")
        return (f"λ = {_values(arrays['eigenvalues'])}; max residual/‖H‖ {rel:.1e} (tol {attrs['tol']:.0e}, "
                f"{state}, {arrays['num_matvecs']} HVPs)")
    if quantity == "trace":
        return f"tr H = {arrays['value']:.6g} ± {arrays['stderr']:.2g} ({attrs['method']}, {arrays['num_matvecs']} HVPs)"
    if quantity == "density":
        nodes = np.asarray(arrays["nodes"])
        return (f"SLQ density over [{nodes.min():.4g}, {nodes.max():.4g}] ({nodes.shape[0]} probes × "
                f"{nodes.shape[1]} steps, {arrays['num_matvecs']} HVPs)")
    if quantity == "dense":
        lam = np.asarray(arrays["eigenvalues"])
        return f"all {len(lam)} eigenvalues in [{lam.min():.4g}, {lam.max():.4g}], tr H = {arrays['trace']:.6g}"
    return "done"
