//! [`Runner`]: one call's walk through a [`Flow`], sans-IO.
//!
//! Inputs come in through [`Runner::handle_input`] with `now` and the
//! caller's [`LocalTime`]; actions come out of [`Runner::poll_action`]; the
//! next deadline is [`Runner::poll_timeout`]. After any input, drain
//! `poll_action` until `None`, then wait for the deadline or the next input.
//!
//! Digits. Every digit is consumed once, in order:
//! - during a prompt with barge-in, the first digit stops it (the runner
//!   says [`Action::StopPlay`], a no-op when the media plane already stopped
//!   it) and is kept: a menu prompt interrupted by `1` takes `1`; a play
//!   prompt interrupted by `1` hands `1` to the next menu or collect, whose
//!   own barge-in prompt is then skipped (type-ahead);
//! - a prompt without barge-in must be heard: digits typed before or during
//!   it are dropped (counted in [`Runner::dropped_digits`]).
//!
//! Playback. Every [`Action::Play`] is answered by one
//! `Input::PlaybackDone { interrupted: false }` when it played to the end.
//! A playback stopped by a digit is reported by that digit; its
//! `PlaybackDone { interrupted: true }` (what `media::MediaEvent` sends after
//! a barge-in) is ignored, and so is any `PlaybackDone` when no prompt plays.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::time::Instant;

use super::flow::{Flow, LocalTime, NodeKind};
use super::FLOW_ERROR;

/// What happened to the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The call reached the flow (answered): start at the entry node.
    Started,
    /// The prompt stopped; `interrupted` when a digit stopped it.
    PlaybackDone {
        /// Stopped by a digit (barge-in) rather than played to the end.
        interrupted: bool,
    },
    /// A DTMF digit from the caller.
    Digit(char),
    /// The deadline of [`Runner::poll_timeout`] passed (ignored if early).
    Timeout,
}

/// What the call should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Play a shipped prompt to the caller.
    Play {
        /// Prompt name (see [`super::PROMPTS`]).
        prompt: String,
        /// Whether a digit stops it.
        barge_in: bool,
    },
    /// Stop the prompt that plays.
    StopPlay,
    /// Hand the call to the ACD; the flow is over.
    Queue {
        /// Queue name.
        queue: String,
        /// Skills an agent needs.
        skills: Vec<String>,
        /// Higher is served first.
        priority: u8,
        /// Tags set on the way.
        tags: BTreeMap<String, String>,
    },
    /// Send the call to a target; the flow is over.
    Transfer {
        /// Target name.
        target: String,
        /// Tags set on the way.
        tags: BTreeMap<String, String>,
    },
    /// End the call; the flow is over.
    Hangup {
        /// Why (`None`: normal clearing; [`FLOW_ERROR`]: a broken flow).
        cause: Option<String>,
    },
}

/// Where the runner is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Before [`Input::Started`].
    Idle,
    /// Playing node `node`'s prompt; `attempt` counts replays.
    Prompt {
        node: usize,
        attempt: u8,
        barge_in: bool,
    },
    /// A menu waiting for its digit.
    Menu {
        node: usize,
        attempt: u8,
        deadline: Instant,
    },
    /// A collect gathering digits.
    Collect {
        node: usize,
        attempt: u8,
        digits: String,
        deadline: Instant,
    },
    /// Queued, transferred or hung up.
    Done,
}

/// One call's walk through a [`Flow`].
#[derive(Debug)]
pub struct Runner {
    flow: Arc<Flow>,
    state: State,
    typeahead: VecDeque<char>,
    actions: VecDeque<Action>,
    tags: BTreeMap<String, String>,
    digits: Option<String>,
    dropped_digits: u32,
    visited: Vec<usize>,
}

/// Most node visits kept for [`Runner::visited`] (a caller looping in a
/// menu for a long time must not grow it without bound).
pub const MAX_VISITED: usize = 64;

impl Runner {
    /// A runner at the start of `flow`; nothing happens before
    /// [`Input::Started`].
    #[must_use]
    pub fn new(flow: Arc<Flow>, _now: Instant) -> Self {
        Self {
            flow,
            state: State::Idle,
            typeahead: VecDeque::new(),
            actions: VecDeque::new(),
            tags: BTreeMap::new(),
            digits: None,
            dropped_digits: 0,
            visited: Vec::new(),
        }
    }

    /// The flow this runner walks.
    #[must_use]
    pub fn flow(&self) -> &Arc<Flow> {
        &self.flow
    }

    /// Tags set so far.
    #[must_use]
    pub fn tags(&self) -> &BTreeMap<String, String> {
        &self.tags
    }

    /// The digits of the last successful collect.
    #[must_use]
    pub fn digits(&self) -> Option<&str> {
        self.digits.as_deref()
    }

    /// Digits dropped because a prompt without barge-in was playing.
    #[must_use]
    pub fn dropped_digits(&self) -> u32 {
        self.dropped_digits
    }

    /// The nodes entered so far, in order (a node entered again, e.g. a
    /// menu replayed, appears again; at most [`MAX_VISITED`]).
    pub fn visited(&self) -> impl Iterator<Item = &str> + '_ {
        self.visited
            .iter()
            .filter_map(|i| self.flow.nodes.get(*i).map(|n| n.name.as_str()))
    }

    /// Whether the flow has ended (queued, transferred or hung up).
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The name of the node the call is at, if it is in one.
    #[must_use]
    pub fn current_node(&self) -> Option<&str> {
        match &self.state {
            State::Prompt { node, .. } | State::Menu { node, .. } | State::Collect { node, .. } => {
                self.flow.nodes.get(*node).map(|n| n.name.as_str())
            }
            State::Idle | State::Done => None,
        }
    }

    /// The next action, if any.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When to send [`Input::Timeout`], if the runner is waiting for a digit.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Menu { deadline, .. } | State::Collect { deadline, .. } => Some(*deadline),
            _ => None,
        }
    }

    /// Feed one input; `local` is the caller's local time, for `hours` nodes.
    pub fn handle_input(&mut self, input: Input, now: Instant, local: LocalTime) {
        match input {
            Input::Started => {
                if self.state == State::Idle {
                    match self.flow.find(&self.flow.entry) {
                        Some(entry) => self.enter(entry, now, local),
                        None => self.fail_flow(),
                    }
                }
            }
            Input::PlaybackDone { interrupted } => {
                if let State::Prompt { node, attempt, .. } = self.state {
                    if !interrupted {
                        self.prompt_done(node, attempt, now, local);
                    }
                }
            }
            Input::Digit(d) => self.digit(d, now, local),
            Input::Timeout => self.timeout(now, local),
        }
    }

    fn digit(&mut self, d: char, now: Instant, local: LocalTime) {
        match self.state {
            State::Prompt {
                node,
                attempt,
                barge_in: true,
            } => {
                self.typeahead.push_back(d);
                self.actions.push_back(Action::StopPlay);
                self.prompt_done(node, attempt, now, local);
            }
            State::Prompt {
                barge_in: false, ..
            } => self.dropped_digits += 1,
            State::Menu { .. } | State::Collect { .. } => {
                self.typeahead.push_back(d);
                self.drain_typeahead(now, local);
            }
            State::Idle | State::Done => {}
        }
    }

    fn timeout(&mut self, now: Instant, local: LocalTime) {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Menu { node, deadline, .. } if now >= deadline => {
                match &self.flow.nodes[node].kind {
                    NodeKind::Menu { timeout, .. } => {
                        let to = timeout.clone();
                        self.go(&to, now, local);
                    }
                    _ => self.fail_flow(),
                }
            }
            State::Collect {
                node,
                attempt,
                digits,
                deadline,
            } if now >= deadline => {
                let min = match &self.flow.nodes[node].kind {
                    NodeKind::Collect { min, .. } => *min,
                    _ => return self.fail_flow(),
                };
                if !digits.is_empty() && digits.len() >= usize::from(min) {
                    self.collected(node, digits, now, local);
                } else {
                    self.collect_failed(node, attempt, now, local);
                }
            }
            other => self.state = other,
        }
    }

    /// The prompt of `node` ended (played out, or a barge-in digit): start
    /// waiting, or go on.
    fn prompt_done(&mut self, node: usize, attempt: u8, now: Instant, local: LocalTime) {
        let flow = Arc::clone(&self.flow);
        match &flow.nodes[node].kind {
            NodeKind::Play { next, .. } => self.go(next, now, local),
            NodeKind::Menu { timeout_after, .. } => {
                self.state = State::Menu {
                    node,
                    attempt,
                    deadline: now + *timeout_after,
                };
                self.drain_typeahead(now, local);
            }
            NodeKind::Collect {
                first_digit_timeout,
                ..
            } => {
                self.state = State::Collect {
                    node,
                    attempt,
                    digits: String::new(),
                    deadline: now + *first_digit_timeout,
                };
                self.drain_typeahead(now, local);
            }
            _ => self.fail_flow(),
        }
    }

    /// Consume buffered digits while a menu or collect waits for them.
    fn drain_typeahead(&mut self, now: Instant, local: LocalTime) {
        while matches!(self.state, State::Menu { .. } | State::Collect { .. }) {
            let Some(d) = self.typeahead.pop_front() else {
                return;
            };
            match std::mem::replace(&mut self.state, State::Done) {
                State::Menu { node, attempt, .. } => self.menu_digit(node, attempt, d, now, local),
                State::Collect {
                    node,
                    attempt,
                    digits,
                    ..
                } => self.collect_digit(node, attempt, digits, d, now, local),
                other => self.state = other,
            }
        }
    }

    fn menu_digit(&mut self, node: usize, attempt: u8, d: char, now: Instant, local: LocalTime) {
        let flow = Arc::clone(&self.flow);
        let NodeKind::Menu {
            options,
            invalid,
            retries,
            ..
        } = &flow.nodes[node].kind
        else {
            return self.fail_flow();
        };
        if let Some(to) = options.get(&d) {
            self.go(to, now, local);
        } else if attempt < *retries {
            self.typeahead.clear();
            self.play(node, attempt + 1, now, local);
        } else {
            self.go(invalid, now, local);
        }
    }

    fn collect_digit(
        &mut self,
        node: usize,
        attempt: u8,
        mut digits: String,
        d: char,
        now: Instant,
        local: LocalTime,
    ) {
        let flow = Arc::clone(&self.flow);
        let NodeKind::Collect {
            min,
            max,
            terminator,
            inter_digit_timeout,
            ..
        } = &flow.nodes[node].kind
        else {
            return self.fail_flow();
        };
        if Some(d) == *terminator {
            if digits.len() >= usize::from(*min) {
                self.collected(node, digits, now, local);
            } else {
                self.collect_failed(node, attempt, now, local);
            }
            return;
        }
        digits.push(d);
        if digits.len() >= usize::from(*max) {
            self.collected(node, digits, now, local);
        } else {
            self.state = State::Collect {
                node,
                attempt,
                digits,
                deadline: now + *inter_digit_timeout,
            };
        }
    }

    fn collected(&mut self, node: usize, digits: String, now: Instant, local: LocalTime) {
        let flow = Arc::clone(&self.flow);
        let NodeKind::Collect { tag, next, .. } = &flow.nodes[node].kind else {
            return self.fail_flow();
        };
        if let Some(tag) = tag {
            self.tags.insert(tag.clone(), digits.clone());
        }
        self.digits = Some(digits);
        self.go(next, now, local);
    }

    fn collect_failed(&mut self, node: usize, attempt: u8, now: Instant, local: LocalTime) {
        let flow = Arc::clone(&self.flow);
        let NodeKind::Collect { retries, fail, .. } = &flow.nodes[node].kind else {
            return self.fail_flow();
        };
        self.typeahead.clear();
        if attempt < *retries {
            self.play(node, attempt + 1, now, local);
        } else {
            self.go(fail, now, local);
        }
    }

    /// Go to the node called `name`.
    fn go(&mut self, name: &str, now: Instant, local: LocalTime) {
        match self.flow.find(name) {
            Some(i) => self.enter(i, now, local),
            None => self.fail_flow(),
        }
    }

    /// Enter node `i`, following nodes that do not wait until one does or
    /// the flow ends. Bounded: more steps than nodes without waiting means a
    /// loop (refused by [`Flow::validate`]), which ends the call.
    fn enter(&mut self, mut i: usize, now: Instant, local: LocalTime) {
        let flow = Arc::clone(&self.flow);
        for _ in 0..=flow.nodes.len() {
            if self.visited.len() < MAX_VISITED {
                self.visited.push(i);
            }
            let next = match &flow.nodes[i].kind {
                NodeKind::Play { .. } | NodeKind::Menu { .. } | NodeKind::Collect { .. } => {
                    return self.play(i, 0, now, local);
                }
                NodeKind::Queue {
                    queue,
                    skills,
                    priority,
                } => {
                    return self.finish(Action::Queue {
                        queue: queue.clone(),
                        skills: skills.clone(),
                        priority: *priority,
                        tags: self.tags.clone(),
                    })
                }
                NodeKind::Transfer { target } => {
                    return self.finish(Action::Transfer {
                        target: target.clone(),
                        tags: self.tags.clone(),
                    })
                }
                NodeKind::Hangup { cause } => {
                    return self.finish(Action::Hangup {
                        cause: cause.clone(),
                    })
                }
                NodeKind::SetTag { key, value, next } => {
                    self.tags.insert(key.clone(), value.clone());
                    next
                }
                NodeKind::Goto { next } => next,
                NodeKind::Hours {
                    schedule,
                    open,
                    closed,
                } => {
                    if schedule.is_open(local) {
                        open
                    } else {
                        closed
                    }
                }
            };
            match flow.find(next) {
                Some(j) => i = j,
                None => return self.fail_flow(),
            }
        }
        self.fail_flow();
    }

    /// Play node `i`'s prompt (attempt `attempt`), or skip it when it
    /// allows barge-in and a digit is already waiting.
    fn play(&mut self, i: usize, attempt: u8, now: Instant, local: LocalTime) {
        let (prompt, barge_in) = match &self.flow.nodes[i].kind {
            NodeKind::Play {
                prompt, barge_in, ..
            }
            | NodeKind::Menu {
                prompt, barge_in, ..
            }
            | NodeKind::Collect {
                prompt, barge_in, ..
            } => (prompt.clone(), *barge_in),
            _ => return self.fail_flow(),
        };
        if barge_in && !self.typeahead.is_empty() {
            return self.prompt_done(i, attempt, now, local);
        }
        if !barge_in {
            self.dropped_digits += u32::try_from(self.typeahead.len()).unwrap_or(u32::MAX);
            self.typeahead.clear();
        }
        self.state = State::Prompt {
            node: i,
            attempt,
            barge_in,
        };
        self.actions.push_back(Action::Play { prompt, barge_in });
    }

    fn finish(&mut self, action: Action) {
        self.state = State::Done;
        self.actions.push_back(action);
    }

    /// A broken (unvalidated) flow: end the call rather than panic or spin.
    fn fail_flow(&mut self) {
        self.finish(Action::Hangup {
            cause: Some(FLOW_ERROR.to_owned()),
        });
    }
}
