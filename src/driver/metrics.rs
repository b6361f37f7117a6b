//! Prometheus metrics: the recorder, the metric names, and the handles the
//! core loop records into on every message.
//!
//! The exporter is installed once per process as the global `metrics`
//! recorder; `/metrics` (see [`super::api`]) renders it, followed by the
//! latency summaries of [`super::latency`] (HDR histograms: the exporter's
//! own summaries lose their small values when the range is wide).

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Counter, Gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::sip::transport::Transport;

/// How often the exporter's upkeep runs (and the kernel drop count is read).
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Time the signalling core spends on one received message (or connection
/// event), outputs drained (summary).
pub const PROCESSING_SECONDS: &str = "hotline_sip_processing_seconds";
/// Time the signalling core spends on one timer wake: every timer due at
/// that instant (retransmissions, transaction and call timeouts), outputs
/// drained (summary).
pub const TIMER_SECONDS: &str = "hotline_sip_timer_seconds";
/// Datagrams the kernel dropped on the SIP UDP socket because its receive
/// buffer was full (Linux `/proc/net/udp` `drops`; read every
/// [`UPKEEP_INTERVAL`]).
pub const UDP_KERNEL_DROPS: &str = "hotline_sip_udp_kernel_drops_total";
/// SIP messages received, by `transport`.
pub const MESSAGES_RECEIVED: &str = "hotline_sip_messages_received_total";
/// SIP messages handed to the network, by `transport`.
pub const MESSAGES_SENT: &str = "hotline_sip_messages_sent_total";
/// Bytes of SIP messages received, by `transport`.
pub const BYTES_RECEIVED: &str = "hotline_sip_bytes_received_total";
/// Bytes of SIP messages handed to the network, by `transport`.
pub const BYTES_SENT: &str = "hotline_sip_bytes_sent_total";
/// Messages dropped without answer, by `reason`; the driver's reasons are
/// `too_large` and `tcp_framing` (the core counts its own under the same
/// name).
pub const DROPPED: &str = "hotline_sip_dropped_total";
/// Socket and connection failures, by `kind`: `udp_send`, `udp_recv`,
/// `tcp_accept`, `tcp_limit`, `tcp_connect`, `tcp_queue_full`, `tcp_read`,
/// `tcp_write`, `tcp_send`.
pub const TRANSPORT_ERRORS: &str = "hotline_sip_transport_errors_total";
/// TCP connections open now (inbound and outbound).
pub const TCP_CONNECTIONS: &str = "hotline_sip_tcp_connections";
/// Call records and events not yet delivered to the webhook (pending in
/// the outbox; dead-lettered ones are in [`WEBHOOK_DEAD_LETTERS`]).
pub const WEBHOOK_BACKLOG: &str = "hotline_webhook_backlog";
/// Age of the oldest pending item in the outbox (0 when there is none).
pub const WEBHOOK_OLDEST_UNDELIVERED: &str = "hotline_webhook_oldest_undelivered_seconds";
/// Dead-lettered items kept in the outbox (no longer tried; replayable).
pub const WEBHOOK_DEAD_LETTERS: &str = "hotline_webhook_dead_letters";
/// Delivery attempts, by `outcome`: `delivered` (2xx), `rejected` (another
/// status the receiver chose: 4xx but 408/429, 1xx, 3xx), `error` (408,
/// 429, 5xx), `timeout`, `connection`; and `dead_lettered` once per item
/// parked.
pub const WEBHOOK_DELIVERIES: &str = "hotline_webhook_deliveries_total";
/// Time from an item's append to its 2xx (histogram).
pub const WEBHOOK_DELIVERY_SECONDS: &str = "hotline_webhook_delivery_seconds";
/// Call records and events committed to the outbox.
pub const RECORDS_COMMITTED: &str = "hotline_records_committed_total";
/// Failed outbox commits (the items stay in memory and are retried).
pub const RECORDS_WRITE_ERRORS: &str = "hotline_records_write_errors_total";
/// Items lost because the outbox failed for too long (should stay 0).
pub const RECORDS_LOST: &str = "hotline_records_lost_total";
/// Items waiting in memory for a failed outbox to recover.
pub const RECORDS_UNSAVED: &str = "hotline_records_unsaved";
/// Time of one outbox commit (group commit of a turn's items; histogram).
pub const RECORDS_COMMIT_SECONDS: &str = "hotline_records_commit_seconds";

/// Calls not yet fully ended.
pub const CALLS_LIVE: &str = "hotline_calls_live";
/// 1 while draining after SIGTERM.
pub const DRAINING: &str = "hotline_draining";
/// Always 1; the `version` label carries the build.
pub const BUILD_INFO: &str = "hotline_build_info";
/// Always 1 while the process serves.
pub const UP: &str = "hotline_up";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Install the Prometheus recorder as the global `metrics` recorder (once
/// per process; later calls return the same handle) and set the static
/// gauges.
pub fn install() -> PrometheusHandle {
    let handle = HANDLE.get_or_init(|| {
        // Histograms with explicit buckets (the exporter's summaries lose
        // small values when the range is wide; see `latency`).
        let builder = [
            (
                WEBHOOK_DELIVERY_SECONDS,
                &[
                    0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 3600.0, 86_400.0,
                ][..],
            ),
            (
                RECORDS_COMMIT_SECONDS,
                &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0][..],
            ),
        ]
        .into_iter()
        .fold(PrometheusBuilder::new(), |b, (name, buckets)| {
            match b.set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets) {
                Ok(b) => b,
                // Only for an empty bucket list, which these are not.
                Err(_) => PrometheusBuilder::new(),
            }
        });
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("metrics: another global recorder is installed; /metrics stays empty");
        }
        describe();
        handle
    });
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    metrics::gauge!(UP).set(1.0);
    handle.clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, Unit};
    describe_counter!(
        UDP_KERNEL_DROPS,
        "Datagrams the kernel dropped on the SIP UDP socket (receive buffer full)"
    );
    describe_counter!(MESSAGES_RECEIVED, "SIP messages received");
    describe_counter!(MESSAGES_SENT, "SIP messages handed to the network");
    describe_counter!(BYTES_RECEIVED, Unit::Bytes, "Bytes of SIP received");
    describe_counter!(
        BYTES_SENT,
        Unit::Bytes,
        "Bytes of SIP handed to the network"
    );
    describe_counter!(DROPPED, "Messages dropped before they were handled");
    describe_counter!(TRANSPORT_ERRORS, "Socket and connection failures");
    describe_gauge!(TCP_CONNECTIONS, "TCP connections open");
    describe_gauge!(WEBHOOK_BACKLOG, "Items in the outbox not yet delivered");
    describe_gauge!(
        WEBHOOK_OLDEST_UNDELIVERED,
        Unit::Seconds,
        "Age of the oldest undelivered item"
    );
    describe_gauge!(WEBHOOK_DEAD_LETTERS, "Dead-lettered items in the outbox");
    describe_counter!(WEBHOOK_DELIVERIES, "Webhook delivery attempts by outcome");
    metrics::describe_histogram!(
        WEBHOOK_DELIVERY_SECONDS,
        Unit::Seconds,
        "Time from an item's append to its 2xx"
    );
    describe_counter!(
        RECORDS_COMMITTED,
        "Call records and events committed to the outbox"
    );
    describe_counter!(
        RECORDS_WRITE_ERRORS,
        "Failed outbox commits (items kept and retried)"
    );
    describe_counter!(
        RECORDS_LOST,
        "Items lost because the outbox failed for too long"
    );
    describe_gauge!(RECORDS_UNSAVED, "Items waiting in memory for the outbox");
    metrics::describe_histogram!(
        RECORDS_COMMIT_SECONDS,
        Unit::Seconds,
        "Time of one outbox commit (a turn's items)"
    );
    describe_gauge!(CALLS_LIVE, "Calls not yet fully ended");
    describe_gauge!(DRAINING, "1 while draining after SIGTERM");
    describe_gauge!(BUILD_INFO, "Build information");
    describe_gauge!(UP, "1 while the process serves");
}

/// The SIP socket's kernel drops are read every this many upkeeps (30 s).
const KERNEL_DROPS_EVERY: u64 = 6;

/// Run the exporter's upkeep (histogram folding) every [`UPKEEP_INTERVAL`],
/// forever, and copy the kernel's drop count of the SIP UDP socket
/// (`udp_inode`, see [`super::net::socket_inode`]) into
/// [`UDP_KERNEL_DROPS`]; spawn it and abort it at shutdown.
pub async fn upkeep(handle: PrometheusHandle, udp_inode: Option<u64>) {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let drops = metrics::counter!(UDP_KERNEL_DROPS);
    let mut n = 0u64;
    loop {
        tick.tick().await;
        handle.run_upkeep();
        // /proc/net/udp lists every UDP socket, the media ports included
        // (thousands): reading it is not free, so every sixth upkeep.
        if n.is_multiple_of(KERNEL_DROPS_EVERY) {
            let inode = udp_inode;
            let read =
                tokio::task::spawn_blocking(move || inode.and_then(super::net::kernel_drops));
            if let Ok(Some(d)) = read.await {
                drops.absolute(d);
            }
        }
        n += 1;
    }
}

/// Count a message dropped before the core saw it.
pub fn dropped(reason: &'static str) {
    metrics::counter!(DROPPED, "reason" => reason).increment(1);
}

/// Count a socket or connection failure.
pub fn transport_error(kind: &'static str) {
    metrics::counter!(TRANSPORT_ERRORS, "kind" => kind).increment(1);
}

/// The handles the core loop records call-record commits into.
pub struct RecordMetrics {
    committed: Counter,
    write_errors: Counter,
    lost: Counter,
    unsaved: Gauge,
    commit: metrics::Histogram,
}

impl RecordMetrics {
    /// Register the handles with the global recorder.
    pub fn new() -> Self {
        Self {
            committed: metrics::counter!(RECORDS_COMMITTED),
            write_errors: metrics::counter!(RECORDS_WRITE_ERRORS),
            lost: metrics::counter!(RECORDS_LOST),
            unsaved: metrics::gauge!(RECORDS_UNSAVED),
            commit: metrics::histogram!(RECORDS_COMMIT_SECONDS),
        }
    }

    /// `n` items committed in `dt`.
    pub fn committed(&self, n: usize, dt: Duration) {
        self.committed.increment(n as u64);
        self.commit.record(dt.as_secs_f64());
    }

    /// A commit failed.
    pub fn write_error(&self) {
        self.write_errors.increment(1);
    }

    /// `n` items dropped.
    pub fn lost(&self, n: usize) {
        self.lost.increment(n as u64);
    }

    /// Items waiting in memory.
    pub fn unsaved(&self, n: usize) {
        self.unsaved.set(n as f64);
    }
}

impl Default for RecordMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Counters of one direction over one transport.
#[derive(Clone)]
struct PerTransport {
    messages: Counter,
    bytes: Counter,
}

impl PerTransport {
    fn new(messages: &'static str, bytes: &'static str, t: Transport) -> Self {
        let label = match t {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        };
        Self {
            messages: metrics::counter!(messages, "transport" => label),
            bytes: metrics::counter!(bytes, "transport" => label),
        }
    }

    fn add(&self, len: usize) {
        self.messages.increment(1);
        self.bytes.increment(len as u64);
    }
}

/// The handles the hot path records into, registered once so recording is
/// an atomic add with no key lookup.
#[derive(Clone)]
pub struct SipMetrics {
    rx_udp: PerTransport,
    rx_tcp: PerTransport,
    tx_udp: PerTransport,
    tx_tcp: PerTransport,
    calls_live: Gauge,
    draining: Gauge,
}

impl SipMetrics {
    /// Register the handles with the global recorder (install it first).
    pub fn new() -> Self {
        Self {
            rx_udp: PerTransport::new(MESSAGES_RECEIVED, BYTES_RECEIVED, Transport::Udp),
            rx_tcp: PerTransport::new(MESSAGES_RECEIVED, BYTES_RECEIVED, Transport::Tcp),
            tx_udp: PerTransport::new(MESSAGES_SENT, BYTES_SENT, Transport::Udp),
            tx_tcp: PerTransport::new(MESSAGES_SENT, BYTES_SENT, Transport::Tcp),
            calls_live: metrics::gauge!(CALLS_LIVE),
            draining: metrics::gauge!(DRAINING),
        }
    }

    /// A message of `len` bytes arrived over `t`.
    pub fn received(&self, t: Transport, len: usize) {
        match t {
            Transport::Udp => self.rx_udp.add(len),
            Transport::Tcp => self.rx_tcp.add(len),
        }
    }

    /// A message of `len` bytes was handed to the network over `t`.
    pub fn sent(&self, t: Transport, len: usize) {
        match t {
            Transport::Udp => self.tx_udp.add(len),
            Transport::Tcp => self.tx_tcp.add(len),
        }
    }

    /// Calls not yet fully ended, and whether we are draining.
    pub fn calls(&self, live: usize, draining: bool) {
        self.calls_live.set(live as f64);
        self.draining.set(if draining { 1.0 } else { 0.0 });
    }
}

impl Default for SipMetrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters() {
        let handle = install();
        let m = SipMetrics::new();
        m.received(Transport::Udp, 400);
        m.sent(Transport::Tcp, 300);
        dropped("too_large");
        handle.run_upkeep();
        let text = handle.render();
        for want in [
            "hotline_sip_messages_received_total{transport=\"udp\"}",
            "hotline_sip_bytes_received_total{transport=\"udp\"}",
            "hotline_sip_messages_sent_total{transport=\"tcp\"}",
            "hotline_sip_dropped_total{reason=\"too_large\"}",
            "hotline_up 1",
            "hotline_build_info{version=\"",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
    }
}
