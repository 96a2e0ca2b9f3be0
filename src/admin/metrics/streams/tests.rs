use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::*;
use crate::stats::{ConnectionStats, ServerStats, StreamStats, SubscriberStats};

fn stream(stats: &ServerStats, name: &str, bytes_in: u64, players: u64) -> Arc<StreamStats> {
    let s = Arc::new(StreamStats::new("live", name));
    s.bytes_in.store(bytes_in, Relaxed);
    for p in 0..players {
        let conn = Arc::new(ConnectionStats::new(
            p,
            "127.0.0.1:5000".parse().unwrap(),
            0,
        ));
        let sub = Arc::new(SubscriberStats::new(conn, 1, 8));
        sub.bytes_sent.store(10, Relaxed);
        s.subscribers.insert((p, 1), sub);
    }
    stats.streams.insert(format!("live/{name}"), s.clone());
    s
}

fn by_name(e: &Exported) -> Vec<(String, usize, u64, u64)> {
    e.own
        .iter()
        .chain(e.other.iter())
        .map(|s| (s.name.clone(), s.players, s.values[0], s.values[1]))
        .collect()
}

#[test]
fn the_most_watched_streams_get_their_own_series_the_rest_is_summed() {
    let stats = ServerStats::default();
    stream(&stats, "b", 100, 2);
    stream(&stats, "a", 200, 2);
    stream(&stats, "c", 300, 1);
    stream(&stats, "d", 400, 0);
    let series = StreamSeries::new(2);
    let e = series.export(&stats);
    // Ties broken by name: a before b.
    assert_eq!(
        by_name(&e),
        vec![
            ("a".into(), 2, 200, 20),
            ("b".into(), 2, 100, 20),
            (OTHER.into(), 1, 700, 10),
        ]
    );
    // Nothing summed yet: no `other` series.
    let e = StreamSeries::new(10).export(&stats);
    assert_eq!(e.own.len(), 4);
    assert!(e.other.is_none());
    // Cap 0: everything in `other`.
    let e = StreamSeries::new(0).export(&stats);
    assert_eq!(by_name(&e), vec![(OTHER.into(), 5, 1000, 50)]);
}

#[test]
fn counters_stay_monotonic_as_streams_move_and_go() {
    let stats = ServerStats::default();
    let a = stream(&stats, "a", 100, 1);
    let b = stream(&stats, "b", 50, 0);
    let series = StreamSeries::new(1);
    let e = series.export(&stats);
    assert_eq!(
        by_name(&e),
        vec![("a".into(), 1, 100, 10), (OTHER.into(), 0, 50, 0)]
    );

    // b gains players and takes a's place: b's own series starts at 0, its 50 bytes stay in
    // other; a's later bytes go to other.
    b.bytes_in.store(80, Relaxed);
    a.bytes_in.store(130, Relaxed);
    a.subscriber_gone(&(0, 1), &stats);
    let conn = Arc::new(ConnectionStats::new(
        9,
        "127.0.0.1:5000".parse().unwrap(),
        0,
    ));
    b.subscribers
        .insert((9, 1), Arc::new(SubscriberStats::new(conn, 1, 8)));
    let e = series.export(&stats);
    // other = total 210 - credited (a: 100, b: 0) = 110 (was 50); a's egress was credited.
    assert_eq!(
        by_name(&e),
        vec![("b".into(), 1, 0, 0), (OTHER.into(), 0, 110, 0)]
    );

    // b goes (its totals move to gone_streams) after 20 more bytes: they land in other.
    b.bytes_in.store(100, Relaxed);
    let e = series.export(&stats);
    assert_eq!(e.own[0].values[0], 20);
    stats.remove_stream("live/b");
    a.bytes_in.store(140, Relaxed);
    let e = series.export(&stats);
    // total = gone 100 + a 140 = 240; credited = 100 + 20 = 120.
    assert_eq!(
        by_name(&e),
        vec![("a".into(), 0, 0, 0), (OTHER.into(), 0, 120, 0)]
    );
    // The sum of every series' increase equals the server's.
    let e2 = {
        a.bytes_in.store(190, Relaxed);
        series.export(&stats)
    };
    assert_eq!(
        e2.own[0].values[0] + e2.other.as_ref().unwrap().values[0],
        50 + 120
    );
}

#[test]
fn a_drop_in_a_counter_never_shows_in_other() {
    let stats = ServerStats::default();
    let a = stream(&stats, "a", 100, 0);
    let series = StreamSeries::new(0);
    assert_eq!(series.export(&stats).other.unwrap().values[0], 100);
    // Read mid-update (a stream moving to gone_streams): other holds its last value.
    stats.streams.clear();
    assert_eq!(series.export(&stats).other.unwrap().values[0], 100);
    drop(a);
}

#[test]
fn drops_by_reason_include_gone_players() {
    let stats = ServerStats::default();
    let a = stream(&stats, "a", 0, 2);
    a.subscribers
        .get(&(0, 1))
        .unwrap()
        .drops
        .video
        .store(3, Relaxed);
    a.subscribers
        .get(&(1, 1))
        .unwrap()
        .drops
        .mailbox_full
        .store(4, Relaxed);
    a.subscriber_gone(&(1, 1), &stats);
    let e = StreamSeries::new(5).export(&stats);
    let v = e.own[0].values;
    let reasons: Vec<(&str, u64)> = DropCounters::REASONS
        .iter()
        .copied()
        .zip(v[2..].iter().copied())
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("mailbox_full", 4),
            ("disposable", 0),
            ("video", 3),
            ("audio", 0),
            ("awaiting_keyframe", 0)
        ]
    );
    assert_eq!(v[1], 20, "egress of the gone player kept");
}
