//! Remote shared objects (Adobe RTMP 1.0 §7.1.3, message types 19/AMF0 and 16/AMF3).
//!
//! Three actors:
//! - [`SharedObject`]: one per (app, object name). Owns the attributes and the version, and
//!   knows its clients (the connections that sent Use and have not sent Release). All of them
//!   run on one dedicated arbiter, so a persistent object's synchronous, fsync'ed write never
//!   stalls an arbiter that carries media.
//! - [`SharedObjectRegistry`]: maps `app/name` to [`SharedObject`] actors, counts clients,
//!   enforces the objects-per-app limit and the persistence flag, and stops an object when its
//!   last client leaves. It is a dedicated actor rather than new messages on the stream
//!   [`super::registry::Registry`]: shared objects have their own lifecycle (on-disk state,
//!   per-app limits, no publisher) and this keeps the two independent. It is an actix
//!   [`SystemService`], started on first use, so nothing outside this module needs to know
//!   about it; each [`Use`] carries the connection's settings snapshot and the stats.
//! - [`ClientSession`]: one per connection that used a shared object, on the connection's
//!   arbiter. It receives the connection's shared object messages, applies the per-client
//!   update rate, talks to the registry and the objects, and writes what they send into the
//!   connection's outbox.
//!
//! Semantics follow the spec's event table and Red5's server (the reference implementation
//! Flash clients were tested against): Use is answered with Use Success, then Clear (for a
//! non-persistent object) and Change carrying the whole state; Request Change is acknowledged
//! to the writer with Success and sent to every other client as Change; Request Remove is
//! confirmed to the writer and sent to the others as Remove; Send Message and Clear go to
//! every client, the sender included; the version is bumped once per message that changed the
//! data and every message carries the current version.

use crate::names::{self, Esc};
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use sha2::{Digest, Sha256};

use super::connection::CloseConnection;
use super::registry::resource_key;
use super::shared_object_quota::{disk_blocks, value_memory, Quota, Totals};
use super::{csid, ConnectionId};
use crate::auth::{self, Action, AuthDecision, AuthRequest};
use crate::config::Settings;
use crate::output::outbox::Outbox;
use crate::protocol::amf0::{self, Amf0Value, AmfLimits};
use crate::protocol::message::{Message, RawMessage, SharedObjectEvent, SharedObjectMessage};
use crate::stats::{RefusalReason, ServerStats, SharedObjectStats};

/// Status event codes (event type 7) the server sends, all with level `error`.
pub mod code {
    /// The object could not be made: shared objects disabled, objects-per-app limit, or a
    /// name that is not acceptable.
    pub const OBJECT_CREATION_FAILED: &str = "SharedObject.ObjectCreationFailed";
    /// Use with a persistence flag other than the live object's (Red5 and FMS use this code).
    pub const BAD_PERSISTENCE: &str = "SharedObject.BadPersistence";
    /// A change or send for an object the client has not used (connected to).
    pub const NO_WRITE_ACCESS: &str = "SharedObject.NoWriteAccess";
    /// A change would pass the attributes-per-object limit.
    pub const TOO_MANY_ATTRIBUTES: &str = "SharedObject.TooManyAttributes";
    /// A change would pass the bytes-per-object limit.
    pub const OBJECT_TOO_LARGE: &str = "SharedObject.ObjectTooLarge";
    /// The client sent more change or send requests than its rate allows.
    pub const UPDATE_RATE_EXCEEDED: &str = "SharedObject.UpdateRateExceeded";
    /// A persistent object's change was applied but could not be written to disk.
    pub const PERSISTENCE_FAILED: &str = "SharedObject.PersistenceFailed";
    /// The app's rules refuse this client the object (Red5's code for a refused connect).
    pub const NO_READ_ACCESS: &str = "SharedObject.NoReadAccess";
    /// A change would pass the memory this connection's writes may hold.
    pub const QUOTA_EXCEEDED: &str = "SharedObject.QuotaExceeded";
    /// A change would pass what all shared objects may hold, in memory or on disk.
    pub const SERVER_QUOTA_EXCEEDED: &str = "SharedObject.ServerQuotaExceeded";
}

/// Why a persistent object's file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {size} bytes is more than the {limit} bytes allowed")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("{path}: not a shared object file: {reason}")]
    Format { path: String, reason: &'static str },
    #[error("{path}: AMF: {source}")]
    Amf {
        path: String,
        #[source]
        source: amf0::Amf0Error,
    },
}

/// Magic and format version at the start of a persistent object's file. Version 1 held the
/// attributes in one ECMA Array, which put every value one level deeper than it came on the
/// wire (so an acknowledged value at the depth limit could not be read back); version 2
/// stores each value as a top-level AMF0 value, decoded exactly as the wire decoded it.
const FILE_MAGIC: &[u8; 4] = b"RSO\x02";
const FILE_MAGIC_V1: &[u8; 4] = b"RSO\x01";
/// Longest encoded name used as a file name as is; longer ones are hashed.
const MAX_PLAIN_FILE_NAME: usize = 200;

/// One file-name component for `name`: ASCII letters, digits, `-` and `_` are kept, every
/// other byte becomes `%XX`, so no `/`, `.` or `..` can reach the file system; names whose
/// encoding is too long for a file name become `~` and the SHA-256 of the name.
pub fn file_component(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() || out.len() > MAX_PLAIN_FILE_NAME {
        let digest = Sha256::digest(name.as_bytes());
        out = String::from("~");
        for b in digest {
            out.push_str(&format!("{b:02x}"));
        }
    }
    out
}

/// Where the persistent object `app`/`name` lives under `dir`: `dir/<app>/<name>.rso`, each
/// component made safe by [`file_component`].
pub fn object_path(dir: &Path, app: &str, name: &str) -> PathBuf {
    dir.join(file_component(app))
        .join(format!("{}.rso", file_component(name)))
}

/// The bytes of a persistent object's file: magic, then AMF0 values: app (String), name
/// (String), version (Number), attribute count (Number), then each attribute's name (String)
/// and value, every one a top-level value (own reference table, depth counted from 0, as in
/// a Request Change event, §7.1.3).
pub fn encode_file(
    app: &str,
    name: &str,
    version: u32,
    attributes: &BTreeMap<String, Amf0Value>,
) -> Result<Vec<u8>, amf0::Amf0Error> {
    let mut out = FILE_MAGIC.to_vec();
    let header = [
        Amf0Value::String(app.to_owned()),
        Amf0Value::String(name.to_owned()),
        Amf0Value::Number(f64::from(version)),
        Amf0Value::Number(attributes.len() as f64),
    ];
    amf0::encode_all(&header, &mut out)?;
    for (k, v) in attributes {
        amf0::encode(&Amf0Value::String(k.clone()), &mut out)?;
        amf0::encode(v, &mut out)?;
    }
    Ok(out)
}

/// Bytes of a persistent object's file besides its attributes (magic, app, name, version,
/// count); each attribute adds its [`attribute_size`] and one String marker.
pub fn file_overhead(app: &str, name: &str) -> usize {
    FILE_MAGIC.len() + (3 + app.len()) + (3 + name.len()) + 9 + 9
}

/// A persistent object as read back: its version and attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredObject {
    pub version: u32,
    pub attributes: BTreeMap<String, Amf0Value>,
}

/// Parse a file made by [`encode_file`] (or by version 1); `Ok(None)` if it holds another
/// object (a hash collision of long names). `limits` are the wire's: every value that was
/// accepted from a client reads back under them.
pub fn decode_file(
    path: &Path,
    bytes: &[u8],
    app: &str,
    name: &str,
    limits: &AmfLimits,
) -> Result<Option<StoredObject>, StoreError> {
    let shown = || path.display().to_string();
    let format = |reason| StoreError::Format {
        path: shown(),
        reason,
    };
    let amf = |source| StoreError::Amf {
        path: shown(),
        source,
    };
    if let Some(body) = bytes.strip_prefix(FILE_MAGIC_V1.as_slice()) {
        return decode_file_v1(body, app, name, limits).map_err(|e| match e {
            V1Error::Amf(source) => amf(source),
            V1Error::Format(reason) => format(reason),
        });
    }
    let mut body = bytes
        .strip_prefix(FILE_MAGIC.as_slice())
        .ok_or_else(|| format("bad magic"))?;
    let mut next = || amf0::decode(&mut body, limits).map_err(amf);
    let (file_app, file_name, version, count) = (next()?, next()?, next()?, next()?);
    let (Amf0Value::String(file_app), Amf0Value::String(file_name)) = (file_app, file_name) else {
        return Err(format("expected app and name"));
    };
    if file_app != app || file_name != name {
        return Ok(None);
    }
    let version = as_u32(&version).ok_or_else(|| format("version is not a u32"))?;
    let count = as_u32(&count).ok_or_else(|| format("attribute count is not a u32"))?;
    let mut attributes = BTreeMap::new();
    for _ in 0..count {
        let Amf0Value::String(key) = next()? else {
            return Err(format("expected an attribute name"));
        };
        let value = next()?;
        attributes.insert(key, value);
    }
    if !body.is_empty() {
        return Err(format("bytes after the last attribute"));
    }
    Ok(Some(StoredObject {
        version,
        attributes,
    }))
}

fn as_u32(value: &Amf0Value) -> Option<u32> {
    match value {
        Amf0Value::Number(n) if n.is_finite() && *n >= 0.0 && *n <= f64::from(u32::MAX) => {
            Some(*n as u32)
        }
        _ => None,
    }
}

enum V1Error {
    Amf(amf0::Amf0Error),
    Format(&'static str),
}

/// Version 1 (one ECMA Array of attributes): read with one more level than the wire allows
/// (the array's) and a value budget as large as the file, so that whatever was acknowledged
/// reads back; the next write stores it as version 2.
fn decode_file_v1(
    body: &[u8],
    app: &str,
    name: &str,
    limits: &AmfLimits,
) -> Result<Option<StoredObject>, V1Error> {
    let limits = AmfLimits {
        max_depth: limits.max_depth + 1,
        max_values: limits.max_values.max(body.len()),
    };
    let values = amf0::decode_all(body, &limits).map_err(V1Error::Amf)?;
    let [Amf0Value::String(file_app), Amf0Value::String(file_name), version, Amf0Value::EcmaArray(attributes)] =
        values.as_slice()
    else {
        return Err(V1Error::Format("expected app, name, version, attributes"));
    };
    if file_app != app || file_name != name {
        return Ok(None);
    }
    let version = as_u32(version).ok_or(V1Error::Format("version is not a u32"))?;
    Ok(Some(StoredObject {
        version,
        attributes: attributes.iter().cloned().collect(),
    }))
}

/// Write `bytes` to `path` so that a crash leaves either the old file or the new one, never
/// a mix: write a temporary file in the same directory, fsync it, rename it over `path`,
/// fsync the directory (so the rename itself is durable).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    };
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        // Directory fsync makes the rename durable; not every platform allows opening one.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Read a persistent object, refusing files larger than `max_len`. A missing file is `None`.
pub fn read_file(
    path: &Path,
    app: &str,
    name: &str,
    max_len: u64,
    limits: &AmfLimits,
) -> Result<Option<StoredObject>, StoreError> {
    let io = |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    };
    let size = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    if size > max_len {
        return Err(StoreError::TooLarge {
            path: path.display().to_string(),
            size,
            limit: max_len,
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    decode_file(path, &bytes, app, name, limits)
}

/// AMF0-encoded size of one attribute (name as u16-prefixed UTF-8, then the value), which is
/// what the bytes-per-object limit counts.
pub fn attribute_size(name: &str, value: &Amf0Value) -> usize {
    let mut buf = Vec::new();
    // Values came from a decode, so they encode; a failure counts as huge.
    match amf0::encode(value, &mut buf) {
        Ok(()) => 2 + name.len() + buf.len(),
        Err(_) => usize::MAX / 2,
    }
}

/// Limits one object applies to changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectLimits {
    pub max_attributes: usize,
    pub max_bytes: usize,
    /// A persistent object's file size.
    pub max_file_bytes: u64,
}

/// Who pays for a change: the writer's quota, the server's totals, and for a persistent
/// object its file (fixed part, and the disk it takes now).
pub struct Ledger<'a> {
    pub writer: &'a Arc<Quota>,
    pub totals: &'a Totals,
    pub file: Option<FileRoom>,
}

/// A persistent object's file as the disk cap sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileRoom {
    /// [`file_overhead`] of the object.
    pub overhead: usize,
    /// [`disk_blocks`] of the file as it is now (0 when there is none).
    pub on_disk: u64,
}

/// Estimated memory of one attribute: its name twice (the attribute map and the sizes), the
/// map entries, and the value.
pub fn attribute_memory(name: &str, value: &Amf0Value) -> usize {
    2 * (name.len() + std::mem::size_of::<String>())
        + std::mem::size_of::<Meta>()
        + 64
        + value_memory(value)
}

/// What one attribute counts for, and who wrote it last (None: read from disk).
#[derive(Debug, Clone)]
struct Meta {
    encoded: usize,
    memory: usize,
    owner: Option<Arc<Quota>>,
}

impl Meta {
    /// Give the attribute's memory back to its writer and the server.
    fn release(self, totals: &Totals) {
        if let Some(owner) = self.owner {
            owner.credit(self.memory);
        }
        totals.credit_memory(self.memory);
    }
}

/// What applying one client message did: the events for the writer and for every other
/// client, whether the data changed (so the version was bumped), and how many requests a
/// limit refused.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    pub owner: Vec<SharedObjectEvent>,
    pub others: Vec<SharedObjectEvent>,
    pub changed: bool,
    pub updates: u64,
    pub messages: u64,
    pub refused: u64,
    /// The first code a memory or disk cap refused with, if any (the writer is told; these
    /// are logged and count towards closing the connection).
    pub capped: Option<&'static str>,
}

/// The data of one shared object: attributes and version, with the size the limits count.
/// Plain state, no I/O, so the semantics are unit-tested without actors.
#[derive(Debug, Default)]
pub struct ObjectState {
    pub version: u32,
    pub attributes: BTreeMap<String, Amf0Value>,
    bytes: usize,
    meta: HashMap<String, Meta>,
    memory: usize,
}

fn status(code: &str) -> SharedObjectEvent {
    SharedObjectEvent::Status {
        code: code.to_owned(),
        level: "error".to_owned(),
    }
}

impl ObjectState {
    /// State read from disk: its memory is the server's (the caller charges [`Self::memory`]),
    /// no connection's.
    pub fn new(version: u32, attributes: BTreeMap<String, Amf0Value>) -> Self {
        let meta: HashMap<String, Meta> = attributes
            .iter()
            .map(|(k, v)| {
                let m = Meta {
                    encoded: attribute_size(k, v),
                    memory: attribute_memory(k, v),
                    owner: None,
                };
                (k.clone(), m)
            })
            .collect();
        ObjectState {
            version,
            bytes: meta.values().map(|m| m.encoded).sum(),
            memory: meta.values().map(|m| m.memory).sum(),
            attributes,
            meta,
        }
    }

    /// AMF0-encoded bytes of all attributes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Estimated memory of all attributes.
    pub fn memory(&self) -> usize {
        self.memory
    }

    /// Drop every attribute, giving its memory back.
    fn clear(&mut self, totals: &Totals) {
        self.attributes.clear();
        for (_, m) in self.meta.drain() {
            m.release(totals);
        }
        self.bytes = 0;
        self.memory = 0;
    }

    /// The object goes away: give all its memory back.
    pub fn release_all(&mut self, totals: &Totals) {
        self.clear(totals);
    }

    /// Which cap, if any, refuses setting `name` to a value of `size` wire bytes and
    /// `memory` bytes of memory.
    fn refusal(
        &self,
        name: &str,
        size: usize,
        memory: usize,
        limits: ObjectLimits,
        ledger: &Ledger<'_>,
    ) -> Option<&'static str> {
        let old = self.meta.get(name);
        let is_new = old.is_none();
        let (old_size, old_memory) = old.map_or((0, 0), |m| (m.encoded, m.memory));
        let own = old
            .and_then(|m| m.owner.as_ref())
            .filter(|o| Arc::ptr_eq(o, ledger.writer))
            .map_or(0, |_| old_memory);
        let bytes = self.bytes - old_size + size;
        let count = self.attributes.len() + usize::from(is_new);
        let file = ledger
            .file
            .map(|f| (f, (f.overhead + bytes + count) as u64));
        if is_new && self.attributes.len() >= limits.max_attributes {
            Some(code::TOO_MANY_ATTRIBUTES)
        } else if bytes > limits.max_bytes
            || file.is_some_and(|(_, len)| len > limits.max_file_bytes)
        {
            Some(code::OBJECT_TOO_LARGE)
        } else if !ledger.writer.fits(memory, own) {
            Some(code::QUOTA_EXCEEDED)
        } else if !ledger.totals.memory_fits(memory, old_memory)
            || file.is_some_and(|(f, len)| !ledger.totals.disk_fits(f.on_disk, disk_blocks(len)))
        {
            Some(code::SERVER_QUOTA_EXCEEDED)
        } else {
            None
        }
    }

    /// What a client gets when it uses the object (Red5 `register`): Use Success, Clear for a
    /// non-persistent object (so a reconnecting client drops a stale copy), then one Change
    /// with every attribute.
    pub fn initial_events(&self, persistent: bool) -> Vec<SharedObjectEvent> {
        let mut events = vec![SharedObjectEvent::InitialData];
        if !persistent {
            events.push(SharedObjectEvent::ClearData);
        }
        if !self.attributes.is_empty() {
            events.push(SharedObjectEvent::UpdateData {
                properties: self
                    .attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            });
        }
        events
    }

    /// The writer's copy of `name` put back after a refused change.
    fn revert(&self, name: &str) -> SharedObjectEvent {
        match self.attributes.get(name) {
            Some(v) => SharedObjectEvent::UpdateData {
                properties: vec![(name.to_owned(), v.clone())],
            },
            None => SharedObjectEvent::DeleteData {
                name: name.to_owned(),
            },
        }
    }

    /// Apply the client requests of one message (Request Change, Request Remove, Clear, Send
    /// Message; anything else is ignored). Bumps the version once if the data changed.
    pub fn apply(
        &mut self,
        events: Vec<SharedObjectEvent>,
        limits: ObjectLimits,
        ledger: &Ledger<'_>,
    ) -> Outcome {
        let mut out = Outcome::default();
        for event in events {
            match event {
                SharedObjectEvent::SetAttribute { properties } => {
                    for (name, value) in properties {
                        if self.attributes.get(&name) == Some(&value) {
                            // Unchanged: acknowledged, nobody else told (Red5 does the same).
                            out.owner.push(SharedObjectEvent::UpdateAttribute { name });
                            continue;
                        }
                        let size = attribute_size(&name, &value);
                        let memory = attribute_memory(&name, &value);
                        if let Some(c) = self.refusal(&name, size, memory, limits, ledger) {
                            if c == code::QUOTA_EXCEEDED || c == code::SERVER_QUOTA_EXCEEDED {
                                out.capped.get_or_insert(c);
                                ledger.writer.refused();
                            }
                            out.owner.push(status(c));
                            out.owner.push(self.revert(&name));
                            out.refused += 1;
                            continue;
                        }
                        ledger.writer.charge(memory);
                        ledger.totals.charge_memory(memory);
                        let meta = Meta {
                            encoded: size,
                            memory,
                            owner: Some(ledger.writer.clone()),
                        };
                        if let Some(old) = self.meta.insert(name.clone(), meta) {
                            self.bytes -= old.encoded;
                            self.memory -= old.memory;
                            old.release(ledger.totals);
                        }
                        self.bytes += size;
                        self.memory += memory;
                        self.attributes.insert(name.clone(), value.clone());
                        out.owner
                            .push(SharedObjectEvent::UpdateAttribute { name: name.clone() });
                        out.others.push(SharedObjectEvent::UpdateData {
                            properties: vec![(name, value)],
                        });
                        out.changed = true;
                        out.updates += 1;
                    }
                }
                SharedObjectEvent::DeleteAttribute { name } => {
                    // Red5 confirms a removal to the writer with Remove, changed or not.
                    if self.attributes.remove(&name).is_some() {
                        if let Some(m) = self.meta.remove(&name) {
                            self.bytes -= m.encoded;
                            self.memory -= m.memory;
                            m.release(ledger.totals);
                        }
                        out.others
                            .push(SharedObjectEvent::DeleteData { name: name.clone() });
                        out.changed = true;
                        out.updates += 1;
                    }
                    out.owner.push(SharedObjectEvent::DeleteData { name });
                }
                SharedObjectEvent::ClearData => {
                    self.clear(ledger.totals);
                    out.owner.push(SharedObjectEvent::ClearData);
                    out.others.push(SharedObjectEvent::ClearData);
                    out.changed = true;
                    out.updates += 1;
                }
                SharedObjectEvent::SendMessage { values } => {
                    // A broadcast, not a change of data: no version bump.
                    out.owner.push(SharedObjectEvent::SendMessage {
                        values: values.clone(),
                    });
                    out.others.push(SharedObjectEvent::SendMessage { values });
                    out.messages += 1;
                }
                other => {
                    tracing::debug!(event = ?other, "shared object event from a client ignored");
                }
            }
        }
        if out.changed {
            self.version = self.version.wrapping_add(1);
        }
        out
    }
}

/// Encode one outgoing shared object message (on message stream 0).
fn encode(amf3: bool, message: SharedObjectMessage) -> Option<RawMessage> {
    match (Message::SharedObject { amf3, message }).to_raw(0, 0) {
        Ok(raw) => Some(raw),
        Err(e) => {
            tracing::error!(error = %Esc(&e.to_string()), "could not encode a shared object message");
            None
        }
    }
}

// ---------------------------------------------------------------------------------------
// The shared object actor.

struct Client {
    session: Addr<ClientSession>,
    amf3: bool,
}

/// One shared object: its data, its version and its clients.
pub struct SharedObject {
    app: String,
    name: String,
    persistent: bool,
    state: ObjectState,
    clients: HashMap<ConnectionId, Client>,
    limits: ObjectLimits,
    /// Where it is stored, for a persistent object.
    path: Option<PathBuf>,
    /// Disk its file takes now ([`disk_blocks`]; 0 when there is none).
    on_disk: u64,
    totals: Arc<Totals>,
    stats: Arc<SharedObjectStats>,
    server_stats: Arc<ServerStats>,
}

impl SharedObject {
    /// A new actor's state; a persistent object is read back from `settings`' directory.
    pub fn new(
        app: String,
        name: String,
        persistent: bool,
        settings: &Settings,
        totals: Arc<Totals>,
        stats: Arc<SharedObjectStats>,
        server_stats: Arc<ServerStats>,
    ) -> Self {
        let so = &settings.shared_objects;
        let path = persistent.then(|| object_path(Path::new(&so.dir), &app, &name));
        let mut state = ObjectState::default();
        let mut on_disk = 0;
        if let Some(path) = &path {
            // Room for the names, the version, the count and one marker per attribute name
            // (and whatever the file cap allowed, if larger).
            let max_len =
                ((so.max_bytes + so.max_attributes + 2 * settings.rtmp.max_name_len + 1024) as u64)
                    .max(so.max_file_bytes);
            match read_file(path, &app, &name, max_len, &settings.amf_limits()) {
                Ok(Some(stored)) => {
                    state = ObjectState::new(stored.version, stored.attributes);
                    tracing::info!(app = ?app, object = ?name, version = state.version, attributes = state.attributes.len(), "persistent shared object loaded");
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(app = ?app, object = ?name, error = %e, "persistent shared object unreadable: starting empty");
                }
            }
            on_disk = std::fs::metadata(path).map_or(0, |m| disk_blocks(m.len()));
        }
        // Read from disk: the server's memory, nobody's quota.
        totals.charge_memory(state.memory());
        SharedObject {
            app,
            name,
            persistent,
            state,
            clients: HashMap::new(),
            limits: ObjectLimits {
                max_attributes: so.max_attributes,
                max_bytes: so.max_bytes,
                max_file_bytes: so.max_file_bytes,
            },
            path,
            on_disk,
            totals,
            stats,
            server_stats,
        }
    }

    fn message(&self, events: Vec<SharedObjectEvent>) -> SharedObjectMessage {
        SharedObjectMessage {
            name: self.name.clone(),
            version: self.state.version,
            persistent: self.persistent,
            events,
        }
    }

    fn publish_stats(&self) {
        let s = &self.stats;
        s.clients.store(self.clients.len(), Relaxed);
        s.version.store(u64::from(self.state.version), Relaxed);
        s.attributes.store(self.state.attributes.len(), Relaxed);
        s.bytes.store(self.state.bytes(), Relaxed);
    }

    fn save(&mut self) -> Result<(), StoreError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let bytes = encode_file(
            &self.app,
            &self.name,
            self.state.version,
            &self.state.attributes,
        )
        .map_err(|source| StoreError::Amf {
            path: path.display().to_string(),
            source,
        })?;
        write_atomically(path, &bytes)?;
        let after = disk_blocks(bytes.len() as u64);
        self.totals.file_changed(self.on_disk, after);
        self.on_disk = after;
        Ok(())
    }
}

impl Actor for SharedObject {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        self.server_stats
            .actors
            .shared_objects
            .fetch_add(1, Relaxed);
        self.publish_stats();
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.server_stats
            .actors
            .shared_objects
            .fetch_sub(1, Relaxed);
        self.state.release_all(&self.totals);
        tracing::debug!(app = ?self.app, object = ?self.name, "shared object closed");
    }
}

/// A client used the object (sent by the registry).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Join {
    pub client: ConnectionId,
    pub session: Addr<ClientSession>,
    pub amf3: bool,
}

impl Handler<Join> for SharedObject {
    type Result = ();

    fn handle(&mut self, msg: Join, _: &mut Context<Self>) {
        let events = self.state.initial_events(self.persistent);
        if let Some(raw) = encode(msg.amf3, self.message(events)) {
            msg.session.do_send(Deliver(raw));
        }
        self.clients.insert(
            msg.client,
            Client {
                session: msg.session,
                amf3: msg.amf3,
            },
        );
        self.publish_stats();
    }
}

/// A client released the object or went away (sent by the registry).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub client: ConnectionId,
}

impl Handler<Leave> for SharedObject {
    type Result = ();

    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) {
        self.clients.remove(&msg.client);
        self.publish_stats();
    }
}

/// A client's change and send requests, from one message (sent by its session).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Update {
    pub client: ConnectionId,
    pub amf3: bool,
    pub events: Vec<SharedObjectEvent>,
    /// The writer's share of memory.
    pub quota: Arc<Quota>,
}

impl Handler<Update> for SharedObject {
    type Result = ();

    fn handle(&mut self, msg: Update, _: &mut Context<Self>) {
        let ledger = Ledger {
            writer: &msg.quota,
            totals: &self.totals,
            file: self.path.as_ref().map(|_| FileRoom {
                overhead: file_overhead(&self.app, &self.name),
                on_disk: self.on_disk,
            }),
        };
        let mut outcome = self.state.apply(msg.events, self.limits, &ledger);
        if let Some(c) = outcome.capped {
            tracing::info!(connection = msg.client, app = ?self.app, object = ?self.name, code = c, connection_bytes = msg.quota.bytes(), server_bytes = self.totals.memory(), server_disk = self.totals.disk(), refusals = msg.quota.refusals(), "shared object change refused by a cap");
        }
        if outcome.changed && self.persistent {
            // Written before anyone is told, so an acknowledged change is on disk.
            if let Err(e) = self.save() {
                tracing::warn!(app = ?self.app, object = ?self.name, error = %e, "persistent shared object not saved");
                outcome.owner.push(status(code::PERSISTENCE_FAILED));
            }
        }
        let s = &self.stats;
        s.updates.fetch_add(outcome.updates, Relaxed);
        s.messages.fetch_add(outcome.messages, Relaxed);
        s.refused.fetch_add(outcome.refused, Relaxed);
        self.publish_stats();
        if !outcome.owner.is_empty() {
            if let Some(writer) = self.clients.get(&msg.client) {
                if let Some(raw) = encode(writer.amf3, self.message(outcome.owner)) {
                    writer.session.do_send(Deliver(raw));
                }
            }
        }
        if outcome.others.is_empty() {
            return;
        }
        // Each encoding is made once and shared by every client that uses it.
        let message = self.message(outcome.others);
        let mut made: [Option<Option<RawMessage>>; 2] = [None, None];
        for (id, client) in &self.clients {
            if *id == msg.client {
                continue;
            }
            let slot = &mut made[usize::from(client.amf3)];
            let raw = slot.get_or_insert_with(|| encode(client.amf3, message.clone()));
            if let Some(raw) = raw {
                client.session.do_send(Deliver(raw.clone()));
            }
        }
    }
}

/// Stop (sent by the registry once the last client left); answered when done, so every
/// change before it has been written.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Close;

impl Handler<Close> for SharedObject {
    type Result = ();

    fn handle(&mut self, _: Close, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

// ---------------------------------------------------------------------------------------
// The registry.

struct Entry {
    addr: Addr<SharedObject>,
    app: String,
    persistent: bool,
    clients: HashSet<ConnectionId>,
}

/// Maps `app/name` to [`SharedObject`] actors (one per actix system, started on first use).
#[derive(Default)]
pub struct SharedObjectRegistry {
    entries: HashMap<String, Entry>,
    per_app: HashMap<String, usize>,
    /// The arbiter every shared object actor runs on (made on first use).
    arbiter: Option<Arbiter>,
    /// Memory and disk held by every object.
    totals: Arc<Totals>,
    /// Whether the files already on disk have been counted (on the first Use).
    scanned: bool,
}

impl Actor for SharedObjectRegistry {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        // The shared objects' own thread, made once up front so that the server's threads
        // and descriptors are fixed from start-up on.
        self.arbiter.get_or_insert_with(Arbiter::new);
    }
}

impl Supervised for SharedObjectRegistry {}

impl SystemService for SharedObjectRegistry {}

/// Why a Use was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UseRefusal {
    #[error("shared objects are disabled")]
    Disabled,
    #[error("app has reached its limit of {limit} shared objects")]
    TooManyObjects { limit: usize },
    #[error("the server has reached its limit of {limit} shared objects")]
    ServerFull { limit: usize },
    #[error("the server has reached its limit of {limit} apps with shared objects")]
    TooManyApps { limit: usize },
    #[error("the connection uses its limit of {limit} shared objects")]
    ConnectionFull { limit: usize },
    #[error("not authorized ({reason})")]
    NotAuthorized { reason: String },
    #[error("the object is live with the other persistence flag")]
    BadPersistence,
    #[error("shared object name {reason}")]
    BadName { reason: &'static str },
}

impl UseRefusal {
    /// Count it in `reflector_refusals_total` (limits, names, authorization; not the
    /// disabled feature or a persistence mismatch, which are no refusal of the client).
    fn count(&self, stats: &ServerStats) {
        let reason = match self {
            UseRefusal::TooManyObjects { .. }
            | UseRefusal::ServerFull { .. }
            | UseRefusal::TooManyApps { .. }
            | UseRefusal::ConnectionFull { .. } => RefusalReason::Limits,
            UseRefusal::NotAuthorized { .. } => RefusalReason::Auth,
            UseRefusal::BadName { .. } => RefusalReason::BadName,
            UseRefusal::Disabled | UseRefusal::BadPersistence => return,
        };
        stats.refusals.count(reason);
    }

    /// The status code the client gets.
    pub fn code(&self) -> &'static str {
        match self {
            UseRefusal::BadPersistence => code::BAD_PERSISTENCE,
            UseRefusal::NotAuthorized { .. } => code::NO_READ_ACCESS,
            _ => code::OBJECT_CREATION_FAILED,
        }
    }
}

/// A client uses (connects to) `app`/`name`: join it, creating it if needed. The reply is the
/// object to send requests to; the object sends the client its initial state.
#[derive(Message)]
#[rtype(result = "Result<Addr<SharedObject>, UseRefusal>")]
pub struct Use {
    pub app: String,
    pub name: String,
    pub persistent: bool,
    pub amf3: bool,
    pub client: ConnectionId,
    pub session: Addr<ClientSession>,
    pub settings: Arc<Settings>,
    pub stats: Arc<ServerStats>,
}

impl Handler<Use> for SharedObjectRegistry {
    type Result = Result<Addr<SharedObject>, UseRefusal>;

    fn handle(&mut self, msg: Use, _: &mut Context<Self>) -> Self::Result {
        let so = &msg.settings.shared_objects;
        if !so.enabled {
            return Err(UseRefusal::Disabled);
        }
        let key = resource_key(&msg.app, &msg.name);
        let join = Join {
            client: msg.client,
            session: msg.session,
            amf3: msg.amf3,
        };
        if let Some(entry) = self.entries.get_mut(&key) {
            if entry.persistent != msg.persistent {
                return Err(UseRefusal::BadPersistence);
            }
            entry.clients.insert(msg.client);
            entry.addr.do_send(join);
            return Ok(entry.addr.clone());
        }
        let count = self.per_app.get(&msg.app).copied().unwrap_or(0);
        if count >= so.max_objects_per_app {
            return Err(UseRefusal::TooManyObjects {
                limit: so.max_objects_per_app,
            });
        }
        if self.entries.len() >= so.max_objects {
            return Err(UseRefusal::ServerFull {
                limit: so.max_objects,
            });
        }
        if count == 0 && self.per_app.len() >= so.max_apps {
            return Err(UseRefusal::TooManyApps { limit: so.max_apps });
        }
        let arbiter = self.arbiter.get_or_insert_with(Arbiter::new).handle();
        self.totals.set_limits(so);
        if !self.scanned {
            // Files left by earlier runs count towards the disk cap; counted on the objects'
            // arbiter, ahead of any object's first write.
            self.scanned = true;
            let (totals, dir) = (self.totals.clone(), PathBuf::from(&so.dir));
            arbiter.spawn_fn(move || totals.scan(&dir));
        }
        let stats = Arc::new(SharedObjectStats::new(&msg.app, &msg.name, msg.persistent));
        msg.stats.shared_objects.insert(key.clone(), stats.clone());
        let (app, name, persistent) = (msg.app.clone(), msg.name.clone(), msg.persistent);
        let (settings, server_stats) = (msg.settings.clone(), msg.stats.clone());
        let totals = self.totals.clone();
        let addr = SharedObject::start_in_arbiter(&arbiter, move |_| {
            SharedObject::new(
                app,
                name,
                persistent,
                &settings,
                totals,
                stats,
                server_stats,
            )
        });
        addr.do_send(join);
        tracing::debug!(object = ?key, persistent = msg.persistent, "shared object created");
        *self.per_app.entry(msg.app.clone()).or_default() += 1;
        self.entries.insert(
            key,
            Entry {
                addr: addr.clone(),
                app: msg.app,
                persistent: msg.persistent,
                clients: HashSet::from([msg.client]),
            },
        );
        Ok(addr)
    }
}

/// A client released `app`/`name` (Release, or its connection closed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Release {
    pub app: String,
    pub name: String,
    pub client: ConnectionId,
    pub stats: Arc<ServerStats>,
}

impl Handler<Release> for SharedObjectRegistry {
    type Result = ();

    fn handle(&mut self, msg: Release, ctx: &mut Context<Self>) {
        let key = resource_key(&msg.app, &msg.name);
        let Some(entry) = self.entries.get_mut(&key) else {
            return;
        };
        if !entry.clients.remove(&msg.client) {
            return;
        }
        entry.addr.do_send(Leave { client: msg.client });
        if !entry.clients.is_empty() {
            return;
        }
        // The last client left: the object goes (a persistent one is on disk already).
        let Some(entry) = self.entries.remove(&key) else {
            return;
        };
        msg.stats.shared_objects.remove(&key);
        if let Some(n) = self.per_app.get_mut(&entry.app) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_app.remove(&entry.app);
            }
        }
        // Wait for it to stop before anything else: a Use of the same name right after must
        // read the file only once the old actor has written its last change.
        ctx.wait(entry.addr.send(Close).into_actor(self).map(|_, _, _| ()));
    }
}

// ---------------------------------------------------------------------------------------
// The per-connection session.

/// Per-client update rate: a token bucket holding up to one second's worth.
#[derive(Debug, Clone)]
pub struct RateLimit {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    pub fn new(per_second: u32) -> Self {
        let rate = f64::from(per_second.max(1));
        RateLimit {
            rate,
            tokens: rate,
            at: Instant::now(),
        }
    }

    /// Take `n` tokens at `now` if there are enough.
    pub fn take(&mut self, n: usize, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        let n = n as f64;
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

struct Joined {
    addr: Addr<SharedObject>,
    persistent: bool,
}

/// Requests a connection may have refused by the memory and disk caps (and by its app's
/// rules) before it is closed: a client that keeps writing past them is not a client.
pub const MAX_CAP_REFUSALS: u32 = 32;

/// The connection a session speaks for: who it is and the credentials it connected with.
pub struct SharedObjectClient {
    pub id: ConnectionId,
    pub app: String,
    pub peer: SocketAddr,
    /// The connect URL's query and its `key=`.
    pub args: Option<String>,
    pub stream_key: Option<String>,
    pub tc_url: Option<String>,
    /// Closes the connection (a client that keeps going past the caps).
    pub close: Recipient<CloseConnection>,
}

/// One connection's shared object client side: what it joined, its update rate, its outbox.
pub struct ClientSession {
    id: ConnectionId,
    app: String,
    client: SharedObjectClient,
    quota: Arc<Quota>,
    closing: bool,
    outbox: Rc<Outbox>,
    settings: Arc<Settings>,
    stats: Arc<ServerStats>,
    registry: Addr<SharedObjectRegistry>,
    joined: HashMap<String, Joined>,
    in_use: Rc<Cell<usize>>,
    rate: RateLimit,
}

impl Actor for ClientSession {
    type Context = Context<Self>;
}

impl ClientSession {
    fn status(&self, amf3: bool, name: &str, persistent: bool, code: &str) {
        let message = SharedObjectMessage {
            name: name.to_owned(),
            version: 0,
            persistent,
            events: vec![status(code)],
        };
        if let Some(raw) = encode(amf3, message) {
            self.outbox.send_raw(csid::COMMAND, &raw);
        }
    }

    fn check_name(&self, name: &str) -> Result<(), UseRefusal> {
        if name.is_empty() {
            return Err(UseRefusal::BadName { reason: "is empty" });
        }
        if name.len() > self.settings.rtmp.max_name_len {
            return Err(UseRefusal::BadName {
                reason: "is too long",
            });
        }
        if name.chars().any(char::is_control) {
            return Err(UseRefusal::BadName {
                reason: "has control characters",
            });
        }
        Ok(())
    }

    fn forward(
        &mut self,
        name: &str,
        amf3: bool,
        persistent: bool,
        writes: Vec<SharedObjectEvent>,
    ) {
        if writes.is_empty() {
            return;
        }
        let Some(joined) = self.joined.get(name) else {
            tracing::debug!(connection = self.id, object = ?name, "shared object request without use");
            return self.status(amf3, name, persistent, code::NO_WRITE_ACCESS);
        };
        if !self.rate.take(writes.len(), Instant::now()) {
            tracing::debug!(connection = self.id, object = ?name, "shared object update rate exceeded");
            return self.status(amf3, name, joined.persistent, code::UPDATE_RATE_EXCEEDED);
        }
        joined.addr.do_send(Update {
            client: self.id,
            amf3,
            events: writes,
            quota: self.quota.clone(),
        });
    }

    fn release(&mut self, name: &str) {
        if self.joined.remove(name).is_some() {
            self.in_use.set(self.joined.len());
            self.registry.do_send(Release {
                app: self.app.clone(),
                name: name.to_owned(),
                client: self.id,
                stats: self.stats.clone(),
            });
        }
    }
}

/// A shared object message the connection received.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Incoming {
    pub amf3: bool,
    pub message: SharedObjectMessage,
}

impl Handler<Incoming> for ClientSession {
    type Result = ();

    fn handle(&mut self, msg: Incoming, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        if self.quota.refusals() >= MAX_CAP_REFUSALS {
            self.closing = true;
            tracing::warn!(connection = self.id, peer = %self.client.peer, refusals = self.quota.refusals(), "shared object requests keep passing the caps: closing");
            self.client.close.do_send(CloseConnection {
                reason: format!(
                    "{MAX_CAP_REFUSALS} shared object requests refused by the caps or the app's rules"
                ),
            });
            return;
        }
        let amf3 = msg.amf3;
        let SharedObjectMessage {
            name,
            persistent,
            events,
            ..
        } = msg.message;
        let (mut connect, mut disconnect) = (false, false);
        let mut writes = Vec::new();
        for event in events {
            match event {
                SharedObjectEvent::Connect => connect = true,
                SharedObjectEvent::Disconnect => disconnect = true,
                e @ (SharedObjectEvent::SetAttribute { .. }
                | SharedObjectEvent::DeleteAttribute { .. }
                | SharedObjectEvent::ClearData
                | SharedObjectEvent::SendMessage { .. }) => writes.push(e),
                other => {
                    tracing::debug!(connection = self.id, object = ?name, event = ?other, "server-side shared object event from a client ignored");
                }
            }
        }
        if !connect || self.joined.contains_key(&name) {
            self.forward(&name, amf3, persistent, writes);
            if disconnect {
                self.release(&name);
            }
            return;
        }
        if let Err(refusal) = self.check_name(&name) {
            refusal.count(&self.stats);
            tracing::info!(connection = self.id, object = ?name, reason = %refusal, "shared object use refused");
            return self.status(amf3, &name, persistent, refusal.code());
        }
        let limit = self.settings.shared_objects.max_objects_per_connection;
        if self.joined.len() >= limit {
            let refusal = UseRefusal::ConnectionFull { limit };
            refusal.count(&self.stats);
            tracing::info!(connection = self.id, app = ?self.app, object = ?name, reason = %refusal, "shared object use refused");
            return self.status(amf3, &name, persistent, refusal.code());
        }
        let request = Use {
            app: self.app.clone(),
            name: name.clone(),
            persistent,
            amf3,
            client: self.id,
            session: ctx.address(),
            settings: self.settings.clone(),
            stats: self.stats.clone(),
        };
        // The app's rules first (`[auth]` shared_objects), then the registry. Rules belong to
        // the app, the first path segment of what `connect` named, as for streams (README
        // "Authorization model"): `live/x` cannot escape `[auth.apps.live]`, and the callback
        // sees app `live`, name `x/room`.
        let (app, scope) = names::split_app(&self.app);
        let rules = self.settings.auth.rules(app);
        let timeout = Duration::from_millis(self.settings.auth.callback_timeout_ms);
        let asked = AuthRequest {
            action: Action::SharedObject,
            app: app.to_owned(),
            name: if scope.is_empty() {
                name.clone()
            } else {
                format!("{scope}/{name}")
            },
            args: self.client.args.clone(),
            stream_key: self.client.stream_key.clone(),
            peer: self.client.peer,
            connection: self.id,
            tc_url: self.client.tc_url.clone(),
        };
        let registry = self.registry.clone();
        let decided = async move {
            let reason = match auth::authorize(&rules, &asked, timeout).await {
                AuthDecision::Allow { name: allowed } if allowed == asked.name => {
                    return registry.send(request).await;
                }
                AuthDecision::Allow { .. } => "the callback renamed the object".to_owned(),
                AuthDecision::Deny { reason } => reason,
            };
            Ok(Err(UseRefusal::NotAuthorized { reason }))
        };
        // Later messages wait until the object answers, so requests follow the Use.
        ctx.wait(decided.into_actor(self).map(
            move |result, act, _| {
                match result {
                    Ok(Ok(addr)) => {
                        tracing::debug!(connection = act.id, app = ?act.app, object = ?name, persistent, "shared object use");
                        act.joined.insert(name.clone(), Joined { addr, persistent });
                        act.in_use.set(act.joined.len());
                    }
                    Ok(Err(refusal @ UseRefusal::NotAuthorized { .. })) => {
                        act.stats.auth_denied.fetch_add(1, Relaxed);
                        act.stats.refusals.count(RefusalReason::Auth);
                        act.quota.refused();
                        tracing::warn!(connection = act.id, peer = %act.client.peer, app = ?act.app, object = ?name, reason = %refusal, "shared object use not authorized");
                        return act.status(amf3, &name, persistent, refusal.code());
                    }
                    Ok(Err(refusal)) => {
                        refusal.count(&act.stats);
                        tracing::info!(connection = act.id, app = ?act.app, object = ?name, reason = %refusal, "shared object use refused");
                        return act.status(amf3, &name, persistent, refusal.code());
                    }
                    Err(e) => {
                        tracing::warn!(connection = act.id, object = ?name, error = %e, "shared object registry unavailable");
                        return act.status(amf3, &name, persistent, code::OBJECT_CREATION_FAILED);
                    }
                }
                act.forward(&name, amf3, persistent, writes);
                if disconnect {
                    act.release(&name);
                }
            },
        ));
    }
}

/// A shared object message for this client, already encoded in its encoding.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver(pub RawMessage);

impl Handler<Deliver> for ClientSession {
    type Result = ();

    fn handle(&mut self, msg: Deliver, _: &mut Context<Self>) {
        self.outbox.send_raw(csid::COMMAND, &msg.0);
    }
}

/// The connection closed: release everything and stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseSession;

impl Handler<CloseSession> for ClientSession {
    type Result = ();

    fn handle(&mut self, _: CloseSession, ctx: &mut Context<Self>) {
        let names: Vec<String> = self.joined.keys().cloned().collect();
        for name in names {
            self.release(&name);
        }
        ctx.stop();
    }
}

/// What the connection actor keeps: its session's address and how many objects it uses.
pub struct ClientHandle {
    addr: Addr<ClientSession>,
    in_use: Rc<Cell<usize>>,
}

impl ClientHandle {
    /// Start a connection's session on the current (the connection's) arbiter.
    pub fn start(
        client: SharedObjectClient,
        outbox: Rc<Outbox>,
        settings: Arc<Settings>,
        stats: Arc<ServerStats>,
    ) -> ClientHandle {
        let in_use = Rc::new(Cell::new(0));
        let rate = RateLimit::new(settings.shared_objects.max_updates_per_second);
        let quota = Arc::new(Quota::new(
            client.id,
            settings.shared_objects.max_bytes_per_connection,
        ));
        let addr = ClientSession {
            id: client.id,
            app: client.app.clone(),
            client,
            quota,
            closing: false,
            outbox,
            settings,
            stats,
            registry: SharedObjectRegistry::from_registry(),
            joined: HashMap::new(),
            in_use: in_use.clone(),
            rate,
        }
        .start();
        ClientHandle { addr, in_use }
    }

    /// Hand a received message to the session; when its mailbox is full, the request to wait
    /// on (the connection stops reading until it is taken, as it does for media).
    pub fn offer(
        &self,
        amf3: bool,
        message: SharedObjectMessage,
    ) -> Option<actix::dev::Request<ClientSession, Incoming>> {
        match self.addr.try_send(Incoming { amf3, message }) {
            Ok(()) => None,
            Err(SendError::Full(msg)) => Some(self.addr.send(msg)),
            Err(SendError::Closed(_)) => None,
        }
    }

    /// Whether the connection uses any shared object (it then counts as active).
    pub fn in_use(&self) -> bool {
        self.in_use.get() > 0
    }

    /// The connection closed.
    pub fn close(&self) {
        self.addr.do_send(CloseSession);
    }
}

#[cfg(test)]
mod tests;
