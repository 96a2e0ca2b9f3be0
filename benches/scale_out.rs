//! Scale benchmark (harness = false): how many players are served at the latency target by
//! one instance with 1 worker, with 2 workers, and by three instances (Redis discovery, pull
//! relays) against one, on this machine.
//!
//! `cargo bench --bench scale_out -- [--target-ms 250] [--steps 100,200,400,800] [--window-s 4]
//! [--scenarios w1,w2,i1,i3]`
//!
//! Load comes from this process, on the project's RTMP client (one tokio thread): a synthetic
//! publisher (25 fps, ~1 Mbit/s, numbered frames) and N players. A step is served when the 99th
//! percentile of publish-to-receive latency of video frames is under the target and at least
//! 99% of the expected frames arrived. The load generator shares the machine's cores with the
//! servers, so absolute numbers understate a dedicated server; the ratios are the point.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reflector::client::synth::{self, Synth, SynthConfig};
use reflector::client::{ClientConfig, ClientEvent, RtmpClient, RtmpUrl};

const RING: usize = 4096;

struct Shared {
    base: Instant,
    /// Micros since `base` at which video frame `seq` was sent, by `seq % RING`.
    sent: Vec<AtomicU64>,
    latencies_ms: Mutex<Vec<u32>>,
    frames: AtomicU64,
    published: AtomicU64,
    stop: AtomicBool,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

struct Instance {
    child: Child,
    port: u16,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_instance(workers: usize, redis: Option<&str>) -> Instance {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reflector"));
    cmd.args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--admin-listen",
        &format!("127.0.0.1:{}", free_port()),
        "--workers",
        &workers.to_string(),
        "--log-level",
        "warn",
    ]);
    if let Some(url) = redis {
        cmd.args(["--redis-url", url]);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the reflector: {e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "reflector did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Instance { child, port }
}

fn url(port: u16) -> RtmpUrl {
    match RtmpUrl::parse(&format!("rtmp://127.0.0.1:{port}/live/bench")) {
        Ok(u) => u,
        Err(e) => panic!("url: {e}"),
    }
}

async fn publisher(port: u16, shared: Arc<Shared>) {
    let Ok(mut client) = RtmpClient::connect(&url(port), &ClientConfig::default()).await else {
        eprintln!("publisher: connect failed");
        return;
    };
    let Ok(id) = client.create_stream().await else {
        return;
    };
    if client.publish(id, "bench").await.is_err() {
        eprintln!("publisher: publish failed");
        return;
    }
    let mut synth = Synth::new(SynthConfig {
        stream_id: id,
        keyframe_size: 25_000,
        inter_size: 4_000,
        ..SynthConfig::default()
    });
    let mut out = vec![synth.metadata()];
    out.extend(synth.headers());
    for m in &out {
        let _ = client.send(m).await;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(40));
    while !shared.stop.load(Relaxed) {
        tick.tick().await;
        out.clear();
        synth.next_tick(&mut out);
        for m in &out {
            if let Some(seq) = synth::video_seq(&m.payload) {
                let at = shared.base.elapsed().as_micros() as u64;
                shared.sent[(seq as usize) % RING].store(at, Relaxed);
                shared.published.fetch_add(1, Relaxed);
            }
            if client.send(m).await.is_err() {
                return;
            }
        }
    }
}

async fn player(port: u16, shared: Arc<Shared>) {
    let Ok(mut client) = RtmpClient::connect(&url(port), &ClientConfig::default()).await else {
        return;
    };
    let Ok(id) = client.create_stream().await else {
        return;
    };
    if client.play(id, "bench").await.is_err() {
        return;
    }
    while !shared.stop.load(Relaxed) {
        match client.next_event().await {
            Ok(ClientEvent::Media(m)) if m.type_id == 9 => {
                if let Some(seq) = synth::video_seq(&m.payload) {
                    let sent = shared.sent[(seq as usize) % RING].load(Relaxed);
                    let now = shared.base.elapsed().as_micros() as u64;
                    let ms = (now.saturating_sub(sent) / 1000).min(u64::from(u32::MAX)) as u32;
                    if let Ok(mut l) = shared.latencies_ms.lock() {
                        l.push(ms);
                    }
                    shared.frames.fetch_add(1, Relaxed);
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

struct Step {
    players: usize,
    p50: u32,
    p99: u32,
    delivered: f64,
}

/// Ramp players over `ports` (round robin) through `steps`; publisher on `ports[0]`.
fn run_scenario(ports: &[u16], steps: &[usize], window: Duration) -> Vec<Step> {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    rt.block_on(async {
        let shared = Arc::new(Shared {
            base: Instant::now(),
            sent: (0..RING).map(|_| AtomicU64::new(0)).collect(),
            latencies_ms: Mutex::new(Vec::new()),
            frames: AtomicU64::new(0),
            published: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                tokio::task::spawn_local(publisher(ports[0], shared.clone()));
                tokio::time::sleep(Duration::from_secs(1)).await;
                let mut running = 0;
                let mut results = Vec::new();
                for &n in steps {
                    while running < n {
                        let port = ports[running % ports.len()];
                        tokio::task::spawn_local(player(port, shared.clone()));
                        running += 1;
                        if running % 50 == 0 {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    // Settle (joins, relays), then measure one window.
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    if let Ok(mut l) = shared.latencies_ms.lock() {
                        l.clear();
                    }
                    let (f0, p0) = (shared.frames.load(Relaxed), shared.published.load(Relaxed));
                    tokio::time::sleep(window).await;
                    let (f1, p1) = (shared.frames.load(Relaxed), shared.published.load(Relaxed));
                    let mut l = shared
                        .latencies_ms
                        .lock()
                        .map(|l| l.clone())
                        .unwrap_or_default();
                    l.sort_unstable();
                    let pct = |q: f64| {
                        l.get(((l.len() as f64 * q) as usize).min(l.len().saturating_sub(1)))
                            .copied()
                            .unwrap_or(u32::MAX)
                    };
                    let expected = (p1 - p0) as f64 * n as f64;
                    let step = Step {
                        players: n,
                        p50: pct(0.50),
                        p99: pct(0.99),
                        delivered: if expected > 0.0 {
                            (f1 - f0) as f64 / expected
                        } else {
                            0.0
                        },
                    };
                    eprintln!(
                        "  {:>5} players: p50 {:>5} ms  p99 {:>5} ms  delivered {:>6.2}%",
                        step.players,
                        step.p50,
                        step.p99,
                        step.delivered * 100.0
                    );
                    results.push(step);
                }
                shared.stop.store(true, Relaxed);
                results
            })
            .await
    })
}

fn served(steps: &[Step], target_ms: u32) -> usize {
    steps
        .iter()
        .take_while(|s| s.p99 <= target_ms && s.delivered >= 0.99)
        .last()
        .map_or(0, |s| s.players)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let target_ms: u32 = arg("--target-ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(250);
    let window = Duration::from_secs(arg("--window-s").and_then(|v| v.parse().ok()).unwrap_or(4));
    let steps: Vec<usize> = arg("--steps")
        .unwrap_or_else(|| "100,200,400,800,1200".into())
        .split(',')
        .filter_map(|s| s.parse().ok())
        .collect();
    let scenarios = arg("--scenarios").unwrap_or_else(|| "w1,w2,i1,i3".into());
    let mut summary: HashMap<&str, usize> = HashMap::new();
    for scenario in scenarios.split(',') {
        let redis;
        let (label, instances): (&str, Vec<Instance>) = match scenario {
            "w1" => ("1 instance, 1 worker", vec![start_instance(1, None)]),
            "w2" | "i1" => ("1 instance, 2 workers", vec![start_instance(2, None)]),
            "i3" => {
                let port = free_port();
                redis = Command::new("redis-server")
                    .args([
                        "--port",
                        &port.to_string(),
                        "--bind",
                        "127.0.0.1",
                        "--save",
                        "",
                    ])
                    .stdout(Stdio::null())
                    .spawn();
                let Ok(redis) = redis else {
                    eprintln!("i3 skipped: redis-server is not installed");
                    continue;
                };
                let _guard = Instance { child: redis, port };
                std::thread::sleep(Duration::from_millis(500));
                let url = format!("redis://127.0.0.1:{port}");
                let instances: Vec<Instance> =
                    (0..3).map(|_| start_instance(2, Some(&url))).collect();
                eprintln!("3 instances, 2 workers each, Redis discovery:");
                let ports: Vec<u16> = instances_ports(&instances);
                let steps = run_scenario(&ports, &steps, window);
                summary.insert("3 instances", served(&steps, target_ms));
                drop(instances);
                continue;
            }
            other => {
                eprintln!("unknown scenario {other}");
                continue;
            }
        };
        if summary.contains_key(label) {
            continue;
        }
        eprintln!("{label}:");
        let ports = instances_ports(&instances);
        let steps = run_scenario(&ports, &steps, window);
        summary.insert(label, served(&steps, target_ms));
    }
    eprintln!("\nplayers served at p99 <= {target_ms} ms and >= 99% delivery:");
    let mut rows: Vec<_> = summary.iter().collect();
    rows.sort();
    for (label, n) in &rows {
        eprintln!("  {label:<24} {n}");
    }
    if let (Some(&one), Some(&three)) = (
        summary.get("1 instance, 2 workers"),
        summary.get("3 instances"),
    ) {
        if one > 0 {
            eprintln!(
                "  per-instance efficiency (3 instances vs 1): {:.0}%",
                three as f64 / (3.0 * one as f64) * 100.0
            );
        }
    }
}

fn instances_ports(instances: &[Instance]) -> Vec<u16> {
    instances.iter().map(|i| i.port).collect()
}
