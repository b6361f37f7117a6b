//! Per-trunk OPTIONS keepalive (sans-IO, virtual time): is the carrier up?
//!
//! Every trunk with an `outbound` address is pinged with an out-of-dialog
//! OPTIONS (RFC 3261 §11) every `keepalive_secs`, always over UDP. The first
//! ping goes out at start, within the first tenth of the interval; each next
//! one an interval later, ±10 %, drawn from the core's [`Rng`], so trunks
//! configured alike do not ping in lockstep. At most one ping per trunk is
//! in flight: a tick that finds the previous one still waiting for its
//! answer (up to Timer F, 64·T1 = 32 s by default) sends nothing.
//!
//! What a ping's result counts as:
//!
//! - **ok**: any final response 200–499 except 408. The carrier answered,
//!   and a 404 or 405 says its SIP stack is alive just as well as a 200.
//! - **failed**: 408, any 5xx (an overloaded or broken peer) or 6xx, or no
//!   final response at all (the transaction timed out, Timer F).
//!
//! Provisional responses are ignored. The trunk's state has hysteresis: it
//! is **unknown** until the first result, goes **up** on the first ok, and
//! goes **down** after two failures in a row (one lost ping does not flap
//! it). Changes are logged (down at warn, up at info, with the trunk's name)
//! and exported: `hotline_trunk_up{trunk}` is 1 while up and 0 otherwise,
//! including before the first result (a trunk is not reported up before it
//! has answered); `hotline_trunk_keepalive_total{trunk,result}` counts each
//! ping's result (`ok`, `failed`).

use crate::config::Trunk;
use crate::ids::TsxId;
use crate::rng::Rng;
use crate::sip::msg::{Method, Request, Response};
use crate::sip::transaction::{Peer, Transactions};
use crate::sip::transport::Transport;
use crate::time::{Duration, Instant, TimerQueue};
use std::collections::HashMap;
use std::net::SocketAddr;

/// Consecutive failures that take a trunk down.
pub const FAILURES_FOR_DOWN: u32 = 2;

/// What one ping's result counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The carrier answered (a final response 200–499 but 408).
    Ok,
    /// 408, 5xx, 6xx or no answer (Timer F).
    Failed,
}

impl Outcome {
    /// The `result` label of `hotline_trunk_keepalive_total`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
        }
    }

    /// What a response with `status` says about the carrier; `None` for a
    /// provisional response (wait for the final one).
    #[must_use]
    pub fn of_status(status: u16) -> Option<Outcome> {
        match status {
            0..=199 => None,
            408 => Some(Outcome::Failed),
            200..=499 => Some(Outcome::Ok),
            _ => Some(Outcome::Failed),
        }
    }
}

/// A trunk's state as the keepalive sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No result yet.
    Unknown,
    /// Answered last time.
    Up,
    /// [`FAILURES_FOR_DOWN`] failures in a row, and none answered since.
    Down,
}

/// One pinged trunk.
#[derive(Debug)]
struct Probe {
    /// Index of the trunk in `config.trunks` (the timer key).
    index: usize,
    name: String,
    address: SocketAddr,
    interval: Duration,
    state: State,
    /// Failures since the last ok.
    failures: u32,
    /// The ping waiting for its answer.
    in_flight: Option<TsxId>,
    /// CSeq of the last ping (each has a fresh Call-ID as well).
    cseq: u32,
}

/// The keepalive of every trunk with an `outbound` address.
#[derive(Debug)]
pub struct Keepalive {
    probes: Vec<Probe>,
    timers: TimerQueue<usize>,
    /// Pings in flight -> index into `probes`.
    by_tsx: HashMap<TsxId, usize>,
    rng: Rng,
    /// Our advertised host, as written in From (IPv6 bracketed).
    host: String,
    user_agent: String,
}

impl Keepalive {
    /// The keepalive of `trunks` (those without `outbound` are left alone),
    /// each trunk's first ping scheduled within the first tenth of its
    /// interval from `now`. `host` is our advertised host for From.
    #[must_use]
    pub fn new(
        trunks: &[Trunk],
        host: String,
        user_agent: String,
        seed: u64,
        now: Instant,
    ) -> Keepalive {
        let mut k = Keepalive {
            probes: Vec::new(),
            timers: TimerQueue::default(),
            by_tsx: HashMap::new(),
            rng: Rng::new(seed),
            host,
            user_agent,
        };
        for (index, trunk) in trunks.iter().enumerate() {
            let Some(out) = trunk.outbound else {
                continue;
            };
            let first = now + k.draw(jitter(out.keepalive));
            k.timers.set(index, first);
            metrics::gauge!("hotline_trunk_up", "trunk" => trunk.name.clone()).set(0.0);
            for o in [Outcome::Ok, Outcome::Failed] {
                metrics::counter!(
                    "hotline_trunk_keepalive_total",
                    "trunk" => trunk.name.clone(),
                    "result" => o.as_str()
                )
                .increment(0);
            }
            k.probes.push(Probe {
                index,
                name: trunk.name.clone(),
                address: out.address,
                interval: out.keepalive,
                state: State::Unknown,
                failures: 0,
                in_flight: None,
                cseq: 0,
            });
        }
        k
    }

    /// A uniform duration in `0..max`.
    fn draw(&mut self, max: Duration) -> Duration {
        let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.rng.below(nanos))
    }

    /// The next ping due: (when, index of its trunk in `config.trunks`).
    pub fn poll_timeout(&mut self) -> Option<(Instant, usize)> {
        self.timers.earliest()
    }

    /// Send the pings due at `now` and schedule the next ones.
    pub fn handle_timeout(&mut self, tsx: &mut Transactions, now: Instant) {
        while let Some(index) = self.timers.pop_due(now) {
            let Some(p) = self.probes.iter().position(|p| p.index == index) else {
                continue;
            };
            let interval = self.probes[p].interval;
            let j = jitter(interval);
            let next = now + interval - j + self.draw(j * 2);
            self.timers.set(index, next);
            if self.probes[p].in_flight.is_some() {
                // The last ping is still waiting for its answer (or Timer F).
                continue;
            }
            let req = self.ping(p);
            let peer = Peer {
                transport: Transport::Udp,
                addr: self.probes[p].address,
                conn: None,
            };
            let id = tsx.send_request(req, peer, now);
            self.probes[p].in_flight = Some(id);
            self.by_tsx.insert(id, p);
        }
    }

    /// The OPTIONS for probe `p`.
    fn ping(&mut self, p: usize) -> Request {
        let tag = self.rng.token(12);
        let call_id = self.rng.token(24);
        let probe = &mut self.probes[p];
        probe.cseq = probe.cseq.wrapping_add(1).max(1);
        let addr = probe.address;
        let mut req = Request::new(Method::Options, format!("sip:{addr}"));
        let h = &mut req.headers;
        h.push("Max-Forwards", "70");
        h.push("From", format!("<sip:hotline@{}>;tag={tag}", self.host));
        h.push("To", format!("<sip:{addr}>"));
        h.push("Call-ID", call_id);
        h.push("CSeq", format!("{} OPTIONS", probe.cseq));
        h.push("User-Agent", self.user_agent.clone());
        req
    }

    /// A response on a client transaction: `true` if it was one of our
    /// pings (then it is ours alone).
    pub fn on_response(&mut self, id: TsxId, resp: &Response) -> bool {
        let Some(&p) = self.by_tsx.get(&id) else {
            return false;
        };
        if let Some(outcome) = Outcome::of_status(resp.status) {
            self.by_tsx.remove(&id);
            self.result(p, outcome);
        }
        true
    }

    /// A client transaction timed out (Timer F): `true` if it was a ping.
    pub fn on_timeout(&mut self, id: TsxId) -> bool {
        let Some(p) = self.by_tsx.remove(&id) else {
            return false;
        };
        self.result(p, Outcome::Failed);
        true
    }

    /// A transaction is gone. A ping that ended without a result (it
    /// should not) no longer blocks the next one.
    pub fn on_terminated(&mut self, id: TsxId) {
        if let Some(p) = self.by_tsx.remove(&id) {
            self.probes[p].in_flight = None;
        }
    }

    /// Whether trunk `name` is up: `None` for a trunk we do not ping, or
    /// before its state is known.
    #[must_use]
    pub fn is_up(&self, name: &str) -> Option<bool> {
        match self.probes.iter().find(|p| p.name == name)?.state {
            State::Unknown => None,
            State::Up => Some(true),
            State::Down => Some(false),
        }
    }

    /// The state of trunk `name` (`None`: not pinged).
    #[must_use]
    pub fn state(&self, name: &str) -> Option<State> {
        self.probes.iter().find(|p| p.name == name).map(|p| p.state)
    }

    fn result(&mut self, p: usize, outcome: Outcome) {
        let probe = &mut self.probes[p];
        probe.in_flight = None;
        metrics::counter!(
            "hotline_trunk_keepalive_total",
            "trunk" => probe.name.clone(),
            "result" => outcome.as_str()
        )
        .increment(1);
        let before = probe.state;
        match outcome {
            Outcome::Ok => {
                probe.failures = 0;
                probe.state = State::Up;
            }
            Outcome::Failed => {
                probe.failures = probe.failures.saturating_add(1);
                if probe.failures >= FAILURES_FOR_DOWN {
                    probe.state = State::Down;
                }
            }
        }
        if probe.state == before {
            return;
        }
        let (trunk, address) = (&probe.name, probe.address);
        match probe.state {
            State::Up => {
                tracing::info!(%trunk, %address, "trunk up: OPTIONS answered");
            }
            State::Down => tracing::warn!(
                %trunk,
                %address,
                failures = probe.failures,
                "trunk down: OPTIONS unanswered or failed"
            ),
            State::Unknown => {}
        }
        let up = if probe.state == State::Up { 1.0 } else { 0.0 };
        metrics::gauge!("hotline_trunk_up", "trunk" => trunk.clone()).set(up);
    }
}

/// A tenth of the interval: the spread of the first ping, and the ± of
/// the next ones.
fn jitter(interval: Duration) -> Duration {
    interval / 10
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, Config};
    use crate::sip::msg::{parse, Message, SipHeaders};
    use crate::sip::transaction::{LocalVia, TimerConfig, TsxEvent};

    fn config(trunks: &str) -> Config {
        let text = format!(
            "[node]\nname = \"n\"\n[sip]\nlisten = \"192.0.2.1:5060\"\nuser_agent = \"UA-1\"\n{trunks}"
        );
        match config::parse(&text, "t.toml") {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    const ONE: &str = "[[trunks]]\nname = \"a\"\nsources = [\"198.51.100.0/24\"]\n\
                       outbound = \"198.51.100.7:5060\"\n";

    struct H {
        k: Keepalive,
        tsx: Transactions,
        t0: Instant,
        now: Instant,
    }

    impl H {
        fn new(trunks: &str, seed: u64) -> H {
            let c = config(trunks);
            let t0 = crate::time::now();
            H {
                k: Keepalive::new(&c.trunks, "192.0.2.1".into(), "UA-1".into(), seed, t0),
                tsx: Transactions::new(
                    TimerConfig::default(),
                    LocalVia {
                        host: "192.0.2.1".into(),
                        port: 5060,
                    },
                    seed,
                ),
                t0,
                now: t0,
            }
        }

        /// Run to the next ping and return its transaction and request.
        fn next_ping(&mut self) -> (TsxId, Request) {
            let Some((at, _)) = self.k.poll_timeout() else {
                panic!("no ping scheduled");
            };
            self.now = at;
            let before: Vec<TsxId> = self.k.by_tsx.keys().copied().collect();
            self.k.handle_timeout(&mut self.tsx, at);
            let id = self
                .k
                .by_tsx
                .keys()
                .copied()
                .find(|id| !before.contains(id))
                .unwrap_or_else(|| panic!("the tick sent nothing"));
            let t = self
                .tsx
                .poll_transmit()
                .unwrap_or_else(|| panic!("nothing transmitted"));
            assert_eq!(t.destination, "198.51.100.7:5060".parse().unwrap());
            while self.tsx.poll_transmit().is_some() {}
            let req = match parse(&t.data).map(|p| p.message) {
                Ok(Message::Request(r)) => r,
                other => panic!("{other:?}"),
            };
            (id, req)
        }

        fn answer(&mut self, id: TsxId, status: u16) {
            let Some(req) = self.tsx.request(id).cloned() else {
                panic!("no such transaction");
            };
            let mut r = Response::to(&req, status);
            r.set_to_tag("carrier");
            assert!(self.k.on_response(id, &r));
        }

        fn up(&self) -> Option<bool> {
            self.k.is_up("a")
        }
    }

    #[test]
    fn classifies_final_responses() {
        assert_eq!(Outcome::of_status(100), None);
        assert_eq!(Outcome::of_status(183), None);
        for ok in [200, 202, 302, 403, 404, 405, 481, 488, 499] {
            assert_eq!(Outcome::of_status(ok), Some(Outcome::Ok), "{ok}");
        }
        for failed in [408, 500, 502, 503, 504, 600, 603] {
            assert_eq!(
                Outcome::of_status(failed),
                Some(Outcome::Failed),
                "{failed}"
            );
        }
    }

    #[test]
    fn the_ping_is_an_out_of_dialog_options() {
        let mut h = H::new(ONE, 1);
        let (_, req) = h.next_ping();
        assert_eq!(req.method, Method::Options);
        assert_eq!(req.uri, "sip:198.51.100.7:5060");
        let hv = |n: &str| req.headers.get_named(n).map(str::to_owned);
        assert_eq!(hv("Max-Forwards").as_deref(), Some("70"));
        assert_eq!(hv("To").as_deref(), Some("<sip:198.51.100.7:5060>"));
        assert_eq!(hv("User-Agent").as_deref(), Some("UA-1"));
        assert_eq!(hv("CSeq").as_deref(), Some("1 OPTIONS"));
        let from = hv("From").unwrap_or_default();
        assert!(from.starts_with("<sip:hotline@192.0.2.1>;tag="), "{from}");
        assert!(req.to_tag().is_none());
        let call_id = hv("Call-ID").unwrap_or_default();
        h.answer(h.k.probes[0].in_flight.unwrap(), 200);
        let (_, second) = h.next_ping();
        assert_ne!(second.headers.get_named("Call-ID"), Some(call_id.as_str()));
        assert_eq!(second.headers.get_named("CSeq"), Some("2 OPTIONS"));
    }

    #[test]
    fn up_on_first_200_down_after_two_failures_and_up_again() {
        let mut h = H::new(ONE, 2);
        assert_eq!(h.up(), None, "unknown before any result");
        let (id, _) = h.next_ping();
        h.answer(id, 200);
        assert_eq!(h.up(), Some(true));

        let (id, _) = h.next_ping();
        h.answer(id, 503);
        assert_eq!(h.up(), Some(true), "one failure does not take it down");
        let (id, _) = h.next_ping();
        assert!(h.k.on_timeout(id), "Timer F");
        assert_eq!(h.up(), Some(false), "down after two failures in a row");
        assert_eq!(h.k.state("a"), Some(State::Down));

        let (id, _) = h.next_ping();
        h.answer(id, 408);
        assert_eq!(h.up(), Some(false));
        let (id, _) = h.next_ping();
        h.answer(id, 200);
        assert_eq!(h.up(), Some(true), "up on the first success");

        // A failure between two successes never takes it down.
        let (id, _) = h.next_ping();
        h.answer(id, 500);
        let (id, _) = h.next_ping();
        h.answer(id, 200);
        let (id, _) = h.next_ping();
        h.answer(id, 600);
        assert_eq!(h.up(), Some(true));
    }

    #[test]
    fn a_404_counts_as_alive_and_provisionals_are_ignored() {
        let mut h = H::new(ONE, 3);
        let (id, _) = h.next_ping();
        h.answer(id, 100);
        assert_eq!(h.up(), None, "a 100 is no result");
        assert!(h.k.probes[0].in_flight.is_some());
        h.answer(id, 404);
        assert_eq!(h.up(), Some(true));
        assert!(h.k.probes[0].in_flight.is_none());
    }

    #[test]
    fn unknown_goes_down_after_two_failures() {
        let mut h = H::new(ONE, 4);
        let (id, _) = h.next_ping();
        h.answer(id, 503);
        assert_eq!(h.up(), None, "one failure: still unknown");
        let (id, _) = h.next_ping();
        h.answer(id, 503);
        assert_eq!(h.up(), Some(false));
    }

    #[test]
    fn schedule_and_jitter_bounds() {
        for seed in 0..50 {
            let mut h = H::new(ONE, seed);
            let interval = Duration::from_secs(30);
            let (first, _) = h.k.poll_timeout().unwrap();
            assert!(
                first >= h.t0 && first < h.t0 + interval / 10,
                "seed {seed}: first ping {:?} after start",
                first - h.t0
            );
            let mut last = first;
            for _ in 0..5 {
                let (id, _) = h.next_ping();
                h.answer(id, 200);
                let (next, _) = h.k.poll_timeout().unwrap();
                let gap = next - last;
                assert!(
                    gap >= interval * 9 / 10 && gap <= interval * 11 / 10,
                    "seed {seed}: gap {gap:?}"
                );
                last = next;
            }
        }
        // Two trunks alike do not ping in lockstep.
        let two = format!(
            "{ONE}[[trunks]]\nname = \"b\"\nsources = [\"203.0.113.0/24\"]\n\
             outbound = \"203.0.113.7:5060\"\n"
        );
        let mut k = H::new(&two, 9).k;
        let mut firsts: Vec<Instant> = Vec::new();
        while let Some((t, _)) = k.poll_timeout() {
            firsts.push(t);
            let _ = k.timers.pop_due(t);
        }
        assert_eq!(firsts.len(), 2);
        assert_ne!(firsts[0], firsts[1]);
    }

    #[test]
    fn one_ping_in_flight_per_trunk() {
        let mut h = H::new(ONE, 5);
        let (id, _) = h.next_ping();
        // The next tick comes before Timer F (32 s): nothing is sent.
        let Some((at, _)) = h.k.poll_timeout() else {
            panic!("no next tick");
        };
        h.k.handle_timeout(&mut h.tsx, at);
        assert!(h.tsx.poll_transmit().is_none(), "a second ping in flight");
        assert_eq!(h.k.by_tsx.len(), 1);
        // Timer F: the transaction layer reports the timeout.
        h.tsx.handle_timeout(h.t0 + Duration::from_secs(40));
        let mut timed_out = false;
        while let Some(ev) = h.tsx.poll_event() {
            if let TsxEvent::Timeout { tsx } = ev {
                assert_eq!(tsx, id);
                timed_out = h.k.on_timeout(tsx);
            }
        }
        assert!(timed_out);
        assert_eq!(h.up(), None, "one failure");
        let (_, _) = h.next_ping();
    }

    #[test]
    fn trunks_without_outbound_are_not_pinged() {
        let h = H::new(
            "[[trunks]]\nname = \"quiet\"\nsources = [\"198.51.100.0/24\"]\n",
            6,
        );
        let mut k = h.k;
        assert!(k.poll_timeout().is_none());
        assert_eq!(k.is_up("quiet"), None);
        assert_eq!(k.state("quiet"), None);
        assert!(!k.on_timeout(TsxId(1)));
    }
}
