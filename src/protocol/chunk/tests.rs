use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::protocol::message::{type_id, RawMessage};

fn msg(type_id: u8, stream_id: u32, timestamp: u32, payload: &[u8]) -> RawMessage {
    RawMessage {
        type_id,
        stream_id,
        timestamp,
        payload: Bytes::copy_from_slice(payload),
    }
}

fn decode_all(decoder: &mut ChunkDecoder, bytes: &[u8]) -> Result<Vec<RawMessage>, ChunkError> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(m) = decoder.decode(&mut buf)? {
        out.push(m);
    }
    assert!(buf.is_empty(), "{} bytes left undecoded", buf.len());
    Ok(out)
}

/// Feed `bytes` in the given pieces; the decoded messages must not depend on the split.
fn decode_split(bytes: &[u8], cuts: &[usize]) -> Vec<RawMessage> {
    let mut decoder = ChunkDecoder::new(ChunkLimits::default());
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut start = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.push(bytes.len());
    for cut in cuts {
        buf.extend_from_slice(&bytes[start..cut.max(start)]);
        start = cut.max(start);
        while let Some(m) = decoder.decode(&mut buf).expect("decode") {
            out.push(m);
        }
    }
    assert!(buf.is_empty());
    out
}

/// Adobe RTMP 1.0 §5.3.2.1, example 1: four audio messages on one chunk stream, 32 bytes each,
/// 20 ms apart: fmt 0, then fmt 2, then fmt 3 twice.
#[test]
fn spec_example_1_audio_header_compression() {
    let mut enc = ChunkEncoder::new();
    let mut out = BytesMut::new();
    let messages: Vec<_> = (0..4u32)
        .map(|i| msg(type_id::AUDIO, 12345, 1000 + 20 * i, &[i as u8; 32]))
        .collect();
    let mut header_sizes = Vec::new();
    for m in &messages {
        let before = out.len();
        enc.encode(3, m, &mut out);
        header_sizes.push(out.len() - before - 32);
    }
    // Header sizes as in the spec's table: 12, 4, 1, 1 (fmt 0, 2, 3, 3 with a 1-byte basic header).
    assert_eq!(header_sizes, vec![12, 4, 1, 1]);
    assert_eq!(out[0] >> 6, 0);
    assert_eq!(out[12 + 32] >> 6, 2);
    let mut dec = ChunkDecoder::new(ChunkLimits::default());
    assert_eq!(decode_all(&mut dec, &out).expect("decode"), messages);
}

/// §5.3.2.2, example 2: one 307-byte video message with chunk size 128 is three chunks: a fmt 0
/// chunk and two fmt 3 continuations.
#[test]
fn spec_example_2_message_split_into_chunks() {
    let payload: Vec<u8> = (0..307u32).map(|i| i as u8).collect();
    let m = msg(type_id::VIDEO, 12346, 1000, &payload);
    let mut out = BytesMut::new();
    ChunkEncoder::new().encode(4, &m, &mut out);
    assert_eq!(out.len(), 12 + 128 + 1 + 128 + 1 + 51);
    // Bytes straight from the spec's table: fmt 0, csid 4, timestamp 1000, length 307, type 9,
    // stream id 12346 little-endian.
    assert_eq!(
        &out[..12],
        &[0x04, 0x00, 0x03, 0xE8, 0x00, 0x01, 0x33, 0x09, 0x3A, 0x30, 0x00, 0x00]
    );
    assert_eq!(out[12 + 128], 0xC4);
    assert_eq!(out[12 + 128 + 1 + 128], 0xC4);
    let mut dec = ChunkDecoder::new(ChunkLimits::default());
    assert_eq!(decode_all(&mut dec, &out).expect("decode"), vec![m]);
}

#[test]
fn basic_headers_of_one_two_and_three_bytes() {
    for (csid, basic) in [
        (2u32, 1usize),
        (63, 1),
        (64, 2),
        (319, 2),
        (320, 3),
        (65_599, 3),
    ] {
        let m = msg(type_id::AUDIO, 1, 7, b"abc");
        let mut out = BytesMut::new();
        chunk_message(csid, &m, 128, &mut out);
        assert_eq!(out.len(), basic + 11 + 3, "csid {csid}");
        let mut dec = ChunkDecoder::new(ChunkLimits::default());
        assert_eq!(decode_all(&mut dec, &out).expect("decode"), vec![m]);
    }
}

#[test]
fn extended_timestamps_on_every_chunk_and_in_deltas() {
    let payload = vec![7u8; 300];
    let mut out = BytesMut::new();
    let mut enc = ChunkEncoder::new();
    let messages = vec![
        msg(type_id::VIDEO, 1, 0x0100_0000, &payload),
        msg(type_id::VIDEO, 1, 0x0100_0000 + 40, &payload),
        // A delta past 0xFFFFFF is itself extended.
        msg(type_id::VIDEO, 1, 0x0300_0000, &payload),
        msg(type_id::VIDEO, 1, 0x0500_0000, &payload),
        // Wrap at 2^32: time going "backwards" makes a fresh fmt 0.
        msg(type_id::VIDEO, 1, 5, &payload),
    ];
    for m in &messages {
        enc.encode(6, m, &mut out);
    }
    // First message: fmt 0 with extended timestamp, then two fmt 3 continuations each carrying
    // the 4-byte extended timestamp (§5.3.1.3).
    assert_eq!(&out[1..4], &[0xFF, 0xFF, 0xFF]);
    assert_eq!(&out[12..16], &0x0100_0000u32.to_be_bytes());
    assert_eq!(out[16 + 128], 0xC6);
    assert_eq!(
        &out[16 + 128 + 1..16 + 128 + 5],
        &0x0100_0000u32.to_be_bytes()
    );
    let mut dec = ChunkDecoder::new(ChunkLimits::default());
    assert_eq!(decode_all(&mut dec, &out).expect("decode"), messages);
}

#[test]
fn set_chunk_size_applies_at_the_exact_byte() {
    let mut enc = ChunkEncoder::new();
    let mut out = BytesMut::new();
    let big = msg(type_id::VIDEO, 1, 0, &[1u8; 5000]);
    enc.encode(6, &big, &mut out);
    enc.set_chunk_size(4096, &mut out);
    enc.encode(6, &big, &mut out);
    enc.set_chunk_size(1, &mut out);
    enc.encode(6, &msg(type_id::AUDIO, 1, 10, b"xyz"), &mut out);
    let mut dec = ChunkDecoder::new(ChunkLimits::default());
    let got = decode_all(&mut dec, &out).expect("decode");
    assert_eq!(got.len(), 5);
    assert_eq!(got[0], big);
    assert_eq!(got[1].type_id, type_id::SET_CHUNK_SIZE);
    assert_eq!(got[2], big);
    assert_eq!(&got[4].payload[..], b"xyz");
    assert_eq!(dec.chunk_size(), 1);
}

#[test]
fn bad_set_chunk_size_is_an_error() {
    for size in [0u32, 0x8000_0000] {
        let mut out = BytesMut::new();
        chunk_message(
            2,
            &msg(type_id::SET_CHUNK_SIZE, 0, 0, &size.to_be_bytes()),
            128,
            &mut out,
        );
        let mut dec = ChunkDecoder::new(ChunkLimits::default());
        assert_eq!(
            decode_all(&mut dec, &out),
            Err(ChunkError::BadChunkSize { size })
        );
    }
}

#[test]
fn abort_discards_the_partial_message() {
    let mut out = BytesMut::new();
    let mut full = BytesMut::new();
    chunk_message(6, &msg(type_id::VIDEO, 1, 0, &[9u8; 300]), 128, &mut full);
    // Only the first chunk of the 300-byte message, then Abort for chunk stream 6.
    out.extend_from_slice(&full[..12 + 128]);
    chunk_message(
        2,
        &msg(type_id::ABORT, 0, 0, &6u32.to_be_bytes()),
        128,
        &mut out,
    );
    chunk_message(6, &msg(type_id::AUDIO, 1, 0, b"next"), 128, &mut out);
    let mut dec = ChunkDecoder::new(ChunkLimits::default());
    let got = decode_all(&mut dec, &out).expect("decode");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].type_id, type_id::ABORT);
    assert_eq!(&got[1].payload[..], b"next");
    assert_eq!(dec.pending_bytes(), 0);
}

#[test]
fn abort_on_unknown_chunk_stream_is_harmless() {
    let mut out = BytesMut::new();
    chunk_message(
        2,
        &msg(type_id::ABORT, 0, 0, &60_000u32.to_be_bytes()),
        128,
        &mut out,
    );
    let mut dec = ChunkDecoder::new(ChunkLimits::default());
    assert_eq!(decode_all(&mut dec, &out).expect("decode").len(), 1);
}

#[test]
fn compressed_header_on_a_fresh_chunk_stream_is_an_error() {
    for first in [0x46u8, 0x86, 0xC6] {
        let mut dec = ChunkDecoder::new(ChunkLimits::default());
        let mut buf = BytesMut::from(&[first, 0, 0, 0, 0, 0, 0, 0][..]);
        assert!(matches!(
            dec.decode(&mut buf),
            Err(ChunkError::NoPreviousHeader { csid: 6, .. })
        ));
    }
}

#[test]
fn huge_message_is_refused_before_any_allocation() {
    let mut dec = ChunkDecoder::new(ChunkLimits {
        max_message_len: 1000,
        ..ChunkLimits::default()
    });
    // fmt 0, csid 3, declared length 0xFFFFFF, only the header sent.
    let mut buf = BytesMut::from(&[0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0][..]);
    assert!(matches!(
        dec.decode(&mut buf),
        Err(ChunkError::MessageTooLong { len: 0xFF_FFFF, .. })
    ));
}

#[test]
fn chunk_stream_and_pending_limits() {
    let limits = ChunkLimits {
        max_message_len: 1 << 20,
        max_chunk_streams: 10,
        max_pending_bytes: 1000,
    };
    // Many chunk streams, each with the first chunk of a partial message.
    let mut out = BytesMut::new();
    for csid in 3..20u32 {
        let mut full = BytesMut::new();
        chunk_message(
            csid,
            &msg(type_id::VIDEO, 1, 0, &[0u8; 1000]),
            128,
            &mut full,
        );
        out.extend_from_slice(&full[..12 + 128]);
    }
    let mut dec = ChunkDecoder::new(limits);
    let mut buf = out.clone();
    let err = loop {
        match dec.decode(&mut buf) {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("limit not enforced"),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(err, ChunkError::TooMuchPending { .. }),
        "pending cap first: {err}"
    );
    let mut dec = ChunkDecoder::new(ChunkLimits {
        max_pending_bytes: 1 << 20,
        ..limits
    });
    let mut buf = out;
    let err = loop {
        match dec.decode(&mut buf) {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("limit not enforced"),
            Err(e) => break e,
        }
    };
    assert!(matches!(
        err,
        ChunkError::TooManyChunkStreams { limit: 10, .. }
    ));
}

#[test]
fn single_chunk_messages_are_not_copied() {
    let mut out = BytesMut::new();
    chunk_message(6, &msg(type_id::VIDEO, 1, 0, &[5u8; 100]), 4096, &mut out);
    let start = out.as_ptr() as usize;
    let mut dec = ChunkDecoder::new(ChunkLimits::default());
    let m = dec.decode(&mut out).expect("decode").expect("message");
    assert_eq!(m.payload.as_ptr() as usize, start + 12);
}

#[test]
fn zero_length_message() {
    let mut out = BytesMut::new();
    let m = msg(type_id::AUDIO, 1, 3, b"");
    ChunkEncoder::new().encode(4, &m, &mut out);
    let mut dec = ChunkDecoder::new(ChunkLimits::default());
    assert_eq!(decode_all(&mut dec, &out).expect("decode"), vec![m]);
}

#[test]
fn receive_window_acknowledges_each_window() {
    let mut w = ReceiveWindow::new(0);
    assert_eq!(w.on_bytes(10_000), None);
    w.set_window(1000);
    assert_eq!(w.on_bytes(500), Some(10_500));
    assert_eq!(w.on_bytes(999), None);
    assert_eq!(w.on_bytes(1), Some(11_500));
}

/// Byte ranges of the chunks `chunk_message` made for one message.
fn chunk_ranges(
    bytes: &[u8],
    csid: u32,
    len: usize,
    chunk_size: usize,
    ext: bool,
) -> Vec<std::ops::Range<usize>> {
    let basic = if csid < 64 {
        1
    } else if csid < 320 {
        2
    } else {
        3
    };
    let e = if ext { 4 } else { 0 };
    let mut ranges = Vec::new();
    let mut pos = 0;
    let mut left = len;
    let first = basic + 11 + e + left.min(chunk_size);
    ranges.push(pos..pos + first);
    pos += first;
    left -= left.min(chunk_size);
    while left > 0 {
        let n = basic + e + left.min(chunk_size);
        ranges.push(pos..pos + n);
        pos += n;
        left -= left.min(chunk_size);
    }
    assert_eq!(pos, bytes.len());
    ranges
}

fn arb_message() -> impl Strategy<Value = (u32, RawMessage)> {
    (
        prop_oneof![3u32..10, 64u32..400, 60_000u32..65_600],
        prop_oneof![Just(8u8), Just(9u8), Just(18u8), Just(20u8)],
        0u32..4,
        prop_oneof![0u32..100_000, 0x00FF_FF00u32..0x0100_0100, any::<u32>()],
        prop::collection::vec(any::<u8>(), 0..1500),
    )
        .prop_map(|(csid, t, sid, ts, payload)| (csid, msg(t, sid, ts, &payload)))
}

proptest! {
    /// Messages through the compressing encoder come back identical, for any chunk size and
    /// any split of the byte stream.
    #[test]
    fn encoder_round_trip_any_split(
        chunk_size in prop_oneof![1u32..300, Just(128u32), Just(4096u32), Just(65_536u32)],
        messages in prop::collection::vec(arb_message(), 1..20),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut enc = ChunkEncoder::new();
        let mut out = BytesMut::new();
        enc.set_chunk_size(chunk_size, &mut out);
        for (csid, m) in &messages {
            enc.encode(*csid, m, &mut out);
        }
        let got = decode_split(&out, &cuts);
        prop_assert_eq!(got.len(), messages.len() + 1);
        for (g, (_, m)) in got[1..].iter().zip(&messages) {
            prop_assert_eq!(g, m);
        }
    }

    /// Chunks of messages on different chunk stream ids, interleaved, reassemble per chunk
    /// stream id.
    #[test]
    fn interleaved_chunk_streams_reassemble(
        chunk_size in prop_oneof![16u32..200, Just(128u32)],
        a in prop::collection::vec(any::<u8>(), 0..2000),
        b in prop::collection::vec(any::<u8>(), 0..2000),
        ts in prop_oneof![0u32..1000, 0x0100_0000u32..0x0200_0000],
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let ma = msg(type_id::VIDEO, 1, ts, &a);
        let mb = msg(type_id::AUDIO, 1, ts + 3, &b);
        let (mut ea, mut eb) = (BytesMut::new(), BytesMut::new());
        chunk_message(6, &ma, chunk_size, &mut ea);
        chunk_message(70, &mb, chunk_size, &mut eb);
        let ra = chunk_ranges(&ea, 6, a.len(), chunk_size as usize, ts >= EXTENDED_TIMESTAMP);
        let rb = chunk_ranges(&eb, 70, b.len(), chunk_size as usize, ts + 3 >= EXTENDED_TIMESTAMP);
        let mut stream = Vec::new();
        let mut set = Vec::new();
        set.extend_from_slice(&[0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0]);
        set.extend_from_slice(&chunk_size.to_be_bytes());
        stream.extend_from_slice(&set);
        for i in 0..ra.len().max(rb.len()) {
            if let Some(r) = ra.get(i) { stream.extend_from_slice(&ea[r.clone()]); }
            if let Some(r) = rb.get(i) { stream.extend_from_slice(&eb[r.clone()]); }
        }
        let got = decode_split(&stream, &cuts);
        prop_assert_eq!(got.len(), 3);
        let mut got: Vec<_> = got.into_iter().skip(1).collect();
        got.sort_by_key(|m| m.type_id);
        prop_assert_eq!(&got[0], &mb);
        prop_assert_eq!(&got[1], &ma);
    }

    /// Arbitrary bytes never panic and never make the decoder hold more than its limits.
    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..4000)) {
        let limits = ChunkLimits { max_message_len: 10_000, max_chunk_streams: 8, max_pending_bytes: 20_000 };
        let mut dec = ChunkDecoder::new(limits);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = dec.decode(&mut buf) {}
        prop_assert!(dec.pending_bytes() <= 20_000);
        prop_assert!(dec.chunk_streams() <= 8);
    }
}
