//! The connection actor: one per TCP connection. It runs the handshake, reads the chunk
//! stream, answers protocol control messages and NetConnection commands, and starts a stream
//! actor per publishing or playing NetStream.

pub use crate::requests::{CloseConnection, RequestReconnect};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::{Decoder, FramedRead};

use super::registry::{self, PublishGrant, Refusal};
use super::shared_object::{ClientHandle as SharedObjects, SharedObjectClient};
use super::stream::{Media, PublishingStream, StopStream};
use super::subscriber::{PlayControl, Subscriber};
use super::{csid, ConnectionId, ServerContext};
use crate::admission::{query_key, split_name, Admission, DoneHook, Granted, Refused};
use crate::auth::Action;
use crate::config::Settings;
use crate::hub::gate::PlayerCaps;
use crate::names::{self, Esc, Resource};
use crate::output::outbox::Outbox;
use crate::protocol::amf0::Amf0Value;
use crate::protocol::chunk::{ChunkDecoder, ChunkError, ReceiveWindow};
use crate::protocol::command::{self, caps_ex, fourcc_info, status, Command, ConnectCommand};
use crate::protocol::handshake::{HandshakeState, ServerHandshake};
use crate::protocol::message::{
    command_transaction_id, type_id, LimitType, Message, RawMessage, UserControlEvent,
};
use crate::stats::{ConnectionState, ConnectionStats, RefusalReason, SubscriberStats};
use crate::tls::transport::Transport;

/// Why a connection ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("handshake: {0}")]
    Handshake(#[from] crate::protocol::handshake::HandshakeError),
    #[error("handshake not finished within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("TLS handshake: {0}")]
    Tls(std::io::Error),
}

/// Frames the socket's bytes into messages with the protocol core's chunk decoder.
pub struct ChunkCodec {
    decoder: ChunkDecoder,
    /// Bytes consumed so far, shared with the actor for acknowledgements and stats.
    consumed: Rc<std::cell::Cell<u64>>,
    /// A read filled the whole buffer: this peer sends in bulk (a publisher), so reads get
    /// [`BULK_READ`] of room instead of the initial 4 KiB that players' acknowledgements need.
    bulk: bool,
}

/// Room for one read once a connection sends in bulk: at 1 GB/s of ingest, 4 KiB reads are
/// 250 000 syscalls a second, 64 KiB reads 16 000.
const BULK_READ: usize = 64 * 1024;

impl Decoder for ChunkCodec {
    type Item = RawMessage;
    type Error = ConnectionError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<RawMessage>, ConnectionError> {
        if !self.bulk && src.len() == src.capacity() {
            self.bulk = true;
        }
        let message = self.decoder.decode(src)?;
        self.consumed.set(self.decoder.bytes_consumed());
        if message.is_none() && self.bulk && src.capacity() - src.len() < BULK_READ / 4 {
            // The decoded payloads share the buffer's allocation, so it cannot be reused in
            // place: this allocates the next block.
            src.reserve(BULK_READ);
        }
        Ok(message)
    }
}

/// What one message stream id of this connection is doing. The `on_done` hook is boxed:
/// every connection keeps a map of slots, most without one, and inline it made each map
/// bucket ~270 bytes (an auth request of several strings).
enum StreamSlot {
    /// Made by createStream, not publishing or playing yet.
    Idle,
    Publishing {
        addr: Addr<PublishingStream>,
        name: String,
        done: Option<Box<DoneHook>>,
    },
    Playing {
        addr: Addr<Subscriber>,
        done: Option<Box<DoneHook>>,
    },
}

/// What `connect` said.
struct Session {
    app: String,
    object_encoding: f64,
    /// Enhanced RTMP capabilities it announced.
    caps: Arc<PlayerCaps>,
    /// Enhanced RTMP v2 `capsEx` bits.
    caps_ex: u32,
    tc_url: Option<String>,
    /// The query of the connect URL (`app?...`, else `tcUrl`'s): shared object credentials.
    args: Option<String>,
}

/// The Enhanced RTMP capabilities the server answers with (E-RTMP v2, "Enhancing
/// NetConnection connect Command"): it forwards every codec, multitrack, ModEx and nanosecond
/// offsets unchanged, and honours reconnect requests.
fn server_enhanced_properties() -> Vec<(String, Amf0Value)> {
    let forward = || Amf0Value::Number(f64::from(fourcc_info::CAN_FORWARD));
    let video = ["avc1", "hvc1", "av01", "vp09", "vp08"];
    let audio = ["mp4a", "Opus", "fLaC", "ac-3", "ec-3", ".mp3"];
    vec![
        (
            "fourCcList".into(),
            Amf0Value::StrictArray(
                video
                    .iter()
                    .map(|f| Amf0Value::String((*f).into()))
                    .collect(),
            ),
        ),
        (
            "videoFourCcInfoMap".into(),
            Amf0Value::Object(video.iter().map(|f| ((*f).to_owned(), forward())).collect()),
        ),
        (
            "audioFourCcInfoMap".into(),
            Amf0Value::Object(audio.iter().map(|f| ((*f).to_owned(), forward())).collect()),
        ),
        (
            "capsEx".into(),
            Amf0Value::Number(f64::from(
                caps_ex::RECONNECT
                    | caps_ex::MULTITRACK
                    | caps_ex::MOD_EX
                    | caps_ex::TIMESTAMP_NANO_OFFSET,
            )),
        ),
    ]
}

/// One RTMP connection.
pub struct Connection {
    id: ConnectionId,
    peer: SocketAddr,
    server: Arc<ServerContext>,
    /// The settings this connection started with.
    settings: Arc<Settings>,
    draining: bool,
    stats: Arc<ConnectionStats>,
    outbox: Rc<Outbox>,
    window: ReceiveWindow,
    consumed: u64,
    decoder_consumed: Rc<std::cell::Cell<u64>>,
    session: Option<Session>,
    streams: HashMap<u32, StreamSlot>,
    next_stream_id: u32,
    last_activity: Instant,
    ping_sent: Option<(u32, Instant)>,
    close_reason: Option<String>,
    /// Its shared object session, from the first shared object message on.
    shared_objects: Option<SharedObjects>,
    /// Stream-0 media was taken or dropped once (and said so).
    stream_zero_noted: bool,
}

/// Take a freshly accepted socket through the handshakes (TLS first on the RTMPS port, both
/// within `rtmp.handshake_timeout_ms`), then start its connection actor on the current arbiter.
pub async fn serve(
    socket: TcpStream,
    tls: Option<TlsAcceptor>,
    server: Arc<ServerContext>,
    stats: Arc<ConnectionStats>,
) {
    let id = stats.id;
    let peer = stats.peer;
    let _ = socket.set_nodelay(true);
    let settings = server.settings.load_full();
    let timeout = Duration::from_millis(settings.rtmp.handshake_timeout_ms);
    let handshakes = async {
        let mut socket = match tls {
            Some(acceptor) => Transport::Tls(Box::new(
                acceptor
                    .accept(socket)
                    .await
                    .map_err(ConnectionError::Tls)?
                    .into(),
            )),
            None => Transport::Plain(socket),
        };
        let leftover = handshake(&mut socket, &stats).await?;
        Ok::<_, ConnectionError>((socket, leftover))
    };
    let result = tokio::time::timeout(timeout, handshakes).await;
    let (socket, leftover) = match result {
        Ok(Ok(done)) => done,
        Ok(Err(e @ ConnectionError::Tls(_))) => {
            // Garbage, plain RTMP, an unknown CA on the client's side, a reset mid-way.
            tracing::info!(connection = id, %peer, error = %Esc(&e.to_string()), "TLS handshake failed");
            server.stats.protocol_errors.fetch_add(1, Relaxed);
            finish(&server, &stats);
            return;
        }
        Ok(Err(e)) => {
            if stats.bytes_in.load(Relaxed) == 0 {
                // A port probe or a health check: nothing was said, nothing was wrong.
                tracing::debug!(connection = id, %peer, "closed before the handshake");
            } else {
                tracing::info!(connection = id, %peer, error = %e, "handshake failed");
                server.stats.protocol_errors.fetch_add(1, Relaxed);
            }
            finish(&server, &stats);
            return;
        }
        Err(_) => {
            tracing::info!(connection = id, %peer, error = %ConnectionError::HandshakeTimeout(timeout), "handshake failed");
            finish(&server, &stats);
            return;
        }
    };
    stats.set_state(ConnectionState::Connected);
    let (read, write) = socket.into_split();
    let outbox = Outbox::new(stats.clone());
    let writer_outbox = outbox.clone();
    let decoder = ChunkDecoder::new(settings.chunk_limits());
    let window_size = settings.rtmp.window_ack_size;
    let decoder_consumed = Rc::new(std::cell::Cell::new(0));
    let codec = ChunkCodec {
        decoder,
        consumed: decoder_consumed.clone(),
        bulk: false,
    };
    Connection::create(move |ctx| {
        // Bytes that came with C2 are read first: FramedRead only decodes its buffer after a
        // socket read, and a client that sent `connect` with C2 waits for the reply.
        let reader = std::io::Cursor::new(bytes::Bytes::copy_from_slice(&leftover)).chain(read);
        ctx.add_stream(FramedRead::with_capacity(reader, codec, 4096));
        let addr = ctx.address();
        actix::spawn(async move {
            if let Err(e) = writer_outbox.run_writer(write).await {
                addr.do_send(CloseConnection {
                    reason: disconnect_reason("write", &e),
                });
            }
        });
        Connection {
            id,
            peer,
            server,
            settings,
            draining: false,
            stats,
            outbox,
            window: ReceiveWindow::new(window_size),
            consumed: 0,
            decoder_consumed,
            session: None,
            streams: HashMap::new(),
            next_stream_id: 1,
            last_activity: Instant::now(),
            ping_sent: None,
            close_reason: None,
            shared_objects: None,
            stream_zero_noted: false,
        }
    });
}

async fn handshake(
    socket: &mut (impl AsyncRead + AsyncWrite + Unpin),
    stats: &ConnectionStats,
) -> Result<BytesMut, ConnectionError> {
    let mut hs = ServerHandshake::new();
    let mut input = BytesMut::with_capacity(4096);
    let mut out = BytesMut::new();
    loop {
        let state = hs.process(&mut input, &mut out)?;
        if !out.is_empty() {
            socket.write_all(&out).await?;
            stats.bytes_out.fetch_add(out.len() as u64, Relaxed);
            out.clear();
        }
        if state == HandshakeState::Done {
            return Ok(input);
        }
        let n = socket.read_buf(&mut input).await?;
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        stats.bytes_in.fetch_add(n as u64, Relaxed);
        stats.touch_read();
    }
}

/// Forget a connection in the shared tables.
pub(super) fn finish(server: &ServerContext, stats: &ConnectionStats) {
    if server.stats.connections.remove(&stats.id).is_some() {
        // Keep the server's byte totals monotonic once this connection leaves the table.
        let s = &server.stats;
        s.closed_bytes_in
            .fetch_add(stats.bytes_in.load(Relaxed), Relaxed);
        s.closed_bytes_out
            .fetch_add(stats.bytes_out.load(Relaxed), Relaxed);
    }
    let ip = stats.peer.ip();
    let mut empty = false;
    if let Some(mut n) = server.connections_per_ip.get_mut(&ip) {
        *n = n.saturating_sub(1);
        empty = *n == 0;
    }
    if empty {
        server.connections_per_ip.remove_if(&ip, |_, n| *n == 0);
    }
}

/// The query of the connect URL: after `?` in `app`, else in `tcUrl`.
fn connect_args(app: &str, tc_url: Option<&str>) -> Option<String> {
    app.split_once('?')
        .or_else(|| tc_url.and_then(|u| u.split_once('?')))
        .map(|(_, q)| q.to_owned())
}

/// The close reason of a peer that ended the connection in the ordinary way.
const PEER_CLOSED: &str = "peer closed";

/// The close reason for a socket error. A reset, an abort or a broken pipe is how players
/// usually leave (ffmpeg and browsers close with unread data, which sends a reset), so it is
/// an ordinary disconnect, not a failure; anything else is a real fault.
pub(super) fn disconnect_reason(op: &str, e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => {
            format!("{PEER_CLOSED} ({e})")
        }
        _ => format!("{op} failed: {e}"),
    }
}

impl Connection {
    /// The app named in `connect` ("" before it).
    fn app(&self) -> String {
        self.session
            .as_ref()
            .map(|s| s.app.clone())
            .unwrap_or_default()
    }

    fn amf3(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| s.object_encoding == 3.0)
    }

    fn send_command(&self, chunk_stream: u32, stream_id: u32, values: Vec<Amf0Value>) {
        self.outbox.send(
            chunk_stream,
            stream_id,
            0,
            &Message::Command {
                amf3: self.amf3(),
                values,
            },
        );
    }

    fn stream_status(&self, stream_id: u32, level: &str, code: &str, description: String) {
        self.send_command(
            csid::STREAM_COMMAND,
            stream_id,
            command::on_status(level, code, &description, Vec::new()),
        );
    }

    /// End this connection for `reason`, flushing what was queued (e.g. an `_error`).
    fn close(&mut self, ctx: &mut Context<Self>, reason: impl Into<String>) {
        if self.close_reason.is_none() {
            let reason = reason.into();
            self.stats.set_close_reason(&reason);
            self.close_reason = Some(reason);
        }
        ctx.stop();
    }

    /// Bad input: log it with the connection id, count it, close.
    fn protocol_error(&mut self, ctx: &mut Context<Self>, error: impl std::fmt::Display) {
        tracing::warn!(connection = self.id, peer = %self.peer, error = %Esc(&error.to_string()), "protocol error: closing");
        self.server.stats.protocol_errors.fetch_add(1, Relaxed);
        self.close(ctx, format!("protocol error: {error}"));
    }

    /// Where media sent on message stream 0 goes. node-media-server's relay publishes on
    /// the stream it created but sends its audio and video on stream 0 (nginx-rtmp takes it):
    /// with exactly one publishing stream the media is that stream's. Otherwise it is
    /// dropped, with one warning per connection.
    fn stream_zero_publisher(&mut self) -> Option<&Addr<PublishingStream>> {
        let mut publishing = self.streams.values().filter_map(|slot| match slot {
            StreamSlot::Publishing { addr, .. } => Some(addr),
            _ => None,
        });
        let (first, second) = (publishing.next(), publishing.next());
        let reason = match (first, second) {
            (Some(addr), None) => {
                if !self.stream_zero_noted {
                    self.stream_zero_noted = true;
                    tracing::info!(
                        connection = self.id,
                        "media on message stream 0 taken as the publishing stream's"
                    );
                }
                return Some(addr);
            }
            (None, _) => "no stream is publishing",
            (Some(_), Some(_)) => "more than one stream is publishing",
        };
        if !self.stream_zero_noted {
            self.stream_zero_noted = true;
            tracing::warn!(
                connection = self.id,
                peer = %self.peer,
                reason,
                "media on message stream 0 dropped (further such messages are dropped silently)"
            );
        }
        None
    }

    fn on_message(&mut self, raw: RawMessage, ctx: &mut Context<Self>) {
        match raw.type_id {
            type_id::AUDIO
            | type_id::VIDEO
            | type_id::DATA_AMF0
            | type_id::DATA_AMF3
            | type_id::AGGREGATE => {
                let target = match raw.stream_id {
                    0 => self.stream_zero_publisher(),
                    id => match self.streams.get(&id) {
                        Some(StreamSlot::Publishing { addr, .. }) => Some(addr),
                        _ => None,
                    },
                };
                if let Some(addr) = target {
                    let addr = addr.clone();
                    self.stats.media_forwarded.fetch_add(1, Relaxed);
                    match addr.try_send(Media(raw)) {
                        Ok(()) => {}
                        Err(actix::dev::SendError::Full(msg)) => {
                            // The publisher is behind: stop reading until it has room.
                            ctx.wait(addr.send(msg).into_actor(self).map(|_, _, _| ()));
                        }
                        Err(actix::dev::SendError::Closed(_)) => {
                            self.stats.media_forwarded.fetch_sub(1, Relaxed);
                        }
                    }
                } else if raw.type_id != type_id::DATA_AMF0 && raw.type_id != type_id::DATA_AMF3 {
                    tracing::debug!(
                        connection = self.id,
                        stream_id = raw.stream_id,
                        "media on a stream that is not publishing: ignored"
                    );
                }
                return;
            }
            type_id::SET_CHUNK_SIZE | type_id::ABORT | type_id::ACKNOWLEDGEMENT => return,
            _ => {}
        }
        let limits = self.settings.amf_limits();
        let message = match Message::decode(&raw, &limits) {
            Ok(m) => m,
            Err(e) => {
                // A command whose name and transaction id decode is answered before the close.
                if let Some(tid) = command_transaction_id(&raw, &limits) {
                    let description = format!("the command could not be decoded: {e}");
                    self.send_command(
                        csid::COMMAND,
                        raw.stream_id,
                        command::error(tid, status::CALL_FAILED, &description),
                    );
                }
                return self.protocol_error(ctx, e);
            }
        };
        match message {
            Message::UserControl(UserControlEvent::PingResponse { timestamp }) => {
                if let Some((sent, at)) = self.ping_sent {
                    // The next ping is due `ping_interval_ms` after this one was sent, answered
                    // or not (clearing it here made every player ping once a second).
                    if sent == timestamp {
                        self.stats
                            .rtt_us
                            .store(at.elapsed().as_micros() as u64, Relaxed);
                    }
                }
            }
            Message::UserControl(UserControlEvent::PingRequest { timestamp }) => {
                self.outbox.send(
                    csid::CONTROL,
                    0,
                    0,
                    &Message::UserControl(UserControlEvent::PingResponse { timestamp }),
                );
            }
            Message::UserControl(_) => {}
            Message::WindowAckSize(size) => self.window.set_window(size),
            Message::SetPeerBandwidth { .. } => {}
            Message::Command { values, .. } => match Command::parse(&values) {
                Ok(cmd) => self.on_command(cmd, raw.stream_id, ctx),
                Err(e) => {
                    let tid = values.get(1).and_then(Amf0Value::as_f64).unwrap_or(0.0);
                    self.send_command(
                        csid::COMMAND,
                        raw.stream_id,
                        command::error(tid, status::CALL_FAILED, &e.to_string()),
                    );
                    self.protocol_error(ctx, e);
                }
            },
            Message::SharedObject { amf3, message } => {
                let Some(session) = self.session.as_ref() else {
                    return self.protocol_error(ctx, "shared object message before connect");
                };
                if self.shared_objects.is_none() {
                    let client = SharedObjectClient {
                        id: self.id,
                        app: session.app.clone(),
                        peer: self.peer,
                        stream_key: session.args.as_deref().and_then(query_key),
                        args: session.args.clone(),
                        tc_url: session.tc_url.clone(),
                        close: ctx.address().recipient(),
                    };
                    self.shared_objects = Some(SharedObjects::start(
                        client,
                        self.outbox.clone(),
                        self.settings.clone(),
                        self.server.stats.clone(),
                    ));
                }
                let Some(so) = &self.shared_objects else {
                    return;
                };
                if let Some(wait) = so.offer(amf3, message) {
                    // Its session is behind: stop reading until it has room.
                    ctx.wait(wait.into_actor(self).map(|_, _, _| ()));
                }
            }
            other => {
                tracing::debug!(
                    connection = self.id,
                    type_id = other.type_id(),
                    "message ignored"
                );
            }
        }
    }

    fn on_command(&mut self, cmd: Command, stream_id: u32, ctx: &mut Context<Self>) {
        let tid = cmd.transaction_id();
        let knob = &self.settings.debug.panic_on_command;
        if !knob.is_empty() && cmd.name() == knob.as_str() {
            // Fault injection ([debug] panic_on_command): shows that a panic ends this
            // connection only.
            panic!("fault injection: command {knob:?} (debug.panic_on_command)");
        }
        if self.session.is_none() && !matches!(cmd, Command::Connect(_)) {
            self.send_command(
                csid::COMMAND,
                stream_id,
                command::error(tid, status::CALL_FAILED, "connect first"),
            );
            return self.protocol_error(ctx, format!("{} before connect", cmd.name()));
        }
        match cmd {
            Command::Connect(c) => self.on_connect(c, ctx),
            Command::CreateStream { transaction_id } => {
                let limit = self.settings.rtmp.max_streams_per_connection;
                if self.streams.len() as u32 >= limit {
                    self.server.stats.refusals.count(RefusalReason::Limits);
                    self.send_command(
                        csid::COMMAND,
                        0,
                        command::error(transaction_id, status::CALL_FAILED, "too many streams"),
                    );
                    return;
                }
                let id = self.next_stream_id;
                self.next_stream_id += 1;
                self.streams.insert(id, StreamSlot::Idle);
                self.send_command(
                    csid::COMMAND,
                    0,
                    command::create_stream_result(transaction_id, id),
                );
            }
            Command::ReleaseStream { transaction_id, .. } => {
                self.send_command(
                    csid::COMMAND,
                    0,
                    command::result(transaction_id, vec![Amf0Value::Undefined]),
                );
            }
            Command::FcPublish {
                transaction_id,
                name,
            } => {
                self.send_command(
                    csid::COMMAND,
                    0,
                    command::on_fc_publish(false, status::PUBLISH_START, &name),
                );
                self.send_command(
                    csid::COMMAND,
                    0,
                    command::result(transaction_id, vec![Amf0Value::Undefined]),
                );
            }
            Command::FcUnpublish {
                transaction_id,
                name,
            } => {
                let (name, _, _) = split_name(&name);
                // Slots hold canonical names: a name that is not one matches none.
                let canonical =
                    Resource::canonical(&self.app(), &name, self.settings.rtmp.max_name_len)
                        .map(|r| r.name)
                        .ok();
                let ids: Vec<u32> = self
                    .streams
                    .iter()
                    .filter(|(_, s)| {
                        matches!(s, StreamSlot::Publishing { name: n, .. } if Some(n) == canonical.as_ref())
                    })
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    self.stop_stream(id, false);
                }
                self.send_command(
                    csid::COMMAND,
                    0,
                    command::on_fc_publish(true, status::UNPUBLISH_SUCCESS, &name),
                );
                self.send_command(
                    csid::COMMAND,
                    0,
                    command::result(transaction_id, vec![Amf0Value::Undefined]),
                );
            }
            Command::Publish { name, .. } => self.on_publish(stream_id, name, ctx),
            Command::Play { name, reset, .. } => self.on_play(stream_id, name, reset, ctx),
            Command::Play2 { parameters, .. } => {
                match parameters.get("streamName").and_then(Amf0Value::as_str) {
                    Some(name) => {
                        let name = name.to_owned();
                        self.stop_stream(stream_id, true);
                        self.on_play(stream_id, name, true, ctx);
                    }
                    None => self.stream_status(
                        stream_id,
                        "error",
                        status::PLAY_FAILED,
                        "play2 without streamName".into(),
                    ),
                }
            }
            Command::DeleteStream { stream_id: id, .. } => {
                let id = if id.is_finite() && id >= 1.0 && id <= f64::from(u32::MAX) {
                    id as u32
                } else {
                    // No usable id: the stream the command came on.
                    stream_id
                };
                self.stop_stream(id, false);
            }
            Command::CloseStream { .. } => self.stop_stream(stream_id, true),
            Command::ReceiveAudio { flag } => {
                self.control_player(stream_id, PlayControl::ReceiveAudio(flag))
            }
            Command::ReceiveVideo { flag } => {
                self.control_player(stream_id, PlayControl::ReceiveVideo(flag))
            }
            Command::Pause {
                pause,
                milliseconds,
            } => self.control_player(
                stream_id,
                PlayControl::Pause {
                    pause,
                    milliseconds,
                },
            ),
            Command::Seek { .. } => {
                // Live streams cannot seek; say so rather than stay silent.
                self.stream_status(
                    stream_id,
                    "error",
                    status::SEEK_FAILED,
                    "Live streams cannot seek.".into(),
                );
            }
            Command::GetStreamLength { transaction_id, .. } => {
                self.send_command(
                    csid::COMMAND,
                    stream_id,
                    command::result(transaction_id, vec![Amf0Value::Number(0.0)]),
                );
            }
            Command::Result { .. } | Command::Error { .. } | Command::OnStatus { .. } => {}
            Command::Other {
                name,
                transaction_id,
                ..
            } if name == "_checkbw" => {
                // FMS's bandwidth check, sent by ffmpeg's player: acknowledge it.
                self.send_command(
                    csid::COMMAND,
                    stream_id,
                    command::result(transaction_id, Vec::new()),
                );
            }
            Command::Other {
                name,
                transaction_id,
                ..
            } => {
                tracing::debug!(connection = self.id, command = %Esc(&name), "unknown command");
                self.send_command(
                    csid::COMMAND,
                    stream_id,
                    command::error(
                        transaction_id,
                        status::CALL_FAILED,
                        &format!("Method not found ({name})."),
                    ),
                );
            }
        }
    }

    fn on_connect(&mut self, c: ConnectCommand, ctx: &mut Context<Self>) {
        if self.session.is_some() {
            return self.protocol_error(ctx, "second connect on one connection");
        }
        let app = c
            .app
            .split('?')
            .next()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_owned();
        if let Err(reason) = names::check("app", &app, self.settings.rtmp.max_name_len) {
            self.server.stats.refusals.count(RefusalReason::BadName);
            self.send_command(
                csid::COMMAND,
                0,
                command::error(
                    c.transaction_id,
                    status::CONNECT_REJECTED,
                    &reason.to_string(),
                ),
            );
            return self.protocol_error(ctx, reason);
        }
        if let Err(Refused { description, .. }) = self.admission().app(&app) {
            self.send_command(
                csid::COMMAND,
                0,
                command::error(c.transaction_id, status::CONNECT_REJECTED, &description),
            );
            return self.close(ctx, format!("connect rejected: {description}"));
        }
        let rtmp = &self.settings.rtmp;
        self.outbox.send(
            csid::CONTROL,
            0,
            0,
            &Message::WindowAckSize(rtmp.window_ack_size),
        );
        self.outbox.send(
            csid::CONTROL,
            0,
            0,
            &Message::SetPeerBandwidth {
                size: rtmp.peer_bandwidth,
                limit_type: LimitType::Dynamic,
            },
        );
        self.outbox.set_chunk_size(rtmp.out_chunk_size);
        let object_encoding = if c.object_encoding == 3.0 { 3.0 } else { 0.0 };
        tracing::info!(connection = self.id, peer = %self.peer, app = %Esc(&app), flash_ver = %Esc(c.flash_ver.as_deref().unwrap_or("")), "connect");
        tracing::debug!(connection = self.id, command_object = ?c.command_object, "connect command object");
        if let Ok(mut info) = self.stats.app.lock() {
            *info = Some((app.clone(), c.flash_ver.clone().unwrap_or_default()));
        }
        let enhanced = c.announces_enhanced_rtmp();
        let mut video_fourccs = c.fourcc_list();
        video_fourccs.extend(c.fourcc_info_map("videoFourCcInfoMap"));
        self.session = Some(Session {
            app,
            object_encoding,
            caps: Arc::new(PlayerCaps {
                enhanced,
                video_fourccs,
                ..PlayerCaps::default()
            }),
            caps_ex: c.caps_ex(),
            tc_url: c.tc_url.clone(),
            args: connect_args(&c.app, c.tc_url.as_deref()),
        });
        // Echo capabilities only to clients that asked, so legacy replies stay byte-identical.
        let properties = if enhanced {
            server_enhanced_properties()
        } else {
            Vec::new()
        };
        self.send_command(
            csid::COMMAND,
            0,
            command::connect_result(c.transaction_id, object_encoding, properties),
        );
        self.send_command(csid::COMMAND, 0, command::on_bw_done());
    }

    fn admission(&self) -> Admission<'_> {
        Admission {
            settings: &self.settings,
            control: &self.server.control,
            stats: &self.server.stats,
            connection: self.id,
            peer: self.peer,
        }
    }

    /// The resource a `publish`/`play` names: the `connect` app and the stream name joined
    /// and split again after the app's first segment ([`Resource::canonical`]), with the
    /// query string and its `key=`. A refused name answers `failure` and closes.
    fn stream_name(
        &mut self,
        stream_id: u32,
        raw: &str,
        ctx: &mut Context<Self>,
        failure: &str,
    ) -> Option<(Resource, Option<String>, Option<String>)> {
        if !matches!(self.streams.get(&stream_id), Some(StreamSlot::Idle)) {
            self.stream_status(
                stream_id,
                "error",
                failure,
                format!("Stream {stream_id} is not created or is busy."),
            );
            self.protocol_error(
                ctx,
                format!("{failure}: message stream {stream_id} not created or busy"),
            );
            return None;
        }
        let (name, query, key) = split_name(raw);
        match self.admission().resource(&self.app(), &name) {
            Ok(resource) => Some((resource, query, key)),
            Err(refused) => {
                self.stream_status(stream_id, "error", failure, refused.description.clone());
                self.protocol_error(ctx, refused.description);
                None
            }
        }
    }

    /// Ask the rules of the resource's app, then `then` with the (possibly redirected)
    /// resource; a denial, or a callback redirect that is not a valid name of the same app,
    /// answers `failure` on the stream, is logged and counted, and closes.
    #[allow(clippy::too_many_arguments)]
    fn authorize(
        &mut self,
        action: Action,
        stream_id: u32,
        resource: Resource,
        query: Option<String>,
        stream_key: Option<String>,
        ctx: &mut Context<Self>,
        then: impl FnOnce(&mut Self, Resource, Option<Box<DoneHook>>, &mut Context<Self>) + 'static,
    ) {
        let failure = match action {
            Action::Publish => status::PUBLISH_BAD_NAME,
            // Shared objects are authorized by their session, never here.
            Action::Play | Action::SharedObject => status::PLAY_FAILED,
        };
        if let Err(refused) = self
            .admission()
            .stream_ban(action, &resource, stream_key.as_deref())
        {
            self.stream_status(
                stream_id,
                "error",
                failure,
                format!("{}: {}", resource.name, refused.description),
            );
            return self.close(
                ctx,
                format!("{} refused: {}", action.as_str(), refused.description),
            );
        }
        let tc_url = self.session.as_ref().and_then(|s| s.tc_url.clone());
        let fut = self
            .admission()
            .authorize(action, resource, query, stream_key, tc_url);
        ctx.wait(fut.into_actor(self).map(move |decision, act, ctx| {
            match act.admission().decided(decision) {
                Ok(Granted { resource, done }) => then(act, resource, done.map(Box::new), ctx),
                Err(refused) => {
                    act.stream_status(stream_id, "error", failure, refused.description.clone());
                    act.close(
                        ctx,
                        format!("{} not authorized: {}", action.as_str(), refused.detail),
                    );
                }
            }
        }));
    }

    fn on_publish(&mut self, stream_id: u32, raw_name: String, ctx: &mut Context<Self>) {
        let Some((resource, query, stream_key)) =
            self.stream_name(stream_id, &raw_name, ctx, status::PUBLISH_BAD_NAME)
        else {
            return;
        };
        let key = stream_key.clone();
        self.authorize(
            Action::Publish,
            stream_id,
            resource,
            query,
            stream_key,
            ctx,
            move |act, resource, done, ctx| {
                act.register_publish(stream_id, resource, key, done, ctx)
            },
        );
    }

    fn register_publish(
        &mut self,
        stream_id: u32,
        resource: Resource,
        stream_key: Option<String>,
        done: Option<Box<DoneHook>>,
        ctx: &mut Context<Self>,
    ) {
        let request = registry::Publish {
            app: resource.app.clone(),
            name: resource.name.clone(),
            stream_key,
            connection: self.id,
            arbiter: Arbiter::current(),
        };
        ctx.wait(
            self.server
                .registry
                .send(request)
                .into_actor(self)
                .map(move |res, act, ctx| {
                    let grant: Result<PublishGrant, Refusal> = res.unwrap_or(Err(Refusal::Internal));
                    match grant {
                        Ok(grant) => act.start_publishing(stream_id, resource, grant, done, ctx),
                        Err(refusal) => {
                            act.stream_status(stream_id, "error", status::PUBLISH_BAD_NAME, format!("{}: {refusal}", resource.name));
                            tracing::warn!(connection = act.id, peer = %act.peer, stream = %Esc(&resource.key()), reason = %refusal, "publish refused");
                            act.close(ctx, format!("publish refused: {refusal}"));
                        }
                    }
                }),
        );
    }

    fn start_publishing(
        &mut self,
        stream_id: u32,
        resource: Resource,
        grant: PublishGrant,
        done: Option<Box<DoneHook>>,
        ctx: &mut Context<Self>,
    ) {
        let key = resource.key();
        let Some(stats) = self.server.stats.streams.get(&key).map(|s| s.clone()) else {
            return self.close(ctx, "stream vanished");
        };
        let Resource { app, name } = resource;
        let stream = PublishingStream::new(
            self.id,
            stream_id,
            app,
            name.clone(),
            grant.session,
            grant.publisher,
            self.server.registry.clone(),
            ctx.address(),
            self.settings.clone(),
            stats,
            self.server.stats.clone(),
            grant.last_media_ms,
        )
        .start();
        self.streams.insert(
            stream_id,
            StreamSlot::Publishing {
                addr: stream,
                name: name.clone(),
                done,
            },
        );
        self.stats.set_state(ConnectionState::Publishing);
        tracing::info!(connection = self.id, stream = %Esc(&key), "publish");
        self.stream_status(
            stream_id,
            "status",
            status::PUBLISH_START,
            format!("{name} is now published."),
        );
    }

    fn on_play(&mut self, stream_id: u32, raw_name: String, reset: bool, ctx: &mut Context<Self>) {
        let Some((resource, query, key)) =
            self.stream_name(stream_id, &raw_name, ctx, status::PLAY_FAILED)
        else {
            return;
        };
        self.authorize(
            Action::Play,
            stream_id,
            resource,
            query,
            key,
            ctx,
            move |act, resource, done, ctx| {
                act.register_play(stream_id, resource, reset, done, ctx)
            },
        );
    }

    fn register_play(
        &mut self,
        stream_id: u32,
        resource: Resource,
        reset: bool,
        done: Option<Box<DoneHook>>,
        ctx: &mut Context<Self>,
    ) {
        let relay = self.stats.app.lock().is_ok_and(|info| {
            info.as_ref()
                .is_some_and(|(_, flash_ver)| crate::relay::is_relay(flash_ver))
        });
        let request = registry::Play {
            app: resource.app.clone(),
            name: resource.name.clone(),
            arbiter: Arbiter::current(),
            relay,
        };
        ctx.wait(
            self.server
                .registry
                .send(request)
                .into_actor(self)
                .map(move |res, act, ctx| match res.unwrap_or(Err(Refusal::Internal)) {
                    Ok(publisher) => {
                        let stats = Arc::new(SubscriberStats::new(
                            act.stats.clone(),
                            stream_id,
                            act.settings.live.subscriber_mailbox,
                        ));
                        let subscriber = Subscriber::new(
                            act.id,
                            stream_id,
                            resource.app.clone(),
                            resource.name.clone(),
                            act.outbox.clone(),
                            publisher,
                            act.server.registry.clone(),
                            ctx.address(),
                            act.settings.clone(),
                            act.server.stats.clone(),
                            stats,
                            reset,
                            act.session.as_ref().map(|s| s.caps.clone()).unwrap_or_default(),
                        )
                        .start();
                        act.streams.insert(stream_id, StreamSlot::Playing { addr: subscriber.clone(), done });
                        act.stats.set_state(ConnectionState::Playing);
                        tracing::info!(connection = act.id, stream = %Esc(&resource.key()), "play");
                        act.schedule_play_wait(stream_id, resource, subscriber, ctx);
                    }
                    Err(refusal) => {
                        act.stream_status(stream_id, "error", status::PLAY_FAILED, format!("{}: {refusal}", resource.name));
                        tracing::warn!(connection = act.id, stream = %Esc(&resource.key()), reason = %refusal, "play refused");
                        act.close(ctx, format!("play refused: {refusal}"));
                    }
                }),
        );
    }
    /// `live.play_wait_ms`: unless the stream is published by then, tell the player
    /// NetStream.Play.StreamNotFound and end its play. The message stream stays created, so
    /// the client may play again on it; the connection stays until `rtmp.idle_timeout_ms`.
    /// A stream published within the wait (or already) is played as usual.
    fn schedule_play_wait(
        &mut self,
        stream_id: u32,
        resource: Resource,
        subscriber: Addr<Subscriber>,
        ctx: &mut Context<Self>,
    ) {
        let wait = self.settings.live.play_wait_ms;
        if wait == 0 {
            return;
        }
        ctx.run_later(Duration::from_millis(wait), move |act, _| {
            let same = matches!(act.streams.get(&stream_id), Some(StreamSlot::Playing { addr, .. }) if *addr == subscriber);
            let key = resource.key();
            let live = act.server.stats.streams.get(&key).is_some_and(|s| s.is_live());
            if !same || live {
                return;
            }
            act.stop_stream(stream_id, true);
            act.stream_status(
                stream_id,
                "error",
                status::PLAY_STREAM_NOT_FOUND,
                format!("{}: no one published it within {wait} ms (live.play_wait_ms).", resource.name),
            );
            act.outbox.send(
                csid::CONTROL,
                0,
                0,
                &Message::UserControl(UserControlEvent::StreamEof { stream_id }),
            );
            act.last_activity = Instant::now();
            tracing::info!(connection = act.id, stream = %Esc(&key), wait_ms = wait, "play ended: stream not found");
        });
    }

    /// End what a message stream does; `keep` leaves the id usable (closeStream).
    fn stop_stream(&mut self, stream_id: u32, keep: bool) {
        let slot = if keep {
            self.streams.insert(stream_id, StreamSlot::Idle)
        } else {
            self.streams.remove(&stream_id)
        };
        match slot {
            Some(StreamSlot::Publishing { addr, name, done }) => {
                addr.do_send(StopStream);
                if let Some(done) = done {
                    done.fire();
                }
                self.stream_status(
                    stream_id,
                    "status",
                    status::UNPUBLISH_SUCCESS,
                    format!("{name} is now unpublished."),
                );
            }
            Some(StreamSlot::Playing { addr, done }) => {
                addr.do_send(PlayControl::Stop);
                if let Some(done) = done {
                    done.fire();
                }
            }
            Some(StreamSlot::Idle) | None => {
                if keep && !self.streams.contains_key(&stream_id) {
                    self.streams.remove(&stream_id);
                }
            }
        }
        if !self
            .streams
            .values()
            .any(|s| !matches!(s, StreamSlot::Idle))
        {
            self.stats.set_state(ConnectionState::Connected);
        }
    }

    fn control_player(&self, stream_id: u32, control: PlayControl) {
        if let Some(StreamSlot::Playing { addr, .. }) = self.streams.get(&stream_id) {
            addr.do_send(control);
        }
    }

    /// The server drains: clients that announced Enhanced RTMP reconnect support are asked to
    /// reconnect (and leave on their own, or at the deadline); publishers end publishing, so
    /// their players get UnpublishNotify and StreamEOF; players get them too, then every
    /// connection closes, flushing what it queued.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        self.draining = true;
        let reconnect = self
            .session
            .as_ref()
            .is_some_and(|s| s.caps_ex & caps_ex::RECONNECT != 0);
        if reconnect {
            let url = &self.settings.server.drain_reconnect_url;
            let tc_url = (!url.is_empty())
                .then(|| url.clone())
                .or_else(|| self.session.as_ref().and_then(|s| s.tc_url.clone()));
            tracing::info!(
                connection = self.id,
                tc_url = tc_url.as_deref().unwrap_or(""),
                "drain: reconnect requested"
            );
            self.send_command(
                csid::COMMAND,
                0,
                command::reconnect_request(tc_url.as_deref(), "The server is shutting down."),
            );
            return;
        }
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            match self.streams.get(&id) {
                Some(StreamSlot::Publishing { .. }) => self.stop_stream(id, false),
                Some(StreamSlot::Playing { .. }) => {
                    self.stop_stream(id, false);
                    self.stream_status(
                        id,
                        "status",
                        status::PLAY_UNPUBLISH_NOTIFY,
                        "The server is shutting down.".into(),
                    );
                    self.outbox.send(
                        csid::CONTROL,
                        0,
                        0,
                        &Message::UserControl(UserControlEvent::StreamEof { stream_id: id }),
                    );
                }
                _ => {}
            }
        }
        self.close(ctx, "server shutting down");
    }

    /// Once a second: timeouts and pings.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        let rtmp = &self.settings.rtmp;
        let active = self
            .streams
            .values()
            .any(|s| !matches!(s, StreamSlot::Idle))
            || self.shared_objects.as_ref().is_some_and(|so| so.in_use());
        if !active && self.last_activity.elapsed() > Duration::from_millis(rtmp.idle_timeout_ms) {
            let what = if self.session.is_none() {
                "connect"
            } else {
                "publish or play"
            };
            tracing::info!(connection = self.id, peer = %self.peer, "no {what} in time: closing");
            return self.close(ctx, format!("idle timeout waiting for {what}"));
        }
        if active {
            self.last_activity = Instant::now();
        }
        if self.stats.idle_ms() > rtmp.read_timeout_ms {
            tracing::info!(connection = self.id, peer = %self.peer, "peer silent past the read timeout: closing");
            return self.close(ctx, "read timeout");
        }
        if rtmp.ping_interval_ms > 0 && self.session.is_some() {
            let due = self
                .ping_sent
                .is_none_or(|(_, at)| at.elapsed() >= Duration::from_millis(rtmp.ping_interval_ms));
            if due {
                let timestamp = self.stats.started.elapsed().as_millis() as u32;
                self.ping_sent = Some((timestamp, Instant::now()));
                self.outbox.send(
                    csid::CONTROL,
                    0,
                    0,
                    &Message::UserControl(UserControlEvent::PingRequest { timestamp }),
                );
            }
        }
    }
}

impl Actor for Connection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.server.stats.actors.connections.fetch_add(1, Relaxed);
        self.stats
            .set_kick(ctx.address().recipient(), ctx.address().recipient());
        ctx.run_interval(Duration::from_secs(1), |act, ctx| act.tick(ctx));
        let mut draining = self.server.draining.clone();
        if *draining.borrow() {
            return self.close(ctx, "server shutting down");
        }
        ctx.spawn(
            async move {
                let _ = draining.changed().await;
            }
            .into_actor(self)
            .map(|_, act, ctx| act.drain(ctx)),
        );
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        for (_, slot) in self.streams.drain() {
            match slot {
                StreamSlot::Publishing { addr, done, .. } => {
                    addr.do_send(StopStream);
                    if let Some(done) = done {
                        done.fire();
                    }
                }
                StreamSlot::Playing { addr, done } => {
                    addr.do_send(PlayControl::Stop);
                    if let Some(done) = done {
                        done.fire();
                    }
                }
                StreamSlot::Idle => {}
            }
        }
        if let Some(so) = self.shared_objects.take() {
            so.close();
        }
        self.outbox.close();
        self.stats.set_state(ConnectionState::Closing);
        self.server.stats.actors.connections.fetch_sub(1, Relaxed);
        finish(&self.server, &self.stats);
        tracing::info!(
            connection = self.id,
            peer = %self.peer,
            reason = self.close_reason.as_deref().unwrap_or(PEER_CLOSED),
            duration_s = format_args!("{:.1}", self.stats.started.elapsed().as_secs_f64()),
            bytes_in = self.stats.bytes_in.load(Relaxed),
            bytes_out = self.stats.bytes_out.load(Relaxed),
            "connection closed"
        );
    }
}

impl StreamHandler<Result<RawMessage, ConnectionError>> for Connection {
    fn handle(&mut self, item: Result<RawMessage, ConnectionError>, ctx: &mut Context<Self>) {
        let stats = self.server.stats.clone();
        let handled = super::guard(&stats, "connection", self.id, || match item {
            Ok(raw) => {
                self.stats.messages_in.fetch_add(1, Relaxed);
                self.stats.touch_read();
                // Count what the chunk layer consumed since the last message.
                let total = self.decoder_consumed.get();
                let n = total - self.consumed;
                self.consumed = total;
                self.stats.bytes_in.fetch_add(n, Relaxed);
                if let Some(sequence_number) = self.window.on_bytes(n as usize) {
                    self.outbox.send(
                        csid::CONTROL,
                        0,
                        0,
                        &Message::Acknowledgement { sequence_number },
                    );
                }
                self.on_message(raw, ctx);
                // Replies to a peer that never reads would pile up without bound; players
                // are bounded by the drop policy and max_lag_ms instead.
                let queued = self.outbox.queued_bytes();
                if queued > self.settings.rtmp.max_unread_bytes
                    && !self
                        .streams
                        .values()
                        .any(|s| matches!(s, StreamSlot::Playing { .. }))
                {
                    tracing::warn!(connection = self.id, peer = %self.peer, queued, "peer is not reading its replies: closing");
                    self.outbox.abort();
                    self.close(ctx, format!("peer is not reading: {queued} bytes queued"));
                }
            }
            Err(ConnectionError::Io(e)) => {
                tracing::debug!(connection = self.id, error = %e, "read failed");
                self.close(ctx, disconnect_reason("read", &e));
            }
            Err(e) => self.protocol_error(ctx, e),
        });
        if handled.is_none() {
            self.close(ctx, "panic in the connection handler");
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        self.close(ctx, PEER_CLOSED);
    }
}

impl Handler<CloseConnection> for Connection {
    type Result = ();

    fn handle(&mut self, msg: CloseConnection, ctx: &mut Context<Self>) {
        tracing::info!(connection = self.id, reason = %Esc(&msg.reason), "closing");
        self.close(ctx, msg.reason);
    }
}

impl Handler<RequestReconnect> for Connection {
    type Result = bool;

    fn handle(&mut self, msg: RequestReconnect, ctx: &mut Context<Self>) -> bool {
        let supported = self
            .session
            .as_ref()
            .is_some_and(|s| s.caps_ex & caps_ex::RECONNECT != 0);
        if supported {
            let tc_url = msg
                .tc_url
                .or_else(|| self.session.as_ref().and_then(|s| s.tc_url.clone()));
            tracing::info!(
                connection = self.id,
                tc_url = tc_url.as_deref().unwrap_or(""),
                "reconnect requested"
            );
            self.send_command(
                csid::COMMAND,
                0,
                command::reconnect_request(tc_url.as_deref(), &msg.description),
            );
        } else {
            self.close(ctx, msg.description);
        }
        supported
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_key_are_split_off() {
        assert_eq!(
            split_name("cam?key=abc&x=1"),
            ("cam".into(), Some("key=abc&x=1".into()), Some("abc".into()))
        );
        assert_eq!(split_name("cam"), ("cam".into(), None, None));
        // Shared object credentials: the connect app's query, else tcUrl's.
        assert_eq!(
            connect_args("live?key=k", Some("rtmp://h/live")),
            Some("key=k".into())
        );
        assert_eq!(
            connect_args("live", Some("rtmp://h/live?a=1&key=t"))
                .as_deref()
                .and_then(query_key),
            Some("t".into())
        );
        assert_eq!(connect_args("live", Some("rtmp://h/live")), None);
    }
}
