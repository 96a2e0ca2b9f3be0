//! Deep nesting from a peer (issue 20 item 1, issue 21 item 3): aggregates inside aggregates
//! and AMF values nested 10, 1000, 100 000 and 1 000 000 deep, in every message kind that
//! carries them (aggregate 22, command 0x14/0x11, data 0x12/0x0F as `@setDataFrame` and as
//! plain `onTextData`, shared object 0x13/0x10), sent while a canary stream plays. Shallow
//! (10) input works where it is legal; deeper input closes the offender with a log line naming
//! the reason, except data, which is dropped, counted and logged once (never relayed); the
//! canary never stalls and the process lives. Also: shared objects resolve AMF0 references
//! with the command path's resolver, and real librtmp players (rtmpdump, GStreamer `rtmpsrc`)
//! survive a deep `onTextData` because it never reaches them.
//!
//! The server allows 16 MiB - 1 messages (the RTMP maximum) so that even 1 000 000 nested
//! aggregates (15 MB) reach the code that splits them instead of stopping at the chunk layer.

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Server;
use futures_util::future::{join_all, FutureExt};
use reflector::client::synth::{self, Synth, SynthConfig};
use reflector::client::{ClientConfig, ClientEvent, RtmpClient, RtmpUrl};
use reflector::protocol::amf0::{self, Amf0Value, AmfLimits, MAX_AMF_DEPTH};
use reflector::protocol::amf3;
use reflector::protocol::message::{type_id, RawMessage, SharedObjectEvent};

const DEPTHS: [usize; 4] = [10, 1000, 100_000, 1_000_000];

const CONFIG: &str = r#"
[rtmp]
max_message_len = 16777215
max_pending_bytes = 33554432
"#;

/// Longest wait for any verdict.
const VERDICT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// Deep bytes, built in linear time (prefix, core, suffix).

/// AMF0 strict arrays of one item, `levels` deep, around a null.
fn amf0_arrays(levels: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(levels * 5 + 1);
    for _ in 0..levels {
        b.extend_from_slice(&[0x0A, 0, 0, 0, 1]);
    }
    b.push(0x05);
    b
}

/// AMF0 ECMA arrays `{a: ...}`, `levels` deep, around a null.
fn amf0_ecma(levels: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(levels * 10 + 1);
    for _ in 0..levels {
        b.extend_from_slice(&[0x08, 0, 0, 0, 1, 0, 1, b'a']);
    }
    b.push(0x05);
    for _ in 0..levels {
        b.extend_from_slice(&[0, 0, 0x09]);
    }
    b
}

/// AMF0 objects `{a: ...}`, `levels` deep, around a null.
fn amf0_objects(levels: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(levels * 7 + 1);
    for _ in 0..levels {
        b.extend_from_slice(&[0x03, 0, 1, b'a']);
    }
    b.push(0x05);
    for _ in 0..levels {
        b.extend_from_slice(&[0, 0, 0x09]);
    }
    b
}

/// AvmPlus, then AMF3 arrays of one dense item, `levels` deep, around a null.
fn amf3_arrays(levels: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(levels * 3 + 2);
    b.push(0x11);
    for _ in 0..levels {
        b.extend_from_slice(&[0x09, 0x03, 0x01]);
    }
    b.push(0x01);
    b
}

fn amf0_string(s: &str) -> Vec<u8> {
    let mut b = Vec::new();
    amf0::encode(&Amf0Value::String(s.into()), &mut b).expect("encode");
    b
}

fn flv_tag_header(tag_type: u8, size: usize, ts: u32) -> [u8; 11] {
    let s = (size as u32).to_be_bytes();
    let t = ts.to_be_bytes();
    [tag_type, s[1], s[2], s[3], t[1], t[2], t[3], t[0], 0, 0, 0]
}

/// An aggregate message body: `levels` aggregates (this message counts as the first), the
/// innermost holding one video tag. `levels == 1` is a legal aggregate.
fn nested_aggregate(levels: usize, video: &[u8]) -> Vec<u8> {
    let mut lens = Vec::with_capacity(levels);
    let mut len = 11 + video.len() + 4;
    lens.push(len);
    for _ in 1..levels {
        len += 15;
        lens.push(len);
    }
    let mut b = Vec::with_capacity(len);
    // lens[j] is the whole tag of level j (0 = the video tag); the tag of level j >= 1 has a
    // body of lens[j - 1].
    for j in (1..levels).rev() {
        b.extend_from_slice(&flv_tag_header(type_id::AGGREGATE, lens[j - 1], 0));
    }
    b.extend_from_slice(&flv_tag_header(type_id::VIDEO, video.len(), 0));
    b.extend_from_slice(video);
    b.extend_from_slice(&((video.len() + 11) as u32).to_be_bytes());
    for j in 1..levels {
        b.extend_from_slice(&((lens[j - 1] + 11) as u32).to_be_bytes());
    }
    b
}

// ---------------------------------------------------------------------------------------
// Every recursive walk of a value at the deepest depth any limit allows fits a small stack.

#[test]
fn every_walk_of_the_deepest_legal_value_fits_a_quarter_of_an_arbiter_stack() {
    // Arbiter threads get the std default of 2 MiB; debug builds use more stack per frame.
    let stack = if cfg!(debug_assertions) { 1536 } else { 512 } << 10;
    std::thread::Builder::new()
        .stack_size(stack)
        .spawn(|| {
            let limits = AmfLimits {
                max_depth: usize::MAX,
                max_values: 1 << 20,
            };
            let d = MAX_AMF_DEPTH;
            // With a reference at the bottom, so that the resolver walks all the way down.
            let mut with_ref = vec![0x03, 0, 1, b'r', 0x03, 0, 0, 0x09];
            with_ref.extend_from_slice(&[0, 1, b'a']);
            with_ref.extend(amf0_objects(d - 2));
            with_ref.truncate(with_ref.len() - 3 * (d - 2) - 1);
            with_ref.extend_from_slice(&[0x07, 0, 1]);
            with_ref.extend(std::iter::repeat_n([0, 0, 0x09], d - 1).flatten());
            for bytes in [
                amf0_arrays(d),
                amf0_objects(d),
                amf0_ecma(d),
                amf3_arrays(d),
                with_ref,
            ] {
                let values = amf0::decode_all(&bytes, &limits).expect("decodes at the limit");
                let values = amf0::resolve_references(values, &limits).expect("resolves");
                assert!(!values[0].contains_reference());
                let mut out = Vec::new();
                amf0::encode_all(&values, &mut out).expect("encodes");
                let copy = values.clone();
                assert!(copy == values);
                let text = format!("{values:?}");
                let pretty = format!("{values:#?}");
                assert!(text.len() > d && pretty.len() > text.len());
                if let Amf0Value::AvmPlus(v) = &values[0] {
                    assert_eq!(v.weight_and_height().1, d);
                    let mut out = Vec::new();
                    amf3::encode(v, &mut out).expect("AMF3 encodes");
                }
                drop(copy);
                drop(values);
                // One more level is refused, whatever the limits say.
                let deeper = match bytes[0] {
                    0x0A => amf0_arrays(d + 1),
                    0x08 => amf0_ecma(d + 1),
                    0x11 => amf3_arrays(d + 1),
                    _ => amf0_objects(d + 1),
                };
                assert!(amf0::decode_all(&deeper, &limits).is_err());
            }
        })
        .expect("spawn")
        .join()
        .expect("every walk fits the stack");
}

// ---------------------------------------------------------------------------------------
// Clients.

fn url(port: u16, name: &str) -> RtmpUrl {
    RtmpUrl {
        host: "127.0.0.1".into(),
        port,
        app: "live".into(),
        stream: name.into(),
        tls: false,
    }
}

fn config() -> ClientConfig {
    ClientConfig {
        timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    }
}

/// A publisher of `name`: connected, publishing, headers sent. Returns it with its message
/// stream id and synth.
async fn publisher(port: u16, name: &str, seq_base: u64) -> (RtmpClient, u32, Synth) {
    let mut c = RtmpClient::connect(&url(port, name), &config())
        .await
        .expect("publisher connects");
    let id = c.create_stream().await.expect("createStream");
    c.publish(id, name).await.expect("publish");
    let synth = Synth::new(SynthConfig {
        stream_id: id,
        seq_base,
        ..SynthConfig::default()
    });
    for m in synth.headers() {
        c.feed(&m);
    }
    c.flush().await.expect("headers");
    (c, id, synth)
}

/// `n` ticks of media.
async fn ticks(c: &mut RtmpClient, synth: &mut Synth, n: usize) {
    let mut out = Vec::new();
    for _ in 0..n {
        synth.next_tick(&mut out);
    }
    for m in &out {
        c.feed(m);
    }
    c.flush().await.expect("media");
}

/// A player of `name`, ready.
async fn player(port: u16, name: &str) -> RtmpClient {
    let mut c = RtmpClient::connect(&url(port, name), &config())
        .await
        .expect("player connects");
    let id = c.create_stream().await.expect("createStream");
    c.play(id, name).await.expect("play");
    c
}

/// Reads until the server closes the connection; `Err` with what arrived meanwhile if it does
/// not within [`VERDICT`].
async fn closed(c: &mut RtmpClient) -> Result<(), String> {
    let deadline = Instant::now() + VERDICT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, c.next_event()).await {
            Ok(Ok(ev)) => seen.push(format!("{ev:?}").chars().take(120).collect::<String>()),
            Ok(Err(_)) => return Ok(()),
            Err(_) => return Err(format!("not closed; saw {seen:?}")),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The canary: a paced publisher and a player that timestamps every video frame.

struct Canary {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u64, Vec<(Instant, u64)>)>,
}

impl Canary {
    /// Runs on a thread and runtime of its own, so that the offenders' work in this test
    /// (megabytes built and chunked) cannot delay it: a gap it sees is the server's.
    async fn start(port: u16) -> Canary {
        let stop = Arc::new(AtomicBool::new(false));
        let frames = Arc::new(AtomicU64::new(0));
        let (s, f) = (stop.clone(), frames.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(Canary::run(port, s, f))
        });
        let deadline = Instant::now() + Duration::from_secs(8);
        while frames.load(Relaxed) < 10 {
            assert!(Instant::now() < deadline, "canary player got no frames");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Canary { stop, thread }
    }

    async fn run(
        port: u16,
        stop: Arc<AtomicBool>,
        frames: Arc<AtomicU64>,
    ) -> (u64, Vec<(Instant, u64)>) {
        let (mut client, _, mut synth) = publisher(port, "canary", 0).await;
        let s = stop.clone();
        let publisher = tokio::spawn(async move {
            let start = Instant::now();
            let mut out = Vec::new();
            while !s.load(Relaxed) {
                out.clear();
                synth.next_tick(&mut out);
                for m in &out {
                    client.feed(m);
                }
                client.flush().await.expect("canary publisher send");
                let due = start + Duration::from_millis(40 * synth.video_frames());
                tokio::time::sleep_until(due.into()).await;
            }
            synth.video_frames()
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut p = player(port, "canary").await;
        let mut seen = Vec::new();
        while !stop.load(Relaxed) {
            match tokio::time::timeout(Duration::from_millis(100), p.next_event()).await {
                Ok(Ok(ClientEvent::Media(m))) if m.type_id == type_id::VIDEO => {
                    if let Some(seq) = synth::video_seq(&m.payload) {
                        seen.push((Instant::now(), seq));
                        frames.fetch_add(1, Relaxed);
                    }
                }
                Ok(Ok(_)) | Err(_) => {}
                Ok(Err(e)) => panic!("canary player lost its connection: {e}"),
            }
        }
        (publisher.await.expect("canary publisher task"), seen)
    }

    /// Every frame, in order, never more than 1 s apart (the bound `common::Canary` holds
    /// every other hostile test to); returns (frames, largest gap).
    async fn finish(self) -> (usize, Duration) {
        self.stop.store(true, Relaxed);
        let (sent, seen) = self.thread.join().expect("canary thread");
        let mut max_gap = Duration::ZERO;
        for w in seen.windows(2) {
            assert_eq!(w[1].1, w[0].1 + 1, "canary lost frames after {}", w[0].1);
            max_gap = max_gap.max(w[1].0 - w[0].0);
        }
        assert!(
            max_gap <= Duration::from_secs(1),
            "canary stalled {max_gap:?}"
        );
        let last = seen.last().map_or(0, |s| s.1);
        assert!(last + 30 >= sent, "canary player ended at {last} of {sent}");
        (seen.len(), max_gap)
    }
}

// ---------------------------------------------------------------------------------------
// Offenders. Each returns its local address (how the log names it) and the log text its
// close must carry, or panics.

struct Closed {
    what: String,
    peer: String,
    reason: &'static str,
}

async fn aggregate_case(port: u16, levels: usize) -> Option<Closed> {
    let name = format!("agg{levels}");
    let mut watcher = if levels == 1 {
        Some(player(port, &name).await)
    } else {
        None
    };
    let (mut c, id, mut synth) = publisher(port, &name, 1_000_000).await;
    let peer = c.local_addr().expect("addr").to_string();
    ticks(&mut c, &mut synth, 2).await;
    let video = synth::video_frame(777, false, 100);
    let agg = RawMessage {
        type_id: type_id::AGGREGATE,
        stream_id: id,
        timestamp: 80,
        payload: Bytes::from(nested_aggregate(levels, &video)),
    };
    c.send(&agg).await.expect("send aggregate");
    if let Some(w) = watcher.as_mut() {
        // Legal: the frame inside reaches players.
        let deadline = Instant::now() + VERDICT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, w.next_event()).await {
                Ok(Ok(ClientEvent::Media(m))) if synth::video_seq(&m.payload) == Some(777) => {
                    return None
                }
                Ok(Ok(_)) => {}
                other => panic!("legal aggregate: its frame never arrived ({other:?})"),
            }
        }
    }
    if let Err(e) = closed(&mut c).await {
        panic!("{levels} nested aggregates: {e}");
    }
    Some(Closed {
        what: format!("{levels} nested aggregates"),
        peer,
        reason: "aggregate inside an aggregate",
    })
}

/// `createStream` with one more argument, nested `levels` deep (AMF3 behind AvmPlus in a type
/// 0x11 message when `amf3`).
async fn command_case(port: u16, amf3: bool, levels: usize) -> Option<Closed> {
    let mut c = RtmpClient::connect(&url(port, "x"), &config())
        .await
        .expect("connects");
    let peer = c.local_addr().expect("addr").to_string();
    let mut body = if amf3 { vec![0] } else { vec![] };
    body.extend(amf0_string("createStream"));
    amf0::encode_all(&[Amf0Value::Number(7.0), Amf0Value::Null], &mut body).expect("encode");
    body.extend(if amf3 {
        amf3_arrays(levels)
    } else {
        amf0_objects(levels)
    });
    let raw = RawMessage {
        type_id: if amf3 {
            type_id::COMMAND_AMF3
        } else {
            type_id::COMMAND_AMF0
        },
        stream_id: 0,
        timestamp: 0,
        payload: Bytes::from(body),
    };
    c.send(&raw).await.expect("send command");
    let what = format!(
        "command {} {levels} deep",
        if amf3 { "0x11" } else { "0x14" }
    );
    let deadline = Instant::now() + VERDICT;
    let mut error = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, c.next_event()).await {
            Ok(Ok(ClientEvent::Command {
                name,
                transaction_id: 7.0,
                ..
            })) => {
                if levels <= 32 {
                    assert_eq!(name, "_result", "{what}: legal command refused");
                    return None;
                }
                assert_eq!(name, "_error", "{what}");
                error = true;
            }
            Ok(Ok(_)) => {}
            Ok(Err(_)) => break,
            Err(_) => panic!("{what}: no verdict"),
        }
    }
    assert!(levels > 32, "{what}: legal command closed the connection");
    // The name and transaction id decode before the nesting does: they are answered.
    assert!(
        error,
        "{what}: closed without an `_error` for transaction 7"
    );
    Some(Closed {
        what,
        peer,
        reason: "exceeds the limit of 32",
    })
}

/// A shared object message body: name, version, flags, then `events` (type, data).
fn so_body(amf3: bool, name: &str, events: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut b = if amf3 { vec![0] } else { vec![] };
    b.extend_from_slice(&(name.len() as u16).to_be_bytes());
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(&[0; 12]);
    for (t, data) in events {
        b.push(*t);
        b.extend_from_slice(&(data.len() as u32).to_be_bytes());
        b.extend_from_slice(data);
    }
    b
}

fn so_raw(amf3: bool, name: &str, events: &[(u8, Vec<u8>)]) -> RawMessage {
    RawMessage {
        type_id: if amf3 {
            type_id::SHARED_OBJECT_AMF3
        } else {
            type_id::SHARED_OBJECT_AMF0
        },
        stream_id: 0,
        timestamp: 0,
        payload: Bytes::from(so_body(amf3, name, events)),
    }
}

/// A Request Change (3) event data setting `name` to the AMF0 bytes `value`.
fn so_set(name: &str, value: &[u8]) -> Vec<u8> {
    let mut d = (name.len() as u16).to_be_bytes().to_vec();
    d.extend_from_slice(name.as_bytes());
    d.extend_from_slice(value);
    d
}

/// Waits for the shared object's acknowledgement of `attribute` (Success, event 5).
async fn so_acked(c: &mut RtmpClient, attribute: &str) -> Result<(), String> {
    let deadline = Instant::now() + VERDICT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, c.next_event()).await {
            Ok(Ok(ClientEvent::SharedObject { message, .. })) => {
                if message.events.iter().any(
                    |e| matches!(e, SharedObjectEvent::UpdateAttribute { name } if name == attribute),
                ) {
                    return Ok(());
                }
            }
            Ok(Ok(_)) => {}
            other => return Err(format!("no acknowledgement: {other:?}")),
        }
    }
}

async fn shared_object_case(port: u16, amf3: bool, levels: usize) -> Option<Closed> {
    let mut c = RtmpClient::connect(&url(port, "x"), &config())
        .await
        .expect("connects");
    let peer = c.local_addr().expect("addr").to_string();
    let so = format!("deep{levels}");
    c.send(&so_raw(amf3, &so, &[(1, vec![])]))
        .await
        .expect("use");
    let value = if amf3 {
        amf3_arrays(levels)
    } else {
        amf0_arrays(levels)
    };
    c.send(&so_raw(amf3, &so, &[(3, so_set("v", &value))]))
        .await
        .expect("set");
    let what = format!(
        "shared object {} {levels} deep",
        if amf3 { "0x10" } else { "0x13" }
    );
    if levels <= 32 {
        so_acked(&mut c, "v")
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        return None;
    }
    if let Err(e) = closed(&mut c).await {
        panic!("{what}: {e}");
    }
    Some(Closed {
        what,
        peer,
        reason: "exceeds the limit of 32",
    })
}

/// One publisher per data variant sends data 10, 1000, 100 000 and 1 000 000 deep between
/// media; a player of that stream must get the shallow one only, and media after the deep
/// ones; the publisher stays connected; `data_dropped` counts 3.
async fn data_case(server: &Server, amf3: bool, set_data_frame: bool) -> (String, Option<u64>) {
    let port = server.port();
    let name = format!(
        "data-{}-{}",
        if amf3 { "amf3" } else { "amf0" },
        if set_data_frame {
            "setdataframe"
        } else {
            "ontextdata"
        }
    );
    let mut watcher = player(port, &name).await;
    let (mut c, id, mut synth) = publisher(port, &name, 2_000_000).await;
    ticks(&mut c, &mut synth, 2).await;
    for levels in DEPTHS {
        let mut body = if amf3 { vec![0] } else { vec![] };
        if set_data_frame {
            body.extend(amf0_string("@setDataFrame"));
            body.extend(amf0_string("onMetaData"));
        } else {
            body.extend(amf0_string("onTextData"));
        }
        body.extend(match (amf3, set_data_frame) {
            (true, _) => amf3_arrays(levels),
            (false, true) => amf0_ecma(levels),
            (false, false) => amf0_arrays(levels),
        });
        let raw = RawMessage {
            type_id: if amf3 {
                type_id::DATA_AMF3
            } else {
                type_id::DATA_AMF0
            },
            stream_id: id,
            timestamp: 0,
            payload: Bytes::from(body),
        };
        c.send(&raw).await.expect("send data");
        ticks(&mut c, &mut synth, 1).await;
    }
    let last = synth.video_frames() - 1 + 2_000_000;
    // The player: one data message (the shallow one), then media up to the last frame.
    let mut data = 0;
    let deadline = Instant::now() + VERDICT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, watcher.next_event()).await {
            Ok(Ok(ClientEvent::Data { values, .. })) => {
                let want = if set_data_frame {
                    "onMetaData"
                } else {
                    "onTextData"
                };
                // Ours only (the server adds |RtmpSampleAccess, the synth its metadata).
                let ours = match values.get(1) {
                    Some(Amf0Value::AvmPlus(_)) | Some(Amf0Value::StrictArray(_)) => true,
                    Some(v) => v.get("a").is_some(),
                    None => false,
                };
                if values.first().and_then(Amf0Value::as_str) == Some(want) && ours {
                    data += 1;
                }
            }
            Ok(Ok(ClientEvent::Media(m))) if synth::video_seq(&m.payload) == Some(last) => break,
            Ok(Ok(_)) => {}
            other => panic!("{name}: player did not get the media after the deep data: {other:?}"),
        }
    }
    assert_eq!(data, 1, "{name}: the player got {data} data messages");
    // The publisher is still connected: more media still reaches the player.
    ticks(&mut c, &mut synth, 1).await;
    let deadline = Instant::now() + VERDICT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, watcher.next_event()).await {
            Ok(Ok(ClientEvent::Media(m))) if synth::video_seq(&m.payload) == Some(last + 1) => {
                break
            }
            Ok(Ok(ClientEvent::Data { .. })) => panic!("{name}: deep data relayed"),
            Ok(Ok(_)) => {}
            other => panic!("{name}: publisher cut off after deep data: {other:?}"),
        }
    }
    // Asked while the stream is still published.
    let dropped = admin_stream(server, &name)["data_dropped"].as_u64();
    drop(c);
    (name, dropped)
}

/// Shared objects and AMF0 references (issue 21 item 3b): a legal reference is resolved
/// before it is stored and relayed; a loop and a reference bomb close the writer, as on the
/// command path; the other client never gets a `Reference`.
async fn shared_object_references(port: u16) -> Vec<Closed> {
    let so = "refs";
    let mut reader = RtmpClient::connect(&url(port, "x"), &config())
        .await
        .expect("connects");
    reader
        .send(&so_raw(false, so, &[(1, vec![])]))
        .await
        .expect("use");
    let mut writer = RtmpClient::connect(&url(port, "x"), &config())
        .await
        .expect("connects");
    writer
        .send(&so_raw(false, so, &[(1, vec![])]))
        .await
        .expect("use");
    // {a: {x: 1}, b: ref 1}: slot 0 is the outer object, slot 1 is `a`.
    let mut legal = vec![0x03, 0, 1, b'a', 0x03, 0, 1, b'x'];
    legal.extend_from_slice(&[0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0]);
    legal.extend_from_slice(&[0, 0, 0x09, 0, 1, b'b', 0x07, 0, 1, 0, 0, 0x09]);
    writer
        .send(&so_raw(false, so, &[(3, so_set("ok", &legal))]))
        .await
        .expect("set");
    so_acked(&mut writer, "ok").await.expect("legal reference");
    let inner = Amf0Value::object([("x", Amf0Value::Number(1.0))]);
    let expect = Amf0Value::object([("a", inner.clone()), ("b", inner)]);
    let deadline = Instant::now() + VERDICT;
    'reader: loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, reader.next_event()).await {
            Ok(Ok(ClientEvent::SharedObject { message, .. })) => {
                for e in &message.events {
                    if let SharedObjectEvent::UpdateData { properties } = e {
                        if let Some((_, v)) = properties.iter().find(|(k, _)| k == "ok") {
                            assert_eq!(v, &expect, "relayed value resolved");
                            break 'reader;
                        }
                    }
                }
            }
            Ok(Ok(_)) => {}
            other => panic!("the other client never got the change: {other:?}"),
        }
    }
    let mut out = Vec::new();
    // {me: ref 0}: an object whose member refers to itself.
    let looped = vec![0x03, 0, 2, b'm', b'e', 0x07, 0, 0, 0, 0, 0x09];
    // a0 = [null, null], a(k) = [a(k-1), a(k-1)] by reference: 2^24 values from 150 bytes.
    let mut bomb = vec![0x0A, 0, 0, 0, 25, 0x0A, 0, 0, 0, 2, 0x05, 0x05];
    for k in 1..25u16 {
        bomb.extend_from_slice(&[0x0A, 0, 0, 0, 2, 0x07]);
        bomb.extend_from_slice(&k.to_be_bytes());
        bomb.push(0x07);
        bomb.extend_from_slice(&k.to_be_bytes());
    }
    // One 64 KB string, then 60 000 references to the object holding it (3.9 GB copied).
    let mut strings = vec![0x0A, 0, 0, 0xEA, 0x61, 0x03, 0, 1, b's', 0x0C, 0, 1, 0, 0];
    strings.extend(std::iter::repeat_n(b'z', 65_536));
    strings.extend_from_slice(&[0, 0, 0x09]);
    for _ in 1..60_001 {
        strings.extend_from_slice(&[0x07, 0, 1]);
    }
    for (what, value) in [
        ("reference loop", looped),
        ("reference bomb", bomb),
        ("string reference bomb", strings),
    ] {
        let mut c = RtmpClient::connect(&url(port, "x"), &config())
            .await
            .expect("connects");
        let peer = c.local_addr().expect("addr").to_string();
        c.send(&so_raw(false, so, &[(1, vec![])]))
            .await
            .expect("use");
        c.send(&so_raw(false, so, &[(3, so_set("bad", &value))]))
            .await
            .expect("set");
        if let Err(e) = closed(&mut c).await {
            panic!("shared object {what}: {e}");
        }
        out.push(Closed {
            what: format!("shared object {what}"),
            peer,
            reason: if what == "reference loop" {
                "AMF0 reference 0"
            } else {
                "produces more than 65536 values"
            },
        });
    }
    // The reader got nothing of them.
    while let Ok(Ok(ev)) =
        tokio::time::timeout(Duration::from_millis(300), reader.next_event()).await
    {
        if let ClientEvent::SharedObject { message, .. } = ev {
            for e in &message.events {
                if let SharedObjectEvent::UpdateData { properties } = e {
                    assert!(
                        properties.iter().all(|(k, _)| k != "bad"),
                        "a refused value reached the other client"
                    );
                }
            }
        }
    }
    out
}

fn admin_stream(server: &Server, name: &str) -> serde_json::Value {
    let url = format!("{}/api/v1/streams", server.admin_url());
    let text = ureq::get(&url)
        .call()
        .expect("admin API")
        .into_string()
        .expect("body");
    let body: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    body["streams"]
        .as_array()
        .and_then(|l| l.iter().find(|s| s["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no stream {name} in {body}"))
}

#[tokio::test]
async fn deep_nesting_in_every_message_kind() {
    let started = Instant::now();
    let (mut server, _config) = common::reflector_with_config(CONFIG);
    let port = server.port();
    let canary = Canary::start(port).await;

    let mut offenders = Vec::new();
    for levels in [1].into_iter().chain(DEPTHS) {
        offenders.push(aggregate_case(port, levels).boxed_local());
    }
    for amf3 in [false, true] {
        for levels in DEPTHS {
            offenders.push(command_case(port, amf3, levels).boxed_local());
            offenders.push(shared_object_case(port, amf3, levels).boxed_local());
        }
    }
    let data: Vec<_> = [(false, true), (false, false), (true, true), (true, false)]
        .into_iter()
        .map(|(amf3, sdf)| data_case(&server, amf3, sdf))
        .collect();
    let (closed, data, references) = tokio::join!(
        join_all(offenders),
        join_all(data),
        shared_object_references(port)
    );
    let mut closed: Vec<Closed> = closed.into_iter().flatten().collect();
    closed.extend(references);
    // The canary goes on a while after the last offender.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (frames, max_gap) = canary.finish().await;
    assert!(server.is_running(), "the server died");

    std::thread::sleep(Duration::from_millis(300));
    let log = server.plain_log();
    let mut failures = Vec::new();
    for c in &closed {
        let peer = format!("peer={}", c.peer);
        let named = log.lines().any(|l| {
            l.contains("connection closed")
                && l.match_indices(&peer)
                    .any(|(i, _)| !l[i + peer.len()..].starts_with(|ch: char| ch.is_ascii_digit()))
                && l.contains(c.reason)
        });
        if !named {
            failures.push(format!(
                "{}: no close line with {peer} and {:?}; its lines:\n  {}",
                c.what,
                c.reason,
                log.lines()
                    .filter(|l| l.contains(&c.peer))
                    .collect::<Vec<_>>()
                    .join("\n  ")
            ));
        }
    }
    for (name, dropped) in &data {
        let lines = log
            .lines()
            .filter(|l| l.contains("data message dropped") && l.contains(&format!("live/{name}")))
            .count();
        if lines != 1 {
            failures.push(format!(
                "{name}: {lines} 'data message dropped' lines, want 1"
            ));
        }
        if *dropped != Some(3) {
            failures.push(format!("{name}: data_dropped {dropped:?}, want 3"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!(
        "{} offenders closed with a logged reason, {} data streams dropped 3 each; canary: {frames} frames, largest gap {max_gap:?}; {:?} in all",
        closed.len(),
        data.len(),
        started.elapsed()
    );
}

/// Issue 21 item 3a: a 100 000-deep `onTextData` (700 KB) killed rtmpdump and GStreamer
/// `rtmpsrc` (both librtmp) with SIGSEGV when it was relayed raw. It is dropped now: both stay
/// alive and keep receiving video, and the log says why.
#[tokio::test]
async fn librtmp_players_survive_a_deep_on_text_data() {
    if common::should_skip(
        "librtmp_players_survive_a_deep_on_text_data",
        &["rtmpdump", "gst-launch-1.0"],
    ) {
        return;
    }
    let (mut server, _config) = common::reflector_with_config(CONFIG);
    let port = server.port();
    let (mut c, id, mut synth) = publisher(port, "text", 0).await;
    let stream_url = server.rtmp_url("live", "text");
    let dump_out = server.dir().join("rtmpdump.flv");
    let gst_out = server.dir().join("rtmpsrc.flv");
    let mut players = [
        common::Proc::spawn(
            "rtmpdump",
            "rtmpdump",
            &[
                "-r".into(),
                stream_url.clone(),
                "--live".into(),
                "-o".into(),
                dump_out.display().to_string(),
            ],
            &[],
            &server.dir().join("rtmpdump.log"),
        ),
        common::Proc::spawn(
            "rtmpsrc",
            "gst-launch-1.0",
            &[
                "-e".into(),
                "rtmpsrc".into(),
                format!("location={stream_url} live=1"),
                "!".into(),
                "filesink".into(),
                // Unbuffered, so that the file shows what arrived.
                "buffer-mode=unbuffered".into(),
                format!("location={}", gst_out.display()),
            ],
            &[],
            &server.dir().join("rtmpsrc.log"),
        ),
    ];
    let outs = [dump_out, gst_out];
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    // 25 fps in real time for `secs`.
    async fn media(c: &mut RtmpClient, synth: &mut Synth, secs: u64) {
        for _ in 0..secs * 25 {
            ticks(c, synth, 1).await;
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    }
    // Media until both players have written some (a cold gst-launch may take seconds).
    let started = Instant::now();
    loop {
        media(&mut c, &mut synth, 1).await;
        if outs.iter().all(|out| size(out) > 0) || started.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    for (p, out) in players.iter_mut().zip(&outs) {
        assert!(p.try_wait().is_none(), "{} died before the test", p.name());
        assert!(size(out) > 0, "{} received nothing", p.name());
    }
    let mut body = amf0_string("onTextData");
    body.extend(amf0_objects(100_000));
    assert!(body.len() > 690_000);
    c.send(&RawMessage {
        type_id: type_id::DATA_AMF0,
        stream_id: id,
        timestamp: 0,
        payload: Bytes::from(body),
    })
    .await
    .expect("send deep onTextData");
    media(&mut c, &mut synth, 1).await;
    let before: Vec<u64> = outs.iter().map(|o| size(o)).collect();
    media(&mut c, &mut synth, 1).await;
    for ((p, out), before) in players.iter_mut().zip(&outs).zip(before) {
        let status = p.try_wait();
        assert!(
            status.is_none(),
            "{} died after the deep onTextData: {status:?}\n{}",
            p.name(),
            p.log_tail(10)
        );
        let after = size(out);
        assert!(
            after > before + 2000,
            "{} stopped receiving: {before} then {after} bytes",
            p.name()
        );
        eprintln!(
            "{}: alive, {before} -> {after} bytes in the last second",
            p.name()
        );
    }
    assert!(server.is_running());
    let log = server.plain_log();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("data message dropped") && l.contains("live/text"))
            .count(),
        1,
        "one info line for the dropped data"
    );
}
