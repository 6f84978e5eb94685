"""Float64 sums over batches, the data-parallel reduction, and finiteness checks.

No host synchronisation happens per batch: each batch's finiteness is recorded as a
device tensor and looked at only when the final result is not finite (one sync per call),
to name the first offending batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from landscape.errors import NonFiniteError


class Sums:
    """Running float64 sum of per-batch partial sums and the number of examples.

    Args:
        checked: the entries of the (flattened) partial sums whose finiteness is checked
            (e.g. the loss but not the accuracy, which is NaN for regression).
    """

    def __init__(self, checked: slice = slice(None)):
        self.checked, self.total, self.count, self.flags = checked, None, 0, []

    def add(self, part: Tensor, batch_size: int) -> None:
        """Add one batch's sum over its examples."""
        part = part.reshape(-1).to(torch.float64)
        self.flags.append(torch.isfinite(part[self.checked]).all())
        self.total = part if self.total is None else self.total + part
        self.count += batch_size

    def mean(self, all_reduce: Callable[[Tensor], Tensor] | None, what: str) -> Tensor:
        """Σ_b sums / N after ``all_reduce`` of the packed ``[sums, N]``; raise if not finite."""
        packed = torch.cat([self.total, self.total.new_tensor([self.count])])
        if all_reduce is not None:
            packed = all_reduce(packed)
        result = packed[:-1] / packed[-1]
        if not torch.isfinite(result[self.checked]).all():
            raise NonFiniteError(f"{what} is not finite {self._where()}")
        return result

    def _where(self) -> str:
        bad = first_true(~torch.stack(self.flags))
        if bad is None:
            return "(all local batches are finite: the non-finite part came from another process's shard)"
        return (f"(first non-finite batch: #{bad} of {len(self.flags)}); check θ, the learning rate that "
                "produced it, or the data in that batch")


def first_true(mask: Tensor) -> int | None:
    """Index of the first True entry of a 1-D boolean tensor, or None (one host sync)."""
    hits = mask.nonzero()
    return int(hits[0, 0]) if hits.shape[0] else None


def first_nonfinite(t: Tensor) -> int | None:
    """Index of the first non-finite entry of a 1-D tensor, or None."""
    return first_true(~torch.isfinite(t))


def concat_checked(parts: list[Tensor], what: str) -> Tensor:
    """Concatenate per-example rows of all batches; raise naming the first non-finite example."""
    out = torch.cat(parts)
    bad = first_true(~out.reshape(out.shape[0], -1).isfinite().all(dim=1))
    if bad is not None:
        sizes = torch.tensor([p.shape[0] for p in parts]).cumsum(0)
        batch = int((sizes <= bad).sum())
        raise NonFiniteError(f"{what} is not finite for example {bad} (batch #{batch}); "
                             "check θ and that example's data")
    return out
