"""Run the benchmark suite: every benchmark in its own process, one Markdown report.

    python bench/run.py [--quick | --tiny] [--only NAMES] [--device cpu|cuda] [--json OUT] [--markdown OUT]

``--quick`` fits a few minutes per benchmark on a 2-core CPU; ``--tiny`` is a smoke test of
the code paths (seconds; its figures mean nothing). ``--only hvp,topk`` picks benchmarks.
Each benchmark runs as a subprocess (so a memory setting or a crash in one cannot touch
another) with ``OMP_NUM_THREADS=--threads`` (default 1: stable times on a shared machine, see
``common.setup_torch``) and prints Markdown; ours also write JSON, gathered into ``--json``.

Benchmarks: ours (``hvp``, ``topk``, ``sharpness_track``, ``density_trace``, ``scaling``, ``gpu`` — the last only
on a CUDA device, or with ``--tiny --device cpu``) and, when their files exist, those of the
other packages (``trainer_overhead``, ``hessian_jobs``, ``linesearch_cost``, ``projections``, ``hyper``,
``interventions_cost``),
run through their own command lines with the flags below.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OURS = ("hvp", "topk", "sharpness_track", "density_trace", "scaling", "gpu")
# Other packages' benchmarks: flags for (full, quick, tiny); they take --device where listed.
OTHERS = {
    "trainer_overhead": ([], ["--steps", "200", "--repeats", "3"], ["--steps", "20", "--repeats", "1"]),
    "hessian_jobs": ([], ["--quick"], ["--quick"]),
    "linesearch_cost": ([], ["--model", "cnn1d", "--dataset", "mnist1d", "--N", "1000", "--batch-size", "250",
                             "--repeats", "2"],
                        ["--model", "cnn1d", "--dataset", "synthetic1d", "--N", "128", "--batch-size", "64",
                         "--k", "2", "--num-t", "5", "--minibatch-size", "0", "--repeats", "1"]),
    "projections": ([], ["--N", "1000", "--grid", "5", "--repeat", "2"],
                    ["--N", "128", "--k", "2", "--grid", "3", "--repeat", "1"]),
    "hyper": ([], ["--quick"], ["--tiny"]),
    "interventions_cost": ([], ["--N", "1000", "--batch-size", "250", "--repeats", "5"], ["--tiny"]),
}
TAKES_DEVICE = {"trainer_overhead", "linesearch_cost", "projections", "hyper", "interventions_cost"}


def _size_index(args) -> int:
    return 2 if args.tiny else 1 if args.quick else 0


def selected(args) -> list[str]:
    """Benchmarks to run, in suite order; unknown names are an error."""
    names = [n for n in OURS + tuple(OTHERS) if n in OURS or (HERE / f"{n}.py").exists()]
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(OURS) - set(OTHERS))
        if unknown:
            raise SystemExit(f"run.py: unknown benchmark(s) {unknown}; known: {list(OURS) + list(OTHERS)}")
        names = [n for n in names if n in wanted]
    return names


def command(name: str, args, json_path: Path) -> list[str] | None:
    """The subprocess command line, or None when the benchmark does not apply here."""
    cmd = [sys.executable, str(HERE / f"{name}.py")]
    if name in OURS:
        if name == "gpu" and not (args.device.startswith("cuda") or args.tiny):
            return None
        flags = ["--tiny"] if args.tiny else ["--quick"] if args.quick else []
        if name == "gpu" and not args.device.startswith("cuda"):
            flags += ["--no-compile"]
        return cmd + flags + ["--device", args.device, "--threads", str(args.threads), "--json", str(json_path)]
    extra = ["--device", args.device] if name in TAKES_DEVICE else []
    return cmd + OTHERS[name][_size_index(args)] + extra


def run_one(name: str, args, workdir: Path) -> dict:
    """Run one benchmark; its stdout (Markdown), exit status, wall time and JSON results."""
    json_path = workdir / f"{name}.json"
    cmd = command(name, args, json_path)
    if cmd is None:
        return dict(name=name, skipped="no CUDA device: GPU figures not measured", command=None)
    print(f"== {name}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    threads = str(args.threads)
    load_before, start = os.getloadavg(), time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=HERE.parent,
                          env=dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads))
    out = dict(name=name, command=_shown(cmd),
               returncode=done.returncode, seconds=time.perf_counter() - start, markdown=done.stdout,
               load_before=[round(x, 2) for x in load_before], load_after=[round(x, 2) for x in os.getloadavg()],
               threads=args.threads)
    if json_path.exists():
        out["results"] = json.loads(json_path.read_text())
    return out


def _shown(cmd: list[str]) -> str:
    """The command as a user would type it: repo-relative script, no temporary --json path."""
    if "--json" in cmd:
        i = cmd.index("--json")
        cmd = cmd[:i] + cmd[i + 2:]
    return " ".join(["python", *[str(Path(c).relative_to(HERE.parent)) if c.startswith(str(HERE)) else c
                                 for c in cmd[1:]]])


def markdown(results: list[dict]) -> str:
    """All sections, each with the command that produced it."""
    parts = []
    for r in results:
        parts.append(f"## {r['name']}\n")
        if "skipped" in r:
            parts.append(f"Not run: {r['skipped']}.\n")
            continue
        status = "" if r["returncode"] == 0 else f" — FAILED (exit status {r['returncode']})"
        parts.append(f"Command: `{r['command']}` (OMP_NUM_THREADS={r['threads']}; {r['seconds']:.0f} s; load average "
                     f"1/5/15 min before {r['load_before']}, after {r['load_after']}){status}\n\n"
                     f"{r['markdown'].strip()}\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="minutes per benchmark on 2 CPU cores")
    size.add_argument("--tiny", action="store_true", help="smoke test of every code path")
    parser.add_argument("--only", default=None, help="comma-separated benchmark names")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of every benchmark (default 1)")
    parser.add_argument("--json", default=None, help="write every result here")
    parser.add_argument("--markdown", default=None, help="write the combined Markdown here")
    args = parser.parse_args(argv)
    args.device = args.device or _default_device()
    with tempfile.TemporaryDirectory() as tmp:
        results = [run_one(name, args, Path(tmp)) for name in selected(args)]
    text = markdown(results)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return int(any(r.get("returncode", 0) != 0 for r in results))


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


if __name__ == "__main__":
    raise SystemExit(main())
