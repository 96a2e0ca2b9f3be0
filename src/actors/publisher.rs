//! The publisher actor: one per resource (app + stream name). It keeps the latest metadata,
//! the sequence headers (per track) and a GOP cache, and sends every frame once to each
//! *edge*: the fan-out actor of each arbiter with players of the stream (which hands it to
//! them there), and each push relay. An edge's mailbox is bounded: a core that cannot keep
//! up loses frames (its players resync at the next keyframe), never slowing the publisher.
//! The actor lives while the registry counts a publisher or a player on the resource, so
//! players that wait for a publisher, or outlive one, stay attached.

use crate::names::Esc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::ThreadId;

use actix::dev::SendError;
use actix::prelude::*;

use super::{ConnectionId, DropClass, Frame, FrameKind};
use crate::config::Settings;
use crate::hub::StreamCache;
use crate::stats::{ServerStats, StreamStats};

/// What a publisher sends an edge. Frames go with `try_send` (bounded; a full mailbox costs
/// the edge that frame); headers and everything else with `do_send` (never lost, rare).
#[derive(Message)]
#[rtype(result = "()")]
pub enum HubEvent {
    /// A frame; `missed` frames before it could not be delivered to this edge.
    Frame { frame: Arc<Frame>, missed: u64 },
    /// A publisher started (NetStream.Play.PublishNotify).
    Published,
    /// The publisher left (NetStream.Play.UnpublishNotify, StreamEOF).
    Unpublished,
}

/// What a publisher tells its source (the publishing stream actor).
#[derive(Message)]
#[rtype(result = "()")]
pub enum SourceEvent {
    /// Another publisher took the stream over: stop publishing.
    Replaced,
    /// An operator stopped the stream.
    Stop,
}

/// Identifies an edge (unique in the process).
pub type EdgeId = u64;

static NEXT_EDGE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A new, unique edge id.
pub fn next_edge_id() -> EdgeId {
    NEXT_EDGE.fetch_add(1, Relaxed)
}

struct Edge {
    id: EdgeId,
    recipient: Recipient<HubEvent>,
    /// Frames sent and not handled yet (the edge takes one off per frame it handles).
    queued: Arc<AtomicUsize>,
    /// It runs on another thread than the publisher: each message wakes that thread.
    cross_thread: bool,
    /// Frames that could not be delivered since the last one that was.
    missed: u64,
    /// Its mailbox is gone (the actor stopped): removed after the fan-out loop.
    closed: bool,
}

/// Fans one resource's frames out.
pub struct Publisher {
    key: String,
    app: String,
    name: String,
    settings: Arc<Settings>,
    stats: Arc<StreamStats>,
    server_stats: Arc<ServerStats>,
    session: Option<u64>,
    /// The newest session the registry granted (or a pull relay attached with): sessions
    /// are numbered in grant order, so an older one arriving late (an `Attach` that lost
    /// the race with a newer grant's `TakeOver` or `Attach`) is refused, never installed.
    granted: u64,
    source: Option<Recipient<SourceEvent>>,
    /// In the order they joined: frames go to established cores first.
    edges: Vec<Edge>,
    cache: StreamCache,
    /// Last timestamp fanned out, so that a new publisher continues from it.
    last_timestamp: Option<u32>,
    /// The thread the actor runs on (set when it starts).
    thread: Option<ThreadId>,
}

impl Publisher {
    pub fn new(
        key: String,
        app: String,
        name: String,
        settings: Arc<Settings>,
        stats: Arc<StreamStats>,
        server_stats: Arc<ServerStats>,
    ) -> Self {
        Publisher {
            key,
            app,
            name,
            settings,
            stats,
            server_stats,
            session: None,
            granted: 0,
            source: None,
            edges: Vec::new(),
            cache: StreamCache::default(),
            last_timestamp: None,
            thread: None,
        }
    }

    fn clear_caches(&mut self) {
        self.cache.clear();
        self.stats.gop_cache_bytes.store(0, Relaxed);
        self.stats.gop_cache_frames.store(0, Relaxed);
    }

    /// Keep what a late joiner needs: metadata, headers (per kind, role and track), and the
    /// frames since every video track's keyframe.
    fn cache(&mut self, frame: &Arc<Frame>) {
        self.cache.record(frame, &self.settings.live);
        if frame.class != DropClass::Header {
            self.stats
                .gop_cache_bytes
                .store(self.cache.gop.bytes(), Relaxed);
            self.stats
                .gop_cache_frames
                .store(self.cache.gop.len(), Relaxed);
        }
    }

    /// Keeps the join order; linear, as joins and leaves are rare next to frames.
    fn remove_edge(&mut self, id: EdgeId) {
        if let Some(at) = self.edges.iter().position(|e| e.id == id) {
            self.edges.remove(at);
        }
        self.stats.fanout_edges.store(self.edges.len(), Relaxed);
    }

    fn broadcast(&mut self, event: impl Fn() -> HubEvent) {
        for edge in &self.edges {
            edge.recipient.do_send(event());
        }
    }

    /// One message per edge, not per player.
    fn fan_out(&mut self, frame: &Arc<Frame>) {
        let mut closed = false;
        let (mut sent, mut cross) = (0_u64, 0_u64);
        for edge in self.edges.iter_mut() {
            let event = HubEvent::Frame {
                frame: frame.clone(),
                missed: edge.missed,
            };
            // Counted before the send: the edge (maybe on another arbiter) takes it off when
            // it handles the frame.
            edge.queued.fetch_add(1, Relaxed);
            let result = if frame.class == DropClass::Header {
                // Headers are never dropped: a player must always be able to resync.
                edge.recipient.do_send(event);
                Ok(())
            } else {
                edge.recipient.try_send(event)
            };
            match result {
                Ok(()) => {
                    edge.missed = 0;
                    sent += 1;
                    cross += u64::from(edge.cross_thread);
                }
                Err(SendError::Full(_)) => {
                    edge.queued.fetch_sub(1, Relaxed);
                    edge.missed += 1;
                    self.stats.fanout_dropped.fetch_add(1, Relaxed);
                }
                Err(SendError::Closed(_)) => {
                    edge.queued.fetch_sub(1, Relaxed);
                    edge.closed = true;
                    closed = true;
                }
            }
        }
        self.stats.fanout_messages.fetch_add(sent, Relaxed);
        self.stats.cross_thread_messages.fetch_add(cross, Relaxed);
        if closed {
            self.edges.retain(|edge| !edge.closed);
            self.stats.fanout_edges.store(self.edges.len(), Relaxed);
        }
    }
}

impl Actor for Publisher {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        self.thread = Some(std::thread::current().id());
        self.server_stats.actors.publishers.fetch_add(1, Relaxed);
        tracing::debug!(stream = %Esc(&self.key), "publisher actor started");
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.server_stats.actors.publishers.fetch_sub(1, Relaxed);
        tracing::debug!(stream = %Esc(&self.key), "publisher actor stopped");
    }
}

/// A publishing stream actor starts feeding this resource.
#[derive(Message)]
#[rtype(result = "AttachInfo")]
pub struct Attach {
    pub session: u64,
    pub connection: ConnectionId,
    pub source: Recipient<SourceEvent>,
}

/// What a new source needs to know.
#[derive(Debug, Clone, Copy)]
pub struct AttachInfo {
    /// Timestamp to continue from so that players see monotonic time across publishers.
    pub continue_from: Option<u32>,
}

impl Handler<Attach> for Publisher {
    type Result = MessageResult<Attach>;

    fn handle(&mut self, msg: Attach, _: &mut Context<Self>) -> Self::Result {
        if msg.session < self.granted {
            // The registry has granted the stream to a newer session since: this source
            // must not become the publisher, whatever order the messages came in.
            tracing::debug!(stream = %Esc(&self.key), connection = msg.connection, session = msg.session, granted = self.granted, "stale attach refused");
            msg.source.do_send(SourceEvent::Replaced);
            return MessageResult(AttachInfo {
                continue_from: self.last_timestamp.map(|t| t.wrapping_add(1)),
            });
        }
        self.granted = msg.session;
        if let Some(old) = self.source.take() {
            old.do_send(SourceEvent::Replaced);
        }
        let resumed = self.session.is_some();
        self.session = Some(msg.session);
        self.source = Some(msg.source);
        self.stats
            .publisher_connection
            .store(msg.connection, Relaxed);
        self.stats
            .publish_started_ms
            .store(super::registry::now_ms().max(1), Relaxed);
        self.clear_caches();
        if resumed {
            self.broadcast(|| HubEvent::Unpublished);
        }
        self.broadcast(|| HubEvent::Published);
        tracing::info!(stream = %Esc(&self.key), connection = msg.connection, edges = self.edges.len(), "publishing started");
        // Continue a little after the last timestamp so that no two frames share one.
        MessageResult(AttachInfo {
            continue_from: self.last_timestamp.map(|t| t.wrapping_add(1)),
        })
    }
}

/// The registry granted the stream to `session` (sent on every grant, before the grant's
/// reply): any other source is replaced, frames of older sessions are ignored, and their
/// late `Attach` is refused.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TakeOver {
    pub session: u64,
}

impl Handler<TakeOver> for Publisher {
    type Result = ();

    fn handle(&mut self, msg: TakeOver, _: &mut Context<Self>) {
        if msg.session < self.granted {
            return;
        }
        self.granted = msg.session;
        if self.session.is_some_and(|s| s != msg.session) {
            if let Some(old) = self.source.take() {
                old.do_send(SourceEvent::Replaced);
            }
            self.session = None;
        }
    }
}

/// A publishing session ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Detach {
    pub session: u64,
}

impl Handler<Detach> for Publisher {
    type Result = ();

    fn handle(&mut self, msg: Detach, _: &mut Context<Self>) {
        if self.session == Some(msg.session) {
            self.session = None;
            self.source = None;
            self.stats.publisher_connection.store(0, Relaxed);
            self.stats.publish_started_ms.store(0, Relaxed);
            self.clear_caches();
            self.broadcast(|| HubEvent::Unpublished);
            tracing::info!(stream = %Esc(&self.key), edges = self.edges.len(), "publishing stopped");
        }
    }
}

/// An operator stops the stream's publisher (admin API).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct StopPublisher;

impl Handler<StopPublisher> for Publisher {
    type Result = bool;

    fn handle(&mut self, _: StopPublisher, _: &mut Context<Self>) -> bool {
        match self.source.take() {
            Some(source) => {
                source.do_send(SourceEvent::Stop);
                true
            }
            None => false,
        }
    }
}

/// A frame from the publishing stream actor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Ingest {
    pub session: u64,
    pub frame: Arc<Frame>,
}

impl Ingest {
    /// Queue this frame without waiting, counted in the publisher's queue depth (its handler
    /// takes one off). On `Full` the count stays: the caller waits with
    /// [`Ingest::send_when_room`]. On `Closed` it is taken off here.
    pub fn offer(
        self,
        publisher: &Addr<Publisher>,
        stats: &StreamStats,
    ) -> Result<(), SendError<Ingest>> {
        stats.publisher_queued.fetch_add(1, Relaxed);
        let sent = publisher.try_send(self);
        if matches!(sent, Err(SendError::Closed(_))) {
            stats.publisher_queued.fetch_sub(1, Relaxed);
        }
        sent
    }

    /// After [`Ingest::offer`] found the mailbox full: wait for room (lossless ingest). The
    /// count `offer` kept is taken off if the publisher is gone before it takes the frame.
    pub async fn send_when_room(
        self,
        publisher: Addr<Publisher>,
        stats: Arc<StreamStats>,
    ) -> Result<(), MailboxError> {
        let sent = publisher.send(self).await;
        if sent.is_err() {
            stats.publisher_queued.fetch_sub(1, Relaxed);
        }
        sent
    }
}

impl Handler<Ingest> for Publisher {
    type Result = ();

    fn handle(&mut self, msg: Ingest, _: &mut Context<Self>) {
        self.stats.publisher_queued.fetch_sub(1, Relaxed);
        // Every player of the resource shares this actor: a panic loses that frame (logged,
        // counted) rather than the resource.
        let stats = self.server_stats.clone();
        let _ = super::guard(&stats, "publisher", 0, || self.ingest(msg));
    }
}

impl Publisher {
    fn ingest(&mut self, msg: Ingest) {
        if self.session != Some(msg.session) {
            return;
        }
        let frame = msg.frame;
        self.stats.messages_in.fetch_add(1, Relaxed);
        self.stats
            .bytes_in
            .fetch_add(frame.payload.len() as u64, Relaxed);
        if frame.kind != FrameKind::Data {
            self.last_timestamp = Some(frame.timestamp);
        }
        if frame.kind == FrameKind::Video && frame.class != DropClass::Header {
            self.stats.video_frames.fetch_add(1, Relaxed);
            if frame.is_keyframe() {
                self.stats.keyframes.fetch_add(1, Relaxed);
            }
        }
        self.cache(&frame);
        self.fan_out(&frame);
    }
}

/// An edge (a core's fan-out actor, a push relay) attaches; the reply carries what it
/// starts from.
#[derive(Message)]
#[rtype(result = "JoinInfo")]
pub struct Subscribe {
    pub edge: EdgeId,
    pub recipient: Recipient<HubEvent>,
    /// Counts the frames sent to it and not handled yet.
    pub queued: Arc<AtomicUsize>,
    /// The thread the edge runs on.
    pub thread: ThreadId,
}

/// The state a joining edge starts from.
pub struct JoinInfo {
    /// A publisher is live.
    pub live: bool,
    /// Metadata, headers, then the GOP cache (each video track from its own keyframe), in
    /// order.
    pub burst: Vec<Arc<Frame>>,
}

/// Attach `actor` (an edge on this thread) to `publisher`: it handles no message before
/// `joined` has the publisher's state (frames follow the burst), or `None` if the publisher
/// has gone.
pub fn attach_edge<A>(
    actor: &A,
    ctx: &mut Context<A>,
    publisher: &Addr<Publisher>,
    edge: EdgeId,
    queued: Arc<AtomicUsize>,
    joined: impl FnOnce(&mut A, &mut Context<A>, Option<JoinInfo>) + 'static,
) where
    A: Actor<Context = Context<A>> + Handler<HubEvent>,
{
    let subscribe = Subscribe {
        edge,
        recipient: ctx.address().recipient(),
        queued,
        thread: std::thread::current().id(),
    };
    ctx.wait(
        publisher
            .send(subscribe)
            .into_actor(actor)
            .map(|res, act, ctx| joined(act, ctx, res.ok())),
    );
}

impl Handler<Subscribe> for Publisher {
    type Result = MessageResult<Subscribe>;

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) -> Self::Result {
        self.remove_edge(msg.edge);
        self.edges.push(Edge {
            id: msg.edge,
            recipient: msg.recipient,
            queued: msg.queued,
            cross_thread: self.thread != Some(msg.thread),
            missed: 0,
            closed: false,
        });
        self.stats.fanout_edges.store(self.edges.len(), Relaxed);
        MessageResult(JoinInfo {
            live: self.session.is_some(),
            burst: self.cache.burst_vec(),
        })
    }
}

/// An edge leaves.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub edge: EdgeId,
}

impl Handler<Unsubscribe> for Publisher {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _: &mut Context<Self>) {
        self.remove_edge(msg.edge);
    }
}

/// The registry has no more users for this resource.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for Publisher {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        tracing::debug!(app = %Esc(&self.app), name = %Esc(&self.name), "publisher actor released");
        ctx.stop();
    }
}

#[cfg(test)]
mod tests;
