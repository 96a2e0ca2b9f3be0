//! Keys and bans changed at run time through the admin API (issue #19), kept in one JSON file
//! (`auth.keys_file`) so that they survive a restart and a SIGHUP.
//!
//! - **Keys** add to the configured `publish_keys` / `play_keys` of an app: the file never
//!   replaces what the configuration says, and revoking an API key never touches a
//!   configured one. They count where the app's mode is `key`.
//! - **Bans** refuse a client address or CIDR block (at `connect`), a stream key (`?key=`, at
//!   publish and play) or a stream (`app/name`, at publish), until they expire or are lifted.
//!
//! Every change is written to a temporary file in the same directory, synced, then renamed
//! over the file (atomic on POSIX): a crash leaves the old file or the new one, never half.
//! The file is mode 0600: it holds secrets.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{Action, AuthRules};

/// Why a key or ban change was refused, or the file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{0}")]
    Invalid(String),
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: String },
    #[error("not saved to {path}: {error}")]
    Write { path: String, error: String },
}

/// Milliseconds since the Unix epoch: expiries must survive a restart.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One address or a CIDR block, IPv4 or IPv6. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`)
/// is the IPv4 address, on both sides of a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    }
}

impl IpNet {
    /// `a.b.c.d`, `a.b.c.d/n`, `v6`, `v6/n`; host bits after the prefix are cleared.
    pub fn parse(text: &str) -> Result<IpNet, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(format!("{text:?}: the prefix length must be 0..={max}")),
            },
        };
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix - 96),
                None => (addr, prefix),
            },
            _ => (addr, prefix),
        };
        Ok(IpNet {
            addr: masked(addr, prefix),
            prefix,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        ip.is_ipv4() == self.addr.is_ipv4() && masked(ip, self.prefix) == self.addr
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl TryFrom<String> for IpNet {
    type Error = String;
    fn try_from(text: String) -> Result<IpNet, String> {
        IpNet::parse(&text)
    }
}

impl From<IpNet> for String {
    fn from(net: IpNet) -> String {
        net.to_string()
    }
}

/// What an API key opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyAction {
    Publish,
    Play,
}

/// A key added through the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub app: String,
    pub action: KeyAction,
    pub key: String,
    #[serde(default)]
    pub note: String,
    pub created_ms: u64,
}

/// What a ban refuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BanTarget {
    /// Connections from these addresses, at `connect`.
    Ip(IpNet),
    /// Publish and play presenting this `?key=`.
    Key(String),
    /// Publishing this `app/name`.
    Stream(String),
}

impl fmt::Display for BanTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BanTarget::Ip(net) => write!(f, "address {net}"),
            BanTarget::Key(_) => write!(f, "stream key"),
            BanTarget::Stream(s) => write!(f, "stream {s:?}"),
        }
    }
}

/// One ban.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    pub id: u64,
    pub target: BanTarget,
    /// Unix milliseconds; `None` = until lifted.
    pub expires_ms: Option<u64>,
    #[serde(default)]
    pub reason: String,
    pub created_ms: u64,
}

impl Ban {
    fn live(&self, now: u64) -> bool {
        self.expires_ms.is_none_or(|e| e > now)
    }

    /// What a refused client is told: the target and for how long.
    pub fn describe(&self) -> String {
        let until = match self.expires_ms {
            Some(e) => format!("for {} more s", e.saturating_sub(unix_ms()).div_ceil(1000)),
            None => "until lifted".to_owned(),
        };
        let reason = if self.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", self.reason)
        };
        format!(
            "{} is banned {until} (ban {}){reason}",
            self.target, self.id
        )
    }
}

/// The file's contents.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    #[serde(default)]
    keys: Vec<ApiKey>,
    #[serde(default)]
    bans: Vec<Ban>,
    #[serde(default)]
    next_ban_id: u64,
}

/// A stream key as it can be presented in `?key=`: the query is not percent-decoded, so
/// only URL-unreserved characters (RFC 3986 §2.3) can ever match.
pub fn check_key(key: &str) -> Result<(), ControlError> {
    if key.is_empty() || key.len() > 256 {
        return Err(ControlError::Invalid("a key is 1 to 256 characters".into()));
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    {
        return Err(ControlError::Invalid(
            "a key may hold only letters, digits and - . _ ~ (it travels unescaped in ?key=)"
                .into(),
        ));
    }
    Ok(())
}

/// An app as keys are filed under: one path segment ([`crate::names::split_app`]).
pub fn check_app(app: &str) -> Result<(), ControlError> {
    if app.contains('/') {
        return Err(ControlError::Invalid(format!(
            "app {app:?}: an app is one path segment"
        )));
    }
    crate::names::check("app", app, 256).map_err(|e| ControlError::Invalid(e.to_string()))
}

/// The run-time keys and bans, shared by the connections (reads) and the admin API (writes).
#[derive(Debug)]
pub struct Control {
    path: RwLock<Option<PathBuf>>,
    state: RwLock<State>,
    /// Serializes writers so that each file write holds every earlier change.
    writer: Mutex<()>,
}

fn read_state(path: &Path) -> Result<State, ControlError> {
    let error = |e: String| ControlError::Read {
        path: path.display().to_string(),
        error: e,
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
        Err(e) => return Err(error(e.to_string())),
    };
    let mut state: State = serde_json::from_slice(&bytes).map_err(|e| error(e.to_string()))?;
    for key in &state.keys {
        check_app(&key.app)
            .and_then(|()| check_key(&key.key))
            .map_err(|e| error(e.to_string()))?;
    }
    let now = unix_ms();
    state.bans.retain(|b| b.live(now));
    let top = state.bans.iter().map(|b| b.id).max().unwrap_or(0);
    state.next_ban_id = state.next_ban_id.max(top);
    Ok(state)
}

fn write_state(path: &Path, state: &State) -> Result<(), ControlError> {
    use std::io::Write;
    let error = |e: std::io::Error| ControlError::Write {
        path: path.display().to_string(),
        error: e.to_string(),
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(error)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        ".{}.tmp.{}",
        name.unwrap_or_default(),
        std::process::id()
    ));
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| ControlError::Write {
        path: path.display().to_string(),
        error: e.to_string(),
    })?;
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename itself is durable once the directory is synced.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(error)
}

impl Control {
    /// Load `path` (a missing file is an empty one); `""` keeps everything in memory only,
    /// with a warning. An unreadable or corrupt file is an error: starting without the bans
    /// it holds would let banned clients in.
    pub fn open(path: &str) -> Result<Control, ControlError> {
        let path = (!path.trim().is_empty()).then(|| PathBuf::from(path));
        let state = match &path {
            Some(p) => read_state(p)?,
            None => {
                tracing::warn!("auth.keys_file is empty: keys and bans added through the admin API are kept in memory only and lost at restart");
                State::default()
            }
        };
        if let Some(p) = &path {
            tracing::info!(file = %p.display(), keys = state.keys.len(), bans = state.bans.len(), "run-time keys and bans loaded");
        }
        Ok(Control {
            path: RwLock::new(path),
            state: RwLock::new(state),
            writer: Mutex::new(()),
        })
    }

    /// In memory only, empty (tests, tools).
    pub fn in_memory() -> Control {
        Control {
            path: RwLock::new(None),
            state: RwLock::new(State::default()),
            writer: Mutex::new(()),
        }
    }

    /// SIGHUP: read `path` again (an operator may have edited it, or the setting moved it);
    /// on error the running keys and bans stay and the error is logged.
    pub fn reload(&self, path: &str) {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let next = (!path.trim().is_empty()).then(|| PathBuf::from(path));
        let Some(p) = &next else {
            if self.path().is_some() {
                tracing::warn!("reload: auth.keys_file is now empty: keys and bans are kept in memory only from now on");
            }
            *self.path.write().unwrap_or_else(|e| e.into_inner()) = None;
            return;
        };
        match read_state(p) {
            Ok(state) => {
                tracing::info!(file = %p.display(), keys = state.keys.len(), bans = state.bans.len(), "reload: run-time keys and bans read again");
                *self.state.write().unwrap_or_else(|e| e.into_inner()) = state;
                *self.path.write().unwrap_or_else(|e| e.into_inner()) = next;
            }
            Err(e) => {
                tracing::error!(error = %e, "reload: keys file not read; keeping the running keys and bans")
            }
        }
    }

    /// Where changes are saved, if anywhere.
    pub fn path(&self) -> Option<PathBuf> {
        self.path.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.state.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Apply `f` to a copy, save it (expired bans dropped), then make it current: a change
    /// that cannot be saved is not made.
    fn update<R>(
        &self,
        f: impl FnOnce(&mut State) -> Result<R, ControlError>,
    ) -> Result<R, ControlError> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = self.read(State::clone);
        let result = f(&mut next)?;
        let now = unix_ms();
        next.bans.retain(|b| b.live(now));
        if let Some(path) = self.path() {
            write_state(&path, &next)?;
        }
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = next;
        Ok(result)
    }

    /// Add a key; `Ok((key, false))` when it was already there.
    pub fn add_key(
        &self,
        app: &str,
        action: KeyAction,
        key: &str,
        note: &str,
    ) -> Result<(ApiKey, bool), ControlError> {
        check_app(app)?;
        check_key(key)?;
        if note.len() > 1024 {
            return Err(ControlError::Invalid("a note is at most 1024 bytes".into()));
        }
        self.update(|s| {
            if let Some(k) = s
                .keys
                .iter()
                .find(|k| k.app == app && k.action == action && k.key == key)
            {
                return Ok((k.clone(), false));
            }
            let k = ApiKey {
                app: app.to_owned(),
                action,
                key: key.to_owned(),
                note: note.to_owned(),
                created_ms: unix_ms(),
            };
            s.keys.push(k.clone());
            Ok((k, true))
        })
    }

    /// Remove an API key; `false` when there was none.
    pub fn revoke_key(
        &self,
        app: &str,
        action: KeyAction,
        key: &str,
    ) -> Result<bool, ControlError> {
        self.update(|s| {
            let before = s.keys.len();
            s.keys
                .retain(|k| !(k.app == app && k.action == action && k.key == key));
            Ok(s.keys.len() != before)
        })
    }

    pub fn keys(&self) -> Vec<ApiKey> {
        self.read(|s| s.keys.clone())
    }

    /// Add this app's API keys to its configured rules.
    pub fn extend_rules(&self, app: &str, rules: &mut AuthRules) {
        self.read(|s| {
            for k in s.keys.iter().filter(|k| k.app == app) {
                match k.action {
                    KeyAction::Publish => rules.publish_keys.push(k.key.clone()),
                    KeyAction::Play => rules.play_keys.push(k.key.clone()),
                }
            }
        });
    }

    /// Ban `target` until `expires_ms` (Unix ms; `None` = until lifted).
    pub fn ban(
        &self,
        target: BanTarget,
        expires_ms: Option<u64>,
        reason: &str,
    ) -> Result<Ban, ControlError> {
        match &target {
            BanTarget::Ip(_) => {}
            BanTarget::Key(k) => check_key(k)?,
            BanTarget::Stream(s) => {
                let (app, name) = s.split_once('/').ok_or_else(|| {
                    ControlError::Invalid(format!("stream {s:?}: expected app/name"))
                })?;
                check_app(app)?;
                crate::names::check("stream name", name, 4096)
                    .map_err(|e| ControlError::Invalid(e.to_string()))?;
            }
        }
        if expires_ms.is_some_and(|e| e <= unix_ms()) {
            return Err(ControlError::Invalid("the expiry is in the past".into()));
        }
        if reason.len() > 1024 {
            return Err(ControlError::Invalid(
                "a reason is at most 1024 bytes".into(),
            ));
        }
        self.update(|s| {
            s.next_ban_id += 1;
            let ban = Ban {
                id: s.next_ban_id,
                target,
                expires_ms,
                reason: reason.to_owned(),
                created_ms: unix_ms(),
            };
            s.bans.push(ban.clone());
            Ok(ban)
        })
    }

    /// Lift ban `id`; `false` when there is none (or it expired).
    pub fn lift(&self, id: u64) -> Result<bool, ControlError> {
        let now = unix_ms();
        self.update(|s| {
            let found = s.bans.iter().any(|b| b.id == id && b.live(now));
            s.bans.retain(|b| b.id != id);
            Ok(found)
        })
    }

    /// The bans in force.
    pub fn bans(&self) -> Vec<Ban> {
        let now = unix_ms();
        self.read(|s| s.bans.iter().filter(|b| b.live(now)).cloned().collect())
    }

    fn find(&self, f: impl Fn(&BanTarget) -> bool) -> Option<Ban> {
        let now = unix_ms();
        self.read(|s| s.bans.iter().find(|b| b.live(now) && f(&b.target)).cloned())
    }

    /// The ban that refuses a connection from `ip`, if any.
    pub fn ip_ban(&self, ip: IpAddr) -> Option<Ban> {
        self.find(|t| matches!(t, BanTarget::Ip(net) if net.contains(ip)))
    }

    /// The ban that refuses `action` on `app/name` with `key`, if any: the key's for publish
    /// and play, the stream's for publish.
    pub fn stream_ban(&self, action: Action, resource: &str, key: Option<&str>) -> Option<Ban> {
        self.find(|t| match t {
            BanTarget::Key(k) => key == Some(k.as_str()),
            BanTarget::Stream(s) => action == Action::Publish && s == resource,
            BanTarget::Ip(_) => false,
        })
    }
}

#[cfg(test)]
mod tests;
