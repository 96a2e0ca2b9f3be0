//! Chunk stream encoder (Adobe RTMP 1.0 §5.3): messages in, chunk bytes out.

use std::collections::HashMap;

use bytes::{BufMut, BytesMut};

use super::{
    CONTROL_CHUNK_STREAM_ID, DEFAULT_CHUNK_SIZE, EXTENDED_TIMESTAMP, MAX_CHUNK_SIZE,
    MIN_CHUNK_STREAM_ID,
};
use crate::protocol::message::{type_id, RawMessage};

/// The last header sent on one chunk stream id.
#[derive(Debug, Clone, Copy)]
struct SentHeader {
    timestamp: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// Timestamp field of the last header when it was a delta (fmt 1/2, or fmt 3 repeating
    /// one); `None` after fmt 0, whose field is absolute.
    delta: Option<u32>,
}

fn put_basic_header(out: &mut BytesMut, fmt: u8, csid: u32) {
    // §5.3.1.1: ids 2..=63 in one byte, 64..=319 in two, up to 65599 in three.
    let fmt = fmt << 6;
    if csid < 64 {
        out.put_u8(fmt | csid as u8);
    } else if csid < 320 {
        out.put_u8(fmt);
        out.put_u8((csid - 64) as u8);
    } else {
        let id = csid - 64;
        out.put_u8(fmt | 1);
        out.put_u8((id & 0xFF) as u8);
        out.put_u8((id >> 8) as u8);
    }
}

fn put_u24(out: &mut BytesMut, v: u32) {
    out.put_slice(&v.to_be_bytes()[1..]);
}

/// Write `payload` after a first header already in `out`, cutting it into chunks of
/// `chunk_size` with fmt 3 continuation headers (carrying the extended timestamp when the
/// first header did, §5.3.1.3).
fn put_payload(
    out: &mut BytesMut,
    csid: u32,
    payload: &[u8],
    chunk_size: usize,
    extended: Option<u32>,
) {
    let mut chunks = payload.chunks(chunk_size.max(1));
    if let Some(first) = chunks.next() {
        out.put_slice(first);
    }
    for chunk in chunks {
        put_basic_header(out, 3, csid);
        if let Some(ext) = extended {
            out.put_u32(ext);
        }
        out.put_slice(chunk);
    }
}

fn encoded_len(payload_len: usize, chunk_size: usize, csid: u32, extended: bool) -> usize {
    let basic = if csid < 64 {
        1
    } else if csid < 320 {
        2
    } else {
        3
    };
    let chunks = payload_len.div_ceil(chunk_size.max(1)).max(1);
    let ext = if extended { 4 } else { 0 };
    basic + 11 + ext + payload_len + (chunks - 1) * (basic + ext)
}

/// Chunk `message` on `csid` with no compression state: a fmt 0 first chunk, then fmt 3
/// continuations. The result is valid for any peer whatever it received before on `csid`,
/// so fan-out makes it once and writes the same bytes to every player that reads with
/// `chunk_size`.
pub fn chunk_message(csid: u32, message: &RawMessage, chunk_size: u32, out: &mut BytesMut) {
    let extended = message.timestamp >= EXTENDED_TIMESTAMP;
    out.reserve(encoded_len(
        message.payload.len(),
        chunk_size as usize,
        csid,
        extended,
    ));
    put_basic_header(out, 0, csid);
    put_u24(out, message.timestamp.min(EXTENDED_TIMESTAMP));
    put_u24(out, message.payload.len() as u32);
    out.put_u8(message.type_id);
    out.put_u32_le(message.stream_id);
    let ext = extended.then_some(message.timestamp);
    if let Some(ext) = ext {
        out.put_u32(ext);
    }
    put_payload(out, csid, &message.payload, chunk_size as usize, ext);
}

/// Encodes one connection's outgoing messages with header compression (fmt 1/2/3 where
/// §5.3.1.2 allows) and the connection's outgoing chunk size.
///
/// Chunk stream ids written with [`chunk_message`] must not also be used here: those bytes
/// change the peer's view of the chunk stream without this encoder knowing.
#[derive(Debug)]
pub struct ChunkEncoder {
    chunk_size: u32,
    sent: HashMap<u32, SentHeader>,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkEncoder {
    pub fn new() -> Self {
        ChunkEncoder {
            chunk_size: DEFAULT_CHUNK_SIZE,
            sent: HashMap::new(),
        }
    }

    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Send Set Chunk Size (§5.4.1) and use the new size for everything after it.
    pub fn set_chunk_size(&mut self, size: u32, out: &mut BytesMut) {
        let size = size.clamp(1, MAX_CHUNK_SIZE);
        let message = RawMessage {
            type_id: type_id::SET_CHUNK_SIZE,
            stream_id: 0,
            timestamp: 0,
            payload: bytes::Bytes::copy_from_slice(&size.to_be_bytes()),
        };
        self.encode(CONTROL_CHUNK_STREAM_ID, &message, out);
        self.chunk_size = size;
    }

    /// Append the chunks of `message` on chunk stream `csid` (clamped to 2..=65599) to `out`.
    pub fn encode(&mut self, csid: u32, message: &RawMessage, out: &mut BytesMut) {
        let csid = csid.clamp(MIN_CHUNK_STREAM_ID, super::MAX_CHUNK_STREAM_ID);
        let length = message.payload.len() as u32;
        let prev = self.sent.get(&csid).copied();
        // Choose the smallest header that still says everything (§5.3.1.2): fmt 0 when the
        // message stream changes or time goes backwards, fmt 1 when length or type change, fmt
        // 2 when only the time moves, fmt 3 when even the delta repeats.
        let (fmt, field) = match prev {
            Some(p) if p.stream_id == message.stream_id && message.timestamp >= p.timestamp => {
                let delta = message.timestamp - p.timestamp;
                if p.length != length || p.type_id != message.type_id {
                    (1, delta)
                } else if p.delta == Some(delta) {
                    (3, delta)
                } else {
                    (2, delta)
                }
            }
            _ => (0, message.timestamp),
        };
        let extended = field >= EXTENDED_TIMESTAMP;
        out.reserve(encoded_len(
            message.payload.len(),
            self.chunk_size as usize,
            csid,
            extended,
        ));
        put_basic_header(out, fmt, csid);
        if fmt <= 2 {
            put_u24(out, field.min(EXTENDED_TIMESTAMP));
        }
        if fmt <= 1 {
            put_u24(out, length);
            out.put_u8(message.type_id);
        }
        if fmt == 0 {
            out.put_u32_le(message.stream_id);
        }
        let ext = extended.then_some(field);
        if let Some(ext) = ext {
            out.put_u32(ext);
        }
        put_payload(out, csid, &message.payload, self.chunk_size as usize, ext);
        self.sent.insert(
            csid,
            SentHeader {
                timestamp: message.timestamp,
                length,
                type_id: message.type_id,
                stream_id: message.stream_id,
                delta: (fmt != 0).then_some(field),
            },
        );
    }
}
