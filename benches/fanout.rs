//! The fan-out path, measured. Run: `cargo bench --bench fanout`.
//!
//! 1. The per-core step on one thread: a stream's frames (2 Mbit/s: 30 fps video + 43 fps
//!    AAC) handed by a [`LocalFanout`] to N real RTMP players (delivery gate, shared RTMP
//!    chunks, outbox queue; the queue is then emptied as if the socket took it). Prints
//!    frames x players per second and ns per player per frame.
//! 2. The publisher's side for 1, 2, 4, 8, 16 arbiters with 16000 players split over them:
//!    messages and cross-thread messages per frame (counted by the publisher), and the time
//!    the publisher's thread spends per frame, which must grow with arbiters, not players.
//!    (On a 2-core machine the 16 threads share 2 cores: the counts are exact, the times of
//!    the players' side are not meaningful; the publisher's per-frame time is.)

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use reflector::actors::fanout;
use reflector::actors::publisher::{Attach, Ingest, Publisher, SourceEvent};
use reflector::config::Settings;
use reflector::hub::gate::PlayerCaps;
use reflector::hub::{
    Budgets, DeliveryGate, DropClass, Frame, FrameKind, LocalFanout, Player, TrackSet,
};
use reflector::output::outbox::Outbox;
use reflector::output::rtmp::RtmpPlayer;
use reflector::stats::{ConnectionStats, ServerStats, StreamStats, SubscriberStats};

const ROUNDS: usize = 5;

/// An RTMP player whose socket takes everything at once.
struct Drained(RtmpPlayer);

impl Player for Drained {
    fn start(&mut self, live: bool, burst: &mut dyn Iterator<Item = &Arc<Frame>>) {
        self.0.start(live, burst);
        self.0.outbox.discard_queued();
    }
    fn frame(&mut self, frame: &Arc<Frame>, after_gap: bool) {
        self.0.frame(frame, after_gap);
        self.0.outbox.discard_queued();
    }
    fn missed(&mut self, frames: u64) {
        self.0.missed(frames);
    }
    fn published(&mut self) {
        self.0.published();
    }
    fn unpublished(&mut self) {
        self.0.unpublished();
    }
    fn ended(&mut self) {
        self.0.ended();
    }
}

fn player(id: u64, settings: &Settings) -> (Rc<RefCell<Drained>>, Arc<SubscriberStats>) {
    let connection = Arc::new(ConnectionStats::new(id, ([127, 0, 0, 1], 1).into(), 0));
    let outbox = Outbox::new(connection.clone());
    let stats = Arc::new(SubscriberStats::new(connection, 1, 256));
    let p = RtmpPlayer {
        connection_id: id,
        stream_id: 1,
        resource: "live/bench".into(),
        name: "bench".into(),
        outbox,
        stats: stats.clone(),
        gate: DeliveryGate::new(Budgets::from(&settings.live), PlayerCaps::default()),
        reset: false,
        notify: true,
        ended: false,
    };
    (Rc::new(RefCell::new(Drained(p))), stats)
}

/// One second of a 2 Mbit/s stream: a keyframe, 29 inter frames (~8 KiB each) and 43 AAC
/// frames (372 bytes), interleaved by timestamp.
fn one_second(start_ms: u32) -> Vec<Arc<Frame>> {
    let mut out = Vec::new();
    let (mut v, mut a) = (0_u32, 0_u32);
    while v < 30 || a < 43 {
        let tv = v * 1000 / 30;
        let ta = a * 1024 * 1000 / 44_100;
        if v < 30 && (a >= 43 || tv <= ta) {
            let class = if v == 0 {
                DropClass::Key
            } else {
                DropClass::Inter
            };
            let mut payload = vec![0u8; 8333];
            payload[0] = if v == 0 { 0x17 } else { 0x27 };
            payload[1] = 1;
            out.push(frame(FrameKind::Video, class, 9, start_ms + tv, payload));
            v += 1;
        } else {
            let mut payload = vec![0u8; 372];
            payload[0] = 0xaf;
            payload[1] = 1;
            out.push(frame(
                FrameKind::Audio,
                DropClass::Audio,
                8,
                start_ms + ta,
                payload,
            ));
            a += 1;
        }
    }
    out
}

fn frame(kind: FrameKind, class: DropClass, type_id: u8, ts: u32, payload: Vec<u8>) -> Arc<Frame> {
    Arc::new(Frame::new(
        kind,
        class,
        type_id,
        ts,
        Bytes::from(payload),
        TrackSet::single(0),
        None,
        false,
        None,
    ))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn step(settings: &Settings) {
    println!("1. per-core fan-out step, one thread (median of {ROUNDS} rounds of 2 s of media)");
    println!("   players   ns/player/frame   frames x players per second");
    for players in [1_u64, 100, 1000, 4000] {
        let mut hub = LocalFanout::new(settings.live.clone());
        hub.seed(true, &[]);
        let mut all = Vec::new();
        for id in 0..players {
            let (p, stats) = player(id + 1, settings);
            hub.join((id + 1, 1), p);
            all.push(stats);
        }
        let mut results = Vec::new();
        for round in 0..=ROUNDS {
            // Fresh frames every round: the first player makes each frame's chunks once.
            let frames: Vec<Arc<Frame>> = (0..2)
                .flat_map(|s| one_second((round as u32 * 2 + s) * 1000))
                .collect();
            let start = Instant::now();
            for f in &frames {
                hub.frame(f, 0);
            }
            let ns = start.elapsed().as_nanos() as f64 / (frames.len() as f64 * players as f64);
            if round > 0 {
                results.push(ns);
            }
        }
        let handled: u64 = all.iter().map(|s| s.messages_sent.load(Relaxed)).sum();
        assert!(handled > 0, "players wrote frames");
        let ns = median(results);
        println!("   {players:>7}   {ns:>15.1}   {:>27.2} M", 1000.0 / ns);
    }
}

/// A source that ignores what it is told.
struct Ignore;
impl Actor for Ignore {
    type Context = Context<Self>;
}
impl Handler<SourceEvent> for Ignore {
    type Result = ();
    fn handle(&mut self, _: SourceEvent, _: &mut Context<Self>) {}
}

async fn arbiters(
    settings: Arc<Settings>,
    count: usize,
    players: u64,
    seconds: u32,
) -> (f64, f64, f64, f64) {
    let server_stats = Arc::new(ServerStats::default());
    let stream_stats = Arc::new(StreamStats::new("live", "bench"));
    let publisher = Publisher::new(
        "live/bench".into(),
        "live".into(),
        "bench".into(),
        settings.clone(),
        stream_stats.clone(),
        server_stats.clone(),
    )
    .start();
    let arbiters: Vec<Arbiter> = (0..count).map(|_| Arbiter::new()).collect();
    let per = players / count as u64;
    let all: Arc<std::sync::Mutex<Vec<Arc<SubscriberStats>>>> = Arc::default();
    for (n, a) in arbiters.iter().enumerate() {
        let (p, s, st, all) = (
            publisher.clone(),
            settings.clone(),
            server_stats.clone(),
            all.clone(),
        );
        a.spawn_fn(move || {
            for i in 0..per {
                let id = n as u64 * 100_000 + i + 1;
                let (player, stats) = player(id, &s);
                all.lock().expect("lock").push(stats);
                fanout::join("live/bench", &p, &s, &st, (id, 1), player);
            }
        });
    }
    while stream_stats.fanout_edges.load(Relaxed) < count {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    publisher
        .send(Attach {
            session: 1,
            connection: 1,
            source: Ignore.start().recipient(),
        })
        .await
        .expect("publisher");
    let frames: Vec<Arc<Frame>> = (0..seconds).flat_map(|s| one_second(s * 1000)).collect();
    let start = Instant::now();
    for f in &frames {
        publisher
            .send(Ingest {
                session: 1,
                frame: f.clone(),
            })
            .await
            .expect("publisher");
    }
    let publisher_time = start.elapsed();
    let want = frames.len() as u64 * per * count as u64;
    loop {
        let got: u64 = all
            .lock()
            .expect("lock")
            .iter()
            .map(|s| s.handled.load(Relaxed))
            .sum();
        let dropped = stream_stats.fanout_dropped.load(Relaxed) * per;
        if got + dropped >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let total = start.elapsed();
    let n = frames.len() as f64;
    // Offers: sent plus lost to a full mailbox (frames pushed faster than real time here).
    let messages = (stream_stats.fanout_messages.load(Relaxed)
        + stream_stats.fanout_dropped.load(Relaxed)) as f64
        / n;
    let cross = stream_stats.cross_thread_messages.load(Relaxed) as f64 / n;
    for a in arbiters {
        a.stop();
    }
    (
        messages,
        cross,
        publisher_time.as_nanos() as f64 / n,
        want as f64 / total.as_secs_f64(),
    )
}

fn main() {
    let settings = Arc::new(Settings::load(None).expect("embedded defaults"));
    step(&settings);
    println!();
    println!(
        "2. publisher side, 16000 players over N arbiters (4 s of media, {ROUNDS} rounds, median)"
    );
    println!("   arbiters  offers/frame  cross-thread sends/frame  (per-player design: 16000)  publisher ns/frame  deliveries/s");
    let system = System::new();
    for count in [1_usize, 2, 4, 8, 16] {
        let s = settings.clone();
        let rounds: Vec<(f64, f64, f64, f64)> = system.block_on(async move {
            let mut out = Vec::new();
            for _ in 0..ROUNDS {
                out.push(arbiters(s.clone(), count, 16_000, 4).await);
            }
            out
        });
        let m = rounds[0].0;
        let c = rounds[0].1;
        let pub_ns = median(rounds.iter().map(|r| r.2).collect());
        let rate = median(rounds.iter().map(|r| r.3).collect());
        println!(
            "   {count:>8}  {m:>10.2}  {c:>18.2}  {:>27}  {pub_ns:>18.0}  {:>10.2} M",
            16_000,
            rate / 1e6
        );
    }
}
