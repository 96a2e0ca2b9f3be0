//! The players of one stream on one core. The publisher sends each frame once per core that
//! has players; this hands it to them in place, in the order they joined, with no message, no
//! allocation and no wake-up per player. It mirrors the publisher's [`StreamCache`] from the
//! same frames, so a player joining on this core starts from it without a round trip.

#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::{Frame, StreamCache};
use crate::config::LiveSettings;

/// Identifies a player: its connection and message stream id.
pub type PlayerKey = (u64, u32);

/// An output's player of a stream (RTMP today), driven by its core's [`LocalFanout`].
pub trait Player {
    /// It joined: `live` says a publisher is on; `burst` is what it starts from (metadata,
    /// headers, the GOP), in order.
    fn start(&mut self, live: bool, burst: &mut dyn Iterator<Item = &Arc<Frame>>);
    /// A live frame; `after_gap` says frames were lost before it reached this core.
    fn frame(&mut self, frame: &Arc<Frame>, after_gap: bool);
    /// `frames` never reached this core (its fan-out mailbox was full).
    fn missed(&mut self, frames: u64);
    /// A publisher started (NetStream.Play.PublishNotify).
    fn published(&mut self);
    /// The publisher left (NetStream.Play.UnpublishNotify, StreamEOF).
    fn unpublished(&mut self);
    /// The stream's fan-out could not join the publisher (it is gone): the play ends.
    fn ended(&mut self);
}

type Shared = Rc<RefCell<dyn Player>>;

/// One stream's players on one core.
pub struct LocalFanout {
    live_settings: LiveSettings,
    cache: StreamCache,
    live: bool,
    /// The publisher's state has arrived; until then joiners wait in `waiting`.
    seeded: bool,
    players: Vec<(PlayerKey, Shared)>,
    waiting: Vec<(PlayerKey, Shared)>,
}

impl LocalFanout {
    pub fn new(live_settings: LiveSettings) -> LocalFanout {
        LocalFanout {
            live_settings,
            cache: StreamCache::default(),
            live: false,
            seeded: false,
            players: Vec::new(),
            waiting: Vec::new(),
        }
    }

    /// The publisher's state when this core joined: whether it is live and its burst. The
    /// players that joined meanwhile start now.
    pub fn seed(&mut self, live: bool, burst: &[Arc<Frame>]) {
        self.live = live;
        self.cache.clear();
        for frame in burst {
            self.cache.record(frame, &self.live_settings);
        }
        self.seeded = true;
        for (key, player) in std::mem::take(&mut self.waiting) {
            self.start(key, player);
        }
    }

    fn start(&mut self, key: PlayerKey, player: Shared) {
        player
            .borrow_mut()
            .start(self.live, &mut self.cache.burst());
        self.players.push((key, player));
    }

    /// A player joins (again: a key already here is replaced).
    pub fn join(&mut self, key: PlayerKey, player: Shared) {
        self.leave(key);
        if self.seeded {
            self.start(key, player);
        } else {
            self.waiting.push((key, player));
        }
    }

    /// A player leaves; keeps the join order. Returns whether no player is left.
    pub fn leave(&mut self, key: PlayerKey) -> bool {
        self.players.retain(|(k, _)| *k != key);
        self.waiting.retain(|(k, _)| *k != key);
        self.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        self.players.is_empty() && self.waiting.is_empty()
    }

    /// A live frame; `missed` frames before it never reached this core.
    pub fn frame(&mut self, frame: &Arc<Frame>, missed: u64) {
        self.frames(std::slice::from_ref(&(frame.clone(), missed)));
    }

    /// Live frames in order, each with the frames missed before it. Each player takes the
    /// whole batch in one visit (its state is loaded once, its writer woken once).
    pub fn frames(&mut self, batch: &[(Arc<Frame>, u64)]) {
        for (frame, _) in batch {
            self.cache.record(frame, &self.live_settings);
        }
        for (_, player) in &self.players {
            let mut player = player.borrow_mut();
            for (frame, missed) in batch {
                if *missed > 0 {
                    player.missed(*missed);
                }
                player.frame(frame, *missed > 0);
            }
        }
    }

    /// The publisher is gone before this core could join it: every player's play ends.
    pub fn end(&mut self) {
        for (_, player) in self.players.drain(..).chain(self.waiting.drain(..)) {
            player.borrow_mut().ended();
        }
    }

    pub fn published(&mut self) {
        self.cache.clear();
        self.live = true;
        for (_, player) in &self.players {
            player.borrow_mut().published();
        }
    }

    pub fn unpublished(&mut self) {
        self.cache.clear();
        self.live = false;
        for (_, player) in &self.players {
            player.borrow_mut().unpublished();
        }
    }
}
