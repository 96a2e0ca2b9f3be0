use super::*;
use actix_web::http::header::{HeaderName, HeaderValue};

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    map
}

fn open() -> Access {
    Access::new(None, vec!["admin.example".into(), "[fd00::1]".into()])
}

fn check(a: &Access, method: Method, path: &str, pairs: &[(&str, &str)]) -> Result<(), Refusal> {
    a.check(&method, path, &headers(pairs), None)
}

#[test]
fn without_a_token_only_loopback_and_listed_hosts_are_answered() {
    let a = open();
    for host in [
        "localhost",
        "LOCALHOST:8080",
        "127.0.0.1",
        "127.0.0.1:8080",
        "127.1.2.3:1",
        "[::1]",
        "[::1]:8080",
        "[::ffff:127.0.0.1]:8080",
        "admin.example",
        "Admin.Example:9000",
        "[fd00::1]:80",
    ] {
        assert_eq!(
            check(&a, Method::GET, "/api/v1/streams", &[("host", host)]),
            Ok(()),
            "{host}"
        );
    }
    for host in [
        "evil.example",
        "evil.example:8080",
        "localhost.evil.example",
        "127.0.0.1.evil.example",
        "10.0.0.5:8080",
        "[fd00::2]",
        "::1",
        "localhost:",
        "localhost:80x",
        "[::1]x",
        "",
    ] {
        assert_eq!(
            check(&a, Method::GET, "/api/v1/streams", &[("host", host)]),
            Err(Refusal::ForeignHost),
            "{host:?}"
        );
    }
    // No Host at all, two of them, or a request target naming another authority.
    assert_eq!(check(&a, Method::GET, "/", &[]), Err(Refusal::ForeignHost));
    assert_eq!(
        check(
            &a,
            Method::GET,
            "/",
            &[("host", "localhost"), ("host", "evil.example")]
        ),
        Err(Refusal::ForeignHost)
    );
    assert_eq!(
        a.check(
            &Method::GET,
            "/",
            &headers(&[("host", "localhost")]),
            Some("evil.example")
        ),
        Err(Refusal::ForeignHost)
    );
    // The static files and /metrics follow the rule; the probes answer any Host.
    for path in ["/", "/assets/app.js", "/metrics"] {
        assert_eq!(
            check(&a, Method::GET, path, &[("host", "evil.example")]),
            Err(Refusal::ForeignHost),
            "{path}"
        );
    }
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            check(&a, Method::GET, path, &[("host", "10.1.2.3:8080")]),
            Ok(()),
            "{path}"
        );
    }
}

#[test]
fn with_a_token_any_host_is_answered_with_the_token() {
    let a = Access::new(Some("s3cret"), vec![]);
    let get = |pairs: &[(&str, &str)]| check(&a, Method::GET, "/api/v1/streams", pairs);
    assert_eq!(
        get(&[("host", "evil.example"), ("authorization", "Bearer s3cret")]),
        Ok(())
    );
    assert_eq!(
        get(&[
            ("host", "10.0.0.5:8080"),
            ("authorization", "bearer s3cret")
        ]),
        Ok(())
    );
    assert_eq!(get(&[("host", "evil.example")]), Err(Refusal::Token));
    assert_eq!(
        get(&[("host", "localhost"), ("authorization", "Bearer s3cre")]),
        Err(Refusal::Token)
    );
    assert_eq!(
        get(&[("host", "localhost"), ("authorization", "Basic s3cret")]),
        Err(Refusal::Token)
    );
    // The shell and probes hold no data.
    for path in [
        "/",
        "/assets/app.js",
        "/assets/style.css",
        "/assets/vendor/mpegts.js",
        "/healthz",
        "/readyz",
    ] {
        assert_eq!(
            check(&a, Method::GET, path, &[("host", "evil.example")]),
            Ok(()),
            "{path}"
        );
    }
    // Unknown paths and look-alikes of public ones need the token.
    for path in [
        "/nope",
        "/healthz/",
        "//healthz",
        "/assets/",
        "/assets/vendor/",
        "/metrics",
    ] {
        assert_eq!(
            check(&a, Method::GET, path, &[("host", "localhost")]),
            Err(Refusal::Token),
            "{path}"
        );
    }
}

#[test]
fn a_foreign_origin_is_refused_for_every_method() {
    for a in [open(), Access::new(Some("t"), vec![])] {
        for method in [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::DELETE,
            Method::PUT,
        ] {
            for origin in [
                "http://evil.example",
                "http://localhost:8081",
                "http://localhost",
                "null",
                "file://",
                "http://localhost:8080.evil.example",
                "ws://localhost:8080",
            ] {
                let r = check(
                    &a,
                    method.clone(),
                    "/api/v1/connections/1/reconnect",
                    &[
                        ("host", "localhost:8080"),
                        ("origin", origin),
                        ("content-type", "application/json"),
                        ("authorization", "Bearer t"),
                    ],
                );
                assert_eq!(r, Err(Refusal::ForeignOrigin), "{method} {origin}");
            }
        }
    }
}

#[test]
fn state_changes_need_json_from_our_own_origin() {
    let a = open();
    let post = |pairs: &[(&str, &str)]| check(&a, Method::POST, "/api/v1/streams/1/stop", pairs);
    let host = ("host", "localhost:8080");
    assert_eq!(post(&[host]), Err(Refusal::NotJson));
    for form in [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/plain",
        "application/jsonx",
        "application/json-patch+json",
    ] {
        assert_eq!(
            post(&[host, ("content-type", form)]),
            Err(Refusal::NotJson),
            "{form}"
        );
    }
    assert_eq!(post(&[host, ("content-type", "application/json")]), Ok(()));
    assert_eq!(
        post(&[host, ("content-type", "Application/JSON; charset=utf-8")]),
        Ok(())
    );
    for origin in ["http://localhost:8080", "https://LOCALHOST:8080"] {
        assert_eq!(
            post(&[
                host,
                ("origin", origin),
                ("content-type", "application/json")
            ]),
            Ok(()),
            "{origin}"
        );
    }
    assert_eq!(
        check(
            &a,
            Method::DELETE,
            "/api/v1/connections/3",
            &[host, ("content-type", "text/plain")]
        ),
        Err(Refusal::NotJson)
    );
    // Reads need neither.
    assert_eq!(check(&a, Method::GET, "/api/v1/streams", &[host]), Ok(()));
}

#[test]
fn refusals_carry_their_status_and_reason() {
    assert_eq!(Refusal::ForeignHost.status().as_u16(), 421);
    assert_eq!(Refusal::ForeignOrigin.status().as_u16(), 403);
    assert_eq!(Refusal::NotJson.status().as_u16(), 415);
    assert_eq!(Refusal::Token.status().as_u16(), 401);
    assert!(Refusal::NotJson.to_string().contains("application/json"));
}

#[test]
fn tokens_compare_exactly() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
}
