//! The relays of each resource, as the registry drives them: on publish it advertises the
//! stream (Redis) and starts the configured pushes ([`push_relay`](super::push_relay)); a
//! player waiting for a stream nobody publishes here starts one pull
//! ([`pull_relay`](super::pull_relay)), which feeds the local publisher actor like a
//! publishing stream does and stops when the last local player leaves.

use std::sync::Arc;

use actix::prelude::*;

use super::publisher::Publisher;
use super::pull_relay as pull;
use super::push_relay as push;
use crate::config::Settings;
use crate::relay::Discovery;
use crate::stats::StreamStats;

/// The relays of one resource, kept in its registry entry.
#[derive(Default)]
pub struct EntryRelay {
    pull: Option<Addr<pull::Puller>>,
    pushes: Vec<Addr<push::Pusher>>,
}

/// One resource as the registry knows it.
pub struct Resource<'a> {
    pub key: &'a str,
    pub app: &'a str,
    pub name: &'a str,
    pub publisher: &'a Addr<Publisher>,
    pub stats: Option<Arc<StreamStats>>,
    /// Where to run relay actors (the arbiter of the connection that asked).
    pub arbiter: &'a ArbiterHandle,
}

/// What the registry calls on publish, unpublish, play and leave.
pub struct Relays {
    settings: Arc<Settings>,
    discovery: Option<Arc<Discovery>>,
    tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
}

impl Relays {
    /// Relays for `settings` (`[relay]`), with discovery if `[cluster]` is configured.
    pub fn new(settings: Arc<Settings>, discovery: Option<Arc<Discovery>>) -> Self {
        Relays {
            settings,
            discovery,
            tls: None,
        }
    }

    /// Verify `rtmps://` relay servers against these roots (from `relay.ca_file`).
    pub fn with_tls(mut self, tls: Arc<tokio_rustls::rustls::ClientConfig>) -> Self {
        self.tls = Some(tls);
        self
    }

    /// No discovery and no push targets: every hook is a no-op (the single-instance default).
    pub fn none() -> Self {
        Relays::new(Arc::new(Settings::defaults()), None)
    }

    /// A local publisher started on a resource that had none: stop pulling it, advertise it,
    /// start the configured pushes.
    pub fn published(&self, relay: &mut EntryRelay, r: Resource<'_>) {
        self.stop_pull(relay);
        if let Some(discovery) = &self.discovery {
            let (d, key) = (discovery.clone(), r.key.to_owned());
            actix::spawn(async move { d.register(&key).await });
        }
        if relay.pushes.iter().any(|p| p.connected()) {
            return;
        }
        relay.pushes.clear();
        for target in &self.settings.relay.push {
            if !target.app.is_empty() && target.app != r.app {
                continue;
            }
            let pusher = push::Pusher::new(
                target.url.trim_end_matches('/').to_owned(),
                r.key.to_owned(),
                r.name.to_owned(),
                r.publisher.clone(),
                r.stats.clone(),
            )
            .with_tls(self.tls.clone());
            relay
                .pushes
                .push(push::Pusher::start_in_arbiter(r.arbiter, move |_| pusher));
        }
    }

    /// The local publisher of `key` left: stop advertising and pushing it.
    pub fn unpublished(&self, relay: &mut EntryRelay, key: &str) {
        if let Some(discovery) = &self.discovery {
            let (d, key) = (discovery.clone(), key.to_owned());
            actix::spawn(async move { d.unregister(&key).await });
        }
        for pusher in relay.pushes.drain(..) {
            pusher.do_send(push::StopPush);
        }
    }

    /// The `static` `[[relay.pull]]` streams, as `(app, name)`: pulled from start-up on.
    pub fn static_pulls(&self) -> impl Iterator<Item = (&str, &str)> {
        self.settings
            .relay
            .pull
            .iter()
            .filter(|s| s.mode == crate::config::PullMode::Static)
            .map(|s| (s.app.as_str(), s.name.as_str()))
    }

    /// Players (not relays) wait for a resource nobody publishes here, or it is a static
    /// pull: pull it from its origin (the first `[[relay.pull]]` that serves it, else the
    /// instance Redis names), once, unless already pulling. `session` tags the pulled frames.
    pub fn want_pull(&self, relay: &mut EntryRelay, r: Resource<'_>, session: u64) -> bool {
        let configured = self
            .settings
            .relay
            .pull
            .iter()
            .find(|s| s.serves(r.app, r.name));
        let origin = match (configured, &self.discovery) {
            (Some(source), _) => pull::Origin::Url(source.url.clone()),
            (None, Some(discovery)) => pull::Origin::Discovery(discovery.clone()),
            (None, None) => return false,
        };
        if relay.pull.as_ref().is_some_and(|p| p.connected()) {
            return false;
        }
        let Some(stats) = r.stats else {
            return false;
        };
        let puller = pull::Puller::new(
            r.key.to_owned(),
            r.app.to_owned(),
            r.name.to_owned(),
            session,
            r.publisher.clone(),
            self.settings.clone(),
            stats,
            origin,
        )
        .with_tls(self.tls.clone());
        relay.pull = Some(pull::Puller::start_in_arbiter(r.arbiter, move |_| puller));
        true
    }

    /// Stop pulling (the last player left, or a local publisher arrived).
    pub fn stop_pull(&self, relay: &mut EntryRelay) {
        if let Some(puller) = relay.pull.take() {
            puller.do_send(pull::StopPull);
        }
    }
}
