//! The FLV file format (Adobe Flash Video File Format Specification v10.1, §E.2-E.4) as
//! HTTP-FLV and WebSocket-FLV carry it: a header, then tags each followed by its size.
//!
//! RTMP media messages are FLV tag bodies already (type ids 8, 9 and 18 are the tag types),
//! Enhanced RTMP's extended audio/video headers included, so a tag is the message payload
//! behind an 11-byte header.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The FLV tag header (§E.4.1): type, 24-bit size, 24+8-bit timestamp, 24-bit stream id.
pub const TAG_HEADER_LEN: usize = 11;
/// The FLV header (§E.2) as we write it: signature, version, flags, data offset.
pub const FILE_HEADER_LEN: usize = 9;
/// Tag types (§E.4.1), RTMP's message type ids.
pub const TAG_AUDIO: u8 = 8;
pub const TAG_VIDEO: u8 = 9;
pub const TAG_SCRIPT: u8 = 18;
/// The largest tag body the 24-bit DataSize field can describe.
pub const MAX_TAG_PAYLOAD: usize = 0xFF_FFFF;
/// Longest header a reader skips: DataOffset may grow in later versions (§E.2), but not
/// without bound.
const MAX_DATA_OFFSET: u32 = 1024;

/// The 9-byte FLV header (§E.2: "FLV", version 1, TypeFlagsAudio = 0x04, TypeFlagsVideo =
/// 0x01, DataOffset 9) and PreviousTagSize0 = 0 (§E.3): 13 bytes.
pub fn file_header(has_audio: bool, has_video: bool) -> Bytes {
    let flags = (u8::from(has_audio) << 2) | u8::from(has_video);
    let mut out = BytesMut::with_capacity(FILE_HEADER_LEN + 4);
    out.put_slice(b"FLV\x01");
    out.put_u8(flags);
    out.put_u32(FILE_HEADER_LEN as u32);
    out.put_u32(0);
    out.freeze()
}

/// The length of [`tag`]'s output for a `payload_len`-byte body.
pub fn tag_len(payload_len: usize) -> usize {
    TAG_HEADER_LEN + payload_len + 4
}

/// One tag (§E.4.1) followed by its PreviousTagSize (§E.3).
pub fn tag(type_id: u8, timestamp: u32, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(tag_len(payload.len()));
    write_tag(&mut out, type_id, timestamp, payload);
    out.freeze()
}

/// [`tag`] appended to `out`. `payload` fits the 24-bit DataSize (RTMP's message length is
/// 24-bit too, so every media message does).
pub fn write_tag(out: &mut BytesMut, type_id: u8, timestamp: u32, payload: &[u8]) {
    debug_assert!(payload.len() <= MAX_TAG_PAYLOAD, "FLV tag body over 16 MiB");
    let size = payload.len() as u32 & 0xFF_FFFF;
    out.reserve(tag_len(payload.len()));
    // Filter = 0 (not encrypted), reserved bits 0, TagType.
    out.put_u8(type_id & 0x1F);
    put_u24(out, size);
    // Timestamp: the low 24 bits, then TimestampExtended (the high 8).
    put_u24(out, timestamp & 0xFF_FFFF);
    out.put_u8((timestamp >> 24) as u8);
    put_u24(out, 0);
    out.put_slice(payload);
    out.put_u32(TAG_HEADER_LEN as u32 + size);
}

fn put_u24(out: &mut BytesMut, v: u32) {
    out.put_slice(&v.to_be_bytes()[1..]);
}

fn u24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

/// One tag read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvTag {
    pub type_id: u8,
    pub timestamp: u32,
    pub payload: Bytes,
}

/// What is wrong with an FLV stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlvError {
    #[error("not an FLV stream (signature {found:?})")]
    Signature { found: [u8; 3] },
    #[error("FLV version {version} (1 expected)")]
    Version { version: u8 },
    #[error("FLV header DataOffset {offset} outside 9..={MAX_DATA_OFFSET}")]
    DataOffset { offset: u32 },
    #[error("PreviousTagSize {found} where {expected} was due")]
    PreviousTagSize { found: u32, expected: u32 },
    #[error("tag type byte {byte:#04x} (audio 8, video 9 or script 18, unencrypted)")]
    TagType { byte: u8 },
    #[error("tag stream id {stream_id} (always 0)")]
    StreamId { stream_id: u32 },
    #[error("a {len}-byte tag exceeds the limit of {limit}")]
    TooBig { len: usize, limit: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    /// Waiting for the 9-byte header.
    Header,
    /// Skipping the rest of a longer header, then PreviousTagSize0.
    Preamble { skip: usize },
    /// At the next tag.
    Tags,
}

/// Reads an FLV byte stream incrementally: the header, then tags. Bounded (a tag body over
/// `max_tag` bytes is refused from its header), strict (every PreviousTagSize is checked) and
/// final on errors.
#[derive(Debug)]
pub struct FlvReader {
    max_tag: usize,
    state: ReadState,
    header: Option<(bool, bool)>,
    failed: Option<FlvError>,
}

impl FlvReader {
    pub fn new(max_tag: usize) -> Self {
        FlvReader {
            max_tag,
            state: ReadState::Header,
            header: None,
            failed: None,
        }
    }

    /// The header's (audio, video) flags once it was read.
    pub fn header(&self) -> Option<(bool, bool)> {
        self.header
    }

    /// The next tag from the front of `buf`; `Ok(None)` if more bytes are needed.
    pub fn read(&mut self, buf: &mut BytesMut) -> Result<Option<FlvTag>, FlvError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.read_inner(buf);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    fn read_inner(&mut self, buf: &mut BytesMut) -> Result<Option<FlvTag>, FlvError> {
        loop {
            match self.state {
                ReadState::Header => {
                    let Some(h) = buf.get(..FILE_HEADER_LEN) else {
                        return Ok(None);
                    };
                    if &h[..3] != b"FLV" {
                        return Err(FlvError::Signature {
                            found: [h[0], h[1], h[2]],
                        });
                    }
                    if h[3] != 1 {
                        return Err(FlvError::Version { version: h[3] });
                    }
                    let offset = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
                    if !(FILE_HEADER_LEN as u32..=MAX_DATA_OFFSET).contains(&offset) {
                        return Err(FlvError::DataOffset { offset });
                    }
                    self.header = Some((h[4] & 0x04 != 0, h[4] & 0x01 != 0));
                    buf.advance(FILE_HEADER_LEN);
                    self.state = ReadState::Preamble {
                        skip: offset as usize - FILE_HEADER_LEN,
                    };
                }
                ReadState::Preamble { skip } => {
                    if buf.len() < skip + 4 {
                        return Ok(None);
                    }
                    buf.advance(skip);
                    let found = buf.get_u32();
                    if found != 0 {
                        return Err(FlvError::PreviousTagSize { found, expected: 0 });
                    }
                    self.state = ReadState::Tags;
                }
                ReadState::Tags => return self.read_tag(buf),
            }
        }
    }

    fn read_tag(&mut self, buf: &mut BytesMut) -> Result<Option<FlvTag>, FlvError> {
        let Some(h) = buf.get(..TAG_HEADER_LEN) else {
            return Ok(None);
        };
        let type_id = h[0];
        if ![TAG_AUDIO, TAG_VIDEO, TAG_SCRIPT].contains(&type_id) {
            return Err(FlvError::TagType { byte: type_id });
        }
        let len = u24(&h[1..4]) as usize;
        if len > self.max_tag {
            return Err(FlvError::TooBig {
                len,
                limit: self.max_tag,
            });
        }
        let timestamp = u24(&h[4..7]) | (u32::from(h[7]) << 24);
        let stream_id = u24(&h[8..11]);
        if stream_id != 0 {
            return Err(FlvError::StreamId { stream_id });
        }
        let total = tag_len(len);
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        let expected = (TAG_HEADER_LEN + len) as u32;
        let p = TAG_HEADER_LEN + len;
        let found = u32::from_be_bytes([buf[p], buf[p + 1], buf[p + 2], buf[p + 3]]);
        if found != expected {
            return Err(FlvError::PreviousTagSize { found, expected });
        }
        buf.advance(TAG_HEADER_LEN);
        let payload = buf.split_to(len).freeze();
        buf.advance(4);
        Ok(Some(FlvTag {
            type_id,
            timestamp,
            payload,
        }))
    }
}

#[cfg(test)]
mod tests;
