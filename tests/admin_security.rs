//! The admin port against a web page on the operator's machine (issue #21): a cross-origin
//! form post, a DNS-rebinding page (foreign Host) and a stop aimed at a stream through a
//! look-alike name. Requests are written by hand so that Host, Origin and Content-Type are
//! exactly what a browser would send; publishers are the crate's RTMP client, which can
//! publish any name an attacker would choose.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::Server;
use reflector::client::{ClientConfig, ClientEvent, RtmpClient, RtmpUrl};
use reflector::protocol::amf0::Amf0Value;
use serde_json::Value;

fn admin_port(server: &Server) -> u16 {
    server
        .admin_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("admin port")
}

/// `(status, body)` of one HTTP/1.1 request with exactly these headers (no implicit Host).
fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).expect("connect admin");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        text += &format!("{k}: {v}\r\n");
    }
    text += "\r\n";
    text += body;
    socket.write_all(text.as_bytes()).expect("write request");
    let mut out = Vec::new();
    socket.read_to_end(&mut out).expect("read response");
    let out = String::from_utf8_lossy(&out).into_owned();
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {out:?}"));
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

fn get_json(port: u16, path: &str) -> Value {
    let host = format!("127.0.0.1:{port}");
    let (status, body) = request(port, "GET", path, &[("Host", &host)], "");
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// A JSON POST from the dashboard's own origin, as its script sends it.
fn same_origin_post(port: u16, path: &str, body: &str) -> (u16, String) {
    let host = format!("127.0.0.1:{port}");
    let origin = format!("http://{host}");
    request(
        port,
        "POST",
        path,
        &[
            ("Host", &host),
            ("Origin", &origin),
            ("Content-Type", "application/json"),
        ],
        body,
    )
}

/// `(what, method, path, headers, expected status)`.
type Attack<'a> = (&'a str, &'a str, &'a str, Vec<(&'a str, &'a str)>, u16);

fn client_config() -> ClientConfig {
    ClientConfig {
        // Announce E-RTMP reconnect support, so that a reconnect request is observable.
        extra_connect_properties: vec![("capsEx".into(), Amf0Value::Number(1.0))],
        timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    }
}

async fn publisher(server: &Server, app: &str, name: &str) -> Result<RtmpClient, String> {
    let url = RtmpUrl {
        host: "127.0.0.1".into(),
        port: server.port(),
        app: app.into(),
        stream: name.into(),
        tls: false,
    };
    let mut client = RtmpClient::connect(&url, &client_config())
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let id = client
        .create_stream()
        .await
        .map_err(|e| format!("createStream: {e}"))?;
    client
        .publish(id, name)
        .await
        .map_err(|e| format!("publish: {e}"))?;
    Ok(client)
}

#[tokio::test]
async fn cross_origin_form_post_is_refused_and_the_connection_stays_up() {
    let server = Server::reflector(&["--workers", "1"]);
    let port = admin_port(&server);
    let mut client = publisher(&server, "live", "cam").await.expect("publish");
    let conns = get_json(port, "/api/v1/connections");
    let id = conns["connections"][0]["id"]
        .as_u64()
        .expect("connection id");
    assert_eq!(conns["count"], 1, "{conns}");
    let ours = format!("127.0.0.1:{port}");
    let rebound = format!("evil.example:{port}");
    let rebound_origin = format!("http://{rebound}");
    let reconnect = format!("/api/v1/connections/{id}/reconnect");
    let kick = format!("/api/v1/connections/{id}");
    let form = "application/x-www-form-urlencoded";
    let attacks: Vec<Attack> = vec![
        (
            "cross-origin form post",
            "POST",
            &reconnect,
            vec![
                ("Host", &ours),
                ("Origin", "http://evil.example"),
                ("Content-Type", form),
            ],
            403,
        ),
        (
            "cross-origin text/plain fetch",
            "POST",
            &reconnect,
            vec![
                ("Host", &ours),
                ("Origin", "http://evil.example"),
                ("Content-Type", "text/plain"),
            ],
            403,
        ),
        (
            "cross-origin JSON (after a preflight we never grant)",
            "DELETE",
            &kick,
            vec![
                ("Host", &ours),
                ("Origin", "http://evil.example"),
                ("Content-Type", "application/json"),
            ],
            403,
        ),
        (
            "opaque origin (sandboxed frame)",
            "POST",
            &reconnect,
            vec![
                ("Host", &ours),
                ("Origin", "null"),
                ("Content-Type", "application/json"),
            ],
            403,
        ),
        (
            "form post without Origin",
            "POST",
            &reconnect,
            vec![("Host", &ours), ("Content-Type", form)],
            415,
        ),
        (
            "no content type",
            "DELETE",
            &kick,
            vec![("Host", &ours)],
            415,
        ),
        (
            "DNS-rebinding page (same origin to the browser)",
            "POST",
            &reconnect,
            vec![
                ("Host", &rebound),
                ("Origin", &rebound_origin),
                ("Content-Type", "application/json"),
            ],
            421,
        ),
        (
            "DNS-rebinding read",
            "GET",
            "/api/v1/connections",
            vec![("Host", &rebound)],
            421,
        ),
        (
            "cross-origin read",
            "GET",
            "/api/v1/connections",
            vec![("Host", &ours), ("Origin", "http://evil.example")],
            403,
        ),
    ];
    for (what, method, path, headers, want) in &attacks {
        let (status, body) = request(port, method, path, headers, "a=1");
        assert_eq!(status, *want, "{what}: {body}");
        assert!(
            body.contains("\"error\""),
            "{what}: no reason given: {body}"
        );
    }
    // Nothing reached the client for a second and a half: no reconnect request, no close.
    let quiet_until = tokio::time::Instant::now() + Duration::from_millis(1500);
    loop {
        match tokio::time::timeout_at(quiet_until, client.next_event()).await {
            Err(_) => break,
            Ok(Ok(ClientEvent::Status(s))) if s.code.contains("Reconnect") => {
                panic!("a refused request reached the client: {s:?}")
            }
            // Replies to the publish itself (queued Publish.Start, onBWDone...).
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("the publisher lost its connection: {e}"),
        }
    }
    let conns = get_json(port, "/api/v1/connections");
    assert_eq!(conns["connections"][0]["id"], id, "{conns}");
    assert_eq!(conns["connections"][0]["state"], "publishing", "{conns}");
    let log = server.log();
    assert!(
        !log.contains("admin: reconnect requested") && !log.contains("admin: connection kicked")
    );
    let refused = log.matches("admin: request refused").count();
    assert_eq!(refused, attacks.len(), "{}", server.log_tail(20));
    assert!(
        log.contains(r#"origin=Some("http://evil.example")"#),
        "{}",
        server.log_tail(20)
    );

    // The same action as the dashboard sends it: JSON, from its own origin.
    let (status, body) = same_origin_post(
        port,
        &reconnect,
        r#"{"tc_url":"rtmp://other.example/live"}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"reconnect_requested\":true"), "{body}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout(Duration::from_secs(5), client.next_event()).await {
            Ok(Ok(ClientEvent::Status(s)))
                if s.code == "NetConnection.Connect.ReconnectRequest" =>
            {
                break
            }
            Ok(Ok(_)) if Instant::now() < deadline => {}
            other => panic!("no reconnect request: {other:?}"),
        }
    }
    eprintln!(
        "{} attacks refused ({refused} logged), connection {id} kept; JSON POST answered",
        attacks.len()
    );
}

#[test]
fn foreign_host_is_refused_without_a_token_and_answered_with_one() {
    let open = Server::reflector(&["--workers", "1", "--admin-allowed-host", "admin.example"]);
    let port = admin_port(&open);
    let with_port = |h: &str| format!("{h}:{port}");
    let mut refused = 0;
    for host in [
        with_port("evil.example"),
        "evil.example".into(),
        with_port("localhost.evil.example"),
        with_port("127.0.0.1.nip.io"),
        with_port("10.1.2.3"),
    ] {
        for path in ["/api/v1/streams", "/metrics", "/", "/assets/app.js"] {
            let (status, body) = request(port, "GET", path, &[("Host", &host)], "");
            assert_eq!(status, 421, "Host {host} {path}: {body}");
            assert!(body.contains("admin.allowed_hosts"), "{body}");
            refused += 1;
        }
        // Probes answer any Host: they say ready or not, nothing more.
        for path in ["/healthz", "/readyz"] {
            assert_eq!(request(port, "GET", path, &[("Host", &host)], "").0, 200);
        }
    }
    // No Host at all (no browser sends that) is refused too (by HTTP/1.1 itself).
    let status = request(port, "GET", "/api/v1/streams", &[], "").0;
    assert!(status == 400 || status == 421, "{status}");
    for host in [
        with_port("localhost"),
        with_port("127.0.0.1"),
        with_port("[::1]"),
        "localhost".into(),
        with_port("admin.example"),
        with_port("ADMIN.example"),
    ] {
        let (status, body) = request(port, "GET", "/api/v1/streams", &[("Host", &host)], "");
        assert_eq!(status, 200, "Host {host}: {body}");
    }

    let (_dir, cfg) = {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("reflector.toml");
        std::fs::write(&path, "[admin]\ntoken = \"s3cret\"\n").expect("config");
        (dir, path)
    };
    let cfg = cfg.display().to_string();
    let guarded = Server::reflector(&["--workers", "1", "--config", &cfg]);
    let port = admin_port(&guarded);
    let host = format!("evil.example:{port}");
    let bearer = ("Authorization", "Bearer s3cret");
    let (status, body) = request(
        port,
        "GET",
        "/api/v1/streams",
        &[("Host", &host), bearer],
        "",
    );
    assert_eq!(status, 200, "with the token any Host is answered: {body}");
    assert_eq!(
        request(port, "GET", "/api/v1/streams", &[("Host", &host)], "").0,
        401
    );
    // The token does not lift the Origin and content-type rules.
    let path = "/api/v1/connections/1/reconnect";
    let json = ("Content-Type", "application/json");
    let (status, _) = request(
        port,
        "POST",
        path,
        &[
            ("Host", &host),
            ("Origin", "http://evil.example"),
            json,
            bearer,
        ],
        "",
    );
    assert_eq!(status, 403);
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    assert_eq!(
        request(port, "POST", path, &[("Host", &host), form, bearer], "a=1").0,
        415
    );
    let (status, body) = request(port, "POST", path, &[("Host", &host), json, bearer], "");
    assert_eq!(status, 404, "passes the guard, no such connection: {body}");
    eprintln!("{refused} foreign-Host requests refused without a token");
}

#[test]
fn a_flood_of_refused_requests_writes_a_bounded_log() {
    let server = Server::reflector(&["--workers", "1"]);
    let port = admin_port(&server);
    let evil = format!("evil.example:{port}");
    for _ in 0..300 {
        let (status, _) = request(port, "GET", "/api/v1/streams", &[("Host", &evil)], "");
        assert_eq!(status, 421);
    }
    // Every one was refused; the admin port still answers its own.
    let ours = format!("localhost:{port}");
    assert_eq!(
        request(port, "GET", "/api/v1/streams", &[("Host", &ours)], "").0,
        200
    );
    sleep(Duration::from_millis(300));
    let log = server.log();
    let lines = log.matches("admin: request refused").count();
    assert_eq!(
        lines,
        20,
        "at most 20 lines in 10 s: {}",
        server.log_tail(5)
    );
    assert!(log.contains("left_out=0"), "{}", server.log_tail(5));
}

/// Streams named so that a URL path built from the name would reach `openapp/cam`, or that
/// look like it. Some of these the RTMP side may refuse (`%`, `#`, `..`); the test uses those
/// it accepts.
const LOOK_ALIKES: &[(&str, &str)] = &[
    ("openapp", "c%61m"),
    ("openapp", "cam#x"),
    ("zz", "%2e%2e/openapp/cam"),
    ("openapp", "cam/."),
    ("openapp", "CAM"),
    ("openapp", "c\u{430}m"),
    ("openapp", "cam_"),
];

fn live_streams(port: u16) -> Vec<(u64, String, u64)> {
    get_json(port, "/api/v1/streams")["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter(|s| s["live"] == true)
        .map(|s| {
            (
                s["id"].as_u64().expect("id"),
                s["key"].as_str().expect("key").to_owned(),
                s["publisher"]["connection"].as_u64().expect("publisher"),
            )
        })
        .collect()
}

#[tokio::test]
async fn stop_by_id_stops_exactly_that_stream() {
    let server = Server::reflector(&["--workers", "2"]);
    let port = admin_port(&server);
    let mut clients = vec![publisher(&server, "openapp", "cam").await.expect("victim")];
    let mut published = vec!["openapp/cam".to_owned()];
    for (app, name) in LOOK_ALIKES {
        match publisher(&server, app, name).await {
            Ok(c) => {
                clients.push(c);
                published.push(format!("{app}/{name}"));
            }
            Err(e) => eprintln!("the RTMP side refused {app:?} {name:?}: {e}"),
        }
    }
    assert!(
        published.len() >= 4,
        "too few look-alikes published: {published:?}"
    );
    let before = live_streams(port);
    let mut keys: Vec<&str> = before.iter().map(|(_, k, _)| k.as_str()).collect();
    keys.sort();
    let mut want: Vec<&str> = published.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(keys, want, "every stream listed once");

    // A name in the path addresses nothing.
    let (status, body) = same_origin_post(port, "/api/v1/streams/openapp/cam/stop", "{}");
    assert_eq!(status, 404, "{body}");
    assert_eq!(live_streams(port), before);

    // Stop every look-alike by id, then the victim; after each stop, exactly that stream is
    // gone and every other keeps its publisher.
    let victim = before
        .iter()
        .find(|(_, k, _)| k == "openapp/cam")
        .cloned()
        .expect("victim");
    let mut order: Vec<_> = before.iter().filter(|s| s.1 != victim.1).cloned().collect();
    order.push(victim);
    let mut remaining = before.clone();
    for (id, key, _) in &order {
        let (status, body) = same_origin_post(port, &format!("/api/v1/streams/{id}/stop"), "{}");
        assert_eq!(status, 200, "stop {key:?}: {body}");
        let reply: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(reply["key"], key.as_str(), "{body}");
        assert_eq!(reply["stopped"], *id, "{body}");
        remaining.retain(|s| s.0 != *id);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = live_streams(port);
            if now == remaining {
                break;
            }
            assert!(
                now.iter().all(|s| s.0 != *id) || Instant::now() < deadline,
                "{key:?} still live: {now:?}"
            );
            for s in &remaining {
                assert!(now.contains(s), "stopping {key:?} hit {s:?}: {now:?}");
            }
            assert!(Instant::now() < deadline, "{now:?} != {remaining:?}");
            sleep(Duration::from_millis(100));
        }
    }
    assert!(live_streams(port).is_empty());
    let stopped = server.log().matches("admin: publisher stopped").count();
    assert_eq!(stopped, published.len());
    eprintln!(
        "{} streams ({} look-alikes of openapp/cam) each stopped by id, none other touched",
        published.len(),
        published.len() - 1
    );
}

/// SIGHUP applies a new `admin.token` from the file at once: the old token stops working,
/// the new one works; the reload's log line names the key, never the value. Allowed hosts
/// reload too; the sampler's sizes are restart-only and said to be.
#[test]
fn sighup_rotates_the_admin_token_and_allowed_hosts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("reflector.toml");
    std::fs::write(&path, "[admin]\ntoken = \"old-t0ken\"\n").expect("config");
    let cfg = path.display().to_string();
    let server = Server::reflector(&["--workers", "1", "--config", &cfg]);
    let port = admin_port(&server);
    let host = format!("127.0.0.1:{port}");
    let with = |token: &str| {
        let bearer = format!("Bearer {token}");
        request(
            port,
            "GET",
            "/api/v1/streams",
            &[("Host", &host), ("Authorization", &bearer)],
            "",
        )
        .0
    };
    assert_eq!(with("old-t0ken"), 200);
    assert_eq!(with("new-t0ken"), 401);

    std::fs::write(
        &path,
        "[admin]\ntoken = \"new-t0ken\"\nhistory_seconds = 30\n",
    )
    .expect("rewrite");
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("kill");
    assert!(hup.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while with("new-t0ken") != 200 {
        assert!(
            Instant::now() < deadline,
            "new token not applied:\n{}",
            server.log_tail(20)
        );
        sleep(Duration::from_millis(50));
    }
    assert_eq!(with("old-t0ken"), 401, "the old token still works");
    let log = server.plain_log();
    let applied = log
        .lines()
        .find(|l| l.contains("reload: applied"))
        .unwrap_or_else(|| panic!("no reload line:\n{}", server.log_tail(20)));
    assert!(applied.contains("admin.token"), "{applied}");
    assert!(!log.contains("new-t0ken"), "the token was logged");
    let restart = log
        .lines()
        .find(|l| l.contains("take effect only at restart"))
        .unwrap_or_else(|| panic!("no restart-only line:\n{}", server.log_tail(20)));
    assert!(restart.contains("admin.history_seconds"), "{restart}");

    // Without a token, the allowed hosts guard the port; a reload adds one.
    std::fs::write(&path, "[admin]\nallowed_hosts = [\"admin.example\"]\n").expect("rewrite");
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("kill");
    assert!(hup.success());
    let named = format!("admin.example:{port}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while request(port, "GET", "/api/v1/streams", &[("Host", &named)], "").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "allowed host not applied:\n{}",
            server.log_tail(20)
        );
        sleep(Duration::from_millis(50));
    }
    let other = format!("evil.example:{port}");
    assert_eq!(
        request(port, "GET", "/api/v1/streams", &[("Host", &other)], "").0,
        421
    );
}
