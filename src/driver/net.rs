//! SIP sockets: the UDP socket, the TCP listener and one task per TCP
//! connection. Bytes in, bytes out; every decision about them is the core's.
//!
//! - UDP is received by its own task ([`udp_loop`]) and handed to the core
//!   loop over the event channel; the core loop sends with `try_send_to`,
//!   awaiting only on `WouldBlock`.
//! - Each TCP connection is a task that frames the stream with
//!   [`msg::frame_len`] (RFC 3261 §18.3), forwards each message as a
//!   [`Packet`], writes what the core queues for it, answers RFC 5626 §4.4.1
//!   double-CRLF pings with a CRLF pong, and closes after
//!   `sip.tcp_idle_timeout` without traffic. When the task ends, the core
//!   loop learns it from the [`JoinSet`] and tells the core
//!   [`Input::ConnClosed`](crate::gateway::Input::ConnClosed).
//! - [`Conns`] is the core loop's table of open connections: it routes a
//!   stream [`Transmit`] to its connection (or one to the same destination),
//!   opens outbound connections, and enforces `sip.tcp_max_connections`.
//!
//! Network errors never panic: they are logged at debug and counted in
//! `hotline_sip_transport_errors_total{kind}`.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use super::metrics::{dropped, transport_error, SipMetrics, TCP_CONNECTIONS};
use crate::ids::{ConnId, IdGen};
use crate::sip::msg::{self, ParseError};
use crate::sip::transport::{Packet, Transmit, Transport};
use crate::time;

/// How long an outbound TCP connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages the core may queue on one connection before it is deemed stuck
/// and closed.
pub const CONN_QUEUE: usize = 256;
/// Largest single read from a TCP stream.
const READ_CHUNK: usize = 16 * 1024;
/// Pause after a failed `accept` (e.g. out of file descriptors), so a
/// persistent failure does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What socket tasks tell the core loop.
#[derive(Debug)]
pub enum NetEvent {
    /// A datagram, or a framed message from a TCP connection.
    Packet(Packet),
    /// The listener accepted a connection.
    Accepted(TcpStream, SocketAddr),
}

/// Bind the UDP socket and the TCP listener on the same address. A port 0
/// `listen` gets the UDP socket's port for TCP too. The UDP socket asks the
/// kernel for `buffer` bytes of receive and send buffer (`SO_RCVBUF`,
/// `SO_SNDBUF`) and warns when it got less.
///
/// # Errors
/// `(transport, address, error)` of the bind that failed.
pub async fn bind(
    listen: SocketAddr,
    buffer: usize,
) -> Result<(UdpSocket, TcpListener), (&'static str, SocketAddr, io::Error)> {
    let udp = udp_socket(listen, buffer)
        .and_then(UdpSocket::from_std)
        .map_err(|e| ("UDP", listen, e))?;
    let tcp_addr = udp.local_addr().map_err(|e| ("UDP", listen, e))?;
    let tcp = TcpListener::bind(tcp_addr)
        .await
        .map_err(|e| ("TCP", tcp_addr, e))?;
    Ok((udp, tcp))
}

/// A non-blocking UDP socket bound to `listen` with buffers of `buffer`
/// bytes asked for (set before `bind`, so no datagram arrives into the
/// small default buffer).
pub(crate) fn udp_socket(listen: SocketAddr, buffer: usize) -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(listen),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    let asked = [
        (
            "receive",
            "net.core.rmem_max",
            socket.set_recv_buffer_size(buffer),
        ),
        (
            "send",
            "net.core.wmem_max",
            socket.set_send_buffer_size(buffer),
        ),
    ];
    let granted = [socket.recv_buffer_size(), socket.send_buffer_size()];
    for ((which, sysctl, set), got) in asked.into_iter().zip(granted) {
        // Linux reports twice what it granted (it counts its bookkeeping).
        let got = got.map(|g| if cfg!(target_os = "linux") { g / 2 } else { g });
        match (set, got) {
            (Ok(()), Ok(got)) if got >= buffer => {
                tracing::debug!(which, bytes = got, "udp socket buffer");
            }
            (Ok(()), Ok(got)) => tracing::warn!(
                which,
                asked = buffer,
                granted = got,
                "the kernel capped the SIP UDP {which} buffer (config key \
                 `sip.udp_buffer_bytes`); bursts beyond it are dropped and counted in \
                 hotline_sip_udp_kernel_drops_total. Raise the cap: sysctl -w {sysctl}={buffer} \
                 (systemd/99-hotline.conf)"
            ),
            (Err(e), _) | (_, Err(e)) => tracing::warn!(
                which,
                error = %e,
                "cannot size the SIP UDP {which} buffer; the kernel default applies"
            ),
        }
    }
    socket.set_nonblocking(true)?;
    socket.bind(&listen.into())?;
    Ok(socket.into())
}

/// The inode of a socket (as `/proc/net/udp` lists it), if the OS tells.
pub fn socket_inode(udp: &UdpSocket) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::MetadataExt;
        let fd = udp.as_raw_fd();
        std::fs::metadata(format!("/proc/self/fd/{fd}"))
            .ok()
            .map(|m| m.ino())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = udp;
        None
    }
}

/// How many datagrams the kernel dropped on the UDP socket with this
/// inode (the last column of `/proc/net/udp` or `/proc/net/udp6`).
pub fn kernel_drops(inode: u64) -> Option<u64> {
    ["/proc/net/udp", "/proc/net/udp6"]
        .into_iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .find_map(|text| drops_in_table(&text, inode))
}

/// The `drops` column of the row for `inode` in a `/proc/net/udp` table.
fn drops_in_table(text: &str, inode: u64) -> Option<u64> {
    text.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref ptr drops
        if fields.len() < 13 || fields[9].parse::<u64>().ok()? != inode {
            return None;
        }
        fields.last()?.parse().ok()
    })
}

/// Accept TCP connections forever and hand them to the core loop (which
/// applies the connection limit). Spawn it; abort it at shutdown.
pub async fn accept_loop(listener: TcpListener, events: mpsc::Sender<NetEvent>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if events.send(NetEvent::Accepted(stream, peer)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "tcp accept failed");
                transport_error("tcp_accept");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Receive datagrams forever and hand them to the core loop; spawn it and
/// abort it at shutdown. A datagram larger than `max` bytes is dropped and
/// counted (`hotline_sip_dropped_total{reason="too_large"}`).
pub async fn udp_loop(udp: Arc<UdpSocket>, events: mpsc::Sender<NetEvent>, max: usize) {
    // One byte more than the largest message, to tell a datagram that fits
    // from one the kernel truncated.
    let mut buf = vec![0u8; max.saturating_add(1)];
    loop {
        let (n, source) = match udp.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // E.g. ECONNREFUSED from an ICMP error: not fatal.
                tracing::debug!(error = %e, "udp receive failed");
                transport_error("udp_recv");
                continue;
            }
        };
        if n > max {
            tracing::debug!(%source, max, "udp datagram too large: dropped");
            dropped("too_large");
            continue;
        }
        let p = Packet {
            transport: Transport::Udp,
            source,
            conn: None,
            data: Bytes::copy_from_slice(&buf[..n]),
        };
        if events.send(NetEvent::Packet(p)).await.is_err() {
            return;
        }
    }
}

/// Send one datagram: `try_send_to`, awaiting only when the socket buffer is
/// full.
pub async fn send_udp(udp: &UdpSocket, t: &Transmit, m: &SipMetrics) {
    let r = match udp.try_send_to(&t.data, t.destination) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            udp.send_to(&t.data, t.destination).await
        }
        r => r,
    };
    match r {
        Ok(_) => m.sent(Transport::Udp, t.data.len()),
        Err(e) => {
            tracing::debug!(error = %e, to = %t.destination, "udp send failed");
            transport_error("udp_send");
        }
    }
}

/// One frame cut from a stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole SIP message (leading CRLFs stripped).
    Message(Bytes),
    /// A double-CRLF keep-alive ping (RFC 5626 §4.4.1): answer with a CRLF.
    Ping,
}

/// Why a stream cannot be framed any further; the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A message (or its header section) exceeds `sip.max_message_bytes`.
    #[error("message larger than {0} bytes")]
    TooLarge(usize),
    /// The header section cannot be framed (e.g. no Content-Length).
    #[error("cannot frame: {0}")]
    Malformed(ParseError),
}

/// Cuts SIP messages from a byte stream (sans-IO; the connection task feeds
/// it). Holds at most one partial message of at most `max` bytes plus one
/// read.
#[derive(Debug)]
pub struct Framer {
    buf: BytesMut,
    max: usize,
}

impl Framer {
    /// A framer accepting messages of up to `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            max,
        }
    }

    /// Append bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next frame, `Ok(None)` when more bytes are needed.
    ///
    /// # Errors
    /// The stream cannot be framed; close the connection.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        // Keep-alives and stray CRLFs between messages (RFC 3261 §7.5).
        let lead = self
            .buf
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(self.buf.len());
        if lead > 0 {
            if self.buf.starts_with(b"\r\n\r\n") {
                self.buf.advance(4);
                return Ok(Some(Frame::Ping));
            }
            if lead == self.buf.len() && lead < 4 {
                return Ok(None); // maybe the start of a ping
            }
            self.buf.advance(lead);
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        match msg::frame_len(&self.buf, self.max) {
            Ok(Some(n)) => Ok(Some(Frame::Message(self.buf.split_to(n).freeze()))),
            Ok(None) if self.buf.len() > self.max => Err(FrameError::TooLarge(self.max)),
            Ok(None) => Ok(None),
            Err(ParseError::Incomplete | ParseError::Truncated) => {
                Err(FrameError::TooLarge(self.max))
            }
            Err(e) => Err(FrameError::Malformed(e)),
        }
    }
}

/// The core loop's table of TCP connections.
pub struct Conns {
    by_id: HashMap<ConnId, Conn>,
    by_peer: HashMap<SocketAddr, ConnId>,
    by_task: HashMap<tokio::task::Id, ConnId>,
    tasks: JoinSet<ConnId>,
    ids: IdGen,
    inbound: usize,
    /// Connections the core loop closed (stuck); the core is told.
    closed: Vec<ConnId>,
    events: mpsc::Sender<NetEvent>,
    max_inbound: usize,
    max_message: usize,
    idle: Duration,
}

struct Conn {
    tx: mpsc::Sender<Bytes>,
    peer: SocketAddr,
    inbound: bool,
    task: AbortHandle,
}

impl Conns {
    /// An empty table; connection tasks send their messages to `events`.
    pub fn new(
        events: mpsc::Sender<NetEvent>,
        max_inbound: usize,
        max_message: usize,
        idle: Duration,
    ) -> Self {
        Self {
            by_id: HashMap::new(),
            by_peer: HashMap::new(),
            by_task: HashMap::new(),
            tasks: JoinSet::new(),
            ids: IdGen::default(),
            inbound: 0,
            closed: Vec::new(),
            events,
            max_inbound,
            max_message,
            idle,
        }
    }

    /// Take over an accepted connection, or close it at once when
    /// `sip.tcp_max_connections` inbound connections are open.
    pub fn accepted(&mut self, stream: TcpStream, peer: SocketAddr) {
        if self.inbound >= self.max_inbound {
            tracing::debug!(%peer, limit = self.max_inbound, "tcp connection refused: limit reached");
            transport_error("tcp_limit");
            return; // dropping the stream closes it
        }
        let _ = stream.set_nodelay(true);
        let id = self.start(peer, ConnStart::Accepted(stream));
        tracing::debug!(%id, %peer, "tcp accepted");
    }

    /// Queue a stream message: on its connection if open, else on an open
    /// connection to its destination, else on a new outbound connection.
    /// A connection whose queue is full is closed (its id shows up in
    /// [`Conns::take_closed`]).
    pub fn send(&mut self, t: Transmit, m: &SipMetrics) {
        let id = t
            .conn
            .filter(|c| self.by_id.contains_key(c))
            .or_else(|| self.by_peer.get(&t.destination).copied())
            .unwrap_or_else(|| self.connect(t.destination));
        let Some(conn) = self.by_id.get(&id) else {
            transport_error("tcp_send");
            return;
        };
        let len = t.data.len();
        match conn.tx.try_send(t.data) {
            Ok(()) => m.sent(Transport::Tcp, len),
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!(%id, peer = %conn.peer, "tcp send queue full: closing");
                transport_error("tcp_queue_full");
                self.close(id);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                // The task just ended; its join reports the close.
                transport_error("tcp_send");
            }
        }
    }

    fn connect(&mut self, peer: SocketAddr) -> ConnId {
        let id = self.start(peer, ConnStart::Connect);
        tracing::debug!(%id, %peer, "tcp connecting");
        id
    }

    /// Spawn the task of a new connection and enter it in the table.
    fn start(&mut self, peer: SocketAddr, start: ConnStart) -> ConnId {
        let inbound = matches!(start, ConnStart::Accepted(_));
        let id = ConnId(self.ids.next_raw());
        let (tx, rx) = mpsc::channel(CONN_QUEUE);
        let task = conn_task(
            id,
            peer,
            start,
            rx,
            self.events.clone(),
            self.max_message,
            self.idle,
        );
        let handle = self.tasks.spawn(async move {
            task.await;
            id
        });
        self.by_task.insert(handle.id(), id);
        let conn = Conn {
            tx,
            peer,
            inbound,
            task: handle,
        };
        self.by_id.insert(id, conn);
        self.by_peer.insert(peer, id);
        if inbound {
            self.inbound += 1;
        }
        metrics::gauge!(TCP_CONNECTIONS).set(self.by_id.len() as f64);
        id
    }

    /// Close a connection now, dropping what is queued on it.
    fn close(&mut self, id: ConnId) {
        if let Some(c) = self.forget(id) {
            c.task.abort();
            self.closed.push(id);
        }
    }

    fn forget(&mut self, id: ConnId) -> Option<Conn> {
        let c = self.by_id.remove(&id)?;
        self.by_task.remove(&c.task.id());
        if self.by_peer.get(&c.peer) == Some(&id) {
            self.by_peer.remove(&c.peer);
        }
        if c.inbound {
            self.inbound -= 1;
        }
        metrics::gauge!(TCP_CONNECTIONS).set(self.by_id.len() as f64);
        Some(c)
    }

    /// Connections closed by [`Conns::send`] since the last call.
    pub fn take_closed(&mut self) -> Vec<ConnId> {
        std::mem::take(&mut self.closed)
    }

    /// The next connection task to end: its id, if the table still had it
    /// (a connection closed by [`Conns::send`] is not reported twice).
    /// Pending forever while no task runs.
    pub async fn next_closed(&mut self) -> Option<ConnId> {
        let id = match self.tasks.join_next_with_id().await {
            None => return std::future::pending().await,
            Some(Ok((task, id))) => {
                self.by_task.remove(&task);
                id
            }
            Some(Err(e)) => {
                if e.is_panic() {
                    tracing::error!(error = %e, "bug: tcp connection task panicked");
                }
                self.by_task.remove(&e.id())?
            }
        };
        self.forget(id).map(|_| id)
    }

    /// Stop taking messages; let each connection write what is queued, for
    /// at most `within`; then abort what is left.
    pub async fn shutdown(mut self, within: Duration) {
        self.by_id.clear();
        self.by_peer.clear();
        let flushed = tokio::time::timeout(within, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if flushed.is_err() {
            tracing::debug!(left = self.tasks.len(), "tcp connections aborted at exit");
        }
        self.tasks.shutdown().await;
        metrics::gauge!(TCP_CONNECTIONS).set(0.0);
    }
}

/// How a connection task gets its stream.
enum ConnStart {
    Accepted(TcpStream),
    Connect,
}

async fn conn_task(
    id: ConnId,
    peer: SocketAddr,
    start: ConnStart,
    rx: mpsc::Receiver<Bytes>,
    events: mpsc::Sender<NetEvent>,
    max: usize,
    idle: Duration,
) {
    let stream = match start {
        ConnStart::Accepted(s) => s,
        ConnStart::Connect => {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(peer)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    s
                }
                Ok(Err(e)) => {
                    tracing::debug!(%id, %peer, error = %e, "tcp connect failed");
                    transport_error("tcp_connect");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%id, %peer, "tcp connect timed out");
                    transport_error("tcp_connect");
                    return;
                }
            }
        }
    };
    let why = serve_conn(id, peer, stream, rx, events, max, idle).await;
    tracing::debug!(%id, %peer, why, "tcp closed");
}

/// Run one connection until it closes; returns why, for the log.
async fn serve_conn<S: AsyncRead + AsyncWrite>(
    id: ConnId,
    peer: SocketAddr,
    stream: S,
    mut rx: mpsc::Receiver<Bytes>,
    events: mpsc::Sender<NetEvent>,
    max: usize,
    idle: Duration,
) -> &'static str {
    let (mut r, mut w) = tokio::io::split(stream);
    let mut framer = Framer::new(max);
    let mut chunk = vec![0u8; READ_CHUNK.min(max.saturating_add(1))];
    // What is being written; empty when idle.
    let mut out = Bytes::new();
    let mut pong = false;
    let idle_at = || tokio::time::Instant::from_std(time::now() + idle);
    let timer = tokio::time::sleep_until(idle_at());
    tokio::pin!(timer);
    loop {
        if out.is_empty() && pong {
            out = Bytes::from_static(b"\r\n");
            pong = false;
        }
        tokio::select! {
            read = r.read(&mut chunk) => {
                let n = match read {
                    Ok(0) => return "peer closed",
                    Ok(n) => n,
                    Err(e) => {
                        tracing::debug!(%id, %peer, error = %e, "tcp read failed");
                        transport_error("tcp_read");
                        return "read error";
                    }
                };
                timer.as_mut().reset(idle_at());
                framer.push(&chunk[..n]);
                loop {
                    match framer.next_frame() {
                        Ok(None) => break,
                        Ok(Some(Frame::Ping)) => pong = true,
                        Ok(Some(Frame::Message(data))) => {
                            let p = Packet { transport: Transport::Tcp, source: peer, conn: Some(id), data };
                            if events.send(NetEvent::Packet(p)).await.is_err() {
                                return "shutting down";
                            }
                        }
                        Err(FrameError::TooLarge(limit)) => {
                            tracing::debug!(%id, %peer, limit, "tcp message too large: closing");
                            dropped("too_large");
                            return "message too large";
                        }
                        Err(FrameError::Malformed(e)) => {
                            tracing::debug!(%id, %peer, error = %e, "tcp framing failed: closing");
                            dropped("tcp_framing");
                            return "framing error";
                        }
                    }
                }
            }
            msg = rx.recv(), if out.is_empty() => match msg {
                Some(data) => out = data,
                None => {
                    // The core let go of it and everything queued is written.
                    let _ = w.shutdown().await;
                    return "closed by us";
                }
            },
            wrote = w.write(&out), if !out.is_empty() => match wrote {
                Ok(0) => return "peer closed",
                Ok(n) => {
                    out.advance(n);
                    timer.as_mut().reset(idle_at());
                }
                Err(e) => {
                    tracing::debug!(%id, %peer, error = %e, "tcp write failed");
                    transport_error("tcp_write");
                    return "write error";
                }
            },
            () = &mut timer => return "idle",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:12345@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5062;branch=z9hG4bK1\r\nContent-Length: 4\r\n\r\nv=0\n";
    const BYE: &[u8] = b"BYE sip:12345@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5062;branch=z9hG4bK2\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn kernel_drops_row_is_found_by_inode() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
              1: 0100007F:61E4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 777 2 0000000000000000 0\n\
              2: 0100007F:61E5 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 109\n";
        assert_eq!(drops_in_table(table, 4242), Some(109));
        assert_eq!(drops_in_table(table, 777), Some(0));
        assert_eq!(drops_in_table(table, 5), None);
        assert_eq!(drops_in_table("garbage\nline without fields\n", 5), None);
    }

    #[tokio::test]
    async fn udp_socket_gets_its_buffer_and_is_found_in_proc() {
        let (udp, _tcp) = match bind(SocketAddr::from(([127, 0, 0, 1], 0)), 1 << 20).await {
            Ok(s) => s,
            Err((t, a, e)) => panic!("{t} {a}: {e}"),
        };
        let inode = socket_inode(&udp);
        if cfg!(target_os = "linux") {
            let inode = match inode {
                Some(i) => i,
                None => panic!("no inode for the socket"),
            };
            assert_eq!(kernel_drops(inode), Some(0));
        }
    }

    fn frames(f: &mut Framer) -> Vec<Frame> {
        let mut v = Vec::new();
        loop {
            match f.next_frame() {
                Ok(Some(x)) => v.push(x),
                Ok(None) => return v,
                Err(e) => panic!("unexpected {e}"),
            }
        }
    }

    #[test]
    fn message_split_across_reads() {
        let mut f = Framer::new(65535);
        for piece in INVITE.chunks(7) {
            f.push(piece);
            let got = frames(&mut f);
            if f.buf.is_empty() {
                assert_eq!(got, vec![Frame::Message(Bytes::from_static(INVITE))]);
                return;
            }
            assert!(got.is_empty());
        }
        panic!("never framed");
    }

    #[test]
    fn body_split_from_head() {
        let mut f = Framer::new(65535);
        let cut = INVITE.len() - 2;
        f.push(&INVITE[..cut]);
        assert!(frames(&mut f).is_empty());
        f.push(&INVITE[cut..]);
        assert_eq!(
            frames(&mut f),
            vec![Frame::Message(Bytes::from_static(INVITE))]
        );
    }

    #[test]
    fn two_messages_in_one_read() {
        let mut f = Framer::new(65535);
        let mut both = INVITE.to_vec();
        both.extend_from_slice(BYE);
        both.extend_from_slice(&INVITE[..10]);
        f.push(&both);
        assert_eq!(
            frames(&mut f),
            vec![
                Frame::Message(Bytes::from_static(INVITE)),
                Frame::Message(Bytes::from_static(BYE))
            ]
        );
        assert_eq!(&f.buf[..], &INVITE[..10]);
    }

    #[test]
    fn keepalive_pings_and_stray_crlf() {
        let mut f = Framer::new(65535);
        f.push(b"\r\n\r");
        assert!(frames(&mut f).is_empty(), "half a ping waits");
        f.push(b"\n\r\n\r\n");
        assert_eq!(frames(&mut f), vec![Frame::Ping, Frame::Ping]);
        let mut m = b"\r\n".to_vec();
        m.extend_from_slice(BYE);
        f.push(&m);
        assert_eq!(
            frames(&mut f),
            vec![Frame::Message(Bytes::from_static(BYE))]
        );
    }

    #[test]
    fn oversized_message_is_refused() {
        let mut f = Framer::new(1024);
        let big = format!(
            "INVITE sip:a@b SIP/2.0\r\nContent-Length: 2000\r\n\r\n{}",
            "x".repeat(100)
        );
        f.push(big.as_bytes());
        assert!(matches!(f.next_frame(), Err(FrameError::TooLarge(1024))));
    }

    #[test]
    fn endless_header_is_refused() {
        let mut f = Framer::new(1024);
        f.push(b"INVITE sip:a@b SIP/2.0\r\n");
        assert!(matches!(f.next_frame(), Ok(None)));
        f.push(&[b'X'; 1100]);
        assert!(matches!(f.next_frame(), Err(FrameError::TooLarge(1024))));
    }

    #[test]
    fn missing_content_length_is_malformed() {
        let mut f = Framer::new(1024);
        f.push(b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n");
        assert!(matches!(f.next_frame(), Err(FrameError::Malformed(_))));
    }

    async fn next_packet(rx: &mut mpsc::Receiver<NetEvent>) -> Packet {
        match rx.recv().await {
            Some(NetEvent::Packet(p)) => p,
            other => panic!("expected a packet, got {other:?}"),
        }
    }

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 5062))
    }

    #[tokio::test]
    async fn connection_frames_reads_writes_and_pongs() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let (ev_tx, mut ev_rx) = mpsc::channel(8);
        let (out_tx, out_rx) = mpsc::channel(8);
        let task = tokio::spawn(serve_conn(
            ConnId(7),
            peer(),
            ours,
            out_rx,
            ev_tx,
            65535,
            Duration::from_secs(300),
        ));
        // Split over many small reads: the duplex holds 64 bytes at a time.
        let mut both = INVITE.to_vec();
        both.extend_from_slice(b"\r\n\r\n");
        both.extend_from_slice(BYE);
        let writer = tokio::spawn(async move {
            let r = theirs.write_all(&both).await;
            (theirs, r)
        });
        let p = next_packet(&mut ev_rx).await;
        assert_eq!(p.conn, Some(ConnId(7)));
        assert_eq!(p.transport, Transport::Tcp);
        assert_eq!(p.source, peer());
        assert_eq!(&p.data[..], INVITE);
        assert_eq!(&next_packet(&mut ev_rx).await.data[..], BYE);
        let (mut theirs, r) = match writer.await {
            Ok(x) => x,
            Err(e) => panic!("{e}"),
        };
        assert!(r.is_ok());

        let mut pong = [0u8; 2];
        assert!(theirs.read_exact(&mut pong).await.is_ok());
        assert_eq!(&pong, b"\r\n");

        assert!(out_tx.send(Bytes::from_static(BYE)).await.is_ok());
        let mut got = vec![0u8; BYE.len()];
        assert!(theirs.read_exact(&mut got).await.is_ok());
        assert_eq!(&got[..], BYE);

        drop(out_tx); // the core lets go: the task flushes and ends
        assert_eq!(task.await.ok(), Some("closed by us"));
    }

    #[tokio::test]
    async fn oversized_stream_message_closes_the_connection() {
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let (ev_tx, mut ev_rx) = mpsc::channel(8);
        let (_out_tx, out_rx) = mpsc::channel(8);
        let task = tokio::spawn(serve_conn(
            ConnId(1),
            peer(),
            ours,
            out_rx,
            ev_tx,
            1024,
            Duration::from_secs(300),
        ));
        let big = format!(
            "INVITE sip:a@b SIP/2.0\r\nContent-Length: 2000\r\n\r\n{}",
            "x".repeat(2000)
        );
        let _ = theirs.write_all(big.as_bytes()).await;
        assert_eq!(task.await.ok(), Some("message too large"));
        assert!(ev_rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn idle_connection_is_closed() {
        let (ours, _theirs) = tokio::io::duplex(64);
        let (ev_tx, _ev_rx) = mpsc::channel(8);
        let (_out_tx, out_rx) = mpsc::channel(8);
        let r = serve_conn(
            ConnId(1),
            peer(),
            ours,
            out_rx,
            ev_tx,
            1024,
            Duration::from_millis(50),
        )
        .await;
        assert_eq!(r, "idle");
    }

    #[tokio::test]
    async fn conns_reuse_limit_and_connect_failure() {
        let (ev_tx, mut ev_rx) = mpsc::channel(64);
        let m = SipMetrics::new();
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("{e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        };
        let mut conns = Conns::new(ev_tx, 1, 65535, Duration::from_secs(300));

        // Outbound: two transmits to one destination share one connection
        // (the second names a connection that does not exist).
        let t = |conn| Transmit {
            transport: Transport::Tcp,
            destination: addr,
            conn,
            data: Bytes::from_static(BYE),
        };
        conns.send(t(None), &m);
        conns.send(t(Some(ConnId(99))), &m);
        assert_eq!(conns.by_id.len(), 1);
        let (mut s, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => panic!("{e}"),
        };
        let mut got = vec![0u8; BYE.len() * 2];
        assert!(s.read_exact(&mut got).await.is_ok());
        assert_eq!(&got[..BYE.len()], BYE);
        assert_eq!(&got[BYE.len()..], BYE);

        // Inbound limit: one allowed, the second is closed at once.
        let (a1, c1) = tokio::join!(listener.accept(), TcpStream::connect(addr));
        let (Ok((a1, p1)), Ok(_c1)) = (a1, c1) else {
            panic!("connect")
        };
        conns.accepted(a1, p1);
        let (a2, c2) = tokio::join!(listener.accept(), TcpStream::connect(addr));
        let (Ok((a2, p2)), Ok(mut c2)) = (a2, c2) else {
            panic!("connect")
        };
        conns.accepted(a2, p2);
        assert_eq!(conns.inbound, 1);
        let mut buf = [0u8; 1];
        assert!(matches!(c2.read(&mut buf).await, Ok(0)));

        // The peer of the outbound connection hangs up: reported once.
        drop(s);
        assert_eq!(conns.next_closed().await, Some(ConnId(1)));
        assert_eq!(conns.by_id.len(), 1);

        // A connect that fails is reported as closed.
        drop(listener);
        conns.send(t(None), &m);
        assert_eq!(conns.next_closed().await, Some(ConnId(3)));
        assert!(ev_rx.try_recv().is_err());
        conns.shutdown(Duration::from_secs(1)).await;
    }
}
