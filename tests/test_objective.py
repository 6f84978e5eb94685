"""landscape.objective: full-dataset loss, gradient, HVP and per-example quantities against oracles.

Every case of ``tests/cases.py`` runs in float64; the oracles differentiate the mean loss of
the whole dataset in one forward (``cases.reference_*``), never through the Objective.
"""

import copy
import json

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from cases import (CASES, CASES_BY_ID, assert_close, case_ids, make, model_digest, oracle_hessian,
                   reference_loss, reference_per_example_grads, theta_of)
from landscape.objective import Objective

# Same maths, different summation order (batching, data path, vmap vs loop): float64
# rounding of sums over N ≤ 40 terms of O(1) is ~N·eps ≈ 1e-14; 1e-12 leaves margin and
# still catches any real weighting error (those are O(1/N)).
SAME_MATH_RTOL = 1e-12
# Against torch.func oracles that build another graph (one forward over all data,
# reverse-over-reverse or forward-over-forward): rounding grows with depth; ≈1e-10 in float64.
ORACLE_RTOL = 1e-10
# float32 run vs float64 run of the same small model: float32 eps 1.2e-7 times a few
# dozen accumulated operations.
FLOAT32_RTOL = 1e-5
# bn="train" and bn="eval" are different functions (batch vs running statistics): their
# losses differ by O(0.1) here; anything above rounding shows the mode took effect.
DIFFERENT_FUNCTIONS = 1e-6
# Host reads per call: the θ check, the final finiteness check, one more for block inputs.
MAX_HOST_SYNCS = 3


# The plumbing (data paths, reductions, subsets, vmap chunks) runs on two representative
# cases — a callable loss without BN, and cross-entropy through a CNN with BN — while the
# oracle ladder runs on every case.
PLUMBING = [CASES_BY_ID["logreg"], CASES_BY_ID["cnn_bn_eval"]]
plumbing = pytest.mark.parametrize("case", PLUMBING, ids=lambda c: c.id)


@pytest.fixture(params=CASES, ids=case_ids)
def case(request):
    return request.param


def objective(case, batch_size=16, **kw):
    model, x, y = make(case)
    return Objective(model, x, y, loss=case.loss, batch_size=batch_size, **kw), (model, x, y)


def random_block(P, k, seed=0, dtype=torch.float64):
    return torch.randn(k, P, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_loss_and_grad_match_the_oracle(case):
    obj, (model, x, y) = objective(case)
    f, theta = reference_loss(case, model, x, y), theta_of(model)
    assert torch.equal(obj.theta, theta)
    loss, g = obj.loss_and_grad(theta)
    assert_close(loss, f(theta), ORACLE_RTOL, "loss")
    assert_close(obj.loss(theta), f(theta), ORACLE_RTOL, "loss()")
    assert_close(g, torch.func.grad(f)(theta), ORACLE_RTOL, "gradient")
    assert_close(obj.grad(theta), g, SAME_MATH_RTOL, "grad() vs loss_and_grad()")


def test_hvp_matches_the_dense_oracle(case):
    obj, _ = objective(case)
    H = oracle_hessian(case)
    V = random_block(obj.spec.P, 3)
    assert_close(obj.hvp(obj.theta, V[0]), H @ V[0], ORACLE_RTOL, "single HVP")
    assert_close(obj.hvp(obj.theta, V), V @ H, ORACLE_RTOL, "block HVP")


@pytest.mark.parametrize("batch_size", [7, 16])
def test_results_do_not_depend_on_the_batch_size(case, batch_size):
    """Batches of 7 and 16 (the last one short) against one batch of all N (30–40) examples."""
    ref, _ = objective(case, batch_size=10**6)
    obj, _ = objective(case, batch_size=batch_size)
    theta, V = ref.theta, random_block(ref.spec.P, 2)
    assert_close(obj.loss(theta), ref.loss(theta), SAME_MATH_RTOL, "loss")
    assert_close(obj.grad(theta), ref.grad(theta), SAME_MATH_RTOL, "gradient")
    assert_close(obj.hvp(theta, V), ref.hvp(theta, V), SAME_MATH_RTOL, "HVP")


@plumbing
def test_iterable_of_batches_equals_tensor_path(case):
    obj, (model, x, y) = objective(case)
    theta, V = obj.theta, random_block(obj.spec.P, 2)
    for data in (list(zip(x.split(5), y.split(5))), DataLoader(TensorDataset(x, y), batch_size=10)):
        it = Objective(model, data=data, loss=case.loss)
        assert it.num_examples == obj.num_examples
        assert_close(it.loss(theta), obj.loss(theta), SAME_MATH_RTOL, "loss")
        assert_close(it.grad(theta), obj.grad(theta), SAME_MATH_RTOL, "gradient")
        assert_close(it.hvp(theta, V), obj.hvp(theta, V), SAME_MATH_RTOL, "HVP")
        assert_close(it.per_example_losses(theta), obj.per_example_losses(theta), SAME_MATH_RTOL, "ℓ_i")


@plumbing
def test_forward_over_reverse_equals_double_backward(case):
    obj, (model, x, y) = objective(case)
    dbl = Objective(model, x, y, loss=case.loss, batch_size=16, hvp_method="double_backward")
    V = random_block(obj.spec.P, 3)
    assert_close(dbl.hvp(obj.theta, V), obj.hvp(obj.theta, V), ORACLE_RTOL, "double backward vs jvp(grad)")
    assert_close(dbl.hvp(obj.theta, V[1]), obj.hvp(obj.theta, V[1]), ORACLE_RTOL, "single vector")


@plumbing
@pytest.mark.parametrize("vmap_chunk", [None, 2])
def test_batched_hvp_equals_stacked_single_hvps(case, vmap_chunk):
    obj, _ = objective(case, vmap_chunk=vmap_chunk)
    V = random_block(obj.spec.P, 5)
    stacked = torch.stack([obj.hvp(obj.theta, v) for v in V])
    assert_close(obj.hvp(obj.theta, V), stacked, SAME_MATH_RTOL, f"vmap_chunk={vmap_chunk}")


def test_per_example_quantities_match_explicit_gradients(case):
    obj, (model, x, y) = objective(case)
    theta, V = obj.theta, random_block(obj.spec.P, 3)
    G = reference_per_example_grads(case, model, x, y)  # (N, P), one example at a time
    proj = obj.per_example_projections(theta, V)
    assert_close(proj, G @ V.T, ORACLE_RTOL, "per-example projections g_i·v_j")
    assert_close(proj.mean(0), V @ obj.grad(theta), ORACLE_RTOL, "mean projection vs full gradient")
    assert_close(obj.per_example_grad_norms(theta), G.norm(dim=1), ORACLE_RTOL, "per-example ‖g_i‖")
    assert_close(obj.per_example_grad_norms(theta, chunk_size=3), G.norm(dim=1), ORACLE_RTOL, "chunked ‖g_i‖")
    losses = obj.per_example_losses(theta)
    assert losses.shape == (x.shape[0],)
    assert_close(losses.mean(), obj.loss(theta), SAME_MATH_RTOL, "mean of ℓ_i vs loss")


def test_losses_at_equals_looped_loss(case):
    obj, _ = objective(case)
    thetas = obj.theta + 0.3 * random_block(obj.spec.P, 5)
    losses, accs = obj.losses_at(thetas, chunk_size=2)
    for i, th in enumerate(thetas):
        loss, acc = obj.loss_and_accuracy(th)
        assert_close(losses[i], loss, SAME_MATH_RTOL, f"losses_at row {i}")
        assert torch.equal(accs[i], acc) or (accs[i].isnan() and acc.isnan()), f"accuracy row {i}"


def test_config_records_what_defines_the_numbers():
    obj, _ = objective(CASES_BY_ID["cnn_bn_eval"], bn="train")
    cfg = obj.config()
    assert cfg["bn"] == "train" and cfg["loss"] == "cross_entropy" and cfg["batch_size"] == 16
    assert cfg["num_examples"] == 33 and cfg["num_params"] == obj.spec.P and cfg["dtype"] == "torch.float64"
    assert json.loads(json.dumps(cfg)) == cfg


def test_accuracy_is_the_fraction_of_correct_argmax():
    obj, (model, x, y) = objective(CASES_BY_ID["mlp"])
    expected = (model(x).argmax(1) == y).double().mean()
    assert obj.loss_and_accuracy(obj.theta)[1] == expected
    assert objective(CASES_BY_ID["linreg"])[0].loss_and_accuracy(obj.theta[:4])[1].isnan()


@pytest.mark.parametrize("bn", ["eval", "train"])
def test_the_model_and_its_buffers_are_never_modified(bn):
    model, x, y = make(CASES_BY_ID["cnn_bn_eval"])
    model.train()  # a user's model in training mode must stay so, and keep its running stats
    before = model_digest(model)
    obj = Objective(model, x, y, batch_size=8, bn=bn)
    theta, V = obj.theta + 0.1, random_block(obj.spec.P, 2)
    obj.loss_and_accuracy(theta), obj.loss_and_grad(theta), obj.hvp(theta, V), obj.ggnvp(theta, V)
    obj.per_example_projections(theta, V), obj.per_example_grad_norms(theta), obj.losses_at(V + theta)
    Objective(model, x, y, hvp_method="double_backward", bn=bn).hvp(theta, V)
    assert model_digest(model) == before


def test_bn_train_uses_batch_statistics_and_differs_from_eval():
    model, x, y = make(CASES_BY_ID["cnn_bn_eval"])
    ev, tr = Objective(model, x, y, batch_size=11), Objective(model, x, y, batch_size=11, bn="train")
    theta = ev.theta
    assert abs(float(tr.loss(theta) - ev.loss(theta))) > DIFFERENT_FUNCTIONS
    # train mode, batch by batch: normalise each batch by its own statistics (no running stats)
    manual = copy.deepcopy(model).train()
    manual[1].track_running_stats, manual[1].running_mean, manual[1].running_var = False, None, None
    expected = sum(torch.nn.functional.cross_entropy(manual(xb), yb, reduction="sum")
                   for xb, yb in zip(x.split(11), y.split(11))) / x.shape[0]
    assert_close(tr.loss(theta), expected.detach(), ORACLE_RTOL, "bn=train loss vs manual batch statistics")
    other_plan = Objective(model, x, y, batch_size=3, bn="train")  # batch statistics depend on the plan
    assert abs(float(other_plan.loss(theta) - tr.loss(theta))) > DIFFERENT_FUNCTIONS


def test_float32_and_float64_agree_and_results_take_thetas_dtype():
    case = CASES_BY_ID["mlp"]
    model, x, y = make(case)
    obj64 = Objective(model, x, y)
    obj32 = Objective(model.float(), x.float(), y)
    assert obj32.dtype == torch.float32 and obj32.theta.dtype == torch.float32
    V = random_block(obj64.spec.P, 2)
    assert_close(obj32.hvp(obj32.theta, V.float()), obj64.hvp(obj64.theta, V), FLOAT32_RTOL, "float32 HVP")
    assert obj32.loss(obj64.theta).dtype == torch.float64  # computed in float32, returned in θ's dtype
    cast = Objective(model, x.float(), y, dtype=torch.float64)
    same = Objective(model.double(), x.float().double(), y)
    assert cast.theta.dtype == torch.float64
    assert torch.equal(cast.hvp(cast.theta, V), same.hvp(same.theta, V))


@plumbing
def test_fake_all_reduce_over_two_shards_gives_the_global_mean(case):
    full, (model, x, y) = objective(case)
    half, partner = x.shape[0] // 2, {}

    def record(t):  # the "other process": keeps its partial sums
        partner["t"] = t.clone()
        return t

    B = Objective(model, x[half:], y[half:], loss=case.loss, batch_size=16, all_reduce=record)
    A = Objective(model, x[:half], y[:half], loss=case.loss, batch_size=5, all_reduce=lambda t: t + partner["t"])
    theta, V = full.theta, random_block(full.spec.P, 2)
    for name, call in [("loss", lambda o: o.loss(theta)), ("grad", lambda o: o.grad(theta)),
                       ("hvp", lambda o: o.hvp(theta, V)), ("ggnvp", lambda o: o.ggnvp(theta, V)),
                       ("losses_at", lambda o: o.losses_at(V + theta)[0])]:
        call(B)
        assert_close(call(A), call(full), SAME_MATH_RTOL, f"all-reduced {name}")


@plumbing
def test_subset_equals_an_objective_on_those_examples(case):
    obj, (model, x, y) = objective(case)
    idx = torch.tensor([3, 0, 17, 5, 11, 2])
    sub, direct = obj.subset(idx), Objective(model, x[idx], y[idx], loss=case.loss, batch_size=4)
    assert sub.num_examples == 6 and obj.num_examples == x.shape[0]
    V = random_block(obj.spec.P, 2)
    assert_close(sub.hvp(obj.theta, V), direct.hvp(obj.theta, V), SAME_MATH_RTOL, "subset HVP")
    assert_close(sub.per_example_losses(obj.theta), direct.per_example_losses(obj.theta), SAME_MATH_RTOL, "ℓ_i")
    assert_close(sub.subset([1, 2]).loss(obj.theta), Objective(model, x[[0, 17]], y[[0, 17]], loss=case.loss)
                 .loss(obj.theta), SAME_MATH_RTOL, "subset of a subset")


SYNC_METHODS = ("item", "__bool__", "__int__", "__float__", "__index__", "tolist", "nonzero", "numpy", "cpu")


def count_host_syncs(monkeypatch, call):
    """How often ``call()`` reads a tensor's value on the host (the calls that sync a GPU)."""
    counts = {"n": 0}
    for name in SYNC_METHODS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            counts["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    call()
    monkeypatch.undo()
    return counts["n"]


@pytest.mark.parametrize("method", ["loss", "grad", "hvp", "ggnvp", "per_example_projections",
                                    "per_example_grad_norms", "losses_at"])
def test_host_syncs_do_not_grow_with_the_number_of_batches(monkeypatch, method):
    """No per-batch .item()/bool(): 1 batch and 9 batches read the same number of values."""
    model, x, y = make(CASES_BY_ID["cnn_bn_eval"])
    counts = []
    for batch_size in (33, 4):
        obj = Objective(model, x, y, batch_size=batch_size)
        V = random_block(obj.spec.P, 2)
        args = {"loss": (obj.theta,), "grad": (obj.theta,), "hvp": (obj.theta, V), "ggnvp": (obj.theta, V),
                "per_example_projections": (obj.theta, V), "per_example_grad_norms": (obj.theta,),
                "losses_at": (obj.theta + V,)}[method]
        counts.append(count_host_syncs(monkeypatch, lambda: getattr(obj, method)(*args)))
    assert counts[0] == counts[1] <= MAX_HOST_SYNCS, f"host syncs with 1 batch vs 9 batches: {counts}"


@pytest.mark.gpu
def test_on_cuda_hvps_match_the_cpu_and_repeat_bitwise():
    """float64 on the GPU agrees with the CPU; the same v twice gives the same bits (reliability.md §4.3)."""
    case = CASES_BY_ID["cnn_bn_eval"]
    model, x, y = make(case)
    cpu, gpu = Objective(model, x, y, batch_size=8), Objective(model, x, y, batch_size=8, device="cuda")
    V = random_block(cpu.spec.P, 3)
    deterministic = torch.backends.cudnn.deterministic
    torch.backends.cudnn.deterministic = True
    try:
        first, second = gpu.hvp(gpu.theta.cuda(), V.cuda()), gpu.hvp(gpu.theta.cuda(), V.cuda())
    finally:
        torch.backends.cudnn.deterministic = deterministic
    assert first.device.type == "cuda" and torch.equal(first, second)
    assert_close(first.cpu(), cpu.hvp(cpu.theta, V), ORACLE_RTOL, "GPU vs CPU HVP")


def test_per_example_losses_at_matches_loops():
    """Rows of per_example_losses_at equal per_example_losses at each θ; correctness averages to accuracy."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)).double()
    x, y = torch.randn(23, 5, dtype=torch.float64), torch.randint(0, 3, (23,))
    obj = Objective(model, x, y, batch_size=6)
    thetas = obj.theta + 0.3 * torch.randn(4, obj.spec.numel, dtype=torch.float64)
    losses, correct = obj.per_example_losses_at(thetas, chunk_size=3)
    assert losses.shape == correct.shape == (4, 23)
    for i, th in enumerate(thetas):
        torch.testing.assert_close(losses[i], obj.per_example_losses(th), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(correct[i].mean(), obj.loss_and_accuracy(th)[1], rtol=1e-12, atol=1e-14)
