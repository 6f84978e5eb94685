"""What a new user hit (issue 13): density steps dropped, small-n statistics, settings checked
late, no way to recompute, progress bars in logs, two numberings of eigenvectors."""

import shutil

import matplotlib.pyplot as plt
import numpy as np
import pytest

from analyses.cli import main
from analyses.plots import all_figures
from eigen_results import write_dense_eigen
from landscape.io import ResultsFile, step_key


@pytest.fixture(scope="module")
def eigen_file(tiny_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("eig") / "eig.h5"
    write_dense_eigen(tiny_run.path, path, k=4, steps=[20, 30])
    return path


def _copy(src, tmp_path, name="res.h5"):
    dst = tmp_path / name
    shutil.copy(src, dst)
    return dst


# --- item 4: every stored density at its true step -------------------------------------------------
def test_density_evolution_keeps_densities_at_steps_without_eigenvectors(eigen_file, tmp_path):
    res = _copy(eigen_file, tmp_path)
    with ResultsFile(res, "a") as r:   # densities at 0, 10, 20, 30; eigenvectors only at 20, 30
        for s in (0, 10, 20, 30):
            r.write_item(step_key("hessian", s, "density"),
                         {"nodes": np.array([[0.1, 1.0 + s / 30]]), "weights": np.array([[0.9, 0.1]])})
    assert main(["evolution", str(res)]) == 0
    with ResultsFile(res) as r:
        assert r.read_item("evolution/density")[0]["steps"].tolist() == [0, 10, 20, 30]
        fig = all_figures()["density_evolution"].draw(r, None)[0][1]
    mesh = fig.axes[0].collections[0]
    y_edges = np.unique(mesh.get_coordinates()[:, :, 1])
    assert y_edges.tolist() == [0, 5, 15, 25, 30], "each density row is drawn around its own step, within the run"
    assert fig.axes[0].lines[0].get_ydata().tolist() == [0, 10, 20, 30]
    plt.close(fig)


def test_density_rows_at_uneven_steps_sit_at_their_steps(eigen_file, tmp_path):
    res = _copy(eigen_file, tmp_path)
    with ResultsFile(res, "a") as r:
        for s in (0, 20, 30):
            r.write_item(step_key("hessian", s, "density"),
                         {"nodes": np.array([[0.1, 1.0]]), "weights": np.array([[0.5, 0.5]])})
    assert main(["evolution", str(res)]) == 0
    with ResultsFile(res) as r:
        fig = all_figures()["density_evolution"].draw(r, None)[0][1]
    marks = fig.axes[0].lines[0].get_ydata()
    assert marks.tolist() == [0, 20, 30], "steps 0, 20, 30 are not spaced evenly on the axis"
    plt.close(fig)


# --- item 6: a rank correlation is shown with its n and interval, or not at all ------------------------
def test_rank_correlation_of_few_directions_is_not_shown():
    from analyses.plots.eigen import rank_correlation_title

    few = {"eigenvalues": np.arange(4.0), "spearman_lambda_min_std": -0.6, "spearman_n": 4}
    assert "not shown" in rank_correlation_title(few) and "n = 4" in rank_correlation_title(few)
    many = {"eigenvalues": np.arange(10.0), "spearman_lambda_min_std": -0.6, "spearman_n": 10,
            "spearman_lambda_min_std_ci": np.array([-0.9, 0.1])}
    title = rank_correlation_title(many)
    assert "n = 10" in title and "[-0.90, 0.10]" in title


def test_spearman_interval_widens_as_n_shrinks():
    from analyses.linesearch.curves import spearman_interval

    wide, narrow = spearman_interval(0.5, 6), spearman_interval(0.5, 100)
    assert wide[0] < narrow[0] < 0.5 < narrow[1] < wide[1]
    assert np.isnan(spearman_interval(0.5, 3)).all()


# --- item 8: settings checked before computing; --recompute replaces ----------------------------------
def test_a_grid_too_coarse_for_the_fits_is_refused_before_any_curve(tiny_run, eigen_file, tmp_path, capsys):
    res = _copy(eigen_file, tmp_path)
    assert main(["linesearch", str(tiny_run.path), "--steps", "30", "--out", str(res), "--num-t", "5"]) == 2
    assert "fit window" in capsys.readouterr().err
    with ResultsFile(res) as r:
        assert not r.items("linesearch", "curves"), "curves were computed before the options were refused"


def test_recompute_replaces_items_computed_with_other_options(tiny_run, tmp_path, capsys):
    out = str(tmp_path / "h.h5")
    base = ["hessian", str(tiny_run.path), "--steps", "30", "--k", "2", "--subset", "50", "--out", out]
    assert main([*base, "--tol", "1e-2"]) == 0
    assert main([*base, "--tol", "1e-3"]) == 2
    assert "other options (tol: stored 0.01, asked 0.001)" in capsys.readouterr().err
    assert main([*base, "--tol", "1e-3", "--recompute"]) == 0
    with ResultsFile(out) as r:
        assert r.read_item(step_key("hessian", 30, "eigen"))[1]["tol"] == 1e-3


# --- item 9: progress in what is known, off in logs, a summary per item --------------------------------
def test_no_bars_when_stderr_is_not_a_terminal_and_a_summary_per_item(tiny_run, tmp_path, capsys):
    out = str(tmp_path / "h.h5")
    assert main(["hessian", str(tiny_run.path), "--steps", "30", "--k", "3", "--subset", "50", "--trace", "20",
                 "--out", out]) == 0
    captured = capsys.readouterr()
    assert "HVP/s" not in captured.err and "pair" not in captured.err, "a bar was drawn into a captured log"
    eigen_line = next(line for line in captured.out.splitlines() if "/eigen:" in line)
    assert eigen_line.startswith("[1/2]") and "λ = " in eigen_line and "HVPs" in eigen_line
    assert "tr H = " in next(line for line in captured.out.splitlines() if "/trace:" in line)


def test_progress_flag_forces_bars_counting_converged_pairs(tiny_run, tmp_path, capsys):
    out = str(tmp_path / "h.h5")
    assert main(["hessian", str(tiny_run.path), "--steps", "30", "--k", "3", "--subset", "50", "--out", out,
                 "--progress"]) == 0
    err = capsys.readouterr().err
    assert "/3 [" in err and "pair" in err, "the eigen bar counts the k pairs, not the HVP budget"


@pytest.mark.parametrize("command", ["hessian", "linesearch", "sharpness", "gradproj", "surface", "train", "intervene",
                                     "papyan", "deeplinear narrow", "hyper scan"])
def test_long_commands_take_no_progress(command, capsys):
    with pytest.raises(SystemExit):
        main([*command.split(), "--help"])
    assert "--no-progress" in capsys.readouterr().out


# --- item 12: one numbering (from 1) in every figure ------------------------------------------------------
def test_line_search_panels_number_eigenvectors_from_one(tiny_run, eigen_file, tmp_path):
    res = _copy(eigen_file, tmp_path)
    assert main(["linesearch", str(tiny_run.path), "--steps", "30", "--out", str(res), "--directions", "0,2",
                 "--num-t", "9"]) == 0
    with ResultsFile(res) as r:
        fig = all_figures()["linesearch_curves"].draw(r, None)[0][1]
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles[0].startswith("$v_{1}$: $\\lambda_{1}$") and titles[1].startswith("$v_{3}$: $\\lambda_{3}$"), titles
    plt.close(fig)


# --- item 5: line searches on the eigenpairs' own examples -------------------------------------------------
def test_line_search_defaults_to_the_subset_of_the_eigenpairs(tiny_run, tmp_path, capsys):
    out = str(tmp_path / "r.h5")
    assert main(["hessian", str(tiny_run.path), "--steps", "30", "--k", "2", "--subset", "60", "--out", out]) == 0
    assert main(["linesearch", str(tiny_run.path), "--steps", "30", "--out", out, "--num-t", "9"]) == 0
    assert "warning" not in capsys.readouterr().err
    with ResultsFile(out) as r:
        attrs = r.read_item(step_key("linesearch", 30, "curves"))[1]
    assert attrs["N"] == 60 and attrs["config"]["subset"] == 60


def test_line_search_on_other_examples_warns(tiny_run, tmp_path, capsys):
    out = str(tmp_path / "r.h5")
    assert main(["hessian", str(tiny_run.path), "--steps", "30", "--k", "2", "--subset", "60", "--out", out]) == 0
    assert main(["linesearch", str(tiny_run.path), "--steps", "30", "--out", out, "--num-t", "9",
                 "--subset", "all"]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "60-example subset" in err and "all training examples" in err


# --- item 10: info shows the numbers; export writes tidy CSV ------------------------------------------------
def test_info_shows_eigenvalues_and_trace(tiny_run, tmp_path, capsys):
    out = str(tmp_path / "h.h5")
    assert main(["hessian", str(tiny_run.path), "--steps", "30", "--k", "3", "--subset", "50", "--trace", "20",
                 "--out", out]) == 0
    capsys.readouterr()
    assert main(["info", out]) == 0
    text = capsys.readouterr().out
    with ResultsFile(out) as r:
        lam = r.read_item(step_key("hessian", 30, "eigen"))[0]["eigenvalues"]
        tr = r.read_item(step_key("hessian", 30, "trace"))[0]["value"]
    assert f"eigenvalues(3,)=[{lam[0]:.4g}, {lam[1]:.4g}, {lam[2]:.4g}]" in text and f"value={tr:.6g}" in text


def test_export_writes_tidy_tables(tiny_run, tmp_path):
    import csv

    out = str(tmp_path / "h.h5")
    assert main(["hessian", str(tiny_run.path), "--steps", "20,30", "--k", "3", "--subset", "50", "--trace", "20",
                 "--out", out]) == 0
    assert main(["export", out, "--out", str(tmp_path / "csv")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "csv" / "eigenvalues.csv")))
    assert [(r["step"], r["i"]) for r in rows] == [(s, i) for s in ("20", "30") for i in ("1", "2", "3")]
    with ResultsFile(out) as r:
        lam = r.read_item(step_key("hessian", 30, "eigen"))[0]["eigenvalues"]
    assert float(rows[3]["eigenvalue"]) == lam[0]
    traces = list(csv.DictReader(open(tmp_path / "csv" / "traces.csv")))
    assert [t["step"] for t in traces] == ["20", "30"]
    assert main(["export", out, "--out", str(tmp_path / "csv")]) == 2        # nothing replaced silently
    assert main(["export", str(tiny_run.path), "--out", str(tmp_path / "run-csv")]) == 0
    steps = list(csv.DictReader(open(tmp_path / "run-csv" / "steps.csv")))
    assert len(steps) == 30 and steps[0]["step"] == "0"


# --- item 13: round colour-bar ticks on surfaces ----------------------------------------------------------
@pytest.mark.parametrize("lo,hi,log", [(0.2, 2.3, True), (0.439, 0.9, True), (1.37, 1.61, False), (0.01, 40.0, True), (1.37, 1.61, True)])
def test_surface_colour_bar_ticks_are_round(lo, hi, log):
    from analyses.plots.surface import round_ticks

    ticks = round_ticks(lo, hi, log=log)
    assert len(ticks) >= 3 and ticks.min() >= lo * (1 - 1e-9) and ticks.max() <= hi * (1 + 1e-9), ticks
    assert all(float(f"{t:.2g}") == t for t in ticks), f"unround ticks {ticks}"


def test_surface_figure_uses_round_ticks(tiny_run, tmp_path):
    out = tmp_path / "s.h5"
    assert main(["surface", str(tiny_run.path), "--out", str(out), "--grid", "5", "--directions", "filter,filter"]) == 0
    with ResultsFile(out) as r:
        fig = all_figures()["surface_2d"].draw(r, None)[0][1]
    bar = fig.axes[-1]
    ticks = np.asarray(bar.get_yticks())
    assert len(ticks) >= 3 and all(float(f"{t:.2g}") == t for t in ticks), f"unround ticks {ticks}"
    plt.close(fig)
