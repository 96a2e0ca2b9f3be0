//! The per-player delivery gate: for each frame, write it, drop it, or hold the video until
//! the next keyframe. Whole messages only, decided before anything is queued, from the bytes
//! already queued to the player. A plain type: every output (RTMP players, the push relay,
//! the HTTP outputs to come) runs the same policy, and the tests drive it without sockets.
//!
//! Over byte budgets a slow player loses disposable frames first, then all video until the
//! next keyframe, then audio and data. Headers are never dropped: they are remembered, so a
//! track that resyncs gets its current headers again before its keyframe.

#[cfg(test)]
mod tests;

use std::sync::Arc;

use super::{DropClass, Frame, FrameKind, HeaderCache, VideoGate};
use crate::config::LiveSettings;

/// The queued-bytes thresholds of the drop policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    pub disposable: usize,
    pub video: usize,
    pub audio: usize,
}

impl From<&LiveSettings> for Budgets {
    fn from(live: &LiveSettings) -> Self {
        Budgets {
            disposable: live.drop_disposable_bytes,
            video: live.drop_video_bytes,
            audio: live.drop_audio_bytes,
        }
    }
}

/// What a player can parse.
#[derive(Debug, Clone, Default)]
pub struct PlayerCaps {
    /// It announced Enhanced RTMP (`fourCcList` or a v2 property).
    pub enhanced: bool,
    /// Video FourCCs it listed (`fourCcList`, `videoFourCcInfoMap` keys); `*` is any.
    pub video_fourccs: Vec<String>,
    /// Send everything regardless (`live.legacy_players = "forward"`, relays).
    pub forward_all: bool,
}

impl PlayerCaps {
    /// Takes any frame (relays).
    pub fn any() -> PlayerCaps {
        PlayerCaps {
            forward_all: true,
            ..PlayerCaps::default()
        }
    }

    /// Whether this player can take `frame` as is.
    pub fn accepts(&self, frame: &Frame) -> bool {
        if !frame.enhanced || self.forward_all {
            return true;
        }
        if !self.enhanced {
            return false;
        }
        match (frame.kind, frame.fourcc) {
            (FrameKind::Video, Some(code)) if !self.video_fourccs.is_empty() => {
                let name = crate::protocol::media::fourcc_str(code);
                self.video_fourccs.iter().any(|f| f == "*" || *f == name)
            }
            _ => true,
        }
    }
}

/// Why a frame was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Disposable inter frame over the first budget.
    Disposable,
    /// Video over the video budget: the track waits for its next keyframe.
    Video,
    /// Audio or data over the last budget.
    Audio,
    /// Video of a track waiting for its keyframe.
    AwaitingKeyframe,
}

/// The gate's decision on one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Written (after the headers a resyncing track needed).
    Written,
    /// Not for this player now (paused, `receiveAudio false`...), or refused earlier.
    Skipped,
    Dropped(DropReason),
    /// The stream needs Enhanced RTMP and the player did not announce it: from now on it
    /// gets nothing. Returned once: the output tells the player why.
    Refuse,
}

/// A change in whether the player keeps up, for a log line on each edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lossy {
    /// It started losing frames.
    Started(DropReason),
    /// It lost `dropped` frames over `lost_ms` of media time, and has now gone
    /// [`RECOVERY_MS`] of media time without losing any.
    Recovered { dropped: u64, lost_ms: u32 },
}

/// Media time without a drop after which a losing player counts as recovered.
pub const RECOVERY_MS: u32 = 5_000;

/// One player's delivery state.
#[derive(Debug)]
pub struct DeliveryGate {
    budgets: Budgets,
    caps: PlayerCaps,
    refused: bool,
    receive_audio: bool,
    receive_video: bool,
    paused: bool,
    video: VideoGate,
    /// The metadata and headers seen, resent before the keyframe that ends a resync.
    headers: HeaderCache,
    /// Losing frames: (media time of the first drop, of the last, frames dropped).
    losing: Option<(u32, u32, u64)>,
    transition: Option<Lossy>,
}

impl DeliveryGate {
    /// A gate for a player that starts with every track waiting for its keyframe.
    pub fn new(budgets: Budgets, caps: PlayerCaps) -> DeliveryGate {
        DeliveryGate {
            budgets,
            caps,
            refused: false,
            receive_audio: true,
            receive_video: true,
            paused: false,
            video: VideoGate::default(),
            headers: HeaderCache::default(),
            losing: None,
            transition: None,
        }
    }

    /// Whether this player can take `frame` at all (Enhanced RTMP), before offering it.
    pub fn accepts(&self, frame: &Frame) -> bool {
        frame.kind == FrameKind::Data || self.caps.accepts(frame)
    }

    /// From now on the player gets no media (its output refused the stream up front).
    pub fn refuse_from_now(&mut self) {
        self.refused = true;
    }

    /// Decide on `frame`; `write` is called for what goes out, in order. `after_gap` says
    /// frames of the stream were lost before this one (its video resyncs); `queued` is what
    /// the player has not taken yet.
    pub fn offer(
        &mut self,
        frame: &Arc<Frame>,
        after_gap: bool,
        queued: usize,
        mut write: impl FnMut(&Arc<Frame>),
    ) -> Verdict {
        if frame.kind != FrameKind::Data && !self.caps.accepts(frame) {
            if self.refused {
                return Verdict::Skipped;
            }
            self.refused = true;
            return Verdict::Refuse;
        }
        if self.refused && frame.kind != FrameKind::Data {
            return Verdict::Skipped;
        }
        if frame.class == DropClass::Header {
            self.headers.remember(frame);
            let wanted = self.wanted(frame.kind);
            if wanted {
                write(frame);
            }
            if frame.kind == FrameKind::Video {
                if wanted {
                    self.video.headers_sent(frame.tracks);
                } else {
                    self.video.headers_skipped(frame.tracks);
                }
            }
            return if wanted {
                Verdict::Written
            } else {
                Verdict::Skipped
            };
        }
        if after_gap && frame.kind == FrameKind::Video {
            self.video.desync_all();
        }
        if !self.wanted(frame.kind) {
            return Verdict::Skipped;
        }
        let verdict = self.media(frame, queued, &mut write);
        self.track_loss(frame, verdict);
        verdict
    }

    fn media(
        &mut self,
        frame: &Arc<Frame>,
        queued: usize,
        write: &mut impl FnMut(&Arc<Frame>),
    ) -> Verdict {
        let b = self.budgets;
        match frame.kind {
            FrameKind::Video => {
                if !self.video.admits(frame.tracks) {
                    if frame.is_keyframe() && queued < b.video {
                        // Resume these tracks cleanly: their headers if the player may lack
                        // them, then the keyframe. Other tracks keep their own state.
                        let stale = self.video.resync(frame.tracks);
                        for header in self.headers.of_tracks(FrameKind::Video, stale) {
                            write(header);
                        }
                        write(frame);
                        Verdict::Written
                    } else {
                        // A multitrack message partly synced loses the synced tracks a frame.
                        self.video.desync(frame.tracks);
                        Verdict::Dropped(DropReason::AwaitingKeyframe)
                    }
                } else if frame.class == DropClass::Disposable && queued >= b.disposable {
                    Verdict::Dropped(DropReason::Disposable)
                } else if queued >= b.video {
                    self.video.desync(frame.tracks);
                    Verdict::Dropped(DropReason::Video)
                } else {
                    write(frame);
                    Verdict::Written
                }
            }
            FrameKind::Audio | FrameKind::Data => {
                if queued >= b.audio {
                    Verdict::Dropped(DropReason::Audio)
                } else {
                    write(frame);
                    Verdict::Written
                }
            }
        }
    }

    /// Follow losing and recovering, in media time. Waiting for the first keyframe after a
    /// join or a new publisher is not loss.
    fn track_loss(&mut self, frame: &Frame, verdict: Verdict) {
        let t = frame.timestamp;
        match (verdict, &mut self.losing) {
            (Verdict::Dropped(DropReason::AwaitingKeyframe), None) => {}
            (Verdict::Dropped(reason), None) => {
                self.losing = Some((t, t, 1));
                self.transition = Some(Lossy::Started(reason));
            }
            (Verdict::Dropped(_), Some((_, last, dropped))) => {
                *last = t;
                *dropped += 1;
            }
            (Verdict::Written, Some((first, last, dropped)))
                if t.wrapping_sub(*last) >= RECOVERY_MS && t.wrapping_sub(*last) < u32::MAX / 2 =>
            {
                self.transition = Some(Lossy::Recovered {
                    dropped: *dropped,
                    lost_ms: last.wrapping_sub(*first),
                });
                self.losing = None;
            }
            _ => {}
        }
    }

    /// The last change in losing frames, once.
    pub fn take_transition(&mut self) -> Option<Lossy> {
        self.transition.take()
    }

    /// Whether the player is losing frames now.
    pub fn is_losing(&self) -> bool {
        self.losing.is_some()
    }

    fn wanted(&self, kind: FrameKind) -> bool {
        !self.paused
            && match kind {
                FrameKind::Audio => self.receive_audio,
                FrameKind::Video => self.receive_video,
                FrameKind::Data => true,
            }
    }

    /// A publisher started: every video track waits for its keyframe, and a player refused
    /// the previous stream's codec may take this one.
    pub fn published(&mut self) {
        self.video.desync_all();
        self.refused = false;
    }

    /// The publisher left: its headers are stale.
    pub fn unpublished(&mut self) {
        self.headers.clear();
        self.video.desync_all();
    }

    pub fn receive_audio(&mut self, flag: bool) {
        self.receive_audio = flag;
    }

    pub fn receive_video(&mut self, flag: bool) {
        if flag && !self.receive_video {
            self.video.desync_all();
        }
        self.receive_video = flag;
    }

    pub fn pause(&mut self) {
        self.paused = true;
    }

    /// Live resumes at the next keyframe; the metadata and audio headers go first.
    pub fn unpause(&mut self, mut write: impl FnMut(&Arc<Frame>)) {
        self.paused = false;
        self.video.desync_all();
        if let Some(meta) = &self.headers.metadata {
            write(meta);
        }
        for header in self.headers.of(FrameKind::Audio) {
            write(header);
        }
    }
}
