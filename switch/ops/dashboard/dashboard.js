// The operations dashboard of the switch: sign in with an ops API token, then read
// GET /v1/dashboard every few seconds (?refresh_s=N, 1-300; ?minutes=N, 5-1440) and redraw.
// Everything the API sends is put in the page as text (textContent, SVG attributes), never as
// markup. The token stays in this tab's sessionStorage; signing out forgets it.
"use strict";

(() => {
  const TOKEN_KEY = "sembako.ops.token";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const REQUEST_TIMEOUT_MS = 15000;
  const DETAIL_CHARS_MAX = 200;
  const KNOWN_BANKS = ["bni", "bri", "mandiri", "btn"];
  const RC_CLASSES = {
    "00": "rc-approved",
    "51": "rc-funds",
    "55": "rc-pin",
    "75": "rc-pin",
    "91": "rc-unavailable",
    "96": "rc-unavailable",
    "14": "rc-card",
    "41": "rc-card",
    "54": "rc-card",
    "62": "rc-card",
  };

  const query = new URLSearchParams(window.location.search);
  const refreshS = bounded(query.get("refresh_s"), 1, 300, 5);
  let minutes = bounded(query.get("minutes"), 5, 1440, 60);
  let timer = null;
  let session = 0; // a new number on each sign-in and sign-out: answers of an older one are dropped

  const $ = (id) => document.getElementById(id);

  function bounded(text, low, high, fallback) {
    const value = Number.parseInt(text ?? "", 10);
    return Number.isFinite(value) ? Math.min(high, Math.max(low, value)) : fallback;
  }

  // -- formatting ------------------------------------------------------------------------------------

  const integer = (n) => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const rupiah = (n) => "Rp" + String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ".");
  const percent = (p) => (p === null || p === undefined ? "–" : `${p.toFixed(1)} %`);
  const millis = (ms) => (ms === null || ms === undefined ? "–" : `${integer(ms)} ms`);
  const bankName = (bank) => (bank ? bank.toUpperCase() : "Unrouted");
  const bankClass = (bank) => (bank === null ? "unrouted" : KNOWN_BANKS.includes(bank) ? bank : "other");
  // Times come as ISO 8601 with the WIB offset (+07:00): shown as written.
  const clockTime = (iso) => (iso ? iso.slice(11, 19) : "");
  const dayAndTime = (iso) => (iso ? `${iso.slice(0, 10)} ${iso.slice(11, 19)}` : "");
  const rcClass = (rc) => RC_CLASSES[rc] ?? "rc-other";
  // Response codes in code order ("00" first): an object's integer-like keys ("51") would come first.
  const codesOf = (byRc) => Object.entries(byRc).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  // Coordinates to a tenth of a pixel: enough for the eye, and no long runs of digits in the markup.
  const coordinate = (value) => (typeof value === "number" ? String(Math.round(value * 10) / 10) : String(value));

  function svg(tag, attributes, parent) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes ?? {})) node.setAttribute(name, coordinate(value));
    if (parent) parent.appendChild(node);
    return node;
  }

  function svgText(parent, x, y, text, attributes) {
    const node = svg("text", { x, y, ...(attributes ?? {}) }, parent);
    node.textContent = String(text);
    return node;
  }

  function tooltip(node, text) {
    svg("title", {}, node).textContent = text;
  }

  // -- signing in and out ----------------------------------------------------------------------------

  function showSignIn(message) {
    $("board").hidden = true;
    $("session").hidden = true;
    $("sign-in").hidden = false;
    const error = $("sign-in-error");
    error.textContent = message ?? "";
    error.hidden = !message;
    clearBoard();
  }

  function showBoard() {
    $("sign-in").hidden = true;
    $("sign-in-error").hidden = true;
    $("board").hidden = false;
    $("session").hidden = false;
  }

  function clearBoard() {
    for (const id of ["tpm-chart", "tpm-legend", "rc-chart", "rc-legend", "alerts-list", "status", "scope"]) {
      $(id).replaceChildren();
    }
    for (const table of ["banks-table", "latest-table"]) $(table).tBodies[0].replaceChildren();
    for (const tile of document.querySelectorAll(".tile")) {
      tile.querySelector(".value").textContent = "";
      tile.querySelector(".sub").textContent = "";
      tile.classList.remove("good", "warn", "bad");
    }
    $("alerts-note").hidden = true;
    $("alerts-note").textContent = "";
  }

  function signOut(message) {
    session += 1;
    window.clearTimeout(timer);
    timer = null;
    window.sessionStorage.removeItem(TOKEN_KEY);
    showSignIn(message);
    $("token").focus();
  }

  function signIn(event) {
    event.preventDefault();
    const input = $("token");
    const token = input.value.trim();
    input.value = "";
    if (!token) {
      showSignIn("Paste a token first.");
      return;
    }
    window.sessionStorage.setItem(TOKEN_KEY, token);
    session += 1;
    load(true);
  }

  async function detailOf(response) {
    try {
      const body = await response.json();
      if (typeof body.detail === "string") return body.detail.slice(0, DETAIL_CHARS_MAX);
    } catch (_) {
      // not JSON: the status says enough
    }
    return `HTTP ${response.status}`;
  }

  // -- polling ----------------------------------------------------------------------------------------

  function schedule() {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => load(false), refreshS * 1000);
  }

  function stale(message) {
    const status = $("status");
    status.textContent = `${message}. The figures below may be out of date; trying again in ${refreshS} s.`;
    status.classList.add("stale");
  }

  async function load(signingIn) {
    const token = window.sessionStorage.getItem(TOKEN_KEY);
    if (!token) {
      showSignIn();
      return;
    }
    const mine = session;
    const controller = new AbortController();
    const abort = window.setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    let response;
    try {
      response = await fetch(`/v1/dashboard?minutes=${minutes}`, {
        headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
        cache: "no-store",
        signal: controller.signal,
      });
    } catch (_) {
      if (mine !== session) return;
      if (signingIn) showSignIn("The operations API did not answer. Is the switch running?");
      else {
        stale("The operations API did not answer");
        schedule();
      }
      return;
    } finally {
      window.clearTimeout(abort);
    }
    if (mine !== session) return;
    if (response.status === 401 || response.status === 403) {
      const detail = await detailOf(response);
      if (mine !== session) return;
      signOut(signingIn ? `Sign-in refused: ${detail}.` : `Signed out: ${detail}. Sign in again with a valid token.`);
      return;
    }
    if (!response.ok) {
      const detail = await detailOf(response);
      if (mine !== session) return;
      if (signingIn) showSignIn(`The operations API answered ${response.status}: ${detail}.`);
      else {
        stale(`The operations API answered ${response.status}: ${detail}`);
        schedule();
      }
      return;
    }
    let data;
    try {
      data = await response.json();
    } catch (_) {
      if (mine !== session) return;
      stale("The operations API sent an unreadable answer");
      schedule();
      return;
    }
    if (mine !== session) return;
    showBoard();
    draw(data);
    schedule();
  }

  // -- drawing ----------------------------------------------------------------------------------------

  function draw(data) {
    $("scope").textContent = data.scope;
    const status = $("status");
    status.classList.remove("stale");
    status.textContent =
      `Figures as of ${dayAndTime(data.now)} WIB, window ${clockTime(data.window_start).slice(0, 5)}` +
      `–${clockTime(data.window_end).slice(0, 5)} (${data.window_minutes} min); refreshed every ${refreshS} s.`;
    drawTiles(data);
    drawSeries(data);
    drawBanks(data);
    drawAlerts(data);
    drawLatest(data);
  }

  function tile(id, value, sub, level) {
    const node = $(id);
    node.querySelector(".value").textContent = value;
    node.querySelector(".sub").textContent = sub;
    node.classList.remove("good", "warn", "bad");
    if (level) node.classList.add(level);
  }

  function drawTiles(data) {
    const t = data.totals;
    tile("tile-tpm", integer(t.last_minute_requests), `last 60 s; average ${t.per_minute_avg} / min over ${data.window_minutes} min`);
    const rate = t.approval_rate_pct;
    tile("tile-approval", percent(rate), `${integer(t.approved)} of ${integer(t.requests)} requests approved`,
      rate === null ? null : rate >= 90 ? "good" : rate >= 75 ? "warn" : "bad");
    const oldest = data.saf.oldest_pending_at;
    tile("tile-saf", integer(data.saf.pending_total),
      oldest ? `reversals owed to banks, oldest since ${dayAndTime(oldest)}` : "no reversal owed to a bank",
      data.saf.pending_total > 0 ? "warn" : "good");
    const l = t.latency;
    tile("tile-p99", millis(l.p99_ms), `p50 ${millis(l.p50_ms)}, p95 ${millis(l.p95_ms)} over ${integer(l.samples)} bank calls`);
    tile("tile-alerts", integer(data.alerts_total), `${integer(t.critical_alerts)} critical`,
      t.critical_alerts > 0 ? "bad" : data.alerts_total > 0 ? "warn" : "good");
  }

  function niceMax(value) {
    if (value <= 4) return 4;
    const magnitude = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 2.5, 5, 10]) {
      if (step * magnitude >= value) return step * magnitude;
    }
    return 10 * magnitude;
  }

  function drawSeries(data) {
    const width = 960, height = 240, left = 44, right = 12, top = 12, bottom = 28;
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Transactions per minute per bank" });
    const labels = data.minute_labels;
    const count = labels.length;
    const peak = Math.max(0, ...data.series.flatMap((s) => s.requests));
    const yMax = niceMax(peak);
    const x = (i) => left + (count > 1 ? (i * (width - left - right)) / (count - 1) : 0);
    const y = (v) => top + (height - top - bottom) * (1 - v / yMax);
    for (const fraction of [0, 0.25, 0.5, 0.75, 1]) {
      const value = yMax * fraction;
      svg("line", { x1: left, x2: width - right, y1: y(value), y2: y(value), class: fraction ? "grid" : "axis" }, chart);
      svgText(chart, left - 6, y(value) + 4, Number.isInteger(value) ? value : value.toFixed(1), { "text-anchor": "end" });
    }
    const ticks = Math.min(count, 7);
    for (let k = 0; k < ticks; k += 1) {
      const i = ticks > 1 ? Math.round((k * (count - 1)) / (ticks - 1)) : 0;
      svgText(chart, x(i), height - 8, labels[i], { "text-anchor": k === 0 ? "start" : k === ticks - 1 ? "end" : "middle" });
    }
    const legend = $("tpm-legend");
    legend.replaceChildren();
    for (const series of data.series) {
      const name = bankName(series.bank);
      const total = series.requests.reduce((a, b) => a + b, 0);
      const points = series.requests.map((v, i) => `${coordinate(x(i))},${coordinate(y(v))}`).join(" ");
      const line = svg("polyline", { points, class: `line stroke-${bankClass(series.bank)}` }, chart);
      tooltip(line, `${name}: ${total} requests in the window`);
      const item = element("li");
      item.appendChild(element("span", null, `swatch fill-${bankClass(series.bank)}`));
      item.appendChild(document.createTextNode(`${name}: ${integer(total)}`));
      legend.appendChild(item);
    }
    if (peak === 0) svgText(chart, width / 2, height / 2, "No transactions in this window", { class: "empty", "text-anchor": "middle" });
    $("tpm-chart").replaceChildren(chart);
  }

  function drawBanks(data) {
    const rowHeight = 30, left = 90, right = 70, width = 960;
    const panels = data.banks;
    const height = Math.max(1, panels.length) * rowHeight + 8;
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Response codes per bank" });
    const shownCodes = new Set();
    panels.forEach((panel, row) => {
      const y = 4 + row * rowHeight;
      svgText(chart, 0, y + 18, bankName(panel.bank), { class: "bar-label" });
      const barWidth = width - left - right;
      svg("rect", { x: left, y: y + 4, width: barWidth, height: rowHeight - 10, class: "rc-empty" }, chart);
      let offset = 0;
      for (const [rc, count] of codesOf(panel.by_rc)) {
        if (!panel.requests) break;
        const w = (count / panel.requests) * barWidth;
        const segment = svg("rect", { x: left + offset, y: y + 4, width: Math.max(w, 0.5), height: rowHeight - 10, class: rcClass(rc) }, chart);
        tooltip(segment, `${bankName(panel.bank)}: RC ${rc} ${data.rc_texts[rc] ?? ""}: ${count}`);
        offset += w;
        shownCodes.add(rc);
      }
      svgText(chart, width - right + 8, y + 18, panel.requests ? percent(panel.approval_rate_pct) : "no traffic", { class: "rate" });
    });
    $("rc-chart").replaceChildren(chart);

    const legend = $("rc-legend");
    legend.replaceChildren();
    for (const rc of [...shownCodes].sort()) {
      const item = element("li");
      item.appendChild(element("span", null, `swatch ${rcClass(rc)}`));
      item.appendChild(document.createTextNode(`${rc} ${data.rc_texts[rc] ?? ""}`));
      legend.appendChild(item);
    }

    const body = $("banks-table").tBodies[0];
    body.replaceChildren();
    for (const panel of panels) {
      const tr = element("tr");
      tr.dataset.bank = panel.bank ?? "unrouted";
      const codes = codesOf(panel.by_rc).map(([rc, n]) => `${rc}: ${integer(n)}`).join(", ") || "–";
      const l = panel.latency;
      const latency = l.samples ? `${l.p50_ms} / ${l.p95_ms} / ${l.p99_ms}` : "–";
      tr.append(
        element("td", bankName(panel.bank)),
        element("td", integer(panel.requests), "num"),
        element("td", integer(panel.approved), "num"),
        element("td", percent(panel.approval_rate_pct), "num"),
        element("td", codes),
        element("td", latency, "num"),
        element("td", integer(panel.saf_pending), "num"),
      );
      body.appendChild(tr);
    }
  }

  function drawAlerts(data) {
    const note = $("alerts-note");
    note.textContent = data.alerts_note ?? "";
    note.hidden = !data.alerts_note;
    const list = $("alerts-list");
    list.replaceChildren();
    if (!data.alerts.length) {
      list.appendChild(element("li", "No alert in the past 24 hours.", "none"));
      return;
    }
    for (const alert of data.alerts) {
      const item = element("li");
      item.dataset.kind = alert.kind;
      item.appendChild(element("span", alert.severity, `severity ${alert.severity === "critical" ? "critical" : "warning"}`));
      item.appendChild(element("span", alert.message));
      const subject = `${alert.subject.type} ${alert.subject.id}${alert.subject.bank ? ` (${alert.subject.bank.toUpperCase()})` : ""}`;
      item.appendChild(element("span", `${alert.kind.replaceAll("_", " ")} · ${subject} · last seen ${dayAndTime(alert.last_seen)}`, "meta"));
      list.appendChild(item);
    }
    if (data.alerts_total > data.alerts.length) {
      list.appendChild(element("li", `${data.alerts_total - data.alerts.length} more: see GET /v1/alerts.`, "none"));
    }
  }

  function drawLatest(data) {
    const body = $("latest-table").tBodies[0];
    body.replaceChildren();
    if (!data.latest.length) {
      const tr = element("tr", null, "empty");
      const td = element("td", "No transactions in this window.");
      td.colSpan = 8;
      tr.appendChild(td);
      body.appendChild(tr);
      return;
    }
    for (const t of data.latest) {
      const tr = element("tr");
      tr.dataset.rrn = t.rrn;
      tr.append(
        element("td", dayAndTime(t.created_at)),
        element("td", t.rrn),
        element("td", t.tid),
        element("td", t.mti === "0401" ? "reversal (repeat)" : t.kind),
        element("td", t.pan_masked, "card-number"),
        element("td", bankName(t.bank_code)),
        element("td", rupiah(t.amount_idr), "num"),
        element("td", `${t.rc} ${t.rc_text}`, t.rc === "00" ? "approved" : "declined"),
      );
      body.appendChild(tr);
    }
  }

  // -- start ------------------------------------------------------------------------------------------

  function start() {
    $("sign-in-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", () => signOut("Signed out."));
    const select = $("window");
    if (![...select.options].some((o) => Number(o.value) === minutes)) {
      select.appendChild(new Option(`${minutes} min`, String(minutes)));
    }
    select.value = String(minutes);
    select.addEventListener("change", () => {
      minutes = bounded(select.value, 5, 1440, 60);
      const url = new URL(window.location.href);
      url.searchParams.set("minutes", String(minutes));
      window.history.replaceState(null, "", url);
      session += 1;
      load(false);
    });
    if (window.sessionStorage.getItem(TOKEN_KEY)) {
      session += 1;
      load(true);
    } else {
      showSignIn();
    }
  }

  document.addEventListener("DOMContentLoaded", start);
})();
