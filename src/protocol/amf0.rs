//! AMF0 (Adobe Action Message Format 0): values, decoder and encoder.
//!
//! SCAFFOLD: the value type and the function signatures are the contract other modules
//! (commands, data messages, shared objects) are written against; the bodies are filled in by
//! the AMF work.

use super::amf3::Amf3Value;

/// Bounds on what a peer's AMF may make us do: nesting depth and the total number of values
/// one decode call may produce (references included), so that bombs fail with a typed error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmfLimits {
    /// Deepest nesting of objects/arrays accepted.
    pub max_depth: usize,
    /// Most values (of any kind, counted as they are produced) one top-level decode may yield.
    pub max_values: usize,
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

// TEMPORARY stubs until the AMF branch merges (replaced wholesale by it).
#[derive(Debug, thiserror::Error)]
pub enum Amf0Error {
    #[error("stub")]
    Stub,
}
pub fn decode(_input: &mut &[u8], _limits: &AmfLimits) -> Result<Amf0Value, Amf0Error> {
    Err(Amf0Error::Stub)
}
pub fn decode_all(_input: &[u8], _limits: &AmfLimits) -> Result<Vec<Amf0Value>, Amf0Error> {
    Err(Amf0Error::Stub)
}
pub fn encode(_value: &Amf0Value, _out: &mut Vec<u8>) -> Result<(), Amf0Error> {
    Err(Amf0Error::Stub)
}
pub fn encode_all(_values: &[Amf0Value], _out: &mut Vec<u8>) -> Result<(), Amf0Error> {
    Err(Amf0Error::Stub)
}
impl Amf0Value {
    pub fn object<K: Into<String>, I: IntoIterator<Item = (K, Amf0Value)>>(props: I) -> Self {
        Amf0Value::Object(props.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0Value::String(s) | Amf0Value::LongString(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Amf0Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        match self {
            Amf0Value::Object(p) | Amf0Value::EcmaArray(p) => {
                p.iter().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            Amf0Value::TypedObject { properties, .. } => {
                properties.iter().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }
    pub fn is_null_or_undefined(&self) -> bool {
        matches!(self, Amf0Value::Null | Amf0Value::Undefined)
    }
}
