//! ACD races and named behaviours, in virtual time: what happens when the
//! caller, the agent's phone and the agent's own controls cross, and the
//! queue rules one by one (ring-no-answer to the head, priority, skill
//! escalation, early escalation before the 15-second target of GB/T 33358,
//! overflow keeping the arrival, max wait, max length, comfort positions,
//! the skill-level strategy).

use hotline::acd::{
    Acd, AcdSpec, AgentIx, AgentSpec, AgentState, Escalation, Full, Output, QueueIx, QueueSpec,
    Step, Strategy,
};
use hotline::ids::CallId;
use hotline::time::{Duration, Instant};

// ------------------------------------------------------------ harness

fn agent(id: &str, skills: &[(&str, u8)]) -> AgentSpec {
    AgentSpec {
        id: id.into(),
        tenant: "city".into(),
        skills: skills.iter().map(|(s, l)| ((*s).into(), *l)).collect(),
        groups: vec![],
        always_reachable: true,
    }
}

fn queue(name: &str, skills: &[(&str, u8)]) -> QueueSpec {
    QueueSpec {
        name: name.into(),
        tenant: "city".into(),
        skills: skills.iter().map(|(s, l)| ((*s).into(), *l)).collect(),
        groups: vec![],
        strategy: Strategy::LongestIdle,
        ring_timeout: secs(10),
        wrap_up: Duration::ZERO,
        max_wait: None,
        max_length: None,
        escalation: vec![],
        early_escalation: None,
        comfort_every: None,
    }
}

fn spec(agents: Vec<AgentSpec>, queues: Vec<QueueSpec>) -> AcdSpec {
    AcdSpec {
        agents,
        queues,
        not_ready_reasons: vec!["break".into()],
        service_window: secs(1800),
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const A: AgentIx = AgentIx(0);
const B: AgentIx = AgentIx(1);
const Q1: QueueIx = QueueIx(0);
const Q2: QueueIx = QueueIx(1);

fn call(n: u64) -> CallId {
    CallId(n)
}

/// An ACD in virtual time; every output is checked and kept.
struct H {
    acd: Acd,
    t0: Instant,
    now: Instant,
    out: Vec<Output>,
}

impl H {
    fn new(spec: AcdSpec) -> H {
        let t0 = hotline::time::now();
        H {
            acd: Acd::new(spec, t0),
            t0,
            now: t0,
            out: vec![],
        }
    }

    /// Advance to `t0 + s` seconds, waking at every deadline on the way.
    fn at(&mut self, s: u64) -> &mut Self {
        let to = self.t0 + secs(s);
        while let Some(t) = self.acd.poll_timeout() {
            if t > to {
                break;
            }
            self.now = self.now.max(t);
            self.acd.handle_timeout(self.now);
            self.drain();
        }
        self.now = to;
        self
    }

    fn drain(&mut self) {
        while let Some(o) = self.acd.poll_output() {
            self.out.push(o);
        }
        if let Err(e) = self.acd.check_invariants() {
            panic!("invariant broken: {e}");
        }
    }

    /// Outputs since the last take, agent changes left out.
    fn take(&mut self) -> Vec<Output> {
        self.drain();
        std::mem::take(&mut self.out)
            .into_iter()
            .filter(|o| !matches!(o, Output::AgentChanged { .. }))
            .collect()
    }

    fn login(&mut self, a: AgentIx) {
        let now = self.now;
        self.acd.login(a, now).expect("login");
        self.drain();
    }

    fn enqueue(&mut self, c: CallId, q: QueueIx, prio: u8) {
        let now = self.now;
        self.acd.enqueue(c, q, &[], prio, now).expect("enqueue");
        self.drain();
    }

    fn state(&self, a: AgentIx) -> AgentState {
        self.acd.agent_state(a).clone()
    }
}

fn offer(c: u64, a: AgentIx, q: QueueIx) -> Output {
    Output::Offer {
        call: call(c),
        agent: a,
        queue: q,
    }
}

// ------------------------------------------------------------ races

#[test]
fn caller_hangs_up_while_agent_rings() {
    let mut h = H::new(spec(vec![agent("1001", &[])], vec![queue("q", &[])]));
    h.login(A);
    h.enqueue(call(1), Q1, 0);
    assert_eq!(h.take(), vec![offer(1, A, Q1)]);
    h.at(3);
    let now = h.now;
    assert_eq!(h.acd.abandon(call(1), now), Some(A));
    h.drain();
    assert_eq!(h.state(A), AgentState::Ready);
    assert!(!h.acd.holds(call(1)));
    // the 200 OK of the agent's phone arrives after: not current, hang it up
    assert!(!h.acd.answered(call(1), A, now));
    // and no ring-no-answer fires later
    h.at(60);
    assert_eq!(h.take(), vec![]);
    assert_eq!(h.state(A), AgentState::Ready);
    let st = h.acd.queue_stats(Q1, h.now);
    assert_eq!(
        (st.abandoned_24h, st.answered_24h, st.offered_24h),
        (1, 0, 1)
    );
    // an abandon of a call the ACD no longer holds is a no-op
    assert_eq!(h.acd.abandon(call(1), h.now), None);
}

#[test]
fn agent_answers_just_as_caller_abandons() {
    // the answer is processed first: the call is talking, the abandon ends it
    let mut h = H::new(spec(vec![agent("1001", &[])], vec![queue("q", &[])]));
    h.login(A);
    h.enqueue(call(1), Q1, 0);
    assert_eq!(h.take(), vec![offer(1, A, Q1)]);
    h.at(2);
    let now = h.now;
    assert!(h.acd.answered(call(1), A, now));
    assert_eq!(h.acd.abandon(call(1), now), None);
    h.drain();
    assert_eq!(h.state(A), AgentState::Ready, "no wrap-up configured");
    let st = h.acd.queue_stats(Q1, now);
    assert_eq!((st.answered_24h, st.abandoned_24h), (1, 0));

    // the abandon is processed first: the answer is refused
    h.enqueue(call(2), Q1, 0);
    assert_eq!(h.take(), vec![offer(2, A, Q1)]);
    let now = h.now;
    assert_eq!(h.acd.abandon(call(2), now), Some(A));
    assert!(!h.acd.answered(call(2), A, now));
    h.drain();
    assert_eq!(h.state(A), AgentState::Ready);
    let st = h.acd.queue_stats(Q1, now);
    assert_eq!((st.answered_24h, st.abandoned_24h), (1, 1));
}

#[test]
fn agent_logs_out_while_reserved() {
    let mut h = H::new(spec(
        vec![agent("1001", &[]), agent("1002", &[])],
        vec![queue("q", &[])],
    ));
    h.login(A);
    h.enqueue(call(1), Q1, 0);
    h.enqueue(call(2), Q1, 0);
    assert_eq!(h.take(), vec![offer(1, A, Q1)]);
    let now = h.now;
    h.acd.logout(A, now).expect("logout");
    assert_eq!(
        h.take(),
        vec![Output::CancelOffer {
            call: call(1),
            agent: A
        }]
    );
    assert_eq!(h.state(A), AgentState::LoggedOut);
    assert_eq!(h.acd.position(call(1)), Some(1), "back at the head");
    assert_eq!(h.acd.position(call(2)), Some(2));
    assert!(!h.acd.answered(call(1), A, now));
    h.login(B);
    assert_eq!(h.take(), vec![offer(1, B, Q1)]);
}

#[test]
fn two_queues_want_the_same_multi_skilled_agent() {
    let mut h = H::new(spec(
        vec![agent("1001", &[("tax", 3), ("health", 3)])],
        vec![
            queue("tax", &[("tax", 1)]),
            queue("health", &[("health", 1)]),
        ],
    ));
    h.enqueue(call(1), Q1, 0);
    h.at(1);
    h.enqueue(call(2), Q2, 0);
    h.at(2);
    h.enqueue(call(3), Q2, 5);
    // the agent takes the best of both queues: priority first
    h.login(A);
    assert_eq!(h.take(), vec![offer(3, A, Q2)]);
    // it is never offered a second call while reserved or talking
    h.enqueue(call(4), Q1, 9);
    assert_eq!(h.take(), vec![]);
    let now = h.now;
    assert!(h.acd.answered(call(3), A, now));
    h.at(30);
    h.acd.hung_up(call(3), h.now);
    // then the earliest arrival among equal priorities... after call 4's 9
    assert_eq!(h.take(), vec![offer(4, A, Q1)]);
    let now = h.now;
    h.acd.declined(call(4), A, now);
    // call 4 is never offered to A again; A takes the earliest of the rest
    assert_eq!(h.take(), vec![offer(1, A, Q1)]);
    assert_eq!(h.acd.position(call(4)), Some(1));
}

#[test]
fn phone_re_registers_mid_call() {
    let mut a = agent("1001", &[]);
    a.always_reachable = false;
    let mut h = H::new(spec(vec![a], vec![queue("q", &[])]));
    h.login(A);
    h.enqueue(call(1), Q1, 0);
    assert_eq!(h.take(), vec![], "unreachable: not offered");
    let now = h.now;
    h.acd.set_reachable(A, true, now);
    assert_eq!(h.take(), vec![offer(1, A, Q1)]);
    assert!(h.acd.answered(call(1), A, now));
    h.drain();
    h.out.clear();
    h.at(5);
    let now = h.now;
    h.acd.set_reachable(A, false, now);
    h.acd.set_reachable(A, true, now);
    h.drain();
    assert_eq!(h.out, vec![], "no state change at all");
    assert_eq!(h.state(A), AgentState::Talking(call(1)));
    h.acd.set_reachable(A, false, now);
    h.acd.hung_up(call(1), now);
    h.drain();
    assert_eq!(h.state(A), AgentState::Ready);
    h.enqueue(call(2), Q1, 0);
    assert_eq!(h.take(), vec![], "unregistered after the call");
}

// ------------------------------------------------------------ queue rules

#[test]
fn ring_no_answer_requeues_at_head() {
    let mut h = H::new(spec(
        vec![agent("1001", &[]), agent("1002", &[])],
        vec![queue("q", &[])],
    ));
    h.login(A);
    h.enqueue(call(1), Q1, 0);
    h.at(1);
    h.enqueue(call(2), Q1, 0);
    h.enqueue(call(3), Q1, 1);
    assert_eq!(h.take(), vec![offer(1, A, Q1)]);
    h.at(10);
    assert_eq!(
        h.take(),
        vec![Output::CancelOffer {
            call: call(1),
            agent: A
        }]
    );
    assert_eq!(h.state(A), AgentState::NotReady("no_answer".into()));
    // before every call of its priority, behind higher priorities
    assert_eq!(h.acd.position(call(3)), Some(1));
    assert_eq!(h.acd.position(call(1)), Some(2));
    assert_eq!(h.acd.position(call(2)), Some(3));
    h.login(B);
    assert_eq!(h.take(), vec![offer(3, B, Q1)]);
    let now = h.now;
    h.acd.ready(A, now).expect("ready");
    assert_eq!(h.take(), vec![offer(1, A, Q1)]);
}

#[test]
fn priority_jumps_ahead() {
    let mut h = H::new(spec(vec![agent("1001", &[])], vec![queue("q", &[])]));
    for (n, prio) in [(1, 0), (2, 0), (3, 9), (4, 5)] {
        h.enqueue(call(n), Q1, prio);
        h.at(n);
    }
    let order: Vec<_> = (1..=4).map(|n| h.acd.position(call(n))).collect();
    assert_eq!(order, vec![Some(3), Some(4), Some(1), Some(2)]);
    h.login(A);
    assert_eq!(h.take(), vec![offer(3, A, Q1)]);
}

#[test]
fn escalation_widens_skills() {
    let mut q = queue("tax", &[("tax", 4)]);
    q.escalation = vec![
        Escalation {
            after: secs(20),
            step: Step::MinLevel(2),
        },
        Escalation {
            after: secs(40),
            step: Step::DropSkill("tax".into()),
        },
        Escalation {
            after: secs(60),
            step: Step::DropSkill("dialect".into()),
        },
    ];
    let mut h = H::new(spec(
        vec![agent("1001", &[("tax", 2)]), agent("1002", &[])],
        vec![q],
    ));
    h.login(A);
    h.login(B);
    let now = h.now;
    h.acd.enqueue(call(1), Q1, &[], 0, now).expect("enqueue");
    h.acd
        .enqueue(call(2), Q1, &["dialect".into()], 0, now)
        .expect("enqueue");
    assert_eq!(h.take(), vec![], "nobody has tax 4");
    h.at(20);
    // both calls widen to tax 2; A takes the earliest
    let out = h.take();
    assert!(out.contains(&Output::Escalated {
        call: call(1),
        queue: Q1,
        step: 0,
        early: false
    }));
    assert!(out.contains(&offer(1, A, Q1)));
    let now = h.now;
    assert!(h.acd.answered(call(1), A, now));
    h.at(40);
    // call 2 no longer needs tax, but still its own dialect skill
    assert_eq!(
        h.take(),
        vec![Output::Escalated {
            call: call(2),
            queue: Q1,
            step: 1,
            early: false
        }]
    );
    h.at(60);
    assert_eq!(
        h.take(),
        vec![
            Output::Escalated {
                call: call(2),
                queue: Q1,
                step: 2,
                early: false
            },
            offer(2, B, Q1)
        ]
    );
}

#[test]
fn early_escalation_before_15s() {
    let mut q1 = queue("main", &[("tax", 1)]);
    q1.escalation = vec![Escalation {
        after: secs(60),
        step: Step::Overflow(Q2),
    }];
    q1.early_escalation = Some(secs(5));
    let q2 = queue("backup", &[]);
    let mut h = H::new(spec(vec![agent("1001", &[])], vec![q1, q2]));
    h.login(A);
    h.enqueue(call(1), Q1, 0);
    h.at(9);
    assert_eq!(h.take(), vec![]);
    // at 15 s - 5 s with no eligible agent ready: the 60-s step now
    h.at(10);
    assert_eq!(
        h.take(),
        vec![
            Output::Escalated {
                call: call(1),
                queue: Q1,
                step: 0,
                early: true
            },
            Output::Overflowed {
                call: call(1),
                from: Q1,
                to: Q2
            },
            offer(1, A, Q2)
        ]
    );
    // a call answered before the early point never escalates
    let mut s = h.acd.spec().clone();
    s.agents = vec![agent("1001", &[("tax", 1)])];
    let mut h = H::new(s);
    h.enqueue(call(2), Q1, 0);
    h.at(3);
    h.login(A);
    assert_eq!(h.take(), vec![offer(2, A, Q1)]);
    let now = h.now;
    assert!(h.acd.answered(call(2), A, now));
    h.at(120);
    assert_eq!(h.take(), vec![]);
    assert_eq!(
        h.acd.queue_stats(Q1, h.now).answered_within_15s_ratio,
        Some(1.0)
    );
}

#[test]
fn overflow_keeps_arrival() {
    let mut q1 = queue("main", &[("tax", 1)]);
    q1.escalation = vec![Escalation {
        after: secs(20),
        step: Step::Overflow(Q2),
    }];
    let mut q2 = queue("backup", &[]);
    q2.max_wait = Some(secs(30));
    let mut h = H::new(spec(vec![agent("1001", &[])], vec![q1, q2]));
    h.enqueue(call(1), Q1, 0);
    h.at(5);
    h.enqueue(call(2), Q2, 0);
    h.at(20);
    assert_eq!(
        h.take(),
        vec![
            Output::Escalated {
                call: call(1),
                queue: Q1,
                step: 0,
                early: false
            },
            Output::Overflowed {
                call: call(1),
                from: Q1,
                to: Q2
            }
        ]
    );
    assert_eq!(h.acd.position(call(1)), Some(1), "arrived first");
    assert_eq!(h.acd.position(call(2)), Some(2));
    assert_eq!(h.acd.call_queue(call(1)), Some(Q2));
    // max wait counts from the first enqueue: 30 s, not 20 + 30
    h.at(30);
    assert_eq!(
        h.take(),
        vec![Output::Expired {
            call: call(1),
            queue: Q2
        }]
    );
    let st = h.acd.queue_stats(Q2, h.now);
    assert_eq!(st.expired_24h, 1);
    assert_eq!(h.acd.queue_stats(Q1, h.now).offered_24h, 0);
}

#[test]
fn max_wait_expires() {
    let mut q = queue("q", &[]);
    q.max_wait = Some(secs(60));
    let mut h = H::new(spec(vec![agent("1001", &[])], vec![q]));
    h.enqueue(call(1), Q1, 0);
    h.at(59);
    assert_eq!(h.take(), vec![]);
    assert!(h.acd.holds(call(1)));
    h.at(60);
    assert_eq!(
        h.take(),
        vec![Output::Expired {
            call: call(1),
            queue: Q1
        }]
    );
    assert!(!h.acd.holds(call(1)));
    // a ringing call is not expired; if the offer fails past its max wait it is
    h.enqueue(call(2), Q1, 0);
    h.at(115);
    h.login(A);
    assert_eq!(h.take(), vec![offer(2, A, Q1)]);
    h.at(125);
    assert_eq!(
        h.take(),
        vec![
            Output::CancelOffer {
                call: call(2),
                agent: A
            },
            Output::Expired {
                call: call(2),
                queue: Q1
            }
        ]
    );
    let st = h.acd.queue_stats(Q1, h.now);
    assert_eq!((st.expired_24h, st.offered_24h), (2, 2));
    assert_eq!(st.answered_within_15s_ratio, Some(0.0));
}

#[test]
fn max_length_refuses() {
    let mut q = queue("q", &[]);
    q.max_length = Some(2);
    let mut h = H::new(spec(vec![agent("1001", &[])], vec![q]));
    let now = h.now;
    assert_eq!(h.acd.enqueue(call(1), Q1, &[], 0, now), Ok(()));
    assert_eq!(h.acd.enqueue(call(2), Q1, &[], 0, now), Ok(()));
    assert_eq!(h.acd.enqueue(call(3), Q1, &[], 9, now), Err(Full::Length));
    assert_eq!(
        h.acd.enqueue(call(4), QueueIx(7), &[], 0, now),
        Err(Full::NoQueue)
    );
    assert!(!h.acd.holds(call(3)));
    // a call ringing an agent does not take a place
    h.login(A);
    assert_eq!(h.take(), vec![offer(1, A, Q1)]);
    let now = h.now;
    assert_eq!(h.acd.enqueue(call(3), Q1, &[], 0, now), Ok(()));
    let st = h.acd.queue_stats(Q1, now);
    assert_eq!((st.waiting, st.refused_24h), (2, 1));
}

#[test]
fn comfort_positions() {
    let mut q = queue("q", &[]);
    q.comfort_every = Some(secs(30));
    let mut h = H::new(spec(vec![agent("1001", &[])], vec![q]));
    h.enqueue(call(1), Q1, 0);
    h.enqueue(call(2), Q1, 0);
    h.enqueue(call(3), Q1, 1);
    h.at(29);
    assert_eq!(h.take(), vec![]);
    h.at(30);
    let mut got: Vec<_> = h
        .take()
        .into_iter()
        .filter_map(|o| match o {
            Output::Comfort {
                call,
                position,
                estimated_wait,
            } => Some((call.0, position, estimated_wait)),
            _ => None,
        })
        .collect();
    got.sort();
    assert_eq!(got, vec![(1, 2, None), (2, 3, None), (3, 1, None)]);
    // after an answer the queue has a pace, and the positions moved up
    h.login(A);
    let now = h.now;
    assert!(h.acd.answered(call(3), A, now));
    h.at(60);
    let got: Vec<_> = h
        .take()
        .into_iter()
        .filter_map(|o| match o {
            Output::Comfort {
                call,
                position,
                estimated_wait,
            } => Some((call.0, position, estimated_wait.is_some())),
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), 2);
    assert!(got.contains(&(1, 1, true)) && got.contains(&(2, 2, true)));
}

#[test]
fn skill_level_strategy() {
    let mut q = queue("q", &[("tax", 1)]);
    q.strategy = Strategy::SkillLevelThenLongestIdle;
    let mut h = H::new(spec(
        vec![
            agent("1001", &[("tax", 2)]),
            agent("1002", &[("tax", 5)]),
            agent("1003", &[("tax", 5), ("health", 1)]),
        ],
        vec![q.clone()],
    ));
    h.login(A);
    h.at(1);
    h.login(B);
    h.at(2);
    h.login(AgentIx(2));
    h.enqueue(call(1), Q1, 0);
    // highest level wins over idle time; ties by longest idle
    assert_eq!(h.take(), vec![offer(1, B, Q1)]);
    h.enqueue(call(2), Q1, 0);
    assert_eq!(h.take(), vec![offer(2, AgentIx(2), Q1)]);
    // longest idle alone would have chosen A first

    q.strategy = Strategy::LongestIdle;
    let mut h = H::new(spec(
        vec![agent("1001", &[("tax", 2)]), agent("1002", &[("tax", 5)])],
        vec![q],
    ));
    h.login(A);
    h.at(1);
    h.login(B);
    h.enqueue(call(1), Q1, 0);
    assert_eq!(h.take(), vec![offer(1, A, Q1)]);
}

#[test]
fn skill_level_counts_the_calls_own_skills() {
    let mut q = queue("q", &[("tax", 1)]);
    q.strategy = Strategy::SkillLevelThenLongestIdle;
    let mut h = H::new(spec(
        vec![
            agent("1001", &[("tax", 5), ("health", 1)]),
            agent("1002", &[("tax", 3), ("health", 4)]),
        ],
        vec![q],
    ));
    h.login(A);
    h.login(B);
    let now = h.now;
    h.acd
        .enqueue(call(1), Q1, &["health".into()], 0, now)
        .expect("enqueue");
    // sums: A 5+1 = 6, B 3+4 = 7
    assert_eq!(h.take(), vec![offer(1, B, Q1)]);
}
