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
//! **Not wired into calls yet**: the B2BUA does not run flows; flows are
//! validated at load so a config that will run them later is checked now.
//! The wiring (routes naming a flow, `Action::Play` becoming
//! `media::MediaCommand::Play`, `media::MediaEvent::Digit` / `PlaybackDone`
//! becoming [`Input`]s) comes with the call layer.

mod flow;
mod runner;

#[cfg(test)]
mod tests;

pub use flow::{
    is_dtmf, Flow, FlowError, LocalTime, Node, NodeKind, Schedule, Weekday, Window, SCHEDULE_HELP,
};
pub use runner::{Action, Input, Runner};

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
