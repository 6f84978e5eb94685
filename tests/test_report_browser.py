"""The HTML report rendered in a real browser: headless Chromium loads the page offline,
takes a screenshot, and every embedded figure must have decoded (naturalWidth > 0).

Skipped where Chromium is not installed (Debian package ``chromium``; ``.ci/run`` installs it).
"""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import analyses.plots as plots
from analyses.plots import FigureSpec, MissingData
from analyses.plots.style import figure
from analyses.output.report import build_report
from landscape.errors import OutputExistsError
from landscape.io import ResultsFile

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _sine(results, run):
    if results is None and run is None:
        raise MissingData("nothing to draw")
    fig, ax = figure()
    t = np.linspace(0, 6, 50)
    ax.plot(t, np.sin(t))
    return [("", fig)]


@pytest.fixture(autouse=True)
def sine_figure():
    """One extra registered figure for these tests only (the registry is global)."""
    plots.all_figures()
    plots._REGISTRY["test_only_sine"] = FigureSpec("test_only_sine", "A sine, drawn by the browser test.", _sine)
    yield
    plots._REGISTRY.pop("test_only_sine", None)


def _results(tmp_path):
    """A real results file holding one certified eigen item (every other figure is skipped)."""
    rf = ResultsFile(tmp_path / "res.h5", "a", run_id={"path": "run.h5", "run_sha256": "0" * 64})
    rf.write_item("hessian/step_00000010/eigen", {"eigenvalues": np.array([3.0, 1.0]),
                                                  "residuals": np.array([1e-6, 2e-6])}, {"step": 10})
    return rf


def _chromium(args, tmp_path):
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120)


def test_report_refuses_existing(tmp_path):
    with _results(tmp_path) as results:
        build_report(results, None, tmp_path / "out", log=lambda m: None)
        with pytest.raises(OutputExistsError, match="--overwrite"):
            build_report(results, None, tmp_path / "out", log=lambda m: None)


@pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium (apt-get install chromium)")
def test_report_renders_in_chromium(tmp_path):
    with _results(tmp_path) as results:
        page = build_report(results, None, tmp_path / "out", log=lambda m: None)
    assert "test_only_sine" in page.read_text() and "3" in page.read_text()
    shot = tmp_path / "shot.png"
    _chromium([f"--screenshot={shot}", "--window-size=1200,2400", page.as_uri()], tmp_path)
    assert shot.exists() and shot.stat().st_size > 10_000, "no screenshot was taken"
    probe = ("<script>window.onload=()=>{const r=[...document.images].map(i=>[i.complete,i.naturalWidth]);"
             "document.title=JSON.stringify(r);}</script>")
    html = page.read_text().replace("</body>", probe + "</body>")
    probed = tmp_path / "probe.html"
    probed.write_text(html)
    dom = _chromium(["--dump-dom", "--virtual-time-budget=5000", probed.as_uri()], tmp_path).stdout
    title = dom.split("<title>", 1)[1].split("</title>", 1)[0]
    images = json.loads(title.replace("&quot;", '"'))
    assert images, "the report has no images"
    assert all(done and width > 0 for done, width in images), f"images that did not load: {images}"
