//! `hotline`: the gateway binary. Parses the command line, loads the
//! configuration and hands it to the driver; everything else lives in the
//! library.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use hotline::call::record::rfc3339_ms;
use hotline::config::{self, Config};
use hotline::driver::outbox::{self, State, Store, StoredItem};
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
    /// Call records and events in the local outbox (read from
    /// `node.data_dir`; works while the gateway runs or is stopped).
    #[command(subcommand)]
    Records(RecordsCommand),
    /// Print the version.
    Version,
}

#[derive(Debug, Subcommand)]
enum RecordsCommand {
    /// Newest items first: id, state, kind, attempts, created, key.
    List {
        #[command(flatten)]
        store: StoreArgs,
        /// Which items.
        #[arg(long, value_enum, default_value_t = StateArg::Pending)]
        state: StateArg,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One item with its body and delivery history.
    Show {
        #[command(flatten)]
        store: StoreArgs,
        /// The item id (first column of `records list`).
        id: u64,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Dead-lettered items (no longer tried; replayable).
    DeadLetters {
        #[command(flatten)]
        store: StoreArgs,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
struct StoreArgs {
    /// Configuration file whose `node.data_dir` holds the outbox; without
    /// it, the embedded demo's (`data`, relative to the working directory).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StateArg {
    Pending,
    Delivered,
    Dead,
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
        Command::Records(cmd) => records(cmd),
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
                "{}: ok ({} trunks, {} targets, {} routes, {} flows; RTP ports {}-{})",
                file.display(),
                c.trunks.len(),
                c.targets.len(),
                c.routes.len(),
                c.flows.len(),
                c.media.port_min,
                c.media.port_max
            );
            for t in &c.tenants {
                let hours = match &t.hours {
                    hotline::ivr::Schedule::Always => "7x24".to_owned(),
                    hotline::ivr::Schedule::Weekly(w) => format!("{} weekly windows", w.len()),
                };
                let offset = t.utc_offset_minutes.unsigned_abs();
                let sign = if t.utc_offset_minutes < 0 { '-' } else { '+' };
                println!(
                    "  tenant {}: UTC{sign}{:02}:{:02}, {hours}",
                    t.name,
                    offset / 60,
                    offset % 60
                );
            }
            for q in &c.queues {
                match &q.target {
                    Some(t) => println!("  queue {}: tenant {}, target {t}", q.name, q.tenant),
                    None => {
                        let eligible = c
                            .agents
                            .iter()
                            .filter(|a| {
                                a.tenant == q.tenant
                                    && (q.groups.is_empty()
                                        || a.groups.iter().any(|g| q.groups.contains(g)))
                                    && q.skills.iter().all(|(s, min)| {
                                        a.skills.iter().any(|(h, l)| h == s && l >= min)
                                    })
                            })
                            .count();
                        println!(
                            "  queue {}: tenant {}, agents {eligible} eligible, ring {} s, wrap-up {} s, {} escalation steps",
                            q.name,
                            q.tenant,
                            q.ring_timeout.as_secs(),
                            q.wrap_up.as_secs(),
                            q.escalation.len()
                        );
                    }
                }
            }
            if !c.agents.is_empty() {
                println!("  agents: {}", c.agents.len());
            }
            for l in &c.lines {
                let into = l
                    .into
                    .as_ref()
                    .map_or_else(String::new, |n| format!(" into {n}"));
                println!(
                    "  line {}: {}{into}, tenant {}, flow {}",
                    l.number, l.mode, l.tenant, l.flow.name
                );
            }
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

/// Open the outbox named by `--config` (or the demo's).
fn open_store(args: &StoreArgs) -> Result<Store, ExitCode> {
    let config = match &args.config {
        Some(path) => config::load(path).map_err(|e| {
            eprintln!("{e}");
            ExitCode::from(EXIT_CONFIG)
        })?,
        None => config::demo(),
    };
    let path = config.node.data_dir.join(outbox::FILE_NAME);
    if !path.exists() {
        eprintln!(
            "hotline: no outbox at {} (config key `node.data_dir`); has the gateway run with \
             this configuration, from this directory?",
            path.display()
        );
        return Err(ExitCode::FAILURE);
    }
    Store::open(&path).map_err(|e| {
        eprintln!("hotline: {e}");
        ExitCode::FAILURE
    })
}

fn records(cmd: RecordsCommand) -> ExitCode {
    let result = match cmd {
        RecordsCommand::List {
            store,
            state,
            limit,
            json,
        } => {
            let state = match state {
                StateArg::Pending => State::Pending,
                StateArg::Delivered => State::Delivered,
                StateArg::Dead => State::Dead,
            };
            list(&store, state, limit, json)
        }
        RecordsCommand::DeadLetters { store, limit, json } => {
            list(&store, State::Dead, limit, json)
        }
        RecordsCommand::Show { store, id, json } => show(&store, id, json),
    };
    result.unwrap_or_else(|code| code)
}

fn list(args: &StoreArgs, state: State, limit: u32, json: bool) -> Result<ExitCode, ExitCode> {
    let store = open_store(args)?;
    let items = store.list(state, limit).map_err(|e| {
        eprintln!("hotline: {e}");
        ExitCode::FAILURE
    })?;
    if json {
        for i in &items {
            println!("{}", item_json(i, false));
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>8}  {:<9}  {:<14}  {:>8}  {:<24}  key",
        "id", "state", "kind", "attempts", "created (UTC)"
    );
    for i in &items {
        println!(
            "{:>8}  {:<9}  {:<14}  {:>8}  {:<24}  {}",
            i.id,
            i.state.as_str(),
            i.kind,
            i.attempts,
            rfc3339_ms(u64::try_from(i.created_ms).unwrap_or(0)),
            i.key
        );
    }
    if items.is_empty() {
        println!("(no {} items)", state.as_str());
    }
    Ok(ExitCode::SUCCESS)
}

fn show(args: &StoreArgs, id: u64, json: bool) -> Result<ExitCode, ExitCode> {
    let store = open_store(args)?;
    let item = store.get(id).map_err(|e| {
        eprintln!("hotline: {e}");
        ExitCode::FAILURE
    })?;
    let Some(i) = item else {
        eprintln!("hotline: no item {id} in {}", store.path().display());
        return Err(ExitCode::FAILURE);
    };
    if json {
        println!("{}", item_json(&i, true));
        return Ok(ExitCode::SUCCESS);
    }
    let ms = |v: Option<i64>| {
        v.map(|m| rfc3339_ms(u64::try_from(m).unwrap_or(0)))
            .unwrap_or_else(|| "-".to_owned())
    };
    println!("id:            {}", i.id);
    println!("kind:          {}", i.kind);
    println!("state:         {}", i.state.as_str());
    println!("stream / seq:  {} / {}", i.stream, i.seq);
    println!("key:           {}", i.key);
    println!("created:       {}", ms(Some(i.created_ms)));
    println!("attempts:      {}", i.attempts);
    println!("first attempt: {}", ms(i.first_attempt_ms));
    println!("next attempt:  {}", ms(i.next_attempt_ms));
    println!("done:          {}", ms(i.done_ms));
    if let Some(s) = i.last_status {
        println!("last status:   {s}");
    }
    if let Some(e) = &i.last_error {
        println!("last error:    {e}");
    }
    let body = serde_json::from_str::<serde_json::Value>(&i.body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| i.body.clone());
    println!("body:\n{body}");
    Ok(ExitCode::SUCCESS)
}

fn item_json(i: &StoredItem, with_body: bool) -> serde_json::Value {
    let mut v = serde_json::json!({
        "id": i.id,
        "state": i.state.as_str(),
        "kind": i.kind,
        "stream": i.stream,
        "seq": i.seq,
        "key": i.key,
        "created_ms": i.created_ms,
        "attempts": i.attempts,
        "first_attempt_ms": i.first_attempt_ms,
        "next_attempt_ms": i.next_attempt_ms,
        "last_status": i.last_status,
        "last_error": i.last_error,
        "done_ms": i.done_ms,
    });
    if with_body {
        v["body"] =
            serde_json::from_str(&i.body).unwrap_or(serde_json::Value::String(i.body.clone()));
    }
    v
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
