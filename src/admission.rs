//! Admission: whether a client may use an app, and publish or play a stream of it. Every
//! output (the RTMP connection actor, the HTTP-FLV player) asks here, so the rules, their log
//! lines and the refusal counts are one piece of code. Not an actor: the answers are values
//! and one future (the authorization callback), which the caller waits on in its own way.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::auth::control::{Control, IpNet};
use crate::auth::{self, Action, AuthDecision, AuthRequest};
use crate::config::Settings;
use crate::names::{self, Esc, Resource};
use crate::stats::{RefusalReason, ServerStats};

/// A refusal: counted under `reason`, `description` is what the client is told.
#[derive(Debug, Clone)]
pub struct Refused {
    pub reason: RefusalReason,
    pub description: String,
}

/// The `on_done` callback to notify when a publish or play ends.
pub struct DoneHook {
    url: String,
    request: AuthRequest,
    timeout: Duration,
}

impl DoneHook {
    /// Fire and forget, on the current runtime.
    pub fn fire(self) {
        actix::spawn(auth::notify_done(self.url, self.request, self.timeout));
    }
}

/// What an authorized publish or play goes on with: the resource (a callback may have
/// redirected it) and the `on_done` hook.
pub struct Granted {
    pub resource: Resource,
    pub done: Option<DoneHook>,
}

/// Split `name?query` and find `key=` in the query.
pub fn split_name(raw: &str) -> (String, Option<String>, Option<String>) {
    let (name, query) = match raw.split_once('?') {
        Some((n, q)) => (n, Some(q.to_owned())),
        None => (raw, None),
    };
    let key = query.as_deref().and_then(query_key);
    (name.to_owned(), query, key)
}

/// The `key=` parameter of a query string.
pub fn query_key(query: &str) -> Option<String> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("key=").map(str::to_owned))
}

/// One client's questions, with what answering them needs.
pub struct Admission<'a> {
    pub settings: &'a Settings,
    pub control: &'a Control,
    pub stats: &'a ServerStats,
    pub connection: u64,
    pub peer: SocketAddr,
}

impl Admission<'_> {
    fn refuse(&self, reason: RefusalReason, description: String) -> Refused {
        self.stats.refusals.count(reason);
        Refused {
            reason,
            description,
        }
    }

    /// May this client use `app` at all: its address is not banned (`auth.banned_ips`,
    /// `/api/v1/bans`), and the app is in `server.apps` (when that is set). Logged and
    /// counted here.
    pub fn app(&self, app: &str) -> Result<(), Refused> {
        let ip = self.peer.ip();
        let banned = self
            .settings
            .auth
            .banned_ips
            .iter()
            .filter_map(|b| IpNet::parse(b).ok())
            .find(|net| net.contains(ip))
            .map(|net| format!("address {net} is banned (auth.banned_ips)"))
            .or_else(|| self.control.ip_ban(ip).map(|b| b.describe()));
        if let Some(description) = banned {
            tracing::warn!(connection = self.connection, peer = %self.peer, reason = %description, "connect refused: banned");
            return Err(self.refuse(RefusalReason::Banned, description));
        }
        let apps = &self.settings.server.apps;
        let (first, _) = names::split_app(app);
        if !apps.is_empty() && !apps.iter().any(|a| a == first) {
            tracing::warn!(connection = self.connection, peer = %self.peer, app = %Esc(first), "connect refused: app not configured (server.apps)");
            return Err(self.refuse(
                RefusalReason::UnknownApp,
                format!("app {first:?} is not configured on this server (server.apps)"),
            ));
        }
        Ok(())
    }

    /// The resource `app` + `name` names ([`Resource::canonical`]); a bad name is counted.
    pub fn resource(&self, app: &str, name: &str) -> Result<Resource, Refused> {
        Resource::canonical(app, name, self.settings.rtmp.max_name_len)
            .map_err(|e| self.refuse(RefusalReason::BadName, e.to_string()))
    }

    /// Whether `resource` is banned for `action` (by stream or key). Logged and counted.
    pub fn stream_ban(
        &self,
        action: Action,
        resource: &Resource,
        stream_key: Option<&str>,
    ) -> Result<(), Refused> {
        let Some(ban) = self.control.stream_ban(action, &resource.key(), stream_key) else {
            return Ok(());
        };
        let description = ban.describe();
        tracing::warn!(connection = self.connection, peer = %self.peer, action = action.as_str(), stream = %Esc(&resource.key()), reason = %description, "refused: banned");
        Err(self.refuse(RefusalReason::Banned, description))
    }

    /// Ask the app's rules (keys, the callback) whether `action` on `resource` is allowed.
    /// The future owns what it needs; its answer goes to [`Admission::decided`].
    pub fn authorize(
        &self,
        action: Action,
        resource: Resource,
        query: Option<String>,
        stream_key: Option<String>,
        tc_url: Option<String>,
    ) -> impl std::future::Future<Output = Decision> + 'static {
        let auth = &self.settings.auth;
        let mut rules = auth.rules(&resource.app);
        // Keys added through the admin API count at once, next to the configured ones.
        self.control.extend_rules(&resource.app, &mut rules);
        let timeout = Duration::from_millis(auth.callback_timeout_ms);
        let request = AuthRequest {
            action,
            app: resource.app.clone(),
            name: resource.name.clone(),
            args: query,
            stream_key,
            peer: self.peer,
            connection: self.connection,
            tc_url,
        };
        async move {
            let decision = auth::authorize(&rules, &request, timeout).await;
            Decision {
                decision,
                request,
                on_done: rules.on_done,
                timeout,
                resource,
            }
        }
    }

    /// What an authorization decided: the (possibly redirected) resource, or the reason it
    /// was denied (logged and counted here). A redirect that is not a valid name of the same
    /// app is a denial.
    pub fn decided(&self, d: Decision) -> Result<Granted, Refused> {
        let Decision {
            decision,
            mut request,
            on_done,
            timeout,
            resource,
        } = d;
        let max_len = self.settings.rtmp.max_name_len;
        let outcome = match decision {
            AuthDecision::Allow { name } if name != resource.name => {
                match resource.renamed(&name, max_len) {
                    Ok(moved) => {
                        tracing::info!(connection = self.connection, from = %Esc(&resource.key()), to = %Esc(&moved.key()), "callback redirected the stream");
                        Ok(moved)
                    }
                    Err(e) => Err(format!("callback redirect to \"{name}\" refused: {e}")),
                }
            }
            AuthDecision::Allow { .. } => Ok(resource.clone()),
            AuthDecision::Deny { reason } => Err(reason),
        };
        match outcome {
            Ok(resource) => {
                request.name = resource.name.clone();
                let done = (!on_done.is_empty()).then_some(DoneHook {
                    url: on_done,
                    request,
                    timeout,
                });
                Ok(Granted { resource, done })
            }
            Err(reason) => {
                self.stats.auth_denied.fetch_add(1, Relaxed);
                tracing::warn!(connection = self.connection, peer = %self.peer, action = request.action.as_str(), stream = %Esc(&resource.key()), reason = %Esc(&reason), "not authorized");
                Err(self.refuse(
                    RefusalReason::Auth,
                    format!("{}: not authorized ({reason})", resource.name),
                ))
            }
        }
    }
}

/// An authorization's answer, for [`Admission::decided`].
pub struct Decision {
    decision: AuthDecision,
    request: AuthRequest,
    on_done: String,
    timeout: Duration,
    resource: Resource,
}
