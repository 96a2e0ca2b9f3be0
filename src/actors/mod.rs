//! The actors that wire the protocol core to the network (one file per actor kind), and the
//! few messages that cross between them.
//!
//! - [`listener`]: accepts TCP connections and spreads them over the arbiters.
//! - [`connection`]: one per TCP connection: handshake, chunk framing, NetConnection commands.
//! - [`stream`]: one per publishing NetStream: prepares each media message once and feeds the
//!   publisher actor, losslessly (its mailbox pushes back on the connection's reads).
//! - [`publisher`]: one per resource (app + stream name): caches metadata, sequence headers and
//!   the GOP, and sends each frame once per edge (the fan-out of each arbiter with players,
//!   each push relay) through bounded mailboxes.
//! - [`fanout`]: one per (stream, arbiter) with players: takes each frame once from the
//!   publisher and hands it to that arbiter's players in place (the hub's `LocalFanout`).
//! - [`subscriber`]: one per playing NetStream: owns the play (its RTMP player joins the
//!   arbiter's fan-out; controls; the lag limit).
//! - [`registry`]: maps resources to publisher actors and decides publish conflicts; it
//!   drives the [`relays`] of each resource: [`pull_relay`] (plays a stream from its origin
//!   for local players) and [`push_relay`] (forwards a stream published here upstream).
//! - [`shared_object`]: remote shared objects (§7.1.3): one actor per object, their registry,
//!   and a per-connection session; [`shared_object_quota`] counts what they hold in memory
//!   and on disk.

pub mod connection;
pub mod fanout;
pub mod http_player;
pub mod http_request;
pub mod listener;
pub mod publisher;
pub mod pull_relay;
pub mod push_relay;
pub mod registry;
pub mod relays;
pub mod shared_object;
pub mod shared_object_quota;
pub mod stream;
pub mod subscriber;

use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use actix::{Addr, ArbiterHandle};
use dashmap::DashMap;

use crate::config::Settings;
use crate::stats::ServerStats;

pub use crate::hub::{DropClass, Frame, FrameKind, HeaderCache, HeaderRole, TrackSet};
pub use crate::output::rtmp::{csid, SHARED_STREAM_ID};

/// Identifies a connection for logs, stats and the admin API.
pub type ConnectionId = u64;

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
    /// The admin port as bound (`server.admin_listen` may say 0): the dashboard's origin.
    pub admin_port: u16,
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
