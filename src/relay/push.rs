//! The push relay: forwards a stream published here to an upstream RTMP server
//! (`[[relay.push]]`), for as long as it is published here. It subscribes to the local
//! publisher actor like a player (so it starts with the metadata, sequence headers and GOP
//! cache) and publishes with the project's client. A slow or unreachable upstream never slows
//! the local stream: frames queue up to `live.drop_video_bytes`, past that inter frames are
//! dropped until the next keyframe; a lost connection is retried every second, resuming with
//! the metadata, the sequence headers and the frames since the last keyframe (its own copy of
//! the GOP), so the far end shows a picture at once rather than at the next keyframe.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::{BufMut, BytesMut};
use tokio::sync::mpsc;

use crate::actors::publisher::{Publisher, Subscribe, SubscriberEvent, Unsubscribe};
use crate::actors::{DropClass, Frame, FrameKind};
use crate::client::{ClientError, ClientReader, ClientWriter, RtmpClient, RtmpUrl};
use crate::protocol::message::{type_id, RawMessage};
use crate::stats::{StreamStats, SubscriberStats};

/// Most bytes queued towards an upstream before inter frames are dropped.
const MAX_QUEUED_BYTES: usize = 8 * 1024 * 1024;
/// Wait between attempts to reach an upstream.
const RETRY: Duration = Duration::from_secs(1);

/// Subscriber keys for push relays: connection ids counted down from the top, so they never
/// meet a real connection's id.
static NEXT_PUSH_ID: AtomicU64 = AtomicU64::new(u64::MAX);

/// What the actor hands its sending task.
enum Item {
    Frame(Arc<Frame>),
    /// The local publisher left or changed: headers are stale.
    Reset,
}

/// Forwards one resource to one upstream.
pub struct Pusher {
    /// `rtmp://host[:port]/app` (no trailing slash).
    target: String,
    key: String,
    name: String,
    publisher: Addr<Publisher>,
    stream_stats: Option<Arc<StreamStats>>,
    id: u64,
    tx: Option<mpsc::UnboundedSender<Item>>,
    queued: Arc<AtomicUsize>,
    /// Inter frames are being dropped until the next keyframe.
    awaiting_key: bool,
}

impl Pusher {
    pub fn new(
        target: String,
        key: String,
        name: String,
        publisher: Addr<Publisher>,
        stream_stats: Option<Arc<StreamStats>>,
    ) -> Self {
        Pusher {
            target,
            key,
            name,
            publisher,
            stream_stats,
            id: NEXT_PUSH_ID.fetch_sub(1, Relaxed),
            tx: None,
            queued: Arc::new(AtomicUsize::new(0)),
            awaiting_key: false,
        }
    }

    fn offer(&mut self, frame: Arc<Frame>) {
        let Some(tx) = &self.tx else { return };
        let header = frame.class == DropClass::Header;
        if !header && frame.kind == FrameKind::Video {
            if frame.is_keyframe() {
                self.awaiting_key = false;
            } else if self.awaiting_key {
                return;
            }
        }
        if !header && self.queued.load(Relaxed) > MAX_QUEUED_BYTES {
            if frame.kind == FrameKind::Video {
                self.awaiting_key = true;
            }
            return;
        }
        self.queued.fetch_add(frame.payload.len(), Relaxed);
        let _ = tx.send(Item::Frame(frame));
    }
}

impl Actor for Pusher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (tx, rx) = mpsc::unbounded_channel();
        self.tx = Some(tx);
        let task = PushTask {
            target: self.target.clone(),
            key: self.key.clone(),
            name: self.name.clone(),
            queued: self.queued.clone(),
            stream_stats: self.stream_stats.clone(),
            headers: Vec::new(),
            gop: Vec::new(),
            gop_bytes: 0,
        };
        ctx.spawn(task.run(rx).into_actor(self));
        // A push relay is a subscriber without a client connection of its own: its figures
        // hang off a stand-in connection record.
        let connection = Arc::new(crate::stats::ConnectionStats::new(
            self.id,
            std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
            0,
        ));
        let stats = Arc::new(SubscriberStats::new(connection, 1, 0));
        let subscribe = Subscribe {
            key: (self.id, 1),
            recipient: ctx.address().recipient(),
            stats,
        };
        ctx.wait(
            self.publisher
                .send(subscribe)
                .into_actor(self)
                .map(|res, act, ctx| match res {
                    Ok(join) => {
                        for frame in join.burst {
                            act.offer(frame);
                        }
                    }
                    Err(_) => ctx.stop(),
                }),
        );
        if let Some(s) = &self.stream_stats {
            s.pushes.insert(self.target.clone(), false);
        }
        tracing::info!(stream = %self.key, target = %self.target, "push started");
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.publisher.do_send(Unsubscribe { key: (self.id, 1) });
        if let Some(s) = &self.stream_stats {
            s.pushes.remove(&self.target);
        }
        tracing::info!(stream = %self.key, target = %self.target, "push stopped");
    }
}

impl Handler<SubscriberEvent> for Pusher {
    type Result = ();

    fn handle(&mut self, msg: SubscriberEvent, _: &mut Context<Self>) {
        match msg {
            SubscriberEvent::Frame { frame, after_gap } => {
                if after_gap {
                    self.awaiting_key = true;
                }
                self.offer(frame);
            }
            SubscriberEvent::Published | SubscriberEvent::Unpublished => {
                self.awaiting_key = true;
                if let Some(tx) = &self.tx {
                    let _ = tx.send(Item::Reset);
                }
            }
        }
    }
}

/// Stop pushing (the registry: the local publisher left).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopPush;

impl Handler<StopPush> for Pusher {
    type Result = ();

    fn handle(&mut self, _: StopPush, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// The sending side: owns the upstream connection.
struct PushTask {
    target: String,
    key: String,
    name: String,
    queued: Arc<AtomicUsize>,
    stream_stats: Option<Arc<StreamStats>>,
    /// Metadata and sequence headers seen so far, resent after a reconnect.
    headers: Vec<Arc<Frame>>,
    /// The frames since the last keyframe (from it), resent after the headers on a
    /// reconnect; empty when no keyframe was seen or it grew past [`MAX_QUEUED_BYTES`].
    gop: Vec<Arc<Frame>>,
    gop_bytes: usize,
}

impl PushTask {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Item>) {
        loop {
            match self.connect().await {
                Ok((reader, writer, stream_id)) => {
                    self.set_connected(true);
                    tracing::info!(stream = %self.key, target = %self.target, "push connected");
                    let result = tokio::select! {
                        r = self.forward(&mut rx, &writer, stream_id) => r,
                        r = drain(reader) => r,
                    };
                    self.set_connected(false);
                    match result {
                        Ok(()) => return, // the actor stopped: the channel closed
                        Err(e) => {
                            tracing::warn!(stream = %self.key, target = %self.target, error = %e, "push connection lost; retrying")
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(stream = %self.key, target = %self.target, error = %e, "push: upstream unreachable; retrying")
                }
            }
            tokio::time::sleep(RETRY).await;
            // Frames queued meanwhile are taken into the headers and the GOP: the next
            // connection resumes from the last keyframe.
            while let Ok(item) = rx.try_recv() {
                self.take(&item);
            }
        }
    }

    fn set_connected(&self, connected: bool) {
        if let Some(s) = &self.stream_stats {
            s.pushes.insert(self.target.clone(), connected);
        }
    }

    /// Keep the headers current; release the queued bytes of a frame taken off the queue.
    fn take(&mut self, item: &Item) {
        match item {
            Item::Reset => {
                self.headers.clear();
                self.clear_gop();
            }
            Item::Frame(frame) => {
                self.queued.fetch_sub(frame.payload.len(), Relaxed);
                if frame.class == DropClass::Header {
                    self.headers.retain(|h| {
                        !(h.kind == frame.kind
                            && h.role == frame.role
                            && h.tracks == frame.tracks
                            && h.type_id == frame.type_id)
                    });
                    self.headers.push(frame.clone());
                    return;
                }
                if frame.is_keyframe() {
                    self.clear_gop();
                } else if self.gop.is_empty() {
                    return;
                }
                self.gop_bytes += frame.payload.len();
                if self.gop_bytes > MAX_QUEUED_BYTES {
                    self.clear_gop();
                    return;
                }
                self.gop.push(frame.clone());
            }
        }
    }

    /// What a (re)connection sends first, so the far end can decode at once instead of
    /// waiting for the next keyframe: the headers, then the GOP so far from its keyframe.
    fn resume(&self) -> impl Iterator<Item = &Arc<Frame>> {
        self.headers.iter().chain(self.gop.iter())
    }

    fn clear_gop(&mut self) {
        self.gop.clear();
        self.gop_bytes = 0;
    }

    async fn connect(&self) -> Result<(ClientReader, ClientWriter, u32), ClientError> {
        let url = RtmpUrl::parse(&format!("{}/{}", self.target, self.name))?;
        let mut client = RtmpClient::connect(&url, &super::client_config()).await?;
        let stream_id = client.create_stream().await?;
        client.publish(stream_id, &self.name).await?;
        let (reader, writer) = client.into_split();
        Ok((reader, writer, stream_id))
    }

    async fn forward(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<Item>,
        writer: &ClientWriter,
        stream_id: u32,
    ) -> Result<(), ClientError> {
        let resume: Vec<RawMessage> = self.resume().map(|f| message(f, stream_id)).collect();
        writer.send_all(&resume).await?;
        let mut awaiting_key = self.gop.is_empty();
        while let Some(item) = rx.recv().await {
            self.take(&item);
            let Item::Frame(frame) = item else {
                awaiting_key = true;
                continue;
            };
            if frame.kind == FrameKind::Video && frame.class != DropClass::Header {
                if frame.is_keyframe() {
                    awaiting_key = false;
                } else if awaiting_key {
                    continue;
                }
            }
            writer.send(&message(&frame, stream_id)).await?;
        }
        Ok(())
    }
}

/// Read (and so answer pings and acknowledge) until the upstream closes.
async fn drain(mut reader: ClientReader) -> Result<(), ClientError> {
    loop {
        if let Err(e) = reader.next_event().await {
            return Err(if e.is_disconnect() {
                ClientError::Closed
            } else {
                e
            });
        }
    }
}

/// A frame as a publisher sends it: metadata gets its `@setDataFrame` back, so that the
/// upstream keeps it for its late joiners.
fn message(frame: &Frame, stream_id: u32) -> RawMessage {
    let payload = if frame.kind == FrameKind::Data && frame.class == DropClass::Header {
        const NAME: &[u8] = b"@setDataFrame";
        // AMF3 data (0x0F) starts with a format byte, then AMF0 values.
        let body = match frame.type_id {
            type_id::DATA_AMF3 => frame.payload.get(1..).unwrap_or_default(),
            _ => &frame.payload[..],
        };
        let mut p = BytesMut::with_capacity(4 + NAME.len() + frame.payload.len());
        if frame.type_id == type_id::DATA_AMF3 {
            p.put_u8(0);
        }
        p.put_u8(0x02); // AMF0 string marker
        p.put_u16(NAME.len() as u16);
        p.put_slice(NAME);
        p.put_slice(body);
        p.freeze()
    } else {
        frame.payload.clone()
    };
    RawMessage {
        type_id: frame.type_id,
        stream_id,
        timestamp: frame.timestamp,
        payload,
    }
}

#[cfg(test)]
mod tests;
