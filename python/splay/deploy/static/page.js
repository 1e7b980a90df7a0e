// The controller's live page: daemons, jobs, and the shown job's run data pushed by the
// controller as Server-Sent Events (GET /api/jobs/ID/stream) and drawn by charts.js.
//
// Signing in: a link "/#token=TOKEN" (printed by `splay testbed up` and splay-controller) puts
// the token in the URL fragment, which browsers never send to the server; the page moves it to
// sessionStorage (this tab only) and removes it from the address bar and history.
"use strict";
const $ = (id) => document.getElementById(id);
const LOG_KEEP = 5000;        // log lines kept in the page (the newest)
const LOG_SHOW = 1000;        // lines shown after filtering (the newest)
const TABLES_EVERY = 10000;   // ms between refreshes of the daemons and jobs tables

function takeTokenFromFragment() {
  const match = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem("splayToken", decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
}
takeTokenFromFragment();
$("token").value = sessionStorage.getItem("splayToken") || "";
$("signin").onsubmit = (event) => {
  event.preventDefault();
  sessionStorage.setItem("splayToken", $("token").value);
  refreshTables();
};
const token = () => sessionStorage.getItem("splayToken") || "";

async function api(path) {
  const r = await fetch(path, { headers: { Authorization: "Bearer " + token() } });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function showError(message) {
  $("error").textContent = message;
  $("signin").hidden = !!token() && !/token/.test(message);
}

function fill(table, rows, columns) {
  table.replaceChildren();
  const head = table.createTHead().insertRow();
  for (const [title] of columns) head.appendChild(document.createElement("th")).textContent = title;
  const body = table.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    for (const [title, value] of columns) {
      const td = tr.insertCell();
      const text = String(value(row) ?? "");
      td.textContent = text;
      if (title === "state") td.className = "state-" + text.split(" ")[0];
    }
  }
  return body;
}

// ---- daemons and jobs ----
let shownJob = null;
async function refreshTables() {
  try {
    const daemons = await api("/api/daemons");
    fill($("daemons"), daemons, [["id", d => d.id], ["name", d => d.name], ["ip", d => d.ip],
      ["state", d => d.state], ["instances", d => `${d.instances}/${d.limits.max_instances}`],
      ["ports", d => `${d.limits.start_port}-${d.limits.end_port}`], ["rtt ms", d => d.rtt_ms]]);
    const jobs = await api("/api/jobs");
    const body = fill($("jobs"), jobs, [["id", j => j.id], ["name", j => j.name], ["state", j => j.state],
      ["nodes", j => j.nb_nodes], ["reason", j => j.reason]]);
    [...body.rows].forEach((tr, i) => {
      tr.className = "clickable" + (jobs[i].id === shownJob ? " shown" : "");
      tr.onclick = () => watch(jobs[i].id);
    });
    if (shownJob !== null) await refreshJob();
    showError("");
  } catch (e) { showError(e.message); }
}

// The shown job's instance counts by state and its churn replay's figures (docs/churn.md).
let jobFigures = "";
async function refreshJob() {
  const job = await api(`/api/jobs/${shownJob}`);
  const counts = Object.entries(job.counts).map(([state, n]) => `${n} ${state}`).join(", ");
  const churn = job.churn ? ` · churn: ${job.churn.starts} starts, ${job.churn.stops} stops` +
    (job.churn.max_lag_ms === null ? "" :
     `, lag max ${job.churn.max_lag_ms} ms, median ${job.churn.median_lag_ms} ms`) : "";
  jobFigures = `${job.state}: ${counts || "no instance"}${churn}` + (job.reason ? ` · ${job.reason}` : "");
  if (doc) renderInfo();
}

// ---- the shown job ----
let doc = null, stream = null, sortKey = "node", sortUp = true;

// Read a Server-Sent Events response with fetch (EventSource cannot send the token header).
async function readEvents(path, onEvent, signal) {
  const r = await fetch(path, { headers: { Authorization: "Bearer " + token() }, signal });
  if (!r.ok) throw new Error((await r.json()).error || r.statusText);
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) onEvent(name, JSON.parse(data));
    }
  }
}

function watch(jobId) {
  if (stream) stream.abort();
  shownJob = jobId;
  doc = null;
  jobFigures = "";
  stream = new AbortController();
  $("job").hidden = false;
  $("jobtitle").textContent = `Job ${jobId}`;
  refreshTables();
  readEvents(`/api/jobs/${jobId}/stream`, (name, data) => {
    if (name === "rundata") doc = data;
    else if (name === "update") merge(data);
    else if (name === "end") { refreshTables(); return; }
    scheduleRender();
  }, stream.signal).catch(e => { if (e.name !== "AbortError") showError(e.message); });
}

function merge(update) {
  doc.run = update.run;
  doc.nodes = update.nodes;
  doc.dropped = update.dropped;
  doc.samples.push(...update.samples);
  doc.events.push(...update.events);
  doc.logs.push(...update.logs);
  if (doc.logs.length > LOG_KEEP) doc.logs.splice(0, doc.logs.length - LOG_KEEP);
  if (update.run.state !== shownState) refreshTables();
}

// Draw at most once per animation frame, however many updates arrived meanwhile.
let renderPending = false;
function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => { renderPending = false; render(); });
}

let shownState = null;
function render() {
  shownState = doc.run.state;
  $("jobtitle").textContent = `Job ${doc.run.id}: ${doc.run.app}`;
  renderInfo();
  SplayCharts.draw(doc, { states: "states", rpc: "rpc", latency: "latency", bytes: "bytes", app: "app" });
  renderNodes();
  renderLogNodes();
  renderLogs();
}

function renderInfo() {
  $("jobinfo").textContent = (jobFigures || doc.run.state) +
    ` · ${doc.samples.length} samples, ${doc.events.length} events` +
    (doc.dropped.samples || doc.dropped.logs ? ` · dropped: ${doc.dropped.samples} samples, ${doc.dropped.logs} log lines` : "");
}

const NODE_COLUMNS = [["node", n => n.node], ["address", n => n.address], ["daemon", n => n.daemon],
  ["state", n => n.state], ["calls/s", n => n.rate === null ? null : Math.round(n.rate * 10) / 10],
  ["errors", n => n.errors]];

function renderNodes() {
  const figures = SplayCharts.nodeFigures(doc);
  const rows = doc.nodes.map(n => Object.assign({}, n, figures.get(n.node)));
  const value = NODE_COLUMNS.find(([title]) => title === sortKey)[1];
  rows.sort((a, b) => {
    const x = value(a), y = value(b);
    const order = x === y ? 0 : x === null || x === undefined ? 1 : y === null || y === undefined ? -1
      : typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true });
    return sortUp ? order : -order;
  });
  fill($("nodes"), rows, NODE_COLUMNS);
  [...$("nodes").tHead.rows[0].cells].forEach((th, i) => {
    const key = NODE_COLUMNS[i][0];
    th.className = key === sortKey ? "sorted" + (sortUp ? " up" : "") : "";
    th.onclick = () => { sortUp = key === sortKey ? !sortUp : true; sortKey = key; renderNodes(); };
  });
}

function renderLogNodes() {
  const select = $("lognode");
  const have = new Set([...select.options].map(o => o.value));
  for (const n of doc.nodes) {
    if (!have.has(String(n.node))) select.add(new Option(`node ${n.node}`, String(n.node)));
  }
}

function renderLogs() {
  const node = $("lognode").value, text = $("logtext").value.toLowerCase();
  const shown = doc.logs.filter(l => (node === "" || (node === "ctl" ? l.node === null : String(l.node) === node))
    && (text === "" || l.line.toLowerCase().includes(text))).slice(-LOG_SHOW);
  const pre = $("logs");
  pre.textContent = shown.map(l =>
    `${l.t.toFixed(3).padStart(10)} [${l.node === null ? "ctl" : String(l.node).padStart(3)}] ${l.line}`).join("\n");
  $("logcount").textContent = `(latest ${shown.length} of ${doc.logs.length} lines)`;
  if ($("logfollow").checked) pre.scrollTop = pre.scrollHeight;
}
$("lognode").onchange = () => doc && renderLogs();
$("logtext").oninput = () => doc && renderLogs();

refreshTables().then(() => {
  const first = $("jobs").tBodies[0] && $("jobs").tBodies[0].rows[0];
  if (first && shownJob === null) first.click();
});
setInterval(refreshTables, TABLES_EVERY);
