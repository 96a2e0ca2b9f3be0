//! Scale-out across instances: relays on the project's own RTMP client, and discovery through
//! Redis. See docs/scale-out.md.
//!
//! - [`discovery`]: which instance originates which stream (Redis keys with a TTL).
//! - [`pull`]: an instance asked to play a stream nobody publishes here pulls it once from
//!   its origin (a `[[relay.pull]]` server, else the instance Redis names) and feeds the local publisher actor like a publishing stream does (Attach, then
//!   Ingest of frames made by the same [`FrameBuilder`](crate::actors::stream::FrameBuilder));
//!   the pull stops when the last local player leaves.
//! - [`push`]: forwards streams published here to configured upstream servers.
//!
//! The registry drives all of it through [`Relays`], keeping one [`EntryRelay`] per resource.
//! Loops are impossible: only origins advertise in Redis (a pulled stream never does), a
//! relay connection identifies itself by its `flashVer` ([`RELAY_FLASH_VER`]), and a play from
//! a relay never starts a pull.

pub mod discovery;
pub mod pull;
pub mod push;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;

use crate::actors::publisher::Publisher;
use crate::client::ClientConfig;
use crate::config::Settings;
use crate::protocol::amf0::{self, Amf0Value};
use crate::protocol::message::{type_id, RawMessage};
use crate::stats::StreamStats;

pub use discovery::{Discovery, DiscoveryError};

/// The `flashVer` relay connections announce in `connect`: the server recognises relays by it
/// ([`is_relay`]) and never pulls on their behalf.
pub const RELAY_FLASH_VER: &str = "FMLE/3.0 (compatible; reflector-relay/1)";

/// Whether a connection's `flashVer` is a relay's.
pub fn is_relay(flash_ver: &str) -> bool {
    flash_ver.contains("reflector-relay/")
}

/// How relays connect: announced as relays, Enhanced RTMP capable (so the origin forwards
/// HEVC, AV1, Opus... untouched), short timeouts (a dead origin is found quickly).
/// `tls`: the roots `rtmps://` servers are verified against (`None`: the public ones).
pub fn client_config(tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>) -> ClientConfig {
    ClientConfig {
        tls,
        flash_ver: RELAY_FLASH_VER.to_owned(),
        extra_connect_properties: vec![(
            "fourCcList".to_owned(),
            Amf0Value::StrictArray(vec![Amf0Value::String("*".into())]),
        )],
        timeout: Duration::from_secs(3),
        buffer_ms: 0,
        ..ClientConfig::default()
    }
}

/// A data message as a source would publish it: `onMetaData` gets its `@setDataFrame` back
/// (players receive it stripped), so the frame builder caches it for late joiners as it does
/// for a local publisher. `None` for what the serving side adds by itself
/// (`|RtmpSampleAccess`).
pub fn data_message(stream_id: u32, timestamp: u32, values: &[Amf0Value]) -> Option<RawMessage> {
    let first = match values.first() {
        Some(Amf0Value::String(s)) => s.as_str(),
        _ => "",
    };
    if first == "|RtmpSampleAccess" {
        return None;
    }
    let mut payload = Vec::new();
    if first == "onMetaData" {
        amf0::encode_all(&[Amf0Value::String("@setDataFrame".into())], &mut payload).ok()?;
    }
    amf0::encode_all(values, &mut payload).ok()?;
    Some(RawMessage {
        type_id: type_id::DATA_AMF0,
        stream_id,
        timestamp,
        payload: Bytes::from(payload),
    })
}

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
