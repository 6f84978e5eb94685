"""The sharpness study: rank correlations against scipy, order invariance, granulated τ, bad input."""

import dataclasses
import itertools

import numpy as np
import pytest
from scipy import stats

from analyses import sharpness_study as S
from landscape.errors import ConfigMismatchError, InputError, NonFiniteError

# τ_b and ρ are sums of ±1 and ranks divided by a square root: float64 rounding only.
CORR_ATOL = 1e-12


def zoo(n=12, seed=0, model="cnn1d"):
    rng = np.random.default_rng(seed)
    runs = []
    for i in range(n):
        gap = float(rng.normal())
        runs.append(S.RunMeasures(label=f"run{i:02d}", model=model, gap=gap,
                                  measures={"good": gap + 0.3 * float(rng.normal()), "noise": float(rng.normal())},
                                  hparams={"lr": i % 3, "batch_size": 32 * (1 + i % 2)}))
    return runs


@pytest.mark.parametrize("seed", range(5))
def test_correlations_match_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, 15).astype(float)           # many ties
    y = x + rng.integers(0, 3, 15)
    tau, rho = S.kendall_tau(x, y), S.spearman_rho(x, y)
    want_tau, want_rho = stats.kendalltau(x, y).statistic, stats.spearmanr(x, y).statistic
    assert abs(tau - want_tau) < CORR_ATOL, f"τ_b {tau} vs scipy {want_tau}"
    assert abs(rho - want_rho) < CORR_ATOL, f"ρ {rho} vs scipy {want_rho}"


def test_constant_measure_gives_nan():
    assert np.isnan(S.kendall_tau(np.ones(5), np.arange(5.0)))
    assert np.isnan(S.spearman_rho(np.ones(5), np.arange(5.0)))


def test_study_is_invariant_to_the_order_of_runs():
    runs = zoo()
    ref = S.study(runs, S.StudyConfig(num_bootstrap=200))
    rng = np.random.default_rng(1)
    for _ in range(3):
        shuffled = [runs[i] for i in rng.permutation(len(runs))]
        got = S.study(shuffled, S.StudyConfig(num_bootstrap=200))
        for key in ("tau", "tau_lo", "tau_hi", "rho", "rho_lo", "rho_hi", "Psi", "values", "gap"):
            assert np.array_equal(ref[key], got[key], equal_nan=True), f"{key} changed with the order of runs"
        assert ref["labels"] == got["labels"] and ref["measures"] == got["measures"]


def test_study_table_contents():
    t = S.study(zoo(n=30), S.StudyConfig(num_bootstrap=300, seed=2))
    good = t["measures"].index("good")
    assert t["tau"][good] > 0.5, f"a measure built from the gap should rank it; τ = {t['tau'][good]:.3f}"
    for key in ("tau", "rho"):
        lo, hi, est = t[f"{key}_lo"], t[f"{key}_hi"], t[key]
        assert np.all(lo <= hi) and np.all((lo <= est + CORR_ATOL) & (est <= hi + CORR_ATOL)), (key, lo, est, hi)
    assert t["values"].shape == (30, 2) and t["psi"].shape == (2, 2) and t["axes"] == ["batch_size", "lr"]


def test_granulated_tau_closed_form():
    """gap = lr + 10·bs, measure = lr − bs: along lr it agrees (ψ = 1), along bs it disagrees (ψ = −1)."""
    runs = [S.RunMeasures(f"r{lr}{bs}", "m", gap=lr + 10 * bs, measures={"m": lr - bs}, hparams={"lr": lr, "bs": bs})
            for lr, bs in itertools.product(range(3), range(2))]
    t = S.study(runs, S.StudyConfig(num_bootstrap=10))
    psi = dict(zip(t["axes"], t["psi"][0]))
    assert psi == {"bs": -1.0, "lr": 1.0} and t["Psi"][0] == 0.0, (psi, t["Psi"])


def test_bad_zoos_are_refused():
    runs = zoo(n=4)
    with pytest.raises(ConfigMismatchError, match="different models"):
        S.study(runs[:3] + [dataclasses.replace(runs[3], model="mlp")])
    with pytest.raises(InputError, match="at least 3 runs"):
        S.study(runs[:2])
    with pytest.raises(InputError, match="appears twice"):
        S.study(runs + runs[:1])
    bad = S.RunMeasures("bad", "cnn1d", gap=float("nan"), measures={"good": 1.0, "noise": 0.0})
    with pytest.raises(NonFiniteError, match="bad"):
        S.study(runs + [bad])


def test_measures_from_items():
    items = {"probes_gaussian": {"radii": np.array([0.1, 0.2]), "sum_abs": np.array([1.0, 2.0]),
                                 "mean_sq": np.zeros(2), "max": np.zeros(2), "mean": np.array([3.0, 4.0])},
             "worst_box": {"radii": np.array([1e-3]), "max_delta": np.array([0.5]), "keskar": np.array([40.0])},
             "curvature": {"lambda_max": np.array(7.0), "trace": np.array(9.0), "gap_loss": np.array(0.25)}}
    m = S.measures_from_items(items)
    assert m["probe:gaussian:sum_abs:r=0.2"] == 2.0 and m["probe:gaussian:mean:r=0.1"] == 3.0
    assert m["worst:box:keskar:eps=0.001"] == 40.0 and m["lambda_max"] == 7.0 and len(m) == 12
    assert S.gap_from_items(items) == 0.25
    with pytest.raises(InputError, match="unknown gap"):
        S.gap_from_items(items, "accuracy")


# ---- the command line --------------------------------------------------------------------------

def fake_results(path, run_path, gap, lr, seed, model="mlp"):
    """A results file shaped like `landscape sharpness` output (measures computed elsewhere)."""
    from landscape.io import ResultsFile

    attrs = {"model": {"name": model, "kwargs": {}, "params": None}, "run_config": {"lr": lr, "seed": seed,
                                                                                    "device": "cpu"}}
    losses = {"train_loss": 0.1, "test_loss": 0.1 + gap, "gap_loss": gap, "gap_error": gap / 2}
    with ResultsFile(path, "a", run_id={"path": run_path, "run_sha256": run_path}) as r:
        for step in (10, 20):
            r.write_item(f"sharpness/step_{step:08d}/probes_gaussian",
                         {"radii": np.array([0.1]), "sum_abs": np.array([gap * 3 + step]), "mean_sq": np.array([lr]),
                          "max": np.array([seed]), "mean": np.array([gap ** 2]), **losses}, attrs)
    return str(path)


@pytest.fixture()
def zoo_files(tmp_path):
    rng = np.random.default_rng(0)
    return [fake_results(tmp_path / f"r{i}.h5", f"run{i}.h5", float(rng.normal()), lr=0.1 * (1 + i % 3), seed=i % 2)
            for i in range(6)]


def study_cli(files, out, *extra):
    from analyses.cli import main

    return main(["sharpness-study", *map(str, files), "--out", str(out), "--bootstrap", "200", *extra])


def test_cli_table_is_invariant_to_the_order_of_files(zoo_files, tmp_path, capsys):
    from analyses.plots.sharpness import sharpness_study_scatter, sharpness_study_tau
    from landscape.io import ResultsFile

    assert study_cli(zoo_files, tmp_path / "a.h5") == 0
    assert study_cli(zoo_files[::-1], tmp_path / "b.h5") == 0
    assert "probe:gaussian:sum_abs:r=0.1" in capsys.readouterr().out
    with ResultsFile(tmp_path / "a.h5", "r") as a, ResultsFile(tmp_path / "b.h5", "r") as b:
        ta, attrs = a.read_item("sharpness_study/table")
        tb, _ = b.read_item("sharpness_study/table")
        assert len(sharpness_study_tau(a, None)) == 1 and len(sharpness_study_scatter(a, None)) == 1
    for key in ta:
        assert np.array_equal(ta[key], tb[key], equal_nan=True) if ta[key].dtype.kind == "f" else \
            list(ta[key]) == list(tb[key]), key
    assert attrs["axes"] == ["lr", "seed"] and ta["values"].shape == (6, 4)
    tau = dict(zip(ta["measures"], ta["tau"]))
    assert tau["probe:gaussian:sum_abs:r=0.1"] == 1.0, "sum|Δ| was built increasing in the gap"


def test_cli_step_and_gap_options(zoo_files, tmp_path):
    from landscape.io import ResultsFile

    assert study_cli(zoo_files, tmp_path / "s.h5", "--step", "10", "--gap", "error", "--hparams", "lr") == 0
    with ResultsFile(tmp_path / "s.h5", "r") as r:
        t, attrs = r.read_item("sharpness_study/table")
    assert attrs["axes"] == ["lr"] and attrs["gap"] == "error" and all(s.endswith("@10") for s in t["labels"])


@pytest.mark.parametrize("case,match", [("model", "different models"), ("step", "no sharpness results at step"),
                                        ("dup", "appears twice"), ("hparam", "not in the runs' configs")])
def test_cli_bad_zoos_exit_nonzero(zoo_files, tmp_path, capsys, case, match):
    files, extra = list(zoo_files), []
    if case == "model":
        files.append(fake_results(tmp_path / "cnn.h5", "cnn.h5", 0.3, 0.1, 0, model="cnn1d"))
    elif case == "step":
        extra = ["--step", "15"]
    elif case == "dup":
        files.append(files[0])
    else:
        extra = ["--hparams", "momentum"]
    assert study_cli(files, tmp_path / "s.h5", *extra) == 2
    assert match in capsys.readouterr().err


def test_cli_zoo_of_real_runs(tmp_path):
    """Three short MNIST-1D runs (different lr and seed) → sharpness → study, from the CLI."""
    from analyses.cli import main
    from checkpoints.config import TrainConfig
    from checkpoints.train import train

    files = []
    for i, lr in enumerate((0.05, 0.2, 0.5)):
        cfg = TrainConfig(dataset="mnist1d", dataset_kwargs={"num_train": 200, "num_test": 100}, model="mlp",
                          model_kwargs={"in_dim": 40, "hidden": [12]}, lr=lr, batch_size=50, steps=30,
                          save_every=10, seed=i)
        train(cfg, tmp_path / f"run{i}.h5", progress=False, fsync=False)
        files.append(tmp_path / f"res{i}.h5")
        assert main(["sharpness", str(tmp_path / f"run{i}.h5"), "--out", str(files[-1]), "--device", "cpu",
                     "--radii", "0.05", "--directions", "4", "--ascent-steps", "3", "--trace-matvecs", "30"]) == 0
    assert study_cli(files, tmp_path / "study.h5") == 0
    assert study_cli(files[::-1], tmp_path / "study2.h5") == 0
    from landscape.io import ResultsFile

    with ResultsFile(tmp_path / "study.h5", "r") as a, ResultsFile(tmp_path / "study2.h5", "r") as b:
        ta, tb = a.read_item("sharpness_study/table")[0], b.read_item("sharpness_study/table")[0]
    assert {"lambda_max", "trace", "worst:box:keskar:eps=0.001"} <= set(ta["measures"])
    assert np.array_equal(ta["tau"], tb["tau"], equal_nan=True) and np.array_equal(ta["rho"], tb["rho"], equal_nan=True)
