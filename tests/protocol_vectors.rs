//! The sans-IO protocol core against bytes real clients and servers sent (tests/vectors, see
//! its README for provenance): chunk streams decoded in many read patterns, AMF0 bodies
//! re-encoded byte for byte, real C0+C1 through the server handshake; plus property tests
//! of message round trips through the typed and chunk layers.
//!
//! The expected values below were read independently from the captures with
//! `scripts/rtmp_vectors.py` (a separate Python de-chunker), not from this crate's output.

use bytes::{Bytes, BytesMut};
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use sha2::Sha256;

use reflector::protocol::amf0::{self, Amf0Value, AmfLimits};
use reflector::protocol::amf3::Amf3Value;
use reflector::protocol::chunk::{chunk_message, ChunkDecoder, ChunkEncoder, ChunkLimits};
use reflector::protocol::command::{strip_set_data_frame, Command, PublishType};
use reflector::protocol::handshake::{
    ClientHandshake, HandshakeError, HandshakeScheme, HandshakeState, ServerHandshake,
    HANDSHAKE_SIZE,
};
use reflector::protocol::media::{audio_params, inspect_audio, inspect_video, video_params};
use reflector::protocol::message::{
    type_id, LimitType, Message, RawMessage, SharedObjectEvent, SharedObjectMessage,
    UserControlEvent,
};

const FFMPEG_PUBLISH: &[u8] = include_bytes!("vectors/chunks/ffmpeg-publish-c2s.bin");
const RTMP2SINK_PUBLISH: &[u8] = include_bytes!("vectors/chunks/rtmp2sink-publish-c2s.bin");
const RTMPSINK_PUBLISH: &[u8] = include_bytes!("vectors/chunks/rtmpsink-publish-c2s.bin");
const FFMPEG_PLAY: &[u8] = include_bytes!("vectors/chunks/ffmpeg-play-c2s.bin");
const RTMPDUMP_PLAY: &[u8] = include_bytes!("vectors/chunks/rtmpdump-play-c2s.bin");
const RTMP2SRC_PLAY: &[u8] = include_bytes!("vectors/chunks/rtmp2src-play-c2s.bin");
const NGINX_PLAY: &[u8] = include_bytes!("vectors/chunks/nginx-play-s2c.bin");

const AMF0_FFMPEG_CONNECT: &[u8] = include_bytes!("vectors/amf0/ffmpeg-connect.bin");
const AMF0_RTMPDUMP_CONNECT: &[u8] = include_bytes!("vectors/amf0/rtmpdump-connect.bin");
const AMF0_SET_DATA_FRAME: &[u8] = include_bytes!("vectors/amf0/setdataframe-onmetadata.bin");

const TC_URL: &str = "rtmp://127.0.0.1:19935/live";

// ---------------------------------------------------------------------------------------------
// Decoding helpers
// ---------------------------------------------------------------------------------------------

/// Deterministic xorshift64, so that a failing split pattern can be reproduced.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Piece sizes for one read pattern: `max` bounds each piece (random in 1..=max).
fn read_sizes(seed: u64, max: u64, total: usize) -> Vec<usize> {
    let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut sizes = Vec::new();
    let mut left = total;
    while left > 0 {
        let n = usize::try_from(1 + rng.below(max)).unwrap_or(1).min(left);
        sizes.push(n);
        left -= n;
    }
    sizes
}

/// Decode a whole chunk stream fed in pieces of `sizes`; every byte must be consumed and the
/// stream must end on a message boundary. Returns the messages and the final chunk size.
fn dechunk_with(data: &[u8], sizes: &[usize]) -> (Vec<RawMessage>, u32) {
    let mut decoder = ChunkDecoder::new(ChunkLimits::default());
    let mut buf = BytesMut::new();
    let mut messages = Vec::new();
    let mut offset = 0;
    for &size in sizes {
        buf.extend_from_slice(&data[offset..offset + size]);
        offset += size;
        while let Some(message) = decoder.decode(&mut buf).expect("real stream decodes") {
            messages.push(message);
        }
    }
    assert_eq!(offset, data.len());
    assert!(buf.is_empty(), "{} bytes left undecoded", buf.len());
    assert_eq!(decoder.pending_bytes(), 0, "stream ends inside a message");
    assert_eq!(decoder.bytes_consumed(), data.len() as u64);
    (messages, decoder.chunk_size())
}

/// Decode `data` at once, then byte by byte and in random read patterns, asserting they all
/// give the same messages (split invariance on real data); then decode every message body.
fn session(data: &[u8]) -> (Vec<RawMessage>, Vec<Message>, u32) {
    let (raw, chunk_size) = dechunk_with(data, &[data.len()]);
    let bytewise = vec![1; data.len()];
    assert_eq!(dechunk_with(data, &bytewise), (raw.clone(), chunk_size));
    for (seed, max) in [(1, 3), (2, 17), (3, 200), (4, 1500), (5, 5000), (6, 70_000)] {
        let sizes = read_sizes(seed, max, data.len());
        assert_eq!(
            dechunk_with(data, &sizes),
            (raw.clone(), chunk_size),
            "read pattern seed {seed} max {max}"
        );
    }
    let typed = raw
        .iter()
        .map(|m| Message::decode(m, &AmfLimits::default()).expect("real message decodes"))
        .collect();
    (raw, typed, chunk_size)
}

fn command(message: &Message) -> Command {
    match message {
        Message::Command {
            amf3: false,
            values,
        } => Command::parse(values).expect("real command parses"),
        other => panic!("expected an AMF0 command, got {other:?}"),
    }
}

fn num(value: Option<&Amf0Value>) -> Option<f64> {
    value.and_then(Amf0Value::as_f64)
}

fn text(value: Option<&Amf0Value>) -> Option<&str> {
    value.and_then(Amf0Value::as_str)
}

fn connect(message: &Message) -> reflector::protocol::command::ConnectCommand {
    match command(message) {
        Command::Connect(c) => c,
        other => panic!("expected connect, got {other:?}"),
    }
}

/// What the media messages of a publisher stream add up to.
#[derive(Debug, PartialEq)]
struct MediaSummary {
    video: usize,
    audio: usize,
    video_bytes: usize,
    audio_bytes: usize,
    /// Timestamps of video keyframes (coded frames, not sequence headers).
    keyframes: Vec<u32>,
    first_video: u32,
    first_audio: u32,
    last_video: u32,
    last_audio: u32,
}

fn media_summary(raw: &[RawMessage]) -> MediaSummary {
    let video: Vec<&RawMessage> = raw.iter().filter(|m| m.type_id == type_id::VIDEO).collect();
    let audio: Vec<&RawMessage> = raw.iter().filter(|m| m.type_id == type_id::AUDIO).collect();
    for m in video.iter().chain(audio.iter()) {
        assert_eq!(m.stream_id, 1, "media on message stream 1");
    }
    let keyframes = video
        .iter()
        .filter(|m| inspect_video(&m.payload).expect("video tag").is_keyframe())
        .map(|m| m.timestamp)
        .collect();
    for m in &audio {
        inspect_audio(&m.payload).expect("audio tag");
    }
    MediaSummary {
        video: video.len(),
        audio: audio.len(),
        video_bytes: video.iter().map(|m| m.payload.len()).sum(),
        audio_bytes: audio.iter().map(|m| m.payload.len()).sum(),
        keyframes,
        first_video: video.first().map_or(0, |m| m.timestamp),
        first_audio: audio.first().map_or(0, |m| m.timestamp),
        last_video: video.last().map_or(0, |m| m.timestamp),
        last_audio: audio.last().map_or(0, |m| m.timestamp),
    }
}

/// The AVC and AAC sequence headers of the harness clip, as the first media of a stream.
fn assert_sequence_headers(video: &RawMessage, audio: &RawMessage) {
    assert_eq!(video.type_id, type_id::VIDEO);
    assert_eq!(&video.payload[..2], &[0x17, 0x00]);
    assert_eq!(video.payload.len(), 45);
    let tag = inspect_video(&video.payload).expect("AVC sequence header");
    assert!(tag.is_sequence_header() && !tag.is_keyframe());
    let params = video_params(&video.payload).expect("SPS");
    assert_eq!((params.width, params.height), (320, 240));

    assert_eq!(audio.type_id, type_id::AUDIO);
    assert_eq!(&audio.payload[..2], &[0xAF, 0x00]);
    assert_eq!(audio.payload.len(), 7);
    assert!(inspect_audio(&audio.payload)
        .expect("AAC sequence header")
        .is_sequence_header());
    let params = audio_params(&audio.payload).expect("AudioSpecificConfig");
    assert_eq!((params.sample_rate, params.channels), (44_100, 2));
}

/// `@setDataFrame` `onMetaData` from a publisher: width and height of the clip.
fn assert_set_data_frame(message: &Message) {
    let Message::Data {
        amf3: false,
        values,
    } = message
    else {
        panic!("expected AMF0 data, got {message:?}");
    };
    assert_eq!(text(values.first()), Some("@setDataFrame"));
    let stripped = strip_set_data_frame(values).expect("@setDataFrame wrapper");
    assert_eq!(text(stripped.first()), Some("onMetaData"));
    let metadata = &values[2];
    assert!(matches!(metadata, Amf0Value::EcmaArray(_)));
    assert_eq!(num(metadata.get("width")), Some(320.0));
    assert_eq!(num(metadata.get("height")), Some(240.0));
    assert_eq!(num(metadata.get("framerate")), Some(25.0));
    assert_eq!(num(metadata.get("videocodecid")), Some(7.0));
    assert_eq!(num(metadata.get("audiocodecid")), Some(10.0));
}

// ---------------------------------------------------------------------------------------------
// Publisher streams
// ---------------------------------------------------------------------------------------------

#[test]
fn ffmpeg_publish() {
    let (raw, typed, chunk_size) = session(FFMPEG_PUBLISH);
    assert_eq!(raw.len(), 86);
    assert_eq!(chunk_size, 4096);

    let c = connect(&typed[0]);
    assert_eq!(c.transaction_id, 1.0);
    assert_eq!(c.app, "live");
    assert_eq!(
        c.flash_ver.as_deref(),
        Some("FMLE/3.0 (compatible; Lavf59.27.100)")
    );
    assert_eq!(c.tc_url.as_deref(), Some(TC_URL));
    assert_eq!(text(c.command_object.get("type")), Some("nonprivate"));
    assert_eq!((c.swf_url, c.page_url), (None, None));
    assert_eq!(c.object_encoding, 0.0);
    assert!(c.arguments.is_empty());
    assert_eq!(&raw[0].payload[..], AMF0_FFMPEG_CONNECT);

    // ffmpeg announces its chunk size after connect.
    assert_eq!(typed[1], Message::SetChunkSize(4096));
    assert_eq!(
        command(&typed[2]),
        Command::ReleaseStream {
            transaction_id: 2.0,
            name: "vec".into()
        }
    );
    assert_eq!(
        command(&typed[3]),
        Command::FcPublish {
            transaction_id: 3.0,
            name: "vec".into()
        }
    );
    assert_eq!(
        command(&typed[4]),
        Command::CreateStream {
            transaction_id: 4.0
        }
    );
    assert_eq!(
        command(&typed[5]),
        Command::Publish {
            transaction_id: 5.0,
            name: "vec".into(),
            publish_type: PublishType::Live
        }
    );
    assert_eq!(raw[5].stream_id, 1);
    assert_set_data_frame(&typed[6]);
    assert_eq!(&raw[6].payload[..], AMF0_SET_DATA_FRAME);
    assert_eq!(raw[6].stream_id, 1);
    let Message::Data { values, .. } = &typed[6] else {
        unreachable!()
    };
    assert_eq!(text(values[2].get("encoder")), Some("Lavf59.27.100"));
    assert_eq!(num(values[2].get("audiosamplerate")), Some(44_100.0));
    assert_eq!(values[2].get("stereo"), Some(&Amf0Value::Boolean(true)));

    assert_sequence_headers(&raw[7], &raw[8]);
    // The first keyframe, 4954 bytes over two 4096-byte chunks.
    assert_eq!(raw[9].type_id, type_id::VIDEO);
    assert_eq!(raw[9].payload.len(), 4954);
    assert!(inspect_video(&raw[9].payload)
        .expect("keyframe")
        .is_keyframe());

    assert_eq!(
        media_summary(&raw),
        MediaSummary {
            video: 30,
            audio: 49,
            video_bytes: 45_538,
            audio_bytes: 17_882,
            keyframes: vec![0, 1000],
            first_video: 0,
            first_audio: 0,
            last_video: 1120,
            last_audio: 1148,
        }
    );
    assert_eq!(raw.iter().map(|m| m.timestamp).max(), Some(1148));
}

/// Data message timestamps of the GStreamer publishers (metadata re-sent by flvmux).
const GST_DATA_TIMESTAMPS: [u32; 11] = [0, 0, 240, 280, 320, 440, 480, 560, 600, 680, 880];

fn gst_media_summary() -> MediaSummary {
    MediaSummary {
        video: 28,
        audio: 45,
        video_bytes: 43_717,
        audio_bytes: 16_352,
        keyframes: vec![0, 920],
        first_video: 0,
        first_audio: 0,
        last_video: 960,
        last_audio: 975,
    }
}

fn data_timestamps(raw: &[RawMessage], typed: &[Message]) -> Vec<u32> {
    raw.iter()
        .zip(typed)
        .filter(|(m, _)| m.type_id == type_id::DATA_AMF0)
        .map(|(m, t)| {
            assert_set_data_frame(t);
            m.timestamp
        })
        .collect()
}

#[test]
fn rtmp2sink_publish() {
    let (raw, typed, chunk_size) = session(RTMP2SINK_PUBLISH);
    assert_eq!(raw.len(), 91);
    // Set Chunk Size 128 is a no-op: the whole file uses 128-byte chunks.
    assert_eq!(chunk_size, 128);

    let c = connect(&typed[0]);
    assert_eq!((c.transaction_id, c.app.as_str()), (1.0, "live"));
    assert_eq!(c.flash_ver.as_deref(), Some("LNX 10,0,32,18"));
    assert_eq!(c.tc_url.as_deref(), Some(TC_URL));
    assert_eq!(text(c.command_object.get("type")), Some("nonprivate"));
    assert_eq!(typed[1], Message::WindowAckSize(5_000_000));
    // rtmp2sink uses transaction id 0 for the calls it does not wait on.
    assert_eq!(
        command(&typed[2]),
        Command::ReleaseStream {
            transaction_id: 0.0,
            name: "vec".into()
        }
    );
    assert_eq!(
        command(&typed[3]),
        Command::FcPublish {
            transaction_id: 0.0,
            name: "vec".into()
        }
    );
    assert_eq!(
        command(&typed[4]),
        Command::CreateStream {
            transaction_id: 2.0
        }
    );
    assert_eq!(
        command(&typed[5]),
        Command::Publish {
            transaction_id: 0.0,
            name: "vec".into(),
            publish_type: PublishType::Live
        }
    );
    assert_eq!(raw[5].stream_id, 1);
    assert_eq!(typed[6], Message::SetChunkSize(128));
    assert_eq!(raw[7].payload.len(), 355);
    assert_set_data_frame(&typed[7]);
    assert_sequence_headers(&raw[8], &raw[9]);
    // The second metadata copy starts a message with a fmt 3 chunk; its timestamp is the
    // previous one plus the previous delta (0 + 0), the later ones are fmt 2.
    assert_eq!(data_timestamps(&raw, &typed), GST_DATA_TIMESTAMPS);
    assert_eq!(media_summary(&raw), gst_media_summary());
    // GStreamer clamps the negative DTS of the first frames to 0.
    let at_zero = |t| {
        raw.iter()
            .filter(|m| m.type_id == t && m.timestamp == 0)
            .count()
    };
    assert_eq!((at_zero(type_id::VIDEO), at_zero(type_id::AUDIO)), (4, 3));
}

#[test]
fn rtmpsink_publish() {
    let (raw, typed, chunk_size) = session(RTMPSINK_PUBLISH);
    assert_eq!(raw.len(), 89);
    assert_eq!(chunk_size, 128);
    assert!(!typed.iter().any(|m| matches!(m, Message::SetChunkSize(_))));

    let c = connect(&typed[0]);
    assert_eq!((c.transaction_id, c.app.as_str()), (1.0, "live"));
    assert_eq!(c.flash_ver, None);
    assert_eq!(c.tc_url.as_deref(), Some(TC_URL));
    assert_eq!(
        command(&typed[1]),
        Command::ReleaseStream {
            transaction_id: 2.0,
            name: "vec".into()
        }
    );
    assert_eq!(
        command(&typed[2]),
        Command::FcPublish {
            transaction_id: 3.0,
            name: "vec".into()
        }
    );
    assert_eq!(
        command(&typed[3]),
        Command::CreateStream {
            transaction_id: 4.0
        }
    );
    assert_eq!(
        command(&typed[4]),
        Command::Publish {
            transaction_id: 5.0,
            name: "vec".into(),
            publish_type: PublishType::Live
        }
    );
    assert_set_data_frame(&typed[5]);
    assert_sequence_headers(&raw[6], &raw[7]);
    assert_eq!(data_timestamps(&raw, &typed), GST_DATA_TIMESTAMPS);
    assert_eq!(media_summary(&raw), gst_media_summary());
}

#[test]
fn gstreamer_publishers_send_the_same_media() {
    // Same pipeline, two RTMP stacks: the media payloads must come out identical.
    let media = |data| {
        let (raw, _, _) = session(data);
        raw.into_iter()
            .filter(|m| m.type_id == type_id::AUDIO || m.type_id == type_id::VIDEO)
            .map(|m| (m.type_id, m.timestamp, m.payload))
            .collect::<Vec<_>>()
    };
    assert_eq!(media(RTMP2SINK_PUBLISH), media(RTMPSINK_PUBLISH));
}

// ---------------------------------------------------------------------------------------------
// Player streams (complete sessions)
// ---------------------------------------------------------------------------------------------

fn assert_player_connect(message: &Message, flash_ver: &str, audio_codecs: f64) {
    let c = connect(message);
    assert_eq!((c.transaction_id, c.app.as_str()), (1.0, "live"));
    assert_eq!(c.flash_ver.as_deref(), Some(flash_ver));
    assert_eq!(c.tc_url.as_deref(), Some(TC_URL));
    let o = &c.command_object;
    assert_eq!(o.get("fpad"), Some(&Amf0Value::Boolean(false)));
    assert_eq!(num(o.get("capabilities")), Some(15.0));
    assert_eq!(num(o.get("audioCodecs")), Some(audio_codecs));
    assert_eq!(num(o.get("videoCodecs")), Some(252.0));
    assert_eq!(num(o.get("videoFunction")), Some(1.0));
}

fn set_buffer_length(stream_id: u32, buffer_ms: u32) -> Message {
    Message::UserControl(UserControlEvent::SetBufferLength {
        stream_id,
        buffer_ms,
    })
}

fn play(transaction_id: f64, start: f64) -> Command {
    Command::Play {
        transaction_id,
        name: "vec".into(),
        start,
        duration: -1.0,
        reset: true,
    }
}

#[test]
fn ffmpeg_play() {
    let (raw, typed, _) = session(FFMPEG_PLAY);
    assert_eq!(raw.len(), 7);
    assert_player_connect(&typed[0], "LNX 9,0,124,2", 4071.0);
    assert_eq!(typed[1], Message::WindowAckSize(5_000_000));
    assert_eq!(
        command(&typed[2]),
        Command::CreateStream {
            transaction_id: 2.0
        }
    );
    assert_eq!(
        command(&typed[3]),
        Command::GetStreamLength {
            transaction_id: 3.0,
            name: "vec".into()
        }
    );
    assert_eq!(command(&typed[4]), play(4.0, -2000.0));
    assert_eq!(raw[4].stream_id, 1);
    assert_eq!(typed[5], set_buffer_length(1, 3000));
    assert_eq!(
        command(&typed[6]),
        Command::DeleteStream {
            transaction_id: 5.0,
            stream_id: 1.0
        }
    );
    assert!(!typed
        .iter()
        .any(|m| matches!(m, Message::Acknowledgement { .. })));
}

#[test]
fn rtmpdump_play() {
    let (raw, typed, _) = session(RTMPDUMP_PLAY);
    assert_eq!(raw.len(), 8);
    assert_player_connect(&typed[0], "LNX 10,0,32,18", 3191.0);
    assert_eq!(&raw[0].payload[..], AMF0_RTMPDUMP_CONNECT);
    assert_eq!(typed[1], Message::WindowAckSize(5_000_000));
    assert_eq!(typed[2], set_buffer_length(0, 300));
    assert_eq!(
        command(&typed[3]),
        Command::CreateStream {
            transaction_id: 2.0
        }
    );
    assert_eq!(
        command(&typed[4]),
        Command::Other {
            name: "FCSubscribe".into(),
            transaction_id: 3.0,
            arguments: vec![Amf0Value::Null, Amf0Value::String("vec".into())]
        }
    );
    assert_eq!(command(&typed[5]), play(4.0, -1000.0));
    assert_eq!(raw[5].stream_id, 1);
    // Sent as a fmt 3 chunk on csid 2.
    assert_eq!(typed[6], set_buffer_length(1, 36_000_000));
    assert_eq!(
        command(&typed[7]),
        Command::DeleteStream {
            transaction_id: 5.0,
            stream_id: 1.0
        }
    );
}

#[test]
fn rtmp2src_play() {
    let (raw, typed, _) = session(RTMP2SRC_PLAY);
    assert_eq!(raw.len(), 7);
    assert_player_connect(&typed[0], "LNX 10,0,32,18", 4071.0);
    assert_eq!(typed[1], Message::WindowAckSize(5_000_000));
    // A fmt 3 chunk that starts a new message with the previous header.
    assert_eq!(typed[2], Message::WindowAckSize(2_500_000));
    assert_eq!(typed[3], set_buffer_length(0, 300));
    assert_eq!(
        command(&typed[4]),
        Command::CreateStream {
            transaction_id: 2.0
        }
    );
    assert_eq!(command(&typed[5]), play(0.0, -2.0));
    assert_eq!(raw[5].stream_id, 1);
    assert_eq!(typed[6], set_buffer_length(1, 30_000));
}

#[test]
fn nginx_play_server_stream() {
    let (raw, typed, chunk_size) = session(NGINX_PLAY);
    assert_eq!(raw.len(), 100);
    assert_eq!(chunk_size, 4096);
    assert_eq!(typed[0], Message::WindowAckSize(5_000_000));
    assert_eq!(
        typed[1],
        Message::SetPeerBandwidth {
            size: 5_000_000,
            limit_type: LimitType::Dynamic
        }
    );
    assert_eq!(typed[2], Message::SetChunkSize(4096));

    let Command::Result {
        transaction_id,
        values,
    } = command(&typed[3])
    else {
        panic!("expected _result, got {:?}", typed[3]);
    };
    assert_eq!(transaction_id, 1.0);
    assert_eq!(values.len(), 2);
    assert_eq!(text(values[0].get("fmsVer")), Some("FMS/3,0,1,123"));
    assert_eq!(num(values[0].get("capabilities")), Some(31.0));
    assert_eq!(text(values[1].get("level")), Some("status"));
    assert_eq!(
        text(values[1].get("code")),
        Some("NetConnection.Connect.Success")
    );
    assert_eq!(
        text(values[1].get("description")),
        Some("Connection succeeded.")
    );
    assert_eq!(num(values[1].get("objectEncoding")), Some(0.0));

    assert_eq!(
        command(&typed[4]),
        Command::Result {
            transaction_id: 2.0,
            values: vec![Amf0Value::Null, Amf0Value::Number(1.0)]
        }
    );
    assert_eq!(
        typed[5],
        Message::UserControl(UserControlEvent::StreamBegin { stream_id: 1 })
    );
    let Command::OnStatus { info } = command(&typed[6]) else {
        panic!("expected onStatus, got {:?}", typed[6]);
    };
    assert_eq!(raw[6].stream_id, 1);
    assert_eq!(text(info.get("code")), Some("NetStream.Play.Start"));
    assert_eq!(text(info.get("description")), Some("Start live"));
    assert_eq!(
        typed[7],
        Message::Data {
            amf3: false,
            values: vec![
                Amf0Value::String("|RtmpSampleAccess".into()),
                Amf0Value::Boolean(true),
                Amf0Value::Boolean(true)
            ]
        }
    );
    let Message::Data { values, .. } = &typed[8] else {
        panic!("expected onMetaData, got {:?}", typed[8]);
    };
    assert_eq!(text(values.first()), Some("onMetaData"));
    assert_eq!(strip_set_data_frame(values), None);
    assert_eq!(num(values[1].get("displayWidth")), Some(320.0));
    assert_eq!(num(values[1].get("fps")), Some(25.0));
    assert_eq!(
        text(values[1].get("profile")),
        Some("\0".repeat(32).as_str())
    );
    assert_eq!(text(values[1].get("level")), Some("\0".repeat(32).as_str()));

    // Audio first (nginx holds video until a keyframe), then the AVC sequence header.
    let first_video = raw
        .iter()
        .position(|m| m.type_id == type_id::VIDEO)
        .expect("video");
    assert_eq!(raw[9].timestamp, 1496);
    assert_eq!(raw[first_video].timestamp, 1960);
    assert_sequence_headers(&raw[first_video], &raw[9]);
    assert_eq!(
        media_summary(&raw),
        MediaSummary {
            video: 26,
            audio: 65,
            video_bytes: 38_468,
            audio_bytes: 23_941,
            keyframes: vec![2000],
            first_video: 1960,
            first_audio: 1496,
            last_video: 2960,
            last_audio: 2982,
        }
    );
}

// ---------------------------------------------------------------------------------------------
// AMF0 bodies
// ---------------------------------------------------------------------------------------------

#[test]
fn amf0_vectors_reencode_byte_identically() {
    for body in [
        AMF0_FFMPEG_CONNECT,
        AMF0_RTMPDUMP_CONNECT,
        AMF0_SET_DATA_FRAME,
    ] {
        let values = amf0::decode_all(body, &AmfLimits::default()).expect("decode");
        let mut out = Vec::new();
        amf0::encode_all(&values, &mut out).expect("encode");
        assert_eq!(out, body);
    }
}

#[test]
fn every_amf0_body_in_the_streams_reencodes_byte_identically() {
    let mut bodies = 0;
    for data in [
        FFMPEG_PUBLISH,
        RTMP2SINK_PUBLISH,
        RTMPSINK_PUBLISH,
        FFMPEG_PLAY,
        RTMPDUMP_PLAY,
        RTMP2SRC_PLAY,
        NGINX_PLAY,
    ] {
        let (raw, _) = dechunk_with(data, &[data.len()]);
        for m in raw
            .iter()
            .filter(|m| m.type_id == type_id::COMMAND_AMF0 || m.type_id == type_id::DATA_AMF0)
        {
            let message = Message::decode(m, &AmfLimits::default()).expect("decode");
            assert_eq!(message.encode_body().expect("encode"), m.payload);
            bodies += 1;
        }
    }
    assert_eq!(bodies, 56);
}

#[test]
fn ffmpeg_connect_body() {
    let values = amf0::decode_all(AMF0_FFMPEG_CONNECT, &AmfLimits::default()).expect("decode");
    assert_eq!(
        values,
        vec![
            Amf0Value::String("connect".into()),
            Amf0Value::Number(1.0),
            Amf0Value::object([
                ("app", Amf0Value::String("live".into())),
                ("type", Amf0Value::String("nonprivate".into())),
                (
                    "flashVer",
                    Amf0Value::String("FMLE/3.0 (compatible; Lavf59.27.100)".into())
                ),
                ("tcUrl", Amf0Value::String(TC_URL.into())),
            ]),
        ]
    );
}

#[test]
fn set_data_frame_body() {
    let values = amf0::decode_all(AMF0_SET_DATA_FRAME, &AmfLimits::default()).expect("decode");
    let n = |x: f64| Amf0Value::Number(x);
    assert_eq!(
        values,
        vec![
            Amf0Value::String("@setDataFrame".into()),
            Amf0Value::String("onMetaData".into()),
            Amf0Value::EcmaArray(vec![
                ("duration".into(), n(0.0)),
                ("width".into(), n(320.0)),
                ("height".into(), n(240.0)),
                ("videodatarate".into(), n(0.0)),
                ("framerate".into(), n(25.0)),
                ("videocodecid".into(), n(7.0)),
                ("audiodatarate".into(), n(125.0)),
                ("audiosamplerate".into(), n(44_100.0)),
                ("audiosamplesize".into(), n(16.0)),
                ("stereo".into(), Amf0Value::Boolean(true)),
                ("audiocodecid".into(), n(10.0)),
                ("encoder".into(), Amf0Value::String("Lavf59.27.100".into())),
                ("filesize".into(), n(0.0)),
            ]),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Handshake
// ---------------------------------------------------------------------------------------------

const HS_FFMPEG: &[u8] = include_bytes!("vectors/handshake/ffmpeg-c0c1.bin");
const HS_RTMPDUMP: &[u8] = include_bytes!("vectors/handshake/rtmpdump-c0c1.bin");
const HS_RTMPDUMP_SWFHASH: &[u8] = include_bytes!("vectors/handshake/rtmpdump-swfhash-c0c1.bin");
const HS_RTMPDUMP_RTMPE: &[u8] = include_bytes!("vectors/handshake/rtmpdump-rtmpe-c0c1.bin");
const HS_RTMP2SINK: &[u8] = include_bytes!("vectors/handshake/gst-rtmp2sink-c0c1.bin");
const HS_RTMPSINK: &[u8] = include_bytes!("vectors/handshake/gst-rtmpsink-c0c1.bin");

/// "Genuine Adobe Flash Media Server 001" and the 32 bytes after it (the S2 key).
const FMS_KEY: [u8; 68] = [
    b'G', b'e', b'n', b'u', b'i', b'n', b'e', b' ', b'A', b'd', b'o', b'b', b'e', b' ', b'F', b'l',
    b'a', b's', b'h', b' ', b'M', b'e', b'd', b'i', b'a', b' ', b'S', b'e', b'r', b'v', b'e', b'r',
    b' ', b'0', b'0', b'1', 0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1,
    0x02, 0x9E, 0x7E, 0x57, 0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36,
    0xCF, 0xEB, 0x31, 0xAE,
];
const FP_KEY_TEXT: &[u8] = b"Genuine Adobe Flash Player 001";

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Digest offset inside a C1/S1 for the digest block starting at `block` (8 or 772).
fn digest_offset(c1: &[u8], block: usize) -> usize {
    let sum: usize = c1[block..block + 4].iter().map(|&b| usize::from(b)).sum();
    block + 4 + sum % 728
}

/// Run the server on `c0c1`, then a fake C2 and `trailing` chunk bytes; returns S0+S1+S2.
fn server_handshake(c0c1: &[u8], trailing: &[u8]) -> (ServerHandshake, BytesMut) {
    let mut server = ServerHandshake::new();
    let mut input = BytesMut::from(c0c1);
    let mut out = BytesMut::new();
    assert_eq!(
        server.process(&mut input, &mut out),
        Ok(HandshakeState::InProgress)
    );
    assert!(input.is_empty());
    assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
    // C2: clients fill it differently; the server does not check it.
    input.extend_from_slice(&[0x5A; HANDSHAKE_SIZE]);
    input.extend_from_slice(trailing);
    let before = out.len();
    assert_eq!(
        server.process(&mut input, &mut out),
        Ok(HandshakeState::Done)
    );
    assert_eq!(out.len(), before, "nothing more to send after C2");
    assert_eq!(&input[..], trailing, "chunk bytes after C2 are left alone");
    (server, out)
}

#[test]
fn server_handshake_completes_on_every_real_c0c1() {
    let trailing = &FFMPEG_PUBLISH[..16];
    for (name, c0c1, scheme, version, digest_at) in [
        (
            "ffmpeg",
            HS_FFMPEG,
            HandshakeScheme::Digest1,
            [9, 0, 124, 2],
            Some(494),
        ),
        (
            "rtmpdump",
            HS_RTMPDUMP,
            HandshakeScheme::Simple,
            [0; 4],
            None,
        ),
        (
            "rtmpdump -w",
            HS_RTMPDUMP_SWFHASH,
            HandshakeScheme::Digest1,
            [10, 0, 45, 2],
            Some(430),
        ),
        (
            "rtmp2sink",
            HS_RTMP2SINK,
            HandshakeScheme::Simple,
            [0; 4],
            None,
        ),
        (
            "rtmpsink",
            HS_RTMPSINK,
            HandshakeScheme::Simple,
            [0; 4],
            None,
        ),
    ] {
        assert_eq!(c0c1.len(), 1 + HANDSHAKE_SIZE, "{name}");
        let c1 = &c0c1[1..];
        let (server, out) = server_handshake(c0c1, trailing);
        assert_eq!(server.scheme(), Some(scheme), "{name}");
        assert_eq!(server.client_version(), Some(version), "{name}");
        assert_eq!(out[0], 3, "{name}: S0");
        let s1 = &out[1..1 + HANDSHAKE_SIZE];
        let s2 = &out[1 + HANDSHAKE_SIZE..];
        match digest_at {
            None => {
                assert_eq!(s2, c1, "{name}: a simple S2 echoes C1");
                assert_eq!(&s1[4..8], &[0; 4], "{name}: simple S1 has a zero version");
            }
            Some(at) => {
                // Checked here with plain HMAC, as FFmpeg and librtmp check it.
                assert_eq!(digest_offset(c1, 8), at, "{name}");
                let c1_digest = &c1[at..at + 32];
                assert_eq!(
                    hmac(FP_KEY_TEXT, &[&c1[..at], &c1[at + 32..]]),
                    c1_digest,
                    "{name}: C1 digest"
                );
                // S1 uses the client's scheme (digest block first) and the FMS key.
                let s1_at = digest_offset(s1, 8);
                assert_eq!(
                    hmac(&FMS_KEY[..36], &[&s1[..s1_at], &s1[s1_at + 32..]]),
                    &s1[s1_at..s1_at + 32],
                    "{name}: S1 digest"
                );
                // S2: echo of C1 signed with a key derived from the C1 digest.
                let key = hmac(&FMS_KEY, &[c1_digest]);
                assert_eq!(&s2[..1504], &c1[..1504], "{name}");
                assert_eq!(
                    hmac(&key, &[&s2[..1504]]),
                    &s2[1504..],
                    "{name}: S2 signature"
                );
            }
        }
    }
}

#[test]
fn server_handshake_refuses_rtmpe_at_once() {
    let mut server = ServerHandshake::new();
    let mut input = BytesMut::from(&HS_RTMPDUMP_RTMPE[..1]);
    let mut out = BytesMut::new();
    let refused = Err(HandshakeError::UnsupportedVersion { version: 6 });
    assert_eq!(server.process(&mut input, &mut out), refused);
    input.extend_from_slice(&HS_RTMPDUMP_RTMPE[1..]);
    assert_eq!(server.process(&mut input, &mut out), refused);
    assert!(out.is_empty());
}

#[test]
fn server_handshake_in_small_reads() {
    for seed in 0..4 {
        let mut stream = HS_FFMPEG.to_vec();
        stream.extend_from_slice(&[7; HANDSHAKE_SIZE]);
        stream.extend_from_slice(&FFMPEG_PUBLISH[..100]);
        let mut server = ServerHandshake::new();
        let mut input = BytesMut::new();
        let mut out = BytesMut::new();
        let mut offset = 0;
        let mut state = HandshakeState::InProgress;
        for size in read_sizes(seed, 97, stream.len()) {
            input.extend_from_slice(&stream[offset..offset + size]);
            offset += size;
            if state == HandshakeState::InProgress {
                state = server.process(&mut input, &mut out).expect("handshake");
            }
        }
        assert_eq!(state, HandshakeState::Done);
        assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert_eq!(&input[..], &FFMPEG_PUBLISH[..100]);
    }
}

#[test]
fn client_and_server_handshakes_agree() {
    for digest in [false, true] {
        let mut client = ClientHandshake::new(digest);
        let mut server = ServerHandshake::new();
        let mut to_server = BytesMut::new();
        let mut to_client = BytesMut::new();
        client.start(&mut to_server);
        assert_eq!(
            server.process(&mut to_server, &mut to_client),
            Ok(HandshakeState::InProgress)
        );
        assert_eq!(
            client.process(&mut to_client, &mut to_server),
            Ok(HandshakeState::Done)
        );
        assert_eq!(
            server.process(&mut to_server, &mut to_client),
            Ok(HandshakeState::Done)
        );
        let expected = if digest {
            HandshakeScheme::Digest1
        } else {
            HandshakeScheme::Simple
        };
        assert_eq!(client.scheme(), Some(expected));
        assert_eq!(server.scheme(), Some(expected));
    }
}

// ---------------------------------------------------------------------------------------------
// Property tests: typed message round trips, alone and through the chunk layer
// ---------------------------------------------------------------------------------------------

const KNOWN_TYPE_IDS: [u8; 15] = [1, 2, 3, 4, 5, 6, 8, 9, 15, 16, 17, 18, 19, 20, 22];

fn short_string() -> impl Strategy<Value = String> + Clone {
    "[a-zA-Z0-9 ._@|é-]{0,12}"
}

fn amf3_scalar() -> impl Strategy<Value = Amf3Value> {
    prop_oneof![
        Just(Amf3Value::Null),
        Just(Amf3Value::Undefined),
        any::<bool>().prop_map(Amf3Value::Boolean),
        (-(1 << 28)..(1 << 28)).prop_map(Amf3Value::Integer),
        any::<f64>().prop_map(Amf3Value::Double),
        short_string().prop_map(Amf3Value::String),
    ]
}

fn amf0_value() -> impl Strategy<Value = Amf0Value> {
    let leaf = prop_oneof![
        any::<f64>().prop_map(Amf0Value::Number),
        any::<bool>().prop_map(Amf0Value::Boolean),
        short_string().prop_map(Amf0Value::String),
        Just(Amf0Value::Null),
        Just(Amf0Value::Undefined),
        Just(Amf0Value::Unsupported),
        (any::<f64>(), any::<i16>())
            .prop_map(|(millis, time_zone)| Amf0Value::Date { millis, time_zone }),
        short_string().prop_map(Amf0Value::LongString),
        short_string().prop_map(Amf0Value::XmlDocument),
        amf3_scalar().prop_map(Amf0Value::AvmPlus),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        let props = prop::collection::vec((short_string(), inner.clone()), 0..4);
        prop_oneof![
            props.clone().prop_map(Amf0Value::Object),
            props.clone().prop_map(Amf0Value::EcmaArray),
            prop::collection::vec(inner, 0..4).prop_map(Amf0Value::StrictArray),
            (short_string(), props).prop_map(|(class_name, properties)| {
                Amf0Value::TypedObject {
                    class_name,
                    properties,
                }
            }),
        ]
    })
}

fn payload() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..600).prop_map(Bytes::from)
}

fn user_control_event() -> impl Strategy<Value = UserControlEvent> {
    prop_oneof![
        any::<u32>().prop_map(|stream_id| UserControlEvent::StreamBegin { stream_id }),
        any::<u32>().prop_map(|stream_id| UserControlEvent::StreamEof { stream_id }),
        any::<u32>().prop_map(|stream_id| UserControlEvent::StreamDry { stream_id }),
        (any::<u32>(), any::<u32>()).prop_map(|(stream_id, buffer_ms)| {
            UserControlEvent::SetBufferLength {
                stream_id,
                buffer_ms,
            }
        }),
        any::<u32>().prop_map(|stream_id| UserControlEvent::StreamIsRecorded { stream_id }),
        any::<u32>().prop_map(|timestamp| UserControlEvent::PingRequest { timestamp }),
        any::<u32>().prop_map(|timestamp| UserControlEvent::PingResponse { timestamp }),
        (any::<u16>(), payload())
            .prop_filter("event types with a typed form", |(t, _)| {
                !matches!(t, 0..=4 | 6 | 7)
            })
            .prop_map(|(event_type, data)| UserControlEvent::Unknown { event_type, data }),
    ]
}

fn shared_object_event() -> impl Strategy<Value = SharedObjectEvent> {
    let props = || prop::collection::vec((short_string(), amf0_value()), 0..3);
    prop_oneof![
        Just(SharedObjectEvent::Connect),
        Just(SharedObjectEvent::Disconnect),
        props().prop_map(|properties| SharedObjectEvent::SetAttribute { properties }),
        props().prop_map(|properties| SharedObjectEvent::UpdateData { properties }),
        short_string().prop_map(|name| SharedObjectEvent::UpdateAttribute { name }),
        prop::collection::vec(amf0_value(), 0..3)
            .prop_map(|values| SharedObjectEvent::SendMessage { values }),
        (short_string(), short_string())
            .prop_map(|(code, level)| SharedObjectEvent::Status { code, level }),
        Just(SharedObjectEvent::ClearData),
        short_string().prop_map(|name| SharedObjectEvent::DeleteData { name }),
        short_string().prop_map(|name| SharedObjectEvent::DeleteAttribute { name }),
        Just(SharedObjectEvent::InitialData),
        (12..=255u8, payload())
            .prop_map(|(event_type, data)| SharedObjectEvent::Unknown { event_type, data }),
    ]
}

/// Every typed message variant. `control` includes Set Chunk Size and Abort, which the chunk
/// layer acts on itself.
fn message(control: bool) -> BoxedStrategy<Message> {
    let values = || prop::collection::vec(amf0_value(), 0..5);
    let common = prop_oneof![
        any::<u32>().prop_map(|sequence_number| Message::Acknowledgement { sequence_number }),
        user_control_event().prop_map(Message::UserControl),
        any::<u32>().prop_map(Message::WindowAckSize),
        (any::<u32>(), 0..3u8).prop_map(|(size, t)| Message::SetPeerBandwidth {
            size,
            limit_type: [LimitType::Hard, LimitType::Soft, LimitType::Dynamic][usize::from(t)],
        }),
        payload().prop_map(Message::Audio),
        payload().prop_map(Message::Video),
        (any::<bool>(), values()).prop_map(|(amf3, values)| Message::Data { amf3, values }),
        (any::<bool>(), values()).prop_map(|(amf3, values)| Message::Command { amf3, values }),
        (
            any::<bool>(),
            short_string(),
            any::<u32>(),
            any::<bool>(),
            prop::collection::vec(shared_object_event(), 0..4)
        )
            .prop_map(|(amf3, name, version, persistent, events)| {
                Message::SharedObject {
                    amf3,
                    message: SharedObjectMessage {
                        name,
                        version,
                        persistent,
                        events,
                    },
                }
            }),
        payload().prop_map(Message::Aggregate),
        (any::<u8>(), payload())
            .prop_filter("unknown type ids only", |(t, _)| !KNOWN_TYPE_IDS
                .contains(t))
            .prop_map(|(type_id, payload)| Message::Unknown { type_id, payload }),
    ];
    if control {
        prop_oneof![
            (1..=0x7FFF_FFFFu32).prop_map(Message::SetChunkSize),
            any::<u32>().prop_map(|chunk_stream_id| Message::Abort { chunk_stream_id }),
            common,
        ]
        .boxed()
    } else {
        common.boxed()
    }
}

/// Equality that treats NaN as equal to NaN (f64 fields anywhere in the value).
fn same(a: &Message, b: &Message) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

proptest! {
    #[test]
    fn message_body_round_trips(message in message(true), stream_id: u32, timestamp: u32) {
        let raw = message.to_raw(stream_id, timestamp).expect("encode");
        prop_assert_eq!(raw.type_id, message.type_id());
        prop_assert_eq!((raw.stream_id, raw.timestamp), (stream_id, timestamp));
        let back = Message::decode(&raw, &AmfLimits::default()).expect("decode");
        prop_assert!(same(&back, &message), "{:?} != {:?}", back, message);
        // And the body is a fixed point.
        prop_assert_eq!(back.encode_body().expect("re-encode"), raw.payload);
    }

    #[test]
    fn messages_round_trip_through_the_chunk_layer(
        messages in prop::collection::vec(
            (message(false), 2..400u32, 0..3u32, prop_oneof![0..100_000u32, any::<u32>()]),
            1..12,
        ),
        chunk_size in prop_oneof![1..300u32, Just(128u32), Just(4096u32)],
        stateless: bool,
        seed: u64,
    ) {
        let mut encoder = ChunkEncoder::new();
        let mut wire = BytesMut::new();
        if !stateless {
            encoder.set_chunk_size(chunk_size, &mut wire);
        }
        let mut sent = Vec::new();
        for (message, csid, stream_id, timestamp) in &messages {
            let raw = message.to_raw(*stream_id, *timestamp).expect("encode");
            if stateless {
                // The fan-out path: fmt 0 + fmt 3 chunks, valid whatever came before on
                // the chunk stream id; the peer reads at the default chunk size here.
                chunk_message(*csid, &raw, 128, &mut wire);
            } else {
                encoder.encode(*csid, &raw, &mut wire);
            }
            sent.push(raw);
        }
        let sizes = read_sizes(seed, 1 + seed % 700, wire.len());
        let (received, final_size) = dechunk_with(&wire, &sizes);
        let mut received = received.into_iter();
        if !stateless {
            prop_assert_eq!(received.next().map(|m| m.type_id), Some(type_id::SET_CHUNK_SIZE));
            prop_assert_eq!(final_size, chunk_size);
        }
        let received: Vec<RawMessage> = received.collect();
        prop_assert_eq!(&received, &sent);
        for (raw, (message, ..)) in received.iter().zip(&messages) {
            let back = Message::decode(raw, &AmfLimits::default()).expect("decode");
            prop_assert!(same(&back, message), "{:?} != {:?}", back, message);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reproducers of core bugs found by fuzzing, fixed since
// ---------------------------------------------------------------------------------------------

/// Found by the `amf3` fuzz target. The AMF3 value budget charged a string *reference*
/// 1 + len/64 values but an *inline* string 1, and the encoder turns every repeated string
/// into a reference: so a value that decoded within `max_values` could have an encoding that
/// the same decoder with the same limits rejected (`TooManyValues`). Now every copy of a
/// payload costs the same, inline or not.
#[test]
fn amf3_reencoded_value_fits_the_budget_it_decoded_in() {
    use reflector::protocol::amf3;

    let tight = AmfLimits {
        max_depth: 8,
        max_values: 10,
    };
    let limits = AmfLimits {
        max_depth: 8,
        max_values: 30,
    };
    // Dense array (U29A 2 << 1 | 1, no associative part) of the same 640-byte string twice,
    // both inline (U29S 640 << 1 | 1 = 0x8A 0x01): 1 + 2 × (1 + 640/64) = 23 values.
    let mut input = vec![0x09, 0x05, 0x01];
    for _ in 0..2 {
        input.extend_from_slice(&[0x06, 0x8A, 0x01]);
        input.extend_from_slice(&[b'x'; 640]);
    }
    assert!(
        amf3::decode(&mut &input[..], &tight).is_err(),
        "23 values do not fit a budget of 10"
    );
    let value = amf3::decode(&mut &input[..], &limits).expect("23 values fit a budget of 30");
    let mut encoded = Vec::new();
    amf3::encode(&value, &mut encoded).expect("encode");
    // The second copy is now a string reference, charged 1 + 640 / 64 = 11 values, as the
    // inline copy was.
    assert_eq!(encoded.len(), 3 + 3 + 640 + 2);
    match amf3::decode(&mut &encoded[..], &limits) {
        Ok(again) => assert_eq!(again, value),
        Err(error) => panic!("the encoding of an accepted value is rejected: {error:?}"),
    }
}

/// Found by the `command` fuzz target. AMF0 references stay unresolved
/// (`Amf0Value::Reference(index)` into the message's table of complex values), and
/// `Command::parse` lifts values out of their message: rebuilt with `to_values`, the
/// reference can point at nothing (or at another value) and the message no longer decodes.
#[test]
fn command_with_amf0_reference_survives_to_values() {
    // "onStatus", 0, {} (complex value 0), reference to complex value 0: info is that object.
    let mut body = vec![0x02, 0x00, 0x08];
    body.extend_from_slice(b"onStatus");
    body.extend_from_slice(&[0x00, 0, 0, 0, 0, 0, 0, 0, 0]);
    body.extend_from_slice(&[0x03, 0x00, 0x00, 0x09]);
    body.extend_from_slice(&[0x07, 0x00, 0x00]);
    let values = amf0::decode_all(&body, &AmfLimits::default()).expect("valid AMF0");
    let command = Command::parse(&values).expect("parses");
    let mut rebuilt = Vec::new();
    amf0::encode_all(&command.to_values(), &mut rebuilt).expect("encode");
    let again = amf0::decode_all(&rebuilt, &AmfLimits::default()).expect("rebuilt decodes");
    assert_eq!(Command::parse(&again), Ok(command));
}
