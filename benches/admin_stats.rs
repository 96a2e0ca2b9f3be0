//! What the admin stats cost the fan-out path: the same publisher → subscriber actor pipeline
//! (bounded mailbox on another arbiter, `try_send`, waiting when full, as the publisher does)
//! run with and without the figures the admin side reads, plus the bare cost of those atomic
//! updates. Run: `cargo bench --bench admin_stats`.
//!
//! With stats on, each frame costs the publisher one `fetch_add` (mailbox depth, before the
//! offer) and the subscriber one `fetch_sub` (depth) and one `fetch_add` (handled): the
//! per-message additions made for the admin API. (`messages_sent`/`bytes_sent` existed before
//! and are in both variants.)

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::dev::SendError;
use actix::prelude::*;
use reflector::stats::{ConnectionStats, SubscriberStats};

const FRAMES: u64 = 400_000;
const ROUNDS: usize = 7;

#[derive(Message)]
#[rtype(result = "()")]
struct Frame(Arc<Vec<u8>>);

#[derive(Message)]
#[rtype(result = "()")]
struct Done(tokio::sync::oneshot::Sender<u64>);

struct Sink {
    stats: Arc<SubscriberStats>,
    depth: Arc<AtomicUsize>,
    with_stats: bool,
    handled: u64,
}

impl Actor for Sink {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(256);
    }
}

impl Handler<Frame> for Sink {
    type Result = ();
    fn handle(&mut self, msg: Frame, _: &mut Context<Self>) {
        if self.with_stats {
            self.stats.handled.fetch_add(1, Relaxed);
            self.depth.fetch_sub(1, Relaxed);
        }
        self.stats.messages_sent.fetch_add(1, Relaxed);
        self.stats.bytes_sent.fetch_add(msg.0.len() as u64, Relaxed);
        self.handled += 1;
    }
}

impl Handler<Done> for Sink {
    type Result = ();
    fn handle(&mut self, msg: Done, _: &mut Context<Self>) {
        let _ = msg.0.send(self.handled);
    }
}

fn new_stats() -> Arc<SubscriberStats> {
    let conn = Arc::new(ConnectionStats::new(1, ([127, 0, 0, 1], 1).into(), 0));
    Arc::new(SubscriberStats::new(conn, 1, 256))
}

/// Time to push `FRAMES` frames through one subscriber actor on another arbiter.
async fn fan_out(arbiter: &ArbiterHandle, with_stats: bool) -> Duration {
    let stats = new_stats();
    let depth = Arc::new(AtomicUsize::new(0));
    let (s2, d2) = (stats.clone(), depth.clone());
    let sink = Sink::start_in_arbiter(arbiter, move |_| Sink {
        stats: s2,
        depth: d2,
        with_stats,
        handled: 0,
    });
    let payload = Arc::new(vec![0u8; 1200]);
    let start = Instant::now();
    for _ in 0..FRAMES {
        if with_stats {
            depth.fetch_add(1, Relaxed);
        }
        match sink.try_send(Frame(payload.clone())) {
            Ok(()) => {}
            Err(SendError::Full(msg)) => {
                let _ = sink.send(msg).await;
            }
            Err(SendError::Closed(_)) => panic!("sink closed"),
        }
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let _ = sink.send(Done(tx)).await;
    let handled = rx.await.unwrap_or(0);
    assert_eq!(handled, FRAMES);
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // The bare atomic updates, uncontended.
    let depth = AtomicUsize::new(0);
    let handled = AtomicU64::new(0);
    let n = 10_000_000u64;
    let start = Instant::now();
    for _ in 0..n {
        depth.fetch_add(1, Relaxed);
        depth.fetch_sub(1, Relaxed);
        handled.fetch_add(1, Relaxed);
    }
    std::hint::black_box((&depth, &handled));
    let atomics_ns = start.elapsed().as_nanos() as f64 / n as f64;

    let system = System::new();
    let arbiter = Arbiter::new();
    let handle = arbiter.handle();
    let (off, on) = system.block_on(async move {
        let (mut off, mut on) = (Vec::new(), Vec::new());
        // Warm-up, then alternate so that machine noise hits both variants alike.
        fan_out(&handle, false).await;
        for _ in 0..ROUNDS {
            off.push(fan_out(&handle, false).await);
            on.push(fan_out(&handle, true).await);
        }
        (median(off), median(on))
    });
    arbiter.stop();
    let per = |d: Duration| d.as_nanos() as f64 / FRAMES as f64;
    let (off_ns, on_ns) = (per(off), per(on));
    println!("admin stats cost on the fan-out path ({FRAMES} frames x {ROUNDS} rounds, median)");
    println!("  bare stats updates (3 relaxed RMWs, uncontended): {atomics_ns:.2} ns/frame");
    println!(
        "  fan-out, stats off: {off_ns:.1} ns/frame ({:.2} M frames/s)",
        1000.0 / off_ns
    );
    println!(
        "  fan-out, stats on:  {on_ns:.1} ns/frame ({:.2} M frames/s)",
        1000.0 / on_ns
    );
    println!(
        "  difference: {:+.2} % (bare updates: {:.2} % of a stats-off frame)",
        (on_ns - off_ns) / off_ns * 100.0,
        atomics_ns / off_ns * 100.0
    );
}
