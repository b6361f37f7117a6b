//! Test helpers: a layer in virtual time and canned messages.

use super::*;
use crate::sip::msg::{parse, Message};
use crate::time::Duration;

/// A layer with a fixed base instant; time moves only when a test says so.
pub(crate) struct Harness {
    pub tsxs: Transactions,
    pub t0: Instant,
}

impl Harness {
    pub fn new() -> Harness {
        Harness {
            tsxs: Transactions::new(
                TimerConfig::default(),
                LocalVia {
                    host: "192.0.2.10".into(),
                    port: 5060,
                },
                42,
            ),
            t0: crate::time::now(),
        }
    }

    /// Fire, in order, every timer due up to `at`.
    pub fn drive_until(&mut self, at: Instant) {
        while let Some((t, _, _)) = self.tsxs.poll_timeout() {
            if t > at {
                break;
            }
            self.tsxs.handle_timeout(t);
        }
    }

    /// Fire every timer due up to `t0 + d`.
    pub fn advance(&mut self, d: Duration) {
        self.drive_until(self.t0 + d);
    }

    pub fn transmits(&mut self) -> Vec<Transmit> {
        std::iter::from_fn(|| self.tsxs.poll_transmit()).collect()
    }

    pub fn events(&mut self) -> Vec<TsxEvent> {
        std::iter::from_fn(|| self.tsxs.poll_event()).collect()
    }

    /// The request just sent (the last transmit), parsed.
    pub fn sent_request(&mut self) -> Request {
        let t = self.transmits();
        parse_request(t.last().expect("something was sent"))
    }

    /// The id of the new server transaction just reported.
    pub fn new_request(&mut self) -> TsxId {
        self.events()
            .into_iter()
            .find_map(|e| match e {
                TsxEvent::Request { tsx, .. } => Some(tsx),
                _ => None,
            })
            .expect("a Request event")
    }
}

pub(crate) fn udp_peer() -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: "198.51.100.7:5060".parse().expect("addr"),
        conn: None,
    }
}

pub(crate) fn tcp_peer() -> Peer {
    Peer {
        transport: Transport::Tcp,
        addr: "198.51.100.7:5060".parse().expect("addr"),
        conn: Some(ConnId(7)),
    }
}

/// Where canned incoming UDP requests come from (their Via's sent-by).
pub(crate) fn udp_from() -> Peer {
    udp_peer()
}

pub(crate) fn tcp_from() -> Peer {
    Peer {
        transport: Transport::Tcp,
        addr: "198.51.100.7:50123".parse().expect("addr"),
        conn: Some(ConnId(9)),
    }
}

fn outgoing(method: Method, cseq: u32) -> Request {
    let mut r = Request::new(method.clone(), "sip:callee@example.net");
    r.headers.push("Max-Forwards", "70");
    r.headers.push("From", "<sip:12345@gw.example>;tag=gwtag");
    r.headers.push("To", "<sip:callee@example.net>");
    r.headers.push("Call-ID", "out-call-1@gw.example");
    r.headers.push("CSeq", format!("{cseq} {method}"));
    r.headers.push("Contact", "<sip:12345@192.0.2.10:5060>");
    r
}

pub(crate) fn invite_out() -> Request {
    outgoing(Method::Invite, 1)
}

pub(crate) fn invite_with_route() -> Request {
    let mut r = invite_out();
    r.headers.push("Route", "<sip:edge1.example.net;lr>");
    r.headers.push("Route", "<sip:edge2.example.net;lr>");
    r
}

pub(crate) fn options_out() -> Request {
    outgoing(Method::Options, 7)
}

pub(crate) fn resp_for(req: &Request, status: u16, to_tag: Option<&str>) -> Response {
    let mut r = Response::to(req, status);
    if let Some(t) = to_tag {
        r.set_to_tag(t);
    }
    r
}

fn via(branch: &str) -> String {
    if branch.is_empty() {
        "SIP/2.0/UDP 198.51.100.7:5060".into()
    } else {
        format!("SIP/2.0/UDP 198.51.100.7:5060;branch={branch}")
    }
}

fn incoming(method: Method, cseq_method: &Method, branch: &str, to: &str) -> Request {
    let mut r = Request::new(method, "sip:12345@192.0.2.10");
    r.headers.push("Via", via(branch));
    r.headers.push("Max-Forwards", "70");
    r.headers.push(
        "From",
        "\"Citizen\" <sip:13800138000@carrier.example>;tag=cit1",
    );
    r.headers.push("To", to);
    r.headers.push("Call-ID", "in-call-1@carrier.example");
    r.headers.push("CSeq", format!("1 {cseq_method}"));
    r
}

pub(crate) fn invite_in(branch: &str) -> Request {
    incoming(
        Method::Invite,
        &Method::Invite,
        branch,
        "<sip:12345@gw.example>",
    )
}

pub(crate) fn options_in(branch: &str) -> Request {
    incoming(
        Method::Options,
        &Method::Options,
        branch,
        "<sip:12345@gw.example>",
    )
}

/// The CANCEL of an incoming INVITE, as its sender builds it (§9.1).
pub(crate) fn cancel_for(inv: &Request) -> Request {
    let mut r = Request::new(Method::Cancel, inv.uri.clone());
    for h in &inv.headers.0 {
        match h.kind {
            Hdr::CSeq => r.headers.push("CSeq", "1 CANCEL"),
            _ => r.headers.0.push(h.clone()),
        }
    }
    r
}

/// The ACK of a non-2xx: same branch, To with the response's tag.
pub(crate) fn ack_for_non_2xx(inv: &Request, to_tag: &str) -> Request {
    let mut r = Request::new(Method::Ack, inv.uri.clone());
    for h in &inv.headers.0 {
        match h.kind {
            Hdr::CSeq => r.headers.push("CSeq", "1 ACK"),
            Hdr::To => r.headers.push("To", format!("{};tag={to_tag}", h.value)),
            _ => r.headers.0.push(h.clone()),
        }
    }
    r
}

/// The ACK of a 2xx: a new branch.
pub(crate) fn ack_for_2xx(inv: &Request, to_tag: &str, branch: &str) -> Request {
    let mut r = ack_for_non_2xx(inv, to_tag);
    r.headers.set("Via", via(branch));
    r
}

pub(crate) fn parse_request(t: &Transmit) -> Request {
    match parse(&t.data).expect("parses").message {
        Message::Request(r) => r,
        Message::Response(r) => panic!("expected a request, got {}", r.status),
    }
}

pub(crate) fn parse_response(t: &Transmit) -> Response {
    match parse(&t.data).expect("parses").message {
        Message::Response(r) => r,
        Message::Request(r) => panic!("expected a response, got {}", r.method),
    }
}

pub(crate) fn top_via_of(t: &Transmit) -> String {
    parse_request(t)
        .headers
        .get(Hdr::Via)
        .expect("Via")
        .to_owned()
}

pub(crate) trait RequestExt {
    /// The same request with its Via transport replaced.
    fn tap_via_transport(self, transport: &str) -> Request;
}

impl RequestExt for Request {
    fn tap_via_transport(mut self, transport: &str) -> Request {
        if let Some(v) = self.headers.0.iter_mut().find(|h| h.kind == Hdr::Via) {
            v.value = v
                .value
                .replace("SIP/2.0/UDP", &format!("SIP/2.0/{transport}"));
        }
        self
    }
}

pub(crate) trait ResponseExt {
    /// The same response with a To tag.
    fn tagged(self, tag: &str) -> Response;
}

impl ResponseExt for Response {
    fn tagged(mut self, tag: &str) -> Response {
        self.set_to_tag(tag);
        self
    }
}
