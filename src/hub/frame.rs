//! A frame: one media or data message of a published stream, prepared once by the publishing
//! side and shared (`Arc`) by the caches and every player.

use std::sync::OnceLock;

use bytes::Bytes;

use super::{HeaderRole, TrackSet};

/// What a frame is, for caching and the drop policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Audio,
    Video,
    Data,
}

/// How a frame may be dropped for a slow player, least precious first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DropClass {
    /// Disposable inter frame (FLV frame type 3).
    Disposable,
    /// Inter frame: dropping one means waiting for the next keyframe.
    Inter,
    /// Keyframe.
    Key,
    /// Audio, dropped last.
    Audio,
    /// Data messages (onTextData, onCuePoint...).
    Data,
    /// Sequence headers and metadata: never dropped, always delivered.
    Header,
}

/// The wire forms an output makes of a frame: each is made once, by the first player of that
/// output that needs it, and then shared by every other player of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireForm {
    /// RTMP chunks for the shared message stream id at the server's outgoing chunk size.
    RtmpChunks,
    /// An FLV tag (header, body, previous-tag size): an HTTP/1.0 FLV body.
    FlvTag,
    /// An FLV tag as one HTTP/1.1 chunk (size line, tag, CRLF).
    HttpChunk,
    /// An FLV tag as one binary WebSocket message.
    WsMessage,
}

/// How many [`WireForm`]s there are.
const FORMS: usize = 4;

/// One media or data message of a published stream.
#[derive(Debug)]
pub struct Frame {
    pub kind: FrameKind,
    pub class: DropClass,
    /// RTMP message type id (8, 9, 18, 15).
    pub type_id: u8,
    pub timestamp: u32,
    pub payload: Bytes,
    /// The Enhanced RTMP track ids the message carries ({0} unless multitrack; {0} for data).
    pub tracks: TrackSet,
    /// For [`DropClass::Header`] frames: which decoder state it sets (its cache slot).
    pub role: Option<HeaderRole>,
    /// Carried in an Enhanced RTMP extended header (FourCC, multitrack): only players that
    /// announced Enhanced RTMP can parse it.
    pub enhanced: bool,
    /// The FourCC of an Enhanced RTMP frame's codec (first track), as its four characters.
    pub fourcc: Option<u32>,
    /// Per [`WireForm`]: the variant it was made for (the RTMP chunk size) and the bytes.
    forms: [OnceLock<(u32, Bytes)>; FORMS],
}

impl Frame {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kind: FrameKind,
        class: DropClass,
        type_id: u8,
        timestamp: u32,
        payload: Bytes,
        tracks: TrackSet,
        role: Option<HeaderRole>,
        enhanced: bool,
        fourcc: Option<u32>,
    ) -> Frame {
        Frame {
            kind,
            class,
            type_id,
            timestamp,
            payload,
            tracks,
            role,
            enhanced,
            fourcc,
            forms: Default::default(),
        }
    }

    /// A frame for tests: its kind's RTMP message type, a header's role from its kind
    /// (metadata for data, a sequence start otherwise), `len` zero bytes of payload.
    #[cfg(test)]
    pub fn for_test(
        kind: FrameKind,
        class: DropClass,
        tracks: &[u8],
        timestamp: u32,
        len: usize,
    ) -> std::sync::Arc<Frame> {
        let (type_id, header) = match kind {
            FrameKind::Audio => (8, HeaderRole::SequenceStart),
            FrameKind::Video => (9, HeaderRole::SequenceStart),
            FrameKind::Data => (18, HeaderRole::StreamMetadata),
        };
        std::sync::Arc::new(Frame::new(
            kind,
            class,
            type_id,
            timestamp,
            Bytes::from(vec![0; len]),
            tracks.iter().copied().collect(),
            (class == DropClass::Header).then_some(header),
            false,
            None,
        ))
    }

    pub fn is_keyframe(&self) -> bool {
        self.class == DropClass::Key
    }

    /// The frame in `form` for `variant` (the RTMP chunk size; 0 where a form has none),
    /// made by `make` the first time any player asks (on whichever thread) and shared
    /// afterwards: a reference count, never a copy per player. `None` when it was made for
    /// another variant: that player makes its own.
    pub fn wire(
        &self,
        form: WireForm,
        variant: u32,
        make: impl FnOnce(&Frame) -> Bytes,
    ) -> Option<Bytes> {
        let (made_for, bytes) = self.forms[form as usize].get_or_init(|| (variant, make(self)));
        (*made_for == variant).then(|| bytes.clone())
    }
}
