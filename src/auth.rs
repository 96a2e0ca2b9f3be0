//! Who may publish, play and use shared objects: per-app rules, each open, by stream key, by an HTTP callback in
//! the manner of nginx-rtmp's `on_publish` / `on_play` / `on_done`, or denied.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod control;

/// How one action (publish or play) is authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Anyone.
    Open,
    /// Only with a stream key from the list (`rtmp://host/app/name?key=KEY`).
    Key,
    /// Ask the HTTP callback: 2xx allows, 3xx with `Location` allows under another name,
    /// anything else, an error or a timeout denies.
    Callback,
    /// No one.
    Deny,
}

/// How shared objects (RTMP 1.0 §7.1.3) are authorized. A client presents its key in the
/// connect URL's query (`rtmp://host/app?key=KEY`: the `app` or, failing that, the `tcUrl` of
/// `connect`), since shared object messages carry no query of their own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SharedObjectMode {
    /// `open` when the app lets anyone publish and play, `key` otherwise: an app protected
    /// for media is protected for shared objects too.
    #[default]
    Auto,
    Open,
    /// With a key from `shared_object_keys`, `publish_keys` or `play_keys`.
    Key,
    /// Ask `on_shared_object` (`call=shared_object`, `name` = the object); a 3xx is refused
    /// (an object cannot be renamed).
    Callback,
    Deny,
}

/// The rules of one app (or the defaults for apps without their own).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthRules {
    pub publish: AuthMode,
    pub play: AuthMode,
    #[serde(default)]
    pub publish_keys: Vec<String>,
    #[serde(default)]
    pub play_keys: Vec<String>,
    #[serde(default)]
    pub on_publish: String,
    #[serde(default)]
    pub on_play: String,
    #[serde(default)]
    pub on_done: String,
    #[serde(default)]
    pub shared_objects: SharedObjectMode,
    #[serde(default)]
    pub shared_object_keys: Vec<String>,
    #[serde(default)]
    pub on_shared_object: String,
}

impl AuthRules {
    /// The shared object mode with `auto` resolved.
    pub fn shared_object_mode(&self) -> AuthMode {
        match self.shared_objects {
            SharedObjectMode::Auto
                if self.publish == AuthMode::Open && self.play == AuthMode::Open =>
            {
                AuthMode::Open
            }
            SharedObjectMode::Auto | SharedObjectMode::Key => AuthMode::Key,
            SharedObjectMode::Open => AuthMode::Open,
            SharedObjectMode::Callback => AuthMode::Callback,
            SharedObjectMode::Deny => AuthMode::Deny,
        }
    }

    /// Whether `key` opens this app's shared objects: its own keys, and whoever may publish
    /// or play here with a key.
    fn shared_object_key(&self, key: &str) -> bool {
        self.shared_object_keys
            .iter()
            .chain(&self.publish_keys)
            .chain(&self.play_keys)
            .any(|k| k == key)
    }
}

/// The `[auth]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub publish: AuthMode,
    pub play: AuthMode,
    pub publish_keys: Vec<String>,
    pub play_keys: Vec<String>,
    pub on_publish: String,
    pub on_play: String,
    pub on_done: String,
    pub shared_objects: SharedObjectMode,
    pub shared_object_keys: Vec<String>,
    pub on_shared_object: String,
    pub callback_timeout_ms: u64,
    /// Where keys and bans added through the admin API are kept ([`control`]); empty = in
    /// memory only.
    #[serde(default)]
    pub keys_file: String,
    /// Addresses and CIDR blocks refused at `connect`, for good (nginx-rtmp's `deny`).
    #[serde(default)]
    pub banned_ips: Vec<String>,
    /// Per-app rules, replacing the defaults above for that app.
    #[serde(default)]
    pub apps: HashMap<String, AuthRules>,
}

impl AuthSettings {
    /// The rules that apply to `app`: a canonical app, one path segment
    /// ([`crate::names::Resource`]), never the raw `connect` app.
    pub fn rules(&self, app: &str) -> AuthRules {
        self.apps.get(app).cloned().unwrap_or_else(|| AuthRules {
            publish: self.publish,
            play: self.play,
            publish_keys: self.publish_keys.clone(),
            play_keys: self.play_keys.clone(),
            on_publish: self.on_publish.clone(),
            on_play: self.on_play.clone(),
            on_done: self.on_done.clone(),
            shared_objects: self.shared_objects,
            shared_object_keys: self.shared_object_keys.clone(),
            on_shared_object: self.on_shared_object.clone(),
        })
    }

    /// Every callback mode has its URL (checked at start-up and on reload).
    pub fn validate(&self) -> Result<(), String> {
        // Rules apply to an app, the first segment of a stream's path: a key with '/' (or
        // anything else no app can be) would never match and leave its streams unprotected.
        for app in self.apps.keys() {
            if app.contains('/') {
                return Err(format!(
                    "[auth.apps.\"{app}\"]: an app is one path segment; rules cover every stream under it"
                ));
            }
            crate::names::check("app", app, usize::MAX)
                .map_err(|e| format!("[auth.apps.\"{app}\"]: {e}"))?;
        }
        let mut all: Vec<(&str, AuthRules)> = vec![("[auth]", self.rules("\u{0}"))];
        all.extend(self.apps.iter().map(|(k, v)| (k.as_str(), v.clone())));
        for (app, rules) in all {
            for (mode, url, what) in [
                (rules.publish, &rules.on_publish, "on_publish"),
                (rules.play, &rules.on_play, "on_play"),
                (
                    rules.shared_object_mode(),
                    &rules.on_shared_object,
                    "on_shared_object",
                ),
            ] {
                if mode == AuthMode::Callback
                    && !url.starts_with("http://")
                    && !url.starts_with("https://")
                {
                    return Err(format!(
                        "{app}: callback mode needs an http:// URL in {what}"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Publish, play, or use a shared object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Publish,
    Play,
    /// Use (connect to) a shared object; `name` is the object's.
    SharedObject,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Publish => "publish",
            Action::Play => "play",
            Action::SharedObject => "shared_object",
        }
    }
}

/// What is asked.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    pub action: Action,
    pub app: String,
    pub name: String,
    /// The query string after `?` in the stream name (for a shared object: in the connect
    /// URL), if any.
    pub args: Option<String>,
    pub stream_key: Option<String>,
    pub peer: SocketAddr,
    pub connection: u64,
    pub tc_url: Option<String>,
}

/// The answer: allowed (possibly under another stream name), or denied with a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthDecision {
    Allow { name: String },
    Deny { reason: String },
}

fn form(request: &AuthRequest, call: &str) -> Vec<(&'static str, String)> {
    vec![
        ("call", call.to_owned()),
        ("app", request.app.clone()),
        ("name", request.name.clone()),
        ("args", request.args.clone().unwrap_or_default()),
        ("addr", request.peer.ip().to_string()),
        ("clientid", request.connection.to_string()),
        ("tcurl", request.tc_url.clone().unwrap_or_default()),
    ]
}

fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        // A 3xx is the callback's answer (a new name), not something to follow.
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// Decide `request` under `rules`.
pub async fn authorize(
    rules: &AuthRules,
    request: &AuthRequest,
    timeout: Duration,
) -> AuthDecision {
    let (mode, keys, url) = match request.action {
        Action::Publish => (rules.publish, &rules.publish_keys, &rules.on_publish),
        Action::Play => (rules.play, &rules.play_keys, &rules.on_play),
        Action::SharedObject => (
            rules.shared_object_mode(),
            &rules.shared_object_keys,
            &rules.on_shared_object,
        ),
    };
    let allow = || AuthDecision::Allow {
        name: request.name.clone(),
    };
    match mode {
        AuthMode::Open => allow(),
        AuthMode::Deny => AuthDecision::Deny {
            reason: format!("{} is not allowed on this app", request.action.as_str()),
        },
        AuthMode::Key => match &request.stream_key {
            Some(key) if keys.iter().any(|k| k == key) => allow(),
            Some(key) if request.action == Action::SharedObject && rules.shared_object_key(key) => {
                allow()
            }
            Some(_) => AuthDecision::Deny {
                reason: "wrong stream key".into(),
            },
            None => AuthDecision::Deny {
                reason: "a stream key is required (?key=...)".into(),
            },
        },
        AuthMode::Callback => callback(url, request, timeout).await,
    }
}

async fn callback(url: &str, request: &AuthRequest, timeout: Duration) -> AuthDecision {
    let client = match client(timeout) {
        Ok(c) => c,
        Err(e) => {
            return AuthDecision::Deny {
                reason: format!("callback client: {e}"),
            }
        }
    };
    let response = client
        .post(url)
        .form(&form(request, request.action.as_str()))
        .send()
        .await;
    match response {
        Ok(r) if r.status().is_success() => AuthDecision::Allow {
            name: request.name.clone(),
        },
        Ok(r) if r.status().is_redirection() && request.action == Action::SharedObject => {
            AuthDecision::Deny {
                reason: format!(
                    "callback answered {}: a shared object cannot be renamed",
                    r.status()
                ),
            }
        }
        Ok(r) if r.status().is_redirection() => {
            let location = r
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().trim_start_matches('/').to_owned())
                .filter(|v| !v.is_empty());
            match location {
                Some(name) => AuthDecision::Allow { name },
                None => AuthDecision::Deny {
                    reason: format!("callback answered {} without a Location", r.status()),
                },
            }
        }
        Ok(r) => AuthDecision::Deny {
            reason: format!("callback answered {}", r.status()),
        },
        Err(e) if e.is_timeout() => AuthDecision::Deny {
            reason: format!("callback timed out after {timeout:?}"),
        },
        Err(e) => AuthDecision::Deny {
            reason: format!("callback failed: {e}"),
        },
    }
}

/// Tell the `on_done` callback that a publish or play ended (fire and forget).
pub async fn notify_done(url: String, request: AuthRequest, timeout: Duration) {
    if url.is_empty() {
        return;
    }
    let call = match request.action {
        Action::Publish => "publish_done",
        Action::Play => "play_done",
        // A shared object has no end to report.
        Action::SharedObject => return,
    };
    let Ok(client) = client(timeout) else { return };
    if let Err(e) = client.post(&url).form(&form(&request, call)).send().await {
        tracing::warn!(connection = request.connection, error = %e, "on_done callback failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(toml: &str) -> AuthSettings {
        let defaults = "publish = \"open\"\nplay = \"open\"\npublish_keys = []\nplay_keys = []\n\
            on_publish = \"\"\non_play = \"\"\non_done = \"\"\nshared_objects = \"auto\"\n\
            shared_object_keys = []\non_shared_object = \"\"\ncallback_timeout_ms = 1000\n";
        toml::from_str(&format!("{defaults}{toml}")).expect("auth settings")
    }

    async fn so(rules: &AuthRules, key: Option<&str>) -> bool {
        let request = AuthRequest {
            action: Action::SharedObject,
            app: "a".into(),
            name: "room".into(),
            args: None,
            stream_key: key.map(str::to_owned),
            peer: "127.0.0.1:1".parse().expect("addr"),
            connection: 1,
            tc_url: None,
        };
        matches!(
            authorize(rules, &request, Duration::from_secs(1)).await,
            AuthDecision::Allow { .. }
        )
    }

    #[actix_rt::test]
    async fn shared_objects_follow_the_app_unless_told() {
        let s = settings(
            "[apps.live]\npublish = \"key\"\nplay = \"open\"\npublish_keys = [\"p\"]\n\
             [apps.chat]\npublish = \"key\"\nplay = \"key\"\nshared_objects = \"open\"\n\
             [apps.so]\npublish = \"open\"\nplay = \"open\"\nshared_objects = \"key\"\n\
             shared_object_keys = [\"s\"]\nplay_keys = [\"v\"]\n\
             [apps.none]\npublish = \"open\"\nplay = \"open\"\nshared_objects = \"deny\"\n",
        );
        // Open app: open. Key-protected app: a key, the publish key opens it.
        assert!(so(&s.rules("other"), None).await);
        let live = s.rules("live");
        assert_eq!(live.shared_object_mode(), AuthMode::Key);
        assert!(!so(&live, None).await);
        assert!(!so(&live, Some("x")).await);
        assert!(so(&live, Some("p")).await);
        assert!(so(&s.rules("chat"), None).await);
        let keyed = s.rules("so");
        assert!(so(&keyed, Some("s")).await && so(&keyed, Some("v")).await);
        assert!(!so(&keyed, None).await);
        assert!(!so(&s.rules("none"), Some("s")).await);
        // A callback mode needs its URL.
        let bad = settings(
            "[apps.cb]\npublish = \"open\"\nplay = \"open\"\nshared_objects = \"callback\"\n",
        );
        assert!(bad.validate().unwrap_err().contains("on_shared_object"));
    }

    fn settings_for_apps(apps: &[&str]) -> AuthSettings {
        let mut toml = String::new();
        for app in apps {
            toml.push_str(&format!(
                "[apps.{app:?}]\npublish = \"key\"\nplay = \"open\"\npublish_keys = [\"k\"]\n"
            ));
        }
        settings(&toml)
    }

    #[test]
    fn app_rules_are_keyed_by_one_path_segment() {
        assert!(settings_for_apps(&["live", "priv"]).validate().is_ok());
        for bad in ["live/x", "..", "a%2Fb", "a b", ""] {
            let err = settings_for_apps(&[bad]).validate().expect_err(bad);
            assert!(err.contains("auth.apps"), "{err}");
        }
        let s = settings_for_apps(&["live"]);
        assert_eq!(s.rules("live").publish, AuthMode::Key);
        assert_eq!(s.rules("live2").publish, AuthMode::Open);
    }
}
