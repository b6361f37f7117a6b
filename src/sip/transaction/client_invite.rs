//! INVITE client transaction: RFC 3261 §17.1.1 with the Accepted state of
//! RFC 6026, plus CANCEL construction (§9.1) and the ACK of a non-2xx
//! (§17.1.1.3).
//!
//! ```text
//! Calling ──1xx──▶ Proceeding ──300-699──▶ Completed (ACK; D) ──D──▶ Terminated
//!    │  A: resend       │  1xx                 300-699: resend ACK
//!    │  B: Timeout      └──2xx──▶ Accepted (M) ──M──▶ Terminated
//!    └──2xx / 300-699 as from Proceeding         2xx again: resend the TU's ACK
//! ```

use super::key::{self, first_element, ClientKey};
use super::{Ctx, Next, Peer, Timer, TsxEvent};
use crate::ids::TsxId;
use crate::sip::msg::{Hdr, Method, Request, Response, SipHeaders};
use crate::time::{Duration, Instant};
use bytes::Bytes;

/// An INVITE client transaction.
#[derive(Debug)]
pub(crate) struct ClientInvite {
    pub id: TsxId,
    /// The INVITE as sent (with our Via).
    pub request: Request,
    /// Our branch (also the CANCEL's).
    pub branch: String,
    pub key: ClientKey,
    /// Where the INVITE went.
    pub peer: Peer,
    state: State,
    cancel: Cancel,
}

#[derive(Debug)]
enum State {
    /// Waiting for any response; Timer A retransmits `data` (UDP), B runs.
    Calling { data: Bytes, a: Duration },
    /// A provisional arrived.
    Proceeding,
    /// A non-2xx final arrived and was ACKed; Timer D absorbs retransmissions.
    Completed { ack: Bytes },
    /// One or more 2xx arrived (RFC 6026); Timer M.
    Accepted { answers: Vec<Answer> },
}

/// One 2xx (one dialog, by To tag) and the TU's ACK for it.
#[derive(Debug)]
struct Answer {
    to_tag: String,
    ack: Option<(Bytes, Peer)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cancel {
    NotRequested,
    /// Requested before any provisional (§9.1: wait for one).
    Deferred,
    Sent,
}

/// What [`ClientInvite::request_cancel`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelRequest {
    /// A final response was received: too late.
    Refused,
    /// No provisional yet: sent when one arrives.
    Deferred,
    /// Already deferred or sent.
    AlreadyRequested,
    /// Send the CANCEL now.
    SendNow,
}

impl ClientInvite {
    /// Send the INVITE and enter Calling (§17.1.1.2).
    pub fn start(
        id: TsxId,
        request: Request,
        branch: String,
        key: ClientKey,
        peer: Peer,
        ctx: &mut Ctx,
        now: Instant,
    ) -> ClientInvite {
        let data = request.to_bytes();
        ctx.send(&peer, data.clone());
        if !peer.transport.is_reliable() {
            ctx.arm(id, Timer::A, now + ctx.cfg.t1);
        }
        ctx.arm(id, Timer::B, now + ctx.cfg.t1x64());
        ClientInvite {
            id,
            request,
            branch,
            key,
            peer,
            state: State::Calling {
                data,
                a: ctx.cfg.t1,
            },
            cancel: Cancel::NotRequested,
        }
    }

    /// A response matched to this transaction.
    pub fn on_response(&mut self, resp: Response, ctx: &mut Ctx, now: Instant) -> Next {
        let id = self.id;
        match &mut self.state {
            State::Calling { .. } | State::Proceeding => match resp.status {
                100..=199 => {
                    if matches!(self.state, State::Calling { .. }) {
                        ctx.disarm(id, Timer::A);
                        ctx.disarm(id, Timer::B);
                        self.state = State::Proceeding;
                    }
                    ctx.event(TsxEvent::Response {
                        tsx: id,
                        response: resp,
                    });
                    if self.cancel == Cancel::Deferred {
                        self.cancel = Cancel::Sent;
                        return Next::SendCancel;
                    }
                    Next::Stay
                }
                200..=299 => {
                    ctx.disarm(id, Timer::A);
                    ctx.disarm(id, Timer::B);
                    let to_tag = key::header_tag(&resp.headers, Hdr::To)
                        .unwrap_or("")
                        .to_owned();
                    self.state = State::Accepted {
                        answers: vec![Answer { to_tag, ack: None }],
                    };
                    ctx.arm(id, Timer::M, now + ctx.cfg.t1x64());
                    ctx.event(TsxEvent::Response {
                        tsx: id,
                        response: resp,
                    });
                    Next::Stay
                }
                _ => {
                    ctx.disarm(id, Timer::A);
                    ctx.disarm(id, Timer::B);
                    let ack = build_ack(&self.request, &resp).to_bytes();
                    ctx.send(&self.peer, ack.clone());
                    ctx.event(TsxEvent::Response {
                        tsx: id,
                        response: resp,
                    });
                    if self.peer.transport.is_reliable() {
                        // Timer D = 0 on reliable transports.
                        return Next::Terminate;
                    }
                    self.state = State::Completed { ack };
                    ctx.arm(id, Timer::D, now + super::timer::TIMER_D_UDP);
                    Next::Stay
                }
            },
            State::Completed { ack } => {
                // §17.1.1.2: a retransmitted final is ACKed again, not passed up.
                if resp.status >= 300 {
                    ctx.resend(&self.peer, ack.clone());
                }
                Next::Stay
            }
            State::Accepted { answers } => {
                if !(200..=299).contains(&resp.status) {
                    return Next::Stay;
                }
                let to_tag = key::header_tag(&resp.headers, Hdr::To).unwrap_or("");
                match answers.iter().find(|a| a.to_tag == to_tag) {
                    // A retransmitted 2xx: answered with the TU's ACK.
                    Some(a) => {
                        if let Some((data, to)) = &a.ack {
                            ctx.resend(to, data.clone());
                        }
                    }
                    // Another branch of a fork answered: a new dialog.
                    None => {
                        answers.push(Answer {
                            to_tag: to_tag.to_owned(),
                            ack: None,
                        });
                        ctx.event(TsxEvent::Response {
                            tsx: id,
                            response: resp,
                        });
                    }
                }
                Next::Stay
            }
        }
    }

    /// A timer of this transaction fired.
    pub fn on_timer(&mut self, timer: Timer, ctx: &mut Ctx, now: Instant) -> Next {
        match (timer, &mut self.state) {
            (Timer::A, State::Calling { data, a }) => {
                ctx.resend(&self.peer, data.clone());
                *a = a.saturating_mul(2);
                ctx.arm(self.id, Timer::A, now + *a);
                Next::Stay
            }
            (Timer::B, State::Calling { .. } | State::Proceeding) => {
                ctx.event(TsxEvent::Timeout { tsx: self.id });
                Next::Terminate
            }
            (Timer::D, State::Completed { .. }) | (Timer::M, State::Accepted { .. }) => {
                Next::Terminate
            }
            _ => Next::Stay,
        }
    }

    /// The TU asks to CANCEL (§9.1).
    pub fn request_cancel(&mut self) -> CancelRequest {
        match (&self.state, self.cancel) {
            (State::Completed { .. } | State::Accepted { .. }, _) => CancelRequest::Refused,
            (_, Cancel::Deferred | Cancel::Sent) => CancelRequest::AlreadyRequested,
            (State::Calling { .. }, Cancel::NotRequested) => {
                self.cancel = Cancel::Deferred;
                CancelRequest::Deferred
            }
            (State::Proceeding, Cancel::NotRequested) => {
                self.cancel = Cancel::Sent;
                CancelRequest::SendNow
            }
        }
    }

    /// Keep the TU's ACK for the 2xx with this To tag (Accepted only).
    pub fn store_ack(&mut self, to_tag: &str, data: Bytes, to: Peer) {
        if let State::Accepted { answers } = &mut self.state {
            match answers.iter_mut().find(|a| a.to_tag == to_tag) {
                Some(a) => a.ack = Some((data, to)),
                None => answers.push(Answer {
                    to_tag: to_tag.to_owned(),
                    ack: Some((data, to)),
                }),
            }
        }
    }

    /// The CANCEL for this INVITE (RFC 3261 §9.1): same Request-URI,
    /// Call-ID, From, To, CSeq number and top Via (so the same branch);
    /// Route copied; Max-Forwards 70.
    pub fn build_cancel(&self) -> Request {
        build_like(
            &self.request,
            Method::Cancel,
            self.request.headers.get(Hdr::To),
        )
    }
}

/// The ACK of a non-2xx final (RFC 3261 §17.1.1.3): Request-URI, Call-ID,
/// From, CSeq number and the single top Via of the INVITE, the To of the
/// response (with its tag), the INVITE's Route headers.
pub(crate) fn build_ack(invite: &Request, resp: &Response) -> Request {
    build_like(invite, Method::Ack, resp.headers.get(Hdr::To))
}

fn build_like(invite: &Request, method: Method, to: Option<&str>) -> Request {
    let mut r = Request::new(method.clone(), invite.uri.clone());
    let h = &invite.headers;
    if let Some(via) = h.get(Hdr::Via) {
        r.headers.push("Via", first_element(via).trim());
    }
    r.headers.push("Max-Forwards", "70");
    if let Some(from) = h.get(Hdr::From) {
        r.headers.push("From", from);
    }
    if let Some(to) = to {
        r.headers.push("To", to);
    }
    if let Some(c) = h.get(Hdr::CallId) {
        r.headers.push("Call-ID", c);
    }
    let n = invite.cseq().map(|c| c.0).unwrap_or(0);
    r.headers.push("CSeq", format!("{n} {method}"));
    r.headers.copy_from(h, Hdr::Route);
    r
}

#[cfg(test)]
mod tests {
    //! RFC 3261 §17.1.1 (INVITE client transaction), RFC 6026
    //! (Accepted), §9.1 (CANCEL).
    use super::super::testkit::*;
    use super::super::*;
    use crate::sip::msg::{Method, SipHeaders};
    use crate::time::Duration;

    #[test]
    fn rfc3261_17_1_1_2_timer_a_doubles_until_timer_b_times_out_over_udp() {
        let mut h = Harness::new();
        let tsx = h.tsxs.send_request(invite_out(), udp_peer(), h.t0);
        let sent = h.transmits();
        assert_eq!(sent.len(), 1);
        let via = top_via_of(&sent[0]);
        assert!(
            via.starts_with("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK"),
            "{via}"
        );
        assert!(via.ends_with(";rport"));
        // A fires at T1, 3T1, 7T1, 15T1, 31T1, 63T1; B at 64T1.
        let mut fired = Vec::new();
        while let Some((at, id, timer)) = h.tsxs.poll_timeout() {
            assert_eq!(id, tsx);
            h.tsxs.handle_timeout(at);
            fired.push(((at - h.t0).as_millis(), timer, h.transmits().len()));
        }
        let a: Vec<_> = [500, 1500, 3500, 7500, 15500, 31500]
            .iter()
            .map(|&ms| (ms, Timer::A, 1))
            .collect();
        assert_eq!(&fired[..6], &a[..]);
        assert_eq!(fired[6], (32000, Timer::B, 0));
        assert_eq!(
            h.events(),
            vec![TsxEvent::Timeout { tsx }, TsxEvent::Terminated { tsx }]
        );
        assert_eq!(h.tsxs.retransmissions(), 6);
        assert!(h.tsxs.is_empty());
    }

    #[test]
    fn rfc3261_17_1_1_2_no_retransmission_over_tcp() {
        let mut h = Harness::new();
        let tsx = h.tsxs.send_request(invite_out(), tcp_peer(), h.t0);
        let sent = h.transmits();
        assert_eq!(sent[0].conn, tcp_peer().conn);
        assert!(top_via_of(&sent[0]).starts_with("SIP/2.0/TCP "));
        assert_eq!(h.tsxs.poll_timeout().map(|t| t.2), Some(Timer::B));
        h.advance(Duration::from_secs(32));
        assert!(h.transmits().is_empty());
        assert_eq!(h.events()[0], TsxEvent::Timeout { tsx });
    }

    #[test]
    fn rfc3261_17_1_1_2_provisional_stops_timer_a_and_b() {
        let mut h = Harness::new();
        let tsx = h.tsxs.send_request(invite_out(), udp_peer(), h.t0);
        let req = h.sent_request();
        h.tsxs
            .handle_response(resp_for(&req, 180, Some("uas")), udp_peer(), h.t0);
        assert!(
            matches!(&h.events()[..], [TsxEvent::Response { tsx: t, response }] if *t == tsx && response.status == 180)
        );
        assert_eq!(h.tsxs.poll_timeout(), None);
        // Every 1xx is passed up.
        h.tsxs
            .handle_response(resp_for(&req, 183, Some("uas")), udp_peer(), h.t0);
        assert_eq!(h.events().len(), 1);
    }

    #[test]
    fn rfc3261_17_1_1_3_non_2xx_is_acked_by_the_layer_and_retransmissions_reacked_timer_d() {
        let mut h = Harness::new();
        let tsx = h.tsxs.send_request(invite_with_route(), udp_peer(), h.t0);
        let req = h.sent_request();
        h.tsxs
            .handle_response(resp_for(&req, 100, None), udp_peer(), h.t0);
        h.tsxs
            .handle_response(resp_for(&req, 486, Some("busy")), udp_peer(), h.t0);
        let sent = h.transmits();
        assert_eq!(sent.len(), 1);
        let ack = parse_request(&sent[0]);
        assert_eq!(ack.method, Method::Ack);
        assert_eq!(ack.uri, req.uri);
        assert_eq!(ack.headers.count(Hdr::Via), 1);
        assert_eq!(ack.headers.get(Hdr::Via), req.headers.get(Hdr::Via));
        assert_eq!(ack.to_tag().as_deref(), Some("busy"));
        assert_eq!(ack.from_tag(), req.from_tag());
        assert_eq!(ack.call_id(), req.call_id());
        assert_eq!(ack.cseq(), Some((req.cseq().unwrap().0, Method::Ack)));
        assert_eq!(
            ack.headers.all(Hdr::Route).collect::<Vec<_>>(),
            req.headers.all(Hdr::Route).collect::<Vec<_>>()
        );
        let ev = h.events();
        assert_eq!(ev.len(), 2);
        assert!(matches!(&ev[1], TsxEvent::Response { response, .. } if response.status == 486));
        // The retransmitted final: ACK again, nothing passed up.
        h.tsxs
            .handle_response(resp_for(&req, 486, Some("busy")), udp_peer(), h.t0);
        assert_eq!(h.transmits()[0].data, sent[0].data);
        assert!(h.events().is_empty());
        assert_eq!(
            h.tsxs.poll_timeout(),
            Some((h.t0 + Duration::from_secs(32), tsx, Timer::D))
        );
        h.advance(Duration::from_secs(32));
        assert_eq!(h.events(), vec![TsxEvent::Terminated { tsx }]);
    }

    #[test]
    fn rfc3261_17_1_1_2_timer_d_is_zero_over_tcp() {
        let mut h = Harness::new();
        let tsx = h.tsxs.send_request(invite_out(), tcp_peer(), h.t0);
        let req = h.sent_request();
        h.tsxs
            .handle_response(resp_for(&req, 603, Some("x")), tcp_peer(), h.t0);
        assert_eq!(h.transmits().len(), 1); // the ACK
        let ev = h.events();
        assert_eq!(ev.last(), Some(&TsxEvent::Terminated { tsx }));
        assert!(h.tsxs.is_empty());
    }

    #[test]
    fn rfc6026_client_2xx_enters_accepted_retransmitted_2xx_gets_stored_ack_timer_m() {
        let mut h = Harness::new();
        let tsx = h.tsxs.send_request(invite_out(), udp_peer(), h.t0);
        let req = h.sent_request();
        let ok = resp_for(&req, 200, Some("dlg1"));
        h.tsxs.handle_response(ok.clone(), udp_peer(), h.t0);
        assert!(
            matches!(&h.events()[..], [TsxEvent::Response { response, .. }] if response.status == 200)
        );
        assert!(
            h.transmits().is_empty(),
            "the layer does not ACK a 2xx by itself"
        );
        assert_eq!(
            h.tsxs.poll_timeout(),
            Some((h.t0 + Duration::from_secs(32), tsx, Timer::M))
        );
        let mut ack = Request::new(Method::Ack, "sip:callee@198.51.100.7");
        ack.headers
            .push("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKack1");
        ack.headers.push("To", "<sip:callee@example.net>;tag=dlg1");
        h.tsxs.send_ack(tsx, ack.clone(), h.t0);
        let first = h.transmits();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].destination, udp_peer().addr);
        // The 2xx again: the stored ACK, not passed up.
        h.tsxs
            .handle_response(ok.clone(), udp_peer(), h.t0 + Duration::from_millis(500));
        assert_eq!(h.transmits()[0].data, first[0].data);
        assert!(h.events().is_empty());
        assert_eq!(h.tsxs.retransmissions(), 1);
        // A fork's second 2xx is a new dialog: passed up once.
        let ok2 = resp_for(&req, 200, Some("dlg2"));
        h.tsxs.handle_response(ok2.clone(), udp_peer(), h.t0);
        h.tsxs.handle_response(ok2, udp_peer(), h.t0);
        assert_eq!(h.events().len(), 1);
        h.advance(Duration::from_secs(32));
        assert_eq!(h.events(), vec![TsxEvent::Terminated { tsx }]);
        // After M, the 2xx is stray.
        h.tsxs.handle_response(ok, udp_peer(), h.t0);
        assert_eq!(h.tsxs.stray_responses(), 1);
    }

    #[test]
    fn rfc6026_ack_without_via_gets_ours() {
        let mut h = Harness::new();
        let tsx = h.tsxs.send_request(invite_out(), udp_peer(), h.t0);
        let req = h.sent_request();
        h.tsxs
            .handle_response(resp_for(&req, 200, Some("d")), udp_peer(), h.t0);
        let mut ack = Request::new(Method::Ack, "sip:callee@198.51.100.7");
        ack.headers.push("To", "<sip:callee@example.net>;tag=d");
        h.tsxs.send_ack(tsx, ack, h.t0);
        let a = parse_request(&h.transmits()[0]);
        let via = a.top_via().unwrap().unwrap();
        let branch = via.rfc3261_branch().unwrap().to_owned();
        assert_ne!(
            Some(branch.as_str()),
            req.top_via().unwrap().unwrap().branch.as_deref()
        );
    }

    #[test]
    fn rfc3261_9_1_cancel_is_deferred_until_a_provisional() {
        let mut h = Harness::new();
        let tsx = h.tsxs.send_request(invite_with_route(), udp_peer(), h.t0);
        let req = h.sent_request();
        assert!(h.tsxs.cancel(tsx, h.t0));
        assert!(h.transmits().is_empty(), "no CANCEL before a provisional");
        assert!(h.tsxs.cancel(tsx, h.t0), "repeating is harmless");
        h.tsxs
            .handle_response(resp_for(&req, 180, Some("r")), udp_peer(), h.t0);
        let sent = h.transmits();
        assert_eq!(sent.len(), 1);
        let c = parse_request(&sent[0]);
        assert_eq!(c.method, Method::Cancel);
        assert_eq!(c.uri, req.uri);
        assert_eq!(c.headers.get(Hdr::Via), req.headers.get(Hdr::Via));
        assert_eq!(c.headers.count(Hdr::Via), 1);
        assert_eq!(c.headers.get(Hdr::To), req.headers.get(Hdr::To));
        assert_eq!(c.headers.get(Hdr::From), req.headers.get(Hdr::From));
        assert_eq!(c.call_id(), req.call_id());
        assert_eq!(c.cseq(), Some((req.cseq().unwrap().0, Method::Cancel)));
        assert_eq!(c.headers.get(Hdr::MaxForwards), Some("70"));
        assert_eq!(c.headers.count(Hdr::Route), 2);
        assert_eq!(sent[0].destination, udp_peer().addr);
        assert_eq!(h.tsxs.len(), 2);
        // The CANCEL is the layer's own: its 200 produces no event.
        h.tsxs
            .handle_response(resp_for(&c, 200, Some("r")), udp_peer(), h.t0);
        let ev = h.events();
        assert!(matches!(&ev[..], [TsxEvent::Response { response, .. }] if response.status == 180));
        // The 487 on the INVITE: ACKed, passed up.
        h.tsxs
            .handle_response(resp_for(&req, 487, Some("r")), udp_peer(), h.t0);
        assert!(
            matches!(&h.events()[..], [TsxEvent::Response { tsx: t, response }] if *t == tsx && response.status == 487)
        );
        assert_eq!(parse_request(&h.transmits()[0]).method, Method::Ack);
        assert!(!h.tsxs.cancel(tsx, h.t0), "final already received");
    }

    #[test]
    fn rfc3261_9_1_cancel_in_proceeding_goes_at_once_and_timer_b_bounds_the_wait() {
        let mut h = Harness::new();
        let tsx = h.tsxs.send_request(invite_out(), udp_peer(), h.t0);
        let req = h.sent_request();
        h.tsxs
            .handle_response(resp_for(&req, 100, None), udp_peer(), h.t0);
        h.events();
        let t1 = h.t0 + Duration::from_secs(10);
        assert!(h.tsxs.cancel(tsx, t1));
        assert_eq!(parse_request(&h.transmits()[0]).method, Method::Cancel);
        // The UAS never answers the INVITE: 64·T1 after the CANCEL it is over.
        h.drive_until(t1 + Duration::from_secs(32));
        let ev = h.events();
        assert!(ev.contains(&TsxEvent::Timeout { tsx }));
        assert!(ev.contains(&TsxEvent::Terminated { tsx }));
        assert!(h.tsxs.is_empty());
    }

    #[test]
    fn rfc3261_9_1_deferred_cancel_is_dropped_when_a_final_arrives_first() {
        let mut h = Harness::new();
        let tsx = h.tsxs.send_request(invite_out(), udp_peer(), h.t0);
        let req = h.sent_request();
        assert!(h.tsxs.cancel(tsx, h.t0));
        h.tsxs
            .handle_response(resp_for(&req, 200, Some("x")), udp_peer(), h.t0);
        assert!(h.transmits().is_empty());
        assert_eq!(h.tsxs.len(), 1);
        assert!(!h.tsxs.cancel(tsx, h.t0));
        assert!(!h.tsxs.cancel(TsxId(999), h.t0), "unknown transaction");
    }

    #[test]
    fn rfc3261_17_1_3_response_matching_needs_branch_and_cseq_method() {
        let mut h = Harness::new();
        let _ = h.tsxs.send_request(invite_out(), udp_peer(), h.t0);
        let req = h.sent_request();
        let mut wrong_method = resp_for(&req, 180, None);
        wrong_method.headers.set("CSeq", "1 BYE");
        h.tsxs.handle_response(wrong_method, udp_peer(), h.t0);
        let mut wrong_branch = resp_for(&req, 180, None);
        wrong_branch
            .headers
            .set("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKother");
        h.tsxs.handle_response(wrong_branch, udp_peer(), h.t0);
        // §18.1.2: a top Via that is not ours is discarded.
        let mut not_ours = resp_for(&req, 180, None);
        let v = not_ours
            .headers
            .get(Hdr::Via)
            .unwrap()
            .replace("192.0.2.10", "192.0.2.99");
        not_ours.headers.set("Via", v);
        h.tsxs.handle_response(not_ours, udp_peer(), h.t0);
        let mut no_via = resp_for(&req, 180, None);
        no_via.headers.remove(Hdr::Via);
        h.tsxs.handle_response(no_via, udp_peer(), h.t0);
        assert_eq!(h.tsxs.stray_responses(), 4);
        assert!(h.events().is_empty());
    }
}
