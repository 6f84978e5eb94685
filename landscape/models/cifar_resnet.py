"""CIFAR ResNets in the form of He et al. (2016), "Deep Residual Learning for Image Recognition", §4.2.

Depth ``6n + 2``: a 3×3 stem convolution, three stages of ``n`` BasicBlocks at widths
``(16, 32, 64) · width`` on 32×32, 16×16 and 8×8 feature maps, a global average pool and a
linear head. A BasicBlock computes ``relu(F(x) + s(x))`` with ``F = conv-norm-relu-conv-norm``.

Shortcuts ``s``:

* ``"A"`` (default, the paper's CIFAR choice): parameter-free. Where a block halves the
  resolution and widens the channels, ``s(x)`` takes every second pixel and zero-pads the new
  channels.
* ``"B"``: a 1×1 strided convolution followed by the norm, only where the shape changes. This is
  the shortcut of PyHessian's ``models/resnet.py`` (amirgholami/PyHessian), kept for
  side-by-side benchmarks.

Parameter counts at width 1, 10 classes, with BatchNorm (weights and biases; running statistics
are buffers, not parameters): ResNet-20 has **269,722** with shortcut A (the paper's "0.27M") and
**272,474** with shortcut B.

The pool is written ``x.mean((2, 3))`` (deterministic on CUDA, unlike the backward of
``AdaptiveAvgPool2d``) and no operation is in place, so ``torch.func.functional_call``, ``vmap``
and ``jvp(grad(·))`` all work (BatchNorm in ``eval()`` mode uses its running statistics).
Initialisation: Kaiming normal (He et al. 2015, fan-in, ReLU gain) for convolutions and the head,
norm scales 1 and shifts 0, head bias 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from landscape.errors import InputError

DEPTHS = (8, 14, 20, 32, 56)
BASE_WIDTHS = (16, 32, 64)
NORMS = ("bn", "none")
SHORTCUTS = ("A", "B")
WIDTH_100K = 0.625  # stage widths (10, 20, 40): ResNet-20, 105,940 parameters (10 classes, BN, shortcut A)


def _norm(norm: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if norm == "bn" else nn.Identity()


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


class PadShortcut(nn.Module):
    """Option-A shortcut: subsample by ``stride`` and zero-pad channels ``c_in → c_out`` (no parameters)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.stride, self.pad = stride, c_out - c_in

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        low = self.pad // 2
        return F.pad(x, (0, 0, 0, 0, low, self.pad - low))


def _shortcut(kind: str, norm: str, c_in: int, c_out: int, stride: int) -> nn.Module:
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    if kind == "A":
        return PadShortcut(c_in, c_out, stride)
    conv = nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False)
    return nn.Sequential(conv, _norm(norm, c_out))


class BasicBlock(nn.Module):
    """``relu(norm(conv(relu(norm(conv(x))))) + shortcut(x))``."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str, shortcut: str):
        super().__init__()
        self.conv1, self.bn1 = _conv3x3(c_in, c_out, stride), _norm(norm, c_out)
        self.conv2, self.bn2 = _conv3x3(c_out, c_out), _norm(norm, c_out)
        self.shortcut = _shortcut(shortcut, norm, c_in, c_out, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32×32 images; see the module docstring.

    Args:
        depth: 8, 14, 20, 32 or 56 (n = 1, 2, 3, 5, 9 blocks per stage).
        width: multiplier of the stage widths (16, 32, 64); each is rounded to an integer ≥ 1.
        num_classes: outputs of the linear head.
        in_channels: channels of the input images.
        norm: ``"bn"`` (BatchNorm2d) or ``"none"`` (identity; a BN-free network).
        shortcut: ``"A"`` (parameter-free) or ``"B"`` (1×1 convolution + norm).
    """

    def __init__(self, depth: int = 20, width: float = 1.0, num_classes: int = 10,
                 in_channels: int = 3, norm: str = "bn", shortcut: str = "A"):
        super().__init__()
        _check(depth, width, num_classes, in_channels, norm, shortcut)
        n = (depth - 2) // 6
        widths = [max(1, round(w * width)) for w in BASE_WIDTHS]
        self.conv1, self.bn1 = _conv3x3(in_channels, widths[0]), _norm(norm, widths[0])
        blocks, c_in = [], widths[0]
        for stage, c_out in enumerate(widths):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(c_in, c_out, stride, norm, shortcut))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(widths[-1], num_classes)
        self.widths = tuple(widths)
        _kaiming_init(self)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (N, C, H, W) → logits (N, num_classes)."""
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.blocks(x)
        return self.fc(x.mean((2, 3)))


def _check(depth, width, num_classes, in_channels, norm, shortcut) -> None:
    if depth not in DEPTHS:
        raise InputError(f"resnet depth must be one of {DEPTHS} (6n+2), got {depth!r}")
    if not (isinstance(width, (int, float)) and width > 0):
        raise InputError(f"resnet width must be a positive number (a multiplier of 16/32/64), got {width!r}")
    if not (isinstance(num_classes, int) and num_classes >= 1):
        raise InputError(f"num_classes must be a positive integer, got {num_classes!r}")
    if not (isinstance(in_channels, int) and in_channels >= 1):
        raise InputError(f"in_channels must be a positive integer, got {in_channels!r}")
    if norm not in NORMS:
        raise InputError(f"norm must be one of {NORMS}, got {norm!r}")
    if shortcut not in SHORTCUTS:
        raise InputError(f"shortcut must be one of {SHORTCUTS}, got {shortcut!r}")


@torch.no_grad()
def _kaiming_init(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def resnet(depth: int = 20, width: float = 1.0, num_classes: int = 10, in_channels: int = 3,
           norm: str = "bn", shortcut: str = "A") -> CifarResNet:
    """A CIFAR ResNet of the given depth and width multiplier (see :class:`CifarResNet`)."""
    return CifarResNet(depth, width, num_classes, in_channels, norm, shortcut)


def resnet_100k(num_classes: int = 10, in_channels: int = 3, norm: str = "bn",
                shortcut: str = "A") -> CifarResNet:
    """The "100k ResNet": ResNet-20 at width 0.625, stage widths (10, 20, 40).

    With 10 classes, BatchNorm and shortcut A it has 105,940 parameters: the widths that keep the
    doubling from stage to stage and land nearest 100k for ResNet-20 ((9, 18, 36) gives 85,951).
    """
    return CifarResNet(20, WIDTH_100K, num_classes, in_channels, norm, shortcut)
