//! Scale-out across instances, below the actors: discovery through Redis ([`discovery`]:
//! which instance originates which stream, keys with a TTL) and what every relay connection
//! shares (how it connects, how it re-publishes data messages). The relays themselves are
//! actors (`actors::pull_relay`, `actors::push_relay`, driven by the registry through
//! `actors::relays`). See docs/scale-out.md.
//!
//! Loops are impossible: only origins advertise in Redis (a pulled stream never does), a
//! relay connection identifies itself by its `flashVer` ([`RELAY_FLASH_VER`]), and a play from
//! a relay never starts a pull.

pub mod discovery;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::client::ClientConfig;
use crate::protocol::amf0::{self, Amf0Value};
use crate::protocol::message::{type_id, RawMessage};

pub use discovery::{Discovery, DiscoveryError};

/// The `flashVer` relay connections announce in `connect`: the server recognises relays by it
/// ([`is_relay`]) and never pulls on their behalf.
pub const RELAY_FLASH_VER: &str = "FMLE/3.0 (compatible; reflector-relay/1)";

/// Whether a connection's `flashVer` is a relay's.
pub fn is_relay(flash_ver: &str) -> bool {
    flash_ver.contains("reflector-relay/")
}

/// How relays connect: announced as relays, Enhanced RTMP capable (so the origin forwards
/// HEVC, AV1, Opus... untouched), short timeouts (a dead origin is found quickly).
/// `tls`: the roots `rtmps://` servers are verified against (`None`: the public ones).
pub fn client_config(tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>) -> ClientConfig {
    ClientConfig {
        tls,
        flash_ver: RELAY_FLASH_VER.to_owned(),
        extra_connect_properties: vec![(
            "fourCcList".to_owned(),
            Amf0Value::StrictArray(vec![Amf0Value::String("*".into())]),
        )],
        timeout: Duration::from_secs(3),
        buffer_ms: 0,
        ..ClientConfig::default()
    }
}

/// A data message as a source would publish it: `onMetaData` gets its `@setDataFrame` back
/// (players receive it stripped), so the frame builder caches it for late joiners as it does
/// for a local publisher. `None` for what the serving side adds by itself
/// (`|RtmpSampleAccess`).
pub fn data_message(stream_id: u32, timestamp: u32, values: &[Amf0Value]) -> Option<RawMessage> {
    let first = match values.first() {
        Some(Amf0Value::String(s)) => s.as_str(),
        _ => "",
    };
    if first == "|RtmpSampleAccess" {
        return None;
    }
    let mut payload = Vec::new();
    if first == "onMetaData" {
        amf0::encode_all(&[Amf0Value::String("@setDataFrame".into())], &mut payload).ok()?;
    }
    amf0::encode_all(values, &mut payload).ok()?;
    Some(RawMessage {
        type_id: type_id::DATA_AMF0,
        stream_id,
        timestamp,
        payload: Bytes::from(payload),
    })
}
