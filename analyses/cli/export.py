"""``landscape export FILE --out DIR``: the per-step tables of a run or results file as CSV.

One CSV per table, one row per observation (tidy), ready for ``pandas.read_csv``:

* results file — ``eigenvalues.csv`` (step, i, eigenvalue, residual, …), ``traces.csv``,
  ``line_search_fits.csv``, ``sharpness.csv`` (one row per step, one column per measure) and
  ``scalars.csv`` (every stored 0-d number: analysis, step, quantity, name, value);
* run file — ``steps.csv`` (step, minibatch loss, lr), ``evaluations.csv``, ``online_sharpness.csv``.

Tables with no rows are not written. Existing CSVs are replaced only with ``--overwrite``.
"""

from __future__ import annotations

from pathlib import Path

from landscape.errors import InputError, OutputExistsError

NAME = "export"
HELP = "write a run or results file's per-step tables as CSV (eigenvalues, traces, fits, sharpness, metrics)"


def add_arguments(p) -> None:
    p.add_argument("file", metavar="FILE", help="a run file or a results file")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the CSV files")
    p.add_argument("--tables", default=None, help="comma-separated table names (default: every table with rows)")
    p.add_argument("--overwrite", action="store_true", help="replace CSV files that exist")


def run(args) -> int:
    from analyses.output import tables as T
    from landscape.io import ResultsFile, RunFile, file_kind

    is_run = file_kind(args.file) == "run"
    available = T.RUN_TABLES if is_run else T.RESULTS_TABLES
    chosen = _chosen(args.tables, available)
    out = Path(args.out)
    clashes = [out / f"{n}.csv" for n in chosen if (out / f"{n}.csv").exists()]
    if clashes and not args.overwrite:
        raise OutputExistsError(f"{clashes[0]} exists; pass --overwrite to replace it or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    with (RunFile(args.file) if is_run else ResultsFile(args.file, "r")) as f:
        for name in chosen:
            rows = available[name](f)
            if rows:
                T.write_csv(rows, out / f"{name}.csv")
                print(f"{out / f'{name}.csv'}: {len(rows)} rows")
    return 0


def _chosen(spec: str | None, available: dict) -> list[str]:
    if spec is None:
        return list(available)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise InputError(f"--tables: unknown {', '.join(unknown)}; this file has {', '.join(available)}")
    return names
