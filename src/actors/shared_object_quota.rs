//! What shared objects may hold: the memory their attributes take, per connection and for the
//! whole server, and the bytes their files take on disk. The objects charge and credit these
//! as attributes come and go (see [`super::shared_object::ObjectState::apply`]); everything
//! is given back when an object is cleared or goes away.

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize};

use crate::config::SharedObjectSettings;
use crate::protocol::amf0::Amf0Value;
use crate::protocol::amf3::Amf3Value;

use super::ConnectionId;

/// Disk space a file of `len` bytes takes: whole 4 KiB blocks, at least one, so that many
/// tiny files count for what they cost.
pub fn disk_blocks(len: u64) -> u64 {
    const BLOCK: u64 = 4096;
    len.max(1).div_ceil(BLOCK) * BLOCK
}

/// Estimated bytes `value` holds in memory: each value's inline size plus its strings, byte
/// arrays, vectors and property names. Walks with an explicit stack (no recursion on a depth
/// the peer chose).
pub fn value_memory(value: &Amf0Value) -> usize {
    enum Item<'a> {
        Zero(&'a Amf0Value),
        Three(&'a Amf3Value),
    }
    let name = |k: &String| std::mem::size_of::<String>() + k.len();
    let mut total = 0usize;
    let mut stack = vec![Item::Zero(value)];
    while let Some(item) = stack.pop() {
        match item {
            Item::Zero(v) => {
                total += std::mem::size_of::<Amf0Value>();
                match v {
                    Amf0Value::String(s) | Amf0Value::LongString(s) | Amf0Value::XmlDocument(s) => {
                        total += s.len()
                    }
                    Amf0Value::Object(p) | Amf0Value::EcmaArray(p) => {
                        for (k, v) in p {
                            total += name(k);
                            stack.push(Item::Zero(v));
                        }
                    }
                    Amf0Value::TypedObject {
                        class_name,
                        properties,
                    } => {
                        total += class_name.len();
                        for (k, v) in properties {
                            total += name(k);
                            stack.push(Item::Zero(v));
                        }
                    }
                    Amf0Value::StrictArray(items) => stack.extend(items.iter().map(Item::Zero)),
                    Amf0Value::AvmPlus(v) => stack.push(Item::Three(v)),
                    _ => {}
                }
            }
            Item::Three(v) => {
                total += std::mem::size_of::<Amf3Value>();
                match v {
                    Amf3Value::String(s) | Amf3Value::XmlDocument(s) | Amf3Value::Xml(s) => {
                        total += s.len()
                    }
                    Amf3Value::ByteArray(b) => total += b.len(),
                    Amf3Value::VectorInt { items, .. } => total += 4 * items.len(),
                    Amf3Value::VectorUint { items, .. } => total += 4 * items.len(),
                    Amf3Value::VectorDouble { items, .. } => total += 8 * items.len(),
                    Amf3Value::Array { associative, dense } => {
                        for (k, v) in associative {
                            total += name(k);
                            stack.push(Item::Three(v));
                        }
                        stack.extend(dense.iter().map(Item::Three));
                    }
                    Amf3Value::Object(o) => {
                        total += o.class_name.len();
                        for (k, v) in o.sealed.iter().chain(&o.dynamic_members) {
                            total += name(k);
                            stack.push(Item::Three(v));
                        }
                    }
                    Amf3Value::VectorObject {
                        type_name, items, ..
                    } => {
                        total += type_name.len();
                        stack.extend(items.iter().map(Item::Three));
                    }
                    Amf3Value::Dictionary { entries, .. } => {
                        for (k, v) in entries {
                            stack.push(Item::Three(k));
                            stack.push(Item::Three(v));
                        }
                    }
                    Amf3Value::Externalizable { class_name, value } => {
                        total += class_name.len();
                        stack.push(Item::Three(value));
                    }
                    _ => {}
                }
            }
        }
    }
    total
}

/// One connection's share: memory held by the attributes it wrote last (in objects that are
/// still live), and how many of its requests a cap refused.
#[derive(Debug)]
pub struct Quota {
    pub connection: ConnectionId,
    pub limit: usize,
    bytes: AtomicUsize,
    refusals: AtomicU32,
}

impl Quota {
    pub fn new(connection: ConnectionId, limit: usize) -> Self {
        Quota {
            connection,
            limit,
            bytes: AtomicUsize::new(0),
            refusals: AtomicU32::new(0),
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes.load(Relaxed)
    }

    /// Whether `grow` more bytes fit once `give_back` of its own are freed.
    pub fn fits(&self, grow: usize, give_back: usize) -> bool {
        self.bytes().saturating_sub(give_back) + grow <= self.limit
    }

    pub fn charge(&self, n: usize) {
        self.bytes.fetch_add(n, Relaxed);
    }

    pub fn credit(&self, n: usize) {
        let _ = self
            .bytes
            .fetch_update(Relaxed, Relaxed, |b| Some(b.saturating_sub(n)));
    }

    /// Count a refusal by a cap; the new count.
    pub fn refused(&self) -> u32 {
        self.refusals.fetch_add(1, Relaxed) + 1
    }

    pub fn refusals(&self) -> u32 {
        self.refusals.load(Relaxed)
    }
}

/// Server-wide totals: memory of every live object's attributes, bytes of every persistent
/// file (counted in [`disk_blocks`]), each with its cap (updated from the settings of every
/// Use, so a reload applies).
#[derive(Debug, Default)]
pub struct Totals {
    memory: AtomicUsize,
    memory_limit: AtomicUsize,
    disk: AtomicU64,
    disk_limit: AtomicU64,
}

impl Totals {
    pub fn set_limits(&self, so: &SharedObjectSettings) {
        self.memory_limit.store(so.max_total_bytes, Relaxed);
        self.disk_limit.store(so.max_disk_bytes, Relaxed);
    }

    pub fn memory(&self) -> usize {
        self.memory.load(Relaxed)
    }

    /// Whether the server's attributes may grow by `grow` once `give_back` are freed.
    pub fn memory_fits(&self, grow: usize, give_back: usize) -> bool {
        self.memory().saturating_sub(give_back) + grow <= self.memory_limit.load(Relaxed)
    }

    pub fn charge_memory(&self, n: usize) {
        self.memory.fetch_add(n, Relaxed);
    }

    pub fn credit_memory(&self, n: usize) {
        let _ = self
            .memory
            .fetch_update(Relaxed, Relaxed, |b| Some(b.saturating_sub(n)));
    }

    pub fn disk(&self) -> u64 {
        self.disk.load(Relaxed)
    }

    /// Whether a file now taking `now` bytes of disk may take `after`.
    pub fn disk_fits(&self, now: u64, after: u64) -> bool {
        after <= now || self.disk().saturating_sub(now) + after <= self.disk_limit.load(Relaxed)
    }

    /// A file went from `before` to `after` bytes of disk.
    pub fn file_changed(&self, before: u64, after: u64) {
        let _ = self.disk.fetch_update(Relaxed, Relaxed, |d| {
            Some(d.saturating_sub(before).saturating_add(after))
        });
    }

    /// Count the files already in `dir` (left by earlier runs): `dir/<app>/<name>.rso`.
    pub fn scan(&self, dir: &Path) {
        let mut total = 0;
        for app in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            for file in std::fs::read_dir(app.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Ok(meta) = file.metadata() {
                    if meta.is_file() {
                        total += disk_blocks(meta.len());
                    }
                }
            }
        }
        self.disk.fetch_add(total, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_counts_strings_names_and_nesting() {
        let n = value_memory(&Amf0Value::Number(1.0));
        assert_eq!(n, std::mem::size_of::<Amf0Value>());
        let s = value_memory(&Amf0Value::String("x".repeat(1000)));
        assert_eq!(s, n + 1000);
        let o = value_memory(&Amf0Value::object([("abc", Amf0Value::Number(1.0))]));
        assert_eq!(o, 2 * n + std::mem::size_of::<String>() + 3);
        // Deep nesting is walked without recursion.
        let mut deep = Amf0Value::Null;
        for _ in 0..100_000 {
            deep = Amf0Value::StrictArray(vec![deep]);
        }
        assert_eq!(value_memory(&deep), 100_001 * n);
        // Drop it iteratively as well (the derived Drop recurses).
        let mut v = deep;
        while let Amf0Value::StrictArray(mut items) = v {
            v = items.pop().unwrap_or(Amf0Value::Null);
        }
        let b = value_memory(&Amf0Value::AvmPlus(Amf3Value::ByteArray(vec![0; 500])));
        assert_eq!(
            b,
            n + std::mem::size_of::<Amf3Value>() + 500,
            "AMF3 byte arrays count"
        );
    }

    #[test]
    fn quota_and_totals() {
        let q = Quota::new(1, 100);
        assert!(q.fits(100, 0));
        q.charge(80);
        assert!(!q.fits(30, 0));
        assert!(q.fits(30, 10));
        q.credit(500);
        assert_eq!(q.bytes(), 0);
        assert_eq!((q.refused(), q.refused(), q.refusals()), (1, 2, 2));
        let t = Totals::default();
        let mut so = crate::config::Settings::defaults().shared_objects;
        so.max_total_bytes = 1000;
        so.max_disk_bytes = 8192;
        t.set_limits(&so);
        t.charge_memory(900);
        assert!(!t.memory_fits(200, 0) && t.memory_fits(200, 100));
        assert_eq!(disk_blocks(0), 4096);
        assert_eq!(disk_blocks(4097), 8192);
        t.file_changed(0, 4096);
        assert!(t.disk_fits(4096, 8192) && !t.disk_fits(0, 8192));
        assert!(t.disk_fits(4096, 4096), "never refused for not growing");
    }
}
