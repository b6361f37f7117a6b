//! `hotline`: the gateway binary. Parses the command line, loads the
//! configuration and hands it to the driver; everything else lives in the
//! library. `agents`, `agent` and `queues` are clients of a running
//! gateway's CTI API (docs/api.md).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use hotline::call::record::rfc3339_ms;
use hotline::config::{self, Config};
use hotline::driver::outbox::{self, State, Store, StoredItem};
use hotline::driver::{self, log::LogFormat};

/// Exit status for an unusable configuration.
const EXIT_CONFIG: u8 = 2;

/// Where the CTI API is when neither `--api` nor `--config` says.
const DEFAULT_API: &str = "127.0.0.1:8080";

/// The environment variable the CTI API's bearer token comes from when
/// `--token` is not given.
const TOKEN_ENV: &str = "HOTLINE_API_TOKEN";

/// How long an API request may take, connecting included.
const API_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// Agents and their states, from a running gateway's CTI API.
    Agents {
        #[command(flatten)]
        api: ApiArgs,
        /// The API's JSON as is instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One agent through the CTI API: log it in or out, make it ready or
    /// not ready, end its wrap-up; without an action, show it.
    Agent {
        /// The agent's id (`[[agents]] id`, its phone's username).
        id: String,
        /// What to do.
        #[arg(value_enum)]
        action: Option<AgentAction>,
        /// Why not ready (one of `acd.not_ready_reasons`, e.g. break);
        /// required with not-ready, refused with the others.
        reason: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
        /// The API's JSON as is instead of the state line.
        #[arg(long)]
        json: bool,
    },
    /// Queues with their live figures, from a running gateway's CTI API.
    Queues {
        #[command(flatten)]
        api: ApiArgs,
        /// The API's JSON as is instead of a table.
        #[arg(long)]
        json: bool,
    },
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

/// Where the CTI API is and how to authenticate (`agents`, `agent`,
/// `queues`).
#[derive(Debug, clap::Args)]
struct ApiArgs {
    /// The API's address, host:port or an http(s) URL; default `api.listen`
    /// of --config, else 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    api: Option<String>,
    /// Bearer token (one of `[api] tokens`); default the HOTLINE_API_TOKEN
    /// environment variable, which other users cannot see in `ps`.
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
    /// Configuration file of the gateway (for `api.listen`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// What `hotline agent ID ACTION` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AgentAction {
    /// Log in: logged out → ready.
    Login,
    /// Log out (while talking: after the call).
    Logout,
    /// Make ready (from not ready or wrap-up; while talking: after the
    /// call).
    Ready,
    /// Make not ready, with a REASON.
    #[value(alias = "not_ready")]
    NotReady,
    /// End the wrap-up now.
    #[value(alias = "end_wrap_up")]
    EndWrapUp,
}

impl AgentAction {
    /// The last segment of `POST /v1/agents/{id}/{action}`.
    fn route(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Logout => "logout",
            Self::Ready => "ready",
            Self::NotReady => "not_ready",
            Self::EndWrapUp => "end_wrap_up",
        }
    }
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
        Command::Agents { api, json } => {
            api_get(&api, &["v1", "agents"], json, agents_table).unwrap_or_else(|code| code)
        }
        Command::Agent {
            id,
            action,
            reason,
            api,
            json,
        } => agent(&id, action, reason, &api, json),
        Command::Queues { api, json } => {
            api_get(&api, &["v1", "queues"], json, queues_table).unwrap_or_else(|code| code)
        }
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

// ---------------------------------------------------------------------------
// The CTI API client: `agents`, `agent`, `queues` (docs/api.md).
// ---------------------------------------------------------------------------

/// A resolved API endpoint: the base URL and how to name it in messages.
struct ApiClient {
    base: reqwest::Url,
    shown: String,
    token: Option<String>,
    client: reqwest::Client,
}

/// The base URL for `--api ADDR`: `host:port` or an `http(s)://` URL (a
/// path prefix is kept, for an API behind a reverse proxy).
fn base_url(addr: &str) -> Result<reqwest::Url, String> {
    let addr = addr.trim();
    let text = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    let bad = |why: &str| format!("--api {addr:?}: {why} (expected host:port or http://host:port)");
    let url = reqwest::Url::parse(&text).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("not an http or https address"));
    }
    if url.cannot_be_a_base() || url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    Ok(url)
}

/// Where to connect for a gateway whose API binds `listen`: its own
/// loopback when it binds every interface.
fn connect_addr(listen: SocketAddr) -> SocketAddr {
    match listen {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
        }
        other => other,
    }
}

impl ApiClient {
    /// From `--api` / `--config` / the default, and `--token` / the
    /// environment. Errors are printed; the `Err` is the exit status.
    fn new(args: &ApiArgs) -> Result<Self, ExitCode> {
        let addr = match (&args.api, &args.config) {
            (Some(a), _) => a.clone(),
            (None, Some(path)) => match config::load(path) {
                Ok(c) => connect_addr(c.api.listen).to_string(),
                Err(e) => {
                    eprintln!("{e}");
                    return Err(ExitCode::from(EXIT_CONFIG));
                }
            },
            (None, None) => DEFAULT_API.to_owned(),
        };
        let base = base_url(&addr).map_err(|e| {
            eprintln!("hotline: {e}");
            ExitCode::from(EXIT_CONFIG)
        })?;
        let token = args
            .token
            .clone()
            .or_else(|| std::env::var(TOKEN_ENV).ok())
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        let client = reqwest::Client::builder()
            .user_agent(concat!("hotline-cli/", env!("CARGO_PKG_VERSION")))
            .timeout(API_TIMEOUT)
            .connect_timeout(API_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                eprintln!("hotline: cannot set up the HTTP client: {e}");
                ExitCode::FAILURE
            })?;
        let shown = addr.trim().trim_end_matches('/').to_owned();
        Ok(Self {
            base,
            shown,
            token,
            client,
        })
    }

    /// `base` with `segments` appended, each percent-encoded.
    fn url(&self, segments: &[&str]) -> reqwest::Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// One request; the body text and its JSON on a 2xx answer, else a
    /// message for the operator.
    async fn request(
        &self,
        method: reqwest::Method,
        segments: &[&str],
        body: Option<serde_json::Value>,
    ) -> Result<(String, serde_json::Value), String> {
        let mut req = self
            .client
            .request(method, self.url(segments))
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| self.transport_error(&e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| self.transport_error(&e))?;
        if !status.is_success() {
            return Err(status_error(status, &text, self.token.is_some()));
        }
        let value = serde_json::from_str(&text).map_err(|e| {
            format!(
                "the API at {} answered {status} with a body that is not JSON ({e}): {}",
                self.shown,
                excerpt(&text)
            )
        })?;
        Ok((text, value))
    }

    /// A request that got no HTTP answer.
    fn transport_error(&self, e: &reqwest::Error) -> String {
        let shown = &self.shown;
        if e.is_timeout() {
            format!(
                "no answer from the API at {shown} within {} s — is the gateway running, \
                 and is that its api.listen?",
                API_TIMEOUT.as_secs()
            )
        } else if e.is_connect() {
            format!(
                "cannot reach the API at {shown}: {} — is the gateway running?",
                root_cause(e)
            )
        } else if e.is_builder() {
            format!("cannot make a request to {shown}: {}", root_cause(e))
        } else {
            format!("the API at {shown} failed: {}", root_cause(e))
        }
    }
}

/// The innermost cause of `e`, an I/O error's kind in words where that is
/// clearer than its OS text.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    if let Some(io) = cur.downcast_ref::<std::io::Error>() {
        match io.kind() {
            std::io::ErrorKind::ConnectionRefused => return "connection refused".to_owned(),
            std::io::ErrorKind::ConnectionReset => return "connection reset".to_owned(),
            std::io::ErrorKind::TimedOut => return "connection timed out".to_owned(),
            _ => {}
        }
    }
    cur.to_string()
}

/// At most 200 characters of `text`, on one line.
fn excerpt(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 200 {
        let cut: String = one_line.chars().take(200).collect();
        format!("{cut}…")
    } else if one_line.is_empty() {
        "(empty body)".to_owned()
    } else {
        one_line
    }
}

/// The message for a non-2xx answer: its status and the server's
/// `{"error"}`, with a hint where one helps.
fn status_error(status: reqwest::StatusCode, body: &str, had_token: bool) -> String {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned));
    let reason = status.canonical_reason().unwrap_or("");
    let head = format!("the API answered {} {reason}", status.as_u16());
    let hint = match status.as_u16() {
        401 if had_token => " (check --token / HOTLINE_API_TOKEN against [api] tokens)",
        401 => " (pass --token, or set HOTLINE_API_TOKEN)",
        404 if message.is_none() => " (no such route: is the gateway older than the CTI API?)",
        _ => "",
    };
    match message {
        Some(m) => format!("{head}: {m}{hint}"),
        None if body.trim().is_empty() => format!("{head}{hint}"),
        None => format!("{head}: {}{hint}", excerpt(body)),
    }
}

/// Run one request on a current-thread runtime; errors are printed and
/// the `Err` is the exit status.
fn api_call(
    args: &ApiArgs,
    method: reqwest::Method,
    segments: &[&str],
    body: Option<serde_json::Value>,
) -> Result<(String, serde_json::Value), ExitCode> {
    let api = ApiClient::new(args)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("hotline: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        })?;
    rt.block_on(api.request(method, segments, body))
        .map_err(|e| {
            eprintln!("hotline: {e}");
            ExitCode::FAILURE
        })
}

/// Print a body as the API sent it.
fn print_raw(text: &str) {
    if text.ends_with('\n') {
        print!("{text}");
    } else {
        println!("{text}");
    }
}

/// `hotline agents` / `hotline queues`: GET and print as JSON or a table.
fn api_get(
    args: &ApiArgs,
    segments: &[&str],
    json: bool,
    render: fn(&serde_json::Value) -> Result<String, String>,
) -> Result<ExitCode, ExitCode> {
    let (text, value) = api_call(args, reqwest::Method::GET, segments, None)?;
    if json {
        print_raw(&text);
        return Ok(ExitCode::SUCCESS);
    }
    match render(&value) {
        Ok(table) => {
            print!("{table}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("hotline: unexpected answer from the API: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// `hotline agent ID [ACTION] [REASON]`.
fn agent(
    id: &str,
    action: Option<AgentAction>,
    reason: Option<String>,
    args: &ApiArgs,
    json: bool,
) -> ExitCode {
    use clap::error::ErrorKind;
    let usage = |kind, msg: &str| {
        let mut cli = Cli::command();
        cli.build();
        match cli.find_subcommand_mut("agent") {
            Some(sub) => sub.error(kind, msg).exit(),
            None => cli.error(kind, msg).exit(),
        }
    };
    let body = match (action, reason) {
        (Some(AgentAction::NotReady), Some(r)) => Some(serde_json::json!({ "reason": r })),
        (Some(AgentAction::NotReady), None) => usage(
            ErrorKind::MissingRequiredArgument,
            "not-ready needs a REASON (one of acd.not_ready_reasons, e.g. break)",
        ),
        (_, Some(r)) => usage(
            ErrorKind::ArgumentConflict,
            &format!("a REASON ({r:?}) goes with not-ready only"),
        ),
        (_, None) => None,
    };
    let answer = match action {
        Some(a) => api_call(
            args,
            reqwest::Method::POST,
            &["v1", "agents", id, a.route()],
            body,
        ),
        None => api_call(args, reqwest::Method::GET, &["v1", "agents", id], None),
    };
    match answer {
        Ok((text, _)) if json => {
            print_raw(&text);
            ExitCode::SUCCESS
        }
        Ok((_, value)) => {
            println!("{}", agent_line(&value));
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// Shown for an absent or unknown value.
const NONE: &str = "—";

/// The string field `key` of `v`, or `—`.
fn text_field(v: &serde_json::Value, key: &str) -> String {
    v.get(key)
        .and_then(serde_json::Value::as_str)
        .unwrap_or(NONE)
        .to_owned()
}

/// The count field `key` of `v`, or `—`.
fn count_field(v: &serde_json::Value, key: &str) -> String {
    v.get(key)
        .and_then(serde_json::Value::as_u64)
        .map_or_else(|| NONE.to_owned(), |n| n.to_string())
}

/// `not_ready(break)`, `talking`, …
fn agent_state(v: &serde_json::Value) -> String {
    let state = v
        .get("state")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("?");
    match v.get("reason").and_then(serde_json::Value::as_str) {
        Some(r) => format!("{state}({r})"),
        None => state.to_owned(),
    }
}

/// `remote`, `registered` or `—`.
fn agent_phone(v: &serde_json::Value) -> &'static str {
    let flag = |k: &str| v.get(k).and_then(serde_json::Value::as_bool) == Some(true);
    if flag("remote") {
        "remote"
    } else if flag("registered") {
        "registered"
    } else {
        NONE
    }
}

/// `general:5 health:2`, or `—` for none.
fn agent_skills(v: &serde_json::Value) -> String {
    let skills: Vec<String> = v
        .get("skills")
        .and_then(serde_json::Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(name, level)| match level.as_u64() {
                    Some(l) => format!("{name}:{l}"),
                    None => name.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    if skills.is_empty() {
        NONE.to_owned()
    } else {
        skills.join(" ")
    }
}

/// One agent on one line: `1001 (Agent 1001): talking, call <id>`.
fn agent_line(v: &serde_json::Value) -> String {
    let mut line = format!(
        "{} ({}): {}",
        text_field(v, "id"),
        text_field(v, "name"),
        agent_state(v)
    );
    if let Some(call) = v.get("call").and_then(serde_json::Value::as_str) {
        line.push_str(", call ");
        line.push_str(call);
    }
    if v.get("remote").and_then(serde_json::Value::as_bool) != Some(true)
        && v.get("registered").and_then(serde_json::Value::as_bool) == Some(false)
    {
        line.push_str(" (phone not registered)");
    }
    line
}

/// The `hotline agents` table from `GET /v1/agents`.
fn agents_table(v: &serde_json::Value) -> Result<String, String> {
    let list = v.as_array().ok_or("expected a JSON array of agents")?;
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| {
            vec![
                text_field(a, "id"),
                text_field(a, "name"),
                text_field(a, "tenant"),
                agent_state(a),
                agent_phone(a).to_owned(),
                agent_skills(a),
            ]
        })
        .collect();
    let mut out = render_table(
        &["ID", "NAME", "TENANT", "STATE", "PHONE", "SKILLS"],
        &[false; 6],
        &rows,
    );
    if rows.is_empty() {
        out.push_str("(no agents configured)\n");
    }
    Ok(out)
}

/// Whole seconds as `42s`, `3m05s`, `1h02m`; `—` for none.
fn duration_text(secs: Option<f64>) -> String {
    let Some(secs) = secs.filter(|s| s.is_finite() && *s >= 0.0) else {
        return NONE.to_owned();
    };
    // Finite and non-negative: the cast saturates at u64::MAX at worst.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let s = secs.round() as u64;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    }
}

/// A ratio as a whole percentage; `—` for none.
fn percent_text(ratio: Option<f64>) -> String {
    match ratio.filter(|r| r.is_finite()) {
        Some(r) => format!("{:.0}%", r * 100.0),
        None => NONE.to_owned(),
    }
}

/// The `hotline queues` table from `GET /v1/queues`.
fn queues_table(v: &serde_json::Value) -> Result<String, String> {
    let list = v.as_array().ok_or("expected a JSON array of queues")?;
    let float = |q: &serde_json::Value, k: &str| q.get(k).and_then(serde_json::Value::as_f64);
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|q| {
            let name = text_field(q, "name");
            let tenant = text_field(q, "tenant");
            if let Some(target) = q.get("target").and_then(serde_json::Value::as_str) {
                // Delivered to an external contact centre: no figures here.
                let mut row = vec![format!("{name} → {target}"), tenant];
                row.resize(10, NONE.to_owned());
                return row;
            }
            let waiting = q.get("waiting").and_then(serde_json::Value::as_u64);
            let oldest = match waiting {
                Some(0) => None,
                _ => float(q, "oldest_wait_secs"),
            };
            vec![
                name,
                tenant,
                count_field(q, "waiting"),
                duration_text(oldest),
                percent_text(float(q, "answered_within_15s_ratio")),
                count_field(q, "answered_24h"),
                count_field(q, "abandoned_24h"),
                duration_text(float(q, "average_speed_of_answer_secs")),
                count_field(q, "agents_ready"),
                count_field(q, "agents_busy"),
            ]
        })
        .collect();
    let mut right = [true; 10];
    right[0] = false;
    right[1] = false;
    let mut out = render_table(
        &[
            "QUEUE",
            "TENANT",
            "WAITING",
            "OLDEST",
            "15S",
            "ANSWERED",
            "ABANDONED",
            "ASA",
            "READY",
            "BUSY",
        ],
        &right,
        &rows,
    );
    if rows.is_empty() {
        out.push_str("(no queues configured)\n");
    }
    Ok(out)
}

/// Columns a character takes in a terminal: 2 for East Asian wide and
/// full-width characters (agents' names are often Chinese), 0 for
/// combining marks and zero-width characters, else 1.
fn char_width(c: char) -> usize {
    match u32::from(c) {
        0x0300..=0x036F | 0x200B..=0x200F | 0xFE00..=0xFE0F => 0,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x3FFFD => 2,
        _ => 1,
    }
}

/// Columns `s` takes in a terminal.
fn text_width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

/// A table: a header line and one line per row, columns two spaces apart,
/// each left- or right-aligned (`right`) by terminal width; no trailing
/// spaces.
fn render_table(header: &[&str], right: &[bool], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| text_width(h)).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(text_width(cell));
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = " ".repeat(width.saturating_sub(text_width(cell)));
            if right.get(i).copied().unwrap_or(false) {
                line.push_str(&pad);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&pad);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The column at which `needle` starts on `line`, in terminal columns.
    fn column(line: &str, needle: &str) -> usize {
        match line.find(needle) {
            Some(at) => text_width(&line[..at]),
            None => panic!("{needle:?} not in {line:?}"),
        }
    }

    #[test]
    fn agents_table_aligns_columns_and_shows_state_phone_and_skills() {
        let v = json!([
            {"id": "1001", "name": "Agent 1001", "tenant": "demo", "state": "not_ready",
             "reason": "break", "registered": true, "remote": false,
             "skills": {"general": 5, "health": 2}, "groups": []},
            {"id": "1002", "name": "Li", "tenant": "demo", "state": "talking",
             "call": "rec-1", "registered": true, "remote": true,
             "skills": {"general": 1}, "groups": ["legal-aid"]},
            {"id": "1003", "name": "Agent 1003", "tenant": "city-long-name", "state": "logged_out",
             "registered": false, "remote": false, "skills": {}, "groups": []}
        ]);
        let table = match agents_table(&v) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        let expected = "\
ID    NAME        TENANT          STATE             PHONE       SKILLS
1001  Agent 1001  demo            not_ready(break)  registered  general:5 health:2
1002  Li          demo            talking           remote      general:1
1003  Agent 1003  city-long-name  logged_out        —           —
";
        assert_eq!(table, expected);
    }

    #[test]
    fn agents_table_survives_missing_fields_and_wide_names() {
        let v = json!([
            {"id": "1001", "name": "张三", "state": "ready"},
            {"id": "10020", "name": "Agent 2", "tenant": "demo", "state": "ready",
             "registered": true}
        ]);
        let table = match agents_table(&v) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        // 张三 takes four terminal columns: TENANT lines up on every line.
        let tenant = column(lines[0], "TENANT");
        assert_eq!(column(lines[1], "—"), tenant, "{table}");
        assert_eq!(column(lines[2], "demo"), tenant, "{table}");
        let state = column(lines[0], "STATE");
        assert_eq!(column(lines[1], "ready"), state, "{table}");
        assert!(lines[1].ends_with("ready  —           —"), "{table}");
        assert!(lines[2].ends_with("registered  —"), "{table}");
        assert!(table.lines().all(|l| l == l.trim_end()));
    }

    #[test]
    fn agents_table_empty_and_not_a_list() {
        assert_eq!(
            agents_table(&json!([])).ok().as_deref(),
            Some("ID  NAME  TENANT  STATE  PHONE  SKILLS\n(no agents configured)\n")
        );
        assert!(agents_table(&json!({"error": "x"})).is_err());
    }

    #[test]
    fn agent_line_names_state_reason_call_and_an_unregistered_phone() {
        let line = |v| agent_line(&v);
        assert_eq!(
            line(
                json!({"id": "1001", "name": "Agent 1001", "state": "not_ready",
                        "reason": "break", "registered": true, "remote": false})
            ),
            "1001 (Agent 1001): not_ready(break)"
        );
        assert_eq!(
            line(
                json!({"id": "1001", "name": "A", "state": "talking", "call": "r-9",
                        "registered": true, "remote": false})
            ),
            "1001 (A): talking, call r-9"
        );
        assert_eq!(
            line(json!({"id": "1001", "name": "A", "state": "ready",
                        "registered": false, "remote": false})),
            "1001 (A): ready (phone not registered)"
        );
        assert_eq!(line(json!({})), "— (—): ?");
    }

    #[test]
    fn queues_table_right_aligns_figures_and_shows_nulls_and_targets() {
        let v = json!([
            {"name": "general", "tenant": "demo", "target": null, "waiting": 3,
             "oldest_wait_secs": 125.4, "answered_within_15s_ratio": 0.934,
             "offered_24h": 1200, "answered_24h": 1150, "abandoned_24h": 45,
             "expired_24h": 5, "refused_24h": 0, "answer_ratio_24h": 0.958,
             "average_speed_of_answer_secs": 6.2, "agents_ready": 2, "agents_busy": 17},
            {"name": "health", "tenant": "demo", "target": null, "waiting": 0,
             "oldest_wait_secs": 0.0, "answered_within_15s_ratio": null,
             "offered_24h": 0, "answered_24h": 0, "abandoned_24h": 0,
             "expired_24h": 0, "refused_24h": 0, "answer_ratio_24h": null,
             "average_speed_of_answer_secs": null, "agents_ready": 0, "agents_busy": 0},
            {"name": "outsourced", "tenant": "demo", "target": "uas", "waiting": 0,
             "oldest_wait_secs": 0.0, "answered_within_15s_ratio": null,
             "offered_24h": 0, "answered_24h": 0, "abandoned_24h": 0,
             "expired_24h": 0, "refused_24h": 0, "answer_ratio_24h": null,
             "average_speed_of_answer_secs": null, "agents_ready": 0, "agents_busy": 0}
        ]);
        let table = match queues_table(&v) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        let expected = "\
QUEUE             TENANT  WAITING  OLDEST  15S  ANSWERED  ABANDONED  ASA  READY  BUSY
general           demo          3   2m05s  93%      1150         45   6s      2    17
health            demo          0       —    —         0          0    —      0     0
outsourced → uas  demo          —       —    —         —          —    —      —     —
";
        assert_eq!(table, expected);
    }

    #[test]
    fn queues_table_survives_missing_fields() {
        let table = match queues_table(&json!([{"name": "q"}])) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[1].starts_with("q      —"), "{table}");
        assert_eq!(lines[1].matches('—').count(), 9, "{table}");
        assert!(queues_table(&json!("nope")).is_err());
        assert_eq!(
            queues_table(&json!([]))
                .ok()
                .as_deref()
                .map(|t| t.ends_with("(no queues configured)\n")),
            Some(true)
        );
    }

    #[test]
    fn durations_and_percentages() {
        assert_eq!(duration_text(None), "—");
        assert_eq!(duration_text(Some(f64::NAN)), "—");
        assert_eq!(duration_text(Some(-1.0)), "—");
        assert_eq!(duration_text(Some(0.0)), "0s");
        assert_eq!(duration_text(Some(59.4)), "59s");
        assert_eq!(duration_text(Some(59.6)), "1m00s");
        assert_eq!(duration_text(Some(3599.0)), "59m59s");
        assert_eq!(duration_text(Some(3725.0)), "1h02m");
        assert_eq!(percent_text(Some(0.934)), "93%");
        assert_eq!(percent_text(Some(1.0)), "100%");
        assert_eq!(percent_text(None), "—");
    }

    #[test]
    fn api_addresses() {
        let url = |a: &str| base_url(a).map(|u| u.to_string());
        assert_eq!(
            url("127.0.0.1:8080").as_deref(),
            Ok("http://127.0.0.1:8080/")
        );
        assert_eq!(url("[::1]:8080").as_deref(), Ok("http://[::1]:8080/"));
        assert_eq!(
            url("https://cti.example.org/hotline/").as_deref(),
            Ok("https://cti.example.org/hotline/")
        );
        assert!(url("ftp://x:21").is_err());
        assert!(url("").is_err());
        assert_eq!(
            connect_addr(SocketAddr::from(([0, 0, 0, 0], 8080))),
            SocketAddr::from(([127, 0, 0, 1], 8080))
        );
        assert_eq!(
            connect_addr(SocketAddr::from(([10, 0, 0, 5], 9000))),
            SocketAddr::from(([10, 0, 0, 5], 9000))
        );
    }

    #[test]
    fn urls_keep_a_prefix_and_encode_ids() {
        let client = |api: &str| match base_url(api) {
            Ok(base) => ApiClient {
                base,
                shown: api.to_owned(),
                token: None,
                client: reqwest::Client::new(),
            },
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            client("127.0.0.1:8080")
                .url(&["v1", "agents", "1001", "login"])
                .as_str(),
            "http://127.0.0.1:8080/v1/agents/1001/login"
        );
        assert_eq!(
            client("http://h/hotline/")
                .url(&["v1", "agents", "a/b c"])
                .as_str(),
            "http://h/hotline/v1/agents/a%2Fb%20c"
        );
    }

    #[test]
    fn error_messages_carry_status_and_the_servers_words() {
        let e = |code: u16, body: &str, token: bool| match reqwest::StatusCode::from_u16(code) {
            Ok(s) => status_error(s, body, token),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            e(409, r#"{"error":"the agent is logged out"}"#, true),
            "the API answered 409 Conflict: the agent is logged out"
        );
        assert!(e(401, r#"{"error":"missing"}"#, false)
            .ends_with("(pass --token, or set HOTLINE_API_TOKEN)"));
        assert!(e(401, r#"{"error":"wrong"}"#, true).contains("check --token"));
        assert_eq!(
            e(404, "", true),
            "the API answered 404 Not Found (no such route: is the gateway older than the CTI API?)"
        );
        assert_eq!(
            e(502, "<html>bad\n gateway</html>", true),
            "the API answered 502 Bad Gateway: <html>bad gateway</html>"
        );
    }

    #[test]
    fn agent_actions_map_to_routes_and_clap_parses_them() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(|c| c.command);
        match parse(&[
            "hotline",
            "agent",
            "1001",
            "not-ready",
            "break",
            "--token",
            "t",
        ]) {
            Ok(Command::Agent {
                id,
                action,
                reason,
                api,
                ..
            }) => {
                assert_eq!(id, "1001");
                assert_eq!(action, Some(AgentAction::NotReady));
                assert_eq!(reason.as_deref(), Some("break"));
                assert_eq!(api.token.as_deref(), Some("t"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&["hotline", "agent", "1001", "end_wrap_up"]),
            Ok(Command::Agent {
                action: Some(AgentAction::EndWrapUp),
                ..
            })
        ));
        assert!(parse(&["hotline", "agent", "1001", "dance"]).is_err());
        assert!(matches!(
            parse(&["hotline", "queues", "--json", "--api", "10.0.0.5:8080"]),
            Ok(Command::Queues { json: true, .. })
        ));
        let routes: Vec<&str> = AgentAction::value_variants()
            .iter()
            .map(|a| a.route())
            .collect();
        assert_eq!(
            routes,
            ["login", "logout", "ready", "not_ready", "end_wrap_up"]
        );
        Cli::command().debug_assert();
    }
}
