//! The subscriber actor: one per NetStream that plays. It takes frames from the publisher
//! actor through a bounded mailbox and writes them to the player's connection, applying the
//! per-player drop policy: over byte budgets it loses disposable frames, then all video until
//! the next keyframe, then audio; a player that stays behind past the lag limit is closed.

use crate::names::Esc;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::BytesMut;

use super::connection::{CloseConnection, Connection};
use super::outbox::Outbox;
use super::publisher::{
    JoinInfo, Publisher, Subscribe, SubscriberEvent, SubscriberKey, Unsubscribe,
};
use super::registry::{Leave, Registry};
use super::tracks::VideoGate;
use super::{csid, ConnectionId, DropClass, Frame, FrameKind, HeaderCache, SHARED_STREAM_ID};
use crate::config::{LegacyPlayers, Settings};
use crate::protocol::amf0::Amf0Value;
use crate::protocol::chunk::chunk_message;
use crate::protocol::command::{on_status, sample_access, status};
use crate::protocol::message::{Message, RawMessage, UserControlEvent};
use crate::stats::{ServerStats, SubscriberStats};

/// What a player announced in `connect` about Enhanced RTMP.
#[derive(Debug, Clone, Default)]
pub struct PlayerCaps {
    /// It announced Enhanced RTMP (`fourCcList` or a v2 property).
    pub enhanced: bool,
    /// Video FourCCs it listed (`fourCcList`, `videoFourCcInfoMap` keys); `*` is any.
    pub video_fourccs: Vec<String>,
}

impl PlayerCaps {
    /// Whether this player can take `frame` as is.
    fn accepts(&self, frame: &Frame) -> bool {
        if !frame.enhanced {
            return true;
        }
        if !self.enhanced {
            return false;
        }
        match (frame.kind, frame.fourcc) {
            (FrameKind::Video, Some(code)) if !self.video_fourccs.is_empty() => {
                let name = crate::protocol::media::fourcc_str(code);
                self.video_fourccs.iter().any(|f| f == "*" || *f == name)
            }
            _ => true,
        }
    }
}

/// Plays one resource to one NetStream of a connection.
pub struct Subscriber {
    pub connection_id: ConnectionId,
    pub stream_id: u32,
    pub app: String,
    pub name: String,
    pub outbox: Rc<Outbox>,
    pub publisher: Addr<Publisher>,
    pub registry: Addr<Registry>,
    pub connection: Addr<Connection>,
    pub settings: Arc<Settings>,
    pub server_stats: Arc<ServerStats>,
    pub stats: Arc<SubscriberStats>,
    pub reset: bool,
    caps: Arc<PlayerCaps>,
    /// The stream needs Enhanced RTMP and this player did not announce it: nothing is sent.
    refused: bool,
    receive_audio: bool,
    receive_video: bool,
    paused: bool,
    /// Per video track: skipped until its keyframe (on joining, after a drop, a pause or a
    /// new publisher).
    gate: VideoGate,
    /// The metadata and headers seen, resent before the keyframe that ends a resync.
    headers: HeaderCache,
    joined: bool,
}

impl Subscriber {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        connection_id: ConnectionId,
        stream_id: u32,
        app: String,
        name: String,
        outbox: Rc<Outbox>,
        publisher: Addr<Publisher>,
        registry: Addr<Registry>,
        connection: Addr<Connection>,
        settings: Arc<Settings>,
        server_stats: Arc<ServerStats>,
        stats: Arc<SubscriberStats>,
        reset: bool,
        caps: Arc<PlayerCaps>,
    ) -> Self {
        Subscriber {
            connection_id,
            stream_id,
            app,
            name,
            outbox,
            publisher,
            registry,
            connection,
            settings,
            server_stats,
            stats,
            reset,
            caps,
            refused: false,
            receive_audio: true,
            receive_video: true,
            paused: false,
            gate: VideoGate::default(),
            headers: HeaderCache::default(),
            joined: false,
        }
    }

    fn key(&self) -> SubscriberKey {
        (self.connection_id, self.stream_id)
    }

    fn status(&self, level: &str, code: &str, description: String) {
        let values = on_status(
            level,
            code,
            &description,
            vec![
                ("details".into(), Amf0Value::String(self.name.clone())),
                (
                    "clientid".into(),
                    Amf0Value::String(self.connection_id.to_string()),
                ),
            ],
        );
        self.outbox.send(
            csid::STREAM_COMMAND,
            self.stream_id,
            0,
            &Message::Command {
                amf3: false,
                values,
            },
        );
    }

    fn user_control(&self, event: UserControlEvent) {
        self.outbox
            .send(csid::CONTROL, 0, 0, &Message::UserControl(event));
    }

    /// The play sequence players expect (§7.2.2.1): StreamBegin, Play.Reset, Play.Start,
    /// `|RtmpSampleAccess`.
    fn start_playing(&self) {
        self.user_control(UserControlEvent::StreamBegin {
            stream_id: self.stream_id,
        });
        if self.reset {
            self.status(
                "status",
                status::PLAY_RESET,
                format!("Playing and resetting {}.", self.name),
            );
        }
        self.status(
            "status",
            status::PLAY_START,
            format!("Started playing {}.", self.name),
        );
        self.outbox.send(
            csid::STREAM_COMMAND,
            self.stream_id,
            0,
            &Message::Data {
                amf3: false,
                values: sample_access(),
            },
        );
    }

    /// Write a frame: the shared chunked bytes, or our own chunking for another stream id.
    fn write(&self, frame: &Frame) {
        let bytes = if self.stream_id == SHARED_STREAM_ID
            && self.outbox.chunk_size() == self.settings.rtmp.out_chunk_size
        {
            frame.chunked.clone()
        } else {
            let chunk_stream = match frame.kind {
                FrameKind::Audio => csid::AUDIO,
                FrameKind::Video => csid::VIDEO,
                FrameKind::Data => csid::DATA,
            };
            let mut out = BytesMut::new();
            chunk_message(
                chunk_stream,
                &RawMessage {
                    type_id: frame.type_id,
                    stream_id: self.stream_id,
                    timestamp: frame.timestamp,
                    payload: frame.payload.clone(),
                },
                self.outbox.chunk_size(),
                &mut out,
            );
            out.freeze()
        };
        self.stats.messages_sent.fetch_add(1, Relaxed);
        self.stats.bytes_sent.fetch_add(bytes.len() as u64, Relaxed);
        self.outbox.push_chunked(bytes);
    }

    fn wanted(&self, kind: FrameKind) -> bool {
        !self.paused
            && match kind {
                FrameKind::Audio => self.receive_audio,
                FrameKind::Video => self.receive_video,
                FrameKind::Data => true,
            }
    }

    /// A legacy player must not get Enhanced RTMP frames it cannot parse: tell it why, once,
    /// and send it no more media (unless `live.legacy_players = "forward"`).
    fn refuse_enhanced(&mut self, frame: &Frame) -> bool {
        if self.refused {
            return true;
        }
        if self.caps.accepts(frame) || self.settings.live.legacy_players == LegacyPlayers::Forward {
            return false;
        }
        self.refused = true;
        let codec = frame.fourcc.map_or_else(
            || "an Enhanced RTMP codec".to_owned(),
            crate::protocol::media::fourcc_str,
        );
        tracing::info!(
            connection = self.connection_id,
            stream = %Esc(&format!("{}/{}", self.app, self.name)),
            codec = %codec,
            "player did not announce Enhanced RTMP support for this stream: refused"
        );
        self.status(
            "error",
            status::PLAY_FAILED,
            format!(
                "{} is {codec} over Enhanced RTMP, which this player did not announce in connect (fourCcList / videoFourCcInfoMap; ffmpeg: -rtmp_enhanced_codecs {codec}).",
                self.name
            ),
        );
        true
    }

    /// The drop policy. Whole messages only, decided before anything is queued.
    fn deliver(&mut self, frame: Arc<Frame>, after_gap: bool) {
        if frame.kind != FrameKind::Data && self.refuse_enhanced(&frame) {
            return;
        }
        if frame.class == DropClass::Header {
            self.headers.remember(&frame);
            let wanted = self.wanted(frame.kind);
            if wanted {
                self.write(&frame);
            }
            if frame.kind == FrameKind::Video {
                if wanted {
                    self.gate.headers_sent(frame.tracks);
                } else {
                    self.gate.headers_skipped(frame.tracks);
                }
            }
            return;
        }
        if after_gap && frame.kind == FrameKind::Video {
            self.gate.desync_all();
        }
        if !self.wanted(frame.kind) {
            return;
        }
        let live = &self.settings.live;
        let queued = self.outbox.queued_bytes();
        let drops = &self.stats.drops;
        match frame.kind {
            FrameKind::Video => {
                if !self.gate.admits(frame.tracks) {
                    if frame.is_keyframe() && queued < live.drop_video_bytes {
                        // Resume these tracks cleanly: their headers if the player may lack
                        // them, then the keyframe. Other tracks keep their own state.
                        let stale = self.gate.resync(frame.tracks);
                        for header in self.headers.of_tracks(FrameKind::Video, stale) {
                            self.write(header);
                        }
                        self.write(&frame);
                    } else {
                        // A multitrack message partly synced loses the synced tracks a frame.
                        self.gate.desync(frame.tracks);
                        drops.awaiting_keyframe.fetch_add(1, Relaxed);
                    }
                } else if frame.class == DropClass::Disposable
                    && queued >= live.drop_disposable_bytes
                {
                    drops.disposable.fetch_add(1, Relaxed);
                } else if queued >= live.drop_video_bytes {
                    drops.video.fetch_add(1, Relaxed);
                    self.gate.desync(frame.tracks);
                } else {
                    self.write(&frame);
                }
            }
            FrameKind::Audio => {
                if queued >= live.drop_audio_bytes {
                    drops.audio.fetch_add(1, Relaxed);
                } else {
                    self.write(&frame);
                }
            }
            FrameKind::Data => {
                if queued >= live.drop_audio_bytes {
                    drops.audio.fetch_add(1, Relaxed);
                } else {
                    self.write(&frame);
                }
            }
        }
    }

    fn check_lag(&mut self, ctx: &mut Context<Self>) {
        let lag = self.outbox.oldest_age().unwrap_or_default();
        self.stats.lag_ms.store(lag.as_millis() as u64, Relaxed);
        if lag > Duration::from_millis(self.settings.live.max_lag_ms) {
            tracing::warn!(
                connection = self.connection_id,
                stream = %Esc(&format!("{}/{}", self.app, self.name)),
                lag_ms = lag.as_millis() as u64,
                queued = self.outbox.queued_bytes(),
                "player too far behind: disconnecting"
            );
            if let Ok(mut reason) = self.stats.close_reason.lock() {
                *reason = Some("player lag limit".into());
            }
            self.connection.do_send(CloseConnection {
                reason: "player lag limit".into(),
            });
            ctx.stop();
        }
    }
}

impl Actor for Subscriber {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.settings.live.subscriber_mailbox);
        self.server_stats.actors.subscribers.fetch_add(1, Relaxed);
        let subscribe = Subscribe {
            key: self.key(),
            recipient: ctx.address().recipient(),
            stats: self.stats.clone(),
        };
        // Handle nothing else until the join state is written, so frames follow the burst.
        ctx.wait(
            self.publisher
                .send(subscribe)
                .into_actor(self)
                .map(|res, act, ctx| match res {
                    Ok(JoinInfo { live, burst }) => {
                        act.joined = true;
                        act.start_playing();
                        if live {
                            act.status(
                                "status",
                                status::PLAY_PUBLISH_NOTIFY,
                                format!("{} is now published.", act.name),
                            );
                        }
                        for frame in burst {
                            act.deliver(frame, false);
                        }
                    }
                    Err(_) => ctx.stop(),
                }),
        );
        ctx.run_interval(Duration::from_millis(250), |act, ctx| act.check_lag(ctx));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.server_stats.actors.subscribers.fetch_sub(1, Relaxed);
        if self.joined {
            self.publisher.do_send(Unsubscribe { key: self.key() });
        }
        self.registry.do_send(Leave {
            app: self.app.clone(),
            name: self.name.clone(),
        });
    }
}

impl Handler<SubscriberEvent> for Subscriber {
    type Result = ();

    fn handle(&mut self, msg: SubscriberEvent, ctx: &mut Context<Self>) {
        self.stats.handled.fetch_add(1, Relaxed);
        let stats = self.server_stats.clone();
        if super::guard(&stats, "subscriber", self.connection_id, || {
            self.on_event(msg)
        })
        .is_none()
        {
            ctx.stop();
        }
    }
}

impl Subscriber {
    fn on_event(&mut self, msg: SubscriberEvent) {
        match msg {
            SubscriberEvent::Frame { frame, after_gap } => {
                self.stats.mailbox_depth.fetch_sub(1, Relaxed);
                self.deliver(frame, after_gap)
            }
            SubscriberEvent::Published => {
                self.gate.desync_all();
                self.refused = false;
                if !self.settings.live.unpublish_notify {
                    return;
                }
                self.user_control(UserControlEvent::StreamBegin {
                    stream_id: self.stream_id,
                });
                self.status(
                    "status",
                    status::PLAY_PUBLISH_NOTIFY,
                    format!("{} is now published.", self.name),
                );
            }
            SubscriberEvent::Unpublished => {
                self.headers.clear();
                self.gate.desync_all();
                if !self.settings.live.unpublish_notify {
                    return;
                }
                self.status(
                    "status",
                    status::PLAY_UNPUBLISH_NOTIFY,
                    format!("{} is now unpublished.", self.name),
                );
                self.user_control(UserControlEvent::StreamEof {
                    stream_id: self.stream_id,
                });
            }
        }
    }
}

/// Player controls routed from the connection.
#[derive(Message)]
#[rtype(result = "()")]
pub enum PlayControl {
    ReceiveAudio(bool),
    ReceiveVideo(bool),
    Pause { pause: bool, milliseconds: f64 },
    Stop,
}

impl Handler<PlayControl> for Subscriber {
    type Result = ();

    fn handle(&mut self, msg: PlayControl, ctx: &mut Context<Self>) {
        match msg {
            PlayControl::ReceiveAudio(flag) => self.receive_audio = flag,
            PlayControl::ReceiveVideo(flag) => {
                if flag && !self.receive_video {
                    self.gate.desync_all();
                }
                self.receive_video = flag;
            }
            PlayControl::Pause {
                pause,
                milliseconds: _,
            } => {
                if pause {
                    self.paused = true;
                    self.status(
                        "status",
                        status::PAUSE_NOTIFY,
                        format!("Paused {}.", self.name),
                    );
                } else {
                    self.paused = false;
                    // Live resumes at the next keyframe, with the current headers first.
                    self.gate.desync_all();
                    if let Some(meta) = self.headers.metadata.clone() {
                        self.write(&meta);
                    }
                    for header in self.headers.of(FrameKind::Audio) {
                        self.write(header);
                    }
                    self.status(
                        "status",
                        status::UNPAUSE_NOTIFY,
                        format!("Unpaused {}.", self.name),
                    );
                }
            }
            PlayControl::Stop => ctx.stop(),
        }
    }
}
