//! Runs the `reflector-load` binary in fixed mode against a reflector started by the harness
//! and checks its JSON report: a short, small run must deliver everything, in order, fast.

mod common;

use std::process::Command;

#[test]
fn load_tool_fixed_mode_against_reflector() {
    let server = common::Server::reflector(&["--workers", "2"]);
    let url = server.rtmp_url("live", "load");
    let out = Command::new(env!("CARGO_BIN_EXE_reflector-load"))
        .args([
            url.as_str(),
            "--mode",
            "fixed",
            "--players",
            "20",
            "--duration",
            "3",
            "--warmup",
            "1",
            "--bitrate-kbps",
            "1000",
            "--server-pid",
            &server.pid().to_string(),
            "--label",
            "test",
        ])
        .output()
        .expect("run reflector-load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "reflector-load failed ({}):\n{stdout}\n{stderr}\n--- server ---\n{}",
        out.status,
        server.log_tail(30)
    );
    let line = stdout.lines().last().unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("last line is not JSON ({e}): {line}\n{stderr}"));
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
