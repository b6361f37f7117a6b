//! Configuration files (hotline rule: a bad config is refused at startup with
//! a message that says where and how to fix it, never half-applied).
//!
//! - `configs/demo.toml`, every `configs/examples/*.toml` and every
//!   `tests/data/config/good_*.toml` validate;
//! - each class of bad file (unknown key at top level, nested and in an array
//!   of tables; wrong type; syntax; missing route target; bad CIDR; duplicate
//!   target; bad address; unspecified listen without advertise; zero
//!   duration; duplicate route; bad number; missing and empty names; a line
//!   number that is also a route's) is refused with an error naming the
//!   file, the 1-based line and column, the key path, and what was expected
//!   or how to fix it;
//! - the demo sets, and docs/config.md documents, every key the schema has;
//!   the demo keeps its contract (trunk, targets, lines and their modes);
//! - each class of bad IVR flow (unknown prompt, node, target or kind, a key
//!   the kind does not take, an unreachable node, a loop that never waits
//!   for the caller, a menu without a timeout branch, min > max, a bad
//!   schedule or option key) is refused naming `flows[i].nodes[j].<key>` and
//!   the flow and node by name.
//!
//! The rules of tenants, lines, queues, prompts, the survey and the block
//! list are unit tests in `src/config/mod.rs`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hotline::config::{self, Config, ConfigError, LineMode, TargetTransport, UnknownSource};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/data/config").join(name)
}

fn load_ok(path: &Path) -> Config {
    match config::load(path) {
        Ok(c) => c,
        Err(e) => panic!("{} should validate, but:\n{e}", path.display()),
    }
}

fn ip(s: &str) -> IpAddr {
    match s.parse() {
        Ok(ip) => ip,
        Err(e) => panic!("{s}: {e}"),
    }
}

/// What a bad fixture's error must say.
struct Expect {
    file: &'static str,
    line: usize,
    column: usize,
    key: &'static str,
    /// A fragment of the message (the part after the key).
    message: &'static str,
    /// A fragment of the help line.
    help: &'static str,
}

fn refused(x: Expect) -> ConfigError {
    let path = fixture(x.file);
    let err = match config::load(&path) {
        Ok(_) => panic!("{} should be refused", path.display()),
        Err(e) => e,
    };
    let shown = err.to_string();
    let prefix = format!(
        "{}:{}:{}: key `{}`: ",
        path.display(),
        x.line,
        x.column,
        x.key
    );
    assert!(
        shown.starts_with(&prefix),
        "error:\n{shown}\nshould start with:\n{prefix}"
    );
    assert_eq!(err.file, path.display().to_string());
    assert_eq!(err.line, Some(x.line), "{shown}");
    assert_eq!(err.column, Some(x.column), "{shown}");
    assert_eq!(err.key.as_deref(), Some(x.key), "{shown}");
    assert!(
        err.message.contains(x.message),
        "message of:\n{shown}\nshould contain: {}",
        x.message
    );
    assert!(
        err.help.as_deref().is_some_and(|h| h.contains(x.help)) && shown.contains("\n  help: "),
        "help of:\n{shown}\nshould contain: {}",
        x.help
    );
    err
}

// ---------------------------------------------------------------- good files

#[test]
fn demo_validates_and_is_the_shipped_file() {
    let demo = config::demo();
    assert_eq!(demo.origin, "<embedded demo.toml>");
    assert_eq!(demo.node.name, "demo");
    assert_eq!(demo.sip.listen.to_string(), "127.0.0.1:5060");
    assert_eq!(demo.api.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(demo.trunks.len(), 1);
    assert_eq!(demo.trunks[0].name, "loopback-carrier");
    assert_eq!(demo.trunks[0].sources[0].to_string(), "127.0.0.0/8");
    assert_eq!(demo.targets.len(), 9);
    assert_eq!(demo.targets[0].name, "demo-uas");
    assert_eq!(demo.targets[0].address.to_string(), "127.0.0.1:5070");
    assert_eq!(demo.targets[0].transport, TargetTransport::Udp);
    let routes: Vec<_> = demo
        .routes
        .iter()
        .map(|r| (r.number.as_str(), r.target.as_str()))
        .collect();
    assert_eq!(routes, [("12366", "tax-12366")]);
    let lines: Vec<_> = demo
        .lines
        .iter()
        .map(|l| (l.number.as_str(), l.mode))
        .collect();
    assert_eq!(
        lines,
        [
            ("12345", LineMode::Main),
            ("12320", LineMode::Dual),
            ("12319", LineMode::Merged),
            ("12348", LineMode::DualRetained),
        ]
    );

    let path = root().join("configs/demo.toml");
    let from_disk = load_ok(&path);
    assert_eq!(from_disk.origin, path.display().to_string());
    assert_eq!(
        Config {
            origin: demo.origin.clone(),
            ..from_disk
        },
        demo
    );
}

#[test]
fn every_example_validates() {
    let dir = root().join("configs/examples");
    let mut examples: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    examples.sort();
    assert!(
        examples.len() >= 2,
        "expected at least 2 examples, found {examples:?}"
    );
    for path in &examples {
        load_ok(path);
    }
}

#[test]
fn city_example_reads_as_documented() {
    let c = load_ok(&root().join("configs/examples/city-two-carriers.toml"));
    assert_eq!(c.sip.advertise, ip("10.20.0.5"));
    assert_eq!(c.sip.unknown_source, UnknownSource::Drop);
    assert_eq!(c.node.shutdown_grace, Duration::from_secs(120));
    let trunk = |s: &str| c.trunk_for(ip(s)).map(|t| t.name.clone());
    assert_eq!(trunk("10.10.0.7").as_deref(), Some("carrier-telecom"));
    assert_eq!(trunk("10.10.8.17").as_deref(), Some("carrier-telecom"));
    assert_eq!(trunk("10.11.0.200").as_deref(), Some("carrier-unicom"));
    assert_eq!(trunk("10.10.8.18"), None);
    let ivr = c.target("ivr-main").map(|t| t.transport);
    assert_eq!(ivr, Some(TargetTransport::Tcp));
    let target = |n: &str| c.route(n).map(|r| r.target.clone());
    assert_eq!(target("12320").as_deref(), Some("sub-centre-east"));
    assert_eq!(target("12345").as_deref(), Some("ivr-main"));
    assert_eq!(target("96110").as_deref(), Some("ivr-main"));
}

#[test]
fn minimal_file_takes_the_defaults() {
    let c = load_ok(&fixture("good_minimal.toml"));
    assert_eq!(c.node.name, "minimal");
    assert_eq!(c.node.data_dir, PathBuf::from("data"));
    assert_eq!(c.node.shutdown_grace, Duration::from_secs(30));
    assert_eq!(c.sip.listen.to_string(), "127.0.0.1:5060");
    assert_eq!(c.sip.advertise, ip("127.0.0.1"));
    assert_eq!(c.sip.t1, Duration::from_millis(500));
    assert_eq!(c.sip.t2, Duration::from_secs(4));
    assert_eq!(c.sip.t4, Duration::from_secs(5));
    assert_eq!(c.sip.max_message_bytes, 65_535);
    assert_eq!(c.sip.tcp_max_connections, 1024);
    assert_eq!(c.sip.tcp_idle_timeout, Duration::from_secs(300));
    assert_eq!(c.sip.ring_timeout, Duration::from_secs(120));
    assert_eq!(c.sip.unknown_source, UnknownSource::Reject);
    assert_eq!(c.sip.user_agent, "Hotline-Gateway");
    assert_eq!(c.api.listen.to_string(), "127.0.0.1:8080");
    assert!(c.trunks.is_empty() && c.targets.is_empty() && c.routes.is_empty());
    assert!(c.route("12345").is_none());
}

#[test]
fn ipv6_file_with_inline_tables_and_a_default_route() {
    let c = load_ok(&fixture("good_ipv6_default_route.toml"));
    assert_eq!(c.sip.advertise, ip("2001:db8::5"));
    assert_eq!(c.targets[0].address.to_string(), "[2001:db8::20]:5060");
    assert_eq!(c.targets[0].transport, TargetTransport::Tcp);
    // The IPv4-mapped network is stored as the IPv4 network it denotes.
    assert_eq!(c.trunks[0].sources[1].to_string(), "192.0.2.0/24");
    assert!(c.trunk_for(ip("192.0.2.9")).is_some());
    assert!(c.trunk_for(ip("::ffff:192.0.2.9")).is_some());
    assert!(c.trunk_for(ip("2001:db8:100:1::1")).is_some());
    assert!(c.trunk_for(ip("2001:db8:101::1")).is_none());
    assert_eq!(
        c.route("+8612345").map(|r| r.number.as_str()),
        Some("+8612345")
    );
    assert_eq!(c.route("12345").map(|r| r.number.as_str()), Some("*"));
}

// ----------------------------------------------------------------- bad files

#[test]
fn unknown_top_level_table() {
    refused(Expect {
        file: "bad_unknown_key_top.toml",
        line: 6,
        column: 2,
        key: "nodes",
        message:
            "unknown key; expected one of: node, sip, api, media, webhooks, trunks, targets, routes",
        help: "did you mean `node`?",
    });
}

#[test]
fn unknown_nested_key() {
    refused(Expect {
        file: "bad_unknown_key_nested.toml",
        line: 7,
        column: 1,
        key: "sip.t1_msec",
        message: "unknown key; expected one of: listen, advertise, t1_ms, ",
        help: "did you mean `t1_ms`?",
    });
}

#[test]
fn unknown_key_in_an_array_of_tables() {
    refused(Expect {
        file: "bad_unknown_key_in_array.toml",
        line: 10,
        column: 1,
        key: "trunks[1].source",
        message: "unknown key; expected one of: name, sources",
        help: "did you mean `sources`?",
    });
}

#[test]
fn wrong_type() {
    refused(Expect {
        file: "bad_wrong_type.toml",
        line: 7,
        column: 9,
        key: "sip.t1_ms",
        message: "expected an integer (milliseconds), found string \"500\"",
        help: "without quotes",
    });
}

#[test]
fn syntax_error() {
    refused(Expect {
        file: "bad_syntax.toml",
        line: 4,
        column: 8,
        key: "node.name",
        message: "invalid TOML",
        help: "must be in double quotes",
    });
}

#[test]
fn missing_route_target() {
    let e = refused(Expect {
        file: "bad_route_target.toml",
        line: 22,
        column: 10,
        key: "routes[2].target",
        message: "unknown target \"foo\"",
        help: "define it in a [[targets]] table (known targets: demo-uas)",
    });
    assert!(e.to_string().ends_with(
        ": key `routes[2].target`: unknown target \"foo\"\n  \
         help: define it in a [[targets]] table (known targets: demo-uas)"
    ));
}

#[test]
fn bad_cidr() {
    refused(Expect {
        file: "bad_cidr.toml",
        line: 10,
        column: 3,
        key: "trunks[0].sources[1]",
        message: "invalid CIDR \"10.1.2.3/8\"",
        help: "did you mean \"10.0.0.0/8\"?",
    });
}

#[test]
fn duplicate_target() {
    refused(Expect {
        file: "bad_duplicate_target.toml",
        line: 14,
        column: 8,
        key: "targets[2].name",
        message: "duplicate name \"sub-centre\"; first defined at targets[0] (line 5)",
        help: "its own name",
    });
}

#[test]
fn bad_address() {
    refused(Expect {
        file: "bad_address.toml",
        line: 8,
        column: 11,
        key: "targets[0].address",
        message: "invalid socket address \"127.0.0.1\"",
        help: "add a port: \"127.0.0.1:5060\"",
    });
}

#[test]
fn unspecified_listen_without_advertise() {
    refused(Expect {
        file: "bad_unspecified_listen.toml",
        line: 7,
        column: 10,
        key: "sip.advertise",
        message: "sip.listen (0.0.0.0:5060) binds every address",
        help: "advertise = \"",
    });
}

#[test]
fn zero_duration() {
    refused(Expect {
        file: "bad_zero_duration.toml",
        line: 6,
        column: 21,
        key: "sip.ring_timeout_secs",
        message: "0 is out of range; expected 1 to 3600 seconds",
        help: "the default is 120",
    });
}

#[test]
fn duplicate_route_number() {
    refused(Expect {
        file: "bad_duplicate_route.toml",
        line: 13,
        column: 10,
        key: "routes[1].number",
        message: "duplicate route number \"12345\"; first defined at routes[0].number (line 10)",
        help: "remove one",
    });
}

#[test]
fn number_with_a_dash() {
    refused(Expect {
        file: "bad_number.toml",
        line: 10,
        column: 10,
        key: "routes[0].number",
        message: "invalid number \"123-45\"",
        help: "\"*\" alone is the default route",
    });
}

#[test]
fn line_number_that_is_also_a_route() {
    refused(Expect {
        file: "bad_line_is_a_route.toml",
        line: 31,
        column: 10,
        key: "lines[0].number",
        message: "line number \"12345\" is also the number of routes[0].number (line 10)",
        help: "not both",
    });
}

#[test]
fn missing_name_points_at_the_table_header() {
    refused(Expect {
        file: "bad_missing_name.toml",
        line: 5,
        column: 1,
        key: "trunks[0].name",
        message: "missing key",
        help: "needs a name",
    });
}

#[test]
fn empty_name() {
    refused(Expect {
        file: "bad_empty_name.toml",
        line: 3,
        column: 8,
        key: "node.name",
        message: "empty name",
        help: "names are 1 to 64 characters",
    });
}

#[test]
fn every_bad_fixture_is_refused_with_a_located_key() {
    let dir = root().join("tests/data/config");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    let mut checked = 0;
    for path in entries.filter_map(Result::ok).map(|e| e.path()) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.starts_with("bad_") {
            continue;
        }
        let Err(e) = config::load(&path) else {
            panic!("{name} should be refused");
        };
        assert!(
            e.line.is_some() && e.column.is_some() && e.key.is_some(),
            "{e}"
        );
        assert!(e.to_string().contains(&name), "{e}");
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} bad fixtures");
}

// ------------------------------------------- trunk limits and number rules

/// A file with one trunk carrying `keys`, one target and the route 12345.
fn trunk_file(keys: &str) -> String {
    format!(
        "[node]\nname = \"n\"\n\
         [[trunks]]\nname = \"carrier\"\nsources = [\"192.0.2.0/24\"]\n{keys}\n\
         [[targets]]\nname = \"t\"\naddress = \"192.0.2.20:5060\"\n\
         [[routes]]\nnumber = \"12345\"\ntarget = \"t\"\n"
    )
}

/// `keys` in the trunk are refused: the error names `key` on `line`, its
/// message holds `message` and its help `help`.
fn trunk_refused(keys: &str, key: &str, line: usize, message: &str, help: &str) {
    let text = trunk_file(keys);
    let e = match config::parse(&text, "t.toml") {
        Ok(_) => panic!("should be refused:\n{text}"),
        Err(e) => e,
    };
    assert_eq!(e.key.as_deref(), Some(key), "{e}");
    assert_eq!(e.line, Some(line), "{e}");
    assert!(e.message.contains(message), "{e}\nshould say: {message}");
    assert!(
        e.help.as_deref().is_some_and(|h| h.contains(help)),
        "{e}\nhelp should say: {help}"
    );
    assert!(e.to_string().starts_with(&format!("t.toml:{line}:")), "{e}");
}

#[test]
fn trunk_limits_and_rules_read_as_written() {
    let text = trunk_file(
        "max_calls = 30\nmax_cps = 5\nnumbers = [\
         { prefix = \"+86\", replace = \"0\" }, { prefix = \"020\" }]",
    );
    let c = match config::parse(&text, "t.toml") {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let t = &c.trunks[0];
    assert_eq!((t.max_calls, t.max_cps), (Some(30), Some(5)));
    assert_eq!(t.numbers.len(), 2);
    assert_eq!(t.numbers[1].replace, "", "replace defaults to empty");
    for dialled in [
        "+862012345",
        "+86-20-12345",
        "02012345",
        "020-12345",
        "(020) 12345",
        "020%2012345",
        "12345",
    ] {
        assert_eq!(t.normalise(dialled), "12345", "{dialled}");
    }
    assert_eq!(t.normalise("075512345"), "075512345");
    assert_eq!(t.normalise("020"), "", "a number the rules empty");
    // Without rules: separators only, and the limits are off.
    let plain = match config::parse(&trunk_file(""), "t.toml") {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let t = &plain.trunks[0];
    assert_eq!((t.max_calls, t.max_cps), (None, None));
    assert_eq!(t.normalise("123-45"), "12345");
    assert_eq!(t.normalise("+8612345"), "+8612345");
}

#[test]
fn trunk_max_cps_zero_is_refused() {
    trunk_refused(
        "max_cps = 0",
        "trunks[0].max_cps",
        6,
        "0 is out of range; expected 1 to 100000",
        "leave the key out for no limit",
    );
}

#[test]
fn trunk_max_calls_zero_is_refused() {
    trunk_refused(
        "max_calls = 0",
        "trunks[0].max_calls",
        6,
        "out of range",
        "no limit",
    );
}

#[test]
fn trunk_max_cps_must_be_an_integer() {
    trunk_refused(
        "max_cps = \"10\"",
        "trunks[0].max_cps",
        6,
        "expected an integer",
        "",
    );
}

#[test]
fn a_number_rule_that_empties_a_route_number_is_refused() {
    trunk_refused(
        "numbers = [{ prefix = \"+86\", replace = \"0\" }, { prefix = \"12345\" }]",
        "trunks[0].numbers[1]",
        6,
        "turns route number \"12345\" into an empty number",
        "routes[0] (line 10)",
    );
}

#[test]
fn a_number_rule_that_rewrites_a_route_number_is_refused() {
    trunk_refused(
        "numbers = [{ prefix = \"1\", replace = \"\" }]",
        "trunks[0].numbers[0]",
        6,
        "into \"2345\"",
        "never a routed number itself",
    );
}

#[test]
fn a_number_rule_with_an_empty_prefix_is_refused() {
    trunk_refused(
        "numbers = [{ prefix = \"\", replace = \"0\" }]",
        "trunks[0].numbers[0].prefix",
        6,
        "empty prefix",
        "prefix = \"+86\"",
    );
}

#[test]
fn a_number_rule_with_separators_is_refused() {
    trunk_refused(
        "numbers = [{ prefix = \"020-\" }]",
        "trunks[0].numbers[0].prefix",
        6,
        "invalid number prefix \"020-\"",
        "separators",
    );
}

#[test]
fn a_number_rule_without_a_prefix_or_with_an_unknown_key_is_refused() {
    trunk_refused(
        "numbers = [{ replace = \"0\" }]",
        "trunks[0].numbers[0].prefix",
        6,
        "missing key",
        "prefix",
    );
    trunk_refused(
        "numbers = [{ prefx = \"020\" }]",
        "trunks[0].numbers[0].prefx",
        6,
        "unknown key",
        "prefix",
    );
}

#[test]
fn trunk_outbound_and_keepalive_read_as_written() {
    let parse = |keys: &str| match config::parse(&trunk_file(keys), "t.toml") {
        Ok(c) => c.trunks[0].outbound,
        Err(e) => panic!("{keys}: {e}"),
    };
    let out = parse("outbound = \"192.0.2.7:5060\"");
    assert_eq!(
        out.map(|o| (o.address.to_string(), o.keepalive)),
        Some(("192.0.2.7:5060".into(), Duration::from_secs(30))),
        "keepalive_secs defaults to 30"
    );
    let out = parse("outbound = \"[2001:db8::7]:5070\"\nkeepalive_secs = 5");
    assert_eq!(
        out.map(|o| (o.address.to_string(), o.keepalive)),
        Some(("[2001:db8::7]:5070".into(), Duration::from_secs(5)))
    );
    assert_eq!(parse(""), None, "no outbound: no keepalive");
}

#[test]
fn trunk_keepalive_without_outbound_is_refused() {
    trunk_refused(
        "keepalive_secs = 10",
        "trunks[0].keepalive_secs",
        6,
        "keepalive_secs without outbound",
        "outbound = \"192.0.2.7:5060\"",
    );
}

#[test]
fn trunk_outbound_needs_ip_and_port() {
    trunk_refused(
        "outbound = \"192.0.2.7\"",
        "trunks[0].outbound",
        6,
        "invalid socket address",
        "add a port: \"192.0.2.7:5060\"",
    );
    trunk_refused(
        "outbound = \"carrier.example:5060\"",
        "trunks[0].outbound",
        6,
        "invalid socket address",
        "host names are not accepted",
    );
    trunk_refused(
        "outbound = \"0.0.0.0:5060\"",
        "trunks[0].outbound",
        6,
        "not a destination",
        "192.0.2.7:5060",
    );
    trunk_refused(
        "outbound = \"192.0.2.7:0\"",
        "trunks[0].outbound",
        6,
        "not a destination",
        "192.0.2.7:5060",
    );
    trunk_refused(
        "outbound = \"127.0.0.1:5060\"",
        "trunks[0].outbound",
        6,
        "own SIP listener",
        "carrier's SIP address",
    );
}

#[test]
fn trunk_keepalive_out_of_range_is_refused() {
    trunk_refused(
        "outbound = \"192.0.2.7:5060\"\nkeepalive_secs = 0",
        "trunks[0].keepalive_secs",
        7,
        "0 is out of range; expected 1 to 3600 seconds",
        "the default is 30",
    );
    trunk_refused(
        "outbound = \"192.0.2.7:5060\"\nkeepalive_secs = 3601",
        "trunks[0].keepalive_secs",
        7,
        "out of range",
        "30",
    );
}

// ------------------------------------------------------ other entry points

#[test]
fn unreadable_file_is_named() {
    let path = fixture("does-not-exist.toml");
    let Err(e) = config::load(&path) else {
        panic!("a missing file should be an error");
    };
    assert_eq!(e.file, path.display().to_string());
    assert_eq!((e.line, e.key.as_deref()), (None, None));
    assert!(e
        .to_string()
        .starts_with(&format!("{}: cannot read the file", path.display())));
}

#[test]
fn parse_names_the_origin_and_counts_lines_from_one() {
    let text = "[node]\nname = \"n\"\n\n[sip]\r\nt4_ms = 0\n";
    let Err(e) = config::parse(text, "<inline>") else {
        panic!("t4_ms = 0 should be refused");
    };
    assert_eq!(
        e.to_string().lines().next(),
        Some("<inline>:5:9: key `sip.t4_ms`: 0 is out of range; expected 1 to 60000 milliseconds")
    );
    let Err(e) = config::parse("oops = 1", "first-line") else {
        panic!("an unknown key should be refused");
    };
    assert_eq!((e.line, e.column), (Some(1), Some(1)));
}

// ------------------------------------------------- demo and docs are complete

/// The keys a table accepts, as the schema itself reports them (the list in
/// its unknown-key error), so this test follows the code without a copy.
fn schema_keys(table: &str) -> Vec<String> {
    let text = format!("{table}\nzz_not_a_key = 1\n");
    let Err(e) = config::parse(&text, "probe") else {
        panic!("the probe key should be unknown in {table:?}");
    };
    let Some((_, list)) = e.message.split_once("expected one of: ") else {
        panic!("no key list in: {e}");
    };
    list.split(", ").map(str::to_owned).collect()
}

#[test]
fn demo_sets_and_docs_describe_every_key() {
    let demo_text = match std::fs::read_to_string(root().join("configs/demo.toml")) {
        Ok(t) => t,
        Err(e) => panic!("configs/demo.toml: {e}"),
    };
    let demo: toml::Table = match toml::from_str(&demo_text) {
        Ok(t) => t,
        Err(e) => panic!("configs/demo.toml: {e}"),
    };
    let docs = match std::fs::read_to_string(root().join("docs/config.md")) {
        Ok(t) => t,
        Err(e) => panic!("docs/config.md: {e}"),
    };
    let top = schema_keys("");
    assert_eq!(
        top,
        [
            "node",
            "sip",
            "api",
            "media",
            "webhooks",
            "trunks",
            "targets",
            "routes",
            "flows",
            "prompts",
            "tenants",
            "lines",
            "queues",
            "acd",
            "agents",
            "registrar",
            "survey",
            "blocklist"
        ]
    );
    // The demo has no backend: [webhooks] is there as a comment, every key
    // in it.
    assert!(
        docs.contains("`[webhooks]`"),
        "docs/config.md lacks `[webhooks]`"
    );
    assert!(demo.get("webhooks").is_none(), "the demo posts nowhere");
    assert!(demo_text.contains("# [webhooks]\n"));
    for key in schema_keys("[webhooks]") {
        assert!(
            demo_text.contains(&format!("# {key} = ")),
            "demo.toml does not show webhooks.{key} in its comment"
        );
        assert!(
            docs.contains(&format!("`{key}`")),
            "docs/config.md does not describe webhooks.{key}"
        );
    }
    // Keys the demo shows in a comment, as setting them would change what
    // the demo is (a prompt directory, a second tenant, opening hours).
    let commented = [
        ("prompts", "dir"),
        ("tenants", "parent"),
        ("lines", "closed_flow"),
        ("trunks", "username"),
        ("trunks", "password"),
        ("queues", "target"),
        ("agents", "remote"),
        ("agents", "remote_number"),
    ];
    for (section, key) in commented {
        assert!(
            demo_text.contains(&format!("\n# {key} = ")),
            "demo.toml does not show {section}.{key} in a comment"
        );
    }
    for (section, header) in [
        ("node", "[node]"),
        ("sip", "[sip]"),
        ("api", "[api]"),
        ("media", "[media]"),
        ("trunks", "[[trunks]]"),
        ("targets", "[[targets]]"),
        ("routes", "[[routes]]"),
        ("flows", "[[flows]]"),
        ("prompts", "[prompts]"),
        ("tenants", "[[tenants]]"),
        ("lines", "[[lines]]"),
        ("queues", "[[queues]]"),
        ("acd", "[acd]"),
        ("agents", "[[agents]]"),
        ("registrar", "[registrar]"),
        ("survey", "[survey]"),
        ("blocklist", "[blocklist]"),
    ] {
        assert!(
            docs.contains(&format!("`{header}`")),
            "docs/config.md lacks `{header}`"
        );
        // Across an array's tables: a line sets only its mode's keys.
        let mut set = std::collections::BTreeSet::new();
        match demo.get(section) {
            Some(toml::Value::Table(t)) => set.extend(t.keys().cloned()),
            Some(toml::Value::Array(a)) => {
                for item in a {
                    let toml::Value::Table(t) = item else {
                        panic!("demo.toml: {section} is not an array of tables");
                    };
                    set.extend(t.keys().cloned());
                }
            }
            _ => panic!("demo.toml lacks {header}"),
        }
        for key in schema_keys(header) {
            assert!(
                set.contains(&key) || commented.contains(&(section, key.as_str())),
                "demo.toml does not set {section}.{key}"
            );
            assert!(
                docs.contains(&format!("`{key}`")),
                "docs/config.md does not describe {section}.{key}"
            );
        }
    }
}

#[test]
fn demo_escalation_steps_set_and_docs_describe_every_key() {
    let demo = match std::fs::read_to_string(root().join("configs/demo.toml")) {
        Ok(t) => match toml::from_str::<toml::Table>(&t) {
            Ok(t) => t,
            Err(e) => panic!("configs/demo.toml: {e}"),
        },
        Err(e) => panic!("configs/demo.toml: {e}"),
    };
    let docs = match std::fs::read_to_string(root().join("docs/config.md")) {
        Ok(t) => t,
        Err(e) => panic!("docs/config.md: {e}"),
    };
    assert!(docs.contains("`[[queues.escalation]]`"));
    let mut set = std::collections::BTreeSet::new();
    let Some(toml::Value::Array(queues)) = demo.get("queues") else {
        panic!("demo.toml has no [[queues]]");
    };
    for q in queues {
        if let Some(toml::Value::Array(steps)) = q.get("escalation") {
            for step in steps {
                if let toml::Value::Table(t) = step {
                    set.extend(t.keys().cloned());
                }
            }
        }
    }
    for key in schema_keys("[[queues]]\n[[queues.escalation]]") {
        assert!(set.contains(&key), "no demo escalation step sets {key}");
        assert!(
            docs.contains(&format!("`{key}`")),
            "docs/config.md does not describe queues.escalation.{key}"
        );
    }
}

#[test]
fn demo_flow_nodes_set_and_docs_describe_every_node_key() {
    let demo_text = match std::fs::read_to_string(root().join("configs/demo.toml")) {
        Ok(t) => t,
        Err(e) => panic!("configs/demo.toml: {e}"),
    };
    let demo: toml::Table = match toml::from_str(&demo_text) {
        Ok(t) => t,
        Err(e) => panic!("configs/demo.toml: {e}"),
    };
    let docs = match std::fs::read_to_string(root().join("docs/config.md")) {
        Ok(t) => t,
        Err(e) => panic!("docs/config.md: {e}"),
    };
    assert!(docs.contains("`[[flows.nodes]]`"));
    // A node sets only its kind's keys, so the demo covers the schema
    // across all its nodes.
    let mut set = std::collections::BTreeSet::new();
    let Some(toml::Value::Array(flows)) = demo.get("flows") else {
        panic!("demo.toml has no [[flows]]");
    };
    for flow in flows {
        let Some(toml::Value::Array(nodes)) = flow.get("nodes") else {
            panic!("a demo flow without [[flows.nodes]]");
        };
        for node in nodes {
            if let toml::Value::Table(t) = node {
                set.extend(t.keys().cloned());
            }
        }
    }
    for key in schema_keys("[[flows]]\n[[flows.nodes]]") {
        assert!(set.contains(&key), "no demo node sets flows.nodes.{key}");
        assert!(
            docs.contains(&format!("`{key}`")),
            "docs/config.md does not describe flows.nodes.{key}"
        );
    }
}

// ---------------------------------------------------------------- IVR flows

#[test]
fn demo_flows_follow_the_demo_contract() {
    use hotline::ivr::{Action, Input, LocalTime, Runner, Weekday};
    let demo = config::demo();
    let names: Vec<&str> = demo.flows.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "12345-intake",
            "12320-dialect",
            "12348-legal",
            "utility-faults"
        ]
    );
    // 12345: greeting, recording notice, queue "general"; no menu.
    let Some(intake) = demo.flow("12345-intake") else {
        panic!("no 12345 flow");
    };
    let t0 = hotline::time::now();
    let local = LocalTime::new(Weekday::Mon, 10, 0);
    let mut r = Runner::new(std::sync::Arc::clone(intake), t0);
    let step = |r: &mut Runner, input| {
        r.handle_input(input, t0, local);
        std::iter::from_fn(|| r.poll_action()).collect::<Vec<_>>()
    };
    let played = |a: &[Action]| match a {
        [Action::Play { prompt, .. }] => prompt.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(played(&step(&mut r, Input::Started)), "greeting");
    let done = Input::PlaybackDone { interrupted: false };
    assert_eq!(played(&step(&mut r, done)), "recording_notice");
    match step(&mut r, done).as_slice() {
        [Action::Queue { queue, .. }] => assert_eq!(queue, "general"),
        other => panic!("{other:?}"),
    }
    // 12320: '2' during the menu prompt queues with the Cantonese skill.
    let Some(dialect) = demo.flow("12320-dialect") else {
        panic!("no dialect flow");
    };
    let mut r = Runner::new(std::sync::Arc::clone(dialect), t0);
    step(&mut r, Input::Started);
    match step(&mut r, Input::Digit('2')).as_slice() {
        [Action::StopPlay, Action::Queue {
            queue,
            skills,
            tags,
            ..
        }] => {
            assert_eq!(
                (queue.as_str(), skills.as_slice()),
                ("health", &["cantonese".to_owned()][..])
            );
            assert_eq!(tags.get("dialect").map(String::as_str), Some("cantonese"));
        }
        other => panic!("{other:?}"),
    }
}

/// A file with the target "water" and one flow of `nodes` (TOML text,
/// `[[flows.nodes]]` tables), entry "a".
fn flow_file(nodes: &str) -> String {
    format!(
        "[node]\nname = \"n\"\n\
         [[targets]]\nname = \"water\"\naddress = \"192.0.2.20:5060\"\n\
         [[flows]]\nname = \"f\"\nentry = \"a\"\n{nodes}"
    )
}

/// The flow is refused: the error names `key`, says `message` (which must
/// name the flow) and helps with `help`.
fn flow_refused(nodes: &str, key: &str, message: &str, help: &str) {
    let text = flow_file(nodes);
    let e = match config::parse(&text, "t.toml") {
        Ok(_) => panic!("should be refused:\n{text}"),
        Err(e) => e,
    };
    assert_eq!(e.key.as_deref(), Some(key), "{e}");
    assert!(e.line.is_some(), "{e}");
    assert!(
        e.message.contains("flow \"f\""),
        "{e}\nshould name the flow"
    );
    assert!(e.message.contains(message), "{e}\nshould say: {message}");
    assert!(
        e.help.as_deref().is_some_and(|h| h.contains(help)),
        "{e}\nhelp should say: {help}"
    );
}

const N: &str = "[[flows.nodes]]\n";

#[test]
fn a_good_flow_loads() {
    let text = flow_file(&format!(
        "{N}name = \"a\"\nkind = \"play\"\nprompt = \"greeting\"\nnext = \"b\"\n\
         {N}name = \"b\"\nkind = \"transfer\"\ntarget = \"water\"\n"
    ));
    match config::parse(&text, "t.toml") {
        Ok(c) => assert_eq!(c.flows[0].nodes.len(), 2),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn flow_unknown_prompt_is_refused() {
    flow_refused(
        &format!("{N}name = \"a\"\nkind = \"play\"\nprompt = \"welcome\"\nnext = \"a\"\n"),
        "flows[0].nodes[0].prompt",
        "node \"a\": unknown prompt \"welcome\"",
        "recording_notice",
    );
}

#[test]
fn flow_unknown_node_and_entry_are_refused() {
    flow_refused(
        &format!("{N}name = \"a\"\nkind = \"goto\"\nnext = \"zz\"\n"),
        "flows[0].nodes[0].next",
        "unknown node \"zz\"",
        "name one of this flow's nodes (a)",
    );
    flow_refused(
        &format!("{N}name = \"b\"\nkind = \"hangup\"\n"),
        "flows[0].entry",
        "unknown node \"a\"",
        "(b)",
    );
}

#[test]
fn flow_unknown_target_is_refused() {
    flow_refused(
        &format!("{N}name = \"a\"\nkind = \"transfer\"\ntarget = \"gas\"\n"),
        "flows[0].nodes[0].target",
        "unknown target \"gas\"",
        "known targets: water",
    );
}

#[test]
fn flow_unreachable_node_is_refused() {
    flow_refused(
        &format!("{N}name = \"a\"\nkind = \"hangup\"\n{N}name = \"b\"\nkind = \"hangup\"\n"),
        "flows[0].nodes[1].name",
        "node \"b\" cannot be reached",
        "remove it",
    );
}

#[test]
fn flow_loop_without_input_is_refused() {
    flow_refused(
        &format!(
            "{N}name = \"a\"\nkind = \"set_tag\"\nkey = \"k\"\nvalue = \"v\"\nnext = \"b\"\n\
             {N}name = \"b\"\nkind = \"goto\"\nnext = \"a\"\n"
        ),
        "flows[0].nodes[1].next",
        "a loop that never waits for the caller: a -> b -> a",
        "play, menu or collect",
    );
}

#[test]
fn flow_menu_without_timeout_is_refused() {
    flow_refused(
        &format!(
            "{N}name = \"a\"\nkind = \"menu\"\nprompt = \"survey\"\noptions = {{ 1 = \"b\" }}\n\
             {N}name = \"b\"\nkind = \"hangup\"\n"
        ),
        "flows[0].nodes[0].timeout",
        "node \"a\": missing key",
        "a menu needs a timeout branch",
    );
}

#[test]
fn flow_menu_bad_option_key_is_refused() {
    flow_refused(
        &format!(
            "{N}name = \"a\"\nkind = \"menu\"\nprompt = \"survey\"\n\
             options = {{ 12 = \"a\" }}\ntimeout = \"a\"\n"
        ),
        "flows[0].nodes[0].options.12",
        "option \"12\" is not one DTMF key",
        "0-9, *, #",
    );
}

#[test]
fn flow_collect_min_above_max_is_refused() {
    flow_refused(
        &format!(
            "{N}name = \"a\"\nkind = \"collect\"\nprompt = \"greeting\"\nmin = 6\nmax = 4\n\
             next = \"b\"\nfail = \"b\"\n{N}name = \"b\"\nkind = \"hangup\"\n"
        ),
        "flows[0].nodes[0].min",
        "min (6) is greater than max (4)",
        "fewest",
    );
}

#[test]
fn flow_key_of_another_kind_and_unknown_kind_are_refused() {
    flow_refused(
        &format!("{N}name = \"a\"\nkind = \"hangup\"\ntimeout_secs = 5\n"),
        "flows[0].nodes[0].timeout_secs",
        "`timeout_secs` does not apply to a hangup node",
        "a hangup node takes: cause",
    );
    flow_refused(
        &format!("{N}name = \"a\"\nkind = \"menue\"\n"),
        "flows[0].nodes[0].kind",
        "unknown kind \"menue\"",
        "did you mean \"menu\"?",
    );
    flow_refused(
        &format!("{N}name = \"a\"\n"),
        "flows[0].nodes[0].kind",
        "missing key",
        "kind is one of: play, menu",
    );
}

#[test]
fn flow_bad_schedule_is_refused() {
    flow_refused(
        &format!(
            "{N}name = \"a\"\nkind = \"hours\"\nschedule = [\"Mon-Fri 08:30-17:30\", \"Sat 9-12\"]\n\
             open = \"b\"\nclosed = \"b\"\n{N}name = \"b\"\nkind = \"hangup\"\n"
        ),
        "flows[0].nodes[0].schedule[1]",
        "invalid window \"Sat 9-12\"",
        "Mon-Fri 08:30-17:30",
    );
}

#[test]
fn flow_out_of_range_timeout_and_duplicate_flow_are_refused() {
    flow_refused(
        &format!(
            "{N}name = \"a\"\nkind = \"collect\"\nprompt = \"greeting\"\n\
             first_digit_timeout_secs = 0\nnext = \"a\"\nfail = \"a\"\n"
        ),
        "flows[0].nodes[0].first_digit_timeout_secs",
        "",
        "the default is 5",
    );
    let text = format!(
        "{}[[flows]]\nname = \"f\"\nentry = \"a\"\n{N}name = \"a\"\nkind = \"hangup\"\n",
        flow_file(&format!("{N}name = \"a\"\nkind = \"hangup\"\n"))
    );
    match config::parse(&text, "t.toml") {
        Ok(_) => panic!("a duplicate flow name should be refused"),
        Err(e) => assert_eq!(e.key.as_deref(), Some("flows[1].name"), "{e}"),
    }
}
