"""The dashboard's one page: HTML, CSS and vanilla JavaScript, served from this module.

No CDN and no build step. The page is one document with its stylesheet and script inline, so
the API serves it from one route; its Content-Security-Policy (:data:`PAGE_CSP`) allows exactly
that style and that script by their SHA-256 hashes, and ``fetch`` to its own origin only.

The script polls the API's ``/v1/dashboard`` once a second with ``Authorization: Bearer``
and updates the page in place; every value is put into the page as text (``textContent``),
never as HTML, so nothing read from Redis can inject markup or script. The token comes from
the URL fragment (``#token=...``, which browsers never send to a server, so it stays out of
access logs; the script then drops it from the address bar) or from the page's token field,
and is kept in ``sessionStorage`` (this tab only, gone when it closes). The HTML itself holds
no data, so it is served without a token.
"""

from __future__ import annotations

import base64
import hashlib

POLL_MS = 1000
STATE_PATH = "/v1/dashboard"

HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Strategy Engine</title>
<style>__CSS__</style>
</head>
<body>
<header>
  <h1>Strategy Engine <span id="core-name" class="muted"></span></h1>
  <div><span id="connection" class="badge">connecting</span>
    <span id="heartbeat" class="muted" data-heartbeat-ns=""></span></div>
</header>
<main>
<div id="auth" class="auth" hidden>
  <p id="auth-message"></p>
  <input id="token-input" type="password" autocomplete="off" spellcheck="false"
    placeholder="API token (reader)" aria-label="API token">
  <button id="token-save" type="button">Use token</button>
</div>
<section class="cards">
  <div class="card"><div class="label">Events in</div>
    <div id="events-in" class="value">-</div></div>
  <div class="card"><div class="label">Signals out</div>
    <div id="signals-out" class="value">-</div></div>
  <div class="card"><div class="label">Orders</div>
    <div id="orders-count" class="value">-</div></div>
  <div class="card"><div class="label">Fills</div>
    <div id="fills-count" class="value">-</div></div>
  <div class="card"><div class="label">Rejected input</div>
    <div id="rejected-count" class="value">-</div></div>
  <div class="card"><div class="label">Equity</div>
    <div id="equity" class="value">-</div></div>
  <div class="card"><div class="label">Risk mode</div>
    <div id="risk-mode" class="value">-</div></div>
  <div class="card"><div class="label">Redis writer</div>
    <div id="writer" class="value small">-</div></div>
</section>
<div id="last-error" class="error" hidden></div>
<section class="grid">
  <div class="panel"><h2>Active strategy set</h2>
    <table id="active-set"><thead><tr><th>Name</th><th>Version</th><th>Alias</th>
    <th>Form</th></tr></thead>
    <tbody></tbody></table></div>
  <div class="panel span2"><h2>Cycle time and latency</h2>
    <table id="timing"><thead><tr><th>Tier</th><th>Count</th><th>p50 &micro;s</th>
    <th>p99 &micro;s</th><th>p99.9 &micro;s</th><th>Max &micro;s</th><th>Budget ms</th>
    <th>Overruns</th></tr></thead><tbody></tbody></table></div>
  <div class="panel"><h2>Per-strategy PnL</h2>
    <table id="per-strategy"><thead><tr><th>Strategy</th><th>PnL</th><th>Signals</th>
    <th>Fills</th></tr></thead><tbody></tbody></table>
    <p id="per-strategy-note" class="muted" hidden>This core's status carries no
    per-strategy books.</p></div>
  <div class="panel"><h2>Positions</h2>
    <table id="positions"><thead><tr><th>Symbol</th><th>Quantity</th><th>Avg price</th>
    <th>Realized PnL</th></tr></thead><tbody></tbody></table></div>
  <div class="panel"><h2>Strategy targets (latest signal)</h2>
    <table id="targets"><thead><tr><th>Strategy</th><th>Symbol</th><th>Target</th>
    <th>Time</th></tr></thead><tbody></tbody></table></div>
  <div class="panel wide"><h2>Strategic context</h2><div id="context"></div></div>
  <div class="panel wide"><h2>Recent signals</h2>
    <table id="signals"><thead><tr><th>Time</th><th>Strategy</th><th>Symbol</th><th>Target</th>
    <th>Strength</th></tr></thead><tbody></tbody></table></div>
  <div class="panel wide"><h2>Recent fills</h2>
    <table id="fills"><thead><tr><th>Time</th><th>Strategy</th><th>Symbol</th><th>Side</th>
    <th>Quantity</th><th>Price</th><th>Fee</th></tr></thead><tbody></tbody></table></div>
  <div class="panel wide"><h2>Rejected input</h2>
    <table id="rejected-by-reason"><thead><tr><th>Reason</th><th>Count</th></tr></thead>
    <tbody></tbody></table>
    <table id="dead-letters"><thead><tr><th>Time</th><th>Source</th><th>Reason</th></tr>
    </thead><tbody></tbody></table></div>
</section>
</main>
<footer class="muted">Namespace <span id="namespace"></span>, updated
  <span id="updated">never</span>. Data from this server's API (<a href="/docs">/docs</a>).
  <button id="token-forget" type="button">Forget token</button></footer>
<script>__JS__</script>
</body>
</html>
"""

CSS = """
:root { --bg: #0f1419; --panel: #182028; --text: #e6e6e6; --muted: #8a96a3; --ok: #3fb950;
        --warn: #d29922; --bad: #f85149; --line: #2a333d; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text);
       font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { display: flex; justify-content: space-between; align-items: center;
         padding: 12px 20px; border-bottom: 1px solid var(--line); }
h1 { font-size: 20px; margin: 0; } h2 { font-size: 14px; margin: 0 0 8px; color: var(--muted); }
main { padding: 16px 20px; }
.muted { color: var(--muted); font-weight: normal; }
.badge { padding: 2px 8px; border-radius: 10px; background: var(--line); margin-right: 8px; }
.badge.live { background: var(--ok); color: #000; } .badge.stale { background: var(--warn);
  color: #000; } .badge.down { background: var(--bad); color: #000; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap: 10px; }
.card, .panel { background: var(--panel); border: 1px solid var(--line); border-radius: 6px;
                padding: 10px 12px; }
.card .label { color: var(--muted); font-size: 12px; }
.card .value.small { font-size: 14px; white-space: normal; }
.card .value { font-size: 22px; font-variant-numeric: tabular-nums; white-space: nowrap; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 10px;
        margin-top: 10px; }
.panel.wide { grid-column: 1 / -1; } .panel.span2 { grid-column: span 2; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid var(--line); }
td.num, th.num { text-align: right; }
.pos { color: var(--ok); } .neg { color: var(--bad); }
.error { margin-top: 10px; padding: 8px 12px; border-radius: 6px; background: #3d1f1f; }
#context { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr));
            gap: 4px 16px; }
.context-item b { display: block; } .context-item div { overflow-wrap: anywhere; }
footer { padding: 8px 20px 16px; } a { color: #58a6ff; }
.auth { margin-bottom: 10px; padding: 10px 12px; border-radius: 6px; background: #3d2f14; }
.auth p { margin: 0 0 8px; }
.auth input { width: 28em; max-width: 100%; padding: 4px 6px; }
button { padding: 3px 10px; }
"""

JS = """
"use strict";
const POLL_MS = __POLL_MS__;
const $ = (id) => document.getElementById(id);
const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });

function num(v, fmt) {
  return (typeof v === "number" && isFinite(v)) ? (fmt || decimal).format(v) : "-";
}
function time(ns) {
  if (typeof ns !== "number" || ns <= 0) return "-";
  const text = new Date(ns / 1e6).toISOString().replace("T", " ").slice(0, 19);
  return text.endsWith(" 00:00:00") ? text.slice(0, 10) : text;  // daily bars: the date
}
function setText(id, text) {
  const el = $(id);
  if (el.textContent !== text) el.textContent = text;
}
function cell(row, value, cls) {
  const td = document.createElement("td");
  td.textContent = value;  // text, never HTML
  if (cls) td.className = cls;
  row.appendChild(td);
}
function fillTable(id, rows, columns) {
  const body = $(id).tBodies[0];
  const fresh = document.createElement("tbody");
  for (const item of rows || []) {
    const tr = document.createElement("tr");
    for (const [get, cls] of columns) {
      const value = get(item);
      cell(tr, value, typeof cls === "function" ? cls(item) : cls);
    }
    fresh.appendChild(tr);
  }
  body.replaceWith(fresh);
}
const sign = (v) => (v > 0 ? "num pos" : v < 0 ? "num neg" : "num");

function render(s) {
  const st = s.status || {};
  setText("core-name", s.core);
  setText("namespace", s.namespace);
  const age = st.heartbeat_age_s;
  const badge = $("connection");
  if (!s.status) { badge.className = "badge down"; badge.textContent = "no status"; }
  else if (age > 10) { badge.className = "badge stale"; badge.textContent = "stale"; }
  else { badge.className = "badge live"; badge.textContent = "live"; }
  const hb = $("heartbeat");
  hb.dataset.heartbeatNs = st.heartbeat_ns_text || "";
  setText("heartbeat", s.status ? "heartbeat " + num(age) + " s ago" : "");
  setText("events-in", num(st.events_in, integer));
  setText("signals-out", num(st.signals_out, integer));
  setText("orders-count", num(s.streams.orders, integer));
  setText("fills-count", num(s.streams.fills, integer));
  setText("rejected-count", num(s.streams.deadletter, integer));
  setText("equity", num(st.equity));
  setText("risk-mode", st.risk_mode || "-");
  const w = st.redis || {};
  setText("writer", s.status ? (w.connected ? "connected" : "away") +
          ", " + num(w.buffered, integer) + " buffered, " + num(w.dropped, integer) +
          " dropped" : "-");
  const err = $("last-error");
  err.hidden = !st.last_error;
  setText("last-error", st.last_error ? "Last error: " + st.last_error : "");

  const batched = st.vectorized || [];
  fillTable("active-set", s.active_set, [[(d) => d.name], [(d) => d.version], [(d) => d.alias],
    [(d) => batched.includes(d.name) ? "batch" : "instances"]]);
  const tiers = [["fast", st.fast_cycle], ["tactical", st.tactical_cycle],
                 ["tick to signal", st.tick_to_signal]].filter(([, t]) => t);
  fillTable("timing", tiers, [
    [([n]) => n], [([, t]) => num(t.count, integer), "num"], [([, t]) => num(t.p50_us), "num"],
    [([, t]) => num(t.p99_us), "num"], [([, t]) => num(t.p999_us), "num"],
    [([, t]) => num(t.max_us), "num"], [([, t]) => num(t.budget_ms), "num"],
    [([, t]) => num(t.overruns, integer), "num"]]);
  fillTable("per-strategy", s.per_strategy, [
    [(r) => r.strategy], [(r) => num(r.pnl), (r) => sign(r.pnl)],
    [(r) => num(r.signals, integer), "num"], [(r) => num(r.fills, integer), "num"]]);
  $("per-strategy-note").hidden = !!(s.per_strategy && s.per_strategy.length);
  fillTable("positions", s.positions, [
    [(p) => p.symbol], [(p) => num(p.quantity), (p) => sign(p.quantity)],
    [(p) => num(p.avg_price), "num"], [(p) => num(p.realized_pnl), (p) => sign(p.realized_pnl)]]);
  fillTable("targets", s.targets, [
    [(t) => t.strategy], [(t) => t.symbol],
    [(t) => num(t.target_position), (t) => sign(t.target_position)], [(t) => time(t.ts_event)]]);
  fillTable("signals", s.signals, [
    [(g) => time(g.ts_event)], [(g) => g.strategy], [(g) => g.symbol],
    [(g) => num(g.target_position), (g) => sign(g.target_position)],
    [(g) => num(g.strength), "num"]]);
  fillTable("fills", s.fills, [
    [(f) => time(f.ts_event)], [(f) => f.strategy], [(f) => f.symbol], [(f) => f.side],
    [(f) => num(f.quantity), "num"], [(f) => num(f.price), "num"], [(f) => num(f.fee), "num"]]);
  const reasons = Object.entries(s.rejected_by_reason || {}).sort((a, b) => b[1] - a[1]);
  fillTable("rejected-by-reason", reasons, [[(r) => r[0]], [(r) => num(r[1], integer), "num"]]);
  fillTable("dead-letters", s.dead_letters, [
    [(d) => time(d.ts)], [(d) => d.source], [(d) => d.reason]]);
  renderContext(s.context || {});
  setText("updated", new Date().toISOString().slice(11, 19) + " UTC");
}

const short = new Intl.NumberFormat("en-US", { maximumSignificantDigits: 4 });
const HIDDEN_CONTEXT_FIELDS = new Set(["schema_version", "kind"]);
function brief(v) {
  let text;
  if (typeof v === "number") text = short.format(v);
  else if (Array.isArray(v)) text = "[" + v.map((x) => typeof x === "object" ? "\u2026" :
    brief(x)).join(", ") + "]";
  else if (v !== null && typeof v === "object") {
    // A nested record (a macro component): its plain fields, not its nested detail.
    text = Object.entries(v).filter(([, x]) => x === null || typeof x !== "object")
      .map(([k, x]) => k + " " + brief(x)).join(", ");
  } else text = String(v);
  return text.length > 100 ? text.slice(0, 99) + "\u2026" : text;
}

function renderContext(context) {
  const box = document.createElement("div");
  box.id = "context";
  const names = Object.keys(context);
  if (!names.length) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = "No context published yet (regime, news, macro, adaptation).";
    box.appendChild(p);
  }
  for (const name of names) {
    const item = document.createElement("div");
    item.className = "context-item";
    const title = document.createElement("b");
    title.textContent = name;
    item.appendChild(title);
    for (const [k, v] of Object.entries(context[name] || {})) {
      if (HIDDEN_CONTEXT_FIELDS.has(k)) continue;
      const line = document.createElement("div");
      line.textContent = k + ": " + brief(v);
      item.appendChild(line);
    }
    box.appendChild(item);
  }
  $("context").replaceWith(box);
}

const TOKEN_KEY = "strategy-engine-api-token";
// The token from the fragment (#token=...): kept for this tab, then dropped from the address
// bar so it is not bookmarked, shared or left in the history.
function takeFragmentToken() {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = (params.get("token") || "").trim();
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
}
function askForToken(text) {
  const badge = $("connection");
  badge.className = "badge down";
  badge.textContent = "token needed";
  setText("auth-message", text);
  $("auth").hidden = false;
}
$("token-save").addEventListener("click", () => {
  const token = $("token-input").value.trim();
  $("token-input").value = "";
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  poll();
});
$("token-forget").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  poll();
});

// The core shown: the page's own ?core= (the API's default core when absent).
const STATE_URL = "__STATE_PATH__" + location.search;
let timer = null;
async function poll() {
  clearTimeout(timer);
  try {
    const token = sessionStorage.getItem(TOKEN_KEY);
    // Without a token the request goes bare: a server that needs one answers 401.
    const headers = token ? { "Authorization": "Bearer " + token } : {};
    const response = await fetch(STATE_URL, { cache: "no-store", headers });
    if (response.status === 401) {
      askForToken(token ?
        "The API refused this token (401 unauthorized): give a valid API token with the " +
        "reader role." :
        "This dashboard reads the API, which needs a token: give an API token with the " +
        "reader role (open the page as /dashboard#token=TOKEN, or paste it here).");
      return;
    }
    if (!response.ok) throw new Error("HTTP " + response.status);
    const state = await response.json();
    $("auth").hidden = true;
    render(state);
  } catch (e) {
    const badge = $("connection");
    badge.className = "badge down";
    badge.textContent = "dashboard unreachable";
  } finally {
    timer = setTimeout(poll, POLL_MS);
  }
}
takeFragmentToken();
poll();
""".replace("__POLL_MS__", str(POLL_MS)).replace("__STATE_PATH__", STATE_PATH)


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


PAGE = HTML.replace("__CSS__", CSS).replace("__JS__", JS)
"""The whole page: the HTML with its stylesheet and script inline."""
PAGE_CSP = (
    f"default-src 'none'; script-src {_csp_hash(JS)}; style-src {_csp_hash(CSS)}; "
    "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
"""The page's policy: exactly its own inline style and script (by hash), ``fetch`` to its own
origin, nothing else; a script injected into the page would not match a hash and not run."""
