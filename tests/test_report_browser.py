"""The HTML report rendered in a real browser: headless Chromium loads the page offline,
takes a screenshot, and every embedded figure must have decoded (naturalWidth > 0); then it is
navigated: a click on a table-of-contents link brings its section to the top of the window, a
click on a figure opens it enlarged over the page, and a click or Escape closes it again.

Skipped where Chromium is not installed (Debian package ``chromium``; ``.ci/run`` installs it).
"""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import analyses.plots as plots
from analyses.plots import FigureSpec, MissingData, RunView
from analyses.plots.style import figure
from analyses.output.report import build_report
from landscape.errors import OutputExistsError
from landscape.io import ResultsFile

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCROLL_TOLERANCE_PX = 2   # sub-pixel layout: the section's top lands on its scroll margin to a pixel or so
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
    plots._REGISTRY["test_only_sine"] = FigureSpec("test_only_sine", "A sine, drawn by the browser test.", _sine,
                                                   section="browser_test", title="A sine")
    yield
    plots._REGISTRY.pop("test_only_sine", None)


def _results(tmp_path):
    """A real results file holding one certified eigen item (every other figure is skipped)."""
    rf = ResultsFile(tmp_path / "res.h5", "a", run_id={"path": "run.h5", "run_sha256": "0" * 64})
    rf.write_item("hessian/step_00000010/eigen", {"eigenvalues": np.array([3.0, 1.0]),
                                                  "residuals": np.array([1e-6, 2e-6])}, {"step": 10})
    return rf


def _views(results):
    return [RunView("results only", results, None)]


def _chromium(args, tmp_path):
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120)


def test_report_refuses_existing(tmp_path):
    with _results(tmp_path) as results:
        build_report(_views(results), tmp_path / "out", log=lambda m: None)
        with pytest.raises(OutputExistsError, match="--overwrite"):
            build_report(_views(results), tmp_path / "out", log=lambda m: None)


@pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium (apt-get install chromium)")
def test_report_renders_in_chromium(tmp_path):
    with _results(tmp_path) as results:
        page = build_report(_views(results), tmp_path / "out", log=lambda m: None)
    assert "test_only_sine" in page.read_text() and "3" in page.read_text()
    shot = tmp_path / "shot.png"
    _chromium([f"--screenshot={shot}", "--window-size=1200,2400", page.as_uri()], tmp_path)
    assert shot.exists() and shot.stat().st_size > 10_000, "no screenshot was taken"
    probe = ("<script>window.onload=()=>{const r=[...document.querySelectorAll('main img')]"   # the figures, not
             ".map(i=>[i.complete,i.naturalWidth]);document.title=JSON.stringify(r);}</script>")  # the empty lightbox
    html = page.read_text().replace("</body>", probe + "</body>")
    probed = tmp_path / "probe.html"
    probed.write_text(html)
    dom = _chromium(["--dump-dom", "--virtual-time-budget=5000", probed.as_uri()], tmp_path).stdout
    title = dom.split("<title>", 1)[1].split("</title>", 1)[0]
    images = json.loads(title.replace("&quot;", '"'))
    assert images, "the report has no images"
    assert all(done and width > 0 for done, width in images), f"images that did not load: {images}"


# Clicks a table-of-contents link, then a figure, then the enlarged figure, then opens it again and
# presses Escape; writes what it saw into the title (the only channel --dump-dom gives back).
NAVIGATE = """<script>
window.onload = function () {
  var seen = {}, later = function (f) { setTimeout(f, 300); };
  var link = document.querySelector('#toc a[href="#sec-browser_test"]');
  var box = document.getElementById('lightbox');
  seen.closedAtStart = box.hidden && getComputedStyle(box).display === 'none';
  seen.scrollBefore = window.scrollY;
  link.click();
  later(function () {
    seen.hash = location.hash;
    seen.scrollAfter = window.scrollY;
    var section = document.getElementById('sec-browser_test');
    seen.sectionTop = section.getBoundingClientRect().top;
    seen.scrollMargin = parseFloat(getComputedStyle(section).scrollMarginTop);
    var img = document.querySelector('#sec-browser_test figure img');
    seen.thumbWidth = img.getBoundingClientRect().width;
    img.click();
    later(function () {
      var big = box.querySelector('img');
      seen.open = !box.hidden && getComputedStyle(box).display !== 'none';
      seen.sameImage = big.src === img.src;
      seen.bigWidth = big.getBoundingClientRect().width;
      seen.bigDecoded = big.naturalWidth > 0;
      seen.windowWidth = window.innerWidth;
      box.click();
      seen.closedByClick = box.hidden;
      img.click();
      document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape'}));
      seen.closedByEscape = box.hidden;
      document.title = JSON.stringify(seen);
    });
  });
};
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium (apt-get install chromium)")
def test_report_navigates_and_enlarges_figures_in_chromium(tmp_path):
    with _results(tmp_path) as results:
        page = build_report(_views(results), tmp_path / "out", log=lambda m: None)
    probed = tmp_path / "navigate.html"
    probed.write_text(page.read_text().replace("</body>", NAVIGATE + "</body>"))
    dom = _chromium(["--dump-dom", "--virtual-time-budget=10000", "--window-size=1200,900", probed.as_uri()],
                    tmp_path).stdout
    seen = json.loads(dom.split("<title>", 1)[1].split("</title>", 1)[0].replace("&quot;", '"'))
    assert seen["closedAtStart"], seen
    assert seen["hash"] == "#sec-browser_test" and seen["scrollAfter"] > seen["scrollBefore"], seen
    assert abs(seen["sectionTop"] - seen["scrollMargin"]) < SCROLL_TOLERANCE_PX, f"section not at the top: {seen}"
    assert seen["open"] and seen["sameImage"] and seen["bigDecoded"], seen
    assert seen["bigWidth"] > 1.5 * seen["thumbWidth"] and seen["bigWidth"] > 0.9 * seen["windowWidth"], seen
    assert seen["closedByClick"] and seen["closedByEscape"], seen
