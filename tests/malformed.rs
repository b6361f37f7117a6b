//! Hostile input never panics and always gets a sensible verdict
//! (CONVENTIONS §8: bad network input becomes a 4xx or a counted drop).
//!
//! Hand-written cases (empty, CRLF only, 64 KiB of `A`, NULs, non-UTF-8,
//! huge and negative Content-Length, 1000 Vias), seeded random garbage and
//! mutations, every truncation of valid messages, the RFC 3261 §8.2 rules
//! the torture files do not reach, and regressions found by fuzzing
//! (`fuzz/`, target `sip_message`).

use hotline::rng::Rng;
use hotline::sip::msg::{frame_len, parse, Hdr, Message, Method};
use hotline::sip::validate::{check, salvage, DropReason, Policy, Verdict};

const INVITE: &str = "INVITE sip:12345@10.20.30.40:5060;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.1.2.3:5060;branch=z9hG4bK-524287-1---4f3c2a1b9d8e7f60;rport\r\n\
Max-Forwards: 69\r\n\
From: \"Zhang San\" <sip:13800138000@10.1.2.3;user=phone>;tag=as4c8d2f1e\r\n\
To: <sip:12345@10.20.30.40;user=phone>\r\n\
Call-ID: 5f1c3a9e2b7d4c8a9e0f1a2b3c4d5e6f@10.1.2.3\r\n\
CSeq: 102 INVITE\r\n\
Contact: <sip:13800138000@10.1.2.3:5060;transport=udp>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 31\r\n\
\r\n\
v=0\r\n\
c=IN IP4 10.1.2.3\r\n\
t=0 0\r\n";

const OK_200: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 10.20.30.40:5060;branch=z9hG4bK7f3a9c21e4;rport=5060\r\n\
From: <sip:12345@10.20.30.40>;tag=h1a2b3c4d5\r\n\
To: <sip:1001@10.30.1.15>;tag=8f7e6d5c\r\n\
Call-ID: b2b-9c8d7e6f5a4b3c2d@10.20.30.40\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\r\n";

fn policy() -> Policy {
    Policy::default()
}

/// The invariants of every verdict, whatever the input.
fn verdict(data: &[u8]) -> Verdict {
    let v = check(data, &policy());
    match &v {
        Verdict::Reply(r) => {
            assert!((400..=599).contains(&r.status), "status {}", r.status);
            let bytes = r.to_bytes();
            assert!(std::str::from_utf8(&bytes).is_ok(), "reply is UTF-8");
            assert!(
                !bytes.windows(2).any(|w| w[0] == b'\r' && w[1] != b'\n'),
                "no bare CR in a reply"
            );
            let Message::Response(p) = parse(&bytes).expect("reply parses").message else {
                panic!("reply is not a response");
            };
            assert_eq!(p.status, r.status);
            // An ACK is a request whose Request-Line says ACK.
            assert_ne!(
                salvage(data).map(|q| q.method),
                Some(Method::Ack),
                "ACK answered"
            );
        }
        Verdict::Accept(m) => {
            assert!(matches!(
                check(&m.to_bytes(), &policy()),
                Verdict::Accept(_)
            ));
        }
        Verdict::Drop(reason) => assert!(!reason.label().is_empty()),
    }
    v
}

fn status(v: &Verdict) -> Option<u16> {
    match v {
        Verdict::Reply(r) => Some(r.status),
        _ => None,
    }
}

fn reply_status(data: &[u8]) -> u16 {
    status(&verdict(data))
        .unwrap_or_else(|| panic!("no reply for {:?}", String::from_utf8_lossy(data)))
}

#[test]
fn the_fixtures_are_valid() {
    assert!(matches!(
        verdict(INVITE.as_bytes()),
        Verdict::Accept(Message::Request(_))
    ));
    assert!(matches!(
        verdict(OK_200.as_bytes()),
        Verdict::Accept(Message::Response(_))
    ));
}

#[test]
fn nothing_and_keepalives() {
    for data in [&b""[..], b"\r\n", b"\r\n\r\n", b"\n"] {
        assert!(
            matches!(verdict(data), Verdict::Drop(DropReason::KeepAlive)),
            "{data:?}"
        );
    }
}

#[test]
fn junk_is_dropped() {
    let many_a = vec![b'A'; 64 * 1024];
    assert!(matches!(
        verdict(&many_a),
        Verdict::Drop(DropReason::TooLarge)
    ));
    assert!(matches!(
        verdict(&many_a[..60_000]),
        Verdict::Drop(DropReason::Malformed)
    ));
    assert!(matches!(
        verdict(&[0u8; 1000]),
        Verdict::Drop(DropReason::Malformed)
    ));
    assert!(matches!(
        verdict(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        Verdict::Drop(_)
    ));
    assert!(matches!(
        verdict(b"SIP/2.0 200 OK\r\n\r\n"),
        Verdict::Drop(DropReason::MalformedResponse)
    ));
}

#[test]
fn seeded_binary_garbage() {
    let mut rng = Rng::new(4475);
    for _ in 0..10_000 {
        let len = rng.below(1500) as usize;
        let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        let _ = verdict(&data);
    }
}

/// Random edits of valid messages reach much deeper than random bytes.
#[test]
fn seeded_mutations() {
    const ALPHABET: &[u8] = b" \t\r\n:;,<>\"\\@=?%/0123456789aZ\x00\xff\xc3";
    let mut rng = Rng::new(3261);
    for base in [INVITE, OK_200] {
        for _ in 0..10_000 {
            let mut m = base.as_bytes().to_vec();
            for _ in 0..=rng.below(4) {
                let at = rng.below(m.len() as u64 + 1) as usize;
                let b = ALPHABET[rng.below(ALPHABET.len() as u64) as usize];
                match rng.below(3) {
                    0 if at < m.len() => m[at] = b,
                    1 if at < m.len() => {
                        m.remove(at);
                    }
                    _ => m.insert(at, b),
                }
            }
            let _ = verdict(&m);
        }
    }
}

/// A message cut anywhere is never accepted: the request gets a 400 when
/// its Via and CSeq made it in, else it is dropped; a cut response is
/// dropped (RFC 3261 §18.3).
#[test]
fn every_truncation() {
    for (msg, is_request) in [(INVITE, true), (OK_200, false)] {
        let b = msg.as_bytes();
        for n in 0..b.len() {
            match verdict(&b[..n]) {
                Verdict::Accept(_) => panic!("accepted a truncation at {n}"),
                Verdict::Reply(r) => {
                    assert!(is_request, "a cut response was answered");
                    assert_eq!(r.status, 400, "cut at {n}");
                }
                Verdict::Drop(_) => {}
            }
        }
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/rfc4475");
    for entry in std::fs::read_dir(dir).expect("torture files") {
        let data = std::fs::read(entry.expect("entry").path()).expect("read");
        for n in 0..data.len() {
            let _ = verdict(&data[..n]);
        }
    }
}

#[test]
fn content_length_abuse() {
    for cl in [
        "99999999999999999999999999",
        "18446744073709551615",
        "4294967296",
        "-1",
        "-999",
        "five",
        "",
        "1 2",
    ] {
        let m = INVITE.replace("Content-Length: 31", &format!("Content-Length: {cl}"));
        assert_eq!(reply_status(m.as_bytes()), 400, "Content-Length: {cl}");
        let _ = frame_len(m.as_bytes(), 65_535);
    }
    // Stream framing never overflows on a huge Content-Length.
    let m = INVITE.replace("Content-Length: 31", "Content-Length: 18446744073709551615");
    assert!(frame_len(m.as_bytes(), 65_535).is_err());
    // Bytes after Content-Length on UDP are ignored (RFC 3261 §18.3).
    let m = format!("{INVITE}EXTRA");
    let Verdict::Accept(Message::Request(r)) = verdict(m.as_bytes()) else {
        panic!()
    };
    assert_eq!(r.body.len(), 31);
}

#[test]
fn a_thousand_vias() {
    let mut lines = String::new();
    for i in 0..1000 {
        lines.push_str(&format!(
            "Via: SIP/2.0/UDP 10.0.{}.{};branch=z9hG4bK{i}\r\n",
            i / 250,
            i % 250
        ));
    }
    let m = INVITE.replacen("Via: ", &format!("{lines}Via: "), 1);
    assert!(matches!(verdict(m.as_bytes()), Verdict::Accept(_)));
    let one_line = (0..1000)
        .map(|i| format!("SIP/2.0/TCP h{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let m = INVITE.replacen("Via: ", &format!("Via: {one_line}\r\nVia: "), 1);
    assert!(matches!(verdict(m.as_bytes()), Verdict::Accept(_)));
}

#[test]
fn non_utf8_and_control_characters() {
    let m = INVITE.as_bytes().to_vec();
    let at = INVITE.find("Zhang").expect("name");
    let mut bad = m.clone();
    bad[at] = 0xff;
    assert_eq!(reply_status(&bad), 400, "non-UTF-8 header");
    // A bare CR cannot smuggle a header line into our reply.
    let smuggle = INVITE.replace("Call-ID: 5f1c", "Call-ID: \rEvil: yes\r5f1c");
    assert_eq!(reply_status(smuggle.as_bytes()), 400);
    // NUL outside a quoted-pair.
    let nul = INVITE.replace("Max-Forwards: 69", "Max-Forwards: 6\x009");
    assert_eq!(reply_status(nul.as_bytes()), 400);
}

#[test]
fn unanswerable_requests_are_dropped() {
    let no_via = INVITE.replacen(
        "Via: SIP/2.0/UDP 10.1.2.3:5060;branch=z9hG4bK-524287-1---4f3c2a1b9d8e7f60;rport\r\n",
        "",
        1,
    );
    assert!(matches!(
        verdict(no_via.as_bytes()),
        Verdict::Drop(DropReason::Malformed)
    ));
    let no_cseq = INVITE.replace("CSeq: 102 INVITE\r\n", "");
    assert!(matches!(
        verdict(no_cseq.as_bytes()),
        Verdict::Drop(DropReason::Malformed)
    ));
}

#[test]
fn ack_is_never_answered() {
    let ack = INVITE
        .replace("INVITE sip", "ACK sip")
        .replace("102 INVITE", "102 ACK");
    assert!(matches!(verdict(ack.as_bytes()), Verdict::Accept(_)));
    for broken in [
        ack.replace("SIP/2.0\r\n", "SIP/3.0\r\n"),
        ack.replace("102 ACK", "102 INVITE"),
        ack.replace("Content-Length: 31", "Content-Length: 310"),
        ack.replace("To: <sip:", "To: \"<sip:"),
    ] {
        assert!(
            matches!(
                verdict(broken.as_bytes()),
                Verdict::Drop(DropReason::AckMalformed)
            ),
            "{broken}"
        );
    }
}

#[test]
fn responses_are_dropped_never_answered() {
    for broken in [
        OK_200.replace("SIP/2.0 200", "SIP/2.1 200"),
        OK_200.replace("CSeq: 1 INVITE", "CSeq: x INVITE"),
        OK_200.replace("Content-Length: 0", "Content-Length: 10"),
        OK_200.replace("Call-ID: b2b", "Call-ID: b2b\r\nCall-ID: other"),
        OK_200.replace("SIP/2.0 200", "SIP/2.0 99"),
    ] {
        assert!(
            matches!(
                verdict(broken.as_bytes()),
                Verdict::Drop(DropReason::MalformedResponse)
            ),
            "{broken}"
        );
    }
    let two_vias = OK_200.replace(
        "Via: ",
        "Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKx\r\nVia: ",
    );
    assert!(matches!(
        verdict(two_vias.as_bytes()),
        Verdict::Drop(DropReason::ResponseViaCount)
    ));
}

/// RFC 3261 §8.2 rules beyond what the torture files exercise.
#[test]
fn uas_rules() {
    // §16.3 / RFC 7332: no INVITE forwarded with Max-Forwards 0; OPTIONS is ours.
    let mf0 = INVITE.replace("Max-Forwards: 69", "Max-Forwards: 0");
    assert_eq!(reply_status(mf0.as_bytes()), 483);
    assert_eq!(
        reply_status(
            INVITE
                .replace("Max-Forwards: 69", "Max-Forwards: x")
                .as_bytes()
        ),
        400
    );
    // §8.2.2.3: Require we do not support, except on CANCEL.
    let req = INVITE.replace("Content-Type", "Require: 100rel\r\nContent-Type");
    let Verdict::Reply(r) = verdict(req.as_bytes()) else {
        panic!()
    };
    assert_eq!(
        (r.status, r.headers.get(Hdr::Unsupported)),
        (420, Some("100rel"))
    );
    let supported = Policy {
        supported: &["100rel"],
        ..Policy::default()
    };
    assert!(matches!(
        check(req.as_bytes(), &supported),
        Verdict::Accept(_)
    ));
    let cancel = req
        .replace("INVITE sip", "CANCEL sip")
        .replace("102 INVITE", "102 CANCEL");
    assert!(matches!(verdict(cancel.as_bytes()), Verdict::Accept(_)));
    // §8.2.3: an encoding we cannot undo.
    let gz = INVITE.replace("Content-Type", "Content-Encoding: gzip\r\nContent-Type");
    let Verdict::Reply(r) = verdict(gz.as_bytes()) else {
        panic!()
    };
    assert_eq!(
        (r.status, r.headers.get_named("Accept-Encoding")),
        (415, Some("identity"))
    );
    // §20.15: a body needs a Content-Type.
    assert_eq!(
        reply_status(
            INVITE
                .replace("Content-Type: application/sdp\r\n", "")
                .as_bytes()
        ),
        400
    );
    // §8.2.1: known but not implemented.
    let sub = INVITE
        .replace("INVITE sip", "SUBSCRIBE sip")
        .replace("102 INVITE", "102 SUBSCRIBE");
    assert_eq!(reply_status(sub.as_bytes()), 405);
    // §8.1.1.5: CSeq below 2^31.
    assert_eq!(
        reply_status(INVITE.replace("CSeq: 102", "CSeq: 2147483648").as_bytes()),
        400
    );
    assert!(matches!(
        verdict(INVITE.replace("CSeq: 102", "CSeq: 2147483647").as_bytes()),
        Verdict::Accept(_)
    ));
    // tel: Request-URIs are ours; others get 416.
    let tel = INVITE.replace(
        "sip:12345@10.20.30.40:5060;user=phone SIP",
        "tel:+8612345 SIP",
    );
    assert!(matches!(verdict(tel.as_bytes()), Verdict::Accept(_)));
    let im = INVITE.replace(
        "sip:12345@10.20.30.40:5060;user=phone SIP",
        "im:12345@x SIP",
    );
    assert_eq!(reply_status(im.as_bytes()), 416);
    // A header line without a colon, a name that is not a token.
    assert_eq!(
        reply_status(
            INVITE
                .replace("Max-Forwards: 69", "Max-Forwards 69")
                .as_bytes()
        ),
        400
    );
    assert_eq!(
        reply_status(INVITE.replace("Max-Forwards:", "Max Forwards:").as_bytes()),
        400
    );
    // Over the size limit, a request still gets an answer from its headers.
    let small = Policy {
        max_message_bytes: 200,
        ..Policy::default()
    };
    assert_eq!(status(&check(INVITE.as_bytes(), &small)), Some(513));
    assert!(matches!(
        check(
            OK_200.as_bytes(),
            &Policy {
                max_message_bytes: 100,
                ..Policy::default()
            }
        ),
        Verdict::Drop(DropReason::TooLarge)
    ));
}

/// Inputs the fuzzer found (fuzz/, target `sip_message`), minimised by
/// hand, kept as regressions.
#[test]
fn fuzz_regressions() {
    // crash-e6295ea3: a Request-Line INVITE whose CSeq says ACK. The 400 is
    // right (RFC 4475 §3.1.2.17): what makes a request an ACK, which gets
    // no answer, is its Request-Line, not its CSeq. The harness was wrong.
    let invite_cseq_ack = b"INVITE sip:a@b.example SIP/2.0\r\n\
Via: SIP/2.0/UDP h.example;branch=z9hG4bKx\r\n\
From: <sip:a@b.example>;tag=1\r\n\
To: <sip:a@b.example>\r\n\
Call-ID: c\r\n\
CSeq: 1 ACK\r\n\r\n";
    let Verdict::Reply(r) = verdict(invite_cseq_ack) else {
        panic!()
    };
    assert_eq!((r.status, r.headers.get(Hdr::CSeq)), (400, Some("1 ACK")));
    // The mirror case: an ACK whose CSeq says INVITE is dropped.
    let ack = String::from_utf8_lossy(invite_cseq_ack)
        .replacen("INVITE", "ACK", 1)
        .replace("1 ACK", "1 INVITE");
    assert!(matches!(
        verdict(ack.as_bytes()),
        Verdict::Drop(DropReason::AckMalformed)
    ));
}
