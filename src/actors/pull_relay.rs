//! The pull relay: one actor per resource that local players wait for and no local publisher
//! feeds (or that a `static` `[[relay.pull]]` names). It finds the stream's origin (a
//! configured foreign server, or the instance Redis names), plays it from there with the
//! project's client, and feeds the local publisher actor as a source: Attach, then Ingest of
//! frames made by the same [`FrameBuilder`] a publishing stream uses. When the origin's
//! publisher leaves or the origin dies, it detaches (local players get UnpublishNotify) and
//! tries again every `cluster.lookup_interval_ms`, so players resume when the publisher comes
//! back. The registry stops it when the last player leaves (unless static) or a local
//! publisher arrives.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use actix::dev::SendError;
use actix::prelude::*;

use crate::actors::publisher::{Attach, Detach, Ingest, Publisher, SourceEvent};
use crate::actors::stream::FrameBuilder;
use crate::client::{ClientError, ClientEvent, RtmpClient, RtmpUrl};
use crate::config::Settings;
use crate::protocol::command::status;
use crate::relay::{client_config, data_message, Discovery};
use crate::stats::StreamStats;

/// Where a pulled stream comes from.
#[derive(Clone)]
pub enum Origin {
    /// The instance Redis names for the stream.
    Discovery(Arc<Discovery>),
    /// A configured server: `rtmp://host[:port]/app` (the stream name is appended).
    Url(String),
}

/// One resource's pull: what it is, where it comes from and which publisher it feeds. The
/// actor keeps it; each pull loop owns a copy.
#[derive(Clone)]
struct Pull {
    key: String,
    app: String,
    name: String,
    session: u64,
    publisher: Addr<Publisher>,
    settings: Arc<Settings>,
    stats: Arc<StreamStats>,
    origin: Origin,
    tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
}

/// Pulls one resource from its origin.
pub struct Puller {
    pull: Pull,
}

impl Puller {
    /// Verify `rtmps://` origins against these roots (`None`: the public ones).
    pub fn with_tls(mut self, tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>) -> Self {
        self.pull.tls = tls;
        self
    }

    #[allow(clippy::too_many_arguments)]
    pub fn new(
        key: String,
        app: String,
        name: String,
        session: u64,
        publisher: Addr<Publisher>,
        settings: Arc<Settings>,
        stats: Arc<StreamStats>,
        origin: Origin,
    ) -> Self {
        Puller {
            pull: Pull {
                key,
                app,
                name,
                session,
                publisher,
                settings,
                stats,
                origin,
                tls: None,
            },
        }
    }

    fn set_origin(stats: &StreamStats, origin: Option<String>) {
        if let Ok(mut o) = stats.origin.lock() {
            *o = origin;
        }
    }
}

/// What one pull loop needs, owned by its future.
struct PullTask {
    pull: Pull,
    source: Recipient<SourceEvent>,
}

/// How one pull from an origin ended.
#[derive(Debug)]
enum PullEnd {
    /// The origin's publisher left (UnpublishNotify), or the origin closed the connection.
    Unpublished,
    /// Redis now names another origin (or none) while this one had nothing to send.
    Moved,
}

impl PullTask {
    async fn run(self) {
        let interval = Duration::from_millis(self.pull.settings.cluster.lookup_interval_ms);
        loop {
            let origin = match &self.pull.origin {
                Origin::Url(base) => Some(base.trim_end_matches('/').to_owned()),
                Origin::Discovery(discovery) => match discovery.lookup(&self.pull.key).await {
                    Ok(Some(origin)) if origin != discovery.advertise() => Some(origin),
                    Ok(_) => {
                        tracing::debug!(stream = %self.pull.key, "pull: no origin advertises this stream yet");
                        None
                    }
                    Err(e) => {
                        tracing::debug!(stream = %self.pull.key, error = %e, "pull: lookup failed");
                        None
                    }
                },
            };
            if let Some(origin) = origin {
                tracing::info!(stream = %self.pull.key, origin = %origin, "pull: connecting to the origin");
                match self.pull_from(&origin).await {
                    Ok(end) => {
                        tracing::info!(stream = %self.pull.key, origin = %origin, end = ?end, "pull ended")
                    }
                    Err(e) => {
                        self.pull.stats.relay_errors.fetch_add(1, Relaxed);
                        tracing::warn!(stream = %self.pull.key, origin = %origin, error = %e, "pull failed")
                    }
                }
                // Whatever happened, players must not believe a dead source is live.
                self.pull.publisher.do_send(Detach {
                    session: self.pull.session,
                });
                Puller::set_origin(&self.pull.stats, None);
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// Play the stream from `origin` (an instance's `host:port`, or a configured
    /// `rtmp://host[:port]/app`) and feed the local publisher until it ends.
    async fn pull_from(&self, origin: &str) -> Result<PullEnd, ClientError> {
        let url = match &self.pull.origin {
            Origin::Url(_) => RtmpUrl::parse(&format!("{origin}/{}", self.pull.name))?,
            Origin::Discovery(_) => RtmpUrl::parse(&format!(
                "rtmp://{origin}/{}/{}",
                self.pull.app, self.pull.name
            ))?,
        };
        let mut client = RtmpClient::connect(&url, &client_config(self.pull.tls.clone())).await?;
        let stream_id = client.create_stream().await?;
        client.play(stream_id, &self.pull.name).await?;
        let interval = Duration::from_millis(self.pull.settings.cluster.lookup_interval_ms);
        let mut builder: Option<FrameBuilder> = None;
        let mut frames = Vec::new();
        loop {
            let event = if builder.is_some() {
                client.next_event().await
            } else {
                // Nothing yet (the origin has no publisher right now): keep checking that
                // Redis still names this origin; the publisher may have moved.
                match tokio::time::timeout(interval, client.next_event()).await {
                    Ok(event) => event,
                    Err(_) => match &self.pull.origin {
                        // A configured origin is waited on: it may get the publisher later.
                        Origin::Url(_) => continue,
                        Origin::Discovery(discovery) => {
                            match discovery.lookup(&self.pull.key).await {
                                Ok(Some(o)) if o == origin => continue,
                                Err(_) => continue,
                                _ => return Ok(PullEnd::Moved),
                            }
                        }
                    },
                }
            };
            let raw = match event {
                Ok(ClientEvent::Media(raw)) => raw,
                Ok(ClientEvent::Data {
                    stream_id,
                    timestamp,
                    values,
                }) => match data_message(stream_id, timestamp, &values) {
                    Some(raw) => raw,
                    None => continue,
                },
                Ok(ClientEvent::Status(s)) if s.code == status::PLAY_UNPUBLISH_NOTIFY => {
                    if builder.is_some() {
                        return Ok(PullEnd::Unpublished);
                    }
                    continue;
                }
                Ok(ClientEvent::Status(s)) if s.is_error() => {
                    return Err(ClientError::Status {
                        code: s.code,
                        description: s.description,
                    })
                }
                Ok(_) => continue,
                Err(e) if e.is_disconnect() => return Ok(PullEnd::Unpublished),
                Err(e) => return Err(e),
            };
            if builder.is_none() {
                builder = Some(self.attach(origin).await?);
            }
            let Some(b) = builder.as_mut() else {
                continue;
            };
            b.frames(raw, &mut frames);
            for frame in frames.drain(..) {
                let ingest = Ingest {
                    session: self.pull.session,
                    frame: Arc::new(frame),
                };
                // Queue without waiting, so that the frames of one read reach the publisher
                // together and each player gets them in one write (awaiting every frame cost
                // a write per frame per player). Lossless like a local publisher: when the
                // mailbox is full, wait; this read slows and TCP slows the origin.
                match ingest.offer(&self.pull.publisher, &self.pull.stats) {
                    Ok(()) => {}
                    Err(SendError::Full(ingest)) => {
                        let wait = ingest
                            .send_when_room(self.pull.publisher.clone(), self.pull.stats.clone());
                        if wait.await.is_err() {
                            return Err(ClientError::Closed);
                        }
                    }
                    Err(SendError::Closed(_)) => return Err(ClientError::Closed),
                }
            }
        }
    }

    /// Become the local publisher actor's source; frames continue its time.
    async fn attach(&self, origin: &str) -> Result<FrameBuilder, ClientError> {
        let info = self
            .pull
            .publisher
            .send(Attach {
                session: self.pull.session,
                connection: 0,
                source: self.source.clone(),
            })
            .await
            .map_err(|_| ClientError::Closed)?;
        let mut builder = FrameBuilder::new(0, self.pull.settings.clone(), self.pull.stats.clone());
        builder.continue_from(info.continue_from);
        Puller::set_origin(&self.pull.stats, Some(origin.to_owned()));
        tracing::info!(stream = %self.pull.key, origin = %origin, "pulling: feeding local players");
        Ok(builder)
    }
}

impl Actor for Puller {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        tracing::info!(stream = %self.pull.key, "pull started: players wait for a stream not published here");
        let task = PullTask {
            pull: self.pull.clone(),
            source: ctx.address().recipient(),
        };
        // Spawned in the actor's context: stopping the actor drops the task and its
        // connection to the origin.
        ctx.spawn(task.run().into_actor(self));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.pull.publisher.do_send(Detach {
            session: self.pull.session,
        });
        Puller::set_origin(&self.pull.stats, None);
        tracing::info!(stream = %self.pull.key, "pull stopped");
    }
}

/// Stop pulling (the registry: no more players, or a local publisher).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopPull;

impl Handler<StopPull> for Puller {
    type Result = ();

    fn handle(&mut self, _: StopPull, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<SourceEvent> for Puller {
    type Result = ();

    /// A local publisher took the resource over, or an operator stopped it.
    fn handle(&mut self, msg: SourceEvent, ctx: &mut Context<Self>) {
        let reason = match msg {
            SourceEvent::Replaced => "a local publisher took the stream over",
            SourceEvent::Stop => "stopped by an operator",
        };
        tracing::info!(stream = %self.pull.key, reason, "pull ended");
        ctx.stop();
    }
}
