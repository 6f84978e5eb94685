"""CIFAR augmentation on the device, replayable from (seed, step).

Standard CIFAR augmentation (He et al. 2016): zero-pad each image by ``pad`` pixels, take a
random H×W crop, and flip it horizontally with probability 1/2. The random draws for step t
come from a ``torch.Generator`` seeded with :func:`aug_seed` (a hash of the run seed and t),
so the augmented batch of any step can be rebuilt exactly, and no global RNG is touched.

The draws (one flip bit and two offsets per example, a few hundred numbers) are made on the
CPU and moved to the device, so they are the same on every device; the crop and flip run on
the device as one gather.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor

from landscape.errors import InputError

PAD = 4  # pixels of zero padding before the random crop (CIFAR standard)


def derive_seed(seed: int, step: int, tag: str) -> int:
    """A 63-bit integer from (seed, step, tag) by SHA-256: stable across runs, processes, platforms."""
    digest = hashlib.sha256(f"landscape:{tag}:{int(seed)}:{int(step)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def aug_seed(seed: int, step: int) -> int:
    """The augmentation seed of step ``step`` of a run with seed ``seed`` (logged per step)."""
    return derive_seed(seed, step, "augment")


def draw(n: int, aug_seed_: int, pad: int = PAD) -> tuple[Tensor, Tensor, Tensor]:
    """The random choices for one batch of n images: (flip (n,) bool, dy (n,), dx (n,)) on CPU.

    dy, dx ∈ {0, …, 2·pad} are the crop's top-left corner in the padded image.
    """
    g = torch.Generator(device="cpu").manual_seed(int(aug_seed_))
    flip = torch.randint(0, 2, (n,), generator=g).bool()
    offsets = torch.randint(0, 2 * pad + 1, (2, n), generator=g)
    return flip, offsets[0], offsets[1]


def augment(x: Tensor, aug_seed_: int, pad: int = PAD) -> Tensor:
    """Random crop with zero padding and horizontal flip of a batch ``x`` (n, C, H, W).

    Args:
        x: images on any device.
        aug_seed_: the step's augmentation seed (:func:`aug_seed`).
        pad: padding in pixels.

    Returns:
        A new tensor of the same shape, dtype and device; ``x`` is not modified.
    """
    if x.ndim != 4:
        raise InputError(f"augmentation expects images (n, C, H, W), got shape {tuple(x.shape)}; "
                         "turn augmentation off for this dataset (--no-augment)")
    n, _, H, W = x.shape
    flip, dy, dx = (t.to(x.device) for t in draw(n, aug_seed_, pad))
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = dy[:, None] + torch.arange(H, device=x.device)                   # (n, H)
    cols = dx[:, None] + torch.arange(W, device=x.device)                   # (n, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)                   # flip = read columns backwards
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (n, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()
