"""Which HVP route an Objective uses: by a measured rule (``"auto"``), timed on its first products
(``"measure"``), or fixed.

Routes (``landscape._kernels``), all the same maths, different autodiff:

* ``forward_over_reverse``: ``jvp(grad(f))``; a block of vectors vmapped in one pass;
* ``forward_over_reverse_loop``: the same, one vector per pass (blocks only);
* ``double_backward``: one forward and one differentiable backward per batch, then one more
  backward per vector (a block shares the graph).

Which is cheapest depends on the model and the device (bench/RESULTS.md, route tables of the
top-k benchmark, one CPU thread): for one vector, forward mode through a 2-D convolution with
BatchNorm costs more than a second backward (a BatchNorm CNN: 2.49 vs 2.21 gradients; ResNet-8:
3.33 vs 3.18), while for a 1-D CNN the two tie (2.36 vs 2.24); for a block of vectors, double
backward sharing one graph per batch is the cheapest on every model measured (1.46, 1.58 and 2.60
gradients per vector, against 1.50, 2.25 and 3.74 for vmapped forward-over-reverse: vmapping a
convolution over tangents turns it into a grouped one). Hence the rule of ``"auto"``
(:func:`auto_route`), on the CPU: blocks by double backward; single vectors by double backward
for models with convolutions over two or more spatial dimensions, by forward-over-reverse
otherwise; on a GPU forward-over-reverse (compilable, and not measured here). The rule is
deterministic, so that a resumed job reproduces its products bit for bit.

``"measure"`` times the candidates instead: the first calls of each kind (one vector; a
block) go round-robin through the routes, ``TRIALS`` each, every call computing real products,
and the route with the least time per vector (best of its trials, so a first call's warm-up
does not count) is kept. Products from different routes agree to rounding (≈1e-7 relative in
float32), but which route wins depends on the machine's load, so results may differ at that
level from run to run. Either way the route is recorded in the provenance.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

ROUTES = {"single": ("forward_over_reverse", "double_backward"),
          "block": ("forward_over_reverse", "forward_over_reverse_loop", "double_backward")}
TRIALS = 2  # timed calls per candidate route: the best of two discards a first call's warm-up


def auto_route(model: torch.nn.Module, device: torch.device, kind: str = "single") -> str:
    """The route of ``"auto"`` for a ``kind`` of call (``"single"`` or ``"block"``): on the CPU, double
    backward for blocks, and for single vectors where the model convolves over ≥ 2 spatial dimensions
    (``nn.Conv2d``/``Conv3d`` and transposed ones); forward-over-reverse otherwise."""
    if torch.device(device).type != "cpu":
        return "forward_over_reverse"
    convs = (torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d)
    if kind == "block" or any(isinstance(m, convs) for m in model.modules()):
        return "double_backward"
    return "forward_over_reverse"


class RouteChooser:
    """Picks a route per kind of call (``"single"``: one vector, ``"block"``: several).

    Args:
        method: ``"auto"`` (the rule of :func:`auto_route`), ``"measure"`` (timed), or a route name.
        device: for synchronizing timings on a GPU.
        model: the network (for ``"auto"``).
    """

    def __init__(self, method: str, device: torch.device, model: torch.nn.Module | None = None):
        self.requested, self.device = method, torch.device(device)
        self.method = "auto" if method == "auto" and model is not None else method
        self.rule = {kind: auto_route(model, self.device, kind) for kind in ROUTES} if self.method == "auto" else {}
        self.times: dict[str, dict[str, list[float]]] = {kind: {r: [] for r in ROUTES[kind]} for kind in ROUTES}
        self.chosen: dict[str, str] = {}

    def run(self, num_vectors: int, compute: Callable[[str], torch.Tensor]) -> torch.Tensor:
        """``compute(route)`` with the route for a call of ``num_vectors`` vectors (timed while measuring)."""
        kind = "single" if num_vectors == 1 else "block"
        route = self._pick(kind)
        if kind in self.chosen or self.method != "measure":
            return compute(route)
        self._sync()
        start = time.perf_counter()
        out = compute(route)
        self._sync()
        self.times[kind][route].append((time.perf_counter() - start) / num_vectors)
        self._decide(kind)
        return out

    def _pick(self, kind: str) -> str:
        if self.method == "auto":
            return self.rule[kind]
        if self.method != "measure":
            return self.method
        if kind in self.chosen:
            return self.chosen[kind]
        return min(ROUTES[kind], key=lambda r: len(self.times[kind][r]))  # round-robin, in order

    def _decide(self, kind: str) -> None:
        if all(len(t) >= TRIALS for t in self.times[kind].values()):
            self.chosen[kind] = min(ROUTES[kind], key=lambda r: min(self.times[kind][r]))

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def summary(self) -> str:
        """The fixed route; ``"auto:single=…,block=…"`` (the rule); or ``"measure:single=…,block=…"``
        for the kinds of call made so far ("measuring" while undecided)."""
        if self.method == "auto":
            return "auto:" + ",".join(f"{kind}={route}" for kind, route in self.rule.items())
        if self.method != "measure":
            return self.method
        parts = [f"{kind}={self.chosen.get(kind, 'measuring')}" for kind in ROUTES
                 if any(self.times[kind].values())]
        return "measure:" + (",".join(parts) or "unused")
