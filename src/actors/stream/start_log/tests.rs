use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::actors::stream::FrameBuilder;
use crate::client::synth;
use crate::config::Settings;
use crate::protocol::message::{type_id, RawMessage};
use crate::stats::StreamStats;

struct Feed {
    builder: FrameBuilder,
    log: StartLog,
    limits: AmfLimits,
}

impl Feed {
    fn new() -> Self {
        let settings = Arc::new(Settings::defaults());
        Feed {
            limits: settings.amf_limits(),
            builder: FrameBuilder::new(1, settings, Arc::new(StreamStats::new("live", "x"))),
            log: StartLog::default(),
        }
    }

    fn send(&mut self, type_id: u8, timestamp: u32, payload: Vec<u8>) -> Option<Summary> {
        let raw = RawMessage {
            type_id,
            stream_id: 1,
            timestamp,
            payload: Bytes::from(payload),
        };
        let frame = self.builder.make_frame(&raw)?;
        self.log.frame(&frame, &self.limits)
    }

    fn metadata(&mut self, props: Vec<(&str, Amf0Value)>) -> Option<Summary> {
        let values = vec![
            Amf0Value::String("@setDataFrame".into()),
            Amf0Value::String("onMetaData".into()),
            Amf0Value::EcmaArray(props.into_iter().map(|(k, v)| (k.into(), v)).collect()),
        ];
        let mut payload = Vec::new();
        amf0::encode_all(&values, &mut payload).unwrap();
        self.send(type_id::DATA_AMF0, 0, payload)
    }
}

const AAC_HEADER: &[u8] = &[0xaf, 0, 0x12, 0x10];
/// 100-byte AVC inter frame and 20-byte AAC frame bodies.
fn avc(key: bool) -> Vec<u8> {
    let mut v = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
    v.resize(100, 0x41);
    v
}
fn aac() -> Vec<u8> {
    let mut v = vec![0xaf, 1];
    v.resize(20, 0x21);
    v
}

#[test]
fn metadata_and_sequence_headers_log_at_once() {
    let mut f = Feed::new();
    let n = Amf0Value::Number;
    assert_eq!(
        f.metadata(vec![
            ("width", n(1280.0)),
            ("height", n(720.0)),
            ("framerate", n(25.0)),
            ("videodatarate", n(500.0)),
            ("audiodatarate", n(128.0)),
            ("videocodecid", n(7.0)),
            ("audiocodecid", n(10.0)),
            ("encoder", Amf0Value::String("Lavf\n\"x\"".into())),
        ]),
        None
    );
    assert_eq!(
        f.send(type_id::VIDEO, 0, synth::avc_sequence_header().to_vec()),
        None
    );
    let s = f.send(type_id::AUDIO, 0, AAC_HEADER.to_vec()).expect("due");
    assert_eq!(
        s,
        Summary {
            video: Some("H.264".into()),
            audio: Some("AAC".into()),
            // The sequence header's SPS wins over the metadata.
            size: Some((320, 240)),
            fps: Some(25.0),
            kbps: Some(628.0),
            encoder: Some("Lavf\n\"x\"".into()),
        }
    );
    assert!(f.log.done());
    assert_eq!(f.send(type_id::VIDEO, 40, avc(true)), None, "once only");
    assert_eq!(f.log.finish(), None);
}

#[test]
fn without_metadata_rates_are_measured_over_two_seconds() {
    let mut f = Feed::new();
    f.send(type_id::VIDEO, 0, synth::avc_sequence_header().to_vec());
    f.send(type_id::AUDIO, 0, AAC_HEADER.to_vec());
    let mut logged = None;
    // 25 fps video (100 B) and 50 audio frames a second (20 B), from t = 1000.
    for i in 0..200u32 {
        let t = 1000 + i * 20;
        if i % 2 == 0 {
            logged = logged.or(f.send(type_id::VIDEO, t, avc(i % 50 == 0)));
        }
        logged = logged.or(f.send(type_id::AUDIO, t, aac()));
        if logged.is_some() {
            // Due at the first video frame 2 s after the first one.
            assert_eq!(t, 3000);
            break;
        }
    }
    let s = logged.expect("logged after 2 s");
    assert_eq!(s.size, Some((320, 240)));
    assert_eq!(s.fps, Some(25.0));
    // After the first frame: 50 video frames (5000 B) and 100 audio frames (2000 B) in 2 s.
    assert_eq!(s.kbps, Some(7000.0 * 8.0 / 2000.0));
    assert_eq!(s.encoder, None);
}

#[test]
fn a_missing_track_is_waited_for_five_seconds_of_media() {
    let mut f = Feed::new();
    f.send(type_id::AUDIO, 0, AAC_HEADER.to_vec());
    for t in (0..5000).step_by(100) {
        assert_eq!(f.send(type_id::AUDIO, t, aac()), None, "at {t}");
    }
    let s = f.send(type_id::AUDIO, 5000, aac()).expect("given up");
    assert_eq!(
        (s.video, s.audio.as_deref(), s.size),
        (None, Some("AAC"), None)
    );
    assert_eq!(s.fps, None);
    assert!(s.kbps.is_some());
}

#[test]
fn metadata_saying_audio_only_does_not_wait_for_video() {
    let mut f = Feed::new();
    f.metadata(vec![
        ("audiocodecid", Amf0Value::Number(10.0)),
        ("audiodatarate", Amf0Value::Number(96.0)),
    ]);
    let s = f.send(type_id::AUDIO, 0, AAC_HEADER.to_vec()).expect("due");
    assert_eq!(
        (s.video, s.audio.as_deref(), s.kbps),
        (None, Some("AAC"), Some(96.0))
    );
}

#[test]
fn enhanced_rtmp_codecs_carry_their_fourcc() {
    let mut f = Feed::new();
    f.metadata(vec![
        ("width", Amf0Value::Number(640.0)),
        ("height", Amf0Value::Number(360.0)),
        ("framerate", Amf0Value::Number(30.0)),
        ("videodatarate", Amf0Value::Number(800.0)),
        ("videocodecid", Amf0Value::String("hvc1".into())),
        ("audiocodecid", Amf0Value::String("Opus".into())),
    ]);
    // ExVideoTagHeader: IsExHeader | key frame | CodedFramesX, FourCC `hvc1`.
    let mut video = vec![0x80 | 0x10 | 3];
    video.extend_from_slice(b"hvc1");
    video.extend_from_slice(&[0, 0, 0, 1, 0x26]);
    assert_eq!(f.send(type_id::VIDEO, 0, video), None);
    // ExAudioTagHeader: SoundFormat 9 | CodedFrames, FourCC `Opus`.
    let mut audio = vec![0x91];
    audio.extend_from_slice(b"Opus");
    audio.extend_from_slice(&[0xfc, 0xff]);
    let s = f.send(type_id::AUDIO, 0, audio).expect("due");
    assert_eq!(s.video.as_deref(), Some("HEVC (hvc1)"));
    assert_eq!(s.audio.as_deref(), Some("Opus (Opus)"));
    assert_eq!(s.size, Some((640, 360)));
}

#[test]
fn nothing_is_logged_for_a_publish_without_media() {
    let mut f = Feed::new();
    assert_eq!(f.log.finish(), None);
    let mut f = Feed::new();
    f.metadata(vec![("width", Amf0Value::Number(2.0))]);
    assert_eq!(f.log.finish(), None);
}

#[test]
fn fields_print_known_or_unknown() {
    assert_eq!(Known(Some((1920u32, 1080u32))).to_string(), "1920x1080");
    assert_eq!(Known::<(u32, u32)>(None).to_string(), "unknown");
    assert_eq!(Known(Some(29.97)).to_string(), "29.97");
    assert_eq!(Known(Some(2500.4)).to_string(), "2500");
}
