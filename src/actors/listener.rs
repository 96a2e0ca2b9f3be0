//! The listener: accepts TCP connections, applies the connection limits, and spreads
//! connections over the arbiters round-robin so that every core serves players. The RTMPS
//! listener is the same loop with a TLS acceptor: the limits count both together.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::ServerContext;
use super::{connection, http_request};
use crate::log_throttle::LogThrottle;
use crate::stats::{ConnectionStats, Protocol};

/// How often a repeating fault (failing `accept`, refused connections) is logged.
const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// The longest pause between `accept` attempts while they fail.
const ACCEPT_MAX_BACKOFF: Duration = Duration::from_secs(1);
/// A success this long after the last failure ends a run of failures (shorter gaps are the
/// limit being hovered at, not a recovery).
const ACCEPT_RECOVERED_AFTER: Duration = Duration::from_secs(3);

/// A run of failing `accept` calls: logged when it starts, then at most once per interval
/// with a count, and once when it has ended; the pause between attempts doubles up to a
/// second. The stats keep the time of the last failure, which `/readyz` reads.
struct AcceptFailures {
    log: LogThrottle,
    /// Failures in this run.
    run: u64,
    last_failure: Option<Instant>,
    backoff: Duration,
}

impl AcceptFailures {
    fn new() -> AcceptFailures {
        AcceptFailures {
            log: LogThrottle::new(1, LOG_INTERVAL),
            run: 0,
            last_failure: None,
            backoff: Duration::ZERO,
        }
    }

    fn failed(&mut self, error: &std::io::Error, server: &ServerContext) -> Duration {
        server.stats.accept_errors.fetch_add(1, Relaxed);
        server
            .stats
            .last_accept_error_ms
            .store(crate::stats::now_ms().max(1), Relaxed);
        self.run += 1;
        let now = Instant::now();
        self.last_failure = Some(now);
        if let Some(failures) = self.log.count(now) {
            let limit = server.stats.open_files_limit.load(Relaxed);
            tracing::warn!(error = %error, failures, open_file_limit = limit, connections = server.stats.connections.len(), "accept failed; backing off (logged at most every 10 s)");
        }
        self.backoff = (self.backoff * 2).clamp(Duration::from_millis(50), ACCEPT_MAX_BACKOFF);
        self.backoff
    }

    fn succeeded(&mut self) {
        self.backoff = Duration::ZERO;
        let Some(last) = self.last_failure else {
            return;
        };
        if last.elapsed() >= ACCEPT_RECOVERED_AFTER {
            tracing::info!(failures = self.run, "accept works again");
            self.run = 0;
            self.log.forget();
            self.last_failure = None;
        }
    }
}

/// What a listener serves.
#[derive(Clone)]
pub enum Service {
    /// RTMP; with an acceptor, each connection starts with a TLS handshake (RTMPS).
    Rtmp(Option<TlsAcceptor>),
    /// HTTP-FLV and WebSocket-FLV players (`server.http_listen`).
    Http,
}

/// Accept connections until the listener fails or the task is dropped. Every listener's
/// connections count against the same limits.
pub async fn run(listener: TcpListener, service: Service, server: Arc<ServerContext>) {
    let mut next = 0usize;
    let mut failures = AcceptFailures::new();
    let mut refusals = LogThrottle::new(1, LOG_INTERVAL);
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => {
                failures.succeeded();
                accepted
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tokio::time::sleep(failures.failed(&e, &server)).await;
                continue;
            }
        };
        let settings = server.settings.load();
        let limits = &settings.limits;
        let total = server.stats.connections.len();
        let ip = peer.ip();
        let from_ip = server.connections_per_ip.get(&ip).map_or(0, |n| *n);
        // The open-file limit caps connections too, below the point where accept itself would
        // fail, so that the admin port, relays and files keep their descriptors.
        let refused_by = if server.stats.at_open_file_cap() {
            Some("the open-file limit")
        } else if total >= limits.max_connections {
            Some("limits.max_connections")
        } else if from_ip >= limits.max_connections_per_ip {
            Some("limits.max_connections_per_ip")
        } else {
            None
        };
        if let Some(limit) = refused_by {
            server.stats.connections_refused.fetch_add(1, Relaxed);
            server
                .stats
                .refusals
                .count(crate::stats::RefusalReason::Limits);
            if let Some(refused) = refusals.count(Instant::now()) {
                tracing::warn!(%peer, limit, total, from_ip, refused, "connection refused: limit reached (logged at most every 10 s)");
            }
            drop(socket);
            continue;
        }
        *server.connections_per_ip.entry(ip).or_insert(0) += 1;
        let id = server.next_connection_id.fetch_add(1, Relaxed);
        let worker = next % server.arbiters.len();
        next = next.wrapping_add(1);
        let mut stats = ConnectionStats::new(id, peer, worker);
        match &service {
            Service::Rtmp(tls) => {
                stats.tls = tls.is_some();
                if stats.tls {
                    stats.set_protocol(Protocol::Rtmps);
                }
            }
            Service::Http => stats.set_protocol(Protocol::Http),
        }
        let stats = Arc::new(stats);
        server.stats.connections.insert(id, stats.clone());
        server.stats.connections_total.fetch_add(1, Relaxed);
        // A tokio socket is bound to the reactor that accepted it: move it as a std socket.
        let std_socket = match socket.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(connection = id, %peer, error = %e, "could not hand the socket over");
                connection::finish(&server, &stats);
                continue;
            }
        };
        let ctx = server.clone();
        let service = service.clone();
        let forget = stats.clone();
        let spawned = server.arbiters[worker].spawn(async move {
            match (tokio::net::TcpStream::from_std(std_socket), service) {
                (Ok(socket), Service::Rtmp(tls)) => {
                    connection::serve(socket, tls, ctx, stats).await
                }
                (Ok(socket), Service::Http) => http_request::serve(socket, ctx, stats).await,
                (Err(e), _) => {
                    tracing::warn!(connection = id, error = %e, "could not adopt the socket");
                    connection::finish(&ctx, &stats);
                }
            }
        });
        if !spawned {
            tracing::error!(
                connection = id,
                worker,
                "arbiter is gone: connection dropped"
            );
            connection::finish(&server, &forget);
        }
    }
}
