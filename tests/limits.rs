//! Limits and timeouts (operations issue): each is a clear, logged refusal that never affects
//! established streams. A canary publisher and player stream throughout each test and must
//! receive every frame.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Server;
use reflector::client::synth::{self, Synth, SynthConfig};
use reflector::client::{
    ClientConfig, ClientError, ClientEvent, ClientReader, RtmpClient, RtmpUrl,
};
use reflector::protocol::message::type_id;

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

/// A publisher and a player of one stream; `check` sends frames and asserts all arrive.
struct Canary {
    publisher: RtmpClient,
    synth: Synth,
    player: ClientReader,
    next_seq: u64,
}

impl Canary {
    async fn start(server: &Server, name: &str) -> Canary {
        let mut publisher = RtmpClient::connect(&url(server, name), &config())
            .await
            .expect("canary publisher connects");
        let stream_id = publisher.create_stream().await.expect("createStream");
        publisher
            .publish(stream_id, name)
            .await
            .expect("canary publishes");
        let synth = Synth::new(SynthConfig {
            stream_id,
            gop: 10,
            ..SynthConfig::default()
        });
        for m in synth.headers() {
            publisher.feed(&m);
        }
        publisher.flush().await.expect("headers");
        let mut player = RtmpClient::connect(&url(server, name), &config())
            .await
            .expect("canary player connects");
        let id = player.create_stream().await.expect("createStream");
        player.play(id, name).await.expect("canary plays");
        let (player, _writer) = player.into_split();
        Canary {
            publisher,
            synth,
            player,
            next_seq: 0,
        }
    }

    /// Send `n` ticks and read until their video frames arrived, in order, none missing.
    async fn check(&mut self, n: u64) {
        let mut out = Vec::new();
        for _ in 0..n {
            out.clear();
            self.synth.next_tick(&mut out);
            for m in &out {
                self.publisher.feed(m);
            }
            self.publisher
                .flush()
                .await
                .expect("canary publisher still up");
        }
        let last = self.synth.video_frames() - 1;
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = tokio::time::timeout(left, self.player.next_event())
                .await
                .expect("canary stalled")
                .expect("canary player still up");
            if let ClientEvent::Media(m) = event {
                if m.type_id != type_id::VIDEO {
                    continue;
                }
                let Some(seq) = synth::video_seq(&m.payload) else {
                    continue;
                };
                if self.next_seq == 0 && seq > 0 {
                    // First frame seen by a late player: a keyframe from the cache.
                    self.next_seq = seq;
                }
                assert_eq!(seq, self.next_seq, "canary lost a frame");
                self.next_seq += 1;
                if seq == last {
                    return;
                }
            }
        }
    }
}

/// Read from a raw socket until the server closes it (EOF or reset), within `limit`.
fn closed_within(socket: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline {
        let _ = socket.set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(10)),
        ));
        match socket.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
    false
}

/// A raw socket through the client handshake, ready for chunks.
fn raw_handshake(server: &Server) -> TcpStream {
    use reflector::protocol::handshake::{ClientHandshake, HandshakeState};
    let mut socket = TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
    socket.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut hs = ClientHandshake::new(false);
    let mut out = bytes::BytesMut::new();
    hs.start(&mut out);
    socket.write_all(&out).expect("C0C1");
    let mut input = bytes::BytesMut::new();
    let mut buf = [0u8; 4096];
    loop {
        out.clear();
        let state = hs.process(&mut input, &mut out).expect("handshake");
        socket.write_all(&out).expect("C2");
        if state == HandshakeState::Done {
            return socket;
        }
        let n = socket.read(&mut buf).expect("read S0S1S2");
        assert!(n > 0, "server closed during the handshake");
        input.extend_from_slice(&buf[..n]);
    }
}

async fn expect_status(result: Result<(), ClientError>, code: &str) {
    match result {
        Err(ClientError::Status { code: c, .. }) if c == code => {}
        other => panic!("expected {code}, got {other:?}"),
    }
}

#[tokio::test]
async fn connection_limits_total_and_per_ip() {
    let (server, _cfg) = common::reflector_with_config("[limits]\nmax_connections = 4\n");
    let mut canary = Canary::start(&server, "c").await;
    canary.check(5).await;
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(("127.0.0.1", server.port())).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut refused = TcpStream::connect(("127.0.0.1", server.port())).expect("tcp connect");
    refused.write_all(&[3]).ok();
    assert!(
        closed_within(&mut refused, WAIT),
        "fifth connection not refused"
    );
    canary.check(5).await;
    held.clear();
    let log = server.log();
    assert!(
        log.contains("connection refused: limit reached"),
        "{}",
        server.log_tail(20)
    );

    let (server, _cfg) = common::reflector_with_config("[limits]\nmax_connections_per_ip = 3\n");
    let mut canary = Canary::start(&server, "c").await;
    let _one = TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
    std::thread::sleep(Duration::from_millis(200));
    let mut refused = TcpStream::connect(("127.0.0.1", server.port())).expect("tcp connect");
    assert!(
        closed_within(&mut refused, WAIT),
        "fourth connection from one IP not refused"
    );
    canary.check(5).await;
}

#[tokio::test]
async fn stream_and_subscriber_limits() {
    let (server, _cfg) = common::reflector_with_config(
        "[limits]\nmax_streams = 2\nmax_subscribers_per_stream = 1\n",
    );
    let mut canary = Canary::start(&server, "c").await;
    let mut second = RtmpClient::connect(&url(&server, "b"), &config())
        .await
        .expect("connect");
    let id = second.create_stream().await.expect("createStream");
    second.publish(id, "b").await.expect("second stream fits");
    let mut third = RtmpClient::connect(&url(&server, "x"), &config())
        .await
        .expect("connect");
    let id = third.create_stream().await.expect("createStream");
    expect_status(third.publish(id, "x").await, "NetStream.Publish.BadName").await;
    let mut extra = RtmpClient::connect(&url(&server, "c"), &config())
        .await
        .expect("connect");
    let id = extra.create_stream().await.expect("createStream");
    expect_status(extra.play(id, "c").await, "NetStream.Play.Failed").await;
    canary.check(10).await;
    let log = server.log();
    assert!(
        log.contains("limit of 2 streams"),
        "{}",
        server.log_tail(20)
    );
    assert!(
        log.contains("limit of 1 subscribers"),
        "{}",
        server.log_tail(20)
    );
}

#[tokio::test]
async fn handshake_idle_and_publisher_idle_timeouts() {
    let (server, _cfg) = common::reflector_with_config(
        "[rtmp]\nhandshake_timeout_ms = 500\nidle_timeout_ms = 800\n[live]\npublisher_idle_timeout_ms = 1500\n",
    );
    let mut canary = Canary::start(&server, "c").await;
    // Half a handshake, then silence.
    let mut slow = TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
    slow.write_all(&[3, 0, 0, 0]).expect("write");
    let started = Instant::now();
    assert!(
        closed_within(&mut slow, Duration::from_secs(3)),
        "slow handshake not closed"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "handshake timeout too late"
    );
    canary.check(2).await;
    // Connected, then neither publish nor play; and a publisher that stops sending media.
    // The canary keeps publishing meanwhile (it is subject to the same idle timeout).
    let mut idle = RtmpClient::connect(&url(&server, "i"), &config())
        .await
        .expect("connect");
    let mut quiet = RtmpClient::connect(&url(&server, "q"), &config())
        .await
        .expect("connect");
    let id = quiet.create_stream().await.expect("createStream");
    quiet.publish(id, "q").await.expect("publish");
    let started = Instant::now();
    let (mut idle_closed, mut quiet_closed) = (None, None);
    while (idle_closed.is_none() || quiet_closed.is_none())
        && started.elapsed() < Duration::from_secs(6)
    {
        if idle_closed.is_none() {
            if let Ok(Err(e)) =
                tokio::time::timeout(Duration::from_millis(100), idle.next_event()).await
            {
                assert!(e.is_disconnect(), "idle: {e}");
                idle_closed = Some(started.elapsed());
            }
        }
        if quiet_closed.is_none() {
            if let Ok(Err(e)) =
                tokio::time::timeout(Duration::from_millis(100), quiet.next_event()).await
            {
                assert!(e.is_disconnect(), "quiet: {e}");
                quiet_closed = Some(started.elapsed());
            }
        }
        canary.check(2).await;
    }
    eprintln!(
        "idle connection closed after {idle_closed:?}, silent publisher after {quiet_closed:?}"
    );
    assert!(idle_closed.is_some(), "idle connection not closed");
    assert!(quiet_closed.is_some(), "silent publisher not closed");
    canary.check(10).await;
    let log = server.log();
    assert!(
        log.contains("handshake not finished within"),
        "{}",
        server.log_tail(30)
    );
    assert!(
        log.contains("no publish or play in time"),
        "{}",
        server.log_tail(30)
    );
    assert!(
        log.contains("publisher sent no media: closing"),
        "{}",
        server.log_tail(30)
    );
}

#[tokio::test]
async fn message_size_and_chunk_stream_limits() {
    let (server, _cfg) =
        common::reflector_with_config("[rtmp]\nmax_message_len = 4096\nmax_chunk_streams = 6\n");
    let mut canary = Canary::start(&server, "c").await;
    // A publisher sending a video frame larger than the limit.
    let mut big = RtmpClient::connect(&url(&server, "big"), &config())
        .await
        .expect("connect");
    let id = big.create_stream().await.expect("createStream");
    big.publish(id, "big").await.expect("publish");
    let frame = reflector::protocol::message::RawMessage {
        type_id: type_id::VIDEO,
        stream_id: id,
        timestamp: 0,
        payload: synth::video_frame(0, true, 10_000),
    };
    let _ = big.send(&frame).await;
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            if let Err(e) = big.next_event().await {
                return e.is_disconnect();
            }
        }
    })
    .await;
    assert_eq!(
        closed,
        Ok(true),
        "oversized message did not close the connection"
    );
    // A client using more chunk stream ids than allowed.
    let mut many = raw_handshake(&server);
    let mut bytes = bytes::BytesMut::new();
    for csid in 10..20 {
        let m = reflector::protocol::message::RawMessage {
            type_id: type_id::AUDIO,
            stream_id: 1,
            timestamp: 0,
            payload: synth::aac_frame(0, 16),
        };
        reflector::protocol::chunk::chunk_message(csid, &m, 128, &mut bytes);
    }
    many.write_all(&bytes).expect("write chunks");
    assert!(
        closed_within(&mut many, WAIT),
        "too many chunk streams did not close the connection"
    );
    canary.check(10).await;
    let log = server.log();
    assert!(
        log.contains("exceeds the limit of 4096"),
        "{}",
        server.log_tail(30)
    );
    assert!(
        log.contains("more than 6 chunk streams"),
        "{}",
        server.log_tail(30)
    );
}
