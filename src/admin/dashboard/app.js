// reflector admin dashboard: polls the JSON API once a second and draws everything by hand
// (no framework, no CDN, no build step).
"use strict";

const REFRESH_MS = 1000;
let token = sessionStorage.getItem("reflector-token") || "";
let chartStream = ""; // the charted stream's id
let history = {};
let streamKeys = new Map(); // stream id -> key, for the confirm prompt
let streamNames = new Map(); // stream id -> {app, name}, for the preview's URL
let httpListen = null; // server.http_listen from the summary; null when HTTP-FLV is off

const $ = (id) => document.getElementById(id);

function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function bits(bps) {
  if (!bps) return "0 b/s";
  const u = ["b/s", "kb/s", "Mb/s", "Gb/s"];
  let i = 0;
  while (bps >= 1000 && i < u.length - 1) { bps /= 1000; i++; }
  return bps.toFixed(bps < 10 && i > 0 ? 2 : bps < 100 && i > 0 ? 1 : 0) + " " + u[i];
}
function bytes(n) {
  if (n == null) return "–";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(n < 10 ? 2 : 1) : n) + " " + u[i];
}
function dur(ms) {
  if (ms == null) return "–";
  const s = Math.floor(ms / 1000);
  if (s < 60) return s + "s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + "m " + (s % 60) + "s";
  const h = Math.floor(m / 60);
  return h < 48 ? h + "h " + (m % 60) + "m" : Math.floor(h / 24) + "d " + (h % 24) + "h";
}
function num(n) { return n == null ? "–" : Number(n).toLocaleString("en-US"); }

// Actions are POST/DELETE with Content-Type: application/json: the admin port refuses any
// other state change (a cross-origin page cannot send this type without a CORS preflight,
// which the port never grants). Streams and connections are addressed by numeric id only.
async function api(path, method) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const init = { method: method || "GET", headers, cache: "no-store" };
  if (init.method !== "GET") {
    headers["Content-Type"] = "application/json";
    init.body = "{}";
  }
  const res = await fetch(path, init);
  if (res.status === 401) {
    $("auth").classList.remove("hidden");
    throw new Error("unauthorized");
  }
  if (!res.ok) throw new Error(path + ": HTTP " + res.status);
  return res.json();
}

function rows(tbody, html, cols, empty) {
  tbody.innerHTML = html.length ? html.join("") : `<tr><td class="empty" colspan="${cols}">${empty}</td></tr>`;
}

function renderSummary(s) {
  $("version").textContent = "v" + s.version;
  const pill = $("ready-pill");
  pill.textContent = s.ready ? "ready" : "not ready";
  pill.className = "pill " + (s.ready ? "ok" : "bad");
  $("uptime").textContent = "up " + dur(s.uptime_ms);
  $("t-connections").textContent = num(s.connections);
  $("t-streams").textContent = num(s.streams);
  $("t-subscribers").textContent = num(s.subscribers);
  $("t-ingest").textContent = bits(s.ingest_bps);
  $("t-egress").textContent = bits(s.egress_bps);
  $("t-errors").textContent = num(s.protocol_errors);
  httpListen = s.http_listen || null;
}

function previewControl(s) {
  const off = (why) => `<span class="preview-off" title="${esc(why)}"><button disabled>Preview</button></span>`;
  if (!httpListen) return off("Set server.http_listen (--http-listen) to preview streams here over WebSocket-FLV.");
  if (!s.publisher) return off("No publisher to preview.");
  return `<button data-preview="${Number(s.id)}" title="Play this stream in the page over WebSocket-FLV (muted)">Preview</button>`;
}

function renderStreams(list) {
  const html = list.map((s) => {
    const p = s.publisher;
    const v = s.video;
    const video = v.codec ? `${esc(v.codec)} <span class="sub">${esc(v.resolution || "")}</span>` : '<span class="sub">–</span>';
    const pub = p
      ? `${esc(p.peer)}<div class="sub">${esc(p.client || "")}</div>`
      : '<span class="badge waiting">waiting</span>';
    return `<tr data-stream="${esc(s.key)}" data-stream-id="${Number(s.id)}">
      <td><b>${esc(s.key)}</b> <span class="badge ${s.live ? "live" : "waiting"}">${s.live ? "live" : "idle"}</span></td>
      <td>${pub}</td><td>${video}</td><td>${esc(s.audio.codec || "–")}</td>
      <td class="num">${v.fps ? v.fps.toFixed(1) : "–"}</td>
      <td class="num">${bits(s.ingest_bps)}</td><td class="num">${bits(s.egress_bps)}</td>
      <td class="num subscriber-count">${s.subscriber_count}</td>
      <td class="num">${bytes(s.gop_cache.bytes)} <span class="sub">${s.gop_cache.frames} fr</span></td>
      <td class="num">${p ? dur(p.uptime_ms) : "–"}</td>
      <td>${previewControl(s)} ${p ? `<button class="danger" data-stop="${Number(s.id)}">Stop</button>` : ""}</td></tr>`;
  });
  rows($("streams").tBodies[0], html, 11, "No streams. Publish to rtmp://host/app/name.");
  $("streams-note").textContent = list.length ? `${list.length} stream${list.length > 1 ? "s" : ""}` : "";

  const subs = [];
  const gone = [];
  for (const s of list) {
    for (const u of s.subscribers) {
      const fill = u.mailbox_capacity ? Math.min(100, (100 * u.mailbox_depth) / u.mailbox_capacity) : 0;
      const lagClass = u.lag_ms > 2000 ? "bad" : u.lag_ms > 500 ? "warn" : "";
      subs.push(`<tr class="subscriber-row">
        <td>${esc(s.key)}</td><td>${u.connection}</td><td>${esc(u.peer)}</td><td class="sub">${esc(u.client || "")}</td>
        <td class="num">${bytes(u.bytes_sent)}</td><td class="num">${num(u.messages_sent)}</td>
        <td class="num ${lagClass}">${num(u.lag_ms)} ms</td><td class="num">${bytes(u.queued_bytes)}</td>
        <td class="num ${u.drops.total ? "warn" : ""}" title="mailbox ${u.drops.mailbox_full} · disposable ${u.drops.disposable} · video ${u.drops.video} · audio ${u.drops.audio} · awaiting keyframe ${u.drops.awaiting_keyframe}">${num(u.drops.total)}</td>
        <td><span class="mini"><span style="width:${fill}%"></span></span><span class="sub">${u.mailbox_depth}/${u.mailbox_capacity}</span></td>
        <td><button class="danger" data-kick="${Number(u.connection)}">Kick</button></td></tr>`);
    }
    for (const g of s.gone_subscribers) {
      gone.push(`<tr><td>${esc(s.key)}</td><td>${g.connection}</td><td>${esc(g.peer)}</td>
        <td class="num">${bytes(g.bytes_sent)}</td><td class="num">${num(g.drops_total)}</td>
        <td class="num">${dur(g.duration_ms)}</td><td>${esc(g.reason)}</td></tr>`);
    }
  }
  rows($("subscribers").tBodies[0], subs, 11, "No subscribers.");
  rows($("gone").tBodies[0], gone, 7, "None yet.");

  streamKeys = new Map(list.map((s) => [String(s.id), s.key]));
  streamNames = new Map(list.map((s) => [String(s.id), { app: s.app, name: s.name }]));
  const sel = $("chart-stream");
  const ids = list.map((s) => String(s.id));
  if (!ids.includes(chartStream)) chartStream = ids[0] || "";
  const want = ids.join(",");
  if (sel.dataset.ids !== want) {
    sel.innerHTML = list.map((s) => `<option value="${Number(s.id)}">${esc(s.key)}</option>`).join("");
    sel.dataset.ids = want;
  }
  sel.value = chartStream;
}

function renderConnections(list) {
  const html = list.map((c) => `<tr>
    <td>${c.id}</td><td>${esc(c.peer)}</td><td><span class="badge ${esc(c.state)}">${esc(c.state)}</span></td>
    <td>${esc(c.app || "–")}</td><td class="sub">${esc(c.client || "")}</td>
    <td class="num">${bytes(c.bytes_in)}</td><td class="num">${bytes(c.bytes_out)}</td>
    <td class="num">${c.rtt_ms == null ? "–" : c.rtt_ms.toFixed(1) + " ms"}</td><td class="num">${dur(c.idle_ms)}</td>
    <td><button class="danger" data-kick="${Number(c.id)}">Kick</button></td></tr>`);
  rows($("connections").tBodies[0], html, 10, "No connections.");
}

function renderActors(a) {
  const c = a.counts;
  $("actor-counts").textContent =
    `${c.connections} conn · ${c.publishing_streams} publishing · ${c.publishers} publishers · ${c.subscribers} subs · ${c.registry} registry`;
  const html = a.actors.map((x) => {
    const depth = x.mailbox_depth;
    const fill = depth == null ? 0 : Math.min(100, (100 * depth) / Math.max(1, x.mailbox_capacity));
    const cls = fill > 75 ? "high" : fill > 40 ? "mid" : "";
    return `<div class="bar-row" title="${esc(x.id)} · handled ${x.handled} · dropped ${x.dropped} · age ${dur(x.age_ms)}">
      <span class="name"><span class="sub">${esc(x.kind)}</span> ${esc(x.label)}</span>
      <span class="bar"><span class="${cls}" style="width:${fill}%"></span></span>
      <span class="sub num">${depth == null ? "n/a" : depth}/${x.mailbox_capacity}</span></div>`;
  });
  $("actors").innerHTML = html.join("");
}

// The chart: ingest and egress bitrate (left axis) and subscribers (right axis), by hand.
function drawChart() {
  const canvas = $("chart");
  const points = history[chartStream] || [];
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 800;
  const h = 260;
  canvas.width = w * dpr;
  canvas.height = h * dpr;
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const css = getComputedStyle(document.documentElement);
  const col = (n) => css.getPropertyValue(n).trim();
  const pad = { l: 70, r: 44, t: 12, b: 26 };
  const pw = w - pad.l - pad.r, ph = h - pad.t - pad.b;
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = col("--muted");
  if (points.length < 2) {
    g.textAlign = "center";
    g.fillText(chartStream ? "collecting samples…" : "no stream", pad.l + pw / 2, pad.t + ph / 2);
    canvas.dataset.points = String(points.length);
    canvas.dataset.draws = String(Number(canvas.dataset.draws) + 1);
    return;
  }
  const t0 = points[0].t, t1 = points[points.length - 1].t;
  const maxRate = Math.max(1000, ...points.map((p) => Math.max(p.ingest_bps, p.egress_bps))) * 1.15;
  const maxSubs = Math.max(1, ...points.map((p) => p.subscribers));
  const x = (t) => pad.l + ((t - t0) / Math.max(1, t1 - t0)) * pw;
  const y = (v) => pad.t + ph - (v / maxRate) * ph;
  const ys = (v) => pad.t + ph - (v / (maxSubs * 1.15)) * ph;
  // grid and axes
  g.strokeStyle = col("--line");
  g.lineWidth = 1;
  g.textAlign = "right";
  for (let i = 0; i <= 4; i++) {
    const v = (maxRate / 4) * i;
    const yy = Math.round(y(v)) + 0.5;
    g.beginPath(); g.moveTo(pad.l, yy); g.lineTo(pad.l + pw, yy); g.stroke();
    g.fillText(bits(v), pad.l - 8, yy + 4);
  }
  g.textAlign = "left";
  g.fillStyle = col("--subs");
  for (let i = 0; i <= maxSubs; i += Math.max(1, Math.ceil(maxSubs / 4))) g.fillText(String(i), pad.l + pw + 8, ys(i) + 4);
  g.fillStyle = col("--muted");
  g.textAlign = "center";
  const span = (t1 - t0) / 1000;
  for (let i = 0; i <= 4; i++) {
    const t = t0 + ((t1 - t0) / 4) * i;
    g.fillText(i === 4 ? "now" : "-" + Math.round(span - (span / 4) * i) + "s", x(t), h - 8);
  }
  // subscribers: stepped area
  g.beginPath();
  g.moveTo(x(points[0].t), ys(0));
  let prev = null;
  for (const p of points) {
    if (prev) g.lineTo(x(p.t), ys(prev.subscribers));
    g.lineTo(x(p.t), ys(p.subscribers));
    prev = p;
  }
  g.lineTo(x(t1), ys(0));
  g.closePath();
  g.fillStyle = "rgba(245,185,76,0.12)";
  g.fill();
  const line = (key, color) => {
    g.beginPath();
    points.forEach((p, i) => (i ? g.lineTo(x(p.t), y(p[key])) : g.moveTo(x(p.t), y(p[key]))));
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.lineJoin = "round";
    g.stroke();
  };
  line("egress_bps", col("--out"));
  line("ingest_bps", col("--in"));
  canvas.dataset.points = String(points.length);
  canvas.dataset.draws = String(Number(canvas.dataset.draws) + 1);
  canvas.dataset.last = String(t1);
}

async function refresh() {
  try {
    const [summary, streams, conns, actors, hist] = await Promise.all([
      api("/api/v1/summary"), api("/api/v1/streams"), api("/api/v1/connections"),
      api("/api/v1/actors?limit=200"), api("/api/v1/history"),
    ]);
    $("error").classList.add("hidden");
    $("auth").classList.add("hidden");
    renderSummary(summary);
    renderStreams(streams.streams);
    renderConnections(conns.connections);
    renderActors(actors);
    history = hist.streams;
    drawChart();
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes) + 1);
  } catch (e) {
    if (e.message !== "unauthorized") {
      $("error").textContent = "Cannot reach the admin API: " + e.message;
      $("error").classList.remove("hidden");
    }
  }
}


// Live preview: one stream at a time, played over WebSocket-FLV from the public HTTP port
// (server.http_listen) by the vendored mpegts.js, which is loaded on first use (270 KB).
// The section's data-* attributes carry the figures shown (tests read them too).
const preview = { player: null, timers: [], id: null };
const PREVIEW_NO_PICTURE_MS = 10000;

function loadMpegts() {
  if (window.mpegts) return Promise.resolve(window.mpegts);
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = "/assets/vendor/mpegts.js";
    script.onload = () => (window.mpegts ? resolve(window.mpegts) : reject(new Error("mpegts.js did not load")));
    script.onerror = () => reject(new Error("cannot load /assets/vendor/mpegts.js"));
    document.head.appendChild(script);
  });
}

// ws://<the name this page was reached by>:<HTTP port>/<app>/<name>.flv[?key=<play key>].
// Each part is one encoded path segment ('/' as %2F), so the URL parser cannot fold a "." or
// ".." in a name into another stream's path.
function previewUrl(app, name, key) {
  const port = /:(\d+)$/.exec(httpListen || "");
  if (!port) return null;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = key ? `?key=${encodeURIComponent(key)}` : "";
  return `${scheme}//${location.hostname}:${port[1]}/${encodeURIComponent(app)}/${encodeURIComponent(name)}.flv${query}`;
}

// The first error is the cause; what follows (a close, a rejected play()) is its echo.
function previewError(text) {
  const section = $("preview");
  if (section.dataset.error || section.classList.contains("hidden")) return;
  const box = $("preview-error");
  box.textContent = text;
  box.classList.remove("hidden");
  $("preview").dataset.error = text;
}

function closePreview() {
  preview.timers.forEach(clearInterval);
  preview.timers = [];
  const player = preview.player;
  preview.player = null;
  if (player) {
    try { player.pause(); player.unload(); player.detachMediaElement(); player.destroy(); } catch (e) { /* already gone */ }
  }
  const section = $("preview");
  section.classList.add("hidden");
  for (const k of Object.keys(section.dataset)) delete section.dataset[k];
  $("preview-error").classList.add("hidden");
}

// `key`: the play key typed in the preview, for an app whose players need one.
async function openPreview(id, key) {
  closePreview();
  preview.id = id;
  const stream = streamNames.get(id);
  const url = stream && previewUrl(stream.app, stream.name, key);
  if (!url || [".", ".."].includes(stream.app)) return;
  const section = $("preview");
  const video = $("preview-video");
  section.dataset.stream = streamKeys.get(id);
  section.dataset.url = url;
  $("preview-key").textContent = streamKeys.get(id);
  $("preview-latency").textContent = "latency –";
  $("preview-first").textContent = "first frame –";
  section.classList.remove("hidden");
  const opened = performance.now();
  let mpegts;
  try {
    mpegts = await loadMpegts();
  } catch (e) {
    return previewError(e.message);
  }
  if (section.dataset.url !== url) return; // closed or replaced meanwhile
  if (!mpegts.getFeatureList().mseLivePlayback) {
    return previewError("This browser cannot play live FLV (no Media Source Extensions).");
  }
  const player = mpegts.createPlayer(
    { type: "flv", isLive: true, url },
    { enableStashBuffer: false, liveBufferLatencyChasing: true, lazyLoad: false },
  );
  preview.player = player;
  // A refused WebSocket (a stream that needs a play key, a limit, no such stream) reaches
  // mpegts.js as a bare network error: say so rather than showing a black box.
  player.on(mpegts.Events.ERROR, (type, detail, info) => {
    const msg = info && (info.msg || info.code) ? ` (${info.msg || info.code})` : "";
    const hint = type === mpegts.ErrorTypes.NETWORK_ERROR
      ? " The server refused or closed the WebSocket: a stream that needs a play key plays with it (the play key field above); the server log says why."
      : "";
    previewError(`mpegts.js: ${type}: ${detail}${msg}.${hint}`);
  });
  player.on(mpegts.Events.LOADING_COMPLETE, () => previewError(section.dataset.firstFrameMs
    ? "The server ended the stream (the publisher left?)."
    : "The server closed the connection before any picture: a stream that needs a play key plays with it (the play key field above); the server log says why."));
  player.on(mpegts.Events.MEDIA_INFO, (info) => {
    section.dataset.hasAudio = String(Boolean(info.hasAudio));
    section.dataset.hasVideo = String(Boolean(info.hasVideo));
  });
  video.muted = true;
  player.attachMediaElement(video);
  const loaded = performance.now();
  const first = (at) => {
    if (section.dataset.firstFrameMs || preview.player !== player) return;
    section.dataset.firstFrameMs = String(Math.round(at - loaded));
    section.dataset.openedToFirstFrameMs = String(Math.round(at - opened));
    $("preview-first").textContent = `first frame ${((at - opened) / 1000).toFixed(2)} s`;
  };
  if (video.requestVideoFrameCallback) {
    video.requestVideoFrameCallback((now, meta) => first(meta.presentationTime || now));
  } else {
    video.addEventListener("playing", () => first(performance.now()), { once: true });
  }
  player.load();
  const playing = player.play();
  // play() also fails when the load does: give mpegts.js's own report a moment to come first.
  if (playing && playing.catch) {
    playing.catch((e) => setTimeout(() => preview.player === player && previewError("Playback did not start: " + e.message), 1000));
  }
  preview.timers.push(setInterval(() => {
    const b = video.buffered;
    if (b.length && section.dataset.firstFrameMs) {
      const latency = Math.max(0, b.end(b.length - 1) - video.currentTime);
      section.dataset.latencyMs = String(Math.round(latency * 1000));
      $("preview-latency").textContent = `latency ${latency.toFixed(2)} s`;
    } else if (performance.now() - opened > PREVIEW_NO_PICTURE_MS) {
      previewError(`No picture after ${PREVIEW_NO_PICTURE_MS / 1000} s (no video, or no keyframe yet).`);
    }
  }, 500));
}

document.addEventListener("click", async (ev) => {
  const previewId = ev.target.dataset && ev.target.dataset.preview;
  if (previewId && /^\d+$/.test(previewId)) return openPreview(previewId);
  const kick = ev.target.dataset && ev.target.dataset.kick;
  const stop = ev.target.dataset && ev.target.dataset.stop;
  try {
    if (kick && /^\d+$/.test(kick) && confirm(`Disconnect connection ${kick}?`)) {
      await api("/api/v1/connections/" + kick, "DELETE");
    }
    if (stop && /^\d+$/.test(stop) && confirm(`Stop the publisher of ${JSON.stringify(streamKeys.get(stop) ?? "?")} (stream ${stop})?`)) {
      await api("/api/v1/streams/" + stop + "/stop", "POST");
    }
  } catch (e) { /* shown by the next refresh */ }
  if (kick || stop) refresh();
});
$("preview-close").addEventListener("click", closePreview);
$("preview-play").addEventListener("click", () => {
  if (preview.id) openPreview(preview.id, $("preview-play-key").value.trim());
});
$("chart-stream").addEventListener("change", (ev) => { chartStream = ev.target.value; drawChart(); });
$("token-save").addEventListener("click", () => {
  token = $("token").value.trim();
  sessionStorage.setItem("reflector-token", token);
  refresh();
});
window.addEventListener("resize", drawChart);
refresh();
setInterval(refresh, REFRESH_MS);
