"""``landscape deeplinear``: results layout, resume and settings checks, bad input, figures, the page.

One small results file is written once per module through the command line (every study at
reduced sizes); the figures are drawn from it and their drawn data checked against it; the
page is rendered in headless Chromium (``browser`` marker).
"""

import json
import shutil
import subprocess

import numpy as np
import pytest

from analyses import plots
from analyses.cli import main
from analyses.output.deeplinear_page import MAX_BYTES, build_page, write_page
from landscape.errors import OutputExistsError
from landscape.io import ResultsFile

SMALL = {
    "narrow": ["--grid", "11", "--field", "5", "--steps", "20"],
    "regimes": ["--steps", "60"],
    "depth": ["--depths", "2,10,30", "--lrs", "0.003,0.01,0.03,0.1", "--max-steps", "2000", "--init-depth", "5",
              "--init-cs", "0.9,1,1.1", "--init-sigmas", "0.5", "--init-max-steps", "200"],
    "saxe": ["--singular-values", "2,1", "--steps", "400", "--lr", "0.005", "--depths", "2,3,4",
             "--lrs", "0.03,0.06,0.1", "--max-steps", "400"],
    "page": ["--depths", "1,2,5", "--lrs", "0.01,0.1,0.5", "--inits", "0.9,1", "--steps", "100"],
}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def cli(*argv) -> int:
    return main(["deeplinear", *map(str, argv)])


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    d = tmp_path_factory.mktemp("deeplinear")
    out = d / "dl.h5"
    for mode, extra in SMALL.items():
        assert cli(mode, "--out", out, "--no-progress", *extra) == 0, mode
    return out, d


def read(out, key):
    with ResultsFile(out, "r") as rf:
        return rf.read_item(key)


def test_every_item_is_stored_with_config_and_provenance(made):
    out, _ = made
    with ResultsFile(out, "r") as rf:
        keys = rf.keys("deeplinear/")
        assert len(keys) == 9, keys
        for key in keys:
            attrs = rf.read_item(key)[1]
            assert "provenance" in attrs and attrs["config"]["study"] == key.split("/")[1], key
    assert (made[1] / "dl.html").stat().st_size > 1000, "the page mode writes the page"


def test_rerun_skips_and_changed_settings_are_refused(made, capsys):
    out, _ = made
    assert cli("regimes", "--out", out, "--no-progress", *SMALL["regimes"]) == 0
    assert "skipped 1 item" in capsys.readouterr().out
    assert cli("regimes", "--out", out, "--no-progress", "--steps", "61") != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "other settings" in err and "--overwrite" in err, err


def test_overwrite_recomputes_stale_items(made, tmp_path):
    out = tmp_path / "copy.h5"
    shutil.copy(made[0], out)
    assert cli("regimes", "--out", out, "--no-progress", "--steps", "30", "--overwrite") == 0
    arrays, attrs = read(out, "deeplinear/regimes/curves")
    assert arrays["loss"].shape[1] == 31 and attrs["config"]["regimes"]["steps"] == 30


@pytest.mark.parametrize("argv,needle", [
    (["depth", "--depths", "0,2"], "depth must be an integer ≥ 1"),
    (["depth", "--lrs", "0.1,-1"], "--lrs must be a finite number > 0"),
    (["page", "--lrs", "nan"], "--lrs must be a finite number > 0"),
    (["regimes", "--lrs", "inf"], "--lrs must be a finite number > 0"),
    (["page", "--inits", "0"], "--inits must be a finite number > 0"),
    (["depth", "--init-sigmas", "-0.5"], "--init-sigmas must be"),
    (["page", "--lrs", ""], "empty grid"),
    (["depth", "--depths", ""], "empty grid"),
    (["regimes", "--lrs", ""], "empty grid"),
    (["narrow", "--num-points", "1"], "zero variance in x"),
    (["narrow", "--x-std", "0"], "zero variance in x"),
    (["saxe", "--lr", "0"], "--lr must be a finite number > 0"),
    (["saxe", "--singular-values", ""], "empty grid"),
])
def test_bad_input_is_one_line_and_touches_nothing(tmp_path, capsys, argv, needle):
    out = tmp_path / "bad.h5"
    code = cli(argv[0], "--out", out, "--no-progress", *argv[1:])
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1 and needle in err, err
    assert not out.exists(), "bad input created the results file"


def drawn(name, out):
    """Draw a registered figure from the stored results; return the figure."""
    spec = plots.all_figures()[name]
    with ResultsFile(out, "r") as rf:
        (_, fig), = spec.draw(rf, None)
    return fig


def test_depth_figure_draws_the_stored_learning_times(made):
    out, _ = made
    sweep = read(out, "deeplinear/depth/sweep")[0]
    ax, bx = drawn("deeplinear_depth", out).axes
    for i, c in enumerate(sweep["inits"]):
        t = sweep["best_time"][:, i].astype(float)
        want = np.where(t >= 0, np.maximum(t, 0.5), np.nan)
        line = next(li for li in ax.lines if li.get_label() == f"c = {c:g}")
        assert np.allclose(line.get_ydata(), want, equal_nan=True)
        line = next(li for li in bx.lines if li.get_label() == f"best η, c = {c:g}")
        assert np.allclose(line.get_ydata(), sweep["best_lr"][:, i], equal_nan=True)
    assert [int(float(t.get_text())) for t in ax.get_xticklabels()] == list(sweep["depths"])


def test_saxe_figure_draws_simulation_and_theory(made):
    out, _ = made
    modes = read(out, "deeplinear/saxe/modes")[0]
    ax = drawn("deeplinear_saxe", out).axes[0]
    assert np.allclose(ax.lines[0].get_ydata(), modes["u_sim"][:, 0])
    assert np.allclose(ax.lines[1].get_ydata(), modes["u_theory"][:, 0])


def test_landscape_and_regime_figures_draw_stored_paths(made):
    out, _ = made
    traj = read(out, "deeplinear/narrow/trajectories")[0]
    fig = drawn("deeplinear_landscape", out)
    losses = [line.get_ydata() for line in fig.axes[1].lines]
    assert any(np.allclose(y, traj["losses"][0]) for y in losses)
    rg = read(out, "deeplinear/regimes/curves")[0]
    cx = drawn("deeplinear_regimes", out).axes[2]
    labels = [t.get_text() for t in cx.get_legend().get_texts()]
    assert labels == [f"η = {e:.3g}: {lab}" for e, lab in zip(rg["lrs"], rg["label"])]


def test_all_deeplinear_figures_draw(made):
    out, _ = made
    names = [n for n in plots.all_figures() if n.startswith("deeplinear_")]
    assert len(names) == 7
    for name in names:
        assert drawn(name, out).axes, name


def test_page_is_self_contained_and_small(made, tmp_path):
    out, _ = made
    page = write_page(out, tmp_path / "p.html")
    text = page.read_text()
    assert page.stat().st_size <= MAX_BYTES
    assert "http://" not in text and "https://" not in text and "<link" not in text, "the page must not load anything"
    data = json.loads(text.split('<script id=data type="application/json">', 1)[1].split("</script>", 1)[0])
    assert data["depths"] == [1, 2, 5] and data["inits"] == [0.9, 1.0] and len(data["label"]) == 3 * 2 * 3
    with pytest.raises(OutputExistsError):
        write_page(out, page)


def test_default_page_fits_the_budget():
    """The default grid's page: the payload size is fixed by the grid shapes, not by values."""
    from analyses.deeplinear.config import PageConfig

    g = PageConfig()
    S = len(np.unique(np.round(np.geomspace(1, g.steps, g.curve_points - 1)))) + 1
    shape = (len(g.depths), len(g.inits), len(g.lrs))
    arrays = {"depths": np.array(g.depths), "lrs": np.array(g.lrs), "inits": np.array(g.inits),
              "curve_steps": np.arange(S), "regimes": np.array(["a"] * 5), "label": np.zeros(shape, int),
              "rho_max": np.full(shape, 0.123456), "learning_time": np.full(shape, 12345),
              "loss": np.random.default_rng(0).random(shape + (S,)), "loss_min": 0.04, "a_hat": 2.0,
              "grid": np.linspace(-3, 3, g.grid), "surface": np.ones((g.grid, g.grid)),
              "path": np.zeros((len(g.inits), len(g.lrs), g.trajectory_steps + 1, 2))}
    assert len(build_page(arrays, {"rule": "r"}).encode()) <= MAX_BYTES


PROBE = """<script>
window.addEventListener('load', () => {
  const ink = () => [...document.querySelectorAll('canvas')].map(c => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] < 245 || d[i+1] < 245 || d[i+2] < 245) n++; return n; });
  const set = (id, v) => { const s = document.getElementById(id); s.value = v; s.dispatchEvent(new Event('input')); };
  const snap = () => [document.getElementById('label').textContent, document.getElementById('curve').toDataURL().length,
                      document.getElementById('land').toDataURL()];
  const r = {first: ink(), states: []};
  for (const [id, v] of [['lr', 0], ['lr', 2], ['depth', 0], ['depth', 2], ['init', 0]]) {
    set(id, v); const s = snap(); r.states.push([id, v, s[0], s[1], s[2].length, s[2].slice(-64)]); }
  r.last = ink();
  document.title = JSON.stringify(r);
});
</script>"""


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium (apt-get install chromium)")
def test_page_works_in_chromium(made, tmp_path):
    out, _ = made
    page = write_page(out, tmp_path / "page.html")
    run = lambda *a: subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *a],
                                    capture_output=True, text=True, timeout=120, check=False)
    shot = tmp_path / "shot.png"
    run(f"--screenshot={shot}", "--window-size=1300,1100", page.as_uri())
    assert shot.exists() and shot.stat().st_size > 20_000, "no screenshot"
    probed = tmp_path / "probe.html"
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = run("--dump-dom", "--virtual-time-budget=5000", probed.as_uri()).stdout
    r = json.loads(dom.split("<title>", 1)[1].split("</title>", 1)[0].replace("&quot;", '"'))
    assert len(r["first"]) == 3 and min(r["first"]) > 1000 and min(r["last"]) > 1000, f"empty canvas: {r}"
    labels = {s[2] for s in r["states"]}
    assert len(labels) >= 2 and labels <= {"too small", "slightly small", "about right", "oscillating", "divergent"}, labels
    lr_lo, lr_hi = r["states"][0], r["states"][1]
    assert lr_lo[5] != lr_hi[5], "moving the η slider did not redraw the path on the landscape"


@pytest.mark.parametrize("command", [["deeplinear", "narrow"], ["hyper", "optimize", "--recipe", "schedule"]])
def test_threads_below_one_is_a_usage_error_naming_the_option(command, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--out", str(tmp_path / "o.h5"), "--threads", "0"])
    assert exit_info.value.code == 2
    assert "--threads: expected an integer ≥ 1, got '0'" in capsys.readouterr().err
    assert not (tmp_path / "o.h5").exists()
