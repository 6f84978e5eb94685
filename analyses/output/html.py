"""HTML pieces of the report: style, script, tables, figure groups, the table of contents.

Everything is inline (CSS, JS, PNGs as base64 data URIs): the page needs no network and no other
file. The script only adds behaviour — a click on a figure opens it enlarged over the page (click
or Escape closes it) and the table of contents marks the section in view — so the page still reads
without it.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from analyses.output.cells import Cell, Table

CSS = """
:root{--nav:15.5em}
body{margin:0;font:16px/1.5 Georgia,'DejaVu Serif',serif;color:#222;background:#fff}
#toc{position:fixed;top:0;left:0;bottom:0;width:var(--nav);overflow-y:auto;padding:1.2em .8em;box-sizing:border-box;
 background:#f6f6f3;border-right:1px solid #ddd;font:14px/1.4 system-ui,'DejaVu Sans',sans-serif}
#toc .title{font-weight:600;margin:0 0 .6em .3em}
#toc ol{list-style:none;padding-left:0;margin:0} #toc ol ol{padding-left:.9em;font-size:.9em;margin:.1em 0 .5em}
#toc a{color:#2a3440;text-decoration:none;display:block;padding:.08em .3em;border-radius:3px}
#toc a:hover{background:#e8e8e2} #toc a.here{background:#dbe5ef;font-weight:600}
main{margin-left:var(--nav);padding:1.5em 2.5em 60vh;max-width:74em}
section,.figgroup,.table{scroll-margin-top:.6em}
h1{font-size:1.7em;margin:.2em 0} h2{font-size:1.35em;border-bottom:1px solid #ccc;margin-top:2.2em;padding-bottom:.2em}
h3{font-size:1.05em;margin:1.8em 0 .4em} .meta{color:#666;font-size:.9em} .lead{color:#444;font-style:italic}
.runs li{margin:.2em 0}
.panels{display:grid;grid-template-columns:repeat(auto-fit,minmax(24em,1fr));gap:1em;align-items:start}
figure{margin:0} figure img{max-width:100%;height:auto;cursor:zoom-in;border:1px solid #eee;display:block;margin:auto}
figcaption{font:13px system-ui,'DejaVu Sans',sans-serif;color:#555;text-align:center;margin-top:.2em}
.caption{font-size:.92em;color:#333;max-width:50em} .absent{font-size:.9em;color:#8a5a00}
.missing{font:13px system-ui,sans-serif;color:#8a5a00;
 border:1px dashed #d9c49a;padding:1em;text-align:center}
table{border-collapse:collapse;font:13px/1.35 system-ui,'DejaVu Sans',sans-serif;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #e3e3e3;padding:.25em .6em;text-align:right;white-space:nowrap}
th{background:#f1f1ee;position:sticky;top:0} .l{text-align:left} td small{display:block;color:#777;font-size:.85em}
caption{text-align:left;font-weight:600;padding:.3em 0;font-size:14px;caption-side:top}
.scroll{overflow:auto;max-height:26em;border:1px solid #eee;display:inline-block;max-width:100%}
.tnote{font-size:.85em;color:#555;max-width:52em;margin-top:.3em}
details{margin:.6em 0} summary{cursor:pointer;color:#444} .notes li{font-size:.85em;color:#8a5a00}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.8em}
#lightbox{position:fixed;inset:0;z-index:10;background:rgba(20,20,20,.94);display:flex;flex-direction:column;
 align-items:center;justify-content:center;cursor:zoom-out}
#lightbox[hidden]{display:none} #lightbox img{width:96vw;height:88vh;object-fit:contain}
#lightbox p{color:#eee;font:14px system-ui,sans-serif;margin:.5em}
@media (max-width:900px){#toc{position:static;width:auto;border-right:0;border-bottom:1px solid #ddd}
 main{margin-left:0;padding:1em}}
@media print{#toc,#lightbox{display:none} main{margin:0}}
"""

SCRIPT = """
(function(){
var box=document.getElementById('lightbox'),big=box.querySelector('img'),cap=box.querySelector('p');
function show(img){big.src=img.src;big.alt=img.alt;cap.textContent=img.alt;box.hidden=false;}
function hide(){box.hidden=true;big.removeAttribute('src');}
document.querySelectorAll('main figure img').forEach(function(img){
 img.tabIndex=0;img.title='click to enlarge';
 img.addEventListener('click',function(){show(img);});
 img.addEventListener('keydown',function(e){if(e.key==='Enter'){show(img);}});});
box.addEventListener('click',hide);
document.addEventListener('keydown',function(e){if(e.key==='Escape'&&!box.hidden){hide();}});
if(!('IntersectionObserver' in window)){return;}
var links={};document.querySelectorAll('#toc > ol > li > a').forEach(function(a){links[a.hash.slice(1)]=a;});
var seen=new IntersectionObserver(function(es){es.forEach(function(e){if(e.isIntersecting&&links[e.target.id]){
 document.querySelectorAll('#toc a.here').forEach(function(a){a.classList.remove('here');});
 links[e.target.id].classList.add('here');}});},{rootMargin:'0px 0px -75% 0px'});
document.querySelectorAll('main > section').forEach(function(s){seen.observe(s);});
})();
"""

esc = html.escape


def _cell(c: Cell, cls: str) -> str:
    attrs = f' class="{cls}"' if cls else ""
    if c.value is not None:
        attrs += f' data-value="{c.value!r}"'
    note = ""
    if c.note:
        data = f' data-value="{c.note_value!r}"' if c.note_value is not None else ""
        note = f"<small{data}>{esc(c.note)}</small>"
    return f"<td{attrs}>{esc(c.text)}{note}</td>"


def table(t: Table) -> str:
    """A table with its caption and note; every numeric cell carries its exact value as ``data-value``."""
    head = "".join(f'<th class="{"l" if i < t.labels else ""}">{esc(h)}</th>' for i, h in enumerate(t.header))
    body = "".join("<tr>" + "".join(_cell(c, "l" if i < t.labels else "") for i, c in enumerate(row)) + "</tr>"
                   for row in t.rows)
    note = f'<p class="tnote">{esc(t.note)}</p>' if t.note else ""
    return (f'<div class="table" id="{esc(t.id)}"><div class="scroll"><table><caption>{esc(t.title)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{note}</div>")


def image(png: Path, alt: str) -> str:
    """An ``<img>`` holding the PNG as a base64 data URI."""
    data = base64.b64encode(Path(png).read_bytes()).decode()
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def figure(fig_id: str, png: Path | None, label: str, alt: str, missing: str = "") -> str:
    """One panel of a figure group: the image and its label, or a note saying why it is not drawn."""
    body = image(png, alt) if png is not None else f'<div class="missing">not drawn: {esc(missing)}</div>'
    return f'<figure id="{esc(fig_id)}" data-run="{esc(label)}">{body}<figcaption>{esc(label)}</figcaption></figure>'


def figure_group(group_id: str, title: str, caption: str, panels: list[str]) -> str:
    """A figure's heading, its panels (one per run or part, side by side) and the caption once."""
    return (f'<div class="figgroup" id="{esc(group_id)}"><h3>{esc(title)}</h3><div class="panels">{"".join(panels)}'
            f'</div><p class="caption">{esc(caption)}</p></div>')


def toc(entries: list[tuple[str, str, list[tuple[str, str]]]]) -> str:
    """The table of contents: ``[(section id, heading, [(anchor, label)])]``, numbered like the headings."""
    items = []
    for n, (sid, heading, subs) in enumerate(entries, 1):
        inner = "".join(f'<li><a href="#{esc(a)}">{esc(label)}</a></li>' for a, label in subs)
        sub = f"<ol>{inner}</ol>" if inner else ""
        items.append(f'<li><a href="#{esc(sid)}">{n} {esc(heading)}</a>{sub}</li>')
    return f'<nav id="toc" aria-label="Contents"><p class="title">Contents</p><ol>{"".join(items)}</ol></nav>'


def page(title: str, nav: str, body: str) -> str:
    """The whole document: inline style, the contents, the body, the enlarging overlay and the script."""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>{esc(title)}</title><style>{CSS}</style></head>'
            f'<body>{nav}<main>{body}</main><div id="lightbox" hidden role="dialog" aria-label="enlarged figure">'
            f"<img alt=\"\"><p></p></div><script>{SCRIPT}</script></body></html>")
