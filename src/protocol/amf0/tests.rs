use super::*;
use crate::protocol::amf3::{Amf3Error, Amf3Object, Amf3Value};
use proptest::prelude::*;

fn limits() -> AmfLimits {
    AmfLimits::default()
}

/// A 16-bit length then the bytes (AMF0 UTF-8).
fn utf8(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&u16::try_from(s.len()).unwrap().to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn string_value(out: &mut Vec<u8>, s: &str) {
    out.push(0x02);
    utf8(out, s);
}

fn round_trip_bytes(bytes: &[u8]) -> Amf0Value {
    let mut input = bytes;
    let value = decode(&mut input, &limits()).unwrap();
    assert!(input.is_empty(), "decode left {} bytes", input.len());
    let mut out = Vec::new();
    encode(&value, &mut out).unwrap();
    assert_eq!(out, bytes);
    value
}

/// The connect command as ffmpeg's RTMP muxer sends it (libavformat/rtmpproto.c).
fn ffmpeg_connect() -> Vec<u8> {
    let mut b = Vec::new();
    string_value(&mut b, "connect");
    b.push(0x00);
    b.extend_from_slice(&[0x3F, 0xF0, 0, 0, 0, 0, 0, 0]);
    b.push(0x03);
    utf8(&mut b, "app");
    string_value(&mut b, "live");
    utf8(&mut b, "type");
    string_value(&mut b, "nonprivate");
    utf8(&mut b, "flashVer");
    string_value(&mut b, "FMLE/3.0 (compatible; Lavf61.7.100)");
    utf8(&mut b, "tcUrl");
    string_value(&mut b, "rtmp://127.0.0.1:1935/live");
    b.extend_from_slice(&[0x00, 0x00, 0x09]);
    b
}

#[test]
fn ffmpeg_connect_command_decodes_and_reencodes_identically() {
    let bytes = ffmpeg_connect();
    let values = decode_all(&bytes, &limits()).unwrap();
    assert_eq!(values.len(), 3);
    assert_eq!(values[0].as_str(), Some("connect"));
    assert_eq!(values[1].as_f64(), Some(1.0));
    let command_object = &values[2];
    assert_eq!(
        command_object.get("app").and_then(Amf0Value::as_str),
        Some("live")
    );
    assert_eq!(
        command_object.get("tcUrl").and_then(Amf0Value::as_str),
        Some("rtmp://127.0.0.1:1935/live")
    );
    assert_eq!(command_object.get("missing"), None);
    assert_eq!(
        command_object,
        &Amf0Value::object([
            ("app", Amf0Value::String("live".into())),
            ("type", Amf0Value::String("nonprivate".into())),
            (
                "flashVer",
                Amf0Value::String("FMLE/3.0 (compatible; Lavf61.7.100)".into())
            ),
            (
                "tcUrl",
                Amf0Value::String("rtmp://127.0.0.1:1935/live".into())
            ),
        ])
    );
    let mut out = Vec::new();
    encode_all(&values, &mut out).unwrap();
    assert_eq!(out, bytes);
}

#[test]
fn decode_advances_past_one_value_only() {
    let bytes = ffmpeg_connect();
    let mut input = &bytes[..];
    assert_eq!(
        decode(&mut input, &limits()).unwrap(),
        Amf0Value::String("connect".into())
    );
    assert_eq!(input.len(), bytes.len() - 10);
    assert_eq!(input[0], 0x00);
}

#[test]
fn every_marker_round_trips_exactly() {
    round_trip_bytes(&[0x00, 0x40, 0x09, 0x21, 0xFB, 0x54, 0x44, 0x2D, 0x18]);
    assert_eq!(round_trip_bytes(&[0x01, 0x01]), Amf0Value::Boolean(true));
    assert_eq!(round_trip_bytes(&[0x01, 0x00]), Amf0Value::Boolean(false));
    assert_eq!(
        round_trip_bytes(&[0x02, 0x00, 0x02, b'h', b'i']),
        Amf0Value::String("hi".into())
    );
    assert_eq!(
        round_trip_bytes(&[0x02, 0x00, 0x00]),
        Amf0Value::String(String::new())
    );
    assert_eq!(
        round_trip_bytes(&[0x03, 0x00, 0x01, b'a', 0x05, 0x00, 0x00, 0x09]),
        Amf0Value::object([("a", Amf0Value::Null)])
    );
    assert_eq!(round_trip_bytes(&[0x05]), Amf0Value::Null);
    assert_eq!(round_trip_bytes(&[0x06]), Amf0Value::Undefined);
    assert_eq!(
        round_trip_bytes(&[0x08, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, b'k', 0x06, 0x00, 0x00, 0x09]),
        Amf0Value::EcmaArray(vec![("k".into(), Amf0Value::Undefined)])
    );
    assert_eq!(
        round_trip_bytes(&[0x0A, 0x00, 0x00, 0x00, 0x02, 0x05, 0x07, 0x00, 0x00]),
        Amf0Value::StrictArray(vec![Amf0Value::Null, Amf0Value::Reference(0)])
    );
    assert_eq!(
        round_trip_bytes(&[0x0B, 0x42, 0x78, 0, 0, 0, 0, 0, 0, 0xFF, 0xC4]),
        Amf0Value::Date {
            millis: 1_649_267_441_664.0,
            time_zone: -60
        }
    );
    assert_eq!(
        round_trip_bytes(&[0x0C, 0x00, 0x00, 0x00, 0x01, b'x']),
        Amf0Value::LongString("x".into())
    );
    assert_eq!(round_trip_bytes(&[0x0D]), Amf0Value::Unsupported);
    assert_eq!(
        round_trip_bytes(&[0x0F, 0x00, 0x00, 0x00, 0x03, b'<', b'a', b'>']),
        Amf0Value::XmlDocument("<a>".into())
    );
    assert_eq!(
        round_trip_bytes(&[0x10, 0x00, 0x01, b'C', 0x00, 0x01, b'p', 0x01, 0x00, 0x00, 0x00, 0x09]),
        Amf0Value::TypedObject {
            class_name: "C".into(),
            properties: vec![("p".into(), Amf0Value::Boolean(false))]
        }
    );
    // AvmPlus: AMF3 integer 5, then AMF3 anonymous dynamic object {a: "b"}.
    assert_eq!(
        round_trip_bytes(&[0x11, 0x04, 0x05]),
        Amf0Value::AvmPlus(Amf3Value::Integer(5))
    );
    let object = round_trip_bytes(&[0x11, 0x0A, 0x0B, 0x01, 0x03, b'a', 0x06, 0x03, b'b', 0x01]);
    assert_eq!(
        object,
        Amf0Value::AvmPlus(Amf3Value::Object(Amf3Object {
            class_name: String::new(),
            dynamic: true,
            sealed: vec![],
            dynamic_members: vec![("a".into(), Amf3Value::String("b".into()))],
        }))
    );
}

#[test]
fn accessors() {
    assert_eq!(Amf0Value::LongString("x".into()).as_str(), Some("x"));
    assert_eq!(Amf0Value::Number(2.0).as_str(), None);
    assert_eq!(
        Amf0Value::AvmPlus(Amf3Value::Integer(3)).as_f64(),
        Some(3.0)
    );
    assert_eq!(Amf0Value::Boolean(true).as_bool(), Some(true));
    assert!(Amf0Value::Null.is_null_or_undefined());
    assert!(Amf0Value::Undefined.is_null_or_undefined());
    assert!(Amf0Value::AvmPlus(Amf3Value::Null).is_null_or_undefined());
    assert!(!Amf0Value::Number(0.0).is_null_or_undefined());
    let typed = Amf0Value::TypedObject {
        class_name: "C".into(),
        properties: vec![("level".into(), Amf0Value::String("status".into()))],
    };
    assert_eq!(
        typed.get("level").and_then(Amf0Value::as_str),
        Some("status")
    );
    let ecma = Amf0Value::EcmaArray(vec![("duration".into(), Amf0Value::Number(0.0))]);
    assert_eq!(ecma.get("duration").and_then(Amf0Value::as_f64), Some(0.0));
    assert_eq!(Amf0Value::Null.get("x"), None);
}

#[test]
fn ecma_array_count_is_a_hint_and_encode_writes_the_real_count() {
    // Declares 7 entries but holds 1 (seen from real encoders); and 0 for 2 entries.
    let wrong = [
        0x08, 0x00, 0x00, 0x00, 0x07, 0x00, 0x01, b'k', 0x05, 0x00, 0x00, 0x09,
    ];
    let value = decode(&mut &wrong[..], &limits()).unwrap();
    assert_eq!(
        value,
        Amf0Value::EcmaArray(vec![("k".into(), Amf0Value::Null)])
    );
    let mut out = Vec::new();
    encode(&value, &mut out).unwrap();
    assert_eq!(&out[1..5], &[0, 0, 0, 1]);
    let zero = [
        0x08, 0, 0, 0, 0, 0x00, 0x01, b'a', 0x05, 0x00, 0x01, b'b', 0x06, 0x00, 0x00, 0x09,
    ];
    let value = decode(&mut &zero[..], &limits()).unwrap();
    let mut out = Vec::new();
    encode(&value, &mut out).unwrap();
    assert_eq!(&out[1..5], &[0, 0, 0, 2]);
}

#[test]
fn long_strings_use_the_long_string_marker() {
    let text = "é".repeat(40_000); // 80000 bytes
    let mut out = Vec::new();
    encode(&Amf0Value::String(text.clone()), &mut out).unwrap();
    assert_eq!(out[0], 0x0C);
    assert_eq!(&out[1..5], &80_000u32.to_be_bytes());
    assert_eq!(
        decode(&mut &out[..], &limits()).unwrap(),
        Amf0Value::LongString(text)
    );
    // Exactly 65535 bytes still fits the short form.
    let mut out = Vec::new();
    encode(&Amf0Value::String("a".repeat(65_535)), &mut out).unwrap();
    assert_eq!(&out[..3], &[0x02, 0xFF, 0xFF]);
}

#[test]
fn encode_rejects_names_over_65535_bytes_and_appends_nothing() {
    let mut out = vec![0xAA];
    let bad = Amf0Value::object([("k".repeat(70_000), Amf0Value::Null)]);
    assert!(matches!(
        encode(&bad, &mut out),
        Err(Amf0Error::TooLong {
            what: "property name",
            len: 70_000,
            ..
        })
    ));
    assert_eq!(out, vec![0xAA]);
    let bad = Amf0Value::TypedObject {
        class_name: "c".repeat(65_536),
        properties: vec![],
    };
    assert!(matches!(
        encode(&bad, &mut out),
        Err(Amf0Error::TooLong { .. })
    ));
    // An AMF3 value that cannot be encoded surfaces as the wrapped AMF3 error.
    let bad = Amf0Value::AvmPlus(Amf3Value::Externalizable {
        class_name: "com.example.Mystery".into(),
        value: Box::new(Amf3Value::Null),
    });
    assert!(matches!(
        encode(&bad, &mut out),
        Err(Amf0Error::Amf3 {
            source: Amf3Error::UnsupportedExternalizable { .. }
        })
    ));
    assert_eq!(out, vec![0xAA]);
}

#[test]
fn empty_property_name_not_followed_by_object_end_is_a_property() {
    let bytes = [0x03, 0x00, 0x00, 0x05, 0x00, 0x00, 0x09];
    assert_eq!(
        round_trip_bytes(&bytes),
        Amf0Value::object([("", Amf0Value::Null)])
    );
}

#[test]
fn references_must_point_at_complex_values_already_seen() {
    // Object {self: ref 0}: the object takes slot 0 when it starts, so this is valid.
    let ok = [0x03, 0x00, 0x01, b's', 0x07, 0x00, 0x00, 0x00, 0x00, 0x09];
    assert_eq!(
        round_trip_bytes(&ok),
        Amf0Value::object([("s", Amf0Value::Reference(0))])
    );
    // A top-level reference with nothing seen yet.
    assert!(matches!(
        decode(&mut &[0x07, 0x00, 0x00][..], &limits()),
        Err(Amf0Error::BadReference {
            index: 0,
            table_len: 0,
            offset: 0
        })
    ));
    // Index 1 while only one complex value was seen.
    let bad = [0x0A, 0x00, 0x00, 0x00, 0x01, 0x07, 0x00, 0x01];
    assert!(matches!(
        decode(&mut &bad[..], &limits()),
        Err(Amf0Error::BadReference {
            index: 1,
            table_len: 1,
            offset: 5
        })
    ));
    // Scalars (even strings) do not take slots.
    let bad = [0x02, 0x00, 0x00, 0x07, 0x00, 0x00];
    assert!(decode_all(&bad, &limits()).is_err());
}

#[test]
fn decode_all_shares_one_reference_table() {
    let mut bytes = vec![0x03, 0x00, 0x00, 0x09]; // {}
    bytes.extend_from_slice(&[0x07, 0x00, 0x00]); // ref 0, in the next value
    let values = decode_all(&bytes, &limits()).unwrap();
    assert_eq!(
        values,
        vec![Amf0Value::Object(vec![]), Amf0Value::Reference(0)]
    );
    // A lone decode of the second value has no table.
    assert!(decode(&mut &bytes[4..], &limits()).is_err());
    // Error offsets count from the start of the sequence.
    let mut bytes = vec![0x05, 0x05];
    bytes.push(0x12);
    assert_eq!(
        decode_all(&bytes, &limits()),
        Err(Amf0Error::UnknownMarker {
            marker: 0x12,
            offset: 2
        })
    );
}

#[test]
fn avmplus_values_have_fresh_amf3_tables() {
    // 11 06 05 "ab"  then  11 06 00 (string reference 0): the second AMF3 value starts a
    // new table, so its reference is bad.
    let bytes = [0x11, 0x06, 0x05, b'a', b'b', 0x11, 0x06, 0x00];
    match decode_all(&bytes, &limits()) {
        Err(Amf0Error::Amf3 {
            source:
                Amf3Error::BadStringReference {
                    index: 0,
                    table_len: 0,
                    offset,
                },
        }) => {
            assert_eq!(offset, 7, "AMF3 offsets count from the AMF0 input");
        }
        other => panic!("unexpected {other:?}"),
    }
    // Within one AMF3 value the reference is fine.
    let bytes = [0x11, 0x09, 0x05, 0x01, 0x06, 0x05, b'a', b'b', 0x06, 0x00];
    assert_eq!(
        round_trip_bytes(&bytes),
        Amf0Value::AvmPlus(Amf3Value::Array {
            associative: vec![],
            dense: vec![
                Amf3Value::String("ab".into()),
                Amf3Value::String("ab".into())
            ],
        })
    );
}

#[test]
fn every_truncation_of_a_valid_encoding_is_an_error() {
    let mut bytes = ffmpeg_connect();
    let rich = Amf0Value::StrictArray(vec![
        Amf0Value::Date {
            millis: 1.5,
            time_zone: 0,
        },
        Amf0Value::LongString("long".into()),
        Amf0Value::XmlDocument("<x/>".into()),
        Amf0Value::EcmaArray(vec![("a".into(), Amf0Value::Reference(0))]),
        Amf0Value::TypedObject {
            class_name: "T".into(),
            properties: vec![("b".into(), Amf0Value::Boolean(true))],
        },
        Amf0Value::AvmPlus(Amf3Value::Array {
            associative: vec![("k".into(), Amf3Value::Double(2.5))],
            dense: vec![Amf3Value::String("s".into())],
        }),
    ]);
    let mut encoded = Vec::new();
    encode(&rich, &mut encoded).unwrap();
    for cut in 0..encoded.len() {
        let mut input = &encoded[..cut];
        assert!(decode(&mut input, &limits()).is_err(), "cut at {cut}");
        assert_eq!(input.len(), cut, "input must not move on error");
    }
    // decode_all of a cut command fails unless the cut falls between values.
    let boundaries = [0, 10, 19, bytes.len()];
    for cut in 0..bytes.len() {
        let result = decode_all(&bytes[..cut], &limits());
        assert_eq!(result.is_ok(), boundaries.contains(&cut), "cut at {cut}");
    }
    bytes.clear();
}

#[test]
fn huge_declared_lengths_fail_before_allocating() {
    let cases: [&[u8]; 5] = [
        &[0x0C, 0xFF, 0xFF, 0xFF, 0xFF, b'a'],
        &[0x0F, 0xFF, 0xFF, 0xFF, 0xFF],
        &[0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x05, 0x05],
        &[0x02, 0xFF, 0xFF, b'a'],
        &[0x10, 0xFF, 0xFF],
    ];
    for bytes in cases {
        assert!(
            matches!(
                decode(&mut &bytes[..], &limits()),
                Err(Amf0Error::LengthExceedsInput { .. })
            ),
            "{bytes:02x?}"
        );
    }
}

#[test]
fn nesting_beyond_the_depth_limit_fails() {
    let nest = |levels: usize| {
        let mut bytes = Vec::new();
        for _ in 0..levels {
            bytes.extend_from_slice(&[0x0A, 0x00, 0x00, 0x00, 0x01]);
        }
        bytes.push(0x05);
        bytes
    };
    let limits = AmfLimits {
        max_depth: 8,
        max_values: 1000,
    };
    assert!(decode(&mut &nest(8)[..], &limits).is_ok());
    assert!(matches!(
        decode(&mut &nest(9)[..], &limits),
        Err(Amf0Error::DepthExceeded {
            max_depth: 8,
            offset: 40
        })
    ));
    // Deep input cannot blow the stack with the default limits either.
    assert!(matches!(
        decode(&mut &nest(100_000)[..], &AmfLimits::default()),
        Err(Amf0Error::DepthExceeded { .. })
    ));
    // AMF3 nesting behind AvmPlus counts from the AMF0 depth.
    let mut bytes = nest(7);
    bytes.pop();
    bytes.extend_from_slice(&[0x11, 0x09, 0x03, 0x01, 0x09, 0x03, 0x01, 0x01]);
    assert!(matches!(
        decode(&mut &bytes[..], &limits),
        Err(Amf0Error::Amf3 {
            source: Amf3Error::DepthExceeded { max_depth: 8, .. }
        })
    ));
}

#[test]
fn value_budget_is_enforced() {
    let mut bytes = vec![0x0A, 0x00, 0x00, 0x00, 0x64];
    bytes.extend_from_slice(&[0x05; 100]);
    let tight = AmfLimits {
        max_depth: 4,
        max_values: 100,
    };
    assert!(matches!(
        decode(&mut &bytes[..], &tight),
        Err(Amf0Error::TooManyValues {
            max_values: 100,
            ..
        })
    ));
    let enough = AmfLimits {
        max_depth: 4,
        max_values: 101,
    };
    assert!(decode(&mut &bytes[..], &enough).is_ok());
    // The budget spans a whole decode_all sequence.
    let nulls = [0x05; 50];
    assert!(decode_all(
        &nulls,
        &AmfLimits {
            max_depth: 4,
            max_values: 49
        }
    )
    .is_err());
}

#[test]
fn bad_utf8_unknown_and_reserved_markers_are_typed_errors() {
    assert!(matches!(
        decode(&mut &[0x02, 0x00, 0x02, 0xC3, 0x28][..], &limits()),
        Err(Amf0Error::InvalidUtf8 {
            what: "string",
            offset: 3
        })
    ));
    assert!(matches!(
        decode(
            &mut &[0x03, 0x00, 0x01, 0xFF, 0x05, 0x00, 0x00, 0x09][..],
            &limits()
        ),
        Err(Amf0Error::InvalidUtf8 {
            what: "property name",
            ..
        })
    ));
    for marker in [0x12, 0x20, 0xFF] {
        assert_eq!(
            decode(&mut &[marker][..], &limits()),
            Err(Amf0Error::UnknownMarker { marker, offset: 0 })
        );
    }
    for marker in [0x04, 0x0E] {
        assert_eq!(
            decode(&mut &[marker][..], &limits()),
            Err(Amf0Error::ReservedMarker { marker, offset: 0 })
        );
    }
    assert_eq!(
        decode(&mut &[0x09][..], &limits()),
        Err(Amf0Error::UnexpectedObjectEnd { offset: 0 })
    );
    assert!(matches!(
        decode(&mut &[][..], &limits()),
        Err(Amf0Error::Truncated { offset: 0, .. })
    ));
}

fn arb_amf3_leaf() -> impl Strategy<Value = Amf3Value> {
    prop_oneof![
        Just(Amf3Value::Null),
        Just(Amf3Value::Undefined),
        any::<bool>().prop_map(Amf3Value::Boolean),
        (-(1i32 << 28)..(1i32 << 28)).prop_map(Amf3Value::Integer),
        any::<f64>().prop_map(Amf3Value::Double),
        "[ab]{0,3}".prop_map(Amf3Value::String),
    ]
}

fn arb_amf3_small() -> impl Strategy<Value = Amf3Value> {
    arb_amf3_leaf().prop_recursive(2, 8, 3, |inner| {
        prop::collection::vec(inner, 0..3).prop_map(|dense| Amf3Value::Array {
            associative: vec![],
            dense,
        })
    })
}

fn arb_name() -> BoxedStrategy<String> {
    prop_oneof!["[a-z]{0,6}", "\\PC{0,4}"].boxed()
}

fn arb_amf0() -> impl Strategy<Value = Amf0Value> {
    let leaf = prop_oneof![
        any::<f64>().prop_map(Amf0Value::Number),
        any::<bool>().prop_map(Amf0Value::Boolean),
        "\\PC{0,12}".prop_map(Amf0Value::String),
        Just(Amf0Value::Null),
        Just(Amf0Value::Undefined),
        (any::<f64>(), any::<i16>())
            .prop_map(|(millis, time_zone)| Amf0Value::Date { millis, time_zone }),
        "\\PC{0,12}".prop_map(Amf0Value::LongString),
        Just(Amf0Value::Unsupported),
        "\\PC{0,12}".prop_map(Amf0Value::XmlDocument),
        arb_amf3_small().prop_map(Amf0Value::AvmPlus),
        // Only valid below a complex value (the filter below drops it at the top).
        Just(Amf0Value::Reference(0)),
    ];
    leaf.prop_recursive(4, 48, 5, |inner| {
        let props = prop::collection::vec((arb_name(), inner.clone()), 0..5);
        prop_oneof![
            props.clone().prop_map(Amf0Value::Object),
            props.clone().prop_map(Amf0Value::EcmaArray),
            prop::collection::vec(inner, 0..5).prop_map(Amf0Value::StrictArray),
            (arb_name(), props).prop_map(|(class_name, properties)| {
                Amf0Value::TypedObject {
                    class_name,
                    properties,
                }
            }),
        ]
    })
    .prop_filter("a top-level reference has nothing to refer to", |v| {
        !matches!(v, Amf0Value::Reference(_))
    })
}

proptest! {
    #[test]
    fn encode_then_decode_is_identity(values in prop::collection::vec(arb_amf0(), 1..4)) {
        let mut out = Vec::new();
        encode_all(&values, &mut out).unwrap();
        let decoded = decode_all(&out, &limits()).unwrap();
        // Debug output compares floats bit for bit where it matters (NaN, -0.0).
        prop_assert_eq!(format!("{decoded:?}"), format!("{values:?}"));
        let mut again = Vec::new();
        encode_all(&decoded, &mut again).unwrap();
        prop_assert_eq!(again, out);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode_all(&bytes, &limits());
    }

    #[test]
    fn mutated_encodings_never_panic(
        value in arb_amf0(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut out = Vec::new();
        encode(&value, &mut out).unwrap();
        for (index, byte) in flips {
            let i = index.index(out.len());
            out[i] = byte;
        }
        let _ = decode_all(&out, &limits());
    }
}
