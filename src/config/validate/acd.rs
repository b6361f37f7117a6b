//! `[[queues]]`, `[acd]`, `[[agents]]` and `[registrar]`: the keys of the
//! gateway's own agents and the queues they serve.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::super::raw::{RawAcd, RawAgent, RawEscalation, RawQueue, RawRegistrar};
use super::super::{
    AcdSettings, Agent, Escalation, EscalationStep, Queue, Registrar, Secret, Target, Tenant,
};
use super::{check_number, name, prompt, ranged, reference, secs, unique, Result, Table};
use super::{Source, MAX_NAME};
use crate::acd::Strategy;

/// Reasons the gateway itself puts agents in `not_ready` with.
const BUILT_IN_REASONS: [&str; 2] = ["no_answer", "unreachable"];

/// Skill levels: 1 (basic) to 5 (expert).
fn skill_levels(
    src: &Source<'_>,
    key: &str,
    raw: Option<BTreeMap<String, i64>>,
    what: &str,
) -> Result<Vec<(String, u8)>> {
    let mut out = Vec::new();
    for (skill, level) in raw.unwrap_or_default() {
        let skey = format!("{key}.{skill}");
        name(
            src,
            &skey,
            Some(skill.clone()),
            "skills are written skill = level, e.g. { general = 3 }",
        )?;
        let Some(level) = u8::try_from(level).ok().filter(|l| (1..=5).contains(l)) else {
            return Err(src.error(
                &skey,
                format!("{what} {level} is out of range; expected 1 to 5"),
                Some("levels go from 1 (basic) to 5 (expert), e.g. { general = 3 }".to_owned()),
            ));
        };
        out.push((skill, level));
    }
    Ok(out)
}

/// A list of group names.
fn groups(src: &Source<'_>, key: &str, raw: Option<Vec<String>>) -> Result<Vec<String>> {
    let raw = raw.unwrap_or_default();
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for (i, g) in raw.into_iter().enumerate() {
        let g = name(src, &format!("{key}[{i}]"), Some(g), "")?;
        if !out.contains(&g) {
            out.push(g);
        }
    }
    Ok(out)
}

/// The ACD keys of a queue, to refuse them on a queue with a `target`.
fn acd_keys(q: &RawQueue) -> [(&'static str, bool); 13] {
    [
        ("skills", q.skills.is_some()),
        ("groups", q.groups.is_some()),
        ("strategy", q.strategy.is_some()),
        ("ring_timeout_secs", q.ring_timeout_secs.is_some()),
        ("wrap_up_secs", q.wrap_up_secs.is_some()),
        ("max_wait_secs", q.max_wait_secs.is_some()),
        ("max_length", q.max_length.is_some()),
        ("treatment", q.treatment.is_some()),
        ("music", q.music.is_some()),
        ("comfort_every_secs", q.comfort_every_secs.is_some()),
        ("comfort_prompt", q.comfort_prompt.is_some()),
        ("early_escalation_secs", q.early_escalation_secs.is_some()),
        ("escalation", !q.escalation.is_empty()),
    ]
}

fn strategy(src: &Source<'_>, key: &str, raw: Option<&str>) -> Result<Strategy> {
    match raw {
        None | Some("longest_idle") => Ok(Strategy::LongestIdle),
        Some("skill_level_then_longest_idle") => Ok(Strategy::SkillLevelThenLongestIdle),
        Some(other) => Err(src.error(
            key,
            format!("unknown strategy \"{other}\""),
            Some(
                "expected \"longest_idle\" (the default) or \"skill_level_then_longest_idle\""
                    .to_owned(),
            ),
        )),
    }
}

/// `[[queues]]`: each belongs to a tenant; its calls go to the gateway's
/// agents, or with `target` to an external contact centre.
pub(super) fn queues(
    raw: Vec<RawQueue>,
    tenants: &[Tenant],
    targets: &[Target],
    prompts: &[&str],
    src: &Source<'_>,
) -> Result<Vec<Queue>> {
    let tenant_names: Vec<&str> = tenants.iter().map(|t| t.name.as_str()).collect();
    let target_names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, q) in raw.iter().enumerate() {
        let n = name(
            src,
            &format!("queues[{i}].name"),
            q.name.clone(),
            "every [[queues]] table needs a name, e.g. name = \"general\"",
        )?;
        unique(src, &mut names, "queues", i, &n)?;
    }
    let mut queues = Vec::with_capacity(raw.len());
    let mut pending: Vec<Vec<RawEscalation>> = Vec::with_capacity(raw.len());
    for (i, mut q) in raw.into_iter().enumerate() {
        let path = format!("queues[{i}]");
        let qname = q.name.clone().unwrap_or_default();
        let tenant = reference(
            src,
            &format!("{path}.tenant"),
            q.tenant.take(),
            &tenant_names,
            Table::Tenants,
            "name the [[tenants]] table the queue belongs to",
        )?;
        let target = match q.target.take() {
            None => None,
            Some(t) => {
                if let Some((key, _)) = acd_keys(&q).into_iter().find(|(_, set)| *set) {
                    return Err(src.error(
                        &format!("{path}.{key}"),
                        format!("queue \"{qname}\" delivers its calls to a target; {key} is for queues the gateway's agents answer"),
                        Some("remove target to have the gateway's [[agents]] answer the queue, or remove this key".to_owned()),
                    ));
                }
                Some(reference(
                    src,
                    &format!("{path}.target"),
                    Some(t),
                    &target_names,
                    Table::Targets,
                    "",
                )?)
            }
        };
        let skills = skill_levels(
            src,
            &format!("{path}.skills"),
            q.skills.take(),
            "minimum level",
        )?;
        let groups = groups(src, &format!("{path}.groups"), q.groups.take())?;
        let strategy = strategy(src, &format!("{path}.strategy"), q.strategy.as_deref())?;
        let ring_timeout = secs(
            src,
            &format!("{path}.ring_timeout_secs"),
            q.ring_timeout_secs,
            15,
            3,
            300,
        )?;
        let wrap_up = secs(
            src,
            &format!("{path}.wrap_up_secs"),
            q.wrap_up_secs,
            10,
            0,
            3600,
        )?;
        let max_wait = q
            .max_wait_secs
            .map(|v| {
                secs(
                    src,
                    &format!("{path}.max_wait_secs"),
                    Some(v),
                    600,
                    10,
                    86_400,
                )
            })
            .transpose()?;
        let max_length = q
            .max_length
            .map(|v| {
                ranged(
                    src,
                    &format!("{path}.max_length"),
                    Some(v),
                    1000,
                    1,
                    100_000,
                    "calls",
                )
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
            })
            .transpose()?;
        let treatment = prompt(
            src,
            &format!("{path}.treatment"),
            q.treatment.take(),
            "queue_full",
            prompts,
        )?;
        let music = prompt(
            src,
            &format!("{path}.music"),
            q.music.take(),
            "hold_music",
            prompts,
        )?;
        let comfort_every = q
            .comfort_every_secs
            .map(|v| {
                secs(
                    src,
                    &format!("{path}.comfort_every_secs"),
                    Some(v),
                    30,
                    10,
                    600,
                )
            })
            .transpose()?;
        let comfort_prompt = prompt(
            src,
            &format!("{path}.comfort_prompt"),
            q.comfort_prompt.take(),
            "queue_comfort",
            prompts,
        )?;
        let early_escalation = q
            .early_escalation_secs
            .map(|v| {
                secs(
                    src,
                    &format!("{path}.early_escalation_secs"),
                    Some(v),
                    5,
                    1,
                    14,
                )
            })
            .transpose()?;
        pending.push(std::mem::take(&mut q.escalation));
        queues.push(Queue {
            name: qname,
            tenant,
            target,
            skills,
            groups,
            strategy,
            ring_timeout,
            wrap_up,
            max_wait,
            max_length,
            treatment,
            music,
            comfort_every,
            comfort_prompt,
            announce_position: q.announce_position.unwrap_or(true),
            early_escalation,
            escalation: Vec::new(),
        });
    }
    for (i, steps) in pending.into_iter().enumerate() {
        let escalation = escalation(i, steps, &queues, tenants, src)?;
        if let Some(q) = queues.get_mut(i) {
            q.escalation = escalation;
        }
    }
    Ok(queues)
}

/// `[[queues.escalation]]` of `queues[i]`: increasing waits, one step each,
/// overflow only to an agents' queue of the same tenant or of the parent
/// that takes its overflow.
fn escalation(
    i: usize,
    raw: Vec<RawEscalation>,
    queues: &[Queue],
    tenants: &[Tenant],
    src: &Source<'_>,
) -> Result<Vec<Escalation>> {
    let Some(me) = queues.get(i) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<Escalation> = Vec::with_capacity(raw.len());
    for (k, e) in raw.into_iter().enumerate() {
        let path = format!("queues[{i}].escalation[{k}]");
        let Some(after_secs) = e.after_secs else {
            return Err(src.error(
                &format!("{path}.after_secs"),
                "missing key",
                Some("the call's wait at which the step applies, e.g. after_secs = 20".to_owned()),
            ));
        };
        let after = secs(
            src,
            &format!("{path}.after_secs"),
            Some(after_secs),
            20,
            1,
            86_400,
        )?;
        if let Some(prev) = out.last() {
            if after < prev.after {
                return Err(src.error(
                    &format!("{path}.after_secs"),
                    format!(
                        "{after_secs} s comes before the previous step's {} s",
                        prev.after.as_secs()
                    ),
                    Some("list escalation steps in order of after_secs".to_owned()),
                ));
            }
        }
        let chosen = [
            e.drop_skill.is_some(),
            e.min_level.is_some(),
            e.overflow.is_some(),
        ];
        if chosen.iter().filter(|c| **c).count() != 1 {
            return Err(src.error(
                &path,
                "an escalation step does exactly one thing",
                Some(
                    "give one of drop_skill = \"cantonese\", min_level = 1 or overflow = \"general\""
                        .to_owned(),
                ),
            ));
        }
        let step = if let Some(skill) = e.drop_skill {
            EscalationStep::DropSkill(name(src, &format!("{path}.drop_skill"), Some(skill), "")?)
        } else if let Some(level) = e.min_level {
            let level = ranged(
                src,
                &format!("{path}.min_level"),
                Some(level),
                1,
                1,
                5,
                "(a level)",
            )?;
            EscalationStep::MinLevel(u8::try_from(level).unwrap_or(1))
        } else {
            let key = format!("{path}.overflow");
            let agents_queues: Vec<&str> = queues
                .iter()
                .filter(|q| q.target.is_none() && q.name != me.name)
                .map(|q| q.name.as_str())
                .collect();
            let to = reference(src, &key, e.overflow, &agents_queues, Table::Queues, "").map_err(
                |err| super::super::ConfigError {
                    help: err.help.map(|h| {
                        format!(
                            "{h}; an overflow queue is another queue the gateway's agents answer"
                        )
                    }),
                    ..err
                },
            )?;
            let target_tenant = queues
                .iter()
                .find(|q| q.name == to)
                .map(|q| q.tenant.clone())
                .unwrap_or_default();
            if target_tenant != me.tenant {
                let mine = tenants.iter().find(|t| t.name == me.tenant);
                let ok = mine.is_some_and(|t| {
                    t.overflow_to_parent && t.parent.as_deref() == Some(target_tenant.as_str())
                });
                if !ok {
                    return Err(src.error(
                        &key,
                        format!(
                            "queue \"{to}\" belongs to tenant \"{target_tenant}\", not to \"{}\" or the parent it overflows to",
                            me.tenant
                        ),
                        Some(format!(
                            "overflow to a queue of tenant \"{}\", or set parent = \"{target_tenant}\" and overflow_to_parent = true on tenant \"{}\"",
                            me.tenant, me.tenant
                        )),
                    ));
                }
            }
            EscalationStep::Overflow(to)
        };
        out.push(Escalation { after, step });
    }
    Ok(out)
}

/// `[acd]`
pub(super) fn acd(raw: RawAcd, src: &Source<'_>) -> Result<AcdSettings> {
    let reasons = raw.not_ready_reasons.unwrap_or_else(|| {
        ["break", "meeting", "training", "lunch"]
            .map(str::to_owned)
            .to_vec()
    });
    if reasons.is_empty() {
        return Err(src.error(
            "acd.not_ready_reasons",
            "no reasons given",
            Some("agents need at least one reason to go not ready, e.g. [\"break\"]".to_owned()),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(reasons.len());
    for (i, r) in reasons.into_iter().enumerate() {
        let key = format!("acd.not_ready_reasons[{i}]");
        let r = name(src, &key, Some(r), "")?;
        if BUILT_IN_REASONS.contains(&r.as_str()) {
            return Err(src.error(
                &key,
                format!("\"{r}\" is a reason the gateway sets itself"),
                Some("no_answer (ring-no-answer) and unreachable are set by the gateway; choose another name".to_owned()),
            ));
        }
        if out.contains(&r) {
            return Err(src.error(
                &key,
                format!("duplicate reason \"{r}\""),
                Some("list each reason once".to_owned()),
            ));
        }
        out.push(r);
    }
    if out.len() > 9 {
        return Err(src.error(
            "acd.not_ready_reasons",
            format!("{} reasons; at most 9", out.len()),
            Some("feature code *24N picks reason N (1-9)".to_owned()),
        ));
    }
    let service_window = secs(
        src,
        "acd.service_window_secs",
        raw.service_window_secs,
        1800,
        60,
        86_400,
    )?;
    Ok(AcdSettings {
        not_ready_reasons: out,
        service_window,
    })
}

/// An agent id: the SIP username of its phone.
fn agent_id(src: &Source<'_>, key: &str, raw: Option<String>) -> Result<String> {
    let Some(id) = raw else {
        return Err(src.error(
            key,
            "missing key",
            Some("every [[agents]] table needs an id, the username its phone registers with, e.g. id = \"1001\"".to_owned()),
        ));
    };
    let ok = !id.is_empty()
        && id.len() <= 32
        && !id.starts_with('*')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        return Err(src.error(
            key,
            format!("invalid agent id \"{id}\""),
            Some("1 to 32 letters, digits, '-', '_' and '.', e.g. \"1001\"".to_owned()),
        ));
    }
    Ok(id)
}

/// `[[agents]]`
pub(super) fn agents(
    raw: Vec<RawAgent>,
    tenants: &[Tenant],
    targets: &[Target],
    src: &Source<'_>,
) -> Result<Vec<Agent>> {
    let tenant_names: Vec<&str> = tenants.iter().map(|t| t.name.as_str()).collect();
    let target_names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, a) in raw.into_iter().enumerate() {
        let path = format!("agents[{i}]");
        let id = agent_id(src, &format!("{path}.id"), a.id)?;
        if let Some(first) = ids.get(&id) {
            return Err(src.error(
                &format!("{path}.id"),
                format!("duplicate agent id \"{id}\"; first defined at agents[{first}]"),
                Some("every agent needs its own id".to_owned()),
            ));
        }
        ids.insert(id.clone(), i);
        let display = a.name.unwrap_or_else(|| id.clone());
        if display.trim().is_empty() || display.chars().count() > MAX_NAME {
            return Err(src.error(
                &format!("{path}.name"),
                "invalid display name",
                Some(format!("1 to {MAX_NAME} characters, e.g. name = \"Li Na\"")),
            ));
        }
        let Some(password) = a.password else {
            return Err(src.error(
                &format!("{path}.password"),
                "missing key",
                Some("the password the agent's phone registers with (at least 8 characters), e.g. the output of: openssl rand -hex 8".to_owned()),
            ));
        };
        if password.chars().count() < 8 {
            return Err(src.error(
                &format!("{path}.password"),
                "password too short",
                Some(
                    "use at least 8 characters, e.g. the output of: openssl rand -hex 8".to_owned(),
                ),
            ));
        }
        let tenant = reference(
            src,
            &format!("{path}.tenant"),
            a.tenant,
            &tenant_names,
            Table::Tenants,
            "name the [[tenants]] table the agent works for",
        )?;
        let skills = skill_levels(src, &format!("{path}.skills"), a.skills, "level")?;
        let groups = groups(src, &format!("{path}.groups"), a.groups)?;
        let remote = a
            .remote
            .map(|r| {
                reference(
                    src,
                    &format!("{path}.remote"),
                    Some(r),
                    &target_names,
                    Table::Targets,
                    "",
                )
            })
            .transpose()?;
        if let Some(n) = &a.remote_number {
            if remote.is_none() {
                return Err(src.error(
                    &format!("{path}.remote_number"),
                    "remote_number without remote",
                    Some("set remote to the [[targets]] table that reaches the number (e.g. a carrier trunk), or remove remote_number".to_owned()),
                ));
            }
            check_number(src, &format!("{path}.remote_number"), n)?;
        }
        out.push(Agent {
            id,
            name: display,
            password: Secret::new(password),
            tenant,
            skills,
            groups,
            remote,
            remote_number: a.remote_number,
        });
    }
    Ok(out)
}

/// `[registrar]`
pub(super) fn registrar(raw: RawRegistrar, node_name: &str, src: &Source<'_>) -> Result<Registrar> {
    let realm = raw.realm.unwrap_or_else(|| node_name.to_owned());
    let ok = !realm.is_empty()
        && realm.len() <= MAX_NAME
        && realm
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        return Err(src.error(
            "registrar.realm",
            format!("invalid realm \"{realm}\""),
            Some("letters, digits, '-', '_' and '.', e.g. \"hotline.example.gov.cn\"; default: the node's name".to_owned()),
        ));
    }
    let min_expires = secs(
        src,
        "registrar.min_expires_secs",
        raw.min_expires_secs,
        60,
        10,
        3600,
    )?;
    let max_expires = secs(
        src,
        "registrar.max_expires_secs",
        raw.max_expires_secs,
        3600,
        60,
        86_400,
    )?;
    if max_expires < min_expires {
        return Err(src.error(
            "registrar.max_expires_secs",
            format!(
                "{} s is below min_expires_secs ({} s)",
                max_expires.as_secs(),
                min_expires.as_secs()
            ),
            Some("max_expires_secs must be at least min_expires_secs".to_owned()),
        ));
    }
    let default_expires = secs(
        src,
        "registrar.default_expires_secs",
        raw.default_expires_secs,
        600,
        10,
        86_400,
    )?
    .clamp(min_expires, max_expires);
    let lockout_failures = ranged(
        src,
        "registrar.lockout_failures",
        raw.lockout_failures,
        5,
        1,
        1000,
        "failures",
    )?;
    let lockout_window = secs(
        src,
        "registrar.lockout_window_secs",
        raw.lockout_window_secs,
        60,
        1,
        3600,
    )?;
    let lockout_for: Duration = secs(
        src,
        "registrar.lockout_secs",
        raw.lockout_secs,
        300,
        1,
        86_400,
    )?;
    Ok(Registrar {
        realm,
        min_expires,
        max_expires,
        default_expires,
        lockout_failures: u32::try_from(lockout_failures).unwrap_or(5),
        lockout_window,
        lockout_for,
    })
}
