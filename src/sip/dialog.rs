//! Dialogs (RFC 3261 §12): the state one side of a call keeps so that
//! later requests reach the same peer in the same conversation.
//!
//! The B2BUA keeps two dialogs per call: a UAS dialog toward the caller
//! (built from the received INVITE, §12.1.1) and a UAC dialog toward the
//! callee (built from our INVITE and its 2xx, §12.1.2). They share nothing:
//! separate Call-IDs, tags and CSeq spaces.

use crate::sip::msg::{split_list, Hdr, Method, NameAddr, Request, Response, SipHeaders};
use crate::sip::transaction::Peer;

/// One side's dialog state.
#[derive(Debug, Clone)]
pub struct Dialog {
    /// Call-ID of this leg.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
    /// Our From/To header value (with our tag) for requests we send.
    pub local_header: String,
    /// The peer's From/To header value (with its tag).
    pub remote_header: String,
    /// Our last CSeq number for requests we sent.
    pub local_cseq: u32,
    /// The highest CSeq number seen from the peer.
    pub remote_cseq: Option<u32>,
    /// The peer's Contact URI (Request-URI of our in-dialog requests).
    pub remote_target: String,
    /// Route set (RFC 3261 §12.1), in the order we put it in Route headers.
    pub route_set: Vec<String>,
    /// Where in-dialog requests are sent. A B2BUA toward carriers sends to
    /// the address the dialog was learned from (NAT and SBCs make the
    /// Contact host unreachable), not to a DNS lookup of the Contact.
    pub peer: Peer,
}

/// Why a dialog could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    /// A header the dialog needs is missing or malformed.
    #[error("missing or malformed {0}")]
    Missing(&'static str),
}

fn contact_uri(msg: &impl SipHeaders) -> Option<String> {
    let c = msg.headers().get(Hdr::Contact)?;
    let first = split_list(c).next()?;
    NameAddr::parse(first).ok().map(|n| n.uri)
}

impl Dialog {
    /// UAS side (RFC 3261 §12.1.1): from a received INVITE and the tag we
    /// put in our response.
    pub fn uas(req: &Request, local_tag: &str, peer: Peer) -> Result<Dialog, DialogError> {
        let call_id = req.call_id().ok_or(DialogError::Missing("Call-ID"))?;
        let from = req
            .headers
            .get(Hdr::From)
            .ok_or(DialogError::Missing("From"))?;
        let to = req.headers.get(Hdr::To).ok_or(DialogError::Missing("To"))?;
        let remote_tag = req.from_tag().unwrap_or_default();
        let (cseq, _) = req.cseq().ok_or(DialogError::Missing("CSeq"))?;
        let remote_target = contact_uri(req).ok_or(DialogError::Missing("Contact"))?;
        // §12.1.1: the route set is the Record-Route list, in order.
        let route_set = req
            .headers
            .elements(Hdr::RecordRoute)
            .into_iter()
            .map(str::to_string)
            .collect();
        Ok(Dialog {
            call_id: call_id.to_string(),
            local_tag: local_tag.to_string(),
            remote_tag,
            local_header: format!("{to};tag={local_tag}"),
            remote_header: from.to_string(),
            local_cseq: 0,
            remote_cseq: Some(cseq),
            remote_target,
            route_set,
            peer,
        })
    }

    /// UAC side (RFC 3261 §12.1.2): from the INVITE we sent and a 2xx (or
    /// a 1xx with a To tag).
    pub fn uac(req: &Request, resp: &Response, peer: Peer) -> Result<Dialog, DialogError> {
        let call_id = req.call_id().ok_or(DialogError::Missing("Call-ID"))?;
        let from = req
            .headers
            .get(Hdr::From)
            .ok_or(DialogError::Missing("From"))?;
        let to = resp
            .headers
            .get(Hdr::To)
            .ok_or(DialogError::Missing("To"))?;
        let local_tag = req.from_tag().ok_or(DialogError::Missing("From tag"))?;
        let remote_tag = resp.to_tag().unwrap_or_default();
        let (cseq, _) = req.cseq().ok_or(DialogError::Missing("CSeq"))?;
        let remote_target = contact_uri(resp).ok_or(DialogError::Missing("Contact"))?;
        // §12.1.2: the route set is the Record-Route list, reversed.
        let mut route_set: Vec<String> = resp
            .headers
            .elements(Hdr::RecordRoute)
            .into_iter()
            .map(str::to_string)
            .collect();
        route_set.reverse();
        Ok(Dialog {
            call_id: call_id.to_string(),
            local_tag,
            remote_tag,
            local_header: from.to_string(),
            remote_header: to.to_string(),
            local_cseq: cseq,
            remote_cseq: None,
            remote_target,
            route_set,
            peer,
        })
    }

    /// A new in-dialog request (RFC 3261 §12.2.1.1). CSeq advances except
    /// for ACK and CANCEL, which reuse the INVITE's number (pass it in
    /// `cseq_override`).
    pub fn request(
        &mut self,
        method: Method,
        contact: &str,
        cseq_override: Option<u32>,
    ) -> Request {
        let cseq = match cseq_override {
            Some(n) => n,
            None => {
                self.local_cseq = self.local_cseq.wrapping_add(1);
                self.local_cseq
            }
        };
        let mut r = Request::new(method.clone(), self.remote_target.clone());
        let h = &mut r.headers;
        for route in &self.route_set {
            h.push("Route", route.clone());
        }
        h.push("Max-Forwards", "70");
        h.push("From", self.local_header.clone());
        h.push("To", self.remote_header.clone());
        h.push("Call-ID", self.call_id.clone());
        h.push("CSeq", format!("{cseq} {method}"));
        if matches!(
            method,
            Method::Invite | Method::Update | Method::Refer | Method::Notify
        ) {
            h.push("Contact", contact.to_string());
        }
        r
    }

    /// Check an in-dialog request's CSeq (RFC 3261 §12.2.2): lower than the
    /// last one is out of order (answer 500). ACK and CANCEL carry the
    /// INVITE's number and are not checked.
    pub fn accept_remote_cseq(&mut self, req: &Request) -> bool {
        let Some((n, m)) = req.cseq() else {
            return false;
        };
        if matches!(m, Method::Ack | Method::Cancel) {
            return true;
        }
        match self.remote_cseq {
            Some(last) if n <= last => false,
            _ => {
                self.remote_cseq = Some(n);
                true
            }
        }
    }

    /// Refresh the remote target from a target-refresh request or its 2xx
    /// (RFC 3261 §12.2.1.2, §12.2.2).
    pub fn refresh_target(&mut self, msg: &impl SipHeaders) {
        if let Some(uri) = contact_uri(msg) {
            self.remote_target = uri;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::msg::{parse, Message};
    use crate::sip::transport::Transport;

    fn peer() -> Peer {
        Peer {
            transport: Transport::Udp,
            addr: "10.0.0.1:5060".parse().unwrap(),
            conn: None,
        }
    }

    fn req(s: &str) -> Request {
        match parse(s.as_bytes()).unwrap().message {
            Message::Request(r) => r,
            _ => panic!(),
        }
    }

    const INV: &str =
        "INVITE sip:12345@gw SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
Record-Route: <sip:p1;lr>, <sip:p2;lr>\r\nFrom: <sip:138@c>;tag=ft\r\nTo: <sip:12345@gw>\r\n\
Call-ID: cid\r\nCSeq: 7 INVITE\r\nContact: <sip:138@10.0.0.1:5060>\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn uas_dialog_and_bye_follow_rfc3261_12() {
        let r = req(INV);
        let mut d = Dialog::uas(&r, "lt", peer()).unwrap();
        assert_eq!(d.remote_tag, "ft");
        assert_eq!(d.remote_cseq, Some(7));
        assert_eq!(d.route_set, vec!["<sip:p1;lr>", "<sip:p2;lr>"]);
        let bye = d.request(Method::Bye, "<sip:gw>", None);
        assert_eq!(bye.uri, "sip:138@10.0.0.1:5060");
        assert_eq!(bye.from_tag().as_deref(), Some("lt"));
        assert_eq!(bye.to_tag().as_deref(), Some("ft"));
        assert_eq!(bye.cseq(), Some((1, Method::Bye)));
        let routes: Vec<_> = bye.headers.all(Hdr::Route).collect();
        assert_eq!(routes, vec!["<sip:p1;lr>", "<sip:p2;lr>"]);
    }

    #[test]
    fn remote_cseq_must_increase() {
        let r = req(INV);
        let mut d = Dialog::uas(&r, "lt", peer()).unwrap();
        let bye = req(&INV
            .replace("CSeq: 7 INVITE", "CSeq: 7 BYE")
            .replace("INVITE sip", "BYE sip"));
        assert!(!d.accept_remote_cseq(&bye));
        let bye8 = req(&INV
            .replace("CSeq: 7 INVITE", "CSeq: 8 BYE")
            .replace("INVITE sip", "BYE sip"));
        assert!(d.accept_remote_cseq(&bye8));
    }
}
