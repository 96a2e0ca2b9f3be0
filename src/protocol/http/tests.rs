use bytes::BytesMut;
use proptest::prelude::*;

use super::*;

fn parse(s: &str) -> Result<Option<(RequestHead, usize)>, HttpError> {
    parse_request_head(s.as_bytes(), &HeadLimits::default())
}

fn head(s: &str) -> RequestHead {
    let (head, used) = parse(s).expect("valid").expect("complete");
    assert_eq!(used, s.len());
    head
}

fn status(s: &str) -> u16 {
    match parse(s) {
        Err(e) => e.status(),
        Ok(r) => panic!("{s:?} parsed: {r:?}"),
    }
}

const PLAYER: &str = "GET /live/cam%201.flv?key=a%2Bb+c&x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
    User-Agent: flv.js\r\nConnection: keep-alive, Upgrade\r\nAccept:  */* \r\n\r\n";

#[test]
fn parses_a_player_request() {
    let h = head(PLAYER);
    assert_eq!(h.method, "GET");
    assert_eq!(h.path, "/live/cam 1.flv");
    assert_eq!(h.query.as_deref(), Some("key=a%2Bb+c&x"));
    assert_eq!(h.minor_version, 1);
    assert_eq!(h.headers.len(), 4);
    assert_eq!(h.header("HOST"), Some("127.0.0.1:8080"));
    assert_eq!(h.header("accept"), Some("*/*"));
    assert!(h.has_token("connection", "upgrade"));
    assert!(h.has_token("Connection", "KEEP-ALIVE"));
    assert!(!h.has_token("connection", "close"));
    assert_eq!(h.query_param("key").as_deref(), Some("a+b c"));
    assert_eq!(h.query_param("x").as_deref(), Some(""));
    assert_eq!(h.query_param("y"), None);
    assert!(!h.asks_websocket());
    assert_eq!(h.websocket_key(), Ok(None));
}

#[test]
fn incomplete_heads_ask_for_more_at_every_cut() {
    for cut in 0..PLAYER.len() {
        assert_eq!(
            parse_request_head(&PLAYER.as_bytes()[..cut], &HeadLimits::default()),
            Ok(None),
            "cut at {cut}"
        );
    }
}

#[test]
fn the_head_ends_at_the_blank_line_and_leading_empty_lines_are_skipped() {
    let s = format!("\r\n{PLAYER}body");
    let (h, used) = parse(&s).unwrap().unwrap();
    assert_eq!(used, s.len() - 4);
    assert_eq!(h.path, "/live/cam 1.flv");
}

#[test]
fn http_1_0_needs_no_host_and_absolute_form_gives_the_path() {
    let h = head("GET http://example.com:80/live/a.flv?k=1 HTTP/1.0\r\n\r\n");
    assert_eq!((h.minor_version, h.path.as_str()), (0, "/live/a.flv"));
    assert_eq!(h.query.as_deref(), Some("k=1"));
    assert_eq!(head("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").path, "*");
    // Dot segments are kept as sent.
    assert_eq!(head("GET /a/../b.flv HTTP/1.0\r\n\r\n").path, "/a/../b.flv");
    assert_eq!(head("GET /a/%2e%2E/b HTTP/1.0\r\n\r\n").path, "/a/../b");
}

#[test]
fn malformed_requests_are_400() {
    let cases = [
        "GET /a.flv HTTP/1.1\r\nHost: a\r\nX: 1\r\n folded\r\n\r\n",
        "GET /a.flv HTTP/1.1\r\n Host: a\r\n\r\n",
        "GET /a.flv HTTP/1.1\r\nHost: a\r\nBad Name: 1\r\n\r\n",
        "GET /a.flv HTTP/1.1\r\nHost : a\r\n\r\n",
        "GET /a.flv HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n",
        "GET /a.flv HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
        "GET /a.flv HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n",
        "GET /a.flv HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
        "GET /a.flv HTTP/1.1\nHost: a\r\n\r\n",
        "GET /a.flv HTTP/1.1\r\nHost: a\n\n",
        "G(T /a.flv HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET  /a.flv HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /a.flv  HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /a.flv\r\n\r\n",
        " GET /a.flv HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /a.flv HTTP/1.1 \r\nHost: a\r\n\r\n",
        "GET /a.flv http/1.1\r\nHost: a\r\n\r\n",
        "GET /a\x7f.flv HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET a.flv HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET https://h/a.flv HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http:///a.flv HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://h HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /a.flv#frag HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /a%zz.flv HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /a%2 HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /a%00.flv HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /a%ff.flv HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /a.flv HTTP/1.1\r\n\r\n",
        "GET /a.flv HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET /a.flv HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n",
        "GET /a.flv HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "GET /a.flv HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        "HEAD /a.flv HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx",
        "OPTIONS /a.flv HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx",
        "GET /a.flv HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        "POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
    ];
    for case in cases {
        assert_eq!(status(case), 400, "{case:?}: {:?}", parse(case));
    }
    // A bare LF is refused as soon as it arrives, not after a timeout.
    assert_eq!(parse("GET / HTTP/1.1\n"), Err(HttpError::BareLf));
    assert_eq!(parse("\n"), Err(HttpError::BareLf));
}

#[test]
fn other_statuses() {
    assert_eq!(status("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
    assert_eq!(status("GET / HTTP/0.9\r\n\r\n"), 505);
    assert_eq!(
        status("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"),
        501
    );
    assert_eq!(
        status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        501
    );
    // Bodies on other methods are the caller's to refuse (405); the head stops before them.
    let s = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
    assert_eq!(parse(s).unwrap().unwrap().1, s.len() - 3);
    assert!(head("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").method == "GET");
}

#[test]
fn limits_give_414_and_431_without_waiting_for_the_blank_line() {
    let limits = HeadLimits {
        max_bytes: 100,
        max_headers: 3,
    };
    let long_target = format!("GET /{} HTTP/1.1\r\n", "a".repeat(100));
    assert_eq!(
        parse_request_head(long_target.as_bytes(), &limits),
        Err(HttpError::TargetTooLong { limit: 100 })
    );
    assert_eq!(
        parse_request_head(&long_target.as_bytes()[..100], &limits),
        Ok(None)
    );
    let long_head = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}", "b".repeat(100));
    assert_eq!(
        parse_request_head(long_head.as_bytes(), &limits),
        Err(HttpError::HeadTooLarge { limit: 100 })
    );
    // Exactly at the limit is fine.
    let exact = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
        "b".repeat(100 - 32)
    );
    assert_eq!(exact.len(), 100);
    assert!(parse_request_head(exact.as_bytes(), &limits)
        .unwrap()
        .is_some());
    let many = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    let err = parse_request_head(many.as_bytes(), &limits).unwrap_err();
    assert_eq!(
        (err.clone(), err.status()),
        (HttpError::TooManyHeaders { limit: 3 }, 431)
    );
    assert_eq!(HttpError::HeadTooLarge { limit: 1 }.status(), 431);
    assert_eq!(HttpError::TargetTooLong { limit: 1 }.status(), 414);
}

const WS: &str = "GET /live/a.flv HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\n\
    Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

#[test]
fn websocket_handshakes() {
    let h = head(WS);
    assert!(h.is_websocket_upgrade());
    assert_eq!(h.websocket_key(), Ok(Some("dGhlIHNhbXBsZSBub25jZQ==")));
    let variant = |from: &str, to: &str| head(&WS.replace(from, to));
    let status_of = |h: RequestHead| {
        assert!(!h.is_websocket_upgrade());
        h.websocket_key().unwrap_err().status()
    };
    assert_eq!(status_of(variant("Version: 13", "Version: 8")), 426);
    assert_eq!(status_of(variant("Sec-WebSocket-Version: 13\r\n", "")), 400);
    assert_eq!(
        status_of(variant(
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
            ""
        )),
        400
    );
    assert_eq!(
        status_of(variant("dGhlIHNhbXBsZSBub25jZQ==", "short==")),
        400
    );
    assert_eq!(
        status_of(variant(
            "dGhlIHNhbXBsZSBub25jZQ==",
            "dGhlIHNhbXBsZSBub25jZQ=!"
        )),
        400
    );
    assert_eq!(status_of(variant("keep-alive, Upgrade", "keep-alive")), 400);
    assert_eq!(status_of(variant("GET /", "HEAD /")), 400);
    let plain = variant("Upgrade: WebSocket\r\n", "");
    assert!(!plain.asks_websocket() && !plain.is_websocket_upgrade());
    assert_eq!(plain.websocket_key(), Ok(None));
}

#[test]
fn percent_decoding() {
    assert_eq!(percent_decode("a%20b+c", false).unwrap(), "a b+c");
    assert_eq!(percent_decode("a%20b+c", true).unwrap(), "a b c");
    assert_eq!(percent_decode("%E2%82%AC", false).unwrap(), "€");
    assert!(percent_decode("%E2%82", false).is_err());
    assert!(percent_decode("%", false).is_err());
    assert!(percent_decode("%0", false).is_err());
    assert!(percent_decode("%00", false).is_err());
}

#[test]
fn responses() {
    assert_eq!(
        &response_head(
            200,
            &[
                ("Content-Type", "video/x-flv"),
                ("Transfer-Encoding", "chunked")
            ]
        )[..],
        b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    assert_eq!(
        &plain_response(
            405,
            "only GET, HEAD and OPTIONS\n",
            &[("Allow", "GET, HEAD, OPTIONS")]
        )[..],
        &b"HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n\
           Content-Length: 27\r\nConnection: close\r\nAllow: GET, HEAD, OPTIONS\r\n\r\n\
           only GET, HEAD and OPTIONS\n"[..]
    );
    assert_eq!(
        &plain_response(204, "ignored", &[("Access-Control-Max-Age", "600")])[..],
        b"HTTP/1.1 204 No Content\r\nConnection: close\r\nAccess-Control-Max-Age: 600\r\n\r\n"
    );
    assert_eq!(reason_phrase(431), "Request Header Fields Too Large");
    assert_eq!(reason_phrase(101), "Switching Protocols");
    assert_eq!(reason_phrase(999), "Unknown");
}

proptest! {
    /// Any bytes: no panic, and a complete head never claims more bytes than it was given.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let limits = HeadLimits { max_bytes: 200, max_headers: 4 };
        if let Ok(Some((_, used))) = parse_request_head(&bytes, &limits) {
            prop_assert!(used <= bytes.len() && used <= 200);
        }
    }

    /// A well-formed head with arbitrary names, values and path parses back to what went in,
    /// whatever the trailing bytes.
    #[test]
    fn well_formed_heads_round_trip(
        segs in proptest::collection::vec("[a-zA-Z0-9._~-]{1,8}", 1..4),
        fields in proptest::collection::vec(("[A-Za-z0-9!#$&^_`|~-]{1,10}", "[ -~]{0,20}"), 0..6),
        tail in proptest::collection::vec(any::<u8>(), 0..20),
    ) {
        let path = format!("/{}", segs.join("/"));
        let mut s = format!("GET {path} HTTP/1.1\r\nHost: h\r\n");
        let fields: Vec<(String, String)> = fields
            .into_iter()
            .filter(|(n, _)| {
                let n = n.to_ascii_lowercase();
                !["host", "content-length", "transfer-encoding"].contains(&n.as_str())
            })
            .map(|(n, v)| (n, v.trim_matches(' ').to_owned()))
            .collect();
        for (n, v) in &fields {
            s.push_str(&format!("{n}: {v}\r\n"));
        }
        s.push_str("\r\n");
        let mut bytes = s.clone().into_bytes();
        bytes.extend_from_slice(&tail);
        let (h, used) = parse_request_head(&bytes, &HeadLimits::default()).unwrap().unwrap();
        prop_assert_eq!(used, s.len());
        prop_assert_eq!(h.path, path);
        prop_assert_eq!(&h.headers[1..], &fields[..]);
    }
}

#[test]
fn response_heads() {
    let s = "HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nTransfer-Encoding: chunked\r\n\r\nFLV";
    let (h, used) = parse_response_head(s.as_bytes(), &HeadLimits::default())
        .unwrap()
        .unwrap();
    assert_eq!(
        (h.minor_version, h.status, h.reason.as_str()),
        (1, 200, "OK")
    );
    assert_eq!(used, s.len() - 3);
    assert!(h.has_token("transfer-encoding", "CHUNKED"));
    assert_eq!(h.header("content-type"), Some("video/x-flv"));
    let (h, _) = parse_response_head(b"HTTP/1.0 404 \r\n\r\n", &HeadLimits::default())
        .unwrap()
        .unwrap();
    assert_eq!((h.status, h.reason.as_str()), (404, ""));
    // Our own responses parse back.
    let ours = plain_response(431, "too large", &[("X", "y")]);
    let (h, used) = parse_response_head(&ours, &HeadLimits::default())
        .unwrap()
        .unwrap();
    assert_eq!(
        (h.status, h.reason.as_str()),
        (431, "Request Header Fields Too Large")
    );
    assert_eq!(&ours[used..], b"too large");
    assert_eq!(h.header("content-length"), Some("9"));
    for bad in [
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
    ] {
        assert!(
            parse_response_head(bad.as_bytes(), &HeadLimits::default()).is_err(),
            "{bad}"
        );
    }
    assert_eq!(
        parse_response_head(b"HTTP/1.1 200 OK\r\n", &HeadLimits::default()),
        Ok(None)
    );
}

fn dechunk(wire: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, bool, usize), HttpError> {
    let mut d = ChunkedDecoder::new();
    let (mut buf, mut body, mut start) = (BytesMut::new(), Vec::new(), 0);
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.push(wire.len());
    for cut in cuts {
        buf.extend_from_slice(&wire[start..cut.max(start)]);
        start = cut.max(start);
        while let Some(piece) = d.decode(&mut buf)? {
            body.extend_from_slice(&piece);
        }
    }
    Ok((body, d.is_done(), buf.len()))
}

#[test]
fn chunked_bodies() {
    // RFC 9112 §7.1 style: sizes in hex, an extension, a trailer, then what follows.
    let wire =
        b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\nNEXT";
    for cut in 0..wire.len() {
        let (body, done, left) = dechunk(wire, &[cut]).unwrap();
        assert_eq!(&body[..], b"Wikipedia in\r\n\r\nchunks.");
        assert!(done);
        assert_eq!(left, 4);
    }
    let (body, done, _) = dechunk(b"A\r\n0123456789\r\n", &[]).unwrap();
    assert_eq!((&body[..], done), (&b"0123456789"[..], false));
    for bad in [
        &b"G\r\n"[..],
        b"\r\n",
        b"4x\r\nWiki\r\n",
        b"4\r\nWikiXX",
        b"1234567890abcdef0\r\n",
        b"4\nWiki",
    ] {
        assert!(dechunk(bad, &[]).is_err(), "{bad:?}");
    }
    assert!(dechunk(&[b'1'; 2000], &[]).is_err());
}

proptest! {
    #[test]
    fn chunked_round_trip(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..500), 0..6),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut wire = Vec::new();
        for c in &chunks {
            wire.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            wire.extend_from_slice(c);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        let (body, done, left) = dechunk(&wire, &cuts).unwrap();
        prop_assert_eq!(body, chunks.concat());
        prop_assert!(done);
        prop_assert_eq!(left, 0);
    }
}

#[test]
fn authorities_split_into_name_and_port() {
    assert_eq!(authority_parts("example.com"), Some(("example.com", None)));
    assert_eq!(
        authority_parts("127.0.0.1:8000"),
        Some(("127.0.0.1", Some(8000)))
    );
    assert_eq!(authority_parts("[::1]"), Some(("[::1]", None)));
    assert_eq!(authority_parts("[::1]:9090"), Some(("[::1]", Some(9090))));
    for bad in ["", ":80", "x:", "x:8a", "x:65536", "[::1]x", "[::1", "x:-1"] {
        assert_eq!(authority_parts(bad), None, "{bad:?}");
    }
}

#[test]
fn origins_give_name_and_port_with_the_scheme_default() {
    assert_eq!(origin_parts("http://a.example"), Some(("a.example", 80)));
    assert_eq!(origin_parts("HTTPS://a.example"), Some(("a.example", 443)));
    assert_eq!(
        origin_parts("http://127.0.0.1:9090"),
        Some(("127.0.0.1", 9090))
    );
    assert_eq!(origin_parts("https://[::1]:9090"), Some(("[::1]", 9090)));
    for bad in ["null", "file://", "ws://a:1", "http://", "http://a:x", "h"] {
        assert_eq!(origin_parts(bad), None, "{bad:?}");
    }
}
