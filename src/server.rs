//! Start-up and shutdown: one actix arbiter per worker, the registry, the RTMP listener, the
//! admin HTTP port; SIGHUP reloads what can change without dropping anyone; SIGTERM/SIGINT
//! drain.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use dashmap::DashMap;
use tokio::net::TcpListener;

use crate::actors::listener::{self, Service};
use crate::actors::registry::{Registry, Reload};
use crate::actors::relays::Relays;
use crate::actors::ServerContext;
use crate::admin::{self, AdminServer};
use crate::auth::control::Control;
use crate::config::{ConfigError, Settings};
use crate::relay::Discovery;
use crate::stats::ServerStats;
use crate::tls::ServerTls;

pub mod open_files;

/// Applies a new log level or filter.
pub type SetLogLevel = Box<dyn Fn(&str) -> Result<(), String>>;

/// What the binary gives the server for reloads.
pub struct Hooks {
    /// Read the configuration again (file, environment, flags), validated.
    pub reload_settings: Box<dyn Fn() -> Result<Settings, ConfigError>>,
    /// Apply a new log level or filter.
    pub set_log_level: SetLogLevel,
}

/// How a reload keeps the running value of a key.
type KeepRunning = fn(&mut Settings, &Settings);

/// Keys (a name ending in `.`: every key under it) that only take effect at start-up, each
/// with how a reload keeps the running value: a reload that changes them says so.
const RESTART_ONLY: &[(&str, KeepRunning)] = &[
    ("server.listen", |n, c| {
        n.server.listen.clone_from(&c.server.listen)
    }),
    ("server.admin_listen", |n, c| {
        n.server.admin_listen.clone_from(&c.server.admin_listen)
    }),
    ("server.workers", |n, c| n.server.workers = c.server.workers),
    ("server.log_format", |n, c| {
        n.server.log_format.clone_from(&c.server.log_format)
    }),
    ("rtmps.listen", |n, c| {
        n.rtmps.listen.clone_from(&c.rtmps.listen)
    }),
    ("server.http_listen", |n, c| {
        n.server.http_listen.clone_from(&c.server.http_listen)
    }),
    // The admin port's sampler and metric series are sized once, at start.
    ("admin.history_seconds", |n, c| {
        n.admin.history_seconds = c.admin.history_seconds
    }),
    ("admin.rate_window_seconds", |n, c| {
        n.admin.rate_window_seconds = c.admin.rate_window_seconds
    }),
    ("admin.metrics_max_streams", |n, c| {
        n.admin.metrics_max_streams = c.admin.metrics_max_streams
    }),
    ("cluster.", |n, c| n.cluster.clone_from(&c.cluster)),
    ("relay.", |n, c| n.relay.clone_from(&c.relay)),
];

/// How often the RTMPS certificate files are checked for a change (a renewal).
const CERT_CHECK_INTERVAL: Duration = Duration::from_secs(10);

enum Signal {
    Reload,
    Stop(&'static str),
}

/// Run the server until a signal stops it. Must be called inside an actix `System`.
pub async fn run(settings: Settings, hooks: Hooks) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    let workers = settings.worker_count();
    let arbiters: Vec<Arbiter> = (0..workers).map(|_| Arbiter::new()).collect();
    let handles = arbiters.iter().map(Arbiter::handle).collect();
    let stats = Arc::new(ServerStats::default());
    let control = Arc::new(
        Control::open(&settings.auth.keys_file)
            .map_err(|e| anyhow::anyhow!("auth.keys_file: {e}"))?,
    );
    let registry = Registry::new(settings.clone(), stats.clone())
        .with_relays(relays(&settings, &stats)?)
        .start();
    // Shared objects run on a thread of their own: start it now rather than on first use.
    let _ = crate::actors::shared_object::SharedObjectRegistry::from_registry();
    let listener = bind(&settings.server.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.server.listen))?;
    let local = listener.local_addr()?;
    let rtmps = rtmps_listener(&settings).await?;
    let http = if settings.server.http_enabled() {
        let addr = &settings.server.http_listen;
        let l = bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (server.http_listen): {e}"))?;
        Some(l)
    } else {
        None
    };
    // The bound address (the configured port may be 0): the dashboard's preview plays from it.
    let http_local = match &http {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let admin = admin::start(
        &settings,
        http_local,
        stats.clone(),
        registry.clone(),
        control.clone(),
    )?;
    // Counted once the listeners and arbiters hold their descriptors.
    if let Some(files) = open_files::prepare(settings.limits.max_connections) {
        stats.open_files_limit.store(files.soft, Relaxed);
        stats
            .connection_cap_by_open_files
            .store(files.connection_cap, Relaxed);
    }
    let rtmps_addr = match &rtmps {
        Some((l, _)) => l.local_addr()?.to_string(),
        None => "off".to_owned(),
    };
    let http_addr = http_local.map_or_else(|| "off".to_owned(), |a| a.to_string());
    tracing::info!(rtmp = %local, rtmps = %rtmps_addr, http = %http_addr, admin = %admin.local_addr, workers, "reflector listening");
    let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
    let ctx = Arc::new(ServerContext {
        settings: arc_swap::ArcSwap::new(settings.clone()),
        registry: registry.clone(),
        stats: stats.clone(),
        arbiters: handles,
        next_connection_id: AtomicU64::new(1),
        connections_per_ip: DashMap::new(),
        control,
        draining: drain_rx,
        admin_port: admin.local_addr.port(),
    });
    let accept = actix::spawn(listener::run(listener, Service::Rtmp(None), ctx.clone()));
    let (accept_tls, tls) = match rtmps {
        Some((l, tls)) => {
            let acceptor = tls.acceptor()?;
            let task = actix::spawn(listener::run(l, Service::Rtmp(Some(acceptor)), ctx.clone()));
            let watch = actix::spawn(watch_certificate(tls.clone()));
            (Some((task, watch)), Some(tls))
        }
        None => (None, None),
    };
    let accept_http = http.map(|l| actix::spawn(listener::run(l, Service::Http, ctx.clone())));
    stats.ready.store(true, Relaxed);
    let mut signals = Signals::new()?;
    let reason = loop {
        match signals.next().await {
            Signal::Reload => {
                reload(&ctx, &registry, &hooks, &admin);
                if let Some(tls) = &tls {
                    reload_certificate(tls, &ctx.settings.load());
                }
            }
            Signal::Stop(reason) => break reason,
        }
    };
    if let Some((task, watch)) = accept_tls {
        task.abort();
        watch.abort();
    }
    if let Some(task) = accept_http {
        task.abort();
    }
    drain(&ctx, accept, drain_tx, reason).await;
    admin.stop().await;
    for arbiter in arbiters {
        arbiter.stop();
    }
    Ok(())
}

/// The RTMPS listener and its certificate when `rtmps.listen` is set. A certificate or key
/// that is unreadable, expired or not a pair stops the start-up, naming the file.
async fn rtmps_listener(
    settings: &Settings,
) -> anyhow::Result<Option<(TcpListener, Arc<ServerTls>)>> {
    let t = &settings.rtmps;
    if !t.enabled() {
        return Ok(None);
    }
    let tls = ServerTls::load(t.cert_file.as_ref(), t.key_file.as_ref())
        .map_err(|e| anyhow::anyhow!("rtmps: {e}"))?;
    let listener = bind(&t.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (rtmps.listen): {e}", t.listen))?;
    Ok(Some((listener, tls)))
}

/// SIGHUP: load the certificate again (from the paths of the reloaded configuration). New
/// TLS handshakes take it; open connections keep theirs. A bad file keeps the running one.
fn reload_certificate(tls: &ServerTls, settings: &Settings) {
    let (cert, key) = (&settings.rtmps.cert_file, &settings.rtmps.key_file);
    match tls.reload(cert.as_ref(), key.as_ref()) {
        Ok(()) => {
            tracing::info!(cert_file = %cert, key_file = %key, "rtmps: certificate loaded for new connections")
        }
        Err(e) => {
            tracing::error!(error = %e, "rtmps: certificate reload refused; keeping the running one")
        }
    }
}

/// Load the certificate again when its files change (certbot renewing, a secret updated).
async fn watch_certificate(tls: Arc<ServerTls>) {
    let mut tick = tokio::time::interval(CERT_CHECK_INTERVAL);
    tick.tick().await;
    loop {
        tick.tick().await;
        let (cert, key) = tls.files();
        match tls.reload_if_changed() {
            None => {}
            Some(Ok(())) => {
                tracing::info!(cert_file = %cert.display(), key_file = %key.display(), "rtmps: certificate files changed; loaded for new connections")
            }
            Some(Err(e)) => {
                tracing::error!(error = %e, "rtmps: changed certificate refused; keeping the running one")
            }
        }
    }
}

/// Pull and push relays, with discovery through Redis when `cluster.redis_url` is set.
fn relays(settings: &Arc<Settings>, stats: &Arc<ServerStats>) -> anyhow::Result<Relays> {
    let discovery = if settings.cluster.enabled() {
        let discovery = Discovery::new(settings, stats.clone())?;
        tracing::info!(redis = %settings.cluster.redis_url, advertise = %discovery.advertise(), "cluster discovery through redis");
        actix::spawn(discovery.clone().run());
        Some(discovery)
    } else {
        None
    };
    // Always built, so that a bad relay.ca_file stops the start-up naming the file.
    let ca_file = &settings.relay.ca_file;
    let ca_file = (!ca_file.trim().is_empty()).then(|| std::path::Path::new(ca_file));
    let tls =
        crate::tls::client_config(ca_file).map_err(|e| anyhow::anyhow!("relay.ca_file: {e}"))?;
    Ok(Relays::new(settings.clone(), discovery).with_tls(tls))
}

/// Connections the kernel queues for `accept` per listener. std and tokio use 128; a burst
/// of players (a stream going live, a reconnect wave after a restart) overflows that and the
/// overflow waits a SYN retry (1 s, then 3 s). nginx uses 511; the kernel caps it at
/// `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 1024;

/// A listening socket on `addr` with [`LISTEN_BACKLOG`] (and SO_REUSEADDR, as std sets it).
async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host(addr).await? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket
            .bind(addr)
            .and_then(|()| socket.listen(LISTEN_BACKLOG))
        {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other(format!("{addr}: no address"))))
}

/// Whether a changed key only takes effect at restart.
fn restart_only(key: &str) -> bool {
    RESTART_ONLY
        .iter()
        .any(|(k, _)| key == *k || (k.ends_with('.') && key.starts_with(k)))
}

/// SIGHUP: re-read the configuration and apply what can change without dropping anyone
/// (authorization rules, limits for new connections and streams, log level).
fn reload(ctx: &ServerContext, registry: &Addr<Registry>, hooks: &Hooks, admin: &AdminServer) {
    let mut next = match (hooks.reload_settings)() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "reload refused: configuration invalid; keeping the running one");
            return;
        }
    };
    // The keys file is read again on every SIGHUP, changed configuration or not: its keys
    // add to the configured ones (both count), so a reload never loses either.
    ctx.control.reload(&next.auth.keys_file);
    let current = ctx.settings.load_full();
    let mut changed = current.changed_keys(&next);
    // Never serialized (so never printed), so not among the compared keys: by name only.
    if next.admin.token != current.admin.token {
        changed.push("admin.token".into());
    }
    if changed.is_empty() {
        tracing::info!("reload: configuration unchanged");
        return;
    }
    let needs_restart: Vec<&String> = changed.iter().filter(|k| restart_only(k)).collect();
    if !needs_restart.is_empty() {
        tracing::warn!(keys = ?needs_restart, "reload: these keys take effect only at restart; keeping their running values");
        for (_, keep_running) in RESTART_ONLY {
            keep_running(&mut next, &current);
        }
    }
    if next.server.log_level != current.server.log_level {
        if let Err(e) = (hooks.set_log_level)(&next.server.log_level) {
            tracing::error!(error = %e, "reload: log level not applied");
        }
    }
    let applied: Vec<&String> = changed.iter().filter(|k| !restart_only(k)).collect();
    let next = Arc::new(next);
    ctx.settings.store(next.clone());
    admin.apply_access(&next);
    registry.do_send(Reload(next));
    tracing::info!(keys = ?applied, "reload: applied to new connections and streams");
}

/// SIGTERM/SIGINT: stop accepting, end every stream cleanly, exit when all connections have
/// gone or after `server.drain_timeout_ms`.
async fn drain(
    ctx: &ServerContext,
    accept: tokio::task::JoinHandle<()>,
    drain_tx: tokio::sync::watch::Sender<bool>,
    reason: &str,
) {
    let timeout = Duration::from_millis(ctx.settings.load().server.drain_timeout_ms);
    ctx.stats.ready.store(false, Relaxed);
    accept.abort();
    let _ = drain_tx.send(true);
    let open = ctx.stats.connections.len();
    tracing::info!(
        signal = reason,
        connections = open,
        timeout_ms = timeout.as_millis() as u64,
        "draining"
    );
    let deadline = Instant::now() + timeout;
    while !ctx.stats.connections.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left = ctx.stats.connections.len();
    if left > 0 {
        tracing::warn!(
            connections = left,
            "drain deadline reached: closing the rest"
        );
    } else {
        tracing::info!("drained: every connection closed");
    }
}

/// The signals the server reacts to.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                hup: signal(SignalKind::hangup())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => Signal::Stop("SIGINT"),
                _ = self.term.recv() => Signal::Stop("SIGTERM"),
                _ = self.hup.recv() => Signal::Reload,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop("ctrl-c")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reload that changes every restart-only key keeps each at its running value: the
    /// table's names and its restores agree, and nothing else is touched.
    #[test]
    fn a_reload_keeps_every_restart_only_key_running() {
        let current = Settings::defaults();
        let mut next = Settings::defaults();
        next.server.listen = "127.0.0.1:1".into();
        next.server.admin_listen = "127.0.0.1:2".into();
        next.server.workers = current.server.workers + 3;
        next.server.log_format = "json".into();
        next.rtmps.listen = "127.0.0.1:3".into();
        next.server.http_listen = "127.0.0.1:4".into();
        next.admin.history_seconds = current.admin.history_seconds + 1;
        next.admin.rate_window_seconds = current.admin.rate_window_seconds + 1;
        next.admin.metrics_max_streams = current.admin.metrics_max_streams + 1;
        next.cluster.redis_url = "redis://127.0.0.1:5".into();
        next.relay.ca_file = "/etc/relay-ca.pem".into();
        next.live.write_coalesce_ms = current.live.write_coalesce_ms + 1;
        let changed = current.changed_keys(&next);
        for (key, _) in RESTART_ONLY {
            assert!(
                changed.iter().any(|c| c == key || c.starts_with(key)),
                "{key} not changed by the test: {changed:?}"
            );
        }
        for (_, keep_running) in RESTART_ONLY {
            keep_running(&mut next, &current);
        }
        assert_eq!(current.changed_keys(&next), ["live.write_coalesce_ms"]);
        assert!(!restart_only("live.write_coalesce_ms"));
        assert!(restart_only("relay.pull") && restart_only("cluster.redis_url"));
    }
}
