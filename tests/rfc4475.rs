//! RFC 4475 torture messages: every file in `testdata/rfc4475/` gets the
//! treatment the RFC text describes for a UAS (the gateway's role toward a
//! carrier), through `validate::check` with the gateway's policy.
//!
//! The expected outcome of each message comes from the RFC text (quoted in
//! short in the table), not from what the code does. Where the RFC leaves a
//! choice the table says which one we make. Valid messages are also checked
//! field by field where the RFC names what a parser must see.
//!
//! Clauses: RFC 4475 §3.1.1 (valid), §3.1.2 (invalid), §3.2 (transaction
//! layer), §3.3 (application layer), §3.4 (RFC 2543 compatibility);
//! RFC 3261 §8.1.3.3, §8.2.1-§8.2.3, §8.2.6, §18.3.

use hotline::sip::msg::{
    parse, Hdr, Message, Method, NameAddr, Request, Response, SipHeaders, SipUri, Via,
};
use hotline::sip::validate::{check, salvage, Policy, Verdict, GATEWAY_METHODS};
use std::path::PathBuf;

/// What a receiver does with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Passed to the transaction layer.
    Accept,
    /// Answered statelessly with this status.
    Reply(u16),
    /// Dropped without an answer.
    Drop,
}
use Expect::{Accept, Drop, Reply};

struct Case {
    file: &'static str,
    section: &'static str,
    title: &'static str,
    /// What the RFC says, in short, and our choice where it gives one.
    rfc: &'static str,
    expect: Expect,
}

/// The gateway is a registrar (for its agents' phones) and does not
/// implement MESSAGE or unknown methods (405 / 501). `registrar_policy`
/// below checks the registrar reading with an explicit policy.
#[rustfmt::skip]
const TABLE: &[Case] = &[
    // 3.1.1 Valid messages
    Case { file: "wsinv", section: "3.1.1.1", title: "A Short Tortuous INVITE",
        rfc: "well formed; all elements accept it", expect: Accept },
    Case { file: "intmeth", section: "3.1.1.2", title: "Wide Range of Valid Characters",
        rfc: "valid; endpoints generate a 501 listing their methods in Allow", expect: Reply(501) },
    Case { file: "esc01", section: "3.1.1.3", title: "Valid Use of the % Escaping Mechanism",
        rfc: "syntactically valid; parser must accept", expect: Accept },
    Case { file: "escnull", section: "3.1.1.4", title: "Escaped Nulls in URIs",
        rfc: "well formed REGISTER; a registrar handles it", expect: Accept },
    Case { file: "esc02", section: "3.1.1.5", title: "Use of % When It Is Not an Escape",
        rfc: "well formed; unknown method; an endpoint rejects it with 501", expect: Reply(501) },
    Case { file: "lwsdisp", section: "3.1.1.6", title: "No LWS between Display Name and <",
        rfc: "elements should accept it as well formed", expect: Accept },
    Case { file: "longreq", section: "3.1.1.7", title: "Long Values in Header Fields",
        rfc: "well formed", expect: Accept },
    Case { file: "dblreq", section: "3.1.1.8", title: "Extra Trailing Octets in a UDP Datagram",
        rfc: "handle the REGISTER, ignore the trailing octets", expect: Accept },
    Case { file: "semiuri", section: "3.1.1.9", title: "Semicolon-Separated Parameters in URI User Part",
        rfc: "well formed; user part is user;par=u@example.net", expect: Accept },
    Case { file: "transports", section: "3.1.1.10", title: "Varied and Unknown Transport Types",
        rfc: "parsers must accept it as well formed", expect: Accept },
    Case { file: "mpart01", section: "3.1.1.11", title: "Multipart MIME Message",
        rfc: "parsers must accept it; MESSAGE is not implemented here: 405", expect: Reply(405) },
    Case { file: "unreason", section: "3.1.1.12", title: "Unusual Reason Phrase",
        rfc: "well formed response; parser must accept", expect: Accept },
    Case { file: "noreason", section: "3.1.1.13", title: "Empty Reason Phrase",
        rfc: "well formed response; parser must accept", expect: Accept },
    // 3.1.2 Invalid messages
    Case { file: "badinv01", section: "3.1.2.1", title: "Extraneous Header Field Separators",
        rfc: "respond with 400", expect: Reply(400) },
    Case { file: "clerr", section: "3.1.2.2", title: "Content Length Larger Than Message",
        rfc: "over UDP respond with 400", expect: Reply(400) },
    Case { file: "ncl", section: "3.1.2.3", title: "Negative Content-Length",
        rfc: "respond with an error (400)", expect: Reply(400) },
    Case { file: "scalar02", section: "3.1.2.4", title: "Request Scalar Fields with Overlarge Values",
        rfc: "respond with 400 due to the CSeq error", expect: Reply(400) },
    Case { file: "scalarlg", section: "3.1.2.5", title: "Response Scalar Fields with Overlarge Values",
        rfc: "an element receiving this response will simply discard it", expect: Drop },
    Case { file: "quotbal", section: "3.1.2.6", title: "Unterminated Quoted String in Display Name",
        rfc: "return 400", expect: Reply(400) },
    Case { file: "ltgtruri", section: "3.1.2.7", title: "<> Enclosing Request-URI",
        rfc: "reasonable always to reject with 400", expect: Reply(400) },
    Case { file: "lwsruri", section: "3.1.2.8", title: "Malformed SIP Request-URI (embedded LWS)",
        rfc: "respond with 400", expect: Reply(400) },
    Case { file: "lwsstart", section: "3.1.2.9", title: "Multiple SP Separating Request-Line Elements",
        rfc: "acceptable to reject as malformed (we do: 400)", expect: Reply(400) },
    Case { file: "trws", section: "3.1.2.10", title: "SP Characters at End of Request-Line",
        rfc: "acceptable to reject as malformed (we do: 400)", expect: Reply(400) },
    Case { file: "escruri", section: "3.1.2.11", title: "Escaped Headers in SIP Request-URI",
        rfc: "acceptable to reject with 400 (we do)", expect: Reply(400) },
    Case { file: "baddate", section: "3.1.2.12", title: "Invalid Time Zone in Date Header Field",
        rfc: "reject only if Date matters; a liberal element ignores it (we do)", expect: Accept },
    Case { file: "regbadct", section: "3.1.2.13", title: "Failure to Enclose name-addr URI in <>",
        rfc: "reasonable to respond with 400", expect: Reply(400) },
    Case { file: "badaspec", section: "3.1.2.14", title: "Spaces within addr-spec",
        rfc: "reasonable to reject with 400", expect: Reply(400) },
    Case { file: "baddn", section: "3.1.2.15", title: "Non-token Characters in Display Name",
        rfc: "reasonable always to reject with 400", expect: Reply(400) },
    Case { file: "badvers", section: "3.1.2.16", title: "Unknown Protocol Version",
        rfc: "respond with 505", expect: Reply(505) },
    Case { file: "mismatch01", section: "3.1.2.17", title: "Start Line and CSeq Method Mismatch",
        rfc: "any element responds with 400", expect: Reply(400) },
    Case { file: "mismatch02", section: "3.1.2.18", title: "Unknown Method with CSeq Method Mismatch",
        rfc: "respond with 501 (400 acceptable; 501 preferred)", expect: Reply(501) },
    Case { file: "bigcode", section: "3.1.2.19", title: "Overlarge Response Code",
        rfc: "simply drop it", expect: Drop },
    // 3.2 Transaction layer semantics
    Case { file: "badbranch", section: "3.2.1", title: "Missing Transaction Identifier",
        rfc: "reject with 400 statelessly, or fall back to RFC 2543 matching (we reject)",
        expect: Reply(400) },
    // 3.3 Application-layer semantics
    Case { file: "insuf", section: "3.3.1", title: "Missing Required Header Fields",
        rfc: "must not break; ideally respond with 400", expect: Reply(400) },
    Case { file: "unkscm", section: "3.3.2", title: "Request-URI with Unknown Scheme",
        rfc: "well formed; reject with 416", expect: Reply(416) },
    Case { file: "novelsc", section: "3.3.3", title: "Request-URI with Known but Atypical Scheme",
        rfc: "416 if the scheme is never meaningful here (it is not)", expect: Reply(416) },
    Case { file: "unksm2", section: "3.3.4", title: "Unknown URI Schemes in Header Fields",
        rfc: "syntactically valid; a registrar answers 400", expect: Reply(400) },
    Case { file: "bext01", section: "3.3.5", title: "Proxy-Require and Require",
        rfc: "420 with Unsupported listing the Require tags (UAS role)", expect: Reply(420) },
    Case { file: "invut", section: "3.3.6", title: "Unknown Content-Type",
        rfc: "an endpoint rejects it with 415", expect: Reply(415) },
    Case { file: "regaut01", section: "3.3.7", title: "Unknown Authorization Scheme",
        rfc: "a registrar challenges with a scheme it knows (401)", expect: Accept },
    Case { file: "multi01", section: "3.3.8", title: "Multiple Values in Single Value Required Fields",
        rfc: "respond with 400", expect: Reply(400) },
    Case { file: "mcl01", section: "3.3.9", title: "Multiple Content-Length Values",
        rfc: "respond with an error (400); over UDP discard the rest", expect: Reply(400) },
    Case { file: "bcast", section: "3.3.10", title: "200 OK Response with Broadcast Via",
        rfc: "an endpoint should simply discard it", expect: Drop },
    Case { file: "zeromf", section: "3.3.11", title: "Max-Forwards of Zero",
        rfc: "an endpoint processes it as if Max-Forwards were positive", expect: Accept },
    Case { file: "cparam01", section: "3.3.12", title: "REGISTER with a Contact Header Parameter",
        rfc: "a registrar accepts it", expect: Accept },
    Case { file: "cparam02", section: "3.3.13", title: "REGISTER with a url-parameter",
        rfc: "a registrar accepts it", expect: Accept },
    Case { file: "regescrt", section: "3.3.14", title: "REGISTER with a URL Escaped Header",
        rfc: "a registrar accepts it", expect: Accept },
    Case { file: "sdp01", section: "3.3.15", title: "Unacceptable Accept Offering",
        rfc: "406 with a Warning (400 also appropriate)", expect: Reply(406) },
    // 3.4 Backward compatibility
    Case { file: "inv2543", section: "3.4.1", title: "INVITE with RFC 2543 Syntax",
        rfc: "legal RFC 2543 message; accept it", expect: Accept },
];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/rfc4475")
}

fn read(file: &str) -> Vec<u8> {
    std::fs::read(dir().join(format!("{file}.dat"))).expect("torture file")
}

fn outcome(v: &Verdict) -> Expect {
    match v {
        Verdict::Accept(_) => Accept,
        Verdict::Reply(r) => Reply(r.status),
        Verdict::Drop(_) => Drop,
    }
}

fn accepted_request(file: &str) -> Request {
    match check(&read(file), &Policy::default()) {
        Verdict::Accept(Message::Request(r)) => r,
        other => panic!("{file}: expected an accepted request, got {other:?}"),
    }
}

fn accepted_response(file: &str) -> Response {
    match check(&read(file), &Policy::default()) {
        Verdict::Accept(Message::Response(r)) => r,
        other => panic!("{file}: expected an accepted response, got {other:?}"),
    }
}

fn reply(file: &str, policy: &Policy) -> Response {
    match check(&read(file), policy) {
        Verdict::Reply(r) => r,
        other => panic!("{file}: expected a reply, got {other:?}"),
    }
}

/// The message as the parser sees it, for field checks on messages the
/// gateway refuses for policy reasons (unknown method, REGISTER).
fn parsed_request(file: &str) -> Request {
    match parse(&read(file)).expect("parses").message {
        Message::Request(r) => r,
        Message::Response(_) => panic!("{file}: not a request"),
    }
}

fn vias(h: &impl SipHeaders) -> Vec<Via> {
    h.headers()
        .elements(Hdr::Via)
        .into_iter()
        .map(|v| Via::parse(v).expect("Via"))
        .collect()
}

#[test]
fn table_lists_every_file_once() {
    let mut files: Vec<String> = std::fs::read_dir(dir())
        .expect("testdata/rfc4475")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".dat").map(str::to_string))
        .collect();
    files.sort();
    let mut listed: Vec<String> = TABLE.iter().map(|c| c.file.to_string()).collect();
    listed.sort();
    assert_eq!(files.len(), 49, "RFC 4475 has 49 messages");
    assert_eq!(listed, files, "the table and the directory differ");
    let count = |prefix: &str| {
        TABLE
            .iter()
            .filter(|c| c.section.starts_with(prefix))
            .count()
    };
    assert_eq!(
        [
            count("3.1.1."),
            count("3.1.2."),
            count("3.2."),
            count("3.3."),
            count("3.4.")
        ],
        [13, 19, 1, 15, 1]
    );
}

#[test]
fn every_message_gets_the_rfc_treatment() {
    let mut wrong = Vec::new();
    for c in TABLE {
        let got = outcome(&check(&read(c.file), &Policy::default()));
        if got != c.expect {
            wrong.push(format!(
                "{} (§{} {}): RFC says {:?} ({}), we {:?}",
                c.file, c.section, c.title, c.expect, c.rfc, got
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

/// Every stateless reply is a correct response to its request (RFC 3261
/// §8.2.6): Via, From, To, Call-ID and CSeq copied, a To tag added, no
/// body; and it parses. No ACK is ever answered.
#[test]
fn every_reply_is_a_correct_response() {
    for c in TABLE {
        let data = read(c.file);
        let Verdict::Reply(r) = check(&data, &Policy::default()) else {
            continue;
        };
        // The request as read: parsed, or salvaged when the parser refused it.
        let req = match parse(&data).map(|p| p.message) {
            Ok(Message::Request(r)) => r,
            _ => salvage(&data).expect("a request we answered"),
        };
        assert_ne!(req.method, Method::Ack, "{}", c.file);
        for kind in [Hdr::Via, Hdr::From, Hdr::CallId, Hdr::CSeq] {
            assert_eq!(
                r.headers.all(kind).collect::<Vec<_>>(),
                req.headers.all(kind).collect::<Vec<_>>(),
                "{}: {kind:?} not copied",
                c.file
            );
        }
        if let Some(to) = req.headers.get(Hdr::To) {
            let got = r.headers.get(Hdr::To).expect("To copied");
            assert!(got.starts_with(to), "{}: To {got:?}", c.file);
            if NameAddr::parse(to).is_ok() {
                assert!(r.to_tag().is_some(), "{}: no To tag", c.file);
            } else {
                assert_eq!(got, to, "{}: an unreadable To is echoed as is", c.file);
            }
        }
        assert!(r.body.is_empty());
        let bytes = r.to_bytes();
        assert!(bytes.ends_with(b"Content-Length: 0\r\n\r\n"), "{}", c.file);
        match parse(&bytes).expect("reply parses").message {
            Message::Response(p) => assert_eq!(p.status, r.status),
            Message::Request(_) => panic!("{}: reply is a request", c.file),
        }
    }
}

/// What we accept we can write back: serialise, validate again, same
/// verdict and the same fields the core keys on.
#[test]
fn accepted_messages_round_trip() {
    for c in TABLE.iter().filter(|c| c.expect == Accept) {
        let Verdict::Accept(m) = check(&read(c.file), &Policy::default()) else {
            panic!("{}", c.file);
        };
        let Verdict::Accept(again) = check(&m.to_bytes(), &Policy::default()) else {
            panic!("{}: re-serialised message refused", c.file);
        };
        assert_eq!(m.call_id(), again.call_id(), "{}", c.file);
        assert_eq!(m.cseq(), again.cseq(), "{}", c.file);
        assert_eq!(m.from_tag(), again.from_tag(), "{}", c.file);
        assert_eq!(m.to_tag(), again.to_tag(), "{}", c.file);
        assert_eq!(m.top_via(), again.top_via(), "{}", c.file);
    }
}

/// With REGISTER implemented (the registrar for agents' phones), the valid
/// REGISTERs pass and the invalid ones get the registrar's 400.
#[test]
fn registrar_policy() {
    const WITH_REGISTER: &[Method] = &[
        Method::Invite,
        Method::Ack,
        Method::Bye,
        Method::Cancel,
        Method::Options,
        Method::Info,
        Method::Update,
        Method::Register,
    ];
    let policy = Policy {
        allow: WITH_REGISTER,
        ..Policy::default()
    };
    for (file, expect) in [
        ("escnull", Accept),
        ("dblreq", Accept),
        ("cparam01", Accept),
        ("cparam02", Accept),
        ("regescrt", Accept),
        // §3.3.7: the registrar then challenges with a scheme it knows (401).
        ("regaut01", Accept),
        // §3.3.4: "A registrar would reject this request with a 400".
        ("unksm2", Reply(400)),
        ("scalar02", Reply(400)),
        ("regbadct", Reply(400)),
    ] {
        assert_eq!(outcome(&check(&read(file), &policy)), expect, "{file}");
    }
}

#[test]
fn wsinv_fields() {
    let r = accepted_request("wsinv");
    assert_eq!(r.method, Method::Invite);
    assert_eq!(r.call_id(), Some("wsinv.ndaksdj@192.0.2.1"));
    assert_eq!(r.cseq(), Some((9, Method::Invite)));
    assert_eq!(r.max_forwards(), Some(Ok(68)));
    assert_eq!(r.to_tag().as_deref(), Some("1918181833n"));
    assert_eq!(r.from_tag().as_deref(), Some("98asjd8"));
    let v = vias(&r);
    assert_eq!(
        v.len(),
        3,
        "short and long Via forms, comma-separated values"
    );
    assert_eq!(v[0].host, "192.0.2.2");
    assert_eq!(v[0].branch.as_deref(), Some("390skdjuw"));
    assert_eq!(v[0].rfc3261_branch(), None);
    assert_eq!(v[1].transport, "TCP");
    assert_eq!(v[1].host, "spindle.example.com");
    assert_eq!(v[1].rfc3261_branch(), Some("z9hG4bK9ikj8"));
    assert_eq!(v[2].host, "192.168.255.111");
    assert_eq!(v[2].branch.as_deref(), Some("z9hG4bK30239"));
    assert_eq!(
        r.headers.get_named("NewFangledHeader"),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(
        r.headers.get_named("UnknownHeaderWithUnusualValue"),
        Some(";;,,;;,;")
    );
    assert_eq!(r.headers.get_named("s"), Some(""), "an empty Subject");
    let contact = NameAddr::parse(r.headers.get(Hdr::Contact).expect("Contact")).expect("Contact");
    assert_eq!(contact.uri, "sip:jdrosen@example.com");
    assert_eq!(r.body.len(), 150);
    assert_eq!(
        r.request_uri().expect("R-URI").user.as_deref(),
        Some("vivekg")
    );
}

#[test]
fn intmeth_fields() {
    let r = parsed_request("intmeth");
    assert_eq!(
        r.method,
        Method::Other("!interesting-Method0123456789_*+`.%indeed'~".into())
    );
    let u = r.request_uri().expect("R-URI");
    assert_eq!(
        u.user.as_deref(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(u.host, "example.com");
    assert_eq!(r.from_tag().as_deref(), Some("_token~1'+`*%!-."));
    assert_eq!(
        r.cseq(),
        Some((
            139122385,
            Method::Other("!interesting-Method0123456789_*+`.%indeed'~".into())
        ))
    );
    assert_eq!(
        r.call_id(),
        Some("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{")
    );
    let allow = reply("intmeth", &Policy::default());
    let ours: Vec<&str> = GATEWAY_METHODS.iter().map(Method::as_str).collect();
    assert_eq!(
        allow.headers.get(Hdr::Allow),
        Some(ours.join(", ").as_str())
    );
}

#[test]
fn escaping_is_kept_not_reapplied() {
    let r = accepted_request("esc01");
    let u = r.request_uri().expect("R-URI");
    assert_eq!(u.user.as_deref(), Some("sips%3Auser%40example.com"));
    assert_eq!(u.host, "example.net");
    let from = NameAddr::parse(r.headers.get(Hdr::From).expect("From")).expect("From");
    assert_eq!(from.uri, "sip:I%20have%20spaces@example.net");
    assert_eq!(from.tag.as_deref(), Some("938"));
    let to = NameAddr::parse(r.headers.get(Hdr::To).expect("To")).expect("To");
    assert_eq!(to.uri, "sip:%75se%72@example.com");
    let contact = NameAddr::parse(r.headers.get(Hdr::Contact).expect("Contact")).expect("Contact");
    assert_eq!(
        contact.uri,
        "sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31"
    );

    let r = parsed_request("escnull");
    let from = NameAddr::parse(r.headers.get(Hdr::From).expect("From")).expect("From");
    assert_eq!(from.uri, "sip:null-%00-null@example.com");
    assert_eq!(r.headers.elements(Hdr::Contact).len(), 2);

    let r = parsed_request("esc02");
    assert_eq!(r.method, Method::Other("RE%47IST%45R".into()));
    assert_eq!(r.headers.count(Hdr::Contact), 2, "C%6Fntact is not Contact");
    assert_eq!(
        r.headers.get_named("C%6Fntact"),
        Some("<sip:alias2@host2.example.com>")
    );
}

#[test]
fn lwsdisp_longreq_semiuri_transports() {
    assert_eq!(
        accepted_request("lwsdisp").from_tag().as_deref(),
        Some("323")
    );

    let r = accepted_request("longreq");
    let v = vias(&r);
    assert_eq!(v.len(), 34);
    assert_eq!(v[0].host, "sip33.example.com");
    assert_eq!(v[0].branch, None, "RFC 2543-style top Via");
    assert_eq!(v[33].received.as_deref(), Some("192.0.2.5"));
    let to = NameAddr::parse(r.headers.get(Hdr::To).expect("To")).expect("To");
    assert_eq!(SipUri::parse(&to.uri).expect("To URI").port, Some(6000));
    assert!(r.from_tag().expect("tag").ends_with("982982424"));

    let u = accepted_request("semiuri").request_uri().expect("R-URI");
    assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
    assert_eq!(u.host, "example.com");

    let transports: Vec<String> = vias(&accepted_request("transports"))
        .into_iter()
        .map(|v| v.transport)
        .collect();
    assert_eq!(transports, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
}

#[test]
fn dblreq_and_mpart01_framing() {
    let r = parsed_request("dblreq");
    assert_eq!(r.method, Method::Register);
    assert_eq!(r.call_id(), Some("dblreq.0ha0isndaksdj99sdfafnl3lk233412"));
    assert!(r.body.is_empty(), "the trailing INVITE is not a body");

    let r = parsed_request("mpart01");
    assert_eq!(r.body.len(), 553);
    assert!(r.body.contains(&0), "binary part with NULs kept");
}

#[test]
fn responses_unreason_noreason() {
    let r = accepted_response("unreason");
    assert_eq!(r.status, 200);
    assert_eq!(r.reason, "= 2**3 * 5**2 но сто девяносто девять - простое");
    let r = accepted_response("noreason");
    assert_eq!(r.status, 100);
    assert_eq!(r.reason, "");
}

#[test]
fn inv2543_fields() {
    let r = accepted_request("inv2543");
    assert_eq!(vias(&r)[0].branch, None, "no branch");
    assert_eq!(r.from_tag(), None, "no From tag");
    assert_eq!(r.headers.get(Hdr::ContentLength), None);
    assert_eq!(r.headers.get(Hdr::MaxForwards), None);
    assert_eq!(
        &r.body[..],
        b"v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\nm=audio 49217 RTP/AVP 0\r\n",
        "the body is the rest of the datagram"
    );
}

#[test]
fn application_layer_replies_carry_what_the_rfc_names() {
    let p = Policy::default();
    let r = reply("bext01", &p);
    assert_eq!(
        r.headers.get(Hdr::Unsupported),
        Some("nothingSupportsThis, nothingSupportsThisEither"),
        "the Require tags; Proxy-Require is for proxies"
    );
    let r = reply("invut", &p);
    assert_eq!(
        r.headers.get(Hdr::Accept),
        Some("application/sdp, multipart/mixed")
    );
    let r = reply("sdp01", &p);
    assert!(r
        .headers
        .get_named("Warning")
        .is_some_and(|w| w.starts_with("399 ")));
    for file in ["esc02", "mismatch02", "intmeth"] {
        assert!(reply(file, &p).headers.get(Hdr::Allow).is_some(), "{file}");
    }
    let r = reply("badbranch", &p);
    assert_eq!(
        r.headers.get(Hdr::Via),
        Some("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK")
    );
    assert_eq!(accepted_request("zeromf").max_forwards(), Some(Ok(0)));
    // 505 is answered although the Via says SIP/7.0: it is copied as is.
    let r = reply("badvers", &p);
    assert_eq!(
        r.headers.get(Hdr::Via),
        Some("SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw")
    );
}
