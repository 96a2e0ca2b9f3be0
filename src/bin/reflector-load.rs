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
//! Players play over RTMP(S) or, given `http://` / `ws://` play URLs, over HTTP-FLV or
//! WebSocket-FLV; either way the frames carry the same stamps and are counted the same way.
//!
//! Several servers can be measured as one service: players spread round-robin over
//! `--play-url`s (instances relaying the publisher's stream), and every `--server-pid` is
//! sampled on its own (CPU, RSS, per-thread CPU) as well as summed.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use clap::{Parser, ValueEnum};
use serde::Serialize;

use reflector::client::synth::{self, Synth, SynthConfig};
use reflector::client::{ClientConfig, ClientError, ClientEvent, RtmpClient, RtmpUrl};
use reflector::load::player::{self, ChurnCounts, PlayUrl, Role, Window};
use reflector::load::worker::{self, Command, ThreadReport, WorkerHandle};
use reflector::load::{self, fds, ProcSample, ThreadCpu, ThreadSample};
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
    /// on other instances that relay it from the one the publisher uses, or over HTTP-FLV
    /// (`http://host:port/app/name.flv`) or WebSocket-FLV (`ws://host:port/app/name.flv`).
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
    /// Video frames per second (the reference load: 30 fps H.264 + AAC).
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Video frames per GOP (a keyframe every GOP; 60 = 2 s at 30 fps).
    #[arg(long, default_value_t = 60)]
    gop: u32,
    /// No AAC audio, video only.
    #[arg(long)]
    no_audio: bool,
    /// Send the audio frames due before a video frame together with it, in one write (this
    /// tool's behaviour before it copied real encoders, which write every frame on its own).
    #[arg(long)]
    bundle_audio: bool,
    /// Player threads never sleep: they poll their sockets in a loop instead of waiting in
    /// epoll. On loopback the sender of a segment runs the receiver's TCP path and wakes
    /// the sleeping reader, so a server is billed for waking this tool's threads (in a VM,
    /// an inter-processor interrupt to an idle virtual CPU); on a network those wake-ups
    /// happen on the players' machines. Costs the tool a whole core per thread.
    #[arg(long)]
    busy_poll: bool,
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
    /// Player threads, each with its own runtime; players are spread over them round-robin.
    /// The publisher and the sampling run on the main thread.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// How players read and acknowledge (see docs/benchmarks.md, "How real players read");
    /// `legacy` is this tool's behaviour before it copied ffmpeg.
    #[arg(long, value_enum, default_value = "ffmpeg")]
    player_profile: PlayerProfile,
    /// SetBufferLength players send after play, ms (ffmpeg: 3000).
    #[arg(long, default_value_t = 3000)]
    buffer_ms: u32,
    /// For `rtmps://` URLs: trust only the CA certificates in this PEM file (e.g. a test CA
    /// or a self-signed server certificate) instead of the public roots.
    #[arg(long)]
    ca_file: Option<std::path::PathBuf>,
}

/// How the players read and acknowledge, after what real players were seen to do
/// (docs/benchmarks.md, "How real players read").
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum PlayerProfile {
    /// Reads of at most one 4096-byte chunk, Acknowledgement every half window.
    Ffmpeg,
    /// Reads of at most 8192 bytes, Acknowledgement every window.
    Gstreamer,
    /// Reads of at most 16383 bytes, Acknowledgement every tenth of the window.
    Rtmpdump,
    /// reflector-load before it copied real players: reads of whatever is buffered (8 KiB
    /// or more), Acknowledgement every window.
    Legacy,
}

impl PlayerProfile {
    /// (read size, acknowledgement divisor) for [`ClientConfig`].
    fn reads(self) -> (usize, u32) {
        match self {
            PlayerProfile::Ffmpeg => (4096, 2),
            PlayerProfile::Gstreamer => (8192, 1),
            PlayerProfile::Rtmpdump => (16383, 10),
            PlayerProfile::Legacy => (0, 1),
        }
    }
}

/// The controller's own state: the window's bounds and what the publisher (which runs on
/// the controller's thread) stamped inside it.
struct Control {
    t0: Instant,
    window: Cell<(u64, u64)>,
    published: Cell<u64>,
    publishing: Cell<bool>,
    /// Late joiners (join mode) that failed; players' failures are counted by their threads.
    connect_failures: Cell<u64>,
    errors_logged: Arc<AtomicU32>,
}

impl Control {
    fn now(&self) -> u64 {
        player::since(self.t0)
    }
    fn in_window(&self, t: u64) -> bool {
        let (a, b) = self.window.get();
        t >= a && t < b
    }
    fn log_error(&self, what: &str, e: &ClientError) {
        player::log_error(&self.errors_logged, what, e);
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
    sh: Rc<Control>,
    url: Rc<RtmpUrl>,
    cfg: Rc<ClientConfig>,
    mut sc: SynthConfig,
    blast: bool,
    bundle: bool,
) {
    if let Err(e) = publish(&sh, &url, &cfg, &mut sc, blast, bundle).await {
        sh.log_error("publisher", &e);
        eprintln!("reflector-load: the publisher stopped; the figures after this are not valid");
    }
}

async fn publish(
    sh: &Control,
    url: &RtmpUrl,
    cfg: &ClientConfig,
    sc: &mut SynthConfig,
    blast: bool,
    bundle: bool,
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
    sh.publishing.set(true);
    let start = tokio::time::Instant::now();
    let mut batch = Vec::with_capacity(8);
    let mut n: u32 = 0;
    // A real encoder writes each frame when it is ready: audio (every 23.2 ms) and video
    // (every 33.3 ms at 30 fps) arrive at the server separately, and each arrival is a write
    // to every player. --bundle-audio sends the audio due before a video frame with it, in
    // one write, as this tool used to (fewer, larger writes for the server).
    let own_time = !blast && !bundle;
    loop {
        if !blast && bundle {
            tokio::time::sleep_until(start + period * n).await;
        }
        batch.clear();
        synth.next_tick(&mut batch);
        for m in batch.iter_mut() {
            if own_time {
                let due = start + Duration::from_millis(u64::from(m.timestamp));
                tokio::time::sleep_until(due).await;
            }
            if m.type_id == type_id::VIDEO {
                let mut body = BytesMut::from(&m.payload[..]);
                let now = sh.now();
                load::write_stamp(&mut body, now);
                m.payload = body.freeze();
                if sh.in_window(now) {
                    sh.published.set(sh.published.get() + 1);
                }
            } else if m.type_id == type_id::AUDIO {
                let mut body = BytesMut::from(&m.payload[..]);
                load::write_audio_stamp(&mut body, sh.now());
                m.payload = body.freeze();
            }
            client.feed(m);
            if own_time {
                client.flush().await?;
            }
        }
        // In blast mode, write several frames per syscall but still let players run.
        if (!blast && bundle) || (blast && n % 8 == 7) {
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
    /// Video frames stamped inside the window that its measured players received.
    received_frames: u64,
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
    /// The tool may be the bottleneck: one of its threads was above BUSY_PCT of a core or
    /// its timers ran late (see `tool_warning`).
    tool_saturated: bool,
    /// Why `tool_saturated` is set.
    tool_warning: Option<String>,
    /// Every thread of the tool: the controller (publisher, sampling) and the player threads.
    tool_threads: Vec<ToolThread>,
    /// Measured players whose own delivery was below the SLO's.
    players_below_slo: usize,
    /// The lowest delivery of one measured player, percent.
    worst_player_delivery_pct: f64,
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

/// One thread of the tool over a window.
#[derive(Debug, Default, Clone, Serialize)]
struct ToolThread {
    /// `control` (publisher and sampling) or `load-N`.
    thread: String,
    tid: u32,
    /// Measured players it counted and the video frames they received.
    players: usize,
    received_frames: u64,
    /// Percent of one core.
    cpu_pct: f64,
    /// How late its timers ran (probe every 10 ms), milliseconds.
    late_p99_ms: f64,
    late_max_ms: f64,
}

/// A tool thread above this share of a core is reported as a possible bottleneck.
const BUSY_PCT: f64 = 85.0;
/// ... and so is one whose timers run this late at the 99th percentile.
const LATE_P99_MS: f64 = 20.0;

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
    bundle_audio: bool,
    busy_poll: bool,
    threads: usize,
    player_profile: PlayerProfile,
    read_size: usize,
    ack_divisor: u32,
    buffer_ms: u32,
    nofile_limit: Option<u64>,
    /// Open files the run was expected to need (players + overhead).
    files_needed: u64,
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
    ctl: Rc<Control>,
    /// Where players play, round-robin (at least one); late joiners use them from the
    /// controller's thread.
    play: Vec<Rc<PlayUrl>>,
    cfg: Rc<ClientConfig>,
    /// Player threads; players go to them round-robin.
    workers: Rc<Vec<WorkerHandle>>,
    sampler: Sampler,
    spawned: usize,
}

/// Send player `i` to its thread, on its play URL.
fn spawn_on(workers: &[WorkerHandle], plays: usize, i: usize, role: Role) {
    if let Some(w) = workers.get(i % workers.len().max(1)) {
        w.send(Command::Spawn {
            role,
            url: i % plays.max(1),
        });
    }
}

impl Run {
    fn spawn_player(&mut self, role: Role) {
        spawn_on(&self.workers, self.play.len(), self.spawned, role);
        self.spawned += 1;
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
        while !self.ctl.publishing.get() {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Every player thread's counts so far.
    async fn reports(&self) -> Vec<ThreadReport> {
        let mut out = Vec::with_capacity(self.workers.len());
        for w in self.workers.iter() {
            match w.report().await {
                Some(r) => out.push(r),
                None => eprintln!("reflector-load: WARNING: player thread {} is gone", w.index),
            }
        }
        out
    }

    /// Open a window of `duration`, wait for it and for in-flight frames, then compute.
    async fn window(&self, duration: f64) -> Figures {
        let me = std::process::id();
        // The window opens a little ahead so that every thread has reset its counts first.
        let lead = Duration::from_millis(20);
        let start = self.ctl.now() + lead.as_nanos() as u64;
        let end = start + secs(duration).as_nanos() as u64;
        self.ctl.window.set((start, end));
        self.ctl.published.set(0);
        for w in self.workers.iter() {
            w.send(Command::Open { start, end });
        }
        tokio::time::sleep(lead).await;
        let s0 = self.sampler.servers(true);
        let me0 = load::sample_self();
        let m0 = load::sample_machine();
        let tt0 = load::sample_threads(me);
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
        let tt1 = load::sample_threads(me);
        let elapsed = t.elapsed().as_secs_f64();
        // Frames stamped near the end are still on their way.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let reports = self.reports().await;
        let mut w = Window::default();
        for r in &reports {
            w.merge(&r.window);
        }
        let published = self.ctl.published.get();
        let tool_cpu = load::thread_cpu(&tt0, &tt1, self.sampler.tck, elapsed);
        let tool_threads = tool_threads(me, &tool_cpu, &reports);
        let tool_warning = tool_warning(&tool_threads, self.cli.busy_poll);
        let delivery_of = |received: u64, players: usize| {
            let expected = published * players as u64;
            if expected == 0 {
                0.0
            } else {
                received as f64 * 100.0 / expected as f64
            }
        };
        let expected = published * w.players as u64;
        let delivery = delivery_of(w.received, w.players);
        let per_player: Vec<f64> = w.per_player.iter().map(|&r| delivery_of(r, 1)).collect();
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
                received_frames: u.received,
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
            published_frames: published,
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
            tool_saturated: tool_warning.is_some(),
            tool_warning,
            tool_threads,
            players_below_slo: per_player
                .iter()
                .filter(|&&d| d < self.cli.slo_delivery)
                .count(),
            worst_player_delivery_pct: per_player.iter().copied().reduce(f64::min).unwrap_or(0.0),
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

/// The controller thread (the process's main thread) and every player thread, with their
/// CPU over the window and their counts.
fn tool_threads(pid: u32, cpu: &[ThreadCpu], reports: &[ThreadReport]) -> Vec<ToolThread> {
    let cpu_of = |tid: u32| cpu.iter().find(|t| t.tid == tid).map_or(0.0, |t| t.cpu_pct);
    let ms = |us: u64| us as f64 / 1000.0;
    std::iter::once(ToolThread {
        thread: "control".to_owned(),
        tid: pid,
        cpu_pct: cpu_of(pid),
        ..ToolThread::default()
    })
    .chain(reports.iter().map(|r| ToolThread {
        thread: format!("load-{}", r.index),
        tid: r.tid,
        players: r.window.players,
        received_frames: r.window.received,
        cpu_pct: cpu_of(r.tid),
        late_p99_ms: ms(r.lateness.quantile(0.99)),
        late_max_ms: ms(r.lateness.max()),
    }))
    .collect()
}

/// Why the tool may have been the bottleneck, if it may. Busy-polling player threads use a
/// whole core by design: only their late timers count.
fn tool_warning(threads: &[ToolThread], busy_poll: bool) -> Option<String> {
    let hot: Vec<String> = threads
        .iter()
        .filter_map(|t| {
            let polls = busy_poll && t.thread.starts_with("load-");
            let busy = t.cpu_pct > BUSY_PCT && !polls;
            let late = t.late_p99_ms > LATE_P99_MS;
            (busy || late).then(|| {
                format!(
                    "{} at {:.0} % of a core, timers late by {:.1} ms (p99)",
                    t.thread, t.cpu_pct, t.late_p99_ms
                )
            })
        })
        .collect();
    (!hot.is_empty()).then(|| {
        format!(
            "the load tool may be the bottleneck ({}): add --threads or cores; the figures may be the tool's, not the server's",
            hot.join("; ")
        )
    })
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
        bundle_audio: cli.bundle_audio,
        busy_poll: cli.busy_poll,
        threads: usize::from(cli.threads),
        player_profile: cli.player_profile,
        read_size: cli.player_profile.reads().0,
        ack_divisor: cli.player_profile.reads().1,
        buffer_ms: cli.buffer_ms,
        nofile_limit: nofile,
        files_needed: fds::files_needed(players_at_once(cli), usize::from(cli.threads)),
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
        vec![Rc::new(PlayUrl::Rtmp((*url).clone()))]
    } else {
        cli.play_url
            .iter()
            .map(|u| PlayUrl::parse(u).map(Rc::new))
            .collect::<Result<Vec<_>, _>>()?
    };
    let (read_size, ack_divisor) = cli.player_profile.reads();
    let cfg = ClientConfig {
        // The plain §5.2 handshake: cheaper for thousands of players, accepted everywhere.
        digest_handshake: false,
        timeout: Duration::from_secs(20),
        read_size,
        ack_divisor,
        buffer_ms: cli.buffer_ms,
        tls: match &cli.ca_file {
            Some(path) => Some(reflector::tls::client_config(Some(path))?),
            None => None,
        },
        ..ClientConfig::default()
    };
    let ctl = Rc::new(Control {
        t0: Instant::now(),
        window: Cell::new((0, 0)),
        published: Cell::new(0),
        publishing: Cell::new(false),
        connect_failures: Cell::new(0),
        errors_logged: Arc::new(AtomicU32::new(0)),
    });
    let plain: Vec<PlayUrl> = play.iter().map(|u| (**u).clone()).collect();
    let workers = (0..usize::from(cli.threads))
        .map(|i| {
            worker::spawn_worker(
                i,
                ctl.t0,
                &plain,
                &cfg,
                ctl.errors_logged.clone(),
                cli.busy_poll,
            )
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let cfg = Rc::new(cfg);
    let sampler = Sampler::new(&cli.server_pid);
    let idle = sampler.server();
    let mut rep = report(&cli, nofile);
    rep.server_rss_idle_kb = idle.map(|s| s.rss_kb);
    let sc = synth_config(&cli);
    let mut r = Run {
        cli,
        ctl: ctl.clone(),
        play,
        cfg: cfg.clone(),
        workers: Rc::new(workers),
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
            ctl.clone(),
            url.clone(),
            cfg.clone(),
            sc.clone(),
            mode == Mode::Blast,
            r.cli.bundle_audio,
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
                        if let Some(why) = rep.steps.last().and_then(|f| f.tool_warning.as_ref()) {
                            eprintln!("reflector-load: WARNING: {why}; stopping the search (the limit found is the tool's)");
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
                    let (workers, plays) = (r.workers.clone(), r.play.len());
                    tokio::task::spawn_local(async move {
                        let start = tokio::time::Instant::now();
                        for i in 0..total {
                            tokio::time::sleep_until(start + secs(i as f64 / rate)).await;
                            spawn_on(&workers, plays, i, Role::Churn(life));
                        }
                    });
                }
                rep.figures = r.window(r.cli.duration).await;
                if mode == Mode::Churn {
                    // Let the last churning players finish their stay.
                    tokio::time::sleep(secs(r.cli.churn_life)).await;
                    let mut c = ChurnCounts::default();
                    for t in r.reports().await {
                        c.joins += t.churn.joins;
                        c.ok += t.churn.ok;
                        c.failed += t.churn.failed;
                    }
                    rep.churn_joins = Some(c.joins);
                    rep.churn_ok = Some(c.ok);
                    rep.churn_failed = Some(c.failed);
                }
            }
        }
    }
    rep.connect_failures = ctl.connect_failures.get()
        + r.reports()
            .await
            .iter()
            .map(|t| t.connect_failures)
            .sum::<u64>();
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
        let url = r.play[j % r.play.len()].clone();
        let got = async {
            let mut c = player::start_player(&url, &r.cfg, Role::Measured).await?;
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
                r.ctl.connect_failures.set(r.ctl.connect_failures.get() + 1);
                r.ctl.log_error("late joiner", &e);
            }
            Err(_) => {
                r.ctl.connect_failures.set(r.ctl.connect_failures.get() + 1);
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
        "  per player              {} below the SLO's delivery, worst {:.3} %",
        f.players_below_slo, f.worst_player_delivery_pct
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
        "  tool CPU                {:.1} % ({} player threads, {} profile, open files {} of {})",
        f.tool_cpu_pct,
        rep.threads,
        format!("{:?}", rep.player_profile).to_lowercase(),
        rep.files_needed,
        opt(rep.nofile_limit)
    );
    for t in &f.tool_threads {
        println!(
            "    {:<9} tid {:<7} {:>6} players {:>9} frames  CPU {:5.1} %  late p99 {:.1} ms max {:.1} ms",
            t.thread, t.tid, t.players, t.received_frames, t.cpu_pct, t.late_p99_ms, t.late_max_ms
        );
    }
    if let Some(why) = &f.tool_warning {
        println!("  WARNING                 {why}");
    }
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

/// Connections the run holds at once at its peak.
fn players_at_once(cli: &Cli) -> usize {
    match cli.mode {
        Mode::Max => cli.max_players,
        Mode::Join => 1,
        // Each churning player stays churn_life seconds; twice that covers slow leavers.
        Mode::Churn => cli.players + (cli.churn_rate * cli.churn_life * 2.0).ceil() as usize + 8,
        _ => cli.players,
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let nofile = match load::raise_nofile() {
        Ok((soft, hard)) => {
            let at_once = players_at_once(&cli);
            if let Err(why) = fds::check(at_once, usize::from(cli.threads), soft, hard) {
                // Before any connection: a run that would hit EMFILE half-way measures
                // nothing but the limit.
                eprintln!("reflector-load: {why}");
                let refusal = serde_json::json!({
                    "tool": "reflector-load",
                    "refused": why,
                    "players": at_once,
                    "nofile_limit": soft,
                    "nofile_hard_limit": hard,
                    "files_needed": fds::files_needed(at_once, usize::from(cli.threads)),
                });
                println!("{refusal}");
                std::process::exit(2);
            }
            Some(soft)
        }
        Err(e) => {
            eprintln!("reflector-load: WARNING: could not read or raise RLIMIT_NOFILE ({e}); the player count is not checked against it");
            None
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let rep = local.block_on(&rt, run(cli, nofile))?;
    print_table(&rep);
    for f in rep.steps.iter().chain(std::iter::once(&rep.figures)) {
        if let Some(why) = &f.tool_warning {
            eprintln!("reflector-load: WARNING ({} players): {why}", f.players);
        }
    }
    println!("{}", serde_json::to_string(&rep)?);
    Ok(())
}
