"""landscape.params: θ ⇄ named tensors, parameter subsets, buffers — exact round trips."""

import pytest
import torch
from torch import nn

from cases import CASES_BY_ID, make, model_digest
from landscape.errors import InputError
from landscape.params import ParamSpec, flatten_buffers, unflatten_buffers


@pytest.fixture
def cnn():
    return make(CASES_BY_ID["cnn_bn_eval"])[0]


def test_layout_matches_named_parameters(cnn):
    spec = ParamSpec.from_module(cnn)
    named = list(cnn.named_parameters())
    assert spec.names == tuple(n for n, _ in named)
    assert spec.shapes == tuple(tuple(p.shape) for _, p in named)
    assert spec.P == spec.numel == sum(p.numel() for _, p in named)
    for (name, p), (name2, sl) in zip(named, spec.slices().items()):
        assert name == name2 and sl.stop - sl.start == p.numel()
        assert spec.name_at(sl.start) == name and spec.name_at(sl.stop - 1) == name


def test_flatten_unflatten_round_trip_is_exact(cnn):
    spec = ParamSpec.from_module(cnn)
    theta = spec.theta_of(cnn)
    assert torch.equal(theta, torch.cat([p.detach().reshape(-1) for p in cnn.parameters()]))
    tensors = spec.unflatten(theta)
    for name, p in cnn.named_parameters():
        assert torch.equal(tensors[name], p.detach()), name
    assert torch.equal(spec.flatten(tensors), theta)


def test_unflatten_returns_views_that_autograd_flows_through(cnn):
    spec = ParamSpec.from_module(cnn)
    theta = spec.theta_of(cnn).requires_grad_(True)
    tensors = spec.unflatten(theta)
    assert all(t._base is theta for t in tensors.values())
    sum(t.sum() for t in tensors.values()).backward()
    assert torch.equal(theta.grad, torch.ones_like(theta))


def test_include_selects_a_layer_in_model_order(cnn):
    spec = ParamSpec.from_module(cnn, include=["4.*", "1.weight"])
    assert spec.names == ("1.weight", "4.weight", "4.bias")
    assert torch.equal(spec.theta_of(cnn), torch.cat([cnn[1].weight.detach(), cnn[4].weight.detach().reshape(-1),
                                                     cnn[4].bias.detach()]))


def test_frozen_parameters_are_left_out():
    net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    net[0].weight.requires_grad_(False)
    assert ParamSpec.from_module(net).names == ("0.bias", "1.weight", "1.bias")


def test_bad_inputs_raise_input_error(cnn):
    spec = ParamSpec.from_module(cnn)
    with pytest.raises(InputError, match="matches no trainable parameter"):
        ParamSpec.from_module(cnn, include=["layer9.*"])
    with pytest.raises(InputError, match=rf"shape \({spec.P},\)"):
        spec.unflatten(torch.zeros(spec.P + 1))
    with pytest.raises(InputError, match="missing"):
        spec.flatten({})
    with pytest.raises(InputError, match="no trainable parameters"):
        ParamSpec.from_module(nn.ReLU())


def test_buffers_round_trip_exactly_in_their_dtypes(cnn):
    before = model_digest(cnn)
    flat = flatten_buffers(cnn)
    assert flat.dtype == torch.float64 and flat.shape == (3 + 3 + 1,)
    out = unflatten_buffers(cnn, flat)
    for name, b in cnn.named_buffers():
        assert out[name].dtype == b.dtype and torch.equal(out[name], b), name
    assert model_digest(cnn) == before
    with pytest.raises(InputError, match="buffer vector"):
        unflatten_buffers(cnn, flat[:-1])


def test_float32_buffers_survive_the_float64_vector():
    bn = nn.BatchNorm1d(4)
    with torch.no_grad():
        bn.running_var.copy_(torch.tensor([1 / 3, 1e-30, 3e38, 0.1]))
    out = unflatten_buffers(bn, flatten_buffers(bn))
    assert torch.equal(out["running_var"], bn.running_var)
    assert flatten_buffers(nn.Linear(2, 2)).shape == (0,)
