//! Settings: the embedded `config/default.toml`, an optional file, `REFLECTOR_...` environment
//! overrides, then command-line flags; validated at start-up. Every limit lives here.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::auth::AuthSettings;
use crate::protocol::amf0::AmfLimits;
use crate::protocol::chunk::ChunkLimits;

mod explain;
pub use explain::{env_var_name, origin_of};

/// The defaults compiled into the binary, so that it runs with no file.
pub const DEFAULT_CONFIG: &str = include_str!("../config/default.toml");

/// What is wrong with the configuration, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key {key}: {value} is outside {allowed}")]
    OutOfRange {
        key: &'static str,
        value: String,
        allowed: &'static str,
    },
    #[error("configuration key {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
    /// Any of the above, or a load error, with the source that set the value.
    #[error("{}", source_message(origin, key, reason))]
    Source {
        origin: String,
        key: String,
        reason: String,
    },
}

fn source_message(origin: &str, key: &str, reason: &str) -> String {
    if key.is_empty() {
        format!("configuration ({origin}): {reason}")
    } else {
        format!("configuration key {key} ({origin}): {reason}")
    }
}

impl ConfigError {
    /// The key a validation error is about.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::OutOfRange { key, .. } | ConfigError::Invalid { key, .. } => Some(key),
            ConfigError::Source { key, .. } => Some(key),
            ConfigError::Load(_) => None,
        }
    }

    /// The same error, naming `origin` as where the value came from.
    pub fn from_origin(self, origin: String) -> ConfigError {
        let key = self.key().unwrap_or_default().to_owned();
        let reason = match self {
            ConfigError::OutOfRange { value, allowed, .. } => {
                format!("{value} is outside {allowed}")
            }
            ConfigError::Invalid { reason, .. } | ConfigError::Source { reason, .. } => reason,
            ConfigError::Load(e) => e.to_string(),
        };
        ConfigError::Source {
            origin,
            key,
            reason,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub listen: String,
    pub admin_listen: String,
    pub workers: usize,
    pub log_level: String,
    pub log_format: String,
    pub drain_timeout_ms: u64,
    pub drain_reconnect_url: String,
    /// The apps clients may connect to (the first segment of `connect`'s app); empty = any.
    #[serde(default)]
    pub apps: Vec<String>,
    /// Public HTTP-FLV / WebSocket-FLV address; empty = off.
    #[serde(default)]
    pub http_listen: String,
}

impl ServerSettings {
    pub fn http_enabled(&self) -> bool {
        !self.http_listen.trim().is_empty()
    }
}

/// HTTP-FLV and WebSocket-FLV players (`[http]`), served on `server.http_listen`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// `Access-Control-Allow-Origin`; empty = none.
    pub allow_origin: String,
    /// The request head must arrive within this time.
    pub request_timeout_ms: u64,
    /// Largest request head accepted (431 beyond).
    pub max_request_head_bytes: usize,
    /// Wait for a publisher (true) or answer 404 at once (false).
    pub wait_for_publisher: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtmpSettings {
    pub out_chunk_size: u32,
    pub window_ack_size: u32,
    pub peer_bandwidth: u32,
    pub handshake_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub read_timeout_ms: u64,
    pub ping_interval_ms: u64,
    pub max_message_len: u32,
    pub max_chunk_streams: usize,
    pub max_pending_bytes: usize,
    pub max_amf_depth: usize,
    pub max_amf_values: usize,
    pub max_streams_per_connection: u32,
    pub max_name_len: usize,
    /// Most bytes queued to a connection that plays nothing (replies, pings, acknowledgements)
    /// before it is closed as not reading: its replies would otherwise pile up without bound.
    pub max_unread_bytes: usize,
}

/// How a publish to a name already being published is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PublishConflict {
    /// The newcomer gets NetStream.Publish.BadName.
    Reject,
    /// The newcomer replaces the current publisher.
    Takeover,
    /// Takeover only with the same stream key, or when the current publisher is stale.
    Protect,
}

/// What players that did not announce Enhanced RTMP get from an Enhanced RTMP stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LegacyPlayers {
    /// NetStream.Play.Failed saying why, and no media.
    Refuse,
    /// The frames as they are (for players that parse Enhanced RTMP without announcing it).
    Forward,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveSettings {
    pub gop_cache: bool,
    pub gop_cache_max_bytes: usize,
    pub gop_cache_max_duration_ms: u32,
    pub publish_conflict: PublishConflict,
    pub stale_publisher_ms: u64,
    pub unpublish_notify: bool,
    pub legacy_players: LegacyPlayers,
    pub publisher_idle_timeout_ms: u64,
    pub subscriber_mailbox: usize,
    pub drop_disposable_bytes: usize,
    pub drop_video_bytes: usize,
    pub drop_audio_bytes: usize,
    pub max_lag_ms: u64,
    /// A player of a stream nobody publishes gets NetStream.Play.StreamNotFound after this
    /// long and its play ends; 0 = it waits for a publisher as long as it likes.
    #[serde(default)]
    pub play_wait_ms: u64,
    /// Audio and data frames wait up to this long on each core for the next video frame, so
    /// that they reach each player's socket in the same write; a video frame goes at once
    /// with what waited. 0 = every frame is handed to the players as it comes.
    #[serde(default = "default_write_coalesce_ms")]
    pub write_coalesce_ms: u64,
}

fn default_write_coalesce_ms() -> u64 {
    DEFAULT_WRITE_COALESCE_MS
}

/// See [`LiveSettings::write_coalesce_ms`].
pub const DEFAULT_WRITE_COALESCE_MS: u64 = 34;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_streams: usize,
    pub max_subscribers_per_stream: usize,
}

/// The admin HTTP port (stats API, metrics, dashboard).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Bearer token required on every admin endpoint but `/healthz` and `/readyz`; empty =
    /// none. Required when `server.admin_listen` is not a loopback address. Never printed.
    #[serde(default, skip_serializing)]
    pub token: String,
    /// Host names (as in the `Host` header, without the port) the admin port answers besides
    /// `localhost` and loopback addresses while no token is set: the guard against DNS
    /// rebinding. With a token any Host is answered (the token is the guard).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Seconds of per-stream bitrate and subscriber history kept for the dashboard chart.
    pub history_seconds: usize,
    /// Window, in seconds, over which ingest and egress bitrates are averaged.
    pub rate_window_seconds: usize,
    /// Most streams with their own `reflector_stream_*` series on `/metrics` (the most
    /// watched ones); the rest are summed into one series. Read at start-up.
    pub metrics_max_streams: usize,
}

impl AdminSettings {
    /// The configured token, if any.
    pub fn token(&self) -> Option<&str> {
        Some(self.token.as_str()).filter(|t| !t.is_empty())
    }

    /// `allowed_hosts` lowercased, empty entries (an empty environment variable) left out.
    pub fn allowed_hosts(&self) -> Vec<String> {
        self.allowed_hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect()
    }
}

/// A host as the `Host` header carries it, without the port: a DNS name or IPv4 address
/// (letters, digits, `-`, `.`) or a bracketed IPv6 address.
fn valid_host_name(host: &str) -> bool {
    match host.strip_prefix('[') {
        Some(v6) => v6
            .strip_suffix(']')
            .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok()),
        None => {
            !host.is_empty()
                && host.len() <= 253
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        }
    }
}

/// The RTMPS listener (`[rtmps]`): RTMP inside TLS, beside the plain listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtmpsSettings {
    /// `address:port`; empty = no RTMPS listener.
    pub listen: String,
    /// PEM certificate chain, the server's certificate first (Let's Encrypt's fullchain.pem).
    pub cert_file: String,
    /// PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1; privkey.pem).
    pub key_file: String,
}

impl RtmpsSettings {
    pub fn enabled(&self) -> bool {
        !self.listen.trim().is_empty()
    }
}

/// Remote shared objects (RTMP §7.1.3): where persistent ones are stored, and the limits
/// past which a request gets a Status error event instead of more memory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedObjectSettings {
    pub enabled: bool,
    pub dir: String,
    pub max_objects_per_app: usize,
    pub max_attributes: usize,
    pub max_bytes: usize,
    pub max_updates_per_second: u32,
    /// Live objects on the whole server, and apps with live objects.
    pub max_objects: usize,
    pub max_apps: usize,
    /// Objects one connection may use at once.
    pub max_objects_per_connection: usize,
    /// Memory (estimated, of names and values) held by the attributes one connection wrote,
    /// and by every live object's attributes.
    pub max_bytes_per_connection: usize,
    pub max_total_bytes: usize,
    /// One persistent object's file, and all of them (in 4 KiB blocks) on disk.
    pub max_file_bytes: u64,
    pub max_disk_bytes: u64,
}

/// Discovery of streams across instances through Redis (`[cluster]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// `redis://...`; empty = single instance.
    pub redis_url: String,
    /// `host:port` other instances reach this one at; empty = `server.listen`.
    pub advertise: String,
    pub key_prefix: String,
    pub ttl_s: u64,
    pub lookup_interval_ms: u64,
}

impl ClusterSettings {
    /// Whether discovery is on.
    pub fn enabled(&self) -> bool {
        !self.redis_url.is_empty()
    }
}

/// One push relay target (`[[relay.push]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushTarget {
    /// `rtmp://host[:port]/app`: the stream name is appended.
    pub url: String,
    /// Only streams of this app; empty = every app.
    #[serde(default)]
    pub app: String,
}

/// When a `[[relay.pull]]` source is pulled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullMode {
    /// When a player asks for a stream of the app that nobody publishes here (nginx-rtmp's
    /// `pull`, an SRS edge); stopped when the last player leaves.
    #[default]
    OnDemand,
    /// Always, from start-up: the one stream `name`, players or not.
    Static,
}

/// One foreign origin to pull from (`[[relay.pull]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullSource {
    /// `rtmp://host[:port]/app` of the origin: the stream name is appended.
    pub url: String,
    /// The local app whose streams come from there; empty = every app.
    #[serde(default)]
    pub app: String,
    #[serde(default)]
    pub mode: PullMode,
    /// The stream pulled by a `static` source.
    #[serde(default)]
    pub name: String,
}

impl PullSource {
    /// Whether a player's `app/name` is pulled from this source on demand.
    pub fn serves(&self, app: &str, name: &str) -> bool {
        (self.app.is_empty() || self.app == app)
            && (self.mode == PullMode::OnDemand || self.name == name)
    }
}

/// Relays to other servers (`[relay]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySettings {
    pub push: Vec<PushTarget>,
    /// Foreign origins to pull from, first match wins (before Redis discovery).
    #[serde(default)]
    pub pull: Vec<PullSource>,
    /// PEM file of the CA certificates `rtmps://` relay targets are verified against; empty =
    /// the public roots (Mozilla's list, built in).
    #[serde(default)]
    pub ca_file: String,
}

/// The whole effective configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub rtmp: RtmpSettings,
    pub rtmps: RtmpsSettings,
    pub http: HttpSettings,
    pub live: LiveSettings,
    pub limits: LimitSettings,
    pub auth: AuthSettings,
    pub admin: AdminSettings,
    pub shared_objects: SharedObjectSettings,
    pub debug: DebugSettings,
    pub cluster: ClusterSettings,
    pub relay: RelaySettings,
}

/// Fault injection for tests; everything off by default.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebugSettings {
    /// A command of this name makes the connection's handler panic, to show that a panic ends
    /// that connection only. Empty = off; never set it in production.
    pub panic_on_command: String,
}

/// The levels a log filter may name.
pub const LOG_LEVELS: &str = "trace, debug, info, warn, error, off";

/// Why `filter` is not a usable log level or tracing filter, if it is not. A bare word that is
/// not a level is refused: tracing would take `warning` as a target name and log nothing else.
pub fn log_filter_error(filter: &str) -> Option<String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let is_level = |w: &str| LEVELS.contains(&w.trim().to_ascii_lowercase().as_str());
    if filter.trim().is_empty() {
        return Some(format!(
            "is empty; use a level ({LOG_LEVELS}) or target=level"
        ));
    }
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = match directive.rsplit_once('=') {
            Some((_, level)) => level,
            None => directive,
        };
        if !is_level(level) {
            return Some(format!(
                "{directive:?} is not a log level; use one of {LOG_LEVELS}, or target=level \
                 (e.g. reflector=debug)"
            ));
        }
    }
    tracing_subscriber::EnvFilter::try_new(filter)
        .err()
        .map(|e| format!("{filter:?} is not a tracing filter: {e}"))
}

fn range<T: PartialOrd + std::fmt::Display>(
    key: &'static str,
    value: T,
    min: T,
    max: T,
    allowed: &'static str,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::OutOfRange {
            key,
            value: value.to_string(),
            allowed,
        });
    }
    Ok(())
}

/// Whether an environment variable is meant as a setting: `REFLECTOR_SECTION__KEY`. Others
/// that start with `REFLECTOR_` are not ours: Kubernetes gives a pod `REFLECTOR_PORT`,
/// `REFLECTOR_SERVICE_HOST`... for a Service named `reflector`, and those must not stop the
/// server (they are listed at start-up by [`ignored_env_vars`]).
fn is_setting_var(name: &str) -> bool {
    name.strip_prefix("REFLECTOR_")
        .is_some_and(|rest| rest.contains("__"))
}

fn settings_env() -> std::collections::HashMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| is_setting_var(k))
        .collect()
}

/// `REFLECTOR_...` variables that are not settings (no `__` between section and key), for a
/// start-up warning: a mistyped `REFLECTOR_LIVE_GOP_CACHE` is ignored, not applied.
pub fn ignored_env_vars() -> Vec<String> {
    let mut names: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("REFLECTOR_") && !is_setting_var(k))
        .collect();
    names.sort();
    names
}

impl Settings {
    /// Defaults, then `file` if given, then `REFLECTOR_SECTION__KEY` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_CONFIG,
            config::FileFormat::Toml,
        ));
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("REFLECTOR")
                .source(Some(settings_env()))
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("admin.allowed_hosts")
                .with_list_parse_key("server.apps")
                .with_list_parse_key("auth.banned_ips"),
        );
        let settings: Settings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| explain::explain(e, file))?;
        settings.validate().map_err(|e| {
            let origin = origin_of(e.key().unwrap_or_default(), file);
            e.from_origin(origin)
        })?;
        Ok(settings)
    }

    /// The embedded defaults alone (tests, tools).
    pub fn defaults() -> Settings {
        let parsed = config::Config::builder()
            .add_source(config::File::from_str(
                DEFAULT_CONFIG,
                config::FileFormat::Toml,
            ))
            .build()
            .and_then(|c| c.try_deserialize::<Settings>());
        match parsed {
            Ok(s) => s,
            // The embedded file is part of the binary and covered by a unit test.
            Err(e) => panic!("embedded config/default.toml is invalid: {e}"),
        }
    }

    /// Check every value against its allowed range, naming the key on failure.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, addr) in [
            ("server.listen", &self.server.listen),
            ("server.admin_listen", &self.server.admin_listen),
        ] {
            addr.parse::<SocketAddr>()
                .map_err(|e| ConfigError::Invalid {
                    key,
                    reason: format!("{addr:?} is not an address:port ({e})"),
                })?;
        }
        range("server.workers", self.server.workers, 0, 256, "0..=256")?;
        self.validate_rtmps()?;
        self.validate_http()?;
        range(
            "server.drain_timeout_ms",
            self.server.drain_timeout_ms,
            0,
            3_600_000,
            "0..=3600000",
        )?;
        let admin_ip = self
            .server
            .admin_listen
            .parse::<SocketAddr>()
            .map(|a| a.ip())
            .map_err(|e| ConfigError::Invalid {
                key: "server.admin_listen",
                reason: e.to_string(),
            })?;
        if !admin_ip.is_loopback() && self.admin.token().is_none() {
            // Named by the listen address: it is what was set (the missing token has no
            // source to name).
            return Err(ConfigError::Invalid {
                key: "server.admin_listen",
                reason: format!(
                    "the admin port listens on {admin_ip}, which is not loopback: set a bearer \
                     token (admin.token or REFLECTOR_ADMIN__TOKEN) or listen on 127.0.0.1"
                ),
            });
        }
        for host in self.admin.allowed_hosts() {
            if !valid_host_name(&host) {
                return Err(ConfigError::Invalid {
                    key: "admin.allowed_hosts",
                    reason: format!(
                        "{host:?} is not a host name (no scheme, port or path; IPv6 in brackets)"
                    ),
                });
            }
        }
        range(
            "admin.history_seconds",
            self.admin.history_seconds,
            10,
            86_400,
            "10..=86400",
        )?;
        range(
            "admin.rate_window_seconds",
            self.admin.rate_window_seconds,
            1,
            300,
            "1..=300",
        )?;
        range(
            "admin.metrics_max_streams",
            self.admin.metrics_max_streams,
            0,
            10_000,
            "0..=10000",
        )?;
        if let Some(reason) = log_filter_error(&self.server.log_level) {
            return Err(ConfigError::Invalid {
                key: "server.log_level",
                reason,
            });
        }
        if !matches!(self.server.log_format.as_str(), "text" | "json") {
            return Err(ConfigError::Invalid {
                key: "server.log_format",
                reason: format!("{:?} is not \"text\" or \"json\"", self.server.log_format),
            });
        }
        let r = &self.rtmp;
        range(
            "rtmp.out_chunk_size",
            r.out_chunk_size,
            128,
            65_536,
            "128..=65536",
        )?;
        range(
            "rtmp.window_ack_size",
            r.window_ack_size,
            4096,
            u32::MAX,
            "4096..=4294967295",
        )?;
        range(
            "rtmp.peer_bandwidth",
            r.peer_bandwidth,
            4096,
            u32::MAX,
            "4096..=4294967295",
        )?;
        range(
            "rtmp.handshake_timeout_ms",
            r.handshake_timeout_ms,
            100,
            600_000,
            "100..=600000",
        )?;
        range(
            "rtmp.idle_timeout_ms",
            r.idle_timeout_ms,
            100,
            3_600_000,
            "100..=3600000",
        )?;
        range(
            "rtmp.read_timeout_ms",
            r.read_timeout_ms,
            1000,
            3_600_000,
            "1000..=3600000",
        )?;
        range(
            "rtmp.ping_interval_ms",
            r.ping_interval_ms,
            0,
            3_600_000,
            "0..=3600000",
        )?;
        range(
            "rtmp.max_message_len",
            r.max_message_len,
            1024,
            0xFF_FFFF,
            "1024..=16777215",
        )?;
        range(
            "rtmp.max_chunk_streams",
            r.max_chunk_streams,
            4,
            65_598,
            "4..=65598",
        )?;
        range(
            "rtmp.max_unread_bytes",
            r.max_unread_bytes,
            4096,
            usize::MAX,
            "4096 or more",
        )?;
        range(
            "rtmp.max_pending_bytes",
            r.max_pending_bytes,
            r.max_message_len as usize,
            1 << 30,
            "rtmp.max_message_len..=1073741824",
        )?;
        // The ceiling is what every recursive walk of a value fits in an arbiter's stack.
        range(
            "rtmp.max_amf_depth",
            r.max_amf_depth,
            2,
            crate::protocol::amf0::MAX_AMF_DEPTH,
            "2..=128",
        )?;
        range(
            "rtmp.max_amf_values",
            r.max_amf_values,
            16,
            10_000_000,
            "16..=10000000",
        )?;
        range(
            "rtmp.max_streams_per_connection",
            r.max_streams_per_connection,
            1,
            1024,
            "1..=1024",
        )?;
        range("rtmp.max_name_len", r.max_name_len, 1, 4096, "1..=4096")?;
        let l = &self.live;
        range(
            "live.subscriber_mailbox",
            l.subscriber_mailbox,
            4,
            65_536,
            "4..=65536",
        )?;
        range(
            "live.drop_disposable_bytes",
            l.drop_disposable_bytes,
            16 * 1024,
            1 << 30,
            "16384..=1073741824",
        )?;
        range(
            "live.drop_video_bytes",
            l.drop_video_bytes,
            l.drop_disposable_bytes,
            1 << 30,
            "live.drop_disposable_bytes..=1073741824",
        )?;
        range(
            "live.drop_audio_bytes",
            l.drop_audio_bytes,
            l.drop_video_bytes,
            1 << 30,
            "live.drop_video_bytes..=1073741824",
        )?;
        range(
            "live.write_coalesce_ms",
            l.write_coalesce_ms,
            0,
            200,
            "0..=200",
        )?;
        range(
            "live.max_lag_ms",
            l.max_lag_ms,
            100,
            3_600_000,
            "100..=3600000",
        )?;
        range(
            "live.gop_cache_max_bytes",
            l.gop_cache_max_bytes,
            0,
            1 << 30,
            "0..=1073741824",
        )?;
        let m = &self.limits;
        range(
            "limits.max_connections",
            m.max_connections,
            1,
            10_000_000,
            "1..=10000000",
        )?;
        range(
            "limits.max_connections_per_ip",
            m.max_connections_per_ip,
            1,
            10_000_000,
            "1..=10000000",
        )?;
        range(
            "limits.max_streams",
            m.max_streams,
            1,
            10_000_000,
            "1..=10000000",
        )?;
        range(
            "limits.max_subscribers_per_stream",
            m.max_subscribers_per_stream,
            1,
            10_000_000,
            "1..=10000000",
        )?;
        range(
            "live.play_wait_ms",
            l.play_wait_ms,
            0,
            3_600_000,
            "0..=3600000",
        )?;
        self.validate_control()?;
        range(
            "auth.callback_timeout_ms",
            self.auth.callback_timeout_ms,
            10,
            600_000,
            "10..=600000",
        )?;
        let so = &self.shared_objects;
        if so.dir.trim().is_empty() {
            return Err(ConfigError::Invalid {
                key: "shared_objects.dir",
                reason: "is empty".into(),
            });
        }
        range(
            "shared_objects.max_objects_per_app",
            so.max_objects_per_app,
            1,
            1_000_000,
            "1..=1000000",
        )?;
        range(
            "shared_objects.max_attributes",
            so.max_attributes,
            1,
            1_000_000,
            "1..=1000000",
        )?;
        range(
            "shared_objects.max_bytes",
            so.max_bytes,
            64,
            // The whole state goes to a new client in one message (24-bit length, §5.3.1.2).
            8 << 20,
            "64..=8388608",
        )?;
        range(
            "shared_objects.max_updates_per_second",
            so.max_updates_per_second,
            1,
            1_000_000,
            "1..=1000000",
        )?;
        for (key, value) in [
            ("shared_objects.max_objects", so.max_objects),
            ("shared_objects.max_apps", so.max_apps),
            (
                "shared_objects.max_objects_per_connection",
                so.max_objects_per_connection,
            ),
        ] {
            range(key, value, 1, 10_000_000, "1..=10000000")?;
        }
        range(
            "shared_objects.max_bytes_per_connection",
            so.max_bytes_per_connection,
            1024,
            1 << 40,
            "1024..=1099511627776",
        )?;
        range(
            "shared_objects.max_total_bytes",
            so.max_total_bytes,
            so.max_bytes_per_connection,
            1 << 40,
            "shared_objects.max_bytes_per_connection..=1099511627776",
        )?;
        range(
            "shared_objects.max_file_bytes",
            so.max_file_bytes,
            1024,
            1 << 30,
            "1024..=1073741824",
        )?;
        range(
            "shared_objects.max_disk_bytes",
            so.max_disk_bytes,
            4096,
            1 << 50,
            "4096..=1125899906842624",
        )?;
        self.validate_cluster()?;
        self.auth
            .validate()
            .map_err(|reason| ConfigError::Invalid {
                key: "auth",
                reason,
            })?;
        Ok(())
    }

    /// The RTMPS listener's address and files. Whether the files hold a valid certificate and
    /// its key is checked when the server loads them, naming the file.
    fn validate_rtmps(&self) -> Result<(), ConfigError> {
        let t = &self.rtmps;
        if !t.enabled() {
            return Ok(());
        }
        let addr = t
            .listen
            .parse::<SocketAddr>()
            .map_err(|e| ConfigError::Invalid {
                key: "rtmps.listen",
                reason: format!("{:?} is not an address:port ({e})", t.listen),
            })?;
        if self.server.listen.parse::<SocketAddr>().ok() == Some(addr) && addr.port() != 0 {
            return Err(ConfigError::Invalid {
                key: "rtmps.listen",
                reason: format!("{addr} is server.listen too; RTMPS needs a port of its own"),
            });
        }
        for (key, file) in [
            ("rtmps.cert_file", &t.cert_file),
            ("rtmps.key_file", &t.key_file),
        ] {
            if file.trim().is_empty() {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "is empty, and rtmps.listen is set: RTMPS needs a certificate chain \
                             and its key (PEM files)"
                        .into(),
                });
            }
        }
        Ok(())
    }

    /// The public HTTP listener's address (a port of its own) and its request limits.
    fn validate_http(&self) -> Result<(), ConfigError> {
        let h = &self.http;
        range(
            "http.request_timeout_ms",
            h.request_timeout_ms,
            100,
            600_000,
            "100..=600000",
        )?;
        range(
            "http.max_request_head_bytes",
            h.max_request_head_bytes,
            1024,
            1 << 20,
            "1024..=1048576",
        )?;
        if h.allow_origin.chars().any(|c| c.is_control()) {
            return Err(ConfigError::Invalid {
                key: "http.allow_origin",
                reason: "holds a control character".into(),
            });
        }
        if !self.server.http_enabled() {
            return Ok(());
        }
        let addr =
            self.server
                .http_listen
                .parse::<SocketAddr>()
                .map_err(|e| ConfigError::Invalid {
                    key: "server.http_listen",
                    reason: format!("{:?} is not an address:port ({e})", self.server.http_listen),
                })?;
        let taken = [
            ("server.listen", &self.server.listen),
            ("server.admin_listen", &self.server.admin_listen),
            ("rtmps.listen", &self.rtmps.listen),
        ];
        for (key, other) in taken {
            if other.parse::<SocketAddr>().ok() == Some(addr) && addr.port() != 0 {
                return Err(ConfigError::Invalid {
                    key: "server.http_listen",
                    reason: format!("{addr} is {key} too; HTTP-FLV needs a port of its own"),
                });
            }
        }
        Ok(())
    }

    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let c = &self.cluster;
        if c.enabled() {
            if !(c.redis_url.starts_with("redis://")
                || c.redis_url.starts_with("rediss://")
                || c.redis_url.starts_with("unix://"))
            {
                return Err(ConfigError::Invalid {
                    key: "cluster.redis_url",
                    reason: format!("{:?} is not a redis:// URL", c.redis_url),
                });
            }
            self.advertised_address()?;
            range("cluster.ttl_s", c.ttl_s, 2, 86_400, "2..=86400")?;
            range(
                "cluster.lookup_interval_ms",
                c.lookup_interval_ms,
                50,
                600_000,
                "50..=600000",
            )?;
        }
        let push = self.relay.push.iter().map(|t| ("relay.push.url", &t.url));
        let pull = self.relay.pull.iter().map(|s| ("relay.pull.url", &s.url));
        for (key, target) in push.chain(pull) {
            let url = crate::client::RtmpUrl::parse(&format!("{}/x", target.trim_end_matches('/')))
                .map_err(|e| ConfigError::Invalid {
                    key,
                    reason: e.to_string(),
                })?;
            if url.stream != "x" {
                return Err(ConfigError::Invalid {
                    key,
                    reason: format!("{target:?}: no query string in a relay URL"),
                });
            }
        }
        for source in &self.relay.pull {
            let plain = |s: &str| !s.is_empty() && !s.contains(['/', '?']);
            if source.mode == PullMode::Static && !(plain(&source.app) && plain(&source.name)) {
                return Err(ConfigError::Invalid {
                    key: "relay.pull.name",
                    reason: format!(
                        "{:?}: a static pull needs an app and a stream name (no '/' or '?')",
                        source.url
                    ),
                });
            }
        }
        Ok(())
    }

    /// The RTMP address other instances reach this one at: `cluster.advertise`, else
    /// `server.listen` when it is not a wildcard address.
    pub fn advertised_address(&self) -> Result<String, ConfigError> {
        let advertise = &self.cluster.advertise;
        if !advertise.is_empty() {
            let valid = advertise.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            if !valid {
                return Err(ConfigError::Invalid {
                    key: "cluster.advertise",
                    reason: format!("{advertise:?} is not host:port"),
                });
            }
            return Ok(advertise.clone());
        }
        match self.server.listen.parse::<SocketAddr>() {
            Ok(addr) if !addr.ip().is_unspecified() => Ok(addr.to_string()),
            _ => Err(ConfigError::Invalid {
                key: "cluster.advertise",
                reason: format!(
                    "required with cluster.redis_url when server.listen ({}) is a wildcard address",
                    self.server.listen
                ),
            }),
        }
    }

    /// Number of arbiters to run.
    pub fn worker_count(&self) -> usize {
        if self.server.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.server.workers
        }
    }

    pub fn chunk_limits(&self) -> ChunkLimits {
        ChunkLimits {
            max_message_len: self.rtmp.max_message_len,
            max_chunk_streams: self.rtmp.max_chunk_streams,
            max_pending_bytes: self.rtmp.max_pending_bytes,
        }
    }

    pub fn amf_limits(&self) -> AmfLimits {
        AmfLimits {
            max_depth: self.rtmp.max_amf_depth,
            max_values: self.rtmp.max_amf_values,
        }
    }
}

impl Settings {
    /// `server.apps`, `auth.banned_ips` and `auth.keys_file` (issue #19).
    fn validate_control(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for app in &self.server.apps {
            crate::auth::control::check_app(app).map_err(|e| ConfigError::Invalid {
                key: "server.apps",
                reason: format!(
                    "{app:?}: {e} (an app is the first segment of rtmp://host/APP/...)"
                ),
            })?;
            if !seen.insert(app) {
                return Err(ConfigError::Invalid {
                    key: "server.apps",
                    reason: format!("{app:?} is listed twice"),
                });
            }
        }
        for ip in &self.auth.banned_ips {
            crate::auth::control::IpNet::parse(ip).map_err(|reason| ConfigError::Invalid {
                key: "auth.banned_ips",
                reason: format!("{reason} (e.g. 203.0.113.7, 198.51.100.0/24, 2001:db8::/32)"),
            })?;
        }
        let file = self.auth.keys_file.trim();
        if !file.is_empty() && (file.ends_with('/') || Path::new(file).is_dir()) {
            return Err(ConfigError::Invalid {
                key: "auth.keys_file",
                reason: format!("{file:?} is a directory; name a file (e.g. state/control.json)"),
            });
        }
        Ok(())
    }

    /// The dotted keys whose values differ between `self` and `other`.
    pub fn changed_keys(&self, other: &Settings) -> Vec<String> {
        fn walk(prefix: &str, a: &toml::Value, b: &toml::Value, out: &mut Vec<String>) {
            match (a, b) {
                (toml::Value::Table(ta), toml::Value::Table(tb)) => {
                    let mut keys: Vec<&String> = ta.keys().chain(tb.keys()).collect();
                    keys.sort();
                    keys.dedup();
                    for k in keys {
                        let path = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        match (ta.get(k), tb.get(k)) {
                            (Some(x), Some(y)) => walk(&path, x, y, out),
                            _ => out.push(path),
                        }
                    }
                }
                (x, y) if x != y => out.push(prefix.to_owned()),
                _ => {}
            }
        }
        let (Ok(a), Ok(b)) = (toml::Value::try_from(self), toml::Value::try_from(other)) else {
            return vec!["(unserializable)".into()];
        };
        let mut out = Vec::new();
        walk("", &a, &b, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_are_valid() {
        let s = Settings::defaults();
        s.validate().expect("valid");
        assert_eq!(s.server.listen, "0.0.0.0:1935");
        assert_eq!(s.live.publish_conflict, PublishConflict::Protect);
    }

    #[test]
    fn non_loopback_admin_needs_a_token() {
        let mut s = Settings::defaults();
        s.server.admin_listen = "0.0.0.0:8080".into();
        let err = s.validate().expect_err("no token").to_string();
        assert!(err.contains("admin.token"), "{err}");
        s.admin.token = "secret".into();
        s.validate().expect("token set");
    }

    #[test]
    fn relay_pulls_are_parsed_and_validated() {
        let mut s = Settings::defaults();
        let source: PullSource = toml::from_str(
            "url = \"rtmp://origin:1935/live\"\napp = \"live\"\nmode = \"static\"\nname = \"cam\"",
        )
        .expect("parse");
        assert_eq!(source.mode, PullMode::Static);
        assert!(source.serves("live", "cam") && !source.serves("live", "other"));
        s.relay.pull.push(source);
        s.validate().expect("valid static pull");
        s.relay.pull[0].name.clear();
        let err = s.validate().expect_err("no name").to_string();
        assert!(err.contains("relay.pull.name"), "{err}");
        let on_demand: PullSource = toml::from_str("url = \"rtmp://origin/live\"").expect("parse");
        assert_eq!(on_demand.mode, PullMode::OnDemand);
        assert!(on_demand.serves("any", "thing"));
        s.relay.pull = vec![PullSource {
            url: "http://origin/live".into(),
            ..on_demand
        }];
        let err = s.validate().expect_err("not rtmp").to_string();
        assert!(err.contains("relay.pull.url"), "{err}");
    }

    #[test]
    fn allowed_hosts_are_bare_host_names() {
        let mut s = Settings::defaults();
        assert!(s.admin.allowed_hosts().is_empty());
        s.admin.allowed_hosts = vec![
            "Admin.Example".into(),
            "10.0.0.5".into(),
            "[fd00::1]".into(),
            "".into(),
        ];
        s.validate().expect("valid names");
        assert_eq!(
            s.admin.allowed_hosts(),
            ["admin.example", "10.0.0.5", "[fd00::1]"]
        );
        for bad in [
            "http://admin.example",
            "admin.example:8080",
            "admin.example/x",
            "fd00::1",
            "a b",
        ] {
            s.admin.allowed_hosts = vec![bad.into()];
            let err = s.validate().expect_err(bad).to_string();
            assert!(err.contains("admin.allowed_hosts"), "{bad}: {err}");
        }
    }

    #[test]
    fn out_of_range_names_the_key() {
        let mut s = Settings::defaults();
        s.rtmp.out_chunk_size = 1;
        let err = s.validate().expect_err("invalid").to_string();
        assert!(err.contains("rtmp.out_chunk_size"), "{err}");
    }

    #[test]
    fn metrics_max_streams_is_bounded() {
        let mut s = Settings::defaults();
        assert_eq!(s.admin.metrics_max_streams, 100);
        s.admin.metrics_max_streams = 0;
        s.validate().expect("0: only the summed series");
        s.admin.metrics_max_streams = 10_001;
        let err = s.validate().expect_err("invalid").to_string();
        assert!(
            err.contains("admin.metrics_max_streams") && err.contains("0..=10000"),
            "{err}"
        );
    }

    #[test]
    fn shared_object_limits_are_validated() {
        let mut s = Settings::defaults();
        s.shared_objects.max_bytes = 1;
        let err = s.validate().expect_err("invalid").to_string();
        assert!(err.contains("shared_objects.max_bytes"), "{err}");
        let mut s = Settings::defaults();
        s.shared_objects.dir = " ".into();
        let err = s.validate().expect_err("invalid").to_string();
        assert!(err.contains("shared_objects.dir"), "{err}");
        let mut s = Settings::defaults();
        s.shared_objects.max_total_bytes = s.shared_objects.max_bytes_per_connection - 1;
        let err = s.validate().expect_err("invalid").to_string();
        assert!(err.contains("shared_objects.max_total_bytes"), "{err}");
        let mut s = Settings::defaults();
        s.shared_objects.max_apps = 0;
        let err = s.validate().expect_err("invalid").to_string();
        assert!(err.contains("shared_objects.max_apps"), "{err}");
    }
}
