//! The registry actor: maps resources (app + stream name) to publisher actors. Every publish
//! and play goes through it, so it alone decides publish conflicts and knows when a publisher
//! actor has no more users and can stop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use actix::prelude::*;

use super::publisher::{Publisher, Shutdown, TakeOver};
use super::relays::{EntryRelay, Relays, Resource};
use super::ConnectionId;
use crate::config::{PublishConflict, Settings};
use crate::names::Esc;
use crate::stats::{RefusalReason, ServerStats, StreamStats};

/// The key of a resource: `app/name` (the query string is not part of it).
pub fn resource_key(app: &str, name: &str) -> String {
    format!("{app}/{name}")
}

/// Milliseconds on a process-wide monotonic clock, for "last media" bookkeeping in atomics.
pub fn now_ms() -> u64 {
    crate::stats::now_ms()
}

struct PublisherSession {
    session: u64,
    connection: ConnectionId,
    /// The `key=` query argument it presented, if any.
    stream_key: Option<String>,
    /// [`now_ms`] of its last media message (or of its publish).
    last_media_ms: Arc<AtomicU64>,
}

struct Entry {
    addr: Addr<Publisher>,
    players: usize,
    publisher: Option<PublisherSession>,
    /// Pull and push relays of this resource (scale-out).
    relay: EntryRelay,
    /// A `static` `[[relay.pull]]`: pulled with or without players, never released.
    pinned: bool,
}

/// Maps resources to publisher actors.
pub struct Registry {
    settings: Arc<Settings>,
    stats: Arc<ServerStats>,
    entries: HashMap<String, Entry>,
    next_session: u64,
    relays: Relays,
}

impl Registry {
    pub fn new(settings: Arc<Settings>, stats: Arc<ServerStats>) -> Self {
        Registry {
            settings,
            stats,
            entries: HashMap::new(),
            next_session: 1,
            relays: Relays::none(),
        }
    }

    /// Relay across instances (pull, push, discovery); without it every hook is a no-op.
    pub fn with_relays(mut self, relays: Relays) -> Self {
        self.relays = relays;
        self
    }

    /// Run a relay hook on `key`'s entry, if it exists.
    fn relay_hook(
        &mut self,
        key: &str,
        arbiter: Option<&ArbiterHandle>,
        hook: impl FnOnce(&Relays, &mut EntryRelay, Resource<'_>, u64),
    ) {
        let session = self.next_session;
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        let Some((app, name)) = key.split_once('/') else {
            return;
        };
        let current = Arbiter::current();
        let resource = Resource {
            key,
            app,
            name,
            publisher: &entry.addr,
            stats: self.stats.streams.get(key).map(|s| s.clone()),
            arbiter: arbiter.unwrap_or(&current),
        };
        hook(&self.relays, &mut entry.relay, resource, session);
        self.next_session += 1;
    }

    fn entry(
        &mut self,
        app: &str,
        name: &str,
        arbiter: &ArbiterHandle,
    ) -> Result<&mut Entry, Refusal> {
        let key = resource_key(app, name);
        if !self.entries.contains_key(&key) {
            if self.entries.len() >= self.settings.limits.max_streams {
                return Err(Refusal::TooManyStreams {
                    limit: self.settings.limits.max_streams,
                });
            }
            let stats = Arc::new(StreamStats::new(app, name));
            self.stats.streams.insert(key.clone(), stats.clone());
            let settings = self.settings.clone();
            let server_stats = self.stats.clone();
            let (k, a, n) = (key.clone(), app.to_owned(), name.to_owned());
            let addr = Publisher::start_in_arbiter(arbiter, move |_| {
                Publisher::new(k, a, n, settings, stats, server_stats)
            });
            self.entries.insert(
                key.clone(),
                Entry {
                    addr,
                    players: 0,
                    publisher: None,
                    relay: EntryRelay::default(),
                    pinned: false,
                },
            );
        }
        self.entries.get_mut(&key).ok_or(Refusal::Internal)
    }

    fn release_if_unused(&mut self, key: &str) {
        let unused = self
            .entries
            .get(key)
            .is_some_and(|e| e.players == 0 && e.publisher.is_none() && !e.pinned);
        if unused {
            if let Some(mut entry) = self.entries.remove(key) {
                self.relays.stop_pull(&mut entry.relay);
                self.stats.remove_stream(key);
                entry.addr.do_send(Shutdown);
            }
        }
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    /// Start the static pulls: their streams are kept, players or not.
    fn started(&mut self, _: &mut Context<Self>) {
        let statics: Vec<(String, String)> = self
            .relays
            .static_pulls()
            .map(|(a, n)| (a.to_owned(), n.to_owned()))
            .collect();
        let arbiter = Arbiter::current();
        for (app, name) in statics {
            match self.entry(&app, &name, &arbiter) {
                Ok(entry) => entry.pinned = true,
                Err(refusal) => {
                    tracing::warn!(app = %app, name = %name, %refusal, "static pull not started");
                    continue;
                }
            }
            self.relay_hook(
                &resource_key(&app, &name),
                None,
                |relays, relay, r, session| {
                    relays.want_pull(relay, r, session);
                },
            );
        }
    }
}

/// Why a publish or play was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("stream is already being published")]
    InUse,
    #[error("server has reached its limit of {limit} streams")]
    TooManyStreams { limit: usize },
    #[error("stream has reached its limit of {limit} subscribers")]
    TooManySubscribers { limit: usize },
    #[error("registry is unavailable")]
    Internal,
}

impl Refusal {
    /// The `reflector_refusals_total` reason it counts as (none for an internal failure).
    pub fn reason(&self) -> Option<RefusalReason> {
        match self {
            Refusal::InUse => Some(RefusalReason::Conflict),
            Refusal::TooManyStreams { .. } | Refusal::TooManySubscribers { .. } => {
                Some(RefusalReason::Limits)
            }
            Refusal::Internal => None,
        }
    }
}

/// A grant to publish: the publisher actor to feed and the session id to tag frames with.
#[derive(Debug, Clone)]
pub struct PublishGrant {
    pub publisher: Addr<Publisher>,
    pub session: u64,
    pub last_media_ms: Arc<AtomicU64>,
    /// The session this one took over from, if any.
    pub took_over: Option<ConnectionId>,
}

/// Ask to publish `app/name`.
#[derive(Message)]
#[rtype(result = "Result<PublishGrant, Refusal>")]
pub struct Publish {
    pub app: String,
    pub name: String,
    pub stream_key: Option<String>,
    pub connection: ConnectionId,
    pub arbiter: ArbiterHandle,
}

impl Handler<Publish> for Registry {
    type Result = Result<PublishGrant, Refusal>;

    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) -> Self::Result {
        self.stats.registry_handled.fetch_add(1, Relaxed);
        let granted = self.publish(msg);
        self.count_refusal(&granted);
        granted
    }
}

impl Registry {
    /// Count a publish or play refusal by reason (`reflector_refusals_total`).
    fn count_refusal<T>(&self, result: &Result<T, Refusal>) {
        if let Some(reason) = result.as_ref().err().and_then(Refusal::reason) {
            self.stats.refusals.count(reason);
        }
    }

    fn publish(&mut self, msg: Publish) -> Result<PublishGrant, Refusal> {
        let policy = self.settings.live.publish_conflict;
        let stale_ms = self.settings.live.stale_publisher_ms;
        let session = self.next_session;
        let entry = self.entry(&msg.app, &msg.name, &msg.arbiter)?;
        let mut took_over = None;
        if let Some(current) = &entry.publisher {
            let idle = now_ms().saturating_sub(current.last_media_ms.load(Relaxed));
            let same_key = current.stream_key.is_some() && current.stream_key == msg.stream_key;
            let allowed = match policy {
                PublishConflict::Reject => false,
                PublishConflict::Takeover => true,
                PublishConflict::Protect => same_key || idle >= stale_ms,
            };
            if !allowed {
                tracing::warn!(
                    connection = msg.connection,
                    stream = %Esc(&resource_key(&msg.app, &msg.name)),
                    current = current.connection,
                    idle_ms = idle,
                    "publish refused: stream in use"
                );
                return Err(Refusal::InUse);
            }
            tracing::info!(
                connection = msg.connection,
                stream = %Esc(&resource_key(&msg.app, &msg.name)),
                previous = current.connection,
                idle_ms = idle,
                same_key,
                "publisher takes over"
            );
            took_over = Some(current.connection);
        }
        let last_media_ms = Arc::new(AtomicU64::new(now_ms()));
        let newly_published = entry.publisher.is_none();
        entry.publisher = Some(PublisherSession {
            session,
            connection: msg.connection,
            stream_key: msg.stream_key,
            last_media_ms: last_media_ms.clone(),
        });
        let publisher = entry.addr.clone();
        // On every grant, not only on a takeover: the publisher actor then knows the newest
        // grant before any source's Attach can reach it, so no arrival order undoes it.
        publisher.do_send(TakeOver { session });
        self.next_session += 1;
        if newly_published {
            let key = resource_key(&msg.app, &msg.name);
            self.relay_hook(&key, Some(&msg.arbiter), |relays, relay, r, _| {
                relays.published(relay, r)
            });
        }
        Ok(PublishGrant {
            publisher,
            session,
            last_media_ms,
            took_over,
        })
    }
}

/// A publishing session ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unpublish {
    pub app: String,
    pub name: String,
    pub session: u64,
}

impl Handler<Unpublish> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Unpublish, _: &mut Context<Self>) {
        self.stats.registry_handled.fetch_add(1, Relaxed);
        let key = resource_key(&msg.app, &msg.name);
        if let Some(entry) = self.entries.get_mut(&key) {
            if entry
                .publisher
                .as_ref()
                .is_some_and(|p| p.session == msg.session)
            {
                entry.publisher = None;
                let wanted = entry.players > 0 || entry.pinned;
                self.relays.unpublished(&mut entry.relay, &key);
                if wanted {
                    // Players stay: the stream may come back on another instance.
                    self.relay_hook(&key, None, |relays, relay, r, session| {
                        relays.want_pull(relay, r, session);
                    });
                }
            }
        }
        self.release_if_unused(&key);
    }
}

/// Ask to play `app/name`: the publisher actor to subscribe to (created if the stream is not
/// published yet, so the player waits for it).
#[derive(Message)]
#[rtype(result = "Result<Addr<Publisher>, Refusal>")]
pub struct Play {
    pub app: String,
    pub name: String,
    pub arbiter: ArbiterHandle,
    /// The player is another instance's pull relay: never pull on its behalf (no loops).
    pub relay: bool,
}

impl Handler<Play> for Registry {
    type Result = Result<Addr<Publisher>, Refusal>;

    fn handle(&mut self, msg: Play, _: &mut Context<Self>) -> Self::Result {
        self.stats.registry_handled.fetch_add(1, Relaxed);
        let granted = self.play(msg);
        self.count_refusal(&granted);
        granted
    }
}

impl Registry {
    fn play(&mut self, msg: Play) -> Result<Addr<Publisher>, Refusal> {
        let limit = self.settings.limits.max_subscribers_per_stream;
        let entry = self.entry(&msg.app, &msg.name, &msg.arbiter)?;
        if entry.players >= limit {
            return Err(Refusal::TooManySubscribers { limit });
        }
        entry.players += 1;
        let addr = entry.addr.clone();
        if !msg.relay && entry.publisher.is_none() {
            let key = resource_key(&msg.app, &msg.name);
            self.relay_hook(&key, Some(&msg.arbiter), |relays, relay, r, session| {
                relays.want_pull(relay, r, session);
            });
        }
        Ok(addr)
    }
}

/// A player granted by [`Play`] left.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub app: String,
    pub name: String,
}

impl Handler<Leave> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) {
        self.stats.registry_handled.fetch_add(1, Relaxed);
        let key = resource_key(&msg.app, &msg.name);
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.players = entry.players.saturating_sub(1);
            if entry.players == 0 && !entry.pinned {
                self.relays.stop_pull(&mut entry.relay);
            }
        }
        self.release_if_unused(&key);
    }
}

/// Look a resource up (admin: stop a publisher).
#[derive(Message)]
#[rtype(result = "Option<(Addr<Publisher>, Option<ConnectionId>)>")]
pub struct Lookup {
    pub key: String,
}

impl Handler<Lookup> for Registry {
    type Result = Option<(Addr<Publisher>, Option<ConnectionId>)>;

    fn handle(&mut self, msg: Lookup, _: &mut Context<Self>) -> Self::Result {
        self.stats.registry_handled.fetch_add(1, Relaxed);
        self.entries
            .get(&msg.key)
            .map(|e| (e.addr.clone(), e.publisher.as_ref().map(|p| p.connection)))
    }
}

/// The current publisher of a resource: its connection and the `?key=` it presented (the
/// admin API bans by it when it stops the publisher).
#[derive(Message)]
#[rtype(result = "Option<(ConnectionId, Option<String>)>")]
pub struct PublisherOf {
    pub key: String,
}

impl Handler<PublisherOf> for Registry {
    type Result = Option<(ConnectionId, Option<String>)>;

    fn handle(&mut self, msg: PublisherOf, _: &mut Context<Self>) -> Self::Result {
        self.stats.registry_handled.fetch_add(1, Relaxed);
        let publisher = self.entries.get(&msg.key)?.publisher.as_ref()?;
        Some((publisher.connection, publisher.stream_key.clone()))
    }
}

/// New settings after a reload (SIGHUP): limits apply to new streams and subscribers.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reload(pub Arc<Settings>);

impl Handler<Reload> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Reload, _: &mut Context<Self>) {
        self.settings = msg.0;
    }
}
