"""Deep linear nets: the closed forms against the Objective (autograd) and the solvers.

The oracle ladder of style.md, rung "two-layer scalar linear net": for L = ⟨(y − x·w₁w₂)²⟩
(our MSE: no ½) the Hessian at the origin is [[0, −2⟨xy⟩], [−2⟨xy⟩, 0]] (eigenvalues ±2⟨xy⟩)
and on the hyperbola of minima w₁w₂ = â it has eigenvalues 0 and 2⟨x²⟩(w₁² + w₂²). The
batched engines (narrow product nets, wide nets through a matrix scan) must give the
Objective's loss, gradient and Hessian.
"""

import numpy as np
import pytest
import torch

import landscape as ls
from analyses.deeplinear import config as C
from analyses.deeplinear import data as Dd
from analyses.deeplinear import narrow as NA
from analyses.deeplinear import product as PR
from analyses.deeplinear import saxe as SX
from analyses.deeplinear import wide as WI
from landscape.models import build_model

# Everything is float64; the quantities are O(1–100) sums of a few dozen products, so rounding
# differences between the closed forms and autograd stay below ~1e-13 relative. 1e-10 leaves
# three orders of margin on any CPU (no reliance on one vendor's rounding).
RTOL64 = 1e-10
DEPTHS = (1, 2, 3, 5)


@pytest.fixture(scope="module")
def data():
    return Dd.scalar_data(C.DataConfig())


def scalar_objective(data, depth: int) -> ls.Objective:
    net = build_model("deep_linear", seed=0, depth=depth, width=1, in_dim=1, out_dim=1)
    return ls.Objective(net, data.x, data.y, loss="mse", batch_size=17, dtype=torch.float64)


def close(a, b, rtol=RTOL64) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return bool(np.abs(a - b).max() <= rtol * max(1.0, np.abs(b).max()))


@pytest.mark.parametrize("depth", DEPTHS)
def test_product_net_matches_the_objective(data, depth):
    obj = scalar_objective(data, depth)
    g = torch.Generator().manual_seed(depth)
    for W in (0.3 + torch.rand(depth, generator=g, dtype=torch.float64),
              torch.randn(depth, generator=g, dtype=torch.float64),
              torch.cat([torch.zeros(1, dtype=torch.float64), torch.randn(depth - 1, generator=g, dtype=torch.float64)])):
        m = data.moments
        assert close(PR.loss(W, m), obj.loss(W)), "loss"
        assert close(PR.grad(W, m), obj.grad(W)), f"gradient {PR.grad(W, m)} vs {obj.grad(W)}"
        assert close(PR.hessian(W, m), ls.dense_hessian(obj, W)), "Hessian"


def test_two_layer_hessian_formula(data):
    m = data.moments
    W = torch.tensor([0.7, -1.3], dtype=torch.float64)
    assert close(PR.two_layer_hessian(0.7, -1.3, m), PR.hessian(W, m))


def test_hessian_at_the_origin_through_the_objective_and_lanczos(data):
    m, obj = data.moments, NA.objective(data)
    H = ls.dense_hessian(obj, torch.zeros(2, dtype=torch.float64)).numpy()
    assert close(H, [[0, -2 * m.xy], [-2 * m.xy, 0]]), H
    dense, lanczos = NA.eigenvalues(obj, np.zeros(2))
    want = np.array([-2 * abs(m.xy), 2 * abs(m.xy)])
    assert close(dense, want) and close(lanczos, want), (dense, lanczos, want)
    assert NA.classify(dense) == "saddle"


@pytest.mark.parametrize("w1", [0.5, 1.4, -2.0, 3.0])
def test_hessian_on_the_hyperbola_of_minima(data, w1):
    m, obj = data.moments, NA.objective(data)
    theta = np.array([w1, m.a_hat / w1])
    assert float(obj.grad(torch.tensor(theta)).norm()) < 1e-12, "not a critical point"
    dense, lanczos = NA.eigenvalues(obj, theta)
    want = np.array([0.0, 2 * m.xx * (theta ** 2).sum()])
    assert np.abs(dense - want).max() <= RTOL64 * want[1], (dense, want)
    assert np.abs(lanczos - want).max() <= RTOL64 * want[1], (lanczos, want)
    assert NA.classify(dense) == "minimum"


def test_critical_points_found_and_classified(data):
    m = data.moments
    cfg = C.NarrowConfig(newton_grid=4)
    found = NA.critical_points(NA.objective(data), cfg, m)
    kinds = list(found["kind"])
    assert kinds.count("saddle") == 1 and set(kinds) == {"saddle", "minimum"}, kinds
    saddle = found["points"][kinds.index("saddle")]
    assert np.abs(saddle).max() < 1e-10, saddle
    minima = found["points"][np.array(kinds) == "minimum"]
    assert len(minima) >= 4, "the minima should spread along the hyperbola"
    assert np.abs(minima.prod(1) - m.a_hat).max() < 1e-10, "minima off the hyperbola w1·w2 = â"
    err = np.abs(found["eigenvalues"] - found["eigenvalues_theory"]).max()
    assert err <= RTOL64 * np.abs(found["eigenvalues_theory"]).max(), f"eigenvalues off the closed forms by {err}"
    assert close(found["eigenvalues_lanczos"], found["eigenvalues"]) and close(found["eigenvalues_closed_form"], found["eigenvalues"])


def test_surface_and_trajectory_through_the_objective(data):
    m, obj = data.moments, NA.objective(data)
    xs = NA.grid_points(2.0, 9)
    S = NA.surface(obj, xs, xs)
    w1, w2 = np.meshgrid(xs, xs)
    assert close(S, PR.loss(torch.as_tensor(np.stack([w1, w2], -1)), m)), "grid loss ≠ closed form"
    path, losses = NA.trajectory(obj, (1.4, -1.6), 0.02, 30)
    W = torch.tensor([[1.4, -1.6]], dtype=torch.float64)
    for t in range(30):
        W = W - 0.02 * PR.grad(W, m)
    assert close(path[-1], W[0]), "Objective GD path ≠ closed-form GD path"
    assert losses[-1] < losses[0]


def test_balanced_sharpness_is_lambda_max_at_the_balanced_minimum(data):
    m = data.moments
    for D in (1, 2, 7, 40):
        W = torch.full((1, D), abs(m.a_hat) ** (1 / D), dtype=torch.float64)
        assert close(PR.lambda_max(W, m), PR.balanced_sharpness(D, m))


def test_zero_variance_in_x_is_refused():
    with pytest.raises(ls.InputError, match="zero variance"):
        Dd.scalar_data(C.DataConfig(num_points=1))
    with pytest.raises(ls.InputError, match="zero variance"):
        Dd.scalar_data(C.DataConfig(x_std=0.0))


def test_scan_matches_sequential_products():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(3, 7, 4, 4, generator=g, dtype=torch.float64)
    fwd, rev = WI.scan(A), WI.scan(A, reverse=True)
    for i in range(7):
        P = A[:, 0]
        for j in range(1, i + 1):
            P = A[:, j] @ P
        S = A[:, 6]
        for j in range(5, i - 1, -1):
            S = S @ A[:, j]
        assert close(fwd[:, i], P) and close(rev[:, i], S), i


@pytest.mark.parametrize("depth,width", [(1, 5), (2, 6), (4, 3), (5, 8)])
def test_wide_engine_matches_the_objective(depth, width):
    cfg = C.SaxeConfig(singular_values=(2.0, 1.0), in_dim=4, out_dim=3, hidden=3, num_examples=12)
    data = Dd.wide_data(cfg)
    Dd.check_whitened(data.X, 1e-12)
    net = SX.model(data, width, depth=depth, seed=depth)
    obj = SX.objective(data, net)
    theta = obj.theta
    A, mask = WI.pad_layers(list(obj.spec.unflatten(theta).values()), max(4, 3, width))
    n = A.shape[-1]
    target = torch.zeros(n, n, dtype=torch.float64)
    target[:3, :4] = data.target
    L, G = WI.loss_and_grad(A[None], mask, target, data.yy)
    assert close(L[0], obj.loss(theta)), (float(L[0]), float(obj.loss(theta)))
    assert close(G[0][mask > 0], obj.grad(theta)), "wide gradient ≠ Objective gradient"
    assert bool((G[0][mask == 0] == 0).all()), "padding received a gradient"
