//! HTTP/1.1 request heads (RFC 9112) for the HTTP-FLV listener: a strict parser of what a
//! player sends, and the few response heads the server writes.
//!
//! Strict on purpose: the listener is public and only serves `GET`/`HEAD`/`OPTIONS` of a
//! stream, so anything ambiguous (obs-fold, bare LF, duplicate `Content-Length`, a body on a
//! `GET`) is refused rather than guessed at (RFC 9112 §11.2, request smuggling).

use bytes::{BufMut, Bytes, BytesMut};

/// Bounds on one request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Largest head, request line to the blank line included (431 beyond; 414 when the
    /// request line alone does not fit).
    pub max_bytes: usize,
    /// Most header fields (431 beyond).
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_bytes: 8192,
            max_headers: 64,
        }
    }
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method token, as sent (methods are case-sensitive, RFC 9110 §9.1).
    pub method: String,
    /// The target's path, percent-decoded, without the query; `*` for `OPTIONS *`.
    /// Dot segments are kept as sent (not normalised).
    pub path: String,
    /// The raw query after `?` (not decoded; see [`RequestHead::query_param`]).
    pub query: Option<String>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Header fields in order, names as sent, values without surrounding whitespace.
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    /// The first field named `name` (case-insensitive, RFC 9110 §5.1).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether any field named `name` lists `token` in its comma-separated value
    /// (RFC 9110 §5.6.1), case-insensitive: `Connection: keep-alive, Upgrade`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim_matches([' ', '\t']).eq_ignore_ascii_case(token))
    }

    /// Whether the client asks to switch to WebSocket at all (`Upgrade: websocket`), valid
    /// or not; [`RequestHead::websocket_key`] then says whether the handshake is acceptable.
    pub fn asks_websocket(&self) -> bool {
        self.has_token("upgrade", "websocket")
    }

    /// A complete, valid WebSocket opening handshake (RFC 6455 §4.2.1): `GET`, HTTP/1.1,
    /// `Upgrade: websocket`, `Connection: upgrade`, a well-formed `Sec-WebSocket-Key` and
    /// `Sec-WebSocket-Version: 13`.
    pub fn is_websocket_upgrade(&self) -> bool {
        matches!(self.websocket_key(), Ok(Some(_)))
    }

    /// The checks of [`RequestHead::is_websocket_upgrade`] with the reason for a refusal:
    /// `Ok(None)` when the client does not ask for WebSocket, `Ok(Some(key))` for a valid
    /// handshake, else the error to answer with (400, or 426 with
    /// `Sec-WebSocket-Version: 13` for another version, §4.4).
    pub fn websocket_key(&self) -> Result<Option<&str>, HttpError> {
        if !self.asks_websocket() {
            return Ok(None);
        }
        let bad = |reason| Err(HttpError::BadWebSocketHandshake { reason });
        if self.method != "GET" {
            return bad("the opening handshake must be a GET");
        }
        if self.minor_version < 1 {
            return bad("the opening handshake needs HTTP/1.1");
        }
        if !self.has_token("connection", "upgrade") {
            return bad("Connection does not list upgrade");
        }
        let Some(key) = self.header("sec-websocket-key") else {
            return bad("no Sec-WebSocket-Key");
        };
        // §4.1: a base64-encoded 16-byte nonce: 22 base64 characters and "==".
        let valid_key = key.len() == 24
            && key.ends_with("==")
            && key.as_bytes()[..22]
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
        if !valid_key {
            return bad("Sec-WebSocket-Key is not a base64-encoded 16-byte value");
        }
        match self.header("sec-websocket-version") {
            Some("13") => Ok(Some(key)),
            Some(_) => Err(HttpError::WebSocketVersion),
            None => bad("no Sec-WebSocket-Version"),
        }
    }

    /// The first query parameter named `name` (both sides form-decoded: `%XX`, `+` = space).
    /// Pairs that do not decode are skipped.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = percent_decode(k, true).ok()?;
            if k != name {
                return None;
            }
            percent_decode(v, true).ok()
        })
    }
}

/// What is wrong with a request head. Each variant has the status to answer with; after any
/// of them the server answers and closes (the framing can no longer be trusted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("malformed request line: {reason}")]
    BadRequestLine { reason: &'static str },
    #[error("malformed request target: {reason}")]
    BadTarget { reason: &'static str },
    #[error("malformed header field: {reason}")]
    BadHeader { reason: &'static str },
    #[error("a line ends in a bare LF (CRLF required)")]
    BareLf,
    #[error("obsolete line folding in a header field")]
    ObsFold,
    #[error("invalid or conflicting message framing: {reason}")]
    BadFraming { reason: &'static str },
    #[error("a {method} request carries a body")]
    BodyNotAllowed { method: &'static str },
    #[error("HTTP/1.1 request without exactly one Host header")]
    BadHost,
    #[error("request line longer than the head limit of {limit} bytes")]
    TargetTooLong { limit: usize },
    #[error("request head larger than {limit} bytes")]
    HeadTooLarge { limit: usize },
    #[error("more than {limit} header fields")]
    TooManyHeaders { limit: usize },
    #[error("unsupported transfer coding")]
    UnsupportedTransferEncoding,
    #[error("unsupported HTTP version")]
    UnsupportedVersion,
    #[error("bad WebSocket opening handshake: {reason}")]
    BadWebSocketHandshake { reason: &'static str },
    #[error("unsupported Sec-WebSocket-Version (13 only)")]
    WebSocketVersion,
}

impl HttpError {
    /// The response status for this error.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::TargetTooLong { .. } => 414,
            HttpError::HeadTooLarge { .. } | HttpError::TooManyHeaders { .. } => 431,
            HttpError::UnsupportedTransferEncoding => 501,
            HttpError::UnsupportedVersion => 505,
            // RFC 6455 §4.4: 426 Upgrade Required with the versions we speak.
            HttpError::WebSocketVersion => 426,
            _ => 400,
        }
    }
}

/// Parse one request head from the start of `buf`.
///
/// `Ok(None)`: incomplete, read more and call again with the grown buffer. `Ok(Some((head,
/// n)))`: the head took the first `n` bytes (a body, if any, follows). Errors as soon as the
/// bytes so far are certain to be refused: 414 if `buf` outgrows `max_bytes` inside the
/// request line, 431 if it does so later, 400 at the first malformed byte of a complete line.
pub fn parse_request_head(
    buf: &[u8],
    limits: &HeadLimits,
) -> Result<Option<(RequestHead, usize)>, HttpError> {
    // §2.2: a server SHOULD ignore at least one empty line before the request line.
    let mut pos = 0;
    while buf[pos..].starts_with(b"\r\n") && pos < 4 {
        pos += 2;
    }
    let window = &buf[..buf.len().min(limits.max_bytes)];
    let too_long = |in_request_line: bool| {
        let limit = limits.max_bytes;
        if in_request_line {
            HttpError::TargetTooLong { limit }
        } else {
            HttpError::HeadTooLarge { limit }
        }
    };
    let Some(end) = find_line_end(window, pos)? else {
        return if buf.len() > limits.max_bytes {
            Err(too_long(true))
        } else {
            Ok(None)
        };
    };
    let (method, target, minor_version) = parse_request_line(&window[pos..end])?;
    pos = end + 2;
    let mut headers: Vec<(String, String)> = Vec::new();
    loop {
        let Some(end) = find_line_end(window, pos)? else {
            return if buf.len() > limits.max_bytes {
                Err(too_long(false))
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
    let (path, query) = parse_target(target)?;
    let head = RequestHead {
        method: method.to_owned(),
        path,
        query,
        minor_version,
        headers,
    };
    check_framing(&head)?;
    Ok(Some((head, pos)))
}

/// The index of the CR of the next CRLF at or after `from`, `None` if none yet.
pub(crate) fn find_line_end(buf: &[u8], from: usize) -> Result<Option<usize>, HttpError> {
    for (i, &b) in buf.iter().enumerate().skip(from) {
        if b == b'\n' {
            // §2.2 allows accepting a bare LF; we never do, so every line ends the same way.
            if i == 0 || buf[i - 1] != b'\r' {
                return Err(HttpError::BareLf);
            }
            return Ok(Some(i - 1));
        }
    }
    Ok(None)
}

/// tchar (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `method SP request-target SP HTTP-version` (§3), single spaces only.
fn parse_request_line(line: &[u8]) -> Result<(&str, &str, u8), HttpError> {
    let bad = |reason| HttpError::BadRequestLine { reason };
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("not three fields separated by single spaces"));
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(bad("the method is not a token"));
    }
    if target.is_empty() || !target.iter().all(|b| (0x21..=0x7E).contains(b)) {
        return Err(bad(
            "the target is empty or holds a byte outside visible ASCII",
        ));
    }
    let minor = match version {
        b"HTTP/1.1" => 1,
        b"HTTP/1.0" => 0,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(HttpError::UnsupportedVersion)
        }
        _ => return Err(bad("the version is not HTTP/x.y")),
    };
    // Every byte was checked to be ASCII.
    let method = std::str::from_utf8(method).map_err(|_| bad("not ASCII"))?;
    let target = std::str::from_utf8(target).map_err(|_| bad("not ASCII"))?;
    Ok((method, target, minor))
}

/// `field-name ":" OWS field-value OWS` (§5), no whitespace before the colon, no obs-fold.
pub(crate) fn parse_field(line: &[u8]) -> Result<(String, String), HttpError> {
    let bad = |reason| HttpError::BadHeader { reason };
    if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
        // §5.2: obs-fold (or whitespace before the first field, §2.2): refuse.
        return Err(HttpError::ObsFold);
    }
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(bad("no colon"))?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(bad("the name is not a token"));
    }
    let value = trim_ows(&line[colon + 1..]);
    // field-vchar = VCHAR / obs-text, with SP/HTAB inside (§5.5); CR, LF, NUL, other CTLs: no.
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7F) {
        return Err(bad("a control character in the value"));
    }
    let name = String::from_utf8_lossy(name).into_owned();
    let value = String::from_utf8_lossy(value).into_owned();
    Ok((name, value))
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// origin-form `/path?query`, absolute-form `http://authority/path?query` (§3.2.2: take the
/// path), or `*` (§3.2.4). authority-form is only for CONNECT, which we do not serve.
fn parse_target(target: &str) -> Result<(String, Option<String>), HttpError> {
    let bad = |reason| HttpError::BadTarget { reason };
    if target == "*" {
        return Ok(("*".to_owned(), None));
    }
    if target.contains('#') {
        return Err(bad("a fragment in the target"));
    }
    let origin = if target.starts_with('/') {
        target
    } else if target.len() > 7 && target[..7].eq_ignore_ascii_case("http://") {
        let rest = &target[7..];
        let slash = rest
            .find(['/', '?'])
            .ok_or(bad("absolute-form without a path"))?;
        if slash == 0 {
            return Err(bad("absolute-form without a host"));
        }
        if !rest[slash..].starts_with('/') {
            return Err(bad("absolute-form without a path"));
        }
        &rest[slash..]
    } else {
        return Err(bad("neither origin-form nor http absolute-form"));
    };
    let (raw_path, query) = match origin.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned())),
        None => (origin, None),
    };
    let path = percent_decode(raw_path, false)?;
    Ok((path, query))
}

/// `%XX`-decode `s` (and `+` to a space in form data). Invalid escapes, invalid UTF-8 and
/// NUL are refused: a decoded name must mean one thing.
pub fn percent_decode(s: &str, plus_is_space: bool) -> Result<String, HttpError> {
    let bad = |reason| HttpError::BadTarget { reason };
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                let (Some(hi), Some(lo)) = (
                    bytes.get(i + 1).and_then(|&b| hex(b)),
                    bytes.get(i + 2).and_then(|&b| hex(b)),
                ) else {
                    return Err(bad("a % not followed by two hex digits"));
                };
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    if out.contains(&0) {
        return Err(bad("a NUL after percent-decoding"));
    }
    String::from_utf8(out).map_err(|_| bad("invalid UTF-8 after percent-decoding"))
}

/// Message framing of a request we serve (§6): no body on GET/HEAD/OPTIONS, one
/// Content-Length, no Transfer-Encoding beside it, a Host on HTTP/1.1.
fn check_framing(head: &RequestHead) -> Result<(), HttpError> {
    let bad = |reason| HttpError::BadFraming { reason };
    let hosts = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("host"))
        .count();
    // RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host or with more than one.
    if (head.minor_version == 1 && hosts != 1) || hosts > 1 {
        return Err(HttpError::BadHost);
    }
    let mut lengths = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"));
    let length = match (lengths.next(), lengths.next()) {
        (None, _) => None,
        (Some(_), Some(_)) => return Err(bad("more than one Content-Length")),
        (Some((_, v)), None) => {
            if v.is_empty() || v.len() > 18 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("Content-Length is not a decimal number"));
            }
            Some(v.parse::<u64>().map_err(|_| bad("Content-Length"))?)
        }
    };
    let encodings: Vec<&str> = head
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .map(|(_, v)| v.as_str())
        .collect();
    let bodiless = match head.method.as_str() {
        "GET" => Some("GET"),
        "HEAD" => Some("HEAD"),
        "OPTIONS" => Some("OPTIONS"),
        _ => None,
    };
    if !encodings.is_empty() {
        if length.is_some() {
            // §6.1: both is a smuggling attempt; the connection must be closed.
            return Err(bad("both Transfer-Encoding and Content-Length"));
        }
        if head.minor_version == 0 {
            return Err(bad("Transfer-Encoding in an HTTP/1.0 request"));
        }
        // §6.1: 501 for a transfer coding we do not understand; chunked is the only one.
        let only_chunked = encodings
            .iter()
            .flat_map(|v| v.split(','))
            .map(|t| t.trim_matches([' ', '\t']))
            .all(|t| t.eq_ignore_ascii_case("chunked"));
        if !only_chunked {
            return Err(HttpError::UnsupportedTransferEncoding);
        }
        if let Some(method) = bodiless {
            return Err(HttpError::BodyNotAllowed { method });
        }
    }
    if let (Some(method), Some(n)) = (bodiless, length) {
        if n > 0 {
            return Err(HttpError::BodyNotAllowed { method });
        }
    }
    Ok(())
}

/// The reason phrase for the statuses the listener sends (RFC 9110 §15).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Whether a header name/value may go on the wire (no CR, LF or NUL: response splitting).
fn safe_field(name: &str, value: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(is_tchar)
        && !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

/// `HTTP/1.1 {status} {reason}` CRLF, the header fields, CRLF. A field with CR, LF or NUL
/// is a bug in the caller (debug assertion) and is left out in release builds.
pub fn response_head(status: u16, headers: &[(&str, &str)]) -> Bytes {
    let mut out = BytesMut::with_capacity(
        32 + headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum::<usize>(),
    );
    out.put_slice(format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status)).as_bytes());
    for (name, value) in headers {
        debug_assert!(safe_field(name, value), "unsafe header {name:?}: {value:?}");
        if !safe_field(name, value) {
            continue;
        }
        out.put_slice(name.as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
    out.freeze()
}

/// A complete small answer: `text/plain` body, its `Content-Length`, `Connection: close` and
/// the `extra` fields (e.g. `Allow` on a 405). 1xx, 204 and 304 answers have no content and
/// no `Content-Length` (RFC 9110 §8.6, §15.3.5), so `body` is left out for them.
pub fn plain_response(status: u16, body: &str, extra: &[(&str, &str)]) -> Bytes {
    let bodiless = status < 200 || status == 204 || status == 304;
    let body = if bodiless { "" } else { body };
    let len = body.len().to_string();
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(3 + extra.len());
    if !bodiless {
        headers.push(("Content-Type", "text/plain; charset=utf-8"));
        headers.push(("Content-Length", &len));
    }
    headers.push(("Connection", "close"));
    headers.extend_from_slice(extra);
    let head = response_head(status, &headers);
    let mut out = BytesMut::with_capacity(head.len() + body.len());
    out.put_slice(&head);
    out.put_slice(body.as_bytes());
    out.freeze()
}

mod client;
pub use client::{parse_response_head, ChunkedDecoder, ResponseHead};

/// The parts of an authority (a Host value, or an origin without its scheme): `name`,
/// `name:port`, `[v6]` or `[v6]:port` (RFC 3986 §3.2.2-3). `None` when malformed: an empty
/// name, a port that is not a number up to 65535, junk after the brackets.
pub fn authority_parts(authority: &str) -> Option<(&str, Option<u16>)> {
    let (name, port) = if authority.starts_with('[') {
        let end = authority.find(']')? + 1;
        let rest = &authority[end..];
        match rest.strip_prefix(':') {
            Some(port) => (&authority[..end], Some(port)),
            None if rest.is_empty() => (&authority[..end], None),
            None => return None,
        }
    } else {
        match authority.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    (!name.is_empty()).then_some((name, port))
}

/// The name and port of a web origin (`scheme://host[:port]`, RFC 6454), the port filled in
/// for `http` (80) and `https` (443); `None` for `null`, other schemes and malformed ones.
pub fn origin_parts(origin: &str) -> Option<(&str, u16)> {
    let (authority, default_port) = if let Some(a) = strip_prefix_ignore_case(origin, "http://") {
        (a, 80)
    } else {
        (strip_prefix_ignore_case(origin, "https://")?, 443)
    };
    let (name, port) = authority_parts(authority)?;
    Some((name, port.unwrap_or(default_port)))
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests;
