//! App and stream names, and the one identity of a resource.
//!
//! Clients split an RTMP URL's path into the `connect` app and the stream name in different
//! places: for `rtmp://host/live/a/b/cam` ffmpeg sends app `live/a` + name `b/cam`, librtmp
//! (rtmpdump, GStreamer `rtmpsink`) app `live/a/b` + name `cam`. So the resource is the whole
//! path `app/name`, and its app, the unit authorization rules apply to, is the path's first
//! segment: [`Resource::canonical`] joins what the client sent and splits it again there. Both
//! clients above reach resource `live` / `a/b/cam` under the rules of `live`, and no split can
//! put a stream under one app's rules and another app's viewers.
//!
//! Names are never percent-decoded, so `%` is refused (a literal `%2F` would mean one stream
//! here and another to an HTTP client or the admin port), as are `#` (a URL fragment), `\`,
//! `?` outside the query separator, control and white-space characters, and empty, `.` and
//! `..` segments.

use std::fmt;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} is longer than {max} bytes")]
    TooLong { what: &'static str, max: usize },
    #[error("{what} has an empty, \".\" or \"..\" path segment")]
    Segment { what: &'static str },
    #[error("{what} has the character {c:?}, which names may not contain{why}")]
    Character {
        what: &'static str,
        c: char,
        why: &'static str,
    },
}

/// A resource: its app (one path segment) and its stream name (the rest of the path, may
/// contain `/`); without the query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub app: String,
    pub name: String,
}

impl Resource {
    /// The resource `connect_app` + `/` + `stream` (stream name without its `?query`) names:
    /// both checked, then split after the first segment.
    pub fn canonical(connect_app: &str, stream: &str, max_len: usize) -> Result<Self, NameError> {
        check("app", connect_app, max_len)?;
        check("stream name", stream, max_len)?;
        let (app, rest) = split_app(connect_app);
        let name = if rest.is_empty() {
            stream.to_owned()
        } else {
            format!("{rest}/{stream}")
        };
        if name.len() > max_len {
            return Err(NameError::TooLong {
                what: "stream name",
                max: max_len,
            });
        }
        Ok(Resource {
            app: app.to_owned(),
            name,
        })
    }

    /// The same app under the name an HTTP callback's `Location` gives (a leading `/` is
    /// ignored, as nginx-rtmp does). A name, never an app: it cannot leave this app.
    pub fn renamed(&self, location: &str, max_len: usize) -> Result<Self, NameError> {
        let name = location.trim().trim_start_matches('/');
        check("callback redirect", name, max_len)?;
        Ok(Resource {
            app: self.app.clone(),
            name: name.to_owned(),
        })
    }

    /// `app/name`: the registry's, the stats' and the admin API's key.
    pub fn key(&self) -> String {
        format!("{}/{}", self.app, self.name)
    }
}

/// What `connect` named, split after its first segment: the app, and the rest of the path
/// (empty for a one-segment app), which belongs to the names under it.
pub fn split_app(connect_app: &str) -> (&str, &str) {
    connect_app.split_once('/').unwrap_or((connect_app, ""))
}

/// An app from `connect` or a stream name: bounded, printable, no path tricks.
pub fn check(what: &'static str, name: &str, max_len: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { what });
    }
    if name.len() > max_len {
        return Err(NameError::TooLong { what, max: max_len });
    }
    if let Some(c) = name.chars().find(|&c| forbidden(c).is_some()) {
        let why = forbidden(c).unwrap_or_default();
        return Err(NameError::Character { what, c, why });
    }
    if name
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(NameError::Segment { what });
    }
    Ok(())
}

/// Why `c` may not be in a name (`Some("")` when it needs no explanation).
fn forbidden(c: char) -> Option<&'static str> {
    match c {
        '%' => Some(" (names are never percent-decoded)"),
        '#' => Some(" (a URL fragment)"),
        '?' => Some(" (only as the query separator)"),
        '\\' => Some(""),
        c if c.is_control() || c.is_whitespace() => Some(" (no control or white-space characters)"),
        _ => None,
    }
}

/// A peer-supplied string for a log line: control characters, line and paragraph
/// separators and other non-printable characters escaped as `str::escape_debug` does
/// (without quotes), so a name cannot forge or hide log lines. Use as `name = %Esc(&name)`.
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        for c in self.0.chars() {
            match c {
                // Quotes cannot break a line: kept readable.
                '\'' | '"' => f.write_char(c)?,
                c => write!(f, "{}", c.escape_debug())?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests;
