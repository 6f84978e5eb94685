"""The ``landscape`` command line.

Each subcommand is a module in :mod:`analyses.commands` that defines::

    NAME = "hessian"                 # the subcommand
    HELP = "one line for --help"
    def add_arguments(parser): ...   # argparse arguments
    def run(args) -> int: ...        # the work; returns the exit code

Modules are discovered, so adding a command means adding one file. Errors the
toolkit raises on purpose (:class:`landscape.errors.LandscapeError`) become one
line on stderr and the error's exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from landscape.errors import LandscapeError


def _module_names() -> dict[str, str]:
    """Subcommand → module name (``sharpness_study.py`` is ``sharpness-study``), without importing."""
    import analyses.commands as pkg

    return {info.name.replace("_", "-"): info.name for info in pkgutil.iter_modules(pkg.__path__)
            if not info.name.startswith("_")}


def _command_modules(only: str | None = None):
    for command, module in sorted(_module_names().items()):
        if only is None or command == only:
            yield importlib.import_module(f"analyses.commands.{module}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with one subparser per command module (only ``only``'s when given: fast start-up)."""
    from landscape import __version__

    parser = argparse.ArgumentParser(
        prog="landscape",
        description="Loss landscapes and Hessian spectra of neural networks.",
    )
    parser.add_argument("--version", action="version", version=f"landscape {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules(only):
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
    try:
        return int(args._run(args) or 0)
    except LandscapeError as err:
        print(f"landscape {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"landscape {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
