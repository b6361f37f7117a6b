//! The gateway's configuration: TOML text -> raw serde structs (every table
//! `deny_unknown_fields`) -> validation -> a typed [`Config`].
//!
//! A [`Config`] that exists is valid: every duration is in range, every name
//! is unique, every route names a defined target, every CIDR parses. What is
//! wrong with a file comes back as one [`ConfigError`] naming the file, the
//! 1-based line and column, the key path and, when we know it, the fix:
//!
//! ```text
//! configs/x.toml:31:10: key `routes[2].target`: unknown target "foo"
//!   help: define it in a [[targets]] table (known targets: demo-uas)
//! ```
//!
//! Every key, its type, default and meaning is listed in `docs/config.md`;
//! `configs/demo.toml` (compiled in, see [`demo`]) sets and explains each one.
//!
//! Module map: `raw.rs` mirrors the file, `validate.rs` turns it into the
//! types below, `source.rs` maps key paths to lines, `cidr.rs` is [`Cidr`],
//! `error.rs` is [`ConfigError`].

// ConfigError's fields are its public contract, and a config is loaded once
// at startup, so the size of `Result<_, ConfigError>` costs nothing.
#![allow(
    clippy::result_large_err,
    reason = "ConfigError's fields are public API; errors are built once, at startup"
)]

mod cidr;
mod error;
mod raw;
mod source;
mod validate;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::de::DeTable;

pub use cidr::{Cidr, CidrError};
pub use error::ConfigError;

use crate::ivr::{Flow, Prompts, Schedule};

use raw::RawConfig;
use source::Source;

/// The text of `configs/demo.toml`, compiled in.
const DEMO_TOML: &str = include_str!("../../configs/demo.toml");

/// The origin [`demo`] reports in errors and in [`Config::origin`].
pub const DEMO_ORIGIN: &str = "<embedded demo.toml>";

/// The embedded demo configuration: a whole centre on loopback (see
/// `configs/demo.toml`).
///
/// # Panics
/// Only if the compiled-in `configs/demo.toml` does not validate, which the
/// unit test `demo_validates` rules out before any build ships.
#[must_use]
pub fn demo() -> Config {
    match parse(DEMO_TOML, DEMO_ORIGIN) {
        Ok(config) => config,
        Err(e) => panic!("bug: the embedded configs/demo.toml does not validate:\n{e}"),
    }
}

/// Read and validate the configuration file at `path`.
///
/// # Errors
/// The file cannot be read (the error names it), is not valid TOML, or does
/// not validate; see [`ConfigError`].
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        let (message, help) = match e.kind() {
            std::io::ErrorKind::InvalidData => (
                "cannot read the file: it is not valid UTF-8".to_owned(),
                Some("save the file as UTF-8".to_owned()),
            ),
            std::io::ErrorKind::NotFound => (
                format!("cannot read the file: {e}"),
                Some("check the path".to_owned()),
            ),
            _ => (format!("cannot read the file: {e}"), None),
        };
        Source::file_error(&origin, message, help)
    })?;
    parse(&text, &origin)
}

/// Parse and validate configuration `text`; `origin` names it in errors
/// (a file path, or something like `<embedded demo.toml>`).
///
/// # Errors
/// The text is not valid TOML or does not validate; see [`ConfigError`].
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let mut source = Source::new(origin, text);
    let (root, errors) = DeTable::parse_recoverable(text);
    source.index(&root);
    let first = errors
        .iter()
        .min_by_key(|e| e.span().map_or(usize::MAX, |s| s.start));
    if let Some(e) = first {
        return Err(source.syntax_error(e));
    }
    let raw = RawConfig::deserialize(toml::de::Deserializer::from(root))
        .map_err(|e| source.serde_error(&e))?;
    validate::validate(raw, &source)
}

/// A validated configuration. Build it with [`load`], [`parse`] or [`demo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where it came from: the file path, or [`DEMO_ORIGIN`].
    pub origin: String,
    /// `[node]`: this gateway instance.
    pub node: Node,
    /// `[sip]`: the SIP listener and its timers.
    pub sip: Sip,
    /// `[api]`: the operators' HTTP API.
    pub api: Api,
    /// `[media]`: the anchored RTP legs.
    pub media: Media,
    /// `[webhooks]`: where call records and events are posted; `None`
    /// without the section (records then stay in the outbox).
    pub webhooks: Option<Webhooks>,
    /// `[[trunks]]`: carriers allowed to send us INVITEs, in file order.
    pub trunks: Vec<Trunk>,
    /// `[[targets]]`: where calls can be sent, in file order.
    pub targets: Vec<Target>,
    /// `[[routes]]`: dialled number -> target, in file order.
    pub routes: Vec<Route>,
    /// `[[flows]]`: IVR flows, validated ([`crate::ivr::Flow::validate`])
    /// against `prompts`, `queues` and `targets`, in file order. A line's
    /// calls run one ([`Line::flow`]).
    pub flows: Vec<Arc<Flow>>,
    /// `[prompts]`: the shipped announcements, with those of `dir` added
    /// or put in their place (loaded and checked at load).
    pub prompts: Arc<Prompts>,
    /// `[[tenants]]`: the centres sharing this platform, in file order.
    pub tenants: Vec<Tenant>,
    /// `[[lines]]`: the hotline numbers answered here, in file order.
    pub lines: Vec<Line>,
    /// `[[queues]]`: where `queue` nodes hand calls, in file order.
    pub queues: Vec<Queue>,
    /// `[acd]`: settings of all queues and agents.
    pub acd: AcdSettings,
    /// `[[agents]]`: in file order.
    pub agents: Vec<Agent>,
    /// `[registrar]`: agents' phones registering.
    pub registrar: Registrar,
    /// `[survey]`: the five-level satisfaction survey.
    pub survey: Survey,
    /// `[blocklist]`: callers answered with an announcement and hung up.
    pub blocklist: Blocklist,
}

impl Config {
    /// The route for a dialled number (already normalised by its trunk,
    /// see [`Trunk::normalise`]; matched exactly here): the route with that
    /// exact number, else the default route (`"*"`), else `None`.
    #[must_use]
    pub fn route(&self, number: &str) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| r.number == number)
            .or_else(|| self.routes.iter().find(|r| r.is_default()))
    }

    /// The IVR flow called `name`.
    #[must_use]
    pub fn flow(&self, name: &str) -> Option<&Arc<Flow>> {
        self.flows.iter().find(|f| f.name == name)
    }

    /// The line for a dialled number (already normalised by its trunk),
    /// matched exactly. Lines are looked up before routes; a number is
    /// never both (validated).
    #[must_use]
    pub fn line(&self, number: &str) -> Option<&Line> {
        self.lines.iter().find(|l| l.number == number)
    }

    /// The tenant called `name`.
    #[must_use]
    pub fn tenant(&self, name: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.name == name)
    }

    /// The queue called `name`.
    #[must_use]
    pub fn queue(&self, name: &str) -> Option<&Queue> {
        self.queues.iter().find(|q| q.name == name)
    }

    /// The agent with this id.
    #[must_use]
    pub fn agent(&self, id: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.id == id)
    }

    /// The ACD core's view of the agents and the queues the gateway's own
    /// agents serve (all queues, in file order, so a [`crate::acd::QueueIx`]
    /// is the index in [`Config::queues`]; queues with a `target` simply
    /// never get calls).
    #[must_use]
    pub fn acd_spec(&self) -> crate::acd::AcdSpec {
        use crate::acd;
        let queue_ix = |name: &str| {
            let i = self.queues.iter().position(|q| q.name == name).unwrap_or(0);
            acd::QueueIx(u32::try_from(i).unwrap_or(u32::MAX))
        };
        acd::AcdSpec {
            agents: self
                .agents
                .iter()
                .map(|a| acd::AgentSpec {
                    id: a.id.clone(),
                    tenant: a.tenant.clone(),
                    skills: a.skills.clone(),
                    groups: a.groups.clone(),
                    always_reachable: a.remote.is_some(),
                })
                .collect(),
            queues: self
                .queues
                .iter()
                .map(|q| acd::QueueSpec {
                    name: q.name.clone(),
                    tenant: q.tenant.clone(),
                    skills: q.skills.clone(),
                    groups: q.groups.clone(),
                    strategy: q.strategy,
                    ring_timeout: q.ring_timeout,
                    wrap_up: q.wrap_up,
                    max_wait: q.max_wait,
                    max_length: q.max_length,
                    escalation: q
                        .escalation
                        .iter()
                        .map(|e| acd::Escalation {
                            after: e.after,
                            step: match &e.step {
                                EscalationStep::DropSkill(s) => acd::Step::DropSkill(s.clone()),
                                EscalationStep::MinLevel(l) => acd::Step::MinLevel(*l),
                                EscalationStep::Overflow(q) => acd::Step::Overflow(queue_ix(q)),
                            },
                        })
                        .collect(),
                    early_escalation: q.early_escalation,
                    comfort_every: q.comfort_every,
                })
                .collect(),
            not_ready_reasons: self.acd.not_ready_reasons.clone(),
            service_window: self.acd.service_window,
        }
    }

    /// The target called `name`.
    #[must_use]
    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.name == name)
    }

    /// The trunk a request from `ip` belongs to: the trunk with the longest
    /// source prefix containing `ip` (the first in file order on a tie), or
    /// `None` for an unknown source (see [`Sip::unknown_source`]).
    #[must_use]
    pub fn trunk_for(&self, ip: IpAddr) -> Option<&Trunk> {
        let mut best: Option<(u8, &Trunk)> = None;
        for trunk in &self.trunks {
            let longest = trunk
                .sources
                .iter()
                .filter(|c| c.contains(ip))
                .map(|c| c.prefix)
                .max();
            if let Some(prefix) = longest {
                if best.is_none_or(|(p, _)| prefix > p) {
                    best = Some((prefix, trunk));
                }
            }
        }
        best.map(|(_, trunk)| trunk)
    }
}

/// `[node]`: this gateway instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Name of this instance in logs, metrics and call records (`name`, required).
    pub name: String,
    /// Directory for the outbox database and other state (`data_dir`,
    /// default `data`; relative paths are relative to the working directory).
    pub data_dir: PathBuf,
    /// On SIGTERM, how long live calls may continue before they are ended
    /// (`shutdown_grace_secs`, default 30).
    pub shutdown_grace: Duration,
}

/// `[sip]`: the SIP listener and transaction timers (RFC 3261 §17).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sip {
    /// UDP and TCP both bind here (`listen`, default `127.0.0.1:5060`).
    pub listen: SocketAddr,
    /// Host placed in our Via and Contact headers (`advertise`, default the
    /// listen address; required when `listen` is `0.0.0.0` or `::`).
    pub advertise: IpAddr,
    /// RTT estimate, T1 (`t1_ms`, default 500).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE
    /// responses, T2 (`t2_ms`, default 4000; at least T1).
    pub t2: Duration,
    /// Maximum time a message stays in the network, T4 (`t4_ms`, default 5000).
    pub t4: Duration,
    /// Largest SIP message accepted (`max_message_bytes`, default 65535,
    /// 1024..=1048576).
    pub max_message_bytes: usize,
    /// Receive and send buffer asked of the kernel for the SIP UDP socket
    /// (`udp_buffer_bytes`, default 4 MiB; Linux caps it at
    /// `net.core.rmem_max` / `wmem_max`).
    pub udp_buffer_bytes: usize,
    /// Most concurrent inbound TCP connections (`tcp_max_connections`, default 1024).
    pub tcp_max_connections: usize,
    /// A TCP connection idle this long is closed (`tcp_idle_timeout_secs`, default 300).
    pub tcp_idle_timeout: Duration,
    /// No final answer from the callee within this -> the caller gets 480
    /// (`ring_timeout_secs`, default 120).
    pub ring_timeout: Duration,
    /// What to do with an INVITE from an address no trunk lists
    /// (`unknown_source`, default `reject`).
    pub unknown_source: UnknownSource,
    /// The digest algorithms our 407 challenges offer, in order
    /// (`digest_algorithms`; RFC 8760: a UAC takes the first it supports,
    /// but some read only the first).
    pub digest_algorithms: Vec<crate::sip::digest::Algorithm>,
    /// Our User-Agent and Server header value (`user_agent`, default `Hotline-Gateway`).
    pub user_agent: String,
}

/// What to do with a request from an address no trunk lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnknownSource {
    /// Answer 403 Forbidden (`"reject"`, the default).
    Reject,
    /// Ignore it silently (`"drop"`): gives scanners nothing to learn from.
    Drop,
}

impl UnknownSource {
    /// The value as written in the file.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            UnknownSource::Reject => "reject",
            UnknownSource::Drop => "drop",
        }
    }
}

impl fmt::Display for UnknownSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[media]`: RTP anchoring (every call's audio passes through the gateway).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// Address the RTP sockets bind (`listen`, an IP; default the
    /// `sip.listen` IP).
    pub listen: IpAddr,
    /// Address written in our SDP (`advertise`; default the
    /// `sip.advertise` address).
    pub advertise: IpAddr,
    /// First port of the RTP range (`port_min`, default 16384).
    pub port_min: u16,
    /// Last port of the RTP range (`port_max`, default 32767).
    pub port_max: u16,
    /// Media threads, each owning a share of the ports (`shards`, default
    /// 0 = one per CPU core).
    pub shards: usize,
    /// A leg that should send and is silent this long ends the call
    /// (`rtp_timeout_secs`, default 30).
    pub rtp_timeout: Duration,
    /// Send to where a peer's packets come from (`latching = "symmetric"`,
    /// default) or to its SDP address (`"off"`).
    pub latching: Latching,
    /// Detect DTMF tones in the audio of legs without telephone-event
    /// (`inband_dtmf`, default true).
    pub inband_dtmf: bool,
    /// Play Chinese ringback to the caller while the callee rings without
    /// early media of its own (`ringback`, default true).
    pub ringback: bool,
    /// Codecs we offer and accept, preferred first (`codecs`, default
    /// `["PCMA", "PCMU"]`).
    pub codecs: Vec<crate::sip::sdp::CodecId>,
    /// Socket buffer asked of the kernel per RTP socket (`udp_buffer_bytes`,
    /// default 262144).
    pub udp_buffer_bytes: usize,
}

impl Media {
    /// Media threads to run: `shards`, or one per CPU core when 0.
    #[must_use]
    pub fn effective_shards(&self) -> usize {
        if self.shards > 0 {
            return self.shards;
        }
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    }
}

/// How a leg learns where to send RTP.
pub use crate::media::shard::Latching;

/// `[api]`: the operators' HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    /// Address the HTTP API binds (`listen`, default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// Bearer tokens accepted on `/v1` (`tokens`, default none: `/v1`
    /// answers 403).
    pub tokens: Vec<Secret>,
}

/// `[webhooks]`: the backend receiving call records and events (see
/// `docs/webhooks.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhooks {
    /// Every item is POSTed to each of these (`url` or `urls`; http or
    /// https; at least one).
    pub urls: Vec<reqwest::Url>,
    /// Key of the HMAC-SHA256 signature (`secret`, required, at least 16 bytes).
    pub secret: Secret,
    /// One POST may take this long before it counts as failed
    /// (`timeout_secs`, default 10).
    pub timeout: Duration,
    /// An item is retried for this long after its first attempt, then
    /// dead-lettered (`retry_for_hours`, default 72).
    pub retry_for: Duration,
    /// Backoff ceiling after the first failure, doubling per failure (not
    /// a key: 1 s; tests shorten it).
    pub initial_backoff: Duration,
    /// Largest backoff between attempts (`max_backoff_secs`, default 600).
    pub max_backoff: Duration,
    /// Most POSTs in flight at once (`concurrency`, default 4).
    pub concurrency: usize,
    /// Delivered items are deleted from the outbox after this long
    /// (`retention_days`, default 7); pending and dead-lettered items never are.
    pub retention: Duration,
}

/// A secret: its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    #[must_use]
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// The secret's bytes, for the signature.
    #[must_use]
    pub fn reveal(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// `[[trunks]]`: a carrier allowed to send us INVITEs, recognised by the
/// source address of its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    /// Unique name, used in logs, metrics and call records.
    pub name: String,
    /// Networks the carrier's signalling comes from (empty only for a
    /// trunk with [`Trunk::auth`], which then accepts any address).
    pub sources: Vec<Cidr>,
    /// Digest credentials the carrier must present on each INVITE
    /// (`username`, `password`; `None`: the source address is enough).
    pub auth: Option<TrunkAuth>,
    /// Most calls from this trunk at once (`max_calls`; `None`: unlimited).
    /// An INVITE beyond it is answered 503.
    pub max_calls: Option<u32>,
    /// Most new calls admitted per second, a token bucket with a burst of
    /// the same size (`max_cps`; `None`: unlimited). An INVITE beyond it is
    /// answered 503.
    pub max_cps: Option<u32>,
    /// Rewrites of the dialled number, applied in order after visual
    /// separators are removed (`numbers`; see [`Trunk::normalise`]).
    pub numbers: Vec<NumberRule>,
    /// Where requests we send the carrier go, and how often we ping it
    /// (`outbound`, `keepalive_secs`; `None` without `outbound`: no
    /// keepalive, no up/down state).
    pub outbound: Option<Outbound>,
}

/// A trunk's digest credentials (RFC 3261 §22.3: we answer its INVITE
/// 407 and check its `Proxy-Authorization`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkAuth {
    /// The username the carrier authenticates as (unique across trunks).
    pub username: String,
    /// Its password.
    pub password: Secret,
}

impl Secret {
    /// The secret as text (digest computations).
    #[must_use]
    pub fn reveal_str(&self) -> &str {
        &self.0
    }
}

/// A trunk's outbound route: the carrier's SIP address for requests we
/// send it, pinged with OPTIONS to know whether it is up (see
/// `crate::call::keepalive`). Always UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outbound {
    /// The carrier's SIP address (`outbound`, `"IP:PORT"`).
    pub address: SocketAddr,
    /// Time between two OPTIONS pings (`keepalive_secs`, default 30,
    /// 1..=3600).
    pub keepalive: Duration,
}

impl Trunk {
    /// The dialled number (Request-URI user part) as routes see it:
    /// visual separators (`-`, `.`, `(`, `)`, space, `%20`) removed, then
    /// each rule of [`Trunk::numbers`] in order: a number starting with the
    /// rule's `prefix` has that prefix replaced by its `replace`. A rule
    /// applies at most once and sees what the rules before it made, so
    /// `+86` -> `0` followed by `020` -> `` turns `+86-20-12345` into
    /// `12345`. The result may be empty (no route will match it).
    #[must_use]
    pub fn normalise(&self, dialled: &str) -> String {
        let mut number = strip_separators(dialled);
        for rule in &self.numbers {
            if let Some(rest) = number.strip_prefix(rule.prefix.as_str()) {
                number = format!("{}{rest}", rule.replace);
            }
        }
        number
    }
}

/// A dialled number without visual separators: `-`, `.`, `(`, `)`, space
/// and its escaped form `%20` (a space cannot appear in a URI as is).
#[must_use]
pub fn strip_separators(dialled: &str) -> String {
    dialled
        .replace("%20", "")
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | '(' | ')' | ' '))
        .collect()
}

/// One rule of a trunk's number normalisation: a number starting with
/// `prefix` has it replaced by `replace`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberRule {
    /// What the number must start with (digits, `*`, `#`, optional leading
    /// `+`; not empty).
    pub prefix: String,
    /// What the prefix becomes (same characters; may be empty: strip it).
    pub replace: String,
}

/// `[[targets]]`: a SIP destination calls can be sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Unique name that routes refer to.
    pub name: String,
    /// Where to send the INVITE.
    pub address: SocketAddr,
    /// Which transport to send it over (default UDP).
    pub transport: TargetTransport,
}

/// The transport used to reach a [`Target`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetTransport {
    /// SIP over UDP (`"udp"`, the default).
    Udp,
    /// SIP over TCP (`"tcp"`).
    Tcp,
}

impl TargetTransport {
    /// The value as written in the file.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            TargetTransport::Udp => "udp",
            TargetTransport::Tcp => "tcp",
        }
    }
}

impl fmt::Display for TargetTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[[routes]]`: calls to a dialled number go to a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The dialled number (Request-URI user part), matched exactly; digits,
    /// `*` and `#` with an optional leading `+`. [`Route::DEFAULT`] (`"*"`)
    /// alone matches any number no other route matches.
    pub number: String,
    /// Name of a [`Target`] in the same [`Config`] (validated).
    pub target: String,
}

impl Route {
    /// The number of the default route.
    pub const DEFAULT: &'static str = "*";

    /// Whether this is the default route.
    #[must_use]
    pub fn is_default(&self) -> bool {
        self.number == Self::DEFAULT
    }
}

/// `[[tenants]]`: one centre of the platform ("one platform, tiered use":
/// a province hub, its cities, their counties). Each has its own lines,
/// flows, queues and (with the ACD) agents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Unique name.
    pub name: String,
    /// The tenant above this one in the tree (validated: exists, no cycle).
    pub parent: Option<String>,
    /// The tenant's local time is UTC plus this many minutes (China:
    /// +480). For opening hours and `hours` nodes.
    pub utc_offset_minutes: i32,
    /// When the tenant's lines are open ([`Schedule::Always`] = 7×24).
    pub hours: Schedule,
    /// Its parent takes calls its queues overflow (used by the ACD).
    pub overflow_to_parent: bool,
}

/// How a line relates to 12345 (DOMAIN.md, "the three merge modes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineMode {
    /// 12345 itself.
    Main,
    /// A kept department number whose seats moved into 12345: its calls
    /// enter the tenant's queues with the line's skills.
    Dual,
    /// A kept number whose department kept its own seats here.
    DualRetained,
    /// A cancelled number still routed by carriers: an announcement, then
    /// the 12345 flow, tagged with the old line's topic.
    Merged,
}

impl LineMode {
    /// The config and label form: `main`, `dual`, `dual_retained`, `merged`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            LineMode::Main => "main",
            LineMode::Dual => "dual",
            LineMode::DualRetained => "dual_retained",
            LineMode::Merged => "merged",
        }
    }
}

impl fmt::Display for LineMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[[lines]]`: a dialled number answered by the gateway, with its tenant
/// and mode, carried through the whole call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The dialled number as normalised by the trunks' rules (unique; never
    /// also a route's number).
    pub number: String,
    /// Name of its [`Tenant`].
    pub tenant: String,
    /// Its mode.
    pub mode: LineMode,
    /// The flow its calls run: for `merged`, the `into` line's flow with
    /// the announcement played first (built at load).
    pub flow: Arc<Flow>,
    /// `merged`: the line whose flow the call continues into.
    pub into: Option<String>,
    /// Tag `topic` set on every call of the line (a merged line's old
    /// topic, a dual line's department).
    pub topic: Option<String>,
    /// Skills added to every queue the flow hands a call of this line to.
    pub skills: Vec<String>,
    /// Added to the queue priority of this line's calls (the sum capped at 9).
    pub priority: u8,
    /// Whether calls run the satisfaction survey when the agent hangs up
    /// first.
    pub survey: bool,
    /// The flow run when the tenant is closed ([`Tenant::hours`]); required
    /// when the tenant keeps hours.
    pub closed_flow: Option<Arc<Flow>>,
}

/// `[[queues]]`: where `queue` nodes hand calls: the gateway's own agents
/// (the ACD), or with `target` an external contact centre.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// Unique name (what `queue` nodes name).
    pub name: String,
    /// Name of its [`Tenant`].
    pub tenant: String,
    /// A [`Target`] the queue's calls are delivered to instead of agents,
    /// e.g. an existing contact centre's hunt group; the ACD keys below
    /// are then not allowed.
    pub target: Option<String>,
    /// Required skills with their minimum levels (1–5).
    pub skills: Vec<(String, u8)>,
    /// Non-empty: only agents in one of these groups (a `dual_retained`
    /// department's own seats).
    pub groups: Vec<String>,
    /// Which eligible agent gets the call.
    pub strategy: crate::acd::Strategy,
    /// Ring-no-answer: the agent goes `not_ready(no_answer)`.
    pub ring_timeout: Duration,
    /// After-call work before the agent is ready again.
    pub wrap_up: Duration,
    /// Longest wait before the treatment (`None`: no limit).
    pub max_wait: Option<Duration>,
    /// Most calls waiting; more get the treatment at once (`None`: no limit).
    pub max_length: Option<usize>,
    /// The announcement played before hanging up on a call that waited
    /// `max_wait` or found the queue full.
    pub treatment: String,
    /// What waiting callers hear between announcements.
    pub music: String,
    /// Comfort announcement period (`None`: none).
    pub comfort_every: Option<Duration>,
    /// The comfort announcement.
    pub comfort_prompt: String,
    /// Whether the comfort announcement says the caller's position and
    /// estimated wait.
    pub announce_position: bool,
    /// Take the next escalation step this long before a waiting call
    /// would miss the 15-second answer when no eligible agent is ready.
    pub early_escalation: Option<Duration>,
    /// Steps over the call's wait, in order of `after`.
    pub escalation: Vec<Escalation>,
}

/// `[[queues.escalation]]`: what changes for a call that has waited `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    /// The call's total wait at which the step applies.
    pub after: Duration,
    /// The step.
    pub step: EscalationStep,
}

/// One escalation step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EscalationStep {
    /// Stop requiring this skill (`drop_skill`).
    DropSkill(String),
    /// Lower every required minimum level to at most this (`min_level`).
    MinLevel(u8),
    /// Move the call to this queue (`overflow`): of the same tenant, or
    /// of its parent when the tenant has `overflow_to_parent`.
    Overflow(String),
}

/// `[acd]`: what applies to all queues and agents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcdSettings {
    /// Reasons an agent may give for `not_ready` (feature code `*24N`
    /// picks the N-th, 1-based; `*24` the first).
    pub not_ready_reasons: Vec<String>,
    /// Window of the rolling 15-second answer ratio.
    pub service_window: Duration,
}

/// `[[agents]]`: the people who answer calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// Unique id: the SIP username the phone registers with, e.g. `1001`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Digest password of the phone.
    pub password: Secret,
    /// Name of its [`Tenant`].
    pub tenant: String,
    /// Skills with levels 1 (basic) to 5 (expert).
    pub skills: Vec<(String, u8)>,
    /// Groups (e.g. a `dual_retained` department's seats).
    pub groups: Vec<String>,
    /// A remote seat: the [`Target`] that reaches the agent's own phone
    /// (no registration needed).
    pub remote: Option<String>,
    /// The number dialled at `remote` (default: the agent's id).
    pub remote_number: Option<String>,
}

/// `[registrar]`: agents' phones registering with the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registrar {
    /// Digest realm (default: the node's name).
    pub realm: String,
    /// Shorter registrations get 423 Interval Too Brief.
    pub min_expires: Duration,
    /// Longer ones are granted this.
    pub max_expires: Duration,
    /// When the phone asks for none.
    pub default_expires: Duration,
    /// Failed attempts from one address, or for one username, within
    /// `lockout_window` that lock it out.
    pub lockout_failures: u32,
    /// The window the failures are counted over.
    pub lockout_window: Duration,
    /// How long a lockout lasts.
    pub lockout_for: Duration,
}

/// `[survey]`: the five-level satisfaction survey (好差评) run on the
/// caller's leg when the agent hangs up first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Survey {
    /// The question ("press 1 very satisfied … 5 very dissatisfied").
    pub prompt: String,
    /// Played after a valid key, before the hang-up.
    pub thanks: String,
    /// Wait for a key after the question.
    pub timeout: Duration,
    /// Replays of the question after a key outside 1–5.
    pub retries: u8,
}

/// `[blocklist]`: callers refused with an announcement (harassment,
/// 恶意骚扰).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Blocklist {
    /// Caller numbers in [`caller_key`] form.
    pub numbers: Vec<String>,
    /// The announcement played before the hang-up.
    pub prompt: String,
}

impl Blocklist {
    /// Whether `caller` (as the carrier presented it) is listed.
    #[must_use]
    pub fn contains(&self, caller: &str) -> bool {
        let key = caller_key(caller);
        !key.is_empty() && self.numbers.contains(&key)
    }
}

/// A caller number in the form block lists compare: separators removed,
/// and a leading `+86` or `0086` (China's country code) removed, so
/// `+86 138-0013-8000`, `008613800138000` and `13800138000` are one caller.
#[must_use]
pub fn caller_key(caller: &str) -> String {
    let s = strip_separators(caller);
    for cc in ["+86", "0086"] {
        if let Some(rest) = s.strip_prefix(cc) {
            if !rest.is_empty() {
                return rest.to_owned();
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        match s.parse() {
            Ok(ip) => ip,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn demo_validates() {
        if let Err(e) = parse(DEMO_TOML, DEMO_ORIGIN) {
            panic!("configs/demo.toml does not validate:\n{e}");
        }
        let demo = demo();
        assert_eq!(demo.origin, DEMO_ORIGIN);
        assert_eq!(demo.node.name, "demo");
        assert!(
            demo.webhooks.is_none(),
            "the demo keeps its records locally"
        );
    }

    fn webhooks(section: &str) -> Result<Option<Webhooks>, ConfigError> {
        parse(&format!("{BASE}[webhooks]\n{section}"), "t.toml").map(|c| c.webhooks)
    }

    fn webhook_error(section: &str) -> ConfigError {
        match webhooks(section) {
            Ok(w) => panic!("accepted {section:?}: {w:?}"),
            Err(e) => e,
        }
    }

    const SECRET: &str = "secret = \"0123456789abcdef\"\n";

    #[test]
    fn webhook_defaults() {
        let w = match webhooks(&format!("url = \"https://backend.example/hook\"\n{SECRET}")) {
            Ok(Some(w)) => w,
            other => panic!("{other:?}"),
        };
        assert_eq!(w.urls.len(), 1);
        assert_eq!(w.urls[0].as_str(), "https://backend.example/hook");
        assert_eq!(w.secret.reveal(), b"0123456789abcdef");
        assert!(
            !format!("{w:?}").contains("0123456789abcdef"),
            "secret in Debug"
        );
        assert_eq!(w.timeout, Duration::from_secs(10));
        assert_eq!(w.retry_for, Duration::from_secs(72 * 3600));
        assert_eq!(w.initial_backoff, Duration::from_secs(1));
        assert_eq!(w.max_backoff, Duration::from_secs(600));
        assert_eq!(w.concurrency, 4);
        assert_eq!(w.retention, Duration::from_secs(7 * 86400));
    }

    #[test]
    fn webhook_urls_list_and_keys() {
        let w = match webhooks(&format!(
            "urls = [\"http://10.0.0.1:8000/a\", \"https://b.example/\"]\n{SECRET}\
             timeout_secs = 3\nretry_for_hours = 240\nmax_backoff_secs = 60\n\
             concurrency = 16\nretention_days = 30\n"
        )) {
            Ok(Some(w)) => w,
            other => panic!("{other:?}"),
        };
        assert_eq!(w.urls.len(), 2);
        assert_eq!(w.timeout, Duration::from_secs(3));
        assert_eq!(w.retry_for, Duration::from_secs(240 * 3600));
        assert_eq!(w.max_backoff, Duration::from_secs(60));
        assert_eq!(w.concurrency, 16);
        assert_eq!(w.retention, Duration::from_secs(30 * 86400));
    }

    #[test]
    fn webhook_errors_name_the_key_and_the_fix() {
        // `$S` stands for a valid secret line
        let cases: &[(&str, &str, &str, &str)] = &[
            (
                "url = \"https://a.example/\"\n",
                "webhooks.secret",
                "missing key",
                "openssl rand -hex 32",
            ),
            (
                "url = \"https://a.example/\"\nsecret = \"short\"\n",
                "webhooks.secret",
                "5 bytes",
                "openssl rand -hex 32",
            ),
            (
                "url = \"ftp://a.example/\"\n$S",
                "webhooks.url",
                "ftp",
                "http",
            ),
            (
                "url = \"not a url\"\n$S",
                "webhooks.url",
                "invalid URL",
                "https://",
            ),
            (
                "url = \"https://u:p@a.example/\"\n$S",
                "webhooks.url",
                "user name",
                "secret",
            ),
            (
                "urls = [\"https://a.example/\", \"https://a.example\"]\n$S",
                "webhooks.urls[1]",
                "already",
                "once",
            ),
            (
                "url = \"https://a.example/\"\nurls = [\"https://b.example/\"]\n$S",
                "webhooks.urls",
                "both",
                "one of",
            ),
            ("urls = []\n$S", "webhooks.urls", "no URL", "url ="),
            ("$S", "webhooks.url", "missing key", "url ="),
            (
                "url = \"https://a.example/\"\n$Sconcurrency = 0\n",
                "webhooks.concurrency",
                "out of range",
                "default is 4",
            ),
            (
                "url = \"https://a.example/\"\n$Sretry_for_hours = 0\n",
                "webhooks.retry_for_hours",
                "out of range",
                "72",
            ),
        ];
        for (section, key, message, help) in cases {
            let section = section.replace("$S", SECRET);
            let e = webhook_error(&section);
            assert_eq!(e.key.as_deref(), Some(*key), "{section}: {e}");
            assert!(e.message.contains(message), "{section}: {e}");
            assert!(
                e.help.as_deref().unwrap_or("").contains(help),
                "{section}: {e}"
            );
            assert!(e.line.is_some(), "{section}: {e}");
        }
    }

    #[test]
    fn demo_is_loopback_only() {
        let demo = demo();
        assert!(demo.sip.listen.ip().is_loopback());
        assert!(demo.sip.advertise.is_loopback());
        assert!(demo.api.listen.ip().is_loopback());
        for t in &demo.targets {
            assert!(t.address.ip().is_loopback(), "{t:?}");
        }
        for t in &demo.trunks {
            for c in &t.sources {
                assert!(c.addr.is_loopback(), "{c}");
            }
        }
    }

    #[test]
    fn demo_keeps_its_contract() {
        let demo = demo();
        assert_eq!(
            demo.trunk_for(ip("127.0.0.1")).map(|t| t.name.as_str()),
            Some("loopback-carrier")
        );
        assert!(demo.trunk_for(ip("192.0.2.1")).is_none());
        let targets: Vec<(&str, String, TargetTransport)> = demo
            .targets
            .iter()
            .map(|t| (t.name.as_str(), t.address.to_string(), t.transport))
            .collect();
        let udp = TargetTransport::Udp;
        assert_eq!(
            targets,
            [
                ("demo-uas", "127.0.0.1:5070".to_owned(), udp),
                ("tax-12366", "127.0.0.1:5091".to_owned(), udp),
                ("police-110", "127.0.0.1:5092".to_owned(), udp),
                ("fire-119", "127.0.0.1:5093".to_owned(), udp),
                ("ambulance-120", "127.0.0.1:5094".to_owned(), udp),
                ("traffic-122", "127.0.0.1:5095".to_owned(), udp),
                ("water", "127.0.0.1:5096".to_owned(), udp),
                ("power", "127.0.0.1:5097".to_owned(), udp),
                ("gas", "127.0.0.1:5098".to_owned(), udp),
            ]
        );
        // Lines take 12345 and 12320; a route shows the sub-centre case.
        assert!(demo.route("12345").is_none() && demo.route("12320").is_none());
        assert_eq!(
            demo.route("12366").map(|r| r.target.as_str()),
            Some("tax-12366")
        );
        assert!(demo.route("110").is_none());

        let tenant = demo.tenant("demo");
        assert_eq!(
            tenant.map(|t| (t.parent.clone(), t.utc_offset_minutes, &t.hours)),
            Some((None, 480, &Schedule::Always))
        );
        assert_eq!(demo.tenants.len(), 1);
        let queues: Vec<(&str, &str, Option<&str>)> = demo
            .queues
            .iter()
            .map(|q| (q.name.as_str(), q.tenant.as_str(), q.target.as_deref()))
            .collect();
        assert_eq!(
            queues,
            [
                ("general", "demo", None),
                ("health", "demo", None),
                ("legal-aid", "demo", None),
            ]
        );
        // The demo's agents: 1001-1010, passwords demo-1001…, tenant demo.
        let ids: Vec<&str> = demo.agents.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(
            ids,
            ["1001", "1002", "1003", "1004", "1005", "1006", "1007", "1008", "1009", "1010"]
        );
        for a in &demo.agents {
            assert_eq!(a.password.reveal_str(), format!("demo-{}", a.id));
            assert_eq!(a.tenant, "demo");
            assert!(!a.skills.is_empty(), "agent {} has skills", a.id);
        }
        let legal = demo.queue("legal-aid").map(|q| q.groups.clone());
        assert_eq!(legal, Some(vec!["legal-aid".to_owned()]));

        let lines: Vec<(&str, LineMode, &str, Option<&str>)> = demo
            .lines
            .iter()
            .map(|l| {
                (
                    l.number.as_str(),
                    l.mode,
                    l.flow.name.as_str(),
                    l.topic.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            lines,
            [
                ("12345", LineMode::Main, "12345-intake", None),
                ("12320", LineMode::Dual, "12320-dialect", Some("health")),
                (
                    "12319",
                    LineMode::Merged,
                    "12319+12345-intake",
                    Some("urban-management")
                ),
                (
                    "12348",
                    LineMode::DualRetained,
                    "12348-legal",
                    Some("legal-aid")
                ),
            ]
        );
        let line = |n: &str| match demo.line(n) {
            Some(l) => l,
            None => panic!("no line {n}"),
        };
        assert!(demo
            .lines
            .iter()
            .all(|l| l.tenant == "demo" && l.survey && l.priority == 0 && l.closed_flow.is_none()));
        assert_eq!(line("12320").skills, ["health"]);
        // A named flow is shared, not copied.
        let intake = demo.flow("12345-intake").map(Arc::clone);
        assert!(intake.is_some_and(|f| Arc::ptr_eq(&f, &line("12345").flow)));
        // The merged line: the announcement, then the 12345 flow.
        let merged = line("12319");
        assert_eq!(merged.into.as_deref(), Some("12345"));
        assert_eq!(merged.flow.entry, crate::ivr::ANNOUNCEMENT_NODE);
        assert_eq!(
            merged.flow.nodes.first().and_then(|n| n.kind.prompt()),
            Some("merged_line")
        );
        assert_eq!(merged.flow.nodes.len(), line("12345").flow.nodes.len() + 1);

        assert_eq!(
            demo.survey,
            Survey {
                prompt: "survey".into(),
                thanks: "thank_you".into(),
                timeout: Duration::from_secs(10),
                retries: 1,
            }
        );
        assert_eq!(demo.blocklist.numbers, ["13800000000"]);
        assert_eq!(demo.blocklist.prompt, "blocked");
        assert!(demo.blocklist.contains("+86 138-0000-0000"));
        assert_eq!(demo.prompts.names(), Prompts::shipped().names());
    }

    const BASE: &str =
        "[node]\nname = \"n\"\n[[targets]]\nname = \"a\"\naddress = \"127.0.0.1:5070\"\n\
                        [[targets]]\nname = \"b\"\naddress = \"127.0.0.1:5071\"\n";

    fn config(extra: &str) -> Config {
        match parse(&format!("{BASE}{extra}"), "t.toml") {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn default_route_catches_the_rest() {
        let c = config(
            "[[routes]]\nnumber = \"*\"\ntarget = \"b\"\n[[routes]]\nnumber = \"12345\"\ntarget = \"a\"\n",
        );
        assert_eq!(c.route("12345").map(|r| r.target.as_str()), Some("a"));
        assert_eq!(c.route("999").map(|r| r.target.as_str()), Some("b"));
        assert_eq!(c.route("+8612345").map(|r| r.target.as_str()), Some("b"));
        let without = config("[[routes]]\nnumber = \"12345\"\ntarget = \"a\"\n");
        assert!(without.route("999").is_none());
    }

    #[test]
    fn trunk_for_prefers_the_longest_prefix() {
        let c = config(
            "[[trunks]]\nname = \"wide\"\nsources = [\"10.0.0.0/8\", \"::/0\"]\n\
             [[trunks]]\nname = \"narrow\"\nsources = [\"10.1.0.0/16\"]\n\
             [[trunks]]\nname = \"same\"\nsources = [\"10.1.0.0/17\", \"10.1.128.0/17\"]\n",
        );
        let name = |s: &str| c.trunk_for(ip(s)).map(|t| t.name.clone());
        assert_eq!(name("10.2.0.1").as_deref(), Some("wide"));
        assert_eq!(name("10.1.0.1").as_deref(), Some("same"));
        assert_eq!(name("::ffff:10.1.200.1").as_deref(), Some("same"));
        assert_eq!(name("2001:db8::1").as_deref(), Some("wide"));
        assert_eq!(name("11.0.0.1"), None);
    }

    #[test]
    fn defaults() {
        let c = config("");
        assert_eq!(c.sip.listen.to_string(), "127.0.0.1:5060");
        assert_eq!(c.sip.advertise, ip("127.0.0.1"));
        assert_eq!(c.sip.t1, Duration::from_millis(500));
        assert_eq!(c.sip.t2, Duration::from_millis(4000));
        assert_eq!(c.sip.t4, Duration::from_millis(5000));
        assert_eq!(c.sip.max_message_bytes, 65535);
        assert_eq!(c.sip.tcp_max_connections, 1024);
        assert_eq!(c.sip.tcp_idle_timeout, Duration::from_secs(300));
        assert_eq!(c.sip.ring_timeout, Duration::from_secs(120));
        assert_eq!(c.sip.unknown_source, UnknownSource::Reject);
        assert_eq!(c.sip.user_agent, "Hotline-Gateway");
        assert_eq!(c.api.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.node.data_dir, PathBuf::from("data"));
        assert_eq!(c.node.shutdown_grace, Duration::from_secs(30));
        assert_eq!(c.origin, "t.toml");
        assert!(c.webhooks.is_none());
        assert!(c.trunks.is_empty() && c.routes.is_empty());
    }

    /// Text parsed after [`BASE`]: a tenant "city", a queue "q" (target
    /// "a") and a flow "intake" queueing to it.
    const CENTRE: &str = "[[tenants]]\nname = \"city\"\n\
        [[queues]]\nname = \"q\"\ntenant = \"city\"\ntarget = \"a\"\n\
        [[flows]]\nname = \"intake\"\nentry = \"q\"\n\
        [[flows.nodes]]\nname = \"q\"\nkind = \"queue\"\nqueue = \"q\"\n";

    /// `[[lines]]` table for `number` of tenant "city" with `mode` and `keys`.
    fn line_table(number: &str, mode: &str, keys: &str) -> String {
        format!("[[lines]]\nnumber = \"{number}\"\ntenant = \"city\"\nmode = \"{mode}\"\n{keys}\n")
    }

    /// `extra` after [`BASE`] is refused: the error names `key` (and a
    /// line), says `message` and helps with `help`.
    fn refused(extra: &str, key: &str, message: &str, help: &str) -> ConfigError {
        let text = format!("{BASE}{extra}");
        let e = match parse(&text, "t.toml") {
            Ok(_) => panic!("should be refused:\n{text}"),
            Err(e) => e,
        };
        assert_eq!(e.key.as_deref(), Some(key), "{e}");
        assert!(e.line.is_some(), "{e}");
        assert!(e.message.contains(message), "{e}\nshould say: {message}");
        assert!(
            e.help
                .as_deref()
                .is_some_and(|h| !h.is_empty() && h.contains(help)),
            "{e}\nhelp should say: {help}"
        );
        e
    }

    #[test]
    fn lines_queues_and_tenants_read_as_written() {
        let c = config(&format!(
            "{CENTRE}{}{}",
            line_table(
                "12345",
                "main",
                "flow = \"intake\"\ntopic = \"all\"\nskills = [\"s1\", \"s2\"]\n\
                 priority = 3\nsurvey = false\nclosed_flow = \"intake\""
            ),
            line_table("12319", "merged", "")
        ));
        let main = &c.lines[0];
        assert_eq!(main.mode, LineMode::Main);
        assert_eq!(main.flow.name, "intake");
        assert_eq!(main.topic.as_deref(), Some("all"));
        assert_eq!(main.skills, ["s1", "s2"]);
        assert_eq!((main.priority, main.survey), (3, false));
        assert_eq!(
            main.closed_flow.as_ref().map(|f| f.name.as_str()),
            Some("intake")
        );
        // A merged line without `into` continues into its tenant's one
        // main line, after the default announcement.
        let merged = &c.lines[1];
        assert_eq!(merged.into.as_deref(), Some("12345"));
        assert_eq!(merged.flow.name, "12319+intake");
        assert_eq!(
            merged.flow.nodes.first().and_then(|n| n.kind.prompt()),
            Some("merged_line")
        );
        assert_eq!((merged.priority, merged.survey), (0, true));
        assert!(merged.skills.is_empty() && merged.closed_flow.is_none());
        let t = &c.tenants[0];
        assert_eq!(
            (t.utc_offset_minutes, &t.hours, t.overflow_to_parent),
            (480, &Schedule::Always, false)
        );
        assert_eq!(c.queue("q").and_then(|q| q.target.as_deref()), Some("a"));
        assert_eq!(c.survey.timeout, Duration::from_secs(10));
        assert_eq!(
            (c.survey.retries, c.blocklist.prompt.as_str()),
            (1, "blocked")
        );
        assert!(c.blocklist.numbers.is_empty());
    }

    #[test]
    fn utc_offset_is_parsed_and_checked() {
        let offset = |o: &str| {
            let c = config(&format!(
                "[[tenants]]\nname = \"t\"\nutc_offset = \"{o}\"\n"
            ));
            c.tenants[0].utc_offset_minutes
        };
        assert_eq!(offset("+08:00"), 480);
        assert_eq!(offset("-05:30"), -330);
        assert_eq!(offset("+14:00"), 840);
        for bad in ["+8", "08:00", "+14:30", "+05:60", "UTC+8"] {
            refused(
                &format!("[[tenants]]\nname = \"t\"\nutc_offset = \"{bad}\"\n"),
                "tenants[0].utc_offset",
                &format!("invalid UTC offset \"{bad}\""),
                "\"+08:00\"",
            );
        }
    }

    #[test]
    fn unknown_tenant_is_refused() {
        refused(
            &format!("{CENTRE}[[lines]]\nnumber = \"12345\"\ntenant = \"town\"\nmode = \"main\"\nflow = \"intake\"\n"),
            "lines[0].tenant",
            "unknown tenant \"town\"",
            "known tenants: city",
        );
        refused(
            "[[tenants]]\nname = \"city\"\n[[queues]]\nname = \"q\"\ntenant = \"cty\"\ntarget = \"a\"\n",
            "queues[0].tenant",
            "unknown tenant \"cty\"",
            "did you mean \"city\"?",
        );
        refused(
            "[[tenants]]\nname = \"city\"\nparent = \"province\"\n",
            "tenants[0].parent",
            "unknown tenant \"province\"",
            "[[tenants]]",
        );
        // Lines without any tenant.
        refused(
            "[[lines]]\nnumber = \"12345\"\nmode = \"main\"\n",
            "lines[0].tenant",
            "no [[tenants]]",
            "add a tenant",
        );
    }

    #[test]
    fn parent_cycle_is_refused_naming_the_cycle() {
        refused(
            "[[tenants]]\nname = \"top\"\n\
             [[tenants]]\nname = \"a\"\nparent = \"c\"\n\
             [[tenants]]\nname = \"b\"\nparent = \"a\"\n\
             [[tenants]]\nname = \"c\"\nparent = \"b\"\n",
            "tenants[1].parent",
            "parent cycle: a -> c -> b -> a",
            "tree",
        );
        refused(
            "[[tenants]]\nname = \"a\"\nparent = \"a\"\n",
            "tenants[0].parent",
            "its own parent",
            "top-level",
        );
        refused(
            "[[tenants]]\nname = \"a\"\noverflow_to_parent = true\n",
            "tenants[0].overflow_to_parent",
            "has no parent",
            "parent = ",
        );
        // A tree is fine, parents before or after their children.
        let c = config(
            "[[tenants]]\nname = \"county\"\nparent = \"city\"\noverflow_to_parent = true\n\
             [[tenants]]\nname = \"city\"\nparent = \"province\"\n\
             [[tenants]]\nname = \"province\"\n",
        );
        assert_eq!(c.tenants[0].parent.as_deref(), Some("city"));
        assert!(c.tenants[0].overflow_to_parent);
    }

    #[test]
    fn line_number_that_is_a_route_number_is_refused() {
        let e = refused(
            &format!(
                "[[routes]]\nnumber = \"12345\"\ntarget = \"a\"\n{CENTRE}{}",
                line_table("12345", "main", "flow = \"intake\"")
            ),
            "lines[0].number",
            "line number \"12345\" is also the number of routes[0].number (line",
            "not both",
        );
        assert!(e.to_string().contains("lines[0].number"), "{e}");
        refused(
            &format!(
                "{CENTRE}{}{}",
                line_table("12345", "main", "flow = \"intake\""),
                line_table("12345", "dual", "flow = \"intake\"")
            ),
            "lines[1].number",
            "duplicate line number \"12345\"; first defined at lines[0].number",
            "remove one",
        );
        refused(
            &format!("{CENTRE}{}", line_table("*", "main", "flow = \"intake\"")),
            "lines[0].number",
            "not a line number",
            "default [[routes]]",
        );
        refused(
            &format!(
                "{CENTRE}{}",
                line_table("123-45", "main", "flow = \"intake\"")
            ),
            "lines[0].number",
            "invalid number \"123-45\"",
            "Request-URI",
        );
    }

    #[test]
    fn a_trunk_rule_that_rewrites_a_line_number_is_refused() {
        refused(
            &format!(
                "[[trunks]]\nname = \"c\"\nsources = [\"192.0.2.0/24\"]\n\
                 numbers = [{{ prefix = \"123\", replace = \"\" }}]\n{CENTRE}{}",
                line_table("12345", "main", "flow = \"intake\"")
            ),
            "trunks[0].numbers[0]",
            "turns line number \"12345\" into \"45\"",
            "never a line's number itself",
        );
    }

    #[test]
    fn merged_line_needs_one_main_line() {
        refused(
            &format!("{CENTRE}{}", line_table("12319", "merged", "")),
            "lines[0].into",
            "tenant \"city\" has no main line",
            "mode = \"main\"",
        );
        refused(
            &format!(
                "{CENTRE}{}{}{}",
                line_table("12345", "main", "flow = \"intake\""),
                line_table("96345", "main", "flow = \"intake\""),
                line_table("12319", "merged", "")
            ),
            "lines[2].into",
            "several main lines (12345, 96345)",
            "into = \"12345\"",
        );
        refused(
            &format!(
                "{CENTRE}{}{}",
                line_table("12320", "dual", "flow = \"intake\""),
                line_table("12319", "merged", "into = \"12320\"")
            ),
            "lines[1].into",
            "line \"12320\" is a dual line",
            "mode = \"main\"",
        );
        refused(
            &format!(
                "{CENTRE}{}{}",
                line_table("12345", "main", "flow = \"intake\""),
                line_table("12319", "merged", "into = \"12346\"")
            ),
            "lines[1].into",
            "no line has number \"12346\"",
            "main lines: 12345",
        );
        // Keys of the wrong mode.
        refused(
            &format!(
                "{CENTRE}{}{}",
                line_table("12345", "main", "flow = \"intake\""),
                line_table("12319", "merged", "flow = \"intake\"")
            ),
            "lines[1].flow",
            "line \"12319\" is merged",
            "into = ",
        );
        refused(
            &format!(
                "{CENTRE}{}",
                line_table(
                    "12345",
                    "main",
                    "flow = \"intake\"\nannouncement = \"greeting\""
                )
            ),
            "lines[0].announcement",
            "`announcement` applies only to a merged line",
            "mode = \"merged\"",
        );
        refused(
            &format!("{CENTRE}{}", line_table("12345", "main", "")),
            "lines[0].flow",
            "missing key",
            "known flows: intake",
        );
        refused(
            &format!("{CENTRE}{}", line_table("12345", "primary", "")),
            "lines[0].mode",
            "unknown mode \"primary\"; expected one of: main, dual, dual_retained, merged",
            "\"merged\"",
        );
        refused(
            &format!(
                "{CENTRE}{}{}",
                line_table("12345", "main", "flow = \"intake\""),
                line_table("12319", "merged", "announcement = \"moved\"")
            ),
            "lines[1].announcement",
            "unknown prompt \"moved\"",
            "[prompts] dir",
        );
        refused(
            &format!(
                "{CENTRE}{}",
                line_table("12345", "main", "flow = \"intake\"\npriority = 10")
            ),
            "lines[0].priority",
            "10 is out of range; expected 0 to 9",
            "the default is 0",
        );
    }

    #[test]
    fn closed_flow_is_required_when_the_tenant_keeps_hours() {
        let centre = CENTRE.replace(
            "name = \"city\"\n",
            "name = \"city\"\nhours = [\"Mon-Fri 08:30-17:30\"]\n",
        );
        refused(
            &format!(
                "{centre}{}",
                line_table("12345", "main", "flow = \"intake\"")
            ),
            "lines[0].closed_flow",
            "tenant \"city\" keeps hours at tenants[0].hours (line",
            "closed_flow = ",
        );
        let c = config(&format!(
            "{centre}{}",
            line_table(
                "12345",
                "main",
                "flow = \"intake\"\nclosed_flow = \"intake\""
            )
        ));
        assert!(matches!(c.tenants[0].hours, Schedule::Weekly(_)));
        refused(
            &format!(
                "{centre}{}",
                line_table(
                    "12345",
                    "main",
                    "flow = \"intake\"\nclosed_flow = \"closed\""
                )
            ),
            "lines[0].closed_flow",
            "unknown flow \"closed\"",
            "known flows: intake",
        );
        refused(
            "[[tenants]]\nname = \"city\"\nhours = [\"Mon-Fri 8-17\"]\n",
            "tenants[0].hours[0]",
            "invalid window",
            "7x24",
        );
    }

    #[test]
    fn unknown_queue_in_a_flow_is_refused() {
        let e = refused(
            &CENTRE.replace("queue = \"q\"\n", "queue = \"qq\"\n"),
            "flows[0].nodes[0].queue",
            "flow \"intake\", node \"q\": unknown queue \"qq\"",
            "did you mean \"q\"? or define it in a [[queues]] table (known queues: q)",
        );
        assert!(e.line.is_some());
        refused(
            "[[tenants]]\nname = \"city\"\n[[queues]]\nname = \"q\"\ntenant = \"city\"\ntarget = \"c\"\n",
            "queues[0].target",
            "unknown target \"c\"",
            "define it in a [[targets]] table",
        );
    }

    #[test]
    fn trunk_credentials_and_digest_algorithms_are_checked() {
        let trunk =
            |keys: &str| format!("[[trunks]]\nname = \"t\"\nsources = [\"10.0.0.0/8\"]\n{keys}\n");
        refused(
            &trunk("username = \"carrier-a\""),
            "trunks[0].password",
            "needs a password",
            "at least 12",
        );
        refused(
            &trunk("password = \"0123456789abcdef\""),
            "trunks[0].username",
            "needs a username",
            "username = ",
        );
        refused(
            &trunk("username = \"a b\"\npassword = \"0123456789abcdef\""),
            "trunks[0].username",
            "invalid username",
            "letters, digits",
        );
        refused(
            &trunk("username = \"carrier-a\"\npassword = \"short\""),
            "trunks[0].password",
            "password too short",
            "openssl rand",
        );
        refused(
            &format!(
                "{}[[trunks]]\nname = \"u\"\nsources = [\"10.0.0.0/8\"]\nusername = \"carrier-a\"\npassword = \"fedcba9876543210\"\n",
                trunk("username = \"carrier-a\"\npassword = \"0123456789abcdef\"")
            ),
            "trunks[1].username",
            "already used",
            "its own username",
        );
        let c = config(&trunk(
            "username = \"carrier-a\"\npassword = \"0123456789abcdef\"",
        ));
        assert_eq!(
            c.trunks[0].auth.as_ref().map(|a| a.username.as_str()),
            Some("carrier-a")
        );
        refused(
            "[sip]\ndigest_algorithms = []\n",
            "sip.digest_algorithms",
            "empty list",
            "MD5",
        );
        refused(
            "[sip]\ndigest_algorithms = [\"SHA-512\"]\n",
            "sip.digest_algorithms[0]",
            "unknown algorithm",
            "SHA-256",
        );
        refused(
            "[sip]\ndigest_algorithms = [\"MD5\", \"md5\"]\n",
            "sip.digest_algorithms[1]",
            "listed twice",
            "order",
        );
        let c = config("[sip]\ndigest_algorithms = [\"MD5\"]\n");
        assert_eq!(
            c.sip.digest_algorithms,
            [crate::sip::digest::Algorithm::Md5]
        );
        let c = config("");
        assert_eq!(
            c.sip.digest_algorithms,
            [
                crate::sip::digest::Algorithm::Sha256,
                crate::sip::digest::Algorithm::Md5
            ]
        );
    }

    #[test]
    fn acd_queues_agents_and_registrar_are_checked() {
        const CITY: &str = "[[tenants]]\nname = \"city\"\n";
        let q = |keys: &str| format!("{CITY}[[queues]]\nname = \"q\"\ntenant = \"city\"\n{keys}\n");
        refused(
            &q("target = \"a\"\nwrap_up_secs = 5"),
            "queues[0].wrap_up_secs",
            "delivers its calls to a target",
            "remove target",
        );
        refused(
            &q("skills = { general = 6 }"),
            "queues[0].skills.general",
            "minimum level 6 is out of range",
            "levels go from 1",
        );
        refused(
            &q("strategy = \"round_robin\""),
            "queues[0].strategy",
            "unknown strategy",
            "longest_idle",
        );
        refused(
            &q("[[queues.escalation]]\nafter_secs = 10\nmin_level = 1\ndrop_skill = \"x\""),
            "queues[0].escalation[0]",
            "exactly one thing",
            "drop_skill",
        );
        refused(
            &q("[[queues.escalation]]\nafter_secs = 20\nmin_level = 1\n[[queues.escalation]]\nafter_secs = 10\nmin_level = 2"),
            "queues[0].escalation[1].after_secs",
            "comes before",
            "in order",
        );
        refused(
            &q("[[queues.escalation]]\nafter_secs = 20\noverflow = \"q\""),
            "queues[0].escalation[0].overflow",
            "unknown queue \"q\"",
            "another queue",
        );
        // Overflow to another tenant's queue only to a parent that takes it.
        let two = format!(
            "{CITY}[[tenants]]\nname = \"county\"\nparent = \"city\"\n\
             [[queues]]\nname = \"hub\"\ntenant = \"city\"\n\
             [[queues]]\nname = \"local\"\ntenant = \"county\"\n\
             [[queues.escalation]]\nafter_secs = 30\noverflow = \"hub\"\n"
        );
        refused(
            &two,
            "queues[1].escalation[0].overflow",
            "belongs to tenant \"city\"",
            "overflow_to_parent = true",
        );
        let ok = two.replace(
            "parent = \"city\"\n",
            "parent = \"city\"\noverflow_to_parent = true\n",
        );
        let c = config(&ok);
        assert_eq!(
            c.queues[1].escalation[0].step,
            EscalationStep::Overflow("hub".to_owned())
        );
        let a = |keys: &str| format!("{CITY}[[agents]]\n{keys}\n");
        refused(
            &a("name = \"x\""),
            "agents[0].id",
            "missing key",
            "id = \"1001\"",
        );
        refused(
            &a("id = \"*21\"\npassword = \"secret-1\"\ntenant = \"city\""),
            "agents[0].id",
            "invalid agent id",
            "letters, digits",
        );
        refused(
            &a("id = \"1001\"\ntenant = \"city\""),
            "agents[0].password",
            "missing key",
            "at least 8",
        );
        refused(
            &a("id = \"1001\"\npassword = \"short\"\ntenant = \"city\""),
            "agents[0].password",
            "too short",
            "at least 8",
        );
        refused(
            &a("id = \"1001\"\npassword = \"secret-1\"\ntenant = \"town\""),
            "agents[0].tenant",
            "unknown tenant",
            "city",
        );
        refused(
            &a("id = \"1001\"\npassword = \"secret-1\"\ntenant = \"city\"\nskills = { general = 0 }"),
            "agents[0].skills.general",
            "level 0 is out of range",
            "levels go from 1",
        );
        refused(
            &a("id = \"1001\"\npassword = \"secret-1\"\ntenant = \"city\"\nremote_number = \"13800138000\""),
            "agents[0].remote_number",
            "without remote",
            "set remote",
        );
        refused(
            &format!(
                "{}[[agents]]\nid = \"1001\"\npassword = \"secret-2\"\ntenant = \"city\"\n",
                a("id = \"1001\"\npassword = \"secret-1\"\ntenant = \"city\"")
            ),
            "agents[1].id",
            "duplicate agent id",
            "its own id",
        );
        refused(
            "[acd]\nnot_ready_reasons = [\"no_answer\"]\n",
            "acd.not_ready_reasons[0]",
            "sets itself",
            "choose another",
        );
        refused(
            "[acd]\nnot_ready_reasons = []\n",
            "acd.not_ready_reasons",
            "no reasons",
            "at least one",
        );
        refused(
            "[registrar]\nmin_expires_secs = 600\nmax_expires_secs = 300\n",
            "registrar.max_expires_secs",
            "below min_expires_secs",
            "at least min_expires_secs",
        );
        refused(
            "[registrar]\nrealm = \"a b\"\n",
            "registrar.realm",
            "invalid realm",
            "letters",
        );
        // Defaults.
        let c = config(&format!(
            "{CITY}[[queues]]\nname = \"q\"\ntenant = \"city\"\n"
        ));
        let qd = &c.queues[0];
        assert_eq!(qd.target, None);
        assert_eq!(qd.ring_timeout, Duration::from_secs(15));
        assert_eq!(qd.wrap_up, Duration::from_secs(10));
        assert_eq!(
            (qd.music.as_str(), qd.treatment.as_str()),
            ("hold_music", "queue_full")
        );
        assert_eq!(
            c.acd.not_ready_reasons,
            ["break", "meeting", "training", "lunch"]
        );
        assert_eq!(c.registrar.realm, c.node.name);
        assert_eq!(c.registrar.lockout_failures, 5);
    }

    /// A fresh directory under the temp dir.
    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hotline-config-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("{}: {e}", dir.display());
        }
        dir
    }

    #[test]
    fn a_prompts_dir_adds_prompts_and_flows_may_only_use_known_ones() {
        let dir = temp_dir("prompts");
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts/greeting.wav");
        if let Err(e) = std::fs::copy(&shipped, dir.join("press-one.wav")) {
            panic!("{e}");
        }
        let flow = |prompt: &str| {
            format!(
                "[prompts]\ndir = {:?}\n\
                 [[flows]]\nname = \"f\"\nentry = \"p\"\n\
                 [[flows.nodes]]\nname = \"p\"\nkind = \"play\"\nprompt = \"{prompt}\"\nnext = \"h\"\n\
                 [[flows.nodes]]\nname = \"h\"\nkind = \"hangup\"\n",
                dir.display().to_string()
            )
        };
        let c = config(&flow("press-one"));
        assert!(c.prompts.get("press-one").is_some() && c.prompts.get("greeting").is_some());
        refused(
            &flow("press-two"),
            "flows[0].nodes[0].prompt",
            "unknown prompt \"press-two\"",
            "did you mean \"press-one\"?",
        );
        // The survey and the block list check theirs against the same set.
        config(&format!(
            "[prompts]\ndir = {:?}\n[survey]\nprompt = \"press-one\"\n",
            dir.display().to_string()
        ));
        refused(
            "[blocklist]\nprompt = \"press-one\"\n",
            "blocklist.prompt",
            "unknown prompt \"press-one\"",
            "known prompts: agent_logged_in",
        );
        // A relative dir is relative to the config file.
        let file = dir.join("hotline.toml");
        let text = format!("{BASE}[prompts]\ndir = \".\"\n[survey]\nthanks = \"press-one\"\n");
        if let Err(e) = std::fs::write(&file, text) {
            panic!("{e}");
        }
        match load(&file) {
            Ok(c) => assert_eq!(c.survey.thanks, "press-one"),
            Err(e) => panic!("{e}"),
        }
        // A directory that is not there names the key and the directory.
        let missing = dir.join("nope");
        let e = refused(
            &format!("[prompts]\ndir = {:?}\n", missing.display().to_string()),
            "prompts.dir",
            "cannot read the directory",
            "relative to the config file's directory",
        );
        assert!(e.message.contains("nope"), "{e}");
        std::fs::write(dir.join("bad name.wav"), b"RIFF").ok();
        let e = refused(
            &format!("[prompts]\ndir = {:?}\n", dir.display().to_string()),
            "prompts.dir",
            "bad name",
            "rename the file",
        );
        assert!(e.message.contains("bad name.wav"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn survey_keys_read_and_checked() {
        let c = config("[survey]\nprompt = \"greeting\"\nthanks = \"blocked\"\ntimeout_secs = 60\nretries = 0\n");
        assert_eq!(
            c.survey,
            Survey {
                prompt: "greeting".into(),
                thanks: "blocked".into(),
                timeout: Duration::from_secs(60),
                retries: 0,
            }
        );
        refused(
            "[survey]\ntimeout_secs = 0\n",
            "survey.timeout_secs",
            "out of range",
            "the default is 10",
        );
        refused(
            "[survey]\nretries = 10\n",
            "survey.retries",
            "out of range",
            "the default is 1",
        );
        refused(
            "[survey]\nthanks = \"thanks\"\n",
            "survey.thanks",
            "unknown prompt \"thanks\"",
            "thank_you",
        );
    }

    #[test]
    fn blocklist_numbers_are_canonical_and_unique() {
        let c = config(
            "[blocklist]\nnumbers = [\"+86 138-0013-8000\", \"008613900139000\", \"110\", \"+1 202 555 0100\"]\n",
        );
        assert_eq!(
            c.blocklist.numbers,
            ["13800138000", "13900139000", "110", "+12025550100"]
        );
        assert!(c.blocklist.contains("13800138000"));
        assert!(c.blocklist.contains("+8613900139000"));
        let e = refused(
            "[blocklist]\nnumbers = [\"13800138000\",\n  \"+86 (138) 0013 8000\"]\n",
            "blocklist.numbers[1]",
            "\"+86 (138) 0013 8000\" is the same caller as \"13800138000\" at \
             blocklist.numbers[0] (line 10): both are 13800138000",
            "list each caller once",
        );
        assert_eq!(e.line, Some(11), "{e}");
        for bad in ["12", "+86", "1380013800x", "138*0013", ""] {
            refused(
                &format!("[blocklist]\nnumbers = [\"{bad}\"]\n"),
                "blocklist.numbers[0]",
                "invalid caller number",
                "13800138000",
            );
        }
    }
}
