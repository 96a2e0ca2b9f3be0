//! One client connection: the read side (chunk decoder, acknowledgements, event
//! classification), the write side (chunk encoder and one reused output buffer) and the
//! request/reply logic of NetConnection and NetStream commands.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::{csid, ClientConfig, ClientError, ClientEvent, RtmpUrl, Status};
use crate::protocol::amf0::{Amf0Value, AmfLimits};
use crate::protocol::chunk::{
    ChunkDecoder, ChunkEncoder, ChunkLimits, ReceiveWindow, DEFAULT_CHUNK_SIZE,
};
use crate::protocol::command::status;
use crate::protocol::handshake::{ClientHandshake, HandshakeState, HANDSHAKE_SIZE};
use crate::protocol::message::{
    type_id, Message, RawMessage, SharedObjectMessage, UserControlEvent,
};
use crate::tls::transport::{Transport, TransportRead, TransportWrite};

/// Room made in the read buffer before each read, so that reads are not tiny.
const READ_RESERVE: usize = 8 * 1024;

/// What one decoded message means for the client.
enum Step {
    Event(ClientEvent),
    /// A protocol control message the client owes the server (Acknowledgement, ping reply).
    Reply(Message),
    Nothing,
}

/// The read side: socket, buffered bytes, chunk decoder and acknowledgement window.
#[derive(Debug)]
struct Reader {
    socket: TransportRead,
    buf: BytesMut,
    decoder: ChunkDecoder,
    window: ReceiveWindow,
    ack_due: Option<u32>,
    amf_limits: AmfLimits,
    /// [`ClientConfig::read_size`].
    read_size: usize,
    /// [`ClientConfig::ack_divisor`], at least 1.
    ack_divisor: u32,
}

impl Reader {
    /// Decode the next message, reading from the socket as needed. Cancel-safe: bytes read
    /// stay in the buffer and the decoder keeps its state.
    async fn step(&mut self) -> Result<Step, ClientError> {
        if let Some(sequence_number) = self.ack_due.take() {
            return Ok(Step::Reply(Message::Acknowledgement { sequence_number }));
        }
        loop {
            if let Some(raw) = self.decoder.decode(&mut self.buf)? {
                return self.interpret(raw);
            }
            let n = if self.read_size > 0 {
                self.buf.reserve(self.read_size);
                let mut room = bytes::BufMut::limit(&mut self.buf, self.read_size);
                self.socket.read_buf(&mut room).await?
            } else {
                self.buf.reserve(READ_RESERVE);
                self.socket.read_buf(&mut self.buf).await?
            };
            if n == 0 {
                return Err(ClientError::Closed);
            }
            // §5.4.4: acknowledge every window of bytes received.
            if let Some(sequence_number) = self.window.on_bytes(n) {
                return Ok(Step::Reply(Message::Acknowledgement { sequence_number }));
            }
        }
    }

    fn interpret(&mut self, raw: RawMessage) -> Result<Step, ClientError> {
        // Media goes out untouched, without decoding anything.
        if matches!(
            raw.type_id,
            type_id::AUDIO | type_id::VIDEO | type_id::AGGREGATE
        ) {
            return Ok(Step::Event(ClientEvent::Media(raw)));
        }
        Ok(match Message::decode(&raw, &self.amf_limits)? {
            // The decoder already applied Set Chunk Size and Abort at their byte.
            Message::WindowAckSize(size) => {
                self.window.set_window(size / self.ack_divisor);
                Step::Nothing
            }
            Message::UserControl(UserControlEvent::PingRequest { timestamp }) => {
                Step::Reply(Message::UserControl(UserControlEvent::PingResponse {
                    timestamp,
                }))
            }
            Message::UserControl(UserControlEvent::PingResponse { .. }) => Step::Nothing,
            Message::UserControl(event) => Step::Event(ClientEvent::UserControl(event)),
            Message::Data { values, .. } => Step::Event(ClientEvent::Data {
                stream_id: raw.stream_id,
                timestamp: raw.timestamp,
                values,
            }),
            Message::Command { values, .. } => Step::Event(command_event(raw.stream_id, values)),
            Message::SharedObject { amf3, message } => {
                Step::Event(ClientEvent::SharedObject { amf3, message })
            }
            _ => Step::Nothing,
        })
    }
}

/// Classify a command message: `onStatus` becomes a [`Status`].
fn command_event(stream_id: u32, mut values: Vec<Amf0Value>) -> ClientEvent {
    let name = values
        .first()
        .and_then(Amf0Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if name == "onStatus" {
        let info = values.get(3).or_else(|| values.get(2));
        let text = |key: &str| {
            info.and_then(|i| i.get(key))
                .and_then(Amf0Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        return ClientEvent::Status(Status {
            stream_id,
            level: text("level"),
            code: text("code"),
            description: text("description"),
        });
    }
    let transaction_id = values.get(1).and_then(Amf0Value::as_f64).unwrap_or(0.0);
    let rest = values.split_off(values.len().min(2));
    ClientEvent::Command {
        stream_id,
        name,
        transaction_id,
        values: rest,
    }
}

/// `code` and `description` of the info object of an `_error` (its values after the
/// transaction id: command object, info).
fn error_info(values: &[Amf0Value]) -> (String, String) {
    let info = values.get(1).or_else(|| values.first());
    let text = |key: &str| {
        info.and_then(|i| i.get(key))
            .and_then(Amf0Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (text("code"), text("description"))
}

/// The write side: socket, header-compressing chunk encoder, one reused output buffer.
#[derive(Debug)]
struct Writer {
    socket: TransportWrite,
    local_addr: std::io::Result<SocketAddr>,
    encoder: ChunkEncoder,
    out: BytesMut,
    /// Commands go as AMF3 command messages (type 17) after an AMF3 `connect`.
    amf3: bool,
}

impl Writer {
    fn media_csid(type_id: u8) -> u32 {
        match type_id {
            type_id::AUDIO => csid::AUDIO,
            type_id::VIDEO | type_id::AGGREGATE => csid::VIDEO,
            _ => csid::DATA,
        }
    }

    fn feed(&mut self, message: &RawMessage) {
        let csid = Self::media_csid(message.type_id);
        self.encoder.encode(csid, message, &mut self.out);
    }

    fn feed_message(
        &mut self,
        csid: u32,
        stream_id: u32,
        message: &Message,
    ) -> Result<(), ClientError> {
        let raw = message.to_raw(stream_id, 0)?;
        self.encoder.encode(csid, &raw, &mut self.out);
        Ok(())
    }

    fn feed_command(&mut self, stream_id: u32, values: Vec<Amf0Value>) -> Result<(), ClientError> {
        let csid = if stream_id == 0 {
            csid::COMMAND
        } else {
            csid::STREAM_COMMAND
        };
        let message = Message::Command {
            amf3: self.amf3,
            values,
        };
        self.feed_message(csid, stream_id, &message)
    }

    /// Shared object messages go on message stream 0, on the NetConnection command chunk
    /// stream (as Flash Player does).
    fn feed_shared_object(
        &mut self,
        amf3: bool,
        message: &SharedObjectMessage,
    ) -> Result<(), ClientError> {
        let message = Message::SharedObject {
            amf3,
            message: message.clone(),
        };
        self.feed_message(csid::COMMAND, 0, &message)
    }

    /// Write out everything fed. Not cancel-safe: a write cut short leaves the peer with a
    /// partial chunk.
    async fn flush(&mut self) -> Result<(), ClientError> {
        if !self.out.is_empty() {
            self.socket.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    async fn reply(&mut self, message: Message) -> Result<(), ClientError> {
        self.feed_message(csid::CONTROL, 0, &message)?;
        self.flush().await
    }
}

/// What a connection keeps from its [`ClientConfig`].
#[derive(Debug, Clone, Copy)]
struct Limits {
    timeout: Duration,
    max_queued_events: usize,
    buffer_ms: u32,
}

/// One RTMP client connection.
///
/// Waiting operations ([`RtmpClient::connect`], [`RtmpClient::create_stream`],
/// [`RtmpClient::publish`], [`RtmpClient::play`], [`RtmpClient::call`]) give up after the
/// configured timeout. Events that arrive while they wait are kept, in order, and
/// [`RtmpClient::next_event`] returns them first: after `play`, the caller still sees
/// StreamBegin, Play.Reset, Play.Start and whatever followed. Replies to calls nobody waits
/// for (`releaseStream`, `FCPublish`) are dropped.
#[derive(Debug)]
pub struct RtmpClient {
    reader: Reader,
    writer: Writer,
    queue: VecDeque<ClientEvent>,
    /// Transaction ids whose `_result`/`_error` is dropped.
    ignored: Vec<f64>,
    next_transaction_id: f64,
    limits: Limits,
}

async fn handshake(
    socket: &mut (impl AsyncRead + AsyncWrite + Unpin),
    digest: bool,
) -> Result<BytesMut, ClientError> {
    let mut hs = ClientHandshake::new(digest);
    let mut out = BytesMut::with_capacity(1 + 2 * HANDSHAKE_SIZE);
    hs.start(&mut out);
    socket.write_all(&out).await?;
    out.clear();
    let mut input = BytesMut::with_capacity(1 + 2 * HANDSHAKE_SIZE + READ_RESERVE);
    loop {
        let state = hs.process(&mut input, &mut out)?;
        if !out.is_empty() {
            socket.write_all(&out).await?;
            out.clear();
        }
        if state == HandshakeState::Done {
            // What follows S2 in the buffer is already chunk stream.
            return Ok(input);
        }
        if socket.read_buf(&mut input).await? == 0 {
            return Err(ClientError::Closed);
        }
    }
}

/// How long one name lookup may take before a fresh one is started beside it.
const RESOLVE_ATTEMPT: Duration = Duration::from_secs(1);

/// Resolve `host`, asking again every [`RESOLVE_ATTEMPT`] until the caller's deadline.
/// getaddrinfo sends its A and AAAA queries together and, when one answer is lost, waits
/// resolv.conf's timeout (5 s by default) before asking again: longer than a connection's
/// whole budget. A new lookup goes out from a new socket. (It cannot help when the DNS
/// server is silent for longer, as podman 4.3's was for 15 s between containers.)
async fn resolve(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let mut attempt = 1u32;
    loop {
        match tokio::time::timeout(RESOLVE_ATTEMPT, tokio::net::lookup_host((host, port))).await {
            Ok(found) => return found.map(Iterator::collect),
            Err(_) => {
                tracing::debug!(host, attempt, "name resolution is slow; asking again");
                attempt += 1;
            }
        }
    }
}

/// The TLS handshake of an `rtmps://` URL: the certificate verified against the configured
/// roots (the public ones by default) for the URL's host, which is also sent as SNI.
async fn tls_connect(
    socket: TcpStream,
    url: &RtmpUrl,
    config: &ClientConfig,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ClientError> {
    use tokio_rustls::rustls::pki_types::ServerName;
    let tls = match &config.tls {
        Some(tls) => tls.clone(),
        None => crate::tls::client_config(None)
            .map_err(|e| ClientError::Tls(std::io::Error::other(e.to_string())))?,
    };
    let name = ServerName::try_from(url.host.clone()).map_err(|_| ClientError::BadUrl {
        url: url.to_string(),
        reason: "the host is not a valid TLS server name",
    })?;
    tokio_rustls::TlsConnector::from(tls)
        .connect(name, socket)
        .await
        .map_err(ClientError::Tls)
}

impl RtmpClient {
    /// TCP connection and handshake only: no `connect` yet (for tests of what a server does
    /// with commands before `connect`). [`RtmpClient::connect_app`] continues from here.
    pub async fn open(url: &RtmpUrl, config: &ClientConfig) -> Result<RtmpClient, ClientError> {
        let timeout = config.timeout;
        // The step under way when the time runs out names the timeout: a name that does not
        // resolve, a host that does not answer and a server that does not speak RTMP call
        // for different fixes.
        let step = std::cell::Cell::new("name resolution");
        let setup = async {
            let addrs = resolve(&url.host, url.port).await?;
            step.set("TCP connection");
            let socket = TcpStream::connect(&addrs[..]).await?;
            socket.set_nodelay(true)?;
            let local_addr = socket.local_addr();
            let mut socket = if url.tls {
                step.set("TLS handshake");
                Transport::Tls(Box::new(tls_connect(socket, url, config).await?.into()))
            } else {
                Transport::Plain(socket)
            };
            step.set("RTMP handshake");
            let leftover = handshake(&mut socket, config.digest_handshake).await?;
            Ok::<_, ClientError>(((socket, local_addr), leftover))
        };
        let ((socket, local_addr), leftover) = tokio::time::timeout(timeout, setup)
            .await
            .map_err(|_| ClientError::Timeout {
                what: step.get(),
                after: timeout,
            })??;
        let (read, write) = socket.into_split();
        let limits = ChunkLimits {
            max_message_len: config.max_message_len,
            ..ChunkLimits::default()
        };
        Ok(RtmpClient {
            reader: Reader {
                socket: read,
                buf: leftover,
                decoder: ChunkDecoder::new(limits),
                window: ReceiveWindow::new(0),
                ack_due: None,
                amf_limits: AmfLimits::default(),
                read_size: config.read_size,
                ack_divisor: config.ack_divisor.max(1),
            },
            writer: Writer {
                socket: write,
                local_addr,
                encoder: ChunkEncoder::new(),
                out: BytesMut::new(),
                amf3: false,
            },
            queue: VecDeque::new(),
            ignored: Vec::new(),
            next_transaction_id: 1.0,
            limits: Limits {
                timeout,
                max_queued_events: config.max_queued_events,
                buffer_ms: config.buffer_ms,
            },
        })
    }

    /// TCP, handshake, then `connect` to `url.app`; returns once `_result` arrived. An
    /// `_error` is [`ClientError::Rejected`].
    pub async fn connect(url: &RtmpUrl, config: &ClientConfig) -> Result<RtmpClient, ClientError> {
        let mut client = Self::open(url, config).await?;
        client.connect_app(url, config).await?;
        Ok(client)
    }

    /// Send `connect` (§7.2.1.1) for `url.app` and wait for its reply; then announce the
    /// configured Window Acknowledgement Size and chunk size.
    pub async fn connect_app(
        &mut self,
        url: &RtmpUrl,
        config: &ClientConfig,
    ) -> Result<(), ClientError> {
        let mut object = vec![
            ("app".to_owned(), Amf0Value::String(url.app.clone())),
            ("type".to_owned(), Amf0Value::String("nonprivate".into())),
            (
                "flashVer".to_owned(),
                Amf0Value::String(config.flash_ver.clone()),
            ),
            ("tcUrl".to_owned(), Amf0Value::String(url.tc_url())),
            ("fpad".to_owned(), Amf0Value::Boolean(false)),
            ("capabilities".to_owned(), Amf0Value::Number(15.0)),
            ("audioCodecs".to_owned(), Amf0Value::Number(4071.0)),
            ("videoCodecs".to_owned(), Amf0Value::Number(252.0)),
            ("videoFunction".to_owned(), Amf0Value::Number(1.0)),
            (
                "objectEncoding".to_owned(),
                Amf0Value::Number(config.object_encoding),
            ),
        ];
        object.extend(config.extra_connect_properties.iter().cloned());
        let tid = self.take_transaction_id();
        // `connect` itself always goes as AMF0 (type 20): the encoding is what it negotiates.
        self.writer.feed_command(
            0,
            vec![
                Amf0Value::String("connect".into()),
                Amf0Value::Number(tid),
                Amf0Value::Object(object),
            ],
        )?;
        self.writer.flush().await?;
        match self.wait_reply(tid, "connect").await? {
            Ok(_) => {}
            Err(values) => {
                let (code, description) = error_info(&values);
                return Err(ClientError::Rejected { code, description });
            }
        }
        self.writer.amf3 = config.object_encoding == 3.0;
        if config.window_ack_size > 0 {
            self.writer.feed_message(
                csid::CONTROL,
                0,
                &Message::WindowAckSize(config.window_ack_size),
            )?;
        }
        if config.chunk_size != DEFAULT_CHUNK_SIZE {
            self.writer
                .encoder
                .set_chunk_size(config.chunk_size, &mut self.writer.out);
        }
        self.writer.flush().await
    }

    fn take_transaction_id(&mut self) -> f64 {
        let tid = self.next_transaction_id;
        self.next_transaction_id += 1.0;
        tid
    }

    fn enqueue(&mut self, event: ClientEvent, what: &'static str) -> Result<(), ClientError> {
        if self.queue.len() >= self.limits.max_queued_events {
            return Err(ClientError::TooManyEvents {
                what,
                limit: self.limits.max_queued_events,
            });
        }
        self.queue.push_back(event);
        Ok(())
    }

    /// The next event from the socket (not the queue), answering protocol control on the way.
    async fn read_event(&mut self) -> Result<ClientEvent, ClientError> {
        loop {
            match self.reader.step().await? {
                Step::Event(event) => {
                    if !swallow(&mut self.ignored, &event) {
                        return Ok(event);
                    }
                }
                Step::Reply(message) => self.writer.reply(message).await?,
                Step::Nothing => {}
            }
        }
    }

    /// Read until the `_result` (Ok) or `_error` (Err) with transaction id `tid`, queueing
    /// everything else; returns the reply's values after the transaction id.
    async fn wait_reply(
        &mut self,
        tid: f64,
        what: &'static str,
    ) -> Result<Result<Vec<Amf0Value>, Vec<Amf0Value>>, ClientError> {
        let timeout = self.limits.timeout;
        let wait = async {
            loop {
                match self.read_event().await? {
                    ClientEvent::Command {
                        name,
                        transaction_id,
                        values,
                        ..
                    } if transaction_id == tid && (name == "_result" || name == "_error") => {
                        return Ok(if name == "_result" {
                            Ok(values)
                        } else {
                            Err(values)
                        });
                    }
                    other => self.enqueue(other, what)?,
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| ClientError::Timeout {
                what,
                after: timeout,
            })?
    }

    /// Read until an `onStatus` on `stream_id` with code `wanted` (Ok) or level `error`
    /// (Err), queueing everything, the wanted status included.
    async fn wait_status(
        &mut self,
        stream_id: u32,
        tid: f64,
        wanted: &str,
        what: &'static str,
    ) -> Result<(), ClientError> {
        let timeout = self.limits.timeout;
        let wait = async {
            loop {
                let event = self.read_event().await?;
                match &event {
                    ClientEvent::Status(s) if s.stream_id == stream_id && s.code == wanted => {
                        self.enqueue(event, what)?;
                        return Ok(());
                    }
                    ClientEvent::Status(s) if s.stream_id == stream_id && s.is_error() => {
                        return Err(ClientError::Status {
                            code: s.code.clone(),
                            description: s.description.clone(),
                        });
                    }
                    ClientEvent::Command {
                        name,
                        transaction_id,
                        values,
                        ..
                    } if *transaction_id == tid && name == "_error" => {
                        let (code, description) = error_info(values);
                        return Err(ClientError::CallFailed {
                            command: what.to_owned(),
                            code,
                            description,
                        });
                    }
                    _ => self.enqueue(event, what)?,
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| ClientError::Timeout {
                what,
                after: timeout,
            })?
    }

    /// Call `name` on message stream `stream_id` with a null command object and `args`; wait
    /// for the reply. Returns the `_result` values after the transaction id; `_error` is
    /// [`ClientError::CallFailed`].
    pub async fn call(
        &mut self,
        stream_id: u32,
        name: &str,
        args: Vec<Amf0Value>,
    ) -> Result<Vec<Amf0Value>, ClientError> {
        let tid = self.take_transaction_id();
        let mut values = vec![
            Amf0Value::String(name.to_owned()),
            Amf0Value::Number(tid),
            Amf0Value::Null,
        ];
        values.extend(args);
        self.writer.feed_command(stream_id, values)?;
        self.writer.flush().await?;
        self.wait_reply(tid, "call reply").await?.map_err(|values| {
            let (code, description) = error_info(&values);
            ClientError::CallFailed {
                command: name.to_owned(),
                code,
                description,
            }
        })
    }

    /// `createStream` (§7.2.1.3): the new message stream id.
    pub async fn create_stream(&mut self) -> Result<u32, ClientError> {
        let values = self.call(0, "createStream", Vec::new()).await?;
        let id = values.iter().skip(1).find_map(Amf0Value::as_f64).ok_or(
            ClientError::UnexpectedReply {
                command: "createStream".into(),
                reason: "no stream id number",
            },
        )?;
        if !(id.is_finite() && id >= 0.0 && id <= f64::from(u32::MAX) && id.fract() == 0.0) {
            return Err(ClientError::UnexpectedReply {
                command: "createStream".into(),
                reason: "stream id is not a u32",
            });
        }
        Ok(id as u32)
    }

    /// Publish live as `name` (which may carry `?query`) on `stream_id`, the way ffmpeg
    /// does: `releaseStream`, `FCPublish`, then `publish` (§7.2.2.6); waits for
    /// NetStream.Publish.Start. An error status (e.g. NetStream.Publish.BadName) is
    /// [`ClientError::Status`].
    pub async fn publish(&mut self, stream_id: u32, name: &str) -> Result<(), ClientError> {
        for command in ["releaseStream", "FCPublish"] {
            let tid = self.take_transaction_id();
            self.ignored.push(tid);
            self.writer.feed_command(
                0,
                vec![
                    Amf0Value::String(command.into()),
                    Amf0Value::Number(tid),
                    Amf0Value::Null,
                    Amf0Value::String(name.to_owned()),
                ],
            )?;
        }
        let tid = self.take_transaction_id();
        self.writer.feed_command(
            stream_id,
            vec![
                Amf0Value::String("publish".into()),
                Amf0Value::Number(tid),
                Amf0Value::Null,
                Amf0Value::String(name.to_owned()),
                Amf0Value::String("live".into()),
            ],
        )?;
        self.writer.flush().await?;
        self.wait_status(stream_id, tid, status::PUBLISH_START, "publish")
            .await
    }

    /// Play `name` live on `stream_id` (§7.2.2.1, start -2, with a SetBufferLength after it as
    /// ffmpeg does); waits for NetStream.Play.Start. An error status (Play.Failed,
    /// Play.StreamNotFound) is [`ClientError::Status`].
    pub async fn play(&mut self, stream_id: u32, name: &str) -> Result<(), ClientError> {
        let tid = self.take_transaction_id();
        self.writer.feed_command(
            stream_id,
            vec![
                Amf0Value::String("play".into()),
                Amf0Value::Number(tid),
                Amf0Value::Null,
                Amf0Value::String(name.to_owned()),
                Amf0Value::Number(-2.0),
            ],
        )?;
        self.writer.feed_message(
            csid::CONTROL,
            0,
            &Message::UserControl(UserControlEvent::SetBufferLength {
                stream_id,
                buffer_ms: self.limits.buffer_ms,
            }),
        )?;
        self.writer.flush().await?;
        self.wait_status(stream_id, tid, status::PLAY_START, "play")
            .await
    }

    /// `deleteStream` (§7.2.2.3) for `stream_id`, sent on stream 0 as ffmpeg does. No reply.
    pub async fn delete_stream(&mut self, stream_id: u32) -> Result<(), ClientError> {
        self.send_command(
            0,
            vec![
                Amf0Value::String("deleteStream".into()),
                Amf0Value::Number(0.0),
                Amf0Value::Null,
                Amf0Value::Number(f64::from(stream_id)),
            ],
        )
        .await
    }

    /// `receiveVideo` (§7.2.2.5) on a playing stream. No reply.
    pub async fn receive_video(&mut self, stream_id: u32, flag: bool) -> Result<(), ClientError> {
        self.send_flag(stream_id, "receiveVideo", flag).await
    }

    /// `receiveAudio` (§7.2.2.4) on a playing stream. No reply.
    pub async fn receive_audio(&mut self, stream_id: u32, flag: bool) -> Result<(), ClientError> {
        self.send_flag(stream_id, "receiveAudio", flag).await
    }

    async fn send_flag(
        &mut self,
        stream_id: u32,
        name: &str,
        flag: bool,
    ) -> Result<(), ClientError> {
        self.send_command(
            stream_id,
            vec![
                Amf0Value::String(name.to_owned()),
                Amf0Value::Number(0.0),
                Amf0Value::Null,
                Amf0Value::Boolean(flag),
            ],
        )
        .await
    }

    /// The local address of the connection (how a server's log names this client).
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        match &self.writer.local_addr {
            Ok(addr) => Ok(*addr),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        }
    }

    /// Send a media or data message as given (stream id, timestamp, payload) and flush.
    /// Audio goes on chunk stream [`csid::AUDIO`], video and aggregates on [`csid::VIDEO`],
    /// anything else on [`csid::DATA`].
    pub async fn send(&mut self, message: &RawMessage) -> Result<(), ClientError> {
        self.writer.feed(message);
        self.writer.flush().await
    }

    /// Chunk a message into the output buffer without writing it; [`RtmpClient::flush`]
    /// writes everything fed, in one write.
    pub fn feed(&mut self, message: &RawMessage) {
        self.writer.feed(message);
    }

    /// Write out everything fed.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        self.writer.flush().await
    }

    /// Send a command message made of `values` (name, transaction id, command object,
    /// arguments) on `stream_id`, without waiting for anything.
    pub async fn send_command(
        &mut self,
        stream_id: u32,
        values: Vec<Amf0Value>,
    ) -> Result<(), ClientError> {
        self.writer.feed_command(stream_id, values)?;
        self.writer.flush().await
    }

    /// Send a shared object message (§7.1.3) as type 19, or 16 when `amf3`, without waiting
    /// for anything; the server's answers arrive as [`ClientEvent::SharedObject`].
    pub async fn send_shared_object(
        &mut self,
        amf3: bool,
        message: &SharedObjectMessage,
    ) -> Result<(), ClientError> {
        self.writer.feed_shared_object(amf3, message)?;
        self.writer.flush().await
    }

    /// The next event: first those kept while a call waited, then from the socket. Pings are
    /// answered, Acknowledgements sent per the server's window, Set Chunk Size applied, all
    /// without showing up here. Cancel-safe while reading (e.g. under
    /// `tokio::time::timeout`); a cancelled answer to a ping could be cut short.
    pub async fn next_event(&mut self) -> Result<ClientEvent, ClientError> {
        if let Some(event) = self.queue.pop_front() {
            return Ok(event);
        }
        self.read_event().await
    }

    /// Events kept while a call waited, not yet returned by [`RtmpClient::next_event`].
    pub fn queued_events(&self) -> usize {
        self.queue.len()
    }

    /// Close the sending side (TCP FIN); the server then closes the connection.
    pub async fn shutdown(&mut self) -> Result<(), ClientError> {
        self.writer.flush().await?;
        self.writer.socket.shutdown().await?;
        Ok(())
    }

    /// Split into a reader and a cloneable writer, for a player that keeps reading while
    /// other tasks write. The reader answers pings and sends Acknowledgements through the
    /// writer.
    pub fn into_split(self) -> (ClientReader, ClientWriter) {
        let writer = ClientWriter {
            inner: Arc::new(Mutex::new(self.writer)),
        };
        (
            ClientReader {
                reader: self.reader,
                writer: writer.clone(),
                queue: self.queue,
                ignored: self.ignored,
            },
            writer,
        )
    }
}

/// Drop the reply to a call nobody waits for.
fn swallow(ignored: &mut Vec<f64>, event: &ClientEvent) -> bool {
    if let ClientEvent::Command {
        name,
        transaction_id,
        ..
    } = event
    {
        if name == "_result" || name == "_error" {
            if let Some(i) = ignored.iter().position(|t| t == transaction_id) {
                ignored.swap_remove(i);
                return true;
            }
        }
    }
    false
}

/// The reading half of a split [`RtmpClient`].
#[derive(Debug)]
pub struct ClientReader {
    reader: Reader,
    writer: ClientWriter,
    queue: VecDeque<ClientEvent>,
    ignored: Vec<f64>,
}

impl ClientReader {
    /// As [`RtmpClient::next_event`]; control replies go through the shared writer.
    pub async fn next_event(&mut self) -> Result<ClientEvent, ClientError> {
        if let Some(event) = self.queue.pop_front() {
            return Ok(event);
        }
        loop {
            match self.reader.step().await? {
                Step::Event(event) => {
                    if !swallow(&mut self.ignored, &event) {
                        return Ok(event);
                    }
                }
                Step::Reply(message) => self.writer.inner.lock().await.reply(message).await?,
                Step::Nothing => {}
            }
        }
    }
}

/// The writing half of a split [`RtmpClient`]; clones share one connection.
#[derive(Debug, Clone)]
pub struct ClientWriter {
    inner: Arc<Mutex<Writer>>,
}

impl ClientWriter {
    /// As [`RtmpClient::send`].
    pub async fn send(&self, message: &RawMessage) -> Result<(), ClientError> {
        let mut writer = self.inner.lock().await;
        writer.feed(message);
        writer.flush().await
    }

    /// Send several messages in one write.
    pub async fn send_all(&self, messages: &[RawMessage]) -> Result<(), ClientError> {
        let mut writer = self.inner.lock().await;
        for message in messages {
            writer.feed(message);
        }
        writer.flush().await
    }

    /// As [`RtmpClient::send_command`].
    pub async fn send_command(
        &self,
        stream_id: u32,
        values: Vec<Amf0Value>,
    ) -> Result<(), ClientError> {
        let mut writer = self.inner.lock().await;
        writer.feed_command(stream_id, values)?;
        writer.flush().await
    }

    /// As [`RtmpClient::send_shared_object`].
    pub async fn send_shared_object(
        &self,
        amf3: bool,
        message: &SharedObjectMessage,
    ) -> Result<(), ClientError> {
        let mut writer = self.inner.lock().await;
        writer.feed_shared_object(amf3, message)?;
        writer.flush().await
    }

    /// Close the sending side (TCP FIN).
    pub async fn shutdown(&self) -> Result<(), ClientError> {
        let mut writer = self.inner.lock().await;
        writer.flush().await?;
        writer.socket.shutdown().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that accepts and never answers: the timeout names the handshake, not the
    /// TCP connection or the name lookup.
    #[tokio::test]
    async fn a_silent_server_times_out_in_the_handshake() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let held = tokio::spawn(async move { listener.accept().await.map(|(socket, _)| socket) });
        let url = RtmpUrl::parse(&format!("rtmp://localhost:{port}/live/x")).expect("url");
        let config = ClientConfig {
            timeout: Duration::from_millis(300),
            ..ClientConfig::default()
        };
        match RtmpClient::open(&url, &config).await {
            Err(ClientError::Timeout { what, .. }) => assert_eq!(what, "RTMP handshake"),
            other => panic!("expected a handshake timeout, got {other:?}"),
        }
        drop(held);
    }
}
