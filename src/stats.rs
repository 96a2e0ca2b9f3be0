//! Figures the actors publish for the admin side to read: atomics and shared maps, so that
//! reading stats never messages a media actor and never blocks the media path.
//!
//! How each per-actor figure of the admin API is obtained (actix exposes no mailbox length,
//! so depths are counted by sender and receiver):
//! - subscriber mailbox depth: frames queued to the fan-out actor that feeds the player (one
//!   per stream and arbiter, shared by that arbiter's players of the stream): the publisher
//!   adds one before it offers a frame (taking it back if the offer fails); the fan-out actor
//!   takes one off when it has handed the frame to its players. Capacity:
//!   `live.subscriber_mailbox`.
//! - publishing stream mailbox depth: media messages the connection forwarded
//!   ([`ConnectionStats::media_forwarded`]) minus those the stream handled
//!   ([`ConnectionStats::media_handled`]). Capacity: 64.
//! - publisher mailbox depth: [`StreamStats::publisher_queued`], added to by the publishing
//!   stream before it sends an `Ingest`, taken off by the publisher when it handles one.
//!   Capacity: actix's default of 16.
//! - connection and registry mailboxes carry only rare control messages and are not
//!   counted (reported as `null`); their "handled" figures are messages read from the
//!   socket and registry requests.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use actix::Recipient;
use dashmap::DashMap;

use crate::requests::{CloseConnection, RequestReconnect};

/// How many gone subscribers each stream remembers for the admin API.
pub const GONE_SUBSCRIBERS_KEPT: usize = 16;

/// Mailbox capacity of a publishing stream actor (set in its `started`).
pub const PUBLISHING_STREAM_MAILBOX: usize = 64;

/// actix's default mailbox capacity (publisher, registry, connection actors).
pub const DEFAULT_MAILBOX: usize = 16;

/// The handle the admin API kicks a connection with: its actor's `CloseConnection`
/// recipient, registered when the actor starts.
#[derive(Clone)]
pub struct KickHandle(
    pub Recipient<CloseConnection>,
    pub Recipient<RequestReconnect>,
);

impl fmt::Debug for KickHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KickHandle")
    }
}

/// How a client reaches the server, as the admin API and metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Protocol {
    Rtmp = 0,
    Rtmps = 1,
    /// An HTTP connection before its request says which of the two below it is.
    Http = 2,
    HttpFlv = 3,
    WsFlv = 4,
}

impl Protocol {
    pub const ALL: [Protocol; 5] = [
        Protocol::Rtmp,
        Protocol::Rtmps,
        Protocol::Http,
        Protocol::HttpFlv,
        Protocol::WsFlv,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::Rtmps => "rtmps",
            Protocol::Http => "http",
            Protocol::HttpFlv => "http-flv",
            Protocol::WsFlv => "ws-flv",
        }
    }

    fn from_u8(v: u8) -> Protocol {
        Protocol::ALL
            .get(usize::from(v))
            .copied()
            .unwrap_or(Protocol::Rtmp)
    }
}

/// What a connection is doing, as the admin API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ConnectionState {
    Handshake = 0,
    Connected = 1,
    Publishing = 2,
    Playing = 3,
    Closing = 4,
}

impl ConnectionState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Handshake => "handshake",
            ConnectionState::Connected => "connected",
            ConnectionState::Publishing => "publishing",
            ConnectionState::Playing => "playing",
            ConnectionState::Closing => "closing",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => ConnectionState::Handshake,
            1 => ConnectionState::Connected,
            2 => ConnectionState::Publishing,
            3 => ConnectionState::Playing,
            _ => ConnectionState::Closing,
        }
    }
}

/// One connection's live figures.
#[derive(Debug)]
pub struct ConnectionStats {
    pub id: u64,
    pub peer: SocketAddr,
    pub worker: usize,
    /// Accepted on the RTMPS listener.
    pub tls: bool,
    protocol: AtomicU8,
    pub started: Instant,
    pub started_wall: SystemTime,
    state: AtomicU8,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub messages_in: AtomicU64,
    pub queued_bytes: AtomicUsize,
    /// Round-trip time from the last ping, in microseconds (0 = none yet).
    pub rtt_us: AtomicU64,
    /// Milliseconds since `started` of the last byte read.
    pub last_read_ms: AtomicU64,
    /// App and client name (`flashVer`) once connected.
    pub app: Mutex<Option<(String, String)>>,
    /// Media messages handed to this connection's publishing stream actors.
    pub media_forwarded: AtomicU64,
    /// Media messages its publishing stream actors have handled.
    pub media_handled: AtomicU64,
    /// Why the connection is closing, once it is.
    pub close_reason: Mutex<Option<String>>,
    /// Set when the connection actor starts; the admin API's kick.
    pub kick: Mutex<Option<KickHandle>>,
}

impl ConnectionStats {
    pub fn new(id: u64, peer: SocketAddr, worker: usize) -> Self {
        ConnectionStats {
            id,
            peer,
            worker,
            tls: false,
            protocol: AtomicU8::new(Protocol::Rtmp as u8),
            started: Instant::now(),
            started_wall: SystemTime::now(),
            state: AtomicU8::new(ConnectionState::Handshake as u8),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            messages_in: AtomicU64::new(0),
            queued_bytes: AtomicUsize::new(0),
            rtt_us: AtomicU64::new(0),
            last_read_ms: AtomicU64::new(0),
            app: Mutex::new(None),
            media_forwarded: AtomicU64::new(0),
            media_handled: AtomicU64::new(0),
            close_reason: Mutex::new(None),
            kick: Mutex::new(None),
        }
    }

    /// Record why the connection ends (the first reason wins).
    pub fn set_close_reason(&self, reason: &str) {
        if let Ok(mut r) = self.close_reason.lock() {
            if r.is_none() {
                *r = Some(reason.to_owned());
            }
        }
    }

    /// The close reason, if any.
    pub fn close_reason(&self) -> Option<String> {
        self.close_reason.lock().ok().and_then(|r| r.clone())
    }

    /// App and `flashVer`, once connected.
    pub fn app_info(&self) -> Option<(String, String)> {
        self.app.lock().ok().and_then(|a| a.clone())
    }

    /// Register the connection actor's close and reconnect recipients.
    pub fn set_kick(
        &self,
        recipient: Recipient<CloseConnection>,
        reconnect: Recipient<RequestReconnect>,
    ) {
        if let Ok(mut k) = self.kick.lock() {
            *k = Some(KickHandle(recipient, reconnect));
        }
    }

    /// The connection actor's reconnect recipient (E-RTMP v2 reconnect request), if started.
    pub fn reconnect_handle(&self) -> Option<Recipient<RequestReconnect>> {
        self.kick
            .lock()
            .ok()
            .and_then(|k| k.as_ref().map(|h| h.1.clone()))
    }

    /// Ask the connection actor to close; false if it has none registered.
    pub fn kick(&self, reason: &str) -> bool {
        let handle = self.kick.lock().ok().and_then(|k| k.clone());
        match handle {
            Some(KickHandle(recipient, _)) => {
                recipient.do_send(CloseConnection {
                    reason: reason.to_owned(),
                });
                true
            }
            None => false,
        }
    }

    /// Depth of its publishing stream actors' mailboxes (forwarded minus handled).
    pub fn media_queued(&self) -> u64 {
        self.media_forwarded
            .load(Relaxed)
            .saturating_sub(self.media_handled.load(Relaxed))
    }

    pub fn state(&self) -> ConnectionState {
        ConnectionState::from_u8(self.state.load(Relaxed))
    }

    pub fn protocol(&self) -> Protocol {
        Protocol::from_u8(self.protocol.load(Relaxed))
    }

    pub fn set_protocol(&self, protocol: Protocol) {
        self.protocol.store(protocol as u8, Relaxed);
    }

    pub fn set_state(&self, state: ConnectionState) {
        self.state.store(state as u8, Relaxed);
    }

    pub fn touch_read(&self) {
        self.last_read_ms
            .store(self.started.elapsed().as_millis() as u64, Relaxed);
    }

    /// Milliseconds since the last byte was read.
    pub fn idle_ms(&self) -> u64 {
        (self.started.elapsed().as_millis() as u64).saturating_sub(self.last_read_ms.load(Relaxed))
    }
}

/// Why a subscriber lost frames.
#[derive(Debug, Default)]
pub struct DropCounters {
    /// Its actor's mailbox was full when the publisher offered a frame.
    pub mailbox_full: AtomicU64,
    /// Disposable inter frames dropped over the first byte budget.
    pub disposable: AtomicU64,
    /// Video dropped until the next keyframe.
    pub video: AtomicU64,
    /// Audio dropped over the last byte budget.
    pub audio: AtomicU64,
    /// Frames skipped while waiting for a keyframe after a drop.
    pub awaiting_keyframe: AtomicU64,
}

impl DropCounters {
    /// The `reason` label of each counter, in [`DropCounters::values`] order.
    pub const REASONS: [&'static str; 5] = [
        "mailbox_full",
        "disposable",
        "video",
        "audio",
        "awaiting_keyframe",
    ];

    /// Add `other`'s counts to these.
    pub fn add(&self, other: &DropCounters) {
        for (to, from) in [
            (&self.mailbox_full, &other.mailbox_full),
            (&self.disposable, &other.disposable),
            (&self.video, &other.video),
            (&self.audio, &other.audio),
            (&self.awaiting_keyframe, &other.awaiting_keyframe),
        ] {
            to.fetch_add(from.load(Relaxed), Relaxed);
        }
    }

    /// The counts in [`DropCounters::REASONS`] order.
    pub fn values(&self) -> [u64; 5] {
        [
            self.mailbox_full.load(Relaxed),
            self.disposable.load(Relaxed),
            self.video.load(Relaxed),
            self.audio.load(Relaxed),
            self.awaiting_keyframe.load(Relaxed),
        ]
    }

    pub fn total(&self) -> u64 {
        self.mailbox_full.load(Relaxed)
            + self.disposable.load(Relaxed)
            + self.video.load(Relaxed)
            + self.audio.load(Relaxed)
            + self.awaiting_keyframe.load(Relaxed)
    }
}

/// One subscriber's live figures.
#[derive(Debug)]
pub struct SubscriberStats {
    pub connection_id: u64,
    pub stream_id: u32,
    pub peer: SocketAddr,
    pub started: Instant,
    pub messages_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub drops: DropCounters,
    /// Age of the oldest byte queued to the player, in ms.
    pub lag_ms: AtomicU64,
    /// The queue of the fan-out actor feeding it, once it joined one (see the module doc).
    pub mailbox: std::sync::OnceLock<Arc<AtomicUsize>>,
    pub mailbox_capacity: usize,
    /// Live frames handed to the player.
    pub handled: AtomicU64,
    /// Why the subscriber stopped, when it decided itself (lag limit...).
    pub close_reason: Mutex<Option<String>>,
    /// Its connection's figures (queued bytes, close reason).
    pub connection: Option<Arc<ConnectionStats>>,
}

impl SubscriberStats {
    /// Figures for a new player on `connection`'s message stream `stream_id`.
    pub fn new(connection: Arc<ConnectionStats>, stream_id: u32, mailbox_capacity: usize) -> Self {
        SubscriberStats {
            connection_id: connection.id,
            stream_id,
            peer: connection.peer,
            started: Instant::now(),
            messages_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            drops: DropCounters::default(),
            lag_ms: AtomicU64::new(0),
            mailbox: std::sync::OnceLock::new(),
            mailbox_capacity,
            handled: AtomicU64::new(0),
            close_reason: Mutex::new(None),
            connection: Some(connection),
        }
    }

    /// Frames queued to the fan-out actor that feeds it.
    pub fn mailbox_depth(&self) -> usize {
        self.mailbox.get().map_or(0, |q| q.load(Relaxed))
    }

    /// Bytes queued to the player's socket (its connection's outbox).
    pub fn queued_bytes(&self) -> usize {
        self.connection
            .as_ref()
            .map_or(0, |c| c.queued_bytes.load(Relaxed))
    }

    /// Why it went: its own reason, else its connection's, else a plain stop.
    pub fn disconnect_reason(&self) -> String {
        self.close_reason
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .or_else(|| self.connection.as_ref().and_then(|c| c.close_reason()))
            .unwrap_or_else(|| "stopped playing".to_owned())
    }
}

/// What is kept of a subscriber after it left.
#[derive(Debug, Clone)]
pub struct GoneSubscriber {
    pub connection_id: u64,
    pub stream_id: u32,
    pub peer: SocketAddr,
    pub messages_sent: u64,
    pub bytes_sent: u64,
    pub drops_total: u64,
    pub duration_ms: u64,
    pub left_wall: SystemTime,
    pub reason: String,
}

/// The last stream id handed out (ids start at 1 and are never reused in a process).
static LAST_STREAM_ID: AtomicU64 = AtomicU64::new(0);

/// One published stream's live figures.
#[derive(Debug)]
pub struct StreamStats {
    /// Unique for the life of the process, assigned when the entry is created: the admin
    /// API addresses streams by it, because names may hold anything a peer chose (`%XX`,
    /// `..`, `#`) that a URL path would decode or normalise into another stream's name.
    pub id: u64,
    pub app: String,
    pub name: String,
    pub created: Instant,
    pub publisher_connection: AtomicU64,
    pub video_codec: Mutex<Option<String>>,
    pub audio_codec: Mutex<Option<String>>,
    pub width: AtomicU64,
    pub height: AtomicU64,
    pub bytes_in: AtomicU64,
    pub messages_in: AtomicU64,
    /// Data messages not relayed because they do not decode within the AMF limits.
    pub data_dropped: AtomicU64,
    pub gop_cache_bytes: AtomicUsize,
    pub gop_cache_frames: AtomicUsize,
    pub subscribers: DashMap<(u64, u32), Arc<SubscriberStats>>,
    /// Video frames and keyframes ingested (frame rate and GOP length are sampled from
    /// these by the admin side).
    pub video_frames: AtomicU64,
    pub keyframes: AtomicU64,
    /// `Ingest` messages sent to the publisher actor and not handled yet.
    pub publisher_queued: AtomicUsize,
    /// Edges the publisher sends each frame to: one fan-out per arbiter with players, and
    /// each push relay.
    pub fanout_edges: AtomicUsize,
    /// Frame messages the publisher sent its edges (one per edge per frame, not per player).
    pub fanout_messages: AtomicU64,
    /// Those that went to another thread (each wakes it): at most one per arbiter per frame.
    pub cross_thread_messages: AtomicU64,
    /// Frames an edge's full mailbox lost (its players resync at the next keyframe).
    pub fanout_dropped: AtomicU64,
    /// [`now_ms`] when the current publisher attached; 0 = none.
    pub publish_started_ms: AtomicU64,
    /// Egress of subscribers that already left, so the stream's egress total is monotonic.
    pub gone_bytes_sent: AtomicU64,
    pub gone_messages_sent: AtomicU64,
    /// The last [`GONE_SUBSCRIBERS_KEPT`] subscribers that left.
    pub gone: Mutex<VecDeque<GoneSubscriber>>,
    /// Drops of subscribers that already left, so the stream's drop counters are monotonic.
    pub gone_drops: DropCounters,
    /// Relay hops: `None` while the stream is published here (or not at all);
    /// `Some("host:port")` while it is pulled from that instance (the pull relay).
    pub origin: Mutex<Option<String>>,
    /// Push relays currently forwarding this stream: `(target URL, connected)`.
    pub pushes: DashMap<String, bool>,
    /// Failed relay connections of this stream (push or pull): refused, unreachable, lost,
    /// or a TLS certificate that did not verify. Each is retried.
    pub relay_errors: AtomicU64,
}

impl StreamStats {
    /// Published here, or pulled from another instance.
    pub fn is_live(&self) -> bool {
        self.publish_started_ms.load(Relaxed) != 0 || self.origin.lock().is_ok_and(|o| o.is_some())
    }

    pub fn new(app: &str, name: &str) -> Self {
        StreamStats {
            id: LAST_STREAM_ID.fetch_add(1, Relaxed) + 1,
            app: app.to_owned(),
            name: name.to_owned(),
            created: Instant::now(),
            publisher_connection: AtomicU64::new(0),
            video_codec: Mutex::new(None),
            audio_codec: Mutex::new(None),
            width: AtomicU64::new(0),
            height: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            messages_in: AtomicU64::new(0),
            data_dropped: AtomicU64::new(0),
            gop_cache_bytes: AtomicUsize::new(0),
            gop_cache_frames: AtomicUsize::new(0),
            subscribers: DashMap::new(),
            video_frames: AtomicU64::new(0),
            keyframes: AtomicU64::new(0),
            publisher_queued: AtomicUsize::new(0),
            fanout_edges: AtomicUsize::new(0),
            fanout_messages: AtomicU64::new(0),
            cross_thread_messages: AtomicU64::new(0),
            fanout_dropped: AtomicU64::new(0),
            publish_started_ms: AtomicU64::new(0),
            gone_bytes_sent: AtomicU64::new(0),
            gone_messages_sent: AtomicU64::new(0),
            gone: Mutex::new(VecDeque::with_capacity(GONE_SUBSCRIBERS_KEPT)),
            gone_drops: DropCounters::default(),
            origin: Mutex::new(None),
            pushes: DashMap::new(),
            relay_errors: AtomicU64::new(0),
        }
    }

    /// Move a subscriber from the live table to the bounded ring of gone ones, and its
    /// drops into the server's totals.
    pub fn subscriber_gone(&self, key: &(u64, u32), server: &ServerStats) {
        let Some((_, sub)) = self.subscribers.remove(key) else {
            return;
        };
        server.closed_drops.add(&sub.drops);
        self.gone_drops.add(&sub.drops);
        server.subscribers_closed.fetch_add(1, Relaxed);
        let bytes = sub.bytes_sent.load(Relaxed);
        let messages = sub.messages_sent.load(Relaxed);
        self.gone_bytes_sent.fetch_add(bytes, Relaxed);
        self.gone_messages_sent.fetch_add(messages, Relaxed);
        let gone = GoneSubscriber {
            connection_id: sub.connection_id,
            stream_id: sub.stream_id,
            peer: sub.peer,
            messages_sent: messages,
            bytes_sent: bytes,
            drops_total: sub.drops.total(),
            duration_ms: u64::try_from(sub.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            left_wall: SystemTime::now(),
            reason: sub.disconnect_reason(),
        };
        if let Ok(mut ring) = self.gone.lock() {
            if ring.len() >= GONE_SUBSCRIBERS_KEPT {
                ring.pop_front();
            }
            ring.push_back(gone);
        }
    }

    /// Bytes sent to players of this stream, gone ones included.
    pub fn bytes_out(&self) -> u64 {
        self.gone_bytes_sent.load(Relaxed)
            + self
                .subscribers
                .iter()
                .map(|s| s.bytes_sent.load(Relaxed))
                .sum::<u64>()
    }

    /// Frames its players lost, gone players included, by reason.
    pub fn drops(&self) -> DropCounters {
        let drops = DropCounters::default();
        drops.add(&self.gone_drops);
        for sub in self.subscribers.iter() {
            drops.add(&sub.drops);
        }
        drops
    }

    pub fn video_codec(&self) -> Option<String> {
        self.video_codec.lock().ok().and_then(|c| c.clone())
    }

    pub fn audio_codec(&self) -> Option<String> {
        self.audio_codec.lock().ok().and_then(|c| c.clone())
    }
}

/// One remote shared object's live figures (RTMP §7.1.3), kept by its actor.
#[derive(Debug)]
pub struct SharedObjectStats {
    pub app: String,
    pub name: String,
    pub persistent: bool,
    pub created: Instant,
    /// Connections that used (connected to) the object and have not released it.
    pub clients: AtomicUsize,
    /// The object's version: bumped once per message that changed its data.
    pub version: AtomicU64,
    /// Accepted change requests (set, delete, clear) since the actor started.
    pub updates: AtomicU64,
    /// Send Message events broadcast since the actor started.
    pub messages: AtomicU64,
    /// Requests refused by a limit (attributes, bytes, update rate).
    pub refused: AtomicU64,
    pub attributes: AtomicUsize,
    /// AMF0-encoded size of the attributes (names and values).
    pub bytes: AtomicUsize,
}

impl SharedObjectStats {
    pub fn new(app: &str, name: &str, persistent: bool) -> Self {
        SharedObjectStats {
            app: app.to_owned(),
            name: name.to_owned(),
            persistent,
            created: Instant::now(),
            clients: AtomicUsize::new(0),
            version: AtomicU64::new(0),
            updates: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            attributes: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
        }
    }
}

/// Actor counts per kind, kept by the actors' `started`/`stopped`.
#[derive(Debug, Default)]
pub struct ActorCounts {
    pub connections: AtomicUsize,
    pub publishing_streams: AtomicUsize,
    pub subscribers: AtomicUsize,
    pub publishers: AtomicUsize,
    /// Live shared object actors.
    pub shared_objects: AtomicUsize,
    /// Fan-out actors (one per stream and arbiter with players).
    pub fanouts: AtomicUsize,
    /// HTTP-FLV and WebSocket-FLV players (one actor per connection).
    pub http_players: AtomicUsize,
}

/// Why a connection, publish or play was refused: the label of
/// `reflector_refusals_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// A key, an HTTP callback or an app rule said no.
    Auth,
    /// A connection, per-IP, per-stream or server limit.
    Limits,
    /// A stream or app name the naming rules refuse.
    BadName,
    /// The stream is already published (`publish_conflict = "reject"`).
    Conflict,
    /// The client's address or stream key is on the ban list.
    Banned,
    /// The app is not in `server.apps`.
    UnknownApp,
}

impl RefusalReason {
    pub const ALL: [RefusalReason; 6] = [
        RefusalReason::Auth,
        RefusalReason::Limits,
        RefusalReason::BadName,
        RefusalReason::Conflict,
        RefusalReason::Banned,
        RefusalReason::UnknownApp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::Auth => "auth",
            RefusalReason::Limits => "limits",
            RefusalReason::BadName => "bad_name",
            RefusalReason::Conflict => "conflict",
            RefusalReason::Banned => "banned",
            RefusalReason::UnknownApp => "unknown_app",
        }
    }
}

/// Refusals counted by reason.
#[derive(Debug, Default)]
pub struct Refusals([AtomicU64; RefusalReason::ALL.len()]);

impl Refusals {
    pub fn count(&self, reason: RefusalReason) {
        self.0[reason as usize].fetch_add(1, Relaxed);
    }

    pub fn get(&self, reason: RefusalReason) -> u64 {
        self.0[reason as usize].load(Relaxed)
    }
}

/// Totals of streams that are gone (released by the registry), so that sums over the
/// per-stream counters never go back when a stream ends.
#[derive(Debug, Default)]
pub struct GoneStreams {
    pub count: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub drops: DropCounters,
    pub fanout_messages: AtomicU64,
    pub cross_thread_messages: AtomicU64,
}

/// Everything the admin side can read.
#[derive(Debug)]
pub struct ServerStats {
    pub connections: DashMap<u64, Arc<ConnectionStats>>,
    pub streams: DashMap<String, Arc<StreamStats>>,
    /// Live shared objects by `app/name`.
    pub shared_objects: DashMap<String, Arc<SharedObjectStats>>,
    pub actors: ActorCounts,
    pub connections_total: AtomicU64,
    pub connections_refused: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub auth_denied: AtomicU64,
    /// Refusals by reason (auth, limits, bad name, conflict, ban, unknown app).
    pub refusals: Refusals,
    pub panics: AtomicU64,
    /// Requests the registry actor handled.
    pub registry_handled: AtomicU64,
    /// Bytes of connections that are gone, so that the totals stay monotonic.
    pub closed_bytes_in: AtomicU64,
    pub closed_bytes_out: AtomicU64,
    /// Drops of subscribers that are gone, and how many are gone.
    pub closed_drops: DropCounters,
    pub subscribers_closed: AtomicU64,
    /// Accepting RTMP connections (false before the listener is up and while draining):
    /// `/readyz`.
    pub ready: AtomicBool,
    /// Discovery through Redis is configured (`cluster.redis_url`).
    pub redis_configured: AtomicBool,
    /// The last Redis call succeeded (meaningful only when configured): `/readyz` detail.
    pub redis_ok: AtomicBool,
    /// Failed `accept` calls (out of descriptors and the like).
    pub accept_errors: AtomicU64,
    /// When `accept` last failed, in [`now_ms`] (0 = never).
    pub last_accept_error_ms: AtomicU64,
    /// The soft open-file limit after start-up (0 = unknown).
    pub open_files_limit: AtomicU64,
    /// Most RTMP connections the open-file limit leaves room for (0 = no such cap).
    pub connection_cap_by_open_files: AtomicU64,
    /// Totals of the streams that are gone.
    pub gone_streams: GoneStreams,
    pub started: Instant,
}

/// Milliseconds on a process-wide monotonic clock, for times kept in atomics.
pub fn now_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl ServerStats {
    /// Whether `accept` failed within the last few seconds. While descriptors run out the
    /// listener retries at least every second, so a persisting fault keeps this true; once
    /// connections can be accepted again it turns false by itself, without waiting for one.
    pub fn accept_failing(&self) -> bool {
        let last = self.last_accept_error_ms.load(Relaxed);
        last != 0 && now_ms().saturating_sub(last) < 3_000
    }

    /// Whether the open-file limit, not `limits.max_connections`, stops new connections now.
    pub fn at_open_file_cap(&self) -> bool {
        let cap = self.connection_cap_by_open_files.load(Relaxed);
        cap != 0 && self.connections.len() as u64 >= cap
    }

    /// Remove a stream's entry (the registry released it), keeping its totals in
    /// [`ServerStats::gone_streams`].
    pub fn remove_stream(&self, key: &str) {
        if let Some((_, s)) = self.streams.remove(key) {
            let gone = &self.gone_streams;
            gone.count.fetch_add(1, Relaxed);
            gone.bytes_in.fetch_add(s.bytes_in.load(Relaxed), Relaxed);
            gone.bytes_out.fetch_add(s.bytes_out(), Relaxed);
            gone.drops.add(&s.drops());
            gone.fanout_messages
                .fetch_add(s.fanout_messages.load(Relaxed), Relaxed);
            gone.cross_thread_messages
                .fetch_add(s.cross_thread_messages.load(Relaxed), Relaxed);
        }
    }

    /// The stream entry with this id and its registry key, if it still exists.
    pub fn stream_by_id(&self, id: u64) -> Option<(String, Arc<StreamStats>)> {
        self.streams
            .iter()
            .find(|e| e.value().id == id)
            .map(|e| (e.key().clone(), e.value().clone()))
    }
}

impl Default for ServerStats {
    fn default() -> Self {
        ServerStats {
            connections: DashMap::new(),
            streams: DashMap::new(),
            shared_objects: DashMap::new(),
            actors: ActorCounts::default(),
            connections_total: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            protocol_errors: AtomicU64::new(0),
            auth_denied: AtomicU64::new(0),
            refusals: Refusals::default(),
            panics: AtomicU64::new(0),
            registry_handled: AtomicU64::new(0),
            closed_bytes_in: AtomicU64::new(0),
            closed_bytes_out: AtomicU64::new(0),
            closed_drops: DropCounters::default(),
            subscribers_closed: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            redis_configured: AtomicBool::new(false),
            redis_ok: AtomicBool::new(false),
            accept_errors: AtomicU64::new(0),
            last_accept_error_ms: AtomicU64::new(0),
            open_files_limit: AtomicU64::new(0),
            connection_cap_by_open_files: AtomicU64::new(0),
            gone_streams: GoneStreams::default(),
            started: Instant::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(id: u64) -> Arc<ConnectionStats> {
        Arc::new(ConnectionStats::new(
            id,
            "127.0.0.1:5000".parse().unwrap(),
            0,
        ))
    }

    #[test]
    fn gone_subscribers_are_bounded_and_keep_egress() {
        let stream = StreamStats::new("live", "cam");
        for id in 0..(GONE_SUBSCRIBERS_KEPT as u64 + 5) {
            let sub = Arc::new(SubscriberStats::new(connection(id), 1, 8));
            sub.bytes_sent.store(10, Relaxed);
            stream.subscribers.insert((id, 1), sub);
            stream.subscriber_gone(&(id, 1), &ServerStats::default());
        }
        let ring = stream.gone.lock().unwrap();
        assert_eq!(ring.len(), GONE_SUBSCRIBERS_KEPT);
        assert_eq!(
            ring.back().unwrap().connection_id,
            GONE_SUBSCRIBERS_KEPT as u64 + 4
        );
        assert_eq!(stream.bytes_out(), 10 * (GONE_SUBSCRIBERS_KEPT as u64 + 5));
    }

    #[test]
    fn stream_ids_are_unique_and_not_reused() {
        let a = StreamStats::new("live", "cam");
        let b = StreamStats::new("live", "cam");
        assert!(a.id >= 1 && b.id > a.id, "{} then {}", a.id, b.id);
    }

    #[test]
    fn disconnect_reason_falls_back_to_the_connection() {
        let conn = connection(1);
        let sub = SubscriberStats::new(conn.clone(), 1, 8);
        assert_eq!(sub.disconnect_reason(), "stopped playing");
        conn.set_close_reason("kicked");
        conn.set_close_reason("peer closed");
        assert_eq!(sub.disconnect_reason(), "kicked");
        *sub.close_reason.lock().unwrap() = Some("player lag limit".into());
        assert_eq!(sub.disconnect_reason(), "player lag limit");
    }
}
