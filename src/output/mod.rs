//! Outputs: small adapters from the fan-out hub ([`crate::hub`]) to a wire format.
//!
//! - [`outbox`]: a connection's outgoing byte queue and its writer (vectored writes).
//! - [`rtmp`]: an RTMP player: the play sequence, frames in RTMP chunks (made once per
//!   stream and chunk size, shared), the status messages.
//! - `signal`: the same-thread wake-up of a writer.
//! - [`flv`]: an HTTP-FLV or WebSocket-FLV player: an FLV header, then frames as FLV tags
//!   (made once per stream and framing, shared).

pub mod flv;
pub mod outbox;
pub mod rtmp;
mod signal;

use std::sync::atomic::Ordering::Relaxed;

use crate::hub::gate::{DropReason, Lossy};
use crate::hub::Verdict;
use crate::names::Esc;
use crate::stats::SubscriberStats;

/// Count what the delivery gate decided for one frame of one player.
pub fn count_verdict(stats: &SubscriberStats, verdict: Verdict) {
    let drops = &stats.drops;
    match verdict {
        Verdict::Written | Verdict::Skipped | Verdict::Refuse => {}
        Verdict::Dropped(DropReason::Disposable) => {
            drops.disposable.fetch_add(1, Relaxed);
        }
        Verdict::Dropped(DropReason::Video) => {
            drops.video.fetch_add(1, Relaxed);
        }
        Verdict::Dropped(DropReason::Audio) => {
            drops.audio.fetch_add(1, Relaxed);
        }
        Verdict::Dropped(DropReason::AwaitingKeyframe) => {
            drops.awaiting_keyframe.fetch_add(1, Relaxed);
        }
    }
}

/// Store the player's lag (the age of its oldest queued byte) in its stats; past
/// `max_lag_ms` log it and say so: the caller closes the player. `resource` names the stream
/// for that log line; it runs only then, not on every check of every player.
pub fn over_lag_limit(
    outbox: &outbox::Outbox,
    stats: &SubscriberStats,
    max_lag_ms: u64,
    connection: u64,
    resource: impl FnOnce() -> String,
) -> bool {
    let lag = outbox.oldest_age().unwrap_or_default();
    stats.lag_ms.store(lag.as_millis() as u64, Relaxed);
    if lag <= std::time::Duration::from_millis(max_lag_ms) {
        return false;
    }
    tracing::warn!(
        connection,
        stream = %Esc(&resource()),
        lag_ms = lag.as_millis() as u64,
        queued = outbox.queued_bytes(),
        "player too far behind: disconnecting"
    );
    true
}

/// One line when a player starts losing frames and one when it has caught up (from the
/// gate's transitions, never per drop).
pub fn log_loss(connection: u64, resource: &str, lag_ms: u64, queued: usize, change: Lossy) {
    match change {
        Lossy::Started(reason) => tracing::warn!(
            connection,
            stream = %Esc(resource),
            lag_ms,
            queued,
            reason = ?reason,
            "player falling behind: dropping frames"
        ),
        Lossy::Recovered { dropped, lost_ms } => tracing::info!(
            connection,
            stream = %Esc(resource),
            lag_ms,
            queued,
            dropped,
            lost_ms,
            "player caught up: no frame dropped for 5 s"
        ),
    }
}
