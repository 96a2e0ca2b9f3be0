//! AMF3 (Adobe Action Message Format 3): values, decoder and encoder with the string, object
//! and trait reference tables.
//!
//! SCAFFOLD: the value type is the contract; the bodies are filled in by the AMF work.

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
