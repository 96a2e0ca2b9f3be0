//! `GET /metrics`: Prometheus / OpenMetrics text built with `prometheus-client` from the
//! shared stats at scrape time (a fresh registry per scrape: the figures live in the stats,
//! not in metric objects). No label set is unbounded: per-stream series are limited to the
//! [`TOP_STREAMS`] streams with the most subscribers.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::sampler::Sampler;
use crate::stats::{DropCounters, ServerStats};

/// How many streams get per-stream series.
pub const TOP_STREAMS: usize = 10;

/// The exposition's content type (prometheus-client writes OpenMetrics text).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(String, String)>;

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c: Counter<u64> = Counter::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let g: Gauge<i64> = Gauge::default();
    g.set(value);
    registry.register(name, help, g);
}

fn gauge_f(registry: &mut Registry, name: &str, help: &str, value: f64) {
    let g: Gauge<f64, AtomicU64> = Gauge::default();
    g.set(value);
    registry.register(name, help, g);
}

fn int(v: usize) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Render the metrics text.
pub fn render(stats: &ServerStats, sampler: &Sampler) -> Result<String, std::fmt::Error> {
    let mut r = Registry::with_prefix("reflector");
    gauge_f(
        &mut r,
        "uptime_seconds",
        "Seconds since the server started",
        stats.started.elapsed().as_secs_f64(),
    );
    gauge(
        &mut r,
        "ready",
        "1 while the server accepts RTMP connections, 0 before start-up ends and while draining",
        i64::from(stats.ready.load(Relaxed)),
    );
    gauge(
        &mut r,
        "connections",
        "Open RTMP connections",
        int(stats.connections.len()),
    );
    counter(
        &mut r,
        "connections_accepted",
        "RTMP connections accepted",
        stats.connections_total.load(Relaxed),
    );
    counter(
        &mut r,
        "accept_errors",
        "Failed accept calls on the RTMP listener (e.g. out of file descriptors)",
        stats.accept_errors.load(Relaxed),
    );
    gauge(
        &mut r,
        "accept_failing",
        "1 while the RTMP listener's accept calls fail (the instance is then not ready)",
        i64::from(stats.accept_failing()),
    );
    gauge(
        &mut r,
        "connection_cap_by_open_files",
        "Most RTMP connections the open-file limit leaves room for (0: no such cap)",
        i64::try_from(stats.connection_cap_by_open_files.load(Relaxed)).unwrap_or(i64::MAX),
    );
    gauge(
        &mut r,
        "open_files_limit",
        "The soft open-file limit after start-up (each RTMP connection takes one)",
        i64::try_from(stats.open_files_limit.load(Relaxed)).unwrap_or(i64::MAX),
    );
    counter(
        &mut r,
        "connections_refused",
        "RTMP connections refused by the connection limits",
        stats.connections_refused.load(Relaxed),
    );
    counter(
        &mut r,
        "protocol_errors",
        "Connections closed for a protocol error or a failed handshake",
        stats.protocol_errors.load(Relaxed),
    );
    let (mut bytes_in, mut bytes_out, mut queued) = (
        stats.closed_bytes_in.load(Relaxed),
        stats.closed_bytes_out.load(Relaxed),
        0usize,
    );
    for c in stats.connections.iter() {
        bytes_in += c.bytes_in.load(Relaxed);
        bytes_out += c.bytes_out.load(Relaxed);
        queued += c.queued_bytes.load(Relaxed);
    }
    counter(
        &mut r,
        "bytes_received",
        "Bytes read from RTMP sockets (handshake included)",
        bytes_in,
    );
    counter(
        &mut r,
        "bytes_sent",
        "Bytes written to RTMP sockets (handshake included)",
        bytes_out,
    );
    gauge(
        &mut r,
        "queued_bytes",
        "Bytes queued to RTMP sockets and not written yet",
        int(queued),
    );
    let live = stats
        .streams
        .iter()
        .filter(|s| s.publisher_connection.load(Relaxed) != 0)
        .count();
    gauge(
        &mut r,
        "streams",
        "Resources (app/name) with a publisher or waiting players",
        int(stats.streams.len()),
    );
    gauge(
        &mut r,
        "streams_live",
        "Resources with a publisher",
        int(live),
    );
    let a = &stats.actors;
    gauge(
        &mut r,
        "subscribers",
        "Playing NetStreams",
        int(a.subscribers.load(Relaxed)),
    );
    let actors = Family::<Labels, Gauge>::default();
    for (kind, n) in [
        ("connection", a.connections.load(Relaxed)),
        ("publishing_stream", a.publishing_streams.load(Relaxed)),
        ("publisher", a.publishers.load(Relaxed)),
        ("subscriber", a.subscribers.load(Relaxed)),
        ("registry", 1),
    ] {
        actors
            .get_or_create(&vec![("kind".to_owned(), kind.to_owned())])
            .set(int(n));
    }
    r.register("actors", "Live actors by kind", actors);

    // Drops: gone subscribers' totals plus the live ones'.
    let drops = DropCounters::default();
    drops.add(&stats.closed_drops);
    let mut lag_max_ms = 0u64;
    let mut mailbox_max = 0usize;
    let mut gop_bytes = 0usize;
    let (mut ingest_bps, mut egress_bps) = (0.0, 0.0);
    let mut top: Vec<(String, usize, f64, f64)> = Vec::new();
    for e in stats.streams.iter() {
        let s = e.value();
        gop_bytes += s.gop_cache_bytes.load(Relaxed);
        for sub in s.subscribers.iter() {
            drops.add(&sub.drops);
            lag_max_ms = lag_max_ms.max(sub.lag_ms.load(Relaxed));
            mailbox_max = mailbox_max.max(sub.mailbox_depth());
        }
        let rates = sampler.rates(e.key());
        ingest_bps += rates.ingest_bps;
        egress_bps += rates.egress_bps;
        top.push((
            e.key().clone(),
            s.subscribers.len(),
            rates.ingest_bps,
            rates.egress_bps,
        ));
    }
    let by_reason = Family::<Labels, Counter<u64>>::default();
    for (reason, c) in [
        ("mailbox_full", &drops.mailbox_full),
        ("disposable", &drops.disposable),
        ("video", &drops.video),
        ("audio", &drops.audio),
        ("awaiting_keyframe", &drops.awaiting_keyframe),
    ] {
        by_reason
            .get_or_create(&vec![("reason".to_owned(), reason.to_owned())])
            .inc_by(c.load(Relaxed));
    }
    r.register(
        "subscriber_dropped_frames",
        "Frames not delivered to players, by reason (mailbox_full, disposable, video, audio, awaiting_keyframe)",
        by_reason,
    );
    counter(
        &mut r,
        "subscribers_closed",
        "Playing NetStreams that ended",
        stats.subscribers_closed.load(Relaxed),
    );
    gauge_f(
        &mut r,
        "subscriber_lag_max_seconds",
        "Largest age of the oldest byte queued to a player",
        lag_max_ms as f64 / 1000.0,
    );
    gauge(
        &mut r,
        "subscriber_mailbox_depth_max",
        "Fullest subscriber mailbox, in frames",
        int(mailbox_max),
    );
    gauge(
        &mut r,
        "gop_cache_bytes",
        "Bytes held in GOP caches",
        int(gop_bytes),
    );
    gauge_f(
        &mut r,
        "ingest_bits_per_second",
        "Ingest payload bitrate of all streams, averaged over admin.rate_window_seconds",
        ingest_bps,
    );
    gauge_f(
        &mut r,
        "egress_bits_per_second",
        "Bitrate sent to all players, averaged over admin.rate_window_seconds",
        egress_bps,
    );
    top.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    top.truncate(TOP_STREAMS);
    let top_subs = Family::<Labels, Gauge>::default();
    let top_in = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let top_out = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    for (key, subs, inb, outb) in &top {
        let labels = vec![("stream".to_owned(), key.clone())];
        top_subs.get_or_create(&labels).set(int(*subs));
        top_in.get_or_create(&labels).set(*inb);
        top_out.get_or_create(&labels).set(*outb);
    }
    r.register(
        "top_stream_subscribers",
        "Subscribers of the streams with the most subscribers (at most 10 streams)",
        top_subs,
    );
    r.register(
        "top_stream_ingest_bits_per_second",
        "Ingest bitrate of the same top streams",
        top_in,
    );
    r.register(
        "top_stream_egress_bits_per_second",
        "Egress bitrate of the same top streams",
        top_out,
    );
    let mut out = String::new();
    encode(&mut out, &r)?;
    Ok(out)
}
