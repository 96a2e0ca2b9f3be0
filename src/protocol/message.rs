//! RTMP messages (Adobe RTMP 1.0 §5.4, §6, §7): the raw form the chunk layer carries and the
//! typed form the rest of the server works with.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::amf0::{self, Amf0Error, Amf0Value, AmfLimits};

/// Message type ids (Adobe RTMP 1.0 §5.4 and §7.1).
pub mod type_id {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACKNOWLEDGEMENT: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF3: u8 = 15;
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    pub const COMMAND_AMF3: u8 = 17;
    pub const DATA_AMF0: u8 = 18;
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    pub const COMMAND_AMF0: u8 = 20;
    pub const AGGREGATE: u8 = 22;
}

/// A whole message as the chunk layer delivers it: header fields plus the payload, which is
/// shared (`Bytes`) so that fan-out never copies media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    pub type_id: u8,
    /// Message stream id (§5.3.1.2.1; little-endian on the wire).
    pub stream_id: u32,
    /// Absolute timestamp in milliseconds (wraps at 2^32, §5.3.1.2.1).
    pub timestamp: u32,
    pub payload: Bytes,
}

/// Why a message body could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("message type {type_id}: body of {len} bytes is too short, needs {needed}")]
    Truncated {
        type_id: u8,
        len: usize,
        needed: usize,
    },
    #[error("Set Chunk Size of {size} is outside 1..=0x7FFFFFFF")]
    BadChunkSize { size: u32 },
    #[error("Set Peer Bandwidth limit type {limit_type} is not 0, 1 or 2")]
    BadLimitType { limit_type: u8 },
    #[error("AMF in message type {type_id}: {source}")]
    Amf {
        type_id: u8,
        #[source]
        source: Amf0Error,
    },
    #[error("AMF3 message type {type_id} does not start with the 0x00 format byte")]
    BadAmf3Prefix { type_id: u8 },
    #[error("shared object message: {reason}")]
    SharedObject { reason: &'static str },
    #[error("aggregate message: {reason} at byte {offset}")]
    Aggregate { reason: &'static str, offset: usize },
}

/// Set Peer Bandwidth limit type (§5.4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitType {
    Hard = 0,
    Soft = 1,
    Dynamic = 2,
}

/// User Control Message events (§6.2, §7.1.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserControlEvent {
    StreamBegin {
        stream_id: u32,
    },
    StreamEof {
        stream_id: u32,
    },
    StreamDry {
        stream_id: u32,
    },
    SetBufferLength {
        stream_id: u32,
        buffer_ms: u32,
    },
    StreamIsRecorded {
        stream_id: u32,
    },
    PingRequest {
        timestamp: u32,
    },
    PingResponse {
        timestamp: u32,
    },
    /// Event types the spec does not name (e.g. 31/32 used by some players for buffer
    /// notifications): kept, not rejected.
    Unknown {
        event_type: u16,
        data: Bytes,
    },
}

/// Shared object event types (§7.1.3, table of the seed draft).
#[derive(Debug, Clone, PartialEq)]
pub enum SharedObjectEvent {
    /// 1, "Use": client connects to the object.
    Connect,
    /// 2, "Release": client disconnects.
    Disconnect,
    /// 3, "Request Change": client sets attributes.
    SetAttribute {
        properties: Vec<(String, Amf0Value)>,
    },
    /// 4, "Change": server tells other clients an attribute changed.
    UpdateData {
        properties: Vec<(String, Amf0Value)>,
    },
    /// 5, "Success": server acknowledges the writer's change.
    UpdateAttribute { name: String },
    /// 6: a handler call broadcast to every client.
    SendMessage { values: Vec<Amf0Value> },
    /// 7: an error or warning about the object.
    Status { code: String, level: String },
    /// 8
    ClearData,
    /// 9, "Remove": server tells clients an attribute was deleted.
    DeleteData { name: String },
    /// 10, "Request Remove": client deletes an attribute.
    DeleteAttribute { name: String },
    /// 11, "Use Success": the answer to Connect, before the initial state.
    InitialData,
    /// Any other event type, kept raw.
    Unknown { event_type: u8, data: Bytes },
}

/// A shared object message (types 0x13 and 0x10): one object, one version, several events.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedObjectMessage {
    pub name: String,
    pub version: u32,
    pub persistent: bool,
    pub events: Vec<SharedObjectEvent>,
}

/// A message in typed form.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    SetChunkSize(u32),
    Abort {
        chunk_stream_id: u32,
    },
    Acknowledgement {
        sequence_number: u32,
    },
    UserControl(UserControlEvent),
    WindowAckSize(u32),
    SetPeerBandwidth {
        size: u32,
        limit_type: LimitType,
    },
    Audio(Bytes),
    Video(Bytes),
    /// Data message (0x12, or 0x0F when `amf3`): AMF0 values that may switch to AMF3.
    Data {
        amf3: bool,
        values: Vec<Amf0Value>,
    },
    SharedObject {
        amf3: bool,
        message: SharedObjectMessage,
    },
    /// Command message (0x14, or 0x11 when `amf3`).
    Command {
        amf3: bool,
        values: Vec<Amf0Value>,
    },
    /// A run of FLV tags (§7.1.6); [`split_aggregate`] turns it into messages.
    Aggregate(Bytes),
    /// Unknown message types are kept, not rejected.
    Unknown {
        type_id: u8,
        payload: Bytes,
    },
}

fn need(type_id: u8, body: &[u8], needed: usize) -> Result<(), MessageError> {
    if body.len() < needed {
        return Err(MessageError::Truncated {
            type_id,
            len: body.len(),
            needed,
        });
    }
    Ok(())
}

fn read_u32(body: &[u8], type_id: u8) -> Result<u32, MessageError> {
    need(type_id, body, 4)?;
    Ok(u32::from_be_bytes([body[0], body[1], body[2], body[3]]))
}

/// Whether a data, command or shared-object message is of its AMF3 type, and its AMF0
/// values: AMF3 bodies start with a format byte 0x00, then AMF0 values (§7.1.1, §7.1.2,
/// §7.1.3), so the byte is stripped.
fn amf_body(type_id: u8, payload: &[u8]) -> Result<(bool, &[u8]), MessageError> {
    let amf3 = matches!(
        type_id,
        type_id::DATA_AMF3 | type_id::COMMAND_AMF3 | type_id::SHARED_OBJECT_AMF3
    );
    if !amf3 {
        return Ok((false, payload));
    }
    match payload.split_first() {
        Some((0, rest)) => Ok((true, rest)),
        // Some encoders omit the format byte; an AMF0 marker in its place is unambiguous.
        Some((_, _)) => Ok((true, payload)),
        None => Err(MessageError::BadAmf3Prefix { type_id }),
    }
}

/// The transaction id of a command whose body does not decode as a whole. Its name and
/// transaction id come first (§7.1.1), so an `_error` can still answer it; `None` when
/// those two do not decode either (there is nothing to answer).
pub fn command_transaction_id(raw: &RawMessage, limits: &AmfLimits) -> Option<f64> {
    let t = raw.type_id;
    if t != type_id::COMMAND_AMF0 && t != type_id::COMMAND_AMF3 {
        return None;
    }
    let (_, mut bytes) = amf_body(t, &raw.payload).ok()?;
    amf0::decode(&mut bytes, limits).ok()?.as_str()?;
    amf0::decode(&mut bytes, limits)
        .ok()?
        .as_f64()
        .filter(|id| id.is_finite())
}

impl Message {
    /// Decode the body of `raw` according to its type.
    pub fn decode(raw: &RawMessage, limits: &AmfLimits) -> Result<Message, MessageError> {
        let body = &raw.payload[..];
        let t = raw.type_id;
        Ok(match t {
            type_id::SET_CHUNK_SIZE => {
                // §5.4.1: the top bit must be zero; 0 is meaningless.
                let size = read_u32(body, t)?;
                if size == 0 || size > 0x7FFF_FFFF {
                    return Err(MessageError::BadChunkSize { size });
                }
                Message::SetChunkSize(size)
            }
            type_id::ABORT => Message::Abort {
                chunk_stream_id: read_u32(body, t)?,
            },
            type_id::ACKNOWLEDGEMENT => Message::Acknowledgement {
                sequence_number: read_u32(body, t)?,
            },
            type_id::USER_CONTROL => Message::UserControl(decode_user_control(&raw.payload)?),
            type_id::WINDOW_ACK_SIZE => Message::WindowAckSize(read_u32(body, t)?),
            type_id::SET_PEER_BANDWIDTH => {
                need(t, body, 5)?;
                let size = read_u32(body, t)?;
                let limit_type = match body[4] {
                    0 => LimitType::Hard,
                    1 => LimitType::Soft,
                    2 => LimitType::Dynamic,
                    other => return Err(MessageError::BadLimitType { limit_type: other }),
                };
                Message::SetPeerBandwidth { size, limit_type }
            }
            type_id::AUDIO => Message::Audio(raw.payload.clone()),
            type_id::VIDEO => Message::Video(raw.payload.clone()),
            type_id::DATA_AMF0
            | type_id::COMMAND_AMF0
            | type_id::DATA_AMF3
            | type_id::COMMAND_AMF3 => {
                let (amf3, bytes) = amf_body(t, body)?;
                // References are resolved so that the values stand alone (re-encoded
                // metadata, rebuilt commands).
                let values = amf0::decode_all(bytes, limits)
                    .and_then(|values| amf0::resolve_references(values, limits))
                    .map_err(|source| MessageError::Amf { type_id: t, source })?;
                if t == type_id::DATA_AMF0 || t == type_id::DATA_AMF3 {
                    Message::Data { amf3, values }
                } else {
                    Message::Command { amf3, values }
                }
            }
            type_id::SHARED_OBJECT_AMF0 | type_id::SHARED_OBJECT_AMF3 => {
                let (amf3, bytes) = amf_body(t, body)?;
                Message::SharedObject {
                    amf3,
                    message: decode_shared_object(bytes, limits)?,
                }
            }
            type_id::AGGREGATE => Message::Aggregate(raw.payload.clone()),
            other => Message::Unknown {
                type_id: other,
                payload: raw.payload.clone(),
            },
        })
    }

    /// The message type id this message is sent as.
    pub fn type_id(&self) -> u8 {
        match self {
            Message::SetChunkSize(_) => type_id::SET_CHUNK_SIZE,
            Message::Abort { .. } => type_id::ABORT,
            Message::Acknowledgement { .. } => type_id::ACKNOWLEDGEMENT,
            Message::UserControl(_) => type_id::USER_CONTROL,
            Message::WindowAckSize(_) => type_id::WINDOW_ACK_SIZE,
            Message::SetPeerBandwidth { .. } => type_id::SET_PEER_BANDWIDTH,
            Message::Audio(_) => type_id::AUDIO,
            Message::Video(_) => type_id::VIDEO,
            Message::Data { amf3: false, .. } => type_id::DATA_AMF0,
            Message::Data { amf3: true, .. } => type_id::DATA_AMF3,
            Message::SharedObject { amf3: false, .. } => type_id::SHARED_OBJECT_AMF0,
            Message::SharedObject { amf3: true, .. } => type_id::SHARED_OBJECT_AMF3,
            Message::Command { amf3: false, .. } => type_id::COMMAND_AMF0,
            Message::Command { amf3: true, .. } => type_id::COMMAND_AMF3,
            Message::Aggregate(_) => type_id::AGGREGATE,
            Message::Unknown { type_id, .. } => *type_id,
        }
    }

    /// Encode the body of this message.
    pub fn encode_body(&self) -> Result<Bytes, MessageError> {
        let mut out = BytesMut::new();
        match self {
            Message::SetChunkSize(size) => out.put_u32(*size & 0x7FFF_FFFF),
            Message::Abort { chunk_stream_id } => out.put_u32(*chunk_stream_id),
            Message::Acknowledgement { sequence_number } => out.put_u32(*sequence_number),
            Message::UserControl(event) => encode_user_control(event, &mut out),
            Message::WindowAckSize(size) => out.put_u32(*size),
            Message::SetPeerBandwidth { size, limit_type } => {
                out.put_u32(*size);
                out.put_u8(*limit_type as u8);
            }
            Message::Audio(payload) | Message::Video(payload) | Message::Aggregate(payload) => {
                return Ok(payload.clone())
            }
            Message::Unknown { payload, .. } => return Ok(payload.clone()),
            Message::Data { amf3, values } | Message::Command { amf3, values } => {
                let mut body = Vec::new();
                if *amf3 {
                    body.push(0);
                }
                amf0::encode_all(values, &mut body).map_err(|source| MessageError::Amf {
                    type_id: self.type_id(),
                    source,
                })?;
                return Ok(Bytes::from(body));
            }
            Message::SharedObject { amf3, message } => {
                let mut body = Vec::new();
                if *amf3 {
                    body.push(0);
                }
                encode_shared_object(message, &mut body)?;
                return Ok(Bytes::from(body));
            }
        }
        Ok(out.freeze())
    }

    /// Encode into a [`RawMessage`] on the given message stream at the given time.
    pub fn to_raw(&self, stream_id: u32, timestamp: u32) -> Result<RawMessage, MessageError> {
        Ok(RawMessage {
            type_id: self.type_id(),
            stream_id,
            timestamp,
            payload: self.encode_body()?,
        })
    }
}

fn decode_user_control(payload: &Bytes) -> Result<UserControlEvent, MessageError> {
    let t = type_id::USER_CONTROL;
    need(t, payload, 2)?;
    let event_type = u16::from_be_bytes([payload[0], payload[1]]);
    let data = &payload[2..];
    let first = || read_u32(data, t);
    Ok(match event_type {
        0 => UserControlEvent::StreamBegin {
            stream_id: first()?,
        },
        1 => UserControlEvent::StreamEof {
            stream_id: first()?,
        },
        2 => UserControlEvent::StreamDry {
            stream_id: first()?,
        },
        3 => {
            need(t, data, 8)?;
            UserControlEvent::SetBufferLength {
                stream_id: first()?,
                buffer_ms: read_u32(&data[4..], t)?,
            }
        }
        4 => UserControlEvent::StreamIsRecorded {
            stream_id: first()?,
        },
        6 => UserControlEvent::PingRequest {
            timestamp: first()?,
        },
        7 => UserControlEvent::PingResponse {
            timestamp: first()?,
        },
        other => UserControlEvent::Unknown {
            event_type: other,
            data: payload.slice(2..),
        },
    })
}

fn encode_user_control(event: &UserControlEvent, out: &mut BytesMut) {
    let (event_type, a, b) = match event {
        UserControlEvent::StreamBegin { stream_id } => (0, *stream_id, None),
        UserControlEvent::StreamEof { stream_id } => (1, *stream_id, None),
        UserControlEvent::StreamDry { stream_id } => (2, *stream_id, None),
        UserControlEvent::SetBufferLength {
            stream_id,
            buffer_ms,
        } => (3, *stream_id, Some(*buffer_ms)),
        UserControlEvent::StreamIsRecorded { stream_id } => (4, *stream_id, None),
        UserControlEvent::PingRequest { timestamp } => (6, *timestamp, None),
        UserControlEvent::PingResponse { timestamp } => (7, *timestamp, None),
        UserControlEvent::Unknown { event_type, data } => {
            out.put_u16(*event_type);
            out.extend_from_slice(data);
            return;
        }
    };
    out.put_u16(event_type);
    out.put_u32(a);
    if let Some(b) = b {
        out.put_u32(b);
    }
}

/// Shared object strings are AMF0 UTF-8 without a marker: u16 length + bytes.
fn read_so_string(input: &mut &[u8]) -> Result<String, MessageError> {
    if input.len() < 2 {
        return Err(MessageError::SharedObject {
            reason: "truncated string length",
        });
    }
    let len = usize::from(input.get_u16());
    if input.len() < len {
        return Err(MessageError::SharedObject {
            reason: "string longer than the message",
        });
    }
    let (s, rest) = input.split_at(len);
    let s = std::str::from_utf8(s)
        .map_err(|_| MessageError::SharedObject {
            reason: "string is not UTF-8",
        })?
        .to_owned();
    *input = rest;
    Ok(s)
}

fn write_so_string(s: &str, out: &mut Vec<u8>) -> Result<(), MessageError> {
    let len = u16::try_from(s.len()).map_err(|_| MessageError::SharedObject {
        reason: "string longer than 65535 bytes",
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn read_so_properties(
    mut data: &[u8],
    limits: &AmfLimits,
) -> Result<Vec<(String, Amf0Value)>, MessageError> {
    let mut properties = Vec::new();
    while !data.is_empty() {
        let name = read_so_string(&mut data)?;
        // Each value is its own serialization context. References are resolved with the
        // resolver (and limits) of the command and data paths, so a value that stands alone
        // is stored and relayed, and what those paths refuse (loops, bombs) is refused here.
        let value = amf0::decode(&mut data, limits)
            .and_then(|value| amf0::resolve_references(vec![value], limits))
            .map_err(|source| MessageError::Amf {
                type_id: type_id::SHARED_OBJECT_AMF0,
                source,
            })?
            .pop()
            .ok_or(MessageError::SharedObject {
                reason: "property without a value",
            })?;
        properties.push((name, value));
    }
    Ok(properties)
}

/// Body layout (§7.1.3): name (u16 + UTF-8), version u32, flags 8 bytes (persistence in the
/// first four), then events: type u8, data length u32, data.
fn decode_shared_object(
    mut input: &[u8],
    limits: &AmfLimits,
) -> Result<SharedObjectMessage, MessageError> {
    let name = read_so_string(&mut input)?;
    if input.len() < 12 {
        return Err(MessageError::SharedObject {
            reason: "truncated version or flags",
        });
    }
    let version = input.get_u32();
    let flags = input.get_u32();
    input.advance(4);
    let mut events = Vec::new();
    while !input.is_empty() {
        if input.len() < 5 {
            return Err(MessageError::SharedObject {
                reason: "truncated event header",
            });
        }
        let event_type = input.get_u8();
        let len = input.get_u32() as usize;
        if input.len() < len {
            return Err(MessageError::SharedObject {
                reason: "event data longer than the message",
            });
        }
        let (mut data, rest) = input.split_at(len);
        input = rest;
        let amf_err = |source| MessageError::Amf {
            type_id: type_id::SHARED_OBJECT_AMF0,
            source,
        };
        events.push(match event_type {
            1 => SharedObjectEvent::Connect,
            2 => SharedObjectEvent::Disconnect,
            3 => SharedObjectEvent::SetAttribute {
                properties: read_so_properties(data, limits)?,
            },
            4 => SharedObjectEvent::UpdateData {
                properties: read_so_properties(data, limits)?,
            },
            5 => SharedObjectEvent::UpdateAttribute {
                name: read_so_string(&mut data)?,
            },
            6 => SharedObjectEvent::SendMessage {
                values: amf0::decode_all(data, limits)
                    .and_then(|values| amf0::resolve_references(values, limits))
                    .map_err(amf_err)?,
            },
            7 => {
                let code = read_so_string(&mut data)?;
                let level = read_so_string(&mut data)?;
                SharedObjectEvent::Status { code, level }
            }
            8 => SharedObjectEvent::ClearData,
            9 => SharedObjectEvent::DeleteData {
                name: read_so_string(&mut data)?,
            },
            10 => SharedObjectEvent::DeleteAttribute {
                name: read_so_string(&mut data)?,
            },
            11 => SharedObjectEvent::InitialData,
            other => SharedObjectEvent::Unknown {
                event_type: other,
                data: Bytes::copy_from_slice(data),
            },
        });
    }
    Ok(SharedObjectMessage {
        name,
        version,
        persistent: flags != 0,
        events,
    })
}

fn encode_shared_object(
    message: &SharedObjectMessage,
    out: &mut Vec<u8>,
) -> Result<(), MessageError> {
    let amf_err = |source| MessageError::Amf {
        type_id: type_id::SHARED_OBJECT_AMF0,
        source,
    };
    write_so_string(&message.name, out)?;
    out.extend_from_slice(&message.version.to_be_bytes());
    out.extend_from_slice(&u32::from(message.persistent).to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    for event in &message.events {
        let mut data = Vec::new();
        let event_type: u8 = match event {
            SharedObjectEvent::Connect => 1,
            SharedObjectEvent::Disconnect => 2,
            SharedObjectEvent::SetAttribute { properties }
            | SharedObjectEvent::UpdateData { properties } => {
                for (name, value) in properties {
                    write_so_string(name, &mut data)?;
                    amf0::encode(value, &mut data).map_err(amf_err)?;
                }
                if matches!(event, SharedObjectEvent::SetAttribute { .. }) {
                    3
                } else {
                    4
                }
            }
            SharedObjectEvent::UpdateAttribute { name } => {
                write_so_string(name, &mut data)?;
                5
            }
            SharedObjectEvent::SendMessage { values } => {
                amf0::encode_all(values, &mut data).map_err(amf_err)?;
                6
            }
            SharedObjectEvent::Status { code, level } => {
                write_so_string(code, &mut data)?;
                write_so_string(level, &mut data)?;
                7
            }
            SharedObjectEvent::ClearData => 8,
            SharedObjectEvent::DeleteData { name } => {
                write_so_string(name, &mut data)?;
                9
            }
            SharedObjectEvent::DeleteAttribute { name } => {
                write_so_string(name, &mut data)?;
                10
            }
            SharedObjectEvent::InitialData => 11,
            SharedObjectEvent::Unknown {
                event_type,
                data: d,
            } => {
                data.extend_from_slice(d);
                *event_type
            }
        };
        out.push(event_type);
        let len = u32::try_from(data.len()).map_err(|_| MessageError::SharedObject {
            reason: "event data longer than 4 GiB",
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&data);
    }
    Ok(())
}

/// Split an Aggregate message (§7.1.6) into its messages. Each sub-message is an FLV tag:
/// type u8, size u24, timestamp u24 + extension u8, stream id u24, body, back pointer u32.
/// Sub-message timestamps are rebased so the first one equals the aggregate's timestamp; the
/// stream id of the aggregate is used (as nginx-rtmp and SRS do). Payloads are slices of the
/// aggregate's payload: no copy.
///
/// A sub-message that is itself an aggregate is refused: §7.1.6 makes the sub-messages FLV
/// tags (audio, video, data), and FLV has no aggregate tag. Refusing it here means no caller
/// ever recurses on a nesting depth the peer chooses (issue 20: 10 000 nested aggregates
/// overflowed the stack of a server that split them recursively).
pub fn split_aggregate(aggregate: &RawMessage) -> Result<Vec<RawMessage>, MessageError> {
    let payload = &aggregate.payload;
    let mut offset = 0usize;
    let mut out = Vec::new();
    let mut first_ts: Option<u32> = None;
    while offset < payload.len() {
        let header = payload
            .get(offset..offset + 11)
            .ok_or(MessageError::Aggregate {
                reason: "truncated tag header",
                offset,
            })?;
        let tag_type = header[0];
        let size = u32::from_be_bytes([0, header[1], header[2], header[3]]) as usize;
        let ts = u32::from_be_bytes([header[7], header[4], header[5], header[6]]);
        let body_start = offset + 11;
        let body_end = body_start + size;
        if body_end + 4 > payload.len() {
            return Err(MessageError::Aggregate {
                reason: "tag body or back pointer past the end",
                offset,
            });
        }
        if tag_type == type_id::AGGREGATE {
            return Err(MessageError::Aggregate {
                reason: "aggregate inside an aggregate (sub-messages are FLV tags, §7.1.6)",
                offset,
            });
        }
        let base = *first_ts.get_or_insert(ts);
        out.push(RawMessage {
            type_id: tag_type,
            stream_id: aggregate.stream_id,
            timestamp: aggregate.timestamp.wrapping_add(ts.wrapping_sub(base)),
            payload: payload.slice(body_start..body_end),
        });
        offset = body_end + 4;
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
