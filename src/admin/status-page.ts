/**
 * The status page of the admin listener (`GET /status`): one HTML file with its style and script
 * inline (no build step, no external asset, no CDN), that reads `GET /metrics` and `GET /v1/status`
 * of the same listener every second and shows requests/s, status classes, connections, the
 * upstream peers in HAProxy's stats page manner, certificates with their days left, workers,
 * generations and reloads. The page itself holds no data and is served without the token; every
 * number it shows comes from a request that needs it, sent as an `Authorization` header (typed
 * once into the page, kept in the tab's sessionStorage, never put in a URL). Values go into the
 * page as text, never as markup.
 */

/** The page, as served. */
export const STATUS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hitless status</title>
<style>
  :root { color-scheme: light dark; --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --line: #8884; }
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; padding: 12px; max-width: 1100px; }
  h1 { font-size: 20px; margin: 0 0 8px; }
  h2 { font-size: 16px; margin: 18px 0 6px; }
  .tiles { display: flex; flex-wrap: wrap; gap: 8px; }
  .tile { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; min-width: 120px; flex: 1 1 120px; }
  .tile b { display: block; font-size: 22px; font-variant-numeric: tabular-nums; }
  .scroll { overflow-x: auto; }
  table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
  th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: right; white-space: nowrap; }
  th:first-child, td:first-child, td.text { text-align: left; }
  .up { color: var(--ok); } .warn { color: var(--warn); } .down { color: var(--bad); }
  #error { color: var(--bad); }
  form { display: none; gap: 6px; margin: 8px 0; } form.shown { display: flex; flex-wrap: wrap; }
  #updated { color: #888; font-size: 12px; }
</style>
</head>
<body>
<h1>hitless status</h1>
<div id="updated">loading…</div>
<div id="error" role="alert"></div>
<form id="login"><label for="token">Admin token</label><input id="token" type="password" autocomplete="off"><button>Use</button></form>
<div class="tiles">
  <div class="tile">requests/s<b id="rps">–</b></div>
  <div class="tile">requests<b id="requests">–</b></div>
  <div class="tile">active<b id="active">–</b></div>
  <div class="tile">reading<b id="reading">–</b></div>
  <div class="tile">writing<b id="writing">–</b></div>
  <div class="tile">idle<b id="idle">–</b></div>
</div>
<h2>Responses by status class</h2>
<div class="scroll"><table><thead><tr><th>class</th><th>total</th><th>per second</th></tr></thead><tbody id="codes"></tbody></table></div>
<h2>Upstream peers</h2>
<div class="scroll"><table><thead><tr><th>upstream</th><th>peer</th><th>state</th><th>active</th><th>requests</th><th>req/s</th><th>failures</th><th>avg response</th><th>health</th></tr></thead><tbody id="peers"></tbody></table></div>
<h2>Certificates</h2>
<div class="scroll"><table><thead><tr><th>name</th><th>source</th><th>expires</th><th>days left</th></tr></thead><tbody id="certs"></tbody></table></div>
<h2>Workers and reloads</h2>
<div class="scroll"><table><thead><tr><th>pid</th><th>generation</th><th>answered</th><th>RSS</th><th>loop lag p99</th></tr></thead><tbody id="workers"></tbody></table></div>
<p id="reloads"></p>
<script>
"use strict";
const KEY = "hitless-admin-token";
let previous;

function headers() {
  const token = sessionStorage.getItem(KEY);
  return token ? { Authorization: "Bearer " + token } : {};
}

/** The text exposition as [name, labels, value] samples. */
function parse(text) {
  const samples = [];
  for (const line of text.split("\\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\\{(.*)\\})? (\\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\\]|\\\\.)*)"/g;
    let l;
    while ((l = re.exec(m[2] || "")) !== null) labels[l[1]] = l[2].replace(/\\\\n/g, "\\n").replace(/\\\\(.)/g, "$1");
    samples.push([m[1], labels, Number(m[3])]);
  }
  return samples;
}

function sum(samples, name, filter) {
  let total = 0;
  for (const [n, labels, value] of samples) if (n === name && (!filter || filter(labels))) total += value;
  return total;
}

function group(samples, name, keyOf) {
  const out = new Map();
  for (const [n, labels, value] of samples) {
    if (n !== name) continue;
    const key = keyOf(labels);
    out.set(key, (out.get(key) || 0) + value);
  }
  return out;
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
}

function fill(id, rows) {
  const body = document.getElementById(id);
  body.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    for (const [text, cls] of cells) cell(tr, text, cls);
    return tr;
  }));
}

const fmt = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en") : "–");
const rate = (now, before, seconds) => (before === undefined || seconds <= 0 ? NaN : Math.max(0, now - before) / seconds);

function render(samples, status, at) {
  const seconds = previous ? (at - previous.at) / 1000 : 0;
  const requests = sum(samples, "hitless_http_requests_total");
  document.getElementById("requests").textContent = fmt(requests);
  document.getElementById("rps").textContent = fmt(rate(requests, previous && previous.requests, seconds));
  for (const [id, name] of [["active", "hitless_connections_active"], ["reading", "hitless_connections_reading"], ["writing", "hitless_connections_writing"], ["idle", "hitless_connections_idle"]]) {
    document.getElementById(id).textContent = fmt(sum(samples, name));
  }
  const codes = group(samples, "hitless_http_requests_total", (l) => l.code);
  fill("codes", [...codes].sort().map(([code, total]) => [[code, "text"], [fmt(total)], [fmt(rate(total, previous && (previous.codes.get(code) || 0), seconds))]]));

  const peerKey = (l) => l.upstream + " " + l.peer;
  const peers = new Map();
  const peer = (l) => {
    const key = peerKey(l);
    if (!peers.has(key)) peers.set(key, { upstream: l.upstream, peer: l.peer, state: "", active: 0, requests: 0, failures: 0, timeSum: 0, timeCount: 0, health: "" });
    return peers.get(key);
  };
  for (const [n, l, v] of samples) {
    if (!n.startsWith("hitless_upstream_peer_")) continue;
    const p = peer(l);
    if (n === "hitless_upstream_peer_state" && v === 1) p.state = l.state;
    else if (n === "hitless_upstream_peer_active") p.active = v;
    else if (n === "hitless_upstream_peer_requests_total") p.requests = v;
    else if (n === "hitless_upstream_peer_failures_total") p.failures = v;
    else if (n === "hitless_upstream_peer_response_time_seconds_sum") p.timeSum = v;
    else if (n === "hitless_upstream_peer_response_time_seconds_count") p.timeCount = v;
    else if (n === "hitless_upstream_peer_health_check_up") p.health = v === 1 ? "up" : "down";
  }
  const stateClass = (s) => (s === "up" ? "up" : s === "unavailable" || s === "unhealthy" || s === "down" ? "down" : "warn");
  fill("peers", [...peers.values()].sort((a, b) => peerKey(a).localeCompare(peerKey(b))).map((p) => [
    [p.upstream, "text"], [p.peer, "text"], [p.state || "–", stateClass(p.state)], [fmt(p.active)], [fmt(p.requests)],
    [fmt(rate(p.requests, previous && (previous.peers.get(peerKey(p)) || 0), seconds))], [fmt(p.failures)],
    [p.timeCount > 0 ? (p.timeSum / p.timeCount * 1000).toFixed(1) + " ms" : "–"], [p.health || "–", p.health === "down" ? "down" : p.health ? "up" : ""],
  ]));

  const certs = [];
  for (const [n, l, v] of samples) {
    if (n !== "hitless_certificate_expiry_timestamp_seconds") continue;
    const days = (v * 1000 - at) / 86400000;
    certs.push([[l.name, "text"], [l.source, "text"], [new Date(v * 1000).toISOString().slice(0, 10)], [days.toFixed(1), days < 7 ? "down" : days < 30 ? "warn" : "up"]]);
  }
  fill("certs", certs.sort((a, b) => Number(a[3][0]) - Number(b[3][0])));

  const rss = new Map(samples.filter(([n, l]) => n === "hitless_process_resident_memory_bytes" && l.process === "worker").map(([, l, v]) => [l.pid, v]));
  const lag = new Map(samples.filter(([n]) => n === "hitless_worker_event_loop_lag_seconds").map(([, l, v]) => [l.pid, v]));
  fill("workers", samples.filter(([n]) => n === "hitless_worker_up").map(([, l, v]) => [
    [l.pid, "text"], [l.generation], [v === 1 ? "yes" : "no", v === 1 ? "up" : "down"],
    [rss.has(l.pid) ? (rss.get(l.pid) / 1048576).toFixed(0) + " MiB" : "–"], [lag.has(l.pid) ? (lag.get(l.pid) * 1000).toFixed(1) + " ms" : "–"],
  ]));
  const ok = sum(samples, "hitless_reloads_total", (l) => l.result === "success");
  const failed = sum(samples, "hitless_reloads_total", (l) => l.result === "failure");
  const last = sum(samples, "hitless_config_last_reload_success_timestamp_seconds");
  const lastOk = sum(samples, "hitless_config_last_reload_successful");
  document.getElementById("reloads").textContent = "generation " + fmt(sum(samples, "hitless_config_generation")) + " since " +
    (last > 0 ? new Date(last * 1000).toLocaleString() : "–") + "; reloads: " + fmt(ok) + " succeeded, " + fmt(failed) + " failed" +
    (lastOk === 1 ? "" : " (the last one failed: the previous configuration still serves)") + (status && status.pid ? "; master pid " + status.pid : "");

  previous = { at, requests, codes, peers: new Map([...peers].map(([k, p]) => [k, p.requests])) };
}

async function refresh() {
  const error = document.getElementById("error");
  try {
    const [metrics, status] = await Promise.all([fetch("metrics", { headers: headers(), cache: "no-store" }), fetch("v1/status", { headers: headers(), cache: "no-store" })]);
    if (metrics.status === 401 || status.status === 401) {
      document.getElementById("login").className = "shown";
      error.textContent = "This listener asks for its admin token.";
      return;
    }
    if (!metrics.ok) throw new Error("GET /metrics answered " + metrics.status);
    const at = Date.now();
    render(parse(await metrics.text()), status.ok ? await status.json() : undefined, at);
    error.textContent = "";
    document.getElementById("updated").textContent = "updated " + new Date(at).toLocaleTimeString();
  } catch (err) {
    error.textContent = "No answer from hitless: " + (err && err.message ? err.message : err);
  }
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, document.getElementById("token").value.trim());
  document.getElementById("token").value = "";
  document.getElementById("login").className = "";
  refresh();
});
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
`;
