//! The live reflector with real clients: ffmpeg, GStreamer (rtmp2 and librtmp) and rtmpdump
//! publish and play through the `reflector` binary; recordings must decode, carry audio and
//! video at the published resolution, and their decoded frames must be an exact contiguous
//! run of the source clip's frames starting at a keyframe (tests/common/verify.rs).
//!
//! Every server here runs two arbiters, so publisher and players land on different ones
//! (connections are spread round-robin).

use crate::common;

use common::{play, publish, shared_clip, verify_recording, Player, Publisher, Server};
use std::thread::sleep;
use std::time::Duration;

const JOIN_DELAY: Duration = Duration::from_millis(1500);
const RECORD: Duration = Duration::from_secs(4);
const MIN_FRAMES: usize = 50;
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(20);

fn reflector() -> Server {
    Server::reflector(&["--workers", "2"])
}

fn publisher_to_ffmpeg_player(kind: Publisher) {
    let server = reflector();
    let clip = shared_clip();
    let url = server.rtmp_url("live", "stream");
    let mut publisher = publish(kind, clip, &url, server.dir());
    sleep(JOIN_DELAY);
    let rec = play(Player::Ffmpeg, &url, server.dir(), RECORD).finish();
    let verdict = verify_recording(&rec, clip);
    eprintln!("{} -> ffmpeg-play: {verdict}", kind.name());
    if !verdict.is_ok() {
        eprintln!("--- reflector log tail ---\n{}", server.log_tail(40));
    }
    verdict.assert_ok_with_at_least(MIN_FRAMES);
    publisher.wait_success(PUBLISH_TIMEOUT);
}

#[test]
fn ffmpeg_publish_ffmpeg_play() {
    skip_unless_have!("ffmpeg", "ffprobe");
    publisher_to_ffmpeg_player(Publisher::Ffmpeg);
}

#[test]
fn gstreamer_rtmp2sink_publish_ffmpeg_play() {
    skip_unless_have!("ffmpeg", "ffprobe", "gst-launch-1.0");
    publisher_to_ffmpeg_player(Publisher::GstRtmp2);
}

#[test]
fn librtmp_rtmpsink_publish_ffmpeg_play() {
    skip_unless_have!("ffmpeg", "ffprobe", "gst-launch-1.0");
    publisher_to_ffmpeg_player(Publisher::GstLibrtmp);
}

/// One publisher, three players of different kinds at once (ffmpeg, GStreamer rtmp2src,
/// rtmpdump), spread over both arbiters; each verified frame-exact.
#[test]
fn one_publisher_three_kinds_of_players() {
    skip_unless_have!("ffmpeg", "ffprobe", "gst-launch-1.0", "rtmpdump");
    let server = reflector();
    let clip = shared_clip();
    let url = server.rtmp_url("live", "three");
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
        "players failed:\n{}\n--- reflector log ---\n{}",
        failures.join("\n"),
        server.log_tail(40)
    );
    publisher.wait_success(PUBLISH_TIMEOUT);
}

/// Players that arrive before the publisher wait for it and start at its first keyframe:
/// every player gets the clip from frame 0.
#[test]
fn play_before_publish_starts_at_the_first_frame() {
    skip_unless_have!("ffmpeg", "ffprobe", "rtmpdump");
    let server = reflector();
    let clip = shared_clip();
    let url = server.rtmp_url("live", "early");
    let players: Vec<_> = [Player::Ffmpeg, Player::Rtmpdump]
        .iter()
        .map(|&p| play(p, &url, server.dir(), Duration::from_secs(6)))
        .collect();
    sleep(Duration::from_millis(1000));
    let mut publisher = publish(Publisher::Ffmpeg, clip, &url, server.dir());
    for recording in players {
        let kind = recording.kind();
        let verdict = verify_recording(&recording.finish(), clip);
        eprintln!("early {}: {verdict}", kind.name());
        verdict.assert_ok_with_at_least(MIN_FRAMES);
        assert_eq!(
            verdict.first_index,
            Some(0),
            "{} joined before publish, so it starts at clip frame 0",
            kind.name()
        );
    }
    publisher.wait_success(PUBLISH_TIMEOUT);
}

/// The publisher disconnects and a new one publishes the same name while a GStreamer
/// rtmp2src player stays attached (with `live.unpublish_notify = false`: real players end
/// playback on UnpublishNotify; the notify itself is tested with the project's client): the player's recording holds the end of the first
/// publisher's run and then the second publisher's run from its first keyframe, both
/// frame-exact, with timestamps that never go backwards.
#[test]
fn publisher_reconnect_while_player_stays() {
    skip_unless_have!("ffmpeg", "ffprobe", "gst-launch-1.0");
    let (server, _config) = common::reflector_with_config("[live]\nunpublish_notify = false\n");
    let url = server.rtmp_url("live", "again");
    common::clients::assert_play_across_a_republish(
        &server,
        &url,
        Player::GstRtmp2src,
        &url,
        "rtmp2src",
    );
}
