//! The `hotline` command line: `check-config` accepts the shipped demo and
//! refuses a bad file with exit status 2 and a diagnostic naming the file;
//! `serve` names the config key of an address it cannot bind; SIGTERM on an
//! idle gateway drains and exits 0 (CONVENTIONS §11).

use hotline::time::now;
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn hotline(args: &[&str]) -> Output {
    match Command::new(env!("CARGO_BIN_EXE_hotline"))
        .args(args)
        .output()
    {
        Ok(o) => o,
        Err(e) => panic!("cannot run hotline: {e}"),
    }
}

fn demo_path() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("configs/demo.toml")
        .display()
        .to_string()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn check_config_accepts_the_demo() {
    let path = demo_path();
    let out = hotline(&["check-config", &path]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with(&format!("{path}: ok (")), "{stdout}");
    assert!(
        stdout.contains(" trunks, ")
            && stdout.contains(" targets, ")
            && stdout.contains(" routes, ")
            && stdout.contains(" flows; RTP ports 16384-32767)"),
        "{stdout}"
    );
}

#[test]
fn check_config_refuses_a_bad_file_with_status_2() {
    let dir = std::env::temp_dir().join(format!("hotline-cli-{}", std::process::id()));
    assert!(std::fs::create_dir_all(&dir).is_ok());
    let bad = dir.join("bad.toml");
    assert!(std::fs::write(&bad, "[node]\nname = \"x\"\n[sip]\nt1_msec = 5\n").is_ok());
    let bad = bad.display().to_string();
    let out = hotline(&["check-config", &bad]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&bad), "{stderr}");
    assert!(stderr.contains("t1_msec"), "{stderr}");

    let missing = dir.join("missing.toml").display().to_string();
    let out = hotline(&["check-config", &missing]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains(&missing));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn version_prints_the_crate_version() {
    let out = hotline(&["version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn serve_names_the_key_of_a_taken_address() {
    let taken = match UdpSocket::bind("127.0.0.1:0") {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let addr = match taken.local_addr() {
        Ok(a) => a.to_string(),
        Err(e) => panic!("{e}"),
    };
    let out = hotline(&[
        "serve",
        "--sip-listen",
        &addr,
        "--api-listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("sip.listen") && stderr.contains(&addr),
        "{stderr}"
    );
}

#[test]
fn sigterm_on_an_idle_gateway_drains_and_exits_0() {
    let mut child = match Command::new(env!("CARGO_BIN_EXE_hotline"))
        .args([
            "serve",
            "--sip-listen",
            "127.0.0.1:0",
            "--api-listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "info")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("cannot run hotline: {e}"),
    };
    let Some(stderr) = child.stderr.take() else {
        panic!("no stderr")
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let wait_for = |what: &str| {
        let until = now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        while let Some(left) = until.checked_duration_since(now()) {
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(what) => return,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!("no log line with {what:?}; saw:\n{}", seen.join("\n"));
    };
    wait_for("hotline listening");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(matches!(killed, Ok(s) if s.success()));
    wait_for("draining");
    let until = now() + Duration::from_secs(10);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if now() < until => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                panic!("did not exit after SIGTERM");
            }
        }
    };
    assert_eq!(status.code(), Some(0));
}
