//! The fan-out actor: one per (stream, arbiter) with players of the stream. The publisher
//! sends it each frame once; it hands the frame to the players on its own arbiter in place
//! (see [`LocalFanout`]), so a frame crosses threads once per arbiter that has players, not
//! once per player. Players find their arbiter's fan-out through a per-thread table; the
//! first player of a stream on an arbiter starts it, the last one to leave stops it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::publisher::{
    attach_edge, next_edge_id, EdgeId, HubEvent, JoinInfo, Publisher, Unsubscribe,
};
use crate::config::Settings;
use crate::hub::batch::{Batch, Push};
use crate::hub::{Frame, LocalFanout, Player, PlayerKey};
use crate::names::Esc;
use crate::stats::ServerStats;

/// This arbiter's fan-outs, by resource key.
struct Local {
    publisher: Addr<Publisher>,
    addr: Addr<Fanout>,
    hub: Rc<RefCell<LocalFanout>>,
    queued: Arc<AtomicUsize>,
}

thread_local! {
    static FANOUTS: RefCell<HashMap<String, Local>> = RefCell::new(HashMap::new());
}

/// Add `player` to the fan-out of `resource` on this arbiter (starting it if there is none).
/// Returns the fan-out's queue counter, for the player's stats.
pub fn join(
    resource: &str,
    publisher: &Addr<Publisher>,
    settings: &Settings,
    server_stats: &Arc<ServerStats>,
    key: PlayerKey,
    player: Rc<RefCell<dyn Player>>,
) -> Arc<AtomicUsize> {
    let (hub, queued) = FANOUTS.with(|table| {
        let mut table = table.borrow_mut();
        let current = table
            .get(resource)
            .filter(|l| l.publisher == *publisher && l.addr.connected());
        if let Some(local) = current {
            return (local.hub.clone(), local.queued.clone());
        }
        let hub = Rc::new(RefCell::new(LocalFanout::new(settings.live.clone())));
        let queued = Arc::new(AtomicUsize::new(0));
        let capacity = settings.live.subscriber_mailbox;
        let fanout = Fanout {
            resource: resource.to_owned(),
            edge: next_edge_id(),
            publisher: publisher.clone(),
            hub: hub.clone(),
            queued: queued.clone(),
            server_stats: server_stats.clone(),
            batch: Batch::new(settings.live.write_coalesce_ms),
            flush_timer: None,
        };
        let addr = Fanout::create(move |ctx| {
            ctx.set_mailbox_capacity(capacity);
            fanout
        });
        table.insert(
            resource.to_owned(),
            Local {
                publisher: publisher.clone(),
                addr,
                hub: hub.clone(),
                queued: queued.clone(),
            },
        );
        (hub, queued)
    });
    hub.borrow_mut().join(key, player);
    queued
}

/// Take `key` out of the fan-out of `resource` on this arbiter; the last one out stops it.
pub fn leave(resource: &str, publisher: &Addr<Publisher>, key: PlayerKey) {
    FANOUTS.with(|table| {
        let mut table = table.borrow_mut();
        let Some(local) = table.get(resource).filter(|l| l.publisher == *publisher) else {
            return;
        };
        if local.hub.borrow_mut().leave(key) {
            if let Some(local) = table.remove(resource) {
                local.addr.do_send(Release);
            }
        }
    });
}

/// Feeds one stream's players on one arbiter.
pub struct Fanout {
    resource: String,
    edge: EdgeId,
    publisher: Addr<Publisher>,
    hub: Rc<RefCell<LocalFanout>>,
    queued: Arc<AtomicUsize>,
    server_stats: Arc<ServerStats>,
    /// Frames not yet handed to the players (`live.write_coalesce_ms`).
    batch: Batch,
    /// Hands the batch over when its oldest frame has waited the window.
    flush_timer: Option<SpawnHandle>,
}

impl Fanout {
    /// Hand what waits to the players: each takes the batch in one visit and its writer
    /// sends it in one `writev`.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.flush_timer.take() {
            ctx.cancel_future(timer);
        }
        if !self.batch.is_empty() {
            // Taken first: a panic in a player's handling loses this batch, never repeats it.
            let frames = self.batch.take();
            self.hub.borrow_mut().frames(&frames);
            self.batch.recycle(frames);
        }
    }

    /// A frame from the publisher: handed over now, or batched (see [`Batch`]).
    fn frame(&mut self, frame: Arc<Frame>, missed: u64, ctx: &mut Context<Self>) {
        match self.batch.push(frame, missed) {
            Push::Flush => self.flush(ctx),
            Push::Wait => {}
            Push::Arm => {
                let window = Duration::from_millis(self.batch.window_ms());
                self.flush_timer = Some(ctx.run_later(window, |act, ctx| {
                    act.flush_timer = None;
                    let stats = act.server_stats.clone();
                    let _ = super::guard(&stats, "fanout", 0, || act.flush(ctx));
                }));
            }
        }
    }
}

impl Actor for Fanout {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.server_stats.actors.fanouts.fetch_add(1, Relaxed);
        attach_edge(
            self,
            ctx,
            &self.publisher,
            self.edge,
            self.queued.clone(),
            |act, ctx, info| match info {
                Some(JoinInfo { live, burst }) => act.hub.borrow_mut().seed(live, &burst),
                None => {
                    tracing::debug!(stream = %Esc(&act.resource), "publisher gone before the fan-out joined it");
                    act.hub.borrow_mut().end();
                    ctx.stop();
                }
            },
        );
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        self.server_stats.actors.fanouts.fetch_sub(1, Relaxed);
        self.publisher.do_send(Unsubscribe { edge: self.edge });
        let me = ctx.address();
        FANOUTS.with(|table| {
            let mut table = table.borrow_mut();
            if table.get(&self.resource).is_some_and(|l| l.addr == me) {
                table.remove(&self.resource);
            }
        });
    }
}

impl Handler<HubEvent> for Fanout {
    type Result = ();

    fn handle(&mut self, msg: HubEvent, ctx: &mut Context<Self>) {
        let stats = self.server_stats.clone();
        // A panic in one player's handling loses this frame for this arbiter's players
        // (logged, counted), not the stream.
        let _ = super::guard(&stats, "fanout", 0, || match msg {
            HubEvent::Frame { frame, missed } => {
                self.queued.fetch_sub(1, Relaxed);
                self.frame(frame, missed, ctx);
            }
            HubEvent::Published => {
                self.flush(ctx);
                self.hub.borrow_mut().published();
            }
            HubEvent::Unpublished => {
                self.flush(ctx);
                self.hub.borrow_mut().unpublished();
            }
        });
    }
}

/// Its last player left.
#[derive(Message)]
#[rtype(result = "()")]
struct Release;

impl Handler<Release> for Fanout {
    type Result = ();

    fn handle(&mut self, _: Release, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
