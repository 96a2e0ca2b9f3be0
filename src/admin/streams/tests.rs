//! Addressing with confusable names through the real route table and access guard.

use std::sync::Arc;

use actix::Actor;
use actix_web::http::StatusCode;
use actix_web::{test, web, App};
use serde_json::Value;

use super::parse_id;
use crate::actors::registry::Registry;
use crate::admin::access::Access;
use crate::admin::sampler::Sampler;
use crate::admin::{guard, routes, security_headers, AdminState};
use crate::config::Settings;
use crate::stats::{ServerStats, StreamStats};

/// The victim first, then names that a URL path would turn into the victim's (issue #21),
/// or that look like it.
const STREAMS: &[(&str, &str)] = &[
    ("openapp", "cam"),
    ("openapp/zz", "%2e%2e/cam"),
    ("zz", "%2e%2e/openapp/cam"),
    ("openapp", "c%61m"),
    ("openapp", "cam#x"),
    ("openapp", "cam/."),
    ("openapp", "cam?x=1"),
    ("openapp", "cam%2F"),
    ("openapp", "CAM"),
    ("openapp", "cam "),
    ("openapp", "c\u{430}m"),
];

/// Percent-encode every byte but ASCII letters and digits.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn stats_with_streams() -> (Arc<ServerStats>, Vec<u64>) {
    let stats = Arc::new(ServerStats::default());
    let ids = STREAMS
        .iter()
        .map(|(app, name)| {
            let s = Arc::new(StreamStats::new(app, name));
            let id = s.id;
            stats.streams.insert(format!("{app}/{name}"), s);
            id
        })
        .collect();
    (stats, ids)
}

macro_rules! app {
    ($stats:expr, $token:expr) => {{
        let settings = Arc::new(Settings::defaults());
        let state = web::Data::new(AdminState {
            stats: $stats.clone(),
            sampler: Arc::new(Sampler::new(60, 5)),
            stream_series: crate::admin::metrics::streams::StreamSeries::new(100),
            registry: Registry::new(settings, $stats.clone()).start(),
            access: arc_swap::ArcSwap::from_pointee(Access::new($token, vec![])),
            control: Arc::new(crate::auth::control::Control::in_memory()),
            http_listen: None,
        });
        test::init_service(
            App::new()
                .wrap(actix_web::middleware::from_fn(guard))
                .wrap(security_headers(None))
                .app_data(state)
                .configure(routes),
        )
        .await
    }};
}

/// `(status, JSON body or null)` of one request.
macro_rules! call {
    ($app:expr, $req:expr $(,)?) => {{
        let resp = test::call_service(&$app, $req.to_request()).await;
        let status = resp.status();
        let body = test::read_body(resp).await;
        (
            status,
            serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null),
        )
    }};
}

#[test]
fn ids_are_decimal_digits_only() {
    assert_eq!(parse_id("17"), Some(17));
    for bad in [
        "",
        "+1",
        "-1",
        "1a",
        " 1",
        "0x1",
        "openapp",
        "99999999999999999999999",
    ] {
        assert_eq!(parse_id(bad), None, "{bad:?}");
    }
}

#[actix_rt::test]
async fn every_stream_is_addressed_by_its_id_and_by_exact_name_only() {
    let (stats, ids) = stats_with_streams();
    let app = app!(stats, None);
    let get = |uri: &str| {
        test::TestRequest::get()
            .uri(uri)
            .insert_header(("host", "127.0.0.1:8080"))
    };
    for ((app_name, name), id) in STREAMS.iter().zip(&ids) {
        let (status, body) = call!(app, get(&format!("/api/v1/streams/{id}")));
        assert_eq!(status, StatusCode::OK, "{id}: {body}");
        assert_eq!(body["id"], *id);
        assert_eq!(body["app"], *app_name, "{body}");
        assert_eq!(body["name"], *name, "{body}");
        let uri = format!(
            "/api/v1/streams?app={}&name={}",
            encode(app_name),
            encode(name)
        );
        let (status, list) = call!(app, get(&uri));
        assert_eq!(status, StatusCode::OK, "{uri}: {list}");
        assert_eq!(list["count"], 1, "{uri}: {list}");
        assert_eq!(list["streams"][0]["id"], *id, "{uri}: {list}");
    }
    let (_, all) = call!(app, get("/api/v1/streams"));
    assert_eq!(all["count"], STREAMS.len());
    let (_, history) = call!(app, get("/api/v1/history"));
    for id in &ids {
        assert!(history["streams"][id.to_string()].is_array(), "{history}");
    }
    // Names in the path address nothing, however they are spelled.
    for path in [
        "/api/v1/streams/openapp/cam",
        "/api/v1/streams/openapp/c%61m",
        "/api/v1/streams/openapp%2Fcam",
        "/api/v1/streams/cam",
    ] {
        let (status, body) = call!(app, get(path));
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap_or("").contains("numeric id"),
            "{path}: {body}"
        );
    }
    // Id routes with the wrong method say which one.
    let (status, body) = call!(
        app,
        test::TestRequest::delete()
            .uri(&format!("/api/v1/streams/{}", ids[0]))
            .insert_header(("host", "127.0.0.1:8080"))
            .insert_header(("content-type", "application/json"))
    );
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    let (status, body) = call!(app, get(&format!("/api/v1/streams/{}/stop", ids[0])));
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_eq!(body["error"], "use POST");
    let unused = ids.iter().max().unwrap() + 1_000_000;
    let (status, _) = call!(app, get(&format!("/api/v1/streams/{unused}")));
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[actix_rt::test]
async fn the_guard_runs_before_every_route() {
    let (stats, ids) = stats_with_streams();
    let app = app!(stats, None);
    let stop = format!("/api/v1/streams/{}/stop", ids[0]);
    // A cross-origin form post.
    let (status, body) = call!(
        app,
        test::TestRequest::post()
            .uri(&stop)
            .insert_header(("host", "localhost:8080"))
            .insert_header(("origin", "http://evil.example"))
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload("a=1"),
    );
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // A same-origin form post.
    let (status, _) = call!(
        app,
        test::TestRequest::post()
            .uri(&stop)
            .insert_header(("host", "localhost:8080"))
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload("a=1"),
    );
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A rebinding page.
    let (status, _) = call!(
        app,
        test::TestRequest::get()
            .uri("/api/v1/streams")
            .insert_header(("host", "evil.example:8080")),
    );
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
    // JSON from our own origin reaches the handler (no publisher in this registry).
    let resp = test::call_service(
        &app,
        test::TestRequest::post()
            .uri(&stop)
            .insert_header(("host", "localhost:8080"))
            .insert_header(("origin", "http://localhost:8080"))
            .insert_header(("content-type", "application/json"))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let headers = resp.headers();
    assert_eq!(headers.get("x-frame-options").unwrap(), "DENY");
    assert!(headers
        .get("content-security-policy")
        .is_some_and(|v| v.to_str().unwrap().contains("frame-ancestors 'none'")));
    let body = test::read_body(resp).await;
    assert!(String::from_utf8_lossy(&body).contains("no publisher"));
}
