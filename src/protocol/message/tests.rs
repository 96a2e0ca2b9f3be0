use super::*;

fn round_trip(msg: Message) {
    let raw = msg.to_raw(1, 42).expect("encode");
    let back = Message::decode(&raw, &AmfLimits::default()).expect("decode");
    assert_eq!(back, msg);
}

#[test]
fn an_undecodable_command_keeps_its_transaction_id() {
    let limits = AmfLimits::default();
    let head = |amf3: bool, name: Amf0Value| {
        let mut body = if amf3 { vec![0] } else { vec![] };
        amf0::encode_all(&[name, Amf0Value::Number(7.0)], &mut body).expect("encode");
        body.push(0xff); // no such AMF0 marker: the rest does not decode
        body
    };
    let raw = |type_id: u8, body: Vec<u8>| RawMessage {
        type_id,
        stream_id: 0,
        timestamp: 0,
        payload: Bytes::from(body),
    };
    let name = || Amf0Value::String("createStream".into());
    for (t, amf3) in [
        (type_id::COMMAND_AMF0, false),
        (type_id::COMMAND_AMF3, true),
    ] {
        let m = raw(t, head(amf3, name()));
        assert!(Message::decode(&m, &limits).is_err());
        assert_eq!(command_transaction_id(&m, &limits), Some(7.0));
        // The name must be a string: otherwise this is not a command to answer.
        let m = raw(t, head(amf3, Amf0Value::Number(1.0)));
        assert_eq!(command_transaction_id(&m, &limits), None);
    }
    // Data messages have no transaction id; a body cut inside the name has none either.
    assert_eq!(
        command_transaction_id(&raw(type_id::DATA_AMF0, head(false, name())), &limits),
        None
    );
    assert_eq!(
        command_transaction_id(&raw(type_id::COMMAND_AMF0, vec![2, 0, 9, b'c']), &limits),
        None
    );
}

#[test]
fn protocol_control_round_trips() {
    round_trip(Message::SetChunkSize(4096));
    round_trip(Message::Abort { chunk_stream_id: 7 });
    round_trip(Message::Acknowledgement {
        sequence_number: 123_456,
    });
    round_trip(Message::WindowAckSize(2_500_000));
    round_trip(Message::SetPeerBandwidth {
        size: 2_500_000,
        limit_type: LimitType::Dynamic,
    });
}

#[test]
fn user_control_round_trips() {
    for event in [
        UserControlEvent::StreamBegin { stream_id: 1 },
        UserControlEvent::StreamEof { stream_id: 1 },
        UserControlEvent::StreamDry { stream_id: 1 },
        UserControlEvent::SetBufferLength {
            stream_id: 1,
            buffer_ms: 3000,
        },
        UserControlEvent::StreamIsRecorded { stream_id: 1 },
        UserControlEvent::PingRequest { timestamp: 99 },
        UserControlEvent::PingResponse { timestamp: 99 },
        UserControlEvent::Unknown {
            event_type: 31,
            data: Bytes::from_static(&[0, 0, 0, 1]),
        },
    ] {
        round_trip(Message::UserControl(event));
    }
}

#[test]
fn set_chunk_size_rejects_zero_and_top_bit() {
    for body in [[0u8, 0, 0, 0], [0x80, 0, 0, 1]] {
        let raw = RawMessage {
            type_id: type_id::SET_CHUNK_SIZE,
            stream_id: 0,
            timestamp: 0,
            payload: Bytes::copy_from_slice(&body),
        };
        assert!(matches!(
            Message::decode(&raw, &AmfLimits::default()),
            Err(MessageError::BadChunkSize { .. })
        ));
    }
}

#[test]
fn truncated_control_bodies_are_errors() {
    for t in 1..=6u8 {
        let raw = RawMessage {
            type_id: t,
            stream_id: 0,
            timestamp: 0,
            payload: Bytes::from_static(&[0, 1]),
        };
        assert!(
            Message::decode(&raw, &AmfLimits::default()).is_err(),
            "type {t}"
        );
    }
}

#[test]
fn commands_and_data_round_trip_in_both_encodings() {
    let values = vec![
        Amf0Value::String("onStatus".into()),
        Amf0Value::Number(0.0),
        Amf0Value::Null,
        Amf0Value::object([("code", Amf0Value::String("NetStream.Play.Start".into()))]),
    ];
    for amf3 in [false, true] {
        round_trip(Message::Command {
            amf3,
            values: values.clone(),
        });
        round_trip(Message::Data {
            amf3,
            values: values.clone(),
        });
    }
}

#[test]
fn shared_object_events_round_trip() {
    let message = SharedObjectMessage {
        name: "chat".into(),
        version: 3,
        persistent: true,
        events: vec![
            SharedObjectEvent::Connect,
            SharedObjectEvent::Disconnect,
            SharedObjectEvent::SetAttribute {
                properties: vec![("x".into(), Amf0Value::Number(1.0))],
            },
            SharedObjectEvent::UpdateData {
                properties: vec![
                    ("x".into(), Amf0Value::Number(1.0)),
                    ("who".into(), Amf0Value::String("me".into())),
                ],
            },
            SharedObjectEvent::UpdateAttribute { name: "x".into() },
            SharedObjectEvent::SendMessage {
                values: vec![Amf0Value::String("say".into()), Amf0Value::Number(2.0)],
            },
            SharedObjectEvent::Status {
                code: "SharedObject.BadPersistence".into(),
                level: "error".into(),
            },
            SharedObjectEvent::ClearData,
            SharedObjectEvent::DeleteData { name: "x".into() },
            SharedObjectEvent::DeleteAttribute { name: "x".into() },
            SharedObjectEvent::InitialData,
            SharedObjectEvent::Unknown {
                event_type: 42,
                data: Bytes::from_static(b"zz"),
            },
        ],
    };
    for amf3 in [false, true] {
        round_trip(Message::SharedObject {
            amf3,
            message: message.clone(),
        });
    }
}

#[test]
fn shared_object_connect_bytes_from_the_spec_layout() {
    // name "so", version 0, non-persistent, one Use event with no data.
    let body = [
        0, 2, b's', b'o', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0,
    ];
    let raw = RawMessage {
        type_id: type_id::SHARED_OBJECT_AMF0,
        stream_id: 0,
        timestamp: 0,
        payload: Bytes::copy_from_slice(&body),
    };
    let msg = Message::decode(&raw, &AmfLimits::default()).expect("decode");
    assert_eq!(
        msg,
        Message::SharedObject {
            amf3: false,
            message: SharedObjectMessage {
                name: "so".into(),
                version: 0,
                persistent: false,
                events: vec![SharedObjectEvent::Connect],
            }
        }
    );
    assert_eq!(msg.encode_body().expect("encode")[..], body[..]);
}

#[test]
fn truncated_shared_object_never_panics() {
    let message = Message::SharedObject {
        amf3: false,
        message: SharedObjectMessage {
            name: "so".into(),
            version: 1,
            persistent: false,
            events: vec![SharedObjectEvent::SetAttribute {
                properties: vec![("a".into(), Amf0Value::String("b".into()))],
            }],
        },
    };
    let body = message.encode_body().expect("encode");
    for cut in 0..body.len() {
        let raw = RawMessage {
            type_id: type_id::SHARED_OBJECT_AMF0,
            stream_id: 0,
            timestamp: 0,
            payload: body.slice(..cut),
        };
        let _ = Message::decode(&raw, &AmfLimits::default());
    }
}

#[test]
fn unknown_types_are_kept() {
    let raw = RawMessage {
        type_id: 99,
        stream_id: 1,
        timestamp: 5,
        payload: Bytes::from_static(b"abc"),
    };
    let msg = Message::decode(&raw, &AmfLimits::default()).expect("decode");
    assert_eq!(msg.to_raw(1, 5).expect("encode"), raw);
}

fn flv_tag(tag_type: u8, ts: u32, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag_type];
    v.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    v.extend_from_slice(&ts.to_be_bytes()[1..]);
    v.push((ts >> 24) as u8);
    v.extend_from_slice(&[0, 0, 0]);
    v.extend_from_slice(body);
    v.extend_from_slice(&(body.len() as u32 + 11).to_be_bytes());
    v
}

#[test]
fn an_aggregate_inside_an_aggregate_is_refused() {
    let nested = flv_tag(type_id::AGGREGATE, 0, &flv_tag(9, 0, b"v"));
    let agg = RawMessage {
        type_id: type_id::AGGREGATE,
        stream_id: 1,
        timestamp: 0,
        payload: Bytes::from(nested),
    };
    assert!(matches!(
        split_aggregate(&agg),
        Err(MessageError::Aggregate { offset: 0, .. })
    ));
}

#[test]
fn shared_object_values_are_resolved_like_commands() {
    let so = |value: &[u8]| {
        let mut data = vec![0, 1, b'v'];
        data.extend_from_slice(value);
        let mut body = vec![0, 2, b's', b'o'];
        body.extend_from_slice(&[0; 12]);
        body.push(3);
        body.extend_from_slice(&(data.len() as u32).to_be_bytes());
        body.extend_from_slice(&data);
        RawMessage {
            type_id: type_id::SHARED_OBJECT_AMF0,
            stream_id: 0,
            timestamp: 0,
            payload: Bytes::from(body),
        }
    };
    // {a: {}, b: ref 1}: b becomes a copy of a.
    let ok = [
        0x03, 0, 1, b'a', 0x03, 0, 0, 0x09, 0, 1, b'b', 0x07, 0, 1, 0, 0, 0x09,
    ];
    let Ok(Message::SharedObject { message, .. }) =
        Message::decode(&so(&ok), &AmfLimits::default())
    else {
        panic!("legal reference refused");
    };
    let empty = Amf0Value::Object(vec![]);
    assert_eq!(
        message.events,
        vec![SharedObjectEvent::SetAttribute {
            properties: vec![(
                "v".into(),
                Amf0Value::object([("a", empty.clone()), ("b", empty)])
            )]
        }]
    );
    // {me: ref 0}: a loop, refused as on the command path.
    let looped = [0x03, 0, 2, b'm', b'e', 0x07, 0, 0, 0, 0, 0x09];
    assert!(Message::decode(&so(&looped), &AmfLimits::default()).is_err());
}

#[test]
fn aggregate_splits_and_rebases_timestamps() {
    let mut payload = flv_tag(9, 0x0100_0000, b"video");
    payload.extend(flv_tag(8, 0x0100_0014, b"au"));
    let agg = RawMessage {
        type_id: type_id::AGGREGATE,
        stream_id: 1,
        timestamp: 1000,
        payload: Bytes::from(payload),
    };
    let parts = split_aggregate(&agg).expect("split");
    assert_eq!(parts.len(), 2);
    assert_eq!(
        (parts[0].type_id, parts[0].timestamp, &parts[0].payload[..]),
        (9, 1000, &b"video"[..])
    );
    assert_eq!(
        (parts[1].type_id, parts[1].timestamp, &parts[1].payload[..]),
        (8, 1020, &b"au"[..])
    );
    let first_tag_len = 11 + 5 + 4;
    for cut in 1..agg.payload.len() {
        let truncated = RawMessage {
            payload: agg.payload.slice(..cut),
            ..agg.clone()
        };
        assert_eq!(
            split_aggregate(&truncated).is_ok(),
            cut == first_tag_len,
            "cut {cut}"
        );
    }
}
