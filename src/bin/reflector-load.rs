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

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use clap::{Parser, ValueEnum};
use serde::Serialize;

use reflector::client::synth::{self, Synth, SynthConfig};
use reflector::client::{ClientConfig, ClientError, ClientEvent, RtmpClient, RtmpUrl};
use reflector::load::{self, Histogram, ProcSample};
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
    /// rtmp://host[:port]/app/stream: the publisher publishes it, the players play it.
    url: String,
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
    /// Server process to sample (CPU, RSS); its direct children are included (nginx workers).
    #[arg(long)]
    server_pid: Option<u32>,
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
    measured_playing: Cell<usize>,
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

async fn player(sh: Rc<Shared>, url: Rc<RtmpUrl>, cfg: Rc<ClientConfig>, role: Role) {
    if let Role::Churn(_) = role {
        sh.churn.borrow_mut().joins += 1;
    }
    let started = match start_player(&url, &cfg, role).await {
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
        Role::Measured => measure(&sh, &mut client).await,
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

async fn measure(sh: &Shared, client: &mut RtmpClient) {
    let joined = sh.now();
    sh.measured_playing.set(sh.measured_playing.get() + 1);
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
            w.bytes += m.payload.len() as u64;
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
            w.received += 1;
            w.hist.record(now.saturating_sub(stamp) / 1000);
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
    sh.measured_playing.set(sh.measured_playing.get() - 1);
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
    pid: Option<u32>,
    kids: Vec<u32>,
    tck: f64,
}

impl Sampler {
    fn new(pid: Option<u32>) -> Self {
        let kids = pid.map(load::children).unwrap_or_default();
        Sampler {
            pid,
            kids,
            tck: load::clock_ticks_per_sec() as f64,
        }
    }
    fn server(&self) -> Option<ProcSample> {
        self.pid.and_then(|p| load::sample_tree(p, &self.kids))
    }
    fn pct(&self, a: u64, b: u64, secs: f64) -> f64 {
        b.saturating_sub(a) as f64 / self.tck / secs * 100.0
    }
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
}

/// The whole run.
#[derive(Debug, Serialize)]
struct Report {
    tool: &'static str,
    mode: Mode,
    label: String,
    url: String,
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
    url: Rc<RtmpUrl>,
    cfg: Rc<ClientConfig>,
    sampler: Sampler,
    spawned: usize,
}

impl Run {
    fn spawn_player(&mut self, role: Role) {
        self.spawned += 1;
        tokio::task::spawn_local(player(
            self.sh.clone(),
            self.url.clone(),
            self.cfg.clone(),
            role,
        ));
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
        let s0 = self.sampler.server();
        let me0 = load::sample_self();
        let m0 = load::sample_machine();
        {
            let mut w = self.sh.window.borrow_mut();
            *w = Window::default();
            w.start = self.sh.now();
            w.end = w.start + secs(duration).as_nanos() as u64;
            w.players = self.sh.measured_playing.get();
        }
        let t = Instant::now();
        let mut peak = s0.map(|s| s.rss_kb);
        while t.elapsed().as_secs_f64() < duration {
            tokio::time::sleep(Duration::from_millis(250).min(secs(duration))).await;
            if let (Some(p), Some(s)) = (peak.as_mut(), self.sampler.server()) {
                *p = (*p).max(s.rss_kb);
            }
        }
        let s1 = self.sampler.server();
        let me1 = load::sample_self();
        let m1 = load::sample_machine();
        let elapsed = t.elapsed().as_secs_f64();
        // Frames stamped near the end are still on their way.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let w = self.sh.window.borrow();
        let expected = w.published * w.players as u64;
        let delivery = if expected == 0 {
            0.0
        } else {
            w.received as f64 * 100.0 / expected as f64
        };
        let gbps = w.bytes as f64 * 8.0 / elapsed / 1e9;
        let server_cpu = match (s0, s1) {
            (Some(a), Some(b)) => Some(self.sampler.pct(a.cpu_ticks, b.cpu_ticks, elapsed)),
            _ => None,
        };
        let tool_cpu = self.sampler.pct(me0.cpu_ticks, me1.cpu_ticks, elapsed);
        let machine_cpu = match (m0, m1) {
            (Some(a), Some(b)) => Some(self.sampler.pct(a.busy_ticks, b.busy_ticks, elapsed)),
            _ => None,
        };
        let p99 = w.hist.quantile(0.99) as f64 / 1000.0;
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
            server_rss_kb: s1.map(|s| s.rss_kb),
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
            server_runq_wait_pct: match (s0, s1) {
                (Some(a), Some(b)) => Some(wait_pct(a, b, elapsed)),
                _ => None,
            },
            tool_runq_wait_pct: wait_pct(me0, me1, elapsed),
            tool_saturated: tool_cpu > 90.0,
            slo_ok: expected > 0
                && delivery >= self.cli.slo_delivery
                && p99 <= self.cli.slo_p99_ms
                && w.reordered == 0,
        }
    }
}

fn report(cli: &Cli, nofile: Option<u64>) -> Report {
    Report {
        tool: "reflector-load",
        mode: cli.mode,
        label: cli.label.clone(),
        url: cli.url.clone(),
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
        measured_playing: Cell::new(0),
        connect_failures: Cell::new(0),
        errors_logged: Cell::new(0),
        published: Cell::new(false),
    });
    let sampler = Sampler::new(cli.server_pid);
    let idle = sampler.server();
    let mut rep = report(&cli, nofile);
    rep.server_rss_idle_kb = idle.map(|s| s.rss_kb);
    let sc = synth_config(&cli);
    let mut r = Run {
        cli,
        sh: sh.clone(),
        url: url.clone(),
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
                    let (sh2, url2, cfg2) = (sh.clone(), url.clone(), cfg.clone());
                    let total = (rate * r.cli.duration).round() as usize;
                    tokio::task::spawn_local(async move {
                        let start = tokio::time::Instant::now();
                        for i in 0..total {
                            tokio::time::sleep_until(start + secs(i as f64 / rate)).await;
                            tokio::task::spawn_local(player(
                                sh2.clone(),
                                url2.clone(),
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
        let got = async {
            let mut c = start_player(&r.url, &r.cfg, Role::Measured).await?;
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
