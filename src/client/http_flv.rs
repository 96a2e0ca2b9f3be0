//! An HTTP-FLV and WebSocket-FLV player on tokio and the sans-IO core, for the load tool and
//! tests: `GET http://host:port/app/name.flv` (a chunked body, a `Content-Length` one or one
//! that ends at close) or the same path over a WebSocket (`ws://`), then FLV tags.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::ClientError;
use crate::protocol::flv::{FlvReader, FlvTag};
use crate::protocol::http::{parse_response_head, ChunkedDecoder, HeadLimits, ResponseHead};
use crate::protocol::websocket::{
    accept_key, base64, client_close_frame, client_frame, FrameDecoder, Opcode,
};

/// Largest FLV tag and WebSocket message accepted (RTMP's message length is 24-bit).
const MAX_TAG: usize = 16 * 1024 * 1024;
/// Default read size when none is configured.
const READ_SIZE: usize = 16 * 1024;

/// `http://host[:port]/path[?query]` or `ws://...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvUrl {
    pub host: String,
    pub port: u16,
    /// Path and query as sent in the request line.
    pub target: String,
    pub websocket: bool,
}

impl FlvUrl {
    /// Whether `url` is one for this client (`http://` or `ws://`).
    pub fn is_flv_url(url: &str) -> bool {
        let lower = url.get(..7).unwrap_or_default().to_ascii_lowercase();
        lower.starts_with("http://") || lower.starts_with("ws://")
    }

    pub fn parse(url: &str) -> Result<FlvUrl, ClientError> {
        let bad = |reason| ClientError::BadUrl {
            url: url.to_owned(),
            reason,
        };
        let (scheme, rest) = url.split_once("://").ok_or(bad("missing scheme://"))?;
        let websocket = if scheme.eq_ignore_ascii_case("http") {
            false
        } else if scheme.eq_ignore_ascii_case("ws") {
            true
        } else {
            return Err(bad("only http:// and ws:// play FLV"));
        };
        let slash = rest.find('/').ok_or(bad("missing /path"))?;
        let (authority, target) = rest.split_at(slash);
        if target.bytes().any(|b| !(0x21..=0x7E).contains(&b)) {
            return Err(bad(
                "the path holds spaces or non-ASCII bytes (percent-encode them)",
            ));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h, p.parse().map_err(|_| bad("bad port"))?)
            }
            _ => (authority, 80),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        Ok(FlvUrl {
            host: host.to_owned(),
            port,
            target: target.to_owned(),
            websocket,
        })
    }

    fn host_header(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for FlvUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.websocket { "ws" } else { "http" };
        write!(f, "{scheme}://{}{}", self.host_header(), self.target)
    }
}

/// How the response body is framed.
#[derive(Debug)]
enum Body {
    Chunked(ChunkedDecoder),
    Length(u64),
    UntilClose,
    WebSocket(FrameDecoder),
}

/// One HTTP-FLV or WebSocket-FLV player connection.
#[derive(Debug)]
pub struct FlvClient {
    stream: TcpStream,
    /// Bytes read and not yet de-framed.
    raw: BytesMut,
    body: Body,
    /// The FLV byte stream once de-framed.
    flv: BytesMut,
    reader: FlvReader,
    read_size: usize,
    /// The server's response head.
    pub response: ResponseHead,
    eof: bool,
}

impl FlvClient {
    /// TCP, the request (or the WebSocket opening handshake) and the response head, within
    /// `timeout`. A status other than 200 (101 for WebSocket) is [`ClientError::Http`].
    pub async fn connect(
        url: &FlvUrl,
        timeout: Duration,
        read_size: usize,
    ) -> Result<FlvClient, ClientError> {
        let after = timeout;
        tokio::time::timeout(timeout, Self::connect_inner(url, read_size))
            .await
            .map_err(|_| ClientError::Timeout {
                what: "HTTP response",
                after,
            })?
    }

    async fn connect_inner(url: &FlvUrl, read_size: usize) -> Result<FlvClient, ClientError> {
        let mut stream = TcpStream::connect((url.host.as_str(), url.port)).await?;
        stream.set_nodelay(true)?;
        let key = base64(&rand::random::<[u8; 16]>());
        let mut request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: reflector-load\r\nAccept: */*\r\n",
            url.target,
            url.host_header()
        );
        if url.websocket {
            request.push_str(&format!(
                "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n\
                 Sec-WebSocket-Version: 13\r\n"
            ));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = BytesMut::with_capacity(READ_SIZE);
        let limits = HeadLimits {
            max_bytes: 16 * 1024,
            max_headers: 100,
        };
        let (response, used) = loop {
            if let Some(done) = parse_response_head(&raw, &limits)? {
                break done;
            }
            if stream.read_buf(&mut raw).await? == 0 {
                return Err(ClientError::Closed);
            }
        };
        let _ = raw.split_to(used);
        let expected = if url.websocket { 101 } else { 200 };
        if response.status != expected {
            return Err(ClientError::Http {
                status: response.status,
                reason: response.reason.clone(),
            });
        }
        let body = if url.websocket {
            let accept = response.header("sec-websocket-accept");
            if accept != Some(accept_key(&key).as_str()) {
                return Err(ClientError::UnexpectedReply {
                    command: "WebSocket upgrade".to_owned(),
                    reason: "wrong or missing Sec-WebSocket-Accept",
                });
            }
            Body::WebSocket(FrameDecoder::for_client(MAX_TAG + 64))
        } else if response.has_token("transfer-encoding", "chunked") {
            Body::Chunked(ChunkedDecoder::new())
        } else if let Some(len) = response.header("content-length") {
            Body::Length(len.parse().map_err(|_| ClientError::UnexpectedReply {
                command: "GET".to_owned(),
                reason: "bad Content-Length",
            })?)
        } else {
            Body::UntilClose
        };
        Ok(FlvClient {
            stream,
            raw,
            body,
            flv: BytesMut::with_capacity(READ_SIZE),
            reader: FlvReader::new(MAX_TAG),
            read_size: if read_size == 0 { READ_SIZE } else { read_size },
            response,
            eof: false,
        })
    }

    /// The FLV header's (audio, video) flags, once read.
    pub fn header(&self) -> Option<(bool, bool)> {
        self.reader.header()
    }

    /// The next FLV tag; [`ClientError::Closed`] when the stream ended.
    pub async fn next_tag(&mut self) -> Result<FlvTag, ClientError> {
        loop {
            if let Some(tag) = self.reader.read(&mut self.flv)? {
                return Ok(tag);
            }
            if self.deframe().await? {
                continue;
            }
            if self.eof {
                return Err(ClientError::Closed);
            }
            self.raw.reserve(self.read_size);
            let n = (&mut self.stream)
                .take(self.read_size as u64)
                .read_buf(&mut self.raw)
                .await?;
            if n == 0 {
                self.eof = true;
            }
        }
    }

    /// Move de-framed body bytes from `raw` to `flv`; true if any moved. Answers pings and
    /// closes of a WebSocket.
    async fn deframe(&mut self) -> Result<bool, ClientError> {
        let mut moved = false;
        match &mut self.body {
            Body::Chunked(d) => {
                while let Some(piece) = d.decode(&mut self.raw)? {
                    self.flv.extend_from_slice(&piece);
                    moved = true;
                }
                if d.is_done() {
                    self.eof = true;
                }
            }
            Body::Length(left) => {
                let n = self
                    .raw
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                if n > 0 {
                    self.flv.extend_from_slice(&self.raw.split_to(n));
                    *left -= n as u64;
                    moved = true;
                }
                if *left == 0 {
                    self.eof = true;
                }
            }
            Body::UntilClose => {
                if !self.raw.is_empty() {
                    moved = true;
                    if self.flv.is_empty() {
                        std::mem::swap(&mut self.flv, &mut self.raw);
                    } else {
                        self.flv.extend_from_slice(&self.raw.split());
                    }
                }
            }
            Body::WebSocket(d) => {
                while let Some(frame) = d.decode(&mut self.raw)? {
                    match frame.opcode {
                        Opcode::Binary | Opcode::Continuation | Opcode::Text => {
                            self.flv.extend_from_slice(&frame.payload);
                            moved = true;
                        }
                        Opcode::Ping => {
                            let pong =
                                client_frame(Opcode::Pong, true, &frame.payload, rand::random());
                            self.stream.write_all(&pong).await?;
                        }
                        Opcode::Pong => {}
                        Opcode::Close => {
                            let (code, reason) = frame.close_reason().unwrap_or((1005, ""));
                            let echo = if code == 1005 { 1000 } else { code };
                            let _ = self
                                .stream
                                .write_all(&client_close_frame(echo, "", rand::random()))
                                .await;
                            self.eof = true;
                            if code != 1000 && code != 1005 {
                                return Err(ClientError::Status {
                                    code: format!("WebSocket close {code}"),
                                    description: reason.to_owned(),
                                });
                            }
                            return Ok(moved);
                        }
                    }
                }
            }
        }
        Ok(moved)
    }

    /// End the session: a WebSocket Close (1000, masked) or just the TCP close.
    pub async fn close(mut self) {
        if matches!(self.body, Body::WebSocket(_)) && !self.eof {
            let _ = self
                .stream
                .write_all(&client_close_frame(1000, "", rand::random()))
                .await;
        }
        let _ = self.stream.shutdown().await;
    }

    /// Bytes the server sent that were not read yet (for tests).
    pub fn unread(&self) -> Bytes {
        Bytes::copy_from_slice(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_play_urls() {
        let u = FlvUrl::parse("http://127.0.0.1:8080/live/a.flv?key=x").unwrap();
        assert_eq!(
            u,
            FlvUrl {
                host: "127.0.0.1".into(),
                port: 8080,
                target: "/live/a.flv?key=x".into(),
                websocket: false
            }
        );
        assert_eq!(u.to_string(), "http://127.0.0.1:8080/live/a.flv?key=x");
        let w = FlvUrl::parse("WS://[::1]:81/live/b.flv").unwrap();
        assert_eq!((w.host.as_str(), w.port, w.websocket), ("::1", 81, true));
        assert_eq!(w.to_string(), "ws://[::1]:81/live/b.flv");
        assert_eq!(FlvUrl::parse("http://h/x.flv").unwrap().port, 80);
        for bad in [
            "rtmp://h/a/b",
            "http://h",
            "http://:1/a",
            "http://h:x/a",
            "http://h/a b",
        ] {
            assert!(FlvUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(FlvUrl::is_flv_url("http://x/a.flv") && FlvUrl::is_flv_url("ws://x/a.flv"));
        assert!(!FlvUrl::is_flv_url("rtmp://x/a/b"));
    }
}
