use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::actors::fanout;
use crate::hub::{Player, TrackSet};

/// Counts the live frames it is handed.
struct Counter(Arc<AtomicU64>);

impl Player for Counter {
    fn start(&mut self, _: bool, _: &mut dyn Iterator<Item = &Arc<Frame>>) {}
    fn frame(&mut self, _: &Arc<Frame>, _: bool) {
        self.0.fetch_add(1, Relaxed);
    }
    fn missed(&mut self, _: u64) {}
    fn published(&mut self) {}
    fn unpublished(&mut self) {}
    fn ended(&mut self) {}
}

/// A publishing source that ignores what it is told.
struct Ignore;

impl Actor for Ignore {
    type Context = Context<Self>;
}

impl Handler<SourceEvent> for Ignore {
    type Result = ();

    fn handle(&mut self, _: SourceEvent, _: &mut Context<Self>) {}
}

fn frame(timestamp: u32) -> Arc<Frame> {
    Arc::new(Frame::new(
        FrameKind::Audio,
        DropClass::Audio,
        8,
        timestamp,
        Bytes::from_static(&[0xaf, 0x01]),
        TrackSet::single(0),
        None,
        false,
        None,
    ))
}

async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The per-core fan-out's promise, counted: each frame is one message per arbiter that has
/// players (crossing threads only to the other arbiters), however many players each has.
#[actix_rt::test]
async fn a_frame_crosses_threads_once_per_arbiter_not_once_per_player() {
    const PLAYERS: u64 = 50;
    const FRAMES: u64 = 30;
    let settings = Arc::new(Settings::load(None).expect("embedded defaults"));
    let server_stats = Arc::new(ServerStats::default());
    let stream_stats = Arc::new(StreamStats::new("live", "x"));
    let publisher = Publisher::new(
        "live/x".into(),
        "live".into(),
        "x".into(),
        settings.clone(),
        stream_stats.clone(),
        server_stats.clone(),
    )
    .start();
    let arbiters = [Arbiter::new(), Arbiter::new()];
    let mut counters = Vec::new();
    // Two other arbiters with 50 players each, and 50 on the publisher's own.
    for (n, arbiter) in arbiters.iter().map(Some).chain([None]).enumerate() {
        let mine: Vec<Arc<AtomicU64>> = (0..PLAYERS).map(|_| Arc::default()).collect();
        counters.extend(mine.iter().cloned());
        let (p, s, st) = (publisher.clone(), settings.clone(), server_stats.clone());
        let join = move || {
            for (i, c) in mine.into_iter().enumerate() {
                let key = (n as u64 * 1000 + i as u64, 1);
                fanout::join(
                    "live/x",
                    &p,
                    &s,
                    &st,
                    key,
                    Rc::new(RefCell::new(Counter(c))),
                );
            }
        };
        match arbiter {
            Some(a) => assert!(a.spawn_fn(join)),
            None => join(),
        }
    }
    until("three edges", || {
        stream_stats.fanout_edges.load(Relaxed) == 3
    })
    .await;
    let source = Ignore.start().recipient();
    publisher
        .send(Attach {
            session: 1,
            connection: 9,
            source,
        })
        .await
        .expect("publisher alive");
    for ts in 0..FRAMES as u32 {
        publisher
            .send(Ingest {
                session: 1,
                frame: frame(ts * 20),
            })
            .await
            .expect("publisher alive");
    }
    until("every player got every frame", || {
        counters.iter().all(|c| c.load(Relaxed) == FRAMES)
    })
    .await;
    assert_eq!(stream_stats.fanout_messages.load(Relaxed), 3 * FRAMES);
    assert_eq!(stream_stats.cross_thread_messages.load(Relaxed), 2 * FRAMES);
    assert_eq!(stream_stats.fanout_dropped.load(Relaxed), 0);
    assert_eq!(server_stats.actors.fanouts.load(Relaxed), 3);
    for a in arbiters {
        a.stop();
    }
}

/// The last player of an arbiter to leave stops its fan-out, which leaves the publisher.
#[actix_rt::test]
async fn the_last_player_out_releases_its_arbiters_edge() {
    let settings = Arc::new(Settings::load(None).expect("embedded defaults"));
    let server_stats = Arc::new(ServerStats::default());
    let stream_stats = Arc::new(StreamStats::new("live", "y"));
    let publisher = Publisher::new(
        "live/y".into(),
        "live".into(),
        "y".into(),
        settings.clone(),
        stream_stats.clone(),
        server_stats.clone(),
    )
    .start();
    for id in 1..=3 {
        let c = Rc::new(RefCell::new(Counter(Arc::default())));
        fanout::join("live/y", &publisher, &settings, &server_stats, (id, 1), c);
    }
    until("one edge", || stream_stats.fanout_edges.load(Relaxed) == 1).await;
    fanout::leave("live/y", &publisher, (1, 1));
    fanout::leave("live/y", &publisher, (2, 1));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        stream_stats.fanout_edges.load(Relaxed),
        1,
        "one player left"
    );
    fanout::leave("live/y", &publisher, (3, 1));
    until("no edge", || stream_stats.fanout_edges.load(Relaxed) == 0).await;
    until("fan-out stopped", || {
        server_stats.actors.fanouts.load(Relaxed) == 0
    })
    .await;
}
