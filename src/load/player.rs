//! The load tool's players and what one thread of them counts. A player is one task holding
//! an [`RtmpClient`] or an [`FlvClient`] (HTTP-FLV, WebSocket-FLV); every player of a thread
//! records into that thread's [`ThreadState`] without locks or allocation, and the controller
//! merges the threads' [`Window`]s.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Histogram;
use crate::client::synth;
use crate::client::{
    ClientConfig, ClientError, ClientEvent, FlvClient, FlvUrl, RtmpClient, RtmpUrl,
};
use crate::protocol::amf0;
use crate::protocol::message::{type_id, RawMessage};

/// Where a player plays: RTMP(S), or FLV over HTTP or a WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlayUrl {
    Rtmp(RtmpUrl),
    Flv(FlvUrl),
}

impl PlayUrl {
    /// `rtmp://`, `rtmps://`, `http://` or `ws://`.
    pub fn parse(url: &str) -> Result<PlayUrl, ClientError> {
        if FlvUrl::is_flv_url(url) {
            FlvUrl::parse(url).map(PlayUrl::Flv)
        } else {
            RtmpUrl::parse(url).map(PlayUrl::Rtmp)
        }
    }
}

impl std::fmt::Display for PlayUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlayUrl::Rtmp(u) => u.fmt(f),
            PlayUrl::Flv(u) => u.fmt(f),
        }
    }
}

/// A playing connection of either kind; FLV tags come out as the RTMP client's events so
/// that one accounting serves both.
#[derive(Debug)]
// One per player, held for its whole life: boxing would only add an indirection.
#[allow(clippy::large_enum_variant)]
pub enum PlayConn {
    Rtmp(RtmpClient),
    Flv(FlvClient),
    /// An idle HTTP connection: TCP only, no request.
    Tcp(tokio::net::TcpStream),
}

impl PlayConn {
    pub async fn next_event(&mut self) -> Result<ClientEvent, ClientError> {
        match self {
            PlayConn::Rtmp(c) => c.next_event().await,
            PlayConn::Flv(c) => {
                let tag = c.next_tag().await?;
                Ok(if tag.type_id == type_id::DATA_AMF0 {
                    let values = amf0::decode_all(&tag.payload, &amf0::AmfLimits::default())
                        .unwrap_or_default();
                    ClientEvent::Data {
                        stream_id: 1,
                        timestamp: tag.timestamp,
                        values,
                    }
                } else {
                    ClientEvent::Media(RawMessage {
                        type_id: tag.type_id,
                        stream_id: 1,
                        timestamp: tag.timestamp,
                        payload: tag.payload,
                    })
                })
            }
            PlayConn::Tcp(_) => std::future::pending().await,
        }
    }
}

/// What a player does once it plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Measured,
    /// Plays, then never reads.
    Stalled,
    /// Joins, reads for this long, leaves.
    Churn(Duration),
    /// Handshake and connect only.
    Idle,
}

/// What the players of one play URL counted in a window.
#[derive(Debug, Default, Clone)]
pub struct UrlWindow {
    pub hist: Histogram,
    pub received: u64,
    pub bytes: u64,
    /// Its measured players playing when the window opened.
    pub players: usize,
}

/// One measurement window and what was counted in it. Times are nanoseconds since the
/// tool started (one clock for every thread).
#[derive(Debug, Default, Clone)]
pub struct Window {
    pub start: u64,
    pub end: u64,
    pub hist: Histogram,
    /// End-to-end latency of audio frames (microseconds).
    pub audio_hist: Histogram,
    /// Video frames stamped inside the window and received by measured players.
    pub received: u64,
    pub gaps: u64,
    pub missing: u64,
    pub reordered: u64,
    pub duplicates: u64,
    /// Media payload bytes that arrived inside the window, all players.
    pub bytes: u64,
    /// Measured players playing when the window opened.
    pub players: usize,
    /// Measured players that lost their connection while the window was open.
    pub player_errors: u64,
    /// Per play URL, in --play-url order.
    pub per_url: Vec<UrlWindow>,
    /// Video frames of the window each measured player received (filled by
    /// [`ThreadState::snapshot`], one entry per player counted in `players`).
    pub per_player: Vec<u64>,
}

impl Window {
    pub fn contains(&self, t: u64) -> bool {
        t >= self.start && t < self.end
    }

    /// Add another thread's window of the same period.
    pub fn merge(&mut self, o: &Window) {
        self.hist.merge(&o.hist);
        self.audio_hist.merge(&o.audio_hist);
        self.received += o.received;
        self.gaps += o.gaps;
        self.missing += o.missing;
        self.reordered += o.reordered;
        self.duplicates += o.duplicates;
        self.bytes += o.bytes;
        self.players += o.players;
        self.player_errors += o.player_errors;
        if self.per_url.len() < o.per_url.len() {
            self.per_url
                .resize_with(o.per_url.len(), UrlWindow::default);
        }
        for (a, b) in self.per_url.iter_mut().zip(&o.per_url) {
            a.hist.merge(&b.hist);
            a.received += b.received;
            a.bytes += b.bytes;
            a.players += b.players;
        }
        self.per_player.extend_from_slice(&o.per_player);
    }
}

/// Churning players' outcomes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ChurnCounts {
    pub joins: u64,
    pub ok: u64,
    pub failed: u64,
}

/// One measured player's bookkeeping.
#[derive(Debug, Default, Clone, Copy)]
struct Slot {
    alive: bool,
    /// Playing when the window opened: its frames count.
    counted: bool,
    received: u64,
}

/// Everything the players of one thread share (they run on one current-thread runtime).
pub struct ThreadState {
    t0: Instant,
    pub window: RefCell<Window>,
    pub churn: RefCell<ChurnCounts>,
    /// Measured players playing, per play URL.
    measured_by_url: RefCell<Vec<usize>>,
    slots: RefCell<Vec<Slot>>,
    pub connect_failures: Cell<u64>,
    /// Error lines printed, shared by every thread so the total stays short.
    errors_logged: Arc<AtomicU32>,
}

impl ThreadState {
    pub fn new(t0: Instant, play_urls: usize, errors_logged: Arc<AtomicU32>) -> Self {
        ThreadState {
            t0,
            window: RefCell::new(Window::default()),
            churn: RefCell::new(ChurnCounts::default()),
            measured_by_url: RefCell::new(vec![0; play_urls.max(1)]),
            slots: RefCell::new(Vec::new()),
            connect_failures: Cell::new(0),
            errors_logged,
        }
    }

    /// Nanoseconds since the tool started.
    pub fn now(&self) -> u64 {
        since(self.t0)
    }

    pub fn log_error(&self, what: &str, e: &ClientError) {
        log_error(&self.errors_logged, what, e);
    }

    /// Start counting a window `[start, end)`: the measured players playing now are the
    /// ones it counts.
    pub fn open(&self, start: u64, end: u64) {
        let mut w = self.window.borrow_mut();
        *w = Window {
            start,
            end,
            ..Window::default()
        };
        w.per_url = self
            .measured_by_url
            .borrow()
            .iter()
            .map(|&players| UrlWindow {
                players,
                ..UrlWindow::default()
            })
            .collect();
        let mut slots = self.slots.borrow_mut();
        for s in slots.iter_mut() {
            // Players gone before this window have nothing more to say.
            s.counted = s.alive;
            s.received = 0;
        }
        w.players = slots.iter().filter(|s| s.counted).count();
    }

    /// The window so far, with each counted player's received frames.
    pub fn snapshot(&self) -> Window {
        let mut w = self.window.borrow().clone();
        w.per_player = self
            .slots
            .borrow()
            .iter()
            .filter(|s| s.counted)
            .map(|s| s.received)
            .collect();
        w
    }

    fn join(&self, url: usize) -> usize {
        if let Some(n) = self.measured_by_url.borrow_mut().get_mut(url) {
            *n += 1;
        }
        let mut slots = self.slots.borrow_mut();
        slots.push(Slot {
            alive: true,
            ..Slot::default()
        });
        slots.len() - 1
    }

    fn leave(&self, url: usize, slot: usize) {
        if let Some(n) = self.measured_by_url.borrow_mut().get_mut(url) {
            *n = n.saturating_sub(1);
        }
        if let Some(s) = self.slots.borrow_mut().get_mut(slot) {
            s.alive = false;
        }
    }
}

/// Nanoseconds since `t0`.
pub fn since(t0: Instant) -> u64 {
    u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Print the first few errors of a run, then one line saying more were left out.
pub fn log_error(count: &AtomicU32, what: &str, e: &ClientError) {
    let n = count.fetch_add(1, Ordering::Relaxed);
    if n < 5 {
        eprintln!("reflector-load: {what}: {e}");
    } else if n == 5 {
        eprintln!("reflector-load: (more errors not shown)");
    }
}

/// RTMP: TCP, handshake, connect and (unless idle) createStream + play. HTTP-FLV and
/// WebSocket-FLV: TCP and (unless idle) the request and the response head.
pub async fn start_player(
    url: &PlayUrl,
    cfg: &ClientConfig,
    role: Role,
) -> Result<PlayConn, ClientError> {
    match url {
        PlayUrl::Rtmp(url) => {
            let mut client = RtmpClient::connect(url, cfg).await?;
            if role != Role::Idle {
                let sid = client.create_stream().await?;
                client.play(sid, &url.stream).await?;
            }
            Ok(PlayConn::Rtmp(client))
        }
        PlayUrl::Flv(url) if role == Role::Idle => {
            let connect = tokio::net::TcpStream::connect((url.host.as_str(), url.port));
            let stream = tokio::time::timeout(cfg.timeout, connect)
                .await
                .map_err(|_| ClientError::Timeout {
                    what: "TCP connect",
                    after: cfg.timeout,
                })??;
            Ok(PlayConn::Tcp(stream))
        }
        PlayUrl::Flv(url) => Ok(PlayConn::Flv(
            FlvClient::connect(url, cfg.timeout, cfg.read_size).await?,
        )),
    }
}

/// One player for its whole life; `url_slot` is its play URL's index.
pub async fn player(
    sh: std::rc::Rc<ThreadState>,
    url_slot: usize,
    url: std::rc::Rc<PlayUrl>,
    cfg: std::rc::Rc<ClientConfig>,
    role: Role,
) {
    if let Role::Churn(_) = role {
        sh.churn.borrow_mut().joins += 1;
    }
    let mut client = match start_player(&url, &cfg, role).await {
        Ok(c) => c,
        Err(e) => {
            sh.connect_failures.set(sh.connect_failures.get() + 1);
            if let Role::Churn(_) = role {
                sh.churn.borrow_mut().failed += 1;
            }
            sh.log_error("player connect/play", &e);
            return;
        }
    };
    match role {
        Role::Idle | Role::Stalled => {
            // Hold the connection and never read: the runtime's end closes it.
            std::future::pending::<()>().await;
        }
        Role::Churn(life) => churn(&sh, &mut client, life).await,
        Role::Measured => {
            let slot = sh.join(url_slot);
            measure(&sh, &mut client, url_slot, slot).await;
            sh.leave(url_slot, slot);
            let now = sh.now();
            let mut w = sh.window.borrow_mut();
            if w.contains(now) {
                w.player_errors += 1;
            }
        }
    }
}

async fn churn(sh: &ThreadState, client: &mut PlayConn, life: Duration) {
    let deadline = tokio::time::Instant::now() + life;
    let mut got_frame = false;
    while let Ok(ev) = tokio::time::timeout_at(deadline, client.next_event()).await {
        match ev {
            Ok(ClientEvent::Media(m)) => {
                got_frame |= m.type_id == type_id::VIDEO && synth::video_seq(&m.payload).is_some();
                let now = sh.now();
                let mut w = sh.window.borrow_mut();
                if w.contains(now) {
                    w.bytes += m.payload.len() as u64;
                }
            }
            Ok(_) => {}
            Err(e) => {
                sh.log_error("churn player", &e);
                break;
            }
        }
    }
    let mut c = sh.churn.borrow_mut();
    if got_frame {
        c.ok += 1;
    } else {
        c.failed += 1;
    }
}

/// Read until the connection ends, recording latency, order and bytes of what falls in the
/// window.
async fn measure(sh: &ThreadState, client: &mut PlayConn, url: usize, slot: usize) {
    let mut last: Option<u64> = None;
    loop {
        let ev = match client.next_event().await {
            Ok(ev) => ev,
            Err(e) => {
                sh.log_error("player", &e);
                return;
            }
        };
        let ClientEvent::Media(m) = ev else { continue };
        let now = sh.now();
        let mut w = sh.window.borrow_mut();
        if w.contains(now) {
            let len = m.payload.len() as u64;
            w.bytes += len;
            if let Some(u) = w.per_url.get_mut(url) {
                u.bytes += len;
            }
        }
        let counted = sh.slots.borrow().get(slot).is_some_and(|s| s.counted);
        if m.type_id == type_id::AUDIO {
            if let (Some(_), Some(stamp)) = (
                synth::audio_seq(&m.payload),
                super::read_audio_stamp(&m.payload),
            ) {
                if counted && w.contains(stamp) {
                    w.audio_hist.record(now.saturating_sub(stamp) / 1000);
                }
            }
            continue;
        }
        if m.type_id != type_id::VIDEO {
            continue;
        }
        let (Some(seq), Some(stamp)) =
            (synth::video_seq(&m.payload), super::read_stamp(&m.payload))
        else {
            continue;
        };
        if counted && w.contains(stamp) {
            let latency_us = now.saturating_sub(stamp) / 1000;
            w.received += 1;
            w.hist.record(latency_us);
            if let Some(u) = w.per_url.get_mut(url) {
                u.received += 1;
                u.hist.record(latency_us);
            }
            if let Some(s) = sh.slots.borrow_mut().get_mut(slot) {
                s.received += 1;
            }
            match last {
                Some(l) if seq == l => w.duplicates += 1,
                Some(l) if seq < l => w.reordered += 1,
                Some(l) if seq > l + 1 => {
                    w.gaps += 1;
                    w.missing += seq - l - 1;
                }
                _ => {}
            }
        }
        last = Some(last.map_or(seq, |l| l.max(seq)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(players: usize, received: u64, lat: &[u64]) -> Window {
        let mut w = Window {
            players,
            received,
            bytes: received * 1000,
            per_url: vec![UrlWindow {
                players,
                received,
                ..UrlWindow::default()
            }],
            per_player: vec![received / players.max(1) as u64; players],
            ..Window::default()
        };
        for &l in lat {
            w.hist.record(l);
            w.per_url[0].hist.record(l);
        }
        w
    }

    #[test]
    fn windows_of_threads_merge_into_sums() {
        let mut total = Window::default();
        let a = window(3, 30, &[100, 200, 300]);
        let b = window(2, 20, &[5000]);
        total.merge(&a);
        total.merge(&b);
        assert_eq!(total.players, 5);
        assert_eq!(total.received, 50);
        assert_eq!(total.bytes, 50_000);
        assert_eq!(total.per_player, vec![10, 10, 10, 10, 10]);
        assert_eq!(total.hist.count(), 4);
        assert_eq!(total.hist.max(), 5000);
        assert_eq!(total.per_url.len(), 1);
        assert_eq!(total.per_url[0].players, 5);
        assert_eq!(total.per_url[0].received, 50);
        assert_eq!(total.per_url[0].hist.count(), 4);
    }

    #[test]
    fn a_window_counts_the_players_playing_when_it_opened() {
        let sh = ThreadState::new(Instant::now(), 2, Arc::new(AtomicU32::new(0)));
        let a = sh.join(0);
        let b = sh.join(1);
        sh.leave(1, b);
        sh.open(10, 20);
        let late = sh.join(0);
        assert_eq!(sh.window.borrow().players, 1);
        let per_url: Vec<usize> = sh
            .window
            .borrow()
            .per_url
            .iter()
            .map(|u| u.players)
            .collect();
        assert_eq!(per_url, [1, 0]);
        assert!(sh.slots.borrow()[a].counted);
        assert!(!sh.slots.borrow()[b].counted);
        assert!(!sh.slots.borrow()[late].counted);
        assert_eq!(sh.snapshot().per_player, vec![0]);
    }
}
