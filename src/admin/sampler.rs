//! Once a second the admin side samples each stream's byte and frame counters; rates are
//! the difference over a sliding window, and the samples are the dashboard chart's history.
//! Only counters are read, so sampling never touches a media actor.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::stats::ServerStats;

/// One reading of a stream's counters.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Milliseconds since the Unix epoch.
    wall_ms: u64,
    bytes_in: u64,
    bytes_out: u64,
    video_frames: u64,
    keyframes: u64,
    subscribers: usize,
    fanout_messages: u64,
    cross_thread_messages: u64,
}

/// Rates of one stream over the sliding window.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Rates {
    /// Ingest payload bitrate, bits per second.
    pub ingest_bps: f64,
    /// Egress bitrate to all players (chunked bytes), bits per second.
    pub egress_bps: f64,
    /// Video frames per second.
    pub fps: f64,
    /// Seconds between keyframes (0 when fewer than two keyframes fell in the window).
    pub keyframe_interval_s: f64,
    /// Frame messages from the publisher to its edges (one per arbiter with players and per
    /// push relay), per second.
    pub fanout_messages_per_s: f64,
    /// Those of them that crossed to another thread, per second.
    pub cross_thread_messages_per_s: f64,
}

/// One point of the dashboard chart.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Point {
    /// Milliseconds since the Unix epoch.
    pub t: u64,
    pub ingest_bps: f64,
    pub egress_bps: f64,
    pub subscribers: usize,
}

/// Keeps per-stream counter samples for rates and history.
#[derive(Debug)]
pub struct Sampler {
    series: Mutex<HashMap<String, VecDeque<Sample>>>,
    history: usize,
    window: usize,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn rates_between(a: &Sample, b: &Sample) -> Rates {
    let dt = b.wall_ms.saturating_sub(a.wall_ms) as f64 / 1000.0;
    if dt <= 0.0 {
        return Rates::default();
    }
    let keyframes = b.keyframes.saturating_sub(a.keyframes);
    let frames = b.video_frames.saturating_sub(a.video_frames) as f64;
    Rates {
        ingest_bps: b.bytes_in.saturating_sub(a.bytes_in) as f64 * 8.0 / dt,
        egress_bps: b.bytes_out.saturating_sub(a.bytes_out) as f64 * 8.0 / dt,
        fps: frames / dt,
        fanout_messages_per_s: b.fanout_messages.saturating_sub(a.fanout_messages) as f64 / dt,
        cross_thread_messages_per_s: b
            .cross_thread_messages
            .saturating_sub(a.cross_thread_messages) as f64
            / dt,
        keyframe_interval_s: if keyframes >= 2 {
            dt / keyframes as f64
        } else {
            0.0
        },
    }
}

impl Sampler {
    /// Keep `history` seconds of samples; average rates over `window` seconds.
    pub fn new(history: usize, window: usize) -> Self {
        Sampler {
            series: Mutex::new(HashMap::new()),
            history: history.max(2),
            window: window.max(1),
        }
    }

    /// Read every stream's counters once (call once a second).
    pub fn sample(&self, stats: &ServerStats) {
        let now = unix_ms();
        let Ok(mut series) = self.series.lock() else {
            return;
        };
        series.retain(|key, _| stats.streams.contains_key(key));
        for entry in stats.streams.iter() {
            let s = entry.value();
            let sample = Sample {
                wall_ms: now,
                bytes_in: s.bytes_in.load(Relaxed),
                bytes_out: s.bytes_out(),
                video_frames: s.video_frames.load(Relaxed),
                keyframes: s.keyframes.load(Relaxed),
                subscribers: s.subscribers.len(),
                fanout_messages: s.fanout_messages.load(Relaxed),
                cross_thread_messages: s.cross_thread_messages.load(Relaxed),
            };
            let ring = series.entry(entry.key().clone()).or_default();
            if ring.len() >= self.history {
                ring.pop_front();
            }
            ring.push_back(sample);
        }
    }

    /// Rates of `key` over the window ending at the latest sample.
    pub fn rates(&self, key: &str) -> Rates {
        let Ok(series) = self.series.lock() else {
            return Rates::default();
        };
        let Some(ring) = series.get(key) else {
            return Rates::default();
        };
        match (ring.len().checked_sub(1), ring.back()) {
            (Some(last), Some(b)) if last > 0 => {
                let first = last.saturating_sub(self.window);
                ring.get(first)
                    .map_or_else(Rates::default, |a| rates_between(a, b))
            }
            _ => Rates::default(),
        }
    }

    /// The chart history of `key`: one point per sample, each rate averaged over the window.
    pub fn history(&self, key: &str, max_points: usize) -> Vec<Point> {
        let Ok(series) = self.series.lock() else {
            return Vec::new();
        };
        let Some(ring) = series.get(key) else {
            return Vec::new();
        };
        let start = ring.len().saturating_sub(max_points);
        (start..ring.len())
            .filter_map(|i| {
                let b = ring.get(i)?;
                let a = ring.get(i.saturating_sub(self.window))?;
                let r = rates_between(a, b);
                Some(Point {
                    t: b.wall_ms,
                    ingest_bps: r.ingest_bps,
                    egress_bps: r.egress_bps,
                    subscribers: b.subscribers,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::StreamStats;
    use std::sync::Arc;

    #[test]
    fn rates_come_from_counter_deltas() {
        let stats = ServerStats::default();
        let stream = Arc::new(StreamStats::new("live", "cam"));
        stats.streams.insert("live/cam".into(), stream.clone());
        let sampler = Sampler::new(10, 5);
        sampler.sample(&stats);
        assert_eq!(sampler.rates("live/cam").ingest_bps, 0.0);
        // Fake a second of ingest by editing the stored sample's time.
        stream.bytes_in.store(125_000, Relaxed);
        stream.video_frames.store(25, Relaxed);
        sampler.sample(&stats);
        {
            let mut series = sampler.series.lock().unwrap();
            let ring = series.get_mut("live/cam").unwrap();
            ring[0].wall_ms = ring[1].wall_ms - 1000;
        }
        let r = sampler.rates("live/cam");
        assert!((r.ingest_bps - 1_000_000.0).abs() < 1.0, "{r:?}");
        assert!((r.fps - 25.0).abs() < 0.01, "{r:?}");
        assert_eq!(sampler.history("live/cam", 100).len(), 2);
        stats.streams.remove("live/cam");
        sampler.sample(&stats);
        assert!(sampler.history("live/cam", 100).is_empty());
    }

    #[test]
    fn history_is_bounded() {
        let stats = ServerStats::default();
        stats
            .streams
            .insert("a/b".into(), Arc::new(StreamStats::new("a", "b")));
        let sampler = Sampler::new(3, 1);
        for _ in 0..10 {
            sampler.sample(&stats);
        }
        assert_eq!(sampler.history("a/b", 100).len(), 3);
    }
}
