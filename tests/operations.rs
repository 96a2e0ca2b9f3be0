//! Operations: graceful drain on SIGTERM with real clients attached, the Enhanced RTMP
//! reconnect request for clients that announced it, and reload on SIGHUP.

use crate::common;

use std::time::{Duration, Instant};

use common::{play, publish, shared_clip, Player, Publisher, Server};
use reflector::client::synth::{Synth, SynthConfig};
use reflector::client::{ClientConfig, ClientEvent, RtmpClient, RtmpUrl};
use reflector::protocol::amf0::Amf0Value;
use reflector::protocol::message::UserControlEvent;

const WAIT: Duration = Duration::from_secs(5);

fn url(server: &Server, name: &str) -> RtmpUrl {
    RtmpUrl {
        host: "127.0.0.1".into(),
        port: server.port(),
        app: "live".into(),
        stream: name.into(),
        tls: false,
    }
}

fn config() -> ClientConfig {
    ClientConfig {
        timeout: WAIT,
        ..ClientConfig::default()
    }
}

fn signal(server: &Server, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &server.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

fn wait_exit(server: &mut Server, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if !server.is_running() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Events until the connection closes (or `WAIT` passes).
async fn events_until_closed(client: &mut RtmpClient) -> (Vec<ClientEvent>, bool) {
    let mut events = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, client.next_event()).await {
            Ok(Ok(e)) => events.push(e),
            Ok(Err(e)) => return (events, e.is_disconnect()),
            Err(_) => return (events, false),
        }
    }
}

fn statuses(events: &[ClientEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Status(s) => Some(s.code.clone()),
            _ => None,
        })
        .collect()
}

/// SIGTERM with an ffmpeg publisher, an ffmpeg player and the project's player attached: the
/// players get UnpublishNotify and StreamEOF, the ffmpeg recording is complete and decodes,
/// and the process exits well before the drain deadline.
#[tokio::test]
async fn sigterm_drains_with_real_clients_attached() {
    if common::should_skip(
        "sigterm_drains_with_real_clients_attached",
        &["ffmpeg", "ffprobe"],
    ) {
        return;
    }
    let mut server = Server::reflector(&["--workers", "2"]);
    let clip = shared_clip();
    let rtmp = server.rtmp_url("live", "drain");
    let _publisher = publish(Publisher::Ffmpeg, clip, &rtmp, server.dir());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let recording = play(Player::Ffmpeg, &rtmp, server.dir(), Duration::from_secs(30));
    let mut player = RtmpClient::connect(&url(&server, "drain"), &config())
        .await
        .expect("connect");
    let id = player.create_stream().await.expect("createStream");
    player.play(id, "drain").await.expect("play");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    signal(&server, "TERM");
    let (events, closed) = events_until_closed(&mut player).await;
    let codes = statuses(&events);
    assert!(
        codes.iter().any(|c| c == "NetStream.Play.UnpublishNotify"),
        "no UnpublishNotify on drain: {codes:?}"
    );
    assert!(
        events.iter().any(|e| matches!(
            e,
            ClientEvent::UserControl(UserControlEvent::StreamEof { .. })
        )),
        "no StreamEOF on drain"
    );
    assert!(closed, "player connection not closed by the drain");
    let exit = wait_exit(&mut server, Duration::from_secs(8));
    assert!(
        exit.is_some(),
        "server did not exit after SIGTERM:\n{}",
        server.log_tail(30)
    );
    let rec = recording.finish();
    let verdict = common::verify_recording(&rec, clip);
    eprintln!("drain: server exited after {exit:?}; ffmpeg recording: {verdict}");
    verdict.assert_ok_with_at_least(25);
    let log = server.log();
    assert!(log.contains("draining"), "{}", server.log_tail(30));
    assert!(
        log.contains("drained: every connection closed"),
        "{}",
        server.log_tail(30)
    );
}

/// A client that announced Enhanced RTMP `capsEx` Reconnect gets
/// NetConnection.Connect.ReconnectRequest with the configured tcUrl when the server drains.
#[tokio::test]
async fn drain_sends_reconnect_request_to_clients_that_support_it() {
    let file = common::config_file(
        "[server]\ndrain_timeout_ms = 3000\ndrain_reconnect_url = \"rtmp://other.example/live\"\n",
    );
    let path = file.path().display().to_string();
    let mut server = Server::reflector(&["--workers", "1", "--config", &path]);
    let capable = ClientConfig {
        extra_connect_properties: vec![
            (
                "fourCcList".into(),
                Amf0Value::StrictArray(vec![Amf0Value::String("hvc1".into())]),
            ),
            ("capsEx".into(), Amf0Value::Number(1.0)),
        ],
        ..config()
    };
    let mut publisher = RtmpClient::connect(&url(&server, "r"), &capable)
        .await
        .expect("connect");
    let id = publisher.create_stream().await.expect("createStream");
    publisher.publish(id, "r").await.expect("publish");
    let synth = Synth::new(SynthConfig {
        stream_id: id,
        ..SynthConfig::default()
    });
    for m in synth.headers() {
        publisher.feed(&m);
    }
    publisher.flush().await.expect("headers");
    signal(&server, "TERM");
    let deadline = Instant::now() + WAIT;
    let mut request = None;
    while request.is_none() && Instant::now() < deadline {
        match tokio::time::timeout(WAIT, publisher.next_event()).await {
            Ok(Ok(ClientEvent::Status(s)))
                if s.code == "NetConnection.Connect.ReconnectRequest" =>
            {
                request = Some(s)
            }
            Ok(Ok(_)) => {}
            other => panic!("no reconnect request: {other:?}\n{}", server.log_tail(20)),
        }
    }
    let request = request.expect("reconnect request");
    eprintln!("reconnect request: {request:?}");
    // The client moves: it leaves, and the server exits before its deadline.
    drop(publisher);
    let exit = wait_exit(&mut server, Duration::from_secs(5));
    assert!(
        exit.is_some(),
        "server did not exit:\n{}",
        server.log_tail(20)
    );
    assert!(
        server.log().contains("rtmp://other.example/live"),
        "{}",
        server.log_tail(20)
    );
}

/// SIGHUP: authorization rules and log level change for new connections, established
/// streams carry on, an invalid file is refused and the running configuration kept.
#[tokio::test]
async fn sighup_reloads_rules_without_dropping_anyone() {
    let file = common::config_file("[auth]\npublish = \"open\"\n");
    let path = file.path().to_path_buf();
    let p = path.display().to_string();
    let server = Server::reflector(&["--workers", "2", "--config", &p]);
    let mut publisher = RtmpClient::connect(&url(&server, "a"), &config())
        .await
        .expect("connect");
    let id = publisher.create_stream().await.expect("createStream");
    publisher
        .publish(id, "a")
        .await
        .expect("publish before reload");
    let mut synth = Synth::new(SynthConfig {
        stream_id: id,
        ..SynthConfig::default()
    });
    for m in synth.headers() {
        publisher.feed(&m);
    }
    publisher.flush().await.expect("headers");
    // Publishing now needs a key; a worker count change needs a restart.
    std::fs::write(&path, "[auth]\npublish = \"key\"\npublish_keys = [\"k\"]\n[server]\nlog_format = \"json\"\nlog_level = \"debug\"\n").expect("rewrite");
    signal(&server, "HUP");
    server.wait_for_log("reload: applied", Duration::from_secs(10));
    let mut stranger = RtmpClient::connect(&url(&server, "b"), &config())
        .await
        .expect("connect");
    let sid = stranger.create_stream().await.expect("createStream");
    assert!(
        stranger.publish(sid, "b").await.is_err(),
        "reloaded rule not applied"
    );
    let mut keyed = RtmpClient::connect(&url(&server, "c?key=k"), &config())
        .await
        .expect("connect");
    let kid = keyed.create_stream().await.expect("createStream");
    keyed
        .publish(kid, "c?key=k")
        .await
        .expect("keyed publish after reload");
    // The established publisher is still up.
    let mut out = Vec::new();
    synth.next_tick(&mut out);
    for m in &out {
        publisher.feed(m);
    }
    publisher.flush().await.expect("established publisher kept");
    // An invalid file: refused, the running rules stay.
    std::fs::write(&path, "[auth]\npublish = \"sometimes\"\n").expect("rewrite");
    signal(&server, "HUP");
    server.wait_for_log("reload refused", Duration::from_secs(10));
    let mut again = RtmpClient::connect(&url(&server, "d"), &config())
        .await
        .expect("connect");
    let did = again.create_stream().await.expect("createStream");
    assert!(
        again.publish(did, "d").await.is_err(),
        "rules changed by an invalid reload"
    );
    let log = server.log();
    assert!(log.contains("reload: applied"), "{}", server.log_tail(30));
    assert!(log.contains("auth.publish"), "{}", server.log_tail(30));
    assert!(
        log.contains("take effect only at restart"),
        "{}",
        server.log_tail(30)
    );
    assert!(log.contains("reload refused"), "{}", server.log_tail(30));
    assert!(log.contains("DEBUG"), "log level not raised by the reload");
}

/// GET an admin path: (status, body), any status.
fn admin_get(admin: &str, path: &str) -> (u16, String) {
    match ureq::get(&format!("{admin}{path}"))
        .timeout(Duration::from_secs(5))
        .call()
    {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("GET {path}: {e}"),
    }
}

/// A server whose open-file limit is below `limits.max_connections` (as with systemd's 1024
/// against 20000; here a hard limit of 64): it raises the soft limit, warns at start-up naming
/// the figures, caps connections below the point where descriptors run out (so the admin port
/// still answers), logs refusals rate-limited instead of one line per connection, says so in
/// `/readyz` and the metrics, and recovers by itself once the connections are gone.
#[test]
fn a_low_open_file_limit_is_named_rate_limited_and_shown_in_readyz() {
    use std::os::unix::process::CommandExt;
    let port = common::free_port();
    let admin_port = common::free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let log_path = dir.path().join("reflector.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_reflector"));
    cmd.args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--admin-listen",
        &format!("127.0.0.1:{admin_port}"),
    ])
    .env("RUST_LOG", "info")
    .stdout(log.try_clone().expect("log"))
    .stderr(log);
    // SAFETY: setrlimit is async-signal-safe; the closure touches nothing else.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 32,
                rlim_max: 64,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    /// Ends the server when the test ends, passed or failed.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _child = Kill(cmd.spawn().expect("spawn reflector"));
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let deadline = Instant::now() + WAIT;
    while !read_log().contains("reflector listening") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let admin = format!("http://127.0.0.1:{admin_port}");
    let text = read_log();
    assert!(
        text.contains("raised the open-file limit to the hard limit from=32 to=64"),
        "{text}"
    );
    assert!(
        text.contains("below what limits.max_connections needs")
            && text.contains("open_file_limit=64")
            && text.contains("max_connections=20000"),
        "{text}"
    );
    let metrics = admin_get(&admin, "/metrics").1;
    let cap: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("reflector_connection_cap_by_open_files "))
        .and_then(|v| v.trim().parse().ok())
        .expect("connection_cap_by_open_files");
    assert!((1..64).contains(&cap), "{metrics}");
    assert_eq!(admin_get(&admin, "/readyz").0, 200);

    // 100 idle TCP connections against a limit of 64 descriptors.
    let sockets: Vec<_> = (0..100)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let (status, body) = admin_get(&admin, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("accept: full"), "{body}");
    let metrics = admin_get(&admin, "/metrics").1;
    let counter = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert_eq!(
        counter("reflector_connections_accepted_total "),
        cap,
        "{metrics}"
    );
    assert_eq!(
        counter("reflector_connections_refused_total "),
        100 - cap,
        "{metrics}"
    );
    assert_eq!(counter("reflector_accept_errors_total "), 0, "{metrics}");
    let text = read_log();
    let lines = text.matches("connection refused: limit reached").count();
    assert_eq!(
        lines,
        1,
        "{} refusals, one line per 10 s: {text}",
        100 - cap
    );
    assert!(text.contains("limit=\"the open-file limit\""), "{text}");

    // Free them: ready again, and a new connection is accepted.
    drop(sockets);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = (0, String::new());
    while Instant::now() < deadline {
        last = admin_get(&admin, "/readyz");
        if last.0 == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(last.0, 200, "ready again: {}", last.1);
    let _again = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    std::thread::sleep(Duration::from_millis(300));
    let metrics = admin_get(&admin, "/metrics").1;
    assert!(
        metrics.contains(&format!("reflector_connections_accepted_total {}", cap + 1)),
        "{metrics}"
    );
}
