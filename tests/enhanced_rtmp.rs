//! Enhanced RTMP end to end with a modern ffmpeg (PyPI `imageio-ffmpeg`, which `.ci/run`
//! installs): HEVC, AV1 and VP9 video, Opus audio and two video tracks at once are published
//! and played back through the reflector; recordings decode and their frames are an exact
//! contiguous run of the source's, starting at a keyframe. Legacy players: Debian's ffmpeg 5.1
//! plays an H.264 stream published by the modern ffmpeg, and a legacy player asking for an
//! HEVC stream gets NetStream.Play.Failed instead of frames it cannot parse.

mod common;

use common::{Proc, Server};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::Duration;

/// Frames per GOP in every clip here (fixed keyframe interval, no scene cuts).
const GOP: usize = 25;

/// The modern ffmpeg, if installed.
fn modern_ffmpeg() -> Option<&'static str> {
    static FF: OnceLock<Option<String>> = OnceLock::new();
    FF.get_or_init(|| {
        let out = Command::new("python3")
            .args([
                "-c",
                "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())",
            ])
            .output()
            .ok()?;
        let path = String::from_utf8(out.stdout).ok()?.trim().to_owned();
        (out.status.success() && Path::new(&path).exists()).then_some(path)
    })
    .as_deref()
}

macro_rules! need_modern_ffmpeg {
    () => {
        match modern_ffmpeg() {
            Some(ff) => ff,
            None => {
                if std::env::var_os(common::REQUIRE_CLIENTS_ENV).is_some() {
                    panic!("imageio-ffmpeg is not installed (pip install imageio-ffmpeg)");
                }
                eprintln!("SKIP: imageio-ffmpeg is not installed (pip install imageio-ffmpeg)");
                return;
            }
        }
    };
}

fn run(ff: &str, args: &[&str]) {
    let out = Command::new(ff)
        .args(["-nostdin", "-hide_banner", "-v", "error"])
        .args(args)
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Make a 6 s clip with the given codec arguments (written as Enhanced RTMP FLV).
fn clip(ff: &str, dir: &Path, name: &str, codec_args: &[&str]) -> PathBuf {
    let path = dir.join(format!("{name}.flv"));
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        "6",
    ];
    args.extend_from_slice(codec_args);
    let p = path.display().to_string();
    args.extend_from_slice(&["-y", &p]);
    run(ff, &args);
    path
}

/// Decoded frame MD5s of video stream `index`; the decode must produce no error output.
fn frame_md5s(ff: &str, file: &Path, index: usize) -> Vec<String> {
    let map = format!("0:v:{index}");
    let out = Command::new(ff)
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(file)
        .args([
            "-map",
            &map,
            "-fps_mode",
            "passthrough",
            "-f",
            "framemd5",
            "-",
        ])
        .output()
        .expect("run ffmpeg");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "decoding {} failed: {stderr}",
        file.display()
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(',').next().map(|h| h.trim().to_owned()))
        .collect()
}

/// The recorded frames must be an exact contiguous run of the source's, starting at a
/// keyframe (a multiple of [`GOP`]); the last two may be cut by the player's stop.
fn assert_contiguous_run(source: &[String], recorded: &[String], min: usize, what: &str) {
    assert!(
        recorded.len() >= min,
        "{what}: only {} frames recorded",
        recorded.len()
    );
    let Some(start) = source.iter().position(|h| *h == recorded[0]) else {
        panic!("{what}: first recorded frame is not in the source");
    };
    assert_eq!(
        start % GOP,
        0,
        "{what}: first frame is source frame {start}, not a keyframe"
    );
    let exact = recorded.len().saturating_sub(2);
    for (i, hash) in recorded.iter().take(exact).enumerate() {
        assert_eq!(
            source.get(start + i),
            Some(hash),
            "{what}: recorded frame {i} differs from source frame {}",
            start + i
        );
    }
}

fn publish(ff: &str, clip: &Path, url: &str, dir: &Path, extra: &[&str]) -> Proc {
    let c = clip.display().to_string();
    let mut args: Vec<String> = ["-nostdin", "-v", "warning", "-re", "-i", &c]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["-map", "0", "-c", "copy"].iter().map(|s| s.to_string()));
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["-f", "flv", url].iter().map(|s| s.to_string()));
    Proc::spawn("modern-publish", ff, &args, &[], &dir.join("publish.log"))
}

/// Play `url` with the modern ffmpeg announcing Enhanced RTMP; returns the recording.
/// Opus is recorded to Matroska: ffmpeg 9's FLV muxer aborts on Opus read from a live RTMP
/// input (extradata assertion; the same happens through nginx-rtmp).
fn record(ff: &str, url: &str, dir: &Path, name: &str, seconds: &str) -> PathBuf {
    let (ext, format) = if name == "opus" {
        ("mkv", "matroska")
    } else {
        ("flv", "flv")
    };
    let out = dir.join(format!("{name}-rec.{ext}"));
    let o = out.display().to_string();
    let args: Vec<String> = [
        "-nostdin",
        "-v",
        "warning",
        "-rtmp_enhanced_codecs",
        "hvc1,av01,vp09,avc1",
        "-i",
        url,
        "-map",
        "0",
        "-c",
        "copy",
        "-t",
        seconds,
        "-f",
        format,
        "-y",
        &o,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut player = Proc::spawn(
        "modern-play",
        ff,
        &args,
        &[],
        &dir.join(format!("{name}-play.log")),
    );
    if player.wait_timeout(Duration::from_secs(20)).is_none() {
        player.stop_with("INT", Duration::from_secs(3));
    }
    out
}

/// Publish a clip of `codec_args`, join late (mid-GOP), record, verify every video track.
fn round_trip(name: &str, codec_args: &[&str], video_tracks: usize) {
    let ff = need_modern_ffmpeg!();
    let server = Server::reflector(&["--workers", "2"]);
    let source = clip(ff, server.dir(), name, codec_args);
    let url = server.rtmp_url("live", name);
    let mut publisher = publish(ff, &source, &url, server.dir(), &[]);
    // Join 1.3 s in: mid-GOP, so the GOP cache must start the player at frame 25.
    sleep(Duration::from_millis(1300));
    let rec = record(ff, &url, server.dir(), name, "3");
    for track in 0..video_tracks {
        let src = frame_md5s(ff, &source, track);
        let got = frame_md5s(ff, &rec, track);
        eprintln!(
            "{name} track {track}: {} frames, first = source frame {:?}",
            got.len(),
            src.iter().position(|h| Some(h) == got.first())
        );
        assert_contiguous_run(&src, &got, 50, &format!("{name} track {track}"));
    }
    publisher.wait_success(Duration::from_secs(20));
    assert!(
        !server.log().contains("refused"),
        "player refused:\n{}",
        server.log_tail(20)
    );
}

#[test]
fn hevc_round_trip() {
    round_trip(
        "hevc",
        &[
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "keyint=25:min-keyint=25:scenecut=0:bframes=0:log-level=error",
            "-c:a",
            "aac",
        ],
        1,
    );
}

#[test]
fn av1_round_trip() {
    round_trip(
        "av1",
        &[
            "-c:v",
            "libsvtav1",
            "-preset",
            "12",
            "-g",
            "25",
            "-svtav1-params",
            "keyint=25:scd=0",
            "-c:a",
            "aac",
        ],
        1,
    );
}

#[test]
fn vp9_round_trip() {
    round_trip(
        "vp9",
        &[
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-g",
            "25",
            "-keyint_min",
            "25",
            "-c:a",
            "aac",
        ],
        1,
    );
}

#[test]
fn opus_audio_round_trip() {
    round_trip(
        "opus",
        &[
            "-c:v",
            "libx264",
            "-g",
            "25",
            "-keyint_min",
            "25",
            "-sc_threshold",
            "0",
            "-bf",
            "0",
            "-c:a",
            "libopus",
            "-b:a",
            "64k",
        ],
        1,
    );
}

/// Two video tracks at once (Enhanced RTMP multitrack): both come back frame-exact.
#[test]
fn multitrack_two_video_tracks() {
    round_trip(
        "multitrack",
        &[
            "-filter_complex",
            "[0:v]split=2[a][b];[b]scale=160:120[c]",
            "-map",
            "[a]",
            "-map",
            "[c]",
            "-map",
            "1:a",
            "-c:v",
            "libx264",
            "-g",
            "25",
            "-keyint_min",
            "25",
            "-sc_threshold",
            "0",
            "-bf",
            "0",
            "-c:a",
            "aac",
        ],
        2,
    );
}

/// Debian's ffmpeg 5.1 (no Enhanced RTMP) plays an H.264 stream published by the modern
/// ffmpeg, frame-exact.
#[test]
fn legacy_player_on_h264_from_modern_publisher() {
    let ff = need_modern_ffmpeg!();
    skip_unless_have!("ffmpeg", "ffprobe");
    let server = Server::reflector(&["--workers", "2"]);
    let clip = common::shared_clip();
    let url = server.rtmp_url("live", "legacy");
    let mut publisher = publish(ff, clip.path(), &url, server.dir(), &[]);
    sleep(Duration::from_millis(1500));
    let rec = common::play(
        common::Player::Ffmpeg,
        &url,
        server.dir(),
        Duration::from_secs(4),
    )
    .finish();
    common::verify_recording(&rec, clip).assert_ok_with_at_least(50);
    publisher.wait_success(Duration::from_secs(20));
}

/// A legacy player (rtmpdump, librtmp) asking for an HEVC stream gets NetStream.Play.Failed
/// saying why, and no video it cannot parse.
#[test]
fn legacy_player_on_hevc_gets_a_clear_status() {
    let ff = need_modern_ffmpeg!();
    skip_unless_have!("rtmpdump");
    let server = Server::reflector(&["--workers", "2"]);
    let source = clip(
        ff,
        server.dir(),
        "hevc-legacy",
        &[
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "keyint=25:log-level=error",
            "-c:a",
            "aac",
        ],
    );
    let url = server.rtmp_url("live", "hevc");
    let _publisher = publish(ff, &source, &url, server.dir(), &[]);
    sleep(Duration::from_millis(1000));
    let out = Command::new("timeout")
        .args([
            "5",
            "rtmpdump",
            "-V",
            "--live",
            "-r",
            &url,
            "-o",
            "/dev/null",
        ])
        .output()
        .expect("run rtmpdump");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("NetStream.Play.Failed"),
        "rtmpdump did not see NetStream.Play.Failed:\n{}",
        text.lines()
            .filter(|l| !l.starts_with("DEBUG2"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        server.log().contains("did not announce Enhanced RTMP"),
        "{}",
        server.log_tail(20)
    );
}
