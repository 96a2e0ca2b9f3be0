//! Synthetic FLV media for tests and load generation: well-formed FLV tag bodies (FLV spec
//! v10.1 §E.4.2, §E.4.3) with a sequence number in every frame, so that a player can check
//! order and loss without decoding anything.
//!
//! The H.264 sequence header is a real AVCDecoderConfigurationRecord (ISO 14496-15 §5.2.4.1)
//! for 320x240; the frames behind it are not decodable slices (their NAL units carry a marker
//! and the sequence number), which is all a reflector needs: it only reads the FLV headers.

use bytes::{BufMut, Bytes, BytesMut};

use crate::protocol::amf0::{self, Amf0Value};
use crate::protocol::message::{type_id, RawMessage};

/// SPS of a 320x240 H.264 Constrained Baseline stream (level 1.3), made once with
/// `ffmpeg -f lavfi -i testsrc2=size=320x240:rate=25 -frames:v 1 -c:v libx264
/// -profile:v baseline -bsf:v h264_mp4toannexb -f h264` and copied out of the Annex B stream.
pub const SPS_320X240: [u8; 24] = [
    0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
    0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80,
];
/// The PPS from the same stream.
pub const PPS_320X240: [u8; 5] = [0x68, 0xcb, 0x83, 0xcb, 0x20];

/// AudioSpecificConfig for AAC-LC, 44.1 kHz, stereo (ISO 14496-3 §1.6.2.1): object type 2,
/// frequency index 4, channel configuration 2.
pub const AAC_LC_44100_STEREO: [u8; 2] = [0x12, 0x10];

/// Marker that precedes the sequence number in synthetic frames.
const MARKER: &[u8; 4] = b"SEQ#";

/// FLV VideoTagHeader byte: frame type (1 key, 2 inter) << 4 | codec id 7 (AVC).
const AVC_KEYFRAME: u8 = 0x17;
const AVC_INTER: u8 = 0x27;
/// FLV AudioTagHeader byte: sound format 10 (AAC), 44 kHz, 16-bit, stereo.
const AAC_HEADER: u8 = 0xAF;

/// The AVC sequence header tag body: `0x17 0x00 cts(0)` + AVCDecoderConfigurationRecord with
/// one SPS and one PPS and 4-byte NAL lengths.
pub fn avc_sequence_header() -> Bytes {
    let mut out = BytesMut::with_capacity(5 + 11 + SPS_320X240.len() + PPS_320X240.len());
    out.put_slice(&[AVC_KEYFRAME, 0x00, 0, 0, 0]);
    out.put_u8(1); // configurationVersion
    out.put_slice(&SPS_320X240[1..4]); // profile, compatibility, level
    out.put_u8(0xFC | 3); // reserved bits + lengthSizeMinusOne = 3
    out.put_u8(0xE0 | 1); // reserved bits + one SPS
    out.put_u16(SPS_320X240.len() as u16);
    out.put_slice(&SPS_320X240);
    out.put_u8(1); // one PPS
    out.put_u16(PPS_320X240.len() as u16);
    out.put_slice(&PPS_320X240);
    out.freeze()
}

/// The AAC sequence header tag body: `0xAF 0x00` + AudioSpecificConfig.
pub fn aac_sequence_header() -> Bytes {
    let mut out = BytesMut::with_capacity(4);
    out.put_slice(&[AAC_HEADER, 0x00]);
    out.put_slice(&AAC_LC_44100_STEREO);
    out.freeze()
}

/// A video frame tag body: `0x17|0x27 0x01 cts(0)`, then one length-prefixed NAL unit (IDR
/// slice type 5 for keyframes, non-IDR slice type 1 otherwise) holding the marker, `seq`
/// (big-endian u64) and zero padding up to `size` bytes of tag body.
pub fn video_frame(seq: u64, keyframe: bool, size: usize) -> Bytes {
    let nal_len = (size.saturating_sub(9)).max(1 + MARKER.len() + 8);
    let mut out = BytesMut::with_capacity(9 + nal_len);
    out.put_slice(&[
        if keyframe { AVC_KEYFRAME } else { AVC_INTER },
        0x01,
        0,
        0,
        0,
    ]);
    out.put_u32(nal_len as u32);
    out.put_u8(if keyframe { 0x65 } else { 0x41 });
    out.put_slice(MARKER);
    out.put_u64(seq);
    out.resize(9 + nal_len, 0);
    out.freeze()
}

/// A raw AAC frame tag body: `0xAF 0x01`, the marker, `seq` and padding up to `size` bytes.
pub fn aac_frame(seq: u64, size: usize) -> Bytes {
    let len = size.max(2 + MARKER.len() + 8);
    let mut out = BytesMut::with_capacity(len);
    out.put_slice(&[AAC_HEADER, 0x01]);
    out.put_slice(MARKER);
    out.put_u64(seq);
    out.resize(len, 0);
    out.freeze()
}

/// The sequence number of a frame made by [`video_frame`], `None` for anything else
/// (sequence headers included).
pub fn video_seq(payload: &[u8]) -> Option<u64> {
    if payload.get(1) != Some(&0x01) {
        return None;
    }
    read_seq(payload.get(10..)?)
}

/// The sequence number of a frame made by [`aac_frame`], `None` for anything else.
pub fn audio_seq(payload: &[u8]) -> Option<u64> {
    if payload.get(..2) != Some(&[AAC_HEADER, 0x01][..]) {
        return None;
    }
    read_seq(payload.get(2..)?)
}

fn read_seq(rest: &[u8]) -> Option<u64> {
    let rest = rest.strip_prefix(&MARKER[..])?;
    let bytes: [u8; 8] = rest.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Whether a video tag body is an AVC keyframe NALU packet (`0x17 0x01`).
pub fn is_keyframe(payload: &[u8]) -> bool {
    payload.get(..2) == Some(&[AVC_KEYFRAME, 0x01][..])
}

/// Whether a video tag body is an AVC sequence header (`0x17 0x00`).
pub fn is_video_sequence_header(payload: &[u8]) -> bool {
    payload.get(..2) == Some(&[AVC_KEYFRAME, 0x00][..])
}

/// Whether an audio tag body is an AAC sequence header (`0xAF 0x00`).
pub fn is_audio_sequence_header(payload: &[u8]) -> bool {
    payload.get(..2) == Some(&[AAC_HEADER, 0x00][..])
}

/// Shape of a synthetic stream.
#[derive(Debug, Clone)]
pub struct SynthConfig {
    /// Video frames per second (timestamps advance by 1000/fps ms).
    pub fps: u32,
    /// A keyframe every `gop` video frames, starting with the first.
    pub gop: u32,
    /// Send AAC audio (1024 samples at 44.1 kHz per frame) between the video frames.
    pub audio: bool,
    /// Tag body sizes in bytes.
    pub keyframe_size: usize,
    pub inter_size: usize,
    pub audio_size: usize,
    /// Added to every sequence number (video and audio), to tell publishers apart.
    pub seq_base: u64,
    /// Message stream id put on the messages (the publisher's `createStream` result).
    pub stream_id: u32,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            fps: 25,
            gop: 25,
            audio: true,
            keyframe_size: 2000,
            inter_size: 300,
            audio_size: 64,
            seq_base: 0,
            stream_id: 1,
        }
    }
}

/// Generates a stream's messages in timestamp order: [`Synth::headers`] once, then
/// [`Synth::next_tick`] per video frame.
#[derive(Debug, Clone)]
pub struct Synth {
    config: SynthConfig,
    video_frames: u64,
    audio_frames: u64,
}

impl Synth {
    pub fn new(config: SynthConfig) -> Self {
        Synth {
            config,
            video_frames: 0,
            audio_frames: 0,
        }
    }

    pub fn config(&self) -> &SynthConfig {
        &self.config
    }

    /// Video frames generated so far (the next one's index).
    pub fn video_frames(&self) -> u64 {
        self.video_frames
    }

    fn message(&self, type_id: u8, timestamp: u32, payload: Bytes) -> RawMessage {
        RawMessage {
            type_id,
            stream_id: self.config.stream_id,
            timestamp,
            payload,
        }
    }

    fn video_timestamp(&self, frame: u64) -> u32 {
        (frame * 1000 / u64::from(self.config.fps.max(1))) as u32
    }

    fn audio_timestamp(frame: u64) -> u32 {
        (frame * 1024 * 1000 / 44_100) as u32
    }

    /// `@setDataFrame onMetaData {...}` as an encoder sends it.
    pub fn metadata(&self) -> RawMessage {
        let mut props = vec![
            ("width".to_owned(), Amf0Value::Number(320.0)),
            ("height".to_owned(), Amf0Value::Number(240.0)),
            (
                "framerate".to_owned(),
                Amf0Value::Number(f64::from(self.config.fps)),
            ),
            ("videocodecid".to_owned(), Amf0Value::Number(7.0)),
        ];
        if self.config.audio {
            props.push(("audiocodecid".to_owned(), Amf0Value::Number(10.0)));
            props.push(("audiosamplerate".to_owned(), Amf0Value::Number(44_100.0)));
            props.push(("stereo".to_owned(), Amf0Value::Boolean(true)));
        }
        props.push((
            "encoder".to_owned(),
            Amf0Value::String("reflector synth".to_owned()),
        ));
        let values = [
            Amf0Value::String("@setDataFrame".to_owned()),
            Amf0Value::String("onMetaData".to_owned()),
            Amf0Value::EcmaArray(props),
        ];
        let mut body = Vec::new();
        // Encoding our own well-formed values cannot fail; an empty body would only mean a
        // bug here, which the tests would see.
        let _ = amf0::encode_all(&values, &mut body);
        self.message(type_id::DATA_AMF0, 0, Bytes::from(body))
    }

    /// Metadata, then the video and (if enabled) audio sequence headers, at the current time.
    pub fn headers(&self) -> Vec<RawMessage> {
        let ts = self.video_timestamp(self.video_frames);
        let mut out = vec![
            self.metadata(),
            self.message(type_id::VIDEO, ts, avc_sequence_header()),
        ];
        if self.config.audio {
            out.push(self.message(type_id::AUDIO, ts, aac_sequence_header()));
        }
        out
    }

    /// The next video frame, preceded by the audio frames due before it. The video frame's
    /// sequence number is `seq_base + index`; audio frames count on their own.
    pub fn next_tick(&mut self, out: &mut Vec<RawMessage>) {
        let n = self.video_frames;
        let ts = self.video_timestamp(n);
        if self.config.audio {
            while Self::audio_timestamp(self.audio_frames) <= ts {
                let ats = Self::audio_timestamp(self.audio_frames);
                let seq = self.config.seq_base + self.audio_frames;
                out.push(self.message(type_id::AUDIO, ats, aac_frame(seq, self.config.audio_size)));
                self.audio_frames += 1;
            }
        }
        let key = n % u64::from(self.config.gop.max(1)) == 0;
        let size = if key {
            self.config.keyframe_size
        } else {
            self.config.inter_size
        };
        out.push(self.message(
            type_id::VIDEO,
            ts,
            video_frame(self.config.seq_base + n, key, size),
        ));
        self.video_frames += 1;
    }

    /// Audio frames generated so far.
    pub fn audio_frames(&self) -> u64 {
        self.audio_frames
    }

    /// Whether the next [`Synth::next_tick`] starts with a keyframe.
    pub fn next_is_keyframe(&self) -> bool {
        self.video_frames % u64::from(self.config.gop.max(1)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::media::{inspect_audio, inspect_video, video_params};

    #[test]
    fn sequence_header_is_a_valid_320x240_record() {
        let header = avc_sequence_header();
        let tag = inspect_video(&header).expect("inspect");
        assert!(tag.is_sequence_header());
        let p = video_params(&header).expect("params");
        assert_eq!((p.width, p.height), (320, 240));
    }

    #[test]
    fn frames_are_classified_and_carry_their_number() {
        let key = video_frame(7, true, 100);
        assert_eq!(key.len(), 100);
        assert!(inspect_video(&key).expect("key").is_keyframe());
        assert!(is_keyframe(&key));
        assert_eq!(video_seq(&key), Some(7));
        let inter = video_frame(8, false, 10);
        assert!(!inspect_video(&inter).expect("inter").is_keyframe());
        assert_eq!(video_seq(&inter), Some(8));
        assert_eq!(video_seq(&avc_sequence_header()), None);
        let audio = aac_frame(3, 40);
        assert!(!inspect_audio(&audio).expect("audio").is_sequence_header());
        assert_eq!(audio_seq(&audio), Some(3));
        assert!(inspect_audio(&aac_sequence_header())
            .expect("asc")
            .is_sequence_header());
    }

    #[test]
    fn ticks_interleave_audio_in_time_order() {
        let mut s = Synth::new(SynthConfig {
            gop: 3,
            ..SynthConfig::default()
        });
        let mut out = Vec::new();
        for _ in 0..10 {
            s.next_tick(&mut out);
        }
        let video: Vec<_> = out.iter().filter(|m| m.type_id == type_id::VIDEO).collect();
        assert_eq!(video.len(), 10);
        assert!(video.iter().step_by(3).all(|m| is_keyframe(&m.payload)));
        assert!(out.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
        assert!(out.iter().any(|m| m.type_id == type_id::AUDIO));
    }
}
