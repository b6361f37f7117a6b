//! Sockets: one UDP socket and one TCP listener on `sip.listen`, TCP
//! connections (inbound and outbound) with Content-Length framing
//! (RFC 3261 §18.3), bounded buffers and a connection limit.

use super::DriverError;
use crate::config::Config;
use crate::ids::ConnId;
use crate::sip::msg::frame_len;
use crate::sip::transport::{Packet, Transmit, Transport};
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

/// What the sockets tell the core loop.
#[derive(Debug)]
pub enum NetEvent {
    /// A datagram or framed message.
    Packet(Packet),
    /// A TCP connection is up (inbound accepted or outbound connected).
    Opened(Conn),
    /// A TCP connection is gone.
    Closed(ConnId),
}

/// A TCP connection's send side.
#[derive(Debug)]
pub struct Conn {
    /// Its id.
    pub id: ConnId,
    /// The peer.
    pub peer: SocketAddr,
    /// Where to queue outgoing messages.
    pub tx: mpsc::Sender<Bytes>,
}

/// Per-connection write queue depth (messages); a peer that does not read
/// is disconnected rather than allowed to grow our memory.
const CONN_QUEUE: usize = 256;
/// Connect timeout for outbound TCP.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

fn next_conn() -> ConnId {
    ConnId(NEXT_CONN.fetch_add(1, Ordering::Relaxed))
}

/// The core loop's handle on the sockets.
pub struct Network {
    udp: Arc<UdpSocket>,
    conns: HashMap<ConnId, Conn>,
    by_peer: HashMap<SocketAddr, ConnId>,
    /// Outbound connections being set up: messages wait here.
    pending: HashMap<SocketAddr, Vec<Bytes>>,
    events_tx: mpsc::Sender<NetEvent>,
    max_message: usize,
    idle: Duration,
}

impl Network {
    /// Bind UDP and TCP on `sip.listen` and start the receive tasks.
    pub async fn bind(config: &Config) -> Result<(Network, mpsc::Receiver<NetEvent>), DriverError> {
        let addr = config.sip.listen;
        let bind_err = |source| DriverError::Bind {
            addr,
            key: "sip.listen",
            source,
        };
        let udp = Arc::new(UdpSocket::bind(addr).await.map_err(bind_err)?);
        let tcp = TcpListener::bind(addr).await.map_err(bind_err)?;
        let (events_tx, events_rx) = mpsc::channel(8192);
        let max_message = config.sip.max_message_bytes;
        let idle = config.sip.tcp_idle_timeout;
        tokio::spawn(udp_recv(udp.clone(), events_tx.clone(), max_message));
        tokio::spawn(tcp_accept(
            tcp,
            events_tx.clone(),
            max_message,
            idle,
            config.sip.tcp_max_connections,
        ));
        Ok((
            Network {
                udp,
                conns: HashMap::new(),
                by_peer: HashMap::new(),
                pending: HashMap::new(),
                events_tx,
                max_message,
                idle,
            },
            events_rx,
        ))
    }

    /// A connection came up.
    pub fn opened(&mut self, conn: Conn) {
        if let Some(queued) = self.pending.remove(&conn.peer) {
            for m in queued {
                if conn.tx.try_send(m).is_err() {
                    super::metrics::transport_error("tcp_queue_full");
                }
            }
        }
        self.by_peer.insert(conn.peer, conn.id);
        self.conns.insert(conn.id, conn);
    }

    /// A connection went away.
    pub fn closed(&mut self, id: ConnId) {
        if let Some(c) = self.conns.remove(&id) {
            if self.by_peer.get(&c.peer) == Some(&id) {
                self.by_peer.remove(&c.peer);
            }
        }
    }

    /// Send one message.
    pub fn send(&mut self, t: Transmit) {
        match t.transport {
            Transport::Udp => match self.udp.try_send_to(&t.data, t.destination) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    // The socket buffer is full: send from a task rather
                    // than stall the core.
                    let udp = self.udp.clone();
                    tokio::spawn(async move {
                        if udp.send_to(&t.data, t.destination).await.is_err() {
                            super::metrics::transport_error("udp_send");
                        }
                    });
                }
                Err(e) => {
                    tracing::debug!(dest = %t.destination, error = %e, "udp send failed");
                    super::metrics::transport_error("udp_send");
                }
            },
            Transport::Tcp => self.send_tcp(t),
        }
    }

    fn send_tcp(&mut self, t: Transmit) {
        let conn = t
            .conn
            .filter(|c| self.conns.contains_key(c))
            .or_else(|| self.by_peer.get(&t.destination).copied());
        if let Some(id) = conn {
            if let Some(c) = self.conns.get(&id) {
                if c.tx.try_send(t.data).is_err() {
                    // A peer that does not read: drop it (its transactions
                    // time out), never block the core.
                    super::metrics::transport_error("tcp_queue_full");
                    self.closed(id);
                }
                return;
            }
        }
        if let Some(q) = self.pending.get_mut(&t.destination) {
            if q.len() < CONN_QUEUE {
                q.push(t.data);
            }
            return;
        }
        self.pending.insert(t.destination, vec![t.data]);
        let events = self.events_tx.clone();
        let (max, idle, dest) = (self.max_message, self.idle, t.destination);
        tokio::spawn(async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(dest)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    run_conn(stream, dest, events, max, idle, None).await;
                }
                _ => {
                    tracing::debug!(%dest, "tcp connect failed");
                    super::metrics::transport_error("tcp_connect");
                    // Nothing to close: the queued messages are dropped and
                    // their transactions time out (Timer B/F).
                    let _ = events.send(NetEvent::Closed(next_conn())).await;
                }
            }
        });
    }

    /// Give queued datagrams a moment to leave before exit.
    pub async fn flush(&mut self) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn udp_recv(sock: Arc<UdpSocket>, events: mpsc::Sender<NetEvent>, max: usize) {
    let mut buf = vec![0u8; max + 1];
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, source)) => {
                if n > max {
                    super::metrics::dropped("too_large");
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
            Err(e) => {
                // ICMP port unreachable surfaces here on Linux; keep going.
                tracing::debug!(error = %e, "udp recv error");
                super::metrics::transport_error("udp_recv");
            }
        }
    }
}

async fn tcp_accept(
    listener: TcpListener,
    events: mpsc::Sender<NetEvent>,
    max: usize,
    idle: Duration,
    limit: usize,
) {
    let live = Arc::new(AtomicUsize::new(0));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "tcp accept error");
                super::metrics::transport_error("tcp_accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if live.load(Ordering::Relaxed) >= limit {
            super::metrics::transport_error("tcp_limit");
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        live.fetch_add(1, Ordering::Relaxed);
        let (events, live) = (events.clone(), live.clone());
        tokio::spawn(async move {
            run_conn(stream, peer, events, max, idle, Some(live.clone())).await;
            live.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// One TCP connection: a reader that frames messages and a writer fed by
/// the core loop.
async fn run_conn(
    stream: TcpStream,
    peer: SocketAddr,
    events: mpsc::Sender<NetEvent>,
    max: usize,
    idle: Duration,
    _live: Option<Arc<AtomicUsize>>,
) {
    let id = next_conn();
    let (tx, mut rx) = mpsc::channel::<Bytes>(CONN_QUEUE);
    if events
        .send(NetEvent::Opened(Conn { id, peer, tx }))
        .await
        .is_err()
    {
        return;
    }
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if wr.write_all(&m).await.is_err() {
                break;
            }
        }
    });
    let mut buf = BytesMut::with_capacity(8192);
    'read: loop {
        let n = match tokio::time::timeout(idle, rd.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => n,
            Err(_) => {
                tracing::debug!(%peer, "tcp idle timeout");
                break;
            }
        };
        let _ = n;
        loop {
            match frame_len(&buf, max) {
                Ok(Some(len)) => {
                    let data = buf.split_to(len).freeze();
                    if data.iter().all(|b| *b == b'\r' || *b == b'\n') {
                        continue; // keep-alive CRLFs
                    }
                    let p = Packet {
                        transport: Transport::Tcp,
                        source: peer,
                        conn: Some(id),
                        data,
                    };
                    if events.send(NetEvent::Packet(p)).await.is_err() {
                        break 'read;
                    }
                }
                Ok(None) => {
                    // Only CRLF keep-alives so far: discard them.
                    if !buf.is_empty() && buf.iter().all(|b| *b == b'\r' || *b == b'\n') {
                        buf.clear();
                    }
                    break;
                }
                Err(e) => {
                    // Unframeable stream (no Content-Length, oversized):
                    // the stream cannot be resynchronised; close it.
                    tracing::debug!(%peer, error = %e, "tcp framing error; closing");
                    super::metrics::dropped("tcp_framing");
                    break 'read;
                }
            }
        }
    }
    writer.abort();
    let _ = events.send(NetEvent::Closed(id)).await;
}
