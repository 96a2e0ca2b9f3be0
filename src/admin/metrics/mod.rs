//! `GET /metrics`: Prometheus / OpenMetrics text built with `prometheus-client` from the
//! shared stats at scrape time (a fresh registry per scrape: the figures live in the stats,
//! not in metric objects). Names follow Prometheus' conventions: every monotonic figure is a
//! counter ending in `_total`, units are in the names (`_bytes`, `_seconds`), rates are left
//! to `rate()`. No label set is unbounded: per-stream series are capped by
//! `admin.metrics_max_streams` ([`streams`]).

pub mod process;
pub mod streams;

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use self::streams::StreamSeries;
use crate::stats::{DropCounters, RefusalReason, ServerStats};

/// The exposition's content type (prometheus-client writes OpenMetrics text).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c: Counter<u64> = Counter::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

fn counter_f(registry: &mut Registry, name: &str, help: &str, value: f64) {
    let c: Counter<f64, AtomicU64> = Counter::default();
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

fn int(v: impl TryInto<i64>) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

/// The revision the binary was built from, when the build provided one
/// (`REFLECTOR_GIT_COMMIT` at compile time: a tarball build has none).
fn revision() -> &'static str {
    option_env!("REFLECTOR_GIT_COMMIT").unwrap_or("unknown")
}

/// Render the metrics text.
pub fn render(stats: &ServerStats, streams: &StreamSeries) -> Result<String, std::fmt::Error> {
    let mut r = Registry::with_prefix("reflector");
    server(&mut r, stats);
    media(&mut r, stats);
    per_stream(&mut r, stats, streams);
    let mut p = Registry::default();
    process_metrics(&mut p);
    let mut out = String::new();
    encode_registry(&mut out, &r)?;
    encode_registry(&mut out, &p)?;
    encode_eof(&mut out)?;
    Ok(out)
}

/// Build, readiness, connections, sockets, refusals.
fn server(r: &mut Registry, stats: &ServerStats) {
    r.register(
        "build",
        "The running build: 1, with its version and revision as labels",
        Info::new(labels(&[
            ("version", env!("CARGO_PKG_VERSION")),
            ("revision", revision()),
        ])),
    );
    gauge_f(
        r,
        "uptime_seconds",
        "Seconds since the server started",
        stats.started.elapsed().as_secs_f64(),
    );
    gauge(
        r,
        "ready",
        "1 while the server accepts RTMP connections, 0 before start-up ends and while draining",
        i64::from(stats.ready.load(Relaxed)),
    );
    gauge(
        r,
        "connections",
        "Open RTMP connections",
        int(stats.connections.len()),
    );
    counter(
        r,
        "connections_accepted",
        "RTMP connections accepted",
        stats.connections_total.load(Relaxed),
    );
    counter(
        r,
        "accept_errors",
        "Failed accept calls on the RTMP listener (e.g. out of file descriptors)",
        stats.accept_errors.load(Relaxed),
    );
    gauge(
        r,
        "accept_failing",
        "1 while the RTMP listener's accept calls fail (the instance is then not ready)",
        i64::from(stats.accept_failing()),
    );
    gauge(
        r,
        "connection_cap_by_open_files",
        "Most RTMP connections the open-file limit leaves room for (0: no such cap)",
        int(stats.connection_cap_by_open_files.load(Relaxed)),
    );
    gauge(
        r,
        "open_files_limit",
        "The soft open-file limit after start-up (each RTMP connection takes one)",
        int(stats.open_files_limit.load(Relaxed)),
    );
    counter(
        r,
        "connections_refused",
        "RTMP connections refused at accept by the connection limits (also in refusals_total{reason=\"limits\"})",
        stats.connections_refused.load(Relaxed),
    );
    let refusals = Family::<Labels, Counter<u64>>::default();
    for reason in RefusalReason::ALL {
        refusals
            .get_or_create(&labels(&[("reason", reason.as_str())]))
            .inc_by(stats.refusals.get(reason));
    }
    r.register(
        "refusals",
        "Connections, publishes, plays and shared object uses refused, by reason (auth, limits, bad_name, conflict, banned, unknown_app)",
        refusals,
    );
    counter(
        r,
        "protocol_errors",
        "Connections closed for a protocol error or a failed handshake",
        stats.protocol_errors.load(Relaxed),
    );
    counter(
        r,
        "panics",
        "Panics caught in actors (each ended one connection or stream, never the server)",
        stats.panics.load(Relaxed),
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
        r,
        "received_bytes",
        "Bytes read from RTMP sockets (handshake and protocol overhead included)",
        bytes_in,
    );
    counter(
        r,
        "sent_bytes",
        "Bytes written to RTMP sockets (handshake and protocol overhead included)",
        bytes_out,
    );
    gauge(
        r,
        "queued_bytes",
        "Bytes queued to RTMP sockets and not written yet",
        int(queued),
    );
}

/// Streams, players, actors, drops, caches.
fn media(r: &mut Registry, stats: &ServerStats) {
    let live = stats
        .streams
        .iter()
        .filter(|s| s.publisher_connection.load(Relaxed) != 0)
        .count();
    gauge(
        r,
        "streams",
        "Resources (app/name) with a publisher or waiting players",
        int(stats.streams.len()),
    );
    gauge(r, "streams_live", "Resources with a publisher", int(live));
    let a = &stats.actors;
    gauge(
        r,
        "subscribers",
        "Playing NetStreams (players)",
        int(a.subscribers.load(Relaxed)),
    );
    // Players by how they reach the server (RTMP, RTMPS, HTTP-FLV, WebSocket-FLV).
    let by_protocol = Family::<Labels, Gauge>::default();
    let mut counts = [0usize; crate::stats::Protocol::ALL.len()];
    for stream in stats.streams.iter() {
        for player in stream.subscribers.iter() {
            let protocol = player
                .connection
                .as_ref()
                .map_or(crate::stats::Protocol::Rtmp, |c| c.protocol());
            counts[protocol as usize] += 1;
        }
    }
    for protocol in crate::stats::Protocol::ALL {
        if protocol != crate::stats::Protocol::Http {
            by_protocol
                .get_or_create(&labels(&[("protocol", protocol.as_str())]))
                .set(int(counts[protocol as usize]));
        }
    }
    r.register("players", "Players now, by protocol", by_protocol);
    let actors = Family::<Labels, Gauge>::default();
    for (kind, n) in [
        ("connection", a.connections.load(Relaxed)),
        ("publishing_stream", a.publishing_streams.load(Relaxed)),
        ("publisher", a.publishers.load(Relaxed)),
        ("subscriber", a.subscribers.load(Relaxed)),
        ("fanout", a.fanouts.load(Relaxed)),
        ("http_player", a.http_players.load(Relaxed)),
        ("shared_object", a.shared_objects.load(Relaxed)),
        ("registry", 1),
    ] {
        actors.get_or_create(&labels(&[("kind", kind)])).set(int(n));
    }
    r.register("actors", "Live actors by kind", actors);

    // Drops: gone subscribers' totals plus the live ones'.
    let drops = DropCounters::default();
    drops.add(&stats.closed_drops);
    let mut lag_max_ms = 0u64;
    let mut mailbox_max = 0usize;
    let mut gop_bytes = 0usize;
    let gone = &stats.gone_streams;
    let mut fanout_messages = gone.fanout_messages.load(Relaxed);
    let mut cross_thread = gone.cross_thread_messages.load(Relaxed);
    for e in stats.streams.iter() {
        let s = e.value();
        gop_bytes += s.gop_cache_bytes.load(Relaxed);
        fanout_messages += s.fanout_messages.load(Relaxed);
        cross_thread += s.cross_thread_messages.load(Relaxed);
        for sub in s.subscribers.iter() {
            drops.add(&sub.drops);
            lag_max_ms = lag_max_ms.max(sub.lag_ms.load(Relaxed));
            mailbox_max = mailbox_max.max(sub.mailbox_depth());
        }
    }
    let by_reason = Family::<Labels, Counter<u64>>::default();
    for (reason, n) in DropCounters::REASONS.iter().zip(drops.values()) {
        by_reason
            .get_or_create(&labels(&[("reason", reason)]))
            .inc_by(n);
    }
    r.register(
        "subscriber_dropped_frames",
        "Frames not delivered to players, by reason (mailbox_full, disposable, video, audio, awaiting_keyframe)",
        by_reason,
    );
    counter(
        r,
        "subscribers_closed",
        "Playing NetStreams that ended",
        stats.subscribers_closed.load(Relaxed),
    );
    gauge_f(
        r,
        "subscriber_lag_max_seconds",
        "Largest age of the oldest byte queued to a player",
        lag_max_ms as f64 / 1000.0,
    );
    gauge(
        r,
        "subscriber_mailbox_depth_max",
        "Fullest fan-out mailbox feeding players (one per stream and worker), in frames",
        int(mailbox_max),
    );
    gauge(
        r,
        "gop_cache_bytes",
        "Bytes held in GOP caches",
        int(gop_bytes),
    );
    counter(
        r,
        "fanout_messages",
        "Frame messages publishers sent to their edges: one per frame per worker with players and per push relay, not per player",
        fanout_messages,
    );
    counter(
        r,
        "fanout_cross_thread_messages",
        "Those fan-out messages that crossed to another worker thread",
        cross_thread,
    );
}

/// `reflector_stream_*{app, name}`: see [`streams`].
fn per_stream(r: &mut Registry, stats: &ServerStats, streams: &StreamSeries) {
    let exported = streams.export(stats);
    let received = Family::<Labels, Counter<u64>>::default();
    let sent = Family::<Labels, Counter<u64>>::default();
    let players = Family::<Labels, Gauge>::default();
    let dropped = Family::<Labels, Counter<u64>>::default();
    for s in exported.own.iter().chain(exported.other.iter()) {
        let id = labels(&[("app", &s.app), ("name", &s.name)]);
        received.get_or_create(&id).inc_by(s.values[0]);
        sent.get_or_create(&id).inc_by(s.values[1]);
        players.get_or_create(&id).set(int(s.players));
        for (reason, n) in DropCounters::REASONS.iter().zip(&s.values[2..]) {
            let mut l = id.clone();
            l.push(("reason".to_owned(), (*reason).to_owned()));
            dropped.get_or_create(&l).inc_by(*n);
        }
    }
    r.register(
        "stream_received_bytes",
        "Media payload bytes published, per stream (the most watched admin.metrics_max_streams streams; the rest and ended streams in app=\"#other\",name=\"#other\")",
        received,
    );
    r.register(
        "stream_sent_bytes",
        "Bytes sent to the stream's players (chunked), per stream",
        sent,
    );
    r.register("stream_players", "Players of the stream now", players);
    r.register(
        "stream_dropped_frames",
        "Frames not delivered to the stream's players, by reason",
        dropped,
    );
}

/// The standard `process_*` metrics; each left out when `/proc` cannot tell it.
fn process_metrics(r: &mut Registry) {
    let p = process::read();
    if let Some(v) = p.cpu_seconds {
        counter_f(
            r,
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            v,
        );
    }
    if let Some(v) = p.resident_bytes {
        gauge(
            r,
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            int(v),
        );
    }
    if let Some(v) = p.virtual_bytes {
        gauge(
            r,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            int(v),
        );
    }
    if let Some(v) = p.open_fds {
        gauge(
            r,
            "process_open_fds",
            "Number of open file descriptors",
            int(v),
        );
    }
    if let Some(v) = p.max_fds {
        gauge(
            r,
            "process_max_fds",
            "Maximum number of open file descriptors",
            int(v),
        );
    }
    if let Some(v) = p.start_time_seconds {
        gauge_f(
            r,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            v,
        );
    }
    if let Some(v) = p.threads {
        gauge(
            r,
            "process_threads",
            "Number of OS threads in the process",
            int(v),
        );
    }
}

#[cfg(test)]
mod tests;
