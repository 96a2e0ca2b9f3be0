//! AMF0 decoding of arbitrary bytes; what decodes must survive encode → decode unchanged, and
//! encoding must be a fixed point after one round (encode(decode(encode(v))) == encode(v)).
#![no_main]

use libfuzzer_sys::fuzz_target;
use reflector::protocol::amf0::{self, AmfLimits};

/// Small limits so that depth and value budget errors are reachable.
const LIMITS: AmfLimits = AmfLimits {
    max_depth: 16,
    max_values: 4096,
};

fuzz_target!(|data: &[u8]| {
    // Sequence decode (as in a command body) and single-value decode.
    let mut single = data;
    let _ = amf0::decode(&mut single, &LIMITS);

    let Ok(values) = amf0::decode_all(data, &LIMITS) else {
        return;
    };
    let mut once = Vec::new();
    if amf0::encode_all(&values, &mut once).is_err() {
        return;
    }
    let again = match amf0::decode_all(&once, &LIMITS) {
        Ok(again) => again,
        Err(error) => panic!(
            "re-encoded AMF0 ({} bytes) does not decode: {error:?}",
            once.len()
        ),
    };
    // Debug strings, so that NaN compares equal to NaN.
    assert!(
        format!("{values:?}") == format!("{again:?}"),
        "AMF0 values changed in an encode/decode round trip"
    );
    let mut twice = Vec::new();
    amf0::encode_all(&again, &mut twice).expect("a re-decoded value encodes");
    assert_eq!(once, twice);
});
