//! reflector-load: an RTMP load generator for any RTMP server.
//!
//! One publisher sends synthetic H.264/AAC (onMetaData, sequence headers, a keyframe every
//! GOP) at real time (or as fast as possible in `blast` mode). Every video frame carries its
//! sequence number and its send time (nanoseconds since the tool started, from one monotonic
//! clock shared with the players, which run in the same process). N players measure
//! end-to-end latency, loss, gaps and reordering over a measurement window that starts after
//! the connection ramp and a warm-up, so GOP-cache bursts at join time are not counted.
//!
//! Everything runs on one current-thread tokio runtime: a player is one task holding an
//! `RtmpClient` and a few counters, and records into shared counters without allocating.
//! The tool reports its own CPU use and says when it, rather than the server, was the
//! bottleneck.
//!
//! Several servers can be measured as one service: players spread round-robin over
//! `--play-url`s (instances relaying the publisher's stream), and every `--server-pid` is
//! sampled on its own (CPU, RSS, per-thread CPU) as well as summed.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use clap::{Parser, ValueEnum};
use serde::Serialize;

use reflector::client::synth::{self, Synth, SynthConfig};
use reflector::client::{ClientConfig, ClientError, ClientEvent, RtmpClient, RtmpUrl};
use reflector::load::{self, Histogram, ProcSample, ThreadCpu, ThreadSample};
use reflector::protocol::message::type_id;

/// What the run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    /// N players for the measured duration, publisher at real time.
    Fixed,
    /// Step the player count up until the SLO breaks.
    Max,
    /// Publisher as fast as the server takes it; N players.
    Blast,
    /// N steady players measured while others join and leave at --churn-rate per second.
    Churn,
    /// Like fixed, but --stall-fraction of the players stop reading right after play.
    Stalled,
    /// N connections that only do handshake + connect: the idle connection cost.
    Idle,
    /// Time to first frame of --joins late joiners, one after another.
    Join,
}

/// RTMP load generator: one synthetic publisher, many measuring players.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// rtmp://host[:port]/app/stream: the publisher publishes it, the players play it unless
    /// --play-url is given.
    url: String,
    /// Players play these URLs instead, spread round-robin (repeatable): e.g. the same stream
    /// on other instances that relay it from the one the publisher uses.
    #[arg(long)]
    play_url: Vec<String>,
    #[arg(long, value_enum, default_value = "fixed")]
    mode: Mode,
    /// Players (steady players in churn mode, connections in idle mode, at most 8 is typical
    /// for blast).
    #[arg(long, default_value_t = 100)]
    players: usize,
    /// Measured seconds (per step in max mode; hold time in idle mode).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds between the end of the connection ramp and the start of the measurement.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Publisher bitrate, audio included, kbit/s.
    #[arg(long, default_value_t = 2000)]
    bitrate_kbps: u64,
    #[arg(long, default_value_t = 25)]
    fps: u32,
    /// Video frames per GOP (a keyframe every GOP).
    #[arg(long, default_value_t = 50)]
    gop: u32,
    /// No AAC audio, video only.
    #[arg(long)]
    no_audio: bool,
    /// Players connected per second (avoids SYN floods and accept-queue overflows).
    #[arg(long, default_value_t = 200.0)]
    ramp: f64,
    /// Server process to sample (CPU, RSS, threads); its direct children are included (nginx
    /// workers). Repeatable (or comma-separated): each is reported on its own and summed.
    /// With as many pids as play URLs, the i-th pid is taken to serve the i-th play URL, so
    /// its delivered share and CPU per Gbit/s are reported too.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Churn mode: joins per second.
    #[arg(long, default_value_t = 50.0)]
    churn_rate: f64,
    /// Churn mode: seconds each churning player stays.
    #[arg(long, default_value_t = 2.0)]
    churn_life: f64,
    /// Stalled mode: fraction of the players that never read after play.
    #[arg(long, default_value_t = 0.1)]
    stall_fraction: f64,
    /// Max mode: players added per step (the first step too).
    #[arg(long, default_value_t = 100)]
    step: usize,
    /// Max mode: stop stepping here.
    #[arg(long, default_value_t = 10_000)]
    max_players: usize,
    /// Join mode: late joins to time.
    #[arg(long, default_value_t = 20)]
    joins: usize,
    /// SLO: delivered share of the published video frames, percent.
    #[arg(long, default_value_t = 99.9)]
    slo_delivery: f64,
    /// SLO: 99th percentile end-to-end latency, milliseconds.
    #[arg(long, default_value_t = 500.0)]
    slo_p99_ms: f64,
    /// Free text copied into the JSON (e.g. the server's name).
    #[arg(long, default_value = "")]
    label: String,
}

/// What the players of one play URL counted in the window.
#[derive(Debug, Default)]
struct UrlWindow {
    hist: Histogram,
    received: u64,
    bytes: u64,
    /// Its measured players playing when the window opened.
    players: usize,
}

/// The measurement window and what was counted in it. Times are nanoseconds since start.
#[derive(Debug, Default)]
struct Window {
    start: u64,
    end: u64,
    hist: Histogram,
    /// End-to-end latency of audio frames (microseconds), reported beside the video figures.
    audio_hist: Histogram,
    /// Video frames stamped inside the window and received by measured players.
    received: u64,
    /// Video frames the publisher stamped inside the window.
    published: u64,
    gaps: u64,
    missing: u64,
    reordered: u64,
    duplicates: u64,
    /// Media payload bytes that arrived inside the window, all players.
    bytes: u64,
    /// Measured players playing when the window opened.
    players: usize,
    /// Measured players that lost their connection while the window was open.
    player_errors: u64,
    /// The same per play URL, in --play-url order.
    per_url: Vec<UrlWindow>,
}

impl Window {
    fn contains(&self, t: u64) -> bool {
        t >= self.start && t < self.end
    }
}

#[derive(Debug, Default)]
struct Churn {
    joins: u64,
    ok: u64,
    failed: u64,
}

/// State shared by every task of the (single-threaded) runtime.
struct Shared {
    t0: Instant,
    window: RefCell<Window>,
    churn: RefCell<Churn>,
    /// Measured players playing, per play URL.
    measured_by_url: RefCell<Vec<usize>>,
    connect_failures: Cell<u64>,
    errors_logged: Cell<u32>,
    published: Cell<bool>,
}

impl Shared {
    fn now(&self) -> u64 {
        u64::try_from(self.t0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn log_error(&self, what: &str, e: &ClientError) {
        let n = self.errors_logged.get();
        if n < 5 {
            eprintln!("reflector-load: {what}: {e}");
        } else if n == 5 {
            eprintln!("reflector-load: (more errors not shown)");
        }
        self.errors_logged.set(n + 1);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Measured,
    Stalled,
    /// Joins, reads for this long, leaves.
    Churn(Duration),
    Idle,
}

/// Which play URL a player uses (index into the play URLs) and that URL.
#[derive(Clone)]
struct Target {
    slot: usize,
    url: Rc<RtmpUrl>,
}

async fn player(sh: Rc<Shared>, target: Target, cfg: Rc<ClientConfig>, role: Role) {
    let url = &target.url;
    if let Role::Churn(_) = role {
        sh.churn.borrow_mut().joins += 1;
    }
    let started = match start_player(url, &cfg, role).await {
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
    let mut client = started;
    match role {
        Role::Idle | Role::Stalled => {
            // Hold the connection and never read: the runtime's end closes it.
            std::future::pending::<()>().await;
        }
        Role::Churn(life) => {
            let deadline = tokio::time::Instant::now() + life;
            let mut got_frame = false;
            while let Ok(ev) = tokio::time::timeout_at(deadline, client.next_event()).await {
                match ev {
                    Ok(ClientEvent::Media(m)) => {
                        got_frame |=
                            m.type_id == type_id::VIDEO && synth::video_seq(&m.payload).is_some();
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
        Role::Measured => measure(&sh, &mut client, target.slot).await,
    }
}

async fn start_player(
    url: &RtmpUrl,
    cfg: &ClientConfig,
    role: Role,
) -> Result<RtmpClient, ClientError> {
    let mut client = RtmpClient::connect(url, cfg).await?;
    if role != Role::Idle {
        let sid = client.create_stream().await?;
        client.play(sid, &url.stream).await?;
    }
    Ok(client)
}

fn add_playing(sh: &Shared, slot: usize, up: bool) {
    if let Some(n) = sh.measured_by_url.borrow_mut().get_mut(slot) {
        *n = if up { *n + 1 } else { n.saturating_sub(1) };
    }
}

async fn measure(sh: &Shared, client: &mut RtmpClient, slot: usize) {
    let joined = sh.now();
    add_playing(sh, slot, true);
    let mut last: Option<u64> = None;
    loop {
        let ev = match client.next_event().await {
            Ok(ev) => ev,
            Err(e) => {
                sh.log_error("player", &e);
                break;
            }
        };
        let ClientEvent::Media(m) = ev else { continue };
        let now = sh.now();
        let mut w = sh.window.borrow_mut();
        if w.contains(now) {
            let len = m.payload.len() as u64;
            w.bytes += len;
            if let Some(u) = w.per_url.get_mut(slot) {
                u.bytes += len;
            }
        }
        if m.type_id == type_id::AUDIO {
            if let (Some(_), Some(stamp)) = (
                synth::audio_seq(&m.payload),
                load::read_audio_stamp(&m.payload),
            ) {
                if w.contains(stamp) && joined < w.start {
                    w.audio_hist.record(now.saturating_sub(stamp) / 1000);
                }
            }
            continue;
        }
        if m.type_id != type_id::VIDEO {
            continue;
        }
        let (Some(seq), Some(stamp)) = (synth::video_seq(&m.payload), load::read_stamp(&m.payload))
        else {
            continue;
        };
        if w.contains(stamp) && joined < w.start {
            let latency_us = now.saturating_sub(stamp) / 1000;
            w.received += 1;
            w.hist.record(latency_us);
            if let Some(u) = w.per_url.get_mut(slot) {
                u.received += 1;
                u.hist.record(latency_us);
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
    add_playing(sh, slot, false);
    let now = sh.now();
    let mut w = sh.window.borrow_mut();
    if w.contains(now) {
        w.player_errors += 1;
    }
}

/// Tag body sizes for a target bitrate: AAC at about 128 kbit/s, a keyframe four times the
/// size of an inter frame.
fn synth_config(cli: &Cli) -> SynthConfig {
    let audio_bps = if cli.no_audio { 0 } else { 128_000 };
    let video_bps = (cli.bitrate_kbps * 1000)
        .saturating_sub(audio_bps)
        .max(8_000);
    let fps = u64::from(cli.fps.max(1));
    let gop = u64::from(cli.gop.max(1));
    let avg = video_bps / 8 / fps;
    let inter = usize::try_from(gop * avg / (gop + 3))
        .unwrap_or(usize::MAX)
        .max(load::STAMPED_MIN_SIZE);
    SynthConfig {
        fps: cli.fps.max(1),
        gop: cli.gop.max(1),
        audio: !cli.no_audio,
        keyframe_size: inter * 4,
        inter_size: inter,
        // 44100/1024 frames per second.
        audio_size: (audio_bps * 1024 / 44_100 / 8) as usize,
        seq_base: 0,
        stream_id: 1,
    }
}

async fn publisher(
    sh: Rc<Shared>,
    url: Rc<RtmpUrl>,
    cfg: Rc<ClientConfig>,
    mut sc: SynthConfig,
    blast: bool,
) {
    if let Err(e) = publish(&sh, &url, &cfg, &mut sc, blast).await {
        sh.log_error("publisher", &e);
        eprintln!("reflector-load: the publisher stopped; the figures after this are not valid");
    }
}

async fn publish(
    sh: &Shared,
    url: &RtmpUrl,
    cfg: &ClientConfig,
    sc: &mut SynthConfig,
    blast: bool,
) -> Result<(), ClientError> {
    let mut client = RtmpClient::connect(url, cfg).await?;
    let sid = client.create_stream().await?;
    client.publish(sid, &url.stream).await?;
    sc.stream_id = sid;
    let period = Duration::from_secs_f64(1.0 / f64::from(sc.fps));
    let mut synth = Synth::new(sc.clone());
    for m in synth.headers() {
        client.feed(&m);
    }
    client.flush().await?;
    sh.published.set(true);
    let start = tokio::time::Instant::now();
    let mut batch = Vec::with_capacity(8);
    let mut n: u32 = 0;
    loop {
        if !blast {
            tokio::time::sleep_until(start + period * n).await;
        }
        batch.clear();
        synth.next_tick(&mut batch);
        for m in batch.iter_mut() {
            if m.type_id == type_id::VIDEO {
                let mut body = BytesMut::from(&m.payload[..]);
                let now = sh.now();
                load::write_stamp(&mut body, now);
                m.payload = body.freeze();
                let mut w = sh.window.borrow_mut();
                if w.contains(now) {
                    w.published += 1;
                }
            } else if m.type_id == type_id::AUDIO {
                let mut body = BytesMut::from(&m.payload[..]);
                load::write_audio_stamp(&mut body, sh.now());
                m.payload = body.freeze();
            }
            client.feed(m);
        }
        // In blast mode, write several frames per syscall but still let players run.
        if !blast || n % 8 == 7 {
            client.flush().await?;
        }
        if blast && n % 64 == 63 {
            tokio::task::yield_now().await;
        }
        n = n.wrapping_add(1);
    }
}

/// Server and tool CPU/RSS around a window.
struct Sampler {
    /// The sampled servers and, for each, its direct children found at start.
    servers: Vec<(u32, Vec<u32>)>,
    tck: f64,
}

/// Every sampled server at one moment, in --server-pid order.
struct ServersSample {
    each: Vec<Option<ProcSample>>,
    threads: Vec<ThreadSample>,
}

impl ServersSample {
    /// The sum over every server; `None` unless all of them are alive (a partial sum
    /// would read as a drop in CPU use).
    fn total(&self) -> Option<ProcSample> {
        let mut sum = ProcSample::default();
        for s in &self.each {
            let s = (*s)?;
            sum.cpu_ticks += s.cpu_ticks;
            sum.rss_kb += s.rss_kb;
            sum.hwm_kb += s.hwm_kb;
            sum.runq_wait_ns += s.runq_wait_ns;
        }
        (!self.each.is_empty()).then_some(sum)
    }
}

impl Sampler {
    fn new(pids: &[u32]) -> Self {
        Sampler {
            servers: pids.iter().map(|&p| (p, load::children(p))).collect(),
            tck: load::clock_ticks_per_sec() as f64,
        }
    }
    fn servers(&self, threads: bool) -> ServersSample {
        ServersSample {
            each: self
                .servers
                .iter()
                .map(|(p, kids)| load::sample_tree(*p, kids))
                .collect(),
            threads: if threads {
                self.servers
                    .iter()
                    .flat_map(|(p, kids)| std::iter::once(p).chain(kids))
                    .flat_map(|&p| load::sample_threads(p))
                    .collect()
            } else {
                Vec::new()
            },
        }
    }
    fn server(&self) -> Option<ProcSample> {
        self.servers(false).total()
    }
    fn pct(&self, a: u64, b: u64, secs: f64) -> f64 {
        b.saturating_sub(a) as f64 / self.tck / secs * 100.0
    }
}

/// How many of the busiest server threads a window reports.
const TOP_THREADS: usize = 8;

/// One sampled server's share of a window.
#[derive(Debug, Default, Clone, Serialize)]
struct ServerFigures {
    pid: u32,
    /// The play URL this server is taken to serve (pids paired with play URLs by order).
    play_url: Option<String>,
    cpu_pct: Option<f64>,
    rss_kb: Option<u64>,
    rss_peak_kb: Option<u64>,
    runq_wait_pct: Option<f64>,
    /// Delivered to the players of its play URL.
    delivered_gbps: Option<f64>,
    cpu_pct_per_gbps: Option<f64>,
}

/// The players of one play URL in a window.
#[derive(Debug, Default, Clone, Serialize)]
struct UrlFigures {
    url: String,
    players: usize,
    delivery_pct: f64,
    p50_ms: f64,
    p99_ms: f64,
    delivered_gbps: f64,
}

/// One measured window's figures.
#[derive(Debug, Default, Clone, Serialize)]
struct Figures {
    players: usize,
    window_s: f64,
    published_frames: u64,
    received_frames: u64,
    delivery_pct: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// Audio frames' latency (the figures above are video's).
    audio_p50_ms: f64,
    audio_p99_ms: f64,
    gaps: u64,
    missing: u64,
    reordered: u64,
    duplicates: u64,
    player_errors: u64,
    delivered_gbps: f64,
    server_cpu_pct: Option<f64>,
    /// Server CPU (percent of one core) per delivered Gbit/s.
    server_cpu_pct_per_gbps: Option<f64>,
    server_rss_kb: Option<u64>,
    server_rss_peak_kb: Option<u64>,
    tool_cpu_pct: f64,
    /// Busy CPU of the whole machine, every core, percent of one core: the server, the tool
    /// and kernel work done for either in any context (anything else running counts too).
    machine_cpu_pct: Option<f64>,
    machine_cpu_pct_per_gbps: Option<f64>,
    /// TCP segments sent per second, machine-wide (loopback: data and ACKs).
    tcp_segments_per_s: Option<f64>,
    /// Share of the window the server's threads (summed) spent runnable but not running:
    /// high values mean other processes on its core, not the server, set the latency.
    server_runq_wait_pct: Option<f64>,
    /// The same for the load tool.
    tool_runq_wait_pct: f64,
    tool_saturated: bool,
    slo_ok: bool,
    /// Every sampled server (the server_* figures above are their sums).
    servers: Vec<ServerFigures>,
    /// Per play URL (one entry when players play the publisher's URL).
    play_urls: Vec<UrlFigures>,
    /// The busiest server threads: an actix arbiter is a thread, so this shows how one
    /// stream's fan-out is split between arbiters.
    server_threads: Vec<ThreadCpu>,
    /// Server CPU per (pid, thread name); `tid` is 0.
    server_thread_groups: Vec<ThreadCpu>,
}

/// The whole run.
#[derive(Debug, Serialize)]
struct Report {
    tool: &'static str,
    mode: Mode,
    label: String,
    url: String,
    play_urls: Vec<String>,
    server_pids: Vec<u32>,
    bitrate_kbps: u64,
    fps: u32,
    gop: u32,
    nofile_limit: Option<u64>,
    connect_failures: u64,
    server_rss_idle_kb: Option<u64>,
    /// (RSS under load - RSS idle) / connections.
    rss_per_player_kb: Option<f64>,
    #[serde(flatten)]
    figures: Figures,
    steps: Vec<Figures>,
    max_players_ok: Option<usize>,
    churn_joins: Option<u64>,
    churn_ok: Option<u64>,
    churn_failed: Option<u64>,
    ttff_p50_ms: Option<f64>,
    ttff_p90_ms: Option<f64>,
    ttff_max_ms: Option<f64>,
    ttff_keyframe_first: Option<usize>,
}

fn wait_pct(a: ProcSample, b: ProcSample, secs: f64) -> f64 {
    b.runq_wait_ns.saturating_sub(a.runq_wait_ns) as f64 / 1e9 / secs * 100.0
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

struct Run {
    cli: Cli,
    sh: Rc<Shared>,
    /// Where players play, round-robin (at least one).
    play: Vec<Rc<RtmpUrl>>,
    cfg: Rc<ClientConfig>,
    sampler: Sampler,
    spawned: usize,
}

impl Run {
    /// The play URL of the `i`-th player.
    fn target(&self, i: usize) -> Target {
        let slot = i % self.play.len().max(1);
        Target {
            slot,
            url: self.play[slot].clone(),
        }
    }

    fn spawn_player(&mut self, role: Role) {
        let target = self.target(self.spawned);
        self.spawned += 1;
        tokio::task::spawn_local(player(self.sh.clone(), target, self.cfg.clone(), role));
    }

    /// Connect players up to `target` at the ramp rate; `role_of(i)` picks each one's role.
    async fn ramp_to(&mut self, target: usize, role_of: impl Fn(usize) -> Role) {
        let start = tokio::time::Instant::now();
        let gap = 1.0 / self.cli.ramp.max(1.0);
        let first = self.spawned;
        for i in first..target {
            tokio::time::sleep_until(start + secs(gap * (i - first) as f64)).await;
            self.spawn_player(role_of(i));
        }
    }

    async fn wait_published(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.sh.published.get() {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Open a window of `duration`, wait for it and for in-flight frames, then compute.
    async fn window(&self, duration: f64) -> Figures {
        let s0 = self.sampler.servers(true);
        let me0 = load::sample_self();
        let m0 = load::sample_machine();
        {
            let mut w = self.sh.window.borrow_mut();
            *w = Window::default();
            w.start = self.sh.now();
            w.end = w.start + secs(duration).as_nanos() as u64;
            w.per_url = self
                .sh
                .measured_by_url
                .borrow()
                .iter()
                .map(|&players| UrlWindow {
                    players,
                    ..UrlWindow::default()
                })
                .collect();
            w.players = w.per_url.iter().map(|u| u.players).sum();
        }
        let t = Instant::now();
        let mut peaks: Vec<Option<u64>> = s0.each.iter().map(|s| s.map(|s| s.rss_kb)).collect();
        let mut peak = s0.total().map(|s| s.rss_kb);
        while t.elapsed().as_secs_f64() < duration {
            tokio::time::sleep(Duration::from_millis(250).min(secs(duration))).await;
            let now = self.sampler.servers(false);
            for (p, s) in peaks.iter_mut().zip(&now.each) {
                if let (Some(p), Some(s)) = (p.as_mut(), s) {
                    *p = (*p).max(s.rss_kb);
                }
            }
            if let (Some(p), Some(s)) = (peak.as_mut(), now.total()) {
                *p = (*p).max(s.rss_kb);
            }
        }
        let s1 = self.sampler.servers(true);
        let me1 = load::sample_self();
        let m1 = load::sample_machine();
        let elapsed = t.elapsed().as_secs_f64();
        // Frames stamped near the end are still on their way.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let w = self.sh.window.borrow();
        let delivery_of = |received: u64, players: usize| {
            let expected = w.published * players as u64;
            if expected == 0 {
                0.0
            } else {
                received as f64 * 100.0 / expected as f64
            }
        };
        let expected = w.published * w.players as u64;
        let delivery = delivery_of(w.received, w.players);
        let gbps_of = |bytes: u64| bytes as f64 * 8.0 / elapsed / 1e9;
        let gbps = gbps_of(w.bytes);
        let cpu = |a: Option<ProcSample>, b: Option<ProcSample>| match (a, b) {
            (Some(a), Some(b)) => Some(self.sampler.pct(a.cpu_ticks, b.cpu_ticks, elapsed)),
            _ => None,
        };
        let wait = |a: Option<ProcSample>, b: Option<ProcSample>| match (a, b) {
            (Some(a), Some(b)) => Some(wait_pct(a, b, elapsed)),
            _ => None,
        };
        let (t0, t1) = (s0.total(), s1.total());
        let server_cpu = cpu(t0, t1);
        let tool_cpu = self.sampler.pct(me0.cpu_ticks, me1.cpu_ticks, elapsed);
        let machine_cpu = match (m0, m1) {
            (Some(a), Some(b)) => Some(self.sampler.pct(a.busy_ticks, b.busy_ticks, elapsed)),
            _ => None,
        };
        let p99 = w.hist.quantile(0.99) as f64 / 1000.0;
        let play_urls: Vec<UrlFigures> = w
            .per_url
            .iter()
            .zip(&self.play)
            .map(|(u, url)| UrlFigures {
                url: url.to_string(),
                players: u.players,
                delivery_pct: delivery_of(u.received, u.players),
                p50_ms: u.hist.quantile(0.5) as f64 / 1000.0,
                p99_ms: u.hist.quantile(0.99) as f64 / 1000.0,
                delivered_gbps: gbps_of(u.bytes),
            })
            .collect();
        // Pids and play URLs pair up only when they are as many.
        let paired = play_urls.len() == self.sampler.servers.len();
        let servers = self
            .sampler
            .servers
            .iter()
            .enumerate()
            .map(|(i, (pid, _))| {
                let (a, b) = (
                    s0.each.get(i).copied().flatten(),
                    s1.each.get(i).copied().flatten(),
                );
                let url = play_urls.get(i).filter(|_| paired);
                let c = cpu(a, b);
                let g = url.map(|u| u.delivered_gbps);
                ServerFigures {
                    pid: *pid,
                    play_url: url.map(|u| u.url.clone()),
                    cpu_pct: c,
                    rss_kb: b.map(|s| s.rss_kb),
                    rss_peak_kb: peaks.get(i).copied().flatten(),
                    runq_wait_pct: wait(a, b),
                    delivered_gbps: g,
                    cpu_pct_per_gbps: c.zip(g.filter(|&g| g > 0.0)).map(|(c, g)| c / g),
                }
            })
            .collect();
        let threads = load::thread_cpu(&s0.threads, &s1.threads, self.sampler.tck, elapsed);
        let groups = load::thread_groups(&threads);
        Figures {
            players: w.players,
            window_s: elapsed,
            published_frames: w.published,
            received_frames: w.received,
            delivery_pct: delivery,
            p50_ms: w.hist.quantile(0.5) as f64 / 1000.0,
            p99_ms: p99,
            max_ms: w.hist.max() as f64 / 1000.0,
            audio_p50_ms: w.audio_hist.quantile(0.5) as f64 / 1000.0,
            audio_p99_ms: w.audio_hist.quantile(0.99) as f64 / 1000.0,
            gaps: w.gaps,
            missing: w.missing,
            reordered: w.reordered,
            duplicates: w.duplicates,
            player_errors: w.player_errors,
            delivered_gbps: gbps,
            server_cpu_pct: server_cpu,
            server_cpu_pct_per_gbps: server_cpu.filter(|_| gbps > 0.0).map(|c| c / gbps),
            server_rss_kb: t1.map(|s| s.rss_kb),
            server_rss_peak_kb: peak,
            tool_cpu_pct: tool_cpu,
            machine_cpu_pct: machine_cpu,
            machine_cpu_pct_per_gbps: machine_cpu.filter(|_| gbps > 0.0).map(|c| c / gbps),
            tcp_segments_per_s: match (m0, m1) {
                (Some(a), Some(b)) => {
                    Some(b.tcp_out_segs.saturating_sub(a.tcp_out_segs) as f64 / elapsed)
                }
                _ => None,
            },
            server_runq_wait_pct: wait(t0, t1),
            tool_runq_wait_pct: wait_pct(me0, me1, elapsed),
            tool_saturated: tool_cpu > 90.0,
            slo_ok: expected > 0
                && delivery >= self.cli.slo_delivery
                && p99 <= self.cli.slo_p99_ms
                && w.reordered == 0,
            servers,
            play_urls,
            server_threads: threads.into_iter().take(TOP_THREADS).collect(),
            server_thread_groups: groups,
        }
    }
}

fn report(cli: &Cli, nofile: Option<u64>) -> Report {
    Report {
        tool: "reflector-load",
        mode: cli.mode,
        label: cli.label.clone(),
        url: cli.url.clone(),
        play_urls: cli.play_url.clone(),
        server_pids: cli.server_pid.clone(),
        bitrate_kbps: cli.bitrate_kbps,
        fps: cli.fps,
        gop: cli.gop,
        nofile_limit: nofile,
        connect_failures: 0,
        server_rss_idle_kb: None,
        rss_per_player_kb: None,
        figures: Figures::default(),
        steps: Vec::new(),
        max_players_ok: None,
        churn_joins: None,
        churn_ok: None,
        churn_failed: None,
        ttff_p50_ms: None,
        ttff_p90_ms: None,
        ttff_max_ms: None,
        ttff_keyframe_first: None,
    }
}

async fn run(cli: Cli, nofile: Option<u64>) -> anyhow::Result<Report> {
    let url = Rc::new(RtmpUrl::parse(&cli.url)?);
    let play = if cli.play_url.is_empty() {
        vec![url.clone()]
    } else {
        cli.play_url
            .iter()
            .map(|u| RtmpUrl::parse(u).map(Rc::new))
            .collect::<Result<Vec<_>, _>>()?
    };
    let cfg = Rc::new(ClientConfig {
        // The plain §5.2 handshake: cheaper for thousands of players, accepted everywhere.
        digest_handshake: false,
        timeout: Duration::from_secs(20),
        ..ClientConfig::default()
    });
    let sh = Rc::new(Shared {
        t0: Instant::now(),
        window: RefCell::new(Window::default()),
        churn: RefCell::new(Churn::default()),
        measured_by_url: RefCell::new(vec![0; play.len()]),
        connect_failures: Cell::new(0),
        errors_logged: Cell::new(0),
        published: Cell::new(false),
    });
    let sampler = Sampler::new(&cli.server_pid);
    let idle = sampler.server();
    let mut rep = report(&cli, nofile);
    rep.server_rss_idle_kb = idle.map(|s| s.rss_kb);
    let sc = synth_config(&cli);
    let mut r = Run {
        cli,
        sh: sh.clone(),
        play,
        cfg: cfg.clone(),
        sampler,
        spawned: 0,
    };
    let mode = r.cli.mode;
    let n = r.cli.players;
    if mode == Mode::Idle {
        r.ramp_to(n, |_| Role::Idle).await;
        tokio::time::sleep(secs(r.cli.duration.min(2.0))).await;
        let mut f = r.window(r.cli.duration).await;
        f.players = n;
        rep.figures = f;
    } else {
        tokio::task::spawn_local(publisher(
            sh.clone(),
            url.clone(),
            cfg.clone(),
            sc.clone(),
            mode == Mode::Blast,
        ));
        if !r.wait_published().await {
            anyhow::bail!("the publisher could not start publishing within 15 s");
        }
        // Let the first GOP reach the server before anyone plays.
        tokio::time::sleep(Duration::from_millis(500)).await;
        match mode {
            Mode::Join => join(&mut r, &mut rep).await,
            Mode::Max => {
                let step = r.cli.step.max(1);
                let mut target = step;
                while target <= r.cli.max_players {
                    r.ramp_to(target, |_| Role::Measured).await;
                    tokio::time::sleep(secs(r.cli.warmup)).await;
                    let f = r.window(r.cli.duration).await;
                    eprintln!(
                        "step {target}: delivery {:.3} % p99 {:.1} ms server cpu {:?} % tool cpu {:.0} %",
                        f.delivery_pct, f.p99_ms, f.server_cpu_pct.map(|c| c.round()), f.tool_cpu_pct
                    );
                    let (ok, saturated) = (f.slo_ok, f.tool_saturated);
                    rep.steps.push(f);
                    if !ok || saturated {
                        if saturated {
                            eprintln!("reflector-load: WARNING: the tool used > 90 % of a core; stopping the search (the limit found is the tool's)");
                        }
                        break;
                    }
                    rep.max_players_ok = Some(target);
                    target += step;
                }
                if let Some(last) = rep.steps.last() {
                    rep.figures = last.clone();
                }
            }
            _ => {
                let stall_every = if mode == Mode::Stalled && r.cli.stall_fraction > 0.0 {
                    (1.0 / r.cli.stall_fraction).round().max(1.0) as usize
                } else {
                    0
                };
                r.ramp_to(n, |i| {
                    if stall_every > 0 && i % stall_every == stall_every - 1 {
                        Role::Stalled
                    } else {
                        Role::Measured
                    }
                })
                .await;
                tokio::time::sleep(secs(r.cli.warmup)).await;
                if mode == Mode::Churn {
                    let (rate, life) = (r.cli.churn_rate.max(0.1), secs(r.cli.churn_life));
                    let total = (rate * r.cli.duration).round() as usize;
                    let targets: Vec<Target> = (0..total).map(|i| r.target(i)).collect();
                    let (sh2, cfg2) = (sh.clone(), cfg.clone());
                    tokio::task::spawn_local(async move {
                        let start = tokio::time::Instant::now();
                        for (i, target) in targets.into_iter().enumerate() {
                            tokio::time::sleep_until(start + secs(i as f64 / rate)).await;
                            tokio::task::spawn_local(player(
                                sh2.clone(),
                                target,
                                cfg2.clone(),
                                Role::Churn(life),
                            ));
                        }
                    });
                }
                rep.figures = r.window(r.cli.duration).await;
                if mode == Mode::Churn {
                    // Let the last churning players finish their stay.
                    tokio::time::sleep(secs(r.cli.churn_life)).await;
                    let c = sh.churn.borrow();
                    rep.churn_joins = Some(c.joins);
                    rep.churn_ok = Some(c.ok);
                    rep.churn_failed = Some(c.failed);
                }
            }
        }
    }
    rep.connect_failures = sh.connect_failures.get();
    if let (Some(idle), Some(now)) = (rep.server_rss_idle_kb, rep.figures.server_rss_kb) {
        let conns = r.spawned.max(1);
        rep.rss_per_player_kb = Some(now.saturating_sub(idle) as f64 / conns as f64);
    }
    Ok(rep)
}

/// Late joiners one after another: time from the TCP connect to the first video frame.
async fn join(r: &mut Run, rep: &mut Report) {
    // One GOP must be in the server's cache before the first join.
    let gop_s = f64::from(r.cli.gop.max(1)) / f64::from(r.cli.fps.max(1));
    tokio::time::sleep(secs(gop_s.max(r.cli.warmup))).await;
    let mut times = Vec::new();
    let mut key_first = 0;
    for j in 0..r.cli.joins {
        let t = Instant::now();
        let url = r.target(j).url;
        let got = async {
            let mut c = start_player(&url, &r.cfg, Role::Measured).await?;
            loop {
                if let ClientEvent::Media(m) = c.next_event().await? {
                    if m.type_id == type_id::VIDEO && synth::video_seq(&m.payload).is_some() {
                        return Ok::<bool, ClientError>(synth::is_keyframe(&m.payload));
                    }
                }
            }
        };
        match tokio::time::timeout(Duration::from_secs(10), got).await {
            Ok(Ok(key)) => {
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                key_first += usize::from(key);
            }
            Ok(Err(e)) => {
                r.sh.connect_failures.set(r.sh.connect_failures.get() + 1);
                r.sh.log_error("late joiner", &e);
            }
            Err(_) => {
                r.sh.connect_failures.set(r.sh.connect_failures.get() + 1);
                eprintln!("reflector-load: late joiner got no frame within 10 s");
            }
        }
        // Spread the joins over different points of the GOP.
        let offset = (j as f64 * 0.37 * gop_s) % gop_s;
        tokio::time::sleep(secs(0.2 + offset)).await;
    }
    times.sort_by(f64::total_cmp);
    let q = |p: f64| -> Option<f64> {
        let last = times.len().checked_sub(1)?;
        times.get(((last as f64) * p).round() as usize).copied()
    };
    rep.ttff_p50_ms = q(0.5);
    rep.ttff_p90_ms = q(0.9);
    rep.ttff_max_ms = times.last().copied();
    rep.ttff_keyframe_first = Some(key_first);
    rep.figures.players = times.len();
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn print_table(rep: &Report) {
    let f = &rep.figures;
    println!("reflector-load {:?} {} {}", rep.mode, rep.label, rep.url);
    println!("  players                 {}", f.players);
    println!("  window                  {:.1} s", f.window_s);
    println!(
        "  delivery                {:.3} % ({} of {} x {})",
        f.delivery_pct, f.received_frames, f.published_frames, f.players
    );
    println!(
        "  latency p50/p99/max     {:.1} / {:.1} / {:.1} ms",
        f.p50_ms, f.p99_ms, f.max_ms
    );
    println!(
        "  audio latency p50/p99   {:.1} / {:.1} ms",
        f.audio_p50_ms, f.audio_p99_ms
    );
    println!(
        "  gaps/missing/reorder/dup {} / {} / {} / {}",
        f.gaps, f.missing, f.reordered, f.duplicates
    );
    println!(
        "  errors                  {} connect, {} in window",
        rep.connect_failures, f.player_errors
    );
    println!("  delivered               {:.3} Gbit/s", f.delivered_gbps);
    println!(
        "  server CPU              {} % ({} % per Gbit/s)",
        opt(f.server_cpu_pct.map(|c| format!("{c:.1}"))),
        opt(f.server_cpu_pct_per_gbps.map(|c| format!("{c:.1}")))
    );
    println!(
        "  machine CPU             {} % ({} % per Gbit/s), {} TCP segments/s",
        opt(f.machine_cpu_pct.map(|c| format!("{c:.1}"))),
        opt(f.machine_cpu_pct_per_gbps.map(|c| format!("{c:.1}"))),
        opt(f.tcp_segments_per_s.map(|c| format!("{c:.0}")))
    );
    println!(
        "  server RSS idle/now/peak {} / {} / {} KiB ({} KiB per connection)",
        opt(rep.server_rss_idle_kb),
        opt(f.server_rss_kb),
        opt(f.server_rss_peak_kb),
        opt(rep.rss_per_player_kb.map(|c| format!("{c:.1}")))
    );
    println!(
        "  tool CPU                {:.1} %{}",
        f.tool_cpu_pct,
        if f.tool_saturated {
            "  WARNING: the load tool is saturated; figures are limited by it"
        } else {
            ""
        }
    );
    println!(
        "  run-queue wait          server {} %, tool {:.1} % (waiting for a CPU held by others)",
        opt(f.server_runq_wait_pct.map(|c| format!("{c:.1}"))),
        f.tool_runq_wait_pct
    );
    print_split(f);
    println!("  SLO met                 {}", f.slo_ok);
    if let Some(m) = rep.max_players_ok {
        println!("  max players (SLO)       {m}");
    }
    if let Some(j) = rep.churn_joins {
        println!(
            "  churn joins/ok/failed   {j} / {} / {}",
            opt(rep.churn_ok),
            opt(rep.churn_failed)
        );
    }
    if rep.ttff_p50_ms.is_some() {
        println!(
            "  time to first frame     p50 {} ms, p90 {} ms, max {} ms, keyframe first {}",
            opt(rep.ttff_p50_ms.map(|c| format!("{c:.1}"))),
            opt(rep.ttff_p90_ms.map(|c| format!("{c:.1}"))),
            opt(rep.ttff_max_ms.map(|c| format!("{c:.1}"))),
            opt(rep.ttff_keyframe_first)
        );
    }
}

/// Per server, per play URL and per thread lines, when there is more than the sums to say.
fn print_split(f: &Figures) {
    let num = |v: Option<f64>| opt(v.map(|c| format!("{c:.1}")));
    if f.servers.len() > 1 {
        for s in &f.servers {
            println!(
                "  server {:<8}        CPU {} %, RSS {} KiB, run-queue wait {} %, {} Gbit/s, {} % per Gbit/s{}",
                s.pid,
                num(s.cpu_pct),
                opt(s.rss_kb),
                num(s.runq_wait_pct),
                opt(s.delivered_gbps.map(|c| format!("{c:.3}"))),
                num(s.cpu_pct_per_gbps),
                s.play_url
                    .as_ref()
                    .map_or_else(String::new, |u| format!(" ({u})"))
            );
        }
    }
    if f.play_urls.len() > 1 {
        for u in &f.play_urls {
            println!(
                "  play {}: {} players, delivery {:.3} %, p50/p99 {:.1} / {:.1} ms, {:.3} Gbit/s",
                u.url, u.players, u.delivery_pct, u.p50_ms, u.p99_ms, u.delivered_gbps
            );
        }
    }
    let busy: Vec<String> = f
        .server_threads
        .iter()
        .filter(|t| t.cpu_pct >= 0.5)
        .map(|t| format!("{}/{} {} {:.1} %", t.pid, t.tid, t.name, t.cpu_pct))
        .collect();
    if !busy.is_empty() {
        println!("  busiest server threads  {}", busy.join(", "));
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let nofile = match load::raise_nofile() {
        Ok((soft, _)) => Some(soft),
        Err(e) => {
            eprintln!("reflector-load: could not raise RLIMIT_NOFILE: {e}");
            None
        }
    };
    let wanted = cli.players as u64 + 64;
    if let Some(soft) = nofile.filter(|&s| s < wanted) {
        eprintln!(
            "reflector-load: WARNING: the open-file limit is {soft}, below the {wanted} this run needs; raise it with `ulimit -n`"
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let rep = local.block_on(&rt, run(cli, nofile))?;
    print_table(&rep);
    if rep.figures.tool_saturated || rep.steps.iter().any(|s| s.tool_saturated) {
        eprintln!("reflector-load: WARNING: own CPU above 90 % of one core: the tool, not the server, may be the limit");
    }
    println!("{}", serde_json::to_string(&rep)?);
    Ok(())
}
