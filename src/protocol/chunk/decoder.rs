//! Chunk stream decoder: bytes in, whole messages out (Adobe RTMP 1.0 §5.3).

use std::collections::HashMap;

use bytes::{Buf, BytesMut};

use super::{ChunkError, ChunkLimits, DEFAULT_CHUNK_SIZE, EXTENDED_TIMESTAMP, MAX_CHUNK_SIZE};
use crate::protocol::message::{type_id, RawMessage};

/// What the decoder remembers per chunk stream id: the last header (for fmt 1/2/3
/// compression, §5.3.1.2) and the message being reassembled, if any.
#[derive(Debug, Default)]
struct ChunkStreamState {
    /// Absolute timestamp of the current (or last) message.
    timestamp: u32,
    /// The last timestamp field, after extension: absolute after fmt 0, a delta after fmt 1/2.
    /// A fmt 3 chunk that starts a new message adds it again (§5.3.1.2.4, as ffmpeg and
    /// nginx-rtmp read it).
    timestamp_field: u32,
    /// Whether the last fmt 0/1/2 header carried an extended timestamp: fmt 3 chunks then carry
    /// one too (§5.3.1.3).
    extended: bool,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// Payload received so far of the message in progress.
    partial: Option<BytesMut>,
}

/// A parsed chunk header, not yet applied to the chunk stream's state.
struct ChunkHeader {
    fmt: u8,
    csid: u32,
    /// Bytes of basic + message header + extended timestamp.
    len: usize,
    timestamp_field: u32,
    extended: bool,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

/// Decodes a connection's incoming chunk stream into whole messages.
///
/// Sans-IO: the caller appends what it read to a `BytesMut` and calls [`decode`] until it
/// returns `Ok(None)`. Set Chunk Size and Abort are applied here, at the byte where the message
/// carrying them ends, so that the chunks after them in the same buffer are read correctly. A
/// message that fits in one chunk is split off the caller's buffer without a copy.
///
/// [`decode`]: ChunkDecoder::decode
#[derive(Debug)]
pub struct ChunkDecoder {
    limits: ChunkLimits,
    chunk_size: u32,
    /// Chunk stream ids below 64 (the one-byte basic header) by index, grown to the highest
    /// one seen (players use 2..=8: a few hundred bytes, not 64 slots per connection); the
    /// rest in a map.
    low: Vec<Option<ChunkStreamState>>,
    high: HashMap<u32, ChunkStreamState>,
    chunk_streams: usize,
    pending_bytes: usize,
    bytes_consumed: u64,
}

impl ChunkDecoder {
    pub fn new(limits: ChunkLimits) -> Self {
        ChunkDecoder {
            limits,
            chunk_size: DEFAULT_CHUNK_SIZE,
            low: Vec::new(),
            high: HashMap::new(),
            chunk_streams: 0,
            pending_bytes: 0,
            bytes_consumed: 0,
        }
    }

    /// The chunk size the peer currently sends with.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Bytes of chunk stream consumed so far (for statistics; acknowledgements count raw bytes
    /// read, see [`ReceiveWindow`]).
    pub fn bytes_consumed(&self) -> u64 {
        self.bytes_consumed
    }

    /// Payload bytes currently held in partial messages.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Number of chunk stream ids with state.
    pub fn chunk_streams(&self) -> usize {
        self.chunk_streams
    }

    fn state(&self, csid: u32) -> Option<&ChunkStreamState> {
        match usize::try_from(csid) {
            Ok(i) if i < 64 => self.low.get(i).and_then(Option::as_ref),
            _ => self.high.get(&csid),
        }
    }

    fn state_mut(&mut self, csid: u32) -> &mut ChunkStreamState {
        match usize::try_from(csid) {
            Ok(i) if i < 64 => {
                if self.low.len() <= i {
                    self.low.resize_with(i + 1, || None);
                }
                self.low[i].get_or_insert_with(ChunkStreamState::default)
            }
            _ => self.high.entry(csid).or_default(),
        }
    }

    /// Parse the header at the front of `buf` without consuming it; `Ok(None)` if incomplete.
    fn peek_header(&self, buf: &[u8]) -> Result<Option<ChunkHeader>, ChunkError> {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        let fmt = first >> 6;
        let (csid, basic_len) = match first & 0x3F {
            0 => match buf.get(1) {
                Some(&b) => (64 + u32::from(b), 2),
                None => return Ok(None),
            },
            1 => match (buf.get(1), buf.get(2)) {
                (Some(&b1), Some(&b2)) => (64 + u32::from(b1) + 256 * u32::from(b2), 3),
                _ => return Ok(None),
            },
            id => (u32::from(id), 1),
        };
        let message_header_len = [11usize, 7, 3, 0][usize::from(fmt)];
        let Some(h) = buf.get(basic_len..basic_len + message_header_len) else {
            return Ok(None);
        };
        let prev = self.state(csid);
        let prev = match (fmt, prev) {
            (0, p) => p,
            (_, Some(p)) => Some(p),
            (_, None) => return Err(ChunkError::NoPreviousHeader { csid, fmt }),
        };
        if prev.is_none() && self.chunk_streams >= self.limits.max_chunk_streams {
            return Err(ChunkError::TooManyChunkStreams {
                csid,
                limit: self.limits.max_chunk_streams,
            });
        }
        let u24 = |b: &[u8]| u32::from_be_bytes([0, b[0], b[1], b[2]]);
        let mut header = ChunkHeader {
            fmt,
            csid,
            len: basic_len + message_header_len,
            timestamp_field: 0,
            extended: false,
            length: prev.map_or(0, |p| p.length),
            type_id: prev.map_or(0, |p| p.type_id),
            stream_id: prev.map_or(0, |p| p.stream_id),
        };
        if fmt <= 2 {
            header.timestamp_field = u24(&h[0..3]);
            header.extended = header.timestamp_field == EXTENDED_TIMESTAMP;
        } else if let Some(p) = prev {
            header.timestamp_field = p.timestamp_field;
            header.extended = p.extended;
        }
        if fmt <= 1 {
            header.length = u24(&h[3..6]);
            header.type_id = h[6];
        }
        if fmt == 0 {
            // The one little-endian field of the protocol (§5.3.1.2.1).
            header.stream_id = u32::from_le_bytes([h[7], h[8], h[9], h[10]]);
        }
        if header.extended {
            let Some(ext) = buf.get(header.len..header.len + 4) else {
                return Ok(None);
            };
            header.len += 4;
            if fmt <= 2 {
                header.timestamp_field = u32::from_be_bytes([ext[0], ext[1], ext[2], ext[3]]);
            }
        }
        Ok(Some(header))
    }

    /// Decode the next whole message from the front of `buf`, consuming the chunks it reads.
    /// `Ok(None)` means more bytes are needed; everything consumed so far is remembered.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<RawMessage>, ChunkError> {
        loop {
            let Some(header) = self.peek_header(buf)? else {
                return Ok(None);
            };
            let csid = header.csid;
            let in_progress = self
                .state(csid)
                .and_then(|s| s.partial.as_ref())
                .map(|p| p.len());
            // A fmt 3 chunk continues the message in progress; any other header mid-message
            // starts over (the spec forbids it; ffmpeg and nginx-rtmp drop the partial too).
            let (received, continuing) = match (header.fmt, in_progress) {
                (3, Some(received)) => (received, true),
                _ => (0, false),
            };
            if !continuing && header.length > self.limits.max_message_len {
                return Err(ChunkError::MessageTooLong {
                    csid,
                    len: header.length,
                    limit: self.limits.max_message_len,
                });
            }
            let remaining = header.length as usize - received;
            let payload_len = remaining.min(self.chunk_size as usize);
            if buf.len() < header.len + payload_len {
                return Ok(None);
            }
            let multi_chunk = payload_len < remaining || continuing;
            if multi_chunk && !continuing {
                // A new message replaces any abandoned partial on this chunk stream.
                let dropped = self
                    .state(csid)
                    .and_then(|s| s.partial.as_ref())
                    .map_or(0, |p| p.len());
                let pending = self.pending_bytes - dropped + payload_len;
                if pending > self.limits.max_pending_bytes {
                    return Err(ChunkError::TooMuchPending {
                        csid,
                        pending,
                        limit: self.limits.max_pending_bytes,
                    });
                }
            } else if continuing && self.pending_bytes + payload_len > self.limits.max_pending_bytes
            {
                return Err(ChunkError::TooMuchPending {
                    csid,
                    pending: self.pending_bytes + payload_len,
                    limit: self.limits.max_pending_bytes,
                });
            }

            // The whole chunk is here: apply it.
            if self.state(csid).is_none() {
                self.chunk_streams += 1;
            }
            buf.advance(header.len);
            self.bytes_consumed += (header.len + payload_len) as u64;
            let state = self.state_mut(csid);
            if !continuing {
                let abandoned = state.partial.take().map_or(0, |p| p.len());
                state.timestamp = match header.fmt {
                    0 => header.timestamp_field,
                    _ => state.timestamp.wrapping_add(header.timestamp_field),
                };
                state.timestamp_field = header.timestamp_field;
                state.extended = header.extended;
                state.length = header.length;
                state.type_id = header.type_id;
                state.stream_id = header.stream_id;
                self.pending_bytes -= abandoned;
            }
            let state = self.state_mut(csid);
            let complete = if !multi_chunk {
                Some(buf.split_to(payload_len).freeze())
            } else {
                // Reserve on what arrived, not on the length the peer declares: at most four
                // chunks ahead, so partial messages cost memory in proportion to their bytes.
                let partial = state.partial.get_or_insert_with(|| {
                    BytesMut::with_capacity(remaining.min(payload_len.saturating_mul(4)))
                });
                partial.extend_from_slice(&buf[..payload_len]);
                buf.advance(payload_len);
                if partial.len() == state.length as usize {
                    state.partial.take().map(BytesMut::freeze)
                } else {
                    None
                }
            };
            let state = self.state_mut(csid);
            let message = complete.map(|payload| RawMessage {
                type_id: state.type_id,
                stream_id: state.stream_id,
                timestamp: state.timestamp,
                payload,
            });
            if multi_chunk {
                self.pending_bytes += payload_len;
            }
            let Some(message) = message else {
                continue;
            };
            if multi_chunk {
                self.pending_bytes -= message.payload.len();
            }
            self.apply_control(csid, &message)?;
            return Ok(Some(message));
        }
    }

    /// Set Chunk Size and Abort take effect inside the decoder (§5.4.1, §5.4.2).
    fn apply_control(&mut self, csid: u32, message: &RawMessage) -> Result<(), ChunkError> {
        if message.type_id != type_id::SET_CHUNK_SIZE && message.type_id != type_id::ABORT {
            return Ok(());
        }
        let Some(b) = message.payload.get(0..4) else {
            return Err(ChunkError::BadControlMessage {
                csid,
                type_id: message.type_id,
                len: message.payload.len() as u32,
            });
        };
        let value = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        if message.type_id == type_id::SET_CHUNK_SIZE {
            if value == 0 || value > MAX_CHUNK_SIZE {
                return Err(ChunkError::BadChunkSize { size: value });
            }
            self.chunk_size = value;
        } else {
            let dropped = match usize::try_from(value) {
                Ok(i) if i < 64 => self
                    .low
                    .get_mut(i)
                    .and_then(Option::as_mut)
                    .and_then(|s| s.partial.take()),
                _ => self.high.get_mut(&value).and_then(|s| s.partial.take()),
            };
            self.pending_bytes -= dropped.map_or(0, |p| p.len());
        }
        Ok(())
    }
}

/// Acknowledgement bookkeeping for the receiving side (§5.4.3, §5.4.4): counts bytes read and
/// says when an Acknowledgement is due under the peer's window.
#[derive(Debug, Clone)]
pub struct ReceiveWindow {
    window: u32,
    total: u64,
    last_ack: u64,
}

impl ReceiveWindow {
    /// `window` 0 means no acknowledgements until the peer announces a window.
    pub fn new(window: u32) -> Self {
        ReceiveWindow {
            window,
            total: 0,
            last_ack: 0,
        }
    }

    /// The peer's Window Acknowledgement Size. 0 turns acknowledgements off rather than asking
    /// for one per read.
    pub fn set_window(&mut self, window: u32) {
        self.window = window;
    }

    pub fn window(&self) -> u32 {
        self.window
    }

    /// Total bytes received.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Count `n` bytes just read; returns the sequence number to acknowledge when one is due
    /// (bytes received so far, wrapping at 2^32 as the field does).
    pub fn on_bytes(&mut self, n: usize) -> Option<u32> {
        self.total += n as u64;
        if self.window > 0 && self.total - self.last_ack >= u64::from(self.window) {
            self.last_ack = self.total;
            return Some(self.total as u32);
        }
        None
    }
}
