//! Outputs: small adapters from the fan-out hub ([`crate::hub`]) to a wire format.
//!
//! - [`outbox`]: a connection's outgoing byte queue and its writer (vectored writes).
//! - [`rtmp`]: an RTMP player: the play sequence, frames in RTMP chunks (made once per
//!   stream and chunk size, shared), the status messages.

pub mod outbox;
pub mod rtmp;
