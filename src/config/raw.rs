//! The file as written: serde structs mirroring the TOML, every table
//! `deny_unknown_fields`, every key optional (defaults and requiredness are
//! decided in `validate.rs`, where the error can say why).
//!
//! Field order is the order `unknown key; expected one of: ...` lists them,
//! so keep it the order of docs/config.md.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawConfig {
    pub node: Option<RawNode>,
    pub sip: Option<RawSip>,
    pub api: Option<RawApi>,
    pub media: Option<RawMedia>,
    pub webhooks: Option<RawWebhooks>,
    #[serde(default)]
    pub trunks: Vec<RawTrunk>,
    #[serde(default)]
    pub targets: Vec<RawTarget>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    #[serde(default)]
    pub flows: Vec<RawFlow>,
    pub prompts: Option<RawPrompts>,
    #[serde(default)]
    pub tenants: Vec<RawTenant>,
    #[serde(default)]
    pub lines: Vec<RawLine>,
    #[serde(default)]
    pub queues: Vec<RawQueue>,
    pub acd: Option<RawAcd>,
    #[serde(default)]
    pub agents: Vec<RawAgent>,
    pub registrar: Option<RawRegistrar>,
    pub survey: Option<RawSurvey>,
    pub blocklist: Option<RawBlocklist>,
}

/// `[node]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([node])")]
pub(super) struct RawNode {
    pub name: Option<String>,
    pub data_dir: Option<String>,
    #[serde(default, deserialize_with = "seconds")]
    pub shutdown_grace_secs: Option<u64>,
}

/// `[sip]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([sip])")]
pub(super) struct RawSip {
    pub listen: Option<String>,
    pub advertise: Option<String>,
    #[serde(default, deserialize_with = "millis")]
    pub t1_ms: Option<u64>,
    #[serde(default, deserialize_with = "millis")]
    pub t2_ms: Option<u64>,
    #[serde(default, deserialize_with = "millis")]
    pub t4_ms: Option<u64>,
    #[serde(default, deserialize_with = "bytes")]
    pub max_message_bytes: Option<u64>,
    #[serde(default, deserialize_with = "bytes")]
    pub udp_buffer_bytes: Option<u64>,
    #[serde(default, deserialize_with = "count")]
    pub tcp_max_connections: Option<u64>,
    #[serde(default, deserialize_with = "seconds")]
    pub tcp_idle_timeout_secs: Option<u64>,
    #[serde(default, deserialize_with = "seconds")]
    pub ring_timeout_secs: Option<u64>,
    pub unknown_source: Option<String>,
    pub user_agent: Option<String>,
    pub digest_algorithms: Option<Vec<String>>,
}

/// `[api]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([api])")]
pub(super) struct RawApi {
    pub listen: Option<String>,
    pub tokens: Option<Vec<String>>,
}

/// `[media]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([media])")]
pub(super) struct RawMedia {
    pub listen: Option<String>,
    pub advertise: Option<String>,
    #[serde(default, deserialize_with = "count")]
    pub port_min: Option<u64>,
    #[serde(default, deserialize_with = "count")]
    pub port_max: Option<u64>,
    #[serde(default, deserialize_with = "count")]
    pub shards: Option<u64>,
    #[serde(default, deserialize_with = "seconds")]
    pub rtp_timeout_secs: Option<u64>,
    pub latching: Option<String>,
    pub inband_dtmf: Option<bool>,
    pub ringback: Option<bool>,
    pub codecs: Option<Vec<String>>,
    #[serde(default, deserialize_with = "bytes")]
    pub udp_buffer_bytes: Option<u64>,
}

/// `[webhooks]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([webhooks])")]
pub(super) struct RawWebhooks {
    pub url: Option<String>,
    pub urls: Option<Vec<String>>,
    pub secret: Option<String>,
    #[serde(default, deserialize_with = "seconds")]
    pub timeout_secs: Option<u64>,
    #[serde(default, deserialize_with = "hours")]
    pub retry_for_hours: Option<u64>,
    #[serde(default, deserialize_with = "seconds")]
    pub max_backoff_secs: Option<u64>,
    #[serde(default, deserialize_with = "count")]
    pub concurrency: Option<u64>,
    #[serde(default, deserialize_with = "days")]
    pub retention_days: Option<u64>,
}

/// One `[[trunks]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([[trunks]])")]
pub(super) struct RawTrunk {
    pub name: Option<String>,
    pub sources: Option<Vec<String>>,
    #[serde(default, deserialize_with = "count")]
    pub max_calls: Option<u64>,
    #[serde(default, deserialize_with = "count")]
    pub max_cps: Option<u64>,
    pub numbers: Option<Vec<RawNumberRule>>,
    pub outbound: Option<String>,
    #[serde(default, deserialize_with = "seconds")]
    pub keepalive_secs: Option<u64>,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// One rule of a trunk's `numbers` list.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table ({ prefix = \"+86\", replace = \"0\" })"
)]
pub(super) struct RawNumberRule {
    pub prefix: Option<String>,
    pub replace: Option<String>,
}

/// One `[[targets]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([[targets]])")]
pub(super) struct RawTarget {
    pub name: Option<String>,
    pub address: Option<String>,
    pub transport: Option<String>,
}

/// One `[[routes]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([[routes]])")]
pub(super) struct RawRoute {
    pub number: Option<String>,
    pub target: Option<String>,
}

/// One `[[flows]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([[flows]])")]
pub(super) struct RawFlow {
    pub name: Option<String>,
    pub entry: Option<String>,
    #[serde(default)]
    pub nodes: Vec<RawFlowNode>,
}

/// One `[[flows.nodes]]` table: every kind's keys, optional here; which
/// apply to which `kind` is checked in `validate.rs`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([[flows.nodes]])")]
pub(super) struct RawFlowNode {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub prompt: Option<String>,
    pub barge_in: Option<bool>,
    pub next: Option<String>,
    pub options: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "seconds")]
    pub timeout_secs: Option<u64>,
    pub timeout: Option<String>,
    pub invalid: Option<String>,
    #[serde(default, deserialize_with = "count")]
    pub retries: Option<u64>,
    #[serde(default, deserialize_with = "count")]
    pub min: Option<u64>,
    #[serde(default, deserialize_with = "count")]
    pub max: Option<u64>,
    pub terminator: Option<String>,
    #[serde(default, deserialize_with = "seconds")]
    pub first_digit_timeout_secs: Option<u64>,
    #[serde(default, deserialize_with = "seconds")]
    pub inter_digit_timeout_secs: Option<u64>,
    pub key: Option<String>,
    pub value: Option<String>,
    pub fail: Option<String>,
    pub queue: Option<String>,
    pub skills: Option<Vec<String>>,
    #[serde(default, deserialize_with = "count")]
    pub priority: Option<u64>,
    pub target: Option<String>,
    pub schedule: Option<Vec<String>>,
    pub open: Option<String>,
    pub closed: Option<String>,
    pub cause: Option<String>,
}

impl RawFlowNode {
    /// The keys this table sets, in schema order.
    pub fn present(&self) -> Vec<&'static str> {
        let keys = [
            ("prompt", self.prompt.is_some()),
            ("barge_in", self.barge_in.is_some()),
            ("next", self.next.is_some()),
            ("options", self.options.is_some()),
            ("timeout_secs", self.timeout_secs.is_some()),
            ("timeout", self.timeout.is_some()),
            ("invalid", self.invalid.is_some()),
            ("retries", self.retries.is_some()),
            ("min", self.min.is_some()),
            ("max", self.max.is_some()),
            ("terminator", self.terminator.is_some()),
            (
                "first_digit_timeout_secs",
                self.first_digit_timeout_secs.is_some(),
            ),
            (
                "inter_digit_timeout_secs",
                self.inter_digit_timeout_secs.is_some(),
            ),
            ("key", self.key.is_some()),
            ("value", self.value.is_some()),
            ("fail", self.fail.is_some()),
            ("queue", self.queue.is_some()),
            ("skills", self.skills.is_some()),
            ("priority", self.priority.is_some()),
            ("target", self.target.is_some()),
            ("schedule", self.schedule.is_some()),
            ("open", self.open.is_some()),
            ("closed", self.closed.is_some()),
            ("cause", self.cause.is_some()),
        ];
        keys.iter()
            .filter(|(_, set)| *set)
            .map(|(k, _)| *k)
            .collect()
    }
}

/// `[prompts]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([prompts])")]
pub(super) struct RawPrompts {
    pub dir: Option<String>,
}

/// One `[[tenants]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([[tenants]])")]
pub(super) struct RawTenant {
    pub name: Option<String>,
    pub parent: Option<String>,
    pub utc_offset: Option<String>,
    pub hours: Option<Vec<String>>,
    pub overflow_to_parent: Option<bool>,
}

/// One `[[lines]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([[lines]])")]
pub(super) struct RawLine {
    pub number: Option<String>,
    pub tenant: Option<String>,
    pub mode: Option<String>,
    pub flow: Option<String>,
    pub into: Option<String>,
    pub announcement: Option<String>,
    pub topic: Option<String>,
    pub skills: Option<Vec<String>>,
    #[serde(default, deserialize_with = "count")]
    pub priority: Option<u64>,
    pub survey: Option<bool>,
    pub closed_flow: Option<String>,
}

/// One `[[queues]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([[queues]])")]
pub(super) struct RawQueue {
    pub name: Option<String>,
    pub tenant: Option<String>,
    pub target: Option<String>,
    pub skills: Option<BTreeMap<String, i64>>,
    pub groups: Option<Vec<String>>,
    pub strategy: Option<String>,
    #[serde(default, deserialize_with = "seconds")]
    pub ring_timeout_secs: Option<u64>,
    #[serde(default, deserialize_with = "seconds")]
    pub wrap_up_secs: Option<u64>,
    #[serde(default, deserialize_with = "seconds")]
    pub max_wait_secs: Option<u64>,
    #[serde(default, deserialize_with = "count")]
    pub max_length: Option<u64>,
    pub treatment: Option<String>,
    pub music: Option<String>,
    #[serde(default, deserialize_with = "seconds")]
    pub comfort_every_secs: Option<u64>,
    pub comfort_prompt: Option<String>,
    pub announce_position: Option<bool>,
    #[serde(default, deserialize_with = "seconds")]
    pub early_escalation_secs: Option<u64>,
    #[serde(default)]
    pub escalation: Vec<RawEscalation>,
}

/// One `[[queues.escalation]]` step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([[queues.escalation]])")]
pub(super) struct RawEscalation {
    #[serde(default, deserialize_with = "seconds")]
    pub after_secs: Option<u64>,
    pub drop_skill: Option<String>,
    #[serde(default, deserialize_with = "count")]
    pub min_level: Option<u64>,
    pub overflow: Option<String>,
}

/// `[acd]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([acd])")]
pub(super) struct RawAcd {
    pub not_ready_reasons: Option<Vec<String>>,
    #[serde(default, deserialize_with = "seconds")]
    pub service_window_secs: Option<u64>,
}

/// One `[[agents]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([[agents]])")]
pub(super) struct RawAgent {
    pub id: Option<String>,
    pub name: Option<String>,
    pub password: Option<String>,
    pub tenant: Option<String>,
    pub skills: Option<BTreeMap<String, i64>>,
    pub groups: Option<Vec<String>>,
    pub remote: Option<String>,
    pub remote_number: Option<String>,
}

/// `[registrar]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([registrar])")]
pub(super) struct RawRegistrar {
    pub realm: Option<String>,
    #[serde(default, deserialize_with = "seconds")]
    pub min_expires_secs: Option<u64>,
    #[serde(default, deserialize_with = "seconds")]
    pub max_expires_secs: Option<u64>,
    #[serde(default, deserialize_with = "seconds")]
    pub default_expires_secs: Option<u64>,
    #[serde(default, deserialize_with = "count")]
    pub lockout_failures: Option<u64>,
    #[serde(default, deserialize_with = "seconds")]
    pub lockout_window_secs: Option<u64>,
    #[serde(default, deserialize_with = "seconds")]
    pub lockout_secs: Option<u64>,
}

/// `[survey]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([survey])")]
pub(super) struct RawSurvey {
    pub prompt: Option<String>,
    pub thanks: Option<String>,
    #[serde(default, deserialize_with = "seconds")]
    pub timeout_secs: Option<u64>,
    #[serde(default, deserialize_with = "count")]
    pub retries: Option<u64>,
}

/// `[blocklist]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table ([blocklist])")]
pub(super) struct RawBlocklist {
    pub numbers: Option<Vec<String>>,
    pub prompt: Option<String>,
}

/// A non-negative integer whose `expecting` names its unit, so a wrong type
/// reads "expected an integer (milliseconds), found string "500"".
struct Unsigned(&'static str);

impl Visitor<'_> for Unsigned {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| {
            E::custom(format_args!(
                "expected {}, found negative number {v}",
                self.0
            ))
        })
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| {
            E::custom(format_args!(
                "expected {}, found {v}, which is out of range",
                self.0
            ))
        })
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| {
            E::custom(format_args!(
                "expected {}, found {v}, which is out of range",
                self.0
            ))
        })
    }
}

fn unsigned<'de, D: Deserializer<'de>>(d: D, what: &'static str) -> Result<Option<u64>, D::Error> {
    d.deserialize_u64(Unsigned(what)).map(Some)
}

fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    unsigned(d, "an integer (milliseconds)")
}

fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    unsigned(d, "an integer (seconds)")
}

fn hours<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    unsigned(d, "an integer (hours)")
}

fn days<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    unsigned(d, "an integer (days)")
}

fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    unsigned(d, "an integer (bytes)")
}

fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    unsigned(d, "an integer")
}
