//! Transaction-layer throughput (RFC 3261 §17 + RFC 6026), messages
//! pre-parsed: one iteration is one whole transaction, from the first
//! message in to its Terminated event, with every output drained as the
//! gateway loop would. Input messages are cloned in the untimed setup of
//! `iter_batched` (small batches, so they are cache-warm like a message
//! just parsed); dropping them, inside the layer, is timed.
//!
//! `cargo bench --bench transactions`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use hotline::sip::msg::{Hdr, Method, Request, Response};
use hotline::sip::transaction::{LocalVia, Peer, TimerConfig, Transactions, TsxEvent};
use hotline::sip::transport::Transport;
use std::hint::black_box;
use std::time::Duration;

fn layer() -> Transactions {
    Transactions::new(
        TimerConfig::default(),
        LocalVia {
            host: "192.0.2.10".into(),
            port: 5060,
        },
        7,
    )
}

fn carrier() -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: "198.51.100.7:5060".parse().expect("addr"),
        conn: None,
    }
}

fn incoming(method: Method, branch: &str) -> Request {
    let mut r = Request::new(method.clone(), "sip:12345@192.0.2.10");
    r.headers.push(
        "Via",
        format!("SIP/2.0/UDP 198.51.100.7:5060;branch={branch};received=198.51.100.7;rport=5060"),
    );
    r.headers.push("Max-Forwards", "70");
    r.headers.push(
        "From",
        "\"Citizen\" <sip:13800138000@carrier.example>;tag=1928301774",
    );
    r.headers.push("To", "<sip:12345@gw.example>");
    r.headers
        .push("Call-ID", "a84b4c76e66710@pc33.carrier.example");
    r.headers.push("CSeq", format!("314159 {method}"));
    r.headers
        .push("Contact", "<sip:13800138000@198.51.100.7:5060>");
    if method == Method::Invite {
        r.headers.push("Content-Type", "application/sdp");
        r.body = bytes::Bytes::from_static(
            b"v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n",
        );
    }
    r
}

/// Drain outputs; return the id of a new server transaction, if any.
fn drain(t: &mut Transactions) -> Option<hotline::ids::TsxId> {
    while let Some(x) = t.poll_transmit() {
        black_box(x);
    }
    let mut new = None;
    while let Some(e) = t.poll_event() {
        if let TsxEvent::Request { tsx, .. } = e {
            new = Some(tsx);
        }
    }
    new
}

fn uas_invite(c: &mut Criterion) {
    let invite = incoming(Method::Invite, "z9hG4bK776asdhds");
    let mut r180 = Response::to(&invite, 180);
    r180.set_to_tag("gw-a1");
    let mut r200 = r180.clone();
    r200.status = 200;
    r200.reason = "OK".into();
    r200.headers.push("Contact", "<sip:12345@192.0.2.10:5060>");
    let mut ack = incoming(Method::Ack, "z9hG4bKack99");
    ack.headers.set("To", "<sip:12345@gw.example>;tag=gw-a1");
    ack.headers.set("CSeq", "314159 ACK");

    let mut g = c.benchmark_group("transactions");
    g.throughput(Throughput::Elements(1));
    let mut t = layer();
    let mut now = hotline::time::now();
    // INVITE in → 100 (by the layer) → 180 → 200 → ACK in → Timer L → Terminated.
    g.bench_function("uas_invite_tsx", |b| {
        b.iter_batched(
            || (invite.clone(), r180.clone(), r200.clone(), ack.clone()),
            |(inv, r180, r200, ack)| {
                now += Duration::from_secs(40);
                t.handle_request(inv, carrier(), now);
                let id = drain(&mut t).expect("a new transaction");
                t.send_response(id, r180, now);
                drain(&mut t);
                t.send_response(id, r200, now);
                drain(&mut t);
                t.handle_request(ack, carrier(), now);
                drain(&mut t);
                t.handle_timeout(now + Duration::from_secs(32));
                drain(&mut t);
                debug_assert_eq!(t.len(), 0);
            },
            BatchSize::SmallInput,
        )
    });

    let options = incoming(Method::Options, "z9hG4bKopt1");
    let ok = {
        let mut r = Response::to(&options, 200);
        r.set_to_tag("gw-o1");
        r
    };
    let mut t = layer();
    let mut now = hotline::time::now();
    // OPTIONS in → 200 → Timer J → Terminated.
    g.bench_function("uas_options_tsx", |b| {
        b.iter_batched(
            || (options.clone(), ok.clone()),
            |(opt, ok)| {
                now += Duration::from_secs(40);
                t.handle_request(opt, carrier(), now);
                let id = drain(&mut t).expect("a new transaction");
                t.send_response(id, ok, now);
                drain(&mut t);
                t.handle_timeout(now + Duration::from_secs(32));
                drain(&mut t);
                debug_assert_eq!(t.len(), 0);
            },
            BatchSize::SmallInput,
        )
    });

    // UAC: INVITE out → 100 → 180 → 200 → ACK (TU's) → Timer M → Terminated.
    let mut out = Request::new(Method::Invite, "sip:agent@198.51.100.20");
    out.headers.push("Max-Forwards", "70");
    out.headers.push("From", "<sip:12345@gw.example>;tag=gw-b1");
    out.headers.push("To", "<sip:agent@198.51.100.20>");
    out.headers.push("Call-ID", "b-leg-1@gw.example");
    out.headers.push("CSeq", "1 INVITE");
    out.headers.push("Contact", "<sip:12345@192.0.2.10:5060>");
    let mut t = layer();
    let mut now = hotline::time::now();
    // The UAS's responses, pre-built; inside the timing only their top Via
    // is patched with the branch the layer chose (3 short copies).
    let sent = {
        let mut probe = layer();
        let id = probe.send_request(out.clone(), carrier(), now);
        probe.request(id).cloned().expect("live")
    };
    let resp = |status, tag: Option<&str>| {
        let mut r = Response::to(&sent, status);
        if let Some(tag) = tag {
            r.set_to_tag(tag);
        }
        r
    };
    let resps = [
        resp(100, None),
        resp(180, Some("ag1")),
        resp(200, Some("ag1")),
    ];
    let mut ack = Request::new(Method::Ack, "sip:agent@198.51.100.20");
    ack.headers.push("To", "<sip:agent@198.51.100.20>;tag=ag1");
    ack.headers.push("CSeq", "1 ACK");
    g.bench_function("uac_invite_tsx", |b| {
        b.iter_batched(
            || (out.clone(), resps.clone(), ack.clone()),
            |(req, resps, ack)| {
                now += Duration::from_secs(40);
                let id = t.send_request(req, carrier(), now);
                drain(&mut t);
                let via = t
                    .request(id)
                    .and_then(|r| r.headers.get(Hdr::Via))
                    .unwrap_or_default()
                    .to_owned();
                for mut r in resps {
                    r.headers.0[0].value.clone_from(&via);
                    t.handle_response(r, carrier(), now);
                    drain(&mut t);
                }
                t.send_ack(id, ack, now);
                drain(&mut t);
                t.handle_timeout(now + Duration::from_secs(32));
                drain(&mut t);
                debug_assert_eq!(t.len(), 0);
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, uas_invite);
criterion_main!(benches);
