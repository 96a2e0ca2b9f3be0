//! reflector: a live RTMP reflector on actix actors.
//!
//! Crate map:
//! - [`protocol`]: the sans-IO RTMP core (handshake, chunk stream, AMF0/AMF3, messages,
//!   commands, media tag inspection). Plain types and state machines over bytes.

pub mod protocol;
