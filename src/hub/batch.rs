//! Write coalescing on one core: audio and data frames wait a little for the next video
//! frame so that each player gets them in the same write. At 30 fps video and AAC audio
//! (43 frames a second) that is 30 writes per player per second instead of 73: one
//! syscall, one TCP segment train and one receiver wake-up per video frame. Video is never
//! held; the wait for the others is bounded by the window.

use std::sync::Arc;

use super::{Frame, FrameKind};

/// What the caller does after [`Batch::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Hand the batch over now ([`Batch::take`]).
    Flush,
    /// The first frame of a batch: hand it over when the window has passed.
    Arm,
    /// A timer is already armed for this batch.
    Wait,
}

/// Frames waiting to be handed to a core's players, with the frames missed before each.
#[derive(Debug, Default)]
pub struct Batch {
    window_ms: u64,
    pending: Vec<(Arc<Frame>, u64)>,
}

impl Batch {
    /// `window_ms` 0: every frame is handed over as it comes.
    pub fn new(window_ms: u64) -> Batch {
        Batch {
            window_ms,
            pending: Vec::new(),
        }
    }

    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    pub fn push(&mut self, frame: Arc<Frame>, missed: u64) -> Push {
        let video = frame.kind == FrameKind::Video;
        self.pending.push((frame, missed));
        if video || self.window_ms == 0 {
            Push::Flush
        } else if self.pending.len() == 1 {
            Push::Arm
        } else {
            Push::Wait
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// What waits, in order; the batch is empty afterwards. Give the vector back with
    /// [`Batch::recycle`] to keep its capacity (no allocation per batch).
    pub fn take(&mut self) -> Vec<(Arc<Frame>, u64)> {
        std::mem::take(&mut self.pending)
    }

    pub fn recycle(&mut self, mut taken: Vec<(Arc<Frame>, u64)>) {
        if self.pending.is_empty() {
            taken.clear();
            self.pending = taken;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::DropClass;

    fn frame(kind: FrameKind, timestamp: u32) -> Arc<Frame> {
        let class = match kind {
            FrameKind::Video => DropClass::Inter,
            FrameKind::Audio => DropClass::Audio,
            FrameKind::Data => DropClass::Data,
        };
        Frame::for_test(kind, class, &[0], timestamp, 0)
    }

    fn stamps(batch: &mut Batch) -> Vec<(u32, u64)> {
        let taken = batch.take();
        let stamps = taken.iter().map(|(f, m)| (f.timestamp, *m)).collect();
        batch.recycle(taken);
        stamps
    }

    #[test]
    fn audio_waits_for_video_in_order() {
        let mut b = Batch::new(34);
        assert_eq!(b.push(frame(FrameKind::Audio, 0), 0), Push::Arm);
        assert_eq!(b.push(frame(FrameKind::Data, 10), 2), Push::Wait);
        assert_eq!(b.push(frame(FrameKind::Audio, 23), 0), Push::Wait);
        assert_eq!(b.push(frame(FrameKind::Video, 33), 0), Push::Flush);
        assert_eq!(stamps(&mut b), [(0, 0), (10, 2), (23, 0), (33, 0)]);
        assert!(b.is_empty());
        // A new batch arms a new timer.
        assert_eq!(b.push(frame(FrameKind::Audio, 46), 0), Push::Arm);
        assert_eq!(stamps(&mut b), [(46, 0)]);
    }

    #[test]
    fn video_is_never_held() {
        let mut b = Batch::new(34);
        assert_eq!(b.push(frame(FrameKind::Video, 0), 0), Push::Flush);
        assert_eq!(stamps(&mut b), [(0, 0)]);
    }

    #[test]
    fn no_window_flushes_every_frame() {
        let mut b = Batch::new(0);
        for kind in [FrameKind::Audio, FrameKind::Data, FrameKind::Video] {
            assert_eq!(b.push(frame(kind, 0), 0), Push::Flush);
            assert_eq!(stamps(&mut b), [(0, 0)]);
        }
    }
}
