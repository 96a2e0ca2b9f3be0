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
