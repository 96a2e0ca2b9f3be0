//! Remote shared objects (RTMP 1.0 §7.1.3) with the project's client against a reflector
//! running two workers, so that clients sit on different arbiters: use and initial state,
//! changes, send message, delete and clear, leaving, persistence across a restart, AMF0 and
//! AMF3, limits; authorization per app, the memory, object, app and disk caps (with the
//! server's RSS watched and a canary stream alongside), a value at the AMF depth limit through
//! a persistent object's release and reuse. And the byte-level vectors of
//! tests/vectors/shared_object/, round-tripped.

use crate::common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::canary::Canary;
use common::Server;
use reflector::client::{ClientConfig, ClientEvent, RtmpClient, RtmpUrl};
use reflector::protocol::amf0::{Amf0Value, AmfLimits};
use reflector::protocol::amf3::Amf3Value;
use reflector::protocol::message::{
    type_id, Message, RawMessage, SharedObjectEvent as Ev, SharedObjectMessage,
};

const WAIT: Duration = Duration::from_secs(5);

fn server() -> Server {
    Server::reflector(&["--workers", "2"])
}

async fn client(server: &Server, amf3: bool) -> RtmpClient {
    client_at(server, "live", amf3).await
}

/// A client connected to `app` (which may carry a query: `app?key=...`).
async fn client_at(server: &Server, app: &str, amf3: bool) -> RtmpClient {
    let url = RtmpUrl {
        host: "127.0.0.1".into(),
        port: server.port(),
        app: app.into(),
        stream: "so".into(),
        tls: false,
    };
    let config = ClientConfig {
        timeout: WAIT,
        object_encoding: if amf3 { 3.0 } else { 0.0 },
        ..ClientConfig::default()
    };
    RtmpClient::connect(&url, &config).await.expect("connect")
}

fn msg(name: &str, persistent: bool, events: Vec<Ev>) -> SharedObjectMessage {
    SharedObjectMessage {
        name: name.into(),
        version: 0,
        persistent,
        events,
    }
}

fn set(name: &str, value: Amf0Value) -> Ev {
    Ev::SetAttribute {
        properties: vec![(name.into(), value)],
    }
}

fn num(v: f64) -> Amf0Value {
    Amf0Value::Number(v)
}

/// The next shared object message, skipping everything else.
async fn next_so(c: &mut RtmpClient) -> (bool, SharedObjectMessage) {
    let wait = async {
        loop {
            if let ClientEvent::SharedObject { amf3, message } =
                c.next_event().await.expect("event")
            {
                return (amf3, message);
            }
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .expect("a shared object message in time")
}

/// No shared object message within `d`.
async fn quiet(c: &mut RtmpClient, d: Duration) {
    let wait = async {
        loop {
            if let ClientEvent::SharedObject { message, .. } = c.next_event().await.expect("event")
            {
                return message;
            }
        }
    };
    if let Ok(m) = tokio::time::timeout(d, wait).await {
        panic!("unexpected shared object message {m:?}");
    }
}

/// Use `name` and return the answer (Use Success and the initial state).
async fn use_object(
    c: &mut RtmpClient,
    amf3: bool,
    name: &str,
    persistent: bool,
) -> SharedObjectMessage {
    c.send_shared_object(amf3, &msg(name, persistent, vec![Ev::Connect]))
        .await
        .expect("send use");
    let (got_amf3, m) = next_so(c).await;
    assert_eq!(got_amf3, amf3, "answered in the client's encoding");
    assert_eq!(m.name, name);
    m
}

#[tokio::test(flavor = "current_thread")]
async fn set_attribute_reaches_every_other_client_across_arbiters() {
    let server = server();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut c = client(&server, false).await;
        let m = use_object(&mut c, false, "room", false).await;
        // Red5: Use Success, then Clear for a non-persistent object; no state yet.
        assert_eq!(m.events, vec![Ev::InitialData, Ev::ClearData]);
        assert_eq!(m.version, 0);
        clients.push(c);
    }
    clients[0]
        .send_shared_object(false, &msg("room", false, vec![set("x", num(1.0))]))
        .await
        .expect("set");
    let (_, ack) = next_so(&mut clients[0]).await;
    assert_eq!(ack.events, vec![Ev::UpdateAttribute { name: "x".into() }]);
    assert_eq!(ack.version, 1);
    for c in &mut clients[1..] {
        let (_, change) = next_so(c).await;
        assert_eq!(
            change.events,
            vec![Ev::UpdateData {
                properties: vec![("x".into(), num(1.0))]
            }]
        );
        assert_eq!(change.version, 1);
    }
    // A late joiner gets the whole state with the current version.
    let mut late = client(&server, false).await;
    let m = use_object(&mut late, false, "room", false).await;
    assert_eq!(m.version, 1);
    assert_eq!(
        m.events,
        vec![
            Ev::InitialData,
            Ev::ClearData,
            Ev::UpdateData {
                properties: vec![("x".into(), num(1.0))]
            }
        ]
    );
    // A second writer on another connection: everyone else, the first writer included.
    late.send_shared_object(
        false,
        &msg("room", false, vec![set("y", Amf0Value::String("z".into()))]),
    )
    .await
    .expect("set");
    let (_, ack) = next_so(&mut late).await;
    assert_eq!(ack.events, vec![Ev::UpdateAttribute { name: "y".into() }]);
    for c in &mut clients {
        let (_, change) = next_so(c).await;
        assert_eq!(change.version, 2);
        assert!(
            matches!(&change.events[..], [Ev::UpdateData { properties }] if properties[0].0 == "y")
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn send_message_reaches_everyone_including_the_sender() {
    let server = server();
    let mut a = client(&server, false).await;
    let mut b = client(&server, false).await;
    let mut c = client(&server, false).await;
    for x in [&mut a, &mut b, &mut c] {
        use_object(x, false, "chat", false).await;
    }
    let send = Ev::SendMessage {
        values: vec![
            Amf0Value::String("onChat".into()),
            Amf0Value::String("hello".into()),
        ],
    };
    b.send_shared_object(false, &msg("chat", false, vec![send.clone()]))
        .await
        .expect("send");
    for x in [&mut a, &mut b, &mut c] {
        let (_, m) = next_so(x).await;
        assert_eq!(m.events, vec![send.clone()]);
        assert_eq!(m.version, 0, "a send is not a change");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn delete_and_clear() {
    let server = server();
    let mut a = client(&server, false).await;
    let mut b = client(&server, false).await;
    use_object(&mut a, false, "board", false).await;
    use_object(&mut b, false, "board", false).await;
    a.send_shared_object(
        false,
        &msg("board", false, vec![set("p", num(1.0)), set("q", num(2.0))]),
    )
    .await
    .expect("set");
    let (_, ack) = next_so(&mut a).await;
    assert_eq!(ack.version, 1, "one version per message");
    next_so(&mut b).await;
    b.send_shared_object(
        false,
        &msg(
            "board",
            false,
            vec![Ev::DeleteAttribute { name: "p".into() }],
        ),
    )
    .await
    .expect("delete");
    for x in [&mut b, &mut a] {
        let (_, m) = next_so(x).await;
        assert_eq!(m.events, vec![Ev::DeleteData { name: "p".into() }]);
        assert_eq!(m.version, 2);
    }
    a.send_shared_object(false, &msg("board", false, vec![Ev::ClearData]))
        .await
        .expect("clear");
    for x in [&mut a, &mut b] {
        let (_, m) = next_so(x).await;
        assert_eq!(m.events, vec![Ev::ClearData]);
        assert_eq!(m.version, 3);
    }
    let mut c = client(&server, false).await;
    let m = use_object(&mut c, false, "board", false).await;
    assert_eq!(m.events, vec![Ev::InitialData, Ev::ClearData], "cleared");
}

#[tokio::test(flavor = "current_thread")]
async fn leaving_clients_and_the_object_going_away() {
    let server = server();
    let mut a = client(&server, false).await;
    let mut b = client(&server, false).await;
    let mut c = client(&server, false).await;
    for x in [&mut a, &mut b, &mut c] {
        use_object(x, false, "lobby", false).await;
    }
    // b releases: it hears nothing more.
    b.send_shared_object(false, &msg("lobby", false, vec![Ev::Disconnect]))
        .await
        .expect("release");
    // c's connection closes: the server drops it from the object.
    c.shutdown().await.expect("shutdown");
    drop(c);
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.send_shared_object(false, &msg("lobby", false, vec![set("k", num(1.0))]))
        .await
        .expect("set");
    next_so(&mut a).await;
    quiet(&mut b, Duration::from_millis(300)).await;
    // b writing without using gets a status error.
    b.send_shared_object(false, &msg("lobby", false, vec![set("k", num(2.0))]))
        .await
        .expect("set");
    let (_, m) = next_so(&mut b).await;
    assert_eq!(
        m.events,
        vec![Ev::Status {
            code: "SharedObject.NoWriteAccess".into(),
            level: "error".into()
        }]
    );
    // a leaves too: the non-persistent object goes; a new use starts from nothing.
    a.send_shared_object(false, &msg("lobby", false, vec![Ev::Disconnect]))
        .await
        .expect("release");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let m = use_object(&mut b, false, "lobby", false).await;
    assert_eq!(m.version, 0);
    assert_eq!(m.events, vec![Ev::InitialData, Ev::ClearData]);
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in walk(dir) {
        out.push(
            entry
                .strip_prefix(dir)
                .expect("under dir")
                .display()
                .to_string(),
        );
    }
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "current_thread")]
async fn persistent_objects_survive_a_restart() {
    let store = tempfile::tempdir().expect("store dir");
    let toml = format!(
        "[shared_objects]\ndir = {:?}\n",
        store.path().display().to_string()
    );
    let evil = "../../escape";
    {
        let (server, _config) = common::reflector_with_config(&toml);
        let mut a = client(&server, false).await;
        let m = use_object(&mut a, false, "scores", true).await;
        assert_eq!(
            m.events,
            vec![Ev::InitialData],
            "no Clear for a persistent object"
        );
        assert!(m.persistent);
        a.send_shared_object(
            false,
            &msg(
                "scores",
                true,
                vec![
                    set("alice", num(3.0)),
                    set("bob", Amf0Value::String("x".into())),
                ],
            ),
        )
        .await
        .expect("set");
        next_so(&mut a).await;
        a.send_shared_object(
            false,
            &msg(
                "scores",
                true,
                vec![Ev::DeleteAttribute { name: "bob".into() }],
            ),
        )
        .await
        .expect("delete");
        next_so(&mut a).await;
        use_object(&mut a, false, evil, true).await;
        a.send_shared_object(false, &msg(evil, true, vec![set("k", num(1.0))]))
            .await
            .expect("set");
        next_so(&mut a).await;
        // The other persistence flag on a live object is refused.
        let mut b = client(&server, false).await;
        let m = use_object(&mut b, false, "scores", false).await;
        assert_eq!(
            m.events,
            vec![Ev::Status {
                code: "SharedObject.BadPersistence".into(),
                level: "error".into()
            }]
        );
        // Stopped with SIGTERM while the clients are still connected.
        drop(server);
    }
    // Files stay inside the directory, one per object, no temporary file left.
    assert_eq!(
        files_under(store.path()),
        vec![
            "live/%2E%2E%2F%2E%2E%2Fescape.rso".to_string(),
            "live/scores.rso".to_string()
        ]
    );
    let (server, _config) = common::reflector_with_config(&toml);
    let mut c = client(&server, true).await;
    let m = use_object(&mut c, true, "scores", true).await;
    assert_eq!(m.version, 2);
    assert_eq!(
        m.events,
        vec![
            Ev::InitialData,
            Ev::UpdateData {
                properties: vec![("alice".into(), num(3.0))]
            }
        ]
    );
    let m = use_object(&mut c, true, evil, true).await;
    assert_eq!(m.version, 1);
}

#[tokio::test(flavor = "current_thread")]
async fn amf3_and_amf0_clients_each_get_their_encoding() {
    let server = server();
    let mut a = client(&server, true).await;
    let mut b = client(&server, false).await;
    let mut c = client(&server, true).await;
    use_object(&mut a, true, "mixed", false).await;
    use_object(&mut b, false, "mixed", false).await;
    use_object(&mut c, true, "mixed", false).await;
    let value = Amf0Value::AvmPlus(Amf3Value::Integer(5));
    a.send_shared_object(true, &msg("mixed", false, vec![set("n", value.clone())]))
        .await
        .expect("set");
    let (amf3, ack) = next_so(&mut a).await;
    assert!(amf3, "the writer's ack in AMF3 (type 16)");
    assert_eq!(ack.events, vec![Ev::UpdateAttribute { name: "n".into() }]);
    let (amf3, m) = next_so(&mut b).await;
    assert!(!amf3, "the AMF0 client gets type 19");
    assert_eq!(
        m.events,
        vec![Ev::UpdateData {
            properties: vec![("n".into(), value.clone())]
        }]
    );
    let (amf3, m) = next_so(&mut c).await;
    assert!(amf3);
    assert_eq!(m.events.len(), 1);
    b.send_shared_object(false, &msg("mixed", false, vec![set("s", num(1.0))]))
        .await
        .expect("set");
    let (amf3, _) = next_so(&mut b).await;
    assert!(!amf3);
    let (amf3, _) = next_so(&mut a).await;
    assert!(amf3);
}

#[tokio::test(flavor = "current_thread")]
async fn limits_answer_with_status_errors() {
    let (server, _config) = common::reflector_with_config(
        "[shared_objects]\nmax_objects_per_app = 2\nmax_attributes = 2\nmax_bytes = 200\nmax_updates_per_second = 10\n",
    );
    let mut a = client(&server, false).await;
    let mut b = client(&server, false).await;
    use_object(&mut a, false, "o1", false).await;
    use_object(&mut b, false, "o1", false).await;
    use_object(&mut a, false, "o2", false).await;
    let m = use_object(&mut a, false, "o3", false).await;
    assert_eq!(
        m.events,
        vec![Ev::Status {
            code: "SharedObject.ObjectCreationFailed".into(),
            level: "error".into()
        }]
    );
    a.send_shared_object(
        false,
        &msg("o1", false, vec![set("a", num(1.0)), set("b", num(2.0))]),
    )
    .await
    .expect("set");
    next_so(&mut a).await;
    next_so(&mut b).await;
    // A third attribute: refused, the writer's copy is put back, nobody else hears.
    a.send_shared_object(false, &msg("o1", false, vec![set("c", num(3.0))]))
        .await
        .expect("set");
    let (_, m) = next_so(&mut a).await;
    assert_eq!(
        m.events,
        vec![
            Ev::Status {
                code: "SharedObject.TooManyAttributes".into(),
                level: "error".into()
            },
            Ev::DeleteData { name: "c".into() }
        ]
    );
    // Too many bytes.
    a.send_shared_object(
        false,
        &msg(
            "o1",
            false,
            vec![set("a", Amf0Value::String("x".repeat(300)))],
        ),
    )
    .await
    .expect("set");
    let (_, m) = next_so(&mut a).await;
    assert_eq!(
        m.events[0],
        Ev::Status {
            code: "SharedObject.ObjectTooLarge".into(),
            level: "error".into()
        }
    );
    assert_eq!(m.version, 1);
    quiet(&mut b, Duration::from_millis(200)).await;
    // Update rate: a burst of 30 requests, at most about 10 pass.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for i in 0..30 {
        a.send_shared_object(false, &msg("o1", false, vec![set("a", num(f64::from(i)))]))
            .await
            .expect("set");
    }
    let (mut acks, mut limited) = (0, 0);
    for _ in 0..30 {
        let (_, m) = next_so(&mut a).await;
        match &m.events[..] {
            [Ev::UpdateAttribute { .. }] => acks += 1,
            [Ev::Status { code, .. }] if code == "SharedObject.UpdateRateExceeded" => limited += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!((10..=13).contains(&acks), "{acks} accepted");
    assert_eq!(acks + limited, 30);
    // The connections are still fine afterwards.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    a.send_shared_object(false, &msg("o1", false, vec![set("b", num(9.0))]))
        .await
        .expect("set");
    let (_, m) = next_so(&mut a).await;
    assert_eq!(m.events, vec![Ev::UpdateAttribute { name: "b".into() }]);
}

/// Every vector decodes to the message the README describes and encodes back to the same
/// bytes.
#[test]
fn vectors_round_trip() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/shared_object");
    let s = |x: &str| Amf0Value::String(x.into());
    let m = |name: &str, version: u32, persistent: bool, events: Vec<Ev>| SharedObjectMessage {
        name: name.into(),
        version,
        persistent,
        events,
    };
    let cases: Vec<(&str, bool, SharedObjectMessage)> = vec![
        ("use.bin", false, m("chat", 0, false, vec![Ev::Connect])),
        (
            "release.bin",
            false,
            m("chat", 0, false, vec![Ev::Disconnect]),
        ),
        (
            "request-change.bin",
            false,
            m(
                "chat",
                0,
                false,
                vec![Ev::SetAttribute {
                    properties: vec![("msg".into(), s("hi")), ("n".into(), num(1.0))],
                }],
            ),
        ),
        (
            "change.bin",
            false,
            m(
                "chat",
                4,
                false,
                vec![Ev::UpdateData {
                    properties: vec![("msg".into(), s("hi"))],
                }],
            ),
        ),
        (
            "success.bin",
            false,
            m(
                "chat",
                4,
                false,
                vec![Ev::UpdateAttribute { name: "msg".into() }],
            ),
        ),
        (
            "send-message.bin",
            false,
            m(
                "chat",
                4,
                false,
                vec![Ev::SendMessage {
                    values: vec![s("onChat"), s("hello"), num(2.0)],
                }],
            ),
        ),
        (
            "status.bin",
            false,
            m(
                "chat",
                0,
                false,
                vec![Ev::Status {
                    code: "SharedObject.BadPersistence".into(),
                    level: "error".into(),
                }],
            ),
        ),
        ("clear.bin", false, m("chat", 5, false, vec![Ev::ClearData])),
        (
            "remove.bin",
            false,
            m(
                "chat",
                6,
                false,
                vec![Ev::DeleteData { name: "msg".into() }],
            ),
        ),
        (
            "request-remove.bin",
            false,
            m(
                "chat",
                0,
                false,
                vec![Ev::DeleteAttribute { name: "msg".into() }],
            ),
        ),
        (
            "use-success.bin",
            false,
            m("chat", 0, false, vec![Ev::InitialData]),
        ),
        (
            "use-success-initial-state.bin",
            false,
            m(
                "room",
                3,
                false,
                vec![
                    Ev::InitialData,
                    Ev::ClearData,
                    Ev::UpdateData {
                        properties: vec![
                            ("a".into(), num(1.0)),
                            ("b".into(), Amf0Value::Boolean(true)),
                        ],
                    },
                ],
            ),
        ),
        (
            "persistent-use.bin",
            false,
            m("scores", 0, true, vec![Ev::Connect]),
        ),
        ("amf3-use.bin", true, m("chat", 0, false, vec![Ev::Connect])),
        (
            "amf3-change.bin",
            true,
            m(
                "chat",
                2,
                false,
                vec![Ev::UpdateData {
                    properties: vec![("n".into(), Amf0Value::AvmPlus(Amf3Value::Integer(5)))],
                }],
            ),
        ),
    ];
    let mut seen_types = std::collections::HashSet::new();
    for (file, amf3, expected) in cases {
        let bytes = std::fs::read(dir.join(file)).expect(file);
        let raw = RawMessage {
            type_id: if amf3 {
                type_id::SHARED_OBJECT_AMF3
            } else {
                type_id::SHARED_OBJECT_AMF0
            },
            stream_id: 0,
            timestamp: 0,
            payload: bytes.clone().into(),
        };
        let decoded = Message::decode(&raw, &AmfLimits::default()).expect(file);
        let want = Message::SharedObject {
            amf3,
            message: expected,
        };
        assert_eq!(decoded, want, "{file}");
        assert_eq!(
            &want.encode_body().expect(file)[..],
            &bytes[..],
            "{file} re-encodes"
        );
        if let Message::SharedObject { message, .. } = &want {
            for e in &message.events {
                seen_types.insert(std::mem::discriminant(e));
            }
        }
        // Every truncation is a typed error, never a panic.
        for cut in 0..bytes.len() {
            let raw = RawMessage {
                payload: bytes[..cut].to_vec().into(),
                ..raw.clone()
            };
            let _ = Message::decode(&raw, &AmfLimits::default());
        }
    }
    assert_eq!(
        seen_types.len(),
        11,
        "a vector for each of the 11 event types"
    );
}

fn status(code: &str) -> Vec<Ev> {
    vec![Ev::Status {
        code: code.into(),
        level: "error".into(),
    }]
}

#[tokio::test(flavor = "current_thread")]
async fn shared_objects_follow_the_apps_rules() {
    let (server, _config) = common::reflector_with_config(
        "[auth.apps.priv]\npublish = \"key\"\nplay = \"open\"\npublish_keys = [\"pk\"]\n\
         [auth.apps.sokey]\npublish = \"open\"\nplay = \"open\"\nshared_objects = \"key\"\n\
         shared_object_keys = [\"sk\"]\n\
         [auth.apps.closed]\npublish = \"open\"\nplay = \"open\"\nshared_objects = \"deny\"\n",
    );
    // An open app stays open.
    let mut open = client_at(&server, "live", false).await;
    let m = use_object(&mut open, false, "room", false).await;
    assert_eq!(m.events, vec![Ev::InitialData, Ev::ClearData]);
    // The key-protected app: the publish key opens its shared objects.
    let mut owner = client_at(&server, "priv?key=pk", false).await;
    let m = use_object(&mut owner, false, "room", false).await;
    assert_eq!(m.events, vec![Ev::InitialData, Ev::ClearData]);
    owner
        .send_shared_object(false, &msg("room", false, vec![set("secret", num(7.0))]))
        .await
        .expect("set");
    let (_, ack) = next_so(&mut owner).await;
    assert_eq!(
        ack.events,
        vec![Ev::UpdateAttribute {
            name: "secret".into()
        }]
    );
    for (app, persistent) in [
        ("priv", false),
        ("priv?key=wrong", false),
        ("priv", true),
        ("sokey", false),
        ("closed?key=sk", false),
        // A deeper connect app is still the first segment's: no escape from its rules.
        ("priv/x", false),
        ("sokey/sub?key=wrong", false),
    ] {
        let mut c = client_at(&server, app, false).await;
        let m = use_object(&mut c, false, "room", persistent).await;
        assert_eq!(m.events, status("SharedObject.NoReadAccess"), "{app}");
        // Not joined: it can neither write nor hear the owner's changes.
        c.send_shared_object(false, &msg("room", false, vec![set("secret", num(0.0))]))
            .await
            .expect("set");
        let (_, m) = next_so(&mut c).await;
        assert_eq!(m.events, status("SharedObject.NoWriteAccess"), "{app}");
    }
    let mut keyed = client_at(&server, "sokey?key=sk", true).await;
    let m = use_object(&mut keyed, true, "room", false).await;
    assert_eq!(m.events, vec![Ev::InitialData, Ev::ClearData]);
    // The owner's object was never touched by the refused clients.
    let mut late = client_at(&server, "priv?key=pk", false).await;
    let m = use_object(&mut late, false, "room", false).await;
    assert_eq!(m.version, 1);
    let log = server.log();
    assert_eq!(
        log.matches("shared object use not authorized").count(),
        7,
        "each refusal logged"
    );
    assert!(log.contains("connection="), "with the connection id");
}

/// `depth` nested Objects around a Number.
fn nested(depth: usize) -> Amf0Value {
    let mut v = num(1.0);
    for _ in 0..depth {
        v = Amf0Value::object([("k", v)]);
    }
    v
}

#[tokio::test(flavor = "current_thread")]
async fn a_value_at_the_depth_limit_survives_release_and_reuse() {
    let store = tempfile::tempdir().expect("store dir");
    let (server, _config) = common::reflector_with_config(&format!(
        "[shared_objects]\ndir = {:?}\n",
        store.path().display().to_string()
    ));
    let limit = AmfLimits::default().max_depth;
    let deepest = nested(limit);
    let array = (0..limit).fold(num(2.0), |v, _| Amf0Value::StrictArray(vec![v]));
    let mut a = client(&server, false).await;
    use_object(&mut a, false, "deep", true).await;
    a.send_shared_object(
        false,
        &msg(
            "deep",
            true,
            vec![set("o", deepest.clone()), set("s", array.clone())],
        ),
    )
    .await
    .expect("set");
    let (_, ack) = next_so(&mut a).await;
    assert_eq!(
        ack.events,
        vec![
            Ev::UpdateAttribute { name: "o".into() },
            Ev::UpdateAttribute { name: "s".into() }
        ],
        "acknowledged at depth {limit}"
    );
    // Released: the object goes; its file is all that is left.
    a.send_shared_object(false, &msg("deep", true, vec![Ev::Disconnect]))
        .await
        .expect("release");
    tokio::time::sleep(Duration::from_millis(300)).await;
    for amf3 in [false, true] {
        // Reused by the same client and by a late joiner in the other encoding.
        let mut c = if amf3 {
            client(&server, true).await
        } else {
            client(&server, false).await
        };
        let m = use_object(&mut c, amf3, "deep", true).await;
        assert_eq!(m.version, 1);
        assert_eq!(
            m.events,
            vec![
                Ev::InitialData,
                Ev::UpdateData {
                    properties: vec![("o".into(), deepest.clone()), ("s".into(), array.clone())]
                }
            ]
        );
    }
    assert!(
        !server.log().contains("unreadable"),
        "{}",
        server.log_tail(20)
    );
}

#[tokio::test(flavor = "current_thread")]
async fn apps_objects_and_connections_are_capped() {
    let (server, _config) = common::reflector_with_config(
        "[shared_objects]\nmax_apps = 2\nmax_objects_per_connection = 3\nmax_objects = 5\n",
    );
    let mut a1 = client_at(&server, "a1", false).await;
    let mut a2 = client_at(&server, "a2", false).await;
    let mut a3 = client_at(&server, "a3", false).await;
    use_object(&mut a1, false, "x", false).await;
    use_object(&mut a2, false, "x", false).await;
    let m = use_object(&mut a3, false, "x", false).await;
    assert_eq!(
        m.events,
        status("SharedObject.ObjectCreationFailed"),
        "a third app"
    );
    // Objects per connection: the fourth is refused.
    for name in ["y", "z"] {
        let m = use_object(&mut a1, false, name, false).await;
        assert_eq!(m.events, vec![Ev::InitialData, Ev::ClearData]);
    }
    let m = use_object(&mut a1, false, "w", false).await;
    assert_eq!(
        m.events,
        status("SharedObject.ObjectCreationFailed"),
        "per connection"
    );
    // Objects on the server: a1 has 3, a2 1; a2's second is the fifth, its third refused.
    use_object(&mut a2, false, "y", false).await;
    let m = use_object(&mut a2, false, "z", false).await;
    assert_eq!(
        m.events,
        status("SharedObject.ObjectCreationFailed"),
        "per server"
    );
    // a1 leaves: its app is free again, and so are its objects.
    a1.shutdown().await.expect("shutdown");
    drop(a1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = use_object(&mut a3, false, "x", false).await;
    assert_eq!(m.events, vec![Ev::InitialData, Ev::ClearData]);
    let m = use_object(&mut a2, false, "z", false).await;
    assert_eq!(m.events, vec![Ev::InitialData, Ev::ClearData]);
}

/// Total bytes of the files under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    walk(dir)
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum()
}

#[tokio::test(flavor = "current_thread")]
async fn persistent_files_are_capped_per_object_and_on_disk() {
    let store = tempfile::tempdir().expect("store dir");
    let toml = format!(
        "[shared_objects]\ndir = {:?}\nmax_file_bytes = 4096\nmax_disk_bytes = 16384\n",
        store.path().display().to_string()
    );
    let text = |n: usize| Amf0Value::LongString("x".repeat(n));
    {
        let (server, _config) = common::reflector_with_config(&toml);
        let mut a = client(&server, false).await;
        // Four files of one 4 KiB block each fill the disk cap; a fifth is refused.
        for i in 0..5 {
            let name = format!("p{i}");
            use_object(&mut a, false, &name, true).await;
            a.send_shared_object(false, &msg(&name, true, vec![set("v", text(1000))]))
                .await
                .expect("set");
            let (_, m) = next_so(&mut a).await;
            if i < 4 {
                assert_eq!(m.events, vec![Ev::UpdateAttribute { name: "v".into() }]);
            } else {
                assert_eq!(
                    m.events,
                    [
                        status("SharedObject.ServerQuotaExceeded"),
                        vec![Ev::DeleteData { name: "v".into() }]
                    ]
                    .concat()
                );
            }
        }
        // One file past 4096 bytes: refused, the writer's copy put back.
        a.send_shared_object(false, &msg("p0", true, vec![set("v", text(5000))]))
            .await
            .expect("set");
        let (_, m) = next_so(&mut a).await;
        assert_eq!(m.events[0], status("SharedObject.ObjectTooLarge")[0]);
        assert_eq!(
            m.events[1],
            Ev::UpdateData {
                properties: vec![("v".into(), text(1000))]
            }
        );
        assert!(server.log().contains("refused by a cap"));
    }
    let files = files_under(store.path());
    assert_eq!(files.len(), 4, "{files:?}");
    assert!(bytes_under(store.path()) <= 16384);
    // After a restart the files already there count: a new one is refused, an existing one
    // may still change within its block.
    let (server, _config) = common::reflector_with_config(&toml);
    let mut b = client(&server, true).await;
    use_object(&mut b, true, "p9", true).await;
    b.send_shared_object(true, &msg("p9", true, vec![set("v", num(1.0))]))
        .await
        .expect("set");
    let (_, m) = next_so(&mut b).await;
    assert_eq!(m.events[0], status("SharedObject.ServerQuotaExceeded")[0]);
    let m = use_object(&mut b, true, "p1", true).await;
    assert_eq!(m.version, 1);
    b.send_shared_object(true, &msg("p1", true, vec![set("v", text(10))]))
        .await
        .expect("set");
    let (_, m) = next_so(&mut b).await;
    assert_eq!(m.events, vec![Ev::UpdateAttribute { name: "v".into() }]);
    assert_eq!(files_under(store.path()).len(), 4);
}

// ---------------------------------------------------------------------------------------
// Memory caps under attack, with a canary stream and a bystander on the same server.

/// What one attacker saw: writes acknowledged, refusals by code, whether the server closed
/// it.
#[derive(Debug, Default)]
struct Attack {
    accepted: usize,
    quota: usize,
    server_quota: usize,
    closed: bool,
}

/// Use `objects` objects and write a ~900 KB value into each.
async fn attack(port: u16, who: usize, objects: usize) -> Attack {
    let url = RtmpUrl {
        host: "127.0.0.1".into(),
        port,
        app: "live".into(),
        stream: "so".into(),
        tls: false,
    };
    let config = ClientConfig {
        timeout: WAIT,
        ..ClientConfig::default()
    };
    let mut c = RtmpClient::connect(&url, &config).await.expect("connect");
    let value = Amf0Value::LongString("x".repeat(900_000));
    let mut out = Attack::default();
    for j in 0..objects {
        let name = format!("a{who}-{j}");
        let answer = async {
            c.send_shared_object(false, &msg(&name, false, vec![Ev::Connect]))
                .await?;
            // Use Success, then the answer to the write.
            for _ in 0..2 {
                loop {
                    if let ClientEvent::SharedObject { message, .. } = c.next_event().await? {
                        if message.events.first() == Some(&Ev::InitialData) {
                            c.send_shared_object(
                                false,
                                &msg(&name, false, vec![set("v", value.clone())]),
                            )
                            .await?;
                            break;
                        }
                        return Ok::<_, reflector::client::ClientError>(Some(message));
                    }
                }
            }
            Ok(None)
        };
        match tokio::time::timeout(WAIT, answer).await {
            Ok(Ok(Some(m))) => match &m.events[..] {
                [Ev::UpdateAttribute { .. }] => out.accepted += 1,
                [Ev::Status { code, .. }, ..] if code == "SharedObject.QuotaExceeded" => {
                    out.quota += 1
                }
                [Ev::Status { code, .. }, ..] if code == "SharedObject.ServerQuotaExceeded" => {
                    out.server_quota += 1
                }
                other => panic!("attacker {who}: unexpected {other:?}"),
            },
            Ok(Ok(None)) => panic!("attacker {who}: no answer"),
            Ok(Err(_)) => {
                out.closed = true;
                break;
            }
            Err(_) => panic!("attacker {who}: no answer in time (object {j})"),
        }
    }
    out
}

#[tokio::test(flavor = "current_thread")]
async fn memory_caps_refuse_and_bound_the_servers_memory() {
    let (server, _config) = common::reflector_with_config(
        "[shared_objects]\nmax_bytes_per_connection = 3145728\nmax_total_bytes = 8388608\n\
         max_updates_per_second = 1000\n",
    );
    let canary = Canary::start(server.port(), "canary").await;
    let mut bystander = client(&server, false).await;
    use_object(&mut bystander, false, "room", false).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = server.pid();
    let before = common::rss_kib(pid);
    // RSS sampled while six connections try to store 6 x 40 x 900 KB = 216 MB.
    let stop = Arc::new(AtomicBool::new(false));
    let watch = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while !stop.load(Relaxed) {
                peak = peak.max(common::rss_kib(pid));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        })
    };
    let started = Instant::now();
    let port = server.port();
    let attacks = futures_util::future::join_all((0..6).map(|who| attack(port, who, 40))).await;
    let took = started.elapsed();
    stop.store(true, Relaxed);
    let peak = watch.await.expect("watch");
    eprintln!(
        "attacks in {took:?}: {attacks:?}; RSS {before} KiB before, peak {peak} KiB (+{} KiB)",
        peak.saturating_sub(before)
    );
    for a in &attacks {
        assert!(a.accepted <= 3, "a connection's share is 3 MiB: {a:?}");
        assert!(a.closed, "refused 32 times: closed: {a:?}");
        assert!(
            a.quota + a.server_quota >= 32 && a.quota + a.server_quota <= 33,
            "{a:?}"
        );
    }
    let accepted: usize = attacks.iter().map(|a| a.accepted).sum();
    assert!(
        accepted >= 9,
        "at least the server's 8 MiB were used: {accepted}"
    );
    assert!(attacks.iter().any(|a| a.quota > 0));
    assert!(attacks.iter().any(|a| a.server_quota > 0));
    // The caps hold 8 MiB of values; 64 MiB allows for decode buffers and the allocator.
    assert!(
        peak.saturating_sub(before) < 64 * 1024,
        "RSS grew by {} KiB",
        peak.saturating_sub(before)
    );
    let log = server.log();
    assert!(log.contains("shared object change refused by a cap"));
    assert!(log.contains("keep passing the caps: closing"));
    // The bystander was never refused, and its object still works.
    bystander
        .send_shared_object(false, &msg("room", false, vec![set("n", num(1.0))]))
        .await
        .expect("set");
    let (_, m) = next_so(&mut bystander).await;
    assert_eq!(m.events, vec![Ev::UpdateAttribute { name: "n".into() }]);
    // The attackers are gone, their objects too: the server's memory is free again.
    let after = attack(port, 99, 3).await;
    assert_eq!(after.accepted, 3, "{after:?}");
    // Give the canary a couple of seconds of history to judge.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let frames = canary.finish("shared object attacks", 20).await;
    eprintln!("canary: {frames} frames, in order, no stall");
}

/// A one-purpose HTTP callback: answers 200 when the form's `name` is `ok`, 302 for `moved`,
/// 403 otherwise; records every body.
fn callback_server() -> common::CallbackServer {
    common::CallbackServer::start(|name| match name {
        "ok" => common::Reply::Allow,
        "moved" => common::Reply::Redirect("ok".into()),
        _ => common::Reply::Deny,
    })
}

#[tokio::test(flavor = "current_thread")]
async fn shared_object_callback_decides_each_use() {
    let callbacks = callback_server();
    let port = callbacks.port();
    let (server, _config) = common::reflector_with_config(&format!(
        "[auth.apps.cb]\npublish = \"open\"\nplay = \"open\"\nshared_objects = \"callback\"\n\
         on_shared_object = \"http://127.0.0.1:{port}/so\"\n"
    ));
    let mut c = client_at(&server, "cb?token=t1", false).await;
    let m = use_object(&mut c, false, "ok", false).await;
    assert_eq!(m.events, vec![Ev::InitialData, Ev::ClearData]);
    for name in ["moved", "other"] {
        let m = use_object(&mut c, false, name, false).await;
        assert_eq!(m.events, status("SharedObject.NoReadAccess"), "{name}");
    }
    let bodies = callbacks.bodies();
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    for b in &bodies {
        assert!(b.contains("call=shared_object"), "{b}");
        assert!(b.contains("app=cb"), "{b}");
        assert!(b.contains("args=token%3Dt1"), "{b}");
    }
}
