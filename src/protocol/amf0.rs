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
mod tests;

#[cfg(test)]
mod resolve_tests;
