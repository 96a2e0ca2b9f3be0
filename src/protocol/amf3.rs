//! AMF3 (Adobe Action Message Format 3): values, decoder and encoder with the string, object
//! and trait reference tables (AMF3 spec §2.2).
//!
//! The decoder resolves every reference into a plain value. An object reference is resolved by
//! *replaying* the bytes of the referenced value (the tables hold strings, traits and byte
//! ranges, never copies of decoded trees), so the memory the tables use stays proportional to
//! the input. Every value a replay produces is counted against [`AmfLimits::max_values`] like any
//! other, and copied string/byte payloads count one value per [`PAYLOAD_BYTES_PER_VALUE`]
//! bytes, which is what makes exponential "reference bombs" fail fast with a typed error.

use std::collections::HashMap;

use thiserror::Error;

use super::amf0::AmfLimits;

// Type markers (AMF3 spec §3.1).
const MARKER_UNDEFINED: u8 = 0x00;
const MARKER_NULL: u8 = 0x01;
const MARKER_FALSE: u8 = 0x02;
const MARKER_TRUE: u8 = 0x03;
const MARKER_INTEGER: u8 = 0x04;
const MARKER_DOUBLE: u8 = 0x05;
const MARKER_STRING: u8 = 0x06;
const MARKER_XML_DOC: u8 = 0x07;
const MARKER_DATE: u8 = 0x08;
const MARKER_ARRAY: u8 = 0x09;
const MARKER_OBJECT: u8 = 0x0A;
const MARKER_XML: u8 = 0x0B;
const MARKER_BYTE_ARRAY: u8 = 0x0C;
const MARKER_VECTOR_INT: u8 = 0x0D;
const MARKER_VECTOR_UINT: u8 = 0x0E;
const MARKER_VECTOR_DOUBLE: u8 = 0x0F;
const MARKER_VECTOR_OBJECT: u8 = 0x10;
const MARKER_DICTIONARY: u8 = 0x11;

/// Largest value a U29 carries (§1.3.1: 29 significant bits).
const U29_MAX: u32 = 0x1FFF_FFFF;
/// Range of the integer type (§3.6): a U29 read as 29-bit two's complement.
const INTEGER_MIN: i32 = -(1 << 28);
const INTEGER_MAX: i32 = (1 << 28) - 1;
/// Largest inline length or reference index: a U29 minus its low flag bit.
const MAX_INLINE_LEN: usize = (1 << 28) - 1;
/// Trait references and inline trait member counts give up 2 and 4 flag bits (§3.12).
const MAX_TRAIT_INDEX: usize = (1 << 27) - 1;
const MAX_SEALED_COUNT: usize = (1 << 25) - 1;

/// Bytes of string or byte-array payload that a resolved reference may copy for the price of
/// one value in [`AmfLimits::max_values`].
pub const PAYLOAD_BYTES_PER_VALUE: usize = 64;

/// Class alias of Flex's `mx.collections.ArrayCollection`, an externalizable class whose body is
/// one value (its source array).
pub const ARRAY_COLLECTION: &str = "flex.messaging.io.ArrayCollection";
/// Class alias of Flex's `mx.utils.ObjectProxy`, an externalizable class whose body is one value
/// (the proxied object).
pub const OBJECT_PROXY: &str = "flex.messaging.io.ObjectProxy";

/// Whether `class_name` is an externalizable class whose body this module knows how to read.
fn is_known_externalizable(class_name: &str) -> bool {
    class_name == ARRAY_COLLECTION || class_name == OBJECT_PROXY
}

/// One AMF3 value (AMF3 spec §3). References are resolved on decode and produced on encode.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf3Value {
    /// 0x00
    Undefined,
    /// 0x01
    Null,
    /// 0x02 / 0x03
    Boolean(bool),
    /// 0x04: 29-bit signed integer (U29)
    Integer(i32),
    /// 0x05
    Double(f64),
    /// 0x06
    String(String),
    /// 0x07 (legacy XMLDocument)
    XmlDocument(String),
    /// 0x08: milliseconds since the epoch, UTC
    Date(f64),
    /// 0x09: associative part (in wire order) then dense part
    Array {
        associative: Vec<(String, Amf3Value)>,
        dense: Vec<Amf3Value>,
    },
    /// 0x0A
    Object(Amf3Object),
    /// 0x0B (E4X XML)
    Xml(String),
    /// 0x0C
    ByteArray(Vec<u8>),
    /// 0x0D
    VectorInt { fixed: bool, items: Vec<i32> },
    /// 0x0E
    VectorUint { fixed: bool, items: Vec<u32> },
    /// 0x0F
    VectorDouble { fixed: bool, items: Vec<f64> },
    /// 0x10
    VectorObject {
        fixed: bool,
        type_name: String,
        items: Vec<Amf3Value>,
    },
    /// 0x11
    Dictionary {
        weak_keys: bool,
        entries: Vec<(Amf3Value, Amf3Value)>,
    },
    /// 0x0A with externalizable traits (§3.12): the class writes its own body. Only classes
    /// whose body is a single AMF3 value are supported, [`ARRAY_COLLECTION`] and
    /// [`OBJECT_PROXY`]; `value` is that body.
    Externalizable {
        class_name: String,
        value: Box<Amf3Value>,
    },
}

/// An AMF3 object with its traits: class name ("" for anonymous), sealed members in trait
/// order, and dynamic members when the traits say the class is dynamic.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Amf3Object {
    pub class_name: String,
    pub dynamic: bool,
    pub sealed: Vec<(String, Amf3Value)>,
    pub dynamic_members: Vec<(String, Amf3Value)>,
}

impl Amf3Object {
    /// The member named `key`, sealed members first, then dynamic ones.
    pub fn get(&self, key: &str) -> Option<&Amf3Value> {
        self.sealed
            .iter()
            .chain(self.dynamic_members.iter())
            .find(|(name, _)| name == key)
            .map(|(_, value)| value)
    }
}

impl Amf3Value {
    /// The text of a String.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf3Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number held by an Integer or a Double.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Amf3Value::Integer(i) => Some(f64::from(*i)),
            Amf3Value::Double(d) => Some(*d),
            _ => None,
        }
    }

    /// The truth value of a Boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Amf3Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// Whether this is Null or Undefined.
    pub fn is_null_or_undefined(&self) -> bool {
        matches!(self, Amf3Value::Null | Amf3Value::Undefined)
    }

    /// What a copy of this value costs and how deep it nests, without recursion (the value
    /// may come from anywhere): `(weight, height)`. The weight counts values as the decoder
    /// charges them against [`AmfLimits::max_values`], payload bytes one value per
    /// [`PAYLOAD_BYTES_PER_VALUE`]; the height counts the containers that open a level in the
    /// decoder (array, object, externalizable, object vector, dictionary).
    pub fn weight_and_height(&self) -> (usize, usize) {
        let bytes = |n: usize| n / PAYLOAD_BYTES_PER_VALUE;
        let (mut weight, mut height) = (0usize, 0usize);
        let mut stack = vec![(self, 0usize)];
        while let Some((value, depth)) = stack.pop() {
            weight = weight.saturating_add(1);
            let inner = depth + 1;
            let extra = match value {
                Amf3Value::String(s) | Amf3Value::XmlDocument(s) | Amf3Value::Xml(s) => {
                    bytes(s.len())
                }
                Amf3Value::ByteArray(b) => bytes(b.len()),
                Amf3Value::VectorInt { items, .. } => bytes(items.len() * 4),
                Amf3Value::VectorUint { items, .. } => bytes(items.len() * 4),
                Amf3Value::VectorDouble { items, .. } => bytes(items.len() * 8),
                Amf3Value::Array { associative, dense } => {
                    height = height.max(inner);
                    stack.extend(dense.iter().map(|v| (v, inner)));
                    stack.extend(associative.iter().map(|(_, v)| (v, inner)));
                    bytes(associative.iter().map(|(k, _)| k.len()).sum())
                }
                Amf3Value::Object(o) => {
                    height = height.max(inner);
                    let members = o.sealed.iter().chain(o.dynamic_members.iter());
                    stack.extend(members.clone().map(|(_, v)| (v, inner)));
                    bytes(o.class_name.len() + members.map(|(k, _)| k.len()).sum::<usize>())
                }
                Amf3Value::VectorObject {
                    type_name, items, ..
                } => {
                    height = height.max(inner);
                    stack.extend(items.iter().map(|v| (v, inner)));
                    bytes(type_name.len())
                }
                Amf3Value::Dictionary { entries, .. } => {
                    height = height.max(inner);
                    for (k, v) in entries {
                        stack.push((k, inner));
                        stack.push((v, inner));
                    }
                    0
                }
                Amf3Value::Externalizable { class_name, value } => {
                    height = height.max(inner);
                    stack.push((value, inner));
                    bytes(class_name.len())
                }
                Amf3Value::Undefined
                | Amf3Value::Null
                | Amf3Value::Boolean(_)
                | Amf3Value::Integer(_)
                | Amf3Value::Double(_)
                | Amf3Value::Date(_) => 0,
            };
            weight = weight.saturating_add(extra);
        }
        (weight, height)
    }

    /// The member `key` of an Object (sealed, then dynamic), of the associative part of an
    /// Array, or of the object an [`OBJECT_PROXY`] wraps.
    pub fn get(&self, key: &str) -> Option<&Amf3Value> {
        match self {
            Amf3Value::Object(object) => object.get(key),
            Amf3Value::Array { associative, .. } => associative
                .iter()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value),
            Amf3Value::Externalizable { class_name, value } if class_name == OBJECT_PROXY => {
                value.get(key)
            }
            _ => None,
        }
    }
}

/// What can go wrong decoding or encoding AMF3. Decode offsets count from the start of the
/// input handed to the decode call (or of the enclosing AMF0 input when nested in AvmPlus).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Amf3Error {
    /// The input ended inside a value.
    #[error("AMF3 input ends at offset {offset}: {what} needs {needed} byte(s), {remaining} left")]
    Truncated {
        what: &'static str,
        offset: usize,
        needed: usize,
        remaining: usize,
    },
    /// A declared length or count cannot fit in the bytes that are left.
    #[error(
        "AMF3 {what} at offset {offset} declares {declared} but only {remaining} byte(s) remain"
    )]
    LengthExceedsInput {
        what: &'static str,
        declared: u64,
        offset: usize,
        remaining: usize,
    },
    /// A type marker this spec does not define.
    #[error("unknown AMF3 marker {marker:#04x} at offset {offset}")]
    UnknownMarker { marker: u8, offset: usize },
    /// Text that is not UTF-8.
    #[error("invalid UTF-8 in AMF3 {what} at offset {offset}")]
    InvalidUtf8 { what: &'static str, offset: usize },
    /// A string reference past the end of the string table.
    #[error("AMF3 string reference {index} at offset {offset}, table holds {table_len}")]
    BadStringReference {
        index: u32,
        table_len: usize,
        offset: usize,
    },
    /// An object reference past the end of the object table.
    #[error("AMF3 object reference {index} at offset {offset}, table holds {table_len}")]
    BadObjectReference {
        index: u32,
        table_len: usize,
        offset: usize,
    },
    /// A traits reference past the end of the traits table.
    #[error("AMF3 traits reference {index} at offset {offset}, table holds {table_len}")]
    BadTraitsReference {
        index: u32,
        table_len: usize,
        offset: usize,
    },
    /// An object reference to an object that is still being decoded: a cycle, which a tree of
    /// values cannot hold.
    #[error("AMF3 object reference {index} at offset {offset} points into itself (a loop)")]
    ReferenceLoop { index: u32, offset: usize },
    /// Nesting deeper than [`AmfLimits::max_depth`].
    #[error("AMF3 nesting at offset {offset} exceeds the limit of {max_depth}")]
    DepthExceeded { max_depth: usize, offset: usize },
    /// More values (references expanded) than [`AmfLimits::max_values`].
    #[error("AMF3 input at offset {offset} produces more than {max_values} values")]
    TooManyValues { max_values: usize, offset: usize },
    /// An externalizable class whose private body format is unknown, so nothing after it can
    /// be read.
    #[error("AMF3 externalizable class {class_name:?} at offset {offset} is not supported")]
    UnknownExternalizable { class_name: String, offset: usize },
    /// Encode: a length or count too large for its U29 field.
    #[error("AMF3 {what} of {len} does not fit (at most {max})")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    /// Encode: an empty name in a dynamic object or associative array, where the empty string
    /// is the end marker (§3.11, §3.12).
    #[error("AMF3 {what} cannot be the empty string (it ends the list)")]
    EmptyName { what: &'static str },
    /// Encode: dynamic members on an object whose traits are not dynamic.
    #[error("AMF3 object of class {class_name:?} has dynamic members but is not dynamic")]
    DynamicMembersOnSealedObject { class_name: String },
    /// Encode: an externalizable class whose body format is unknown (it could not be decoded).
    #[error("AMF3 externalizable class {class_name:?} is not supported")]
    UnsupportedExternalizable { class_name: String },
}

/// A table index from the wire as a `usize`; an index that does not fit can only miss.
fn table_index(index: u32) -> usize {
    usize::try_from(index).unwrap_or(usize::MAX)
}

/// A U29 read as a 29-bit two's complement integer (§3.6).
fn sign_extend_u29(value: u32) -> i32 {
    // Move bit 28 into the sign position, then shift back arithmetically.
    i32::from_be_bytes((value << 3).to_be_bytes()) >> 3
}

/// A cursor over the bytes of one decode call. References are resolved by replaying an
/// earlier byte range, which may lie in this call's bytes or in those of earlier calls.
#[derive(Clone, Copy)]
struct Reader<'b> {
    buf: &'b [u8],
    pos: usize,
    /// Stream position of `buf[0]`: earlier calls' kept bytes come first, then this call's.
    stream_base: usize,
    /// Added to `pos` in error offsets.
    report_base: usize,
    /// Bytes of earlier calls (stream positions `0..history.len()`).
    history: &'b [u8],
    /// Bytes of this call (stream positions from `history.len()`).
    current: &'b [u8],
    current_report_base: usize,
}

impl<'b> Reader<'b> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn offset(&self) -> usize {
        self.report_base + self.pos
    }

    fn stream_pos(&self) -> usize {
        self.stream_base + self.pos
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'b [u8], Amf3Error> {
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        match rest.get(..n) {
            Some(bytes) => {
                self.pos += n;
                Ok(bytes)
            }
            None => Err(Amf3Error::Truncated {
                what,
                offset: self.offset(),
                needed: n,
                remaining: rest.len(),
            }),
        }
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Amf3Error> {
        let offset = self.offset();
        let bytes = self.take(N, what)?;
        <[u8; N]>::try_from(bytes).map_err(|_| Amf3Error::Truncated {
            what,
            offset,
            needed: N,
            remaining: bytes.len(),
        })
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, Amf3Error> {
        let [b] = self.array::<1>(what)?;
        Ok(b)
    }

    fn f64(&mut self, what: &'static str) -> Result<f64, Amf3Error> {
        Ok(f64::from_be_bytes(self.array(what)?))
    }

    /// A variable-length U29 (§1.3.1): up to three bytes of 7 bits with a continuation flag,
    /// then a fourth byte of 8 bits.
    fn u29(&mut self, what: &'static str) -> Result<u32, Amf3Error> {
        let mut value = 0u32;
        for _ in 0..3 {
            let b = self.u8(what)?;
            value = (value << 7) | u32::from(b & 0x7F);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        let b = self.u8(what)?;
        Ok((value << 8) | u32::from(b))
    }

    /// Checks that `count` items of at least `bytes_each` bytes can still arrive, before
    /// anything is allocated for them.
    fn declared(
        &self,
        count: u64,
        bytes_each: u64,
        what: &'static str,
    ) -> Result<usize, Amf3Error> {
        let remaining = self.remaining();
        let err = || Amf3Error::LengthExceedsInput {
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
}

/// One entry of the traits table (§3.12).
#[derive(Debug, Clone)]
struct Traits {
    class_name: String,
    dynamic: bool,
    externalizable: bool,
    sealed: Vec<String>,
    /// Bytes of class and member names, the copy cost of a reference to these traits.
    name_bytes: usize,
}

/// One entry of the object table: complex values are numbered when they start, so a
/// reference to an entry still in progress is a loop.
#[derive(Debug, Clone, Copy)]
enum ObjectSlot {
    InProgress,
    /// Stream byte range of the value (marker included), replayed to resolve a reference.
    Done {
        start: usize,
        end: usize,
    },
}

/// An AMF3 decoder whose string, object and traits tables last across [`decode`] calls, as in
/// a stream of AMF3 values that share tables. The value budget ([`AmfLimits::max_values`])
/// also spans all calls on one decoder. A failed call leaves the tables as they were before it.
///
/// [`decode`]: Amf3Decoder::decode
#[derive(Debug, Clone)]
pub struct Amf3Decoder {
    limits: AmfLimits,
    strings: Vec<String>,
    traits: Vec<Traits>,
    objects: Vec<ObjectSlot>,
    /// Bytes of earlier calls that object table entries point into.
    history: Vec<u8>,
    /// Values produced so far, references expanded.
    values: usize,
    /// Non-zero while replaying a referenced value: the tables already hold its entries.
    replaying: usize,
}

impl Amf3Decoder {
    /// A decoder with empty tables.
    pub fn new(limits: AmfLimits) -> Self {
        Amf3Decoder {
            limits,
            strings: Vec::new(),
            traits: Vec::new(),
            objects: Vec::new(),
            history: Vec::new(),
            values: 0,
            replaying: 0,
        }
    }

    /// Decodes one value and advances `input` past it (left as it was on error).
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Amf3Value, Amf3Error> {
        self.decode_at(input, 0, 0, true)
    }

    /// Values produced so far by this decoder, references expanded.
    pub fn values_produced(&self) -> usize {
        self.values
    }

    fn decode_at(
        &mut self,
        input: &mut &[u8],
        depth: usize,
        report_base: usize,
        keep_history: bool,
    ) -> Result<Amf3Value, Amf3Error> {
        let current = *input;
        let history = std::mem::take(&mut self.history);
        let strings_before = self.strings.len();
        let traits_before = self.traits.len();
        let objects_before = self.objects.len();
        let mut reader = Reader {
            buf: current,
            pos: 0,
            stream_base: history.len(),
            report_base,
            history: &history,
            current,
            current_report_base: report_base,
        };
        let result = self.value(&mut reader, depth);
        let consumed = reader.pos;
        self.history = history;
        let value = match result {
            Ok(value) => value,
            Err(err) => {
                // Forget this call's table entries: their bytes are not kept, and a later
                // call must not refer to a half-decoded value.
                self.strings.truncate(strings_before);
                self.traits.truncate(traits_before);
                self.objects.truncate(objects_before);
                return Err(err);
            }
        };
        // Later calls can only replay this call's bytes if it added object table entries.
        if keep_history && self.objects.len() > objects_before {
            self.history
                .extend_from_slice(current.get(..consumed).unwrap_or(&[]));
        }
        *input = current.get(consumed..).unwrap_or(&[]);
        Ok(value)
    }

    fn charge(&mut self, n: usize, offset: usize) -> Result<(), Amf3Error> {
        self.values = self.values.saturating_add(n);
        if self.values > self.limits.max_values {
            return Err(Amf3Error::TooManyValues {
                max_values: self.limits.max_values,
                offset,
            });
        }
        Ok(())
    }

    /// Charges the copy of `bytes` of payload made by resolving a reference.
    fn charge_payload(&mut self, bytes: usize, offset: usize) -> Result<(), Amf3Error> {
        self.charge(bytes / PAYLOAD_BYTES_PER_VALUE, offset)
    }

    /// Charges payload read inline. It costs the same as a copy made through a reference:
    /// our encoder turns repeated values into references, so a value that decoded within a
    /// budget must also decode within it after re-encoding (found by the amf3 fuzz target).
    fn charge_replayed(&mut self, bytes: usize, offset: usize) -> Result<(), Amf3Error> {
        self.charge_payload(bytes, offset)
    }

    /// The depth of the children of a container opened at `depth`.
    fn enter(&self, depth: usize, offset: usize) -> Result<usize, Amf3Error> {
        let inner = depth + 1;
        if inner > self.limits.depth() {
            return Err(Amf3Error::DepthExceeded {
                max_depth: self.limits.depth(),
                offset,
            });
        }
        Ok(inner)
    }

    fn value(&mut self, r: &mut Reader<'_>, depth: usize) -> Result<Amf3Value, Amf3Error> {
        let offset = r.offset();
        let start = r.stream_pos();
        let marker = r.u8("type marker")?;
        self.charge(1, offset)?;
        Ok(match marker {
            MARKER_UNDEFINED => Amf3Value::Undefined,
            MARKER_NULL => Amf3Value::Null,
            MARKER_FALSE => Amf3Value::Boolean(false),
            MARKER_TRUE => Amf3Value::Boolean(true),
            MARKER_INTEGER => Amf3Value::Integer(sign_extend_u29(r.u29("integer")?)),
            MARKER_DOUBLE => Amf3Value::Double(r.f64("double")?),
            MARKER_STRING => Amf3Value::String(self.string(r, "string")?),
            MARKER_XML_DOC | MARKER_DATE | MARKER_ARRAY | MARKER_OBJECT | MARKER_XML
            | MARKER_BYTE_ARRAY | MARKER_VECTOR_INT | MARKER_VECTOR_UINT | MARKER_VECTOR_DOUBLE
            | MARKER_VECTOR_OBJECT | MARKER_DICTIONARY => {
                self.complex(r, marker, start, offset, depth)?
            }
            other => {
                return Err(Amf3Error::UnknownMarker {
                    marker: other,
                    offset,
                })
            }
        })
    }

    /// A UTF-8-vr (§1.3.2): an inline string, added to the string table unless empty, or a
    /// reference into that table.
    fn string(&mut self, r: &mut Reader<'_>, what: &'static str) -> Result<String, Amf3Error> {
        let offset = r.offset();
        let header = r.u29(what)?;
        let n = header >> 1;
        if header & 1 == 0 {
            let s =
                self.strings
                    .get(table_index(n))
                    .cloned()
                    .ok_or(Amf3Error::BadStringReference {
                        index: n,
                        table_len: self.strings.len(),
                        offset,
                    })?;
            self.charge_payload(s.len(), offset)?;
            return Ok(s);
        }
        let s = self.utf8(r, n, what)?;
        // The empty string is never sent by reference, so it never takes a slot (§1.3.2).
        if self.replaying == 0 && !s.is_empty() {
            self.strings.push(s.clone());
        }
        Ok(s)
    }

    /// `len` bytes of UTF-8 text.
    fn utf8(
        &mut self,
        r: &mut Reader<'_>,
        len: u32,
        what: &'static str,
    ) -> Result<String, Amf3Error> {
        let offset = r.offset();
        let len = r.declared(u64::from(len), 1, what)?;
        let bytes = r.take(len, what)?;
        let text = std::str::from_utf8(bytes).map_err(|e| Amf3Error::InvalidUtf8 {
            what,
            offset: offset + e.valid_up_to(),
        })?;
        self.charge_replayed(len, offset)?;
        Ok(text.to_owned())
    }

    /// Any value kept in the object table: a reference, or an inline value that takes the
    /// next slot before its contents are read.
    fn complex(
        &mut self,
        r: &mut Reader<'_>,
        marker: u8,
        start: usize,
        offset: usize,
        depth: usize,
    ) -> Result<Amf3Value, Amf3Error> {
        let header = r.u29("reference or length")?;
        if header & 1 == 0 {
            return self.object_reference(r, header >> 1, offset, depth);
        }
        let slot = if self.replaying == 0 {
            self.objects.push(ObjectSlot::InProgress);
            Some(self.objects.len() - 1)
        } else {
            None
        };
        let n = header >> 1;
        let value = match marker {
            MARKER_XML_DOC => Amf3Value::XmlDocument(self.utf8(r, n, "XMLDocument")?),
            MARKER_XML => Amf3Value::Xml(self.utf8(r, n, "XML")?),
            MARKER_DATE => Amf3Value::Date(r.f64("date")?),
            MARKER_BYTE_ARRAY => {
                let len = r.declared(u64::from(n), 1, "byte array length")?;
                let bytes = r.take(len, "byte array")?.to_vec();
                self.charge_replayed(len, offset)?;
                Amf3Value::ByteArray(bytes)
            }
            MARKER_ARRAY => self.array(r, n, offset, depth)?,
            MARKER_OBJECT => self.object(r, header, offset, depth)?,
            MARKER_VECTOR_INT => {
                let fixed = r.u8("vector fixed flag")? != 0;
                let count = r.declared(u64::from(n), 4, "vector length")?;
                let mut items = Vec::with_capacity(count);
                for _ in 0..count {
                    items.push(i32::from_be_bytes(r.array("vector item")?));
                }
                self.charge_replayed(count * 4, offset)?;
                Amf3Value::VectorInt { fixed, items }
            }
            MARKER_VECTOR_UINT => {
                let fixed = r.u8("vector fixed flag")? != 0;
                let count = r.declared(u64::from(n), 4, "vector length")?;
                let mut items = Vec::with_capacity(count);
                for _ in 0..count {
                    items.push(u32::from_be_bytes(r.array("vector item")?));
                }
                self.charge_replayed(count * 4, offset)?;
                Amf3Value::VectorUint { fixed, items }
            }
            MARKER_VECTOR_DOUBLE => {
                let fixed = r.u8("vector fixed flag")? != 0;
                let count = r.declared(u64::from(n), 8, "vector length")?;
                let mut items = Vec::with_capacity(count);
                for _ in 0..count {
                    items.push(r.f64("vector item")?);
                }
                self.charge_replayed(count * 8, offset)?;
                Amf3Value::VectorDouble { fixed, items }
            }
            MARKER_VECTOR_OBJECT => {
                let fixed = r.u8("vector fixed flag")? != 0;
                let type_name = self.string(r, "vector object type name")?;
                let inner = self.enter(depth, offset)?;
                let count = r.declared(u64::from(n), 1, "vector length")?;
                let mut items = Vec::with_capacity(count);
                for _ in 0..count {
                    items.push(self.value(r, inner)?);
                }
                Amf3Value::VectorObject {
                    fixed,
                    type_name,
                    items,
                }
            }
            // Only the dictionary marker is left (the caller dispatches on the marker set).
            _ => {
                let weak_keys = r.u8("dictionary weak keys flag")? != 0;
                let inner = self.enter(depth, offset)?;
                let count = r.declared(u64::from(n), 2, "dictionary length")?;
                let mut entries = Vec::with_capacity(count);
                for _ in 0..count {
                    let key = self.value(r, inner)?;
                    let value = self.value(r, inner)?;
                    entries.push((key, value));
                }
                Amf3Value::Dictionary { weak_keys, entries }
            }
        };
        if let Some(entry) = slot.and_then(|i| self.objects.get_mut(i)) {
            *entry = ObjectSlot::Done {
                start,
                end: r.stream_pos(),
            };
        }
        Ok(value)
    }

    /// Resolves an object reference by decoding the referenced value's bytes again, at the
    /// current depth and against the current value budget.
    fn object_reference(
        &mut self,
        r: &Reader<'_>,
        index: u32,
        offset: usize,
        depth: usize,
    ) -> Result<Amf3Value, Amf3Error> {
        let (start, end) = match self.objects.get(table_index(index)) {
            None => {
                return Err(Amf3Error::BadObjectReference {
                    index,
                    table_len: self.objects.len(),
                    offset,
                })
            }
            Some(ObjectSlot::InProgress) => return Err(Amf3Error::ReferenceLoop { index, offset }),
            Some(&ObjectSlot::Done { start, end }) => (start, end),
        };
        let history_len = r.history.len();
        let mut replay = if start >= history_len {
            Reader {
                buf: r.current.get(..end - history_len).unwrap_or(&[]),
                pos: start - history_len,
                stream_base: history_len,
                report_base: r.current_report_base,
                ..*r
            }
        } else {
            Reader {
                buf: r.history.get(..end).unwrap_or(&[]),
                pos: start,
                stream_base: 0,
                report_base: 0,
                ..*r
            }
        };
        self.replaying += 1;
        let result = self.value(&mut replay, depth);
        self.replaying -= 1;
        result
    }

    /// Array body (§3.11) after the U29A header: associative part until the empty name, then
    /// `dense_count` dense values.
    fn array(
        &mut self,
        r: &mut Reader<'_>,
        dense_count: u32,
        offset: usize,
        depth: usize,
    ) -> Result<Amf3Value, Amf3Error> {
        let inner = self.enter(depth, offset)?;
        let mut associative = Vec::new();
        loop {
            let key = self.string(r, "array key")?;
            if key.is_empty() {
                break;
            }
            let value = self.value(r, inner)?;
            associative.push((key, value));
        }
        let count = r.declared(u64::from(dense_count), 1, "dense array length")?;
        let mut dense = Vec::with_capacity(count);
        for _ in 0..count {
            dense.push(self.value(r, inner)?);
        }
        Ok(Amf3Value::Array { associative, dense })
    }

    /// Object body (§3.12) after the U29O header: traits (inline, referenced or
    /// externalizable), then sealed values, then dynamic members until the empty name.
    fn object(
        &mut self,
        r: &mut Reader<'_>,
        header: u32,
        offset: usize,
        depth: usize,
    ) -> Result<Amf3Value, Amf3Error> {
        let inner = self.enter(depth, offset)?;
        let traits = if header & 0b10 == 0 {
            let index = header >> 2;
            let traits = self.traits.get(table_index(index)).cloned().ok_or(
                Amf3Error::BadTraitsReference {
                    index,
                    table_len: self.traits.len(),
                    offset,
                },
            )?;
            self.charge_payload(traits.name_bytes, offset)?;
            traits
        } else if header & 0b100 != 0 {
            let class_name = self.string(r, "class name")?;
            let traits = Traits {
                name_bytes: class_name.len(),
                class_name,
                dynamic: false,
                externalizable: true,
                sealed: Vec::new(),
            };
            if self.replaying == 0 {
                self.traits.push(traits.clone());
            }
            traits
        } else {
            let dynamic = header & 0b1000 != 0;
            let count = r.declared(u64::from(header >> 4), 1, "sealed member count")?;
            let class_name = self.string(r, "class name")?;
            let mut name_bytes = class_name.len();
            let mut sealed = Vec::with_capacity(count);
            for _ in 0..count {
                let name = self.string(r, "sealed member name")?;
                name_bytes += name.len();
                sealed.push(name);
            }
            let traits = Traits {
                class_name,
                dynamic,
                externalizable: false,
                sealed,
                name_bytes,
            };
            if self.replaying == 0 {
                self.traits.push(traits.clone());
            }
            traits
        };
        if traits.externalizable {
            if !is_known_externalizable(&traits.class_name) {
                return Err(Amf3Error::UnknownExternalizable {
                    class_name: traits.class_name,
                    offset,
                });
            }
            let value = self.value(r, inner)?;
            return Ok(Amf3Value::Externalizable {
                class_name: traits.class_name,
                value: Box::new(value),
            });
        }
        let count = r.declared(
            u64::try_from(traits.sealed.len()).unwrap_or(u64::MAX),
            1,
            "sealed members",
        )?;
        let mut sealed = Vec::with_capacity(count);
        for name in traits.sealed {
            let value = self.value(r, inner)?;
            sealed.push((name, value));
        }
        let mut dynamic_members = Vec::new();
        if traits.dynamic {
            loop {
                let name = self.string(r, "dynamic member name")?;
                if name.is_empty() {
                    break;
                }
                let value = self.value(r, inner)?;
                dynamic_members.push((name, value));
            }
        }
        Ok(Amf3Value::Object(Amf3Object {
            class_name: traits.class_name,
            dynamic: traits.dynamic,
            sealed,
            dynamic_members,
        }))
    }
}

/// Decodes one AMF3 value with fresh reference tables and advances `input` past it (left as
/// it was on error).
pub fn decode(input: &mut &[u8], limits: &AmfLimits) -> Result<Amf3Value, Amf3Error> {
    Amf3Decoder::new(*limits).decode_at(input, 0, 0, false)
}

/// Decodes the one AMF3 value of an AMF0 AvmPlus switch (fresh tables), nested `depth` levels
/// deep in the AMF0 value, sharing the AMF0 decoder's value count. Error offsets start at
/// `offset_base`.
pub(crate) fn decode_embedded(
    input: &mut &[u8],
    limits: &AmfLimits,
    depth: usize,
    values: &mut usize,
    offset_base: usize,
) -> Result<Amf3Value, Amf3Error> {
    let mut decoder = Amf3Decoder::new(*limits);
    decoder.values = *values;
    let result = decoder.decode_at(input, depth, offset_base, false);
    *values = decoder.values;
    result
}

/// Key of the encoder's traits table: what makes two objects' traits the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TraitsKey {
    class_name: String,
    dynamic: bool,
    externalizable: bool,
    sealed: Vec<String>,
}

/// An AMF3 encoder whose string, object and traits tables last across [`encode`] calls. It
/// sends repeated non-empty strings, repeated traits and repeated complex values (equal bit
/// for bit) as references. After an error the tables may be inconsistent: drop the encoder.
///
/// [`encode`]: Amf3Encoder::encode
#[derive(Debug, Clone)]
pub struct Amf3Encoder {
    /// Whether to send references at all (off for the canonical form used as object keys).
    references: bool,
    strings: HashMap<String, usize>,
    string_count: usize,
    traits: HashMap<TraitsKey, usize>,
    traits_count: usize,
    /// Complex values by their canonical (reference-free) encoding.
    objects: HashMap<Vec<u8>, usize>,
    object_count: usize,
}

impl Default for Amf3Encoder {
    fn default() -> Self {
        Amf3Encoder::new()
    }
}

impl Amf3Encoder {
    /// An encoder with empty tables.
    pub fn new() -> Self {
        Amf3Encoder {
            references: true,
            strings: HashMap::new(),
            string_count: 0,
            traits: HashMap::new(),
            traits_count: 0,
            objects: HashMap::new(),
            object_count: 0,
        }
    }

    /// Appends the encoding of `value` to `out` (nothing is appended on error).
    pub fn encode(&mut self, value: &Amf3Value, out: &mut Vec<u8>) -> Result<(), Amf3Error> {
        let len = out.len();
        let result = self.value(value, out);
        if result.is_err() {
            out.truncate(len);
        }
        result
    }

    fn value(&mut self, value: &Amf3Value, out: &mut Vec<u8>) -> Result<(), Amf3Error> {
        match value {
            Amf3Value::Undefined => out.push(MARKER_UNDEFINED),
            Amf3Value::Null => out.push(MARKER_NULL),
            Amf3Value::Boolean(false) => out.push(MARKER_FALSE),
            Amf3Value::Boolean(true) => out.push(MARKER_TRUE),
            Amf3Value::Integer(i) if (INTEGER_MIN..=INTEGER_MAX).contains(i) => {
                out.push(MARKER_INTEGER);
                write_u29(out, u32::from_be_bytes(i.to_be_bytes()) & U29_MAX);
            }
            // Outside the 29-bit range an integer is sent as a double (§3.6).
            Amf3Value::Integer(i) => {
                out.push(MARKER_DOUBLE);
                out.extend_from_slice(&f64::from(*i).to_be_bytes());
            }
            Amf3Value::Double(d) => {
                out.push(MARKER_DOUBLE);
                out.extend_from_slice(&d.to_be_bytes());
            }
            Amf3Value::String(s) => {
                out.push(MARKER_STRING);
                self.string(s, out)?;
            }
            _ => self.complex(value, out)?,
        }
        Ok(())
    }

    /// A UTF-8-vr: a reference when the string was sent before, never for the empty string.
    fn string(&mut self, s: &str, out: &mut Vec<u8>) -> Result<(), Amf3Error> {
        if s.is_empty() {
            out.push(0x01);
            return Ok(());
        }
        if let Some(&index) = self.strings.get(s) {
            write_reference(out, index);
            return Ok(());
        }
        write_inline_len(out, s.len(), "string length")?;
        out.extend_from_slice(s.as_bytes());
        if self.references && self.string_count <= MAX_INLINE_LEN {
            self.strings.insert(s.to_owned(), self.string_count);
        }
        self.string_count += 1;
        Ok(())
    }

    fn complex(&mut self, value: &Amf3Value, out: &mut Vec<u8>) -> Result<(), Amf3Error> {
        out.push(marker_of(value));
        if !self.references {
            self.object_count += 1;
            return self.body(value, out);
        }
        let mut canonical = Vec::new();
        Amf3Encoder {
            references: false,
            ..Amf3Encoder::new()
        }
        .value(value, &mut canonical)?;
        if let Some(&index) = self.objects.get(&canonical) {
            write_reference(out, index);
            return Ok(());
        }
        // The slot is taken before the contents, as the decoder numbers it.
        let index = self.object_count;
        self.object_count += 1;
        self.body(value, out)?;
        if index <= MAX_INLINE_LEN {
            self.objects.insert(canonical, index);
        }
        Ok(())
    }

    /// Everything of an inline complex value after its marker.
    fn body(&mut self, value: &Amf3Value, out: &mut Vec<u8>) -> Result<(), Amf3Error> {
        match value {
            Amf3Value::XmlDocument(text) | Amf3Value::Xml(text) => {
                write_inline_len(out, text.len(), "XML length")?;
                out.extend_from_slice(text.as_bytes());
            }
            Amf3Value::Date(millis) => {
                out.push(0x01);
                out.extend_from_slice(&millis.to_be_bytes());
            }
            Amf3Value::ByteArray(bytes) => {
                write_inline_len(out, bytes.len(), "byte array length")?;
                out.extend_from_slice(bytes);
            }
            Amf3Value::Array { associative, dense } => {
                write_inline_len(out, dense.len(), "dense array length")?;
                for (key, item) in associative {
                    if key.is_empty() {
                        return Err(Amf3Error::EmptyName {
                            what: "associative array key",
                        });
                    }
                    self.string(key, out)?;
                    self.value(item, out)?;
                }
                out.push(0x01);
                for item in dense {
                    self.value(item, out)?;
                }
            }
            Amf3Value::Object(object) => self.object(object, out)?,
            Amf3Value::Externalizable { class_name, value } => {
                if !is_known_externalizable(class_name) {
                    return Err(Amf3Error::UnsupportedExternalizable {
                        class_name: class_name.clone(),
                    });
                }
                let key = TraitsKey {
                    class_name: class_name.clone(),
                    dynamic: false,
                    externalizable: true,
                    sealed: Vec::new(),
                };
                if !self.traits_reference(&key, out) {
                    // U29O-traits-ext: inline object, inline traits, externalizable.
                    out.push(0x07);
                    self.string(class_name, out)?;
                    self.add_traits(key);
                }
                self.value(value, out)?;
            }
            Amf3Value::VectorInt { fixed, items } => {
                write_inline_len(out, items.len(), "vector length")?;
                out.push(u8::from(*fixed));
                for item in items {
                    out.extend_from_slice(&item.to_be_bytes());
                }
            }
            Amf3Value::VectorUint { fixed, items } => {
                write_inline_len(out, items.len(), "vector length")?;
                out.push(u8::from(*fixed));
                for item in items {
                    out.extend_from_slice(&item.to_be_bytes());
                }
            }
            Amf3Value::VectorDouble { fixed, items } => {
                write_inline_len(out, items.len(), "vector length")?;
                out.push(u8::from(*fixed));
                for item in items {
                    out.extend_from_slice(&item.to_be_bytes());
                }
            }
            Amf3Value::VectorObject {
                fixed,
                type_name,
                items,
            } => {
                write_inline_len(out, items.len(), "vector length")?;
                out.push(u8::from(*fixed));
                self.string(type_name, out)?;
                for item in items {
                    self.value(item, out)?;
                }
            }
            Amf3Value::Dictionary { weak_keys, entries } => {
                write_inline_len(out, entries.len(), "dictionary length")?;
                out.push(u8::from(*weak_keys));
                for (key, item) in entries {
                    self.value(key, out)?;
                    self.value(item, out)?;
                }
            }
            // Scalars never reach here (see `value`); write them as they would be written.
            scalar => self.value(scalar, out)?,
        }
        Ok(())
    }

    fn object(&mut self, object: &Amf3Object, out: &mut Vec<u8>) -> Result<(), Amf3Error> {
        if !object.dynamic && !object.dynamic_members.is_empty() {
            return Err(Amf3Error::DynamicMembersOnSealedObject {
                class_name: object.class_name.clone(),
            });
        }
        let key = TraitsKey {
            class_name: object.class_name.clone(),
            dynamic: object.dynamic,
            externalizable: false,
            sealed: object.sealed.iter().map(|(name, _)| name.clone()).collect(),
        };
        if !self.traits_reference(&key, out) {
            let count = object.sealed.len();
            if count > MAX_SEALED_COUNT {
                return Err(Amf3Error::TooLong {
                    what: "sealed member count",
                    len: count,
                    max: MAX_SEALED_COUNT,
                });
            }
            // U29O-traits: member count, dynamic flag, inline traits, inline object.
            let count = u32::try_from(count).unwrap_or(0);
            write_u29(out, (count << 4) | (u32::from(object.dynamic) << 3) | 0b011);
            self.string(&object.class_name, out)?;
            for (name, _) in &object.sealed {
                self.string(name, out)?;
            }
            self.add_traits(key);
        }
        for (_, value) in &object.sealed {
            self.value(value, out)?;
        }
        if object.dynamic {
            for (name, value) in &object.dynamic_members {
                if name.is_empty() {
                    return Err(Amf3Error::EmptyName {
                        what: "dynamic member name",
                    });
                }
                self.string(name, out)?;
                self.value(value, out)?;
            }
            out.push(0x01);
        }
        Ok(())
    }

    /// Writes a traits reference (U29O-traits-ref) if these traits were sent before.
    fn traits_reference(&self, key: &TraitsKey, out: &mut Vec<u8>) -> bool {
        match self.traits.get(key) {
            Some(&index) => {
                let index = u32::try_from(index).unwrap_or(0);
                write_u29(out, (index << 2) | 0b01);
                true
            }
            None => false,
        }
    }

    fn add_traits(&mut self, key: TraitsKey) {
        if self.references && self.traits_count <= MAX_TRAIT_INDEX {
            self.traits.insert(key, self.traits_count);
        }
        self.traits_count += 1;
    }
}

/// Encodes one AMF3 value with fresh reference tables, appending to `out` (nothing is
/// appended on error).
pub fn encode(value: &Amf3Value, out: &mut Vec<u8>) -> Result<(), Amf3Error> {
    Amf3Encoder::new().encode(value, out)
}

fn marker_of(value: &Amf3Value) -> u8 {
    match value {
        Amf3Value::Undefined => MARKER_UNDEFINED,
        Amf3Value::Null => MARKER_NULL,
        Amf3Value::Boolean(false) => MARKER_FALSE,
        Amf3Value::Boolean(true) => MARKER_TRUE,
        Amf3Value::Integer(_) => MARKER_INTEGER,
        Amf3Value::Double(_) => MARKER_DOUBLE,
        Amf3Value::String(_) => MARKER_STRING,
        Amf3Value::XmlDocument(_) => MARKER_XML_DOC,
        Amf3Value::Date(_) => MARKER_DATE,
        Amf3Value::Array { .. } => MARKER_ARRAY,
        Amf3Value::Object(_) | Amf3Value::Externalizable { .. } => MARKER_OBJECT,
        Amf3Value::Xml(_) => MARKER_XML,
        Amf3Value::ByteArray(_) => MARKER_BYTE_ARRAY,
        Amf3Value::VectorInt { .. } => MARKER_VECTOR_INT,
        Amf3Value::VectorUint { .. } => MARKER_VECTOR_UINT,
        Amf3Value::VectorDouble { .. } => MARKER_VECTOR_DOUBLE,
        Amf3Value::VectorObject { .. } => MARKER_VECTOR_OBJECT,
        Amf3Value::Dictionary { .. } => MARKER_DICTIONARY,
    }
}

/// Writes a U29 (§1.3.1); `value` must be at most [`U29_MAX`] (callers check).
fn write_u29(out: &mut Vec<u8>, value: u32) {
    // The low 8 bits of `x`, without a truncating cast.
    fn low8(x: u32) -> u8 {
        let [.., low] = x.to_be_bytes();
        low
    }
    let value = value & U29_MAX;
    if value < 0x80 {
        out.push(low8(value));
    } else if value < 0x4000 {
        out.extend_from_slice(&[low8((value >> 7) | 0x80), low8(value & 0x7F)]);
    } else if value < 0x20_0000 {
        out.extend_from_slice(&[
            low8((value >> 14) | 0x80),
            low8(((value >> 7) & 0x7F) | 0x80),
            low8(value & 0x7F),
        ]);
    } else {
        // The fourth byte carries 8 bits, so the first three carry bits 28..8.
        out.extend_from_slice(&[
            low8((value >> 22) | 0x80),
            low8(((value >> 15) & 0x7F) | 0x80),
            low8(((value >> 8) & 0x7F) | 0x80),
            low8(value),
        ]);
    }
}

/// A reference header: the index with a clear low bit. Indices above the U29 range are
/// never entered in the tables, so `index` fits.
fn write_reference(out: &mut Vec<u8>, index: usize) {
    write_u29(out, u32::try_from(index).unwrap_or(0) << 1);
}

/// An inline header: the length with a set low bit.
fn write_inline_len(out: &mut Vec<u8>, len: usize, what: &'static str) -> Result<(), Amf3Error> {
    let too_long = Amf3Error::TooLong {
        what,
        len,
        max: MAX_INLINE_LEN,
    };
    if len > MAX_INLINE_LEN {
        return Err(too_long);
    }
    let len = u32::try_from(len).map_err(|_| too_long)?;
    write_u29(out, (len << 1) | 1);
    Ok(())
}

#[cfg(test)]
mod tests;
