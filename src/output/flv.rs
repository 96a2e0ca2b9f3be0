//! An HTTP-FLV or WebSocket-FLV player of a stream: what goes to one browser (or ffmpeg)
//! playing `/{app}/{name}.flv`. The answer's head and the FLV header wait until the stream is
//! live; then each frame goes through the delivery gate and out as an FLV tag in the player's
//! framing (an HTTP/1.1 chunk, a WebSocket message, or bare for HTTP/1.0), made once per stream
//! and framing and shared by every such player.

use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::outbox::Outbox;
use crate::hub::{DeliveryGate, Frame, FrameKind, Player, Verdict, WireForm};
use crate::names::Esc;
use crate::protocol::flv;
use crate::protocol::http;
use crate::protocol::websocket::{self, Opcode};
use crate::stats::SubscriberStats;

/// How FLV bytes travel to this player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// HTTP/1.0: the body runs until the connection closes.
    Close,
    /// HTTP/1.1 chunked transfer coding (RFC 9112 §7.1): one chunk per tag.
    Chunked,
    /// Binary WebSocket messages (RFC 6455 §5.6): one message per tag.
    WebSocket,
}

impl Framing {
    fn form(self) -> WireForm {
        match self {
            Framing::Close => WireForm::FlvTag,
            Framing::Chunked => WireForm::HttpChunk,
            Framing::WebSocket => WireForm::WsMessage,
        }
    }

    /// `body` framed for this transport: for what is this player's own (its FLV header).
    fn wrap(self, body: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(body.len() + 16);
        self.put_prefix(&mut out, body.len());
        out.put_slice(body);
        if self == Framing::Chunked {
            out.put_slice(b"\r\n");
        }
        out.freeze()
    }

    fn put_prefix(self, out: &mut BytesMut, len: usize) {
        match self {
            Framing::Close => {}
            Framing::Chunked => out.put_slice(format!("{len:x}\r\n").as_bytes()),
            Framing::WebSocket => {
                let (header, n) = websocket::frame_header(Opcode::Binary, true, len);
                out.put_slice(&header[..n]);
            }
        }
    }

    /// What ends the body in order: the last chunk, or a normal WebSocket close.
    pub fn end(self, ws_code: u16, reason: &str) -> Option<Bytes> {
        match self {
            Framing::Close => None,
            Framing::Chunked => Some(Bytes::from_static(b"0\r\n\r\n")),
            Framing::WebSocket => Some(websocket::close_frame(ws_code, reason)),
        }
    }
}

/// The FLV tag type and body of `frame`, if FLV can carry it. FLV has no AMF3 data tag: an
/// AMF3 data message (type 15) whose body is AMF0 after its format byte (what publishers
/// send) becomes a script tag; anything else of type 15 is left out.
fn flv_body(frame: &Frame) -> Option<(u8, &[u8])> {
    match frame.type_id {
        15 => match frame.payload.split_first() {
            Some((0, rest)) => Some((18, rest)),
            _ => None,
        },
        t => Some((t, &frame.payload[..])),
    }
}

/// `frame` as one FLV tag in `form` (the shared bytes every player of that form gets).
pub fn tag(frame: &Frame, form: WireForm) -> Bytes {
    let Some((type_id, body)) = flv_body(frame) else {
        return Bytes::new();
    };
    let len = flv::tag_len(body.len());
    let framing = match form {
        WireForm::HttpChunk => Framing::Chunked,
        WireForm::WsMessage => Framing::WebSocket,
        _ => Framing::Close,
    };
    let mut out = BytesMut::with_capacity(len + 16);
    framing.put_prefix(&mut out, len);
    flv::write_tag(&mut out, type_id, frame.timestamp, body);
    if framing == Framing::Chunked {
        out.put_slice(b"\r\n");
    }
    out.freeze()
}

/// Why an FLV play ended on the server's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The stream needs what this player cannot take (Enhanced RTMP); it was told.
    Refused(String),
    /// The stream's fan-out could not join its publisher.
    Gone,
}

/// The output side of an FLV player: its framing and what it has sent so far.
struct Sink {
    outbox: Rc<Outbox>,
    stats: Arc<SubscriberStats>,
    framing: Framing,
    /// The HTTP answer's head, held until the stream is live (until then a wait may still
    /// end in a 404); `None` once sent, and for WebSocket (its 101 went out at the upgrade).
    head: Option<Bytes>,
    /// The FLV header went out.
    opened: bool,
    /// What the FLV header announces: (audio, video).
    av: (bool, bool),
}

impl Sink {
    /// The answer's head and the FLV header, once.
    fn open(&mut self) {
        if self.opened {
            return;
        }
        self.opened = true;
        if let Some(head) = self.head.take() {
            self.outbox.push_chunked(head);
        }
        let header = flv::file_header(self.av.0, self.av.1);
        self.outbox.push_chunked(self.framing.wrap(&header));
    }

    fn write(&mut self, frame: &Frame) {
        self.open();
        let form = self.framing.form();
        let Some(bytes) = frame.wire(form, 0, |f| tag(f, form)) else {
            return;
        };
        if bytes.is_empty() {
            return;
        }
        self.stats.messages_sent.fetch_add(1, Relaxed);
        self.stats.bytes_sent.fetch_add(bytes.len() as u64, Relaxed);
        self.outbox.push_chunked(bytes);
    }
}

/// One HTTP-FLV or WebSocket-FLV player.
pub struct FlvPlayer {
    pub connection_id: u64,
    /// `app/name`, for logs.
    pub resource: String,
    pub gate: DeliveryGate,
    sink: Sink,
    /// Set when the play ended on the server's side; the player's actor closes.
    pub end: Option<End>,
}

impl FlvPlayer {
    /// `head` is the HTTP answer's head to send when the stream is live (`None` for
    /// WebSocket, answered at the upgrade).
    pub fn new(
        connection_id: u64,
        resource: String,
        outbox: Rc<Outbox>,
        stats: Arc<SubscriberStats>,
        gate: DeliveryGate,
        framing: Framing,
        head: Option<Bytes>,
    ) -> FlvPlayer {
        FlvPlayer {
            connection_id,
            resource,
            gate,
            sink: Sink {
                outbox,
                stats,
                framing,
                head,
                opened: false,
                av: (true, true),
            },
            end: None,
        }
    }

    pub fn outbox(&self) -> &Rc<Outbox> {
        &self.sink.outbox
    }

    pub fn framing(&self) -> Framing {
        self.sink.framing
    }

    /// The answer started (its head and the FLV header went out).
    pub fn opened(&self) -> bool {
        self.sink.opened
    }

    fn deliver(&mut self, frame: &Arc<Frame>, after_gap: bool) {
        let queued = self.sink.outbox.queued_bytes();
        let sink = &mut self.sink;
        let verdict = self.gate.offer(frame, after_gap, queued, |f| sink.write(f));
        super::count_verdict(&self.sink.stats, verdict);
        if verdict == Verdict::Refuse {
            self.refuse(frame);
        }
        if let Some(change) = self.gate.take_transition() {
            let outbox = &self.sink.outbox;
            let lag_ms = outbox.oldest_age().unwrap_or_default().as_millis() as u64;
            super::log_loss(
                self.connection_id,
                &self.resource,
                lag_ms,
                outbox.queued_bytes(),
                change,
            );
        }
    }

    /// The stream is in an Enhanced RTMP codec this client cannot read: tell it (a 415
    /// answer while none started, a WebSocket close with the reason, else the end of the
    /// body) and end the play.
    fn refuse(&mut self, frame: &Frame) {
        if self.end.is_some() {
            return;
        }
        let codec = frame.fourcc.map_or_else(
            || "an Enhanced RTMP codec".to_owned(),
            crate::protocol::media::fourcc_str,
        );
        let reason = format!(
            "{} is {codec} in enhanced FLV, which this client does not read (ffmpeg 6 or later, mpegts.js and flv.js with enhanced FLV do; add ?enhanced=1 to take it anyway)",
            self.resource
        );
        tracing::info!(
            connection = self.connection_id,
            stream = %Esc(&self.resource),
            codec = %codec,
            "HTTP player cannot read enhanced FLV: refused"
        );
        let sink = &mut self.sink;
        if sink.head.take().is_some() {
            sink.opened = true;
            sink.outbox
                .push_chunked(http::plain_response(415, &reason, &[]));
        } else if let Some(end) = sink.framing.end(1003, &reason) {
            sink.outbox.push_chunked(end);
        }
        self.end = Some(End::Refused(reason));
    }
}

impl Player for FlvPlayer {
    fn start(&mut self, live: bool, burst: &mut dyn Iterator<Item = &Arc<Frame>>) {
        let burst: Vec<&Arc<Frame>> = burst.collect();
        if let Some(frame) = burst.iter().find(|f| !self.gate.accepts(f)) {
            self.gate.refuse_from_now();
            return self.refuse(frame);
        }
        let media = burst.iter().filter(|f| f.kind != FrameKind::Data);
        let (mut audio, mut video) = (false, false);
        for frame in media {
            audio |= frame.kind == FrameKind::Audio;
            video |= frame.kind == FrameKind::Video;
        }
        // Nothing known yet (not live, or no media so far): announce both, as SRS does; a
        // player told "no audio" would never attach an audio track that comes later.
        if audio || video {
            self.sink.av = (audio, video);
        }
        if live {
            self.sink.open();
        }
        for frame in burst {
            self.deliver(frame, false);
        }
    }

    fn frame(&mut self, frame: &Arc<Frame>, after_gap: bool) {
        self.sink.stats.handled.fetch_add(1, Relaxed);
        self.deliver(frame, after_gap);
    }

    fn missed(&mut self, frames: u64) {
        self.sink
            .stats
            .drops
            .mailbox_full
            .fetch_add(frames, Relaxed);
    }

    fn published(&mut self) {
        self.gate.published();
    }

    /// The body goes on: the next publisher's frames continue it (timestamps carry on, as
    /// for RTMP players), as SRS's HTTP-FLV does.
    fn unpublished(&mut self) {
        self.gate.unpublished();
    }

    fn ended(&mut self) {
        self.end = Some(End::Gone);
    }
}
