"""The trainer in-process: what the run file holds, bitwise replay, resume, siblings, failures."""

import errno

import numpy as np
import pytest
import torch
from trainer_helpers import assert_runs_equal, run_arrays

from checkpoints import open_run, resume, train
from checkpoints.batches import SGDPlan
from checkpoints.schedules import make_schedule
from landscape.errors import ConfigMismatchError, NonFiniteError, OutputExistsError
from landscape.io import RunFile


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """One tiny run with snapshots every 10 steps plus step 17, shared by the read-only tests."""
    from trainer_helpers import TINY

    from checkpoints import TrainConfig

    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("base") / "run.h5"
    result = train(TrainConfig(**{**TINY, "save_steps": (17,)}), path, progress=False)
    return path, result


def test_run_file_holds_the_plan_schedule_and_snapshots(base_run):
    path, result = base_run
    assert result.status == "complete" and result.step == 30
    with RunFile(path) as f:
        cfg = f.config
        assert f.status == "complete" and f.num_steps == 30
        assert f.saved_steps.tolist() == [0, 10, 17, 20, 30]
        plan = SGDPlan(96, 16, seed=cfg["seed"])
        logged = f.batch_indices_range(0, 30)
        assert all(np.array_equal(logged[t], plan.indices(t).numpy()) for t in range(30))
        assert f.aug_seeds(0, 30).tolist() == [plan.aug_seed(t) for t in range(30)]
        from checkpoints import TrainConfig
        schedule = make_schedule(TrainConfig.from_dict(cfg))
        assert f.step_metrics()["lr"].tolist() == [schedule(t) for t in range(30)]
        assert f.eval_metrics()["step"].tolist() == [0, 10, 20, 30]
        assert np.isfinite(f.step_metrics()["loss"]).all()


@pytest.mark.parametrize("start,target", [(10, 17), (10, 20), (17, 30)])
def test_replay_is_bitwise(base_run, start, target):
    """θ, momentum and BN buffers rebuilt by replay equal the snapshot the trainer saved."""
    path, _ = base_run
    with open_run(path) as run:
        state = run._replay(run.snapshot_state(start), target)
        for name, got, want in (("params", state.theta.numpy(), run.file.params(target)),
                                ("momentum", state.momentum.numpy(), run.file.momentum(target)),
                                ("buffers", state.flat_buffers(run.stepper.model).numpy().astype(np.float32),
                                 run.file.buffers(target))):
            assert np.array_equal(got, want), f"{name} at {target} from {start}: max |Δ| {np.abs(got - want).max()}"


def test_open_run_api(base_run):
    path, _ = base_run
    with open_run(path) as run:
        assert run.saved_steps.tolist() == [0, 10, 17, 20, 30]
        assert torch.equal(run.theta(17), torch.from_numpy(run.file.params(17)))
        t15 = run.theta(15)  # replayed from 10
        assert torch.equal(run.theta(17), run._replay(run.state(15), 17).theta)
        obj = run.objective(15, subset=32, bn="eval")
        assert torch.equal(obj.theta, t15)
        assert np.isfinite(float(obj.loss(obj.theta)))
        model = run.model_at(30)
        assert not model.training
        # Objective options pass through: a per-layer Hessian in float64 at a replayed step.
        names = [n for n, _ in model.named_parameters()]
        last = names[-1].rsplit(".", 1)[0] + ".*"
        sub = run.objective(15, subset=32, params=[last], dtype=torch.float64)
        assert sub.theta.dtype == torch.float64
        want = sum(p.numel() for n, p in model.named_parameters() if n.startswith(last[:-1]))
        assert sub.theta.numel() == want < obj.theta.numel()


def test_extending_a_run_equals_training_it_at_once(tiny, tmp_path):
    """A 20-step run resumed to 30 steps (the resume path) ends bitwise as a 30-step run."""
    torch.manual_seed(0)
    rng = torch.get_rng_state()
    train(tiny(), tmp_path / "once.h5", progress=False)
    assert torch.equal(rng, torch.get_rng_state()), "training consumed the global RNG"
    train(tiny(steps=20), tmp_path / "twice.h5", progress=False)
    result = resume(tmp_path / "twice.h5", steps=30, progress=False)
    assert result.status == "complete" and result.step == 30
    assert_runs_equal(tmp_path / "once.h5", tmp_path / "twice.h5")


def test_existing_output_is_refused_and_untouched(tiny, tmp_path):
    out = tmp_path / "run.h5"
    out.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="pass --resume to continue it or --overwrite"):
        train(tiny(), out, progress=False)
    assert out.read_bytes() == b"precious"


def test_resume_with_another_config_is_refused(tiny, base_run):
    path, _ = base_run
    before = path.read_bytes()
    with pytest.raises(ConfigMismatchError, match="lr"):
        resume(path, config=tiny(lr=0.2, save_steps=(17,)), progress=False)
    assert path.read_bytes() == before, "a refused resume must not touch the file"


def test_divergence_stops_names_the_step_and_keeps_a_readable_file(tiny, tmp_path):
    out = tmp_path / "div.h5"
    with pytest.raises(NonFiniteError, match=r"at step \d+") as info:
        train(tiny(lr=1e6, momentum=0.0, steps=200, save_every=5), out, progress=False)
    with RunFile(out) as f:
        assert f.status == "diverged" and "step" in f.status_message
        losses = f.step_metrics()["loss"]
        assert f.num_steps < 200 and np.isfinite(losses).all()
        bad_step = f.num_steps
        assert f"at step {bad_step}" in str(info.value) or "after update" in str(info.value)
        assert all(np.isfinite(f.params(s)).all() for s in f.saved_steps)
    with pytest.raises(NonFiniteError, match="diverged"):
        resume(out, progress=False)


def test_full_disk_is_a_clear_error(tiny, tmp_path, monkeypatch):
    from checkpoints import DiskFullError
    from landscape.io import RunWriter

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(RunWriter, "append_snapshot", full)
    with pytest.raises(DiskFullError, match="no space left .* --resume"):
        train(tiny(), tmp_path / "full.h5", progress=False)


def test_sibling_shares_init_and_batches(tiny, base_run, tmp_path):
    parent, _ = base_run
    sib = tmp_path / "sibling.h5"
    cfg = tiny(lr=0.01, schedule="constant", seed=7, init_from=str(parent), batches_from=str(parent))
    train(cfg, sib, progress=False)
    P, S = run_arrays(parent), run_arrays(sib)
    assert np.array_equal(P["params"][0], S["params"][0]), "step-0 parameters differ"
    assert np.array_equal(P["buffers"][0], S["buffers"][0])
    assert np.array_equal(P["batches"], S["batches"]) and np.array_equal(P["aug_seeds"], S["aug_seeds"])
    assert not np.array_equal(P["params"][-1], S["params"][-1]), "another lr must give another trajectory"
    with RunFile(sib) as f:
        assert f.meta["parents"]["init_from"]["run_sha256"] == RunFile(parent).file_sha256


@pytest.mark.parametrize("changes,msg", [
    (dict(model_kwargs={"width": 0.5}), "model"),
    (dict(dataset_kwargs={"num_train": 96, "num_test": 32, "input_shape": [3, 8, 8], "seed": 1}), "data"),
    (dict(batch_size=8), "batch size"),
], ids=["model", "data", "batch-size"])
def test_sibling_of_another_model_or_data_is_refused(tiny, base_run, tmp_path, changes, msg):
    parent, _ = base_run
    cfg = tiny(init_from=str(parent), batches_from=str(parent), **changes)
    with pytest.raises(ConfigMismatchError, match=msg):
        train(cfg, tmp_path / "bad.h5", progress=False)
    assert not (tmp_path / "bad.h5").exists()


@pytest.mark.gpu
def test_replay_is_bitwise_on_cuda_with_deterministic_algorithms(tiny, tmp_path):
    """R5 on the GPU: deterministic algorithms on, replay from a snapshot equals the saved step."""
    out = tmp_path / "gpu.h5"
    train(tiny(device="cuda", deterministic=True), out, progress=False)
    with open_run(out, device="cuda") as run:
        state = run._replay(run.snapshot_state(10), 20)
        got, want = state.theta.cpu().numpy(), run.file.params(20)
        assert np.array_equal(got, want), f"max |Δθ| {np.abs(got - want).max()}"


def test_tampered_batch_log_refuses_to_resume(tiny, tmp_path):
    """R6: the logged batches before the resume point must equal the regenerated plan."""
    import h5py

    from landscape.errors import CheckpointCorruptError

    out = tmp_path / "run.h5"
    train(tiny(steps=20), out, progress=False)
    with h5py.File(out, "r+") as f:
        idx = f["steps/batch_indices"]
        idx[5, 0] = (int(idx[5, 0]) + 1) % 96
    with pytest.raises(CheckpointCorruptError, match="batch logged at step 5"):
        resume(out, steps=30, progress=False)
