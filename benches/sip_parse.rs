//! SIP parse and validate cost per message: the signalling core runs on one
//! task, so this is a per-call budget. `check` on a carrier INVITE with SDP
//! (~900 bytes) and on a 200 OK, and serialising the INVITE.
//!
//! `cargo bench --bench sip_parse` (add `-- --quick` for a first look).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hotline::sip::msg::Message;
use hotline::sip::validate::{check, Policy, Verdict};
use std::hint::black_box;

/// A typical trunk INVITE: display name, P-Asserted-Identity, session
/// timer, SDP offering PCMA, PCMU and telephone-event.
const INVITE: &str = "INVITE sip:12345@10.20.30.40:5060;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.1.2.3:5060;branch=z9hG4bK-524287-1---4f3c2a1b9d8e7f60;rport\r\n\
Max-Forwards: 69\r\n\
From: \"Zhang San\" <sip:13800138000@10.1.2.3;user=phone>;tag=as4c8d2f1e\r\n\
To: <sip:12345@10.20.30.40;user=phone>\r\n\
Call-ID: 5f1c3a9e2b7d4c8a9e0f1a2b3c4d5e6f@10.1.2.3\r\n\
CSeq: 102 INVITE\r\n\
Contact: <sip:13800138000@10.1.2.3:5060;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, REFER, NOTIFY\r\n\
Supported: timer, 100rel, replaces\r\n\
P-Asserted-Identity: \"Zhang San\" <sip:+8613800138000@ims.example.cn;user=phone>\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Min-SE: 90\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 230\r\n\
\r\n\
v=0\r\n\
o=- 1717171717 1717171717 IN IP4 10.1.2.3\r\n\
s=-\r\n\
c=IN IP4 10.1.2.3\r\n\
t=0 0\r\n\
m=audio 31000 RTP/AVP 8 0 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

/// The agent phone's answer on the B leg.
const OK_200: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 10.20.30.40:5060;branch=z9hG4bK7f3a9c21e4;rport=5060;received=10.20.30.40\r\n\
From: <sip:12345@10.20.30.40;user=phone>;tag=h1a2b3c4d5\r\n\
To: <sip:1001@10.30.1.15>;tag=8f7e6d5c\r\n\
Call-ID: b2b-9c8d7e6f5a4b3c2d@10.20.30.40\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:1001@10.30.1.15:5062>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE\r\n\
Supported: replaces, timer\r\n\
Server: Yealink SIP-T46U 108.86.0.60\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 198\r\n\
\r\n\
v=0\r\n\
o=- 3816 3816 IN IP4 10.30.1.15\r\n\
s=-\r\n\
c=IN IP4 10.30.1.15\r\n\
t=0 0\r\n\
m=audio 12000 RTP/AVP 8 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

fn accepted(data: &[u8]) -> Message {
    match check(data, &Policy::default()) {
        Verdict::Accept(m) => m,
        other => panic!("bench fixture refused: {other:?}"),
    }
}

fn bench(c: &mut Criterion) {
    let policy = Policy::default();
    let invite = INVITE.as_bytes();
    let ok = OK_200.as_bytes();
    let parsed = accepted(invite);
    accepted(ok);

    let mut g = c.benchmark_group("sip");
    g.throughput(Throughput::Bytes(invite.len() as u64));
    g.bench_function("check_invite", |b| {
        b.iter(|| check(black_box(invite), &policy))
    });
    g.throughput(Throughput::Bytes(ok.len() as u64));
    g.bench_function("check_200_ok", |b| b.iter(|| check(black_box(ok), &policy)));
    g.throughput(Throughput::Bytes(invite.len() as u64));
    g.bench_function("to_bytes_invite", |b| {
        b.iter(|| black_box(&parsed).to_bytes())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
