"""Batch plans for a full-dataset objective: tensors addressed by index, or any re-iterable.

A full-dataset quantity is Σ_b (Σ_{i∈b} q_i) / N — each batch weighted by its share of
N — accumulated in a fixed batch order, so it does not depend on the batch size beyond
rounding (docs/contracts.md, landscape.objective). Both sources yield ``(x, y)`` already on the device and
cast to the objective's dtype (floating tensors only; integer labels stay integer).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch import Tensor

from landscape.errors import InputError


def _cast(t: Tensor, dtype: torch.dtype, device: torch.device, non_blocking: bool = False) -> Tensor:
    if not isinstance(t, Tensor):
        raise InputError(f"inputs and targets must be tensors, got {type(t).__name__}")
    if t.is_floating_point():
        return t.to(device=device, dtype=dtype, non_blocking=non_blocking)
    return t.to(device=device, non_blocking=non_blocking)


class TensorBatches:
    """Rows of ``(inputs, targets)`` held on the device, in batches of consecutive indices.

    Args:
        inputs: ``(N, ...)``; targets: ``(N, ...)``.
        batch_size: examples per batch (the last batch may be smaller).
        index: optional ``(n,)`` row indices (a subset, in this order); ``None`` means all rows.
    """

    def __init__(self, inputs: Tensor, targets: Tensor, batch_size: int, index: Tensor | None = None):
        if inputs.shape[0] != targets.shape[0]:
            raise InputError(f"inputs hold {inputs.shape[0]} examples but targets {targets.shape[0]}; "
                             "give one target per input row")
        self.inputs, self.targets, self.batch_size, self.index = inputs, targets, batch_size, index
        if self.num_examples == 0:
            raise InputError("the dataset is empty (N = 0); give at least one example")

    @classmethod
    def create(cls, inputs, targets, batch_size, dtype, device) -> TensorBatches:
        """Cast the tensors once to the objective's dtype and device."""
        if inputs is None or targets is None:
            raise InputError("give both inputs and targets tensors, or data=<iterable of batches>")
        return cls(_cast(inputs, dtype, device), _cast(targets, dtype, device), batch_size)

    @property
    def num_examples(self) -> int:
        """N, the number of examples."""
        return self.inputs.shape[0] if self.index is None else self.index.shape[0]

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for start in range(0, self.num_examples, self.batch_size):
            stop = min(start + self.batch_size, self.num_examples)
            if self.index is None:
                yield self.inputs[start:stop], self.targets[start:stop]
            else:
                rows = self.index[start:stop]
                yield self.inputs[rows], self.targets[rows]

    def first(self) -> tuple[Tensor, Tensor]:
        """The first batch."""
        return next(iter(self))

    def subset(self, indices) -> TensorBatches:
        """The examples ``indices`` (positions in this plan), same batch size."""
        idx = torch.as_tensor(indices, device=self.inputs.device)
        if idx.numel() == 0:
            raise InputError("subset indices are empty; an objective needs at least one example")
        if idx.ndim != 1 or idx.dtype in (torch.bool,) or idx.is_floating_point():
            raise InputError("subset indices must be a 1-D sequence of integer positions")
        if (idx.min() < 0 or idx.max() >= self.num_examples):
            raise InputError(f"subset indices must lie in [0, {self.num_examples}); got "
                             f"[{int(idx.min())}, {int(idx.max())}]")
        rows = idx if self.index is None else self.index[idx]
        return TensorBatches(self.inputs, self.targets, self.batch_size, rows)


class IterableBatches:
    """Any re-iterable of ``(inputs, targets)`` batches (e.g. a DataLoader), iterated once per pass.

    N is counted as batches go by (the divisor of each pass is that pass's count), or
    given; a pass that yields a different number of examples than N raises.
    """

    def __init__(self, data: Iterable, dtype: torch.dtype, device: torch.device, num_examples: int | None):
        if iter(data) is data:
            raise InputError("data must be re-iterable (a list of batches or a DataLoader), not a one-shot "
                             "iterator or generator: the objective iterates it once per pass")
        self.data, self.dtype, self.device, self._n = data, dtype, device, num_examples

    @property
    def num_examples(self) -> int:
        """N, counted on a first pass over the data if it was not given."""
        if self._n is None:
            self._n = sum(int(x.shape[0]) for x, _ in self._raw())
        return self._n

    def _raw(self) -> Iterator[tuple[Tensor, Tensor]]:
        for batch in self.data:
            if not isinstance(batch, (tuple, list)) or len(batch) != 2:
                raise InputError("each item of data must be an (inputs, targets) pair")
            yield batch[0], batch[1]

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        count = 0
        for x, y in self._raw():
            if x.shape[0] != y.shape[0]:
                raise InputError(f"a batch holds {x.shape[0]} inputs but {y.shape[0]} targets")
            count += int(x.shape[0])
            yield _cast(x, self.dtype, self.device, True), _cast(y, self.dtype, self.device, True)
        self._check_count(count)

    def _check_count(self, count: int) -> None:
        if self._n is None:
            self._n = count
        elif count != self._n:
            raise InputError(f"data yielded {count} examples in this pass but N = {self._n}; "
                             "the data must yield the same examples on every pass (no drop_last changes)")

    def first(self) -> tuple[Tensor, Tensor]:
        """The first batch (raises InputError for empty data)."""
        for x, y in self._raw():
            if x.shape[0] == 0:
                break
            return _cast(x, self.dtype, self.device), _cast(y, self.dtype, self.device)
        raise InputError("data yielded no examples (empty dataset); give at least one batch")

    def subset(self, indices) -> None:
        raise InputError("subset() needs tensor data (inputs, targets); with data=<iterable>, build the "
                         "subset's batches yourself and make a new Objective")
