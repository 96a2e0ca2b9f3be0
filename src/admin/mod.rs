//! The admin HTTP port: a JSON stats API, Prometheus metrics, health probes, two operator
//! actions (kick a connection, stop a publisher) and a self-contained dashboard.
//!
//! Reading stats never messages a media actor: every figure comes from [`ServerStats`]
//! (atomics and shared maps the actors update), and rates from a once-a-second
//! [`sampler::Sampler`] over those counters. Only the two DELETE actions send messages:
//! `CloseConnection` to a connection, `Lookup` to the registry then `StopPublisher` to a
//! publisher.
//!
//! Access: when `admin.token` is set, every endpoint but `/healthz`, `/readyz` and the
//! dashboard's static files (which hold no data; the page asks for the token) needs
//! `Authorization: Bearer <token>`. The configuration refuses a non-loopback admin address
//! without a token.

pub mod metrics;
pub mod sampler;
pub mod views;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use actix_web::dev::ServerHandle;
use actix_web::http::header;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde::Deserialize;

use self::sampler::Sampler;
use crate::actors::publisher::StopPublisher;
use crate::actors::registry::{Lookup, Registry};
use crate::config::Settings;
use crate::stats::ServerStats;

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const STYLE_CSS: &str = include_str!("dashboard/style.css");

/// Most chart points returned per stream by `/api/v1/history`.
const HISTORY_POINTS: usize = 600;

/// What the handlers share.
pub struct AdminState {
    pub stats: Arc<ServerStats>,
    pub sampler: Arc<Sampler>,
    pub registry: Addr<Registry>,
    token: Option<String>,
}

/// The running admin server.
pub struct AdminServer {
    /// The address it listens on (the configured port may be 0).
    pub local_addr: SocketAddr,
    handle: ServerHandle,
    sampler_task: actix_rt::task::JoinHandle<()>,
}

impl AdminServer {
    /// Stop serving (in-flight requests get a second).
    pub async fn stop(self) {
        self.sampler_task.abort();
        self.handle.stop(true).await;
    }
}

/// Compare without leaking the position of the first difference through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `None` when the request may proceed; the refusal otherwise.
fn refuse(req: &HttpRequest, state: &AdminState) -> Option<HttpResponse> {
    let expected = state.token.as_deref()?;
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(t) if constant_time_eq(t.as_bytes(), expected.as_bytes()) => None,
        _ => Some(
            HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"reflector\""))
                .content_type("application/json")
                .body(r#"{"error":"a valid bearer token is required"}"#),
        ),
    }
}

fn json(value: serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(value.to_string())
}

fn error(status: actix_web::http::StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(serde_json::json!({ "error": message }).to_string())
}

macro_rules! authorized {
    ($req:expr, $state:expr) => {
        if let Some(refusal) = refuse(&$req, &$state) {
            return refusal;
        }
    };
}

async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(INDEX_HTML)
}

async fn app_js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .body(APP_JS)
}

async fn style_css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .body(STYLE_CSS)
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// Ready while accepting RTMP. Redis being unreachable does not make the instance unready
/// (local streams keep working) but is reported in the detail.
async fn readyz(state: web::Data<AdminState>) -> HttpResponse {
    let stats = &state.stats;
    let redis = if !stats.redis_configured.load(Relaxed) {
        "off"
    } else if stats.redis_ok.load(Relaxed) {
        "ok"
    } else {
        "unavailable"
    };
    // Failing accepts, or connections at the cap the open-file limit sets, make the instance
    // unready: a balancer should send new connections elsewhere until there is room again.
    let failing = stats.accept_failing();
    let full = stats.at_open_file_cap();
    let ready = stats.ready.load(Relaxed) && !failing && !full;
    let accept = if failing {
        format!(
            "failing ({} errors; open-file limit {})",
            stats.accept_errors.load(Relaxed),
            stats.open_files_limit.load(Relaxed)
        )
    } else if full {
        format!(
            "full: {} connections, the most the open-file limit {} leaves room for",
            stats.connections.len(),
            stats.open_files_limit.load(Relaxed)
        )
    } else {
        "ok".to_owned()
    };
    let body = format!(
        "{}\nredis: {redis}\naccept: {accept}\n",
        if ready { "ready" } else { "not ready" },
    );
    let mut response = if ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response.content_type("text/plain").body(body)
}

async fn metrics(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    authorized!(req, state);
    match metrics::render(&state.stats, &state.sampler) {
        Ok(text) => HttpResponse::Ok()
            .content_type(metrics::CONTENT_TYPE)
            .body(text),
        Err(_) => error(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            "could not encode metrics",
        ),
    }
}

async fn summary(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    authorized!(req, state);
    json(views::summary(&state.stats, &state.sampler))
}

/// `?limit=` of `/api/v1/actors`.
#[derive(Debug, Deserialize)]
struct ActorsQuery {
    limit: Option<usize>,
}

async fn actors(
    req: HttpRequest,
    state: web::Data<AdminState>,
    query: web::Query<ActorsQuery>,
) -> HttpResponse {
    authorized!(req, state);
    let limit = query.limit.unwrap_or(1000).clamp(1, 100_000);
    json(views::actors(&state.stats, limit))
}

async fn streams(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    authorized!(req, state);
    json(views::streams(&state.stats, &state.sampler))
}

async fn history(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    authorized!(req, state);
    json(views::history(&state.stats, &state.sampler, HISTORY_POINTS))
}

/// `{app}/{name}` from the route tail; the app may itself contain '/', the name is the last
/// segment.
fn stream_key(tail: &str) -> Option<String> {
    let (app, name) = tail.trim_matches('/').rsplit_once('/')?;
    (!app.is_empty() && !name.is_empty()).then(|| format!("{app}/{name}"))
}

async fn stream(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    authorized!(req, state);
    let tail = req.match_info().get("tail").unwrap_or_default();
    let Some(key) = stream_key(tail) else {
        return error(
            actix_web::http::StatusCode::BAD_REQUEST,
            "expected /api/v1/streams/{app}/{name}",
        );
    };
    match state.stats.streams.get(&key) {
        Some(s) => json(views::stream(&state.stats, &state.sampler, &key, &s)),
        None => error(actix_web::http::StatusCode::NOT_FOUND, "no such stream"),
    }
}

async fn stop_stream(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    authorized!(req, state);
    let tail = req.match_info().get("tail").unwrap_or_default();
    let Some(key) = stream_key(tail) else {
        return error(
            actix_web::http::StatusCode::BAD_REQUEST,
            "expected /api/v1/streams/{app}/{name}",
        );
    };
    let found = state.registry.send(Lookup { key: key.clone() }).await;
    let (publisher, connection) = match found {
        Ok(Some((addr, Some(connection)))) => (addr, connection),
        Ok(_) => return error(actix_web::http::StatusCode::NOT_FOUND, "no publisher"),
        Err(_) => {
            return error(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                "registry unavailable",
            )
        }
    };
    match publisher.send(StopPublisher).await {
        Ok(true) => {
            tracing::info!(stream = %key, connection, peer = %req.peer_addr().map(|a| a.to_string()).unwrap_or_default(), "admin: publisher stopped");
            json(serde_json::json!({ "stopped": key, "connection": connection }))
        }
        Ok(false) => error(actix_web::http::StatusCode::NOT_FOUND, "no publisher"),
        Err(_) => error(actix_web::http::StatusCode::NOT_FOUND, "stream is gone"),
    }
}

async fn connections(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    authorized!(req, state);
    json(views::connections(&state.stats))
}

async fn connection(
    req: HttpRequest,
    state: web::Data<AdminState>,
    id: web::Path<u64>,
) -> HttpResponse {
    authorized!(req, state);
    match state.stats.connections.get(&id) {
        Some(c) => json(views::connection(&c)),
        None => error(actix_web::http::StatusCode::NOT_FOUND, "no such connection"),
    }
}

async fn kick(req: HttpRequest, state: web::Data<AdminState>, id: web::Path<u64>) -> HttpResponse {
    authorized!(req, state);
    let id = id.into_inner();
    let Some(conn) = state.stats.connections.get(&id).map(|c| c.clone()) else {
        return error(actix_web::http::StatusCode::NOT_FOUND, "no such connection");
    };
    if !conn.kick("kicked by an operator") {
        return error(
            actix_web::http::StatusCode::CONFLICT,
            "connection is still in its handshake",
        );
    }
    tracing::info!(connection = id, peer = %conn.peer, admin = %req.peer_addr().map(|a| a.to_string()).unwrap_or_default(), "admin: connection kicked");
    json(serde_json::json!({ "kicked": id }))
}

/// `POST /api/v1/connections/{id}/reconnect[?tc_url=rtmp://other/app]`: send the client the
/// Enhanced RTMP v2 reconnect request (to move a publisher to another server); a client that
/// did not announce reconnect support is closed instead. Logged.
async fn reconnect(
    req: HttpRequest,
    state: web::Data<AdminState>,
    id: web::Path<u64>,
    query: web::Query<ReconnectQuery>,
) -> HttpResponse {
    authorized!(req, state);
    let id = id.into_inner();
    let Some(conn) = state.stats.connections.get(&id).map(|c| c.clone()) else {
        return error(actix_web::http::StatusCode::NOT_FOUND, "no such connection");
    };
    let Some(handle) = conn.reconnect_handle() else {
        return error(
            actix_web::http::StatusCode::CONFLICT,
            "connection is still in its handshake",
        );
    };
    let tc_url = query.into_inner().tc_url.filter(|u| !u.is_empty());
    let request = crate::actors::connection::RequestReconnect {
        tc_url: tc_url.clone(),
        description: "Moved by an operator.".into(),
    };
    match handle.send(request).await {
        Ok(supported) => {
            tracing::info!(connection = id, peer = %conn.peer, tc_url = tc_url.as_deref().unwrap_or(""), supported, "admin: reconnect requested");
            json(
                serde_json::json!({ "connection": id, "reconnect_requested": supported, "closed": !supported }),
            )
        }
        Err(_) => error(actix_web::http::StatusCode::GONE, "connection is gone"),
    }
}

#[derive(serde::Deserialize)]
struct ReconnectQuery {
    tc_url: Option<String>,
}

/// `GET /api/v1/shared_objects`: every live remote shared object with its clients, version
/// and update counts.
async fn shared_objects(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    authorized!(req, state);
    use std::sync::atomic::Ordering::Relaxed;
    let mut list: Vec<serde_json::Value> = state
        .stats
        .shared_objects
        .iter()
        .map(|so| {
            serde_json::json!({
                "key": so.key(),
                "app": so.app,
                "name": so.name,
                "persistent": so.persistent,
                "age_ms": so.created.elapsed().as_millis() as u64,
                "clients": so.clients.load(Relaxed),
                "version": so.version.load(Relaxed),
                "attributes": so.attributes.load(Relaxed),
                "bytes": so.bytes.load(Relaxed),
                "updates": so.updates.load(Relaxed),
                "messages": so.messages.load(Relaxed),
                "refused": so.refused.load(Relaxed),
            })
        })
        .collect();
    list.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
    json(serde_json::json!({
        "count": list.len(),
        "actors": state.stats.actors.shared_objects.load(Relaxed),
        "shared_objects": list,
    }))
}

async fn not_found() -> HttpResponse {
    error(actix_web::http::StatusCode::NOT_FOUND, "no such endpoint")
}

/// Bind the admin port and serve it on this actix System; start the sampler.
pub fn start(
    settings: &Settings,
    stats: Arc<ServerStats>,
    registry: Addr<Registry>,
) -> anyhow::Result<AdminServer> {
    let sampler = Arc::new(Sampler::new(
        settings.admin.history_seconds,
        settings.admin.rate_window_seconds,
    ));
    let state = web::Data::new(AdminState {
        stats: stats.clone(),
        sampler: sampler.clone(),
        registry,
        token: settings.admin.token().map(str::to_owned),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::PathConfig::default().error_handler(|e, _| {
                actix_web::error::InternalError::from_response(
                    e,
                    error(actix_web::http::StatusCode::BAD_REQUEST, "bad path"),
                )
                .into()
            }))
            .route("/", web::get().to(index))
            .route("/assets/app.js", web::get().to(app_js))
            .route("/assets/style.css", web::get().to(style_css))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics))
            .route("/api/v1/summary", web::get().to(summary))
            .route("/api/v1/actors", web::get().to(actors))
            .route("/api/v1/history", web::get().to(history))
            .route("/api/v1/streams", web::get().to(streams))
            .route("/api/v1/streams/{tail:.*}", web::get().to(stream))
            .route("/api/v1/streams/{tail:.*}", web::delete().to(stop_stream))
            .route("/api/v1/connections", web::get().to(connections))
            .route("/api/v1/connections/{id}", web::get().to(connection))
            .route("/api/v1/connections/{id}", web::delete().to(kick))
            .route(
                "/api/v1/connections/{id}/reconnect",
                web::post().to(reconnect),
            )
            .route("/api/v1/shared_objects", web::get().to(shared_objects))
            .default_service(web::to(not_found))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(&settings.server.admin_listen)
    .map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on the admin address {}: {e}",
            settings.server.admin_listen
        )
    })?;
    let local_addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| anyhow::anyhow!("admin server bound no address"))?;
    let running = server.run();
    let handle = running.handle();
    actix_rt::spawn(async move {
        if let Err(e) = running.await {
            tracing::error!(error = %e, "admin server failed");
        }
    });
    let sampler_task = actix_rt::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            sampler.sample(&stats);
        }
    });
    Ok(AdminServer {
        local_addr,
        handle,
        sampler_task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_keys_split_on_the_last_slash() {
        assert_eq!(stream_key("live/cam"), Some("live/cam".into()));
        assert_eq!(stream_key("a/b/cam"), Some("a/b/cam".into()));
        assert_eq!(stream_key("cam"), None);
        assert_eq!(stream_key("live/"), None);
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
