//! An HTTP connection's request, before it plays: read the request head (bounded in size and
//! time), route it, admit it with the same rules as RTMP play ([`crate::admission`]), ask the
//! registry for the stream (the same player limits), and start an [`HttpPlayer`]. Every
//! refusal is a short plain-text answer, a log line with the connection id, and a close.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use actix::Arbiter;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::connection::finish;
use super::http_player::{HttpPlayer, PlayRequest};
use super::registry;
use super::ServerContext;
use crate::admission::{Admission, Refused};
use crate::auth::Action;
use crate::config::Settings;
use crate::names::Esc;
use crate::output::flv::Framing;
use crate::protocol::http::{self, HeadLimits, HttpError, RequestHead};
use crate::protocol::websocket;
use crate::stats::{ConnectionStats, Protocol, RefusalReason};

/// Most header lines in a request head.
const MAX_HEADERS: usize = 64;
/// How long a refusal may take to reach a client that does not read.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// An answer that ends the connection: status, plain-text reason, extra headers.
struct Answer {
    status: u16,
    body: String,
    headers: Vec<(&'static str, String)>,
}

impl Answer {
    fn new(status: u16, body: impl Into<String>) -> Answer {
        Answer {
            status,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }
}

impl From<Refused> for Answer {
    fn from(r: Refused) -> Answer {
        let status = match r.reason {
            RefusalReason::BadName => 400,
            RefusalReason::Limits => 503,
            RefusalReason::Conflict => 409,
            _ => 403,
        };
        Answer::new(status, r.description)
    }
}

/// What a request head asks for.
enum Route {
    /// A CORS preflight.
    Preflight,
    /// `/{app}/{name}.flv`: play it (`head_only` for HEAD).
    Play {
        app: String,
        name: String,
        head_only: bool,
    },
}

/// The stream a request path names: `/{app}/{name}.flv`, the app being everything before the
/// last segment (as RTMP's `app/name` splits).
fn route(head: &RequestHead) -> Result<Route, Answer> {
    let allow = "GET, HEAD, OPTIONS";
    let head_only = match head.method.as_str() {
        "GET" => false,
        "HEAD" => true,
        "OPTIONS" => return Ok(Route::Preflight),
        _ => {
            return Err(
                Answer::new(405, format!("{} is not served here", head.method))
                    .with("Allow", allow),
            )
        }
    };
    let not_found = || Answer::new(404, "not found: streams are at /APP/NAME.flv");
    let path = head.path.strip_prefix('/').ok_or_else(not_found)?;
    let stem = path.strip_suffix(".flv").ok_or_else(not_found)?;
    let (app, name) = stem.rsplit_once('/').ok_or_else(not_found)?;
    if app.is_empty() || name.is_empty() {
        return Err(not_found());
    }
    Ok(Route::Play {
        app: app.to_owned(),
        name: name.to_owned(),
        head_only,
    })
}

/// Whether this client reads enhanced FLV (Enhanced RTMP codecs): `?enhanced=1|0` says so;
/// else every client but ffmpeg before 6 (libavformat 60), whose FLV reader does not.
fn takes_enhanced(head: &RequestHead) -> bool {
    match head.query_param("enhanced").as_deref() {
        Some("1" | "true") => return true,
        Some("0" | "false") => return false,
        _ => {}
    }
    let lavf_major = head
        .header("user-agent")
        .and_then(|ua| ua.strip_prefix("Lavf/"))
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    lavf_major.is_none_or(|major| major >= 60)
}

/// The CORS headers every answer carries (`http.allow_origin`).
fn cors(settings: &Settings) -> Vec<(&'static str, String)> {
    let origin = &settings.http.allow_origin;
    if origin.is_empty() {
        return Vec::new();
    }
    vec![("Access-Control-Allow-Origin", origin.clone())]
}

/// Write `answer` (bounded in time) and close.
async fn answer(socket: &mut TcpStream, settings: &Settings, stats: &ConnectionStats, a: Answer) {
    let bytes = if a.status == 200 {
        // HEAD: the head a GET would get, no body.
        stream_head(settings, Framing::Close)
    } else {
        let mut headers = cors(settings);
        headers.extend(a.headers);
        let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        http::plain_response(a.status, &a.body, &refs)
    };
    let write = async {
        socket.write_all(&bytes).await?;
        socket.shutdown().await
    };
    if tokio::time::timeout(ANSWER_TIMEOUT, write).await.is_ok() {
        stats.bytes_out.fetch_add(bytes.len() as u64, Relaxed);
    }
}

/// Why reading a request head stopped.
enum HeadRead {
    Head(RequestHead, BytesMut),
    /// The client closed (or reset) before a whole head.
    Closed,
    Bad(HttpError),
}

async fn read_head(
    socket: &mut TcpStream,
    limits: &HeadLimits,
    stats: &ConnectionStats,
) -> HeadRead {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        match http::parse_request_head(&buf, limits) {
            Ok(Some((head, used))) => {
                let _ = buf.split_to(used);
                return HeadRead::Head(head, buf);
            }
            Ok(None) => {}
            Err(e) => return HeadRead::Bad(e),
        }
        match socket.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return HeadRead::Closed,
            Ok(n) => {
                stats.bytes_in.fetch_add(n as u64, Relaxed);
                stats.touch_read();
            }
        }
    }
}

/// Serve one accepted HTTP connection on the current arbiter.
pub async fn serve(mut socket: TcpStream, server: Arc<ServerContext>, stats: Arc<ConnectionStats>) {
    let _ = socket.set_nodelay(true);
    let settings = server.settings.load_full();
    let (id, peer) = (stats.id, stats.peer);
    let limits = HeadLimits {
        max_bytes: settings.http.max_request_head_bytes,
        max_headers: MAX_HEADERS,
    };
    let timeout = Duration::from_millis(settings.http.request_timeout_ms);
    let read = tokio::time::timeout(timeout, read_head(&mut socket, &limits, &stats)).await;
    let (head, leftover) = match read {
        Ok(HeadRead::Head(head, leftover)) => (head, leftover),
        Ok(HeadRead::Closed) => {
            tracing::debug!(connection = id, %peer, "HTTP client closed before a request");
            return finish(&server, &stats);
        }
        Ok(HeadRead::Bad(e)) => {
            tracing::info!(connection = id, %peer, status = e.status(), error = %Esc(&e.to_string()), "bad HTTP request: closing");
            server.stats.protocol_errors.fetch_add(1, Relaxed);
            answer(
                &mut socket,
                &settings,
                &stats,
                Answer::new(e.status(), e.to_string()),
            )
            .await;
            return finish(&server, &stats);
        }
        Err(_) => {
            if stats.bytes_in.load(Relaxed) > 0 {
                tracing::info!(connection = id, %peer, timeout_ms = timeout.as_millis() as u64, "HTTP request head not complete in time (http.request_timeout_ms): closing");
                let a = Answer::new(408, "request head not complete in time");
                answer(&mut socket, &settings, &stats, a).await;
            }
            return finish(&server, &stats);
        }
    };
    match play_request(&head, leftover, &server, &settings, &stats).await {
        Ok(play) => HttpPlayer::start_on_current(socket, server, settings, stats, play),
        Err(a) => {
            answer(&mut socket, &settings, &stats, a).await;
            finish(&server, &stats);
        }
    }
}

/// Route, admit and register the request; an `Err` is the answer that refuses it.
async fn play_request(
    head: &RequestHead,
    leftover: BytesMut,
    server: &Arc<ServerContext>,
    settings: &Arc<Settings>,
    stats: &ConnectionStats,
) -> Result<PlayRequest, Answer> {
    let (id, peer) = (stats.id, stats.peer);
    let (app, name, head_only) = match route(head) {
        Ok(Route::Play {
            app,
            name,
            head_only,
        }) => (app, name, head_only),
        Ok(Route::Preflight) => return Err(preflight(head)),
        Err(a) => {
            tracing::info!(connection = id, %peer, method = %Esc(&head.method), path = %Esc(&head.path), status = a.status, "HTTP request refused");
            return Err(a);
        }
    };
    let ws = websocket_framing(head, settings, server.admin_port, id, peer)?;
    let admission = Admission {
        settings,
        control: &server.control,
        stats: &server.stats,
        connection: id,
        peer,
    };
    admission.app(&app)?;
    let resource = admission.resource(&app, &name).inspect_err(|r| {
        tracing::info!(connection = id, %peer, reason = %Esc(&r.description), "HTTP play refused: bad name");
    })?;
    let key = head.query_param("key");
    admission.stream_ban(Action::Play, &resource, key.as_deref())?;
    let decision = admission
        .authorize(Action::Play, resource, head.query.clone(), key, None)
        .await;
    let granted = admission.decided(decision)?;
    let resource = granted.resource;
    let request = registry::Play {
        app: resource.app.clone(),
        name: resource.name.clone(),
        arbiter: Arbiter::current(),
        relay: false,
    };
    let publisher = match server.registry.send(request).await {
        Ok(Ok(publisher)) => publisher,
        Ok(Err(refusal)) => {
            tracing::warn!(connection = id, stream = %Esc(&resource.key()), reason = %refusal, "play refused");
            return Err(Answer::new(503, format!("{}: {refusal}", resource.name)));
        }
        Err(_) => return Err(Answer::new(503, "the server is shutting down")),
    };
    let key = resource.key();
    let live = server.stats.streams.get(&key).is_some_and(|s| s.is_live());
    let leave = || {
        server.registry.do_send(registry::Leave {
            app: resource.app.clone(),
            name: resource.name.clone(),
        })
    };
    if !live && (head_only || !settings.http.wait_for_publisher) {
        leave();
        tracing::info!(connection = id, stream = %Esc(&key), "HTTP play refused: not published");
        return Err(Answer::new(
            404,
            format!("{}: not published", resource.name),
        ));
    }
    if head_only {
        leave();
        return Err(Answer::new(200, ""));
    }
    let framing = match (&ws, head.minor_version) {
        (Some(_), _) => Framing::WebSocket,
        (None, 0) => Framing::Close,
        (None, _) => Framing::Chunked,
    };
    let answer_head = match &ws {
        Some(accept) => http::response_head(
            101,
            &[
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", accept),
            ],
        ),
        None => stream_head(settings, framing),
    };
    Ok(PlayRequest {
        resource,
        done: granted.done,
        publisher,
        framing,
        answer_head,
        leftover: leftover.freeze(),
        enhanced: takes_enhanced(head),
        user_agent: head.header("user-agent").unwrap_or("").to_owned(),
    })
}

/// The head of a 200 answer carrying FLV.
fn stream_head(settings: &Settings, framing: Framing) -> Bytes {
    let mut headers: Vec<(&str, String)> = vec![
        ("Content-Type", "video/x-flv".into()),
        ("Cache-Control", "no-cache, no-store".into()),
        ("Connection", "close".into()),
    ];
    if framing == Framing::Chunked {
        headers.push(("Transfer-Encoding", "chunked".into()));
    }
    headers.extend(cors(settings));
    let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    http::response_head(200, &refs)
}

/// A CORS preflight: which methods and request headers a page may use.
fn preflight(head: &RequestHead) -> Answer {
    let mut a = Answer::new(204, "")
        .with("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
        .with("Access-Control-Max-Age", "600");
    if let Some(asked) = head.header("access-control-request-headers") {
        let token = |c: char| c.is_ascii_alphanumeric() || "-_, ".contains(c);
        if asked.chars().all(token) {
            a = a.with("Access-Control-Allow-Headers", asked);
        }
    }
    a
}

/// For a WebSocket upgrade: its `Sec-WebSocket-Accept` (RFC 6455 §4.2.2), or why it is
/// refused; `None` for a plain HTTP request.
fn websocket_framing(
    head: &RequestHead,
    settings: &Settings,
    admin_port: u16,
    id: u64,
    peer: SocketAddr,
) -> Result<Option<String>, Answer> {
    if !head.has_token("upgrade", "websocket") {
        return Ok(None);
    }
    let refuse = |a: Answer, why: &str| {
        tracing::info!(connection = id, %peer, status = a.status, reason = why, "WebSocket upgrade refused");
        a
    };
    if head.header("sec-websocket-version") != Some("13") {
        return Err(refuse(
            Answer::new(426, "WebSocket version 13 only (RFC 6455)")
                .with("Sec-WebSocket-Version", "13"),
            "version",
        ));
    }
    if !head.is_websocket_upgrade() {
        return Err(refuse(
            Answer::new(400, "bad WebSocket handshake (RFC 6455 §4.2.1)"),
            "handshake",
        ));
    }
    let allowed = &settings.http.allow_origin;
    if let Some(origin) = head.header("origin") {
        let open = allowed.is_empty() || allowed == "*" || origin == allowed;
        if !open && !is_dashboard_origin(origin, head, admin_port) {
            return Err(refuse(
                Answer::new(
                    403,
                    format!("origin {origin} is not allowed (http.allow_origin)"),
                ),
                "origin",
            ));
        }
    }
    let key = head.header("sec-websocket-key").unwrap_or("");
    Ok(Some(websocket::accept_key(key)))
}

/// Whether `origin` is this server's own dashboard (its live preview): the admin port, under
/// the name this request was sent to (the page builds the WebSocket URL from its own host
/// name). Such a page may play whatever `http.allow_origin` says.
fn is_dashboard_origin(origin: &str, head: &RequestHead, admin_port: u16) -> bool {
    let Some((name, port)) = http::origin_parts(origin) else {
        return false;
    };
    let host = head
        .header("host")
        .and_then(http::authority_parts)
        .map(|(host, _)| host);
    port == admin_port && host.is_some_and(|h| h.eq_ignore_ascii_case(name))
}

/// How the connection's protocol reads in stats once the request is known.
pub fn protocol_of(framing: Framing) -> Protocol {
    match framing {
        Framing::WebSocket => Protocol::WsFlv,
        _ => Protocol::HttpFlv,
    }
}
