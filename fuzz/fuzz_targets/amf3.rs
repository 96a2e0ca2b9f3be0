//! AMF3 decoding of arbitrary bytes; what decodes must survive encode → decode unchanged
//! within the same limits (the encoder's references cost what the inline copies cost), and
//! encoding must be a fixed point after one round.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reflector::protocol::amf0::AmfLimits;
use reflector::protocol::amf3;

/// Small limits so that depth and value budget errors (reference bombs) are reachable.
const LIMITS: AmfLimits = AmfLimits {
    max_depth: 16,
    max_values: 4096,
};

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    let Ok(value) = amf3::decode(&mut input, &LIMITS) else {
        return;
    };
    let mut once = Vec::new();
    if amf3::encode(&value, &mut once).is_err() {
        return;
    }
    let mut rest = &once[..];
    let again = match amf3::decode(&mut rest, &LIMITS) {
        Ok(again) => again,
        Err(error) => panic!(
            "re-encoded AMF3 ({} bytes) does not decode: {error:?}",
            once.len()
        ),
    };
    assert!(rest.is_empty(), "re-encoded AMF3 has trailing bytes");
    // Debug strings, so that NaN compares equal to NaN.
    assert!(
        format!("{value:?}") == format!("{again:?}"),
        "AMF3 value changed in an encode/decode round trip"
    );
    let mut twice = Vec::new();
    amf3::encode(&again, &mut twice).expect("a re-decoded value encodes");
    assert_eq!(once, twice);
});
