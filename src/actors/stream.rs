//! The publishing stream actor: one per NetStream that publishes. It turns each incoming
//! media or data message into a [`Frame`] once (inspected, rebased, chunked for players) and
//! feeds the publisher actor. Ingest is lossless: when the publisher's mailbox is full this
//! actor waits, its own mailbox fills, and the connection stops reading the socket, so an
//! encoder that outruns the server is slowed by TCP.

use crate::names::Esc;
use start_log::{Known, StartLog};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use actix::dev::SendError;
use actix::prelude::*;
use bytes::Bytes;

use super::connection::{CloseConnection, Connection};
use super::publisher::{Attach, Detach, Ingest, Publisher, SourceEvent};
use super::registry::{now_ms, Registry, Unpublish};
use super::{ConnectionId, DropClass, Frame, FrameKind, HeaderRole, TrackSet, SHARED_STREAM_ID};
use crate::config::Settings;
use crate::protocol::amf0::{self, Amf0Value};
use crate::protocol::command::strip_set_data_frame;
use crate::protocol::media::{self, video_params, PacketKind};
use crate::protocol::message::{split_aggregate, type_id, Message, RawMessage};
use crate::stats::{ConnectionStats, ServerStats, StreamStats};

/// Feeds one published stream.
pub struct PublishingStream {
    pub connection_id: ConnectionId,
    pub stream_id: u32,
    pub app: String,
    pub name: String,
    pub session: u64,
    pub publisher: Addr<Publisher>,
    pub registry: Addr<Registry>,
    pub connection: Addr<Connection>,
    pub settings: Arc<Settings>,
    pub stats: Arc<StreamStats>,
    pub server_stats: Arc<ServerStats>,
    pub last_media_ms: Arc<AtomicU64>,
    frames: FrameBuilder,
    /// Its connection's figures, for the admin's mailbox depth (set in `started`).
    connection_stats: Option<Arc<ConnectionStats>>,
    /// The publish-start line, until it is logged.
    start_log: StartLog,
}

/// Turns a source's media and data messages into [`Frame`]s: inspected, classified,
/// rebased to continue the stream's time, chunked once for players. Shared by the publishing
/// stream actor and the pull relay ([`crate::relay`]), so a pulled stream is prepared exactly
/// as a published one.
pub struct FrameBuilder {
    /// For logs only.
    connection_id: ConnectionId,
    settings: Arc<Settings>,
    stats: Arc<StreamStats>,
    /// Added to every timestamp, so that a publisher replacing another continues its time.
    offset: Option<u32>,
    continue_from: Option<u32>,
    /// The time of the last audio or video frame made, which headers and data follow.
    last_media: Option<u32>,
    /// Whether this source's first undecodable data message was logged.
    data_drop_logged: bool,
}

impl PublishingStream {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        connection_id: ConnectionId,
        stream_id: u32,
        app: String,
        name: String,
        session: u64,
        publisher: Addr<Publisher>,
        registry: Addr<Registry>,
        connection: Addr<Connection>,
        settings: Arc<Settings>,
        stats: Arc<StreamStats>,
        server_stats: Arc<ServerStats>,
        last_media_ms: Arc<AtomicU64>,
    ) -> Self {
        let (settings_for_frames, stats_for_frames) = (settings.clone(), stats.clone());
        PublishingStream {
            connection_id,
            stream_id,
            app,
            name,
            session,
            publisher,
            registry,
            connection,
            settings,
            stats,
            server_stats,
            last_media_ms,
            frames: FrameBuilder::new(connection_id, settings_for_frames, stats_for_frames),
            connection_stats: None,
            start_log: StartLog::default(),
        }
    }

    /// The publish-start line: what is published, once (see [`start_log`]).
    fn log_start(&self, s: &start_log::Summary) {
        let unknown = || "unknown".to_owned();
        tracing::info!(
            connection = self.connection_id,
            stream = %Esc(&format!("{}/{}", self.app, self.name)),
            video = %Esc(&s.video.clone().unwrap_or_else(unknown)),
            audio = %Esc(&s.audio.clone().unwrap_or_else(unknown)),
            resolution = %Known(s.size),
            fps = %Known(s.fps),
            bitrate_kbps = %Known(s.kbps),
            encoder = %Esc(&s.encoder.clone().unwrap_or_else(unknown)),
            "publish media"
        );
    }

    fn ingest(&mut self, raw: RawMessage, ctx: &mut Context<Self>) {
        if raw.type_id != type_id::AGGREGATE {
            return self.ingest_one(&raw, ctx);
        }
        // One level only: `split_aggregate` refuses an aggregate inside an aggregate, so
        // nothing here recurses on a depth the publisher picks.
        match split_aggregate(&raw) {
            Ok(parts) => {
                for part in &parts {
                    self.ingest_one(part, ctx);
                }
            }
            Err(e) => {
                tracing::warn!(connection = self.connection_id, error = %e, "bad aggregate message: closing the publisher");
                self.server_stats.protocol_errors.fetch_add(1, Relaxed);
                self.connection.do_send(CloseConnection {
                    reason: format!("protocol error: {e}"),
                });
                ctx.stop();
            }
        }
    }

    fn ingest_one(&mut self, raw: &RawMessage, ctx: &mut Context<Self>) {
        let Some(frame) = self.frames.make_frame(raw) else {
            return;
        };
        if frame.kind != FrameKind::Data {
            self.last_media_ms.store(now_ms(), Relaxed);
        }
        if !self.start_log.done() {
            if let Some(summary) = self.start_log.frame(&frame, &self.settings.amf_limits()) {
                self.log_start(&summary);
            }
        }
        let msg = Ingest {
            session: self.session,
            frame: Arc::new(frame),
        };
        match msg.offer(&self.publisher, &self.stats) {
            Ok(()) => {}
            Err(SendError::Full(msg)) => {
                // Lossless ingest: wait for room; meanwhile this actor's mailbox fills and the
                // connection stops reading.
                let wait = msg.send_when_room(self.publisher.clone(), self.stats.clone());
                ctx.wait(wait.into_actor(self).map(|_, _, _| ()));
            }
            Err(SendError::Closed(_)) => ctx.stop(),
        }
    }
}

impl Actor for PublishingStream {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(crate::stats::PUBLISHING_STREAM_MAILBOX);
        self.connection_stats = self
            .server_stats
            .connections
            .get(&self.connection_id)
            .map(|c| c.clone());
        self.server_stats
            .actors
            .publishing_streams
            .fetch_add(1, Relaxed);
        let attach = Attach {
            session: self.session,
            connection: self.connection_id,
            source: ctx.address().recipient(),
        };
        ctx.wait(
            self.publisher
                .send(attach)
                .into_actor(self)
                .map(|res, act, ctx| match res {
                    Ok(info) => act.frames.continue_from(info.continue_from),
                    Err(_) => ctx.stop(),
                }),
        );
        // Media whose timestamps do not advance never reaches GIVE_UP_MS of media time.
        ctx.run_later(
            Duration::from_millis(u64::from(start_log::GIVE_UP_MS) * 2),
            |act, _| {
                if let Some(summary) = act.start_log.finish() {
                    act.log_start(&summary);
                }
            },
        );
        let idle_ms = self.settings.live.publisher_idle_timeout_ms;
        if idle_ms > 0 {
            ctx.run_interval(Duration::from_secs(1), move |act, ctx| {
                let idle = now_ms().saturating_sub(act.last_media_ms.load(Relaxed));
                if idle > idle_ms {
                    tracing::warn!(connection = act.connection_id, stream = %Esc(&format!("{}/{}", act.app, act.name)), idle_ms = idle, "publisher sent no media: closing");
                    act.connection.do_send(CloseConnection {
                        reason: "publisher idle timeout".into(),
                    });
                    ctx.stop();
                }
            });
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(summary) = self.start_log.finish() {
            self.log_start(&summary);
        }
        self.server_stats
            .actors
            .publishing_streams
            .fetch_sub(1, Relaxed);
        // Always, attached or not: the Attach this actor sent (it is queued before this
        // Detach) may still install it after it stopped; Detach only ends its own session.
        self.publisher.do_send(Detach {
            session: self.session,
        });
        self.registry.do_send(Unpublish {
            app: self.app.clone(),
            name: self.name.clone(),
            session: self.session,
        });
    }
}

/// A media, data or aggregate message from the publishing client.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Media(pub RawMessage);

impl Handler<Media> for PublishingStream {
    type Result = ();

    fn handle(&mut self, msg: Media, ctx: &mut Context<Self>) {
        if let Some(c) = &self.connection_stats {
            c.media_handled.fetch_add(1, Relaxed);
        }
        let stats = self.server_stats.clone();
        if super::guard(&stats, "stream", self.connection_id, || {
            self.ingest(msg.0, ctx)
        })
        .is_none()
        {
            self.connection.do_send(CloseConnection {
                reason: "panic in the publishing stream".into(),
            });
            ctx.stop();
        }
    }
}

impl Handler<SourceEvent> for PublishingStream {
    type Result = ();

    fn handle(&mut self, msg: SourceEvent, ctx: &mut Context<Self>) {
        let reason = match msg {
            SourceEvent::Replaced => "another publisher took the stream over",
            SourceEvent::Stop => "stopped by an operator",
        };
        tracing::info!(connection = self.connection_id, stream = %Esc(&format!("{}/{}", self.app, self.name)), reason, "publishing ended");
        self.connection.do_send(CloseConnection {
            reason: reason.into(),
        });
        ctx.stop();
    }
}

/// Stop publishing (deleteStream, closeStream, FCUnpublish, connection closing).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopStream;

impl Handler<StopStream> for PublishingStream {
    type Result = ();

    fn handle(&mut self, _: StopStream, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl FrameBuilder {
    /// A builder for a source that starts at the stream's beginning; see
    /// [`FrameBuilder::continue_from`].
    pub fn new(
        connection_id: ConnectionId,
        settings: Arc<Settings>,
        stats: Arc<StreamStats>,
    ) -> Self {
        FrameBuilder {
            connection_id,
            settings,
            stats,
            offset: None,
            continue_from: None,
            last_media: None,
            data_drop_logged: false,
        }
    }

    /// Continue the time of a previous source (from [`super::publisher::AttachInfo`]).
    pub fn continue_from(&mut self, base: Option<u32>) {
        self.continue_from = base;
    }

    /// Every frame of a message: an aggregate gives its parts, media or data one frame,
    /// anything players must not get none.
    pub fn frames(&mut self, raw: RawMessage, out: &mut Vec<Frame>) {
        if raw.type_id != type_id::AGGREGATE {
            out.extend(self.make_frame(&raw));
            return;
        }
        // One level only (see `split_aggregate`): no recursion on the peer's nesting.
        match split_aggregate(&raw) {
            Ok(parts) => out.extend(parts.iter().filter_map(|part| self.make_frame(part))),
            Err(e) => {
                tracing::warn!(connection = self.connection_id, error = %e, "aggregate message dropped")
            }
        }
    }

    /// A data message we cannot decode within the AMF limits is never relayed: players
    /// have crashed on such input (rtmpdump and GStreamer `rtmpsrc` died on a 100 000-deep
    /// `onTextData`). Counted per stream; logged once per publishing source.
    fn drop_data(&mut self, error: &dyn std::fmt::Display) {
        self.stats.data_dropped.fetch_add(1, Relaxed);
        if !self.data_drop_logged {
            self.data_drop_logged = true;
            tracing::info!(connection = self.connection_id, stream = ?format!("{}/{}", self.stats.app, self.stats.name), error = %error, "data message dropped: it does not decode within the AMF limits (further drops on this stream are only counted)");
        }
    }

    /// The time of an audio or video frame. A source that continues another is aligned on its
    /// first one: relays (nginx-rtmp's push) send metadata at 0 and sequence headers at 0
    /// seconds after their media's time, and aligning on those would jump players ahead.
    fn rebase(&mut self, timestamp: u32) -> u32 {
        let offset = *self.offset.get_or_insert_with(|| match self.continue_from {
            Some(base) => base.wrapping_sub(timestamp),
            None => 0,
        });
        let out = timestamp.wrapping_add(offset);
        self.last_media = Some(out);
        out
    }

    /// The time of a sequence header (`header`) or data message: never pulls the timeline.
    /// Before the first media frame it is where the media will start; after, a header gets
    /// the last media time and data no earlier than it (a header at 0 after audio at 5340 s
    /// must not send players back).
    fn follow(&self, timestamp: u32, header: bool) -> u32 {
        let Some(offset) = self.offset else {
            return self.continue_from.unwrap_or(timestamp);
        };
        let out = timestamp.wrapping_add(offset);
        match self.last_media {
            Some(last) if header || (last.wrapping_sub(out) as i32) > 0 => last,
            _ => out,
        }
    }

    /// Classify a message and make its frame; `None` for what players must not get.
    pub fn make_frame(&mut self, raw: &RawMessage) -> Option<Frame> {
        let mut enhanced = false;
        let mut fourcc = None;
        // Unparsable media is forwarded as track 0's.
        let mut tracks = TrackSet::single(0);
        let mut role = None;
        let (kind, class, payload) = match raw.type_id {
            type_id::VIDEO => {
                let class = match media::inspect_video(&raw.payload) {
                    Ok(tag) => {
                        enhanced = tag.enhanced;
                        fourcc = tag.codec().fourcc();
                        tracks = tag.tracks.iter().map(|t| t.track_id).collect();
                        if tag.is_sequence_header() {
                            self.note_video_header(&tag, &raw.payload);
                        }
                        role = video_header_role(&tag);
                        match role {
                            Some(_) => DropClass::Header,
                            None if tag.is_keyframe() => DropClass::Key,
                            None if tag.is_disposable() => DropClass::Disposable,
                            None => DropClass::Inter,
                        }
                    }
                    Err(_) => DropClass::Inter,
                };
                (FrameKind::Video, class, raw.payload.clone())
            }
            type_id::AUDIO => {
                let class = match media::inspect_audio(&raw.payload) {
                    Ok(tag) => {
                        enhanced = tag.enhanced;
                        tracks = tag.tracks.iter().map(|t| t.track_id).collect();
                        role = audio_header_role(&tag);
                        if role.is_some() {
                            self.note_audio_header(&tag, &raw.payload);
                            DropClass::Header
                        } else {
                            DropClass::Audio
                        }
                    }
                    Err(_) => DropClass::Audio,
                };
                (FrameKind::Audio, class, raw.payload.clone())
            }
            type_id::DATA_AMF0 | type_id::DATA_AMF3 => {
                match Message::decode(raw, &self.settings.amf_limits()) {
                    Ok(Message::Data { values, .. }) => match strip_set_data_frame(&values) {
                        // `@setDataFrame onMetaData {...}` becomes `onMetaData {...}` for
                        // players, and is cached for late joiners.
                        Some(stripped) => {
                            let mut out = Vec::new();
                            if let Err(e) = amf0::encode_all(&stripped, &mut out) {
                                self.drop_data(&e);
                                return None;
                            }
                            let class = if is_metadata(&stripped) {
                                DropClass::Header
                            } else {
                                DropClass::Data
                            };
                            let mut payload = Vec::with_capacity(out.len() + 1);
                            if raw.type_id == type_id::DATA_AMF3 {
                                payload.push(0);
                            }
                            payload.extend_from_slice(&out);
                            (FrameKind::Data, class, Bytes::from(payload))
                        }
                        // A plain `onMetaData` (nginx-rtmp's push, some encoders) is the
                        // stream's metadata all the same: cached for late joiners.
                        None if is_metadata(&values) => {
                            (FrameKind::Data, DropClass::Header, raw.payload.clone())
                        }
                        None => (FrameKind::Data, DropClass::Data, raw.payload.clone()),
                    },
                    Ok(_) => return None,
                    Err(e) => {
                        self.drop_data(&e);
                        return None;
                    }
                }
            }
            _ => return None,
        };
        if kind == FrameKind::Data && class == DropClass::Header {
            role = Some(HeaderRole::StreamMetadata);
        }
        let timestamp = match (kind, class) {
            // Metadata is sent to late joiners first: timestamp 0 as nginx-rtmp does.
            (FrameKind::Data, DropClass::Header) => 0,
            (FrameKind::Audio | FrameKind::Video, c) if c != DropClass::Header => {
                self.rebase(raw.timestamp)
            }
            _ => self.follow(raw.timestamp, kind != FrameKind::Data),
        };
        let message = RawMessage {
            type_id: raw.type_id,
            stream_id: SHARED_STREAM_ID,
            timestamp,
            payload,
        };
        Some(Frame::new(
            kind,
            class,
            raw.type_id,
            timestamp,
            message.payload,
            tracks,
            role,
            enhanced,
            fourcc,
        ))
    }

    fn note_video_header(&self, tag: &media::VideoTag, payload: &[u8]) {
        if let Ok(mut codec) = self.stats.video_codec.lock() {
            *codec = Some(tag.codec().to_string());
        }
        if let Some(p) = video_params(payload) {
            self.stats.width.store(u64::from(p.width), Relaxed);
            self.stats.height.store(u64::from(p.height), Relaxed);
        }
    }

    fn note_audio_header(&self, tag: &media::AudioTag, _payload: &[u8]) {
        if let Ok(mut codec) = self.stats.audio_codec.lock() {
            *codec = Some(tag.codec().to_string());
        }
    }
}

/// Whether a data message is `onMetaData` (with `@setDataFrame` already stripped).
fn is_metadata(values: &[Amf0Value]) -> bool {
    matches!(values.first(), Some(Amf0Value::String(s)) if s == "onMetaData")
}

/// Which header a video message is, if any (E-RTMP: one packet type for all its tracks).
fn video_header_role(tag: &media::VideoTag) -> Option<HeaderRole> {
    if tag.is_sequence_header() {
        Some(HeaderRole::SequenceStart)
    } else if tag.tracks.iter().any(|t| t.kind == PacketKind::Metadata) {
        Some(HeaderRole::VideoMetadata)
    } else {
        None
    }
}

/// Which header an audio message is, if any: a late joiner needs both the SequenceStart and
/// the MultichannelConfig that ffmpeg sends after it (E-RTMP v2 ExAudioTagHeader).
fn audio_header_role(tag: &media::AudioTag) -> Option<HeaderRole> {
    if tag.is_sequence_header() {
        Some(HeaderRole::SequenceStart)
    } else if tag.is_multichannel_config() {
        Some(HeaderRole::MultichannelConfig)
    } else {
        None
    }
}

mod start_log;

#[cfg(test)]
mod tests;
