//! Start-up: one actix arbiter per worker, the registry, the RTMP listener, the admin HTTP
//! port; SIGINT/SIGTERM stop the server.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use actix::prelude::*;
use dashmap::DashMap;
use tokio::net::TcpListener;

use crate::actors::registry::Registry;
use crate::actors::{listener, ServerContext};
use crate::admin;
use crate::config::Settings;
use crate::stats::ServerStats;

/// Run the server until a signal stops it. Must be called inside an actix `System`.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    let workers = settings.worker_count();
    let arbiters: Vec<Arbiter> = (0..workers).map(|_| Arbiter::new()).collect();
    let handles = arbiters.iter().map(Arbiter::handle).collect();
    let stats = Arc::new(ServerStats::default());
    let registry = Registry::new(settings.clone(), stats.clone()).start();
    let listener = TcpListener::bind(&settings.server.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.server.listen))?;
    let local = listener.local_addr()?;
    let admin = admin::start(&settings, stats.clone(), registry.clone())?;
    tracing::info!(rtmp = %local, admin = %admin.local_addr, workers, "reflector listening");
    let ctx = Arc::new(ServerContext {
        settings: settings.clone(),
        registry,
        stats: stats.clone(),
        arbiters: handles,
        next_connection_id: AtomicU64::new(1),
        connections_per_ip: DashMap::new(),
    });
    let accept = actix::spawn(listener::run(listener, ctx.clone()));
    stats.ready.store(true, Relaxed);
    shutdown_signal().await;
    tracing::info!("shutting down");
    stats.ready.store(false, Relaxed);
    accept.abort();
    admin.stop().await;
    for arbiter in arbiters {
        arbiter.stop();
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
