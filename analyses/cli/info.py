"""``landscape info FILE [--json]``: what a run file or a results file holds.

A run file: model, parameters, data, steps logged, snapshots, status (completeness) and
the final metrics; ``--json`` adds the SHA-256 of θ at every saved step, so two runs can be
compared (``jq .param_sha256``). A results file: the items it holds with their main
attributes.
"""

from __future__ import annotations

import json

import numpy as np

NAME = "info"
HELP = "describe a run file or a results file (--json: machine-readable, with parameter checksums)"

MAIN_ATTRS = ("step", "analysis", "kind", "bn", "seed", "k", "which", "num_matvecs", "converged", "wall_time")
MAX_LISTED = 12  # snapshot steps shown in the text summary (first and last few)
MAX_INLINE = 12  # 1-D arrays up to this length are shown by value (eigenvalues, residuals, radii, …)


def add_arguments(p) -> None:
    p.add_argument("file", metavar="FILE", help="a run file (landscape train) or a results file")
    p.add_argument("--json", action="store_true", help="print JSON (run files: with per-snapshot SHA-256)")


def run(args) -> int:
    from landscape.io import file_kind

    info = run_info(args.file) if file_kind(args.file) == "run" else results_info(args.file)
    print(json.dumps(info, indent=2, sort_keys=True, default=str) if args.json else format_info(info))
    return 0


def run_info(path) -> dict:
    """The run file's :meth:`RunFile.info` plus the config, lr range and sharpness summary."""
    from landscape.io import RunFile

    with RunFile(path) as f:
        info = f.info()
        info["kind"] = "run"
        info["config"] = f.config
        info["total_steps"] = f.meta.get("total_steps")
        info["complete"] = f.status == "complete"
        info["parents"] = f.meta.get("parents", {})
        info.update(_origin_fields(f))
        sharp = f.sharpness()
        if len(sharp["step"]):
            info["last_sharpness"] = _last_sharpness(sharp, f.config)
    return info


def _origin_fields(f) -> dict:
    """Who wrote the run, with which optimizer, what it logs, what each epoch leaves out."""
    meta, cfg = f.meta, f.config
    return {"source": meta.get("source", "train"), "optimizer": meta.get("optimizer") or _optimizer(cfg),
            "batch_log": f.has_batch_log, "replay": meta.get("replay", {"possible": True, "exact": True}),
            "model_data_kwargs": meta.get("model_data_kwargs", {}), "model_origin": meta.get("model_origin"),
            "dropped_per_epoch": meta.get("dropped_per_epoch")}


def _optimizer(cfg: dict) -> dict:
    if cfg.get("optimizer", "sgd") == "adamw":
        return {"name": "adamw", "betas": cfg.get("betas"), "eps": cfg.get("eps"), "weight_decay": cfg.get("weight_decay")}
    return {"name": "sgd", "momentum": cfg.get("momentum", 0.0), "nesterov": cfg.get("nesterov", False),
            "weight_decay": cfg.get("weight_decay", 0.0)}


def _last_sharpness(sharp: dict, cfg: dict) -> dict:
    from landscape.stability import run_constant, threshold_label

    c, lr = run_constant(cfg), float(sharp["lr"][-1])
    out = {"step": int(sharp["step"][-1]), "eigenvalues": sharp["eigenvalues"][-1].tolist(),
           "threshold": None if c is None else c / lr, "threshold_label": threshold_label(cfg),
           "preconditioned": cfg.get("optimizer", "sgd") == "adamw"}
    if cfg.get("optimizer", "sgd") == "sgd":
        out["two_over_lr"] = 2.0 / lr  # kept for readers of older output; "threshold" is the run's own
    return out


def results_info(path) -> dict:
    """The complete items of a results file with their main attributes."""
    from landscape.io import ResultsFile

    with ResultsFile(path, "r") as f:
        items = {}
        for key in f.keys():
            arrays, attrs = f.read_item(key)
            items[key] = {"arrays": {k: list(getattr(v, "shape", ())) for k, v in arrays.items()},
                          "values": {k: _shown(v) for k, v in arrays.items() if _shown(v) is not None},
                          **{k: attrs[k] for k in MAIN_ATTRS if k in attrs}}
        incomplete = sorted(set(f.keys(complete_only=False)) - set(items))
    return {"kind": "results", "path": str(path), "items": items, "incomplete": incomplete}


def _shown(v):
    """What is shown by value: a 0-d number (the trace, λ_max, …) or a short 1-D numeric array
    (the eigenvalues and their residuals, …) as a list; None for anything larger."""
    a = np.asarray(v)
    if a.dtype.kind not in "biuf" or a.ndim > 1 or (a.ndim == 1 and len(a) > MAX_INLINE):
        return None
    return a.item() if a.ndim == 0 else a.tolist()


def _value(v) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(f"{x:.4g}" for x in v) + "]"
    return f"{v:.6g}"


def format_info(info: dict) -> str:
    """A human-readable summary of :func:`run_info` or :func:`results_info`."""
    return _format_run(info) if info["kind"] == "run" else _format_results(info)


def _steps(steps: list) -> str:
    if len(steps) <= MAX_LISTED:
        return ", ".join(map(str, steps))
    return ", ".join(map(str, steps[:5])) + ", …, " + ", ".join(map(str, steps[-5:]))


def _status(i: dict) -> str:
    if i["status"] in ("running", "stopped"):  # "running" in a file whose trainer was killed, or is live
        hint = f" (incomplete: `landscape train --resume --out {i['path']}` continues it)"
    else:
        hint = ""
    return i["status"] + hint + (f": {i['status_message']}" if i["status_message"] else "")


def _format_run(i: dict) -> str:
    total = i.get("total_steps")
    lines = [
        f"run file   {i['path']}" + (f"  (written by {_SOURCES[i['source']]})" if i.get("source", "train") != "train"
                                     else ""),
        f"model      {i['model']} {json.dumps(i['model_kwargs'])}  (P = {i['params']:,}, BN buffers = {i['buffers']:,})"
        + (f"; from the data: {json.dumps(i['model_data_kwargs'])}" if i.get("model_data_kwargs") else ""),
        f"data       {json.dumps(i['dataset'])}  sha256 {str(i['dataset_checksum'])[:16]}…",
        f"optimizer  {_format_optimizer(i.get('optimizer') or {})}",
        f"batches    {_format_batches(i)}",
        f"steps      {i['steps_logged']} logged" + (f" of {total}" if total else ""),
        f"snapshots  {len(i['snapshots'])}: {_steps(i['snapshots'])}",
        f"status     {_status(i)}",
    ]
    if i.get("final_loss") is not None:
        lines.append(f"last loss  {i['final_loss']:.6g} (minibatch)")
    if i.get("final_eval"):
        e = i["final_eval"]
        lines.append(f"last eval  step {e['step']}: train loss {e['train_loss']:.6g} acc {e['train_acc']:.4f}, "
                     f"test loss {e['test_loss']:.6g} acc {e['test_acc']:.4f}")
    if i.get("last_sharpness"):
        s = i["last_sharpness"]
        what = "λ(P⁻¹H)" if s.get("preconditioned") else "λ"
        limit = f" (threshold {s['threshold']:.4g}: {s['threshold_label']})" if s.get("threshold") else ""
        lines.append(f"sharpness  step {s['step']}: {what} = {', '.join(f'{v:.4g}' for v in s['eigenvalues'])}{limit}")
    for name, parent in i.get("parents", {}).items():
        lines.append(f"{name:<10} {parent['path']} (run {parent['run_sha256'][:16]}…)")
    lines.append(f"run id     {i['run_sha256']}")
    return "\n".join(lines)


_SOURCES = {"recorder": "a Recorder in the user's own training loop", "import": "landscape import"}


def _format_optimizer(o: dict) -> str:
    name = o.get("name", "sgd")
    shown = {k: v for k, v in o.items() if k not in ("name", "class") and v not in (None, False)}
    return f"{o.get('class', name)} " + ", ".join(f"{k} {v}" for k, v in shown.items())


def _format_batches(i: dict) -> str:
    if not i.get("batch_log", True):
        kept = "not logged" + ("" if i.get("replay", {}).get("possible", True) else "; unsaved steps cannot be replayed")
        return f"{kept}, seed {i['seed']}"
    text = f"{'full batch' if i['full_batch'] else i['batch_size']}, seed {i['seed']}"
    d = i.get("dropped_per_epoch") or {}
    if d.get("examples"):
        text += f"; each epoch leaves out {d['examples']} examples ({100 * d['fraction']:.1f} %: N mod batch size)"
    return text


def _format_results(i: dict) -> str:
    lines = [f"results file {i['path']}: {len(i['items'])} complete item(s)"]
    for key, item in i["items"].items():
        attrs = ", ".join(f"{k}={item[k]}" for k in MAIN_ATTRS if k in item)
        values = item.get("values", {})
        shapes = ", ".join(f"{k}{tuple(s) if s else ''}" + (f"={_value(values[k])}" if k in values else "")
                           for k, s in item["arrays"].items())
        lines.append(f"  {key}: {shapes}" + (f"  [{attrs}]" if attrs else ""))
    if i["incomplete"]:
        lines.append(f"incomplete (rerun the analysis to finish): {', '.join(i['incomplete'])}")
    return "\n".join(lines)
