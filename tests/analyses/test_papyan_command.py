"""`landscape papyan`: the class structure of the Hessian on a well-separated mixture and on MNIST-1D."""

from __future__ import annotations

import numpy as np
import pytest

from analyses.cli import main
from landscape.io import ResultsFile, step_key

# eigsh runs to a relative residual of 1e-4 here: eigenvalues agree with the exact Gram spectra to
# ~tol·‖A‖ (Ritz values are accurate to the square of the residual, far below this).
GRAM_RTOL = 1e-4
# On a sharp mixture (C = 4, well trained) the C − 1 logit directions carry H's outliers; the overlap of
# the two top eigenspaces was 0.9–0.95 in our runs: 0.8 separates "the same space" from chance (m/P ≈ 0.01).
MIN_TOP_OVERLAP = 0.8

MIXTURE = dict(dataset="synthetic", dataset_kwargs={"num_train": 400, "num_test": 100, "input_shape": [10],
                                                    "num_classes": 4, "task": "mixture", "separation": 3.0},
               model="mlp", model_kwargs={"in_dim": 10, "hidden": [16], "num_classes": 4}, lr=0.05, momentum=0.9,
               batch_size=40, steps=60, save_every=60, seed=0)


@pytest.fixture(scope="module")
def mixture(tmp_path_factory):
    from checkpoints.config import TrainConfig
    from checkpoints.train import train

    d = tmp_path_factory.mktemp("papyan")
    train(TrainConfig(**MIXTURE), d / "run.h5", progress=False, fsync=False)
    out = d / "res.h5"
    assert main(["papyan", str(d / "run.h5"), "--out", str(out), "--device", "cpu", "--k", "8", "--tol", "1e-4",
                 "--density", "2", "20"]) == 0
    return d / "run.h5", out


def _item(path, quantity, step=60):
    with ResultsFile(path) as r:
        return r.read_item(step_key("papyan", step, quantity))


def test_class_means_carry_the_outliers_of_a_sharp_mixture(mixture):
    a, attrs = _item(mixture[1], "spectra")
    assert a["outliers_class"] == 3 and a["bulk_edge_class"] < a["eigenvalues_hessian"][2]  # C − 1 logit directions
    assert a["top_overlap_class"] > MIN_TOP_OVERLAP and a["top_overlap_dim"] == 3
    assert a["rank_class"] == 4 and a["rank_between"] == 4 + 4 + 4 * 2
    assert attrs["passes_per_product"]["within"] == "1 GGN product"


def test_low_rank_parts_agree_with_their_exact_spectra(mixture):
    a, _ = _item(mixture[1], "spectra")
    for part in ("self", "class", "cross"):
        exact = a[f"gram_eigenvalues_{part}"][:len(a[f"eigenvalues_{part}"])]
        np.testing.assert_allclose(a[f"eigenvalues_{part}"], exact, rtol=0, atol=GRAM_RTOL * exact[0])
    # G and H agree at the top where the residual H − G is small, and G ⪰ each of its parts
    assert a["eigenvalues_ggn"][0] >= max(a[f"eigenvalues_{p}"][0] for p in ("self", "class", "cross", "within")) - 1e-6


def test_class_gradients_and_weights(mixture):
    a, _ = _item(mixture[1], "spectra")
    assert a["class_gradient_gram"].shape == (4, 4) and np.allclose(np.diag(a["class_gradient_cos"]), 1)
    np.testing.assert_allclose(a["weights"], 0.25)                 # the mixture's classes are balanced


def test_density_item_holds_raw_slq(mixture):
    d, _ = _item(mixture[1], "density")
    for name in ("hessian", "ggn", "residual", "within"):
        assert d[f"nodes_{name}"].shape == (2, 20) and d[f"matvecs_{name}"] == 40
        np.testing.assert_allclose(d[f"weights_{name}"].sum(1), 1, rtol=1e-10)


def test_rerun_skips(mixture, capsys):
    run, out = mixture
    assert main(["papyan", str(run), "--out", str(out), "--device", "cpu", "--k", "8", "--tol", "1e-4",
                 "--density", "2", "20"]) == 0
    assert "0 item(s) computed" in capsys.readouterr().out


@pytest.mark.parametrize("changes,message", [
    ({"loss": "mse"}, "--loss mse"),
    ({"dataset_kwargs": {"num_train": 64, "num_test": 16, "input_shape": [10], "task": "regression", "out_dim": 2},
      "model_kwargs": {"in_dim": 10, "hidden": [8], "num_classes": 2}, "loss": "mse"}, "no classes"),
    ({"model_kwargs": {"in_dim": 10, "hidden": [8], "num_classes": 6}}, "C = 4 logits"),
], ids=["mse", "regression", "not-C-logits"])
def test_regression_losses_are_refused_before_any_file_is_written(tmp_path, capsys, changes, message):
    from checkpoints.config import TrainConfig
    from checkpoints.train import train

    train(TrainConfig(**{**MIXTURE, "steps": 2, "save_every": 2, **changes}), tmp_path / "run.h5", progress=False,
          fsync=False)
    out = tmp_path / "res.h5"
    assert main(["papyan", str(tmp_path / "run.h5"), "--out", str(out), "--device", "cpu"]) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not out.exists()


def test_figures_draw_the_stored_numbers(mixture):
    import matplotlib.pyplot as plt

    from analyses.plots import all_figures

    figures = all_figures()
    a, _ = _item(mixture[1], "spectra")
    with ResultsFile(mixture[1]) as r:
        (_, fig), = figures["papyan_spectra"].draw(r, None)
        ax = fig.axes[0]
        hessian = next(line for line in ax.lines if line.get_label() == "H")
        np.testing.assert_allclose(hessian.get_ydata(), a["eigenvalues_hessian"][a["eigenvalues_hessian"] > 0])
        assert ax.get_yscale() == "log" and f"{int(a['outliers_class'])} outliers" in ax.get_title()
        plt.close(fig)
        (_, fig), = figures["papyan_classes"].draw(r, None)
        np.testing.assert_allclose(fig.axes[0].images[0].get_array(), a["class_gradient_cos"])
        heights = [p.get_height() for p in fig.axes[1].containers[1]]
        np.testing.assert_allclose(heights, a["overlap_class"])
        plt.close(fig)
        (_, fig), = figures["papyan_density"].draw(r, None)
        assert [line.get_label() for line in fig.axes[0].lines] == ["H", "G", "H − G", "within-class"]
        plt.close(fig)
