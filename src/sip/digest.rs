//! SIP digest authentication, server side (RFC 3261 §22, RFC 7616 as
//! RFC 8760 applies it to SIP): challenges and the check of credentials,
//! sans-IO.
//!
//! - **Algorithms**: SHA-256 is offered first, MD5 second (RFC 8760 §2.4:
//!   a UAC picks the first it supports; carriers' SBCs and old phones often
//!   know only MD5). `qop=auth`; a response without qop (RFC 2069 style) is
//!   accepted too.
//! - **Nonces are stateless**: `<issued>.<mac>` where `issued` is the
//!   milliseconds since the server's start and `mac` an HMAC-SHA256 over it
//!   with a per-process key. Any nonce we issued within `nonce_ttl` is good;
//!   an older one of ours gets a fresh challenge with `stale=true` (the UAC
//!   retries without asking its user); anything else is a failure.
//! - **Identical answers** for an unknown user and a wrong password: the
//!   caller of [`DigestServer::check`] sees which, the network does not.
//!
//! Replays of a whole request within the nonce lifetime are not detected
//! (no per-nonce `nc` tracking): the transaction layer absorbs
//! retransmissions, and a replayed INVITE is a new call the trunk's
//! `max_calls` and `max_cps` still bound.

mod md5;

use std::time::Duration;

use crate::time::Instant;

pub use md5::md5;

/// A digest algorithm (RFC 8760).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `SHA-256`.
    Sha256,
    /// `MD5`.
    Md5,
}

impl Algorithm {
    /// As written in `algorithm=`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Md5 => "MD5",
        }
    }

    fn hash_hex(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => hex(&md5(data.as_bytes())),
            Algorithm::Sha256 => {
                hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data.as_bytes()).as_ref())
            }
        }
    }
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// The parameters of an `Authorization` / `Proxy-Authorization` header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// `username`.
    pub username: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `uri` (the digest-uri).
    pub uri: String,
    /// `response`.
    pub response: String,
    /// `algorithm` (absent means MD5, RFC 3261 §25.1).
    pub algorithm: Option<String>,
    /// `cnonce`.
    pub cnonce: Option<String>,
    /// `nc`.
    pub nc: Option<String>,
    /// `qop`.
    pub qop: Option<String>,
}

impl Credentials {
    /// Parse a header value `Digest k=v, k="v", ...`; `None` if it is not
    /// a digest or lacks a required parameter.
    #[must_use]
    pub fn parse(value: &str) -> Option<Credentials> {
        let v = value.trim_start();
        let (scheme, rest) = v.split_at(v.find(char::is_whitespace)?);
        if !scheme.eq_ignore_ascii_case("digest") {
            return None;
        }
        let mut c = Credentials::default();
        let (mut user, mut realm, mut nonce, mut uri, mut response) =
            (false, false, false, false, false);
        for (k, val) in params(rest)? {
            match k.to_ascii_lowercase().as_str() {
                "username" => (c.username, user) = (val, true),
                "realm" => (c.realm, realm) = (val, true),
                "nonce" => (c.nonce, nonce) = (val, true),
                "uri" => (c.uri, uri) = (val, true),
                "response" => (c.response, response) = (val, true),
                "algorithm" => c.algorithm = Some(val),
                "cnonce" => c.cnonce = Some(val),
                "nc" => c.nc = Some(val),
                "qop" => c.qop = Some(val),
                _ => {}
            }
        }
        (user && realm && nonce && uri && response).then_some(c)
    }
}

/// `k=v, k="quoted \" value", ...` into pairs; `None` when malformed.
fn params(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') || key.is_empty() {
            return None;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => val.push(chars.next()?),
                    c => val.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                val.push(c);
                chars.next();
            }
        }
        out.push((key, val));
    }
}

/// Why credentials were not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Not a digest header we can read, or the realm or URI is not ours.
    Malformed,
    /// A nonce we issued but that is too old: challenge again with
    /// `stale=true`.
    Stale,
    /// A nonce we never issued.
    BadNonce,
    /// Unknown user or wrong password (deliberately one case).
    Denied,
}

/// Issues challenges and checks credentials for one realm.
#[derive(Debug)]
pub struct DigestServer {
    realm: String,
    key: aws_lc_rs::hmac::Key,
    epoch: Instant,
    nonce_ttl: Duration,
}

impl DigestServer {
    /// A server for `realm` whose nonces live `nonce_ttl`; `secret` keys
    /// the nonces (random per process: a restart invalidates old nonces,
    /// which only costs one more challenge).
    #[must_use]
    pub fn new(realm: &str, secret: &[u8], now: Instant, nonce_ttl: Duration) -> DigestServer {
        DigestServer {
            realm: realm.to_owned(),
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret),
            epoch: now,
            nonce_ttl,
        }
    }

    /// The realm.
    #[must_use]
    pub fn realm(&self) -> &str {
        &self.realm
    }

    fn mac(&self, issued: &str) -> String {
        let tag = aws_lc_rs::hmac::sign(&self.key, issued.as_bytes());
        hex(&tag.as_ref()[..16])
    }

    /// A fresh nonce.
    #[must_use]
    pub fn nonce(&self, now: Instant) -> String {
        let issued = now
            .saturating_duration_since(self.epoch)
            .as_millis()
            .to_string();
        let mac = self.mac(&issued);
        format!("{issued}.{mac}")
    }

    /// The challenge header values (`WWW-Authenticate` for a registrar,
    /// `Proxy-Authenticate` for a 407), one per algorithm in order.
    #[must_use]
    pub fn challenges(&self, now: Instant, stale: bool, algorithms: &[Algorithm]) -> Vec<String> {
        let nonce = self.nonce(now);
        let stale = if stale { ", stale=true" } else { "" };
        algorithms
            .iter()
            .map(|a| {
                format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{stale}",
                    self.realm,
                    a.as_str()
                )
            })
            .collect()
    }

    /// Check `creds` sent with a request of `method` against `password`
    /// (`None`: unknown user, checked the same way so the answer and its
    /// cost do not tell).
    ///
    /// # Errors
    /// Why the credentials are not accepted.
    pub fn check(
        &self,
        creds: &Credentials,
        method: &str,
        password: Option<&str>,
        now: Instant,
    ) -> Result<(), Rejection> {
        if creds.realm != self.realm {
            return Err(Rejection::Malformed);
        }
        let algorithm = match creds.algorithm.as_deref() {
            None => Algorithm::Md5,
            Some(a) if a.eq_ignore_ascii_case("MD5") => Algorithm::Md5,
            Some(a) if a.eq_ignore_ascii_case("SHA-256") => Algorithm::Sha256,
            Some(_) => return Err(Rejection::Malformed),
        };
        let (issued, mac) = creds.nonce.split_once('.').ok_or(Rejection::BadNonce)?;
        let want = self.mac(issued);
        if !constant_time_eq(want.as_bytes(), mac.as_bytes()) {
            return Err(Rejection::BadNonce);
        }
        let issued_ms: u64 = issued.parse().map_err(|_| Rejection::BadNonce)?;
        let age = now
            .saturating_duration_since(self.epoch)
            .saturating_sub(Duration::from_millis(issued_ms));
        // The password is checked before the age: a stale nonce with the
        // wrong password is a failure, not an invitation to retry.
        let password_ok = match password {
            Some(pw) => {
                let expected = response(algorithm, creds, method, pw);
                constant_time_eq(expected.as_bytes(), creds.response.as_bytes())
            }
            None => {
                let _ = response(algorithm, creds, method, "");
                false
            }
        };
        if !password_ok {
            return Err(Rejection::Denied);
        }
        if age > self.nonce_ttl {
            return Err(Rejection::Stale);
        }
        Ok(())
    }
}

/// The `response` a UAC with `password` computes (RFC 7616 §3.4.1).
#[must_use]
pub fn response(algorithm: Algorithm, c: &Credentials, method: &str, password: &str) -> String {
    let ha1 = algorithm.hash_hex(&format!("{}:{}:{password}", c.username, c.realm));
    let ha2 = algorithm.hash_hex(&format!("{method}:{}", c.uri));
    match (&c.qop, &c.nc, &c.cnonce) {
        (Some(qop), Some(nc), Some(cnonce)) => {
            algorithm.hash_hex(&format!("{ha1}:{}:{nc}:{cnonce}:{qop}:{ha2}", c.nonce))
        }
        _ => algorithm.hash_hex(&format!("{ha1}:{}:{ha2}", c.nonce)),
    }
}

/// Compare secrets in time that does not depend on where they differ.
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(now: Instant) -> DigestServer {
        DigestServer::new(
            "hotline",
            b"0123456789abcdef",
            now,
            Duration::from_secs(300),
        )
    }

    fn creds_for(s: &DigestServer, alg: Algorithm, pw: &str, now: Instant) -> Credentials {
        let mut c = Credentials {
            username: "carrier".into(),
            realm: s.realm().into(),
            nonce: s.nonce(now),
            uri: "sip:12345@192.0.2.1".into(),
            response: String::new(),
            algorithm: Some(alg.as_str().into()),
            cnonce: Some("0a4f113b".into()),
            nc: Some("00000001".into()),
            qop: Some("auth".into()),
        };
        c.response = response(alg, &c, "INVITE", pw);
        c
    }

    #[test]
    fn rfc_7616_md5_and_sha256_examples() {
        // RFC 7616 §3.9.1 (an HTTP example; the hash rules are the same).
        let mut c = Credentials {
            username: "Mufasa".into(),
            realm: "http-auth@example.org".into(),
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v".into(),
            uri: "/dir/index.html".into(),
            response: String::new(),
            algorithm: Some("MD5".into()),
            cnonce: Some("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ".into()),
            nc: Some("00000001".into()),
            qop: Some("auth".into()),
        };
        assert_eq!(
            response(Algorithm::Md5, &c, "GET", "Circle of Life"),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
        c.algorithm = Some("SHA-256".into());
        assert_eq!(
            response(Algorithm::Sha256, &c, "GET", "Circle of Life"),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn good_credentials_pass_with_either_algorithm() {
        let t0 = crate::time::now();
        let s = server(t0);
        for alg in [Algorithm::Sha256, Algorithm::Md5] {
            let c = creds_for(&s, alg, "secret-pw", t0);
            assert_eq!(s.check(&c, "INVITE", Some("secret-pw"), t0), Ok(()));
        }
    }

    #[test]
    fn wrong_password_and_unknown_user_are_one_answer() {
        let t0 = crate::time::now();
        let s = server(t0);
        let c = creds_for(&s, Algorithm::Md5, "guess", t0);
        assert_eq!(
            s.check(&c, "INVITE", Some("secret-pw"), t0),
            Err(Rejection::Denied)
        );
        assert_eq!(s.check(&c, "INVITE", None, t0), Err(Rejection::Denied));
    }

    #[test]
    fn an_old_nonce_is_stale_and_a_forged_one_is_refused() {
        let t0 = crate::time::now();
        let s = server(t0);
        let c = creds_for(&s, Algorithm::Sha256, "pw", t0);
        let later = t0 + Duration::from_secs(301);
        assert_eq!(
            s.check(&c, "INVITE", Some("pw"), later),
            Err(Rejection::Stale)
        );
        let mut forged = c.clone();
        forged.nonce = "0.00000000000000000000000000000000".into();
        assert_eq!(
            s.check(&forged, "INVITE", Some("pw"), t0),
            Err(Rejection::BadNonce)
        );
        // Another process's nonce (another key) is not ours.
        let other = DigestServer::new("hotline", b"another key 1234", t0, Duration::from_secs(300));
        let c2 = creds_for(&other, Algorithm::Md5, "pw", t0);
        assert_eq!(
            s.check(&c2, "INVITE", Some("pw"), t0),
            Err(Rejection::BadNonce)
        );
    }

    #[test]
    fn headers_parse_and_challenges_offer_sha256_first() {
        let h = r#"Digest username="carrier", realm="hotline", nonce="12.ab", uri="sip:12345@gw", response="deadbeef", algorithm=MD5, cnonce="x\"y", nc=00000001, qop=auth"#;
        let c = Credentials::parse(h).unwrap_or_default();
        assert_eq!(c.username, "carrier");
        assert_eq!(c.cnonce.as_deref(), Some("x\"y"));
        assert_eq!(c.qop.as_deref(), Some("auth"));
        assert!(Credentials::parse("Basic dXNlcjpwYXNz").is_none());
        assert!(Credentials::parse("Digest username=\"x\"").is_none());
        assert!(Credentials::parse("Digest username=\"unterminated").is_none());
        let t0 = crate::time::now();
        let ch = server(t0).challenges(t0, true, &[Algorithm::Sha256, Algorithm::Md5]);
        assert_eq!(ch.len(), 2);
        assert!(ch[0].contains("algorithm=SHA-256") && ch[0].contains("stale=true"));
        assert!(ch[1].contains("algorithm=MD5"));
    }
}
