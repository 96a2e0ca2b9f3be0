//! The subscriber actor: one per NetStream that plays. It owns the play's lifetime: it joins
//! its arbiter's fan-out of the stream with an [`RtmpPlayer`] (which receives the frames, in
//! place, and applies the delivery gate), takes the player's controls (pause, receiveAudio,
//! receiveVideo, stop), and closes a player that stays behind past the lag limit.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::connection::{CloseConnection, Connection};
use super::fanout;
use super::publisher::Publisher;
use super::registry::{Leave, Registry};
use super::ConnectionId;
use crate::config::{LegacyPlayers, Settings};
use crate::hub::gate::PlayerCaps;
use crate::hub::{Budgets, DeliveryGate, Player};
use crate::output::outbox::Outbox;
use crate::output::rtmp::RtmpPlayer;
use crate::stats::{ServerStats, StreamStats, SubscriberStats};

/// Plays one resource to one NetStream of a connection.
pub struct Subscriber {
    connection_id: ConnectionId,
    stream_id: u32,
    app: String,
    name: String,
    publisher: Addr<Publisher>,
    registry: Addr<Registry>,
    connection: Addr<Connection>,
    settings: Arc<Settings>,
    server_stats: Arc<ServerStats>,
    stats: Arc<SubscriberStats>,
    player: Rc<RefCell<RtmpPlayer>>,
    stream_stats: Option<Arc<StreamStats>>,
}

impl Subscriber {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        connection_id: ConnectionId,
        stream_id: u32,
        app: String,
        name: String,
        outbox: Rc<Outbox>,
        publisher: Addr<Publisher>,
        registry: Addr<Registry>,
        connection: Addr<Connection>,
        settings: Arc<Settings>,
        server_stats: Arc<ServerStats>,
        stats: Arc<SubscriberStats>,
        reset: bool,
        caps: Arc<PlayerCaps>,
    ) -> Self {
        let caps = PlayerCaps {
            forward_all: settings.live.legacy_players == LegacyPlayers::Forward,
            ..(*caps).clone()
        };
        let gate = DeliveryGate::new(Budgets::from(&settings.live), caps);
        let player = RtmpPlayer {
            connection_id,
            stream_id,
            resource: format!("{app}/{name}"),
            name: name.clone(),
            outbox,
            stats: stats.clone(),
            gate,
            reset,
            notify: settings.live.unpublish_notify,
            ended: false,
        };
        Subscriber {
            connection_id,
            stream_id,
            app,
            name,
            publisher,
            registry,
            connection,
            settings,
            server_stats,
            stats,
            player: Rc::new(RefCell::new(player)),
            stream_stats: None,
        }
    }

    fn resource(&self) -> String {
        format!("{}/{}", self.app, self.name)
    }

    fn check_lag(&mut self, ctx: &mut Context<Self>) {
        let player = self.player.borrow();
        if player.ended {
            drop(player);
            ctx.stop();
            return;
        }
        let over = crate::output::over_lag_limit(
            &player.outbox,
            &self.stats,
            self.settings.live.max_lag_ms,
            self.connection_id,
            || self.resource(),
        );
        if over {
            if let Ok(mut reason) = self.stats.close_reason.lock() {
                *reason = Some("player lag limit".into());
            }
            self.connection.do_send(CloseConnection {
                reason: "player lag limit".into(),
            });
            drop(player);
            ctx.stop();
        }
    }
}

impl Actor for Subscriber {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.server_stats.actors.subscribers.fetch_add(1, Relaxed);
        let key = (self.connection_id, self.stream_id);
        let resource = self.resource();
        self.stream_stats = self
            .server_stats
            .streams
            .get(&resource)
            .map(|e| e.value().clone());
        if let Some(s) = &self.stream_stats {
            s.subscribers.insert(key, self.stats.clone());
        }
        let player: Rc<RefCell<dyn Player>> = self.player.clone();
        let queue = fanout::join(
            &resource,
            &self.publisher,
            &self.settings,
            &self.server_stats,
            key,
            player,
        );
        let _ = self.stats.mailbox.set(queue);
        ctx.run_interval(Duration::from_millis(250), |act, ctx| act.check_lag(ctx));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.server_stats.actors.subscribers.fetch_sub(1, Relaxed);
        let key = (self.connection_id, self.stream_id);
        // `started` always joined before this runs.
        fanout::leave(&self.resource(), &self.publisher, key);
        if let Some(s) = &self.stream_stats {
            s.subscriber_gone(&key, &self.server_stats);
        }
        self.registry.do_send(Leave {
            app: self.app.clone(),
            name: self.name.clone(),
        });
    }
}

/// Player controls routed from the connection.
#[derive(Message)]
#[rtype(result = "()")]
pub enum PlayControl {
    ReceiveAudio(bool),
    ReceiveVideo(bool),
    Pause { pause: bool, milliseconds: f64 },
    Stop,
}

impl Handler<PlayControl> for Subscriber {
    type Result = ();

    fn handle(&mut self, msg: PlayControl, ctx: &mut Context<Self>) {
        let mut player = self.player.borrow_mut();
        match msg {
            PlayControl::ReceiveAudio(flag) => player.gate.receive_audio(flag),
            PlayControl::ReceiveVideo(flag) => player.gate.receive_video(flag),
            PlayControl::Pause {
                pause,
                milliseconds: _,
            } => {
                if pause {
                    player.pause();
                } else {
                    player.unpause();
                }
            }
            PlayControl::Stop => ctx.stop(),
        }
    }
}
