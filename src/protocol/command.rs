//! NetConnection and NetStream commands (Adobe RTMP 1.0 §7.2) as typed values, and builders
//! for the replies a server sends (`_result`, `_error`, `onStatus`, ...).

use super::amf0::{self, Amf0Value, AmfLimits};
use super::amf3::Amf3Value;

/// NetConnection / NetStream status codes, in the protocol's own words.
pub mod status {
    pub const CONNECT_SUCCESS: &str = "NetConnection.Connect.Success";
    pub const CONNECT_REJECTED: &str = "NetConnection.Connect.Rejected";
    pub const CONNECT_CLOSED: &str = "NetConnection.Connect.Closed";
    pub const RECONNECT_REQUEST: &str = "NetConnection.Connect.ReconnectRequest";
    pub const CALL_FAILED: &str = "NetConnection.Call.Failed";
    pub const PUBLISH_START: &str = "NetStream.Publish.Start";
    pub const PUBLISH_BAD_NAME: &str = "NetStream.Publish.BadName";
    pub const UNPUBLISH_SUCCESS: &str = "NetStream.Unpublish.Success";
    pub const PLAY_RESET: &str = "NetStream.Play.Reset";
    pub const PLAY_START: &str = "NetStream.Play.Start";
    pub const PLAY_STOP: &str = "NetStream.Play.Stop";
    pub const PLAY_FAILED: &str = "NetStream.Play.Failed";
    pub const PLAY_STREAM_NOT_FOUND: &str = "NetStream.Play.StreamNotFound";
    pub const PLAY_PUBLISH_NOTIFY: &str = "NetStream.Play.PublishNotify";
    pub const PLAY_UNPUBLISH_NOTIFY: &str = "NetStream.Play.UnpublishNotify";
    pub const PAUSE_NOTIFY: &str = "NetStream.Pause.Notify";
    pub const UNPAUSE_NOTIFY: &str = "NetStream.Unpause.Notify";
    pub const SEEK_NOTIFY: &str = "NetStream.Seek.Notify";
    pub const SEEK_FAILED: &str = "NetStream.Seek.Failed";
    pub const DATA_START: &str = "NetStream.Data.Start";
    pub const FAILED: &str = "NetStream.Failed";
}

/// Why a command could not be understood.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    #[error("command message is empty")]
    Empty,
    #[error("command has an AMF0 reference that cannot be resolved: {reason}")]
    BadReference { reason: String },
    #[error("command name is a {found}, not a string")]
    NameNotString { found: &'static str },
    #[error("{command}: argument {argument} is missing")]
    MissingArgument {
        command: &'static str,
        argument: &'static str,
    },
    #[error("{command}: argument {argument} should be {expected}, is {found}")]
    WrongType {
        command: &'static str,
        argument: &'static str,
        expected: &'static str,
        found: &'static str,
    },
}

/// The `publish` command's type argument (§7.2.2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishType {
    Live,
    Record,
    Append,
}

impl PublishType {
    pub fn as_str(self) -> &'static str {
        match self {
            PublishType::Live => "live",
            PublishType::Record => "record",
            PublishType::Append => "append",
        }
    }
}

/// The `connect` command (§7.2.1.1) with the command object's well-known properties lifted
/// out; the whole object stays in `command_object` for anything else (e.g. Enhanced RTMP's
/// `fourCcList`, `videoFourCcInfoMap`, `capsEx`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectCommand {
    pub transaction_id: f64,
    pub app: String,
    pub tc_url: Option<String>,
    pub flash_ver: Option<String>,
    pub swf_url: Option<String>,
    pub page_url: Option<String>,
    /// 0 (AMF0) or 3 (AMF3); replies must use the same encoding.
    pub object_encoding: f64,
    pub command_object: Amf0Value,
    /// Optional user arguments after the command object.
    pub arguments: Vec<Amf0Value>,
}

impl ConnectCommand {
    /// Enhanced RTMP `fourCcList` entries, when announced.
    pub fn fourcc_list(&self) -> Vec<String> {
        match self.command_object.get("fourCcList") {
            Some(Amf0Value::StrictArray(items)) => items
                .iter()
                .filter_map(|v| as_string(v).map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Keys of an Enhanced RTMP v2 `videoFourCcInfoMap` / `audioFourCcInfoMap`.
    pub fn fourcc_info_map(&self, key: &str) -> Vec<String> {
        match self.command_object.get(key) {
            Some(Amf0Value::Object(props)) | Some(Amf0Value::EcmaArray(props)) => {
                props.iter().map(|(k, _)| k.clone()).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Enhanced RTMP v2 `capsEx` bits (0 when absent).
    pub fn caps_ex(&self) -> u32 {
        self.command_object
            .get("capsEx")
            .and_then(as_number)
            .filter(|n| n.is_finite() && *n >= 0.0 && *n <= f64::from(u32::MAX))
            .map_or(0, |n| n as u32)
    }

    /// Whether the client announced Enhanced RTMP at all (v1 `fourCcList` or any v2 property).
    pub fn announces_enhanced_rtmp(&self) -> bool {
        [
            "fourCcList",
            "videoFourCcInfoMap",
            "audioFourCcInfoMap",
            "capsEx",
        ]
        .iter()
        .any(|k| self.command_object.get(k).is_some())
    }
}

/// Enhanced RTMP v2 `capsEx` bits (E-RTMP v2, "Enhancing NetConnection connect Command").
pub mod caps_ex {
    pub const RECONNECT: u32 = 0x01;
    pub const MULTITRACK: u32 = 0x02;
    pub const MOD_EX: u32 = 0x04;
    pub const TIMESTAMP_NANO_OFFSET: u32 = 0x08;
}

/// Enhanced RTMP v2 `FourCcInfoMask` bits.
pub mod fourcc_info {
    pub const CAN_DECODE: u32 = 0x01;
    pub const CAN_ENCODE: u32 = 0x02;
    pub const CAN_FORWARD: u32 = 0x04;
}

/// `onStatus` NetConnection.Connect.ReconnectRequest (E-RTMP v2 "Reconnect Request"): asks a
/// client that announced `capsEx` Reconnect to reconnect, to `tc_url` if given.
pub fn reconnect_request(tc_url: Option<&str>, description: &str) -> Vec<Amf0Value> {
    let mut info = match status_info("status", status::RECONNECT_REQUEST, description) {
        Amf0Value::Object(props) => props,
        _ => Vec::new(),
    };
    if let Some(url) = tc_url {
        info.push(("tcUrl".into(), Amf0Value::String(url.to_owned())));
    }
    vec![
        Amf0Value::String("onStatus".into()),
        Amf0Value::Number(0.0),
        Amf0Value::Null,
        Amf0Value::Object(info),
    ]
}

/// A command in typed form. Client-to-server commands carry what the server acts on;
/// `Result`, `Error` and `OnStatus` are what a client reads back.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Connect(ConnectCommand),
    CreateStream {
        transaction_id: f64,
    },
    ReleaseStream {
        transaction_id: f64,
        name: String,
    },
    FcPublish {
        transaction_id: f64,
        name: String,
    },
    FcUnpublish {
        transaction_id: f64,
        name: String,
    },
    Publish {
        transaction_id: f64,
        name: String,
        publish_type: PublishType,
    },
    /// `play` (§7.2.2.1): start -2 = live or recorded, -1 = live only, >= 0 = recorded from
    /// there; duration -1 = until the end.
    Play {
        transaction_id: f64,
        name: String,
        start: f64,
        duration: f64,
        reset: bool,
    },
    Play2 {
        transaction_id: f64,
        parameters: Amf0Value,
    },
    DeleteStream {
        transaction_id: f64,
        stream_id: f64,
    },
    CloseStream {
        transaction_id: f64,
    },
    ReceiveAudio {
        flag: bool,
    },
    ReceiveVideo {
        flag: bool,
    },
    Pause {
        pause: bool,
        milliseconds: f64,
    },
    Seek {
        milliseconds: f64,
    },
    GetStreamLength {
        transaction_id: f64,
        name: String,
    },
    Result {
        transaction_id: f64,
        values: Vec<Amf0Value>,
    },
    Error {
        transaction_id: f64,
        values: Vec<Amf0Value>,
    },
    OnStatus {
        info: Amf0Value,
    },
    /// Any other call: answered with `_error` by the server when it has a transaction id.
    Other {
        name: String,
        transaction_id: f64,
        arguments: Vec<Amf0Value>,
    },
}

fn kind(v: &Amf0Value) -> &'static str {
    match v {
        Amf0Value::Number(_) => "number",
        Amf0Value::Boolean(_) => "boolean",
        Amf0Value::String(_) | Amf0Value::LongString(_) => "string",
        Amf0Value::Object(_) | Amf0Value::TypedObject { .. } => "object",
        Amf0Value::Null => "null",
        Amf0Value::Undefined => "undefined",
        Amf0Value::Reference(_) => "reference",
        Amf0Value::EcmaArray(_) => "ECMA array",
        Amf0Value::StrictArray(_) => "strict array",
        Amf0Value::Date { .. } => "date",
        Amf0Value::Unsupported => "unsupported",
        Amf0Value::XmlDocument(_) => "XML document",
        Amf0Value::AvmPlus(_) => "AMF3 value",
    }
}

/// A string argument, also when an AMF3 client switched it to AMF3.
fn as_string(v: &Amf0Value) -> Option<&str> {
    match v {
        Amf0Value::AvmPlus(Amf3Value::String(s)) => Some(s),
        other => other.as_str(),
    }
}

fn as_number(v: &Amf0Value) -> Option<f64> {
    match v {
        Amf0Value::AvmPlus(Amf3Value::Double(n)) => Some(*n),
        Amf0Value::AvmPlus(Amf3Value::Integer(n)) => Some(f64::from(*n)),
        other => other.as_f64(),
    }
}

fn as_boolean(v: &Amf0Value) -> Option<bool> {
    match v {
        Amf0Value::AvmPlus(Amf3Value::Boolean(b)) => Some(*b),
        // Some players send 0/1 for flags.
        Amf0Value::Number(n) => Some(*n != 0.0),
        other => other.as_bool(),
    }
}

/// Positional arguments of one command, with typed accessors that name what is wrong.
struct Args<'a> {
    command: &'static str,
    values: &'a [Amf0Value],
}

impl<'a> Args<'a> {
    fn get(&self, i: usize) -> Option<&'a Amf0Value> {
        self.values.get(i).filter(|v| !v.is_null_or_undefined())
    }

    fn string(&self, i: usize, argument: &'static str) -> Result<String, CommandError> {
        let v = self.values.get(i).ok_or(CommandError::MissingArgument {
            command: self.command,
            argument,
        })?;
        as_string(v)
            .map(str::to_owned)
            .ok_or(CommandError::WrongType {
                command: self.command,
                argument,
                expected: "a string",
                found: kind(v),
            })
    }

    fn number_or(
        &self,
        i: usize,
        argument: &'static str,
        default: f64,
    ) -> Result<f64, CommandError> {
        match self.get(i) {
            None => Ok(default),
            Some(v) => as_number(v).ok_or(CommandError::WrongType {
                command: self.command,
                argument,
                expected: "a number",
                found: kind(v),
            }),
        }
    }

    fn boolean(&self, i: usize, argument: &'static str) -> Result<bool, CommandError> {
        let v = self.get(i).ok_or(CommandError::MissingArgument {
            command: self.command,
            argument,
        })?;
        as_boolean(v).ok_or(CommandError::WrongType {
            command: self.command,
            argument,
            expected: "a boolean",
            found: kind(v),
        })
    }
}

impl Command {
    /// Parse the values of a command message: name, transaction id, command object (or null),
    /// then arguments (§7.1.1).
    pub fn parse(values: &[Amf0Value]) -> Result<Command, CommandError> {
        // A command is lifted out of its message, so its values must not point into that
        // message's reference table (found by the command fuzz target).
        let resolved;
        let values =
            if values.iter().any(Amf0Value::contains_reference) {
                resolved = amf0::resolve_references(values.to_vec(), &AmfLimits::default())
                    .map_err(|e| CommandError::BadReference {
                        reason: e.to_string(),
                    })?;
                &resolved[..]
            } else {
                values
            };
        let first = values.first().ok_or(CommandError::Empty)?;
        let name = as_string(first).ok_or(CommandError::NameNotString { found: kind(first) })?;
        let transaction_id = values.get(1).and_then(as_number).unwrap_or(0.0);
        // Arguments start after the command object at index 2.
        let rest = values.get(3..).unwrap_or(&[]);
        let command: &'static str = match name {
            "connect" => "connect",
            "publish" => "publish",
            "play" => "play",
            "deleteStream" => "deleteStream",
            "receiveAudio" => "receiveAudio",
            "receiveVideo" => "receiveVideo",
            "pause" => "pause",
            "seek" => "seek",
            _ => "command",
        };
        let args = Args {
            command,
            values: rest,
        };
        let name_arg = |argument| args.string(0, argument);
        Ok(match name {
            "connect" => {
                let object = values.get(2).cloned().unwrap_or(Amf0Value::Null);
                if !matches!(
                    object,
                    Amf0Value::Object(_) | Amf0Value::EcmaArray(_) | Amf0Value::TypedObject { .. }
                ) {
                    return Err(CommandError::WrongType {
                        command: "connect",
                        argument: "command object",
                        expected: "an object",
                        found: kind(&object),
                    });
                }
                let text = |key: &str| object.get(key).and_then(as_string).map(str::to_owned);
                let app = text("app").ok_or(CommandError::MissingArgument {
                    command: "connect",
                    argument: "app",
                })?;
                Command::Connect(ConnectCommand {
                    transaction_id,
                    app,
                    tc_url: text("tcUrl"),
                    flash_ver: text("flashVer").or_else(|| text("flashver")),
                    swf_url: text("swfUrl"),
                    page_url: text("pageUrl"),
                    object_encoding: object
                        .get("objectEncoding")
                        .and_then(as_number)
                        .unwrap_or(0.0),
                    command_object: object.clone(),
                    arguments: rest.to_vec(),
                })
            }
            "createStream" => Command::CreateStream { transaction_id },
            "releaseStream" => Command::ReleaseStream {
                transaction_id,
                name: name_arg("stream name")?,
            },
            "FCPublish" => Command::FcPublish {
                transaction_id,
                name: name_arg("stream name")?,
            },
            "FCUnpublish" => Command::FcUnpublish {
                transaction_id,
                name: name_arg("stream name")?,
            },
            "publish" => {
                let publish_type = match args.get(1).and_then(as_string) {
                    None | Some("live") => PublishType::Live,
                    Some("record") => PublishType::Record,
                    Some("append") => PublishType::Append,
                    // Unknown types are treated as live, as nginx-rtmp and SRS do.
                    Some(_) => PublishType::Live,
                };
                Command::Publish {
                    transaction_id,
                    name: name_arg("publishing name")?,
                    publish_type,
                }
            }
            "play" => Command::Play {
                transaction_id,
                name: name_arg("stream name")?,
                start: args.number_or(1, "start", -2.0)?,
                duration: args.number_or(2, "duration", -1.0)?,
                reset: args.get(3).and_then(as_boolean).unwrap_or(true),
            },
            "play2" => Command::Play2 {
                transaction_id,
                parameters: rest.first().cloned().unwrap_or(Amf0Value::Null),
            },
            // GStreamer's rtmp2sink sends the stream id as a string: 0 here means "the
            // message stream this arrived on".
            "deleteStream" => Command::DeleteStream {
                transaction_id,
                stream_id: args
                    .get(0)
                    .and_then(|v| {
                        as_number(v).or_else(|| as_string(v).and_then(|t| t.trim().parse().ok()))
                    })
                    .unwrap_or(0.0),
            },
            "closeStream" => Command::CloseStream { transaction_id },
            "receiveAudio" => Command::ReceiveAudio {
                flag: args.boolean(0, "flag")?,
            },
            "receiveVideo" => Command::ReceiveVideo {
                flag: args.boolean(0, "flag")?,
            },
            "pause" => Command::Pause {
                pause: args.boolean(0, "pause flag")?,
                milliseconds: args.number_or(1, "milliseconds", 0.0)?,
            },
            "seek" => Command::Seek {
                milliseconds: args.number_or(0, "milliseconds", 0.0)?,
            },
            "getStreamLength" => Command::GetStreamLength {
                transaction_id,
                name: name_arg("stream name")?,
            },
            "_result" => Command::Result {
                transaction_id,
                values: values.get(2..).unwrap_or(&[]).to_vec(),
            },
            "_error" => Command::Error {
                transaction_id,
                values: values.get(2..).unwrap_or(&[]).to_vec(),
            },
            "onStatus" => Command::OnStatus {
                info: values
                    .get(3)
                    .or_else(|| values.get(2))
                    .cloned()
                    .unwrap_or(Amf0Value::Null),
            },
            other => Command::Other {
                name: other.to_owned(),
                transaction_id,
                arguments: values.get(2..).unwrap_or(&[]).to_vec(),
            },
        })
    }

    /// The command's name as sent on the wire.
    pub fn name(&self) -> &str {
        match self {
            Command::Connect(_) => "connect",
            Command::CreateStream { .. } => "createStream",
            Command::ReleaseStream { .. } => "releaseStream",
            Command::FcPublish { .. } => "FCPublish",
            Command::FcUnpublish { .. } => "FCUnpublish",
            Command::Publish { .. } => "publish",
            Command::Play { .. } => "play",
            Command::Play2 { .. } => "play2",
            Command::DeleteStream { .. } => "deleteStream",
            Command::CloseStream { .. } => "closeStream",
            Command::ReceiveAudio { .. } => "receiveAudio",
            Command::ReceiveVideo { .. } => "receiveVideo",
            Command::Pause { .. } => "pause",
            Command::Seek { .. } => "seek",
            Command::GetStreamLength { .. } => "getStreamLength",
            Command::Result { .. } => "_result",
            Command::Error { .. } => "_error",
            Command::OnStatus { .. } => "onStatus",
            Command::Other { name, .. } => name,
        }
    }

    /// The transaction id, 0 for commands that carry none.
    pub fn transaction_id(&self) -> f64 {
        match self {
            Command::Connect(c) => c.transaction_id,
            Command::CreateStream { transaction_id }
            | Command::ReleaseStream { transaction_id, .. }
            | Command::FcPublish { transaction_id, .. }
            | Command::FcUnpublish { transaction_id, .. }
            | Command::Publish { transaction_id, .. }
            | Command::Play { transaction_id, .. }
            | Command::Play2 { transaction_id, .. }
            | Command::DeleteStream { transaction_id, .. }
            | Command::CloseStream { transaction_id }
            | Command::GetStreamLength { transaction_id, .. }
            | Command::Result { transaction_id, .. }
            | Command::Error { transaction_id, .. }
            | Command::Other { transaction_id, .. } => *transaction_id,
            Command::ReceiveAudio { .. }
            | Command::ReceiveVideo { .. }
            | Command::Pause { .. }
            | Command::Seek { .. }
            | Command::OnStatus { .. } => 0.0,
        }
    }

    /// The values of the command message for this command, as a client sends it.
    pub fn to_values(&self) -> Vec<Amf0Value> {
        let head = |tid: f64| {
            vec![
                Amf0Value::String(self.name().to_owned()),
                Amf0Value::Number(tid),
                Amf0Value::Null,
            ]
        };
        let with = |tid: f64, args: Vec<Amf0Value>| {
            let mut v = head(tid);
            v.extend(args);
            v
        };
        let s = |x: &str| Amf0Value::String(x.to_owned());
        match self {
            Command::Connect(c) => {
                let mut v = vec![
                    s("connect"),
                    Amf0Value::Number(c.transaction_id),
                    c.command_object.clone(),
                ];
                v.extend(c.arguments.iter().cloned());
                v
            }
            Command::CreateStream { transaction_id } | Command::CloseStream { transaction_id } => {
                head(*transaction_id)
            }
            Command::ReleaseStream {
                transaction_id,
                name,
            }
            | Command::FcPublish {
                transaction_id,
                name,
            }
            | Command::FcUnpublish {
                transaction_id,
                name,
            }
            | Command::GetStreamLength {
                transaction_id,
                name,
            } => with(*transaction_id, vec![s(name)]),
            Command::Publish {
                transaction_id,
                name,
                publish_type,
            } => with(*transaction_id, vec![s(name), s(publish_type.as_str())]),
            Command::Play {
                transaction_id,
                name,
                start,
                duration,
                reset,
            } => with(
                *transaction_id,
                vec![
                    s(name),
                    Amf0Value::Number(*start),
                    Amf0Value::Number(*duration),
                    Amf0Value::Boolean(*reset),
                ],
            ),
            Command::Play2 {
                transaction_id,
                parameters,
            } => with(*transaction_id, vec![parameters.clone()]),
            Command::DeleteStream {
                transaction_id,
                stream_id,
            } => with(*transaction_id, vec![Amf0Value::Number(*stream_id)]),
            Command::ReceiveAudio { flag } | Command::ReceiveVideo { flag } => {
                with(0.0, vec![Amf0Value::Boolean(*flag)])
            }
            Command::Pause {
                pause,
                milliseconds,
            } => with(
                0.0,
                vec![Amf0Value::Boolean(*pause), Amf0Value::Number(*milliseconds)],
            ),
            Command::Seek { milliseconds } => with(0.0, vec![Amf0Value::Number(*milliseconds)]),
            Command::Result {
                transaction_id,
                values,
            }
            | Command::Error {
                transaction_id,
                values,
            } => {
                let mut v = vec![s(self.name()), Amf0Value::Number(*transaction_id)];
                v.extend(values.iter().cloned());
                v
            }
            Command::OnStatus { info } => with(0.0, vec![info.clone()]),
            Command::Other {
                name,
                transaction_id,
                arguments,
            } => {
                let mut v = vec![s(name), Amf0Value::Number(*transaction_id)];
                v.extend(arguments.iter().cloned());
                v
            }
        }
    }
}

/// The status info object of `onStatus` and `_error` replies.
pub fn status_info(level: &str, code: &str, description: &str) -> Amf0Value {
    Amf0Value::object([
        ("level", Amf0Value::String(level.to_owned())),
        ("code", Amf0Value::String(code.to_owned())),
        ("description", Amf0Value::String(description.to_owned())),
    ])
}

/// `_result` for `connect`: server properties and NetConnection.Connect.Success, echoing the
/// client's object encoding (§7.2.1.1).
/// `server_properties` are appended to the properties object (the Enhanced RTMP capabilities
/// a server echoes: `fourCcList`, `videoFourCcInfoMap`, `audioFourCcInfoMap`, `capsEx`).
pub fn connect_result(
    transaction_id: f64,
    object_encoding: f64,
    server_properties: Vec<(String, Amf0Value)>,
) -> Vec<Amf0Value> {
    let mut info = vec![
        ("level".to_owned(), Amf0Value::String("status".into())),
        (
            "code".to_owned(),
            Amf0Value::String(status::CONNECT_SUCCESS.into()),
        ),
        (
            "description".to_owned(),
            Amf0Value::String("Connection succeeded.".into()),
        ),
        (
            "objectEncoding".to_owned(),
            Amf0Value::Number(object_encoding),
        ),
    ];
    info.push((
        "data".to_owned(),
        Amf0Value::EcmaArray(vec![(
            "version".to_owned(),
            Amf0Value::String(concat!("reflector/", env!("CARGO_PKG_VERSION")).into()),
        )]),
    ));
    vec![
        Amf0Value::String("_result".into()),
        Amf0Value::Number(transaction_id),
        {
            let mut props = vec![
                (
                    "fmsVer".to_owned(),
                    Amf0Value::String("FMS/3,5,7,7009".into()),
                ),
                ("capabilities".to_owned(), Amf0Value::Number(31.0)),
                ("mode".to_owned(), Amf0Value::Number(1.0)),
            ];
            props.extend(server_properties);
            Amf0Value::Object(props)
        },
        Amf0Value::Object(info),
    ]
}

/// `_result` with a null command object and the given values.
pub fn result(transaction_id: f64, values: Vec<Amf0Value>) -> Vec<Amf0Value> {
    let mut v = vec![
        Amf0Value::String("_result".into()),
        Amf0Value::Number(transaction_id),
        Amf0Value::Null,
    ];
    v.extend(values);
    v
}

/// `_result` for `createStream`: the new message stream id.
pub fn create_stream_result(transaction_id: f64, stream_id: u32) -> Vec<Amf0Value> {
    result(
        transaction_id,
        vec![Amf0Value::Number(f64::from(stream_id))],
    )
}

/// `_error` with a status info object.
pub fn error(transaction_id: f64, code: &str, description: &str) -> Vec<Amf0Value> {
    vec![
        Amf0Value::String("_error".into()),
        Amf0Value::Number(transaction_id),
        Amf0Value::Null,
        status_info("error", code, description),
    ]
}

/// `onStatus` on a NetStream (§7.2.2), with optional extra info properties (e.g. `details`).
pub fn on_status(
    level: &str,
    code: &str,
    description: &str,
    extra: Vec<(String, Amf0Value)>,
) -> Vec<Amf0Value> {
    let mut info = match status_info(level, code, description) {
        Amf0Value::Object(props) => props,
        _ => Vec::new(),
    };
    info.extend(extra);
    vec![
        Amf0Value::String("onStatus".into()),
        Amf0Value::Number(0.0),
        Amf0Value::Null,
        Amf0Value::Object(info),
    ]
}

/// `onBWDone`, which Flash-era clients expect after connect.
pub fn on_bw_done() -> Vec<Amf0Value> {
    vec![
        Amf0Value::String("onBWDone".into()),
        Amf0Value::Number(0.0),
        Amf0Value::Null,
        Amf0Value::Number(8192.0),
    ]
}

/// `onFCPublish` / `onFCUnpublish`, answering FCPublish / FCUnpublish.
pub fn on_fc_publish(unpublish: bool, code: &str, name: &str) -> Vec<Amf0Value> {
    vec![
        Amf0Value::String(
            if unpublish {
                "onFCUnpublish"
            } else {
                "onFCPublish"
            }
            .into(),
        ),
        Amf0Value::Number(0.0),
        Amf0Value::Null,
        Amf0Value::object([
            ("code", Amf0Value::String(code.to_owned())),
            ("description", Amf0Value::String(name.to_owned())),
        ]),
    ]
}

/// The `|RtmpSampleAccess` data message players get before media (audio and video access).
pub fn sample_access() -> Vec<Amf0Value> {
    vec![
        Amf0Value::String("|RtmpSampleAccess".into()),
        Amf0Value::Boolean(true),
        Amf0Value::Boolean(true),
    ]
}

/// If `values` is a publisher's `@setDataFrame` data message, the `onMetaData` (or other
/// handler) message players should get: the first value dropped (as nginx-rtmp and SRS do).
pub fn strip_set_data_frame(values: &[Amf0Value]) -> Option<Vec<Amf0Value>> {
    match values.first().and_then(as_string) {
        Some("@setDataFrame") if values.len() >= 2 => Some(values[1..].to_vec()),
        _ => None,
    }
}

/// `onMetaData` with the given properties (as an ECMA array, the form encoders write).
pub fn on_metadata(properties: Vec<(String, Amf0Value)>) -> Vec<Amf0Value> {
    vec![
        Amf0Value::String("onMetaData".into()),
        Amf0Value::EcmaArray(properties),
    ]
}

#[cfg(test)]
mod tests;
