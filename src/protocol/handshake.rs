//! The RTMP handshake (Adobe RTMP 1.0 §5.2), sans-IO, for both the server and the client role.
//!
//! Wire shape (§5.2.2-§5.2.4): C0/S0 is one version byte (3); C1/S1 is time(4) + zero(4) +
//! 1528 random bytes; C2/S2 echo the peer's C1/S1 (time, time2, random echo), 1536 bytes each.
//!
//! Flash Player 9+ and the clients that imitate it (FFmpeg's native RTMP, librtmp when it is
//! given SWF verification data, OBS through librtmp) use the undocumented "digest" (a.k.a.
//! "complex") handshake on top of that shape. Its rules, as implemented by FFmpeg
//! (rtmpproto.c), librtmp (handshake.h), nginx-rtmp (ngx_rtmp_handshake.c) and SRS
//! (srs_protocol_handshake.cpp):
//!
//! - C1/S1 bytes 4..8 carry a non-zero version (e.g. Flash Player 9.0.124.2) instead of zeros.
//! - The 1528 bytes after the version are two 764-byte blocks, a "key" block and a "digest"
//!   block. Which comes first is the scheme: [`HandshakeScheme::Digest0`] is key then digest
//!   (digest block at 772..1536), [`HandshakeScheme::Digest1`] is digest then key (digest
//!   block at 8..772). The names follow SRS's schema0/schema1.
//! - Inside the digest block, the first 4 bytes summed, modulo 728, plus 4 give the offset of
//!   a 32-byte HMAC-SHA256 digest over the other 1504 bytes of C1/S1. The client keys it with
//!   the first 30 bytes of the Genuine Flash Player key, the server with the first 36 bytes of
//!   the Genuine Flash Media Server key.
//! - C2/S2 end with a 32-byte signature over their first 1504 bytes, keyed with
//!   HMAC-SHA256(full key of the signer, the peer's C1/S1 digest).
//!
//! A server that answers a digest C1 with a plain echo is refused by some clients (librtmp
//! fails with "Server not genuine Adobe!", FFmpeg when playing checks S1 and S2), hence the
//! server side here implements both schemes.

use bytes::{Buf, BufMut, BytesMut};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The only C0/S0 version this crate speaks: plain RTMP (§5.2.2).
pub const RTMP_VERSION: u8 = 3;

/// Size of C1/S1 and C2/S2 (§5.2.3, §5.2.4).
pub const HANDSHAKE_SIZE: usize = 1536;

/// Length of an HMAC-SHA256 digest, and of the digest/signature fields of the digest scheme.
const DIGEST_LEN: usize = 32;

/// C2/S2 signatures cover everything before the signature, which fills the last 32 bytes.
const SIGNED_LEN: usize = HANDSHAKE_SIZE - DIGEST_LEN;

/// Size of each of the two key/digest blocks after time and version.
const BLOCK_LEN: usize = 764;

/// Flash Player's key: the 30-byte text part signs C1, all 62 bytes derive the C2 key.
const GENUINE_FP_KEY: [u8; 62] = [
    b'G', b'e', b'n', b'u', b'i', b'n', b'e', b' ', b'A', b'd', b'o', b'b', b'e', b' ', b'F', b'l',
    b'a', b's', b'h', b' ', b'P', b'l', b'a', b'y', b'e', b'r', b' ', b'0', b'0', b'1', 0xF0, 0xEE,
    0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57, 0x6E, 0xEC,
    0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];
const GENUINE_FP_KEY_TEXT_LEN: usize = 30;

/// Flash Media Server's key: the 36-byte text part signs S1, all 68 bytes derive the S2 key.
const GENUINE_FMS_KEY: [u8; 68] = [
    b'G', b'e', b'n', b'u', b'i', b'n', b'e', b' ', b'A', b'd', b'o', b'b', b'e', b' ', b'F', b'l',
    b'a', b's', b'h', b' ', b'M', b'e', b'd', b'i', b'a', b' ', b'S', b'e', b'r', b'v', b'e', b'r',
    b' ', b'0', b'0', b'1', 0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1,
    0x02, 0x9E, 0x7E, 0x57, 0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36,
    0xCF, 0xEB, 0x31, 0xAE,
];
const GENUINE_FMS_KEY_TEXT_LEN: usize = 36;

/// Version we put in S1 bytes 4..8 when answering a digest C1. Any non-zero value marks S1 as
/// digest-carrying; FFmpeg only checks S1/S2 when the first byte is at least 3, so we claim a
/// 4.5 server (the FMS generation that introduced nothing new to the handshake).
const SERVER_VERSION: [u8; 4] = [4, 5, 0, 1];

/// Version we put in C1 bytes 4..8 in digest mode: Flash Player 9.0.124.2, the same value
/// FFmpeg sends, which every digest-aware server accepts.
const CLIENT_VERSION: [u8; 4] = [9, 0, 124, 2];

type HmacSha256 = Hmac<Sha256>;

/// Which handshake flavour a peer's C1 (or, for the client, S1) turned out to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeScheme {
    /// Plain §5.2 handshake: zero version in C1 bytes 4..8, or no valid digest found.
    Simple,
    /// Digest handshake, key block first then digest block (digest block at bytes 772..1536).
    Digest0,
    /// Digest handshake, digest block first then key block (digest block at bytes 8..772).
    /// FFmpeg and librtmp send this one.
    Digest1,
}

impl HandshakeScheme {
    /// Start of the 764-byte digest block inside C1/S1, for the digest schemes.
    fn digest_block_start(self) -> Option<usize> {
        match self {
            HandshakeScheme::Simple => None,
            HandshakeScheme::Digest0 => Some(8 + BLOCK_LEN),
            HandshakeScheme::Digest1 => Some(8),
        }
    }
}

/// Why a handshake cannot go on. Every error is final: later `process` calls return it again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// C0/S0 asked for a version other than 3. 6, 8 and 9 are RTMPE (encrypted RTMP), whose
    /// stream after the handshake we could not read; 0..=2 are deprecated and 4..=31 reserved
    /// (§5.2.2).
    #[error("unsupported RTMP version {version} in C0/S0 (only 3 is supported)")]
    UnsupportedVersion {
        /// The version byte the peer sent.
        version: u8,
    },
    /// [`ClientHandshake::process`] was called before [`ClientHandshake::start`] sent C0+C1.
    #[error("client handshake processed before start() sent C0+C1")]
    NotStarted,
    /// The server's S1 carried a valid digest but its S2 signature does not match what our C1
    /// digest requires, i.e. the server is not doing the digest handshake correctly.
    #[error("S2 signature does not verify against our C1 digest ({scheme:?} S1)")]
    InvalidS2Signature {
        /// The scheme the server used for S1.
        scheme: HandshakeScheme,
    },
}

/// Progress of a handshake after a `process` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeState {
    /// More bytes from the peer are needed.
    InProgress,
    /// Handshake complete; any bytes still in `input` belong to the chunk stream.
    Done,
}

/// HMAC-SHA256 keyed with `key` over the concatenation of `parts`.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    let mut mac = new_mac(key);
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// An HMAC-SHA256 instance for a key of any length. RFC 2104 §2: a key longer than the
/// 64-byte block is first hashed, a shorter one is zero-padded. Doing that here lets us use the
/// infallible fixed-size constructor instead of a fallible one with an unreachable error.
fn new_mac(key: &[u8]) -> HmacSha256 {
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        let hashed: [u8; DIGEST_LEN] = Sha256::digest(key).into();
        block[..DIGEST_LEN].copy_from_slice(&hashed);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    <HmacSha256 as hmac::digest::KeyInit>::new(&block.into())
}

/// Offset of the 32-byte digest in C1/S1 for `scheme`: the first 4 bytes of the digest block,
/// summed, modulo 728 (= 764 - 4 - 32), placed after those 4 bytes. Always within 12..1504.
fn digest_offset(block: &[u8; HANDSHAKE_SIZE], scheme: HandshakeScheme) -> Option<usize> {
    let start = scheme.digest_block_start()?;
    let sum: usize = block
        .get(start..start + 4)?
        .iter()
        .map(|&b| usize::from(b))
        .sum();
    Some(start + 4 + sum % (BLOCK_LEN - 4 - DIGEST_LEN))
}

/// The C1/S1 digest for the digest at `offset`: HMAC over all bytes except the digest itself.
fn c1s1_digest(
    block: &[u8; HANDSHAKE_SIZE],
    offset: usize,
    key: &[u8],
) -> Option<[u8; DIGEST_LEN]> {
    let before = block.get(..offset)?;
    let after = block.get(offset + DIGEST_LEN..)?;
    Some(hmac_sha256(key, &[before, after]))
}

/// Looks for a valid C1/S1 digest in either scheme; returns the scheme and the digest.
fn find_digest(
    block: &[u8; HANDSHAKE_SIZE],
    key: &[u8],
) -> Option<(HandshakeScheme, [u8; DIGEST_LEN])> {
    [HandshakeScheme::Digest0, HandshakeScheme::Digest1]
        .into_iter()
        .find_map(|scheme| {
            let offset = digest_offset(block, scheme)?;
            let found = block.get(offset..offset + DIGEST_LEN)?;
            let expected = c1s1_digest(block, offset, key)?;
            (found == expected.as_slice()).then_some((scheme, expected))
        })
}

/// Writes the C1/S1 digest for `scheme` into `block` (whose other bytes are final) and returns it.
fn imprint_digest(
    block: &mut [u8; HANDSHAKE_SIZE],
    scheme: HandshakeScheme,
    key: &[u8],
) -> Option<[u8; DIGEST_LEN]> {
    let offset = digest_offset(block, scheme)?;
    let digest = c1s1_digest(block, offset, key)?;
    block
        .get_mut(offset..offset + DIGEST_LEN)?
        .copy_from_slice(&digest);
    Some(digest)
}

/// Signs a C2/S2: the last 32 bytes become HMAC(HMAC(signer full key, peer digest), first 1504).
fn sign_c2s2(block: &mut [u8; HANDSHAKE_SIZE], signer_key: &[u8], peer_digest: &[u8; DIGEST_LEN]) {
    let key = hmac_sha256(signer_key, &[peer_digest]);
    let (signed, signature) = block.split_at_mut(SIGNED_LEN);
    signature.copy_from_slice(&hmac_sha256(&key, &[signed]));
}

/// Checks a C2/S2 signature made as in [`sign_c2s2`], in constant time.
fn verify_c2s2(
    block: &[u8; HANDSHAKE_SIZE],
    signer_key: &[u8],
    peer_digest: &[u8; DIGEST_LEN],
) -> bool {
    let key = hmac_sha256(signer_key, &[peer_digest]);
    let (signed, signature) = block.split_at(SIGNED_LEN);
    let mut mac = new_mac(&key);
    mac.update(signed);
    mac.verify_slice(signature).is_ok()
}

/// A C1/S1 with time 0 (§5.2.3 allows any epoch; a sans-IO core has no clock), `version` in
/// bytes 4..8 and random bytes after.
fn random_c1s1(version: [u8; 4]) -> [u8; HANDSHAKE_SIZE] {
    let mut block = [0u8; HANDSHAKE_SIZE];
    rand::rng().fill_bytes(&mut block[8..]);
    block[4..8].copy_from_slice(&version);
    block
}

/// Moves one 1536-byte block off the front of `input`, if it is all there.
fn take_block(input: &mut BytesMut) -> Option<[u8; HANDSHAKE_SIZE]> {
    let block = <[u8; HANDSHAKE_SIZE]>::try_from(input.get(..HANDSHAKE_SIZE)?).ok()?;
    input.advance(HANDSHAKE_SIZE);
    Some(block)
}

/// Checks the C0/S0 byte at the front of `input`, if any; does not consume it.
fn check_version(input: &BytesMut) -> Result<(), HandshakeError> {
    match input.first() {
        Some(&version) if version != RTMP_VERSION => {
            Err(HandshakeError::UnsupportedVersion { version })
        }
        _ => Ok(()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerStage {
    AwaitC0C1,
    AwaitC2,
    Done,
}

/// Server side of the handshake: reads C0+C1, answers S0+S1+S2 at once, then reads C2.
///
/// Only version 3 is accepted in C0, as nginx-rtmp and SRS do: §5.2.2 suggests answering 3 to
/// an unknown version, but the versions seen in practice besides 3 are RTMPE (6, 8, 9), whose
/// client would go on encrypting the chunk stream, so answering would only postpone the failure.
///
/// C2 is read but not verified: clients fill it differently (FFmpeg and librtmp sign it, rtmp2
/// echoes S1, others echo with a changed time2), and neither nginx-rtmp nor SRS check it.
#[derive(Debug)]
pub struct ServerHandshake {
    stage: ServerStage,
    scheme: Option<HandshakeScheme>,
    client_version: Option<[u8; 4]>,
    failed: Option<HandshakeError>,
}

impl Default for ServerHandshake {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerHandshake {
    /// A server handshake waiting for C0+C1.
    pub fn new() -> Self {
        ServerHandshake {
            stage: ServerStage::AwaitC0C1,
            scheme: None,
            client_version: None,
            failed: None,
        }
    }

    /// Consumes what it needs from the front of `input`, appends bytes to send to `out`.
    /// Returns Done once C2 has been consumed; bytes left in `input` then belong to the chunk layer.
    pub fn process(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<HandshakeState, HandshakeError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let result = self.advance(input, out);
        if let Err(error) = &result {
            self.failed = Some(error.clone());
        }
        result
    }

    /// The scheme the client's C1 used, once C1 has been read.
    pub fn scheme(&self) -> Option<HandshakeScheme> {
        self.scheme
    }

    /// C1 bytes 4..8 once C1 has been read: zero for simple clients, else e.g. the Flash
    /// Player version the client claims (FFmpeg: 9.0.124.2).
    pub fn client_version(&self) -> Option<[u8; 4]> {
        self.client_version
    }

    fn advance(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<HandshakeState, HandshakeError> {
        loop {
            match self.stage {
                ServerStage::AwaitC0C1 => {
                    // Refuse a bad C0 as soon as it arrives, not 1536 bytes later.
                    check_version(input)?;
                    if input.len() < 1 + HANDSHAKE_SIZE {
                        return Ok(HandshakeState::InProgress);
                    }
                    input.advance(1);
                    let Some(c1) = take_block(input) else {
                        return Ok(HandshakeState::InProgress);
                    };
                    self.answer_c1(&c1, out);
                    self.stage = ServerStage::AwaitC2;
                }
                ServerStage::AwaitC2 => {
                    if take_block(input).is_none() {
                        return Ok(HandshakeState::InProgress);
                    }
                    self.stage = ServerStage::Done;
                }
                ServerStage::Done => return Ok(HandshakeState::Done),
            }
        }
    }

    /// Writes S0+S1+S2 for `c1`, in the client's scheme.
    fn answer_c1(&mut self, c1: &[u8; HANDSHAKE_SIZE], out: &mut BytesMut) {
        let mut version = [0u8; 4];
        version.copy_from_slice(&c1[4..8]);
        self.client_version = Some(version);

        // A zero version means a pre-Flash-Player-9 client (§5.2.3 "Zero: 4 bytes").
        let found = if version == [0; 4] {
            None
        } else {
            find_digest(c1, &GENUINE_FP_KEY[..GENUINE_FP_KEY_TEXT_LEN])
        };

        out.reserve(1 + 2 * HANDSHAKE_SIZE);
        out.put_u8(RTMP_VERSION);
        match found {
            Some((scheme, c1_digest)) => {
                self.scheme = Some(scheme);
                // S1 uses the client's scheme, as FMS and SRS do; clients accept either.
                let mut s1 = random_c1s1(SERVER_VERSION);
                let imprinted = imprint_digest(
                    &mut s1,
                    scheme,
                    &GENUINE_FMS_KEY[..GENUINE_FMS_KEY_TEXT_LEN],
                );
                debug_assert!(
                    imprinted.is_some(),
                    "digest offsets are in range by construction"
                );
                // S2 echoes C1 (§5.2.4) except for the signature in its last 32 bytes.
                let mut s2 = *c1;
                sign_c2s2(&mut s2, &GENUINE_FMS_KEY, &c1_digest);
                out.put_slice(&s1);
                out.put_slice(&s2);
            }
            None => {
                self.scheme = Some(HandshakeScheme::Simple);
                out.put_slice(&random_c1s1([0; 4]));
                // Verbatim echo: librtmp and rtmp2 compare S2 with the C1 they sent.
                out.put_slice(c1);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientStage {
    New,
    AwaitS0S1,
    AwaitS2,
    Done,
}

/// Client side of the handshake: sends C0+C1, answers C2 as soon as S1 is in (§5.2.1 lets the
/// client send C2 after S1), and finishes once S2 is read.
///
/// In digest mode, C1 carries a Flash-style digest (scheme [`HandshakeScheme::Digest1`], like
/// FFmpeg and librtmp). If S1 carries a valid server digest, C2 is signed and S2's signature
/// must verify; if it does not (a simple server), the client falls back to the simple
/// handshake. In simple mode, C2 echoes S1 and S2 is not checked (librtmp only warns on a
/// mismatch, and servers fill time2 differently).
#[derive(Debug)]
pub struct ClientHandshake {
    digest: bool,
    stage: ClientStage,
    /// Our C1 digest, in digest mode; it keys the expected S2 signature.
    c1_digest: Option<[u8; DIGEST_LEN]>,
    /// The scheme and digest of S1, when the server signed it.
    scheme: Option<HandshakeScheme>,
    failed: Option<HandshakeError>,
}

impl ClientHandshake {
    /// A client handshake; `digest = true` sends a Flash-style C1 with a digest (like FFmpeg and
    /// librtmp), `false` a plain §5.2.3 C1 with a zero version.
    pub fn new(digest: bool) -> Self {
        ClientHandshake {
            digest,
            stage: ClientStage::New,
            c1_digest: None,
            scheme: None,
            failed: None,
        }
    }

    /// Writes C0+C1 to `out`. Calling it again later writes nothing.
    pub fn start(&mut self, out: &mut BytesMut) {
        if self.stage != ClientStage::New {
            return;
        }
        let c1 = if self.digest {
            let mut c1 = random_c1s1(CLIENT_VERSION);
            self.c1_digest = imprint_digest(
                &mut c1,
                HandshakeScheme::Digest1,
                &GENUINE_FP_KEY[..GENUINE_FP_KEY_TEXT_LEN],
            );
            c1
        } else {
            random_c1s1([0; 4])
        };
        out.reserve(1 + HANDSHAKE_SIZE);
        out.put_u8(RTMP_VERSION);
        out.put_slice(&c1);
        self.stage = ClientStage::AwaitS0S1;
    }

    /// Consumes what it needs from the front of `input`, appends bytes to send (C2) to `out`.
    /// Returns Done once S2 has been consumed; bytes left in `input` then belong to the chunk layer.
    pub fn process(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<HandshakeState, HandshakeError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let result = self.advance(input, out);
        if let Err(error) = &result {
            self.failed = Some(error.clone());
        }
        result
    }

    /// The scheme the server's S1 used, once S1 has been read.
    pub fn scheme(&self) -> Option<HandshakeScheme> {
        self.scheme
    }

    fn advance(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<HandshakeState, HandshakeError> {
        loop {
            match self.stage {
                ClientStage::New => return Err(HandshakeError::NotStarted),
                ClientStage::AwaitS0S1 => {
                    check_version(input)?;
                    if input.len() < 1 + HANDSHAKE_SIZE {
                        return Ok(HandshakeState::InProgress);
                    }
                    input.advance(1);
                    let Some(s1) = take_block(input) else {
                        return Ok(HandshakeState::InProgress);
                    };
                    self.answer_s1(&s1, out);
                    self.stage = ClientStage::AwaitS2;
                }
                ClientStage::AwaitS2 => {
                    let Some(s2) = take_block(input) else {
                        return Ok(HandshakeState::InProgress);
                    };
                    if let (Some(scheme), Some(c1_digest)) = (self.scheme, self.c1_digest) {
                        if scheme != HandshakeScheme::Simple
                            && !verify_c2s2(&s2, &GENUINE_FMS_KEY, &c1_digest)
                        {
                            return Err(HandshakeError::InvalidS2Signature { scheme });
                        }
                    }
                    self.stage = ClientStage::Done;
                }
                ClientStage::Done => return Ok(HandshakeState::Done),
            }
        }
    }

    /// Writes C2 for `s1`.
    fn answer_s1(&mut self, s1: &[u8; HANDSHAKE_SIZE], out: &mut BytesMut) {
        let server_digest = if self.digest && s1[4..8] != [0; 4] {
            find_digest(s1, &GENUINE_FMS_KEY[..GENUINE_FMS_KEY_TEXT_LEN])
        } else {
            None
        };
        // C2 echoes S1 (§5.2.4); in the digest scheme its last 32 bytes are the signature.
        let mut c2 = *s1;
        match server_digest {
            Some((scheme, s1_digest)) => {
                self.scheme = Some(scheme);
                sign_c2s2(&mut c2, &GENUINE_FP_KEY, &s1_digest);
            }
            None => self.scheme = Some(HandshakeScheme::Simple),
        }
        out.put_slice(&c2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const FFMPEG: &[u8] = include_bytes!("../../tests/vectors/handshake/ffmpeg-c0c1.bin");
    const RTMPDUMP: &[u8] = include_bytes!("../../tests/vectors/handshake/rtmpdump-c0c1.bin");
    const RTMPDUMP_SWFHASH: &[u8] =
        include_bytes!("../../tests/vectors/handshake/rtmpdump-swfhash-c0c1.bin");
    const RTMPDUMP_RTMPE: &[u8] =
        include_bytes!("../../tests/vectors/handshake/rtmpdump-rtmpe-c0c1.bin");
    const GST_RTMP2SINK: &[u8] =
        include_bytes!("../../tests/vectors/handshake/gst-rtmp2sink-c0c1.bin");
    const GST_RTMPSINK: &[u8] =
        include_bytes!("../../tests/vectors/handshake/gst-rtmpsink-c0c1.bin");

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
        let c1_digest =
            ref_verify_digest(&c0c1[1..], 8, &GENUINE_FP_KEY[..30]).expect("our C1 digest");
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
}
