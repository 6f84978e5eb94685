"""``landscape hyper scan``: results layout, resume, the trainer's numbers, bad input, jobs, figures."""

from __future__ import annotations

import math
import os
import shutil

import numpy as np
import pytest

from analyses.cli import main
from analyses.hyper_scan import ScanConfig, disagreement, grid, sign_change_rate, summarize
from landscape.errors import InputError
from landscape.io import ResultsFile

TINY = ["--model-kwargs", '{"in_dim": 40, "hidden": [8], "activation": "tanh"}', "--dataset-kwargs", '{"num_train": 200, "num_test": 100}',
        "--batch-size", "50", "--no-progress", "--device", "cpu"]


def scan(out, *extra):
    return main(["hyper", "scan", "--hyper", "lr", "--min", "0.05", "--max", "1", "--num", "4", "--horizons", "3,6",
                 "--seeds", "0,1", "--out", str(out), *TINY, *extra])


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    out = tmp_path_factory.mktemp("scan") / "scan.h5"
    assert scan(out) == 0
    return out


def test_one_item_per_point_and_a_summary(scanned):
    with ResultsFile(scanned, "r") as r:
        keys = r.keys("hyper_scan/")
        assert keys == [f"hyper_scan/lr/point_{i:05d}" for i in range(4)] + ["hyper_scan/lr/summary"]
        arrays, attrs = r.read_item("hyper_scan/lr/point_00002")
        s, _ = r.read_item("hyper_scan/lr/summary")
    assert attrs["index"] == 2 and attrs["value"] == pytest.approx(grid(ScanConfig("lr", 0.05, 1, 4))[2])
    assert arrays["meta_loss"].shape == arrays["hypergrad"].shape == (2, 2)          # (seeds, horizons)
    assert arrays["rho"].shape == (1, 3)                                              # first seed, t = 0, 2, 5
    # smooth regime: the hypergradient is the slope of the meta-loss (central differences, δ = 1e-3)
    np.testing.assert_allclose(arrays["hypergrad"], arrays["fd_slope"], rtol=1e-4)
    assert np.all(np.isnan(s["transition_value"]))
    np.testing.assert_allclose(s["meta_loss_mean"][2], arrays["meta_loss"].mean(axis=0))


def test_rerun_skips_and_other_settings_are_refused(scanned, tmp_path, capsys):
    copy = tmp_path / "copy.h5"
    shutil.copy(scanned, copy)
    before = os.path.getmtime(copy), copy.read_bytes()
    assert scan(copy) == 0
    assert "0 point(s) computed, 4 already complete" in capsys.readouterr().out
    assert scan(copy, "--seeds", "0") == 2
    err = capsys.readouterr().err
    assert "computed with other options (scan: stored" in err and "--recompute" in err, err
    assert copy.read_bytes() == before[1]


def test_points_chunk_then_summary_only(tmp_path, capsys):
    out = tmp_path / "chunks.h5"
    assert scan(out, "--points", "0:2") == 0
    assert scan(out, "--summary-only") == 0
    assert "2 grid point(s) still missing" in capsys.readouterr().out
    assert scan(out, "--points", "2,3") == 0
    with ResultsFile(out, "r") as r:
        assert "hyper_scan/lr/summary" in r.keys()


def test_the_scan_replays_the_trainers_run(tiny_run, tmp_path):
    """At the run's own lr, seed, batches and θ_0, the meta-loss is the trainer's final test loss."""
    from landscape.io import RunFile

    out = tmp_path / "run_scan.h5"
    lr = tiny_run.config.lr
    rc = main(["hyper", "scan", str(tiny_run.path), "--hyper", "lr", "--min", str(lr), "--max", str(lr), "--num", "1",
               "--horizons", "30", "--seeds", str(tiny_run.config.seed), "--dtype", "float32", "--jacobian-seeds", "0",
               "--out", str(out), "--no-progress", "--device", "cpu"])
    assert rc == 0
    with ResultsFile(out, "r") as r, RunFile(tiny_run.path) as run:
        loss = r.read_item("hyper_scan/lr/point_00000")[0]["meta_loss"][0, 0]
        final = run.eval_metrics()
        want = final["test_loss"][list(final["step"]).index(30)]
        assert r.run_id["run_sha256"] == run.file_sha256
    assert loss == pytest.approx(want, rel=1e-5)   # float32, exp(log η) vs η: last-bit differences only


BAD = [
    dict(id="unknown-hyper", args=["--hyper", "dropout"], match="unknown hyperparameter"),
    dict(id="no-points", args=["--num", "0"], match="no points"),
    dict(id="non-finite", args=["--min", "nan"], match="finite"),
    dict(id="empty-range", args=["--min", "1", "--max", "0.1"], match="no points"),
    dict(id="T-zero", args=["--horizons", "0,5"], match="positive"),
    dict(id="reversible-momentum-0", args=["--route", "reversible", "--momentum", "0"], match="no finite bit budget"),
    dict(id="reversible-momentum-1", args=["--route", "reversible", "--momentum", "1"], match="no finite bit budget"),
    dict(id="nan-meta-loss", args=["--hyper", "init_scale", "--min", "1e200", "--max", "1e300"], match="diverged", rc=3),
]


@pytest.mark.parametrize("case", BAD, ids=[c["id"] for c in BAD])
def test_bad_input_is_one_line_and_writes_nothing(case, tmp_path, capsys):
    out = tmp_path / "bad.h5"
    assert scan(out, *case["args"]) == case.get("rc", 2)
    err = capsys.readouterr().err.strip()
    assert case["match"] in err and len(err.splitlines()) == 1, err
    if out.exists():   # the file may exist (opened before the first point failed) but holds no item
        with ResultsFile(out, "r") as r:
            assert r.keys() == []


def test_run_file_batches_must_cover_the_horizon(tiny_run, tmp_path, capsys):
    rc = main(["hyper", "scan", str(tiny_run.path), "--horizons", "50", "--num", "1", "--seeds",
               str(tiny_run.config.seed), "--out", str(tmp_path / "r.h5"), "--no-progress", "--device", "cpu"])
    assert rc == 2 and "logs the batches of 30 steps" in capsys.readouterr().err


def test_sign_changes_and_disagreement_on_known_data():
    lx = np.log(np.geomspace(1, np.e ** 4, 5))                  # unit spacing in ln x
    g = np.array([1, -1, 1, -1, 1], float)[:, None, None]        # a flip between every pair
    rate = sign_change_rate(lx, g, window=5)
    np.testing.assert_allclose(rate[:, 0], 1.0)                  # one change per unit of ln x
    assert disagreement(np.array([1.0, 0.0, 1.0]), np.array([1.0, 0.0, -1.0])).tolist() == [0.0, 0.0, 1.0]


def test_transition_is_the_first_run_of_rough_points():
    cfg = ScanConfig("lr", 0.1, 10, 6, (5,), (0,))
    rough = [0.01, 0.9, 0.02, 0.7, 0.8, 0.9]                      # an isolated rough point is not a transition
    points = [dict(value=v, hypergrad=np.full((1, 1), 1.0 + i), meta_loss=np.ones((1, 1)),
                   fd_disagreement=np.array([[d]]), tangent_norms=np.ones((1, 6)))
              for i, (v, d) in enumerate(zip(grid(cfg), rough))]   # flat loss: the secant slope (0) disagrees
    s = summarize(cfg, points).arrays
    assert s["transition_index"][0] == 3 and s["transition_value"][0] == pytest.approx(grid(cfg)[3])


def test_config_refuses_bad_values():
    with pytest.raises(InputError, match="unknown route"):
        ScanConfig(route="sideways")
    with pytest.raises(InputError, match="at least one seed"):
        ScanConfig(seeds=())


def test_figures_draw_the_stored_curves(scanned, tmp_path):
    from analyses.output.render import open_inputs_for_figures
    from analyses.plots import all_figures

    figs = all_figures()
    with open_inputs_for_figures([str(scanned)]) as (results, run):
        (name, fig), = figs["hyper_scan"].draw(results, run)
        s, _ = results.read_item("hyper_scan/lr/summary")
    top, bottom = fig.axes
    assert name == "lr" and top.get_xscale() == "log" and bottom.get_yscale() == "symlog"
    np.testing.assert_allclose(top.lines[0].get_ydata(), s["meta_loss_mean"][:, 0])
    np.testing.assert_allclose(top.lines[0].get_xdata(), s["values"])
    assert len(bottom.lines) == 2 * 2                             # seeds × horizons
    with open_inputs_for_figures([str(scanned)]) as (results, run):
        (_, chaos), = figs["hyper_chaos"].draw(results, run)
    ax = chaos.axes[0]
    np.testing.assert_allclose(ax.lines[1].get_ydata(), s["fd_disagreement"][:, 1])
    assert math.isclose(chaos.axes[3].lines[0].get_ydata()[0], s["b_max"][0].max())


def test_jobs_dry_run_chunks_the_grid_and_summarises_after_merge(tmp_path, capsys):
    out = tmp_path / "scan.h5"
    rc = main(["jobs", "submit", "--dry-run", "--folder", str(tmp_path / "jobs"), "--steps-per-task", "3",
               "hyper", "scan", "--num", "7", "--out", str(out), "--horizons", "5"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "#SBATCH --array=0-2" in text and "landscape-hyper" in text
    assert "-m landscape hyper scan --num 7" in text
    assert "--points 0,1,2 --out " + str(tmp_path / "scan.part0.h5") in text
    assert "--points 6 --out " + str(tmp_path / "scan.part2.h5") in text
    assert "--summary-only" in text.split("after merging")[1]
    assert not out.exists()


@pytest.mark.slow
def test_local_executor_runs_the_scan_array_merges_and_summarises(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out, direct = tmp_path / "array.h5", tmp_path / "direct.h5"
    common = ["--hyper", "lr", "--min", "0.05", "--max", "1", "--num", "4", "--horizons", "3,6", "--seeds", "0", *TINY]
    assert main(["jobs", "submit", "--executor", "local", "--folder", str(tmp_path / "jobs"), "--steps-per-task", "2",
                 "hyper", "scan", *common, "--out", str(out)]) == 0, capsys.readouterr().err
    assert main(["hyper", "scan", *common, "--out", str(direct)]) == 0
    with ResultsFile(out, "r") as a, ResultsFile(direct, "r") as b:
        assert a.keys() == b.keys()
        np.testing.assert_array_equal(a.read_item("hyper_scan/lr/summary")[0]["hypergrad_mean"],
                                      b.read_item("hyper_scan/lr/summary")[0]["hypergrad_mean"])
