"""landscape.objective: bad input fails early with an error that names the problem and the fix."""

import pytest
import torch
from torch import nn

from cases import CASES_BY_ID, make
from landscape.errors import InputError, NonFiniteError
from landscape.objective import Objective

# The same float64 forward computed two ways (objective vs the module itself): rounding only.
SAME_MATH_RTOL = 1e-12


@pytest.fixture
def mlp():
    return make(CASES_BY_ID["mlp"])


@pytest.fixture
def cnn():
    return make(CASES_BY_ID["cnn_bn_eval"])


def test_non_finite_theta_names_the_entry_and_parameter(mlp):
    obj = Objective(*mlp)
    theta = obj.theta
    theta[40] = float("inf")
    for call in (obj.loss, obj.grad, lambda t: obj.hvp(t, obj.theta), obj.per_example_losses):
        with pytest.raises(NonFiniteError, match=r"entry 40 \(parameter '2.weight'\)"):
            call(theta)
    with pytest.raises(NonFiniteError, match="row 1 of thetas: θ is not finite: entry 40"):
        obj.losses_at(torch.stack([obj.theta, theta]))


def test_non_finite_data_names_the_batch_and_example(mlp):
    model, x, y = mlp
    x = x.clone()
    x[17, 2] = float("nan")
    obj = Objective(model, x, y, batch_size=8)
    for call in (obj.loss, obj.grad, lambda t: obj.hvp(t, t)):
        with pytest.raises(NonFiniteError, match=r"batch: #2 of 5"):
            call(obj.theta)
    with pytest.raises(NonFiniteError, match=r"example 17 \(batch #2\)"):
        obj.per_example_losses(obj.theta)
    with pytest.raises(NonFiniteError, match="vector"):
        obj.hvp(obj.theta, torch.full_like(obj.theta, float("nan")))


def test_empty_data_is_refused(mlp):
    model, x, y = mlp
    with pytest.raises(InputError, match="empty"):
        Objective(model, x[:0], y[:0])
    with pytest.raises(InputError, match="no examples"):
        Objective(model, data=[])


def test_inputs_that_do_not_fit_the_model_are_named(cnn, mlp):
    model, x, y = cnn
    with pytest.raises(InputError, match=r"input shape \(33, 3, 5, 5\).*does not fit the model"):
        Objective(model, torch.randn(33, 3, 5, 5, dtype=torch.float64), y)
    with pytest.raises(InputError, match="does not fit"):
        Objective(mlp[0], mlp[1], mlp[2] + 5)  # labels beyond the 3 classes
    with pytest.raises(InputError, match="33 examples but targets 32"):
        Objective(model, x, y[:-1])
    with pytest.raises(InputError, match="per-example losses"):
        Objective(mlp[0], mlp[1], mlp[2], loss=lambda z, t: nn.functional.cross_entropy(z, t))


def test_wrong_shapes_of_theta_and_vectors(mlp):
    obj = Objective(*mlp)
    P = obj.spec.P
    for bad in (torch.zeros(P + 1, dtype=torch.float64), torch.zeros(1, P, dtype=torch.float64),
                torch.zeros(P, dtype=torch.long), [0.0] * P):
        with pytest.raises(InputError, match=rf"shape \({P},\)"):
            obj.loss(bad)
    with pytest.raises(InputError, match=rf"\(k, {P}\)"):
        obj.hvp(obj.theta, torch.zeros(2, P - 1, dtype=torch.float64))
    with pytest.raises(InputError, match="thetas"):
        obj.losses_at(obj.theta)


def test_bad_options(mlp):
    model, x, y = mlp
    for kwargs, match in [({"loss": "hinge"}, "unknown loss"), ({"bn": "frozen"}, "bn must be"),
                          ({"hvp_method": "finite_difference"}, "hvp_method"), ({"batch_size": 0}, "batch_size"),
                          ({"vmap_chunk": 0}, "vmap_chunk"), ({"params": ["nope.*"]}, "matches no"),
                          ({"dtype": torch.int32}, "floating dtype")]:
        with pytest.raises(InputError, match=match):
            Objective(model, x, y, **kwargs)
    with pytest.raises(InputError, match="not both"):
        Objective(model, x, y, data=[(x, y)])
    with pytest.raises(InputError, match="inputs and targets"):
        Objective(model)


def test_one_shot_iterators_and_changing_data_are_refused(mlp):
    model, x, y = mlp
    with pytest.raises(InputError, match="re-iterable"):
        Objective(model, data=((xb, yb) for xb, yb in zip(x.split(8), y.split(8))))
    obj = Objective(model, data=list(zip(x.split(8), y.split(8))), num_examples=36)
    with pytest.raises(InputError, match="yielded 37 examples in this pass but N = 36"):
        obj.loss(obj.theta)
    with pytest.raises(InputError, match="tensor data"):
        obj.subset([0, 1])


class NoisyNet(nn.Module):
    """A layer that ignores eval(): noise from its own seeded generator on every forward."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 3).double()
        self.g = torch.Generator().manual_seed(0)

    def forward(self, x):
        return self.lin(x) + torch.randn(x.shape[0], 3, generator=self.g, dtype=x.dtype)


def test_a_non_deterministic_model_is_refused(mlp):
    with pytest.raises(InputError, match="not deterministic"):
        Objective(NoisyNet(), mlp[1], mlp[2])
    dropout = nn.Sequential(nn.Linear(5, 3), nn.Dropout(0.5)).double().train()
    obj = Objective(dropout, mlp[1], mlp[2])  # dropout is switched off inside the objective: accepted
    expected = nn.functional.cross_entropy(dropout[0](mlp[1]), mlp[2])
    assert torch.allclose(obj.loss(obj.theta), expected.detach(), rtol=SAME_MATH_RTOL, atol=0)
    assert dropout.training


def test_bn_eval_needs_running_statistics(cnn):
    model, x, y = cnn
    model[1].track_running_stats, model[1].running_mean, model[1].running_var = False, None, None
    with pytest.raises(InputError, match="no running statistics.*bn='train'"):
        Objective(model, x, y)
    Objective(model, x, y, bn="train")


def test_subset_indices_are_checked(mlp):
    obj = Objective(*mlp)
    with pytest.raises(InputError, match=r"\[0, 37\)"):
        obj.subset([0, 37])
    with pytest.raises(InputError, match="empty"):
        obj.subset([])
