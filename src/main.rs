//! The reflector binary: configuration, logging, then the server.

use std::path::PathBuf;

use clap::Parser;
use reflector::config::{ConfigError, Settings};
use reflector::server::{Hooks, SetLogLevel};

/// A live RTMP reflector: publishers push to rtmp://host:1935/app/stream, players pull it.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// RTMP listen address (server.listen).
    #[arg(long)]
    listen: Option<String>,
    /// RTMPS listen address, e.g. 0.0.0.0:1936; empty = off (rtmps.listen).
    #[arg(long)]
    rtmps_listen: Option<String>,
    /// PEM certificate chain of the RTMPS listener, e.g. fullchain.pem (rtmps.cert_file).
    #[arg(long, value_name = "FILE")]
    rtmps_cert_file: Option<String>,
    /// PEM private key of that certificate, e.g. privkey.pem (rtmps.key_file).
    #[arg(long, value_name = "FILE")]
    rtmps_key_file: Option<String>,
    /// Public HTTP-FLV / WebSocket-FLV listen address, e.g. 0.0.0.0:8000 (server.http_listen).
    #[arg(long)]
    http_listen: Option<String>,
    /// Admin HTTP listen address (server.admin_listen).
    #[arg(long)]
    admin_listen: Option<String>,
    /// Host name the admin port answers while it has no token, besides localhost and
    /// loopback addresses; repeat for several; replaces admin.allowed_hosts.
    #[arg(long = "admin-allowed-host", value_name = "NAME")]
    admin_allowed_hosts: Vec<String>,
    /// Number of arbiters; 0 = one per core (server.workers).
    #[arg(long)]
    workers: Option<usize>,
    /// Configuration file (TOML) layered over the embedded defaults.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Log level or tracing filter (server.log_level).
    #[arg(long)]
    log_level: Option<String>,
    /// Redis URL for discovery across instances, e.g. redis://127.0.0.1:6379
    /// (cluster.redis_url).
    #[arg(long)]
    redis_url: Option<String>,
    /// host:port other instances reach this one's RTMP at (cluster.advertise).
    #[arg(long)]
    advertise: Option<String>,
    /// Print the effective configuration and exit.
    #[arg(long)]
    print_config: bool,
    /// Container health probe: GET URL (default: /healthz on the configured admin address,
    /// on loopback) and exit 0 on a 2xx answer, 1 otherwise.
    #[arg(long, value_name = "URL")]
    healthcheck: Option<Option<String>>,
}

/// Defaults, file, environment, then the flags; validated. An error names the flag, variable
/// or file that set the offending value.
fn load(cli: &Cli) -> Result<Settings, ConfigError> {
    let file = cli.config.as_deref();
    let mut settings = Settings::load(file)?;
    if let Some(v) = &cli.listen {
        settings.server.listen = v.clone();
    }
    if let Some(v) = &cli.admin_listen {
        settings.server.admin_listen = v.clone();
    }
    if let Some(v) = &cli.http_listen {
        settings.server.http_listen = v.clone();
    }
    if let Some(v) = &cli.rtmps_listen {
        settings.rtmps.listen = v.clone();
    }
    if let Some(v) = &cli.rtmps_cert_file {
        settings.rtmps.cert_file = v.clone();
    }
    if let Some(v) = &cli.rtmps_key_file {
        settings.rtmps.key_file = v.clone();
    }
    if !cli.admin_allowed_hosts.is_empty() {
        settings.admin.allowed_hosts = cli.admin_allowed_hosts.clone();
    }
    if let Some(v) = cli.workers {
        settings.server.workers = v;
    }
    if let Some(v) = &cli.log_level {
        settings.server.log_level = v.clone();
    }
    if let Some(v) = &cli.redis_url {
        settings.cluster.redis_url = v.clone();
    }
    if let Some(v) = &cli.advertise {
        settings.cluster.advertise = v.clone();
    }
    settings.validate().map_err(|e| {
        let key = e.key().unwrap_or_default().to_owned();
        let flag = [
            ("server.listen", cli.listen.is_some(), "--listen"),
            (
                "server.admin_listen",
                cli.admin_listen.is_some(),
                "--admin-listen",
            ),
            ("server.workers", cli.workers.is_some(), "--workers"),
            (
                "server.http_listen",
                cli.http_listen.is_some(),
                "--http-listen",
            ),
            ("rtmps.listen", cli.rtmps_listen.is_some(), "--rtmps-listen"),
            (
                "rtmps.cert_file",
                cli.rtmps_cert_file.is_some(),
                "--rtmps-cert-file",
            ),
            (
                "rtmps.key_file",
                cli.rtmps_key_file.is_some(),
                "--rtmps-key-file",
            ),
            ("server.log_level", cli.log_level.is_some(), "--log-level"),
            ("cluster.redis_url", cli.redis_url.is_some(), "--redis-url"),
            ("cluster.advertise", cli.advertise.is_some(), "--advertise"),
        ]
        .into_iter()
        .find(|(k, set, _)| *set && *k == key)
        .map(|(_, _, flag)| format!("from flag {flag}"));
        let origin = flag.unwrap_or_else(|| reflector::config::origin_of(&key, file));
        e.from_origin(origin)
    })?;
    Ok(settings)
}

/// Errors are printed once, as one line with their causes, and exit with status 2 (no
/// backtrace: these are the operator's mistakes, not the program's).
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(url) = &cli.healthcheck {
        let url = match url {
            Some(url) => url.clone(),
            None => healthz_url(&load(&cli)?.server.admin_listen)?,
        };
        match http_get_status(&url) {
            Ok(status) if (200..300).contains(&status) => {
                println!("{url}: {status}");
                return Ok(());
            }
            Ok(status) => println!("{url}: {status}"),
            Err(e) => println!("{url}: {e}"),
        }
        std::process::exit(1);
    }
    let settings = load(&cli)?;
    if cli.print_config {
        print!("{}", toml::to_string_pretty(&settings)?);
        return Ok(());
    }
    let set_log_level = init_logging(&settings)?;
    let ignored = reflector::config::ignored_env_vars();
    if !ignored.is_empty() {
        tracing::warn!(
            variables = %ignored.join(" "),
            "ignoring environment variables that start with REFLECTOR_ but are not settings (REFLECTOR_SECTION__KEY; Kubernetes adds REFLECTOR_PORT and the like for a Service named reflector)"
        );
    }
    let hooks = Hooks {
        reload_settings: Box::new(move || load(&cli)),
        set_log_level,
    };
    actix::System::new().block_on(reflector::server::run(settings, hooks))
}

/// `http://ADDR/healthz` for the admin listen address, with an unspecified address (0.0.0.0,
/// [::]) replaced by loopback: the probe runs inside the server's own network namespace.
fn healthz_url(admin_listen: &str) -> anyhow::Result<String> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};
    let mut addr = admin_listen
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow::anyhow!("server.admin_listen {admin_listen:?} has no address"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    Ok(format!("http://{addr}/healthz"))
}

/// The status code of `GET url` (plain `http://host:port/path` only), within a few seconds.
/// Deliberately tiny: the runtime image has no curl, and this is the only client it needs.
fn http_get_status(url: &str) -> anyhow::Result<u16> {
    use std::io::{Read, Write};
    use std::net::{TcpStream, ToSocketAddrs};
    use std::time::Duration;
    const TIMEOUT: Duration = Duration::from_secs(2);
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let addr = if authority.contains(':') && !authority.ends_with(']') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{authority} has no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    // One write: a server may answer (and close) as soon as it has the request line.
    let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    // The status line is all we need: "HTTP/1.x NNN reason"; read at most 1 KiB for it.
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 256];
    while head.len() < 1024 && !head.contains(&b'\n') {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    match (
        words.next(),
        words.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => Ok(code),
        _ => anyhow::bail!("not an HTTP response: {:?}", line.trim_end()),
    }
}

/// The filter with two dependencies' per-connection noise silenced unless the filter names
/// them: actix-web's accept loop logs every failed accept of the admin port twice a second,
/// while the RTMP listener already reports the same fault (out of descriptors) rate-limited,
/// in `/readyz` and in the metrics; rustls warns on every client that sends an IP address as
/// its TLS server name (ffmpeg does for `rtmps://127.0.0.1/...`, RFC 6066 §3 forbids it),
/// which the handshake ignores and completes.
fn quiet_dependencies(filter: &str) -> String {
    let mut filter = filter.to_owned();
    if !filter.contains("actix_server") {
        filter.push_str(",actix_server::accept=off");
    }
    if !filter.contains("rustls") {
        filter.push_str(",rustls::msgs::handshake=error");
    }
    filter
}

/// Install the log subscriber; returns how to change its level later (SIGHUP). `RUST_LOG`,
/// when set, wins over `server.log_level` at start-up; it is held to the same rules.
fn init_logging(settings: &Settings) -> anyhow::Result<SetLogLevel> {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{fmt, reload, EnvFilter};
    let chosen = match std::env::var("RUST_LOG") {
        Ok(v) => {
            if let Some(reason) = reflector::config::log_filter_error(&v) {
                anyhow::bail!("environment variable RUST_LOG: {reason}");
            }
            v
        }
        Err(_) => settings.server.log_level.clone(),
    };
    let filter = EnvFilter::try_new(quiet_dependencies(&chosen))?;
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    // Colour codes only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    if settings.server.log_format == "json" {
        registry
            .with(
                fmt::layer()
                    .json()
                    .with_writer(std::io::stderr)
                    .with_ansi(ansi),
            )
            .init();
    } else {
        registry
            .with(fmt::layer().with_writer(std::io::stderr).with_ansi(ansi))
            .init();
    }
    Ok(Box::new(move |level: &str| {
        if let Some(reason) = reflector::config::log_filter_error(level) {
            return Err(reason);
        }
        let filter = EnvFilter::try_new(quiet_dependencies(level)).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())
    }))
}
