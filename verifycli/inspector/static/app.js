// verifycli inspector. Callback content is hostile: every value reaches the page as a text
// node (el() below, textContent), never parsed as HTML; the CSP forbids inline script.

const GOOD = new Set(["delivered", "completed", "verified", "valid"]);
const BAD = new Set(["failed", "undelivered", "no-answer", "expired", "invalid", "replayed", "busy"]);
const WAIT = new Set(["queued", "sent", "ringing", "in-progress", "unsigned", "unchecked"]);

const state = { rows: new Map(), picked: null, meta: {}, view: "events" };
const $ = (id) => document.getElementById(id);

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "on") for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function tone(value) {
  if (GOOD.has(value)) return "good";
  if (BAD.has(value)) return "bad";
  if (WAIT.has(value)) return "wait";
  return "";
}

function clock(iso) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return iso;
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(when.getHours())}:${pad(when.getMinutes())}:${pad(when.getSeconds())}.${pad(when.getMilliseconds(), 3)}`;
}

function okClass(status) {
  return status !== null && status !== undefined && status >= 200 && status < 300 ? "good" : "bad";
}

function forwardText(fwd) {
  if (!fwd) return "";
  if (fwd.status === null || fwd.status === undefined) return `✗ ${fwd.error || "no answer"}`;
  const took = typeof fwd.elapsed_ms === "number" ? ` in ${Math.round(fwd.elapsed_ms)} ms` : "";
  return `${fwd.status}${took}`;
}

function signatureText(sig) {
  const mark = { valid: "✓", invalid: "✗", replayed: "✗" }[sig.verdict] || "·";
  return `${mark} ${sig.verdict}${sig.scheme ? " " + sig.scheme : ""}`;
}

// -- filters and the list ------------------------------------------------------------------

function filterParams() {
  const params = new URLSearchParams();
  const pairs = [["session", $("f-session").value], ["status", $("f-status").value],
    ["verdict", $("f-verdict").value], ["q", $("f-text").value]];
  for (const [name, value] of pairs) if (value.trim()) params.set(name, value.trim());
  return params;
}

function matches(row) {
  const session = $("f-session").value.trim();
  const status = $("f-status").value;
  const verdict = $("f-verdict").value;
  if (session && !(row.session_uuid || "").startsWith(session)) return false;
  if (status && row.channel_status !== status) return false;
  if (verdict && row.signature.verdict !== verdict) return false;
  return true;
}

function rowFor(ev) {
  const session = ev.session_uuid ? ev.session_uuid.slice(0, 8) : ev.path.slice(0, 12);
  const tr = el("tr", { "data-id": ev.id, on: { click: () => openEvent(ev.id) } },
    el("td", { class: "num" }, ev.id),
    el("td", {}, clock(ev.received_at)),
    el("td", { class: ev.session_uuid ? "" : "dim", title: ev.session_uuid || ev.path }, session),
    el("td", { class: "num" }, ev.attempt_sequence || ""),
    el("td", {}, ev.channel || ""),
    el("td", { class: tone(ev.channel_status) }, ev.channel_status || ""),
    el("td", { class: tone(ev.session_status) }, ev.session_status || ""),
    el("td", {}, ev.channel_error_code || ""),
    el("td", { class: tone(ev.signature.verdict) }, signatureText(ev.signature)),
    el("td", { class: "wait" }, ev.retry_of ? `↻ #${ev.retry_of}` : ""),
    el("td", { class: okClass(ev.response_status) }, ev.response_status ?? "—"),
    el("td", { class: ev.forward ? okClass(ev.forward.status) : "" }, forwardText(ev.forward)),
  );
  if (ev.id === state.picked) tr.classList.add("picked");
  return tr;
}

function upsert(ev, fresh) {
  const body = $("events").tBodies[0];
  const old = body.querySelector(`tr[data-id="${Number(ev.id)}"]`);
  state.rows.set(ev.id, ev);
  const tr = rowFor(ev);
  if (old) old.replaceWith(tr);
  else {
    let before = null;
    for (const other of body.rows) {
      if (Number(other.dataset.id) < ev.id) { before = other; break; }
    }
    body.insertBefore(tr, before);
    if (fresh) tr.classList.add("fresh");
  }
  $("empty").hidden = body.rows.length > 0;
}

async function api(path, options) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  if (!response.ok) throw new Error((await response.text()).trim() || response.statusText);
  return response.json();
}

let loading = 0;
async function loadList() {
  const mine = ++loading;
  const params = filterParams();
  const data = await api(`/api/events?${params}`);
  if (mine !== loading) return;
  const body = $("events").tBodies[0];
  body.replaceChildren();
  state.rows.clear();
  for (const ev of data.events) upsert(ev, false);
  $("empty").hidden = data.events.length > 0;
  const shown = data.events.length;
  $("count").textContent = data.matched > shown
    ? `newest ${shown} of ${data.matched} callbacks` : `${shown} callback${shown === 1 ? "" : "s"}`;
  for (const fmt of ["json", "jsonl", "csv"]) {
    const link = $(`dl-${fmt}`);
    const query = new URLSearchParams(params);
    query.set("format", fmt);
    link.href = `/api/export?${query}`;
    link.setAttribute("download", `verifycli-events.${fmt}`);
  }
}

let timer = null;
function reloadSoon() {
  clearTimeout(timer);
  timer = setTimeout(() => { loadList().catch(showError); if (state.view === "sessions") loadSessions().catch(showError); }, 150);
}

function arrived(ev) {
  if ($("f-text").value.trim()) { reloadSoon(); return; }
  if (matches(ev)) {
    upsert(ev, !state.rows.has(ev.id));
    const shown = $("events").tBodies[0].rows.length;
    $("count").textContent = `${shown} callback${shown === 1 ? "" : "s"}`;
  }
  if (state.picked === ev.id) openEvent(ev.id, true);
  if (state.view === "sessions") reloadSoon();
}

function connect() {
  const source = new EventSource("/api/stream");
  source.addEventListener("open", () => {
    $("live").textContent = state.meta.live ? "● live" : "● watching the store";
    $("live").className = "live on";
    loadList().catch(showError);
  });
  source.addEventListener("error", () => {
    $("live").textContent = "○ reconnecting";
    $("live").className = "live off";
  });
  source.addEventListener("callback", (message) => arrived(JSON.parse(message.data)));
}

// -- one event whole --------------------------------------------------------------------------

function kv(pairs) {
  const list = el("dl", { class: "kv" });
  for (const [name, value, cls] of pairs) {
    list.append(el("dt", {}, name), el("dd", { class: cls || "" }, value === "" ? "(blank)" : value));
  }
  return list;
}

function parsedBody(record) {
  if (record.body_encoding === "base64") return el("p", { class: "dim" }, "not UTF-8: shown base64 above");
  const mime = (record.content_type || "").split(";")[0].trim().toLowerCase();
  if (mime === "application/json" || mime.endsWith("+json")) {
    try { return el("pre", { class: "parsed" }, JSON.stringify(JSON.parse(record.body), null, 2)); } catch { /* raw only */ }
  }
  const fields = Object.entries(record.fields || {});
  if (!fields.length) return el("p", { class: "dim" }, record.parse_error || "no parameters");
  return kv(fields);
}

const PLIVO = [["SessionUUID", "session_uuid"], ["SessionStatus", "session_status"],
  ["Channel", "channel"], ["ChannelStatus", "channel_status"], ["AttemptUUID", "attempt_uuid"],
  ["AttemptSequence", "attempt_sequence"], ["ChannelErrorCode", "channel_error_code"],
  ["Recipient", "recipient"], ["RequestTime", "request_time"]];

function plivoFields(record) {
  const pairs = [];
  for (const [name, key] of PLIVO) {
    const value = record[key];
    if (value === null || value === undefined) continue;
    pairs.push([name, value, tone(value)]);
    if (key === "channel_error_code" && value) {
      const meaning = record.channel_error_text;
      pairs.push(["  meaning", meaning || "not in verifycli's table of Plivo error codes", meaning ? "" : "dim"]);
    }
  }
  return pairs.length ? kv(pairs) : el("p", { class: "dim" }, "no Plivo fields: not a Verify callback");
}

function chainLinks(record, chain) {
  if (chain.length <= 1) return el("span", {}, "first and only delivery");
  const span = el("span", { class: "chain" });
  chain.forEach((id, index) => {
    if (index) span.append(" → ");
    if (id === record.id) span.append(el("strong", {}, `#${id}`));
    else span.append(el("button", { type: "button", class: "link", on: { click: () => openEvent(id) } }, `#${id}`));
  });
  const which = record.retry_of === null ? "the first delivery" : `a retry of #${record.retry_of}`;
  span.append(el("span", { class: "dim" }, `   (this is ${which}; ${chain.length - 1} retries)`));
  return span;
}

function replayBox(record) {
  const input = el("input", { type: "url", id: "replay-url", placeholder: state.meta.replay_to || "http://127.0.0.1:3000/plivo/verify", value: state.meta.replay_to || "" });
  const result = el("div", { id: "replay-result" });
  const send = async () => {
    result.replaceChildren(el("p", { class: "dim" }, "sending…"));
    try {
      const outcome = await api(`/api/events/${record.id}/replay`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ url: input.value.trim() }),
      });
      if (outcome.status === null) {
        result.replaceChildren(el("p", { class: "bad" }, `${outcome.url}: ${outcome.error}`));
        return;
      }
      result.replaceChildren(
        el("p", {}, el("strong", { class: okClass(outcome.status), id: "replay-status" }, `${outcome.status} ${outcome.reason}`.trim()),
          el("span", { class: "dim" }, ` from ${outcome.url} in ${outcome.elapsed_ms} ms`)),
        el("pre", { id: "replay-body" }, outcome.body_head || "(empty answer)"));
    } catch (error) {
      result.replaceChildren(el("p", { class: "bad" }, String(error.message || error)));
    }
  };
  return el("div", {},
    el("div", { class: "replay" }, input, el("button", { type: "button", class: "act", id: "replay", on: { click: send } }, "Replay")),
    result);
}

function curlBox(curl) {
  const text = el("pre", { id: "curl" }, curl);
  const note = el("span", { class: "dim" });
  const copy = async () => {
    try { await navigator.clipboard.writeText(curl); note.textContent = " copied"; }
    catch { note.textContent = " select the text above to copy"; }
  };
  return el("div", {}, text, el("button", { type: "button", class: "act", id: "copy-curl", on: { click: copy } }, "Copy as curl"), note);
}

async function openEvent(id, quiet) {
  const data = await api(`/api/events/${Number(id)}`).catch(showError);
  if (!data) return;
  const r = data.record;
  // A live update of the open event keeps what the person typed and the replay's answer.
  const keep = quiet && state.picked === r.id && $("replay-url")
    ? { url: $("replay-url").value, result: [...$("replay-result").childNodes] } : null;
  state.picked = r.id;
  for (const tr of $("events").tBodies[0].rows) tr.classList.toggle("picked", Number(tr.dataset.id) === r.id);
  if (!quiet) history.replaceState(null, "", `#event/${r.id}`);
  const sig = r.signature || {};
  const fwd = r.forward;
  const aside = $("detail");
  aside.hidden = false;
  aside.replaceChildren(
    el("button", { type: "button", class: "link close", on: { click: closeEvent } }, "close ✕"),
    el("h2", {}, `event #${r.id}`, el("span", { class: "dim" }, `  ${r.received_at}`)),
    el("pre", { id: "request-line" }, `${r.method} ${r.url}`),
    el("p", { class: "dim" }, `${r.content_type || "no content type"}, ${data.size} bytes`),
    el("h3", {}, "Plivo fields"), plivoFields(r),
    el("h3", {}, "Signature"),
    kv([["verdict", `${sig.verdict}${sig.scheme ? " (" + sig.scheme + ")" : ""}`, tone(sig.verdict)],
      ...(sig.detail ? [["diagnosis", sig.detail]] : []),
      ...(sig.verdict !== "unsigned" ? [["checked for", r.url, "dim"]] : [])]),
    el("h3", {}, "Deliveries"), chainLinks(r, data.chain),
    el("h3", {}, "Answer"),
    kv([["to the sender", r.response_status ?? "—", okClass(r.response_status)],
      ...(fwd ? [["forwarded", `${fwd.url}  ${forwardText(fwd)}`, okClass(fwd.status)]] : [])]),
    el("h3", {}, "Headers"), kv(Object.entries(r.headers)),
    el("h3", {}, "Body, raw"), el("pre", { id: "body-raw" }, r.body || "(empty)"),
    el("h3", {}, "Body, parsed"), parsedBody(r),
    el("h3", {}, "Replay"), replayBox(r),
    el("h3", {}, "Copy as curl"), curlBox(data.curl),
  );
  if (keep) {
    $("replay-url").value = keep.url;
    $("replay-result").replaceChildren(...keep.result);
  }
}

function closeEvent() {
  state.picked = null;
  $("detail").hidden = true;
  history.replaceState(null, "", "#");
  for (const tr of $("events").tBodies[0].rows) tr.classList.remove("picked");
}

// -- sessions -------------------------------------------------------------------------------

async function loadSessions() {
  const data = await api("/api/sessions");
  const view = $("sessions-view");
  const prefix = $("f-session").value.trim();
  const cards = [];
  for (const s of data.sessions) {
    if (prefix && !s.session_uuid.startsWith(prefix)) continue;
    const rows = s.events.map((ev) => el("tr", {},
      el("td", {}, clock(ev.received_at)),
      el("td", { class: "num" }, ev.attempt_sequence ? `attempt ${ev.attempt_sequence}` : ""),
      el("td", {}, ev.channel || ""),
      el("td", { class: tone(ev.channel_status) }, ev.channel_status || ""),
      el("td", { class: tone(ev.session_status) }, ev.session_status || ""),
      el("td", { class: "wait" }, ev.retry_of ? `↻ retry of #${ev.retry_of}` : ""),
      el("td", { class: okClass(ev.response_status) }, `answered ${ev.response_status ?? "—"}`),
      el("td", {}, el("button", { type: "button", class: "link", on: { click: () => { showView("events"); openEvent(ev.id); } } }, `#${ev.id}`))));
    const last = s.events[s.events.length - 1];
    const attempts = new Set(s.events.map((ev) => ev.attempt_sequence).filter(Boolean)).size;
    const retries = s.events.filter((ev) => ev.retry_of).length;
    cards.push(el("div", { class: "session" },
      el("h3", {}, s.session_uuid, " ", el("span", { class: tone(last.session_status) }, last.session_status || "")),
      el("p", { class: "dim" }, `${s.events.length} callbacks · ${attempts} attempt${attempts === 1 ? "" : "s"} · ${retries} retr${retries === 1 ? "y" : "ies"}`),
      el("table", { class: "timeline" }, el("tbody", {}, rows))));
  }
  view.replaceChildren(...(cards.length ? cards : [el("p", { class: "dim" }, "no sessions yet")]));
}

function showView(name) {
  state.view = name;
  $("events-view").hidden = name !== "events";
  $("sessions-view").hidden = name !== "sessions";
  $("tab-events").classList.toggle("on", name === "events");
  $("tab-sessions").classList.toggle("on", name === "sessions");
  if (name === "sessions") loadSessions().catch(showError);
}

function showError(error) {
  $("count").textContent = `error: ${error.message || error}`;
}

async function start() {
  state.meta = await api("/api/meta");
  $("store").textContent = `store ${state.meta.store}`;
  for (const id of ["f-session", "f-text"]) $(id).addEventListener("input", reloadSoon);
  for (const id of ["f-status", "f-verdict"]) $(id).addEventListener("change", reloadSoon);
  $("tab-events").addEventListener("click", () => showView("events"));
  $("tab-sessions").addEventListener("click", () => showView("sessions"));
  await loadList();
  connect();
  const wanted = /^#event\/(\d+)$/.exec(location.hash);
  if (wanted) openEvent(Number(wanted[1]));
}

start().catch(showError);
