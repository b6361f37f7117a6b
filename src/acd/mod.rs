//! Automatic call distribution: agents, their states, queues, and which
//! agent each waiting call is offered to. A sans-IO core owned by the
//! B2BUA (see `ARCHITECTURE.md`).
//!
//! # The loop
//! [`Acd`] takes inputs (agent control, call events) with `now` as an
//! argument, and hands back [`Output`]s through [`Acd::poll_output`]. Its
//! next deadline is [`Acd::poll_timeout`] (with its reason,
//! [`Acd::poll_timer`]); when it passes, call [`Acd::handle_timeout`]. After
//! any input, drain `poll_output` until `None`. A deadline in the past means
//! "now" (an escalation that an overflow made due at once, say).
//!
//! # Matching
//! An agent is *eligible* for a waiting call iff it belongs to the queue's
//! tenant, is reachable (registered, or `always_reachable`), is `Ready`, is
//! in one of the queue's groups (when it names any), has every required
//! skill at or above its minimum level, and has not declined this call.
//! The required skills of a call are its queue's plus its own (at level 1),
//! less those an escalation dropped, with every minimum lowered to an
//! escalation's [`Step::MinLevel`] cap.
//!
//! The core keeps one invariant between inputs: **no waiting call has an
//! eligible agent**. So each input can create at most one new pairing
//! chance, and it is settled at once:
//! - an agent that becomes available (ready, reachable) takes the best
//!   waiting call of all the queues it may serve: highest priority first,
//!   then a call put back at the head (ring-no-answer, decline, logout while
//!   ringing), then the earliest first arrival;
//! - a call that becomes waiting (enqueued, put back, escalated,
//!   overflowed) takes the best eligible agent by its queue's [`Strategy`]:
//!   [`Strategy::LongestIdle`] takes the agent idle the longest (idle since
//!   its last call ended, its login, or its last not-ready → ready);
//!   [`Strategy::SkillLevelThenLongestIdle`] takes the highest **sum** of
//!   the agent's levels in the call's required skills, ties by idle time.
//!
//! # Agent control while on a call
//! - `logout`: ringing (Reserved) → at once (the offer is cancelled, the
//!   call goes back to the head); Talking → when the call ends (no
//!   wrap-up); WrapUp → at once; a `login` before the call ends cancels it.
//! - `not_ready(reason)`: Reserved/Talking/WrapUp → when the call and its
//!   wrap-up end; while ringing, a failed offer (no answer, unreachable)
//!   wins with its own reason.
//! - `ready`: NotReady/WrapUp → at once; Talking → after the call, skipping
//!   wrap-up; Reserved → cancels a pending not-ready.
//!
//! # Escalation
//! A queue's steps apply by the call's total wait (from its first enqueue),
//! each at most once per call and queue, only while the call waits (a step
//! whose time passes while the call rings applies when it comes back). An
//! escalation only ever widens who may take the call: dropped skills and a
//! lowered level stay with the call when it overflows. An overflow ignores
//! the target's `max_length` (a call in the ACD is never lost); steps of
//! the target queue whose time has already passed apply at once, and each
//! step applies at most once per call, so overflow cycles end. Early
//! escalation: when a call's total wait reaches 15 s minus its queue's
//! lead and it still waits (so no eligible agent is ready), the queue's
//! next step not yet applied applies now, marked `early`; once per call
//! and queue, and not at all when the call entered the queue, or came back
//! from ringing, after that point.
//!
//! Max wait is the total wait, by the queue the call waits in; a call
//! ringing an agent is not expired (if the offer fails and the wait is past
//! the maximum, it expires at once).
//!
//! # Figures
//! See [`QueueStats`] for the exact definitions.

mod engine;
mod hash;
mod stats;
#[cfg(test)]
mod tests;
mod timers;

pub use self::engine::Acd;
pub use self::timers::Timer;

use crate::ids::CallId;
use crate::time::{Duration, Instant};

/// An agent: an index into [`AcdSpec::agents`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentIx(pub u32);

/// A queue: an index into [`AcdSpec::queues`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueIx(pub u32);

/// One agent as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSpec {
    /// Agent id, e.g. `"1001"`.
    pub id: String,
    /// The tenant (centre) the agent works for.
    pub tenant: String,
    /// Skill name and level 1..=5 (5 best).
    pub skills: Vec<(String, u8)>,
    /// Groups, e.g. `"legal-aid"` (a dual_retained department's seats).
    pub groups: Vec<String>,
    /// A remote seat reached through a trunk: needs no registration.
    pub always_reachable: bool,
}

/// How a queue picks among eligible agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// The agent idle the longest.
    #[default]
    LongestIdle,
    /// The highest sum of levels in the call's required skills; ties by
    /// longest idle.
    SkillLevelThenLongestIdle,
}

/// What an escalation does to a waiting call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Stop requiring this skill (the queue's or the call's own).
    DropSkill(String),
    /// Lower every required minimum level to at most this.
    MinLevel(u8),
    /// The call moves to (and waits in) this queue, keeping its arrival
    /// time and priority.
    Overflow(QueueIx),
}

/// One escalation step of a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    /// When: the call's total wait (from its first enqueue).
    pub after: Duration,
    /// What.
    pub step: Step,
}

/// One queue as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    /// Queue name.
    pub name: String,
    /// The tenant whose agents serve it.
    pub tenant: String,
    /// Required skill and minimum level.
    pub skills: Vec<(String, u8)>,
    /// Non-empty: only agents in one of these groups.
    pub groups: Vec<String>,
    /// How to pick among eligible agents.
    pub strategy: Strategy,
    /// Ring-no-answer timeout of an offer.
    pub ring_timeout: Duration,
    /// After-call work (zero: straight back to ready).
    pub wrap_up: Duration,
    /// Longest total wait before the call expires.
    pub max_wait: Option<Duration>,
    /// Most waiting calls; an enqueue beyond is refused.
    pub max_length: Option<usize>,
    /// Steps by the call's total wait (applied in order of `after`).
    pub escalation: Vec<Escalation>,
    /// Lead: when a waiting call reaches 15 s minus this and no eligible
    /// agent is ready, take its next escalation step now.
    pub early_escalation: Option<Duration>,
    /// Comfort announcement period for waiting calls.
    pub comfort_every: Option<Duration>,
}

/// Everything the ACD is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcdSpec {
    /// The agents; [`AgentIx`] indexes this.
    pub agents: Vec<AgentSpec>,
    /// The queues; [`QueueIx`] indexes this.
    pub queues: Vec<QueueSpec>,
    /// Configured not-ready reasons, e.g. break, meeting, training.
    pub not_ready_reasons: Vec<String>,
    /// Window of the rolling 15-s answer ratio (e.g. 30 min), counted in
    /// whole minutes (rounded up, at most 24 h).
    pub service_window: Duration,
}

/// Not-ready reason of an agent whose phone rang out (ring-no-answer).
pub const NO_ANSWER: &str = "no_answer";
/// Not-ready reason of an agent whose phone could not be reached.
pub const UNREACHABLE: &str = "unreachable";

/// Where an agent is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentState {
    /// Not logged in.
    LoggedOut,
    /// Waiting for a call.
    Ready,
    /// Logged in, taking no calls: a configured reason, or [`NO_ANSWER`],
    /// [`UNREACHABLE`].
    NotReady(String),
    /// Being offered this call (its phone rings).
    Reserved(CallId),
    /// Talking on this call.
    Talking(CallId),
    /// After-call work.
    WrapUp,
}

impl AgentState {
    /// The labels of the states, in the order of [`AgentState::index`].
    pub const LABELS: [&'static str; 6] = [
        "logged_out",
        "ready",
        "not_ready",
        "reserved",
        "talking",
        "wrap_up",
    ];

    /// `"logged_out"`, `"ready"`, `"not_ready"`, `"reserved"`, `"talking"`
    /// or `"wrap_up"`.
    #[must_use]
    pub fn label(&self) -> &'static str {
        Self::LABELS[self.index()]
    }

    /// Position of the state in [`AgentState::LABELS`].
    #[must_use]
    pub fn index(&self) -> usize {
        match self {
            AgentState::LoggedOut => 0,
            AgentState::Ready => 1,
            AgentState::NotReady(_) => 2,
            AgentState::Reserved(_) => 3,
            AgentState::Talking(_) => 4,
            AgentState::WrapUp => 5,
        }
    }

    /// The call this state is about (Reserved or Talking).
    #[must_use]
    pub fn call(&self) -> Option<CallId> {
        match self {
            AgentState::Reserved(c) | AgentState::Talking(c) => Some(*c),
            _ => None,
        }
    }
}

/// Why [`Acd::enqueue`] refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The queue holds `max_length` waiting calls.
    Length,
    /// No such queue.
    NoQueue,
}

/// A refused agent-control request (the API user's mistake or a race).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcdError {
    /// No such agent.
    #[error("no such agent")]
    UnknownAgent,
    /// The not-ready reason is not configured.
    #[error("not-ready reason {0:?} is not configured")]
    UnknownReason(String),
    /// The agent is logged out; log in first.
    #[error("the agent is logged out")]
    LoggedOut,
    /// `end_wrap_up` for an agent that is not in wrap-up.
    #[error("the agent is not in wrap-up")]
    NotInWrapUp,
}

/// What the ACD tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Ring `agent` with `call` (the agent is now Reserved(call)).
    Offer {
        /// The waiting call.
        call: CallId,
        /// The agent to ring.
        agent: AgentIx,
        /// The queue the call waited in (its wrap-up and ring timeout apply).
        queue: QueueIx,
    },
    /// Stop ringing: ring-no-answer, or the agent logged out while reserved.
    /// The ACD has already put the call back at the head of its queue and
    /// (ring-no-answer) made the agent NotReady("no_answer").
    CancelOffer {
        /// The call.
        call: CallId,
        /// The agent whose phone rang.
        agent: AgentIx,
    },
    /// The call moved to another queue by an escalation step.
    Overflowed {
        /// The call.
        call: CallId,
        /// The queue it left.
        from: QueueIx,
        /// The queue it waits in now.
        to: QueueIx,
    },
    /// Escalation step `step` (index into the queue's `escalation`) now
    /// applies to the call.
    Escalated {
        /// The call.
        call: CallId,
        /// The queue whose step it is.
        queue: QueueIx,
        /// Index into that queue's `escalation`.
        step: usize,
        /// Taken early (see [`QueueSpec::early_escalation`]).
        early: bool,
    },
    /// Max wait reached: the call has left the ACD (the B2BUA plays the
    /// treatment and hangs up).
    Expired {
        /// The call.
        call: CallId,
        /// The queue it waited in.
        queue: QueueIx,
    },
    /// Time for the call's comfort announcement.
    Comfort {
        /// The call.
        call: CallId,
        /// 1-based position among the waiting calls of its queue.
        position: usize,
        /// Estimated wait (None when unknown): see [`Acd::estimated_wait`].
        estimated_wait: Option<Duration>,
    },
    /// Every agent state change, timestamped (the `agent.state_changed`
    /// event).
    AgentChanged {
        /// The agent.
        agent: AgentIx,
        /// Its state before.
        from: AgentState,
        /// Its state now.
        to: AgentState,
        /// When.
        at: Instant,
    },
}

/// Live figures of one queue.
///
/// A call counts in the queue where it ends (answered, abandoned or
/// expired), with its wait measured from its first enqueue. The 24-hour
/// figures are kept in per-minute buckets: "24 h" is the current minute and
/// the 1,439 before it (minutes counted from the ACD's creation).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueStats {
    /// Calls waiting now (not those ringing an agent).
    pub waiting: usize,
    /// Wait so far of the longest-waiting call.
    pub oldest_wait: Option<Duration>,
    /// The 15-second answer ratio (GB/T 33358 "15秒接通率") over the
    /// service window: calls answered within 15 s of their first enqueue,
    /// divided by calls answered + expired + abandoned after waiting 5 s or
    /// more. Abandons shorter than 5 s are left out of both (callers who
    /// hung up at once, misdials). `None` when the divisor is zero.
    pub answered_within_15s_ratio: Option<f64>,
    /// Calls that ended in this queue: answered + abandoned + expired.
    pub offered_24h: u64,
    /// Calls answered by an agent.
    pub answered_24h: u64,
    /// Calls whose caller left while waiting or ringing (all, however short).
    pub abandoned_24h: u64,
    /// Calls that reached max wait.
    pub expired_24h: u64,
    /// `answered / offered`; `None` when nothing was offered.
    pub answer_ratio_24h: Option<f64>,
    /// Mean wait of the answered calls.
    pub average_speed_of_answer_24h: Option<Duration>,
    /// Agents meeting the queue's own requirements (tenant, groups, skills
    /// at the configured levels) that are Ready and reachable.
    pub agents_ready: usize,
    /// Such agents that are Reserved, Talking or in WrapUp.
    pub agents_busy: usize,
    /// Enqueues refused because the queue was full (not in `offered_24h`).
    pub refused_24h: u64,
}
