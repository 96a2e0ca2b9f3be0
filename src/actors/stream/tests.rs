//! The frame builder: metadata caching and how a source's time is aligned.

use super::*;

fn builder(continue_from: Option<u32>) -> FrameBuilder {
    let mut b = FrameBuilder::new(
        1,
        Arc::new(Settings::defaults()),
        Arc::new(StreamStats::new("live", "x")),
    );
    b.continue_from(continue_from);
    b
}

fn raw(type_id: u8, timestamp: u32, payload: Vec<u8>) -> RawMessage {
    RawMessage {
        type_id,
        stream_id: 1,
        timestamp,
        payload: Bytes::from(payload),
    }
}

fn data(type_id: u8, timestamp: u32, values: &[Amf0Value]) -> RawMessage {
    let mut payload = Vec::new();
    if type_id == type_id::DATA_AMF3 {
        payload.push(0);
    }
    amf0::encode_all(values, &mut payload).expect("encode");
    raw(type_id, timestamp, payload)
}

fn s(x: &str) -> Amf0Value {
    Amf0Value::String(x.into())
}

fn metadata() -> Vec<Amf0Value> {
    vec![
        s("onMetaData"),
        Amf0Value::EcmaArray(vec![("width".into(), Amf0Value::Number(320.0))]),
    ]
}

/// AVC sequence header, AVC keyframe, AVC inter frame, AAC sequence header, AAC frame.
const AVC_HEADER: &[u8] = &[0x17, 0, 0, 0, 0, 1, 0x42, 0, 0x1e, 0xff];
const AVC_KEY: &[u8] = &[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65];
const AVC_INTER: &[u8] = &[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41];
const AAC_HEADER: &[u8] = &[0xaf, 0, 0x12, 0x10];
const AAC_FRAME: &[u8] = &[0xaf, 1, 0x21, 0x00];

#[test]
fn plain_on_metadata_is_cached_like_set_data_frame() {
    for type_id in [type_id::DATA_AMF0, type_id::DATA_AMF3] {
        let mut b = builder(None);
        let plain = b
            .make_frame(&data(type_id, 40, &metadata()))
            .expect("frame");
        assert_eq!((plain.class, plain.timestamp), (DropClass::Header, 0));
        let mut wrapped = vec![s("@setDataFrame")];
        wrapped.extend(metadata());
        let set = b.make_frame(&data(type_id, 40, &wrapped)).expect("frame");
        assert_eq!(set.class, DropClass::Header);
        // Players get the same bytes either way.
        assert_eq!(plain.payload, set.payload, "type {type_id}");
        // Other data stays data.
        let cue = b
            .make_frame(&data(type_id, 40, &[s("onCuePoint")]))
            .unwrap();
        assert_eq!(cue.class, DropClass::Data);
    }
}

/// nginx-rtmp republishing: metadata at 0, audio at 5340, then the video header at 0 and
/// the keyframe at 5360. The new source starts right after the old one's last frame (1000).
#[test]
fn a_continuing_source_is_aligned_on_its_first_media_frame() {
    let mut b = builder(Some(1001));
    let mut got = Vec::new();
    for (type_id, ts, payload) in [
        (type_id::DATA_AMF0, 0, None),
        (type_id::AUDIO, 0, Some(AAC_HEADER)),
        (type_id::AUDIO, 5340, Some(AAC_FRAME)),
        (type_id::VIDEO, 0, Some(AVC_HEADER)),
        (type_id::VIDEO, 5360, Some(AVC_KEY)),
        (type_id::AUDIO, 5363, Some(AAC_FRAME)),
        (type_id::VIDEO, 5400, Some(AVC_INTER)),
    ] {
        let msg = match payload {
            Some(p) => raw(type_id, ts, p.to_vec()),
            None => data(type_id, ts, &metadata()),
        };
        got.push(b.make_frame(&msg).expect("frame").timestamp);
    }
    assert_eq!(got, [0, 1001, 1001, 1001, 1021, 1024, 1061]);
}

#[test]
fn data_never_goes_back_and_a_first_source_keeps_its_time() {
    let mut b = builder(None);
    let header = b.make_frame(&raw(type_id::VIDEO, 0, AVC_HEADER.to_vec()));
    assert_eq!(header.unwrap().timestamp, 0);
    let key = b.make_frame(&raw(type_id::VIDEO, 500, AVC_KEY.to_vec()));
    assert_eq!(key.unwrap().timestamp, 500);
    let early = b.make_frame(&data(type_id::DATA_AMF0, 100, &[s("onCuePoint")]));
    assert_eq!(early.unwrap().timestamp, 500);
    let later = b.make_frame(&data(type_id::DATA_AMF0, 700, &[s("onCuePoint")]));
    assert_eq!(later.unwrap().timestamp, 700);
}
