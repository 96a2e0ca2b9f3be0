use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const FFMPEG: &[u8] = include_bytes!("../../../tests/vectors/handshake/ffmpeg-c0c1.bin");
const RTMPDUMP: &[u8] = include_bytes!("../../../tests/vectors/handshake/rtmpdump-c0c1.bin");
const RTMPDUMP_SWFHASH: &[u8] =
    include_bytes!("../../../tests/vectors/handshake/rtmpdump-swfhash-c0c1.bin");
const RTMPDUMP_RTMPE: &[u8] =
    include_bytes!("../../../tests/vectors/handshake/rtmpdump-rtmpe-c0c1.bin");
const GST_RTMP2SINK: &[u8] =
    include_bytes!("../../../tests/vectors/handshake/gst-rtmp2sink-c0c1.bin");
const GST_RTMPSINK: &[u8] =
    include_bytes!("../../../tests/vectors/handshake/gst-rtmpsink-c0c1.bin");

// ---- Independent verification: plain SHA-256 HMAC (RFC 2104) and offsets written out
// ---- again from the published layout, sharing no code with the module under test.

fn ref_hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// Digest position for a digest block starting at `base` (8 or 772).
fn ref_digest_pos(c1: &[u8], base: usize) -> usize {
    let s: u32 = c1[base..base + 4].iter().map(|&b| u32::from(b)).sum();
    (s % 728) as usize + base + 4
}

/// Returns the digest if the block verifies with `key` for the digest block at `base`.
fn ref_verify_digest(c1: &[u8], base: usize, key: &[u8]) -> Option<[u8; 32]> {
    let pos = ref_digest_pos(c1, base);
    let mut msg = c1[..pos].to_vec();
    msg.extend_from_slice(&c1[pos + 32..]);
    let d = ref_hmac(key, &msg);
    (d[..] == c1[pos..pos + 32]).then_some(d)
}

fn ref_signature_ok(block: &[u8], full_key: &[u8], peer_digest: &[u8]) -> bool {
    let k = ref_hmac(full_key, peer_digest);
    ref_hmac(&k, &block[..1504])[..] == block[1504..]
}

/// Runs the server on a captured C0+C1, then independently checks S0+S1+S2.
fn check_server_reply(c0c1: &[u8], expected: HandshakeScheme, version: [u8; 4]) {
    let mut server = ServerHandshake::new();
    let mut input = BytesMut::from(c0c1);
    let mut out = BytesMut::new();
    assert_eq!(
        server.process(&mut input, &mut out),
        Ok(HandshakeState::InProgress)
    );
    assert!(input.is_empty());
    assert_eq!(server.scheme(), Some(expected));
    assert_eq!(server.client_version(), Some(version));
    assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
    assert_eq!(out[0], 3);
    let c1 = &c0c1[1..];
    let s1 = &out[1..1 + HANDSHAKE_SIZE];
    let s2 = &out[1 + HANDSHAKE_SIZE..];
    match expected {
        HandshakeScheme::Simple => {
            assert_eq!(s2, c1, "simple S2 echoes C1");
            assert_eq!(&s1[4..8], &[0; 4]);
        }
        HandshakeScheme::Digest0 | HandshakeScheme::Digest1 => {
            let base = if expected == HandshakeScheme::Digest0 {
                772
            } else {
                8
            };
            let c1_digest =
                ref_verify_digest(c1, base, &GENUINE_FP_KEY[..30]).expect("client digest");
            assert_ne!(&s1[4..8], &[0; 4], "digest S1 has a version");
            // What FFmpeg/librtmp do: S1 digest in either half, with the 36-byte FMS key.
            assert!(
                ref_verify_digest(s1, base, &GENUINE_FMS_KEY[..36]).is_some(),
                "S1 digest"
            );
            assert!(
                ref_signature_ok(s2, &GENUINE_FMS_KEY, &c1_digest),
                "S2 signature"
            );
            assert_eq!(
                &s2[..1504],
                &c1[..1504],
                "S2 echoes C1 before the signature"
            );
        }
    }
    // Any C2 completes the handshake; what follows is the chunk layer's.
    let mut c2 = BytesMut::from(&[0xAAu8; HANDSHAKE_SIZE][..]);
    c2.extend_from_slice(b"\x03chunk");
    out.clear();
    assert_eq!(server.process(&mut c2, &mut out), Ok(HandshakeState::Done));
    assert!(out.is_empty());
    assert_eq!(&c2[..], b"\x03chunk");
}

#[test]
fn ffmpeg_c1_is_digest1_and_reply_verifies() {
    check_server_reply(FFMPEG, HandshakeScheme::Digest1, [9, 0, 124, 2]);
}

#[test]
fn rtmpdump_with_swf_hash_c1_is_digest1_and_reply_verifies() {
    check_server_reply(RTMPDUMP_SWFHASH, HandshakeScheme::Digest1, [10, 0, 45, 2]);
}

#[test]
fn rtmpe_c1_with_c0_patched_to_3_is_digest0_and_reply_verifies() {
    // librtmp's RTMPE C1 puts its digest in the second half; the digest does not cover C0.
    let mut c0c1 = RTMPDUMP_RTMPE.to_vec();
    c0c1[0] = 3;
    check_server_reply(&c0c1, HandshakeScheme::Digest0, [128, 0, 3, 2]);
}

#[test]
fn simple_clients_get_an_echo() {
    check_server_reply(RTMPDUMP, HandshakeScheme::Simple, [0; 4]);
    check_server_reply(GST_RTMPSINK, HandshakeScheme::Simple, [0; 4]);
    check_server_reply(GST_RTMP2SINK, HandshakeScheme::Simple, [0; 4]);
}

#[test]
fn nonzero_version_without_valid_digest_falls_back_to_simple() {
    let mut c0c1 = FFMPEG.to_vec();
    c0c1[600] ^= 0xFF; // breaks the digest, which covers every other byte
    check_server_reply(&c0c1, HandshakeScheme::Simple, [9, 0, 124, 2]);
}

#[test]
fn rtmpe_version_is_refused_at_the_first_byte() {
    let mut server = ServerHandshake::new();
    let mut out = BytesMut::new();
    let mut input = BytesMut::from(&RTMPDUMP_RTMPE[..1]);
    let expected = Err(HandshakeError::UnsupportedVersion { version: 6 });
    assert_eq!(server.process(&mut input, &mut out), expected);
    // Final: stays failed whatever arrives next.
    let mut input = BytesMut::from(FFMPEG);
    assert_eq!(server.process(&mut input, &mut out), expected);
    assert!(out.is_empty());
    assert_eq!(server.scheme(), None);
}

#[test]
fn every_version_but_3_is_refused() {
    for version in (0..=255u8).filter(|&v| v != 3) {
        let mut c0c1 = FFMPEG.to_vec();
        c0c1[0] = version;
        let mut out = BytesMut::new();
        let result = ServerHandshake::new().process(&mut BytesMut::from(&c0c1[..]), &mut out);
        assert_eq!(result, Err(HandshakeError::UnsupportedVersion { version }));
        assert!(out.is_empty());
    }
}

#[test]
fn truncated_input_waits_without_consuming() {
    let mut server = ServerHandshake::new();
    let mut out = BytesMut::new();
    for len in [0, 1, 2, 9, 1536] {
        let mut input = BytesMut::from(&FFMPEG[..len]);
        assert_eq!(
            server.process(&mut input, &mut out),
            Ok(HandshakeState::InProgress)
        );
        assert_eq!(input.len(), len);
        assert!(out.is_empty());
        assert_eq!(server.scheme(), None);
    }
    // Then the rest of C0+C1 but only part of C2.
    let mut input = BytesMut::from(FFMPEG);
    input.extend_from_slice(&[0u8; 1535]);
    assert_eq!(
        server.process(&mut input, &mut out),
        Ok(HandshakeState::InProgress)
    );
    assert_eq!(input.len(), 1535);
    assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
}

#[test]
fn one_byte_at_a_time_matches_all_at_once() {
    let mut stream = FFMPEG.to_vec();
    stream.extend_from_slice(&[7u8; HANDSHAKE_SIZE]);
    let mut server = ServerHandshake::new();
    let mut input = BytesMut::new();
    let mut out = BytesMut::new();
    for (i, &byte) in stream.iter().enumerate() {
        input.put_u8(byte);
        let state = server.process(&mut input, &mut out).expect("no error");
        let done = i + 1 == stream.len();
        assert_eq!(state == HandshakeState::Done, done, "at byte {i}");
        let reply_len = if i >= HANDSHAKE_SIZE {
            1 + 2 * HANDSHAKE_SIZE
        } else {
            0
        };
        assert_eq!(out.len(), reply_len, "at byte {i}");
    }
    assert!(input.is_empty());
    assert_eq!(server.scheme(), Some(HandshakeScheme::Digest1));
    let c1_digest =
        ref_verify_digest(&FFMPEG[1..], 8, &GENUINE_FP_KEY[..30]).expect("ffmpeg digest");
    assert!(ref_signature_ok(
        &out[1 + HANDSHAKE_SIZE..],
        &GENUINE_FMS_KEY,
        &c1_digest
    ));
    // Done is sticky and consumes nothing more.
    let mut more = BytesMut::from(&b"xyz"[..]);
    assert_eq!(
        server.process(&mut more, &mut out),
        Ok(HandshakeState::Done)
    );
    assert_eq!(&more[..], b"xyz");
}

/// Runs a client against a server, delivering bytes in random-sized pieces both ways; once
/// both are done each side sends a few chunk-layer bytes, which must be left in `input`.
fn run_pair(digest: bool, rng: &mut StdRng) -> (ClientHandshake, ServerHandshake) {
    let mut client = ClientHandshake::new(digest);
    let mut server = ServerHandshake::new();
    let (mut to_server, mut to_client) = (BytesMut::new(), BytesMut::new());
    let (mut server_in, mut client_in) = (BytesMut::new(), BytesMut::new());
    client.start(&mut to_server);
    client.start(&mut to_server); // second start is a no-op
    assert_eq!(to_server.len(), 1 + HANDSHAKE_SIZE);
    let (mut client_done, mut server_done, mut tails_sent) = (false, false, false);
    for _ in 0..100_000 {
        if tails_sent && to_server.is_empty() && to_client.is_empty() {
            break;
        }
        if client_done && server_done && !tails_sent {
            to_server.extend_from_slice(b"client tail");
            to_client.extend_from_slice(b"server tail");
            tails_sent = true;
        }
        let n = rng.random_range(0..=to_server.len().min(700));
        server_in.extend_from_slice(&to_server.split_to(n));
        let n = rng.random_range(0..=to_client.len().min(700));
        client_in.extend_from_slice(&to_client.split_to(n));
        let s = server
            .process(&mut server_in, &mut to_client)
            .expect("server");
        let c = client
            .process(&mut client_in, &mut to_server)
            .expect("client");
        server_done = s == HandshakeState::Done;
        client_done = c == HandshakeState::Done;
    }
    assert!(client_done && server_done && tails_sent);
    assert_eq!(&server_in[..], b"client tail");
    assert_eq!(&client_in[..], b"server tail");
    (client, server)
}

#[test]
fn client_and_server_complete_in_random_splits() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0001);
    for _ in 0..20 {
        let (client, server) = run_pair(true, &mut rng);
        assert_eq!(server.scheme(), Some(HandshakeScheme::Digest1));
        assert_eq!(client.scheme(), Some(HandshakeScheme::Digest1));
        assert_eq!(server.client_version(), Some(CLIENT_VERSION));

        let (client, server) = run_pair(false, &mut rng);
        assert_eq!(server.scheme(), Some(HandshakeScheme::Simple));
        assert_eq!(client.scheme(), Some(HandshakeScheme::Simple));
        assert_eq!(server.client_version(), Some([0; 4]));
    }
}

#[test]
fn our_digest_c1_and_c2_verify_independently() {
    let mut client = ClientHandshake::new(true);
    let mut c0c1 = BytesMut::new();
    client.start(&mut c0c1);
    let c1_digest = ref_verify_digest(&c0c1[1..], 8, &GENUINE_FP_KEY[..30]).expect("our C1 digest");
    assert_eq!(&c0c1[5..9], &CLIENT_VERSION);

    let mut server = ServerHandshake::new();
    let mut reply = BytesMut::new();
    server.process(&mut c0c1, &mut reply).expect("server");
    let s1 = reply[1..1 + HANDSHAKE_SIZE].to_vec();
    let s1_digest = ref_verify_digest(&s1, 8, &GENUINE_FMS_KEY[..36]).expect("S1 digest");
    assert!(ref_signature_ok(
        &reply[1 + HANDSHAKE_SIZE..],
        &GENUINE_FMS_KEY,
        &c1_digest
    ));

    let mut c2 = BytesMut::new();
    assert_eq!(
        client.process(&mut reply, &mut c2),
        Ok(HandshakeState::Done)
    );
    assert!(
        ref_signature_ok(&c2, &GENUINE_FP_KEY, &s1_digest),
        "C2 signature"
    );
    assert_eq!(
        &c2[..1504],
        &s1[..1504],
        "C2 echoes S1 before the signature"
    );
}

#[test]
fn digest_client_rejects_a_bad_s2_signature() {
    let mut client = ClientHandshake::new(true);
    let mut c0c1 = BytesMut::new();
    client.start(&mut c0c1);
    let mut reply = BytesMut::new();
    ServerHandshake::new()
        .process(&mut c0c1, &mut reply)
        .expect("server");
    let last = reply.len() - 1;
    reply[last] ^= 1;
    let mut c2 = BytesMut::new();
    let expected = Err(HandshakeError::InvalidS2Signature {
        scheme: HandshakeScheme::Digest1,
    });
    assert_eq!(client.process(&mut reply, &mut c2), expected);
    assert_eq!(c2.len(), HANDSHAKE_SIZE, "C2 was already sent after S1");
    assert_eq!(client.process(&mut BytesMut::new(), &mut c2), expected);
}

#[test]
fn digest_client_falls_back_with_a_simple_server() {
    // A server that ignores the digest: S1 with zero version, S2 any echo.
    let mut client = ClientHandshake::new(true);
    let mut c0c1 = BytesMut::new();
    client.start(&mut c0c1);
    let mut reply = BytesMut::new();
    reply.put_u8(3);
    reply.put_slice(&random_c1s1([0; 4]));
    reply.put_slice(&c0c1[1..]);
    let mut c2 = BytesMut::new();
    assert_eq!(
        client.process(&mut reply, &mut c2),
        Ok(HandshakeState::Done)
    );
    assert_eq!(client.scheme(), Some(HandshakeScheme::Simple));
}

#[test]
fn client_errors() {
    let mut client = ClientHandshake::new(false);
    let mut out = BytesMut::new();
    let mut input = BytesMut::from(&[3u8; 10][..]);
    assert_eq!(
        client.process(&mut input, &mut out),
        Err(HandshakeError::NotStarted)
    );

    let mut client = ClientHandshake::new(true);
    client.start(&mut out);
    let mut input = BytesMut::from(&[6u8][..]);
    assert_eq!(
        client.process(&mut input, &mut out),
        Err(HandshakeError::UnsupportedVersion { version: 6 })
    );
}

proptest::proptest! {
    #[test]
    fn server_never_panics_on_garbage(
        data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4000),
        cuts in proptest::collection::vec(0usize..4000, 0..8),
    ) {
        let mut server = ServerHandshake::new();
        let mut input = BytesMut::new();
        let mut out = BytesMut::new();
        let mut cuts = cuts;
        cuts.push(data.len());
        cuts.sort_unstable();
        let mut from = 0;
        for cut in cuts {
            let cut = cut.min(data.len());
            if cut < from { continue; }
            input.extend_from_slice(&data[from..cut]);
            from = cut;
            let result = server.process(&mut input, &mut out);
            // A bad C0 fails as soon as its byte has been fed, and forever after.
            match data.first() {
                Some(&v) if v != 3 && from > 0 => proptest::prop_assert!(result.is_err()),
                _ => proptest::prop_assert!(result.is_ok()),
            }
        }
        let done = data.first() == Some(&3) && data.len() > 2 * HANDSHAKE_SIZE;
        if data.first() == Some(&3) {
            let state = server.process(&mut input, &mut out);
            proptest::prop_assert_eq!(state, Ok(if done { HandshakeState::Done } else { HandshakeState::InProgress }));
            let expected_left = if done { data.len() - 1 - 2 * HANDSHAKE_SIZE } else if data.len() > HANDSHAKE_SIZE { data.len() - 1 - HANDSHAKE_SIZE } else { data.len() };
            proptest::prop_assert_eq!(input.len(), expected_left);
        }
    }

    #[test]
    fn client_never_panics_on_garbage(
        digest in proptest::prelude::any::<bool>(),
        data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4000),
        split in 0usize..4000,
    ) {
        let mut client = ClientHandshake::new(digest);
        let mut out = BytesMut::new();
        client.start(&mut out);
        let split = split.min(data.len());
        let mut input = BytesMut::from(&data[..split]);
        let _ = client.process(&mut input, &mut out);
        input.extend_from_slice(&data[split..]);
        let result = client.process(&mut input, &mut out);
        if data.first() == Some(&3) {
            // Garbage S1 carries no valid digest, so even a digest client ends up simple.
            proptest::prop_assert!(result.is_ok());
        }
    }
}
