use bytes::BytesMut;
use proptest::prelude::*;

use super::*;

fn read_all(reader: &mut FlvReader, bytes: &[u8]) -> Result<Vec<FlvTag>, FlvError> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(t) = reader.read(&mut buf)? {
        out.push(t);
    }
    Ok(out)
}

#[test]
fn file_header_bytes() {
    assert_eq!(
        &file_header(true, true)[..],
        b"FLV\x01\x05\0\0\0\x09\0\0\0\0"
    );
    assert_eq!(file_header(true, false)[4], 0x04);
    assert_eq!(file_header(false, true)[4], 0x01);
    assert_eq!(file_header(false, false)[4], 0x00);
    for (a, v) in [(true, true), (true, false), (false, true), (false, false)] {
        let mut r = FlvReader::new(100);
        assert_eq!(r.header(), None);
        assert_eq!(read_all(&mut r, &file_header(a, v)), Ok(vec![]));
        assert_eq!(r.header(), Some((a, v)));
    }
}

#[test]
fn tag_bytes_with_an_extended_timestamp() {
    let t = tag(TAG_VIDEO, 0x1234_5678, &[0x17, 0x01]);
    assert_eq!(
        &t[..],
        &[9, 0, 0, 2, 0x34, 0x56, 0x78, 0x12, 0, 0, 0, 0x17, 0x01, 0, 0, 0, 13]
    );
    assert_eq!(t.len(), tag_len(2));
    let mut out = BytesMut::from(&b"pre"[..]);
    write_tag(&mut out, TAG_SCRIPT, 5, b"");
    assert_eq!(&out[..], &b"pre\x12\0\0\0\0\0\x05\0\0\0\0\0\0\0\x0b"[..]);
}

#[test]
fn reads_a_stream_and_checks_it() {
    let mut s = file_header(true, true).to_vec();
    s.extend_from_slice(&tag(TAG_SCRIPT, 0, b"meta"));
    s.extend_from_slice(&tag(TAG_VIDEO, 40, &[1; 300]));
    s.extend_from_slice(&tag(TAG_AUDIO, 0xFFFF_FFFF, b"a"));
    let tags = read_all(&mut FlvReader::new(300), &s).unwrap();
    let summary: Vec<_> = tags
        .iter()
        .map(|t| (t.type_id, t.timestamp, t.payload.len()))
        .collect();
    assert_eq!(summary, [(18, 0, 4), (9, 40, 300), (8, 0xFFFF_FFFF, 1)]);
    // At every cut the reader waits, then gives the same tags.
    for cut in 0..s.len() {
        let mut r = FlvReader::new(300);
        let mut buf = BytesMut::from(&s[..cut]);
        let mut got = Vec::new();
        while let Some(t) = r.read(&mut buf).unwrap() {
            got.push(t);
        }
        buf.extend_from_slice(&s[cut..]);
        while let Some(t) = r.read(&mut buf).unwrap() {
            got.push(t);
        }
        assert_eq!(got, tags, "cut {cut}");
        assert!(buf.is_empty());
    }
    // A longer DataOffset is skipped.
    let mut long = b"FLV\x01\x01\0\0\0\x0cxyz\0\0\0\0".to_vec();
    long.extend_from_slice(&tag(TAG_VIDEO, 1, b"v"));
    assert_eq!(read_all(&mut FlvReader::new(10), &long).unwrap().len(), 1);
}

#[test]
fn bad_streams_are_refused() {
    let err = |bytes: &[u8], max| read_all(&mut FlvReader::new(max), bytes).unwrap_err();
    assert_eq!(
        err(b"FLX\x01\x05\0\0\0\x09", 10),
        FlvError::Signature { found: *b"FLX" }
    );
    assert_eq!(
        err(b"FLV\x02\x05\0\0\0\x09", 10),
        FlvError::Version { version: 2 }
    );
    assert_eq!(
        err(b"FLV\x01\x05\0\0\0\x08", 10),
        FlvError::DataOffset { offset: 8 }
    );
    assert_eq!(
        err(b"FLV\x01\x05\xff\xff\xff\xff", 10),
        FlvError::DataOffset { offset: u32::MAX }
    );
    assert_eq!(
        err(b"FLV\x01\x05\0\0\0\x09\0\0\0\x01", 10),
        FlvError::PreviousTagSize {
            found: 1,
            expected: 0
        }
    );
    let with = |t: &[u8]| {
        let mut s = file_header(true, true).to_vec();
        s.extend_from_slice(t);
        s
    };
    let mut bad_prev = tag(TAG_AUDIO, 0, b"abc").to_vec();
    *bad_prev.last_mut().unwrap() += 1;
    assert_eq!(
        err(&with(&bad_prev), 10),
        FlvError::PreviousTagSize {
            found: 15,
            expected: 14
        }
    );
    let mut bad_type = tag(TAG_AUDIO, 0, b"abc").to_vec();
    bad_type[0] = 0x28; // filter bit: encrypted
    assert_eq!(err(&with(&bad_type), 10), FlvError::TagType { byte: 0x28 });
    bad_type[0] = 7;
    assert_eq!(err(&with(&bad_type), 10), FlvError::TagType { byte: 7 });
    let mut bad_stream = tag(TAG_AUDIO, 0, b"abc").to_vec();
    bad_stream[10] = 1;
    assert_eq!(
        err(&with(&bad_stream), 10),
        FlvError::StreamId { stream_id: 1 }
    );
    // Too big: from the header alone, with no body buffered.
    let big = with(&tag(TAG_VIDEO, 0, &[0; 11])[..TAG_HEADER_LEN]);
    assert_eq!(err(&big, 10), FlvError::TooBig { len: 11, limit: 10 });
    // Errors are final.
    let mut r = FlvReader::new(10);
    assert!(read_all(&mut r, &big).is_err());
    assert_eq!(
        r.read(&mut BytesMut::from(&tag(TAG_AUDIO, 0, b"")[..])),
        Err(FlvError::TooBig { len: 11, limit: 10 })
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// tag → FlvReader gives back every tag, whatever the reads.
    #[test]
    fn tags_round_trip(
        audio in any::<bool>(),
        video in any::<bool>(),
        tags in proptest::collection::vec(
            (prop_oneof![Just(8u8), Just(9u8), Just(18u8)], any::<u32>(),
             proptest::collection::vec(any::<u8>(), 0..3000)),
            0..8,
        ),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut s = file_header(audio, video).to_vec();
        for (ty, ts, p) in &tags {
            s.extend_from_slice(&tag(*ty, *ts, p));
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (s.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.push(s.len());
        let (mut r, mut buf, mut got, mut start) = (FlvReader::new(3000), BytesMut::new(), vec![], 0);
        for cut in cuts {
            buf.extend_from_slice(&s[start..cut.max(start)]);
            start = cut.max(start);
            while let Some(t) = r.read(&mut buf).unwrap() {
                got.push((t.type_id, t.timestamp, t.payload.to_vec()));
            }
        }
        prop_assert_eq!(r.header(), Some((audio, video)));
        prop_assert_eq!(got, tags);
        prop_assert!(buf.is_empty());
    }

    /// Arbitrary bytes: no panic, tags within the limit.
    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut r = FlvReader::new(64);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(t)) = r.read(&mut buf) {
            prop_assert!(t.payload.len() <= 64);
        }
    }
}
