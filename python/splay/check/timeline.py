"""A checker's result as one self-contained HTML page: the verdict, the figures, and a timeline
of the operations (one lane per process, a bar from invocation to completion) -- around the
violation when there is a counterexample, else the first operations of the history.

The page has no script and loads nothing: it opens from a file, offline.
"""
import html
import json
import math

COLOURS = {"ok": "#3b8f4d", "fail": "#9a9a9a", "info": "#e0a030"}
MAX_OPS = 300


def _ops_to_draw(result):
    if result.counterexample:
        return result.counterexample["ops"], set([result.counterexample.get("blocked")]), \
            result.counterexample.get("order", [])
    ops = [op.to_dict() for op in result.ops[:MAX_OPS]]
    return ops, set(), []


def render(result, title=None):
    """The HTML text of ``result``'s page."""
    ops, blocked, order = _ops_to_draw(result)
    title = title or f"splay check {result.model}: {result.valid}"
    finite = [o["ret"] for o in ops if o["ret"] is not None] + [o["call"] for o in ops]
    t0 = min(finite) if finite else 0.0
    t1 = max(finite) if finite else 1.0
    span = (t1 - t0) or 1.0
    lanes = sorted({o["process"] for o in ops}, key=str)
    lane_of = {p: i for i, p in enumerate(lanes)}
    width, left, lane_h = 1000, 110, 34
    height = 40 + lane_h * max(1, len(lanes))
    rank = {op_id: n + 1 for n, op_id in enumerate(order)}

    def x(t):
        return left + (width - left - 20) * ((t - t0) / span)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="operations timeline">']
    for p, i in lane_of.items():
        y = 30 + i * lane_h
        parts.append(f'<text x="4" y="{y + 16}" class="lane">process {html.escape(str(p))}</text>')
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y + lane_h - 4}" '
                     f'y2="{y + lane_h - 4}" stroke="#eee"/>')
    for o in ops:
        y = 30 + lane_of[o["process"]] * lane_h
        x0 = x(o["call"])
        x1 = x(o["ret"]) if o["ret"] is not None else width - 12
        colour = "#c0392b" if o["id"] in blocked else COLOURS[o["status"]]
        label = _label(o)
        if o["id"] in rank:
            label = f"#{rank[o['id']]} {label}"
        parts.append(f'<g class="op" data-id="{o["id"]}"><title>{html.escape(json.dumps(o, default=repr))}</title>'
                     f'<rect x="{x0:.1f}" y="{y + 2}" width="{max(3.0, x1 - x0):.1f}" height="22" '
                     f'rx="3" fill="{colour}" fill-opacity="0.85"/>'
                     f'<text x="{x0 + 4:.1f}" y="{y + 17}" class="op">{html.escape(label)}</text></g>')
    parts.append("</svg>")
    rows = "".join(
        f"<tr><td>{html.escape(f)}</td><td>{r['count']}</td><td>{r['ok']}</td><td>{r['fail']}</td>"
        f"<td>{r['info']}</td><td>{_ms(r['p50'])}</td><td>{_ms(r['p95'])}</td><td>{_ms(r['p99'])}</td>"
        f"<td>{_ms(r['max'])}</td></tr>" for f, r in sorted(result.latencies.items()))
    explanation = ""
    if result.counterexample:
        explanation = "<h2>Counterexample</h2><pre>" + html.escape(
            "\n".join(result.counterexample["explanation"])) + "</pre>"
    anomalies = "".join(
        f"<h3>{html.escape(name)} ({len(items)})</h3><pre>" +
        html.escape("\n".join(json.dumps(i, default=repr, sort_keys=True) for i in items[:50])) +
        "</pre>" for name, items in sorted(result.anomalies.items()))
    verdict_colour = {"valid": "#3b8f4d", "invalid": "#c0392b"}.get(result.valid, "#e0a030")
    legend = " ".join(f'<span class="key" style="background:{c}"></span>{k}'
                      for k, c in COLOURS.items()) + \
        ' <span class="key" style="background:#c0392b"></span>cannot be linearized'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 24px; color: #222; }}
.verdict {{ font-size: 22px; font-weight: 600; color: {verdict_colour}; }}
table {{ border-collapse: collapse; margin: 12px 0; }}
td, th {{ border: 1px solid #ddd; padding: 4px 8px; text-align: right; }}
th {{ background: #f4f4f4; }} td:first-child {{ text-align: left; }}
svg text.lane {{ font: 12px monospace; fill: #555; }}
svg text.op {{ font: 11px monospace; fill: #fff; pointer-events: none; }}
.key {{ display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; }}
pre {{ background: #f8f8f8; padding: 8px; white-space: pre-wrap; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="verdict" id="verdict">{html.escape(result.valid.upper())}</p>
<p>{result.counts.get('ops', 0)} operations: {result.counts.get('ok', 0)} ok,
{result.counts.get('fail', 0)} failed, {result.counts.get('info', 0)} unknown.
{html.escape('; '.join(f'{k}: {v}' for k, v in sorted(result.details.items())))}</p>
<table id="latencies"><tr><th>operation</th><th>count</th><th>ok</th><th>fail</th><th>info</th>
<th>p50</th><th>p95</th><th>p99</th><th>max</th></tr>{rows}</table>
{explanation}{anomalies}
<h2>Timeline</h2><p>{legend}</p>
<div id="timeline">{''.join(parts)}</div>
</body></html>
"""


def _label(o):
    value = "" if o["value"] is None else json.dumps(o["value"], default=repr)
    shown = f"{o['f']}({value})" if value else o["f"]
    if o["status"] == "ok" and o["result"] is not None and o["result"] != o["value"]:
        shown += " -> " + json.dumps(o["result"], default=repr)
    return shown if len(shown) < 40 else shown[:37] + "..."


def _ms(seconds):
    return "" if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)) \
        else f"{seconds * 1000:.2f} ms"


def write(result, path, title=None):
    """Write ``result``'s page to ``path``."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(render(result, title))
