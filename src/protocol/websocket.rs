//! WebSocket (RFC 6455) for WebSocket-FLV players: the opening handshake's accept key, server
//! frames out, and a bounded frame decoder for what a client sends.
//!
//! The server only sends binary messages and control frames and ignores client data
//! messages, so the decoder returns frames, not reassembled messages; it still enforces the
//! fragmentation rules (§5.4) so that a broken client is told so with a Close.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use sha1::{Digest, Sha1};

/// §1.3: appended to the client's key before hashing.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Longest payload of a control frame (§5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (§4.2.2 item 5.4):
/// base64(SHA-1(key + GUID)).
pub fn accept_key(client_key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(client_key.as_bytes());
    sha.update(GUID.as_bytes());
    base64(&sha.finalize())
}

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Frame opcodes (§5.2); the others are reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    pub fn from_u8(op: u8) -> Option<Opcode> {
        Some(match op {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    pub fn as_u8(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// Control frames have the top opcode bit set (§5.5).
    pub fn is_control(self) -> bool {
        self.as_u8() & 0x8 != 0
    }
}

/// A frame header for a payload of `len` bytes (§5.2): 2, 4 or 10 bytes, in the first `.1`
/// bytes of `.0`. Unmasked: servers never mask (§5.1).
pub fn frame_header(opcode: Opcode, fin: bool, len: usize) -> ([u8; 10], usize) {
    header_bytes(opcode, fin, len, false)
}

fn header_bytes(opcode: Opcode, fin: bool, len: usize, masked: bool) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = (u8::from(fin) << 7) | opcode.as_u8();
    let mask_bit = u8::from(masked) << 7;
    let n = if len < 126 {
        h[1] = mask_bit | len as u8;
        2
    } else if len <= 0xFFFF {
        h[1] = mask_bit | 126;
        h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        h[1] = mask_bit | 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    (h, n)
}

/// One unmasked frame with FIN set: header + payload.
pub fn frame(opcode: Opcode, payload: &[u8]) -> Bytes {
    let (h, n) = frame_header(opcode, true, payload.len());
    let mut out = BytesMut::with_capacity(n + payload.len());
    out.put_slice(&h[..n]);
    out.put_slice(payload);
    out.freeze()
}

/// A Close frame (§5.5.1) with `code` and as much of `reason` as fits in 125 bytes, cut on a
/// character boundary.
pub fn close_frame(code: u16, reason: &str) -> Bytes {
    frame(Opcode::Close, &close_payload(code, reason))
}

fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut cut = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut payload = Vec::with_capacity(2 + cut);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..cut]);
    payload
}

/// A client's frame (masked, §5.3) for clients of our own (the load tool, tests).
pub fn client_frame(opcode: Opcode, fin: bool, payload: &[u8], mask: [u8; 4]) -> Bytes {
    let (h, n) = header_bytes(opcode, fin, payload.len(), true);
    let mut out = BytesMut::with_capacity(n + 4 + payload.len());
    out.put_slice(&h[..n]);
    out.put_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out.freeze()
}

/// A client's Close frame, masked.
pub fn client_close_frame(code: u16, reason: &str, mask: [u8; 4]) -> Bytes {
    client_frame(Opcode::Close, true, &close_payload(code, reason), mask)
}

/// One decoded frame, payload unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsFrame {
    pub fin: bool,
    pub opcode: Opcode,
    pub payload: Bytes,
}

impl WsFrame {
    /// A Close frame's status code and reason (§5.5.1); `None` for an empty payload (the
    /// decoder already refused malformed ones).
    pub fn close_reason(&self) -> Option<(u16, &str)> {
        if self.opcode != Opcode::Close || self.payload.len() < 2 {
            return None;
        }
        let code = u16::from_be_bytes([self.payload[0], self.payload[1]]);
        Some((code, std::str::from_utf8(&self.payload[2..]).unwrap_or("")))
    }
}

/// What a peer did wrong in its frames. Each ends the connection with a Close carrying
/// [`WsError::close_code`] (§7.1.7).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    #[error("an unmasked frame from the client (§5.1)")]
    Unmasked,
    #[error("a masked frame from the server (§5.1)")]
    Masked,
    #[error("RSV bits {bits:#x} set without a negotiated extension (§5.2)")]
    Reserved { bits: u8 },
    #[error("reserved opcode {opcode:#x} (§5.2)")]
    UnknownOpcode { opcode: u8 },
    #[error("a control frame with a {len}-byte payload (at most 125, §5.5)")]
    ControlTooLong { len: u64 },
    #[error("a fragmented control frame (§5.5)")]
    FragmentedControl,
    #[error("a 64-bit payload length with the top bit set (§5.2)")]
    LengthTopBit,
    #[error("a {len}-byte payload exceeds the limit of {limit}")]
    TooBig { len: u64, limit: usize },
    #[error("a continuation frame without a fragmented message in progress (§5.4)")]
    UnexpectedContinuation,
    #[error("a new data frame while a fragmented message is in progress (§5.4)")]
    Interleaved,
    #[error("a Close frame with a 1-byte payload (§5.5.1)")]
    CloseTooShort,
    #[error("a Close frame with status code {code}, which may not be sent (§7.4)")]
    BadCloseCode { code: u16 },
    #[error("a Close reason that is not UTF-8 (§5.5.1)")]
    BadCloseReason,
}

impl WsError {
    /// The status code for our Close frame (§7.4.1).
    pub fn close_code(&self) -> u16 {
        match self {
            WsError::TooBig { .. } => 1009,
            WsError::BadCloseReason => 1007,
            _ => 1002,
        }
    }
}

/// Whether a peer may send `code` in a Close frame (§7.4.1, §7.4.2).
fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Decodes frames from a byte stream. Bounded: a frame whose header declares more than
/// `max_payload` bytes is refused from the header alone, before its payload is buffered.
/// Errors are final: every later call returns the same error.
#[derive(Debug)]
pub struct FrameDecoder {
    max_payload: usize,
    /// Client frames must be masked; server frames must not be (§5.1).
    expect_masked: bool,
    /// A fragmented data message is open (a data frame without FIN came).
    in_message: bool,
    failed: Option<WsError>,
}

impl FrameDecoder {
    /// A server's decoder of client frames (masked).
    pub fn new(max_payload: usize) -> Self {
        FrameDecoder {
            max_payload,
            expect_masked: true,
            in_message: false,
            failed: None,
        }
    }

    /// A client's decoder of server frames (unmasked).
    pub fn for_client(max_payload: usize) -> Self {
        FrameDecoder {
            expect_masked: false,
            ..FrameDecoder::new(max_payload)
        }
    }

    /// The next frame from the front of `buf`, `Ok(None)` if it is not complete yet (its
    /// bytes stay in `buf`).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<WsFrame>, WsError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.decode_inner(buf);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    fn decode_inner(&mut self, buf: &mut BytesMut) -> Result<Option<WsFrame>, WsError> {
        let [b0, b1, ..] = buf[..] else {
            return Ok(None);
        };
        let fin = b0 & 0x80 != 0;
        let rsv = b0 & 0x70;
        if rsv != 0 {
            return Err(WsError::Reserved { bits: rsv >> 4 });
        }
        let opcode =
            Opcode::from_u8(b0 & 0x0F).ok_or(WsError::UnknownOpcode { opcode: b0 & 0x0F })?;
        let masked = b1 & 0x80 != 0;
        if masked != self.expect_masked {
            return Err(if masked {
                WsError::Masked
            } else {
                WsError::Unmasked
            });
        }
        let len7 = b1 & 0x7F;
        if opcode.is_control() {
            if len7 > 125 {
                return Err(WsError::ControlTooLong { len: len7.into() });
            }
            if !fin {
                return Err(WsError::FragmentedControl);
            }
        } else {
            match (opcode, self.in_message) {
                (Opcode::Continuation, false) => return Err(WsError::UnexpectedContinuation),
                (Opcode::Text | Opcode::Binary, true) => return Err(WsError::Interleaved),
                _ => {}
            }
        }
        let (len, ext) = match len7 {
            126 => match buf.get(2..4) {
                Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 2),
                None => return Ok(None),
            },
            127 => match buf.get(2..10) {
                Some(b) => {
                    let mut be = [0u8; 8];
                    be.copy_from_slice(b);
                    let len = u64::from_be_bytes(be);
                    if len >> 63 != 0 {
                        return Err(WsError::LengthTopBit);
                    }
                    (len, 8)
                }
                None => return Ok(None),
            },
            n => (u64::from(n), 0),
        };
        if len > self.max_payload as u64 {
            return Err(WsError::TooBig {
                len,
                limit: self.max_payload,
            });
        }
        let len = len as usize;
        let mask_len = if masked { 4 } else { 0 };
        let header_len = 2 + ext + mask_len;
        if buf.len() < header_len + len {
            buf.reserve(header_len + len - buf.len());
            return Ok(None);
        }
        let mut mask = [0u8; 4];
        if masked {
            mask.copy_from_slice(&buf[2 + ext..header_len]);
        }
        buf.advance(header_len);
        let mut payload = buf.split_to(len);
        if masked {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i % 4];
            }
        }
        let payload = payload.freeze();
        if opcode == Opcode::Close {
            check_close_payload(&payload)?;
        }
        if !opcode.is_control() {
            self.in_message = !fin;
        }
        Ok(Some(WsFrame {
            fin,
            opcode,
            payload,
        }))
    }
}

/// §5.5.1: empty, or a valid status code and a UTF-8 reason.
fn check_close_payload(payload: &[u8]) -> Result<(), WsError> {
    match payload {
        [] => Ok(()),
        [_] => Err(WsError::CloseTooShort),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !valid_close_code(code) {
                return Err(WsError::BadCloseCode { code });
            }
            std::str::from_utf8(reason).map_err(|_| WsError::BadCloseReason)?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
