//! Validates the real-client harness (`tests/common`) against nginx-rtmp, the
//! reference live server: if these pass, a failure of the same scenario against
//! the reflector is the reflector's fault, not the harness's.
//!
//! Not part of the normal suite (they need nginx + libnginx-mod-rtmp and take
//! ~12 s each in real time). Run with:
//! `cargo test --test harness_nginx -- --ignored --nocapture`
//!
//! Timing: the clip lasts 8 s and is published in real time. Players join
//! `JOIN_DELAY` after the publisher, so they start at the next keyframe (clip
//! frame 25 or 50), and record `RECORD` (4 s, ~100 frames), which ends before
//! the publisher does.

mod common;

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
