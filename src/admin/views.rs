//! The JSON bodies of the admin API, built from the shared stats alone.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Value};

use super::sampler::Sampler;
use crate::actors::registry::now_ms;
use crate::stats::{
    ConnectionStats, ServerStats, StreamStats, SubscriberStats, DEFAULT_MAILBOX,
    PUBLISHING_STREAM_MAILBOX,
};

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, ms)
}

/// `GET /api/v1/connections` entry.
pub fn connection(c: &ConnectionStats) -> Value {
    let (app, client) = c.app_info().unzip();
    let rtt_us = c.rtt_us.load(Relaxed);
    json!({
        "id": c.id,
        "peer": c.peer.to_string(),
        "worker": c.worker,
        "tls": c.tls,
        "protocol": c.protocol().as_str(),
        "state": c.state().as_str(),
        "app": app,
        "client": client,
        "bytes_in": c.bytes_in.load(Relaxed),
        "bytes_out": c.bytes_out.load(Relaxed),
        "messages_in": c.messages_in.load(Relaxed),
        "queued_bytes": c.queued_bytes.load(Relaxed),
        "rtt_ms": (rtt_us > 0).then(|| rtt_us as f64 / 1000.0),
        "idle_ms": c.idle_ms(),
        "age_ms": ms(c.started.elapsed()),
        "connected_at": unix_ms(c.started_wall),
    })
}

/// `GET /api/v1/connections`.
pub fn connections(stats: &ServerStats) -> Value {
    let mut list: Vec<Value> = stats.connections.iter().map(|c| connection(&c)).collect();
    list.sort_by_key(|c| c["id"].as_u64());
    json!({ "count": list.len(), "connections": list })
}

fn subscriber(s: &SubscriberStats) -> Value {
    let d = &s.drops;
    let client = s
        .connection
        .as_ref()
        .and_then(|c| c.app_info())
        .map(|(_, client)| client);
    json!({
        "connection": s.connection_id,
        "stream_id": s.stream_id,
        "peer": s.peer.to_string(),
        "client": client,
        "age_ms": ms(s.started.elapsed()),
        "bytes_sent": s.bytes_sent.load(Relaxed),
        "messages_sent": s.messages_sent.load(Relaxed),
        "lag_ms": s.lag_ms.load(Relaxed),
        "queued_bytes": s.queued_bytes(),
        "mailbox_depth": s.mailbox_depth(),
        "mailbox_capacity": s.mailbox_capacity,
        "drops": {
            "mailbox_full": d.mailbox_full.load(Relaxed),
            "disposable": d.disposable.load(Relaxed),
            "video": d.video.load(Relaxed),
            "audio": d.audio.load(Relaxed),
            "awaiting_keyframe": d.awaiting_keyframe.load(Relaxed),
            "total": d.total(),
        },
    })
}

/// One stream of `GET /api/v1/streams`.
pub fn stream(stats: &ServerStats, sampler: &Sampler, key: &str, s: &StreamStats) -> Value {
    let rates = sampler.rates(key);
    let publisher_id = s.publisher_connection.load(Relaxed);
    let started_ms = s.publish_started_ms.load(Relaxed);
    let publisher = (publisher_id != 0).then(|| {
        let conn = stats.connections.get(&publisher_id).map(|c| c.clone());
        json!({
            "connection": publisher_id,
            "peer": conn.as_ref().map(|c| c.peer.to_string()),
            "client": conn.as_ref().and_then(|c| c.app_info()).map(|(_, client)| client),
            "uptime_ms": if started_ms == 0 { 0 } else { now_ms().saturating_sub(started_ms) },
            "bytes_in": conn.as_ref().map(|c| c.bytes_in.load(Relaxed)),
            "rtt_ms": conn.as_ref().map(|c| c.rtt_us.load(Relaxed) as f64 / 1000.0),
        })
    });
    let width = s.width.load(Relaxed);
    let height = s.height.load(Relaxed);
    let mut subscribers: Vec<Value> = s.subscribers.iter().map(|e| subscriber(&e)).collect();
    subscribers.sort_by_key(|v| (v["connection"].as_u64(), v["stream_id"].as_u64()));
    let gone: Vec<Value> = s
        .gone
        .lock()
        .map(|ring| {
            ring.iter()
                .rev()
                .map(|g| {
                    json!({
                        "connection": g.connection_id,
                        "stream_id": g.stream_id,
                        "peer": g.peer.to_string(),
                        "bytes_sent": g.bytes_sent,
                        "messages_sent": g.messages_sent,
                        "drops_total": g.drops_total,
                        "duration_ms": g.duration_ms,
                        "left_at": unix_ms(g.left_wall),
                        "reason": g.reason,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "id": s.id,
        "key": key,
        "app": s.app,
        "name": s.name,
        "age_ms": ms(s.created.elapsed()),
        "live": publisher_id != 0,
        // Relay hops: "local" when published here, else the instance it is pulled from.
        "origin": s.origin.lock().ok().and_then(|o| o.clone()).unwrap_or_else(|| "local".into()),
        "pushes": s.pushes.iter().map(|p| json!({ "target": p.key(), "connected": *p.value() })).collect::<Vec<_>>(),
        "relay_errors": s.relay_errors.load(Relaxed),
        "publisher": publisher,
        "video": {
            "codec": s.video_codec(),
            "width": (width > 0).then_some(width),
            "height": (height > 0).then_some(height),
            "resolution": (width > 0 && height > 0).then(|| format!("{width}x{height}")),
            "fps": rates.fps,
            "keyframe_interval_s": rates.keyframe_interval_s,
            "frames": s.video_frames.load(Relaxed),
        },
        "audio": { "codec": s.audio_codec() },
        "ingest_bps": rates.ingest_bps,
        "egress_bps": rates.egress_bps,
        "bytes_in": s.bytes_in.load(Relaxed),
        "bytes_out": s.bytes_out(),
        "messages_in": s.messages_in.load(Relaxed),
        "data_dropped": s.data_dropped.load(Relaxed),
        "gop_cache": {
            "bytes": s.gop_cache_bytes.load(Relaxed),
            "frames": s.gop_cache_frames.load(Relaxed),
        },
        // The publisher sends each frame once per edge (the fan-out of each arbiter with
        // players, each push relay), not once per player.
        "fanout": {
            "edges": s.fanout_edges.load(Relaxed),
            "messages": s.fanout_messages.load(Relaxed),
            "cross_thread_messages": s.cross_thread_messages.load(Relaxed),
            "dropped": s.fanout_dropped.load(Relaxed),
            "messages_per_s": rates.fanout_messages_per_s,
            "cross_thread_messages_per_s": rates.cross_thread_messages_per_s,
        },
        "subscriber_count": subscribers.len(),
        "subscribers": subscribers,
        "gone_subscribers": gone,
    })
}

/// `GET /api/v1/streams`: the streams `keep` accepts.
pub fn streams(
    stats: &ServerStats,
    sampler: &Sampler,
    keep: impl Fn(&StreamStats) -> bool,
) -> Value {
    let mut list: Vec<Value> = stats
        .streams
        .iter()
        .filter(|e| keep(e.value()))
        .map(|e| stream(stats, sampler, e.key(), e.value()))
        .collect();
    list.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
    json!({ "count": list.len(), "streams": list })
}

/// `GET /api/v1/history`: the chart series of every stream, by stream id.
pub fn history(stats: &ServerStats, sampler: &Sampler, max_points: usize) -> Value {
    let mut out = serde_json::Map::new();
    for e in stats.streams.iter() {
        out.insert(
            e.value().id.to_string(),
            json!(sampler.history(e.key(), max_points)),
        );
    }
    json!({ "streams": out })
}

/// How each per-actor figure is obtained (also in the `stats` module doc).
const HOW: &str = "mailbox_depth: subscriber = frames queued to the fan-out actor that feeds it \
(one per stream and arbiter, shared by that arbiter's players; counted before try_send, taken \
off when handed to the players); publishing_stream = media messages its \
connection forwarded minus those it handled; publisher = Ingest messages sent minus handled; \
connection and registry mailboxes carry rare control messages only and are not counted \
(null). handled: messages read from the socket (connection), media handled \
(publishing_stream), frames ingested (publisher), events handled (subscriber), requests \
(registry). dropped: frames a subscriber lost to its fan-out's mailbox or \
the drop policy; ingest is lossless.";

#[allow(clippy::too_many_arguments)]
fn actor(
    kind: &str,
    id: String,
    label: String,
    depth: Option<u64>,
    capacity: usize,
    handled: u64,
    dropped: u64,
    age: Duration,
) -> Value {
    json!({
        "kind": kind,
        "id": id,
        "label": label,
        "mailbox_depth": depth,
        "mailbox_capacity": capacity,
        "handled": handled,
        "dropped": dropped,
        "age_ms": ms(age),
    })
}

/// `GET /api/v1/actors`: counts per kind and each live actor's figures (the busiest
/// `limit` of them, by mailbox fill).
pub fn actors(stats: &ServerStats, limit: usize) -> Value {
    let a = &stats.actors;
    let mut list = Vec::new();
    for c in stats.connections.iter() {
        list.push(actor(
            "connection",
            format!("connection/{}", c.id),
            c.peer.to_string(),
            None,
            DEFAULT_MAILBOX,
            c.messages_in.load(Relaxed),
            0,
            c.started.elapsed(),
        ));
    }
    for e in stats.streams.iter() {
        let s = e.value();
        list.push(actor(
            "publisher",
            format!("publisher/{}", e.key()),
            e.key().clone(),
            Some(s.publisher_queued.load(Relaxed) as u64),
            DEFAULT_MAILBOX,
            s.messages_in.load(Relaxed),
            0,
            s.created.elapsed(),
        ));
        let publisher = s.publisher_connection.load(Relaxed);
        if publisher != 0 {
            let started = s.publish_started_ms.load(Relaxed);
            let conn = stats.connections.get(&publisher).map(|c| c.clone());
            list.push(actor(
                "publishing_stream",
                format!("publishing_stream/{publisher}"),
                e.key().clone(),
                conn.as_ref().map(|c| c.media_queued()),
                PUBLISHING_STREAM_MAILBOX,
                conn.as_ref().map_or(0, |c| c.media_handled.load(Relaxed)),
                0,
                Duration::from_millis(now_ms().saturating_sub(started)),
            ));
        }
        for sub in s.subscribers.iter() {
            list.push(actor(
                "subscriber",
                format!("subscriber/{}/{}", sub.connection_id, sub.stream_id),
                format!("{} {}", e.key(), sub.peer),
                Some(sub.mailbox_depth() as u64),
                sub.mailbox_capacity,
                sub.handled.load(Relaxed),
                sub.drops.total(),
                sub.started.elapsed(),
            ));
        }
    }
    list.push(actor(
        "registry",
        "registry".into(),
        "registry".into(),
        None,
        DEFAULT_MAILBOX,
        stats.registry_handled.load(Relaxed),
        0,
        stats.started.elapsed(),
    ));
    let total = list.len();
    // Fullest mailboxes first, so a bounded list still shows the ones in trouble.
    let fill = |v: &Value| {
        let depth = v["mailbox_depth"].as_u64().unwrap_or(0) as f64;
        let cap = v["mailbox_capacity"].as_u64().unwrap_or(1).max(1) as f64;
        depth / cap
    };
    list.sort_by(|x, y| fill(y).total_cmp(&fill(x)));
    list.truncate(limit);
    json!({
        "counts": {
            "connections": a.connections.load(Relaxed),
            "publishing_streams": a.publishing_streams.load(Relaxed),
            "publishers": a.publishers.load(Relaxed),
            "subscribers": a.subscribers.load(Relaxed),
            "fanouts": a.fanouts.load(Relaxed),
            "registry": 1,
        },
        "total": total,
        "truncated": total > list.len(),
        "how": HOW,
        "actors": list,
    })
}

/// `GET /api/v1/summary`: the dashboard's header figures.
pub fn summary(stats: &ServerStats, sampler: &Sampler) -> Value {
    let (mut ingest, mut egress) = (0.0, 0.0);
    for e in stats.streams.iter() {
        let r = sampler.rates(e.key());
        ingest += r.ingest_bps;
        egress += r.egress_bps;
    }
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_ms": ms(stats.started.elapsed()),
        "ready": stats.ready.load(Relaxed),
        "connections": stats.connections.len(),
        "streams": stats.streams.len(),
        "subscribers": stats.actors.subscribers.load(Relaxed),
        "ingest_bps": ingest,
        "egress_bps": egress,
        "connections_total": stats.connections_total.load(Relaxed),
        "connections_refused": stats.connections_refused.load(Relaxed),
        "protocol_errors": stats.protocol_errors.load(Relaxed),
    })
}
