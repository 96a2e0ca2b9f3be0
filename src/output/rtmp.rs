//! An RTMP player of a stream: what goes to one playing NetStream. It applies the delivery
//! gate to each frame and queues the frame's RTMP chunks (made once per stream and chunk
//! size, shared by every player) on its connection's outbox.

use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::outbox::Outbox;
use crate::hub::gate::Lossy;
use crate::hub::{DeliveryGate, Frame, FrameKind, Player, Verdict, WireForm};
use crate::names::Esc;
use crate::protocol::amf0::Amf0Value;
use crate::protocol::chunk::chunk_message;
use crate::protocol::command::{on_status, sample_access, status};
use crate::protocol::message::{Message, RawMessage, UserControlEvent};
use crate::stats::SubscriberStats;

/// Chunk stream ids the server writes on. The connection's header-compressing encoder owns
/// 2..=4; frames chunked statelessly once per stream (see [`chunk_message`]) use 5..=7, so
/// the two never disturb each other.
pub mod csid {
    pub const CONTROL: u32 = 2;
    pub const COMMAND: u32 = 3;
    pub const STREAM_COMMAND: u32 = 4;
    pub const DATA: u32 = 5;
    pub const AUDIO: u32 = 6;
    pub const VIDEO: u32 = 7;
}

/// The message stream id players nearly always get from `createStream`: frames are chunked
/// once for it; a player on another id gets its own chunking.
pub const SHARED_STREAM_ID: u32 = 1;

/// `frame` as RTMP chunks on message stream `stream_id`.
pub fn chunks(frame: &Frame, stream_id: u32, chunk_size: u32) -> Bytes {
    let chunk_stream = match frame.kind {
        FrameKind::Audio => csid::AUDIO,
        FrameKind::Video => csid::VIDEO,
        FrameKind::Data => csid::DATA,
    };
    let mut out = BytesMut::with_capacity(frame.payload.len() + 32);
    chunk_message(
        chunk_stream,
        &RawMessage {
            type_id: frame.type_id,
            stream_id,
            timestamp: frame.timestamp,
            payload: frame.payload.clone(),
        },
        chunk_size,
        &mut out,
    );
    out.freeze()
}

/// One playing NetStream.
pub struct RtmpPlayer {
    pub connection_id: u64,
    pub stream_id: u32,
    /// `app/name`, for logs.
    pub resource: String,
    /// The stream name as the player asked for it, for status messages.
    pub name: String,
    pub outbox: Rc<Outbox>,
    pub stats: Arc<SubscriberStats>,
    pub gate: DeliveryGate,
    /// Send NetStream.Play.Reset before Play.Start.
    pub reset: bool,
    /// Send PublishNotify / UnpublishNotify (`live.unpublish_notify`).
    pub notify: bool,
    /// Its stream's fan-out is gone: the subscriber actor ends the play.
    pub ended: bool,
}

impl RtmpPlayer {
    pub fn status(&self, level: &str, code: &str, description: String) {
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

    /// Queue `frame`: the shared chunks, or this player's own for another stream id or
    /// chunk size.
    fn write(outbox: &Outbox, stats: &SubscriberStats, stream_id: u32, frame: &Frame) {
        let size = outbox.chunk_size();
        let shared = if stream_id == SHARED_STREAM_ID {
            frame.wire(WireForm::RtmpChunks, size, |f| {
                chunks(f, SHARED_STREAM_ID, size)
            })
        } else {
            None
        };
        let bytes = shared.unwrap_or_else(|| chunks(frame, stream_id, size));
        stats.messages_sent.fetch_add(1, Relaxed);
        stats.bytes_sent.fetch_add(bytes.len() as u64, Relaxed);
        outbox.push_chunked(bytes);
    }

    /// Run `frame` through the gate and count what it decided.
    pub fn deliver(&mut self, frame: &Arc<Frame>, after_gap: bool) {
        let queued = self.outbox.queued_bytes();
        let (outbox, stats, stream_id) = (&self.outbox, &self.stats, self.stream_id);
        let verdict = self.gate.offer(frame, after_gap, queued, |f| {
            Self::write(outbox, stats, stream_id, f)
        });
        super::count_verdict(&self.stats, verdict);
        if verdict == Verdict::Refuse {
            self.refuse(frame);
        }
        if let Some(change) = self.gate.take_transition() {
            self.log_loss(change);
        }
    }

    fn log_loss(&self, change: Lossy) {
        let lag_ms = self.outbox.oldest_age().unwrap_or_default().as_millis() as u64;
        super::log_loss(
            self.connection_id,
            &self.resource,
            lag_ms,
            self.outbox.queued_bytes(),
            change,
        );
    }

    /// A legacy player must not get Enhanced RTMP frames it cannot parse: tell it why, once;
    /// it gets no more media.
    fn refuse(&self, frame: &Frame) {
        let codec = frame.fourcc.map_or_else(
            || "an Enhanced RTMP codec".to_owned(),
            crate::protocol::media::fourcc_str,
        );
        tracing::info!(
            connection = self.connection_id,
            stream = %Esc(&self.resource),
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
    }

    pub fn pause(&mut self) {
        self.gate.pause();
        self.status(
            "status",
            status::PAUSE_NOTIFY,
            format!("Paused {}.", self.name),
        );
    }

    pub fn unpause(&mut self) {
        let (outbox, stats, stream_id) = (&self.outbox, &self.stats, self.stream_id);
        self.gate
            .unpause(|f| Self::write(outbox, stats, stream_id, f));
        self.status(
            "status",
            status::UNPAUSE_NOTIFY,
            format!("Unpaused {}.", self.name),
        );
    }
}

impl Player for RtmpPlayer {
    fn start(&mut self, live: bool, burst: &mut dyn Iterator<Item = &Arc<Frame>>) {
        self.start_playing();
        if live {
            self.status(
                "status",
                status::PLAY_PUBLISH_NOTIFY,
                format!("{} is now published.", self.name),
            );
        }
        for frame in burst {
            self.deliver(frame, false);
        }
    }

    fn frame(&mut self, frame: &Arc<Frame>, after_gap: bool) {
        self.stats.handled.fetch_add(1, Relaxed);
        self.deliver(frame, after_gap);
    }

    fn missed(&mut self, frames: u64) {
        self.stats.drops.mailbox_full.fetch_add(frames, Relaxed);
    }

    fn published(&mut self) {
        self.gate.published();
        if !self.notify {
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

    fn ended(&mut self) {
        self.ended = true;
    }

    fn unpublished(&mut self) {
        self.gate.unpublished();
        if !self.notify {
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
