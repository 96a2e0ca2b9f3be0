//! The chunk stream (Adobe RTMP 1.0 §5.3): messages cut into chunks on chunk stream ids with
//! compressed headers, reassembled per chunk stream id.

mod decoder;
mod encoder;

pub use decoder::{ChunkDecoder, ReceiveWindow};
pub use encoder::{chunk_message, ChunkEncoder};

/// The chunk size both sides start with (§5.4.1).
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Largest chunk size Set Chunk Size may announce (§5.4.1: the top bit is zero).
pub const MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;
/// Lowest and highest chunk stream id (§5.3.1.1): 0 and 1 select the long basic headers.
pub const MIN_CHUNK_STREAM_ID: u32 = 2;
pub const MAX_CHUNK_STREAM_ID: u32 = 65_599;
/// Chunk stream id for protocol control messages (§5.4).
pub const CONTROL_CHUNK_STREAM_ID: u32 = 2;
/// A timestamp field of this value means a 4-byte extended timestamp follows (§5.3.1.3).
pub const EXTENDED_TIMESTAMP: u32 = 0x00FF_FFFF;

/// Bounds on what a peer's chunk stream may make us hold. Every one is configurable; the
/// defaults suit live video up to high-bitrate 4K keyframes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLimits {
    /// Longest message accepted (the header allows 16 MiB - 1).
    pub max_message_len: u32,
    /// Most chunk stream ids with state on one connection.
    pub max_chunk_streams: usize,
    /// Most payload bytes held in partial messages across all chunk streams of one connection.
    pub max_pending_bytes: usize,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        ChunkLimits {
            max_message_len: 8 * 1024 * 1024,
            max_chunk_streams: 64,
            max_pending_bytes: 16 * 1024 * 1024,
        }
    }
}

/// What a peer did wrong on the chunk stream. Every variant ends the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk stream {csid}: fmt {fmt} chunk without a previous header on this chunk stream")]
    NoPreviousHeader { csid: u32, fmt: u8 },
    #[error("chunk stream {csid}: message of {len} bytes exceeds the limit of {limit}")]
    MessageTooLong { csid: u32, len: u32, limit: u32 },
    #[error("chunk stream {csid}: more than {limit} chunk streams in use")]
    TooManyChunkStreams { csid: u32, limit: usize },
    #[error(
        "chunk stream {csid}: {pending} bytes of partial messages exceed the limit of {limit}"
    )]
    TooMuchPending {
        csid: u32,
        pending: usize,
        limit: usize,
    },
    #[error("Set Chunk Size of {size} is outside 1..=0x7FFFFFFF")]
    BadChunkSize { size: u32 },
    #[error("chunk stream {csid}: protocol control message type {type_id} with a {len}-byte body")]
    BadControlMessage { csid: u32, type_id: u8, len: u32 },
}

#[cfg(test)]
mod tests;
