// Small canvas charts drawn by hand (the UI works offline: no chart library, no CDN).
"use strict";

const PALETTE = ["#d62728", "#8c564b", "#9467bd", "#ff7f0e", "#7f7f7f", "#bcbd22", "#1f77b4", "#17becf",
                 "#c7c7c7", "#2ca02c", "#e377c2", "#aec7e8"];
const KNOWN_COLORS = {angry: "#d62728", disgusted: "#8c564b", fearful: "#9467bd", happy: "#ff7f0e",
                      neutral: "#7f7f7f", other: "#bcbd22", sad: "#1f77b4", surprised: "#17becf", "<unk>": "#c7c7c7"};

function colorOf(label, index) {
  return KNOWN_COLORS[label] || PALETTE[index % PALETTE.length];
}

function clearCanvas(canvas) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  return ctx;
}

function drawAxes(ctx, box, yMax, yTicks, xLabel) {
  ctx.strokeStyle = "#999";
  ctx.fillStyle = "#555";
  ctx.font = "11px sans-serif";
  ctx.beginPath();
  ctx.moveTo(box.x, box.y);
  ctx.lineTo(box.x, box.y + box.h);
  ctx.lineTo(box.x + box.w, box.y + box.h);
  ctx.stroke();
  for (let i = 0; i <= yTicks; i++) {
    const value = (yMax * i) / yTicks;
    const y = box.y + box.h - (box.h * i) / yTicks;
    ctx.fillText(Number.isInteger(value) ? String(value) : value.toFixed(2), 2, y + 4);
    ctx.strokeStyle = "#eee";
    ctx.beginPath();
    ctx.moveTo(box.x + 1, y);
    ctx.lineTo(box.x + box.w, y);
    ctx.stroke();
  }
  if (xLabel) ctx.fillText(xLabel, box.x + box.w - ctx.measureText(xLabel).width, box.y + box.h + 26);
}

// Frame timeline: one line per class, x = seconds, y = probability. `marks` shades alert windows;
// `span` (s, optional) fixes the x axis, so the audio's and the face's timelines of a clip line up.
function drawTimeline(canvas, times, scores, classes, marks, span) {
  const ctx = clearCanvas(canvas);
  const box = {x: 34, y: 8, w: canvas.width - 44, h: canvas.height - 40};
  const last = times.length ? times[times.length - 1] + 0.01 : 0;
  const tMax = Math.max(span || 0, last, times.length ? 0.1 : 1);
  for (const mark of marks || []) {
    ctx.fillStyle = "rgba(214, 39, 40, 0.12)";
    const x0 = box.x + (box.w * mark.start) / tMax;
    const x1 = box.x + (box.w * mark.end) / tMax;
    ctx.fillRect(x0, box.y, Math.max(1, x1 - x0), box.h);
  }
  drawAxes(ctx, box, 1, 4, "time (s)");
  ctx.fillStyle = "#555";
  for (let s = 0; s <= tMax; s += Math.max(1, Math.ceil(tMax / 10))) {
    ctx.fillText(String(s), box.x + (box.w * s) / tMax - 3, box.y + box.h + 13);
  }
  classes.forEach((label, c) => {
    ctx.strokeStyle = colorOf(label, c);
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    times.forEach((t, i) => {
      const x = box.x + (box.w * t) / tMax;
      const y = box.y + box.h - box.h * scores[i][c];
      // a pause between speech segments has no frames: the line breaks there
      if (i === 0 || t - times[i - 1] > 0.25) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
  });
}

// Speech segments: one lane per speaker (its colour), each segment's emotion as the bar on top.
const SPEAKER_COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#bab0ac"];

function speakerColor(speakers, speaker) {
  return SPEAKER_COLORS[Math.max(0, speakers.indexOf(speaker)) % SPEAKER_COLORS.length];
}

function drawSegments(canvas, segments, classes, span) {
  const ctx = clearCanvas(canvas);
  const speakers = [...new Set(segments.map((s) => s.speaker || "speech"))].sort();
  const box = {x: 90, y: 6, w: canvas.width - 100, h: canvas.height - 30};
  const tMax = Math.max(span || 0, ...segments.map((s) => s.end), 1);
  const lane = box.h / Math.max(1, speakers.length);
  ctx.font = "11px sans-serif";
  speakers.forEach((speaker, k) => {
    ctx.fillStyle = speakerColor(speakers, speaker);
    ctx.fillText(speaker, 4, box.y + lane * k + lane / 2 + 4);
  });
  for (const s of segments) {
    const k = speakers.indexOf(s.speaker || "speech");
    const x0 = box.x + (box.w * s.start) / tMax;
    const x1 = box.x + (box.w * s.end) / tMax;
    const y = box.y + lane * k + 3;
    ctx.fillStyle = speakerColor(speakers, s.speaker || "speech");
    ctx.globalAlpha = 0.35;
    ctx.fillRect(x0, y, Math.max(1, x1 - x0), lane - 6);
    ctx.globalAlpha = 1;
    if (s.label) {
      ctx.fillStyle = colorOf(s.label, classes.indexOf(s.label));
      ctx.fillRect(x0, y, Math.max(1, x1 - x0), 5);
    }
  }
  ctx.fillStyle = "#555";
  for (let t = 0; t <= tMax; t += Math.max(1, Math.ceil(tMax / 10))) {
    ctx.fillText(String(t), box.x + (box.w * t) / tMax - 3, box.y + box.h + 14);
  }
  return speakers;
}

function drawLegend(element, classes) {
  element.innerHTML = "";
  classes.forEach((label, c) => {
    const item = document.createElement("span");
    item.innerHTML = `<i style="background:${colorOf(label, c)}"></i>`;
    item.appendChild(document.createTextNode(label));
    element.appendChild(item);
  });
}

// Horizontal bars: {label: count}.
function drawDistribution(canvas, counts) {
  const ctx = clearCanvas(canvas);
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1]);
  const total = entries.reduce((sum, e) => sum + e[1], 0);
  ctx.font = "12px sans-serif";
  if (!entries.length) {
    ctx.fillStyle = "#777";
    ctx.fillText("no records yet", 10, 20);
    return;
  }
  const max = entries[0][1];
  const row = Math.min(28, (canvas.height - 10) / entries.length);
  entries.forEach(([label, count], i) => {
    const y = 5 + i * row;
    const width = ((canvas.width - 170) * count) / max;
    ctx.fillStyle = colorOf(label, i);
    ctx.fillRect(90, y, width, row - 6);
    ctx.fillStyle = "#333";
    ctx.fillText(label, 4, y + row / 2);
    ctx.fillText(`${count} (${((100 * count) / total).toFixed(0)}%)`, 96 + width, y + row / 2);
  });
}

// Stacked bars per time bucket: trend = [{start, counts: {label: n}}].
function drawTrend(canvas, trend, labels) {
  const ctx = clearCanvas(canvas);
  const box = {x: 34, y: 8, w: canvas.width - 44, h: canvas.height - 44};
  const totals = trend.map((b) => Object.values(b.counts).reduce((s, n) => s + n, 0));
  const yMax = Math.max(1, ...totals);
  drawAxes(ctx, box, yMax, Math.min(4, yMax), "");
  if (!trend.length) return;
  const slot = box.w / trend.length;
  trend.forEach((bucket, i) => {
    let y = box.y + box.h;
    labels.forEach((label, c) => {
      const n = bucket.counts[label] || 0;
      const h = (box.h * n) / yMax;
      ctx.fillStyle = colorOf(label, c);
      ctx.fillRect(box.x + i * slot + 2, y - h, Math.max(1, slot - 4), h);
      y -= h;
    });
    if (i % Math.max(1, Math.ceil(trend.length / 6)) === 0) {
      ctx.fillStyle = "#555";
      ctx.fillText(bucket.start.slice(5, 16).replace("T", " "), box.x + i * slot, box.y + box.h + 14);
    }
  });
}
