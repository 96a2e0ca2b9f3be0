//! Hostile HTTP and WebSocket clients against the public HTTP-FLV listener (issue 18):
//! oversized and malformed request heads, slowloris, bodies on GET, unknown paths and methods,
//! bad WebSocket handshakes and bad frames after the upgrade, and 2000 idle connections.
//!
//! Every attacker writes raw bytes (the sans-IO core builds the frames) and asserts the exact
//! status or close code and that the server then closes. Meanwhile a canary RTMP publisher
//! and RTMP player stream on the same server: the player must see every frame in order, never
//! more than 1 s apart, and the admin API's connection count must come back to the canary's
//! two connections (nothing leaks).

use crate::common;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::{Canary, Server};
use futures_util::future::join_all;
use reflector::protocol::http::{parse_response_head, HeadLimits, ResponseHead};
use reflector::protocol::websocket::{accept_key, client_frame, FrameDecoder, Opcode, WsFrame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The request timeout under test (`http.request_timeout_ms`), low so slowloris is quick.
const REQUEST_TIMEOUT_MS: u64 = 6000;

const CONFIG: &str = r#"
[http]
request_timeout_ms = 6000
max_request_head_bytes = 8192
wait_for_publisher = false

[limits]
max_connections_per_ip = 5000
"#;

/// Longest wait for any verdict.
const VERDICT: Duration = Duration::from_secs(8);

fn server() -> (Server, tempfile::NamedTempFile) {
    common::reflector_http_with_config(CONFIG)
}

/// Connections the admin API lists (off the runtime's thread: the canary runs on it).
async fn admin_connections(server: &Server) -> usize {
    let url = format!("{}/api/v1/connections", server.admin_url());
    let body = tokio::task::spawn_blocking(move || {
        ureq::get(&url)
            .timeout(Duration::from_secs(10))
            .call()
            .expect("admin connections")
            .into_string()
            .expect("body")
    })
    .await
    .expect("admin request");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    json["connections"].as_array().expect("connections").len()
}

// ---------------------------------------------------------------------------------------
// Raw HTTP.

/// An answer read to the end: the response head (if one came), the body, how long the
/// server took to close, and whether it did.
#[derive(Debug)]
struct Answer {
    head: Option<ResponseHead>,
    body: Vec<u8>,
    closed_after: Duration,
    closed: bool,
}

impl Answer {
    fn status(&self) -> u16 {
        self.head.as_ref().map_or(0, |h| h.status)
    }
}

async fn tcp(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the HTTP listener")
}

/// Read until the server closes (or `VERDICT` passes); a reset counts as a close.
async fn read_to_close(sock: &mut TcpStream, start: Instant) -> Answer {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let closed = loop {
        match tokio::time::timeout_at((start + VERDICT).into(), sock.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => break false,
        }
    };
    let closed_after = start.elapsed();
    let parsed = parse_response_head(&buf, &HeadLimits::default())
        .ok()
        .flatten();
    let (head, body) = match parsed {
        Some((h, used)) => (Some(h), buf[used..].to_vec()),
        None => (None, buf),
    };
    Answer {
        head,
        body,
        closed_after,
        closed,
    }
}

/// Send `request` and read the answer to the close.
async fn exchange(port: u16, request: &[u8]) -> Answer {
    let mut sock = tcp(port).await;
    let start = Instant::now();
    sock.write_all(request).await.expect("send request");
    read_to_close(&mut sock, start).await
}

/// `request` gets `status` and the connection is closed.
async fn refused(port: u16, what: &str, request: &[u8], status: u16) -> Answer {
    let a = exchange(port, request).await;
    assert_eq!(a.status(), status, "{what}: {a:?}");
    assert!(a.closed, "{what}: not closed");
    let len = a.head.as_ref().and_then(|h| h.header("content-length"));
    if status != 204 {
        assert_eq!(
            len,
            Some(a.body.len().to_string().as_str()),
            "{what}: {a:?}"
        );
    }
    a
}

fn get(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n").into_bytes()
}

async fn bad_heads(port: u16) {
    // A head over the limit (8192): 431 without waiting for the rest.
    // (One byte over, so that the server has read everything sent when it refuses: unread
    // bytes would turn its close into a reset.)
    let mut big = get("/live/canary.flv", "").to_vec();
    big.truncate(big.len() - 2);
    big.extend_from_slice(b"X-Big: ");
    big.resize(8193, b'a');
    refused(port, "oversized head", &big, 431).await;
    // A request line longer than the limit: 414.
    let mut long = b"GET /".to_vec();
    long.resize(8193, b'a');
    refused(port, "long request line", &long, 414).await;
    // 65 header fields (the server takes 64).
    let many: String = (0..65).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    refused(
        port,
        "too many headers",
        &get("/live/canary.flv", &many),
        431,
    )
    .await;
    let cases: &[(&str, &[u8], u16)] = &[
        ("bare LF", b"GET /live/canary.flv HTTP/1.1\nHost: a\n\n", 400),
        ("two spaces", b"GET  /live/canary.flv HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("bad method", b"G@T /live/canary.flv HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("HTTP/2.0", b"GET /live/canary.flv HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        ("no version", b"GET /live/canary.flv\r\n\r\n", 400),
        ("NUL in path", b"GET /live/a%00.flv HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("bad UTF-8", b"GET /live/a%ff.flv HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("no Host", b"GET /live/canary.flv HTTP/1.1\r\n\r\n", 400),
        ("two Hosts", b"GET /live/canary.flv HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("obs-fold", b"GET /live/canary.flv HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", 400),
        ("space in name", b"GET /live/canary.flv HTTP/1.1\r\nHost: a\r\nX Y: 1\r\n\r\n", 400),
        ("NUL in value", b"GET /live/canary.flv HTTP/1.1\r\nHost: a\r\nX: \0\r\n\r\n", 400),
        ("https target", b"GET https://a/live/canary.flv HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (
            "two lengths",
            b"GET /live/canary.flv HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
            400,
        ),
        (
            "body on GET",
            b"GET /live/canary.flv HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
            400,
        ),
        (
            "chunked GET",
            b"GET /live/canary.flv HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            "gzip GET",
            b"GET /live/canary.flv HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
        ),
    ];
    for (what, request, status) in cases {
        refused(port, what, request, *status).await;
    }
}

async fn bad_routes(port: u16) {
    for path in [
        "/",
        "/live/canary",
        "/canary.flv",
        "/live/.flv",
        "/favicon.ico",
    ] {
        let a = refused(port, path, &get(path, ""), 404).await;
        assert_eq!(a.body, b"not found: streams are at /APP/NAME.flv", "{path}");
    }
    let a = refused(port, "unpublished", &get("/live/nosuch.flv", ""), 404).await;
    assert_eq!(a.body, b"nosuch: not published");
    for method in ["POST", "PUT", "DELETE", "PATCH", "TRACE", "CONNECT"] {
        let request =
            format!("{method} /live/canary.flv HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
        let a = refused(port, method, request.as_bytes(), 405).await;
        let allow = a.head.as_ref().and_then(|h| h.header("allow"));
        assert_eq!(allow, Some("GET, HEAD, OPTIONS"), "{method}");
    }
}

/// The slowloris: a byte a second after the request line; the server answers 408 and
/// closes when `http.request_timeout_ms` has passed since the connect.
async fn slowloris(port: u16) -> Duration {
    let mut sock = tcp(port).await;
    let start = Instant::now();
    sock.write_all(b"GET /live/canary.flv HTTP/1.1\r\n")
        .await
        .expect("request line");
    let (mut rd, mut wr) = sock.into_split();
    let drip = tokio::spawn(async move {
        for b in b"Host: 127.0.0.1\r\n".iter() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if wr.write_all(&[*b]).await.is_err() {
                break;
            }
        }
        wr
    });
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(VERDICT, rd.read_to_end(&mut buf)).await;
    let took = start.elapsed();
    drip.abort();
    let (head, _) = parse_response_head(&buf, &HeadLimits::default())
        .expect("a response")
        .expect("a whole head");
    assert_eq!(head.status, 408, "slowloris");
    let timeout = Duration::from_millis(REQUEST_TIMEOUT_MS);
    assert!(
        took >= timeout - Duration::from_millis(50) && took < timeout + Duration::from_secs(2),
        "slowloris closed after {took:?} (timeout {timeout:?})"
    );
    took
}

// ---------------------------------------------------------------------------------------
// WebSocket.

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn ws_request(version: &str, key: Option<&str>) -> Vec<u8> {
    let key = key.map_or(String::new(), |k| format!("Sec-WebSocket-Key: {k}\r\n"));
    get(
        "/live/canary.flv",
        &format!(
            "Upgrade: websocket\r\nConnection: Upgrade\r\n{key}Sec-WebSocket-Version: {version}\r\n"
        ),
    )
}

async fn bad_handshakes(port: u16) {
    refused(port, "no key", &ws_request("13", None), 400).await;
    refused(port, "short key", &ws_request("13", Some("abc")), 400).await;
    let a = refused(port, "version 8", &ws_request("8", Some(KEY)), 426).await;
    let v = a
        .head
        .as_ref()
        .and_then(|h| h.header("sec-websocket-version"));
    assert_eq!(v, Some("13"));
}

/// A WebSocket player of the live canary stream, once its first FLV bytes arrived.
struct WsPlayer {
    sock: TcpStream,
    buf: BytesMut,
    decoder: FrameDecoder,
}

async fn ws_player(port: u16) -> WsPlayer {
    let mut sock = tcp(port).await;
    sock.write_all(&ws_request("13", Some(KEY)))
        .await
        .expect("handshake");
    let mut buf = BytesMut::new();
    let deadline = Instant::now() + VERDICT;
    loop {
        if let Some((head, used)) =
            parse_response_head(&buf, &HeadLimits::default()).expect("a valid response")
        {
            assert_eq!(head.status, 101, "{head:?}");
            assert_eq!(
                head.header("sec-websocket-accept"),
                Some(accept_key(KEY).as_str())
            );
            let _ = buf.split_to(used);
            break;
        }
        let n = tokio::time::timeout_at(deadline.into(), sock.read_buf(&mut buf))
            .await
            .expect("101 in time")
            .expect("read");
        assert!(n > 0, "closed before the 101");
    }
    let mut p = WsPlayer {
        sock,
        buf,
        decoder: FrameDecoder::for_client(32 * 1024 * 1024),
    };
    let first = p.next_frame(deadline).await.expect("a first frame");
    assert_eq!(first.opcode, Opcode::Binary);
    assert_eq!(
        first.payload.get(..3),
        Some(&b"FLV"[..]),
        "the stream starts with the FLV header"
    );
    p
}

impl WsPlayer {
    /// The next server frame; `None` if the connection ended first.
    async fn next_frame(&mut self, deadline: Instant) -> Option<WsFrame> {
        loop {
            if let Some(f) = self
                .decoder
                .decode(&mut self.buf)
                .expect("server frames are valid")
            {
                return Some(f);
            }
            match tokio::time::timeout_at(deadline.into(), self.sock.read_buf(&mut self.buf)).await
            {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
    }

    /// Frames until a Close: its code, the data frames before it, and whether the TCP
    /// connection then closed.
    async fn until_close(mut self) -> (Option<u16>, usize, bool) {
        let deadline = Instant::now() + VERDICT;
        let mut data = 0;
        while let Some(f) = self.next_frame(deadline).await {
            match f.opcode {
                Opcode::Close => {
                    let code = f.payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                    let mut rest = Vec::new();
                    let read = self.sock.read_to_end(&mut rest);
                    let eof = tokio::time::timeout_at(deadline.into(), read).await.is_ok();
                    return (code, data, eof);
                }
                Opcode::Binary | Opcode::Continuation => data += 1,
                _ => {}
            }
        }
        (None, data, true)
    }
}

async fn bad_frames(port: u16) {
    let mask = [1, 2, 3, 4];
    let masked = |op, fin, payload: &[u8]| client_frame(op, fin, payload, mask).to_vec();
    let mut rsv = masked(Opcode::Binary, true, b"x");
    rsv[0] |= 0x40;
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked", vec![0x82, 0x01, b'x'], 1002),
        (
            "64-bit length, top bit",
            vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4],
            1002,
        ),
        (
            "2^40-byte frame",
            vec![0x82, 0xFF, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4],
            1009,
        ),
        ("fragmented ping", masked(Opcode::Ping, false, b"p"), 1002),
        ("RSV1", rsv, 1002),
        ("opcode 3", vec![0x83, 0x80, 1, 2, 3, 4], 1002),
        ("opcode 0xB", vec![0x8B, 0x80, 1, 2, 3, 4], 1002),
        (
            "continuation first",
            masked(Opcode::Continuation, true, b"c"),
            1002,
        ),
        ("126-byte ping", masked(Opcode::Ping, true, &[0; 126]), 1002),
        (
            "bad close reason",
            masked(Opcode::Close, true, &[0x03, 0xE8, 0xFF]),
            1007,
        ),
        (
            "close code 1005",
            masked(Opcode::Close, true, &[0x03, 0xED]),
            1002,
        ),
        (
            "a clean close",
            masked(Opcode::Close, true, &[0x03, 0xE8]),
            1000,
        ),
        (
            "going away",
            masked(Opcode::Close, true, &[0x03, 0xE9, b'b']),
            1001,
        ),
    ];
    let results = join_all(cases.into_iter().map(|(what, bytes, code)| async move {
        let mut p = ws_player(port).await;
        p.sock.write_all(&bytes).await.expect("send the frame");
        let (got, data, eof) = p.until_close().await;
        (what, code, got, data, eof)
    }))
    .await;
    for (what, code, got, data, eof) in results {
        assert_eq!(
            got,
            Some(code),
            "{what}: close code ({data} data frames before)"
        );
        assert!(eof, "{what}: not closed after the Close");
    }
    // A ping is answered with a pong carrying its payload, and the stream goes on.
    let mut p = ws_player(port).await;
    p.sock
        .write_all(&masked(Opcode::Ping, true, b"are you there"))
        .await
        .expect("ping");
    let deadline = Instant::now() + VERDICT;
    let mut pong = None;
    let mut after = 0;
    while let Some(f) = p.next_frame(deadline).await {
        match f.opcode {
            Opcode::Pong => pong = Some(f.payload),
            Opcode::Binary if pong.is_some() => after += 1,
            _ => {}
        }
        if after == 5 {
            break;
        }
    }
    assert_eq!(pong.as_deref(), Some(&b"are you there"[..]));
    assert_eq!(after, 5, "the stream did not go on after the pong");
}

/// `count` connections that never send a byte: held while the canary streams, then closed
/// by the request timeout without an answer.
async fn idle_connections(server: &Server, port: u16, count: usize, baseline: usize) {
    let first = Instant::now();
    let mut socks = Vec::with_capacity(count);
    for _ in 0..count {
        socks.push(tcp(port).await);
    }
    let start = Instant::now();
    let connecting = start - first;
    // Every one is listed while held (the server accepts the last ones a little after they
    // connected: poll), unless connecting them took so long that the first may be gone.
    let listed_by = Duration::from_millis(REQUEST_TIMEOUT_MS - 1000);
    let mut held = admin_connections(server).await;
    while held < baseline + count && first.elapsed() < listed_by {
        tokio::time::sleep(Duration::from_millis(50)).await;
        held = admin_connections(server).await;
    }
    eprintln!("{held} connections listed with {count} idle ones held ({connecting:?} to connect)");
    if connecting < listed_by / 2 {
        assert_eq!(held, baseline + count, "connections with {count} idle ones");
    }
    let answers = join_all(socks.into_iter().map(|mut s| async move {
        let a = read_to_close(&mut s, start).await;
        (
            a.closed,
            a.head.is_none() && a.body.is_empty(),
            a.closed_after,
        )
    }))
    .await;
    let closed = answers
        .iter()
        .filter(|(c, silent, _)| *c && *silent)
        .count();
    assert_eq!(closed, count, "idle connections closed silently");
    let latest = answers.iter().map(|a| a.2).max().unwrap_or_default();
    assert!(
        latest < Duration::from_millis(REQUEST_TIMEOUT_MS) + Duration::from_secs(2),
        "the last idle connection closed after {latest:?}"
    );
}

#[tokio::test]
async fn hostile_http_clients_do_not_disturb_rtmp_players() {
    let (server, _config) = server();
    let port = server.http_port().expect("HTTP listener");
    let canary = Canary::start(server.port(), "canary").await;
    let baseline = admin_connections(&server).await;
    assert_eq!(baseline, 2, "the canary's publisher and player");

    let started = Instant::now();
    let (_, _, slow, _, _) = tokio::join!(
        bad_heads(port),
        bad_routes(port),
        slowloris(port),
        bad_handshakes(port),
        bad_frames(port),
    );
    let attacks = started.elapsed();
    let frames_before_idle = canary.frames_seen();
    idle_connections(&server, port, 2000, baseline).await;

    // Everything the attackers opened is gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut now = admin_connections(&server).await;
    while now != baseline && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = admin_connections(&server).await;
    }
    assert_eq!(now, baseline, "connections after the attacks");
    assert!(canary.frames_seen() > frames_before_idle + 25);
    let frames = canary.finish("HTTP hostile suite", 50).await;
    eprintln!(
        "FIGURES attacks={attacks:?} slowloris_closed_after={slow:?} canary_frames={frames} connections_after={now}"
    );
    let mut server = server;
    assert!(server.is_running(), "server died");
    assert!(!server.log().contains("panicked"), "a panic in the log");
}
