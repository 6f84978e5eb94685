"""Targets and Markdown of :mod:`gpu` results."""

from __future__ import annotations

from common import markdown_table

# issue 8, on one H100 (seed implementation: resnet_100k full Hessian in 14 h)
TARGETS = (("one full-data ResNet-20 HVP (50k images)", ("hvp", "hvp_s"), 0.6),
           ("top-20 eigenpairs", ("topk", "seconds"), 90.0),
           ("SLQ density 10 × 100", ("slq", "seconds"), 300.0),
           ("resnet_100k full Hessian, extrapolated", ("dense_100k", "extrapolated_s"), 3600.0))


def targets(result: dict) -> list[dict]:
    """Each target with its value; ``applicable`` only for a full-size run on a CUDA device."""
    applicable = result["machine"]["device"].startswith("cuda") and not result["tiny"]
    out = []
    for name, (section, key), bound in TARGETS:
        value = result[section][key]
        out.append(dict(target=f"{name} ≤ {bound:g} s", value=value, bound=bound, applicable=applicable,
                        met=applicable and value <= bound))
    return out


def _s(x) -> str:
    return "—" if x is None else f"{x:.3g}"


def report(result: dict) -> str:
    h, cfg = result["hvp"], result["config"]
    variants = [[name, _s(v["seconds"]), "—" if v["agreement"] is None else f"{v['agreement']:.1e}",
                 v.get("note", "")] for name, v in h["variants"].items()]
    lines = [f"Problem: {result['problem']}" + (" — TINY CPU SMOKE RUN, not a GPU figure" if result["tiny"] else ""),
             "", markdown_table(["HVP variant", "seconds (median)", "rel. L2 vs plain", "note"], variants), "",
             f"- gradient {h['gradient_s']:.3g} s; HVP {h['hvp_s']:.3g} s = {h['hvp_s'] / h['gradient_s']:.2f}× "
             f"gradient; HVP peak memory {h['hvp_peak_mib']:.0f} MiB",
             f"- FLOPs (FlopCounterMode, one batch × N/B): HVP {h['hvp_tflop']:.3g} TFLOP, gradient "
             f"{h['gradient_tflop']:.3g} TFLOP; measured float32 matmul rate {result['matmul_tflops']:.3g} TFLOP/s "
             f"(n = {cfg['matmul_n']}); floor {result['floor_s']:.3g} s, so the HVP runs at "
             f"{result['floor_s'] / h['hvp_s']:.0%} of the matmul rate",
             f"- top-{cfg['k']} eigsh tol {cfg['topk_tol']:g}: {result['topk']['seconds']:.3g} s, "
             f"{result['topk']['hvps']} HVPs, converged {result['topk']['converged']}",
             f"- SLQ {cfg['slq_probes']} × {cfg['slq_iters']}: {result['slq']['seconds']:.3g} s",
             f"- {cfg['dense_model']} (P = {result['dense_100k']['P']:,}): {result['dense_100k']['columns']} columns in "
             f"{result['dense_100k']['seconds']:.3g} s → whole matrix ≈ {result['dense_100k']['extrapolated_s']:.3g} s", ""]
    for t in result["targets"]:
        verdict = ("met" if t["met"] else "MISSED") if t["applicable"] else "not applicable (not a full GPU run)"
        lines.append(f"- target {t['target']}: {t['value']:.3g} s — {verdict}")
    lines += ["", "One-batch HVP profile (torch.profiler, top ops by self time):", "```", h["profile"], "```"]
    return "\n".join(lines)
