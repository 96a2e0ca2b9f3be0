//! Real-client test harness shared by the integration tests (`mod common;`).
//!
//! It starts an RTMP server under test (the reflector binary, or nginx-rtmp as a
//! known-good reference), publishes a generated clip into it with real clients
//! (ffmpeg, GStreamer `rtmp2sink`, librtmp via GStreamer `rtmpsink`), records what
//! real players (ffmpeg, GStreamer `rtmp2src`, rtmpdump) receive, and checks that the
//! decoded video frames are an exact contiguous run of the source clip's frames
//! ([`tracks`]: the same, per track, for any codec and track layout).
//!
//! Nothing here depends on the reflector library: only the server process changes
//! between the nginx validation tests and the reflector tests.

// Every test binary uses a different subset of the harness.
#![allow(dead_code, unused_imports)]

pub mod callback;
pub mod canary;
pub mod clients;
pub mod clip;
pub mod process;
pub mod server;
pub mod tracks;
pub mod verify;

pub use callback::{CallbackServer, Reply};
pub use canary::Canary;
pub use clients::{play, publish, publish_fast, publish_looped, Player, Publisher, Recording};
pub use clip::{shared_clip, source_clip, Clip};
pub use process::Proc;
pub use server::{config_file, reflector_http_with_config, reflector_with_config, rss_kib, Server};
pub use verify::{verify_recording, Verdict};

use std::net::TcpListener;
use std::path::Path;

/// Environment variable that turns "client binary missing" from a skip into a
/// failure; `.ci/run` sets it so CI can never pass by skipping.
pub const REQUIRE_CLIENTS_ENV: &str = "TEST_REQUIRE_RTMP_CLIENTS";

/// Whether `cmd` is an executable found on `PATH` (or an existing path).
pub fn have(cmd: &str) -> bool {
    if cmd.contains('/') {
        return Path::new(cmd).is_file();
    }
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| dir.join(cmd).is_file())
}

/// The first command of `cmds` that is not available, if any.
pub fn first_missing<'a>(cmds: &[&'a str]) -> Option<&'a str> {
    cmds.iter().copied().find(|c| !have(c))
}

/// Whether a test needing `cmds` should be skipped: prints a clear `SKIP` line and
/// returns true when one is missing, unless [`REQUIRE_CLIENTS_ENV`] is set, in which
/// case it panics (CI installs every client).
pub fn should_skip(test: &str, cmds: &[&str]) -> bool {
    let Some(missing) = first_missing(cmds) else {
        return false;
    };
    if std::env::var_os(REQUIRE_CLIENTS_ENV).is_some() {
        panic!("{test}: required client binary `{missing}` is not installed ({REQUIRE_CLIENTS_ENV} is set)");
    }
    eprintln!("SKIP {test}: `{missing}` is not installed (run .ci/run or apt-get install it)");
    true
}

/// The running test's name (libtest names each test's thread after it).
pub fn current_test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_string()
}

/// Returns from the calling test (after a `SKIP` message) when any of the named
/// commands is missing. Usage: `skip_unless_have!("ffmpeg", "nginx");`
#[macro_export]
macro_rules! skip_unless_have {
    ($($cmd:expr),+ $(,)?) => {
        if $crate::common::should_skip(&$crate::common::current_test_name(), &[$($cmd),+]) {
            return;
        }
    };
}

/// The client binaries every harness path needs for the clip and verification.
pub const BASE_TOOLS: &[&str] = &["ffmpeg", "ffprobe"];

/// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read, drop).
/// There is an unavoidable small race with other processes; ports come from the
/// kernel's ephemeral range so collisions between parallel tests are rare.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// The last `lines` lines of a text file, for panic messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}
