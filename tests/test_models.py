"""Models and registry: parameter counts against closed forms, shapes, torch.func, determinism."""

import json
import math

import pytest
import torch
from torch.func import functional_call, grad, hessian, jvp, vmap

from landscape.errors import InputError
from landscape.models import DEPTHS, build_model, model_names, num_parameters
from landscape.models.cifar_resnet import PadShortcut

# float64 forward-over-reverse HVP vs reverse-over-reverse / dense Hessian: both are exact up to
# rounding of O(P) sums of O(1) terms, so agreement to 1e-10 relative is ample margin over ~1e-14.
HVP_RTOL_F64 = 1e-10
# vmapped vs per-model forward in float64: the same operations, batched; rounding only.
VMAP_RTOL_F64 = 1e-12
# Gaussian init: the sample std of m ≥ 250k i.i.d. entries has relative sd 1/sqrt(2m) < 0.15%; 2% is > 10 sd.
INIT_STD_RTOL = 0.02
# Orthogonal init: W Wᵀ = s² I up to float32 rounding of a 64-term inner product.
ORTHO_ATOL = 1e-5


def resnet_count(depth, width=1.0, num_classes=10, in_channels=3, norm="bn", shortcut="A"):
    """P of a CIFAR ResNet from its description (He et al. 2016), independent of the module code."""
    n, (a, b, c) = (depth - 2) // 6, [max(1, round(w * width)) for w in (16, 32, 64)]
    bn = 2 if norm == "bn" else 0
    P = 9 * in_channels * a + bn * a  # stem conv + norm
    for c_in, c_out in ((a, a), (a, b), (b, c)):
        P += 9 * c_in * c_out + 9 * c_out * c_out + 2 * bn * c_out  # first block of the stage
        P += (n - 1) * (2 * 9 * c_out * c_out + 2 * bn * c_out)  # the other n − 1 blocks
        if shortcut == "B" and c_in != c_out:
            P += c_in * c_out + bn * c_out  # 1×1 projection + norm
    return P + c * num_classes + num_classes  # head


def cnn1d_count(channels=(24, 24, 24), k=5, num_classes=10, length=40, in_channels=1, norm="none"):
    widths, P = (in_channels, *channels), 0
    for c_in, c_out in zip(widths[:-1], widths[1:]):
        P += k * c_in * c_out + c_out + (2 * c_out if norm == "bn" else 0)
    return P + channels[-1] * (length // 2 ** (len(channels) - 1)) * num_classes + num_classes


# Cases as data: (id, name, kwargs, input shape of one example, expected P).
CASES = [
    ("resnet8-w.25", "resnet8", {"width": 0.25}, (3, 16, 16), resnet_count(8, 0.25)),
    ("resnet8-B", "resnet", {"depth": 8, "width": 0.25, "shortcut": "B"}, (3, 16, 16),
     resnet_count(8, 0.25, shortcut="B")),
    ("resnet8-nobn", "resnet8", {"width": 0.25, "norm": "none", "num_classes": 3, "in_channels": 1},
     (1, 12, 12), resnet_count(8, 0.25, 3, 1, norm="none")),
    ("mlp", "mlp", {"in_dim": 6, "hidden": [5, 4], "num_classes": 3}, (6,), 6 * 5 + 5 + 5 * 4 + 4 + 4 * 3 + 3),
    ("mlp-shape-tanh", "mlp", {"input_shape": [2, 3], "hidden": [4], "out_dim": 2, "activation": "tanh",
                               "bias": False}, (2, 3), 6 * 4 + 4 * 2),
    ("mlp-gelu", "mlp", {"in_dim": 4, "hidden": [], "activation": "gelu"}, (4,), 4 * 10 + 10),
    ("cnn1d", "cnn1d", {"channels": [4, 4], "input_length": 16}, (16,), cnn1d_count((4, 4), length=16)),
    ("cnn1d-bn", "cnn1d", {"channels": [3, 4, 5], "norm": "bn"}, (1, 40), cnn1d_count((3, 4, 5), norm="bn")),
    ("deep_linear", "deep_linear", {"depth": 3, "width": 4, "in_dim": 3, "out_dim": 2}, (3,), 12 + 16 + 8),
]
IDS = [c[0] for c in CASES]


def build(case, seed=0, dtype=torch.float64):
    _, name, kwargs, shape, _ = case
    model = build_model(name, seed=seed, **kwargs).to(dtype).eval()
    x = torch.randn(5, *shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    return model, x


def params_of(model):
    return {k: v.detach() for k, v in model.named_parameters()}


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("shortcut", ["A", "B"])
@pytest.mark.parametrize("norm", ["bn", "none"])
def test_resnet_param_count_matches_closed_form(depth, shortcut, norm):
    model = build_model("resnet", depth=depth, norm=norm, shortcut=shortcut)
    assert num_parameters(model) == resnet_count(depth, norm=norm, shortcut=shortcut)


def test_resnet20_anchor_counts():
    """He et al. (2016) give 0.27M; option A is 269,722 and PyHessian's option-B ResNet-20 is 272,474."""
    assert num_parameters(build_model("resnet20")) == 269_722
    assert num_parameters(build_model("resnet20", shortcut="B")) == 272_474


def test_resnet_100k_and_width_multiplier():
    model = build_model("resnet_100k")
    print("resnet_100k parameters:", num_parameters(model))
    assert model.widths == (10, 20, 40)
    assert num_parameters(model) == 105_940 == resnet_count(20, 0.625)
    assert build_model("resnet20", width=2).widths == (32, 64, 128)
    assert num_parameters(build_model("resnet20", width=2)) == resnet_count(20, 2)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_param_count_and_forward_shape(case):
    model, x = build(case)
    assert num_parameters(model) == case[4]
    num_out = case[2].get("num_classes", case[2].get("out_dim", 10))
    assert model(x).shape == (len(x), num_out)


def test_cnn1d_default_size_and_input_layouts():
    model = build_model("cnn1d", seed=0)
    assert num_parameters(model) == 8_362 == cnn1d_count()
    x = torch.randn(7, 40)
    torch.testing.assert_close(model(x), model(x[:, None, :]), rtol=0, atol=0)


def test_option_a_shortcut_subsamples_and_zero_pads():
    x = torch.randn(2, 4, 8, 8)
    y = PadShortcut(4, 8, 2)(x)
    assert y.shape == (2, 8, 4, 4)
    torch.testing.assert_close(y[:, 2:6], x[:, :, ::2, ::2], rtol=0, atol=0)
    assert y[:, :2].abs().max() == 0 and y[:, 6:].abs().max() == 0


def test_norm_none_has_no_batchnorm():
    model = build_model("resnet8", norm="none")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert len(list(model.buffers())) == 0


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_jvp_of_grad_hvp_matches_double_backward(case):
    """Forward-over-reverse HVP through functional_call in eval mode, float64, vs reverse-over-reverse."""
    model, x = build(case)
    theta = params_of(model)
    buffers_before = [b.clone() for b in model.buffers()]

    def loss(p):
        return functional_call(model, p, (x,)).square().mean()

    v = {k: torch.randn_like(t) for k, t in theta.items()}
    _, hv = jvp(grad(loss), (theta,), (v,))
    leaves = {k: t.clone().requires_grad_(True) for k, t in theta.items()}
    g = torch.autograd.grad(loss(leaves), list(leaves.values()), create_graph=True)
    gv = sum((gi * v[k]).sum() for gi, k in zip(g, leaves))
    hv_ref = torch.autograd.grad(gv, list(leaves.values()))
    for (k, a), b in zip(hv.items(), hv_ref):
        torch.testing.assert_close(a, b, rtol=HVP_RTOL_F64, atol=HVP_RTOL_F64 * b.abs().max().item(), msg=k)
    for before, after in zip(buffers_before, model.buffers()):
        assert torch.equal(before, after), "eval-mode functional calls must not touch BN buffers"


@pytest.mark.parametrize("case", [c for c in CASES if c[4] < 200], ids=[c[0] for c in CASES if c[4] < 200])
def test_hvp_matches_dense_hessian(case):
    model, x = build(case)
    theta = params_of(model)
    names, shapes = list(theta), [t.shape for t in theta.values()]
    flat = torch.cat([t.reshape(-1) for t in theta.values()])

    def loss_flat(f):
        parts = torch.split(f, [math.prod(s) for s in shapes])
        return functional_call(model, {n: p.view(s) for n, p, s in zip(names, parts, shapes)}, (x,)).square().mean()

    H = hessian(loss_flat)(flat)
    v = torch.randn_like(flat)
    _, hv = jvp(grad(loss_flat), (flat,), (v,))
    torch.testing.assert_close(hv, H @ v, rtol=HVP_RTOL_F64, atol=HVP_RTOL_F64 * (H @ v).abs().max().item())


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_vmap_over_parameter_sets(case):
    model, x = build(case)
    thetas = [params_of(build_model(case[1], seed=s, **case[2]).to(torch.float64)) for s in range(3)]
    stacked = {k: torch.stack([t[k] for t in thetas]) for k in thetas[0]}
    out = vmap(lambda p: functional_call(model, p, (x,)))(stacked)
    for i, theta in enumerate(thetas):
        ref = functional_call(model, theta, (x,))
        torch.testing.assert_close(out[i], ref, rtol=VMAP_RTOL_F64, atol=VMAP_RTOL_F64 * ref.abs().max().item())


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_seed_is_deterministic_and_leaves_global_rng_alone(case):
    _, name, kwargs, _, _ = case
    state = torch.get_rng_state()
    a, b = params_of(build_model(name, seed=3, **kwargs)), params_of(build_model(name, seed=3, **kwargs))
    assert torch.equal(state, torch.get_rng_state()), "build_model(seed=...) advanced the global RNG"
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = params_of(build_model(name, seed=4, **kwargs))
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_without_seed_the_global_rng_is_used():
    torch.manual_seed(0)
    a = params_of(build_model("mlp", in_dim=3, hidden=[4]))
    torch.manual_seed(0)
    b = params_of(build_model("mlp", in_dim=3, hidden=[4]))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_registry_round_trip_through_json(case):
    _, name, kwargs, _, _ = case
    model = build_model(name, seed=5, **kwargs)
    spec = json.loads(json.dumps(model.build_spec))
    rebuilt = build_model(spec["name"], seed=5, **spec["kwargs"])
    a, b = params_of(model), params_of(rebuilt)
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_registry_names():
    assert set(model_names()) == {"resnet", "resnet8", "resnet14", "resnet20", "resnet32", "resnet56",
                                  "resnet_100k", "mlp", "cnn1d", "deep_linear"}


def test_unknown_name_lists_known_names():
    with pytest.raises(InputError, match="unknown model 'resnet18'.*resnet20"):
        build_model("resnet18")


@pytest.mark.parametrize("name,kwargs,bad", [
    ("resnet20", {"depth": 8}, "depth"),
    ("resnet", {"widht": 2}, "widht"),
    ("mlp", {"in_dim": 3, "hiden": [2]}, "hiden"),
    ("deep_linear", {"bias": True}, "bias"),
])
def test_bad_kwarg_names_it_and_the_accepted_ones(name, kwargs, bad):
    with pytest.raises(InputError, match=rf"\['{bad}'\].*accepts") as info:
        build_model(name, **kwargs)
    print(info.value)


@pytest.mark.parametrize("name,kwargs,match", [
    ("resnet", {"depth": 10}, "depth must be one of"),
    ("resnet", {"width": 0}, "width"),
    ("resnet8", {"norm": "ln"}, "norm"),
    ("resnet8", {"shortcut": "C"}, "shortcut"),
    ("mlp", {}, "exactly one of in_dim"),
    ("mlp", {"in_dim": 3, "activation": "swish"}, "activation"),
    ("mlp", {"in_dim": 3, "num_classes": 2, "out_dim": 3}, "give one of them"),
    ("cnn1d", {"kernel_size": 4}, "odd"),
    ("cnn1d", {"channels": [4] * 8}, "len\\(channels\\)"),
    ("deep_linear", {"depth": 0}, "depth"),
    ("deep_linear", {"init": "xavier"}, "init"),
])
def test_bad_values_raise_input_error(name, kwargs, match):
    with pytest.raises(InputError, match=match):
        build_model(name, **kwargs)


def test_deep_linear_end_to_end_and_gaussian_init():
    model = build_model("deep_linear", seed=0, depth=3, width=512, in_dim=512, out_dim=512, init_scale=0.5)
    W = [layer.weight for layer in model.layers]
    torch.testing.assert_close(model.end_to_end(), W[2] @ W[1] @ W[0])
    x = torch.randn(4, 512)
    torch.testing.assert_close(model(x), x @ model.end_to_end().T, rtol=1e-4, atol=1e-5)
    for w in W:
        std, expected = w.std().item(), 0.5 / math.sqrt(512)
        assert abs(std / expected - 1) < INIT_STD_RTOL, f"init std {std:.5f} vs {expected:.5f}"


def test_deep_linear_orthogonal_init():
    model = build_model("deep_linear", seed=0, depth=2, width=64, in_dim=64, out_dim=64,
                        init_scale=0.1, init="orthogonal")
    for layer in model.layers:
        W = layer.weight
        torch.testing.assert_close(W @ W.T, 0.01 * torch.eye(64), rtol=0, atol=ORTHO_ATOL)
