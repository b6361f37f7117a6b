//! [`Acd`]: the state machine. Agents and queues live in `Vec`s indexed by
//! [`AgentIx`]/[`QueueIx`], calls in a map by [`CallId`].
//!
//! Indices that make each event cost O(log n), not O(calls):
//! - per queue, the waiting calls are split into *buckets* of calls with the
//!   same effective requirement (skills and minimum levels), each a
//!   `BTreeSet` ordered best first (priority, put-back head, arrival). An
//!   agent that becomes available checks the buckets of the queues it may
//!   serve (few) and takes the best head it satisfies;
//! - per queue, the available agents that may ever serve it (tenant,
//!   groups, and its skills as far as any escalation step in the
//!   configuration could relax them) in a `BTreeSet` ordered by the
//!   queue's strategy (base skill score, idle order). A call takes the
//!   first one meeting its requirement; only a skill-level queue whose
//!   call needs other skills than the queue's scores every available
//!   agent of the queue.
//! - one ordered set of deadlines ([`Deadlines`]) for all timers.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use crate::ids::CallId;
use crate::time::{Duration, Instant};

use super::hash::{IdMap, IdSet};
use super::stats::{self, Ended, Ring};
use super::timers::{Deadlines, Timer};
use super::{
    AcdError, AcdSpec, AgentIx, AgentState, Full, Output, QueueIx, QueueStats, Step, Strategy,
    NO_ANSWER, UNREACHABLE,
};

type SkillId = u32;
/// An effective requirement: (skill, minimum level), sorted by skill.
type Req = Vec<(SkillId, u8)>;

/// The 15-second target of early escalation.
const ANSWER_TARGET: Duration = Duration::from_secs(15);

static LOGGED_OUT: AgentState = AgentState::LoggedOut;

/// Order of waiting calls, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct WaitKey {
    priority: Reverse<u8>,
    /// `false` for a call put back at the head of its priority.
    tail: bool,
    /// Arrival order (first enqueue).
    seq: u64,
    call: CallId,
}

/// Order of available agents in a queue, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct ReadyKey {
    score: Reverse<u32>,
    idle: u64,
    agent: AgentIx,
}

/// What an agent asked for while busy, applied when the call ends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    Logout,
    NotReady(String),
    Ready,
}

#[derive(Debug)]
struct Agent {
    state: AgentState,
    reachable: bool,
    tenant: usize,
    /// Level by skill id (0: lacks it).
    levels: Vec<u8>,
    /// Idle order: smaller is idle longer.
    idle: u64,
    pending: Option<Pending>,
    /// Queues it may ever serve (tenant, groups, and the queue's skills as
    /// far as any escalation could relax them), with its base score there.
    queues: Vec<(QueueIx, u32)>,
    /// In the ready sets of its queues (Ready and reachable).
    available: bool,
}

impl Agent {
    fn level(&self, s: SkillId) -> u8 {
        self.levels.get(s as usize).copied().unwrap_or(0)
    }

    fn satisfies(&self, req: &Req) -> bool {
        req.iter().all(|&(s, min)| self.level(s) >= min)
    }

    fn score(&self, req: &Req) -> u32 {
        req.iter().map(|&(s, _)| u32::from(self.level(s))).sum()
    }
}

#[derive(Debug)]
struct Bucket {
    req: Req,
    calls: BTreeSet<WaitKey>,
}

#[derive(Debug)]
struct Queue {
    base: Req,
    /// Escalation indices in order of `after` (stable).
    order: Vec<usize>,
    buckets: Vec<Bucket>,
    waiting: usize,
    ready: BTreeSet<ReadyKey>,
    /// Agents that may ever serve it (see `Agent::queues`).
    candidates: Vec<AgentIx>,
    stats: Ring,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    Offered(AgentIx),
    Talking(AgentIx),
}

#[derive(Debug)]
struct Call {
    queue: QueueIx,
    own: Vec<SkillId>,
    priority: u8,
    arrival: Instant,
    seq: u64,
    tail: bool,
    dropped: Vec<SkillId>,
    cap: u8,
    req: Req,
    applied: Vec<(QueueIx, usize)>,
    early_done: Vec<QueueIx>,
    declined: Vec<AgentIx>,
    /// When it entered its current queue (comfort cadence).
    entered: Instant,
    phase: Phase,
}

impl Call {
    fn key(&self, call: CallId) -> WaitKey {
        WaitKey {
            priority: Reverse(self.priority),
            tail: self.tail,
            seq: self.seq,
            call,
        }
    }
}

/// The automatic call distributor: see the [module docs](super).
#[derive(Debug)]
pub struct Acd {
    spec: AcdSpec,
    agents: Vec<Agent>,
    queues: Vec<Queue>,
    calls: IdMap<CallId, Call>,
    /// (call, agent) pairs that must not meet again.
    declines: IdSet<(CallId, AgentIx)>,
    skills: HashMap<String, SkillId>,
    tenants: HashMap<String, usize>,
    /// Agents per tenant and state index.
    counts: Vec<[usize; 6]>,
    timers: Deadlines<Timer>,
    outputs: VecDeque<Output>,
    next_seq: u64,
    next_idle: u64,
    window_minutes: u64,
}

fn intern(map: &mut HashMap<String, u32>, name: &str) -> u32 {
    if let Some(&id) = map.get(name) {
        return id;
    }
    let id = u32::try_from(map.len()).unwrap_or(u32::MAX);
    map.insert(name.to_owned(), id);
    id
}

/// Sorted by skill, one entry per skill with the highest level asked.
fn normalise(mut req: Req) -> Req {
    req.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    req.dedup_by_key(|e| e.0);
    req
}

impl Acd {
    /// A distributor for `spec`: every agent LoggedOut, unreachable unless
    /// `always_reachable`; figures count from `now`.
    #[must_use]
    pub fn new(spec: AcdSpec, now: Instant) -> Acd {
        let mut skills: HashMap<String, SkillId> = HashMap::new();
        let mut tenant_ids: HashMap<String, u32> = HashMap::new();
        for a in &spec.agents {
            intern(&mut tenant_ids, &a.tenant);
            for (s, _) in &a.skills {
                intern(&mut skills, s);
            }
        }
        // What any escalation could ever relax, across all queues (a call
        // keeps its relaxations when it overflows): an agent that fails a
        // queue's requirement even so can never serve it.
        let mut droppable: HashSet<SkillId> = HashSet::new();
        let mut floor = u8::MAX;
        for q in &spec.queues {
            intern(&mut tenant_ids, &q.tenant);
            for (s, _) in &q.skills {
                intern(&mut skills, s);
            }
            for e in &q.escalation {
                match &e.step {
                    Step::DropSkill(s) => {
                        droppable.insert(intern(&mut skills, s));
                    }
                    Step::MinLevel(l) => floor = floor.min(*l),
                    Step::Overflow(_) => {}
                }
            }
        }
        let nskills = skills.len();
        let mut agents: Vec<Agent> = spec
            .agents
            .iter()
            .map(|a| {
                let mut levels = vec![0u8; nskills];
                for (s, l) in &a.skills {
                    if let Some(slot) = skills.get(s).and_then(|&i| levels.get_mut(i as usize)) {
                        *slot = (*slot).max(*l);
                    }
                }
                Agent {
                    state: AgentState::LoggedOut,
                    reachable: a.always_reachable,
                    tenant: tenant_ids.get(&a.tenant).copied().unwrap_or(0) as usize,
                    levels,
                    idle: 0,
                    pending: None,
                    queues: Vec::new(),
                    available: false,
                }
            })
            .collect();
        let mut queues = Vec::with_capacity(spec.queues.len());
        for (qi, q) in spec.queues.iter().enumerate() {
            let base = normalise(
                q.skills
                    .iter()
                    .filter_map(|(s, l)| skills.get(s).map(|&i| (i, *l)))
                    .collect(),
            );
            let tenant = tenant_ids.get(&q.tenant).copied().unwrap_or(0) as usize;
            let mut order: Vec<usize> = (0..q.escalation.len()).collect();
            order.sort_by_key(|&i| q.escalation.get(i).map(|e| e.after));
            let qix = QueueIx(u32::try_from(qi).unwrap_or(u32::MAX));
            let mut candidates = Vec::new();
            for (ai, (a, rt)) in spec.agents.iter().zip(agents.iter_mut()).enumerate() {
                let in_group = q.groups.is_empty() || q.groups.iter().any(|g| a.groups.contains(g));
                let could = base
                    .iter()
                    .all(|&(s, l)| droppable.contains(&s) || rt.level(s) >= l.min(floor));
                if rt.tenant == tenant && in_group && could {
                    let score = match q.strategy {
                        Strategy::LongestIdle => 0,
                        Strategy::SkillLevelThenLongestIdle => rt.score(&base),
                    };
                    rt.queues.push((qix, score));
                    candidates.push(AgentIx(u32::try_from(ai).unwrap_or(u32::MAX)));
                }
            }
            queues.push(Queue {
                base,
                order,
                buckets: Vec::new(),
                waiting: 0,
                ready: BTreeSet::new(),
                candidates,
                stats: Ring::new(now),
            });
        }
        let mut counts = vec![[0usize; 6]; tenant_ids.len()];
        for a in &agents {
            if let Some(c) = counts.get_mut(a.tenant) {
                c[0] += 1;
            }
        }
        let window_minutes = stats::window_minutes(spec.service_window);
        Acd {
            spec,
            agents,
            queues,
            calls: IdMap::default(),
            declines: IdSet::default(),
            skills,
            tenants: tenant_ids
                .into_iter()
                .map(|(k, v)| (k, v as usize))
                .collect(),
            counts,
            timers: Deadlines::default(),
            outputs: VecDeque::new(),
            next_seq: 0,
            next_idle: 0,
            window_minutes,
        }
    }

    // ------------------------------------------------------------ lookups

    /// The configuration.
    #[must_use]
    pub fn spec(&self) -> &AcdSpec {
        &self.spec
    }

    /// The agent with this id.
    #[must_use]
    pub fn agent_ix(&self, id: &str) -> Option<AgentIx> {
        let i = self.spec.agents.iter().position(|a| a.id == id)?;
        u32::try_from(i).ok().map(AgentIx)
    }

    /// The queue with this name.
    #[must_use]
    pub fn queue_ix(&self, name: &str) -> Option<QueueIx> {
        let i = self.spec.queues.iter().position(|q| q.name == name)?;
        u32::try_from(i).ok().map(QueueIx)
    }

    /// The agent's state (LoggedOut for an unknown agent).
    #[must_use]
    pub fn agent_state(&self, a: AgentIx) -> &AgentState {
        self.agent(a).map_or(&LOGGED_OUT, |x| &x.state)
    }

    /// Whether the agent's phone is registered (or needs no registration).
    #[must_use]
    pub fn agent_reachable(&self, a: AgentIx) -> bool {
        self.agent(a).is_some_and(|x| x.reachable)
    }

    /// Whether the ACD holds the call: waiting, being offered or talking.
    #[must_use]
    pub fn holds(&self, call: CallId) -> bool {
        self.calls.contains_key(&call)
    }

    /// Whether the call waits (not ringing an agent, not talking).
    #[must_use]
    pub fn is_waiting(&self, call: CallId) -> bool {
        self.calls
            .get(&call)
            .is_some_and(|c| c.phase == Phase::Waiting)
    }

    /// The queue the call is in now (it may have overflowed).
    #[must_use]
    pub fn call_queue(&self, call: CallId) -> Option<QueueIx> {
        self.calls.get(&call).map(|c| c.queue)
    }

    /// Calls waiting in a queue.
    #[must_use]
    pub fn waiting(&self, q: QueueIx) -> usize {
        self.queue(q).map_or(0, |x| x.waiting)
    }

    /// 1-based position of a waiting call among the waiting calls of its
    /// queue (None when it does not wait). O(position).
    #[must_use]
    pub fn position(&self, call: CallId) -> Option<usize> {
        let c = self.calls.get(&call)?;
        if c.phase != Phase::Waiting {
            return None;
        }
        let q = self.queue(c.queue)?;
        let key = c.key(call);
        Some(
            1 + q
                .buckets
                .iter()
                .map(|b| b.calls.range(..key).count())
                .sum::<usize>(),
        )
    }

    /// Estimated wait of the call at `position` in queue `q`: the service
    /// window divided by the calls the queue answered in it, times the
    /// position (the queue's recent pace). None when it answered none.
    #[must_use]
    pub fn estimated_wait(&self, q: QueueIx, position: usize, now: Instant) -> Option<Duration> {
        let answered = self.queue(q)?.stats.sums(now, self.window_minutes).answered;
        if answered == 0 {
            return None;
        }
        let window = u128::from(self.window_minutes) * 60_000_000_000;
        let nanos = window * position as u128 / u128::from(answered);
        Some(Duration::from_nanos(
            u64::try_from(nanos).unwrap_or(u64::MAX),
        ))
    }

    fn agent(&self, a: AgentIx) -> Option<&Agent> {
        self.agents.get(a.0 as usize)
    }

    fn queue(&self, q: QueueIx) -> Option<&Queue> {
        self.queues.get(q.0 as usize)
    }

    fn agent_mut(&mut self, a: AgentIx) -> Result<&mut Agent, AcdError> {
        self.agents
            .get_mut(a.0 as usize)
            .ok_or(AcdError::UnknownAgent)
    }

    // ------------------------------------------------------------ agent control

    /// LoggedOut → Ready (a no-op when logged in; cancels a pending logout).
    pub fn login(&mut self, a: AgentIx, now: Instant) -> Result<(), AcdError> {
        let agent = self.agent_mut(a)?;
        if agent.state != AgentState::LoggedOut {
            if agent.pending == Some(Pending::Logout) {
                agent.pending = None;
            }
            return Ok(());
        }
        self.become_ready(a, true, now);
        Ok(())
    }

    /// Log out: at once, except while Talking (after the call, without
    /// wrap-up). While ringing, the offer is cancelled
    /// ([`Output::CancelOffer`]) and the call goes back to its queue's head.
    pub fn logout(&mut self, a: AgentIx, now: Instant) -> Result<(), AcdError> {
        let agent = self.agent_mut(a)?;
        match agent.state.clone() {
            AgentState::LoggedOut => {}
            AgentState::Talking(_) => agent.pending = Some(Pending::Logout),
            AgentState::Reserved(call) => {
                agent.pending = None;
                self.timers.cancel(Timer::Ring(call));
                self.outputs
                    .push_back(Output::CancelOffer { call, agent: a });
                self.set_state(a, AgentState::LoggedOut, now);
                self.put_back(call, now);
            }
            AgentState::WrapUp => {
                agent.pending = None;
                self.timers.cancel(Timer::WrapUp(a));
                self.set_state(a, AgentState::LoggedOut, now);
            }
            AgentState::Ready | AgentState::NotReady(_) => {
                agent.pending = None;
                self.set_state(a, AgentState::LoggedOut, now);
            }
        }
        Ok(())
    }

    /// Ready: NotReady → Ready, WrapUp → Ready (ends it early), Talking →
    /// Ready after the call without wrap-up, Reserved → cancels a pending
    /// not-ready. Refused when logged out.
    pub fn ready(&mut self, a: AgentIx, now: Instant) -> Result<(), AcdError> {
        let agent = self.agent_mut(a)?;
        match agent.state {
            AgentState::LoggedOut => return Err(AcdError::LoggedOut),
            AgentState::Ready => {}
            AgentState::NotReady(_) => self.become_ready(a, true, now),
            AgentState::Reserved(_) => agent.pending = None,
            AgentState::Talking(_) => agent.pending = Some(Pending::Ready),
            AgentState::WrapUp => {
                agent.pending = None;
                self.timers.cancel(Timer::WrapUp(a));
                self.become_ready(a, false, now);
            }
        }
        Ok(())
    }

    /// Not ready for a configured `reason`: at once when Ready or NotReady;
    /// when the call and its wrap-up end when Reserved, Talking or WrapUp.
    pub fn not_ready(&mut self, a: AgentIx, reason: &str, now: Instant) -> Result<(), AcdError> {
        if !self.spec.not_ready_reasons.iter().any(|r| r == reason) {
            self.agent_mut(a)?;
            return Err(AcdError::UnknownReason(reason.to_owned()));
        }
        let agent = self.agent_mut(a)?;
        match agent.state {
            AgentState::LoggedOut => return Err(AcdError::LoggedOut),
            AgentState::Ready | AgentState::NotReady(_) => {
                self.set_state(a, AgentState::NotReady(reason.to_owned()), now);
            }
            AgentState::Reserved(_) | AgentState::Talking(_) | AgentState::WrapUp => {
                agent.pending = Some(Pending::NotReady(reason.to_owned()));
            }
        }
        Ok(())
    }

    /// The agent's registration came or went. Unreachable agents are never
    /// offered a call; the state does not change (a re-register mid-call
    /// changes nothing). Unknown agents are ignored.
    pub fn set_reachable(&mut self, a: AgentIx, reachable: bool, now: Instant) {
        let Ok(agent) = self.agent_mut(a) else {
            return;
        };
        if agent.reachable == reachable {
            return;
        }
        agent.reachable = reachable;
        self.update_available(a);
        if reachable {
            self.match_agent(a, now);
        }
    }

    /// End the agent's wrap-up now.
    pub fn end_wrap_up(&mut self, a: AgentIx, now: Instant) -> Result<(), AcdError> {
        let agent = self.agent_mut(a)?;
        if agent.state != AgentState::WrapUp {
            return Err(AcdError::NotInWrapUp);
        }
        self.timers.cancel(Timer::WrapUp(a));
        self.wrap_up_ended(a, now);
        Ok(())
    }

    // ------------------------------------------------------------ calls

    /// A call enters queue `q`, needing also `skills` (at level 1 or more)
    /// and with `priority` (0..=9, higher first; ties by arrival). It is
    /// offered at once when an eligible agent is ready. A call the ACD
    /// already holds is left as it is.
    pub fn enqueue(
        &mut self,
        call: CallId,
        q: QueueIx,
        skills: &[String],
        priority: u8,
        now: Instant,
    ) -> Result<(), Full> {
        let Some(queue) = self.queues.get_mut(q.0 as usize) else {
            return Err(Full::NoQueue);
        };
        if self.calls.contains_key(&call) {
            return Ok(());
        }
        let max = self
            .spec
            .queues
            .get(q.0 as usize)
            .and_then(|s| s.max_length);
        if max.is_some_and(|m| queue.waiting >= m) {
            queue.stats.record(now, Ended::Refused);
            return Err(Full::Length);
        }
        let own = skills.iter().map(|s| intern(&mut self.skills, s)).collect();
        self.next_seq += 1;
        let mut c = Call {
            queue: q,
            own,
            priority,
            arrival: now,
            seq: self.next_seq,
            tail: true,
            dropped: Vec::new(),
            cap: u8::MAX,
            req: Vec::new(),
            applied: Vec::new(),
            early_done: Vec::new(),
            declined: Vec::new(),
            entered: now,
            phase: Phase::Waiting,
        };
        c.req = self.requirement(&c);
        self.calls.insert(call, c);
        // offered at once when it can be, without arming its wait timers
        if let Some(a) = self.best_agent_for(call) {
            self.offer(call, a, now);
        } else {
            self.insert_waiting(call);
            self.arm_wait_timers(call, now);
        }
        Ok(())
    }

    /// The caller left while waiting or while an agent rang: the call
    /// leaves the ACD (counted abandoned). Returns the agent that rang (it
    /// is Ready again, keeping its idle position, and may at once be
    /// offered another call). For a talking call this is
    /// [`Acd::hung_up`] (returns None); None if the ACD does not hold it.
    pub fn abandon(&mut self, call: CallId, now: Instant) -> Option<AgentIx> {
        let c = self.calls.get(&call)?;
        match c.phase {
            Phase::Waiting => {
                self.remove_waiting(call);
                self.record_end(call, now, false);
                None
            }
            Phase::Offered(a) => {
                self.timers.cancel(Timer::Ring(call));
                self.record_end(call, now, false);
                self.offer_ended(a, now);
                Some(a)
            }
            Phase::Talking(_) => {
                self.hung_up(call, now);
                None
            }
        }
    }

    /// The agent's phone answered the offer: true → the agent is Talking;
    /// false → the offer is no longer current (cancelled or abandoned) and
    /// the caller must hang up that leg.
    pub fn answered(&mut self, call: CallId, agent: AgentIx, now: Instant) -> bool {
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        if c.phase != Phase::Offered(agent) {
            return false;
        }
        c.phase = Phase::Talking(agent);
        let wait = now.saturating_duration_since(c.arrival);
        let q = c.queue;
        self.timers.cancel(Timer::Ring(call));
        if let Some(queue) = self.queues.get_mut(q.0 as usize) {
            queue.stats.record(now, Ended::Answered(wait));
        }
        self.set_state(agent, AgentState::Talking(call), now);
        true
    }

    /// The agent declined the offer (486/603): the agent is Ready again
    /// (keeping its idle position), the call back at the head of its
    /// queue, never offered to that agent again. Ignored unless the offer
    /// is current.
    pub fn declined(&mut self, call: CallId, agent: AgentIx, now: Instant) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.phase != Phase::Offered(agent) {
            return;
        }
        c.declined.push(agent);
        self.declines.insert((call, agent));
        self.timers.cancel(Timer::Ring(call));
        self.put_back(call, now);
        self.offer_ended(agent, now);
    }

    /// The agent's phone could not be reached (408, 5xx, no response): the
    /// agent becomes NotReady("unreachable"), the call goes back to the
    /// head of its queue. Ignored unless the offer is current.
    pub fn unreachable(&mut self, call: CallId, agent: AgentIx, now: Instant) {
        if self.calls.get(&call).map(|c| c.phase) != Some(Phase::Offered(agent)) {
            return;
        }
        self.timers.cancel(Timer::Ring(call));
        if let Ok(a) = self.agent_mut(agent) {
            a.pending = None;
        }
        self.set_state(agent, AgentState::NotReady(UNREACHABLE.to_owned()), now);
        self.put_back(call, now);
    }

    /// The talk ended (either side): the call leaves the ACD; the agent
    /// goes to wrap-up (its queue's `wrap_up`), or Ready, or what it asked
    /// for meanwhile (logout: LoggedOut at once; ready: Ready at once;
    /// not-ready: after the wrap-up). For a call that waits or rings this
    /// is [`Acd::abandon`].
    pub fn hung_up(&mut self, call: CallId, now: Instant) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let Phase::Talking(a) = c.phase else {
            self.abandon(call, now);
            return;
        };
        let wrap = self
            .spec
            .queues
            .get(c.queue.0 as usize)
            .map_or(Duration::ZERO, |q| q.wrap_up);
        self.forget(call);
        self.next_idle += 1;
        let idle = self.next_idle;
        let Ok(agent) = self.agent_mut(a) else {
            return;
        };
        agent.idle = idle;
        match agent.pending.take() {
            Some(Pending::Logout) => self.set_state(a, AgentState::LoggedOut, now),
            Some(Pending::Ready) => self.become_ready(a, false, now),
            pending => {
                agent.pending = pending;
                if wrap.is_zero() {
                    self.wrap_up_ended(a, now);
                } else {
                    self.timers.set(Timer::WrapUp(a), now + wrap);
                    self.set_state(a, AgentState::WrapUp, now);
                }
            }
        }
    }

    // ------------------------------------------------------------ time and outputs

    /// The next deadline (it may be in the past: then call
    /// [`Acd::handle_timeout`] at once).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.earliest().map(|(at, _)| at)
    }

    /// The next deadline with its reason.
    #[must_use]
    pub fn poll_timer(&self) -> Option<(Instant, Timer)> {
        self.timers.earliest()
    }

    /// Run every deadline due at `now`: ring-no-answer, wrap-up end,
    /// escalation steps, early escalation, max wait, comfort.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(t) = self.timers.pop_due(now) {
            match t {
                Timer::Ring(call) => self.ring_no_answer(call, now),
                Timer::WrapUp(a) => {
                    if self.agent_state(a) == &AgentState::WrapUp {
                        self.wrap_up_ended(a, now);
                    }
                }
                Timer::Escalate(call) => self.escalate(call, false, now),
                Timer::Early(call) => {
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.early_done.push(c.queue);
                    }
                    self.escalate(call, true, now);
                }
                Timer::MaxWait(call) => {
                    if self.is_waiting(call) {
                        self.expire(call, now);
                    }
                }
                Timer::Comfort(call) => self.comfort(call, now),
            }
        }
    }

    /// The next output, if any.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    // ------------------------------------------------------------ figures

    /// Live figures of queue `q` (zeros for an unknown queue). O(waiting
    /// calls + agents of the queue + 1,440).
    #[must_use]
    pub fn queue_stats(&self, q: QueueIx, now: Instant) -> QueueStats {
        let Some(queue) = self.queue(q) else {
            return QueueStats::default();
        };
        let oldest = queue
            .buckets
            .iter()
            .flat_map(|b| b.calls.iter())
            .map(|k| k.seq)
            .min()
            .and_then(|seq| {
                queue
                    .buckets
                    .iter()
                    .flat_map(|b| b.calls.iter())
                    .find(|k| k.seq == seq)
            })
            .and_then(|k| self.calls.get(&k.call))
            .map(|c| now.saturating_duration_since(c.arrival));
        let day = queue.stats.sums(now, stats::MINUTES as u64);
        let win = queue.stats.sums(now, self.window_minutes);
        let ratio = |num: u64, den: u64| (den > 0).then(|| num as f64 / den as f64);
        let offered = day.answered + day.abandoned + day.expired;
        let mut ready = 0;
        let mut busy = 0;
        for &a in &queue.candidates {
            let Some(agent) = self.agent(a) else { continue };
            if !agent.satisfies(&queue.base) {
                continue;
            }
            match agent.state {
                AgentState::Ready if agent.reachable => ready += 1,
                AgentState::Reserved(_) | AgentState::Talking(_) | AgentState::WrapUp => busy += 1,
                _ => {}
            }
        }
        QueueStats {
            waiting: queue.waiting,
            oldest_wait: oldest,
            answered_within_15s_ratio: ratio(
                win.answered_in_15s,
                win.answered + win.expired + win.abandoned - win.abandoned_short,
            ),
            offered_24h: offered,
            answered_24h: day.answered,
            abandoned_24h: day.abandoned,
            expired_24h: day.expired,
            answer_ratio_24h: ratio(day.answered, offered),
            average_speed_of_answer_24h: (day.answered > 0)
                .then(|| Duration::from_millis(day.wait_ms / day.answered)),
            agents_ready: ready,
            agents_busy: busy,
            refused_24h: day.refused,
        }
    }

    /// Agents per state label (in [`AgentState::LABELS`] order), of one
    /// tenant or of all. O(tenants).
    #[must_use]
    pub fn agents_by_state(&self, tenant: Option<&str>) -> [(&'static str, usize); 6] {
        let mut n = [0usize; 6];
        match tenant {
            Some(t) => {
                if let Some(c) = self.tenants.get(t).and_then(|&i| self.counts.get(i)) {
                    n = *c;
                }
            }
            None => {
                for c in &self.counts {
                    for (x, y) in n.iter_mut().zip(c) {
                        *x += y;
                    }
                }
            }
        }
        let mut out = [("", 0usize); 6];
        for ((o, label), count) in out.iter_mut().zip(AgentState::LABELS).zip(n) {
            *o = (label, count);
        }
        out
    }

    /// Armed deadlines (for tests and gauges).
    #[must_use]
    pub fn timers_armed(&self) -> usize {
        self.timers.len()
    }

    // ------------------------------------------------------------ internals: agents

    /// Set an agent's state: the output, the counts, the ready sets.
    fn set_state(&mut self, a: AgentIx, to: AgentState, now: Instant) {
        let Some(agent) = self.agents.get_mut(a.0 as usize) else {
            return;
        };
        if agent.state == to {
            return;
        }
        let from = std::mem::replace(&mut agent.state, to.clone());
        if let Some(c) = self.counts.get_mut(agent.tenant) {
            c[from.index()] = c[from.index()].saturating_sub(1);
            c[to.index()] += 1;
        }
        self.outputs.push_back(Output::AgentChanged {
            agent: a,
            from,
            to,
            at: now,
        });
        self.update_available(a);
    }

    /// Put the agent in or out of its queues' ready sets.
    fn update_available(&mut self, a: AgentIx) {
        let Some(agent) = self.agents.get_mut(a.0 as usize) else {
            return;
        };
        let want = agent.state == AgentState::Ready && agent.reachable;
        if want == agent.available {
            return;
        }
        agent.available = want;
        for &(q, score) in &agent.queues {
            if let Some(queue) = self.queues.get_mut(q.0 as usize) {
                let key = ReadyKey {
                    score: Reverse(score),
                    idle: agent.idle,
                    agent: a,
                };
                if want {
                    queue.ready.insert(key);
                } else {
                    queue.ready.remove(&key);
                }
            }
        }
    }

    /// Become Ready (a fresh idle position when `fresh`) and take a call.
    fn become_ready(&mut self, a: AgentIx, fresh: bool, now: Instant) {
        if fresh {
            self.next_idle += 1;
            let idle = self.next_idle;
            if let Ok(agent) = self.agent_mut(a) {
                debug_assert!(!agent.available);
                agent.idle = idle;
            }
        }
        if let Ok(agent) = self.agent_mut(a) {
            agent.pending = None;
        }
        self.set_state(a, AgentState::Ready, now);
        self.match_agent(a, now);
    }

    /// An offer ended without a talk (declined, abandoned): Ready keeping
    /// the idle position, or the pending not-ready.
    fn offer_ended(&mut self, a: AgentIx, now: Instant) {
        let Ok(agent) = self.agent_mut(a) else {
            return;
        };
        match agent.pending.take() {
            Some(Pending::NotReady(r)) => self.set_state(a, AgentState::NotReady(r), now),
            Some(Pending::Logout) => self.set_state(a, AgentState::LoggedOut, now),
            Some(Pending::Ready) | None => self.become_ready(a, false, now),
        }
    }

    /// Wrap-up over (or none): the pending not-ready, else Ready.
    fn wrap_up_ended(&mut self, a: AgentIx, now: Instant) {
        let Ok(agent) = self.agent_mut(a) else {
            return;
        };
        match agent.pending.take() {
            Some(Pending::NotReady(r)) => self.set_state(a, AgentState::NotReady(r), now),
            Some(Pending::Logout) => self.set_state(a, AgentState::LoggedOut, now),
            Some(Pending::Ready) | None => self.become_ready(a, false, now),
        }
    }

    // ------------------------------------------------------------ internals: calls

    /// The call's effective requirement in its current queue.
    fn requirement(&self, c: &Call) -> Req {
        let base = self
            .queue(c.queue)
            .map(|q| q.base.as_slice())
            .unwrap_or(&[]);
        let mut req: Req = base
            .iter()
            .copied()
            .chain(c.own.iter().map(|&s| (s, 1)))
            .collect();
        req = normalise(req);
        req.retain(|(s, _)| !c.dropped.contains(s));
        for e in &mut req {
            e.1 = e.1.min(c.cap);
        }
        req
    }

    fn insert_waiting(&mut self, call: CallId) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let key = c.key(call);
        let Some(q) = self.queues.get_mut(c.queue.0 as usize) else {
            return;
        };
        q.waiting += 1;
        if let Some(b) = q.buckets.iter_mut().find(|b| b.req == c.req) {
            b.calls.insert(key);
        } else {
            q.buckets.push(Bucket {
                req: c.req.clone(),
                calls: BTreeSet::from([key]),
            });
        }
    }

    fn remove_waiting(&mut self, call: CallId) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let key = c.key(call);
        let Some(q) = self.queues.get_mut(c.queue.0 as usize) else {
            return;
        };
        if let Some(i) = q.buckets.iter().position(|b| b.req == c.req) {
            if q.buckets[i].calls.remove(&key) {
                q.waiting -= 1;
            }
            if q.buckets[i].calls.is_empty() {
                q.buckets.swap_remove(i);
            }
        }
    }

    /// Cancel a call's waiting timers.
    fn cancel_wait_timers(&mut self, call: CallId) {
        self.timers.cancel(Timer::Escalate(call));
        self.timers.cancel(Timer::Early(call));
        self.timers.cancel(Timer::MaxWait(call));
        self.timers.cancel(Timer::Comfort(call));
    }

    /// Arm a waiting call's timers for its current queue.
    fn arm_wait_timers(&mut self, call: CallId, now: Instant) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let Some(spec) = self.spec.queues.get(c.queue.0 as usize) else {
            return;
        };
        let Some(queue) = self.queues.get(c.queue.0 as usize) else {
            return;
        };
        let next = queue
            .order
            .iter()
            .find(|&&i| !c.applied.contains(&(c.queue, i)))
            .and_then(|&i| spec.escalation.get(i));
        match next {
            Some(e) => self.timers.set(Timer::Escalate(call), c.arrival + e.after),
            None => self.timers.cancel(Timer::Escalate(call)),
        }
        let early = spec
            .early_escalation
            .map(|lead| c.arrival + ANSWER_TARGET.saturating_sub(lead))
            .filter(|&at| at >= now && at >= c.entered && !c.early_done.contains(&c.queue));
        match early {
            Some(at) if next.is_some() => self.timers.set(Timer::Early(call), at),
            _ => self.timers.cancel(Timer::Early(call)),
        }
        match spec.max_wait {
            Some(m) => self.timers.set(Timer::MaxWait(call), c.arrival + m),
            None => self.timers.cancel(Timer::MaxWait(call)),
        }
        match spec.comfort_every.filter(|p| !p.is_zero()) {
            Some(p) => {
                let since = now.saturating_duration_since(c.entered).as_nanos();
                let k = since / p.as_nanos() + 1;
                let at = u64::try_from(p.as_nanos() * k)
                    .map_or(now + p, |n| c.entered + Duration::from_nanos(n));
                self.timers.set(Timer::Comfort(call), at);
            }
            None => self.timers.cancel(Timer::Comfort(call)),
        }
    }

    /// The call leaves the ACD; its counters and cleanup.
    fn record_end(&mut self, call: CallId, now: Instant, expired: bool) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let wait = now.saturating_duration_since(c.arrival);
        if let Some(q) = self.queues.get_mut(c.queue.0 as usize) {
            q.stats.record(
                now,
                if expired {
                    Ended::Expired
                } else {
                    Ended::Abandoned(wait)
                },
            );
        }
        self.forget(call);
    }

    /// Drop the call and everything keyed by it (it must not wait).
    fn forget(&mut self, call: CallId) {
        self.cancel_wait_timers(call);
        self.timers.cancel(Timer::Ring(call));
        if let Some(c) = self.calls.remove(&call) {
            for a in c.declined {
                self.declines.remove(&(call, a));
            }
        }
    }

    /// Offer a waiting call to an available agent.
    fn offer(&mut self, call: CallId, a: AgentIx, now: Instant) {
        self.remove_waiting(call);
        self.cancel_wait_timers(call);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.phase = Phase::Offered(a);
        let queue = c.queue;
        let ring = self
            .spec
            .queues
            .get(queue.0 as usize)
            .map_or(Duration::ZERO, |q| q.ring_timeout);
        self.timers.set(Timer::Ring(call), now + ring);
        self.set_state(a, AgentState::Reserved(call), now);
        self.outputs.push_back(Output::Offer {
            call,
            agent: a,
            queue,
        });
    }

    /// An offered call goes back to the head of its queue (or expires if
    /// past its max wait) and takes the best eligible agent.
    fn put_back(&mut self, call: CallId, now: Instant) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.phase = Phase::Waiting;
        c.tail = false;
        let over = self
            .spec
            .queues
            .get(c.queue.0 as usize)
            .and_then(|q| q.max_wait)
            .is_some_and(|m| now.saturating_duration_since(c.arrival) >= m);
        self.insert_waiting(call);
        if over {
            self.expire(call, now);
            return;
        }
        self.arm_wait_timers(call, now);
        self.match_call(call, now);
    }

    fn ring_no_answer(&mut self, call: CallId, now: Instant) {
        let Some(Phase::Offered(a)) = self.calls.get(&call).map(|c| c.phase) else {
            return;
        };
        self.outputs
            .push_back(Output::CancelOffer { call, agent: a });
        if let Ok(agent) = self.agent_mut(a) {
            agent.pending = None;
        }
        self.set_state(a, AgentState::NotReady(NO_ANSWER.to_owned()), now);
        self.put_back(call, now);
    }

    fn expire(&mut self, call: CallId, now: Instant) {
        let Some(queue) = self.calls.get(&call).map(|c| c.queue) else {
            return;
        };
        self.remove_waiting(call);
        self.record_end(call, now, true);
        self.outputs.push_back(Output::Expired { call, queue });
    }

    fn comfort(&mut self, call: CallId, now: Instant) {
        if !self.is_waiting(call) {
            return;
        }
        let Some(position) = self.position(call) else {
            return;
        };
        let Some(q) = self.calls.get(&call).map(|c| c.queue) else {
            return;
        };
        let estimated_wait = self.estimated_wait(q, position, now);
        self.outputs.push_back(Output::Comfort {
            call,
            position,
            estimated_wait,
        });
        self.arm_wait_timers(call, now);
    }

    /// Apply the call's next escalation step of its current queue: the
    /// one due now, or (`early`) the next one whatever its time.
    fn escalate(&mut self, call: CallId, early: bool, now: Instant) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.phase != Phase::Waiting {
            return;
        }
        let q = c.queue;
        let (Some(spec), Some(queue)) = (self.spec.queues.get(q.0 as usize), self.queue(q)) else {
            return;
        };
        let Some(&i) = queue.order.iter().find(|&&i| !c.applied.contains(&(q, i))) else {
            self.arm_wait_timers(call, now);
            return;
        };
        let Some(step) = spec.escalation.get(i).map(|e| (e.after, e.step.clone())) else {
            return;
        };
        if !early && c.arrival + step.0 > now {
            self.arm_wait_timers(call, now);
            return;
        }
        self.remove_waiting(call);
        let mut overflow = None;
        let drop_id = match &step.1 {
            Step::DropSkill(s) => Some(intern(&mut self.skills, s)),
            _ => None,
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.applied.push((q, i));
        match step.1 {
            Step::DropSkill(_) => c.dropped.extend(drop_id),
            Step::MinLevel(l) => c.cap = c.cap.min(l),
            Step::Overflow(to) => {
                if to != q && (to.0 as usize) < self.queues.len() {
                    c.queue = to;
                    c.entered = now;
                    overflow = Some(to);
                }
            }
        }
        self.outputs.push_back(Output::Escalated {
            call,
            queue: q,
            step: i,
            early,
        });
        if let Some(to) = overflow {
            self.outputs
                .push_back(Output::Overflowed { call, from: q, to });
        }
        if let Some(c) = self.calls.get(&call) {
            let req = self.requirement(c);
            if let Some(c) = self.calls.get_mut(&call) {
                c.req = req;
            }
        }
        self.insert_waiting(call);
        self.arm_wait_timers(call, now);
        self.match_call(call, now);
    }

    // ------------------------------------------------------------ internals: matching

    fn declined_by(&self, call: CallId, a: AgentIx) -> bool {
        !self.declines.is_empty() && self.declines.contains(&(call, a))
    }

    /// A waiting call takes the best eligible available agent, if any.
    fn match_call(&mut self, call: CallId, now: Instant) {
        if let Some(a) = self.best_agent_for(call) {
            self.offer(call, a, now);
        }
    }

    fn best_agent_for(&self, call: CallId) -> Option<AgentIx> {
        let c = self.calls.get(&call)?;
        if c.phase != Phase::Waiting {
            return None;
        }
        let queue = self.queue(c.queue)?;
        let strategy = self.spec.queues.get(c.queue.0 as usize)?.strategy;
        let ordered = strategy == Strategy::LongestIdle
            || c.req.iter().map(|e| e.0).eq(queue.base.iter().map(|e| e.0));
        let eligible = |k: &ReadyKey| {
            self.agent(k.agent)
                .is_some_and(|a| a.satisfies(&c.req) && !self.declined_by(call, k.agent))
        };
        if ordered {
            return queue.ready.iter().find(|k| eligible(k)).map(|k| k.agent);
        }
        queue
            .ready
            .iter()
            .filter(|k| eligible(k))
            .filter_map(|k| {
                let a = self.agent(k.agent)?;
                Some((Reverse(a.score(&c.req)), k.idle, k.agent))
            })
            .min()
            .map(|(_, _, a)| a)
    }

    /// An available agent takes the best waiting call it may serve, if any.
    fn match_agent(&mut self, a: AgentIx, now: Instant) {
        if let Some(call) = self.best_call_for(a) {
            self.offer(call, a, now);
        }
    }

    fn best_call_for(&self, a: AgentIx) -> Option<CallId> {
        let agent = self.agent(a)?;
        if !agent.available {
            return None;
        }
        let mut best: Option<WaitKey> = None;
        for &(q, _) in &agent.queues {
            let Some(queue) = self.queue(q) else { continue };
            for b in &queue.buckets {
                let Some(first) = b.calls.first() else {
                    continue;
                };
                if best.is_some_and(|x| *first >= x) || !agent.satisfies(&b.req) {
                    continue;
                }
                for k in &b.calls {
                    if best.is_some_and(|x| *k >= x) {
                        break;
                    }
                    if !self.declined_by(k.call, a) {
                        best = Some(*k);
                        break;
                    }
                }
            }
        }
        best.map(|k| k.call)
    }

    // ------------------------------------------------------------ checks

    /// Check the core's internal consistency and its matching invariant
    /// (no waiting call has an eligible agent), naively: O(agents × calls).
    /// For tests; returns what is wrong.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut counts = vec![[0usize; 6]; self.counts.len()];
        for (i, agent) in self.agents.iter().enumerate() {
            let a = AgentIx(i as u32);
            if let Some(c) = counts.get_mut(agent.tenant) {
                c[agent.state.index()] += 1;
            }
            match &agent.state {
                AgentState::Reserved(call) => {
                    let phase = self.calls.get(call).map(|c| c.phase);
                    if phase != Some(Phase::Offered(a)) {
                        return Err(format!("{a:?} reserved for {call} in {phase:?}"));
                    }
                    if !self.timers.is_armed(Timer::Ring(*call)) {
                        return Err(format!("{call} rings {a:?} without a ring timer"));
                    }
                }
                AgentState::Talking(call) => {
                    let phase = self.calls.get(call).map(|c| c.phase);
                    if phase != Some(Phase::Talking(a)) {
                        return Err(format!("{a:?} talking on {call} in {phase:?}"));
                    }
                }
                AgentState::WrapUp if !self.timers.is_armed(Timer::WrapUp(a)) => {
                    return Err(format!("{a:?} in wrap-up without a timer"));
                }
                _ => {}
            }
            if agent.available != (agent.state == AgentState::Ready && agent.reachable) {
                return Err(format!("{a:?} availability is stale"));
            }
            for &(q, score) in &agent.queues {
                let key = ReadyKey {
                    score: Reverse(score),
                    idle: agent.idle,
                    agent: a,
                };
                let inside = self.queue(q).is_some_and(|x| x.ready.contains(&key));
                if inside != agent.available {
                    return Err(format!("{a:?} ready-set membership in {q:?} is stale"));
                }
            }
            if matches!(agent.pending, Some(Pending::Logout))
                && !matches!(agent.state, AgentState::Talking(_))
            {
                return Err(format!(
                    "{a:?} has a pending logout while {:?}",
                    agent.state
                ));
            }
        }
        if counts != self.counts {
            return Err("per-tenant state counts are stale".into());
        }
        for (i, q) in self.queues.iter().enumerate() {
            let n: usize = q.buckets.iter().map(|b| b.calls.len()).sum();
            if n != q.waiting {
                return Err(format!("queue {i}: {n} in buckets, {} counted", q.waiting));
            }
            let ready: usize = q.ready.len();
            let avail = q
                .candidates
                .iter()
                .filter(|a| self.agent(**a).is_some_and(|x| x.available))
                .count();
            if ready != avail {
                return Err(format!("queue {i}: ready set {ready}, available {avail}"));
            }
        }
        for (&call, c) in &self.calls {
            let waiting_in = self.queues.iter().enumerate().find_map(|(i, q)| {
                q.buckets
                    .iter()
                    .any(|b| b.calls.contains(&c.key(call)) && b.req == c.req)
                    .then_some(i)
            });
            match c.phase {
                Phase::Waiting => {
                    if waiting_in != Some(c.queue.0 as usize) {
                        return Err(format!("{call} waits but is in queue {waiting_in:?}"));
                    }
                    if c.req != self.requirement(c) {
                        return Err(format!("{call} has a stale requirement"));
                    }
                    for (ai, agent) in self.agents.iter().enumerate() {
                        let a = AgentIx(ai as u32);
                        // tenant and groups from the spec, not the
                        // candidate lists (this checks their pruning)
                        let (Some(qs), Some(sa)) = (
                            self.spec.queues.get(c.queue.0 as usize),
                            self.spec.agents.get(ai),
                        ) else {
                            continue;
                        };
                        let serves = qs.tenant == sa.tenant
                            && (qs.groups.is_empty()
                                || qs.groups.iter().any(|g| sa.groups.contains(g)));
                        if agent.available
                            && serves
                            && agent.satisfies(&c.req)
                            && !self.declines.contains(&(call, a))
                        {
                            return Err(format!("{call} waits while {a:?} is eligible"));
                        }
                    }
                }
                Phase::Offered(a) | Phase::Talking(a) => {
                    if waiting_in.is_some() {
                        return Err(format!("{call} is with {a:?} and also waits"));
                    }
                    if self.agent(a).and_then(|x| x.state.call()) != Some(call) {
                        return Err(format!("{call} is with {a:?} whose state differs"));
                    }
                }
            }
        }
        Ok(())
    }
}
