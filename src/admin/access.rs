//! Who the admin port answers, decided before any handler runs.
//!
//! A browser on the operator's machine can reach a loopback admin port from any web page, so
//! (issue #21):
//! - **Host** — without a token only `localhost`, loopback addresses and
//!   `admin.allowed_hosts` are answered: a DNS-rebinding page (its own name resolved to
//!   127.0.0.1, so the browser deems it same-origin) always sends its own name. `/healthz`
//!   and `/readyz` answer any Host (they say ready or not, nothing else). With a token any
//!   Host is answered: a rebinding page has no token.
//! - **Origin** — a request carrying an `Origin` that is not the port's own (`http://` or
//!   `https://` plus the request's Host) is refused, whatever its method. Browsers set Origin
//!   on every cross-origin POST/PUT/DELETE and on every `fetch`; a page cannot forge it.
//! - **Content type** — every method but GET and HEAD needs `Content-Type: application/json`.
//!   A cross-origin page can send that only after a CORS preflight, which this port never
//!   grants; an HTML form or `sendBeacon` cannot send it at all.
//! - **Token** — when `admin.token` is set, everything but the probes and the dashboard's
//!   static files (code and style, no data) needs `Authorization: Bearer <token>`.

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{Method, StatusCode};
use actix_web::HttpResponse;

use crate::protocol::http::authority_parts;

/// Paths answered whatever the Host, without a token: liveness and readiness probes.
const PROBES: &[&str] = &["/healthz", "/readyz"];

/// Paths answered without a token: the probes and the dashboard shell (no data in them).
const PUBLIC: &[&str] = &[
    "/healthz",
    "/readyz",
    "/",
    "/assets/app.js",
    "/assets/style.css",
    "/assets/vendor/mpegts.js",
];

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "this admin port has no token and answers only Host localhost, a loopback address or \
         a name in admin.allowed_hosts"
    )]
    ForeignHost,
    #[error("cross-origin requests are refused: Origin is not this admin port")]
    ForeignOrigin,
    #[error("requests that change state need Content-Type: application/json")]
    NotJson,
    #[error("a valid bearer token is required")]
    Token,
}

impl Refusal {
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::ForeignHost => StatusCode::MISDIRECTED_REQUEST,
            Refusal::ForeignOrigin => StatusCode::FORBIDDEN,
            Refusal::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Refusal::Token => StatusCode::UNAUTHORIZED,
        }
    }

    pub fn response(self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status());
        if self == Refusal::Token {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"reflector\""));
        }
        response
            .content_type("application/json")
            .body(serde_json::json!({ "error": self.to_string() }).to_string())
    }
}

/// The admin port's access rules (see the module doc).
#[derive(Debug, Clone)]
pub struct Access {
    token: Option<String>,
    /// Lowercase, without port.
    allowed_hosts: Vec<String>,
}

impl Access {
    pub fn new(token: Option<&str>, allowed_hosts: Vec<String>) -> Self {
        Access {
            token: token.map(str::to_owned),
            allowed_hosts,
        }
    }

    /// The rules `settings` give (`admin.token`, `admin.allowed_hosts`).
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Access::new(settings.admin.token(), settings.admin.allowed_hosts())
    }

    /// Whether a bearer token is configured (key and ban routes need one).
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// `Ok` when the request may reach its handler. `authority` is the request target's
    /// authority, if it had one (absolute-form request line, HTTP/2).
    pub fn check(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        authority: Option<&str>,
    ) -> Result<(), Refusal> {
        let mut hosts = headers.get_all(header::HOST);
        let host = hosts.next().map(|h| h.to_str().map_err(|_| ()));
        if hosts.next().is_some() {
            return Err(Refusal::ForeignHost);
        }
        let host = match host {
            Some(Ok(h)) => Some(h),
            Some(Err(())) => return Err(Refusal::ForeignHost),
            None => None,
        };
        if self.token.is_none() && !PROBES.contains(&path) {
            // Every name the request gives must be ours, and it must give one.
            let names: Vec<&str> = host.into_iter().chain(authority).collect();
            if names.is_empty() || !names.iter().all(|h| self.host_allowed(h)) {
                return Err(Refusal::ForeignHost);
            }
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let ours = host.or(authority);
            if !origin
                .to_str()
                .is_ok_and(|o| ours.is_some_and(|h| same_origin(o, h)))
            {
                return Err(Refusal::ForeignOrigin);
            }
        }
        if !matches!(*method, Method::GET | Method::HEAD) && !is_json(headers) {
            return Err(Refusal::NotJson);
        }
        if let Some(token) = &self.token {
            if !PUBLIC.contains(&path) && !bearer_matches(headers, token) {
                return Err(Refusal::Token);
            }
        }
        Ok(())
    }

    /// Whether a Host value (`name[:port]`) names this port while it has no token.
    fn host_allowed(&self, host: &str) -> bool {
        let Some(name) = host_name(host) else {
            return false;
        };
        let name = name.to_ascii_lowercase();
        is_loopback(&name) || self.allowed_hosts.contains(&name)
    }
}

/// The name part of a Host value; `None` when malformed.
fn host_name(host: &str) -> Option<&str> {
    authority_parts(host).map(|(name, _)| name)
}

/// `localhost` and loopback addresses (127.0.0.0/8, `[::1]`): names no page can rebind.
fn is_loopback(name: &str) -> bool {
    if name == "localhost" {
        return true;
    }
    match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok_and(|a| {
            a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }),
        None => name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback()),
    }
}

/// Whether `origin` (`scheme://host[:port]`) is this port as reached through `host`.
fn same_origin(origin: &str, host: &str) -> bool {
    let lower = origin.to_ascii_lowercase();
    let authority = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"));
    authority.is_some_and(|a| a.eq_ignore_ascii_case(host))
}

/// `Content-Type: application/json`, parameters (charset) allowed.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// `Authorization: Bearer <token>` (the scheme is case-insensitive, RFC 6750 §2.1).
fn bearer_matches(headers: &HeaderMap, expected: &str) -> bool {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    presented.is_some_and(|t| constant_time_eq(t.as_bytes(), expected.as_bytes()))
}

/// Compare without leaking the position of the first difference through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
