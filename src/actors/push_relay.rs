//! The push relay: forwards a stream published here to an upstream RTMP server
//! (`[[relay.push]]`), for as long as it is published here. It is an edge of the local
//! publisher actor, like a core's fan-out (so it starts with the metadata, sequence headers
//! and GOP cache), and publishes with the project's client. A slow or unreachable upstream
//! never slows the local stream: the players' delivery gate runs over the bytes queued
//! towards it (8 MiB before video waits for the next keyframe); a lost connection is retried
//! every second, resuming with the metadata, the sequence headers and the frames since the
//! last keyframe (its own copy of the GOP), so the far end shows a picture at once rather
//! than at the next keyframe.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::{BufMut, BytesMut};
use tokio::sync::mpsc;

use crate::actors::publisher::{
    attach_edge, next_edge_id, EdgeId, HubEvent, JoinInfo, Publisher, Unsubscribe,
};
use crate::client::{ClientError, ClientReader, ClientWriter, RtmpClient, RtmpUrl};
use crate::hub::gate::{PlayerCaps, Verdict};
use crate::hub::{Budgets, DeliveryGate, DropClass, Frame, FrameKind, TrackSet, VideoGate};
use crate::protocol::message::{type_id, RawMessage};
use crate::stats::StreamStats;

/// Most bytes queued towards an upstream before inter frames are dropped.
const MAX_QUEUED_BYTES: usize = 8 * 1024 * 1024;
/// Wait between attempts to reach an upstream.
const RETRY: Duration = Duration::from_secs(1);

/// What the actor hands its sending task.
enum Item {
    Frame(Arc<Frame>),
    /// The local publisher left or changed: headers are stale.
    Reset,
}

/// Forwards one resource to one upstream: an edge of the local publisher, like a core's
/// fan-out, whose one "player" is the upstream connection.
pub struct Pusher {
    push: Push,
    publisher: Addr<Publisher>,
    edge: EdgeId,
    tx: Option<mpsc::UnboundedSender<Item>>,
    /// Frames sent by the publisher and not handled yet.
    mailbox: Arc<AtomicUsize>,
    /// The same drop policy as players, over the bytes queued towards the upstream.
    gate: DeliveryGate,
}

/// One resource's push: where to, and what the actor and its sending task both count. The
/// actor keeps it; the sending task owns a copy.
#[derive(Clone)]
struct Push {
    /// `rtmp://host[:port]/app` (no trailing slash).
    target: String,
    key: String,
    name: String,
    stream_stats: Option<Arc<StreamStats>>,
    /// Trusted roots of `rtmps://` targets (`None`: the public ones).
    tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    /// Payload bytes handed to the sending task and not sent yet.
    queued: Arc<AtomicUsize>,
}

impl Pusher {
    pub fn new(
        target: String,
        key: String,
        name: String,
        publisher: Addr<Publisher>,
        stream_stats: Option<Arc<StreamStats>>,
    ) -> Self {
        let budgets = Budgets {
            disposable: MAX_QUEUED_BYTES,
            video: MAX_QUEUED_BYTES,
            audio: usize::MAX,
        };
        Pusher {
            push: Push {
                target,
                key,
                name,
                stream_stats,
                tls: None,
                queued: Arc::new(AtomicUsize::new(0)),
            },
            publisher,
            edge: next_edge_id(),
            tx: None,
            mailbox: Arc::new(AtomicUsize::new(0)),
            gate: DeliveryGate::new(budgets, PlayerCaps::any()),
        }
    }

    /// Verify `rtmps://` targets against these roots.
    pub fn with_tls(mut self, tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>) -> Self {
        self.push.tls = tls;
        self
    }

    fn offer(&mut self, frame: &Arc<Frame>, after_gap: bool) {
        let Some(tx) = &self.tx else { return };
        let queued = &self.push.queued;
        let verdict = self
            .gate
            .offer(frame, after_gap, queued.load(Relaxed), |f| {
                queued.fetch_add(f.payload.len(), Relaxed);
                let _ = tx.send(Item::Frame(f.clone()));
            });
        debug_assert!(verdict != Verdict::Refuse, "a relay takes every codec");
    }

    fn reset(&self) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Item::Reset);
        }
    }
}

impl Actor for Pusher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (tx, rx) = mpsc::unbounded_channel();
        self.tx = Some(tx);
        let task = PushTask {
            push: self.push.clone(),
            headers: Vec::new(),
            gop: Vec::new(),
            gop_bytes: 0,
        };
        ctx.spawn(task.run(rx).into_actor(self));
        attach_edge(
            self,
            ctx,
            &self.publisher,
            self.edge,
            self.mailbox.clone(),
            |act, ctx, info| match info {
                Some(JoinInfo { burst, .. }) => {
                    for frame in &burst {
                        act.offer(frame, false);
                    }
                }
                None => ctx.stop(),
            },
        );
        if let Some(s) = &self.push.stream_stats {
            s.pushes.insert(self.push.target.clone(), false);
        }
        tracing::info!(stream = %self.push.key, target = %self.push.target, "push started");
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.publisher.do_send(Unsubscribe { edge: self.edge });
        if let Some(s) = &self.push.stream_stats {
            s.pushes.remove(&self.push.target);
        }
        tracing::info!(stream = %self.push.key, target = %self.push.target, "push stopped");
    }
}

impl Handler<HubEvent> for Pusher {
    type Result = ();

    fn handle(&mut self, msg: HubEvent, _: &mut Context<Self>) {
        match msg {
            HubEvent::Frame { frame, missed } => {
                self.mailbox.fetch_sub(1, Relaxed);
                self.offer(&frame, missed > 0);
            }
            HubEvent::Published => {
                self.gate.published();
                self.reset();
            }
            HubEvent::Unpublished => {
                self.gate.unpublished();
                self.reset();
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
    push: Push,
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
                    tracing::info!(stream = %self.push.key, target = %self.push.target, "push connected");
                    let result = tokio::select! {
                        r = self.forward(&mut rx, &writer, stream_id) => r,
                        r = drain(reader) => r,
                    };
                    self.set_connected(false);
                    match result {
                        Ok(()) => return, // the actor stopped: the channel closed
                        Err(e) => {
                            self.count_error();
                            tracing::warn!(stream = %self.push.key, target = %self.push.target, error = %e, "push connection lost; retrying")
                        }
                    }
                }
                Err(e) => {
                    self.count_error();
                    tracing::warn!(stream = %self.push.key, target = %self.push.target, error = %e, "push: upstream unreachable; retrying")
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

    fn count_error(&self) {
        if let Some(s) = &self.push.stream_stats {
            s.relay_errors.fetch_add(1, Relaxed);
        }
    }

    fn set_connected(&self, connected: bool) {
        if let Some(s) = &self.push.stream_stats {
            s.pushes.insert(self.push.target.clone(), connected);
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
                self.push.queued.fetch_sub(frame.payload.len(), Relaxed);
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
        let url = RtmpUrl::parse(&format!("{}/{}", self.push.target, self.push.name))?;
        let mut client =
            RtmpClient::connect(&url, &crate::relay::client_config(self.push.tls.clone())).await?;
        let stream_id = client.create_stream().await?;
        client.publish(stream_id, &self.push.name).await?;
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
        // A new upstream connection starts each video track at a keyframe: the resumed GOP
        // has them; without one (or after a publisher change) the tracks wait for theirs.
        let mut video = VideoGate::default();
        if self.gop.is_empty() {
            video.desync_all();
        } else {
            let synced = self
                .gop
                .iter()
                .fold(TrackSet::EMPTY, |t, f| t.union(f.tracks));
            video.resync(synced);
        }
        while let Some(item) = rx.recv().await {
            self.take(&item);
            let Item::Frame(frame) = item else {
                video.desync_all();
                continue;
            };
            if frame.kind == FrameKind::Video && frame.class != DropClass::Header {
                if frame.is_keyframe() {
                    video.resync(frame.tracks);
                } else if !video.admits(frame.tracks) {
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
