//! `/api/v1/keys` and `/api/v1/bans`: publish and play keys per app, and bans (address or
//! CIDR block, stream key, stream), changed at run time and kept in `auth.keys_file`
//! ([`crate::auth::control`]).
//!
//! Keys are secrets, and a ban can lock anyone out: these routes answer only when the admin
//! port has a token (`admin.token`); without one they are refused with 403 whatever the
//! Host, so that a loopback port without a token never hands keys to a local web page.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{error, json, AdminState};
use crate::auth::control::{unix_ms, Ban, BanTarget, ControlError, IpNet, KeyAction};

const NO_TOKEN: &str = "key and ban management needs an admin token (admin.token or \
                        REFLECTOR_ADMIN__TOKEN): keys are secrets and bans lock clients out";

/// A refused request: its status and message (an `HttpResponse` is too big for an `Err`).
pub struct Refused(StatusCode, String);

impl Refused {
    fn new(status: StatusCode, message: &str) -> Refused {
        Refused(status, message.to_owned())
    }

    pub fn response(self) -> HttpResponse {
        error(self.0, &self.1)
    }
}

/// 403 unless the admin port has a token (the guard has already checked it was presented).
fn require_token(state: &AdminState) -> Result<(), Refused> {
    if state.access.load().has_token() {
        Ok(())
    } else {
        Err(Refused::new(StatusCode::FORBIDDEN, NO_TOKEN))
    }
}

/// A JSON body, or the 400 that says what was expected.
fn body<T: for<'de> Deserialize<'de> + Default>(bytes: &[u8], example: &str) -> Result<T, Refused> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| {
        Refused(
            StatusCode::BAD_REQUEST,
            format!("expected a JSON object like {example}: {e}"),
        )
    })
}

fn control_error(e: ControlError) -> Refused {
    match e {
        ControlError::Invalid(reason) => Refused(StatusCode::BAD_REQUEST, reason),
        other => {
            tracing::error!(error = %other, "admin: keys file not written; change not made");
            Refused(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
        }
    }
}

fn admin_peer(req: &HttpRequest) -> String {
    req.peer_addr().map(|a| a.to_string()).unwrap_or_default()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyBody {
    app: Option<String>,
    action: Option<KeyAction>,
    key: Option<String>,
    #[serde(default)]
    note: String,
}

const KEY_EXAMPLE: &str = r#"{"app":"live","action":"publish","key":"s3cret","note":"cam 1"}"#;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFilter {
    app: Option<String>,
}

/// `GET /api/v1/keys[?app=]`: the keys added through the API (configured keys stay in the
/// configuration and are not repeated here).
pub async fn list_keys(
    state: web::Data<AdminState>,
    filter: web::Query<KeyFilter>,
) -> HttpResponse {
    if let Err(r) = require_token(&state) {
        return r.response();
    }
    let keys: Vec<_> = state
        .control
        .keys()
        .into_iter()
        .filter(|k| filter.app.as_deref().is_none_or(|a| a == k.app))
        .collect();
    json(serde_json::json!({
        "count": keys.len(),
        "keys": keys,
        "file": state.control.path().map(|p| p.display().to_string()),
    }))
}

/// `POST /api/v1/keys` `{"app","action":"publish"|"play","key"?,"note"?}`: without `key`
/// one is generated (128 random bits, hex). 201 when added, 200 when it was there already.
pub async fn add_key(
    req: HttpRequest,
    state: web::Data<AdminState>,
    bytes: web::Bytes,
) -> HttpResponse {
    if let Err(r) = require_token(&state) {
        return r.response();
    }
    let b: KeyBody = match body(&bytes, KEY_EXAMPLE) {
        Ok(b) => b,
        Err(r) => return r.response(),
    };
    let (Some(app), Some(action)) = (b.app, b.action) else {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("\"app\" and \"action\" are required, e.g. {KEY_EXAMPLE}"),
        );
    };
    let key = b.key.unwrap_or_else(|| {
        use rand::RngCore;
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    });
    match state.control.add_key(&app, action, &key, &b.note) {
        Ok((k, added)) => {
            if added {
                tracing::info!(app = %crate::names::Esc(&app), action = ?action, admin = %admin_peer(&req), "admin: key added");
            }
            let status = if added {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            HttpResponse::build(status)
                .content_type("application/json")
                .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
                .body(serde_json::json!({ "added": added, "key": k }).to_string())
        }
        Err(e) => control_error(e).response(),
    }
}

/// `DELETE /api/v1/keys` `{"app","action","key"}`: effective for the next publish or play.
/// A session that already started with the key goes on (as after a configuration reload);
/// stop it with `POST /api/v1/streams/{id}/stop`, with a ban if it must not come back.
pub async fn revoke_key(
    req: HttpRequest,
    state: web::Data<AdminState>,
    bytes: web::Bytes,
) -> HttpResponse {
    if let Err(r) = require_token(&state) {
        return r.response();
    }
    let b: KeyBody = match body(&bytes, KEY_EXAMPLE) {
        Ok(b) => b,
        Err(r) => return r.response(),
    };
    let (Some(app), Some(action), Some(key)) = (b.app, b.action, b.key) else {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("\"app\", \"action\" and \"key\" are required, e.g. {KEY_EXAMPLE}"),
        );
    };
    match state.control.revoke_key(&app, action, &key) {
        Ok(true) => {
            tracing::info!(app = %crate::names::Esc(&app), action = ?action, admin = %admin_peer(&req), "admin: key revoked");
            json(serde_json::json!({ "revoked": true }))
        }
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            "no such API key (keys from the configuration file are changed there)",
        ),
        Err(e) => control_error(e).response(),
    }
}

/// A ban as the API shows it.
pub fn ban_json(ban: &Ban) -> serde_json::Value {
    let now = unix_ms();
    let (kind, value) = match &ban.target {
        BanTarget::Ip(net) => ("ip", net.to_string()),
        BanTarget::Key(k) => ("key", k.clone()),
        BanTarget::Stream(s) => ("stream", s.clone()),
    };
    serde_json::json!({
        "id": ban.id,
        kind: value,
        "expires_at_ms": ban.expires_ms,
        "expires_in_s": ban.expires_ms.map(|e| e.saturating_sub(now).div_ceil(1000)),
        "reason": ban.reason,
        "created_ms": ban.created_ms,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BanBody {
    ip: Option<String>,
    key: Option<String>,
    stream: Option<String>,
    /// Seconds from now.
    duration_s: Option<f64>,
    /// Unix seconds.
    expires_at: Option<f64>,
    #[serde(default)]
    reason: String,
}

const BAN_EXAMPLE: &str = r#"{"ip":"198.51.100.0/24","duration_s":600,"reason":"flood"} (or "key":"...", or "stream":"live/cam"; "expires_at": Unix seconds; neither = until lifted)"#;

/// The expiry in Unix ms from `duration_s` or `expires_at` (`None` = until lifted).
pub fn expiry(duration_s: Option<f64>, expires_at: Option<f64>) -> Result<Option<u64>, String> {
    let ok = |v: f64| v.is_finite() && v > 0.0 && v < 1e11;
    match (duration_s, expires_at) {
        (Some(_), Some(_)) => Err("give duration_s or expires_at, not both".into()),
        (Some(d), None) if ok(d) => Ok(Some(unix_ms() + (d * 1000.0) as u64)),
        (None, Some(at)) if ok(at) => Ok(Some((at * 1000.0) as u64)),
        (None, None) => Ok(None),
        _ => Err("duration_s and expires_at are positive numbers of seconds".into()),
    }
}

/// `GET /api/v1/bans`: the bans in force, and the configured `auth.banned_ips`.
pub async fn list_bans(state: web::Data<AdminState>) -> HttpResponse {
    if let Err(r) = require_token(&state) {
        return r.response();
    }
    let bans: Vec<_> = state.control.bans().iter().map(ban_json).collect();
    json(serde_json::json!({
        "count": bans.len(),
        "bans": bans,
        "file": state.control.path().map(|p| p.display().to_string()),
    }))
}

/// `POST /api/v1/bans` (see [`BAN_EXAMPLE`]): 201 with the ban and its id. Effective for the
/// next connect (address), publish or play (key, stream); connections already in are not
/// cut (kick them with `DELETE /api/v1/connections/{id}`).
pub async fn add_ban(
    req: HttpRequest,
    state: web::Data<AdminState>,
    bytes: web::Bytes,
) -> HttpResponse {
    if let Err(r) = require_token(&state) {
        return r.response();
    }
    let b: BanBody = match body(&bytes, BAN_EXAMPLE) {
        Ok(b) => b,
        Err(r) => return r.response(),
    };
    let target = match (b.ip, b.key, b.stream) {
        (Some(ip), None, None) => match IpNet::parse(&ip) {
            Ok(net) => BanTarget::Ip(net),
            Err(e) => return error(StatusCode::BAD_REQUEST, &e),
        },
        (None, Some(key), None) => BanTarget::Key(key),
        (None, None, Some(stream)) => BanTarget::Stream(stream),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("exactly one of \"ip\", \"key\" or \"stream\", e.g. {BAN_EXAMPLE}"),
            )
        }
    };
    let expires = match expiry(b.duration_s, b.expires_at) {
        Ok(e) => e,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    match state.control.ban(target, expires, &b.reason) {
        Ok(ban) => {
            tracing::info!(ban = ban.id, target = %ban.target, expires_ms = ?ban.expires_ms, admin = %admin_peer(&req), "admin: ban added");
            HttpResponse::Created()
                .content_type("application/json")
                .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
                .body(serde_json::json!({ "ban": ban_json(&ban) }).to_string())
        }
        Err(e) => control_error(e).response(),
    }
}

/// `DELETE /api/v1/bans/{id}`: lift a ban.
pub async fn lift_ban(
    req: HttpRequest,
    state: web::Data<AdminState>,
    id: web::Path<u64>,
) -> HttpResponse {
    if let Err(r) = require_token(&state) {
        return r.response();
    }
    let id = id.into_inner();
    match state.control.lift(id) {
        Ok(true) => {
            tracing::info!(ban = id, admin = %admin_peer(&req), "admin: ban lifted");
            json(serde_json::json!({ "lifted": id }))
        }
        Ok(false) => error(StatusCode::NOT_FOUND, "no such ban (or it has expired)"),
        Err(e) => control_error(e).response(),
    }
}

/// What `POST /api/v1/streams/{id}/stop` may carry: ban the publisher for `ban_s` seconds,
/// by `ban` = `"key"` (the `?key=` it presented), `"ip"` (its address) or `"stream"` (the
/// stream name, whoever publishes it). Default: its key if it presented one, else the stream.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopBody {
    pub ban_s: Option<f64>,
    pub ban: Option<BanBy>,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BanBy {
    Ip,
    Key,
    Stream,
}

pub const STOP_EXAMPLE: &str = r#"{"ban_s":600,"ban":"key"} ("ban": "key", "ip" or "stream"; an empty body stops without a ban)"#;

/// Ban the publisher of `resource` (connection `connection`, key `stream_key`) as `body` asks.
pub fn ban_publisher(
    state: &AdminState,
    body: &StopBody,
    resource: &str,
    connection: u64,
    stream_key: Option<String>,
) -> Result<Option<Ban>, Refused> {
    let Some(seconds) = body.ban_s else {
        if body.ban.is_some() {
            return Err(Refused::new(
                StatusCode::BAD_REQUEST,
                "\"ban\" needs \"ban_s\" (seconds)",
            ));
        }
        return Ok(None);
    };
    require_token(state)?;
    let expires = expiry(Some(seconds), None).map_err(|e| Refused(StatusCode::BAD_REQUEST, e))?;
    let by = body.ban.unwrap_or(if stream_key.is_some() {
        BanBy::Key
    } else {
        BanBy::Stream
    });
    let target = match by {
        BanBy::Key => BanTarget::Key(stream_key.ok_or_else(|| {
            Refused::new(
                StatusCode::CONFLICT,
                "the publisher presented no stream key: ban by \"ip\" or \"stream\"",
            )
        })?),
        BanBy::Stream => BanTarget::Stream(resource.to_owned()),
        BanBy::Ip => {
            let peer = state
                .stats
                .connections
                .get(&connection)
                .map(|c| c.peer.ip())
                .ok_or_else(|| {
                    Refused::new(StatusCode::NOT_FOUND, "the publisher's connection is gone")
                })?;
            BanTarget::Ip(
                IpNet::parse(&peer.to_string())
                    .map_err(|e| Refused(StatusCode::INTERNAL_SERVER_ERROR, e))?,
            )
        }
    };
    state
        .control
        .ban(target, expires, &body.reason)
        .map(Some)
        .map_err(control_error)
}
