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
mod tests;
