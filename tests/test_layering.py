"""The import rules of docs/contracts.md ("Layout and import rules"), checked by parsing every module's imports.

The packages and what each may import:

* ``landscape/`` — the numerical core: never ``analyses``, ``checkpoints`` or matplotlib;
  h5py only in ``landscape/io``; ``landscape/solvers`` see only a matvec.
* ``checkpoints/`` — the trainer: the core only.
* ``analyses/<analysis>`` (every module of ``analyses`` outside ``driver``, ``cli``, ``plots``,
  ``output``) — computes: never opens files (no h5py, ``landscape.io`` only for ``step_key``,
  no ``checkpoints``), never plots, never imports the driver (but its ``records``), the command
  line or the output.
* ``analyses/driver`` — runs analyses: never the command line, plots or output.
* ``analyses/cli`` — thin: a command never imports another command (only ``args``, the
  shared argument groups, and the package's ``command`` lookup).
* ``analyses/plots`` — reads stored results: never torch, the driver or the command line.
* ``analyses/output`` — renders figures and the report: never torch or the command line.

No package imports another package's private (``_name``) modules, and there is no import cycle.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("landscape", "checkpoints", "analyses")
ANALYSES_ROLES = ("driver", "cli", "plots", "output")


def imports_of(path: Path) -> set[str]:
    """Absolute module names imported by ``path`` (``from a import b`` counts as ``a`` and ``a.b``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def starts(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def role(path: Path) -> str:
    """``landscape``, ``checkpoints``, or for analyses: ``driver``/``cli``/``plots``/``output``/``analysis``."""
    parts = path.relative_to(ROOT).parts
    if parts[0] != "analyses":
        return parts[0]
    return parts[1] if len(parts) > 2 and parts[1] in ANALYSES_ROLES else "analysis"


# role → (banned import prefixes, allowed exceptions, reason)
RULES = {
    "landscape": (("analyses", "checkpoints", "matplotlib"), (), "the core never imports analyses/checkpoints/plotting"),
    "checkpoints": (("analyses", "matplotlib"), (), "the trainer imports only the core"),
    "analysis": (("h5py", "matplotlib", "checkpoints", "landscape.io", "analyses.driver", "analyses.cli",
                  "analyses.plots", "analyses.output"), ("landscape.io.step_key", "analyses.driver.records"),
                 "an analysis computes: no files, no plots, no driver but its records"),
    "driver": (("analyses.cli", "analyses.plots", "analyses.output", "matplotlib"), (),
               "the driver runs analyses; it never reaches up to the command line or the output"),
    "plots": (("torch", "analyses.driver", "analyses.cli", "checkpoints"), (), "plot code reads stored results only"),
    "output": (("torch", "analyses.cli", "checkpoints"), (), "output renders stored results only"),
    "cli": ((), (), ""),
}


@pytest.mark.parametrize("which", sorted(RULES))
def test_import_rules(which):
    banned, allowed, reason = RULES[which]
    offenders = []
    for package in PACKAGES:
        for path in files(package):
            if role(path) != which or path.name == "__main__.py":   # the entry-point shim
                continue
            bad = sorted(m for m in imports_of(path) if starts(m, *banned) and not starts(m, *allowed)
                         and not any(a.startswith(m + ".") for a in allowed))
            offenders += [f"{path.relative_to(ROOT)} imports {m}" for m in bad]
    assert not offenders, f"{reason}:\n" + "\n".join(offenders)


def test_solvers_see_only_a_matvec():
    banned = ("torch.nn", "h5py", "matplotlib", "landscape.models", "landscape.datasets", "landscape.objective",
              "landscape.io")
    offenders = [f"{p.relative_to(ROOT)} imports {m}" for p in files("landscape/solvers")
                 for m in imports_of(p) if starts(m, *banned)]
    assert not offenders, offenders


def test_h5py_only_in_io():
    offenders = [str(p.relative_to(ROOT)) for p in files("landscape")
                 if "io" not in p.relative_to(ROOT).parts and "h5py" in imports_of(p)]
    assert not offenders, f"h5py outside landscape/io: {offenders}"


def test_no_command_imports_another_command():
    commands = {module_name(p) for p in files("analyses/cli") if p.stem not in ("__init__", "args")}
    offenders = [f"{p.relative_to(ROOT)} imports {m}" for p in files("analyses/cli")
                 for m in imports_of(p) if m in commands and m != module_name(p)]
    assert not offenders, offenders


def _private_module(name: str) -> str | None:
    """The private package prefix of ``name`` (``landscape.io._items`` → ``landscape.io``), if any."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def test_no_private_module_of_another_package():
    offenders = []
    for package in PACKAGES:
        for path in files(package):
            me = module_name(path)
            for m in imports_of(path):
                owner = _private_module(m)
                if owner is not None and starts(m.split(".")[0], *PACKAGES) and not starts(me, owner):
                    offenders.append(f"{path.relative_to(ROOT)} imports {m}")
    assert not offenders, offenders


def _graph() -> dict[str, set[str]]:
    """Module → the project modules it imports at module level (imports inside functions are lazy)."""
    modules = {module_name(p): p for package in PACKAGES for p in files(package)}
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        found = set()
        for node in tree.body:
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = {f"{node.module}.{a.name}" for a in node.names} & modules.keys()
                found.update(subs)       # `from pkg import submodule` depends on the submodule
                if len(subs) < len(node.names):
                    found.add(node.module)
        # a package's own __init__ runs before any of its modules: not an edge
        graph[name] = {m for m in found if m in modules and m != name and not name.startswith(m + ".")}
    return graph


def test_no_import_cycle():
    graph, state, cycle = _graph(), {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycle.append(" → ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycle, "import cycles:\n" + "\n".join(cycle)


def test_no_pickle_anywhere():
    offenders = []
    for package in PACKAGES:
        for path in files(package):
            text = path.read_text()
            if "pickle" in imports_of(path) or "allow_pickle=True" in text:
                offenders.append(str(path.relative_to(ROOT)))
            for line in text.splitlines():
                if "torch.load(" in line and "weights_only=True" not in line:
                    offenders.append(f"{path.relative_to(ROOT)}: {line.strip()}")
    assert not offenders, offenders


def test_no_result_keys_parsed_outside_io():
    """One function writes per-step keys (``landscape.io.step_key``); only ResultsFile reads them back."""
    patterns = ('removeprefix("step_")', 'split("/")[1]', '.rsplit("/", 1)[1]', "[5:])")
    offenders = [f"{p.relative_to(ROOT)}: {pat}" for package in ("analyses", "checkpoints", "landscape")
                 for p in files(package) if "io" not in p.relative_to(ROOT).parts
                 for pat in patterns if pat in p.read_text()]
    assert not offenders, offenders
