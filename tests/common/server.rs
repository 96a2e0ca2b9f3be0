//! The RTMP server under test: the reflector binary, or nginx-rtmp as the
//! known-good reference the harness is validated against.

use super::process::Proc;
use super::{free_port, tail};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Set this environment variable to keep every server's temp dir (config, log,
/// recordings) after the test; it is always kept when the test panics.
pub const KEEP_ENV: &str = "HARNESS_KEEP";

/// How long a server gets to start accepting on its RTMP port.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the nginx-rtmp dynamic module lives on Debian (libnginx-mod-rtmp).
pub const NGINX_RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// Which server implementation a [`Server`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// This crate's `reflector` binary.
    Reflector,
    /// nginx with libnginx-mod-rtmp (`live on`), the reference server.
    NginxRtmp,
}

/// A running RTMP server listening on 127.0.0.1 with its own temp dir (config,
/// log, pid file, recordings of tests that use [`Server::dir`]). Killed on drop
/// (SIGTERM, then SIGKILL after a grace period); the temp dir is removed unless
/// the test panicked or [`KEEP_ENV`] is set.
pub struct Server {
    kind: ServerKind,
    // Field order matters: the process must die before its temp dir is removed.
    proc: Proc,
    port: u16,
    admin_port: Option<u16>,
    /// The public HTTP-FLV port, when started with [`Server::reflector_http`].
    http_port: Option<u16>,
    log: PathBuf,
    dir: TempDir,
}

impl Server {
    /// Spawns the reflector binary built by cargo for this test binary:
    /// `reflector --listen 127.0.0.1:PORT --admin-listen 127.0.0.1:APORT ARGS...`
    /// with `RUST_LOG=info`, output to `reflector.log` in the temp dir.
    ///
    /// Panics if this test binary was not built by cargo alongside the
    /// `reflector` bin target (cargo only sets `CARGO_BIN_EXE_reflector` for
    /// integration tests of this package).
    pub fn reflector(args: &[&str]) -> Server {
        Self::spawn_reflector(args, false, false)
    }

    /// [`Server::reflector`] with the public HTTP-FLV listener on a free port too
    /// (`--http-listen 127.0.0.1:HPORT`; see [`Server::http_url`]).
    pub fn reflector_http(args: &[&str]) -> Server {
        Self::spawn_reflector(args, true, false)
    }

    /// [`Server::reflector_http`] with `--admin-listen 127.0.0.1:0`: the admin port is the one
    /// the server reports having bound.
    pub fn reflector_http_any_admin_port(args: &[&str]) -> Server {
        Self::spawn_reflector(args, true, true)
    }

    fn spawn_reflector(args: &[&str], http: bool, any_admin_port: bool) -> Server {
        let Some(exe) = option_env!("CARGO_BIN_EXE_reflector") else {
            panic!("CARGO_BIN_EXE_reflector is not set: Server::reflector only works in this package's integration tests");
        };
        let dir = tempfile::Builder::new()
            .prefix("reflector-test-")
            .tempdir()
            .expect("create temp dir");
        let log = dir.path().join("reflector.log");
        // A free port can be taken by a parallel test between choosing and binding it:
        // try again with new ports when the server could not bind.
        for attempt in 1.. {
            let port = free_port();
            let admin_port = if any_admin_port { 0 } else { free_port() };
            let mut argv = vec![
                "--listen".to_string(),
                format!("127.0.0.1:{port}"),
                "--admin-listen".to_string(),
                format!("127.0.0.1:{admin_port}"),
            ];
            let http_port = http.then(free_port);
            if let Some(p) = http_port {
                argv.push("--http-listen".into());
                argv.push(format!("127.0.0.1:{p}"));
            }
            argv.extend(args.iter().map(|a| a.to_string()));
            let mut proc = Proc::spawn("reflector", exe, &argv, &[("RUST_LOG", "info")], &log);
            // Ready when it says so: a connect alone can reach another test's server that
            // took the port, while this one is still starting and about to fail to bind.
            let deadline = Instant::now() + STARTUP_TIMEOUT;
            while Instant::now() < deadline {
                if std::fs::read_to_string(&log).is_ok_and(|l| l.contains("reflector listening")) {
                    break;
                }
                if proc.try_wait().is_some() {
                    break;
                }
                sleep(Duration::from_millis(20));
            }
            let bind_failed = proc.try_wait().is_some()
                && std::fs::read_to_string(&log)
                    .is_ok_and(|l| l.contains("Address already in use"));
            if bind_failed && attempt < 5 {
                continue;
            }
            let mut server = Server {
                kind: ServerKind::Reflector,
                proc,
                port,
                admin_port: Some(admin_port),
                http_port,
                log,
                dir,
            };
            if any_admin_port {
                server.admin_port = Some(server.bound_admin_port());
            }
            server.wait_ready();
            return server;
        }
        unreachable!("the loop returns")
    }

    /// Writes an nginx.conf (one worker, `daemon off`, rtmp `live on` application
    /// `live`, chunk_size 4096, error log and pid in the temp dir) and runs
    /// `nginx -c CONF -g 'daemon off;'`.
    pub fn nginx_rtmp() -> Server {
        Server::nginx_rtmp_with("")
    }

    /// [`Server::nginx_rtmp`] with `directives` added to its `live` application, e.g.
    /// `push rtmp://127.0.0.1:PORT/live;` or `pull rtmp://127.0.0.1:PORT/live;`.
    pub fn nginx_rtmp_with(directives: &str) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("nginx-rtmp-test-")
            .tempdir()
            .expect("create temp dir");
        let port = free_port();
        let d = dir.path().display();
        // `daemon off` comes from -g (setting it twice is an nginx error).
        // `error_log` at info level records publish/play lines, handy on failure.
        let conf = format!(
            "load_module {NGINX_RTMP_MODULE};\n\
             worker_processes 1;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             rtmp {{\n    server {{\n        listen 127.0.0.1:{port};\n        chunk_size 4096;\n        \
             application live {{\n            live on;\n            {directives}\n        }}\n    }}\n}}\n"
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let log = dir.path().join("error.log");
        let proc = spawn_nginx(dir.path());
        let mut server = Server {
            kind: ServerKind::NginxRtmp,
            proc,
            port,
            admin_port: None,
            http_port: None,
            log,
            dir,
        };
        server.wait_ready();
        server
    }

    /// nginx-rtmp only: stop it (SIGTERM: nginx's fast shutdown, every connection closed at
    /// once), wait `outage`, start it again with the same config and port.
    pub fn restart_nginx(&mut self, outage: Duration) {
        assert_eq!(
            self.kind,
            ServerKind::NginxRtmp,
            "restart_nginx on {:?}",
            self.kind
        );
        self.proc.stop_with("TERM", Duration::from_secs(5));
        sleep(outage);
        self.proc = spawn_nginx(self.dir.path());
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(st) = self.proc.try_wait() {
                // nginx writes to its error log and (early failures) stdout/stderr.
                let output = if self.proc.log_path() == self.log {
                    String::new()
                } else {
                    format!("\n--- output ---\n{}", self.proc.log_tail(40))
                };
                panic!(
                    "{:?} server exited ({st}) before listening on {addr}\n--- log tail ---\n{}{output}",
                    self.kind,
                    tail(&self.log, 40),
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "{:?} server did not accept on {addr} within {STARTUP_TIMEOUT:?}\n--- log tail ---\n{}",
                    self.kind,
                    tail(&self.log, 40)
                );
            }
            sleep(Duration::from_millis(50));
        }
    }

    /// Which implementation this is.
    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// The RTMP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `rtmp://127.0.0.1:PORT/APP/NAME`.
    pub fn rtmp_url(&self, app: &str, name: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{app}/{name}", self.port)
    }

    /// `http://127.0.0.1:APORT` of the admin listener. Panics for nginx-rtmp,
    /// which the harness runs without one.
    pub fn admin_url(&self) -> String {
        let port = self
            .admin_port
            .unwrap_or_else(|| panic!("{:?} server has no admin listener", self.kind));
        format!("http://127.0.0.1:{port}")
    }

    /// `http://127.0.0.1:HPORT/APP/NAME.flv` on the public HTTP listener. Panics unless
    /// started with [`Server::reflector_http`].
    pub fn http_url(&self, app: &str, name: &str) -> String {
        let port = self.http_port.expect("started without --http-listen");
        format!("http://127.0.0.1:{port}/{app}/{name}.flv")
    }

    /// The public HTTP port, when started with [`Server::reflector_http`].
    pub fn http_port(&self) -> Option<u16> {
        self.http_port
    }

    /// The server process id (the nginx master for nginx-rtmp).
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The admin port the reflector says it bound (`admin=ADDR` of "reflector listening").
    fn bound_admin_port(&self) -> u16 {
        let log = self.plain_log();
        log.lines()
            .find(|l| l.contains("reflector listening"))
            .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("admin=")))
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no bound admin port in the log:\n{log}"))
    }

    /// The server log so far (reflector stderr, or the nginx error log).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// The log without terminal colour codes (ANSI CSI sequences), so
    /// tests can match `key=value` fields whatever the terminal detection decided.
    pub fn plain_log(&self) -> String {
        let log = self.log();
        let mut out = String::with_capacity(log.len());
        let mut chars = log.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                // CSI: ESC [ parameters, then a final byte in @..~.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) && c != '[' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    /// Path of the server log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `n` lines of the server log.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log, n)
    }

    /// Waits (at most `limit`) until the log holds `line`: for what the server logs once it
    /// has acted (a reload applied, a pull or push connected). Panics with the log's tail if
    /// it never does.
    pub fn wait_for_log(&self, line: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.plain_log().contains(line) {
            assert!(
                Instant::now() < deadline,
                "no {line:?} in the log within {limit:?}:\n{}",
                self.log_tail(30)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's private temp dir (removed on drop); tests may put
    /// recordings here so a failure's artifacts sit next to the server log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        self.proc.try_wait().is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Fields drop after this: the process is stopped before the dir goes.
        if std::thread::panicking() || std::env::var_os(KEEP_ENV).is_some() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "keeping {:?} server dir {} (log, recordings)",
                self.kind,
                self.dir.path().display()
            );
        }
    }
}

/// A reflector (2 arbiters) with `toml` as its config file; the file lives as long as the
/// returned handle.
pub fn reflector_with_config(toml: &str) -> (Server, tempfile::NamedTempFile) {
    let file = config_file(toml);
    let path = file.path().display().to_string();
    (
        Server::reflector(&["--workers", "2", "--config", &path]),
        file,
    )
}

/// [`reflector_with_config`] with the public HTTP-FLV listener on a free port too.
pub fn reflector_http_with_config(toml: &str) -> (Server, tempfile::NamedTempFile) {
    let file = config_file(toml);
    let path = file.path().display().to_string();
    (
        Server::reflector_http(&["--workers", "2", "--config", &path]),
        file,
    )
}

/// A temporary `.toml` file holding `toml`; it lives as long as the handle.
pub fn config_file(toml: &str) -> tempfile::NamedTempFile {
    use std::io::Write;
    let mut file = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("temp config");
    file.write_all(toml.as_bytes()).expect("write config");
    file
}

/// VmRSS of process `pid`, in KiB (0 when it cannot be read).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// nginx in the foreground with the config in `dir` (see [`Server::nginx_rtmp_with`]).
fn spawn_nginx(dir: &Path) -> Proc {
    let d = dir.display();
    // -p: prefix for relative paths; -e: the startup error log (before the config is read
    // nginx would otherwise try /var/log/nginx/error.log).
    let args: Vec<String> = [
        "-p",
        &format!("{d}/"),
        "-e",
        &format!("{d}/error.log"),
        "-c",
        &format!("{d}/nginx.conf"),
        "-g",
        "daemon off;",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    Proc::spawn("nginx", "nginx", &args, &[], &dir.join("nginx.out"))
}
