use super::*;
use proptest::prelude::*;

fn limits() -> AmfLimits {
    AmfLimits::default()
}

fn dec(bytes: &[u8]) -> Result<Amf3Value, Amf3Error> {
    let mut input = bytes;
    let value = decode(&mut input, &limits())?;
    assert!(input.is_empty(), "decode left {} bytes", input.len());
    Ok(value)
}

fn enc(value: &Amf3Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode(value, &mut out).unwrap();
    out
}

/// Encoding without any references (the canonical form).
fn enc_plain(value: &Amf3Value) -> Vec<u8> {
    let mut out = Vec::new();
    Amf3Encoder {
        references: false,
        ..Amf3Encoder::new()
    }
    .encode(value, &mut out)
    .unwrap();
    out
}

/// Decodes `bytes` to `value` and encodes `value` back to `bytes`.
fn both_ways(bytes: &[u8], value: Amf3Value) {
    assert_eq!(dec(bytes).unwrap(), value, "decoding {bytes:02x?}");
    assert_eq!(enc(&value), bytes, "encoding {value:?}");
}

fn text(len_and_bytes: &str) -> Vec<u8> {
    let mut out = Vec::new();
    write_inline_len(&mut out, len_and_bytes.len(), "test").unwrap();
    out.extend_from_slice(len_and_bytes.as_bytes());
    out
}

fn dense(items: Vec<Amf3Value>) -> Amf3Value {
    Amf3Value::Array {
        associative: vec![],
        dense: items,
    }
}

fn anonymous(members: Vec<(&str, Amf3Value)>) -> Amf3Value {
    Amf3Value::Object(Amf3Object {
        class_name: String::new(),
        dynamic: true,
        sealed: vec![],
        dynamic_members: members
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    })
}

#[test]
fn scalars() {
    both_ways(&[0x00], Amf3Value::Undefined);
    both_ways(&[0x01], Amf3Value::Null);
    both_ways(&[0x02], Amf3Value::Boolean(false));
    both_ways(&[0x03], Amf3Value::Boolean(true));
    both_ways(
        &[0x05, 0x3F, 0xF8, 0, 0, 0, 0, 0, 0],
        Amf3Value::Double(1.5),
    );
    both_ways(&[0x06, 0x01], Amf3Value::String(String::new()));
    both_ways(
        &[0x06, 0x07, b'a', b'b', b'c'],
        Amf3Value::String("abc".into()),
    );
}

#[test]
fn u29_integers_in_every_width() {
    let cases: [(i32, &[u8]); 10] = [
        (0, &[0x00]),
        (127, &[0x7F]),
        (128, &[0x81, 0x00]),
        (16_383, &[0xFF, 0x7F]),
        (16_384, &[0x81, 0x80, 0x00]),
        (2_097_151, &[0xFF, 0xFF, 0x7F]),
        (2_097_152, &[0x80, 0xC0, 0x80, 0x00]),
        (INTEGER_MAX, &[0xBF, 0xFF, 0xFF, 0xFF]),
        (-1, &[0xFF, 0xFF, 0xFF, 0xFF]),
        (INTEGER_MIN, &[0xC0, 0x80, 0x80, 0x00]),
    ];
    for (value, u29) in cases {
        let mut bytes = vec![MARKER_INTEGER];
        bytes.extend_from_slice(u29);
        both_ways(&bytes, Amf3Value::Integer(value));
    }
}

#[test]
fn integers_outside_29_bits_go_out_as_doubles() {
    for value in [INTEGER_MAX + 1, INTEGER_MIN - 1, i32::MAX, i32::MIN] {
        let bytes = enc(&Amf3Value::Integer(value));
        assert_eq!(bytes[0], MARKER_DOUBLE);
        assert_eq!(dec(&bytes).unwrap(), Amf3Value::Double(f64::from(value)));
    }
    assert_eq!(
        enc(&Amf3Value::Integer(1 << 28)),
        [0x05, 0x41, 0xB0, 0, 0, 0, 0, 0, 0]
    );
}

#[test]
fn repeated_strings_are_references_but_never_the_empty_string() {
    // ["ab", "ab", "", ""]: the second "ab" is string reference 0; "" is always inline.
    let bytes = [
        0x09, 0x09, 0x01, 0x06, 0x05, b'a', b'b', 0x06, 0x00, 0x06, 0x01, 0x06, 0x01,
    ];
    both_ways(
        &bytes,
        dense(vec![
            Amf3Value::String("ab".into()),
            Amf3Value::String("ab".into()),
            Amf3Value::String(String::new()),
            Amf3Value::String(String::new()),
        ]),
    );
}

#[test]
fn sealed_objects_share_traits_by_reference() {
    let foo = |x| {
        Amf3Value::Object(Amf3Object {
            class_name: "Foo".into(),
            dynamic: false,
            sealed: vec![("x".into(), Amf3Value::Integer(x))],
            dynamic_members: vec![],
        })
    };
    // Traits 0x13: 1 sealed member, not dynamic, inline traits, inline object.
    both_ways(
        &[0x0A, 0x13, 0x07, b'F', b'o', b'o', 0x03, b'x', 0x04, 0x05],
        foo(5),
    );
    // The second object's traits are traits reference 0 (0x01).
    let mut bytes = vec![0x09, 0x05, 0x01];
    bytes.extend_from_slice(&[0x0A, 0x13, 0x07, b'F', b'o', b'o', 0x03, b'x', 0x04, 0x05]);
    bytes.extend_from_slice(&[0x0A, 0x01, 0x04, 0x06]);
    both_ways(&bytes, dense(vec![foo(5), foo(6)]));
    // Equal objects: the second is object reference 1 (the array is 0).
    let mut bytes = vec![0x09, 0x05, 0x01];
    bytes.extend_from_slice(&[0x0A, 0x13, 0x07, b'F', b'o', b'o', 0x03, b'x', 0x04, 0x05]);
    bytes.extend_from_slice(&[0x0A, 0x02]);
    both_ways(&bytes, dense(vec![foo(5), foo(5)]));
}

#[test]
fn dynamic_objects_and_arrays() {
    both_ways(
        &[0x0A, 0x0B, 0x01, 0x03, b'a', 0x04, 0x01, 0x01],
        anonymous(vec![("a", Amf3Value::Integer(1))]),
    );
    // Sealed and dynamic members together.
    let value = Amf3Value::Object(Amf3Object {
        class_name: "C".into(),
        dynamic: true,
        sealed: vec![("s".into(), Amf3Value::Null)],
        dynamic_members: vec![("d".into(), Amf3Value::Boolean(true))],
    });
    both_ways(
        &[
            0x0A, 0x1B, 0x03, b'C', 0x03, b's', 0x01, 0x03, b'd', 0x03, 0x01,
        ],
        value.clone(),
    );
    assert_eq!(value.get("s"), Some(&Amf3Value::Null));
    assert_eq!(value.get("d").and_then(Amf3Value::as_bool), Some(true));
    // Array with both parts: {k: 1.5} then [null].
    let array = Amf3Value::Array {
        associative: vec![("k".into(), Amf3Value::Double(1.5))],
        dense: vec![Amf3Value::Null],
    };
    both_ways(
        &[
            0x09, 0x03, 0x03, b'k', 0x05, 0x3F, 0xF8, 0, 0, 0, 0, 0, 0, 0x01, 0x01,
        ],
        array.clone(),
    );
    assert_eq!(array.get("k").and_then(Amf3Value::as_f64), Some(1.5));
}

#[test]
fn anonymous_traits_reference_from_another_implementation() {
    // {prop: {a: 1}}: the inner object reuses the outer's anonymous dynamic traits
    // (test vector of the php-amf3 extension).
    let bytes = [
        0x0A, 0x0B, 0x01, 0x09, b'p', b'r', b'o', b'p', 0x0A, 0x01, 0x03, b'a', 0x04, 0x01, 0x01,
        0x01,
    ];
    both_ways(
        &bytes,
        anonymous(vec![(
            "prop",
            anonymous(vec![("a", Amf3Value::Integer(1))]),
        )]),
    );
}

#[test]
fn externalizable_flex_collections() {
    let mut bytes = vec![0x0A, 0x07];
    bytes.extend_from_slice(&text(ARRAY_COLLECTION));
    bytes.extend_from_slice(&[0x09, 0x03, 0x01, 0x04, 0x01]);
    let collection = Amf3Value::Externalizable {
        class_name: ARRAY_COLLECTION.into(),
        value: Box::new(dense(vec![Amf3Value::Integer(1)])),
    };
    both_ways(&bytes, collection.clone());
    // A second ArrayCollection reuses the externalizable traits (0x01) and class name.
    let second = Amf3Value::Externalizable {
        class_name: ARRAY_COLLECTION.into(),
        value: Box::new(dense(vec![Amf3Value::Integer(2)])),
    };
    let mut pair = vec![0x09, 0x05, 0x01];
    pair.extend_from_slice(&bytes);
    pair.extend_from_slice(&[0x0A, 0x01, 0x09, 0x03, 0x01, 0x04, 0x02]);
    both_ways(&pair, dense(vec![collection, second]));

    let mut bytes = vec![0x0A, 0x07];
    bytes.extend_from_slice(&text(OBJECT_PROXY));
    bytes.extend_from_slice(&[0x0A, 0x0B, 0x01, 0x03, b'a', 0x04, 0x01, 0x01]);
    let proxy = Amf3Value::Externalizable {
        class_name: OBJECT_PROXY.into(),
        value: Box::new(anonymous(vec![("a", Amf3Value::Integer(1))])),
    };
    both_ways(&bytes, proxy.clone());
    assert_eq!(proxy.get("a"), Some(&Amf3Value::Integer(1)));
}

#[test]
fn unknown_externalizable_classes_are_typed_errors() {
    let mut bytes = vec![0x0A, 0x07];
    bytes.extend_from_slice(&text("DSK"));
    bytes.extend_from_slice(&[0x00, 0x00]);
    assert_eq!(
        dec(&bytes),
        Err(Amf3Error::UnknownExternalizable {
            class_name: "DSK".into(),
            offset: 0
        })
    );
    let mut out = vec![0x77];
    assert_eq!(
        encode(
            &Amf3Value::Externalizable {
                class_name: "DSK".into(),
                value: Box::new(Amf3Value::Null)
            },
            &mut out
        ),
        Err(Amf3Error::UnsupportedExternalizable {
            class_name: "DSK".into()
        })
    );
    assert_eq!(out, [0x77], "nothing appended on error");
}

#[test]
fn dates_xml_byte_arrays_vectors_dictionaries() {
    both_ways(
        &[0x08, 0x01, 0x42, 0x78, 0, 0, 0, 0, 0, 0],
        Amf3Value::Date(1_649_267_441_664.0),
    );
    let mut bytes = vec![0x0B];
    bytes.extend_from_slice(&text("<a/>"));
    both_ways(&bytes, Amf3Value::Xml("<a/>".into()));
    bytes[0] = 0x07;
    both_ways(&bytes, Amf3Value::XmlDocument("<a/>".into()));
    both_ways(&[0x0C, 0x07, 1, 2, 3], Amf3Value::ByteArray(vec![1, 2, 3]));
    both_ways(
        &[0x0D, 0x05, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 1],
        Amf3Value::VectorInt {
            fixed: false,
            items: vec![-1, 1],
        },
    );
    both_ways(
        &[0x0E, 0x03, 0x01, 0xFF, 0xFF, 0xFF, 0xFF],
        Amf3Value::VectorUint {
            fixed: true,
            items: vec![u32::MAX],
        },
    );
    both_ways(
        &[0x0F, 0x03, 0x00, 0x3F, 0xF8, 0, 0, 0, 0, 0, 0],
        Amf3Value::VectorDouble {
            fixed: false,
            items: vec![1.5],
        },
    );
    both_ways(
        // The item "*" repeats the type name, so it is string reference 0.
        &[0x10, 0x05, 0x00, 0x03, b'*', 0x01, 0x06, 0x00],
        Amf3Value::VectorObject {
            fixed: false,
            type_name: "*".into(),
            items: vec![Amf3Value::Null, Amf3Value::String("*".into())],
        },
    );
    both_ways(
        &[0x11, 0x03, 0x01, 0x04, 0x01, 0x06, 0x03, b'v'],
        Amf3Value::Dictionary {
            weak_keys: true,
            entries: vec![(Amf3Value::Integer(1), Amf3Value::String("v".into()))],
        },
    );
    // Repeated dates and byte arrays are object references too.
    let date = Amf3Value::Date(0.0);
    let bytes = enc(&dense(vec![date.clone(), date.clone()]));
    assert_eq!(&bytes[bytes.len() - 2..], &[0x08, 0x02]);
    assert_eq!(dec(&bytes).unwrap(), dense(vec![date.clone(), date]));
}

#[test]
fn encoder_rejects_what_the_wire_cannot_say() {
    let mut out = Vec::new();
    let sealed_with_dynamic = Amf3Value::Object(Amf3Object {
        class_name: "C".into(),
        dynamic: false,
        sealed: vec![],
        dynamic_members: vec![("d".into(), Amf3Value::Null)],
    });
    assert!(matches!(
        encode(&sealed_with_dynamic, &mut out),
        Err(Amf3Error::DynamicMembersOnSealedObject { .. })
    ));
    assert!(matches!(
        encode(&anonymous(vec![("", Amf3Value::Null)]), &mut out),
        Err(Amf3Error::EmptyName { .. })
    ));
    let empty_key = Amf3Value::Array {
        associative: vec![(String::new(), Amf3Value::Null)],
        dense: vec![],
    };
    assert!(matches!(
        encode(&empty_key, &mut out),
        Err(Amf3Error::EmptyName { .. })
    ));
    assert!(out.is_empty());
    // Lengths past 2^28 - 1 do not fit a U29 with its flag bit.
    assert!(write_inline_len(&mut out, MAX_INLINE_LEN, "x").is_ok());
    assert_eq!(out, [0xFF, 0xFF, 0xFF, 0xFF]);
    assert_eq!(
        write_inline_len(&mut out, MAX_INLINE_LEN + 1, "string length"),
        Err(Amf3Error::TooLong {
            what: "string length",
            len: 1 << 28,
            max: MAX_INLINE_LEN
        })
    );
}

#[test]
fn object_reference_to_an_object_being_decoded_is_a_loop() {
    // {a: <reference to itself>}
    assert_eq!(
        dec(&[0x0A, 0x0B, 0x01, 0x03, b'a', 0x0A, 0x00, 0x01]),
        Err(Amf3Error::ReferenceLoop {
            index: 0,
            offset: 5
        })
    );
    // [<reference to itself>]
    assert_eq!(
        dec(&[0x09, 0x03, 0x01, 0x09, 0x00]),
        Err(Amf3Error::ReferenceLoop {
            index: 0,
            offset: 3
        })
    );
}

#[test]
fn bad_references_are_typed_errors() {
    assert!(matches!(
        dec(&[0x06, 0x02]),
        Err(Amf3Error::BadStringReference {
            index: 1,
            table_len: 0,
            ..
        })
    ));
    assert!(matches!(
        dec(&[0x09, 0x02]),
        Err(Amf3Error::BadObjectReference {
            index: 1,
            table_len: 0,
            ..
        })
    ));
    assert!(matches!(
        dec(&[0x0A, 0x05]),
        Err(Amf3Error::BadTraitsReference {
            index: 1,
            table_len: 0,
            ..
        })
    ));
    // The empty string takes no string table slot.
    assert!(matches!(
        dec(&[0x09, 0x05, 0x01, 0x06, 0x01, 0x06, 0x00]),
        Err(Amf3Error::BadStringReference {
            index: 0,
            table_len: 0,
            ..
        })
    ));
}

/// [a0, a1, ..., an] where a0 = [null, null] and a(k) = [a(k-1), a(k-1)] by reference:
/// about 4n bytes that would expand to 2^(n+1) values.
fn reference_bomb(levels: u8) -> Vec<u8> {
    let mut bytes = vec![MARKER_ARRAY];
    write_inline_len(&mut bytes, usize::from(levels) + 1, "t").unwrap();
    bytes.push(0x01);
    bytes.extend_from_slice(&[0x09, 0x05, 0x01, 0x01, 0x01]);
    for k in 1..=levels {
        // a(k-1) is object table entry k (the outer array is entry 0).
        bytes.extend_from_slice(&[0x09, 0x05, 0x01]);
        for _ in 0..2 {
            bytes.push(0x09);
            write_u29(&mut bytes, u32::from(k) << 1);
        }
    }
    bytes
}

#[test]
fn reference_bombs_fail_fast_on_the_value_budget() {
    let small = reference_bomb(3);
    let value = dec(&small).unwrap();
    // Expanded: the outer header, then a0..a3 of 5, 13, 29 and 61 bytes.
    assert_eq!(enc_plain(&value).len(), 3 + 5 + 13 + 29 + 61);
    let deep = AmfLimits {
        max_depth: 10_000,
        max_values: 65_536,
    };
    let started = std::time::Instant::now();
    let bomb = reference_bomb(60);
    assert!(bomb.len() < 600, "{} bytes", bomb.len());
    assert!(matches!(
        decode(&mut &bomb[..], &deep),
        Err(Amf3Error::TooManyValues {
            max_values: 65_536,
            ..
        })
    ));
    // With default limits the expansion's depth trips first; either way it is typed.
    assert!(matches!(
        dec(&bomb),
        Err(Amf3Error::DepthExceeded { .. } | Amf3Error::TooManyValues { .. })
    ));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn string_reference_bombs_are_charged_by_size() {
    // One 6000-byte string, then 1000 two-byte references to it: 8 KB of input that
    // would copy 6 MB.
    let long = "x".repeat(6000);
    let mut bytes = vec![MARKER_ARRAY];
    write_inline_len(&mut bytes, 1001, "t").unwrap();
    bytes.push(0x01);
    bytes.push(MARKER_STRING);
    bytes.extend_from_slice(&text(&long));
    for _ in 0..1000 {
        bytes.extend_from_slice(&[0x06, 0x00]);
    }
    assert!(matches!(dec(&bytes), Err(Amf3Error::TooManyValues { .. })));
    // The same with few references decodes.
    let value = dense(vec![Amf3Value::String(long); 10]);
    let encoded = enc(&value);
    assert!(encoded.len() < 6100);
    assert_eq!(dec(&encoded).unwrap(), value);
}

#[test]
fn references_cannot_exceed_the_depth_limit() {
    // Entry 1 is three arrays deep; referencing it three levels down makes six.
    let limits = AmfLimits {
        max_depth: 5,
        max_values: 1000,
    };
    let inner = dense(vec![dense(vec![dense(vec![])])]);
    let value = dense(vec![inner.clone(), dense(vec![dense(vec![inner])])]);
    let bytes = enc(&value);
    assert!(bytes.len() < enc_plain(&value).len(), "uses a reference");
    assert!(matches!(
        decode(&mut &bytes[..], &limits),
        Err(Amf3Error::DepthExceeded { max_depth: 5, .. })
    ));
    let limits = AmfLimits {
        max_depth: 6,
        max_values: 1000,
    };
    assert_eq!(decode(&mut &bytes[..], &limits).unwrap(), value);
}

#[test]
fn deep_nesting_fails_without_exhausting_the_stack() {
    let mut bytes = Vec::new();
    for _ in 0..100_000 {
        bytes.extend_from_slice(&[0x09, 0x03, 0x01]);
    }
    assert!(matches!(
        dec(&bytes),
        Err(Amf3Error::DepthExceeded { max_depth: 32, .. })
    ));
}

#[test]
fn huge_declared_lengths_fail_before_allocating() {
    let cases: [&[u8]; 11] = [
        &[0x06, 0xFF, 0xFF, 0xFF, 0xFF, b'a'],
        &[0x07, 0xFF, 0xFF, 0xFF, 0xFF],
        &[0x0B, 0xFF, 0xFF, 0xFF, 0xFF],
        &[0x0C, 0xFF, 0xFF, 0xFF, 0xFF, 0x00],
        &[0x09, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x01],
        &[0x0A, 0xFF, 0xFF, 0xFF, 0xF3, 0x01],
        &[0x0D, 0x09, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        &[0x0E, 0xFF, 0xFF, 0xFF, 0xFF, 0x00],
        &[0x0F, 0x05, 0x00, 0, 0, 0, 0, 0, 0, 0, 0],
        &[0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x01, 0x01],
        &[0x11, 0x05, 0x00, 0x01, 0x01, 0x01],
    ];
    for bytes in cases {
        assert!(
            matches!(dec(bytes), Err(Amf3Error::LengthExceedsInput { .. })),
            "{bytes:02x?}: {:?}",
            dec(bytes)
        );
    }
}

#[test]
fn bad_utf8_and_unknown_markers() {
    assert_eq!(
        dec(&[0x06, 0x05, 0xC3, 0x28]),
        Err(Amf3Error::InvalidUtf8 {
            what: "string",
            offset: 2
        })
    );
    assert!(matches!(
        dec(&[0x0A, 0x0B, 0x01, 0x03, 0xFF, 0x01, 0x01]),
        Err(Amf3Error::InvalidUtf8 {
            what: "dynamic member name",
            ..
        })
    ));
    assert!(matches!(
        dec(&[0x0B, 0x03, 0x80]),
        Err(Amf3Error::InvalidUtf8 { what: "XML", .. })
    ));
    for marker in [0x12, 0x7F, 0xFF] {
        assert_eq!(
            dec(&[marker]),
            Err(Amf3Error::UnknownMarker { marker, offset: 0 })
        );
    }
}

fn rich_value() -> Amf3Value {
    let object = Amf3Value::Object(Amf3Object {
        class_name: "C".into(),
        dynamic: true,
        sealed: vec![("s".into(), Amf3Value::Integer(300))],
        dynamic_members: vec![("d".into(), Amf3Value::String("text".into()))],
    });
    Amf3Value::Array {
        associative: vec![("key".into(), Amf3Value::Date(1.0))],
        dense: vec![
            object.clone(),
            object,
            Amf3Value::String("text".into()),
            Amf3Value::Xml("<x/>".into()),
            Amf3Value::XmlDocument("<y/>".into()),
            Amf3Value::ByteArray(vec![9, 8]),
            Amf3Value::VectorInt {
                fixed: true,
                items: vec![7],
            },
            Amf3Value::VectorUint {
                fixed: false,
                items: vec![7],
            },
            Amf3Value::VectorDouble {
                fixed: false,
                items: vec![7.0],
            },
            Amf3Value::VectorObject {
                fixed: false,
                type_name: "C".into(),
                items: vec![Amf3Value::Null],
            },
            Amf3Value::Dictionary {
                weak_keys: false,
                entries: vec![(Amf3Value::String("k".into()), Amf3Value::Double(2.0))],
            },
            Amf3Value::Externalizable {
                class_name: ARRAY_COLLECTION.into(),
                value: Box::new(dense(vec![Amf3Value::Boolean(true)])),
            },
        ],
    }
}

#[test]
fn every_truncation_of_a_valid_encoding_is_an_error() {
    let bytes = enc(&rich_value());
    assert_eq!(dec(&bytes).unwrap(), rich_value());
    for cut in 0..bytes.len() {
        let mut input = &bytes[..cut];
        assert!(decode(&mut input, &limits()).is_err(), "cut at {cut}");
        assert_eq!(input.len(), cut, "input must not move on error");
    }
}

#[test]
fn decoder_and_encoder_keep_tables_across_values() {
    let object = anonymous(vec![("a", Amf3Value::Integer(1))]);
    let values = [
        Amf3Value::String("ab".into()),
        object.clone(),
        Amf3Value::String("ab".into()),
        dense(vec![object.clone()]),
        object,
    ];
    let mut encoder = Amf3Encoder::new();
    let mut bytes = Vec::new();
    for value in &values {
        encoder.encode(value, &mut bytes).unwrap();
    }
    // "ab" then {a: 1} then "ab" by reference, [ref 0], ref 0.
    let mut expected = vec![0x06, 0x05, b'a', b'b'];
    expected.extend_from_slice(&[0x0A, 0x0B, 0x01, 0x03, b'a', 0x04, 0x01, 0x01]);
    expected.extend_from_slice(&[0x06, 0x00]);
    expected.extend_from_slice(&[0x09, 0x03, 0x01, 0x0A, 0x00]);
    expected.extend_from_slice(&[0x0A, 0x00]);
    assert_eq!(bytes, expected);

    let mut decoder = Amf3Decoder::new(limits());
    let mut input = &bytes[..];
    for value in &values {
        assert_eq!(&decoder.decode(&mut input).unwrap(), value);
    }
    assert!(input.is_empty());
    assert!(decoder.values_produced() >= 8);
    // A lone decode of a later value has no tables.
    assert!(decode(&mut &bytes[12..], &limits()).is_err());
}

#[test]
fn a_failed_decode_leaves_the_tables_as_they_were() {
    let mut decoder = Amf3Decoder::new(limits());
    // An object with a string, then garbage: fails after taking table entries.
    let bad = [0x0A, 0x0B, 0x01, 0x03, b'a', 0x06, 0x03, b'z', 0xFF];
    assert!(decoder.decode(&mut &bad[..]).is_err());
    assert!(matches!(
        decoder.decode(&mut &[0x0A, 0x00][..]),
        Err(Amf3Error::BadObjectReference { table_len: 0, .. })
    ));
    assert!(matches!(
        decoder.decode(&mut &[0x06, 0x00][..]),
        Err(Amf3Error::BadStringReference { table_len: 0, .. })
    ));
    let good = [0x0A, 0x0B, 0x01, 0x03, b'a', 0x06, 0x03, b'z', 0x01];
    let value = decoder.decode(&mut &good[..]).unwrap();
    assert_eq!(decoder.decode(&mut &[0x0A, 0x00][..]).unwrap(), value);
    assert_eq!(
        decoder.decode(&mut &[0x06, 0x02][..]).unwrap(),
        Amf3Value::String("z".into())
    );
}

#[test]
fn references_make_the_output_shorter_and_decode_equal() {
    let record = |n| {
        Amf3Value::Object(Amf3Object {
            class_name: "com.example.Record".into(),
            dynamic: false,
            sealed: vec![
                ("name".into(), Amf3Value::String("same name".into())),
                ("count".into(), Amf3Value::Integer(n)),
                ("tags".into(), dense(vec![Amf3Value::String("tag".into())])),
            ],
            dynamic_members: vec![],
        })
    };
    let value = dense((0..20).map(|n| record(n % 4)).collect());
    let with_references = enc(&value);
    let plain = enc_plain(&value);
    assert!(
        with_references.len() * 4 < plain.len(),
        "{} vs {}",
        with_references.len(),
        plain.len()
    );
    assert_eq!(dec(&with_references).unwrap(), value);
    assert_eq!(dec(&plain).unwrap(), value);
}

fn arb_name() -> BoxedStrategy<String> {
    prop_oneof!["[ab]{1,2}", "\\PC{1,5}"].boxed()
}

fn arb_leaf() -> BoxedStrategy<Amf3Value> {
    prop_oneof![
        Just(Amf3Value::Undefined),
        Just(Amf3Value::Null),
        any::<bool>().prop_map(Amf3Value::Boolean),
        (INTEGER_MIN..=INTEGER_MAX).prop_map(Amf3Value::Integer),
        any::<f64>().prop_map(Amf3Value::Double),
        prop_oneof![Just(0.0), Just(-0.0), Just(f64::NAN)].prop_map(Amf3Value::Double),
        "[ab]{0,2}".prop_map(Amf3Value::String),
        "\\PC{0,8}".prop_map(Amf3Value::String),
        "[ab]{0,2}".prop_map(Amf3Value::XmlDocument),
        "\\PC{0,8}".prop_map(Amf3Value::Xml),
        prop_oneof![Just(0.0), any::<f64>()].prop_map(Amf3Value::Date),
        prop::collection::vec(any::<u8>(), 0..6).prop_map(Amf3Value::ByteArray),
        (any::<bool>(), prop::collection::vec(any::<i32>(), 0..4))
            .prop_map(|(fixed, items)| Amf3Value::VectorInt { fixed, items }),
        (any::<bool>(), prop::collection::vec(any::<u32>(), 0..4))
            .prop_map(|(fixed, items)| Amf3Value::VectorUint { fixed, items }),
        (any::<bool>(), prop::collection::vec(any::<f64>(), 0..4))
            .prop_map(|(fixed, items)| Amf3Value::VectorDouble { fixed, items }),
    ]
    .boxed()
}

fn arb_amf3() -> BoxedStrategy<Amf3Value> {
    arb_leaf()
        .prop_recursive(4, 64, 5, |inner| {
            let members = prop::collection::vec((arb_name(), inner.clone()), 0..4);
            prop_oneof![
                (members.clone(), prop::collection::vec(inner.clone(), 0..4))
                    .prop_map(|(associative, dense)| Amf3Value::Array { associative, dense }),
                (
                    prop_oneof![Just(String::new()), Just("C".to_owned()), arb_name()],
                    any::<bool>(),
                    prop::collection::vec(("[ab]{0,2}", inner.clone()), 0..3),
                    members,
                )
                    .prop_map(|(class_name, dynamic, sealed, dynamic_members)| {
                        Amf3Value::Object(Amf3Object {
                            class_name,
                            dynamic,
                            sealed,
                            dynamic_members: if dynamic { dynamic_members } else { vec![] },
                        })
                    }),
                (
                    any::<bool>(),
                    "[*C]{0,2}",
                    prop::collection::vec(inner.clone(), 0..4)
                )
                    .prop_map(|(fixed, type_name, items)| {
                        Amf3Value::VectorObject {
                            fixed,
                            type_name,
                            items,
                        }
                    }),
                (
                    any::<bool>(),
                    prop::collection::vec((inner.clone(), inner.clone()), 0..3)
                )
                    .prop_map(|(weak_keys, entries)| {
                        Amf3Value::Dictionary { weak_keys, entries }
                    }),
                (
                    prop_oneof![Just(ARRAY_COLLECTION), Just(OBJECT_PROXY)],
                    inner
                )
                    .prop_map(|(class_name, value)| {
                        Amf3Value::Externalizable {
                            class_name: class_name.to_owned(),
                            value: Box::new(value),
                        }
                    }),
            ]
        })
        .boxed()
}

proptest! {
    #[test]
    fn encode_then_decode_is_identity(value in arb_amf3()) {
        let bytes = enc(&value);
        // Debug output compares floats bit for bit where it matters (NaN, -0.0).
        prop_assert_eq!(format!("{:?}", dec(&bytes).unwrap()), format!("{value:?}"));
        let plain = enc_plain(&value);
        prop_assert!(bytes.len() <= plain.len());
        prop_assert_eq!(format!("{:?}", dec(&plain).unwrap()), format!("{value:?}"));
    }

    #[test]
    fn sequences_share_tables(values in prop::collection::vec(arb_amf3(), 1..5)) {
        let mut encoder = Amf3Encoder::new();
        let mut bytes = Vec::new();
        for value in &values {
            encoder.encode(value, &mut bytes).unwrap();
        }
        let mut decoder = Amf3Decoder::new(limits());
        let mut input = &bytes[..];
        for value in &values {
            let decoded = decoder.decode(&mut input).unwrap();
            prop_assert_eq!(format!("{decoded:?}"), format!("{value:?}"));
        }
        prop_assert!(input.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode(&mut &bytes[..], &limits());
    }

    #[test]
    fn mutated_encodings_never_panic(
        value in arb_amf3(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = enc(&value);
        for (index, byte) in flips {
            let i = index.index(bytes.len());
            bytes[i] = byte;
        }
        let mut input = &bytes[..];
        let _ = decode(&mut input, &limits());
    }
}
