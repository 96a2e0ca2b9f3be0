//! Playback in a real browser (issue #18): headless Chromium, driven by Playwright
//! (`tests/browser/preview.mjs`), plays a live H.264/AAC stream of the reflector
//! - in the dashboard's preview (WebSocket-FLV from `server.http_listen`, mpegts.js served by
//!   the admin port under its Content-Security-Policy), then closes it;
//! - in a bare mpegts.js page on another origin (`tests/browser/player.html`), over HTTP-FLV
//!   (fetch, so the server's CORS answer is needed) and over WebSocket-FLV;
//! - and, in the dashboard, a stream whose app needs a play key: the preview shows the error
//!   instead of a black box, then plays once the key is typed into it.
//!
//! For each page it asserts frames decoded and presented, the clock moving, a picture that is
//! not one flat colour, audio decoded, no player error; and it measures time to first frame
//! and end-to-end latency. The publisher burns its frame number into the picture (see
//! [`frame_number_filter`]) and reports on stdout (`-progress`) how many frames it has sent;
//! the page reads the number back from each presented frame, so latency = presentation wall
//! time - the time the publisher sent that frame.
//!
//! Needs ffmpeg, node, Debian's Chromium (`CHROMIUM`, default `/usr/bin/chromium`) and
//! `playwright-core` in `REFLECTOR_BROWSER_DIR` (default `/opt/reflector-browser`, where
//! `.ci/run` installs it).

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Proc, Server};
use serde_json::Value;

/// Frames per second of the numbered publisher, and its GOP (one keyframe a second, so the
/// server's GOP cache holds at most a second).
const FPS: u64 = 25;
/// Targets from the issue, asserted with a margin for a small shared machine.
const FIRST_FRAME_TARGET_MS: f64 = 1000.0;
const LATENCY_TARGET_MS: f64 = 1500.0;
const MARGIN: f64 = 1.25;
/// How long each page is watched once it shows its first frame.
const MEASURE_MS: u64 = 2500;

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// The directory holding `node_modules/playwright-core`, or `None` (after a SKIP line) when it
/// is missing and the clients are not required.
fn playwright_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("REFLECTOR_BROWSER_DIR")
        .map_or_else(|| PathBuf::from("/opt/reflector-browser"), PathBuf::from);
    if dir
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        return Some(dir);
    }
    if std::env::var_os(common::REQUIRE_CLIENTS_ENV).is_some() {
        panic!(
            "playwright-core is not installed in {} (.ci/run installs it)",
            dir.display()
        );
    }
    eprintln!(
        "SKIP: playwright-core is not installed in {} (npm install --prefix DIR playwright-core@1.65.2)",
        dir.display()
    );
    None
}

fn wall_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
        * 1000.0
}

/// The frame number `n` in the top 80 rows of a 640-wide picture: 16 blocks of 40x40, bit k
/// of n at x = 40k in the first row (white = 1) and its complement in the second.
fn frame_number_filter() -> String {
    let mut parts = vec!["drawbox=x=0:y=0:w=640:h=80:color=black:t=fill".to_owned()];
    for k in 0..16u32 {
        let bit = format!("mod(floor(n/{}),2)", 1u64 << k);
        let x = k * 40;
        parts.push(format!(
            "drawbox=x={x}:y=0:w=40:h=40:color=white:t=fill:enable='{bit}'"
        ));
        parts.push(format!(
            "drawbox=x={x}:y=40:w=40:h=40:color=white:t=fill:enable='1-{bit}'"
        ));
    }
    parts.join(",")
}

/// A real-time ffmpeg publisher whose `-progress` lines (`frame=N`: N frames encoded and sent)
/// are read as they come, each with the wall time it arrived.
struct NumberedPublisher {
    child: Child,
    /// (frames sent, wall ms when ffmpeg said so).
    progress: Arc<Mutex<Vec<(u64, f64)>>>,
}

impl NumberedPublisher {
    fn start(url: &str, log: &Path) -> NumberedPublisher {
        let err = std::fs::File::create(log).expect("publisher log");
        let size = "640x360";
        let mut child = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "warning", "-nostats"])
            .args(["-re", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size={size}:rate={FPS}"))
            .args([
                "-re",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
            ])
            .args(["-vf", &frame_number_filter()])
            // zerolatency: no lookahead, no B-frames: frame n leaves as soon as it is read.
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
            ])
            .args(["-g", &FPS.to_string(), "-pix_fmt", "yuv420p"])
            .args(["-c:a", "aac", "-b:a", "96k", "-f", "flv", url])
            .args(["-progress", "pipe:1", "-stats_period", "0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .expect("spawn ffmpeg");
        let stdout = child.stdout.take().expect("ffmpeg stdout");
        let progress = Arc::new(Mutex::new(Vec::new()));
        let sink = progress.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("frame=").and_then(|n| n.parse().ok()) {
                    sink.lock().expect("progress").push((n, wall_ms()));
                }
            }
        });
        NumberedPublisher { child, progress }
    }

    fn frames_sent(&self) -> u64 {
        self.progress
            .lock()
            .expect("progress")
            .last()
            .map_or(0, |p| p.0)
    }

    /// When the publisher sent frame `n` (numbered from 0), at the earliest: `-re` reads frame
    /// n at start + n/FPS (start estimated from every report: frame c-1 was out at its
    /// report), and never before a report that had not counted it yet (a late publisher).
    fn sent_at(&self, n: u64) -> f64 {
        let progress = self.progress.lock().expect("progress");
        let interval = 1000.0 / FPS as f64;
        let start = progress
            .iter()
            .filter(|(c, _)| *c > 0)
            .map(|(c, t)| t - (c - 1) as f64 * interval)
            .fold(f64::INFINITY, f64::min);
        let not_yet = progress
            .iter()
            .filter(|(c, _)| *c <= n)
            .map(|p| p.1)
            .fold(f64::NEG_INFINITY, f64::max);
        (start + n as f64 * interval).max(not_yet)
    }
}

impl Drop for NumberedPublisher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small second stream (no frame number needed) for the refused-preview case.
fn plain_publisher(url: &str, log: &Path) -> Proc {
    let args: Vec<String> = [
        "-nostdin",
        "-v",
        "warning",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=10",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "10",
        "-f",
        "flv",
        url,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    Proc::spawn("ffmpeg-plain", "ffmpeg", &args, &[], log)
}

/// Waits until the admin API lists `keys` with a publisher.
fn wait_live(server: &Server, keys: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let body: Value = ureq::get(&format!("{}/api/v1/streams", server.admin_url()))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .and_then(|body| serde_json::from_str(&body).ok())
            .unwrap_or(Value::Null);
        let live = |key: &&str| {
            body["streams"].as_array().is_some_and(|list| {
                list.iter()
                    .any(|s| s["key"] == **key && !s["publisher"].is_null())
            })
        };
        if keys.iter().all(live) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "streams {keys:?} not live: {body}\n{}",
            server.log_tail(30)
        );
        sleep(Duration::from_millis(100));
    }
}

fn artifact_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    dir
}

/// Runs preview.mjs with `config`; its `RESULT` line.
fn run_node(config: &Value, log: &Path) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/preview.mjs");
    let out = std::fs::File::create(log).expect("node log");
    let mut child = Command::new("node")
        .arg(&script)
        .arg(config.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(out)
        .spawn()
        .expect("spawn node");
    let mut stdout = child.stdout.take().expect("node stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).ok();
        text
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait node") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "preview.mjs did not finish in 90 s\n{}",
                common::tail(log, 30)
            );
        }
        sleep(Duration::from_millis(100));
    };
    let text = reader.join().expect("node stdout reader");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| {
            panic!(
                "preview.mjs ({status}) printed no RESULT:\n{text}\n{}",
                common::tail(log, 30)
            )
        });
    serde_json::from_str::<Vec<Value>>(line).expect("RESULT json")
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// What one page measured, checked against the criteria; returns (first frame ms,
/// median latency ms, max latency ms).
fn check_page(r: &Value, publisher: &NumberedPublisher) -> (f64, f64, f64) {
    let page = format!("{} {}", r["page"], r["url"]);
    assert!(r["error"].is_null(), "{page}: {}", r["error"]);
    assert_eq!(
        r["errors"].as_array().map(Vec::len),
        Some(0),
        "{page}: player errors {}",
        r["errors"]
    );
    assert_eq!(
        (num(r, "width"), num(r, "height")),
        (640.0, 360.0),
        "{page}"
    );
    let frames = num(r, "framesAfter") - num(r, "framesBefore");
    let advanced = num(r, "currentTimeAfter") - num(r, "currentTimeBefore");
    let secs = MEASURE_MS as f64 / 1000.0;
    // Half the source rate at least: a stalled or stuttering player fails.
    assert!(
        frames >= secs * FPS as f64 / 2.0,
        "{page}: {frames} frames presented in {secs} s"
    );
    assert!(
        advanced >= secs * 0.6,
        "{page}: currentTime advanced {advanced:.2} s in {secs} s"
    );
    assert!(
        num(r, "distinctColours") >= 50.0 && num(r, "lumaStdDev") >= 20.0,
        "{page}: blank picture ({} colours, luma sd {})",
        r["distinctColours"],
        r["lumaStdDev"]
    );
    assert_eq!(r["hasAudio"], true, "{page}: no audio in the media info");
    assert!(
        num(r, "audioDecodedBytes") > 0.0,
        "{page}: no audio decoded"
    );
    // Every presented frame carries its number: they go up, and each was sent.
    let samples = r["samples"].as_array().expect("samples");
    assert!(
        samples.len() as f64 >= secs * FPS as f64 / 2.0,
        "{page}: {} readable frames ({} unreadable)",
        samples.len(),
        r["unreadable"]
    );
    let sent = publisher.frames_sent();
    let mut latencies = Vec::new();
    let mut last = None;
    for s in samples {
        let n = s["n"].as_u64().expect("frame number");
        assert!(n < sent + FPS, "{page}: frame {n} shown, {sent} sent");
        assert!(
            last.is_none_or(|l| n > l),
            "{page}: frame {n} after {last:?}"
        );
        last = Some(n);
        latencies.push(num(s, "at") - publisher.sent_at(n));
    }
    latencies.sort_by(f64::total_cmp);
    let median = latencies[latencies.len() / 2];
    let max = latencies[latencies.len() - 1];
    let first = num(r, "firstFrameMs");
    eprintln!(
        "{page}: first frame {first:.0} ms, latency median {median:.0} ms (min {:.0}, max {max:.0}), \
         {frames} frames presented / {advanced:.2} s in {secs} s, {} dropped, buffer ahead {:.2} s, \
         audio {} B decoded",
        latencies[0],
        num(r, "droppedFrames"),
        num(r, "bufferAheadS"),
        r["audioDecodedBytes"],
    );
    assert!(
        first <= FIRST_FRAME_TARGET_MS * MARGIN,
        "{page}: first frame after {first:.0} ms (target {FIRST_FRAME_TARGET_MS} ms)"
    );
    assert!(
        median <= LATENCY_TARGET_MS * MARGIN,
        "{page}: median latency {median:.0} ms (target {LATENCY_TARGET_MS} ms)"
    );
    (first, median, max)
}

#[test]
fn dashboard_preview_and_mpegts_pages_play_live_with_low_latency() {
    skip_unless_have!("ffmpeg", "node", &chromium());
    let Some(playwright) = playwright_dir() else {
        return;
    };
    // App "priv" needs a play key: its preview must fail visibly. CORS and WebSocket origins
    // are held to the bare page's origin alone: the dashboard's preview must play all the
    // same (its own origin is always allowed).
    let fixture_port = common::free_port();
    let config = common::config_file(&format!(
        "[http]\nallow_origin = \"http://127.0.0.1:{fixture_port}\"\n\n\
         [auth]\nkeys_file = \"\"\n\n[auth.apps.priv]\npublish = \"open\"\nplay = \"key\"\nplay_keys = [\"v13w\"]\n"
    ));
    let cfg = config.path().display().to_string();
    let server = Server::reflector_http(&["--workers", "2", "--config", &cfg]);
    let publisher =
        NumberedPublisher::start(&server.rtmp_url("live", "x"), &server.dir().join("pub.log"));
    let _private = plain_publisher(
        &server.rtmp_url("priv", "cam"),
        &server.dir().join("priv.log"),
    );
    wait_live(&server, &["live/x", "priv/cam"]);
    // Two keyframes in: the GOP cache holds a whole GOP from here on.
    let deadline = Instant::now() + Duration::from_secs(10);
    while publisher.frames_sent() < 2 * FPS + 5 {
        assert!(Instant::now() < deadline, "publisher is not sending");
        sleep(Duration::from_millis(50));
    }

    let http = server.http_url("live", "x");
    let ws = http.replacen("http://", "ws://", 1);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shot = artifact_dir().join("dashboard-preview.png");
    let config = serde_json::json!({
        "chromium": chromium(),
        "playwrightDir": playwright,
        "adminUrl": server.admin_url(),
        "streamKey": "live/x",
        "refusedKey": "priv/cam",
        "refusedPlayKey": "v13w",
        "urls": [http, ws],
        "vendorJs": root.join("src/admin/dashboard/vendor/mpegts.js"),
        "fixtureHtml": root.join("tests/browser/player.html"),
        "fixturePort": fixture_port,
        "screenshot": shot,
        "measureMs": MEASURE_MS,
    });
    let results = run_node(&config, &server.dir().join("node.log"));
    assert_eq!(results.len(), 4, "{results:?}");

    // (a) The dashboard: preview of the stream's row, over WebSocket-FLV, URL built from the
    // page's host name and the summary's http_listen port.
    let dash = &results[0];
    assert_eq!(dash["url"], ws, "{dash}");
    check_page(dash, &publisher);
    assert!(
        dash["shownLatencyMs"].as_f64().is_some(),
        "no latency shown: {dash}"
    );
    assert_eq!(dash["closed"], true, "Close did not hide the preview");
    eprintln!(
        "dashboard: preview opened to first frame {} ms (mpegts.js loaded on demand), latency shown {} ms",
        dash["openedToFirstFrameMs"], dash["shownLatencyMs"]
    );
    // The preview plays under the admin port's policy without a single refusal (no eval, no
    // worker; the only console error is the browser's /favicon.ico 404).
    for line in dash["console"].as_array().into_iter().flatten() {
        let line = line.as_str().unwrap_or_default();
        eprintln!("dashboard console: {line}");
        assert!(
            !line.contains("Content Security Policy"),
            "dashboard: {line}"
        );
    }

    // (b) The bare page on another origin: HTTP-FLV (CORS), then WebSocket-FLV.
    for r in &results[1..3] {
        check_page(r, &publisher);
        eprintln!("{}: playing {} ms after load()", r["url"], r["playingMs"]);
        assert_eq!(
            r["mediaInfo"]["videoCodec"]
                .as_str()
                .map(|c| c.starts_with("avc1")),
            Some(true),
            "{r}"
        );
        assert_eq!(
            r["mediaInfo"]["audioCodec"]
                .as_str()
                .map(|c| c.starts_with("mp4a.40")),
            Some(true),
            "{r}"
        );
    }
    assert_eq!(results[1]["url"], http);
    assert_eq!(results[2]["url"], ws);

    // (c) A stream that needs a play key: the preview reports mpegts.js's error, no picture.
    let refused = &results[3];
    let error = refused["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("mpegts.js") || error.contains("closed the connection"),
        "refused preview: {refused}"
    );
    assert!(refused["firstFrameMs"].is_null(), "{refused}");
    eprintln!("refused preview says: {error}");
    // ... and with its play key typed into the preview, it plays.
    let keyed_url = refused["keyedUrl"].as_str().unwrap_or_default();
    assert!(keyed_url.ends_with("/priv/cam.flv?key=v13w"), "{refused}");
    assert!(
        refused["keyedFirstFrameMs"]
            .as_f64()
            .is_some_and(|ms| ms > 0.0),
        "keyed preview: {refused}"
    );
    assert!(refused["keyedError"].is_null(), "keyed preview: {refused}");
    eprintln!(
        "keyed preview: first frame {} ms after load",
        refused["keyedFirstFrameMs"]
    );
    eprintln!("dashboard screenshot: {}", shot.display());
}
