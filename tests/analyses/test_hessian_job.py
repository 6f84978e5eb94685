"""`landscape hessian`: items against a dense float64 oracle, resume, warm start, faults, figures."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from analyses import hessian as hj
from analyses.cli import main
from landscape.errors import InputError
from landscape.io import ResultsFile, RunFile

# eigsh certifies ‖Hv − λv‖ ≤ tol·‖H‖ with tol = 1e-10 in float64, and an eigenvalue lies
# within its residual of λ; relative to ‖H‖ (= |λ_max|) that is 1e-10. Allow 100× for the
# dense oracle's own rounding (‖H − Hᵀ‖ ~ 1e-16·‖H‖, P = 622).
EIG_VS_DENSE_RTOL = 1e-8
# Our dense Hessian vs. torch.func.hessian of the same loss, both float64: rounding only.
DENSE_VS_ORACLE_ATOL = 1e-12
# Hutch++ is unbiased; its error is Gaussian-like with the reported standard error.
TRACE_SIGMAS = 5
# Ritz values (SLQ nodes) lie inside [λ_min, λ_max] up to Lanczos rounding in float64.
NODE_SLACK_REL = 1e-8

OPTS = ["--k", "3", "--tol", "1e-10", "--dtype", "float64", "--subset", "64", "--device", "cpu"]


def hessian(run, out, *extra) -> int:
    return main(["hessian", str(run), "--out", str(out), *extra])


@pytest.fixture(scope="module")
def computed(tiny_run, tmp_path_factory):
    """eigen, density and trace at steps 10, 20, 30 of the tiny run, from the CLI."""
    out = tmp_path_factory.mktemp("hessian") / "res.h5"
    rc = hessian(tiny_run.path, out, "--steps", "10:30", *OPTS, "--density", "4", "30", "--trace", "60")
    assert rc == 0
    return out


def oracle_hessian(run_path, step: int, indices: np.ndarray) -> np.ndarray:
    """torch.func.hessian of the mean cross-entropy over ``indices`` at θ_step (float64)."""
    from checkpoints.replay import open_run
    from landscape.params import ParamSpec

    with open_run(run_path) as run:
        model = run.model_at(step).double()
        x = run.dataset.x_train[indices].double()
        y = run.stepper.y_train[indices]
    spec = ParamSpec.from_module(model)
    theta = spec.theta_of(model)

    def loss(t):
        out = torch.func.functional_call(model, spec.unflatten(t), (x,))
        return torch.nn.functional.cross_entropy(out, y)

    return torch.func.hessian(loss)(theta).numpy()


def test_items_hold_arrays_config_and_provenance(computed, tiny_run):
    with ResultsFile(computed, "r") as r, RunFile(tiny_run.path) as run:
        assert r.keys() == [f"hessian/step_{s:08d}/{q}" for s in (10, 20, 30) for q in ("density", "eigen", "trace")]
        e, attrs = r.read_item("hessian/step_00000020/eigen")
        assert e["eigenvectors"].shape == (3, 622) and e["eigenvalues"].shape == e["residuals"].shape == (3,)
        assert e["num_matvecs"] > 0 and e["converged"] == 1 and len(e["subset_indices"]) == 64
        assert attrs["param_sha256"] == run.param_sha256(20) and attrs["step"] == 20
        assert attrs["source"] == {"run": str(tiny_run.path), "run_sha256": run.file_sha256}
        cfg = attrs["config"]
        assert (cfg["bn"], cfg["subset"], cfg["params"], cfg["dtype"], cfg["seed"], cfg["tol"], cfg["which"]) == \
            ("eval", 64, None, "float64", 0, 1e-10, "LA")
        assert attrs["provenance"]["device"] == "cpu" and "torch" in attrs["provenance"]["versions"]
        assert attrs["wall_time_s"] > 0
        d = r.read_item("hessian/step_00000020/density")[0]
        assert d["nodes"].shape == d["weights"].shape == (4, 30)
        assert np.allclose(d["weights"].sum(axis=1), 1.0)
        t, tattrs = r.read_item("hessian/step_00000020/trace")
        assert t["stderr"] > 0 and t["samples"].ndim == 1 and tattrs["method"] == "hutch++"


def test_rerun_skips_finished_items(computed, tiny_run, capsys):
    with ResultsFile(computed, "r") as r:
        before = r.read_item("hessian/step_00000030/eigen")[1]["provenance"]["time"]
    assert hessian(tiny_run.path, computed, "--steps", "10:30", *OPTS, "--density", "4", "30", "--trace", "60") == 0
    assert "0 item(s) computed, 9 already complete" in capsys.readouterr().out
    with ResultsFile(computed, "r") as r:
        assert r.read_item("hessian/step_00000030/eigen")[1]["provenance"]["time"] == before


def test_each_step_warm_starts_from_the_previous_one(computed):
    with ResultsFile(computed, "r") as r:
        got = [r.read_item(f"hessian/step_{s:08d}/eigen")[1]["warm_start_step"] for s in (10, 20, 30)]
    assert got == [-1, 10, 20]


def test_eigenpairs_trace_density_agree_with_the_dense_hessian(tiny_run, tmp_path):
    out = tmp_path / "res.h5"
    assert hessian(tiny_run.path, out, "--steps", "last", *OPTS, "--which", "BE", "--k", "4", "--dense",
                   "--dense-block", "200", "--trace", "200", "--density", "2", "40") == 0
    with ResultsFile(out, "r") as r:
        dense, dattrs = r.read_item("hessian/step_00000030/dense")
        eig = r.read_item("hessian/step_00000030/eigen")[0]
        tr = r.read_item("hessian/step_00000030/trace")[0]
        nodes = r.read_item("hessian/step_00000030/density")[0]["nodes"]
    H = oracle_hessian(tiny_run.path, 30, eig["subset_indices"])
    gap = np.abs(dense["hessian"] - H).max()
    assert gap <= DENSE_VS_ORACLE_ATOL, f"dense Hessian differs from torch.func.hessian by {gap:.3g}"
    lam = dense["eigenvalues"]
    assert np.allclose(lam, np.linalg.eigvalsh((H + H.T) / 2), rtol=0, atol=DENSE_VS_ORACLE_ATOL * 622)
    want = np.sort(np.concatenate([lam[:2], lam[-2:]]))
    err = np.abs(np.sort(eig["eigenvalues"]) - want).max() / np.abs(lam).max()
    assert err <= EIG_VS_DENSE_RTOL, f"eigsh vs dense eigvalsh: relative error {err:.3g}"
    assert abs(tr["value"] - lam.sum()) <= TRACE_SIGMAS * tr["stderr"], (tr["value"], lam.sum(), tr["stderr"])
    slack = NODE_SLACK_REL * np.abs(lam).max()
    assert nodes.min() >= lam[0] - slack and nodes.max() <= lam[-1] + slack
    assert dense["asymmetry"] < 1e-12 and dattrs["blocks_resumed"] == 0


def test_killed_dense_job_resumes_from_its_finished_blocks(tiny_run, tmp_path, monkeypatch):
    args = ["--steps", "last", "--k", "0", "--dense", "--dense-block", "100", "--dtype", "float64",
            "--subset", "32", "--device", "cpu"]
    ref = tmp_path / "ref.h5"
    assert hessian(tiny_run.path, ref, *args) == 0
    real, calls = hj.dense_rows, []

    def dies_after_two_blocks(*a, **kw):
        if len(calls) == 2:
            raise KeyboardInterrupt  # what SIGINT does; SIGKILL is tested in test_sigkill_...
        calls.append(1)
        return real(*a, **kw)

    out = tmp_path / "res.h5"
    monkeypatch.setattr(hj, "dense_rows", dies_after_two_blocks)
    assert hessian(tiny_run.path, out, *args) == 130
    monkeypatch.setattr(hj, "dense_rows", real)
    with ResultsFile(out, "r") as r:
        assert r.keys() == []  # the item is not complete, but its two blocks are kept
    assert hessian(tiny_run.path, out, *args) == 0
    with ResultsFile(out, "r") as r, ResultsFile(ref, "r") as want:
        got, attrs = r.read_item("hessian/step_00000030/dense")
        assert attrs["blocks_resumed"] == 2
        assert np.array_equal(got["hessian"], want.read_item("hessian/step_00000030/dense")[0]["hessian"])


ERROR_CASES = [
    dict(id="step-not-saved", args=["--steps", "15"], code=2, say=["step 15 is not saved", "0, 10, 20, 30"]),
    dict(id="k-at-least-P", args=["--params", "net.2.bias", "--k", "10"], code=2, say=["P = 10", "--dense"]),
    dict(id="dense-too-large", args=["--dense", "--dense-max-params", "100"], code=2,
         say=["P = 622", "3.0 MiB", "622 HVPs", "--params"]),
    dict(id="bad-density", args=["--density", "1", "2", "3"], code=2, say=["PROBES and ITERS"]),
    dict(id="bad-trace", args=["--trace", "lots"], code=2, say=["MATVECS"]),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c["id"] for c in ERROR_CASES])
def test_bad_input_is_one_clear_line(case, tiny_run, tmp_path, capsys):
    out = tmp_path / "res.h5"
    assert hessian(tiny_run.path, out, "--device", "cpu", "--steps", "last", *case["args"]) == case["code"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for text in case["say"]:
        assert text in err, f"{text!r} not in {err!r}"


def test_damaged_run_files_are_refused(tiny_run, tmp_path, capsys):
    cut = tmp_path / "cut.h5"
    data = tiny_run.path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an HDF5 file" * 100)
    for bad in (cut, junk, tmp_path / "missing.h5"):
        assert hessian(bad, tmp_path / "res.h5", "--device", "cpu") in (2, 4)
        err = capsys.readouterr().err
        assert str(bad) in err and "Traceback" not in err, err
    assert not (tmp_path / "res.h5").exists()


def test_results_of_another_run_or_other_options_are_refused(computed, tiny_run, tmp_path, capsys):
    other = tmp_path / "other.h5"
    ResultsFile(other, "a", run_id={"path": "elsewhere.h5", "run_sha256": "f" * 64}).close()
    assert hessian(tiny_run.path, other, "--device", "cpu") == 2
    assert "belongs to run elsewhere.h5" in capsys.readouterr().err
    assert hessian(tiny_run.path, computed, "--steps", "last", *OPTS, "--k", "5") == 2
    assert "k: stored 3, asked 5" in capsys.readouterr().err


def test_non_finite_hvp_stops_with_code_3_and_keeps_finished_items(tiny_run, tmp_path, monkeypatch, capsys):
    from landscape import _kernels

    out = tmp_path / "res.h5"
    assert hessian(tiny_run.path, out, "--steps", "10", *OPTS) == 0
    real = _kernels.hvp_sum
    monkeypatch.setattr(_kernels, "hvp_sum", lambda *a, **kw: real(*a, **kw) * float("nan"))
    assert hessian(tiny_run.path, out, "--steps", "10,20", *OPTS) == 3
    err = capsys.readouterr().err
    assert "step 20, eigen" in err and "not finite" in err and str(out) in err
    with ResultsFile(out, "r") as r:
        assert r.keys() == ["hessian/step_00000010/eigen"]


def test_bn_mode_is_explicit_and_stored(tiny_bn_run, tmp_path):
    vals = {}
    for bn in ("eval", "train"):
        out = tmp_path / f"{bn}.h5"
        assert hessian(tiny_bn_run.path, out, "--steps", "last", "--k", "1", "--bn", bn, "--subset", "64",
                       "--device", "cpu", "--dtype", "float64", "--tol", "1e-8") == 0
        with ResultsFile(out, "r") as r:
            e, attrs = r.read_item("hessian/step_00000020/eigen")
        assert attrs["config"]["bn"] == bn
        vals[bn] = e["eigenvalues"][0]
    assert vals["eval"] != pytest.approx(vals["train"], rel=1e-3), vals


def test_dense_guard_reports_size():
    size = hj.dense_size(1_000_000, 64)
    assert "P = 1,000,000" in size.describe() and "7.3 TiB" in size.describe() and "1,000,000 HVPs" in size.describe()
    with pytest.raises(InputError, match="--dense-max-params"):
        hj.check_dense_size(20_000, hj.HessianJobConfig(dense=True))


def test_figures_render_from_the_stored_items(computed, tmp_path):
    from analyses.plots import all_figures
    from analyses.plots.style import save

    figures = all_figures()
    with ResultsFile(computed, "r") as r:
        for name in ("hessian_density", "hessian_eigenvalues", "hessian_trace"):
            made = figures[name].draw(r, None)
            assert len(made) == 1
            paths = save(made[0][1], tmp_path, name)
            assert all(p.stat().st_size > 1000 for p in paths)


def test_gaussian_density_integrates_to_one():
    from analyses.plots.spectrum import gaussian_density

    nodes, weights = np.array([[0.0, 1.0, 3.0]]), np.array([[0.2, 0.3, 0.5]])
    grid = np.linspace(-2, 5, 4001)
    dens = gaussian_density(nodes, weights, grid, sigma=0.1)
    assert np.trapezoid(dens[0], grid) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.slow
def test_sigkill_mid_job_then_rerun_completes_without_recomputing(tiny_run, tmp_path):
    """A real SIGKILL while a dense Hessian is half written; the same command then finishes the job."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "res.h5"
    args = ["--steps", "20,30", "--k", "2", "--dense", "--dense-block", "16", "--dtype", "float64",
            "--subset", "120", "--batch-size", "8", "--device", "cpu"]
    cmd = [sys.executable, "-m", "landscape", "hessian", str(tiny_run.path), "--out", str(out), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    key, done = "hessian/step_00000030/dense", 0
    deadline = time.time() + 600
    while done < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            with ResultsFile(out, "r") as r:
                done = int(r.blocks_done(key, "hessian").sum()) if "hessian/step_00000030/eigen" in r.keys() else 0
        except Exception:  # not created yet, or the dense item not begun
            done = 0
    assert proc.poll() is None, "the job ended before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with ResultsFile(out, "r") as r:  # readable after SIGKILL
        finished = {k: r.read_item(k)[1]["provenance"]["time"] for k in r.keys()}
        assert "hessian/step_00000020/dense" in finished and key not in finished
    assert hessian(tiny_run.path, out, *args) == 0
    with ResultsFile(out, "r") as r:
        assert all(r.read_item(k)[1]["provenance"]["time"] == t for k, t in finished.items())
        dense, attrs = r.read_item(key)
        assert attrs["blocks_resumed"] >= 3
    ref = tmp_path / "ref.h5"
    assert hessian(tiny_run.path, ref, "--steps", "30", "--k", "0", *args[4:]) == 0   # uninterrupted
    with ResultsFile(ref, "r") as r:
        assert np.array_equal(dense["hessian"], r.read_item(key)[0]["hessian"])


@pytest.mark.gpu
def test_cuda_eigenvalues_match_the_cpu(tiny_run, tmp_path):
    """The same job on the GPU: float64 products differ by rounding only."""
    args = ["--steps", "last", "--k", "3", "--tol", "1e-10", "--dtype", "float64", "--subset", "64"]
    assert hessian(tiny_run.path, tmp_path / "cpu.h5", *args, "--device", "cpu") == 0
    assert hessian(tiny_run.path, tmp_path / "gpu.h5", *args, "--device", "cuda") == 0
    with ResultsFile(tmp_path / "cpu.h5", "r") as a, ResultsFile(tmp_path / "gpu.h5", "r") as b:
        x = a.read_item("hessian/step_00000030/eigen")[0]["eigenvalues"]
        y = b.read_item("hessian/step_00000030/eigen")[0]["eigenvalues"]
    assert np.abs(x - y).max() <= EIG_VS_DENSE_RTOL * np.abs(x).max(), (x, y)
