//! `hotline`: the gateway's command line.

use clap::{Parser, Subcommand};
use hotline::config::{self, Config};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "hotline",
    version,
    about = "Hotline Gateway: SIP/CTI gateway for 12345 hotlines"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (without --config: the embedded demo, loopback only).
    Serve {
        /// Configuration file (TOML); see docs/config.md.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// SIP listen address, UDP and TCP (overrides `sip.listen`).
        #[arg(long, value_name = "ADDR")]
        sip_listen: Option<SocketAddr>,
        /// HTTP API listen address (overrides `api.listen`).
        #[arg(long, value_name = "ADDR")]
        api_listen: Option<SocketAddr>,
    },
    /// Validate a configuration file: exit 0 if valid, 2 with the file,
    /// line, key and fix if not.
    CheckConfig {
        /// The file.
        file: PathBuf,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match config::load(&file) {
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
                ExitCode::from(2)
            }
        },
        Command::Serve {
            config: path,
            sip_listen,
            api_listen,
        } => {
            init_logging();
            let mut cfg: Config = match path {
                Some(p) => match config::load(&p) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::from(2);
                    }
                },
                None => config::demo(),
            };
            if let Some(a) = sip_listen {
                cfg.sip.listen = a;
                if !a.ip().is_unspecified() {
                    cfg.sip.advertise = a.ip();
                }
            }
            if let Some(a) = api_listen {
                cfg.api.listen = a;
            }
            match hotline::driver::run_blocking(cfg) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("hotline: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
