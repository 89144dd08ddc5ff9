// FlowForest dashboard: views switched by the URL hash, data from the JSON
// API, live updates from the server-sent events at /api/events.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const HOUR = 3600 * 1000;
// Rate charts and anomalies show the last hour; the server keeps that much of the rates.
const RATE_WINDOW = HOUR;
// Incidents shown on the overview.
const INCIDENT_ROWS = 20;
// Rows of an anomalies page.
const PAGE_ROWS = 50;
// Anomalies of the last hour kept for the overview's charts, at most.
const RECENT_MAX = 5000;
// Timeline fetches are store reads, which the server runs a few at a time
// for everyone: at most this many at once, one per incident per interval,
// so an attack's incident updates (one a second each) do not take them all.
const TIMELINE_PARALLEL = 2, TIMELINE_EVERY_MS = 5000;

const state = {
  user: null,          // {user, role, csrf_token} once signed in (anonymous admin under --no-auth)
  model: null,         // /api/model
  events: null,        // EventSource
  stats: [],           // [{t, pps, bps, flows}]: the last hour from /api/stats/history, then stats events
  recent: [],          // anomalies of the last hour, newest first (overview)
  incidents: [],       // the latest incidents, newest first (overview), kept current by incident events
  filter: {},          // anomalies view: query as in the hash
  cursors: [],         // anomalies view: cursors of the pages before this one
  cursor: null,        // cursor of this page (null: newest)
  next: null,          // next_cursor from the last page
  hostsInterface: null, // hosts view: active flows of this interface or exporter only (hash ?interface=)
  incidentsInterface: null, // overview: incidents with an anomaly observed at this interface or exporter only (hash ?interface=)
  incidentsReload: null, // overview: a pending re-fetch of the filtered incidents (timer id)
  timelines: new Map(), // incident id -> {count, times: [{t, severity}]}: its anomalies, fetched once per count
  suppressions: [],    // suppression view: the rules as GET /api/suppressions lists them
  view: null,
  loads: 0,            // bumped per view load; answers for an older load are dropped
};

/** A token for one load; `current(token)` is false once a newer load started. */
const beginLoad = () => ++state.loads;
const current = token => token === state.loads;

// MARK: Formatting

function fmtNum(v) {
  if (v == null || !isFinite(v)) return "—";
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(a >= 1e10 ? 0 : 1) + " G";
  if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + " M";
  if (a >= 1e3) return (v / 1e3).toFixed(a >= 1e4 ? 0 : 1) + " k";
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}
const fmtBytes = v => { const n = fmtNum(v); return n === "—" ? n : n + (/ [kMG]$/.test(n) ? "B" : " B"); };
const pad = n => String(n).padStart(2, "0");
function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
function fmtAgo(iso) {
  const s = Math.round((Date.now() - new Date(iso)) / 1000);
  if (!isFinite(s)) return "—";
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}
function endpoint(ip, port) {
  if (!ip) return "—";
  if (port == null) return ip;
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}
function fmtValue(v) {
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return fmtNum(v).trim();
  return Math.abs(v) >= 100 ? fmtNum(v) : v.toPrecision(3);
}

/** Element builder: h("td", {class: "num"}, "text", child...). */
function h(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    // Through the CSSOM: the Content-Security-Policy (style-src 'self') refuses style attributes.
    else if (k === "style") e.style.cssText = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c != null) e.append(c instanceof Node ? c : String(c));
  return e;
}
const sevBadge = s => h("span", { class: `sev sev-${s}` }, s);
const isAdmin = () => !!state.user && state.user.role === "admin";
/** A label, marked when a suppression rule matched the anomaly. */
const labelCell = a => a.suppressed ? [a.label, " ", h("span", { class: "tag suppressed", title: "A suppression rule matched it: no incident, no alert" }, "suppressed")] : [a.label];

// MARK: API

class AuthRequired extends Error {}

/**
 * JSON.parse that keeps integers beyond 2^53 (flow ids of remote ingest start
 * at 2^62) as their exact decimal text instead of rounding them.
 */
const parseJSON = text => JSON.parse(text, (key, value, context) =>
  typeof value === "number" && !Number.isSafeInteger(value) && Number.isInteger(value) && context && /^-?\d+$/.test(context.source)
    ? context.source : value);

// State-changing requests carry the session's CSRF token (from sign-in or
// GET /api/session); the server refuses cookie-authenticated POSTs without it.
async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  const method = (options.method || "GET").toUpperCase();
  if (method !== "GET" && method !== "HEAD" && state.user && state.user.csrf_token) headers["X-CSRF-Token"] = state.user.csrf_token;
  const r = await fetch(path, { ...options, credentials: "same-origin", headers });
  if (r.status === 401) throw new AuthRequired("sign in required");
  if (!r.ok) {
    let message = `${r.status} ${r.statusText}`;
    try { message = (await r.json()).error || message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return r.status === 204 ? null : parseJSON(await r.text());
}

function showError(e) {
  if (e instanceof AuthRequired) { showLogin(); return; }
  const p = $("#error");
  p.textContent = e.message || String(e);
  p.hidden = false;
}
const clearError = () => { $("#error").hidden = true; };

// MARK: Session

async function start() {
  try {
    state.user = await api("/api/session");
  } catch (e) {
    if (e instanceof AuthRequired) return showLogin();
    return showError(e);
  }
  signedIn();
}

function showLogin() {
  state.user = null;
  pruneTimelines();
  if (state.events) { state.events.close(); state.events = null; }
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== "view-login";
  $("#nav").hidden = true;
  $("#logout").hidden = true;
  $("#user").textContent = "";
  setLive("signed out", "down");
  $("#login-form input[name=username]").focus();
}

$("#login-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  const err = $("#login-error");
  err.hidden = true;
  try {
    const r = await fetch("/api/login", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ username: form.get("username"), password: form.get("password") }),
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || `sign-in failed (${r.status})`);
    state.user = body;
    ev.target.reset();
    signedIn();
  } catch (e) {
    err.textContent = e.message;
    err.hidden = false;
  }
});

$("#logout").addEventListener("click", async () => {
  try { await api("/api/logout", { method: "POST" }); } catch (_) { /* signed out either way */ }
  showLogin();
});

async function signedIn() {
  $("#nav").hidden = false;
  const anonymous = state.user.user === "anonymous";
  $("#user").textContent = anonymous ? "" : `${state.user.user} (${state.user.role})`;
  $("#logout").hidden = anonymous;
  document.body.classList.toggle("admin", isAdmin());
  connectEvents();
  loadStatsHistory();
  // Empty states depend on whether the model is still learning, so know that first.
  await refreshStatus();
  route();
}

// MARK: Live events

function setLive(text, cls) {
  const p = $("#live");
  p.textContent = text;
  p.className = "pill " + (cls || "");
}

function connectEvents() {
  if (state.events) state.events.close();
  const es = new EventSource("/api/events");
  state.events = es;
  let opened = false;
  es.onopen = () => {
    setLive("live", "live");
    // The server does not replay what it sent while the stream was down
    // (a network blip, a restart): what those events would have changed is
    // read again.
    if (opened) {
      loadStatsHistory();
      if (state.view === "overview") loadOverview();
      else if (state.view === "anomalies" && state.cursor == null) loadAnomalies();
    }
    opened = true;
  };
  es.onerror = () => {
    // The browser retries by itself; a closed stream means it gave up
    // (for example the session ended), so check whether we are still signed in.
    setLive("reconnecting…", "down");
    if (es.readyState === EventSource.CLOSED) setTimeout(() => start(), 2000);
  };
  es.addEventListener("stats", ev => onStats(parseJSON(ev.data)));
  es.addEventListener("anomaly", ev => onAnomaly(parseJSON(ev.data)));
  for (const change of ["opened", "updated", "closed"]) {
    es.addEventListener(`incident_${change}`, ev => onIncident(parseJSON(ev.data)));
  }
}

/** An incident change: replace its row (or add it on top). An incident
 *  carries no interface, so with the overview filtered by one a new incident
 *  is checked by the server: the filtered list is fetched again. */
function onIncident(incident) {
  if (!incident || incident.id == null) return;
  const at = state.incidents.findIndex(i => i.id === incident.id);
  if (at >= 0) state.incidents[at] = incident;
  else if (state.incidentsInterface) return reloadIncidentsSoon();
  else state.incidents.unshift(incident);
  state.incidents = state.incidents.slice(0, INCIDENT_ROWS);
  if (state.view === "overview") renderIncidents();
}

/** One re-fetch for a burst of new incidents (a busy sensor opens several a second). */
function reloadIncidentsSoon() {
  if (state.incidentsReload != null) return;
  state.incidentsReload = setTimeout(async () => {
    state.incidentsReload = null;
    if (state.view !== "overview") return;
    const iface = state.incidentsInterface;
    try {
      const page = await api(incidentsPath(iface));
      if (state.incidentsInterface !== iface) return;
      state.incidents = page.incidents;
      renderIncidents();
    } catch (e) { showError(e); }
  }, 300);
}

/** A link's interface filter when it reads as an interface or exporter name
 *  (the page shows it as text); anything else, such as a sentence someone
 *  put in a link to be read on this page, is no filter. */
const interfaceFilter = text => (text && /^[A-Za-z0-9._:%@-]{1,64}$/.test(text) ? text : null);

/** The overview's incidents query: the latest, of one interface or exporter if given. */
const incidentsPath = iface => `/api/incidents?limit=${INCIDENT_ROWS}` + (iface ? `&interface=${encodeURIComponent(iface)}` : "");

/** A stats sample as a chart point, at the server's time. */
const statsPoint = s => ({ t: Date.parse(s.time) || Date.now(), pps: s.packets_per_second, bps: s.bytes_per_second, flows: s.active_flows });

/** The last hour of rates from the server, so the charts do not start empty; events already received stay. */
async function loadStatsHistory() {
  try {
    const history = (await api("/api/stats/history")).samples.map(statsPoint);
    const last = history.length ? history[history.length - 1].t : -Infinity;
    state.stats = [...history, ...state.stats.filter(p => p.t > last)];
    if (state.view === "overview") drawCharts();
  } catch (e) { showError(e); }
}

function onStats(s) {
  const point = statsPoint(s), t = point.t;
  state.stats.push(point);
  while (state.stats.length && state.stats[0].t < t - RATE_WINDOW) state.stats.shift();
  $("#v-pps").textContent = fmtNum(s.packets_per_second);
  $("#v-bps").textContent = fmtBytes(s.bytes_per_second);
  $("#v-flows").textContent = fmtNum(s.active_flows);
  $("#f-store").textContent = s.store_errors_total > 0
    ? `${s.store_errors_total} errors, ${s.store_pending} pending` : `ok, ${s.store_pending} pending`;
  if (state.model && s.model !== state.model.state) refreshStatus();
  if (state.view === "overview") {
    drawCharts();
    // Follow capture drops and losses while traffic flows.
    if (s.packets_per_second > 0 && Date.now() - (state.captureAt || 0) > 5000) refreshCapture();
  }
}

function onAnomaly(a) {
  state.recent.unshift(a);
  const hourAgo = Date.now() - HOUR;
  while (state.recent.length && Date.parse(state.recent[state.recent.length - 1].time) < hourAgo) state.recent.pop();
  // A tab left open on a busy sensor keeps the newest only.
  if (state.recent.length > RECENT_MAX) state.recent.length = RECENT_MAX;
  if (state.view === "overview") { drawCharts(); renderLatest(); }
  if (state.view === "anomalies" && state.cursor == null && matchesFilter(a, state.filter)) {
    const tbody = $("#anomalies tbody");
    const row = anomalyRow(a);
    row.classList.add("fresh");
    tbody.prepend(row);
    // The first page stays a page: the rows pushed off it are on the next,
    // which now starts below the last row kept.
    if (tbody.rows.length > PAGE_ROWS) {
      while (tbody.rows.length > PAGE_ROWS) tbody.lastElementChild.remove();
      state.next = tbody.lastElementChild.dataset.id;
      $("#page-older").disabled = false;
    }
    $("#anomalies-empty").hidden = true;
  }
}

// MARK: Overview

async function refreshStatus() {
  try {
    const [health, model] = await Promise.all([api("/api/health"), api("/api/model")]);
    state.model = model;
    $("#f-sensor").textContent = `${health.sensor} · v${health.version}`;
    $("#f-store").textContent = `${health.database}: ${health.store}`;
    renderModel();
  } catch (e) { showError(e); }
  await refreshCapture();
}

async function refreshCapture() {
  state.captureAt = Date.now();
  try {
    renderCapture(await api("/api/status"));
  } catch (e) { showError(e); }
}

function renderModel() {
  const m = state.model;
  if (!m) return;
  const learning = m.state === "learning";
  $("#f-model").textContent = learning ? "learning" : `${m.state}${m.version != null ? " · v" + m.version : ""}`;
  $("#f-trained").textContent = m.trained_at ? `${fmtTime(m.trained_at)} (${fmtAgo(m.trained_at)})` : "not yet";
  const note = $("#learning");
  note.hidden = !learning;
  if (learning) {
    note.textContent = "";
    note.append(h("strong", null, "Learning normal traffic. "),
      "No anomalies are raised until the model is trained" +
      (m.learning_until ? `, at the end of its learning window (${fmtTime(m.learning_until)})` : "") +
      (m.learning_target ? ` once each kind of vector has ${fmtNum(m.learning_target)} or more` : "") +
      `; ${fmtNum(m.vectors_seen)} vectors seen so far.`);
  }
}

/** Capture modes, interfaces, drops and losses from /api/status. */
function renderCapture(status) {
  const captures = status.captures || [];
  const interfaces = [...new Set(captures.flatMap(c => c.interfaces))].sort();
  let drops = 0, lost = 0;
  for (const c of captures) {
    drops += c.drops.capture + c.drops.interface;
    lost += c.losses.table_full;
  }
  $("#f-mode").textContent = captures.length ? captures.map(c => c.mode).join(", ") : "none yet";
  $("#f-interfaces").textContent = interfaces.length ? interfaces.join(", ") : "—";
  $("#f-drops").textContent = drops + lost === 0 ? "none"
    : `${fmtNum(drops)} dropped` + (lost ? `, ${fmtNum(lost)} lost (flow table full)` : "");
}

async function loadOverview() {
  const token = beginLoad();
  const since = Math.floor((Date.now() - HOUR) / 1000);
  try {
    const [page, incidents] = await Promise.all([
      api(`/api/anomalies?since=${since}&limit=1000`), api(incidentsPath(state.incidentsInterface))]);
    if (!current(token)) return;
    state.recent = page.anomalies;
    state.incidents = incidents.incidents;
  } catch (e) { showError(e); }
  drawCharts();
  renderIncidents();
  renderLatest();
}

/** Addresses of one side of an incident: the first, and how many more. */
function addressList(list) {
  if (!list.length) return "—";
  return list.length === 1 ? list[0] : `${list[0]} +${list.length - 1}`;
}

function renderIncidents() {
  pruneTimelines();
  const tbody = $("#incidents tbody");
  tbody.textContent = "";
  for (const i of state.incidents) {
    const why = i.explanation.map(e => e.text).join("; ");
    const span = i.first_seen === i.last_seen ? fmtTime(i.first_seen) : `${fmtTime(i.first_seen)} → ${fmtTime(i.last_seen)}`;
    // The anomalies of its first actor are one click away.
    const subject = i.actors[0] || i.targets[0] || "";
    tbody.append(h("tr", { id: `incident-${i.id}`, "data-id": i.id, class: i.state === "open" ? "open" : null },
      h("td", { title: span }, ...splitTime(fmtTime(i.last_seen))),
      h("td", { class: "label" }, h("a", { href: `#/anomalies?${anomaliesOf(subject)}`, title: "Its anomalies" }, i.label)),
      h("td", { class: "mono actors", title: i.actors.join(", ") }, addressList(i.actors)),
      h("td", { class: "mono targets", title: i.targets.join(", ") }, addressList(i.targets)),
      countCell(i),
      timelineCell(i),
      h("td", { class: "severity" }, sevBadge(i.peak_severity)),
      h("td", { class: "state" }, i.state),
      h("td", { class: "why" }, why || "—"),
      h("td", { class: "admin-only" }, h("button", { type: "button", class: "secondary expect", onclick: () => openRuleDialog(ruleFromIncident(i)) },
        "Mark expected"))));
  }
  const iface = state.incidentsInterface;
  const note = $("#incident-filter");
  note.hidden = !iface;
  note.textContent = "";
  if (iface) note.append(`Only incidents with an anomaly observed at ${iface}. `, h("a", { href: "#/overview" }, "Show every interface"));
  if ($("#inc-interface") !== document.activeElement) $("#inc-interface").value = iface || "";
  emptyState($("#incidents-empty"), state.incidents.length === 0, iface ? `No incidents at ${iface}.` : "No incidents yet.");
  // An alert's dashboard link names its incident: show that row.
  if (location.hash.startsWith("#incident-")) {
    const row = document.getElementById(location.hash.slice(1));
    if (row && !row.classList.contains("fresh")) { row.classList.add("fresh"); row.scrollIntoView({ block: "center" }); }
  }
}

/** The anomalies view's query for an incident's subject, kept to the overview's interface filter. */
function anomaliesOf(subject) {
  const q = new URLSearchParams({ ip: subject });
  if (state.incidentsInterface) q.set("interface", state.incidentsInterface);
  return q.toString();
}

/** The anomaly count; "≥" and what was lost when the sensor lost packets or flow records meanwhile (its figures are lower bounds). */
function countCell(i) {
  const lost = [i.lost_packets ? `${fmtNum(i.lost_packets)} packets` : null,
    i.lost_flow_records ? `${fmtNum(i.lost_flow_records)} flow records` : null].filter(Boolean);
  if (!lost.length) return h("td", { class: "num count" }, fmtNum(i.anomaly_count));
  const why = `The sensor lost ${lost.join(" and ")} while this incident was open: its figures are lower bounds.`;
  return h("td", { class: "num count lossy", title: why },
    h("span", { class: "value" }, `≥ ${fmtNum(i.anomaly_count)}`), " ",
    h("span", { class: "tag lost" }, `${lost.join(", ")} lost`));
}

// MARK: Incident timelines

/** The timeline cell of an incident row: its anomalies as ticks over its span, coloured by severity. */
function timelineCell(i) {
  const td = h("td", { class: "timeline" });
  const known = state.timelines.get(i.id);
  if (known) drawTimeline(td, i, known.times);
  if (!known || known.count !== i.anomaly_count) loadTimeline(i);
  return td;
}

/**
 * Fetches an incident's anomalies (its actor's or target's, in its span, kept to its ids) and redraws its cell.
 * At most TIMELINE_PARALLEL fetches run, the rest wait in order; an incident is fetched again at most once per
 * TIMELINE_EVERY_MS (per 30 s after a failure), for its latest count, so the ticks end complete.
 */
function loadTimeline(i) {
  const subject = i.actors[0] || i.targets[0];
  if (!subject || timelineLoads.has(i.id) || timelineQueue.includes(i.id) || timelineWaiting.has(i.id)) return;
  const wait = (timelineLast.get(i.id) || 0) - Date.now();
  if (wait > 0) {
    timelineWaiting.set(i.id, setTimeout(() => { timelineWaiting.delete(i.id); reloadTimelineIfStale(i.id); }, wait));
    return;
  }
  timelineQueue.push(i.id);
  runTimelines();
}
const timelineLoads = new Set();   // incidents whose timeline is being fetched
const timelineQueue = [];          // incidents waiting for a free fetch, in order
const timelineLast = new Map();    // incident id -> earliest time of its next fetch
const timelineWaiting = new Map(); // incident id -> timer of a fetch put off

/** Starts queued fetches while there is room, oldest first. */
function runTimelines() {
  while (timelineLoads.size < TIMELINE_PARALLEL && timelineQueue.length) {
    const id = timelineQueue.shift();
    const i = state.incidents.find(x => x.id === id);
    const subject = i && (i.actors[0] || i.targets[0]);
    if (!subject) continue;
    timelineLoads.add(id);
    timelineLast.set(id, Date.now() + TIMELINE_EVERY_MS);
    fetchTimeline(i, subject).then(ok => {
      if (!ok) timelineLast.set(id, Date.now() + 6 * TIMELINE_EVERY_MS);
    }).finally(() => {
      timelineLoads.delete(id);
      runTimelines();
      // Changes that came meanwhile: once more, for the latest count.
      if (state.user) reloadTimelineIfStale(id);
    });
  }
}

function reloadTimelineIfStale(id) {
  const latest = state.incidents.find(x => x.id === id);
  const known = latest && state.timelines.get(id);
  if (latest && (!known || known.count !== latest.anomaly_count)) loadTimeline(latest);
}

/** Forgets the timelines of incidents no longer listed (all of them once signed out). */
function pruneTimelines() {
  const listed = new Set(state.user ? state.incidents.map(i => i.id) : []);
  for (const id of state.timelines.keys()) if (!listed.has(id)) state.timelines.delete(id);
  for (const id of timelineLast.keys()) if (!listed.has(id) && !timelineLoads.has(id)) timelineLast.delete(id);
  for (const [id, timer] of timelineWaiting) if (!listed.has(id)) { clearTimeout(timer); timelineWaiting.delete(id); }
  for (let k = timelineQueue.length - 1; k >= 0; k--) if (!listed.has(timelineQueue[k])) timelineQueue.splice(k, 1);
}

async function fetchTimeline(i, subject) {
  const since = Math.floor(Date.parse(i.first_seen) / 1000), until = Math.floor(Date.parse(i.last_seen) / 1000) + 1;
  try {
    const page = await api(`/api/anomalies?ip=${encodeURIComponent(subject)}&since=${since}&until=${until}&limit=1000`);
    const ids = new Set(i.anomaly_ids.map(String));
    const times = page.anomalies.filter(a => ids.has(String(a.id))).map(a => ({ t: Date.parse(a.time), severity: a.severity }));
    state.timelines.set(i.id, { count: i.anomaly_count, times });
    const td = document.querySelector(`#incident-${i.id} td.timeline`);
    if (td) drawTimeline(td, i, times);
    return true;
  } catch (e) {
    showError(e);
    return false;
  }
}

function drawTimeline(td, i, times) {
  const W = 120, H = 16;
  const start = Date.parse(i.first_seen), span = Math.max(1, Date.parse(i.last_seen) - start);
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${times.length} anomalies from ${fmtTime(i.first_seen)} to ${fmtTime(i.last_seen)}`);
  for (const a of times) {
    const r = document.createElementNS(NS, "rect");
    r.setAttribute("class", `tick ${a.severity}`);
    r.setAttribute("x", (Math.min(1, Math.max(0, (a.t - start) / span)) * (W - 3)).toFixed(1));
    r.setAttribute("y", "1");
    r.setAttribute("width", "3");
    r.setAttribute("height", String(H - 2));
    svg.append(r);
  }
  td.textContent = "";
  td.dataset.ticks = String(times.length);
  td.title = `${times.length} anomalies, ${fmtTime(i.first_seen)} → ${fmtTime(i.last_seen)}`;
  td.append(svg);
}

// MARK: Suppression rules

const LABELS = ["port scan", "host sweep", "syn flood", "tcp flood", "connection flood", "udp flood", "icmp flood", "ip flood",
  "slow connections", "exfiltration", "dns tunnel", "beaconing", "unusual flow", "unusual host", "unusual destination"];
for (const l of LABELS) $("#rule-label").append(h("option", { value: l }, l));

/** A rule prefilled from an incident: its one actor and one target (a side with many stays open), its label. */
function ruleFromIncident(i) {
  return {
    actor: i.actors.length === 1 ? i.actors[0] : "", target: i.targets.length === 1 ? i.targets[0] : "",
    ports: [], label: i.label, expires: null, reason: "",
    hint: `Incident ${i.id}: ${i.label}, ${i.anomaly_count} anomalies. Matching anomalies will be kept but raise no incident or alert.`,
  };
}

/** Opens the rule form: a new rule (no `rule.id`) or an edit of a stored one. */
function openRuleDialog(rule) {
  $("#rule-title").textContent = rule.id != null ? `Edit rule ${rule.id}` : "Mark as expected";
  $("#rule-hint").textContent = rule.hint || "";
  $("#rule-actor").value = rule.actor || "";
  $("#rule-target").value = rule.target || "";
  $("#rule-ports").value = (rule.ports || []).join(", ");
  $("#rule-label").value = rule.label || "";
  $("#rule-expires").value = rule.expires ? toLocalInput(Date.parse(rule.expires) / 1000) : "";
  $("#rule-reason").value = rule.reason || "";
  $("#rule-error").hidden = true;
  $("#rule-form").dataset.id = rule.id != null ? String(rule.id) : "";
  $("#rule-dialog").showModal();
  $("#rule-reason").focus();
}

/** The form as the API's rule body: empty fields left out (the API takes no nulls). */
function ruleBody() {
  const body = { reason: $("#rule-reason").value.trim() };
  const actor = $("#rule-actor").value.trim(), target = $("#rule-target").value.trim();
  if (actor) body.actor = actor;
  if (target) body.target = target;
  const ports = $("#rule-ports").value.split(",").map(p => p.trim()).filter(Boolean);
  if (ports.length) {
    body.ports = ports.map(p => /^\d+$/.test(p) ? Number(p) : p);
  }
  if ($("#rule-label").value) body.label = $("#rule-label").value;
  if ($("#rule-expires").value) body.expires = fromLocalInput($("#rule-expires").value);
  return body;
}

$("#rule-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  const id = ev.target.dataset.id;
  const err = $("#rule-error");
  err.hidden = true;
  try {
    await api(id ? `/api/suppressions/${id}` : "/api/suppressions", {
      method: id ? "PUT" : "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(ruleBody()),
    });
    $("#rule-dialog").close();
    if (state.view === "suppressions") loadSuppressions();
    else location.hash = "#/suppressions";
  } catch (e) {
    if (e instanceof AuthRequired) { $("#rule-dialog").close(); return showLogin(); }
    err.textContent = e.message;
    err.hidden = false;
  }
});
$("#rule-cancel").addEventListener("click", () => $("#rule-dialog").close());
$("#rule-new").addEventListener("click", () => openRuleDialog({ hint: "Every field you fill in must match; at least one besides the reason." }));

async function loadSuppressions() {
  const token = beginLoad();
  let list;
  try { list = await api("/api/suppressions"); } catch (e) { return current(token) && showError(e); }
  if (!current(token)) return;
  state.suppressions = list.suppressions;
  const tbody = $("#suppressions tbody");
  tbody.textContent = "";
  for (const r of state.suppressions) {
    const stored = r.source === "api";
    const expired = r.expires && Date.parse(r.expires) <= Date.now();
    tbody.append(h("tr", { "data-id": r.id ?? "", class: expired ? "expired" : null },
      h("td", { class: "mono actor" }, r.actor ?? "any"), h("td", { class: "mono target" }, r.target ?? "any"),
      h("td", { class: "mono ports" }, r.ports.length ? r.ports.join(", ") : "any"), h("td", { class: "label" }, r.label ?? "any"),
      h("td", { class: "expires" }, r.expires ? fmtTime(r.expires) + (expired ? " (expired)" : "") : "never"),
      h("td", { class: "reason" }, r.reason), h("td", null, r.created_by), h("td", null, r.source),
      h("td", { class: "admin-only" }, ...(stored ? [
        h("button", { type: "button", class: "secondary edit", onclick: () => openRuleDialog(r) }, "Edit"), " ",
        h("button", { type: "button", class: "secondary remove", onclick: () => removeRule(r) }, "Remove"),
      ] : ["in the file"]))));
  }
  emptyState($("#suppressions-empty"), state.suppressions.length === 0, "No suppression rules: every anomaly can raise an incident.");
}

async function removeRule(r) {
  if (!confirm(`Remove the rule "${r.reason}"? Matching anomalies will raise incidents and alerts again.`)) return;
  try {
    await api(`/api/suppressions/${r.id}`, { method: "DELETE" });
    loadSuppressions();
  } catch (e) { showError(e); }
}

function drawCharts() {
  const s = state.stats;
  Charts.line($("#c-pps"), s.map(p => ({ t: p.t, v: p.pps })), RATE_WINDOW, fmtNum, "Packets per second, last hour");
  Charts.line($("#c-bps"), s.map(p => ({ t: p.t, v: p.bps })), RATE_WINDOW, fmtBytes, "Bytes per second, last hour");
  Charts.line($("#c-flows"), s.map(p => ({ t: p.t, v: p.flows })), RATE_WINDOW, fmtNum, "Active flows, last hour");
  const hour = state.recent.map(a => ({ t: Date.parse(a.time), severity: a.severity })).filter(a => a.t >= Date.now() - HOUR);
  Charts.severityBars($("#c-sev"), hour, "Anomalies per minute by severity, last hour");
  $("#v-anoms").textContent = String(hour.length);
}

function renderLatest() {
  const tbody = $("#latest tbody");
  tbody.textContent = "";
  for (const a of state.recent.slice(0, 10)) {
    tbody.append(h("tr", { class: a.acknowledged ? "acked" : null },
      h("td", null, h("a", { href: `#/anomaly/${a.id}` }, fmtTime(a.time))),
      h("td", { class: "mono" }, endpoint(a.src_ip, a.src_port)),
      h("td", { class: "mono" }, endpoint(a.dst_ip, a.dst_port)),
      h("td", null, ...labelCell(a)), h("td", null, sevBadge(a.severity)),
      h("td", { class: "num" }, a.score.toFixed(3))));
  }
  emptyState($("#latest-empty"), state.recent.length === 0, "No anomalies in the last hour.");
}

function emptyState(p, empty, text) {
  p.hidden = !empty;
  if (!empty) return;
  if (state.model && state.model.state === "learning") {
    const m = state.model;
    p.textContent = "The model is still learning what normal traffic looks like" +
      (m.learning_until ? ` until ${fmtTime(m.learning_until)}` : "") +
      "; anomalies appear here once it starts scoring.";
  } else {
    p.textContent = text;
  }
}

// MARK: Anomalies table

function anomalyRow(a) {
  const ports = a.src_port == null && a.dst_port == null ? "—" : `${a.src_port ?? "—"} → ${a.dst_port ?? "—"}`;
  return h("tr", { class: [a.acknowledged ? "acked" : "", a.suppressed ? "suppressed" : ""].join(" ").trim() || null, "data-id": a.id },
    h("td", null, h("a", { href: `#/anomaly/${a.id}`, title: a.time }, ...splitTime(fmtTime(a.time)))),
    h("td", { class: "mono src" }, a.src_ip ?? "—"),
    h("td", { class: "mono dst" }, a.dst_ip ?? "—"),
    h("td", { class: "mono" }, ports),
    h("td", null, a.protocol ?? "—"),
    h("td", null, a.kind),
    h("td", { class: "label" }, ...labelCell(a)),
    h("td", { class: "severity" }, sevBadge(a.severity)),
    h("td", { class: "num" }, a.score.toFixed(3)),
    h("td", { class: "mono interface" }, anomalyInterfaceLink(a.interface)));
}

/** An anomaly's interface or exporter, linking to the anomalies of that
 *  interface or of the whole exporter (its address before "%"). */
function anomalyInterfaceLink(name) {
  if (!name) return "—";
  const exporter = name.split("%")[0];
  return h("a", { href: `#/anomalies?interface=${encodeURIComponent(exporter)}`, title: `Anomalies of ${exporter}` }, name);
}

/** Date and clock time apart, so narrow screens can show the clock time only. */
function splitTime(text) {
  const [day, clock] = text.split(" ");
  return clock ? [h("span", { class: "day" }, day + " "), clock] : [text];
}

/** The hash's query for the anomalies view, with relative ranges resolved to now. */
function filterQuery(f, cursor) {
  const q = new URLSearchParams();
  if (f.ip) q.set("ip", f.ip);
  if (f.severity) q.set("severity", f.severity);
  if (f.kind) q.set("kind", f.kind);
  if (f.interface) q.set("interface", f.interface);
  if (f.range) q.set("since", String(Math.floor(Date.now() / 1000) - Number(f.range)));
  else if (f.since) q.set("since", f.since);
  if (f.until) q.set("until", f.until);
  q.set("limit", String(PAGE_ROWS));
  if (cursor) q.set("cursor", cursor);
  return q;
}

/** Same rules as the server's query, for rows that arrive live. */
function matchesFilter(a, f) {
  if (f.ip && normalizeIP(a.src_ip) !== normalizeIP(f.ip) && normalizeIP(a.dst_ip) !== normalizeIP(f.ip)) return false;
  if (f.severity && !f.severity.split(",").includes(a.severity)) return false;
  if (f.kind && !f.kind.split(",").includes(a.kind)) return false;
  if (f.interface && a.interface !== f.interface && !(a.interface || "").startsWith(f.interface + "%")) return false;
  const t = Date.parse(a.time) / 1000;
  if (f.range && t < Date.now() / 1000 - Number(f.range)) return false;
  if (!f.range && f.since && t < Number(f.since)) return false;
  if (f.until && t > Number(f.until)) return false;
  return true;
}
const normalizeIP = ip => (ip || "").trim().toLowerCase();

const toLocalInput = s => { const d = new Date(Number(s) * 1000); return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`; };
const fromLocalInput = v => (v ? String(Math.floor(new Date(v).getTime() / 1000)) : "");

function fillFilterForm(f) {
  $("#flt-ip").value = f.ip || "";
  $("#flt-severity").value = f.severity || "";
  $("#flt-kind").value = f.kind || "";
  $("#flt-interface").value = f.interface || "";
  $("#flt-since").value = f.since && !f.range ? toLocalInput(f.since) : "";
  $("#flt-until").value = f.until ? toLocalInput(f.until) : "";
  for (const b of document.querySelectorAll(".quick button")) {
    b.setAttribute("aria-pressed", String((b.dataset.range || "") === (f.range || "") && !f.since));
  }
}

function readFilterForm() {
  const f = {
    ip: $("#flt-ip").value.trim(), severity: $("#flt-severity").value, kind: $("#flt-kind").value,
    interface: $("#flt-interface").value.trim(),
    since: fromLocalInput($("#flt-since").value), until: fromLocalInput($("#flt-until").value),
  };
  const pressed = document.querySelector(".quick button[aria-pressed=true]");
  if (!f.since && pressed && pressed.dataset.range) f.range = pressed.dataset.range;
  return f;
}

function setFilterHash(f) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
  const hash = "#/anomalies" + (q.toString() ? "?" + q : "");
  if (location.hash === hash) route(); else location.hash = hash;
}

$("#filters").addEventListener("submit", ev => { ev.preventDefault(); setFilterHash(readFilterForm()); });
/** The overview's incident filter lives in its hash too, so a filtered view can be linked. */
function setIncidentFilterHash(iface) {
  const hash = "#/overview" + (iface ? "?" + new URLSearchParams({ interface: iface }) : "");
  if (location.hash === hash) route(); else location.hash = hash;
}
$("#incident-filters").addEventListener("submit", ev => { ev.preventDefault(); setIncidentFilterHash($("#inc-interface").value.trim()); });
$("#incident-filters").addEventListener("reset", ev => { ev.preventDefault(); setIncidentFilterHash(""); });
$("#filters").addEventListener("reset", ev => { ev.preventDefault(); setFilterHash({}); });
for (const b of document.querySelectorAll(".quick button")) {
  b.addEventListener("click", () => {
    const f = readFilterForm();
    delete f.since; delete f.until;
    if (b.dataset.range) f.range = b.dataset.range; else delete f.range;
    setFilterHash(f);
  });
}

async function loadAnomalies() {
  fillFilterForm(state.filter);
  const token = beginLoad();
  const q = filterQuery(state.filter, state.cursor);
  const tbody = $("#anomalies tbody");
  let page;
  try {
    page = await api("/api/anomalies?" + q);
    if (!current(token)) return;
  } catch (e) {
    if (!current(token)) return;
    tbody.textContent = "";
    return showError(e);
  }
  tbody.textContent = "";
  for (const a of page.anomalies) tbody.append(anomalyRow(a));
  state.next = page.next_cursor;
  const filtered = Object.values(state.filter).some(Boolean);
  emptyState($("#anomalies-empty"), page.anomalies.length === 0,
    filtered ? "No anomalies match these filters." : "No anomalies stored yet.");
  $("#page-older").disabled = !state.next;
  $("#page-newest").disabled = state.cursor == null;
  $("#page-info").textContent = `page ${state.cursors.length + 1}` + (state.cursor == null ? " · new rows appear live" : "");
}

$("#page-older").addEventListener("click", () => {
  if (!state.next) return;
  state.cursors.push(state.cursor);
  state.cursor = state.next;
  loadAnomalies();
});
$("#page-newest").addEventListener("click", () => {
  state.cursors = [];
  state.cursor = null;
  loadAnomalies();
});

// MARK: Detail

async function loadDetail(id) {
  const token = beginLoad();
  const head = $("#detail-head");
  head.textContent = "";
  for (const t of ["#explanation", "#features tbody", "#all-features tbody", "#detail-flows tbody"]) $(t).textContent = "";
  let a;
  try { a = await api(`/api/anomalies/${encodeURIComponent(id)}`); } catch (e) { return current(token) && showError(e); }
  if (!current(token)) return;
  $("#h-detail").textContent = `${a.label[0].toUpperCase()}${a.label.slice(1)} — anomaly ${a.id}`;
  const fact = (k, v) => h("div", null, h("span", null, k), h("strong", null, v));
  head.append(fact("Severity", sevBadge(a.severity)), fact("Score", a.score.toFixed(3)),
    fact("Time", fmtTime(a.time)), fact("Kind", a.kind),
    fact("Source", endpoint(a.src_ip, a.src_port)), fact("Destination", endpoint(a.dst_ip, a.dst_port)),
    fact("Protocol", a.protocol ?? "—"), fact("Sensor", a.sensor), fact("Interface or exporter", a.interface ?? "—"));
  const ackBox = h("div", null, h("span", null, "Status"));
  if (a.suppressed) head.append(fact("Suppressed", "a rule marks it expected: no incident, no alert"));
  if (a.acknowledged) ackBox.append(h("strong", null, "acknowledged"));
  else if (state.user && state.user.role === "admin") {
    ackBox.append(h("button", { type: "button", id: "ack", onclick: async ev => {
      ev.target.disabled = true;
      try { await api(`/api/anomalies/${a.id}/ack`, { method: "POST" }); loadDetail(a.id); }
      catch (e) { ev.target.disabled = false; showError(e); }
    } }, "Acknowledge"));
  } else ackBox.append(h("strong", null, "open"));
  head.append(ackBox);
  if (isAdmin() && !a.suppressed) {
    head.append(h("div", null, h("span", null, "Expected here?"), h("button", { type: "button", id: "expect-anomaly", class: "secondary",
      onclick: () => openRuleDialog({ actor: a.src_ip, target: a.dst_ip, ports: a.dst_port != null ? [a.dst_port] : [], label: a.label,
        hint: `Anomaly ${a.id}: ${a.label}. Matching anomalies will be kept but raise no incident or alert.` }) }, "Mark expected")));
  }

  const ul = $("#explanation");
  if (a.explanation.length === 0) ul.append(h("li", null, `Scored ${a.score.toFixed(3)}; no single feature stood out.`));
  // A grouped anomaly's line lists its first members; more were counted than listed.
  const members = e => e.members ? `: ${e.members.join(", ")}${e.value > e.members.length ? ", …" : ""}` : "";
  for (const e of a.explanation) ul.append(h("li", null, e.text + members(e)));

  // Distance from the baseline as a bar scaled to the largest ratio shown.
  const ratio = e => Math.abs(Math.log10((Math.abs(e.value) + 1) / (Math.abs(e.baseline) + 1)));
  const maxRatio = Math.max(1e-9, ...a.explanation.map(ratio));
  const fbody = $("#features tbody");
  for (const e of a.explanation) {
    fbody.append(h("tr", null, h("td", null, e.feature), h("td", { class: "num" }, fmtValue(e.value)),
      h("td", { class: "num" }, fmtValue(e.baseline)), h("td", null, e.direction),
      h("td", { class: "barcol" }, h("span", { class: "bar", style: `width:${(100 * ratio(e) / maxRatio).toFixed(0)}%` }))));
  }
  const all = $("#all-features tbody");
  for (const [k, v] of Object.entries(a.features).sort()) all.append(h("tr", null, h("td", null, k), h("td", { class: "num" }, fmtValue(v))));

  loadDetailFlows(a, token);
}

async function loadDetailFlows(a, token) {
  const tbody = $("#detail-flows tbody");
  const ip = a.src_ip || a.dst_ip;
  const wanted = new Set((a.flow_ids || []).map(String));
  if (!ip) return emptyState($("#detail-flows-empty"), true, "No address to look flows up by.");
  try {
    const since = Math.floor(Date.parse(a.time) / 1000) - 3600;
    const r = await api(`/api/flows?ip=${encodeURIComponent(ip)}&since=${since}&limit=1000`);
    if (!current(token)) return;
    const flows = [...r.active, ...r.recent];
    const seen = new Set();
    const behind = flows.filter(f => wanted.has(String(f.id)) && !seen.has(f.id) && seen.add(f.id));
    for (const f of behind.slice(0, 200)) tbody.append(flowRow(f));
    emptyState($("#detail-flows-empty"), behind.length === 0,
      wanted.size ? `The ${wanted.size} flows behind it are no longer kept (flow retention).` : "No flows were recorded with it.");
  } catch (e) { showError(e); }
}

function flowRow(f) {
  const flags = [...new Set([...(f.fwd.tcp_flags || []), ...(f.rev.tcp_flags || [])])].join(" ");
  return h("tr", null, h("td", null, fmtTime(f.first_seen)),
    h("td", { class: "mono" }, endpoint(f.src_ip, f.src_port)), h("td", { class: "mono" }, endpoint(f.dst_ip, f.dst_port)),
    h("td", null, f.protocol), h("td", { class: "num" }, `${fmtNum(f.fwd.packets)} / ${fmtNum(f.rev.packets)}`),
    h("td", { class: "num" }, `${fmtBytes(f.fwd.bytes)} / ${fmtBytes(f.rev.bytes)}`),
    h("td", { class: "mono" }, flags || "—"), h("td", null, f.state), h("td", { class: "mono" }, interfaceLink(f.interface)));
}

/** A flow's interface, or for a collected flow its exporter ("198.18.0.1%3":
 *  address, then the ingress interface index), linking to the active flows
 *  of that interface or of the whole exporter. */
function interfaceLink(name) {
  if (!name) return "—";
  const exporter = name.split("%")[0];
  return h("a", { href: `#/hosts?interface=${encodeURIComponent(exporter)}`, title: `Active flows of ${exporter}` }, name);
}

// MARK: Hosts

async function loadHosts() {
  const token = beginLoad();
  try {
    const iface = state.hostsInterface;
    const flowQuery = iface ? `&interface=${encodeURIComponent(iface)}` : "";
    const [hosts, flows] = await Promise.all([api("/api/hosts?limit=50"), api(`/api/flows?limit=100${flowQuery}`)]);
    if (!current(token)) return;
    const tbody = $("#hosts tbody");
    tbody.textContent = "";
    const list = [...hosts.hosts].sort((x, y) => y.bytes - x.bytes);
    for (const x of list) {
      tbody.append(h("tr", null,
        h("td", { class: "mono" }, h("a", { href: `#/anomalies?ip=${encodeURIComponent(x.address)}` }, x.address)),
        h("td", { class: "num" }, fmtBytes(x.bytes)), h("td", { class: "num" }, fmtNum(x.packets)),
        h("td", { class: "num" }, fmtNum(x.flows)), h("td", { class: "num" }, fmtNum(x.peers)),
        h("td", { class: "num" }, fmtNum(x.anomalies)), h("td", null, fmtAgo(x.last_seen))));
    }
    emptyState($("#hosts-empty"), list.length === 0, "No flows stored in the last hour.");
    const fbody = $("#active-flows tbody");
    fbody.textContent = "";
    const active = [...flows.active].sort((x, y) => (y.fwd.bytes + y.rev.bytes) - (x.fwd.bytes + x.rev.bytes));
    for (const f of active) fbody.append(flowRow(f));
    const note = $("#active-filter");
    note.hidden = !iface;
    note.textContent = "";
    if (iface) note.append(`Only flows of ${iface}. `, h("a", { href: "#/hosts" }, "Show every interface"));
    emptyState($("#active-empty"), active.length === 0, iface ? `No flows of ${iface} are open right now.` : "No flows are open right now.");
  } catch (e) { showError(e); }
}

// MARK: Routing

function route() {
  if (!state.user) return;
  clearError();
  const [path, query] = (location.hash.slice(1) || "/overview").split("?");
  const parts = path.split("/").filter(Boolean);
  let view = parts[0] || "overview";
  if (view === "anomaly" && parts[1]) view = "detail";
  if (!["overview", "anomalies", "detail", "hosts", "suppressions"].includes(view)) view = "overview";
  state.view = view;
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== `view-${view}`;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.view === view || (view === "detail" && a.dataset.view === "anomalies")) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (view === "overview") {
    state.incidentsInterface = interfaceFilter(new URLSearchParams(query || "").get("interface"));
    loadOverview();
  }
  if (view === "anomalies") {
    state.filter = Object.fromEntries(new URLSearchParams(query || ""));
    state.cursors = [];
    state.cursor = null;
    loadAnomalies();
  }
  if (view === "detail") loadDetail(parts[1]);
  if (view === "suppressions") loadSuppressions();
  if (view === "hosts") {
    state.hostsInterface = new URLSearchParams(query || "").get("interface") || null;
    loadHosts();
  }
}

window.addEventListener("hashchange", () => {
  const before = state.view;
  route();
  // Moving to another view puts keyboard focus at its start; filtering keeps it in the form.
  if (state.view !== before) $("#main").focus({ preventScroll: true });
});
// Model state and capture facts change slowly; the charts follow the stats events.
setInterval(() => { if (state.user && state.view === "overview") refreshStatus(); }, 15000);
start();
