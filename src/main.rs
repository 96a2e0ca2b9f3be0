//! The reflector binary: configuration, logging, then the server.

use std::path::PathBuf;

use clap::Parser;
use reflector::config::Settings;

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
    /// Print the effective configuration and exit.
    #[arg(long)]
    print_config: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut settings = Settings::load(cli.config.as_deref())?;
    if let Some(v) = cli.listen {
        settings.server.listen = v;
    }
    if let Some(v) = cli.admin_listen {
        settings.server.admin_listen = v;
    }
    if let Some(v) = cli.workers {
        settings.server.workers = v;
    }
    if let Some(v) = cli.log_level {
        settings.server.log_level = v;
    }
    settings.validate()?;
    if cli.print_config {
        print!("{}", toml_string(&settings)?);
        return Ok(());
    }
    init_logging(&settings);
    actix::System::new().block_on(reflector::server::run(settings))
}

fn toml_string(settings: &Settings) -> anyhow::Result<String> {
    Ok(toml::to_string_pretty(settings)?)
}

fn init_logging(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&settings.server.log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: log files and collectors get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if settings.server.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
