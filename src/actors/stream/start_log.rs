//! The publish-start line: once per publish, what is being published (codecs, with the FourCC
//! for Enhanced RTMP, picture size, frame rate, bitrate), from `onMetaData` and the sequence
//! headers, with rates measured from the media when the metadata lacks them. Logged when all
//! of it is known, or after [`GIVE_UP_MS`] of media (or the stream's end) with what is known.

use std::fmt;

use crate::actors::{Frame, FrameKind, HeaderRole};
use crate::protocol::amf0::{self, Amf0Value, AmfLimits};
use crate::protocol::media::{self, fourcc_str, video_params, AudioCodec};

/// Media time measured before a measured frame rate or bitrate counts as known.
pub const MEASURE_MS: u32 = 2_000;
/// Media time after which the line is logged with what is known.
pub const GIVE_UP_MS: u32 = 5_000;

/// What `onMetaData` announced (FLV spec v10.1 §E.5 onMetaData properties).
#[derive(Debug, Default, Clone, PartialEq)]
struct Metadata {
    video: bool,
    audio: bool,
    size: Option<(u32, u32)>,
    fps: Option<f64>,
    /// videodatarate + audiodatarate, kbit/s.
    kbps: Option<f64>,
    encoder: Option<String>,
}

impl Metadata {
    /// From `onMetaData`'s values (after `@setDataFrame` was stripped).
    fn parse(values: &[Amf0Value]) -> Option<Self> {
        let props = values.get(1)?;
        let num = |k: &str| props.get(k).and_then(Amf0Value::as_f64);
        let positive = |k: &str| num(k).filter(|v| v.is_finite() && *v > 0.0);
        let size = match (positive("width"), positive("height")) {
            (Some(w), Some(h)) if w < 100_000.0 && h < 100_000.0 => Some((w as u32, h as u32)),
            _ => None,
        };
        let kbps = match (positive("videodatarate"), positive("audiodatarate")) {
            (None, None) => None,
            (v, a) => Some(v.unwrap_or(0.0) + a.unwrap_or(0.0)),
        };
        Some(Metadata {
            video: props.get("videocodecid").is_some() || size.is_some(),
            audio: props.get("audiocodecid").is_some(),
            size,
            fps: positive("framerate").or_else(|| positive("fps")),
            kbps,
            encoder: props
                .get("encoder")
                .and_then(Amf0Value::as_str)
                .map(str::to_owned),
        })
    }
}

/// What the line says.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    pub video: Option<String>,
    pub audio: Option<String>,
    pub size: Option<(u32, u32)>,
    pub fps: Option<f64>,
    pub kbps: Option<f64>,
    pub encoder: Option<String>,
}

/// A field of the line: its value or `unknown`.
pub struct Known<T>(pub Option<T>);

impl fmt::Display for Known<(u32, u32)> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some((w, h)) => write!(f, "{w}x{h}"),
            None => f.write_str("unknown"),
        }
    }
}

impl fmt::Display for Known<f64> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) if v >= 100.0 => write!(f, "{v:.0}"),
            Some(v) => write!(f, "{v:.2}"),
            None => f.write_str("unknown"),
        }
    }
}

/// Collects what a publish carries until it can be logged.
#[derive(Debug, Default)]
pub struct StartLog {
    done: bool,
    video: Option<String>,
    audio: Option<String>,
    header_size: Option<(u32, u32)>,
    meta: Option<Metadata>,
    /// Audio and video frames (sequence headers left out): first and last time, bytes after
    /// the first.
    first_ms: Option<u32>,
    last_ms: u32,
    bytes: u64,
    video_first_ms: Option<u32>,
    video_last_ms: u32,
    video_frames: u64,
}

/// The codec of a video message, with its FourCC when it came in an E-RTMP header.
fn video_label(payload: &[u8]) -> Option<String> {
    let tag = media::inspect_video(payload).ok()?;
    let codec = tag.codec();
    Some(match codec.fourcc().filter(|_| tag.enhanced) {
        Some(code) => format!("{codec} ({})", fourcc_str(code)),
        None => codec.to_string(),
    })
}

/// The E-RTMP AudioFourCc of a codec that has one.
fn audio_fourcc(codec: AudioCodec) -> Option<String> {
    Some(match codec {
        AudioCodec::Aac => "mp4a".to_owned(),
        AudioCodec::Mp3 => ".mp3".to_owned(),
        AudioCodec::Opus => "Opus".to_owned(),
        AudioCodec::Flac => "fLaC".to_owned(),
        AudioCodec::Ac3 => "ac-3".to_owned(),
        AudioCodec::Eac3 => "ec-3".to_owned(),
        AudioCodec::Other(code) if code > 0xFF => fourcc_str(code),
        _ => return None,
    })
}

fn audio_label(payload: &[u8]) -> Option<String> {
    let tag = media::inspect_audio(payload).ok()?;
    let codec = tag.codec();
    Some(match audio_fourcc(codec).filter(|_| tag.enhanced) {
        Some(code) => format!("{codec} ({code})"),
        None => codec.to_string(),
    })
}

impl StartLog {
    /// Whether the line was logged (nothing more to collect).
    pub fn done(&self) -> bool {
        self.done
    }

    /// Note a frame; the summary when the line is due now.
    pub fn frame(&mut self, frame: &Frame, limits: &AmfLimits) -> Option<Summary> {
        if self.done {
            return None;
        }
        let header = frame.role.is_some();
        match frame.kind {
            FrameKind::Data if frame.role == Some(HeaderRole::StreamMetadata) => {
                // An AMF3 data message starts with a 0 byte before its AMF0 values.
                let body = match frame.payload.first() {
                    Some(0) => &frame.payload[1..],
                    _ => &frame.payload[..],
                };
                if let Ok(values) = amf0::decode_all(body, limits) {
                    if let Some(meta) = Metadata::parse(&values) {
                        self.meta = Some(meta);
                    }
                }
            }
            FrameKind::Data => {}
            FrameKind::Video => {
                if self.video.is_none() {
                    self.video = video_label(&frame.payload);
                }
                if frame.role == Some(HeaderRole::SequenceStart) {
                    if let Some(p) = video_params(&frame.payload) {
                        self.header_size = Some((p.width, p.height));
                    }
                }
                if !header {
                    self.media(frame);
                    let t = frame.timestamp;
                    self.video_first_ms.get_or_insert(t);
                    self.video_last_ms = t;
                    self.video_frames += 1;
                }
            }
            FrameKind::Audio => {
                if self.audio.is_none() {
                    self.audio = audio_label(&frame.payload);
                }
                if !header {
                    self.media(frame);
                }
            }
        }
        let due = self.complete() || self.media_ms() >= GIVE_UP_MS;
        due.then(|| self.finish()).flatten()
    }

    fn media(&mut self, frame: &Frame) {
        if self.first_ms.is_none() {
            self.first_ms = Some(frame.timestamp);
        } else {
            self.bytes += frame.payload.len() as u64;
        }
        self.last_ms = frame.timestamp;
    }

    fn media_ms(&self) -> u32 {
        self.first_ms
            .map_or(0, |first| self.last_ms.wrapping_sub(first))
            .min(i32::MAX as u32)
    }

    fn measured_fps(&self) -> Option<f64> {
        let span = self.video_last_ms.wrapping_sub(self.video_first_ms?);
        (span >= MEASURE_MS && span <= i32::MAX as u32 && self.video_frames > 1)
            .then(|| (self.video_frames - 1) as f64 * 1000.0 / f64::from(span))
    }

    fn measured_kbps(&self) -> Option<f64> {
        let span = self.media_ms();
        (span >= MEASURE_MS).then(|| self.bytes as f64 * 8.0 / f64::from(span))
    }

    /// Everything the line reports, as far as known now.
    fn summary(&self) -> Summary {
        let meta = self.meta.clone().unwrap_or_default();
        Summary {
            video: self.video.clone(),
            audio: self.audio.clone(),
            size: self.header_size.or(meta.size),
            fps: meta.fps.or_else(|| self.measured_fps()),
            kbps: meta.kbps.or_else(|| self.measured_kbps()),
            encoder: meta.encoder,
        }
    }

    /// Whether everything expected is known: the tracks `onMetaData` announced (without it,
    /// audio and video), their codecs, the picture size, the frame rate and the bitrate.
    fn complete(&self) -> bool {
        let (video, audio) = match &self.meta {
            Some(m) if m.video || m.audio => (m.video, m.audio),
            _ => (true, true),
        };
        let s = self.summary();
        (!video || (s.video.is_some() && s.size.is_some() && s.fps.is_some()))
            && (!audio || s.audio.is_some())
            && s.kbps.is_some()
    }

    /// The summary, once: `None` if it was logged already or no media came at all.
    pub fn finish(&mut self) -> Option<Summary> {
        if self.done || (self.first_ms.is_none() && self.video.is_none() && self.audio.is_none()) {
            return None;
        }
        self.done = true;
        Some(self.summary())
    }
}

#[cfg(test)]
mod tests;
