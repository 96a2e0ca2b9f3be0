// Driven by tests/browser.rs: headless Chromium (Playwright) plays a live stream of the
// reflector in the dashboard's preview and in a bare mpegts.js page, and reports what it
// measured as one line `RESULT {json}` on stdout. The Rust test does the asserting.
//
// Usage: node preview.mjs '{"chromium": ..., "playwrightDir": ..., "adminUrl": ...,
//   "streamKey": "live/x", "urls": ["http://..flv", "ws://..flv"], "vendorJs": ...,
//   "fixtureHtml": ..., "fixturePort": 0, "screenshot": ..., "measureMs": 2500}'
// refusedPlayKey: typed into the refused stream's preview, which must then play.
// fixturePort: where the bare page is served (0: any free port); the test names that
// origin in the server's http.allow_origin.
//
// The publisher burns its frame number into the picture: the top two 40-pixel rows hold 16
// blocks each, row one the bits of n (least significant first, white = 1) and row two their
// complement (a read is kept only when every pair disagrees). Each presented frame's number
// and wall-clock presentation time go back to the test, which knows when the publisher sent
// each frame.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";

const cfg = JSON.parse(process.argv[2]);
const require = createRequire(path.join(cfg.playwrightDir, "node_modules", "noop.js"));
const { chromium } = require("playwright-core");

const FIRST_FRAME_TIMEOUT_MS = 10000;

// The bare page and the vendored player, from an origin of their own (the stream is on
// another port, so HTTP-FLV goes through CORS).
function fixtureServer() {
  const files = {
    "/": ["text/html; charset=utf-8", readFileSync(cfg.fixtureHtml)],
    "/mpegts.js": ["text/javascript; charset=utf-8", readFileSync(cfg.vendorJs)],
  };
  const server = http.createServer((req, res) => {
    const file = files[req.url.split("?")[0]];
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "Content-Type": file[0] }).end(file[1]);
  });
  return new Promise((resolve) =>
    server.listen(cfg.fixturePort || 0, "127.0.0.1", () => resolve(server)),
  );
}

// Runs in the page: watch `video` for `ms` milliseconds, one canvas read per presented frame.
async function measure({ selector, ms }) {
  const video = document.querySelector(selector);
  const canvas = document.createElement("canvas");
  const g = canvas.getContext("2d", { willReadFrequently: true });
  const luma = (d, w, x0, y0, size) => {
    let sum = 0;
    for (let y = y0; y < y0 + size; y++) {
      for (let x = x0; x < x0 + size; x++) {
        const i = (y * w + x) * 4;
        sum += 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
      }
    }
    return sum / (size * size);
  };
  const decode = () => {
    const w = video.videoWidth;
    const h = video.videoHeight;
    if (w < 640 || h < 80) return null;
    canvas.width = w;
    canvas.height = h;
    g.drawImage(video, 0, 0, w, h);
    const d = g.getImageData(0, 0, w, 80).data;
    let n = 0;
    for (let k = 0; k < 16; k++) {
      const a = luma(d, w, k * 40 + 12, 12, 16);
      const b = luma(d, w, k * 40 + 12, 52, 16);
      if (Math.abs(a - b) < 100) return null;
      if (a > b) n += 2 ** k;
    }
    return n;
  };
  const q0 = video.getVideoPlaybackQuality().totalVideoFrames;
  const c0 = video.currentTime;
  const started = performance.now();
  const samples = [];
  let unreadable = 0;
  await new Promise((resolve) => {
    const step = (now, meta) => {
      const n = decode();
      if (n === null) unreadable++;
      else samples.push({ n, at: performance.timeOrigin + meta.expectedDisplayTime });
      if (performance.now() - started < ms) video.requestVideoFrameCallback(step);
      else resolve();
    };
    video.requestVideoFrameCallback(step);
  });
  // The picture below the frame number: many colours, not one flat tone.
  const w = canvas.width;
  const h = canvas.height;
  const pic = g.getImageData(0, 80, w, h - 80).data;
  const colours = new Set();
  let sum = 0;
  let sq = 0;
  for (let i = 0; i < pic.length; i += 4 * 7) {
    colours.add(((pic[i] >> 4) << 8) | ((pic[i + 1] >> 4) << 4) | (pic[i + 2] >> 4));
    const y = 0.299 * pic[i] + 0.587 * pic[i + 1] + 0.114 * pic[i + 2];
    sum += y;
    sq += y * y;
  }
  const count = pic.length / (4 * 7);
  const buffered = video.buffered.length ? video.buffered.end(video.buffered.length - 1) : 0;
  return {
    width: video.videoWidth,
    height: video.videoHeight,
    framesBefore: q0,
    framesAfter: video.getVideoPlaybackQuality().totalVideoFrames,
    droppedFrames: video.getVideoPlaybackQuality().droppedVideoFrames,
    currentTimeBefore: c0,
    currentTimeAfter: video.currentTime,
    bufferAheadS: buffered - video.currentTime,
    distinctColours: colours.size,
    lumaStdDev: Math.sqrt(Math.max(0, sq / count - (sum / count) ** 2)),
    audioDecodedBytes: video.webkitAudioDecodedByteCount,
    videoDecodedBytes: video.webkitVideoDecodedByteCount,
    samples,
    unreadable,
  };
}

async function waitFor(page, what, fn, arg, timeout = FIRST_FRAME_TIMEOUT_MS) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 50 });
  } catch (e) {
    throw new Error(`${what}: ${e.message.split("\n")[0]}`);
  }
}

function watchConsole(page, into) {
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") into.push(m.text().slice(0, 300));
  });
  page.on("pageerror", (e) => into.push("pageerror: " + String(e).slice(0, 300)));
}

async function dashboard(browser) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1300 } });
  const consoleLines = [];
  watchConsole(page, consoleLines);
  try {
    await page.goto(cfg.adminUrl + "/");
    const button = `tr[data-stream="${cfg.streamKey}"] button[data-preview]`;
    await page.waitForSelector(button, { timeout: FIRST_FRAME_TIMEOUT_MS });
    await page.click(button);
    await waitFor(page, "dashboard preview's first frame", () => {
      const d = document.getElementById("preview").dataset;
      return d.firstFrameMs || d.error;
    });
    const data = await page.evaluate(() => ({ ...document.getElementById("preview").dataset }));
    if (data.error) return { page: "dashboard", url: data.url, error: data.error, console: consoleLines };
    const m = await page.evaluate(measure, { selector: "#preview-video", ms: cfg.measureMs });
    const after = await page.evaluate(() => ({ ...document.getElementById("preview").dataset }));
    if (cfg.screenshot) await page.screenshot({ path: cfg.screenshot, fullPage: true });
    // Close must stop the player and hide the preview.
    await page.click("#preview-close");
    const closed = await page.evaluate(() => document.getElementById("preview").classList.contains("hidden"));
    return {
      page: "dashboard",
      url: data.url,
      firstFrameMs: Number(data.firstFrameMs),
      openedToFirstFrameMs: Number(data.openedToFirstFrameMs),
      shownLatencyMs: after.latencyMs === undefined ? null : Number(after.latencyMs),
      hasAudio: after.hasAudio === "true",
      errors: after.error ? [after.error] : [],
      closed,
      console: consoleLines,
      ...m,
    };
  } finally {
    await page.close();
  }
}

// A stream the preview cannot play (its app needs a play key): the error must show.
async function refused(browser) {
  const page = await browser.newPage();
  try {
    await page.goto(cfg.adminUrl + "/");
    const button = `tr[data-stream="${cfg.refusedKey}"] button[data-preview]`;
    await page.waitForSelector(button, { timeout: FIRST_FRAME_TIMEOUT_MS });
    await page.click(button);
    // The dashboard gives up by itself after 10 s without a picture; a refusal is quicker.
    await waitFor(page, "the refused preview's error", () => document.getElementById("preview").dataset.error, undefined, 15000);
    const d = await page.evaluate(() => ({ ...document.getElementById("preview").dataset }));
    const shown = await page.evaluate(() => !document.getElementById("preview-error").classList.contains("hidden"));
    const result = { page: "refused", url: d.url, error: shown ? d.error : null, firstFrameMs: d.firstFrameMs ?? null };
    if (cfg.refusedPlayKey) {
      // The same stream with its play key typed into the preview: it plays.
      await page.fill("#preview-play-key", cfg.refusedPlayKey);
      await page.click("#preview-play");
      await waitFor(page, "the keyed preview's first frame", () => document.getElementById("preview").dataset.firstFrameMs);
      const k = await page.evaluate(() => ({ ...document.getElementById("preview").dataset }));
      Object.assign(result, { keyedUrl: k.url, keyedFirstFrameMs: Number(k.firstFrameMs), keyedError: k.error ?? null });
    }
    return result;
  } finally {
    await page.close();
  }
}

async function bare(browser, fixture, url) {
  const page = await browser.newPage();
  const consoleLines = [];
  watchConsole(page, consoleLines);
  try {
    await page.goto(fixture);
    await page.evaluate((u) => window.start(u), url);
    await waitFor(page, `first frame of ${url}`, () => window.firstFrameMs !== null || window.errors.length);
    let errors = await page.evaluate(() => window.errors);
    if (errors.length) return { page: "bare", url, errors, console: consoleLines };
    const m = await page.evaluate(measure, { selector: "#video", ms: cfg.measureMs });
    const state = await page.evaluate(() => ({ errors: window.errors, mediaInfo: window.mediaInfo, firstFrameMs: window.firstFrameMs, playingMs: window.playingMs }));
    return {
      page: "bare",
      url,
      firstFrameMs: state.firstFrameMs,
      playingMs: state.playingMs,
      hasAudio: Boolean(state.mediaInfo && state.mediaInfo.hasAudio),
      mediaInfo: state.mediaInfo,
      errors: state.errors.map((e) => `${e.type}: ${e.detail} ${JSON.stringify(e.info || "")}`),
      console: consoleLines,
      ...m,
    };
  } finally {
    await page.close();
  }
}

const server = await fixtureServer();
const fixture = `http://127.0.0.1:${server.address().port}/`;
const browser = await chromium.launch({
  executablePath: cfg.chromium,
  args: ["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required", "--disable-background-networking", "--disable-component-update"],
});
const results = [];
try {
  // One page at a time: on a small machine parallel decoders would skew the timings.
  const runs = [() => dashboard(browser), ...cfg.urls.map((u) => () => bare(browser, fixture, u))];
  if (cfg.refusedKey) runs.push(() => refused(browser));
  for (const run of runs) {
    try {
      results.push(await run());
    } catch (e) {
      results.push({ error: String(e.message || e) });
    }
  }
} finally {
  await browser.close();
  server.close();
}
console.log("RESULT " + JSON.stringify(results));
