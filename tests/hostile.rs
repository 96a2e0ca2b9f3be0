//! Hostile clients against the real reflector binary (issue 7): garbage and slow handshakes,
//! chunk-layer abuse, AMF bombs, malformed commands, bad names, thousands of idle sockets,
//! connect/disconnect churn and an injected panic. Every attacker is built on the protocol core
//! (ClientHandshake, ChunkEncoder, amf0) so the test controls every byte.
//!
//! While they run, a canary publisher and player (the project's client with numbered synthetic
//! media) stream on the same server; the tests assert the canary never stalls (no gap over 1 s
//! between video frames, no sequence number lost), a fresh client can still connect, every
//! attacker sees its connection closed (after an `_error`/`onStatus` where the server has one to
//! give), the server log names a reason for each attacker's connection (matched by the
//! attacker's local port), and the server's VmRSS stays within a stated bound and comes back
//! near its baseline. Loopback only; the whole file runs in well under a minute.
//!
//! `soak` (ignored) is the long run driven by `scripts/soak.sh`.

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::{Canary, Server};
use futures_util::future::join_all;
use reflector::client::synth;
use reflector::client::{ClientConfig, ClientEvent, RtmpClient, RtmpUrl};
use reflector::protocol::amf0::{self, Amf0Value, AmfLimits};
use reflector::protocol::chunk::{ChunkDecoder, ChunkEncoder, ChunkLimits};
use reflector::protocol::handshake::{ClientHandshake, HandshakeState};
use reflector::protocol::message::{type_id, LimitType, Message, RawMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest an attacker waits for the server's verdict.
const VERDICT: Duration = Duration::from_secs(8);

/// Limits of the server under attack: small enough that the bounds are quick to reach.
const HOSTILE_CONFIG: &str = r#"
[rtmp]
handshake_timeout_ms = 2000
idle_timeout_ms = 3000
max_message_len = 1048576
max_pending_bytes = 2097152
max_unread_bytes = 1048576

[limits]
max_connections_per_ip = 5000
"#;

fn server_with_config(toml: &str, workers: &str) -> (Server, tempfile::NamedTempFile) {
    let file = common::config_file(toml);
    let path = file.path().display().to_string();
    let server = Server::reflector(&["--workers", workers, "--config", &path]);
    (server, file)
}

fn url(port: u16, app: &str, name: &str) -> RtmpUrl {
    RtmpUrl {
        host: "127.0.0.1".into(),
        port,
        app: app.into(),
        stream: name.into(),
        tls: false,
    }
}

fn client_config() -> ClientConfig {
    ClientConfig {
        timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    }
}

/// Open file descriptors of `pid` (sockets included): a leak shows here.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Samples the server's VmRSS every 100 ms and keeps the peak.
struct RssWatch {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl RssWatch {
    fn start(pid: u32) -> RssWatch {
        let peak = Arc::new(AtomicU64::new(common::rss_kib(pid)));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let task = tokio::spawn(async move {
            while !s.load(Relaxed) {
                p.fetch_max(common::rss_kib(pid), Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        RssWatch { peak, stop, task }
    }

    async fn finish(self) -> u64 {
        self.stop.store(true, Relaxed);
        let _ = self.task.await;
        self.peak.load(Relaxed)
    }
}

/// A fresh client can still connect, create a stream and play the canary.
async fn fresh_client_works(port: u16, name: &str) {
    let mut c = RtmpClient::connect(&url(port, "live", name), &client_config())
        .await
        .expect("a fresh client connects");
    let id = c.create_stream().await.expect("fresh createStream");
    c.play(id, name).await.expect("fresh play");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, c.next_event()).await {
            Ok(Ok(ClientEvent::Media(m))) if synth::video_seq(&m.payload).is_some() => return,
            Ok(Ok(_)) => {}
            other => panic!("fresh player got no video: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Raw attackers.

/// What the server said to an attacker.
#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Result,
    /// `_error` with its code.
    Error(String),
    /// `onStatus` with level and code.
    Status(String, String),
    Closed,
}

/// A raw connection: every byte it sends is chosen by the test.
struct Raw {
    sock: TcpStream,
    port: u16,
    enc: ChunkEncoder,
    dec: ChunkDecoder,
    inbuf: BytesMut,
    events: Vec<Ev>,
}

async fn tcp(port: u16) -> TcpStream {
    let sock = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("TCP connect");
    sock.set_nodelay(true).expect("nodelay");
    sock
}

impl Raw {
    fn new(sock: TcpStream, inbuf: BytesMut) -> Raw {
        let port = sock.local_addr().expect("local addr").port();
        Raw {
            sock,
            port,
            enc: ChunkEncoder::new(),
            dec: ChunkDecoder::new(ChunkLimits {
                max_message_len: 0xFF_FFFF,
                ..ChunkLimits::default()
            }),
            inbuf,
            events: Vec::new(),
        }
    }

    /// TCP connection and a plain §5.2 handshake.
    async fn handshaken(port: u16) -> Raw {
        let mut sock = tcp(port).await;
        let mut hs = ClientHandshake::new(false);
        let mut out = BytesMut::new();
        hs.start(&mut out);
        sock.write_all(&out).await.expect("C0C1");
        out.clear();
        let mut input = BytesMut::with_capacity(8192);
        loop {
            let state = hs.process(&mut input, &mut out).expect("handshake");
            if !out.is_empty() {
                sock.write_all(&out).await.expect("C2");
                out.clear();
            }
            if state == HandshakeState::Done {
                return Raw::new(sock, input);
            }
            let n = tokio::time::timeout(VERDICT, sock.read_buf(&mut input))
                .await
                .expect("S0S1S2 in time")
                .expect("read S0S1S2");
            assert!(n > 0, "server closed during the handshake");
        }
    }

    /// Handshake and a well-formed `connect` to `app`, answered by `_result`.
    async fn connected(port: u16) -> Raw {
        let mut raw = Raw::handshaken(port).await;
        raw.connect("live").await;
        assert_eq!(raw.next_verdict().await, Ev::Result, "connect answered");
        raw
    }

    async fn bytes(&mut self, b: &[u8]) {
        // The server may already have closed: that is for the verdict to see.
        let _ = self.sock.write_all(b).await;
    }

    async fn message(&mut self, csid: u32, type_id: u8, stream_id: u32, payload: Vec<u8>) {
        let mut out = BytesMut::new();
        let raw = RawMessage {
            type_id,
            stream_id,
            timestamp: 0,
            payload: Bytes::from(payload),
        };
        self.enc.encode(csid, &raw, &mut out);
        self.bytes(&out).await;
    }

    async fn typed(&mut self, message: Message) {
        let raw = message.to_raw(0, 0).expect("encode control message");
        self.message(2, raw.type_id, 0, raw.payload.to_vec()).await;
    }

    async fn command(&mut self, stream_id: u32, values: &[Amf0Value]) {
        let mut body = Vec::new();
        amf0::encode_all(values, &mut body).expect("encode command");
        self.message(3, type_id::COMMAND_AMF0, stream_id, body)
            .await;
    }

    async fn connect(&mut self, app: &str) {
        self.command(0, &connect_values(app)).await;
    }

    async fn set_chunk_size(&mut self, size: u32) {
        self.message(2, type_id::SET_CHUNK_SIZE, 0, size.to_be_bytes().to_vec())
            .await;
    }

    /// The next `_result`, `_error`, error `onStatus` or close; other messages are skipped.
    async fn next_verdict(&mut self) -> Ev {
        let deadline = Instant::now() + VERDICT;
        loop {
            match self.dec.decode(&mut self.inbuf) {
                Ok(Some(m)) => {
                    if let Some(ev) = verdict_of(&m) {
                        self.events.push(ev.clone());
                        return ev;
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => panic!("server sent a bad chunk stream: {e}"),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.sock.read_buf(&mut self.inbuf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    self.events.push(Ev::Closed);
                    return Ev::Closed;
                }
                Ok(Ok(_)) => {}
                Err(_) => panic!(
                    "attacker on port {}: no verdict within {VERDICT:?} (saw {:?})",
                    self.port, self.events
                ),
            }
        }
    }

    /// Read verdicts until the connection closes; returns everything seen.
    async fn until_closed(mut self) -> (u16, Vec<Ev>) {
        while self.next_verdict().await != Ev::Closed {}
        (self.port, self.events)
    }
}

fn verdict_of(m: &RawMessage) -> Option<Ev> {
    let body: &[u8] = match m.type_id {
        type_id::COMMAND_AMF0 => &m.payload,
        type_id::COMMAND_AMF3 => m.payload.get(1..)?,
        _ => return None,
    };
    let values = amf0::decode_all(body, &AmfLimits::default()).ok()?;
    let name = values.first()?.as_str()?;
    let info = values.get(3);
    let code = || {
        info.and_then(|i| i.get("code"))
            .and_then(Amf0Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    match name {
        "_result" => Some(Ev::Result),
        "_error" => Some(Ev::Error(code())),
        "onStatus" => {
            let level = info
                .and_then(|i| i.get("level"))
                .and_then(Amf0Value::as_str)
                .unwrap_or_default()
                .to_owned();
            (level == "error").then(|| Ev::Status(level, code()))
        }
        _ => None,
    }
}

fn s(v: &str) -> Amf0Value {
    Amf0Value::String(v.into())
}

fn n(v: f64) -> Amf0Value {
    Amf0Value::Number(v)
}

fn connect_values(app: &str) -> Vec<Amf0Value> {
    vec![
        s("connect"),
        n(1.0),
        Amf0Value::object([
            ("app", s(app)),
            ("flashVer", s("FMLE/3.0 (hostile)")),
            ("tcUrl", s(&format!("rtmp://127.0.0.1/{app}"))),
            ("objectEncoding", n(0.0)),
        ]),
    ]
}

/// An AMF3 U29 (AMF3 spec §1.3.1).
fn u29(v: u32, out: &mut Vec<u8>) {
    let v = v & 0x1FFF_FFFF;
    if v < 0x80 {
        out.push(v as u8);
    } else if v < 0x4000 {
        out.extend([(v >> 7) as u8 | 0x80, (v & 0x7F) as u8]);
    } else if v < 0x20_0000 {
        out.extend([
            (v >> 14) as u8 | 0x80,
            ((v >> 7) & 0x7F) as u8 | 0x80,
            (v & 0x7F) as u8,
        ]);
    } else {
        out.extend([
            (v >> 22) as u8 | 0x80,
            ((v >> 15) & 0x7F) as u8 | 0x80,
            ((v >> 8) & 0x7F) as u8 | 0x80,
            (v & 0xFF) as u8,
        ]);
    }
}

/// `connect` name and transaction id in AMF0, then `tail` as the command object.
fn connect_with(tail: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    amf0::encode_all(&[s("connect"), n(1.0)], &mut body).expect("encode");
    body.extend_from_slice(tail);
    body
}

/// What one attacker did and what the log must say about its connection.
struct Report {
    name: &'static str,
    port: u16,
    events: Vec<Ev>,
    /// Substring of a log line that also names this attacker's port.
    log: &'static str,
}

fn report(name: &'static str, (port, events): (u16, Vec<Ev>), log: &'static str) -> Report {
    Report {
        name,
        port,
        events,
        log,
    }
}

/// A command the server refuses with `_error` then closes (after a good connect when
/// `connect_first`).
async fn bad_command(
    port: u16,
    name: &'static str,
    connect_first: bool,
    values: Vec<Amf0Value>,
    log: &'static str,
) -> Report {
    let mut raw = if connect_first {
        Raw::connected(port).await
    } else {
        Raw::handshaken(port).await
    };
    if connect_first && values.first() != Some(&s("createStream")) {
        raw.command(0, &[s("createStream"), n(2.0), Amf0Value::Null])
            .await;
        assert_eq!(raw.next_verdict().await, Ev::Result, "{name}: createStream");
    }
    raw.command(1, &values).await;
    report(name, raw.until_closed().await, log)
}

/// A raw message body the server must reject (protocol error and close).
async fn bad_body(
    port: u16,
    name: &'static str,
    connect_first: bool,
    type_id: u8,
    body: Vec<u8>,
    log: &'static str,
) -> Report {
    let mut raw = if connect_first {
        Raw::connected(port).await
    } else {
        Raw::handshaken(port).await
    };
    raw.message(3, type_id, 0, body).await;
    report(name, raw.until_closed().await, log)
}

/// Handshake-level attackers: the server must close them with a logged reason.
async fn handshake_attackers(port: u16) -> Vec<Report> {
    let garbage = async {
        let mut sock = tcp(port).await;
        let p = sock.local_addr().expect("addr").port();
        let junk: Vec<u8> = (0..4000u32)
            .map(|i| (i * 7919 % 251) as u8 | 0x40)
            .collect();
        let _ = sock.write_all(&junk).await;
        report(
            "garbage handshake",
            (p, read_to_close(&mut sock).await),
            "unsupported RTMP version",
        )
    };
    let http = async {
        let mut sock = tcp(port).await;
        let p = sock.local_addr().expect("addr").port();
        let _ = sock.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        report(
            "HTTP request",
            (p, read_to_close(&mut sock).await),
            "unsupported RTMP version 71",
        )
    };
    let wrong_version = async {
        let mut sock = tcp(port).await;
        let p = sock.local_addr().expect("addr").port();
        let mut c0c1 = vec![6u8];
        c0c1.extend(std::iter::repeat_n(0u8, 1536));
        let _ = sock.write_all(&c0c1).await;
        report(
            "C0 version 6 (RTMPE)",
            (p, read_to_close(&mut sock).await),
            "unsupported RTMP version 6",
        )
    };
    let short = async {
        let mut sock = tcp(port).await;
        let p = sock.local_addr().expect("addr").port();
        let _ = sock.write_all(&[3u8; 700]).await;
        let _ = sock.shutdown().await;
        report(
            "short handshake",
            (p, read_to_close(&mut sock).await),
            "handshake failed",
        )
    };
    let no_c2 = async {
        let mut sock = tcp(port).await;
        let p = sock.local_addr().expect("addr").port();
        let _ = sock.write_all(&[3u8; 1537]).await;
        report(
            "C0C1 and no C2",
            (p, read_to_close(&mut sock).await),
            "not finished within",
        )
    };
    let slowloris = async {
        let mut sock = tcp(port).await;
        let p = sock.local_addr().expect("addr").port();
        let start = Instant::now();
        // One byte every 100 ms: the handshake deadline, not the pace, must end it.
        let mut closed = false;
        while start.elapsed() < VERDICT && !closed {
            closed = sock.write_all(&[3]).await.is_err();
            let mut b = [0u8; 4096];
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(Duration::from_millis(100), sock.read(&mut b)).await
            {
                closed = true;
            }
        }
        assert!(closed, "slowloris handshake still open after {VERDICT:?}");
        report(
            "slowloris handshake",
            (p, vec![Ev::Closed]),
            "not finished within",
        )
    };
    let mut out = Vec::new();
    let (a, b, c, d, e, f) = tokio::join!(garbage, http, wrong_version, short, no_c2, slowloris);
    out.extend([a, b, c, d, e, f]);
    out
}

async fn read_to_close(sock: &mut TcpStream) -> Vec<Ev> {
    let mut b = vec![0u8; 8192];
    let deadline = Instant::now() + VERDICT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, sock.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return vec![Ev::Closed],
            Ok(Ok(_)) => {}
            Err(_) => panic!("connection still open after {VERDICT:?}"),
        }
    }
}

/// Chunk-layer attackers.
async fn chunk_attackers(port: u16) -> Vec<Report> {
    let size0 = async {
        let mut raw = Raw::handshaken(port).await;
        raw.set_chunk_size(0).await;
        report(
            "chunk size 0",
            raw.until_closed().await,
            "Set Chunk Size of 0",
        )
    };
    let size1 = async {
        // Legal but slow: a whole connect in 1-byte chunks must work.
        let mut raw = Raw::handshaken(port).await;
        let mut out = BytesMut::new();
        raw.enc.set_chunk_size(1, &mut out);
        raw.bytes(&out).await;
        raw.connect("live").await;
        assert_eq!(
            raw.next_verdict().await,
            Ev::Result,
            "connect in 1-byte chunks"
        );
        raw.set_chunk_size(0).await;
        report(
            "chunk size 1",
            raw.until_closed().await,
            "Set Chunk Size of 0",
        )
    };
    let size_max = async {
        let mut raw = Raw::handshaken(port).await;
        let mut out = BytesMut::new();
        raw.enc.set_chunk_size(0x7FFF_FFFF, &mut out);
        raw.bytes(&out).await;
        raw.connect("live").await;
        assert_eq!(
            raw.next_verdict().await,
            Ev::Result,
            "connect at chunk size 2^31-1"
        );
        // Then a header declaring 16 MiB - 1: over max_message_len, refused at the header.
        let mut h = vec![0x05, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0];
        h.extend([0u8; 64]);
        raw.bytes(&h).await;
        report(
            "chunk size 0x7FFFFFFF + 16 MiB header",
            raw.until_closed().await,
            "exceeds the limit",
        )
    };
    let trickle = async {
        // A 1 MiB message (the limit) declared, then 20 chunks trickled, then nothing: held
        // until the idle timeout, never more than max_pending_bytes.
        let mut raw = Raw::handshaken(port).await;
        let mut h = vec![0x05, 0, 0, 0, 0x10, 0x00, 0x00, 9, 1, 0, 0, 0];
        h.extend([0x17u8; 128]);
        raw.bytes(&h).await;
        for _ in 0..20 {
            let mut c = vec![0xC5];
            c.extend([0u8; 128]);
            raw.bytes(&c).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        report(
            "huge message trickled",
            raw.until_closed().await,
            "idle timeout",
        )
    };
    let pending = async {
        // Partial 1 MiB messages on many chunk streams: max_pending_bytes (2 MiB) ends it.
        let mut raw = Raw::handshaken(port).await;
        let mut out = BytesMut::new();
        raw.enc.set_chunk_size(65_536, &mut out);
        raw.bytes(&out).await;
        for csid in 3..60u8 {
            let mut h = vec![csid, 0, 0, 0, 0x10, 0x00, 0x00, 9, 1, 0, 0, 0];
            h.extend(vec![0u8; 65_536]);
            raw.bytes(&h).await;
        }
        report(
            "partial messages over max_pending_bytes",
            raw.until_closed().await,
            "bytes of partial messages exceed",
        )
    };
    let many_csids = async {
        // Thousands of chunk stream ids, each holding a partial message.
        let mut raw = Raw::handshaken(port).await;
        let mut buf = Vec::new();
        for csid in 64..3064u32 {
            let id = csid - 64;
            buf.extend([0x01, (id & 0xFF) as u8, (id >> 8) as u8]);
            buf.extend([0, 0, 0, 0, 0x03, 0xE8, 9, 1, 0, 0, 0]);
            buf.extend([0u8; 128]);
        }
        raw.bytes(&buf).await;
        report(
            "3000 chunk stream ids",
            raw.until_closed().await,
            "chunk streams in use",
        )
    };
    let fmt = |f: u8| async move {
        let mut raw = Raw::handshaken(port).await;
        let mut c = vec![(f << 6) | 9];
        c.extend([0u8; 7]);
        raw.bytes(&c).await;
        report(
            ["", "fmt 1 first", "fmt 2 first", "fmt 3 first"][usize::from(f)],
            raw.until_closed().await,
            "without a previous header",
        )
    };
    let ext_ts = async {
        // Extended timestamps (§5.3.1.3): a multi-chunk connect whose every chunk carries the
        // 4-byte extension, then fmt 3 pings with inherited extended timestamps.
        let mut raw = Raw::handshaken(port).await;
        let mut body = Vec::new();
        amf0::encode_all(&connect_values("live"), &mut body).expect("encode");
        let ext = 0xFFFF_FFFFu32.to_be_bytes();
        let mut out = vec![0x03, 0xFF, 0xFF, 0xFF];
        out.extend(&(body.len() as u32).to_be_bytes()[1..]);
        out.push(type_id::COMMAND_AMF0);
        out.extend([0, 0, 0, 0]);
        out.extend(ext);
        for (i, chunk) in body.chunks(128).enumerate() {
            if i > 0 {
                out.push(0xC3);
                out.extend(ext);
            }
            out.extend(chunk);
        }
        // A ping at timestamp 0xFFFFFF exactly (extended) and one delta past 2^32 (wraps).
        for ts in [0x00FF_FFFFu32, 0x0100_0000] {
            out.extend([
                0x02,
                0xFF,
                0xFF,
                0xFF,
                0,
                0,
                6,
                type_id::USER_CONTROL,
                0,
                0,
                0,
                0,
            ]);
            out.extend(ts.to_be_bytes());
            out.extend([0, 6, 0, 0, 0, 1]);
            out.push(0xC2);
            out.extend(ts.to_be_bytes());
            out.extend([0, 6, 0, 0, 0, 2]);
        }
        raw.bytes(&out).await;
        assert_eq!(
            raw.next_verdict().await,
            Ev::Result,
            "connect with extended timestamps"
        );
        raw.set_chunk_size(0).await;
        report(
            "extended timestamps",
            raw.until_closed().await,
            "Set Chunk Size of 0",
        )
    };
    let abort = async {
        let mut raw = Raw::handshaken(port).await;
        for csid in [0u32, 1, 9, 9999, 65_599, u32::MAX] {
            raw.message(2, type_id::ABORT, 0, csid.to_be_bytes().to_vec())
                .await;
        }
        raw.connect("live").await;
        assert_eq!(raw.next_verdict().await, Ev::Result, "connect after aborts");
        raw.message(2, type_id::ABORT, 0, vec![1, 2]).await;
        report(
            "Abort on unknown chunk streams",
            raw.until_closed().await,
            "protocol control message type 2 with a 2-byte body",
        )
    };
    let window = async {
        let mut raw = Raw::handshaken(port).await;
        raw.typed(Message::WindowAckSize(0)).await;
        raw.typed(Message::SetPeerBandwidth {
            size: u32::MAX,
            limit_type: LimitType::Dynamic,
        })
        .await;
        raw.typed(Message::WindowAckSize(1)).await;
        raw.connect("live").await;
        assert_eq!(
            raw.next_verdict().await,
            Ev::Result,
            "connect after odd windows"
        );
        raw.message(
            2,
            type_id::SET_PEER_BANDWIDTH,
            0,
            vec![0xFF, 0xFF, 0xFF, 0xFF, 9],
        )
        .await;
        report(
            "window ack 0, absurd peer bandwidth",
            raw.until_closed().await,
            "limit type 9",
        )
    };
    let (a, b, c, d, e, f) = tokio::join!(size0, size1, size_max, trickle, pending, many_csids);
    let (g, h, i, j, k, l) = tokio::join!(fmt(1), fmt(2), fmt(3), ext_ts, abort, window);
    vec![a, b, c, d, e, f, g, h, i, j, k, l]
}

/// AMF0/AMF3 bombs in `connect`.
async fn amf_attackers(port: u16) -> Vec<Report> {
    let deep0 = {
        let mut t = Vec::new();
        for _ in 0..20_000 {
            t.extend([0x03, 0x00, 0x01, b'a']);
        }
        connect_with(&t)
    };
    let long_string = connect_with(&[0x0C, 0xFF, 0xFF, 0xFF, 0xF0, b'a', b'b']);
    let huge_array = connect_with(&[0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x00]);
    let huge_ecma = connect_with(&[0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x01, b'a', 0x05]);
    // An object whose only property refers back to the object itself (AMF0 §2.9).
    let ref_loop0 = connect_with(&[
        0x03, 0x00, 0x03, b'a', b'p', b'p', 0x07, 0x00, 0x00, 0x00, 0x00, 0x09,
    ]);
    let truncated0 = connect_with(&[0x03, 0x00, 0x03, b'a', b'p', b'p', 0x02, 0x00, 0x10, b'l']);
    let deep3 = {
        let mut t = vec![0x11];
        for _ in 0..20_000 {
            t.extend([0x09, 0x01, 0x03, b'a']);
        }
        connect_with(&t)
    };
    let long3 = {
        let mut t = vec![0x11, 0x06];
        u29((0x0FFF_FFFF << 1) | 1, &mut t);
        t.extend(b"abc");
        connect_with(&t)
    };
    let count3 = {
        let mut t = vec![0x11, 0x09];
        u29((0x0FFF_FFFF << 1) | 1, &mut t);
        t.extend([0x01, 0x04, 0x01]);
        connect_with(&t)
    };
    let bytes3 = {
        let mut t = vec![0x11, 0x0C];
        u29((0x0FFF_FFFF << 1) | 1, &mut t);
        t.extend([1, 2, 3]);
        connect_with(&t)
    };
    // A dense array holding a reference to itself (object table index 0), and a reference
    // to an object never seen.
    let ref_loop3 = connect_with(&[0x11, 0x09, 0x03, 0x01, 0x09, 0x00]);
    let dangling3 = connect_with(&[0x11, 0x0A, 0x0E]);
    let truncated3 = connect_with(&[0x11, 0x0A, 0x0B]);
    let amf3_message = {
        // Message type 17 (AMF3 command) with a bomb after the format byte.
        let mut t = vec![0x00];
        t.extend(connect_with(&[0x11, 0x09, 0x07, 0x01]));
        t
    };
    let cases: Vec<(&'static str, u8, Vec<u8>)> = vec![
        ("AMF0 nesting 20000 deep", type_id::COMMAND_AMF0, deep0),
        (
            "AMF0 long string 4 GiB declared",
            type_id::COMMAND_AMF0,
            long_string,
        ),
        (
            "AMF0 strict array 2^32-1 declared",
            type_id::COMMAND_AMF0,
            huge_array,
        ),
        (
            "AMF0 ECMA array 2^32-1 declared",
            type_id::COMMAND_AMF0,
            huge_ecma,
        ),
        ("AMF0 reference loop", type_id::COMMAND_AMF0, ref_loop0),
        ("AMF0 truncated string", type_id::COMMAND_AMF0, truncated0),
        ("AMF3 nesting 20000 deep", type_id::COMMAND_AMF0, deep3),
        ("AMF3 string 256 MiB declared", type_id::COMMAND_AMF0, long3),
        ("AMF3 array 2^28 declared", type_id::COMMAND_AMF0, count3),
        (
            "AMF3 ByteArray 256 MiB declared",
            type_id::COMMAND_AMF0,
            bytes3,
        ),
        ("AMF3 reference loop", type_id::COMMAND_AMF0, ref_loop3),
        ("AMF3 dangling reference", type_id::COMMAND_AMF0, dangling3),
        ("AMF3 truncated object", type_id::COMMAND_AMF0, truncated3),
        (
            "AMF3 command message bomb",
            type_id::COMMAND_AMF3,
            amf3_message,
        ),
    ];
    join_all(cases.into_iter().map(|(name, tid, body)| async move {
        // The name and transaction id decode, the rest does not: the connect is answered
        // with `_error`, then the connection ends with a logged protocol error.
        let report = bad_body(port, name, false, tid, body, "protocol error").await;
        assert_eq!(
            report.events,
            [Ev::Error("NetConnection.Call.Failed".into()), Ev::Closed],
            "{name}: the connect's transaction is answered before the close"
        );
        report
    }))
    .await
}

/// Malformed commands, names and stream misuse.
async fn command_attackers(port: u16, canary: &'static str) -> Vec<Report> {
    let long_name: &'static str = Box::leak("x".repeat(5000).into_boxed_str());
    let null = || Amf0Value::Null;
    // A transaction id of the wrong type is read leniently (as 0) by the command parser, as
    // most servers do: those two are answered, then closed by the idle timeout.
    let v = vec![
        bad_command(
            port,
            "connect without arguments",
            false,
            vec![s("connect")],
            "protocol error",
        ),
        bad_command(
            port,
            "connect with a number app",
            false,
            vec![s("connect"), n(1.0), Amf0Value::object([("app", n(5.0))])],
            "protocol error",
        ),
        bad_command(
            port,
            "connect with a string transaction id",
            false,
            vec![
                s("connect"),
                s("x"),
                Amf0Value::object([("app", s("live"))]),
            ],
            "idle timeout",
        ),
        bad_command(
            port,
            "createStream before connect",
            false,
            vec![s("createStream"), n(2.0), null()],
            "before connect",
        ),
        bad_command(
            port,
            "createStream with a string transaction id",
            true,
            vec![s("createStream"), s("two")],
            "idle timeout",
        ),
        bad_command(
            port,
            "publish a number",
            true,
            vec![s("publish"), n(0.0), null(), n(42.0)],
            "protocol error",
        ),
        bad_command(
            port,
            "play without a name",
            true,
            vec![s("play"), n(0.0), null()],
            "protocol error",
        ),
        bad_command(
            port,
            "publish to a name in use",
            true,
            vec![s("publish"), n(0.0), null(), s(canary), s("live")],
            "publish refused",
        ),
        bad_command(
            port,
            "play ../",
            true,
            vec![s("play"), n(0.0), null(), s("../../etc/passwd")],
            "path segment",
        ),
        bad_command(
            port,
            "publish with control characters",
            true,
            vec![s("publish"), n(0.0), null(), s("a\u{1}\u{7f}b"), s("live")],
            "control or white-space",
        ),
        bad_command(
            port,
            "play a 5000-byte name",
            true,
            vec![s("play"), n(0.0), null(), s(long_name)],
            "longer than",
        ),
        bad_command(
            port,
            "connect to app ..",
            false,
            connect_values(".."),
            "path segment",
        ),
        bad_command(
            port,
            "connect to a 5000-byte app",
            false,
            connect_values(long_name),
            "longer than",
        ),
    ];
    let shared_object = async {
        // A shared-object message (type 19) and unknown types are ignored; garbage in a
        // shared-object body is a protocol error.
        let mut raw = Raw::connected(port).await;
        for t in [7u8, 23, 99, 255] {
            raw.message(3, t, 0, vec![1, 2, 3]).await;
        }
        // Name, version, 8 flag bytes, then one Use event with no data.
        let mut so = vec![
            0x00, 0x03, b'o', b'b', b'j', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        so.extend([1, 0, 0, 0, 0]); // Use event, no data
        raw.message(3, type_id::SHARED_OBJECT_AMF0, 0, so).await;
        raw.command(0, &[s("createStream"), n(2.0), Amf0Value::Null])
            .await;
        assert_eq!(
            raw.next_verdict().await,
            Ev::Result,
            "still served after SO and unknown types"
        );
        raw.message(3, type_id::SHARED_OBJECT_AMF0, 0, vec![0x00, 0xFF])
            .await;
        report(
            "shared object and unknown types",
            raw.until_closed().await,
            "shared object",
        )
    };
    let unread = async {
        // Never reads: replies must not pile up past max_unread_bytes.
        let mut raw = Raw::connected(port).await;
        let mut body = Vec::new();
        amf0::encode_all(&[s("noSuchMethod"), n(7.0), Amf0Value::Null], &mut body).expect("encode");
        let mut burst = BytesMut::new();
        for _ in 0..2000 {
            let m = RawMessage {
                type_id: type_id::COMMAND_AMF0,
                stream_id: 0,
                timestamp: 0,
                payload: Bytes::from(body.clone()),
            };
            raw.enc.encode(3, &m, &mut burst);
        }
        let burst = burst.freeze();
        let start = Instant::now();
        let mut closed = false;
        while start.elapsed() < Duration::from_secs(15) {
            match tokio::time::timeout(Duration::from_secs(1), raw.sock.write_all(&burst)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    closed = true;
                    break;
                }
                // The server stopped reading: it must close soon after.
                Err(_) => {}
            }
        }
        assert!(closed, "a peer that never reads was not closed");
        report(
            "never reads its replies",
            (raw.port, vec![Ev::Closed]),
            "peer is not reading",
        )
    };
    let (so, un) = tokio::join!(shared_object, unread);
    let mut all = join_all(v).await;
    all.push(so);
    all.push(un);
    all
}

/// Every attacker saw its connection closed, and the log has a line naming its port and the
/// expected reason.
fn check_reports(server: &Server, reports: &[Report]) {
    // Log lines are written as the connections end; give the last ones a moment.
    std::thread::sleep(Duration::from_millis(300));
    let log = server.plain_log();
    let mut failures = Vec::new();
    for r in reports {
        if r.events.last() != Some(&Ev::Closed) {
            failures.push(format!(
                "{}: connection not closed ({:?})",
                r.name, r.events
            ));
        }
        let peer = format!("127.0.0.1:{}", r.port);
        let named = log.lines().any(|l| {
            l.match_indices(&peer)
                .any(|(i, _)| !l[i + peer.len()..].starts_with(|c: char| c.is_ascii_digit()))
                && l.contains(r.log)
        });
        if !named {
            failures.push(format!(
                "{}: no log line with {peer} and {:?}; lines for it:\n  {}",
                r.name,
                r.log,
                log.lines()
                    .filter(|l| l.contains(&peer))
                    .collect::<Vec<_>>()
                    .join("\n  ")
            ));
        }
    }
    assert!(failures.is_empty(), "attackers:\n{}", failures.join("\n"));
}

/// Hold `count` sockets that never say a word; returns them.
async fn idle_sockets(port: u16, count: usize) -> Vec<TcpStream> {
    let mut socks = Vec::with_capacity(count);
    for _ in 0..count {
        socks.push(tcp(port).await);
    }
    socks
}

/// Connect and drop at once, `count` times; every tenth finishes the handshake first.
async fn churn(port: u16, count: usize) {
    for i in 0..count {
        if i % 10 == 0 {
            let raw = Raw::handshaken(port).await;
            drop(raw);
        } else {
            drop(tcp(port).await);
        }
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::test]
async fn hostile_clients_do_not_disturb_the_canary() {
    let (server, _config) = server_with_config(HOSTILE_CONFIG, "2");
    let port = server.port();
    let pid = server.pid();
    let canary = Canary::start(port, "canary").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = common::rss_kib(pid);
    let fds_before = fd_count(pid);

    // Phase 1: protocol attackers, all at once.
    let watch = RssWatch::start(pid);
    let (h, c, a, m) = tokio::join!(
        handshake_attackers(port),
        chunk_attackers(port),
        amf_attackers(port),
        command_attackers(port, "canary"),
    );
    let peak = watch.finish().await;
    let reports: Vec<Report> = h.into_iter().chain(c).chain(a).chain(m).collect();
    let attackers = reports.len();
    check_reports(&server, &reports);
    fresh_client_works(port, "canary").await;

    // Phase 2: 2000 sockets that never handshake, held while the canary streams.
    let before_idle = common::rss_kib(pid);
    let socks = idle_sockets(port, 2000).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with_idle = common::rss_kib(pid);
    fresh_client_works(port, "canary").await;
    // The handshake timeout (2 s) closes every one of them.
    let closed = join_all(
        socks
            .into_iter()
            .map(|mut s| async move { read_to_close(&mut s).await == vec![Ev::Closed] }),
    )
    .await;
    assert!(closed.iter().all(|c| *c), "an idle socket was never closed");

    // Phase 3: connect/disconnect churn.
    churn(port, 1000).await;
    fresh_client_works(port, "canary").await;

    // After the attackers: memory and file descriptors come back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = common::rss_kib(pid);
    let fds_after = fd_count(pid);
    let frames = canary.finish("hostile suite", 20).await;
    let per_idle = (with_idle.saturating_sub(before_idle)) as f64 * 1024.0 / 2000.0;
    eprintln!(
        "FIGURES attackers={attackers} baseline_rss={:.1}MiB peak_rss={:.1}MiB after_rss={:.1}MiB \
         idle_2000_rss={:.1}MiB per_idle_connection={per_idle:.0}B fds_before={fds_before} fds_after={fds_after} canary_frames={frames}",
        mib(baseline),
        mib(peak),
        mib(after),
        mib(with_idle)
    );
    // Bound: each attacker may hold at most max_pending_bytes (2 MiB) + a read buffer of one
    // chunk (≤ max_message_len, 1 MiB) + max_unread_bytes (1 MiB) of replies: 4 MiB each.
    let bound = baseline + (attackers as u64) * 4 * 1024 + 64 * 1024;
    assert!(
        peak <= bound,
        "peak RSS {:.1} MiB over the bound {:.1} MiB",
        mib(peak),
        mib(bound)
    );
    assert!(
        after <= baseline + 48 * 1024,
        "RSS did not come back: {:.1} MiB after, {:.1} MiB baseline",
        mib(after),
        mib(baseline)
    );
    assert!(
        fds_after <= fds_before + 2,
        "file descriptors leaked: {fds_before} before, {fds_after} after"
    );
    let mut server = server;
    assert!(server.is_running(), "server died");
    assert!(!server.log().contains("panicked"), "a panic in the log");
}

#[tokio::test]
async fn a_panic_ends_only_its_connection() {
    // One arbiter: the canary shares it with the panicking connection. A per-IP limit of 6
    // shows the panicked connections' cleanup ran (10 panics would otherwise lock us out).
    let (server, _config) = server_with_config(
        "[debug]\npanic_on_command = \"boom\"\n[limits]\nmax_connections_per_ip = 6\n",
        "1",
    );
    let port = server.port();
    let canary = Canary::start(port, "canary").await;
    let mut ports = Vec::new();
    for _ in 0..10 {
        let mut raw = Raw::connected(port).await;
        raw.command(0, &[s("boom"), n(2.0), Amf0Value::Null]).await;
        let (p, events) = raw.until_closed().await;
        assert_eq!(events.last(), Some(&Ev::Closed));
        ports.push(p);
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    fresh_client_works(port, "canary").await;
    canary.finish("panic isolation", 20).await;
    let log = server.plain_log();
    assert!(
        log.contains("fault injection"),
        "no panic message in the log"
    );
    assert_eq!(
        log.matches("panic in actor handler").count(),
        10,
        "every panic is logged once"
    );
    for p in ports {
        let peer = format!("peer=127.0.0.1:{p} ");
        assert!(
            log.lines()
                .any(|l| l.contains(&peer) && l.contains("panic in the connection handler")),
            "no close reason logged for the panicked connection on port {p}"
        );
    }
    let mut server = server;
    assert!(server.is_running(), "server died");
}

/// Memory per idle connection and per player, for docs/security.md.
#[tokio::test]
async fn resource_figures() {
    let (server, _config) = server_with_config(HOSTILE_CONFIG, "2");
    let port = server.port();
    let pid = server.pid();
    let canary = Canary::start(port, "figures").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let base = common::rss_kib(pid);
    let mut players = Vec::new();
    for _ in 0..200 {
        let mut c = RtmpClient::connect(&url(port, "live", "figures"), &client_config())
            .await
            .expect("player connects");
        let id = c.create_stream().await.expect("createStream");
        c.play(id, "figures").await.expect("play");
        let (mut reader, writer) = c.into_split();
        players.push(tokio::spawn(async move {
            let _writer = writer;
            while reader.next_event().await.is_ok() {}
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let with_players = common::rss_kib(pid);
    let per_player = with_players.saturating_sub(base) as f64 * 1024.0 / 200.0;
    for p in &players {
        p.abort();
    }
    canary.finish("figures", 20).await;
    eprintln!(
        "FIGURES players=200 base_rss={:.1}MiB with_players={:.1}MiB per_player={per_player:.0}B",
        mib(base),
        mib(with_players)
    );
    assert!(
        per_player < 256.0 * 1024.0,
        "a player costs {per_player:.0} bytes"
    );
}

/// The soak run (`scripts/soak.sh`): canary, players, churn and the attackers in a loop for
/// `SOAK_SECS` seconds; samples RSS and open descriptors every `SOAK_SAMPLE_SECS` and fails
/// when the second half grows over the first.
#[tokio::test]
#[ignore = "long: run with scripts/soak.sh"]
async fn soak() {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let sample: u64 = std::env::var("SOAK_SAMPLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let (server, _config) = server_with_config(HOSTILE_CONFIG, "2");
    let port = server.port();
    let pid = server.pid();
    let canary = Canary::start(port, "soak").await;
    let start = Instant::now();
    let mut samples: Vec<(u64, u64, usize)> = Vec::new();
    let mut next_sample = Instant::now();
    let mut rounds = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        // One round: attackers, churn, a short-lived player.
        let (h, c, a, m) = tokio::join!(
            handshake_attackers(port),
            chunk_attackers(port),
            amf_attackers(port),
            command_attackers(port, "soak"),
        );
        let reports: Vec<Report> = h.into_iter().chain(c).chain(a).chain(m).collect();
        assert!(reports.iter().all(|r| r.events.last() == Some(&Ev::Closed)));
        churn(port, 200).await;
        fresh_client_works(port, "soak").await;
        rounds += 1;
        if Instant::now() >= next_sample {
            // Sample when the round's connections are gone.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let t = start.elapsed().as_secs();
            let (rss, fds) = (common::rss_kib(pid), fd_count(pid));
            eprintln!(
                "SOAK t={t}s round={rounds} rss={:.1}MiB fds={fds}",
                mib(rss)
            );
            samples.push((t, rss, fds));
            next_sample = Instant::now() + Duration::from_secs(sample);
        }
    }
    let frames = canary.finish("soak", 20).await;
    assert!(samples.len() >= 4, "too few samples: run longer");
    let half = samples.len() / 2;
    let max_first = samples[..half].iter().map(|s| s.1).max().unwrap_or(0);
    let max_second = samples[half..].iter().map(|s| s.1).max().unwrap_or(0);
    let fds_first = samples[..half].iter().map(|s| s.2).max().unwrap_or(0);
    let fds_last = samples.last().map_or(0, |s| s.2);
    eprintln!(
        "SOAK done: {secs}s, {rounds} rounds, canary frames {frames}, rss max first half {:.1}MiB, second half {:.1}MiB, fds {fds_first} -> {fds_last}",
        mib(max_first),
        mib(max_second)
    );
    assert!(
        max_second <= max_first + max_first / 10 + 8 * 1024,
        "RSS grew: {:.1} MiB then {:.1} MiB",
        mib(max_first),
        mib(max_second)
    );
    assert!(
        fds_last <= fds_first + 2,
        "descriptors grew: {fds_first} -> {fds_last}"
    );
    let mut server = server;
    assert!(server.is_running(), "server died");
}
