use std::sync::Arc;

use super::*;

const BUDGETS: Budgets = Budgets {
    disposable: 100,
    video: 200,
    audio: 300,
};

fn frame(kind: FrameKind, class: DropClass, tracks: &[u8], timestamp: u32) -> Arc<Frame> {
    Frame::for_test(kind, class, tracks, timestamp, 4)
}

use DropClass::{Audio, Disposable, Header, Inter, Key};
use FrameKind::{Audio as A, Data as D, Video as V};

/// Offers frames at the given queued bytes; returns what was written, as timestamps, and
/// the verdicts.
fn run(gate: &mut DeliveryGate, frames: &[(Arc<Frame>, usize)]) -> (Vec<u32>, Vec<Verdict>) {
    let mut out = Vec::new();
    let mut verdicts = Vec::new();
    for (f, queued) in frames {
        verdicts.push(gate.offer(f, false, *queued, |w| out.push(w.timestamp)));
    }
    (out, verdicts)
}

fn gate() -> DeliveryGate {
    DeliveryGate::new(BUDGETS, PlayerCaps::default())
}

#[test]
fn a_joiner_waits_for_a_keyframe_and_that_is_not_loss() {
    let mut g = gate();
    let (out, v) = run(
        &mut g,
        &[
            (frame(V, Header, &[0], 1), 0),
            (frame(V, Inter, &[0], 2), 0),
            (frame(A, Audio, &[0], 3), 0),
            (frame(V, Key, &[0], 4), 0),
            (frame(V, Inter, &[0], 5), 0),
        ],
    );
    assert_eq!(out, [1, 3, 4, 5]);
    assert_eq!(v[1], Verdict::Dropped(DropReason::AwaitingKeyframe));
    assert_eq!(g.take_transition(), None);
    assert!(!g.is_losing());
}

#[test]
fn budgets_drop_disposable_then_video_then_audio_but_never_headers() {
    let mut g = gate();
    run(&mut g, &[(frame(V, Key, &[0], 0), 0)]);
    let (out, v) = run(
        &mut g,
        &[
            (frame(V, Disposable, &[0], 10), 150),
            (frame(V, Inter, &[0], 20), 150),
            (frame(V, Inter, &[0], 30), 250),
            (frame(A, Audio, &[0], 40), 250),
            (frame(V, Inter, &[0], 50), 0),
            (frame(A, Audio, &[0], 60), 350),
            (frame(D, DropClass::Data, &[0], 65), 350),
            (frame(V, Header, &[0], 70), 10_000),
            (frame(A, Header, &[0], 80), 10_000),
        ],
    );
    assert_eq!(out, [20, 40, 70, 80]);
    assert_eq!(
        v,
        [
            Verdict::Dropped(DropReason::Disposable),
            Verdict::Written,
            Verdict::Dropped(DropReason::Video),
            Verdict::Written,
            Verdict::Dropped(DropReason::AwaitingKeyframe),
            Verdict::Dropped(DropReason::Audio),
            Verdict::Dropped(DropReason::Audio),
            Verdict::Written,
            Verdict::Written,
        ]
    );
    assert_eq!(
        g.take_transition(),
        Some(Lossy::Started(DropReason::Disposable))
    );
}

#[test]
fn a_resync_resends_the_headers_a_cut_off_track_may_lack_before_its_keyframe() {
    let mut g = gate();
    let (out, _) = run(
        &mut g,
        &[
            (frame(V, Header, &[0], 1), 0),
            (frame(V, Key, &[0], 2), 0),
            (frame(V, Inter, &[0], 3), 500), // over the video budget: cut off
            (frame(V, Inter, &[0], 4), 0),   // waits
            (frame(V, Key, &[0], 5), 0),     // headers again, then the keyframe
        ],
    );
    assert_eq!(out, [1, 2, 1, 5]);
}

#[test]
fn a_keyframe_over_the_video_budget_does_not_resync() {
    let mut g = gate();
    let (out, v) = run(
        &mut g,
        &[(frame(V, Key, &[0], 1), 200), (frame(V, Key, &[0], 2), 199)],
    );
    assert_eq!(out, [2]);
    assert_eq!(v[0], Verdict::Dropped(DropReason::AwaitingKeyframe));
}

#[test]
fn a_gap_before_a_frame_makes_video_wait_for_its_keyframe() {
    let mut g = gate();
    run(&mut g, &[(frame(V, Key, &[0], 1), 0)]);
    let mut out = Vec::new();
    let v = g.offer(&frame(V, Inter, &[0], 2), true, 0, |f| {
        out.push(f.timestamp)
    });
    assert_eq!(v, Verdict::Dropped(DropReason::AwaitingKeyframe));
    let a = g.offer(&frame(A, Audio, &[0], 3), true, 0, |f| {
        out.push(f.timestamp)
    });
    assert_eq!(a, Verdict::Written, "audio is not held back by a gap");
    assert_eq!(out, [3]);
}

#[test]
fn one_tracks_loss_does_not_hold_back_another() {
    let mut g = gate();
    let (out, _) = run(
        &mut g,
        &[
            (frame(V, Key, &[0], 1), 0),
            (frame(V, Key, &[1], 2), 0),
            (frame(V, Inter, &[1], 3), 250), // track 1 cut off
            (frame(V, Inter, &[0], 4), 0),   // track 0 carries on
            (frame(V, Inter, &[1], 5), 0),   // track 1 waits
            (frame(V, Key, &[1], 6), 0),
        ],
    );
    assert_eq!(out, [1, 2, 4, 6]);
}

#[test]
fn recovery_is_reported_after_five_seconds_of_media_without_a_drop() {
    let mut g = gate();
    run(&mut g, &[(frame(A, Audio, &[0], 0), 0)]);
    run(&mut g, &[(frame(A, Audio, &[0], 1000), 400)]);
    assert_eq!(g.take_transition(), Some(Lossy::Started(DropReason::Audio)));
    run(&mut g, &[(frame(A, Audio, &[0], 1500), 400)]);
    assert_eq!(g.take_transition(), None, "still losing: no new line");
    run(&mut g, &[(frame(A, Audio, &[0], 6000), 0)]);
    assert_eq!(g.take_transition(), None, "4.5 s is not enough");
    run(&mut g, &[(frame(A, Audio, &[0], 6500), 0)]);
    assert_eq!(
        g.take_transition(),
        Some(Lossy::Recovered {
            dropped: 2,
            lost_ms: 500
        })
    );
    assert!(!g.is_losing());
}

#[test]
fn an_enhanced_stream_is_refused_once_to_a_legacy_player_and_forwarded_when_asked() {
    let enhanced = |kind, class, ts| {
        let f = frame(kind, class, &[0], ts);
        let mut f = Arc::try_unwrap(f).expect("unique");
        f.enhanced = true;
        Arc::new(f)
    };
    let mut g = gate();
    let (out, v) = run(
        &mut g,
        &[
            (enhanced(V, Header, 1), 0),
            (enhanced(V, Key, 2), 0),
            (frame(D, DropClass::Data, &[0], 3), 0),
        ],
    );
    assert_eq!(v[..2], [Verdict::Refuse, Verdict::Skipped]);
    assert_eq!(out, [3], "data still goes");
    let mut g = DeliveryGate::new(BUDGETS, PlayerCaps::any());
    let (out, _) = run(
        &mut g,
        &[(enhanced(V, Header, 1), 0), (enhanced(V, Key, 2), 0)],
    );
    assert_eq!(out, [1, 2]);
}

#[test]
fn unpause_resends_metadata_and_audio_headers_and_waits_for_a_keyframe() {
    let mut g = gate();
    run(
        &mut g,
        &[
            (frame(D, Header, &[0], 1), 0),
            (frame(A, Header, &[0], 2), 0),
            (frame(V, Header, &[0], 3), 0),
            (frame(V, Key, &[0], 4), 0),
        ],
    );
    g.pause();
    let (out, _) = run(
        &mut g,
        &[
            (frame(A, Audio, &[0], 5), 0),
            (frame(V, Header, &[0], 6), 0),
        ],
    );
    assert!(out.is_empty(), "nothing while paused");
    let mut resent = Vec::new();
    g.unpause(|f| resent.push(f.timestamp));
    assert_eq!(resent, [1, 2]);
    let (out, _) = run(
        &mut g,
        &[(frame(V, Inter, &[0], 7), 0), (frame(V, Key, &[0], 8), 0)],
    );
    assert_eq!(
        out,
        [6, 8],
        "the video header skipped while paused goes first"
    );
}
