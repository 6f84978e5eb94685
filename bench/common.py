"""Shared machinery of the benchmark suite: timing, peak memory, machine header, tables.

Timing (:func:`time_call`): ``warmup`` untimed calls, then ``repeats`` timed calls, each
bracketed by ``time.perf_counter()`` with a device synchronisation (``torch.cuda.synchronize``)
before the start and before the stop, so GPU work queued by the call is inside the interval.
We report the median and the min–max spread; the median is the figure, the spread says how
noisy the (shared) machine was.

Peak memory (:class:`PeakMemory`), stated with every figure:

* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (tensor memory
  held by the caching allocator's clients; the cache itself is not counted), minus the memory
  allocated at the start: the call's own working memory.
* CPU: the process RSS read from ``/proc/self/statm`` by a background thread every
  ``RSS_SAMPLE_S`` seconds, peak minus the RSS at the start. ``getrusage`` maxrss is not used:
  it is a lifetime high-water mark and cannot be reset between calls. So that the RSS follows
  the live tensors, glibc is told to serve every allocation ≥ ``MMAP_THRESHOLD`` bytes by
  ``mmap`` (returned to the OS when freed) and ``malloc_trim(0)`` runs before the call;
  without this, memory freed by earlier calls is reused unseen and the figure reads ~0. The
  setting makes allocation slower, so a benchmark measures memory only *after* its timings
  (and run.py runs every benchmark in its own process). Small allocations and spikes shorter
  than the sampling period can be missed: the CPU figure is good to a few MB.
"""

from __future__ import annotations

import ctypes
import datetime
import importlib.metadata as md
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

RSS_SAMPLE_S = 0.002  # CPU RSS sampling period (s): short next to any timed call here (≥ 10 ms)
MMAP_THRESHOLD = 64 * 1024  # bytes: glibc allocations at least this big are mmapped (see PeakMemory)
_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter number (malloc.h)
CPU_THREADS = 1  # default intra-op threads on CPU (see setup_torch)
BENCH_DATE = "2026-11-22"  # the date the figures in RESULTS.md were measured
PEERS = ("pyhessian", "hessian-eigenthings", "curvlinops-for-pytorch", "backpack-for-pytorch")


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of repeated calls: median, min, max and every sample."""

    median_s: float
    min_s: float
    max_s: float
    samples: tuple[float, ...]

    def spread(self) -> str:
        """``"min–max"`` in seconds, for tables."""
        return f"{self.min_s:.3g}–{self.max_s:.3g}"


_T0 = time.perf_counter()


def log(message: str) -> None:
    """Progress to stderr, with seconds since the process started."""
    print(f"[{time.perf_counter() - _T0:7.1f} s] {message}", file=sys.stderr, flush=True)


def sync(device: torch.device | str) -> None:
    """Wait for queued GPU work (a no-op on CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], *, repeats: int, warmup: int = 1,
              device: torch.device | str = "cpu") -> tuple[Timing, Any]:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` untimed ones.

    Returns:
        The :class:`Timing` and the result of the last call.
    """
    out = None
    for _ in range(warmup):
        out = fn()
    samples = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        out = fn()
        sync(device)
        samples.append(time.perf_counter() - start)
    return Timing(statistics.median(samples), min(samples), max(samples), tuple(samples)), out


def time_interleaved(fns: dict[str, Callable[[], Any]], *, repeats: int, warmup: int = 1,
                     device: torch.device | str = "cpu") -> dict[str, Timing]:
    """Time several calls side by side: round r times every ``fns[name]`` once, in turn.

    Interleaving makes a change of machine load hit every method alike, so per-round ratios
    (see :func:`round_ratios`) are fairer than ratios of separately measured medians.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(time_call(fn, repeats=1, warmup=0, device=device)[0].median_s)
    return {name: Timing(statistics.median(s), min(s), max(s), tuple(s)) for name, s in samples.items()}


def round_ratios(t: Timing, base: Timing, per_call: float = 1.0) -> tuple[float, float, float]:
    """Median, min and max over rounds of ``t / per_call / base`` (same-round samples)."""
    r = [a / per_call / b for a, b in zip(t.samples, base.samples)]
    return statistics.median(r), min(r), max(r)


def profile_top_ops(fn: Callable[[], Any], device: torch.device | str = "cpu", rows: int = 12) -> str:
    """``torch.profiler`` table of the ops with the most self time in one call of ``fn``."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.device(device).type == "cuda" else [])
    with profile(activities=activities) as prof:
        fn()
        sync(device)
    key = "self_device_time_total" if torch.device(device).type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


def add_common_args(parser) -> None:
    """Flags every bench module takes."""
    parser.add_argument("--quick", action="store_true", help="small problem, few repeats (minutes on 2 CPU cores)")
    parser.add_argument("--tiny", action="store_true", help="smallest problem: a smoke test of the code path")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", default=None, help="write the results here as JSON")
    parser.add_argument("--threads", type=int, default=None, help=f"torch intra-op threads (default on CPU: {CPU_THREADS})")


def setup_torch(device: str, threads: int | None = None) -> torch.device:
    """Threads, and full float32 precision on GPU (TF32 off: accuracy figures must not depend on it).

    CPU default: ``CPU_THREADS`` intra-op thread. On the shared 2-core machine, two threads
    made the same call take 1.3 s or 11 s depending on what else ran (OpenMP threads waiting
    for a core), while one thread kept the spread within ~15 % (RESULTS.md, "Method").
    """
    if threads or torch.device(device).type == "cpu":
        torch.set_num_threads(threads or CPU_THREADS)
    if torch.device(device).type == "cuda":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
    return torch.device(device)


def _release_freed_memory() -> bool:
    """Make freed tensors leave the RSS (glibc only); False where that is not possible."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Context manager: working memory of the enclosed code, in bytes (``.peak_bytes``).

    See the module docstring for what is measured on each device (``.method``).
    """

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.peak_bytes = 0
        self.method = ("cuda max_memory_allocated - allocated at start" if self.device.type == "cuda"
                       else f"RSS sampled every {RSS_SAMPLE_S * 1e3:g} ms, peak - start, allocations "
                            f">= {MMAP_THRESHOLD // 1024} KiB mmapped and malloc_trim before (after the timings)")

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        else:
            _release_freed_memory()
            self._start = self._peak = _rss_bytes()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_S):
            self._peak = max(self._peak, _rss_bytes())

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device) - self._start
        else:
            self._stop.set()
            self._thread.join()
            self.peak_bytes = max(self._peak, _rss_bytes()) - self._start


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        return names[0] if names else platform.processor()
    except OSError:
        return platform.processor()


def machine_info(device: torch.device | str) -> dict[str, Any]:
    """Machine, versions and load: the header every figure is quoted with."""
    device = torch.device(device)
    info = {"date_measured": datetime.date.today().isoformat(), "cpu": _cpu_model(),
            "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "torch": torch.__version__,
            "numpy": _version("numpy"), "scipy": _version("scipy"), "device": str(device)}
    info.update({dist: _version(dist) for dist in PEERS})
    if device.type == "cuda":
        info.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                    float32_matmul_precision=torch.get_float32_matmul_precision())
    return info


def header_markdown(info: dict[str, Any]) -> str:
    """The machine header as one Markdown paragraph."""
    return "Machine: " + "; ".join(f"{k} = {v}" for k, v in info.items())


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table; floats are printed with 3–4 significant digits."""
    def cell(x: Any) -> str:
        if isinstance(x, float):
            return f"{x:.3g}" if abs(x) < 1e4 else f"{x:.4g}"
        return str(x)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖ / ‖b‖ in float64."""
    a, b = a.detach().double().cpu().reshape(-1), b.detach().double().cpu().reshape(-1)
    return float((a - b).norm() / b.norm())


def to_jsonable(x: Any) -> Any:
    """Dataclasses, tensors and tuples → plain JSON values."""
    if hasattr(x, "__dataclass_fields__"):
        return to_jsonable(asdict(x))
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().tolist()
    if isinstance(x, (np.ndarray, np.generic)):
        return x.tolist()
    return x


def bench_main(doc: str, run: Callable[[Any], dict], report: Callable[[dict], str], argv: list[str] | None,
               extra_args: Callable[[Any], None] | None = None,
               check: Callable[[Any], int | None] | None = None) -> int:
    """The command line every suite benchmark shares: common flags (+ ``extra_args(parser)``),
    an optional ``check(args)`` that may return an exit status, then ``run``, the Markdown
    ``report`` on stdout and ``--json``."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    add_common_args(parser)
    if extra_args is not None:
        extra_args(parser)
    args = parser.parse_args(argv)
    status = check(args) if check is not None else None
    if status is not None:
        return status
    result = run(args)
    print(report(result))
    if args.json:
        write_json(args.json, result)
    return 0


def write_json(path: str | os.PathLike, payload: dict) -> None:
    """Write the results as indented JSON."""
    with open(path, "w") as f:
        json.dump(to_jsonable(payload), f, indent=1)


def mib(n_bytes: float) -> float:
    """Bytes → MiB."""
    return n_bytes / 2**20
