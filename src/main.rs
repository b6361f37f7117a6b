//! `hotline`: the gateway binary. Parses the command line, loads the
//! configuration and hands it to the driver; everything else lives in the
//! library.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use hotline::config::{self, Config};
use hotline::driver::{self, log::LogFormat};

/// Exit status for an unusable configuration.
const EXIT_CONFIG: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "hotline",
    version,
    about = "Hotline Gateway: SIP B2BUA for government-service hotlines"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (the embedded demo configuration unless --config).
    Serve(ServeArgs),
    /// Validate a configuration file: exit 0 if it is usable, 2 if not.
    CheckConfig {
        /// The TOML file.
        file: PathBuf,
    },
    /// Print the version.
    Version,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Configuration file (TOML); without it the embedded demo runs.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override `sip.listen` (UDP and TCP), e.g. 0.0.0.0:5060.
    #[arg(long, value_name = "ADDR")]
    sip_listen: Option<SocketAddr>,
    /// Override `api.listen`, e.g. 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    api_listen: Option<SocketAddr>,
    /// Log line format; the filter comes from RUST_LOG (default info).
    #[arg(long, value_enum, default_value_t = LogFormatArg::Text)]
    log_format: LogFormatArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(args) => serve(&args),
        Command::CheckConfig { file } => check_config(&file),
        Command::Version => {
            println!("hotline {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}

fn check_config(file: &Path) -> ExitCode {
    match config::load(file) {
        Ok(c) => {
            println!(
                "{}: ok ({} trunks, {} targets, {} routes)",
                file.display(),
                c.trunks.len(),
                c.targets.len(),
                c.routes.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn serve(args: &ServeArgs) -> ExitCode {
    driver::log::init(match args.log_format {
        LogFormatArg::Text => LogFormat::Text,
        LogFormatArg::Json => LogFormat::Json,
    });
    let mut config = match &args.config {
        Some(path) => match config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        None => config::demo(),
    };
    apply_overrides(&mut config, args);
    match driver::run_blocking(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hotline: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--sip-listen` / `--api-listen`. When the SIP listen IP changes to a
/// specific address and `sip.advertise` followed the old listen IP (its
/// default), advertise follows the new one.
fn apply_overrides(config: &mut Config, args: &ServeArgs) {
    if let Some(listen) = args.sip_listen {
        let followed = config.sip.advertise == config.sip.listen.ip();
        if followed && !listen.ip().is_unspecified() {
            config.sip.advertise = listen.ip();
        } else if followed && listen.ip() != config.sip.listen.ip() {
            tracing::warn!(
                advertise = %config.sip.advertise,
                "--sip-listen binds every interface: set sip.advertise in a config file \
                 to the address peers reach us at"
            );
        }
        config.sip.listen = listen;
    }
    if let Some(listen) = args.api_listen {
        config.api.listen = listen;
    }
}
