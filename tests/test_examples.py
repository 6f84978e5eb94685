"""The examples run: (a) and (b) at tiny sizes, as a user runs them; (c)'s command lines parse."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analyses.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TIMEOUT_S = 600  # generous: a loaded 2-core machine runs the tiny examples in ~15 s each when quiet


def run_example(name: str, tmp_path) -> str:
    env = {**os.environ, "LANDSCAPE_EXAMPLES_TINY": "1", "LANDSCAPE_EXAMPLES_OUT": str(tmp_path / "out"),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(EXAMPLES / name)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_own_model_and_data_example(tmp_path):
    out = run_example("own_model_and_data.py", tmp_path)
    assert "top eigenvalues" in out and "converged: True" in out
    for name in ("a_density.png", "a_linesearch.png", "a_surface.png"):
        assert (tmp_path / "out" / name).stat().st_size > 1000


def test_own_training_loop_example(tmp_path):
    out = run_example("own_training_loop.py", tmp_path)
    eig = [np.fromstring(m, sep=" ") for m in re.findall(r"(?:recorded run|imported    ): \[([^\]]*)\]", out)]
    assert len(eig) == 2 and len(eig[0]) == 3 and (eig[0] == eig[1]).all()
    results = tmp_path / "out"
    assert (results / "report" / "report.html").exists() and (results / "figures" / "training_curves.png").exists()
    for analysis in ("hessian", "linesearch", "sharpness", "surface"):
        assert f"$ landscape {analysis} " in out


def _commands(script: Path) -> list[list[str]]:
    text = re.sub(r"\\\n\s*", " ", script.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("landscape ")]
    env = {"OUT": "/c10", "DATA": "/data", "PARTITION": "gpu", "SETUP": "true", "run": "c10"}
    return [shlex.split(re.sub(r"\$(\w+)", lambda m: env[m.group(1)], line.replace("${", "$").replace("}", "")))[1:]
            for line in lines]


@pytest.mark.parametrize("argv", _commands(EXAMPLES / "cifar10_resnet_cluster.sh"), ids=lambda a: a[0])
def test_cluster_example_command_lines_parse(argv):
    """(c) is not run in CI; its commands must still be valid `landscape` command lines."""
    args = build_parser(only=argv[0]).parse_args(argv)
    assert args.command == argv[0]
