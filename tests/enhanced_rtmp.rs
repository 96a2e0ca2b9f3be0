//! Enhanced RTMP end to end with a modern ffmpeg (ffmpeg 9 from PyPI `imageio-ffmpeg`, which
//! `.ci/run` installs). The late-joiner matrix publishes every codec and track layout ffmpeg
//! 9 writes (HEVC, AV1, VP9, H.264; Opus, AAC, FLAC, AC-3, E-AC-3, MP3; two video tracks, two
//! audio tracks) in real time and joins mid-GOP: per track, the codec configuration is the
//! source's byte for byte, video starts at a keyframe and is frame-exact, audio is bit-exact.
//! Legacy players: Debian's ffmpeg 5.1 plays an H.264 + AAC stream published by ffmpeg 9 (in
//! the matrix), and a legacy player asking for an HEVC stream gets NetStream.Play.Failed
//! instead of frames it cannot parse.

use crate::common;

use bytes::Bytes;
use common::tracks::{contiguous_run, first_packet_is_key, frame_md5s, packets, stream_count};
use common::{Proc, Server};
use reflector::client::{ClientConfig, ClientEvent, RtmpClient, RtmpUrl};
use reflector::protocol::amf0::Amf0Value;
use reflector::protocol::media::{inspect_audio, inspect_video, PacketKind};
use reflector::protocol::message::RawMessage;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant};

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

fn try_run(ff: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(ff)
        .args(["-nostdin", "-hide_banner", "-v", "error"])
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ffmpeg: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ffmpeg {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn run(ff: &str, args: &[&str]) {
    if let Err(e) = try_run(ff, args) {
        panic!("{e}");
    }
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

/// Who plays in a matrix case.
#[derive(Clone, Copy, PartialEq)]
enum Player {
    /// ffmpeg 9 announcing every Enhanced RTMP codec.
    Modern,
    /// Debian's ffmpeg 5.1 (no Enhanced RTMP).
    Legacy,
}

/// One codec and track layout of the late-joiner matrix.
struct Case {
    name: &'static str,
    /// Output options for ffmpeg 9 making the source from input 0 (video) and 1 (audio).
    args: &'static [&'static str],
    video: usize,
    audio: usize,
    player: Player,
}

const X264: &[&str] = &[
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
];
const X265: &[&str] = &[
    "-c:v",
    "libx265",
    "-preset",
    "ultrafast",
    "-x265-params",
    "keyint=25:min-keyint=25:scenecut=0:bframes=0:log-level=error",
];
const SVT_AV1: &[&str] = &[
    "-c:v",
    "libsvtav1",
    "-preset",
    "12",
    "-g",
    "25",
    "-svtav1-params",
    "keyint=25:scd=0",
];
const AOM_AV1: &[&str] = &[
    "-c:v",
    "libaom-av1",
    "-usage",
    "realtime",
    "-cpu-used",
    "8",
    "-g",
    "25",
    "-keyint_min",
    "25",
];
const VP9: &[&str] = &[
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
];
/// Two video tracks with different GOPs (2 s and 0.8 s): at the join (2.5 s) track 0's
/// latest keyframe is at 2.0 s and track 1's at 2.4 s, so each must start on its own.
const TWO_VIDEO: &[&str] = &[
    "-filter_complex",
    "[0:v]split=2[a][b];[b]scale=64:48[c]",
    "-map",
    "[a]",
    "-map",
    "[c]",
    "-map",
    "1:a",
];
const X264_GOPS_50_20: &[&str] = &[
    "-bf",
    "0",
    "-sc_threshold",
    "0",
    "-g:v:0",
    "50",
    "-keyint_min:v:0",
    "50",
    "-g:v:1",
    "20",
    "-keyint_min:v:1",
    "20",
];
const ONE_EACH: &[&str] = &["-map", "0:v", "-map", "1:a"];
const TWO_AUDIO: &[&str] = &["-map", "0:v", "-map", "1:a", "-map", "1:a"];

/// Joined at compile time: a case's arguments are a few shared pieces.
macro_rules! args {
    ($($part:expr),+ $(,)?) => {{
        const PARTS: &[&[&str]] = &[$($part),+];
        const LEN: usize = {
            let mut n = 0;
            let mut i = 0;
            while i < PARTS.len() {
                n += PARTS[i].len();
                i += 1;
            }
            n
        };
        const ALL: [&str; LEN] = {
            let mut out = [""; LEN];
            let (mut n, mut i) = (0, 0);
            while i < PARTS.len() {
                let mut j = 0;
                while j < PARTS[i].len() {
                    out[n] = PARTS[i][j];
                    n += 1;
                    j += 1;
                }
                i += 1;
            }
            out
        };
        &ALL
    }};
}

/// Every codec and track layout ffmpeg 9's FLV muxer writes (it has no VP8 and writes each
/// extra track as its own OneTrack multitrack message, never ManyTracks).
const CASES: &[Case] = &[
    Case {
        name: "h264-opus",
        args: args!(ONE_EACH, X264, &["-c:a", "libopus"]),
        video: 1,
        audio: 1,
        player: Player::Modern,
    },
    Case {
        name: "av1-opus",
        args: args!(ONE_EACH, SVT_AV1, &["-c:a", "libopus"]),
        video: 1,
        audio: 1,
        player: Player::Modern,
    },
    Case {
        name: "vp9-opus",
        args: args!(ONE_EACH, VP9, &["-c:a", "libopus"]),
        video: 1,
        audio: 1,
        player: Player::Modern,
    },
    Case {
        name: "hevc-aac",
        args: args!(ONE_EACH, X265, &["-c:a", "aac"]),
        video: 1,
        audio: 1,
        player: Player::Modern,
    },
    Case {
        name: "h264-flac",
        args: args!(ONE_EACH, X264, &["-c:a", "flac"]),
        video: 1,
        audio: 1,
        player: Player::Modern,
    },
    Case {
        name: "h264-ac3",
        args: args!(ONE_EACH, X264, &["-c:a", "ac3"]),
        video: 1,
        audio: 1,
        player: Player::Modern,
    },
    Case {
        name: "hevc-eac3",
        args: args!(ONE_EACH, X265, &["-c:a", "eac3"]),
        video: 1,
        audio: 1,
        player: Player::Modern,
    },
    // libaom sends an empty SequenceStart first, then the real one: the cache keeps the last.
    Case {
        name: "av1aom-flac",
        args: args!(ONE_EACH, AOM_AV1, &["-c:a", "flac"]),
        video: 1,
        audio: 1,
        player: Player::Modern,
    },
    Case {
        name: "2xh264-aac",
        args: args!(
            TWO_VIDEO,
            &["-c:v", "libx264"],
            X264_GOPS_50_20,
            &["-c:a", "aac"]
        ),
        video: 2,
        audio: 1,
        player: Player::Modern,
    },
    Case {
        name: "h264+hevc-opus",
        args: args!(
            TWO_VIDEO,
            &[
                "-c:v:0",
                "libx264",
                "-c:v:1",
                "libx265",
                "-preset:v:1",
                "ultrafast"
            ],
            &["-x265-params", "bframes=0:scenecut=0:log-level=error"],
            X264_GOPS_50_20,
            &["-c:a", "libopus"]
        ),
        video: 2,
        audio: 1,
        player: Player::Modern,
    },
    Case {
        name: "h264-aac+opus",
        args: args!(TWO_AUDIO, X264, &["-c:a:0", "aac", "-c:a:1", "libopus"]),
        video: 1,
        audio: 2,
        player: Player::Modern,
    },
    Case {
        name: "vp9-2xopus",
        args: args!(TWO_AUDIO, VP9, &["-c:a", "libopus"]),
        video: 1,
        audio: 2,
        player: Player::Modern,
    },
    Case {
        name: "h264-2xmp3",
        args: args!(TWO_AUDIO, X264, &["-c:a", "libmp3lame"]),
        video: 1,
        audio: 2,
        player: Player::Modern,
    },
    Case {
        name: "legacy-h264-aac",
        args: args!(ONE_EACH, X264, &["-c:a", "aac"]),
        video: 1,
        audio: 1,
        player: Player::Legacy,
    },
];

/// When the player joins, after the publisher started (mid-GOP for every track).
const JOIN_AFTER: Duration = Duration::from_millis(2500);

/// Every case of [`CASES`] at once on one server, each a late joiner: per track, the codec
/// configuration is the source's byte for byte, the first packet is a keyframe, the packets
/// are one contiguous run of the source's (audio bit-exact) and, for video, so are the
/// decoded pictures.
#[test]
fn late_joiner_matrix() {
    let ff = need_modern_ffmpeg!();
    skip_unless_have!("ffmpeg", "ffprobe");
    let server = Server::reflector(&["--workers", "2"]);
    let started = Instant::now();
    let base = server.rtmp_url("live", "");
    let dir = server.dir().to_path_buf();
    // Every case encodes its source before any publishes: an encoder beside a live case
    // would take the CPU its publisher and player need to stay real time.
    let prepared = std::sync::Barrier::new(CASES.len());
    let results: Vec<(&str, Result<String, String>)> = std::thread::scope(|scope| {
        let runs: Vec<_> = CASES
            .iter()
            .map(|case| {
                let (base, dir, prepared) = (&base, &dir, &prepared);
                let run = scope.spawn(move || {
                    let source = std::panic::catch_unwind(|| prepare_case(ff, case, dir))
                        .unwrap_or_else(|_| Err("making the source panicked".into()));
                    prepared.wait();
                    late_joiner(ff, case, base, &source?)
                });
                (case.name, run)
            })
            .collect();
        runs.into_iter()
            .map(|(name, run)| {
                let result = run
                    .join()
                    .unwrap_or_else(|_| Err("the case panicked".into()));
                (name, result)
            })
            .collect()
    });
    let mut failures = Vec::new();
    for (name, result) in &results {
        match result {
            Ok(summary) => eprintln!("{name:16} ok  {summary}"),
            Err(e) => {
                eprintln!("{name:16} FAILED  {e}");
                failures.push(*name);
            }
        }
    }
    eprintln!("{} cases in {:?}", results.len(), started.elapsed());
    let log = server.log();
    assert!(
        failures.is_empty(),
        "failed: {failures:?}\n{}",
        server.log_tail(30)
    );
    // No client was turned away and nothing panicked (the start-up line about the machine's
    // open-file limit may mention refusals in general; it is not one).
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| {
            [
                "publish refused",
                "play refused",
                "not authorized",
                "connection refused",
                "panic",
            ]
            .iter()
            .any(|w| l.contains(w))
        })
        .collect();
    assert!(refusals.is_empty(), "{}", refusals.join("\n"));
}

/// One case's files: its directory, the source, what the publisher sends of it, and the
/// reference the recording is compared with.
struct CaseFiles {
    dir: PathBuf,
    source: PathBuf,
    sent: PathBuf,
    reference: PathBuf,
}

/// Make one case's source and the files its checks compare against.
fn prepare_case(ff: &str, case: &Case, dir: &Path) -> Result<CaseFiles, String> {
    let dir = dir.join(case.name);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let source = dir.join("source.flv");
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=128x96:rate=25",
        "-f",
        "lavfi",
        "-i",
        // Noise: no two audio packets alike, so a repeated or lost one shows.
        "anoisesrc=color=pink:seed=7:amplitude=0.3:sample_rate=48000",
        "-t",
        "6",
    ];
    args.extend_from_slice(case.args);
    let src = source.display().to_string();
    args.extend_from_slice(&["-f", "flv", "-y", &src]);
    try_run(ff, &args).map_err(|e| format!("making the source: {e}"))?;
    // What the publisher sends: its FLV muxer rewrites some headers it reads back (VP9
    // vpcC, FLAC STREAMINFO, video colorInfo), so the tags to expect are those of a copy.
    let sent = dir.join("sent.flv");
    let sent_path = sent.display().to_string();
    try_run(
        ff,
        &[
            "-i", &src, "-map", "0", "-c", "copy", "-f", "flv", "-y", &sent_path,
        ],
    )?;
    // The reference: the source through the same demuxer and muxer as the recording.
    let reference = dir.join("reference.mkv");
    let r = reference.display().to_string();
    try_run(ff, &["-i", &src, "-map", "0", "-c", "copy", "-y", &r])?;
    Ok(CaseFiles {
        dir,
        source,
        sent,
        reference,
    })
}

/// One case: publish its source in real time, join late, check every track.
fn late_joiner(ff: &str, case: &Case, base: &str, files: &CaseFiles) -> Result<String, String> {
    let CaseFiles {
        dir,
        source,
        sent,
        reference,
    } = files;
    let url = format!("{base}{}", case.name);
    let mut publisher = publish(ff, source, &url, dir, &[]);
    sleep(JOIN_AFTER);
    let recording = dir.join("recording.mkv");
    let rec = recording.display().to_string();
    let mut play: Vec<&str> = vec!["-nostdin", "-v", "warning"];
    let player = match case.player {
        Player::Modern => {
            play.extend([
                "-rtmp_enhanced_codecs",
                "hvc1,av01,vp09,avc1,Opus,fLaC,ac-3,ec-3,mp4a,.mp3",
            ]);
            ff
        }
        Player::Legacy => "ffmpeg",
    };
    play.extend(["-i", &url, "-map", "0", "-c", "copy", "-t", "2", "-y", &rec]);
    let play: Vec<String> = play.iter().map(|s| s.to_string()).collect();
    let mut player = Proc::spawn("player", player, &play, &[], &dir.join("play.log"));
    let raw = raw_join(&url, sent, Duration::from_millis(1500));
    if player.wait_timeout(Duration::from_secs(20)).is_none() {
        player.stop_with("INT", Duration::from_secs(3));
    }
    if publisher.wait_timeout(Duration::from_secs(20)).is_none() {
        return Err("publisher still running".into());
    }

    let mut summary = vec![raw?];
    for (kind, count) in [("video", case.video), ("audio", case.audio)] {
        let got = stream_count(&recording, kind)?;
        if got != count {
            return Err(format!(
                "{got} {kind} tracks recorded, {count} published; player log:\n{}",
                common::tail(&dir.join("play.log"), 10)
            ));
        }
        for track in 0..count {
            let spec = format!("{}:{track}", &kind[..1]);
            let line = check_track(ff, reference, &recording, &spec)
                .map_err(|e| format!("{spec}: {e}"))?;
            summary.push(format!("{spec} {line}"));
        }
    }
    Ok(summary.join("; "))
}

/// Per-track checks of `recording` against `reference`; a one-line summary.
fn check_track(ff: &str, reference: &Path, recording: &Path, spec: &str) -> Result<String, String> {
    let want = packets(ff, reference, spec)?;
    let got = packets(ff, recording, spec)?;
    if got.extradata != want.extradata {
        return Err(format!(
            "codec configuration {:?}, source has {:?}",
            got.extradata, want.extradata
        ));
    }
    let start = contiguous_run(&want.md5s, &got.md5s).map_err(|e| format!("packets: {e}"))?;
    let config = want.extradata.as_ref().map_or(0, |(size, _)| *size);
    let mut line = format!(
        "config {config} B, packets {}..{} of {}",
        start,
        start + got.md5s.len(),
        want.md5s.len()
    );
    if !spec.starts_with('v') {
        if got.md5s.len() < 10 {
            return Err(format!("only {} audio packets", got.md5s.len()));
        }
        return Ok(line);
    }
    if !first_packet_is_key(recording, spec)? {
        return Err(format!(
            "first packet (source packet {start}) is not a keyframe"
        ));
    }
    let source_frames = frame_md5s(ff, reference, spec)?;
    let frames = frame_md5s(ff, recording, spec)?;
    let first = contiguous_run(&source_frames, &frames).map_err(|e| format!("pictures: {e}"))?;
    if frames.len() < 40 {
        return Err(format!("only {} pictures", frames.len()));
    }
    line.push_str(&format!(", pictures {first}..{}", first + frames.len()));
    Ok(line)
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

/// A header's cache slot as the spec shapes it: message type, what it configures, tracks.
type Slot = (u8, &'static str, Vec<u8>);

/// The header slot of an audio or video message payload, if it is a header.
fn header_slot(type_id: u8, payload: &[u8]) -> Option<Slot> {
    let (role, tracks) = if type_id == 9 {
        let tag = inspect_video(payload).ok()?;
        let role = match tag.tracks.first()?.kind {
            PacketKind::SequenceHeader => "SequenceStart",
            PacketKind::Metadata => "Metadata",
            _ => return None,
        };
        (role, tag.tracks.iter().map(|t| t.track_id).collect())
    } else {
        let tag = inspect_audio(payload).ok()?;
        let role = match tag.tracks.first()?.kind {
            PacketKind::SequenceHeader => "SequenceStart",
            PacketKind::Other if tag.enhanced => "MultichannelConfig",
            _ => return None,
        };
        (role, tag.tracks.iter().map(|t| t.track_id).collect())
    };
    Some((type_id, role, tracks))
}

/// The audio and video tags of an FLV file, in order: (type, body).
fn flv_tags(file: &Path) -> Result<Vec<(u8, Vec<u8>)>, String> {
    let data = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut tags = Vec::new();
    let mut at = 13; // header (9) + PreviousTagSize0 (4)
    while let Some(head) = data.get(at..at + 11) {
        let size = u32::from_be_bytes([0, head[1], head[2], head[3]]) as usize;
        let body = data
            .get(at + 11..at + 11 + size)
            .ok_or_else(|| format!("{}: truncated tag at {at}", file.display()))?;
        if head[0] == 8 || head[0] == 9 {
            tags.push((head[0], body.to_vec()));
        }
        at += 11 + size + 4;
    }
    Ok(tags)
}

/// A raw RTMP player (this crate's client, announcing every FourCC) joins `url` now and
/// reads for `window`. Every header slot of what the publisher sent (`sent`, an FLV file of
/// it) must reach it byte for byte (the latest of each) before any coded frame of its
/// tracks, and each video track's first coded frame must be a keyframe.
fn raw_join(url: &str, sent: &Path, window: Duration) -> Result<String, String> {
    let mut want: Vec<(Slot, Vec<u8>)> = Vec::new();
    for (type_id, body) in flv_tags(sent)? {
        if let Some(slot) = header_slot(type_id, &body) {
            want.retain(|(s, _)| *s != slot);
            want.push((slot, body));
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let seen = runtime.block_on(async {
        let config = ClientConfig {
            extra_connect_properties: vec![(
                "fourCcList".into(),
                Amf0Value::StrictArray(vec![Amf0Value::String("*".into())]),
            )],
            ..ClientConfig::default()
        };
        let url = RtmpUrl::parse(url).map_err(|e| e.to_string())?;
        let mut client = RtmpClient::connect(&url, &config)
            .await
            .map_err(|e| format!("raw player: {e}"))?;
        let stream = client.create_stream().await.map_err(|e| e.to_string())?;
        client
            .play(stream, &url.stream)
            .await
            .map_err(|e| e.to_string())?;
        let mut seen = Vec::new();
        let end = tokio::time::Instant::now() + window;
        while let Ok(event) = tokio::time::timeout_at(end, client.next_event()).await {
            match event {
                Ok(ClientEvent::Media(m)) => seen.push(m),
                Ok(_) => {}
                Err(e) => return Err(format!("raw player: {e}")),
            }
        }
        Ok::<_, String>(seen)
    })?;

    let mut got: Vec<(Slot, &[u8])> = Vec::new();
    let mut started: Vec<(u8, u8)> = Vec::new();
    let mut coded = 0;
    for m in &seen {
        if let Some(slot) = header_slot(m.type_id, &m.payload) {
            got.retain(|(s, _)| *s != slot);
            got.push((slot, &m.payload));
            continue;
        }
        let tracks: Vec<u8> = if m.type_id == 9 {
            let Ok(tag) = inspect_video(&m.payload) else {
                continue;
            };
            if !tag.tracks.iter().any(|t| t.kind == PacketKind::Coded) {
                continue;
            }
            let ids: Vec<u8> = tag.tracks.iter().map(|t| t.track_id).collect();
            for &id in &ids {
                if !started.contains(&(9, id)) && !tag.is_keyframe() {
                    return Err(format!("video track {id} starts with an inter frame"));
                }
            }
            ids
        } else {
            match inspect_audio(&m.payload) {
                Ok(tag) => tag.tracks.iter().map(|t| t.track_id).collect(),
                Err(_) => continue,
            }
        };
        coded += 1;
        for id in tracks {
            if started.contains(&(m.type_id, id)) {
                continue;
            }
            started.push((m.type_id, id));
            // Every header of this kind and track, as the source last sent it.
            for (slot, bytes) in want
                .iter()
                .filter(|(s, _)| s.0 == m.type_id && s.2.contains(&id))
            {
                match got.iter().find(|(s, _)| s == slot) {
                    Some((_, b)) if *b == bytes.as_slice() => {}
                    Some((_, b)) => {
                        return Err(format!(
                            "{slot:?}: got {} bytes, the source sent {} different ones",
                            b.len(),
                            bytes.len()
                        ))
                    }
                    None => return Err(format!("{slot:?} missing before the first frame")),
                }
            }
        }
    }
    if coded == 0 {
        return Err("the raw player got no coded frames".into());
    }
    Ok(format!(
        "raw player: {} header slots byte-exact, {} tracks started clean",
        want.len(),
        started.len()
    ))
}

/// A synthetic two-track H.264 frame: track 0 as a legacy tag, track 1 as an E-RTMP OneTrack
/// multitrack tag (ffmpeg 9's layout), numbered by `seq` and padded to `size`.
fn two_track_frame(track: u8, seq: u32, key: bool, size: usize) -> Bytes {
    let mut p = Vec::with_capacity(size);
    match track {
        0 => p.extend_from_slice(&[if key { 0x17 } else { 0x27 }, 1, 0, 0, 0]),
        _ => {
            p.extend_from_slice(&[if key { 0x96 } else { 0xa6 }, 0x01]);
            p.extend_from_slice(b"avc1");
            p.extend_from_slice(&[track, 0, 0, 0]);
        }
    }
    p.extend_from_slice(&seq.to_be_bytes());
    p.resize(size.max(p.len()), 0);
    Bytes::from(p)
}

/// The sequence start of a track of [`two_track_frame`].
fn two_track_header(track: u8) -> Bytes {
    let record = [1, 0x64, 0, 0x1f, 0xff, 0xe0, 0];
    let mut p = match track {
        0 => vec![0x17, 0, 0, 0, 0],
        _ => [&[0x96, 0x00][..], b"avc1", &[track]].concat(),
    };
    p.extend_from_slice(&record);
    Bytes::from(p)
}

/// A player that reads in bursts behind a fast two-track publisher: the server drops video for
/// it, and each track must resume at its own keyframe, its sequence start resent first, while
/// the other track carries on. (Keyframes: track 0 every 25 frames, track 1 offset by 10.)
#[tokio::test]
async fn slow_player_resyncs_each_video_track_on_its_own() {
    let (server, _config) = common::reflector_with_config(
        "[live]\ndrop_disposable_bytes = 65536\ndrop_video_bytes = 131072\n\
         drop_audio_bytes = 8388608\nmax_lag_ms = 30000\n",
    );
    let url = RtmpUrl::parse(&server.rtmp_url("live", "mt")).expect("url");
    let config = ClientConfig {
        extra_connect_properties: vec![(
            "fourCcList".into(),
            Amf0Value::StrictArray(vec![Amf0Value::String("*".into())]),
        )],
        ..ClientConfig::default()
    };
    let mut publisher = RtmpClient::connect(&url, &config).await.expect("publisher");
    let stream = publisher.create_stream().await.expect("createStream");
    publisher.publish(stream, "mt").await.expect("publish");
    let media = move |timestamp: u32, payload: Bytes| RawMessage {
        type_id: 9,
        stream_id: stream,
        timestamp,
        payload,
    };
    for track in [0, 1] {
        publisher.feed(&media(0, two_track_header(track)));
    }
    publisher.flush().await.expect("headers");
    let mut player = RtmpClient::connect(&url, &config).await.expect("player");
    let id = player.create_stream().await.expect("createStream");
    player.play(id, "mt").await.expect("play");

    // 50 fps of two 40 kB frames (4 MB/s) for 7 s.
    let feed = tokio::spawn(async move {
        for seq in 0..350u32 {
            let ts = seq * 20;
            publisher.feed(&media(ts, two_track_frame(0, seq, seq % 25 == 0, 40_000)));
            publisher.feed(&media(ts, two_track_frame(1, seq, seq % 25 == 10, 40_000)));
            publisher.flush().await.expect("publisher keeps up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        publisher
    });
    // Read 1 s, stall 2 s, twice; then read to the end.
    let mut seen = Vec::new();
    let start = tokio::time::Instant::now();
    for (read_until, stall_until) in [(1000, 3000), (4000, 6000), (9000, 9000)] {
        let end = start + Duration::from_millis(read_until);
        while let Ok(event) = tokio::time::timeout_at(end, player.next_event()).await {
            if let ClientEvent::Media(m) = event.expect("player reads") {
                seen.push(m.payload);
            }
        }
        tokio::time::sleep_until(start + Duration::from_millis(stall_until)).await;
    }
    let _publisher = feed.await.expect("publisher task");

    // Per track: after a gap (or at the start), a sequence start, then a keyframe.
    let mut last: [Option<u32>; 2] = [None, None];
    let mut header_since: [bool; 2] = [false, false];
    let mut resyncs = [0; 2];
    let mut frames = [0; 2];
    for payload in &seen {
        let tag = inspect_video(payload).expect("video tag");
        let track = usize::from(tag.tracks[0].track_id);
        if tag.is_sequence_header() {
            header_since[track] = true;
            continue;
        }
        let at = if track == 0 { 5 } else { 10 };
        let seq = u32::from_be_bytes(payload[at..at + 4].try_into().expect("seq"));
        frames[track] += 1;
        if last[track].is_none_or(|l| seq != l + 1) {
            assert!(
                tag.is_keyframe(),
                "track {track} resumes at inter frame {seq} (after {:?})",
                last[track]
            );
            assert!(
                header_since[track],
                "track {track} resumes at {seq} without its sequence start"
            );
            if last[track].is_some() {
                resyncs[track] += 1;
            }
        }
        header_since[track] = false;
        last[track] = Some(seq);
    }
    eprintln!("frames per track {frames:?}, resyncs {resyncs:?}");
    assert!(
        resyncs[0] >= 1 && resyncs[1] >= 1,
        "no drops happened: frames {frames:?}, resyncs {resyncs:?}"
    );
    assert!(last[0] >= Some(340) && last[1] >= Some(340), "{last:?}");
}

/// HTTP-FLV carries Enhanced RTMP as enhanced FLV tags: ffmpeg 9 joining an HEVC + AAC stream
/// late over `http://…/live/hevc.flv` gets every packet and picture of both tracks in order
/// from a keyframe on; Debian's ffmpeg 5.1 (libavformat 59, no enhanced FLV reader) is
/// answered 415 with the reason instead of tags it cannot parse.
#[test]
fn hevc_plays_over_http_flv_and_an_old_ffmpeg_is_told_why() {
    let ff = need_modern_ffmpeg!();
    skip_unless_have!("ffmpeg");
    let server = Server::reflector_http(&["--workers", "2"]);
    let dir = server.dir();
    let source = clip(
        ff,
        dir,
        "hevc-http",
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
    let reference = dir.join("reference.mkv");
    let (src, r) = (
        source.display().to_string(),
        reference.display().to_string(),
    );
    run(ff, &["-i", &src, "-map", "0", "-c", "copy", "-y", &r]);
    let _publisher = publish(ff, &source, &server.rtmp_url("live", "hevc"), dir, &[]);
    sleep(JOIN_AFTER);
    let url = server.http_url("live", "hevc");
    // ffmpeg 5.1 asks while ffmpeg 9 records, both while the 6 s clip is still live: once the
    // publisher has gone, a play waits for the next one (`http.wait_for_publisher`) and the
    // answer would be no answer at all.
    let legacy = std::thread::spawn({
        let url = url.clone();
        move || {
            Command::new("timeout")
                .args([
                    "10", "ffmpeg", "-nostdin", "-v", "error", "-i", &url, "-t", "1", "-f", "null",
                    "-",
                ])
                .output()
                .expect("run ffmpeg 5.1")
        }
    });
    let told = legacy_request_answer(&url);
    let recording = dir.join("http.mkv");
    let rec = recording.display().to_string();
    run(
        ff,
        &["-i", &url, "-map", "0", "-c", "copy", "-t", "2", "-y", &rec],
    );
    let out = legacy.join().expect("ffmpeg 5.1 thread");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "ffmpeg 5.1 must not play it: {text}");
    assert!(
        text.contains("4XX"),
        "ffmpeg 5.1 saw no client error: {text}"
    );
    assert!(told.starts_with("HTTP/1.1 415 "), "{told}");
    assert!(told.contains("hvc1") && told.contains("ffmpeg 6"), "{told}");
    let video = check_track(ff, &reference, &recording, "v:0").expect("HEVC over HTTP-FLV");
    let audio = check_track(ff, &reference, &recording, "a:0").expect("AAC over HTTP-FLV");
    println!("ffmpeg 9 over HTTP-FLV: v:0 {video}; a:0 {audio}");
    assert!(
        server.log().contains("cannot read enhanced FLV"),
        "{}",
        server.log_tail(20)
    );
}

/// What a request like ffmpeg 5.1's (User-Agent Lavf/59) is answered for the stream at `url`.
fn legacy_request_answer(url: &str) -> String {
    use std::io::{Read, Write};
    let authority = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .expect("http URL");
    let path = &url["http://".len() + authority.len()..];
    let mut s = std::net::TcpStream::connect(authority).expect("connect to the HTTP port");
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: Lavf/59.27.100\r\n\r\n");
    s.write_all(request.as_bytes()).expect("send the request");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}
