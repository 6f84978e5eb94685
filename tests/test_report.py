"""The HTML report and ``landscape plot`` over several runs: the page's structure (sections in the order
of the study, a table of contents whose anchors all resolve), its tables (every number equal to the
stored one), both runs side by side, the pairing of results files with their runs, and the registry's
sections and captions. The browser behaviour (navigation, enlarging) is in ``test_report_browser.py``.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

import analyses.plots as plots
from analyses.cli import main
from analyses.output.inputs import open_runs
from analyses.output.report import build_report
from landscape.errors import InputError
from report_data import EVAL_STEPS, HESSIAN_STEPS, NUM_TRAIN, eval_row, write_study

STUDY = ["sec-runs", "sec-training", "sec-spectrum", "sec-eigendirections", "sec-sharpness"]


class Page(HTMLParser):
    """The parts of the report the tests read: ids in order, TOC links, sections, tables, figures."""

    def __init__(self, text: str):
        super().__init__()
        self.ids, self.toc, self.sections, self.figures = [], [], [], []
        self.tables: dict[str, list[list[dict]]] = {}
        self._in_toc = False
        self._table = self._row = self._cell = None
        self._section = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "nav":
            self._in_toc = True
        elif tag == "a" and self._in_toc:
            self.toc.append(a["href"])
        elif tag == "section":
            self._section = a["id"]
            self.sections.append(a["id"])
        elif tag == "div" and "table" in a.get("class", "").split():
            self._table = self.tables.setdefault(a["id"], [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = {"text": "", "value": _float(a.get("data-value")), "note": None}
            self._row.append(self._cell)
        elif tag == "small" and self._cell is not None:
            self._cell["note"] = _float(a.get("data-value"))
        elif tag == "figure":
            self.figures.append({"id": a["id"], "run": a.get("data-run"), "section": self._section, "img": False})
        elif tag == "img" and self.figures and self.figures[-1]["id"] and not self._in_toc:
            self.figures[-1]["img"] = True

    def handle_endtag(self, tag):
        if tag == "nav":
            self._in_toc = False
        elif tag == "table":
            self._table = self._row = None
        elif tag in ("td", "th"):
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data

    def table(self, prefix: str) -> list[list[dict]]:
        found = [rows for key, rows in self.tables.items() if key.startswith(prefix)]
        assert len(found) == 1, f"expected one table {prefix}*, found {sorted(self.tables)}"
        return found[0]


def _float(x):
    return None if x is None else float(x)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The synthetic main + sibling study and its report (files given in a scrambled order)."""
    d = tmp_path_factory.mktemp("report")
    s = write_study(d)
    with open_runs([str(s["sib_res"]), str(s["run"]), str(s["sib"]), str(s["res"])], ["main", "sibling"]) as views:
        path = build_report(views, d / "out", log=lambda m: None)
    return {**s, "page": Page(path.read_text(encoding="utf-8")), "html": path.read_text(encoding="utf-8"),
            "out": d / "out"}


def test_sections_follow_the_study(study):
    page = study["page"]
    assert [s for s in page.sections if s in STUDY] == STUDY
    assert page.sections[: len(STUDY)] == STUDY, page.sections


def test_every_toc_link_resolves_and_covers_sections_tables_and_figures(study):
    page = study["page"]
    ids = page.ids
    assert len(ids) == len(set(ids)), "duplicate ids"
    targets = [h.removeprefix("#") for h in page.toc]
    assert all(h.startswith("#") for h in page.toc) and set(targets) <= set(ids)
    assert set(page.sections) <= set(targets)
    assert set(page.tables) <= set(targets)
    groups = re.findall(r'class="figgroup" id="([^"]+)"', study["html"])
    assert groups and set(groups) <= set(targets)
    assert [t for t in targets if t in page.sections] == page.sections   # the TOC in page order


def test_eigenvalue_and_trace_tables_hold_the_stored_numbers(study):
    page, stored = study["page"], study["stored"]
    rows = page.table("tab-eigen-main")[1:]
    assert [r[0]["value"] for r in rows] == list(HESSIAN_STEPS)
    for row, step in zip(rows, HESSIAN_STEPS):
        assert [c["value"] for c in row[1:4]] == stored.eigenvalues[step].tolist()
        assert [c["note"] for c in row[1:4]] == stored.residuals[step].tolist()
    rows = page.table("tab-trace-main")[1:]
    assert [(r[1]["value"], r[2]["value"]) for r in rows] == [stored.traces[s] for s in HESSIAN_STEPS]
    assert not any(k.startswith("tab-eigen-sibling") for k in page.tables)   # the sibling has no Hessian
    note = study["html"].split('id="tab-eigen-main"')[1].split("</p>")[0]
    assert f"On N = {NUM_TRAIN} training examples." in note   # which data the eigenpairs are of


def test_line_search_fits_table_holds_the_stored_numbers(study):
    rows = study["page"].table("tab-fits-main")[1:]
    lam = study["stored"].eigenvalues[20][:2]
    assert [r[1]["value"] for r in rows] == [1.0, 2.0]
    assert [r[2]["value"] for r in rows] == lam.tolist()
    assert [r[3]["value"] for r in rows] == (lam * 0.98).tolist()
    assert [r[5]["value"] for r in rows] == [0.4, None] and rows[1][5]["text"] == "—"   # never departed


def test_overview_compares_both_runs_from_their_files(study):
    rows = study["page"].table("tab-overview")
    header, body = [c["text"] for c in rows[0]], rows[1:]
    assert [r[0]["text"] for r in body] == ["main (step 20)", "sibling (step 20)"]
    for r, scale in zip(body, (1.0, 1.3)):
        tl, ta, vl, va = eval_row(EVAL_STEPS[-1], scale)
        cells = {h: c["value"] for h, c in zip(header, r)}
        assert (cells["train loss"], cells["test loss"], cells["train acc"], cells["test acc"]) == (tl, vl, ta, va)
        assert cells["gap (loss)"] == vl - tl and cells["gap (error)"] == ta - va
        assert (cells["λ_max"], cells["tr H"], cells["± s.e."]) == (10.0 * scale, 80.0 * scale, 2.0 * scale)
        assert r[-1]["text"].startswith("sharpness, step 20")   # one source for both runs


def test_sharpness_against_gap_table(study):
    rows = study["page"].table("tab-gap")
    assert [c["text"] for c in rows[0]] == ["quantity", "main (step 20)", "sibling (step 20)", "ordered as the gap"]
    by_name = {r[0]["text"]: r for r in rows[1:]}
    for col, run in ((1, "main"), (2, "sibling")):
        s = study["stored"].sharpness[run]
        assert by_name["gap: test − train loss"][col]["value"] == pytest.approx(s["gap_loss"], rel=1e-6)
        assert by_name["λ_max"][col]["value"] == s["curvature"]["lambda_max"]
        for r, mean in zip(s["probes"]["radii"], s["probes"]["mean"]):
            assert by_name[f"mean ΔL, gaussian directions, r = {r:g}"][col]["value"] == mean
    # the sibling (scale 1.3) has the larger gap and the larger λ_max: one concordant pair of one
    assert by_name["λ_max"][3]["text"] == "1 of 1"


def test_both_runs_side_by_side_and_compared(study):
    figs = study["page"].figures
    curves = [f for f in figs if f["id"].startswith("fig-training_curves-")]
    assert [f["run"] for f in curves] == ["main", "sibling"] and all(f["img"] for f in curves)
    for name in ("training_compare", "sharpness_compare"):
        assert [f["run"] for f in figs if f["id"].startswith(f"fig-{name}-")] == ["all runs"]
    assert {f["section"] for f in curves} == {"sec-training"}
    assert "Nothing here for sibling" in study["html"].split('id="sec-spectrum"')[1].split("</section>")[0]
    assert (study["out"] / "figures" / "main" / "training_curves.png").exists()
    assert (study["out"] / "figures" / "sibling" / "training_curves.png").exists()
    assert (study["out"] / "figures" / "training_compare.png").exists()


def test_header_says_how_each_run_was_trained(study):
    header = study["html"].split("<header>")[1].split("</header>")[0]
    same = "synthetic on synthetic (40 train), P = 50; SGD, momentum β = 0.9"
    assert f"<b>main</b> — {same}, η = 0.1, ×0.1 at steps 10;" in header
    assert f"<b>sibling</b> — {same}, η = 0.02 constant;" in header


def test_page_is_self_contained(study):
    html = study["html"]
    assert not re.search(r'(src|href)="(?!data:|#)', html), "a reference to another file or the network"
    assert "<script>" in html and "<style>" in html


def test_files_pair_by_run_checksum_in_any_order(study):
    s = study
    orders = ([s["run"], s["res"], s["sib"], s["sib_res"]], [s["sib_res"], s["sib"], s["res"], s["run"]])
    seen = []
    for order in orders:
        with open_runs([str(p) for p in order]) as views:
            seen.append({v.label: (Path(v.run.path).name, Path(v.results.path).name) for v in views})
    assert seen[0] == seen[1] == {"run": ("run.h5", "res.h5"), "sib": ("sib.h5", "sib-res.h5")}


@pytest.mark.parametrize("files, match", [
    (["run", "sib_res"], "holds results of .*sib.h5.* not among the run files given; add that run file"),
    (["run", "run"], "are the same run"),
    (["run", "res", "res"], "both hold results of"),
])
def test_mismatched_files_are_refused_with_one_line(study, files, match):
    with pytest.raises(InputError, match=match):
        with open_runs([str(study[f]) for f in files]):
            pass


def test_report_command_refuses_a_results_file_without_its_run(study, tmp_path, capsys):
    code = main(["report", str(study["run"]), str(study["sib_res"]), "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "sib-res.h5" in err[0]
    assert not (tmp_path / "report.html").exists()


def test_labels_must_match_the_runs(study):
    with pytest.raises(InputError, match="--labels gives 1 name"):
        with open_runs([str(study["run"]), str(study["sib"])], ["only"]):
            pass


def test_plot_several_runs_writes_a_folder_per_run(study, tmp_path):
    files = [str(study[k]) for k in ("run", "res", "sib", "sib_res")]
    assert main(["plot", *files, "--out", str(tmp_path), "--only", "training_curves,training_compare"]) == 0
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png")) == [
        "run/training_curves.png", "sib/training_curves.png", "training_compare.png"]
    one = tmp_path / "one"
    assert main(["plot", str(study["run"]), "--out", str(one), "--only", "training_curves"]) == 0
    assert [p.name for p in one.iterdir() if p.suffix == ".png"] == ["training_curves.png"]   # as before


def test_builtin_figures_sit_in_the_study_sections_with_captions_to_read():
    figures = plots.all_figures()
    study = [s.id for s in plots.STUDY_SECTIONS]
    assert study == ["training", "spectrum", "eigendirections", "sharpness", "projections", "surfaces"]
    ranks = [study.index(f.section) for f in figures.values() if f.section in study]
    assert ranks == sorted(ranks), "figures not in the order of the study"
    beside = [s.id for s in plots.BESIDE_STUDY]
    assert max(plots.section_rank(s) for s in study) < min(plots.section_rank(s) for s in beside)   # after the study
    for spec in figures.values():
        assert spec.section in study + beside, f"{spec.name}: section {spec.section!r}"
        if spec.section in beside:
            continue    # their modules' own captions (hypergradients, deep linear nets)
        assert spec.title and "Look for" in spec.caption, f"{spec.name}: caption says nothing to look for"
        assert not re.search(r"\bseed \d|\b[a-z]+_[a-z_]+\b", spec.caption), f"{spec.name}: internal label in caption"


def test_a_new_module_lands_in_its_own_section_after_the_study():
    def draw(results, run):
        raise plots.MissingData("test")
    draw.__module__ = "analyses.plots.newstudy"
    try:
        plots.register("test_only_newstudy", caption="A test figure.")(draw)
        spec = plots.all_figures()["test_only_newstudy"]
        assert spec.section == "newstudy" and plots.get_section("newstudy").title == "Newstudy"
        assert list(plots.all_figures())[-1] == "test_only_newstudy"   # after every study section
        plots.define_section("newstudy", "A new study", "lead")
        assert plots.get_section("newstudy").title == "A new study"
        draw.__module__ = "somewhere_else"
        plots.register("test_only_other", caption="A test figure.")(draw)
        assert plots.all_figures()["test_only_other"].section == "other"
        assert plots.section_rank("newstudy") < plots.section_rank("other")
    finally:
        for name in ("test_only_newstudy", "test_only_other"):
            plots._REGISTRY.pop(name, None)
        plots._SECTIONS.pop("newstudy", None)


def test_demo_report_stage_shows_both_runs(tmp_path):
    from analyses.cli.demo import QUICK, stages

    title, argv = stages(tmp_path, QUICK, None)[-1]
    assert argv[0] == "report"
    assert [Path(a).name for a in argv if a.endswith(".h5")] == ["run.h5", "results.h5", "sibling.h5",
                                                                 "sibling-results.h5"]
    assert argv[argv.index("--labels") + 1] == "main,sibling"


def test_a_study_file_stands_beside_the_runs_with_its_rank_correlations(study, tmp_path):
    from analyses.output.gap import study as study_table
    from landscape.io import ResultsFile

    tau = [0.2, -0.8, 0.5]
    with ResultsFile(tmp_path / "study.h5", "a") as f:     # bound to no single run
        f.write_item("sharpness_study/table", {
            "measures": ["lambda_max", "trace", "probe:gaussian:mean:r=0.1"], "labels": ["a", "b", "c", "d"],
            "tau": tau, "tau_lo": [-0.5, -1, -0.2], "tau_hi": [0.8, -0.3, 1], "rho": [0.3, -0.9, 0.6],
            "rho_lo": [-0.6, -1, -0.1], "rho_hi": [0.9, -0.4, 1]}, {"gap": "loss"})
    paths = [str(study[k]) for k in ("run", "res")] + [str(tmp_path / "study.h5")]
    with open_runs(paths) as views:
        assert [(v.label, v.run is None) for v in views] == [("run", False), ("study", True)]
        t = study_table(views[1])
    assert [r[0].text for r in t.rows] == ["trace", "probe:gaussian:mean:r=0.1", "lambda_max"]   # by |τ|
    assert [r[1].value for r in t.rows] == [-0.8, 0.5, 0.2] and "n = 4 runs" in t.note


def test_one_run_helpers_keep_working_and_refuse_several_runs(study, tmp_path):
    from analyses.output.render import open_inputs_for_figures, render_figures

    with open_inputs_for_figures([str(study["res"]), str(study["run"])]) as (results, run):
        made = render_figures(results, run, tmp_path, only=["hessian_trace"], log=lambda m: None)
    assert [f.name for f in made] == ["hessian_trace"] and made[0].png == tmp_path / "hessian_trace.png"
    with pytest.raises(InputError, match="of 2 runs"):
        with open_inputs_for_figures([str(study[k]) for k in ("run", "sib")]):
            pass
