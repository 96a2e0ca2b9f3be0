//! The fan-out hub: everything a stream's fan-out needs that is neither RTMP nor a socket nor
//! an actor. Outputs (the RTMP player, the push relay) adapt it; the actors wire it up.
//!
//! - [`frame`]: a prepared message and the wire forms outputs make of it once.
//! - [`tracks`]: per-track header cache, GOP cache and resync state (E-RTMP multitrack).
//! - [`cache`]: what a late joiner needs, kept by the publisher and mirrored per core.
//! - [`gate`]: the per-player delivery gate: write, drop, or resync at the next keyframe.
//! - [`fanout`]: the players of one stream on one core, fed from one message per frame.
//! - [`batch`]: write coalescing on a core (audio and data wait for the next video frame).

pub mod batch;
pub mod cache;
pub mod fanout;
pub mod frame;
pub mod gate;
pub mod tracks;

pub use cache::StreamCache;
pub use fanout::{LocalFanout, Player, PlayerKey};
pub use frame::{DropClass, Frame, FrameKind, WireForm};
pub use gate::{Budgets, DeliveryGate, Lossy, Verdict};
pub use tracks::{GopCache, HeaderCache, HeaderRole, TrackSet, VideoGate};
