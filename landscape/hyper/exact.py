"""Exact arithmetic for reversible learning: fixed-point vectors and an information buffer.

After Maclaurin, Duvenaud & Adams (ICML 2015, §2.2; HIPS/hypergrad ``exact_rep.py``, our
own code). A value x is held as the integer ``round(x · 2^52)`` (int64, so |x| < 2^11), and
additions of rounded increments are exact. Multiplying by β = n/d (d = 2^16) is not: it
destroys ≈ log₂(1/β) bits per weight, which are kept in an :class:`InfoBuffer` so the
product can be undone exactly::

    mul:  r = x mod d;  S ← S·d + r;  x ← ⌊x/d⌋·n;  x ← x + (S mod n);  S ← ⌊S/n⌋
    div:  the same with the roles of n and d swapped, in reverse order

Each weight's buffer S is a mixed-radix big integer. HIPS keeps it as a Python integer per
weight; here it is vectorised: an int64 top plus a stack of 32-bit words. Before a push that
could overflow int64 (tracked by a data-independent bound on S, identical for every weight)
the low 32 bits of every top are spilled to the stack; ``div`` pulls them back at the same
point. Memory: 32 bits per weight per spill, one spill every ≈ 32 / log₂(1/β) steps.
"""

from __future__ import annotations

import torch
from torch import Tensor

from landscape.errors import NonFiniteError
from landscape.hyper.hyperparams import MOMENTUM_BITS as DEN_BITS  # β = n / 2^16

FRAC_BITS = 52                 # x ↦ round(x · 2^52): the fixed-point radix of HIPS/hypergrad
SCALE = 2.0 ** FRAC_BITS
LIMIT = 2.0 ** 10              # |x| must stay below this (int64 holds |x| < 2^11: one bit of headroom for sums)
WORD_BITS = 32                 # bits spilled from every weight's buffer at a time
INT64_MAX = 2 ** 63 - 1


def to_fixed(x: Tensor, what: str = "value") -> Tensor:
    """``round(x · 2^52)`` as int64; NonFiniteError when |x| ≥ 2^10 or x is NaN/Inf."""
    x = x.detach().to(torch.float64)
    if not bool((x.abs() < LIMIT).all()):          # NaN compares False: caught too
        worst = float(x[~(x.abs() < LIMIT)][0])
        raise NonFiniteError(f"the reversible route's {what} left the fixed-point range |x| < {LIMIT:g} "
                             f"(found {worst}): training diverged; use a smaller learning rate or init scale")
    return torch.round(x * SCALE).to(torch.int64)


def from_fixed(ints: Tensor) -> Tensor:
    """The float64 value of a fixed-point vector."""
    return ints.to(torch.float64) / SCALE


class InfoBuffer:
    """The bits destroyed by every multiplication, per weight: an int64 top + a stack of words.

    Args:
        P: number of weights; device: where the top and the words live.
    """

    def __init__(self, P: int, device=None):
        self.top = torch.zeros(P, dtype=torch.int64, device=device)
        self.words: list[Tensor] = []
        self.bound = 0            # max possible value of any top (exact Python integer)
        self.count = 0            # multiplications done and not undone
        self.marks: list[int] = []  # the count at which each word was spilled

    def reserve(self, radix: int) -> None:
        """Spill 32 bits of every top if ``S·radix + radix − 1`` could overflow int64."""
        if self.bound * radix + radix - 1 > INT64_MAX:
            low = (self.top & (2 ** WORD_BITS - 1)) - 2 ** (WORD_BITS - 1)
            self.words.append(low.to(torch.int32))
            self.top = self.top >> WORD_BITS
            self.bound >>= WORD_BITS
            self.marks.append(self.count)

    def restore(self) -> None:
        """Pull the last spilled word back if it was spilled at the current count."""
        if self.marks and self.marks[-1] == self.count:
            self.marks.pop()
            low = self.words.pop().to(torch.int64) + 2 ** (WORD_BITS - 1)
            self.top = (self.top << WORD_BITS) | low

    @property
    def bits(self) -> int:
        """Bits the buffer needs: 32 per spilled word and ⌈log₂(bound + 1)⌉ for the top, per weight."""
        return self.top.numel() * (WORD_BITS * len(self.words) + self.bound.bit_length())

    @property
    def nbytes(self) -> int:
        """Bytes it holds in memory (int32 words, int64 top)."""
        return sum(w.numel() * 4 for w in self.words) + self.top.numel() * 8

    def is_empty(self) -> bool:
        """True when every push has been popped: no word left and every top zero."""
        return not self.words and not bool(self.top.any())


class ExactVector:
    """A fixed-point vector whose products by β = n/2^16 are undone exactly.

    Args:
        x: the initial values (rounded once, here); buffer: where the lost bits go
            (None: multiplication is not allowed).
    """

    def __init__(self, x: Tensor, buffer: InfoBuffer | None = None, what: str = "value"):
        self.ints = to_fixed(x, what)
        self.buffer, self.what = buffer, what

    def value(self) -> Tensor:
        """The float64 values."""
        return from_fixed(self.ints)

    def add(self, x: Tensor) -> ExactVector:
        """x ← x + round(dx · 2^52), exactly undone by :meth:`sub` of the same dx."""
        self.ints = self.ints + to_fixed(x, self.what)
        return self

    def sub(self, x: Tensor) -> ExactVector:
        """x ← x − round(dx · 2^52)."""
        self.ints = self.ints - to_fixed(x, self.what)
        return self

    def mul(self, n: int) -> ExactVector:
        """x ← x · n/2^16 (to within n units of 2^-52), the remainder pushed to the buffer, low digits popped back."""
        buf, d = self.buffer, 2 ** DEN_BITS
        buf.reserve(d)
        buf.top = (buf.top << DEN_BITS) | (self.ints & (d - 1))
        self.ints = (self.ints >> DEN_BITS) * n + torch.remainder(buf.top, n)
        buf.top = torch.div(buf.top, n, rounding_mode="floor")
        buf.bound = (buf.bound * d + d - 1) // n
        buf.count += 1
        return self

    def div(self, n: int) -> ExactVector:
        """The exact inverse of :meth:`mul` ``(n)`` (the last multiplication not yet undone)."""
        buf = self.buffer
        buf.count -= 1
        buf.top = buf.top * n + torch.remainder(self.ints, n)
        self.ints = (torch.div(self.ints, n, rounding_mode="floor") << DEN_BITS) | (buf.top & (2 ** DEN_BITS - 1))
        buf.top = buf.top >> DEN_BITS
        buf.restore()
        return self
