//! The actors that wire the protocol core to the network (one file per actor kind), and the
//! few messages that cross between them.
//!
//! - [`listener`]: accepts TCP connections and spreads them over the arbiters.
//! - [`connection`]: one per TCP connection: handshake, chunk framing, NetConnection commands.
//! - [`stream`]: one per publishing NetStream: prepares each media message once and feeds the
//!   publisher actor, losslessly (its mailbox pushes back on the connection's reads).
//! - [`subscriber`]: one per playing NetStream: takes frames from the publisher through a
//!   bounded mailbox and applies the per-player drop policy.
//! - [`publisher`]: one per resource (app + stream name): caches metadata, sequence headers and
//!   the GOP, and fans frames out.
//! - [`tracks`]: per-track header cache, GOP cache and resync gate (E-RTMP multitrack).
//! - [`registry`]: maps resources to publisher actors and decides publish conflicts.
//! - [`shared_object`]: remote shared objects (§7.1.3): one actor per object, their registry,
//!   and a per-connection session; [`shared_object_quota`] counts what they hold in memory
//!   and on disk.

pub mod connection;
pub mod listener;
pub mod outbox;
pub mod publisher;
pub mod registry;
pub mod shared_object;
pub mod shared_object_quota;
pub mod stream;
pub mod subscriber;
pub mod tracks;

pub use tracks::{HeaderCache, HeaderRole, TrackSet};

use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use actix::{Addr, ArbiterHandle};
use bytes::Bytes;
use dashmap::DashMap;

use crate::config::Settings;
use crate::stats::ServerStats;

/// Chunk stream ids the server writes on. The connection's header-compressing encoder owns
/// 2..=4; the stateless chunked media made once by the publisher uses 5..=7 (see
/// [`crate::protocol::chunk::chunk_message`]), so the two never disturb each other.
pub mod csid {
    pub const CONTROL: u32 = 2;
    pub const COMMAND: u32 = 3;
    pub const STREAM_COMMAND: u32 = 4;
    pub const DATA: u32 = 5;
    pub const AUDIO: u32 = 6;
    pub const VIDEO: u32 = 7;
}

/// The message stream id players nearly always get from `createStream`: frames are chunked
/// once for it; a player on another id gets its own chunking.
pub const SHARED_STREAM_ID: u32 = 1;

/// Identifies a connection for logs, stats and the admin API.
pub type ConnectionId = u64;

/// What a frame is, for caching and the drop policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Audio,
    Video,
    Data,
}

/// How a frame may be dropped for a slow player, least precious first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DropClass {
    /// Disposable inter frame (FLV frame type 3).
    Disposable,
    /// Inter frame: dropping one means waiting for the next keyframe.
    Inter,
    /// Keyframe.
    Key,
    /// Audio, dropped last.
    Audio,
    /// Data messages (onTextData, onCuePoint...).
    Data,
    /// Sequence headers and metadata: never dropped, always delivered.
    Header,
}

/// One media or data message of a published stream, prepared once by the publishing stream
/// actor and shared (`Arc`) by the GOP cache and every subscriber.
#[derive(Debug)]
pub struct Frame {
    pub kind: FrameKind,
    pub class: DropClass,
    /// RTMP message type id (8, 9, 18, 15).
    pub type_id: u8,
    pub timestamp: u32,
    pub payload: Bytes,
    /// The message chunked for [`SHARED_STREAM_ID`] at the server's outgoing chunk size.
    pub chunked: Bytes,
    /// The Enhanced RTMP track ids the message carries ({0} unless multitrack; {0} for data).
    pub tracks: TrackSet,
    /// For [`DropClass::Header`] frames: which decoder state it sets (its cache slot).
    pub role: Option<HeaderRole>,
    /// Carried in an Enhanced RTMP extended header (FourCC, multitrack): only players that
    /// announced Enhanced RTMP can parse it.
    pub enhanced: bool,
    /// The FourCC of an Enhanced RTMP frame's codec (first track), as its four characters.
    pub fourcc: Option<u32>,
}

impl Frame {
    pub fn is_keyframe(&self) -> bool {
        self.class == DropClass::Key
    }
}

/// What every actor can reach: settings, the registry, the stats the admin side reads.
pub struct ServerContext {
    /// The current settings; a reload (SIGHUP) swaps them. Connections take a snapshot when
    /// they start, so a reload applies to new connections and never drops anyone.
    pub settings: arc_swap::ArcSwap<Settings>,
    pub registry: Addr<registry::Registry>,
    pub stats: Arc<ServerStats>,
    pub arbiters: Vec<ArbiterHandle>,
    pub next_connection_id: AtomicU64,
    pub connections_per_ip: DashMap<IpAddr, usize>,
    /// Keys and bans changed through the admin API (`auth.keys_file`).
    pub control: Arc<crate::auth::control::Control>,
    /// Becomes true when the server drains (SIGTERM/SIGINT): connections end cleanly.
    pub draining: tokio::sync::watch::Receiver<bool>,
}

/// Run one actor handler, catching a panic in it. Without this, a panic inside an actix handler
/// unwinds out of the arbiter's task: tokio cancels that task (the arbiter survives) and actix
/// runs `stopped` while dropping the context, so the connection ends as if the peer had closed
/// it: no reason logged, nothing counted, and a panic in a handler with shared state (the
/// publisher) would end every player of the resource. Here the panic is logged (the panic hook
/// has already printed where), counted in `ServerStats::panics`, and `None` tells the caller
/// to stop its actor, which then closes with a reason through its normal cleanup.
pub(crate) fn guard<R>(
    stats: &ServerStats,
    actor: &'static str,
    connection: ConnectionId,
    f: impl FnOnce() -> R,
) -> Option<R> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".to_owned());
            stats
                .panics
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(connection, actor, panic = %crate::names::Esc(&what), "panic in actor handler: stopping it");
            None
        }
    }
}
