use super::*;

const LIMITS: ObjectLimits = ObjectLimits {
    max_attributes: 3,
    max_bytes: 100,
    max_file_bytes: 1 << 20,
};

fn totals(memory: usize, disk: u64) -> Totals {
    let mut so = Settings::defaults().shared_objects;
    so.max_total_bytes = memory;
    so.max_disk_bytes = disk;
    let t = Totals::default();
    t.set_limits(&so);
    t
}

/// Apply with no caps in the way.
fn apply(s: &mut ObjectState, events: Vec<SharedObjectEvent>) -> Outcome {
    let quota = Arc::new(Quota::new(1, usize::MAX / 4));
    let totals = totals(usize::MAX / 4, u64::MAX / 4);
    let ledger = Ledger {
        writer: &quota,
        totals: &totals,
        file: None,
    };
    s.apply(events, LIMITS, &ledger)
}

#[test]
fn memory_is_charged_to_the_last_writer_and_given_back() {
    let limits = ObjectLimits {
        max_attributes: 100,
        max_bytes: 1 << 20,
        max_file_bytes: 1 << 20,
    };
    let one = attribute_memory("a", &Amf0Value::String("x".repeat(1000)));
    let totals = totals(3 * one, u64::MAX / 4);
    let a = Arc::new(Quota::new(1, 2 * one));
    let b = Arc::new(Quota::new(2, 2 * one));
    let by = |q| Ledger {
        writer: q,
        totals: &totals,
        file: None,
    };
    let big = |name: &str, c: char| SharedObjectEvent::SetAttribute {
        properties: vec![(name.into(), Amf0Value::String(c.to_string().repeat(1000)))],
    };
    let mut s = ObjectState::default();
    let out = s.apply(vec![big("a", 'x'), big("b", 'x')], limits, &by(&a));
    assert_eq!(out.refused, 0);
    assert_eq!((a.bytes(), totals.memory()), (2 * one, 2 * one));
    // a's share is full: a third attribute is refused, a replacement of its own is not.
    let out = s.apply(vec![big("c", 'x')], limits, &by(&a));
    assert_eq!(out.owner[0], status(code::QUOTA_EXCEEDED));
    assert_eq!(out.capped, Some(code::QUOTA_EXCEEDED));
    assert_eq!(a.refusals(), 1);
    let out = s.apply(vec![big("a", 'y')], limits, &by(&a));
    assert!(out.changed && out.refused == 0);
    // b overwrites one of a's: a gets it back, b pays.
    s.apply(vec![big("b", 'z')], limits, &by(&b));
    assert_eq!((a.bytes(), b.bytes(), totals.memory()), (one, one, 2 * one));
    // The server's cap: room for one more, then refused for everyone.
    s.apply(vec![big("c", 'z')], limits, &by(&b));
    let out = s.apply(vec![big("d", 'x')], limits, &by(&a));
    assert_eq!(out.owner[0], status(code::SERVER_QUOTA_EXCEEDED));
    assert_eq!(totals.memory(), 3 * one);
    // Remove and clear give it back; so does the object going away.
    s.apply(
        vec![SharedObjectEvent::DeleteAttribute { name: "c".into() }],
        limits,
        &by(&a),
    );
    assert_eq!((b.bytes(), totals.memory()), (one, 2 * one));
    s.apply(vec![SharedObjectEvent::ClearData], limits, &by(&a));
    assert_eq!((a.bytes(), b.bytes(), totals.memory()), (0, 0, 0));
    s.apply(vec![big("a", 'x')], limits, &by(&b));
    assert_eq!(totals.memory(), one);
    s.release_all(&totals);
    assert_eq!((b.bytes(), totals.memory(), s.memory()), (0, 0, 0));
}

#[test]
fn persistent_objects_keep_to_the_file_and_disk_caps() {
    let limits = ObjectLimits {
        max_attributes: 100,
        max_bytes: 1 << 20,
        max_file_bytes: 3000,
    };
    let totals = totals(usize::MAX / 4, 8192);
    let q = Arc::new(Quota::new(1, usize::MAX / 4));
    let overhead = file_overhead("live", "p");
    let ledger = |on_disk| Ledger {
        writer: &q,
        totals: &totals,
        file: Some(FileRoom { overhead, on_disk }),
    };
    let text = |name: &str, n: usize| SharedObjectEvent::SetAttribute {
        properties: vec![(name.into(), Amf0Value::String("x".repeat(n)))],
    };
    let mut s = ObjectState::default();
    // The file would be overhead + (2 + 1 + 3 + 2000) + 1: fits; one more such: refused.
    let out = s.apply(vec![text("a", 2000)], limits, &ledger(0));
    assert!(out.changed);
    let out = s.apply(vec![text("b", 2000)], limits, &ledger(4096));
    assert_eq!(out.owner[0], status(code::OBJECT_TOO_LARGE));
    assert_eq!(out.capped, None, "a per-object limit, not a cap");
    // The disk cap: 8192 bytes, 4096 taken by another file, 4096 by this one.
    totals.file_changed(0, 8192);
    let out = s.apply(vec![text("a", 100)], limits, &ledger(4096));
    assert!(out.changed, "shrinking is always allowed");
    let other = ObjectState::default();
    let mut other = other;
    let out = other.apply(vec![text("z", 10)], limits, &ledger(0));
    assert_eq!(out.owner[0], status(code::SERVER_QUOTA_EXCEEDED));
    assert_eq!(out.capped, Some(code::SERVER_QUOTA_EXCEEDED));
}

fn set(name: &str, v: f64) -> SharedObjectEvent {
    SharedObjectEvent::SetAttribute {
        properties: vec![(name.into(), Amf0Value::Number(v))],
    }
}

#[test]
fn set_acks_the_writer_and_changes_the_others() {
    let mut s = ObjectState::default();
    let out = apply(&mut s, vec![set("x", 1.0)]);
    assert_eq!(
        out.owner,
        vec![SharedObjectEvent::UpdateAttribute { name: "x".into() }]
    );
    assert_eq!(
        out.others,
        vec![SharedObjectEvent::UpdateData {
            properties: vec![("x".into(), Amf0Value::Number(1.0))]
        }]
    );
    assert!(out.changed);
    assert_eq!(s.version, 1);
    // The same value again: acknowledged, not broadcast, version kept.
    let out = apply(&mut s, vec![set("x", 1.0)]);
    assert!(out.others.is_empty() && !out.changed);
    assert_eq!(s.version, 1);
}

#[test]
fn one_version_per_message() {
    let mut s = ObjectState::default();
    apply(&mut s, vec![set("a", 1.0), set("b", 2.0), set("c", 3.0)]);
    assert_eq!(s.version, 1);
    assert_eq!(s.attributes.len(), 3);
}

#[test]
fn delete_clear_and_send() {
    let mut s = ObjectState::default();
    apply(&mut s, vec![set("a", 1.0), set("b", 2.0)]);
    let out = apply(
        &mut s,
        vec![SharedObjectEvent::DeleteAttribute { name: "a".into() }],
    );
    assert_eq!(
        out.owner,
        vec![SharedObjectEvent::DeleteData { name: "a".into() }]
    );
    assert_eq!(out.others, out.owner);
    assert_eq!(s.version, 2);
    // Deleting what is not there confirms to the writer only.
    let out = apply(
        &mut s,
        vec![SharedObjectEvent::DeleteAttribute { name: "a".into() }],
    );
    assert!(out.others.is_empty() && !out.changed);
    let send = SharedObjectEvent::SendMessage {
        values: vec![Amf0Value::String("hello".into())],
    };
    let out = apply(&mut s, vec![send.clone()]);
    assert_eq!(out.owner, vec![send.clone()]);
    assert_eq!(out.others, vec![send]);
    assert_eq!(s.version, 2, "send is not a change");
    let out = apply(&mut s, vec![SharedObjectEvent::ClearData]);
    assert_eq!(out.others, vec![SharedObjectEvent::ClearData]);
    assert!(s.attributes.is_empty());
    assert_eq!(s.bytes(), 0);
    assert_eq!(s.version, 3);
}

#[test]
fn limits_refuse_and_put_the_writer_back() {
    let mut s = ObjectState::default();
    apply(&mut s, vec![set("a", 1.0), set("b", 2.0), set("c", 3.0)]);
    let out = apply(&mut s, vec![set("d", 4.0)]);
    assert_eq!(
        out.owner,
        vec![
            status(code::TOO_MANY_ATTRIBUTES),
            SharedObjectEvent::DeleteData { name: "d".into() }
        ]
    );
    assert!(out.others.is_empty());
    assert_eq!(out.refused, 1);
    let big = SharedObjectEvent::SetAttribute {
        properties: vec![("a".into(), Amf0Value::String("x".repeat(200)))],
    };
    let out = apply(&mut s, vec![big]);
    assert_eq!(
        out.owner,
        vec![
            status(code::OBJECT_TOO_LARGE),
            SharedObjectEvent::UpdateData {
                properties: vec![("a".into(), Amf0Value::Number(1.0))]
            }
        ]
    );
    assert_eq!(s.version, 1);
    // Replacing a value within the budget is fine.
    let out = apply(&mut s, vec![set("a", 9.0)]);
    assert!(out.changed);
    assert_eq!(s.bytes(), 3 * (2 + 1 + 9));
}

#[test]
fn initial_state_follows_red5() {
    let mut s = ObjectState::default();
    assert_eq!(
        s.initial_events(false),
        vec![SharedObjectEvent::InitialData, SharedObjectEvent::ClearData]
    );
    apply(&mut s, vec![set("a", 1.0)]);
    assert_eq!(
        s.initial_events(true),
        vec![
            SharedObjectEvent::InitialData,
            SharedObjectEvent::UpdateData {
                properties: vec![("a".into(), Amf0Value::Number(1.0))]
            }
        ]
    );
}

#[test]
fn file_names_cannot_escape_the_directory() {
    assert_eq!(file_component("chat"), "chat");
    assert_eq!(
        file_component("../../etc/passwd"),
        "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd"
    );
    assert_eq!(file_component(".."), "%2E%2E");
    assert!(file_component(&"é".repeat(100)).starts_with('~'));
    assert_eq!(file_component(&"é".repeat(100)).len(), 65);
    let p = object_path(Path::new("/srv/so"), "live/sub", "../x");
    assert_eq!(p, Path::new("/srv/so/live%2Fsub/%2E%2E%2Fx.rso"));
    assert!(p.starts_with("/srv/so"));
}

#[test]
fn file_round_trip_and_atomic_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = object_path(dir.path(), "live", "room/1");
    let mut attributes = BTreeMap::new();
    attributes.insert("n".to_owned(), Amf0Value::Number(5.0));
    attributes.insert(
        "o".to_owned(),
        Amf0Value::object([("k", Amf0Value::Boolean(true))]),
    );
    let bytes = encode_file("live", "room/1", 7, &attributes).expect("encode");
    write_atomically(&path, &bytes).expect("write");
    let limits = AmfLimits::default();
    let back = read_file(&path, "live", "room/1", 1 << 20, &limits)
        .expect("read")
        .expect("present");
    assert_eq!(back.version, 7);
    assert_eq!(back.attributes, attributes);
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 1);
    // Another object's file under the same name reads as absent; a short limit refuses.
    assert_eq!(
        read_file(&path, "live", "other", 1 << 20, &limits).expect("read"),
        None
    );
    assert!(matches!(
        read_file(&path, "live", "room/1", 4, &limits),
        Err(StoreError::TooLarge { .. })
    ));
    assert!(read_file(&dir.path().join("none"), "a", "b", 10, &limits)
        .expect("missing is fine")
        .is_none());
    // A truncated file is an error, never a panic.
    for cut in 0..bytes.len() {
        let _ = decode_file(&path, &bytes[..cut], "live", "room/1", &limits);
    }
}

/// `depth` nested Objects, the innermost holding a Number.
fn nested(depth: usize) -> Amf0Value {
    let mut v = Amf0Value::Number(1.0);
    for _ in 0..depth {
        v = Amf0Value::object([("k", v)]);
    }
    v
}

#[test]
fn a_value_at_the_wire_depth_limit_reads_back() {
    let limits = AmfLimits::default();
    let deepest = nested(limits.max_depth);
    // What the wire accepts: exactly the limit, not one more.
    let mut wire = Vec::new();
    amf0::encode(&deepest, &mut wire).expect("encode");
    assert_eq!(
        amf0::decode(&mut &wire[..], &limits).expect("wire"),
        deepest
    );
    let mut deeper = Vec::new();
    amf0::encode(&nested(limits.max_depth + 1), &mut deeper).expect("encode");
    assert!(amf0::decode(&mut &deeper[..], &limits).is_err());
    let attributes = BTreeMap::from([
        ("deep".to_owned(), deepest.clone()),
        ("n".to_owned(), Amf0Value::Number(2.0)),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = object_path(dir.path(), "live", "d");
    let bytes = encode_file("live", "d", 3, &attributes).expect("encode");
    let back = decode_file(&path, &bytes, "live", "d", &limits)
        .expect("readable")
        .expect("present");
    assert_eq!(back.attributes, attributes);
    assert_eq!(back.version, 3);
    // The file is the attributes' wire size plus a fixed part and a marker per name.
    let state = ObjectState::new(3, attributes.clone());
    assert_eq!(
        bytes.len(),
        file_overhead("live", "d") + state.bytes() + attributes.len()
    );
    // A version 1 file (one ECMA Array around the attributes) still reads back.
    let mut v1 = FILE_MAGIC_V1.to_vec();
    let values = [
        Amf0Value::String("live".into()),
        Amf0Value::String("d".into()),
        Amf0Value::Number(3.0),
        Amf0Value::EcmaArray(
            attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
    ];
    amf0::encode_all(&values, &mut v1).expect("encode v1");
    let back = decode_file(&path, &v1, "live", "d", &limits)
        .expect("v1 readable")
        .expect("present");
    assert_eq!(back.attributes, attributes);
    // Trailing bytes and truncations are errors, never panics.
    let mut long = bytes.clone();
    long.push(0);
    assert!(decode_file(&path, &long, "live", "d", &limits).is_err());
    for cut in 4..bytes.len() {
        assert!(decode_file(&path, &bytes[..cut], "live", "d", &limits).is_err());
    }
}

#[test]
fn rate_limit_refills() {
    let start = Instant::now();
    let mut r = RateLimit::new(2);
    assert!(r.take(1, start));
    assert!(r.take(1, start));
    assert!(!r.take(1, start));
    assert!(r.take(1, start + std::time::Duration::from_millis(600)));
}
