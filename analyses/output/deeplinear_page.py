"""The interactive deep-linear page: one self-contained HTML file over precomputed grids.

Reads the stored item ``deeplinear/page/grid`` (written by ``landscape deeplinear page``)
and nothing else: no torch, no recomputation, no network, no server. Three sliders pick the
depth D, the learning rate η and the init wᵢ = c from the stored grids; the page draws on
``<canvas>`` elements

* the excess loss L − L* against the step (log–log), the chosen η bold over the other η of
  the same (D, c) in grey;
* the landscape log₁₀ L(w₁, w₂) of the two-layer net with the hyperbola of minima
  w₁w₂ = â and the gradient-descent path from (c, c) at the chosen η (for D = 2; at other
  depths the D = 2 path of the same η and c is shown and the caption says so);
* the regime map of the chosen depth (label of every (η, c), the choice circled);

and the regime label with the rule it comes from (:mod:`analyses.deeplinear.regimes`).
Arrays travel as base64 float32 in one JSON block; the page is ≤ ``MAX_BYTES``.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

from landscape.errors import InputError, OutputExistsError

KEY = "deeplinear/page/grid"
MAX_BYTES = 5 * 2**20   # the budget for the page
REGIME_COLOURS = ["#999999", "#56B4E9", "#009E73", "#E69F00", "#D55E00"]   # Okabe–Ito, as the figures


def _b64(a) -> str:
    """float32 little-endian bytes of ``a`` (NaN kept), base64."""
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode("ascii")


def payload(arrays: dict, attrs: dict) -> dict:
    """The JSON the page's script reads (shapes explicit, big arrays base64 float32)."""
    loss_min = float(arrays["loss_min"])
    excess = np.asarray(arrays["loss"], dtype=np.float64) - loss_min
    path = arrays.get("path")
    return {
        "depths": [int(d) for d in arrays["depths"]], "lrs": [float(e) for e in arrays["lrs"]],
        "inits": [float(c) for c in arrays["inits"]], "steps": [int(s) for s in arrays["curve_steps"]],
        "regimes": [str(r) for r in arrays["regimes"]], "colours": REGIME_COLOURS,
        "label": np.asarray(arrays["label"]).astype(int).ravel().tolist(),
        "rho": [None if not np.isfinite(v) else round(float(v), 4) for v in np.asarray(arrays["rho_max"]).ravel()],
        "time": np.asarray(arrays["learning_time"]).astype(int).ravel().tolist(),
        "excess": _b64(excess), "grid": [float(g) for g in arrays["grid"]],
        "surface": _b64(np.log10(np.maximum(arrays["surface"], 1e-12))),
        "path": None if path is None else _b64(path), "pathLen": 0 if path is None else int(path.shape[-2]),
        "aHat": float(arrays["a_hat"]), "lossMin": loss_min, "rule": str(attrs.get("rule", "")),
    }


def _read(results) -> tuple[dict, dict]:
    if not results.is_complete(KEY):
        raise InputError(f"{results.path} has no {KEY}; run `landscape deeplinear page --out {results.path}` first")
    return results.read_item(KEY)


def build_page(arrays: dict, attrs: dict, title: str = "Deep linear networks") -> str:
    """The page's HTML text from the stored grid's arrays and attributes."""
    data = json.dumps(payload(arrays, attrs), separators=(",", ":"), allow_nan=False)
    return (TEMPLATE.replace("@TITLE@", html.escape(title)).replace("@CSS@", CSS)
            .replace("@DATA@", data.replace("</", "<\\/")).replace("@SCRIPT@", SCRIPT))


def write_page(results, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write the page for a results file (a path or an open :class:`landscape.io.ResultsFile`).

    Raises:
        OutputExistsError: ``out`` exists and ``overwrite`` is False.
        InputError: the results hold no page grid, or the page would exceed ``MAX_BYTES``.
    """
    from landscape.io import ResultsFile

    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} already exists; pass --overwrite to replace it")
    if isinstance(results, (str, Path)):
        with ResultsFile(results, "r") as rf:
            arrays, attrs = _read(rf)
    else:
        arrays, attrs = _read(results)
    text = build_page(arrays, attrs).encode("utf-8")
    if len(text) > MAX_BYTES:
        raise InputError(f"the page would be {len(text) / 2**20:.1f} MiB (> 5 MiB); use fewer depths, "
                         "learning rates or inits, or fewer --steps")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_bytes(text)
    tmp.replace(out)
    return out


CSS = """
body{font-family:Georgia,'DejaVu Serif',serif;max-width:72em;margin:1.5em auto;padding:0 1em;color:#222}
h1{font-size:1.5em;margin:.2em 0} .controls{display:grid;grid-template-columns:9em 1fr 9em;gap:.4em 1em;
align-items:center;max-width:44em;margin:1em 0} input[type=range]{width:100%} .val{font-family:monospace}
.panels{display:flex;flex-wrap:wrap;gap:1.2em} figure{margin:0} figcaption{font-size:.85em;color:#444;max-width:27em}
canvas{border:1px solid #ddd;background:#fff} #label{font-size:1.3em;font-weight:bold;padding:.2em .6em;
border-radius:.3em;color:#fff;display:inline-block} .chip{color:#fff;padding:0 .4em;margin:.1em;border-radius:.2em;
display:inline-block;font-size:.85em} .rule{font-size:.85em;color:#444;max-width:60em}
"""

TEMPLATE = """<!doctype html><html><head><meta charset=utf-8><title>@TITLE@</title><style>@CSS@</style></head>
<body><h1>@TITLE@</h1>
<p>Gradient descent on the narrow deep linear net y = (w<sub>1</sub>⋯w<sub>D</sub>)·x, started at
w<sub>i</sub> = c, on y = a·x + noise. Move the sliders; every curve was computed beforehand
by <code>landscape deeplinear page</code>.</p>
<div class=controls>
<label for=depth>depth D</label><input id=depth type=range min=0 value=0 step=1><span class=val id=depthVal></span>
<label for=lr>learning rate η</label><input id=lr type=range min=0 value=0 step=1><span class=val id=lrVal></span>
<label for=init>init c</label><input id=init type=range min=0 value=0 step=1><span class=val id=initVal></span>
</div>
<p>Regime: <span id=label></span> <span id=detail class=val></span></p>
<p class=rule id=rule></p>
<div class=panels>
<figure><canvas id=curve width=460 height=340></canvas><figcaption>Excess loss L − L* against the
step (log–log). Bold: the chosen η; grey: the other learning rates at this depth and init.</figcaption></figure>
<figure><canvas id=land width=340 height=340></canvas><figcaption id=landCap>log<sub>10</sub> L(w<sub>1</sub>, w<sub>2</sub>)
of the two-layer net, the hyperbola of minima w<sub>1</sub>w<sub>2</sub> = â (white) and the path from (c, c). <b id=landNote></b></figcaption></figure>
<figure><canvas id=map width=340 height=260></canvas><figcaption>Regime of every (η, c) at this depth
(η on a log axis); the choice is circled.<br><span id=legend></span></figcaption></figure>
</div>
<script id=data type="application/json">@DATA@</script>
<script>@SCRIPT@</script>
</body></html>"""

SCRIPT = r"""
const P = JSON.parse(document.getElementById('data').textContent);
function f32(b64){ if(!b64) return null; const s = atob(b64), u = new Uint8Array(s.length);
  for(let i=0;i<s.length;i++) u[i] = s.charCodeAt(i); return new Float32Array(u.buffer); }
const EX = f32(P.excess), SURF = f32(P.surface), PATH = f32(P.path);
const nD = P.depths.length, nC = P.inits.length, nL = P.lrs.length, nS = P.steps.length, G = P.grid.length;
const sl = {depth: document.getElementById('depth'), lr: document.getElementById('lr'), init: document.getElementById('init')};
sl.depth.max = nD-1; sl.lr.max = nL-1; sl.init.max = nC-1;
sl.depth.value = Math.max(0, P.depths.indexOf(2)); sl.lr.value = Math.floor(nL/2); sl.init.value = Math.max(0, P.inits.indexOf(1));
document.getElementById('rule').textContent = 'Rule: ' + P.rule;
const idx = (d,c,l) => (d*nC + c)*nL + l;
function curve(d,c,l){ const o = idx(d,c,l)*nS; return Array.from(EX.subarray(o, o+nS)); }
const VIRIDIS = [[68,1,84],[71,44,122],[59,81,139],[44,113,142],[33,144,141],[39,173,129],[92,200,99],[170,220,50],[253,231,37]];
function viridis(t){ t = Math.min(1, Math.max(0, t)) * (VIRIDIS.length-1); const i = Math.min(VIRIDIS.length-2, Math.floor(t)), f = t-i;
  return VIRIDIS[i].map((v,k) => Math.round(v + f*(VIRIDIS[i+1][k]-v))); }
function frame(ctx, W, H, m, xl, yl){ ctx.fillStyle='#fff'; ctx.fillRect(0,0,W,H); ctx.strokeStyle='#444'; ctx.lineWidth=1;
  ctx.strokeRect(m.l, m.t, W-m.l-m.r, H-m.t-m.b); ctx.fillStyle='#222'; ctx.font='12px serif';
  ctx.fillText(xl, (W+m.l)/2-20, H-4); ctx.fillText(yl, m.l+6, m.t+14); }
function decades(ctx, W, H, m, X, Y, x0, x1, y0, y1){ ctx.font='10px serif'; ctx.lineWidth=0.5;
  const every = Math.max(1, Math.ceil((y1-y0)/8));
  for(let k=Math.ceil(y0); k<=Math.floor(y1); k+=every){ ctx.strokeStyle='#eee'; ctx.beginPath(); ctx.moveTo(m.l, Y(k)); ctx.lineTo(W-m.r, Y(k)); ctx.stroke();
    ctx.fillStyle='#222'; ctx.fillText('1e'+k, 2, Y(k)+3); }
  for(let k=Math.ceil(x0); k<=Math.floor(x1); k++){ ctx.strokeStyle='#eee'; ctx.beginPath(); ctx.moveTo(X(k), m.t); ctx.lineTo(X(k), H-m.b); ctx.stroke();
    const t = String(Math.pow(10,k)); ctx.fillStyle='#222'; ctx.fillText(t, Math.min(X(k)-6, W-6*t.length), H-m.b+12); } }
function axes(ctx, W, H, m, xl, yl, xr, yr){ frame(ctx, W, H, m, xl, yl); ctx.font='10px serif'; ctx.fillStyle='#222';
  ctx.fillText(xr[0], m.l, H-m.b+12); ctx.fillText(xr[1], W-m.r-30, H-m.b+12);
  ctx.fillText(yr[1], 2, m.t+8); ctx.fillText(yr[0], 2, H-m.b); }
function drawCurve(d,c,l){
  const cv = document.getElementById('curve'), ctx = cv.getContext('2d'), W = cv.width, H = cv.height, m = {l:50,r:10,t:10,b:32};
  const xs = P.steps.map(s => Math.log10(s+1)), x1 = xs[nS-1];
  let lo = Infinity, hi = -Infinity; const all = [];
  for(let k=0;k<nL;k++){ const y = curve(d,c,k).map(v => (isFinite(v) && v>0) ? Math.log10(v) : NaN); all.push(y);
    y.forEach(v => { if(isFinite(v)){ lo = Math.min(lo,v); hi = Math.max(hi,v);} }); }
  if(!isFinite(lo)){ lo = -6; hi = 1; } lo = Math.max(lo, hi-12) - 0.2; hi += 0.2;
  frame(ctx, W, H, m, 'step + 1', 'L − L*');
  const X = v => m.l + v/x1*(W-m.l-m.r), Y = v => H-m.b - (v-lo)/(hi-lo)*(H-m.t-m.b);
  decades(ctx, W, H, m, X, Y, 0, x1, lo, hi);
  const line = (y, colour, w) => { ctx.strokeStyle = colour; ctx.lineWidth = w; ctx.beginPath(); let on = false;
    y.forEach((v,i) => { if(!isFinite(v)){ on = false; return; } const yy = Y(Math.max(lo, Math.min(hi, v)));
      if(on) ctx.lineTo(X(xs[i]), yy); else { ctx.moveTo(X(xs[i]), yy); on = true; } }); ctx.stroke(); };
  all.forEach((y,k) => { if(k !== l) line(y, '#ccc', 1); });
  line(all[l], P.colours[P.label[idx(d,c,l)]], 2.5);
}
let landImage = null;
function landBitmap(){ const off = document.createElement('canvas'); off.width = G; off.height = G;
  const octx = off.getContext('2d'), img = octx.createImageData(G, G); let lo = Infinity, hi = -Infinity;
  SURF.forEach(v => { lo = Math.min(lo,v); hi = Math.max(hi,v); });
  for(let j=0;j<G;j++) for(let i=0;i<G;i++){ const v = SURF[j*G+i], c = viridis((v-lo)/(hi-lo)), o = ((G-1-j)*G+i)*4;
    img.data[o]=c[0]; img.data[o+1]=c[1]; img.data[o+2]=c[2]; img.data[o+3]=255; }
  octx.putImageData(img, 0, 0); return off; }
function drawLand(d,c,l){
  const cv = document.getElementById('land'), ctx = cv.getContext('2d'), W = cv.width, H = cv.height;
  if(!landImage) landImage = landBitmap();
  ctx.imageSmoothingEnabled = true; ctx.drawImage(landImage, 0, 0, W, H);
  const g0 = P.grid[0], g1 = P.grid[G-1], X = w => (w-g0)/(g1-g0)*W, Y = w => H - (w-g0)/(g1-g0)*H;
  ctx.strokeStyle = '#fff'; ctx.lineWidth = 1.2;
  for(const sgn of [1,-1]){ ctx.beginPath(); let on = false;
    for(let k=0;k<=400;k++){ const w1 = sgn*(0.05 + k/400*(g1-0.05)), w2 = P.aHat/w1;
      if(Math.abs(w2) > g1){ on = false; continue; } if(on) ctx.lineTo(X(w1), Y(w2)); else { ctx.moveTo(X(w1), Y(w2)); on = true; } }
    ctx.stroke(); }
  const d2 = P.depths.indexOf(2);
  document.getElementById('landNote').textContent = P.depths[d] === 2 ? '' : '(The path is that of D = 2 at this η and c.)';
  if(!PATH || d2 < 0){ document.getElementById('landNote').textContent = '(No D = 2 in the stored grid: no path.)'; return; }
  const T = P.pathLen, o = (c*nL + l)*T*2; ctx.strokeStyle = '#fff'; ctx.lineWidth = 2; ctx.beginPath();
  for(let t=0;t<T;t++){ const a = PATH[o+2*t], b = PATH[o+2*t+1]; if(!isFinite(a) || !isFinite(b)) break;
    const x = Math.max(-5, Math.min(W+5, X(a))), y = Math.max(-5, Math.min(H+5, Y(b))); if(t) ctx.lineTo(x,y); else ctx.moveTo(x,y); }
  ctx.stroke(); ctx.fillStyle = '#E69F00'; ctx.beginPath(); ctx.arc(X(PATH[o]), Y(PATH[o+1]), 4, 0, 7); ctx.fill();
}
function drawMap(d,c,l){
  const cv = document.getElementById('map'), ctx = cv.getContext('2d'), W = cv.width, H = cv.height, m = {l:40,r:8,t:8,b:30};
  axes(ctx, W, H, m, 'η', 'c', [P.lrs[0].toPrecision(2), P.lrs[nL-1].toPrecision(2)], [String(P.inits[0]), String(P.inits[nC-1])]);
  const cw = (W-m.l-m.r)/nL, ch = (H-m.t-m.b)/nC;
  for(let ci=0;ci<nC;ci++) for(let li=0;li<nL;li++){ ctx.fillStyle = P.colours[P.label[idx(d,ci,li)]];
    ctx.fillRect(m.l + li*cw, H-m.b-(ci+1)*ch, cw-1, ch-1); }
  ctx.strokeStyle = '#000'; ctx.lineWidth = 2; ctx.beginPath(); ctx.arc(m.l+(l+.5)*cw, H-m.b-(c+.5)*ch, Math.min(cw,ch)/2, 0, 7); ctx.stroke();
}
function legend(){ const box = document.getElementById('legend');
  P.regimes.forEach((r,i) => { const s = document.createElement('span'); s.textContent = r; s.style.background = P.colours[i];
    s.className = 'chip'; box.appendChild(s); }); }
legend();
function update(){
  const d = +sl.depth.value, l = +sl.lr.value, c = +sl.init.value, k = idx(d,c,l);
  document.getElementById('depthVal').textContent = P.depths[d];
  document.getElementById('lrVal').textContent = P.lrs[l].toPrecision(3);
  document.getElementById('initVal').textContent = P.inits[c];
  const lab = document.getElementById('label'); lab.textContent = P.regimes[P.label[k]]; lab.style.background = P.colours[P.label[k]];
  document.getElementById('detail').textContent = ' max ρ = η·λ_max/2 at the sampled steps: ' + (P.rho[k] === null ? '∞' : P.rho[k]) +
    (P.time[k] >= 0 ? ', learned at step ' + P.time[k] : ', not learned within ' + P.steps[nS-1] + ' steps');
  drawCurve(d,c,l); drawLand(d,c,l); drawMap(d,c,l);
}
Object.values(sl).forEach(s => s.addEventListener('input', update));
update();
"""
