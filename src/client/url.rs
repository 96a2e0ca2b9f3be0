//! `rtmp://` URLs: where to connect and which app and stream name to ask for.

use super::ClientError;

/// The port RTMP servers listen on when the URL names none.
pub const DEFAULT_PORT: u16 = 1935;
/// The port of an `rtmps://` URL that names none (as ffmpeg, OBS and librtmp assume).
pub const DEFAULT_TLS_PORT: u16 = 443;

/// A parsed `rtmp[s]://host[:port]/app[/more/app]/stream[?query]` URL.
///
/// The app is every path segment but the last and the stream name is the last segment plus
/// the query string, which goes to the server unchanged (it carries e.g. `key=`). This is
/// ffmpeg's split for URLs of up to three segments; for deeper paths ffmpeg keeps only two
/// segments in the app, while here every segment but the last is the app. A URL with a single
/// segment names only the app: `stream` is empty (connect-only use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    /// Host name or IP address, without the brackets of an IPv6 literal.
    pub host: String,
    pub port: u16,
    /// Application name sent in `connect` (may contain `/`).
    pub app: String,
    /// Stream name sent in `publish`/`play`, including `?query` if the URL had one.
    pub stream: String,
    /// `rtmps://`: RTMP inside TLS, the host name verified and sent as SNI.
    pub tls: bool,
}

fn bad(url: &str, reason: &'static str) -> ClientError {
    ClientError::BadUrl {
        url: url.to_owned(),
        reason,
    }
}

impl RtmpUrl {
    /// Parses an `rtmp://` or `rtmps://` URL. Other schemes (rtmpt, rtmpe) are refused.
    pub fn parse(url: &str) -> Result<Self, ClientError> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad(url, "missing scheme://"))?;
        let tls = if scheme.eq_ignore_ascii_case("rtmp") {
            false
        } else if scheme.eq_ignore_ascii_case("rtmps") {
            true
        } else {
            return Err(bad(url, "only rtmp:// and rtmps:// are supported"));
        };
        let (authority, path) = rest
            .split_once('/')
            .ok_or_else(|| bad(url, "missing /app"))?;
        let default_port = if tls { DEFAULT_TLS_PORT } else { DEFAULT_PORT };
        let (host, port) = split_authority(url, authority, default_port)?;
        // The query belongs to the stream name, and may itself contain '/'.
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        let path = path.trim_end_matches('/');
        if path.is_empty() {
            return Err(bad(url, "missing app name"));
        }
        let (app, stream) = match path.rsplit_once('/') {
            Some((app, stream)) => (app, stream),
            None => (path, ""),
        };
        if app.is_empty() || app.split('/').any(str::is_empty) {
            return Err(bad(url, "empty path segment in app"));
        }
        let mut stream = stream.to_owned();
        if let Some(q) = query {
            if stream.is_empty() {
                return Err(bad(url, "query string without a stream name"));
            }
            stream.push('?');
            stream.push_str(q);
        }
        Ok(RtmpUrl {
            host,
            port,
            app: app.to_owned(),
            stream,
            tls,
        })
    }

    /// The `tcUrl` sent in `connect`: `rtmp[s]://host:port/app`.
    pub fn tc_url(&self) -> String {
        let scheme = if self.tls { "rtmps" } else { "rtmp" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}/{}", self.host, self.port, self.app)
        } else {
            format!("{scheme}://{}:{}/{}", self.host, self.port, self.app)
        }
    }

    /// The same server and app with another stream name.
    pub fn with_stream(&self, stream: &str) -> RtmpUrl {
        RtmpUrl {
            stream: stream.to_owned(),
            ..self.clone()
        }
    }
}

fn split_authority(
    url: &str,
    authority: &str,
    default_port: u16,
) -> Result<(String, u16), ClientError> {
    if authority.contains('@') {
        return Err(bad(url, "user info in the URL is not supported"));
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        // IPv6 literal: [addr] or [addr]:port.
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| bad(url, "unclosed [ in host"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| bad(url, "junk after ]"))?,
            ),
        };
        (host, port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad(url, "missing host"));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(bad(url, "port is not a number in 1..=65535")),
        },
    };
    Ok((host.to_owned(), port))
}

impl std::fmt::Display for RtmpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.tc_url())?;
        if !self.stream.is_empty() {
            write!(f, "/{}", self.stream)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> RtmpUrl {
        RtmpUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn host_port_app_stream() {
        let u = parse("rtmp://127.0.0.1:1936/live/cam1");
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, 1936);
        assert_eq!(u.app, "live");
        assert_eq!(u.stream, "cam1");
        assert_eq!(u.tc_url(), "rtmp://127.0.0.1:1936/live");
        assert_eq!(u.to_string(), "rtmp://127.0.0.1:1936/live/cam1");
        assert!(!u.tls);
    }

    #[test]
    fn rtmps_urls_default_to_port_443() {
        let u = parse("rtmps://live.example/app/key1");
        assert!(u.tls);
        assert_eq!((u.host.as_str(), u.port), ("live.example", 443));
        assert_eq!(u.tc_url(), "rtmps://live.example:443/app");
        assert_eq!(parse("RTMPS://h:1936/a/b").port, 1936);
        assert!(RtmpUrl::parse("rtmpt://h/a/b").is_err());
    }

    #[test]
    fn default_port_and_scheme_case() {
        let u = parse("RTMP://example.com/live/x");
        assert_eq!(u.host, "example.com");
        assert_eq!(u.port, DEFAULT_PORT);
    }

    #[test]
    fn app_is_all_segments_but_the_last() {
        let u = parse("rtmp://h/app/inst/stream");
        assert_eq!((u.app.as_str(), u.stream.as_str()), ("app/inst", "stream"));
        let u = parse("rtmp://h/a/b/c/d");
        assert_eq!((u.app.as_str(), u.stream.as_str()), ("a/b/c", "d"));
    }

    #[test]
    fn query_stays_with_the_stream() {
        let u = parse("rtmp://h:99/live/cam?key=abc&x=a/b");
        assert_eq!(u.app, "live");
        assert_eq!(u.stream, "cam?key=abc&x=a/b");
    }

    #[test]
    fn app_only() {
        let u = parse("rtmp://h/live");
        assert_eq!((u.app.as_str(), u.stream.as_str()), ("live", ""));
        let u = parse("rtmp://h/live/");
        assert_eq!((u.app.as_str(), u.stream.as_str()), ("live", ""));
    }

    #[test]
    fn ipv6_literal() {
        let u = parse("rtmp://[::1]:2000/live/s");
        assert_eq!(u.host, "::1");
        assert_eq!(u.port, 2000);
        assert_eq!(u.tc_url(), "rtmp://[::1]:2000/live");
        let u = parse("rtmp://[::1]/live/s");
        assert_eq!(u.port, DEFAULT_PORT);
    }

    #[test]
    fn bad_urls_are_typed_errors() {
        for url in [
            "",
            "live/x",
            "http://h/live/x",
            "rtmpt://h/live/x",
            "rtmp://h",
            "rtmp://h/",
            "rtmp:///live/x",
            "rtmp://h:0/live/x",
            "rtmp://h:70000/live/x",
            "rtmp://h:abc/live/x",
            "rtmp://[::1/live/x",
            "rtmp://[::1]x/live/x",
            "rtmp://u@h/live/x",
            "rtmp://h//x",
            "rtmp://h/live?key=1",
        ] {
            assert!(
                matches!(RtmpUrl::parse(url), Err(ClientError::BadUrl { .. })),
                "{url:?} should be refused"
            );
        }
    }

    #[test]
    fn with_stream_keeps_server_and_app() {
        let u = parse("rtmp://h:1/a/b/s").with_stream("t?key=k");
        assert_eq!(u.to_string(), "rtmp://h:1/a/b/t?key=k");
    }
}
