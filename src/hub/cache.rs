//! What a late joiner needs: the metadata, the sequence headers (per kind, role and track)
//! and the GOP. The publisher keeps one; each core's fan-out keeps a mirror fed by the same
//! frames, so that players joining on that core start without a round trip to the publisher.

use std::sync::Arc;

use super::{DropClass, Frame, GopCache, HeaderCache};
use crate::config::LiveSettings;

#[derive(Debug, Default)]
pub struct StreamCache {
    pub headers: HeaderCache,
    pub gop: GopCache,
}

impl StreamCache {
    /// Keep what a late joiner needs of `frame`.
    pub fn record(&mut self, frame: &Arc<Frame>, live: &LiveSettings) {
        if frame.class == DropClass::Header {
            self.headers.remember(frame);
        } else if live.gop_cache {
            self.gop.push(
                frame,
                live.gop_cache_max_bytes,
                live.gop_cache_max_duration_ms,
            );
        }
    }

    /// A new publisher (or none): nothing cached is current any more.
    pub fn clear(&mut self) {
        self.headers.clear();
        self.gop.clear();
    }

    /// Metadata, headers, then the GOP (each video track from its own keyframe), in order.
    pub fn burst(&self) -> impl Iterator<Item = &Arc<Frame>> {
        self.headers
            .metadata
            .iter()
            .chain(self.headers.headers.iter())
            .chain(self.gop.burst())
    }

    /// The burst as a list (what crosses to a core joining the stream).
    pub fn burst_vec(&self) -> Vec<Arc<Frame>> {
        let mut out = Vec::with_capacity(1 + self.headers.headers.len() + self.gop.len());
        out.extend(self.burst().cloned());
        out
    }
}
