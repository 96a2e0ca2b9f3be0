//! The listener: accepts TCP connections, applies the connection limits, and spreads
//! connections over the arbiters round-robin so that every core serves players.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::connection;
use super::ServerContext;
use crate::stats::ConnectionStats;

/// Accept connections until the listener fails or the task is dropped.
pub async fn run(listener: TcpListener, server: Arc<ServerContext>) {
    let mut next = 0usize;
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let settings = server.settings.load();
        let limits = &settings.limits;
        let total = server.stats.connections.len();
        let ip = peer.ip();
        let from_ip = server.connections_per_ip.get(&ip).map_or(0, |n| *n);
        if total >= limits.max_connections || from_ip >= limits.max_connections_per_ip {
            server.stats.connections_refused.fetch_add(1, Relaxed);
            tracing::warn!(%peer, total, from_ip, "connection refused: limit reached");
            drop(socket);
            continue;
        }
        *server.connections_per_ip.entry(ip).or_insert(0) += 1;
        let id = server.next_connection_id.fetch_add(1, Relaxed);
        let worker = next % server.arbiters.len();
        next = next.wrapping_add(1);
        let stats = Arc::new(ConnectionStats::new(id, peer, worker));
        server.stats.connections.insert(id, stats.clone());
        server.stats.connections_total.fetch_add(1, Relaxed);
        // A tokio socket is bound to the reactor that accepted it: move it as a std socket.
        let std_socket = match socket.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "could not hand the socket over");
                continue;
            }
        };
        let ctx = server.clone();
        let spawned = server.arbiters[worker].spawn(async move {
            match tokio::net::TcpStream::from_std(std_socket) {
                Ok(socket) => connection::serve(socket, ctx, stats).await,
                Err(e) => tracing::warn!(connection = id, error = %e, "could not adopt the socket"),
            }
        });
        if !spawned {
            tracing::error!(worker, "arbiter is gone: connection dropped");
        }
    }
}
