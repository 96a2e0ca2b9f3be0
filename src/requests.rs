//! Messages that reach a connection actor from outside its own connection (its stream
//! actors, the admin API, the drain). They live below the actors so that the stats, which
//! hold a connection's handles for the admin API, import no actor.

use actix::prelude::*;

/// Close a connection with a logged reason (from its stream actors, the writer, the admin).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseConnection {
    pub reason: String,
}

/// Ask the client to reconnect (E-RTMP v2 reconnect request), to `tc_url` if given. Clients
/// that did not announce `capsEx` Reconnect are closed instead. Used by graceful drain and by
/// the admin action that moves publishers to another server.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct RequestReconnect {
    pub tc_url: Option<String>,
    pub description: String,
}
