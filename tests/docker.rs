//! The container image, for real: `scripts/podman-build.sh` builds the project's Dockerfile
//! with podman (local debootstrap base images, see ../shared/containers.md), the test runs it
//! with `--network host` on free ports, publishes and plays with ffmpeg and checks the
//! recording frame by frame, checks the server runs as non-root, asks the image's
//! HEALTHCHECK (`podman healthcheck run`) and `/healthz`, and stops it with SIGTERM (clean
//! drain, exit status 0). Then docker-compose.yml as written (podman-compose, with local
//! stand-ins for the public Redis and HAProxy images): one ffmpeg publisher and six ffmpeg
//! players through HAProxy, every instance serving players, two of them pulling from the
//! origin, every recording frame-exact.
//!
//! Without podman the container test is skipped with a message, or fails when
//! `TEST_REQUIRE_RTMP_CLIENTS` is set (CI). The `--healthcheck` probe tests need only the
//! host binary.

use crate::common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{play, publish_looped, shared_clip, Player, Proc};

/// The tag the test builds and runs.
const IMAGE: &str = "localhost/reflector:test";
/// The non-root user the Dockerfile creates.
const CONTAINER_UID: u32 = 10001;
/// The admin token the container gets (the admin port refuses a non-loopback address
/// without one; /healthz needs none).
const ADMIN_TOKEN: &str = "docker-test-token";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where scripts/podman-build.sh keeps its containers.conf (same default as the script).
fn podman_dir() -> PathBuf {
    std::env::var_os("REFLECTOR_PODMAN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/reflector-podman"))
}

/// `podman --runtime runc ARGS` with the sandbox's containers.conf.
fn podman(args: &[&str]) -> Command {
    let mut cmd = Command::new("podman");
    cmd.env("CONTAINERS_CONF", podman_dir().join("containers.conf"))
        .args(["--runtime", "runc"])
        .args(args)
        .stdin(Stdio::null());
    cmd
}

fn output(args: &[&str]) -> Output {
    podman(args)
        .output()
        .unwrap_or_else(|e| panic!("podman {args:?}: {e}"))
}

fn stdout_of(args: &[&str]) -> String {
    let out = output(args);
    assert!(
        out.status.success(),
        "podman {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A running container; removed (`podman rm -f`) on drop so a failing test leaves nothing.
struct Container {
    name: String,
    /// The foreground `podman run` (its log is the server's stderr, its exit status the
    /// server's).
    run: Proc,
}

impl Container {
    fn logs(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.run.log_path()).unwrap_or_default())
            .into_owned()
    }

    fn log_tail(&self) -> String {
        self.run.log_tail(40)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The status code of `GET http://127.0.0.1:PORT/PATH`, or the connection error.
fn http_status(port: u16, path: &str) -> Result<u16, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {text:?}"))
}

fn wait_accepting(port: u16, container: &mut Container, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Some(st) = container.run.try_wait() {
            panic!(
                "container exited ({st}) before listening:\n{}",
                container.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "container not accepting on 127.0.0.1:{port} after {limit:?}:\n{}",
        container.log_tail()
    );
}

/// The uid the process `pid` (a host pid) runs as: rootful podman keeps uids as they are.
fn process_uid(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| panic!("no effective Uid in /proc/{pid}/status"))
}

/// Build the image once per test binary: the tests run in parallel and share the tag.
fn build_image(dir: &Path) {
    static BUILT: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !*built {
        build_image_now(dir);
        *built = true;
    }
}

fn build_image_now(dir: &Path) {
    let log = dir.join("podman-build.log");
    let out = std::fs::File::create(&log).expect("build log");
    let err = out.try_clone().expect("build log");
    let started = Instant::now();
    let status = Command::new("bash")
        .arg(repo().join("scripts/podman-build.sh"))
        .arg(IMAGE)
        .env("REFLECTOR_PODMAN_DIR", podman_dir())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .expect("run scripts/podman-build.sh");
    let tail = common::tail(&log, 40);
    assert!(
        status.success(),
        "podman-build.sh failed ({status}):\n{tail}"
    );
    eprintln!(
        "image built in {:.1} s; {}",
        started.elapsed().as_secs_f64(),
        tail.lines().last().unwrap_or_default()
    );
}

/// Build the image, run it, publish and play through it frame-exact, check non-root,
/// HEALTHCHECK and /healthz, then SIGTERM: clean drain and exit 0.
#[test]
fn container_image_serves_rtmp_as_non_root_and_drains_on_sigterm() {
    if common::should_skip(
        "container_image_serves_rtmp_as_non_root_and_drains_on_sigterm",
        &["podman", "runc", "debootstrap", "ffmpeg", "ffprobe"],
    ) {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("reflector-docker-test-")
        .tempdir()
        .expect("temp dir");
    build_image(dir.path());

    let size: u64 = stdout_of(&["image", "inspect", "--format", "{{.Size}}", IMAGE])
        .parse()
        .expect("image size");
    eprintln!("{IMAGE}: {} MB", size / 1_000_000);
    let healthcheck = stdout_of(&[
        "image",
        "inspect",
        "--format",
        "{{json .HealthCheck}}",
        IMAGE,
    ]);
    assert!(
        healthcheck.contains("--healthcheck"),
        "image has no HEALTHCHECK (built without --format docker?): {healthcheck}"
    );

    // --network host: the ports are the host's, so bind loopback only, on free ports. The
    // token is set when the binary knows [admin] (the admin port's configuration).
    let port = common::free_port();
    let admin_port = common::free_port();
    let name = format!("reflector-test-{}-{port}", std::process::id());
    let listen = format!("REFLECTOR_SERVER__LISTEN=127.0.0.1:{port}");
    let admin_listen = format!("REFLECTOR_SERVER__ADMIN_LISTEN=127.0.0.1:{admin_port}");
    let token = format!("REFLECTOR_ADMIN__TOKEN={ADMIN_TOKEN}");
    let mut args = vec![
        "run",
        "--rm",
        "--name",
        &name,
        "--network",
        "host",
        // No systemd timer here: the test runs the healthcheck itself.
        "--health-interval",
        "disable",
        "-e",
        &listen,
        "-e",
        &admin_listen,
        "-e",
        &token,
    ];
    args.extend([IMAGE, "--workers", "2"]);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let run = Proc::spawn(
        "podman-run",
        "podman",
        &[
            vec!["--runtime".to_string(), "runc".to_string()],
            args.clone(),
        ]
        .concat(),
        &[(
            "CONTAINERS_CONF",
            podman_dir().join("containers.conf").to_str().unwrap_or(""),
        )],
        &dir.path().join("container.log"),
    );
    let mut container = Container { name, run };
    wait_accepting(port, &mut container, Duration::from_secs(30));

    // Non-root: the server process itself, seen from the host.
    let pid: u32 = stdout_of(&["inspect", "--format", "{{.State.Pid}}", &container.name])
        .parse()
        .expect("container pid");
    let uid = process_uid(pid);
    assert_eq!(uid, CONTAINER_UID, "server runs as uid {uid}");
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_eq!(comm.trim(), "reflector", "container's main process");

    // Publish with ffmpeg, play with ffmpeg, frame-exact.
    let clip = shared_clip();
    let url = format!("rtmp://127.0.0.1:{port}/live/docker");
    // The clip twice over (16 s): it must still be sending at the SIGTERM below, after the
    // verification and the health checks, however slow the machine.
    let mut publisher = publish_looped(clip, 2, &url, dir.path());
    std::thread::sleep(Duration::from_millis(1500));
    let recording = play(Player::Ffmpeg, &url, dir.path(), Duration::from_secs(4));
    let rec = recording.finish();
    let verdict = common::verify_recording(&rec, &clip.looped(2));
    eprintln!("through the container: {verdict}");
    verdict.assert_ok_with_at_least(50);

    // The image's HEALTHCHECK, run by podman inside the container, and /healthz from outside.
    let health = output(&["healthcheck", "run", &container.name]);
    let healthy = health.status.success();
    let health_text = format!(
        "{}{}",
        String::from_utf8_lossy(&health.stdout).trim(),
        String::from_utf8_lossy(&health.stderr).trim()
    );
    let healthz = http_status(admin_port, "/healthz");
    eprintln!("podman healthcheck run: {healthy} ({health_text}); GET /healthz: {healthz:?}");

    // SIGTERM with the publisher still sending: a clean drain, exit status 0.
    assert!(
        publisher.try_wait().is_none(),
        "publisher ended early: {}",
        publisher.log_tail(20)
    );
    let out = output(&["kill", "--signal", "TERM", &container.name]);
    assert!(out.status.success(), "podman kill: {out:?}");
    let exited = container.run.wait_timeout(Duration::from_secs(15));
    let logs = container.logs();
    assert!(
        matches!(exited, Some(st) if st.success()),
        "container did not exit 0 within 15 s of SIGTERM ({exited:?}):\n{}",
        container.log_tail()
    );
    assert!(logs.contains("draining"), "{}", container.log_tail());
    assert!(
        logs.contains("drained: every connection closed"),
        "{}",
        container.log_tail()
    );

    // Last, so everything above is checked even before the admin port lands: the
    // HEALTHCHECK must agree with /healthz, and /healthz must answer 200.
    assert_eq!(
        healthy,
        healthz == Ok(200),
        "HEALTHCHECK says healthy={healthy} ({health_text}) but GET /healthz gave {healthz:?}"
    );
    assert_eq!(
        healthz,
        Ok(200),
        "GET /healthz on the admin port (HEALTHCHECK reported unhealthy, as it should: {health_text})"
    );
}

/// A one-shot HTTP server on a free loopback port answering `status` to every request.
fn answer_once(status: &'static str) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            // Read the whole request head, as an HTTP server does, then answer.
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (port, handle)
}

fn probe(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reflector"));
    cmd.arg("--healthcheck").args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run reflector --healthcheck");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `--healthcheck URL`: 2xx is healthy; 404, 503, a refused connection and a non-HTTP
/// answer are not.
#[test]
fn healthcheck_probe_exit_status() {
    let (port, h) = answer_once("200 OK");
    let (ok, out) = probe(&[&format!("http://127.0.0.1:{port}/healthz")], &[]);
    h.join().expect("server thread");
    assert!(ok, "200 should be healthy: {out}");

    for status in ["404 Not Found", "503 Service Unavailable"] {
        let (port, h) = answer_once(status);
        let (ok, out) = probe(&[&format!("http://127.0.0.1:{port}/healthz")], &[]);
        h.join().expect("server thread");
        assert!(!ok, "{status} should be unhealthy: {out}");
    }

    let refused = common::free_port();
    let (ok, out) = probe(&[&format!("http://127.0.0.1:{refused}/healthz")], &[]);
    assert!(!ok, "a refused connection should be unhealthy: {out}");

    let (ok, out) = probe(&["https://127.0.0.1/healthz"], &[]);
    assert!(!ok, "unsupported scheme should be unhealthy: {out}");
}

/// Without a URL the probe asks /healthz on the configured admin address, with 0.0.0.0
/// replaced by loopback (how the image's HEALTHCHECK finds the port).
#[test]
fn healthcheck_probe_defaults_to_configured_admin_address() {
    let (port, h) = answer_once("200 OK");
    let admin = format!("0.0.0.0:{port}");
    // A non-loopback admin address needs a token.
    let env = vec![
        ("REFLECTOR_SERVER__ADMIN_LISTEN", admin.as_str()),
        ("REFLECTOR_ADMIN__TOKEN", ADMIN_TOKEN),
    ];
    let (ok, out) = probe(&[], &env);
    h.join().expect("server thread");
    assert!(ok, "probe failed: {out}");
    assert!(
        out.contains(&format!("http://127.0.0.1:{port}/healthz")),
        "probe asked the wrong URL: {out}"
    );
}

// --- docker-compose.yml: three instances, Redis, HAProxy -------------------------------

/// The public images the compose file names cannot be pulled here (no registry): stand-ins
/// from Debian's packages on the local base image, started the way the official images
/// start. HAProxy gets `-n 9000` because the sandbox caps open files at 20000 and the
/// config's `maxconn 20000` asks for twice that (a Docker host allows it).
const STANDIN_REDIS: &str = "localhost/reflector-standin-redis:test";
const STANDIN_HAPROXY: &str = "localhost/reflector-standin-haproxy:test";
const COMPOSE_PROJECT: &str = "reflector-compose-test";
/// The test network's /24 (see the override in the test).
const COMPOSE_SUBNET: &str = "10.213.77";

fn build_standins(dir: &Path) {
    let base = "localhost/debian:bookworm-slim";
    let files = [
        (
            STANDIN_REDIS,
            format!(
                "FROM {base}\n\
                 RUN apt-get update && apt-get install -y --no-install-recommends redis-server \
                 && rm -rf /var/lib/apt/lists/*\n\
                 CMD [\"redis-server\", \"--protected-mode\", \"no\", \"--bind\", \"0.0.0.0\", \"--save\", \"\"]\n"
            ),
        ),
        (
            STANDIN_HAPROXY,
            format!(
                "FROM {base}\n\
                 RUN apt-get update && apt-get install -y --no-install-recommends haproxy \
                 && rm -rf /var/lib/apt/lists/* && mkdir -p /usr/local/etc/haproxy\n\
                 CMD [\"haproxy\", \"-W\", \"-db\", \"-n\", \"9000\", \"-f\", \"/usr/local/etc/haproxy/haproxy.cfg\"]\n"
            ),
        ),
    ];
    for (tag, text) in files {
        let file = dir.join(format!("{}.Containerfile", tag.replace(['/', ':'], "_")));
        std::fs::write(&file, text).expect("write Containerfile");
        let file = file.display().to_string();
        let ctx = dir.display().to_string();
        let out = output(&["build", "--network", "host", "-f", &file, "-t", tag, &ctx]);
        assert!(
            out.status.success(),
            "podman build {tag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `python3 -m podman_compose` on the repository's docker-compose.yml plus the test's
/// override (local images), as project [`COMPOSE_PROJECT`].
struct Compose {
    conf: PathBuf,
    overrides: PathBuf,
}

impl Compose {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("python3");
        cmd.current_dir(repo())
            .env("CONTAINERS_CONF", &self.conf)
            .env("REFLECTOR_ADMIN_TOKEN", ADMIN_TOKEN)
            .args(["-m", "podman_compose", "-p", COMPOSE_PROJECT])
            .arg("-f")
            .arg(repo().join("docker-compose.yml"))
            .arg("-f")
            .arg(&self.overrides)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("podman-compose {args:?}: {e}"))
    }

    fn logs(&self, service: &str) -> String {
        let out = self.run(&["logs", service]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl Compose {
    /// Each instance's log lines, without the health checks.
    fn reflector_logs(&self) -> String {
        let mut text = String::new();
        for service in ["reflector1", "reflector2", "reflector3"] {
            text += &format!("--- {service}\n");
            for line in self.logs(service).lines() {
                if !line.contains("healthz") && !line.contains("readyz") {
                    text += line;
                    text.push('\n');
                }
            }
        }
        text
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let _ = self
            .command(&["down", "-t", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `GET http://127.0.0.1:PORT/PATH` with the admin token, as JSON.
fn admin_json(port: u16, path: &str) -> Result<serde_json::Value, String> {
    let body = ureq::get(&format!("http://127.0.0.1:{port}{path}"))
        .set("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
        .timeout(Duration::from_secs(3))
        .call()
        .map_err(|e| e.to_string())?
        .into_string()
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))
}

/// The topology of docker-compose.yml, run as written (with local stand-ins for the public
/// images): an ffmpeg publisher and six ffmpeg players through HAProxy on the host's 1935;
/// every instance serves players, one is the origin and the two others pull from it (admin
/// API on 8081-8083 through HAProxy), and every recording is frame-exact.
#[test]
fn compose_topology_serves_every_player_through_haproxy() {
    let test = "compose_topology_serves_every_player_through_haproxy";
    if common::should_skip(
        test,
        &["podman", "runc", "debootstrap", "ffmpeg", "ffprobe"],
    ) {
        return;
    }
    let have_compose = Command::new("python3")
        .args(["-c", "import podman_compose"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have_compose {
        assert!(
            std::env::var_os(common::REQUIRE_CLIENTS_ENV).is_none(),
            "{test}: python module podman_compose is not installed (pip install podman-compose)"
        );
        eprintln!("SKIP {test}: podman-compose is not installed (pip install podman-compose)");
        return;
    }
    // The compose file publishes fixed host ports.
    for port in [1935, 8080, 8081, 8082, 8083] {
        assert!(
            TcpListener::bind(("0.0.0.0", port)).is_ok(),
            "{test}: host port {port} is taken; docker-compose.yml publishes it"
        );
    }
    let dir = tempfile::Builder::new()
        .prefix("reflector-compose-test-")
        .tempdir()
        .expect("temp dir");
    build_image(dir.path());
    build_standins(dir.path());

    // podman-compose runs plain `podman`: the runtime comes from containers.conf.
    let conf = dir.path().join("containers.conf");
    std::fs::write(
        &conf,
        "[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = \"cgroupfs\"\nruntime = \"runc\"\n",
    )
    .expect("containers.conf");
    // The override swaps in the local images and pins each service's address in every
    // container's /etc/hosts. The pinning stands in for podman 4.3's DNS (aardvark-dns in
    // Debian bookworm), which here stops answering for seconds at a time: straced, a pull's
    // lookups of `reflector1` got no answer for 15 s while the containers reached each other
    // (it tears its sockets down on each reload, containers/aardvark-dns#389). Docker's DNS
    // does not need this; names still resolve, only without a DNS server.
    let hosts = [
        ("redis", STANDIN_REDIS, 10),
        ("reflector1", IMAGE, 11),
        ("reflector2", IMAGE, 12),
        ("reflector3", IMAGE, 13),
        ("haproxy", STANDIN_HAPROXY, 14),
    ];
    let extra_hosts = hosts
        .iter()
        .map(|(name, _, host)| format!("\"{name}:{COMPOSE_SUBNET}.{host}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut text = format!(
        "networks:\n  default:\n    ipam:\n      config:\n        - subnet: {COMPOSE_SUBNET}.0/24\n\
         services:\n"
    );
    for (name, image, host) in hosts {
        text += &format!(
            "  {name}:\n    image: {image}\n    networks:\n      default:\n        \
             ipv4_address: {COMPOSE_SUBNET}.{host}\n    extra_hosts: [{extra_hosts}]\n"
        );
    }
    let overrides = dir.path().join("compose.override.yml");
    std::fs::write(&overrides, text).expect("override");
    let compose = Compose { conf, overrides };
    let _ = compose.run(&["down", "-t", "0"]);
    let up = compose.run(&["up", "-d", "--no-build"]);
    assert!(
        up.status.success(),
        "podman-compose up: {}{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );

    // Ready: every instance answers through its HAProxy admin port, Redis reachable.
    let deadline = Instant::now() + Duration::from_secs(30);
    for port in [8081, 8082, 8083] {
        loop {
            if http_status(port, "/readyz") == Ok(200) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "admin port {port} not ready: {:?}\n{}",
                http_status(port, "/readyz"),
                compose.logs("haproxy")
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    let clip = shared_clip();
    let url = "rtmp://127.0.0.1:1935/live/compose";
    // The clip twice over (16 s): still publishing after the six verifications below.
    let mut publisher = publish_looped(clip, 2, url, dir.path());
    let source = clip.looped(2);
    std::thread::sleep(Duration::from_millis(1500));
    // Six players: HAProxy's round robin gives every instance two.
    let recordings: Vec<_> = (0..6)
        .map(|_| play(Player::Ffmpeg, url, dir.path(), Duration::from_secs(3)))
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let mut origins = Vec::new();
    for port in [8081, 8082, 8083] {
        // The list filtered by exact app and name holds the full stream entry.
        let stream = admin_json(port, "/api/v1/streams?app=live&name=compose")
            .unwrap_or_else(|e| panic!("admin {port}: {e}"))["streams"][0]
            .clone();
        let players = stream["subscribers"].as_array().map_or(0, Vec::len);
        assert!(players > 0, "instance on {port} serves no player: {stream}");
        origins.push(stream["origin"].as_str().unwrap_or_default().to_string());
    }
    eprintln!("stream origins as the instances report them: {origins:?}");
    let one_origin = origins.iter().filter(|o| *o == "local").count() == 1;
    let pulls_from_it = origins
        .iter()
        .filter(|o| *o != "local")
        .all(|o| ["reflector1:1935", "reflector2:1935", "reflector3:1935"].contains(&o.as_str()));
    if !(one_origin && pulls_from_it) {
        // Let a stuck pull reach its timeout, so that its log line says which step hung.
        std::thread::sleep(Duration::from_secs(4));
    }
    assert!(
        one_origin && pulls_from_it,
        "want one origin (\"local\") and two instances pulling from its advertised address, \
         got {origins:?}\n{}",
        compose.reflector_logs()
    );
    for rec in recordings {
        let path = rec.finish();
        let verdict = common::verify_recording(&path, &source);
        assert!(
            verdict.is_ok() && verdict.frame_count >= 50,
            "recording is not frame-exact with at least 50 frames:\n{verdict}\n{}",
            compose.reflector_logs()
        );
    }
    assert!(
        publisher.try_wait().is_none(),
        "publisher ended early: {}",
        publisher.log_tail(20)
    );
}
