//! Figures the actors publish for the admin side to read: atomics and shared maps, so that
//! reading stats never messages a media actor and never blocks the media path.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use dashmap::DashMap;

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
}

impl ConnectionStats {
    pub fn new(id: u64, peer: SocketAddr, worker: usize) -> Self {
        ConnectionStats {
            id,
            peer,
            worker,
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
        }
    }

    pub fn state(&self) -> ConnectionState {
        ConnectionState::from_u8(self.state.load(Relaxed))
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
}

/// One published stream's live figures.
#[derive(Debug)]
pub struct StreamStats {
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
    pub gop_cache_bytes: AtomicUsize,
    pub gop_cache_frames: AtomicUsize,
    pub subscribers: DashMap<(u64, u32), Arc<SubscriberStats>>,
    /// Relay hops: `None` while the stream is published here (or not at all);
    /// `Some("host:port")` while it is pulled from that instance (see [`crate::relay`]).
    pub origin: Mutex<Option<String>>,
    /// Push relays currently forwarding this stream: `(target URL, connected)`.
    pub pushes: DashMap<String, bool>,
}

impl StreamStats {
    pub fn new(app: &str, name: &str) -> Self {
        StreamStats {
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
            gop_cache_bytes: AtomicUsize::new(0),
            gop_cache_frames: AtomicUsize::new(0),
            subscribers: DashMap::new(),
            origin: Mutex::new(None),
            pushes: DashMap::new(),
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
}

/// Everything the admin side can read.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub connections: DashMap<u64, Arc<ConnectionStats>>,
    pub streams: DashMap<String, Arc<StreamStats>>,
    pub actors: ActorCounts,
    pub connections_total: AtomicU64,
    pub connections_refused: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub auth_denied: AtomicU64,
    pub panics: AtomicU64,
    /// Set when the server drains: it no longer accepts RTMP connections.
    pub draining: AtomicBool,
    /// Discovery through Redis is configured (`cluster.redis_url`).
    pub redis_configured: AtomicBool,
    /// The last Redis operation succeeded. While false (and configured), local streams work
    /// but others' streams cannot be found and ours are not advertised: `/readyz` says so.
    pub redis_ok: AtomicBool,
}
