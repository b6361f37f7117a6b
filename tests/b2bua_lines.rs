//! Calls to `[[lines]]` in the Sim: the gateway answers the caller, runs
//! the line's flow on its leg (prompts, keys, timeouts), puts the call
//! through to the queue's target, and runs the survey when the agent hangs
//! up first. The media shards are not simulated: the tests play their part
//! (a prompt played to its end, a key pressed) with `Sim::media_event`.

mod common;

use common::{Plan, Sim, DEST, GW};
use hotline::config::{self, Config};
use hotline::media::shard::{DigitSource, MediaCommand, MediaEvent};
use hotline::sip::msg::{Method, SipHeaders};
use serde_json::Value;
use std::time::Duration;

/// One tenant, a queue delivered to the Sim's destination, and four lines:
/// 12345 (main: greeting, notice, queue), 12320 (dual: a dialect menu),
/// 12319 (merged into 12345), 12348 (dual_retained, no survey).
fn lines_config(extra: &str) -> Config {
    let text = format!(
        r#"
[node]
name = "sim"
[sip]
listen = "{GW}"
ring_timeout_secs = 30
[[trunks]]
name = "carrier"
sources = ["198.51.100.0/24"]
[[targets]]
name = "desk"
address = "{DEST}"
{flows}
[[lines]]
number = "12345"
tenant = "city"
mode = "main"
flow = "intake"
[[lines]]
number = "12320"
tenant = "city"
mode = "dual"
flow = "dialect"
topic = "health"
skills = ["health"]
priority = 1
[[lines]]
number = "12319"
tenant = "city"
mode = "merged"
topic = "urban-management"
[[lines]]
number = "12348"
tenant = "city"
mode = "dual_retained"
flow = "intake"
survey = false
{extra}
"#,
        flows = common::line_flows_toml("desk"),
    );
    match config::parse(&text, "<sim-lines>") {
        Ok(c) => c,
        Err(e) => panic!("sim lines config: {e}"),
    }
}

fn sim(seed: u64, plan: Plan, extra: &str) -> Sim {
    Sim::with_config(seed, plan, lines_config(extra))
}

/// The prompts played so far, by name, in order.
fn played(sim: &Sim) -> Vec<String> {
    sim.media_commands()
        .iter()
        .filter_map(|c| match c {
            MediaCommand::Play { what, .. } => Some(what.name().to_owned()),
            _ => None,
        })
        .collect()
}

/// The caller's leg: the first leg opened.
fn a_leg(sim: &Sim) -> u16 {
    sim.media_commands()
        .iter()
        .find_map(|c| match c {
            MediaCommand::Open { leg } => Some(*leg),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no leg opened"))
}

/// The last prompt played to its end.
fn prompt_done(sim: &mut Sim) {
    let leg = a_leg(sim);
    sim.media_event(MediaEvent::PlaybackDone {
        leg,
        interrupted: false,
    });
    sim.run_for(Duration::from_millis(10));
}

/// The caller presses `digit` (RFC 4733, as a shard reports it).
fn press(sim: &mut Sim, digit: char) {
    let leg = a_leg(sim);
    sim.media_event(MediaEvent::Digit {
        leg,
        digit,
        source: DigitSource::Rfc4733,
    });
    sim.run_for(Duration::from_millis(10));
}

/// The sealed call record.
fn record(sim: &Sim) -> Value {
    let item = sim
        .records
        .iter()
        .find(|r| r.kind == "call.record")
        .unwrap_or_else(|| panic!("no call.record among {:?}", kinds(sim)));
    serde_json::from_str(&item.body).unwrap_or_else(|e| panic!("{e}"))
}

fn kinds(sim: &Sim) -> Vec<&'static str> {
    sim.records.iter().map(|r| r.kind).collect()
}

fn invites_to_dest(sim: &Sim) -> usize {
    sim.uas[1]
        .requests(Method::Invite)
        .iter()
        .filter(|r| r.to_tag().is_none())
        .count()
}

#[test]
fn main_line_plays_greeting_and_notice_then_puts_the_caller_through() {
    let mut sim = sim(1, Plan::answer(Duration::from_millis(500)), "");
    sim.invite("12345");
    sim.run_for(Duration::from_millis(200));
    // Answered by the gateway at once, the greeting plays; nobody rings yet.
    assert_eq!(sim.uas[0].finals(Method::Invite), [200]);
    assert!(sim.uas[0].acked);
    assert_eq!(played(&sim), ["greeting"]);
    assert_eq!(invites_to_dest(&sim), 0);
    // No barge-in on the greeting: a key does not skip it.
    press(&mut sim, '5');
    assert_eq!(played(&sim), ["greeting"]);
    prompt_done(&mut sim);
    assert_eq!(played(&sim), ["greeting", "recording_notice"]);
    assert_eq!(invites_to_dest(&sim), 0);
    prompt_done(&mut sim);
    // Queued: the queue's target rings, the caller hears ringback.
    sim.run_for(Duration::from_secs(2));
    assert_eq!(invites_to_dest(&sim), 1);
    assert_eq!(played(&sim).last().map(String::as_str), Some("ringback"));
    let connected = sim
        .media_commands()
        .iter()
        .any(|c| matches!(c, MediaCommand::Connect { .. }));
    assert!(connected, "legs connected once the target answered");
    sim.bye(0);
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.live_calls(), 0);
    let rec = record(&sim);
    assert_eq!(rec["line"]["number"], "12345");
    assert_eq!(rec["line"]["mode"], "main");
    assert_eq!(rec["line"]["tenant"], "city");
    assert_eq!(rec["ivr"]["flow"], "intake");
    assert_eq!(
        rec["ivr"]["nodes"],
        serde_json::json!(["greeting", "notice", "general"])
    );
    assert_eq!(rec["ivr"]["outcome"], "queued");
    assert_eq!(rec["queue"]["name"], "general");
    assert_eq!(rec["target"], "desk");
    assert_eq!(rec["end"]["cause"], "caller_hangup");
    assert!(
        rec.get("survey").is_none(),
        "caller hung up first: no survey"
    );
    assert_eq!(
        kinds(&sim),
        [
            "call.arrived",
            "call.queued",
            "call.answered",
            "call.ended",
            "call.record"
        ]
    );
}

#[test]
fn dual_line_menu_choice_sets_the_dialect_skill_and_the_line_skill() {
    let mut sim = sim(2, Plan::answer(Duration::from_millis(100)), "");
    sim.invite("12320");
    sim.run_for(Duration::from_millis(200));
    assert_eq!(played(&sim), ["greeting"]);
    // A menu prompt takes a key while it plays (barge-in).
    press(&mut sim, '2');
    sim.run_for(Duration::from_secs(1));
    assert_eq!(invites_to_dest(&sim), 1);
    sim.bye(0);
    sim.run_for(Duration::from_secs(5));
    let rec = record(&sim);
    assert_eq!(rec["line"]["mode"], "dual");
    assert_eq!(rec["tags"]["dialect"], "cantonese");
    assert_eq!(rec["tags"]["topic"], "health");
    assert_eq!(rec["queue"]["name"], "health");
    assert_eq!(
        rec["queue"]["skills"],
        serde_json::json!(["cantonese", "health"])
    );
    // The node's 2 plus the line's 1.
    assert_eq!(rec["queue"]["priority"], 3);
}

#[test]
fn a_menu_key_by_sip_info_counts_like_rfc_4733() {
    let mut sim = sim(3, Plan::answer(Duration::from_millis(100)), "");
    sim.invite("12320");
    sim.run_for(Duration::from_millis(200));
    sim.in_dialog(
        0,
        Method::Info,
        "application/dtmf-relay",
        "Signal=1\r\nDuration=160\r\n",
    );
    sim.run_for(Duration::from_secs(1));
    assert_eq!(invites_to_dest(&sim), 1);
    sim.bye(0);
    sim.run_for(Duration::from_secs(5));
    assert_eq!(record(&sim)["tags"]["dialect"], "mandarin");
}

#[test]
fn a_menu_with_no_key_goes_to_its_timeout_branch() {
    let mut sim = sim(4, Plan::answer(Duration::from_millis(100)), "");
    sim.invite("12320");
    sim.run_for(Duration::from_millis(200));
    prompt_done(&mut sim);
    sim.run_for(Duration::from_secs(4));
    assert_eq!(invites_to_dest(&sim), 0, "still waiting for a key");
    sim.run_for(Duration::from_secs(2));
    assert_eq!(invites_to_dest(&sim), 1, "timed out into the default queue");
    sim.bye(0);
    sim.run_for(Duration::from_secs(5));
    let rec = record(&sim);
    assert_eq!(rec["queue"]["name"], "health");
    assert_eq!(rec["queue"]["skills"], serde_json::json!(["health"]));
    assert!(rec["tags"].get("dialect").is_none());
}

#[test]
fn merged_line_announces_then_runs_the_main_flow_with_its_topic() {
    let mut sim = sim(5, Plan::answer(Duration::from_millis(100)), "");
    sim.invite("12319");
    sim.run_for(Duration::from_millis(200));
    assert_eq!(played(&sim), ["merged_line"]);
    prompt_done(&mut sim);
    prompt_done(&mut sim);
    prompt_done(&mut sim);
    assert_eq!(
        played(&sim)[..3],
        ["merged_line", "greeting", "recording_notice"]
    );
    sim.run_for(Duration::from_secs(1));
    assert_eq!(invites_to_dest(&sim), 1);
    sim.bye(0);
    sim.run_for(Duration::from_secs(5));
    let rec = record(&sim);
    assert_eq!(rec["line"]["number"], "12319");
    assert_eq!(rec["line"]["mode"], "merged");
    assert_eq!(rec["tags"]["topic"], "urban-management");
    assert_eq!(rec["queue"]["name"], "general");
}

#[test]
fn a_block_listed_caller_hears_the_announcement_and_is_hung_up_on() {
    // The Sim's caller is 13800138000; listed here in another form.
    let mut sim = sim(
        6,
        Plan::answer(Duration::from_millis(100)),
        "[blocklist]\nnumbers = [\"+86 138-0013-8000\"]\n",
    );
    sim.invite("12345");
    sim.run_for(Duration::from_millis(200));
    assert_eq!(sim.uas[0].finals(Method::Invite), [200]);
    assert_eq!(played(&sim), ["blocked"]);
    prompt_done(&mut sim);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.uas[0].requests(Method::Bye).len(), 1, "gateway hung up");
    assert_eq!(invites_to_dest(&sim), 0);
    assert_eq!(sim.live_calls(), 0);
    let rec = record(&sim);
    assert_eq!(rec["end"]["cause"], "blocked");
    assert_eq!(rec["end"]["by"], "gateway");
    assert!(rec.get("target").is_none());
}

#[test]
fn caller_leaving_in_the_ivr_is_recorded_without_a_b_leg() {
    let mut sim = sim(7, Plan::answer(Duration::from_millis(100)), "");
    sim.invite("12345");
    sim.run_for(Duration::from_millis(200));
    prompt_done(&mut sim);
    sim.bye(0);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.live_calls(), 0);
    assert_eq!(invites_to_dest(&sim), 0);
    let rec = record(&sim);
    assert_eq!(rec["ivr"]["outcome"], "caller_hangup");
    assert_eq!(
        rec["ivr"]["nodes"],
        serde_json::json!(["greeting", "notice"])
    );
    assert_eq!(rec["end"]["cause"], "caller_hangup");
}

#[test]
fn caller_leaving_while_the_target_rings_cancels_it() {
    let mut sim = sim(8, Plan::never(), "");
    sim.invite("12320");
    sim.run_for(Duration::from_millis(200));
    press(&mut sim, '1');
    sim.run_for(Duration::from_secs(1));
    assert_eq!(invites_to_dest(&sim), 1);
    sim.bye(0);
    sim.run_for(Duration::from_secs(5));
    let cancels = sim
        .wire_between(GW, DEST)
        .iter()
        .filter(|w| w.text.starts_with("CANCEL"))
        .count();
    assert!(cancels >= 1, "the target's INVITE was cancelled");
    assert_eq!(sim.live_calls(), 0);
    assert_eq!(record(&sim)["end"]["cause"], "caller_hangup");
}

#[test]
fn a_target_that_refuses_ends_the_answered_caller_with_a_bye() {
    let mut sim = sim(9, Plan::reject(486), "");
    sim.invite("12320");
    sim.run_for(Duration::from_millis(200));
    press(&mut sim, '1');
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.uas[0].requests(Method::Bye).len(), 1);
    assert_eq!(sim.live_calls(), 0);
    let rec = record(&sim);
    assert_eq!(rec["end"]["cause"], "delivery_failed");
    assert_eq!(rec["end"]["sip_status"], 486);
}

/// Put a call to 12345 through and let the agent (the destination) hang up.
fn through_then_agent_hangs_up(seed: u64, number: &str) -> Sim {
    let mut sim = sim(seed, Plan::answer(Duration::from_millis(100)), "");
    sim.invite(number);
    sim.run_for(Duration::from_millis(200));
    prompt_done(&mut sim);
    prompt_done(&mut sim);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.gw.b2bua().stats().calls_answered, 1);
    sim.bye(1);
    sim.run_for(Duration::from_millis(200));
    sim
}

#[test]
fn agent_hangs_up_first_the_caller_rates_4_and_is_flagged_for_a_call_back() {
    let mut sim = through_then_agent_hangs_up(10, "12345");
    assert!(sim.uas[0].requests(Method::Bye).is_empty(), "caller kept");
    assert_eq!(played(&sim).last().map(String::as_str), Some("survey"));
    let disconnected = sim
        .media_commands()
        .iter()
        .any(|c| matches!(c, MediaCommand::Disconnect { .. }));
    assert!(disconnected);
    press(&mut sim, '4');
    assert_eq!(played(&sim).last().map(String::as_str), Some("thank_you"));
    prompt_done(&mut sim);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.uas[0].requests(Method::Bye).len(), 1);
    assert_eq!(sim.live_calls(), 0);
    let rec = record(&sim);
    assert_eq!(rec["survey"]["level"], 4);
    assert_eq!(rec["survey"]["outcome"], "rated");
    assert_eq!(rec["survey"]["callback"], true);
    assert_eq!(rec["survey"]["target"], "desk");
    // The conversation was ended by the agent.
    assert_eq!(rec["end"]["cause"], "callee_hangup");
    assert!(kinds(&sim).contains(&"call.survey_completed"));
}

#[test]
fn survey_level_1_is_not_flagged() {
    let mut sim = through_then_agent_hangs_up(11, "12345");
    press(&mut sim, '1');
    prompt_done(&mut sim);
    sim.run_for(Duration::from_secs(2));
    let rec = record(&sim);
    assert_eq!(rec["survey"]["level"], 1);
    assert_eq!(rec["survey"]["callback"], false);
}

#[test]
fn survey_invalid_key_replays_once_then_gives_up() {
    let mut sim = through_then_agent_hangs_up(12, "12345");
    press(&mut sim, '7');
    let surveys = played(&sim).iter().filter(|p| *p == "survey").count();
    assert_eq!(surveys, 2, "one replay after a wrong key");
    press(&mut sim, '9');
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.uas[0].requests(Method::Bye).len(), 1);
    let rec = record(&sim);
    assert_eq!(rec["survey"]["outcome"], "invalid");
    assert!(rec["survey"].get("level").is_none());
}

#[test]
fn survey_without_a_key_times_out_as_not_rated() {
    let mut sim = through_then_agent_hangs_up(13, "12345");
    prompt_done(&mut sim);
    sim.run_for(Duration::from_secs(11));
    assert_eq!(sim.uas[0].requests(Method::Bye).len(), 1);
    assert_eq!(record(&sim)["survey"]["outcome"], "timeout");
}

#[test]
fn caller_hanging_up_during_the_survey_is_not_rated() {
    let mut sim = through_then_agent_hangs_up(14, "12345");
    sim.bye(0);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.live_calls(), 0);
    let rec = record(&sim);
    assert_eq!(rec["survey"]["outcome"], "caller_hangup");
    assert_eq!(rec["end"]["cause"], "callee_hangup");
}

#[test]
fn a_line_without_the_survey_ends_when_the_agent_hangs_up() {
    let mut sim = through_then_agent_hangs_up(15, "12348");
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.uas[0].requests(Method::Bye).len(), 1);
    assert!(record(&sim).get("survey").is_none());
}

#[test]
fn a_closed_tenant_runs_the_lines_closed_flow() {
    // The Sim's wall clock is Monday 2026-11-23 21:47 in China (+08:00).
    let extra = r#"
[[tenants]]
name = "office"
hours = ["Mon-Fri 08:30-17:30"]
[[flows]]
name = "closed"
entry = "sorry"
[[flows.nodes]]
name = "sorry"
kind = "play"
prompt = "blocked"
next = "bye"
[[flows.nodes]]
name = "bye"
kind = "hangup"
cause = "closed"
[[lines]]
number = "12366"
tenant = "office"
mode = "dual_retained"
flow = "intake"
closed_flow = "closed"
"#;
    let mut sim = sim(16, Plan::answer(Duration::from_millis(100)), extra);
    sim.invite("12366");
    sim.run_for(Duration::from_millis(200));
    assert_eq!(played(&sim), ["blocked"]);
    prompt_done(&mut sim);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.uas[0].requests(Method::Bye).len(), 1);
    assert_eq!(invites_to_dest(&sim), 0);
    let rec = record(&sim);
    assert_eq!(rec["ivr"]["flow"], "closed");
    assert_eq!(rec["ivr"]["outcome"], "hangup");
    assert_eq!(rec["ivr"]["cause"], "closed");
    assert_eq!(rec["end"]["cause"], "ivr_hangup");
}

#[test]
fn an_unknown_number_is_404_and_a_flow_call_survives_a_reinvite() {
    let mut sim = sim(17, Plan::answer(Duration::from_millis(100)), "");
    sim.invite("99999");
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.uas[0].finals(Method::Invite), [404]);

    let mut sim = self::sim(18, Plan::answer(Duration::from_millis(100)), "");
    sim.invite("12345");
    sim.run_for(Duration::from_millis(200));
    // The caller puts us on hold during the greeting: answered here.
    let hold = common::SDP_OFFER.replace("a=sendrecv", "a=sendonly");
    sim.reinvite(0, &hold);
    sim.run_for(Duration::from_secs(1));
    let finals = sim.uas[0].finals(Method::Invite);
    assert_eq!(finals, [200, 200], "{finals:?}");
    prompt_done(&mut sim);
    prompt_done(&mut sim);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(invites_to_dest(&sim), 1);
}

#[test]
fn every_item_of_line_calls_matches_its_json_schema() {
    let mut items = Vec::new();
    // Queued, answered, agent hangs up, rated.
    let mut sim = through_then_agent_hangs_up(30, "12345");
    press(&mut sim, '5');
    prompt_done(&mut sim);
    sim.run_for(Duration::from_secs(2));
    items.extend(sim.records);
    // Survey not answered.
    let mut sim = through_then_agent_hangs_up(31, "12345");
    sim.bye(0);
    sim.run_for(Duration::from_secs(2));
    items.extend(sim.records);
    // Block-listed.
    let mut sim = self::sim(
        32,
        Plan::answer(Duration::from_millis(100)),
        "[blocklist]\nnumbers = [\"13800138000\"]\n",
    );
    sim.invite("12319");
    sim.run_for(Duration::from_millis(200));
    prompt_done(&mut sim);
    sim.run_for(Duration::from_secs(2));
    items.extend(sim.records);
    let mut seen = std::collections::BTreeSet::new();
    for item in &items {
        common::check_item_schema(item);
        seen.insert(item.kind);
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [
            "call.answered",
            "call.arrived",
            "call.ended",
            "call.queued",
            "call.record",
            "call.survey_completed"
        ]
    );
}

#[test]
fn a_survey_key_during_the_question_rates_and_hangs_up_despite_the_late_stop_report() {
    // The shard reports the digit, then PlaybackDone{interrupted} for the
    // question it stopped: by then the thank-you plays, and its own end
    // must still lead to the hang-up.
    let mut sim = through_then_agent_hangs_up(40, "12345");
    press(&mut sim, '4');
    assert_eq!(played(&sim).last().map(String::as_str), Some("thank_you"));
    let leg = a_leg(&sim);
    sim.media_event(MediaEvent::PlaybackDone {
        leg,
        interrupted: true,
    });
    prompt_done(&mut sim);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.uas[0].requests(Method::Bye).len(), 1, "gateway hung up");
    assert_eq!(record(&sim)["survey"]["level"], 4);
}
