//! Any bytes through `validate::check`: no panic, and what it lets through
//! or sends back is itself well formed.
//!
//! - An accepted message serialises to bytes that parse and validate as
//!   accepted again, with the fields the core keys on unchanged.
//! - A stateless reply parses, is a response, and never answers an ACK.
#![no_main]

use hotline::sip::msg::{parse, Message, Method, SipHeaders};
use hotline::sip::validate::{check, salvage, Policy, Verdict};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let policy = Policy::default();
    match check(data, &policy) {
        Verdict::Accept(m) => {
            let bytes = m.to_bytes();
            // Canonical header names can be longer than compact ones.
            let roomy = Policy {
                max_message_bytes: usize::MAX,
                ..Policy::default()
            };
            let again = match check(&bytes, &roomy) {
                Verdict::Accept(again) => again,
                other => panic!("accepted message re-validates as {other:?}\n{m:?}"),
            };
            assert_eq!(m.call_id(), again.call_id());
            assert_eq!(m.cseq(), again.cseq());
            assert_eq!(m.from_tag(), again.from_tag());
            assert_eq!(m.to_tag(), again.to_tag());
            assert_eq!(m.top_via(), again.top_via());
            match (&m, &again) {
                (Message::Request(a), Message::Request(b)) => {
                    assert_eq!(a.method, b.method);
                    assert_eq!(a.uri, b.uri);
                    assert_eq!(a.body, b.body);
                }
                (Message::Response(a), Message::Response(b)) => {
                    assert_eq!(a.status, b.status);
                    assert_eq!(a.body, b.body);
                }
                _ => panic!("request/response changed on re-parse"),
            }
        }
        Verdict::Reply(r) => {
            let parsed = parse(&r.to_bytes()).expect("our stateless reply parses");
            assert!(matches!(parsed.message, Message::Response(_)));
            assert!((300..=699).contains(&r.status));
            // An ACK is a request whose Request-Line says ACK (its CSeq
            // may lie, RFC 4475 §3.1.2.17).
            let method = salvage(data).map(|q| q.method);
            assert_ne!(method, Some(Method::Ack), "an ACK was answered");
        }
        Verdict::Drop(reason) => {
            let _ = reason.label();
        }
    }
});
