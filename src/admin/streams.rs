//! `/api/v1/streams...`: streams are addressed by the numeric id of their stats entry, never
//! by name in a path. A name is whatever a publisher or relay chose: a browser resolves
//! `%2e%2e` and drops `#...`, the server decodes `%61`, so a path built from one stream's
//! name can name another (issue #21). Exact lookups by name go through the query string,
//! which is decoded once and never normalised: `GET /api/v1/streams?app=live&name=cam`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{control, error, json, views, AdminState, HISTORY_POINTS};
use crate::actors::publisher::StopPublisher;
use crate::actors::registry::{Lookup, PublisherOf};

/// `?app=&name=` of `GET /api/v1/streams`: exact filters, each optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    app: Option<String>,
    name: Option<String>,
}

impl Filter {
    fn keeps(&self, app: &str, name: &str) -> bool {
        self.app.as_deref().is_none_or(|a| a == app)
            && self.name.as_deref().is_none_or(|n| n == name)
    }
}

/// A stream id from its path segment: decimal digits only.
fn parse_id(raw: &str) -> Option<u64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

const BY_ID: &str = "streams are addressed by their numeric id (\"id\" in /api/v1/streams; \
                     find one by name with /api/v1/streams?app=APP&name=NAME)";

/// `GET /api/v1/streams[?app=&name=]`.
pub async fn list(state: web::Data<AdminState>, filter: web::Query<Filter>) -> HttpResponse {
    json(views::streams(&state.stats, &state.sampler, |s| {
        filter.keeps(&s.app, &s.name)
    }))
}

/// `GET /api/v1/streams/{id}`.
pub async fn detail(state: web::Data<AdminState>, id: web::Path<String>) -> HttpResponse {
    let Some(id) = parse_id(&id) else {
        return error(StatusCode::NOT_FOUND, BY_ID);
    };
    match state.stats.stream_by_id(id) {
        Some((key, s)) => json(views::stream(&state.stats, &state.sampler, &key, &s)),
        None => error(StatusCode::NOT_FOUND, "no such stream"),
    }
}

/// `POST /api/v1/streams/{id}/stop`: stop the publisher of exactly that stream entry. An
/// optional body `{"ban_s": N, "ban": "key"|"ip"|"stream"}` bans it first (see
/// [`control::StopBody`]), so that an encoder reconnecting at once is refused until then.
pub async fn stop(
    req: HttpRequest,
    state: web::Data<AdminState>,
    id: web::Path<String>,
    bytes: web::Bytes,
) -> HttpResponse {
    let Some(id) = parse_id(&id) else {
        return error(StatusCode::NOT_FOUND, BY_ID);
    };
    let ban_request: control::StopBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        control::StopBody::default()
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(b) => b,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("expected a JSON object like {}: {e}", control::STOP_EXAMPLE),
                )
            }
        }
    };
    let Some((key, _)) = state.stats.stream_by_id(id) else {
        return error(StatusCode::NOT_FOUND, "no such stream");
    };
    let found = state.registry.send(Lookup { key: key.clone() }).await;
    // The registry may have released the entry and made a new one for the same key since
    // the id was resolved. Ids are never reused, so if `id` still holds the key now, it held
    // it when the registry answered: the publisher found is this stream's.
    if state.stats.streams.get(&key).map(|s| s.id) != Some(id) {
        return error(StatusCode::NOT_FOUND, "no such stream");
    }
    let (publisher, connection) = match found {
        Ok(Some((addr, Some(connection)))) => (addr, connection),
        Ok(_) => return error(StatusCode::NOT_FOUND, "no publisher"),
        Err(_) => return error(StatusCode::SERVICE_UNAVAILABLE, "registry unavailable"),
    };
    // Banned before it is stopped: an encoder that reconnects at once meets the ban.
    let ban = if ban_request.ban_s.is_some() || ban_request.ban.is_some() {
        let stream_key = match state.registry.send(PublisherOf { key: key.clone() }).await {
            Ok(Some((c, k))) if c == connection => k,
            Ok(_) => return error(StatusCode::NOT_FOUND, "no publisher"),
            Err(_) => return error(StatusCode::SERVICE_UNAVAILABLE, "registry unavailable"),
        };
        match control::ban_publisher(&state, &ban_request, &key, connection, stream_key) {
            Ok(ban) => ban,
            Err(refused) => return refused.response(),
        }
    } else {
        None
    };
    match publisher.send(StopPublisher).await {
        Ok(true) => {
            tracing::info!(
                stream_id = id,
                stream = ?key,
                connection,
                ban = ?ban.as_ref().map(|b| b.id),
                peer = %req.peer_addr().map(|a| a.to_string()).unwrap_or_default(),
                "admin: publisher stopped"
            );
            json(serde_json::json!({
                "stopped": id,
                "key": key,
                "connection": connection,
                "ban": ban.as_ref().map(control::ban_json),
            }))
        }
        Ok(false) => error(StatusCode::NOT_FOUND, "no publisher"),
        Err(_) => error(StatusCode::NOT_FOUND, "stream is gone"),
    }
}

/// Any other `/api/v1/streams/...`: an id route with the wrong method, or a name route of
/// earlier versions.
pub async fn not_an_id(req: HttpRequest) -> HttpResponse {
    let tail = req.match_info().get("tail").unwrap_or_default();
    let (id, action) = tail.split_once('/').unwrap_or((tail, ""));
    let allow = match action {
        "" => "GET",
        "stop" => "POST",
        _ => "",
    };
    if parse_id(id).is_some() && !allow.is_empty() {
        return HttpResponse::MethodNotAllowed()
            .insert_header((actix_web::http::header::ALLOW, allow))
            .content_type("application/json")
            .body(serde_json::json!({ "error": format!("use {allow}") }).to_string());
    }
    error(StatusCode::NOT_FOUND, BY_ID)
}

/// `GET /api/v1/history`: the chart series of every stream, by stream id.
pub async fn history(state: web::Data<AdminState>) -> HttpResponse {
    json(views::history(&state.stats, &state.sampler, HISTORY_POINTS))
}

#[cfg(test)]
mod tests;
