"""The full-dataset objective L(θ) = (1/N) Σ_i ℓ(f(x_i; θ), y_i) and its derivatives.

Every quantity is a sum over a fixed batch plan, each batch contributing its sum over
examples (its share of N), accumulated in float64 in a fixed order and divided by N, so
results do not depend on the batch size (docs/contracts.md). HVPs are
forward-over-reverse, ``jvp(grad(f))``, vmapped over blocks of vectors (Pearlmutter 1994;
the ``torch.func.hessian`` recipe), or double backward, whichever is cheaper for the model at
hand (``hvp_method="auto"`` or ``"measure"``, :mod:`landscape._hvp_route`). The model is never
modified (see ``_functional.py``).

Data-parallel use: give each process its shard and ``all_reduce=`` a function that sums a
tensor across processes (e.g. ``lambda t: (dist.all_reduce(t), t)[1]``). The objective
applies it once per call to the packed float64 partial sums *and* the example count, so
every process gets the global mean. Per-example methods return the local shard's rows.

Example (a closed form: linear regression, H = (2/N) XᵀX under the MSE convention of
``losses.py``)::

    >>> import torch
    >>> X, y = torch.randn(50, 3, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    >>> net = torch.nn.Linear(3, 1, bias=False).double()
    >>> obj = Objective(net, X, y, loss="mse", batch_size=7)
    >>> Hv = obj.hvp(obj.theta, torch.eye(3, dtype=torch.float64))
    >>> torch.allclose(Hv, 2 * X.T @ X / 50)
    True
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor, nn

from landscape import _checks as C
from landscape import _kernels as K
from landscape._batching import IterableBatches
from landscape._functional import FunctionalModel
from landscape._hvp_route import RouteChooser
from landscape.losses import check_per_example, correct_per_example, num_correct, resolve_loss
from landscape._reduce import Sums, concat_checked
from landscape.curvature import GGNOperator, HessianOperator
from landscape.errors import InputError, LandscapeError
from landscape.params import ParamSpec

HVP_METHODS = C.HVP_METHODS
# Default θ rows per vmapped forward in losses_at (memory: m copies of the activations). On the
# CPU, vmapping a forward over parameter vectors turns convolutions into grouped ones and linear
# layers into bmm, which measured 1.5–3.4× slower per point than plain forwards (cnn1d, ResNet-8,
# MLP; bench/linesearch_cost.py --chunk), so there the default is one row at a time.
LOSSES_AT_CHUNK = 16
LOSSES_AT_CHUNK_CPU = 1
GRAD_NORM_BUDGET = 2**24  # entries of the (chunk, P) per-example gradient block (64 MiB in float32)


class Objective:
    """Full-dataset mean loss of a model on data, as a function of the flat parameters θ.

    Args:
        model: the network; never modified. Dropout is off; BatchNorm per ``bn``.
        inputs, targets: ``(N, ...)`` tensors (moved once to the model's device and dtype).
        data: instead of tensors, a re-iterable of ``(inputs, targets)`` batches (e.g. a
            DataLoader over data too big for the device), iterated once per pass.
        loss: ``"cross_entropy"``, ``"mse"`` (ℓ_i = ‖f(x_i) − y_i‖², no 1/2) or a callable
            ``(outputs, targets) -> (B,)`` per-example losses.
        batch_size: examples per batch for tensor data; results do not depend on it.
        bn: ``"eval"`` (running statistics: a fixed function of θ) or ``"train"`` (batch
            statistics over the fixed batch plan; running statistics are never updated).
        params: a :class:`ParamSpec`, or glob patterns on parameter names (θ covers only
            those; the rest stay fixed), or None for every trainable parameter.
        all_reduce: ``t -> t`` summing a tensor across data-parallel processes, or None.
        hvp_method: ``"auto"`` (default: on the CPU double backward for blocks of vectors and for
            2-D/3-D convolutional models, else forward-over-reverse — the cheaper routes measured
            there, see ``landscape._hvp_route``), ``"measure"`` (time the routes on the first
            products and keep the fastest), ``"forward_over_reverse"`` (``jvp(grad)``, vmapped
            blocks) or ``"double_backward"``; the route used is :attr:`hvp_route`.
        vmap_chunk: most vectors per vmapped pass in block products (None: the whole block).
        dtype, device: of the computation (default: the model's); ``dtype=torch.float64``
            casts parameters, buffers and floating data.
        num_examples: N for ``data=`` (counted on the first pass if not given; checked every pass).

    Raises:
        InputError: bad options, empty data, inputs that do not fit the model, or a
            model whose forward is not deterministic.
    """

    def __init__(self, model: nn.Module, inputs: Tensor | None = None, targets: Tensor | None = None, *,
                 data: Iterable | None = None, loss: str | Callable = "cross_entropy", batch_size: int = 1024,
                 bn: str = "eval", params: ParamSpec | Sequence[str] | None = None,
                 all_reduce: Callable[[Tensor], Tensor] | None = None, hvp_method: str = "auto",
                 vmap_chunk: int | None = None, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None, num_examples: int | None = None):
        C.check_options(batch_size, hvp_method, vmap_chunk)
        device, dtype = C.device_and_dtype(model, device, dtype)
        self.bn, self.hvp_method, self.vmap_chunk, self.all_reduce = bn, hvp_method, vmap_chunk, all_reduce
        self.loss_name = loss if isinstance(loss, str) else getattr(loss, "__name__", "callable")
        self._loss_fn = resolve_loss(loss)
        self._f = FunctionalModel(model, C.param_spec(model, params), bn, dtype, device)
        self._routes = RouteChooser(hvp_method, device, model)
        self._batches = C.batch_source(inputs, targets, data, batch_size, dtype, device, num_examples)
        self._check_first_batch()

    # ---- properties -------------------------------------------------------------------
    @property
    def spec(self) -> ParamSpec:
        """The layout of θ."""
        return self._f.spec

    @property
    def theta(self) -> Tensor:
        """The model's own parameters as a flat ``(P,)`` vector (a copy), in the objective's dtype."""
        return self._f.theta0.clone()

    @property
    def num_examples(self) -> int:
        """N, the number of examples this objective (this process's shard) holds."""
        return self._batches.num_examples

    @property
    def dtype(self) -> torch.dtype:
        """dtype of the computation."""
        return self._f.dtype

    @property
    def device(self) -> torch.device:
        """device of the computation."""
        return self._f.device

    @property
    def hvp_route(self) -> str:
        """How HVPs are computed: ``"auto:single=…,block=…"``, ``"measure:single=…,block=…"`` or the fixed route."""
        return self._routes.summary()

    @property
    def batch_size(self) -> int | None:
        """Examples per batch of tensor data (None for ``data=``: the iterable decides)."""
        return getattr(self._batches, "batch_size", None)

    def config(self) -> dict[str, str | int]:
        """What defines this objective's numbers, for storing beside results (JSON-able)."""
        return {"loss": self.loss_name, "bn": self.bn, "batch_size": self.batch_size or -1,
                "num_examples": self.num_examples, "num_params": self.spec.numel, "dtype": str(self.dtype),
                "hvp_method": self.hvp_method, "params": ",".join(self.spec.names)}

    # ---- full-dataset means -------------------------------------------------------------
    def loss(self, theta: Tensor) -> Tensor:
        """L(θ), a 0-dim tensor in θ's dtype."""
        return self.loss_and_accuracy(theta)[0]

    def loss_and_accuracy(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """L(θ) and the fraction of correct argmax predictions (NaN where undefined, e.g. regression)."""
        th = self._theta_in(theta)
        with torch.no_grad():
            mean = self._mean(lambda x, y: self._loss_and_correct(th, x, y), "loss", checked=slice(0, 1))
        return self._out(mean[0], theta), self._out(mean[1], theta)

    def grad(self, theta: Tensor) -> Tensor:
        """∇L(θ), ``(P,)``."""
        return self.loss_and_grad(theta)[1]

    def loss_and_grad(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """L(θ) and ∇L(θ) from one forward and backward per batch."""
        th = self._theta_in(theta)

        def part(x: Tensor, y: Tensor) -> Tensor:
            g, value = torch.func.grad_and_value(lambda t: self._losses(t, x, y).sum())(th)
            return torch.cat([g, value[None]])

        mean = self._mean(part, "loss or gradient")
        return self._out(mean[-1], theta), self._out(mean[:-1], theta)

    def hvp(self, theta: Tensor, v: Tensor) -> Tensor:
        """H(θ) v for ``v`` of shape ``(P,)``, or the rows H v_j for a block ``(k, P)``."""
        th, V = self._theta_in(theta), self._tangents_in(v)

        def compute(route: str) -> Tensor:
            return self._mean(lambda x, y: self._hvp_batch(th, V, x, y, route).reshape(-1), "Hessian-vector product")

        mean = self._routes.run(V.shape[0], compute)
        return self._out(mean.reshape(v.shape), theta)

    def ggnvp(self, theta: Tensor, v: Tensor) -> Tensor:
        """Generalised Gauss–Newton product G(θ) v = (1/N) Σ_i J_iᵀ H_ℓ,i J_i v, ``(P,)`` or ``(k, P)``."""
        th, V = self._theta_in(theta), self._tangents_in(v)

        def part(x: Tensor, y: Tensor) -> Tensor:
            rows = K.ggn_sum(lambda t: self._f(t, x), lambda z: self._loss_fn(z, y), th, V, self.vmap_chunk)
            return rows.reshape(-1)

        return self._out(self._mean(part, "Gauss-Newton-vector product").reshape(v.shape), theta)

    def output_pullbacks(self, theta: Tensor, cotangents: Callable[[Tensor, Tensor], Tensor], *,
                         groups: Callable[[Tensor], Tensor] | None = None, num_groups: int = 1) -> Tensor:
        """(1/N) Σ_i J_iᵀ u_{r,i} for R cotangents of the outputs: ``(R, P)``, or ``(G, R, P)`` by group.

        ``cotangents(z, y) -> (R, B, ...)`` gives, from a batch's outputs z = f(x; θ) ``(B, ...)``
        (detached) and targets y, R cotangents per example; J_i = ∂f(x_i)/∂θ. Each batch costs one
        forward and R reverse passes (vmapped in chunks of ``vmap_chunk``), whatever R is, without
        ever holding N × P. With ``groups(y) -> (B,)`` ids in [0, num_groups) (e.g. the class labels),
        the sums are kept apart per group: each batch is split by group, and each part costs one
        forward and R reverse passes over its own examples — R per example in all, not R × G as with
        masked cotangents. Splitting a batch changes batch statistics, so groups need ``bn="eval"``.
        """
        th = self._theta_in(theta)
        if groups is None:
            def part(x: Tensor, y: Tensor) -> Tensor:
                return K.pullback_sums(lambda t: self._f(t, x), lambda z: cotangents(z, y), th,
                                       self.vmap_chunk).reshape(-1)

            return self._out(self._mean(part, "output pullback").reshape(-1, self.spec.numel), theta)
        if self.bn != "eval":
            raise InputError("grouped output pullbacks split batches, which changes BatchNorm batch statistics; "
                             "use bn='eval' (or no groups)")

        def grouped(x: Tensor, y: Tensor) -> Tensor:
            return K.grouped_pullback_sums(lambda t, i: self._f(t, x[i]), lambda z, i: cotangents(z, y[i]), th,
                                           groups(y), num_groups, self.vmap_chunk).reshape(-1)

        mean = self._mean(grouped, "output pullback")
        return self._out(mean.reshape(num_groups, -1, self.spec.numel), theta)

    def output_means(self, theta: Tensor, fn: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
        """(1/N) Σ_i fn(z_i, y_i) ``(K,)``: the mean over examples of ``fn(z, y) -> (B, K)`` at the outputs z = f(x; θ).

        E.g. the class fractions n_c/N with ``fn = lambda z, y: one_hot(y, C)``, or the mean softmax.
        """
        th = self._theta_in(theta)
        with torch.no_grad():
            mean = self._mean(lambda x, y: fn(self._f(th, x), y).reshape(x.shape[0], -1).sum(0), "output mean")
        return self._out(mean, theta)

    def hessian(self, theta: Tensor) -> HessianOperator:
        """The Hessian at θ as a :class:`~landscape.operators.LinearOperator`."""
        return HessianOperator(self, theta)

    def ggn(self, theta: Tensor) -> GGNOperator:
        """The generalised Gauss–Newton matrix at θ as a linear operator."""
        return GGNOperator(self, theta)

    def losses_at(self, thetas: Tensor, *, chunk_size: int | None = None,
                  check_finite: bool = True) -> tuple[Tensor, Tensor]:
        """L and accuracy at each row of ``thetas (m, P)``: ``(m,)``, ``(m,)``.

        One forward per (θ, batch), vmapped over chunks of ``chunk_size`` rows (default
        ``vmap_chunk``, else 16 on a GPU and 1 — plain forwards — on the CPU, where vmapping
        over parameters is slower) so memory stays bounded; the data are read once.
        """
        T = C.check_thetas(thetas, self.spec, self.device, self.dtype)
        chunk = chunk_size or self._rows_chunk()

        def part(x: Tensor, y: Tensor) -> Tensor:
            return K.loss_and_correct_at(lambda t: self._f(t, x), lambda z: self._loss_fn(z, y),
                                         lambda z: num_correct(z, y), T, chunk).reshape(-1)

        with torch.no_grad():
            checked = slice(0, None, 2) if check_finite else slice(0, 0)
            mean = self._mean(part, "loss", checked=checked).reshape(-1, 2)
        return self._out(mean[:, 0], thetas), self._out(mean[:, 1], thetas)

    def per_example_losses_at(self, thetas: Tensor, *, chunk_size: int | None = None) -> tuple[Tensor, Tensor]:
        """ℓ_i and correctness (1/0, NaN for regression) at each row of ``thetas (m, P)``: ``(m, N)``, ``(m, N)``.

        One forward per (θ, batch), vmapped over chunks of rows like :meth:`losses_at`;
        line searches aggregate these into any set of minibatch curves at no extra cost.
        """
        T = C.check_thetas(thetas, self.spec, self.device, self.dtype)
        chunk = chunk_size or self._rows_chunk()

        def one(th: Tensor, x: Tensor, y: Tensor) -> Tensor:
            z = self._f(th, x)
            return torch.stack([self._loss_fn(z, y), correct_per_example(z, y)])

        with torch.no_grad():
            parts = [K.map_rows(lambda th: one(th, x, y), T, chunk) for x, y in self._batches]
            out = torch.cat(parts, dim=-1)   # (m, 2, N); not checked: far grid points may overflow
        return self._out(out[:, 0], thetas), self._out(out[:, 1], thetas)

    def _rows_chunk(self) -> int:
        """θ rows per vmapped forward in :meth:`losses_at`: ``vmap_chunk`` if set, else by device."""
        if self.vmap_chunk:
            return self.vmap_chunk
        return LOSSES_AT_CHUNK_CPU if self._f.theta0.device.type == "cpu" else LOSSES_AT_CHUNK

    # ---- per-example quantities (this shard's rows, in batch order) ---------------------------
    def per_example_losses(self, theta: Tensor) -> Tensor:
        """ℓ_i(θ) for every example, ``(N,)``."""
        th = self._theta_in(theta)
        with torch.no_grad():
            return self._out(self._concat(lambda x, y: self._losses(th, x, y), "per-example loss"), theta)

    def per_example_projections(self, theta: Tensor, V: Tensor) -> Tensor:
        """g_i·v_j = ∂ℓ_i/∂θ · v_j, ``(N, k)``: one forward-mode pass per v_j, never N×P."""
        th, W = self._theta_in(theta), self._tangents_in(V)
        fn = lambda x, y: K.projections(lambda t: self._losses(t, x, y), th, W, self.vmap_chunk)  # noqa: E731
        return self._out(self._concat(fn, "per-example projection"), theta)

    def per_example_grad_norms(self, theta: Tensor, *, chunk_size: int | None = None) -> Tensor:
        """‖∇ℓ_i(θ)‖ for every example, ``(N,)``, by chunked ``vmap(grad)`` (float64 norms).

        With ``bn="train"`` examples interact through batch statistics, so g_i is the row of
        the batch Jacobian (B backward passes per batch: slower).
        """
        th = self._theta_in(theta)
        chunk = chunk_size or max(1, GRAD_NORM_BUDGET // self.spec.numel)
        return self._out(self._concat(lambda x, y: self._grad_norms(th, x, y, chunk), "per-example gradient norm"),
                         theta)

    def subset(self, indices: Sequence[int] | Tensor) -> Objective:
        """The same objective over the examples ``indices`` (tensor data only)."""
        new = copy.copy(self)
        new._batches = self._batches.subset(indices)
        return new

    def __repr__(self) -> str:
        return (f"Objective(P={self.spec.numel}, N={self._batches.num_examples if self._n_known() else '?'}, "
                f"loss={self.loss_name!r}, bn={self.bn!r}, dtype={self.dtype}, device={self.device})")

    # ---- batch kernels --------------------------------------------------------------------
    def _losses(self, theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return self._loss_fn(self._f(theta, x), y)

    def _loss_and_correct(self, theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
        z = self._f(theta, x)
        return torch.stack([self._loss_fn(z, y).sum(), num_correct(z, y)])

    def _hvp_batch(self, theta: Tensor, V: Tensor, x: Tensor, y: Tensor, route: str) -> Tensor:
        losses = lambda t: self._losses(t, x, y)  # noqa: E731
        if route == "double_backward":
            return K.hvp_sum_double_backward(losses, theta, V)
        return K.hvp_sum(losses, theta, V, 1 if route == "forward_over_reverse_loop" else self.vmap_chunk)

    def _grad_norms(self, theta: Tensor, x: Tensor, y: Tensor, chunk: int) -> Tensor:
        if self.bn == "train":
            return K.grad_norms_coupled(lambda t: self._losses(t, x, y), theta, chunk)
        one = lambda t, xi, yi: self._losses(t, xi[None], yi[None]).sum()  # noqa: E731
        return K.grad_norms_independent(one, theta, x, y, chunk)

    # ---- passes over the data -------------------------------------------------------------
    def _mean(self, part: Callable[[Tensor, Tensor], Tensor], what: str, checked: slice = slice(None)) -> Tensor:
        sums = Sums(checked)
        for x, y in self._batches:
            sums.add(part(x, y), x.shape[0])
        return sums.mean(self.all_reduce, what)

    def _concat(self, part: Callable[[Tensor, Tensor], Tensor], what: str) -> Tensor:
        return concat_checked([part(x, y) for x, y in self._batches], what)

    def _theta_in(self, theta: Tensor) -> Tensor:
        return C.check_theta(theta, self.spec, self.device, self.dtype)

    def _tangents_in(self, v: Tensor) -> Tensor:
        return C.check_vectors(v, self.spec.numel, self.device, self.dtype)

    def _out(self, t: Tensor, like: Tensor) -> Tensor:
        return t.to(device=like.device, dtype=like.dtype)

    def _n_known(self) -> bool:
        return not isinstance(self._batches, IterableBatches) or self._batches._n is not None

    def _check_first_batch(self) -> None:
        """Run the first batch twice: wrap shape errors into InputError; refuse a non-deterministic model."""
        x, y = self._batches.first()
        try:
            with torch.no_grad():
                a, b = (self._losses(self._f.theta0, x, y) for _ in range(2))
        except LandscapeError:
            raise
        except Exception as err:  # noqa: BLE001 — whatever the model raised, the cause is the data shape
            raise InputError(f"input shape {tuple(x.shape)} (targets {tuple(y.shape)}, {y.dtype}) does not fit "
                             f"the model and loss {self.loss_name!r}: {type(err).__name__}: {err}") from err
        check_per_example(a, x.shape[0])
        C.check_deterministic(a, b)

