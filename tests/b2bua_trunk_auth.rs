//! Trunks with digest credentials (RFC 3261 §22.3, RFC 8760): an INVITE
//! without them gets 407 with SHA-256 and MD5 challenges; the right
//! `Proxy-Authorization` is admitted, a wrong one gets 403, an old nonce a
//! new challenge with `stale=true`.

mod common;

use common::{Plan, Sim, STRANGER};
use hotline::config;
use hotline::sip::digest::{response, Algorithm, Credentials};
use hotline::sip::msg::{Method, Response, SipHeaders};
use std::time::Duration;

const PASSWORD: &str = "correct horse battery";

fn auth_sim(seed: u64, sources: &str) -> Sim {
    let text = format!(
        r#"
[node]
name = "sim"
[sip]
listen = "{gw}"
[[trunks]]
name = "carrier"
{sources}
username = "carrier-a"
password = "{PASSWORD}"
[[targets]]
name = "phone"
address = "{dest}"
[[routes]]
number = "12345"
target = "phone"
"#,
        gw = common::GW,
        dest = common::DEST,
    );
    let config = match config::parse(&text, "<auth>") {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    Sim::with_config(seed, Plan::answer(Duration::from_millis(100)), config)
}

/// The last final response UA `ua` got to an INVITE.
fn last_final(sim: &Sim, ua: usize) -> Response {
    sim.uas[ua]
        .seen
        .iter()
        .rev()
        .find_map(|s| match s {
            common::Seen::Response(r) if r.status >= 200 => Some(r.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no final response"))
}

/// The challenges of a 407, parsed as credentials would be (realm, nonce).
fn challenges(r: &Response) -> Vec<String> {
    r.headers
        .0
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Proxy-Authenticate"))
        .map(|h| h.value.clone())
        .collect()
}

fn param(ch: &str, name: &str) -> String {
    let start = ch.find(&format!("{name}=\"")).map(|i| i + name.len() + 2);
    start
        .and_then(|s| ch[s..].find('"').map(|e| ch[s..s + e].to_owned()))
        .unwrap_or_default()
}

fn authorization(ch: &str, alg: Algorithm, password: &str) -> String {
    let mut c = Credentials {
        username: "carrier-a".into(),
        realm: param(ch, "realm"),
        nonce: param(ch, "nonce"),
        uri: format!("sip:12345@{}", common::GW),
        response: String::new(),
        algorithm: Some(alg.as_str().into()),
        cnonce: Some("c0ffee".into()),
        nc: Some("00000001".into()),
        qop: Some("auth".into()),
    };
    c.response = response(alg, &c, "INVITE", password);
    format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\", algorithm={}, cnonce=\"c0ffee\", nc=00000001, qop=auth",
        c.username, c.realm, c.nonce, c.uri, c.response, alg.as_str()
    )
}

fn invites_to_dest(sim: &Sim) -> usize {
    sim.uas[1]
        .requests(Method::Invite)
        .iter()
        .filter(|r| r.to_tag().is_none())
        .count()
}

#[test]
fn challenged_then_admitted_with_sha256_or_md5() {
    for (seed, alg) in [(1, Algorithm::Sha256), (2, Algorithm::Md5)] {
        let mut sim = auth_sim(seed, "sources = [\"198.51.100.0/24\"]");
        sim.invite_with(0, "12345", 1, &[]);
        sim.run_for(Duration::from_secs(1));
        let r = last_final(&sim, 0);
        assert_eq!(r.status, 407);
        let ch = challenges(&r);
        assert_eq!(ch.len(), 2, "{ch:?}");
        assert!(ch[0].contains("algorithm=SHA-256"), "{ch:?}");
        assert!(ch[1].contains("algorithm=MD5"), "{ch:?}");
        assert_eq!(invites_to_dest(&sim), 0);
        let pick = if alg == Algorithm::Sha256 {
            &ch[0]
        } else {
            &ch[1]
        };
        let auth = authorization(pick, alg, PASSWORD);
        sim.invite_with(0, "12345", 2, &[("Proxy-Authorization", auth)]);
        sim.run_for(Duration::from_secs(2));
        assert_eq!(last_final(&sim, 0).status, 200, "{alg:?}");
        assert_eq!(invites_to_dest(&sim), 1);
    }
}

#[test]
fn a_wrong_password_gets_403_and_no_call() {
    let mut sim = auth_sim(3, "sources = [\"198.51.100.0/24\"]");
    sim.invite_with(0, "12345", 1, &[]);
    sim.run_for(Duration::from_secs(1));
    let ch = challenges(&last_final(&sim, 0));
    let auth = authorization(&ch[0], Algorithm::Sha256, "not the password");
    sim.invite_with(0, "12345", 2, &[("Proxy-Authorization", auth)]);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(last_final(&sim, 0).status, 403);
    assert_eq!(invites_to_dest(&sim), 0);
}

#[test]
fn a_source_outside_the_trunk_is_403_even_with_the_password() {
    let mut sim = auth_sim(4, "sources = [\"198.51.100.0/24\"]");
    let stranger = sim.add_ua("stranger", STRANGER, Plan::never());
    sim.invite_with(0, "12345", 1, &[]);
    sim.run_for(Duration::from_secs(1));
    let ch = challenges(&last_final(&sim, 0));
    // Without credentials, the stranger is refused outright.
    sim.invite_with(stranger, "12345", 1, &[]);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(last_final(&sim, stranger).status, 403);
    let auth = authorization(&ch[0], Algorithm::Sha256, PASSWORD);
    sim.invite_with(stranger, "12345", 2, &[("Proxy-Authorization", auth)]);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(last_final(&sim, stranger).status, 403);
    assert_eq!(invites_to_dest(&sim), 0);
}

#[test]
fn a_trunk_without_sources_takes_any_address_that_authenticates() {
    let mut sim = auth_sim(5, "");
    let stranger = sim.add_ua("stranger", STRANGER, Plan::never());
    sim.invite_with(stranger, "12345", 1, &[]);
    sim.run_for(Duration::from_secs(1));
    let r = last_final(&sim, stranger);
    assert_eq!(r.status, 407, "challenged, not refused");
    let auth = authorization(&challenges(&r)[1], Algorithm::Md5, PASSWORD);
    sim.invite_with(stranger, "12345", 2, &[("Proxy-Authorization", auth)]);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(last_final(&sim, stranger).status, 200);
}

#[test]
fn an_old_nonce_is_challenged_again_as_stale() {
    let mut sim = auth_sim(6, "sources = [\"198.51.100.0/24\"]");
    sim.invite_with(0, "12345", 1, &[]);
    sim.run_for(Duration::from_secs(1));
    let ch = challenges(&last_final(&sim, 0));
    sim.run_for(Duration::from_secs(301));
    let auth = authorization(&ch[0], Algorithm::Sha256, PASSWORD);
    sim.invite_with(0, "12345", 2, &[("Proxy-Authorization", auth)]);
    sim.run_for(Duration::from_secs(1));
    let r = last_final(&sim, 0);
    assert_eq!(r.status, 407);
    assert!(
        challenges(&r)[0].contains("stale=true"),
        "{:?}",
        challenges(&r)
    );
    assert_eq!(invites_to_dest(&sim), 0);
}
