//! The registrar in virtual time: RFC 3261 §10.3 (binding rules, 423,
//! Call-ID/CSeq ordering, `Contact: *`), §22 / RFC 7616 / RFC 8760 digest
//! (both algorithms, stale nonces), the lockouts and their bounds.

use super::*;
use crate::sip::digest::{self, Algorithm, Credentials};
use crate::sip::msg::{Method, Request, Response};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn config() -> RegistrarConfig {
    RegistrarConfig {
        realm: "hotline".into(),
        algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
        min_expires: Duration::from_secs(60),
        max_expires: Duration::from_secs(3600),
        default_expires: Duration::from_secs(1800),
        nonce_ttl: Duration::from_secs(300),
        lockout_failures: 3,
        lockout_window: Duration::from_secs(60),
        lockout_for: Duration::from_secs(600),
    }
}

/// A registrar and a clock.
struct T {
    reg: Registrar,
    t0: Instant,
    now: Instant,
}

impl T {
    fn new() -> T {
        T::with(config())
    }

    fn with(config: RegistrarConfig) -> T {
        let t0 = crate::time::now();
        let users =
            [("1001", "pw-1001"), ("1002", "pw-1002")].map(|(u, p)| (u.to_string(), p.to_string()));
        T {
            reg: Registrar::new(config, users, SECRET, t0),
            t0,
            now: t0,
        }
    }

    fn at(&mut self, secs: u64) {
        self.now = self.t0 + Duration::from_secs(secs);
    }

    fn register(&mut self, req: &Request, from: SocketAddr) -> (Response, Option<Change>) {
        self.reg.register(req, from, Transport::Udp, self.now)
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const PHONE: &str = "192.0.2.10:5060";

/// An agent's phone: its Call-ID and CSeq, its last challenge.
struct Phone {
    user: String,
    password: String,
    contact: String,
    call_id: String,
    cseq: u32,
    nonce: Option<String>,
    algorithm: Algorithm,
}

impl Phone {
    fn new(user: &str, password: &str, contact: &str) -> Phone {
        Phone {
            user: user.into(),
            password: password.into(),
            contact: contact.into(),
            call_id: format!("reg-{user}@phone"),
            cseq: 0,
            nonce: None,
            algorithm: Algorithm::Sha256,
        }
    }

    /// A REGISTER with `extra` headers (Expires, a Contact override…).
    fn request(&mut self, contact: Option<&str>, extra: &[(&str, &str)]) -> Request {
        self.cseq += 1;
        let mut r = Request::new(Method::Register, "sip:gw.example");
        let h = &mut r.headers;
        h.push(
            "Via",
            format!("SIP/2.0/UDP {PHONE};branch=z9hG4bK{}", self.cseq),
        );
        h.push(
            "From",
            format!("<sip:{}@gw.example>;tag=ph{}", self.user, self.user),
        );
        h.push("To", format!("<sip:{}@gw.example>", self.user));
        h.push("Call-ID", self.call_id.clone());
        h.push("CSeq", format!("{} REGISTER", self.cseq));
        h.push("Max-Forwards", "70");
        h.push("User-Agent", "Yealink SIP-T46U 108.86.0.20");
        if let Some(c) = contact {
            h.push("Contact", c);
        }
        for (n, v) in extra {
            h.push(n, *v);
        }
        if let Some(nonce) = &self.nonce {
            let auth = authorization(
                &self.user,
                &self.password,
                nonce,
                self.algorithm,
                "REGISTER",
                "sip:gw.example",
            );
            r.headers.push("Authorization", auth);
        }
        r
    }

    /// REGISTER with its own Contact and `extra`.
    fn register(&mut self, extra: &[(&str, &str)]) -> Request {
        let c = format!("<{}>", self.contact);
        self.request(Some(&c), extra)
    }

    /// Take the challenge of this algorithm from a 401.
    fn learn(&mut self, r: &Response, algorithm: Algorithm) {
        assert_eq!(r.status, 401, "{r:?}");
        let ch = challenge(r, "WWW-Authenticate", algorithm);
        self.nonce = Some(param(&ch, "nonce"));
        self.algorithm = algorithm;
    }
}

/// The challenge header of `algorithm`.
fn challenge(r: &Response, header: &str, algorithm: Algorithm) -> String {
    let alg = format!("algorithm={}", algorithm.as_str());
    r.headers
        .0
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(header))
        .map(|h| h.value.clone())
        .find(|v| v.contains(&alg))
        .unwrap()
}

fn param(header: &str, name: &str) -> String {
    let at = header.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
    header[at..].split('"').next().unwrap().to_string()
}

/// A client's `Authorization` value (RFC 7616 §3.4 with qop=auth).
fn authorization(
    user: &str,
    password: &str,
    nonce: &str,
    algorithm: Algorithm,
    method: &str,
    uri: &str,
) -> String {
    let mut c = Credentials {
        username: user.into(),
        realm: "hotline".into(),
        nonce: nonce.into(),
        uri: uri.into(),
        response: String::new(),
        algorithm: Some(algorithm.as_str().into()),
        cnonce: Some("c0ffee".into()),
        nc: Some("00000001".into()),
        qop: Some("auth".into()),
    };
    c.response = digest::response(algorithm, &c, method, password);
    format!(
        "Digest username=\"{}\", realm=\"hotline\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{}\", algorithm={}, cnonce=\"c0ffee\", nc=00000001, qop=auth",
        c.username,
        c.response,
        algorithm.as_str()
    )
}

fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers.get_named(name)
}

fn registered(user: &str, refreshed: bool) -> Option<Change> {
    Some(Change::Registered {
        user: user.into(),
        refreshed,
    })
}

/// Challenge, then REGISTER with credentials of `algorithm`: the 200.
fn sign_in(
    t: &mut T,
    p: &mut Phone,
    algorithm: Algorithm,
    extra: &[(&str, &str)],
) -> (Response, Option<Change>) {
    let req = p.register(extra);
    let (r, change) = t.register(&req, addr(PHONE));
    assert_eq!((r.status, change), (401, None));
    p.learn(&r, algorithm);
    let req = p.register(extra);
    t.register(&req, addr(PHONE))
}

// ------------------------------------------------------------ the flow

#[test]
fn challenge_then_register_with_either_algorithm() {
    for algorithm in [Algorithm::Sha256, Algorithm::Md5] {
        let mut t = T::new();
        let mut p = Phone::new("1001", "pw-1001", "sip:1001@192.0.2.10:5060");
        let req = p.register(&[]);
        let (r, change) = t.register(&req, addr(PHONE));
        assert_eq!((r.status, change), (401, None));
        // One challenge per algorithm, SHA-256 first (RFC 8760 §2.4).
        let ch: Vec<&str> = r.headers.all(Hdr::Other).collect();
        assert_eq!(ch.len(), 2);
        assert!(ch[0].contains("algorithm=SHA-256") && ch[1].contains("algorithm=MD5"));
        assert!(ch
            .iter()
            .all(|c| c.contains("realm=\"hotline\"") && c.contains("qop=\"auth\"")));
        assert!(r.to_tag().is_some(), "a final response carries a To tag");
        p.learn(&r, algorithm);

        let req = p.register(&[]);
        let (r, change) = t.register(&req, addr(PHONE));
        assert_eq!(r.status, 200, "{algorithm:?}");
        assert_eq!(change, registered("1001", false));
        // Default expiry (1800 s), listed and granted.
        assert_eq!(
            r.headers.get(Hdr::Contact),
            Some("<sip:1001@192.0.2.10:5060>;expires=1800")
        );
        assert_eq!(r.headers.get(Hdr::Expires), Some("1800"));
        let b = t.reg.binding("1001").unwrap();
        assert_eq!(b.contact, "sip:1001@192.0.2.10:5060");
        assert_eq!(b.source, addr(PHONE));
        assert_eq!(b.transport, Transport::Udp);
        assert_eq!(b.expires, t.now + Duration::from_secs(1800));
        assert_eq!((b.call_id.as_str(), b.cseq), ("reg-1001@phone", 2));
        assert_eq!(
            b.user_agent.as_deref(),
            Some("Yealink SIP-T46U 108.86.0.20")
        );
        let s = t.reg.stats();
        assert_eq!((s.challenges, s.registrations, s.bindings), (1, 1, 1));
        assert_eq!(t.reg.poll_timeout(), Some(b.expires));
    }
}

#[test]
fn the_algorithm_order_is_the_configured_one() {
    let mut t = T::with(RegistrarConfig {
        algorithms: vec![Algorithm::Md5, Algorithm::Sha256],
        ..config()
    });
    let mut p = Phone::new("1001", "pw-1001", "sip:1001@192.0.2.10:5060");
    let (r, _) = t.register(&p.register(&[]), addr(PHONE));
    let ch: Vec<&str> = r.headers.all(Hdr::Other).collect();
    assert!(ch[0].contains("algorithm=MD5") && ch[1].contains("algorithm=SHA-256"));
}

#[test]
fn refresh_keeps_the_binding_and_expiry_removes_it() {
    let mut t = T::new();
    let mut p = Phone::new("1001", "pw-1001", "sip:1001@192.0.2.10:5060");
    let (r, _) = sign_in(&mut t, &mut p, Algorithm::Sha256, &[("Expires", "120")]);
    assert_eq!(header(&r, "Expires"), Some("120"));

    // Refresh at 100 s with the same nonce (still fresh): same binding.
    t.at(100);
    let (r, change) = t.register(&p.register(&[("Expires", "120")]), addr(PHONE));
    assert_eq!(r.status, 200);
    assert_eq!(change, registered("1001", true));
    assert_eq!(
        t.reg.binding("1001").unwrap().expires,
        t.t0 + Duration::from_secs(220)
    );
    assert!(t
        .reg
        .handle_timeout(t.t0 + Duration::from_secs(219))
        .is_empty());
    assert_eq!(t.reg.poll_timeout(), Some(t.t0 + Duration::from_secs(220)));

    // No refresh: it lapses at 220 s.
    let at = t.reg.poll_timeout().unwrap();
    assert_eq!(
        t.reg.handle_timeout(at),
        vec![Change::Unregistered {
            user: "1001".into(),
            expired: true
        }]
    );
    assert!(t.reg.binding("1001").is_none());
    let s = t.reg.stats();
    assert_eq!(
        (s.registrations, s.refreshes, s.expiries, s.bindings),
        (1, 1, 1, 0)
    );
    assert_eq!(t.reg.poll_timeout(), None);
}

#[test]
fn a_query_lists_the_binding_with_its_remaining_time() {
    let mut t = T::new();
    let mut p = Phone::new("1001", "pw-1001", "sip:1001@192.0.2.10:5060");
    sign_in(&mut t, &mut p, Algorithm::Sha256, &[("Expires", "600")]);
    t.at(100);
    let (r, change) = t.register(&p.request(None, &[]), addr(PHONE));
    assert_eq!((r.status, change), (200, None));
    assert_eq!(
        r.headers.get(Hdr::Contact),
        Some("<sip:1001@192.0.2.10:5060>;expires=500")
    );
    assert_eq!(r.headers.get(Hdr::Expires), None);
    // An agent with no binding: 200 without Contact.
    let mut q = Phone::new("1002", "pw-1002", "sip:1002@192.0.2.11:5060");
    let req = q.request(None, &[]);
    let (r, _) = t.register(&req, addr(PHONE));
    q.learn(&r, Algorithm::Md5);
    let (r, change) = t.register(&q.request(None, &[]), addr(PHONE));
    assert_eq!(
        (r.status, change, r.headers.get(Hdr::Contact)),
        (200, None, None)
    );
}

#[test]
fn expires_zero_removes_and_contact_star_removes_only_with_expires_zero() {
    let mut t = T::new();
    let mut p = Phone::new("1001", "pw-1001", "sip:1001@192.0.2.10:5060");
    sign_in(&mut t, &mut p, Algorithm::Sha256, &[]);
    // The Contact's expires=0.
    let c = format!("<{}>;expires=0", p.contact);
    let (r, change) = t.register(&p.request(Some(&c), &[]), addr(PHONE));
    assert_eq!(r.status, 200);
    assert_eq!(r.headers.get(Hdr::Contact), None);
    assert_eq!(
        change,
        Some(Change::Unregistered {
            user: "1001".into(),
            expired: false
        })
    );
    assert_eq!(t.reg.poll_timeout(), None);

    // Again, then `*`.
    let (_, change) = t.register(&p.register(&[]), addr(PHONE));
    assert_eq!(change, registered("1001", false));
    for bad in [vec![], vec![("Expires", "60")]] {
        let (r, change) = t.register(&p.request(Some("*"), &bad), addr(PHONE));
        assert_eq!((r.status, change), (400, None), "{bad:?}");
    }
    let both = format!("*, <{}>", p.contact);
    let (r, _) = t.register(&p.request(Some(&both), &[("Expires", "0")]), addr(PHONE));
    assert_eq!(r.status, 400);
    assert!(t.reg.binding("1001").is_some());
    let (r, change) = t.register(&p.request(Some("*"), &[("Expires", "0")]), addr(PHONE));
    assert_eq!(r.status, 200);
    assert_eq!(
        change,
        Some(Change::Unregistered {
            user: "1001".into(),
            expired: false
        })
    );
    assert!(t.reg.binding("1001").is_none());
    assert_eq!(t.reg.stats().removals, 2);
    // `*` with nothing bound: 200, no change.
    let (r, change) = t.register(&p.request(Some("*"), &[("Expires", "0")]), addr(PHONE));
    assert_eq!((r.status, change), (200, None));
}

#[test]
fn too_brief_is_423_and_too_long_is_cut_to_the_max() {
    let mut t = T::new();
    let mut p = Phone::new("1001", "pw-1001", "sip:1001@192.0.2.10:5060");
    let (r, change) = sign_in(&mut t, &mut p, Algorithm::Sha256, &[("Expires", "30")]);
    assert_eq!((r.status, change), (423, None));
    assert_eq!(header(&r, "Min-Expires"), Some("60"));
    assert!(t.reg.binding("1001").is_none());
    // The Contact's parameter wins over the header (§10.2.1.1).
    let c = format!("<{}>;expires=59", p.contact);
    let (r, _) = t.register(&p.request(Some(&c), &[("Expires", "600")]), addr(PHONE));
    assert_eq!(r.status, 423);

    let c = format!("<{}>;expires=86400", p.contact);
    let (r, change) = t.register(&p.request(Some(&c), &[("Expires", "30")]), addr(PHONE));
    assert_eq!(r.status, 200);
    assert_eq!(change, registered("1001", false));
    assert_eq!(
        r.headers.get(Hdr::Contact),
        Some("<sip:1001@192.0.2.10:5060>;expires=3600")
    );
    assert_eq!(r.headers.get(Hdr::Expires), Some("3600"));
    // Larger than 2^32-1 is 2^32-1, still cut; malformed is the default.
    let (r, _) = t.register(
        &p.register(&[("Expires", "99999999999999999999999")]),
        addr(PHONE),
    );
    assert_eq!(r.headers.get(Hdr::Expires), Some("3600"));
    let (r, _) = t.register(&p.register(&[("Expires", "soon")]), addr(PHONE));
    assert_eq!(r.headers.get(Hdr::Expires), Some("1800"));
}

#[test]
fn the_latest_phone_wins_and_an_old_phone_cannot_remove_it() {
    let mut t = T::new();
    let mut desk = Phone::new("1001", "pw-1001", "sip:1001@192.0.2.10:5060");
    sign_in(&mut t, &mut desk, Algorithm::Sha256, &[]);
    let mut other = Phone::new("1001", "pw-1001", "sip:1001@192.0.2.77:5062");
    other.call_id = "another-phone".into();
    let (r, change) = sign_in(&mut t, &mut other, Algorithm::Md5, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(change, registered("1001", false), "a new Contact replaces");
    assert_eq!(t.reg.bindings().count(), 1);
    assert_eq!(
        t.reg.binding("1001").unwrap().contact,
        "sip:1001@192.0.2.77:5062"
    );
    // The first phone signs off: its Contact is not bound, nothing changes.
    let c = format!("<{}>", desk.contact);
    let (r, change) = t.register(&desk.request(Some(&c), &[("Expires", "0")]), addr(PHONE));
    assert_eq!((r.status, change), (200, None));
    assert_eq!(
        r.headers.get(Hdr::Contact),
        Some("<sip:1001@192.0.2.77:5062>;expires=1800")
    );
    let s = t.reg.stats();
    assert_eq!((s.registrations, s.removals, s.bindings), (2, 0, 1));
}

#[test]
fn same_call_id_with_an_old_cseq_is_500_with_retry_after() {
    let mut t = T::new();
    let mut p = Phone::new("1001", "pw-1001", "sip:1001@192.0.2.10:5060");
    sign_in(&mut t, &mut p, Algorithm::Sha256, &[]); // bound with CSeq 2
    let stored = p.cseq;
    // The same CSeq again (a new transaction), and a lower one.
    for cseq in [stored, stored - 1] {
        p.cseq = cseq - 1;
        let (r, change) = t.register(&p.register(&[("Expires", "0")]), addr(PHONE));
        assert_eq!((r.status, change), (500, None), "CSeq {cseq}");
        assert_eq!(header(&r, "Retry-After"), Some("1800"));
    }
    assert!(t.reg.binding("1001").is_some(), "nothing changed");
    // Another Call-ID with a low CSeq is another registration: fine.
    p.call_id = "rebooted".into();
    p.cseq = 0;
    let (r, change) = t.register(&p.register(&[]), addr(PHONE));
    assert_eq!((r.status, change), (200, registered("1001", true)));
    assert_eq!(t.reg.binding("1001").unwrap().cseq, 1);
}

#[test]
fn a_stale_nonce_with_the_right_password_is_challenged_stale() {
    let mut t = T::new();
    let mut p = Phone::new("1001", "pw-1001", "sip:1001@192.0.2.10:5060");
    sign_in(&mut t, &mut p, Algorithm::Sha256, &[]);
    t.at(301);
    let (r, change) = t.register(&p.register(&[]), addr(PHONE));
    assert_eq!((r.status, change), (401, None));
    assert!(r.headers.all(Hdr::Other).all(|c| c.contains("stale=true")));
    p.learn(&r, Algorithm::Sha256);
    let (r, change) = t.register(&p.register(&[]), addr(PHONE));
    assert_eq!((r.status, change), (200, registered("1001", true)));
    // A stale nonce with a wrong password is a failure, not a retry.
    t.at(700);
    p.password = "guess".into();
    let (r, _) = t.register(&p.register(&[]), addr(PHONE));
    assert_eq!(r.status, 403);
    assert_eq!(t.reg.stats().auth_failures, 1);
}

#[test]
fn a_foreign_nonce_or_realm_gets_a_fresh_challenge() {
    let mut t = T::new();
    let mut p = Phone::new("1001", "pw-1001", "sip:1001@192.0.2.10:5060");
    p.nonce = Some("0.00000000000000000000000000000000".into());
    let (r, _) = t.register(&p.register(&[]), addr(PHONE));
    assert_eq!(r.status, 401);
    assert!(!r.headers.all(Hdr::Other).any(|c| c.contains("stale")));
    // Credentials for another realm are not ours: a challenge.
    let mut req = Phone::new("1001", "pw-1001", "sip:x@h").register(&[]);
    req.headers.push(
        "Authorization",
        r#"Digest username="1001", realm="elsewhere", nonce="1.2", uri="sip:gw", response="00""#,
    );
    let (r, _) = t.register(&req, addr(PHONE));
    assert_eq!(r.status, 401);
    assert_eq!(t.reg.stats().auth_failures, 0);
}

#[test]
fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let mut t = T::new();
    let mut wrong = Phone::new("1001", "not-it", "sip:1001@192.0.2.10:5060");
    let mut ghost = Phone::new("9999", "whatever", "sip:9999@192.0.2.10:5060");
    let (a, _) = sign_in(&mut t, &mut wrong, Algorithm::Sha256, &[]);
    let (b, _) = sign_in(&mut t, &mut ghost, Algorithm::Sha256, &[]);
    assert_eq!((a.status, b.status), (403, 403));
    assert_eq!(a.reason, b.reason);
    let names = |r: &Response| {
        r.headers
            .0
            .iter()
            .map(|h| h.name.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&a), names(&b));
    // The same but for the tags and the echoed identities.
    assert_eq!(a.to_tag().map(|t| t.len()), b.to_tag().map(|t| t.len()));
    assert_ne!(a.to_tag(), b.to_tag());
    assert_eq!(t.reg.stats().auth_failures, 2);
    assert!(t.reg.bindings().next().is_none());
}

#[test]
fn the_username_must_be_the_aor_user() {
    let mut t = T::new();
    // 1002's good credentials, registering 1001's AOR.
    let mut p = Phone::new("1001", "pw-1001", "sip:1001@192.0.2.10:5060");
    let req = p.register(&[]);
    let (r, _) = t.register(&req, addr(PHONE));
    let nonce = param(&challenge(&r, "WWW-Authenticate", Algorithm::Md5), "nonce");
    let mut req = p.register(&[]);
    req.headers.push(
        "Authorization",
        authorization(
            "1002",
            "pw-1002",
            &nonce,
            Algorithm::Md5,
            "REGISTER",
            "sip:gw.example",
        ),
    );
    let (r, change) = t.register(&req, addr(PHONE));
    assert_eq!((r.status, change), (403, None));
    assert!(t.reg.bindings().next().is_none());
    assert_eq!(t.reg.stats().auth_failures, 1);
}

// ------------------------------------------------------------ lockouts

/// One failed REGISTER as `user` from `from`, with a valid nonce.
fn fail_once(t: &mut T, user: &str, from: &str) -> Response {
    let mut p = Phone::new(user, "bad guess", &format!("sip:{user}@{from}"));
    p.nonce = Some(t.reg.digest.nonce(t.now));
    let req = p.register(&[]);
    t.register(&req, addr(from)).0
}

#[test]
fn failures_from_one_ip_lock_it_out_then_the_lockout_ends() {
    let mut t = T::new(); // 3 failures in 60 s: 600 s
    for user in ["a", "b", "c"] {
        assert_eq!(fail_once(&mut t, user, "198.51.100.7:5060").status, 403);
    }
    assert_eq!(t.reg.stats().lockouts, 1);
    // Now even the right password from that IP gets the same 403, and no
    // challenge either.
    let mut p = Phone::new("1001", "pw-1001", "sip:1001@198.51.100.7:5060");
    let (r, _) = t.register(&p.register(&[]), addr("198.51.100.7:5060"));
    assert_eq!(r.status, 403);
    p.nonce = Some(t.reg.digest.nonce(t.now));
    let (r, _) = t.register(&p.register(&[]), addr("198.51.100.7:6000"));
    assert_eq!(r.status, 403);
    assert_eq!(t.reg.stats().locked_out, 2);
    // Another IP is not affected.
    let (r, _) = t.register(&p.register(&[]), addr(PHONE));
    assert_eq!(r.status, 200);
    // The lockout ends at 600 s.
    let end = t.reg.poll_timeout().unwrap();
    assert!(end <= t.t0 + Duration::from_secs(600));
    t.at(600);
    let _ = t.reg.handle_timeout(t.now);
    assert_eq!(t.reg.by_ip.len(), 0);
    p.nonce = Some(t.reg.digest.nonce(t.now));
    let (r, _) = t.register(&p.register(&[]), addr("198.51.100.7:5060"));
    assert_eq!(r.status, 200);
}

#[test]
fn failures_outside_the_window_do_not_add_up() {
    let mut t = T::new();
    for (i, at) in [0, 30, 61, 90].into_iter().enumerate() {
        t.at(at);
        let _ = t.reg.handle_timeout(t.now);
        fail_once(&mut t, &format!("u{i}"), "198.51.100.7:5060");
    }
    assert_eq!(t.reg.stats().lockouts, 0, "two in each window");
    fail_once(&mut t, "u9", "198.51.100.7:5060");
    assert_eq!(t.reg.stats().lockouts, 1);
}

#[test]
fn failures_for_one_username_lock_it_from_anywhere() {
    let mut t = T::new();
    for ip in [
        "198.51.100.1:5060",
        "198.51.100.2:5060",
        "198.51.100.3:5060",
    ] {
        assert_eq!(fail_once(&mut t, "1001", ip).status, 403);
    }
    // A user that does not exist is tracked alike.
    for ip in ["203.0.113.1:5060", "203.0.113.2:5060", "203.0.113.3:5060"] {
        fail_once(&mut t, "nobody", ip);
    }
    assert_eq!(t.reg.stats().lockouts, 2);
    // The real 1001 with the right password: the same 403, while 1002 is fine.
    let mut p = Phone::new("1001", "pw-1001", "sip:1001@192.0.2.10:5060");
    p.nonce = Some(t.reg.digest.nonce(t.now));
    let (a, _) = t.register(&p.register(&[]), addr(PHONE));
    let wrong = fail_once(&mut t, "1002", PHONE);
    assert_eq!((a.status, wrong.status), (403, 403));
    assert_eq!(a.headers.0.len(), wrong.headers.0.len());
    let mut q = Phone::new("1002", "pw-1002", "sip:1002@192.0.2.10:5060");
    q.nonce = Some(t.reg.digest.nonce(t.now));
    let (r, _) = t.register(&q.register(&[]), addr("192.0.2.99:5060"));
    assert_eq!(r.status, 200);
    // After the lockout: 1001 signs in.
    t.at(601);
    let _ = t.reg.handle_timeout(t.now);
    p.nonce = Some(t.reg.digest.nonce(t.now));
    let (r, _) = t.register(&p.register(&[]), addr(PHONE));
    assert_eq!(r.status, 200);
}

#[test]
fn zero_failures_disables_lockouts() {
    let mut t = T::with(RegistrarConfig {
        lockout_failures: 0,
        ..config()
    });
    for _ in 0..10 {
        fail_once(&mut t, "1001", PHONE);
    }
    assert_eq!(t.reg.stats().lockouts, 0);
    assert_eq!(t.reg.poll_timeout(), None);
}

#[test]
fn the_lockout_tables_are_bounded() {
    let mut t = T::new();
    // A scanner: one failure from each of MAX_TRACKED + 500 addresses and
    // names.
    for i in 0..(MAX_TRACKED as u32 + 500) {
        let ip = std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i));
        let from = SocketAddr::new(ip.into(), 5060);
        t.reg.failed(from.ip(), &format!("scan{i}"), t.now);
    }
    assert_eq!(t.reg.by_ip.len(), MAX_TRACKED);
    assert_eq!(t.reg.by_user.len(), MAX_TRACKED);
    assert!(t.reg.by_ip.order.len() <= 2 * MAX_TRACKED + 16);
    // The oldest went first: the newest is still counted.
    let newest =
        std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(MAX_TRACKED as u32 + 499));
    assert!(t.reg.by_ip.entries.contains_key(&IpAddr::from(newest)));
    assert!(!t
        .reg
        .by_ip
        .entries
        .contains_key(&IpAddr::from(std::net::Ipv6Addr::from(
            0x2001_0db8_u128 << 96
        ))));
    // A huge username is tracked by a short key.
    t.reg.failed(addr(PHONE).ip(), &"x".repeat(60_000), t.now);
    assert!(t.reg.by_user.entries.keys().all(|k| k.len() <= 64));
    // All forgotten when the window ends.
    t.at(61);
    let _ = t.reg.handle_timeout(t.now);
    assert_eq!((t.reg.by_ip.len(), t.reg.by_user.len()), (0, 0));
    assert_eq!(t.reg.poll_timeout(), None);
}

// ------------------------------------------------------------ authenticate

fn invite(auth: Option<String>) -> Request {
    let mut r = Request::new(Method::Invite, "sip:*21@gw.example");
    let h = &mut r.headers;
    h.push("Via", format!("SIP/2.0/UDP {PHONE};branch=z9hG4bKinv"));
    h.push("From", "<sip:1001@gw.example>;tag=a1");
    h.push("To", "<sip:*21@gw.example>");
    h.push("Call-ID", "feature-1");
    h.push("CSeq", "1 INVITE");
    if let Some(a) = auth {
        h.push("Proxy-Authorization", a);
    }
    r
}

#[test]
fn authenticate_challenges_an_invite_with_407_and_accepts_the_answer() {
    let mut t = T::new();
    let r = t
        .reg
        .authenticate(&invite(None), addr(PHONE), t.now)
        .unwrap_err();
    assert_eq!(r.status, 407);
    let ch = challenge(&r, "Proxy-Authenticate", Algorithm::Sha256);
    assert!(header(&r, "WWW-Authenticate").is_none());
    let nonce = param(&ch, "nonce");
    let uri = "sip:*21@gw.example";
    for alg in [Algorithm::Sha256, Algorithm::Md5] {
        let a = authorization("1001", "pw-1001", &nonce, alg, "INVITE", uri);
        assert_eq!(
            t.reg.authenticate(&invite(Some(a)), addr(PHONE), t.now),
            Ok("1001".into())
        );
    }
    // Computed for REGISTER: the method is part of the digest.
    let a = authorization(
        "1001",
        "pw-1001",
        &nonce,
        Algorithm::Sha256,
        "REGISTER",
        uri,
    );
    let r = t
        .reg
        .authenticate(&invite(Some(a)), addr(PHONE), t.now)
        .unwrap_err();
    assert_eq!(r.status, 403);
    // Stale: 407 stale=true.
    t.at(400);
    let a = authorization("1001", "pw-1001", &nonce, Algorithm::Sha256, "INVITE", uri);
    let r = t
        .reg
        .authenticate(&invite(Some(a)), addr(PHONE), t.now)
        .unwrap_err();
    assert_eq!(r.status, 407);
    assert!(challenge(&r, "Proxy-Authenticate", Algorithm::Md5).contains("stale=true"));
    // Its failures count towards the same lockouts (the one at t0 is out
    // of the window by now).
    for _ in 0..3 {
        let a = authorization(
            "1001",
            "nope",
            &t.reg.digest.nonce(t.now),
            Algorithm::Md5,
            "INVITE",
            uri,
        );
        let _ = t.reg.authenticate(&invite(Some(a)), addr(PHONE), t.now);
    }
    assert_eq!(t.reg.stats().lockouts, 2, "the IP and the username");
    let a = authorization(
        "1001",
        "pw-1001",
        &t.reg.digest.nonce(t.now),
        Algorithm::Md5,
        "INVITE",
        uri,
    );
    assert_eq!(
        t.reg
            .authenticate(&invite(Some(a)), addr(PHONE), t.now)
            .unwrap_err()
            .status,
        403
    );
}

#[test]
fn set_users_drops_the_bindings_of_removed_agents() {
    let mut t = T::new();
    let mut p = Phone::new("1001", "pw-1001", "sip:1001@192.0.2.10:5060");
    sign_in(&mut t, &mut p, Algorithm::Sha256, &[]);
    let changes = t.reg.set_users([("1002".to_string(), "pw".to_string())]);
    assert_eq!(
        changes,
        vec![Change::Unregistered {
            user: "1001".into(),
            expired: false
        }]
    );
    assert_eq!(t.reg.poll_timeout(), None);
}

#[test]
fn contact_parameters_are_read_outside_the_uri() {
    assert_eq!(
        contact("\"Desk <3>\" <sip:1001@h;transport=tcp>;expires=60;q=0.5"),
        Some(("sip:1001@h;transport=tcp".to_string(), Some("60")))
    );
    assert_eq!(
        contact("sip:1001@h;expires=0"),
        Some(("sip:1001@h".to_string(), Some("0")))
    );
    assert_eq!(
        contact("<sip:1001@h;expires=5>"),
        Some(("sip:1001@h;expires=5".to_string(), None))
    );
    assert!(same_uri(
        "sip:1001@Host:5060",
        "sip:1001@host:5060;transport=udp"
    ));
    assert!(!same_uri("sip:1001@host:5060", "sip:1001@host"));
}

#[test]
fn debug_output_has_no_passwords() {
    let t = T::new();
    let shown = format!("{:?}", t.reg);
    assert!(!shown.contains("pw-1001"), "{shown}");
    assert!(shown.contains("users: 2"));
}
