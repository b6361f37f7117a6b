//! Non-INVITE client transaction (RFC 3261 §17.1.2).
//!
//! ```text
//! Trying ──1xx──▶ Proceeding ──200-699──▶ Completed ──K──▶ Terminated
//!   E: resend, T1 doubling ≤ T2   E: resend every T2       (K = T4 UDP, 0 TCP)
//!   F: Timeout                    F: Timeout
//!   └──200-699──────────────────────▶ Completed
//! ```

use super::key::ClientKey;
use super::{Ctx, Next, Peer, Timer, TsxEvent};
use crate::ids::TsxId;
use crate::sip::msg::{Request, Response};
use crate::time::{Duration, Instant};
use bytes::Bytes;

/// A non-INVITE client transaction.
#[derive(Debug)]
pub(crate) struct Client {
    pub id: TsxId,
    /// The request as sent.
    pub request: Request,
    pub key: ClientKey,
    /// The layer's own (a CANCEL it built): no events.
    pub internal: bool,
    pub peer: Peer,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Timer E retransmits `data` (UDP) at interval `e`; F runs.
    Trying { data: Bytes, e: Duration },
    /// A provisional arrived; E continues every T2, F runs.
    Proceeding { data: Bytes },
    /// A final arrived; Timer K absorbs retransmitted responses.
    Completed,
}

impl Client {
    /// Send the request and enter Trying (§17.1.2.2).
    pub fn start(
        id: TsxId,
        request: Request,
        key: ClientKey,
        peer: Peer,
        internal: bool,
        ctx: &mut Ctx,
        now: Instant,
    ) -> Client {
        let data = request.to_bytes();
        ctx.send(&peer, data.clone());
        if !peer.transport.is_reliable() {
            ctx.arm(id, Timer::E, now + ctx.cfg.t1);
        }
        ctx.arm(id, Timer::F, now + ctx.cfg.t1x64());
        Client {
            id,
            request,
            key,
            internal,
            peer,
            state: State::Trying {
                data,
                e: ctx.cfg.t1,
            },
        }
    }

    fn event(&self, ctx: &mut Ctx, e: TsxEvent) {
        if !self.internal {
            ctx.event(e);
        }
    }

    /// A response matched to this transaction.
    pub fn on_response(&mut self, resp: Response, ctx: &mut Ctx, now: Instant) -> Next {
        let id = self.id;
        match &mut self.state {
            State::Trying { data, .. } | State::Proceeding { data } => {
                if resp.status < 200 {
                    let data = data.clone();
                    self.state = State::Proceeding { data };
                } else {
                    ctx.disarm(id, Timer::E);
                    ctx.disarm(id, Timer::F);
                    self.state = State::Completed;
                    if self.peer.transport.is_reliable() {
                        self.event(
                            ctx,
                            TsxEvent::Response {
                                tsx: id,
                                response: resp,
                            },
                        );
                        return Next::Terminate;
                    }
                    ctx.arm(id, Timer::K, now + ctx.cfg.t4);
                }
                self.event(
                    ctx,
                    TsxEvent::Response {
                        tsx: id,
                        response: resp,
                    },
                );
                Next::Stay
            }
            // Retransmitted responses are absorbed.
            State::Completed => Next::Stay,
        }
    }

    /// A timer of this transaction fired.
    pub fn on_timer(&mut self, timer: Timer, ctx: &mut Ctx, now: Instant) -> Next {
        match (timer, &mut self.state) {
            (Timer::E, State::Trying { data, e }) => {
                ctx.resend(&self.peer, data.clone());
                *e = ctx.cfg.double_capped(*e);
                ctx.arm(self.id, Timer::E, now + *e);
                Next::Stay
            }
            (Timer::E, State::Proceeding { data }) => {
                ctx.resend(&self.peer, data.clone());
                ctx.arm(self.id, Timer::E, now + ctx.cfg.t2);
                Next::Stay
            }
            (Timer::F, State::Trying { .. } | State::Proceeding { .. }) => {
                self.event(ctx, TsxEvent::Timeout { tsx: self.id });
                Next::Terminate
            }
            (Timer::K, State::Completed) => Next::Terminate,
            _ => Next::Stay,
        }
    }
}

#[cfg(test)]
mod tests {
    //! RFC 3261 §17.1.2 (non-INVITE client transaction).
    use super::super::testkit::*;
    use super::super::*;
    use crate::time::Duration;

    fn ms(h: &Harness, at: Instant) -> u128 {
        (at - h.t0).as_millis()
    }

    #[test]
    fn rfc3261_17_1_2_2_timer_e_doubles_capped_at_t2_then_timer_f_times_out() {
        let mut h = Harness::new();
        let tsx = h.tsxs.send_request(options_out(), udp_peer(), h.t0);
        assert_eq!(h.transmits().len(), 1);
        let mut fired = Vec::new();
        while let Some((at, _, timer)) = h.tsxs.poll_timeout() {
            h.tsxs.handle_timeout(at);
            fired.push((ms(&h, at), timer));
        }
        // 0.5, 1.5, 3.5, 7.5, 11.5 … every 4 s (T2) until F at 32 s.
        let mut expect = vec![500, 1500, 3500, 7500];
        let mut t = 7500;
        while t + 4000 < 32000 {
            t += 4000;
            expect.push(t);
        }
        let es: Vec<_> = fired
            .iter()
            .filter(|f| f.1 == Timer::E)
            .map(|f| f.0)
            .collect();
        assert_eq!(es, expect);
        assert_eq!(fired.last(), Some(&(32000, Timer::F)));
        assert_eq!(h.tsxs.retransmissions(), expect.len() as u64);
        assert_eq!(
            h.events(),
            vec![TsxEvent::Timeout { tsx }, TsxEvent::Terminated { tsx }]
        );
    }

    #[test]
    fn rfc3261_17_1_2_2_proceeding_retransmits_every_t2() {
        let mut h = Harness::new();
        let _ = h.tsxs.send_request(options_out(), udp_peer(), h.t0);
        let req = h.sent_request();
        h.tsxs.handle_response(
            resp_for(&req, 100, None),
            udp_peer(),
            h.t0 + Duration::from_millis(100),
        );
        assert_eq!(h.events().len(), 1);
        // E still due at T1, then every T2.
        let (at, _, t) = h.tsxs.poll_timeout().unwrap();
        assert_eq!((ms(&h, at), t), (500, Timer::E));
        h.tsxs.handle_timeout(at);
        let (at, _, t) = h.tsxs.poll_timeout().unwrap();
        assert_eq!((ms(&h, at), t), (4500, Timer::E));
    }

    #[test]
    fn rfc3261_17_1_2_2_final_completes_and_timer_k_absorbs() {
        let mut h = Harness::new();
        let tsx = h.tsxs.send_request(options_out(), udp_peer(), h.t0);
        let req = h.sent_request();
        let ok = resp_for(&req, 200, Some("t"));
        h.tsxs.handle_response(ok.clone(), udp_peer(), h.t0);
        assert!(
            matches!(&h.events()[..], [TsxEvent::Response { response, .. }] if response.status == 200)
        );
        assert_eq!(
            h.tsxs.poll_timeout(),
            Some((h.t0 + Duration::from_secs(5), tsx, Timer::K))
        );
        h.tsxs.handle_response(ok, udp_peer(), h.t0);
        assert!(h.events().is_empty());
        assert_eq!(h.tsxs.stray_responses(), 0);
        h.advance(Duration::from_secs(5));
        assert_eq!(h.events(), vec![TsxEvent::Terminated { tsx }]);
    }

    #[test]
    fn rfc3261_17_1_2_2_tcp_no_timer_e_and_k_is_zero() {
        let mut h = Harness::new();
        let tsx = h.tsxs.send_request(options_out(), tcp_peer(), h.t0);
        let req = h.sent_request();
        assert_eq!(h.tsxs.poll_timeout().map(|t| t.2), Some(Timer::F));
        h.tsxs
            .handle_response(resp_for(&req, 404, Some("t")), tcp_peer(), h.t0);
        let ev = h.events();
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[1], TsxEvent::Terminated { tsx });
        assert_eq!(h.tsxs.poll_timeout(), None);
    }

    #[test]
    fn ids_are_never_reused() {
        let mut h = Harness::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let tsx = h.tsxs.send_request(options_out(), tcp_peer(), h.t0);
            let req = h.sent_request();
            h.tsxs
                .handle_response(resp_for(&req, 200, None), tcp_peer(), h.t0);
            assert!(seen.insert(tsx));
        }
        h.tsxs
            .handle_request(options_in("z9hG4bKsrv"), udp_from(), h.t0);
        let Some(TsxEvent::Request { tsx, .. }) = h
            .events()
            .into_iter()
            .find(|e| matches!(e, TsxEvent::Request { .. }))
        else {
            panic!()
        };
        assert!(seen.insert(tsx));
        // A retransmission does not use up an id.
        h.tsxs
            .handle_request(options_in("z9hG4bKsrv"), udp_from(), h.t0);
        h.tsxs
            .handle_request(options_in("z9hG4bKsrv2"), udp_from(), h.t0);
        let next = h.new_request();
        assert_eq!(next.0, tsx.0 + 1);
    }
}
