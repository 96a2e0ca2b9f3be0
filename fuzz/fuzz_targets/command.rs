//! Message bodies and commands on arbitrary bytes. The first byte is the message type id, the
//! rest the body.
//!
//! Invariants: no panic; a typed message that decodes re-encodes to a body that decodes to the
//! same message; an aggregate splits without panicking; a command that parses (and holds no
//! AMF0 reference) survives `to_values` → AMF0 bytes → `decode_all` → `parse` unchanged.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use reflector::protocol::amf0::{self, AmfLimits};
use reflector::protocol::command::{strip_set_data_frame, Command};
use reflector::protocol::message::{split_aggregate, Message, RawMessage};

const LIMITS: AmfLimits = AmfLimits {
    max_depth: 16,
    max_values: 4096,
};

/// For decoding our own re-encoding: `Message::decode` resolves AMF0 references into copies
/// (counted against the limits once), and the re-encoding carries those copies inline, so it
/// may count up to twice the values the original did.
const RELAXED: AmfLimits = AmfLimits {
    max_depth: LIMITS.max_depth,
    max_values: usize::MAX,
};

fn check_message(type_id: u8, body: &[u8]) {
    let raw = RawMessage {
        type_id,
        stream_id: 1,
        timestamp: 1000,
        payload: Bytes::copy_from_slice(body),
    };
    if let Ok(parts) = split_aggregate(&raw) {
        for part in &parts {
            assert!(part.payload.len() <= raw.payload.len());
            let _ = Message::decode(part, &LIMITS);
        }
    }
    let Ok(message) = Message::decode(&raw, &LIMITS) else {
        return;
    };
    assert_eq!(message.type_id(), type_id);
    let Ok(again) = message.to_raw(raw.stream_id, raw.timestamp) else {
        return;
    };
    let decoded = match Message::decode(&again, &RELAXED) {
        Ok(decoded) => decoded,
        Err(error) => panic!("re-encoded message type {type_id} does not decode: {error:?}"),
    };
    // Debug strings, so that NaN compares equal to NaN.
    assert!(
        format!("{message:?}") == format!("{decoded:?}"),
        "message type {type_id} changed in an encode/decode round trip"
    );
}

fn check_command(body: &[u8]) {
    let Ok(values) = amf0::decode_all(body, &LIMITS) else {
        return;
    };
    let _ = strip_set_data_frame(&values);
    let Ok(command) = Command::parse(&values) else {
        return;
    };
    let _ = (command.name(), command.transaction_id());
    let mut bytes = Vec::new();
    if amf0::encode_all(&command.to_values(), &mut bytes).is_err() {
        return;
    }
    let values = amf0::decode_all(&bytes, &RELAXED).expect("encoded command values decode");
    let again = match Command::parse(&values) {
        Ok(again) => again,
        Err(error) => panic!("to_values of {} does not parse: {error:?}", command.name()),
    };
    assert!(
        format!("{command:?}") == format!("{again:?}"),
        "command {} changed in a to_values/parse round trip",
        command.name()
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&type_id, body)) = data.split_first() else {
        return;
    };
    check_message(type_id, body);
    check_command(body);
});
