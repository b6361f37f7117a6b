//! INVITE server transaction: RFC 3261 §17.2.1 with the Accepted state of
//! RFC 6026, and the 2xx retransmission of §13.3.1.4 done here.
//!
//! ```text
//!            100 Trying sent at once
//! Proceeding ──300-699 from TU──▶ Completed ──ACK──▶ Confirmed ──I──▶ Terminated
//!  INVITE: resend last 1xx         G: resend final      (I = T4 UDP, 0 TCP)
//!  1xx from TU: send               H: AckTimeout
//!  CANCEL: Cancelled event         INVITE: resend final
//!   └──2xx from TU──▶ Accepted ──L──▶ Terminated (AckTimeout if no ACK)
//!                      G: resend 2xx until the ACK (UDP)
//!                      INVITE: resend 2xx until the ACK
//!                      ACK (dialog match): Ack event, stop G
//! ```

use super::key::{self, AckKey, ServerKey};
use super::{Ctx, Next, Peer, Timer, TsxEvent};
use crate::ids::TsxId;
use crate::sip::msg::{Hdr, Request, Response, SipHeaders};
use crate::time::{Duration, Instant};
use bytes::Bytes;

/// An INVITE server transaction.
#[derive(Debug)]
pub(crate) struct ServerInvite {
    pub id: TsxId,
    /// The INVITE as received.
    pub request: Request,
    pub key: ServerKey,
    pub reply: Peer,
    state: State,
}

#[derive(Debug)]
enum State {
    /// `last` provisional (first the 100) re-sent on INVITE retransmission.
    Proceeding {
        last: Bytes,
        /// The To tag of the TU's provisionals, for the 200 to a CANCEL.
        to_tag: Option<String>,
        cancelled: bool,
    },
    /// A non-2xx final was sent; G retransmits it (UDP), H waits for the ACK.
    Completed {
        last: Bytes,
        to_tag: Option<String>,
        g: Duration,
    },
    /// The ACK arrived; Timer I absorbs its retransmissions.
    Confirmed,
    /// A 2xx was sent (RFC 6026); G retransmits it until the ACK (UDP), L.
    Accepted {
        last: Bytes,
        g: Duration,
        ack_key: AckKey,
        acked: bool,
    },
}

/// `100 Trying` for a request, serialised directly: the headers of
/// [`Response::to`] (Via, From, To, Call-ID, CSeq) in their received order,
/// plus Timestamp (RFC 3261 §8.2.6.1); no To tag. This runs for every
/// INVITE, so it skips building a [`Response`].
fn trying(request: &Request) -> Bytes {
    let mut s = String::with_capacity(320);
    s.push_str("SIP/2.0 100 Trying\r\n");
    for h in &request.headers.0 {
        let copy = match h.kind {
            Hdr::Via | Hdr::From | Hdr::To | Hdr::CallId | Hdr::CSeq => true,
            Hdr::Other => h.name.eq_ignore_ascii_case("Timestamp"),
            _ => false,
        };
        if copy {
            s.push_str(&h.name);
            s.push_str(": ");
            s.push_str(&h.value);
            s.push_str("\r\n");
        }
    }
    s.push_str("Content-Length: 0\r\n\r\n");
    Bytes::from(s)
}

/// What an ACK matched by the §17.2.3 rules did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckMatch {
    /// Not this transaction's (RFC 2543: another To tag).
    NoMatch,
    /// The ACK of our non-2xx (or a retransmission of it).
    Absorbed(Next),
    /// The ACK of our 2xx, reusing the INVITE's branch: pass it up.
    Accepted,
}

/// What a CANCEL matching this transaction did (§9.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CancelMatch {
    /// Still in Proceeding: the TU must send 487.
    Cancel { to_tag: Option<String> },
    /// Already final (or already cancelled): 200, nothing else.
    NoEffect { to_tag: Option<String> },
}

impl ServerInvite {
    /// A new INVITE: send 100 Trying at once (§17.2.1), pass it up.
    pub fn start(
        id: TsxId,
        request: Request,
        reply: Peer,
        key: ServerKey,
        ctx: &mut Ctx,
        _now: Instant,
    ) -> ServerInvite {
        let last = trying(&request);
        ctx.send(&reply, last.clone());
        ctx.event(TsxEvent::Request {
            tsx: id,
            request: request.clone(),
        });
        ServerInvite {
            id,
            request,
            key,
            reply,
            state: State::Proceeding {
                last,
                to_tag: None,
                cancelled: false,
            },
        }
    }

    /// The key of the Accepted index, while Accepted.
    pub fn ack_key(&self) -> Option<&AckKey> {
        match &self.state {
            State::Accepted { ack_key, .. } => Some(ack_key),
            _ => None,
        }
    }

    /// The INVITE again (§17.2.1, RFC 6026).
    pub fn on_retransmission(&mut self, ctx: &mut Ctx) {
        match &self.state {
            State::Proceeding { last, .. } | State::Completed { last, .. } => {
                ctx.resend(&self.reply, last.clone());
            }
            // The 2xx may have been lost; resend until it is ACKed.
            State::Accepted {
                last, acked: false, ..
            } => ctx.resend(&self.reply, last.clone()),
            State::Accepted { .. } | State::Confirmed => {}
        }
    }

    /// The TU responds. `None` if this response can no longer be sent;
    /// else what to do next, with the ACK key when the 2xx made it Accepted.
    pub fn respond(
        &mut self,
        resp: Response,
        ctx: &mut Ctx,
        now: Instant,
    ) -> Option<(Next, Option<AckKey>)> {
        let id = self.id;
        let reliable = self.reply.transport.is_reliable();
        match (&mut self.state, resp.status) {
            (State::Proceeding { last, to_tag, .. }, 100..=199) => {
                *last = resp.to_bytes();
                if let Some(t) = key::header_tag(&resp.headers, Hdr::To) {
                    *to_tag = Some(t.to_owned());
                }
                ctx.send(&self.reply, last.clone());
                Some((Next::Stay, None))
            }
            (State::Proceeding { .. }, 200..=299) => {
                let h = &self.request.headers;
                let ack_key = AckKey::new(
                    key::call_id(h).unwrap_or(""),
                    self.request.cseq().map(|c| c.0).unwrap_or(0),
                    key::header_tag(h, Hdr::From).unwrap_or(""),
                    key::header_tag(&resp.headers, Hdr::To).unwrap_or(""),
                );
                let last = resp.to_bytes();
                ctx.send(&self.reply, last.clone());
                if !reliable {
                    ctx.arm(id, Timer::G, now + ctx.cfg.t1);
                }
                ctx.arm(id, Timer::L, now + ctx.cfg.t1x64());
                self.state = State::Accepted {
                    last,
                    g: ctx.cfg.t1,
                    ack_key: ack_key.clone(),
                    acked: false,
                };
                Some((Next::Stay, Some(ack_key)))
            }
            // RFC 6026: further 2xx from the TU are sent.
            (State::Accepted { last, .. }, 200..=299) => {
                *last = resp.to_bytes();
                ctx.send(&self.reply, last.clone());
                Some((Next::Stay, None))
            }
            (State::Proceeding { .. }, 300..=699) => {
                let to_tag = key::header_tag(&resp.headers, Hdr::To).map(str::to_owned);
                let last = resp.to_bytes();
                ctx.send(&self.reply, last.clone());
                if !reliable {
                    ctx.arm(id, Timer::G, now + ctx.cfg.t1);
                }
                ctx.arm(id, Timer::H, now + ctx.cfg.t1x64());
                self.state = State::Completed {
                    last,
                    to_tag,
                    g: ctx.cfg.t1,
                };
                Some((Next::Stay, None))
            }
            _ => None,
        }
    }

    /// An ACK matched by §17.2.3 (same branch, or RFC 2543 rules; then
    /// `check_tag` asks to compare the To tag with our final's).
    pub fn on_ack(
        &mut self,
        ack_to_tag: Option<&str>,
        check_tag: bool,
        ctx: &mut Ctx,
        now: Instant,
    ) -> AckMatch {
        let id = self.id;
        match &mut self.state {
            State::Completed { to_tag, .. } => {
                if check_tag && to_tag.as_deref() != ack_to_tag {
                    return AckMatch::NoMatch;
                }
                ctx.disarm(id, Timer::G);
                ctx.disarm(id, Timer::H);
                self.state = State::Confirmed;
                if self.reply.transport.is_reliable() {
                    // Timer I = 0 on reliable transports.
                    return AckMatch::Absorbed(Next::Terminate);
                }
                ctx.arm(id, Timer::I, now + ctx.cfg.t4);
                AckMatch::Absorbed(Next::Stay)
            }
            State::Confirmed | State::Proceeding { .. } => AckMatch::Absorbed(Next::Stay),
            State::Accepted { .. } if check_tag => AckMatch::NoMatch,
            State::Accepted { .. } => {
                self.on_2xx_ack(ctx);
                AckMatch::Accepted
            }
        }
    }

    /// The ACK of our 2xx arrived: stop retransmitting it; L keeps running
    /// to absorb INVITE retransmissions (RFC 6026).
    pub fn on_2xx_ack(&mut self, ctx: &mut Ctx) {
        if let State::Accepted { acked, .. } = &mut self.state {
            *acked = true;
            ctx.disarm(self.id, Timer::G);
        }
    }

    /// A CANCEL matched this INVITE (§9.2).
    pub fn on_cancel(&mut self) -> CancelMatch {
        match &mut self.state {
            State::Proceeding {
                to_tag, cancelled, ..
            } => {
                let to_tag = to_tag.clone();
                if *cancelled {
                    CancelMatch::NoEffect { to_tag }
                } else {
                    *cancelled = true;
                    CancelMatch::Cancel { to_tag }
                }
            }
            State::Completed { to_tag, .. } => CancelMatch::NoEffect {
                to_tag: to_tag.clone(),
            },
            State::Accepted { .. } | State::Confirmed => CancelMatch::NoEffect {
                to_tag: key::header_tag(&self.request.headers, Hdr::To).map(str::to_owned),
            },
        }
    }

    /// A timer of this transaction fired.
    pub fn on_timer(&mut self, timer: Timer, ctx: &mut Ctx, now: Instant) -> Next {
        let id = self.id;
        match (timer, &mut self.state) {
            (Timer::G, State::Completed { last, g, .. })
            | (
                Timer::G,
                State::Accepted {
                    last,
                    g,
                    acked: false,
                    ..
                },
            ) => {
                ctx.resend(&self.reply, last.clone());
                *g = ctx.cfg.double_capped(*g);
                ctx.arm(id, Timer::G, now + *g);
                Next::Stay
            }
            (Timer::H, State::Completed { .. }) => {
                ctx.event(TsxEvent::AckTimeout { tsx: id });
                Next::Terminate
            }
            (Timer::I, State::Confirmed) => Next::Terminate,
            (Timer::L, State::Accepted { acked, .. }) => {
                if !*acked {
                    ctx.event(TsxEvent::AckTimeout { tsx: id });
                }
                Next::Terminate
            }
            _ => Next::Stay,
        }
    }
}

#[cfg(test)]
mod tests {
    //! RFC 3261 §17.2.1 (INVITE server transaction), RFC 6026
    //! (Accepted), §13.3.1.4 (2xx retransmission).
    use super::super::testkit::*;
    use super::super::*;
    use crate::sip::msg::SipHeaders;
    use crate::time::Duration;

    #[test]
    fn rfc3261_17_2_1_100_trying_is_sent_at_once_and_resent_on_retransmission() {
        let mut h = Harness::new();
        let mut inv = invite_in("z9hG4bKa1");
        inv.headers.push("Timestamp", "54");
        h.tsxs.handle_request(inv.clone(), udp_from(), h.t0);
        let sent = h.transmits();
        assert_eq!(sent.len(), 1);
        let trying = parse_response(&sent[0]);
        assert_eq!(trying.status, 100);
        assert_eq!(trying.headers.get_named("Timestamp"), Some("54"));
        assert_eq!(trying.to_tag(), None);
        assert_eq!(sent[0].destination, udp_from().addr);
        let ev = h.events();
        assert!(matches!(&ev[..], [TsxEvent::Request { request, .. }] if *request == inv));
        // The INVITE again: the last provisional again, no new event.
        h.tsxs.handle_request(inv.clone(), udp_from(), h.t0);
        assert_eq!(h.transmits()[0].data, sent[0].data);
        assert!(h.events().is_empty());
        // After a 180, the 180 is what is re-sent.
        let tsx = match &ev[0] {
            TsxEvent::Request { tsx, .. } => *tsx,
            _ => unreachable!(),
        };
        let mut ringing = Response::to(&inv, 180);
        ringing.set_to_tag("u");
        assert!(h.tsxs.send_response(tsx, ringing, h.t0));
        let r = h.transmits();
        h.tsxs.handle_request(inv, udp_from(), h.t0);
        assert_eq!(h.transmits()[0].data, r[0].data);
        assert_eq!(h.tsxs.retransmissions(), 2);
        assert_eq!(h.tsxs.poll_timeout(), None, "no timer in Proceeding");
    }

    #[test]
    fn rfc3261_17_2_1_non_2xx_timer_g_capped_at_t2_timer_h_ack_timeout() {
        let mut h = Harness::new();
        let inv = invite_in("z9hG4bKg");
        h.tsxs.handle_request(inv.clone(), udp_from(), h.t0);
        let tsx = h.new_request();
        h.transmits();
        assert!(h
            .tsxs
            .send_response(tsx, Response::to(&inv, 486).tagged("b"), h.t0));
        assert_eq!(h.transmits().len(), 1);
        let mut g = Vec::new();
        while let Some((at, _, timer)) = h.tsxs.poll_timeout() {
            h.tsxs.handle_timeout(at);
            if timer == Timer::G {
                g.push((at - h.t0).as_millis());
                assert_eq!(h.transmits().len(), 1);
            } else {
                assert_eq!((timer, (at - h.t0).as_millis()), (Timer::H, 32000));
            }
        }
        let mut expect = vec![500, 1500, 3500, 7500];
        while expect.last().unwrap() + 4000 < 32000 {
            expect.push(expect.last().unwrap() + 4000);
        }
        assert_eq!(g, expect);
        assert_eq!(
            h.events(),
            vec![TsxEvent::AckTimeout { tsx }, TsxEvent::Terminated { tsx }]
        );
    }

    #[test]
    fn rfc3261_17_2_1_ack_confirms_stops_g_and_timer_i_absorbs() {
        let mut h = Harness::new();
        let inv = invite_in("z9hG4bKc");
        h.tsxs.handle_request(inv.clone(), udp_from(), h.t0);
        let tsx = h.new_request();
        assert!(h
            .tsxs
            .send_response(tsx, Response::to(&inv, 404).tagged("nf"), h.t0));
        h.transmits();
        // INVITE retransmitted in Completed: the final again.
        h.tsxs.handle_request(inv.clone(), udp_from(), h.t0);
        assert_eq!(parse_response(&h.transmits()[0]).status, 404);
        let ack = ack_for_non_2xx(&inv, "nf");
        h.tsxs
            .handle_request(ack.clone(), udp_from(), h.t0 + Duration::from_millis(100));
        assert!(
            h.events().is_empty(),
            "the ACK of a non-2xx is the transaction's"
        );
        assert_eq!(
            h.tsxs.poll_timeout(),
            Some((h.t0 + Duration::from_millis(5100), tsx, Timer::I))
        );
        // Confirmed absorbs the ACK and the INVITE.
        h.tsxs.handle_request(ack, udp_from(), h.t0);
        h.tsxs.handle_request(inv, udp_from(), h.t0);
        assert!(h.transmits().is_empty());
        assert!(h.events().is_empty());
        h.advance(Duration::from_millis(5100));
        assert_eq!(h.events(), vec![TsxEvent::Terminated { tsx }]);
        assert!(h.tsxs.is_empty());
    }

    #[test]
    fn rfc3261_17_2_1_timer_i_is_zero_over_tcp_and_no_g() {
        let mut h = Harness::new();
        let inv = invite_in("z9hG4bKtcp").tap_via_transport("TCP");
        h.tsxs.handle_request(inv.clone(), tcp_from(), h.t0);
        let tsx = h.new_request();
        assert!(h
            .tsxs
            .send_response(tsx, Response::to(&inv, 480).tagged("x"), h.t0));
        assert_eq!(h.tsxs.poll_timeout().map(|t| t.2), Some(Timer::H));
        h.tsxs.handle_request(
            ack_for_non_2xx(&inv, "x").tap_via_transport("TCP"),
            tcp_from(),
            h.t0,
        );
        assert_eq!(h.events(), vec![TsxEvent::Terminated { tsx }]);
    }

    #[test]
    fn rfc6026_server_2xx_is_retransmitted_until_the_ack_then_l_terminates() {
        let mut h = Harness::new();
        let inv = invite_in("z9hG4bKok");
        h.tsxs.handle_request(inv.clone(), udp_from(), h.t0);
        let tsx = h.new_request();
        h.transmits();
        assert!(h
            .tsxs
            .send_response(tsx, Response::to(&inv, 200).tagged("dlg"), h.t0));
        let ok = h.transmits();
        // T1, 2T1, 4T1 ... capped at T2: at 0.5, 1.5, 3.5 s.
        for ms in [500, 1500, 3500] {
            let (at, id, t) = h.tsxs.poll_timeout().unwrap();
            assert_eq!(((at - h.t0).as_millis(), id, t), (ms, tsx, Timer::G));
            h.tsxs.handle_timeout(at);
            assert_eq!(h.transmits()[0].data, ok[0].data);
        }
        // An INVITE retransmission is absorbed into a 2xx resend, not a new request.
        h.tsxs.handle_request(inv.clone(), udp_from(), h.t0);
        assert_eq!(h.transmits().len(), 1);
        assert!(h.events().is_empty());
        // The ACK of the 2xx: its own branch, matched by dialog + CSeq.
        let ack = ack_for_2xx(&inv, "dlg", "z9hG4bKack");
        h.tsxs
            .handle_request(ack.clone(), udp_from(), h.t0 + Duration::from_secs(4));
        assert_eq!(
            h.events(),
            vec![TsxEvent::Ack {
                invite: Some(tsx),
                request: ack.clone()
            }]
        );
        assert_eq!(
            h.tsxs.poll_timeout(),
            Some((h.t0 + Duration::from_secs(32), tsx, Timer::L))
        );
        // A retransmitted ACK is passed up again (RFC 6026); the dialog dedups.
        h.tsxs
            .handle_request(ack, udp_from(), h.t0 + Duration::from_secs(5));
        assert!(matches!(
            &h.events()[..],
            [TsxEvent::Ack {
                invite: Some(_),
                ..
            }]
        ));
        h.tsxs.handle_request(inv, udp_from(), h.t0);
        assert!(
            h.transmits().is_empty(),
            "acknowledged: INVITE retransmissions absorbed"
        );
        h.advance(Duration::from_secs(32));
        assert_eq!(h.events(), vec![TsxEvent::Terminated { tsx }]);
        assert!(h.tsxs.is_empty());
    }

    #[test]
    fn rfc6026_server_2xx_ack_reusing_the_invite_branch_still_matches() {
        // Some UAs send the ACK of a 2xx with the INVITE's branch.
        let mut h = Harness::new();
        let inv = invite_in("z9hG4bKsame");
        h.tsxs.handle_request(inv.clone(), udp_from(), h.t0);
        let tsx = h.new_request();
        assert!(h
            .tsxs
            .send_response(tsx, Response::to(&inv, 200).tagged("d"), h.t0));
        let ack = ack_for_non_2xx(&inv, "d");
        h.tsxs.handle_request(ack.clone(), udp_from(), h.t0);
        assert_eq!(
            h.events(),
            vec![TsxEvent::Ack {
                invite: Some(tsx),
                request: ack
            }]
        );
        assert_eq!(
            h.tsxs.poll_timeout().map(|t| t.2),
            Some(Timer::L),
            "G stopped"
        );
    }

    #[test]
    fn rfc6026_server_timer_l_without_ack_is_an_ack_timeout() {
        let mut h = Harness::new();
        let inv = invite_in("z9hG4bKnoack");
        h.tsxs.handle_request(inv.clone(), udp_from(), h.t0);
        let tsx = h.new_request();
        assert!(h
            .tsxs
            .send_response(tsx, Response::to(&inv, 200).tagged("d"), h.t0));
        h.drive_until(h.t0 + Duration::from_secs(32));
        let ev = h.events();
        assert_eq!(
            ev,
            vec![TsxEvent::AckTimeout { tsx }, TsxEvent::Terminated { tsx }]
        );
        // G: 0.5 1.5 3.5 7.5 11.5 … 31.5 → 4 + 6 = 10 retransmissions.
        assert_eq!(h.tsxs.retransmissions(), 10);
        assert!(!h.tsxs.send_response(tsx, Response::to(&inv, 200), h.t0));
    }

    #[test]
    fn rfc6026_ack_matching_nothing_is_passed_up_without_a_transaction() {
        let mut h = Harness::new();
        let inv = invite_in("z9hG4bKzz");
        let ack = ack_for_2xx(&inv, "unknown", "z9hG4bKlost");
        h.tsxs.handle_request(ack.clone(), udp_from(), h.t0);
        assert_eq!(
            h.events(),
            vec![TsxEvent::Ack {
                invite: None,
                request: ack
            }]
        );
        assert!(h.tsxs.is_empty());
    }

    #[test]
    fn rfc3261_17_2_1_responses_after_a_final_are_refused() {
        let mut h = Harness::new();
        let inv = invite_in("z9hG4bKref");
        h.tsxs.handle_request(inv.clone(), udp_from(), h.t0);
        let tsx = h.new_request();
        assert!(h
            .tsxs
            .send_response(tsx, Response::to(&inv, 200).tagged("d"), h.t0));
        assert!(!h.tsxs.send_response(tsx, Response::to(&inv, 180), h.t0));
        assert!(!h.tsxs.send_response(tsx, Response::to(&inv, 486), h.t0));
        assert!(
            h.tsxs
                .send_response(tsx, Response::to(&inv, 200).tagged("d"), h.t0),
            "2xx again (RFC 6026)"
        );
        let mut bad = Response::to(&inv, 200);
        bad.status = 99;
        assert!(!h.tsxs.send_response(tsx, bad, h.t0));
        assert!(!h
            .tsxs
            .send_response(TsxId(12345), Response::to(&inv, 200), h.t0));
        // A client transaction cannot be responded on.
        let c = h.tsxs.send_request(options_out(), udp_peer(), h.t0);
        assert!(!h.tsxs.send_response(c, Response::to(&inv, 200), h.t0));
    }

    #[test]
    fn rfc3261_17_2_3_rfc2543_invite_ack_and_cancel_match_without_branch() {
        let mut h = Harness::new();
        let mut inv = invite_in("");
        inv.headers.set("Via", "SIP/2.0/UDP 198.51.100.7:5060");
        h.tsxs.handle_request(inv.clone(), udp_from(), h.t0);
        let tsx = h.new_request();
        h.transmits();
        // Retransmission matched.
        h.tsxs.handle_request(inv.clone(), udp_from(), h.t0);
        assert_eq!(parse_response(&h.transmits()[0]).status, 100);
        // CANCEL matched (§9.2 with §17.2.3 legacy rules).
        let mut cancel = cancel_for(&inv);
        cancel.headers.set("Via", "SIP/2.0/UDP 198.51.100.7:5060");
        h.tsxs.handle_request(cancel, udp_from(), h.t0);
        assert_eq!(parse_response(&h.transmits()[0]).status, 200);
        assert_eq!(h.events(), vec![TsxEvent::Cancelled { invite: tsx }]);
        assert!(h
            .tsxs
            .send_response(tsx, Response::to(&inv, 487).tagged("t487"), h.t0));
        h.transmits();
        // An ACK with another To tag is not this transaction's: passed up.
        let mut wrong = ack_for_non_2xx(&inv, "other");
        wrong.headers.set("Via", "SIP/2.0/UDP 198.51.100.7:5060");
        h.tsxs.handle_request(wrong, udp_from(), h.t0);
        assert!(matches!(
            &h.events()[..],
            [TsxEvent::Ack { invite: None, .. }]
        ));
        // The ACK with the 487's To tag confirms.
        let mut ack = ack_for_non_2xx(&inv, "t487");
        ack.headers.set("Via", "SIP/2.0/UDP 198.51.100.7:5060");
        h.tsxs.handle_request(ack, udp_from(), h.t0);
        assert!(h.events().is_empty());
        assert_eq!(h.tsxs.poll_timeout().map(|t| t.2), Some(Timer::I));
    }
}
