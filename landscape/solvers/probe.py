"""The probe for missed eigenvalues: a random Krylov space of the deflated operator, and what it proves.

A Krylov space grown from one vector holds one direction of each eigenspace (in exact
arithmetic), so Lanczos cannot see the second copy of a repeated eigenvalue, and it barely
sees an eigenvector its start vector is nearly orthogonal to (a warm start from the previous
eigenvectors is such a start). After the k wanted pairs converge, :func:`eigsh` locks them
and grows a Krylov space of the deflated operator B (A compressed to the orthogonal
complement of the locked vectors, dimension n = P − k) from ``chains`` fresh random vectors
z, uniform on the sphere of that complement and independent of B.

Kuczyński & Woźniakowski (1992), "Estimating the largest eigenvalue by the power and
Lanczos algorithms with a random start", SIAM J. Matrix Anal. Appl. 13(4): after q Lanczos
steps from such a z, the largest Ritz value θ_top falls short of λ_max(B) by more than
ε (λ_max − λ_min) with probability at most

    f(ε, q) = 1.648 √n · exp(−√ε (2q − 1)).                                       (KW)

A second bound, sharper for larger ε, follows from one Chebyshev polynomial: p(B)z lies in
the Krylov space, p = T_{q−1} mapped from [λ_min, λ_max − εS] to [−1, 1] is at most 1 there
and T = T_{q−1}((1+ε)/(1−ε)) at λ_max, so θ_top ≥ λ_max − εS unless z's component c on the
top eigenvector has c² < (1−ε)/(ε T²); for z uniform on the sphere the density of c is at most
√(n/2π), so P(c² < η) ≤ 0.8 √(n η), which gives

    f(ε, q) = 0.8 √(n (1−ε)/ε) / T_{q−1}((1+ε)/(1−ε)).                              (4)

:func:`failure` takes the smaller. (4) needs only a bounded density of c, so it also covers a
*randomized warm start* x = v̂0 + η ẑ: with the random part weighing ``share`` of the sum, c's
density is at most 1/share times the uniform one, and (4) holds divided by ``share``.

The same holds at the bottom end. With c independent chains in one (block) Krylov space,
both ends fail together with probability at most f^c each. So with probability at least
1 − δ_s at check s, the spectrum of B lies in

    [θ_bottom − ε R / (1 − 2ε),  θ_top + ε R / (1 − 2ε)],   R = θ_top − θ_bottom,      (3)

for the ε with 2 f(ε, q)^c = δ_s (the unknown range S = λ_max − λ_min is at most
R / (1 − 2ε) when both ends hold). The probe stops ("settled") as soon as (3) leaves no
room for a value that would belong among the wanted by more than the tolerance; a value
that already does ("new") sends :func:`eigsh` back to its main iteration. Checks are made
after every probe step, so δ is split evenly over the ``cap`` checks the probe may make
(a union bound): the probability that *any* check wrongly settles is at most δ.

The guarantee is worst case over all spectra: settling takes a number of steps growing
like log(√n/δ) / √ε with ε the gap between the wanted values and the rest, relative to the
spread of the rest. So the probe's default length (:func:`margin_steps`) is the fewest
steps after which a value *one spread* beyond the wanted ones (ε = 1/2) is missed with
probability ≤ δ — 8 steps for n ≈ 8,000, 9 up to ≈ 300,000 at δ = 1e-3 — and what the steps
taken prove is reported either way: ``miss_margin`` (:func:`miss_margin`, worst case: no value
beyond by more than that many spreads was missed) and ``miss_bound`` (from (3), in eigenvalue
units; inf while (3) is not informative, i.e. ε ≥ 1/2). Missed values that stand out from the
rest of B (a second copy of an outlier, a new outlier after a warm start) show up in a few
steps, long before the bound settles. With one wanted value per end, a main run from a random
start is itself such a probe (``restart.ThickRestart._shared_probe``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from landscape.solvers.order import handicap, priority

# Default accepted probability that the probe misses an eigenvalue beyond the wanted ones
# (δ above; the user's ``miss_probability``).
VERIFY_FAILURE_PROB = 1e-3


def failure(eps: float, steps: int, n: int, share: float = 1.0) -> float:
    """Probability that q = ``steps`` Lanczos steps from a random start fall short of λ_max by
    more than ε of the range: the smaller of (KW) and the Chebyshev form (4) of the module.

    ``share`` < 1: the start is a fixed vector plus a uniform random one weighing ``share`` of
    the sum (a randomized warm start); only (4) holds then, divided by ``share``.
    """
    if steps < 2 or eps <= 0:
        return 1.0
    if eps >= 1:
        return 0.0
    x = (1 + eps) / (1 - eps)
    chebyshev = 0.8 * math.sqrt(n * (1 - eps) / eps) / math.cosh((steps - 1) * math.acosh(x)) / share
    if share < 1:
        return min(1.0, chebyshev)
    kw = 1.648 * math.sqrt(n) * math.exp(-math.sqrt(eps) * (2 * steps - 1))
    return min(1.0, kw, chebyshev)


def epsilon_for(steps: int, n: int, delta: float, share: float = 1.0) -> float:
    """The smallest ε with failure(ε, q, n, share) ≤ δ (bisection; 1 if none below 1)."""
    if failure(1 - 1e-12, steps, n, share) > delta:
        return 1.0
    lo, hi = 0.0, 1.0 - 1e-12
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if failure(mid, steps, n, share) <= delta else (mid, hi)
    return hi


def margin_steps(n: int, delta: float, chains: int = 1, margin: float = 1.0, share: float = 1.0) -> int:
    """The fewest steps per chain after which a value ``margin`` spreads beyond the wanted ones
    (ε = margin / (1 + margin)) is missed with probability ≤ δ (c chains: failure^c ≤ δ)."""
    eps = margin / (1 + margin)
    return next(q for q in range(2, 10_000) if failure(eps, q, n, share) ** chains <= delta)


def miss_margin(steps: int, n: int, delta: float, chains: int = 1, share: float = 1.0) -> float:
    """d: with probability ≥ 1 − δ no eigenvalue beyond the wanted ones by more than d spreads
    was missed after ``steps`` steps per chain (inf if no finite d holds)."""
    eps = epsilon_for(steps, n, delta ** (1.0 / chains), share)
    return math.inf if eps >= 1 else eps / (1 - eps)


@dataclass(frozen=True)
class Probe:
    """The probe's rules for one eigsh call.

    Attributes:
        which: LA, SA, LM or BE.
        k: number of locked (wanted) values.
        n: dimension of the deflated space (P − k).
        delta: accepted probability of a wrong "settled" over the whole probe.
        cap: the most probe steps per chain (and checks).
        chains: independent random start vectors of the probe (its block size).
        share: weight of the random part of each start vector (1: uniformly random; < 1: a
            randomized warm start, see :func:`failure`).
    """

    which: str
    k: int
    n: int
    delta: float
    cap: int
    chains: int = 1
    share: float = 1.0

    def spectrum_bounds(self, free: Tensor, steps: int) -> tuple[float, float]:
        """(low, high) of (3) after ``steps`` steps per chain; (−inf, inf) while uninformative."""
        per_end = (self.delta / max(self.cap, 1)) / 2
        eps = epsilon_for(steps, self.n, per_end ** (1.0 / self.chains), self.share)
        if free.numel() < 2 or eps >= 0.5:
            return -math.inf, math.inf
        top, bottom = float(free.max()), float(free.min())
        reach = eps * (top - bottom) / (1 - 2 * eps)
        return bottom - reach, top + reach

    def excess(self, locked: Tensor, low: float, high: float) -> float:
        """How far beyond the wanted (locked) values the interval [low, high] still reaches."""
        locked = locked.sort().values
        if self.which == "LA":
            return high - float(locked[0])
        if self.which == "SA":
            return float(locked[-1]) - low
        if self.which == "LM":
            floor = float(locked.abs().min())
            return max(high - floor, -floor - low)
        n_bottom = self.k // 2
        top = high - float(locked[n_bottom])
        return top if n_bottom == 0 else max(top, float(locked[n_bottom - 1]) - low)

    def is_new(self, locked: Tensor, free: Tensor, margin: float) -> bool:
        """Does a probe value beat a locked one by more than ``margin`` (ties go to the locked)?"""
        values = torch.cat([locked, handicap(free, self.which, margin)]) if free.numel() else locked
        return bool((priority(values, self.which)[: self.k] >= self.k).any())

    def verdict(self, locked: Tensor, free: Tensor, steps: int, margin: float) -> tuple[str | None, float]:
        """("new" | "settled" | None, miss_bound) after ``steps`` probe steps per chain.

        ``locked``: the k locked values; ``free``: Ritz values of the probe block (values of
        the deflated operator B); ``margin``: the tolerance in eigenvalue units.
        """
        if self.is_new(locked, free, margin):
            return "new", math.inf
        low, high = self.spectrum_bounds(free, steps)
        miss = max(0.0, self.excess(locked, low, high))
        return ("settled" if miss < margin else None), miss
