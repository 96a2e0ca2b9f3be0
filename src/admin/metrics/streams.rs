//! Per-stream series with a bounded label set: the `cap` streams with the most players (then
//! by name, for stability) get their own `{app, name}` series; everything else, including
//! streams that are gone, is summed into one series labelled [`OTHER`].
//!
//! Monotonic counters across streams coming and going: a stream's own series counts from 0
//! when it first gets one (its bytes from before, while it was summed into `other`, stay
//! there), and ends when it loses it; its later bytes go to `other`. So `other` is the
//! server-wide total minus what was credited to own series, and the sum of all series is the
//! server-wide total: `sum(rate(...))` is the whole server's rate. A stream published again
//! under the same name is a new stream, so its series restarts at 0 (a counter reset, which
//! `rate()` handles).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;

use crate::stats::{DropCounters, ServerStats};

/// The label value (`app` and `name`) of the summed series. `#` is refused in names
/// ([`crate::names`]), so no stream can collide with it.
pub const OTHER: &str = "#other";

/// The counters of one stream: received bytes, sent bytes, then drops by reason.
pub const COUNTERS: usize = 2 + DropCounters::REASONS.len();
pub type Values = [u64; COUNTERS];

/// One stream's series as exported.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub app: String,
    pub name: String,
    pub players: usize,
    pub values: Values,
}

/// A scrape's per-stream series: the streams with their own, then `other` (once anything was
/// ever summed into it, it stays, so its counter never vanishes).
#[derive(Debug, Default)]
pub struct Exported {
    pub own: Vec<Series>,
    pub other: Option<Series>,
}

#[derive(Debug, Default)]
struct State {
    /// Streams (by id) with their own series: the counts at the time they got it (`base`,
    /// reported as 0) and at the last scrape.
    own: HashMap<u64, (Values, Values)>,
    /// Live streams that were summed into `other` at some scrape.
    summed: HashSet<u64>,
    /// What own series were credited in total.
    credited: Values,
    /// `other` as last exported: never goes back, even if a counter is read mid-update.
    other: Values,
    other_shown: bool,
}

/// The per-stream exporter; one per admin server (it keeps state between scrapes).
#[derive(Debug)]
pub struct StreamSeries {
    cap: usize,
    state: Mutex<State>,
}

struct Reading {
    id: u64,
    app: String,
    name: String,
    players: usize,
    values: Values,
}

fn add(to: &mut Values, from: &Values) {
    for (t, f) in to.iter_mut().zip(from) {
        *t = t.saturating_add(*f);
    }
}

fn values(bytes_in: u64, bytes_out: u64, drops: &DropCounters) -> Values {
    let mut v = [0; COUNTERS];
    v[0] = bytes_in;
    v[1] = bytes_out;
    v[2..].copy_from_slice(&drops.values());
    v
}

impl StreamSeries {
    /// At most `cap` streams get their own series.
    pub fn new(cap: usize) -> Self {
        StreamSeries {
            cap,
            state: Mutex::new(State::default()),
        }
    }

    pub fn export(&self, stats: &ServerStats) -> Exported {
        let gone = &stats.gone_streams;
        let mut total = values(
            gone.bytes_in.load(Relaxed),
            gone.bytes_out.load(Relaxed),
            &gone.drops,
        );
        let mut live: Vec<Reading> = stats
            .streams
            .iter()
            .map(|e| {
                let s = e.value();
                Reading {
                    id: s.id,
                    app: s.app.clone(),
                    name: s.name.clone(),
                    players: s.subscribers.len(),
                    values: values(s.bytes_in.load(Relaxed), s.bytes_out(), &s.drops()),
                }
            })
            .collect();
        for r in &live {
            add(&mut total, &r.values);
        }
        live.sort_by(|a, b| {
            b.players
                .cmp(&a.players)
                .then_with(|| (&a.app, &a.name).cmp(&(&b.app, &b.name)))
        });
        let rest = live.split_off(self.cap.min(live.len()));
        let Ok(mut state) = self.state.lock() else {
            return Exported::default();
        };
        let state = &mut *state;
        let mut own = HashMap::with_capacity(live.len());
        let mut out = Exported::default();
        for r in live {
            let (base, last) = match state.own.get(&r.id) {
                Some(&seen) => seen,
                // Summed into `other` before: its bytes so far stay there.
                None if state.summed.contains(&r.id) => (r.values, r.values),
                None => ([0; COUNTERS], [0; COUNTERS]),
            };
            let mut reported = [0; COUNTERS];
            for i in 0..COUNTERS {
                state.credited[i] =
                    state.credited[i].saturating_add(r.values[i].saturating_sub(last[i]));
                reported[i] = r.values[i].saturating_sub(base[i]);
            }
            own.insert(r.id, (base, r.values));
            out.own.push(Series {
                app: r.app,
                name: r.name,
                players: r.players,
                values: reported,
            });
        }
        state.own = own;
        state.summed = rest.iter().map(|r| r.id).collect();
        let mut other = [0; COUNTERS];
        for i in 0..COUNTERS {
            other[i] = total[i]
                .saturating_sub(state.credited[i])
                .max(state.other[i]);
        }
        state.other = other;
        // Shown from the first scrape that sums a stream into it (not for the few bytes a
        // stream sends between its last scrape and its end, which also land there).
        state.other_shown |= !rest.is_empty();
        if state.other_shown {
            out.other = Some(Series {
                app: OTHER.to_owned(),
                name: OTHER.to_owned(),
                players: rest.iter().map(|r| r.players).sum(),
                values: other,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests;
