"""The command line: discovery, help, one-line errors."""

import subprocess
import sys

import pytest

from analyses.cli import _module_names, build_parser, main

EXPECTED = {"train", "hessian", "linesearch", "sharpness", "sharpness-study", "gradproj", "evolution",
            "trajectory", "surface", "plot", "report", "info", "jobs", "demo"}


def test_every_design_command_is_there():
    assert EXPECTED <= set(_module_names())


def test_module_names_match_their_command():
    for command, module in _module_names().items():
        assert build_parser(only=command)._subparsers._group_actions[0].choices.keys() == {command}, module


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(c in out for c in EXPECTED)


@pytest.mark.parametrize("command", sorted(EXPECTED))
def test_subcommand_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0


def test_error_is_one_line_and_nonzero(tmp_path):
    missing = tmp_path / "nope.h5"
    proc = subprocess.run([sys.executable, "-m", "landscape", "info", str(missing)], capture_output=True, text=True)
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "nope.h5" in proc.stderr, proc.stderr


def test_top_level_help_imports_no_command_and_no_torch():
    """`landscape --help` lists every command from the modules' source: no torch import (seconds)."""
    code = ("import sys, contextlib, io\nfrom analyses.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try: main(['--help'])\n    except SystemExit: pass\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('analyses.cli.')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout
