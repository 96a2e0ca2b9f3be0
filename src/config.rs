//! Settings: the embedded `config/default.toml`, an optional file, `REFLECTOR_...` environment
//! overrides, then command-line flags; validated at start-up. Every limit lives here.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::auth::AuthSettings;
use crate::protocol::amf0::AmfLimits;
use crate::protocol::chunk::ChunkLimits;

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
}

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
    /// Seconds of per-stream bitrate and subscriber history kept for the dashboard chart.
    pub history_seconds: usize,
    /// Window, in seconds, over which ingest and egress bitrates are averaged.
    pub rate_window_seconds: usize,
}

impl AdminSettings {
    /// The configured token, if any.
    pub fn token(&self) -> Option<&str> {
        Some(self.token.as_str()).filter(|t| !t.is_empty())
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

/// Relays to other servers (`[relay]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySettings {
    pub push: Vec<PushTarget>,
}

/// The whole effective configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub rtmp: RtmpSettings,
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
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true),
        );
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
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
            return Err(ConfigError::Invalid {
                key: "admin.token",
                reason: format!(
                    "the admin port listens on {admin_ip}, which is not loopback: set a bearer \
                     token (admin.token or REFLECTOR_ADMIN__TOKEN) or listen on 127.0.0.1"
                ),
            });
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
        self.validate_cluster()?;
        self.auth
            .validate()
            .map_err(|reason| ConfigError::Invalid {
                key: "auth",
                reason,
            })?;
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
        for target in &self.relay.push {
            let url =
                crate::client::RtmpUrl::parse(&format!("{}/x", target.url.trim_end_matches('/')))
                    .map_err(|e| ConfigError::Invalid {
                    key: "relay.push.url",
                    reason: e.to_string(),
                })?;
            if url.stream != "x" {
                return Err(ConfigError::Invalid {
                    key: "relay.push.url",
                    reason: format!("{:?}: no query string in a push URL", target.url),
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
    fn out_of_range_names_the_key() {
        let mut s = Settings::defaults();
        s.rtmp.out_chunk_size = 1;
        let err = s.validate().expect_err("invalid").to_string();
        assert!(err.contains("rtmp.out_chunk_size"), "{err}");
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
    }
}
