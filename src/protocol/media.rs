//! Audio/video tag inspection: what an RTMP audio (type 8) or video (type 9) message carries,
//! without decoding any media.
//!
//! The reflector forwards media untouched, but it must classify every message: keyframes start
//! a GOP in the late-joiner cache, sequence headers are cached per track, and the slow-player
//! drop policy sheds disposable and then inter frames before anything else. The message payload
//! of an RTMP media message is an FLV tag body, so the layouts are those of the Adobe FLV spec
//! v10.1 (Annex E.4.2.1 AudioTagHeader, E.4.3.1 VideoTagHeader) as extended by Enhanced RTMP
//! (veovera `enhanced-rtmp` v1 and v2: ExVideoTagHeader / ExAudioTagHeader, FourCC codecs,
//! multitrack and ModEx).
//!
//! For the admin API it also pulls cheap facts out of sequence headers: the picture size from
//! the H.264 or HEVC SPS (or the AV1 sequence header OBU), and the sample rate and channel count
//! from an AAC AudioSpecificConfig, an Opus ID header or a FLAC STREAMINFO block.
//!
//! Everything here is bounded and panic-free on arbitrary bytes: malformed input is a
//! [`MediaError`], and allocation only ever follows bytes that actually arrived.

use std::fmt;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a media payload could not be inspected.
///
/// An empty payload gets its own variant because zero-length audio/video messages occur in the
/// wild (E-RTMP v2 calls an empty audio message an "audio silence" message); callers usually
/// forward those without classifying them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// The message payload has no bytes at all.
    #[error("empty media payload")]
    Empty,
    /// The payload ends before a field it announces.
    #[error("truncated {what}: need {needed} byte(s) at offset {offset}, only {available} left")]
    Truncated {
        /// The structure being read.
        what: &'static str,
        /// Byte offset (from the start of the structure handed in) where the field starts.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// A video FrameType value the specs reserve (0, and 6/7 in E-RTMP).
    #[error("reserved video frame type {value}")]
    ReservedFrameType {
        /// The 3- or 4-bit value found.
        value: u8,
    },
    /// A packet type (AVCPacketType, AACPacketType, VideoPacketType, AudioPacketType) that the
    /// specs reserve, or that is not allowed where it appears (e.g. Multitrack inside Multitrack).
    #[error("unknown or misplaced {what} packet type {value}")]
    UnknownPacketType {
        /// Which enumeration the value belongs to.
        what: &'static str,
        /// The value found.
        value: u8,
    },
    /// An AvMultitrackType value the spec reserves (3..=15).
    #[error("reserved {what} multitrack type {value}")]
    UnknownMultitrackType {
        /// "audio" or "video".
        what: &'static str,
        /// The value found.
        value: u8,
    },
    /// A codec configuration or parameter set whose contents are out of range or run out of
    /// bits.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// The structure being parsed (e.g. "H.264 SPS").
        what: &'static str,
        /// What was wrong with it.
        reason: &'static str,
    },
}

type Result<T> = std::result::Result<T, MediaError>;

// ---------------------------------------------------------------------------------------------
// FourCC
// ---------------------------------------------------------------------------------------------

const fn fourcc(code: &[u8; 4]) -> u32 {
    u32::from_be_bytes(*code)
}

/// E-RTMP VideoFourCc `avc1` (H.264).
pub const FOURCC_AVC1: u32 = fourcc(b"avc1");
/// E-RTMP VideoFourCc `hvc1` (HEVC).
pub const FOURCC_HVC1: u32 = fourcc(b"hvc1");
/// E-RTMP VideoFourCc `av01` (AV1).
pub const FOURCC_AV01: u32 = fourcc(b"av01");
/// E-RTMP VideoFourCc `vp09` (VP9).
pub const FOURCC_VP09: u32 = fourcc(b"vp09");
/// E-RTMP VideoFourCc `vp08` (VP8; reported as [`VideoCodec::Other`]).
pub const FOURCC_VP08: u32 = fourcc(b"vp08");
/// E-RTMP AudioFourCc `Opus`.
pub const FOURCC_OPUS: u32 = fourcc(b"Opus");
/// E-RTMP AudioFourCc `fLaC`.
pub const FOURCC_FLAC: u32 = fourcc(b"fLaC");
/// E-RTMP AudioFourCc `ac-3`.
pub const FOURCC_AC3: u32 = fourcc(b"ac-3");
/// E-RTMP AudioFourCc `ec-3`.
pub const FOURCC_EAC3: u32 = fourcc(b"ec-3");
/// E-RTMP AudioFourCc `mp4a` (AAC).
pub const FOURCC_MP4A: u32 = fourcc(b"mp4a");
/// E-RTMP AudioFourCc `.mp3`.
pub const FOURCC_MP3: u32 = fourcc(b".mp3");

/// Renders a FourCC for display: the four characters when they are printable ASCII, otherwise
/// the value in hex (`0x…`), so a hostile code can never inject control characters into logs.
pub fn fourcc_str(code: u32) -> String {
    let bytes = code.to_be_bytes();
    if bytes.iter().all(|b| (0x20..=0x7e).contains(b)) {
        bytes.iter().map(|&b| char::from(b)).collect()
    } else {
        format!("{code:#010x}")
    }
}

// ---------------------------------------------------------------------------------------------
// Codecs and classification enums
// ---------------------------------------------------------------------------------------------

/// A video codec, from a legacy FLV CodecID or an E-RTMP VideoFourCc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// CodecID 2: Sorenson H.263.
    H263,
    /// CodecID 3: Screen video.
    Screen,
    /// CodecID 4: On2 VP6.
    Vp6,
    /// CodecID 5: On2 VP6 with alpha channel.
    Vp6Alpha,
    /// CodecID 6: Screen video version 2.
    Screen2,
    /// CodecID 7 or FourCC `avc1`: H.264 / AVC.
    Avc,
    /// CodecID 12: HEVC in the non-standard legacy layout (same as AVC's) used by Chinese CDNs
    /// and OBS forks before E-RTMP.
    LegacyHevc,
    /// FourCC `hvc1`: HEVC via E-RTMP.
    Hevc,
    /// FourCC `av01`: AV1.
    Av1,
    /// FourCC `vp09`: VP9.
    Vp9,
    /// Anything else: the legacy CodecID (0..=15) or the FourCC (e.g. `vp08`).
    Other(u32),
}

impl VideoCodec {
    /// Maps a legacy FLV CodecID (the low nibble of the first video byte).
    pub fn from_codec_id(id: u8) -> VideoCodec {
        match id {
            2 => VideoCodec::H263,
            3 => VideoCodec::Screen,
            4 => VideoCodec::Vp6,
            5 => VideoCodec::Vp6Alpha,
            6 => VideoCodec::Screen2,
            7 => VideoCodec::Avc,
            12 => VideoCodec::LegacyHevc,
            other => VideoCodec::Other(u32::from(other)),
        }
    }

    /// Maps an E-RTMP VideoFourCc.
    /// The Enhanced RTMP FourCC of this codec, if it has one.
    pub fn fourcc(self) -> Option<u32> {
        match self {
            VideoCodec::Avc => Some(FOURCC_AVC1),
            VideoCodec::Hevc | VideoCodec::LegacyHevc => Some(FOURCC_HVC1),
            VideoCodec::Av1 => Some(FOURCC_AV01),
            VideoCodec::Vp9 => Some(FOURCC_VP09),
            VideoCodec::Other(code) if code > 0xFF => Some(code),
            _ => None,
        }
    }

    pub fn from_fourcc(code: u32) -> VideoCodec {
        match code {
            FOURCC_AVC1 => VideoCodec::Avc,
            FOURCC_HVC1 => VideoCodec::Hevc,
            FOURCC_AV01 => VideoCodec::Av1,
            FOURCC_VP09 => VideoCodec::Vp9,
            other => VideoCodec::Other(other),
        }
    }

    /// Whether coded frames of this codec carry an SI24 CompositionTime (H.264 and HEVC, legacy
    /// or E-RTMP).
    fn has_composition_time(self) -> bool {
        matches!(
            self,
            VideoCodec::Avc | VideoCodec::Hevc | VideoCodec::LegacyHevc
        )
    }
}

impl fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VideoCodec::H263 => f.write_str("H.263"),
            VideoCodec::Screen => f.write_str("Screen"),
            VideoCodec::Vp6 => f.write_str("VP6"),
            VideoCodec::Vp6Alpha => f.write_str("VP6A"),
            VideoCodec::Screen2 => f.write_str("Screen2"),
            VideoCodec::Avc => f.write_str("H.264"),
            VideoCodec::LegacyHevc | VideoCodec::Hevc => f.write_str("HEVC"),
            VideoCodec::Av1 => f.write_str("AV1"),
            VideoCodec::Vp9 => f.write_str("VP9"),
            VideoCodec::Other(FOURCC_VP08) => f.write_str("VP8"),
            VideoCodec::Other(id) if *id < 16 => write!(f, "video codec {id}"),
            VideoCodec::Other(code) => f.write_str(&fourcc_str(*code)),
        }
    }
}

/// An audio codec, from a legacy FLV SoundFormat or an E-RTMP AudioFourCc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// SoundFormat 0: linear PCM, platform endian.
    PcmPlatformEndian,
    /// SoundFormat 1: ADPCM.
    Adpcm,
    /// SoundFormat 2 or FourCC `.mp3`: MP3.
    Mp3,
    /// SoundFormat 3: linear PCM, little endian.
    PcmLittleEndian,
    /// SoundFormat 4: Nellymoser 16 kHz mono.
    Nellymoser16kMono,
    /// SoundFormat 5: Nellymoser 8 kHz mono.
    Nellymoser8kMono,
    /// SoundFormat 6: Nellymoser.
    Nellymoser,
    /// SoundFormat 7: G.711 A-law.
    G711ALaw,
    /// SoundFormat 8: G.711 mu-law.
    G711MuLaw,
    /// SoundFormat 10 or FourCC `mp4a`: AAC.
    Aac,
    /// SoundFormat 11: Speex.
    Speex,
    /// SoundFormat 14: MP3 8 kHz.
    Mp3At8k,
    /// SoundFormat 15: device-specific sound.
    DeviceSpecific,
    /// FourCC `Opus`.
    Opus,
    /// FourCC `fLaC`.
    Flac,
    /// FourCC `ac-3`.
    Ac3,
    /// FourCC `ec-3`.
    Eac3,
    /// Anything else: the reserved SoundFormat (12, 13) or the FourCC.
    Other(u32),
}

impl AudioCodec {
    /// Maps a legacy SoundFormat (the high nibble of the first audio byte). 9 is the E-RTMP
    /// ExHeader marker, not a codec, and maps to `Other(9)`.
    pub fn from_sound_format(format: u8) -> AudioCodec {
        match format {
            0 => AudioCodec::PcmPlatformEndian,
            1 => AudioCodec::Adpcm,
            2 => AudioCodec::Mp3,
            3 => AudioCodec::PcmLittleEndian,
            4 => AudioCodec::Nellymoser16kMono,
            5 => AudioCodec::Nellymoser8kMono,
            6 => AudioCodec::Nellymoser,
            7 => AudioCodec::G711ALaw,
            8 => AudioCodec::G711MuLaw,
            10 => AudioCodec::Aac,
            11 => AudioCodec::Speex,
            14 => AudioCodec::Mp3At8k,
            15 => AudioCodec::DeviceSpecific,
            other => AudioCodec::Other(u32::from(other)),
        }
    }

    /// Maps an E-RTMP AudioFourCc.
    pub fn from_fourcc(code: u32) -> AudioCodec {
        match code {
            FOURCC_OPUS => AudioCodec::Opus,
            FOURCC_FLAC => AudioCodec::Flac,
            FOURCC_AC3 => AudioCodec::Ac3,
            FOURCC_EAC3 => AudioCodec::Eac3,
            FOURCC_MP4A => AudioCodec::Aac,
            FOURCC_MP3 => AudioCodec::Mp3,
            other => AudioCodec::Other(other),
        }
    }
}

impl fmt::Display for AudioCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            AudioCodec::PcmPlatformEndian => "PCM",
            AudioCodec::Adpcm => "ADPCM",
            AudioCodec::Mp3 => "MP3",
            AudioCodec::PcmLittleEndian => "PCM-LE",
            AudioCodec::Nellymoser16kMono => "Nellymoser 16k",
            AudioCodec::Nellymoser8kMono => "Nellymoser 8k",
            AudioCodec::Nellymoser => "Nellymoser",
            AudioCodec::G711ALaw => "G.711 A-law",
            AudioCodec::G711MuLaw => "G.711 mu-law",
            AudioCodec::Aac => "AAC",
            AudioCodec::Speex => "Speex",
            AudioCodec::Mp3At8k => "MP3 8k",
            AudioCodec::DeviceSpecific => "device-specific",
            AudioCodec::Opus => "Opus",
            AudioCodec::Flac => "FLAC",
            AudioCodec::Ac3 => "AC-3",
            AudioCodec::Eac3 => "E-AC-3",
            AudioCodec::Other(id) if *id < 16 => return write!(f, "audio format {id}"),
            AudioCodec::Other(code) => return f.write_str(&fourcc_str(*code)),
        };
        f.write_str(name)
    }
}

/// The FLV / E-RTMP VideoFrameType.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoFrameType {
    /// 1: a seekable frame (for AVC/HEVC an IDR/IRAP).
    Key,
    /// 2: a non-seekable frame.
    Inter,
    /// 3: an inter frame nothing else references (H.263 only, per the spec); dropping it
    /// costs no other frame.
    DisposableInter,
    /// 4: a keyframe generated by a server.
    GeneratedKey,
    /// 5: a video info / command frame carrying no picture.
    Command,
}

impl VideoFrameType {
    fn from_raw(value: u8) -> Option<VideoFrameType> {
        match value {
            1 => Some(VideoFrameType::Key),
            2 => Some(VideoFrameType::Inter),
            3 => Some(VideoFrameType::DisposableInter),
            4 => Some(VideoFrameType::GeneratedKey),
            5 => Some(VideoFrameType::Command),
            _ => None,
        }
    }
}

/// What one track of a media message carries, across codecs and header flavours.
///
/// For audio, `Other` means E-RTMP MultichannelConfig (the only audio packet type that is
/// neither a sequence start/end nor coded frames); for video it means a command frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// Decoder configuration a player needs before any frame: AVC/HEVC/AV1/VP9 configuration
    /// record, AAC AudioSpecificConfig, or any E-RTMP SequenceStart / MPEG2TSSequenceStart.
    SequenceHeader,
    /// Coded media frames.
    Coded,
    /// End of sequence (AVC end-of-sequence, E-RTMP SequenceEnd).
    SequenceEnd,
    /// E-RTMP video Metadata (AMF-encoded, e.g. HDR `colorInfo`).
    Metadata,
    /// Anything else (video command frames, audio MultichannelConfig).
    Other,
}

// ---------------------------------------------------------------------------------------------
// Inspection results
// ---------------------------------------------------------------------------------------------

/// One track of a video message. Non-multitrack messages have exactly one, with id 0.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoTrack {
    /// E-RTMP videoTrackId (0 for non-multitrack messages).
    pub track_id: u8,
    /// The track's codec.
    pub codec: VideoCodec,
    /// What the track carries in this message.
    pub kind: PacketKind,
}

/// The classification of one RTMP video message (an FLV VIDEODATA body).
#[derive(Debug, Clone, PartialEq)]
pub struct VideoTag {
    /// The frame type from the first byte (shared by all tracks). For E-RTMP Metadata packets,
    /// where the spec says the frame type is ignored, a reserved value is reported as
    /// [`VideoFrameType::Command`].
    pub frame_type: VideoFrameType,
    /// Whether the E-RTMP ExVideoTagHeader was used (IsExHeader bit set).
    pub enhanced: bool,
    /// The tracks in message order: one for non-multitrack messages (track id 0); never empty
    /// when produced by [`inspect_video`].
    pub tracks: Vec<VideoTrack>,
    /// The CompositionTime offset (ms) of the first track, for codecs that carry one (H.264,
    /// HEVC): the SI24 field, or 0 for E-RTMP CodedFramesX. `None` for other codecs and for
    /// packets without the field.
    pub composition_time: Option<i32>,
}

impl VideoTag {
    /// Whether this message starts a GOP: a key (or generated key) frame carrying coded frames
    /// for at least one track. A sequence header is *not* a keyframe even though its frame type
    /// is Key; it is reported by [`VideoTag::is_sequence_header`].
    pub fn is_keyframe(&self) -> bool {
        matches!(
            self.frame_type,
            VideoFrameType::Key | VideoFrameType::GeneratedKey
        ) && self.tracks.iter().any(|t| t.kind == PacketKind::Coded)
    }

    /// Whether any track carries a sequence header (decoder configuration).
    pub fn is_sequence_header(&self) -> bool {
        self.tracks
            .iter()
            .any(|t| t.kind == PacketKind::SequenceHeader)
    }

    /// Whether any track carries a sequence end.
    pub fn is_sequence_end(&self) -> bool {
        self.tracks
            .iter()
            .any(|t| t.kind == PacketKind::SequenceEnd)
    }

    /// Whether this message is only disposable inter frames: first in line when a slow player
    /// must shed video.
    pub fn is_disposable(&self) -> bool {
        self.frame_type == VideoFrameType::DisposableInter && self.is_all_coded()
    }

    /// Whether this message is only (non-disposable) inter frames: second in line to be shed.
    pub fn is_inter(&self) -> bool {
        self.frame_type == VideoFrameType::Inter && self.is_all_coded()
    }

    /// Whether this is a command frame (no picture, e.g. client-side seek start/end).
    pub fn is_command(&self) -> bool {
        self.frame_type == VideoFrameType::Command
            && self.tracks.iter().all(|t| t.kind == PacketKind::Other)
    }

    /// The codec of the first track (`Other(0)` if there is no track, which [`inspect_video`]
    /// never produces).
    pub fn codec(&self) -> VideoCodec {
        self.tracks
            .first()
            .map_or(VideoCodec::Other(0), |t| t.codec)
    }

    fn is_all_coded(&self) -> bool {
        !self.tracks.is_empty() && self.tracks.iter().all(|t| t.kind == PacketKind::Coded)
    }
}

/// One track of an audio message. Non-multitrack messages have exactly one, with id 0.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioTrack {
    /// E-RTMP audioTrackId (0 for non-multitrack messages).
    pub track_id: u8,
    /// The track's codec.
    pub codec: AudioCodec,
    /// What the track carries in this message.
    pub kind: PacketKind,
}

/// The classification of one RTMP audio message (an FLV AUDIODATA body).
#[derive(Debug, Clone, PartialEq)]
pub struct AudioTag {
    /// Whether the E-RTMP ExAudioTagHeader was used (SoundFormat 9).
    pub enhanced: bool,
    /// The tracks in message order: one for non-multitrack messages (track id 0); never empty
    /// when produced by [`inspect_audio`].
    pub tracks: Vec<AudioTrack>,
}

impl AudioTag {
    /// Whether any track carries a sequence header (AAC AudioSpecificConfig, E-RTMP
    /// SequenceStart).
    pub fn is_sequence_header(&self) -> bool {
        self.tracks
            .iter()
            .any(|t| t.kind == PacketKind::SequenceHeader)
    }

    /// Whether any track carries a sequence end.
    pub fn is_sequence_end(&self) -> bool {
        self.tracks
            .iter()
            .any(|t| t.kind == PacketKind::SequenceEnd)
    }

    /// Whether any track carries an E-RTMP MultichannelConfig, which, like a sequence header,
    /// a late joiner needs before the coded frames make sense.
    pub fn is_multichannel_config(&self) -> bool {
        self.enhanced && self.tracks.iter().any(|t| t.kind == PacketKind::Other)
    }

    /// The codec of the first track (`Other(0)` if there is no track, which [`inspect_audio`]
    /// never produces).
    pub fn codec(&self) -> AudioCodec {
        self.tracks
            .first()
            .map_or(AudioCodec::Other(0), |t| t.codec)
    }
}

// ---------------------------------------------------------------------------------------------
// Byte reader
// ---------------------------------------------------------------------------------------------

/// A bounds-checked cursor; every read either succeeds or yields `Truncated`.
struct ByteReader<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset of `data[0]` within the structure reported in errors.
    base: usize,
    what: &'static str,
}

impl<'a> ByteReader<'a> {
    fn new(data: &'a [u8], what: &'static str) -> Self {
        ByteReader {
            data,
            pos: 0,
            base: 0,
            what,
        }
    }

    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    fn offset(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let slice = self
            .pos
            .checked_add(n)
            .and_then(|end| self.data.get(self.pos..end));
        match slice {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(MediaError::Truncated {
                what: self.what,
                offset: self.offset(),
                needed: n,
                available: self.remaining(),
            }),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u24(&mut self) -> Result<u32> {
        let [a, b, c] = self.array()?;
        Ok(u32::from_be_bytes([0, a, b, c]))
    }

    fn si24(&mut self) -> Result<i32> {
        let [a, b, c] = self.array()?;
        // Arithmetic shift of the value placed in the top 24 bits sign-extends it.
        Ok(i32::from_be_bytes([a, b, c, 0]) >> 8)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Takes everything left, as a sub-reader keeping absolute offsets.
    fn rest(&mut self) -> ByteReader<'a> {
        let start = self.pos;
        self.pos = self.data.len();
        ByteReader {
            data: self.data.get(start..).unwrap_or_default(),
            pos: 0,
            base: self.base.saturating_add(start),
            what: self.what,
        }
    }

    /// Takes `n` bytes as a sub-reader keeping absolute offsets.
    fn sub(&mut self, n: usize) -> Result<ByteReader<'a>> {
        let base = self.offset();
        let data = self.take(n)?;
        Ok(ByteReader {
            data,
            pos: 0,
            base,
            what: self.what,
        })
    }

    fn remaining_slice(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// Shared E-RTMP pieces
// ---------------------------------------------------------------------------------------------

/// E-RTMP packet type value shared by audio and video for ModEx (v2).
const PACKET_TYPE_MOD_EX: u8 = 7;

/// AvMultitrackType (E-RTMP v2, "Multitrack Streaming").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MultitrackType {
    OneTrack,
    ManyTracks,
    ManyTracksManyCodecs,
}

impl MultitrackType {
    fn from_raw(value: u8, what: &'static str) -> Result<MultitrackType> {
        match value {
            0 => Ok(MultitrackType::OneTrack),
            1 => Ok(MultitrackType::ManyTracks),
            2 => Ok(MultitrackType::ManyTracksManyCodecs),
            value => Err(MediaError::UnknownMultitrackType { what, value }),
        }
    }
}

/// Skips the ModEx chain (E-RTMP v2 ExVideoTagHeader / ExAudioTagHeader: `while (packetType ==
/// ModEx)`): each link is `modExDataSize = UI8 + 1` (escaping to `UI16 + 1` when that gives
/// 256), the data, then a byte whose high nibble is the ModEx type and whose low nibble is the
/// next packet type. Returns the real packet type. Each link consumes at least 3 bytes, so the
/// loop is bounded by the payload length.
fn skip_mod_ex(r: &mut ByteReader<'_>, mut packet_type: u8) -> Result<u8> {
    while packet_type == PACKET_TYPE_MOD_EX {
        let mut size = usize::from(r.u8()?) + 1;
        if size == 256 {
            size = usize::from(r.u16()?) + 1;
        }
        // The only type defined so far is TimestampOffsetNano (a UI24 of nanoseconds); a
        // reflector forwards the message as is, so the value itself is not needed.
        r.take(size)?;
        packet_type = r.u8()? & 0x0f;
    }
    Ok(packet_type)
}

/// The framing of an E-RTMP multitrack body: per track an optional FourCC (ManyTracksManyCodecs),
/// the track id, and a UI24 size unless OneTrack. Calls `each` with the track's FourCC, id and
/// body; returns after the last track.
fn for_each_track<'a>(
    r: &mut ByteReader<'a>,
    multitrack: MultitrackType,
    shared_fourcc: Option<u32>,
    mut each: impl FnMut(u32, u8, ByteReader<'a>) -> Result<()>,
) -> Result<()> {
    loop {
        let code = match shared_fourcc {
            Some(code) => code,
            None => r.u32()?,
        };
        let track_id = r.u8()?;
        let body = if multitrack == MultitrackType::OneTrack {
            r.rest()
        } else {
            // sizeOf*Track counts from just after the size field to the next track.
            let size = usize::try_from(r.u24()?).map_err(|_| MediaError::Malformed {
                what: "multitrack",
                reason: "track size does not fit in memory",
            })?;
            r.sub(size)?
        };
        each(code, track_id, body)?;
        if multitrack == MultitrackType::OneTrack || r.is_empty() {
            return Ok(());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Video
// ---------------------------------------------------------------------------------------------

/// VideoPacketType values (E-RTMP).
mod video_packet {
    pub const SEQUENCE_START: u8 = 0;
    pub const CODED_FRAMES: u8 = 1;
    pub const SEQUENCE_END: u8 = 2;
    pub const CODED_FRAMES_X: u8 = 3;
    pub const METADATA: u8 = 4;
    pub const MPEG2TS_SEQUENCE_START: u8 = 5;
    pub const MULTITRACK: u8 = 6;
}

/// A parsed video message with, per track, the codec data that follows the headers
/// (after the CompositionTime where there is one).
struct ParsedVideo<'a> {
    tag: VideoTag,
    bodies: Vec<&'a [u8]>,
}

/// Classifies one RTMP video message payload (FLV VIDEODATA, legacy or E-RTMP).
///
/// Only the headers are read: coded data is never decoded, so a payload cut short inside the
/// coded data is still classified; one cut inside a header (or inside a declared multitrack
/// track size) is an error.
pub fn inspect_video(payload: &[u8]) -> Result<VideoTag> {
    parse_video(payload).map(|p| p.tag)
}

fn parse_video(payload: &[u8]) -> Result<ParsedVideo<'_>> {
    let mut r = ByteReader::new(payload, "video tag");
    let first = match payload.first() {
        Some(&b) => b,
        None => return Err(MediaError::Empty),
    };
    r.take(1)?;
    if first & 0x80 != 0 {
        parse_ex_video(first, r)
    } else {
        parse_legacy_video(first, r)
    }
}

/// FLV spec v10.1 E.4.3.1 VideoTagHeader: FrameType UB[4], CodecID UB[4]; for AVC (and the
/// legacy HEVC id 12, same layout) AVCPacketType UI8 and CompositionTime SI24 follow; a command
/// frame (FrameType 5) carries a UI8 instead of video data.
fn parse_legacy_video<'a>(first: u8, mut r: ByteReader<'a>) -> Result<ParsedVideo<'a>> {
    let raw_frame_type = first >> 4;
    let frame_type =
        VideoFrameType::from_raw(raw_frame_type).ok_or(MediaError::ReservedFrameType {
            value: raw_frame_type,
        })?;
    let codec = VideoCodec::from_codec_id(first & 0x0f);
    let (kind, composition_time) = if frame_type == VideoFrameType::Command {
        r.u8()?;
        (PacketKind::Other, None)
    } else if codec.has_composition_time() {
        let packet_type = r.u8()?;
        let kind = match packet_type {
            0 => PacketKind::SequenceHeader,
            1 => PacketKind::Coded,
            2 => PacketKind::SequenceEnd,
            value => return Err(MediaError::UnknownPacketType { what: "AVC", value }),
        };
        (kind, Some(r.si24()?))
    } else {
        (PacketKind::Coded, None)
    };
    Ok(ParsedVideo {
        tag: VideoTag {
            frame_type,
            enhanced: false,
            tracks: vec![VideoTrack {
                track_id: 0,
                codec,
                kind,
            }],
            composition_time,
        },
        bodies: vec![r.remaining_slice()],
    })
}

/// E-RTMP ExVideoTagHeader: IsExHeader UB[1], FrameType UB[3], VideoPacketType UB[4], then the
/// ModEx chain, then a command byte, a multitrack header, or the FourCC; then ExVideoTagBody.
fn parse_ex_video<'a>(first: u8, mut r: ByteReader<'a>) -> Result<ParsedVideo<'a>> {
    let raw_frame_type = (first >> 4) & 0x07;
    let packet_type = skip_mod_ex(&mut r, first & 0x0f)?;
    let frame_type = match VideoFrameType::from_raw(raw_frame_type) {
        Some(t) => t,
        // "frameType is ignored if videoPacketType is Metadata".
        None if packet_type == video_packet::METADATA => VideoFrameType::Command,
        None => {
            return Err(MediaError::ReservedFrameType {
                value: raw_frame_type,
            })
        }
    };

    let mut tracks = Vec::new();
    let mut bodies = Vec::new();
    let mut composition_time = None;

    if frame_type == VideoFrameType::Command && packet_type != video_packet::METADATA {
        // A command frame has a UI8 VideoCommand and no FourCC or body.
        r.u8()?;
        tracks.push(VideoTrack {
            track_id: 0,
            codec: VideoCodec::Other(0),
            kind: PacketKind::Other,
        });
        bodies.push(&[][..]);
    } else if packet_type == video_packet::MULTITRACK {
        let b = r.u8()?;
        let multitrack = MultitrackType::from_raw(b >> 4, "video")?;
        let inner = b & 0x0f;
        // The per-track packet type "MUST not result in a VideoPacketType.Multitrack"; ModEx
        // is only defined ahead of the outer packet type.
        if inner == video_packet::MULTITRACK || inner == PACKET_TYPE_MOD_EX {
            return Err(MediaError::UnknownPacketType {
                what: "video multitrack",
                value: inner,
            });
        }
        let shared = match multitrack {
            MultitrackType::ManyTracksManyCodecs => None,
            _ => Some(r.u32()?),
        };
        for_each_track(&mut r, multitrack, shared, |code, track_id, mut body| {
            let codec = VideoCodec::from_fourcc(code);
            let (kind, ct) = ex_video_track_body(inner, codec, &mut body)?;
            if tracks.is_empty() {
                composition_time = ct;
            }
            tracks.push(VideoTrack {
                track_id,
                codec,
                kind,
            });
            bodies.push(body.remaining_slice());
            Ok(())
        })?;
    } else {
        let codec = VideoCodec::from_fourcc(r.u32()?);
        let mut body = r.rest();
        let (kind, ct) = ex_video_track_body(packet_type, codec, &mut body)?;
        composition_time = ct;
        tracks.push(VideoTrack {
            track_id: 0,
            codec,
            kind,
        });
        bodies.push(body.remaining_slice());
    }

    Ok(ParsedVideo {
        tag: VideoTag {
            frame_type,
            enhanced: true,
            tracks,
            composition_time,
        },
        bodies,
    })
}

/// ExVideoTagBody for one track: maps the packet type and reads the SI24 CompositionTime that
/// CodedFrames carries for `avc1` / `hvc1` (CodedFramesX implies zero).
fn ex_video_track_body(
    packet_type: u8,
    codec: VideoCodec,
    body: &mut ByteReader<'_>,
) -> Result<(PacketKind, Option<i32>)> {
    use video_packet::*;
    Ok(match packet_type {
        SEQUENCE_START | MPEG2TS_SEQUENCE_START => (PacketKind::SequenceHeader, None),
        CODED_FRAMES if codec.has_composition_time() => (PacketKind::Coded, Some(body.si24()?)),
        CODED_FRAMES => (PacketKind::Coded, None),
        CODED_FRAMES_X if codec.has_composition_time() => (PacketKind::Coded, Some(0)),
        CODED_FRAMES_X => (PacketKind::Coded, None),
        SEQUENCE_END => (PacketKind::SequenceEnd, None),
        METADATA => (PacketKind::Metadata, None),
        value => {
            return Err(MediaError::UnknownPacketType {
                what: "video",
                value,
            })
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Audio
// ---------------------------------------------------------------------------------------------

/// AudioPacketType values (E-RTMP).
mod audio_packet {
    pub const SEQUENCE_START: u8 = 0;
    pub const CODED_FRAMES: u8 = 1;
    pub const SEQUENCE_END: u8 = 2;
    pub const MULTICHANNEL_CONFIG: u8 = 4;
    pub const MULTITRACK: u8 = 5;
}

/// SoundFormat 9: the E-RTMP ExHeader marker.
const SOUND_FORMAT_EX_HEADER: u8 = 9;

struct ParsedAudio<'a> {
    tag: AudioTag,
    bodies: Vec<&'a [u8]>,
}

/// Classifies one RTMP audio message payload (FLV AUDIODATA, legacy or E-RTMP).
///
/// As for video, only headers are read.
pub fn inspect_audio(payload: &[u8]) -> Result<AudioTag> {
    parse_audio(payload).map(|p| p.tag)
}

fn parse_audio(payload: &[u8]) -> Result<ParsedAudio<'_>> {
    let mut r = ByteReader::new(payload, "audio tag");
    let first = match payload.first() {
        Some(&b) => b,
        None => return Err(MediaError::Empty),
    };
    r.take(1)?;
    let sound_format = first >> 4;
    if sound_format == SOUND_FORMAT_EX_HEADER {
        return parse_ex_audio(first, r);
    }
    // FLV spec v10.1 E.4.2.1: SoundFormat UB[4], SoundRate UB[2], SoundSize UB[1], SoundType
    // UB[1]; AAC adds AACPacketType UI8 (0 = AudioSpecificConfig, 1 = raw).
    let codec = AudioCodec::from_sound_format(sound_format);
    let kind = if codec == AudioCodec::Aac {
        match r.u8()? {
            0 => PacketKind::SequenceHeader,
            1 => PacketKind::Coded,
            value => return Err(MediaError::UnknownPacketType { what: "AAC", value }),
        }
    } else {
        PacketKind::Coded
    };
    Ok(ParsedAudio {
        tag: AudioTag {
            enhanced: false,
            tracks: vec![AudioTrack {
                track_id: 0,
                codec,
                kind,
            }],
        },
        bodies: vec![r.remaining_slice()],
    })
}

/// E-RTMP ExAudioTagHeader: SoundFormat 9, AudioPacketType UB[4], the ModEx chain, then a
/// multitrack header or the FourCC; then ExAudioTagBody.
fn parse_ex_audio<'a>(first: u8, mut r: ByteReader<'a>) -> Result<ParsedAudio<'a>> {
    let packet_type = skip_mod_ex(&mut r, first & 0x0f)?;
    let mut tracks = Vec::new();
    let mut bodies = Vec::new();
    if packet_type == audio_packet::MULTITRACK {
        let b = r.u8()?;
        let multitrack = MultitrackType::from_raw(b >> 4, "audio")?;
        let inner = b & 0x0f;
        if inner == audio_packet::MULTITRACK || inner == PACKET_TYPE_MOD_EX {
            return Err(MediaError::UnknownPacketType {
                what: "audio multitrack",
                value: inner,
            });
        }
        let kind = audio_packet_kind(inner)?;
        let shared = match multitrack {
            MultitrackType::ManyTracksManyCodecs => None,
            _ => Some(r.u32()?),
        };
        for_each_track(&mut r, multitrack, shared, |code, track_id, body| {
            tracks.push(AudioTrack {
                track_id,
                codec: AudioCodec::from_fourcc(code),
                kind,
            });
            bodies.push(body.remaining_slice());
            Ok(())
        })?;
    } else {
        let kind = audio_packet_kind(packet_type)?;
        let codec = AudioCodec::from_fourcc(r.u32()?);
        tracks.push(AudioTrack {
            track_id: 0,
            codec,
            kind,
        });
        bodies.push(r.remaining_slice());
    }
    Ok(ParsedAudio {
        tag: AudioTag {
            enhanced: true,
            tracks,
        },
        bodies,
    })
}

fn audio_packet_kind(packet_type: u8) -> Result<PacketKind> {
    use audio_packet::*;
    Ok(match packet_type {
        SEQUENCE_START => PacketKind::SequenceHeader,
        CODED_FRAMES => PacketKind::Coded,
        SEQUENCE_END => PacketKind::SequenceEnd,
        MULTICHANNEL_CONFIG => PacketKind::Other,
        value => {
            return Err(MediaError::UnknownPacketType {
                what: "audio",
                value,
            })
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Bit reader (exp-Golomb), for parameter sets and AudioSpecificConfig
// ---------------------------------------------------------------------------------------------

/// MSB-first bit reader; running out of bits is `Malformed { reason: "ran out of bits" }`.
struct BitReader<'a> {
    data: &'a [u8],
    /// Bit position.
    pos: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8], what: &'static str) -> Self {
        BitReader { data, pos: 0, what }
    }

    fn malformed(&self, reason: &'static str) -> MediaError {
        MediaError::Malformed {
            what: self.what,
            reason,
        }
    }

    fn bit(&mut self) -> Result<u32> {
        let byte = self
            .data
            .get(self.pos / 8)
            .ok_or_else(|| self.malformed("ran out of bits"))?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(u32::from(bit))
    }

    fn flag(&mut self) -> Result<bool> {
        Ok(self.bit()? == 1)
    }

    /// Reads `n` bits (at most 32 are used).
    fn bits(&mut self, n: u32) -> Result<u32> {
        let mut v: u64 = 0;
        for _ in 0..n.min(32) {
            v = (v << 1) | u64::from(self.bit()?);
        }
        u32::try_from(v).map_err(|_| self.malformed("field wider than 32 bits"))
    }

    fn skip(&mut self, n: usize) -> Result<()> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| self.malformed("ran out of bits"))?;
        if end > self.data.len().saturating_mul(8) {
            return Err(self.malformed("ran out of bits"));
        }
        self.pos = end;
        Ok(())
    }

    /// ue(v), H.264 §9.1: leading zeros, a one, then as many info bits. Codes longer than 32
    /// leading zeros cannot encode a 32-bit value and are rejected, which also bounds the loop.
    fn ue(&mut self) -> Result<u32> {
        let mut zeros = 0u32;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(self.malformed("exp-Golomb code longer than 32 bits"));
            }
        }
        let info = u64::from(self.bits(zeros)?);
        let value = (1u64 << zeros) - 1 + info;
        u32::try_from(value).map_err(|_| self.malformed("exp-Golomb value exceeds 32 bits"))
    }

    /// se(v), H.264 §9.1.1.
    fn se(&mut self) -> Result<i64> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }

    /// ue(v) that must not exceed `max`.
    fn ue_max(&mut self, max: u32, reason: &'static str) -> Result<u32> {
        let v = self.ue()?;
        if v > max {
            return Err(self.malformed(reason));
        }
        Ok(v)
    }
}

/// Strips emulation-prevention bytes (H.264 §7.4.1 / HEVC §7.4.2: `00 00 03` → `00 00`) to
/// get the RBSP. The output is never longer than the input.
fn nal_to_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0usize;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Video parameters
// ---------------------------------------------------------------------------------------------

/// Picture size from a video sequence header, for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VideoParams {
    /// Displayed width in pixels (after cropping).
    pub width: u32,
    /// Displayed height in pixels (after cropping).
    pub height: u32,
}

/// The picture size from a video sequence header message: legacy AVC (CodecID 7) or legacy
/// HEVC (12) with AVCPacketType 0, or E-RTMP SequenceStart for `avc1`, `hvc1` or `av01`
/// (the first such track of a multitrack message). `None` for anything else or anything
/// malformed.
pub fn video_params(payload: &[u8]) -> Option<VideoParams> {
    let parsed = parse_video(payload).ok()?;
    parsed
        .tag
        .tracks
        .iter()
        .zip(parsed.bodies.iter())
        .filter(|(t, _)| t.kind == PacketKind::SequenceHeader)
        .find_map(|(t, body)| match t.codec {
            VideoCodec::Avc => parse_avc_decoder_configuration_record(body).ok(),
            VideoCodec::Hevc | VideoCodec::LegacyHevc => {
                parse_hevc_decoder_configuration_record(body).ok()
            }
            // MPEG2TSSequenceStart carries an AV1 video descriptor instead of an av1C; the
            // av1C marker check rejects it.
            VideoCodec::Av1 => parse_av1_codec_configuration_record(body).ok(),
            _ => None,
        })
}

/// Picture size from an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.2.4.1): the first
/// SPS it lists.
pub fn parse_avc_decoder_configuration_record(record: &[u8]) -> Result<VideoParams> {
    let mut r = ByteReader::new(record, "AVCDecoderConfigurationRecord");
    // configurationVersion, AVCProfileIndication, profile_compatibility, AVCLevelIndication,
    // lengthSizeMinusOne.
    r.take(5)?;
    let num_sps = r.u8()? & 0x1f;
    if num_sps == 0 {
        return Err(MediaError::Malformed {
            what: "AVCDecoderConfigurationRecord",
            reason: "no SPS",
        });
    }
    let len = usize::from(r.u16()?);
    parse_avc_sps(r.take(len)?)
}

/// Picture size from an H.264 sequence parameter set NAL unit (H.264 §7.3.2.1.1; the NAL
/// header byte included, emulation prevention not yet removed), honouring the high-profile
/// chroma format and scaling lists and the frame cropping rectangle.
pub fn parse_avc_sps(nal: &[u8]) -> Result<VideoParams> {
    const WHAT: &str = "H.264 SPS";
    let malformed = |reason| MediaError::Malformed { what: WHAT, reason };
    match nal.first() {
        Some(h) if h & 0x1f == 7 => {}
        Some(_) => return Err(malformed("NAL unit is not an SPS")),
        None => return Err(malformed("empty NAL unit")),
    }
    let rbsp = nal_to_rbsp(nal.get(1..).unwrap_or_default());
    let mut b = BitReader::new(&rbsp, WHAT);
    let profile_idc = b.bits(8)?;
    b.skip(16)?; // constraint flags + reserved, level_idc
    b.ue_max(31, "seq_parameter_set_id out of range")?;
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = b.ue_max(3, "chroma_format_idc out of range")?;
        if chroma_format_idc == 3 {
            separate_colour_plane = b.flag()?;
        }
        b.ue_max(6, "bit_depth_luma_minus8 out of range")?;
        b.ue_max(6, "bit_depth_chroma_minus8 out of range")?;
        b.skip(1)?; // qpprime_y_zero_transform_bypass_flag
        if b.flag()? {
            // seq_scaling_matrix_present_flag: 6 4x4 lists, then 2 (or 6 for 4:4:4) 8x8 lists.
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if b.flag()? {
                    skip_scaling_list(&mut b, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    b.ue_max(12, "log2_max_frame_num_minus4 out of range")?;
    match b.ue_max(2, "pic_order_cnt_type out of range")? {
        0 => {
            b.ue_max(12, "log2_max_pic_order_cnt_lsb_minus4 out of range")?;
        }
        1 => {
            b.skip(1)?; // delta_pic_order_always_zero_flag
            b.se()?; // offset_for_non_ref_pic
            b.se()?; // offset_for_top_to_bottom_field
            let cycle = b.ue_max(255, "num_ref_frames_in_pic_order_cnt_cycle out of range")?;
            for _ in 0..cycle {
                b.se()?;
            }
        }
        _ => {}
    }
    b.ue()?; // max_num_ref_frames
    b.skip(1)?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(b.ue()?) + 1;
    let height_map_units = u64::from(b.ue()?) + 1;
    let frame_mbs_only = b.flag()?;
    if !frame_mbs_only {
        b.skip(1)?; // mb_adaptive_frame_field_flag
    }
    b.skip(1)?; // direct_8x8_inference_flag
    let field_factor: u64 = if frame_mbs_only { 1 } else { 2 };
    let mut width = width_mbs * 16;
    let mut height = field_factor * height_map_units * 16;
    if b.flag()? {
        // frame_cropping_flag: offsets are in CropUnitX / CropUnitY (H.264 §7.4.2.1.1).
        let chroma_array_type = if separate_colour_plane {
            0
        } else {
            chroma_format_idc
        };
        let (crop_x, crop_y) = match chroma_array_type {
            0 => (1, field_factor),
            1 => (2, 2 * field_factor),
            2 => (2, field_factor),
            _ => (1, field_factor),
        };
        let left = u64::from(b.ue()?);
        let right = u64::from(b.ue()?);
        let top = u64::from(b.ue()?);
        let bottom = u64::from(b.ue()?);
        width = width
            .checked_sub(crop_x * (left + right))
            .ok_or_else(|| malformed("horizontal cropping exceeds the picture"))?;
        height = height
            .checked_sub(crop_y * (top + bottom))
            .ok_or_else(|| malformed("vertical cropping exceeds the picture"))?;
    }
    Ok(VideoParams {
        width: u32::try_from(width).map_err(|_| malformed("width exceeds 32 bits"))?,
        height: u32::try_from(height).map_err(|_| malformed("height exceeds 32 bits"))?,
    })
}

/// H.264 §7.3.2.1.1.1 scaling_list(): only the delta_scale values are coded, and only until
/// nextScale becomes 0.
fn skip_scaling_list(b: &mut BitReader<'_>, size: usize) -> Result<()> {
    let mut last_scale: i64 = 8;
    let mut next_scale: i64 = 8;
    for _ in 0..size {
        if next_scale != 0 {
            let delta = b.se()?;
            if !(-128..=127).contains(&delta) {
                return Err(b.malformed("delta_scale out of range"));
            }
            next_scale = (last_scale + delta).rem_euclid(256);
        }
        if next_scale != 0 {
            last_scale = next_scale;
        }
    }
    Ok(())
}

/// Picture size from an HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3.1.2): the
/// first SPS (NAL unit type 33) in its arrays.
pub fn parse_hevc_decoder_configuration_record(record: &[u8]) -> Result<VideoParams> {
    let mut r = ByteReader::new(record, "HEVCDecoderConfigurationRecord");
    r.take(22)?; // fixed fields up to and including lengthSizeMinusOne
    let num_arrays = r.u8()?;
    for _ in 0..num_arrays {
        let nal_type = r.u8()? & 0x3f;
        let num_nalus = r.u16()?;
        for _ in 0..num_nalus {
            let len = usize::from(r.u16()?);
            let nal = r.take(len)?;
            if nal_type == 33 {
                return parse_hevc_sps(nal);
            }
        }
    }
    Err(MediaError::Malformed {
        what: "HEVCDecoderConfigurationRecord",
        reason: "no SPS",
    })
}

/// Picture size from an HEVC sequence parameter set NAL unit (H.265 §7.3.2.2; the two-byte NAL
/// header included, emulation prevention not yet removed), after the conformance window.
pub fn parse_hevc_sps(nal: &[u8]) -> Result<VideoParams> {
    const WHAT: &str = "HEVC SPS";
    let malformed = |reason| MediaError::Malformed { what: WHAT, reason };
    match nal.first() {
        Some(h) if (h >> 1) & 0x3f == 33 => {}
        Some(_) => return Err(malformed("NAL unit is not an SPS")),
        None => return Err(malformed("empty NAL unit")),
    }
    let rbsp = nal_to_rbsp(nal.get(2..).unwrap_or_default());
    let mut b = BitReader::new(&rbsp, WHAT);
    b.skip(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = match b.bits(3)? {
        7 => return Err(malformed("sps_max_sub_layers_minus1 out of range")),
        n => usize::try_from(n).unwrap_or(0),
    };
    b.skip(1)?; // sps_temporal_id_nesting_flag
                // profile_tier_level(1, sps_max_sub_layers_minus1), H.265 §7.3.3: 88 bits of general
                // profile, general_level_idc, then the sub-layer presence flags and sub-layer fields.
    b.skip(88 + 8)?;
    let mut present = [(false, false); 7];
    for p in present.iter_mut().take(max_sub_layers_minus1) {
        *p = (b.flag()?, b.flag()?);
    }
    if max_sub_layers_minus1 > 0 {
        b.skip(2 * (8 - max_sub_layers_minus1))?; // reserved_zero_2bits
    }
    for &(profile, level) in present.iter().take(max_sub_layers_minus1) {
        if profile {
            b.skip(88)?;
        }
        if level {
            b.skip(8)?;
        }
    }
    b.ue_max(15, "sps_seq_parameter_set_id out of range")?;
    let chroma_format_idc = b.ue_max(3, "chroma_format_idc out of range")?;
    let separate_colour_plane = chroma_format_idc == 3 && b.flag()?;
    let mut width = u64::from(b.ue()?);
    let mut height = u64::from(b.ue()?);
    if b.flag()? {
        // conformance_window_flag: offsets in chroma sample units (H.265 §7.4.3.2, Table 6-1).
        let chroma_array_type = if separate_colour_plane {
            0
        } else {
            chroma_format_idc
        };
        let (sub_w, sub_h): (u64, u64) = match chroma_array_type {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let left = u64::from(b.ue()?);
        let right = u64::from(b.ue()?);
        let top = u64::from(b.ue()?);
        let bottom = u64::from(b.ue()?);
        width = width
            .checked_sub(sub_w * (left + right))
            .ok_or_else(|| malformed("horizontal window exceeds the picture"))?;
        height = height
            .checked_sub(sub_h * (top + bottom))
            .ok_or_else(|| malformed("vertical window exceeds the picture"))?;
    }
    Ok(VideoParams {
        width: u32::try_from(width).map_err(|_| malformed("width exceeds 32 bits"))?,
        height: u32::try_from(height).map_err(|_| malformed("height exceeds 32 bits"))?,
    })
}

/// Picture size from an AV1CodecConfigurationRecord (`av1C`, AV1-ISOBMFF §2.3): the sequence
/// header OBU among its configOBUs (the maximum frame size it declares).
pub fn parse_av1_codec_configuration_record(record: &[u8]) -> Result<VideoParams> {
    const WHAT: &str = "AV1CodecConfigurationRecord";
    let mut r = ByteReader::new(record, WHAT);
    let marker_version = r.u8()?;
    if marker_version != 0x81 {
        return Err(MediaError::Malformed {
            what: WHAT,
            reason: "bad marker or version",
        });
    }
    r.take(3)?;
    while !r.is_empty() {
        // OBU header (AV1 §5.3.2): forbidden bit, obu_type UB[4], extension flag, has_size.
        let header = r.u8()?;
        let obu_type = (header >> 3) & 0x0f;
        if header & 0x04 != 0 {
            r.u8()?; // obu_extension_header
        }
        let payload = if header & 0x02 != 0 {
            let size = read_leb128(&mut r)?;
            let size = usize::try_from(size).map_err(|_| MediaError::Malformed {
                what: WHAT,
                reason: "OBU size does not fit in memory",
            })?;
            r.take(size)?
        } else {
            r.rest().remaining_slice()
        };
        if obu_type == 1 {
            return parse_av1_sequence_header(payload);
        }
    }
    Err(MediaError::Malformed {
        what: WHAT,
        reason: "no sequence header OBU",
    })
}

/// leb128() (AV1 §4.10.5): at most 8 bytes.
fn read_leb128(r: &mut ByteReader<'_>) -> Result<u64> {
    let mut value = 0u64;
    for i in 0..8 {
        let byte = r.u8()?;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(MediaError::Malformed {
        what: "AV1 OBU",
        reason: "leb128 longer than 8 bytes",
    })
}

/// sequence_header_obu() (AV1 §5.5), read up to max_frame_width/height_minus_1.
fn parse_av1_sequence_header(obu: &[u8]) -> Result<VideoParams> {
    let mut b = BitReader::new(obu, "AV1 sequence header");
    b.skip(3)?; // seq_profile
    b.skip(1)?; // still_picture
    let reduced_still_picture_header = b.flag()?;
    if reduced_still_picture_header {
        b.skip(5)?; // seq_level_idx[0]
    } else {
        let timing_info_present = b.flag()?;
        let mut decoder_model_info_present = false;
        let mut buffer_delay_length = 0usize;
        if timing_info_present {
            b.skip(64)?; // num_units_in_display_tick, time_scale
            if b.flag()? {
                // equal_picture_interval: num_ticks_per_picture_minus_1 uvlc()
                skip_uvlc(&mut b)?;
            }
            decoder_model_info_present = b.flag()?;
            if decoder_model_info_present {
                buffer_delay_length = usize::try_from(b.bits(5)?).unwrap_or(31) + 1;
                b.skip(32 + 5 + 5)?;
            }
        }
        let initial_display_delay_present = b.flag()?;
        let operating_points = b.bits(5)? + 1;
        for _ in 0..operating_points {
            b.skip(12)?; // operating_point_idc
            let seq_level_idx = b.bits(5)?;
            if seq_level_idx > 7 {
                b.skip(1)?; // seq_tier
            }
            if decoder_model_info_present && b.flag()? {
                // operating_parameters_info(): two delays and low_delay_mode_flag.
                b.skip(2 * buffer_delay_length + 1)?;
            }
            if initial_display_delay_present && b.flag()? {
                b.skip(4)?;
            }
        }
    }
    let width_bits = b.bits(4)? + 1;
    let height_bits = b.bits(4)? + 1;
    let width = u64::from(b.bits(width_bits)?) + 1;
    let height = u64::from(b.bits(height_bits)?) + 1;
    let too_big = || MediaError::Malformed {
        what: "AV1 sequence header",
        reason: "size exceeds 32 bits",
    };
    Ok(VideoParams {
        width: u32::try_from(width).map_err(|_| too_big())?,
        height: u32::try_from(height).map_err(|_| too_big())?,
    })
}

/// uvlc() (AV1 §4.10.3); 32 or more leading zeros mean the maximum value with no more bits.
fn skip_uvlc(b: &mut BitReader<'_>) -> Result<()> {
    let mut zeros = 0usize;
    while !b.flag()? {
        zeros += 1;
        if zeros >= 32 {
            return Ok(());
        }
    }
    b.skip(zeros)
}

// ---------------------------------------------------------------------------------------------
// Audio parameters
// ---------------------------------------------------------------------------------------------

/// Sample rate and channel count of an audio stream, for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioParams {
    /// Output sample rate in Hz (for HE-AAC the SBR rate; for Opus always 48000).
    pub sample_rate: u32,
    /// Channel count; 0 when the configuration defers it to data this module does not parse
    /// (an AAC program_config_element).
    pub channels: u8,
}

/// The audio parameters of a message: from the AAC AudioSpecificConfig of a sequence header
/// (legacy or `mp4a`), the Opus ID header or FLAC STREAMINFO of an E-RTMP SequenceStart (the
/// first such track of a multitrack message), else, for legacy non-AAC formats, from the
/// SoundRate/SoundType header bits. `None` for AAC raw frames (whose header bits are fixed
/// placeholders), other E-RTMP packets, and anything malformed.
pub fn audio_params(payload: &[u8]) -> Option<AudioParams> {
    let parsed = parse_audio(payload).ok()?;
    if !parsed.tag.enhanced {
        let track = parsed.tag.tracks.first()?;
        if track.codec == AudioCodec::Aac {
            if track.kind != PacketKind::SequenceHeader {
                return None;
            }
            let body = parsed.bodies.first()?;
            return parse_audio_specific_config(body).ok().map(|c| c.params());
        }
        return legacy_audio_params(*payload.first()?);
    }
    parsed
        .tag
        .tracks
        .iter()
        .zip(parsed.bodies.iter())
        .filter(|(t, _)| t.kind == PacketKind::SequenceHeader)
        .find_map(|(t, body)| match t.codec {
            AudioCodec::Aac => parse_audio_specific_config(body).ok().map(|c| c.params()),
            AudioCodec::Opus => parse_opus_head(body),
            AudioCodec::Flac => parse_flac_streaminfo(body),
            _ => None,
        })
}

/// FLV spec v10.1 E.4.2.1: SoundRate UB[2] (5.5/11/22/44 kHz) and SoundType UB[1]
/// (mono/stereo), with the formats whose rate is implied by the format itself.
fn legacy_audio_params(first: u8) -> Option<AudioParams> {
    let format = first >> 4;
    let stereo = first & 0x01 != 0;
    let sample_rate = match format {
        4 | 11 => 16_000,        // Nellymoser 16 kHz mono; Speex is 16 kHz
        5 | 7 | 8 | 14 => 8_000, // Nellymoser 8 kHz, G.711 A/mu-law, MP3 8 kHz
        _ => match (first >> 2) & 0x03 {
            0 => 5_512,
            1 => 11_025,
            2 => 22_050,
            _ => 44_100,
        },
    };
    let channels = if stereo && !matches!(format, 4 | 5 | 11) {
        2
    } else {
        1
    };
    Some(AudioParams {
        sample_rate,
        channels,
    })
}

/// The fields of an MPEG-4 AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1) that matter for
/// display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AacConfig {
    /// audioObjectType as signalled first (2 = AAC-LC, 5 = SBR/HE-AAC, 29 = PS/HE-AACv2, ...).
    pub object_type: u8,
    /// The core sampling frequency in Hz (from the index, or the explicit 24-bit value).
    pub sample_rate: u32,
    /// For explicit SBR/PS signalling (object type 5 or 29), the extension (output) rate.
    pub extension_sample_rate: Option<u32>,
    /// channelConfiguration (0 = defined by a program_config_element).
    pub channel_config: u8,
}

impl AacConfig {
    /// Channel count for the configuration (ISO/IEC 14496-3 Table 1.19; PS turns mono into
    /// stereo); 0 when it is not implied by `channel_config`.
    pub fn channels(&self) -> u8 {
        let channels = match self.channel_config {
            1..=6 => self.channel_config,
            7 | 12 | 14 => 8,
            11 => 7,
            13 => 24,
            _ => 0,
        };
        if self.object_type == 29 && channels == 1 {
            2
        } else {
            channels
        }
    }

    /// The output sample rate and channel count.
    pub fn params(&self) -> AudioParams {
        AudioParams {
            sample_rate: self.extension_sample_rate.unwrap_or(self.sample_rate),
            channels: self.channels(),
        }
    }
}

/// Parses the head of an AudioSpecificConfig: object type (with the escape to 32 + 6 bits),
/// sampling frequency index (with the explicit 24-bit rate for index 15), channel
/// configuration, and the SBR/PS extension rate when signalled explicitly.
pub fn parse_audio_specific_config(config: &[u8]) -> Result<AacConfig> {
    let mut b = BitReader::new(config, "AudioSpecificConfig");
    let object_type = read_audio_object_type(&mut b)?;
    let sample_rate = read_sampling_frequency(&mut b)?;
    let channel_config = u8::try_from(b.bits(4)?).unwrap_or(0);
    let extension_sample_rate = if object_type == 5 || object_type == 29 {
        Some(read_sampling_frequency(&mut b)?)
    } else {
        None
    };
    Ok(AacConfig {
        object_type,
        sample_rate,
        extension_sample_rate,
        channel_config,
    })
}

fn read_audio_object_type(b: &mut BitReader<'_>) -> Result<u8> {
    let t = b.bits(5)?;
    let t = if t == 31 { 32 + b.bits(6)? } else { t };
    u8::try_from(t).map_err(|_| b.malformed("audioObjectType out of range"))
}

fn read_sampling_frequency(b: &mut BitReader<'_>) -> Result<u32> {
    const RATES: [u32; 13] = [
        96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025,
        8_000, 7_350,
    ];
    let index = b.bits(4)?;
    if index == 15 {
        return b.bits(24);
    }
    usize::try_from(index)
        .ok()
        .and_then(|i| RATES.get(i).copied())
        .ok_or_else(|| b.malformed("reserved samplingFrequencyIndex"))
}

/// Opus ID header (RFC 7845 §5.1): "OpusHead", version, channel count, ... Opus always decodes
/// at 48 kHz (the header's input rate is informational only).
fn parse_opus_head(body: &[u8]) -> Option<AudioParams> {
    let rest = body.strip_prefix(b"OpusHead")?;
    let channels = *rest.get(1)?;
    Some(AudioParams {
        sample_rate: 48_000,
        channels,
    })
}

/// FLAC STREAMINFO (RFC 9639 §8.2): sample rate in the 20 bits after the block and frame
/// sizes, then channels - 1 in 3 bits. Accepts the block bare (as E-RTMP carries it) or after
/// the `fLaC` marker and metadata block header.
fn parse_flac_streaminfo(body: &[u8]) -> Option<AudioParams> {
    let info = match body.strip_prefix(b"fLaC") {
        Some(rest) => rest.get(4..)?,
        None => body,
    };
    let mut b = BitReader::new(info, "FLAC STREAMINFO");
    b.skip(16 + 16 + 24 + 24).ok()?;
    let sample_rate = b.bits(20).ok()?;
    let channels = u8::try_from(b.bits(3).ok()? + 1).ok()?;
    Some(AudioParams {
        sample_rate,
        channels,
    })
}

#[cfg(test)]
mod tests;
