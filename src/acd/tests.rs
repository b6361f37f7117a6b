//! The ACD in virtual time: agent control while on a call, refusals,
//! tenants and groups, escalation while ringing, overflow cycles and the
//! figures' definitions. (Races and the named queue rules are in
//! `tests/acd_races.rs`; random sequences in `tests/acd_props.rs`.)

use super::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn agent(id: &str, tenant: &str, skills: &[(&str, u8)], groups: &[&str]) -> AgentSpec {
    AgentSpec {
        id: id.into(),
        tenant: tenant.into(),
        skills: skills.iter().map(|(s, l)| ((*s).into(), *l)).collect(),
        groups: groups.iter().map(|g| (*g).into()).collect(),
        always_reachable: true,
    }
}

fn queue(name: &str, tenant: &str) -> QueueSpec {
    QueueSpec {
        name: name.into(),
        tenant: tenant.into(),
        skills: vec![],
        groups: vec![],
        strategy: Strategy::LongestIdle,
        ring_timeout: secs(10),
        wrap_up: secs(20),
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
        not_ready_reasons: vec!["break".into(), "meeting".into()],
        service_window: secs(1800),
    }
}

const A: AgentIx = AgentIx(0);
const B: AgentIx = AgentIx(1);
const Q: QueueIx = QueueIx(0);
const C1: CallId = CallId(1);
const C2: CallId = CallId(2);

struct H {
    acd: Acd,
    t0: Instant,
    now: Instant,
    out: Vec<Output>,
}

impl H {
    fn new(spec: AcdSpec) -> H {
        let t0 = crate::time::now();
        H {
            acd: Acd::new(spec, t0),
            t0,
            now: t0,
            out: vec![],
        }
    }

    fn at(&mut self, s: u64) {
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
    }

    fn drain(&mut self) {
        while let Some(o) = self.acd.poll_output() {
            self.out.push(o);
        }
        if let Err(e) = self.acd.check_invariants() {
            panic!("invariant broken: {e}");
        }
    }

    fn state(&self, a: AgentIx) -> AgentState {
        self.acd.agent_state(a).clone()
    }

    fn changes(&mut self, a: AgentIx) -> Vec<(&'static str, &'static str)> {
        self.drain();
        let v = self
            .out
            .iter()
            .filter_map(|o| match o {
                Output::AgentChanged {
                    agent, from, to, ..
                } if *agent == a => Some((from.label(), to.label())),
                _ => None,
            })
            .collect();
        self.out.clear();
        v
    }

    /// Login A, enqueue C1, A answers.
    fn talking(&mut self) {
        let now = self.now;
        self.acd.login(A, now).unwrap();
        self.acd.enqueue(C1, Q, &[], 0, now).unwrap();
        assert!(self.acd.answered(C1, A, now));
        self.drain();
        self.out.clear();
    }
}

fn one() -> H {
    H::new(spec(
        vec![
            agent("1001", "city", &[], &[]),
            agent("1002", "city", &[], &[]),
        ],
        vec![queue("q", "city")],
    ))
}

#[test]
fn logout_while_talking_applies_after_the_call() {
    let mut h = one();
    h.talking();
    h.acd.logout(A, h.now).unwrap();
    assert_eq!(h.state(A), AgentState::Talking(C1));
    h.at(30);
    h.acd.hung_up(C1, h.now);
    assert_eq!(h.changes(A), vec![("talking", "logged_out")]);
    assert!(!h.acd.holds(C1));
}

#[test]
fn login_cancels_a_pending_logout() {
    let mut h = one();
    h.talking();
    h.acd.logout(A, h.now).unwrap();
    h.acd.login(A, h.now).unwrap();
    h.acd.hung_up(C1, h.now);
    assert_eq!(h.changes(A), vec![("talking", "wrap_up")]);
}

#[test]
fn wrap_up_ends_by_itself_early_or_into_a_pending_not_ready() {
    let mut h = one();
    h.talking();
    h.acd.hung_up(C1, h.now);
    h.at(19);
    assert_eq!(h.state(A), AgentState::WrapUp);
    h.at(20);
    assert_eq!(
        h.changes(A),
        vec![("talking", "wrap_up"), ("wrap_up", "ready")]
    );
    // early exit
    h.acd.enqueue(C2, Q, &[], 0, h.now).unwrap();
    assert!(h.acd.answered(C2, A, h.now));
    h.acd.hung_up(C2, h.now);
    h.acd.end_wrap_up(A, h.now).unwrap();
    assert_eq!(
        h.acd.end_wrap_up(A, h.now),
        Err(AcdError::NotInWrapUp),
        "only in wrap-up"
    );
    assert_eq!(h.state(A), AgentState::Ready);
    // not-ready while talking waits for the call and the wrap-up
    h.out.clear();
    h.acd.enqueue(CallId(3), Q, &[], 0, h.now).unwrap();
    assert!(h.acd.answered(CallId(3), A, h.now));
    h.acd.not_ready(A, "break", h.now).unwrap();
    h.acd.hung_up(CallId(3), h.now);
    assert_eq!(h.state(A), AgentState::WrapUp);
    let t = h.now;
    h.at(t.duration_since(h.t0).as_secs() + 20);
    assert_eq!(h.state(A), AgentState::NotReady("break".into()));
}

#[test]
fn ready_while_talking_skips_wrap_up() {
    let mut h = one();
    h.talking();
    h.acd.ready(A, h.now).unwrap();
    h.acd.hung_up(C1, h.now);
    assert_eq!(h.changes(A), vec![("talking", "ready")]);
}

#[test]
fn refusals_name_the_fault() {
    let mut h = one();
    let now = h.now;
    assert_eq!(h.acd.login(AgentIx(9), now), Err(AcdError::UnknownAgent));
    assert_eq!(h.acd.ready(A, now), Err(AcdError::LoggedOut));
    assert_eq!(h.acd.not_ready(A, "break", now), Err(AcdError::LoggedOut));
    h.acd.login(A, now).unwrap();
    assert_eq!(
        h.acd.not_ready(A, "lunch", now),
        Err(AcdError::UnknownReason("lunch".into()))
    );
    assert_eq!(
        h.acd.not_ready(A, "no_answer", now),
        Err(AcdError::UnknownReason("no_answer".into())),
        "built-in reasons are the ACD's own"
    );
    assert_eq!(
        AcdError::UnknownReason("lunch".into()).to_string(),
        "not-ready reason \"lunch\" is not configured"
    );
    assert_eq!(h.acd.agent_state(AgentIx(9)), &AgentState::LoggedOut);
    assert_eq!(h.acd.agent_ix("1002"), Some(B));
    assert_eq!(h.acd.queue_ix("q"), Some(Q));
    assert_eq!(h.acd.queue_ix("nope"), None);
}

#[test]
fn decline_keeps_the_idle_position_and_never_offers_again() {
    let mut h = one();
    h.acd.login(A, h.now).unwrap();
    h.at(1);
    h.acd.login(B, h.now).unwrap();
    h.acd.enqueue(C1, Q, &[], 0, h.now).unwrap();
    h.acd.declined(C1, A, h.now);
    h.drain();
    assert_eq!(h.state(B), AgentState::Reserved(C1));
    assert_eq!(h.state(A), AgentState::Ready);
    // A is still the longest idle
    h.acd.enqueue(C2, Q, &[], 0, h.now).unwrap();
    h.drain();
    assert_eq!(h.state(A), AgentState::Reserved(C2));
    // B does not answer; C1 goes back and is not offered to A after C2
    h.acd.hung_up(C2, h.now); // C2's caller gives up while it rings
    h.at(11); // B rang from 1 s
    assert_eq!(h.state(B), AgentState::NotReady(NO_ANSWER.into()));
    assert_eq!(h.state(A), AgentState::Ready);
    assert_eq!(h.acd.position(C1), Some(1));
}

#[test]
fn unreachable_phone_makes_the_agent_not_ready() {
    let mut h = one();
    h.acd.login(A, h.now).unwrap();
    h.acd.not_ready(A, "break", h.now).unwrap(); // nothing to take yet
    h.acd.ready(A, h.now).unwrap();
    h.acd.enqueue(C1, Q, &[], 0, h.now).unwrap();
    h.acd.not_ready(A, "meeting", h.now).unwrap(); // pending while it rings
    h.acd.unreachable(C1, A, h.now);
    assert_eq!(h.state(A), AgentState::NotReady(UNREACHABLE.into()));
    assert!(h.acd.is_waiting(C1));
    // a stale failure for an offer no longer current is ignored
    h.acd.unreachable(C1, A, h.now);
    h.acd.declined(C1, A, h.now);
    h.drain();
    assert_eq!(h.state(A), AgentState::NotReady(UNREACHABLE.into()));
}

#[test]
fn tenants_and_groups_bound_who_serves() {
    let mut q = queue("legal", "city");
    q.groups = vec!["legal-aid".into()];
    let mut h = H::new(spec(
        vec![
            agent("1001", "city", &[], &[]),
            agent("2001", "county", &[], &["legal-aid"]),
            agent("1002", "city", &[], &["legal-aid"]),
        ],
        vec![q],
    ));
    for i in 0..3 {
        h.acd.login(AgentIx(i), h.now).unwrap();
    }
    h.acd.enqueue(C1, Q, &[], 0, h.now).unwrap();
    h.drain();
    assert_eq!(h.state(AgentIx(2)), AgentState::Reserved(C1));
    assert_eq!(h.acd.agents_by_state(Some("city"))[1], ("ready", 1));
    assert_eq!(h.acd.agents_by_state(Some("city"))[3], ("reserved", 1));
    assert_eq!(h.acd.agents_by_state(Some("county"))[1], ("ready", 1));
    assert_eq!(h.acd.agents_by_state(None)[1], ("ready", 2));
    assert_eq!(h.acd.agents_by_state(Some("nowhere"))[1], ("ready", 0));
    let st = h.acd.queue_stats(Q, h.now);
    assert_eq!((st.agents_ready, st.agents_busy), (0, 1));
}

#[test]
fn escalation_due_while_ringing_applies_when_the_call_comes_back() {
    let mut q = queue("q", "city");
    q.skills = vec![("tax".into(), 3)];
    q.escalation = vec![Escalation {
        after: secs(5),
        step: Step::MinLevel(1),
    }];
    let mut h = H::new(spec(
        vec![
            agent("1001", "city", &[("tax", 3)], &[]),
            agent("1002", "city", &[("tax", 1)], &[]),
        ],
        vec![q],
    ));
    h.acd.login(A, h.now).unwrap();
    h.acd.login(B, h.now).unwrap();
    h.acd.enqueue(C1, Q, &[], 0, h.now).unwrap();
    h.drain();
    assert_eq!(h.state(A), AgentState::Reserved(C1));
    h.out.clear();
    h.at(10); // ring-no-answer; the 5-s step passed while it rang
    assert!(h.out.contains(&Output::Escalated {
        call: C1,
        queue: Q,
        step: 0,
        early: false
    }));
    assert_eq!(h.state(B), AgentState::Reserved(C1));
}

#[test]
fn overflow_cycles_end() {
    let mut q1 = queue("a", "city");
    let mut q2 = queue("b", "city");
    q1.escalation = vec![Escalation {
        after: secs(10),
        step: Step::Overflow(QueueIx(1)),
    }];
    q2.escalation = vec![Escalation {
        after: secs(5),
        step: Step::Overflow(QueueIx(0)),
    }];
    let mut h = H::new(spec(vec![], vec![q1, q2]));
    h.acd.enqueue(C1, Q, &[], 0, h.now).unwrap();
    h.at(100);
    let moves: Vec<_> = h
        .out
        .iter()
        .filter(|o| matches!(o, Output::Overflowed { .. }))
        .collect();
    assert_eq!(moves.len(), 2, "a→b, then b's passed step b→a, once each");
    assert_eq!(h.acd.call_queue(C1), Some(Q));
    assert!(h.acd.poll_timeout().is_none());
}

#[test]
fn figures_follow_their_definitions() {
    let mut h = one();
    let now = h.now;
    h.acd.login(A, now).unwrap();
    // answered in 4 s and in 20 s; abandoned after 2 s (short) and 30 s
    h.acd.enqueue(C1, Q, &[], 0, now).unwrap();
    h.at(4);
    assert!(h.acd.answered(C1, A, h.now));
    for (c, wait) in [(2u64, 2u64), (3, 30), (4, 20)] {
        let start = h.now;
        h.acd.enqueue(CallId(c), Q, &[], 0, start).unwrap();
        let end = start + secs(wait);
        h.now = end;
        if c == 4 {
            // A is still talking on C1: hand it to B
            h.acd.login(B, end).unwrap();
            assert!(h.acd.answered(CallId(c), B, end));
        } else {
            h.acd.abandon(CallId(c), end);
        }
    }
    let st = h.acd.queue_stats(Q, h.now);
    assert_eq!(st.offered_24h, 4);
    assert_eq!(
        (st.answered_24h, st.abandoned_24h, st.expired_24h),
        (2, 2, 0)
    );
    assert_eq!(st.answer_ratio_24h, Some(0.5));
    // 1 within 15 s / (2 answered + 1 abandon ≥ 5 s)
    assert_eq!(st.answered_within_15s_ratio, Some(1.0 / 3.0));
    assert_eq!(st.average_speed_of_answer_24h, Some(secs(12)));
    assert_eq!((st.agents_ready, st.agents_busy), (0, 2));
    assert_eq!(st.waiting, 0);
    // the service window forgets; the day remembers
    let later = h.now + secs(3600);
    let st = h.acd.queue_stats(Q, later);
    assert_eq!(st.answered_within_15s_ratio, None);
    assert_eq!(st.answered_24h, 2);
    let st = h.acd.queue_stats(Q, h.now + secs(25 * 3600));
    assert_eq!(st.offered_24h, 0);
}

#[test]
fn oldest_wait_and_positions() {
    let mut h = one();
    h.acd.enqueue(C1, Q, &[], 0, h.now).unwrap();
    h.at(5);
    h.acd.enqueue(C2, Q, &[], 7, h.now).unwrap();
    h.at(8);
    let st = h.acd.queue_stats(Q, h.now);
    assert_eq!((st.waiting, st.oldest_wait), (2, Some(secs(8))));
    assert_eq!(h.acd.position(C2), Some(1));
    assert_eq!(h.acd.position(C1), Some(2));
    assert_eq!(h.acd.position(CallId(99)), None);
    assert_eq!(h.acd.waiting(Q), 2);
}

#[test]
fn agent_changes_are_timestamped() {
    let mut h = one();
    h.at(7);
    h.acd.login(A, h.now).unwrap();
    h.drain();
    assert_eq!(
        h.out,
        vec![Output::AgentChanged {
            agent: A,
            from: AgentState::LoggedOut,
            to: AgentState::Ready,
            at: h.t0 + secs(7)
        }]
    );
    assert_eq!(AgentState::WrapUp.label(), "wrap_up");
    assert_eq!(AgentState::NotReady("x".into()).label(), "not_ready");
}
