//! HTTP-FLV and WebSocket-FLV players: ffmpeg plays `http://…/live/x.flv` frame-exact against
//! the source, a WebSocket client (written here, RFC 6455) gets the same FLV frame-exact, as
//! late joiners (the GOP cache gives them a keyframe first). The answers around it: 404, 405,
//! HEAD, the CORS preflight, key auth, the wait for a publisher and its end in a 404, the
//! admin API and metrics naming the protocol, the drain ending the body cleanly, a player
//! across a republish, the subscriber and per-IP limits, WebSocket origins.

use crate::common;

use common::{
    play, publish, reflector_http_with_config, shared_clip, verify_recording, CallbackServer,
    Player, Proc, Publisher, Reply, Server,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread::sleep;
use std::time::{Duration, Instant};

const JOIN_DELAY: Duration = Duration::from_millis(1500);
const RECORD: Duration = Duration::from_secs(4);
const MIN_FRAMES: usize = 50;

fn http_port(server: &Server) -> u16 {
    server.http_port().expect("http listener")
}

/// One raw request; the answer's head (status line and headers) and as much body as came
/// within `wait`.
fn request(port: u16, raw: &str, wait: Duration) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.write_all(raw.as_bytes()).expect("send");
    let mut got = Vec::new();
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 16384];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(got.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&got[..end]).into_owned();
    (head, got[end..].to_vec())
}

fn status(head: &str) -> u16 {
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Undo HTTP/1.1 chunked coding; `None` if a chunk is malformed. An unfinished last chunk
/// is left out.
fn dechunk(mut body: &[u8]) -> Option<(Vec<u8>, bool)> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") else {
            return Some((out, false));
        };
        let size = usize::from_str_radix(std::str::from_utf8(&body[..line_end]).ok()?, 16).ok()?;
        let start = line_end + 2;
        if size == 0 {
            return Some((out, true));
        }
        if body.len() < start + size + 2 {
            return Some((out, false));
        }
        if &body[start + size..start + size + 2] != b"\r\n" {
            return None;
        }
        out.extend_from_slice(&body[start..start + size]);
        body = &body[start + size + 2..];
    }
}

fn get_text(url: &str) -> String {
    ureq::get(url)
        .call()
        .expect("admin GET")
        .into_string()
        .expect("body")
}

fn start_publisher(server: &Server, name: &str) -> Proc {
    let p = publish(
        Publisher::Ffmpeg,
        shared_clip(),
        &server.rtmp_url("live", name),
        server.dir(),
    );
    sleep(JOIN_DELAY);
    p
}

/// ffmpeg plays the stream over HTTP-FLV, joining late: every frame it decodes matches the
/// source's, from a keyframe on.
#[test]
fn ffmpeg_plays_http_flv_frame_exact() {
    if common::should_skip("ffmpeg_plays_http_flv_frame_exact", &["ffmpeg", "ffprobe"]) {
        return;
    }
    let server = Server::reflector_http(&["--workers", "2"]);
    let _publisher = start_publisher(&server, "x");
    let rec = play(
        Player::Ffmpeg,
        &server.http_url("live", "x"),
        server.dir(),
        RECORD,
    );
    let out = rec.finish();
    let verdict = verify_recording(&out, shared_clip());
    println!("ffmpeg over HTTP-FLV: {verdict}");
    verdict.assert_ok_with_at_least(MIN_FRAMES);
}

/// A WebSocket client (masked frames, RFC 6455) gets the same FLV in binary messages,
/// frame-exact; its Close is answered with a Close.
#[test]
fn websocket_client_gets_the_stream_frame_exact() {
    if common::should_skip(
        "websocket_client_gets_the_stream_frame_exact",
        &["ffmpeg", "ffprobe"],
    ) {
        return;
    }
    let server = Server::reflector_http(&["--workers", "2"]);
    let _publisher = start_publisher(&server, "ws");
    let mut s = TcpStream::connect(("127.0.0.1", http_port(&server))).expect("connect");
    s.write_all(
        b"GET /live/ws.flv HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + RECORD;
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline {
        if let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
    }
    let end = got.windows(4).position(|w| w == b"\r\n\r\n").expect("101") + 4;
    let head = String::from_utf8_lossy(&got[..end]).into_owned();
    assert_eq!(status(&head), 101, "{head}");
    assert_eq!(
        header(&head, "sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    // Unframe: every message is one binary frame from the server (unmasked, FIN).
    let mut flv = Vec::new();
    let mut rest = &got[end..];
    let mut messages = 0;
    while rest.len() >= 2 {
        assert_eq!(rest[0], 0x82, "a FIN binary frame");
        assert_eq!(rest[1] & 0x80, 0, "server frames are not masked");
        let (len, at) = match rest[1] & 0x7f {
            126 if rest.len() >= 4 => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
            127 if rest.len() >= 10 => (
                u64::from_be_bytes(rest[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n if n < 126 => (n as usize, 2),
            _ => break,
        };
        if rest.len() < at + len {
            break;
        }
        flv.extend_from_slice(&rest[at..at + len]);
        rest = &rest[at + len..];
        messages += 1;
    }
    assert!(
        flv.starts_with(b"FLV\x01\x05"),
        "an FLV header with audio and video"
    );
    let path = server.dir().join("ws.flv");
    std::fs::write(&path, &flv).unwrap();
    let verdict = verify_recording(&path, shared_clip());
    println!("WebSocket-FLV: {messages} messages, {verdict}");
    verdict.assert_ok_with_at_least(MIN_FRAMES);
    // A masked Close (code 1000) is echoed.
    s.write_all(&[0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2])
        .unwrap();
    let close = read_until_closed(&mut s);
    assert!(
        close
            .windows(4)
            .any(|w| w[0] == 0x88 && w[2] == 0x03 && w[3] == 0xe8),
        "the server echoes Close 1000"
    );
}

fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
    got
}

/// The answers around playing: unknown paths, methods, HEAD, the preflight, chunked FLV with
/// CORS, a not-published stream with and without the wait.
#[test]
fn answers_follow_http() {
    let (server, _config) = reflector_http_with_config(
        "[http]\nwait_for_publisher = false\n\n[auth.apps.priv]\npublish = \"open\"\nplay = \"key\"\nplay_keys = [\"v13w\"]\n",
    );
    let port = http_port(&server);
    let wait = Duration::from_millis(800);
    let (h, body) = request(port, "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n", wait);
    assert_eq!(status(&h), 404, "{h}");
    assert!(String::from_utf8_lossy(&body).contains("/APP/NAME.flv"));
    let (h, _) = request(
        port,
        "POST /live/x.flv HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        wait,
    );
    assert_eq!(status(&h), 405, "{h}");
    assert_eq!(header(&h, "allow"), Some("GET, HEAD, OPTIONS"));
    let (h, _) = request(port, "GET /live/none.flv HTTP/1.1\r\nHost: x\r\n\r\n", wait);
    assert_eq!(status(&h), 404, "not published, no wait: {h}");
    assert_eq!(header(&h, "access-control-allow-origin"), Some("*"));
    let (h, _) = request(
        port,
        "OPTIONS /live/x.flv HTTP/1.1\r\nHost: x\r\nOrigin: http://page\r\nAccess-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: range\r\n\r\n",
        wait,
    );
    assert_eq!(status(&h), 204, "{h}");
    assert_eq!(
        header(&h, "access-control-allow-methods"),
        Some("GET, HEAD, OPTIONS")
    );
    assert_eq!(header(&h, "access-control-allow-headers"), Some("range"));

    let _publisher = start_publisher(&server, "x");
    let (h, body) = request(port, "HEAD /live/x.flv HTTP/1.1\r\nHost: x\r\n\r\n", wait);
    assert_eq!(status(&h), 200, "{h}");
    assert_eq!(header(&h, "content-type"), Some("video/x-flv"));
    assert!(body.is_empty(), "HEAD has no body");
    let (h, body) = request(
        port,
        "GET /live/x.flv HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(2),
    );
    assert_eq!(status(&h), 200, "{h}");
    assert_eq!(header(&h, "transfer-encoding"), Some("chunked"));
    assert_eq!(header(&h, "access-control-allow-origin"), Some("*"));
    let (flv, _) = dechunk(&body).expect("well-formed chunks");
    assert!(
        flv.starts_with(b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00"),
        "FLV header first"
    );
    // The first tag is metadata (script, 18) and the first video tag a keyframe.
    assert_eq!(flv[13], 18, "onMetaData first");
    let first_video = first_tag_of(&flv[13..], 9).expect("a video tag");
    assert_eq!(first_video >> 4, 1, "the first video tag is a keyframe");
    // HTTP/1.0 gets the body until close, no chunks.
    let (h, body) = request(
        port,
        "GET /live/x.flv HTTP/1.0\r\n\r\n",
        Duration::from_secs(1),
    );
    assert_eq!(status(&h), 200, "{h}");
    assert_eq!(header(&h, "transfer-encoding"), None);
    assert!(body.starts_with(b"FLV\x01"));

    // Key auth, as for RTMP play: without the key 403, with it 200.
    let _p2 = publish(
        Publisher::Ffmpeg,
        shared_clip(),
        &server.rtmp_url("priv", "cam"),
        server.dir(),
    );
    sleep(JOIN_DELAY);
    let (h, body) = request(port, "GET /priv/cam.flv HTTP/1.1\r\nHost: x\r\n\r\n", wait);
    assert_eq!(status(&h), 403, "{h}");
    assert!(String::from_utf8_lossy(&body).contains("not authorized"));
    let (h, _) = request(
        port,
        "GET /priv/cam.flv?key=v13w HTTP/1.1\r\nHost: x\r\n\r\n",
        wait,
    );
    assert_eq!(status(&h), 200, "{h}");
    let log = server.plain_log();
    assert!(log.contains("not authorized"), "the refusal is logged");
}

/// The first FLV tag of `type_id` in `tags`: its first body byte.
fn first_tag_of(mut tags: &[u8], type_id: u8) -> Option<u8> {
    while tags.len() >= 11 {
        let size = u32::from_be_bytes([0, tags[1], tags[2], tags[3]]) as usize;
        if tags.len() < 11 + size + 4 {
            return None;
        }
        if tags[0] & 0x1f == type_id {
            return tags.get(11).copied();
        }
        tags = &tags[11 + size + 4..];
    }
    None
}

/// A player waiting for a publisher gets its answer when one starts; one that waits longer
/// than `live.play_wait_ms` gets a 404.
#[test]
fn waiting_players_start_with_the_publisher_or_get_a_404() {
    // Made (or read from the cache) before the wait starts: a first call encodes it.
    let clip = shared_clip();
    let (server, _config) = reflector_http_with_config("[live]\nplay_wait_ms = 4000\n");
    let port = http_port(&server);
    let waiting = std::thread::spawn(move || {
        request(
            port,
            "GET /live/late.flv HTTP/1.1\r\nHost: x\r\n\r\n",
            Duration::from_secs(5),
        )
    });
    sleep(Duration::from_millis(500));
    let _publisher = publish(
        Publisher::Ffmpeg,
        clip,
        &server.rtmp_url("live", "late"),
        server.dir(),
    );
    let asked = Instant::now();
    let (h, _) = request(
        port,
        "GET /live/never.flv HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(6),
    );
    assert_eq!(status(&h), 404, "{h}");
    assert!(
        asked.elapsed() >= Duration::from_millis(3900),
        "the 404 comes after the wait"
    );
    let (h, body) = waiting.join().unwrap();
    assert_eq!(
        status(&h),
        200,
        "the waiting player starts with the publisher: {h}"
    );
    let (flv, _) = dechunk(&body).expect("chunks");
    assert!(flv.starts_with(b"FLV\x01"));
    assert!(first_tag_of(&flv[13..], 9).is_some(), "video came");
}

/// HTTP players are in the admin API and metrics with their protocol, and a drain ends their
/// bodies cleanly (the last chunk; a WebSocket Close 1001).
#[test]
fn http_players_are_counted_and_drained() {
    let server = Server::reflector_http(&["--workers", "2"]);
    let port = http_port(&server);
    let mut publisher = start_publisher(&server, "m");
    let mut http = TcpStream::connect(("127.0.0.1", port)).unwrap();
    http.write_all(b"GET /live/m.flv HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut ws = TcpStream::connect(("127.0.0.1", port)).unwrap();
    ws.write_all(
        b"GET /live/m.flv HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    for s in [&http, &ws] {
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
    }
    sleep(Duration::from_millis(1500));
    let metrics = get_text(&format!("{}/metrics", server.admin_url()));
    for protocol in ["http-flv", "ws-flv"] {
        let line = format!("reflector_players{{protocol=\"{protocol}\"}} 1");
        assert!(metrics.contains(&line), "{line} in:\n{metrics}");
    }
    let connections = get_text(&format!("{}/api/v1/connections", server.admin_url()));
    assert!(
        connections.contains("\"protocol\":\"http-flv\""),
        "{connections}"
    );
    assert!(
        connections.contains("\"protocol\":\"ws-flv\""),
        "{connections}"
    );
    // Drain: SIGTERM to the server.
    let pid = server.pid().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let http_bytes = read_until_closed(&mut http);
    let ws_bytes = read_until_closed(&mut ws);
    assert!(
        http_bytes.ends_with(b"0\r\n\r\n"),
        "the body ends with the last chunk"
    );
    assert!(
        ws_bytes
            .windows(4)
            .any(|w| w[0] == 0x88 && w[2] == 0x03 && w[3] == 0xe9),
        "a WebSocket Close (1001) ends the stream"
    );
    let _ = publisher.try_wait();
}

/// A browser tab that stops reading (a small receive buffer, never read) is an HTTP player
/// like any other: the delivery gate drops for it alone, it is logged once as falling behind,
/// and cut off at `live.max_lag_ms`; a healthy HTTP player of the same stream keeps getting
/// the stream without a pause; the per-stream player limit answers 503 naming it.
#[test]
fn a_stalled_http_player_is_cut_off_and_others_carry_on() {
    if common::should_skip(
        "a_stalled_http_player_is_cut_off_and_others_carry_on",
        &["ffmpeg"],
    ) {
        return;
    }
    let (server, _config) = reflector_http_with_config(
        "[live]\ndrop_disposable_bytes = 16384\ndrop_video_bytes = 16384\n\
         drop_audio_bytes = 16384\nmax_lag_ms = 3000\n\n[limits]\nmax_subscribers_per_stream = 2\n",
    );
    let port = http_port(&server);
    let _publisher = common::publish_fast(&server.rtmp_url("live", "fast"), server.dir());
    sleep(JOIN_DELAY);
    // The stalled one: 4 KiB of receive buffer, never read.
    let stalled = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    stalled.set_recv_buffer_size(4096).unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    stalled.connect(&addr.into()).unwrap();
    let mut stalled: TcpStream = stalled.into();
    stalled
        .write_all(b"GET /live/fast.flv HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // The healthy one reads all along.
    let mut healthy = TcpStream::connect(("127.0.0.1", port)).unwrap();
    healthy
        .write_all(b"GET /live/fast.flv HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    healthy
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    sleep(Duration::from_millis(300));
    let (h, body) = request(
        port,
        "GET /live/fast.flv HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_millis(800),
    );
    assert_eq!(status(&h), 503, "a third player is over the limit: {h}");
    assert!(
        String::from_utf8_lossy(&body).contains("limit of 2"),
        "{}",
        String::from_utf8_lossy(&body)
    );

    let start = Instant::now();
    let (mut total, mut last, mut longest_gap) = (0usize, Instant::now(), Duration::ZERO);
    let mut buf = [0u8; 65536];
    let mut cut_at = None;
    while start.elapsed() < Duration::from_secs(12) {
        if let Ok(n) = healthy.read(&mut buf) {
            assert!(n > 0, "the healthy player was closed");
            total += n;
            longest_gap = longest_gap.max(last.elapsed());
            last = Instant::now();
        }
        if cut_at.is_none()
            && server
                .plain_log()
                .contains("player too far behind: disconnecting")
        {
            cut_at = Some(start.elapsed());
        }
    }
    let log = server.plain_log();
    let falling = log
        .lines()
        .filter(|l| l.contains("player falling behind"))
        .count();
    println!(
        "healthy: {total} bytes in 12 s, longest gap {longest_gap:?}; stalled: {falling} falling-behind line(s), cut at {cut_at:?}"
    );
    assert!(total > 4_000_000, "the healthy player got {total} bytes");
    assert!(
        longest_gap < Duration::from_secs(1),
        "a pause of {longest_gap:?}"
    );
    assert!(falling >= 1, "the stalled player was never logged:\n{log}");
    assert!(
        cut_at.is_some(),
        "the stalled player was never cut off:\n{}",
        server.log_tail(20)
    );
    // Its slot is free again: a new player is admitted.
    let (h, _) = request(
        port,
        "GET /live/fast.flv HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_millis(800),
    );
    assert_eq!(status(&h), 200, "{h}");
    drop(stalled);
}

/// HTTP players go through the `on_play` callback like RTMP players (`call=play`, the name,
/// the query as `args`): allowed, refused with 403, redirected to another stream of the app.
#[test]
fn the_play_callback_decides_for_http_players() {
    if common::should_skip("the_play_callback_decides_for_http_players", &["ffmpeg"]) {
        return;
    }
    let callbacks = CallbackServer::start(|name| match name {
        "ok" => Reply::Allow,
        "redirect" => Reply::Redirect("moved".into()),
        _ => Reply::Deny,
    });
    let (server, _config) = reflector_http_with_config(&format!(
        "[auth]\npublish = \"open\"\nplay = \"callback\"\non_play = \"{}\"\n",
        callbacks.url("play")
    ));
    let port = http_port(&server);
    let _ok = publish(
        Publisher::Ffmpeg,
        shared_clip(),
        &server.rtmp_url("live", "ok"),
        server.dir(),
    );
    let _moved = start_publisher(&server, "moved");
    let wait = Duration::from_millis(1500);
    let (h, body) = request(
        port,
        "GET /live/ok.flv?token=abc HTTP/1.1\r\nHost: x\r\n\r\n",
        wait,
    );
    assert_eq!(status(&h), 200, "{h}");
    assert!(dechunk(&body).is_some_and(|(flv, _)| flv.starts_with(b"FLV\x01")));
    let (h, body) = request(port, "GET /live/bad.flv HTTP/1.1\r\nHost: x\r\n\r\n", wait);
    assert_eq!(status(&h), 403, "{h}");
    assert!(String::from_utf8_lossy(&body).contains("not authorized"));
    let (h, body) = request(
        port,
        "GET /live/redirect.flv HTTP/1.1\r\nHost: x\r\n\r\n",
        wait,
    );
    assert_eq!(status(&h), 200, "the redirect plays live/moved: {h}");
    assert!(dechunk(&body).is_some_and(|(flv, _)| first_tag_of(&flv[13..], 9).is_some()));
    let bodies = callbacks.bodies();
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    assert!(
        bodies[0].contains("call=play")
            && bodies[0].contains("name=ok")
            && bodies[0].contains("token%3Dabc"),
        "{}",
        bodies[0]
    );
    assert!(server
        .plain_log()
        .contains("callback redirected the stream"));
}

/// A WebSocket upgrade for `/live/none.flv` sent with `host` and `origin`: the answer's
/// status and body.
fn websocket_upgrade(port: u16, host: &str, origin: &str) -> (u16, String) {
    let raw = format!(
        "GET /live/none.flv HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    let (head, body) = request(port, &raw, Duration::from_secs(2));
    (status(&head), String::from_utf8_lossy(&body).into_owned())
}

/// With `http.allow_origin` naming one site, a WebSocket upgrade from another origin is
/// refused (403), from that site accepted, and from this server's own dashboard (its admin
/// port, under the name the request was sent to: the live preview) accepted too. Accepted
/// requests reach the stream lookup: 404, not published.
#[test]
fn websocket_origins_follow_allow_origin_and_the_dashboard_is_always_allowed() {
    let (server, _config) = reflector_http_with_config(
        "[http]\nallow_origin = \"https://player.example\"\nwait_for_publisher = false\n",
    );
    let port = http_port(&server);
    let admin = server.admin_url();
    let admin_port = admin.rsplit(':').next().expect("admin port");
    let here = format!("127.0.0.1:{port}");
    let dashboard = format!("http://127.0.0.1:{admin_port}");
    let cases: [(&str, String, u16); 7] = [
        (&here, "http://evil.example".into(), 403),
        (&here, "https://player.example".into(), 404),
        (&here, dashboard, 404),
        ("localhost", format!("http://LOCALHOST:{admin_port}"), 404),
        // The admin port under another name, or another port under this name: refused.
        (&here, format!("http://evil.example:{admin_port}"), 403),
        (&here, format!("http://127.0.0.1:{port}"), 403),
        (&here, "null".into(), 403),
    ];
    for (host, origin, want) in cases {
        let (got, body) = websocket_upgrade(port, host, &origin);
        assert_eq!(got, want, "Host {host}, Origin {origin}: {body}");
        if want == 403 {
            assert!(body.contains("http.allow_origin"), "{body}");
        }
    }
}

/// The dashboard's origin is the admin port as bound: with `server.admin_listen` on port 0
/// (any free port), a preview from the port the admin server got is accepted, and the
/// configured 0 matches nothing.
#[test]
fn websocket_origin_of_a_dashboard_on_an_ephemeral_admin_port_is_allowed() {
    let config = common::config_file(
        "[http]\nallow_origin = \"https://player.example\"\nwait_for_publisher = false\n",
    );
    let path = config.path().display().to_string();
    let server = Server::reflector_http_any_admin_port(&["--workers", "1", "--config", &path]);
    let admin = server.admin_url();
    let bound = admin.rsplit(':').next().expect("admin port");
    assert_ne!(bound, "0");
    let port = http_port(&server);
    let here = format!("127.0.0.1:{port}");
    for (origin, want) in [
        (format!("http://127.0.0.1:{bound}"), 404),
        ("http://127.0.0.1:0".to_owned(), 403),
    ] {
        let (got, body) = websocket_upgrade(port, &here, &origin);
        assert_eq!(got, want, "Origin {origin}: {body}");
    }
}

/// The publisher leaves and a new one publishes the same name while ffmpeg plays over
/// HTTP-FLV: the body goes on, and the recording holds the end of the first publisher's run,
/// then the second publisher's run from its first keyframe, both frame-exact, with timestamps
/// that never go backwards (as for RTMP players, `live_reflector`).
#[test]
fn an_http_player_carries_on_across_a_republish() {
    if common::should_skip(
        "an_http_player_carries_on_across_a_republish",
        &["ffmpeg", "ffprobe"],
    ) {
        return;
    }
    let server = Server::reflector_http(&["--workers", "2"]);
    let url = server.rtmp_url("live", "again");
    common::clients::assert_play_across_a_republish(
        &server,
        &url,
        Player::Ffmpeg,
        &server.http_url("live", "again"),
        "ffmpeg over HTTP-FLV",
    );
}

/// HTTP players count against the same limits as RTMP ones: a second player of a stream
/// limited to one subscriber gets a 503 naming the limit, a connection over the per-IP limit
/// is closed unanswered, the first player keeps getting the stream, and once they leave the
/// server lists only the publisher and answers from that address again.
#[test]
fn http_players_meet_the_subscriber_and_per_ip_limits() {
    if common::should_skip(
        "http_players_meet_the_subscriber_and_per_ip_limits",
        &["ffmpeg"],
    ) {
        return;
    }
    let (server, _config) = reflector_http_with_config(
        "[limits]\nmax_connections_per_ip = 3\nmax_subscribers_per_stream = 1\n\n\
         [http]\nwait_for_publisher = false\n",
    );
    let port = http_port(&server);
    let _publisher = start_publisher(&server, "x");
    let get = "GET /live/x.flv HTTP/1.1\r\nHost: x\r\n\r\n";

    let mut first = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    first
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    first.write_all(get.as_bytes()).expect("send");
    let mut body = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && body.len() < 20_000 {
        if let Ok(n @ 1..) = first.read(&mut buf) {
            body.extend_from_slice(&buf[..n]);
        }
    }
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "first player: {text:.200}"
    );

    let (h, refused) = request(port, get, Duration::from_secs(2));
    assert_eq!(
        status(&h),
        503,
        "second player of a one-subscriber stream: {h}"
    );
    let refused = String::from_utf8_lossy(&refused);
    assert!(refused.contains("limit of 1 subscribers"), "{refused}");

    // Publisher and first player make two connections from 127.0.0.1; a third fills the
    // per-IP limit, a fourth is closed at accept without an answer.
    let _third = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    sleep(Duration::from_millis(200));
    let (h, answer) = request(port, get, Duration::from_secs(2));
    assert!(
        h.is_empty() && answer.is_empty(),
        "over the per-IP limit: {h}"
    );
    assert!(
        server.log().contains("limits.max_connections_per_ip"),
        "{}",
        server.log_tail(20)
    );

    // The first player still gets the stream.
    let before = body.len();
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Ok(n @ 1..) = first.read(&mut buf) {
            body.extend_from_slice(&buf[..n]);
        }
    }
    assert!(
        body.len() > before + 10_000,
        "first player stalled: {} bytes after the refusals",
        body.len() - before
    );

    drop(first);
    drop(_third);
    let admin = format!("{}/api/v1/connections", server.admin_url());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed: serde_json::Value = serde_json::from_str(&get_text(&admin)).expect("JSON");
        let n = listed["connections"].as_array().map_or(0, Vec::len);
        if n == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "connections left: {listed:#}");
        sleep(Duration::from_millis(100));
    }
    let (h, _) = request(port, get, Duration::from_secs(1));
    assert_eq!(
        status(&h),
        200,
        "a player from this address after the others left: {h}"
    );
}
