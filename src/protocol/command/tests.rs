use super::*;

fn s(x: &str) -> Amf0Value {
    Amf0Value::String(x.into())
}
fn n(x: f64) -> Amf0Value {
    Amf0Value::Number(x)
}

#[test]
fn connect_as_ffmpeg_sends_it() {
    let values = vec![
        s("connect"),
        n(1.0),
        Amf0Value::object([
            ("app", s("live")),
            ("type", s("nonprivate")),
            ("flashVer", s("FMLE/3.0 (compatible; Lavf59.27.100)")),
            ("tcUrl", s("rtmp://127.0.0.1:1935/live")),
        ]),
    ];
    let Command::Connect(c) = Command::parse(&values).expect("parse") else {
        panic!("not connect");
    };
    assert_eq!(c.app, "live");
    assert_eq!(c.tc_url.as_deref(), Some("rtmp://127.0.0.1:1935/live"));
    assert_eq!(
        c.flash_ver.as_deref(),
        Some("FMLE/3.0 (compatible; Lavf59.27.100)")
    );
    assert_eq!(c.object_encoding, 0.0);
    assert_eq!(Command::Connect(c).to_values(), values);
}

#[test]
fn enhanced_rtmp_fourcc_list() {
    let values = vec![
        s("connect"),
        n(1.0),
        Amf0Value::object([
            ("app", s("live")),
            (
                "fourCcList",
                Amf0Value::StrictArray(vec![s("hvc1"), s("av01"), s("vp09")]),
            ),
        ]),
    ];
    let Command::Connect(c) = Command::parse(&values).expect("parse") else {
        panic!("not connect");
    };
    assert_eq!(c.fourcc_list(), vec!["hvc1", "av01", "vp09"]);
}

#[test]
fn stream_commands_round_trip() {
    for cmd in [
        Command::CreateStream {
            transaction_id: 2.0,
        },
        Command::ReleaseStream {
            transaction_id: 3.0,
            name: "cam".into(),
        },
        Command::FcPublish {
            transaction_id: 4.0,
            name: "cam".into(),
        },
        Command::FcUnpublish {
            transaction_id: 5.0,
            name: "cam".into(),
        },
        Command::Publish {
            transaction_id: 5.0,
            name: "cam?key=1".into(),
            publish_type: PublishType::Record,
        },
        Command::Play {
            transaction_id: 6.0,
            name: "cam".into(),
            start: -2.0,
            duration: -1.0,
            reset: true,
        },
        Command::DeleteStream {
            transaction_id: 7.0,
            stream_id: 1.0,
        },
        Command::CloseStream {
            transaction_id: 8.0,
        },
        Command::ReceiveAudio { flag: false },
        Command::ReceiveVideo { flag: true },
        Command::Pause {
            pause: true,
            milliseconds: 1234.0,
        },
        Command::Seek { milliseconds: 10.0 },
        Command::GetStreamLength {
            transaction_id: 9.0,
            name: "cam".into(),
        },
        Command::Other {
            name: "myCall".into(),
            transaction_id: 10.0,
            arguments: vec![Amf0Value::Null, n(1.0)],
        },
    ] {
        assert_eq!(Command::parse(&cmd.to_values()).expect("parse"), cmd);
    }
}

#[test]
fn play_with_only_a_name_gets_defaults() {
    let cmd = Command::parse(&[s("play"), n(4.0), Amf0Value::Null, s("cam")]).expect("parse");
    assert_eq!(
        cmd,
        Command::Play {
            transaction_id: 4.0,
            name: "cam".into(),
            start: -2.0,
            duration: -1.0,
            reset: true
        }
    );
}

#[test]
fn amf3_switched_arguments_are_accepted() {
    let cmd = Command::parse(&[
        s("publish"),
        n(5.0),
        Amf0Value::Null,
        Amf0Value::AvmPlus(Amf3Value::String("cam".into())),
        Amf0Value::AvmPlus(Amf3Value::String("live".into())),
    ])
    .expect("parse");
    assert_eq!(
        cmd,
        Command::Publish {
            transaction_id: 5.0,
            name: "cam".into(),
            publish_type: PublishType::Live
        }
    );
}

#[test]
fn malformed_commands_are_typed_errors() {
    assert_eq!(Command::parse(&[]), Err(CommandError::Empty));
    assert!(matches!(
        Command::parse(&[n(1.0)]),
        Err(CommandError::NameNotString { .. })
    ));
    assert!(matches!(
        Command::parse(&[s("connect"), n(1.0), Amf0Value::Null]),
        Err(CommandError::WrongType { .. })
    ));
    assert!(matches!(
        Command::parse(&[s("connect"), n(1.0), Amf0Value::object([("tcUrl", s("x"))])]),
        Err(CommandError::MissingArgument {
            argument: "app",
            ..
        })
    ));
    assert!(matches!(
        Command::parse(&[s("publish"), n(1.0), Amf0Value::Null]),
        Err(CommandError::MissingArgument { .. })
    ));
    assert!(matches!(
        Command::parse(&[s("play"), n(1.0), Amf0Value::Null, n(3.0)]),
        Err(CommandError::WrongType { .. })
    ));
    assert!(matches!(
        Command::parse(&[s("play"), n(1.0), Amf0Value::Null, s("x"), s("start")]),
        Err(CommandError::WrongType { .. })
    ));
    assert!(matches!(
        Command::parse(&[s("receiveVideo"), n(0.0), Amf0Value::Null]),
        Err(CommandError::MissingArgument { .. })
    ));
}

#[test]
fn builders_have_the_expected_shape() {
    let r = connect_result(1.0, 3.0, Vec::new());
    assert_eq!(r[0], s("_result"));
    assert_eq!(r[3].get("code"), Some(&s(status::CONNECT_SUCCESS)));
    assert_eq!(r[3].get("objectEncoding"), Some(&n(3.0)));
    let st = on_status("status", status::PLAY_START, "Started playing cam.", vec![]);
    assert_eq!(
        Command::parse(&st).expect("parse"),
        Command::OnStatus {
            info: status_info("status", status::PLAY_START, "Started playing cam.")
        }
    );
    assert_eq!(create_stream_result(2.0, 1)[3], n(1.0));
    assert_eq!(error(3.0, status::CALL_FAILED, "no")[0], s("_error"));
    let meta = vec![
        s("@setDataFrame"),
        s("onMetaData"),
        Amf0Value::EcmaArray(vec![("width".into(), n(320.0))]),
    ];
    assert_eq!(
        strip_set_data_frame(&meta),
        Some(on_metadata(vec![("width".into(), n(320.0))]))
    );
    assert_eq!(strip_set_data_frame(&meta[1..]), None);
}
