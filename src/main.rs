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
    /// Admin HTTP listen address (server.admin_listen).
    #[arg(long)]
    admin_listen: Option<String>,
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
}

/// Defaults, file, environment, then the flags; validated.
fn load(cli: &Cli) -> Result<Settings, ConfigError> {
    let mut settings = Settings::load(cli.config.as_deref())?;
    if let Some(v) = &cli.listen {
        settings.server.listen = v.clone();
    }
    if let Some(v) = &cli.admin_listen {
        settings.server.admin_listen = v.clone();
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
    settings.validate()?;
    Ok(settings)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = load(&cli)?;
    if cli.print_config {
        print!("{}", toml::to_string_pretty(&settings)?);
        return Ok(());
    }
    let set_log_level = init_logging(&settings);
    let hooks = Hooks {
        reload_settings: Box::new(move || load(&cli)),
        set_log_level,
    };
    actix::System::new().block_on(reflector::server::run(settings, hooks))
}

/// Install the log subscriber; returns how to change its level later (SIGHUP). `RUST_LOG`,
/// when set, wins over `server.log_level` at start-up.
fn init_logging(settings: &Settings) -> SetLogLevel {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{fmt, reload, EnvFilter};
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| EnvFilter::try_new(&settings.server.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
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
    Box::new(move |level: &str| {
        let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())
    })
}
