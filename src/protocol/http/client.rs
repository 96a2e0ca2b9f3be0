//! The client's side of HTTP/1.1 (RFC 9112) for our own HTTP-FLV players (the load tool,
//! tests): a response head and the chunked transfer coding of the body.

use bytes::{Buf, Bytes, BytesMut};

use super::{find_line_end, parse_field, HeadLimits, HttpError};

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub minor_version: u8,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// The first field named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether a field named `name` lists `token` (comma-separated, case-insensitive).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim_matches([' ', '\t']).eq_ignore_ascii_case(token))
    }
}

/// Parse a response head (`HTTP/1.x SP status SP reason`, §4) from the start of `buf`, as
/// [`super::parse_request_head`] does requests: `Ok(None)` until the blank line, errors at
/// the first bad line or beyond `max_bytes`.
pub fn parse_response_head(
    buf: &[u8],
    limits: &HeadLimits,
) -> Result<Option<(ResponseHead, usize)>, HttpError> {
    let window = &buf[..buf.len().min(limits.max_bytes)];
    let too_large = || HttpError::HeadTooLarge {
        limit: limits.max_bytes,
    };
    let Some(end) = find_line_end(window, 0)? else {
        return if buf.len() > limits.max_bytes {
            Err(too_large())
        } else {
            Ok(None)
        };
    };
    let (minor_version, status, reason) = parse_status_line(&window[..end])?;
    let mut pos = end + 2;
    let mut headers = Vec::new();
    loop {
        let Some(end) = find_line_end(window, pos)? else {
            return if buf.len() > limits.max_bytes {
                Err(too_large())
            } else {
                Ok(None)
            };
        };
        let line = &window[pos..end];
        pos = end + 2;
        if line.is_empty() {
            break;
        }
        if headers.len() == limits.max_headers {
            return Err(HttpError::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        headers.push(parse_field(line)?);
    }
    let head = ResponseHead {
        minor_version,
        status,
        reason,
        headers,
    };
    Ok(Some((head, pos)))
}

fn parse_status_line(line: &[u8]) -> Result<(u8, u16, String), HttpError> {
    let bad = |reason| HttpError::BadRequestLine { reason };
    let minor = match line.get(..9) {
        Some(b"HTTP/1.1 ") => 1,
        Some(b"HTTP/1.0 ") => 0,
        _ => return Err(bad("the status line does not start with HTTP/1.x")),
    };
    let code = line.get(9..12).ok_or(bad("no status code"))?;
    if !code.iter().all(u8::is_ascii_digit) || line.get(12).is_some_and(|&b| b != b' ') {
        return Err(bad("the status code is not three digits"));
    }
    let status = code.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    let reason = line.get(13..).unwrap_or_default();
    if reason
        .iter()
        .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7F)
    {
        return Err(bad("a control character in the reason phrase"));
    }
    Ok((minor, status, String::from_utf8_lossy(reason).into_owned()))
}

/// Longest chunk-size line (size, extensions) and trailer section accepted.
const MAX_CHUNK_LINE: usize = 1024;
const MAX_TRAILERS: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data { left: u64 },
    DataEnd,
    Trailers { seen: usize },
    Done,
}

/// Decodes the chunked transfer coding (§7.1) incrementally. Bounded: size lines and trailers
/// have limits, chunk data is handed out as it arrives (never buffered whole).
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: ChunkState,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder {
            state: ChunkState::Size,
        }
    }

    /// The last chunk and the trailer section were read: the body is complete.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// The next piece of body data from the front of `buf`; `Ok(None)` when more bytes are
    /// needed or the body is complete ([`ChunkedDecoder::is_done`]).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, HttpError> {
        let bad = |reason| HttpError::BadFraming { reason };
        loop {
            match self.state {
                ChunkState::Done => return Ok(None),
                ChunkState::Size => {
                    let Some(end) = find_line_end(&buf[..buf.len().min(MAX_CHUNK_LINE)], 0)? else {
                        if buf.len() > MAX_CHUNK_LINE {
                            return Err(bad("chunk-size line too long"));
                        }
                        return Ok(None);
                    };
                    let line = &buf[..end];
                    let hex_len = line
                        .iter()
                        .position(|b| !b.is_ascii_hexdigit())
                        .unwrap_or(line.len());
                    // chunk-ext (§7.1.1) is ignored; it must start with BWS ';'.
                    let rest = &line[hex_len..];
                    let ext_ok = rest.is_empty()
                        || rest
                            .iter()
                            .find(|&&b| b != b' ' && b != b'\t')
                            .is_some_and(|&b| b == b';');
                    if hex_len == 0 || hex_len > 15 || !ext_ok {
                        return Err(bad("invalid chunk-size line"));
                    }
                    let size = line[..hex_len].iter().fold(0u64, |n, &d| {
                        n * 16 + u64::from((d as char).to_digit(16).unwrap_or(0))
                    });
                    buf.advance(end + 2);
                    self.state = if size == 0 {
                        ChunkState::Trailers { seen: 0 }
                    } else {
                        ChunkState::Data { left: size }
                    };
                }
                ChunkState::Data { left } => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data { left }
                    };
                    return Ok(Some(buf.split_to(n).freeze()));
                }
                ChunkState::DataEnd => {
                    let Some(crlf) = buf.get(..2) else {
                        return Ok(None);
                    };
                    if crlf != b"\r\n" {
                        return Err(bad("chunk data not followed by CRLF"));
                    }
                    buf.advance(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers { seen } => {
                    let Some(end) = find_line_end(&buf[..buf.len().min(MAX_TRAILERS)], 0)? else {
                        if seen + buf.len() > MAX_TRAILERS {
                            return Err(bad("trailer section too large"));
                        }
                        return Ok(None);
                    };
                    buf.advance(end + 2);
                    self.state = if end == 0 {
                        ChunkState::Done
                    } else if seen + end + 2 > MAX_TRAILERS {
                        return Err(bad("trailer section too large"));
                    } else {
                        ChunkState::Trailers {
                            seen: seen + end + 2,
                        }
                    };
                }
            }
        }
    }
}
