//! The core API the operators' HTTP layer exposes for agents
//! (`Gateway::agent_command`), with a remote seat: an agent reached
//! through a target, with no phone registered.

mod common;

use common::{Plan, Sim, DEST, GW};
use hotline::acd::{AcdError, AgentState};
use hotline::call::b2bua::AgentCommand;
use hotline::config::{self, Config};
use hotline::media::shard::MediaEvent;
use hotline::sip::msg::Method;
use serde_json::Value;
use std::time::Duration;

/// Line 12345 plays one prompt and queues into "general", answered by
/// agent 1001, a remote seat at the Sim's destination.
fn config() -> Config {
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
name = "home-1001"
address = "{DEST}"
[[tenants]]
name = "city"
[[queues]]
name = "general"
tenant = "city"
skills = {{ general = 1 }}
wrap_up_secs = 5
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
queue = "general"
[[lines]]
number = "12345"
tenant = "city"
mode = "main"
flow = "intake"
survey = false
[[agents]]
id = "1001"
password = "secret-1001"
tenant = "city"
skills = {{ general = 3 }}
remote = "home-1001"
remote_number = "13900139000"
"#
    );
    match config::parse(&text, "<sim-agent-api>") {
        Ok(c) => c,
        Err(e) => panic!("sim agent api config: {e}"),
    }
}

fn state(sim: &Sim) -> AgentState {
    match sim.gw.b2bua().agent_state("1001") {
        Some(s) => s.clone(),
        None => panic!("no agent 1001"),
    }
}

fn command(sim: &mut Sim, cmd: AgentCommand) -> Result<(), AcdError> {
    let done = sim.agent_command("1001", &cmd);
    sim.run_for(Duration::from_millis(10));
    done
}

/// The caller's flow prompt plays to its end: the call enters the queue.
fn greeting_done(sim: &mut Sim) {
    let leg = sim
        .media_commands()
        .iter()
        .find_map(|c| match c {
            hotline::media::shard::MediaCommand::Open { leg } => Some(*leg),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no leg opened"));
    sim.media_event(MediaEvent::PlaybackDone {
        leg,
        interrupted: false,
    });
    sim.run_for(Duration::from_millis(10));
}

fn record(sim: &Sim) -> Value {
    let item = sim
        .records
        .iter()
        .find(|r| r.kind == "call.record")
        .unwrap_or_else(|| panic!("no call.record"));
    serde_json::from_str(&item.body).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn api_logs_a_remote_seat_in_and_it_takes_the_call() {
    let mut sim = Sim::with_config(1, Plan::answer(Duration::from_millis(300)), config());
    assert_eq!(state(&sim), AgentState::LoggedOut);
    assert_eq!(
        command(&mut sim, AgentCommand::Ready),
        Err(AcdError::LoggedOut)
    );
    assert_eq!(command(&mut sim, AgentCommand::Login), Ok(()));
    assert_eq!(state(&sim), AgentState::Ready);

    sim.invite("12345");
    sim.run_for(Duration::from_millis(100));
    greeting_done(&mut sim);
    sim.run_for(Duration::from_secs(1));
    // The remote seat was dialled at its number through its target.
    let invites = sim.dest().requests(Method::Invite);
    assert_eq!(invites.len(), 1, "one INVITE to the remote seat");
    assert!(
        invites[0].uri.starts_with("sip:13900139000@"),
        "{}",
        invites[0].uri
    );
    assert!(matches!(state(&sim), AgentState::Talking(_)));

    // Logging out while talking applies after the call (no wrap-up then).
    assert_eq!(command(&mut sim, AgentCommand::Logout), Ok(()));
    assert!(matches!(state(&sim), AgentState::Talking(_)));
    sim.bye(0);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(state(&sim), AgentState::LoggedOut);
    let r = record(&sim);
    assert_eq!(r["agent"], "1001");
    assert_eq!(r["offers"][0]["outcome"], "answered");
    // Every change was an event on the agent's stream.
    let changes: Vec<(String, String)> = sim
        .records
        .iter()
        .filter(|i| i.kind == "agent.state_changed")
        .map(|i| {
            let v: Value = serde_json::from_str(&i.body).unwrap_or_else(|e| panic!("{e}"));
            (
                v["data"]["from"].as_str().unwrap_or_default().to_owned(),
                v["data"]["to"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("logged_out", "ready"),
        ("ready", "reserved"),
        ("reserved", "talking"),
        ("talking", "logged_out"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(changes, want);
    for item in sim
        .records
        .iter()
        .filter(|i| i.kind == "agent.state_changed")
    {
        assert_eq!(item.stream, "agent/1001");
        common::check_item_schema(item);
    }
}

#[test]
fn api_refusals_name_the_problem() {
    let mut sim = Sim::with_config(2, Plan::answer(Duration::ZERO), config());
    assert_eq!(
        sim.agent_command("9999", &AgentCommand::Login),
        Err(AcdError::UnknownAgent)
    );
    assert_eq!(command(&mut sim, AgentCommand::Login), Ok(()));
    assert_eq!(
        command(&mut sim, AgentCommand::NotReady("nap".into())),
        Err(AcdError::UnknownReason("nap".into()))
    );
    assert_eq!(
        command(&mut sim, AgentCommand::EndWrapUp),
        Err(AcdError::NotInWrapUp)
    );
    assert_eq!(
        command(&mut sim, AgentCommand::NotReady("break".into())),
        Ok(())
    );
    assert_eq!(state(&sim), AgentState::NotReady("break".into()));
    // Not ready: a call waits (music) and is offered once ready.
    sim.invite("12345");
    sim.run_for(Duration::from_millis(100));
    greeting_done(&mut sim);
    sim.run_for(Duration::from_secs(2));
    assert!(sim.dest().requests(Method::Invite).is_empty());
    let music = sim.media_commands().iter().any(|c| {
        matches!(c, hotline::media::shard::MediaCommand::Play { what, repeat: true, .. } if what.name() == "hold_music")
    });
    assert!(music, "the waiting caller hears the hold music");
    assert_eq!(command(&mut sim, AgentCommand::Ready), Ok(()));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.dest().requests(Method::Invite).len(), 1);
    // Talk, then wrap-up (5 s), ended early through the API.
    sim.bye(0);
    sim.run_for(Duration::from_millis(500));
    assert_eq!(state(&sim), AgentState::WrapUp);
    assert_eq!(command(&mut sim, AgentCommand::EndWrapUp), Ok(()));
    assert_eq!(state(&sim), AgentState::Ready);
}
