//! The HTTP player actor: one per HTTP-FLV or WebSocket-FLV connection that plays (the
//! connection and its one play are the same thing over HTTP). It joins its arbiter's fan-out
//! of the stream with an [`FlvPlayer`], as the subscriber actor does with an RTMP player, and
//! owns the connection: the client's input (WebSocket control frames; nothing else is read),
//! the lag limit, `live.play_wait_ms`, the drain, the admin API's kick.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_util::codec::{Decoder, FramedRead};

use super::connection::{disconnect_reason, finish, CloseConnection};
use super::fanout;
use super::publisher::Publisher;
use super::registry::Leave;
use super::ServerContext;
use crate::admission::DoneHook;
use crate::config::{LegacyPlayers, Settings};
use crate::hub::gate::PlayerCaps;
use crate::hub::{Budgets, DeliveryGate, Player};
use crate::names::{Esc, Resource};
use crate::output::flv::{End, FlvPlayer, Framing};
use crate::output::outbox::Outbox;
use crate::output::over_lag_limit;
use crate::protocol::http;
use crate::protocol::websocket::{self, FrameDecoder, Opcode, WsError, WsFrame};
use crate::requests::RequestReconnect;
use crate::stats::{ConnectionState, ConnectionStats, StreamStats, SubscriberStats};
use crate::tls::transport::TransportWrite;

/// The message stream id HTTP players are keyed by in the stream's player table.
const STREAM_ID: u32 = 0;
/// Largest WebSocket frame a player may send (it only needs control frames).
const MAX_CLIENT_FRAME: usize = 64 * 1024;

/// An admitted request, ready to play.
pub struct PlayRequest {
    pub resource: Resource,
    pub done: Option<DoneHook>,
    pub publisher: Addr<Publisher>,
    pub framing: Framing,
    /// The 101 of a WebSocket upgrade (sent at once) or the 200's head (sent when live).
    pub answer_head: Bytes,
    /// Bytes the client sent after its request head.
    pub leftover: Bytes,
    /// It reads enhanced FLV.
    pub enhanced: bool,
    pub user_agent: String,
}

/// What the client sends once playing: WebSocket frames, or (plain HTTP) nothing we read.
enum InputCodec {
    Http,
    WebSocket(FrameDecoder),
}

/// Why the client's input ended the play.
#[derive(Debug, thiserror::Error)]
enum InputError {
    #[error("WebSocket: {0}")]
    WebSocket(#[from] WsError),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

struct Input {
    codec: InputCodec,
    stats: Arc<ConnectionStats>,
}

impl Decoder for Input {
    type Item = WsFrame;
    type Error = InputError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<WsFrame>, InputError> {
        let before = src.len();
        let result = match &mut self.codec {
            // An HTTP player has nothing more to say; what it sends is read and dropped, so a
            // chatty client costs no memory.
            InputCodec::Http => {
                src.clear();
                Ok(None)
            }
            InputCodec::WebSocket(decoder) => decoder.decode(src).map_err(InputError::from),
        };
        let used = before - src.len();
        if used > 0 {
            self.stats.bytes_in.fetch_add(used as u64, Relaxed);
            self.stats.touch_read();
        }
        result
    }
}

/// One HTTP-FLV or WebSocket-FLV play.
pub struct HttpPlayer {
    id: u64,
    peer: SocketAddr,
    server: Arc<ServerContext>,
    settings: Arc<Settings>,
    stats: Arc<ConnectionStats>,
    player_stats: Arc<SubscriberStats>,
    stream_stats: Option<Arc<StreamStats>>,
    player: Rc<RefCell<FlvPlayer>>,
    publisher: Addr<Publisher>,
    resource: Resource,
    done: Option<DoneHook>,
    framing: Framing,
    started: Instant,
    close_reason: Option<String>,
}

impl HttpPlayer {
    /// Start the actor for an admitted request on the current arbiter.
    pub fn start_on_current(
        socket: TcpStream,
        server: Arc<ServerContext>,
        settings: Arc<Settings>,
        stats: Arc<ConnectionStats>,
        play: PlayRequest,
    ) {
        let PlayRequest {
            resource,
            done,
            publisher,
            framing,
            answer_head,
            leftover,
            enhanced,
            user_agent,
        } = play;
        let id = stats.id;
        stats.set_protocol(super::http_request::protocol_of(framing));
        stats.set_state(ConnectionState::Playing);
        if let Ok(mut info) = stats.app.lock() {
            *info = Some((resource.app.clone(), user_agent));
        }
        let outbox = Outbox::new(stats.clone());
        let head = match framing {
            Framing::WebSocket => {
                outbox.push_chunked(answer_head);
                None
            }
            _ => Some(answer_head),
        };
        let caps = PlayerCaps {
            enhanced,
            video_fourccs: Vec::new(),
            forward_all: settings.live.legacy_players == LegacyPlayers::Forward,
        };
        let player_stats = Arc::new(SubscriberStats::new(
            stats.clone(),
            STREAM_ID,
            settings.live.subscriber_mailbox,
        ));
        let player = FlvPlayer::new(
            id,
            resource.key(),
            outbox.clone(),
            player_stats.clone(),
            DeliveryGate::new(Budgets::from(&settings.live), caps),
            framing,
            head,
        );
        let codec = match framing {
            Framing::WebSocket => InputCodec::WebSocket(FrameDecoder::new(MAX_CLIENT_FRAME)),
            _ => InputCodec::Http,
        };
        let (read, write) = socket.into_split();
        tracing::info!(connection = id, peer = %stats.peer, protocol = stats.protocol().as_str(), stream = %Esc(&resource.key()), "play");
        HttpPlayer::create(move |ctx| {
            let reader = std::io::Cursor::new(leftover).chain(read);
            let input = Input {
                codec,
                stats: stats.clone(),
            };
            ctx.add_stream(FramedRead::with_capacity(reader, input, 1024));
            let addr = ctx.address();
            let writer = outbox.clone();
            actix::spawn(async move {
                if let Err(e) = writer.run_writer(TransportWrite::Plain(write)).await {
                    addr.do_send(CloseConnection {
                        reason: disconnect_reason("write", &e),
                    });
                }
            });
            HttpPlayer {
                id,
                peer: stats.peer,
                server,
                settings,
                stats,
                player_stats,
                stream_stats: None,
                player: Rc::new(RefCell::new(player)),
                publisher,
                resource,
                done,
                framing,
                started: Instant::now(),
                close_reason: None,
            }
        });
    }

    fn outbox(&self) -> Rc<Outbox> {
        self.player.borrow().outbox().clone()
    }

    /// End the play: the end of the body (the last chunk, a WebSocket Close with `ws_code`)
    /// goes out after what is queued, then the connection closes.
    fn close(&mut self, ctx: &mut Context<Self>, reason: impl Into<String>, ws_code: u16) {
        let reason = reason.into();
        if self.close_reason.is_none() {
            let started = self.player.borrow().opened() || self.framing == Framing::WebSocket;
            if let Some(tail) = self.framing.end(ws_code, &reason).filter(|_| started) {
                self.outbox().push_chunked(tail);
            }
        }
        self.stop_with(ctx, reason);
    }

    /// Close with `reason`, sending nothing more (what ends the body went out already).
    fn stop_with(&mut self, ctx: &mut Context<Self>, reason: String) {
        if self.close_reason.is_none() {
            self.stats.set_close_reason(&reason);
            self.close_reason = Some(reason);
        }
        ctx.stop();
    }

    /// Every 250 ms: a play the server ended, the lag limit, the wait for a publisher.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        let (end, opened) = {
            let player = self.player.borrow();
            (player.end.clone(), player.opened())
        };
        match end {
            // The player told the client why (a 415, a Close 1003, the last chunk).
            Some(End::Refused(reason)) => return self.stop_with(ctx, reason),
            Some(End::Gone) => return self.close(ctx, "stream ended", 1001),
            None => {}
        }
        let over = over_lag_limit(
            &self.outbox(),
            &self.player_stats,
            self.settings.live.max_lag_ms,
            self.id,
            || self.resource.key(),
        );
        if over {
            return self.close(ctx, "player lag limit", 1008);
        }
        let wait = self.settings.live.play_wait_ms;
        if !opened && wait > 0 && self.started.elapsed() >= Duration::from_millis(wait) {
            let reason = format!(
                "{}: no one published it within {wait} ms (live.play_wait_ms)",
                self.resource.name
            );
            tracing::info!(connection = self.id, stream = %Esc(&self.resource.key()), wait_ms = wait, "play ended: stream not found");
            if self.framing != Framing::WebSocket {
                // Nothing was answered yet: the wait ends in a 404.
                self.outbox()
                    .push_chunked(http::plain_response(404, &reason, &[]));
            }
            self.close(ctx, reason, 1000);
        }
    }
}

impl Actor for HttpPlayer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.server.stats.actors.http_players.fetch_add(1, Relaxed);
        self.stats
            .set_kick(ctx.address().recipient(), ctx.address().recipient());
        let key = (self.id, STREAM_ID);
        let resource = self.resource.key();
        self.stream_stats = self
            .server
            .stats
            .streams
            .get(&resource)
            .map(|e| e.value().clone());
        if let Some(s) = &self.stream_stats {
            s.subscribers.insert(key, self.player_stats.clone());
        }
        let player: Rc<RefCell<dyn Player>> = self.player.clone();
        let queue = fanout::join(
            &resource,
            &self.publisher,
            &self.settings,
            &self.server.stats,
            key,
            player,
        );
        let _ = self.player_stats.mailbox.set(queue);
        ctx.run_interval(Duration::from_millis(250), |act, ctx| act.tick(ctx));
        let mut draining = self.server.draining.clone();
        if *draining.borrow() {
            return self.close(ctx, "server shutting down", 1001);
        }
        ctx.spawn(
            async move {
                let _ = draining.changed().await;
            }
            .into_actor(self)
            .map(|_, act, ctx| act.close(ctx, "server shutting down", 1001)),
        );
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.server.stats.actors.http_players.fetch_sub(1, Relaxed);
        let key = (self.id, STREAM_ID);
        fanout::leave(&self.resource.key(), &self.publisher, key);
        if let Some(s) = &self.stream_stats {
            s.subscriber_gone(&key, &self.server.stats);
        }
        self.server.registry.do_send(Leave {
            app: self.resource.app.clone(),
            name: self.resource.name.clone(),
        });
        if let Some(done) = self.done.take() {
            done.fire();
        }
        self.outbox().close();
        self.stats.set_state(ConnectionState::Closing);
        finish(&self.server, &self.stats);
        tracing::info!(
            connection = self.id,
            peer = %self.peer,
            protocol = self.stats.protocol().as_str(),
            reason = self.close_reason.as_deref().unwrap_or("peer closed"),
            duration_s = format_args!("{:.1}", self.stats.started.elapsed().as_secs_f64()),
            bytes_out = self.stats.bytes_out.load(Relaxed),
            "disconnect"
        );
    }
}

impl StreamHandler<Result<WsFrame, InputError>> for HttpPlayer {
    fn handle(&mut self, item: Result<WsFrame, InputError>, ctx: &mut Context<Self>) {
        let frame = match item {
            Ok(frame) => frame,
            Err(InputError::Io(e)) => {
                return self.close(ctx, disconnect_reason("read", &e), 1000);
            }
            Err(InputError::WebSocket(e)) => {
                tracing::warn!(connection = self.id, peer = %self.peer, error = %Esc(&e.to_string()), "protocol error: closing");
                self.server.stats.protocol_errors.fetch_add(1, Relaxed);
                return self.close(ctx, format!("protocol error: {e}"), e.close_code());
            }
        };
        match frame.opcode {
            Opcode::Ping => self
                .outbox()
                .push_chunked(websocket::frame(Opcode::Pong, &frame.payload)),
            Opcode::Close => {
                // Echo the client's code (§5.5.1; the decoder refused codes a peer may not
                // send), then close.
                let code = frame.close_reason().map_or(1000, |(code, _)| code);
                self.close(ctx, "peer closed (WebSocket close)", code)
            }
            // Players have nothing to say in data frames; pongs answer nothing we sent.
            Opcode::Text | Opcode::Binary | Opcode::Continuation | Opcode::Pong => {}
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<CloseConnection> for HttpPlayer {
    type Result = ();

    fn handle(&mut self, msg: CloseConnection, ctx: &mut Context<Self>) {
        self.close(ctx, msg.reason, 1008);
    }
}

impl Handler<RequestReconnect> for HttpPlayer {
    type Result = bool;

    /// HTTP players have no reconnect request: the caller closes them instead.
    fn handle(&mut self, _: RequestReconnect, _: &mut Context<Self>) -> bool {
        false
    }
}
