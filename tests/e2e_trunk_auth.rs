//! A trunk with digest credentials against a real SIPp carrier: SIPp
//! answers our 407 with `Proxy-Authorization` computed by its own digest
//! code (`[authentication]`, MD5: SIPp 3.7 reads only the first challenge
//! and knows only MD5, hence `sip.digest_algorithms = ["MD5"]`), and the
//! call goes through; a wrong password gets 403.

mod common;

use common::e2e::{call_through, Gateway, GatewayConfig, Sipp, TestDir};
use std::time::Duration;

const PASSWORD: &str = "correct horse battery";

fn config() -> GatewayConfig {
    let mut c = GatewayConfig::new();
    c.sip_toml = "digest_algorithms = [\"MD5\"]".into();
    // SIPp sends from 127.0.0.1: this /32 beats the harness's 127.0.0.0/8
    // trunk, so its INVITEs must authenticate.
    c.extra_toml = format!(
        "\n[[trunks]]\nname = \"carrier-auth\"\nsources = [\"127.0.0.1/32\"]\n\
         username = \"carrier-a\"\npassword = \"{PASSWORD}\"\n"
    );
    c
}

#[test]
fn sipp_authenticates_with_md5_and_the_call_goes_through() {
    common::e2e::require_sipp();
    let dir = TestDir::new("trunk_auth_ok");
    let gw = Gateway::start(&dir, config());
    let uas = Sipp::uas("uas", "basic-call-uas.xml", gw.config.target_port);
    let uac = Sipp::uac("uac", "auth-uac.xml", gw.sip_addr())
        .arg("-au")
        .arg("carrier-a")
        .arg("-ap")
        .arg(PASSWORD);
    let (_uas, uac) = call_through(&dir, &gw, &uas, &uac);
    let finals = uac.received_final_statuses();
    assert!(finals.contains(&407), "{finals:?}");
    assert!(finals.contains(&200), "{finals:?}");
}

#[test]
fn a_wrong_password_is_refused_403() {
    common::e2e::require_sipp();
    let dir = TestDir::new("trunk_auth_wrong");
    let gw = Gateway::start(&dir, config());
    let uac = Sipp::uac("uac", "auth-uac.xml", gw.sip_addr())
        .arg("-au")
        .arg("carrier-a")
        .arg("-ap")
        .arg("not the password")
        .timeout_secs(10);
    let mut p = uac.spawn(&dir);
    let status = p.wait(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| !s.success()),
        "SIPp should fail: {}",
        p.diagnostics()
    );
    let finals = p.received_final_statuses();
    assert!(finals.contains(&403), "{finals:?}\n{}", gw.diagnostics());
}
