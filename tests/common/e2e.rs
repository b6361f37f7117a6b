//! End-to-end helpers: the real `hotline` binary between real SIPp peers on
//! loopback (`tests/e2e_sipp.rs`).
//!
//! - [`require_sipp`]: fail (never skip) when `sipp` is missing, naming the
//!   script that installs it.
//! - [`free_port`] / [`free_media_port`]: loopback ports free for both UDP
//!   and TCP, never handed out twice in this process, so tests run in
//!   parallel without colliding.
//! - [`locked_rtp_range`]: a gateway RTP range no other process holds
//!   (under `cargo nextest` every test is a process of its own).
//! - [`TestDir`]: a unique scratch directory under `std::env::temp_dir()`;
//!   kept (and its path printed) when the test fails, removed otherwise.
//! - [`Gateway`]: writes a config, spawns `hotline serve --config …` with
//!   stderr captured to a file, waits for `GET /healthz` and for the SIP
//!   ports to be bound; SIGTERM then SIGKILL on drop.
//! - [`Sipp`] / [`SippProc`]: one SIPp process (UAS in the background, or a
//!   UAC) with its error and message traces in the test directory; a
//!   failure panics with those logs and the gateway's stderr.
//!
//! Real processes, real sockets: the wall clock is the point here, so this
//! file is exempt from the "only src/time.rs reads the clock" rule.
#![allow(clippy::disallowed_methods)]
#![allow(dead_code)]

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// The number every scenario dials (`-s 12345` → `[service]`).
pub const NUMBER: &str = "12345";

/// How long a gateway gets to answer `/healthz` after spawn.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a SIGTERMed gateway gets before the guard sends SIGKILL.
const KILL_AFTER: Duration = Duration::from_secs(5);
/// SIPp's global `-timeout` (the brief's 30 s).
pub const SIPP_TIMEOUT_SECS: u64 = 30;

// ---------------------------------------------------------------------------
// paths and tools
// ---------------------------------------------------------------------------

/// `sip-scenarios/` in the source tree.
pub fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sip-scenarios")
}

/// A scenario file by name, which must exist.
pub fn scenario(name: &str) -> PathBuf {
    let p = scenarios_dir().join(name);
    assert!(p.is_file(), "missing SIPp scenario {}", p.display());
    p
}

/// The `hotline` binary Cargo built for this test run.
pub fn hotline_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hotline"))
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The `sipp` executable. Panics (the test FAILS, it is not skipped) when
/// SIPp is not installed.
pub fn require_sipp() -> PathBuf {
    static SIPP: OnceLock<Option<PathBuf>> = OnceLock::new();
    SIPP.get_or_init(|| find_on_path("sipp"))
        .clone()
        .unwrap_or_else(|| {
            panic!(
                "`sipp` is not on PATH: the SIPp end-to-end tests need it. \
                 Run ./scripts/install-test-deps (installs the Debian package \
                 sip-tester), then run the tests again."
            )
        })
}

// ---------------------------------------------------------------------------
// ports
// ---------------------------------------------------------------------------

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

/// True when both UDP and TCP `127.0.0.1:port` can be bound right now.
fn udp_and_tcp_free(port: u16) -> bool {
    let udp = UdpSocket::bind(loopback(port));
    let tcp = TcpListener::bind(loopback(port));
    udp.is_ok() && tcp.is_ok()
}

/// A loopback port free for both UDP and TCP, never returned twice by this
/// process. The kernel picks it (bind to port 0), so it is in the ephemeral
/// range, away from SIPp's own media (6000+) and control (8888+) ports.
pub fn free_port() -> u16 {
    for _ in 0..1000 {
        let port = match UdpSocket::bind(loopback(0)).and_then(|s| s.local_addr()) {
            Ok(addr) => addr.port(),
            Err(e) => panic!("cannot bind a UDP socket on 127.0.0.1: {e}"),
        };
        // Both sockets are dropped before we return: the port is free again
        // for whoever we hand it to.
        if !udp_and_tcp_free(port) {
            continue;
        }
        let mut set = handed_out().lock().unwrap_or_else(|e| e.into_inner());
        if set.insert(port) {
            return port;
        }
    }
    panic!("no free loopback port found after 1000 tries");
}

/// A media base port `p` for SIPp's `-mp` with `p..p+4` free (SIPp binds the
/// audio and video echo ports `p` and `p + 2`). Never returned twice by this
/// process. Drawn from 61000..65000, above Linux's ephemeral range (32768..
/// 60999) where [`free_port`] draws, and away from the fixed ports of
/// `sip-scenarios/*.sh` (25060..27100), so the two never meet.
pub fn free_media_port() -> u16 {
    const BASE: u32 = 61000;
    const SPAN: u32 = 4000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Start each process at a different place so concurrent test binaries
    // rarely probe the same windows.
    let offset = (std::process::id() % 100) * 40;
    for _ in 0..SPAN / 4 {
        let n = NEXT.fetch_add(4, Ordering::Relaxed);
        let p = BASE + (offset + n) % SPAN;
        let Ok(p) = u16::try_from(p) else { continue };
        let ports = [p, p + 1, p + 2, p + 3];
        let mut set = handed_out().lock().unwrap_or_else(|e| e.into_inner());
        if ports.iter().any(|q| set.contains(q)) {
            continue;
        }
        if ports.iter().all(|&q| UdpSocket::bind(loopback(q)).is_ok()) {
            set.extend(ports);
            return p;
        }
    }
    panic!("no free media port window in {BASE}..{}", BASE + SPAN);
}

/// True once something holds UDP `127.0.0.1:port` (we cannot bind it).
pub fn udp_port_bound(port: u16) -> bool {
    UdpSocket::bind(loopback(port)).is_err()
}

/// True once something listens on TCP `127.0.0.1:port`.
pub fn tcp_port_listening(port: u16) -> bool {
    TcpStream::connect_timeout(&loopback(port), Duration::from_millis(200)).is_ok()
}

/// Poll `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// scratch directory
// ---------------------------------------------------------------------------

/// A unique scratch directory for one test: configs, gateway stderr, SIPp
/// traces. Removed when the test passes; kept and printed when it panics.
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    pub fn new(test: &str) -> TestDir {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "hotline-e2e-{}-{}-{n}-{test}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
        ));
        fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TestDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("e2e: logs kept in {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// The last `max` bytes of a file (lossy UTF-8), or a note that it is absent.
pub fn tail(path: &Path, max: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let from = bytes.len().saturating_sub(max);
            let text = String::from_utf8_lossy(&bytes[from..]).into_owned();
            if from > 0 {
                format!("[... {from} bytes cut ...]\n{text}")
            } else {
                text
            }
        }
        Err(e) => format!("<{}: {e}>", path.display()),
    }
}

// ---------------------------------------------------------------------------
// gateway
// ---------------------------------------------------------------------------

/// The knobs the e2e tests turn; everything else is the gateway's default.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    pub sip_port: u16,
    pub api_port: u16,
    /// Where the route for [`NUMBER`] points (the SIPp UAS).
    pub target_port: u16,
    pub ring_timeout_secs: u64,
    pub shutdown_grace_secs: u64,
    /// More TOML appended to the generated file (e.g. a `[webhooks]` table).
    pub extra_toml: String,
    /// Extra keys of `[api]` (e.g. `tokens`).
    pub api_toml: String,
    /// The gateway's RTP port range (its own, so parallel tests never
    /// compete for a port).
    pub media_ports: (u16, u16),
    /// More keys for the `[media]` table (e.g. `latching = "off"`).
    pub media_toml: String,
    /// More keys for the `[sip]` table (e.g. `digest_algorithms = ["MD5"]`).
    pub sip_toml: String,
    /// `RUST_LOG` for the gateway (when the test run sets none).
    pub rust_log: String,
    /// The `sources` of the generated trunk "sipp" (default
    /// `["127.0.0.0/8"]`: every loopback address). Narrow it to make a
    /// SIPp bound elsewhere on loopback (`-i 127.0.0.2`) an unknown source.
    pub trunk_sources: Vec<String>,
}

/// An RTP range of [`MEDIA_BLOCK`] ports for one test gateway, never handed
/// out twice by this process: from 20000..24960, below the ephemeral range
/// where [`free_port`] draws and the fixed ports of `sip-scenarios/*.sh`
/// (25060..), and away from SIPp's media ports (61000..).
pub fn free_rtp_range() -> (u16, u16) {
    const BASE: u32 = 20_000;
    const BLOCKS: u32 = 4960 / MEDIA_BLOCK as u32;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = std::process::id() % BLOCKS;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let block = (offset + n) % BLOCKS;
    let first = BASE + block * u32::from(MEDIA_BLOCK);
    let first = u16::try_from(first).unwrap_or(20_000);
    (first, first + MEDIA_BLOCK - 1)
}

/// Ports per test gateway: 40 calls at once.
pub const MEDIA_BLOCK: u16 = 160;

/// An RTP range of [`MEDIA_BLOCK`] ports no other process holds while this
/// one runs: for tests whose calls anchor media.
///
/// [`free_rtp_range`] is unique within one process only: under `cargo
/// nextest` (one process per test), or with a second checkout's tests
/// running on the same machine, two gateways can get the same range, and
/// the second cannot bind its first RTP port and ends the call at once
/// (`media_failed`: a BYE right after the ACK). Here the blocks come from
/// 10000..16240, which nothing else in the test suite uses (below the
/// gateway's default range, 16384..), and a block is taken by listening on
/// TCP at its first port (the gateway binds only UDP there) until this
/// process exits. When all 39 are taken, [`free_rtp_range`] decides.
pub fn locked_rtp_range() -> (u16, u16) {
    const BASE: u32 = 10_000;
    const BLOCKS: u32 = 6240 / MEDIA_BLOCK as u32;
    static HELD: Mutex<Vec<TcpListener>> = Mutex::new(Vec::new());
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = std::process::id() % BLOCKS;
    for _ in 0..BLOCKS {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let first = BASE + (offset + n) % BLOCKS * u32::from(MEDIA_BLOCK);
        let Ok(first) = u16::try_from(first) else {
            continue;
        };
        if let Ok(lock) = TcpListener::bind(loopback(first)) {
            HELD.lock().unwrap_or_else(|e| e.into_inner()).push(lock);
            return (first, first + MEDIA_BLOCK - 1);
        }
    }
    free_rtp_range()
}

impl GatewayConfig {
    /// Fresh ports for the gateway and its target.
    pub fn new() -> GatewayConfig {
        GatewayConfig {
            sip_port: free_port(),
            api_port: free_port(),
            target_port: free_port(),
            ring_timeout_secs: 4,
            shutdown_grace_secs: 5,
            extra_toml: String::new(),
            api_toml: String::new(),
            media_ports: locked_rtp_range(),
            media_toml: String::new(),
            sip_toml: String::new(),
            rust_log: "info".into(),
            trunk_sources: vec!["127.0.0.0/8".into()],
        }
    }

    pub fn sip_addr(&self) -> SocketAddr {
        loopback(self.sip_port)
    }

    pub fn api_addr(&self) -> SocketAddr {
        loopback(self.api_port)
    }

    /// The TOML the gateway is started with.
    pub fn to_toml(&self, _name: &str, data_dir: &Path) -> String {
        format!(
            r#"# written by tests/common/e2e.rs
[node]
name = "e2e"
data_dir = "{data_dir}"
shutdown_grace_secs = {grace}

[sip]
listen = "127.0.0.1:{sip}"
ring_timeout_secs = {ring}
{sip_extra}

[api]
listen = "127.0.0.1:{api}"
{api_extra}

[media]
port_min = {media_min}
port_max = {media_max}
{media_extra}

[[trunks]]
name = "sipp"
sources = [{sources}]

[[targets]]
name = "uas"
address = "127.0.0.1:{target}"
transport = "udp"

[[routes]]
number = "{number}"
target = "uas"
{extra}"#,
            data_dir = data_dir.display(),
            grace = self.shutdown_grace_secs,
            sip = self.sip_port,
            ring = self.ring_timeout_secs,
            api = self.api_port,
            target = self.target_port,
            number = NUMBER,
            extra = self.extra_toml,
            media_min = self.media_ports.0,
            media_max = self.media_ports.1,
            media_extra = self.media_toml,
            api_extra = self.api_toml,
            sip_extra = self.sip_toml,
            sources = self
                .trunk_sources
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", "),
        )
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig::new()
    }
}

/// A running `hotline serve`. Dropping it stops it: SIGTERM, then SIGKILL
/// after [`KILL_AFTER`].
pub struct Gateway {
    child: Child,
    pub config: GatewayConfig,
    pub stderr_path: PathBuf,
    pub config_path: PathBuf,
    exit: Option<ExitStatus>,
}

impl Gateway {
    /// Write the config into `dir`, spawn the gateway and wait until
    /// `/healthz` answers 200 and the SIP UDP and TCP ports are bound.
    pub fn start(dir: &TestDir, config: GatewayConfig) -> Gateway {
        let data_dir = dir.join("data");
        fs::create_dir_all(&data_dir).expect("create data dir");
        let config_path = dir.join("hotline.toml");
        fs::write(&config_path, config.to_toml(&dir_label(dir), &data_dir))
            .expect("write gateway config");
        let stderr_path = dir.join("gateway.stderr.log");
        let stderr = fs::File::create(&stderr_path).expect("create gateway stderr log");
        let stdout = stderr.try_clone().expect("dup gateway log");

        let mut cmd = Command::new(hotline_bin());
        cmd.arg("serve")
            .arg("--config")
            .arg(&config_path)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", &config.rust_log);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", hotline_bin().display()));

        let mut gw = Gateway {
            child,
            config,
            stderr_path,
            config_path,
            exit: None,
        };
        gw.wait_ready();
        gw
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.try_exit() {
                panic!(
                    "gateway exited during startup with {status}\n{}",
                    self.diagnostics()
                );
            }
            let healthy = matches!(self.get("/healthz"), Ok((200, _)));
            if healthy
                && udp_port_bound(self.config.sip_port)
                && tcp_port_listening(self.config.sip_port)
            {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "gateway not ready after {STARTUP_TIMEOUT:?} (healthz 200: {healthy}, \
                     SIP udp bound: {}, SIP tcp listening: {})\n{}",
                    udp_port_bound(self.config.sip_port),
                    tcp_port_listening(self.config.sip_port),
                    self.diagnostics()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn sip_addr(&self) -> SocketAddr {
        self.config.sip_addr()
    }

    /// `GET path` on the HTTP API.
    pub fn get(&self, path: &str) -> io::Result<(u16, String)> {
        http_get(self.config.api_addr(), path)
    }

    /// Send SIGKILL: the process dies at once, nothing flushed.
    pub fn kill9(&mut self) -> Option<ExitStatus> {
        signal(self.pid(), "KILL");
        self.wait_exit(Duration::from_secs(10))
    }

    /// Send SIGTERM (through `kill(1)`: no libc dependency).
    pub fn sigterm(&self) {
        signal(self.pid(), "TERM");
    }

    /// The exit status if the process has exited (reaped once, remembered).
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exit = Some(status);
            }
        }
        self.exit
    }

    /// Wait up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The config and the tail of the gateway's stderr, for failure messages.
    pub fn diagnostics(&self) -> String {
        format!(
            "--- gateway config {} ---\n{}\n--- gateway stderr {} (tail) ---\n{}",
            self.config_path.display(),
            fs::read_to_string(&self.config_path).unwrap_or_default(),
            self.stderr_path.display(),
            tail(&self.stderr_path, 8000)
        )
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.try_exit().is_some() {
            return;
        }
        signal(self.pid(), "TERM");
        if self.wait_exit(KILL_AFTER).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn dir_label(dir: &TestDir) -> String {
    dir.path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `kill -SIG pid`.
pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match status {
        Ok(_) => {}
        Err(e) => panic!(
            "cannot run `kill -{sig} {pid}`: {e} (install procps: ./scripts/install-test-deps)"
        ),
    }
}

/// A minimal HTTP/1.0 GET over a raw TCP stream: (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    // One write: the whole request in a single segment.
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: hotline-e2e\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {text:?}"));
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("no status line"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body).ok_or_else(|| bad("bad chunked body"))?
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size_line, rest) = s.split_once("\r\n")?;
        let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        s = rest.get(size..)?.strip_prefix("\r\n")?;
    }
}

// ---------------------------------------------------------------------------
// SIPp
// ---------------------------------------------------------------------------

/// One SIPp invocation: a scenario plus options. Build with [`Sipp::uac`] or
/// [`Sipp::uas`], then [`Sipp::spawn`] (background) or [`Sipp::run`].
#[derive(Clone, Debug)]
pub struct Sipp {
    label: String,
    scenario: PathBuf,
    remote: Option<SocketAddr>,
    local_port: u16,
    calls: u32,
    timeout_secs: u64,
    extra: Vec<String>,
}

impl Sipp {
    /// A UAC calling [`NUMBER`] at `remote` (the gateway).
    pub fn uac(label: &str, scenario_name: &str, remote: SocketAddr) -> Sipp {
        Sipp {
            label: label.to_owned(),
            scenario: scenario(scenario_name),
            remote: Some(remote),
            local_port: free_port(),
            calls: 1,
            timeout_secs: SIPP_TIMEOUT_SECS,
            extra: Vec::new(),
        }
    }

    /// A UAS listening on `127.0.0.1:port` (the gateway's target).
    pub fn uas(label: &str, scenario_name: &str, port: u16) -> Sipp {
        Sipp {
            label: label.to_owned(),
            scenario: scenario(scenario_name),
            remote: None,
            local_port: port,
            calls: 1,
            timeout_secs: SIPP_TIMEOUT_SECS,
            extra: Vec::new(),
        }
    }

    /// `-m N`: exit after N calls (default 1).
    pub fn calls(mut self, n: u32) -> Sipp {
        self.calls = n;
        self
    }

    /// `-timeout Ns -timeout_error` (default [`SIPP_TIMEOUT_SECS`]).
    pub fn timeout_secs(mut self, secs: u64) -> Sipp {
        self.timeout_secs = secs;
        self
    }

    /// `-d ms`: the duration of `<pause/>` without milliseconds.
    pub fn pause_ms(self, ms: u64) -> Sipp {
        self.arg("-d").arg(&ms.to_string())
    }

    /// `-t t1`: one TCP connection (default is UDP, `u1`).
    pub fn tcp(self) -> Sipp {
        self.arg("-t").arg("t1")
    }

    /// Any other SIPp option.
    pub fn arg(mut self, a: &str) -> Sipp {
        self.extra.push(a.to_owned());
        self
    }

    /// `-s number`: dial `number` instead of [`NUMBER`] (SIPp takes the
    /// last `-s`), e.g. a `[[lines]]` number.
    pub fn dial(self, number: &str) -> Sipp {
        self.arg("-s").arg(number)
    }

    /// `-set name value`: a scenario variable.
    pub fn set(self, name: &str, value: &str) -> Sipp {
        self.arg("-set").arg(name).arg(value)
    }

    pub fn local_port(&self) -> u16 {
        self.local_port
    }

    fn file(&self, dir: &TestDir, what: &str) -> PathBuf {
        dir.join(&format!("sipp-{}-{what}", self.label))
    }

    /// Start SIPp in the background. A UAS is waited for until its port is
    /// bound, so a UAC started next cannot beat it.
    pub fn spawn(&self, dir: &TestDir) -> SippProc {
        let sipp = require_sipp();
        let errors = self.file(dir, "errors.log");
        let messages = self.file(dir, "messages.log");
        let screen = self.file(dir, "screen.log");
        let mut args: Vec<String> = Vec::new();
        if let Some(remote) = self.remote {
            args.push(remote.to_string());
        }
        args.extend(
            [
                "-sf",
                &self.scenario.to_string_lossy(),
                "-i",
                "127.0.0.1",
                "-p",
                &self.local_port.to_string(),
                "-mp",
                &free_media_port().to_string(),
                "-m",
                &self.calls.to_string(),
                "-s",
                NUMBER,
                "-nostdin",
                "-timeout",
                &format!("{}s", self.timeout_secs),
                "-timeout_error",
                "-trace_err",
                "-error_file",
                &errors.to_string_lossy(),
                "-trace_msg",
                "-message_file",
                &messages.to_string_lossy(),
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        args.extend(self.extra.iter().cloned());

        let out = fs::File::create(&screen).expect("create sipp screen log");
        let err = out.try_clone().expect("dup sipp screen log");
        let child = Command::new(&sipp)
            .args(&args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", sipp.display()));
        let mut proc = SippProc {
            child,
            label: self.label.clone(),
            command: format!("sipp {}", args.join(" ")),
            errors,
            messages,
            screen,
            exit: None,
            started: Instant::now(),
        };
        if self.remote.is_none() {
            let port = self.local_port;
            let tcp = self.extra.iter().any(|a| a == "t1" || a == "tn");
            let bound = wait_until(Duration::from_secs(10), || {
                if proc.try_exit().is_some() {
                    return true;
                }
                if tcp {
                    tcp_port_listening(port)
                } else {
                    udp_port_bound(port)
                }
            });
            if let Some(status) = proc.try_exit() {
                panic!(
                    "SIPp {} exited at startup with {status}\n{}",
                    proc.label,
                    proc.diagnostics()
                );
            }
            assert!(
                bound,
                "SIPp {} did not bind port {port}\n{}",
                proc.label,
                proc.diagnostics()
            );
        }
        proc
    }

    /// Run to completion (bounded by the SIPp timeout plus a margin).
    pub fn run(&self, dir: &TestDir) -> SippProc {
        let mut proc = self.spawn(dir);
        proc.wait(Duration::from_secs(self.timeout_secs + 15));
        proc
    }
}

/// A running or finished SIPp process. Killed on drop if still running.
pub struct SippProc {
    child: Child,
    pub label: String,
    pub command: String,
    pub errors: PathBuf,
    pub messages: PathBuf,
    pub screen: PathBuf,
    exit: Option<ExitStatus>,
    started: Instant,
}

impl SippProc {
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exit = Some(status);
            }
        }
        self.exit
    }

    /// Wait up to `timeout`; on expiry kill SIPp and return `None`.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Time since spawn (the whole run once it has exited and was reaped
    /// promptly by [`SippProc::wait`]).
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The command line and the tails of SIPp's logs.
    pub fn diagnostics(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "--- SIPp {}: {}", self.label, self.command);
        let _ = writeln!(
            s,
            "--- errors {} ---\n{}",
            self.errors.display(),
            tail(&self.errors, 4000)
        );
        let _ = writeln!(
            s,
            "--- messages {} (tail) ---\n{}",
            self.messages.display(),
            tail(&self.messages, 6000)
        );
        let _ = writeln!(
            s,
            "--- screen {} (tail) ---\n{}",
            self.screen.display(),
            tail(&self.screen, 3000)
        );
        s
    }

    /// Wait (bounded) and assert SIPp exited 0: every call succeeded.
    /// `context` is appended to the panic message (the gateway's stderr).
    pub fn expect_success(&mut self, timeout: Duration, context: &str) {
        match self.wait(timeout) {
            Some(status) if status.success() => {}
            Some(status) => panic!(
                "SIPp {} failed with {status} ({}): a call did not follow the scenario\n{}\n{context}",
                self.label,
                sipp_exit_meaning(status.code()),
                self.diagnostics()
            ),
            None => panic!(
                "SIPp {} still running after {timeout:?}; killed\n{}\n{context}",
                self.label,
                self.diagnostics()
            ),
        }
    }

    /// The status codes of all final responses (>= 200) SIPp received, in
    /// order, read from its message trace.
    pub fn received_final_statuses(&self) -> Vec<u16> {
        let text = fs::read_to_string(&self.messages).unwrap_or_default();
        let mut codes = Vec::new();
        let mut next_is_received = false;
        for line in text.lines() {
            if line.contains("message received") {
                next_is_received = true;
                continue;
            }
            if next_is_received && !line.trim().is_empty() {
                next_is_received = false;
                if let Some(code) = line
                    .strip_prefix("SIP/2.0 ")
                    .and_then(|r| r.get(..3))
                    .and_then(|c| c.parse::<u16>().ok())
                {
                    if code >= 200 {
                        codes.push(code);
                    }
                }
            }
        }
        codes
    }
}

impl Drop for SippProc {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// SIPp's documented exit codes.
pub fn sipp_exit_meaning(code: Option<i32>) -> &'static str {
    match code {
        Some(0) => "all calls succeeded",
        Some(1) => "at least one call failed",
        Some(97) => "exit on internal command; calls may have been processed",
        Some(99) => "normal exit without calls processed",
        Some(253) => "RTP validation failure",
        Some(254) => "fatal error binding a socket",
        Some(255) => "fatal error (or -timeout_error reached)",
        Some(_) => "unknown exit code",
        None => "killed by a signal",
    }
}

// ---------------------------------------------------------------------------
// the common pattern
// ---------------------------------------------------------------------------

/// Start `uas` in the background, run `uac` through the gateway, and assert
/// that both exit 0. Returns both (finished) for further checks.
pub fn call_through(dir: &TestDir, gw: &Gateway, uas: &Sipp, uac: &Sipp) -> (SippProc, SippProc) {
    let mut uas_proc = uas.spawn(dir);
    let mut uac_proc = uac.spawn(dir);
    let bound = Duration::from_secs(uac.timeout_secs + 15);
    uac_proc.expect_success(
        bound,
        &format!("{}\n{}", uas_proc.diagnostics(), gw.diagnostics()),
    );
    uas_proc.expect_success(
        Duration::from_secs(15),
        &format!("{}\n{}", uac_proc.diagnostics(), gw.diagnostics()),
    );
    (uas_proc, uac_proc)
}

/// The callee of `media-uas.xml`: rings `ring_ms`, answers, echoes RTP
/// (`-rtp_echo`).
pub fn media_uas(port: u16, ring_ms: u64) -> Sipp {
    Sipp::uas("media-uas", "media-uas.xml", port)
        .arg("-rtp_echo")
        .arg("-set")
        .arg("ring_ms")
        .arg(&ring_ms.to_string())
}

/// The caller of `media-uac.xml` (audio, then digits 1, 2, 3), with its
/// media address at the RTP sink beside SIPp's `-mp` port (`mp` from
/// `RtpSink::beside_sipp`). The later `-mp` overrides the one `Sipp`
/// picks (SIPp takes the last).
pub fn media_uac(remote: SocketAddr, mp: u16, audio_ms: u64) -> Sipp {
    Sipp::uac("media-uac", "media-uac.xml", remote)
        .arg("-mp")
        .arg(&mp.to_string())
        .arg("-set")
        .arg("audio_ms")
        .arg(&audio_ms.to_string())
        .arg("-set")
        .arg("dtmf_gap_ms")
        .arg("600")
        .arg("-set")
        .arg("tail_ms")
        .arg("1000")
}

/// Tell a caller running `line-uac.xml` with `cue=1` to go on: one INFO on
/// its call (`call_id`, from caller number `caller`), to its SIP port. The
/// scenario waits for it and does not answer it.
pub fn cue_line_uac(caller: &str, uac: &Sipp, call_id: &str) {
    let port = uac.local_port();
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind cue socket");
    let me = socket.local_addr().expect("cue socket address");
    let msg = format!(
        "INFO sip:{caller}@127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-e2e-cue-{port}\r\n\
         From: <sip:test@{me}>;tag=e2e-cue\r\n\
         To: <sip:{caller}@127.0.0.1:{port}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INFO\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    );
    socket
        .send_to(msg.as_bytes(), ("127.0.0.1", port))
        .expect("send the cue");
}
