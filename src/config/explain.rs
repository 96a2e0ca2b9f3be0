//! Turns the `config` crate's errors into one sentence an operator can act on: which source
//! set the value (the file, the `REFLECTOR_...` variable, the defaults), which key, and what
//! is accepted there.
//!
//! The crate reports an unknown key without its origin and an unknown enum value without the
//! accepted ones, and `anyhow` would print its message twice; this fills both gaps.

use std::cell::RefCell;
use std::path::Path;

use serde::de::{self, Deserialize, Visitor};

use super::{ConfigError, LegacyPlayers, PublishConflict, PullMode};
use crate::auth::{AuthMode, SharedObjectMode};

/// Where a key's value came from, most specific first: a flag (named by the caller), the
/// environment variable, the file, or the embedded defaults.
pub fn origin_of(key: &str, file: Option<&Path>) -> String {
    let var = env_var_name(key);
    if std::env::var_os(&var).is_some() {
        return format!("in environment variable {var}");
    }
    if let Some(path) = file {
        if file_has_key(path, key) {
            return format!("in {}", path.display());
        }
    }
    "in the embedded defaults".to_owned()
}

/// `live.gop_cache` -> `REFLECTOR_LIVE__GOP_CACHE`.
pub fn env_var_name(key: &str) -> String {
    format!("REFLECTOR_{}", key.replace('.', "__").to_uppercase())
}

fn file_has_key(path: &Path, key: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let Ok(mut value) = text.parse::<toml::Table>().map(toml::Value::Table) else {
        return false;
    };
    for part in key.split('.') {
        match value.get(part) {
            Some(v) => value = v.clone(),
            None => return false,
        }
    }
    true
}

/// The key and the reason inside a `config` error, without its own " for key ..." suffixes.
fn unwrap(err: &config::ConfigError) -> (Option<String>, Option<String>, String) {
    match err {
        config::ConfigError::At { error, origin, key } => {
            let (inner_key, inner_origin, reason) = unwrap(error);
            (
                key.clone().or(inner_key),
                origin.clone().or(inner_origin),
                reason,
            )
        }
        config::ConfigError::Type {
            origin,
            unexpected,
            expected,
            key,
        } => (
            key.clone(),
            origin.clone(),
            format!("expected {expected}, found {unexpected}"),
        ),
        config::ConfigError::Message(m) => (None, None, m.clone()),
        other => (None, None, other.to_string()),
    }
}

/// Rewrites the serde messages the operator sees most: an unknown key (the key is the parent
/// plus the field) and an unknown enum value (the accepted values are listed).
fn reword(key: Option<String>, reason: &str) -> (Option<String>, String) {
    if let Some(rest) = reason.strip_prefix("unknown field `") {
        if let Some((field, expected)) = rest.split_once("`, expected ") {
            let full = match &key {
                Some(parent) if !parent.is_empty() => format!("{parent}.{field}"),
                _ => field.to_owned(),
            };
            let section = key.as_deref().unwrap_or("the top level");
            let accepted = expected.trim_start_matches("one of ").replace('`', "");
            let hint = closest(field, accepted.split(", "))
                .map(|c| format!(" (did you mean {c}?)"))
                .unwrap_or_default();
            return (
                Some(full),
                format!("unknown key{hint}; [{section}] accepts: {accepted}"),
            );
        }
    }
    if let Some(rest) = reason.strip_prefix("enum ") {
        if let Some((name, value)) = rest.split_once(" does not have variant constructor ") {
            let accepted = enum_variants(name)
                .map(|v| v.join(", "))
                .unwrap_or_else(|| "see config/default.toml".to_owned());
            return (
                key,
                format!("{value:?} is not accepted; one of: {accepted}"),
            );
        }
    }
    if let Some(field) = reason
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        let full = match &key {
            Some(parent) if !parent.is_empty() => format!("{parent}.{field}"),
            _ => field.to_owned(),
        };
        return (Some(full), "is required here".to_owned());
    }
    (key, reason.to_owned())
}

/// The accepted name nearest to a typo, if one is within two edits.
fn closest<'a>(typo: &str, accepted: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    accepted
        .map(|a| (edit_distance(typo, a), a))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

/// Levenshtein distance over chars (keys are short; one row of memory).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row.first().copied().unwrap_or(0);
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev + usize::from(ca != *cb);
            prev = row.get(j + 1).copied().unwrap_or(usize::MAX);
            let insert = row.get(j).copied().unwrap_or(usize::MAX).saturating_add(1);
            let delete = prev.saturating_add(1);
            if let Some(cell) = row.get_mut(j + 1) {
                *cell = substitute.min(insert).min(delete);
            }
        }
    }
    row.last().copied().unwrap_or(0)
}

/// One error naming the origin, the key and what is accepted.
pub fn explain(err: config::ConfigError, file: Option<&Path>) -> ConfigError {
    if let config::ConfigError::FileParse { uri, cause } = &err {
        let origin = uri
            .clone()
            .or_else(|| file.map(|p| p.display().to_string()))
            .map(|p| format!("in {p}"))
            .unwrap_or_else(|| "in the configuration file".to_owned());
        return ConfigError::Source {
            origin,
            key: String::new(),
            reason: format!("not valid TOML: {cause}"),
        };
    }
    if let config::ConfigError::Foreign(cause) = &err {
        let origin = file
            .map(|p| format!("in {}", p.display()))
            .unwrap_or_else(|| "in the configuration".to_owned());
        return ConfigError::Source {
            origin,
            key: String::new(),
            reason: cause.to_string(),
        };
    }
    let (key, origin, reason) = unwrap(&err);
    let (key, reason) = reword(key, &reason);
    let key = key.unwrap_or_default();
    let origin = match origin.as_deref() {
        // The crate names the environment as a whole; the operator needs the variable.
        Some("the environment") | None if !key.is_empty() => origin_of(&key, file),
        Some(o) => format!("in {o}"),
        None => "in the configuration".to_owned(),
    };
    ConfigError::Source {
        origin,
        key,
        reason,
    }
}

/// The accepted values of the configuration's enums, read from their own `Deserialize` so the
/// list cannot drift from the code.
fn enum_variants(name: &str) -> Option<&'static [&'static str]> {
    [
        variants_of::<PublishConflict>(),
        variants_of::<LegacyPlayers>(),
        variants_of::<AuthMode>(),
        variants_of::<SharedObjectMode>(),
        variants_of::<PullMode>(),
    ]
    .into_iter()
    .flatten()
    .find(|(n, _)| *n == name)
    .map(|(_, v)| v)
}

/// `(enum name, variant names)` of a serde-derived enum: a deserializer that records what
/// `deserialize_enum` is called with and then fails.
pub(crate) fn variants_of<'de, T: Deserialize<'de>>(
) -> Option<(&'static str, &'static [&'static str])> {
    let seen = RefCell::new(None);
    let _ = T::deserialize(Recorder(&seen));
    seen.into_inner()
}

type Seen = RefCell<Option<(&'static str, &'static [&'static str])>>;

struct Recorder<'a>(&'a Seen);

#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("recorded")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Stop
    }
}

impl<'de> de::Deserializer<'de> for Recorder<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        *self.0.borrow_mut() = Some((name, variants));
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_variants_come_from_the_types() {
        assert_eq!(
            enum_variants("PublishConflict"),
            Some(&["reject", "takeover", "protect"][..])
        );
        assert!(enum_variants("AuthMode").is_some_and(|v| v.contains(&"callback")));
        assert_eq!(enum_variants("Nope"), None);
    }

    #[test]
    fn unknown_field_names_the_full_key_and_the_accepted_ones() {
        let (key, reason) = reword(
            Some("live".into()),
            "unknown field `gop_cach`, expected one of `gop_cache`, `max_lag_ms`",
        );
        assert_eq!(key.as_deref(), Some("live.gop_cach"));
        assert_eq!(
            reason,
            "unknown key (did you mean gop_cache?); [live] accepts: gop_cache, max_lag_ms"
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(closest("zzz", ["gop_cache"].into_iter()), None);
    }

    #[test]
    fn unknown_enum_value_lists_the_accepted_values() {
        let (key, reason) = reword(
            Some("live.publish_conflict".into()),
            "enum PublishConflict does not have variant constructor kick",
        );
        assert_eq!(key.as_deref(), Some("live.publish_conflict"));
        assert_eq!(
            reason,
            "\"kick\" is not accepted; one of: reject, takeover, protect"
        );
    }

    #[test]
    fn env_var_names_follow_the_documented_scheme() {
        assert_eq!(env_var_name("live.gop_cache"), "REFLECTOR_LIVE__GOP_CACHE");
    }
}
