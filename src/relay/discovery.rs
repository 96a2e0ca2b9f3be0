//! Discovery through Redis: which instance originates which stream.
//!
//! Each instance writes `{prefix}{app}/{name}` → its advertised RTMP address for every stream
//! published to it (SET with EX, refreshed while publishing), deletes it on unpublish only if
//! the value is still its own (another instance may have taken the name over meanwhile), and
//! reads it when a player asks for a stream nobody publishes here. Pulled streams are never
//! written: only an origin advertises, so a pull always points at an origin.
//!
//! Redis being down never affects local streams: every operation has a short timeout, a
//! failure flips [`ServerStats::redis_ok`] (logged once per transition) and is retried by the
//! refresh loop.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;

use crate::config::{ConfigError, Settings};
use crate::stats::ServerStats;

/// Longest wait for one Redis operation: a slow Redis must not hold a player's lookup long.
const OP_TIMEOUT: Duration = Duration::from_millis(1500);

/// Delete a key only if it still holds our value (compare-and-delete in one step).
const DELETE_IF_OURS: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
";

/// Why a discovery operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {after:?}")]
    Timeout { after: Duration },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The Redis side of a cluster of reflector instances.
pub struct Discovery {
    conn: ConnectionManager,
    advertise: String,
    prefix: String,
    ttl_s: u64,
    /// Streams this instance originates (resource keys), refreshed by [`Discovery::run`].
    owned: DashMap<String, ()>,
    stats: Arc<ServerStats>,
}

impl Discovery {
    /// Set up discovery for `settings.cluster` (which must be enabled). Connects lazily: a
    /// Redis that is down at start-up is a logged condition, not a start-up failure.
    pub fn new(settings: &Settings, stats: Arc<ServerStats>) -> Result<Arc<Self>, DiscoveryError> {
        let cluster = &settings.cluster;
        let client = redis::Client::open(cluster.redis_url.as_str())?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(OP_TIMEOUT))
            .set_response_timeout(Some(OP_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        stats.redis_configured.store(true, Relaxed);
        // Assumed reachable until an operation says otherwise, so that the first failure is
        // logged as the transition it is.
        stats.redis_ok.store(true, Relaxed);
        Ok(Arc::new(Discovery {
            conn,
            advertise: settings.advertised_address()?,
            prefix: cluster.key_prefix.clone(),
            ttl_s: cluster.ttl_s,
            owned: DashMap::new(),
            stats,
        }))
    }

    /// The RTMP address this instance advertises.
    pub fn advertise(&self) -> &str {
        &self.advertise
    }

    fn redis_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Record the outcome of an operation; log transitions of Redis health once.
    fn note<T>(&self, what: &str, result: Result<T, DiscoveryError>) -> Result<T, DiscoveryError> {
        let ok = result.is_ok();
        let was = self.stats.redis_ok.swap(ok, Relaxed);
        match (&result, was) {
            (Err(e), true) => {
                tracing::error!(operation = what, error = %e, "redis unavailable: local streams keep working; cross-instance discovery is off until it returns")
            }
            (Err(e), false) => {
                tracing::debug!(operation = what, error = %e, "redis still unavailable")
            }
            (Ok(_), false) => tracing::info!(operation = what, "redis reachable"),
            (Ok(_), true) => {}
        }
        result
    }

    async fn timed<T>(
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, DiscoveryError> {
        match tokio::time::timeout(OP_TIMEOUT, fut).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(DiscoveryError::Timeout { after: OP_TIMEOUT }),
        }
    }

    async fn set(&self, key: &str) -> Result<(), DiscoveryError> {
        let mut conn = self.conn.clone();
        let rkey = self.redis_key(key);
        let result = Self::timed(conn.set_ex::<_, _, ()>(&rkey, &self.advertise, self.ttl_s)).await;
        self.note("set", result)
    }

    /// This instance now originates `key` (`app/name`): advertise it, and keep it advertised.
    pub async fn register(&self, key: &str) {
        self.owned.insert(key.to_owned(), ());
        match self.set(key).await {
            Ok(()) => {
                tracing::info!(stream = %key, advertise = %self.advertise, "stream registered in redis")
            }
            Err(e) => {
                tracing::warn!(stream = %key, error = %e, "stream not registered in redis (retried)")
            }
        }
    }

    /// This instance no longer originates `key`: forget it, and delete the key if it still
    /// names us.
    pub async fn unregister(&self, key: &str) {
        self.owned.remove(key);
        let mut conn = self.conn.clone();
        let script = redis::Script::new(DELETE_IF_OURS);
        let mut invocation = script.key(self.redis_key(key));
        invocation.arg(&self.advertise);
        let result = Self::timed(invocation.invoke_async::<i64>(&mut conn)).await;
        match self.note("delete", result) {
            Ok(n) => tracing::info!(stream = %key, deleted = n > 0, "stream unregistered in redis"),
            Err(e) => {
                tracing::warn!(stream = %key, error = %e, "stream not unregistered in redis (expires after its TTL)")
            }
        }
    }

    /// The address of the instance originating `key`, if any instance advertises it.
    pub async fn lookup(&self, key: &str) -> Result<Option<String>, DiscoveryError> {
        let mut conn = self.conn.clone();
        let result = Self::timed(conn.get::<_, Option<String>>(self.redis_key(key))).await;
        self.note("get", result)
    }

    /// Refresh every owned stream's key well before it expires, forever; with none owned, a
    /// PING keeps `redis_ok` true to life. Spawned once at start-up.
    pub async fn run(self: Arc<Self>) {
        let period = Duration::from_millis((self.ttl_s * 1000 / 3).max(500));
        loop {
            let keys: Vec<String> = self.owned.iter().map(|e| e.key().clone()).collect();
            if keys.is_empty() {
                let mut conn = self.conn.clone();
                let result = Self::timed(redis::cmd("PING").query_async::<String>(&mut conn)).await;
                let _ = self.note("ping", result);
            }
            for key in keys {
                // Unregistered meanwhile: do not resurrect it.
                if self.owned.contains_key(&key) {
                    let _ = self.set(&key).await;
                    if !self.owned.contains_key(&key) {
                        // Unregistered while the SET was in flight: undo it.
                        self.unregister(&key).await;
                    }
                }
            }
            tokio::time::sleep(period).await;
        }
    }
}
