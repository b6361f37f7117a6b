//! The CTI API's agent and queue routes over real HTTP against the real
//! gateway binary (docs/api.md): bearer tokens, agent commands carried out
//! by the core, live queue figures, and clear errors.

mod common;

use common::e2e::{Gateway, GatewayConfig, TestDir};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const TOKEN: &str = "e2e-api-token-0123456789";

const ACD: &str = r#"
[[tenants]]
name = "city"
[[queues]]
name = "general"
tenant = "city"
skills = { general = 1 }
[[queues]]
name = "outsourced"
tenant = "city"
target = "uas"
[[agents]]
id = "1001"
name = "Li Na"
password = "secret-1001"
tenant = "city"
skills = { general = 3, health = 2 }
[[agents]]
id = "1002"
password = "secret-1002"
tenant = "city"
skills = { general = 1 }
groups = ["legal-aid"]
"#;

fn start(test: &str, tokens: &str) -> (TestDir, Gateway) {
    let dir = TestDir::new(test);
    let gw = Gateway::start(
        &dir,
        GatewayConfig {
            extra_toml: ACD.into(),
            api_toml: tokens.into(),
            ..GatewayConfig::new()
        },
    );
    (dir, gw)
}

/// One HTTP/1.0 request; (status, headers, JSON body or Null).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String, Value) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap_or_else(|e| panic!("{e}"));
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut raw = String::new();
    s.read_to_string(&mut raw)
        .unwrap_or_else(|e| panic!("read: {e}"));
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers: {raw:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {head}"));
    let json = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, head.to_owned(), json)
}

#[test]
fn agents_are_listed_and_commanded_with_a_token() {
    let (_dir, gw) = start("api-agents", &format!("tokens = [\"{TOKEN}\"]"));
    let api = gw.config.api_addr();
    // No token, a wrong one: 401 with the scheme to use.
    let (status, head, body) = http(api, "GET", "/v1/agents", None, None);
    assert_eq!(status, 401, "{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{head}"
    );
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("bearer")),
        "{body}"
    );
    let (status, _, _) = http(
        api,
        "GET",
        "/v1/agents",
        Some("wrong-token-0123456789"),
        None,
    );
    assert_eq!(status, 401);

    let (status, _, list) = http(api, "GET", "/v1/agents", Some(TOKEN), None);
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids, ["1001", "1002"]);
    assert_eq!(list[0]["name"], "Li Na");
    assert_eq!(list[0]["state"], "logged_out");
    assert_eq!(list[0]["registered"], false);
    assert_eq!(list[0]["skills"]["health"], 2);
    assert_eq!(list[1]["groups"][0], "legal-aid");

    // Ready before login: 409 and why.
    let (status, _, body) = http(api, "POST", "/v1/agents/1001/ready", Some(TOKEN), None);
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "the agent is logged out");
    // Login, not ready with a configured reason, then an unknown one.
    let (status, _, a) = http(api, "POST", "/v1/agents/1001/login", Some(TOKEN), None);
    assert_eq!((status, a["state"].as_str()), (200, Some("ready")), "{a}");
    let (status, _, a) = http(
        api,
        "POST",
        "/v1/agents/1001/not_ready",
        Some(TOKEN),
        Some(r#"{"reason": "meeting"}"#),
    );
    assert_eq!(status, 200, "{a}");
    assert_eq!(
        (a["state"].as_str(), a["reason"].as_str()),
        (Some("not_ready"), Some("meeting"))
    );
    let (status, _, body) = http(
        api,
        "POST",
        "/v1/agents/1001/not_ready",
        Some(TOKEN),
        Some(r#"{"reason": "nap"}"#),
    );
    assert_eq!(status, 422, "{body}");
    let (status, _, body) = http(api, "POST", "/v1/agents/1001/not_ready", Some(TOKEN), None);
    assert_eq!(status, 400, "{body}");
    // The state is the core's: GET sees it.
    let (status, _, a) = http(api, "GET", "/v1/agents/1001", Some(TOKEN), None);
    assert_eq!((status, a["state"].as_str()), (200, Some("not_ready")));
    // Unknown agent and action.
    let (status, _, _) = http(api, "GET", "/v1/agents/9999", Some(TOKEN), None);
    assert_eq!(status, 404);
    let (status, _, _) = http(api, "POST", "/v1/agents/9999/login", Some(TOKEN), None);
    assert_eq!(status, 404);
    let (status, _, body) = http(api, "POST", "/v1/agents/1001/dance", Some(TOKEN), None);
    assert_eq!(status, 404, "{body}");
    // The change reached /metrics too (exported each second).
    let (status, _, a) = http(api, "POST", "/v1/agents/1001/logout", Some(TOKEN), None);
    assert_eq!((status, a["state"].as_str()), (200, Some("logged_out")));

    // Queues: the agents' queue with its figures, the external one.
    let (status, _, q) = http(api, "GET", "/v1/queues", Some(TOKEN), None);
    assert_eq!(status, 200, "{q}");
    assert_eq!(q[0]["name"], "general");
    assert_eq!(q[0]["waiting"], 0);
    assert_eq!(q[0]["target"], Value::Null);
    assert_eq!(q[1]["name"], "outsourced");
    assert_eq!(q[1]["target"], "uas");
}

#[test]
fn without_tokens_the_cti_api_is_off_but_health_and_metrics_answer() {
    let (_dir, gw) = start("api-off", "");
    let api = gw.config.api_addr();
    let (status, _, body) = http(api, "GET", "/v1/agents", Some(TOKEN), None);
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("[api] tokens")),
        "{body}"
    );
    let (status, _, _) = http(api, "GET", "/healthz", None, None);
    assert_eq!(status, 200);
    let (status, _, _) = http(api, "GET", "/metrics", None, None);
    assert_eq!(status, 200);
}
