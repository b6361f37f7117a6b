//! IVR flows: what a caller hears and presses before an agent answers.
//!
//! A [`Flow`] is a named graph of [`Node`]s, read from `[[flows]]` in the
//! config (docs/config.md) and checked at load by [`Flow::validate`]: an
//! unknown prompt, node or target, an unreachable node, a loop that never
//! waits for the caller, a menu without a timeout branch are refused with
//! an error naming the flow, the node and the key.
//!
//! A [`Runner`] walks one call through a flow, sans-IO like every core here:
//! [`Runner::handle_input`] takes an [`Input`] (call started, prompt done,
//! digit, timeout) with `now` and the caller's [`LocalTime`] (for `hours`
//! nodes; the runner never reads a clock), [`Runner::poll_action`] gives
//! [`Action`]s (play, stop, queue, transfer, hang up) and
//! [`Runner::poll_timeout`] the next deadline. `runner.rs` states the digit
//! and playback rules (barge-in, type-ahead, each digit consumed once).
//!
//! Node kinds (GB/T 33358: the 12345 intake has no menu by default, so its
//! flow is play → play → queue; menus are for lines that need them, such as
//! a dialect choice):
//!
//! | kind | does | goes to |
//! |---|---|---|
//! | `play` | plays a prompt | `next` |
//! | `menu` | plays a prompt, takes one digit | `options[digit]`, `timeout`, `invalid` after `retries` replays |
//! | `collect` | plays a prompt, takes `min..=max` digits | `next`, `fail` after `retries` replays |
//! | `queue` | hands the call to the ACD with its skills, priority and tags | (ends the flow) |
//! | `transfer` | sends the call to a `[[targets]]` entry | (ends the flow) |
//! | `set_tag` | sets a tag carried with the call | `next` |
//! | `hours` | branches on the local time against a weekly schedule | `open`, `closed` |
//! | `hangup` | ends the call | — |
//! | `goto` | jumps | `next` |
//!
//! The B2BUA runs a line's flow on every call to it (`call::b2bua`):
//! [`Action::Play`] becomes a `media::MediaCommand::Play` into the caller's
//! leg, `media::MediaEvent::Digit` / `PlaybackDone` become [`Input`]s.
//! The satisfaction survey is a flow too ([`survey_flow`]).

mod flow;
mod prompts;
mod runner;

#[cfg(test)]
mod tests;

pub use flow::{
    is_dtmf, Flow, FlowError, LocalTime, Node, NodeKind, Schedule, Weekday, Window, SCHEDULE_HELP,
};
pub use prompts::{spoken_number, PromptDirError, Prompts};
pub use runner::{Action, Input, Runner};

use std::collections::BTreeMap;
use std::time::Duration;

/// The shipped prompts (`prompts/*.wav`, see prompts/README.md): the names a
/// flow's `prompt` keys may use.
pub const PROMPTS: [&str; 7] = [
    "greeting",
    "recording_notice",
    "merged_line",
    "queue_comfort",
    "survey",
    "thank_you",
    "blocked",
];

/// The hangup cause when a runner meets a broken (unvalidated) flow.
pub const FLOW_ERROR: &str = "flow_error";

/// The tag a survey flow sets to the level pressed (`"1"`..`"5"`).
pub const SURVEY_TAG: &str = "survey";
/// Hangup cause of a survey nobody answered in time.
pub const SURVEY_TIMEOUT: &str = "survey_timeout";
/// Hangup cause of a survey answered with invalid keys only.
pub const SURVEY_INVALID: &str = "survey_invalid";

/// The five-level survey (DOMAIN.md): the question, one key 1–5 (a wrong
/// key replays it up to `retries` times), then thanks and hang-up. The
/// level is [`SURVEY_TAG`]; no key ends with [`SURVEY_TIMEOUT`], wrong keys
/// only with [`SURVEY_INVALID`].
#[must_use]
pub fn survey_flow(prompt: &str, thanks: &str, timeout: Duration, retries: u8) -> Flow {
    let mut options = BTreeMap::new();
    let mut nodes = Vec::new();
    for level in 1..=5u8 {
        let digit = char::from(b'0' + level);
        options.insert(digit, format!("level-{level}"));
        nodes.push(Node {
            name: format!("level-{level}"),
            kind: NodeKind::SetTag {
                key: SURVEY_TAG.to_owned(),
                value: level.to_string(),
                next: "thanks".to_owned(),
            },
        });
    }
    nodes.insert(
        0,
        Node {
            name: "question".to_owned(),
            kind: NodeKind::Menu {
                prompt: prompt.to_owned(),
                barge_in: true,
                options,
                timeout_after: timeout,
                timeout: "no-key".to_owned(),
                invalid: "invalid".to_owned(),
                retries,
            },
        },
    );
    nodes.extend([
        Node {
            name: "thanks".to_owned(),
            kind: NodeKind::Play {
                prompt: thanks.to_owned(),
                barge_in: false,
                next: "bye".to_owned(),
            },
        },
        Node {
            name: "bye".to_owned(),
            kind: NodeKind::Hangup { cause: None },
        },
        Node {
            name: "no-key".to_owned(),
            kind: NodeKind::Hangup {
                cause: Some(SURVEY_TIMEOUT.to_owned()),
            },
        },
        Node {
            name: "invalid".to_owned(),
            kind: NodeKind::Hangup {
                cause: Some(SURVEY_INVALID.to_owned()),
            },
        },
    ]);
    Flow::new("survey", "question", nodes)
}

/// The node a flow built by [`with_announcement`] starts at (not a valid
/// config node name, so it cannot clash with one).
pub const ANNOUNCEMENT_NODE: &str = "~announcement";

/// `flow` with `prompt` played first, without barge-in (a merged line's
/// "this number is now 12345" before the 12345 flow).
#[must_use]
pub fn with_announcement(flow: &Flow, prompt: &str, name: &str) -> Flow {
    let mut nodes = Vec::with_capacity(flow.nodes.len() + 1);
    nodes.push(Node {
        name: ANNOUNCEMENT_NODE.to_owned(),
        kind: NodeKind::Play {
            prompt: prompt.to_owned(),
            barge_in: false,
            next: flow.entry.clone(),
        },
    });
    nodes.extend(flow.nodes.iter().cloned());
    Flow::new(name, ANNOUNCEMENT_NODE, nodes)
}
