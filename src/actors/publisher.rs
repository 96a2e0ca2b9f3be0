//! The publisher actor: one per resource (app + stream name). It keeps the latest metadata,
//! the sequence headers (per track) and a GOP cache, and fans every frame out to its
//! subscribers through their bounded mailboxes. It lives while the registry counts a publisher
//! or a player on the resource, so players that wait for a publisher, or outlive one, stay
//! attached.

use crate::names::Esc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use actix::dev::SendError;
use actix::prelude::*;

use super::tracks::GopCache;
use super::{ConnectionId, DropClass, Frame, FrameKind, HeaderCache};
use crate::config::Settings;
use crate::stats::{ServerStats, StreamStats, SubscriberStats};

/// Identifies a subscriber: its connection and message stream id.
pub type SubscriberKey = (ConnectionId, u32);

/// What a publisher tells a subscriber. Frames go with `try_send` (bounded; a full mailbox
/// costs the subscriber that frame); everything else with `do_send` (never lost, rare).
#[derive(Message)]
#[rtype(result = "()")]
pub enum SubscriberEvent {
    /// A frame; `after_gap` says frames were lost since the last one delivered.
    Frame { frame: Arc<Frame>, after_gap: bool },
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

struct Edge {
    key: SubscriberKey,
    recipient: Recipient<SubscriberEvent>,
    stats: Arc<SubscriberStats>,
    /// A frame could not be delivered since the last one that was.
    missed: bool,
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
    /// In the order they joined: frames go to established players first, so a crowd of
    /// joiners (each already served its GOP burst) queues behind them rather than ahead.
    subscribers: Vec<Edge>,
    headers: HeaderCache,
    gop: GopCache,
    /// Last timestamp fanned out, so that a new publisher continues from it.
    last_timestamp: Option<u32>,
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
            subscribers: Vec::new(),
            headers: HeaderCache::default(),
            gop: GopCache::default(),
            last_timestamp: None,
        }
    }

    fn clear_caches(&mut self) {
        self.headers.clear();
        self.clear_gop();
    }

    fn clear_gop(&mut self) {
        self.gop.clear();
        self.stats.gop_cache_bytes.store(0, Relaxed);
        self.stats.gop_cache_frames.store(0, Relaxed);
    }

    /// Keep what a late joiner needs: metadata, headers (per kind, role and track), and the
    /// frames since every video track's keyframe (see [`GopCache`]).
    fn cache(&mut self, frame: &Arc<Frame>) {
        if frame.class == DropClass::Header {
            self.headers.remember(frame);
            return;
        }
        let live = &self.settings.live;
        if !live.gop_cache {
            return;
        }
        self.gop.push(
            frame,
            live.gop_cache_max_bytes,
            live.gop_cache_max_duration_ms,
        );
        self.stats.gop_cache_bytes.store(self.gop.bytes(), Relaxed);
        self.stats.gop_cache_frames.store(self.gop.len(), Relaxed);
    }

    /// Keeps the join order; linear, as joins and leaves are rare next to frames.
    fn remove_subscriber(&mut self, key: &SubscriberKey) {
        if let Some(at) = self.subscribers.iter().position(|e| e.key == *key) {
            self.subscribers.remove(at);
        }
    }

    fn broadcast(&mut self, event: impl Fn() -> SubscriberEvent) {
        for edge in &self.subscribers {
            edge.recipient.do_send(event());
        }
    }

    fn fan_out(&mut self, frame: &Arc<Frame>) {
        let mut closed = false;
        for edge in self.subscribers.iter_mut() {
            let event = SubscriberEvent::Frame {
                frame: frame.clone(),
                after_gap: edge.missed,
            };
            // Counted before the send: the subscriber (maybe on another arbiter) takes it
            // off when it handles the frame.
            edge.stats.mailbox_depth.fetch_add(1, Relaxed);
            if frame.class == DropClass::Header {
                // Headers are never dropped: a player must always be able to resync.
                edge.recipient.do_send(event);
                continue;
            }
            match edge.recipient.try_send(event) {
                Ok(()) => edge.missed = false,
                Err(SendError::Full(_)) => {
                    edge.stats.mailbox_depth.fetch_sub(1, Relaxed);
                    edge.missed = true;
                    edge.stats.drops.mailbox_full.fetch_add(1, Relaxed);
                }
                Err(SendError::Closed(_)) => {
                    edge.stats.mailbox_depth.fetch_sub(1, Relaxed);
                    edge.closed = true;
                    closed = true;
                }
            }
        }
        if closed {
            self.subscribers.retain(|edge| !edge.closed);
        }
    }
}

impl Actor for Publisher {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
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
            self.broadcast(|| SubscriberEvent::Unpublished);
        }
        self.broadcast(|| SubscriberEvent::Published);
        tracing::info!(stream = %Esc(&self.key), connection = msg.connection, subscribers = self.subscribers.len(), "publishing started");
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
            self.broadcast(|| SubscriberEvent::Unpublished);
            tracing::info!(stream = %Esc(&self.key), subscribers = self.subscribers.len(), "publishing stopped");
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

/// A subscriber attaches; the reply carries what it must send first.
#[derive(Message)]
#[rtype(result = "JoinInfo")]
pub struct Subscribe {
    pub key: SubscriberKey,
    pub recipient: Recipient<SubscriberEvent>,
    pub stats: Arc<SubscriberStats>,
}

/// The state a joining subscriber starts from.
pub struct JoinInfo {
    /// A publisher is live.
    pub live: bool,
    /// Metadata, headers, then the GOP cache (each video track from its own keyframe), in
    /// order.
    pub burst: Vec<Arc<Frame>>,
}

impl Handler<Subscribe> for Publisher {
    type Result = MessageResult<Subscribe>;

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) -> Self::Result {
        let mut burst = Vec::with_capacity(2 + self.headers.headers.len() + self.gop.len());
        burst.extend(self.headers.metadata.iter().cloned());
        burst.extend(self.headers.headers.iter().cloned());
        burst.extend(self.gop.burst().cloned());
        self.stats.subscribers.insert(msg.key, msg.stats.clone());
        self.remove_subscriber(&msg.key);
        self.subscribers.push(Edge {
            key: msg.key,
            recipient: msg.recipient,
            stats: msg.stats,
            missed: false,
            closed: false,
        });
        MessageResult(JoinInfo {
            live: self.session.is_some(),
            burst,
        })
    }
}

/// A subscriber leaves.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub key: SubscriberKey,
}

impl Handler<Unsubscribe> for Publisher {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _: &mut Context<Self>) {
        self.remove_subscriber(&msg.key);
        self.stats.subscriber_gone(&msg.key, &self.server_stats);
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
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use bytes::Bytes;

    use super::*;
    use crate::actors::TrackSet;
    use crate::stats::ConnectionStats;

    /// Records, in one shared log, which subscriber handled each frame.
    struct Recorder {
        id: u64,
        log: Rc<RefCell<Vec<(u64, u32)>>>,
    }

    impl Actor for Recorder {
        type Context = Context<Self>;
    }

    impl Handler<SubscriberEvent> for Recorder {
        type Result = ();

        fn handle(&mut self, msg: SubscriberEvent, _: &mut Context<Self>) {
            if let SubscriberEvent::Frame { frame, .. } = msg {
                self.log.borrow_mut().push((self.id, frame.timestamp));
            }
        }
    }

    fn frame(timestamp: u32) -> Arc<Frame> {
        Arc::new(Frame {
            kind: FrameKind::Audio,
            class: DropClass::Audio,
            type_id: 8,
            timestamp,
            payload: Bytes::from_static(&[0xaf, 0x01]),
            chunked: Bytes::from_static(&[0xaf, 0x01]),
            tracks: TrackSet::single(0),
            role: None,
            enhanced: false,
            fourcc: None,
        })
    }

    #[actix_rt::test]
    async fn frames_reach_subscribers_in_the_order_they_joined() {
        let settings = Arc::new(Settings::load(None).expect("embedded defaults"));
        let publisher = Publisher::new(
            "live/x".into(),
            "live".into(),
            "x".into(),
            settings,
            Arc::new(StreamStats::new("live", "x")),
            Arc::new(ServerStats::default()),
        )
        .start();
        let log = Rc::new(RefCell::new(Vec::new()));
        // Connection ids out of order, so that a keyed map's order would differ.
        for id in [907_u64, 3, 512, 44, 1000, 1, 77, 250] {
            join(&publisher, id, &log).await;
        }
        // One leaves and comes back: it is now the newest.
        publisher
            .send(Unsubscribe { key: (512, 1) })
            .await
            .expect("publisher alive");
        join(&publisher, 512, &log).await;
        let source = Ignore.start().recipient();
        let attach = publisher
            .send(Attach {
                session: 1,
                connection: 9,
                source,
            })
            .await
            .expect("publisher alive");
        assert!(attach.continue_from.is_none());
        for ts in [10, 20] {
            publisher
                .send(Ingest {
                    session: 1,
                    frame: frame(ts),
                })
                .await
                .expect("publisher alive");
        }
        // Let every recorder run.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let joined = [907_u64, 3, 44, 1000, 1, 77, 250, 512];
        for ts in [10, 20] {
            let order: Vec<u64> = log
                .borrow()
                .iter()
                .filter(|(_, t)| *t == ts)
                .map(|(id, _)| *id)
                .collect();
            assert_eq!(order, joined, "frame {ts}");
        }
    }

    /// Subscribe a new recorder for connection `id`.
    async fn join(publisher: &Addr<Publisher>, id: u64, log: &Rc<RefCell<Vec<(u64, u32)>>>) {
        let recorder = Recorder {
            id,
            log: log.clone(),
        }
        .start();
        let connection = Arc::new(ConnectionStats::new(id, "127.0.0.1:1".parse().unwrap(), 0));
        publisher
            .send(Subscribe {
                key: (id, 1),
                recipient: recorder.recipient(),
                stats: Arc::new(SubscriberStats::new(connection, 1, 256)),
            })
            .await
            .expect("publisher alive");
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
}
