// mmemo monitor web UI. The bearer token is entered once and kept in this browser's
// localStorage ("mmemo-token"); every API call sends it as "Authorization: Bearer ...",
// and the live stream sends it as its first message, {"type": "auth", "token": ...}
// (never in the URL, which servers and proxies log).
"use strict";

const $ = (id) => document.getElementById(id);
const state = {classes: [], seenAlerts: null, newAlerts: 0, live: null};

// -- API -------------------------------------------------------------------------------------
function token() { return localStorage.getItem("mmemo-token") || ""; }

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token()) headers.Authorization = `Bearer ${token()}`;
  const response = await fetch(path, Object.assign({}, options, {headers}));
  if (response.status === 401) {
    $("token-status").textContent = "token missing or wrong";
    $("token-input").focus();
    throw new Error("401: enter the service's bearer token at the top right");
  }
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new Error(`${response.status}: ${body.detail || body}`);
  return body;
}

function escapeHtml(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}

function fmtTime(iso) { return iso ? iso.replace("T", " ").slice(0, 19) : ""; }

function localToIso(value) { return value ? new Date(value).toISOString() : ""; }

function query(params) {
  const entries = Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined);
  return entries.length ? "?" + new URLSearchParams(entries).toString() : "";
}

// -- tabs and token --------------------------------------------------------------------------
function selectTab(name) {
  document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  document.querySelectorAll(".tab").forEach((s) => { s.hidden = s.id !== `tab-${name}`; });
  if (name === "alerts") refreshAlerts();
  if (name === "history") refreshHistory();
  if (name === "charts") refreshCharts();
}

async function loadHealth() {
  try {
    const health = await api("/health");
    if (!health.classes) {  // the public answer: /health gives details only with a valid token
      $("token-status").textContent = "token missing or wrong";
      $("model-info").textContent = `service ${health.status}; enter the token for details`;
      return;
    }
    state.classes = health.classes;
    $("model-info").textContent = `${health.model_id} · ${health.classes.length} classes · ` +
      `${health.rules.count} rule(s)${health.rules.error ? " · RULES FILE ERROR" : ""}`;
    const select = $("history-emotion");
    select.length = 1;
    for (const label of health.classes) select.add(new Option(label, label));
  } catch (error) { showError(`service unreachable: ${error.message}`); }
}

// -- analyze ----------------------------------------------------------------------------------
function renderAlertItems(list, alerts) {
  list.innerHTML = "";
  if (!alerts.length) { list.innerHTML = "<li class='muted'>none</li>"; return; }
  for (const alert of alerts) {
    const li = document.createElement("li");
    li.className = `alert priority-${alert.priority}`;
    li.innerHTML = `<b>${escapeHtml(alert.rule)}</b> [${escapeHtml(alert.priority)}] ` +
      `${alert.start.toFixed(2)}–${alert.end.toFixed(2)} s, score ${alert.score.toFixed(3)} ` +
      `<span class="muted">${escapeHtml(alert.description)}</span>`;
    list.appendChild(li);
  }
}

function renderResult(body) {
  const {record, prediction, alerts} = body;
  $("result").hidden = false;
  $("result-label").textContent = prediction.label;
  $("result-confidence").textContent = `(${(100 * prediction.confidence).toFixed(1)}%)`;
  $("result-meta").textContent = `audio id ${record.audio_id} · channel ${record.channel} · ` +
    `${prediction.duration.toFixed(2)} s · record #${record.id}`;
  const bars = $("score-bars");
  bars.innerHTML = "";
  Object.entries(prediction.scores).sort((a, b) => b[1] - a[1]).forEach(([label, score]) => {
    const row = document.createElement("div");
    row.className = "bar";
    const index = state.classes.indexOf(label);
    row.innerHTML = `<span class="bar-label">${escapeHtml(label)}</span>` +
      `<span class="bar-track"><span class="bar-fill" style="width:${(100 * score).toFixed(1)}%;` +
      `background:${colorOf(label, index)}"></span></span><span class="bar-value">${score.toFixed(3)}</span>`;
    bars.appendChild(row);
  });
  const timeline = prediction.timeline;
  const face = prediction.face_timeline;
  if (timeline) {
    drawTimeline($("timeline-canvas"), timeline.times, timeline.scores, timeline.classes, alerts,
                 prediction.duration);
    drawLegend($("timeline-legend"), timeline.classes);
  }
  // a video model's upload: the face's own reading over time, on the audio's time axis
  $("timeline-modality").textContent = face ? " (audio)" : "";
  $("face-timeline").hidden = !face;
  if (face) {
    drawTimeline($("face-canvas"), face.times, face.scores, face.classes, [], prediction.duration);
    const seconds = face.times.length ? face.times[face.times.length - 1] : 0;
    $("face-meta").textContent = `${face.times.length} frames with a face, up to ${seconds.toFixed(1)} s`;
  }
  renderAlertItems($("result-alerts"), alerts);
  const segments = prediction.segments;
  $("segments-view").hidden = !segments;
  if (segments) {
    renderSegments($("segments-canvas"), $("segments-rows"), segments, prediction.duration);
    const speakers = Object.keys(prediction.speakers || {});
    $("segments-meta").textContent = `${segments.length} segments, ${speakers.length} speaker(s)`;
    if (!timeline && record.timeline) {  // segmented records serve their frames from the store
      api(record.timeline).then((frames) => {
        drawTimeline($("timeline-canvas"), frames.times, frames.scores, frames.classes, alerts, prediction.duration);
        drawLegend($("timeline-legend"), frames.classes);
      }).catch((error) => showError(error.message));
    }
  }
}

// The speaker lanes and one table row per segment: time, speaker (its colour), emotion, transcript.
function renderSegments(canvas, rows, segments, span) {
  const speakers = drawSegments(canvas, segments, state.classes, span);
  rows.innerHTML = "";
  for (const s of segments) {
    const tr = document.createElement("tr");
    const who = s.speaker || "speech";
    tr.innerHTML = `<td>${s.start.toFixed(1)}–${s.end.toFixed(1)}</td>` +
      `<td><i class="chip" style="background:${speakerColor(speakers, who)}"></i>${escapeHtml(who)}</td>` +
      `<td>${escapeHtml(s.label ?? "–")}${s.confidence == null ? "" : ` (${(100 * s.confidence).toFixed(0)}%)`}</td>` +
      `<td>${escapeHtml(s.text ?? "")}</td>`;
    rows.appendChild(tr);
  }
}

async function analyzeBlob(blob, filename) {
  const form = new FormData();
  form.append("file", blob, filename);
  form.append("channel", $("analyze-channel").value || "default");
  $("analyze-status").textContent = "analysing…";
  showError("");
  try {
    const body = await api("/analyze", {method: "POST", body: form});
    renderResult(body);
    $("analyze-status").textContent = "done";
    refreshAlerts();
  } catch (error) {
    $("analyze-status").textContent = "";
    showError(error.message);
  }
}

let recorder = null;
async function toggleRecording() {
  const button = $("record-btn");
  try {
    if (!recorder) {
      recorder = new Recorder();
      await recorder.start();
      button.textContent = "■ Stop and analyze";
      $("analyze-status").textContent = "recording…";
    } else {
      const wav = await recorder.stop();
      recorder = null;
      button.textContent = "● Record";
      await analyzeBlob(wav, "recording.wav");
    }
  } catch (error) {
    recorder = null;
    button.textContent = "● Record";
    showError(`microphone: ${error.message}`);
  }
}

// -- live stream ------------------------------------------------------------------------------
function startLive() {
  const channel = $("live-channel").value || "live";
  const url = new URL("/stream", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.search = query({channel});
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  const live = {socket, ready: false, times: [], scores: [], alerts: [], source: null, timer: null};
  socket.onopen = () => socket.send(JSON.stringify({type: "auth", token: token()}));
  state.live = live;
  $("live-alerts").innerHTML = "";
  $("live-stop-btn").disabled = false;
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "ready") {
      live.ready = true;
      drawLegend($("live-legend"), message.classes);
      $("live-status").textContent = "streaming…";
    } else if (message.type === "frames") {
      live.times.push(...message.times);
      live.scores.push(...message.scores);
      live.alerts.push(...message.alerts);
      const keep = 50 * 60;  // last minute of frames on screen
      if (live.times.length > keep) { live.times.splice(0, live.times.length - keep); live.scores.splice(0, live.scores.length - keep); }
      if (message.scores.length) {
        const last = message.scores[message.scores.length - 1];
        const top = last.indexOf(Math.max(...last));
        $("live-label").textContent = `${state.classes[top]} (${last[top].toFixed(2)})`;
      }
      const t0 = live.times.length ? live.times[0] : 0;
      drawTimeline($("live-canvas"), live.times.map((t) => t - t0), live.scores, state.classes,
        live.alerts.map((a) => ({start: a.start - t0, end: a.end - t0})));
      if (message.alerts.length) { renderAlertItems($("live-alerts"), live.alerts); refreshAlerts(); }
      for (const segment of message.segments || []) {  // --segments vad: each closed segment, with its words
        $("live-segments").hidden = false;
        const li = document.createElement("li");
        li.textContent = `${segment.start.toFixed(1)}–${segment.end.toFixed(1)} s · ${segment.label ?? "–"} · ` +
          (segment.text || "(no transcript)");
        $("live-segment-list").appendChild(li);
      }
      $("live-status").textContent = `streaming… ${message.seconds.toFixed(1)} s`;
    } else if (message.type === "summary") {
      $("live-status").textContent = `stored as record #${message.record.id}`;
    }
  };
  socket.onclose = (event) => {
    stopSources(live);
    $("live-stop-btn").disabled = true;
    if (event.code !== 1000) showError(`stream closed (${event.code}): ${event.reason || "connection lost"}`);
  };
  return live;
}

function stopSources(live) {
  if (live.source) live.source.stop();
  if (live.timer) clearInterval(live.timer);
  live.source = null;
  live.timer = null;
}

function stopLive() {
  const live = state.live;
  if (!live) return;
  stopSources(live);
  if (live.socket.readyState === WebSocket.OPEN) live.socket.send(JSON.stringify({type: "end"}));
}

async function startMicrophone() {
  showError("");
  const live = startLive();
  live.source = new MicrophoneStream((chunk) => {
    if (live.ready && live.socket.readyState === WebSocket.OPEN) live.socket.send(chunk);
  });
  try { await live.source.start(); } catch (error) { showError(`microphone: ${error.message}`); stopLive(); }
}

async function streamFile() {
  const file = $("live-file").files[0];
  if (!file) { showError("choose a file to stream"); return; }
  showError("");
  const samples = floatToInt16(await decodeTo16k(await file.arrayBuffer()));
  const live = startLive();
  const step = 4000;  // 0.25 s, sent at real-time pace
  let offset = 0;
  live.socket.addEventListener("message", () => {
    if (!live.ready || live.timer) return;  // start once the server said "ready"
    live.timer = setInterval(() => {
      if (offset >= samples.length) { stopLive(); return; }
      live.socket.send(samples.slice(offset, offset + step).buffer);
      offset += step;
    }, 250);
  });
}

// -- alert log, history, charts ---------------------------------------------------------------
async function refreshAlerts() {
  try {
    const alerts = await api("/alerts" + query({channel: $("alerts-channel").value, rule: $("alerts-rule").value,
                                                 limit: 200}));
    $("alert-log").innerHTML = alerts.map((a) => `<tr class="priority-${escapeHtml(a.priority)}">` +
      `<td>${fmtTime(a.fired_at)}</td><td>${escapeHtml(a.priority)}</td><td>${escapeHtml(a.rule)}</td>` +
      `<td>${escapeHtml(a.channel)}</td><td>${escapeHtml(a.audio_id)}</td>` +
      `<td>${a.start.toFixed(2)}–${a.end.toFixed(2)}</td><td>${a.score.toFixed(3)}</td>` +
      `<td>${escapeHtml(a.delivery)}</td></tr>`).join("");
    const ids = new Set(alerts.map((a) => a.id));
    if (state.seenAlerts === null) state.seenAlerts = ids;
    for (const id of ids) if (!state.seenAlerts.has(id)) { state.newAlerts += 1; state.seenAlerts.add(id); }
    $("alert-badge").textContent = `${state.newAlerts} alert${state.newAlerts === 1 ? "" : "s"}`;
    $("alert-badge").classList.toggle("hot", state.newAlerts > 0);
  } catch (error) { /* the token prompt is already shown */ }
}

async function refreshHistory(event) {
  if (event) event.preventDefault();
  try {
    const records = await api("/records" + query({
      since: localToIso($("history-since").value), until: localToIso($("history-until").value),
      channel: $("history-channel").value, emotion: $("history-emotion").value, alert: $("history-alert").value,
      speaker: $("history-speaker").value,
      limit: 200}));
    const rows = $("history-rows");
    rows.innerHTML = "";
    for (const r of records) {
      const tr = document.createElement("tr");
      tr.innerHTML = `<td>${fmtTime(r.created_at)}</td><td>${escapeHtml(r.audio_id)}</td><td>${escapeHtml(r.channel)}</td>` +
        `<td>${escapeHtml(r.source)}</td><td>${escapeHtml(r.label ?? "–")}</td>` +
        `<td>${r.confidence == null ? "" : r.confidence.toFixed(3)}</td><td>${r.duration.toFixed(1)} s</td>` +
        `<td>${r.alert_count ? escapeHtml(r.alert_rules.join(", ")) : ""}</td>` +
        `<td><button class="delete" title="delete everything stored for this audio id">delete</button></td>`;
      tr.addEventListener("click", () => showRecordTimeline(r));
      tr.querySelector(".delete").addEventListener("click", async (e) => {
        e.stopPropagation();
        if (!confirm(`Delete every record and alert of ${r.audio_id}?`)) return;
        try { await api(`/records/${encodeURIComponent(r.audio_id)}`, {method: "DELETE"}); refreshHistory(); }
        catch (error) { showError(error.message); }
      });
      rows.appendChild(tr);
    }
  } catch (error) { showError(error.message); }
}

async function showRecordTimeline(record) {
  if (!record.timeline) return;
  try {
    const timeline = await api(record.timeline);
    $("history-detail").hidden = false;
    $("history-detail-id").textContent = record.audio_id;
    drawTimeline($("history-canvas"), timeline.times, timeline.scores, timeline.classes, [], record.duration);
    const faceUrl = (record.timelines || {}).face;
    $("history-face").hidden = !faceUrl;
    if (faceUrl) {
      const face = await api(faceUrl);
      drawTimeline($("history-face-canvas"), face.times, face.scores, face.classes, [], record.duration);
    }
    $("history-segments").hidden = !record.segments;
    if (record.segments) {
      const segments = await api(record.segments);
      renderSegments($("history-segments-canvas"), $("history-segments-rows"), segments, record.duration);
    }
  } catch (error) { showError(error.message); }
}

async function refreshCharts() {
  try {
    const stats = await api("/stats" + query({since: localToIso($("charts-since").value),
                                              channel: $("charts-channel").value, bucket: $("charts-bucket").value}));
    drawDistribution($("distribution-canvas"), stats.distribution);
    const labels = state.classes.length ? state.classes : Object.keys(stats.distribution);
    drawTrend($("trend-canvas"), stats.trend, labels);
    drawLegend($("trend-legend"), labels);
  } catch (error) { showError(error.message); }
}

// -- wiring -----------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  $("token-input").value = token();
  $("token-status").textContent = token() ? "saved" : "not set";
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem("mmemo-token", $("token-input").value.trim());
    $("token-status").textContent = "saved";
    showError("");
    loadHealth();
    refreshAlerts();
  });
  document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => selectTab(b.dataset.tab)));
  $("analyze-btn").addEventListener("click", () => {
    const file = $("file-input").files[0];
    if (!file) { showError("choose an audio file first"); return; }
    analyzeBlob(file, file.name);
  });
  $("record-btn").addEventListener("click", toggleRecording);
  $("live-mic-btn").addEventListener("click", startMicrophone);
  $("live-file-btn").addEventListener("click", streamFile);
  $("live-stop-btn").addEventListener("click", stopLive);
  $("alerts-refresh").addEventListener("click", refreshAlerts);
  $("history-form").addEventListener("submit", refreshHistory);
  $("charts-refresh").addEventListener("click", refreshCharts);
  loadHealth();
  refreshAlerts();
  setInterval(refreshAlerts, 3000);
});
