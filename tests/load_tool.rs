//! Runs the `reflector-load` binary against a reflector started by the harness and checks its
//! JSON report: a short, small run must deliver everything, in order, fast, on one player
//! thread or several; a run that cannot fit the open-file limit is refused up front.

use crate::common;

use std::process::Command;

#[test]
fn load_tool_fixed_mode_against_reflector() {
    let server = common::Server::reflector(&["--workers", "2"]);
    let url = server.rtmp_url("live", "load");
    let json = run_short(
        &server,
        &url,
        &["--mode", "fixed", "--players", "20", "--label", "test"],
    );
    let num = |k: &str| {
        json[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{k} missing: {json}"))
    };
    assert_eq!(num("players"), 20.0, "{json}");
    assert!(num("published_frames") > 0.0, "{json}");
    assert!(num("received_frames") > 0.0, "{json}");
    assert_eq!(num("delivery_pct"), 100.0, "{json}");
    assert_eq!(num("reordered"), 0.0, "{json}");
    assert_eq!(num("duplicates"), 0.0, "{json}");
    assert_eq!(num("missing"), 0.0, "{json}");
    assert_eq!(num("connect_failures"), 0.0, "{json}");
    assert!(num("p99_ms") < 500.0, "{json}");
    assert!(num("server_cpu_pct") >= 0.0, "{json}");
    assert_eq!(json["slo_ok"], serde_json::Value::Bool(true), "{json}");
    assert_eq!(json["tool"], "reflector-load");
}

/// Run reflector-load with `args` (the URL first) and return its exit status, stdout and
/// stderr.
fn run_load(args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_reflector-load"))
        .args(args)
        .output()
        .expect("run reflector-load");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run reflector-load against `server` with `args`; it must succeed. Its JSON report.
fn run_load_ok(server: &common::Server, args: &[&str]) -> serde_json::Value {
    let (status, stdout, stderr) = run_load(args);
    assert!(
        status.success(),
        "reflector-load failed ({status}):\n{stdout}\n{stderr}\n--- server ---\n{}",
        server.log_tail(30)
    );
    last_json(&stdout, &stderr)
}

/// A short run (3 s, 1 s of warm-up, 1 Mbit/s) of reflector-load against `server`: `url`,
/// then `extra`; it must succeed. Its JSON report.
fn run_short(server: &common::Server, url: &str, extra: &[&str]) -> serde_json::Value {
    let pid = server.pid().to_string();
    let mut args = vec![url];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
        "--duration",
        "3",
        "--warmup",
        "1",
        "--bitrate-kbps",
        "1000",
        "--server-pid",
        &pid,
    ]);
    run_load_ok(server, &args)
}

/// The count `k` of a report.
fn count(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("{k} missing or not a count: {v}"))
}

fn last_json(stdout: &str, stderr: &str) -> serde_json::Value {
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("last line is not JSON ({e}): {line}\n{stderr}"))
}

/// Players on two threads: every frame reaches every player, and the report's totals are
/// the sums of what each thread counted.
#[test]
fn load_tool_threads_merge_their_counts() {
    let server = common::Server::reflector(&["--workers", "2"]);
    let url = server.rtmp_url("live", "threads");
    let json = run_short(&server, &url, &["--players", "40", "--threads", "2"]);
    assert_eq!(json["threads"], 2, "{json}");
    assert_eq!(count(&json, "players"), 40, "{json}");
    assert_eq!(json["delivery_pct"].as_f64(), Some(100.0), "{json}");
    assert_eq!(count(&json, "missing"), 0, "{json}");
    assert_eq!(count(&json, "connect_failures"), 0, "{json}");
    assert_eq!(count(&json, "players_below_slo"), 0, "{json}");
    let published = count(&json, "published_frames");
    // 3 s at 30 fps.
    assert!((80..=100).contains(&published), "{json}");
    assert_eq!(count(&json, "received_frames"), published * 40, "{json}");
    let threads = json["tool_threads"].as_array().expect("tool_threads");
    let players: Vec<&serde_json::Value> = threads
        .iter()
        .filter(|t| t["thread"].as_str().is_some_and(|n| n.starts_with("load-")))
        .collect();
    assert_eq!(players.len(), 2, "{json}");
    // Round-robin: 20 players on each thread, each receiving every frame.
    for t in &players {
        assert_eq!(count(t, "players"), 20, "{json}");
        assert_eq!(count(t, "received_frames"), published * 20, "{json}");
    }
    let sum = |k: &str| players.iter().map(|t| count(t, k)).sum::<u64>();
    assert_eq!(sum("players"), count(&json, "players"), "{json}");
    assert_eq!(
        sum("received_frames"),
        count(&json, "received_frames"),
        "{json}"
    );
    assert_ne!(players[0]["tid"], players[1]["tid"], "{json}");
    // Forty players are light work for two threads. (Whether its timers ran late is the
    // machine's load, which a parallel test suite sets; not checked here.)
    for t in threads {
        let cpu = t["cpu_pct"].as_f64().expect("cpu_pct");
        assert!(cpu < 85.0, "{} at {cpu} % of a core: {json}", t["thread"]);
    }
}

/// Busy-polling player threads (`--busy-poll`): every frame still reaches every player in
/// order, the player thread uses most of a core (it never sleeps in epoll), and that alone is
/// not reported as the tool being the bottleneck.
#[test]
fn load_tool_busy_poll_players_never_sleep_and_miss_nothing() {
    let server = common::Server::reflector(&["--workers", "1"]);
    let url = server.rtmp_url("live", "busy");
    let json = run_short(&server, &url, &["--players", "10", "--busy-poll"]);
    assert_eq!(json["busy_poll"], true, "{json}");
    assert_eq!(json["delivery_pct"].as_f64(), Some(100.0), "{json}");
    for k in ["missing", "reordered", "duplicates", "connect_failures"] {
        assert_eq!(count(&json, k), 0, "{k}: {json}");
    }
    let published = count(&json, "published_frames");
    assert_eq!(count(&json, "received_frames"), published * 10, "{json}");
    let threads = json["tool_threads"].as_array().expect("tool_threads");
    let player = threads
        .iter()
        .find(|t| t["thread"] == "load-0")
        .unwrap_or_else(|| panic!("no player thread: {json}"));
    // Ten players at 1 Mbit/s take a sleeping thread a few percent of a core; a polling one
    // runs whenever the scheduler lets it: most of a core on an idle machine, and still
    // several times a sleeping thread's share beside the rest of a parallel test suite.
    let cpu = player["cpu_pct"].as_f64().expect("cpu_pct");
    assert!(cpu >= 20.0, "player thread at {cpu} % of a core: {json}");
    // Polling alone is no saturation: the player thread is named in the warning only if its
    // timers ran late, which a loaded machine may cause and this test does not check.
    let late = player["late_p99_ms"].as_f64().expect("late_p99_ms");
    let warning = json["tool_warning"].as_str().unwrap_or_default();
    assert!(
        late > 20.0 || !warning.contains("load-0"),
        "a polling player thread reported as the bottleneck: {json}"
    );
}

/// More players than open files allow: refused before any connection, saying why.
#[test]
fn load_tool_refuses_more_players_than_open_files_allow() {
    let server = common::Server::reflector(&["--workers", "1"]);
    let url = server.rtmp_url("live", "too-many");
    let (status, stdout, stderr) = run_load(&[url.as_str(), "--players", "10000000"]);
    assert_eq!(status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("refusing to run: 10000000 players need about")
            && stderr.contains("above the open-file limit"),
        "{stderr}"
    );
    let json = last_json(&stdout, &stderr);
    assert!(
        json["refused"]
            .as_str()
            .is_some_and(|r| r.contains("at most")),
        "{json}"
    );
    assert_eq!(json["players"], 10_000_000, "{json}");
}

/// RTMP, HTTP-FLV and WebSocket-FLV players of one publisher in one run, on two threads:
/// every player of every kind gets every frame, so each kind's frame count is the RTMP
/// players' exactly.
#[test]
fn load_tool_plays_over_http_flv_and_websocket_flv() {
    let server = common::Server::reflector_http(&["--workers", "2"]);
    let rtmp = server.rtmp_url("live", "flv");
    let http = server.http_url("live", "flv");
    let ws = http.replacen("http://", "ws://", 1);
    let json = run_short(
        &server,
        &rtmp,
        &[
            "--play-url",
            &rtmp,
            "--play-url",
            &http,
            "--play-url",
            &ws,
            "--players",
            "30",
            "--threads",
            "2",
        ],
    );
    assert_eq!(count(&json, "players"), 30, "{json}");
    assert_eq!(json["delivery_pct"].as_f64(), Some(100.0), "{json}");
    for k in [
        "missing",
        "reordered",
        "duplicates",
        "connect_failures",
        "player_errors",
    ] {
        assert_eq!(count(&json, k), 0, "{k}: {json}");
    }
    let published = count(&json, "published_frames");
    assert!((80..=100).contains(&published), "{json}");
    let urls = json["play_urls"].as_array().expect("play_urls");
    let seen: Vec<(&str, u64, u64)> = urls
        .iter()
        .map(|u| {
            (
                u["url"].as_str().unwrap_or_default(),
                count(u, "players"),
                count(u, "received_frames"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (rtmp.as_str(), 10, published * 10),
            (http.as_str(), 10, published * 10),
            (ws.as_str(), 10, published * 10),
        ],
        "{json}"
    );
    for u in urls {
        assert!(u["p99_ms"].as_f64().is_some_and(|p| p < 500.0), "{u}");
        assert!(u["delivered_gbps"].as_f64().is_some_and(|g| g > 0.0), "{u}");
    }
    eprintln!(
        "FIGURES published={published} per_kind_received={} p99_ms(rtmp/http/ws)={}/{}/{}",
        published * 10,
        urls[0]["p99_ms"],
        urls[1]["p99_ms"],
        urls[2]["p99_ms"]
    );
}
