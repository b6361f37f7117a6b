//! Non-INVITE server transaction (RFC 3261 §17.2.2) and where server
//! transactions send their responses (§18.2.2, RFC 3581 §4).
//!
//! ```text
//! Trying ──1xx from TU──▶ Proceeding ──200-699 from TU──▶ Completed ──J──▶ Terminated
//!   request: absorbed       request: resend last 1xx        request: resend final
//!   └──200-699 from TU────────────────────────────────────▶ Completed  (J = 64·T1 UDP, 0 TCP)
//! ```

use super::key::{ServerKey, TopVia};
use super::{Ctx, Next, Peer, Timer, TsxEvent};
use crate::ids::TsxId;
use crate::sip::msg::{Request, Response};
use crate::time::Instant;
use bytes::Bytes;
use std::net::{IpAddr, SocketAddr};

/// Where responses to a request go (RFC 3261 §18.2.2 with RFC 3581 §4):
/// over a reliable transport, back on the connection it came on, and if
/// that is gone, to the `received` address and the sent-by port; over UDP,
/// to the `received` address (the packet source) and the `rport` port if
/// the client asked for rport, else the sent-by port (5060 by default).
/// `maddr` is not supported.
pub(crate) fn reply_peer(via: &TopVia<'_>, from: &Peer) -> Peer {
    let ip = via
        .received
        .and_then(|r| {
            r.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .ok()
        })
        .or_else(|| via.host.parse::<IpAddr>().ok())
        .unwrap_or(from.addr.ip());
    let sent_by_port = via.port.unwrap_or(5060);
    if from.transport.is_reliable() {
        return Peer {
            transport: from.transport,
            addr: SocketAddr::new(ip, sent_by_port),
            conn: from.conn,
        };
    }
    let port = match via.rport {
        Some(Some(p)) => p,
        Some(None) => from.addr.port(),
        None => sent_by_port,
    };
    Peer {
        transport: from.transport,
        addr: SocketAddr::new(ip, port),
        conn: None,
    }
}

/// A non-INVITE server transaction.
#[derive(Debug)]
pub(crate) struct Server {
    pub id: TsxId,
    /// The request as received.
    pub request: Request,
    pub key: ServerKey,
    /// The layer's own (a CANCEL it answers): no events.
    pub internal: bool,
    pub reply: Peer,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Nothing sent yet.
    Trying,
    /// A provisional was sent.
    Proceeding { last: Bytes },
    /// The final was sent; Timer J absorbs retransmitted requests.
    Completed { last: Bytes },
}

impl Server {
    /// A new request: enter Trying and pass it up (§17.2.2).
    pub fn start(
        id: TsxId,
        request: Request,
        reply: Peer,
        key: ServerKey,
        internal: bool,
        ctx: &mut Ctx,
    ) -> Server {
        if !internal {
            ctx.event(TsxEvent::Request {
                tsx: id,
                request: request.clone(),
            });
        }
        Server {
            id,
            request,
            key,
            internal,
            reply,
            state: State::Trying,
        }
    }

    /// The request again: re-send the last response, if any.
    pub fn on_retransmission(&mut self, ctx: &mut Ctx) {
        match &self.state {
            State::Trying => {}
            State::Proceeding { last } | State::Completed { last } => {
                ctx.resend(&self.reply, last.clone());
            }
        }
    }

    /// The TU responds; `None` if a final was already sent.
    pub fn respond(&mut self, resp: Response, ctx: &mut Ctx, now: Instant) -> Option<Next> {
        if matches!(self.state, State::Completed { .. }) {
            return None;
        }
        let data = resp.to_bytes();
        ctx.send(&self.reply, data.clone());
        if resp.status < 200 {
            self.state = State::Proceeding { last: data };
            return Some(Next::Stay);
        }
        self.state = State::Completed { last: data };
        if self.reply.transport.is_reliable() {
            // Timer J = 0 on reliable transports.
            return Some(Next::Terminate);
        }
        ctx.arm(self.id, Timer::J, now + ctx.cfg.t1x64());
        Some(Next::Stay)
    }

    /// A timer of this transaction fired.
    pub fn on_timer(&mut self, timer: Timer, _ctx: &mut Ctx) -> Next {
        match (timer, &self.state) {
            (Timer::J, State::Completed { .. }) => Next::Terminate,
            _ => Next::Stay,
        }
    }
}

#[cfg(test)]
mod tests {
    //! RFC 3261 §17.2.2 (non-INVITE server transaction), §9.2 (CANCEL),
    //! §18.2.2 + RFC 3581 (response routing), §17.2.3 (matching).
    use super::super::testkit::*;
    use super::super::*;
    use crate::sip::msg::{Method, SipHeaders};
    use crate::time::Duration;

    #[test]
    fn rfc3261_17_2_2_retransmitted_request_resends_the_final_timer_j() {
        let mut h = Harness::new();
        let req = options_in("z9hG4bKopt1");
        h.tsxs.handle_request(req.clone(), udp_from(), h.t0);
        let tsx = h.new_request();
        // In Trying a retransmission is absorbed.
        h.tsxs.handle_request(req.clone(), udp_from(), h.t0);
        assert!(h.transmits().is_empty());
        assert!(h.events().is_empty());
        assert!(h.tsxs.send_response(tsx, Response::to(&req, 200), h.t0));
        let sent = h.transmits();
        assert_eq!(sent.len(), 1);
        h.tsxs
            .handle_request(req.clone(), udp_from(), h.t0 + Duration::from_secs(1));
        assert_eq!(h.transmits()[0].data, sent[0].data);
        assert!(h.events().is_empty());
        assert!(
            !h.tsxs.send_response(tsx, Response::to(&req, 500), h.t0),
            "one final only"
        );
        assert_eq!(
            h.tsxs.poll_timeout(),
            Some((h.t0 + Duration::from_secs(32), tsx, Timer::J))
        );
        h.advance(Duration::from_secs(32));
        assert_eq!(h.events(), vec![TsxEvent::Terminated { tsx }]);
        assert!(
            !h.tsxs.send_response(tsx, Response::to(&req, 200), h.t0),
            "terminated"
        );
        assert!(h.tsxs.request(tsx).is_none());
    }

    #[test]
    fn rfc3261_17_2_2_proceeding_resends_the_provisional_and_j_is_zero_over_tcp() {
        let mut h = Harness::new();
        let req = options_in("z9hG4bKopt2").tap_via_transport("TCP");
        h.tsxs.handle_request(req.clone(), tcp_from(), h.t0);
        let tsx = h.new_request();
        assert!(h.tsxs.send_response(tsx, Response::to(&req, 183), h.t0));
        let p = h.transmits();
        h.tsxs.handle_request(req.clone(), tcp_from(), h.t0);
        assert_eq!(h.transmits()[0].data, p[0].data);
        assert!(h.tsxs.send_response(tsx, Response::to(&req, 200), h.t0));
        assert_eq!(h.events(), vec![TsxEvent::Terminated { tsx }]);
        assert!(h.tsxs.is_empty());
    }

    #[test]
    fn rfc3261_18_2_2_udp_responses_go_to_received_and_rport() {
        let mut h = Harness::new();
        // Client asked for rport; the packet came from a NAT binding.
        let mut req = options_in("z9hG4bKnat");
        req.headers
            .set("Via", "SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bKnat;rport");
        let src: std::net::SocketAddr = "203.0.113.9:40001".parse().unwrap();
        req.stamp_via(src);
        let from = Peer {
            transport: Transport::Udp,
            addr: src,
            conn: None,
        };
        h.tsxs.handle_request(req.clone(), from, h.t0);
        let tsx = h.new_request();
        assert!(h.tsxs.send_response(tsx, Response::to(&req, 200), h.t0));
        assert_eq!(h.transmits()[0].destination, src);
    }

    #[test]
    fn rfc3261_18_2_2_udp_without_rport_uses_received_and_sent_by_port() {
        let mut h = Harness::new();
        let mut req = options_in("z9hG4bKnorport");
        req.headers
            .set("Via", "SIP/2.0/UDP host.example:5070;branch=z9hG4bKnorport");
        let src: std::net::SocketAddr = "203.0.113.9:40001".parse().unwrap();
        req.stamp_via(src);
        let from = Peer {
            transport: Transport::Udp,
            addr: src,
            conn: None,
        };
        h.tsxs.handle_request(req.clone(), from.clone(), h.t0);
        let tsx = h.new_request();
        assert!(h.tsxs.send_response(tsx, Response::to(&req, 200), h.t0));
        assert_eq!(
            h.transmits()[0].destination,
            "203.0.113.9:5070".parse().unwrap()
        );
        // Default port 5060 when sent-by has none.
        let mut req = options_in("z9hG4bKnoport");
        req.headers
            .set("Via", "SIP/2.0/UDP 203.0.113.9;branch=z9hG4bKnoport");
        h.tsxs.handle_request(req.clone(), from, h.t0);
        let tsx = h.new_request();
        assert!(h.tsxs.send_response(tsx, Response::to(&req, 200), h.t0));
        assert_eq!(
            h.transmits()[0].destination,
            "203.0.113.9:5060".parse().unwrap()
        );
    }

    #[test]
    fn rfc3261_18_2_2_reliable_responses_use_the_connection() {
        let mut h = Harness::new();
        let mut req = options_in("z9hG4bKtcp").tap_via_transport("TCP");
        let from = tcp_from();
        req.stamp_via(from.addr);
        h.tsxs.handle_request(req.clone(), from.clone(), h.t0);
        let tsx = h.new_request();
        assert!(h.tsxs.send_response(tsx, Response::to(&req, 200), h.t0));
        let t = &h.transmits()[0];
        assert_eq!(t.conn, from.conn);
        assert_eq!(t.transport, Transport::Tcp);
        // If the connection is gone: received address, sent-by port.
        assert_eq!(
            t.destination,
            std::net::SocketAddr::new(from.addr.ip(), 5060)
        );
    }

    #[test]
    fn rfc3261_9_2_cancel_gets_200_and_the_invite_is_cancelled() {
        let mut h = Harness::new();
        let inv = invite_in("z9hG4bKinv1");
        h.tsxs.handle_request(inv.clone(), udp_from(), h.t0);
        let invite = h.new_request();
        let mut ringing = Response::to(&inv, 180);
        ringing.set_to_tag("uas1");
        assert!(h.tsxs.send_response(invite, ringing, h.t0));
        h.transmits();
        let cancel = cancel_for(&inv);
        h.tsxs.handle_request(cancel.clone(), udp_from(), h.t0);
        let sent = h.transmits();
        assert_eq!(sent.len(), 1);
        let r = parse_response(&sent[0]);
        assert_eq!(r.status, 200);
        assert_eq!(r.cseq(), Some((1, Method::Cancel)));
        assert_eq!(
            r.to_tag().as_deref(),
            Some("uas1"),
            "same To tag as the INVITE's responses"
        );
        assert_eq!(h.events(), vec![TsxEvent::Cancelled { invite }]);
        // A retransmitted CANCEL gets the same 200 and no second event.
        h.tsxs.handle_request(cancel, udp_from(), h.t0);
        assert_eq!(h.transmits()[0].data, sent[0].data);
        assert!(h.events().is_empty());
        // The TU answers 487.
        assert!(h.tsxs.send_response(invite, Response::to(&inv, 487), h.t0));
        assert_eq!(parse_response(&h.transmits()[0]).status, 487);
    }

    #[test]
    fn rfc3261_9_2_cancel_matching_nothing_gets_481() {
        let mut h = Harness::new();
        let inv = invite_in("z9hG4bKnothere");
        h.tsxs.handle_request(cancel_for(&inv), udp_from(), h.t0);
        let r = parse_response(&h.transmits()[0]);
        assert_eq!(r.status, 481);
        assert!(r.to_tag().is_some());
        assert!(h.events().is_empty());
        assert_eq!(
            h.tsxs.len(),
            1,
            "the CANCEL's own transaction absorbs retransmissions"
        );
        h.advance(Duration::from_secs(32));
        assert!(h.events().is_empty(), "internal transactions are silent");
        assert!(h.tsxs.is_empty());
    }

    #[test]
    fn rfc3261_9_2_cancel_after_the_final_gets_200_without_effect() {
        let mut h = Harness::new();
        let inv = invite_in("z9hG4bKlate");
        h.tsxs.handle_request(inv.clone(), udp_from(), h.t0);
        let invite = h.new_request();
        let mut ok = Response::to(&inv, 200);
        ok.set_to_tag("ans");
        assert!(h.tsxs.send_response(invite, ok, h.t0));
        h.transmits();
        h.tsxs.handle_request(cancel_for(&inv), udp_from(), h.t0);
        let r = parse_response(&h.transmits()[0]);
        assert_eq!(r.status, 200);
        assert!(h.events().is_empty());
    }

    #[test]
    fn rfc3261_17_2_3_rfc2543_requests_match_without_magic_cookie() {
        let mut h = Harness::new();
        let mut req = options_in("");
        req.headers.set("Via", "SIP/2.0/UDP 198.51.100.7:5060");
        h.tsxs.handle_request(req.clone(), udp_from(), h.t0);
        let tsx = h.new_request();
        assert!(h.tsxs.send_response(tsx, Response::to(&req, 200), h.t0));
        h.transmits();
        // The same request again: a retransmission.
        h.tsxs.handle_request(req.clone(), udp_from(), h.t0);
        assert_eq!(h.transmits().len(), 1);
        assert!(h.events().is_empty());
        // A different CSeq is a new transaction.
        let mut next = req.clone();
        next.headers.set("CSeq", "2 OPTIONS");
        h.tsxs.handle_request(next, udp_from(), h.t0);
        assert_ne!(h.new_request(), tsx);
        // A different branchless Via (another hop) too.
        let mut other = req.clone();
        other.headers.set("Via", "SIP/2.0/UDP 198.51.100.8:5060");
        h.tsxs.handle_request(other, udp_from(), h.t0);
        assert_eq!(h.events().len(), 1);
    }

    #[test]
    fn rfc3261_17_2_3_same_branch_other_sent_by_is_another_transaction() {
        let mut h = Harness::new();
        let req = options_in("z9hG4bKdup");
        h.tsxs.handle_request(req.clone(), udp_from(), h.t0);
        let mut other = req.clone();
        other
            .headers
            .set("Via", "SIP/2.0/UDP 198.51.100.99:5060;branch=z9hG4bKdup");
        h.tsxs.handle_request(other, udp_from(), h.t0);
        assert_eq!(h.events().len(), 2);
    }

    #[test]
    fn malformed_requests_are_dropped_and_counted() {
        let mut h = Harness::new();
        let mut no_via = options_in("z9hG4bKx");
        no_via.headers.remove(Hdr::Via);
        h.tsxs.handle_request(no_via, udp_from(), h.t0);
        let mut bad_cseq = options_in("z9hG4bKy");
        bad_cseq.headers.set("CSeq", "1 INVITE");
        h.tsxs.handle_request(bad_cseq, udp_from(), h.t0);
        let mut garbage_via = options_in("z9hG4bKz");
        garbage_via.headers.set("Via", "garbage");
        h.tsxs.handle_request(garbage_via, udp_from(), h.t0);
        let mut legacy_no_call_id = options_in("");
        legacy_no_call_id
            .headers
            .set("Via", "SIP/2.0/UDP 198.51.100.7");
        legacy_no_call_id.headers.remove(Hdr::CallId);
        h.tsxs.handle_request(legacy_no_call_id, udp_from(), h.t0);
        assert_eq!(h.tsxs.malformed_requests(), 4);
        assert!(h.events().is_empty());
        assert!(h.transmits().is_empty());
        assert!(h.tsxs.is_empty());
    }
}
