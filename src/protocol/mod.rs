//! The sans-IO protocol core: RTMP, and the HTTP, WebSocket and FLV of HTTP-FLV players.
//! Plain types and state machines over bytes.
//!
//! Nothing in here touches a socket, a runtime or an actor; every API takes bytes in and gives
//! values or events out, so the same core serves the server, the client, tests, fuzzers and
//! benchmarks.

pub mod amf0;
pub mod amf3;
pub mod chunk;
pub mod command;
pub mod flv;
pub mod handshake;
pub mod http;
pub mod media;
pub mod message;
pub mod websocket;
