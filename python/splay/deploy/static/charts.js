// Charts of a run-data document (splay.observatory), shared by the live page and the reports.
// SplayCharts.draw(doc, elements) draws every plot with plotly.js; the helpers derive rates and
// latency percentiles from the cumulative per-node samples.
"use strict";
const SplayCharts = (() => {
  const BOUNDS = Array.from({ length: 24 }, (_, i) => 1e-5 * 2 ** i);   // buckets.LATENCY_BOUNDS
  const STATE_COLORS = { running: "#2ca02c", "not started": "#c7c7c7", stopped: "#1f77b4",
                         crashed: "#d62728" };
  const NODE_EVENTS = { node_start: "running", node_stop: "stopped", node_crash: "crashed" };
  const MARKED = { churn: "#ff7f0e", partition: "#9467bd", topology: "#8c564b", fault: "#d62728" };

  // The q quantile of a non-cumulative histogram (as buckets.percentile), null when empty.
  function percentile(counts, q, bounds = BOUNDS) {
    const total = counts.reduce((a, b) => a + b, 0);
    if (total === 0) return null;
    const rank = q * total;
    let seen = 0;
    for (let i = 0; i < counts.length; i++) {
      const c = counts[i];
      if (c && seen + c >= rank) {
        if (i === bounds.length) return bounds[bounds.length - 1];
        const low = i > 0 ? bounds[i - 1] : 0;
        return low + (bounds[i] - low) * Math.max(rank - seen, 0) / c;
      }
      seen += c;
    }
    return bounds[bounds.length - 1];
  }

  // Sums of one sample's RPC counters over every mode/function, and its merged latency histogram.
  function rpcTotals(sample) {
    const t = { made: 0, served: 0, errors: 0, timeouts: 0, latency: new Array(BOUNDS.length + 1).fill(0) };
    for (const fn of Object.values(sample.rpc || {})) {
      t.made += fn.made; t.served += fn.served; t.errors += fn.errors; t.timeouts += fn.timeouts;
      (fn.latency || []).forEach((c, i) => { t.latency[i] += c; });
    }
    return t;
  }

  // The run's figures per time bin of one sampling interval (nodes sample on their own phases,
  // so the bin, not the exact t, lines them up): rates from the change of the nodes' summed
  // cumulative counters between two bin ends, latency from the change of the summed histograms,
  // application metrics from each node's latest sample (gauges and counters summed over the nodes
  // that sampled in the last two intervals, histograms merged). A node whose counters go down
  // was restarted (churn): its earlier totals are kept as an offset.
  function series(doc) {
    const width = doc.run.interval > 0 ? doc.run.interval : 1;
    const zero = () => ({ made: 0, served: 0, errors: 0, sent: 0, received: 0,
                          latency: new Array(BOUNDS.length + 1).fill(0) });
    const nodes = new Map();   // node -> { raw, offset, cum, t, app }
    const total = zero();
    const add = (into, v, sign) => {
      into.made += sign * v.made; into.served += sign * v.served; into.errors += sign * v.errors;
      into.sent += sign * v.sent; into.received += sign * v.received;
      v.latency.forEach((c, i) => { into.latency[i] += sign * c; });
    };
    const rows = [];
    let previous = zero();     // counters count from each node's start (within its first interval)
    const close = (end) => {
      const row = { t: end, dt: width, app: {},
                    latency: total.latency.map((c, i) => c - previous.latency[i]) };
      for (const k of ["made", "served", "errors", "sent", "received"]) row[k] = (total[k] - previous[k]) / width;
      for (const n of nodes.values()) {
        const fresh = end - n.t <= 2 * width;
        for (const [name, m] of Object.entries(n.app)) {
          if (m.type !== "histogram" && !fresh) continue;
          const acc = row.app[name] || (row.app[name] = { type: m.type, value: 0, counts: null });
          if (m.type === "histogram") {
            acc.counts = acc.counts ? acc.counts.map((c, i) => c + m.counts[i]) : m.counts.slice();
            acc.bounds = m.bounds || BOUNDS;
          } else acc.value += m.value;
        }
      }
      rows.push(row);
      previous = { ...total, latency: total.latency.slice() };
    };
    let bin = null;
    for (const s of doc.samples) {
      const b = Math.ceil(s.t / width - 1e-9);
      if (bin !== null && b !== bin) {
        for (let k = bin; k < b; k++) close(k * width);   // empty bins keep the line's time axis
      }
      bin = b;
      const t = rpcTotals(s);
      const raw = { made: t.made, served: t.served, errors: t.errors, sent: s.bytes_sent,
                    received: s.bytes_received, latency: t.latency };
      let n = nodes.get(s.node);
      if (!n) nodes.set(s.node, n = { raw: zero(), offset: zero(), cum: zero(), t: s.t, app: {} });
      if (raw.made < n.raw.made || raw.served < n.raw.served || raw.sent < n.raw.sent
          || raw.received < n.raw.received) add(n.offset, n.raw, 1);   // restarted: keep what it did
      add(total, n.cum, -1);
      n.raw = raw;
      n.cum = zero(); add(n.cum, n.offset, 1); add(n.cum, raw, 1);
      add(total, n.cum, 1);
      n.t = s.t;
      n.app = s.app || {};
    }
    if (bin !== null) close(bin * width);
    return rows;
  }

  // Node counts by state over time, from the node start/stop/crash events.
  function nodeStates(doc) {
    // One point per distinct time (a stacked plot needs x to increase), from the first event.
    const state = new Map(doc.nodes.map(n => [n.node, "not started"]));
    const changes = doc.events.filter(e => e.node !== null && e.node !== undefined && NODE_EVENTS[e.kind]);
    const points = [{ t: Math.min(0, ...changes.map(e => e.t)), counts: countStates(state) }];
    for (const e of changes) {
      state.set(e.node, NODE_EVENTS[e.kind]);
      const point = { t: e.t, counts: countStates(state) };
      if (points[points.length - 1].t === e.t) points[points.length - 1] = point;
      else points.push(point);
    }
    const end = endT(doc);
    if (end > points[points.length - 1].t) points.push({ t: end, counts: countStates(state) });
    return points;
  }

  function countStates(state) {
    const counts = {};
    for (const s of state.values()) counts[s] = (counts[s] || 0) + 1;
    return counts;
  }

  function endT(doc) {
    const ts = [0, ...doc.samples.map(s => s.t), ...doc.events.map(e => e.t), ...doc.logs.map(l => l.t)];
    if (doc.run.ended) ts.push(doc.run.ended - doc.run.started);
    return Math.max(...ts);
  }

  // Vertical lines for churn, partition, topology and fault events.
  function eventShapes(doc) {
    return doc.events.filter(e => MARKED[e.kind]).map(e => ({
      type: "line", xref: "x", yref: "paper", x0: e.t, x1: e.t, y0: 0, y1: 1,
      line: { color: MARKED[e.kind], width: 1, dash: "dot" } }));
  }

  const layout = (title, yTitle, extra = {}) => Object.assign({
    title: { text: title + " <span style='font-size:11px;color:#777'>(x: seconds since start)</span>",
             font: { size: 14 } },
    margin: { l: 55, r: 10, t: 32, b: 30 }, height: 270,
    xaxis: { zeroline: false }, yaxis: { title: { text: yTitle }, rangemode: "tozero" },
    legend: { orientation: "h", y: -0.14 }, hovermode: "x unified" }, extra);
  // A plot without data says so instead of showing bare axes.
  const noData = (traces, text) => traces.some(t => (t.y || []).some(v => v !== null)) ? [] :
    [{ text, showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { color: "#888" } }];
  const config = { displayModeBar: false, responsive: true };

  // One plot: its traces, with the events marked, or a note when there is no data yet.
  function plot(element, traces, title, yTitle, doc, empty, extra = {}) {
    Plotly.react(element, traces, layout(title, yTitle, Object.assign({ shapes: eventShapes(doc),
      annotations: noData(traces, empty) }, extra)), config);
  }

  // Draw every plot of ``doc`` into the elements {states, rpc, latency, bytes, app} (ids or nodes).
  function draw(doc, el) {
    const rows = series(doc);
    const xs = rows.map(r => r.t);
    const points = nodeStates(doc);
    const names = [...new Set(points.flatMap(p => Object.keys(p.counts)))];
    const order = ["running", "stopped", "crashed", "not started"].filter(n => names.includes(n))
      .concat(names.filter(n => !(n in STATE_COLORS)));
    const stateTraces = order.map(name => ({
      name, x: points.map(p => p.t), y: points.map(p => p.counts[name] || 0), type: "scatter",
      mode: "lines", stackgroup: "states", line: { shape: "hv", color: STATE_COLORS[name] } }));
    const marks = doc.events.filter(e => MARKED[e.kind]);
    if (marks.length) stateTraces.push({ name: "events", x: marks.map(e => e.t), y: marks.map(() => 0),
      mode: "markers", type: "scatter", marker: { symbol: "triangle-up", size: 10, color: marks.map(e => MARKED[e.kind]) },
      text: marks.map(e => `${e.kind}${e.node === null ? "" : " node " + e.node}: ${e.detail}`), hoverinfo: "text" });
    plot(el.states, stateTraces, "Nodes by state", "nodes", doc, "no node yet");
    plot(el.rpc, [
      { name: "calls made/s", x: xs, y: rows.map(r => r.made), type: "scatter", mode: "lines" },
      { name: "calls served/s", x: xs, y: rows.map(r => r.served), type: "scatter", mode: "lines" },
      { name: "errors/s", x: xs, y: rows.map(r => r.errors), type: "scatter", mode: "lines", line: { color: "#d62728" } },
    ], "RPC rate", "calls/s", doc, "no metrics sample yet");
    const ms = q => rows.map(r => { const v = percentile(r.latency, q); return v === null ? null : v * 1000; });
    plot(el.latency, [
      { name: "p50", x: xs, y: ms(0.5), type: "scatter", mode: "lines" },
      { name: "p95", x: xs, y: ms(0.95), type: "scatter", mode: "lines" },
      { name: "p99", x: xs, y: ms(0.99), type: "scatter", mode: "lines" },
    ], "RPC latency (calls made)", "ms", doc, "no RPC call made yet");
    plot(el.bytes, [
      { name: "sent/s", x: xs, y: rows.map(r => r.sent), type: "scatter", mode: "lines" },
      { name: "received/s", x: xs, y: rows.map(r => r.received), type: "scatter", mode: "lines" },
    ], "Bytes", "bytes/s", doc, "no metrics sample yet");
    const appNames = [...new Set(rows.flatMap(r => Object.keys(r.app)))].sort();
    // Histograms (medians) on the right axis: their scale is rarely the sums' one.
    const isHistogram = name => rows.some(r => r.app[name] && r.app[name].type === "histogram");
    const appTraces = appNames.map(name => ({
      name: isHistogram(name) ? name + " (median, right)" : name, x: xs, type: "scatter", mode: "lines",
      yaxis: isHistogram(name) ? "y2" : "y",
      y: rows.map(r => { const m = r.app[name]; if (!m) return null;
        return m.type === "histogram" ? percentile(m.counts, 0.5, m.bounds) : m.value; }) }));
    plot(el.app, appTraces, "Application metrics (sum over nodes; histograms: median)", "value", doc,
      "no application metric yet", appNames.some(isHistogram) ?
        { yaxis2: { overlaying: "y", side: "right", rangemode: "tozero", showgrid: false },
          margin: { l: 55, r: 45, t: 32, b: 30 } } : {});
  }

  // Per node: its latest calls/s (made + served) and cumulative errors (made calls that failed).
  function nodeFigures(doc) {
    const last = new Map(), before = new Map();
    for (const s of doc.samples) { if (last.has(s.node)) before.set(s.node, last.get(s.node)); last.set(s.node, s); }
    return new Map(doc.nodes.map(n => {
      const s = last.get(n.node), p = before.get(n.node);
      if (!s) return [n.node, { rate: null, errors: null }];
      const now = rpcTotals(s);
      let rate = null;
      if (p && s.t > p.t) { const was = rpcTotals(p); rate = (now.made + now.served - was.made - was.served) / (s.t - p.t); }
      return [n.node, { rate, errors: now.errors + now.timeouts }];
    }));
  }

  // The run's totals: calls made, errors, latency p50/p99 (s), bytes sent and received.
  function summary(doc) {
    const last = new Map();
    for (const s of doc.samples) last.set(s.node, s);
    const total = { calls: 0, served: 0, errors: 0, timeouts: 0, sent: 0, received: 0,
                    latency: new Array(BOUNDS.length + 1).fill(0) };
    for (const s of last.values()) {
      const t = rpcTotals(s);
      total.calls += t.made; total.served += t.served; total.errors += t.errors; total.timeouts += t.timeouts;
      total.sent += s.bytes_sent; total.received += s.bytes_received;
      t.latency.forEach((c, i) => { total.latency[i] += c; });
    }
    total.p50 = percentile(total.latency, 0.5);
    total.p99 = percentile(total.latency, 0.99);
    total.duration = endT(doc);
    return total;
  }

  return { percentile, series, nodeStates, nodeFigures, summary, draw, BOUNDS };
})();
if (typeof module !== "undefined") module.exports = SplayCharts;
