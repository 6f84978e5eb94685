"""The import rules of shared/design.md, checked by parsing every module's imports."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def files(package: str):
    return sorted((ROOT / package).rglob("*.py"))


def starts(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


# (package glob, banned import prefixes, reason)
RULES = [
    ("landscape/solvers", ("torch.nn", "h5py", "matplotlib", "landscape.models", "landscape.datasets",
                           "landscape.objective", "landscape.io"), "solvers see only a matvec"),
    ("landscape", ("analyses", "checkpoints", "matplotlib"), "the core never imports analyses/checkpoints/plotting"),
    ("checkpoints", ("analyses", "matplotlib"), "the trainer imports only the core"),
    ("analyses/plots", ("torch",), "plot code reads stored results only"),
]


@pytest.mark.parametrize("package,banned,reason", RULES, ids=[r[0] for r in RULES])
def test_import_rules(package, banned, reason):
    offenders = []
    for path in files(package):
        if path.name == "__main__.py":  # the entry-point shim, not the core
            continue
        bad = [m for m in imported_modules(path) if starts(m, *banned)]
        offenders += [f"{path.relative_to(ROOT)} imports {m}" for m in bad]
    assert not offenders, f"{reason}:\n" + "\n".join(offenders)


def test_h5py_only_in_io():
    offenders = [str(p.relative_to(ROOT)) for p in files("landscape")
                 if "io" not in p.relative_to(ROOT).parts and "h5py" in imported_modules(p)]
    assert not offenders, f"h5py outside landscape/io: {offenders}"


def test_analysis_modules_do_not_open_files_or_plot():
    """Analyses yield results; the runner/commands write them (design.md)."""
    analysis_files = [p for p in files("analyses") if p.parent.name == "analyses"
                      and p.stem not in {"cli", "runner", "report", "figures", "__init__", "demo"}]
    offenders = [f"{p.name} imports {m}" for p in analysis_files for m in imported_modules(p)
                 if starts(m, "h5py", "matplotlib")]
    assert not offenders, offenders


def test_no_pickle_anywhere():
    offenders = []
    for package in ("landscape", "analyses", "checkpoints"):
        for path in files(package):
            text = path.read_text()
            if "pickle" in imported_modules(path) or "allow_pickle=True" in text:
                offenders.append(str(path.relative_to(ROOT)))
            for line in text.splitlines():
                if "torch.load(" in line and "weights_only=True" not in line:
                    offenders.append(f"{path.relative_to(ROOT)}: {line.strip()}")
    assert not offenders, offenders
