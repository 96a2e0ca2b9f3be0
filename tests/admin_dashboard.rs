//! The dashboard in headless Chromium while a stream is live: the page shows the stream and
//! its subscriber, the chart has drawn points and moves on between two loads, and a
//! screenshot is saved to `target/test-artifacts/dashboard.png` for a human to look at.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{play, shared_clip, Player, Server};

const CHROMIUM: &str = "chromium";

/// Run headless Chromium on `url` with `extra` arguments (e.g. `--dump-dom`); returns stdout.
fn chromium(url: &str, extra: &[&str]) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let user_data = format!("--user-data-dir={}", profile.path().display());
    let mut args = vec![
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1400,1300",
        user_data.as_str(),
    ];
    args.extend_from_slice(extra);
    args.push(url);
    let out = Command::new(CHROMIUM)
        .args(&args)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of `attr="..."` on the element whose opening tag contains `marker`.
fn attr(dom: &str, marker: &str, attr: &str) -> Option<String> {
    let at = dom.find(marker)?;
    let start = dom[..at].rfind('<')?;
    let end = at + dom[at..].find('>')?;
    let tag = &dom[start..end];
    let key = format!("{attr}=\"");
    let from = tag.find(&key)? + key.len();
    let len = tag[from..].find('"')?;
    Some(tag[from..from + len].to_owned())
}

fn artifact_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    dir
}

#[test]
fn dashboard_shows_stream_subscriber_and_a_moving_chart() {
    skip_unless_have!("ffmpeg", "ffprobe", CHROMIUM);
    let server = Server::reflector(&["--workers", "2"]);
    let url = server.rtmp_url("live", "cam");
    // Loop the clip so the stream stays live however slow the browser runs are on a busy
    // machine (the plain clip lasts 8 s).
    let clip = shared_clip().path().display().to_string();
    let looped: Vec<String> = [
        "-nostdin",
        "-v",
        "warning",
        "-stream_loop",
        "-1",
        "-re",
        "-i",
        &clip,
        "-c",
        "copy",
        "-f",
        "flv",
        &url,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let _publisher = common::Proc::spawn(
        "ffmpeg-loop",
        "ffmpeg",
        &looped,
        &[],
        &server.dir().join("publish.log"),
    );
    sleep(Duration::from_millis(1000));
    let _player = play(Player::Ffmpeg, &url, server.dir(), Duration::from_secs(7));
    // Let the sampler collect a few seconds of history with the player attached.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = ureq::get(&format!("{}/api/v1/streams", server.admin_url()))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .unwrap_or_default();
        if body.contains("\"subscriber_count\":1") {
            break;
        }
        assert!(Instant::now() < deadline, "no subscriber: {body}");
        sleep(Duration::from_millis(200));
    }
    sleep(Duration::from_millis(1500));

    let page = format!("{}/", server.admin_url());
    let dom = chromium(&page, &["--virtual-time-budget=4000", "--dump-dom"]);
    assert!(
        dom.contains("data-stream=\"live/cam\""),
        "stream row missing:\n{dom}"
    );
    assert!(dom.contains("H.264") && dom.contains("320x240") && dom.contains("AAC"));
    assert!(
        dom.contains("class=\"subscriber-row\""),
        "subscriber row missing:\n{dom}"
    );
    assert!(dom.contains("LNX 9,0,124,2"), "player's flashVer missing");
    let refreshes: u64 = attr(&dom, "<body", "data-refreshes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(refreshes >= 2, "page refreshed {refreshes} times");
    let points: u64 = attr(&dom, "id=\"chart\"", "data-points")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let draws: u64 = attr(&dom, "id=\"chart\"", "data-draws")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(points >= 3, "chart has {points} points");
    assert!(draws >= 2, "chart drawn {draws} times");
    let first_last: u64 = attr(&dom, "id=\"chart\"", "data-last")
        .and_then(|v| v.parse().ok())
        .expect("chart's last sample time");

    // The screenshot while the stream is still live (the clip lasts 8 s).
    let shot = artifact_dir().join("dashboard.png");
    let shot_arg = format!("--screenshot={}", shot.display());
    chromium(&page, &["--virtual-time-budget=3000", &shot_arg]);
    let dom2 = chromium(&page, &["--virtual-time-budget=3000", "--dump-dom"]);
    let second_last: u64 = attr(&dom2, "id=\"chart\"", "data-last")
        .and_then(|v| v.parse().ok())
        .expect("chart's last sample time");
    assert!(
        second_last > first_last,
        "chart did not move on: {first_last} -> {second_last}"
    );
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "screenshot {} is {size} bytes",
        shot.display()
    );
    eprintln!("dashboard screenshot: {}", shot.display());
}
