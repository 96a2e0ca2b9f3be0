//! reflector: a live RTMP reflector on actix actors.
//!
//! Crate map:
//! - [`protocol`]: the sans-IO RTMP core (handshake, chunk stream, AMF0/AMF3, messages,
//!   commands, media tag inspection). Plain types and state machines over bytes.
//! - [`actors`]: the actors that wire the core to the network: listener, connection,
//!   publishing stream, subscriber, publisher, registry.
//! - [`hub`]: the fan-out hub: frames, the late-joiner caches, the per-player delivery
//!   gate, the per-core fan-out of one stream. No sockets, no actors.
//! - [`output`]: adapters from the hub to a wire format (RTMP players, the outbox).
//! - [`auth`]: who may publish and play (open, stream key, HTTP callback).
//! - [`names`]: app and stream names, the canonical resource (`app/name`), log escaping.
//! - [`config`]: settings and their validation; every limit lives there.
//! - [`requests`]: what reaches a connection actor from outside it (close, reconnect).
//! - [`stats`]: the figures actors publish for the admin side.
//! - [`admin`]: the admin HTTP port: stats API, metrics, health, dashboard.
//! - [`server`]: start-up: arbiters, registry, listener, signals.
//! - [`relay`]: scale-out across instances: pull and push relays, discovery through Redis.
//! - [`client`]: the project's own RTMP client on tokio (tests, load tool, relays), and
//!   synthetic numbered media.
//! - [`tls`]: RTMPS: the server certificate (loaded, reloaded), the relays' TLS settings,
//!   a connection's byte stream (plain or TLS).
//! - [`load`]: pieces of the load tool (`reflector-load`): latency histogram, /proc sampling.

pub mod actors;
pub mod admin;
pub mod admission;
pub mod auth;
pub mod client;
pub mod config;
pub mod hub;
pub mod load;
pub mod log_throttle;
pub mod names;
pub mod output;
pub mod protocol;
pub mod relay;
pub mod requests;
pub mod server;
pub mod stats;
pub mod tls;
