//! Configuration: embedded defaults, file, `REFLECTOR_...` environment and flags, in that
//! order of precedence; validation names the key; unknown keys are errors. Driven through the
//! binary's `--print-config`.

use crate::common::config_file;
use std::process::{Command, Output};

fn reflector(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reflector"));
    cmd.args(args);
    // Start from a clean REFLECTOR_ environment whatever the caller has set.
    for (key, _) in std::env::vars() {
        if key.starts_with("REFLECTOR_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run reflector")
}

fn printed(out: &Output) -> String {
    assert!(
        out.status.success(),
        "reflector failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn error(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "reflector accepted an invalid configuration"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn embedded_defaults_need_no_file() {
    let text = printed(&reflector(&["--print-config"], &[]));
    assert!(text.contains("listen = \"0.0.0.0:1935\""), "{text}");
    assert!(text.contains("admin_listen = \"127.0.0.1:8080\""), "{text}");
    assert!(text.contains("publish_conflict = \"protect\""), "{text}");
    assert!(text.contains("gop_cache = true"), "{text}");
}

#[test]
fn file_then_environment_then_flags() {
    let file = config_file(
        "[server]\nlisten = \"127.0.0.1:1000\"\nworkers = 3\n[live]\ngop_cache = false\nmax_lag_ms = 4000\n",
    );
    let path = file.path().display().to_string();
    // File over defaults.
    let text = printed(&reflector(&["--config", &path, "--print-config"], &[]));
    assert!(text.contains("listen = \"127.0.0.1:1000\""), "{text}");
    assert!(text.contains("workers = 3"), "{text}");
    assert!(text.contains("gop_cache = false"), "{text}");
    // Environment over file.
    let env = [
        ("REFLECTOR_SERVER__LISTEN", "127.0.0.1:2000"),
        ("REFLECTOR_LIVE__MAX_LAG_MS", "5000"),
        ("REFLECTOR_SHARED_OBJECTS__MAX_APPS", "7"),
        ("REFLECTOR_AUTH__SHARED_OBJECTS", "deny"),
    ];
    let text = printed(&reflector(&["--config", &path, "--print-config"], &env));
    assert!(text.contains("max_apps = 7"), "{text}");
    assert!(text.contains("shared_objects = \"deny\""), "{text}");
    assert!(text.contains("listen = \"127.0.0.1:2000\""), "{text}");
    assert!(text.contains("max_lag_ms = 5000"), "{text}");
    assert!(text.contains("workers = 3"), "file value kept: {text}");
    // Flags over environment.
    let text = printed(&reflector(
        &[
            "--config",
            &path,
            "--listen",
            "127.0.0.1:3000",
            "--workers",
            "1",
            "--print-config",
        ],
        &env,
    ));
    assert!(text.contains("listen = \"127.0.0.1:3000\""), "{text}");
    assert!(text.contains("workers = 1"), "{text}");
    assert!(text.contains("max_lag_ms = 5000"), "{text}");
}

#[test]
fn each_validation_error_names_its_key() {
    let cases = [
        ("[rtmp]\nout_chunk_size = 64\n", "rtmp.out_chunk_size"),
        (
            "[rtmp]\nmax_message_len = 99999999\n",
            "rtmp.max_message_len",
        ),
        ("[rtmp]\nmax_chunk_streams = 1\n", "rtmp.max_chunk_streams"),
        (
            "[rtmp]\nhandshake_timeout_ms = 1\n",
            "rtmp.handshake_timeout_ms",
        ),
        ("[server]\nworkers = 100000\n", "server.workers"),
        ("[server]\nlisten = \"nowhere\"\n", "server.listen"),
        ("[server]\nlog_format = \"xml\"\n", "server.log_format"),
        (
            "[live]\ndrop_video_bytes = 20000\n",
            "live.drop_video_bytes",
        ),
        (
            "[live]\nsubscriber_mailbox = 1\n",
            "live.subscriber_mailbox",
        ),
        ("[limits]\nmax_connections = 0\n", "limits.max_connections"),
        ("[auth]\npublish = \"callback\"\n", "auth"),
        ("[auth]\nshared_objects = \"callback\"\n", "auth"),
        (
            "[shared_objects]\nmax_disk_bytes = 1\n",
            "shared_objects.max_disk_bytes",
        ),
        (
            "[auth]\ncallback_timeout_ms = 0\n",
            "auth.callback_timeout_ms",
        ),
    ];
    for (toml, key) in cases {
        let file = config_file(toml);
        let path = file.path().display().to_string();
        let err = error(&reflector(&["--config", &path, "--print-config"], &[]));
        assert!(err.contains(key), "{toml:?} should name {key}: {err}");
    }
    // Wrong types and unknown enum values are refused too.
    for toml in [
        "[live]\npublish_conflict = \"maybe\"\n",
        "[live]\ngop_cache = \"yes please\"\n",
    ] {
        let file = config_file(toml);
        let path = file.path().display().to_string();
        error(&reflector(&["--config", &path, "--print-config"], &[]));
    }
}

#[test]
fn unknown_keys_are_errors() {
    let file = config_file("[live]\ngop_cahce = false\n");
    let path = file.path().display().to_string();
    let err = error(&reflector(&["--config", &path, "--print-config"], &[]));
    assert!(err.contains("gop_cahce"), "{err}");
    let err = error(&reflector(
        &["--print-config"],
        &[("REFLECTOR_LIVE__NOPE", "1")],
    ));
    assert!(err.contains("nope"), "{err}");
    let file = config_file("[nonsense]\nx = 1\n");
    let path = file.path().display().to_string();
    let err = error(&reflector(&["--config", &path, "--print-config"], &[]));
    assert!(err.contains("nonsense"), "{err}");
}

#[test]
fn a_missing_config_file_is_an_error() {
    let err = error(&reflector(
        &["--config", "/nonexistent/reflector.toml"],
        &[],
    ));
    assert!(err.contains("reflector.toml"), "{err}");
}

/// Each configuration error is one line that names where the value came from (file,
/// variable, flag), the full key, and what is accepted there; printed once, no backtrace.
#[test]
fn errors_name_the_origin_the_key_and_the_accepted_values_once() {
    let file = config_file("[live]\ngop_cach = true\n");
    let path = file.path().display().to_string();
    let err = error(&reflector(
        &["--config", &path, "--print-config"],
        &[("RUST_BACKTRACE", "1")],
    ));
    assert_eq!(err.matches("live.gop_cach ").count(), 1, "said once: {err}");
    assert!(err.contains("configuration key live.gop_cach"), "{err}");
    assert!(err.contains(&format!("(in {path})")), "{err}");
    assert!(err.contains("did you mean gop_cache?"), "{err}");
    assert!(err.contains("accepts: gop_cache,"), "{err}");
    assert!(
        !err.contains("Caused by") && !err.contains("backtrace"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let file = config_file("[live]\npublish_conflict = \"kick\"\n");
    let path = file.path().display().to_string();
    let err = error(&reflector(&["--config", &path, "--print-config"], &[]));
    assert!(err.contains("live.publish_conflict"), "{err}");
    assert!(err.contains(&format!("(in {path})")), "{err}");
    assert!(err.contains("one of: reject, takeover, protect"), "{err}");
    assert!(!err.contains("variant constructor"), "{err}");

    let err = error(&reflector(
        &["--print-config"],
        &[("REFLECTOR_AUTH__PUBLISH", "sometimes")],
    ));
    assert!(
        err.contains("auth.publish (in environment variable REFLECTOR_AUTH__PUBLISH)"),
        "{err}"
    );
    assert!(err.contains("one of: open, key, callback, deny"), "{err}");

    let err = error(&reflector(&["--listen", "bogus", "--print-config"], &[]));
    assert!(err.contains("server.listen (from flag --listen)"), "{err}");
}

/// An unknown log level is a start-up error listing the levels, not a server that logs
/// nothing: tracing would read `warning` as a target name.
#[test]
fn unknown_log_levels_are_refused_with_the_valid_ones() {
    for (args, env) in [
        (vec!["--log-level", "warning", "--print-config"], vec![]),
        (
            vec!["--print-config"],
            vec![("REFLECTOR_SERVER__LOG_LEVEL", "verbose")],
        ),
    ] {
        let err = error(&reflector(&args, &env));
        assert!(err.contains("server.log_level"), "{err}");
        assert!(
            err.contains("trace, debug, info, warn, error, off"),
            "{err}"
        );
    }
    // RUST_LOG wins over the setting at start-up, so it is held to the same rule.
    let out = reflector(
        &["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
        &[("RUST_LOG", "warning")],
    );
    let err = error(&out);
    assert!(err.contains("RUST_LOG"), "{err}");
    for good in [
        "warn",
        "reflector=debug,info",
        "INFO",
        "actix_web=warn,reflector::actors=trace",
    ] {
        printed(&reflector(&["--log-level", good, "--print-config"], &[]));
    }
}

#[test]
fn admin_allowed_hosts_from_file_environment_and_flags() {
    let text = printed(&reflector(&["--print-config"], &[]));
    assert!(text.contains("allowed_hosts = []"), "{text}");
    let env = [("REFLECTOR_ADMIN__ALLOWED_HOSTS", "a.example,B.example")];
    let text = printed(&reflector(&["--print-config"], &env));
    assert!(
        text.contains("allowed_hosts = [\n    \"a.example\",\n    \"B.example\",\n]")
            || text.contains("allowed_hosts = [\"a.example\", \"B.example\"]"),
        "{text}"
    );
    let text = printed(&reflector(
        &[
            "--admin-allowed-host",
            "c.example",
            "--admin-allowed-host",
            "[fd00::1]",
            "--print-config",
        ],
        &env,
    ));
    assert!(
        text.contains("c.example") && text.contains("[fd00::1]") && !text.contains("a.example"),
        "flags replace the list: {text}"
    );
    let err = error(&reflector(
        &["--print-config"],
        &[("REFLECTOR_ADMIN__ALLOWED_HOSTS", "http://evil.example:80")],
    ));
    assert!(err.contains("admin.allowed_hosts"), "{err}");
}

/// Kubernetes gives every pod `REFLECTOR_PORT`, `REFLECTOR_SERVICE_HOST`... for a Service
/// named `reflector`: they are not settings (no `SECTION__KEY`) and must not stop the server,
/// while a real setting beside them still applies and a bad one is still an error.
#[test]
fn service_link_variables_are_not_settings() {
    let links = [
        ("REFLECTOR_PORT", "tcp://10.0.0.7:1935"),
        ("REFLECTOR_PORT_1935_TCP_ADDR", "10.0.0.7"),
        ("REFLECTOR_SERVICE_HOST", "10.0.0.7"),
        ("REFLECTOR_ADMIN_PORT", "tcp://10.0.0.8:8080"),
        ("REFLECTOR_LIVE__MAX_LAG_MS", "4321"),
    ];
    let text = printed(&reflector(&["--print-config"], &links));
    assert!(text.contains("max_lag_ms = 4321"), "{text}");
    let mut bad = links.to_vec();
    bad.push(("REFLECTOR_LIVE__GOP_CACHE", "perhaps"));
    let err = error(&reflector(&["--print-config"], &bad));
    assert!(err.contains("REFLECTOR_LIVE__GOP_CACHE"), "{err}");
}
