//! The HTTP/1.1 request-head parser on arbitrary bytes arriving in arbitrary reads.
//!
//! Invariants: no panic; a complete head never claims more than it was given nor more than
//! `max_bytes`, has at most `max_headers` fields, a token method, a path without NUL and
//! values without CR, LF or NUL; every prefix at a read boundary gives "incomplete" or the
//! same outcome as the whole input (the parser decides at the first bad byte of a complete
//! line, never on where reads fell); re-parsing exactly the consumed bytes gives the same
//! head; the accessors and the response writers never panic on what was parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reflector::protocol::http::{parse_request_head, plain_response, response_head, HeadLimits};
use reflector_fuzz::SplitPlan;

const LIMITS: HeadLimits = HeadLimits {
    max_bytes: 1024,
    max_headers: 12,
};

fuzz_target!(|data: &[u8]| {
    let (plan, input) = SplitPlan::take(data);
    let whole = parse_request_head(input, &LIMITS);
    let mut end = 0;
    for piece in plan.pieces(input) {
        end += piece.len();
        let partial = parse_request_head(&input[..end], &LIMITS);
        assert!(
            matches!(partial, Ok(None)) || partial == whole,
            "prefix of {end} bytes: {partial:?}, whole: {whole:?}"
        );
    }
    let Ok(Some((head, used))) = whole else {
        if let Err(e) = &whole {
            assert!([400, 414, 431, 501, 505].contains(&e.status()), "{e:?}");
        }
        return;
    };
    assert!(used <= input.len() && used <= LIMITS.max_bytes);
    assert!(input[..used].ends_with(b"\r\n\r\n"));
    assert_eq!(
        parse_request_head(&input[..used], &LIMITS),
        Ok(Some((head.clone(), used)))
    );
    assert!(head.headers.len() <= LIMITS.max_headers);
    assert!(!head.method.is_empty() && head.method.bytes().all(|b| b.is_ascii_graphic()));
    assert!(!head.path.contains('\0'));
    assert!(head.path.starts_with('/') || head.path == "*");
    assert!(head.minor_version <= 1);
    for (name, value) in &head.headers {
        assert!(!name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':'));
        assert!(!value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0));
        assert!(!value.starts_with([' ', '\t']) && !value.ends_with([' ', '\t']));
    }
    // Accessors on what was parsed.
    let _ = head.header("host");
    let _ = head.has_token("connection", "upgrade");
    if head.is_websocket_upgrade() {
        assert_eq!(head.websocket_key().map(|k| k.is_some()), Ok(true));
    }
    if let Err(e) = head.websocket_key() {
        assert!([400, 426].contains(&e.status()));
    }
    for (name, _) in &head.headers {
        let _ = head.query_param(name);
    }
    let _ = head.query_param("key");
    // Echoing parsed fields can never split a response.
    let fields: Vec<(&str, &str)> = head
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let out = response_head(200, &fields);
    assert_eq!(
        out.windows(2).filter(|w| w == b"\r\n").count(),
        fields.len() + 2
    );
    let out = plain_response(404, &head.path, &fields);
    assert!(out.ends_with(head.path.as_bytes()));
});
