//! The admin HTTP port against the real binary with real clients: the stats API sees a
//! published stream (codecs, resolution) and its players (counters move), a stalled player's
//! drops and lag rise, kicking and stopping work, `/metrics` is valid Prometheus/OpenMetrics
//! text, the bearer token is enforced, and a non-loopback admin address without a token
//! refuses to start.

use crate::common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::{play, publish, publish_looped, shared_clip, Player, Publisher, Server};
use reflector::protocol::amf0::Amf0Value;
use reflector::protocol::chunk::ChunkEncoder;
use reflector::protocol::handshake::{ClientHandshake, HandshakeState};
use reflector::protocol::message::Message;
use serde_json::Value;

/// `(status, body)` of an HTTP request, with an optional bearer token; anything but a GET
/// is sent as JSON, as the admin port requires.
fn http(method: &str, url: &str, token: Option<&str>) -> (u16, String) {
    let mut req = ureq::request(method, url).timeout(Duration::from_secs(10));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let sent = if method == "GET" {
        req.call()
    } else {
        req.set("Content-Type", "application/json")
            .send_string("{}")
    };
    match sent {
        Ok(resp) => (resp.status(), resp.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, resp)) => (code, resp.into_string().unwrap_or_default()),
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

fn get_json(url: &str, token: Option<&str>) -> Value {
    let (status, body) = http("GET", url, token);
    assert_eq!(status, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"))
}

/// Poll `f` every 200 ms until it returns `Some`, or panic after `timeout`.
fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(200));
    }
}

/// The stream whose key is `key`, if listed (by its id, the only way the API addresses one).
fn stream_json(server: &Server, key: &str) -> Option<Value> {
    let (app, name) = key.split_once('/').expect("app/name");
    let list = get_json(
        &format!(
            "{}/api/v1/streams?app={app}&name={name}",
            server.admin_url()
        ),
        None,
    );
    let id = list["streams"]
        .as_array()
        .and_then(|l| l.iter().find(|s| s["key"] == key))
        .and_then(|s| s["id"].as_u64())?;
    let (status, body) = http(
        "GET",
        &format!("{}/api/v1/streams/{id}", server.admin_url()),
        None,
    );
    (status == 200).then(|| serde_json::from_str(&body).expect("stream json"))
}

/// A config file in its own temp dir (kept alive by the returned guard).
fn config_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("reflector.toml");
    std::fs::write(&path, text).expect("write config");
    (dir, path)
}

/// Parse Prometheus / OpenMetrics text strictly enough to catch malformed output: every
/// sample belongs to a family declared by `# TYPE`, label sets are well formed, values are
/// numbers, and `# EOF` (OpenMetrics) comes last if present. Returns `name{labels}` → value.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut families: HashMap<String, String> = HashMap::new();
    let mut samples = HashMap::new();
    let mut eof = false;
    for line in text.lines() {
        assert!(!eof, "content after # EOF: {line:?}");
        if line == "# EOF" {
            eof = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap_or_default();
            let name = parts.next().expect("metadata names a family");
            assert!(valid_name(name), "bad family name {name:?}");
            match kind {
                "TYPE" => {
                    let t = parts.next().expect("TYPE has a type");
                    assert!(
                        [
                            "counter",
                            "gauge",
                            "histogram",
                            "summary",
                            "info",
                            "unknown",
                            "stateset",
                            "gaugehistogram"
                        ]
                        .contains(&t),
                        "bad type {t:?}"
                    );
                    families.insert(name.to_owned(), t.to_owned());
                }
                "HELP" | "UNIT" => {}
                other => panic!("unknown metadata {other:?}"),
            }
            continue;
        }
        assert!(!line.is_empty(), "empty line in exposition");
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|e| panic!("bad value in {line:?}: {e}"));
        let name = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').expect("labels close");
                for pair in split_labels(labels) {
                    let (k, v) = pair.split_once('=').expect("label has =");
                    assert!(valid_name(k), "bad label name {k:?}");
                    assert!(
                        v.starts_with('"') && v.ends_with('"') && v.len() >= 2,
                        "bad label value {v:?}"
                    );
                }
                name
            }
            None => series,
        };
        assert!(valid_name(name), "bad sample name {name:?}");
        let family = families
            .keys()
            .find(|f| {
                name == f.as_str()
                    || ["_total", "_created", "_bucket", "_count", "_sum", "_info"]
                        .iter()
                        .any(|s| name == format!("{f}{s}"))
            })
            .unwrap_or_else(|| panic!("sample {name} has no # TYPE"));
        if families[family] == "counter" {
            assert!(value >= 0.0, "negative counter {line}");
        }
        samples.insert(series.to_owned(), value);
    }
    samples
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn split_labels(labels: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in labels.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&labels[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < labels.len() {
        out.push(&labels[start..]);
    }
    out
}

/// A player written with the crate's protocol core that connects, plays, and then never
/// reads: the server's queue to it can only grow. Its receive buffer is made small before
/// connecting, so that the kernel does not absorb the whole (low bitrate) clip.
fn stalled_player(port: u16, app: &str, name: &str) -> TcpStream {
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    sock.connect(&addr.into()).expect("connect");
    let mut socket: TcpStream = sock.into();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut hs = ClientHandshake::new(true);
    let mut out = BytesMut::new();
    let mut input = BytesMut::new();
    hs.start(&mut out);
    loop {
        socket.write_all(&out).expect("write handshake");
        out.clear();
        if hs.process(&mut input, &mut out).expect("handshake") == HandshakeState::Done {
            socket.write_all(&out).expect("write C2");
            break;
        }
        let mut buf = [0u8; 4096];
        let n = socket.read(&mut buf).expect("read handshake");
        assert!(n > 0, "server closed during the handshake");
        input.extend_from_slice(&buf[..n]);
    }
    let s = |v: &str| Amf0Value::String(v.to_owned());
    let commands = [
        (
            0,
            vec![
                s("connect"),
                Amf0Value::Number(1.0),
                Amf0Value::Object(vec![
                    ("app".into(), s(app)),
                    ("flashVer".into(), s("stalled-test-player/1.0")),
                    ("tcUrl".into(), s(&format!("rtmp://127.0.0.1:{port}/{app}"))),
                ]),
            ],
        ),
        (
            0,
            vec![s("createStream"), Amf0Value::Number(2.0), Amf0Value::Null],
        ),
        (
            1,
            vec![s("play"), Amf0Value::Number(0.0), Amf0Value::Null, s(name)],
        ),
    ];
    let mut encoder = ChunkEncoder::new();
    let mut bytes = BytesMut::new();
    for (stream_id, values) in commands {
        let raw = Message::Command {
            amf3: false,
            values,
        }
        .to_raw(stream_id, 0)
        .expect("encode command");
        encoder.encode(3, &raw, &mut bytes);
    }
    socket.write_all(&bytes).expect("write commands");
    socket
}

#[test]
fn stream_codecs_players_and_counters() {
    skip_unless_have!("ffmpeg", "ffprobe");
    let server = Server::reflector(&["--workers", "2"]);
    let admin = server.admin_url();
    let url = server.rtmp_url("live", "cam");
    // The clip twice over (16 s) and a 6 s player: the checks below need the player still
    // attached after the sampler's first rates, and the stream still live when it leaves.
    let _publisher = publish_looped(shared_clip(), 2, &url, server.dir());

    let stream = wait_for("the stream with codecs", Duration::from_secs(10), || {
        stream_json(&server, "live/cam")
            .filter(|s| s["video"]["resolution"].is_string() && s["audio"]["codec"].is_string())
    });
    assert_eq!(stream["video"]["codec"], "H.264", "{stream}");
    assert_eq!(stream["video"]["resolution"], "320x240", "{stream}");
    assert_eq!(stream["audio"]["codec"], "AAC", "{stream}");
    assert_eq!(stream["live"], true);
    let publisher = &stream["publisher"];
    assert!(
        publisher["client"]
            .as_str()
            .is_some_and(|c| c.contains("Lavf")),
        "ffmpeg's flashVer: {publisher}"
    );
    assert!(publisher["peer"]
        .as_str()
        .is_some_and(|p| p.starts_with("127.0.0.1:")));

    let rec = play(Player::Ffmpeg, &url, server.dir(), Duration::from_secs(6));
    let first = wait_for("a subscriber with bytes", Duration::from_secs(10), || {
        stream_json(&server, "live/cam").filter(|s| {
            s["subscriber_count"] == 1 && s["subscribers"][0]["bytes_sent"].as_u64() > Some(0)
        })
    });
    // The sampler computes rates once a second over a window: wait until it has two samples
    // of this stream (a release build gets here within its first second).
    let later = wait_for(
        "bitrates and frame rate sampled",
        Duration::from_secs(10),
        || {
            stream_json(&server, "live/cam").filter(|s| {
                s["ingest_bps"].as_f64() > Some(0.0)
                    && s["egress_bps"].as_f64() > Some(0.0)
                    && s["video"]["fps"].as_f64() > Some(0.0)
            })
        },
    );
    sleep(Duration::from_millis(1500));
    let later = stream_json(&server, "live/cam").unwrap_or(later);
    let sub0 = &first["subscribers"][0];
    let sub1 = &later["subscribers"][0];
    assert!(
        sub1["bytes_sent"].as_u64() > sub0["bytes_sent"].as_u64(),
        "{sub0} -> {sub1}"
    );
    assert!(sub1["messages_sent"].as_u64() > sub0["messages_sent"].as_u64());
    assert!(later["bytes_in"].as_u64() > first["bytes_in"].as_u64());
    assert!(later["ingest_bps"].as_f64() > Some(10_000.0), "{later}");
    assert!(later["egress_bps"].as_f64() > Some(10_000.0), "{later}");
    let fps = later["video"]["fps"].as_f64().unwrap_or(0.0);
    assert!((20.0..=30.0).contains(&fps), "fps {fps}");
    assert!(later["gop_cache"]["frames"].as_u64() > Some(0), "{later}");

    let all = get_json(&format!("{admin}/api/v1/streams"), None);
    assert_eq!(all["count"], 1);
    let conns = get_json(&format!("{admin}/api/v1/connections"), None);
    let states: Vec<&str> = conns["connections"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["state"].as_str())
        .collect();
    assert!(
        states.contains(&"publishing") && states.contains(&"playing"),
        "{conns}"
    );
    for c in conns["connections"].as_array().expect("list") {
        assert_eq!(c["app"], "live");
        assert!(c["bytes_in"].as_u64() > Some(0) && c["bytes_out"].as_u64() > Some(0));
        assert!(c["idle_ms"].is_u64());
    }

    let actors = get_json(&format!("{admin}/api/v1/actors"), None);
    let counts = &actors["counts"];
    assert_eq!(counts["connections"], 2, "{actors}");
    assert_eq!(counts["publishing_streams"], 1);
    assert_eq!(counts["publishers"], 1);
    assert_eq!(counts["subscribers"], 1);
    assert_eq!(counts["registry"], 1);
    let list = actors["actors"].as_array().expect("actors");
    let sub = list
        .iter()
        .find(|a| a["kind"] == "subscriber")
        .expect("subscriber actor");
    assert_eq!(sub["mailbox_capacity"], 256);
    assert!(
        sub["mailbox_depth"].is_u64() && sub["handled"].as_u64() > Some(0),
        "{sub}"
    );
    for kind in ["connection", "publisher", "publishing_stream", "registry"] {
        assert!(
            list.iter().any(|a| a["kind"] == kind),
            "no {kind} in {actors}"
        );
    }

    let (status, text) = http("GET", &format!("{admin}/metrics"), None);
    assert_eq!(status, 200);
    let metrics = parse_metrics(&text);
    assert_eq!(metrics["reflector_connections"], 2.0, "{text}");
    assert_eq!(metrics["reflector_subscribers"], 1.0);
    assert_eq!(metrics["reflector_streams_live"], 1.0);
    assert!(metrics["reflector_sent_bytes_total"] > 0.0);
    assert!(metrics["reflector_received_bytes_total"] > 0.0);
    assert_eq!(
        metrics["reflector_stream_players{app=\"live\",name=\"cam\"}"],
        1.0
    );
    assert!(metrics["reflector_stream_received_bytes_total{app=\"live\",name=\"cam\"}"] > 0.0);
    assert_eq!(metrics["reflector_actors{kind=\"publisher\"}"], 1.0);

    // The player leaves by itself (ffmpeg -t): it moves to the gone ring with a reason.
    rec.finish();
    let gone = wait_for("the gone subscriber", Duration::from_secs(10), || {
        stream_json(&server, "live/cam")
            .filter(|s| s["subscriber_count"] == 0 && s["gone_subscribers"][0].is_object())
    });
    let g = &gone["gone_subscribers"][0];
    assert!(
        g["bytes_sent"].as_u64() > Some(0) && g["reason"].is_string(),
        "{g}"
    );
    assert!(gone["bytes_out"].as_u64() >= g["bytes_sent"].as_u64());
    let (status, _) = http("GET", &format!("{admin}/healthz"), None);
    assert_eq!(status, 200);
    let (status, body) = http("GET", &format!("{admin}/readyz"), None);
    assert_eq!(
        (status, body.trim()),
        (200, "ready\nredis: off\naccept: ok")
    );
}

/// A 2-worker server whose drop budgets (16 KiB) a stalled player passes within seconds, and
/// which keeps a lagging player for 2 minutes.
fn small_budget_server() -> (tempfile::TempDir, Server) {
    let (dir, cfg) = config_file(
        "[live]\ndrop_disposable_bytes = 16384\ndrop_video_bytes = 16384\n\
         drop_audio_bytes = 16384\nmax_lag_ms = 120000\n",
    );
    let cfg = cfg.display().to_string();
    (
        dir,
        Server::reflector(&["--workers", "2", "--config", &cfg]),
    )
}

/// ffmpeg publishing the clip looped at 20x real time (about 1 MB/s: enough to fill the
/// kernel's socket buffers, which autotune to megabytes on loopback, in a few seconds) to
/// `live/NAME`, once the stream is live.
fn fast_publish(server: &Server, name: &str) -> common::Proc {
    let publisher = common::publish_fast(&server.rtmp_url("live", name), server.dir());
    wait_for("the stream", Duration::from_secs(10), || {
        stream_json(server, &format!("live/{name}")).filter(|s| s["live"] == true)
    });
    publisher
}

#[test]
fn stalled_player_drops_and_lag_rise_then_kick_and_stop() {
    skip_unless_have!("ffmpeg", "ffprobe");
    let (_cfg_dir, server) = small_budget_server();
    let admin = server.admin_url();
    let mut publisher = fast_publish(&server, "cam");
    let _stalled = stalled_player(server.port(), "live", "cam");

    let mut last = None;
    let stream = wait_for(
        "drops and lag on the stalled player",
        Duration::from_secs(15),
        || {
            let s = stream_json(&server, "live/cam");
            if let Some(s) = &s {
                if last.as_ref() != Some(&s["subscribers"]) {
                    eprintln!("stalled player: {}", s["subscribers"]);
                }
                last = Some(s["subscribers"].clone());
            }
            s.filter(|s| {
                let sub = &s["subscribers"][0];
                sub["drops"]["total"].as_u64() > Some(0) && sub["lag_ms"].as_u64() > Some(1000)
            })
        },
    );
    let sub = stream["subscribers"][0].clone();
    assert!(sub["queued_bytes"].as_u64() >= Some(16384), "{sub}");
    assert_eq!(sub["client"], "stalled-test-player/1.0");
    let id = sub["connection"].as_u64().expect("connection id");
    sleep(Duration::from_millis(1000));
    let again = stream_json(&server, "live/cam").expect("stream");
    let sub2 = &again["subscribers"][0];
    assert!(
        sub2["drops"]["total"].as_u64() > sub["drops"]["total"].as_u64(),
        "drops rise: {sub} -> {sub2}"
    );
    assert!(
        sub2["lag_ms"].as_u64() > sub["lag_ms"].as_u64(),
        "lag rises: {sub} -> {sub2}"
    );
    let metrics = parse_metrics(&http("GET", &format!("{admin}/metrics"), None).1);
    let dropped: f64 = metrics
        .iter()
        .filter(|(k, _)| k.starts_with("reflector_subscriber_dropped_frames_total"))
        .map(|(_, v)| v)
        .sum();
    assert!(dropped > 0.0);
    assert!(metrics["reflector_subscriber_lag_max_seconds"] > 1.0);

    // Kick the stalled player: its connection goes, and it is remembered with the reason.
    let (status, body) = http("DELETE", &format!("{admin}/api/v1/connections/{id}"), None);
    assert_eq!(status, 200, "{body}");
    wait_for(
        "the kicked connection to go",
        Duration::from_secs(10),
        || {
            let (status, _) = http("GET", &format!("{admin}/api/v1/connections/{id}"), None);
            (status == 404).then_some(())
        },
    );
    let stream = wait_for(
        "the kicked subscriber in the gone ring",
        Duration::from_secs(10),
        || stream_json(&server, "live/cam").filter(|s| s["gone_subscribers"][0].is_object()),
    );
    assert_eq!(
        stream["gone_subscribers"][0]["reason"], "kicked by an operator",
        "{stream}"
    );
    assert!(server.log().contains("admin: connection kicked"));
    let (status, _) = http("DELETE", &format!("{admin}/api/v1/connections/{id}"), None);
    assert_eq!(status, 404);

    // Stop the publisher (by the stream's id): ffmpeg loses its connection and the stream is
    // no longer live.
    let stream_id = stream_json(&server, "live/cam").expect("stream")["id"]
        .as_u64()
        .expect("stream id");
    let stop = format!("{admin}/api/v1/streams/{stream_id}/stop");
    let (status, body) = http("POST", &stop, None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"key\":\"live/cam\""), "{body}");
    assert!(
        publisher.wait_timeout(Duration::from_secs(10)).is_some(),
        "ffmpeg publisher still running after its stream was stopped"
    );
    wait_for(
        "the stream to stop",
        Duration::from_secs(10),
        || match stream_json(&server, "live/cam") {
            None => Some(()),
            Some(s) => (s["live"] == false).then_some(()),
        },
    );
    assert!(server.log().contains("admin: publisher stopped"));
    let (status, _) = http("POST", &stop, None);
    assert_eq!(status, 404);
}

#[test]
fn bearer_token_is_enforced() {
    let (_cfg_dir, cfg) = config_file("[admin]\ntoken = \"s3cret-token\"\n");
    let cfg = cfg.display().to_string();
    let server = Server::reflector(&["--workers", "1", "--config", &cfg]);
    let admin = server.admin_url();
    // Probes stay open.
    assert_eq!(http("GET", &format!("{admin}/healthz"), None).0, 200);
    assert_eq!(http("GET", &format!("{admin}/readyz"), None).0, 200);
    for path in [
        "/metrics",
        "/api/v1/streams",
        "/api/v1/streams/1",
        "/api/v1/connections",
        "/api/v1/actors",
        "/api/v1/summary",
        "/api/v1/history",
    ] {
        let url = format!("{admin}{path}");
        assert_eq!(http("GET", &url, None).0, 401, "{path} without token");
        assert_eq!(
            http("GET", &url, Some("wrong")).0,
            401,
            "{path} wrong token"
        );
        let (status, _) = http("GET", &url, Some("s3cret-token"));
        assert!(
            status == 200 || status == 404,
            "{path} with token: {status}"
        );
    }
    for (method, path) in [
        ("DELETE", "/api/v1/connections/1"),
        ("POST", "/api/v1/streams/1/stop"),
        ("POST", "/api/v1/connections/1/reconnect"),
    ] {
        let url = format!("{admin}{path}");
        assert_eq!(http(method, &url, None).0, 401, "{method} {path}");
        assert_eq!(
            http(method, &url, Some("s3cret-token")).0,
            404,
            "{method} {path}"
        );
    }
    // The dashboard shell holds no data; it asks for the token.
    let (status, page) = http("GET", &format!("{admin}/"), None);
    assert_eq!(status, 200);
    assert!(page.contains("bearer token"));
}

#[test]
fn non_loopback_admin_without_token_refuses_to_start() {
    let exe = env!("CARGO_BIN_EXE_reflector");
    let start = Instant::now();
    let out = std::process::Command::new(exe)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "0.0.0.0:0"])
        .env_remove("REFLECTOR_ADMIN__TOKEN")
        .output()
        .expect("run reflector");
    assert!(!out.status.success(), "started without a token");
    assert!(start.elapsed() < Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("admin.token") && stderr.contains("loopback"),
        "unclear error: {stderr}"
    );
    // With the token from the environment the configuration is accepted.
    let out = std::process::Command::new(exe)
        .args(["--admin-listen", "0.0.0.0:0", "--print-config"])
        .env("REFLECTOR_ADMIN__TOKEN", "from-env")
        .output()
        .expect("run reflector");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("from-env"),
        "the token must not be printed"
    );
}

/// The admin action that moves a publisher: `POST /api/v1/connections/{id}/reconnect` sends a
/// client that announced Enhanced RTMP `capsEx` Reconnect a NetConnection.Connect.ReconnectRequest
/// with the given tcUrl (and closes a client that did not). Remote shared objects are listed in
/// `GET /api/v1/shared_objects`.
#[tokio::test]
async fn reconnect_action_and_shared_objects_in_the_api() {
    use reflector::client::{ClientConfig, ClientEvent, RtmpClient, RtmpUrl};
    use reflector::protocol::message::{SharedObjectEvent, SharedObjectMessage};

    let server = Server::reflector(&["--workers", "2"]);
    let admin = server.admin_url();
    let url = RtmpUrl {
        host: "127.0.0.1".into(),
        port: server.port(),
        app: "live".into(),
        stream: "moving".into(),
        tls: false,
    };
    let capable = ClientConfig {
        extra_connect_properties: vec![("capsEx".into(), Amf0Value::Number(1.0))],
        timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    };
    let mut publisher = RtmpClient::connect(&url, &capable).await.expect("connect");
    let id = publisher.create_stream().await.expect("createStream");
    publisher.publish(id, "moving").await.expect("publish");
    // A shared object used by the same client.
    publisher
        .send_shared_object(
            false,
            &SharedObjectMessage {
                name: "room".into(),
                version: 0,
                persistent: false,
                events: vec![SharedObjectEvent::Connect],
            },
        )
        .await
        .expect("use shared object");
    let conns = tokio::task::spawn_blocking({
        let admin = admin.clone();
        move || get_json(&format!("{admin}/api/v1/connections"), None)
    })
    .await
    .expect("join");
    let conn_id = conns["connections"]
        .as_array()
        .and_then(|list| list.iter().find(|c| c["state"] == "publishing"))
        .and_then(|c| c["id"].as_u64())
        .unwrap_or_else(|| panic!("publisher not listed: {conns}"));
    let sos = tokio::task::spawn_blocking({
        let admin = admin.clone();
        move || {
            wait_for("shared object listed", Duration::from_secs(5), || {
                let v = get_json(&format!("{admin}/api/v1/shared_objects"), None);
                (v["count"] == 1).then_some(v)
            })
        }
    })
    .await
    .expect("join");
    assert_eq!(sos["shared_objects"][0]["key"], "live/room", "{sos}");
    assert_eq!(sos["shared_objects"][0]["clients"], 1, "{sos}");
    let reply = tokio::task::spawn_blocking({
        let admin = admin.clone();
        move || {
            http(
                "POST",
                &format!("{admin}/api/v1/connections/{conn_id}/reconnect?tc_url=rtmp://other.example/live"),
                None,
            )
        }
    })
    .await
    .expect("join");
    assert_eq!(reply.0, 200, "{}", reply.1);
    assert!(
        reply.1.contains("\"reconnect_requested\":true"),
        "{}",
        reply.1
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = false;
    while !got && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), publisher.next_event()).await {
            Ok(Ok(ClientEvent::Status(s))) => {
                got = s.code == "NetConnection.Connect.ReconnectRequest"
            }
            Ok(Ok(_)) => {}
            other => panic!("no reconnect request: {other:?}"),
        }
    }
    assert!(got, "reconnect request not received");
    assert!(
        server.log().contains("admin: reconnect requested"),
        "{}",
        server.log_tail(20)
    );
}

/// A player that stops reading is logged once when it starts losing frames (with its lag and
/// queued bytes), not at every drop; once it reads again and goes 5 s of media without a
/// drop, once more that it caught up.
#[test]
fn a_slow_player_is_logged_when_it_falls_behind_and_when_it_catches_up() {
    skip_unless_have!("ffmpeg", "ffprobe");
    let (_cfg_dir, server) = small_budget_server();
    let publisher = fast_publish(&server, "slow");
    let mut stalled = stalled_player(server.port(), "live", "slow");
    // Stalled for real: drops, and a queue that no longer moves (the kernel's buffers are
    // full). Until then the socket still takes bursts, and at 20x real time 5 s of media
    // without a drop pass in a quarter of a second: it may fall behind and catch up before.
    let stream = wait_for("a stalled player", Duration::from_secs(20), || {
        stream_json(&server, "live/slow").filter(|s| {
            let sub = &s["subscribers"][0];
            sub["drops"]["total"].as_u64() > Some(50) && sub["lag_ms"].as_u64() > Some(1500)
        })
    });
    let id = stream["subscribers"][0]["connection"]
        .as_u64()
        .expect("connection id");
    // The falling-behind (true) and caught-up (false) lines of this player, in order.
    let edges = || -> Vec<(bool, String)> {
        server
            .plain_log()
            .lines()
            .filter(|l| l.contains(&format!("connection={id}")))
            .filter_map(|l| {
                if l.contains("player falling behind: dropping frames") {
                    Some((true, l.to_owned()))
                } else if l.contains("player caught up") {
                    Some((false, l.to_owned()))
                } else {
                    None
                }
            })
            .collect()
    };
    let alternate =
        |e: &[(bool, String)]| !e.is_empty() && e[0].0 && e.windows(2).all(|w| w[0].0 != w[1].0);
    let before = edges();
    assert!(
        alternate(&before),
        "one line per edge, not per drop: {before:#?}"
    );
    let (last_falling, line) = before.last().expect("a line");
    assert!(*last_falling, "stalled now: the last line says so: {line}");
    assert!(
        line.contains("lag_ms=") && line.contains("queued="),
        "{line}"
    );
    sleep(Duration::from_secs(1));
    assert_eq!(
        edges().len(),
        before.len(),
        "no line per drop while stalled"
    );

    // It reads again, as fast as it can.
    stalled
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            let mut total = 0_usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match stalled.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => total += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => break,
                }
            }
            total
        })
    };
    let after = wait_for("the caught-up line", Duration::from_secs(20), || {
        Some(edges()).filter(|e| e.len() > before.len())
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let read = reader.join().expect("reader");
    assert!(read > 100_000, "it read the stream again: {read} bytes");
    let (falling, caught_up) = &after[before.len()];
    assert!(!falling, "{caught_up}");
    let dropped: u64 = caught_up
        .split("dropped=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("dropped=N in the line");
    assert!(dropped > 0, "{caught_up}");
    let all = edges();
    assert!(alternate(&all), "lines alternate: {all:#?}");
    drop(publisher);
}

/// The per-core fan-out, counted from outside: with players spread over two workers, the
/// publisher sends each frame once per worker that has players (at most 2 messages per
/// frame), not once per player (8), and every player gets the frames.
#[tokio::test]
async fn each_frame_is_one_message_per_worker_with_players_not_per_player() {
    use reflector::client::{ClientConfig, ClientEvent, RtmpClient, RtmpUrl};
    if common::should_skip("per-core fan-out", &["ffmpeg"]) {
        return;
    }
    let server = Server::reflector(&["--workers", "2"]);
    let url = server.rtmp_url("live", "fan");
    let _publisher = publish(Publisher::Ffmpeg, shared_clip(), &url, server.dir());
    let rtmp = RtmpUrl {
        host: "127.0.0.1".into(),
        port: server.port(),
        app: "live".into(),
        stream: "fan".into(),
        tls: false,
    };
    let mut players = Vec::new();
    for _ in 0..8 {
        let rtmp = rtmp.clone();
        players.push(async move {
            let config = ClientConfig {
                timeout: Duration::from_secs(10),
                ..ClientConfig::default()
            };
            let mut client = RtmpClient::connect(&rtmp, &config).await.expect("connect");
            let id = client.create_stream().await.expect("createStream");
            client.play(id, "fan").await.expect("play");
            let mut media = 0_u32;
            let end = tokio::time::Instant::now() + Duration::from_secs(4);
            while let Ok(Ok(event)) = tokio::time::timeout_at(end, client.next_event()).await {
                if matches!(event, ClientEvent::Media(_)) {
                    media += 1;
                }
            }
            media
        });
    }
    let (received, stream) = tokio::join!(futures_util::future::join_all(players), async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        // A short blocking call: the players wait a moment on this thread.
        stream_json(&server, "live/fan").expect("the stream")
    });
    assert!(
        received.iter().all(|&m| m > 30),
        "every player got media: {received:?}"
    );
    assert_eq!(stream["subscriber_count"], 8, "{stream}");
    let fanout = &stream["fanout"];
    let frames = stream["messages_in"].as_u64().expect("messages_in");
    let messages = fanout["messages"].as_u64().expect("fanout.messages");
    assert_eq!(
        fanout["edges"], 2,
        "one edge per worker with players: {fanout}"
    );
    assert!(
        messages <= 2 * frames && messages >= frames / 2,
        "one message per worker per frame, not per player: {messages} for {frames} frames"
    );
    assert!(
        fanout["cross_thread_messages"].as_u64() <= Some(messages),
        "{fanout}"
    );
}
