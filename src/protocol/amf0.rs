//! AMF0 (Adobe Action Message Format 0): values, decoder and encoder.
//!
//! AMF0 references (marker 0x07) are kept as [`Amf0Value::Reference`] rather than expanded, so
//! they cannot amplify; the decoder only checks that they point at a complex value already
//! seen. The AvmPlus marker (0x11) switches to AMF3 for one value, with fresh AMF3 tables.

use thiserror::Error;

use super::amf3::{self, Amf3Error, Amf3Value};

// Type markers (AMF0 spec §2.1).
const MARKER_NUMBER: u8 = 0x00;
const MARKER_BOOLEAN: u8 = 0x01;
const MARKER_STRING: u8 = 0x02;
const MARKER_OBJECT: u8 = 0x03;
const MARKER_MOVIECLIP: u8 = 0x04;
const MARKER_NULL: u8 = 0x05;
const MARKER_UNDEFINED: u8 = 0x06;
const MARKER_REFERENCE: u8 = 0x07;
const MARKER_ECMA_ARRAY: u8 = 0x08;
const MARKER_OBJECT_END: u8 = 0x09;
const MARKER_STRICT_ARRAY: u8 = 0x0A;
const MARKER_DATE: u8 = 0x0B;
const MARKER_LONG_STRING: u8 = 0x0C;
const MARKER_UNSUPPORTED: u8 = 0x0D;
const MARKER_RECORDSET: u8 = 0x0E;
const MARKER_XML_DOCUMENT: u8 = 0x0F;
const MARKER_TYPED_OBJECT: u8 = 0x10;
const MARKER_AVMPLUS: u8 = 0x11;

/// Bounds on what a peer's AMF may make us do: nesting depth and the total number of values
/// one decode call may produce (references included), so that bombs fail with a typed error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmfLimits {
    /// Deepest nesting of objects/arrays accepted.
    pub max_depth: usize,
    /// Most values (of any kind, counted as they are produced) one top-level decode may yield.
    pub max_values: usize,
}

/// The deepest nesting accepted whatever [`AmfLimits::max_depth`] says. Every function that
/// walks a value recurses once or a few times per level (decoders, encoders, `Debug`,
/// `Clone`, `PartialEq`, `Drop`), and actix arbiter threads have 2 MiB stacks: at 1024
/// levels an AMF3 decode needed more than 1 MiB in a release build; at this depth every one
/// of them fits in a quarter of that stack (tests/deep_nesting.rs checks it).
pub const MAX_AMF_DEPTH: usize = 128;

impl AmfLimits {
    /// The depth limit in force: `max_depth`, capped at [`MAX_AMF_DEPTH`].
    pub fn depth(&self) -> usize {
        self.max_depth.min(MAX_AMF_DEPTH)
    }
}

impl Default for AmfLimits {
    fn default() -> Self {
        AmfLimits {
            max_depth: 32,
            max_values: 65_536,
        }
    }
}

/// One AMF0 value (AMF0 spec §2). Object-like values keep their properties in wire order.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    /// 0x00
    Number(f64),
    /// 0x01
    Boolean(bool),
    /// 0x02, at most 65535 bytes of UTF-8
    String(String),
    /// 0x03 ... 0x00 0x00 0x09
    Object(Vec<(String, Amf0Value)>),
    /// 0x05
    Null,
    /// 0x06
    Undefined,
    /// 0x07: index into the table of complex values seen so far in this decode
    Reference(u16),
    /// 0x08: associative count, then properties, then object end
    EcmaArray(Vec<(String, Amf0Value)>),
    /// 0x0A
    StrictArray(Vec<Amf0Value>),
    /// 0x0B: milliseconds since the epoch, and a time zone the spec says to ignore (kept)
    Date { millis: f64, time_zone: i16 },
    /// 0x0C
    LongString(String),
    /// 0x0D
    Unsupported,
    /// 0x0F
    XmlDocument(String),
    /// 0x10
    TypedObject {
        class_name: String,
        properties: Vec<(String, Amf0Value)>,
    },
    /// 0x11: switch to AMF3 for one value
    AvmPlus(Amf3Value),
}

impl Amf0Value {
    /// An anonymous Object with these properties, in this order.
    pub fn object<I, K>(properties: I) -> Self
    where
        I: IntoIterator<Item = (K, Amf0Value)>,
        K: Into<String>,
    {
        Amf0Value::Object(
            properties
                .into_iter()
                .map(|(key, value)| (key.into(), value))
                .collect(),
        )
    }

    /// The text of a String or LongString (or of an AMF3 string behind AvmPlus).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0Value::String(s) | Amf0Value::LongString(s) => Some(s),
            Amf0Value::AvmPlus(value) => value.as_str(),
            _ => None,
        }
    }

    /// The number held by a Number (or by an AMF3 integer or double behind AvmPlus).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            Amf0Value::AvmPlus(value) => value.as_f64(),
            _ => None,
        }
    }

    /// The truth value of a Boolean (or of an AMF3 boolean behind AvmPlus).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Amf0Value::Boolean(b) => Some(*b),
            Amf0Value::AvmPlus(value) => value.as_bool(),
            _ => None,
        }
    }

    /// The property `key` of an Object, EcmaArray or TypedObject (first match in wire order).
    /// AMF3 objects behind AvmPlus hold AMF3 values: use [`Amf3Value::get`] on them.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        self.properties()?
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value)
    }

    /// The properties of an Object, EcmaArray or TypedObject.
    pub fn properties(&self) -> Option<&[(String, Amf0Value)]> {
        match self {
            Amf0Value::Object(properties)
            | Amf0Value::EcmaArray(properties)
            | Amf0Value::TypedObject { properties, .. } => Some(properties),
            _ => None,
        }
    }

    /// Whether a `Reference` stands anywhere in this value (see [`resolve_references`]).
    /// Walks without recursion.
    pub fn contains_reference(&self) -> bool {
        let mut found = false;
        visit_references(std::slice::from_ref(self), |_| {
            found = true;
            false
        });
        found
    }

    /// Whether this is Null or Undefined (or AMF3 null or undefined behind AvmPlus).
    pub fn is_null_or_undefined(&self) -> bool {
        match self {
            Amf0Value::Null | Amf0Value::Undefined => true,
            Amf0Value::AvmPlus(value) => value.is_null_or_undefined(),
            _ => false,
        }
    }
}

/// What can go wrong decoding or encoding AMF0. Decode offsets count from the start of the
/// input handed to the decode call (of the whole sequence for [`decode_all`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Amf0Error {
    /// The input ended inside a value.
    #[error("AMF0 input ends at offset {offset}: {what} needs {needed} byte(s), {remaining} left")]
    Truncated {
        what: &'static str,
        offset: usize,
        needed: usize,
        remaining: usize,
    },
    /// A declared length or count cannot fit in the bytes that are left.
    #[error(
        "AMF0 {what} at offset {offset} declares {declared} but only {remaining} byte(s) remain"
    )]
    LengthExceedsInput {
        what: &'static str,
        declared: u64,
        offset: usize,
        remaining: usize,
    },
    /// A type marker this spec does not define.
    #[error("unknown AMF0 marker {marker:#04x} at offset {offset}")]
    UnknownMarker { marker: u8, offset: usize },
    /// MovieClip (0x04) or RecordSet (0x0E): reserved by the spec, never sent (§2.1).
    #[error("reserved AMF0 marker {marker:#04x} at offset {offset}")]
    ReservedMarker { marker: u8, offset: usize },
    /// An object end marker (0x09) where a value must start.
    #[error("AMF0 object end marker out of place at offset {offset}")]
    UnexpectedObjectEnd { offset: usize },
    /// Text that is not UTF-8.
    #[error("invalid UTF-8 in AMF0 {what} at offset {offset}")]
    InvalidUtf8 { what: &'static str, offset: usize },
    /// A reference to a complex value not seen (yet) in this decode context (§2.9).
    #[error("AMF0 reference {index} at offset {offset}, only {table_len} complex value(s) seen")]
    BadReference {
        index: u16,
        table_len: usize,
        offset: usize,
    },
    /// Nesting deeper than [`AmfLimits::max_depth`].
    #[error("AMF0 nesting at offset {offset} exceeds the limit of {max_depth}")]
    DepthExceeded { max_depth: usize, offset: usize },
    /// More values than [`AmfLimits::max_values`].
    #[error("AMF0 input at offset {offset} produces more than {max_values} values")]
    TooManyValues { max_values: usize, offset: usize },
    /// The AMF3 value behind an AvmPlus marker is bad (or cannot be encoded).
    #[error("in AMF3 value after AvmPlus marker: {source}")]
    Amf3 {
        #[from]
        source: Amf3Error,
    },
    /// Encode: a length or count too large for its field.
    #[error("AMF0 {what} of {len} does not fit (at most {max})")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
}

/// A cursor over the input of one decode call.
struct Reader<'b> {
    buf: &'b [u8],
    pos: usize,
    /// Added to `pos` in error offsets.
    report_base: usize,
}

impl<'b> Reader<'b> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn offset(&self) -> usize {
        self.report_base + self.pos
    }

    fn rest(&self) -> &'b [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    fn peek(&self) -> Option<u8> {
        self.rest().first().copied()
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'b [u8], Amf0Error> {
        let rest = self.rest();
        match rest.get(..n) {
            Some(bytes) => {
                self.pos += n;
                Ok(bytes)
            }
            None => Err(Amf0Error::Truncated {
                what,
                offset: self.offset(),
                needed: n,
                remaining: rest.len(),
            }),
        }
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Amf0Error> {
        let offset = self.offset();
        let bytes = self.take(N, what)?;
        <[u8; N]>::try_from(bytes).map_err(|_| Amf0Error::Truncated {
            what,
            offset,
            needed: N,
            remaining: bytes.len(),
        })
    }

    /// Checks that `count` items of at least `bytes_each` bytes can still arrive, before
    /// anything is allocated for them.
    fn declared(
        &self,
        count: u64,
        bytes_each: u64,
        what: &'static str,
    ) -> Result<usize, Amf0Error> {
        let remaining = self.remaining();
        let err = || Amf0Error::LengthExceedsInput {
            what,
            declared: count,
            offset: self.offset(),
            remaining,
        };
        let needed = count.checked_mul(bytes_each).ok_or_else(err)?;
        if needed > u64::try_from(remaining).unwrap_or(u64::MAX) {
            return Err(err());
        }
        usize::try_from(count).map_err(|_| err())
    }

    /// `len` bytes of UTF-8 text.
    fn utf8(&mut self, len: u64, what: &'static str) -> Result<String, Amf0Error> {
        let offset = self.offset();
        let len = self.declared(len, 1, what)?;
        let bytes = self.take(len, what)?;
        let text = std::str::from_utf8(bytes).map_err(|e| Amf0Error::InvalidUtf8 {
            what,
            offset: offset + e.valid_up_to(),
        })?;
        Ok(text.to_owned())
    }

    /// UTF-8 with a 16-bit length (§1.3: UTF-8).
    fn short_string(&mut self, what: &'static str) -> Result<String, Amf0Error> {
        let len = u16::from_be_bytes(self.array(what)?);
        self.utf8(u64::from(len), what)
    }

    /// UTF-8 with a 32-bit length (§1.3: UTF-8-long).
    fn long_string(&mut self, what: &'static str) -> Result<String, Amf0Error> {
        let len = u32::from_be_bytes(self.array(what)?);
        self.utf8(u64::from(len), what)
    }
}

/// An AMF0 decoder whose reference table and value budget last across [`decode`] calls, as
/// in the body of a command message, where the values form one serialization context.
///
/// [`decode`]: Amf0Decoder::decode
#[derive(Debug, Clone)]
pub struct Amf0Decoder {
    limits: AmfLimits,
    /// Complex values (object, typed object, ECMA array, strict array) seen so far (§2.9).
    complex_seen: usize,
    /// Values produced so far.
    values: usize,
}

impl Amf0Decoder {
    /// A decoder with an empty reference table.
    pub fn new(limits: AmfLimits) -> Self {
        Amf0Decoder {
            limits,
            complex_seen: 0,
            values: 0,
        }
    }

    /// Decodes one value and advances `input` past it (left as it was on error).
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Amf0Value, Amf0Error> {
        self.decode_at(input, 0)
    }

    fn decode_at(&mut self, input: &mut &[u8], report_base: usize) -> Result<Amf0Value, Amf0Error> {
        let mut reader = Reader {
            buf: input,
            pos: 0,
            report_base,
        };
        let value = self.value(&mut reader, 0)?;
        *input = reader.rest();
        Ok(value)
    }

    fn charge(&mut self, offset: usize) -> Result<(), Amf0Error> {
        self.values = self.values.saturating_add(1);
        if self.values > self.limits.max_values {
            return Err(Amf0Error::TooManyValues {
                max_values: self.limits.max_values,
                offset,
            });
        }
        Ok(())
    }

    /// Opens a complex value at `depth`: checks the depth, takes a reference table slot, and
    /// returns the depth of its children. The slot is taken before the contents are read,
    /// matching the order in which the encoder numbers complex values.
    fn enter(&mut self, depth: usize, offset: usize) -> Result<usize, Amf0Error> {
        let inner = depth + 1;
        if inner > self.limits.depth() {
            return Err(Amf0Error::DepthExceeded {
                max_depth: self.limits.depth(),
                offset,
            });
        }
        self.complex_seen += 1;
        Ok(inner)
    }

    fn value(&mut self, r: &mut Reader<'_>, depth: usize) -> Result<Amf0Value, Amf0Error> {
        let offset = r.offset();
        let marker = r.array::<1>("type marker")?[0];
        self.charge(offset)?;
        Ok(match marker {
            MARKER_NUMBER => Amf0Value::Number(f64::from_be_bytes(r.array("number")?)),
            MARKER_BOOLEAN => Amf0Value::Boolean(r.array::<1>("boolean")?[0] != 0),
            MARKER_STRING => Amf0Value::String(r.short_string("string")?),
            MARKER_OBJECT => {
                let inner = self.enter(depth, offset)?;
                Amf0Value::Object(self.properties(r, inner)?)
            }
            MARKER_NULL => Amf0Value::Null,
            MARKER_UNDEFINED => Amf0Value::Undefined,
            MARKER_REFERENCE => {
                let index = u16::from_be_bytes(r.array("reference")?);
                if usize::from(index) >= self.complex_seen {
                    return Err(Amf0Error::BadReference {
                        index,
                        table_len: self.complex_seen,
                        offset,
                    });
                }
                Amf0Value::Reference(index)
            }
            MARKER_ECMA_ARRAY => {
                // The associative count is only a hint (encoders get it wrong); the
                // object end marker is what ends the array.
                let _count = u32::from_be_bytes(r.array("ECMA array count")?);
                let inner = self.enter(depth, offset)?;
                Amf0Value::EcmaArray(self.properties(r, inner)?)
            }
            MARKER_STRICT_ARRAY => {
                let count = u32::from_be_bytes(r.array("strict array count")?);
                let count = r.declared(u64::from(count), 1, "strict array count")?;
                let inner = self.enter(depth, offset)?;
                let mut items = Vec::with_capacity(count);
                for _ in 0..count {
                    items.push(self.value(r, inner)?);
                }
                Amf0Value::StrictArray(items)
            }
            MARKER_DATE => {
                let millis = f64::from_be_bytes(r.array("date")?);
                let time_zone = i16::from_be_bytes(r.array("date time zone")?);
                Amf0Value::Date { millis, time_zone }
            }
            MARKER_LONG_STRING => Amf0Value::LongString(r.long_string("long string")?),
            MARKER_UNSUPPORTED => Amf0Value::Unsupported,
            MARKER_XML_DOCUMENT => Amf0Value::XmlDocument(r.long_string("XML document")?),
            MARKER_TYPED_OBJECT => {
                let class_name = r.short_string("class name")?;
                let inner = self.enter(depth, offset)?;
                let properties = self.properties(r, inner)?;
                Amf0Value::TypedObject {
                    class_name,
                    properties,
                }
            }
            MARKER_AVMPLUS => {
                let mut rest = r.rest();
                let before = rest.len();
                let value = amf3::decode_embedded(
                    &mut rest,
                    &self.limits,
                    depth,
                    &mut self.values,
                    r.offset(),
                )?;
                r.pos += before - rest.len();
                Amf0Value::AvmPlus(value)
            }
            MARKER_OBJECT_END => return Err(Amf0Error::UnexpectedObjectEnd { offset }),
            MARKER_MOVIECLIP | MARKER_RECORDSET => {
                return Err(Amf0Error::ReservedMarker { marker, offset })
            }
            other => {
                return Err(Amf0Error::UnknownMarker {
                    marker: other,
                    offset,
                })
            }
        })
    }

    /// Properties (name, value) until the empty name followed by the object end marker
    /// (§2.5). An empty name before any other marker is taken as an ordinary property.
    fn properties(
        &mut self,
        r: &mut Reader<'_>,
        depth: usize,
    ) -> Result<Vec<(String, Amf0Value)>, Amf0Error> {
        let mut properties = Vec::new();
        loop {
            let name = r.short_string("property name")?;
            if name.is_empty() && r.peek() == Some(MARKER_OBJECT_END) {
                r.pos += 1;
                return Ok(properties);
            }
            let value = self.value(r, depth)?;
            properties.push((name, value));
        }
    }
}

/// Decodes one AMF0 value and advances `input` past it (left as it was on error). References
/// must point at complex values earlier in this same value.
pub fn decode(input: &mut &[u8], limits: &AmfLimits) -> Result<Amf0Value, Amf0Error> {
    Amf0Decoder::new(*limits).decode(input)
}

/// Decodes values until `input` ends, with one reference table and one value budget for the
/// whole sequence (as in a command message body).
pub fn decode_all(input: &[u8], limits: &AmfLimits) -> Result<Vec<Amf0Value>, Amf0Error> {
    let mut decoder = Amf0Decoder::new(*limits);
    let mut rest = input;
    let mut values = Vec::new();
    while !rest.is_empty() {
        let offset = input.len() - rest.len();
        values.push(decoder.decode_at(&mut rest, offset)?);
    }
    Ok(values)
}

/// Calls `f` with the index of every `Reference` in `values`, in no particular order, until
/// it returns false. An explicit stack, not recursion: the values may be of any depth.
fn visit_references(values: &[Amf0Value], mut f: impl FnMut(u16) -> bool) {
    let mut stack: Vec<&Amf0Value> = values.iter().collect();
    while let Some(value) = stack.pop() {
        match value {
            Amf0Value::Reference(index) if !f(*index) => return,
            Amf0Value::Object(p)
            | Amf0Value::EcmaArray(p)
            | Amf0Value::TypedObject { properties: p, .. } => {
                stack.extend(p.iter().map(|(_, v)| v));
            }
            Amf0Value::StrictArray(items) => stack.extend(items.iter()),
            _ => {}
        }
    }
}

/// Replace every `Reference` in a decoded sequence by a copy of the value it points to, so
/// the values stand on their own (a command can be rebuilt, metadata re-encoded, a shared
/// object change relayed). The table is built as the decoder builds it: objects, typed
/// objects, ECMA and strict arrays, in order. Refused, with the decoder's own errors:
/// - a reference to a value still open (a loop: an object whose member refers to itself);
/// - a copy that would nest deeper than [`AmfLimits::depth`] where it lands (checked before
///   the copy is made; the walk itself checks the depth before it descends), so no resolved
///   value is ever deeper than a decoded one could be;
/// - copies weighing more than `limits.max_values` in all, a value counting one and string
///   payloads one per [`amf3::PAYLOAD_BYTES_PER_VALUE`] bytes, as the AMF3 decoder charges
///   its own references: a reference bomb (doubling arrays, or many references to one long
///   string) fails before it allocates.
pub fn resolve_references(
    values: Vec<Amf0Value>,
    limits: &AmfLimits,
) -> Result<Vec<Amf0Value>, Amf0Error> {
    /// Something resolved, with its weight and height (complex levels it opens).
    type Resolved<T> = (T, usize, usize);
    /// A resolved complex value, with its weight and height.
    struct Entry {
        value: Option<Amf0Value>,
        weight: usize,
        height: usize,
    }
    struct Resolver<'a> {
        table: Vec<Option<Entry>>,
        /// Slots some reference points at.
        wanted: Vec<bool>,
        copied: usize,
        limits: &'a AmfLimits,
    }
    fn text(s: &str) -> usize {
        s.len() / amf3::PAYLOAD_BYTES_PER_VALUE
    }
    impl Resolver<'_> {
        fn deeper(&self) -> Amf0Error {
            Amf0Error::DepthExceeded {
                max_depth: self.limits.depth(),
                offset: 0,
            }
        }

        fn charge(&mut self, weight: usize) -> Result<(), Amf0Error> {
            self.copied = self.copied.saturating_add(weight);
            if self.copied > self.limits.max_values {
                return Err(Amf0Error::TooManyValues {
                    max_values: self.limits.max_values,
                    offset: 0,
                });
            }
            Ok(())
        }

        /// Properties of a complex value whose children sit at `depth`; returns them with
        /// their total weight and greatest height.
        fn props(
            &mut self,
            props: Vec<(String, Amf0Value)>,
            depth: usize,
        ) -> Result<Resolved<Vec<(String, Amf0Value)>>, Amf0Error> {
            let (mut weight, mut height) = (0usize, 0usize);
            let mut out = Vec::with_capacity(props.len());
            for (k, v) in props {
                let (v, w, h) = self.value(v, depth)?;
                weight = weight.saturating_add(w + text(&k));
                height = height.max(h);
                out.push((k, v));
            }
            Ok((out, weight, height))
        }

        /// Resolves `v`, which sits inside `depth` complex values: the value, its weight and
        /// its height.
        fn value(
            &mut self,
            v: Amf0Value,
            depth: usize,
        ) -> Result<(Amf0Value, usize, usize), Amf0Error> {
            let complex = matches!(
                v,
                Amf0Value::Object(_)
                    | Amf0Value::EcmaArray(_)
                    | Amf0Value::TypedObject { .. }
                    | Amf0Value::StrictArray(_)
            );
            let slot = self.table.len();
            if complex {
                // Checked before descending: the walk never goes deeper than the limit.
                if depth + 1 > self.limits.depth() {
                    return Err(self.deeper());
                }
                self.table.push(None);
            }
            let inner = depth + 1;
            let (resolved, weight, height) = match v {
                Amf0Value::Reference(index) => {
                    let bad = |table_len| Amf0Error::BadReference {
                        index,
                        table_len,
                        offset: 0,
                    };
                    let entry = match self.table.get(usize::from(index)) {
                        Some(Some(entry)) => entry,
                        // Still open: the reference is a loop.
                        Some(None) => return Err(bad(usize::from(index))),
                        None => return Err(bad(self.table.len())),
                    };
                    if depth + entry.height > self.limits.depth() {
                        return Err(self.deeper());
                    }
                    let (weight, height) = (entry.weight, entry.height);
                    let Some(value) = entry.value.clone() else {
                        // Not kept: only referenced slots are (see `wanted`).
                        return Err(bad(self.table.len()));
                    };
                    self.charge(weight)?;
                    (value, weight, height)
                }
                Amf0Value::Object(p) => {
                    let (p, w, h) = self.props(p, inner)?;
                    (Amf0Value::Object(p), w + 1, h + 1)
                }
                Amf0Value::EcmaArray(p) => {
                    let (p, w, h) = self.props(p, inner)?;
                    (Amf0Value::EcmaArray(p), w + 1, h + 1)
                }
                Amf0Value::TypedObject {
                    class_name,
                    properties,
                } => {
                    let (properties, w, h) = self.props(properties, inner)?;
                    let w = w + 1 + text(&class_name);
                    let value = Amf0Value::TypedObject {
                        class_name,
                        properties,
                    };
                    (value, w, h + 1)
                }
                Amf0Value::StrictArray(items) => {
                    let (mut weight, mut height) = (1usize, 0usize);
                    let mut out = Vec::with_capacity(items.len());
                    for item in items {
                        let (v, w, h) = self.value(item, inner)?;
                        weight = weight.saturating_add(w);
                        height = height.max(h);
                        out.push(v);
                    }
                    (Amf0Value::StrictArray(out), weight, height + 1)
                }
                Amf0Value::String(s) => {
                    let w = 1 + text(&s);
                    (Amf0Value::String(s), w, 0)
                }
                Amf0Value::LongString(s) => {
                    let w = 1 + text(&s);
                    (Amf0Value::LongString(s), w, 0)
                }
                Amf0Value::XmlDocument(s) => {
                    let w = 1 + text(&s);
                    (Amf0Value::XmlDocument(s), w, 0)
                }
                Amf0Value::AvmPlus(v) => {
                    let (w, h) = v.weight_and_height();
                    if depth + h > self.limits.depth() {
                        return Err(self.deeper());
                    }
                    (Amf0Value::AvmPlus(v), w, h)
                }
                other => (other, 1, 0),
            };
            if complex {
                // Only values something refers to are kept; keeping one is a copy too.
                let value = if self.wanted.get(slot).copied().unwrap_or(false) {
                    self.charge(weight)?;
                    Some(resolved.clone())
                } else {
                    None
                };
                self.table[slot] = Some(Entry {
                    value,
                    weight,
                    height,
                });
            }
            Ok((resolved, weight, height))
        }
    }
    let mut wanted = Vec::new();
    visit_references(&values, |index| {
        let index = usize::from(index);
        if wanted.len() <= index {
            wanted.resize(index + 1, false);
        }
        wanted[index] = true;
        true
    });
    if wanted.is_empty() {
        return Ok(values);
    }
    let mut resolver = Resolver {
        table: Vec::new(),
        wanted,
        copied: 0,
        limits,
    };
    values
        .into_iter()
        .map(|v| resolver.value(v, 0).map(|(v, _, _)| v))
        .collect()
}

/// Appends the encoding of `value` to `out` (nothing is appended on error). A String longer
/// than 65535 bytes goes out as a LongString.
pub fn encode(value: &Amf0Value, out: &mut Vec<u8>) -> Result<(), Amf0Error> {
    let len = out.len();
    let result = write_value(value, out);
    if result.is_err() {
        out.truncate(len);
    }
    result
}

/// Appends the encodings of `values` one after the other (nothing is appended on error).
pub fn encode_all(values: &[Amf0Value], out: &mut Vec<u8>) -> Result<(), Amf0Error> {
    let len = out.len();
    let result = values.iter().try_for_each(|value| write_value(value, out));
    if result.is_err() {
        out.truncate(len);
    }
    result
}

fn write_value(value: &Amf0Value, out: &mut Vec<u8>) -> Result<(), Amf0Error> {
    match value {
        Amf0Value::Number(n) => {
            out.push(MARKER_NUMBER);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Amf0Value::Boolean(b) => {
            out.push(MARKER_BOOLEAN);
            out.push(u8::from(*b));
        }
        Amf0Value::String(s) => match u16::try_from(s.len()) {
            Ok(len) => {
                out.push(MARKER_STRING);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            // Too long for a 16-bit length: the long string type exists for this (§2.14).
            Err(_) => write_long(MARKER_LONG_STRING, s, "long string", out)?,
        },
        Amf0Value::Object(properties) => {
            out.push(MARKER_OBJECT);
            write_properties(properties, out)?;
        }
        Amf0Value::Null => out.push(MARKER_NULL),
        Amf0Value::Undefined => out.push(MARKER_UNDEFINED),
        Amf0Value::Reference(index) => {
            out.push(MARKER_REFERENCE);
            out.extend_from_slice(&index.to_be_bytes());
        }
        Amf0Value::EcmaArray(properties) => {
            out.push(MARKER_ECMA_ARRAY);
            out.extend_from_slice(&count_u32(properties.len(), "ECMA array count")?.to_be_bytes());
            write_properties(properties, out)?;
        }
        Amf0Value::StrictArray(items) => {
            out.push(MARKER_STRICT_ARRAY);
            out.extend_from_slice(&count_u32(items.len(), "strict array count")?.to_be_bytes());
            for item in items {
                write_value(item, out)?;
            }
        }
        Amf0Value::Date { millis, time_zone } => {
            out.push(MARKER_DATE);
            out.extend_from_slice(&millis.to_be_bytes());
            out.extend_from_slice(&time_zone.to_be_bytes());
        }
        Amf0Value::LongString(s) => write_long(MARKER_LONG_STRING, s, "long string", out)?,
        Amf0Value::Unsupported => out.push(MARKER_UNSUPPORTED),
        Amf0Value::XmlDocument(s) => write_long(MARKER_XML_DOCUMENT, s, "XML document", out)?,
        Amf0Value::TypedObject {
            class_name,
            properties,
        } => {
            out.push(MARKER_TYPED_OBJECT);
            write_short(class_name, "class name", out)?;
            write_properties(properties, out)?;
        }
        Amf0Value::AvmPlus(value) => {
            out.push(MARKER_AVMPLUS);
            amf3::encode(value, out)?;
        }
    }
    Ok(())
}

fn count_u32(len: usize, what: &'static str) -> Result<u32, Amf0Error> {
    u32::try_from(len).map_err(|_| Amf0Error::TooLong {
        what,
        len,
        max: usize::try_from(u32::MAX).unwrap_or(usize::MAX),
    })
}

/// UTF-8 with a 16-bit length, no marker.
fn write_short(s: &str, what: &'static str, out: &mut Vec<u8>) -> Result<(), Amf0Error> {
    let len = u16::try_from(s.len()).map_err(|_| Amf0Error::TooLong {
        what,
        len: s.len(),
        max: usize::from(u16::MAX),
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// A marker, then UTF-8 with a 32-bit length.
fn write_long(marker: u8, s: &str, what: &'static str, out: &mut Vec<u8>) -> Result<(), Amf0Error> {
    let len = count_u32(s.len(), what)?;
    out.push(marker);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Properties, then the empty name and the object end marker (§2.5).
fn write_properties(
    properties: &[(String, Amf0Value)],
    out: &mut Vec<u8>,
) -> Result<(), Amf0Error> {
    for (name, value) in properties {
        write_short(name, "property name", out)?;
        write_value(value, out)?;
    }
    out.extend_from_slice(&[0x00, 0x00, MARKER_OBJECT_END]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::amf3::{Amf3Error, Amf3Object, Amf3Value};
    use proptest::prelude::*;

    fn limits() -> AmfLimits {
        AmfLimits::default()
    }

    /// A 16-bit length then the bytes (AMF0 UTF-8).
    fn utf8(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&u16::try_from(s.len()).unwrap().to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    fn string_value(out: &mut Vec<u8>, s: &str) {
        out.push(0x02);
        utf8(out, s);
    }

    fn round_trip_bytes(bytes: &[u8]) -> Amf0Value {
        let mut input = bytes;
        let value = decode(&mut input, &limits()).unwrap();
        assert!(input.is_empty(), "decode left {} bytes", input.len());
        let mut out = Vec::new();
        encode(&value, &mut out).unwrap();
        assert_eq!(out, bytes);
        value
    }

    /// The connect command as ffmpeg's RTMP muxer sends it (libavformat/rtmpproto.c).
    fn ffmpeg_connect() -> Vec<u8> {
        let mut b = Vec::new();
        string_value(&mut b, "connect");
        b.push(0x00);
        b.extend_from_slice(&[0x3F, 0xF0, 0, 0, 0, 0, 0, 0]);
        b.push(0x03);
        utf8(&mut b, "app");
        string_value(&mut b, "live");
        utf8(&mut b, "type");
        string_value(&mut b, "nonprivate");
        utf8(&mut b, "flashVer");
        string_value(&mut b, "FMLE/3.0 (compatible; Lavf61.7.100)");
        utf8(&mut b, "tcUrl");
        string_value(&mut b, "rtmp://127.0.0.1:1935/live");
        b.extend_from_slice(&[0x00, 0x00, 0x09]);
        b
    }

    #[test]
    fn ffmpeg_connect_command_decodes_and_reencodes_identically() {
        let bytes = ffmpeg_connect();
        let values = decode_all(&bytes, &limits()).unwrap();
        assert_eq!(values.len(), 3);
        assert_eq!(values[0].as_str(), Some("connect"));
        assert_eq!(values[1].as_f64(), Some(1.0));
        let command_object = &values[2];
        assert_eq!(
            command_object.get("app").and_then(Amf0Value::as_str),
            Some("live")
        );
        assert_eq!(
            command_object.get("tcUrl").and_then(Amf0Value::as_str),
            Some("rtmp://127.0.0.1:1935/live")
        );
        assert_eq!(command_object.get("missing"), None);
        assert_eq!(
            command_object,
            &Amf0Value::object([
                ("app", Amf0Value::String("live".into())),
                ("type", Amf0Value::String("nonprivate".into())),
                (
                    "flashVer",
                    Amf0Value::String("FMLE/3.0 (compatible; Lavf61.7.100)".into())
                ),
                (
                    "tcUrl",
                    Amf0Value::String("rtmp://127.0.0.1:1935/live".into())
                ),
            ])
        );
        let mut out = Vec::new();
        encode_all(&values, &mut out).unwrap();
        assert_eq!(out, bytes);
    }

    #[test]
    fn decode_advances_past_one_value_only() {
        let bytes = ffmpeg_connect();
        let mut input = &bytes[..];
        assert_eq!(
            decode(&mut input, &limits()).unwrap(),
            Amf0Value::String("connect".into())
        );
        assert_eq!(input.len(), bytes.len() - 10);
        assert_eq!(input[0], 0x00);
    }

    #[test]
    fn every_marker_round_trips_exactly() {
        round_trip_bytes(&[0x00, 0x40, 0x09, 0x21, 0xFB, 0x54, 0x44, 0x2D, 0x18]);
        assert_eq!(round_trip_bytes(&[0x01, 0x01]), Amf0Value::Boolean(true));
        assert_eq!(round_trip_bytes(&[0x01, 0x00]), Amf0Value::Boolean(false));
        assert_eq!(
            round_trip_bytes(&[0x02, 0x00, 0x02, b'h', b'i']),
            Amf0Value::String("hi".into())
        );
        assert_eq!(
            round_trip_bytes(&[0x02, 0x00, 0x00]),
            Amf0Value::String(String::new())
        );
        assert_eq!(
            round_trip_bytes(&[0x03, 0x00, 0x01, b'a', 0x05, 0x00, 0x00, 0x09]),
            Amf0Value::object([("a", Amf0Value::Null)])
        );
        assert_eq!(round_trip_bytes(&[0x05]), Amf0Value::Null);
        assert_eq!(round_trip_bytes(&[0x06]), Amf0Value::Undefined);
        assert_eq!(
            round_trip_bytes(&[
                0x08, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, b'k', 0x06, 0x00, 0x00, 0x09
            ]),
            Amf0Value::EcmaArray(vec![("k".into(), Amf0Value::Undefined)])
        );
        assert_eq!(
            round_trip_bytes(&[0x0A, 0x00, 0x00, 0x00, 0x02, 0x05, 0x07, 0x00, 0x00]),
            Amf0Value::StrictArray(vec![Amf0Value::Null, Amf0Value::Reference(0)])
        );
        assert_eq!(
            round_trip_bytes(&[0x0B, 0x42, 0x78, 0, 0, 0, 0, 0, 0, 0xFF, 0xC4]),
            Amf0Value::Date {
                millis: 1_649_267_441_664.0,
                time_zone: -60
            }
        );
        assert_eq!(
            round_trip_bytes(&[0x0C, 0x00, 0x00, 0x00, 0x01, b'x']),
            Amf0Value::LongString("x".into())
        );
        assert_eq!(round_trip_bytes(&[0x0D]), Amf0Value::Unsupported);
        assert_eq!(
            round_trip_bytes(&[0x0F, 0x00, 0x00, 0x00, 0x03, b'<', b'a', b'>']),
            Amf0Value::XmlDocument("<a>".into())
        );
        assert_eq!(
            round_trip_bytes(&[
                0x10, 0x00, 0x01, b'C', 0x00, 0x01, b'p', 0x01, 0x00, 0x00, 0x00, 0x09
            ]),
            Amf0Value::TypedObject {
                class_name: "C".into(),
                properties: vec![("p".into(), Amf0Value::Boolean(false))]
            }
        );
        // AvmPlus: AMF3 integer 5, then AMF3 anonymous dynamic object {a: "b"}.
        assert_eq!(
            round_trip_bytes(&[0x11, 0x04, 0x05]),
            Amf0Value::AvmPlus(Amf3Value::Integer(5))
        );
        let object =
            round_trip_bytes(&[0x11, 0x0A, 0x0B, 0x01, 0x03, b'a', 0x06, 0x03, b'b', 0x01]);
        assert_eq!(
            object,
            Amf0Value::AvmPlus(Amf3Value::Object(Amf3Object {
                class_name: String::new(),
                dynamic: true,
                sealed: vec![],
                dynamic_members: vec![("a".into(), Amf3Value::String("b".into()))],
            }))
        );
    }

    #[test]
    fn accessors() {
        assert_eq!(Amf0Value::LongString("x".into()).as_str(), Some("x"));
        assert_eq!(Amf0Value::Number(2.0).as_str(), None);
        assert_eq!(
            Amf0Value::AvmPlus(Amf3Value::Integer(3)).as_f64(),
            Some(3.0)
        );
        assert_eq!(Amf0Value::Boolean(true).as_bool(), Some(true));
        assert!(Amf0Value::Null.is_null_or_undefined());
        assert!(Amf0Value::Undefined.is_null_or_undefined());
        assert!(Amf0Value::AvmPlus(Amf3Value::Null).is_null_or_undefined());
        assert!(!Amf0Value::Number(0.0).is_null_or_undefined());
        let typed = Amf0Value::TypedObject {
            class_name: "C".into(),
            properties: vec![("level".into(), Amf0Value::String("status".into()))],
        };
        assert_eq!(
            typed.get("level").and_then(Amf0Value::as_str),
            Some("status")
        );
        let ecma = Amf0Value::EcmaArray(vec![("duration".into(), Amf0Value::Number(0.0))]);
        assert_eq!(ecma.get("duration").and_then(Amf0Value::as_f64), Some(0.0));
        assert_eq!(Amf0Value::Null.get("x"), None);
    }

    #[test]
    fn ecma_array_count_is_a_hint_and_encode_writes_the_real_count() {
        // Declares 7 entries but holds 1 (seen from real encoders); and 0 for 2 entries.
        let wrong = [
            0x08, 0x00, 0x00, 0x00, 0x07, 0x00, 0x01, b'k', 0x05, 0x00, 0x00, 0x09,
        ];
        let value = decode(&mut &wrong[..], &limits()).unwrap();
        assert_eq!(
            value,
            Amf0Value::EcmaArray(vec![("k".into(), Amf0Value::Null)])
        );
        let mut out = Vec::new();
        encode(&value, &mut out).unwrap();
        assert_eq!(&out[1..5], &[0, 0, 0, 1]);
        let zero = [
            0x08, 0, 0, 0, 0, 0x00, 0x01, b'a', 0x05, 0x00, 0x01, b'b', 0x06, 0x00, 0x00, 0x09,
        ];
        let value = decode(&mut &zero[..], &limits()).unwrap();
        let mut out = Vec::new();
        encode(&value, &mut out).unwrap();
        assert_eq!(&out[1..5], &[0, 0, 0, 2]);
    }

    #[test]
    fn long_strings_use_the_long_string_marker() {
        let text = "é".repeat(40_000); // 80000 bytes
        let mut out = Vec::new();
        encode(&Amf0Value::String(text.clone()), &mut out).unwrap();
        assert_eq!(out[0], 0x0C);
        assert_eq!(&out[1..5], &80_000u32.to_be_bytes());
        assert_eq!(
            decode(&mut &out[..], &limits()).unwrap(),
            Amf0Value::LongString(text)
        );
        // Exactly 65535 bytes still fits the short form.
        let mut out = Vec::new();
        encode(&Amf0Value::String("a".repeat(65_535)), &mut out).unwrap();
        assert_eq!(&out[..3], &[0x02, 0xFF, 0xFF]);
    }

    #[test]
    fn encode_rejects_names_over_65535_bytes_and_appends_nothing() {
        let mut out = vec![0xAA];
        let bad = Amf0Value::object([("k".repeat(70_000), Amf0Value::Null)]);
        assert!(matches!(
            encode(&bad, &mut out),
            Err(Amf0Error::TooLong {
                what: "property name",
                len: 70_000,
                ..
            })
        ));
        assert_eq!(out, vec![0xAA]);
        let bad = Amf0Value::TypedObject {
            class_name: "c".repeat(65_536),
            properties: vec![],
        };
        assert!(matches!(
            encode(&bad, &mut out),
            Err(Amf0Error::TooLong { .. })
        ));
        // An AMF3 value that cannot be encoded surfaces as the wrapped AMF3 error.
        let bad = Amf0Value::AvmPlus(Amf3Value::Externalizable {
            class_name: "com.example.Mystery".into(),
            value: Box::new(Amf3Value::Null),
        });
        assert!(matches!(
            encode(&bad, &mut out),
            Err(Amf0Error::Amf3 {
                source: Amf3Error::UnsupportedExternalizable { .. }
            })
        ));
        assert_eq!(out, vec![0xAA]);
    }

    #[test]
    fn empty_property_name_not_followed_by_object_end_is_a_property() {
        let bytes = [0x03, 0x00, 0x00, 0x05, 0x00, 0x00, 0x09];
        assert_eq!(
            round_trip_bytes(&bytes),
            Amf0Value::object([("", Amf0Value::Null)])
        );
    }

    #[test]
    fn references_must_point_at_complex_values_already_seen() {
        // Object {self: ref 0}: the object takes slot 0 when it starts, so this is valid.
        let ok = [0x03, 0x00, 0x01, b's', 0x07, 0x00, 0x00, 0x00, 0x00, 0x09];
        assert_eq!(
            round_trip_bytes(&ok),
            Amf0Value::object([("s", Amf0Value::Reference(0))])
        );
        // A top-level reference with nothing seen yet.
        assert!(matches!(
            decode(&mut &[0x07, 0x00, 0x00][..], &limits()),
            Err(Amf0Error::BadReference {
                index: 0,
                table_len: 0,
                offset: 0
            })
        ));
        // Index 1 while only one complex value was seen.
        let bad = [0x0A, 0x00, 0x00, 0x00, 0x01, 0x07, 0x00, 0x01];
        assert!(matches!(
            decode(&mut &bad[..], &limits()),
            Err(Amf0Error::BadReference {
                index: 1,
                table_len: 1,
                offset: 5
            })
        ));
        // Scalars (even strings) do not take slots.
        let bad = [0x02, 0x00, 0x00, 0x07, 0x00, 0x00];
        assert!(decode_all(&bad, &limits()).is_err());
    }

    #[test]
    fn decode_all_shares_one_reference_table() {
        let mut bytes = vec![0x03, 0x00, 0x00, 0x09]; // {}
        bytes.extend_from_slice(&[0x07, 0x00, 0x00]); // ref 0, in the next value
        let values = decode_all(&bytes, &limits()).unwrap();
        assert_eq!(
            values,
            vec![Amf0Value::Object(vec![]), Amf0Value::Reference(0)]
        );
        // A lone decode of the second value has no table.
        assert!(decode(&mut &bytes[4..], &limits()).is_err());
        // Error offsets count from the start of the sequence.
        let mut bytes = vec![0x05, 0x05];
        bytes.push(0x12);
        assert_eq!(
            decode_all(&bytes, &limits()),
            Err(Amf0Error::UnknownMarker {
                marker: 0x12,
                offset: 2
            })
        );
    }

    #[test]
    fn avmplus_values_have_fresh_amf3_tables() {
        // 11 06 05 "ab"  then  11 06 00 (string reference 0): the second AMF3 value starts a
        // new table, so its reference is bad.
        let bytes = [0x11, 0x06, 0x05, b'a', b'b', 0x11, 0x06, 0x00];
        match decode_all(&bytes, &limits()) {
            Err(Amf0Error::Amf3 {
                source:
                    Amf3Error::BadStringReference {
                        index: 0,
                        table_len: 0,
                        offset,
                    },
            }) => {
                assert_eq!(offset, 7, "AMF3 offsets count from the AMF0 input");
            }
            other => panic!("unexpected {other:?}"),
        }
        // Within one AMF3 value the reference is fine.
        let bytes = [0x11, 0x09, 0x05, 0x01, 0x06, 0x05, b'a', b'b', 0x06, 0x00];
        assert_eq!(
            round_trip_bytes(&bytes),
            Amf0Value::AvmPlus(Amf3Value::Array {
                associative: vec![],
                dense: vec![
                    Amf3Value::String("ab".into()),
                    Amf3Value::String("ab".into())
                ],
            })
        );
    }

    #[test]
    fn every_truncation_of_a_valid_encoding_is_an_error() {
        let mut bytes = ffmpeg_connect();
        let rich = Amf0Value::StrictArray(vec![
            Amf0Value::Date {
                millis: 1.5,
                time_zone: 0,
            },
            Amf0Value::LongString("long".into()),
            Amf0Value::XmlDocument("<x/>".into()),
            Amf0Value::EcmaArray(vec![("a".into(), Amf0Value::Reference(0))]),
            Amf0Value::TypedObject {
                class_name: "T".into(),
                properties: vec![("b".into(), Amf0Value::Boolean(true))],
            },
            Amf0Value::AvmPlus(Amf3Value::Array {
                associative: vec![("k".into(), Amf3Value::Double(2.5))],
                dense: vec![Amf3Value::String("s".into())],
            }),
        ]);
        let mut encoded = Vec::new();
        encode(&rich, &mut encoded).unwrap();
        for cut in 0..encoded.len() {
            let mut input = &encoded[..cut];
            assert!(decode(&mut input, &limits()).is_err(), "cut at {cut}");
            assert_eq!(input.len(), cut, "input must not move on error");
        }
        // decode_all of a cut command fails unless the cut falls between values.
        let boundaries = [0, 10, 19, bytes.len()];
        for cut in 0..bytes.len() {
            let result = decode_all(&bytes[..cut], &limits());
            assert_eq!(result.is_ok(), boundaries.contains(&cut), "cut at {cut}");
        }
        bytes.clear();
    }

    #[test]
    fn huge_declared_lengths_fail_before_allocating() {
        let cases: [&[u8]; 5] = [
            &[0x0C, 0xFF, 0xFF, 0xFF, 0xFF, b'a'],
            &[0x0F, 0xFF, 0xFF, 0xFF, 0xFF],
            &[0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x05, 0x05],
            &[0x02, 0xFF, 0xFF, b'a'],
            &[0x10, 0xFF, 0xFF],
        ];
        for bytes in cases {
            assert!(
                matches!(
                    decode(&mut &bytes[..], &limits()),
                    Err(Amf0Error::LengthExceedsInput { .. })
                ),
                "{bytes:02x?}"
            );
        }
    }

    #[test]
    fn nesting_beyond_the_depth_limit_fails() {
        let nest = |levels: usize| {
            let mut bytes = Vec::new();
            for _ in 0..levels {
                bytes.extend_from_slice(&[0x0A, 0x00, 0x00, 0x00, 0x01]);
            }
            bytes.push(0x05);
            bytes
        };
        let limits = AmfLimits {
            max_depth: 8,
            max_values: 1000,
        };
        assert!(decode(&mut &nest(8)[..], &limits).is_ok());
        assert!(matches!(
            decode(&mut &nest(9)[..], &limits),
            Err(Amf0Error::DepthExceeded {
                max_depth: 8,
                offset: 40
            })
        ));
        // Deep input cannot blow the stack with the default limits either.
        assert!(matches!(
            decode(&mut &nest(100_000)[..], &AmfLimits::default()),
            Err(Amf0Error::DepthExceeded { .. })
        ));
        // AMF3 nesting behind AvmPlus counts from the AMF0 depth.
        let mut bytes = nest(7);
        bytes.pop();
        bytes.extend_from_slice(&[0x11, 0x09, 0x03, 0x01, 0x09, 0x03, 0x01, 0x01]);
        assert!(matches!(
            decode(&mut &bytes[..], &limits),
            Err(Amf0Error::Amf3 {
                source: Amf3Error::DepthExceeded { max_depth: 8, .. }
            })
        ));
    }

    #[test]
    fn value_budget_is_enforced() {
        let mut bytes = vec![0x0A, 0x00, 0x00, 0x00, 0x64];
        bytes.extend_from_slice(&[0x05; 100]);
        let tight = AmfLimits {
            max_depth: 4,
            max_values: 100,
        };
        assert!(matches!(
            decode(&mut &bytes[..], &tight),
            Err(Amf0Error::TooManyValues {
                max_values: 100,
                ..
            })
        ));
        let enough = AmfLimits {
            max_depth: 4,
            max_values: 101,
        };
        assert!(decode(&mut &bytes[..], &enough).is_ok());
        // The budget spans a whole decode_all sequence.
        let nulls = [0x05; 50];
        assert!(decode_all(
            &nulls,
            &AmfLimits {
                max_depth: 4,
                max_values: 49
            }
        )
        .is_err());
    }

    #[test]
    fn bad_utf8_unknown_and_reserved_markers_are_typed_errors() {
        assert!(matches!(
            decode(&mut &[0x02, 0x00, 0x02, 0xC3, 0x28][..], &limits()),
            Err(Amf0Error::InvalidUtf8 {
                what: "string",
                offset: 3
            })
        ));
        assert!(matches!(
            decode(
                &mut &[0x03, 0x00, 0x01, 0xFF, 0x05, 0x00, 0x00, 0x09][..],
                &limits()
            ),
            Err(Amf0Error::InvalidUtf8 {
                what: "property name",
                ..
            })
        ));
        for marker in [0x12, 0x20, 0xFF] {
            assert_eq!(
                decode(&mut &[marker][..], &limits()),
                Err(Amf0Error::UnknownMarker { marker, offset: 0 })
            );
        }
        for marker in [0x04, 0x0E] {
            assert_eq!(
                decode(&mut &[marker][..], &limits()),
                Err(Amf0Error::ReservedMarker { marker, offset: 0 })
            );
        }
        assert_eq!(
            decode(&mut &[0x09][..], &limits()),
            Err(Amf0Error::UnexpectedObjectEnd { offset: 0 })
        );
        assert!(matches!(
            decode(&mut &[][..], &limits()),
            Err(Amf0Error::Truncated { offset: 0, .. })
        ));
    }

    fn arb_amf3_leaf() -> impl Strategy<Value = Amf3Value> {
        prop_oneof![
            Just(Amf3Value::Null),
            Just(Amf3Value::Undefined),
            any::<bool>().prop_map(Amf3Value::Boolean),
            (-(1i32 << 28)..(1i32 << 28)).prop_map(Amf3Value::Integer),
            any::<f64>().prop_map(Amf3Value::Double),
            "[ab]{0,3}".prop_map(Amf3Value::String),
        ]
    }

    fn arb_amf3_small() -> impl Strategy<Value = Amf3Value> {
        arb_amf3_leaf().prop_recursive(2, 8, 3, |inner| {
            prop::collection::vec(inner, 0..3).prop_map(|dense| Amf3Value::Array {
                associative: vec![],
                dense,
            })
        })
    }

    fn arb_name() -> BoxedStrategy<String> {
        prop_oneof!["[a-z]{0,6}", "\\PC{0,4}"].boxed()
    }

    fn arb_amf0() -> impl Strategy<Value = Amf0Value> {
        let leaf = prop_oneof![
            any::<f64>().prop_map(Amf0Value::Number),
            any::<bool>().prop_map(Amf0Value::Boolean),
            "\\PC{0,12}".prop_map(Amf0Value::String),
            Just(Amf0Value::Null),
            Just(Amf0Value::Undefined),
            (any::<f64>(), any::<i16>())
                .prop_map(|(millis, time_zone)| Amf0Value::Date { millis, time_zone }),
            "\\PC{0,12}".prop_map(Amf0Value::LongString),
            Just(Amf0Value::Unsupported),
            "\\PC{0,12}".prop_map(Amf0Value::XmlDocument),
            arb_amf3_small().prop_map(Amf0Value::AvmPlus),
            // Only valid below a complex value (the filter below drops it at the top).
            Just(Amf0Value::Reference(0)),
        ];
        leaf.prop_recursive(4, 48, 5, |inner| {
            let props = prop::collection::vec((arb_name(), inner.clone()), 0..5);
            prop_oneof![
                props.clone().prop_map(Amf0Value::Object),
                props.clone().prop_map(Amf0Value::EcmaArray),
                prop::collection::vec(inner, 0..5).prop_map(Amf0Value::StrictArray),
                (arb_name(), props).prop_map(|(class_name, properties)| {
                    Amf0Value::TypedObject {
                        class_name,
                        properties,
                    }
                }),
            ]
        })
        .prop_filter("a top-level reference has nothing to refer to", |v| {
            !matches!(v, Amf0Value::Reference(_))
        })
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(values in prop::collection::vec(arb_amf0(), 1..4)) {
            let mut out = Vec::new();
            encode_all(&values, &mut out).unwrap();
            let decoded = decode_all(&out, &limits()).unwrap();
            // Debug output compares floats bit for bit where it matters (NaN, -0.0).
            prop_assert_eq!(format!("{decoded:?}"), format!("{values:?}"));
            let mut again = Vec::new();
            encode_all(&decoded, &mut again).unwrap();
            prop_assert_eq!(again, out);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_all(&bytes, &limits());
        }

        #[test]
        fn mutated_encodings_never_panic(
            value in arb_amf0(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut out = Vec::new();
            encode(&value, &mut out).unwrap();
            for (index, byte) in flips {
                let i = index.index(out.len());
                out[i] = byte;
            }
            let _ = decode_all(&out, &limits());
        }
    }
}

#[cfg(test)]
mod resolve_tests {
    use super::*;

    #[test]
    fn resolved_copies_never_exceed_the_depth_limit() {
        let limits = AmfLimits {
            max_depth: 4,
            max_values: 1000,
        };
        let mut deep = Amf0Value::Null;
        for _ in 0..4 {
            deep = Amf0Value::StrictArray(vec![deep]);
        }
        // The copy would sit one level below the top: depth 5.
        let values = vec![
            deep.clone(),
            Amf0Value::StrictArray(vec![Amf0Value::Reference(0)]),
        ];
        assert!(matches!(
            resolve_references(values, &limits),
            Err(Amf0Error::DepthExceeded { max_depth: 4, .. })
        ));
        // At the top level it fits.
        let values = vec![deep.clone(), Amf0Value::Reference(0)];
        assert_eq!(
            resolve_references(values, &limits).expect("resolves"),
            vec![deep.clone(), deep]
        );
    }

    #[test]
    fn copies_of_long_strings_are_weighed_by_their_bytes() {
        let obj = Amf0Value::object([("s", Amf0Value::LongString("z".repeat(65_536)))]);
        let refs = |n| {
            let mut values = vec![obj.clone()];
            values.extend(std::iter::repeat_n(Amf0Value::Reference(0), n));
            values
        };
        // 1026 each: ten copies pass, a hundred would be 6.5 MB from 300 bytes of references.
        assert!(resolve_references(refs(10), &AmfLimits::default()).is_ok());
        assert!(matches!(
            resolve_references(refs(100), &AmfLimits::default()),
            Err(Amf0Error::TooManyValues { .. })
        ));
    }

    #[test]
    fn references_resolve_to_copies_and_loops_are_refused() {
        let limits = AmfLimits::default();
        let obj = Amf0Value::object([("a", Amf0Value::Number(1.0))]);
        let values = vec![obj.clone(), Amf0Value::Reference(0)];
        assert_eq!(
            resolve_references(values, &limits).expect("resolves"),
            vec![obj.clone(), obj.clone()]
        );
        // An object containing a reference to itself.
        let looped = vec![Amf0Value::object([("me", Amf0Value::Reference(0))])];
        assert!(matches!(
            resolve_references(looped, &limits),
            Err(Amf0Error::BadReference { .. })
        ));
        // A reference past the table.
        assert!(resolve_references(vec![Amf0Value::Reference(3)], &limits).is_err());
        // Copies count against the budget: a chain of doubling arrays.
        let tight = AmfLimits {
            max_depth: 32,
            max_values: 50,
        };
        let mut chain = vec![Amf0Value::StrictArray(vec![Amf0Value::Null])];
        for i in 0..10u16 {
            chain.push(Amf0Value::StrictArray(vec![
                Amf0Value::Reference(i),
                Amf0Value::Reference(i),
            ]));
        }
        assert!(matches!(
            resolve_references(chain, &tight),
            Err(Amf0Error::TooManyValues { .. })
        ));
    }
}
