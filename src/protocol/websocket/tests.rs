use bytes::BytesMut;
use proptest::prelude::*;

use super::*;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn decode_one(bytes: &[u8]) -> Result<Option<WsFrame>, WsError> {
    FrameDecoder::new(1 << 16).decode(&mut BytesMut::from(bytes))
}

fn err(bytes: &[u8]) -> WsError {
    decode_one(bytes).expect_err("refused")
}

#[test]
fn accept_key_rfc_6455_example() {
    // §1.3.
    assert_eq!(
        accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[test]
fn base64_rfc_4648_vectors() {
    let vectors = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];
    for (plain, encoded) in vectors {
        assert_eq!(base64(plain.as_bytes()), encoded);
    }
    assert_eq!(base64(&[0xfb, 0xff, 0xbf]), "+/+/");
}

#[test]
fn rfc_6455_section_5_7_examples() {
    // A single-frame masked text message "Hello".
    let masked = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let f = decode_one(&masked).unwrap().unwrap();
    assert_eq!(
        (f.fin, f.opcode, &f.payload[..]),
        (true, Opcode::Text, &b"Hello"[..])
    );
    assert_eq!(
        &client_frame(Opcode::Text, true, b"Hello", MASK)[..],
        &masked[..]
    );
    // The unmasked one is what a server sends; a server refuses it from a client.
    let unmasked = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    assert_eq!(&frame(Opcode::Text, b"Hello")[..], &unmasked[..]);
    assert_eq!(err(&unmasked), WsError::Unmasked);
    let f = FrameDecoder::for_client(100)
        .decode(&mut BytesMut::from(&unmasked[..]))
        .unwrap()
        .unwrap();
    assert_eq!(&f.payload[..], b"Hello");
    assert_eq!(
        FrameDecoder::for_client(100).decode(&mut BytesMut::from(&masked[..])),
        Err(WsError::Masked)
    );
    // A fragmented text message: "Hel" then "lo".
    let mut d = FrameDecoder::for_client(100);
    let mut buf = BytesMut::from(&[0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f][..]);
    let a = d.decode(&mut buf).unwrap().unwrap();
    let b = d.decode(&mut buf).unwrap().unwrap();
    assert_eq!(
        (a.fin, a.opcode, &a.payload[..]),
        (false, Opcode::Text, &b"Hel"[..])
    );
    assert_eq!(
        (b.fin, b.opcode, &b.payload[..]),
        (true, Opcode::Continuation, &b"lo"[..])
    );
    // 256 bytes and 64 KiB binary: the 16- and 64-bit length forms.
    assert_eq!(
        &frame_header(Opcode::Binary, true, 256).0[..4],
        &[0x82, 0x7E, 0x01, 0x00]
    );
    assert_eq!(frame_header(Opcode::Binary, true, 256).1, 4);
    let (h, n) = frame_header(Opcode::Binary, true, 65536);
    assert_eq!(&h[..n], &[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
    assert_eq!(frame_header(Opcode::Binary, false, 125).0[..2], [0x02, 125]);
    assert_eq!(frame_header(Opcode::Binary, true, 126).1, 4);
    assert_eq!(frame_header(Opcode::Binary, true, 65535).1, 4);
}

#[test]
fn close_frames() {
    assert_eq!(
        &close_frame(1000, "bye")[..],
        &[0x88, 5, 0x03, 0xE8, b'b', b'y', b'e']
    );
    assert_eq!(&close_frame(1001, "")[..], &[0x88, 2, 0x03, 0xE9]);
    // 200 two-byte characters: cut to 61 of them (122 bytes), never inside one.
    let long = "é".repeat(200);
    let f = close_frame(1008, &long);
    assert_eq!(f.len(), 2 + 2 + 122);
    let mut buf = BytesMut::from(&f[..]);
    let decoded = FrameDecoder::for_client(1000)
        .decode(&mut buf)
        .unwrap()
        .unwrap();
    assert_eq!(
        decoded.close_reason(),
        Some((1008, "é".repeat(61).as_str()))
    );
    assert_eq!(close_frame(1000, &"a".repeat(200)).len(), 2 + 125);
    // From a client: empty is fine, one byte is not, reserved codes are not, bad UTF-8 is 1007.
    let close = |payload: &[u8]| decode_one(&client_frame(Opcode::Close, true, payload, MASK));
    assert!(close(b"").unwrap().unwrap().close_reason().is_none());
    assert_eq!(close(&[0x03]), Err(WsError::CloseTooShort));
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
        let e = close(&code.to_be_bytes()).unwrap_err();
        assert_eq!(
            (e.clone(), e.close_code()),
            (WsError::BadCloseCode { code }, 1002)
        );
    }
    for code in [1000u16, 1001, 1003, 1007, 1011, 3000, 4999] {
        assert!(close(&code.to_be_bytes()).is_ok(), "{code}");
    }
    let e = close(&[0x03, 0xE8, 0xff, 0xfe]).unwrap_err();
    assert_eq!((e.clone(), e.close_code()), (WsError::BadCloseReason, 1007));
    let f = decode_one(&client_close_frame(1001, "going", MASK))
        .unwrap()
        .unwrap();
    assert_eq!(f.close_reason(), Some((1001, "going")));
}

#[test]
fn protocol_errors_and_their_close_codes() {
    let code = |bytes: &[u8]| err(bytes).close_code();
    // RSV bits.
    for bits in [0x40u8, 0x20, 0x10] {
        let mut f = client_frame(Opcode::Binary, true, b"x", MASK).to_vec();
        f[0] |= bits;
        assert_eq!(err(&f), WsError::Reserved { bits: bits >> 4 });
        assert_eq!(code(&f), 1002);
    }
    // Reserved opcodes.
    for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        assert_eq!(
            err(&[0x80 | op, 0x80]),
            WsError::UnknownOpcode { opcode: op }
        );
    }
    // Control frames: at most 125 bytes, never fragmented.
    let big_ping = client_frame(Opcode::Ping, true, &[0; 126], MASK);
    assert_eq!(err(&big_ping[..2]), WsError::ControlTooLong { len: 126 });
    assert_eq!(
        err(&client_frame(Opcode::Ping, false, b"", MASK)),
        WsError::FragmentedControl
    );
    assert_eq!(
        err(&client_frame(Opcode::Close, false, b"", MASK)),
        WsError::FragmentedControl
    );
    assert!(decode_one(&client_frame(Opcode::Ping, true, &[7; 125], MASK)).is_ok());
    // 64-bit length with the top bit set, refused from the header alone.
    let giant = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!((err(&giant), code(&giant)), (WsError::LengthTopBit, 1002));
    // Too big: from the header alone (no payload buffered), 1009.
    let huge = [0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0];
    assert_eq!(code(&huge), 1009);
    assert_eq!(
        err(&huge),
        WsError::TooBig {
            len: 1 << 32,
            limit: 1 << 16
        }
    );
    let mut d = FrameDecoder::new(10);
    let mut buf = BytesMut::from(&[0x82, 0x8B][..]);
    assert_eq!(
        d.decode(&mut buf),
        Err(WsError::TooBig { len: 11, limit: 10 })
    );
    // Errors are final.
    assert_eq!(
        d.decode(&mut BytesMut::from(
            &client_frame(Opcode::Ping, true, b"", MASK)[..]
        )),
        Err(WsError::TooBig { len: 11, limit: 10 })
    );
    // Fragmentation: continuation without a start, a new message inside an open one.
    assert_eq!(
        err(&client_frame(Opcode::Continuation, true, b"x", MASK)),
        WsError::UnexpectedContinuation
    );
    let mut d = FrameDecoder::new(100);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&client_frame(Opcode::Binary, false, b"a", MASK));
    buf.extend_from_slice(&client_frame(Opcode::Ping, true, b"p", MASK));
    buf.extend_from_slice(&client_frame(Opcode::Continuation, false, b"b", MASK));
    buf.extend_from_slice(&client_frame(Opcode::Continuation, true, b"c", MASK));
    buf.extend_from_slice(&client_frame(Opcode::Text, false, b"d", MASK));
    buf.extend_from_slice(&client_frame(Opcode::Binary, true, b"e", MASK));
    let ops: Vec<_> = (0..5)
        .map(|_| d.decode(&mut buf).unwrap().unwrap())
        .map(|f| (f.opcode, f.fin, f.payload.to_vec()))
        .collect();
    assert_eq!(
        ops,
        vec![
            (Opcode::Binary, false, b"a".to_vec()),
            (Opcode::Ping, true, b"p".to_vec()),
            (Opcode::Continuation, false, b"b".to_vec()),
            (Opcode::Continuation, true, b"c".to_vec()),
            (Opcode::Text, false, b"d".to_vec()),
        ]
    );
    assert_eq!(d.decode(&mut buf), Err(WsError::Interleaved));
}

#[test]
fn incomplete_frames_wait_at_every_cut() {
    let f = client_frame(Opcode::Binary, true, &[9u8; 300], MASK);
    for cut in 0..f.len() {
        let mut buf = BytesMut::from(&f[..cut]);
        assert_eq!(
            FrameDecoder::new(1000).decode(&mut buf),
            Ok(None),
            "cut {cut}"
        );
        assert_eq!(buf.len(), cut);
    }
}

/// Feed `bytes` in pieces cut at `cuts`; collect every frame or the first error.
fn decode_split(
    mut d: FrameDecoder,
    bytes: &[u8],
    cuts: &[usize],
) -> (Vec<WsFrame>, Option<WsError>) {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.push(bytes.len());
    let (mut buf, mut out, mut start) = (BytesMut::new(), Vec::new(), 0);
    for cut in cuts {
        buf.extend_from_slice(&bytes[start..cut.max(start)]);
        start = cut.max(start);
        loop {
            match d.decode(&mut buf) {
                Ok(Some(f)) => out.push(f),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

fn arb_frame() -> impl Strategy<Value = (u8, bool, Vec<u8>)> {
    prop_oneof![
        (
            Just(2u8),
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..70_000)
        ),
        (
            Just(1u8),
            Just(true),
            proptest::collection::vec(any::<u8>(), 0..300)
        ),
        (
            Just(9u8),
            Just(true),
            proptest::collection::vec(any::<u8>(), 0..=125)
        ),
        (
            Just(10u8),
            Just(true),
            proptest::collection::vec(any::<u8>(), 0..=125)
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Client frames (masked, any mask) decode to what was encoded, whatever the reads.
    #[test]
    fn client_frames_round_trip(
        frames in proptest::collection::vec(arb_frame(), 1..6),
        mask in any::<[u8; 4]>(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        // Make the sequence legal: unfinished data messages are closed by a continuation.
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for (op, fin, payload) in frames {
            let op = Opcode::from_u8(op).unwrap();
            wire.extend_from_slice(&client_frame(op, fin, &payload, mask));
            expected.push((op, fin, payload));
            if !fin {
                wire.extend_from_slice(&client_frame(Opcode::Continuation, true, b"end", mask));
                expected.push((Opcode::Continuation, true, b"end".to_vec()));
            }
        }
        let (got, e) = decode_split(FrameDecoder::new(1 << 20), &wire, &cuts);
        prop_assert_eq!(e, None);
        let got: Vec<_> = got.into_iter().map(|f| (f.opcode, f.fin, f.payload.to_vec())).collect();
        prop_assert_eq!(got, expected);
    }

    /// Server frames (frame / frame_header) decode with the client-side decoder.
    #[test]
    fn server_frames_round_trip(
        (op, fin, payload) in arb_frame(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let op = Opcode::from_u8(op).unwrap();
        let (h, n) = frame_header(op, fin, payload.len());
        let mut wire = h[..n].to_vec();
        wire.extend_from_slice(&payload);
        if fin {
            prop_assert_eq!(&frame(op, &payload)[..], &wire[..]);
        }
        let (got, e) = decode_split(FrameDecoder::for_client(1 << 20), &wire, &cuts);
        prop_assert_eq!(e, None);
        prop_assert_eq!(got.len(), 1);
        prop_assert_eq!((got[0].opcode, got[0].fin, &got[0].payload[..]), (op, fin, &payload[..]));
    }

    /// Arbitrary bytes: no panic, and frames never exceed the limit.
    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let (frames, _) = decode_split(FrameDecoder::new(64), &bytes, &[]);
        for f in frames {
            prop_assert!(f.payload.len() <= 64);
            prop_assert!(!f.opcode.is_control() || (f.fin && f.payload.len() <= 125));
        }
    }
}
