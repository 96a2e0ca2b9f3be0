//! Per-track media state: what a player needs to start (or resume) every track of a stream
//! cleanly. Enhanced RTMP v2 ("Multitrack Streaming") lets one stream carry several audio and
//! video tracks, each with its own sequence start and its own keyframes; ffmpeg 9 sends the
//! first track as a plain tag and each further one as a OneTrack multitrack tag. So:
//!
//! - [`HeaderCache`] keeps one header per (media kind, header role, tracks): an audio
//!   MultichannelConfig never evicts the SequenceStart (OpusHead, FLAC STREAMINFO) it follows,
//!   and track 1's AVC configuration never evicts track 0's.
//! - [`GopCache`] starts at the earliest of the video tracks' latest keyframes, so that every
//!   track has a keyframe in it; its [`GopCache::burst`] starts each track at its own keyframe.
//! - [`VideoGate`] is a player's per-track resync state: a track that lost a frame skips its
//!   frames until its own next keyframe, without holding back the others.

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use super::{Frame, FrameKind};

/// A set of E-RTMP track ids (`UI8`, so 256 possible).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TrackSet([u64; 4]);

impl TrackSet {
    pub const EMPTY: TrackSet = TrackSet([0; 4]);
    pub const ALL: TrackSet = TrackSet([u64::MAX; 4]);

    pub fn single(id: u8) -> TrackSet {
        let mut set = TrackSet::EMPTY;
        set.insert(id);
        set
    }

    pub fn insert(&mut self, id: u8) {
        self.0[usize::from(id >> 6)] |= 1 << (id & 63);
    }

    pub fn contains(self, id: u8) -> bool {
        self.0[usize::from(id >> 6)] & (1 << (id & 63)) != 0
    }

    pub fn is_empty(self) -> bool {
        self == TrackSet::EMPTY
    }

    pub fn is_subset(self, of: TrackSet) -> bool {
        self.difference(of).is_empty()
    }

    pub fn intersects(self, other: TrackSet) -> bool {
        !self.intersection(other).is_empty()
    }

    pub fn union(self, other: TrackSet) -> TrackSet {
        TrackSet(std::array::from_fn(|i| self.0[i] | other.0[i]))
    }

    pub fn intersection(self, other: TrackSet) -> TrackSet {
        TrackSet(std::array::from_fn(|i| self.0[i] & other.0[i]))
    }

    pub fn difference(self, other: TrackSet) -> TrackSet {
        TrackSet(std::array::from_fn(|i| self.0[i] & !other.0[i]))
    }

    pub fn iter(self) -> impl Iterator<Item = u8> {
        (0..=u8::MAX).filter(move |&id| self.contains(id))
    }
}

impl FromIterator<u8> for TrackSet {
    fn from_iter<I: IntoIterator<Item = u8>>(ids: I) -> TrackSet {
        let mut set = TrackSet::EMPTY;
        for id in ids {
            set.insert(id);
        }
        set
    }
}

impl fmt::Debug for TrackSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Which piece of decoder state a header frame ([`super::DropClass::Header`]) carries. Each
/// is cached on its own: E-RTMP audio sends SequenceStart then MultichannelConfig for the same
/// track, and video may follow its SequenceStart with Metadata (`colorInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderRole {
    /// Decoder configuration: AVC/HEVC/AV1/VP9 record, AAC AudioSpecificConfig, OpusHead,
    /// FLAC STREAMINFO... (legacy sequence header, E-RTMP SequenceStart).
    SequenceStart,
    /// E-RTMP audio MultichannelConfig.
    MultichannelConfig,
    /// E-RTMP video Metadata (e.g. HDR `colorInfo`).
    VideoMetadata,
    /// Stream metadata (`onMetaData`).
    StreamMetadata,
}

/// The latest metadata and headers of a stream: what a player needs before media, kept by
/// the publisher for joiners and by each subscriber for resyncs.
#[derive(Debug, Default)]
pub struct HeaderCache {
    pub metadata: Option<Arc<Frame>>,
    /// In arrival order; one per (kind, role, tracks).
    pub headers: Vec<Arc<Frame>>,
}

impl HeaderCache {
    /// Keep `frame` (a header frame). It replaces, in place, the cached headers of its kind
    /// and role whose tracks it covers (a header for tracks {0, 1} replaces those for {0}
    /// and for {1}), so that replaying the cache in order gives every track its latest state.
    pub fn remember(&mut self, frame: &Arc<Frame>) {
        if frame.kind == FrameKind::Data {
            self.metadata = Some(frame.clone());
            return;
        }
        let replaced = |h: &Arc<Frame>| {
            h.kind == frame.kind && h.role == frame.role && h.tracks.is_subset(frame.tracks)
        };
        match self.headers.iter().position(replaced) {
            Some(at) => {
                self.headers[at] = frame.clone();
                let mut i = 0;
                self.headers.retain(|h| {
                    i += 1;
                    i - 1 == at || !replaced(h)
                });
            }
            None => self.headers.push(frame.clone()),
        }
    }

    pub fn clear(&mut self) {
        self.metadata = None;
        self.headers.clear();
    }

    /// The headers of one kind.
    pub fn of(&self, kind: FrameKind) -> impl Iterator<Item = &Arc<Frame>> {
        self.headers.iter().filter(move |h| h.kind == kind)
    }

    /// The headers of one kind that concern any of `tracks`.
    pub fn of_tracks(
        &self,
        kind: FrameKind,
        tracks: TrackSet,
    ) -> impl Iterator<Item = &Arc<Frame>> {
        self.of(kind).filter(move |h| h.tracks.intersects(tracks))
    }
}

/// The frames since the video tracks' keyframes, for late joiners. It starts at the earliest
/// of the tracks' latest keyframes, so that every video track seen since has a keyframe in
/// it. Bounded in bytes and duration: past a bound it is emptied (a GOP without its start is
/// not decodable) and starts again at the next keyframe.
#[derive(Debug, Default)]
pub struct GopCache {
    frames: VecDeque<Arc<Frame>>,
    bytes: usize,
    /// Position (count of frames pushed since the last clear) of `frames[0]`.
    start: u64,
    /// Per video track with a keyframe in the cache: the position of its latest one.
    keys: Vec<(u8, u64)>,
}

impl GopCache {
    pub fn clear(&mut self) {
        *self = GopCache::default();
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Take a media frame (not a header). Frames before the first keyframe are not kept.
    pub fn push(&mut self, frame: &Arc<Frame>, max_bytes: usize, max_duration_ms: u32) {
        let key = frame.kind == FrameKind::Video && frame.is_keyframe();
        if key {
            let at = self.start + self.frames.len() as u64;
            for track in frame.tracks.iter() {
                match self.keys.iter_mut().find(|(t, _)| *t == track) {
                    Some(entry) => entry.1 = at,
                    None => self.keys.push((track, at)),
                }
            }
            let from = self.keys.iter().map(|&(_, at)| at).min().unwrap_or(at);
            while self.start < from {
                let Some(old) = self.frames.pop_front() else {
                    break;
                };
                self.bytes -= old.payload.len();
                self.start += 1;
            }
        } else if self.frames.is_empty() {
            return;
        }
        let first_ts = self.frames.front().map_or(frame.timestamp, |f| f.timestamp);
        let span = frame.timestamp.wrapping_sub(first_ts);
        if self.bytes + frame.payload.len() > max_bytes || span > max_duration_ms {
            self.clear();
            if key && frame.payload.len() <= max_bytes {
                self.keys = frame.tracks.iter().map(|t| (t, 0)).collect();
                self.push_back(frame);
            }
            return;
        }
        self.push_back(frame);
    }

    fn push_back(&mut self, frame: &Arc<Frame>) {
        self.bytes += frame.payload.len();
        self.frames.push_back(frame.clone());
    }

    /// What a joiner gets: the cached frames, each video track from its first keyframe here
    /// on (a track's frames before it belong to a GOP whose start is gone).
    pub fn burst(&self) -> impl Iterator<Item = &Arc<Frame>> {
        let mut gate = VideoGate::default();
        self.frames.iter().filter(move |f| {
            if f.kind != FrameKind::Video {
                return true;
            }
            if f.is_keyframe() {
                gate.resync(f.tracks);
            }
            gate.admits(f.tracks)
        })
    }
}

/// A player's per-track video state. A track is *synced* from one of its keyframes on; a
/// frame of a track that is not is skipped. A track is *stale* when the player may lack its
/// current headers (it skipped them while paused, or was cut off): they are resent before
/// the keyframe that syncs it.
#[derive(Debug, Default)]
pub struct VideoGate {
    synced: TrackSet,
    stale: TrackSet,
}

impl VideoGate {
    /// Whether a frame of `tracks` may be written now.
    pub fn admits(&self, tracks: TrackSet) -> bool {
        tracks.is_subset(self.synced)
    }

    /// `tracks` lost a frame: they wait for their next keyframe, those that were playing with
    /// their headers resent (a track that has not started yet still has them from the join).
    pub fn desync(&mut self, tracks: TrackSet) {
        self.stale = self.stale.union(self.synced.intersection(tracks));
        self.synced = self.synced.difference(tracks);
    }

    /// Every track waits for its next keyframe (after a gap of unknown frames, a pause, a
    /// new publisher), with headers resent unless they arrive first.
    pub fn desync_all(&mut self) {
        self.desync(TrackSet::ALL);
    }

    /// Headers of `tracks` were written to the player.
    pub fn headers_sent(&mut self, tracks: TrackSet) {
        self.stale = self.stale.difference(tracks);
    }

    /// Headers of `tracks` arrived but were not written (video not wanted now): they are due
    /// before the tracks' next keyframe.
    pub fn headers_skipped(&mut self, tracks: TrackSet) {
        self.stale = self.stale.union(tracks);
    }

    /// A keyframe of `tracks` is written: they are synced. Returns those whose headers must
    /// go first.
    pub fn resync(&mut self, tracks: TrackSet) -> TrackSet {
        self.synced = self.synced.union(tracks);
        let stale = self.stale.intersection(tracks);
        self.stale = self.stale.difference(tracks);
        stale
    }
}
