//! The admin HTTP port: a JSON stats API, Prometheus metrics, health probes, operator
//! actions (kick a connection, stop a publisher, optionally banning it), run-time keys and
//! bans ([`control`], token required) and a self-contained dashboard.
//!
//! Reading stats never messages a media actor: every figure comes from [`ServerStats`]
//! (atomics and shared maps the actors update), and rates from a once-a-second
//! [`sampler::Sampler`] over those counters. Only the operator actions send messages:
//! `CloseConnection` or `RequestReconnect` to a connection, `Lookup` to the registry then
//! `StopPublisher` to a publisher. Streams and connections are addressed by numeric id only
//! (a stream name may hold `%XX`, `..` or `#`, which a URL path would turn into another name).
//!
//! Access (Host, Origin, content type, token) is decided by [`access`] before any handler
//! runs. The configuration refuses a non-loopback admin address without a token.

pub mod access;
mod control;
pub mod metrics;
pub mod sampler;
mod streams;
pub mod views;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use actix_web::body::MessageBody;
use actix_web::dev::{ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::{from_fn, DefaultHeaders, Next};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use arc_swap::ArcSwap;
use serde::Deserialize;

use self::access::Access;
use self::sampler::Sampler;
use crate::actors::registry::Registry;
use crate::config::Settings;
use crate::log_throttle::LogThrottle;
use crate::stats::ServerStats;

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const STYLE_CSS: &str = include_str!("dashboard/style.css");
/// mpegts.js 1.8.2 from npm, unmodified (`dashboard/vendor/README.md`): the live preview.
const MPEGTS_JS: &str = include_str!("dashboard/vendor/mpegts.js");

/// Most chart points returned per stream by `/api/v1/history`.
const HISTORY_POINTS: usize = 600;

/// What the handlers share.
pub struct AdminState {
    pub stats: Arc<ServerStats>,
    pub sampler: Arc<Sampler>,
    pub registry: Addr<Registry>,
    /// Swapped by a reload (`admin.token`, `admin.allowed_hosts`).
    access: ArcSwap<Access>,
    /// Keys and bans changed at run time.
    pub control: Arc<crate::auth::control::Control>,
    /// Per-stream series kept between scrapes (`admin.metrics_max_streams`).
    stream_series: metrics::streams::StreamSeries,
    /// Where HTTP-FLV listens, when it is on: the dashboard's preview plays from its port.
    http_listen: Option<String>,
}

/// The running admin server.
pub struct AdminServer {
    /// The address it listens on (the configured port may be 0).
    pub local_addr: SocketAddr,
    state: web::Data<AdminState>,
    handle: ServerHandle,
    sampler_task: actix_rt::task::JoinHandle<()>,
}

impl AdminServer {
    /// A reload's access rules (`admin.token`, `admin.allowed_hosts`): requests from now on
    /// are held to them; a token taken out of the file stops working at once.
    pub fn apply_access(&self, settings: &Settings) {
        self.state
            .access
            .store(Arc::new(Access::from_settings(settings)));
    }

    /// Stop serving (in-flight requests get a second).
    pub async fn stop(self) {
        self.sampler_task.abort();
        self.handle.stop(true).await;
    }
}

fn json(value: serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(value.to_string())
}

fn error(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(serde_json::json!({ "error": message }).to_string())
}

/// Apply [`access`] to every request, routed or not; refusals are logged (peer-supplied
/// values escaped) except a missing token, which the dashboard hits before one is entered.
async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let verdict = match req.app_data::<web::Data<AdminState>>() {
        Some(state) => state
            .access
            .load()
            .check(
                req.method(),
                req.path(),
                req.headers(),
                req.uri().authority().map(|a| a.as_str()),
            )
            .map_err(Some),
        None => Err(None),
    };
    let refusal = match verdict {
        Ok(()) => return next.call(req).await.map(|r| r.map_into_left_body()),
        Err(refusal) => refusal,
    };
    let response = match refusal {
        Some(refusal) => {
            let logged = (refusal != access::Refusal::Token)
                .then(|| {
                    let mut lines = REFUSAL_LINES.lock().unwrap_or_else(|e| e.into_inner());
                    lines.count(std::time::Instant::now())
                })
                .flatten();
            if let Some(events) = logged {
                // At most 200 bytes of each: the log is no place for a peer's megabytes.
                let text = |name| {
                    req.headers().get(name).map(|v| {
                        let bytes = v.as_bytes();
                        String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned()
                    })
                };
                tracing::info!(
                    peer = %req.peer_addr().map(|a| a.to_string()).unwrap_or_default(),
                    method = %req.method(),
                    path = ?req.path(),
                    host = ?text(header::HOST),
                    origin = ?text(header::ORIGIN),
                    content_type = ?text(header::CONTENT_TYPE),
                    reason = %refusal,
                    left_out = events - 1,
                    "admin: request refused"
                );
            }
            refusal.response()
        }
        None => error(StatusCode::INTERNAL_SERVER_ERROR, "admin state missing"),
    };
    Ok(req.into_response(response).map_into_right_body())
}

/// Refused requests are logged at most 20 times in 10 s; the next line says how many were
/// left out (`left_out`).
static REFUSAL_LINES: std::sync::Mutex<LogThrottle> =
    std::sync::Mutex::new(LogThrottle::new(20, std::time::Duration::from_secs(10)));

/// Headers on every answer: no framing (clickjacking of the Stop and Kick buttons), no
/// sniffing, scripts and styles from this origin only, no referrer.
fn security_headers(http_listen: Option<&str>) -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((
            header::CONTENT_SECURITY_POLICY,
            content_security_policy(http_listen),
        ))
}

/// The dashboard's policy. The live preview (mpegts.js, no worker, no eval) needs two
/// sources beyond `'self'`: `media-src blob:` for the Media Source Extensions object URL the
/// `<video>` plays, and `connect-src` to the HTTP-FLV port's WebSocket, on whatever name
/// the operator reached this page by (`*` host, that port only).
fn content_security_policy(http_listen: Option<&str>) -> String {
    let connect = match http_listen.and_then(listen_port) {
        Some(port) => format!("connect-src 'self' ws://*:{port} wss://*:{port}; "),
        None => String::new(),
    };
    format!(
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
         media-src 'self' blob:; {connect}frame-ancestors 'none'; base-uri 'none'; \
         form-action 'none'"
    )
}

/// The port of an `address:port` (`0.0.0.0:8000`, `[::]:8000`).
fn listen_port(listen: &str) -> Option<u16> {
    listen.parse::<SocketAddr>().ok().map(|a| a.port())
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

/// Loaded by the dashboard only when a preview is opened (it is 270 KB).
async fn mpegts_js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "max-age=3600"))
        .body(MPEGTS_JS)
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

async fn metrics(state: web::Data<AdminState>) -> HttpResponse {
    match metrics::render(&state.stats, &state.stream_series) {
        Ok(text) => HttpResponse::Ok()
            .content_type(metrics::CONTENT_TYPE)
            .body(text),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not encode metrics",
        ),
    }
}

async fn summary(state: web::Data<AdminState>) -> HttpResponse {
    json(views::summary(
        &state.stats,
        &state.sampler,
        state.http_listen.as_deref(),
    ))
}

/// `?limit=` of `/api/v1/actors`.
#[derive(Debug, Deserialize)]
struct ActorsQuery {
    limit: Option<usize>,
}

async fn actors(state: web::Data<AdminState>, query: web::Query<ActorsQuery>) -> HttpResponse {
    let limit = query.limit.unwrap_or(1000).clamp(1, 100_000);
    json(views::actors(&state.stats, limit))
}

async fn connections(state: web::Data<AdminState>) -> HttpResponse {
    json(views::connections(&state.stats))
}

async fn connection(state: web::Data<AdminState>, id: web::Path<u64>) -> HttpResponse {
    match state.stats.connections.get(&id) {
        Some(c) => json(views::connection(&c)),
        None => error(StatusCode::NOT_FOUND, "no such connection"),
    }
}

async fn kick(req: HttpRequest, state: web::Data<AdminState>, id: web::Path<u64>) -> HttpResponse {
    let id = id.into_inner();
    let Some(conn) = state.stats.connections.get(&id).map(|c| c.clone()) else {
        return error(StatusCode::NOT_FOUND, "no such connection");
    };
    if !conn.kick("kicked by an operator") {
        return error(StatusCode::CONFLICT, "connection is still in its handshake");
    }
    tracing::info!(connection = id, peer = %conn.peer, admin = %req.peer_addr().map(|a| a.to_string()).unwrap_or_default(), "admin: connection kicked");
    json(serde_json::json!({ "kicked": id }))
}

/// `POST /api/v1/connections/{id}/reconnect` with an optional JSON body
/// `{"tc_url": "rtmp://other/app"}` (or `?tc_url=`): send the client the Enhanced RTMP v2
/// reconnect request (to move a publisher to another server); a client that did not announce
/// reconnect support is closed instead. Logged.
async fn reconnect(
    req: HttpRequest,
    state: web::Data<AdminState>,
    id: web::Path<u64>,
    query: web::Query<ReconnectQuery>,
    body: web::Bytes,
) -> HttpResponse {
    let id = id.into_inner();
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        ReconnectQuery::default()
    } else {
        match serde_json::from_slice::<ReconnectQuery>(&body) {
            Ok(q) => q,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("expected a JSON object like {{\"tc_url\":\"rtmp://host/app\"}}: {e}"),
                )
            }
        }
    };
    let Some(conn) = state.stats.connections.get(&id).map(|c| c.clone()) else {
        return error(StatusCode::NOT_FOUND, "no such connection");
    };
    let Some(handle) = conn.reconnect_handle() else {
        return error(StatusCode::CONFLICT, "connection is still in its handshake");
    };
    let tc_url = from_body
        .tc_url
        .or(query.into_inner().tc_url)
        .filter(|u| !u.is_empty());
    let request = crate::actors::connection::RequestReconnect {
        tc_url: tc_url.clone(),
        description: "Moved by an operator.".into(),
    };
    match handle.send(request).await {
        Ok(supported) => {
            tracing::info!(connection = id, peer = %conn.peer, tc_url = ?tc_url.as_deref().unwrap_or(""), supported, admin = %req.peer_addr().map(|a| a.to_string()).unwrap_or_default(), "admin: reconnect requested");
            json(
                serde_json::json!({ "connection": id, "reconnect_requested": supported, "closed": !supported }),
            )
        }
        Err(_) => error(StatusCode::GONE, "connection is gone"),
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReconnectQuery {
    tc_url: Option<String>,
}

/// `GET /api/v1/shared_objects`: every live remote shared object with its clients, version
/// and update counts.
async fn shared_objects(state: web::Data<AdminState>) -> HttpResponse {
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
    error(StatusCode::NOT_FOUND, "no such endpoint")
}

/// Every route (the same table for the server and the unit tests).
fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PathConfig::default().error_handler(|e, _| {
        actix_web::error::InternalError::from_response(
            e,
            error(StatusCode::BAD_REQUEST, "bad path"),
        )
        .into()
    }))
    .route("/", web::get().to(index))
    .route("/assets/app.js", web::get().to(app_js))
    .route("/assets/style.css", web::get().to(style_css))
    .route("/assets/vendor/mpegts.js", web::get().to(mpegts_js))
    .route("/healthz", web::get().to(healthz))
    .route("/readyz", web::get().to(readyz))
    .route("/metrics", web::get().to(metrics))
    .route("/api/v1/summary", web::get().to(summary))
    .route("/api/v1/actors", web::get().to(actors))
    .route("/api/v1/history", web::get().to(streams::history))
    .route("/api/v1/streams", web::get().to(streams::list))
    .route("/api/v1/streams/{id}", web::get().to(streams::detail))
    .route("/api/v1/streams/{id}/stop", web::post().to(streams::stop))
    .route("/api/v1/streams/{tail:.*}", web::to(streams::not_an_id))
    .route("/api/v1/connections", web::get().to(connections))
    .route("/api/v1/connections/{id}", web::get().to(connection))
    .route("/api/v1/connections/{id}", web::delete().to(kick))
    .route(
        "/api/v1/connections/{id}/reconnect",
        web::post().to(reconnect),
    )
    .route("/api/v1/shared_objects", web::get().to(shared_objects))
    .route("/api/v1/keys", web::get().to(control::list_keys))
    .route("/api/v1/keys", web::post().to(control::add_key))
    .route("/api/v1/keys", web::delete().to(control::revoke_key))
    .route("/api/v1/bans", web::get().to(control::list_bans))
    .route("/api/v1/bans", web::post().to(control::add_ban))
    .route("/api/v1/bans/{id}", web::delete().to(control::lift_ban))
    .default_service(web::to(not_found));
}

/// Bind the admin port and serve it on this actix System; start the sampler. `http_listen`
/// is the HTTP-FLV listener's bound address, when it is on.
pub fn start(
    settings: &Settings,
    http_listen: Option<SocketAddr>,
    stats: Arc<ServerStats>,
    registry: Addr<Registry>,
    control: Arc<crate::auth::control::Control>,
) -> anyhow::Result<AdminServer> {
    let sampler = Arc::new(Sampler::new(
        settings.admin.history_seconds,
        settings.admin.rate_window_seconds,
    ));
    let state = web::Data::new(AdminState {
        stats: stats.clone(),
        sampler: sampler.clone(),
        registry,
        access: ArcSwap::from_pointee(Access::from_settings(settings)),
        control,
        stream_series: metrics::streams::StreamSeries::new(settings.admin.metrics_max_streams),
        http_listen: http_listen.map(|a| a.to_string()),
    });
    let http_listen = state.http_listen.clone();
    let app_state = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(guard))
            .wrap(security_headers(http_listen.as_deref()))
            .app_data(app_state.clone())
            .configure(routes)
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
        state,
        handle,
        sampler_task,
    })
}

#[cfg(test)]
mod csp_tests {
    use super::{content_security_policy, routes, MPEGTS_JS};
    use actix_web::{test, App};
    use sha2::{Digest, Sha256};

    /// The embedded player is the file the vendor README vouches for, served as script.
    #[actix_rt::test]
    async fn the_vendored_player_is_served_unmodified() {
        let digest: String = Sha256::digest(MPEGTS_JS.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let readme = include_str!("dashboard/vendor/README.md");
        assert!(
            readme.contains(&format!("`{digest}`")),
            "README: update the sha256 to {digest}"
        );
        let app = test::init_service(App::new().configure(routes)).await;
        let req = test::TestRequest::get()
            .uri("/assets/vendor/mpegts.js")
            .to_request();
        let resp = test::call_service(&app, req).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers().get("content-type").unwrap(),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(test::read_body(resp).await, MPEGTS_JS.as_bytes());
    }

    #[test]
    fn preview_sources_follow_the_http_port_and_never_allow_eval() {
        let on = content_security_policy(Some("0.0.0.0:8000"));
        assert!(
            on.contains("connect-src 'self' ws://*:8000 wss://*:8000;"),
            "{on}"
        );
        assert!(on.contains("media-src 'self' blob:;"), "{on}");
        let v6 = content_security_policy(Some("[::]:8443"));
        assert!(v6.contains("ws://*:8443 "), "{v6}");
        let off = content_security_policy(None);
        assert!(!off.contains("connect-src"), "{off}");
        for csp in [on, v6, off] {
            assert!(!csp.contains("unsafe-eval") && !csp.contains("worker-src"));
            assert!(
                csp.starts_with("default-src 'self';") && csp.contains("frame-ancestors 'none'")
            );
        }
    }
}
