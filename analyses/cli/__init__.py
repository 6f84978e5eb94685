"""The ``landscape`` command line.

Each subcommand is a module in this package that defines::

    NAME = "hessian"                 # the subcommand
    HELP = "one line for --help"
    def add_arguments(parser): ...   # argparse arguments
    def run(args) -> int: ...        # arguments → config → driver; returns the exit code

Modules are discovered, so adding a command means adding one file (``args`` holds the
argument groups several commands share; a command never imports another command). Only
the chosen command's module is imported: ``landscape --help`` reads each command's ``HELP``
from its source without importing it (and so without importing torch). Errors the toolkit
raises on purpose (:class:`landscape.errors.LandscapeError`) become one line on stderr and
the error's exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import os
import pkgutil
import sys
from pathlib import Path

from landscape.errors import LandscapeError

SHARED = frozenset({"args"})   # modules of this package that are not subcommands


def _module_names() -> dict[str, str]:
    """Subcommand → module name (``sharpness_study.py`` is ``sharpness-study``), without importing."""
    return {info.name.replace("_", "-"): info.name for info in pkgutil.iter_modules(__path__)
            if not info.name.startswith("_") and info.name not in SHARED}


def _help_of(module: str) -> str:
    """The ``HELP = "..."`` constant of a command module, read from its source (no import)."""
    tree = ast.parse((Path(__path__[0]) / f"{module}.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "HELP" for t in node.targets):
            return ast.literal_eval(node.value)
    return ""


def command(name: str):
    """The module of the subcommand ``name`` (for commands that run others, like ``jobs``)."""
    modules = _module_names()
    if name not in modules:
        raise LandscapeError(f"unknown command {name!r}; commands: {', '.join(sorted(modules))}")
    return importlib.import_module(f"{__name__}.{modules[name]}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser: the full arguments of ``only``'s module, or every command with its one-line help."""
    from landscape import __version__

    parser = argparse.ArgumentParser(prog="landscape", description="Loss landscapes and Hessian spectra of neural networks.")
    parser.add_argument("--version", action="version", version=f"landscape {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command, module_name in sorted(_module_names().items()):
        if only is not None and command != only:
            continue
        if only is None:
            help_ = _help_of(module_name)
            sub.add_parser(command, help=help_, description=help_)
            continue
        module = importlib.import_module(f"{__name__}.{module_name}")
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")  # figures go to files: never open a window (plots/style.py)
    chosen = argv[0] if argv and argv[0] in _module_names() else None
    parser = build_parser(only=chosen)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    from analyses.driver import progress

    progress.configure(getattr(args, "progress", None))
    try:
        return int(args._run(args) or 0)
    except LandscapeError as err:
        print(f"landscape {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"landscape {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:     # `landscape info FILE | head`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        progress.configure(None)


if __name__ == "__main__":
    sys.exit(main())
