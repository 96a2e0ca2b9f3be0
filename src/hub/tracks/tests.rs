use super::*;
use crate::hub::DropClass;

fn tracks(ids: &[u8]) -> TrackSet {
    ids.iter().copied().collect()
}

fn frame(kind: FrameKind, class: DropClass, ids: &[u8], timestamp: u32) -> Arc<Frame> {
    Frame::for_test(kind, class, ids, timestamp, 10)
}

fn header(kind: FrameKind, role: HeaderRole, ids: &[u8], tag: u32) -> Arc<Frame> {
    let mut f = Arc::try_unwrap(frame(kind, DropClass::Header, ids, tag)).unwrap();
    f.role = Some(role);
    Arc::new(f)
}

fn key(ids: &[u8], ts: u32) -> Arc<Frame> {
    frame(FrameKind::Video, DropClass::Key, ids, ts)
}

fn inter(ids: &[u8], ts: u32) -> Arc<Frame> {
    frame(FrameKind::Video, DropClass::Inter, ids, ts)
}

fn audio(ts: u32) -> Arc<Frame> {
    frame(FrameKind::Audio, DropClass::Audio, &[0], ts)
}

/// (kind initial, tracks, timestamp) of each frame, for compact assertions.
fn shape<'a>(frames: impl Iterator<Item = &'a Arc<Frame>>) -> Vec<(char, Vec<u8>, u32)> {
    frames
        .map(|f| {
            let c = match (f.kind, f.class) {
                (FrameKind::Audio, _) => 'a',
                (_, DropClass::Key) => 'K',
                _ => 'i',
            };
            (c, f.tracks.iter().collect(), f.timestamp)
        })
        .collect()
}

#[test]
fn track_set_covers_every_id() {
    let set = tracks(&[0, 63, 64, 255]);
    assert!(set.contains(0) && set.contains(63) && set.contains(64) && set.contains(255));
    assert!(!set.contains(1) && !set.contains(128));
    assert_eq!(set.iter().collect::<Vec<_>>(), vec![0, 63, 64, 255]);
    assert!(tracks(&[64]).is_subset(set));
    assert!(!tracks(&[1, 64]).is_subset(set));
    assert!(tracks(&[1, 64]).intersects(set));
    assert!(TrackSet::EMPTY.is_subset(set));
    assert_eq!(TrackSet::ALL.iter().count(), 256);
    assert_eq!(format!("{:?}", tracks(&[1, 200])), "{1, 200}");
}

/// ffmpeg 9 sends Opus (and FLAC, AC-3, E-AC-3) as SequenceStart then MultichannelConfig on
/// track 0: both must stay cached, in that order.
#[test]
fn multichannel_config_does_not_evict_the_sequence_start() {
    let mut cache = HeaderCache::default();
    let start = header(FrameKind::Audio, HeaderRole::SequenceStart, &[0], 1);
    let config = header(FrameKind::Audio, HeaderRole::MultichannelConfig, &[0], 2);
    cache.remember(&start);
    cache.remember(&config);
    let got: Vec<u32> = cache.of(FrameKind::Audio).map(|h| h.timestamp).collect();
    assert_eq!(got, vec![1, 2]);
    // A new SequenceStart replaces the old one in place, ahead of the config.
    cache.remember(&header(
        FrameKind::Audio,
        HeaderRole::SequenceStart,
        &[0],
        3,
    ));
    let got: Vec<u32> = cache.of(FrameKind::Audio).map(|h| h.timestamp).collect();
    assert_eq!(got, vec![3, 2]);
}

#[test]
fn headers_are_kept_per_track_and_role() {
    let mut cache = HeaderCache::default();
    cache.remember(&header(
        FrameKind::Video,
        HeaderRole::SequenceStart,
        &[0],
        1,
    ));
    cache.remember(&header(
        FrameKind::Video,
        HeaderRole::SequenceStart,
        &[1],
        2,
    ));
    cache.remember(&header(
        FrameKind::Video,
        HeaderRole::VideoMetadata,
        &[0],
        3,
    ));
    cache.remember(&header(
        FrameKind::Audio,
        HeaderRole::SequenceStart,
        &[0],
        4,
    ));
    cache.remember(&header(
        FrameKind::Audio,
        HeaderRole::SequenceStart,
        &[1],
        5,
    ));
    let ts = |c: &HeaderCache, kind| c.of(kind).map(|h| h.timestamp).collect::<Vec<_>>();
    assert_eq!(ts(&cache, FrameKind::Video), vec![1, 2, 3]);
    assert_eq!(ts(&cache, FrameKind::Audio), vec![4, 5]);
    let of_1: Vec<u32> = cache
        .of_tracks(FrameKind::Video, tracks(&[1]))
        .map(|h| h.timestamp)
        .collect();
    assert_eq!(of_1, vec![2]);
    // One message configuring tracks 0 and 1 replaces both, where the first one was.
    cache.remember(&header(
        FrameKind::Video,
        HeaderRole::SequenceStart,
        &[0, 1],
        6,
    ));
    assert_eq!(ts(&cache, FrameKind::Video), vec![6, 3]);
    // Then track 1 alone again: the {0, 1} header stays (it is track 0's latest), and
    // replaying in order gives track 1 its newest.
    cache.remember(&header(
        FrameKind::Video,
        HeaderRole::SequenceStart,
        &[1],
        7,
    ));
    assert_eq!(ts(&cache, FrameKind::Video), vec![6, 3, 7]);
}

#[test]
fn single_track_gop_starts_at_the_latest_keyframe() {
    let mut gop = GopCache::default();
    gop.push(&inter(&[0], 0), 1000, 10_000);
    gop.push(&audio(1), 1000, 10_000);
    assert!(gop.is_empty(), "nothing before the first keyframe");
    for (i, ts) in [10, 20, 30].into_iter().enumerate() {
        gop.push(&key(&[0], ts * 10), 1000, 10_000);
        gop.push(&audio(ts * 10 + 1), 1000, 10_000);
        gop.push(&inter(&[0], ts * 10 + 2), 1000, 10_000);
        assert_eq!(gop.len(), 3, "GOP {i}");
    }
    assert_eq!(
        shape(gop.burst()),
        vec![
            ('K', vec![0], 300),
            ('a', vec![0], 301),
            ('i', vec![0], 302)
        ]
    );
    assert_eq!(gop.bytes(), 30);
}

#[test]
fn gop_bounds_empty_it_until_the_next_keyframe() {
    let mut gop = GopCache::default();
    gop.push(&key(&[0], 0), 35, 10_000);
    gop.push(&inter(&[0], 1), 35, 10_000);
    gop.push(&inter(&[0], 2), 35, 10_000);
    gop.push(&inter(&[0], 3), 35, 10_000);
    assert!(gop.is_empty(), "over 35 bytes");
    gop.push(&inter(&[0], 4), 35, 10_000);
    assert!(gop.is_empty());
    gop.push(&key(&[0], 5), 35, 10_000);
    assert_eq!(gop.len(), 1);

    let mut gop = GopCache::default();
    gop.push(&key(&[0], 0), 1000, 100);
    gop.push(&inter(&[0], 100), 1000, 100);
    gop.push(&inter(&[0], 101), 1000, 100);
    assert!(gop.is_empty(), "over 100 ms");
    // A keyframe that itself breaks the bound starts a new GOP.
    let mut gop = GopCache::default();
    gop.push(&key(&[0], 0), 1000, 100);
    gop.push(&key(&[7], 150), 1000, 100);
    assert_eq!(shape(gop.burst()), vec![('K', vec![7], 150)]);
    // One bigger than the byte bound is not kept.
    let mut gop = GopCache::default();
    gop.push(
        &Frame::for_test(FrameKind::Video, DropClass::Key, &[0], 0, 50),
        35,
        100,
    );
    assert!(gop.is_empty());
}

/// ffmpeg 9's two-track layout: track 1's keyframe follows track 0's. The cache must keep
/// track 0's keyframe, and a joiner must get each track from its own keyframe.
#[test]
fn two_tracks_each_start_at_their_own_keyframe() {
    let mut gop = GopCache::default();
    let push = |gop: &mut GopCache, f: Arc<Frame>| gop.push(&f, 100_000, 10_000);
    // GOP 1, then GOP 2 with track 1's keyframe two frames after track 0's.
    push(&mut gop, key(&[0], 0));
    push(&mut gop, key(&[1], 0));
    push(&mut gop, inter(&[0], 40));
    push(&mut gop, inter(&[1], 40));
    push(&mut gop, key(&[0], 80));
    push(&mut gop, audio(81));
    push(&mut gop, inter(&[1], 80));
    push(&mut gop, inter(&[0], 120));
    push(&mut gop, key(&[1], 120));
    push(&mut gop, inter(&[0], 160));
    push(&mut gop, inter(&[1], 160));
    assert_eq!(
        shape(gop.burst()),
        vec![
            ('K', vec![0], 80),
            ('a', vec![0], 81),
            // track 1's inter frame at 80 belongs to a GOP whose start is gone
            ('i', vec![0], 120),
            ('K', vec![1], 120),
            ('i', vec![0], 160),
            ('i', vec![1], 160),
        ]
    );
    assert_eq!(gop.len(), 7, "the cache starts at track 0's keyframe");
}

/// A track that stops sending keyframes cannot make the cache grow past its bounds; once
/// emptied, it restarts at whichever track's keyframe comes next.
#[test]
fn a_stalled_track_is_bounded() {
    let mut gop = GopCache::default();
    gop.push(&key(&[1], 0), 1000, 500);
    for ts in (0..=1000).step_by(100) {
        gop.push(&key(&[0], ts), 1000, 500);
        gop.push(&inter(&[0], ts + 50), 1000, 500);
    }
    let burst = shape(gop.burst());
    assert!(burst.len() <= 12, "{burst:?}");
    assert_eq!(burst[0].0, 'K');
    assert!(burst.iter().all(|(_, t, _)| *t == vec![0]), "{burst:?}");
}

#[test]
fn gate_resyncs_each_track_on_its_own() {
    let mut gate = VideoGate::default();
    let t0 = tracks(&[0]);
    let t1 = tracks(&[1]);
    // A joiner: nothing synced, nothing stale (the burst carried the headers), even when
    // inter frames come before the first keyframe.
    assert!(!gate.admits(t0));
    gate.desync(t0);
    assert!(gate.resync(t0).is_empty());
    assert!(gate.admits(t0) && !gate.admits(t1));
    assert!(gate.resync(t1).is_empty());
    // Track 0 loses a frame: it waits, track 1 carries on.
    gate.desync(t0);
    assert!(!gate.admits(t0) && gate.admits(t1));
    assert!(!gate.admits(tracks(&[0, 1])));
    assert_eq!(gate.resync(t0), t0, "headers resent after a drop");
    assert!(gate.admits(t0));
    // A header that arrives while the player is paused is due; one written is not.
    gate.headers_skipped(t1);
    gate.desync_all();
    gate.headers_sent(t0);
    assert!(gate.resync(t0).is_empty());
    assert_eq!(gate.resync(t1), t1);
    assert!(gate.admits(tracks(&[0, 1])));
}
