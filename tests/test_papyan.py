"""Papyan's decomposition of the GGN: parts against a dense float64 oracle built from per-example Jacobians."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, jacrev

from landscape.errors import InputError
from landscape.objective import Objective
from landscape.operators import LowRankOperator
from landscape.papyan import PARTS, papyan_decomposition

# Float64 products of a few dozen terms: agreement to ~1e-13 relative; 1e-10 leaves room on any CPU.
DENSE_RTOL = 1e-10
# A singular value counts toward the rank above this fraction of the largest (float64 rounding is ~1e-15).
RANK_RTOL = 1e-9

CASES = [  # (id, N, C, labels): balanced and unbalanced classes
    ("balanced", 9, 3, [0, 1, 2, 0, 1, 2, 0, 1, 2]),
    ("unbalanced", 10, 4, [0, 0, 0, 0, 1, 1, 2, 2, 2, 3]),
]


def _problem(N, C, labels, seed=0):
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, C)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    X = torch.randn(N, 5, generator=g, dtype=torch.float64)
    return model, X, torch.tensor(labels)


def _oracle(model, obj, X, y, C):
    """Dense G and the four parts from explicit per-example δ_{i,c'} (the module's formulas, term by term)."""
    spec, theta = obj.spec, obj.theta
    f = lambda th, x: functional_call(model, spec.unflatten(th), (x[None],))[0]
    J = torch.stack([jacrev(f)(theta, x) for x in X])                            # (N, C, P)
    p = torch.softmax(torch.stack([f(theta, x) for x in X]), dim=1)              # (N, C)
    eye = torch.eye(C, dtype=torch.float64)
    d = torch.einsum("icp,ikc->ikp", J, p.sqrt()[:, :, None] * (eye[None] - p[:, None, :]))  # δ_{i,c'} (N, C, P)
    N = len(X)
    G = torch.einsum("ikp,ikq->pq", d, d) / N
    parts = {n: torch.zeros_like(G) for n in PARTS}
    for c in range(C):
        members = d[y == c]
        w = len(members) / N
        mean = members.mean(0)                                                   # δ_{c,c'} (C, P)
        dc = (mean.sum(0) - mean[c]) / (C - 1)
        parts["self"] += w * torch.outer(mean[c], mean[c])
        parts["class"] += w * (C - 1) * torch.outer(dc, dc)
        for k in range(C):
            if k != c:
                parts["cross"] += w * torch.outer(mean[k] - dc, mean[k] - dc)
        centred = members - mean
        parts["within"] += w * torch.einsum("ikp,ikq->pq", centred, centred) / len(members)
    grads = torch.stack([(J[y == c].transpose(1, 2) @ (p[y == c] - eye[c])[:, :, None]).mean(0)[:, 0]
                         for c in range(C)])
    return G, parts, grads


def _dense(op, P):
    return op.matmat(torch.eye(P, dtype=torch.float64)).T


def _rank(M):
    s = torch.linalg.svdvals(M)
    return int((s > RANK_RTOL * s[0]).sum())


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_parts_match_the_dense_oracle_and_sum_to_the_ggn(case):
    _, N, C, labels = case
    model, X, y = _problem(N, C, labels)
    obj = Objective(model, X, y, loss="cross_entropy", batch_size=4)
    dec = papyan_decomposition(obj, obj.theta, C)
    P = obj.spec.numel
    G, parts, grads = _oracle(model, obj, X, y, C)
    scale = float(G.abs().max())
    torch.testing.assert_close(_dense(dec.ggn, P), G, rtol=0, atol=DENSE_RTOL * scale)
    total = torch.zeros_like(G)
    for name, op in dec.parts().items():
        dense = _dense(op, P)
        torch.testing.assert_close(dense, parts[name], rtol=0, atol=DENSE_RTOL * scale, msg=f"part {name}")
        total += dense
    torch.testing.assert_close(total, G, rtol=0, atol=DENSE_RTOL * scale)
    torch.testing.assert_close(dec.class_gradients, grads, rtol=0, atol=DENSE_RTOL * float(grads.abs().max()))
    torch.testing.assert_close(dec.weights, torch.bincount(y, minlength=C).double() / N)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_ranks_are_those_of_the_theory(case):
    """rank G = N(C−1) (P > N(C−1)); G_self, G_class: C; G_cross: C(C−2); within ≤ N(C−1)."""
    _, N, C, labels = case
    model, X, y = _problem(N, C, labels, seed=1)
    obj = Objective(model, X, y, loss="cross_entropy")
    dec = papyan_decomposition(obj, obj.theta, C)
    P = obj.spec.numel
    assert P > N * (C - 1)
    ranks = {name: _rank(_dense(op, P)) for name, op in dec.parts().items()}
    assert _rank(_dense(dec.ggn, P)) == N * (C - 1)
    assert ranks["self"] == C and ranks["class"] == C and ranks["cross"] == C * (C - 2)
    assert ranks["within"] <= N * (C - 1)


def test_low_rank_spectra_are_exact_from_their_gram_matrices():
    model, X, y = _problem(9, 3, CASES[0][3])
    obj = Objective(model, X, y, loss="cross_entropy")
    dec = papyan_decomposition(obj, obj.theta, 3)
    for name in ("self", "class", "cross"):
        op = dec.part(name)
        assert isinstance(op, LowRankOperator)
        lam = torch.linalg.eigvalsh(_dense(op, obj.spec.numel)).flip(0)[:len(op.weights)].numpy()
        np.testing.assert_allclose(op.gram_eigenvalues(), lam, rtol=0, atol=DENSE_RTOL * abs(lam).max())


def test_class_gradient_gram_is_the_gram_of_the_means():
    model, X, y = _problem(9, 3, CASES[0][3])
    obj = Objective(model, X, y, loss="cross_entropy")
    dec = papyan_decomposition(obj, obj.theta, 3)
    g = dec.class_gradients
    torch.testing.assert_close(dec.class_gradient_gram(), g @ g.T)
    # the mean gradient is the class-weighted mean of the class gradients
    torch.testing.assert_close(dec.weights @ g, obj.grad(obj.theta), rtol=0, atol=1e-12)


def test_bad_inputs_are_refused():
    model, X, y = _problem(9, 3, CASES[0][3])
    with pytest.raises(InputError, match="cross-entropy"):
        obj = Objective(model, X, torch.nn.functional.one_hot(y, 3).double(), loss="mse")
        papyan_decomposition(obj, obj.theta, 3)
    obj = Objective(model, X, y, loss="cross_entropy")
    with pytest.raises(InputError, match="C = 4 logits"):
        papyan_decomposition(obj, obj.theta, 4)
    with pytest.raises(InputError, match="at least 2 classes"):
        papyan_decomposition(obj, obj.theta, 1)
    soft = Objective(model, X, torch.softmax(torch.randn(9, 3, dtype=torch.float64), 1), loss="cross_entropy")
    with pytest.raises(InputError, match="integer class labels"):
        papyan_decomposition(soft, soft.theta, 3)


def test_difference_operator_is_h_minus_g():
    from landscape.operators import DifferenceOperator

    model, X, y = _problem(9, 3, CASES[0][3])
    obj = Objective(model, X, y, loss="cross_entropy")
    P = obj.spec.numel
    H, G = obj.hessian(obj.theta), obj.ggn(obj.theta)
    torch.testing.assert_close(_dense(DifferenceOperator(H, G), P), _dense(H, P) - _dense(G, P))


def test_class_split_and_masked_passes_agree():
    """bn="eval" splits batches by class (C + 1 VJPs per example); bn="train" masks cotangents (C² + C): same δ."""
    model, X, y = _problem(10, 4, CASES[1][3])
    split = Objective(model, X, y, loss="cross_entropy", batch_size=4)
    masked = Objective(model, X, y, loss="cross_entropy", batch_size=4, bn="train")   # no BN layers: same loss
    a, b = (papyan_decomposition(o, o.theta, 4) for o in (split, masked))
    torch.testing.assert_close(a.delta, b.delta, rtol=0, atol=1e-13)
    torch.testing.assert_close(a.class_gradients, b.class_gradients, rtol=0, atol=1e-13)
    with pytest.raises(InputError, match="bn='eval'"):
        masked.output_pullbacks(masked.theta, lambda z, y: z[None], groups=lambda y: y, num_groups=4)
