"""The HVP route of an Objective: the "auto" rule, the timed "measure", and their provenance.

Every route computes the same Hessian-vector products (checked against each other in float64),
so the tests check which route is used, that measuring computes real products throughout, and
that the choice reaches an eigensolver result's provenance.
"""

import time

import pytest
import torch

from cases import CASES_BY_ID, assert_close, make
from landscape._hvp_route import ROUTES, TRIALS, RouteChooser, auto_route
from landscape.objective import Objective
from landscape.solvers import eigsh

# Different autodiff of the same float64 maths (see tests/test_objective.py ORACLE_RTOL).
ORACLE_RTOL = 1e-10


def objective(case_id, **kw):
    model, x, y = make(CASES_BY_ID[case_id])
    return Objective(model, x, y, loss=CASES_BY_ID[case_id].loss, batch_size=16, **kw)


def block(P, k, seed=0):
    return torch.randn(k, P, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_auto_rule_uses_double_backward_for_2d_convolutions_and_blocks_on_the_cpu():
    conv, mlp = objective("cnn_bn_eval"), objective("mlp")
    assert conv.hvp_route == "auto:single=double_backward,block=double_backward"
    assert mlp.hvp_route == "auto:single=forward_over_reverse,block=double_backward"
    assert auto_route(torch.nn.Conv1d(1, 1, 3), torch.device("cpu")) == "forward_over_reverse"
    assert auto_route(torch.nn.Conv2d(1, 1, 3), torch.device("cuda"), "block") == "forward_over_reverse"
    fixed = objective("cnn_bn_eval", hvp_method="forward_over_reverse")
    V = block(conv.spec.numel, 3)
    assert_close(conv.hvp(conv.theta, V), fixed.hvp(conv.theta, V), ORACLE_RTOL, "auto vs forward-over-reverse")


@pytest.mark.parametrize("case_id", ["mlp", "cnn_bn_eval"])
def test_measure_tries_every_route_on_real_products_then_keeps_one(case_id):
    timed, fixed = objective(case_id, hvp_method="measure"), objective(case_id, hvp_method="double_backward")
    P = timed.spec.numel
    assert timed.hvp_route == "measure:unused"
    for i in range(TRIALS * len(ROUTES["single"]) + 1):  # every call is a real product, measured or not
        v = block(P, 1, seed=i)[0]
        assert_close(timed.hvp(timed.theta, v), fixed.hvp(timed.theta, v), ORACLE_RTOL, f"single product {i}")
    single = timed._routes.chosen["single"]
    assert single in ROUTES["single"] and timed.hvp_route == f"measure:single={single}"
    for i in range(TRIALS * len(ROUTES["block"])):
        V = block(P, 3, seed=100 + i)
        assert_close(timed.hvp(timed.theta, V), fixed.hvp(timed.theta, V), ORACLE_RTOL, f"block product {i}")
    assert timed._routes.chosen["block"] in ROUTES["block"] and "block=" in timed.hvp_route


def test_measure_keeps_the_fastest_route():
    chooser = RouteChooser("measure", torch.device("cpu"))
    cost = {"forward_over_reverse": 30e-3, "double_backward": 1e-3}  # seconds; far apart on a loaded machine

    def compute(route):
        time.sleep(cost[route])
        return torch.zeros(1)

    for _ in range(TRIALS * 2):
        chooser.run(1, compute)
    assert chooser.chosen["single"] == "double_backward"
    assert chooser.summary() == "measure:single=double_backward"


def test_the_route_reaches_the_eigensolver_provenance():
    obj = objective("cnn_bn_eval")
    res = eigsh(obj.hessian(obj.theta), k=2, tol=1e-8)
    route = "auto:single=double_backward,block=double_backward"
    assert res.provenance == {"hvp_route": route} and route in res.as_dict()["provenance"]
