//! The project's own RTMP client, on tokio and the sans-IO protocol core: publishes and plays
//! against any RTMP server. Used by the integration tests, the load tool (thousands of players
//! in one process, so per-connection state is a few buffers and the chunk codec state, and
//! receiving a message allocates nothing beyond its payload) and relays.
//!
//! - [`RtmpUrl`] parses `rtmp://host[:port]/app[/more]/stream[?query]`.
//! - [`RtmpClient`]: one connection. [`RtmpClient::connect`] runs TCP, the handshake
//!   (§5.2) and `connect` (§7.2.1.1); then [`RtmpClient::create_stream`],
//!   [`RtmpClient::publish`] or [`RtmpClient::play`], then [`RtmpClient::send`] media or read
//!   [`RtmpClient::next_event`]s. [`RtmpClient::into_split`] gives a reader and a cloneable
//!   writer for a player that keeps reading while another task writes.
//! - Remote shared objects: [`RtmpClient::send_shared_object`] sends a shared object message
//!   (Use, Request Change, Send Message...); what the server sends back arrives as
//!   [`ClientEvent::SharedObject`].
//! - [`FlvClient`]: an HTTP-FLV or WebSocket-FLV player (`http://` / `ws://` [`FlvUrl`]s).
//! - [`synth`]: synthetic, numbered FLV media for tests and load.
//!
//! Chunk stream ids the client writes on (like ffmpeg's, with data apart from audio): see
//! [`csid`].

pub mod http_flv;
mod session;
pub mod synth;
mod url;

use std::time::Duration;

use crate::protocol::amf0::Amf0Value;
use crate::protocol::chunk::ChunkError;
use crate::protocol::handshake::HandshakeError;
use crate::protocol::message::{MessageError, RawMessage, SharedObjectMessage, UserControlEvent};

pub use http_flv::{FlvClient, FlvUrl};
pub use session::{ClientReader, ClientWriter, RtmpClient};
pub use url::{RtmpUrl, DEFAULT_PORT, DEFAULT_TLS_PORT};

/// Chunk stream ids the client sends on. Protocol control on 2 (§5.4); NetConnection
/// commands on 3 and NetStream commands on 8, audio on 4 and video on 6, as ffmpeg does; data
/// messages (metadata) on 5 so that they never reset the audio chunk stream's header state.
pub mod csid {
    pub const CONTROL: u32 = 2;
    pub const COMMAND: u32 = 3;
    pub const AUDIO: u32 = 4;
    pub const DATA: u32 = 5;
    pub const VIDEO: u32 = 6;
    pub const STREAM_COMMAND: u32 = 8;
}

/// How a client connects and what it announces.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Flash-style digest handshake (as ffmpeg and librtmp do) instead of the plain §5.2 one.
    pub digest_handshake: bool,
    /// Chunk size announced with Set Chunk Size right after `connect` succeeds (§5.4.1);
    /// 128 (the default size) sends nothing.
    pub chunk_size: u32,
    /// Window Acknowledgement Size announced after `connect` (§5.4.4): the server should
    /// acknowledge every this many bytes. 0 sends nothing.
    pub window_ack_size: u32,
    /// `flashVer` of the connect command object.
    pub flash_ver: String,
    /// `objectEncoding`: 0 (AMF0) or 3 (AMF3 commands, message type 17).
    pub object_encoding: f64,
    /// More properties for the connect command object (e.g. Enhanced RTMP `fourCcList`).
    pub extra_connect_properties: Vec<(String, Amf0Value)>,
    /// Buffer length announced with User Control SetBufferLength after `play` (§7.1.7).
    pub buffer_ms: u32,
    /// Longest wait for the handshake and for each command's reply.
    pub timeout: Duration,
    /// Most events kept while waiting for a reply, before the wait fails (a server that
    /// streams media to a client that is waiting for `_result` must not grow it forever).
    pub max_queued_events: usize,
    /// Longest message accepted from the server.
    pub max_message_len: u32,
    /// Most bytes asked for per read syscall; 0 reads whatever is buffered (at least 8 KiB
    /// of room). Players differ: ffmpeg reads one chunk (or chunk header) at a time,
    /// GStreamer's rtmp2src 8192 bytes, rtmpdump 16383.
    pub read_size: usize,
    /// Acknowledge every (server's window / this) bytes: 1 acknowledges at the window
    /// (§5.4.4, GStreamer), 2 at half of it (ffmpeg), 10 at a tenth (librtmp, rtmpdump).
    pub ack_divisor: u32,
    /// TLS settings of `rtmps://` URLs (trusted roots); `None` = the public roots.
    pub tls: Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            digest_handshake: true,
            chunk_size: 4096,
            window_ack_size: 2_500_000,
            flash_ver: "FMLE/3.0 (compatible; reflector-client)".to_owned(),
            object_encoding: 0.0,
            extra_connect_properties: Vec::new(),
            buffer_ms: 3000,
            timeout: Duration::from_secs(10),
            max_queued_events: 4096,
            max_message_len: 16 * 1024 * 1024 - 1,
            read_size: 0,
            ack_divisor: 1,
            tls: None,
        }
    }
}

/// An `onStatus` the server sent on a NetStream (§7.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Message stream id the status was sent on.
    pub stream_id: u32,
    /// `status`, `warning` or `error`.
    pub level: String,
    /// e.g. `NetStream.Play.Start`.
    pub code: String,
    pub description: String,
}

impl Status {
    pub fn is_error(&self) -> bool {
        self.level == "error"
    }
}

/// What the server sent, as [`RtmpClient::next_event`] returns it. Protocol control
/// (Set Chunk Size, Window Acknowledgement Size, Set Peer Bandwidth, Acknowledgement, ping
/// requests and responses) is handled inside the client and never shows up here.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// Audio (8), video (9) or aggregate (22) message, payload untouched.
    Media(RawMessage),
    /// Data message (18, or 15 in AMF3 mode): e.g. `onMetaData`, `|RtmpSampleAccess`.
    Data {
        stream_id: u32,
        timestamp: u32,
        values: Vec<Amf0Value>,
    },
    /// `onStatus` on a NetStream.
    Status(Status),
    /// User Control events other than pings: StreamBegin, StreamEOF, StreamDry...
    UserControl(UserControlEvent),
    /// Any other command: `_result`/`_error` nobody waited for, `onBWDone`, `onFCPublish`...
    /// `values` are everything after the transaction id (command object, then arguments).
    Command {
        stream_id: u32,
        name: String,
        transaction_id: f64,
        values: Vec<Amf0Value>,
    },
    /// A shared object message (§7.1.3): type 19, or 16 when `amf3`.
    SharedObject {
        amf3: bool,
        message: SharedObjectMessage,
    },
}

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad URL {url:?}: {reason}")]
    BadUrl { url: String, reason: &'static str },
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    #[error("message: {0}")]
    Message(#[from] MessageError),
    /// `connect` answered with `_error`.
    #[error("connect rejected: {code}: {description}")]
    Rejected { code: String, description: String },
    /// Another call answered with `_error`.
    #[error("{command} failed: {code}: {description}")]
    CallFailed {
        command: String,
        code: String,
        description: String,
    },
    /// An error `onStatus` answered `publish` or `play` (e.g. NetStream.Publish.BadName).
    #[error("{code}: {description}")]
    Status { code: String, description: String },
    /// A reply that does not have the expected shape (e.g. `createStream` without a number).
    #[error("unexpected reply to {command}: {reason}")]
    UnexpectedReply {
        command: String,
        reason: &'static str,
    },
    #[error("no {what} within {after:?}")]
    Timeout { what: &'static str, after: Duration },
    #[error("more than {limit} events arrived while waiting for {what}")]
    TooManyEvents { what: &'static str, limit: usize },
    /// The server closed the connection.
    #[error("connection closed by the server")]
    Closed,
    /// The TLS handshake of an `rtmps://` URL failed (e.g. an untrusted certificate).
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    /// An HTTP-FLV server answered with another status than 200 (101 for WebSocket).
    #[error("HTTP {status} {reason:?}")]
    Http { status: u16, reason: String },
    /// A malformed HTTP response or chunked body.
    #[error("HTTP: {0}")]
    HttpProtocol(#[from] crate::protocol::http::HttpError),
    #[error("WebSocket: {0}")]
    WebSocket(#[from] crate::protocol::websocket::WsError),
    #[error("FLV: {0}")]
    Flv(#[from] crate::protocol::flv::FlvError),
}

impl ClientError {
    /// Whether the connection ended: closed cleanly or reset by the server.
    pub fn is_disconnect(&self) -> bool {
        match self {
            ClientError::Closed => true,
            ClientError::Io(e) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }
}
