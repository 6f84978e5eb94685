"""The Recorder: a user's own loop (model in a file outside the project) written as a run file.

What it writes is the trainer's format (every reader takes it), replays of unsaved steps equal
the loop's θ, a SIGKILL leaves a readable file that resumes to the uninterrupted result, and bad
calls are one clear error with nothing already committed lost.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from recorder_loop import BATCH, batch, loop, make, train_step
from trainer_helpers import kill_when_paused
from user_code import write_user_module

from analyses.cli import main
from analyses.cli.info import format_info, run_info
from checkpoints import Recorder, open_run
from landscape.errors import ConfigMismatchError, InputError
from landscape.io import RunFile

HERE = os.path.dirname(os.path.abspath(__file__))
CHILD_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def recorded(user_dir, tmp_path_factory):
    """30 steps of SGD with momentum, snapshots every 10, and θ_t of every step as the loop saw it."""
    out, thetas = tmp_path_factory.mktemp("rec") / "run.h5", {}
    loop(out, 30, thetas=thetas)
    return out, thetas


def test_the_run_file_holds_the_loop(recorded):
    out, thetas = recorded
    _, _, data = make()
    with RunFile(out) as f:
        assert f.status == "complete" and f.num_steps == 30 and f.saved_steps.tolist() == [0, 10, 20, 30]
        for s in (0, 10, 30):
            assert np.array_equal(f.params(s), thetas[s].numpy())
        assert f.model_name == "mynets:Net" and f.meta["source"] == "recorder"
        assert f.meta["optimizer"]["class"] == "torch.optim.sgd.SGD" and f.config["momentum"] == 0.9
        assert f.batch_indices(3).tolist() == batch(3, data.num_train).tolist()
        assert f.step_metrics()["lr"].tolist() == [0.05] * 30
        assert f.momentum(10).any() and f.B == 2 * 16 + 1  # BN running mean, var and the counter
    info = format_info(run_info(out))
    assert "written by a Recorder" in info and "torch.optim.sgd.SGD" in info


def test_unsaved_steps_replay_to_the_loops_parameters(recorded):
    out, thetas = recorded
    with open_run(out) as run:
        assert run.replay == {"possible": True, "exact": False, "why": ""}
        for t in (13, 17, 25):  # checked against the snapshot that ends each interval, then bitwise
            assert torch.equal(run.theta(t), thetas[t]), t


def test_adamw_loop_replays_too(user_dir, tmp_path):
    out, thetas = tmp_path / "adamw.h5", {}
    loop(out, 20, optimizer="adamw", thetas=thetas)
    with open_run(out) as run:
        assert run.config.optimizer == "adamw" and run.file.has_vector("second_moment", 10)
        assert torch.equal(run.theta(15), thetas[15])


def test_every_analysis_command_reads_the_recorded_run(recorded, tmp_path, capsys):
    out, _ = recorded
    res = str(tmp_path / "res.h5")
    for argv in (["hessian", str(out), "--steps", "30", "--k", "2", "--density", "2", "10", "--trace", "10"],
                 ["linesearch", str(out), "--eigen", res, "--steps", "30", "--directions", "top:1", "--num-t", "9"],
                 ["sharpness", str(out), "--steps", "30", "--radii", "0.01", "--kinds", "gaussian",
                  "--directions", "2", "--worst", "none", "--no-curvature"],
                 ["surface", str(out), "--steps", "30", "--grid", "3", "--directions", "filter,step:15"]):
        assert main([*argv, "--out", res, "--device", "cpu"]) == 0, capsys.readouterr().err
    assert main(["plot", res, str(out), "--out", str(tmp_path / "figs")]) == 0
    assert main(["report", str(out), res, "--out", str(tmp_path / "report")]) == 0
    assert (tmp_path / "figs" / "training_curves.png").exists() and (tmp_path / "report" / "report.html").exists()


@pytest.mark.parametrize("call,message", [
    (dict(indices=[0, 1, 2, 96] + list(range(4, BATCH))), r"must lie in \[0, 96\).*got \[0, 96\]"),
    (dict(indices=list(range(BATCH)), step=5), "step=5.*expects step 3"),
    (dict(indices=list(range(BATCH - 1))), "15 indices but the run logs 16 per step.*drop_last"),
    (dict(indices=list(range(BATCH)), skip_optimizer=True), "saw 0 optimizer steps"),
], ids=["out-of-range", "out-of-order", "short-batch", "no-optimizer-step"])
def test_bad_calls_are_clear_and_keep_what_was_written(user_dir, tmp_path, call, message):
    out = tmp_path / "bad.h5"
    model, opt, data = make()
    with pytest.raises(InputError, match=message) as err:
        with Recorder(out, model, opt, dataset=data, batch_size=BATCH, save_every=2) as rec:
            for t in range(3):
                idx, loss = train_step(model, opt, data, t)
                rec.step(idx, loss=loss)
            if not call.pop("skip_optimizer", False):
                train_step(model, opt, data, 3)
            rec.step(call.pop("indices"), loss=1.0, **call)
    assert "\n" not in str(err.value)
    with RunFile(out) as f:  # what was logged before the bad call is there, the file says why it stopped
        assert f.saved_steps.tolist() == [0, 2] and f.num_steps == 3 and f.status == "stopped"
        assert "InputError" in f.status_message


def test_models_that_cannot_be_rebuilt_are_refused_up_front(user_dir, tmp_path):
    class Local(torch.nn.Module):  # defined inside a function: analyses could not import it
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(12, 3)

    _, _, data = make()
    with pytest.raises(InputError, match="inside a function.*model_spec="):
        Recorder(tmp_path / "x.h5", Local(), None, dataset=data)
    import mynets

    with pytest.raises(InputError, match="'mynets:Net' with .* does not rebuild it.*P = 291 now vs 147"):
        Recorder(tmp_path / "x.h5", mynets.Net(width=8), None, dataset=data)
    assert not (tmp_path / "x.h5").exists()


def test_a_run_without_batch_log_refuses_what_needs_one(user_dir, tmp_path, capsys):
    out = tmp_path / "nolog.h5"
    model, opt, data = make()
    with Recorder(out, model, opt, dataset=data, batch_log=False, save_every=5) as rec:
        for t in range(10):
            _, loss = train_step(model, opt, data, t)
            rec.step(None, loss=loss)
    with open_run(out) as run:
        assert torch.equal(run.theta(5), torch.from_numpy(run.file.params(5)))  # saved steps: as always
        with pytest.raises(InputError, match="step 7 is not saved .* cannot be replayed: the steps were logged "
                                             "without batch indices; choose a saved step"):
            run.theta(7)
    rc = main(["surface", str(out), "--steps", "10", "--grid", "3", "--directions", "filter,step:7",
               "--out", str(tmp_path / "res.h5"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc != 0 and len([line for line in err.splitlines() if line.startswith("landscape ")]) == 1
    assert "without batch indices" in err and "Traceback" not in err


def test_loops_the_toolkit_cannot_replay_are_refused_with_the_reason(user_dir, tmp_path):
    model, _, data = make()
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    out = tmp_path / "rms.h5"
    with Recorder(out, model, opt, dataset=data, batch_size=BATCH, save_every=5) as rec:
        for t in range(6):
            idx, loss = train_step(model, opt, data, t)
            rec.step(idx, loss=loss)
    with open_run(out) as run:
        assert run.config.optimizer == "other" and "RMSprop" in run.file.meta["optimizer"]["class"]
        with pytest.raises(InputError, match="does not implement torch.optim.rmsprop.RMSprop"):
            run.theta(3)


def test_a_loop_that_differs_from_its_log_is_caught_by_the_replay_check(user_dir, tmp_path):
    """Gradient clipping the recorder was not told about: the replay misses the next snapshot."""
    model, opt, data = make()
    out = tmp_path / "clip.h5"
    with Recorder(out, model, opt, dataset=data, batch_size=BATCH, save_every=5) as rec:
        for t in range(10):
            idx = torch.randperm(data.num_train, generator=torch.Generator().manual_seed(t))[:BATCH]
            loss = torch.nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1e-3)
            opt.step()
            rec.step(idx, loss=loss)
    with open_run(out) as run, pytest.raises(ConfigMismatchError, match="does not reproduce its snapshot at step 5"):
        run.theta(3)


def _child(user_dir, out, steps, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, os.path.join(HERE, "recorder_loop.py"), str(user_dir), str(out),
                             str(steps), *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_leaves_a_readable_file_that_resumes_to_the_same_run(user_dir, recorded, tmp_path):
    ref, _ = recorded
    out = tmp_path / "killed.h5"
    proc = _child(user_dir, out, 30, "--pause-after", "17")
    kill_when_paused(proc, CHILD_TIMEOUT_S)
    with RunFile(out) as f:  # what was committed before the kill is there
        assert f.status == "running" and f.saved_steps.tolist() == [0, 10]
    assert main(["info", str(out)]) == 0
    done = _child(user_dir, out, 30, "--resume")
    _, err = done.communicate(timeout=CHILD_TIMEOUT_S)
    assert done.returncode == 0, err[-2000:]
    with RunFile(ref) as a, RunFile(out) as b:
        assert b.status == "complete" and b.saved_steps.tolist() == [0, 10, 20, 30]
        for s in (20, 30):
            assert np.array_equal(a.params(s), b.params(s)) and np.array_equal(a.momentum(s), b.momentum(s))
        assert np.array_equal(a.batch_indices_range(0, 30), b.batch_indices_range(0, 30))
        assert np.array_equal(a.step_metrics()["loss"], b.step_metrics()["loss"])


def test_a_model_that_can_no_longer_be_rebuilt_is_one_line_naming_its_file(tmp_path, monkeypatch):
    """The module is gone, or its factory now builds another network: open_run says which and where."""
    write_user_module(tmp_path, "gonenets")
    monkeypatch.syspath_prepend(str(tmp_path))
    import landscape as ls

    model = ls.build_model("gonenets:Net", seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = ls.load_dataset("gonenets:blobs")
    with Recorder(tmp_path / "run.h5", model, opt, dataset=data, batch_size=BATCH) as rec:
        idx = torch.arange(BATCH)
        loss = torch.nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        loss.backward()
        opt.step()
        rec.step(idx, loss=loss)
    source = tmp_path / "gonenets.py"
    source.write_text(source.read_text().replace("self.fc2 = nn.Linear(width, num_classes)",
                                                 "self.fc2 = nn.Linear(width, num_classes + 1)"))  # it changed
    sys.modules.pop("gonenets")
    with pytest.raises(ConfigMismatchError, match=f"'gonenets:Net' .*loaded from {source}.*P = 308 now vs 291"):
        open_run(tmp_path / "run.h5")
    source.unlink()                                                          # the module is gone
    sys.modules.pop("gonenets")
    with pytest.raises(InputError, match=f"loaded from {source} when the run was written.*cannot import module "
                                         "'gonenets'"):
        open_run(tmp_path / "run.h5")


def test_an_unrecorded_last_optimizer_step_gets_no_mislabelled_snapshot(user_dir, tmp_path):
    model, opt, data = make()
    out = tmp_path / "late.h5"
    with Recorder(out, model, opt, dataset=data, batch_size=BATCH, save_every=0) as rec:
        for t in range(3):
            idx, loss = train_step(model, opt, data, t)
            rec.step(idx, loss=loss)
        train_step(model, opt, data, 3)  # the loop stepped once more without telling the recorder
    with RunFile(out) as f:
        assert f.saved_steps.tolist() == [0] and f.num_steps == 3 and f.status == "complete"
        assert "1 optimizer step(s) after step 3 were not recorded" in f.status_message
