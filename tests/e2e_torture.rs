//! The 49 RFC 4475 torture messages and hostile datagrams sent over UDP to
//! the running binary: it answers what deserves an answer, survives all of
//! them, and still answers a carrier's OPTIONS ping afterwards.
mod common;

use common::e2e::*;
use std::net::UdpSocket;
use std::time::Duration;

fn options(gw: std::net::SocketAddr, local: std::net::SocketAddr, n: u32) -> Vec<u8> {
    format!(
        "OPTIONS sip:{gw} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKping{n};rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:ping@{local}>;tag=p{n}\r\nTo: <sip:{gw}>\r\nCall-ID: ping{n}@test\r\n\
CSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn ping(sock: &UdpSocket, gw: std::net::SocketAddr, n: u32) -> bool {
    let local = sock.local_addr().expect("local addr");
    let mut buf = [0u8; 65536];
    for attempt in 0..5 {
        let _ = attempt;
        sock.send_to(&options(gw, local, n), gw)
            .expect("send OPTIONS");
        let deadline = hotline::time::now() + Duration::from_secs(1);
        while hotline::time::now() < deadline {
            if let Ok((len, _)) = sock.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..len]);
                if text.starts_with("SIP/2.0 200") && text.contains(&format!("ping{n}@test")) {
                    return true;
                }
            }
        }
    }
    false
}

#[test]
fn torture_messages_over_udp_leave_the_gateway_answering() {
    let dir = TestDir::new("torture_udp");
    let gw = Gateway::start(&dir, GatewayConfig::new());
    let addr = gw.sip_addr();
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    assert!(
        ping(&sock, addr, 1),
        "no OPTIONS answer before the torture\n{}",
        gw.diagnostics()
    );

    let mut files: Vec<_> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/rfc4475"))
            .expect("testdata/rfc4475")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "dat"))
            .collect();
    files.sort();
    assert_eq!(files.len(), 49);
    let mut answered = 0;
    let mut buf = [0u8; 65536];
    for f in &files {
        let data = std::fs::read(f).expect("read");
        sock.send_to(&data, addr).expect("send");
        // Collect whatever comes back for a moment (answers go to our
        // source address thanks to received/rport, or to the Via).
        while let Ok((_n, _)) = sock.recv_from(&mut buf) {
            answered += 1;
        }
    }
    // Hostile datagrams: empty-ish, garbage, NULs, a huge header.
    let mut rng = 0x1234_5678_9abc_def0u64;
    for i in 0..300 {
        let mut junk = vec![0u8; 1 + (i * 37) % 1400];
        for b in junk.iter_mut() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            *b = rng as u8;
        }
        if i % 3 == 0 {
            junk.splice(0..0, b"INVITE sip:12345@x SIP/2.0\r\n".iter().copied());
        }
        sock.send_to(&junk, addr).expect("send junk");
    }
    sock.send_to(b"\r\n\r\n", addr).expect("keepalive");
    assert!(answered > 0, "no torture message was answered at all");
    assert!(
        ping(&sock, addr, 2),
        "gateway stopped answering OPTIONS after the torture\n{}",
        gw.diagnostics()
    );
    let (code, metrics) = gw.get("/metrics").expect("metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("hotline_sip_dropped_total"),
        "drops are counted"
    );
}
