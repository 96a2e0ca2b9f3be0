//! Validates the real-client harness (`tests/common`) against nginx-rtmp, the
//! reference live server: if these pass, a failure of the same scenario against
//! the reflector is the reflector's fault, not the harness's.
//!
//! Not part of the normal suite (they need nginx + libnginx-mod-rtmp and take
//! ~12 s each in real time). Run with:
//! `cargo test --test suite harness_nginx:: -- --ignored --nocapture`
//!
//! Timing: the clip lasts 8 s and is published in real time. Players join
//! `JOIN_DELAY` after the publisher, so they start at the next keyframe (clip
//! frame 25 or 50), and record `RECORD` (4 s, ~100 frames), which ends before
//! the publisher does.

use crate::common;

use common::{play, publish, shared_clip, verify_recording, Player, Publisher, Server};
use std::thread::sleep;
use std::time::Duration;

const JOIN_DELAY: Duration = Duration::from_millis(1500);
const RECORD: Duration = Duration::from_secs(4);
/// Frames a 4 s recording must at least contain (100 expected; allow for the
/// wait for the first keyframe and player start-up).
const MIN_FRAMES: usize = 50;
/// Publishing the whole 8 s clip, from its start.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(20);

fn publisher_to_ffmpeg_player(kind: Publisher) {
    let server = Server::nginx_rtmp();
    let clip = shared_clip();
    let url = server.rtmp_url("live", "stream");
    let mut publisher = publish(kind, clip, &url, server.dir());
    sleep(JOIN_DELAY);
    let rec = play(Player::Ffmpeg, &url, server.dir(), RECORD).finish();
    let verdict = verify_recording(&rec, clip);
    eprintln!("{} -> ffmpeg-play: {verdict}", kind.name());
    if !verdict.is_ok() {
        eprintln!("--- nginx log tail ---\n{}", server.log_tail(30));
    }
    verdict.assert_ok_with_at_least(MIN_FRAMES);
    // The publisher must also get through the whole clip without an error.
    publisher.wait_success(PUBLISH_TIMEOUT);
}

#[test]
#[ignore = "needs nginx-rtmp and real clients; ~12 s; run with --ignored"]
fn nginx_ffmpeg_publish_ffmpeg_play() {
    skip_unless_have!("nginx", "ffmpeg", "ffprobe");
    publisher_to_ffmpeg_player(Publisher::Ffmpeg);
}

#[test]
#[ignore = "needs nginx-rtmp and real clients; ~12 s; run with --ignored"]
fn nginx_rtmp2sink_publish_ffmpeg_play() {
    skip_unless_have!("nginx", "ffmpeg", "ffprobe", "gst-launch-1.0");
    publisher_to_ffmpeg_player(Publisher::GstRtmp2);
}

#[test]
#[ignore = "needs nginx-rtmp and real clients; ~12 s; run with --ignored"]
fn nginx_librtmp_publish_ffmpeg_play() {
    skip_unless_have!("nginx", "ffmpeg", "ffprobe", "gst-launch-1.0");
    publisher_to_ffmpeg_player(Publisher::GstLibrtmp);
}

/// One publisher, three different players at once: each must independently get
/// a frame-exact run starting at a keyframe.
#[test]
#[ignore = "needs nginx-rtmp and real clients; ~12 s; run with --ignored"]
fn nginx_ffmpeg_publish_three_players() {
    skip_unless_have!("nginx", "ffmpeg", "ffprobe", "gst-launch-1.0", "rtmpdump");
    let server = Server::nginx_rtmp();
    let clip = shared_clip();
    let url = server.rtmp_url("live", "stream");
    let mut publisher = publish(Publisher::Ffmpeg, clip, &url, server.dir());
    sleep(JOIN_DELAY);
    let recordings: Vec<_> = Player::ALL
        .iter()
        .map(|&p| play(p, &url, server.dir(), RECORD))
        .collect();
    let mut failures = Vec::new();
    for recording in recordings {
        let kind = recording.kind();
        let rec = recording.finish();
        let verdict = verify_recording(&rec, clip);
        eprintln!("ffmpeg-publish -> {}: {verdict}", kind.name());
        if !verdict.is_ok() || verdict.frame_count < MIN_FRAMES {
            failures.push(format!("{}: {verdict}", kind.name()));
        }
    }
    assert!(
        failures.is_empty(),
        "players failed:\n{}\n--- nginx log ---\n{}",
        failures.join("\n"),
        server.log_tail(30)
    );
    publisher.wait_success(PUBLISH_TIMEOUT);
}

/// The verifier itself (no server): the clip is a frame-exact run of itself,
/// and dropping one video packet is reported. Cheap, so not ignored.
#[test]
fn harness_verifier_accepts_clip_and_rejects_dropped_frame() {
    skip_unless_have!("ffmpeg", "ffprobe");
    let clip = shared_clip();
    let whole = verify_recording(clip.path(), clip);
    whole.assert_ok_with_at_least(clip.frame_md5s().len());
    assert_eq!(
        (whole.first_index, whole.matched),
        (Some(0), clip.frame_md5s().len())
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let damaged = dir.path().join("dropped.flv");
    let status = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(clip.path())
        .args([
            "-c",
            "copy",
            "-bsf:v",
            "noise=drop=eq(n\\,60)",
            "-f",
            "flv",
            "-y",
        ])
        .arg(&damaged)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not write the damaged copy");
    let verdict = verify_recording(&damaged, clip);
    assert!(
        !verdict.is_ok(),
        "a dropped video packet went unnoticed:\n{verdict}"
    );
    eprintln!("damaged copy, as expected: {verdict}");
}
