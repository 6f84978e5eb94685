"""Benchmark problems: a model at a realistic point θ, its data in fixed batches, the objective.

Every problem is built the same way, so every tool sees the same matrix:

1. the model from the registry (seeded), or a bench model of :data:`BENCH_MODELS` (``bn_cnn``:
   a plain 2-D CNN with BatchNorm), and the data set (seeded, synthetic CIFAR-shaped images
   unless the name says MNIST-1D; ``image_size`` < 32 average-pools them, a cheaper problem
   with the same structure);
2. ``TRAIN_STEPS`` SGD steps in train mode from initialisation (a point a little away from
   init, where the spectrum has the usual few large outliers);
3. BatchNorm running statistics set to the exact statistics of the data (cumulative average over
   one pass), then ``eval()``: the loss is a plain average of per-example losses, identical for
   our objective (``bn="eval"``), PyHessian (which forces ``eval()``), hessian-eigenthings and
   curvlinops.

The batches are a list of ``(x, y)`` of equal size ``batch_size`` (N must be a multiple of it):
hessian-eigenthings averages batch means with equal weights, which is the full-data mean only
when the batches are equal.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from landscape import Objective, build_model, load_dataset
from landscape.errors import InputError
from landscape.models import num_parameters

TRAIN_STEPS = 24  # SGD steps from init (as in performance.md §2.1): loss falls, outliers appear
TRAIN_LR = 0.05  # SGD step size with momentum 0.9: stable for these models at batch 256
TRAIN_SEED = 0


@dataclass(frozen=True)
class Problem:
    """A model in eval mode at θ, its data and batches; ``objective()`` builds ours on it."""

    name: str
    model: nn.Module
    inputs: Tensor
    targets: Tensor
    batch_size: int
    device: torch.device
    config: dict = field(default_factory=dict)

    @property
    def N(self) -> int:  # noqa: N802 — N is the maths name
        return self.inputs.shape[0]

    @property
    def P(self) -> int:  # noqa: N802
        return num_parameters(self.model)

    @property
    def batches(self) -> list[tuple[Tensor, Tensor]]:
        """The fixed batch plan, as peers take it (a list is a re-iterable data loader)."""
        b = self.batch_size
        return [(self.inputs[i:i + b], self.targets[i:i + b]) for i in range(0, self.N, b)]

    def objective(self, **kwargs) -> Objective:
        """Our :class:`~landscape.Objective` on the same data and batch size (``bn="eval"``)."""
        return Objective(self.model, self.inputs, self.targets, batch_size=self.batch_size, bn="eval", **kwargs)

    def describe(self) -> str:
        """One line for table captions."""
        shape = "×".join(str(d) for d in self.inputs.shape[1:])
        return (f"{self.name}: P = {self.P:,}, N = {self.N:,} inputs of {shape}, batch {self.batch_size}, "
                f"BN eval, float32")


class BNCNN(nn.Module):
    """A plain 2-D CNN with BatchNorm: [conv3×3 (no bias) → BN → ReLU → maxpool 2] per width, the
    last without pool, then a global average pool and a linear head. widths (16, 32, 64) on
    3-channel inputs: 24,346 parameters with 10 classes, 30,196 with 100. With 100 classes (a
    CIFAR-100-shaped teacher task) its top Hessian eigenvalues are clustered: after the benchmark's
    24 SGD steps consecutive ones among the top 12 lie within 1–14 % of each other, where
    PyHessian's power iteration crawls."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64), num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        chans = [in_channels, *widths]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1, bias=False) for a, b in itertools.pairwise(chans))
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) for c in widths)
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (N, C, H, W) → logits (N, num_classes)."""
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            x = F.relu(norm(conv(x)))
            if i < len(self.convs) - 1:
                x = F.max_pool2d(x, 2)
        return self.fc(x.mean((2, 3)))


BENCH_MODELS = {"bn_cnn": BNCNN}


def _model(name: str, seed: int, **kwargs) -> nn.Module:
    if name not in BENCH_MODELS:
        return build_model(name, seed=seed, **kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return BENCH_MODELS[name](**kwargs)


def _data(dataset: str, N: int, seed: int, image_size: int = 32, classes: int = 10) -> tuple[Tensor, Tensor]:
    if dataset == "mnist1d":
        ds = load_dataset("mnist1d", num_train=N, num_test=10 + (-N) % 10)  # sum a multiple of 10
    elif dataset == "synthetic1d":
        ds = load_dataset("synthetic", num_train=N, num_test=10, input_shape=(40,), seed=seed, num_classes=classes)
    else:
        ds = load_dataset("synthetic", num_train=N, num_test=10, input_shape=(3, 32, 32), seed=seed,
                          num_classes=classes)
        if image_size != 32:
            return F.avg_pool2d(ds.x_train, 32 // image_size), ds.y_train
    return ds.x_train, ds.y_train


def _train(model: nn.Module, batches: list[tuple[Tensor, Tensor]], steps: int) -> None:
    gen = torch.Generator().manual_seed(TRAIN_SEED)
    opt = torch.optim.SGD(model.parameters(), lr=TRAIN_LR, momentum=0.9)
    model.train()
    for _ in range(steps):
        x, y = batches[int(torch.randint(len(batches), (1,), generator=gen))]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model.zero_grad(set_to_none=True)


def _exact_bn_statistics(model: nn.Module, batches: list[tuple[Tensor, Tensor]]) -> None:
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: the exact mean of the batch statistics
    if norms:
        model.train()
        with torch.no_grad():
            for x, _ in batches:
                model(x)


def build_problem(model: str, *, dataset: str = "cifar_synthetic", N: int = 2048, batch_size: int = 256,
                  device: str | torch.device = "cpu", seed: int = 0, train_steps: int = TRAIN_STEPS,
                  image_size: int = 32, classes: int = 10, **model_kwargs) -> Problem:
    """Model ``model`` (registry or :data:`BENCH_MODELS` name + kwargs) on ``N`` examples of ``dataset``,
    prepared as above.

    ``dataset``: ``"cifar_synthetic"`` (N(0,1) 3×32×32 images, labels from a random linear teacher over
    ``classes`` classes; average-pooled to ``image_size``), ``"synthetic1d"`` (length-40 signals, same
    teacher) or ``"mnist1d"``. The model's own ``num_classes`` goes in ``model_kwargs``.
    """
    if N % batch_size:
        raise InputError(f"N = {N} must be a multiple of batch_size = {batch_size} (equal batches for every tool)")
    device = torch.device(device)
    x, y = _data(dataset, N, seed, image_size, classes)
    net = _model(model, seed, **model_kwargs).to(device)
    problem = Problem(model, net, x.to(device), y.to(device), batch_size, device,
                      dict(model=model, model_kwargs=model_kwargs, dataset=dataset, N=N, batch_size=batch_size,
                           seed=seed, train_steps=train_steps, image_size=image_size, classes=classes))
    _train(net, problem.batches, train_steps)
    _exact_bn_statistics(net, problem.batches)
    net.eval()
    return problem


def plain_gradient(problem: Problem) -> list[Tensor]:
    """The full-data gradient the plain PyTorch way: ``loss.backward()`` per batch, weighted B/N.

    This is the denominator of every "× gradient" figure.
    """
    model = problem.model
    model.zero_grad(set_to_none=True)
    for x, y in problem.batches:
        (F.cross_entropy(model(x), y) * (x.shape[0] / problem.N)).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    model.zero_grad(set_to_none=True)
    return grads


# The eigensolver problems of bench/topk.py: a 1-D CNN (MNIST-1D), a 2-D CNN with BatchNorm and a clustered
# top spectrum (100 classes), and a ResNet-8 (10 classes); both on 16×16 CIFAR-shaped images, ~0.2 s per HVP
# on one core, so that PyHessian's hundreds of HVPs at 1e-3 fit the run.
EIGEN_PROBLEMS = {
    "cnn1d": dict(model="cnn1d", dataset="mnist1d", N=1000, batch_size=500),
    "bn_cnn": dict(model="bn_cnn", dataset="cifar_synthetic", image_size=16, classes=100, num_classes=100,
                   N=512, batch_size=128),
    "resnet8": dict(model="resnet8", dataset="cifar_synthetic", image_size=16, N=256, batch_size=128),
}

# The three sizes of the suite (``--tiny`` < ``--quick`` < default), per benchmark role.
PRESETS = {
    "full": dict(model="resnet8", dataset="cifar_synthetic", N=2048, batch_size=256),
    "quick": dict(model="cnn1d", dataset="mnist1d", N=4000, batch_size=500),
    "tiny": dict(model="cnn1d", dataset="synthetic1d", N=64, batch_size=32, channels=(8, 8, 8), train_steps=4),
}


def size_of(args) -> str:
    """``"tiny"``, ``"quick"`` or ``"full"`` from the parsed flags."""
    return "tiny" if args.tiny else "quick" if args.quick else "full"


def preset_problem(args, **overrides) -> Problem:
    """The preset problem for the flags, on ``args.device``, with ``overrides`` applied."""
    return build_problem(**{**PRESETS[size_of(args)], **overrides}, device=args.device)
