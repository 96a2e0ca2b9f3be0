//! The systemd unit's checks beyond `systemd-analyze verify`: room for the configured
//! connections, time to drain, SIGHUP for reload, the configuration file.

use std::process::{Command, Stdio};

/// The unit with ExecStart pointing at the binary cargo built (systemd-analyze verify checks
/// that the executable exists; /usr/local/bin/reflector is not installed here). Nothing else
/// is changed.
pub fn unit_for_test(text: &str, exe: &str) -> String {
    let installed = "ExecStart=/usr/local/bin/reflector ";
    assert!(text.contains(installed), "ExecStart is {installed}...");
    text.replace(installed, &format!("ExecStart={exe} "))
}

/// `systemd-analyze verify` of `unit` (written as reflector.service in a temp dir): the
/// lines of its output about the unit, and whether it exited 0.
pub fn verify(unit: &str) -> (bool, Vec<String>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("reflector.service");
    std::fs::write(&path, unit).expect("write unit");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .expect("run systemd-analyze");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let about_unit = text
        .lines()
        .filter(|l| l.contains("reflector") || l.contains(&*dir.path().to_string_lossy()))
        .map(str::to_owned)
        .collect();
    (out.status.success(), about_unit)
}

/// The value of `key=` in a unit (the last assignment wins, as in systemd).
pub fn unit_value<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
}

/// What the unit must give the server beyond what systemd-analyze checks: room for the
/// configured connections, time to drain, SIGHUP for reload, the config file.
pub fn unit_problems(unit: &str, max_connections: u64, drain_ms: u64) -> Vec<String> {
    /// Descriptors beside RTMP connections: listeners, event loops, admin clients, relays,
    /// Redis, shared-object files.
    const HEADROOM: u64 = 1024;
    let mut problems = Vec::new();
    let nofile = unit_value(unit, "LimitNOFILE")
        .and_then(|v| v.split(':').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    if nofile < max_connections + HEADROOM {
        problems.push(format!(
            "LimitNOFILE {nofile} < limits.max_connections {max_connections} + {HEADROOM}"
        ));
    }
    let stop = unit_value(unit, "TimeoutStopSec")
        .and_then(|v| v.trim_end_matches('s').parse::<u64>().ok())
        .unwrap_or(0);
    if stop * 1000 < drain_ms + 5000 {
        problems.push(format!(
            "TimeoutStopSec {stop}s leaves no margin over server.drain_timeout_ms {drain_ms}"
        ));
    }
    for (key, want) in [
        ("KillSignal", "SIGTERM"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
    ] {
        if unit_value(unit, key) != Some(want) {
            problems.push(format!("{key} is {:?}, not {want}", unit_value(unit, key)));
        }
    }
    if !unit_value(unit, "ExecStart")
        .is_some_and(|v| v.ends_with(" --config /etc/reflector/reflector.toml"))
    {
        problems.push("ExecStart does not pass --config /etc/reflector/reflector.toml".into());
    }
    problems
}

/// `systemd-analyze security --offline=yes`'s overall exposure of `unit` (0 best, 10 worst).
pub fn exposure(unit: &str) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("reflector.service");
    std::fs::write(&path, unit).expect("write unit");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .expect("run systemd-analyze security");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            l.split("Overall exposure level for reflector.service: ")
                .nth(1)
        })
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"))
}
