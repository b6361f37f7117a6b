//! ACD properties over random configurations and random sequences of
//! agent controls, call events and time: every output is checked against a
//! model fed only by the inputs and the outputs, and after every step:
//! - no agent is reserved for or talking on two calls; an agent is
//!   Reserved(c) iff c's current offer is to it, Talking(c) iff it answered c;
//! - every enqueued call is accounted for exactly once: held (waiting,
//!   offered, talking), answered and ended, abandoned or expired;
//! - no waiting call has an eligible ready agent (`Acd::check_invariants`);
//! - wrap-up ends within its duration; a logout while talking applies when
//!   the call ends;
//! - the queue counters equal the model's counts;
//! - the loop contract: after the inputs, no deadline is left in the past.

use std::collections::BTreeMap;

use hotline::acd::{
    Acd, AcdSpec, AgentIx, AgentSpec, AgentState, Escalation, Full, Output, QueueIx, QueueSpec,
    Step, Strategy as Pick,
};
use hotline::ids::CallId;
use hotline::time::{Duration, Instant};
use proptest::prelude::*;

const SKILLS: [&str; 3] = ["tax", "health", "dialect"];
const REASONS: [&str; 3] = ["break", "meeting", "lunch"]; // lunch is not configured

fn skills_strategy() -> impl Strategy<Value = Vec<(String, u8)>> {
    proptest::collection::vec((0..SKILLS.len(), 1u8..=5), 0..3).prop_map(|v| {
        let mut m = BTreeMap::new();
        for (s, l) in v {
            m.insert(SKILLS[s].to_owned(), l);
        }
        m.into_iter().collect()
    })
}

fn agent_strategy() -> impl Strategy<Value = AgentSpec> {
    (
        skills_strategy(),
        any::<bool>(),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.7),
    )
        .prop_map(|(skills, group, other_tenant, always)| AgentSpec {
            id: String::new(),
            tenant: if other_tenant { "county" } else { "city" }.into(),
            skills,
            groups: if group { vec!["g".into()] } else { vec![] },
            always_reachable: always,
        })
}

fn step_strategy(nq: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..SKILLS.len()).prop_map(|s| Step::DropSkill(SKILLS[s].into())),
        (0u8..=3).prop_map(Step::MinLevel),
        (0..nq).prop_map(|q| Step::Overflow(QueueIx(q as u32))),
    ]
}

fn queue_strategy(nq: usize) -> impl Strategy<Value = QueueSpec> {
    (
        (
            skills_strategy(),
            prop::bool::weighted(0.2),
            any::<bool>(),
            1u64..20,
            prop_oneof![Just(0u64), 1u64..30],
        ),
        (
            proptest::option::of(5u64..150),
            proptest::option::of(1usize..4),
            proptest::collection::vec((0u64..60, step_strategy(nq)), 0..4),
            proptest::option::of(0u64..16),
            proptest::option::of(3u64..40),
        ),
    )
        .prop_map(
            |(
                (skills, grouped, skill_level, ring, wrap),
                (max_wait, max_len, esc, early, comfort),
            )| {
                let mut escalation: Vec<Escalation> = esc
                    .into_iter()
                    .map(|(after, step)| Escalation {
                        after: Duration::from_secs(after),
                        step,
                    })
                    .collect();
                escalation.sort_by_key(|e| e.after);
                QueueSpec {
                    name: String::new(),
                    tenant: "city".into(),
                    skills,
                    groups: if grouped { vec!["g".into()] } else { vec![] },
                    strategy: if skill_level {
                        Pick::SkillLevelThenLongestIdle
                    } else {
                        Pick::LongestIdle
                    },
                    ring_timeout: Duration::from_secs(ring),
                    wrap_up: Duration::from_secs(wrap),
                    max_wait: max_wait.map(Duration::from_secs),
                    max_length: max_len,
                    escalation,
                    early_escalation: early.map(Duration::from_secs),
                    comfort_every: comfort.map(Duration::from_secs),
                }
            },
        )
}

fn spec_strategy() -> impl Strategy<Value = AcdSpec> {
    (1usize..=3).prop_flat_map(|nq| {
        (
            proptest::collection::vec(agent_strategy(), 1..=5),
            proptest::collection::vec(queue_strategy(nq), nq),
        )
            .prop_map(|(mut agents, mut queues)| {
                for (i, a) in agents.iter_mut().enumerate() {
                    a.id = format!("{}", 1001 + i);
                }
                for (i, q) in queues.iter_mut().enumerate() {
                    q.name = format!("q{i}");
                }
                AcdSpec {
                    agents,
                    queues,
                    not_ready_reasons: vec!["break".into(), "meeting".into()],
                    service_window: Duration::from_secs(1800),
                }
            })
    })
}

#[derive(Debug, Clone)]
enum Op {
    Login(usize),
    Logout(usize),
    Ready(usize),
    NotReady(usize, usize),
    Reachable(usize, bool),
    EndWrapUp(usize),
    Enqueue(usize, Vec<usize>, u8),
    Abandon(usize),
    Answer(usize),
    Decline(usize),
    Unreachable(usize),
    HangUp(usize),
    /// An answer from a phone that was never offered the call (or too late).
    StaleAnswer(usize, usize),
    Advance(u64),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let ix = 0usize..8;
    prop_oneof![
        3 => ix.clone().prop_map(Op::Login),
        1 => ix.clone().prop_map(Op::Logout),
        2 => ix.clone().prop_map(Op::Ready),
        1 => (ix.clone(), 0..REASONS.len()).prop_map(|(a, r)| Op::NotReady(a, r)),
        1 => (ix.clone(), any::<bool>()).prop_map(|(a, r)| Op::Reachable(a, r)),
        1 => ix.clone().prop_map(Op::EndWrapUp),
        4 => (0usize..3, proptest::collection::vec(0..SKILLS.len(), 0..2), 0u8..3)
            .prop_map(|(q, s, p)| Op::Enqueue(q, s, p)),
        1 => ix.clone().prop_map(Op::Abandon),
        4 => ix.clone().prop_map(Op::Answer),
        1 => ix.clone().prop_map(Op::Decline),
        1 => ix.clone().prop_map(Op::Unreachable),
        3 => ix.clone().prop_map(Op::HangUp),
        1 => (ix.clone(), ix.clone()).prop_map(|(c, a)| Op::StaleAnswer(c, a)),
        4 => (0u64..40).prop_map(Op::Advance),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Waiting(QueueIx),
    Offered(AgentIx, QueueIx),
    Talking(AgentIx, QueueIx),
    Answered,
    Abandoned,
    Expired,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    answered: u64,
    abandoned: u64,
    expired: u64,
    refused: u64,
}

struct World {
    acd: Acd,
    spec: AcdSpec,
    now: Instant,
    next_call: u64,
    calls: BTreeMap<CallId, Status>,
    agents: Vec<AgentState>,
    /// When each agent entered wrap-up, and for how long.
    wrap: Vec<Option<(Instant, Duration)>>,
    /// Logout asked while talking, not cancelled by a login.
    pending_logout: Vec<bool>,
    counts: Vec<Counts>,
    enqueued: u64,
    arrivals: BTreeMap<CallId, Instant>,
    /// The queue each answered call was answered in.
    answered_in: BTreeMap<CallId, QueueIx>,
}

impl World {
    fn new(spec: AcdSpec) -> World {
        let t0 = hotline::time::now();
        let na = spec.agents.len();
        let nq = spec.queues.len();
        World {
            acd: Acd::new(spec.clone(), t0),
            spec,
            now: t0,
            next_call: 0,
            calls: BTreeMap::new(),
            agents: vec![AgentState::LoggedOut; na],
            wrap: vec![None; na],
            pending_logout: vec![false; na],
            counts: vec![Counts::default(); nq],
            enqueued: 0,
            arrivals: BTreeMap::new(),
            answered_in: BTreeMap::new(),
        }
    }

    fn agent(&self, i: usize) -> AgentIx {
        AgentIx((i % self.spec.agents.len()) as u32)
    }

    fn pick(&self, i: usize, f: impl Fn(&Status) -> bool) -> Option<(CallId, Status)> {
        let v: Vec<_> = self
            .calls
            .iter()
            .filter(|(_, s)| f(s))
            .map(|(c, s)| (*c, *s))
            .collect();
        if v.is_empty() {
            None
        } else {
            Some(v[i % v.len()])
        }
    }

    fn ended(&mut self, c: CallId, how: Status) {
        let q = match self.calls.get(&c) {
            Some(Status::Waiting(q) | Status::Offered(_, q) | Status::Talking(_, q)) => *q,
            other => panic!("{c} ends ({how:?}) from {other:?}"),
        };
        match how {
            Status::Abandoned => self.counts[q.0 as usize].abandoned += 1,
            Status::Expired => self.counts[q.0 as usize].expired += 1,
            _ => {}
        }
        self.calls.insert(c, how);
    }

    fn apply(&mut self, op: &Op) {
        let now = self.now;
        match op {
            Op::Login(a) => {
                let a = self.agent(*a);
                self.acd.login(a, now).expect("login a known agent");
                self.pending_logout[a.0 as usize] = false;
            }
            Op::Logout(a) => {
                let a = self.agent(*a);
                if matches!(self.agents[a.0 as usize], AgentState::Talking(_)) {
                    self.pending_logout[a.0 as usize] = true;
                }
                self.acd.logout(a, now).expect("logout a known agent");
            }
            Op::Ready(a) => {
                let a = self.agent(*a);
                let r = self.acd.ready(a, now);
                assert_eq!(
                    r.is_err(),
                    self.agents[a.0 as usize] == AgentState::LoggedOut,
                    "{r:?}"
                );
                if matches!(self.agents[a.0 as usize], AgentState::Talking(_)) {
                    self.pending_logout[a.0 as usize] = false;
                }
            }
            Op::NotReady(a, r) => {
                let a = self.agent(*a);
                let res = self.acd.not_ready(a, REASONS[*r], now);
                let configured = self.spec.not_ready_reasons.iter().any(|x| x == REASONS[*r]);
                if !configured {
                    assert!(res.is_err());
                } else {
                    assert_eq!(
                        res.is_err(),
                        self.agents[a.0 as usize] == AgentState::LoggedOut
                    );
                    if matches!(self.agents[a.0 as usize], AgentState::Talking(_)) {
                        // the latest request wins over a pending logout
                        self.pending_logout[a.0 as usize] = false;
                    }
                }
            }
            Op::Reachable(a, r) => {
                let a = self.agent(*a);
                self.acd.set_reachable(a, *r, now);
            }
            Op::EndWrapUp(a) => {
                let a = self.agent(*a);
                let r = self.acd.end_wrap_up(a, now);
                assert_eq!(r.is_ok(), self.agents[a.0 as usize] == AgentState::WrapUp);
            }
            Op::Enqueue(q, skills, prio) => {
                let q = QueueIx((*q % self.spec.queues.len()) as u32);
                self.next_call += 1;
                let c = CallId(self.next_call);
                let skills: Vec<String> = skills.iter().map(|s| SKILLS[*s].into()).collect();
                let waiting = self
                    .calls
                    .values()
                    .filter(|s| **s == Status::Waiting(q))
                    .count();
                match self.acd.enqueue(c, q, &skills, *prio, now) {
                    Ok(()) => {
                        self.enqueued += 1;
                        self.arrivals.insert(c, now);
                        self.calls.insert(c, Status::Waiting(q));
                    }
                    Err(Full::Length) => {
                        let max = self.spec.queues[q.0 as usize].max_length;
                        // (overflows may fill a queue beyond its max_length)
                        assert!(
                            max.is_some_and(|m| waiting >= m),
                            "refused below max_length"
                        );
                        self.counts[q.0 as usize].refused += 1;
                    }
                    Err(Full::NoQueue) => panic!("queue {q:?} exists"),
                }
            }
            Op::Abandon(i) => {
                if let Some((c, s)) = self.pick(*i, |s| {
                    matches!(s, Status::Waiting(_) | Status::Offered(..))
                }) {
                    let r = self.acd.abandon(c, now);
                    match s {
                        Status::Offered(a, _) => assert_eq!(r, Some(a)),
                        _ => assert_eq!(r, None),
                    }
                    self.ended(c, Status::Abandoned);
                }
            }
            Op::Answer(i) => {
                if let Some((c, Status::Offered(a, q))) =
                    self.pick(*i, |s| matches!(s, Status::Offered(..)))
                {
                    assert!(
                        self.acd.answered(c, a, now),
                        "current offer of {c} to {a:?}"
                    );
                    self.counts[q.0 as usize].answered += 1;
                    self.answered_in.insert(c, q);
                    self.calls.insert(c, Status::Talking(a, q));
                }
            }
            Op::Decline(i) => {
                if let Some((c, Status::Offered(a, q))) =
                    self.pick(*i, |s| matches!(s, Status::Offered(..)))
                {
                    self.calls.insert(c, Status::Waiting(q));
                    self.acd.declined(c, a, now);
                }
            }
            Op::Unreachable(i) => {
                if let Some((c, Status::Offered(a, q))) =
                    self.pick(*i, |s| matches!(s, Status::Offered(..)))
                {
                    self.calls.insert(c, Status::Waiting(q));
                    self.acd.unreachable(c, a, now);
                }
            }
            Op::HangUp(i) => {
                if let Some((c, Status::Talking(a, _))) =
                    self.pick(*i, |s| matches!(s, Status::Talking(..)))
                {
                    self.acd.hung_up(c, now);
                    self.ended(c, Status::Answered);
                    self.drain();
                    if self.pending_logout[a.0 as usize] {
                        assert_eq!(self.agents[a.0 as usize], AgentState::LoggedOut);
                        self.pending_logout[a.0 as usize] = false;
                    }
                }
            }
            Op::StaleAnswer(c, a) => {
                let c = CallId(1 + (*c as u64) % (self.next_call + 1));
                let a = self.agent(*a);
                let current = matches!(self.calls.get(&c), Some(Status::Offered(x, _)) if *x == a);
                if !current {
                    assert!(!self.acd.answered(c, a, now), "answered without an offer");
                }
            }
            Op::Advance(s) => {
                let to = self.now + Duration::from_secs(*s);
                while let Some(t) = self.acd.poll_timeout() {
                    if t > to {
                        break;
                    }
                    self.now = self.now.max(t);
                    self.acd.handle_timeout(self.now);
                    self.drain();
                    self.check();
                }
                self.now = to;
            }
        }
        // the loop contract: handle what is due now
        while self.acd.poll_timeout().is_some_and(|t| t <= self.now) {
            self.acd.handle_timeout(self.now);
            self.drain();
        }
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(o) = self.acd.poll_output() {
            self.output(o);
        }
    }

    fn output(&mut self, o: Output) {
        match o {
            Output::Offer { call, agent, queue } => {
                assert_eq!(
                    self.calls.get(&call),
                    Some(&Status::Waiting(queue)),
                    "{o:?}"
                );
                assert_eq!(self.agents[agent.0 as usize], AgentState::Reserved(call));
                self.calls.insert(call, Status::Offered(agent, queue));
            }
            Output::CancelOffer { call, agent } => {
                let Some(Status::Offered(a, q)) = self.calls.get(&call).copied() else {
                    panic!("{o:?} without an offer");
                };
                assert_eq!(a, agent);
                self.calls.insert(call, Status::Waiting(q));
            }
            Output::Overflowed { call, from, to } => {
                assert_eq!(self.calls.get(&call), Some(&Status::Waiting(from)), "{o:?}");
                self.calls.insert(call, Status::Waiting(to));
            }
            Output::Escalated {
                call, queue, step, ..
            } => {
                assert_eq!(
                    self.calls.get(&call),
                    Some(&Status::Waiting(queue)),
                    "{o:?}"
                );
                assert!(step < self.spec.queues[queue.0 as usize].escalation.len());
            }
            Output::Expired { call, queue } => {
                assert_eq!(
                    self.calls.get(&call),
                    Some(&Status::Waiting(queue)),
                    "{o:?}"
                );
                let wait = self.now - self.arrival(call);
                let max = self.spec.queues[queue.0 as usize]
                    .max_wait
                    .expect("max wait");
                assert!(wait >= max, "expired after {wait:?} < {max:?}");
                self.ended(call, Status::Expired);
            }
            Output::Comfort { call, position, .. } => {
                let Some(Status::Waiting(q)) = self.calls.get(&call).copied() else {
                    panic!("{o:?} for a call that does not wait");
                };
                let n = self
                    .calls
                    .values()
                    .filter(|s| **s == Status::Waiting(q))
                    .count();
                assert!((1..=n).contains(&position), "{o:?} of {n}");
            }
            Output::AgentChanged {
                agent,
                from,
                to,
                at,
            } => {
                let i = agent.0 as usize;
                assert_eq!(
                    self.agents[i], from,
                    "{agent:?} changed from a state it was not in"
                );
                assert_ne!(from, to);
                assert_eq!(at, self.now);
                self.wrap[i] = None;
                if to == AgentState::WrapUp {
                    let AgentState::Talking(c) = from else {
                        panic!("wrap-up after {from:?}");
                    };
                    let Some(&q) = self.answered_in.get(&c) else {
                        panic!("wrap-up after {c} which was not answered");
                    };
                    self.wrap[i] = Some((at, self.spec.queues[q.0 as usize].wrap_up));
                }
                self.agents[i] = to;
            }
        }
    }

    fn arrival(&self, call: CallId) -> Instant {
        self.arrivals[&call]
    }

    fn check(&self) {
        if let Err(e) = self.acd.check_invariants() {
            panic!("invariant: {e}");
        }
        let mut busy: BTreeMap<AgentIx, CallId> = BTreeMap::new();
        for (c, s) in &self.calls {
            match s {
                Status::Offered(a, q) | Status::Talking(a, q) => {
                    assert!(busy.insert(*a, *c).is_none(), "{a:?} on two calls");
                    let want = if matches!(s, Status::Offered(..)) {
                        AgentState::Reserved(*c)
                    } else {
                        AgentState::Talking(*c)
                    };
                    assert_eq!(self.acd.agent_state(*a), &want);
                    assert!(self.acd.holds(*c) && !self.acd.is_waiting(*c));
                    assert_eq!(self.acd.call_queue(*c), Some(*q));
                }
                Status::Waiting(q) => {
                    assert!(self.acd.is_waiting(*c), "{c} should wait");
                    assert_eq!(self.acd.call_queue(*c), Some(*q));
                    assert!(self.acd.position(*c).is_some());
                }
                _ => assert!(!self.acd.holds(*c), "{c} ended but is held"),
            }
        }
        for (i, st) in self.agents.iter().enumerate() {
            let a = AgentIx(i as u32);
            assert_eq!(self.acd.agent_state(a), st, "{a:?}");
            if let Some(c) = st.call() {
                assert_eq!(busy.get(&a), Some(&c), "{a:?} is {st:?} without that call");
            }
            if let Some((since, wrap)) = self.wrap[i] {
                assert!(self.now < since + wrap, "{a:?} wrap-up overran");
            }
        }
        // every enqueued call exactly once
        assert_eq!(self.calls.len() as u64, self.enqueued);
        for (qi, want) in self.counts.iter().enumerate() {
            let st = self.acd.queue_stats(QueueIx(qi as u32), self.now);
            let got = Counts {
                answered: st.answered_24h,
                abandoned: st.abandoned_24h,
                expired: st.expired_24h,
                refused: st.refused_24h,
            };
            assert_eq!(&got, want, "queue {qi}");
            assert_eq!(
                st.offered_24h,
                want.answered + want.abandoned + want.expired
            );
            let waiting = self
                .calls
                .values()
                .filter(|s| **s == Status::Waiting(QueueIx(qi as u32)))
                .count();
            assert_eq!(st.waiting, waiting);
        }
        let by_state: usize = self.acd.agents_by_state(None).iter().map(|(_, n)| n).sum();
        assert_eq!(by_state, self.agents.len());
        assert!(self.acd.poll_timeout().is_none_or(|t| t > self.now));
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_sequences_keep_the_invariants(
        spec in spec_strategy(),
        ops in proptest::collection::vec(op_strategy(), 1..150),
    ) {
        let mut w = World::new(spec);
        w.check();
        for op in &ops {
            w.apply(op);
            w.check();
        }
        // wind down: every call ends one way; every wrap-up ends
        let held: Vec<CallId> = w
            .calls
            .iter()
            .filter(|(_, s)| matches!(s, Status::Waiting(_) | Status::Offered(..) | Status::Talking(..)))
            .map(|(c, _)| *c)
            .collect();
        for c in held {
            let now = w.now;
            match w.calls[&c] {
                Status::Talking(..) => {
                    w.acd.hung_up(c, now);
                    w.ended(c, Status::Answered);
                }
                Status::Waiting(_) | Status::Offered(..) => {
                    w.acd.abandon(c, now);
                    w.ended(c, Status::Abandoned);
                }
                _ => {}
            }
            w.drain();
            w.check();
        }
        w.apply(&Op::Advance(3600));
        w.check();
        prop_assert!(w.agents.iter().all(|s| !matches!(s, AgentState::WrapUp | AgentState::Reserved(_) | AgentState::Talking(_))));
    }
}
