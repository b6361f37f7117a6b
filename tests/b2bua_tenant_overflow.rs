//! "One platform, tiered use": a city's queue overflows to its province's
//! hub when the city has no agent for the caller, and a province agent
//! takes the call (`overflow_to_parent`, `[[queues.escalation]] overflow`).

mod common;

use common::{Plan, Sim, DEST, GW};
use hotline::call::b2bua::AgentCommand;
use hotline::config;
use hotline::media::shard::{MediaCommand, MediaEvent};
use hotline::sip::msg::Method;
use serde_json::Value;
use std::time::Duration;

/// Line 12345 of tenant "city" queues into "city-general", which overflows
/// after 5 s to "hub" of its parent "province"; the only agent (2001, a
/// remote seat at the Sim's destination) works for the province.
fn sim(overflow_to_parent: bool) -> Result<Sim, Box<config::ConfigError>> {
    let text = format!(
        r#"
[node]
name = "sim"
[sip]
listen = "{GW}"
[[trunks]]
name = "carrier"
sources = ["198.51.100.0/24"]
[[targets]]
name = "province-desk"
address = "{DEST}"
[[tenants]]
name = "province"
[[tenants]]
name = "city"
parent = "province"
overflow_to_parent = {overflow_to_parent}
[[queues]]
name = "hub"
tenant = "province"
[[queues]]
name = "city-general"
tenant = "city"
[[queues.escalation]]
after_secs = 5
overflow = "hub"
[[flows]]
name = "intake"
entry = "hello"
[[flows.nodes]]
name = "hello"
kind = "play"
prompt = "greeting"
next = "q"
[[flows.nodes]]
name = "q"
kind = "queue"
queue = "city-general"
[[lines]]
number = "12345"
tenant = "city"
mode = "main"
flow = "intake"
survey = false
[[agents]]
id = "2001"
password = "secret-2001"
tenant = "province"
remote = "province-desk"
"#
    );
    let c = config::parse(&text, "<sim-tenant-overflow>").map_err(Box::new)?;
    Ok(Sim::with_config(
        7,
        Plan::answer(Duration::from_millis(200)),
        c,
    ))
}

fn greeting_done(sim: &mut Sim) {
    let leg = sim
        .media_commands()
        .iter()
        .find_map(|c| match c {
            MediaCommand::Open { leg } => Some(*leg),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no leg opened"));
    sim.media_event(MediaEvent::PlaybackDone {
        leg,
        interrupted: false,
    });
    sim.run_for(Duration::from_millis(10));
}

#[test]
fn a_city_call_overflows_to_the_province_hub_and_a_province_agent_takes_it() {
    let mut sim = sim(true).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sim.agent_command("2001", &AgentCommand::Login), Ok(()));
    sim.invite("12345");
    sim.run_for(Duration::from_millis(100));
    greeting_done(&mut sim);
    // The province agent is ready, but not the city's: nobody rings yet.
    sim.run_for(Duration::from_secs(4));
    assert!(sim.dest().requests(Method::Invite).is_empty());
    // After 5 s the call moves to the hub and the province agent rings.
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.dest().requests(Method::Invite).len(), 1);
    sim.run_for(Duration::from_secs(1));
    sim.bye(0);
    sim.run_for(Duration::from_secs(1));
    let rec: Value = sim
        .records
        .iter()
        .find(|r| r.kind == "call.record")
        .map(|r| serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|| panic!("no call.record"));
    assert_eq!(rec["line"]["tenant"], "city");
    assert_eq!(rec["agent"], "2001");
    assert_eq!(rec["offers"][0]["queue"], "hub");
    assert_eq!(rec["offers"][0]["outcome"], "answered");
    let overflowed: Vec<&Value> = rec["segments"]
        .as_array()
        .map(|s| s.iter().filter(|x| x["kind"] == "overflowed").collect())
        .unwrap_or_default();
    assert_eq!(overflowed.len(), 1, "{rec}");
    assert_eq!(overflowed[0]["detail"], "from city-general to hub");
}

#[test]
fn without_overflow_to_parent_the_config_is_refused() {
    let Err(e) = sim(false) else {
        panic!("a city may not overflow to its parent without overflow_to_parent");
    };
    assert_eq!(e.key.as_deref(), Some("queues[1].escalation[0].overflow"));
    assert!(
        e.help
            .as_deref()
            .is_some_and(|h| h.contains("overflow_to_parent = true")),
        "{e}"
    );
}
