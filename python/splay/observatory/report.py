"""A run-data document as one self-contained HTML report (plotly.js and the data inlined).

The report opens from ``file://`` with no network: the same plots as the live page (drawn by
``deploy/static/charts.js``), a summary table, the event timeline, the application's metrics, the
log's last lines and everything needed to rerun the experiment.
"""
import html
import json
import os
import time

from splay.observatory import buckets, rundata

STATIC = os.path.join(os.path.dirname(os.path.dirname(__file__)), "deploy", "static")
REPORT_LOG_LINES = 500


def _plotly_js():
    import plotly
    with open(os.path.join(os.path.dirname(plotly.__file__), "package_data", "plotly.min.js"),
              encoding="utf-8") as f:
        return f.read()


def _charts_js():
    with open(os.path.join(STATIC, "charts.js"), encoding="utf-8") as f:
        return f.read()


def _script(text):
    """``text`` made safe inside a <script> element."""
    return text.replace("</script", "<\\/script")


def summary(doc):
    """The run's totals from each node's last sample: nodes, duration (s), calls made/served,
    errors, timeouts, latency p50/p99 (s, None without calls), bytes sent/received."""
    last = {}
    for sample in doc["samples"]:
        last[sample["node"]] = sample
    totals = {"calls": 0, "served": 0, "errors": 0, "timeouts": 0,
              "bytes_sent": 0, "bytes_received": 0}
    latency = buckets.empty()
    for sample in last.values():
        for figures in sample["rpc"].values():
            totals["calls"] += figures["made"]
            totals["served"] += figures["served"]
            totals["errors"] += figures["errors"]
            totals["timeouts"] += figures["timeouts"]
            latency = buckets.merge(latency, figures["latency"])
        totals["bytes_sent"] += sample["bytes_sent"]
        totals["bytes_received"] += sample["bytes_received"]
    run = doc["run"]
    ends = [x["t"] for part in ("samples", "events", "logs") for x in doc[part]]
    if run["ended"] is not None:
        ends.append(run["ended"] - run["started"])
    return {"nodes": len(doc["nodes"]) or run["nodes"], "duration": max(ends, default=0.0),
            **totals, "p50": buckets.percentile(latency, 0.5),
            "p99": buckets.percentile(latency, 0.99)}


def functions(doc):
    """Per RPC ``mode/function``, summed over each node's last sample: ``(key, made, served,
    errors, timeouts, p50, p99)`` (latencies in s, of the calls made; None without calls)."""
    last = {}
    for sample in doc["samples"]:
        last[sample["node"]] = sample
    merged = {}
    for sample in last.values():
        for key, figures in sample["rpc"].items():
            entry = merged.setdefault(key, {"made": 0, "served": 0, "errors": 0, "timeouts": 0,
                                            "latency": buckets.empty()})
            for field in ("made", "served", "errors", "timeouts"):
                entry[field] += figures[field]
            entry["latency"] = buckets.merge(entry["latency"], figures["latency"])
    return [(key, e["made"], e["served"], e["errors"], e["timeouts"],
             buckets.percentile(e["latency"], 0.5), buckets.percentile(e["latency"], 0.99))
            for key, e in sorted(merged.items())]


def app_metrics(doc):
    """The application's metrics at the end: name -> (type, value summed over nodes, or the
    median and count of a histogram)."""
    last = {}
    for sample in doc["samples"]:
        last[sample["node"]] = sample
    merged = {}
    for sample in last.values():
        for name, metric in sample["app"].items():
            if metric["type"] == "histogram":
                entry = merged.setdefault(name, {"type": "histogram", "counts": None,
                                                 "bounds": metric.get("bounds", buckets.LATENCY_BOUNDS)})
                entry["counts"] = (list(metric["counts"]) if entry["counts"] is None
                                   else buckets.merge(entry["counts"], metric["counts"]))
            else:
                entry = merged.setdefault(name, {"type": metric["type"], "value": 0.0})
                entry["value"] += metric["value"]
    rows = []
    for name in sorted(merged):
        entry = merged[name]
        if entry["type"] == "histogram":
            median = buckets.percentile(entry["counts"], 0.5, entry["bounds"])
            rows.append((name, "histogram", f"median {_number(median)}, {sum(entry['counts'])} observations"))
        else:
            rows.append((name, entry["type"], _number(entry["value"])))
    return rows


def _number(value):
    if value is None:
        return "–"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4g}"


def _ms(seconds):
    return "–" if seconds is None else f"{seconds * 1000:.3g} ms"


def _table(headers, rows, table_id=""):
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pre(title, text):
    if not text:
        return f"<p><b>{title}</b>: none</p>"
    return f"<details><summary><b>{title}</b></summary><pre>{html.escape(text)}</pre></details>"


def render(doc):
    """The report of run-data document ``doc`` (validated first) as an HTML string."""
    rundata.validate(doc)
    run = doc["run"]
    figures = summary(doc)
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(run["started"]))
    summary_rows = [
        ("nodes", figures["nodes"]), ("duration", f"{figures['duration']:.1f} s"),
        ("final state", run["state"]), ("calls made", _number(figures["calls"])),
        ("calls served", _number(figures["served"])),
        ("errors (seen by callers and servers)", _number(figures["errors"])),
        ("timeouts", _number(figures["timeouts"])),
        ("latency p50", _ms(figures["p50"])), ("latency p99", _ms(figures["p99"])),
        ("bytes sent", _number(figures["bytes_sent"])),
        ("bytes received", _number(figures["bytes_received"])),
        ("dropped samples / log lines", f"{doc['dropped']['samples']} / {doc['dropped']['logs']}"),
    ]
    rerun_rows = [
        ("command", run["command"]), ("application", run["app"]),
        ("application sha256", run["app_sha256"]),
        ("seed", "none" if run["seed"] is None else run["seed"]), ("mode", run["mode"]),
        ("sample interval", f"{run['interval']} s"), ("pysplay", run["pysplay"]),
        ("Python", run["python"]), ("started", started),
        ("partitions", "; ".join(run["partitions"]) or "none"),
    ]
    function_rows = [(key, _number(made), _number(served), _number(errors), _number(timeouts),
                      _ms(p50), _ms(p99))
                     for key, made, served, errors, timeouts, p50, p99 in functions(doc)]
    events = [(f"{e['t']:.3f}", e["kind"], "" if e["node"] is None else e["node"], e["detail"])
              for e in doc["events"]]
    nodes = [(n["node"], n["address"], n["daemon"] or "", n["state"],
              "" if n["exit_code"] is None else n["exit_code"]) for n in doc["nodes"]]
    logs = "\n".join(f"{entry['t']:10.3f} [{'ctl' if entry['node'] is None else entry['node']:>4}] "
                     f"{entry['line']}" for entry in doc["logs"][-REPORT_LOG_LINES:])
    data = json.dumps(doc).replace("<", "\\u003c")    # no tag can start inside the data
    title = html.escape(f"SPLAY run {run['app']} ({run['nodes']} nodes, {started})")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; }}
h1 {{ font-size: 1.4em; }} h2 {{ font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }}
table {{ border-collapse: collapse; }} td, th {{ padding: 2px 10px; text-align: left; vertical-align: top; }}
th {{ border-bottom: 1px solid #999; }} tbody tr:nth-child(even) {{ background: #f3f3f3; }}
.grid {{ display: grid; grid-template-columns: 1fr 1fr; gap: 8px; }}
.plot {{ min-height: 260px; }} .scroll {{ max-height: 24em; overflow: auto; }}
pre {{ background: #f6f6f6; padding: .5em; max-height: 30em; overflow: auto; font-size: 12px; }}
.cols {{ display: flex; gap: 3em; flex-wrap: wrap; }}
</style></head><body>
<h1>{title}</h1>
<div class="cols"><div><h2>Summary</h2>{_table(("figure", "value"), summary_rows, "summary")}</div>
<div><h2>To rerun</h2>{_table(("what", "value"), rerun_rows, "rerun")}
{_pre("churn trace", run["churn"])}{_pre("topology", run["topology"])}</div></div>
<h2>RPC functions</h2>{_table(("mode/function", "made", "served", "errors", "timeouts",
                                "latency p50", "latency p99"), function_rows, "functions")
                         if function_rows else "<p>no RPC call</p>"}
<h2>Plots</h2>
<div class="grid"><div id="states" class="plot"></div><div id="rpc" class="plot"></div>
<div id="latency" class="plot"></div><div id="bytes" class="plot"></div>
<div id="app" class="plot"></div></div>
<h2>Application metrics</h2>{_table(("name", "type", "value at the end"), app_metrics(doc), "appmetrics")
                             if doc["samples"] else "<p>no samples</p>"}
<h2>Events</h2><div class="scroll">{_table(("t (s)", "kind", "node", "detail"), events, "events")}</div>
<h2>Nodes</h2><div class="scroll">{_table(("node", "address", "daemon", "state", "exit code"), nodes, "nodes")}</div>
<h2>Log (last {min(len(doc["logs"]), REPORT_LOG_LINES)} lines)</h2><pre id="log">{html.escape(logs)}</pre>
<script>{_script(_plotly_js())}</script>
<script>{_script(_charts_js())}</script>
<script id="rundata" type="application/json">{data}</script>
<script>
"use strict";
const doc = JSON.parse(document.getElementById("rundata").textContent);
SplayCharts.draw(doc, {{ states: "states", rpc: "rpc", latency: "latency", bytes: "bytes", app: "app" }});
</script>
</body></html>
"""


def write(doc, path):
    """Write the report of ``doc`` to ``path``."""
    text = render(doc)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
