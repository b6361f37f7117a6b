//! Raw file -> typed [`Config`]: defaults, ranges, names, references.
//!
//! Each check returns the first problem as a [`ConfigError`] naming the key
//! path; [`Source`] turns the path into a line.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::ivr::{self, Flow, NodeKind, PromptDirError, Prompts, Schedule};

use super::raw::{
    RawApi, RawBlocklist, RawConfig, RawFlow, RawFlowNode, RawLine, RawMedia, RawNode,
    RawNumberRule, RawPrompts, RawRoute, RawSip, RawSurvey, RawTarget, RawTenant, RawTrunk,
    RawWebhooks,
};
use super::source::{closest, Source};
use super::{
    caller_key, Api, Blocklist, Cidr, CidrError, Config, ConfigError, Latching, Line, LineMode,
    Media, Node, NumberRule, Outbound, Route, Secret, Sip, Survey, Target, TargetTransport, Tenant,
    Trunk, TrunkAuth, UnknownSource, Webhooks,
};

mod acd;

type Result<T> = std::result::Result<T, ConfigError>;

/// Longest name accepted for a node, trunk or target.
const MAX_NAME: usize = 64;
/// Longest route number accepted (E.164 needs 15; leave room for prefixes).
const MAX_NUMBER: usize = 32;
/// Longest User-Agent accepted.
const MAX_USER_AGENT: usize = 128;

pub(super) fn validate(raw: RawConfig, src: &Source<'_>) -> Result<Config> {
    let node = node(raw.node.unwrap_or_default(), src)?;
    let sip = sip(raw.sip.unwrap_or_default(), src)?;
    let api = api(&raw.api.unwrap_or_default(), &sip, src)?;
    let media = media(raw.media.unwrap_or_default(), &sip, src)?;
    let webhooks = raw.webhooks.map(|w| webhooks(w, src)).transpose()?;
    let trunks = trunks(raw.trunks, &sip, src)?;
    let targets = targets(raw.targets, &sip, src)?;
    let routes = routes(raw.routes, &targets, src)?;
    let route_numbers: Vec<(String, &str)> = routes
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.is_default())
        .map(|(k, r)| (format!("routes[{k}]"), r.number.as_str()))
        .collect();
    numbers_stay_reachable(&trunks, &route_numbers, Dialled::Route, src)?;
    let prompts = Arc::new(prompts(raw.prompts.unwrap_or_default(), src)?);
    let prompt_names = prompts.names();
    let tenants = tenants(raw.tenants, src)?;
    let queues = acd::queues(raw.queues, &tenants, &targets, &prompt_names, src)?;
    let flows = flows(raw.flows, &prompt_names, &queues, &targets, src)?;
    let known = Known {
        tenants: &tenants,
        flows: &flows,
        routes: &routes,
        prompts: &prompt_names,
    };
    let lines = lines(raw.lines, &known, src)?;
    let line_numbers: Vec<(String, &str)> = lines
        .iter()
        .enumerate()
        .map(|(k, l)| (format!("lines[{k}]"), l.number.as_str()))
        .collect();
    numbers_stay_reachable(&trunks, &line_numbers, Dialled::Line, src)?;
    let survey = survey(raw.survey.unwrap_or_default(), &prompt_names, src)?;
    let blocklist = blocklist(raw.blocklist.unwrap_or_default(), &prompt_names, src)?;
    let acd_settings = acd::acd(raw.acd.unwrap_or_default(), src)?;
    let agents = acd::agents(raw.agents, &tenants, &targets, src)?;
    let registrar = acd::registrar(raw.registrar.unwrap_or_default(), &node.name, src)?;
    Ok(Config {
        origin: src.origin().to_owned(),
        node,
        sip,
        api,
        media,
        webhooks,
        trunks,
        targets,
        routes,
        flows,
        prompts,
        tenants,
        lines,
        queues,
        acd: acd_settings,
        agents,
        registrar,
        survey,
        blocklist,
    })
}

fn node(raw: RawNode, src: &Source<'_>) -> Result<Node> {
    let name = name(
        src,
        "node.name",
        raw.name,
        "the [node] table needs a name, e.g. name = \"hotline-1\"",
    )?;
    let data_dir = match raw.data_dir {
        None => PathBuf::from("data"),
        Some(d) if d.trim().is_empty() => {
            return Err(src.error(
                "node.data_dir",
                "empty path",
                Some("leave the key out for the default \"data\", or name a directory".to_owned()),
            ))
        }
        Some(d) => PathBuf::from(d),
    };
    let shutdown_grace = secs(
        src,
        "node.shutdown_grace_secs",
        raw.shutdown_grace_secs,
        30,
        1,
        3600,
    )?;
    Ok(Node {
        name,
        data_dir,
        shutdown_grace,
    })
}

fn sip(raw: RawSip, src: &Source<'_>) -> Result<Sip> {
    let listen = socket_addr(src, "sip.listen", raw.listen.as_deref(), "127.0.0.1:5060")?;
    fixed_port(src, "sip.listen", listen)?;
    let advertise = advertise(src, raw.advertise, listen)?;

    let t1 = ranged(src, "sip.t1_ms", raw.t1_ms, 500, 1, 10_000, "milliseconds")?;
    let t2 = ranged(
        src,
        "sip.t2_ms",
        raw.t2_ms,
        4000,
        1,
        120_000,
        "milliseconds",
    )?;
    if t2 < t1 {
        let at = if raw.t2_ms.is_some() {
            "sip.t2_ms"
        } else {
            "sip.t1_ms"
        };
        return Err(src.error_at(
            "sip.t2_ms",
            at,
            format!("T2 ({t2} ms) is shorter than T1 ({t1} ms)"),
            Some(
                "RFC 3261 §17.1.2.2 caps retransmit intervals at T2, so T2 must be at least T1; \
                 the defaults are t1_ms = 500, t2_ms = 4000"
                    .to_owned(),
            ),
        ));
    }
    let t4 = ranged(src, "sip.t4_ms", raw.t4_ms, 5000, 1, 60_000, "milliseconds")?;
    let max_message_bytes = ranged(
        src,
        "sip.max_message_bytes",
        raw.max_message_bytes,
        65_535,
        1024,
        1_048_576,
        "bytes",
    )?;
    let udp_buffer_bytes = ranged(
        src,
        "sip.udp_buffer_bytes",
        raw.udp_buffer_bytes,
        4_194_304,
        65_536,
        268_435_456,
        "bytes",
    )?;
    let tcp_max_connections = ranged(
        src,
        "sip.tcp_max_connections",
        raw.tcp_max_connections,
        1024,
        1,
        1_000_000,
        "connections",
    )?;
    let tcp_idle_timeout = secs(
        src,
        "sip.tcp_idle_timeout_secs",
        raw.tcp_idle_timeout_secs,
        300,
        1,
        86_400,
    )?;
    let ring_timeout = secs(
        src,
        "sip.ring_timeout_secs",
        raw.ring_timeout_secs,
        120,
        1,
        3600,
    )?;

    let unknown_source = unknown_source(src, raw.unknown_source.as_deref())?;
    let user_agent = user_agent(src, raw.user_agent)?;
    let digest_algorithms = digest_algorithms(src, raw.digest_algorithms)?;

    Ok(Sip {
        listen,
        advertise,
        t1: Duration::from_millis(t1),
        t2: Duration::from_millis(t2),
        t4: Duration::from_millis(t4),
        max_message_bytes: usize::try_from(max_message_bytes).unwrap_or(usize::MAX),
        udp_buffer_bytes: usize::try_from(udp_buffer_bytes).unwrap_or(usize::MAX),
        tcp_max_connections: usize::try_from(tcp_max_connections).unwrap_or(usize::MAX),
        tcp_idle_timeout,
        ring_timeout,
        unknown_source,
        user_agent,
        digest_algorithms,
    })
}

fn unknown_source(src: &Source<'_>, raw: Option<&str>) -> Result<UnknownSource> {
    match raw {
        None | Some("reject") => Ok(UnknownSource::Reject),
        Some("drop") => Ok(UnknownSource::Drop),
        Some(other) => Err(src.error(
            "sip.unknown_source",
            format!("unknown value \"{other}\"; expected one of: reject, drop"),
            Some("\"reject\" answers 403 Forbidden, \"drop\" ignores the request".to_owned()),
        )),
    }
}

/// A User-Agent goes into a header: printable ASCII only, so no CR/LF.
/// `sip.digest_algorithms`: "SHA-256" and/or "MD5", each once.
fn digest_algorithms(
    src: &Source<'_>,
    raw: Option<Vec<String>>,
) -> Result<Vec<crate::sip::digest::Algorithm>> {
    use crate::sip::digest::Algorithm;
    let Some(raw) = raw else {
        return Ok(vec![Algorithm::Sha256, Algorithm::Md5]);
    };
    let help = "list \"SHA-256\" and/or \"MD5\" in the order to offer them, e.g. \
                [\"SHA-256\", \"MD5\"], or [\"MD5\"] for peers that read only the first challenge";
    if raw.is_empty() {
        return Err(src.error("sip.digest_algorithms", "empty list", Some(help.to_owned())));
    }
    let mut out = Vec::new();
    for (i, a) in raw.iter().enumerate() {
        let alg = if a.eq_ignore_ascii_case("SHA-256") {
            Algorithm::Sha256
        } else if a.eq_ignore_ascii_case("MD5") {
            Algorithm::Md5
        } else {
            return Err(src.error(
                &format!("sip.digest_algorithms[{i}]"),
                format!("unknown algorithm \"{a}\""),
                Some(help.to_owned()),
            ));
        };
        if out.contains(&alg) {
            return Err(src.error(
                &format!("sip.digest_algorithms[{i}]"),
                format!("\"{a}\" is listed twice"),
                Some(help.to_owned()),
            ));
        }
        out.push(alg);
    }
    Ok(out)
}

fn user_agent(src: &Source<'_>, raw: Option<String>) -> Result<String> {
    let user_agent = raw.unwrap_or_else(|| "Hotline-Gateway".to_owned());
    let printable = user_agent.bytes().all(|b| (0x20..0x7f).contains(&b));
    if user_agent.trim().is_empty() || !printable || user_agent.len() > MAX_USER_AGENT {
        return Err(src.error(
            "sip.user_agent",
            format!("invalid User-Agent {user_agent:?}"),
            Some(format!(
                "use 1 to {MAX_USER_AGENT} printable ASCII characters, e.g. \"Hotline-Gateway\""
            )),
        ));
    }
    Ok(user_agent)
}

fn advertise(src: &Source<'_>, raw: Option<String>, listen: SocketAddr) -> Result<IpAddr> {
    const KEY: &str = "sip.advertise";
    let Some(text) = raw else {
        if listen.ip().is_unspecified() {
            return Err(src.error_at(
                KEY,
                "sip.listen",
                format!(
                    "missing key: sip.listen ({listen}) binds every address, so the address to \
                     put in Via and Contact must be given"
                ),
                Some(
                    "set advertise to the address peers reach this host at, \
                 e.g. advertise = \"192.0.2.10\""
                        .to_owned(),
                ),
            ));
        }
        return Ok(listen.ip());
    };
    let Ok(ip) = text.parse::<IpAddr>() else {
        let help = match text.parse::<SocketAddr>() {
            Ok(sa) => format!("advertise is an address without a port: \"{}\"", sa.ip()),
            Err(_) => {
                "write an IPv4 or IPv6 address, e.g. \"192.0.2.10\"; host names are not accepted"
                    .to_owned()
            }
        };
        return Err(src.error(KEY, format!("invalid IP address \"{text}\""), Some(help)));
    };
    if ip.is_unspecified() || ip.is_multicast() {
        return Err(src.error(
            KEY,
            format!("{ip} cannot be reached by peers"),
            Some("advertise the unicast address peers send to, e.g. \"192.0.2.10\"".to_owned()),
        ));
    }
    let listen_v4 = listen.ip().is_ipv4();
    let dual_stack = listen.ip() == IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);
    if ip.is_ipv4() != listen_v4 && !dual_stack {
        return Err(src.error(
            KEY,
            format!("{ip} is not the same address family as sip.listen ({listen})"),
            Some(
                "peers would send to an address we do not listen on; \
                 advertise an address of the listen family"
                    .to_owned(),
            ),
        ));
    }
    Ok(ip)
}

fn media(raw: RawMedia, sip: &Sip, src: &Source<'_>) -> Result<Media> {
    let ip = |key: &str, text: Option<String>, default: IpAddr| -> Result<IpAddr> {
        match text {
            None => Ok(default),
            Some(t) => t.parse::<IpAddr>().map_err(|_| {
                src.error(
                    key,
                    format!("invalid IP address \"{t}\""),
                    Some(
                        "write an IPv4 or IPv6 address without a port, e.g. \"192.0.2.10\""
                            .to_owned(),
                    ),
                )
            }),
        }
    };
    let listen = ip("media.listen", raw.listen, sip.listen.ip())?;
    let advertise = ip("media.advertise", raw.advertise, sip.advertise)?;
    if advertise.is_unspecified() || advertise.is_multicast() {
        return Err(src.error(
            "media.advertise",
            format!("{advertise} cannot be reached by peers"),
            Some("advertise the unicast address peers send RTP to, e.g. \"192.0.2.10\"".to_owned()),
        ));
    }
    let port_min = ranged(
        src,
        "media.port_min",
        raw.port_min,
        16_384,
        1024,
        65_534,
        "(a port)",
    )?;
    let port_max = ranged(
        src,
        "media.port_max",
        raw.port_max,
        32_767,
        1025,
        65_535,
        "(a port)",
    )?;
    if port_max < port_min + 3 {
        return Err(src.error(
            "media.port_max",
            format!("the RTP range {port_min}-{port_max} holds no two RTP/RTCP pairs"),
            Some("each call needs two pairs of ports; give a range of thousands, e.g. port_min = 16384, port_max = 32767".to_owned()),
        ));
    }
    let shards = ranged(
        src,
        "media.shards",
        raw.shards,
        0,
        0,
        256,
        "(0 = one per CPU core)",
    )?;
    let rtp_timeout = secs(
        src,
        "media.rtp_timeout_secs",
        raw.rtp_timeout_secs,
        30,
        1,
        3600,
    )?;
    let latching = match raw.latching.as_deref() {
        None | Some("symmetric") => Latching::Symmetric,
        Some("off") => Latching::Off,
        Some(other) => {
            return Err(src.error(
                "media.latching",
                format!("unknown value \"{other}\"; expected one of: symmetric, off"),
                Some("\"symmetric\" sends to where a peer's RTP comes from (NAT'd phones); \"off\" always to its SDP address".to_owned()),
            ))
        }
    };
    let mut codecs = Vec::new();
    for c in raw
        .codecs
        .unwrap_or_else(|| vec!["PCMA".into(), "PCMU".into()])
    {
        let id = match c.to_ascii_uppercase().as_str() {
            "PCMA" => crate::sip::sdp::CodecId::Pcma,
            "PCMU" => crate::sip::sdp::CodecId::Pcmu,
            _ => {
                return Err(src.error(
                    "media.codecs",
                    format!("unknown codec \"{c}\"; expected PCMA or PCMU"),
                    Some("G.711 only: codecs = [\"PCMA\", \"PCMU\"]".to_owned()),
                ))
            }
        };
        if !codecs.contains(&id) {
            codecs.push(id);
        }
    }
    if codecs.is_empty() {
        return Err(src.error(
            "media.codecs",
            "no codec",
            Some("name at least one: codecs = [\"PCMA\", \"PCMU\"]".to_owned()),
        ));
    }
    let udp_buffer_bytes = ranged(
        src,
        "media.udp_buffer_bytes",
        raw.udp_buffer_bytes,
        262_144,
        16_384,
        67_108_864,
        "bytes",
    )?;
    Ok(Media {
        listen,
        advertise,
        port_min: port_min as u16,
        port_max: port_max as u16,
        shards: shards as usize,
        rtp_timeout,
        latching,
        inband_dtmf: raw.inband_dtmf.unwrap_or(true),
        ringback: raw.ringback.unwrap_or(true),
        codecs,
        udp_buffer_bytes: udp_buffer_bytes as usize,
    })
}

fn api(raw: &RawApi, sip: &Sip, src: &Source<'_>) -> Result<Api> {
    let listen = socket_addr(src, "api.listen", raw.listen.as_deref(), "127.0.0.1:8080")?;
    fixed_port(src, "api.listen", listen)?;
    let (a, s) = (listen, sip.listen);
    if a.port() == s.port()
        && (a.ip() == s.ip() || a.ip().is_unspecified() || s.ip().is_unspecified())
    {
        let at = if raw.listen.is_some() {
            "api.listen"
        } else {
            "sip.listen"
        };
        return Err(src.error_at(
            "api.listen",
            at,
            format!(
                "{a} overlaps sip.listen ({s}): both bind TCP port {}",
                a.port()
            ),
            Some("give the API and SIP different ports (defaults: 8080 and 5060)".to_owned()),
        ));
    }
    let mut tokens: Vec<Secret> = Vec::new();
    for (i, t) in raw
        .tokens
        .clone()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let key = format!("api.tokens[{i}]");
        let ok = t.len() >= MIN_SECRET && t.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            return Err(src.error(
                &key,
                "token too short or not printable",
                Some(format!(
                    "at least {MIN_SECRET} printable ASCII characters without spaces, e.g. the output of: openssl rand -hex 24"
                )),
            ));
        }
        if tokens.iter().any(|x| x.reveal_str() == t) {
            return Err(src.error(
                &key,
                "duplicate token",
                Some("list each token once".to_owned()),
            ));
        }
        tokens.push(Secret::new(t));
    }
    Ok(Api { listen, tokens })
}

/// Shortest webhook secret accepted, in bytes.
const MIN_SECRET: usize = 16;
/// Longest webhook URL accepted.
const MAX_URL: usize = 2048;

fn webhooks(raw: RawWebhooks, src: &Source<'_>) -> Result<Webhooks> {
    const URL_HELP: &str = "give the backend's endpoint, e.g. url = \"https://backend.example/hotline\", \
                            or several with urls = [\"https://a.example/\", \"https://b.example/\"]";
    let listed: Vec<(String, String)> = match (raw.url, raw.urls) {
        (Some(_), Some(_)) => {
            return Err(src.error(
                "webhooks.urls",
                "both `url` and `urls` are set",
                Some(
                    "use one of them: url = \"...\" for one endpoint, urls = [...] for several"
                        .to_owned(),
                ),
            ))
        }
        (None, None) => {
            return Err(src.error(
                "webhooks.url",
                "missing key: a [webhooks] section needs somewhere to post",
                Some(format!(
                    "{URL_HELP}; without webhooks, leave the whole [webhooks] section out \
                     (records then stay in the local outbox)"
                )),
            ))
        }
        (Some(url), None) => vec![("webhooks.url".to_owned(), url)],
        (None, Some(urls)) if urls.is_empty() => {
            return Err(src.error("webhooks.urls", "no URL listed", Some(URL_HELP.to_owned())))
        }
        (None, Some(urls)) => urls
            .into_iter()
            .enumerate()
            .map(|(i, u)| (format!("webhooks.urls[{i}]"), u))
            .collect(),
    };
    let mut urls: Vec<reqwest::Url> = Vec::with_capacity(listed.len());
    for (key, text) in listed {
        let url = webhook_url(src, &key, &text)?;
        if let Some(i) = urls.iter().position(|u| *u == url) {
            return Err(src.error(
                &key,
                format!("{url} is already listed at webhooks.urls[{i}]"),
                Some("list each endpoint once".to_owned()),
            ));
        }
        urls.push(url);
    }

    let secret_help = format!(
        "use at least {MIN_SECRET} random bytes shared with the receiver, e.g. the output of \
         `openssl rand -hex 32`"
    );
    let secret =
        match raw.secret {
            None => return Err(src.error_at(
                "webhooks.secret",
                "webhooks",
                "missing key: requests to the webhook are signed (HMAC-SHA256) with this secret",
                Some(secret_help),
            )),
            Some(s) if s.len() < MIN_SECRET => {
                return Err(src.error(
                    "webhooks.secret",
                    format!(
                        "the secret is {} bytes; at least {MIN_SECRET} are required",
                        s.len()
                    ),
                    Some(secret_help),
                ))
            }
            Some(s) => Secret::new(s),
        };

    let timeout = secs(src, "webhooks.timeout_secs", raw.timeout_secs, 10, 1, 300)?;
    let retry_for_hours = ranged(
        src,
        "webhooks.retry_for_hours",
        raw.retry_for_hours,
        72,
        1,
        8760,
        "hours",
    )?;
    let max_backoff = secs(
        src,
        "webhooks.max_backoff_secs",
        raw.max_backoff_secs,
        600,
        1,
        86_400,
    )?;
    let concurrency = ranged(
        src,
        "webhooks.concurrency",
        raw.concurrency,
        4,
        1,
        256,
        "requests",
    )?;
    let retention_days = ranged(
        src,
        "webhooks.retention_days",
        raw.retention_days,
        7,
        1,
        3650,
        "days",
    )?;
    Ok(Webhooks {
        urls,
        secret,
        timeout,
        retry_for: Duration::from_secs(retry_for_hours * 3600),
        initial_backoff: Duration::from_secs(1).min(max_backoff),
        max_backoff,
        concurrency: usize::try_from(concurrency).unwrap_or(usize::MAX),
        retention: Duration::from_secs(retention_days * 86_400),
    })
}

/// An absolute http(s) URL with a host and no credentials.
fn webhook_url(src: &Source<'_>, key: &str, text: &str) -> Result<reqwest::Url> {
    let example = "write an absolute URL, e.g. \"https://backend.example/hotline\"";
    if text.len() > MAX_URL {
        return Err(src.error(
            key,
            format!("the URL is longer than {MAX_URL} characters"),
            Some(example.to_owned()),
        ));
    }
    let url = reqwest::Url::parse(text).map_err(|e| {
        src.error(
            key,
            format!("invalid URL \"{text}\": {e}"),
            Some(example.to_owned()),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(src.error(
            key,
            format!("scheme \"{}\" in \"{text}\" is not supported", url.scheme()),
            Some(
                "webhooks are posted over http or https (https outside a trusted network)"
                    .to_owned(),
            ),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(src.error(
            key,
            format!("no host in \"{text}\""),
            Some(example.to_owned()),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(src.error(
            key,
            "the URL carries a user name or password",
            Some(
                "credentials in URLs end up in logs; the receiver authenticates requests by \
                 their signature (webhooks.secret)"
                    .to_owned(),
            ),
        ));
    }
    Ok(url)
}

/// A trunk's `username` and `password`: both or neither; the username a
/// SIP token, unique; the password at least 12 characters.
fn trunk_auth(
    src: &Source<'_>,
    path: &str,
    username: Option<String>,
    password: Option<String>,
    usernames: &mut HashMap<String, String>,
) -> Result<Option<TrunkAuth>> {
    let (username, password) =
        match (username, password) {
            (None, None) => return Ok(None),
            (Some(_), None) => {
                return Err(src.error(
                    &format!("{path}.password"),
                    "a trunk with a username needs a password",
                    Some(
                        "add password = \"...\" (at least 12 characters), or remove username"
                            .to_owned(),
                    ),
                ))
            }
            (None, Some(_)) => return Err(src.error(
                &format!("{path}.username"),
                "a trunk with a password needs a username",
                Some(
                    "add the username the carrier authenticates as, e.g. username = \"carrier-a\""
                        .to_owned(),
                ),
            )),
            (Some(u), Some(p)) => (u, p),
        };
    let ukey = format!("{path}.username");
    let token = !username.is_empty()
        && username.len() <= MAX_NAME
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'+".contains(c));
    if !token {
        return Err(src.error(
            &ukey,
            format!("invalid username \"{username}\""),
            Some(format!(
                "1 to {MAX_NAME} letters, digits and - _ . ! ~ * ' +"
            )),
        ));
    }
    if let Some(first) = usernames.get(&username) {
        return Err(src.error(
            &ukey,
            format!(
                "username \"{username}\" is already used at {}",
                located(src, first)
            ),
            Some("each trunk authenticates with its own username".to_owned()),
        ));
    }
    usernames.insert(username.clone(), ukey);
    if password.chars().count() < 12 {
        return Err(src.error(
            &format!("{path}.password"),
            "password too short",
            Some("use at least 12 characters, e.g. the output of: openssl rand -hex 16".to_owned()),
        ));
    }
    Ok(Some(TrunkAuth {
        username,
        password: Secret::new(password),
    }))
}

fn trunks(raw: Vec<RawTrunk>, sip: &Sip, src: &Source<'_>) -> Result<Vec<Trunk>> {
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut seen: HashMap<Cidr, String> = HashMap::new();
    let mut usernames: HashMap<String, String> = HashMap::new();
    let mut trunks = Vec::with_capacity(raw.len());
    for (i, t) in raw.into_iter().enumerate() {
        let path = format!("trunks[{i}]");
        let name = name(
            src,
            &format!("{path}.name"),
            t.name,
            "every [[trunks]] table needs a name, e.g. name = \"carrier-a\"",
        )?;
        unique(src, &mut names, "trunks", i, &name)?;
        let sources_path = format!("{path}.sources");
        let auth = trunk_auth(src, &path, t.username, t.password, &mut usernames)?;
        let example = "list the carrier's signalling networks, e.g. sources = [\"192.0.2.0/24\"], \
                       or give the trunk username and password (digest authentication)";
        let raw_sources = match t.sources {
            None if auth.is_some() => Vec::new(),
            None => return Err(src.error(&sources_path, "missing key", Some(example.to_owned()))),
            Some(s) if s.is_empty() => {
                return Err(src.error(
                    &sources_path,
                    "no sources: this trunk would accept no calls",
                    Some(
                        "leave the key out for a trunk with username and password that may \
                         call from anywhere, or list its networks"
                            .to_owned(),
                    ),
                ))
            }
            Some(s) => s,
        };
        let mut sources = Vec::with_capacity(raw_sources.len());
        for (j, text) in raw_sources.iter().enumerate() {
            let key = format!("{sources_path}[{j}]");
            let cidr = text.parse::<Cidr>().map_err(|e| {
                let message = format!("invalid CIDR \"{text}\": {e}");
                src.error(&key, message, Some(cidr_help(&e)))
            })?;
            if let Some(first) = seen.get(&cidr) {
                return Err(src.error(
                    &key,
                    format!("{cidr} is already listed at {}", located(src, first)),
                    Some("a network may be listed once: remove one of them".to_owned()),
                ));
            }
            seen.insert(cidr, key);
            sources.push(cidr);
        }
        let max_calls = optional_ranged(
            src,
            &format!("{path}.max_calls"),
            t.max_calls,
            1,
            1_000_000,
            "calls",
        )?;
        let max_cps = optional_ranged(
            src,
            &format!("{path}.max_cps"),
            t.max_cps,
            1,
            100_000,
            "calls per second",
        )?;
        let numbers = number_rules(
            src,
            &format!("{path}.numbers"),
            t.numbers.unwrap_or_default(),
        )?;
        let outbound = outbound(src, &path, t.outbound, t.keepalive_secs, sip)?;
        trunks.push(Trunk {
            name,
            sources,
            auth,
            max_calls,
            max_cps,
            numbers,
            outbound,
        });
    }
    Ok(trunks)
}

/// A trunk's `outbound` address and its `keepalive_secs` (which means
/// nothing without an address to ping).
fn outbound(
    src: &Source<'_>,
    path: &str,
    address: Option<String>,
    keepalive_secs: Option<u64>,
    sip: &Sip,
) -> Result<Option<Outbound>> {
    let key = format!("{path}.keepalive_secs");
    let Some(text) = address else {
        if keepalive_secs.is_some() {
            return Err(src.error(
                &key,
                "keepalive_secs without outbound: there is no address to ping",
                Some(
                    "set the carrier's SIP address, e.g. outbound = \"192.0.2.7:5060\", \
                     or remove keepalive_secs"
                        .to_owned(),
                ),
            ));
        }
        return Ok(None);
    };
    let address = destination(
        src,
        &format!("{path}.outbound"),
        &text,
        sip,
        "give the carrier's SIP address and port, e.g. \"192.0.2.7:5060\"",
    )?;
    let keepalive = secs(src, &key, keepalive_secs, 30, 1, 3600)?;
    Ok(Some(Outbound { address, keepalive }))
}

/// An address we send requests to: IP:PORT, unicast, a non-zero port, and
/// not this gateway's own SIP listener (what we send would loop).
fn destination(
    src: &Source<'_>,
    key: &str,
    text: &str,
    sip: &Sip,
    example: &str,
) -> Result<SocketAddr> {
    let address = parse_socket_addr(src, key, text)?;
    if address.ip().is_unspecified() || address.ip().is_multicast() || address.port() == 0 {
        return Err(src.error(
            key,
            format!("{address} is not a destination requests can be sent to"),
            Some(example.to_owned()),
        ));
    }
    let ours = address == sip.listen
        || address == SocketAddr::new(sip.advertise, sip.listen.port())
        || (sip.listen.ip().is_unspecified()
            && address.port() == sip.listen.port()
            && address.ip().is_loopback());
    if ours {
        return Err(src.error(
            key,
            format!("{address} is this gateway's own SIP listener: what we send there would loop"),
            Some(example.to_owned()),
        ));
    }
    Ok(address)
}

/// A limit that is unlimited when left out, else in `min..=max`.
fn optional_ranged(
    src: &Source<'_>,
    key: &str,
    raw: Option<u64>,
    min: u64,
    max: u64,
    unit: &str,
) -> Result<Option<u32>> {
    let Some(value) = raw else {
        return Ok(None);
    };
    match u32::try_from(value) {
        Ok(v) if (min..=max).contains(&value) => Ok(Some(v)),
        _ => Err(src.error(
            key,
            format!("{value} is out of range; expected {min} to {max} {unit}"),
            Some("leave the key out for no limit".to_owned()),
        )),
    }
}

/// A trunk's `numbers` rules: a non-empty `prefix` and an optional
/// `replace`, both written like route numbers.
fn number_rules(src: &Source<'_>, path: &str, raw: Vec<RawNumberRule>) -> Result<Vec<NumberRule>> {
    let example = "e.g. numbers = [{ prefix = \"+86\", replace = \"0\" }, { prefix = \"020\" }]";
    let mut rules = Vec::with_capacity(raw.len());
    for (j, r) in raw.into_iter().enumerate() {
        let key = format!("{path}[{j}].prefix");
        let Some(prefix) = r.prefix else {
            return Err(src.error_at(
                &key,
                &format!("{path}[{j}]"),
                "missing key",
                Some(format!("give the prefix the rule rewrites, {example}")),
            ));
        };
        if prefix.is_empty() {
            return Err(src.error(
                &key,
                "empty prefix: the rule would apply to every number",
                Some(format!("give the prefix the rule rewrites, {example}")),
            ));
        }
        rule_number(src, &key, &prefix)?;
        let replace = r.replace.unwrap_or_default();
        if !replace.is_empty() {
            rule_number(src, &format!("{path}[{j}].replace"), &replace)?;
        }
        rules.push(NumberRule { prefix, replace });
    }
    Ok(rules)
}

/// A rule's prefix or replacement: digits, `*` and `#`, optional leading `+`.
fn rule_number(src: &Source<'_>, key: &str, text: &str) -> Result<()> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    let ok = !digits.is_empty()
        && text.len() <= MAX_NUMBER
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#');
    if ok {
        return Ok(());
    }
    Err(src.error(
        key,
        format!(
            "invalid number prefix \"{text}\"; expected up to {MAX_NUMBER} digits 0-9, * and #, \
             optionally after a leading +"
        ),
        Some(
            "separators ('-', '.', '(', ')', spaces) are removed before the rules run: \
             write \"020\", not \"020-\""
                .to_owned(),
        ),
    ))
}

/// What a number checked by [`numbers_stay_reachable`] is.
#[derive(Clone, Copy)]
enum Dialled {
    Route,
    Line,
}

/// Every route and line number must come out of every trunk's rules as it
/// went in: a rule that empties or rewrites such a number would make calls
/// dialled as that number miss their route or line. `numbers` are
/// (`routes[k]` or `lines[k]`, the number).
fn numbers_stay_reachable(
    trunks: &[Trunk],
    numbers: &[(String, &str)],
    what: Dialled,
    src: &Source<'_>,
) -> Result<()> {
    let (noun, miss, never) = match what {
        Dialled::Route => ("route number", "their route", "a routed number itself"),
        Dialled::Line => ("line number", "their line", "a line's number itself"),
    };
    for (i, trunk) in trunks.iter().enumerate() {
        for (path, dialled) in numbers {
            let mut number = (*dialled).to_owned();
            for (j, rule) in trunk.numbers.iter().enumerate() {
                let Some(rest) = number.strip_prefix(rule.prefix.as_str()) else {
                    continue;
                };
                number = format!("{}{rest}", rule.replace);
                if number == *dialled {
                    continue;
                }
                let key = format!("trunks[{i}].numbers[{j}]");
                let message = if number.is_empty() {
                    format!("the rule turns {noun} \"{dialled}\" into an empty number")
                } else {
                    format!(
                        "the rule turns {noun} \"{dialled}\" into \"{number}\": calls to it \
                         from trunk \"{}\" would miss {miss}",
                        trunk.name
                    )
                };
                return Err(src.error(
                    &key,
                    message,
                    Some(format!(
                        "a rule rewrites prefixes the carrier adds (\"+86\", \"020\"), never \
                         {never}: drop the rule or give it a longer prefix (see {})",
                        located(src, path)
                    )),
                ));
            }
        }
    }
    Ok(())
}

fn cidr_help(e: &CidrError) -> String {
    match e {
        CidrError::HostBitsSet { network, .. } => format!("did you mean \"{network}\"?"),
        CidrError::PrefixTooLong { .. } | CidrError::BadPrefix(_) => {
            "the prefix is 0..=32 for IPv4 and 0..=128 for IPv6, e.g. \"10.0.0.0/8\"".to_owned()
        }
        CidrError::BadAddress(_) => "write an IP address with an optional /prefix, \
                                     e.g. \"10.0.0.0/8\", \"192.0.2.7\" or \"2001:db8::/32\"; \
                                     host names are not accepted"
            .to_owned(),
    }
}

fn targets(raw: Vec<RawTarget>, sip: &Sip, src: &Source<'_>) -> Result<Vec<Target>> {
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut targets = Vec::with_capacity(raw.len());
    for (i, t) in raw.into_iter().enumerate() {
        let path = format!("targets[{i}]");
        let name = name(
            src,
            &format!("{path}.name"),
            t.name,
            "every [[targets]] table needs a name, e.g. name = \"sub-centre-a\"",
        )?;
        unique(src, &mut names, "targets", i, &name)?;
        let key = format!("{path}.address");
        let Some(text) = t.address else {
            return Err(src.error(
                &key,
                "missing key",
                Some(
                    "give the callee's SIP address, e.g. address = \"192.0.2.20:5060\"".to_owned(),
                ),
            ));
        };
        let address = parse_socket_addr(src, &key, &text)?;
        if address.ip().is_unspecified() || address.ip().is_multicast() || address.port() == 0 {
            return Err(src.error(
                &key,
                format!("{address} is not a destination a call can be sent to"),
                Some(
                    "give the callee's unicast address and port, e.g. \"192.0.2.20:5060\""
                        .to_owned(),
                ),
            ));
        }
        let ours = address == sip.listen
            || address == SocketAddr::new(sip.advertise, sip.listen.port())
            || (sip.listen.ip().is_unspecified()
                && address.port() == sip.listen.port()
                && address.ip().is_loopback());
        if ours {
            return Err(src.error(
                &key,
                format!(
                    "{address} is this gateway's own SIP listener: calls sent there would loop"
                ),
                Some("point the target at the callee, not at sip.listen".to_owned()),
            ));
        }
        let transport = match t.transport.as_deref() {
            None | Some("udp") => TargetTransport::Udp,
            Some("tcp") => TargetTransport::Tcp,
            Some(other) => {
                return Err(src.error(
                    &format!("{path}.transport"),
                    format!("unknown transport \"{other}\"; expected one of: udp, tcp"),
                    Some(
                        "transports are written in lower case; TLS is not supported yet".to_owned(),
                    ),
                ))
            }
        };
        targets.push(Target {
            name,
            address,
            transport,
        });
    }
    Ok(targets)
}

fn routes(raw: Vec<RawRoute>, targets: &[Target], src: &Source<'_>) -> Result<Vec<Route>> {
    let mut numbers: HashMap<String, usize> = HashMap::new();
    let mut routes = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let path = format!("routes[{i}]");
        let key = format!("{path}.number");
        let Some(number) = r.number else {
            return Err(src.error(
                &key,
                "missing key",
                Some("give the dialled number, e.g. number = \"12345\"".to_owned()),
            ));
        };
        if number != Route::DEFAULT {
            check_number(src, &key, &number)?;
        }
        if let Some(first) = numbers.get(&number) {
            let first = located(src, &format!("routes[{first}].number"));
            let (message, help) = if number == Route::DEFAULT {
                (
                    format!("a second default route (\"*\"); the first is at {first}"),
                    "there can be one default route",
                )
            } else {
                (
                    format!("duplicate route number \"{number}\"; first defined at {first}"),
                    "a number has one route: remove one",
                )
            };
            return Err(src.error(&key, message, Some(help.to_owned())));
        }
        numbers.insert(number.clone(), i);

        let known: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        let target = reference(
            src,
            &format!("{path}.target"),
            r.target,
            &known,
            Table::Targets,
            "name a [[targets]] table",
        )?;
        routes.push(Route { number, target });
    }
    Ok(routes)
}

/// A table other tables refer to by name.
#[derive(Clone, Copy)]
enum Table {
    Targets,
    Tenants,
    Queues,
    Flows,
}

impl Table {
    /// (`[[header]]`, what one entry is called, what several are called).
    fn words(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Table::Targets => ("[[targets]]", "target", "targets"),
            Table::Tenants => ("[[tenants]]", "tenant", "tenants"),
            Table::Queues => ("[[queues]]", "queue", "queues"),
            Table::Flows => ("[[flows]]", "flow", "flows"),
        }
    }
}

/// "known targets: a, b" (at most ten shown), or "no targets are defined yet".
fn known_list(table: Table, known: &[&str]) -> String {
    let (_, _, plural) = table.words();
    if known.is_empty() {
        return format!("no {plural} are defined yet");
    }
    let mut shown = known
        .iter()
        .take(10)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if known.len() > 10 {
        shown.push_str(", ...");
    }
    format!("known {plural}: {shown}")
}

/// A required reference by name to an entry of `table`; `missing_help`
/// says what to name when the key is left out.
fn reference(
    src: &Source<'_>,
    key: &str,
    raw: Option<String>,
    known: &[&str],
    table: Table,
    missing_help: &str,
) -> Result<String> {
    let list = known_list(table, known);
    let Some(name) = raw else {
        return Err(src.error(key, "missing key", Some(format!("{missing_help} ({list})"))));
    };
    if !known.contains(&name.as_str()) {
        let (header, one, _) = table.words();
        let mut help = format!("define it in a {header} table ({list})");
        if let Some(near) = closest(&name, known) {
            help = format!("did you mean \"{near}\"? or {help}");
        }
        return Err(src.error(key, format!("unknown {one} \"{name}\""), Some(help)));
    }
    Ok(name)
}

/// Digits, `*` and `#`, with an optional leading `+`.
fn check_number(src: &Source<'_>, key: &str, number: &str) -> Result<()> {
    let digits = number.strip_prefix('+').unwrap_or(number);
    let help = Some(
        "write the dialled number as it arrives in the Request-URI, e.g. \"12345\"; \
         \"*\" alone is the default route"
            .to_owned(),
    );
    if digits.is_empty()
        || !digits
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
    {
        return Err(src.error(
            key,
            format!(
                "invalid number \"{number}\"; \
                 expected digits 0-9, * and #, optionally after a leading +"
            ),
            help,
        ));
    }
    if number.len() > MAX_NUMBER {
        return Err(src.error(
            key,
            format!("number is longer than {MAX_NUMBER} characters"),
            help,
        ));
    }
    Ok(())
}

/// A required, well-formed name.
fn name(src: &Source<'_>, key: &str, raw: Option<String>, missing_help: &str) -> Result<String> {
    let Some(name) = raw else {
        return Err(src.error(key, "missing key", Some(missing_help.to_owned())));
    };
    let help = Some(format!(
        "names are 1 to {MAX_NAME} characters: letters, digits, '-', '_' and '.', \
         e.g. \"carrier-a\""
    ));
    if name.is_empty() {
        return Err(src.error(key, "empty name", help));
    }
    let ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok || name.len() > MAX_NAME {
        return Err(src.error(key, format!("invalid name \"{name}\""), help));
    }
    Ok(name)
}

/// Record `name` as defined by `table[i]`, or fail if an earlier one has it.
fn unique(
    src: &Source<'_>,
    names: &mut HashMap<String, usize>,
    table: &str,
    i: usize,
    name: &str,
) -> Result<()> {
    if let Some(first) = names.get(name) {
        let first = located(src, &format!("{table}[{first}]"));
        return Err(src.error(
            &format!("{table}[{i}].name"),
            format!("duplicate name \"{name}\"; first defined at {first}"),
            Some(format!(
                "every [[{table}]] table needs its own name: rename or remove one"
            )),
        ));
    }
    names.insert(name.to_owned(), i);
    Ok(())
}

/// `trunks[0]` -> `trunks[0] (line 12)`.
fn located(src: &Source<'_>, path: &str) -> String {
    match src.line_of(path) {
        Some(line) => format!("{path} (line {line})"),
        None => path.to_owned(),
    }
}

fn socket_addr(
    src: &Source<'_>,
    key: &str,
    raw: Option<&str>,
    default: &str,
) -> Result<SocketAddr> {
    parse_socket_addr(src, key, raw.unwrap_or(default))
}

fn parse_socket_addr(src: &Source<'_>, key: &str, text: &str) -> Result<SocketAddr> {
    text.parse().map_err(|_| {
        let help = match text.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => format!("add a port: \"{ip}:5060\""),
            Ok(IpAddr::V6(ip)) => {
                format!("add a port, with the address in brackets: \"[{ip}]:5060\"")
            }
            Err(_) => "write IP:PORT, e.g. \"127.0.0.1:5060\" or \"[::1]:5060\"; \
                       host names are not accepted"
                .to_owned(),
        };
        src.error(
            key,
            format!("invalid socket address \"{text}\""),
            Some(help),
        )
    })
}

fn fixed_port(src: &Source<'_>, key: &str, addr: SocketAddr) -> Result<()> {
    if addr.port() == 0 {
        return Err(src.error(
            key,
            format!("port 0 in {addr}: a listener needs a fixed port"),
            Some("give a port, e.g. 5060 for SIP or 8080 for the API".to_owned()),
        ));
    }
    Ok(())
}

/// An integer key with a default and an inclusive range.
fn ranged(
    src: &Source<'_>,
    key: &str,
    raw: Option<u64>,
    default: u64,
    min: u64,
    max: u64,
    unit: &str,
) -> Result<u64> {
    let value = raw.unwrap_or(default);
    if (min..=max).contains(&value) {
        return Ok(value);
    }
    Err(src.error(
        key,
        format!("{value} is out of range; expected {min} to {max} {unit}"),
        Some(format!(
            "the default is {default}; leave the key out to use it"
        )),
    ))
}

fn secs(
    src: &Source<'_>,
    key: &str,
    raw: Option<u64>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<Duration> {
    ranged(src, key, raw, default, min, max, "seconds").map(Duration::from_secs)
}

/// The keys each node kind takes besides `name` and `kind`: (kind,
/// required, optional).
const NODE_KEYS: [(&str, &[&str], &[&str]); 9] = [
    ("play", &["prompt", "next"], &["barge_in"]),
    (
        "menu",
        &["prompt", "options", "timeout"],
        &["barge_in", "timeout_secs", "invalid", "retries"],
    ),
    (
        "collect",
        &["prompt", "next", "fail"],
        &[
            "barge_in",
            "min",
            "max",
            "terminator",
            "first_digit_timeout_secs",
            "inter_digit_timeout_secs",
            "retries",
            "key",
        ],
    ),
    ("queue", &["queue"], &["skills", "priority"]),
    ("transfer", &["target"], &[]),
    ("set_tag", &["key", "value", "next"], &[]),
    ("hours", &["open", "closed"], &["schedule"]),
    ("hangup", &[], &["cause"]),
    ("goto", &["next"], &[]),
];

/// `[[flows]]`: each flow's nodes read per kind, then [`Flow::validate`]
/// against the configuration's prompts (`prompts`: shipped and
/// `[prompts] dir`), queues and targets.
fn flows(
    raw: Vec<RawFlow>,
    prompts: &[&str],
    queues: &[super::Queue],
    targets: &[Target],
    src: &Source<'_>,
) -> Result<Vec<Arc<Flow>>> {
    let mut names: HashMap<String, usize> = HashMap::new();
    let target_names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    let queue_names: Vec<&str> = queues.iter().map(|q| q.name.as_str()).collect();
    let mut flows = Vec::with_capacity(raw.len());
    for (i, f) in raw.into_iter().enumerate() {
        let path = format!("flows[{i}]");
        let name = name(
            src,
            &format!("{path}.name"),
            f.name,
            "every [[flows]] table needs a name, e.g. name = \"12345-intake\"",
        )?;
        unique(src, &mut names, "flows", i, &name)?;
        let Some(entry) = f.entry else {
            return Err(src.error(
                &format!("{path}.entry"),
                format!("flow \"{name}\": missing key"),
                Some("name the node a call starts at, e.g. entry = \"greeting\"".to_owned()),
            ));
        };
        let mut nodes = Vec::with_capacity(f.nodes.len());
        for (j, n) in f.nodes.into_iter().enumerate() {
            nodes.push(flow_node(src, &name, &format!("{path}.nodes[{j}]"), n)?);
        }
        let flow = Flow::new(name, entry, nodes);
        if let Err(e) = flow.validate(prompts, Some(&queue_names), &target_names) {
            let (key, who) = match &e.node {
                Some((j, node)) => (
                    format!("{path}.nodes[{j}].{}", e.key),
                    format!("flow \"{}\", node \"{node}\"", e.flow),
                ),
                None => (format!("{path}.{}", e.key), format!("flow \"{}\"", e.flow)),
            };
            // The flow knows the names; the file knows where they are
            // defined, so the help says that.
            let node = e.node.as_ref().map(|(j, _)| &flow.nodes[*j].kind);
            let help = match (e.key.as_str(), node) {
                ("prompt", Some(kind)) => Some(prompt_help(kind.prompt().unwrap_or(""), prompts)),
                ("queue", Some(NodeKind::Queue { queue, .. })) => {
                    let mut help = format!(
                        "define it in a [[queues]] table ({})",
                        known_list(Table::Queues, &queue_names)
                    );
                    if let Some(near) = closest(queue, &queue_names) {
                        help = format!("did you mean \"{near}\"? or {help}");
                    }
                    Some(help)
                }
                _ => e.help,
            };
            return Err(src.error(&key, format!("{who}: {}", e.message), help));
        }
        flows.push(Arc::new(flow));
    }
    Ok(flows)
}

/// The help for an unknown prompt `name`.
fn prompt_help(name: &str, prompts: &[&str]) -> String {
    let mut help = format!(
        "known prompts: {}; a centre's own recordings go in the [prompts] dir as <name>.wav",
        prompts.join(", ")
    );
    if let Some(near) = closest(name, prompts) {
        help = format!("did you mean \"{near}\"? {help}");
    }
    help
}

/// One `[[flows.nodes]]` table at `path` of flow `flow`.
fn flow_node(src: &Source<'_>, flow: &str, path: &str, raw: RawFlowNode) -> Result<ivr::Node> {
    let node = name(
        src,
        &format!("{path}.name"),
        raw.name.clone(),
        "every node needs a name other nodes refer to it by, e.g. name = \"greeting\"",
    )
    .map_err(|e| ConfigError {
        message: format!("flow \"{flow}\": {}", e.message),
        ..e
    })?;
    let who = format!("flow \"{flow}\", node \"{node}\"");
    node_kind(src, path, raw)
        .map_err(|e| ConfigError {
            message: format!("{who}: {}", e.message),
            ..e
        })
        .map(|kind| ivr::Node { name: node, kind })
}

/// The kind-specific keys of a node table at `path`.
fn node_kind(src: &Source<'_>, path: &str, raw: RawFlowNode) -> Result<NodeKind> {
    let kinds: Vec<&str> = NODE_KEYS.iter().map(|(k, _, _)| *k).collect();
    let kinds_help = format!("kind is one of: {}", kinds.join(", "));
    let Some(kind) = raw.kind.clone() else {
        return Err(src.error(
            &format!("{path}.kind"),
            "missing key".to_owned(),
            Some(kinds_help),
        ));
    };
    let Some((_, required, optional)) = NODE_KEYS.iter().find(|(k, _, _)| *k == kind) else {
        let mut help = kinds_help;
        if let Some(near) = closest(&kind, &kinds) {
            help = format!("did you mean \"{near}\"? {help}");
        }
        return Err(src.error(
            &format!("{path}.kind"),
            format!("unknown kind \"{kind}\""),
            Some(help),
        ));
    };
    let takes = || {
        let all: Vec<&str> = required.iter().chain(optional.iter()).copied().collect();
        if all.is_empty() {
            format!("a {kind} node takes no keys besides name and kind")
        } else {
            format!("a {kind} node takes: {}", all.join(", "))
        }
    };
    for key in raw.present() {
        if !required.contains(&key) && !optional.contains(&key) {
            return Err(src.error(
                &format!("{path}.{key}"),
                format!("`{key}` does not apply to a {kind} node"),
                Some(takes()),
            ));
        }
    }
    let need = |key: &str, value: Option<String>| -> Result<String> {
        value.ok_or_else(|| {
            let help = if kind == "menu" && key == "timeout" {
                "a menu needs a timeout branch: a caller who presses nothing (many cannot or \
                 will not use keys) must still be served, e.g. timeout = \"default-queue\""
                    .to_owned()
            } else {
                takes()
            };
            src.error(
                &format!("{path}.{key}"),
                "missing key".to_owned(),
                Some(help),
            )
        })
    };
    let key_of = |k: &str| format!("{path}.{k}");
    let small = |k: &str, v: Option<u64>, default: u64, min: u64, max: u64, unit: &str| {
        ranged(src, &key_of(k), v, default, min, max, unit).map(|n| n as u8)
    };
    let checked_name =
        |k: &str, v: String| -> Result<String> { name(src, &key_of(k), Some(v), "") };
    let kind = match kind.as_str() {
        "play" => NodeKind::Play {
            prompt: need("prompt", raw.prompt)?,
            barge_in: raw.barge_in.unwrap_or(false),
            next: need("next", raw.next)?,
        },
        "menu" => {
            let mut options = BTreeMap::new();
            for (digit, to) in need_options(src, path, raw.options)? {
                let mut chars = digit.chars();
                let d = match (chars.next(), chars.next()) {
                    (Some(d), None) if ivr::is_dtmf(d) => d,
                    _ => {
                        return Err(src.error(
                            &format!("{path}.options.{}", option_key(&digit)),
                            format!("option \"{digit}\" is not one DTMF key"),
                            Some("options are single keys: 0-9, *, #, A-D, e.g. options = { 1 = \"mandarin\", 2 = \"cantonese\" }".to_owned()),
                        ))
                    }
                };
                options.insert(d, to);
            }
            let timeout = need("timeout", raw.timeout)?;
            NodeKind::Menu {
                prompt: need("prompt", raw.prompt)?,
                barge_in: raw.barge_in.unwrap_or(true),
                options,
                timeout_after: secs(src, &key_of("timeout_secs"), raw.timeout_secs, 5, 1, 60)?,
                invalid: raw.invalid.unwrap_or_else(|| timeout.clone()),
                timeout,
                retries: small("retries", raw.retries, 1, 0, 9, "replays")?,
            }
        }
        "collect" => {
            let min = small("min", raw.min, 1, 1, 32, "digits")?;
            let max = small("max", raw.max, 32, 1, 32, "digits")?;
            let terminator = match raw.terminator.as_deref() {
                None => Some('#'),
                Some("") => None,
                Some(t) => {
                    let mut chars = t.chars();
                    match (chars.next(), chars.next()) {
                        (Some(c), None) if ivr::is_dtmf(c) => Some(c),
                        _ => {
                            return Err(src.error(
                                &key_of("terminator"),
                                format!("terminator \"{t}\" is not one DTMF key"),
                                Some("use \"#\" (the default), \"*\", or \"\" for none".to_owned()),
                            ))
                        }
                    }
                }
            };
            NodeKind::Collect {
                prompt: need("prompt", raw.prompt)?,
                barge_in: raw.barge_in.unwrap_or(true),
                min,
                max,
                terminator,
                first_digit_timeout: secs(
                    src,
                    &key_of("first_digit_timeout_secs"),
                    raw.first_digit_timeout_secs,
                    5,
                    1,
                    60,
                )?,
                inter_digit_timeout: secs(
                    src,
                    &key_of("inter_digit_timeout_secs"),
                    raw.inter_digit_timeout_secs,
                    3,
                    1,
                    60,
                )?,
                retries: small("retries", raw.retries, 1, 0, 9, "replays")?,
                tag: raw.key.map(|k| checked_name("key", k)).transpose()?,
                next: need("next", raw.next)?,
                fail: need("fail", raw.fail)?,
            }
        }
        "queue" => {
            let queue = checked_name("queue", need("queue", raw.queue)?)?;
            let mut skills = Vec::new();
            for (s, skill) in raw.skills.unwrap_or_default().into_iter().enumerate() {
                skills.push(checked_name(&format!("skills[{s}]"), skill)?);
            }
            NodeKind::Queue {
                queue,
                skills,
                priority: small(
                    "priority",
                    raw.priority,
                    0,
                    0,
                    9,
                    "(higher is served first)",
                )?,
            }
        }
        "transfer" => NodeKind::Transfer {
            target: need("target", raw.target)?,
        },
        "set_tag" => NodeKind::SetTag {
            key: checked_name("key", need("key", raw.key)?)?,
            value: need("value", raw.value)?,
            next: need("next", raw.next)?,
        },
        "hours" => {
            let schedule = match raw.schedule {
                None => Schedule::Always,
                Some(entries) => Schedule::parse(&entries).map_err(|(s, message)| {
                    let key = if entries.is_empty() {
                        key_of("schedule")
                    } else {
                        key_of(&format!("schedule[{s}]"))
                    };
                    src.error(&key, message, Some(ivr::SCHEDULE_HELP.to_owned()))
                })?,
            };
            NodeKind::Hours {
                schedule,
                open: need("open", raw.open)?,
                closed: need("closed", raw.closed)?,
            }
        }
        "hangup" => NodeKind::Hangup {
            cause: raw.cause.map(|c| checked_name("cause", c)).transpose()?,
        },
        _ => NodeKind::Goto {
            next: need("next", raw.next)?,
        },
    };
    Ok(kind)
}

/// A menu's `options`, which must be there and not empty.
fn need_options(
    src: &Source<'_>,
    path: &str,
    raw: Option<BTreeMap<String, String>>,
) -> Result<BTreeMap<String, String>> {
    match raw {
        Some(o) if !o.is_empty() => Ok(o),
        other => Err(src.error(
            &format!("{path}.options"),
            if other.is_some() {
                "a menu without options"
            } else {
                "missing key"
            },
            Some(
                "give digit -> node choices, e.g. options = { 1 = \"mandarin\", 2 = \"cantonese\" }"
                    .to_owned(),
            ),
        )),
    }
}

/// A menu option as a key path segment: bare if TOML allows it bare, else
/// quoted (as `source.rs` renders paths).
fn option_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

/// `[prompts]`: the shipped prompts, plus those of `dir` if given. A
/// relative `dir` is relative to the directory of the config file (of the
/// working directory for the embedded demo).
fn prompts(raw: RawPrompts, src: &Source<'_>) -> Result<Prompts> {
    const KEY: &str = "prompts.dir";
    let Some(dir) = raw.dir else {
        return Ok(Prompts::shipped());
    };
    if dir.trim().is_empty() {
        return Err(src.error(
            KEY,
            "empty path",
            Some(
                "leave the key out to play the shipped prompts only, or name a directory of \
                 WAV files"
                    .to_owned(),
            ),
        ));
    }
    let base = if src.origin() == super::DEMO_ORIGIN {
        None
    } else {
        Path::new(src.origin()).parent()
    };
    let path = match base {
        Some(base) => base.join(&dir),
        None => PathBuf::from(&dir),
    };
    Prompts::with_dir(&path).map_err(|e| {
        let help = match &e {
            PromptDirError::Dir { .. } => format!(
                "name a directory of WAV files; a relative path is relative to the config \
                 file's directory ({} here)",
                base.filter(|b| !b.as_os_str().is_empty())
                    .map_or_else(|| "the working directory".to_owned(), |b| b.display().to_string())
            ),
            PromptDirError::Read { .. } => {
                "check that the gateway's user may read the file".to_owned()
            }
            PromptDirError::Name { .. } => "rename the file: its name without .wav is the name \
                                            flows use (letters, digits, '-' and '_')"
                .to_owned(),
            PromptDirError::Wav { .. } => "prompts are 8000 Hz mono 16-bit PCM WAV files; \
                                           convert with e.g. `sox in.wav -r 8000 -c 1 -b 16 out.wav`"
                .to_owned(),
        };
        src.error(KEY, e.to_string(), Some(help))
    })
}

/// A prompt name at `key` (`default` when left out) that `prompts` has.
fn prompt(
    src: &Source<'_>,
    key: &str,
    raw: Option<String>,
    default: &str,
    prompts: &[&str],
) -> Result<String> {
    let name = raw.unwrap_or_else(|| default.to_owned());
    if !prompts.contains(&name.as_str()) {
        return Err(src.error(
            key,
            format!("unknown prompt \"{name}\""),
            Some(prompt_help(&name, prompts)),
        ));
    }
    Ok(name)
}

/// `[[tenants]]`: names first (a parent may be defined after its
/// children), then each tenant's keys, then the tree has no cycle.
fn tenants(raw: Vec<RawTenant>, src: &Source<'_>) -> Result<Vec<Tenant>> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut names = Vec::with_capacity(raw.len());
    for (i, t) in raw.iter().enumerate() {
        let name = name(
            src,
            &format!("tenants[{i}].name"),
            t.name.clone(),
            "every [[tenants]] table needs a name, e.g. name = \"guangzhou\"",
        )?;
        unique(src, &mut seen, "tenants", i, &name)?;
        names.push(name);
    }
    let known: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut tenants = Vec::with_capacity(raw.len());
    for (i, (t, name)) in raw.into_iter().zip(&names).enumerate() {
        let path = format!("tenants[{i}]");
        let parent = match t.parent {
            None => None,
            Some(p) if p == *name => {
                return Err(src.error(
                    &format!("{path}.parent"),
                    format!("tenant \"{name}\" is its own parent"),
                    Some(
                        "parent names the tenant above this one (a city's province); leave it \
                         out for a top-level tenant"
                            .to_owned(),
                    ),
                ))
            }
            Some(p) => Some(reference(
                src,
                &format!("{path}.parent"),
                Some(p),
                &known,
                Table::Tenants,
                "",
            )?),
        };
        let utc_offset_minutes = utc_offset(src, &format!("{path}.utc_offset"), t.utc_offset)?;
        let hours = match t.hours {
            None => Schedule::Always,
            Some(entries) => Schedule::parse(&entries).map_err(|(s, message)| {
                let key = if entries.is_empty() {
                    format!("{path}.hours")
                } else {
                    format!("{path}.hours[{s}]")
                };
                src.error(&key, message, Some(ivr::SCHEDULE_HELP.to_owned()))
            })?,
        };
        let overflow_to_parent = t.overflow_to_parent.unwrap_or(false);
        if overflow_to_parent && parent.is_none() {
            return Err(src.error(
                &format!("{path}.overflow_to_parent"),
                format!("tenant \"{name}\" overflows to its parent, but has no parent"),
                Some(
                    "set parent to the tenant that takes the overflow, e.g. parent = \
                     \"province\", or remove overflow_to_parent"
                        .to_owned(),
                ),
            ));
        }
        tenants.push(Tenant {
            name: name.clone(),
            parent,
            utc_offset_minutes,
            hours,
            overflow_to_parent,
        });
    }
    no_parent_cycle(&tenants, src)?;
    Ok(tenants)
}

/// The parents form a tree: following them from any tenant ends at a
/// tenant without one. A cycle is named from its first tenant in the file.
fn no_parent_cycle(tenants: &[Tenant], src: &Source<'_>) -> Result<()> {
    let index = |name: &str| tenants.iter().position(|t| t.name == name);
    for (i, tenant) in tenants.iter().enumerate() {
        let mut chain = vec![tenant.name.as_str()];
        let mut at = i;
        // A path longer than the table has repeated a tenant.
        for _ in 0..tenants.len() {
            let Some(next) = tenants[at].parent.as_deref().and_then(index) else {
                break;
            };
            chain.push(tenants[next].name.as_str());
            if next == i {
                return Err(src.error(
                    &format!("tenants[{i}].parent"),
                    format!("parent cycle: {}", chain.join(" -> ")),
                    Some(
                        "tenants form a tree (province -> city -> county): remove the parent \
                         of the tenant at the top of it"
                            .to_owned(),
                    ),
                ));
            }
            at = next;
        }
    }
    Ok(())
}

/// Minutes east of UTC written `"+HH:MM"` or `"-HH:MM"`, at most 14 hours.
fn parse_utc_offset(text: &str) -> Option<i32> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(h) || !two_digits(m) {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    let minutes = h * 60 + m;
    (m < 60 && minutes <= 14 * 60).then_some(sign * minutes)
}

fn utc_offset(src: &Source<'_>, key: &str, raw: Option<String>) -> Result<i32> {
    let Some(text) = raw else {
        return Ok(8 * 60);
    };
    parse_utc_offset(&text).ok_or_else(|| {
        src.error(
            key,
            format!("invalid UTC offset \"{text}\"; expected \"+HH:MM\" or \"-HH:MM\" from -14:00 to +14:00"),
            Some("the tenant's local time is UTC plus this, for its hours: \"+08:00\" in China (the default)".to_owned()),
        )
    })
}

/// What `[[lines]]` refer to.
struct Known<'a> {
    tenants: &'a [Tenant],
    flows: &'a [Arc<Flow>],
    routes: &'a [Route],
    prompts: &'a [&'a str],
}

/// A line's own keys, before a merged line's flow is built.
struct LineDraft {
    number: String,
    tenant: String,
    mode: LineMode,
    flow: DraftFlow,
    topic: Option<String>,
    skills: Vec<String>,
    priority: u8,
    survey: bool,
    closed_flow: Option<Arc<Flow>>,
}

/// The flow a line names, or for a merged line what its flow is built from.
enum DraftFlow {
    Own(Arc<Flow>),
    /// The `into` line's index in the file, its number, the announcement.
    Into(usize, String, String),
}

const MODES: [(&str, LineMode); 4] = [
    ("main", LineMode::Main),
    ("dual", LineMode::Dual),
    ("dual_retained", LineMode::DualRetained),
    ("merged", LineMode::Merged),
];

/// `[[lines]]`: number, tenant and mode of every line first (a merged
/// line's `into` may name a line further down), then each line's keys,
/// then the merged lines' flows (the `into` line's flow after the
/// announcement).
fn lines(raw: Vec<RawLine>, known: &Known<'_>, src: &Source<'_>) -> Result<Vec<Line>> {
    if !raw.is_empty() && known.tenants.is_empty() {
        return Err(src.error(
            "lines[0].tenant",
            "there are [[lines]] but no [[tenants]]: every line belongs to a tenant",
            Some(
                "add a tenant (a centre) before the lines, e.g. [[tenants]] name = \"city\", \
                 and set tenant = \"city\" on each line"
                    .to_owned(),
            ),
        ));
    }
    let tenant_names: Vec<&str> = known.tenants.iter().map(|t| t.name.as_str()).collect();
    let mut heads: Vec<(String, String, LineMode)> = Vec::with_capacity(raw.len());
    let mut numbers: HashMap<String, usize> = HashMap::new();
    for (i, l) in raw.iter().enumerate() {
        let path = format!("lines[{i}]");
        let number = line_number(src, &path, l.number.clone(), known.routes, &numbers)?;
        numbers.insert(number.clone(), i);
        let tenant = reference(
            src,
            &format!("{path}.tenant"),
            l.tenant.clone(),
            &tenant_names,
            Table::Tenants,
            "name the [[tenants]] table (the centre) the line belongs to",
        )?;
        let mode = line_mode(src, &path, l.mode.as_deref())?;
        heads.push((number, tenant, mode));
    }
    let mut drafts = Vec::with_capacity(raw.len());
    for (i, l) in raw.into_iter().enumerate() {
        drafts.push(line(src, i, l, &heads, known)?);
    }
    let mut lines = Vec::with_capacity(drafts.len());
    for (i, d) in drafts.iter().enumerate() {
        let (flow, into) = match &d.flow {
            DraftFlow::Own(flow) => (Arc::clone(flow), None),
            DraftFlow::Into(j, into, announcement) => {
                // `into` was checked to be a main line, and a main line
                // names its own flow.
                let DraftFlow::Own(base) = &drafts[*j].flow else {
                    return Err(src.error(
                        &format!("lines[{i}].into"),
                        format!("line \"{into}\" is itself merged"),
                        Some("a merged line continues into a main line".to_owned()),
                    ));
                };
                let name = format!("{}+{}", d.number, base.name);
                let flow = ivr::with_announcement(base, announcement, &name);
                (Arc::new(flow), Some(into.clone()))
            }
        };
        lines.push(Line {
            number: d.number.clone(),
            tenant: d.tenant.clone(),
            mode: d.mode,
            flow,
            into,
            topic: d.topic.clone(),
            skills: d.skills.clone(),
            priority: d.priority,
            survey: d.survey,
            closed_flow: d.closed_flow.clone(),
        });
    }
    Ok(lines)
}

/// A line's `number`: written like a route's, not `"*"`, unique among the
/// lines (`seen`), and no route's number.
fn line_number(
    src: &Source<'_>,
    path: &str,
    raw: Option<String>,
    routes: &[Route],
    seen: &HashMap<String, usize>,
) -> Result<String> {
    let key = format!("{path}.number");
    let Some(number) = raw else {
        return Err(src.error(
            &key,
            "missing key",
            Some("give the number the line answers, e.g. number = \"12345\"".to_owned()),
        ));
    };
    if number == Route::DEFAULT {
        return Err(src.error(
            &key,
            "\"*\" is not a line number",
            Some(
                "a line answers one dialled number, e.g. \"12345\"; \"*\" alone is only for the \
                 default [[routes]] table"
                    .to_owned(),
            ),
        ));
    }
    check_number(src, &key, &number)?;
    if let Some(first) = seen.get(&number) {
        return Err(src.error(
            &key,
            format!(
                "duplicate line number \"{number}\"; first defined at {}",
                located(src, &format!("lines[{first}].number"))
            ),
            Some("a number has one line: remove one".to_owned()),
        ));
    }
    if let Some(k) = routes.iter().position(|r| r.number == number) {
        return Err(src.error(
            &key,
            format!(
                "line number \"{number}\" is also the number of {}",
                located(src, &format!("routes[{k}].number"))
            ),
            Some(
                "a number is a line (answered here: tenant, flow) or a route (sent straight to \
                 a target), not both: remove the [[routes]] table or the [[lines]] table"
                    .to_owned(),
            ),
        ));
    }
    Ok(number)
}

fn line_mode(src: &Source<'_>, path: &str, raw: Option<&str>) -> Result<LineMode> {
    let key = format!("{path}.mode");
    let modes: Vec<&str> = MODES.iter().map(|(m, _)| *m).collect();
    let help = "\"main\": 12345 itself; \"dual\": a kept number whose calls enter the 12345 \
                queues; \"dual_retained\": a kept number whose department kept its own seats; \
                \"merged\": a cancelled number, an announcement then the 12345 flow";
    let Some(text) = raw else {
        return Err(src.error(&key, "missing key", Some(help.to_owned())));
    };
    match MODES.iter().find(|(m, _)| *m == text) {
        Some((_, mode)) => Ok(*mode),
        None => {
            let mut help = help.to_owned();
            if let Some(near) = closest(text, &modes) {
                help = format!("did you mean \"{near}\"? {help}");
            }
            Err(src.error(
                &key,
                format!(
                    "unknown mode \"{text}\"; expected one of: {}",
                    modes.join(", ")
                ),
                Some(help),
            ))
        }
    }
}

/// The keys of line `i` after its number, tenant and mode (`heads[i]`).
fn line(
    src: &Source<'_>,
    i: usize,
    l: RawLine,
    heads: &[(String, String, LineMode)],
    known: &Known<'_>,
) -> Result<LineDraft> {
    let path = format!("lines[{i}]");
    let key_of = |k: &str| format!("{path}.{k}");
    let (number, tenant, mode) = heads[i].clone();
    let flow_names: Vec<&str> = known.flows.iter().map(|f| f.name.as_str()).collect();
    let flow_ref = |k: &str, raw: Option<String>, missing_help: &str| -> Result<Arc<Flow>> {
        let key = key_of(k);
        let name = reference(src, &key, raw, &flow_names, Table::Flows, missing_help)?;
        known
            .flows
            .iter()
            .find(|f| f.name == name)
            .map(Arc::clone)
            .ok_or_else(|| src.error(&key, format!("unknown flow \"{name}\""), None))
    };
    let flow = if mode == LineMode::Merged {
        if l.flow.is_some() {
            return Err(src.error(
                &key_of("flow"),
                format!(
                    "line \"{number}\" is merged: it runs the flow of the line it is merged into"
                ),
                Some(
                    "remove flow; a merged line takes into = \"12345\" (the main line whose \
                     flow its calls continue into, after the announcement)"
                        .to_owned(),
                ),
            ));
        }
        let into = merged_into(src, &path, l.into, &number, &tenant, heads)?;
        let announcement = prompt(
            src,
            &key_of("announcement"),
            l.announcement,
            "merged_line",
            known.prompts,
        )?;
        DraftFlow::Into(into.0, into.1, announcement)
    } else {
        for (k, set) in [
            ("into", l.into.is_some()),
            ("announcement", l.announcement.is_some()),
        ] {
            if set {
                return Err(src.error(
                    &key_of(k),
                    format!("`{k}` applies only to a merged line; line \"{number}\" is {mode}"),
                    Some(
                        "remove it, or make the line mode = \"merged\" (which takes into and \
                         announcement instead of flow)"
                            .to_owned(),
                    ),
                ));
            }
        }
        DraftFlow::Own(flow_ref(
            "flow",
            l.flow,
            &format!(
                "name the [[flows]] table a {mode} line's calls run, e.g. flow = \"12345-intake\""
            ),
        )?)
    };
    let topic = l
        .topic
        .map(|t| name(src, &key_of("topic"), Some(t), ""))
        .transpose()?;
    let mut skills = Vec::new();
    for (s, skill) in l.skills.unwrap_or_default().into_iter().enumerate() {
        skills.push(name(
            src,
            &key_of(&format!("skills[{s}]")),
            Some(skill),
            "",
        )?);
    }
    let priority = ranged(
        src,
        &key_of("priority"),
        l.priority,
        0,
        0,
        9,
        "(added to the queue priority)",
    )? as u8;
    let closed_flow = match l.closed_flow {
        Some(c) => Some(flow_ref("closed_flow", Some(c), "")?),
        None => {
            let (t, keeps_hours) = known
                .tenants
                .iter()
                .enumerate()
                .find(|(_, t)| t.name == tenant)
                .map_or((0, false), |(k, t)| (k, t.hours != Schedule::Always));
            if keeps_hours {
                return Err(src.error(
                    &key_of("closed_flow"),
                    format!(
                        "missing key: line \"{number}\" needs a flow for calls while its tenant \
                         is closed: tenant \"{tenant}\" keeps hours at {}",
                        located(src, &format!("tenants[{t}].hours"))
                    ),
                    Some(format!(
                        "name a [[flows]] table ({}), e.g. closed_flow = \"after-hours\" \
                         (a play of the opening hours, then a hangup); or open the tenant \
                         7x24 by leaving its hours out",
                        known_list(Table::Flows, &flow_names)
                    )),
                ));
            }
            None
        }
    };
    Ok(LineDraft {
        number,
        tenant,
        mode,
        flow,
        topic,
        skills,
        priority,
        survey: l.survey.unwrap_or(true),
        closed_flow,
    })
}

/// A merged line's `into`: the number of a main line; left out, the one
/// main line of the same tenant. Gives (its index, its number).
fn merged_into(
    src: &Source<'_>,
    path: &str,
    raw: Option<String>,
    number: &str,
    tenant: &str,
    heads: &[(String, String, LineMode)],
) -> Result<(usize, String)> {
    let key = format!("{path}.into");
    let mains: Vec<(usize, &str, &str)> = heads
        .iter()
        .enumerate()
        .filter(|(_, (_, _, m))| *m == LineMode::Main)
        .map(|(k, (n, t, _))| (k, n.as_str(), t.as_str()))
        .collect();
    let main_list = if mains.is_empty() {
        "no line has mode = \"main\" yet".to_owned()
    } else {
        let numbers: Vec<&str> = mains.iter().map(|(_, n, _)| *n).collect();
        format!("main lines: {}", numbers.join(", "))
    };
    let Some(into) = raw else {
        let own: Vec<&(usize, &str, &str)> =
            mains.iter().filter(|(_, _, t)| *t == tenant).collect();
        return match own.as_slice() {
            [(k, n, _)] => Ok((*k, (*n).to_owned())),
            [] => Err(src.error(
                &key,
                format!(
                    "missing key: tenant \"{tenant}\" has no main line for merged line \
                     \"{number}\" to continue into"
                ),
                Some(format!(
                    "add the tenant's 12345 line (mode = \"main\"), or set into to the number of \
                     a main line ({main_list})"
                )),
            )),
            several => {
                let numbers: Vec<&str> = several.iter().map(|(_, n, _)| *n).collect();
                Err(src.error(
                    &key,
                    format!(
                        "missing key: tenant \"{tenant}\" has several main lines ({}); merged \
                         line \"{number}\" must say which one it continues into",
                        numbers.join(", ")
                    ),
                    Some(format!("set into = \"{}\"", numbers[0])),
                ))
            }
        };
    };
    if into == number {
        return Err(src.error(
            &key,
            format!("line \"{number}\" is merged into itself"),
            Some(format!(
                "into names the main line the calls continue into ({main_list})"
            )),
        ));
    }
    match heads.iter().position(|(n, _, _)| *n == into) {
        Some(k) if heads[k].2 == LineMode::Main => Ok((k, into)),
        Some(k) => Err(src.error(
            &key,
            format!(
                "line \"{into}\" is a {} line; a merged line continues into a main line",
                heads[k].2
            ),
            Some(format!("name a line with mode = \"main\" ({main_list})")),
        )),
        None => Err(src.error(
            &key,
            format!("no line has number \"{into}\""),
            Some(format!(
                "into is the number of a [[lines]] table with mode = \"main\" ({main_list})"
            )),
        )),
    }
}

/// `[survey]`: the prompts must exist; one key 1–5 within the timeout.
fn survey(raw: RawSurvey, prompts: &[&str], src: &Source<'_>) -> Result<Survey> {
    let prompt_name = prompt(src, "survey.prompt", raw.prompt, "survey", prompts)?;
    let thanks = prompt(src, "survey.thanks", raw.thanks, "thank_you", prompts)?;
    let timeout = secs(src, "survey.timeout_secs", raw.timeout_secs, 10, 1, 60)?;
    let retries = ranged(src, "survey.retries", raw.retries, 1, 0, 9, "replays")? as u8;
    Ok(Survey {
        prompt: prompt_name,
        thanks,
        timeout,
        retries,
    })
}

/// `[blocklist]`: numbers stored as [`caller_key`]s, each once.
fn blocklist(raw: RawBlocklist, prompts: &[&str], src: &Source<'_>) -> Result<Blocklist> {
    let mut numbers: Vec<String> = Vec::new();
    let listed = raw.numbers.unwrap_or_default();
    for (j, text) in listed.iter().enumerate() {
        let key = format!("blocklist.numbers[{j}]");
        let canonical = caller_key(text);
        let digits = canonical.strip_prefix('+').unwrap_or(&canonical);
        if digits.len() < 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(src.error(
                &key,
                format!(
                    "invalid caller number \"{text}\"; expected at least 3 digits, optionally \
                     after a leading +"
                ),
                Some(
                    "write the number as carriers present it, e.g. \"13800138000\" or \
                     \"+86 138 0013 8000\" (separators, +86 and 0086 are removed before callers \
                     are compared)"
                        .to_owned(),
                ),
            ));
        }
        if let Some(first) = numbers.iter().position(|n| *n == canonical) {
            return Err(src.error(
                &key,
                format!(
                    "\"{text}\" is the same caller as \"{}\" at {}: both are {canonical} once \
                     separators and the country code (+86, 0086) are removed",
                    listed[first],
                    located(src, &format!("blocklist.numbers[{first}]")),
                ),
                Some("list each caller once: remove one".to_owned()),
            ));
        }
        numbers.push(canonical);
    }
    let prompt = prompt(src, "blocklist.prompt", raw.prompt, "blocked", prompts)?;
    Ok(Blocklist { numbers, prompt })
}

#[cfg(test)]
mod tests {
    use super::parse_utc_offset;

    #[test]
    fn utc_offsets() {
        for (text, minutes) in [
            ("+08:00", Some(480)),
            ("-05:30", Some(-330)),
            ("+00:00", Some(0)),
            ("-00:00", Some(0)),
            ("+14:00", Some(840)),
            ("-14:00", Some(-840)),
            ("+14:01", None),
            ("+08:60", None),
            ("08:00", None),
            ("+8:00", None),
            ("+0800", None),
            ("UTC+8", None),
            ("", None),
            ("+", None),
        ] {
            assert_eq!(parse_utc_offset(text), minutes, "{text:?}");
        }
    }
}
